/* test_td_api.c: every management API route and status, against a fake server behind td_api_ops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "tunnel/error.h"

/* The test double: a server that keeps a table, records apply calls and can be told to fail. */
struct fake_server {
  struct td_table table;
  int apply_calls;
  int fail_code; /* nonzero: an apply fails with this TN_ERR_* code */
  bool put_pending;                /* a PUT /tunnels ended; call() hands its outcome to put_done */
  enum td_put_result put_result;
  char put_err[512];
  const char *fail_message;
  const char *active[8];
  uint64_t open[8];
  int clients_fail;
  int metrics_fail;
  struct td_revoked revoked;
  int revoked_calls;
  const char *requester_seen;
};

/* As tunneld's start_put: the body parsed as put.c parses it, then applied or refused; the outcome waits for
 * call(), as tunneld's waits for the loop. */
static bool fake_start_put(void *srv, const struct td_api_ctx *ctx, const uint8_t *body, size_t len)
{
  struct fake_server *f = srv;
  struct td_table t;

  f->put_result = td_put_parse(body, len, ctx->reserved, ctx->limits, &t, f->put_err, sizeof(f->put_err));
  if (f->put_result == TD_PUT_APPLIED) {
    f->apply_calls++;
    if (f->fail_code) {
      snprintf(f->put_err, sizeof(f->put_err), "%s", f->fail_message);
      f->put_result = f->fail_code == TN_ERR_CONFLICT ? TD_PUT_CONFLICT : TD_PUT_FAILED;
    } else {
      td_table_free(&f->table);
      f->table = t;
      td_table_init(&t);
    }
  }
  td_table_free(&t);
  f->put_pending = true;
  return true;
}

static const struct td_table *fake_current(void *srv)
{
  return &((struct fake_server *)srv)->table;
}

static void fake_status(void *srv, size_t index, const char **active, uint64_t *open)
{
  struct fake_server *f = srv;

  *active = index < 8 ? f->active[index] : NULL;
  *open = index < 8 ? f->open[index] : 0;
}

static json_t *fake_clients(void *srv)
{
  struct fake_server *f = srv;

  if (f->clients_fail)
    return NULL;
  return json_pack("{s:{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:s}}", "home1", "CurrentState", "ClientConnected", "LastState",
                   "ClientDisconnected", "RemoteAddress", "192.0.2.5:40000", "ConnectedSince", "2024-01-02T03:04:05Z",
                   "OpenStreams", 3, "BytesIn", 10, "BytesOut", 20, "CertificateSha256", "ab12");
}

static int fake_metrics(void *srv, struct td_buf *out)
{
  struct fake_server *f = srv;

  if (f->metrics_fail)
    return TN_ERR_NOMEM;
  return td_buf_append_str(out, "tunneld_clients_connected 1\n");
}

static const struct td_revoked *fake_revoked(void *srv)
{
  return &((struct fake_server *)srv)->revoked;
}

/* Like the server: a list naming the requester is a conflict, anything else replaces the list. */
static int fake_apply_revoked(void *srv, struct td_revoked *r, const char *requester, char *err, size_t errlen)
{
  struct fake_server *f = srv;

  f->revoked_calls++;
  f->requester_seen = requester;
  if (requester != NULL && td_revoked_contains(r, requester)) {
    snprintf(err, errlen, "the list revokes the certificate making this request");
    return TN_ERR_CONFLICT;
  }
  td_revoked_free(&f->revoked);
  f->revoked = *r;
  td_revoked_init(r);
  return 0;
}

static const struct td_api_ops ops = {
  .start_put = fake_start_put,
  .current_table = fake_current,
  .tunnel_status = fake_status,
  .clients_json = fake_clients,
  .metrics_text = fake_metrics,
  .revoked = fake_revoked,
  .apply_revoked = fake_apply_revoked,
};

struct fixture {
  struct fake_server srv;
  struct td_api_counters counters;
  struct td_reserved reserved;
  struct td_api_ctx ctx;
  struct td_api_response resp;
};

