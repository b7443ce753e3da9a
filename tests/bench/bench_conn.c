/*
 * bench_conn.c: connection-level probes for tests/bench/run.sh.
 *
 *   bench_conn ttfb HOST PORT PATH COUNT
 *       COUNT sequential new connections, each sending one GET with "Connection: close"; the time from starting
 *       connect() to the first response byte is recorded. Prints one JSON object with p50/p99/mean in ms.
 *   bench_conn idle HOST PORT COUNT
 *       opens COUNT TCP connections (at most 256 connects in flight, so no accept queue overflows), sends nothing,
 *       prints "connected N" once all are up and holds them until killed.
 *
 * C rather than a curl loop: a process start per sample costs more than the latency being measured.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONN_INFLIGHT 256
#define CONN_DEADLINE_S 60.0

static double conn_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void conn_die(const char *what)
{
  fprintf(stderr, "bench_conn: %s: %s\n", what, strerror(errno));
  exit(1);
}

static struct sockaddr_in conn_addr(const char *host, const char *port)
{
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)atoi(port));
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "bench_conn: %s: not an IPv4 address\n", host);
    exit(2);
  }
  return sa;
}

static int conn_cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* One GET on a fresh connection; returns the seconds to the first response byte, or a negative value. */
static double conn_one_ttfb(const struct sockaddr_in *sa, const char *req, size_t req_len)
{
  char buf[65536];
  double t0 = conn_now(), first = -1.0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  struct timeval tv = { 10, 0 };

  if (fd < 0)
    return -1.0;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 || send(fd, req, req_len, 0) != (ssize_t)req_len) {
    close(fd);
    return -1.0;
  }
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    if (first < 0)
      first = conn_now() - t0;
  }
  close(fd);
  return first;
}

static int conn_ttfb(const char *host, const char *port, const char *path, int count)
{
  struct sockaddr_in sa = conn_addr(host, port);
  char req[512];
  int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n", path);
  double *t = calloc((size_t)count, sizeof(*t));
  double sum = 0;
  int ok = 0, failed = 0;

  if (t == NULL)
    conn_die("calloc");
  for (int i = 0; i < count; i++) {
    double s = conn_one_ttfb(&sa, req, (size_t)len);
    if (s < 0) {
      failed++;
      continue;
    }
    t[ok++] = s;
    sum += s;
  }
  if (ok == 0) {
    printf("{\"count\": 0, \"failed\": %d}\n", failed);
    free(t);
    return 1;
  }
  qsort(t, (size_t)ok, sizeof(*t), conn_cmp_double);
  printf("{\"count\": %d, \"failed\": %d, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"mean_ms\": %.3f}\n", ok, failed,
         1e3 * t[(ok - 1) / 2], 1e3 * t[(int)((ok - 1) * 0.99)], 1e3 * sum / ok);
  free(t);
  return 0;
}

static volatile sig_atomic_t conn_stop;

static void conn_on_signal(int sig)
{
  (void)sig;
  conn_stop = 1;
}

static int conn_idle(const char *host, const char *port, int count)
{
  struct sockaddr_in sa = conn_addr(host, port);
  int *fds = calloc((size_t)count, sizeof(*fds));
  int inflight[CONN_INFLIGHT];
  struct pollfd pf[CONN_INFLIGHT];
  int opened = 0, n_inflight = 0, done = 0, failed = 0;
  double deadline = conn_now() + CONN_DEADLINE_S;
  struct rlimit rl;

  if (fds == NULL)
    conn_die("calloc");
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)count + 16) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  while (done + failed < count && conn_now() < deadline) {
    int kept = 0;

    /* A bounded number of connects in flight, so the listener's accept queue never overflows into SYN retries. */
    while (opened < count && n_inflight < CONN_INFLIGHT) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (fd < 0)
        conn_die("socket (raise ulimit -n)");
      if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS)
        conn_die("connect");
      fds[opened] = fd;
      inflight[n_inflight++] = opened++;
    }
    for (int k = 0; k < n_inflight; k++) {
      pf[k].fd = fds[inflight[k]];
      pf[k].events = POLLOUT;
      pf[k].revents = 0;
    }
    if (poll(pf, (nfds_t)n_inflight, 1000) < 0 && errno != EINTR)
      conn_die("poll");
    for (int k = 0; k < n_inflight; k++) {
      int err = 0;
      socklen_t el = sizeof(err);

      if (pf[k].revents == 0) {
        inflight[kept++] = inflight[k];
        continue;
      }
      getsockopt(pf[k].fd, SOL_SOCKET, SO_ERROR, &err, &el);
      if (err != 0)
        failed++;
      else
        done++;
    }
    n_inflight = kept;
  }
  if (done + failed < count)
    fprintf(stderr, "bench_conn: only %d of %d connections up after %.0f s\n", done, count, CONN_DEADLINE_S);
  printf("connected %d failed %d\n", done, failed);
  fflush(stdout);
  signal(SIGTERM, conn_on_signal);
  signal(SIGINT, conn_on_signal);
  while (!conn_stop)
    pause();
  for (int i = 0; i < opened; i++)
    close(fds[i]);
  free(fds);
  return failed == 0 && done == count ? 0 : 1;
}

int main(int argc, char **argv)
{
  signal(SIGPIPE, SIG_IGN);
  if (argc == 6 && strcmp(argv[1], "ttfb") == 0)
    return conn_ttfb(argv[2], argv[3], argv[4], atoi(argv[5]));
  if (argc == 5 && strcmp(argv[1], "idle") == 0)
    return conn_idle(argv[2], argv[3], atoi(argv[4]));
  fprintf(stderr, "usage: bench_conn ttfb HOST PORT PATH COUNT | bench_conn idle HOST PORT COUNT\n");
  return 2;
}
