/* test_tc_config.c: tunnelc's config loader: every key's default, valid values and exact error lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "tunnel/defaults.h"
#include "tunnel/limits.h"
#include "tunnel/error.h"

/* The required keys; each case adds or replaces keys after them. */
#define BASE                                                                                 \
  "\"ServerHost\": \"tunnel.example.com\", \"CaCertificateFile\": \"/etc/tunnel/ca.pem\", " \
  "\"ClientTlsCertificateFile\": \"/etc/tunnel/client.pem\", \"ClientTlsKeyFile\": \"/etc/tunnel/client.key\""

struct fixture {
  char dir[64];
  char path[128];
};

static int group_setup(void **state)
{
  struct fixture *fx = calloc(1, sizeof(*fx));

  if (fx == NULL)
    return -1;
  snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_tc_config.XXXXXX");
  if (mkdtemp(fx->dir) == NULL)
    return -1;
  snprintf(fx->path, sizeof(fx->path), "%s/tunnelc.json", fx->dir);
  *state = fx;
  return 0;
}

static int group_teardown(void **state)
{
  struct fixture *fx = *state;

  unlink(fx->path);
  rmdir(fx->dir);
  free(fx);
  return 0;
}

static struct fixture *fixture_of(void **state)
{
  return *state;
}