static void fake_put_done(void *arg, enum td_put_result result, const char *err, const char *table_json)
{
  struct fixture *f = arg;

  td_api_put_tunnels_answer(&f->ctx, result, err, table_json, &f->resp);
}

static int setup(void **state)
{
  struct fixture *f = calloc(1, sizeof(*f));

  td_table_init(&f->srv.table);
  tn_addr_parse_ip(&f->reserved.ports[0].addr, "::");
  f->reserved.ports[0].addr.port = 9057;
  f->reserved.ports[0].what = "ManagementPort";
  f->reserved.n = 1;
  f->ctx.ops = &ops;
  f->ctx.srv = &f->srv;
  f->ctx.reserved = &f->reserved;
  f->ctx.counters = &f->counters;
  f->ctx.put_done = fake_put_done;
  f->ctx.put_arg = f;
  td_api_response_init(&f->resp, TD_API_MAX_RESPONSE);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;

  td_table_free(&f->srv.table);
  td_revoked_free(&f->srv.revoked);
  td_api_response_free(&f->resp);
  free(f);
  return 0;
}

static void call(struct fixture *f, const char *method, const char *path, const char *ct, const char *body)
{
  struct td_http_request req;

  memset(&req, 0, sizeof(req));
  req.method = method;
  req.path = path;
  req.content_type = ct;
  req.body = (const uint8_t *)(body ? body : "");
  req.body_len = body ? strlen(body) : 0;
  req.keep_alive = 1;
  req.http_minor = 1;
  td_api_response_free(&f->resp);
  td_api_response_init(&f->resp, TD_API_MAX_RESPONSE);
  if (!td_api_handle(&f->ctx, &req, &f->resp)) {
    assert_true(f->srv.put_pending);
    f->srv.put_pending = false;
    f->ctx.put_done(f->ctx.put_arg, f->srv.put_result, f->srv.put_err, NULL);
  }
  assert_false(f->srv.put_pending);
}

/* Body as JSON (parsed), for shape comparisons. */
static json_t *body_json(const struct fixture *f)
{
  json_error_t e;
  json_t *j = json_loadb((const char *)f->resp.body.data, f->resp.body.len, JSON_DECODE_ANY, &e);

  if (!j)
    fail_msg("response body is not JSON: %s", (const char *)f->resp.body.data);
  return j;
}

static void expect_error(struct fixture *f, int status, const char *message)
{
  json_t *j = body_json(f);

  assert_int_equal(f->resp.status, status);
  assert_string_equal(f->resp.content_type, "application/json");
  assert_int_equal(json_object_size(j), 1);
  assert_string_equal(json_string_value(json_object_get(j, "error")), message);
  json_decref(j);
}

static const char two_tunnels[] =
  "[{\"ListenPort\": 8080, \"ClientIdentifier\": \"home1\", \"BackupClientIdentifiers\": [\"home2\"], "
  "\"BackEndPort\": 80},"
  " {\"ListenAddress\": \"::1\", \"ListenPort\": 8443, \"ClientIdentifier\": \"home2\", \"BackEndService\": \"web\", "
  "\"HaProxyProxyProtocol\": true, \"ProxyProtocolVersion\": 2}]";

static const char two_tunnels_get[] =
  "[{\"ListenAddress\":\"0.0.0.0\",\"ListenPort\":8080,\"ClientIdentifier\":\"home1\","
  "\"BackupClientIdentifiers\":[\"home2\"],\"BackEndPort\":80,\"HaProxyProxyProtocol\":false,"
  "\"ListenHostnameGlob\":\"*\",\"ActiveClient\":\"home2\",\"OpenConnections\":7},"
  "{\"ListenAddress\":\"::1\",\"ListenPort\":8443,\"ClientIdentifier\":\"home2\",\"BackupClientIdentifiers\":[],"
  "\"BackEndService\":\"web\",\"HaProxyProxyProtocol\":true,\"ProxyProtocolVersion\":2,"
  "\"ListenHostnameGlob\":\"*\",\"ActiveClient\":null,\"OpenConnections\":0}]\n";

