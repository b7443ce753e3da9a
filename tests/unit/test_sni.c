/* test_sni.c: the ClientHello server_name and HTTP Host decoders: real and built hellos, every cut, every split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tunnel/error.h"
#include "tunnel/sni.h"

/* A ClientHello from openssl s_client -servername A.Example.test (OpenSSL 3.0): one record. */
static const uint8_t openssl_hello[] = {
  0x16, 0x03, 0x01, 0x01, 0x3b, 0x01, 0x00, 0x01, 0x37, 0x03, 0x03, 0xc4, 0x0f, 0xb1, 0x9c, 0x2c,
  0x69, 0xae, 0x14, 0xe2, 0xff, 0x3b, 0x01, 0xe7, 0xcf, 0x79, 0xc1, 0xa4, 0x67, 0x83, 0x92, 0xc1,
  0xdb, 0xf0, 0xc2, 0x8a, 0x01, 0x66, 0x7a, 0xd1, 0x7c, 0x0c, 0xe6, 0x20, 0x13, 0x5e, 0x81, 0x59,
  0x80, 0x75, 0x2c, 0xcc, 0x2b, 0xa3, 0xa0, 0x05, 0xc7, 0x35, 0xc7, 0x03, 0x7d, 0x48, 0x3d, 0x94,
  0xb5, 0x7f, 0x05, 0x31, 0x37, 0xc8, 0x7a, 0xbc, 0x1e, 0xc2, 0x06, 0x4d, 0x00, 0x3e, 0x13, 0x02,
  0x13, 0x03, 0x13, 0x01, 0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
  0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b, 0xc0, 0x23, 0xc0, 0x27,
  0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39, 0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d,
  0x00, 0x9c, 0x00, 0x3d, 0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0xb0,
  0x00, 0x00, 0x00, 0x13, 0x00, 0x11, 0x00, 0x00, 0x0e, 0x41, 0x2e, 0x45, 0x78, 0x61, 0x6d, 0x70,
  0x6c, 0x65, 0x2e, 0x74, 0x65, 0x73, 0x74, 0x00, 0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02, 0x00,
  0x0a, 0x00, 0x16, 0x00, 0x14, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x01,
  0x00, 0x01, 0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x04, 0x00, 0x23, 0x00, 0x00, 0x00, 0x16, 0x00,
  0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x2a, 0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06,
  0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08, 0x05, 0x08,
  0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x03, 0x03, 0x03, 0x01, 0x03, 0x02, 0x04, 0x02, 0x05,
  0x02, 0x06, 0x02, 0x00, 0x2b, 0x00, 0x09, 0x08, 0x03, 0x04, 0x03, 0x03, 0x03, 0x02, 0x03, 0x01,
  0x00, 0x2d, 0x00, 0x02, 0x01, 0x01, 0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20,
  0x2d, 0xe6, 0x2a, 0xe9, 0x79, 0x37, 0xa2, 0x61, 0x08, 0x03, 0x74, 0xba, 0x12, 0xf6, 0x34, 0xc0,
  0x59, 0xd9, 0xb2, 0xe8, 0xc6, 0xfd, 0xa6, 0xc1, 0xc9, 0x66, 0x9a, 0x26, 0x2c, 0x93, 0xd0, 0x69,
};

/* ---- a ClientHello builder: handshake bytes, then cut into records ---- */

struct hello {
  uint8_t msg[70000];
  size_t len;
};

static void put(struct hello *h, const void *p, size_t n)
{
  assert_true(h->len + n <= sizeof(h->msg));
  memcpy(h->msg + h->len, p, n);
  h->len += n;
}

static void put16(struct hello *h, size_t v)
{
  uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
  put(h, b, 2);
}

