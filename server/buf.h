/* buf.h: a growable byte buffer with a hard size limit, for HTTP input, bodies and responses. */
#ifndef TD_BUF_H
#define TD_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct td_buf {
  uint8_t *data; /* NULL until the first append; always NUL-terminated after one */
  size_t len;
  size_t cap;
  size_t max; /* len never exceeds this */
};

/* Empty buffer that will refuse to grow past max bytes. Allocates nothing. */
void td_buf_init(struct td_buf *b, size_t max);
void td_buf_free(struct td_buf *b);
/* Forgets the content, keeps the allocation for reuse. */
void td_buf_reset(struct td_buf *b);

/* TN_OK, TN_ERR_TOO_LARGE (nothing appended) or TN_ERR_NOMEM. */
int td_buf_append(struct td_buf *b, const void *p, size_t n);
int td_buf_append_str(struct td_buf *b, const char *s);
int td_buf_printf(struct td_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int td_buf_vprintf(struct td_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Drops the first n bytes (n > len drops everything). */
void td_buf_consume(struct td_buf *b, size_t n);

#endif
