/* link.c: a tunnel connection on libuv (socket + tn_tls + tn_mux). */
#include "tunnel/link.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "splice.h"
#include "tunnel/addr.h"
#include "tunnel/control.h"
#include "tunnel/defaults.h"
#include "tunnel/error.h"
#include "tunnel/log.h"

/* A TLS record: type, version, 16-bit length; a ClientHello comes in a handshake record. */
#define TLS_RECORD_HEADER 5
#define TLS_HANDSHAKE_RECORD 0x16
/* Plaintext is read out of TLS in pieces this big (one full record). */
#define LINK_PLAINTEXT_CHUNK 16384u
/* Raw (management) links: plaintext queued before tn_link_send refuses, unless the owner sets its own. */
#define LINK_MAX_RAW_OUTPUT (4u * 1024u * 1024u)
/* The mux tick: a quarter of the keepalive interval, but no busier than 20/s and no lazier than 1/s. */
#define LINK_TICK_MIN_MS 50u
#define LINK_TICK_MAX_MS 1000u
/* Control messages being received at once per link; more are refused (RST), so a peer cannot pin much memory. */
#define LINK_MAX_INCOMING_MESSAGES 4u
/* Bound the work per socket read callback so one busy link cannot starve the loop. */
#define LINK_READ_BUFFER (64u * 1024u)
/*
 * What may wait ahead of a keepalive ping or its answer: stream data is taken from the mux only while TLS holds
 * less than LINK_TLS_AHEAD bytes of records not yet written, and the kernel keeps at most about
 * LINK_NOTSENT_LOWAT bytes it has not sent (TCP_NOTSENT_LOWAT; bytes in flight are the path's own, bounded by
 * its congestion window). The rest waits in the mux, where control frames overtake it, so a busy link's ping
 * round trip stays near the path's. 64 KiB keeps a gigabit loopback link at full speed.
 */
#define LINK_TLS_AHEAD (64u * 1024u)
#define LINK_NOTSENT_LOWAT (64 * 1024)

struct tn_link {
  uv_tcp_t tcp;
  uv_timer_t timer;       /* handshake deadline, then the mux tick */
  uv_check_t flush;       /* end-of-iteration output flush */
  uv_connect_t connect_req;
  uv_write_t write_req;
  size_t write_len;       /* ciphertext bytes in the write in flight */
  bool write_in_flight;

  tn_tls *tls;
  tn_mux *mux;
  struct tn_link_options opt;
  char *server_name;
  const struct tn_link_callbacks *cb;
  void *data;

  bool connected;         /* TCP is up */
  bool established;       /* TLS is up, mux runs */
  bool closing;
  bool draining;          /* after tn_link_go_away: close once the streams have ended */
  bool tick_due;          /* the keepalive timer fired; the mux ticks in the check phase */
  bool hello_answered;    /* the handshake produced a reply to the peer's input: its hello was whole and acceptable */
  uint64_t hello_progress_ms; /* loop time of the handshake's latest reply to a whole flight of the peer's */
  unsigned incoming_msgs; /* control messages being received (LINK_MAX_INCOMING_MESSAGES) */
  int connect_error;      /* a connect that failed at once, reported from the timer */
  int handles_open;
  char peer_address[TN_ADDR_STRLEN];
  struct tn_addr peer_addr;  /* TN_AF_UNSPEC until known */
  struct tn_tls_peer peer;
  /* raw mode: plaintext waiting for TLS */
  uint8_t *raw_out;
  size_t raw_start;       /* raw_out[raw_start, raw_start + raw_len) waits for TLS */
  size_t raw_len;
  size_t raw_cap;
  const char *close_when_flushed;
  uint8_t plaintext[LINK_PLAINTEXT_CHUNK];
};

static void link_flush(tn_link *l);

/*
 * A control message on a client-opened (odd) stream: being received whole (server) or sent (client).
 * Public connections use the server's even ids only, so the parity tells the two kinds of stream apart.
 */
struct link_msg {
  tn_link *link;
  uint32_t id;
  bool sending;
  uint8_t *buf;
  size_t len;
  size_t cap;
  size_t sent;
};

