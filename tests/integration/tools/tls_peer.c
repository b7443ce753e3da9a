/* tls_peer.c: runs tn_tls over one real TCP connection (client or server) so scripts can test it against openssl. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tunnel/error.h"
#include "tunnel/tls.h"

#define PLAIN_CAP (1u << 20)

struct peer {
  int fd;
  tn_tls *t;
  int closed;     /* close_notify received */
  int eof;        /* transport EOF */
  uint8_t *plain;
  size_t plain_len;
};

static void usage(void)
{
  fprintf(stderr,
          "usage: tls_peer client --connect HOST:PORT --name NAME --ca F --cert F --key F [options]\n"
          "       tls_peer server --listen PORT --ca F --cert F --key F [options]\n"
          "       tls_peer hello --name NAME --ca F --cert F --key F --out FILE   (saves a ClientHello, for fuzz seeds)\n"
          "options: --send TEXT        write TEXT and a newline after the handshake\n"
          "         --expect TEXT      wait until the received data contains TEXT, then close\n"
          "         --echo-line        read one line, answer \"echo: LINE\", then close\n"
          "         --expect-error TXT the handshake must fail with an error text containing TXT\n"
          "         --timeout SEC      overall deadline (default 10)\n");
  exit(2);
}

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int flush_out(struct peer *p)
{
  const uint8_t *out;
  size_t n;
  while ((n = tn_tls_pending(p->t, &out)) > 0) {
    ssize_t w = send(p->fd, out, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    tn_tls_consumed(p->t, (size_t)w);
  }
  return 0;
}

/* Processes buffered ciphertext: the handshake first, then plaintext into p->plain. */
static int drain(struct peer *p)
{
  if (!tn_tls_is_established(p->t)) {
    int rc = tn_tls_handshake(p->t);
    if (rc == TN_ERR_TLS)
      return -1;
    if (rc != TN_OK)
      return 0;
  }
  for (;;) {
    if (p->closed || p->plain_len == PLAIN_CAP)
      return 0;
    long n = tn_tls_read(p->t, p->plain + p->plain_len, PLAIN_CAP - p->plain_len);
    if (n > 0) {
      p->plain_len += (size_t)n;
    } else if (n == 0) {
      p->closed = 1;
    } else if (n == TN_ERR_NEED_MORE) {
      return 0;
    } else {
      return -1;
    }
  }
}

/* One round: send what is pending, wait for input until the deadline, feed and drain it. */
static int step(struct peer *p, uint64_t deadline)
{
  if (flush_out(p) != 0)
    return -1;
  uint64_t now = now_ms();
  if (now >= deadline) {
    fprintf(stderr, "tls_peer: timed out\n");
    return -1;
  }
  if (p->eof)
    return drain(p) < 0 ? -1 : 1;
  struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
  int r = poll(&pfd, 1, (int)(deadline - now));
  if (r < 0)
    return errno == EINTR ? 0 : -1;
  if (r == 0)
    return 0;
  uint8_t buf[65536];
  ssize_t n = recv(p->fd, buf, sizeof buf, 0);
  if (n < 0)
    return errno == EINTR ? 0 : -1;
  if (n == 0) {
    p->eof = 1;
    tn_tls_eof(p->t);
    return drain(p) < 0 ? -1 : 1;
  }
  size_t off = 0;
  while (off < (size_t)n) {
    size_t k = tn_tls_feed(p->t, buf + off, (size_t)n - off);
    off += k;
    if (drain(p) < 0)
      return -1;
    if (k == 0 && (p->closed || p->plain_len == PLAIN_CAP))
      break;
  }
  return 0;
}

static int connect_to(const char *hostport)
{
  char host[256];
  const char *colon = strrchr(hostport, ':');
  if (colon == NULL || (size_t)(colon - hostport) >= sizeof host)
    return -1;
  memcpy(host, hostport, (size_t)(colon - hostport));
  host[colon - hostport] = '\0';
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
  if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
    return -1;
  int fd = -1;
  for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0)
      break;
    if (fd >= 0)
      close(fd);
    fd = -1;
  }
  freeaddrinfo(ai);
  return fd;
}

