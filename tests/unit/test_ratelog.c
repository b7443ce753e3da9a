/* test_ratelog.c: rate-limited log lines: first event at once, then one count per interval, bounded across sources. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tunnel/log.h"
#include "tunnel/ratelog.h"

static char g_path[64];
static int g_saved_stderr = -1;

/* Log lines go to stderr: send them to a file the test reads back. */
static int capture(void **state)
{
  int fd;

  (void)state;
  snprintf(g_path, sizeof(g_path), "/tmp/test_ratelog.XXXXXX");
  fd = mkstemp(g_path);
  if (fd < 0)
    return -1;
  fflush(stderr);
  g_saved_stderr = dup(2);
  dup2(fd, 2);
  close(fd);
  tn_log_init("test", TN_LOG_INFO);
  return 0;
}

static int release(void **state)
{
  (void)state;
  fflush(stderr);
  dup2(g_saved_stderr, 2);
  close(g_saved_stderr);
  unlink(g_path);
  return 0;
}

/* Lines written since the last call that contain needle (NULL: every line). */
static int lines(const char *needle)
{
  static long offset;
  char buf[1024];
  int n = 0;
  FILE *f;

  fflush(stderr);
  f = fopen(g_path, "r");
  assert_non_null(f);
  fseek(f, offset, SEEK_SET);
  while (fgets(buf, sizeof(buf), f) != NULL)
    if (needle == NULL || strstr(buf, needle) != NULL)
      n++;
  offset = ftell(f);
  fclose(f);
  return n;
}

static void test_first_then_counts(void **state)
{
  tn_ratelog *rl = tn_ratelog_new(16);
  (void)state;
  lines(NULL);
  assert_int_equal(tn_ratelog_event(rl, 1000, 10000, TN_LOG_WARN, "control: refused", "192.0.2.1", "event %d", 0), 1);
  for (int i = 1; i < 2000; i++)
    assert_int_equal(tn_ratelog_event(rl, 1000 + (uint64_t)i, 10000, TN_LOG_WARN, "control: refused", "192.0.2.1",
                                "event %d", i), 0);
  tn_ratelog_flush(rl, 5000);
  assert_int_equal(lines(NULL), 1);
  /* One summary per interval while it lasts, with the count and the last line. */
  tn_ratelog_flush(rl, 11000);
  assert_int_equal(lines("control: refused (192.0.2.1): 1999 more in the last 10 s; last: event 1999"), 1);
  tn_ratelog_event(rl, 12000, 10000, TN_LOG_WARN, "control: refused", "192.0.2.1", "event late");
  tn_ratelog_flush(rl, 15000);
  assert_int_equal(lines(NULL), 0);
  tn_ratelog_flush(rl, 21000);
  assert_int_equal(lines("1 more in the last 10 s; last: event late"), 1);
  /* Quiet for an interval: forgotten, and the next event is logged at once. */
  tn_ratelog_flush(rl, 31000);
  assert_int_equal(lines(NULL), 0);
  assert_int_equal(tn_ratelog_event(rl, 32000, 10000, TN_LOG_WARN, "control: refused", "192.0.2.1", "again"), 1);
  assert_int_equal(lines("again"), 1);
  tn_ratelog_free(rl, 33000);
  assert_int_equal(lines(NULL), 0);
}

static void test_sources_and_kinds_apart(void **state)
{
  tn_ratelog *rl = tn_ratelog_new(16);
  (void)state;
  lines(NULL);
  assert_int_equal(tn_ratelog_event(rl, 1, 10000, TN_LOG_WARN, "a", "192.0.2.1", "a1"), 1);
  assert_int_equal(tn_ratelog_event(rl, 2, 10000, TN_LOG_WARN, "a", "192.0.2.2", "a2"), 1);
  assert_int_equal(tn_ratelog_event(rl, 3, 10000, TN_LOG_WARN, "b", "192.0.2.1", "b1"), 1);
  assert_int_equal(tn_ratelog_event(rl, 4, 10000, TN_LOG_WARN, "a", "192.0.2.1", "a1 again"), 0);
  assert_int_equal(lines(NULL), 3);
  /* A pending count is written at shutdown. */
  tn_ratelog_free(rl, 5);
  assert_int_equal(lines("a (192.0.2.1): 1 more"), 1);
}

/* Thousands of sources cannot buy thousands of lines: beyond the table they share one summary. */
static void test_many_sources_bounded(void **state)
{
  tn_ratelog *rl = tn_ratelog_new(8);
  char src[32];
  (void)state;
  lines(NULL);
  for (int i = 0; i < 5000; i++) {
    snprintf(src, sizeof(src), "10.0.%d.%d", i / 256, i % 256);
    tn_ratelog_event(rl, 100 + (uint64_t)i, 10000, TN_LOG_WARN, "control: refused", src, "from %s", src);
  }
  tn_ratelog_flush(rl, 20000);
  assert_int_equal(lines(NULL), 8 + 1);
  tn_ratelog_free(rl, 20001);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_first_then_counts),
    cmocka_unit_test(test_sources_and_kinds_apart),
    cmocka_unit_test(test_many_sources_bounded),
  };

  return cmocka_run_group_tests(tests, capture, release);
}
