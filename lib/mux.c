/* mux.c: the yamux-compatible session state machine (no sockets, no clock). */
#include "tunnel/mux.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/defaults.h"
#include "tunnel/error.h"

/* Intrusive circular list, as libuv's queue: a node unlinked from any list points at itself. */
struct mux_node {
  struct mux_node *next;
  struct mux_node *prev;
};

static void node_init(struct mux_node *n)
{
  n->next = n->prev = n;
}

static bool node_linked(const struct mux_node *n)
{
  return n->next != n;
}

static void node_unlink(struct mux_node *n)
{
  n->prev->next = n->next;
  n->next->prev = n->prev;
  node_init(n);
}

static void node_append(struct mux_node *list, struct mux_node *n)
{
  n->prev = list->prev;
  n->next = list;
  list->prev->next = n;
  list->prev = n;
}

#define NODE_OWNER(ptr, type, field) ((type *)(void *)((char *)(ptr) - offsetof(type, field)))

struct mux_stream {
  uint32_t id;
  bool acked;            /* SYN answered (ours by the peer, or theirs by us) */
  bool local_fin;
  bool remote_fin;
  bool fin_pending;      /* FIN arrived with a Data frame whose payload is still being delivered */
  bool blocked;          /* a write was cut short; owes on_stream_writable */
  uint32_t send_window;  /* bytes the peer allows us to send */
  uint32_t recv_window;  /* bytes the peer may still send us */
  uint32_t recv_target;  /* receive window size we grant (auto-tuned) */
  uint32_t recv_held;    /* delivered to the application, not yet consumed */
  uint32_t recv_unacked; /* consumed, not yet returned with a WindowUpdate */
  uint64_t opened_ms;
  uint64_t last_update_ms;
  void *user;
  struct mux_stream *hash_next;
  struct mux_node all;      /* mux->streams */
  struct mux_node blocked_node; /* mux->blocked */
  struct mux_node ack_wait; /* mux->awaiting_ack, in opening order */
};

enum rx_state {
  RX_HEADER,
  RX_PAYLOAD
};

struct tn_mux {
  enum tn_mux_role role;
  struct tn_mux_callbacks cb;
  struct tn_mux_options opt;
  void *user;

  bool closed;            /* fatal error, timeout or terminate: only pending/del remain */
  bool local_go_away;
  bool remote_go_away;
  bool ping_outstanding;
  uint32_t ping_id;
  uint64_t ping_sent_ms;
  uint64_t now_ms;
  uint64_t last_rx_ms;

  uint32_t next_id;       /* next id this side opens */
  uint32_t peer_max_id;   /* highest id the peer has opened */
  uint64_t dead_credit;   /* bytes the peer may still send on streams that are gone (see stream_gone) */
  const char *error;      /* why the session failed, for the log; NULL before */

  struct mux_stream **buckets;
  size_t n_buckets;
  struct mux_node streams;
  struct mux_node blocked;
  struct mux_node awaiting_ack;

  /* Receive parser */
  enum rx_state rx;
  uint8_t hdr[TN_FRAME_HEADER_LEN];
  size_t hdr_have;
  uint32_t payload_left;
  uint32_t payload_stream; /* 0 when the payload is discarded */

  /* Output: bytes [out_start, out_len) are waiting to be sent, in stream order */
  uint8_t *out;
  size_t out_start;
  size_t out_len;
  size_t out_cap;
  size_t out_frame_left;  /* bytes of out's first frame still to hand out (0: out_start is at a frame boundary) */
  /*
   * Control frames (ping, ping answer, GoAway, window updates, SYN and its ACK) wait apart and go out at the next
   * frame boundary of out, ahead of stream data, so keepalive measures the path and not the data queued on it.
   * Overtaking is safe for them: whatever a stream queues after its SYN or ACK still follows it, and SYNs keep
   * their order with GoAway (a stream opened before GoAway must reach the peer before it). FIN and RST stay in out
   * behind the data they end.
   */
  uint8_t *ctl;
  size_t ctl_start;
  size_t ctl_len;
  size_t ctl_cap;
  bool pending_ctl;       /* the last tn_mux_pending handed out ctl bytes */

  struct tn_mux_stats stats;
};

/* Control frames may exceed max_output_buffer (they must never be dropped), but not by
 * this much: a peer that keeps sending pings while never reading is cut off. */
#define MUX_CONTROL_SLACK (256u * 1024u)

void tn_mux_options_default(struct tn_mux_options *opt)
{
  opt->initial_window = TN_DEFAULT_INITIAL_WINDOW;
  opt->max_window = TN_DEFAULT_MAX_WINDOW;
  opt->max_streams = TN_DEFAULT_MAX_STREAMS_PER_LINK;
  opt->max_frame_payload = TN_DEFAULT_MAX_FRAME_PAYLOAD;
  opt->max_output_buffer = TN_DEFAULT_LINK_OUTPUT_BUFFER;
  opt->keepalive_interval_ms = TN_DEFAULT_KEEPALIVE_INTERVAL_MS;
  opt->dead_peer_timeout_ms = TN_DEFAULT_DEAD_PEER_TIMEOUT_MS;
  opt->open_timeout_ms = TN_DEFAULT_STREAM_OPEN_TIMEOUT_MS;
}

