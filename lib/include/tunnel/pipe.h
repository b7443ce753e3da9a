/* tunnel/pipe.h: one mux stream spliced to one TCP socket on libuv, with backpressure and half-close. */
#ifndef TUNNEL_PIPE_H
#define TUNNEL_PIPE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tunnel/addr.h"
#include "tunnel/link.h"
#include "tunnel/open.h"

/*
 * A pipe is one conversation: the socket on this side, the stream on the link, and (on
 * tunneld) the stream-open header in front of the payload.
 *   tunneld:  tn_pipe_accept (public socket) -> tn_pipe_start (opens the stream, writes
 *             the header) -> splice.
 *   tunnelc:  tn_pipe_new_incoming (from on_stream_open) -> header arrives ->
 *             on_open_header -> tn_pipe_connect (dial, PROXY header first) -> splice.
 *
 * Backpressure: socket->stream bytes go in only as far as the stream's window and the
 * link's output allow; the rest waits and the socket is not read meanwhile. stream->socket
 * bytes are returned to the stream's window only once the socket has taken them, so a
 * slow socket stalls its own stream and nothing else.
 *
 * Half-close: EOF from the socket sends FIN; FIN from the stream shuts down the socket's
 * write side once queued bytes are written. Both done = normal end. A reset on either
 * side aborts the other (the socket is reset, so its peer sees the failure too).
 *
 * Lifetime: on_close is called exactly once when the conversation ends; the pipe is freed
 * after that in libuv's close callback.
 */

typedef struct tn_pipe tn_pipe;

/*
 * Socket bytes the stream cannot take yet (closed window, full link output) wait in the pipe: above
 * high_water bytes the socket is no longer read, so its peer's TCP window closes; reading resumes once
 * the stream has taken enough that at most low_water bytes wait. One read (64 KiB) may pass the mark.
 */
struct tn_pipe_options {
  size_t high_water;
  size_t low_water; /* less than high_water */
};

/* TN_DEFAULT_PIPE_HIGH_WATER and TN_DEFAULT_PIPE_LOW_WATER. */
void tn_pipe_options_default(struct tn_pipe_options *opt);

struct tn_pipe_result {
  const char *reason;       /* "closed", "reset by peer", "backend refused", ... */
  int normal;               /* both directions finished cleanly */
  int backend_failed;       /* tunnelc: the backend could not be dialled (refused, timed out, unreachable) */
  uint64_t bytes_to_stream; /* payload read from the socket */
  uint64_t bytes_to_socket; /* payload written to the socket */
};

struct tn_pipe_callbacks {
  /* tunnelc: the header arrived; call tn_pipe_connect or tn_pipe_abort (now or later). */
  void (*on_open_header)(tn_pipe *pipe, const struct tn_open *hdr);
  /* The conversation is over. */
  void (*on_close)(tn_pipe *pipe, const struct tn_pipe_result *result);
};

/* tunneld: accepts a public connection from listener (not yet on any link). opt NULL: the defaults. 0 or a libuv code. */
int tn_pipe_accept(tn_pipe **out, uv_stream_t *listener, const struct tn_pipe_options *opt,
                   const struct tn_pipe_callbacks *cb, void *data);
/*
 * tunneld, hostname routing: before any stream exists, the connection's first bytes are read and held (at most
 * max of them are asked for; one read may bring more) so the caller can choose where it goes. cb gets every
 * byte held so far each time more arrive, and once more when the wait ends: TN_PIPE_PEEK_FULL (max reached),
 * TN_PIPE_PEEK_EOF (the peer will send nothing more) or TN_PIPE_PEEK_TIMEOUT (timeout_ms since tn_pipe_peek).
 * It decides with tn_pipe_start (the held bytes follow the open header unchanged), tn_pipe_refuse or
 * tn_pipe_abort; returning without deciding (only on TN_PIPE_PEEK_MORE) waits for more. 0 or a libuv code.
 */
enum tn_pipe_peek_status { TN_PIPE_PEEK_MORE = 0, TN_PIPE_PEEK_FULL, TN_PIPE_PEEK_EOF, TN_PIPE_PEEK_TIMEOUT };
typedef void (*tn_pipe_peek_cb)(tn_pipe *pipe, const uint8_t *data, size_t len, enum tn_pipe_peek_status status);
int tn_pipe_peek(tn_pipe *pipe, size_t max, uint64_t timeout_ms, tn_pipe_peek_cb cb);
/* Ends a connection no stream was opened for: reply (may be empty) is written if the socket takes it now, then the
 * socket closes without a reset so the reply is not discarded. */
void tn_pipe_refuse(tn_pipe *pipe, const uint8_t *reply, size_t len, const char *reason);
/* The accepted socket's peer and local addresses. */
int tn_pipe_addresses(const tn_pipe *pipe, struct tn_addr *peer, struct tn_addr *local);
/* tunneld: opens a stream on link, writes hdr first, then splices. On error (a TN_ERR_* code) the pipe is closed (on_close). */
int tn_pipe_start(tn_pipe *pipe, tn_link *link, const struct tn_open *hdr);

/* tunnelc: a pipe for the stream the peer opened (return it from on_stream_open). */
tn_pipe *tn_pipe_new_incoming(tn_link *link, uint32_t id, const struct tn_pipe_options *opt,
                              const struct tn_pipe_callbacks *cb, void *data);
/*
 * tunnelc: dials the backend; writes the PROXY header the open header asked for, then splices.
 * When addr refuses the connection and fallback is not NULL, fallback is tried once (e.g.
 * [::1] after 127.0.0.1); a timeout is not retried. timeout_ms covers both attempts.
 * Returns 0 or a libuv code (UV_ECANCELED: the conversation had already ended).
 */
int tn_pipe_connect(tn_pipe *pipe, const struct sockaddr *addr, const struct sockaddr *fallback, uint64_t timeout_ms);

/* Ends the conversation now: resets the stream and the socket. Idempotent. */
void tn_pipe_abort(tn_pipe *pipe, const char *reason);

/* Payload moved so far (socket -> stream, stream -> socket), for live counters. */
void tn_pipe_get_bytes(const tn_pipe *pipe, uint64_t *to_stream, uint64_t *to_socket);

/* The link carrying the pipe (NULL once the stream has ended). */
tn_link *tn_pipe_link(const tn_pipe *pipe);
uint32_t tn_pipe_stream_id(const tn_pipe *pipe);
void *tn_pipe_data(const tn_pipe *pipe);
void tn_pipe_set_data(tn_pipe *pipe, void *data);

#endif
