/* test_control.c: the control-message codec (allow-list announcement), whole and byte by byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tunnel/control.h"
#include "tunnel/error.h"

/* The example of docs/PROTOCOL.md 8a.2: ports 8080 and 8443, service "web". */
static const uint8_t example[] = {
  0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14,
  0x00, 0x02, 0x1f, 0x90, 0x20, 0xfb,
  0x00, 0x01, 0x03, 'w', 'e', 'b',
};

static struct tn_ctl_allow *new_allow(void)
{
  struct tn_ctl_allow *a = calloc(1, sizeof(*a));
  assert_non_null(a);
  return a;
}

static void test_example_encodes(void **state)
{
  uint16_t ports[] = { 8080, 8443 };
  const char *names[] = { "web" };
  uint8_t out[64];

  (void)state;
  assert_int_equal(tn_ctl_allow_encode(ports, 2, names, 1, out, sizeof(out)), sizeof(example));
  assert_memory_equal(out, example, sizeof(example));
}

static void test_round_trip_and_prefixes(void **state)
{
  uint16_t ports[] = { 1, 22, 8080, 65535 };
  const char *names[] = { "a", "ab", "db.lan", "web_1-x" };
  uint8_t out[256];
  struct tn_ctl_allow *a = new_allow();
  size_t n;

  (void)state;
  n = tn_ctl_allow_encode(ports, 4, names, 4, out, sizeof(out));
  assert_true(n > 0);
  assert_int_equal(tn_ctl_allow_decode(a, out, n), (int)n);
  assert_int_equal(a->n_ports, 4);
  assert_int_equal(a->n_names, 4);
  assert_true(tn_ctl_allow_has_port(a, 8080));
  assert_false(tn_ctl_allow_has_port(a, 8443));
  assert_true(tn_ctl_allow_has_name(a, "db.lan"));
  assert_false(tn_ctl_allow_has_name(a, "db"));
  /* Every true prefix asks for more; spare bytes after the message are not consumed. */
  for (size_t cut = 0; cut < n; cut++)
    assert_int_equal(tn_ctl_allow_decode(a, out, cut), TN_ERR_NEED_MORE);
  out[n] = 0xff;
  assert_int_equal(tn_ctl_allow_decode(a, out, n + 1), (int)n);
  free(a);
}

static void test_empty_list(void **state)
{
  uint8_t out[16];
  struct tn_ctl_allow *a = new_allow();

  (void)state;
  assert_int_equal(tn_ctl_allow_encode(NULL, 0, NULL, 0, out, sizeof(out)), 12);
  assert_int_equal(tn_ctl_allow_decode(a, out, 12), 12);
  assert_int_equal(a->n_ports + a->n_names, 0);
  free(a);
}

static void test_encode_rejects(void **state)
{
  uint16_t unsorted[] = { 8443, 8080 }, dup[] = { 80, 80 }, zero[] = { 0 };
  const char *bad_char[] = { "we b" }, *unsorted_names[] = { "web", "api" }, *empty[] = { "" };
  static uint16_t many[TN_CTL_MAX_PORTS + 1];
  uint8_t out[64];

  (void)state;
  assert_int_equal(tn_ctl_allow_encode(unsorted, 2, NULL, 0, out, sizeof(out)), 0);
  assert_int_equal(tn_ctl_allow_encode(dup, 2, NULL, 0, out, sizeof(out)), 0);
  assert_int_equal(tn_ctl_allow_encode(zero, 1, NULL, 0, out, sizeof(out)), 0);
  assert_int_equal(tn_ctl_allow_encode(NULL, 0, bad_char, 1, out, sizeof(out)), 0);
  assert_int_equal(tn_ctl_allow_encode(NULL, 0, unsorted_names, 2, out, sizeof(out)), 0);
  assert_int_equal(tn_ctl_allow_encode(NULL, 0, empty, 1, out, sizeof(out)), 0);
  assert_int_equal(tn_ctl_allow_encode(many, TN_CTL_MAX_PORTS + 1, NULL, 0, out, sizeof(out)), 0);
  assert_int_equal(tn_ctl_allow_encode(unsorted, 1, NULL, 0, out, 13), 0);  /* one byte short */
}

