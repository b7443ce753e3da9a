/*
 * mux_peer: tn_mux over one loopback TCP connection, driven by a plain poll()
 * loop, for the yamux interop test (tests/integration/yamux_interop.sh). Its
 * counterpart is tests/interop/yamux_peer (hashicorp/yamux); both speak the
 * per-stream protocol described there:
 *
 *   request header  op u8 | seed u64 BE | size u64 BE
 *   'E' echo: opener sends size bytes of splitmix64(seed) then FIN; acceptor
 *       checks and echoes them, FIN once the echo is out; opener checks echo.
 *   'S' request-response: opener sends size bytes then FIN; only after that FIN
 *       the acceptor answers with size bytes of splitmix64(seed ^ 0x5555...)
 *       and FIN, so the whole answer travels on a stream the opener half-closed.
 *   'F' upload: the acceptor sends FIN right after the header; the opener keeps
 *       sending size bytes into the stream the peer half-closed, then FIN.
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

#include <mbedtls/md.h>

#include "tunnel/error.h"
#include "tunnel/frame.h"
#include "tunnel/mux.h"

#define HDR_LEN 17
#define CHUNK_MAX (64u * 1024u)
#define READ_BUF (256u * 1024u)
#define STALL_MS 10000u

/* The request ops, in the order of the per-op plan and result arrays. */
enum op_index { OP_ECHO, OP_RR, OP_UPLOAD, OP_RESET_REQ, OP_RESET_SELF, OP_COUNT };
static const char op_chars[OP_COUNT] = {'E', 'S', 'F', 'R', 'X'};
static const char *const op_names[OP_COUNT] = {"echo", "request-response", "upload", "reset-req", "reset-self"};

/* The response to an 'S' request is a different sequence, so an echo bug cannot pass for it. */
#define RESPONSE_XOR 0x5555555555555555ull

struct gen {
  uint64_t state;
  uint8_t buf[8];
  unsigned avail;
};

struct stream {
  struct peer *peer;
  int opener; /* 1: opened here; 0: accepted */
  int op;     /* enum op_index; -1 for an accepted stream whose header is not in yet */
  int index;
  uint32_t id;
  uint64_t seed;
  uint64_t size;

  /* sending: the request header (opener) then size bytes of tx_gen */
  uint8_t hdr[HDR_LEN];
  size_t hdr_sent;
  int sending; /* the payload may go out (acceptor of 'S': only after the request's FIN) */
  struct gen tx_gen;
  uint64_t chunk_rng;
  uint8_t chunk[CHUNK_MAX];
  size_t chunk_len, chunk_off;
  uint64_t tx_bytes;
  mbedtls_md_context_t tx_sha;
  int pumping, pump_again;

  /* receiving */
  uint8_t in_hdr[HDR_LEN];
  size_t in_hdr_len;
  struct gen rx_gen;
  uint64_t rx_bytes;
  int64_t mismatch_at;
  mbedtls_md_context_t rx_sha;

  /* echo queue (acceptor of 'E'): received bytes not yet accepted by tn_mux_stream_write */
  uint8_t *q;
  size_t q_head, q_len, q_cap;

  int fin_sent, fin_seen, closed, close_reason, ok;
};

/* A shadow parse of the bytes fed to tn_mux, to name the frame a feed error came from. */
#define TRACE_RING 256
struct trace {
  uint8_t hdr[TN_FRAME_HEADER_LEN];
  size_t hdr_len;
  uint64_t skip; /* Data payload bytes still to pass over */
  uint64_t count;
  struct tn_frame_header ring[TRACE_RING];
};

struct peer {
  const char *name;
  struct trace trace;
  int fd;
  int client;
  tn_mux *mux;
  uint64_t now;
  uint64_t start_ms, own_done_ms, last_progress_ms;

  /* plan */
  int open[OP_COUNT];
  int accept[OP_COUNT];
  uint64_t size, aux_size;
  uint64_t seed;
  int pings;

