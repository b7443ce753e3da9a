/* tunnel/sni.h: the host name a new connection asks for, read from its first bytes without consuming them. */
#ifndef TUNNEL_SNI_H
#define TUNNEL_SNI_H

#include <stddef.h>
#include <stdint.h>

/*
 * Hostname routing reads a connection's first bytes, decides the tunnel, then forwards those same bytes unchanged:
 * the server never terminates TLS. These are strict, allocation-free decoders in the manner of tn_proxy_decode:
 * each returns TN_OK once the whole ClientHello or request head is there, TN_ERR_NEED_MORE for a valid prefix, and
 * TN_ERR_INVALID for anything else. A caller that cannot buffer more (its own bound: tunneld's is 64 KiB) treats
 * TN_ERR_NEED_MORE at that bound as a refusal.
 */

#define TN_SNI_NAME_MAX 253       /* a DNS name in text form, without the trailing dot */
/* Largest ClientHello handshake message accepted: far above real ones (post-quantum key shares are ~1.2 KiB). */
#define TN_SNI_HELLO_MAX 65536

enum tn_sni_kind {
  TN_SNI_UNKNOWN = 0,
  TN_SNI_TLS = 1,   /* a TLS ClientHello: the name is its server_name */
  TN_SNI_HTTP = 2   /* an HTTP/1.x request: the name is its Host, port removed */
};

/*
 * The server_name of the TLS ClientHello at the start of in, which may span several records and arrive in any
 * pieces. On TN_OK name (TN_SNI_NAME_MAX + 1 bytes) holds the host_name in lower case, or "" when the hello has
 * no server_name extension. Invalid: not a handshake record, not a ClientHello, any length that disagrees with
 * what encloses it, a repeated extension, a server_name list without exactly one host_name, or a name that is
 * not letters, digits, '-' and '.' in labels of 1 to 63 bytes (IP literals are not names: RFC 6066 §3).
 */
int tn_sni_tls(const uint8_t *in, size_t len, char *name);

/*
 * The Host of the HTTP/1.x request head at the start of in (request line and headers up to the empty line,
 * CRLF line ends). On TN_OK name holds the host in lower case without its port, "" when an HTTP/1.0 request has
 * no Host header or a Host is empty. Invalid: a malformed request line or header, two Host headers, an HTTP/1.1
 * request without Host, a Host that is not a name (letters, digits, '-', '.'), an IPv4 address or a bracketed
 * IPv6 address with an optional numeric port.
 */
int tn_sni_http(const uint8_t *in, size_t len, char *name);

/*
 * Tells by the first byte which of the two a connection speaks (TN_ERR_NEED_MORE when len is 0, TN_ERR_INVALID
 * for neither), then decodes it. *kind is set from that first byte whatever the result (TN_SNI_UNKNOWN for
 * neither or none), so a caller can refuse an unreadable visitor in its own protocol.
 */
int tn_sni_peek(const uint8_t *in, size_t len, enum tn_sni_kind *kind, char *name);

/*
 * Hostname globs (ListenHostnameGlob): "*" alone, an exact name, or "*." and a name (one leftmost label of any
 * name: "*.example.net" matches "a.example.net", not "example.net" nor "a.b.example.net"). Names compare case-
 * insensitively and are A-labels (IDNs in punycode). tn_sni_glob_valid is TN_OK or TN_ERR_INVALID.
 * tn_sni_glob_match ranks how specifically glob matches name (as tn_sni_* return it, lower case):
 * TN_SNI_NO_MATCH, TN_SNI_MATCH_ANY for "*", TN_SNI_MATCH_WILDCARD, TN_SNI_MATCH_EXACT; the highest wins.
 */
enum tn_sni_match {
  TN_SNI_NO_MATCH = 0,
  TN_SNI_MATCH_ANY = 1,
  TN_SNI_MATCH_WILDCARD = 2,
  TN_SNI_MATCH_EXACT = 3
};
int tn_sni_glob_valid(const char *glob);
enum tn_sni_match tn_sni_glob_match(const char *glob, const char *name);

#endif