/* A ClientHello message whose extensions block is ext (ext_len bytes; none at all when ext is NULL). */
static void build(struct hello *h, const uint8_t *ext, size_t ext_len)
{
  static const uint8_t random[32];
  static const uint8_t suites[] = { 0x00, 0x04, 0x13, 0x01, 0xc0, 0x2b };
  static const uint8_t comp[] = { 0x01, 0x00 };
  size_t body = 2 + 32 + 1 + sizeof(suites) + sizeof(comp) + (ext ? 2 + ext_len : 0);

  h->len = 0;
  put(h, (uint8_t[]){ 0x01, (uint8_t)(body >> 16), (uint8_t)(body >> 8), (uint8_t)body, 0x03, 0x03 }, 6);
  put(h, random, sizeof(random));
  put(h, (uint8_t[]){ 0x00 }, 1);  /* no session id */
  put(h, suites, sizeof(suites));
  put(h, comp, sizeof(comp));
  if (ext) {
    put16(h, ext_len);
    put(h, ext, ext_len);
  }
}

/* Wraps msg in records of at most frag bytes each. */
static size_t records(const struct hello *h, size_t frag, uint8_t *out, size_t out_cap)
{
  size_t n = 0;

  for (size_t off = 0; off < h->len; off += frag) {
    size_t k = h->len - off < frag ? h->len - off : frag;
    assert_true(n + 5 + k <= out_cap);
    out[n++] = 0x16, out[n++] = 0x03, out[n++] = 0x01, out[n++] = (uint8_t)(k >> 8), out[n++] = (uint8_t)k;
    memcpy(out + n, h->msg + off, k);
    n += k;
  }
  return n;
}

/* A server_name extension (type 0) naming name, followed by extra bytes of other extensions. */
static size_t sni_ext(const char *name, uint8_t *out)
{
  size_t n = strlen(name), k = 0;

  out[k++] = 0x00, out[k++] = 0x00;                                   /* type server_name */
  out[k++] = (uint8_t)((n + 5) >> 8), out[k++] = (uint8_t)(n + 5);    /* extension length */
  out[k++] = (uint8_t)((n + 3) >> 8), out[k++] = (uint8_t)(n + 3);    /* list length */
  out[k++] = 0x00;                                                    /* host_name */
  out[k++] = (uint8_t)(n >> 8), out[k++] = (uint8_t)n;
  memcpy(out + k, name, n);
  return k + n;
}

/* Every proper prefix asks for more; the whole decodes to want. */
static void assert_cuts(const uint8_t *in, size_t len, const char *want)
{
  char name[TN_SNI_NAME_MAX + 1];

  for (size_t cut = 0; cut < len; cut++)
    if (tn_sni_tls(in, cut, name) != TN_ERR_NEED_MORE)
      fail_msg("prefix of %zu/%zu bytes not TN_ERR_NEED_MORE", cut, len);
  assert_int_equal(tn_sni_tls(in, len, name), TN_OK);
  assert_string_equal(name, want);
}

static void test_real_openssl_hello(void **state)
{
  (void)state;
  assert_cuts(openssl_hello, sizeof(openssl_hello), "a.example.test");
}

static void test_split_records(void **state)
{
  static struct hello h;
  static uint8_t ext[512], wire[80000];
  size_t ext_len = sni_ext("photos.example.net", ext);
  char name[TN_SNI_NAME_MAX + 1];
  size_t frags[] = { 1, 2, 3, 7, 40, 16384 };

  (void)state;
  /* A GREASE extension and a large padding extension after the name. */
  memcpy(ext + ext_len, "\x0a\x0a\x00\x00" "\x00\x15\x01\x00", 8);
  ext_len += 8;
  memset(ext + ext_len, 0, 256);
  ext_len += 256;
  build(&h, ext, ext_len);
  for (size_t i = 0; i < sizeof(frags) / sizeof(frags[0]); i++) {
    size_t n = records(&h, frags[i], wire, sizeof(wire));
    assert_cuts(wire, n, "photos.example.net");
    /* Bytes after the ClientHello (the rest of its last record, or what follows) change nothing. */
    wire[n] = 0x17;
    assert_int_equal(tn_sni_tls(wire, n + 1, name), TN_OK);
  }
}

