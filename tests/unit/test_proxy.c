/* test_proxy.c: PROXY v1/v2 encoders and the strict decoder, table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tunnel/error.h"
#include "tunnel/proxy.h"

/* A byte string literal and its length, NULs included. */
#define BYTES(lit) (const uint8_t *)(lit), (sizeof(lit) - 1)
#define SIG "\r\n\r\n\0\r\nQUIT\n"

static struct tn_addr addr(const char *ip, uint16_t port)
{
  struct tn_addr a;

  memset(&a, 0, sizeof(a));
  if (ip) {
    assert_int_equal(tn_addr_parse_ip(&a, ip), TN_OK);
  }
  a.port = port;
  return a;
}

static struct tn_proxy_info info_of(const char *src, uint16_t sport, const char *dst, uint16_t dport)
{
  struct tn_proxy_info info;

  memset(&info, 0, sizeof(info));
  info.src = addr(src, sport);
  info.dst = addr(dst, dport);
  return info;
}

/* ---- known vectors, written by hand from haproxy's doc/proxy-protocol.txt ---- */

struct vector {
  const char *name;
  int version;
  const char *src, *dst; /* NULL: UNSPEC */
  uint16_t sport, dport;
  const uint8_t *wire;
  size_t wire_len;
};

static const struct vector vectors[] = {
  { "v1 tcp4", 1, "203.0.113.7", "192.0.2.1", 41234, 443,
    BYTES("PROXY TCP4 203.0.113.7 192.0.2.1 41234 443\r\n") },
  { "v1 tcp6", 1, "2001:db8::5", "2001:db8::1", 51000, 443,
    BYTES("PROXY TCP6 2001:db8::5 2001:db8::1 51000 443\r\n") },
  { "v1 tcp4 port 0 and 65535", 1, "0.0.0.0", "255.255.255.255", 0, 65535,
    BYTES("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n") },
  { "v1 tcp6 longest", 1, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
    65535, 65535,
    BYTES("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe 65535 65535\r\n") },
  { "v1 unknown", 1, NULL, NULL, 0, 0, BYTES("PROXY UNKNOWN\r\n") },
  { "v2 tcp4", 2, "203.0.113.7", "192.0.2.1", 41234, 443,
    BYTES(SIG "\x21\x11\x00\x0c" "\xcb\x00\x71\x07" "\xc0\x00\x02\x01" "\xa1\x12" "\x01\xbb") },
  { "v2 tcp6", 2, "2001:db8::5", "2001:db8::1", 51000, 443,
    BYTES(SIG "\x21\x21\x00\x24"
          "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05"
          "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
          "\xc7\x38" "\x01\xbb") },
  { "v2 local", 2, NULL, NULL, 0, 0, BYTES(SIG "\x20\x00\x00\x00") },
};

static void test_encode_vectors(void **state)
{
  uint8_t out[256];
  size_t i, n;

  for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
    const struct vector *v = &vectors[i];
    struct tn_proxy_info info = info_of(v->src, v->sport, v->dst, v->dport);

    memset(out, 0xAA, sizeof(out));
    n = tn_proxy_encode(v->version, &info, out, sizeof(out));
    if (n != v->wire_len || memcmp(out, v->wire, n) != 0)
      fail_msg("%s: encoded %zu bytes, expected %zu", v->name, n, v->wire_len);
    /* Never a byte past the header (v1 writes no NUL). */
    if (out[n] != 0xAA)
      fail_msg("%s: wrote past the header", v->name);
  }
}

static void test_decode_vectors(void **state)
{
  struct tn_proxy_info got;
  size_t i;
  int r;

  for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
    const struct vector *v = &vectors[i];
    struct tn_proxy_info want = info_of(v->src, v->sport, v->dst, v->dport);

    memset(&got, 0x55, sizeof(got));
    r = tn_proxy_decode(&got, v->wire, v->wire_len);
    if (r != (int)v->wire_len)
      fail_msg("%s: decode returned %d (%s), expected %zu", v->name, r, tn_strerror(r), v->wire_len);
    assert_int_equal(got.version, v->version);
    assert_int_equal(got.local, v->src == NULL);
    if (!tn_addr_equal(&got.src, &want.src) || !tn_addr_equal(&got.dst, &want.dst))
      fail_msg("%s: decoded addresses differ", v->name);
  }
}

