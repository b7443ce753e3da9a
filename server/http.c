/* http.c: request-at-a-time HTTP/1.1 parsing on llhttp, and response serialisation. */
#include "http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tunnel/error.h"

/* Header names we look at are short; a longer name is simply not one of them. */
#define FIELD_MAX 64

static struct td_http_conn *conn_of(llhttp_t *p)
{
  return p->data;
}

static int fail(struct td_http_conn *c, int status, const char *text)
{
  c->error_status = status;
  snprintf(c->error_text, sizeof(c->error_text), "%s", text);
  return HPE_USER;
}

static int on_message_begin(llhttp_t *p)
{
  struct td_http_conn *c = conn_of(p);

  if (c->state == TD_HTTP_IDLE)
    c->state = TD_HTTP_HEAD;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
  struct td_http_conn *c = conn_of(p);

  if (td_buf_append(&c->url, at, len) != TN_OK)
    return fail(c, 431, "request line too long");
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
  struct td_http_conn *c = conn_of(p);

  /* llhttp's default mode lets odd bytes into names; HTTP allows only tokens (RFC 9110, 5.6.2). */
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)at[i];
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch))))
      return fail(c, 400, "malformed request: invalid character in a header name");
  }

  if (!c->field_overflow && td_buf_append(&c->field, at, len) != TN_OK)
    c->field_overflow = 1;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
  struct td_http_conn *c = conn_of(p);

  if (td_buf_append(&c->value, at, len) != TN_OK)
    return fail(c, 431, "header value too long");
  return 0;
}

static int field_is(const struct td_http_conn *c, const char *name)
{
  return !c->field_overflow && c->field.len == strlen(name) && strncasecmp((const char *)c->field.data, name, c->field.len) == 0;
}

static int on_header_value_complete(llhttp_t *p)
{
  struct td_http_conn *c = conn_of(p);
  const char *v = c->value.data ? (const char *)c->value.data : "";
  int rc = 0;

  if (field_is(c, "Content-Type")) {
    /* Two types for one body is ambiguous; refuse rather than pick one. */
    if (c->has_content_type)
      rc = fail(c, 400, "more than one Content-Type header");
    else if (td_buf_append(&c->content_type, v, c->value.len) != TN_OK)
      rc = fail(c, 431, "Content-Type header too long");
    c->has_content_type = 1;
  } else if (field_is(c, "Transfer-Encoding")) {
    /*
     * llhttp de-chunks when chunked comes last and ignores the rest, so "gzip, chunked" would reach the API as
     * if it were plain JSON. Only a body that means what it says is read: chunked alone, in one header.
     */
    size_t n = c->value.len;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
      n--;
    if (c->has_transfer_encoding)
      rc = fail(c, 400, "more than one Transfer-Encoding header");
    else if (n != 7 || strncasecmp(v, "chunked", 7) != 0)
      rc = fail(c, 501, "Transfer-Encoding not supported: only \"chunked\" alone is");
    c->has_transfer_encoding = 1;
  } else if (field_is(c, "Expect")) {
    if (strcasecmp(v, "100-continue") == 0 && c->expect_continue == 0)
      c->expect_continue = 1;
  }
  td_buf_reset(&c->field);
  td_buf_reset(&c->value);
  c->field_overflow = 0;
  return rc;
}

/* The path of origin-form ("/a?b") or absolute-form ("http://host/a?b") targets. */
static void extract_path(struct td_http_conn *c)
{
  char *u = c->url.data ? (char *)c->url.data : NULL;
  char *path, *end;

  if (!u) {
    c->req.path = "";
    return;
  }
  path = u;
  if (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0) {
    char *slash = strchr(strstr(u, "//") + 2, '/');
    path = slash ? slash : "/";
  }
  end = path + strcspn(path, "?#");
  if (*end)
    *end = 0;
  c->req.path = path;
}

