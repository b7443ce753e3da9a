/* test_open.c: the stream-open header codec, table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tunnel/error.h"
#include "tunnel/open.h"
#include "tunnel/proxy.h"

#define BYTES(lit) (const uint8_t *)(lit), (sizeof(lit) - 1)

static struct tn_addr addr(const char *ip, uint16_t port)
{
  struct tn_addr a;

  memset(&a, 0, sizeof(a));
  assert_int_equal(tn_addr_parse_ip(&a, ip), TN_OK);
  a.port = port;
  return a;
}

static struct tn_open open_of(int kind, uint16_t port, const char *service, int proxy,
                              const char *peer, uint16_t peer_port, const char *lis, uint16_t lis_port)
{
  struct tn_open o;

  memset(&o, 0, sizeof(o));
  o.backend_kind = (uint8_t)kind;
  o.backend_port = port;
  if (service)
    snprintf(o.service, sizeof(o.service), "%s", service);
  o.proxy_version = (uint8_t)proxy;
  o.peer = addr(peer, peer_port);
  o.listener = addr(lis, lis_port);
  return o;
}

static void assert_open_equal(const char *name, const struct tn_open *a, const struct tn_open *b)
{
  if (a->backend_kind != b->backend_kind || a->proxy_version != b->proxy_version ||
      a->backend_port != b->backend_port || strcmp(a->service, b->service) != 0 ||
      !tn_addr_equal(&a->peer, &b->peer) || !tn_addr_equal(&a->listener, &b->listener) ||
      strcmp(a->authority, b->authority) != 0)
    fail_msg("%s: decoded header differs", name);
}

/* ---- known vectors (the layout in docs/PROTOCOL.md) ---- */

struct vector {
  const char *name;
  struct tn_open (*make)(void);
  const uint8_t *wire;
  size_t wire_len;
};

static struct tn_open make_port_v4(void)
{
  return open_of(TN_OPEN_BACKEND_PORT, 8080, NULL, TN_PROXY_V1, "203.0.113.7", 41234, "192.0.2.1", 443);
}

static struct tn_open make_service_mixed(void)
{
  return open_of(TN_OPEN_BACKEND_SERVICE, 0, "web", TN_PROXY_V2, "2001:db8::5", 51000, "192.0.2.1", 443);
}

static struct tn_open make_port_v6(void)
{
  return open_of(TN_OPEN_BACKEND_PORT, 1, NULL, TN_PROXY_NONE, "::1", 65535, "2001:db8::1", 1);
}

/* Version 2: the same headers with the host name the visitor asked for appended. */
static struct tn_open make_port_v4_authority(void)
{
  struct tn_open o = make_port_v4();

  snprintf(o.authority, sizeof(o.authority), "a.example.test");
  return o;
}

static struct tn_open make_service_authority_literal(void)
{
  struct tn_open o = make_service_mixed();

  snprintf(o.authority, sizeof(o.authority), "[2001:db8::1]");
  return o;
}

static const struct vector vectors[] = {
  { "port backend, ipv4", make_port_v4,
    BYTES("\x01\x00\x00\x16" "\x01\x01\x1f\x90"
          "\x04\xa1\x12" "\xcb\x00\x71\x07"
          "\x04\x01\xbb" "\xc0\x00\x02\x01") },
  { "service backend, ipv6 peer, ipv4 listener", make_service_mixed,
    BYTES("\x01\x00\x00\x26" "\x02\x02\x00\x00"
          "\x06\xc7\x38" "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05"
          "\x04\x01\xbb" "\xc0\x00\x02\x01"
          "\x03" "web") },
  { "port backend, ipv6", make_port_v6,
    BYTES("\x01\x00\x00\x2e" "\x01\x00\x00\x01"
          "\x06\xff\xff" "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
          "\x06\x00\x01" "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01") },
  { "version 2, port backend, ipv4, authority", make_port_v4_authority,
    BYTES("\x02\x00\x00\x25" "\x01\x01\x1f\x90"
          "\x04\xa1\x12" "\xcb\x00\x71\x07"
          "\x04\x01\xbb" "\xc0\x00\x02\x01"
          "\x0e" "a.example.test") },
  { "version 2, service backend, IPv6 literal authority", make_service_authority_literal,
    BYTES("\x02\x00\x00\x34" "\x02\x02\x00\x00"
          "\x06\xc7\x38" "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05"
          "\x04\x01\xbb" "\xc0\x00\x02\x01"
          "\x03" "web"
          "\x0d" "[2001:db8::1]") },
};