static bool link_id_is_msg(uint32_t id)
{
  return (id & 1u) != 0;
}

static const struct tn_link_callbacks no_callbacks;

void tn_link_options_default(struct tn_link_options *opt)
{
  memset(opt, 0, sizeof(*opt));
  tn_mux_options_default(&opt->mux);
  opt->handshake_timeout_ms = TN_DEFAULT_HANDSHAKE_TIMEOUT_MS;
  opt->max_raw_output = LINK_MAX_RAW_OUTPUT;
}

/* ---- stream routing: the mux reports, the pipe that owns the stream acts ---- */

static void msg_free(struct link_msg *msg)
{
  free(msg->buf);
  free(msg);
}

static int msg_accept(tn_link *l, uint32_t id, void **stream_user)
{
  struct link_msg *msg;

  if (l->cb->on_message == NULL || l->incoming_msgs >= LINK_MAX_INCOMING_MESSAGES ||
      (msg = calloc(1, sizeof(*msg))) == NULL)
    return -1;
  l->incoming_msgs++;
  msg->link = l;
  msg->id = id;
  *stream_user = msg;
  return 0;
}

static void msg_on_data(tn_mux *m, struct link_msg *msg, const uint8_t *data, size_t len)
{
  tn_link *l = msg->link;

  if (msg->sending)
    return;
  if (msg->len + len > TN_CTL_MAX_LEN) {
    tn_mux_go_away(m, TN_GO_AWAY_PROTOCOL_ERROR);  /* the close keeps the code a going-away link already sent */
    tn_link_close(l, "protocol error from peer: control message longer than 262144 bytes");
    return;
  }
  if (msg->len + len > msg->cap) {
    size_t cap = msg->cap ? msg->cap : 1024;
    uint8_t *nb;
    while (cap < msg->len + len)
      cap *= 2;
    if (cap > TN_CTL_MAX_LEN)
      cap = TN_CTL_MAX_LEN;
    if ((nb = realloc(msg->buf, cap)) == NULL) {
      tn_mux_stream_reset(m, msg->id);
      return;
    }
    msg->buf = nb;
    msg->cap = cap;
  }
  memcpy(msg->buf + msg->len, data, len);
  msg->len += len;
  tn_mux_stream_consumed(m, msg->id, len);
}

static void msg_on_fin(tn_mux *m, struct link_msg *msg)
{
  tn_link *l = msg->link;
  uint32_t id = msg->id;

  if (msg->sending)
    return;
  /* The callback may close the link, which frees msg through on_stream_close. */
  l->cb->on_message(l, msg->buf, msg->len);
  if (!l->closing && tn_mux_stream_user(m, id) == msg)
    tn_mux_stream_fin(m, id);
  tn_link_want_flush(l);
}

static void msg_push(tn_mux *m, struct link_msg *msg)
{
  long w = tn_mux_stream_write(m, msg->id, msg->buf + msg->sent, msg->len - msg->sent);

  if (w < 0)
    return;
  msg->sent += (size_t)w;
  if (msg->sent == msg->len)
    tn_mux_stream_fin(m, msg->id);
  tn_link_want_flush(msg->link);
}

int tn_link_send_message(tn_link *l, const uint8_t *data, size_t len)
{
  struct link_msg *msg;
  int rc;

  if (len > TN_CTL_MAX_LEN)
    return TN_ERR_TOO_LARGE;
  if (l->closing || !l->established || l->mux == NULL)
    return TN_ERR_SESSION_CLOSED;
  if ((msg = calloc(1, sizeof(*msg))) == NULL || (msg->buf = malloc(len ? len : 1)) == NULL) {
    free(msg);
    return TN_ERR_NOMEM;
  }
  msg->link = l;
  msg->sending = true;
  memcpy(msg->buf, data, len);
  msg->len = msg->cap = len;
  if ((rc = tn_mux_open_stream(l->mux, msg, &msg->id)) != TN_OK) {
    msg_free(msg);
    return rc;
  }
  msg_push(l->mux, msg);
  return TN_OK;
}