static void test_put_then_get(void **state)
{
  struct fixture *f = *state;

  f->srv.active[0] = "home2";
  f->srv.open[0] = 7;
  call(f, "PUT", "/tunnels", "application/json", two_tunnels);
  assert_int_equal(f->resp.status, 200);
  assert_string_equal(f->resp.content_type, "application/json");
  assert_string_equal((const char *)f->resp.body.data, two_tunnels_get);
  assert_int_equal(f->srv.apply_calls, 1);
  assert_int_equal(f->srv.table.n, 2);
  assert_int_equal(f->counters.put_ok, 1);
  td_api_response_free(&f->resp);

  call(f, "GET", "/tunnels", NULL, NULL);
  assert_int_equal(f->resp.status, 200);
  assert_string_equal((const char *)f->resp.body.data, two_tunnels_get);
  td_api_response_free(&f->resp);

  /* GET output PUT back verbatim is accepted and changes nothing. */
  call(f, "PUT", "/tunnels", "Application/JSON ; charset=UTF-8", two_tunnels_get);
  assert_int_equal(f->resp.status, 200);
  assert_string_equal((const char *)f->resp.body.data, two_tunnels_get);
  assert_int_equal(f->counters.put_ok, 2);
  td_api_response_free(&f->resp);

  /* An empty table is a valid table. */
  call(f, "PUT", "/tunnels", "application/json", "[]");
  assert_int_equal(f->resp.status, 200);
  assert_string_equal((const char *)f->resp.body.data, "[]\n");
  assert_int_equal(f->srv.table.n, 0);
}

static void put_expect_unchanged(struct fixture *f, const char *ct, const char *body, int status, const char *message)
{
  int calls = f->srv.apply_calls;
  json_t *before = td_table_to_json(&f->srv.table, NULL, NULL), *after;

  call(f, "PUT", "/tunnels", ct, body);
  expect_error(f, status, message);
  td_api_response_free(&f->resp);
  after = td_table_to_json(&f->srv.table, NULL, NULL);
  assert_true(json_equal(before, after));
  if (status == 400 || status == 415)
    assert_int_equal(f->srv.apply_calls, calls); /* refused before reaching the server */
  json_decref(before);
  json_decref(after);
}

