/* pipe.c: one conversation, a mux stream spliced to a TCP socket on libuv. */
#include "tunnel/pipe.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "splice.h"
#include "tunnel/defaults.h"
#include "tunnel/error.h"
#include "tunnel/proxy.h"

/* One socket read. Bytes the stream cannot take yet are kept (the stash) up to the high-water mark. */
#define PIPE_READ_BUFFER (64u * 1024u)

struct pipe_chunk {
  uv_write_t req;
  tn_pipe *pipe;
  struct pipe_chunk *next;
  size_t len;
  bool from_stream;   /* returns its bytes to the stream's window once written */
  uint8_t data[];
};

struct tn_pipe {
  uv_tcp_t tcp;
  uv_timer_t timer;          /* backend dial deadline */
  uv_connect_t connect_req;
  uv_shutdown_t shutdown_req;
  int handles_open;

  tn_link *link;             /* NULL once the stream has ended */
  uint32_t id;
  const struct tn_pipe_callbacks *cb;
  void *data;
  struct tn_pipe_options opt;

  bool awaiting_header;      /* tunnelc: the stream-open header is still arriving */
  size_t header_len;
  uint8_t header[TN_OPEN_MAX_LEN];
  struct tn_open open;

  bool socket_up;            /* connected or accepted: may be written and read */
  bool reading;
  bool socket_eof;           /* the socket sent EOF: FIN owed or sent */
  bool fin_sent;
  bool stream_fin;           /* the stream sent FIN: shut the socket's write side once drained */
  bool shutdown_started;
  bool shutdown_done;
  bool stream_closed;
  bool done;                 /* on_close was called; only teardown remains */
  bool redialing;            /* the socket is closing to be re-created for the fallback address */
  bool dial_failed;          /* ended because the backend could not be reached */
  bool has_fallback;
  struct sockaddr_storage fallback;
  tn_pipe_peek_cb peek_cb;   /* tunneld: first bytes held until the caller decides (NULL: not peeking) */
  size_t peek_max;

  /* socket -> stream bytes the stream could not take yet (also the open header on tunneld) */
  uint8_t *stash;
  size_t stash_off;
  size_t stash_len;
  size_t stash_cap;

  /* stream -> socket: chunks waiting for the socket to come up, and writes in flight */
  struct pipe_chunk *waiting_head;
  struct pipe_chunk *waiting_tail;
  int writes_in_flight;

  uint64_t bytes_to_stream;
  uint64_t bytes_to_socket;
};

static void pipe_finish(tn_pipe *p, const char *reason, bool normal);
static void on_backend_connected(uv_connect_t *req, int status);
static void on_redial_closed(uv_handle_t *h);

/* ---- teardown ---- */

static void on_handle_closed(uv_handle_t *h)
{
  tn_pipe *p = h->data;

  if (--p->handles_open > 0)
    return;
  while (p->waiting_head != NULL) {
    struct pipe_chunk *c = p->waiting_head;
    p->waiting_head = c->next;
    free(c);
  }
  free(p->stash);
  free(p);
}

static tn_mux *pipe_mux(const tn_pipe *p)
{
  return p->link != NULL && !p->stream_closed ? tn_link_mux(p->link) : NULL;
}

/* The single end of a conversation: report once, reset what is still open, release. */
static void pipe_finish(tn_pipe *p, const char *reason, bool normal)
{
  struct tn_pipe_result r;
  tn_mux *m;

  if (p->done)
    return;
  p->done = true;
  m = pipe_mux(p);
  if (m != NULL) {
    tn_link *l = p->link;
    tn_mux_stream_reset(m, p->id);  /* re-enters tn_pipe__on_stream_close, which sees done */
    tn_link_want_flush(l);
  }
  p->link = NULL;
  uv_timer_stop(&p->timer);
  if (p->reading)
    uv_read_stop((uv_stream_t *)&p->tcp);
  r.reason = reason;
  r.normal = normal;
  r.backend_failed = p->dial_failed;
  r.bytes_to_stream = p->bytes_to_stream;
  r.bytes_to_socket = p->bytes_to_socket;
  if (p->cb->on_close != NULL)
    p->cb->on_close(p, &r);
  /* An aborted conversation resets the TCP peer too, so it sees a failure, not a clean end. */
  if (p->redialing)
    ;  /* the socket is already closing; on_redial_closed completes the teardown */
  else if (normal || !p->socket_up || p->shutdown_started || uv_tcp_close_reset(&p->tcp, on_handle_closed) != 0)
    uv_close((uv_handle_t *)&p->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&p->timer, on_handle_closed);
}