static int listen_accept(const char *port)
{
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 4) != 0) {
    perror("tls_peer: bind/listen");
    return -1;
  }
  printf("listening on %s\n", port);
  fflush(stdout);
  int fd = accept(ls, NULL, NULL);
  close(ls);
  return fd;
}

static int save_hello(const char *ca, const char *cert, const char *key, const char *name, const char *out_path)
{
  if (ca == NULL || cert == NULL || key == NULL || name == NULL || out_path == NULL)
    usage();
  char err[512];
  tn_tls_config *cfg;
  tn_tls *t;
  if (tn_tls_config_new(&cfg, TN_TLS_CLIENT, ca, cert, key, err, sizeof err) != TN_OK) {
    fprintf(stderr, "tls_peer: %s\n", err);
    return 4;
  }
  int rc = tn_tls_new(&t, cfg, name);
  tn_tls_config_unref(cfg);
  if (rc != TN_OK)
    return 1;
  tn_tls_handshake(t);
  const uint8_t *out;
  size_t n = tn_tls_pending(t, &out);
  FILE *f = fopen(out_path, "wb");
  rc = f != NULL && fwrite(out, 1, n, f) == n ? 0 : 1;
  if (f != NULL && fclose(f) != 0)
    rc = 1;
  tn_tls_del(t);
  return rc;
}

