/*
 * mux_peer: tn_mux over one loopback TCP connection, driven by a plain poll()
 * loop, for the yamux interop test (tests/integration/yamux_interop.sh). Its
 * counterpart is tests/interop/yamux_peer (hashicorp/yamux); both speak the
 * per-stream protocol described there:
 *
 *   request header  op u8 | seed u64 BE | size u64 BE
 *   'E' echo: opener sends size bytes of splitmix64(seed) then FIN; acceptor
 *       checks and echoes them, FIN once the echo is out; opener checks echo.
 *   'R' the acceptor resets the stream as soon as it has the header.
 *   'X' the opener resets the stream after writing; the acceptor must see RST.
 *
 * The connecting side is the mux client. It ends the session (GoAway, then
 * TCP close) once its own checks are done and the streams it expects from the
 * peer completed; the listening side succeeds only if everything it expected
 * happened before that close. Exit status 0 only when every check passed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "tunnel/error.h"
#include "tunnel/mux.h"

#define HDR_LEN 17
#define CHUNK_MAX (64u * 1024u)
#define READ_BUF (256u * 1024u)
#define STALL_MS 10000u

enum kind {
  K_ECHO_OUT,       /* 'E' opened here */
  K_RESET_REQ_OUT,  /* 'R' opened here: the peer must reset it */
  K_RESET_SELF_OUT, /* 'X' opened here: this side resets it */
  K_ACCEPTED        /* opened by the peer; op known once its header arrived */
};

struct gen {
  uint64_t state;
  uint8_t buf[8];
  unsigned avail;
};

struct stream {
  struct peer *peer;
  enum kind kind;
  int index;
  uint32_t id;
  uint64_t seed;
  uint64_t size;

  /* sending (opener) */
  uint8_t hdr[HDR_LEN];
  size_t hdr_sent;
  struct gen tx_gen;
  uint64_t chunk_rng;
  uint8_t chunk[CHUNK_MAX];
  size_t chunk_len, chunk_off;
  uint64_t tx_bytes;
  mbedtls_sha256_context tx_sha;
  int pumping, pump_again;

  /* receiving */
  uint8_t in_hdr[HDR_LEN];
  size_t in_hdr_len;
  int op;
  struct gen rx_gen;
  uint64_t rx_bytes;
  int64_t mismatch_at;
  mbedtls_sha256_context rx_sha;

  /* echo queue (acceptor): received bytes not yet accepted by tn_mux_stream_write */
  uint8_t *q;
  size_t q_head, q_len, q_cap;

  int fin_sent, fin_seen, closed, close_reason, ok;
};

struct peer {
  const char *name;
  int fd;
  int client;
  tn_mux *mux;
  uint64_t now;
  uint64_t start_ms, own_done_ms, last_progress_ms;

  /* plan */
  int open_echo, open_reset_req, open_reset_self;
  int accept_echo, accept_reset_req, accept_reset_self;
  uint64_t size;
  uint64_t seed;
  int pings;

  /* results */
  struct stream **streams;
  size_t nstreams, cap_streams;
  int echo_ok, reset_req_ok, reset_self_ok;
  int acc_echo_ok, acc_reset_req_ok, acc_reset_self_ok;
  int pings_sent, pings_answered;
  uint64_t rtt_sum_ms;
  int go_away_seen;
  uint32_t go_away_code;
  uint64_t echo_tx, echo_rx, acc_bytes;
  int failures;
};

