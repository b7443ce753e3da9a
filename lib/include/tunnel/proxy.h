/* tunnel/proxy.h: HAProxy PROXY protocol v1 and v2 header encoders and a strict decoder. */
#ifndef TUNNEL_PROXY_H
#define TUNNEL_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "tunnel/addr.h"

/* The contract is haproxy's doc/proxy-protocol.txt. */

enum tn_proxy_version {
  TN_PROXY_NONE = 0,
  TN_PROXY_V1 = 1,
  TN_PROXY_V2 = 2
};

#define TN_PROXY_V1_MAX_LEN 107          /* longest v1 line, CRLF included */
#define TN_PROXY_V2_HEADER_LEN 16        /* signature, ver/cmd, family, length */
#define TN_PROXY_V2_TYPE_AUTHORITY 0x02  /* PP2_TYPE_AUTHORITY: the host name the client asked for */
#define TN_PROXY_AUTHORITY_MAX 253       /* longest authority encoded, and decoded into info->authority */
/* Longest header this library encodes: TCP6 and an authority TLV. */
#define TN_PROXY_V2_MAX_LEN (16 + 36 + 3 + TN_PROXY_AUTHORITY_MAX)

/* The 12-byte v2 signature "\r\n\r\n\0\r\nQUIT\n". */
extern const uint8_t tn_proxy_v2_signature[12];

/*
 * The connection the header describes: src is the remote peer (the internet user),
 * dst the address it connected to (the public listener). Both must have the same
 * family; TN_AF_UNSPEC encodes "PROXY UNKNOWN" (v1) or the LOCAL command (v2).
 */
struct tn_proxy_info {
  struct tn_addr src;
  struct tn_addr dst;
  uint8_t version;   /* set by the decoder: 1 or 2 */
  uint8_t local;     /* set by the decoder: no addresses (v1 UNKNOWN, v2 LOCAL, v2 family UNSPEC): use the real endpoints */
  /*
   * v2 only: the host name the visitor asked for (TLS server name or HTTP Host), sent as a PP2_TYPE_AUTHORITY TLV
   * the way haproxy sends the SNI; "" for none. The decoder fills it from the first such TLV of 1 to
   * TN_PROXY_AUTHORITY_MAX printable ASCII bytes (any other is skipped like an unknown TLV). v1 has no room for it.
   */
  char authority[TN_PROXY_AUTHORITY_MAX + 1];
};

/* Writes a v1 line ("PROXY TCP4 ... \r\n"). Returns bytes written, or 0 if it does not fit or the input is invalid. */
size_t tn_proxy_v1_encode(const struct tn_proxy_info *info, char *out, size_t out_len);

/*
 * Writes a v2 header (PROXY command, STREAM over INET/INET6, then the authority TLV when set; LOCAL for
 * TN_AF_UNSPEC). Returns bytes written or 0 (also for an authority longer than TN_PROXY_AUTHORITY_MAX).
 */
size_t tn_proxy_v2_encode(const struct tn_proxy_info *info, uint8_t *out, size_t out_len);

/* Dispatches on version (TN_PROXY_V1 or TN_PROXY_V2). Returns bytes written or 0. */
size_t tn_proxy_encode(int version, const struct tn_proxy_info *info, uint8_t *out, size_t out_len);

/*
 * tunnel only writes PROXY headers; the decoder is the strict reading of the spec that the
 * encoder's output is held to (test_proxy and fuzz_proxy decode what tn_proxy_encode writes,
 * for every header the decoder accepts).
 *
 * Strictly decodes a v1 or v2 header at the start of in. Returns the header length
 * (bytes to skip), TN_ERR_NEED_MORE for a valid prefix, or TN_ERR_INVALID. v2 TLVs are
 * skipped (the returned length covers them, and they must exactly fill the declared length);
 * v2 UDP and UNIX families are TN_ERR_UNSUPPORTED. A v2 header may declare up to 65535 bytes
 * after its 16-byte head, so a caller that cannot buffer that much should treat
 * TN_ERR_NEED_MORE at its own limit as invalid. On failure *info is left untouched.
 */
int tn_proxy_decode(struct tn_proxy_info *info, const uint8_t *in, size_t in_len);

#endif
