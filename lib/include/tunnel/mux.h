/* tunnel/mux.h: a sans-I/O yamux-compatible stream multiplexer session (bytes in, bytes out, callbacks). */
#ifndef TUNNEL_MUX_H
#define TUNNEL_MUX_H

#include <stddef.h>
#include <stdint.h>

#include "tunnel/frame.h"

/*
 * Shape taken from nghttp2: the session owns no socket and no clock.
 *   - tn_mux_feed()      hands it bytes that arrived from the peer;
 *   - tn_mux_pending()   shows bytes it wants sent, tn_mux_consumed() says how many were sent;
 *   - tn_mux_tick(now)   gives it the time for keepalive, dead-peer and open timeouts;
 *   - callbacks report what happened to the session and its streams.
 *
 * Streams: the session initiator (TN_MUX_CLIENT) opens odd ids, the acceptor even ids.
 * Each stream carries a void *user pointer set at open/accept time.
 *
 * Lifetime rule: on_stream_close is called exactly once for every stream the
 * application learned about (opened or accepted), and the stream id is invalid
 * after it returns. Callbacks may call any tn_mux_* function, including ones that
 * close the very stream being reported; the session re-checks its state after
 * every callback.
 *
 * Receive flow control: data handed to on_stream_data counts against the stream's
 * receive window until the application calls tn_mux_stream_consumed(), so a slow
 * consumer stalls its own stream only. Data for a stream that has ended counts against
 * what its window still allowed when this side reset it (or refused its SYN), summed per
 * session and capped at max_window; beyond that it is a protocol error (GoAway 1). Send flow control: tn_mux_stream_write()
 * accepts at most the peer's window; when it accepts less than asked, wait for
 * on_stream_writable.
 */

typedef struct tn_mux tn_mux;

enum tn_mux_role {
  TN_MUX_CLIENT = 1, /* session initiator: opens odd stream ids */
  TN_MUX_SERVER = 2  /* acceptor: opens even stream ids */
};

/* Why a stream ended, passed to on_stream_close. */
enum tn_mux_close_reason {
  TN_MUX_CLOSE_NORMAL = 0,      /* FIN sent and received */
  TN_MUX_CLOSE_RESET_LOCAL = 1, /* this side called tn_mux_stream_reset */
  TN_MUX_CLOSE_RESET_REMOTE = 2,/* the peer sent RST (or refused the SYN) */
  TN_MUX_CLOSE_SESSION = 3,     /* the session ended (error, timeout, terminate) */
  TN_MUX_CLOSE_OPEN_TIMEOUT = 4 /* the peer never acknowledged our SYN */
};

struct tn_mux_callbacks {
  /* The peer opened stream id. Return 0 to accept it, with *stream_user set; nonzero resets it. */
  int (*on_stream_open)(tn_mux *mux, uint32_t id, void **stream_user, void *session_user);
  /* The peer acknowledged a stream this side opened. Optional. */
  void (*on_stream_ack)(tn_mux *mux, uint32_t id, void *stream_user);
  /* Payload bytes for the stream; valid only during the call. Call tn_mux_stream_consumed() once processed. */
  void (*on_stream_data)(tn_mux *mux, uint32_t id, const uint8_t *data, size_t len, void *stream_user);
  /* The peer will send no more on this stream (half-close). */
  void (*on_stream_fin)(tn_mux *mux, uint32_t id, void *stream_user);
  /* The stream has send window again after tn_mux_stream_write accepted less than asked. */
  void (*on_stream_writable)(tn_mux *mux, uint32_t id, void *stream_user);
  /* The stream is gone (enum tn_mux_close_reason); last call for this id. */
  void (*on_stream_close)(tn_mux *mux, uint32_t id, int reason, void *stream_user);
  /* Answer to one of our pings arrived; rtt_ms measured with tick times. Optional. */
  void (*on_ping_rtt)(tn_mux *mux, uint64_t rtt_ms, void *session_user);
  /* The peer sent GoAway with this code; no new streams may be opened. Optional. */
  void (*on_go_away)(tn_mux *mux, uint32_t code, void *session_user);
};

/* tn_mux_options_default sets every field to its TN_DEFAULT_* value (tunnel/defaults.h, the one place). */
struct tn_mux_options {
  uint32_t initial_window;        /* bytes; yamux fixes this at 256 KiB, keep it unless both sides agree */
  uint32_t max_window;            /* receive window may grow up to this by auto-tuning */
  uint32_t max_streams;           /* open streams per session; SYNs beyond it are reset */
  uint32_t max_frame_payload;     /* largest Data payload this side sends */
  size_t max_output_buffer;       /* bytes queued for the wire before writes are refused */
  uint64_t keepalive_interval_ms; /* ping this often, busy or idle (the answer measures the RTT); 0 = never */
  uint64_t dead_peer_timeout_ms;  /* fail the session after this much receive silence; 0 = never */
  uint64_t open_timeout_ms;       /* reset an opened stream not acknowledged in time; 0 = never */
};

struct tn_mux_stats {
  uint64_t bytes_in;           /* payload bytes received */
  uint64_t bytes_out;          /* payload bytes queued to send */
  uint64_t frames_in;
  uint64_t frames_out;
  uint64_t streams_opened;     /* by this side */
  uint64_t streams_accepted;   /* from the peer */
  uint64_t streams_refused;    /* peer SYNs reset for the stream limit or by on_stream_open */
  uint64_t protocol_errors;
  uint64_t bytes_dropped;      /* payload bytes received for streams already gone (in flight at their reset) */
  uint32_t streams_open;       /* currently */
  uint64_t last_rtt_ms;        /* from the last answered ping; 0 before any */
};