/* Each case: the example with one byte changed, and what the decoder must say. */
static void test_decode_rejects(void **state)
{
  /* at2 == 0: one byte changed (byte 0 is never the second one). */
  static const struct { size_t at; uint8_t value; size_t at2; uint8_t value2; int want; } cases[] = {
    { 0, 0x00, 0, 0, TN_ERR_INVALID },        /* version 0 */
    { 0, 0x02, 0, 0, TN_ERR_UNSUPPORTED },    /* a later version */
    { 1, 0x07, 0, 0, TN_ERR_UNSUPPORTED },    /* an unknown type */
    { 2, 0x01, 0, 0, TN_ERR_INVALID },        /* reserved */
    { 7, 0x07, 0, 0, TN_ERR_INVALID },        /* total length below the head */
    { 7, 0x15, 0, 0, TN_ERR_INVALID },        /* total length past the fields: a spare byte */
    { 7, 0x13, 0, 0, TN_ERR_INVALID },        /* total length cuts the last name */
    { 5, 0x10, 0, 0, TN_ERR_INVALID },        /* total length over TN_CTL_MAX_LEN */
    { 9, 0x03, 0, 0, TN_ERR_INVALID },        /* port count reads the name count as a port */
    { 8, 0x20, 9, 0x01, TN_ERR_INVALID },     /* more ports than TN_CTL_MAX_PORTS */
    { 10, 0x00, 11, 0x00, TN_ERR_INVALID },   /* port 0 */
    { 12, 0x1f, 13, 0x8f, TN_ERR_INVALID },   /* ports not ascending (8079 after 8080) */
    { 12, 0x1f, 13, 0x90, TN_ERR_INVALID },   /* the same port twice */
    { 14, 0x02, 15, 0x01, TN_ERR_INVALID },   /* more names than TN_CTL_MAX_NAMES */
    { 16, 0x00, 0, 0, TN_ERR_INVALID },       /* empty name */
    { 18, ' ', 0, 0, TN_ERR_INVALID },        /* a byte outside [A-Za-z0-9._-] */
    { 18, 0x00, 0, 0, TN_ERR_INVALID },       /* NUL inside a name */
  };
  struct tn_ctl_allow *a = new_allow();
  uint8_t buf[sizeof(example)];

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    memcpy(buf, example, sizeof(buf));
    buf[cases[i].at] = cases[i].value;
    if (cases[i].at2 != 0)
      buf[cases[i].at2] = cases[i].value2;
    assert_int_equal(tn_ctl_allow_decode(a, buf, sizeof(buf)), cases[i].want);
  }
  free(a);
}

/* Garbage fails as soon as the offending byte is in, not when the whole message is. */
static void test_garbage_fails_early(void **state)
{
  struct tn_ctl_allow *a = new_allow();
  uint8_t buf[sizeof(example)];

  (void)state;
  memcpy(buf, example, sizeof(buf));
  buf[2] = 0x01;
  assert_int_equal(tn_ctl_allow_decode(a, buf, 3), TN_ERR_INVALID);
  memcpy(buf, example, sizeof(buf));
  buf[17] = '/';
  assert_int_equal(tn_ctl_allow_decode(a, buf, 18), TN_ERR_INVALID);
  free(a);
}

