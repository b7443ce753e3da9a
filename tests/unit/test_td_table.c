/* test_td_table.c: tunnel table validation rules, error texts, conflicts and the GET->PUT round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "table.h"
#include "tunnel/error.h"

static json_t *parse(const char *text)
{
  json_error_t e;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &e);

  if (!j)
    fail_msg("bad test JSON: %s: %s", text, e.text);
  return j;
}

static int from_text(const char *text, const struct td_reserved *r, struct td_table *t, char *err, size_t errlen)
{
  json_t *j = parse(text);
  int rc;

  err[0] = 0;
  rc = td_table_from_json(j, r, NULL, t, err, errlen);
  json_decref(j);
  return rc;
}

static void expect_error(const char *text, const char *message)
{
  struct td_table t;
  char err[512];

  assert_int_equal(from_text(text, NULL, &t, err, sizeof(err)), TN_ERR_INVALID);
  assert_string_equal(err, message);
  assert_int_equal(t.n, 0);
  assert_null(t.tunnels);
}

/* One tunnel with valid required keys plus extra. */
static void expect_one_error(const char *extra, const char *message)
{
  char text[2048];

  snprintf(text, sizeof(text), "[{\"ListenPort\": 8080, \"ClientIdentifier\": \"home1\", \"BackEndPort\": 80%s%s}]",
           extra[0] ? ", " : "", extra);
  expect_error(text, message);
}

static void test_minimal_defaults(void **state)
{
  struct td_table t;
  char err[256], addr[TN_ADDR_STRLEN];

  assert_int_equal(from_text("[{\"ListenPort\": 8080, \"ClientIdentifier\": \"home1\", \"BackEndPort\": 80}]", NULL, &t,
                             err, sizeof(err)),
                   TN_OK);
  assert_int_equal(t.n, 1);
  assert_string_equal(tn_addr_format(&t.tunnels[0].listen, addr, sizeof(addr)), "0.0.0.0:8080");
  assert_string_equal(t.tunnels[0].client_id, "home1");
  assert_int_equal(t.tunnels[0].n_backups, 0);
  assert_int_equal(t.tunnels[0].backend_port, 80);
  assert_null(t.tunnels[0].backend_service);
  assert_int_equal(t.tunnels[0].proxy_version, 0);
  td_table_free(&t);

  assert_int_equal(from_text("[]", NULL, &t, err, sizeof(err)), TN_OK);
  assert_int_equal(t.n, 0);
  td_table_free(&t);
}

static void test_all_fields(void **state)
{
  struct td_table t;
  char err[256], addr[TN_ADDR_STRLEN];

  assert_int_equal(from_text("[{\"ListenAddress\": \"2001:db8::1\", \"ListenPort\": 443, \"ClientIdentifier\": \"a\", "
                             "\"BackupClientIdentifiers\": [\"b\", \"c d\"], \"BackEndService\": \"web_1.internal-x\", "
                             "\"HaProxyProxyProtocol\": true, \"ProxyProtocolVersion\": 2, \"ListenHostnameGlob\": \"*\"},"
                             "{\"ListenAddress\": \"192.0.2.7\", \"ListenPort\": 443, \"ClientIdentifier\": \"a\", "
                             "\"BackEndPort\": 65535, \"HaProxyProxyProtocol\": true, \"BackupClientIdentifiers\": null},"
                             "{\"ListenPort\": 1, \"ClientIdentifier\": \"\\u00e9t\\u00e9\", \"BackEndPort\": 1, "
                             "\"HaProxyProxyProtocol\": false, \"ListenAddress\": null}]",
                             NULL, &t, err, sizeof(err)),
                   TN_OK);
  assert_int_equal(t.n, 3);
  assert_string_equal(tn_addr_format(&t.tunnels[0].listen, addr, sizeof(addr)), "[2001:db8::1]:443");
  assert_int_equal(t.tunnels[0].n_backups, 2);
  assert_string_equal(t.tunnels[0].backups[0], "b");
  assert_string_equal(t.tunnels[0].backups[1], "c d");
  assert_string_equal(t.tunnels[0].backend_service, "web_1.internal-x");
  assert_int_equal(t.tunnels[0].backend_port, 0);
  assert_int_equal(t.tunnels[0].proxy_version, 2);
  assert_int_equal(t.tunnels[1].proxy_version, 1);
  assert_int_equal(t.tunnels[1].backend_port, 65535);
  assert_int_equal(t.tunnels[1].n_backups, 0);
  assert_int_equal(t.tunnels[2].proxy_version, 0);
  assert_string_equal(t.tunnels[2].client_id, "\xc3\xa9t\xc3\xa9");
  assert_string_equal(tn_addr_format(&t.tunnels[2].listen, addr, sizeof(addr)), "0.0.0.0:1");
  td_table_free(&t);
}

static void test_body_shape(void **state)
{
  expect_error("{}", "tunnels: must be a JSON array of tunnel objects, got {}");
  expect_error("null", "tunnels: must be a JSON array of tunnel objects, got null");
  expect_error("[{\"ListenPort\": 1, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1}, 5]",
               "tunnels[1]: must be an object, got 5");
  expect_error("[[]]", "tunnels[0]: must be an object, got []");
  expect_one_error("\"Foo\": 1", "tunnels[0]: unknown key \"Foo\"");
  expect_one_error("\"listenport\": 1", "tunnels[0]: unknown key \"listenport\"");
  expect_one_error("\"Listen\\nPort\": 1", "tunnels[0]: unknown key \"Listen\\x0aPort\"");
}

