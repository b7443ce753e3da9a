/* test_td_http.c: the management API's HTTP/1.1 connection: every split point, keep-alive, pipelining, limits, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"
#include "tunnel/error.h"

static const struct td_http_limits limits = {.max_header = 1024, .max_body = 4096};

/* What a run produced: requests rendered as text, then the final result. */
struct outcome {
  char log[8192];
  size_t n_requests;
  size_t n_continue;
  enum td_http_result last;
  int error_status;
};

static void record(struct outcome *o, const struct td_http_request *r)
{
  size_t n = strlen(o->log);

  snprintf(o->log + n, sizeof(o->log) - n, "%s %s ct=%s cl=%d:%llu ka=%d minor=%u body=%.*s|", r->method, r->path,
           r->content_type ? r->content_type : "-", r->has_content_length, (unsigned long long)r->content_length,
           r->keep_alive, r->http_minor, (int)r->body_len, (const char *)r->body);
  o->n_requests++;
}

/* Handles one result like the server would: answer every request, follow up with next(). */
static void drain(struct td_http_conn *c, enum td_http_result r, struct outcome *o)
{
  while (r == TD_HTTP_REQUEST || r == TD_HTTP_CONTINUE) {
    if (r == TD_HTTP_CONTINUE) {
      o->n_continue++;
      r = TD_HTTP_NEED_MORE;
      break;
    }
    record(o, td_http_conn_request(c));
    assert_non_null(td_http_conn_request(c));
    r = td_http_conn_next(c);
  }
  o->last = r;
  if (r == TD_HTTP_ERROR)
    o->error_status = td_http_conn_error_status(c);
}

/* Feeds text in pieces cut at the given offsets (sorted, within len). */
static void run_cuts(const char *text, size_t len, const size_t *cuts, size_t n_cuts, struct outcome *o)
{
  struct td_http_conn c;
  size_t from = 0;

  memset(o, 0, sizeof(*o));
  td_http_conn_init(&c, &limits);
  for (size_t i = 0; i <= n_cuts; i++) {
    size_t to = i < n_cuts ? cuts[i] : len;
    enum td_http_result r = td_http_conn_feed(&c, (const uint8_t *)text + from, to - from);
    drain(&c, r, o);
    from = to;
    if (o->last == TD_HTTP_ERROR)
      break;
  }
  td_http_conn_free(&c);
}

static void run_whole(const char *text, struct outcome *o)
{
  run_cuts(text, strlen(text), NULL, 0, o);
}

static const char pipelined[] =
  "GET /tunnels?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"
  "PUT /tunnels HTTP/1.1\r\nHost: a\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 7\r\n\r\n[1,2,3]"
  "\r\n" /* a stray CRLF between requests is tolerated */
  "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"
  "GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n";

static const char pipelined_log[] =
  "GET /tunnels ct=- cl=0:0 ka=1 minor=1 body=|"
  "PUT /tunnels ct=application/json; charset=utf-8 cl=1:7 ka=1 minor=1 body=[1,2,3]|"
  "PUT /x ct=- cl=0:0 ka=1 minor=1 body=abcde|"
  "GET /ping ct=- cl=0:0 ka=0 minor=1 body=|";

static void test_pipelined_whole(void **state)
{
  struct outcome o;

  run_whole(pipelined, &o);
  assert_string_equal(o.log, pipelined_log);
  assert_int_equal(o.last, TD_HTTP_NEED_MORE);
}

static void test_every_split(void **state)
{
  size_t len = strlen(pipelined);
  struct outcome o;

  for (size_t k = 0; k <= len; k++) {
    run_cuts(pipelined, len, &k, 1, &o);
    assert_string_equal(o.log, pipelined_log);
    assert_int_equal(o.last, TD_HTTP_NEED_MORE);
  }
  for (size_t k = 0; k + 7 <= len; k += 3) {
    size_t cuts[2] = {k, k + 7};
    run_cuts(pipelined, len, cuts, 2, &o);
    assert_string_equal(o.log, pipelined_log);
  }
}