static void test_no_sni(void **state)
{
  static struct hello h;
  static uint8_t wire[1024];
  uint8_t other[] = { 0x00, 0x0b, 0x00, 0x02, 0x01, 0x00 };  /* ec_point_formats */
  char name[TN_SNI_NAME_MAX + 1];

  (void)state;
  build(&h, other, sizeof(other));
  assert_int_equal(tn_sni_tls(wire, records(&h, 16384, wire, sizeof(wire)), name), TN_OK);
  assert_string_equal(name, "");
  build(&h, NULL, 0);  /* no extensions block at all */
  assert_int_equal(tn_sni_tls(wire, records(&h, 16384, wire, sizeof(wire)), name), TN_OK);
  assert_string_equal(name, "");
}

static void test_huge_extension_list(void **state)
{
  static struct hello h;
  static uint8_t ext[65000], wire[80000];
  size_t k = 0;
  char name[TN_SNI_NAME_MAX + 1];

  (void)state;
  /* 4,000 distinct empty extensions, then the name: found, and fast. */
  for (size_t t = 1000; t < 5000; t++)
    ext[k++] = (uint8_t)(t >> 8), ext[k++] = (uint8_t)t, ext[k++] = 0, ext[k++] = 0;
  k += sni_ext("x.example.net", ext + k);
  build(&h, ext, k);
  assert_int_equal(tn_sni_tls(wire, records(&h, 16384, wire, sizeof(wire)), name), TN_OK);
  assert_string_equal(name, "x.example.net");
}

/* expect for a hello built with extensions ext, in one record and in 1-byte records. */
static void expect_ext(const uint8_t *ext, size_t ext_len, int expect)
{
  static struct hello h;
  static uint8_t wire[80000];
  char name[TN_SNI_NAME_MAX + 1];

  build(&h, ext, ext_len);
  assert_int_equal(tn_sni_tls(wire, records(&h, 16384, wire, sizeof(wire)), name), expect);
  assert_int_equal(tn_sni_tls(wire, records(&h, 1, wire, sizeof(wire)), name), expect);
}

static void test_invalid_hellos(void **state)
{
  uint8_t ext[600];
  size_t n;
  char name[TN_SNI_NAME_MAX + 1], long_label[80], long_name[300];

  (void)state;
  /* Names that are not DNS names. */
  const char *bad[] = { "", "a..b", ".a", "a.", "a b", "a_b.example", "10.0.0.1x\x01", "caf\xc3\xa9.example" };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    expect_ext(ext, sni_ext(bad[i], ext), TN_ERR_INVALID);
  memset(long_label, 'a', 64);
  long_label[64] = 0;
  expect_ext(ext, sni_ext(long_label, ext), TN_ERR_INVALID);
  long_label[63] = 0;
  expect_ext(ext, sni_ext(long_label, ext), TN_OK);
  memset(long_name, 'a', sizeof(long_name));
  for (size_t i = 50; i < sizeof(long_name); i += 51)
    long_name[i] = '.';
  long_name[254] = 0;
  expect_ext(ext, sni_ext(long_name, ext), TN_ERR_INVALID);
  /* Two server_name extensions, and a repeated other extension. */
  n = sni_ext("a.example", ext);
  n += sni_ext("b.example", ext + n);
  expect_ext(ext, n, TN_ERR_INVALID);
  expect_ext((const uint8_t *)"\x00\x0b\x00\x00\x00\x0b\x00\x00", 8, TN_ERR_INVALID);
  /* Lengths that disagree: extension longer than the block, list length off by one, a name type other than host. */
  n = sni_ext("a.example", ext);
  ext[3]++;
  expect_ext(ext, n, TN_ERR_INVALID);
  n = sni_ext("a.example", ext);
  ext[5]--;
  expect_ext(ext, n, TN_ERR_INVALID);
  n = sni_ext("a.example", ext);
  ext[6] = 1;
  expect_ext(ext, n, TN_ERR_INVALID);
  /* Not a handshake record, not TLS 1.x, a zero-length record, a ServerHello. */
  assert_int_equal(tn_sni_tls((const uint8_t *)"\x17\x03\x01\x00\x05", 5, name), TN_ERR_INVALID);
  assert_int_equal(tn_sni_tls((const uint8_t *)"\x16\x02", 2, name), TN_ERR_INVALID);
  assert_int_equal(tn_sni_tls((const uint8_t *)"\x16\x03\x01\x00\x00", 5, name), TN_ERR_INVALID);
  assert_int_equal(tn_sni_tls((const uint8_t *)"\x16\x03\x03\x00\x04\x02\x00\x00\x26", 9, name), TN_ERR_INVALID);
  /* A record that is not a handshake in the middle of the hello. */
  {
    static struct hello h;
    static uint8_t wire[2048];
    size_t w;
    build(&h, ext, sni_ext("a.example", ext));
    w = records(&h, 20, wire, sizeof(wire));
    wire[25] = 0x15;  /* the second record's type: an alert */
    assert_int_equal(tn_sni_tls(wire, w, name), TN_ERR_INVALID);
  }
}