#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

static void test_encode_vectors(void **state)
{
  uint8_t out[TN_OPEN_MAX_LEN + 1];
  size_t i, n;

  for (i = 0; i < NVECTORS; i++) {
    struct tn_open o = vectors[i].make();

    memset(out, 0xAA, sizeof(out));
    n = tn_open_encode(&o, out, sizeof(out));
    if (n != vectors[i].wire_len || memcmp(out, vectors[i].wire, n) != 0)
      fail_msg("%s: encoded %zu bytes, expected %zu", vectors[i].name, n, vectors[i].wire_len);
    if (out[n] != 0xAA)
      fail_msg("%s: wrote past the header", vectors[i].name);
  }
}

static void test_decode_vectors(void **state)
{
  struct tn_open got;
  size_t i;
  int r;

  for (i = 0; i < NVECTORS; i++) {
    struct tn_open want = vectors[i].make();

    memset(&got, 0x55, sizeof(got));
    r = tn_open_decode(&got, vectors[i].wire, vectors[i].wire_len);
    if (r != (int)vectors[i].wire_len)
      fail_msg("%s: returned %d (%s)", vectors[i].name, r, tn_strerror(r));
    assert_open_equal(vectors[i].name, &got, &want);
  }
}

static void test_decode_every_truncation(void **state)
{
  uint8_t copy[TN_OPEN_MAX_LEN];
  struct tn_open got;
  size_t i, cut;
  int r;

  for (i = 0; i < NVECTORS; i++) {
    for (cut = 0; cut < vectors[i].wire_len; cut++) {
      memcpy(copy, vectors[i].wire, cut);
      r = tn_open_decode(&got, copy, cut);
      if (r != TN_ERR_NEED_MORE)
        fail_msg("%s: prefix of %zu bytes returned %d (%s)", vectors[i].name, cut, r, tn_strerror(r));
    }
  }
}

/* The stream's payload follows the header directly and is not consumed. */
static void test_decode_leaves_payload(void **state)
{
  uint8_t buf[TN_OPEN_MAX_LEN + 16];
  struct tn_open got;
  size_t i;

  for (i = 0; i < NVECTORS; i++) {
    memcpy(buf, vectors[i].wire, vectors[i].wire_len);
    memcpy(buf + vectors[i].wire_len, "GET / HTTP", 10);
    if (tn_open_decode(&got, buf, vectors[i].wire_len + 10) != (int)vectors[i].wire_len)
      fail_msg("%s: trailing payload changed the length", vectors[i].name);
  }
}