static void test_listen_address(void **state)
{
  expect_one_error("\"ListenAddress\": \"localhost\"",
                   "tunnels[0].ListenAddress: must be an IPv4 or IPv6 address literal, got \"localhost\"");
  expect_one_error("\"ListenAddress\": \"\"", "tunnels[0].ListenAddress: must be an IPv4 or IPv6 address literal, got \"\"");
  expect_one_error("\"ListenAddress\": \"1.2.3.4:80\"",
                   "tunnels[0].ListenAddress: must be an IPv4 or IPv6 address literal, got \"1.2.3.4:80\"");
  expect_one_error("\"ListenAddress\": \"fe80::1%eth0\"",
                   "tunnels[0].ListenAddress: must be an IPv4 or IPv6 address literal, got \"fe80::1%eth0\"");
  expect_one_error("\"ListenAddress\": 127", "tunnels[0].ListenAddress: must be an IPv4 or IPv6 address literal, got 127");
}

static void test_ports(void **state)
{
  expect_error("[{\"ClientIdentifier\": \"a\", \"BackEndPort\": 1}]", "tunnels[0].ListenPort: is required (1-65535)");
  expect_error("[{\"ListenPort\": null, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1}]",
               "tunnels[0].ListenPort: is required (1-65535)");
}

static void test_port_values(void **state)
{
  static const char *const bad[] = {"0", "65536", "-1", "\"80\"", "80.0", "true", "[80]"};
  char text[256], msg[256];

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(text, sizeof(text),
             "[{\"ListenPort\": 1, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1},"
             " {\"ListenPort\": 2, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1},"
             " {\"ListenPort\": %s, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1}]",
             bad[i]);
    snprintf(msg, sizeof(msg), "tunnels[2].ListenPort: must be 1-65535, got %s", bad[i]);
    expect_error(text, msg);
    snprintf(text, sizeof(text), "[{\"ListenPort\": 1, \"ClientIdentifier\": \"a\", \"BackEndPort\": %s}]", bad[i]);
    snprintf(msg, sizeof(msg), "tunnels[0].BackEndPort: must be 1-65535, got %s", bad[i]);
    expect_error(text, msg);
  }
}

static void test_identities(void **state)
{
  char big[300], text[700], msg[700];

  expect_error("[{\"ListenPort\": 1, \"BackEndPort\": 1}]", "tunnels[0].ClientIdentifier: is required");
  expect_error("[{\"ListenPort\": 1, \"BackEndPort\": 1, \"ClientIdentifier\": null}]",
               "tunnels[0].ClientIdentifier: is required");
  expect_error("[{\"ListenPort\": 1, \"BackEndPort\": 1, \"ClientIdentifier\": \"\"}]",
               "tunnels[0].ClientIdentifier: must be a certificate CN (printable, at most 64 bytes) or a certificate's SHA-256 fingerprint as 64 lowercase hex digits, got \"\"");
  expect_error("[{\"ListenPort\": 1, \"BackEndPort\": 1, \"ClientIdentifier\": \"a\\nb\"}]",
               "tunnels[0].ClientIdentifier: must be a certificate CN (printable, at most 64 bytes) or a certificate's SHA-256 fingerprint as 64 lowercase hex digits, got \"a\\nb\"");
  expect_error("[{\"ListenPort\": 1, \"BackEndPort\": 1, \"ClientIdentifier\": \"a\\u007f\"}]",
               "tunnels[0].ClientIdentifier: must be a certificate CN (printable, at most 64 bytes) or a certificate's SHA-256 fingerprint as 64 lowercase hex digits, got \"a?\"");  /* control characters never reach a message */
  expect_error("[{\"ListenPort\": 1, \"BackEndPort\": 1, \"ClientIdentifier\": 7}]",
               "tunnels[0].ClientIdentifier: must be a certificate CN (printable, at most 64 bytes) or a certificate's SHA-256 fingerprint as 64 lowercase hex digits, got 7");

  memset(big, 'x', 65);
  big[65] = 0;
  snprintf(text, sizeof(text), "[{\"ListenPort\": 1, \"BackEndPort\": 1, \"ClientIdentifier\": \"%s\"}]", big);
  snprintf(msg, sizeof(msg),
           "tunnels[0].ClientIdentifier: must be a certificate CN (printable, at most 64 bytes) or a certificate's SHA-256 fingerprint as 64 lowercase hex digits, got "
           "\"%.47s...",
           big);
  expect_error(text, msg);
  big[64] = 0; /* exactly 64 bytes, the identity limit, is fine */
  {
    struct td_table t;
    char err[256];
    snprintf(text, sizeof(text), "[{\"ListenPort\": 1, \"BackEndPort\": 1, \"ClientIdentifier\": \"%s\"}]", big);
    assert_int_equal(from_text(text, NULL, &t, err, sizeof(err)), TN_OK);
    td_table_free(&t);
  }

  /* C1 controls count as control characters too. */
  expect_error("[{\"ListenPort\": 1, \"BackEndPort\": 1, \"ClientIdentifier\": \"a\\u0085\"}]",
               "tunnels[0].ClientIdentifier: must be a certificate CN (printable, at most 64 bytes) or a certificate's SHA-256 fingerprint as 64 lowercase hex digits, got \"a\xc2\x85\"");
  /* A fingerprint has one spelling; any other would never match a link. */
  expect_error("[{\"ListenPort\": 1, \"BackEndPort\": 1, \"ClientIdentifier\": "
               "\"AB01CD23EF45AB01CD23EF45AB01CD23EF45AB01CD23EF45AB01CD23EF45AB01\"}]",
               "tunnels[0].ClientIdentifier: must be a certificate CN (printable, at most 64 bytes) or a certificate's SHA-256 fingerprint as 64 lowercase hex digits, got \"AB01CD23EF45AB01CD23EF45AB01CD23EF45AB01CD23EF4...");
  expect_error("[{\"ListenPort\": 1, \"BackEndPort\": 1, \"ClientIdentifier\": "
               "\"ab:01:cd:23:ef:45:ab:01:cd:23:ef:45:ab:01:cd:23:ef:45:ab:01:cd:23:ef:45:ab:01:cd:23:ef:45:ab:01\"}]",
               "tunnels[0].ClientIdentifier: must be a certificate CN (printable, at most 64 bytes) or a certificate's SHA-256 fingerprint as 64 lowercase hex digits, got \"ab:01:cd:23:ef:45:ab:01:cd:23:ef:45:ab:01:cd:23...");
  {
    struct td_table t;
    char err[256];
    assert_int_equal(from_text("[{\"ListenPort\": 1, \"BackEndPort\": 1, \"ClientIdentifier\": "
                               "\"ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01\"}]", NULL, &t, err,
                               sizeof(err)), TN_OK);
    td_table_free(&t);
  }

  expect_one_error("\"BackupClientIdentifiers\": \"b\"",
                   "tunnels[0].BackupClientIdentifiers: must be an array of strings, got \"b\"");
  expect_one_error("\"BackupClientIdentifiers\": [\"b\", 3]",
                   "tunnels[0].BackupClientIdentifiers[1]: must be a certificate CN (printable, at most 64 bytes) or a certificate's SHA-256 fingerprint as 64 lowercase hex digits, got 3");
  expect_one_error("\"BackupClientIdentifiers\": [\"b\", \"c\", \"b\"]",
                   "tunnels[0].BackupClientIdentifiers[2]: \"b\" is listed twice");
  expect_one_error("\"BackupClientIdentifiers\": [\"b\", \"home1\"]",
                   "tunnels[0].BackupClientIdentifiers[1]: \"home1\" is already the ClientIdentifier");
}