/* The backend is down or unreachable: the one end the operator of the client must act on. */
static void pipe_dial_fail(tn_pipe *p, const char *reason)
{
  p->dial_failed = true;
  pipe_finish(p, reason, false);
}

void tn_pipe_abort(tn_pipe *p, const char *reason)
{
  pipe_finish(p, reason, false);
}

static void check_normal_end(tn_pipe *p)
{
  if (!p->done && p->stream_closed && p->shutdown_done && p->writes_in_flight == 0 && p->waiting_head == NULL)
    pipe_finish(p, "closed", true);
}

/* ---- stream -> socket ---- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
  tn_pipe *p = req->data;

  if (p->done)
    return;
  p->shutdown_done = true;
  if (status < 0 && status != UV_ECANCELED) {
    pipe_finish(p, "socket shutdown failed", false);
    return;
  }
  check_normal_end(p);
}

static void maybe_shutdown(tn_pipe *p)
{
  if (!p->stream_fin || p->shutdown_started || !p->socket_up || p->writes_in_flight > 0 || p->waiting_head != NULL)
    return;
  p->shutdown_started = true;
  p->shutdown_req.data = p;
  if (uv_shutdown(&p->shutdown_req, (uv_stream_t *)&p->tcp, on_shutdown) != 0) {
    p->shutdown_done = true;  /* the socket is already gone on that side */
    check_normal_end(p);
  }
}

static void return_window(tn_pipe *p, size_t n)
{
  tn_mux *m = pipe_mux(p);

  if (m != NULL && n > 0) {
    tn_mux_stream_consumed(m, p->id, n);
    tn_link_want_flush(p->link);
  }
}

static void on_chunk_written(uv_write_t *req, int status)
{
  struct pipe_chunk *c = req->data;
  tn_pipe *p = c->pipe;

  p->writes_in_flight--;
  if (!p->done) {
    if (status < 0) {
      free(c);
      pipe_finish(p, status == UV_ECONNRESET || status == UV_EPIPE ? "socket reset by its peer" : "socket write failed",
                  false);
      return;
    }
    p->bytes_to_socket += c->from_stream ? c->len : 0;
    if (c->from_stream)
      return_window(p, c->len);
    maybe_shutdown(p);
    check_normal_end(p);
  }
  free(c);
}

static int submit_chunk(tn_pipe *p, struct pipe_chunk *c)
{
  uv_buf_t buf = uv_buf_init((char *)c->data, (unsigned)c->len);
  int rc;

  c->req.data = c;
  rc = uv_write(&c->req, (uv_stream_t *)&p->tcp, &buf, 1, on_chunk_written);
  if (rc != 0) {
    free(c);
    return rc;
  }
  p->writes_in_flight++;
  return 0;
}

static struct pipe_chunk *chunk_new(tn_pipe *p, const uint8_t *data, size_t len, bool from_stream)
{
  struct pipe_chunk *c = malloc(sizeof(*c) + len);

  if (c == NULL)
    return NULL;
  c->pipe = p;
  c->next = NULL;
  c->len = len;
  c->from_stream = from_stream;
  memcpy(c->data, data, len);
  return c;
}