static void test_put_errors(void **state)
{
  struct fixture *f = *state;

  call(f, "PUT", "/tunnels", "application/json", two_tunnels);
  assert_int_equal(f->resp.status, 200);
  td_api_response_free(&f->resp);

  put_expect_unchanged(f, NULL, "[]", 415, "Content-Type must be application/json, got none");
  put_expect_unchanged(f, "text/plain", "[]", 415, "Content-Type must be application/json, got \"text/plain\"");
  put_expect_unchanged(f, "application/jsonx", "[]", 415, "Content-Type must be application/json, got \"application/jsonx\"");
  put_expect_unchanged(f, "application/json", "[{\"ListenPort\": 80,", 400,
                       "invalid JSON at line 1, column 19: string or '}' expected near end of file");
  put_expect_unchanged(f, "application/json", "", 400,
                       "invalid JSON at line 1, column 0: '[' or '{' expected near end of file");
  /* jansson quotes the input, a newline included: the error stays one line (a JSON "\n" would split log lines). */
  put_expect_unchanged(f, "application/json", "[{\"a\":\"\\\n  \"9\\n\"}]", 400, "invalid JSON at line 2, column 0: invalid escape near '\"\\?'");
  put_expect_unchanged(f, "application/json", "[]x", 400,
                       "invalid JSON at line 1, column 3: end of file expected near 'x'");
  put_expect_unchanged(f, "application/json", "{\"a\": 1}", 400, "tunnels: must be a JSON array of tunnel objects, got {\"a\":1}");
  put_expect_unchanged(f, "application/json",
                       "[{\"ListenPort\": 1, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1},"
                       " {\"ListenPort\": 2, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1},"
                       " {\"ListenPort\": 70000, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1}]",
                       400, "tunnels[2].ListenPort: must be 1-65535, got 70000");
  put_expect_unchanged(f, "application/json",
                       "[{\"ListenPort\": 9057, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1}]", 400,
                       "tunnels[0].ListenPort: listener 0.0.0.0:9057 collides with the server's ManagementPort ([::]:9057)");
  put_expect_unchanged(f, "application/json",
                       "[{\"ListenPort\": 1, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1, \"ListenHostnameGlob\": \"a.*\"}]",
                       400,
                       "tunnels[0].ListenHostnameGlob: must be \"*\", a host name (A-labels: letters, digits, '-' and '.') "
                       "or \"*.\" and a host name, got \"a.*\"");
  put_expect_unchanged(f, "application/json",
                       "[{\"ListenPort\": 1, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1, \"ListenHostnameGlob\": \"a.b\"},"
                       " {\"ListenPort\": 1, \"ClientIdentifier\": \"c\", \"BackEndPort\": 1, \"ListenHostnameGlob\": \"A.B\"}]",
                       409,
                       "tunnels[1] (client c): listener 0.0.0.0:1 with ListenHostnameGlob \"a.b\" is already tunnels[0]'s "
                       "(client a): one port routes each glob to one tunnel");
  put_expect_unchanged(f, "application/json",
                       "[{\"ListenPort\": 1, \"ClientIdentifier\": \"a\", \"ClientIdentifier\": \"b\", \"BackEndPort\": 1}]",
                       400, "invalid JSON at line 1, column 62: duplicate object key near '\"ClientIdentifier\"'");
  assert_int_equal(f->counters.put_invalid, 12);

  /* The server refuses with a conflict: 409 with its message, table unchanged (the fake changes nothing on failure). */
  f->srv.fail_code = TN_ERR_CONFLICT;
  f->srv.fail_message = "tunnels[0]: cannot listen on 0.0.0.0:1: address already in use";
  put_expect_unchanged(f, "application/json", "[{\"ListenPort\": 1, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1}]",
                       409, "tunnels[0]: cannot listen on 0.0.0.0:1: address already in use");
  assert_int_equal(f->counters.put_conflict, 2);
  assert_int_equal(f->srv.table.n, 2);

  f->srv.fail_code = TN_ERR_IO;
  f->srv.fail_message = "";
  put_expect_unchanged(f, "application/json", "[]", 500, "the tunnel table could not be applied");
  f->srv.fail_code = TN_ERR_NOMEM; /* anything but a conflict is the server's failure: 500 */
  f->srv.fail_message = "odd";
  put_expect_unchanged(f, "application/json", "[]", 500, "odd");
  assert_int_equal(f->counters.put_failed, 2);
  assert_int_equal(f->counters.put_ok, 1);

  call(f, "GET", "/tunnels", NULL, NULL);
  assert_int_equal(f->resp.status, 200);
  {
    json_t *j = body_json(f);
    assert_int_equal(json_array_size(j), 2);
    json_decref(j);
  }
}

static void test_other_routes(void **state)
{
  struct fixture *f = *state;
  json_t *j;

  call(f, "GET", "/ping", NULL, NULL);
  assert_int_equal(f->resp.status, 200);
  assert_string_equal(f->resp.content_type, "text/plain; charset=utf-8");
  assert_string_equal((const char *)f->resp.body.data, "pong");
  td_api_response_free(&f->resp);

  call(f, "GET", "/clients", NULL, NULL);
  assert_int_equal(f->resp.status, 200);
  j = body_json(f);
  assert_string_equal(json_string_value(json_object_get(json_object_get(j, "home1"), "CurrentState")), "ClientConnected");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "home1"), "OpenStreams")), 3);
  json_decref(j);
  td_api_response_free(&f->resp);

  f->srv.clients_fail = 1;
  call(f, "GET", "/clients", NULL, NULL);
  expect_error(f, 500, "client list unavailable");
  td_api_response_free(&f->resp);

  f->counters.put_invalid = 4;
  call(f, "GET", "/metrics", NULL, NULL);
  assert_int_equal(f->resp.status, 200);
  assert_string_equal(f->resp.content_type, "text/plain; version=0.0.4; charset=utf-8");
  assert_string_equal((const char *)f->resp.body.data,
                      "tunneld_clients_connected 1\n"
                      "# HELP tunneld_api_put_requests_total PUT /tunnels requests by result.\n"
                      "# TYPE tunneld_api_put_requests_total counter\n"
                      "tunneld_api_put_requests_total{result=\"ok\"} 0\n"
                      "tunneld_api_put_requests_total{result=\"invalid\"} 4\n"
                      "tunneld_api_put_requests_total{result=\"conflict\"} 0\n"
                      "tunneld_api_put_requests_total{result=\"failed\"} 0\n");
  td_api_response_free(&f->resp);

  f->srv.metrics_fail = 1;
  call(f, "GET", "/metrics", NULL, NULL);
  expect_error(f, 500, "metrics unavailable");
}

