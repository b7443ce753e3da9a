/* test_tc_backends.c: tunnelc's allow-list: only listed ports and services become dial targets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backends.h"
#include "config.h"
#include "tunnel/error.h"
#include "tunnel/open.h"

static int setup(void **state)
{
  static const char json[] =
      "{\"ServerHost\": \"tunnel.example.com\", \"CaCertificateFile\": \"/ca.pem\", "
      "\"ClientTlsCertificateFile\": \"/c.pem\", \"ClientTlsKeyFile\": \"/k.pem\", "
      "\"AllowedBackEndPorts\": [80, 443, 8080], "
      "\"ServiceToLocalAddrMap\": {\"web\": \"127.0.0.1:8081\", \"git\": \"[::1]:3000\", "
      "\"nas\": \"nas.lan:5001\", \"v6\": \"[2001:db8::7]:443\"}}";
  struct tc_config *cfg = calloc(1, sizeof(*cfg));
  char path[] = "/tmp/test_tc_backends.XXXXXX";
  char err[512];
  int fd = mkstemp(path);

  if (cfg == NULL || fd < 0)
    return -1;
  if (write(fd, json, sizeof(json) - 1) != (ssize_t)(sizeof(json) - 1))
    return -1;
  close(fd);
  if (tc_config_load(cfg, path, err, sizeof(err)) != TN_OK) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  unlink(path);
  *state = cfg;
  return 0;
}

static int teardown(void **state)
{
  tc_config_free(*state);
  free(*state);
  return 0;
}

static struct tn_open port_open(uint16_t port)
{
  struct tn_open o;

  memset(&o, 0, sizeof(o));
  o.backend_kind = TN_OPEN_BACKEND_PORT;
  o.backend_port = port;
  return o;
}

static struct tn_open service_open(const char *name)
{
  struct tn_open o;

  memset(&o, 0, sizeof(o));
  o.backend_kind = TN_OPEN_BACKEND_SERVICE;
  snprintf(o.service, sizeof(o.service), "%s", name);
  return o;
}

static void test_port_allowed(void **state)
{
  const uint16_t ports[] = { 80, 443, 8080 };
  struct tc_backends_target t;
  char reason[TC_BACKENDS_REASON_MAX], text[300];

  for (size_t i = 0; i < 3; i++) {
    struct tn_open o = port_open(ports[i]);

    strcpy(reason, "stale");
    assert_int_equal(tc_backends_resolve(*state, &o, &t, reason, sizeof(reason)), TN_OK);
    assert_string_equal(reason, "");
    /* Loopback only: the port never reaches another machine. */
    assert_string_equal(t.host, "127.0.0.1");
    assert_string_equal(t.fallback_host, "::1");
    assert_true(t.host_is_ip);
    assert_int_equal(t.port, ports[i]);
    assert_int_equal(t.kind, TN_OPEN_BACKEND_PORT);
  }
  {
    struct tn_open o = port_open(8080);

    tc_backends_resolve(*state, &o, &t, reason, sizeof(reason));
    assert_string_equal(tc_backends_format(&t, text, sizeof(text)), "127.0.0.1:8080");
  }
}

static void test_port_refused(void **state)
{
  const uint16_t ports[] = { 22, 0, 81, 8081, 65535, 3000, 5001 };
  struct tc_backends_target t;
  char reason[TC_BACKENDS_REASON_MAX], want[64];

  for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
    struct tn_open o = port_open(ports[i]);

    memset(&t, 0x55, sizeof(t));
    assert_int_equal(tc_backends_resolve(*state, &o, &t, reason, sizeof(reason)), TN_ERR_INVALID);
    snprintf(want, sizeof(want), "port %u is not in AllowedBackEndPorts", (unsigned)ports[i]);
    assert_string_equal(reason, want);
    /* A refusal leaves nothing dialable behind. */
    assert_string_equal(t.host, "");
    assert_int_equal(t.port, 0);
  }
}

