/* fuzz_sni.c: the ClientHello and Host decoders never crash, say only what they may, and judge prefixes consistently. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/error.h"
#include "tunnel/sni.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_sni_check_name(const char *name)
{
  size_t n = strlen(name);

  if (n > TN_SNI_NAME_MAX)
    abort();
  for (size_t i = 0; i < n; i++)
    if (name[i] >= 'A' && name[i] <= 'Z')
      abort();  /* names come out in lower case */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char name[TN_SNI_NAME_MAX + 1], again[TN_SNI_NAME_MAX + 1];
  enum tn_sni_kind kind = TN_SNI_UNKNOWN, kind2 = TN_SNI_UNKNOWN;
  int r = tn_sni_peek(data, size, &kind, name), r2, half;

  if (r != TN_OK && r != TN_ERR_NEED_MORE && r != TN_ERR_INVALID)
    abort();
  /* The kind is the first byte's, whatever the verdict: tunneld refuses an unreadable visitor in its protocol. */
  if (size > 0 && kind != (data[0] == 22 ? TN_SNI_TLS : data[0] >= 'A' && data[0] <= 'Z' ? TN_SNI_HTTP : TN_SNI_UNKNOWN))
    abort();
  if (r == TN_OK) {
    if (kind != TN_SNI_TLS && kind != TN_SNI_HTTP)
      abort();
    fuzz_sni_check_name(name);
  } else if (name[0] != 0) {
    abort();  /* nothing is reported from input that was not accepted */
  }
  /* Deterministic, and the input is only read. */
  r2 = tn_sni_peek(data, size, &kind2, again);
  if (r2 != r || (r == TN_OK && (kind2 != kind || strcmp(name, again) != 0)))
    abort();
  /* A prefix of something still incomplete is incomplete; once invalid, more bytes never make it valid. */
  half = tn_sni_peek(data, size / 2, &kind2, again);
  if (r == TN_ERR_NEED_MORE && half != TN_ERR_NEED_MORE)
    abort();
  if (half == TN_ERR_INVALID && r != TN_ERR_INVALID)
    abort();
  return 0;
}