static void test_405_404(void **state)
{
  struct fixture *f = *state;
  static const struct {
    const char *method, *path, *allow;
  } m[] = {
    {"POST", "/tunnels", "Allow: GET, PUT\r\n"}, {"DELETE", "/tunnels", "Allow: GET, PUT\r\n"},
    {"HEAD", "/tunnels", "Allow: GET, PUT\r\n"}, {"PUT", "/clients", "Allow: GET\r\n"},
    {"POST", "/ping", "Allow: GET\r\n"},          {"PUT", "/metrics", "Allow: GET\r\n"},
    {"POST", "/revoked-certificates", "Allow: GET, PUT\r\n"},
  };
  char msg[128];

  for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
    call(f, m[i].method, m[i].path, "application/json", "[]");
    snprintf(msg, sizeof(msg), "method %s not allowed on %s", m[i].method, m[i].path);
    expect_error(f, 405, msg);
    assert_string_equal(f->resp.extra_headers, m[i].allow);
    td_api_response_free(&f->resp);
  }
  assert_int_equal(f->srv.apply_calls, 0);
  assert_int_equal(f->counters.put_invalid + f->counters.put_ok, 0);

  static const char *const unknown[] = {"/", "/tunnels/", "/Tunnels", "/tunnels/0", "/pingx", "", "*"};
  for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
    call(f, "GET", unknown[i], NULL, NULL);
    snprintf(msg, sizeof(msg), "no such endpoint: %s", unknown[i]);
    expect_error(f, 404, msg);
    assert_string_equal(f->resp.extra_headers, "");
    td_api_response_free(&f->resp);
  }
}

static void test_forbidden_and_write(void **state)
{
  struct fixture *f = *state;
  struct td_buf out;

  td_api_forbidden(&f->resp, "home1");
  expect_error(f, 403, "certificate \"home1\" is not allowed on the management port (not in AdminIdentities)");
  td_api_forbidden(&f->resp, NULL);
  expect_error(f, 403, "a client certificate listed in AdminIdentities is required");
  td_api_error(&f->resp, 400, "bad \"quote\"\n");
  assert_string_equal((const char *)f->resp.body.data, "{\"error\":\"bad \\\"quote\\\"\\n\"}\n");
  td_api_error(&f->resp, 400, "\xff invalid utf-8");
  assert_string_equal((const char *)f->resp.body.data, "{\"error\":\"(message unavailable)\"}\n");

  td_buf_init(&out, 4096);
  call(f, "POST", "/ping", NULL, NULL);
  assert_int_equal(td_api_response_write(&f->resp, 0, &out), TN_OK);
  assert_string_equal((const char *)out.data,
                      "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 45\r\n"
                      "Connection: close\r\nCache-Control: no-store\r\nAllow: GET\r\n\r\n"
                      "{\"error\":\"method POST not allowed on /ping\"}\n");
  td_buf_free(&out);
}

static void test_response_limit(void **state)
{
  struct fixture *f = *state;
  struct td_http_request req;

  call(f, "PUT", "/tunnels", "application/json", two_tunnels);
  td_api_response_free(&f->resp);
  memset(&req, 0, sizeof(req));
  req.method = "GET";
  req.path = "/tunnels";
  td_api_response_free(&f->resp);
  td_api_response_init(&f->resp, 64);
  td_api_handle(&f->ctx, &req, &f->resp);
  expect_error(f, 500, "response too large");
}

