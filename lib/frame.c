/* frame.c: the yamux frame header codec. */
#include "tunnel/frame.h"

#include "tunnel/be.h"
#include "tunnel/error.h"

size_t tn_frame_encode(const struct tn_frame_header *h, uint8_t *out, size_t out_len)
{
  if (out_len < TN_FRAME_HEADER_LEN)
    return 0;
  out[0] = h->version;
  out[1] = h->type;
  tn_put_be16(out + 2, h->flags);
  tn_put_be32(out + 4, h->stream_id);
  tn_put_be32(out + 8, h->length);
  return TN_FRAME_HEADER_LEN;
}

int tn_frame_decode(struct tn_frame_header *h, const uint8_t *in, size_t in_len)
{
  /* Version and type are judged as soon as their byte is here, so garbage fails fast. */
  if (in_len >= 1 && in[0] != TN_FRAME_VERSION)
    return TN_ERR_INVALID;
  if (in_len >= 2 && in[1] > TN_FRAME_GO_AWAY)
    return TN_ERR_INVALID;
  if (in_len < TN_FRAME_HEADER_LEN)
    return TN_ERR_NEED_MORE;
  h->version = in[0];
  h->type = in[1];
  h->flags = (uint16_t)(in[2] << 8 | in[3]);
  h->stream_id = tn_get_be32(in + 4);
  h->length = tn_get_be32(in + 8);
  return TN_FRAME_HEADER_LEN;
}

const char *tn_frame_type_name(uint8_t type)
{
  switch (type) {
  case TN_FRAME_DATA: return "Data";
  case TN_FRAME_WINDOW_UPDATE: return "WindowUpdate";
  case TN_FRAME_PING: return "Ping";
  case TN_FRAME_GO_AWAY: return "GoAway";
  default: return "Unknown";
  }
}
