/* tunnel/frame.h: the 12-byte yamux-compatible frame header, encoded and decoded without allocation. */
#ifndef TUNNEL_FRAME_H
#define TUNNEL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define TN_FRAME_HEADER_LEN 12
#define TN_FRAME_VERSION 0

enum tn_frame_type {
  TN_FRAME_DATA = 0,
  TN_FRAME_WINDOW_UPDATE = 1,
  TN_FRAME_PING = 2,
  TN_FRAME_GO_AWAY = 3
};

enum tn_frame_flag {
  TN_FLAG_SYN = 0x1,
  TN_FLAG_ACK = 0x2,
  TN_FLAG_FIN = 0x4,
  TN_FLAG_RST = 0x8
};

enum tn_go_away_code {
  TN_GO_AWAY_NORMAL = 0,
  TN_GO_AWAY_PROTOCOL_ERROR = 1,
  TN_GO_AWAY_INTERNAL_ERROR = 2
};

struct tn_frame_header {
  uint8_t version;
  uint8_t type;       /* enum tn_frame_type */
  uint16_t flags;     /* enum tn_frame_flag bits */
  uint32_t stream_id;
  uint32_t length;    /* Data: payload bytes; WindowUpdate: delta; Ping: opaque; GoAway: code */
};

/* Writes the 12 header bytes into out. Returns TN_FRAME_HEADER_LEN, or 0 when out_len is too small. */
size_t tn_frame_encode(const struct tn_frame_header *h, uint8_t *out, size_t out_len);

/*
 * Reads one header from in. Returns TN_FRAME_HEADER_LEN on success, TN_ERR_NEED_MORE when
 * fewer than 12 bytes are given, TN_ERR_INVALID for a version other than 0 or an unknown type.
 * Semantic checks (stream ids, flags per type, lengths) belong to tn_mux.
 */
int tn_frame_decode(struct tn_frame_header *h, const uint8_t *in, size_t in_len);

/* "Data", "WindowUpdate", "Ping", "GoAway" or "Unknown". */
const char *tn_frame_type_name(uint8_t type);

#endif
