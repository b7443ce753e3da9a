/* fuzz_open.c: the stream-open decoder never crashes, and its encoding is canonical. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/error.h"
#include "tunnel/open.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_open_same(const struct tn_open *a, const struct tn_open *b)
{
  if (a->backend_kind != b->backend_kind || a->proxy_version != b->proxy_version ||
      a->backend_port != b->backend_port || strcmp(a->service, b->service) != 0 ||
      !tn_addr_equal(&a->peer, &b->peer) || !tn_addr_equal(&a->listener, &b->listener) ||
      strcmp(a->authority, b->authority) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct tn_open first, second;
  uint8_t out[TN_OPEN_MAX_LEN];
  size_t cut, n;
  int r;

  r = tn_open_decode(&first, data, size);
  if (r == 0 || r > (int)size || r > TN_OPEN_MAX_LEN)
    abort();
  if (r < 0) {
    if (r != TN_ERR_NEED_MORE && r != TN_ERR_INVALID && r != TN_ERR_UNSUPPORTED)
      abort();
    return 0;
  }
  /*
   * Prefixes ask for more. Checking all of them would make a long service header cost
   * hundreds of decodes, so take the fixed fields, the last byte and one chosen by the input.
   */
  for (cut = 0; cut < 12 && cut < (size_t)r; cut++)
    if (tn_open_decode(&second, data, cut) != TN_ERR_NEED_MORE)
      abort();
  if (tn_open_decode(&second, data, (size_t)r - 1) != TN_ERR_NEED_MORE)
    abort();
  if (tn_open_decode(&second, data, data[size - 1] % (size_t)r) != TN_ERR_NEED_MORE)
    abort();

  /* One meaning, one encoding: re-encoding gives back exactly the accepted bytes. */
  n = tn_open_encode(&first, out, sizeof(out));
  if (n != (size_t)r || memcmp(out, data, n) != 0)
    abort();
  if (tn_open_decode(&second, out, n) != (int)n)
    abort();
  fuzz_open_same(&first, &second);
  return 0;
}