/* Every proper prefix of a valid header is "need more": never success, never invalid. */
static void test_decode_every_truncation(void **state)
{
  struct tn_proxy_info got;
  uint8_t copy[256];
  size_t i, cut;
  int r;

  for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
    const struct vector *v = &vectors[i];

    for (cut = 0; cut < v->wire_len; cut++) {
      /* A right-sized copy lets ASan catch any read past the prefix. */
      memcpy(copy, v->wire, cut);
      r = tn_proxy_decode(&got, cut ? copy : v->wire, cut);
      if (r != TN_ERR_NEED_MORE)
        fail_msg("%s: prefix of %zu bytes returned %d (%s)", v->name, cut, r, tn_strerror(r));
    }
  }
}

/* Payload after the header belongs to the application and is not consumed. */
static void test_decode_leaves_payload(void **state)
{
  uint8_t buf[256];
  struct tn_proxy_info got;
  size_t i;

  for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
    const struct vector *v = &vectors[i];

    memcpy(buf, v->wire, v->wire_len);
    memcpy(buf + v->wire_len, "GET / HTTP/1.0\r\n\r\n", 18);
    if (tn_proxy_decode(&got, buf, v->wire_len + 18) != (int)v->wire_len)
      fail_msg("%s: header length changed by trailing payload", v->name);
  }
}

static void test_round_trip(void **state)
{
  static const struct {
    const char *src, *dst;
    uint16_t sport, dport;
  } cases[] = {
    { "203.0.113.7", "192.0.2.1", 41234, 443 },
    { "127.0.0.1", "127.0.0.1", 1, 1 },
    { "2001:db8::5", "2001:db8::1", 51000, 8443 },
    { "::1", "::", 65535, 0 },
    { "::ffff:198.51.100.9", "fe80::1", 1234, 80 },
    { NULL, NULL, 0, 0 },
  };
  uint8_t out[TN_PROXY_V1_MAX_LEN];
  struct tn_proxy_info in, got;
  size_t i, n;
  int version;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    for (version = TN_PROXY_V1; version <= TN_PROXY_V2; version++) {
      in = info_of(cases[i].src, cases[i].sport, cases[i].dst, cases[i].dport);
      n = tn_proxy_encode(version, &in, out, sizeof(out));
      if (n == 0)
        fail_msg("case %zu v%d: encode failed", i, version);
      if (tn_proxy_decode(&got, out, n) != (int)n)
        fail_msg("case %zu v%d: decode failed", i, version);
      assert_int_equal(got.version, version);
      assert_int_equal(got.local, cases[i].src == NULL);
      assert_true(tn_addr_equal(&got.src, &in.src));
      assert_true(tn_addr_equal(&got.dst, &in.dst));
    }
  }
}

/* An encoder given one byte too few writes nothing and says so. */
static void test_encode_short_buffer(void **state)
{
  uint8_t out[256];
  size_t i, len;

  for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
    const struct vector *v = &vectors[i];
    struct tn_proxy_info info = info_of(v->src, v->sport, v->dst, v->dport);

    for (len = 0; len < v->wire_len; len++) {
      if (tn_proxy_encode(v->version, &info, out, len) != 0)
        fail_msg("%s: fitted into %zu bytes", v->name, len);
    }
    assert_int_equal(tn_proxy_encode(v->version, &info, out, v->wire_len), v->wire_len);
  }
}

