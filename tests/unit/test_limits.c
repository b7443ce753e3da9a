/* test_limits.c: the Limits both programs share (lib/limits.c): defaults, bounds, cross-checks and the option mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tunnel/defaults.h"
#include "tunnel/error.h"
#include "tunnel/limits.h"

/* A program's limits: the shared ones first, then its own, as tunneld's td_limits and tunnelc's tc_config_limits. */
struct prog_limits {
  struct tn_limits common;
  uint32_t own_ms;
};

static const struct tn_limit_def own_defs[] = {
  { "OwnMs", offsetof(struct prog_limits, own_ms), 10u, 1000u, 500u },
};
static const struct tn_limit_table own = { own_defs, 1 };

/* Every shared default, once for both programs: their config tests only check that the loader starts from these. */
static void test_defaults(void **state)
{
  struct prog_limits l;

  (void)state;
  memset(&l, 0xff, sizeof(l));
  tn_limits_default(&l, &own);
  assert_int_equal(l.common.handshake_timeout_ms, TN_DEFAULT_HANDSHAKE_TIMEOUT_MS);
  assert_int_equal(l.common.keepalive_interval_ms, TN_DEFAULT_KEEPALIVE_INTERVAL_MS);
  assert_int_equal(l.common.dead_peer_timeout_ms, TN_DEFAULT_DEAD_PEER_TIMEOUT_MS);
  assert_int_equal(l.common.stream_open_timeout_ms, TN_DEFAULT_STREAM_OPEN_TIMEOUT_MS);
  assert_int_equal(l.common.max_streams_per_link, TN_DEFAULT_MAX_STREAMS_PER_LINK);
  assert_int_equal(l.common.max_window, TN_DEFAULT_MAX_WINDOW);
  assert_int_equal(l.common.max_frame_payload, TN_DEFAULT_MAX_FRAME_PAYLOAD);
  assert_int_equal(l.common.link_output_buffer, TN_DEFAULT_LINK_OUTPUT_BUFFER);
  assert_int_equal(l.common.pipe_high_water, TN_DEFAULT_PIPE_HIGH_WATER);
  assert_int_equal(l.common.pipe_low_water, TN_DEFAULT_PIPE_LOW_WATER);
  assert_int_equal(l.common.drain_timeout_ms, TN_DEFAULT_DRAIN_TIMEOUT_MS);
  assert_int_equal(l.own_ms, 500);
  /* The defaults pass the checks between fields. */
  char msg[256];
  assert_int_equal(tn_limits_check(&l.common, msg, sizeof(msg)), TN_OK);
}

static void test_set(void **state)
{
  struct prog_limits l;
  char msg[256];

  (void)state;
  tn_limits_default(&l, &own);
  assert_int_equal(tn_limits_set(&l, &own, "MaxWindow", 1, 1048576, "1048576", msg, sizeof(msg)), TN_OK);
  assert_int_equal(l.common.max_window, 1048576);
  assert_int_equal(tn_limits_set(&l, &own, "OwnMs", 1, 10, "10", msg, sizeof(msg)), TN_OK);
  assert_int_equal(l.own_ms, 10);
  assert_int_equal(tn_limits_set(&l, &own, "OwnMs", 1, 9, "9", msg, sizeof(msg)), TN_ERR_INVALID);
  assert_string_equal(msg, "\"Limits.OwnMs\": must be an integer 10-1000, got 9");
  assert_int_equal(tn_limits_set(&l, &own, "DrainTimeoutMs", 0, 0, "\"5\"", msg, sizeof(msg)), TN_ERR_INVALID);
  assert_string_equal(msg, "\"Limits.DrainTimeoutMs\": must be an integer 0-3600000, got \"5\"");
  assert_int_equal(tn_limits_set(&l, &own, "maxwindow", 1, 1, "1", msg, sizeof(msg)), TN_ERR_INVALID);
  assert_string_equal(msg, "\"Limits.maxwindow\": unknown key (did you mean \"MaxWindow\"?)");
  assert_int_equal(tn_limits_set(&l, &own, "ownms", 1, 1, "1", msg, sizeof(msg)), TN_ERR_INVALID);
  assert_string_equal(msg, "\"Limits.ownms\": unknown key (did you mean \"OwnMs\"?)");
  assert_int_equal(tn_limits_set(&l, &own, "Nope", 1, 1, "1", msg, sizeof(msg)), TN_ERR_INVALID);
  assert_string_equal(msg, "\"Limits.Nope\": unknown key");
}

static void test_check(void **state)
{
  struct tn_limits l;
  char msg[256];

  (void)state;
  tn_limits_default(&l, NULL);
  l.keepalive_interval_ms = 5000;
  l.dead_peer_timeout_ms = 5000;
  assert_int_equal(tn_limits_check(&l, msg, sizeof(msg)), TN_ERR_INVALID);
  assert_string_equal(msg, "\"Limits.DeadPeerTimeoutMs\": must be greater than KeepaliveIntervalMs (5000), got 5000");
  tn_limits_default(&l, NULL);
  l.pipe_high_water = 8192;
  l.pipe_low_water = 8192;
  assert_int_equal(tn_limits_check(&l, msg, sizeof(msg)), TN_ERR_INVALID);
  assert_string_equal(msg, "\"Limits.PipeLowWater\": must be less than PipeHighWater (8192), got 8192");
}

/* Each limit reaches the option of the code it governs. */
static void test_options(void **state)
{
  struct tn_limits l = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };
  struct tn_link_options lo;
  struct tn_pipe_options po;

  (void)state;
  memset(&lo, 0, sizeof(lo));
  memset(&po, 0, sizeof(po));
  tn_limits_link_options(&l, &lo);
  tn_limits_pipe_options(&l, &po);
  assert_int_equal(lo.handshake_timeout_ms, 1);
  assert_int_equal(lo.mux.keepalive_interval_ms, 2);
  assert_int_equal(lo.mux.dead_peer_timeout_ms, 3);
  assert_int_equal(lo.mux.open_timeout_ms, 4);
  assert_int_equal(lo.mux.max_streams, 5);
  assert_int_equal(lo.mux.max_window, 6);
  assert_int_equal(lo.mux.max_frame_payload, 7);
  assert_int_equal(lo.mux.max_output_buffer, 8);
  assert_int_equal(po.high_water, 9);
  assert_int_equal(po.low_water, 10);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_defaults),
    cmocka_unit_test(test_set),
    cmocka_unit_test(test_check),
    cmocka_unit_test(test_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