static void failf(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void failf(struct peer *p, const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "%s: FAIL: ", p->name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  p->failures++;
}

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* splitmix64, the same sequence as the Go peer's. */
static uint64_t gen_next(struct gen *g)
{
  uint64_t z;
  g->state += 0x9E3779B97F4A7C15ull;
  z = g->state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void gen_init(struct gen *g, uint64_t seed)
{
  memset(g, 0, sizeof(*g));
  g->state = seed;
}

static uint8_t gen_byte(struct gen *g)
{
  if (g->avail == 0) {
    uint64_t v = gen_next(g);
    for (unsigned i = 0; i < 8; i++)
      g->buf[i] = (uint8_t)(v >> (8 * i));
    g->avail = 8;
  }
  return g->buf[8 - g->avail--];
}

/* Word at a time: the checks run over every byte moved, under ASan. */
static void gen_fill(struct gen *g, uint8_t *out, size_t n)
{
  while (n > 0 && g->avail > 0) {
    *out++ = g->buf[8 - g->avail--];
    n--;
  }
  while (n >= 8) {
    uint64_t v = gen_next(g);
    for (unsigned i = 0; i < 8; i++)
      out[i] = (uint8_t)(v >> (8 * i));
    out += 8;
    n -= 8;
  }
  while (n > 0) {
    *out++ = gen_byte(g);
    n--;
  }
}

static void put_be64(uint8_t *p, uint64_t v)
{
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}

static uint64_t get_be64(const uint8_t *p)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

static const char *reason_name(int reason)
{
  switch (reason) {
  case TN_MUX_CLOSE_NORMAL: return "normal";
  case TN_MUX_CLOSE_RESET_LOCAL: return "reset-local";
  case TN_MUX_CLOSE_RESET_REMOTE: return "reset-remote";
  case TN_MUX_CLOSE_SESSION: return "session";
  case TN_MUX_CLOSE_OPEN_TIMEOUT: return "open-timeout";
  default: return "?";
  }
}

static const char *kind_name(const struct stream *s)
{
  switch (s->kind) {
  case K_ECHO_OUT: return "echo-out";
  case K_RESET_REQ_OUT: return "reset-req-out";
  case K_RESET_SELF_OUT: return "reset-self-out";
  default: break;
  }
  switch (s->op) {
  case 'E': return "accepted-echo";
  case 'R': return "accepted-reset-req";
  case 'X': return "accepted-reset-self";
  default: return "accepted-unknown";
  }
}

static struct stream *stream_new(struct peer *p, enum kind kind)
{
  struct stream *s = calloc(1, sizeof(*s));
  if (s == NULL || (p->nstreams == p->cap_streams &&
                    (p->streams = realloc(p->streams, (p->cap_streams = p->cap_streams * 2 + 16) *
                                                          sizeof(*p->streams))) == NULL)) {
    fprintf(stderr, "%s: out of memory\n", p->name);
    exit(1);
  }
  p->streams[p->nstreams++] = s;
  s->peer = p;
  s->kind = kind;
  s->mismatch_at = -1;
  mbedtls_sha256_init(&s->tx_sha);
  mbedtls_sha256_init(&s->rx_sha);
  mbedtls_sha256_starts_ret(&s->tx_sha, 0);
  mbedtls_sha256_starts_ret(&s->rx_sha, 0);
  return s;
}

static void stream_free(struct stream *s)
{
  mbedtls_sha256_free(&s->tx_sha);
  mbedtls_sha256_free(&s->rx_sha);
  free(s->q);
  free(s);
}

static int is_own_parity(const struct peer *p, uint32_t id)
{
  return (id % 2 == 1) == (p->client != 0);
}

/* Checks received payload against the announced sequence; remembers the first bad offset. */
static void check_rx(struct stream *s, const uint8_t *data, size_t len)
{
  static uint8_t want[CHUNK_MAX];
  mbedtls_sha256_update_ret(&s->rx_sha, data, len);
  while (len > 0) {
    size_t n = len < sizeof(want) ? len : sizeof(want);
    gen_fill(&s->rx_gen, want, n);
    if (s->mismatch_at < 0 && memcmp(want, data, n) != 0) {
      size_t i = 0;
      while (want[i] == data[i])
        i++;
      s->mismatch_at = (int64_t)(s->rx_bytes + i);
    }
    s->rx_bytes += n;
    data += n;
    len -= n;
  }
}

/* Refills the send chunk with a varied size so the mux sees writes of every length. */
static void next_chunk(struct stream *s)
{
  uint64_t left = s->size - s->tx_bytes;
  size_t n;
  s->chunk_rng = s->chunk_rng * 6364136223846793005ull + 1442695040888963407ull;
  n = (size_t)(s->chunk_rng >> 33) % CHUNK_MAX + 1;
  if ((s->chunk_rng >> 20) % 4 == 0)
    n = n % 64 + 1;
  if (n > left)
    n = (size_t)left;
  gen_fill(&s->tx_gen, s->chunk, n);
  mbedtls_sha256_update_ret(&s->tx_sha, s->chunk, n);
  s->chunk_len = n;
  s->chunk_off = 0;
  s->tx_bytes += n;
}

/*
 * Writes what the window allows; returns 1 when everything (and FIN, if asked)
 * went out, 0 when waiting for on_stream_writable, -1 on error.
 */
static int pump_out(struct stream *s, int with_fin)
{
  struct peer *p = s->peer;
  for (;;) {
    const uint8_t *buf;
    size_t want;
    long n;
    if (s->closed)
      return -1;
    if (s->hdr_sent < HDR_LEN) {
      buf = s->hdr + s->hdr_sent;
      want = HDR_LEN - s->hdr_sent;
    } else {
      if (s->chunk_off == s->chunk_len) {
        if (s->tx_bytes == s->size) {
          if (with_fin && !s->fin_sent) {
            /* Set first: when the peer's FIN is already in, on_stream_close runs inside this call. */
            s->fin_sent = 1;
            int rc = tn_mux_stream_fin(p->mux, s->id);
            if (rc != TN_OK) {
              failf(p, "stream %" PRIu32 " (%s): tn_mux_stream_fin: %s", s->id, kind_name(s), tn_strerror(rc));
              return -1;
            }
          }
          return 1;
        }
        next_chunk(s);
      }
      buf = s->chunk + s->chunk_off;
      want = s->chunk_len - s->chunk_off;
    }
    n = tn_mux_stream_write(p->mux, s->id, buf, want);
    if (n < 0) {
      if (s->closed)
        return -1;
      failf(p, "stream %" PRIu32 " (%s): tn_mux_stream_write after %" PRIu64 " bytes: %s", s->id, kind_name(s),
            s->tx_bytes, tn_strerror((int)n));
      return -1;
    }
    if ((size_t)n > want) {
      failf(p, "stream %" PRIu32 ": tn_mux_stream_write accepted %ld of %zu bytes", s->id, n, want);
      return -1;
    }
    if (n > 0)
      p->last_progress_ms = p->now;
    if (s->hdr_sent < HDR_LEN)
      s->hdr_sent += (size_t)n;
    else
      s->chunk_off += (size_t)n;
    if ((size_t)n < want)
      return 0;
  }
}

/* Guards against the mux calling on_stream_writable from inside our own write. */
static void pump(struct stream *s)
{
  if (s->pumping) {
    s->pump_again = 1;
    return;
  }
  s->pumping = 1;
  do {
    s->pump_again = 0;
    if (s->kind == K_ECHO_OUT)
      pump_out(s, 1);
    else if (s->kind == K_RESET_REQ_OUT)
      pump_out(s, 0);
  } while (s->pump_again && !s->closed);
  s->pumping = 0;
}

/* Acceptor echo: hand queued bytes to the mux and return to the window only what it took. */
static void echo_drain(struct stream *s)
{
  struct peer *p = s->peer;
  while (s->q_len > 0 && !s->closed) {
    long n = tn_mux_stream_write(p->mux, s->id, s->q + s->q_head, s->q_len);
    if (n < 0) {
      failf(p, "stream %" PRIu32 " (%s): echo write with %zu bytes queued: %s", s->id, kind_name(s), s->q_len,
            tn_strerror((int)n));
      return;
    }
    if (n == 0)
      return;
    s->q_head += (size_t)n;
    s->q_len -= (size_t)n;
    p->last_progress_ms = p->now;
    int rc = tn_mux_stream_consumed(p->mux, s->id, (size_t)n);
    if (rc != TN_OK && !s->closed)
      failf(p, "stream %" PRIu32 ": tn_mux_stream_consumed(%ld): %s", s->id, n, tn_strerror(rc));
  }
  if (s->q_len == 0)
    s->q_head = 0;
  if (s->q_len == 0 && s->fin_seen && !s->fin_sent && !s->closed) {
    /* Set first: on_stream_close runs inside this call, the peer's FIN being in already. */
    s->fin_sent = 1;
    int rc = tn_mux_stream_fin(p->mux, s->id);
    if (rc != TN_OK)
      failf(p, "stream %" PRIu32 " (%s): tn_mux_stream_fin: %s", s->id, kind_name(s), tn_strerror(rc));
  }
}

static void echo_enqueue(struct stream *s, const uint8_t *data, size_t len)
{
  if (s->q_head > 0 && s->q_head + s->q_len + len > s->q_cap) {
    memmove(s->q, s->q + s->q_head, s->q_len);
    s->q_head = 0;
  }
  if (s->q_len + len > s->q_cap) {
    size_t cap = s->q_cap ? s->q_cap : 64 * 1024;
    while (cap < s->q_len + len)
      cap *= 2;
    s->q = realloc(s->q, cap);
    if (s->q == NULL) {
      fprintf(stderr, "%s: out of memory\n", s->peer->name);
      exit(1);
    }
    s->q_cap = cap;
  }
  memcpy(s->q + s->q_head + s->q_len, data, len);
  s->q_len += len;
}

/* ---- callbacks ---- */

static int cb_stream_open(tn_mux *mux, uint32_t id, void **stream_user, void *session_user)
{
  struct peer *p = session_user;
  struct stream *s = stream_new(p, K_ACCEPTED);
  s->id = id;
  if (is_own_parity(p, id))
    failf(p, "the peer opened stream %" PRIu32 ", an id of this side's parity", id);
  for (size_t i = 0; i + 1 < p->nstreams; i++) {
    if (p->streams[i]->id == id && !p->streams[i]->closed)
      failf(p, "stream %" PRIu32 " announced while a stream with that id is still open", id);
  }
  *stream_user = s;
  return 0;
}

static void cb_stream_ack(tn_mux *mux, uint32_t id, void *stream_user)
{
  struct stream *s = stream_user;
  if (s != NULL && s->kind == K_ACCEPTED)
    failf(s->peer, "on_stream_ack for stream %" PRIu32 " which the peer opened", id);
}

static void accepted_data(struct stream *s, const uint8_t *data, size_t len)
{
  struct peer *p = s->peer;
  size_t used = 0;
  if (s->in_hdr_len < HDR_LEN) {
    used = HDR_LEN - s->in_hdr_len;
    if (used > len)
      used = len;
    memcpy(s->in_hdr + s->in_hdr_len, data, used);
    s->in_hdr_len += used;
    tn_mux_stream_consumed(p->mux, s->id, used);
    if (s->in_hdr_len < HDR_LEN)
      return;
    s->op = s->in_hdr[0];
    s->seed = get_be64(s->in_hdr + 1);
    s->size = get_be64(s->in_hdr + 9);
    gen_init(&s->rx_gen, s->seed);
    if (s->op == 'R') {
      /* Reset from inside on_stream_data: the session must cope with the stream vanishing here. */
      int rc = tn_mux_stream_reset(p->mux, s->id);
      if (rc != TN_OK)
        failf(p, "stream %" PRIu32 ": tn_mux_stream_reset: %s", s->id, tn_strerror(rc));
      if (!s->closed)
        failf(p, "stream %" PRIu32 ": tn_mux_stream_reset returned before on_stream_close", s->id);
      return;
    }
    if (s->op != 'E' && s->op != 'X') {
      failf(p, "stream %" PRIu32 ": unknown request op 0x%02x", s->id, s->op);
      tn_mux_stream_reset(p->mux, s->id);
      return;
    }
    data += used;
    len -= used;
    if (len == 0)
      return;
  }
  if (s->op == 'X') {
    s->rx_bytes += len;
    tn_mux_stream_consumed(p->mux, s->id, len);
    return;
  }
  /* 'E' */
  if (s->rx_bytes + len > s->size)
    failf(p, "stream %" PRIu32 " (echo): %" PRIu64 " bytes received, the header announced %" PRIu64, s->id,
          s->rx_bytes + len, s->size);
  check_rx(s, data, len);
  echo_enqueue(s, data, len);
  echo_drain(s);
}

static void cb_stream_data(tn_mux *mux, uint32_t id, const uint8_t *data, size_t len, void *stream_user)
{
  struct stream *s = stream_user;
  struct peer *p = s->peer;
  p->last_progress_ms = p->now;
  if (s->closed) {
    failf(p, "stream %" PRIu32 " (%s): %zu data bytes after on_stream_close", id, kind_name(s), len);
    return;
  }
  if (s->fin_seen) {
    failf(p, "stream %" PRIu32 " (%s): %zu data bytes after on_stream_fin", id, kind_name(s), len);
    return;
  }
  switch (s->kind) {
  case K_ACCEPTED:
    accepted_data(s, data, len);
    return;
  case K_ECHO_OUT:
    if (s->rx_bytes + len > s->size)
      failf(p, "stream %" PRIu32 " (echo-out): echo longer than the %" PRIu64 " bytes sent", id, s->size);
    check_rx(s, data, len);
    p->echo_rx += len;
    tn_mux_stream_consumed(mux, id, len);
    return;
  default:
    failf(p, "stream %" PRIu32 " (%s): %zu unexpected data bytes (the peer should have reset it)", id,
          kind_name(s), len);
    tn_mux_stream_consumed(mux, id, len);
    return;
  }
}

static void cb_stream_fin(tn_mux *mux, uint32_t id, void *stream_user)
{
  struct stream *s = stream_user;
  struct peer *p = s->peer;
  if (s->fin_seen)
    failf(p, "stream %" PRIu32 " (%s): on_stream_fin twice", id, kind_name(s));
  s->fin_seen = 1;
  if (s->kind == K_ACCEPTED && s->op == 'E') {
    if (s->rx_bytes != s->size)
      failf(p, "stream %" PRIu32 " (echo): FIN after %" PRIu64 " bytes, the header announced %" PRIu64, id,
            s->rx_bytes, s->size);
    echo_drain(s);
  } else if (s->kind == K_ECHO_OUT) {
    if (s->rx_bytes != s->size)
      failf(p, "stream %" PRIu32 " (echo-out): FIN after %" PRIu64 " of %" PRIu64 " echoed bytes", id, s->rx_bytes,
            s->size);
  } else {
    failf(p, "stream %" PRIu32 " (%s): FIN where a reset was expected", id, kind_name(s));
  }
}

static void cb_stream_writable(tn_mux *mux, uint32_t id, void *stream_user)
{
  struct stream *s = stream_user;
  if (s->closed)
    return;
  if (s->kind == K_ACCEPTED)
    echo_drain(s);
  else
    pump(s);
}

static void finish_echo_out(struct stream *s)
{
  struct peer *p = s->peer;
  unsigned char want[32], got[32];
  if (s->close_reason != TN_MUX_CLOSE_NORMAL) {
    failf(p, "stream %" PRIu32 " (echo-out): closed by %s after %" PRIu64 "/%" PRIu64 " bytes sent, %" PRIu64
          " echoed", s->id, reason_name(s->close_reason), s->tx_bytes, s->size, s->rx_bytes);
    return;
  }
  if (!s->fin_sent || !s->fin_seen || s->rx_bytes != s->size) {
    failf(p, "stream %" PRIu32 " (echo-out): closed normally with fin_sent=%d fin_seen=%d, %" PRIu64 "/%" PRIu64
          " echoed", s->id, s->fin_sent, s->fin_seen, s->rx_bytes, s->size);
    return;
  }
  if (s->mismatch_at >= 0) {
    failf(p, "stream %" PRIu32 " (echo-out): echoed byte %" PRId64 " differs from what was sent", s->id,
          s->mismatch_at);
    return;
  }
  mbedtls_sha256_finish_ret(&s->tx_sha, want);
  mbedtls_sha256_finish_ret(&s->rx_sha, got);
  if (memcmp(want, got, sizeof(want)) != 0) {
    failf(p, "stream %" PRIu32 " (echo-out): SHA-256 of the echo differs from what was sent", s->id);
    return;
  }
  s->ok = 1;
  p->echo_ok++;
}

static void finish_accepted(struct stream *s)
{
  struct peer *p = s->peer;
  if (s->op == 'E') {
    if (s->close_reason != TN_MUX_CLOSE_NORMAL || !s->fin_seen || !s->fin_sent) {
      failf(p, "stream %" PRIu32 " (accepted-echo): closed by %s with fin_seen=%d fin_sent=%d after %" PRIu64
            "/%" PRIu64 " bytes, %zu still queued", s->id, reason_name(s->close_reason), s->fin_seen, s->fin_sent,
            s->rx_bytes, s->size, s->q_len);
      return;
    }
    if (s->q_len != 0 || s->rx_bytes != s->size) {
      failf(p, "stream %" PRIu32 " (accepted-echo): closed with %zu bytes not echoed, %" PRIu64 "/%" PRIu64
            " received", s->id, s->q_len, s->rx_bytes, s->size);
      return;
    }
    if (s->mismatch_at >= 0) {
      failf(p, "stream %" PRIu32 " (accepted-echo): received byte %" PRId64 " differs from the announced sequence",
            s->id, s->mismatch_at);
      return;
    }
    s->ok = 1;
    p->acc_echo_ok++;
    p->acc_bytes += s->rx_bytes;
  } else if (s->op == 'R') {
    if (s->close_reason != TN_MUX_CLOSE_RESET_LOCAL) {
      failf(p, "stream %" PRIu32 " (accepted-reset-req): closed by %s, expected reset-local", s->id,
            reason_name(s->close_reason));
      return;
    }
    s->ok = 1;
    p->acc_reset_req_ok++;
  } else {
    /* 'X', or a reset that overtook the header */
    if (s->close_reason != TN_MUX_CLOSE_RESET_REMOTE) {
      failf(p, "stream %" PRIu32 " (%s): closed by %s, expected reset-remote", s->id, kind_name(s),
            reason_name(s->close_reason));
      return;
    }
    if (s->fin_seen) {
      failf(p, "stream %" PRIu32 " (%s): saw FIN before the reset", s->id, kind_name(s));
      return;
    }
    s->ok = 1;
    p->acc_reset_self_ok++;
  }
}

static void cb_stream_close(tn_mux *mux, uint32_t id, int reason, void *stream_user)
{
  struct stream *s = stream_user;
  struct peer *p;
  if (s == NULL) {
    fprintf(stderr, "mux_peer: FAIL: on_stream_close for stream %" PRIu32 " with a NULL user pointer\n", id);
    exit(1);
  }
  p = s->peer;
  p->last_progress_ms = p->now;
  if (s->closed) {
    failf(p, "stream %" PRIu32 " (%s): on_stream_close called twice", id, kind_name(s));
    return;
  }
  if (s->id != id)
    failf(p, "on_stream_close for id %" PRIu32 " carries the user pointer of stream %" PRIu32, id, s->id);
  s->closed = 1;
  s->close_reason = reason;
  switch (s->kind) {
  case K_ECHO_OUT:
    finish_echo_out(s);
    break;
  case K_RESET_REQ_OUT:
    if (reason == TN_MUX_CLOSE_RESET_REMOTE) {
      s->ok = 1;
      p->reset_req_ok++;
    } else {
      failf(p, "stream %" PRIu32 " (reset-req-out): closed by %s, expected reset-remote", id, reason_name(reason));
    }
    break;
  case K_RESET_SELF_OUT:
    if (reason == TN_MUX_CLOSE_RESET_LOCAL) {
      s->ok = 1;
      p->reset_self_ok++;
    } else {
      failf(p, "stream %" PRIu32 " (reset-self-out): closed by %s, expected reset-local", id, reason_name(reason));
    }
    break;
  case K_ACCEPTED:
    finish_accepted(s);
    break;
  }
}

static void cb_ping_rtt(tn_mux *mux, uint64_t rtt_ms, void *session_user)
{
  struct peer *p = session_user;
  p->pings_answered++;
  p->rtt_sum_ms += rtt_ms;
  if (p->pings_sent < p->pings) {
    int rc = tn_mux_ping(mux);
    if (rc != TN_OK)
      failf(p, "tn_mux_ping: %s", tn_strerror(rc));
    else
      p->pings_sent++;
  }
}

static void cb_go_away(tn_mux *mux, uint32_t code, void *session_user)
{
  struct peer *p = session_user;
  p->go_away_seen++;
  p->go_away_code = code;
}

/* ---- the plan ---- */

static struct stream *open_one(struct peer *p, enum kind kind, int index, uint64_t seed, uint64_t size, char op)
{
  struct stream *s = stream_new(p, kind);
  int rc = tn_mux_open_stream(p->mux, s, &s->id);
  s->index = index;
  s->seed = seed;
  s->size = size;
  s->hdr[0] = (uint8_t)op;
  put_be64(s->hdr + 1, seed);
  put_be64(s->hdr + 9, size);
  gen_init(&s->tx_gen, seed);
  gen_init(&s->rx_gen, seed);
  s->chunk_rng = seed;
  if (rc != TN_OK) {
    failf(p, "tn_mux_open_stream (%s %d): %s", kind_name(s), index, tn_strerror(rc));
    s->closed = 1;
    return NULL;
  }
  if (!is_own_parity(p, s->id))
    failf(p, "tn_mux_open_stream gave id %" PRIu32 ", the peer's parity", s->id);
  return s;
}

static void start_plan(struct peer *p)
{
  for (int i = 0; i < p->open_echo; i++) {
    uint64_t size = p->size + (uint64_t)i * 4099u;
    struct stream *s = open_one(p, K_ECHO_OUT, i, p->seed + (uint64_t)i * 1000003u, size, 'E');
    p->echo_tx += size;
    if (s != NULL)
      pump(s);
  }
  for (int i = 0; i < p->open_reset_req; i++) {
    struct stream *s = open_one(p, K_RESET_REQ_OUT, i, p->seed + 7777u + (uint64_t)i, 64 * 1024, 'R');
    if (s != NULL)
      pump(s);
  }
  for (int i = 0; i < p->open_reset_self; i++) {
    struct stream *s = open_one(p, K_RESET_SELF_OUT, i, p->seed + 9999u + (uint64_t)i, 32 * 1024, 'X');
    int rc;
    if (s == NULL)
      continue;
    /* Header and some payload go out first, so the RST reaches a stream the peer has accepted. */
    pump_out(s, 0);
    rc = tn_mux_stream_reset(p->mux, s->id);
    if (rc != TN_OK)
      failf(p, "stream %" PRIu32 " (reset-self-out): tn_mux_stream_reset: %s", s->id, tn_strerror(rc));
    if (!s->closed)
      failf(p, "stream %" PRIu32 " (reset-self-out): tn_mux_stream_reset returned before on_stream_close", s->id);
  }
  if (p->pings > 0) {
    int rc = tn_mux_ping(p->mux);
    if (rc != TN_OK)
      failf(p, "tn_mux_ping: %s", tn_strerror(rc));
    else
      p->pings_sent++;
  }
}

static int own_done(const struct peer *p)
{
  for (size_t i = 0; i < p->nstreams; i++) {
    if (p->streams[i]->kind != K_ACCEPTED && !p->streams[i]->closed)
      return 0;
  }
  return p->pings_answered >= p->pings;
}

static int accepted_done(const struct peer *p)
{
  return p->acc_echo_ok >= p->accept_echo && p->acc_reset_req_ok >= p->accept_reset_req &&
         p->acc_reset_self_ok >= p->accept_reset_self;
}

static void dump_state(struct peer *p, const char *why)
{
  struct tn_mux_stats st;
  fprintf(stderr, "%s: state (%s), %.1f s in:\n", p->name, why, (double)(p->now - p->start_ms) / 1000.0);
  for (size_t i = 0; i < p->nstreams; i++) {
    const struct stream *s = p->streams[i];
    if (s->ok)
      continue;
    fprintf(stderr,
            "  stream %" PRIu32 " %s: size %" PRIu64 " sent %" PRIu64 " (chunk %zu/%zu) received %" PRIu64
            " queued %zu fin_sent %d fin_seen %d closed %d (%s) send_window %zu\n",
            s->id, kind_name(s), s->size, s->tx_bytes - (s->chunk_len - s->chunk_off), s->chunk_off, s->chunk_len,
            s->rx_bytes, s->q_len, s->fin_sent, s->fin_seen, s->closed, s->closed ? reason_name(s->close_reason) : "-",
            s->closed ? 0 : tn_mux_stream_send_window(p->mux, s->id));
  }
  tn_mux_get_stats(p->mux, &st);
  fprintf(stderr,
          "  mux: bytes_in %" PRIu64 " bytes_out %" PRIu64 " frames_in %" PRIu64 " frames_out %" PRIu64
          " opened %" PRIu64 " accepted %" PRIu64 " refused %" PRIu64 " protocol_errors %" PRIu64
          " open %" PRIu32 " closed %d going_away %d\n",
          st.bytes_in, st.bytes_out, st.frames_in, st.frames_out, st.streams_opened, st.streams_accepted,
          st.streams_refused, st.protocol_errors, st.streams_open, tn_mux_is_closed(p->mux),
          tn_mux_is_going_away(p->mux));
  fprintf(stderr, "  pings %d/%d answered, go_away seen %d\n", p->pings_answered, p->pings, p->go_away_seen);
}

/* ---- I/O ---- */

/* Writes pending mux output; returns -1 when the socket failed. */
static int flush_out(struct peer *p)
{
  const uint8_t *buf;
  size_t n;
  while ((n = tn_mux_pending(p->mux, &buf)) > 0) {
    ssize_t w = send(p->fd, buf, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
      if (errno == EINTR)
        continue;
      fprintf(stderr, "%s: send: %s\n", p->name, strerror(errno));
      return -1;
    }
    tn_mux_consumed(p->mux, (size_t)w);
  }
  return 0;
}

/* Reads and feeds a bounded amount; returns 1 on EOF, -1 on error, 0 otherwise. */
static int read_in(struct peer *p, uint8_t *buf)
{
  for (int i = 0; i < 16; i++) {
    ssize_t r = recv(p->fd, buf, READ_BUF, 0);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
      if (errno == EINTR)
        continue;
      fprintf(stderr, "%s: recv: %s\n", p->name, strerror(errno));
      return -1;
    }
    if (r == 0)
      return 1;
    int rc = tn_mux_feed(p->mux, buf, (size_t)r);
    if (rc != TN_OK) {
      failf(p, "tn_mux_feed(%zd bytes): %s", r, tn_strerror(rc));
      return -1;
    }
    /* Output (window updates, echoes) goes out between reads so neither side waits on it. */
    if (flush_out(p) < 0)
      return -1;
  }
  return 0;
}

static int tcp_socket(struct peer *p, int port, int listen_mode)
{
  struct sockaddr_in sa;
  int one = 1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fprintf(stderr, "%s: socket: %s\n", p->name, strerror(errno));
    return -1;
  }
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (listen_mode) {
    int lfd = fd;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4) < 0) {
      fprintf(stderr, "%s: listen on 127.0.0.1:%d: %s\n", p->name, port, strerror(errno));
      close(lfd);
      return -1;
    }
    printf("%s: listening on 127.0.0.1:%d\n", p->name, port);
    fflush(stdout);
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    close(lfd);
    if (fd < 0) {
      fprintf(stderr, "%s: accept: %s\n", p->name, strerror(errno));
      return -1;
    }
  } else if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    fprintf(stderr, "%s: connect to 127.0.0.1:%d: %s\n", p->name, port, strerror(errno));
    close(fd);
    return -1;
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
    fprintf(stderr, "%s: fcntl: %s\n", p->name, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static void usage(void)
{
  fprintf(stderr,
          "usage: mux_peer (--connect PORT | --listen PORT) [--open-echo N] [--size BYTES] [--open-reset-req N]\n"
          "                [--open-reset-self N] [--accept-echo N] [--accept-reset-req N] [--accept-reset-self N]\n"
          "                [--pings N] [--window BYTES] [--seed N] [--timeout SECONDS]\n");
  exit(2);
}

static long arg_num(const char *opt, const char *s)
{
  char *end;
  long v;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < 0) {
    fprintf(stderr, "mux_peer: --%s: expected a non-negative integer, got \"%s\"\n", opt, s);
    exit(2);
  }
  return v;
}