static void test_encode_rejects(void **state)
{
  uint8_t out[256];
  struct tn_proxy_info info = info_of("203.0.113.7", 1, "2001:db8::1", 2);

  /* Mixed families cannot be expressed in either version. */
  assert_int_equal(tn_proxy_encode(TN_PROXY_V1, &info, out, sizeof(out)), 0);
  assert_int_equal(tn_proxy_encode(TN_PROXY_V2, &info, out, sizeof(out)), 0);
  info = info_of("203.0.113.7", 1, "192.0.2.1", 2);
  assert_int_equal(tn_proxy_encode(TN_PROXY_NONE, &info, out, sizeof(out)), 0);
  assert_int_equal(tn_proxy_encode(3, &info, out, sizeof(out)), 0);
  info.src.family = info.dst.family = 5;
  assert_int_equal(tn_proxy_encode(TN_PROXY_V1, &info, out, sizeof(out)), 0);
  assert_int_equal(tn_proxy_encode(TN_PROXY_V2, &info, out, sizeof(out)), 0);
}

/* ---- inputs the decoder must accept although the encoder never writes them ---- */

static void test_decode_accepts_other_senders(void **state)
{
  static const struct {
    const char *name;
    const uint8_t *wire;
    size_t len;
    int local;
  } cases[] = {
    /* The spec's worst case: exactly 107 bytes. */
    { "v1 unknown with addresses, 107 bytes",
      BYTES("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"), 1 },
    { "v1 tcp6 uncompressed and upper case",
      BYTES("PROXY TCP6 2001:0DB8:0:0:0:0:0:5 ::FFFF:1.2.3.4 1 2\r\n"), 0 },
    { "v2 local with a tcp4 block", BYTES(SIG "\x20\x11\x00\x0c" "\1\2\3\4" "\5\6\7\x08" "\0\1" "\0\2"), 1 },
    { "v2 local with udp6 family", BYTES(SIG "\x20\x22\x00\x00"), 1 },
    { "v2 proxy unspec", BYTES(SIG "\x21\x00\x00\x03" "abc"), 1 },
    { "v2 tcp4 with tlvs",
      BYTES(SIG "\x21\x11\x00\x17" "\1\2\3\4" "\5\6\7\x08" "\0\1" "\0\2"
            "\x04\x00\x00" "\x02\x00\x05" "a.com"), 0 },
  };
  struct tn_proxy_info got;
  size_t i, cut;
  int r;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    r = tn_proxy_decode(&got, cases[i].wire, cases[i].len);
    if (r != (int)cases[i].len)
      fail_msg("%s: returned %d (%s), expected %zu", cases[i].name, r, tn_strerror(r), cases[i].len);
    assert_int_equal(got.local, cases[i].local);
    for (cut = 0; cut < cases[i].len; cut++) {
      if (tn_proxy_decode(&got, cases[i].wire, cut) != TN_ERR_NEED_MORE)
        fail_msg("%s: prefix %zu not need-more", cases[i].name, cut);
    }
  }
  r = tn_proxy_decode(&got, BYTES("PROXY TCP6 2001:0DB8:0:0:0:0:0:5 ::FFFF:1.2.3.4 1 2\r\n"));
  assert_true(r > 0);
  {
    struct tn_addr want = addr("2001:db8::5", 1);
    assert_true(tn_addr_equal(&got.src, &want));
    want = addr("::ffff:1.2.3.4", 2);
    assert_true(tn_addr_equal(&got.dst, &want));
  }
}

/* ---- the authority TLV (PP2_TYPE_AUTHORITY: the host name the visitor asked for) ---- */