/* ---- HTTP ---- */

static void http_ok(const char *head, const char *want)
{
  char name[TN_SNI_NAME_MAX + 1];
  size_t len = strlen(head);

  for (size_t cut = 0; cut < len; cut++)
    if (tn_sni_http((const uint8_t *)head, cut, name) != TN_ERR_NEED_MORE)
      fail_msg("prefix %zu of \"%s\" not TN_ERR_NEED_MORE", cut, head);
  assert_int_equal(tn_sni_http((const uint8_t *)head, len, name), TN_OK);
  assert_string_equal(name, want);
}

static void http_bad(const char *head)
{
  char name[TN_SNI_NAME_MAX + 1];

  if (tn_sni_http((const uint8_t *)head, strlen(head), name) != TN_ERR_INVALID)
    fail_msg("\"%s\" not TN_ERR_INVALID", head);
}

static void test_http_host(void **state)
{
  (void)state;
  http_ok("GET / HTTP/1.1\r\nHost: Blog.Example.NET\r\n\r\n", "blog.example.net");
  http_ok("GET /.well-known/acme-challenge/x HTTP/1.1\r\nUser-Agent: t\r\nhOsT:  a.example:8080 \r\nAccept: */*\r\n\r\n",
          "a.example");
  http_ok("GET / HTTP/1.1\r\nHost: example.net.\r\n\r\n", "example.net");
  http_ok("GET / HTTP/1.1\r\nHost: 192.0.2.7:80\r\n\r\n", "192.0.2.7");
  http_ok("GET / HTTP/1.1\r\nHost: [2001:DB8::1]:443\r\n\r\n", "[2001:db8::1]");
  http_ok("GET / HTTP/1.0\r\n\r\n", "");
  http_ok("OPTIONS * HTTP/1.1\r\nHost:\r\n\r\n", "");
}

static void test_http_invalid(void **state)
{
  (void)state;
  http_bad("GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n");
  http_bad("GET / HTTP/1.1\r\nHost: a_b.example\r\n\r\n");
  http_bad("GET / HTTP/1.1\r\nHost: a.example:99999\r\n\r\n");
  http_bad("GET / HTTP/1.1\r\nHost: a.example:\r\n\r\n");
  http_bad("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n");
  http_bad("GET / HTTP/1.1\r\nHost : a.example\r\n\r\n");
  http_bad("GET / HTTP/1.1\r\nX: 1\r\n folded\r\n\r\n");
  http_bad("GET / HTTP/1.1\nHost: a\n\n");
  http_bad("GET / HTTP/2.0\r\n\r\n");
  http_bad("GET  / HTTP/1.1\r\n\r\n");
  http_bad("get / HTTP/1.1\r\n\r\n");
  http_bad("GET / HTTP/1.1\r\nHost: a\x01.example\r\n\r\n");
  http_bad("GET / HTTP/1.1 \r\n\r\n");
  http_bad("GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n");  /* HTTP/1.1 without Host: a 400, never "*" */
}

