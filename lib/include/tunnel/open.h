/* tunnel/open.h: the versioned stream-open header that starts every server-opened stream. */
#ifndef TUNNEL_OPEN_H
#define TUNNEL_OPEN_H

#include <stddef.h>
#include <stdint.h>

#include "tunnel/addr.h"

/*
 * Tells tunnelc what the stream is for: which backend to dial, who the internet
 * user is and where they connected, and which PROXY header (if any) to send the
 * backend. Byte layout in docs/PROTOCOL.md.
 */

#define TN_OPEN_VERSION 1
#define TN_OPEN_MAX_SERVICE 255   /* longest backend service name, bytes */

/* True for a byte a service name may hold (A-Z a-z 0-9 . _ -): the one definition for the wire and both configs. */
int tn_open_service_char(unsigned char ch);
#define TN_OPEN_MAX_LEN 512       /* no valid header is longer; the decoder refuses more */

enum tn_open_backend {
  TN_OPEN_BACKEND_PORT = 1,     /* a port on the client's loopback */
  TN_OPEN_BACKEND_SERVICE = 2   /* a name the client maps to an address */
};

struct tn_open {
  uint8_t backend_kind;         /* enum tn_open_backend */
  uint8_t proxy_version;        /* enum tn_proxy_version: 0 none, 1, 2 */
  uint16_t backend_port;        /* TN_OPEN_BACKEND_PORT */
  char service[TN_OPEN_MAX_SERVICE + 1]; /* TN_OPEN_BACKEND_SERVICE, NUL-terminated */
  struct tn_addr peer;          /* the internet user */
  struct tn_addr listener;      /* the public address and port it connected to */
};

/* Writes the header. Returns bytes written, or 0 if it does not fit or the input is invalid. */
size_t tn_open_encode(const struct tn_open *o, uint8_t *out, size_t out_len);

/* Returns header length consumed, TN_ERR_NEED_MORE for a valid prefix, or TN_ERR_INVALID / TN_ERR_UNSUPPORTED. */
int tn_open_decode(struct tn_open *o, const uint8_t *in, size_t in_len);

#endif