static void test_names_sorted_by_bytes(void **state)
{
  /* "web" < "web-1" < "webx": a shorter prefix sorts first, as strcmp says. */
  const char *names[] = { "web", "web-1", "webx" };
  uint8_t out[64];
  struct tn_ctl_allow *a = new_allow();
  size_t n;

  (void)state;
  n = tn_ctl_allow_encode(NULL, 0, names, 3, out, sizeof(out));
  assert_int_equal(tn_ctl_allow_decode(a, out, n), (int)n);
  /* Hand-made wrong order must be refused by the decoder too. */
  out[12] = 5;
  memcpy(out + 13, "web-1", 5);
  out[18] = 3;
  memcpy(out + 19, "web", 3);
  assert_int_equal(tn_ctl_allow_decode(a, out, n), TN_ERR_INVALID);
  free(a);
}

static void test_largest_fits_initial_window(void **state)
{
  static uint16_t ports[TN_CTL_MAX_PORTS];
  static char store[TN_CTL_MAX_NAMES][TN_CTL_MAX_NAME + 1];
  static const char *names[TN_CTL_MAX_NAMES];
  static uint8_t out[TN_CTL_MAX_LEN];
  struct tn_ctl_allow *a = new_allow();
  size_t n;

  (void)state;
  for (size_t i = 0; i < TN_CTL_MAX_PORTS; i++)
    ports[i] = (uint16_t)(i + 1);
  for (size_t i = 0; i < TN_CTL_MAX_NAMES; i++) {
    memset(store[i], 'a', TN_CTL_MAX_NAME);
    store[i][TN_CTL_MAX_NAME - 3] = (char)('a' + i / 26 / 26 % 26);
    store[i][TN_CTL_MAX_NAME - 2] = (char)('a' + i / 26 % 26);
    store[i][TN_CTL_MAX_NAME - 1] = (char)('a' + i % 26);
    names[i] = store[i];
  }
  n = tn_ctl_allow_encode(ports, TN_CTL_MAX_PORTS, names, TN_CTL_MAX_NAMES, out, sizeof(out));
  assert_true(n > 0 && n <= TN_CTL_MAX_LEN);
  assert_int_equal(tn_ctl_allow_decode(a, out, n), (int)n);
  assert_int_equal(a->n_names, TN_CTL_MAX_NAMES);
  free(a);
}

static void test_rotate(void **state)
{
  uint8_t sha[32], got[32], out[TN_CTL_ROTATE_LEN + 1];

  (void)state;
  for (int i = 0; i < 32; i++)
    sha[i] = (uint8_t)(0xa0 + i);
  assert_int_equal(tn_ctl_rotate_encode(sha, out, TN_CTL_ROTATE_LEN - 1), 0);
  assert_int_equal(tn_ctl_rotate_encode(sha, out, sizeof(out)), TN_CTL_ROTATE_LEN);
  assert_memory_equal(out, "\x01\x02\x00\x00\x00\x00\x00\x28", 8);
  assert_int_equal(tn_ctl_rotate_decode(got, out, TN_CTL_ROTATE_LEN), TN_CTL_ROTATE_LEN);
  assert_memory_equal(got, sha, 32);
  for (size_t cut = 0; cut < TN_CTL_ROTATE_LEN; cut++)
    assert_int_equal(tn_ctl_rotate_decode(got, out, cut), TN_ERR_NEED_MORE);
  out[7] = 0x29;  /* a spare byte: not a rotation message */
  assert_int_equal(tn_ctl_rotate_decode(got, out, TN_CTL_ROTATE_LEN), TN_ERR_INVALID);
  out[7] = 0x28;
  out[1] = TN_CTL_ALLOW;
  assert_int_equal(tn_ctl_rotate_decode(got, out, TN_CTL_ROTATE_LEN), TN_ERR_UNSUPPORTED);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_example_encodes),
    cmocka_unit_test(test_round_trip_and_prefixes),
    cmocka_unit_test(test_empty_list),
    cmocka_unit_test(test_encode_rejects),
    cmocka_unit_test(test_decode_rejects),
    cmocka_unit_test(test_garbage_fails_early),
    cmocka_unit_test(test_names_sorted_by_bytes),
    cmocka_unit_test(test_largest_fits_initial_window),
    cmocka_unit_test(test_rotate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