static void test_backend(void **state)
{
  struct td_table t;
  char err[256];

  expect_error("[{\"ListenPort\": 1, \"ClientIdentifier\": \"a\"}]",
               "tunnels[0]: exactly one of BackEndPort or BackEndService is required, got neither");
  expect_error("[{\"ListenPort\": 1, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1, \"BackEndService\": \"web\"}]",
               "tunnels[0]: exactly one of BackEndPort or BackEndService is required, got both");
  /* null is absent (Go encoders write null for unset fields). */
  assert_int_equal(from_text("[{\"ListenPort\": 1, \"ClientIdentifier\": \"a\", \"BackEndPort\": null, "
                             "\"BackEndService\": \"web\"}]",
                             NULL, &t, err, sizeof(err)),
                   TN_OK);
  assert_string_equal(t.tunnels[0].backend_service, "web");
  td_table_free(&t);
}

static void test_backend_service(void **state)
{
  static const char *const bad[] = {"\"\"", "\"a b\"", "\"a/b\"", "\"a:80\"", "5", "\"\xc3\xa9\""};
  char text[700], msg[700], big[300];

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(text, sizeof(text), "[{\"ListenPort\": 1, \"ClientIdentifier\": \"a\", \"BackEndService\": %s}]", bad[i]);
    snprintf(msg, sizeof(msg), "tunnels[0].BackEndService: must be 1-255 characters of A-Z a-z 0-9 . _ -, got %s",
             bad[i]);
    expect_error(text, msg);
  }
  memset(big, 'a', 256);
  big[256] = 0;
  snprintf(text, sizeof(text), "[{\"ListenPort\": 1, \"ClientIdentifier\": \"a\", \"BackEndService\": \"%s\"}]", big);
  snprintf(msg, sizeof(msg), "tunnels[0].BackEndService: must be 1-255 characters of A-Z a-z 0-9 . _ -, got \"%.47s...",
           big);
  expect_error(text, msg);
}