/* ---- stream table ---- */

static size_t bucket_of(const tn_mux *m, uint32_t id)
{
  return (size_t)((id >> 1) * 2654435761u) & (m->n_buckets - 1);
}

static struct mux_stream *stream_find(const tn_mux *m, uint32_t id)
{
  struct mux_stream *s;

  for (s = m->buckets[bucket_of(m, id)]; s != NULL; s = s->hash_next)
    if (s->id == id)
      return s;
  return NULL;
}

static int table_grow(tn_mux *m)
{
  size_t n = m->n_buckets * 2;
  struct mux_stream **b = calloc(n, sizeof(*b));
  struct mux_node *it;

  if (b == NULL)
    return TN_ERR_NOMEM;
  free(m->buckets);
  m->buckets = b;
  m->n_buckets = n;
  for (it = m->streams.next; it != &m->streams; it = it->next) {
    struct mux_stream *s = NODE_OWNER(it, struct mux_stream, all);
    size_t i = bucket_of(m, s->id);
    s->hash_next = b[i];
    b[i] = s;
  }
  return TN_OK;
}

static struct mux_stream *stream_new(tn_mux *m, uint32_t id, void *user)
{
  struct mux_stream *s;
  size_t i;

  if (m->stats.streams_open >= m->n_buckets && table_grow(m) != TN_OK)
    return NULL;
  s = calloc(1, sizeof(*s));
  if (s == NULL)
    return NULL;
  s->id = id;
  s->send_window = m->opt.initial_window;
  s->recv_window = m->opt.initial_window;
  s->recv_target = m->opt.initial_window;
  s->opened_ms = m->now_ms;
  s->last_update_ms = m->now_ms;
  s->user = user;
  node_init(&s->blocked_node);
  node_init(&s->ack_wait);
  node_append(&m->streams, &s->all);
  i = bucket_of(m, id);
  s->hash_next = m->buckets[i];
  m->buckets[i] = s;
  m->stats.streams_open++;
  return s;
}

/* Unlinks s from every index; the caller reports and frees it. */
static void stream_unlink(tn_mux *m, struct mux_stream *s)
{
  struct mux_stream **pp = &m->buckets[bucket_of(m, s->id)];

  while (*pp != s)
    pp = &(*pp)->hash_next;
  *pp = s->hash_next;
  node_unlink(&s->all);
  node_unlink(&s->blocked_node);
  node_unlink(&s->ack_wait);
  m->stats.streams_open--;
}

/*
 * Data for a stream that is gone bypasses every stream's window, so it gets a window of its own: when
 * this side ends a stream the peer may still be sending on (a reset or open timeout before its FIN, or
 * a refused SYN), what the peer was still allowed to send becomes credit; data arriving for gone
 * streams spends it, and data beyond it fails the session. A yamux peer's in-flight bytes after a
 * reset always fit (they were within the window); a peer that keeps sending does not. The credit is
 * capped so that a long session's many resets do not add up to an unbounded allowance.
 */
static void credit_gone(tn_mux *m, uint64_t bytes)
{
  /* No overflow: the credit stays at most max_window (< 2^31) and bytes is a 32-bit window. */
  m->dead_credit += bytes;
  if (m->dead_credit > m->opt.max_window)
    m->dead_credit = m->opt.max_window;
}

/* The one way a stream ends: out of every index first, so the callback sees it gone. */
static void stream_close(tn_mux *m, struct mux_stream *s, int reason)
{
  uint32_t id = s->id;
  void *user = s->user;

  if ((reason == TN_MUX_CLOSE_RESET_LOCAL || reason == TN_MUX_CLOSE_OPEN_TIMEOUT) && !s->remote_fin &&
      !s->fin_pending)
    credit_gone(m, s->recv_window);
  stream_unlink(m, s);
  free(s);
  if (m->cb.on_stream_close != NULL)
    m->cb.on_stream_close(m, id, reason, user);
}

static void close_all_streams(tn_mux *m)
{
  while (node_linked(&m->streams))
    stream_close(m, NODE_OWNER(m->streams.next, struct mux_stream, all), TN_MUX_CLOSE_SESSION);
}

/* ---- output ---- */

static size_t out_queued(const tn_mux *m)
{
  return m->out_len - m->out_start;
}

static size_t ctl_queued(const tn_mux *m)
{
  return m->ctl_len - m->ctl_start;
}

/* Room for n more bytes at the end of a queue [*start, *len) of *cap bytes. */
static int queue_reserve(uint8_t **buf, size_t *start, size_t *len, size_t *cap, size_t n)
{
  size_t need, c;
  uint8_t *p;

  if (*cap - *len >= n)
    return TN_OK;
  if (*start > 0) {
    memmove(*buf, *buf + *start, *len - *start);
    *len -= *start;
    *start = 0;
    if (*cap - *len >= n)
      return TN_OK;
  }
  need = *len + n;
  c = *cap ? *cap : 4096;
  while (c < need)
    c *= 2;
  p = realloc(*buf, c);
  if (p == NULL)
    return TN_ERR_NOMEM;
  *buf = p;
  *cap = c;
  return TN_OK;
}

