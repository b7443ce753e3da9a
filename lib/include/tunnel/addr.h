/* tunnel/addr.h: a socket-free IPv4/IPv6 address and port, shared by the stream-open header and PROXY codecs. */
#ifndef TUNNEL_ADDR_H
#define TUNNEL_ADDR_H

#include <stddef.h>
#include <stdint.h>

enum tn_af {
  TN_AF_UNSPEC = 0, /* no address (PROXY v2 LOCAL, "UNKNOWN" in v1) */
  TN_AF_INET = 4,
  TN_AF_INET6 = 6
};

struct tn_addr {
  uint8_t family;   /* enum tn_af */
  uint8_t ip[16];   /* network byte order; IPv4 uses the first 4 bytes */
  uint16_t port;    /* host byte order */
};

/* Longest text tn_addr_format writes, including "[", "]:", port and NUL. */
#define TN_ADDR_STRLEN 48

/* Writes "1.2.3.4:80" or "[::1]:80" (or "-" for TN_AF_UNSPEC); returns out. */
char *tn_addr_format(const struct tn_addr *a, char *out, size_t out_len);

/* Parses an IP literal (no port) into a; keeps a->port. Returns TN_OK or TN_ERR_INVALID. */
int tn_addr_parse_ip(struct tn_addr *a, const char *text);

struct sockaddr;
/*
 * Converts a sockaddr_in / sockaddr_in6 (others give TN_AF_UNSPEC). An IPv4-mapped IPv6
 * address (what a dual-stack socket shows for IPv4 peers) becomes plain IPv4.
 */
void tn_addr_from_sockaddr(struct tn_addr *a, const struct sockaddr *sa);

/* True when both have the same family, address and port. */
int tn_addr_equal(const struct tn_addr *a, const struct tn_addr *b);
/* Bytes of ip in use for family: 4, 16, or 0 for an unknown family. */
size_t tn_addr_ip_len(int family);

#endif