static void test_proxy_and_glob(void **state)
{
  expect_one_error("\"HaProxyProxyProtocol\": 1", "tunnels[0].HaProxyProxyProtocol: must be true or false, got 1");
  expect_one_error("\"HaProxyProxyProtocol\": \"true\"",
                   "tunnels[0].HaProxyProxyProtocol: must be true or false, got \"true\"");
  expect_one_error("\"HaProxyProxyProtocol\": true, \"ProxyProtocolVersion\": 3",
                   "tunnels[0].ProxyProtocolVersion: must be 1 or 2, got 3");
  expect_one_error("\"HaProxyProxyProtocol\": true, \"ProxyProtocolVersion\": \"2\"",
                   "tunnels[0].ProxyProtocolVersion: must be 1 or 2, got \"2\"");
  expect_one_error("\"ProxyProtocolVersion\": 2",
                   "tunnels[0].ProxyProtocolVersion: only allowed when HaProxyProxyProtocol is true");
  expect_one_error("\"HaProxyProxyProtocol\": false, \"ProxyProtocolVersion\": 1",
                   "tunnels[0].ProxyProtocolVersion: only allowed when HaProxyProxyProtocol is true");
  expect_one_error("\"ListenHostnameGlob\": \"\"", "tunnels[0].ListenHostnameGlob: must be \"*\", a host name (A-labels: letters, digits, '-' and '.') or \"*.\" and a host name, got \"\"");
  expect_one_error("\"ListenHostnameGlob\": 1", "tunnels[0].ListenHostnameGlob: must be \"*\", a host name (A-labels: letters, digits, '-' and '.') or \"*.\" and a host name, got 1");
  expect_one_error("\"ListenHostnameGlob\": \"a.*.example.com\"", "tunnels[0].ListenHostnameGlob: must be \"*\", a host name (A-labels: letters, digits, '-' and '.') or \"*.\" and a host name, got \"a.*.example.com\"");
  expect_one_error("\"ListenHostnameGlob\": \"**.example.com\"", "tunnels[0].ListenHostnameGlob: must be \"*\", a host name (A-labels: letters, digits, '-' and '.') or \"*.\" and a host name, got \"**.example.com\"");
  expect_one_error("\"ListenHostnameGlob\": \"*example.com\"", "tunnels[0].ListenHostnameGlob: must be \"*\", a host name (A-labels: letters, digits, '-' and '.') or \"*.\" and a host name, got \"*example.com\"");
  expect_one_error("\"ListenHostnameGlob\": \"*.\"", "tunnels[0].ListenHostnameGlob: must be \"*\", a host name (A-labels: letters, digits, '-' and '.') or \"*.\" and a host name, got \"*.\"");
  expect_one_error("\"ListenHostnameGlob\": \"b\\u00e9b\u00e9.example\"", "tunnels[0].ListenHostnameGlob: must be \"*\", a host name (A-labels: letters, digits, '-' and '.') or \"*.\" and a host name, got \"b\u00e9b\u00e9.example\"");
  expect_one_error("\"ListenHostnameGlob\": \"10.0.0.1:443\"", "tunnels[0].ListenHostnameGlob: must be \"*\", a host name (A-labels: letters, digits, '-' and '.') or \"*.\" and a host name, got \"10.0.0.1:443\"");
}

/* Globs are kept in lower case, "*" as none; GET shows them, and what GET shows parses back the same. */
static void test_hostname_globs(void **state)
{
  struct td_table t, t2;
  char err[512];
  json_t *j;

  (void)state;
  assert_int_equal(from_text("[{\"ListenPort\": 443, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1, \"ListenHostnameGlob\": \"A.Example.TEST\"},"
                             " {\"ListenPort\": 443, \"ClientIdentifier\": \"b\", \"BackEndPort\": 1, \"ListenHostnameGlob\": \"*.example.test\"},"
                             " {\"ListenPort\": 443, \"ClientIdentifier\": \"c\", \"BackEndPort\": 1, \"ListenHostnameGlob\": \"*\"},"
                             " {\"ListenPort\": 443, \"ClientIdentifier\": \"d\", \"BackEndPort\": 1, \"ListenHostnameGlob\": \"xn--bb-eka.example\"}]",
                             NULL, &t, err, sizeof(err)),
                   TN_OK);
  assert_string_equal(t.tunnels[0].glob, "a.example.test");
  assert_string_equal(t.tunnels[1].glob, "*.example.test");
  assert_null(t.tunnels[2].glob);
  j = td_table_to_json(&t, NULL, NULL);
  assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "ListenHostnameGlob")), "a.example.test");
  assert_string_equal(json_string_value(json_object_get(json_array_get(j, 2), "ListenHostnameGlob")), "*");
  assert_int_equal(td_table_from_json(j, NULL, NULL, &t2, err, sizeof(err)), TN_OK);
  for (size_t i = 0; i < t.n; i++)
    assert_true(td_table_equal_tunnel(&t.tunnels[i], &t2.tunnels[i]));
  assert_false(td_table_equal_tunnel(&t.tunnels[0], &t2.tunnels[1]));
  json_decref(j);
  td_table_free(&t2);

  /* The index keeps one listener's tunnels together, "*" first, and finds each by its glob. */
  {
    struct td_listener_index *ix = td_table_index_new(&t);
    size_t count;
    assert_int_equal(td_table_index_run(ix, t.n, &t.tunnels[0].listen, &count), 0);
    assert_int_equal(count, 4);
    assert_null(ix[0].glob);
    assert_int_equal(td_table_index_find_glob(ix, t.n, &t.tunnels[0].listen, "*.example.test"), 1);
    assert_int_equal(td_table_index_find_glob(ix, t.n, &t.tunnels[0].listen, NULL), 2);
    assert_int_equal(td_table_index_find_glob(ix, t.n, &t.tunnels[0].listen, "xn--bb-eka.example"), 3);
    assert_int_equal(td_table_index_find_glob(ix, t.n, &t.tunnels[0].listen, "b.example.test"), -1);
    free(ix);
  }
  td_table_free(&t);

  /* The same glob twice on one address and port is a conflict naming both tunnels and their clients. */
  assert_int_equal(from_text("[{\"ListenPort\": 443, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1, \"ListenHostnameGlob\": \"*.x.test\"},"
                             " {\"ListenPort\": 80, \"ClientIdentifier\": \"b\", \"BackEndPort\": 1, \"ListenHostnameGlob\": \"*.x.test\"},"
                             " {\"ListenPort\": 443, \"ClientIdentifier\": \"c\", \"BackEndPort\": 1, \"ListenHostnameGlob\": \"*.X.test\"}]",
                             NULL, &t, err, sizeof(err)),
                   TN_ERR_CONFLICT);
  assert_string_equal(err, "tunnels[2] (client c): listener 0.0.0.0:443 with ListenHostnameGlob \"*.x.test\" is already "
                           "tunnels[0]'s (client a): one port routes each glob to one tunnel");
  assert_int_equal(t.n, 0);
  /* Globs do not let two bound addresses overlap: 0.0.0.0 and 10.0.0.1 still cannot share a port. */
  assert_int_equal(from_text("[{\"ListenPort\": 443, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1, \"ListenHostnameGlob\": \"a.test\"},"
                             " {\"ListenAddress\": \"10.0.0.1\", \"ListenPort\": 443, \"ClientIdentifier\": \"b\", \"BackEndPort\": 1, \"ListenHostnameGlob\": \"b.test\"}]",
                             NULL, &t, err, sizeof(err)),
                   TN_ERR_INVALID);
  assert_string_equal(err, "tunnels[1]: listener 10.0.0.1:443 overlaps tunnels[0] (0.0.0.0:443): a wildcard address and "
                           "another address cannot share a port");
  /* Nor one address written two ways (two listeners would be needed). */
  assert_int_equal(from_text("[{\"ListenAddress\": \"10.0.0.1\", \"ListenPort\": 443, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1, \"ListenHostnameGlob\": \"a.test\"},"
                             " {\"ListenAddress\": \"::ffff:10.0.0.1\", \"ListenPort\": 443, \"ClientIdentifier\": \"b\", \"BackEndPort\": 1, \"ListenHostnameGlob\": \"b.test\"}]",
                             NULL, &t, err, sizeof(err)),
                   TN_ERR_INVALID);
}

