/* test_tc_backoff.c: tunnelc's reconnect delays: doubling, cap, jitter bounds and reset by a stable link. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "backoff.h"
#include "tunnel/defaults.h"

/* The draw that lands exactly on the un-jittered delay: the middle of [0, span). */
#define MID 0x80000000u

static void init_defaults(struct tc_backoff *b)
{
  tc_backoff_init(b, TN_DEFAULT_RECONNECT_MIN_MS, TN_DEFAULT_RECONNECT_MAX_MS, TN_DEFAULT_RECONNECT_JITTER_PERCENT,
                  TN_DEFAULT_RECONNECT_RESET_AFTER_MS);
}

static void test_sequence_and_cap(void **state)
{
  static const uint32_t want[] = { 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000 };
  struct tc_backoff b;
  uint64_t now = 1000;

  (void)state;
  init_defaults(&b);
  assert_int_equal(tc_backoff_failures(&b), 0);
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    uint32_t d = tc_backoff_link_down(&b, now, MID);

    assert_int_equal(d, want[i]);
    assert_int_equal(tc_backoff_failures(&b), i + 1);
    now += d;
  }
  /* Stays at the cap for as long as it keeps failing. */
  for (int i = 0; i < 1000; i++)
    assert_int_equal(tc_backoff_link_down(&b, now, MID), 30000);
}

static void test_jitter_extremes(void **state)
{
  struct tc_backoff b;

  (void)state;
  init_defaults(&b);
  /* The smallest and largest draws give exactly -20% and +20%. */
  assert_int_equal(tc_backoff_link_down(&b, 0, 0), 400);
  assert_int_equal(tc_backoff_link_down(&b, 0, UINT32_MAX), 1200);
  assert_int_equal(tc_backoff_link_down(&b, 0, 0), 1600);
  for (int i = 0; i < 10; i++)
    tc_backoff_link_down(&b, 0, MID);
  assert_int_equal(tc_backoff_link_down(&b, 0, 0), 24000);
  assert_int_equal(tc_backoff_link_down(&b, 0, UINT32_MAX), 36000);
}

/* xorshift32: a fixed, reproducible stream of draws. */
static uint32_t next_random(uint32_t *s)
{
  uint32_t x = *s;

  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *s = x;
  return x;
}

static void test_jitter_bounds_many_draws(void **state)
{
  struct tc_backoff b;
  uint32_t seed = 0x12345678u;
  uint32_t lo = UINT32_MAX, hi = 0;
  uint64_t sum = 0;
  const int draws = 200000;

  (void)state;
  init_defaults(&b);
  for (int i = 0; i < 10; i++)
    tc_backoff_link_down(&b, 0, MID);
  for (int i = 0; i < draws; i++) {
    uint32_t d = tc_backoff_link_down(&b, 0, next_random(&seed));

    assert_in_range(d, 24000, 36000);
    lo = d < lo ? d : lo;
    hi = d > hi ? d : hi;
    sum += d;
  }
  /* The whole band is used, and it is centred on the cap. */
  assert_in_range(lo, 24000, 24100);
  assert_in_range(hi, 35900, 36000);
  assert_in_range(sum / (uint64_t)draws, 29900, 30100);

  /* Every step of the ladder stays within +-20% of its base. */
  for (int round = 0; round < 2000; round++) {
    uint32_t base = 500;

    tc_backoff_reset(&b);
    for (int step = 0; step < 8; step++) {
      uint32_t d = tc_backoff_link_down(&b, 0, next_random(&seed));

      assert_in_range(d, base - base / 5, base + base / 5);
      base = base * 2 > 30000 ? 30000 : base * 2;
    }
  }
}

static void test_reset_after_stable_link(void **state)
{
  struct tc_backoff b;
  uint64_t now = 5000;

  (void)state;
  init_defaults(&b);
  for (int i = 0; i < 5; i++)
    now += tc_backoff_link_down(&b, now, MID);
  assert_int_equal(tc_backoff_failures(&b), 5);
  tc_backoff_link_up(&b, now);
  /* Up for exactly 30 s counts as stable: the ladder starts again. */
  now += 30000;
  assert_int_equal(tc_backoff_link_down(&b, now, MID), 500);
  assert_int_equal(tc_backoff_failures(&b), 1);
  assert_int_equal(tc_backoff_link_down(&b, now, MID), 1000);

  /* Hours later it is still a reset. */
  tc_backoff_link_up(&b, now);
  now += 7ull * 24 * 3600 * 1000;
  assert_int_equal(tc_backoff_link_down(&b, now, MID), 500);
}