static void test_service_allowed(void **state)
{
  static const struct {
    const char *name, *host, *formatted;
    uint16_t port;
    bool is_ip;
  } cases[] = {
    { "web", "127.0.0.1", "127.0.0.1:8081", 8081, true },
    { "git", "::1", "[::1]:3000", 3000, true },
    { "nas", "nas.lan", "nas.lan:5001", 5001, false },
    { "v6", "2001:db8::7", "[2001:db8::7]:443", 443, true },
  };
  struct tc_backends_target t;
  char reason[TC_BACKENDS_REASON_MAX], text[300];

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct tn_open o = service_open(cases[i].name);

    assert_int_equal(tc_backends_resolve(*state, &o, &t, reason, sizeof(reason)), TN_OK);
    assert_string_equal(t.host, cases[i].host);
    assert_int_equal(t.port, cases[i].port);
    assert_int_equal(t.host_is_ip, cases[i].is_ip);
    /* Exactly what is configured: no loopback fallback for services. */
    assert_string_equal(t.fallback_host, "");
    assert_int_equal(t.kind, TN_OPEN_BACKEND_SERVICE);
    assert_string_equal(tc_backends_format(&t, text, sizeof(text)), cases[i].formatted);
  }
}

static void test_service_refused(void **state)
{
  static const struct {
    const char *name, *reason;
  } cases[] = {
    { "db", "service \"db\" is not in ServiceToLocalAddrMap" },
    { "WEB", "service \"WEB\" is not in ServiceToLocalAddrMap" },
    { "web ", "service \"web \" is not in ServiceToLocalAddrMap" },
    { "", "service \"\" is not in ServiceToLocalAddrMap" },
    { "127.0.0.1:22", "service \"127.0.0.1:22\" is not in ServiceToLocalAddrMap" },
    /* Server-supplied bytes are escaped before they reach a log line. */
    { "a\nb\"c\\", "service \"a\\x0ab\\\"c\\\\\" is not in ServiceToLocalAddrMap" },
    { "\xff", "service \"\\xff\" is not in ServiceToLocalAddrMap" },
  };
  struct tc_backends_target t;
  char reason[TC_BACKENDS_REASON_MAX];

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct tn_open o = service_open(cases[i].name);

    assert_int_equal(tc_backends_resolve(*state, &o, &t, reason, sizeof(reason)), TN_ERR_INVALID);
    assert_string_equal(reason, cases[i].reason);
    assert_string_equal(t.host, "");
  }
}

static void test_service_unterminated(void **state)
{
  struct tc_backends_target t;
  char reason[TC_BACKENDS_REASON_MAX];
  struct tn_open o = service_open("");

  /* A header whose name fills the buffer without a NUL is refused, never read past. */
  memset(o.service, 'w', sizeof(o.service));
  assert_int_equal(tc_backends_resolve(*state, &o, &t, reason, sizeof(reason)), TN_ERR_INVALID);
  assert_non_null(strstr(reason, "is not in ServiceToLocalAddrMap"));
  /* The longest legal name, escaped byte by byte, still fits the reason buffer. */
  memset(o.service, 0x01, TN_OPEN_MAX_SERVICE);
  o.service[TN_OPEN_MAX_SERVICE] = '\0';
  assert_int_equal(tc_backends_resolve(*state, &o, &t, reason, sizeof(reason)), TN_ERR_INVALID);
  assert_int_equal(strlen(reason), strlen("service \"\" is not in ServiceToLocalAddrMap") + 4u * TN_OPEN_MAX_SERVICE);
}

