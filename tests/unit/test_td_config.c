/* test_td_config.c: tunneld.json loading: every key's default, valid values and exact error messages. */
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
#include "tunnel/json.h"

struct fixture {
  char dir[64];
  char path[128];
};

static int setup(void **state)
{
  struct fixture *f = calloc(1, sizeof(*f));

  snprintf(f->dir, sizeof(f->dir), "/tmp/td_config_XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof(f->path), "%s/tunneld.json", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;

  unlink(f->path);
  rmdir(f->dir);
  free(f);
  return 0;
}

#define REQUIRED                                                                                          \
  "\"CaCertificateFile\": \"/etc/tunnel/ca.pem\", \"ServerTlsCertificateFile\": \"/etc/tunnel/server.pem\", " \
  "\"ServerTlsKeyFile\": \"/etc/tunnel/server.key\", \"AdminIdentities\": [\"admin\"]"

static void write_text(const struct fixture *f, const char *text)
{
  FILE *fp = fopen(f->path, "w");

  assert_non_null(fp);
  fputs(text, fp);
  fclose(fp);
}

/* Loads {REQUIRED, extra} and returns the result; err receives the message with the path stripped. */
static int load_with(const struct fixture *f, const char *extra, struct td_config *cfg, char *err, size_t errlen)
{
  char text[4096];
  char raw[1024];
  int rc;

  snprintf(text, sizeof(text), "{" REQUIRED "%s%s}\n", extra[0] ? ", " : "", extra);
  write_text(f, text);
  raw[0] = 0;
  rc = td_config_load(cfg, f->path, raw, sizeof(raw));
  if (rc != TN_OK) {
    size_t n = strlen(f->path);
    assert_memory_equal(raw, f->path, n);
    /* "FILE: message", or "FILE:LINE:COLUMN: invalid JSON: ..." (kept here as "LINE:COLUMN: ...") */
    assert_true(raw[n] == ':');
    snprintf(err, errlen, "%s", raw + n + (raw[n + 1] == ' ' ? 2 : 1));
  } else {
    err[0] = 0;
  }
  return rc;
}

static void expect_error(const struct fixture *f, const char *extra, const char *message)
{
  struct td_config cfg;
  char err[1024];

  assert_int_equal(load_with(f, extra, &cfg, err, sizeof(err)), TN_ERR_INVALID);
  assert_string_equal(err, message);
  td_config_free(&cfg);
}

static void test_defaults(void **state)
{
  struct fixture *f = *state;
  struct td_config cfg;
  struct tn_limits shared;
  char err[512];
  char addr[TN_ADDR_STRLEN];

  assert_int_equal(load_with(f, "", &cfg, err, sizeof(err)), TN_OK);
  assert_string_equal(cfg.path, f->path);
  assert_int_equal(cfg.control_port, 9056);
  assert_int_equal(cfg.management_port, 9057);
  assert_int_equal(cfg.listen.family, TN_AF_INET6);
  assert_string_equal(tn_addr_format(&cfg.listen, addr, sizeof(addr)), "[::]:0");
  assert_string_equal(cfg.ca_file, "/etc/tunnel/ca.pem");
  assert_string_equal(cfg.cert_file, "/etc/tunnel/server.pem");
  assert_string_equal(cfg.key_file, "/etc/tunnel/server.key");
  assert_int_equal(cfg.n_admin_identities, 1);
  assert_string_equal(cfg.admin_identities[0], "admin");
  assert_string_equal(cfg.state_file, "/var/lib/tunnel/tunnels.json");
  assert_int_equal(cfg.metrics_enabled, 0);
  assert_int_equal(cfg.debug_log, 0);
  /* The shared limits start from their defaults (each one is checked in test_limits). */
  tn_limits_default(&shared, NULL);
  assert_memory_equal(&cfg.limits.common, &shared, sizeof(shared));
  assert_int_equal(cfg.limits.replaced_link_grace_ms, TN_DEFAULT_REPLACED_LINK_GRACE_MS);
  assert_int_equal(cfg.limits.max_connections_per_tunnel, TN_DEFAULT_MAX_CONNECTIONS_PER_TUNNEL);
  assert_int_equal(cfg.limits.max_connections_per_client, TN_DEFAULT_MAX_CONNECTIONS_PER_CLIENT);
  assert_int_equal(cfg.limits.max_pending_handshakes, TN_DEFAULT_MAX_PENDING_HANDSHAKES);
  assert_int_equal(cfg.limits.api_max_body, TN_DEFAULT_API_MAX_BODY);
  assert_int_equal(cfg.limits.api_max_header, TN_DEFAULT_API_MAX_HEADER);
  assert_int_equal(cfg.limits.api_header_timeout_ms, TN_DEFAULT_API_HEADER_TIMEOUT_MS);
  assert_int_equal(cfg.limits.hostname_timeout_ms, TN_DEFAULT_HOSTNAME_TIMEOUT_MS);
  assert_int_equal(cfg.limits.api_idle_timeout_ms, TN_DEFAULT_API_IDLE_TIMEOUT_MS);
  assert_int_equal(cfg.limits.api_max_connections, TN_DEFAULT_API_MAX_CONNECTIONS);
  td_config_free(&cfg);
}

static void test_all_keys(void **state)
{
  struct fixture *f = *state;
  struct td_config cfg;
  struct td_reserved r;
  char err[512];
  char addr[TN_ADDR_STRLEN];

  assert_int_equal(load_with(f,
                             "\"TunnelControlPort\": 443, \"ManagementPort\": 8443, \"ListenAddress\": \"192.0.2.1\", "
                             "\"StateFile\": \"/tmp/t.json\", \"MetricsListen\": \"[::1]:9100\", \"DebugLog\": true, "
                             "\"UseTls\": true, \"Limits\": {\"MaxWindow\": 1048576, \"ApiMaxBody\": 2048}",
                             &cfg, err, sizeof(err)),
                   TN_OK);
  assert_int_equal(cfg.control_port, 443);
  assert_int_equal(cfg.management_port, 8443);
  assert_string_equal(tn_addr_format(&cfg.listen, addr, sizeof(addr)), "192.0.2.1:0");
  assert_string_equal(cfg.state_file, "/tmp/t.json");
  assert_int_equal(cfg.metrics_enabled, 1);
  assert_string_equal(tn_addr_format(&cfg.metrics, addr, sizeof(addr)), "[::1]:9100");
  assert_int_equal(cfg.debug_log, 1);
  assert_int_equal(cfg.limits.common.max_window, 1048576);
  assert_int_equal(cfg.limits.api_max_body, 2048);
  assert_int_equal(cfg.limits.api_max_header, TN_DEFAULT_API_MAX_HEADER);

  td_config_reserved(&cfg, &r);
  assert_int_equal(r.n, 3);
  assert_string_equal(r.ports[0].what, "TunnelControlPort");
  assert_string_equal(tn_addr_format(&r.ports[0].addr, addr, sizeof(addr)), "192.0.2.1:443");
  assert_string_equal(r.ports[1].what, "ManagementPort");
  assert_string_equal(tn_addr_format(&r.ports[1].addr, addr, sizeof(addr)), "192.0.2.1:8443");
  assert_string_equal(r.ports[2].what, "MetricsListen");
  assert_true(td_config_is_admin(&cfg, "admin"));
  assert_false(td_config_is_admin(&cfg, "adm"));
  assert_false(td_config_is_admin(&cfg, NULL));
  td_config_free(&cfg);

  assert_int_equal(load_with(f, "\"MetricsListen\": \"127.0.0.1:9100\", \"DebugLog\": false, \"MetricsListen2\": 1",
                             &cfg, err, sizeof(err)),
                   TN_ERR_INVALID);
  assert_string_equal(err, "\"MetricsListen2\": unknown key");
  assert_int_equal(load_with(f, "\"MetricsListen\": \"127.0.0.1:9100\", \"DebugLog\": false", &cfg, err, sizeof(err)),
                   TN_OK);
  assert_string_equal(tn_addr_format(&cfg.metrics, addr, sizeof(addr)), "127.0.0.1:9100");
  assert_int_equal(cfg.debug_log, 0);
  td_config_free(&cfg);
  assert_int_equal(load_with(f, "\"MetricsListen\": null, \"AdminIdentities\": [\"a\", \"b\"]", &cfg, err, sizeof(err)),
                   TN_ERR_INVALID); /* AdminIdentities given twice: duplicates are refused */
  assert_string_equal(err, "1:214: invalid JSON: duplicate object key near '\"AdminIdentities\"'");
}

static void test_ports(void **state)
{
  struct fixture *f = *state;

  expect_error(f, "\"ManagementPort\": \"abc\"", "\"ManagementPort\": must be an integer 1-65535, got \"abc\"");
  expect_error(f, "\"ManagementPort\": 0", "\"ManagementPort\": must be an integer 1-65535, got 0");
  expect_error(f, "\"ManagementPort\": 65536", "\"ManagementPort\": must be an integer 1-65535, got 65536");
  expect_error(f, "\"ManagementPort\": 80.5", "\"ManagementPort\": must be an integer 1-65535, got 80.5");
  expect_error(f, "\"TunnelControlPort\": -1", "\"TunnelControlPort\": must be an integer 1-65535, got -1");
  expect_error(f, "\"TunnelControlPort\": null", "\"TunnelControlPort\": must be an integer 1-65535, got null");
  expect_error(f, "\"TunnelControlPort\": 9057", "\"ManagementPort\": must differ from TunnelControlPort, both are 9057");
  expect_error(f, "\"MetricsListen\": \"0.0.0.0:9056\"", "\"MetricsListen\": port 9056 is already the TunnelControlPort");
  expect_error(f, "\"MetricsListen\": \"0.0.0.0:9057\"", "\"MetricsListen\": port 9057 is already the ManagementPort");
}

static void test_strings(void **state)
{
  struct fixture *f = *state;
  struct td_config cfg;
  char err[512];

  expect_error(f, "\"ListenAddress\": \"example.com\"",
               "\"ListenAddress\": must be an IPv4 or IPv6 address literal, got \"example.com\"");
  expect_error(f, "\"ListenAddress\": \"[::1]\"", "\"ListenAddress\": must be an IPv4 or IPv6 address literal, got \"[::1]\"");
  expect_error(f, "\"ListenAddress\": 1", "\"ListenAddress\": must be an IPv4 or IPv6 address literal, got 1");
  expect_error(f, "\"StateFile\": \"\"", "\"StateFile\": must be a non-empty string, got \"\"");
  expect_error(f, "\"StateFile\": [\"x\"]", "\"StateFile\": must be a non-empty string, got an array");
  /* jansson itself refuses NUL inside strings, so paths never hide a truncation. */
  expect_error(f, "\"StateFile\": \"a\\u0000b\"",
               "1:197: invalid JSON: \\u0000 is not allowed without JSON_ALLOW_NUL near '\"a\\u0000b\"'");
  expect_error(f, "\"DebugLog\": \"yes\"", "\"DebugLog\": must be true or false, got \"yes\"");
  expect_error(f, "\"UseTls\": false", "\"UseTls\": must be true (there is no plaintext mode), got false");
  expect_error(f, "\"UseTls\": 1", "\"UseTls\": must be true (there is no plaintext mode), got 1");
  expect_error(f, "\"Bogus\": 1", "\"Bogus\": unknown key");
  expect_error(f, "\"Bo\\r\\ngus\": 1", "\"Bo\\x0d\\x0agus\": unknown key");
  expect_error(f, "\"usetls\": true", "\"usetls\": unknown key (did you mean \"UseTls\"?)");

  /* Relative file names are relative to the config file's directory. */
  {
    char text[512], want[256];
    write_text(f, "{\"CaCertificateFile\": \"ca.pem\", \"ServerTlsCertificateFile\": \"sub/server.pem\", "
                  "\"ServerTlsKeyFile\": \"/abs/server.key\", \"AdminIdentities\": [\"a\"], \"StateFile\": \"t.json\"}");
    assert_int_equal(td_config_load(&cfg, f->path, text, sizeof(text)), TN_OK);
    snprintf(want, sizeof(want), "%s/ca.pem", f->dir);
    assert_string_equal(cfg.ca_file, want);
    snprintf(want, sizeof(want), "%s/sub/server.pem", f->dir);
    assert_string_equal(cfg.cert_file, want);
    assert_string_equal(cfg.key_file, "/abs/server.key");
    snprintf(want, sizeof(want), "%s/t.json", f->dir);
    assert_string_equal(cfg.state_file, want);
    td_config_free(&cfg);
  }

  assert_int_equal(load_with(f, "\"ListenAddress\": \"::1\"", &cfg, err, sizeof(err)), TN_OK);
  assert_int_equal(cfg.listen.family, TN_AF_INET6);
  td_config_free(&cfg);
  assert_int_equal(load_with(f, "\"ListenAddress\": \"0.0.0.0\"", &cfg, err, sizeof(err)), TN_OK);
  assert_int_equal(cfg.listen.family, TN_AF_INET);
  td_config_free(&cfg);
}

static void test_metrics_listen(void **state)
{
  struct fixture *f = *state;
  static const char *const bad[] = {
    "9100", ":9100", "localhost:9100", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
    "127.0.0.1:+80", "::1:9100", "[::1]9100", "[127.0.0.1]:80", "[::1]:", "[]:80", "127.0.0.1:123456",
  };
  char extra[128], msg[256];

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(extra, sizeof(extra), "\"MetricsListen\": \"%s\"", bad[i]);
    snprintf(msg, sizeof(msg),
             "\"MetricsListen\": must be \"host:port\" with an IP literal host ([...] for IPv6) and port 1-65535, "
             "got \"%s\"",
             bad[i]);
    expect_error(f, extra, msg);
  }
  expect_error(f, "\"MetricsListen\": 9100",
               "\"MetricsListen\": must be \"host:port\" with an IP literal host ([...] for IPv6) and port 1-65535, "
               "got 9100");
}