/* Fills opt with the documented defaults. */
void tn_mux_options_default(struct tn_mux_options *opt);

/* Creates a session; opt may be NULL for defaults. Returns TN_OK, TN_ERR_ARG or TN_ERR_NOMEM. */
int tn_mux_new(tn_mux **out, enum tn_mux_role role, const struct tn_mux_callbacks *cb,
               const struct tn_mux_options *opt, void *session_user, uint64_t now_ms);

/* Frees the session and every stream without calling any callback. */
void tn_mux_del(tn_mux *mux);

/*
 * Processes bytes from the peer. Returns TN_OK, or a fatal code (TN_ERR_PROTO, ...) after
 * which every stream has been closed through on_stream_close and a GoAway is pending.
 */
int tn_mux_feed(tn_mux *mux, const uint8_t *in, size_t len);

/*
 * Points *out at bytes waiting to be sent; returns their count (0 = nothing to send). Control frames (ping, ping
 * answer, GoAway, window updates, SYN and its ACK) come first, in their own order, overtaking queued stream data at
 * the next frame boundary; FIN and RST keep their place behind the stream's data.
 */
size_t tn_mux_pending(tn_mux *mux, const uint8_t **out);
/*
 * As tn_mux_pending, but only what must not wait: control frames, and before them the rest of a frame already
 * partly handed out. A transport whose socket is backed up takes only these, so a ping and its answer wait for
 * at most what is already on the wire, never for the session's queued data. 0 when there are none.
 */
size_t tn_mux_pending_control(tn_mux *mux, const uint8_t **out);
/* Marks n bytes from tn_mux_pending as sent. May call on_stream_writable. */
void tn_mux_consumed(tn_mux *mux, size_t n);

/*
 * Advances the session clock and acts on it: sends keepalive pings, times out unacknowledged
 * opens and detects a dead peer. Returns TN_OK or TN_ERR_TIMEOUT (fatal; streams closed as for
 * feed). Cheap; call it periodically, after feeding whatever input is waiting: a caller that was
 * itself stalled past the dead-peer timeout would otherwise call a peer silent whose bytes it has
 * simply not read yet.
 */
int tn_mux_tick(tn_mux *mux, uint64_t now_ms);

/*
 * Advances the session clock without acting on it. Call it before tn_mux_feed so received bytes
 * and ping RTTs carry the time they arrived; liveness is judged only by tn_mux_tick.
 */
void tn_mux_set_time(tn_mux *mux, uint64_t now_ms);

/* Milliseconds since the peer last sent anything, as of now_ms (what tn_mux_tick compares with the timeout). */
uint64_t tn_mux_silent_ms(const tn_mux *mux, uint64_t now_ms);

/* Opens a stream (SYN). Returns TN_OK with *id set, or TN_ERR_STREAM_LIMIT, TN_ERR_GOING_AWAY, TN_ERR_SESSION_CLOSED. */
int tn_mux_open_stream(tn_mux *mux, void *stream_user, uint32_t *id);

/*
 * Queues up to len payload bytes. Returns the number accepted (0..len), limited by the
 * peer's window and the output buffer; when fewer than len, on_stream_writable follows.
 * Negative: TN_ERR_STREAM_CLOSED (unknown stream or already FINed), TN_ERR_SESSION_CLOSED.
 */
long tn_mux_stream_write(tn_mux *mux, uint32_t id, const uint8_t *data, size_t len);

/* Half-closes the sending direction (FIN). */
int tn_mux_stream_fin(tn_mux *mux, uint32_t id);

/* Aborts the stream (RST); on_stream_close(TN_MUX_CLOSE_RESET_LOCAL) is called before it returns. */
int tn_mux_stream_reset(tn_mux *mux, uint32_t id);

/* Returns n received bytes to the stream's window; sends a WindowUpdate when worthwhile. */
int tn_mux_stream_consumed(tn_mux *mux, uint32_t id, size_t n);

/* Bytes the peer lets this side send now on the stream (0 when unknown or closed). */
size_t tn_mux_stream_send_window(const tn_mux *mux, uint32_t id);

/* Stream user pointer, or NULL for an unknown stream. */
void *tn_mux_stream_user(const tn_mux *mux, uint32_t id);
int tn_mux_stream_set_user(tn_mux *mux, uint32_t id, void *stream_user);

/* Sends a ping now; its RTT arrives through on_ping_rtt. */
int tn_mux_ping(tn_mux *mux);

/* Sends GoAway(code): this side opens no more streams and refuses the peer's new ones. */
int tn_mux_go_away(tn_mux *mux, uint32_t code);

/* Ends the session locally (link lost): every stream closes with TN_MUX_CLOSE_SESSION. Idempotent. */
void tn_mux_terminate(tn_mux *mux);

/* True once the session is over (fatal error, timeout, terminate) or the peer and this side both sent GoAway and no streams remain. */
int tn_mux_is_closed(const tn_mux *mux);
/* True once either side sent GoAway. */
int tn_mux_is_going_away(const tn_mux *mux);

void tn_mux_get_stats(const tn_mux *mux, struct tn_mux_stats *stats);
void *tn_mux_user(const tn_mux *mux);
/* Why the session failed, in words for the log ("protocol error", or the violation when known); NULL while it runs. */
const char *tn_mux_error(const tn_mux *mux);

#endif
