/* tunnel/error.h: the one set of negative error codes every libtunnelcore module returns. */
#ifndef TUNNEL_ERROR_H
#define TUNNEL_ERROR_H

/*
 * Codes above TN_ERR_FATAL_BOUNDARY are recoverable: the call failed, the object
 * is still usable. Codes below it are fatal for the object that returned
 * them (a mux session, a TLS context): after one, only pending output may be
 * drained (to flush a GoAway or alert) and then the object must be freed.
 *
 * The codes lie in their own range (-1001 to -1199), apart from errno values and
 * libuv's codes (negative errno, -3000s, -4000s): a function returns codes of one
 * domain only, and a code in the wrong place is never taken for another error.
 * The libuv adapter's functions that wrap a libuv call say which domain they return.
 */
enum tn_error {
  TN_OK = 0,
  TN_ERR_NEED_MORE = -1001,      /* decoder: input is a valid prefix, feed more bytes */
  TN_ERR_INVALID = -1002,        /* input is malformed */
  TN_ERR_TOO_LARGE = -1003,      /* input or request exceeds a configured limit */
  TN_ERR_NO_SPACE = -1004,       /* output buffer or queue is full; retry after draining */
  TN_ERR_ARG = -1005,            /* caller passed an invalid argument */
  TN_ERR_NOMEM = -1006,          /* allocation failed */
  TN_ERR_STREAM_CLOSED = -1007,  /* the stream is closed (or never existed) for this operation */
  TN_ERR_STREAM_LIMIT = -1008,   /* too many open streams */
  TN_ERR_GOING_AWAY = -1009,     /* the session no longer accepts new streams */
  TN_ERR_WOULD_BLOCK = -1010,    /* flow control: no send window now, wait for on_stream_writable */
  TN_ERR_UNSUPPORTED = -1011,    /* a feature or version this build does not implement */
  TN_ERR_TLS = -1012,            /* TLS failure during the handshake (see tn_tls_error_text) */
  TN_ERR_CONFLICT = -1013,       /* conflicts with the state in force (a port that cannot be bound) */
  TN_ERR_IO = -1014,             /* a file could not be written or replaced */

  TN_ERR_FATAL_BOUNDARY = -1100,
  TN_ERR_PROTO = -1101,          /* the peer violated the protocol */
  TN_ERR_TIMEOUT = -1102,        /* the peer stayed silent past the dead-peer timeout */
  TN_ERR_SESSION_CLOSED = -1103, /* the session is over (GoAway done, terminated, or failed) */
  TN_ERR_TLS_FATAL = -1104,      /* the TLS connection failed after the handshake */
  TN_ERR_INTERNAL = -1105,       /* a bug or an impossible state: the object is unusable */
  TN_ERR_LAST = -1199
};

/* True when err leaves the object that returned it usable only for draining and freeing. */
#define TN_IS_FATAL(err) ((err) < TN_ERR_FATAL_BOUNDARY && (err) >= TN_ERR_LAST)

/* A short English description of an error code; never NULL. */
const char *tn_strerror(int err);

#include <stdarg.h>
#include <stddef.h>
/*
 * The one error-buffer formatter. Formats into a caller-supplied buffer; err may be NULL or err_len 0
 * (then nothing is written). With prefix not NULL the message reads "PREFIX: message" (a file name).
 */
void tn_errf(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void tn_verrf(char *err, size_t err_len, const char *prefix, const char *fmt, va_list ap)
  __attribute__((format(printf, 4, 0)));
/* Appends to the text at buf[at] (cap bytes in all), truncating; returns the new end, at most cap - 1. */
size_t tn_errf_append(char *buf, size_t cap, size_t at, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Replaces control bytes in s with '?', in place: quoted input in an error message must not split its line. */
void tn_err_one_line(char *s);

#endif