  /* results */
  struct stream **streams;
  size_t nstreams, cap_streams;
  int open_ok[OP_COUNT];
  int accept_ok[OP_COUNT];
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

static const char *stream_desc(const struct stream *s)
{
  static char buf[64];
  snprintf(buf, sizeof(buf), "%s %s", s->op >= 0 ? op_names[s->op] : "unknown-op", s->opener ? "opened" : "accepted");
  return buf;
}

static struct stream *stream_new(struct peer *p, int opener, int op)
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
  s->opener = opener;
  s->op = op;
  s->mismatch_at = -1;
  /* The md layer: the same calls on mbedTLS 2.28 and 3.x (the sha256 ones were renamed). */
  const mbedtls_md_info_t *sha256 = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
  mbedtls_md_init(&s->tx_sha);
  mbedtls_md_init(&s->rx_sha);
  if (mbedtls_md_setup(&s->tx_sha, sha256, 0) != 0 || mbedtls_md_setup(&s->rx_sha, sha256, 0) != 0)
    abort();
  mbedtls_md_starts(&s->tx_sha);
  mbedtls_md_starts(&s->rx_sha);
  return s;
}

static void stream_free(struct stream *s)
{
  mbedtls_md_free(&s->tx_sha);
  mbedtls_md_free(&s->rx_sha);
  free(s->q);
  free(s);
}

static int is_own_parity(const struct peer *p, uint32_t id)
{
  return (id % 2 == 1) == (p->client != 0);
}

/* Checks received payload against the expected sequence; remembers the first bad offset. */
static void check_rx(struct stream *s, const uint8_t *data, size_t len)
{
  static uint8_t want[CHUNK_MAX];
  mbedtls_md_update(&s->rx_sha, data, len);
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
  mbedtls_md_update(&s->tx_sha, s->chunk, n);
  s->chunk_len = n;
  s->chunk_off = 0;
  s->tx_bytes += n;
}

static int tx_complete(const struct stream *s)
{
  return s->hdr_sent == HDR_LEN && s->tx_bytes == s->size && s->chunk_off == s->chunk_len;
}

