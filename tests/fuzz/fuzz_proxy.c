/* fuzz_proxy.c: the PROXY decoder never crashes, and what it accepts re-encodes to the same meaning: the production
 * encoder (tn_proxy_encode, what tunnelc writes to backends) is fuzzed through every header the decoder accepts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/error.h"
#include "tunnel/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_proxy_same(const struct tn_proxy_info *a, const struct tn_proxy_info *b)
{
  if (a->version != b->version || a->local != b->local || !tn_addr_equal(&a->src, &b->src) ||
      !tn_addr_equal(&a->dst, &b->dst) || strcmp(a->authority, b->authority) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct tn_proxy_info first, second;
  uint8_t out[TN_PROXY_V1_MAX_LEN > TN_PROXY_V2_MAX_LEN ? TN_PROXY_V1_MAX_LEN : TN_PROXY_V2_MAX_LEN];
  size_t cut, n;
  int r;

  r = tn_proxy_decode(&first, data, size);
  if (r == 0 || r > (int)size)
    abort();
  if (r < 0) {
    if (r != TN_ERR_NEED_MORE && r != TN_ERR_INVALID && r != TN_ERR_UNSUPPORTED)
      abort();
    return 0;
  }
  /* The header alone decodes the same, and every shorter prefix asks for more. */
  if (tn_proxy_decode(&second, data, (size_t)r) != r)
    abort();
  fuzz_proxy_same(&first, &second);
  for (cut = 0; cut < (size_t)r; cut++)
    if (tn_proxy_decode(&second, data, cut) != TN_ERR_NEED_MORE)
      abort();

  n = tn_proxy_encode(first.version, &first, out, sizeof(out));
  if (n == 0)
    abort();
  if (tn_proxy_decode(&second, out, n) != (int)n)
    abort();
  fuzz_proxy_same(&first, &second);
  return 0;
}