static void test_required(void **state)
{
  struct fixture *f = *state;
  struct td_config cfg;
  char err[1024];
  char want[512];
  static const char *const keys[] = {"CaCertificateFile", "ServerTlsCertificateFile", "ServerTlsKeyFile"};

  for (size_t i = 0; i < 3; i++) {
    char text[512] = "{";
    for (size_t k = 0; k < 3; k++) {
      if (k == i)
        continue;
      strcat(text, "\"");
      strcat(text, keys[k]);
      strcat(text, "\": \"x\", ");
    }
    strcat(text, "\"AdminIdentities\": [\"a\"]}");
    write_text(f, text);
    assert_int_equal(td_config_load(&cfg, f->path, err, sizeof(err)), TN_ERR_INVALID);
    snprintf(want, sizeof(want), "%s: \"%s\": is required", f->path, keys[i]);
    assert_string_equal(err, want);
    td_config_free(&cfg);
  }
  write_text(f, "{\"CaCertificateFile\": \"a\", \"ServerTlsCertificateFile\": \"b\", \"ServerTlsKeyFile\": \"c\"}");
  assert_int_equal(td_config_load(&cfg, f->path, err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want),
           "%s: \"AdminIdentities\": is required (the certificate names allowed on the management port)", f->path);
  assert_string_equal(err, want);
  /* jansson quotes the input, a newline included: the message stays one line. */
  write_text(f, "{\"a\":\"\\\n  \"9\\n\"}");
  assert_int_equal(td_config_load(&cfg, f->path, err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s:2:0: invalid JSON: invalid escape near '\"\\?'", f->path);
  assert_string_equal(err, want);
}

/* An admin may be named by CN or pinned by certificate fingerprint, in openssl's form or ours. */
static void test_admin_by_fingerprint(void **state)
{
  struct fixture *f = *state;
  struct td_config cfg;
  static const char hex[] = "c2346f080976865f183487667d708ff32996c810a0b510312a79f601c6fdc9a3";

  write_text(f, "{\"CaCertificateFile\": \"a\", \"ServerTlsCertificateFile\": \"b\", \"ServerTlsKeyFile\": \"c\", "
                "\"AdminIdentities\": [\"ops\", \"SHA256 Fingerprint=C2:34:6F:08:09:76:86:5F:18:34:87:66:7D:70:8F:F3:"
                "29:96:C8:10:A0:B5:10:31:2A:79:F6:01:C6:FD:C9:A3\"]}");
  char err[512];
  assert_int_equal(td_config_load(&cfg, f->path, err, sizeof(err)), TN_OK);
  assert_true(td_config_is_admin_cert(&cfg, "ops", "00"));
  assert_true(td_config_is_admin_cert(&cfg, "anyone", hex));
  assert_false(td_config_is_admin_cert(&cfg, "anyone", "d2346f080976865f183487667d708ff32996c810a0b510312a79f601c6fdc9a3"));
  assert_false(td_config_is_admin_cert(&cfg, "anyone", NULL));
  td_config_free(&cfg);
}

static void test_admins(void **state)
{
  struct fixture *f = *state;
  char text[512];
  struct td_config cfg;
  char err[512];
  static const struct {
    const char *value, *message;
  } cases[] = {
    {"[]", "\"AdminIdentities\": must be a non-empty array of certificate names, got an empty array"},
    {"\"admin\"", "\"AdminIdentities\": must be a non-empty array of certificate names, got \"admin\""},
    {"[\"a\", 1]", "\"AdminIdentities[1]\": must be a non-empty string of at most 255 bytes, got 1"},
    {"[\"\"]", "\"AdminIdentities[0]\": must be a non-empty string of at most 255 bytes, got \"\""},
  };

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    snprintf(text, sizeof(text),
             "{\"CaCertificateFile\": \"a\", \"ServerTlsCertificateFile\": \"b\", \"ServerTlsKeyFile\": \"c\", "
             "\"AdminIdentities\": %s}",
             cases[i].value);
    write_text(f, text);
    assert_int_equal(td_config_load(&cfg, f->path, err, sizeof(err)), TN_ERR_INVALID);
    assert_string_equal(err + strlen(f->path) + 2, cases[i].message);
  }
  write_text(f, "{\"CaCertificateFile\": \"a\", \"ServerTlsCertificateFile\": \"b\", \"ServerTlsKeyFile\": \"c\", "
                "\"AdminIdentities\": [\"ops\", \"deploy bot\"]}");
  assert_int_equal(td_config_load(&cfg, f->path, err, sizeof(err)), TN_OK);
  assert_int_equal(cfg.n_admin_identities, 2);
  assert_true(td_config_is_admin(&cfg, "deploy bot"));
  td_config_free(&cfg);
}

static const struct {
  const char *key;
  size_t offset;
  unsigned long min, max;
} limits[] = {
#define LIM(k, f, a, b) {k, offsetof(struct td_limits, f), a, b}
  LIM("HandshakeTimeoutMs", common.handshake_timeout_ms, 100, 600000),
  LIM("KeepaliveIntervalMs", common.keepalive_interval_ms, 100, 3600000),
  LIM("DeadPeerTimeoutMs", common.dead_peer_timeout_ms, 200, 86400000),
  LIM("StreamOpenTimeoutMs", common.stream_open_timeout_ms, 100, 600000),
  LIM("MaxStreamsPerLink", common.max_streams_per_link, 1, 1000000),
  LIM("MaxWindow", common.max_window, 262144, 1073741824),
  LIM("MaxFramePayload", common.max_frame_payload, 1024, 1048576),
  LIM("LinkOutputBuffer", common.link_output_buffer, 65536, 1073741824),
  LIM("ReplacedLinkGraceMs", replaced_link_grace_ms, 0, 3600000),
  LIM("PipeHighWater", common.pipe_high_water, 4096, 67108864),
  LIM("PipeLowWater", common.pipe_low_water, 0, 33554432),
  LIM("DrainTimeoutMs", common.drain_timeout_ms, 0, 3600000),
  LIM("MaxConnectionsPerTunnel", max_connections_per_tunnel, 1, 1000000),
  LIM("MaxConnectionsPerClient", max_connections_per_client, 1, 1000000),
  LIM("MaxPendingHandshakes", max_pending_handshakes, 1, 100000),
  LIM("MaxPendingHandshakesPerSource", max_pending_per_source, 1, 100000),
  LIM("ApiMaxNonAdminPerSource", api_max_non_admin_per_source, 1, 10000),
  LIM("ApiMaxNonAdminPerIdentity", api_max_non_admin_per_identity, 1, 10000),
  LIM("MaxTunnels", max_tunnels, 0, 1000000),
  LIM("MaxBackupsPerTunnel", max_backups_per_tunnel, 0, 1024),
  LIM("ApiMaxBody", api_max_body, 1024, 67108864),
  LIM("ApiMaxHeader", api_max_header, 1024, 1048576),
  LIM("ApiHeaderTimeoutMs", api_header_timeout_ms, 100, 600000),
  LIM("HostnameTimeoutMs", hostname_timeout_ms, 100, 600000),
  LIM("ApiIdleTimeoutMs", api_idle_timeout_ms, 100, 86400000),
  LIM("ApiMaxConnections", api_max_connections, 1, 10000),
  LIM("MaxPublicConnectionsPerSource", max_public_per_source, 1, 1000000),
#undef LIM
};

/* Other limits that must move together so one limit can be set to its extremes alone. */
static const char *companions(const char *key, unsigned long value)
{
  if (strcmp(key, "KeepaliveIntervalMs") == 0)
    return ", \"DeadPeerTimeoutMs\": 86400000";
  if (strcmp(key, "DeadPeerTimeoutMs") == 0)
    return ", \"KeepaliveIntervalMs\": 100";
  if (strcmp(key, "PipeHighWater") == 0)
    return ", \"PipeLowWater\": 0";
  if (strcmp(key, "PipeLowWater") == 0)
    return ", \"PipeHighWater\": 67108864";
  (void)value;
  return "";
}

static void test_limits(void **state)
{
  struct fixture *f = *state;
  struct td_config cfg;
  char extra[256], msg[256], err[512];

  for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
    unsigned long ok[2] = {limits[i].min, limits[i].max};
    for (size_t k = 0; k < 2; k++) {
      if (strcmp(limits[i].key, "DeadPeerTimeoutMs") == 0 && k == 0)
        ok[k] = 200;
      snprintf(extra, sizeof(extra), "\"Limits\": {\"%s\": %lu%s}", limits[i].key, ok[k],
               companions(limits[i].key, ok[k]));
      assert_int_equal(load_with(f, extra, &cfg, err, sizeof(err)), TN_OK);
      assert_int_equal(*(uint32_t *)((char *)&cfg.limits + limits[i].offset), ok[k]);
      td_config_free(&cfg);
    }
    if (limits[i].min > 0) {
      snprintf(extra, sizeof(extra), "\"Limits\": {\"%s\": %lu}", limits[i].key, limits[i].min - 1);
      snprintf(msg, sizeof(msg), "\"Limits.%s\": must be an integer %lu-%lu, got %lu", limits[i].key, limits[i].min,
               limits[i].max, limits[i].min - 1);
      expect_error(f, extra, msg);
    }
    snprintf(extra, sizeof(extra), "\"Limits\": {\"%s\": %lu}", limits[i].key, limits[i].max + 1);
    snprintf(msg, sizeof(msg), "\"Limits.%s\": must be an integer %lu-%lu, got %lu", limits[i].key, limits[i].min,
             limits[i].max, limits[i].max + 1);
    expect_error(f, extra, msg);
    snprintf(extra, sizeof(extra), "\"Limits\": {\"%s\": \"10\"}", limits[i].key);
    snprintf(msg, sizeof(msg), "\"Limits.%s\": must be an integer %lu-%lu, got \"10\"", limits[i].key, limits[i].min,
             limits[i].max);
    expect_error(f, extra, msg);
  }
  expect_error(f, "\"Limits\": {\"MaxWindows\": 1}", "\"Limits.MaxWindows\": unknown key");
  expect_error(f, "\"Limits\": {\"Max\\nWindow\": 1}", "\"Limits.Max\\x0aWindow\": unknown key");
  /* The same case-insensitive hint for the shared limits and tunneld's own. */
  expect_error(f, "\"Limits\": {\"maxwindow\": 1}", "\"Limits.maxwindow\": unknown key (did you mean \"MaxWindow\"?)");
  expect_error(f, "\"Limits\": {\"MAXTUNNELS\": 1}", "\"Limits.MAXTUNNELS\": unknown key (did you mean \"MaxTunnels\"?)");
  expect_error(f, "\"Limits\": [1]", "\"Limits\": must be an object, got an array");
  expect_error(f, "\"Limits\": {\"KeepaliveIntervalMs\": 20000}",
               "\"Limits.DeadPeerTimeoutMs\": must be greater than KeepaliveIntervalMs (20000), got 15000");
  expect_error(f, "\"Limits\": {\"PipeLowWater\": 262144}",
               "\"Limits.PipeLowWater\": must be less than PipeHighWater (4096), got 262144");
  expect_error(f, "\"Limits\": {\"ApiMaxBody\": -5}", "\"Limits.ApiMaxBody\": must be an integer 1024-67108864, got -5");
}