static void test_no_reset_when_link_dies_sooner(void **state)
{
  struct tc_backoff b;
  uint64_t now = 0;

  (void)state;
  init_defaults(&b);
  assert_int_equal(tc_backoff_link_down(&b, now, MID), 500);
  assert_int_equal(tc_backoff_link_down(&b, now, MID), 1000);
  /* A server that accepts and then drops us at once must not reset the ladder. */
  for (uint32_t want = 2000; want <= 16000; want *= 2) {
    tc_backoff_link_up(&b, now);
    now += 29999;
    assert_int_equal(tc_backoff_link_down(&b, now, MID), want);
  }
  tc_backoff_link_up(&b, now);
  now += 10;
  assert_int_equal(tc_backoff_link_down(&b, now, MID), 30000);
  assert_int_equal(tc_backoff_failures(&b), 7);

  /* A link_up whose clock value is later than the down (a clock step) is not stable either. */
  tc_backoff_link_up(&b, now + 100000);
  assert_int_equal(tc_backoff_link_down(&b, now, MID), 30000);
}

static void test_stale_up_does_not_count_twice(void **state)
{
  struct tc_backoff b;

  (void)state;
  init_defaults(&b);
  tc_backoff_link_up(&b, 0);
  assert_int_equal(tc_backoff_link_down(&b, 1000, MID), 500);
  /* Attempts that fail without coming up are judged without the old link_up. */
  assert_int_equal(tc_backoff_link_down(&b, 100000, MID), 1000);
  assert_int_equal(tc_backoff_link_down(&b, 200000, MID), 2000);
}

static void test_explicit_reset(void **state)
{
  struct tc_backoff b;

  (void)state;
  init_defaults(&b);
  for (int i = 0; i < 6; i++)
    tc_backoff_link_down(&b, 0, MID);
  tc_backoff_reset(&b);
  assert_int_equal(tc_backoff_failures(&b), 0);
  assert_int_equal(tc_backoff_link_down(&b, 0, MID), 500);
}

static void test_parameters(void **state)
{
  struct tc_backoff b;

  (void)state;
  /* No jitter: exact doubling, and a cap that is not a power-of-two multiple of min. */
  tc_backoff_init(&b, 100, 1000, 0, 5000);
  assert_int_equal(tc_backoff_link_down(&b, 0, 0), 100);
  assert_int_equal(tc_backoff_link_down(&b, 0, UINT32_MAX), 200);
  assert_int_equal(tc_backoff_link_down(&b, 0, 12345), 400);
  assert_int_equal(tc_backoff_link_down(&b, 0, 0), 800);
  assert_int_equal(tc_backoff_link_down(&b, 0, 0), 1000);
  assert_int_equal(tc_backoff_link_down(&b, 0, 0), 1000);

  /* min == max: a constant delay. */
  tc_backoff_init(&b, 2000, 2000, 0, 0);
  for (int i = 0; i < 5; i++)
    assert_int_equal(tc_backoff_link_down(&b, 0, MID), 2000);

  /* reset_after 0: any link that came up resets the ladder. */
  tc_backoff_init(&b, 100, 1000, 0, 0);
  tc_backoff_link_down(&b, 0, 0);
  tc_backoff_link_down(&b, 0, 0);
  tc_backoff_link_up(&b, 50);
  assert_int_equal(tc_backoff_link_down(&b, 50, 0), 100);

  /* Nonsense parameters are repaired rather than spinning or overflowing. */
  tc_backoff_init(&b, 0, 0, 500, 0);
  assert_int_equal(b.min_ms, 1);
  assert_int_equal(b.max_ms, 1);
  assert_int_equal(b.jitter_percent, 100);
  assert_in_range(tc_backoff_link_down(&b, 0, UINT32_MAX), 0, 2);
  tc_backoff_init(&b, 5000, 100, 20, 0);
  assert_int_equal(b.max_ms, 5000);
  assert_int_equal(tc_backoff_link_down(&b, 0, MID), 5000);
  assert_int_equal(tc_backoff_link_down(&b, 0, MID), 5000);

  /* The largest values do not overflow. */
  tc_backoff_init(&b, UINT32_MAX / 2, UINT32_MAX, 100, 0);
  for (int i = 0; i < 4; i++)
    assert_true(tc_backoff_link_down(&b, 0, UINT32_MAX) >= UINT32_MAX / 2);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sequence_and_cap),
    cmocka_unit_test(test_jitter_extremes),
    cmocka_unit_test(test_jitter_bounds_many_draws),
    cmocka_unit_test(test_reset_after_stable_link),
    cmocka_unit_test(test_no_reset_when_link_dies_sooner),
    cmocka_unit_test(test_stale_up_does_not_count_twice),
    cmocka_unit_test(test_explicit_reset),
    cmocka_unit_test(test_parameters),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
