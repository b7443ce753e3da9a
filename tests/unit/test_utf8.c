/* test_utf8.c: the characters that do not show as themselves, and how names holding them are shown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "tunnel/utf8.h"

static void test_invisible(void **state)
{
  (void)state;
  static const uint32_t yes[] = {
    0x00, 0x1f, 0x7f, 0x85, 0x9f, 0xa0, 0xad, 0x34f, 0x600, 0x61c, 0x6dd, 0x70f, 0x115f, 0x180e, 0x2000, 0x200a,
    0x200b, 0x200c, 0x200d, 0x200e, 0x200f, 0x2028, 0x2029, 0x202a, 0x202e, 0x202f, 0x205f, 0x2060, 0x2064, 0x2066,
    0x2067, 0x2068, 0x2069, 0x206f, 0x3000, 0x3164, 0xfdd0, 0xfe0f, 0xfeff, 0xffa0, 0xfff0, 0xfff9, 0xfffb, 0xfffc,
    0xfffd, 0xfffe, 0xffff, 0x1fffe, 0x10ffff, 0x110bd, 0x1d173, 0xe0001, 0xe007f, 0xe0100,
  };
  static const uint32_t no[] = {
    ' ', '!', 'a', '~', 0xa1, 0xe9, 0x20ac, 0x2010, 0x2030, 0x4e2d, 0xfb01, 0xffef, 0x1f511, 0x10000, 0x1d172,
  };
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
    if (!tn_utf8_is_invisible(yes[i]))
      fail_msg("U+%04X should be invisible", (unsigned)yes[i]);
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
    if (tn_utf8_is_invisible(no[i]))
      fail_msg("U+%04X should show", (unsigned)no[i]);
}

static void test_escape(void **state)
{
  (void)state;
  static const struct {
    const char *in;
    size_t len; /* 0: strlen */
    const char *out;
  } cases[] = {
    { "home1", 0, "home1" },
    { "caf\xc3\xa9", 0, "caf\xc3\xa9" },
    { "home1\xe2\x80\xaegnp.exe", 0, "home1\\u{202e}gnp.exe" },
    { "\xe2\x81\xa6x\xe2\x81\xa9", 0, "\\u{2066}x\\u{2069}" },
    { "a\x1b[31m", 0, "a\\u{1b}[31m" },
    { "a\xc2\x85", 0, "a\\u{85}" },
    { "a\0b", 3, "a\\u{0}b" },
    { "h\xffme", 0, "h\\xffme" },
    { "\xc3", 0, "\\xc3" },
    { "\xed\xa0\x80", 0, "\\xed\\xa0\\x80" },
    { "a\\u{202e}", 0, "a\\\\u{202e}" },
    { "\xf3\xa0\x80\x81", 0, "\\u{e0001}" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char out[64];
    size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
    size_t n = tn_utf8_escape(cases[i].in, len, out, sizeof out);
    if (strcmp(out, cases[i].out) != 0)
      fail_msg("case %zu: \"%s\" != \"%s\"", i, out, cases[i].out);
    assert_int_equal(n, strlen(out));
  }
  /* An item that does not fit is left out whole: never half an escape or half a character. */
  char small[8];
  assert_int_equal(tn_utf8_escape("ab\xe2\x80\xae", 5, small, sizeof small), 2);
  assert_string_equal(small, "ab");
  assert_int_equal(tn_utf8_escape("abc\xc3\xa9xyz", 8, small, 5), 3);
  assert_string_equal(small, "abc");
  assert_int_equal(tn_utf8_escape("abc", 3, small, 0), 0);
}

static void test_sanitize(void **state)
{
  (void)state;
  char s[] = "a\xe2\x80\xae" "b\x01\xff\xc3\xa9";
  assert_int_equal(tn_utf8_sanitize(s, strlen(s)), 5);
  assert_string_equal(s, "a???b??\xc3\xa9");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_invisible),
    cmocka_unit_test(test_escape),
    cmocka_unit_test(test_sanitize),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
