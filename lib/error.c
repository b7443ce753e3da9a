/* error.c: text for libtunnelcore's error codes. */
#include "tunnel/error.h"

#include <stdarg.h>
#include <stdio.h>

const char *tn_strerror(int err)
{
  switch (err) {
  case TN_OK: return "success";
  case TN_ERR_NEED_MORE: return "need more input";
  case TN_ERR_INVALID: return "malformed input";
  case TN_ERR_TOO_LARGE: return "exceeds a configured limit";
  case TN_ERR_NO_SPACE: return "buffer full";
  case TN_ERR_ARG: return "invalid argument";
  case TN_ERR_NOMEM: return "out of memory";
  case TN_ERR_STREAM_CLOSED: return "stream closed";
  case TN_ERR_STREAM_LIMIT: return "too many open streams";
  case TN_ERR_GOING_AWAY: return "session is going away";
  case TN_ERR_WOULD_BLOCK: return "no send window";
  case TN_ERR_UNSUPPORTED: return "not supported";
  case TN_ERR_TLS: return "TLS handshake failed";
  case TN_ERR_PROTO: return "protocol error";
  case TN_ERR_TIMEOUT: return "peer timed out";
  case TN_ERR_SESSION_CLOSED: return "session closed";
  case TN_ERR_TLS_FATAL: return "TLS connection failed";
  case TN_ERR_INTERNAL: return "internal error";
  case TN_ERR_CONFLICT: return "conflicts with the state in force";
  case TN_ERR_IO: return "file could not be written";
  default: return "unknown error";
  }
}

void tn_verrf(char *err, size_t err_len, const char *prefix, const char *fmt, va_list ap)
{
  int n = 0;

  if (err == NULL || err_len == 0)
    return;
  if (prefix != NULL)
    n = snprintf(err, err_len, "%s: ", prefix);
  if (n >= 0 && (size_t)n < err_len)
    vsnprintf(err + n, err_len - (size_t)n, fmt, ap);
}

void tn_errf(char *err, size_t err_len, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  tn_verrf(err, err_len, NULL, fmt, ap);
  va_end(ap);
}

size_t tn_errf_append(char *buf, size_t cap, size_t at, const char *fmt, ...)
{
  va_list ap;
  int n;

  if (at >= cap)
    return at;
  va_start(ap, fmt);
  n = vsnprintf(buf + at, cap - at, fmt, ap);
  va_end(ap);
  if (n < 0)
    return at;
  return at + (size_t)n >= cap ? cap - 1 : at + (size_t)n;
}

void tn_err_one_line(char *s)
{
  for (; *s != '\0'; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      *s = '?';
}