static int mux_on_stream_open(tn_mux *m, uint32_t id, void **stream_user, void *session_user)
{
  tn_link *l = session_user;
  tn_pipe *p;

  (void)m;
  if (l->closing || l->draining)
    return -1;
  if (link_id_is_msg(id))
    return msg_accept(l, id, stream_user);
  if (l->cb->on_stream_open == NULL)
    return -1;
  p = l->cb->on_stream_open(l, id);
  if (p == NULL)
    return -1;
  *stream_user = p;
  return 0;
}

static void mux_on_stream_data(tn_mux *m, uint32_t id, const uint8_t *data, size_t len, void *stream_user)
{
  if (stream_user == NULL)
    return;
  if (link_id_is_msg(id))
    msg_on_data(m, stream_user, data, len);
  else
    tn_pipe__on_data(stream_user, data, len);
}

static void mux_on_stream_fin(tn_mux *m, uint32_t id, void *stream_user)
{
  if (stream_user == NULL)
    return;
  if (link_id_is_msg(id))
    msg_on_fin(m, stream_user);
  else
    tn_pipe__on_fin(stream_user);
}

static void mux_on_stream_writable(tn_mux *m, uint32_t id, void *stream_user)
{
  if (stream_user == NULL)
    return;
  if (link_id_is_msg(id)) {
    struct link_msg *msg = stream_user;
    if (msg->sending && msg->sent < msg->len)
      msg_push(m, msg);
  } else {
    tn_pipe__on_writable(stream_user);
  }
}

static void mux_on_stream_close(tn_mux *m, uint32_t id, int reason, void *stream_user)
{
  tn_link *l = tn_mux_user(m);
  struct tn_mux_stats st;

  if (stream_user != NULL && link_id_is_msg(id)) {
    struct link_msg *msg = stream_user;
    if (msg->sending && l->cb->on_message_done != NULL)
      l->cb->on_message_done(l, msg->buf, msg->len, reason == TN_MUX_CLOSE_NORMAL);
    if (!msg->sending)
      l->incoming_msgs--;
    msg_free(msg);
  } else if (stream_user != NULL) {
    tn_pipe__on_stream_close(stream_user, reason);
  }
  tn_mux_get_stats(m, &st);
  if (l->draining && st.streams_open == 0 && !l->closing && l->cb->on_drained != NULL)
    l->cb->on_drained(l);
}

static void mux_on_go_away(tn_mux *m, uint32_t code, void *session_user)
{
  tn_link *l = session_user;
  (void)m;
  if (l->cb->on_go_away != NULL)
    l->cb->on_go_away(l, code);
}

static void mux_on_ping_rtt(tn_mux *m, uint64_t rtt_ms, void *session_user)
{
  tn_link *l = session_user;
  (void)m;
  if (!l->closing && l->cb->on_pong != NULL)
    l->cb->on_pong(l, rtt_ms);
}

static const struct tn_mux_callbacks link_mux_callbacks = {
  .on_ping_rtt = mux_on_ping_rtt,
  .on_stream_open = mux_on_stream_open,
  .on_stream_data = mux_on_stream_data,
  .on_stream_fin = mux_on_stream_fin,
  .on_stream_writable = mux_on_stream_writable,
  .on_stream_close = mux_on_stream_close,
  .on_go_away = mux_on_go_away,
};

/* ---- teardown ---- */

static void link_free(tn_link *l)
{
  tn_mux_del(l->mux);
  free(l->raw_out);
  tn_tls_del(l->tls);
  tn_tls_config_unref(l->opt.tls);
  free(l->server_name);
  free(l);
}

static void on_handle_closed(uv_handle_t *h)
{
  tn_link *l = h->data;

  if (--l->handles_open == 0)
    link_free(l);
}

void tn_link_close(tn_link *l, const char *reason)
{
  if (l->closing)
    return;
  l->closing = true;
  if (l->established && l->mux != NULL) {
    /* Best effort: tell the peer, in the same flush, that we are leaving on purpose. */
    tn_mux_go_away(l->mux, TN_GO_AWAY_NORMAL);
    link_flush(l);
  }
  if (l->mux != NULL)
    tn_mux_terminate(l->mux);
  if (l->cb->on_closed != NULL)
    l->cb->on_closed(l, reason);
  uv_read_stop((uv_stream_t *)&l->tcp);
  uv_close((uv_handle_t *)&l->timer, on_handle_closed);
  uv_close((uv_handle_t *)&l->flush, on_handle_closed);
  uv_close((uv_handle_t *)&l->tcp, on_handle_closed);
}

