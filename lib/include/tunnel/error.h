/* tunnel/error.h: the one set of negative error codes every libtunnelcore module returns. */
#ifndef TUNNEL_ERROR_H
#define TUNNEL_ERROR_H

/*
 * Codes above TN_ERR_FATAL_BOUNDARY are recoverable: the call failed, the object
 * is still usable. Codes at or below it are fatal for the object that returned
 * them (a mux session, a TLS context): after one, only pending output may be
 * drained (to flush a GoAway or alert) and then the object must be freed.
 */
enum tn_error {
  TN_OK = 0,
  TN_ERR_NEED_MORE = -1,      /* decoder: input is a valid prefix, feed more bytes */
  TN_ERR_INVALID = -2,        /* input is malformed */
  TN_ERR_TOO_LARGE = -3,      /* input or request exceeds a configured limit */
  TN_ERR_NO_SPACE = -4,       /* output buffer or queue is full; retry after draining */
  TN_ERR_ARG = -5,            /* caller passed an invalid argument */
  TN_ERR_NOMEM = -6,          /* allocation failed */
  TN_ERR_STREAM_CLOSED = -7,  /* the stream is closed (or never existed) for this operation */
  TN_ERR_STREAM_LIMIT = -8,   /* too many open streams */
  TN_ERR_GOING_AWAY = -9,     /* the session no longer accepts new streams */
  TN_ERR_WOULD_BLOCK = -10,   /* flow control: no send window now, wait for on_stream_writable */
  TN_ERR_UNSUPPORTED = -11,   /* a feature or version this build does not implement */
  TN_ERR_TLS = -12,           /* TLS failure during the handshake (see tn_tls_error_text) */

  TN_ERR_FATAL_BOUNDARY = -100,
  TN_ERR_PROTO = -101,        /* the peer violated the protocol */
  TN_ERR_TIMEOUT = -102,      /* the peer stayed silent past the dead-peer timeout */
  TN_ERR_SESSION_CLOSED = -103, /* the session is over (GoAway done, terminated, or failed) */
  TN_ERR_TLS_FATAL = -104,    /* the TLS connection failed after the handshake */
  TN_ERR_INTERNAL = -105      /* a bug or an impossible state: the object is unusable */
};

/* True when err leaves the object that returned it usable only for draining and freeing. */
#define TN_IS_FATAL(err) ((err) <= TN_ERR_FATAL_BOUNDARY)

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