static int queue_frame(tn_mux *m, bool control, uint8_t type, uint16_t flags, uint32_t id, uint32_t length,
                       const uint8_t *payload, size_t payload_len)
{
  struct tn_frame_header h = { TN_FRAME_VERSION, type, flags, id, length };
  uint8_t **buf = control ? &m->ctl : &m->out;
  size_t *len = control ? &m->ctl_len : &m->out_len;
  int rc = control ? queue_reserve(&m->ctl, &m->ctl_start, &m->ctl_len, &m->ctl_cap, TN_FRAME_HEADER_LEN)
                   : queue_reserve(&m->out, &m->out_start, &m->out_len, &m->out_cap,
                                   TN_FRAME_HEADER_LEN + payload_len);

  if (rc != TN_OK)
    return rc;
  *len += tn_frame_encode(&h, *buf + *len, TN_FRAME_HEADER_LEN);
  if (payload_len > 0) {
    memcpy(*buf + *len, payload, payload_len);
    *len += payload_len;
  }
  m->stats.frames_out++;
  return TN_OK;
}

/* A frame that belongs to a stream's ordered sequence (data, SYN, ACK, FIN, RST). */
static int out_frame(tn_mux *m, uint8_t type, uint16_t flags, uint32_t id, uint32_t length,
                     const uint8_t *payload, size_t payload_len)
{
  return queue_frame(m, false, type, flags, id, length, payload, payload_len);
}

/* A session control frame (no payload): it may overtake stream data at a frame boundary. */
static int ctl_frame(tn_mux *m, uint8_t type, uint16_t flags, uint32_t id, uint32_t length)
{
  return queue_frame(m, true, type, flags, id, length, NULL, 0);
}

/* ---- session failure ---- */

static int session_fail(tn_mux *m, int err, uint32_t go_away_code)
{
  if (m->closed)
    return err;
  if (err == TN_ERR_PROTO)
    m->stats.protocol_errors++;
  if (m->error == NULL)
    m->error = tn_strerror(err);
  m->closed = true;
  if (!m->local_go_away) {
    m->local_go_away = true;
    ctl_frame(m, TN_FRAME_GO_AWAY, 0, 0, go_away_code);
  }
  close_all_streams(m);
  return err;
}

/* ---- public lifecycle ---- */

int tn_mux_new(tn_mux **out, enum tn_mux_role role, const struct tn_mux_callbacks *cb,
               const struct tn_mux_options *opt, void *session_user, uint64_t now_ms)
{
  tn_mux *m;

  *out = NULL;
  if ((role != TN_MUX_CLIENT && role != TN_MUX_SERVER) || cb == NULL || cb->on_stream_close == NULL ||
      cb->on_stream_data == NULL)
    return TN_ERR_ARG;
  m = calloc(1, sizeof(*m));
  if (m == NULL)
    return TN_ERR_NOMEM;
  if (opt != NULL)
    m->opt = *opt;
  else
    tn_mux_options_default(&m->opt);
  if (m->opt.initial_window == 0 || m->opt.max_window < m->opt.initial_window ||
      m->opt.max_frame_payload == 0 || m->opt.max_streams == 0) {
    free(m);
    return TN_ERR_ARG;
  }
  m->n_buckets = 16;
  m->buckets = calloc(m->n_buckets, sizeof(*m->buckets));
  if (m->buckets == NULL) {
    free(m);
    return TN_ERR_NOMEM;
  }
  m->role = role;
  m->cb = *cb;
  m->user = session_user;
  m->next_id = role == TN_MUX_CLIENT ? 1 : 2;
  m->now_ms = now_ms;
  m->last_rx_ms = now_ms;
  m->ping_sent_ms = now_ms;  /* the first keepalive ping one interval after the start */
  node_init(&m->streams);
  node_init(&m->blocked);
  node_init(&m->awaiting_ack);
  *out = m;
  return TN_OK;
}

void tn_mux_del(tn_mux *m)
{
  if (m == NULL)
    return;
  while (node_linked(&m->streams)) {
    struct mux_stream *s = NODE_OWNER(m->streams.next, struct mux_stream, all);
    stream_unlink(m, s);
    free(s);
  }
  free(m->buckets);
  free(m->out);
  free(m->ctl);
  free(m);
}

/* ---- receive ---- */

static bool peer_owns_id(const tn_mux *m, uint32_t id)
{
  /* The client (initiator) opens odd ids, so its peer's are odd for the server. */
  return (id & 1u) == (m->role == TN_MUX_SERVER ? 1u : 0u);
}