static void test_authority(void **state)
{
  static const uint8_t want_v4[] = SIG "\x21\x11\x00\x1d" "\xcb\x00\x71\x07" "\xc0\x00\x02\x01" "\xa1\x12" "\x01\xbb"
                                   "\x02\x00\x0e" "a.example.test";
  uint8_t out[TN_PROXY_V2_MAX_LEN + 1], big[16 + 12 + 3 + 254 + 6];
  struct tn_proxy_info info = info_of("203.0.113.7", 41234, "192.0.2.1", 443), got;
  size_t n, cut;

  snprintf(info.authority, sizeof(info.authority), "a.example.test");
  n = tn_proxy_encode(TN_PROXY_V2, &info, out, sizeof(out));
  assert_int_equal(n, sizeof(want_v4) - 1);
  assert_memory_equal(out, want_v4, n);
  assert_int_equal(tn_proxy_decode(&got, out, n), (int)n);
  assert_string_equal(got.authority, "a.example.test");
  for (cut = 0; cut < n; cut++)
    assert_int_equal(tn_proxy_decode(&got, out, cut), TN_ERR_NEED_MORE);
  for (cut = 0; cut < n; cut++)
    assert_int_equal(tn_proxy_encode(TN_PROXY_V2, &info, out, cut), 0);

  /* v1 has no room for it; LOCAL describes no connection: both leave it out. */
  n = tn_proxy_encode(TN_PROXY_V1, &info, out, sizeof(out));
  assert_int_equal(n, strlen("PROXY TCP4 203.0.113.7 192.0.2.1 41234 443\r\n"));
  info.src.family = info.dst.family = TN_AF_UNSPEC;
  assert_int_equal(tn_proxy_encode(TN_PROXY_V2, &info, out, sizeof(out)), 16);

  /* The longest header: TCP6 and a 253-byte name, exactly TN_PROXY_V2_MAX_LEN; one byte more is refused. */
  info = info_of("2001:db8::5", 1, "2001:db8::1", 2);
  memset(info.authority, 'a', TN_PROXY_AUTHORITY_MAX);
  info.authority[TN_PROXY_AUTHORITY_MAX] = '\0';
  n = tn_proxy_encode(TN_PROXY_V2, &info, out, sizeof(out));
  assert_int_equal(n, TN_PROXY_V2_MAX_LEN);
  assert_int_equal(tn_proxy_decode(&got, out, n), (int)n);
  assert_string_equal(got.authority, info.authority);
  memset(info.authority, 'a', sizeof(info.authority));
  assert_int_equal(tn_proxy_encode(TN_PROXY_V2, &info, out, sizeof(out)), 0);

  /* From other senders: the first usable authority counts; unusable ones are skipped like unknown TLVs. */
  assert_int_equal(tn_proxy_decode(&got, BYTES(SIG "\x21\x11\x00\x1a" "\1\2\3\4" "\5\6\7\x08" "\0\1" "\0\2"
                                               "\x02\x00\x01" "\x07" "\x02\x00\x03" "b.c" "\x02\x00\x01" "d")), 42);
  assert_string_equal(got.authority, "b.c");
  assert_int_equal(tn_proxy_decode(&got, BYTES(SIG "\x21\x11\x00\x12" "\1\2\3\4" "\5\6\7\x08" "\0\1" "\0\2"
                                               "\x02\x00\x03" "a b")), 34);
  assert_string_equal(got.authority, "");
  memcpy(big, SIG "\x21\x11\x01\x0d" "\1\2\3\4" "\5\6\7\x08" "\0\1" "\0\2" "\x02\x00\xfe", 31);
  memset(big + 31, 'a', 254);
  assert_int_equal(tn_proxy_decode(&got, big, 31 + 254), 31 + 254);
  assert_string_equal(got.authority, "");
}

/* ---- rejections ---- */