#define FP1 "1111111111111111111111111111111111111111111111111111111111111111"
#define FP2 "2222222222222222222222222222222222222222222222222222222222222222"
#define FP_ME "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"

/* GET/PUT /revoked-certificates: the applied list back (sorted), 400s that change nothing, the requester's own certificate refused. */
static void test_revoked_routes(void **state)
{
  struct fixture *f = *state;

  f->ctx.requester_sha256 = FP_ME;
  call(f, "GET", "/revoked-certificates", NULL, NULL);
  assert_int_equal(f->resp.status, 200);
  assert_memory_equal(f->resp.body.data, "[]\n", 3);

  call(f, "PUT", "/revoked-certificates", "application/json", "[\"" FP2 "\", \"" FP1 "\"]");
  assert_int_equal(f->resp.status, 200);
  assert_string_equal(f->resp.content_type, "application/json");
  assert_memory_equal(f->resp.body.data, "[\"" FP1 "\",\"" FP2 "\"]\n", f->resp.body.len);
  assert_string_equal(f->srv.requester_seen, FP_ME);
  /* Idempotent: the same list again is the same answer. */
  call(f, "PUT", "/revoked-certificates", "application/json", "[\"" FP1 "\", \"" FP2 "\"]");
  assert_int_equal(f->resp.status, 200);
  assert_memory_equal(f->resp.body.data, "[\"" FP1 "\",\"" FP2 "\"]\n", f->resp.body.len);
  assert_int_equal(f->srv.revoked_calls, 2);

  call(f, "PUT", "/revoked-certificates", "application/json", "[\"" FP1 "\", \"AB:CD\"]");
  expect_error(f, 400, "revoked-certificates[1]: must be a SHA-256 fingerprint, 64 hex digits with or without colons "
                       "(as tunneld pki show or openssl x509 -fingerprint -sha256 prints it), got \"AB:CD\"");
  call(f, "PUT", "/revoked-certificates", "application/json", "{\"a\": 1}");
  expect_error(f, 400, "revoked-certificates: must be a JSON array of SHA-256 fingerprints, got {\"a\":1}");
  call(f, "PUT", "/revoked-certificates", "application/json", "[\"" FP1 "\", \"" FP1 "\"]");
  expect_error(f, 400, "revoked-certificates[0]: \"" FP1 "\" is listed twice");
  call(f, "PUT", "/revoked-certificates", "application/json", "[");
  assert_int_equal(f->resp.status, 400);
  call(f, "PUT", "/revoked-certificates", "text/plain", "[]");
  assert_int_equal(f->resp.status, 415);
  assert_int_equal(f->srv.revoked_calls, 2);
  call(f, "PUT", "/revoked-certificates", "application/json", "[\"" FP_ME "\"]");
  expect_error(f, 409, "the list revokes the certificate making this request");
  call(f, "GET", "/revoked-certificates", NULL, NULL);
  assert_memory_equal(f->resp.body.data, "[\"" FP1 "\",\"" FP2 "\"]\n", f->resp.body.len);
  /* Revocation PUTs are not tunnel-table PUTs. */
  assert_int_equal(f->counters.put_ok + f->counters.put_invalid + f->counters.put_conflict, 0);

  call(f, "PUT", "/revoked-certificates", "application/json", "[]");
  assert_int_equal(f->resp.status, 200);
  assert_memory_equal(f->resp.body.data, "[]\n", 3);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_put_then_get, setup, teardown),
    cmocka_unit_test_setup_teardown(test_put_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_other_routes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_405_404, setup, teardown),
    cmocka_unit_test_setup_teardown(test_forbidden_and_write, setup, teardown),
    cmocka_unit_test_setup_teardown(test_response_limit, setup, teardown),
    cmocka_unit_test_setup_teardown(test_revoked_routes, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