static void test_kind_confusion(void **state)
{
  struct tc_backends_target t;
  char reason[TC_BACKENDS_REASON_MAX];
  struct tn_open o;

  /* A port tunnel carrying an allowed service name still needs an allowed port. */
  o = service_open("web");
  o.backend_kind = TN_OPEN_BACKEND_PORT;
  o.backend_port = 22;
  assert_int_equal(tc_backends_resolve(*state, &o, &t, reason, sizeof(reason)), TN_ERR_INVALID);
  assert_string_equal(reason, "port 22 is not in AllowedBackEndPorts");
  /* A service tunnel ignores the port field entirely. */
  o = service_open("db");
  o.backend_port = 80;
  assert_int_equal(tc_backends_resolve(*state, &o, &t, reason, sizeof(reason)), TN_ERR_INVALID);
  assert_string_equal(reason, "service \"db\" is not in ServiceToLocalAddrMap");

  o = port_open(80);
  o.backend_kind = 0;
  assert_int_equal(tc_backends_resolve(*state, &o, &t, reason, sizeof(reason)), TN_ERR_INVALID);
  assert_string_equal(reason, "unknown backend kind 0");
  o.backend_kind = 9;
  assert_int_equal(tc_backends_resolve(*state, &o, &t, reason, sizeof(reason)), TN_ERR_INVALID);
  assert_string_equal(reason, "unknown backend kind 9");
}

static void test_empty_config_refuses_everything(void **state)
{
  struct tc_config empty;
  struct tc_backends_target t;
  char reason[TC_BACKENDS_REASON_MAX];
  struct tn_open o;

  (void)state;
  memset(&empty, 0, sizeof(empty));
  for (uint32_t port = 0; port <= 65535; port++) {
    o = port_open((uint16_t)port);
    assert_int_equal(tc_backends_resolve(&empty, &o, &t, NULL, 0), TN_ERR_INVALID);
  }
  o = service_open("web");
  assert_int_equal(tc_backends_resolve(&empty, &o, &t, reason, sizeof(reason)), TN_ERR_INVALID);
}

static void test_only_listed_ports_over_whole_range(void **state)
{
  struct tc_backends_target t;
  size_t allowed = 0;

  for (uint32_t port = 0; port <= 65535; port++) {
    struct tn_open o = port_open((uint16_t)port);

    if (tc_backends_resolve(*state, &o, &t, NULL, 0) == TN_OK) {
      allowed++;
      assert_true(port == 80 || port == 443 || port == 8080);
    }
  }
  assert_int_equal(allowed, 3);
}

static void test_target_outlives_config(void **state)
{
  struct tc_config *cfg = *state;
  struct tc_backends_target t;
  struct tn_open o = service_open("nas");
  char *saved;

  assert_int_equal(tc_backends_resolve(cfg, &o, &t, NULL, 0), TN_OK);
  /* The target holds a copy: scribbling over the config's string does not change it. */
  saved = strdup(tc_config_find_service(cfg, "nas")->host);
  assert_non_null(saved);
  memset(tc_config_find_service(cfg, "nas")->host, 'x', strlen(saved));
  assert_string_equal(t.host, "nas.lan");
  memcpy(tc_config_find_service(cfg, "nas")->host, saved, strlen(saved));
  free(saved);
}

static void test_small_buffers(void **state)
{
  struct tc_backends_target t;
  char reason[8], text[6];
  struct tn_open o = port_open(22);

  assert_int_equal(tc_backends_resolve(*state, &o, &t, reason, sizeof(reason)), TN_ERR_INVALID);
  assert_string_equal(reason, "port 22");
  o = port_open(8080);
  assert_int_equal(tc_backends_resolve(*state, &o, &t, reason, 0), TN_OK);
  assert_string_equal(tc_backends_format(&t, text, sizeof(text)), "127.0");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_port_allowed),
    cmocka_unit_test(test_port_refused),
    cmocka_unit_test(test_service_allowed),
    cmocka_unit_test(test_service_refused),
    cmocka_unit_test(test_service_unterminated),
    cmocka_unit_test(test_kind_confusion),
    cmocka_unit_test(test_empty_config_refuses_everything),
    cmocka_unit_test(test_only_listed_ports_over_whole_range),
    cmocka_unit_test(test_target_outlives_config),
    cmocka_unit_test(test_small_buffers),
  };

  return cmocka_run_group_tests(tests, setup, teardown);
}