/* An id that was valid once (its stream ended) may still see the peer's in-flight frames. */
static bool id_was_used(const tn_mux *m, uint32_t id)
{
  if (peer_owns_id(m, id))
    return id <= m->peer_max_id;
  return id < m->next_id;
}

static int send_rst(tn_mux *m, uint32_t id)
{
  return out_frame(m, TN_FRAME_WINDOW_UPDATE, TN_FLAG_RST, id, 0, NULL, 0);
}

static int accept_syn(tn_mux *m, uint32_t id, struct mux_stream **out)
{
  struct mux_stream *s;
  void *user = NULL;

  *out = NULL;
  /*
   * Only a SYN for a stream that is open now is a duplicate. Ids need not arrive in order:
   * hashicorp/yamux takes ids at open time but sends SYNs through a shared queue.
   */
  if (!peer_owns_id(m, id) || stream_find(m, id) != NULL)
    return TN_ERR_PROTO;
  if (id > m->peer_max_id)
    m->peer_max_id = id;
  if (m->local_go_away || m->stats.streams_open >= m->opt.max_streams) {
    m->stats.streams_refused++;
    credit_gone(m, m->opt.initial_window);  /* yamux peers send data right after their SYN */
    return send_rst(m, id);
  }
  s = stream_new(m, id, NULL);
  if (s == NULL)
    return session_fail(m, TN_ERR_NOMEM, TN_GO_AWAY_INTERNAL_ERROR);
  s->acked = true;
  if (m->cb.on_stream_open == NULL || m->cb.on_stream_open(m, id, &user, m->user) != 0) {
    /* Refused before the application knew it: no on_stream_close owed. */
    if (m->closed)
      return TN_ERR_SESSION_CLOSED;
    if (stream_find(m, id) == s) {
      stream_unlink(m, s);
      free(s);
    }
    m->stats.streams_refused++;
    credit_gone(m, m->opt.initial_window);
    return send_rst(m, id);
  }
  if (m->closed)
    return TN_ERR_SESSION_CLOSED;
  s = stream_find(m, id);
  if (s == NULL)
    return TN_OK;  /* the application reset it from inside on_stream_open */
  s->user = user;
  m->stats.streams_accepted++;
  *out = s;
  return ctl_frame(m, TN_FRAME_WINDOW_UPDATE, TN_FLAG_ACK, id, s->recv_target - m->opt.initial_window);
}

static void notify_writable(tn_mux *m, struct mux_stream *s)
{
  if (!s->blocked || s->send_window == 0 || out_queued(m) >= m->opt.max_output_buffer)
    return;
  s->blocked = false;
  node_unlink(&s->blocked_node);
  if (m->cb.on_stream_writable != NULL)
    m->cb.on_stream_writable(m, s->id, s->user);
}

/* Remote FIN: tell the application, then end the stream if this side is done too. */
static void remote_fin(tn_mux *m, struct mux_stream *s)
{
  uint32_t id = s->id;

  s->remote_fin = true;
  s->fin_pending = false;
  if (m->cb.on_stream_fin != NULL)
    m->cb.on_stream_fin(m, id, s->user);
  if (m->closed)
    return;
  s = stream_find(m, id);
  if (s != NULL && s->local_fin)
    stream_close(m, s, TN_MUX_CLOSE_NORMAL);
}

/*
 * Flags common to Data and WindowUpdate. Returns the stream the frame is for (NULL when it
 * is to be ignored), or sets *err. FIN is deferred for Data frames until the payload is in.
 */
static struct mux_stream *stream_flags(tn_mux *m, const struct tn_frame_header *h, int *err)
{
  struct mux_stream *s;
  uint32_t id = h->stream_id;

  *err = TN_OK;
  if (id == 0) {
    *err = TN_ERR_PROTO;
    return NULL;
  }
  if (h->flags & TN_FLAG_SYN) {
    *err = accept_syn(m, id, &s);
    if (*err != TN_OK || s == NULL)
      return NULL;
  } else {
    s = stream_find(m, id);
    if (s == NULL) {
      if (!id_was_used(m, id))
        *err = TN_ERR_PROTO;  /* a stream that never existed */
      return NULL;
    }
    if (h->flags & TN_FLAG_ACK) {
      if (!s->acked) {
        s->acked = true;
        node_unlink(&s->ack_wait);
        if (m->cb.on_stream_ack != NULL) {
          m->cb.on_stream_ack(m, id, s->user);
          if (m->closed) {
            *err = TN_ERR_SESSION_CLOSED;
            return NULL;
          }
          s = stream_find(m, id);
          if (s == NULL)
            return NULL;
        }
      }
    }
  }
  if (h->flags & TN_FLAG_RST) {
    stream_close(m, s, TN_MUX_CLOSE_RESET_REMOTE);
    return NULL;
  }
  return s;
}

