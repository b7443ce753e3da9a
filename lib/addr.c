/* addr.c: formatting and parsing of socket-free addresses. */
#include "tunnel/addr.h"

#include <arpa/inet.h>
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

int tn_addr_equal(const struct tn_addr *a, const struct tn_addr *b)
{
  size_t n = a->family == TN_AF_INET ? 4 : a->family == TN_AF_INET6 ? 16 : 0;

  return a->family == b->family && a->port == b->port && memcmp(a->ip, b->ip, n) == 0;
}