static void test_round_trip(void **state)
{
  char longest[TN_OPEN_MAX_SERVICE + 1];
  struct tn_open cases[8];
  uint8_t out[TN_OPEN_MAX_LEN];
  struct tn_open got;
  size_t i, n, cut;

  memset(longest, 'a', TN_OPEN_MAX_SERVICE);
  longest[TN_OPEN_MAX_SERVICE] = '\0';
  longest[0] = 'Z';
  longest[1] = '9';
  longest[2] = '.';
  longest[3] = '_';
  longest[4] = '-';
  cases[0] = open_of(TN_OPEN_BACKEND_PORT, 65535, NULL, TN_PROXY_V2, "10.0.0.1", 0, "10.0.0.2", 65535);
  cases[1] = open_of(TN_OPEN_BACKEND_SERVICE, 0, "x", TN_PROXY_NONE, "::", 1, "::", 2);
  cases[2] = open_of(TN_OPEN_BACKEND_SERVICE, 0, longest, TN_PROXY_V1, "2001:db8::1", 3, "2001:db8::2", 4);
  cases[3] = open_of(TN_OPEN_BACKEND_PORT, 22, NULL, TN_PROXY_V1, "192.0.2.1", 5, "::ffff:192.0.2.9", 6);
  cases[4] = make_port_v4();
  cases[5] = make_service_mixed();
  /* The longest header of all: longest service, longest host name, two IPv6 addresses. */
  cases[6] = cases[2];
  memset(cases[6].authority, 'b', TN_OPEN_MAX_AUTHORITY);
  cases[6].authority[TN_OPEN_MAX_AUTHORITY] = '\0';
  cases[6].authority[1] = '.';
  cases[7] = make_port_v4_authority();
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    n = tn_open_encode(&cases[i], out, sizeof(out));
    if (n == 0)
      fail_msg("case %zu: encode failed", i);
    if (tn_open_decode(&got, out, n) != (int)n)
      fail_msg("case %zu: decode failed", i);
    assert_open_equal("round trip", &got, &cases[i]);
    for (cut = 0; cut < n; cut++) {
      if (tn_open_decode(&got, out, cut) != TN_ERR_NEED_MORE)
        fail_msg("case %zu: prefix %zu not need-more", i, cut);
    }
  }
  /* The longest version 1 header, and the longest of all is exactly the limit. */
  n = tn_open_encode(&cases[2], out, sizeof(out));
  assert_int_equal(n, 8 + 19 + 19 + 1 + 255);
  assert_int_equal(out[0], TN_OPEN_VERSION);
  n = tn_open_encode(&cases[6], out, sizeof(out));
  assert_int_equal(n, 8 + 19 + 19 + 1 + 255 + 1 + 253);
  assert_int_equal(n, TN_OPEN_MAX_LEN);
  assert_int_equal(out[0], TN_OPEN_VERSION_AUTHORITY);
}

static void test_encode_short_buffer(void **state)
{
  uint8_t out[TN_OPEN_MAX_LEN];
  size_t i, len;

  for (i = 0; i < NVECTORS; i++) {
    struct tn_open o = vectors[i].make();

    for (len = 0; len < vectors[i].wire_len; len++) {
      if (tn_open_encode(&o, out, len) != 0)
        fail_msg("%s: fitted into %zu bytes", vectors[i].name, len);
    }
  }
}

static void test_encode_rejects(void **state)
{
  uint8_t out[TN_OPEN_MAX_LEN];
  struct tn_open o;

  o = make_port_v4(); o.backend_kind = 0;
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  o = make_port_v4(); o.backend_kind = 3;
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  o = make_port_v4(); o.backend_port = 0;
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  o = make_port_v4(); o.proxy_version = 3;
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  o = make_port_v4(); o.peer.family = TN_AF_UNSPEC;
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  o = make_port_v4(); o.listener.family = 5;
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  o = make_service_mixed(); o.service[0] = '\0';
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  o = make_service_mixed(); strcpy(o.service, "web/1");
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  o = make_service_mixed(); strcpy(o.service, "we b");
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  o = make_service_mixed(); strcpy(o.service, "caf\xc3\xa9");
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  /* A service name without its NUL (256 name bytes) is refused, not overread. */
  o = make_service_mixed(); memset(o.service, 'a', sizeof(o.service));
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  /* An authority is what tn_sni hands over: lower case, no spaces, no controls, no other bytes. */
  o = make_port_v4_authority(); strcpy(o.authority, "A.example.test");
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  o = make_port_v4_authority(); strcpy(o.authority, "a example");
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  o = make_port_v4_authority(); strcpy(o.authority, "a\nb");
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  o = make_port_v4_authority(); strcpy(o.authority, "a_b.test");
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  o = make_port_v4_authority(); strcpy(o.authority, "caf\xc3\xa9.test");
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
  o = make_port_v4_authority(); memset(o.authority, 'a', sizeof(o.authority));
  assert_int_equal(tn_open_encode(&o, out, sizeof(out)), 0);
}

/* ---- rejections: each case is a valid header with one thing wrong ---- */

