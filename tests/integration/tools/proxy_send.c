/*
 * proxy_send: connects to HOST PORT, writes a PROXY header made by tn_proxy_encode, then
 * an HTTP/1.0 GET, and copies the response to stdout. It lets integration tests check the
 * encoder against real receivers (nginx, haproxy) without going through a tunnel.
 *
 *   proxy_send HOST PORT VERSION SRC_IP SRC_PORT DST_IP DST_PORT [PATH]
 *   VERSION is 1 or 2; SRC_IP "-" sends PROXY UNKNOWN (v1) or LOCAL (v2).
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tunnel/error.h"
#include "tunnel/proxy.h"

static int parse_port(const char *text, uint16_t *port)
{
  char *end;
  unsigned long v;

  errno = 0;
  v = strtoul(text, &end, 10);
  if (errno || *end || end == text || v > 65535)
    return -1;
  *port = (uint16_t)v;
  return 0;
}

static int parse_addr(const char *ip, const char *port, struct tn_addr *a)
{
  memset(a, 0, sizeof(*a));
  if (strcmp(ip, "-") == 0)
    return 0;
  if (tn_addr_parse_ip(a, ip) != TN_OK || parse_port(port, &a->port) != 0)
    return -1;
  return 0;
}

static int dial(const char *host, const char *port)
{
  struct addrinfo hints, *res, *ai;
  int fd = -1;
  int r;

  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
    fprintf(stderr, "proxy_send: %s %s: %s\n", host, port, gai_strerror(r));
    return -1;
  }
  for (ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
      continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
      break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0)
    fprintf(stderr, "proxy_send: connect %s:%s: %s\n", host, port, strerror(errno));
  return fd;
}

static int write_all(int fd, const void *buf, size_t len)
{
  const uint8_t *p = buf;
  ssize_t n;

  while (len > 0) {
    n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int main(int argc, char **argv)
{
  uint8_t header[TN_PROXY_V1_MAX_LEN];
  char request[512];
  char buf[4096];
  struct tn_proxy_info info;
  const char *path = argc > 8 ? argv[8] : "/";
  size_t header_len;
  ssize_t n;
  int version;
  int fd;
  int len;

  if (argc < 8 || argc > 9) {
    fprintf(stderr, "usage: proxy_send HOST PORT VERSION SRC_IP SRC_PORT DST_IP DST_PORT [PATH]\n");
    return 2;
  }
  version = atoi(argv[3]);
  memset(&info, 0, sizeof(info));
  if (parse_addr(argv[4], argv[5], &info.src) != 0 || parse_addr(argv[6], argv[7], &info.dst) != 0) {
    fprintf(stderr, "proxy_send: bad address or port in %s %s %s %s\n", argv[4], argv[5], argv[6], argv[7]);
    return 2;
  }
  header_len = tn_proxy_encode(version, &info, header, sizeof(header));
  if (header_len == 0) {
    fprintf(stderr, "proxy_send: cannot encode a v%d header for these addresses (families must match)\n", version);
    return 2;
  }
  len = snprintf(request, sizeof(request), "GET %s HTTP/1.0\r\nHost: proxy-send\r\n\r\n", path);
  if (len < 0 || (size_t)len >= sizeof(request)) {
    fprintf(stderr, "proxy_send: path too long\n");
    return 2;
  }
  if ((fd = dial(argv[1], argv[2])) < 0)
    return 1;
  /* Header and request in separate writes: receivers must not depend on one segment. */
  if (write_all(fd, header, header_len) != 0 || write_all(fd, request, (size_t)len) != 0) {
    fprintf(stderr, "proxy_send: write: %s\n", strerror(errno));
    close(fd);
    return 1;
  }
  while ((n = read(fd, buf, sizeof(buf))) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      fprintf(stderr, "proxy_send: read: %s\n", strerror(errno));
      close(fd);
      return 1;
    }
    fwrite(buf, 1, (size_t)n, stdout);
  }
  close(fd);
  return fflush(stdout) == 0 ? 0 : 1;
}