static int handle_window_update(tn_mux *m, const struct tn_frame_header *h)
{
  int err;
  struct mux_stream *s = stream_flags(m, h, &err);
  uint32_t id = h->stream_id;

  if (s == NULL)
    return err;
  if (h->length > UINT32_MAX - s->send_window)
    return TN_ERR_PROTO;  /* window overflow */
  s->send_window += h->length;
  if (h->flags & TN_FLAG_FIN) {
    if (s->remote_fin)
      return TN_ERR_PROTO;
    remote_fin(m, s);
    if (m->closed)
      return TN_ERR_SESSION_CLOSED;
    s = stream_find(m, id);
    if (s == NULL)
      return TN_OK;
  }
  if (h->length > 0)
    notify_writable(m, s);
  return m->closed ? TN_ERR_SESSION_CLOSED : TN_OK;
}

static int handle_data_header(tn_mux *m, const struct tn_frame_header *h)
{
  int err;
  struct mux_stream *s;

  /* No legal Data frame exceeds the largest window this side ever grants. */
  if (h->length > m->opt.max_window)
    return TN_ERR_PROTO;
  s = stream_flags(m, h, &err);
  m->rx = RX_PAYLOAD;
  m->payload_left = h->length;
  m->payload_stream = 0;
  if (s == NULL && err == TN_OK) {
    /* Payload for a finished stream is read and dropped, within the credit its end left (credit_gone). */
    if (h->length > m->dead_credit) {
      m->error = "data for closed streams beyond what their windows allowed";
      return TN_ERR_PROTO;
    }
    m->dead_credit -= h->length;
    m->stats.bytes_dropped += h->length;
  }
  if (s == NULL)
    return err;
  if (s->remote_fin || h->length > s->recv_window)
    return TN_ERR_PROTO;  /* data after FIN, or beyond the window */
  s->recv_window -= h->length;
  m->payload_stream = s->id;
  if (h->flags & TN_FLAG_FIN)
    s->fin_pending = true;
  if (h->length == 0) {
    m->rx = RX_HEADER;
    if (s->fin_pending)
      remote_fin(m, s);
  }
  return m->closed ? TN_ERR_SESSION_CLOSED : TN_OK;
}

static int handle_ping(tn_mux *m, const struct tn_frame_header *h)
{
  if (h->stream_id != 0)
    return TN_ERR_PROTO;
  if (h->flags & TN_FLAG_SYN)
    return ctl_frame(m, TN_FRAME_PING, TN_FLAG_ACK, 0, h->length);
  if (h->flags & TN_FLAG_ACK) {
    if (m->ping_outstanding && h->length == m->ping_id) {
      m->ping_outstanding = false;
      m->stats.last_rtt_ms = m->now_ms - m->ping_sent_ms;
      if (m->cb.on_ping_rtt != NULL)
        m->cb.on_ping_rtt(m, m->stats.last_rtt_ms, m->user);
    }
    return TN_OK;
  }
  return TN_ERR_PROTO;
}

static int handle_go_away(tn_mux *m, const struct tn_frame_header *h)
{
  if (h->stream_id != 0)
    return TN_ERR_PROTO;
  m->remote_go_away = true;
  if (m->cb.on_go_away != NULL)
    m->cb.on_go_away(m, h->length, m->user);
  return TN_OK;
}

static int handle_header(tn_mux *m)
{
  struct tn_frame_header h;

  if (tn_frame_decode(&h, m->hdr, TN_FRAME_HEADER_LEN) != TN_FRAME_HEADER_LEN)
    return TN_ERR_PROTO;
  m->stats.frames_in++;
  switch (h.type) {
  case TN_FRAME_DATA: return handle_data_header(m, &h);
  case TN_FRAME_WINDOW_UPDATE: return handle_window_update(m, &h);
  case TN_FRAME_PING: return handle_ping(m, &h);
  case TN_FRAME_GO_AWAY: return handle_go_away(m, &h);
  default: return TN_ERR_PROTO;
  }
}

/* Delivers (or drops) payload bytes of the current Data frame. */
static int handle_payload(tn_mux *m, const uint8_t *in, size_t n)
{
  struct mux_stream *s;
  uint32_t id = m->payload_stream;

  m->payload_left -= (uint32_t)n;
  if (id != 0 && (s = stream_find(m, id)) != NULL) {
    s->recv_held += (uint32_t)n;
    m->stats.bytes_in += n;
    m->cb.on_stream_data(m, id, in, n, s->user);
    if (m->closed)
      return TN_ERR_SESSION_CLOSED;
    if (m->payload_left == 0 && (s = stream_find(m, id)) != NULL && s->fin_pending)
      remote_fin(m, s);
  }
  if (m->payload_left == 0)
    m->rx = RX_HEADER;
  return m->closed ? TN_ERR_SESSION_CLOSED : TN_OK;
}