static int on_headers_complete(llhttp_t *p)
{
  struct td_http_conn *c = conn_of(p);

  c->state = TD_HTTP_BODY;
  if (llhttp_get_http_major(p) != 1 || llhttp_get_http_minor(p) > 1)
    return fail(c, 505, "HTTP version not supported: use HTTP/1.1");
  c->req.method = llhttp_method_name((llhttp_method_t)llhttp_get_method(p));
  c->req.http_minor = llhttp_get_http_minor(p);
  c->req.content_type = c->has_content_type ? (const char *)(c->content_type.data ? c->content_type.data : (uint8_t *)"") : NULL;
  extract_path(c);
  if (p->flags & F_CONTENT_LENGTH) {
    c->req.has_content_length = 1;
    c->req.content_length = p->content_length;
    if (p->content_length > c->limits.max_body) {
      char text[96];
      snprintf(text, sizeof(text), "request body larger than %zu bytes", c->limits.max_body);
      return fail(c, 413, text);
    }
  }
  /* Only HTTP/1.1 clients wait for the interim response. */
  if (c->req.http_minor == 0)
    c->expect_continue = 0;
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
  struct td_http_conn *c = conn_of(p);
  int rc = td_buf_append(&c->body, at, len);

  if (rc == TN_ERR_TOO_LARGE) {
    char text[96];
    snprintf(text, sizeof(text), "request body larger than %zu bytes", c->limits.max_body);
    return fail(c, 413, text);
  }
  if (rc != TN_OK)
    return fail(c, 500, "out of memory");
  return 0;
}

static int on_message_complete(llhttp_t *p)
{
  struct td_http_conn *c = conn_of(p);

  c->req.body = c->body.data ? c->body.data : (const uint8_t *)"";
  c->req.body_len = c->body.len;
  c->req.keep_alive = llhttp_should_keep_alive(p);
  /* We answer requests one by one and never act on an Upgrade or CONNECT. */
  if (llhttp_get_upgrade(p))
    c->req.keep_alive = 0;
  c->state = TD_HTTP_READY;
  /* Pausing here is what keeps pipelined bytes for the next request. */
  return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
  .on_message_begin = on_message_begin,
  .on_url = on_url,
  .on_header_field = on_header_field,
  .on_header_value = on_header_value,
  .on_header_value_complete = on_header_value_complete,
  .on_headers_complete = on_headers_complete,
  .on_body = on_body,
  .on_message_complete = on_message_complete,
};

static void reset_message(struct td_http_conn *c)
{
  c->state = TD_HTTP_IDLE;
  c->head_bytes = 0;
  td_buf_reset(&c->url);
  td_buf_reset(&c->field);
  td_buf_reset(&c->value);
  td_buf_reset(&c->content_type);
  td_buf_reset(&c->body);
  c->field_overflow = 0;
  c->has_content_type = 0;
  c->has_transfer_encoding = 0;
  c->expect_continue = 0;
  memset(&c->req, 0, sizeof(c->req));
}

void td_http_conn_init(struct td_http_conn *c, const struct td_http_limits *limits)
{
  memset(c, 0, sizeof(*c));
  c->limits = *limits;
  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  c->parser.data = c;
  td_buf_init(&c->url, limits->max_header);
  td_buf_init(&c->field, FIELD_MAX);
  td_buf_init(&c->value, limits->max_header);
  td_buf_init(&c->content_type, 1024);
  td_buf_init(&c->body, limits->max_body);
  td_buf_init(&c->stash, limits->max_header + limits->max_body);
  reset_message(c);
}

void td_http_conn_free(struct td_http_conn *c)
{
  td_buf_free(&c->url);
  td_buf_free(&c->field);
  td_buf_free(&c->value);
  td_buf_free(&c->content_type);
  td_buf_free(&c->body);
  td_buf_free(&c->stash);
}

static enum td_http_result failed(struct td_http_conn *c, int status, const char *text)
{
  if (status) {
    c->error_status = status;
    snprintf(c->error_text, sizeof(c->error_text), "%s", text);
  }
  c->state = TD_HTTP_FAILED;
  return TD_HTTP_ERROR;
}

/* Parses from data until a request completes (*used says how far) or the bytes run out. */
static enum td_http_result parse(struct td_http_conn *c, const uint8_t *data, size_t len, size_t *used)
{
  size_t off = 0;

  *used = 0;
  while (off < len) {
    size_t chunk = len - off;
    int in_head = c->state == TD_HTTP_IDLE || c->state == TD_HTTP_HEAD;
    llhttp_errno_t e;

    /* Feeding the head no further than the limit makes 431 exact and bounds what llhttp sees. */
    if (in_head) {
      size_t room = c->limits.max_header - c->head_bytes;
      if (room == 0) {
        char text[96];
        snprintf(text, sizeof(text), "request header section larger than %zu bytes", c->limits.max_header);
        return failed(c, 431, text);
      }
      if (chunk > room)
        chunk = room;
    }
    e = llhttp_execute(&c->parser, (const char *)data + off, chunk);
    if (e == HPE_OK) {
      if (in_head)
        c->head_bytes += chunk;
      off += chunk;
      continue;
    }
    if (e == HPE_PAUSED && c->state == TD_HTTP_READY) {
      *used = off + (size_t)(llhttp_get_error_pos(&c->parser) - ((const char *)data + off));
      return TD_HTTP_REQUEST;
    }
    /* A callback refused the request and said why. */
    if (c->error_status)
      return failed(c, 0, NULL);
    if (e == HPE_INVALID_VERSION)
      return failed(c, 505, "HTTP version not supported: use HTTP/1.1");
    {
      char text[128];
      snprintf(text, sizeof(text), "malformed request: %s", llhttp_get_error_reason(&c->parser));
      return failed(c, 400, text);
    }
  }
  *used = len;
  if (c->state == TD_HTTP_BODY && c->expect_continue == 1) {
    c->expect_continue = 2;
    return TD_HTTP_CONTINUE;
  }
  return TD_HTTP_NEED_MORE;
}

