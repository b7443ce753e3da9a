/* test_addr.c: socket-free address parsing, formatting and comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "tunnel/addr.h"
#include "tunnel/error.h"

static void test_parse_and_format(void **state)
{
  static const struct {
    const char *text;
    uint16_t port;
    int family;
    const char *formatted;
  } cases[] = {
    { "203.0.113.7", 41234, TN_AF_INET, "203.0.113.7:41234" },
    { "0.0.0.0", 0, TN_AF_INET, "0.0.0.0:0" },
    { "255.255.255.255", 65535, TN_AF_INET, "255.255.255.255:65535" },
    { "::1", 80, TN_AF_INET6, "[::1]:80" },
    { "2001:DB8:0:0:0:0:0:5", 51000, TN_AF_INET6, "[2001:db8::5]:51000" },
    { "::ffff:192.0.2.1", 443, TN_AF_INET6, "[::ffff:192.0.2.1]:443" },
    { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, TN_AF_INET6,
      "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535" },
  };
  char out[TN_ADDR_STRLEN];
  struct tn_addr a;
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    memset(&a, 0, sizeof(a));
    a.port = cases[i].port;
    if (tn_addr_parse_ip(&a, cases[i].text) != TN_OK)
      fail_msg("%s: not parsed", cases[i].text);
    assert_int_equal(a.family, cases[i].family);
    /* Parsing keeps the port the caller set. */
    assert_int_equal(a.port, cases[i].port);
    assert_ptr_equal(tn_addr_format(&a, out, sizeof(out)), out);
    assert_string_equal(out, cases[i].formatted);
    /* The longest form must fit TN_ADDR_STRLEN with room to spare. */
    assert_true(strlen(out) < TN_ADDR_STRLEN);
  }
}

static void test_parse_ipv4_bytes(void **state)
{
  struct tn_addr a;

  memset(&a, 0xff, sizeof(a));
  assert_int_equal(tn_addr_parse_ip(&a, "192.0.2.1"), TN_OK);
  assert_memory_equal(a.ip, "\xc0\x00\x02\x01", 4);
  /* The unused tail of an IPv4 address is zero so whole-struct comparisons work. */
  assert_memory_equal(a.ip + 4, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
  assert_int_equal(tn_addr_parse_ip(&a, "2001:db8::1"), TN_OK);
  assert_memory_equal(a.ip, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
}

static void test_parse_rejects(void **state)
{
  static const char *const bad[] = {
    "", " 1.2.3.4", "1.2.3.4 ", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.04",
    "1.2.3.4:80", "[::1]", "::1%lo", "1:::2", "localhost", "::g", "1.2.3.-1",
  };
  struct tn_addr a, before;
  size_t i;

  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    memset(&a, 0x11, sizeof(a));
    before = a;
    if (tn_addr_parse_ip(&a, bad[i]) != TN_ERR_INVALID)
      fail_msg("\"%s\" accepted", bad[i]);
    if (memcmp(&a, &before, sizeof(a)) != 0)
      fail_msg("\"%s\": failed parse changed the address", bad[i]);
  }
}

static void test_format_unspec_and_small_buffers(void **state)
{
  struct tn_addr a;
  char out[TN_ADDR_STRLEN];
  char tiny[4];

  memset(&a, 0, sizeof(a));
  assert_string_equal(tn_addr_format(&a, out, sizeof(out)), "-");
  assert_int_equal(tn_addr_parse_ip(&a, "203.0.113.7"), TN_OK);
  a.port = 80;
  /* Truncates instead of overflowing, still NUL-terminated. */
  assert_string_equal(tn_addr_format(&a, tiny, sizeof(tiny)), "203");
  tiny[0] = 'x';
  tn_addr_format(&a, tiny, 0);
  assert_int_equal(tiny[0], 'x');
}

static void test_equal(void **state)
{
  struct tn_addr a, b;

  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  assert_true(tn_addr_equal(&a, &b));
  assert_int_equal(tn_addr_parse_ip(&a, "192.0.2.1"), TN_OK);
  assert_int_equal(tn_addr_parse_ip(&b, "192.0.2.1"), TN_OK);
  a.port = b.port = 443;
  assert_true(tn_addr_equal(&a, &b));
  /* Bytes past an IPv4 address do not take part. */
  b.ip[10] = 0x77;
  assert_true(tn_addr_equal(&a, &b));
  b.port = 444;
  assert_false(tn_addr_equal(&a, &b));
  b.port = 443;
  assert_int_equal(tn_addr_parse_ip(&b, "192.0.2.2"), TN_OK);
  assert_false(tn_addr_equal(&a, &b));
  /* An IPv4-mapped IPv6 address is a different address from the IPv4 one. */
  assert_int_equal(tn_addr_parse_ip(&b, "::ffff:192.0.2.1"), TN_OK);
  assert_false(tn_addr_equal(&a, &b));
  assert_int_equal(tn_addr_parse_ip(&a, "2001:db8::1"), TN_OK);
  assert_int_equal(tn_addr_parse_ip(&b, "2001:db8::1"), TN_OK);
  assert_true(tn_addr_equal(&a, &b));
  b.ip[15] = 2;
  assert_false(tn_addr_equal(&a, &b));
}

static void test_from_sockaddr(void **state)
{
  struct sockaddr_in in4;
  struct sockaddr_in6 in6;
  struct sockaddr_un un;
  struct tn_addr a, want;

  memset(&in4, 0, sizeof(in4));
  in4.sin_family = AF_INET;
  in4.sin_port = htons(41234);
  assert_int_equal(inet_pton(AF_INET, "203.0.113.7", &in4.sin_addr), 1);
  memset(&a, 0xee, sizeof(a));
  tn_addr_from_sockaddr(&a, (const struct sockaddr *)&in4);
  memset(&want, 0, sizeof(want));
  assert_int_equal(tn_addr_parse_ip(&want, "203.0.113.7"), TN_OK);
  want.port = 41234;
  assert_true(tn_addr_equal(&a, &want));

  memset(&in6, 0, sizeof(in6));
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(51000);
  assert_int_equal(inet_pton(AF_INET6, "2001:db8::5", &in6.sin6_addr), 1);
  tn_addr_from_sockaddr(&a, (const struct sockaddr *)&in6);
  assert_int_equal(tn_addr_parse_ip(&want, "2001:db8::5"), TN_OK);
  want.port = 51000;
  assert_true(tn_addr_equal(&a, &want));

  /*
   * A dual-stack listener sees IPv4 users as ::ffff:a.b.c.d; they come out as IPv4 so a
   * PROXY header can pair them with an IPv4 listener address.
   */
  assert_int_equal(inet_pton(AF_INET6, "::ffff:198.51.100.9", &in6.sin6_addr), 1);
  tn_addr_from_sockaddr(&a, (const struct sockaddr *)&in6);
  assert_int_equal(tn_addr_parse_ip(&want, "198.51.100.9"), TN_OK);
  assert_true(tn_addr_equal(&a, &want));

  memset(&un, 0, sizeof(un));
  un.sun_family = AF_UNIX;
  tn_addr_from_sockaddr(&a, (const struct sockaddr *)&un);
  assert_int_equal(a.family, TN_AF_UNSPEC);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_parse_and_format),
    cmocka_unit_test(test_parse_ipv4_bytes),
    cmocka_unit_test(test_parse_rejects),
    cmocka_unit_test(test_format_unspec_and_small_buffers),
    cmocka_unit_test(test_equal),
    cmocka_unit_test(test_from_sockaddr),
  };

  return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