static void test_syntax_and_file(void **state)
{
  struct fixture *f = *state;
  struct td_config cfg;
  char err[512], want[512];

  write_text(f, "{\n  \"ManagementPort\": 9057,\n  \"DebugLog\": tru\n}\n");
  assert_int_equal(td_config_load(&cfg, f->path, err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s:3:17: invalid JSON: invalid token near 'tru'", f->path);
  assert_string_equal(err, want);

  write_text(f, "{\"a\": 1,}");
  assert_int_equal(td_config_load(&cfg, f->path, err, sizeof(err)), TN_ERR_INVALID);
  assert_non_null(strstr(err, ":1:9: invalid JSON: "));

  write_text(f, "");
  assert_int_equal(td_config_load(&cfg, f->path, err, sizeof(err)), TN_ERR_INVALID);
  assert_non_null(strstr(err, ":1:0: invalid JSON: "));

  write_text(f, "[1, 2]");
  assert_int_equal(td_config_load(&cfg, f->path, err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s: must be a JSON object at the top level, got an array", f->path);
  assert_string_equal(err, want);

  assert_int_equal(td_config_load(&cfg, "/nonexistent/tunneld.json", err, sizeof(err)), TN_ERR_INVALID);
  assert_string_equal(err, "/nonexistent/tunneld.json: cannot open: No such file or directory");
  td_config_free(&cfg);
}

static void test_long_values_truncated(void **state)
{
  struct fixture *f = *state;
  char extra[512];
  char msg[512];

  snprintf(extra, sizeof(extra), "\"ManagementPort\": \"%0200d\"", 0);
  /* Cut as tunnelc cuts it (tn_json_quote): TN_JSON_QUOTE_MAX bytes, then "..." inside the quotes. */
  snprintf(msg, sizeof(msg), "\"ManagementPort\": must be an integer 1-65535, got \"%0*d...\"", TN_JSON_QUOTE_MAX, 0);
  expect_error(f, extra, msg);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
    cmocka_unit_test_setup_teardown(test_all_keys, setup, teardown),
    cmocka_unit_test_setup_teardown(test_ports, setup, teardown),
    cmocka_unit_test_setup_teardown(test_strings, setup, teardown),
    cmocka_unit_test_setup_teardown(test_metrics_listen, setup, teardown),
    cmocka_unit_test_setup_teardown(test_required, setup, teardown),
    cmocka_unit_test_setup_teardown(test_admins, setup, teardown),
    cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
    cmocka_unit_test_setup_teardown(test_admin_by_fingerprint, setup, teardown),
    cmocka_unit_test_setup_teardown(test_syntax_and_file, setup, teardown),
    cmocka_unit_test_setup_teardown(test_long_values_truncated, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
