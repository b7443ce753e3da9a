/* test_td_metrics.c: Prometheus label values are escaped per the text format and always valid UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"
#include "tunnel/error.h"

static void expect_label(const char *in, const char *want)
{
  struct td_buf b;

  td_buf_init(&b, 4096);
  assert_int_equal(td_metrics_label(&b, in), TN_OK);
  assert_int_equal(b.len, strlen(want));
  assert_memory_equal(b.data, want, b.len);
  td_buf_free(&b);
}

static void test_label_escaping(void **state)
{
  (void)state;
  expect_label("home1", "home1");
  expect_label("", "");
  expect_label("a\"b", "a\\\"b");
  expect_label("a\\b", "a\\\\b");
  expect_label("a\nb", "a\\nb");
  expect_label("\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9");
  expect_label("h\xffme", "h?me");            /* invalid UTF-8 */
  expect_label("a\x01" "b\x7f", "a?b?");      /* control bytes */
  expect_label("a\xc2\x85" "b", "a?b");       /* C1 control: one character, one '?' */
  expect_label("\xe2\x82", "??");             /* cut short */
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_label_escaping),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