static void write_file(const char *path, const char *text, size_t len)
{
  FILE *f = fopen(path, "wb");

  assert_non_null(f);
  assert_int_equal(fwrite(text, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

static int load_text(const struct fixture *fx, struct tc_config *cfg, const char *json, char *err, size_t errlen)
{
  write_file(fx->path, json, strlen(json));
  return tc_config_load(cfg, fx->path, err, errlen);
}

/* Loads "{BASE, extra}" and expects success. */
static void load_ok(const struct fixture *fx, struct tc_config *cfg, const char *extra)
{
  char json[8192], err[1024];
  int rc;

  snprintf(json, sizeof(json), "{" BASE "%s%s}", extra[0] != '\0' ? ", " : "", extra);
  rc = load_text(fx, cfg, json, err, sizeof(err));
  if (rc != TN_OK)
    fail_msg("unexpected failure for %s: %s", extra, err);
}

/* Loads a whole document and expects failure with "<path>: <message>". */
static void expect_doc_error(const struct fixture *fx, const char *json, const char *message)
{
  struct tc_config cfg;
  char err[1024], want[1024];
  int rc;

  rc = load_text(fx, &cfg, json, err, sizeof(err));
  snprintf(want, sizeof(want), "%s: %s", fx->path, message);
  if (rc == TN_OK) {
    tc_config_free(&cfg);
    fail_msg("accepted %s; wanted: %s", json, want);
  }
  assert_int_equal(rc, TN_ERR_INVALID);
  assert_string_equal(err, want);
  /* A failed load leaves nothing to free. */
  assert_null(cfg.server_host);
  assert_null(cfg.path);
  assert_int_equal(cfg.n_services, 0);
  tc_config_free(&cfg);
}

/* Loads "{BASE, extra}" and expects failure with "<path>: <message>". */
static void expect_error(const struct fixture *fx, const char *extra, const char *message)
{
  char json[8192];

  snprintf(json, sizeof(json), "{" BASE ", %s}", extra);
  expect_doc_error(fx, json, message);
}

static void test_defaults(void **state)
{
  struct fixture *fx = fixture_of(state);
  struct tc_config cfg;
  struct tn_limits shared;

  load_ok(fx, &cfg, "");
  assert_string_equal(cfg.path, fx->path);
  assert_string_equal(cfg.server_host, "tunnel.example.com");
  assert_int_equal(cfg.server_port, TN_DEFAULT_CONTROL_PORT);
  assert_int_equal(cfg.server_port, 9056);
  assert_null(cfg.server_name);
  assert_string_equal(tc_config_server_name(&cfg), "tunnel.example.com");
  assert_string_equal(cfg.ca_file, "/etc/tunnel/ca.pem");
  assert_string_equal(cfg.cert_file, "/etc/tunnel/client.pem");
  assert_string_equal(cfg.key_file, "/etc/tunnel/client.key");
  assert_null(cfg.client_identifier);
  assert_int_equal(cfg.n_services, 0);
  assert_null(tc_config_find_service(&cfg, "web"));
  assert_int_equal(cfg.n_allowed_ports, 0);
  assert_false(tc_config_port_allowed(&cfg, 80));
  assert_false(cfg.debug_log);
  /* The shared limits start from their defaults (each one is checked in test_limits). */
  tn_limits_default(&shared, NULL);
  assert_memory_equal(&cfg.limits.common, &shared, sizeof(shared));
  assert_int_equal(cfg.limits.dial_timeout_ms, TN_DEFAULT_DIAL_TIMEOUT_MS);
  assert_int_equal(cfg.limits.reconnect_min_ms, TN_DEFAULT_RECONNECT_MIN_MS);
  assert_int_equal(cfg.limits.reconnect_max_ms, TN_DEFAULT_RECONNECT_MAX_MS);
  assert_int_equal(cfg.limits.reconnect_jitter_percent, TN_DEFAULT_RECONNECT_JITTER_PERCENT);
  assert_int_equal(cfg.limits.reconnect_reset_after_ms, TN_DEFAULT_RECONNECT_RESET_AFTER_MS);
  tc_config_free(&cfg);
  /* Freeing twice is harmless: the struct is left empty. */
  tc_config_free(&cfg);
  assert_null(cfg.server_host);
}

static void test_example_file_loads(void **state)
{
  struct tc_config cfg;
  char err[1024];

  char path[1024];
  const char *tail = strstr(__FILE__, "tests/unit/test_tc_config.c");

  (void)state;
  /* The build passes sources by absolute path, so the repository root is a prefix of __FILE__. */
  assert_non_null(tail);
  snprintf(path, sizeof(path), "%.*sexamples/tunnelc.json", (int)(tail - __FILE__), __FILE__);
  if (tc_config_load(&cfg, path, err, sizeof(err)) != TN_OK)
    fail_msg("examples/tunnelc.json: %s", err);
  assert_true(cfg.n_services > 0);
  assert_true(cfg.n_allowed_ports > 0);
  tc_config_free(&cfg);
}

static void test_server_host(void **state)
{
  static const char *const valid[] = {
    "localhost", "tunnel.example.com", "tunnel.example.com.", "192.0.2.10", "2001:db8::1", "a-b.c_d.example",
    "xn--bcher-kva.example", "1.2.3.example", "a",
  };
  struct fixture *fx = fixture_of(state);
  struct tc_config cfg;
  char extra[512];

  for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
    snprintf(extra, sizeof(extra),
             "{\"ServerHost\": \"%s\", \"CaCertificateFile\": \"a\", \"ClientTlsCertificateFile\": \"b\", "
             "\"ClientTlsKeyFile\": \"c\"}",
             valid[i]);
    {
      char err[1024];

      if (load_text(fx, &cfg, extra, err, sizeof(err)) != TN_OK)
        fail_msg("%s: %s", valid[i], err);
    }
    assert_string_equal(cfg.server_host, valid[i]);
    assert_string_equal(tc_config_server_name(&cfg), valid[i]);
    tc_config_free(&cfg);
  }

  expect_doc_error(fx,
                   "{\"CaCertificateFile\": \"a\", \"ClientTlsCertificateFile\": \"b\", \"ClientTlsKeyFile\": \"c\"}",
                   "\"ServerHost\": is required (or list several servers in \"Servers\")");
  expect_doc_error(fx, "{\"ServerHost\": null}", "\"ServerHost\": must be a string, got null");
  expect_doc_error(fx, "{\"ServerHost\": \"\"}", "\"ServerHost\": must not be empty");
  expect_doc_error(fx, "{\"ServerHost\": [\"a\"]}", "\"ServerHost\": must be a string, got an array");

  {
    static const char *const invalid[] = {
      "tunnel.example.com:9056", "[2001:db8::1]", "10.0.0.256", "1.2.3", "-lead.example", "trail-.example",
      "a..b", ".", "sp ace.example", "bad!.example", "fe80::1%eth0", "x.123",
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
      char msg[512];

      snprintf(extra, sizeof(extra), "{\"ServerHost\": \"%s\"}", invalid[i]);
      snprintf(msg, sizeof(msg), "\"ServerHost\": must be a DNS name or an IP address (no port, no brackets), got \"%s\"",
               invalid[i]);
      expect_doc_error(fx, extra, msg);
    }
  }

  /* 63-byte labels are the maximum; 64 is refused. */
  {
    char label[70], doc[256], msg[256];

    memset(label, 'a', 64);
    label[64] = '\0';
    snprintf(doc, sizeof(doc), "{\"ServerHost\": \"%s.example\"}", label);
    /* The 72-byte value is echoed whole: only values over 80 bytes are cut. */
    snprintf(msg, sizeof(msg),
             "\"ServerHost\": must be a DNS name or an IP address (no port, no brackets), got \"%s.example\"", label);
    expect_doc_error(fx, doc, msg);
  }
  /* 254 bytes is over the DNS limit of 253. */
  {
    char doc[512], msg[256];
    char name[260];

    for (size_t i = 0; i < 254; i++)
      name[i] = (i % 2 == 0) ? 'a' : '.';
    name[253] = 'a';
    name[254] = '\0';
    snprintf(doc, sizeof(doc), "{\"ServerHost\": \"%s\"}", name);
    snprintf(msg, sizeof(msg), "\"ServerHost\": must be at most 253 bytes long, got 254");
    expect_doc_error(fx, doc, msg);
  }
}

static void test_server_port(void **state)
{
  struct fixture *fx = fixture_of(state);
  struct tc_config cfg;

  load_ok(fx, &cfg, "\"ServerTunnelControlPort\": 443");
  assert_int_equal(cfg.server_port, 443);
  tc_config_free(&cfg);
  load_ok(fx, &cfg, "\"ServerTunnelControlPort\": 65535");
  assert_int_equal(cfg.server_port, 65535);
  tc_config_free(&cfg);
  load_ok(fx, &cfg, "\"ServerTunnelControlPort\": 1");
  assert_int_equal(cfg.server_port, 1);
  tc_config_free(&cfg);

  expect_error(fx, "\"ServerTunnelControlPort\": 0", "\"ServerTunnelControlPort\": must be an integer 1-65535, got 0");
  expect_error(fx, "\"ServerTunnelControlPort\": 65536",
               "\"ServerTunnelControlPort\": must be an integer 1-65535, got 65536");
  expect_error(fx, "\"ServerTunnelControlPort\": -1", "\"ServerTunnelControlPort\": must be an integer 1-65535, got -1");
  expect_error(fx, "\"ServerTunnelControlPort\": \"9056\"",
               "\"ServerTunnelControlPort\": must be an integer 1-65535, got \"9056\"");
  expect_error(fx, "\"ServerTunnelControlPort\": 9056.5",
               "\"ServerTunnelControlPort\": must be an integer 1-65535, got 9056.5");
  expect_error(fx, "\"ServerTunnelControlPort\": true",
               "\"ServerTunnelControlPort\": must be an integer 1-65535, got true");
}

static void test_server_name(void **state)
{
  struct fixture *fx = fixture_of(state);
  struct tc_config cfg;

  load_ok(fx, &cfg, "\"ServerName\": \"vps.example.net\"");
  assert_string_equal(cfg.server_name, "vps.example.net");
  assert_string_equal(tc_config_server_name(&cfg), "vps.example.net");
  tc_config_free(&cfg);
  load_ok(fx, &cfg, "\"ServerName\": \"198.51.100.4\"");
  assert_string_equal(tc_config_server_name(&cfg), "198.51.100.4");
  tc_config_free(&cfg);

  expect_error(fx, "\"ServerName\": \"https://vps.example.net\"",
               "\"ServerName\": must be a DNS name or an IP address (no port, no brackets), got "
               "\"https://vps.example.net\"");
  expect_error(fx, "\"ServerName\": \"\"", "\"ServerName\": must not be empty");
  expect_error(fx, "\"ServerName\": false", "\"ServerName\": must be a string, got false");
}

static void test_files(void **state)
{
  static const char *const keys[] = { "CaCertificateFile", "ClientTlsCertificateFile", "ClientTlsKeyFile" };
  struct fixture *fx = fixture_of(state);
  struct tc_config cfg;
  char doc[1024], msg[512], want[256];

  /* Each of the three is required, and each must be a non-empty string. */
  for (size_t k = 0; k < 3; k++) {
    size_t o = 0;

    o += (size_t)snprintf(doc + o, sizeof(doc) - o, "{\"ServerHost\": \"h.example\"");
    for (size_t j = 0; j < 3; j++)
      if (j != k)
        o += (size_t)snprintf(doc + o, sizeof(doc) - o, ", \"%s\": \"x.pem\"", keys[j]);
    snprintf(doc + o, sizeof(doc) - o, "}");
    snprintf(msg, sizeof(msg), "\"%s\": is required", keys[k]);
    expect_doc_error(fx, doc, msg);

    snprintf(doc, sizeof(doc), "\"%s\": 7", keys[k]);
    snprintf(msg, sizeof(msg), "\"%s\": must be a string, got 7", keys[k]);
    /* BASE already holds the key; a second copy is a duplicate, so build the document whole. */
    snprintf(doc, sizeof(doc),
             "{\"ServerHost\": \"h.example\", \"CaCertificateFile\": %s, \"ClientTlsCertificateFile\": %s, "
             "\"ClientTlsKeyFile\": %s}",
             k == 0 ? "7" : "\"a\"", k == 1 ? "7" : "\"b\"", k == 2 ? "7" : "\"c\"");
    expect_doc_error(fx, doc, msg);

    snprintf(doc, sizeof(doc),
             "{\"ServerHost\": \"h.example\", \"CaCertificateFile\": %s, \"ClientTlsCertificateFile\": %s, "
             "\"ClientTlsKeyFile\": %s}",
             k == 0 ? "\"\"" : "\"a\"", k == 1 ? "\"\"" : "\"b\"", k == 2 ? "\"\"" : "\"c\"");
    snprintf(msg, sizeof(msg), "\"%s\": must not be empty", keys[k]);
    expect_doc_error(fx, doc, msg);
  }

  /* Relative paths are taken from the config file's directory; absolute ones are kept. */
  {
    char err[1024];

    assert_int_equal(load_text(fx, &cfg,
                               "{\"ServerHost\": \"h.example\", \"CaCertificateFile\": \"ca.pem\", "
                               "\"ClientTlsCertificateFile\": \"certs/client.pem\", \"ClientTlsKeyFile\": \"/k.pem\"}",
                               err, sizeof(err)),
                     TN_OK);
    snprintf(want, sizeof(want), "%s/ca.pem", fx->dir);
    assert_string_equal(cfg.ca_file, want);
    snprintf(want, sizeof(want), "%s/certs/client.pem", fx->dir);
    assert_string_equal(cfg.cert_file, want);
    assert_string_equal(cfg.key_file, "/k.pem");
    tc_config_free(&cfg);
  }
}

static void test_client_identifier(void **state)
{
  struct fixture *fx = fixture_of(state);
  struct tc_config cfg;
  char err[512], want[512];

  load_ok(fx, &cfg, "\"ClientIdentifier\": \"home-server\"");
  assert_string_equal(cfg.client_identifier, "home-server");
  assert_int_equal(tc_config_check_identity(&cfg, "home-server", err, sizeof(err)), TN_OK);

  assert_int_equal(tc_config_check_identity(&cfg, "other", err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s: \"ClientIdentifier\": \"home-server\" does not match the certificate's CN \"other\"",
           fx->path);
  assert_string_equal(err, want);

  /* CNs compare exactly: case matters, as it does on the server. */
  assert_int_equal(tc_config_check_identity(&cfg, "Home-Server", err, sizeof(err)), TN_ERR_INVALID);

  /* A certificate without a CN never matches a configured identifier. */
  assert_int_equal(tc_config_check_identity(&cfg, NULL, err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s: \"ClientIdentifier\": \"home-server\" does not match the certificate's CN \"\"",
           fx->path);
  assert_string_equal(err, want);

  /* A CN with control bytes cannot break the log line. */
  assert_int_equal(tc_config_check_identity(&cfg, "a\nb\"c", err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want),
           "%s: \"ClientIdentifier\": \"home-server\" does not match the certificate's CN \"a\\x0ab\\\"c\"", fx->path);
  assert_string_equal(err, want);
  tc_config_free(&cfg);

  /* Without ClientIdentifier any CN is accepted. */
  load_ok(fx, &cfg, "");
  assert_int_equal(tc_config_check_identity(&cfg, "anything", err, sizeof(err)), TN_OK);
  assert_int_equal(tc_config_check_identity(&cfg, NULL, err, sizeof(err)), TN_OK);
  tc_config_free(&cfg);

  expect_error(fx, "\"ClientIdentifier\": \"\"", "\"ClientIdentifier\": must not be empty");
  expect_error(fx, "\"ClientIdentifier\": 12", "\"ClientIdentifier\": must be a string, got 12");
  {
    char extra[400], msg[128];

    snprintf(extra, sizeof(extra), "\"ClientIdentifier\": \"%0256d\"", 0);
    snprintf(msg, sizeof(msg), "\"ClientIdentifier\": must be at most 255 bytes long, got 256");
    expect_error(fx, extra, msg);
  }
}

static void test_services_valid(void **state)
{
  struct fixture *fx = fixture_of(state);
  const struct tc_config_service *s;
  struct tc_config cfg;

  load_ok(fx, &cfg,
          "\"ServiceToLocalAddrMap\": {\"web\": \"127.0.0.1:8080\", \"db.v6\": \"[::1]:5432\", "
          "\"nas_ui\": \"nas.lan:443\", \"A-1\": \"192.168.1.20:65535\", \"v6-full\": \"[2001:db8::7]:1\"}");
  assert_int_equal(cfg.n_services, 5);
  /* Sorted by name for lookup. */
  for (size_t i = 1; i < cfg.n_services; i++)
    assert_true(strcmp(cfg.services[i - 1].name, cfg.services[i].name) < 0);

  s = tc_config_find_service(&cfg, "web");
  assert_non_null(s);
  assert_string_equal(s->host, "127.0.0.1");
  assert_int_equal(s->port, 8080);
  assert_true(s->host_is_ip);
  s = tc_config_find_service(&cfg, "db.v6");
  assert_non_null(s);
  assert_string_equal(s->host, "::1");
  assert_int_equal(s->port, 5432);
  assert_true(s->host_is_ip);
  s = tc_config_find_service(&cfg, "nas_ui");
  assert_non_null(s);
  assert_string_equal(s->host, "nas.lan");
  assert_int_equal(s->port, 443);
  assert_false(s->host_is_ip);
  s = tc_config_find_service(&cfg, "v6-full");
  assert_non_null(s);
  assert_string_equal(s->host, "2001:db8::7");
  assert_int_equal(s->port, 1);
  assert_non_null(tc_config_find_service(&cfg, "A-1"));
  /* Names are case-sensitive. */
  assert_null(tc_config_find_service(&cfg, "a-1"));
  assert_null(tc_config_find_service(&cfg, "WEB"));
  assert_null(tc_config_find_service(&cfg, ""));
  assert_null(tc_config_find_service(&cfg, NULL));
  tc_config_free(&cfg);

  load_ok(fx, &cfg, "\"ServiceToLocalAddrMap\": {}");
  assert_int_equal(cfg.n_services, 0);
  tc_config_free(&cfg);

  /* A 255-byte name is the longest. */
  {
    char extra[400];

    snprintf(extra, sizeof(extra), "\"ServiceToLocalAddrMap\": {\"%0255d\": \"127.0.0.1:1\"}", 0);
    load_ok(fx, &cfg, extra);
    assert_int_equal(cfg.n_services, 1);
    tc_config_free(&cfg);
  }
}

static void test_services_invalid(void **state)
{
  static const struct {
    const char *value;
    const char *message;
  } values[] = {
    { "\"nocolon\"", "must be \"host:port\", got \"nocolon\"" },
    { "\"::1:80\"", "an IPv6 address needs brackets, as in \"[::1]:8080\", got \"::1:80\"" },
    { "\"[::1]80\"", "must be \"host:port\" or \"[IPv6]:port\", got \"[::1]80\"" },
    { "\"[::1\"", "must be \"host:port\" or \"[IPv6]:port\", got \"[::1\"" },
    { "\"[1.2.3.4]:80\"", "must have an IPv6 address inside [], got \"[1.2.3.4]:80\"" },
    { "\"[]:80\"", "must have an IPv6 address inside [], got \"[]:80\"" },
    { "\"[nas.lan]:80\"", "must have an IPv6 address inside [], got \"[nas.lan]:80\"" },
    { "\":80\"", "host is missing, got \":80\"" },
    { "\"h.example:0\"", "port must be an integer 1-65535, got \"h.example:0\"" },
    { "\"h.example:65536\"", "port must be an integer 1-65535, got \"h.example:65536\"" },
    { "\"h.example:\"", "port must be an integer 1-65535, got \"h.example:\"" },
    { "\"h.example:080\"", "port must be an integer 1-65535, got \"h.example:080\"" },
    { "\"h.example:+80\"", "port must be an integer 1-65535, got \"h.example:+80\"" },
    { "\"h.example:80 \"", "port must be an integer 1-65535, got \"h.example:80 \"" },
    { "\"h.example:http\"", "port must be an integer 1-65535, got \"h.example:http\"" },
    { "\"[::1]:99999\"", "port must be an integer 1-65535, got \"[::1]:99999\"" },
    { "\"bad host:80\"", "host must be an IP address or a DNS name, got \"bad host:80\"" },
    { "\"10.0.0.300:80\"", "host must be an IP address or a DNS name, got \"10.0.0.300:80\"" },
    { "8080", "must be a string \"host:port\", got 8080" },
    { "{\"host\": \"a\"}", "must be a string \"host:port\", got an object" },
    { "null", "must be a string \"host:port\", got null" },
  };
  struct fixture *fx = fixture_of(state);
  char extra[512], msg[512];

  for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
    snprintf(extra, sizeof(extra), "\"ServiceToLocalAddrMap\": {\"web\": \"127.0.0.1:80\", \"svc\": %s}",
             values[i].value);
    snprintf(msg, sizeof(msg), "\"ServiceToLocalAddrMap\".\"svc\": %s", values[i].message);
    expect_error(fx, extra, msg);
  }

  expect_error(fx, "\"ServiceToLocalAddrMap\": [\"web\"]",
               "\"ServiceToLocalAddrMap\": must be an object mapping service names to \"host:port\", got an array");
  expect_error(fx, "\"ServiceToLocalAddrMap\": \"web=127.0.0.1:80\"",
               "\"ServiceToLocalAddrMap\": must be an object mapping service names to \"host:port\", got "
               "\"web=127.0.0.1:80\"");
  expect_error(fx, "\"ServiceToLocalAddrMap\": {\"\": \"127.0.0.1:80\"}",
               "\"ServiceToLocalAddrMap\".\"\": a service name must not be empty");
  expect_error(fx, "\"ServiceToLocalAddrMap\": {\"my web\": \"127.0.0.1:80\"}",
               "\"ServiceToLocalAddrMap\".\"my web\": a service name may contain only letters, digits, '.', '_' and '-'");
  expect_error(fx, "\"ServiceToLocalAddrMap\": {\"a/b\": \"127.0.0.1:80\"}",
               "\"ServiceToLocalAddrMap\".\"a/b\": a service name may contain only letters, digits, '.', '_' and '-'");
  expect_error(fx, "\"ServiceToLocalAddrMap\": {\"caf\\u00e9\": \"127.0.0.1:80\"}",
               "\"ServiceToLocalAddrMap\".\"caf\xc3\xa9\": a service name may contain only letters, digits, '.', '_' "
               "and '-'");
  expect_error(fx, "\"ServiceToLocalAddrMap\": {\"a\\nb\": \"127.0.0.1:80\"}",
               "\"ServiceToLocalAddrMap\".\"a\\x0ab\": a service name may contain only letters, digits, '.', '_' and "
               "'-'");
  {
    char name[300];

    memset(name, 'n', 256);
    name[256] = '\0';
    snprintf(extra, sizeof(extra), "\"ServiceToLocalAddrMap\": {\"%s\": \"127.0.0.1:80\"}", name);
    snprintf(msg, sizeof(msg), "\"ServiceToLocalAddrMap\".\"%.80s...\": a service name must be at most 255 bytes long, got 256",
             name);
    expect_error(fx, extra, msg);
  }
  /* Two entries with one name are a JSON-level error (see test_syntax_errors). */
}

static void test_allowed_ports(void **state)
{
  struct fixture *fx = fixture_of(state);
  struct tc_config cfg;

  load_ok(fx, &cfg, "\"AllowedBackEndPorts\": [8080, 80, 65535, 1, 443]");
  assert_int_equal(cfg.n_allowed_ports, 5);
  for (size_t i = 1; i < cfg.n_allowed_ports; i++)
    assert_true(cfg.allowed_ports[i - 1] < cfg.allowed_ports[i]);
  assert_true(tc_config_port_allowed(&cfg, 80));
  assert_true(tc_config_port_allowed(&cfg, 443));
  assert_true(tc_config_port_allowed(&cfg, 8080));
  assert_true(tc_config_port_allowed(&cfg, 1));
  assert_true(tc_config_port_allowed(&cfg, 65535));
  assert_false(tc_config_port_allowed(&cfg, 0));
  assert_false(tc_config_port_allowed(&cfg, 22));
  assert_false(tc_config_port_allowed(&cfg, 8081));
  tc_config_free(&cfg);

  load_ok(fx, &cfg, "\"AllowedBackEndPorts\": []");
  assert_int_equal(cfg.n_allowed_ports, 0);
  assert_false(tc_config_port_allowed(&cfg, 80));
  tc_config_free(&cfg);

  expect_error(fx, "\"AllowedBackEndPorts\": [80, \"x\"]",
               "\"AllowedBackEndPorts\"[1]: must be an integer 1-65535, got \"x\"");
  expect_error(fx, "\"AllowedBackEndPorts\": [0]", "\"AllowedBackEndPorts\"[0]: must be an integer 1-65535, got 0");
  expect_error(fx, "\"AllowedBackEndPorts\": [80, 443, 65536]",
               "\"AllowedBackEndPorts\"[2]: must be an integer 1-65535, got 65536");
  expect_error(fx, "\"AllowedBackEndPorts\": [-80]", "\"AllowedBackEndPorts\"[0]: must be an integer 1-65535, got -80");
  expect_error(fx, "\"AllowedBackEndPorts\": [80.0]",
               "\"AllowedBackEndPorts\"[0]: must be an integer 1-65535, got 80.0");
  expect_error(fx, "\"AllowedBackEndPorts\": [[80]]",
               "\"AllowedBackEndPorts\"[0]: must be an integer 1-65535, got an array");
  expect_error(fx, "\"AllowedBackEndPorts\": [null]", "\"AllowedBackEndPorts\"[0]: must be an integer 1-65535, got null");
  expect_error(fx, "\"AllowedBackEndPorts\": [80, 443, 80]",
               "\"AllowedBackEndPorts\"[2]: port 80 is listed twice (also at [0])");
  expect_error(fx, "\"AllowedBackEndPorts\": 80", "\"AllowedBackEndPorts\": must be an array of port numbers, got 80");
  expect_error(fx, "\"AllowedBackEndPorts\": \"80,443\"",
               "\"AllowedBackEndPorts\": must be an array of port numbers, got \"80,443\"");
}

static void test_flags(void **state)
{
  struct fixture *fx = fixture_of(state);
  struct tc_config cfg;

  load_ok(fx, &cfg, "\"DebugLog\": true");
  assert_true(cfg.debug_log);
  tc_config_free(&cfg);
  load_ok(fx, &cfg, "\"DebugLog\": false");
  assert_false(cfg.debug_log);
  tc_config_free(&cfg);
  expect_error(fx, "\"DebugLog\": \"yes\"", "\"DebugLog\": must be true or false, got \"yes\"");
  expect_error(fx, "\"DebugLog\": 1", "\"DebugLog\": must be true or false, got 1");

  /* Accepted for compatibility and otherwise ignored. */
  load_ok(fx, &cfg, "\"UseTls\": true, \"ServerManagementPort\": 9057");
  assert_int_equal(cfg.server_port, 9056);
  tc_config_free(&cfg);
  expect_error(fx, "\"UseTls\": false",
               "\"UseTls\": no plaintext mode: tunnelc always uses TLS; set it to true or remove it");
  expect_error(fx, "\"UseTls\": \"true\"", "\"UseTls\": must be true, got \"true\"");
  expect_error(fx, "\"UseTls\": 1", "\"UseTls\": must be true, got 1");
  expect_error(fx, "\"ServerManagementPort\": \"x\"", "\"ServerManagementPort\": must be an integer 1-65535, got \"x\"");
  expect_error(fx, "\"ServerManagementPort\": 70000", "\"ServerManagementPort\": must be an integer 1-65535, got 70000");
}

struct limit_case {
  const char *key;
  size_t offset;
  uint32_t min, max;
};

#define LC(k, f, lo, hi) { k, offsetof(struct tc_config_limits, f), lo, hi }
static const struct limit_case limit_cases[] = {
  LC("HandshakeTimeoutMs", common.handshake_timeout_ms, 100u, 600000u),
  LC("KeepaliveIntervalMs", common.keepalive_interval_ms, 100u, 3600000u),
  LC("DeadPeerTimeoutMs", common.dead_peer_timeout_ms, 200u, 86400000u),
  LC("StreamOpenTimeoutMs", common.stream_open_timeout_ms, 100u, 600000u),
  LC("MaxStreamsPerLink", common.max_streams_per_link, 1u, 1000000u),
  LC("MaxWindow", common.max_window, 262144u, 1073741824u),
  LC("MaxFramePayload", common.max_frame_payload, 1024u, 1048576u),
  LC("LinkOutputBuffer", common.link_output_buffer, 65536u, 1073741824u),
  LC("PipeHighWater", common.pipe_high_water, 4096u, 67108864u),
  LC("PipeLowWater", common.pipe_low_water, 0u, 33554432u),
  LC("DrainTimeoutMs", common.drain_timeout_ms, 0u, 3600000u),
  LC("DialTimeoutMs", dial_timeout_ms, 100u, 600000u),
  LC("ReconnectMinMs", reconnect_min_ms, 10u, 3600000u),
  LC("ReconnectMaxMs", reconnect_max_ms, 10u, 3600000u),
  LC("ReconnectJitterPercent", reconnect_jitter_percent, 0u, 50u),
  LC("ReconnectResetAfterMs", reconnect_reset_after_ms, 0u, 86400000u),
};
#undef LC

/*
 * Other limits that must move with the one under test so the cross-checks
 * (min <= max, keepalive < dead peer, low < high water) do not fire.
 */
static const char *companions(const char *key, uint32_t value)
{
  if (strcmp(key, "ReconnectMinMs") == 0)
    return value > 30000u ? ", \"ReconnectMaxMs\": 3600000" : "";
  if (strcmp(key, "ReconnectMaxMs") == 0)
    return value < 500u ? ", \"ReconnectMinMs\": 10" : "";
  if (strcmp(key, "KeepaliveIntervalMs") == 0)
    return value >= 15000u ? ", \"DeadPeerTimeoutMs\": 86400000" : "";
  if (strcmp(key, "DeadPeerTimeoutMs") == 0)
    return value <= 5000u ? ", \"KeepaliveIntervalMs\": 100" : "";
  if (strcmp(key, "PipeHighWater") == 0)
    return value <= 65536u ? ", \"PipeLowWater\": 0" : "";
  if (strcmp(key, "PipeLowWater") == 0)
    return value >= 262144u ? ", \"PipeHighWater\": 67108864" : "";
  return "";
}

static void test_limits_ranges(void **state)
{
  struct fixture *fx = fixture_of(state);
  char extra[512], msg[512];

  for (size_t i = 0; i < sizeof(limit_cases) / sizeof(limit_cases[0]); i++) {
    const struct limit_case *lc = &limit_cases[i];
    const uint32_t good[2] = { lc->min, lc->max };

    for (size_t g = 0; g < 2; g++) {
      struct tc_config cfg;

      snprintf(extra, sizeof(extra), "\"Limits\": {\"%s\": %u%s}", lc->key, (unsigned)good[g],
               companions(lc->key, good[g]));
      load_ok(fx, &cfg, extra);
      assert_int_equal(*(const uint32_t *)(const void *)((const char *)&cfg.limits + lc->offset), good[g]);
      tc_config_free(&cfg);
    }
    if (lc->min > 0) {
      snprintf(extra, sizeof(extra), "\"Limits\": {\"%s\": %u}", lc->key, (unsigned)lc->min - 1);
      snprintf(msg, sizeof(msg), "\"Limits.%s\": must be an integer %u-%u, got %u", lc->key, (unsigned)lc->min,
               (unsigned)lc->max, (unsigned)lc->min - 1);
      expect_error(fx, extra, msg);
    }
    snprintf(extra, sizeof(extra), "\"Limits\": {\"%s\": %llu}", lc->key, (unsigned long long)lc->max + 1);
    snprintf(msg, sizeof(msg), "\"Limits.%s\": must be an integer %u-%u, got %llu", lc->key, (unsigned)lc->min,
             (unsigned)lc->max, (unsigned long long)lc->max + 1);
    expect_error(fx, extra, msg);
    snprintf(extra, sizeof(extra), "\"Limits\": {\"%s\": -1}", lc->key);
    snprintf(msg, sizeof(msg), "\"Limits.%s\": must be an integer %u-%u, got -1", lc->key, (unsigned)lc->min,
             (unsigned)lc->max);
    expect_error(fx, extra, msg);
    snprintf(extra, sizeof(extra), "\"Limits\": {\"%s\": \"5000\"}", lc->key);
    snprintf(msg, sizeof(msg), "\"Limits.%s\": must be an integer %u-%u, got \"5000\"", lc->key,
             (unsigned)lc->min, (unsigned)lc->max);
    expect_error(fx, extra, msg);
    snprintf(extra, sizeof(extra), "\"Limits\": {\"%s\": 1e3}", lc->key);
    snprintf(msg, sizeof(msg), "\"Limits.%s\": must be an integer %u-%u, got 1000.0", lc->key, (unsigned)lc->min,
             (unsigned)lc->max);
    expect_error(fx, extra, msg);
  }
  /* Every limit of the header has a case above, and the loader knows no others. */
  assert_int_equal(sizeof(limit_cases) / sizeof(limit_cases[0]) * sizeof(uint32_t), sizeof(struct tc_config_limits));
}

static void test_limits_other(void **state)
{
  struct fixture *fx = fixture_of(state);
  struct tc_config cfg;

  load_ok(fx, &cfg, "\"Limits\": {}");
  assert_int_equal(cfg.limits.dial_timeout_ms, TN_DEFAULT_DIAL_TIMEOUT_MS);
  tc_config_free(&cfg);

  load_ok(fx, &cfg,
          "\"Limits\": {\"KeepaliveIntervalMs\": 2000, \"DeadPeerTimeoutMs\": 6000, \"DialTimeoutMs\": 1500, "
          "\"ReconnectMinMs\": 250, \"ReconnectMaxMs\": 60000, \"MaxWindow\": 33554432}");
  assert_int_equal(cfg.limits.common.keepalive_interval_ms, 2000);
  assert_int_equal(cfg.limits.common.dead_peer_timeout_ms, 6000);
  assert_int_equal(cfg.limits.dial_timeout_ms, 1500);
  assert_int_equal(cfg.limits.reconnect_min_ms, 250);
  assert_int_equal(cfg.limits.reconnect_max_ms, 60000);
  assert_int_equal(cfg.limits.common.max_window, 33554432);
  /* Untouched keys keep their defaults. */
  assert_int_equal(cfg.limits.common.handshake_timeout_ms, TN_DEFAULT_HANDSHAKE_TIMEOUT_MS);
  tc_config_free(&cfg);

  /* Equal reconnect bounds mean a constant delay: allowed. */
  load_ok(fx, &cfg, "\"Limits\": {\"ReconnectMinMs\": 1000, \"ReconnectMaxMs\": 1000}");
  tc_config_free(&cfg);

  expect_error(fx, "\"Limits\": [1]", "\"Limits\": must be an object, got an array");
  expect_error(fx, "\"Limits\": {\"DialTimeout\": 5000}", "\"Limits.DialTimeout\": unknown key");
  expect_error(fx, "\"Limits\": {\"MaxConnectionsPerTunnel\": 5}", "\"Limits.MaxConnectionsPerTunnel\": unknown key");
  /* A control byte in a key is shown escaped: the error stays one log line. */
  expect_error(fx, "\"Limits\": {\"StreamOp\\nTimeoutMs\": 100}", "\"Limits.StreamOp\\x0aTimeoutMs\": unknown key");
  /* The same case-insensitive hint as at the top level. */
  expect_error(fx, "\"Limits\": {\"dialtimeoutms\": 5000}",
               "\"Limits.dialtimeoutms\": unknown key (did you mean \"DialTimeoutMs\"?)");
  expect_error(fx, "\"Limits\": {\"pipehighwater\": 5000}",
               "\"Limits.pipehighwater\": unknown key (did you mean \"PipeHighWater\"?)");
  expect_error(fx, "\"Limits\": {\"ReconnectMinMs\": 60000}",
               "\"Limits.ReconnectMaxMs\": must be at least ReconnectMinMs (60000), got 30000");
  expect_error(fx, "\"Limits\": {\"ReconnectMaxMs\": 100}",
               "\"Limits.ReconnectMaxMs\": must be at least ReconnectMinMs (500), got 100");
  expect_error(fx, "\"Limits\": {\"KeepaliveIntervalMs\": 15000}",
               "\"Limits.DeadPeerTimeoutMs\": must be greater than KeepaliveIntervalMs (15000), got 15000");
  expect_error(fx, "\"Limits\": {\"DeadPeerTimeoutMs\": 4000}",
               "\"Limits.DeadPeerTimeoutMs\": must be greater than KeepaliveIntervalMs (5000), got 4000");
  expect_error(fx, "\"Limits\": {\"PipeLowWater\": 262144}",
               "\"Limits.PipeLowWater\": must be less than PipeHighWater (4096), got 262144");
}

static void test_unknown_keys(void **state)
{
  struct fixture *fx = fixture_of(state);

  expect_error(fx, "\"Foo\": 1", "\"Foo\": unknown key");
  expect_error(fx, "\"serverhost\": \"x\"", "\"serverhost\": unknown key (did you mean \"ServerHost\"?)");
  expect_error(fx, "\"AllowedBackendPorts\": [80]",
               "\"AllowedBackendPorts\": unknown key (did you mean \"AllowedBackEndPorts\"?)");
  expect_error(fx, "\"ServerPort\": 9056", "\"ServerPort\": unknown key");
  /* tunneld's keys are not tunnelc's. */
  expect_error(fx, "\"TunnelControlPort\": 9056", "\"TunnelControlPort\": unknown key");
  /* The key is echoed escaped, so it cannot forge a log line. */
  expect_error(fx, "\"x\\ny\": 1", "\"x\\x0ay\": unknown key");
  /* An unknown key is reported even when a known key is also wrong. */
  expect_doc_error(fx, "{\"ServerHost\": 5, \"Bogus\": true}", "\"Bogus\": unknown key");
}

static void test_syntax_errors(void **state)
{
  struct fixture *fx = fixture_of(state);
  struct tc_config cfg;
  char err[1024], want[1024];

  assert_int_equal(load_text(fx, &cfg, "{\n  \"ServerHost\": \"a\",\n  \"DebugLog\": tru\n}\n", err, sizeof(err)),
                   TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s:3:17: invalid JSON: invalid token near 'tru'", fx->path);
  assert_string_equal(err, want);

  assert_int_equal(load_text(fx, &cfg, "{\n  \"ServerHost\": \"a\"\n  \"DebugLog\": true\n}\n", err, sizeof(err)),
                   TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s:3:12: invalid JSON: '}' expected near '\"DebugLog\"'", fx->path);
  assert_string_equal(err, want);

  assert_int_equal(load_text(fx, &cfg, "{\"ServerHost\": \"a\",}", err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s:1:20: invalid JSON: string or '}' expected near '}'", fx->path);
  assert_string_equal(err, want);

  /* Two values for one key are refused rather than silently taking the last. */
  assert_int_equal(load_text(fx, &cfg, "{\"ServerHost\": \"a\",\n \"ServerHost\": \"b\"}", err, sizeof(err)),
                   TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s:2:13: invalid JSON: duplicate object key near '\"ServerHost\"'", fx->path);
  assert_string_equal(err, want);
  assert_int_equal(
      load_text(fx, &cfg, "{\"ServiceToLocalAddrMap\": {\"a\": \"h:1\", \"a\": \"h:2\"}}", err, sizeof(err)),
      TN_ERR_INVALID);
  assert_non_null(strstr(err, "duplicate object key"));

  assert_int_equal(load_text(fx, &cfg, "", err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s:1:0: invalid JSON: '[' or '{' expected near end of file", fx->path);
  assert_string_equal(err, want);

  expect_doc_error(fx, "[1, 2]", "must be a JSON object at the top level, got an array");
  /* Comments are not JSON; the explanation lives in docs/CONFIG.md. */
  assert_int_equal(load_text(fx, &cfg, "{\n// comment\n}", err, sizeof(err)), TN_ERR_INVALID);
  assert_non_null(strstr(err, ":2:1: invalid JSON: "));
  /* Strings with NUL are refused by the parser itself. */
  assert_int_equal(load_text(fx, &cfg, "{\"ServerHost\": \"a\\u0000b\"}", err, sizeof(err)), TN_ERR_INVALID);
  assert_non_null(strstr(err, "invalid JSON: "));
}

static void test_file_errors(void **state)
{
  struct fixture *fx = fixture_of(state);
  struct tc_config cfg;
  char err[1024], want[1024], path[256];

  snprintf(path, sizeof(path), "%s/missing.json", fx->dir);
  assert_int_equal(tc_config_load(&cfg, path, err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
  assert_string_equal(err, want);

  assert_int_equal(tc_config_load(&cfg, fx->dir, err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s: not a regular file (a directory)", fx->dir);
  assert_string_equal(err, want);

  {
    size_t n = TC_CONFIG_FILE_MAX + 1;
    char *big = malloc(n);

    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    write_file(fx->path, big, n);
    free(big);
    assert_int_equal(tc_config_load(&cfg, fx->path, err, sizeof(err)), TN_ERR_INVALID);
    snprintf(want, sizeof(want), "%s: file is larger than 1048576 bytes", fx->path);
    assert_string_equal(err, want);
  }

  /* A NULL or tiny error buffer is tolerated, and the message is cut, not overrun. */
  assert_int_equal(tc_config_load(&cfg, path, NULL, 0), TN_ERR_INVALID);
  memset(err, 'z', sizeof(err));
  assert_int_equal(tc_config_load(&cfg, path, err, 10), TN_ERR_INVALID);
  assert_int_equal(strlen(err), 9);
  assert_int_equal(err[10], 'z');
}

static void test_long_values_are_cut(void **state)
{
  struct fixture *fx = fixture_of(state);
  char extra[2048], msg[512], value[1100];

  memset(value, 'x', 1000);
  value[1000] = '\0';
  snprintf(extra, sizeof(extra), "\"DebugLog\": \"%s\"", value);
  snprintf(msg, sizeof(msg), "\"DebugLog\": must be true or false, got \"%.80s...\"", value);
  expect_error(fx, extra, msg);
}

/* "Servers" instead of ServerHost: the files BASE has, without ServerHost. */
#define SERVERS_BASE                                                                                     \
  "\"CaCertificateFile\": \"/etc/tunnel/ca.pem\", \"ClientTlsCertificateFile\": \"/etc/tunnel/client.pem\", " \
  "\"ClientTlsKeyFile\": \"/etc/tunnel/client.key\""

static void load_servers(const struct fixture *fx, struct tc_config *cfg, const char *extra)
{
  char json[4096], err[1024];

  snprintf(json, sizeof(json), "{" SERVERS_BASE ", %s}", extra);
  if (load_text(fx, cfg, json, err, sizeof(err)) != TN_OK)
    fail_msg("unexpected failure for %s: %s", extra, err);
}

static void expect_servers_error(const struct fixture *fx, const char *extra, const char *message)
{
  char json[4096];

  snprintf(json, sizeof(json), "{" SERVERS_BASE ", %s}", extra);
  expect_doc_error(fx, json, message);
}

static void test_servers(void **state)
{
  struct fixture *fx = fixture_of(state);
  struct tc_config cfg;

  /* ServerHost is one server of its own. */
  load_ok(fx, &cfg, "\"ServerTunnelControlPort\": 7000, \"ServerName\": \"t.example\"");
  assert_false(cfg.servers_listed);
  assert_int_equal(cfg.n_servers, 1);
  assert_string_equal(cfg.servers[0].host, "tunnel.example.com");
  assert_int_equal(cfg.servers[0].port, 7000);
  assert_string_equal(cfg.servers[0].server_name, "t.example");
  tc_config_free(&cfg);

  /* Every form; the port defaults to ServerTunnelControlPort, the name to ServerName, then the host. */
  load_servers(fx, &cfg,
               "\"ServerTunnelControlPort\": 7000, \"ServerName\": \"all.example\", \"Servers\": [\"a.example\", "
               "\"b.example:9100\", \"[2001:db8::1]:9200\", \"2001:db8::2\", \"[::1]\", \"192.0.2.7:1\", "
               "{\"Host\": \"c.example\"}, {\"Host\": \"192.0.2.9\", \"Port\": 9300, \"ServerName\": \"own.example\"}]");
  assert_true(cfg.servers_listed);
  assert_null(cfg.server_host);
  assert_int_equal(cfg.n_servers, 8);
  assert_string_equal(cfg.servers[0].host, "a.example");
  assert_int_equal(cfg.servers[0].port, 7000);
  assert_string_equal(cfg.servers[0].server_name, "all.example");
  assert_string_equal(cfg.servers[1].host, "b.example");
  assert_int_equal(cfg.servers[1].port, 9100);
  assert_string_equal(cfg.servers[2].host, "2001:db8::1");
  assert_int_equal(cfg.servers[2].port, 9200);
  assert_string_equal(cfg.servers[3].host, "2001:db8::2");
  assert_int_equal(cfg.servers[3].port, 7000);
  assert_string_equal(cfg.servers[4].host, "::1");
  assert_int_equal(cfg.servers[4].port, 7000);
  assert_string_equal(cfg.servers[5].host, "192.0.2.7");
  assert_int_equal(cfg.servers[5].port, 1);
  assert_string_equal(cfg.servers[6].host, "c.example");
  assert_int_equal(cfg.servers[6].port, 7000);
  assert_string_equal(cfg.servers[7].host, "192.0.2.9");
  assert_int_equal(cfg.servers[7].port, 9300);
  assert_string_equal(cfg.servers[7].server_name, "own.example");
  tc_config_free(&cfg);

  load_servers(fx, &cfg, "\"Servers\": [\"a.example\"]");
  assert_int_equal(cfg.servers[0].port, 9056);
  assert_string_equal(cfg.servers[0].server_name, "a.example");
  tc_config_free(&cfg);

  /* The same host on two ports is two servers; the same host and port twice is one listed twice. */
  load_servers(fx, &cfg, "\"Servers\": [\"a.example:1\", \"a.example:2\"]");
  assert_int_equal(cfg.n_servers, 2);
  tc_config_free(&cfg);

  expect_error(fx, "\"Servers\": [\"a.example\"]",
               "\"Servers\": cannot be used together with \"ServerHost\"; list every server in \"Servers\"");
  expect_servers_error(fx, "\"Servers\": []", "\"Servers\": must list at least one server");
  expect_servers_error(fx, "\"Servers\": \"a.example\"",
                       "\"Servers\": must be an array of \"host\", \"host:port\" or {\"Host\", \"Port\", "
                       "\"ServerName\"}, got \"a.example\"");
  expect_servers_error(fx, "\"Servers\": [\"a.example\", \"b.example\", \"A.EXAMPLE:9056\"]",
                       "\"Servers\"[2]: server A.EXAMPLE:9056 is listed twice (also at [0])");
  expect_servers_error(fx, "\"Servers\": [\"[::1]:80\", {\"Host\": \"::1\", \"Port\": 80}]",
                       "\"Servers\"[1]: server [::1]:80 is listed twice (also at [0])");
  expect_servers_error(fx, "\"Servers\": [\"a.example:0\"]",
                       "\"Servers\"[0]: port must be an integer 1-65535, got \"a.example:0\"");
  expect_servers_error(fx, "\"Servers\": [\"a.example:65536\"]",
                       "\"Servers\"[0]: port must be an integer 1-65535, got \"a.example:65536\"");
  expect_servers_error(fx, "\"Servers\": [\"a.example:\"]",
                       "\"Servers\"[0]: port must be an integer 1-65535, got \"a.example:\"");
  expect_servers_error(fx, "\"Servers\": [\"[::1]:x\"]", "\"Servers\"[0]: port must be an integer 1-65535, got \"[::1]:x\"");
  expect_servers_error(fx, "\"Servers\": [{\"Host\": \"a.example\", \"Port\": 0}]",
                       "\"Servers\"[0].\"Port\": must be an integer 1-65535, got 0");
  expect_servers_error(fx, "\"Servers\": [{\"Host\": \"a.example\", \"Port\": \"80\"}]",
                       "\"Servers\"[0].\"Port\": must be an integer 1-65535, got \"80\"");
  expect_servers_error(fx, "\"Servers\": [{\"Port\": 80}]", "\"Servers\"[0].\"Host\": is required");
  expect_servers_error(fx, "\"Servers\": [{\"Host\": \"a.example:80\"}]",
                       "\"Servers\"[0].\"Host\": must be a DNS name or an IP address (no port, no brackets), got "
                       "\"a.example:80\"");
  expect_servers_error(fx, "\"Servers\": [{\"Host\": \"a.example\", \"Hots\": 1}]",
                       "\"Servers\"[0].\"Hots\": unknown key (an entry has \"Host\", \"Port\" and \"ServerName\")");
  expect_servers_error(fx, "\"Servers\": [{\"Host\": \"a.example\", \"ServerName\": \"bad name\"}]",
                       "\"Servers\"[0].\"ServerName\": must be a DNS name or an IP address (no port, no brackets), "
                       "got \"bad name\"");
  expect_servers_error(fx, "\"Servers\": [7]",
                       "\"Servers\"[0]: must be \"host\", \"host:port\" or an object {\"Host\", \"Port\", "
                       "\"ServerName\"}, got 7");
  expect_servers_error(fx, "\"Servers\": [\"\"]", "\"Servers\"[0]: must not be empty");
  expect_servers_error(fx, "\"Servers\": [\"bad host\"]",
                       "\"Servers\"[0]: must be a DNS name or an IP address, with an optional \":port\", got "
                       "\"bad host\"");
  expect_servers_error(fx, "\"Servers\": [\"[192.0.2.1]:80\"]",
                       "\"Servers\"[0]: must have an IPv6 address inside [], got \"[192.0.2.1]:80\"");
  expect_servers_error(fx, "\"Servers\": [\"[::1]80\"]",
                       "\"Servers\"[0]: must be \"host\", \"host:port\" or \"[IPv6]:port\", got \"[::1]80\"");
  expect_servers_error(fx, "\"Servers\": [\"a:b:c\"]",
                       "\"Servers\"[0]: must be \"host\", \"host:port\" or \"[IPv6]:port\", got \"a:b:c\"");
  expect_servers_error(fx,
                       "\"Servers\": [\"h1\", \"h2\", \"h3\", \"h4\", \"h5\", \"h6\", \"h7\", \"h8\", \"h9\", \"h10\", "
                       "\"h11\", \"h12\", \"h13\", \"h14\", \"h15\", \"h16\", \"h17\"]",
                       "\"Servers\": must list at most 16 servers, got 17");
}

static void test_server_same(void **state)
{
  struct tc_config_server a = { "a.example", 1, "a.example" }, b = { "A.Example", 1, "a.example" },
                          c = { "a.example", 2, "a.example" }, d = { "a.example", 1, "other.example" };

  (void)state;
  assert_true(tc_config_server_same(&a, &b));
  assert_false(tc_config_server_same(&a, &c));
  assert_false(tc_config_server_same(&a, &d));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_defaults),
    cmocka_unit_test(test_example_file_loads),
    cmocka_unit_test(test_server_host),
    cmocka_unit_test(test_server_port),
    cmocka_unit_test(test_server_name),
    cmocka_unit_test(test_servers),
    cmocka_unit_test(test_server_same),
    cmocka_unit_test(test_files),
    cmocka_unit_test(test_client_identifier),
    cmocka_unit_test(test_services_valid),
    cmocka_unit_test(test_services_invalid),
    cmocka_unit_test(test_allowed_ports),
    cmocka_unit_test(test_flags),
    cmocka_unit_test(test_limits_ranges),
    cmocka_unit_test(test_limits_other),
    cmocka_unit_test(test_unknown_keys),
    cmocka_unit_test(test_syntax_errors),
    cmocka_unit_test(test_file_errors),
    cmocka_unit_test(test_long_values_are_cut),
  };

  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