/* Queues bytes for the socket: straight to the kernel when nothing is ahead of them. */
static void to_socket(tn_pipe *p, const uint8_t *data, size_t len, bool from_stream)
{
  struct pipe_chunk *c;

  if (len == 0 || p->done)
    return;
  if (p->socket_up && p->writes_in_flight == 0 && p->waiting_head == NULL) {
    uv_buf_t buf = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&p->tcp, &buf, 1);
    if (n < 0 && n != UV_EAGAIN) {
      pipe_finish(p, n == UV_ECONNRESET || n == UV_EPIPE ? "socket reset by its peer" : "socket write failed", false);
      return;
    }
    if (n > 0) {
      if (from_stream) {
        p->bytes_to_socket += (size_t)n;
        return_window(p, (size_t)n);
      }
      data += n;
      len -= (size_t)n;
      if (len == 0)
        return;
    }
  }
  c = chunk_new(p, data, len, from_stream);
  if (c == NULL) {
    pipe_finish(p, "out of memory", false);
    return;
  }
  if (!p->socket_up) {
    if (p->waiting_tail != NULL)
      p->waiting_tail->next = c;
    else
      p->waiting_head = c;
    p->waiting_tail = c;
    return;
  }
  if (submit_chunk(p, c) != 0)
    pipe_finish(p, "socket write failed", false);
}

/* tunnelc: collects the stream-open header; returns how many of the bytes it took. */
static size_t take_header(tn_pipe *p, const uint8_t *data, size_t len)
{
  size_t room = sizeof(p->header) - p->header_len;
  size_t n = len < room ? len : room;
  int rc;

  memcpy(p->header + p->header_len, data, n);
  p->header_len += n;
  rc = tn_open_decode(&p->open, p->header, p->header_len);
  if (rc == TN_ERR_NEED_MORE) {
    return_window(p, n);
    return n;
  }
  if (rc < 0) {
    pipe_finish(p, rc == TN_ERR_UNSUPPORTED ? "unsupported stream-open header version" : "malformed stream-open header",
                false);
    return len;
  }
  /* The header ended inside this piece: what followed it is payload, held for the backend. */
  {
    size_t header_bytes_here = n - (p->header_len - (size_t)rc);
    p->awaiting_header = false;
    return_window(p, header_bytes_here);
    return header_bytes_here;
  }
}

void tn_pipe__on_data(tn_pipe *p, const uint8_t *data, size_t len)
{
  if (p->done)
    return;
  if (p->awaiting_header) {
    size_t n = take_header(p, data, len);
    if (p->done || p->awaiting_header)
      return;
    data += n;
    len -= n;
    to_socket(p, data, len, true);
    if (!p->done && p->cb->on_open_header != NULL)
      p->cb->on_open_header(p, &p->open);
    return;
  }
  to_socket(p, data, len, true);
}

void tn_pipe__on_fin(tn_pipe *p)
{
  if (p->done)
    return;
  if (p->awaiting_header) {
    pipe_finish(p, "stream ended before its open header", false);
    return;
  }
  p->stream_fin = true;
  maybe_shutdown(p);
}

void tn_pipe__on_stream_close(tn_pipe *p, int reason)
{
  p->stream_closed = true;
  p->link = NULL;
  if (p->done)
    return;
  switch (reason) {
  case TN_MUX_CLOSE_NORMAL:
    check_normal_end(p);
    break;
  case TN_MUX_CLOSE_RESET_REMOTE:
    pipe_finish(p, "stream reset by the other side", false);
    break;
  case TN_MUX_CLOSE_OPEN_TIMEOUT:
    pipe_finish(p, "stream open not acknowledged in time", false);
    break;
  case TN_MUX_CLOSE_SESSION:
    pipe_finish(p, "tunnel link lost", false);
    break;
  default:
    pipe_finish(p, "stream reset", false);
    break;
  }
}

/* ---- socket -> stream ---- */

static void start_reading(tn_pipe *p);

void tn_pipe_options_default(struct tn_pipe_options *opt)
{
  opt->high_water = TN_DEFAULT_PIPE_HIGH_WATER;
  opt->low_water = TN_DEFAULT_PIPE_LOW_WATER;
}