/* Sends FIN once; on_stream_close may run inside the call when the peer's FIN is in. */
static void send_fin(struct stream *s)
{
  int rc;
  if (s->fin_sent || s->closed)
    return;
  s->fin_sent = 1;
  rc = tn_mux_stream_fin(s->peer->mux, s->id);
  if (rc != TN_OK)
    failf(s->peer, "stream %" PRIu32 " (%s): tn_mux_stream_fin: %s", s->id, stream_desc(s), tn_strerror(rc));
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
          if (with_fin)
            send_fin(s);
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
      failf(p, "stream %" PRIu32 " (%s): tn_mux_stream_write after %" PRIu64 " bytes: %s", s->id, stream_desc(s),
            s->tx_bytes - (s->chunk_len - s->chunk_off), tn_strerror((int)n));
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
    if (s->sending)
      pump_out(s, s->op != OP_RESET_REQ);
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
      failf(p, "stream %" PRIu32 " (%s): echo write with %zu bytes queued: %s", s->id, stream_desc(s), s->q_len,
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
  if (s->q_len == 0 && s->fin_seen)
    send_fin(s);
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
  struct stream *s = stream_new(p, 0, -1);
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
  if (s != NULL && !s->opener)
    failf(s->peer, "on_stream_ack for stream %" PRIu32 " which the peer opened", id);
}

/* The request header of an accepted stream is complete: act on its op. */
static void accepted_header(struct stream *s)
{
  struct peer *p = s->peer;
  int rc;
  s->op = -1;
  for (int i = 0; i < OP_COUNT; i++)
    if (op_chars[i] == s->in_hdr[0])
      s->op = i;
  s->seed = get_be64(s->in_hdr + 1);
  s->size = get_be64(s->in_hdr + 9);
  gen_init(&s->rx_gen, s->seed);
  switch (s->op) {
  case OP_RESET_REQ:
    /* Reset from inside on_stream_data: the session must cope with the stream vanishing here. */
    rc = tn_mux_stream_reset(p->mux, s->id);
    if (rc != TN_OK)
      failf(p, "stream %" PRIu32 ": tn_mux_stream_reset: %s", s->id, tn_strerror(rc));
    if (!s->closed)
      failf(p, "stream %" PRIu32 ": tn_mux_stream_reset returned before on_stream_close", s->id);
    break;
  case OP_UPLOAD:
    /* Half-close first; the peer keeps sending and this side keeps granting window. */
    send_fin(s);
    break;
  case OP_RR:
    gen_init(&s->tx_gen, s->seed ^ RESPONSE_XOR);
    s->chunk_rng = s->seed;
    s->hdr_sent = HDR_LEN; /* responses carry no header */
    break;
  case OP_ECHO:
  case OP_RESET_SELF:
    break;
  default:
    failf(p, "stream %" PRIu32 ": unknown request op 0x%02x", s->id, s->in_hdr[0]);
    tn_mux_stream_reset(p->mux, s->id);
    break;
  }
}

static void accepted_data(struct stream *s, const uint8_t *data, size_t len)
{
  struct peer *p = s->peer;
  if (s->in_hdr_len < HDR_LEN) {
    size_t used = HDR_LEN - s->in_hdr_len;
    if (used > len)
      used = len;
    memcpy(s->in_hdr + s->in_hdr_len, data, used);
    s->in_hdr_len += used;
    tn_mux_stream_consumed(p->mux, s->id, used);
    if (s->in_hdr_len < HDR_LEN)
      return;
    accepted_header(s);
    data += used;
    len -= used;
    if (len == 0 || s->closed)
      return;
  }
  if (s->op == OP_RESET_SELF) {
    s->rx_bytes += len;
    tn_mux_stream_consumed(p->mux, s->id, len);
    return;
  }
  if (s->rx_bytes + len > s->size)
    failf(p, "stream %" PRIu32 " (%s): %" PRIu64 " bytes received, the header announced %" PRIu64, s->id,
          stream_desc(s), s->rx_bytes + len, s->size);
  check_rx(s, data, len);
  if (s->op == OP_ECHO) {
    echo_enqueue(s, data, len);
    echo_drain(s);
  } else {
    tn_mux_stream_consumed(p->mux, s->id, len);
  }
}

static void cb_stream_data(tn_mux *mux, uint32_t id, const uint8_t *data, size_t len, void *stream_user)
{
  struct stream *s = stream_user;
  struct peer *p = s->peer;
  p->last_progress_ms = p->now;
  if (s->closed) {
    failf(p, "stream %" PRIu32 " (%s): %zu data bytes after on_stream_close", id, stream_desc(s), len);
    return;
  }
  if (s->fin_seen) {
    failf(p, "stream %" PRIu32 " (%s): %zu data bytes after on_stream_fin", id, stream_desc(s), len);
    return;
  }
  if (!s->opener) {
    accepted_data(s, data, len);
    return;
  }
  switch (s->op) {
  case OP_ECHO:
  case OP_RR:
    if (s->rx_bytes + len > s->size)
      failf(p, "stream %" PRIu32 " (%s): response longer than %" PRIu64 " bytes", id, stream_desc(s), s->size);
    check_rx(s, data, len);
    tn_mux_stream_consumed(mux, id, len);
    return;
  default:
    failf(p, "stream %" PRIu32 " (%s): %zu unexpected data bytes", id, stream_desc(s), len);
    tn_mux_stream_consumed(mux, id, len);
    return;
  }
}

static void cb_stream_fin(tn_mux *mux, uint32_t id, void *stream_user)
{
  struct stream *s = stream_user;
  struct peer *p = s->peer;
  p->last_progress_ms = p->now;
  if (s->fin_seen)
    failf(p, "stream %" PRIu32 " (%s): on_stream_fin twice", id, stream_desc(s));
  s->fin_seen = 1;
  switch (s->op) {
  case OP_ECHO:
  case OP_RR:
  case OP_UPLOAD:
    /* Opener of 'F' expects no data; everyone else the announced size. */
    if (s->rx_bytes != (s->opener && s->op == OP_UPLOAD ? 0 : s->size))
      failf(p, "stream %" PRIu32 " (%s): FIN after %" PRIu64 " of %" PRIu64 " bytes", id, stream_desc(s),
            s->rx_bytes, s->size);
    break;
  default:
    failf(p, "stream %" PRIu32 " (%s): FIN where a reset was expected", id, stream_desc(s));
    return;
  }
  if (s->opener)
    return;
  if (s->op == OP_ECHO) {
    echo_drain(s);
  } else if (s->op == OP_RR) {
    /* The whole request is in: now the response, on a stream the peer half-closed. */
    s->sending = 1;
    pump(s);
  }
}

static void cb_stream_writable(tn_mux *mux, uint32_t id, void *stream_user)
{
  struct stream *s = stream_user;
  if (s->closed)
    return;
  if (!s->opener && s->op == OP_ECHO)
    echo_drain(s);
  else
    pump(s);
}

/* Judges a stream when it closes; returns 1 when it did what its op promised. */
static int judge(struct stream *s)
{
  struct peer *p = s->peer;
  unsigned char want[32], got[32];
  int expect_reason = TN_MUX_CLOSE_NORMAL;
  if (s->op == OP_RESET_REQ)
    expect_reason = s->opener ? TN_MUX_CLOSE_RESET_REMOTE : TN_MUX_CLOSE_RESET_LOCAL;
  else if (s->op == OP_RESET_SELF || s->op < 0)
    expect_reason = s->opener ? TN_MUX_CLOSE_RESET_LOCAL : TN_MUX_CLOSE_RESET_REMOTE;
  if (s->close_reason != expect_reason) {
    failf(p, "stream %" PRIu32 " (%s): closed by %s, expected %s; %" PRIu64 "/%" PRIu64 " bytes sent, %" PRIu64
          " received, fin_sent=%d fin_seen=%d", s->id, stream_desc(s), reason_name(s->close_reason),
          reason_name(expect_reason), s->tx_bytes - (s->chunk_len - s->chunk_off), s->size, s->rx_bytes,
          s->fin_sent, s->fin_seen);
    return 0;
  }
  if (expect_reason != TN_MUX_CLOSE_NORMAL) {
    if (s->fin_seen) {
      failf(p, "stream %" PRIu32 " (%s): saw FIN before the reset", s->id, stream_desc(s));
      return 0;
    }
    return 1;
  }
  if (!s->fin_sent || !s->fin_seen) {
    failf(p, "stream %" PRIu32 " (%s): closed normally with fin_sent=%d fin_seen=%d", s->id, stream_desc(s),
          s->fin_sent, s->fin_seen);
    return 0;
  }
  if (s->mismatch_at >= 0) {
    failf(p, "stream %" PRIu32 " (%s): received byte %" PRId64 " differs from the expected sequence", s->id,
          stream_desc(s), s->mismatch_at);
    return 0;
  }
  if (s->q_len != 0) {
    failf(p, "stream %" PRIu32 " (%s): closed with %zu bytes not echoed", s->id, stream_desc(s), s->q_len);
    return 0;
  }
  if ((s->opener || s->op == OP_RR) && !tx_complete(s)) {
    failf(p, "stream %" PRIu32 " (%s): closed with only %" PRIu64 " of %" PRIu64 " bytes sent", s->id,
          stream_desc(s), s->tx_bytes - (s->chunk_len - s->chunk_off), s->size);
    return 0;
  }
  if (s->rx_bytes != (s->opener && s->op == OP_UPLOAD ? 0 : s->size)) {
    failf(p, "stream %" PRIu32 " (%s): closed after %" PRIu64 " of %" PRIu64 " bytes received", s->id,
          stream_desc(s), s->rx_bytes, s->size);
    return 0;
  }
  if (s->opener && s->op == OP_ECHO) {
    mbedtls_md_finish(&s->tx_sha, want);
    mbedtls_md_finish(&s->rx_sha, got);
    if (memcmp(want, got, sizeof(want)) != 0) {
      failf(p, "stream %" PRIu32 " (%s): SHA-256 of the echo differs from what was sent", s->id, stream_desc(s));
      return 0;
    }
  }
  return 1;
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
    failf(p, "stream %" PRIu32 " (%s): on_stream_close called twice", id, stream_desc(s));
    return;
  }
  if (s->id != id)
    failf(p, "on_stream_close for id %" PRIu32 " carries the user pointer of stream %" PRIu32, id, s->id);
  s->closed = 1;
  s->close_reason = reason;
  /* A session-wide failure is reported once by whoever saw it (feed, tick, EOF); the final counts show the streams. */
  if (reason == TN_MUX_CLOSE_SESSION)
    return;
  if (!judge(s))
    return;
  s->ok = 1;
  if (s->opener)
    p->open_ok[s->op]++;
  else
    p->accept_ok[s->op < 0 ? OP_RESET_SELF : s->op]++;
  if (!s->opener && s->op == OP_ECHO)
    p->acc_bytes += s->rx_bytes;
  if (s->opener && s->op == OP_ECHO) {
    p->echo_tx += s->tx_bytes;
    p->echo_rx += s->rx_bytes;
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

static struct stream *open_one(struct peer *p, int op, int index, uint64_t seed, uint64_t size)
{
  struct stream *s = stream_new(p, 1, op);
  int rc = tn_mux_open_stream(p->mux, s, &s->id);
  s->index = index;
  s->seed = seed;
  s->size = size;
  s->hdr[0] = (uint8_t)op_chars[op];
  put_be64(s->hdr + 1, seed);
  put_be64(s->hdr + 9, size);
  gen_init(&s->tx_gen, seed);
  gen_init(&s->rx_gen, op == OP_RR ? seed ^ RESPONSE_XOR : seed);
  s->chunk_rng = seed;
  s->sending = 1;
  if (rc != TN_OK) {
    failf(p, "tn_mux_open_stream (%s %d): %s", op_names[op], index, tn_strerror(rc));
    s->closed = 1;
    return NULL;
  }
  if (!is_own_parity(p, s->id))
    failf(p, "tn_mux_open_stream gave id %" PRIu32 ", the peer's parity", s->id);
  return s;
}

static void start_plan(struct peer *p)
{
  for (int op = 0; op < OP_COUNT; op++) {
    for (int i = 0; i < p->open[op]; i++) {
      uint64_t seed = p->seed + (uint64_t)op * 100000007u + (uint64_t)i * 1000003u;
      uint64_t size;
      struct stream *s;
      int rc;
      switch (op) {
      case OP_ECHO: size = p->size + (uint64_t)i * 4099u; break;
      case OP_RESET_REQ: size = 64 * 1024; break;
      case OP_RESET_SELF: size = 32 * 1024; break;
      default: size = p->aux_size + (uint64_t)i * 4099u; break;
      }
      if ((s = open_one(p, op, i, seed, size)) == NULL)
        continue;
      if (op != OP_RESET_SELF) {
        pump(s);
        continue;
      }
      /* Header and some payload go out first, so the RST reaches a stream the peer has accepted. */
      pump_out(s, 0);
      rc = tn_mux_stream_reset(p->mux, s->id);
      if (rc != TN_OK)
        failf(p, "stream %" PRIu32 " (%s): tn_mux_stream_reset: %s", s->id, stream_desc(s), tn_strerror(rc));
      if (!s->closed)
        failf(p, "stream %" PRIu32 " (%s): tn_mux_stream_reset returned before on_stream_close", s->id,
              stream_desc(s));
    }
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
    if (p->streams[i]->opener && !p->streams[i]->closed)
      return 0;
  }
  return p->pings_answered >= p->pings;
}

static int accepted_done(const struct peer *p)
{
  for (int op = 0; op < OP_COUNT; op++)
    if (p->accept_ok[op] < p->accept[op])
      return 0;
  return 1;
}

static void dump_state(struct peer *p, const char *why)
{
  struct tn_mux_stats st;
  size_t shown = 0, hidden = 0;
  fprintf(stderr, "%s: state (%s), %.1f s in:\n", p->name, why, (double)(p->now - p->start_ms) / 1000.0);
  for (size_t i = 0; i < p->nstreams; i++) {
    const struct stream *s = p->streams[i];
    if (s->ok)
      continue;
    if (shown++ >= 16) {
      hidden++;
      continue;
    }
    fprintf(stderr,
            "  stream %" PRIu32 " %s: size %" PRIu64 " sent %" PRIu64 " received %" PRIu64
            " queued %zu fin_sent %d fin_seen %d closed %d (%s) send_window %zu\n",
            s->id, stream_desc(s), s->size, s->tx_bytes - (s->chunk_len - s->chunk_off), s->rx_bytes, s->q_len,
            s->fin_sent, s->fin_seen, s->closed, s->closed ? reason_name(s->close_reason) : "-",
            s->closed ? 0 : tn_mux_stream_send_window(p->mux, s->id));
  }
  if (hidden > 0)
    fprintf(stderr, "  ... and %zu more streams not finished\n", hidden);
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

static void trace_feed(struct trace *t, const uint8_t *in, size_t len)
{
  while (len > 0) {
    if (t->skip > 0) {
      size_t n = t->skip < len ? (size_t)t->skip : len;
      t->skip -= n;
      in += n;
      len -= n;
      continue;
    }
    size_t n = TN_FRAME_HEADER_LEN - t->hdr_len;
    if (n > len)
      n = len;
    memcpy(t->hdr + t->hdr_len, in, n);
    t->hdr_len += n;
    in += n;
    len -= n;
    if (t->hdr_len < TN_FRAME_HEADER_LEN)
      continue;
    struct tn_frame_header *h = &t->ring[t->count++ % TRACE_RING];
    t->hdr_len = 0;
    if (tn_frame_decode(h, t->hdr, TN_FRAME_HEADER_LEN) != TN_FRAME_HEADER_LEN) {
      memset(h, 0xff, sizeof(*h));
      continue;
    }
    if (h->type == TN_FRAME_DATA)
      t->skip = h->length;
  }
}

static void print_frame(const char *prefix, uint64_t index, const struct tn_frame_header *h)
{
  fprintf(stderr, "%s#%" PRIu64 " %s flags=%s%s%s%s(0x%x) id=%" PRIu32 " length=%" PRIu32 "\n", prefix, index,
          tn_frame_type_name(h->type), h->flags & TN_FLAG_SYN ? "SYN " : "", h->flags & TN_FLAG_ACK ? "ACK " : "",
          h->flags & TN_FLAG_FIN ? "FIN " : "", h->flags & TN_FLAG_RST ? "RST " : "", h->flags, h->stream_id,
          h->length);
}

/* After a feed error: the frames around the one tn_mux stopped at (its frames_in count). */
static void trace_report(struct peer *p)
{
  struct tn_mux_stats st;
  const struct trace *t = &p->trace;
  uint64_t first, last;
  tn_mux_get_stats(p->mux, &st);
  fprintf(stderr, "%s: tn_mux counted %" PRIu64 " frames in; frames received around there (1-based):\n", p->name,
          st.frames_in);
  first = st.frames_in > 6 ? st.frames_in - 6 : 0;
  if (t->count > TRACE_RING && first < t->count - TRACE_RING)
    first = t->count - TRACE_RING;
  last = st.frames_in + 2 < t->count ? st.frames_in + 2 : t->count;
  for (uint64_t i = first; i < last; i++)
    print_frame(i + 1 == st.frames_in ? "  -> " : "     ", i + 1, &t->ring[i % TRACE_RING]);
}

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
    trace_feed(&p->trace, buf, (size_t)r);
    int rc = tn_mux_feed(p->mux, buf, (size_t)r);
    if (rc != TN_OK) {
      failf(p, "tn_mux_feed(%zd bytes): %s", r, tn_strerror(rc));
      trace_report(p);
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
          "usage: mux_peer (--connect PORT | --listen PORT) [--size BYTES] [--aux-size BYTES]\n"
          "                [--open-{echo,rr,upload,reset-req,reset-self} N]\n"
          "                [--accept-{echo,rr,upload,reset-req,reset-self} N]\n"
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
      /* A fresh clock for ping round trips; liveness is judged at the top of the loop, after reading. */
      tn_mux_set_time(p->mux, p->now);
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
  /* Values 0x100+op / 0x200+op select the per-op open / accept counts. */
  static const struct option longopts[] = {
      {"connect", required_argument, NULL, 'c'},
      {"listen", required_argument, NULL, 'l'},
      {"size", required_argument, NULL, 's'},
      {"aux-size", required_argument, NULL, 'a'},
      {"pings", required_argument, NULL, 'p'},
      {"window", required_argument, NULL, 'w'},
      {"seed", required_argument, NULL, 'S'},
      {"timeout", required_argument, NULL, 't'},
      {"open-echo", required_argument, NULL, 0x100 + OP_ECHO},
      {"open-rr", required_argument, NULL, 0x100 + OP_RR},
      {"open-upload", required_argument, NULL, 0x100 + OP_UPLOAD},
      {"open-reset-req", required_argument, NULL, 0x100 + OP_RESET_REQ},
      {"open-reset-self", required_argument, NULL, 0x100 + OP_RESET_SELF},
      {"accept-echo", required_argument, NULL, 0x200 + OP_ECHO},
      {"accept-rr", required_argument, NULL, 0x200 + OP_RR},
      {"accept-upload", required_argument, NULL, 0x200 + OP_UPLOAD},
      {"accept-reset-req", required_argument, NULL, 0x200 + OP_RESET_REQ},
      {"accept-reset-self", required_argument, NULL, 0x200 + OP_RESET_SELF},
      {NULL, 0, NULL, 0}};
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
  p->aux_size = 1u << 20;
  p->seed = 1;
  p->pings = 3;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    const char *name = "";
    for (const struct option *o = longopts; o->name; o++)
      if (o->val == c)
        name = o->name;
    if (c >= 0x100 && c < 0x100 + OP_COUNT) {
      p->open[c - 0x100] = (int)arg_num(name, optarg);
      continue;
    }
    if (c >= 0x200 && c < 0x200 + OP_COUNT) {
      p->accept[c - 0x200] = (int)arg_num(name, optarg);
      continue;
    }
    switch (c) {
    case 'c': connect_port = arg_num(name, optarg); break;
    case 'l': listen_port = arg_num(name, optarg); break;
    case 's': p->size = (uint64_t)arg_num(name, optarg); break;
    case 'a': p->aux_size = (uint64_t)arg_num(name, optarg); break;
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
  for (int op = 0; op < OP_COUNT; op++) {
    if (p->open_ok[op] != p->open[op])
      failf(p, "%d of %d %s streams opened here passed", p->open_ok[op], p->open[op], op_names[op]);
    if (p->accept_ok[op] != p->accept[op])
      failf(p, "%d of %d %s streams from the peer passed", p->accept_ok[op], p->accept[op], op_names[op]);
  }
  if (p->pings_answered < p->pings)
    failf(p, "%d of %d pings answered", p->pings_answered, p->pings);

  elapsed_ms = (p->own_done_ms ? p->own_done_ms : p->now) - p->start_ms;
  printf("%s: %d/%d echo streams, %.1f MiB out and %.1f MiB back in %.2f s (%.1f MB/s each way); "
         "opened request-response %d/%d, upload %d/%d, reset-req %d/%d, reset-self %d/%d; "
         "served echo %d/%d (%.1f MiB), request-response %d/%d, upload %d/%d, reset-req %d/%d, reset-self %d/%d; "
         "%d pings (avg rtt %.1f ms)\n",
         p->name, p->open_ok[OP_ECHO], p->open[OP_ECHO], (double)p->echo_tx / 1048576.0,
         (double)p->echo_rx / 1048576.0, (double)elapsed_ms / 1000.0,
         elapsed_ms ? (double)p->echo_tx / 1000.0 / (double)elapsed_ms : 0.0, p->open_ok[OP_RR], p->open[OP_RR],
         p->open_ok[OP_UPLOAD], p->open[OP_UPLOAD], p->open_ok[OP_RESET_REQ], p->open[OP_RESET_REQ],
         p->open_ok[OP_RESET_SELF], p->open[OP_RESET_SELF], p->accept_ok[OP_ECHO], p->accept[OP_ECHO],
         (double)p->acc_bytes / 1048576.0, p->accept_ok[OP_RR], p->accept[OP_RR], p->accept_ok[OP_UPLOAD],
         p->accept[OP_UPLOAD], p->accept_ok[OP_RESET_REQ], p->accept[OP_RESET_REQ], p->accept_ok[OP_RESET_SELF],
         p->accept[OP_RESET_SELF], p->pings_answered,
         p->pings_answered ? (double)p->rtt_sum_ms / p->pings_answered : 0.0);

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