static void test_byte_by_byte(void **state)
{
  size_t len = strlen(pipelined);
  size_t *cuts = calloc(len, sizeof(size_t));
  struct outcome o;

  for (size_t i = 0; i < len; i++)
    cuts[i] = i + 1;
  run_cuts(pipelined, len, cuts, len - 1, &o);
  assert_string_equal(o.log, pipelined_log);
  free(cuts);
}

static void test_keep_alive(void **state)
{
  struct outcome o;

  run_whole("GET / HTTP/1.0\r\n\r\n", &o);
  assert_string_equal(o.log, "GET / ct=- cl=0:0 ka=0 minor=0 body=|");
  run_whole("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &o);
  assert_string_equal(o.log, "GET / ct=- cl=0:0 ka=1 minor=0 body=|");
  run_whole("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &o);
  assert_string_equal(o.log, "GET / ct=- cl=0:0 ka=0 minor=1 body=|");
  run_whole("GET / HTTP/1.1\r\nConnection: Keep-Alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", &o);
  assert_string_equal(o.log, "GET / ct=- cl=0:0 ka=0 minor=1 body=|");
  /* CONNECT would turn the connection into a tunnel: answer it (404) and close. */
  run_whole("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nGET / HTTP/1.1\r\n\r\n", &o);
  assert_string_equal(o.log, "CONNECT example.com:443 ct=- cl=0:0 ka=0 minor=1 body=|");
}

static void test_outstanding_request_keeps_bytes(void **state)
{
  struct td_http_conn c;
  const char *a = "GET /a HTTP/1.1\r\n\r\n", *b = "GET /b HTTP/1.1\r\n\r\n";

  td_http_conn_init(&c, &limits);
  assert_int_equal(td_http_conn_state(&c), TD_HTTP_IDLE);
  assert_null(td_http_conn_request(&c));
  assert_int_equal(td_http_conn_feed(&c, (const uint8_t *)a, 5), TD_HTTP_NEED_MORE);
  assert_int_equal(td_http_conn_state(&c), TD_HTTP_HEAD);
  assert_int_equal(td_http_conn_feed(&c, (const uint8_t *)a + 5, strlen(a) - 5), TD_HTTP_REQUEST);
  assert_int_equal(td_http_conn_state(&c), TD_HTTP_READY);
  assert_string_equal(td_http_conn_request(&c)->path, "/a");
  /* More bytes while /a is outstanding are kept, not parsed. */
  assert_int_equal(td_http_conn_feed(&c, (const uint8_t *)b, strlen(b)), TD_HTTP_NEED_MORE);
  assert_string_equal(td_http_conn_request(&c)->path, "/a");
  assert_int_equal(td_http_conn_next(&c), TD_HTTP_REQUEST);
  assert_string_equal(td_http_conn_request(&c)->path, "/b");
  assert_int_equal(td_http_conn_next(&c), TD_HTTP_NEED_MORE);
  assert_int_equal(td_http_conn_state(&c), TD_HTTP_IDLE);
  assert_int_equal(td_http_conn_next(&c), TD_HTTP_NEED_MORE);
  assert_int_equal(td_http_conn_feed(&c, (const uint8_t *)"", 0), TD_HTTP_NEED_MORE);
  td_http_conn_free(&c);
}

static void test_stash_limit(void **state)
{
  struct td_http_conn c;
  char *big = malloc(limits.max_header + limits.max_body + 1);

  memset(big, 'G', limits.max_header + limits.max_body + 1);
  td_http_conn_init(&c, &limits);
  assert_int_equal(td_http_conn_feed(&c, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18), TD_HTTP_REQUEST);
  assert_int_equal(td_http_conn_feed(&c, (const uint8_t *)big, limits.max_header + limits.max_body), TD_HTTP_NEED_MORE);
  /* One byte too many: dropped, and the request being answered stays whole until the connection moves on. */
  assert_int_equal(td_http_conn_feed(&c, (const uint8_t *)big, 1), TD_HTTP_NEED_MORE);
  assert_non_null(td_http_conn_request(&c));
  assert_string_equal(td_http_conn_request(&c)->path, "/");
  assert_int_equal(td_http_conn_next(&c), TD_HTTP_ERROR);
  assert_int_equal(td_http_conn_error_status(&c), 400);
  assert_string_equal(td_http_conn_error_text(&c), "too many pipelined bytes while a request was outstanding");
  td_http_conn_free(&c);
  free(big);
}

static void test_413_from_content_length(void **state)
{
  struct td_http_conn c;
  const char *head = "PUT /tunnels HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 4097\r\n\r\n";

  td_http_conn_init(&c, &limits);
  /* Decided from the head alone: no body byte was sent or buffered. */
  assert_int_equal(td_http_conn_feed(&c, (const uint8_t *)head, strlen(head)), TD_HTTP_ERROR);
  assert_int_equal(td_http_conn_error_status(&c), 413);
  assert_string_equal(td_http_conn_error_text(&c), "request body larger than 4096 bytes");
  assert_int_equal(c.body.len, 0);
  assert_null(c.body.data);
  assert_int_equal(td_http_conn_state(&c), TD_HTTP_FAILED);
  assert_int_equal(td_http_conn_feed(&c, (const uint8_t *)"x", 1), TD_HTTP_ERROR);
  assert_int_equal(td_http_conn_next(&c), TD_HTTP_ERROR);
  td_http_conn_free(&c);
}

static void test_body_at_limit(void **state)
{
  struct td_http_conn c;
  char *req = malloc(8192);
  int n = snprintf(req, 8192, "PUT /t HTTP/1.1\r\nContent-Length: 4096\r\n\r\n");

  memset(req + n, 'b', 4096);
  td_http_conn_init(&c, &limits);
  assert_int_equal(td_http_conn_feed(&c, (const uint8_t *)req, (size_t)n + 4096), TD_HTTP_REQUEST);
  assert_int_equal(td_http_conn_request(&c)->body_len, 4096);
  td_http_conn_free(&c);
  free(req);
}

static void test_413_chunked(void **state)
{
  struct outcome o;
  char req[8192];
  int n = snprintf(req, sizeof(req), "PUT /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");

  for (int i = 0; i < 5; i++) {
    n += snprintf(req + n, sizeof(req) - (size_t)n, "400\r\n");
    memset(req + n, 'x', 1024);
    n += 1024;
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
  }
  run_whole(req, &o);
  assert_int_equal(o.last, TD_HTTP_ERROR);
  assert_int_equal(o.error_status, 413);
  assert_int_equal(o.n_requests, 0);
}

static void test_431(void **state)
{
  struct outcome o;
  char req[4096];
  int n;

  n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Big: ");
  memset(req + n, 'v', 1100);
  snprintf(req + n + 1100, sizeof(req) - (size_t)n - 1100, "\r\n\r\n");
  run_whole(req, &o);
  assert_int_equal(o.last, TD_HTTP_ERROR);
  assert_int_equal(o.error_status, 431);

  /* A head of exactly max_header bytes is fine; one more byte is not. */
  n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Fill: ");
  memset(req + n, 'v', 1024 - (size_t)n - 4);
  snprintf(req + 1024 - 4, sizeof(req) - 1020, "\r\n\r\n");
  assert_int_equal(strlen(req), 1024);
  run_whole(req, &o);
  assert_int_equal(o.n_requests, 1);
  req[n] = 0;
  memset(req + n, 'v', 1024 - (size_t)n - 3);
  snprintf(req + 1024 - 3, sizeof(req) - 1021, "\r\n\r\n");
  run_whole(req, &o);
  assert_int_equal(o.error_status, 431);

  /* The limit applies to each request of a keep-alive connection afresh. */
  {
    struct td_http_conn c;
    char one[700];
    int k = snprintf(one, sizeof(one), "GET /a HTTP/1.1\r\nX: ");
    memset(one + k, 'y', 600);
    snprintf(one + k + 600, sizeof(one) - (size_t)k - 600, "\r\n\r\n");
    td_http_conn_init(&c, &limits);
    for (int i = 0; i < 10; i++) {
      assert_int_equal(td_http_conn_feed(&c, (const uint8_t *)one, strlen(one)), TD_HTTP_REQUEST);
      assert_int_equal(td_http_conn_next(&c), TD_HTTP_NEED_MORE);
    }
    td_http_conn_free(&c);
  }
}

static void test_malformed(void **state)
{
  static const struct {
    const char *text;
    int status;
  } cases[] = {
    {"GARBAGE\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
    {"PUT / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    {"PUT / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400},
    {"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
    {"GET / HTTP/1.1\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n", 400},
    /* A coding other than chunked alone would be read as if the body were plain: refused, never half-applied. */
    {"PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\n[1]\r\n0\r\n\r\n", 501},
    {"PUT / HTTP/1.1\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\n[1]", 501},
    {"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400}, /* llhttp refuses it first */
    {"PUT / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
    {"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
    {"GET / HTTP/2.0\r\n\r\n", 505},
    {"GET / HTTP/0.9\r\n\r\n", 505},
    {"GET / HTTP/1.7\r\n\r\n", 505},
    {"GET / HTTP/3.1\r\n\r\n", 505},
    {"HTTP/1.1 200 OK\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nX\x01: a\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nAn-Overlong-Header-Name-That-Is-Longer-Than-Sixty-Four-Bytes-Abcdefghijk{}: a\r\n\r\n", 400},
  };
  struct outcome o;

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    run_whole(cases[i].text, &o);
    if (o.last != TD_HTTP_ERROR || o.error_status != cases[i].status)
      fail_msg("case %zu (%s): last %d status %d", i, cases[i].text, o.last, o.error_status);
  }
}

static void test_expect_continue(void **state)
{
  struct td_http_conn c;
  const char *head = "PUT /tunnels HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-Continue\r\n\r\n";

  td_http_conn_init(&c, &limits);
  assert_int_equal(td_http_conn_feed(&c, (const uint8_t *)head, strlen(head)), TD_HTTP_CONTINUE);
  assert_int_equal(td_http_conn_state(&c), TD_HTTP_BODY);
  assert_int_equal(td_http_conn_feed(&c, (const uint8_t *)"[", 1), TD_HTTP_NEED_MORE);
  assert_int_equal(td_http_conn_feed(&c, (const uint8_t *)"]", 1), TD_HTTP_REQUEST);
  assert_memory_equal(td_http_conn_request(&c)->body, "[]", 2);
  td_http_conn_free(&c);

  /* Body already there: no interim response needed. */
  {
    struct outcome o;
    run_whole("PUT /t HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n[]", &o);
    assert_int_equal(o.n_continue, 0);
    assert_int_equal(o.n_requests, 1);
    run_whole("PUT /t HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n", &o);
    assert_int_equal(o.n_continue, 0);
  }
  /* Too large: refused before the client sends the body. */
  td_http_conn_init(&c, &limits);
  head = "PUT /tunnels HTTP/1.1\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n";
  assert_int_equal(td_http_conn_feed(&c, (const uint8_t *)head, strlen(head)), TD_HTTP_ERROR);
  assert_int_equal(td_http_conn_error_status(&c), 413);
  td_http_conn_free(&c);
}

static void test_paths(void **state)
{
  struct outcome o;

  run_whole("GET http://example.com/tunnels?a#b HTTP/1.1\r\n\r\n", &o);
  assert_string_equal(o.log, "GET /tunnels ct=- cl=0:0 ka=1 minor=1 body=|");
  run_whole("GET HTTPS://example.com HTTP/1.1\r\n\r\n", &o);
  assert_string_equal(o.log, "GET / ct=- cl=0:0 ka=1 minor=1 body=|");
  run_whole("OPTIONS * HTTP/1.1\r\n\r\n", &o);
  assert_string_equal(o.log, "OPTIONS * ct=- cl=0:0 ka=1 minor=1 body=|");
  run_whole("GET /a%20b?#x HTTP/1.1\r\nContent-Type:\r\n\r\n", &o);
  assert_string_equal(o.log, "GET /a%20b ct= cl=0:0 ka=1 minor=1 body=|");
  run_whole("DELETE /tunnels HTTP/1.1\r\ncontent-type: text/plain\r\ncontent-length: 0\r\n\r\n", &o);
  assert_string_equal(o.log, "DELETE /tunnels ct=text/plain cl=1:0 ka=1 minor=1 body=|");
}

static void test_response(void **state)
{
  struct td_buf b;
  char date[TD_HTTP_DATE_LEN];

  td_buf_init(&b, 4096);
  assert_int_equal(td_http_response(&b, 200, "text/plain", "pong", 4, 1, NULL), TN_OK);
  assert_string_equal((char *)b.data, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n"
                                       "Connection: keep-alive\r\nCache-Control: no-store\r\n\r\npong");
  td_buf_reset(&b);
  assert_int_equal(td_http_response(&b, 405, "application/json", "{}", 2, 0, "Allow: GET, PUT\r\n"), TN_OK);
  assert_string_equal((char *)b.data, "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\n"
                                       "Content-Length: 2\r\nConnection: close\r\nCache-Control: no-store\r\n"
                                       "Allow: GET, PUT\r\n\r\n{}");
  td_buf_reset(&b);
  assert_int_equal(td_http_response(&b, 204, NULL, NULL, 0, 1, NULL), TN_OK);
  assert_string_equal((char *)b.data, "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: keep-alive\r\n"
                                       "Cache-Control: no-store\r\n\r\n");
  td_buf_free(&b);

  td_buf_init(&b, 64);
  assert_int_equal(td_http_response(&b, 200, "text/plain", "pong", 4, 1, NULL), TN_ERR_TOO_LARGE);
  td_buf_free(&b);

  td_http_date_header(784111777, date);
  assert_string_equal(date, "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
  assert_string_equal(td_http_reason(413), "Content Too Large");
  assert_string_equal(td_http_reason(431), "Request Header Fields Too Large");
  assert_string_equal(td_http_reason(999), "Unknown");
}

static void test_buf(void **state)
{
  struct td_buf b;

  td_buf_init(&b, 8);
  assert_int_equal(td_buf_append(&b, "12345", 5), TN_OK);
  assert_int_equal(td_buf_append(&b, "6789", 4), TN_ERR_TOO_LARGE);
  assert_int_equal(b.len, 5);
  assert_int_equal(td_buf_printf(&b, "%d", 678), TN_OK);
  assert_string_equal((char *)b.data, "12345678");
  assert_int_equal(td_buf_printf(&b, "x"), TN_ERR_TOO_LARGE);
  td_buf_consume(&b, 3);
  assert_string_equal((char *)b.data, "45678");
  td_buf_consume(&b, 100);
  assert_int_equal(b.len, 0);
  assert_int_equal(td_buf_append(&b, NULL, 0), TN_OK);
  td_buf_free(&b);
  td_buf_free(&b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_pipelined_whole),
    cmocka_unit_test(test_every_split),
    cmocka_unit_test(test_byte_by_byte),
    cmocka_unit_test(test_keep_alive),
    cmocka_unit_test(test_outstanding_request_keeps_bytes),
    cmocka_unit_test(test_stash_limit),
    cmocka_unit_test(test_413_from_content_length),
    cmocka_unit_test(test_body_at_limit),
    cmocka_unit_test(test_413_chunked),
    cmocka_unit_test(test_431),
    cmocka_unit_test(test_malformed),
    cmocka_unit_test(test_expect_continue),
    cmocka_unit_test(test_paths),
    cmocka_unit_test(test_response),
    cmocka_unit_test(test_buf),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