int main(int argc, char **argv)
{
  if (argc < 2)
    usage();
  int server = strcmp(argv[1], "server") == 0;
  int hello = strcmp(argv[1], "hello") == 0;
  if (!server && !hello && strcmp(argv[1], "client") != 0)
    usage();
  const char *ca = NULL, *cert = NULL, *key = NULL, *connect_arg = NULL, *listen_arg = NULL, *name = NULL;
  const char *send_text = NULL, *expect = NULL, *expect_error = NULL;
  const char *out_path = NULL;
  int echo_line = 0;
  int timeout = 10;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--echo-line") == 0) {
      echo_line = 1;
      continue;
    }
    if (v == NULL)
      usage();
    i++;
    if (strcmp(a, "--ca") == 0) ca = v;
    else if (strcmp(a, "--cert") == 0) cert = v;
    else if (strcmp(a, "--key") == 0) key = v;
    else if (strcmp(a, "--connect") == 0) connect_arg = v;
    else if (strcmp(a, "--listen") == 0) listen_arg = v;
    else if (strcmp(a, "--name") == 0) name = v;
    else if (strcmp(a, "--send") == 0) send_text = v;
    else if (strcmp(a, "--expect") == 0) expect = v;
    else if (strcmp(a, "--expect-error") == 0) expect_error = v;
    else if (strcmp(a, "--timeout") == 0) timeout = atoi(v);
    else if (strcmp(a, "--out") == 0) out_path = v;
    else usage();
  }
  if (hello)
    return save_hello(ca, cert, key, name, out_path);
  if (ca == NULL || cert == NULL || key == NULL || (server ? listen_arg == NULL : (connect_arg == NULL || name == NULL)))
    usage();

  char err[512];
  tn_tls_config *cfg;
  if (tn_tls_config_new(&cfg, server ? TN_TLS_SERVER : TN_TLS_CLIENT, ca, cert, key, err, sizeof err) != TN_OK) {
    fprintf(stderr, "tls_peer: %s\n", err);
    printf("config error: %s\n", err);
    return 4;
  }
  struct peer p = { .fd = -1 };
  p.plain = malloc(PLAIN_CAP);
  int rc = 0;
  p.fd = server ? listen_accept(listen_arg) : connect_to(connect_arg);
  int new_rc = p.fd >= 0 && p.plain != NULL ? tn_tls_new(&p.t, cfg, server ? NULL : name) : TN_ERR_ARG;
  tn_tls_config_unref(cfg);
  if (new_rc != TN_OK) {
    fprintf(stderr, "tls_peer: cannot %s\n", p.fd < 0 ? (server ? "accept" : "connect") : "create the TLS context");
    rc = 1;
    goto out;
  }

  uint64_t deadline = now_ms() + (uint64_t)timeout * 1000u;
  uint64_t hs_deadline = now_ms() + TN_TLS_HANDSHAKE_TIMEOUT_MS;
  if (hs_deadline > deadline)
    hs_deadline = deadline;
  for (;;) {
    int r = tn_tls_handshake(p.t);
    if (r == TN_OK)
      break;
    if (r != TN_ERR_TLS && step(&p, hs_deadline) >= 0 && !p.eof)
      continue;
    if (tn_tls_handshake(p.t) == TN_OK)
      break;
    flush_out(&p);
    const char *why = tn_tls_error_text(p.t);
    printf("handshake failed: %s\n", why[0] ? why : "timeout or transport error");
    fflush(stdout);
    rc = expect_error != NULL && strstr(why, expect_error) != NULL ? 0 : 3;
    goto out;
  }
  if (expect_error != NULL && !server && strcmp(tn_tls_version(p.t), "TLSv1.3") == 0) {
    /* TLS 1.3: the client's handshake ends before the server judges its certificate; a refusal is read next. */
    uint64_t judged = now_ms() + 2000 < deadline ? now_ms() + 2000 : deadline;
    int r = 0;
    while (r >= 0 && !p.closed && !p.eof && now_ms() < judged)
      r = step(&p, judged);
    const char *why = tn_tls_error_text(p.t);
    if (why[0] != '\0') {
      printf("handshake failed: %s\n", why);
      fflush(stdout);
      rc = strstr(why, expect_error) != NULL ? 0 : 3;
      goto out;
    }
  }
  if (expect_error != NULL) {
    printf("handshake succeeded but an error was expected: %s\n", expect_error);
    rc = 3;
    goto out;
  }
  struct tn_tls_peer id;
  tn_tls_peer_identity(p.t, &id);
  printf("handshake ok: peer cn=%s sha256=%s sans=%s suite=%s version=%s\n", id.cn, id.sha256_hex, id.sans,
         tn_tls_ciphersuite(p.t), tn_tls_version(p.t));
  fflush(stdout);
  if (drain(&p) < 0)
    goto failed;

  if (send_text != NULL) {
    char line[1024];
    snprintf(line, sizeof line, "%s\n", send_text);
    if (tn_tls_write(p.t, (const uint8_t *)line, strlen(line)) != (long)strlen(line))
      goto failed;
  }
  if (echo_line) {
    while (memchr(p.plain, '\n', p.plain_len) == NULL) {
      if (p.closed || p.eof || step(&p, deadline) < 0)
        goto failed;
    }
    size_t len = (size_t)((uint8_t *)memchr(p.plain, '\n', p.plain_len) - p.plain) + 1;
    printf("received: %.*s", (int)len, (const char *)p.plain);
    char reply[2048];
    int n = snprintf(reply, sizeof reply, "echo: %.*s", (int)len, (const char *)p.plain);
    if (tn_tls_write(p.t, (const uint8_t *)reply, (size_t)n) != n)
      goto failed;
  }
  if (expect != NULL) {
    for (;;) {
      p.plain[p.plain_len < PLAIN_CAP ? p.plain_len : PLAIN_CAP - 1] = '\0';
      if (strstr((const char *)p.plain, expect) != NULL)
        break;
      if (p.closed || p.eof || step(&p, deadline) < 0)
        goto failed;
    }
    printf("received expected: %s\n", expect);
  }
  tn_tls_close_notify(p.t);
  flush_out(&p);
  shutdown(p.fd, SHUT_WR);
  /* Give the peer's own close_notify a moment, so it sees a clean close both ways. */
  uint64_t close_deadline = now_ms() + 2000 < deadline ? now_ms() + 2000 : deadline;
  while (!p.closed && !p.eof && now_ms() < close_deadline && step(&p, close_deadline) >= 0)
    ;
  printf("closed%s\n", p.closed ? " (close_notify received)" : "");
  goto out;

failed:
  printf("connection failed: %s\n", tn_tls_error_text(p.t)[0] ? tn_tls_error_text(p.t) : "transport closed or timeout");
  rc = 1;
out:
  fflush(stdout);
  tn_tls_del(p.t);
  if (p.fd >= 0)
    close(p.fd);
  free(p.plain);
  return rc;
}