static void link_fail(tn_link *l, const char *what, const char *detail)
{
  char reason[640];  /* a TLS refusal names the certificate: CN and fingerprint */

  snprintf(reason, sizeof(reason), "%s%s%s", what, detail && *detail ? ": " : "", detail ? detail : "");
  tn_link_close(l, reason);
}

/* ---- output ---- */

static void on_write_done(uv_write_t *req, int status)
{
  tn_link *l = req->data;

  l->write_in_flight = false;
  if (l->closing)
    return;
  if (status < 0) {
    link_fail(l, "write failed", uv_strerror(status));
    return;
  }
  tn_tls_consumed(l->tls, l->write_len);
  link_flush(l);
}

/*
 * Moves mux output into TLS records and TLS output onto the socket until one of them is
 * stuck: TLS full (a write in flight) or the socket's buffer full (uv_write takes the rest).
 */
static void link_flush(tn_link *l)
{
  const uint8_t *p;
  size_t n;

  if (l->tls == NULL || !l->connected)
    return;
  for (;;) {
    bool progress = false;

    /* Plaintext waiting for TLS: the mux's output, or raw bytes on a management link. */
    while (l->established) {
      long w;
      if (l->opt.raw) {
        p = l->raw_out + l->raw_start;
        n = l->raw_len;
      } else if (tn_tls_pending(l->tls, NULL) < LINK_TLS_AHEAD) {
        n = tn_mux_pending(l->mux, &p);
      } else {
        n = tn_mux_pending_control(l->mux, &p);
      }
      if (n == 0)
        break;
      w = tn_tls_write(l->tls, p, n);
      if (w < 0) {
        if (!l->closing)
          link_fail(l, "TLS write failed", tn_tls_error_text(l->tls));
        return;
      }
      if (w == 0)
        break;  /* TLS queue full: the socket write below makes room */
      if (l->opt.raw) {
        /* An offset, not a memmove per record: a large response would cost its size squared over 16 KiB. */
        l->raw_start += (size_t)w;
        l->raw_len -= (size_t)w;
        if (l->raw_len == 0)
          l->raw_start = 0;
      } else {
        tn_mux_consumed(l->mux, (size_t)w);  /* may wake writers, who queue more */
      }
      progress = true;
    }
    if (l->write_in_flight)
      return;
    n = tn_tls_pending(l->tls, &p);
    if (n == 0) {
      if (l->close_when_flushed != NULL && l->raw_len == 0 && !l->closing)
        tn_link_close(l, l->close_when_flushed);
      return;
    }
    {
      uv_buf_t buf = uv_buf_init((char *)(uintptr_t)p, (unsigned)n);
      int r = uv_try_write((uv_stream_t *)&l->tcp, &buf, 1);
      if (r == UV_EAGAIN)
        r = 0;
      if (r < 0) {
        if (!l->closing)
          link_fail(l, "write failed", uv_strerror(r));
        return;
      }
      if ((size_t)r < n) {
        /* The kernel is full: hand the rest to libuv; TLS output stays put until it is done. */
        tn_tls_consumed(l->tls, (size_t)r);
        n = tn_tls_pending(l->tls, &p);
        buf = uv_buf_init((char *)(uintptr_t)p, (unsigned)n);
        l->write_len = n;
        l->write_req.data = l;
        r = uv_write(&l->write_req, (uv_stream_t *)&l->tcp, &buf, 1, on_write_done);
        if (r < 0) {
          if (!l->closing)
            link_fail(l, "write failed", uv_strerror(r));
          return;
        }
        l->write_in_flight = true;
        return;
      }
      tn_tls_consumed(l->tls, (size_t)r);
      progress = true;
    }
    if (!progress)
      return;
  }
}