static int run_loop(struct peer *p, uint64_t deadline)
{
  static uint8_t rbuf[READ_BUF];
  int write_closed = 0, go_away_sent = 0;

  for (;;) {
    struct pollfd pfd;
    const uint8_t *unused;
    int rc;

    p->now = now_ms();
    rc = tn_mux_tick(p->mux, p->now);
    if (rc != TN_OK) {
      failf(p, "tn_mux_tick: %s", tn_strerror(rc));
      dump_state(p, "tick failed");
      return -1;
    }
    if (!write_closed && flush_out(p) < 0)
      return -1;

    if (p->client && !write_closed && own_done(p) && accepted_done(p)) {
      /* Done: say GoAway, flush it, then half-close TCP and wait for the server to close. */
      if (!go_away_sent) {
        rc = tn_mux_go_away(p->mux, TN_GO_AWAY_NORMAL);
        if (rc != TN_OK)
          failf(p, "tn_mux_go_away: %s", tn_strerror(rc));
        go_away_sent = 1;
      }
      if (flush_out(p) < 0)
        return -1;
      if (tn_mux_pending(p->mux, &unused) == 0) {
        shutdown(p->fd, SHUT_WR);
        write_closed = 1;
      }
    }
    if (p->own_done_ms == 0 && own_done(p))
      p->own_done_ms = p->now;

    if (p->now >= deadline) {
      failf(p, "deadline reached");
      dump_state(p, "deadline");
      return -1;
    }
    if (!write_closed && p->now - p->last_progress_ms > STALL_MS) {
      failf(p, "no progress for %u ms", STALL_MS);
      dump_state(p, "stalled");
      return -1;
    }

    pfd.fd = p->fd;
    pfd.events = POLLIN;
    if (!write_closed && tn_mux_pending(p->mux, &unused) > 0)
      pfd.events |= POLLOUT;
    pfd.revents = 0;
    rc = poll(&pfd, 1, 50);
    if (rc < 0 && errno != EINTR) {
      fprintf(stderr, "%s: poll: %s\n", p->name, strerror(errno));
      return -1;
    }
    p->now = now_ms();
    if (rc > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
      /* Tick first so ping round trips are measured against a fresh clock. */
      tn_mux_tick(p->mux, p->now);
      rc = read_in(p, rbuf);
      if (rc < 0) {
        dump_state(p, "connection failed");
        return -1;
      }
      if (rc == 1)
        return 0; /* EOF: the caller judges whether it came at the right time */
    }
    if (!write_closed && flush_out(p) < 0)
      return -1;
  }
}