static void test_duplicates_and_overlap(void **state)
{
  struct td_table t;
  char err[512];

#define T(addr, port) "{\"ListenAddress\": \"" addr "\", \"ListenPort\": " #port ", \"ClientIdentifier\": \"a\", \"BackEndPort\": 1}"
  expect_error("[" T("0.0.0.0", 80) "," T("0.0.0.0", 81) "," T("0.0.0.0", 80) "]",
               "tunnels[2]: listener 0.0.0.0:80 duplicates tunnels[0]");
  expect_error("[" T("::1", 80) "," T("0:0::1", 80) "]", "tunnels[1]: listener [::1]:80 duplicates tunnels[0]");
  expect_error("[" T("10.0.0.1", 90) "," T("0.0.0.0", 90) "]",
               "tunnels[1]: listener 0.0.0.0:90 overlaps tunnels[0] (10.0.0.1:90): a wildcard address and another "
               "address cannot share a port");
  expect_error("[" T("::", 90) "," T("10.0.0.1", 91) "," T("10.0.0.1", 90) "]",
               "tunnels[2]: listener 10.0.0.1:90 overlaps tunnels[0] ([::]:90): a wildcard address and another address "
               "cannot share a port");
  expect_error("[" T("0.0.0.0", 90) "," T("::", 90) "]",
               "tunnels[1]: listener [::]:90 overlaps tunnels[0] (0.0.0.0:90): a wildcard address and another address "
               "cannot share a port");
  expect_error("[" T("10.0.0.1", 90) "," T("::ffff:10.0.0.1", 90) "]",
               "tunnels[1]: listener [::ffff:10.0.0.1]:90 is the same address and port as tunnels[0] (10.0.0.1:90)");
  expect_error("[" T("0.0.0.0", 90) "," T("::ffff:10.0.0.1", 90) "]",
               "tunnels[1]: listener [::ffff:10.0.0.1]:90 overlaps tunnels[0] (0.0.0.0:90): a wildcard address and "
               "another address cannot share a port");
  /* The lowest conflicting index is reported even when a higher port sorts first. */
  expect_error("[" T("1.1.1.1", 9000) "," T("1.1.1.1", 80) "," T("1.1.1.1", 80) "," T("1.1.1.1", 9000) "]",
               "tunnels[2]: listener 1.1.1.1:80 duplicates tunnels[1]");

  /* Distinct specific addresses, and 0.0.0.0 beside an IPv6 address, can share a port. */
  assert_int_equal(from_text("[" T("10.0.0.1", 80) "," T("10.0.0.2", 80) "," T("::1", 80) "," T("2001:db8::1", 80) "]",
                             NULL, &t, err, sizeof(err)),
                   TN_OK);
  td_table_free(&t);
  assert_int_equal(from_text("[" T("0.0.0.0", 80) "," T("::1", 80) "]", NULL, &t, err, sizeof(err)), TN_OK);
  td_table_free(&t);
#undef T
}

static void test_reserved(void **state)
{
  struct td_reserved r;
  struct td_table t;
  char err[512];

  memset(&r, 0, sizeof(r));
  tn_addr_parse_ip(&r.ports[0].addr, "::");
  r.ports[0].addr.port = 9056;
  r.ports[0].what = "TunnelControlPort";
  tn_addr_parse_ip(&r.ports[1].addr, "::");
  r.ports[1].addr.port = 9057;
  r.ports[1].what = "ManagementPort";
  tn_addr_parse_ip(&r.ports[2].addr, "127.0.0.1");
  r.ports[2].addr.port = 9100;
  r.ports[2].what = "MetricsListen";
  r.n = 3;

  assert_int_equal(from_text("[{\"ListenPort\": 9000, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1},"
                             " {\"ListenAddress\": \"192.0.2.1\", \"ListenPort\": 9057, \"ClientIdentifier\": \"a\", "
                             "\"BackEndPort\": 1}]",
                             &r, &t, err, sizeof(err)),
                   TN_ERR_INVALID);
  assert_string_equal(err, "tunnels[1].ListenPort: listener 192.0.2.1:9057 collides with the server's ManagementPort ([::]:9057)");
  assert_int_equal(from_text("[{\"ListenPort\": 9056, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1}]", &r, &t, err,
                             sizeof(err)),
                   TN_ERR_INVALID);
  assert_string_equal(err, "tunnels[0].ListenPort: listener 0.0.0.0:9056 collides with the server's TunnelControlPort ([::]:9056)");
  assert_int_equal(from_text("[{\"ListenPort\": 9100, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1}]", &r, &t, err,
                             sizeof(err)),
                   TN_ERR_INVALID);
  assert_string_equal(err, "tunnels[0].ListenPort: listener 0.0.0.0:9100 collides with the server's MetricsListen (127.0.0.1:9100)");
  /* Metrics on loopback only: another specific address may take the same port. */
  assert_int_equal(from_text("[{\"ListenAddress\": \"192.0.2.1\", \"ListenPort\": 9100, \"ClientIdentifier\": \"a\", "
                             "\"BackEndPort\": 1}]",
                             &r, &t, err, sizeof(err)),
                   TN_OK);
  td_table_free(&t);
}