/* Socket bytes read but not yet taken by the stream. */
static size_t stash_pending(const tn_pipe *p)
{
  return p->stash_len - p->stash_off;
}

/* Pushes stashed bytes into the stream. Returns true when the stash is empty. */
static bool drain_stash(tn_pipe *p)
{
  tn_mux *m = pipe_mux(p);
  long n;

  if (p->stash == NULL)
    return true;
  if (m == NULL) {
    pipe_finish(p, "tunnel link lost", false);
    return false;
  }
  n = tn_mux_stream_write(m, p->id, p->stash + p->stash_off, p->stash_len - p->stash_off);
  if (n < 0) {
    pipe_finish(p, "stream closed", false);
    return false;
  }
  tn_link_want_flush(p->link);
  p->stash_off += (size_t)n;
  if (p->stash_off < p->stash_len)
    return false;
  free(p->stash);
  p->stash = NULL;
  p->stash_off = p->stash_len = p->stash_cap = 0;
  return true;
}

static void send_fin(tn_pipe *p)
{
  tn_mux *m = pipe_mux(p);

  if (p->fin_sent || m == NULL)
    return;
  p->fin_sent = true;
  tn_mux_stream_fin(m, p->id);  /* may end the stream (both FINs): re-enters on_stream_close */
  if (p->link != NULL)
    tn_link_want_flush(p->link);
}

void tn_pipe__on_writable(tn_pipe *p)
{
  bool empty;

  if (p->done)
    return;
  empty = drain_stash(p);
  if (p->done)
    return;
  if (empty && p->socket_eof)
    send_fin(p);
  else if (stash_pending(p) <= p->opt.low_water)
    start_reading(p);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  (void)h;
  (void)suggested;
  buf->base = malloc(PIPE_READ_BUFFER);
  buf->len = buf->base != NULL ? PIPE_READ_BUFFER : 0;
}

static void stop_reading(tn_pipe *p)
{
  if (p->reading) {
    uv_read_stop((uv_stream_t *)&p->tcp);
    p->reading = false;
  }
}

/* Takes a read buffer: it becomes the stash when none is waiting (no copy), else it is appended. */
static bool stash_append(tn_pipe *p, uint8_t *buf, size_t cap, size_t n)
{
  size_t pending = stash_pending(p);
  uint8_t *grown;

  if (p->stash == NULL) {
    p->stash = buf;
    p->stash_off = 0;
    p->stash_len = n;
    p->stash_cap = cap;
    return true;
  }
  if (p->stash_off > pending) {
    /* Compact only once most of the buffer is spent, so appending stays linear. */
    memmove(p->stash, p->stash + p->stash_off, pending);
    p->stash_off = 0;
    p->stash_len = pending;
  }
  if (p->stash_len + n > p->stash_cap) {
    size_t want = p->stash_cap * 2 > p->stash_len + n ? p->stash_cap * 2 : p->stash_len + n;
    grown = realloc(p->stash, want);
    if (grown == NULL) {
      free(buf);
      pipe_finish(p, "out of memory", false);
      return false;
    }
    p->stash = grown;
    p->stash_cap = want;
  }
  memcpy(p->stash + p->stash_len, buf, n);
  free(buf);
  p->stash_len += n;
  return true;
}

/* The wait for the first bytes ends with status; the callback decides, so nothing may touch p after it. */
static void peek_end(tn_pipe *p, enum tn_pipe_peek_status status)
{
  tn_pipe_peek_cb cb = p->peek_cb;

  stop_reading(p);
  uv_timer_stop(&p->timer);
  p->peek_cb = NULL;
  cb(p, p->stash != NULL ? p->stash + p->stash_off : NULL, stash_pending(p), status);
}

