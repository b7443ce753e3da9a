/* buf.c: bounded growable byte buffer. */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/error.h"

void td_buf_init(struct td_buf *b, size_t max)
{
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

void td_buf_free(struct td_buf *b)
{
  free(b->data);
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void td_buf_reset(struct td_buf *b)
{
  b->len = 0;
  if (b->data)
    b->data[0] = 0;
}

/* Room for need more bytes plus the terminating NUL. */
static int reserve(struct td_buf *b, size_t need)
{
  size_t want, cap;
  uint8_t *p;

  if (need > b->max || b->len > b->max - need)
    return TN_ERR_TOO_LARGE;
  want = b->len + need + 1;
  if (want <= b->cap)
    return TN_OK;
  cap = b->cap ? b->cap : 256;
  while (cap < want)
    cap = cap > SIZE_MAX / 2 ? want : cap * 2;
  /* The limit plus NUL caps the allocation, so a large max costs nothing until used. */
  if (b->max < SIZE_MAX && cap > b->max + 1)
    cap = b->max + 1;
  p = realloc(b->data, cap);
  if (!p)
    return TN_ERR_NOMEM;
  b->data = p;
  b->cap = cap;
  return TN_OK;
}

int td_buf_append(struct td_buf *b, const void *p, size_t n)
{
  int rc = reserve(b, n);

  if (rc != TN_OK)
    return rc;
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0;
  return TN_OK;
}

int td_buf_append_str(struct td_buf *b, const char *s)
{
  return td_buf_append(b, s, strlen(s));
}

int td_buf_vprintf(struct td_buf *b, const char *fmt, va_list ap)
{
  va_list ap2;
  int n;
  int rc;

  va_copy(ap2, ap);
  n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return TN_ERR_ARG;
  rc = reserve(b, (size_t)n);
  if (rc != TN_OK)
    return rc;
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return TN_OK;
}

int td_buf_printf(struct td_buf *b, const char *fmt, ...)
{
  va_list ap;
  int rc;

  va_start(ap, fmt);
  rc = td_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

void td_buf_consume(struct td_buf *b, size_t n)
{
  if (n >= b->len) {
    td_buf_reset(b);
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  b->data[b->len] = 0;
}