static void status(void *ctx, size_t index, const char **active, uint64_t *open)
{
  const char *const *names = ctx;

  *active = names[index];
  *open = index * 10 + 3;
}

static void test_round_trip(void **state)
{
  static const char *text =
    "[{\"ListenAddress\": \"2001:0db8:0::1\", \"ListenPort\": 443, \"ClientIdentifier\": \"a\", "
    "\"BackupClientIdentifiers\": [\"b\"], \"BackEndService\": \"web\", \"HaProxyProxyProtocol\": true, "
    "\"ProxyProtocolVersion\": 2},"
    "{\"ListenPort\": 80, \"ClientIdentifier\": \"a\", \"BackEndPort\": 8080}]";
  const char *names[] = {"b", NULL};
  struct td_table t, t2;
  json_t *got, *want, *state_form;
  char err[256];
  char *dumped;

  assert_int_equal(from_text(text, NULL, &t, err, sizeof(err)), TN_OK);
  got = td_table_to_json(&t, status, names);
  assert_non_null(got);
  want = parse("[{\"ListenAddress\": \"2001:db8::1\", \"ListenPort\": 443, \"ClientIdentifier\": \"a\", "
               "\"BackupClientIdentifiers\": [\"b\"], \"BackEndService\": \"web\", \"HaProxyProxyProtocol\": true, "
               "\"ProxyProtocolVersion\": 2, \"ListenHostnameGlob\": \"*\", \"ActiveClient\": \"b\", "
               "\"OpenConnections\": 3},"
               "{\"ListenAddress\": \"0.0.0.0\", \"ListenPort\": 80, \"ClientIdentifier\": \"a\", "
               "\"BackupClientIdentifiers\": [], \"BackEndPort\": 8080, \"HaProxyProxyProtocol\": false, "
               "\"ListenHostnameGlob\": \"*\", \"ActiveClient\": null, \"OpenConnections\": 13}]");
  assert_true(json_equal(got, want));
  /* Key order is stable, so GET output diffs cleanly. */
  dumped = json_dumps(json_array_get(got, 1), JSON_COMPACT);
  assert_string_equal(dumped, "{\"ListenAddress\":\"0.0.0.0\",\"ListenPort\":80,\"ClientIdentifier\":\"a\","
                              "\"BackupClientIdentifiers\":[],\"BackEndPort\":8080,\"HaProxyProxyProtocol\":false,"
                              "\"ListenHostnameGlob\":\"*\",\"ActiveClient\":null,\"OpenConnections\":13}");
  free(dumped);

  /* GET output goes back through PUT unchanged. */
  assert_int_equal(td_table_from_json(got, NULL, NULL, &t2, err, sizeof(err)), TN_OK);
  assert_int_equal(t2.n, t.n);
  for (size_t i = 0; i < t.n; i++)
    assert_true(td_table_equal_tunnel(&t.tunnels[i], &t2.tunnels[i]));
  td_table_free(&t2);

  state_form = td_table_to_json(&t, NULL, NULL);
  assert_null(json_object_get(json_array_get(state_form, 0), "ActiveClient"));
  assert_null(json_object_get(json_array_get(state_form, 0), "OpenConnections"));
  assert_int_equal(td_table_from_json(state_form, NULL, NULL, &t2, err, sizeof(err)), TN_OK);
  assert_true(td_table_equal_tunnel(&t.tunnels[1], &t2.tunnels[1]));
  td_table_free(&t2);

  json_decref(state_form);
  json_decref(got);
  json_decref(want);
  td_table_free(&t);
}

static void test_helpers(void **state)
{
  struct td_table t, c;
  char err[256];
  struct tn_addr a;

  assert_int_equal(from_text("[{\"ListenPort\": 80, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1, "
                             "\"BackupClientIdentifiers\": [\"x\", \"y\"]},"
                             " {\"ListenPort\": 80, \"ListenAddress\": \"::1\", \"ClientIdentifier\": \"b\", \"BackEndService\": \"s\"},"
                             " {\"ListenPort\": 81, \"ClientIdentifier\": \"a\", \"BackEndPort\": 2}]",
                             NULL, &t, err, sizeof(err)),
                   TN_OK);
  assert_int_equal(td_table_copy(&c, &t), TN_OK);
  assert_int_equal(c.n, 3);
  for (size_t i = 0; i < 3; i++) {
    assert_true(td_table_equal_tunnel(&t.tunnels[i], &c.tunnels[i]));
    assert_ptr_not_equal(t.tunnels[i].client_id, c.tunnels[i].client_id);
  }
  assert_false(td_table_equal_tunnel(&t.tunnels[0], &t.tunnels[2]));
  assert_false(td_table_same_listener(&t.tunnels[0], &t.tunnels[1]));
  c.tunnels[0].backend_port = 9;
  assert_true(td_table_same_listener(&t.tunnels[0], &c.tunnels[0]));
  assert_false(td_table_equal_tunnel(&t.tunnels[0], &c.tunnels[0]));
  c.tunnels[0].backend_port = 1;
  free(c.tunnels[0].backups[1]);
  c.tunnels[0].backups[1] = strdup("z");
  assert_false(td_table_equal_tunnel(&t.tunnels[0], &c.tunnels[0]));

  tn_addr_parse_ip(&a, "::1");
  a.port = 80;
  assert_int_equal(td_table_find_listener(&t, &a), 1);
  a.port = 81;
  assert_int_equal(td_table_find_listener(&t, &a), -1);
  tn_addr_parse_ip(&a, "0.0.0.0");
  assert_int_equal(td_table_find_listener(&t, &a), 2);

  td_table_free(&c);
  td_table_free(&t);
  td_table_init(&t);
  assert_int_equal(td_table_copy(&c, &t), TN_OK);
  assert_int_equal(c.n, 0);
  td_table_free(&c);
}