static void on_peek_read(tn_pipe *p, ssize_t nread, const uv_buf_t *buf)
{
  if (nread > 0) {
    if (!stash_append(p, (uint8_t *)buf->base, buf->len, (size_t)nread))
      return;
    if (stash_pending(p) >= p->peek_max)
      peek_end(p, TN_PIPE_PEEK_FULL);
    else
      p->peek_cb(p, p->stash + p->stash_off, stash_pending(p), TN_PIPE_PEEK_MORE);
    return;
  }
  free(buf->base);
  if (nread == UV_EOF) {
    p->socket_eof = true;
    peek_end(p, TN_PIPE_PEEK_EOF);
  } else if (nread < 0) {
    pipe_finish(p, nread == UV_ECONNRESET ? "socket reset by its peer" : "socket read failed", false);
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
  tn_pipe *p = s->data;

  if (p->done) {
    free(buf->base);
    return;
  }
  if (p->peek_cb != NULL) {
    on_peek_read(p, nread, buf);
    return;
  }
  if (nread > 0) {
    p->bytes_to_stream += (uint64_t)nread;
    if (!stash_append(p, (uint8_t *)buf->base, buf->len, (size_t)nread))
      return;
    /* Above the high-water mark the socket waits (its peer's TCP window closes); on_writable resumes below the low. */
    if (!drain_stash(p) && !p->done && stash_pending(p) > p->opt.high_water)
      stop_reading(p);
    return;
  }
  free(buf->base);
  if (nread == UV_EOF) {
    stop_reading(p);
    p->socket_eof = true;
    if (p->stash == NULL)
      send_fin(p);
  } else if (nread < 0) {
    pipe_finish(p, nread == UV_ECONNRESET ? "socket reset by its peer" : "socket read failed", false);
  }
}

static void start_reading(tn_pipe *p)
{
  if (p->reading || p->socket_eof || p->done || !p->socket_up)
    return;
  if (uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read) == 0)
    p->reading = true;
  else
    pipe_finish(p, "socket read failed", false);
}

/* ---- setup ---- */

static tn_pipe *pipe_new(uv_loop_t *loop, const struct tn_pipe_options *opt, const struct tn_pipe_callbacks *cb,
                         void *data)
{
  tn_pipe *p = calloc(1, sizeof(*p));

  if (p == NULL)
    return NULL;
  if (opt != NULL)
    p->opt = *opt;
  else
    tn_pipe_options_default(&p->opt);
  p->cb = cb;
  p->data = data;
  uv_tcp_init(loop, &p->tcp);
  uv_timer_init(loop, &p->timer);
  p->tcp.data = p->timer.data = p;
  p->handles_open = 2;
  return p;
}

static void pipe_discard(tn_pipe *p)
{
  p->done = true;
  uv_close((uv_handle_t *)&p->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&p->timer, on_handle_closed);
}

int tn_pipe_accept(tn_pipe **out, uv_stream_t *listener, const struct tn_pipe_options *opt,
                   const struct tn_pipe_callbacks *cb, void *data)
{
  tn_pipe *p = pipe_new(listener->loop, opt, cb, data);
  int rc;

  *out = NULL;
  if (p == NULL)
    return UV_ENOMEM;
  rc = uv_accept(listener, (uv_stream_t *)&p->tcp);
  if (rc != 0) {
    pipe_discard(p);
    return rc;
  }
  uv_tcp_nodelay(&p->tcp, 1);
  p->socket_up = true;
  *out = p;
  return 0;
}

static void on_peek_timeout(uv_timer_t *t)
{
  tn_pipe *p = t->data;

  if (!p->done && p->peek_cb != NULL)
    peek_end(p, TN_PIPE_PEEK_TIMEOUT);
}

int tn_pipe_peek(tn_pipe *p, size_t max, uint64_t timeout_ms, tn_pipe_peek_cb cb)
{
  int rc;

  if (p->done || !p->socket_up || p->link != NULL || cb == NULL || max == 0)
    return UV_EINVAL;
  p->peek_cb = cb;
  p->peek_max = max;
  rc = uv_timer_start(&p->timer, on_peek_timeout, timeout_ms, 0);
  if (rc == 0)
    rc = uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
  if (rc != 0) {
    uv_timer_stop(&p->timer);
    p->peek_cb = NULL;
    return rc;
  }
  p->reading = true;
  return 0;
}