static void test_peek(void **state)
{
  enum tn_sni_kind kind = TN_SNI_UNKNOWN;
  char name[TN_SNI_NAME_MAX + 1];

  (void)state;
  assert_int_equal(tn_sni_peek(openssl_hello, 0, &kind, name), TN_ERR_NEED_MORE);
  assert_int_equal(tn_sni_peek(openssl_hello, sizeof(openssl_hello), &kind, name), TN_OK);
  assert_int_equal(kind, TN_SNI_TLS);
  assert_int_equal(tn_sni_peek((const uint8_t *)"PUT / HTTP/1.1\r\nHost: h\r\n\r\n", 27, &kind, name), TN_OK);
  assert_int_equal(kind, TN_SNI_HTTP);
  assert_string_equal(name, "h");
  /* The kind comes from the first byte also when the rest is unreadable: the refusal speaks the visitor's protocol. */
  assert_int_equal(tn_sni_peek((const uint8_t *)"SSH-2.0-x\r\n", 11, &kind, name), TN_ERR_INVALID);
  assert_int_equal(kind, TN_SNI_HTTP);
  assert_int_equal(tn_sni_peek((const uint8_t *)"GET / HTTP/1.1\r\nCookie: a", 25, &kind, name), TN_ERR_NEED_MORE);
  assert_int_equal(kind, TN_SNI_HTTP);
  assert_int_equal(tn_sni_peek((const uint8_t *)"\x16\x03\x01\x00\x00", 5, &kind, name), TN_ERR_INVALID);
  assert_int_equal(kind, TN_SNI_TLS);
  assert_int_equal(tn_sni_peek((const uint8_t *)"\x00\x01", 2, &kind, name), TN_ERR_INVALID);
  assert_int_equal(kind, TN_SNI_UNKNOWN);
}

static void test_globs(void **state)
{
  (void)state;
  assert_int_equal(tn_sni_glob_valid("*"), TN_OK);
  assert_int_equal(tn_sni_glob_valid("*.example.net"), TN_OK);
  assert_int_equal(tn_sni_glob_valid("Blog.Example.net"), TN_OK);
  assert_int_equal(tn_sni_glob_valid("xn--caf-dma.example"), TN_OK);
  assert_int_equal(tn_sni_glob_valid(""), TN_ERR_INVALID);
  assert_int_equal(tn_sni_glob_valid("*example.net"), TN_ERR_INVALID);
  assert_int_equal(tn_sni_glob_valid("a.*.net"), TN_ERR_INVALID);
  assert_int_equal(tn_sni_glob_valid("*.*.net"), TN_ERR_INVALID);
  assert_int_equal(tn_sni_glob_valid("*."), TN_ERR_INVALID);
  assert_int_equal(tn_sni_glob_valid("caf\xc3\xa9.example"), TN_ERR_INVALID);
  assert_int_equal(tn_sni_glob_match("*", "anything"), TN_SNI_MATCH_ANY);
  assert_int_equal(tn_sni_glob_match("*", ""), TN_SNI_MATCH_ANY);
  assert_int_equal(tn_sni_glob_match("*.example.net", "a.example.net"), TN_SNI_MATCH_WILDCARD);
  assert_int_equal(tn_sni_glob_match("*.Example.NET", "a.example.net"), TN_SNI_MATCH_WILDCARD);
  assert_int_equal(tn_sni_glob_match("*.example.net", "example.net"), TN_SNI_NO_MATCH);
  assert_int_equal(tn_sni_glob_match("*.example.net", "a.b.example.net"), TN_SNI_NO_MATCH);
  assert_int_equal(tn_sni_glob_match("*.example.net", ""), TN_SNI_NO_MATCH);
  assert_int_equal(tn_sni_glob_match("Blog.Example.net", "blog.example.net"), TN_SNI_MATCH_EXACT);
  assert_int_equal(tn_sni_glob_match("blog.example.net", "blog.example.ne"), TN_SNI_NO_MATCH);
  assert_int_equal(tn_sni_glob_match("blog.example.net", ""), TN_SNI_NO_MATCH);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_real_openssl_hello), cmocka_unit_test(test_split_records),
    cmocka_unit_test(test_no_sni),             cmocka_unit_test(test_huge_extension_list),
    cmocka_unit_test(test_invalid_hellos),     cmocka_unit_test(test_http_host),
    cmocka_unit_test(test_http_invalid),       cmocka_unit_test(test_peek),
    cmocka_unit_test(test_globs),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
