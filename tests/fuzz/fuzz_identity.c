/* fuzz_identity.c: names from certificates never crash the identity rule, and what is shown of them is printable. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>

#include "tunnel/error.h"
#include "tunnel/tls.h"
#include "tunnel/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A shown name is valid UTF-8 holding no character that hides itself (docs/PKI.md). */
static void fuzz_identity_check_shown(const char *s)
{
  size_t len = strlen(s);

  for (size_t i = 0; i < len;) {
    uint32_t cp;
    size_t n = tn_utf8_decode((const uint8_t *)s + i, len - i, &cp);
    if (n == 0 || tn_utf8_is_invisible(cp))
      abort();
    i += n;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct tn_tls_peer peer;
  char why[256], out[512];
  size_t n;

  /* Whole certificates: the seeds are the identity fixtures of tests/data/tls/identity. */
  if (tn_tls_identity_check_der(data, size, why, sizeof why) == TN_ERR_ARG)
    abort();
  if (tn_tls_identity_from_der(data, size, &peer) == TN_OK) {
    fuzz_identity_check_shown(peer.cn);
    fuzz_identity_check_shown(peer.sans);
  }
  /* The same bytes as one CN value, and as text to escape. */
  n = tn_utf8_escape((const char *)data, size, out, sizeof out);
  if (n >= sizeof out || out[n] != '\0' || strlen(out) != n)
    abort();
  fuzz_identity_check_shown(out);
  if (tn_tls_cn_check(data, size, MBEDTLS_ASN1_UTF8_STRING, why, sizeof why) == TN_OK &&
      memchr(data, '\\', size) == NULL && (n != size || memcmp(out, data, size) != 0))
    abort();  /* a name the rule accepts is shown as it is */
  return 0;
}