#define GOOD_V4 "\x01\x00\x00\x16" "\x01\x01\x1f\x90" "\x04\xa1\x12" "\xcb\x00\x71\x07" "\x04\x01\xbb" "\xc0\x00\x02\x01"
#define V2_HEAD "\x02\x00\x00\x19" "\x01\x01\x1f\x90" "\x04\xa1\x12" "\xcb\x00\x71\x07" "\x04\x01\xbb" "\xc0\x00\x02\x01"
#define SVC_HEAD "\x01\x00\x00\x18" "\x02\x00\x00\x00" "\x04\x00\x01" "\x01\x02\x03\x04" "\x04\x00\x02" "\x05\x06\x07\x08"

static void test_decode_rejects(void **state)
{
  static const struct {
    const char *name;
    const uint8_t *wire;
    size_t len;
    int want;
  } cases[] = {
    { "version 0", BYTES("\x00"), TN_ERR_INVALID },
    { "version 3", BYTES("\x03"), TN_ERR_UNSUPPORTED },
    { "version 255 full", BYTES("\xff\x00\x00\x16" "\x01\x01\x1f\x90" "\x04\xa1\x12" "\xcb\x00\x71\x07" "\x04\x01\xbb" "\xc0\x00\x02\x01"),
      TN_ERR_UNSUPPORTED },
    { "reserved byte", BYTES("\x01\x80"), TN_ERR_INVALID },
    { "total 21", BYTES("\x01\x00\x00\x15"), TN_ERR_INVALID },
    { "total 0", BYTES("\x01\x00\x00\x00"), TN_ERR_INVALID },
    { "total 557", BYTES("\x01\x00\x02\x2d"), TN_ERR_INVALID },
    { "version 2 total 557", BYTES("\x02\x00\x02\x2d"), TN_ERR_INVALID },
    { "total 65535", BYTES("\x01\x00\xff\xff"), TN_ERR_INVALID },
    { "total one too long", BYTES("\x01\x00\x00\x17" "\x01\x01\x1f\x90" "\x04\xa1\x12" "\xcb\x00\x71\x07" "\x04\x01\xbb" "\xc0\x00\x02\x01" "\x00"),
      TN_ERR_INVALID },
    { "total too short for ipv6 peer", BYTES("\x01\x00\x00\x16" "\x01\x01\x1f\x90" "\x06\xa1\x12" "\xcb\x00\x71\x07" "\x04\x01\xbb" "\xc0\x00\x02\x01"),
      TN_ERR_INVALID },
    { "kind 0", BYTES("\x01\x00\x00\x16" "\x00"), TN_ERR_INVALID },
    { "kind 3", BYTES("\x01\x00\x00\x16" "\x03"), TN_ERR_INVALID },
    { "proxy version 3", BYTES("\x01\x00\x00\x16" "\x01\x03"), TN_ERR_INVALID },
    { "backend port 0", BYTES("\x01\x00\x00\x16" "\x01\x01\x00\x00"), TN_ERR_INVALID },
    { "service with port high byte", BYTES("\x01\x00\x00\x1a" "\x02\x00\x01"), TN_ERR_INVALID },
    { "service with port low byte", BYTES("\x01\x00\x00\x1a" "\x02\x00\x00\x01"), TN_ERR_INVALID },
    { "peer family 0", BYTES("\x01\x00\x00\x16" "\x01\x01\x1f\x90" "\x00"), TN_ERR_INVALID },
    { "peer family 5", BYTES("\x01\x00\x00\x16" "\x01\x01\x1f\x90" "\x05"), TN_ERR_INVALID },
    { "peer family AF_INET6 of Linux", BYTES("\x01\x00\x00\x16" "\x01\x01\x1f\x90" "\x0a"), TN_ERR_INVALID },
    { "listener family 2", BYTES("\x01\x00\x00\x16" "\x01\x01\x1f\x90" "\x04\xa1\x12" "\xcb\x00\x71\x07" "\x02"),
      TN_ERR_INVALID },
    { "service length 0", BYTES(SVC_HEAD "\x00"), TN_ERR_INVALID },
    { "service slash", BYTES(SVC_HEAD "\x01/"), TN_ERR_INVALID },
    { "service space", BYTES(SVC_HEAD "\x01 "), TN_ERR_INVALID },
    { "service NUL", BYTES(SVC_HEAD "\x01\x00"), TN_ERR_INVALID },
    { "service high byte", BYTES(SVC_HEAD "\x01\xc3"), TN_ERR_INVALID },
    { "service longer than total", BYTES(SVC_HEAD "\x02" "ab"), TN_ERR_INVALID },
    { "service shorter than total", BYTES("\x01\x00\x00\x1b" "\x02\x00\x00\x00" "\x04\x00\x01" "\x01\x02\x03\x04" "\x04\x00\x02" "\x05\x06\x07\x08" "\x01" "a" "b"),
      TN_ERR_INVALID },
    { "version 2 without authority", BYTES("\x02\x00\x00\x16" "\x01\x01\x1f\x90" "\x04\xa1\x12" "\xcb\x00\x71\x07" "\x04\x01\xbb" "\xc0\x00\x02\x01"),
      TN_ERR_INVALID },
    { "authority length 0", BYTES(V2_HEAD "\x00"), TN_ERR_INVALID },
    { "authority upper case", BYTES(V2_HEAD "\x02" "aB"), TN_ERR_INVALID },
    { "authority space", BYTES(V2_HEAD "\x02" "a "), TN_ERR_INVALID },
    { "authority newline", BYTES(V2_HEAD "\x02" "a\n"), TN_ERR_INVALID },
    { "authority slash", BYTES(V2_HEAD "\x02" "a/"), TN_ERR_INVALID },
    { "authority high byte", BYTES(V2_HEAD "\x02" "a\xc3"), TN_ERR_INVALID },
    { "authority longer than total", BYTES(V2_HEAD "\x03" "abc"), TN_ERR_INVALID },
    { "authority shorter than total", BYTES("\x02\x00\x00\x1a" "\x01\x01\x1f\x90" "\x04\xa1\x12" "\xcb\x00\x71\x07" "\x04\x01\xbb" "\xc0\x00\x02\x01" "\x02" "ab" "c"),
      TN_ERR_INVALID },
    { "authority in a version 1 header", BYTES("\x01\x00\x00\x19" "\x01\x01\x1f\x90" "\x04\xa1\x12" "\xcb\x00\x71\x07" "\x04\x01\xbb" "\xc0\x00\x02\x01" "\x02" "ab"),
      TN_ERR_INVALID },
    { "service missing", BYTES("\x01\x00\x00\x16" "\x02\x00\x00\x00" "\x04\x00\x01" "\x01\x02\x03\x04" "\x04\x00\x02" "\x05\x06\x07\x08"),
      TN_ERR_INVALID },
  };
  struct tn_open got, before;
  size_t i;
  int r;

  /* The service header prefix itself is sound: with its one name byte it decodes. */
  assert_int_equal(tn_open_decode(&got, BYTES(SVC_HEAD "\x01" "a")), 0x18);
  assert_int_equal(tn_open_decode(&got, BYTES(GOOD_V4)), 0x16);
  assert_int_equal(tn_open_decode(&got, BYTES(V2_HEAD "\x02" "ab")), 0x19);
  assert_string_equal(got.authority, "ab");
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    memset(&got, 0x5A, sizeof(got));
    before = got;
    r = tn_open_decode(&got, cases[i].wire, cases[i].len);
    if (r != cases[i].want)
      fail_msg("%s: returned %d (%s), expected %d", cases[i].name, r, tn_strerror(r), cases[i].want);
    if (memcmp(&got, &before, sizeof(got)) != 0)
      fail_msg("%s: a failed decode wrote to the result", cases[i].name);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_encode_vectors),
    cmocka_unit_test(test_decode_vectors),
    cmocka_unit_test(test_decode_every_truncation),
    cmocka_unit_test(test_decode_leaves_payload),
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_encode_short_buffer),
    cmocka_unit_test(test_encode_rejects),
    cmocka_unit_test(test_decode_rejects),
  };

  return cmocka_run_group_tests_name("open", tests, NULL, NULL);
}