static void test_conflict_rule(void **state)
{
  struct tn_addr a, b;
  static const struct {
    const char *a, *b;
    int conflict;
  } cases[] = {
    {"0.0.0.0", "0.0.0.0", 1}, {"0.0.0.0", "1.2.3.4", 1}, {"1.2.3.4", "1.2.3.4", 1}, {"1.2.3.4", "1.2.3.5", 0},
    {"::", "1.2.3.4", 1},      {"::", "::1", 1},          {"0.0.0.0", "::1", 0},     {"::1", "::2", 0},
    {"::ffff:1.2.3.4", "1.2.3.4", 1}, {"::ffff:1.2.3.4", "1.2.3.5", 0}, {"::", "::", 1},
  };

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    tn_addr_parse_ip(&a, cases[i].a);
    tn_addr_parse_ip(&b, cases[i].b);
    a.port = b.port = 80;
    assert_int_equal(td_table_endpoints_conflict(&a, &b), cases[i].conflict);
    assert_int_equal(td_table_endpoints_conflict(&b, &a), cases[i].conflict);
    b.port = 81;
    assert_int_equal(td_table_endpoints_conflict(&a, &b), 0);
  }
}

static void test_large_table(void **state)
{
  /* Many tunnels on one port with distinct addresses: accepted, and quickly. */
  json_t *arr = json_array();
  struct td_table t;
  char err[256], ip[32];

  for (int i = 0; i < 20000; i++) {
    snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
    json_array_append_new(arr, json_pack("{s:s,s:i,s:s,s:i}", "ListenAddress", ip, "ListenPort", 443,
                                         "ClientIdentifier", "c", "BackEndPort", 443));
  }
  assert_int_equal(td_table_from_json(arr, NULL, NULL, &t, err, sizeof(err)), TN_OK);
  assert_int_equal(t.n, 20000);
  td_table_free(&t);
  json_array_append_new(arr, json_pack("{s:s,s:i,s:s,s:i}", "ListenAddress", "10.0.5.1", "ListenPort", 443,
                                       "ClientIdentifier", "c", "BackEndPort", 443));
  assert_int_equal(td_table_from_json(arr, NULL, NULL, &t, err, sizeof(err)), TN_ERR_INVALID);
  assert_string_equal(err, "tunnels[20000]: listener 10.0.5.1:443 duplicates tunnels[5]");
  json_decref(arr);
}

/* The fast conflict search agrees with the obvious pairwise one on random tables. */
static void test_conflicts_match_pairwise(void **state)
{
  static const char *const pool[] = {"0.0.0.0", "::", "10.0.0.1", "10.0.0.2", "::1", "2001:db8::1",
                                     "::ffff:10.0.0.1", "::ffff:0.0.0.0"};
  /* Tunnels on one address share it when their globs differ. */
  static const char *const globs[] = {"*", "a.test", "*.test", "A.test"};
  unsigned seed = 12345;

  for (int round = 0; round < 3000; round++) {
    json_t *arr = json_array();
    struct tn_addr addrs[12];
    const char *g[12];
    size_t n = 2 + (size_t)(seed % 10);
    size_t want_j = SIZE_MAX, want_i = 0;
    int want_rc = TN_ERR_INVALID;
    struct td_table t;
    char err[512], prefix[64], other[64];

    for (size_t k = 0; k < n; k++) {
      const char *ip;
      seed = seed * 1103515245u + 12345u;
      ip = pool[(seed >> 16) % (sizeof(pool) / sizeof(pool[0]))];
      tn_addr_parse_ip(&addrs[k], ip);
      addrs[k].port = (uint16_t)(80 + ((seed >> 8) % 3));
      g[k] = globs[(seed >> 4) % (sizeof(globs) / sizeof(globs[0]))];
      json_array_append_new(arr, json_pack("{s:s,s:i,s:s,s:i,s:s}", "ListenAddress", ip, "ListenPort", addrs[k].port,
                                           "ClientIdentifier", "c", "BackEndPort", 1, "ListenHostnameGlob", g[k]));
    }
    for (size_t j = 1; j < n && want_j == SIZE_MAX; j++)
      for (size_t i = 0; i < j; i++) {
        int same = tn_addr_equal(&addrs[i], &addrs[j]), same_glob = strcasecmp(g[i], g[j]) == 0;
        if (td_table_endpoints_conflict(&addrs[i], &addrs[j]) && !(same && !same_glob)) {
          want_j = j;
          want_i = i;
          want_rc = same && strcmp(g[i], "*") != 0 ? TN_ERR_CONFLICT : TN_ERR_INVALID;
          break;
        }
      }
    if (want_j == SIZE_MAX) {
      assert_int_equal(td_table_from_json(arr, NULL, NULL, &t, err, sizeof(err)), TN_OK);
      td_table_free(&t);
    } else {
      assert_int_equal(td_table_from_json(arr, NULL, NULL, &t, err, sizeof(err)), want_rc);
      snprintf(prefix, sizeof(prefix), want_rc == TN_ERR_CONFLICT ? "tunnels[%zu] (client c): listener "
                                                                  : "tunnels[%zu]: listener ", want_j);
      snprintf(other, sizeof(other), " tunnels[%zu]", want_i);
      if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, other))
        fail_msg("round %d: got \"%s\", want tunnels[%zu] vs tunnels[%zu]", round, err, want_j, want_i);
    }
    json_decref(arr);
  }
}


