/* fuzz_control.c: the control-message decoder never crashes, and an accepted allow-list re-encodes to the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/control.h"
#include "tunnel/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tn_ctl_allow fuzz_first, fuzz_second;
static uint8_t fuzz_out[TN_CTL_MAX_LEN];
static const char *fuzz_names[TN_CTL_MAX_NAMES];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  uint8_t version, type;
  uint32_t total;
  size_t n;
  int r, p;

  {
    uint8_t sha[32];
    int q = tn_ctl_rotate_decode(sha, data, size);
    if (q != TN_CTL_ROTATE_LEN && q != TN_ERR_NEED_MORE && q != TN_ERR_INVALID && q != TN_ERR_UNSUPPORTED)
      abort();
    if (q == TN_CTL_ROTATE_LEN && (size < TN_CTL_ROTATE_LEN || tn_ctl_rotate_encode(sha, fuzz_out, sizeof(fuzz_out)) != TN_CTL_ROTATE_LEN ||
                                   memcmp(fuzz_out, data, TN_CTL_ROTATE_LEN) != 0))
      abort();
  }
  p = tn_ctl_peek(data, size, &version, &type, &total);
  if (p != TN_OK && p != TN_ERR_NEED_MORE && p != TN_ERR_INVALID)
    abort();
  if (p == TN_OK && (total < TN_CTL_HEAD_LEN || total > TN_CTL_MAX_LEN))
    abort();
  r = tn_ctl_allow_decode(&fuzz_first, data, size);
  if (r == 0 || r > (int)size || r > (int)TN_CTL_MAX_LEN)
    abort();
  if (r < 0) {
    if (r != TN_ERR_NEED_MORE && r != TN_ERR_INVALID && r != TN_ERR_UNSUPPORTED)
      abort();
    return 0;
  }
  if (p != TN_OK || total != (uint32_t)r)
    abort();
  /* A true prefix asks for more: the head, the last byte and one chosen by the input. */
  if (tn_ctl_allow_decode(&fuzz_second, data, 7) != TN_ERR_NEED_MORE ||
      tn_ctl_allow_decode(&fuzz_second, data, (size_t)r - 1) != TN_ERR_NEED_MORE ||
      tn_ctl_allow_decode(&fuzz_second, data, data[size - 1] % (size_t)r) != TN_ERR_NEED_MORE)
    abort();
  for (size_t i = 0; i < fuzz_first.n_names; i++)
    fuzz_names[i] = fuzz_first.names[i];
  n = tn_ctl_allow_encode(fuzz_first.ports, fuzz_first.n_ports, fuzz_names, fuzz_first.n_names, fuzz_out,
                          sizeof(fuzz_out));
  if (n != (size_t)r || memcmp(fuzz_out, data, n) != 0)
    abort();
  return 0;
}