int tn_mux_feed(tn_mux *m, const uint8_t *in, size_t len)
{
  size_t pos = 0;
  int rc;

  if (m->closed)
    return TN_ERR_SESSION_CLOSED;
  if (len > 0)
    m->last_rx_ms = m->now_ms;
  while (pos < len) {
    if (m->rx == RX_HEADER) {
      size_t n = TN_FRAME_HEADER_LEN - m->hdr_have;
      struct tn_frame_header probe;
      if (n > len - pos)
        n = len - pos;
      memcpy(m->hdr + m->hdr_have, in + pos, n);
      m->hdr_have += n;
      pos += n;
      if (m->hdr_have < TN_FRAME_HEADER_LEN) {
        /* Judge version and type early so garbage is refused without waiting. */
        if (tn_frame_decode(&probe, m->hdr, m->hdr_have) == TN_ERR_INVALID)
          return session_fail(m, TN_ERR_PROTO, TN_GO_AWAY_PROTOCOL_ERROR);
        break;
      }
      m->hdr_have = 0;
      rc = handle_header(m);
    } else {
      size_t n = m->payload_left;
      if (n > len - pos)
        n = len - pos;
      rc = handle_payload(m, in + pos, n);
      pos += n;
    }
    if (rc == TN_ERR_SESSION_CLOSED || m->closed)
      return TN_ERR_SESSION_CLOSED;
    if (rc != TN_OK)
      return session_fail(m, rc, rc == TN_ERR_PROTO ? TN_GO_AWAY_PROTOCOL_ERROR : TN_GO_AWAY_INTERNAL_ERROR);
  }
  if (out_queued(m) + ctl_queued(m) > m->opt.max_output_buffer + MUX_CONTROL_SLACK)
    return session_fail(m, TN_ERR_PROTO, TN_GO_AWAY_PROTOCOL_ERROR);  /* peer is not reading */
  return TN_OK;
}

/* ---- send ---- */

/*
 * Gives waiting streams their turn, oldest first. Streams that re-block go to the back; when
 * the output buffer fills, the ones not reached keep their place at the front (round-robin,
 * so one busy stream cannot starve the rest).
 */
static void wake_blocked(tn_mux *m)
{
  struct mux_node ready, *it;

  /* Take the waiters aside: a callback may block again (re-queue) or close others. */
  node_init(&ready);
  ready.next = m->blocked.next;
  ready.prev = m->blocked.prev;
  ready.next->prev = &ready;
  ready.prev->next = &ready;
  node_init(&m->blocked);
  while (node_linked(&ready) && !m->closed && out_queued(m) < m->opt.max_output_buffer) {
    struct mux_stream *s = NODE_OWNER(ready.next, struct mux_stream, blocked_node);
    node_unlink(&s->blocked_node);
    node_append(&m->blocked, &s->blocked_node);
    notify_writable(m, s);
  }
  /* Put the ones not reached back in front, in their order. */
  while (node_linked(&ready)) {
    it = ready.prev;
    node_unlink(it);
    it->next = m->blocked.next;
    it->prev = &m->blocked;
    m->blocked.next->prev = it;
    m->blocked.next = it;
  }
}

/* Bytes of out's first frame not handed out yet, learning its size from its header when at a boundary. */
static size_t out_frame_rest(tn_mux *m)
{
  struct tn_frame_header h;

  if (m->out_frame_left == 0 && out_queued(m) > 0 &&
      tn_frame_decode(&h, m->out + m->out_start, out_queued(m)) == TN_FRAME_HEADER_LEN)
    m->out_frame_left = TN_FRAME_HEADER_LEN + (h.type == TN_FRAME_DATA ? (size_t)h.length : 0);
  return m->out_frame_left;
}

static size_t pending(tn_mux *m, const uint8_t **out, bool urgent_only)
{
  /* Control frames go first, but never into the middle of a frame already partly handed out. */
  if (ctl_queued(m) > 0 && m->out_frame_left == 0) {
    m->pending_ctl = true;
    *out = m->ctl + m->ctl_start;
    return ctl_queued(m);
  }
  m->pending_ctl = false;
  /* An idle session has released its buffer: no pointer arithmetic on NULL. */
  *out = m->out != NULL ? m->out + m->out_start : NULL;
  if (ctl_queued(m) > 0)
    return m->out_frame_left;  /* finish that frame; the control frames follow it */
  return urgent_only ? 0 : out_queued(m);
}

size_t tn_mux_pending(tn_mux *m, const uint8_t **out)
{
  return pending(m, out, false);
}

size_t tn_mux_pending_control(tn_mux *m, const uint8_t **out)
{
  return pending(m, out, true);
}

void tn_mux_consumed(tn_mux *m, size_t n)
{
  if (m->pending_ctl) {
    if (n > ctl_queued(m))
      n = ctl_queued(m);
    m->ctl_start += n;
    if (m->ctl_start == m->ctl_len) {
      m->ctl_start = m->ctl_len = 0;
      if (m->ctl_cap > 64u * 1024u) {
        free(m->ctl);
        m->ctl = NULL;
        m->ctl_cap = 0;
      }
    }
    m->pending_ctl = false;
    return;
  }
  if (n > out_queued(m))
    n = out_queued(m);
  while (n > 0) {
    size_t k = out_frame_rest(m);
    if (k == 0 || k > n)
      k = n;  /* k == 0: a header not whole yet cannot happen (frames are queued whole); stay safe */
    m->out_start += k;
    m->out_frame_left = m->out_frame_left > k ? m->out_frame_left - k : 0;
    n -= k;
  }
  if (m->out_start == m->out_len) {
    m->out_start = m->out_len = 0;
    m->out_frame_left = 0;
    /* An idle session keeps no output buffer: idle links must stay small. */
    if (m->out_cap > 64u * 1024u) {
      free(m->out);
      m->out = NULL;
      m->out_cap = 0;
    }
  }
  if (m->closed || out_queued(m) > m->opt.max_output_buffer / 2 || !node_linked(&m->blocked))
    return;
  wake_blocked(m);
}

