/* addr.c: formatting and parsing of socket-free addresses. */
#include "tunnel/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "tunnel/error.h"

char *tn_addr_format(const struct tn_addr *a, char *out, size_t out_len)
{
  char ip[INET6_ADDRSTRLEN];

  if (out_len == 0)
    return out;
  switch (a->family) {
  case TN_AF_INET:
    inet_ntop(AF_INET, a->ip, ip, sizeof(ip));
    snprintf(out, out_len, "%s:%u", ip, (unsigned)a->port);
    break;
  case TN_AF_INET6:
    inet_ntop(AF_INET6, a->ip, ip, sizeof(ip));
    snprintf(out, out_len, "[%s]:%u", ip, (unsigned)a->port);
    break;
  default:
    snprintf(out, out_len, "-");
    break;
  }
  return out;
}

int tn_addr_parse_ip(struct tn_addr *a, const char *text)
{
  uint8_t buf[16];

  if (inet_pton(AF_INET, text, buf) == 1) {
    memset(a->ip, 0, sizeof(a->ip));
    memcpy(a->ip, buf, 4);
    a->family = TN_AF_INET;
    return TN_OK;
  }
  if (inet_pton(AF_INET6, text, buf) == 1) {
    memcpy(a->ip, buf, 16);
    a->family = TN_AF_INET6;
    return TN_OK;
  }
  return TN_ERR_INVALID;
}

void tn_addr_from_sockaddr(struct tn_addr *a, const struct sockaddr *sa)
{
  static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

  memset(a, 0, sizeof(*a));
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
    a->family = TN_AF_INET;
    memcpy(a->ip, &in->sin_addr, 4);
    a->port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
    if (memcmp(&in6->sin6_addr, v4mapped, sizeof(v4mapped)) == 0) {
      a->family = TN_AF_INET;
      memcpy(a->ip, (const uint8_t *)&in6->sin6_addr + 12, 4);
    } else {
      a->family = TN_AF_INET6;
      memcpy(a->ip, &in6->sin6_addr, 16);
    }
    a->port = ntohs(in6->sin6_port);
  }
}

size_t tn_addr_ip_len(int family)
{
  return family == TN_AF_INET ? 4 : family == TN_AF_INET6 ? 16 : 0;
}

int tn_addr_equal(const struct tn_addr *a, const struct tn_addr *b)
{
  size_t n = tn_addr_ip_len(a->family);

  return a->family == b->family && a->port == b->port && memcmp(a->ip, b->ip, n) == 0;
}
