/* http.h: a sans-I/O HTTP/1.1 server connection (llhttp) for the management API: bytes in, one complete request at a time out. */
#ifndef TD_HTTP_H
#define TD_HTTP_H

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

struct td_http_limits {
  size_t max_header; /* request line + header section; over it: 431 (TN_DEFAULT_API_MAX_HEADER) */
  size_t max_body;   /* over it: 413, decided from Content-Length before any body byte is kept (TN_DEFAULT_API_MAX_BODY) */
};

enum td_http_result {
  TD_HTTP_NEED_MORE = 0, /* everything was taken; read more from the socket */
  TD_HTTP_REQUEST,       /* a complete request: td_http_conn_request(); answer it, then td_http_conn_next() */
  TD_HTTP_CONTINUE,      /* the client sent "Expect: 100-continue": write TD_HTTP_100_CONTINUE, keep reading */
  TD_HTTP_ERROR          /* unusable request: answer td_http_conn_error_status() with Connection: close, then close */
};

enum td_http_state {
  TD_HTTP_IDLE,    /* between requests: the caller's idle timeout applies */
  TD_HTTP_HEAD,    /* part of a request head received: the header timeout applies */
  TD_HTTP_BODY,    /* head complete, body in progress */
  TD_HTTP_READY,   /* a request is outstanding */
  TD_HTTP_FAILED   /* after TD_HTTP_ERROR */
};

#define TD_HTTP_100_CONTINUE "HTTP/1.1 100 Continue\r\n\r\n"

struct td_http_request {
  const char *method;          /* "GET", "PUT", ... (static string) */
  const char *path;            /* request path without query or fragment, NUL-terminated */
  const char *content_type;    /* raw header value, or NULL when absent */
  int has_content_length;
  uint64_t content_length;
  const uint8_t *body;         /* body bytes (de-chunked), NUL-terminated; body_len 0 when none */
  size_t body_len;
  int keep_alive;              /* the connection may carry another request after the response */
  uint8_t http_minor;          /* 0 or 1 */
};

/* Embed by value; everything inside is private. */
struct td_http_conn {
  llhttp_t parser;
  struct td_http_limits limits;
  enum td_http_state state;
  size_t head_bytes;           /* bytes of the current head seen so far, for 431 */
  struct td_buf url;
  struct td_buf field;         /* current header name (long ones are not ours to care about) */
  int field_overflow;
  struct td_buf value;         /* current header value */
  struct td_buf content_type;
  int has_content_type;
  int has_transfer_encoding;
  int expect_continue;         /* 0 none, 1 wanted, 2 reported */
  struct td_buf body;
  struct td_buf stash;         /* bytes received while a request is outstanding (pipelining) */
  int stash_overflow;          /* more than the stash holds arrived meanwhile: td_http_conn_next fails */
  struct td_http_request req;
  int error_status;
  char error_text[160];
};

void td_http_conn_init(struct td_http_conn *c, const struct td_http_limits *limits);
void td_http_conn_free(struct td_http_conn *c);

/*
 * Takes all len bytes. While a request is outstanding (after TD_HTTP_REQUEST and before
 * td_http_conn_next) bytes are only kept for later and TD_HTTP_NEED_MORE is returned;
 * stop reading the socket then. At most max_header + max_body bytes are kept that way;
 * beyond that they are dropped and td_http_conn_next returns TD_HTTP_ERROR (400), so the
 * outstanding request stays valid until it is answered.
 */
enum td_http_result td_http_conn_feed(struct td_http_conn *c, const uint8_t *data, size_t len);

/* The outstanding request (valid until td_http_conn_next or _free), or NULL. */
const struct td_http_request *td_http_conn_request(const struct td_http_conn *c);

/*
 * Releases the outstanding request and parses bytes kept meanwhile: may return
 * TD_HTTP_REQUEST again at once (pipelined requests). Call only when the previous
 * request was keep_alive; otherwise close the connection after the response.
 */
enum td_http_result td_http_conn_next(struct td_http_conn *c);

enum td_http_state td_http_conn_state(const struct td_http_conn *c);

/* After TD_HTTP_ERROR: 400, 413, 431 or 505, and a one-line reason for the response body and the log. */
int td_http_conn_error_status(const struct td_http_conn *c);
const char *td_http_conn_error_text(const struct td_http_conn *c);

/* "OK", "Not Found", ... ("Unknown" for codes this server never sends). */
const char *td_http_reason(int status);

/*
 * Appends a complete response to out: status line, Content-Type (when non-NULL),
 * Content-Length (always), Connection: keep-alive or close, Cache-Control: no-store,
 * extra_headers verbatim (each line ending in "\r\n", e.g. "Allow: GET\r\n"; may be NULL),
 * then the body. TN_OK, or td_buf's error (out may then hold a partial response: reset it).
 */
int td_http_response(struct td_buf *out, int status, const char *content_type, const void *body, size_t len,
                     int keep_alive, const char *extra_headers);

/* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" for extra_headers; the caller owns the clock. */
#define TD_HTTP_DATE_LEN 40
void td_http_date_header(time_t t, char out[TD_HTTP_DATE_LEN]);

#endif