int main(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"connect", required_argument, NULL, 'c'},         {"listen", required_argument, NULL, 'l'},
      {"open-echo", required_argument, NULL, 'e'},       {"size", required_argument, NULL, 's'},
      {"open-reset-req", required_argument, NULL, 'r'},  {"open-reset-self", required_argument, NULL, 'x'},
      {"accept-echo", required_argument, NULL, 'E'},     {"accept-reset-req", required_argument, NULL, 'R'},
      {"accept-reset-self", required_argument, NULL, 'X'}, {"pings", required_argument, NULL, 'p'},
      {"window", required_argument, NULL, 'w'},          {"seed", required_argument, NULL, 'S'},
      {"timeout", required_argument, NULL, 't'},         {NULL, 0, NULL, 0}};
  static const struct tn_mux_callbacks cb = {
      .on_stream_open = cb_stream_open,
      .on_stream_ack = cb_stream_ack,
      .on_stream_data = cb_stream_data,
      .on_stream_fin = cb_stream_fin,
      .on_stream_writable = cb_stream_writable,
      .on_stream_close = cb_stream_close,
      .on_ping_rtt = cb_ping_rtt,
      .on_go_away = cb_go_away,
  };
  struct peer peer;
  struct peer *p = &peer;
  struct tn_mux_options opt;
  long connect_port = 0, listen_port = 0, window = 0, timeout_s = 45;
  int c, rc, status;
  uint64_t deadline, elapsed_ms;

  memset(p, 0, sizeof(*p));
  p->fd = -1;
  p->size = 1u << 20;
  p->seed = 1;
  p->pings = 3;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    const char *name = "";
    for (const struct option *o = longopts; o->name; o++)
      if (o->val == c)
        name = o->name;
    switch (c) {
    case 'c': connect_port = arg_num(name, optarg); break;
    case 'l': listen_port = arg_num(name, optarg); break;
    case 'e': p->open_echo = (int)arg_num(name, optarg); break;
    case 's': p->size = (uint64_t)arg_num(name, optarg); break;
    case 'r': p->open_reset_req = (int)arg_num(name, optarg); break;
    case 'x': p->open_reset_self = (int)arg_num(name, optarg); break;
    case 'E': p->accept_echo = (int)arg_num(name, optarg); break;
    case 'R': p->accept_reset_req = (int)arg_num(name, optarg); break;
    case 'X': p->accept_reset_self = (int)arg_num(name, optarg); break;
    case 'p': p->pings = (int)arg_num(name, optarg); break;
    case 'w': window = arg_num(name, optarg); break;
    case 'S': p->seed = (uint64_t)arg_num(name, optarg); break;
    case 't': timeout_s = arg_num(name, optarg); break;
    default: usage();
    }
  }
  if (optind != argc || (connect_port == 0) == (listen_port == 0) || connect_port > 65535 || listen_port > 65535)
    usage();
  p->client = connect_port != 0;
  p->name = p->client ? "mux_peer(c client)" : "mux_peer(c server)";

  p->fd = tcp_socket(p, p->client ? (int)connect_port : (int)listen_port, !p->client);
  if (p->fd < 0)
    return 1;

  tn_mux_options_default(&opt);
  if (window > 0)
    opt.max_window = (uint32_t)window;
  /* Short keepalive so yamux answers tn_mux's own pings during the run, not only ours. */
  opt.keepalive_interval_ms = 1000;
  p->now = p->start_ms = p->last_progress_ms = now_ms();
  deadline = p->start_ms + (uint64_t)timeout_s * 1000u;
  rc = tn_mux_new(&p->mux, p->client ? TN_MUX_CLIENT : TN_MUX_SERVER, &cb, &opt, p, p->now);
  if (rc != TN_OK) {
    fprintf(stderr, "%s: tn_mux_new: %s\n", p->name, tn_strerror(rc));
    return 1;
  }

  start_plan(p);
  status = run_loop(p, deadline);
  p->now = now_ms();

  if (status == 0) {
    /* The connection ended; everything either side planned must have happened first. */
    if (!own_done(p) || !accepted_done(p)) {
      failf(p, "connection closed by the peer before this side's checks completed");
      dump_state(p, "early EOF");
    }
    if (!p->client && p->go_away_seen == 0)
      failf(p, "the client closed the connection without a GoAway first");
    if (p->go_away_seen && p->go_away_code != TN_GO_AWAY_NORMAL)
      failf(p, "GoAway with code %" PRIu32 ", expected 0 (normal)", p->go_away_code);
  }
  if (p->echo_ok != p->open_echo)
    failf(p, "%d of %d opened echo streams passed", p->echo_ok, p->open_echo);
  if (p->reset_req_ok != p->open_reset_req)
    failf(p, "%d of %d opened streams were reset by the peer as asked", p->reset_req_ok, p->open_reset_req);
  if (p->reset_self_ok != p->open_reset_self)
    failf(p, "%d of %d self-reset streams closed as reset-local", p->reset_self_ok, p->open_reset_self);
  if (p->acc_echo_ok != p->accept_echo)
    failf(p, "%d of %d echo streams from the peer completed", p->acc_echo_ok, p->accept_echo);
  if (p->acc_reset_req_ok != p->accept_reset_req)
    failf(p, "%d of %d streams the peer asked to reset were reset", p->acc_reset_req_ok, p->accept_reset_req);
  if (p->acc_reset_self_ok != p->accept_reset_self)
    failf(p, "%d of %d streams reset by the peer were seen as reset", p->acc_reset_self_ok, p->accept_reset_self);
  if (p->pings_answered < p->pings)
    failf(p, "%d of %d pings answered", p->pings_answered, p->pings);

  elapsed_ms = (p->own_done_ms ? p->own_done_ms : p->now) - p->start_ms;
  printf("%s: %d/%d echo streams, %.1f MiB out and %.1f MiB back in %.2f s (%.1f MB/s each way); "
         "resets %d/%d asked of the peer, %d/%d own; %d pings (avg rtt %.1f ms); served %d echo streams (%.1f MiB), "
         "%d reset on request, %d peer resets\n",
         p->name, p->echo_ok, p->open_echo, (double)p->echo_tx / 1048576.0, (double)p->echo_rx / 1048576.0,
         (double)elapsed_ms / 1000.0, elapsed_ms ? (double)p->echo_tx / 1000.0 / (double)elapsed_ms : 0.0,
         p->reset_req_ok, p->open_reset_req, p->reset_self_ok, p->open_reset_self, p->pings_answered,
         p->pings_answered ? (double)p->rtt_sum_ms / p->pings_answered : 0.0, p->acc_echo_ok,
         (double)p->acc_bytes / 1048576.0, p->acc_reset_req_ok, p->acc_reset_self_ok);

  tn_mux_del(p->mux);
  close(p->fd);
  for (size_t i = 0; i < p->nstreams; i++)
    stream_free(p->streams[i]);
  free(p->streams);
  if (p->failures > 0 || status != 0) {
    fprintf(stderr, "%s: FAILED (%d problems)\n", p->name, p->failures);
    return 1;
  }
  printf("%s: PASS\n", p->name);
  return 0;
}