static enum td_http_result keep(struct td_http_conn *c, const uint8_t *data, size_t len)
{
  if (td_buf_append(&c->stash, data, len) != TN_OK)
    return failed(c, 400, "too many pipelined bytes while a request was outstanding");
  return TD_HTTP_NEED_MORE;
}

enum td_http_result td_http_conn_feed(struct td_http_conn *c, const uint8_t *data, size_t len)
{
  enum td_http_result r;
  size_t used;

  if (c->state == TD_HTTP_FAILED)
    return TD_HTTP_ERROR;
  if (c->state == TD_HTTP_READY) {
    /* The request being answered must outlive a peer that keeps sending (fuzz_td_mgmt: a PUT /tunnels answered
     * after its connection had overflowed was answered from a request that was gone). */
    if (!c->stash_overflow && td_buf_append(&c->stash, data, len) != TN_OK)
      c->stash_overflow = 1;
    return TD_HTTP_NEED_MORE;
  }
  if (len == 0)
    return TD_HTTP_NEED_MORE;
  r = parse(c, data, len, &used);
  if (r == TD_HTTP_REQUEST && used < len && keep(c, data + used, len - used) == TD_HTTP_ERROR)
    return TD_HTTP_ERROR;
  return r;
}

const struct td_http_request *td_http_conn_request(const struct td_http_conn *c)
{
  return c->state == TD_HTTP_READY ? &c->req : NULL;
}

enum td_http_result td_http_conn_next(struct td_http_conn *c)
{
  enum td_http_result r;
  size_t used;

  if (c->state == TD_HTTP_FAILED)
    return TD_HTTP_ERROR;
  if (c->state != TD_HTTP_READY)
    return TD_HTTP_NEED_MORE;
  if (c->stash_overflow)
    return failed(c, 400, "too many pipelined bytes while a request was outstanding");
  reset_message(c);
  llhttp_resume(&c->parser);
  if (c->stash.len == 0)
    return TD_HTTP_NEED_MORE;
  r = parse(c, c->stash.data, c->stash.len, &used);
  if (r == TD_HTTP_ERROR)
    return r;
  td_buf_consume(&c->stash, used);
  return r;
}

enum td_http_state td_http_conn_state(const struct td_http_conn *c)
{
  return c->state;
}

int td_http_conn_error_status(const struct td_http_conn *c)
{
  return c->error_status;
}

const char *td_http_conn_error_text(const struct td_http_conn *c)
{
  return c->error_text;
}

const char *td_http_reason(int status)
{
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 413: return "Content Too Large";
  case 415: return "Unsupported Media Type";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}

int td_http_response(struct td_buf *out, int status, const char *content_type, const void *body, size_t len,
                     int keep_alive, const char *extra_headers)
{
  int rc;

  rc = td_buf_printf(out, "HTTP/1.1 %d %s\r\n", status, td_http_reason(status));
  if (rc == TN_OK && content_type)
    rc = td_buf_printf(out, "Content-Type: %s\r\n", content_type);
  if (rc == TN_OK)
    rc = td_buf_printf(out, "Content-Length: %zu\r\nConnection: %s\r\nCache-Control: no-store\r\n", len,
                       keep_alive ? "keep-alive" : "close");
  if (rc == TN_OK && extra_headers)
    rc = td_buf_append_str(out, extra_headers);
  if (rc == TN_OK)
    rc = td_buf_append(out, "\r\n", 2);
  if (rc == TN_OK && len)
    rc = td_buf_append(out, body, len);
  return rc;
}

void td_http_date_header(time_t t, char out[TD_HTTP_DATE_LEN])
{
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  struct tm tm;

  /* Spelled out by hand: strftime's names follow the locale, HTTP's do not. */
  if (!gmtime_r(&t, &tm)) {
    out[0] = 0;
    return;
  }
  snprintf(out, TD_HTTP_DATE_LEN, "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n", days[tm.tm_wday % 7], tm.tm_mday,
           months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}