/* MaxTunnels is a 413 decided before any tunnel is parsed; MaxBackupsPerTunnel a 400 naming the tunnel. */
static void test_size_limits(void **state)
{
  struct td_table_limits lim = { 2, 3 };
  struct td_table t;
  char err[512];
  json_t *j;
  (void)state;
  j = parse("[{\"ListenPort\": 1, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1},"
            " {\"ListenPort\": 2, \"ClientIdentifier\": \"a\", \"BackupClientIdentifiers\": [\"b\", \"c\", \"d\"], \"BackEndPort\": 1}]");
  assert_int_equal(td_table_from_json(j, NULL, &lim, &t, err, sizeof(err)), TN_OK);  /* exactly at both limits */
  assert_int_equal(t.n, 2);
  td_table_free(&t);
  json_decref(j);
  j = parse("[{\"ListenPort\": 1, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1}, 7, \"not even a tunnel\"]");
  assert_int_equal(td_table_from_json(j, NULL, &lim, &t, err, sizeof(err)), TN_ERR_TOO_LARGE);
  assert_string_equal(err, "tunnels: 3 tunnels, more than MaxTunnels (2)");
  assert_int_equal(t.n, 0);
  json_decref(j);
  j = parse("[{\"ListenPort\": 2, \"ClientIdentifier\": \"a\", \"BackupClientIdentifiers\": [\"b\", \"c\", \"d\", \"e\"], \"BackEndPort\": 1}]");
  assert_int_equal(td_table_from_json(j, NULL, &lim, &t, err, sizeof(err)), TN_ERR_INVALID);
  assert_string_equal(err, "tunnels[0].BackupClientIdentifiers: 4 entries, more than MaxBackupsPerTunnel (3)");
  json_decref(j);
}

/* Found by sorting, reported as a pairwise scan would: the lowest index that repeats an earlier entry. */
static void test_duplicate_backups_reported_in_order(void **state)
{
  (void)state;
  expect_one_error("\"BackupClientIdentifiers\": [\"x\", \"b\", \"y\", \"b\", \"x\", \"y\"]",
                   "tunnels[0].BackupClientIdentifiers[3]: \"b\" is listed twice");
  expect_one_error("\"BackupClientIdentifiers\": [\"z\", \"z\", \"z\"]",
                   "tunnels[0].BackupClientIdentifiers[1]: \"z\" is listed twice");
}

/* The sorted listener index finds every tunnel, and nothing else. */
static void test_listener_index(void **state)
{
  struct td_table t;
  struct td_listener_index *ix;
  struct tn_addr a;
  char err[512];
  (void)state;
  assert_int_equal(from_text("[{\"ListenAddress\": \"::\", \"ListenPort\": 80, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1},"
                             " {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": 80, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1},"
                             " {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": 81, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1}]",
                             NULL, &t, err, sizeof(err)),
                   TN_ERR_INVALID);  /* :: overlaps 127.0.0.1 on port 80 */
  assert_int_equal(from_text("[{\"ListenAddress\": \"::1\", \"ListenPort\": 80, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1},"
                             " {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": 80, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1},"
                             " {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": 81, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1}]",
                             NULL, &t, err, sizeof(err)),
                   TN_OK);
  ix = td_table_index_new(&t);
  assert_non_null(ix);
  for (size_t i = 0; i < t.n; i++)
    assert_int_equal(td_table_index_find(ix, t.n, &t.tunnels[i].listen), (long)i);
  tn_addr_parse_ip(&a, "127.0.0.1");
  a.port = 82;
  assert_int_equal(td_table_index_find(ix, t.n, &a), -1);
  tn_addr_parse_ip(&a, "::1");
  a.port = 81;
  assert_int_equal(td_table_index_find(ix, t.n, &a), -1);
  free(ix);
  td_table_free(&t);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_minimal_defaults),
    cmocka_unit_test(test_all_fields),
    cmocka_unit_test(test_body_shape),
    cmocka_unit_test(test_listen_address),
    cmocka_unit_test(test_ports),
    cmocka_unit_test(test_port_values),
    cmocka_unit_test(test_identities),
    cmocka_unit_test(test_backend),
    cmocka_unit_test(test_backend_service),
    cmocka_unit_test(test_proxy_and_glob),
    cmocka_unit_test(test_hostname_globs),
    cmocka_unit_test(test_duplicates_and_overlap),
    cmocka_unit_test(test_reserved),
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_helpers),
    cmocka_unit_test(test_conflict_rule),
    cmocka_unit_test(test_large_table),
    cmocka_unit_test(test_conflicts_match_pairwise),
    cmocka_unit_test(test_size_limits),
    cmocka_unit_test(test_duplicate_backups_reported_in_order),
    cmocka_unit_test(test_listener_index),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
