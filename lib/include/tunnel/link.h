/* tunnel/link.h: one tunnel connection on libuv: a TCP socket carrying tn_tls carrying tn_mux. */
#ifndef TUNNEL_LINK_H
#define TUNNEL_LINK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "tunnel/addr.h"
#include "tunnel/mux.h"
#include "tunnel/tls.h"

/*
 * The thin adapter between a uv_tcp_t and the sans-I/O core. It owns the socket, the TLS
 * context, the mux session and two timers, and moves bytes between them:
 *   socket -> tn_tls_feed -> tn_tls_read -> tn_mux_feed -> streams (tn_pipe)
 *   streams -> tn_mux_pending -> tn_tls_write -> uv_try_write / uv_write -> socket
 * Output is flushed once per loop iteration (uv_check), so many small stream writes
 * become few TLS records; a write still in flight bounds what is queued behind it,
 * and the mux refuses stream writes past its output limit (backpressure up to the sources).
 *
 * Lifetime: tn_link_close() ends it (idempotent); on_closed is called exactly once, from
 * inside tn_link_close, and the application must not touch the link after it returns.
 * Memory is freed later, in libuv close callbacks.
 */

typedef struct tn_link tn_link;
struct tn_pipe;

struct tn_link_options {
  tn_tls_config *tls;              /* one reference is taken for the link's lifetime */
  const char *server_name;         /* client role: the name the server certificate must carry */
  struct tn_mux_options mux;
  uint64_t handshake_timeout_ms;   /* from TCP connect (or accept) to an established TLS session */
  int raw;                         /* no mux: plaintext goes to on_data, tn_link_send writes (management port) */
  size_t max_raw_output;           /* raw mode: tn_link_send refuses more queued plaintext than this */
};

struct tn_link_callbacks {
  /* TLS is up and the peer verified; the mux runs. */
  void (*on_established)(tn_link *link, const struct tn_tls_peer *peer);
  /* The peer opened a stream: return a pipe for it (tn_pipe_new_incoming), or NULL to refuse. */
  struct tn_pipe *(*on_stream_open)(tn_link *link, uint32_t id);
  /* The peer sent GoAway: it opens no more streams and accepts none. Optional. */
  void (*on_go_away)(tn_link *link, uint32_t code);
  /* Every stream has ended after tn_link_go_away; a good moment to close. Optional. */
  void (*on_drained)(tn_link *link);
  /* The peer answered the latest tn_link_ping (or keepalive ping); rtt_ms as the mux measured it. Optional. */
  void (*on_pong)(tn_link *link, uint64_t rtt_ms);
  /* Raw mode: decrypted bytes from the peer. */
  void (*on_data)(tn_link *link, const uint8_t *data, size_t len);
  /*
   * A control message arrived: the whole of a client-opened (odd) stream, at most TN_CTL_MAX_LEN bytes
   * (tunnel/control.h); the stream is answered with FIN after the call. The callback may close the link
   * (a malformed message is a protocol error). NULL: such streams are refused with RST, as peers that
   * predate control messages do.
   */
  void (*on_message)(tn_link *link, const uint8_t *msg, size_t len);
  /* A message from tn_link_send_message (msg, len) ended: accepted (the peer answered FIN) or not (RST, link lost). Optional. */
  void (*on_message_done)(tn_link *link, const uint8_t *msg, size_t len, int accepted);
  /* The link is over (reason in words, for the log). Last call; the link is gone after it. */
  void (*on_closed)(tn_link *link, const char *reason);
};

void tn_link_options_default(struct tn_link_options *opt);

/* Server role: accepts the next connection from listener. Returns 0 or a libuv error code (UV_E*). */
int tn_link_accept(tn_link **out, uv_stream_t *listener, const struct tn_link_options *opt,
                   const struct tn_link_callbacks *cb, void *data);

/* Client role: connects to addr. Returns 0 or UV_ENOMEM; any other failure arrives through on_closed with the reason. */
int tn_link_connect(tn_link **out, uv_loop_t *loop, const struct sockaddr *addr,
                    const struct tn_link_options *opt, const struct tn_link_callbacks *cb, void *data);

/* Ends the link now: every stream is reset, on_closed is called. Idempotent. */
void tn_link_close(tn_link *link, const char *reason);

/* Sends GoAway: no new streams either way; on_drained once the open ones have ended. */
void tn_link_go_away(tn_link *link);

/*
 * Pings the peer now (mux links only); on_pong follows if it answers. A newer ping supersedes
 * an unanswered one. Returns TN_OK, or TN_ERR_SESSION_CLOSED when there is no live session.
 */
int tn_link_ping(tn_link *link);

/*
 * Sends one control message on a new client-opened stream, then FIN (client role, established link).
 * The bytes are copied. Returns TN_OK, TN_ERR_TOO_LARGE past TN_CTL_MAX_LEN, or the mux's refusal
 * (TN_ERR_GOING_AWAY, TN_ERR_STREAM_LIMIT, TN_ERR_SESSION_CLOSED); on_message_done follows TN_OK.
 */
int tn_link_send_message(tn_link *link, const uint8_t *msg, size_t len);

/* Asks for output to be flushed at the end of this loop iteration (pipes call it after writing). */
void tn_link_want_flush(tn_link *link);

/* Raw mode: queues plaintext for the peer. Returns TN_OK or TN_ERR_NO_SPACE (over max_raw_output). */
int tn_link_send(tn_link *link, const uint8_t *data, size_t len);
/* Raw mode: closes the link once everything queued has been written (after a last response). */
void tn_link_close_when_flushed(tn_link *link, const char *reason);
/* Raw mode: plaintext bytes queued and not yet handed to TLS. */
size_t tn_link_queued(const tn_link *link);

tn_mux *tn_link_mux(const tn_link *link);
int tn_link_is_established(const tn_link *link);
int tn_link_is_closing(const tn_link *link);
/*
 * True once the TLS handshake answered the peer (its hello was complete and acceptable) or finished. A link that
 * has only been connected, or sent a partial hello, has cost its peer nothing: the first to shed under a flood.
 */
bool tn_link_hello_answered(const tn_link *link);
/*
 * Loop time (uv_now) at which the handshake last answered a whole flight of the peer's (its ClientHello, or a later
 * one): how recently the peer made progress. 0 before the first answer.
 */
uint64_t tn_link_hello_progress_ms(const tn_link *link);
/* True when a whole first TLS record from the peer waits in the kernel, not read yet (a peek, no bytes taken). */
bool tn_link_hello_waiting(const tn_link *link);
/* "1.2.3.4:5678" of the peer, known from accept/connect. */
const char *tn_link_peer_address(const tn_link *link);
/* The same as an address (IPv4-mapped IPv6 shown as IPv4); family TN_AF_UNSPEC when unknown. */
const struct tn_addr *tn_link_peer_addr(const tn_link *link);
/* The verified peer certificate (valid once established). */
const struct tn_tls_peer *tn_link_peer(const tn_link *link);
/* The link's TLS connection (NULL before TCP is up), e.g. for tn_tls_recheck after a reload. */
const tn_tls *tn_link_tls(const tn_link *link);
uv_loop_t *tn_link_loop(const tn_link *link);
void *tn_link_data(const tn_link *link);
void tn_link_set_data(tn_link *link, void *data);

#endif
