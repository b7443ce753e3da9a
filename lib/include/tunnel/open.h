/* tunnel/open.h: the versioned stream-open header that starts every server-opened stream. */
#ifndef TUNNEL_OPEN_H
#define TUNNEL_OPEN_H

#include <stddef.h>
#include <stdint.h>

#include "tunnel/addr.h"
#include "tunnel/proxy.h"

/*
 * Tells tunnelc what the stream is for: which backend to dial, who the internet
 * user is and where they connected, and which PROXY header (if any) to send the
 * backend. Byte layout in docs/PROTOCOL.md.
 */

/*
 * Version 1 everywhere; version 2 adds the host name the visitor asked for (TLS server name or HTTP Host, on a
 * port shared by hostname) and goes only to a tunnelc that offered TN_OPEN_ALPN_V2 in its TLS handshake.
 */
#define TN_OPEN_VERSION 1
#define TN_OPEN_VERSION_AUTHORITY 2
#define TN_OPEN_ALPN_V2 "tunnel/2"
#define TN_OPEN_MAX_SERVICE 255   /* longest backend service name, bytes */
#define TN_OPEN_MAX_AUTHORITY TN_PROXY_AUTHORITY_MAX /* tunnelc passes it on in the PROXY v2 header */

/* True for a byte a service name may hold (A-Z a-z 0-9 . _ -): the one definition for the wire and both configs. */
int tn_open_service_char(unsigned char ch);
/* True for a byte an authority may hold: what tn_sni leaves in a name (a-z 0-9 . -). */
int tn_open_authority_char(unsigned char ch);
#define TN_OPEN_MAX_LEN 556       /* the longest valid header (version 2); the decoder refuses more */

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
  /* Version 2: the host name the visitor asked for, lower case, NUL-terminated; "" for none (version 1). */
  char authority[TN_OPEN_MAX_AUTHORITY + 1];
};

/*
 * Writes the header: version 2 when authority is set (only for a peer that negotiated TN_OPEN_ALPN_V2), else 1.
 * Returns bytes written, or 0 if it does not fit or the input is invalid.
 */
size_t tn_open_encode(const struct tn_open *o, uint8_t *out, size_t out_len);

/*
 * Decodes version 1 or 2. Returns header length consumed, TN_ERR_NEED_MORE for a valid prefix, or
 * TN_ERR_INVALID / TN_ERR_UNSUPPORTED (a later version).
 */
int tn_open_decode(struct tn_open *o, const uint8_t *in, size_t in_len);

#endif
