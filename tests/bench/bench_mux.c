/* bench_mux.c: two tn_mux sessions connected in memory; GB/s and frames/s beside a memcpy baseline. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tunnel/error.h"
#include "tunnel/mux.h"

/*
 * What this measures: the framing, flow-control and buffer work of the mux itself, with
 * the wire a memory copy. Each wire byte is copied once out of the sender's buffer, the
 * way a socket write would take it, so the memcpy baseline (same bytes, same chunking)
 * is the floor this can approach.
 */

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t received;

static int on_open(tn_mux *m, uint32_t id, void **user, void *su)
{
  (void)m; (void)id; (void)su;
  *user = NULL;
  return 0;
}

static void on_data(tn_mux *m, uint32_t id, const uint8_t *d, size_t len, void *u)
{
  (void)d; (void)u;
  received += len;
  tn_mux_stream_consumed(m, id, len);
}

static void on_close(tn_mux *m, uint32_t id, int reason, void *u)
{
  (void)m; (void)id; (void)reason; (void)u;
}

static const struct tn_mux_callbacks cbs = { on_open, NULL, on_data, NULL, NULL, on_close, NULL, NULL };

static uint8_t wire[256 * 1024];

static void move(tn_mux *from, tn_mux *to)
{
  const uint8_t *p;
  size_t n;
  while ((n = tn_mux_pending(from, &p)) > 0) {
    if (n > sizeof(wire))
      n = sizeof(wire);
    memcpy(wire, p, n);  /* stands for the socket write */
    tn_mux_consumed(from, n);
    tn_mux_feed(to, wire, n);
  }
}

static void run(size_t n_streams, uint64_t total)
{
  tn_mux *c, *s;
  uint32_t *ids = calloc(n_streams, sizeof(*ids));
  static uint8_t chunk[64 * 1024];
  uint64_t sent = 0;
  struct tn_mux_stats st;
  double t0, dt;

  tn_mux_new(&c, TN_MUX_CLIENT, &cbs, NULL, NULL, 0);
  tn_mux_new(&s, TN_MUX_SERVER, &cbs, NULL, NULL, 0);
  for (size_t i = 0; i < n_streams; i++)
    tn_mux_open_stream(c, NULL, &ids[i]);
  received = 0;
  t0 = now_s();
  while (received < total) {
    for (size_t i = 0; i < n_streams && sent < total; i++) {
      long n = tn_mux_stream_write(c, ids[i], chunk, sizeof(chunk));
      if (n > 0)
        sent += (uint64_t)n;
    }
    move(c, s);
    move(s, c);
  }
  dt = now_s() - t0;
  tn_mux_get_stats(c, &st);
  printf("mux     %2zu stream%s  %6.2f GB/s  %8.0f kframes/s  (%llu MiB)\n", n_streams,
         n_streams == 1 ? " " : "s", (double)total / dt / 1e9, (double)st.frames_out / dt / 1e3,
         (unsigned long long)(total >> 20));
  tn_mux_del(c);
  tn_mux_del(s);
  free(ids);
}

static void baseline(uint64_t total)
{
  static uint8_t src[256 * 1024], dst[256 * 1024];
  uint64_t done = 0;
  double t0 = now_s(), dt;
  while (done < total) {
    /* Two copies per byte, as the mux path does (into the output buffer, out to the wire). */
    memcpy(dst, src, sizeof(src));
    memcpy(src, dst, sizeof(src));
    done += sizeof(src);
  }
  dt = now_s() - t0;
  printf("memcpy  baseline    %6.2f GB/s  (two copies per byte, 256 KiB blocks)\n", (double)total / dt / 1e9);
}

int main(int argc, char **argv)
{
  uint64_t total = (argc > 1 ? strtoull(argv[1], NULL, 10) : 4096) << 20;
  baseline(total);
  run(1, total);
  run(64, total);
  return 0;
}