void tn_pipe_refuse(tn_pipe *p, const uint8_t *reply, size_t len, const char *reason)
{
  if (p->done)
    return;
  p->peek_cb = NULL;
  if (len > 0 && p->socket_up) {
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)reply, (unsigned)len);
    (void)uv_try_write((uv_stream_t *)&p->tcp, &b, 1);  /* a socket that cannot take a few bytes now gets none */
  }
  pipe_finish(p, reason, true);
}

int tn_pipe_addresses(const tn_pipe *p, struct tn_addr *peer, struct tn_addr *local)
{
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  int rc = 0;

  if (peer != NULL) {
    memset(&ss, 0, sizeof(ss));
    rc = uv_tcp_getpeername(&p->tcp, (struct sockaddr *)&ss, &len);
    tn_addr_from_sockaddr(peer, (const struct sockaddr *)&ss);
  }
  if (local != NULL && rc == 0) {
    len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    rc = uv_tcp_getsockname(&p->tcp, (struct sockaddr *)&ss, &len);
    tn_addr_from_sockaddr(local, (const struct sockaddr *)&ss);
  }
  return rc;
}

int tn_pipe_start(tn_pipe *p, tn_link *link, const struct tn_open *hdr)
{
  tn_mux *m = tn_link_mux(link);
  uint8_t buf[TN_OPEN_MAX_LEN], *stash;
  size_t n, held;
  int rc;

  if (m == NULL) {
    pipe_finish(p, "tunnel link not established", false);
    return TN_ERR_SESSION_CLOSED;
  }
  n = tn_open_encode(hdr, buf, sizeof(buf));
  if (n == 0) {
    pipe_finish(p, "invalid stream-open header", false);
    return TN_ERR_ARG;
  }
  /* The session clock moves only on input and ticks; a stream stamped with it could be up to a tick old and be
   * reset before StreamOpenTimeoutMs has really passed. */
  tn_mux_set_time(m, uv_now(tn_link_loop(link)));
  rc = tn_mux_open_stream(m, p, &p->id);
  if (rc != TN_OK) {
    pipe_finish(p, tn_strerror(rc), false);
    return rc;
  }
  p->link = link;
  if (p->peek_cb != NULL) {
    uv_timer_stop(&p->timer);
    p->peek_cb = NULL;
  }
  /* The header goes first, through the same path as socket bytes so backpressure applies; bytes read while the
   * caller chose the tunnel follow it unchanged. */
  held = stash_pending(p);
  stash = malloc(n + held);
  if (stash == NULL) {
    pipe_finish(p, "out of memory", false);
    return TN_ERR_NOMEM;
  }
  memcpy(stash, buf, n);
  if (held > 0)
    memcpy(stash + n, p->stash + p->stash_off, held);
  free(p->stash);
  p->stash = stash;
  p->stash_off = 0;
  p->stash_len = p->stash_cap = n + held;
  p->bytes_to_stream += held;
  if (drain_stash(p)) {
    if (p->socket_eof)
      send_fin(p);
    else
      start_reading(p);
  } else if (!p->done && stash_pending(p) <= p->opt.low_water) {
    start_reading(p);
  } else if (!p->done && stash_pending(p) > p->opt.high_water) {
    stop_reading(p);
  }
  return TN_OK;
}

tn_pipe *tn_pipe_new_incoming(tn_link *link, uint32_t id, const struct tn_pipe_options *opt,
                              const struct tn_pipe_callbacks *cb, void *data)
{
  tn_pipe *p = pipe_new(tn_link_loop(link), opt, cb, data);

  if (p == NULL)
    return NULL;
  p->link = link;
  p->id = id;
  p->awaiting_header = true;
  return p;
}

static void on_dial_timeout(uv_timer_t *t)
{
  tn_pipe *p = t->data;

  pipe_dial_fail(p, "backend connect timed out");
}