static void test_decode_rejects(void **state)
{
  static const struct {
    const char *name;
    const uint8_t *wire;
    size_t len;
    int want;
  } cases[] = {
    { "empty first byte garbage", BYTES("GET / HTTP/1.1\r\n"), TN_ERR_INVALID },
    { "lower case", BYTES("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), TN_ERR_INVALID },
    { "v1 LF only", BYTES("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), TN_ERR_INVALID },
    { "v1 CR CR", BYTES("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r"), TN_ERR_INVALID },
    { "v1 double space", BYTES("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), TN_ERR_INVALID },
    { "v1 tab", BYTES("PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n"), TN_ERR_INVALID },
    { "v1 TCP5", BYTES("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), TN_ERR_INVALID },
    { "v1 UDP4", BYTES("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), TN_ERR_INVALID },
    { "v1 tcp4 lower", BYTES("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"), TN_ERR_INVALID },
    { "v1 octet leading zero", BYTES("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n"), TN_ERR_INVALID },
    { "v1 octet 256", BYTES("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"), TN_ERR_INVALID },
    { "v1 three octets", BYTES("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"), TN_ERR_INVALID },
    { "v1 ipv6 on tcp4", BYTES("PROXY TCP4 ::1 5.6.7.8 1 2\r\n"), TN_ERR_INVALID },
    { "v1 ipv4 on tcp6", BYTES("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"), TN_ERR_INVALID },
    { "v1 ipv6 bad", BYTES("PROXY TCP6 1:::2 ::1 1 2\r\n"), TN_ERR_INVALID },
    { "v1 ipv6 zone", BYTES("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), TN_ERR_INVALID },
    { "v1 hostname", BYTES("PROXY TCP4 localhost 5.6.7.8 1 2\r\n"), TN_ERR_INVALID },
    { "v1 empty address", BYTES("PROXY TCP4  5.6.7.8 1 2\r\n"), TN_ERR_INVALID },
    { "v1 port 65536", BYTES("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), TN_ERR_INVALID },
    { "v1 port 6 digits", BYTES("PROXY TCP4 1.2.3.4 5.6.7.8 1 000001\r\n"), TN_ERR_INVALID },
    { "v1 port leading zero", BYTES("PROXY TCP4 1.2.3.4 5.6.7.8 0443 2\r\n"), TN_ERR_INVALID },
    { "v1 port 00", BYTES("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n"), TN_ERR_INVALID },
    { "v1 port sign", BYTES("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"), TN_ERR_INVALID },
    { "v1 port negative", BYTES("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"), TN_ERR_INVALID },
    { "v1 port hex", BYTES("PROXY TCP4 1.2.3.4 5.6.7.8 0x1 2\r\n"), TN_ERR_INVALID },
    { "v1 empty port", BYTES("PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n"), TN_ERR_INVALID },
    { "v1 missing dport", BYTES("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), TN_ERR_INVALID },
    { "v1 extra field", BYTES("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), TN_ERR_INVALID },
    { "v1 trailing space", BYTES("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), TN_ERR_INVALID },
    { "v1 NUL inside", BYTES("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n"), TN_ERR_INVALID },
    { "v1 UNKNOWNX", BYTES("PROXY UNKNOWNX\r\n"), TN_ERR_INVALID },
    { "v1 UNKNOWN control byte", BYTES("PROXY UNKNOWN a\tb\r\n"), TN_ERR_INVALID },
    { "v1 UNKNOWN LF only", BYTES("PROXY UNKNOWN\n"), TN_ERR_INVALID },
    { "v1 108 bytes",
      BYTES("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655350\r\n"),
      TN_ERR_INVALID },
    { "v1 no CRLF within 107 bytes",
      BYTES("PROXY UNKNOWN aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
      TN_ERR_INVALID },
    { "v2 bad signature", BYTES("\r\n\r\n\0\r\nQUIT\r\x21\x11\x00\x00"), TN_ERR_INVALID },
    { "v2 version 1", BYTES(SIG "\x11\x11\x00\x0c"), TN_ERR_INVALID },
    { "v2 version 3", BYTES(SIG "\x31\x11\x00\x0c"), TN_ERR_INVALID },
    { "v2 command 2", BYTES(SIG "\x22\x11\x00\x0c"), TN_ERR_INVALID },
    { "v2 command 15", BYTES(SIG "\x2f\x11\x00\x0c"), TN_ERR_INVALID },
    { "v2 family 4", BYTES(SIG "\x21\x41\x00\x0c"), TN_ERR_INVALID },
    { "v2 transport 3", BYTES(SIG "\x21\x13\x00\x0c"), TN_ERR_INVALID },
    { "v2 inet unspec transport", BYTES(SIG "\x21\x10\x00\x0c"), TN_ERR_INVALID },
    { "v2 unspec stream", BYTES(SIG "\x21\x01\x00\x00"), TN_ERR_INVALID },
    { "v2 local bad family", BYTES(SIG "\x20\x44\x00\x00"), TN_ERR_INVALID },
    { "v2 tcp4 length 11", BYTES(SIG "\x21\x11\x00\x0b" "\1\2\3\4\5\6\7\x08\0\1\0"), TN_ERR_INVALID },
    { "v2 tcp6 length 35", BYTES(SIG "\x21\x21\x00\x23"), TN_ERR_INVALID },
    { "v2 tcp4 length 0", BYTES(SIG "\x21\x11\x00\x00"), TN_ERR_INVALID },
    { "v2 tlv overruns",
      BYTES(SIG "\x21\x11\x00\x10" "\1\2\3\4" "\5\6\7\x08" "\0\1" "\0\2" "\x04\x00\x02" "a"), TN_ERR_INVALID },
    { "v2 tlv short header", BYTES(SIG "\x21\x11\x00\x0e" "\1\2\3\4" "\5\6\7\x08" "\0\1" "\0\2" "\x04\x00"),
      TN_ERR_INVALID },
    { "v2 udp4", BYTES(SIG "\x21\x12\x00\x0c"), TN_ERR_UNSUPPORTED },
    { "v2 udp6", BYTES(SIG "\x21\x22\x00\x24"), TN_ERR_UNSUPPORTED },
    { "v2 unix stream", BYTES(SIG "\x21\x31\x00\xd8"), TN_ERR_UNSUPPORTED },
    { "v2 unix dgram", BYTES(SIG "\x21\x32\x00\xd8"), TN_ERR_UNSUPPORTED },
  };
  struct tn_proxy_info got, before;
  size_t i;
  int r;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    memset(&got, 0x5A, sizeof(got));
    before = got;
    r = tn_proxy_decode(&got, cases[i].wire, cases[i].len);
    if (r != cases[i].want)
      fail_msg("%s: returned %d (%s), expected %d", cases[i].name, r, tn_strerror(r), cases[i].want);
    if (memcmp(&got, &before, sizeof(got)) != 0)
      fail_msg("%s: a failed decode wrote to the result", cases[i].name);
  }
}

/* Garbage fails on its first wrong byte instead of waiting for more input. */
static void test_decode_fails_fast(void **state)
{
  static const struct {
    const char *name;
    const uint8_t *wire;
    size_t len;
  } cases[] = {
    { "first byte", BYTES("G") },
    { "v1 prefix", BYTES("PROXX") },
    { "v1 protocol", BYTES("PROXY X") },
    { "v1 address byte", BYTES("PROXY TCP4 1.2.x") },
    { "v1 ipv4 too long", BYTES("PROXY TCP4 1111111111111111") },
    { "v1 port byte", BYTES("PROXY TCP4 1.2.3.4 5.6.7.8 1a") },
    { "v1 port too large", BYTES("PROXY TCP4 1.2.3.4 5.6.7.8 99999") },
    { "v2 signature", BYTES("\r\n\r\n\0\r\nQUIX") },
    { "v2 version", BYTES(SIG "\x12") },
    { "v2 family", BYTES(SIG "\x21\x55") },
  };
  struct tn_proxy_info got;
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    if (tn_proxy_decode(&got, cases[i].wire, cases[i].len) != TN_ERR_INVALID)
      fail_msg("%s: not rejected", cases[i].name);
  }
}

static void test_signature(void **state)
{
  assert_memory_equal(tn_proxy_v2_signature, "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_signature),
    cmocka_unit_test(test_encode_vectors),
    cmocka_unit_test(test_decode_vectors),
    cmocka_unit_test(test_decode_every_truncation),
    cmocka_unit_test(test_decode_leaves_payload),
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_encode_short_buffer),
    cmocka_unit_test(test_encode_rejects),
    cmocka_unit_test(test_decode_accepts_other_senders),
    cmocka_unit_test(test_authority),
    cmocka_unit_test(test_decode_rejects),
    cmocka_unit_test(test_decode_fails_fast),
  };

  return cmocka_run_group_tests_name("proxy", tests, NULL, NULL);
}