static int check_open(const tn_mux *m)
{
  return m->closed ? TN_ERR_SESSION_CLOSED : TN_OK;
}

int tn_mux_open_stream(tn_mux *m, void *stream_user, uint32_t *id)
{
  struct mux_stream *s;
  int rc;

  if ((rc = check_open(m)) != TN_OK)
    return rc;
  if (m->local_go_away || m->remote_go_away || m->next_id > UINT32_MAX - 2)
    return TN_ERR_GOING_AWAY;
  if (m->stats.streams_open >= m->opt.max_streams)
    return TN_ERR_STREAM_LIMIT;
  s = stream_new(m, m->next_id, stream_user);
  if (s == NULL)
    return TN_ERR_NOMEM;
  rc = ctl_frame(m, TN_FRAME_WINDOW_UPDATE, TN_FLAG_SYN, s->id, s->recv_target - m->opt.initial_window);
  if (rc != TN_OK) {
    stream_unlink(m, s);
    free(s);
    return rc;
  }
  m->next_id += 2;
  node_append(&m->awaiting_ack, &s->ack_wait);
  m->stats.streams_opened++;
  *id = s->id;
  return TN_OK;
}

/* The stream id names on a session still running; NULL with *rc set otherwise. */
static struct mux_stream *live_stream(tn_mux *m, uint32_t id, int *rc)
{
  struct mux_stream *s;

  if ((*rc = check_open(m)) != TN_OK)
    return NULL;
  s = stream_find(m, id);
  if (s == NULL)
    *rc = TN_ERR_STREAM_CLOSED;
  return s;
}

/* As live_stream, and this side has not sent FIN on it. */
static struct mux_stream *writable_stream(tn_mux *m, uint32_t id, int *err)
{
  struct mux_stream *s = live_stream(m, id, err);

  if (s != NULL && s->local_fin) {
    *err = TN_ERR_STREAM_CLOSED;
    return NULL;
  }
  return s;
}

static void mark_blocked(tn_mux *m, struct mux_stream *s)
{
  s->blocked = true;
  if (!node_linked(&s->blocked_node))
    node_append(&m->blocked, &s->blocked_node);
}

long tn_mux_stream_write(tn_mux *m, uint32_t id, const uint8_t *data, size_t len)
{
  int err;
  struct mux_stream *s = writable_stream(m, id, &err);
  size_t done = 0;

  if (s == NULL)
    return err;
  while (done < len && s->send_window > 0 && out_queued(m) < m->opt.max_output_buffer) {
    size_t n = len - done;
    if (n > s->send_window)
      n = s->send_window;
    if (n > m->opt.max_frame_payload)
      n = m->opt.max_frame_payload;
    if (out_frame(m, TN_FRAME_DATA, 0, id, (uint32_t)n, data + done, n) != TN_OK)
      break;
    s->send_window -= (uint32_t)n;
    m->stats.bytes_out += n;
    done += n;
  }
  if (done < len)
    mark_blocked(m, s);
  return (long)done;
}

int tn_mux_stream_fin(tn_mux *m, uint32_t id)
{
  int rc;
  struct mux_stream *s = writable_stream(m, id, &rc);

  if (s == NULL)
    return rc;
  rc = out_frame(m, TN_FRAME_WINDOW_UPDATE, TN_FLAG_FIN, id, 0, NULL, 0);
  if (rc != TN_OK)
    return rc;
  s->local_fin = true;
  s->blocked = false;
  node_unlink(&s->blocked_node);
  if (s->remote_fin)
    stream_close(m, s, TN_MUX_CLOSE_NORMAL);
  return TN_OK;
}

int tn_mux_stream_reset(tn_mux *m, uint32_t id)
{
  int rc;
  struct mux_stream *s = live_stream(m, id, &rc);

  if (s == NULL)
    return rc;
  rc = send_rst(m, id);
  stream_close(m, s, TN_MUX_CLOSE_RESET_LOCAL);
  return rc;
}