static void on_backend_connected(uv_connect_t *req, int status)
{
  tn_pipe *p = req->data;
  uint8_t proxy[TN_PROXY_V2_MAX_LEN + TN_PROXY_V1_MAX_LEN];
  struct tn_proxy_info info;
  struct pipe_chunk *c;
  size_t n;

  if (p->done)
    return;
  if (status == UV_ECONNREFUSED && p->has_fallback) {
    /* A failed socket cannot connect again, and the fallback may be another family: re-create it. */
    p->redialing = true;
    uv_close((uv_handle_t *)&p->tcp, on_redial_closed);
    return;
  }
  uv_timer_stop(&p->timer);
  if (status < 0) {
    pipe_dial_fail(p, status == UV_ECONNREFUSED ? "backend refused the connection" : "backend connect failed");
    return;
  }
  uv_tcp_nodelay(&p->tcp, 1);
  p->socket_up = true;
  if (p->open.proxy_version != 0) {
    memset(&info, 0, sizeof(info));
    info.src = p->open.peer;
    info.dst = p->open.listener;
    if (info.src.family != info.dst.family) {
      /* PROXY needs one family for both ends; the user's address is what matters. */
      info.dst = info.src;
      memset(info.dst.ip, 0, sizeof(info.dst.ip));
      info.dst.port = p->open.listener.port;
    }
    memcpy(info.authority, p->open.authority, sizeof(info.authority));
    n = tn_proxy_encode(p->open.proxy_version, &info, proxy, sizeof(proxy));
    if (n == 0 || (c = chunk_new(p, proxy, n, false)) == NULL || submit_chunk(p, c) != 0) {
      pipe_finish(p, "could not write the PROXY header", false);
      return;
    }
  }
  while (p->waiting_head != NULL && !p->done) {
    c = p->waiting_head;
    p->waiting_head = c->next;
    if (p->waiting_head == NULL)
      p->waiting_tail = NULL;
    c->next = NULL;
    if (submit_chunk(p, c) != 0)
      pipe_finish(p, "socket write failed", false);
  }
  if (p->done)
    return;
  maybe_shutdown(p);
  start_reading(p);
}

static void on_redial_closed(uv_handle_t *h)
{
  tn_pipe *p = h->data;

  p->redialing = false;
  p->has_fallback = false;
  if (p->done) {
    on_handle_closed(h);
    return;
  }
  uv_tcp_init(p->timer.loop, &p->tcp);
  p->tcp.data = p;
  p->connect_req.data = p;
  if (uv_tcp_connect(&p->connect_req, &p->tcp, (const struct sockaddr *)&p->fallback, on_backend_connected) != 0)
    pipe_dial_fail(p, "backend connect failed");
}

int tn_pipe_connect(tn_pipe *p, const struct sockaddr *addr, const struct sockaddr *fallback, uint64_t timeout_ms)
{
  int rc;

  if (p->done)
    return UV_ECANCELED;
  if (fallback != NULL) {
    memcpy(&p->fallback, fallback,
           fallback->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    p->has_fallback = true;
  }
  p->connect_req.data = p;
  rc = uv_tcp_connect(&p->connect_req, &p->tcp, addr, on_backend_connected);
  if (rc != 0) {
    pipe_dial_fail(p, "backend connect failed");
    return rc;
  }
  if (timeout_ms > 0)
    uv_timer_start(&p->timer, on_dial_timeout, timeout_ms, 0);
  return 0;
}

void tn_pipe_get_bytes(const tn_pipe *p, uint64_t *to_stream, uint64_t *to_socket)
{
  *to_stream = p->bytes_to_stream;
  *to_socket = p->bytes_to_socket;
}

tn_link *tn_pipe_link(const tn_pipe *p)
{
  return p->link;
}

uint32_t tn_pipe_stream_id(const tn_pipe *p)
{
  return p->id;
}

void *tn_pipe_data(const tn_pipe *p)
{
  return p->data;
}

void tn_pipe_set_data(tn_pipe *p, void *data)
{
  p->data = data;
}
