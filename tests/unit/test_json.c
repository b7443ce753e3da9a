/* test_json.c: tn_json_describe and tn_json_quote, the one way both programs show a bad configuration value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tunnel/json.h"

static void expect_describe(const char *json, const char *want)
{
  json_error_t jerr;
  json_t *v = json_loads(json, JSON_DECODE_ANY, &jerr);
  char got[TN_JSON_DESC_LEN];

  assert_non_null(v);
  tn_json_describe(got, sizeof(got), v);
  assert_string_equal(got, want);
  json_decref(v);
}

static void test_describe(void **state)
{
  (void)state;
  expect_describe("\"abc\"", "\"abc\"");
  expect_describe("80", "80");
  expect_describe("-3", "-3");
  /* A real that is a whole number keeps its ".0": "must be an integer, got 80" would make no sense. */
  expect_describe("80.0", "80.0");
  expect_describe("1.5", "1.5");
  expect_describe("true", "true");
  expect_describe("false", "false");
  expect_describe("null", "null");
  /* Containers in words, never as JSON text cut at some length. */
  expect_describe("{\"a\": 1}", "an object");
  expect_describe("{}", "an empty object");
  expect_describe("[1, 2]", "an array");
  expect_describe("[]", "an empty array");
}

static void test_quote(void **state)
{
  char out[TN_JSON_DESC_LEN], in[TN_JSON_QUOTE_MAX + 2], want[TN_JSON_DESC_LEN];

  (void)state;
  tn_json_quote(out, sizeof(out), "a\"b\\c");
  assert_string_equal(out, "\"a\\\"b\\\\c\"");
  /* Control bytes cannot forge a log line. */
  tn_json_quote(out, sizeof(out), "x\ny\x7f");
  assert_string_equal(out, "\"x\\x0ay\\x7f\"");
  /* Exactly TN_JSON_QUOTE_MAX bytes are shown whole; one more is cut with "..." inside the quotes. */
  memset(in, 'z', TN_JSON_QUOTE_MAX);
  in[TN_JSON_QUOTE_MAX] = '\0';
  tn_json_quote(out, sizeof(out), in);
  snprintf(want, sizeof(want), "\"%s\"", in);
  assert_string_equal(out, want);
  in[TN_JSON_QUOTE_MAX] = 'z';
  in[TN_JSON_QUOTE_MAX + 1] = '\0';
  tn_json_quote(out, sizeof(out), in);
  snprintf(want, sizeof(want), "\"%.*s...\"", TN_JSON_QUOTE_MAX, in);
  assert_string_equal(out, want);
  /* Every byte escaped still fits TN_JSON_DESC_LEN. */
  memset(in, '\x01', TN_JSON_QUOTE_MAX + 1);
  tn_json_quote(out, sizeof(out), in);
  assert_int_equal(strlen(out), 1 + 4 * TN_JSON_QUOTE_MAX + 3 + 1);
  /* Too small a buffer gives an empty string, never a cut escape. */
  tn_json_quote(out, 7, "abc");
  assert_string_equal(out, "");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_describe),
    cmocka_unit_test(test_quote),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