/* Keepalive and liveness. Returns false once the link is closing (the peer was silent too long). */
static bool link_tick(tn_link *l)
{
  int rc = tn_mux_tick(l->mux, uv_now(l->tcp.loop));

  if (rc == TN_ERR_TIMEOUT) {
    char why[96];
    snprintf(why, sizeof(why), "peer silent for %llu ms (dead-peer timeout)",
             (unsigned long long)l->opt.mux.dead_peer_timeout_ms);
    tn_link_close(l, why);
    return false;
  }
  return !l->closing;
}

/*
 * True when the kernel holds bytes from the peer that no poll has delivered yet. The check phase normally follows a
 * poll that read them, but not always: a process stopped and resumed (SIGSTOP/SIGCONT, a frozen VM) gets EINTR
 * from epoll_wait, and libuv then goes on to the check phase with nothing read.
 */
static bool link_input_waiting(const tn_link *l)
{
  uv_os_fd_t fd;
  int n = 0;

  return uv_fileno((const uv_handle_t *)&l->tcp, &fd) == 0 && ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

static void on_flush_check(uv_check_t *h)
{
  tn_link *l = h->data;

  uv_check_stop(&l->flush);
  if (l->tick_due && !l->closing && l->mux != NULL) {
    uint64_t now = uv_now(l->tcp.loop);
    /* A link about to be called dead with input waiting is judged again after the next poll has read it. */
    bool defer = l->opt.mux.dead_peer_timeout_ms > 0 &&
                 tn_mux_silent_ms(l->mux, now) >= l->opt.mux.dead_peer_timeout_ms && link_input_waiting(l);
    if (!defer) {
      l->tick_due = false;
      if (!link_tick(l))
        return;
    }
  }
  if (!l->closing)
    link_flush(l);
}

void tn_link_want_flush(tn_link *l)
{
  if (!l->closing)
    uv_check_start(&l->flush, on_flush_check);
}

/* ---- input ---- */

/*
 * The timer only asks for a tick; the tick itself runs in the check phase, after this loop iteration's poll has
 * read whatever the peer sent. Timers run before the poll, so a tick taken here would judge silence before reading
 * input that is already waiting: a process kept off the CPU for longer than the dead-peer timeout (a loaded
 * machine, a busy iteration) would call a live, talking peer dead. Silence must mean a poll found nothing.
 */
static void on_tick(uv_timer_t *t)
{
  tn_link *l = t->data;

  l->tick_due = true;
  tn_link_want_flush(l);
}

static void on_handshake_timeout(uv_timer_t *t)
{
  tn_link *l = t->data;

  if (l->connect_error != 0) {
    link_fail(l, "connect failed", uv_strerror(l->connect_error));
    return;
  }
  tn_link_close(l, l->connected ? "TLS handshake timed out" : "connect timed out");
}

static int link_start_mux(tn_link *l)
{
  uint64_t tick;
  enum tn_mux_role role = tn_tls_config_role(l->opt.tls) == TN_TLS_CLIENT ? TN_MUX_CLIENT : TN_MUX_SERVER;
  int rc;

  tn_tls_peer_identity(l->tls, &l->peer);
  if (l->opt.raw) {
    /* Raw links have no keepalive of their own; their owner times them out. */
    l->established = true;
    uv_timer_stop(&l->timer);
    return TN_OK;
  }
  rc = tn_mux_new(&l->mux, role, &link_mux_callbacks, &l->opt.mux, l, uv_now(l->tcp.loop));
  if (rc != TN_OK)
    return rc;
  l->established = true;
  /* Tick often enough to notice silence within a fraction of the keepalive interval. */
  tick = l->opt.mux.keepalive_interval_ms / 4;
  if (tick < LINK_TICK_MIN_MS)
    tick = LINK_TICK_MIN_MS;
  if (tick > LINK_TICK_MAX_MS)
    tick = LINK_TICK_MAX_MS;
  uv_timer_stop(&l->timer);
  uv_timer_start(&l->timer, on_tick, tick, tick);
  return TN_OK;
}

/* Feeds decrypted bytes to the mux. Returns false once the link is closing. */
static bool link_read_plaintext(tn_link *l)
{
  for (;;) {
    long n = tn_tls_read(l->tls, l->plaintext, sizeof(l->plaintext));
    int rc;

    if (n == TN_ERR_NEED_MORE)
      return true;
    if (n == 0) {
      tn_link_close(l, "peer closed the TLS session");
      return false;
    }
    if (n < 0) {
      link_fail(l, "TLS error", tn_tls_error_text(l->tls));
      return false;
    }
    if (l->opt.raw) {
      if (l->cb->on_data != NULL)
        l->cb->on_data(l, l->plaintext, (size_t)n);
      if (l->closing)
        return false;
      continue;
    }
    rc = tn_mux_feed(l->mux, l->plaintext, (size_t)n);
    if (l->closing)
      return false;
    if (rc == TN_ERR_PROTO) {
      const char *why = tn_mux_error(l->mux);
      link_flush(l);  /* deliver our GoAway(protocol error) */
      link_fail(l, "protocol error from peer", why != NULL && strcmp(why, tn_strerror(rc)) != 0 ? why : NULL);
      return false;
    }
    if (TN_IS_FATAL(rc)) {
      link_flush(l);  /* after a fatal code the session may still hand out what it queued (its GoAway) */
      tn_link_close(l, tn_strerror(rc));
      return false;
    }
    if (rc != TN_OK) {
      tn_link_close(l, tn_strerror(rc));
      return false;
    }
  }
}

/* The peer's input completed a flight the handshake answered: the admission probes below read this. */
static void link_note_hello_progress(tn_link *l)
{
  l->hello_answered = true;
  l->hello_progress_ms = uv_now(l->tcp.loop);
}

static void link_on_ciphertext(tn_link *l, const uint8_t *in, size_t len)
{
  while (len > 0 && !l->closing) {
    size_t fed = tn_tls_feed(l->tls, in, len);

    in += fed;
    len -= fed;
    if (!l->established) {
      int rc = tn_tls_handshake(l->tls);
      const uint8_t *reply;
      if (rc == TN_ERR_NEED_MORE && tn_tls_pending(l->tls, &reply) > 0)
        link_note_hello_progress(l);
      if (rc == TN_ERR_NEED_MORE) {
        if (fed == 0) {
          link_fail(l, "TLS handshake failed", "input buffer stuck");
          return;
        }
        continue;
      }
      if (rc != TN_OK) {
        link_flush(l);  /* the alert, so the peer learns why */
        link_fail(l, "TLS handshake failed", tn_tls_error_text(l->tls));
        return;
      }
      if (link_start_mux(l) != TN_OK) {
        tn_link_close(l, "out of memory");
        return;
      }
      if (l->cb->on_established != NULL)
        l->cb->on_established(l, &l->peer);
      if (l->closing)
        return;
    }
    if (l->mux != NULL)
      tn_mux_set_time(l->mux, uv_now(l->tcp.loop));  /* input and ping RTTs carry their arrival time */
    if (!link_read_plaintext(l))
      return;
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  (void)h;
  (void)suggested;
  buf->base = malloc(LINK_READ_BUFFER);
  buf->len = buf->base != NULL ? LINK_READ_BUFFER : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
  tn_link *l = s->data;

  if (nread > 0) {
    link_on_ciphertext(l, (const uint8_t *)buf->base, (size_t)nread);
    if (!l->closing)
      link_flush(l);
  } else if (nread < 0 && !l->closing) {
    if (nread == UV_EOF)
      tn_link_close(l, l->established ? "peer closed the connection" : "peer closed during TLS handshake");
    else
      link_fail(l, "read failed", uv_strerror((int)nread));
  }
  free(buf->base);
}

/* ---- setup ---- */

static tn_link *link_new(uv_loop_t *loop, const struct tn_link_options *opt, const struct tn_link_callbacks *cb,
                         void *data)
{
  tn_link *l = calloc(1, sizeof(*l));

  if (l == NULL)
    return NULL;
  l->opt = *opt;
  l->cb = cb;
  l->data = data;
  if (opt->server_name != NULL && (l->server_name = strdup(opt->server_name)) == NULL) {
    free(l);
    return NULL;
  }
  l->opt.server_name = l->server_name;
  tn_tls_config_ref(opt->tls);
  uv_tcp_init(loop, &l->tcp);
  uv_timer_init(loop, &l->timer);
  uv_check_init(loop, &l->flush);
  l->tcp.data = l->timer.data = l->flush.data = l;
  l->handles_open = 3;
  strcpy(l->peer_address, "-");
  return l;
}

static void record_peer_address(tn_link *l)
{
  struct sockaddr_storage ss;
  struct tn_addr a;
  int len = sizeof(ss);

  if (uv_tcp_getpeername(&l->tcp, (struct sockaddr *)&ss, &len) != 0)
    return;
  tn_addr_from_sockaddr(&a, (const struct sockaddr *)&ss);
  tn_addr_format(&a, l->peer_address, sizeof(l->peer_address));
  l->peer_addr = a;
}

/* TCP is up: start TLS and reading. */
/* Returns 0, or a libuv code (a TLS context that cannot be made is UV_ENOMEM) with *why saying what failed. */
static int link_start_tls(tn_link *l, const char **why)
{
  int rc;

  l->connected = true;
  record_peer_address(l);
  uv_tcp_nodelay(&l->tcp, 1);
#ifdef TCP_NOTSENT_LOWAT
  {
    uv_os_fd_t fd;
    int lowat = LINK_NOTSENT_LOWAT;
    /* Best effort: without it (an old kernel) only the TLS bound holds. */
    if (uv_fileno((const uv_handle_t *)&l->tcp, &fd) == 0)
      (void)setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
  }
#endif
  rc = tn_tls_new(&l->tls, l->opt.tls, l->server_name);
  if (rc != TN_OK) {
    *why = tn_strerror(rc);
    return UV_ENOMEM;
  }
  if (tn_tls_config_role(l->opt.tls) == TN_TLS_CLIENT)
    tn_tls_handshake(l->tls);  /* queues the ClientHello */
  rc = uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
  if (rc != 0) {
    *why = uv_strerror(rc);
    return rc;
  }
  link_flush(l);
  return 0;
}

int tn_link_accept(tn_link **out, uv_stream_t *listener, const struct tn_link_options *opt,
                   const struct tn_link_callbacks *cb, void *data)
{
  tn_link *l = link_new(listener->loop, opt, cb, data);
  int rc;

  *out = NULL;
  if (l == NULL)
    return UV_ENOMEM;
  rc = uv_accept(listener, (uv_stream_t *)&l->tcp);
  if (rc == 0) {
    const char *why;
    uv_timer_start(&l->timer, on_handshake_timeout, opt->handshake_timeout_ms, 0);
    rc = link_start_tls(l, &why);
  }
  if (rc != 0) {
    /* Not reported through on_closed: the caller never had the link. */
    l->cb = &no_callbacks;
    l->closing = true;
    uv_close((uv_handle_t *)&l->timer, on_handle_closed);
    uv_close((uv_handle_t *)&l->flush, on_handle_closed);
    uv_close((uv_handle_t *)&l->tcp, on_handle_closed);
    return rc;
  }
  *out = l;
  return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
  tn_link *l = req->data;
  const char *why;

  if (l->closing)
    return;
  if (status < 0) {
    link_fail(l, "connect failed", uv_strerror(status));
    return;
  }
  if (link_start_tls(l, &why) != 0)
    link_fail(l, "TLS setup failed", why);
}

int tn_link_connect(tn_link **out, uv_loop_t *loop, const struct sockaddr *addr, const struct tn_link_options *opt,
                    const struct tn_link_callbacks *cb, void *data)
{
  tn_link *l = link_new(loop, opt, cb, data);
  struct tn_addr peer;
  int rc;

  *out = NULL;
  if (l == NULL)
    return UV_ENOMEM;
  /* The dialled address until getpeername confirms it: a failed attempt is logged naming where it went. */
  tn_addr_from_sockaddr(&peer, addr);
  tn_addr_format(&peer, l->peer_address, sizeof(l->peer_address));
  l->connect_req.data = l;
  uv_timer_start(&l->timer, on_handshake_timeout, opt->handshake_timeout_ms, 0);
  rc = uv_tcp_connect(&l->connect_req, &l->tcp, addr, on_connect);
  if (rc != 0) {
    /* Reported from the loop like every other failure, never from inside this call. */
    l->connect_error = rc;
    uv_timer_start(&l->timer, on_handshake_timeout, 0, 0);
  }
  *out = l;
  return 0;
}

void tn_link_go_away(tn_link *l)
{
  struct tn_mux_stats st;

  if (l->closing || !l->established || l->draining || l->mux == NULL)
    return;
  l->draining = true;
  tn_mux_go_away(l->mux, TN_GO_AWAY_NORMAL);
  tn_link_want_flush(l);
  tn_mux_get_stats(l->mux, &st);
  if (st.streams_open == 0 && l->cb->on_drained != NULL)
    l->cb->on_drained(l);
}

int tn_link_ping(tn_link *l)
{
  int rc;

  if (l->closing || !l->established || l->mux == NULL)
    return TN_ERR_SESSION_CLOSED;
  rc = tn_mux_ping(l->mux);
  if (rc == TN_OK)
    tn_link_want_flush(l);
  return rc;
}

int tn_link_send(tn_link *l, const uint8_t *data, size_t len)
{
  if (l->closing || !l->opt.raw || l->close_when_flushed != NULL)
    return TN_ERR_SESSION_CLOSED;
  if (l->raw_len + len > l->opt.max_raw_output)
    return TN_ERR_NO_SPACE;
  if (l->raw_cap - l->raw_start - l->raw_len < len && l->raw_start > 0) {
    memmove(l->raw_out, l->raw_out + l->raw_start, l->raw_len);
    l->raw_start = 0;
  }
  if (l->raw_cap - l->raw_len < len) {
    size_t cap = l->raw_cap ? l->raw_cap : 4096;
    uint8_t *p;
    while (cap - l->raw_len < len)
      cap *= 2;
    p = realloc(l->raw_out, cap);
    if (p == NULL)
      return TN_ERR_NOMEM;
    l->raw_out = p;
    l->raw_cap = cap;
  }
  memcpy(l->raw_out + l->raw_len, data, len);
  l->raw_len += len;
  tn_link_want_flush(l);
  return TN_OK;
}

void tn_link_close_when_flushed(tn_link *l, const char *reason)
{
  if (l->closing)
    return;
  l->close_when_flushed = reason;
  tn_link_want_flush(l);
}

size_t tn_link_queued(const tn_link *l)
{
  return l->raw_len;
}

tn_mux *tn_link_mux(const tn_link *l)
{
  return l->established && !l->closing ? l->mux : NULL;
}

int tn_link_is_established(const tn_link *l)
{
  return l->established && !l->closing;
}

int tn_link_is_closing(const tn_link *l)
{
  return l->closing;
}

bool tn_link_hello_answered(const tn_link *l)
{
  return l->hello_answered || l->established;
}

uint64_t tn_link_hello_progress_ms(const tn_link *l)
{
  return l->hello_answered ? l->hello_progress_ms : 0;
}

bool tn_link_hello_waiting(const tn_link *l)
{
  uint8_t head[TLS_RECORD_HEADER];
  uv_os_fd_t fd;
  int avail = 0;

  if (l->closing || uv_fileno((const uv_handle_t *)&l->tcp, &fd) != 0 ||
      recv(fd, head, sizeof(head), MSG_PEEK | MSG_DONTWAIT) != (ssize_t)sizeof(head) || head[0] != TLS_HANDSHAKE_RECORD ||
      ioctl(fd, FIONREAD, &avail) != 0)
    return false;
  return (size_t)avail >= sizeof(head) + ((size_t)head[3] << 8 | head[4]);
}

const char *tn_link_peer_address(const tn_link *l)
{
  return l->peer_address;
}

const struct tn_addr *tn_link_peer_addr(const tn_link *l)
{
  return &l->peer_addr;
}

const struct tn_tls_peer *tn_link_peer(const tn_link *l)
{
  return &l->peer;
}

const tn_tls *tn_link_tls(const tn_link *l)
{
  return l->tls;
}

uv_loop_t *tn_link_loop(const tn_link *l)
{
  return l->tcp.loop;
}

void *tn_link_data(const tn_link *l)
{
  return l->data;
}

void tn_link_set_data(tn_link *l, void *data)
{
  l->data = data;
}