int tn_mux_stream_consumed(tn_mux *m, uint32_t id, size_t n)
{
  uint32_t delta;
  int rc;
  struct mux_stream *s = live_stream(m, id, &rc);

  if (s == NULL)
    return rc;
  if (n > s->recv_held)
    return TN_ERR_ARG;
  s->recv_held -= (uint32_t)n;
  s->recv_unacked += (uint32_t)n;
  /* Like yamux: update only once half the window is used, so updates stay rare. */
  if (s->remote_fin || s->fin_pending || s->recv_unacked < s->recv_target / 2)
    return TN_OK;
  delta = s->recv_unacked;
  /*
   * Auto-tuning: if the peer used half the window within two round trips, the window
   * (not the path) is the bottleneck; double it up to max_window.
   */
  if (m->stats.last_rtt_ms > 0 && s->recv_target < m->opt.max_window &&
      m->now_ms - s->last_update_ms < 2 * m->stats.last_rtt_ms) {
    uint32_t grow = s->recv_target;
    if (grow > m->opt.max_window - s->recv_target)
      grow = m->opt.max_window - s->recv_target;
    s->recv_target += grow;
    delta += grow;
  }
  rc = ctl_frame(m, TN_FRAME_WINDOW_UPDATE, 0, id, delta);
  if (rc != TN_OK)
    return rc;
  s->recv_window += delta;
  s->recv_unacked = 0;
  s->last_update_ms = m->now_ms;
  return TN_OK;
}

size_t tn_mux_stream_send_window(const tn_mux *m, uint32_t id)
{
  const struct mux_stream *s = m->closed ? NULL : stream_find(m, id);

  return s != NULL && !s->local_fin ? s->send_window : 0;
}

void *tn_mux_stream_user(const tn_mux *m, uint32_t id)
{
  const struct mux_stream *s = stream_find(m, id);

  return s != NULL ? s->user : NULL;
}

int tn_mux_stream_set_user(tn_mux *m, uint32_t id, void *stream_user)
{
  struct mux_stream *s = stream_find(m, id);

  if (s == NULL)
    return TN_ERR_STREAM_CLOSED;
  s->user = stream_user;
  return TN_OK;
}

/* ---- session control ---- */

int tn_mux_ping(tn_mux *m)
{
  int rc;

  if ((rc = check_open(m)) != TN_OK)
    return rc;
  m->ping_id++;
  m->ping_outstanding = true;
  m->ping_sent_ms = m->now_ms;
  return ctl_frame(m, TN_FRAME_PING, TN_FLAG_SYN, 0, m->ping_id);
}

int tn_mux_go_away(tn_mux *m, uint32_t code)
{
  int rc;

  if ((rc = check_open(m)) != TN_OK)
    return rc;
  if (m->local_go_away)
    return TN_OK;
  m->local_go_away = true;
  return ctl_frame(m, TN_FRAME_GO_AWAY, 0, 0, code);
}

void tn_mux_set_time(tn_mux *m, uint64_t now_ms)
{
  if (now_ms > m->now_ms)
    m->now_ms = now_ms;
}

uint64_t tn_mux_silent_ms(const tn_mux *m, uint64_t now_ms)
{
  uint64_t now = now_ms > m->now_ms ? now_ms : m->now_ms;

  return now - m->last_rx_ms;
}

int tn_mux_tick(tn_mux *m, uint64_t now_ms)
{
  uint64_t silent;

  if (m->closed)
    return TN_ERR_SESSION_CLOSED;
  tn_mux_set_time(m, now_ms);
  silent = tn_mux_silent_ms(m, m->now_ms);
  if (m->opt.dead_peer_timeout_ms > 0 && silent >= m->opt.dead_peer_timeout_ms) {
    m->closed = true;
    close_all_streams(m);
    return TN_ERR_TIMEOUT;
  }
  /*
   * One ping per keepalive interval, busy or not: silence is what the dead-peer timeout judges, and the answer
   * keeps the round trip measured (stats.last_rtt_ms) while data flows too. An unanswered one is re-sent.
   */
  if (m->opt.keepalive_interval_ms > 0 && m->now_ms - m->ping_sent_ms >= m->opt.keepalive_interval_ms)
    tn_mux_ping(m);
  while (m->opt.open_timeout_ms > 0 && node_linked(&m->awaiting_ack) && !m->closed) {
    struct mux_stream *s = NODE_OWNER(m->awaiting_ack.next, struct mux_stream, ack_wait);
    if (m->now_ms - s->opened_ms < m->opt.open_timeout_ms)
      break;
    send_rst(m, s->id);
    stream_close(m, s, TN_MUX_CLOSE_OPEN_TIMEOUT);
  }
  return m->closed ? TN_ERR_SESSION_CLOSED : TN_OK;
}

void tn_mux_terminate(tn_mux *m)
{
  if (m->closed)
    return;
  m->closed = true;
  close_all_streams(m);
}

int tn_mux_is_closed(const tn_mux *m)
{
  return m->closed || (m->local_go_away && m->remote_go_away && m->stats.streams_open == 0);
}

int tn_mux_is_going_away(const tn_mux *m)
{
  return m->local_go_away || m->remote_go_away;
}

void tn_mux_get_stats(const tn_mux *m, struct tn_mux_stats *stats)
{
  *stats = m->stats;
}

void *tn_mux_user(const tn_mux *m)
{
  return m->user;
}

const char *tn_mux_error(const tn_mux *m)
{
  return m->error;
}
