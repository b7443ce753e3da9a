/* test_tls.c: tn_tls client/server pairs in memory: handshakes, data, every refusal and its words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/md.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "tunnel/error.h"
#include "tunnel/pki.h"
#include "tunnel/tls.h"

static char g_dir[256];

static const char *path(const char *name)
{
  static char buf[8][512];
  static int i;
  i = (i + 1) % 8;
  snprintf(buf[i], sizeof buf[i], "%s/%s", g_dir, name);
  return buf[i];
}

static void make_ca(const char *name)
{
  char crt[64], key[64], err[256];
  snprintf(crt, sizeof crt, "%s.crt", name);
  snprintf(key, sizeof key, "%s.key", name);
  struct tn_pki_request req;
  char subject[64];
  snprintf(subject, sizeof subject, "CN=%s", name);
  tn_pki_request_init(&req, subject, TN_PKI_USAGE_CA, TN_PKI_CA_DAYS);
  int rc = tn_pki_create_ca(path(crt), path(key), &req, err, sizeof err);
  if (rc != TN_OK)
    fail_msg("create_ca %s: %s", name, err);
}

/* Issues NAME.crt/NAME.key from CA, with SANs (localhost, tunnel.example, 127.0.0.1, ::1) or without. */
static void make_leaf_sans(const char *ca, const char *name, enum tn_pki_usage usage, enum tn_pki_key_type kt,
                           int from_days, int to_days, int sans)
{
  char cacrt[64], cakey[64], crt[64], key[64], err[256], subject[64];
  snprintf(cacrt, sizeof cacrt, "%s.crt", ca);
  snprintf(cakey, sizeof cakey, "%s.key", ca);
  snprintf(crt, sizeof crt, "%s.crt", name);
  snprintf(key, sizeof key, "%s.key", name);
  snprintf(subject, sizeof subject, "CN=%s", name);
  static const char *dns[] = { "localhost", "tunnel.example" };
  static const char *ips[] = { "127.0.0.1", "::1" };
  struct tn_pki_request req;
  tn_pki_request_init(&req, subject, usage, 30);
  req.key_type = kt;
  req.not_before = (int64_t)time(NULL) + (int64_t)from_days * 86400;
  req.not_after = (int64_t)time(NULL) + (int64_t)to_days * 86400;
  if (sans) {
    req.dns = dns;
    req.dns_count = 2;
    req.ips = ips;
    req.ip_count = 2;
  }
  int rc = tn_pki_issue(path(cacrt), path(cakey), path(crt), path(key), &req, err, sizeof err);
  if (rc != TN_OK)
    fail_msg("issue %s: %s", name, err);
}

/* As make_leaf_sans, with SANs for a server or a leaf for any use; offsets in days relative to now. */
static void make_leaf(const char *ca, const char *name, enum tn_pki_usage usage, enum tn_pki_key_type kt,
                      int from_days, int to_days)
{
  make_leaf_sans(ca, name, usage, kt, from_days, to_days, usage == TN_PKI_USAGE_SERVER || usage == TN_PKI_USAGE_NONE);
}

static int group_setup(void **state)
{
  (void)state;
  snprintf(g_dir, sizeof g_dir, "/tmp/tunnel-test-tls.XXXXXX");
  if (mkdtemp(g_dir) == NULL)
    return -1;
  make_ca("ca");
  make_ca("ca2");
  make_leaf("ca", "server", TN_PKI_USAGE_SERVER, TN_PKI_KEY_EC_P256, -1, 30);
  make_leaf("ca", "client", TN_PKI_USAGE_CLIENT, TN_PKI_KEY_EC_P256, -1, 30);
  make_leaf("ca", "expired", TN_PKI_USAGE_CLIENT, TN_PKI_KEY_EC_P256, -30, -1);
  make_leaf("ca", "future", TN_PKI_USAGE_SERVER, TN_PKI_KEY_EC_P256, 1, 30);
  make_leaf("ca2", "server2", TN_PKI_USAGE_SERVER, TN_PKI_KEY_EC_P256, -1, 30);
  make_leaf("ca2", "client2", TN_PKI_USAGE_CLIENT, TN_PKI_KEY_EC_P256, -1, 30);
  make_leaf("ca", "anyuse", TN_PKI_USAGE_NONE, TN_PKI_KEY_EC_P256, -1, 30);
  /* The dual-use certificate: a CN and nothing else (no extended key usage, no subjectAltName). */
  make_leaf_sans("ca", "cnonly", TN_PKI_USAGE_NONE, TN_PKI_KEY_EC_P256, -1, 30, 0);
  make_leaf_sans("ca", "nosan", TN_PKI_USAGE_SERVER, TN_PKI_KEY_EC_P256, -1, 30, 0);
  make_leaf("ca", "rsaserver", TN_PKI_USAGE_SERVER, TN_PKI_KEY_RSA_2048, -1, 30);
  return 0;
}

static int group_teardown(void **state)
{
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

static tn_tls_config *cfg_for(enum tn_tls_role role, const char *ca, const char *leaf)
{
  char c[64], k[64], a[64], err[512];
  snprintf(a, sizeof a, "%s.crt", ca);
  snprintf(c, sizeof c, "%s.crt", leaf);
  snprintf(k, sizeof k, "%s.key", leaf);
  tn_tls_config *cfg = NULL;
  int rc = tn_tls_config_new(&cfg, role, path(a), path(c), path(k), err, sizeof err);
  if (rc != TN_OK)
    fail_msg("config %s: %s", leaf, err);
  return cfg;
}

/* A config that skips the role rule (as tn_tls_config_new_mem does): a peer that plays the wrong role. */
static tn_tls_config *cfg_any(enum tn_tls_role role, const char *ca, const char *leaf)
{
  static char bufs[3][8192];
  char names[3][64], err[512];
  struct tn_tls_input in[3];
  snprintf(names[0], sizeof names[0], "%s.crt", ca);
  snprintf(names[1], sizeof names[1], "%s.crt", leaf);
  snprintf(names[2], sizeof names[2], "%s.key", leaf);
  for (int i = 0; i < 3; i++) {
    FILE *f = fopen(path(names[i]), "rb");
    if (f == NULL)
      fail_msg("cannot open %s", names[i]);
    size_t n = fread(bufs[i], 1, sizeof bufs[i] - 1, f);
    fclose(f);
    bufs[i][n] = '\0';
    in[i].name = names[i];
    in[i].data = (const unsigned char *)bufs[i];
    in[i].len = n;
  }
  tn_tls_config *cfg = NULL;
  if (tn_tls_config_new_mem(&cfg, role, &in[0], &in[1], &in[2], err, sizeof err) != TN_OK)
    fail_msg("config %s: %s", leaf, err);
  return cfg;
}

/* Moves every pending ciphertext byte from one side to the other, as far as the receiver takes it. */
static size_t xfer(tn_tls *from, tn_tls *to)
{
  size_t moved = 0;
  const uint8_t *p;
  size_t n;
  while ((n = tn_tls_pending(from, &p)) > 0) {
    size_t k = tn_tls_feed(to, p, n);
    tn_tls_consumed(from, k);
    moved += k;
    if (k < n)
      break;
  }
  return moved;
}

struct pair {
  tn_tls *c, *s;
  int rc_c, rc_s;
};

static void handshake(struct pair *p)
{
  p->rc_c = p->rc_s = TN_ERR_NEED_MORE;
  for (int i = 0; i < 50; i++) {
    p->rc_c = tn_tls_handshake(p->c);
    size_t a = xfer(p->c, p->s);
    p->rc_s = tn_tls_handshake(p->s);
    size_t b = xfer(p->s, p->c);
    if (p->rc_c == TN_OK && p->rc_s == TN_OK)
      return;
    if (a == 0 && b == 0 && i > 2 && (p->rc_c != TN_ERR_NEED_MORE || p->rc_s != TN_ERR_NEED_MORE)) {
      /* One last round so an alert already delivered is processed. */
      p->rc_c = tn_tls_handshake(p->c);
      p->rc_s = tn_tls_handshake(p->s);
      /*
       * TLS 1.3: the client's handshake ends before the server judges the client's
       * certificate, so the server's refusal is the first thing the client reads.
       */
      if (p->rc_c == TN_OK && p->rc_s == TN_ERR_TLS && strcmp(tn_tls_version(p->c), "TLSv1.3") == 0) {
        uint8_t rb[16];
        xfer(p->s, p->c);
        if (tn_tls_read(p->c, rb, sizeof rb) == TN_ERR_TLS_FATAL)
          p->rc_c = TN_ERR_TLS;
      }
      return;
    }
  }
}

static void pair_new(struct pair *p, tn_tls_config *cc, tn_tls_config *sc, const char *name)
{
  memset(p, 0, sizeof *p);
  assert_int_equal(tn_tls_new(&p->c, cc, name), TN_OK);
  assert_int_equal(tn_tls_new(&p->s, sc, NULL), TN_OK);
  /* Each connection holds its own reference: dropping ours early must be safe. */
  tn_tls_config_unref(cc);
  tn_tls_config_unref(sc);
}

static void pair_del(struct pair *p)
{
  tn_tls_del(p->c);
  tn_tls_del(p->s);
}

static void run(struct pair *p, const char *cli_ca, const char *cli_leaf, const char *srv_ca, const char *srv_leaf,
                const char *name)
{
  pair_new(p, cfg_for(TN_TLS_CLIENT, cli_ca, cli_leaf), cfg_for(TN_TLS_SERVER, srv_ca, srv_leaf), name);
  handshake(p);
}

static void assert_contains(const char *hay, const char *needle)
{
  if (strstr(hay, needle) == NULL)
    fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

/*
 * A client the server refused: with TLS 1.2 the alert says why. An mbedTLS 3.6 server sends
 * a TLS 1.3 client its alert under keys the client has already left, so only the fact shows.
 */
static void assert_client_refused(const tn_tls *c, const char *tls12_text)
{
  if (tn_tls_has_tls13()) /* both ends are this build */
    assert_string_equal(tn_tls_error_text(c), "peer rejected the handshake (TLS 1.3: its alert is unreadable here; "
                                              "the server's log says why)");
  else
    assert_string_equal(tn_tls_error_text(c), tls12_text);
}

/* A refusal: the reason, then the certificate it is about ("; CN ..." or "; sha256 ..."). */
static void assert_rejected(const char *text, const char *reason)
{
  size_t n = strlen(reason);
  if (strncmp(text, reason, n) != 0 || (strncmp(text + n, "; CN \"", 6) != 0 && strncmp(text + n, "; sha256 ", 9) != 0))
    fail_msg("\"%s\" is not \"%s; <certificate>\"", text, reason);
}

/* ---- success and data ---- */

static void test_handshake_ok(void **state)
{
  (void)state;
  struct pair p;
  run(&p, "ca", "client", "ca", "server", "localhost");
  assert_int_equal(p.rc_c, TN_OK);
  assert_int_equal(p.rc_s, TN_OK);
  assert_true(tn_tls_is_established(p.c));
  /* TLS 1.3 when the build has it (both ends here are the same build); CHACHA20-POLY1305 first either way. */
  assert_string_equal(tn_tls_version(p.c), tn_tls_has_tls13() ? "TLSv1.3" : "TLSv1.2");
  assert_string_equal(tn_tls_version(p.s), tn_tls_version(p.c));
  assert_string_equal(tn_tls_ciphersuite(p.c), tn_tls_has_tls13() ? "TLS1-3-CHACHA20-POLY1305-SHA256"
                                                                  : "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256");
  assert_string_equal(tn_tls_error_text(p.c), "");

  struct tn_tls_peer peer;
  assert_int_equal(tn_tls_peer_identity(p.s, &peer), TN_OK);
  assert_string_equal(peer.cn, "client");
  /* The fingerprint is SHA-256 over the certificate's DER, as openssl x509 -fingerprint prints it. */
  mbedtls_x509_crt crt;
  mbedtls_x509_crt_init(&crt);
  assert_int_equal(mbedtls_x509_crt_parse_file(&crt, path("client.crt")), 0);
  unsigned char d[32];
  assert_int_equal(mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), crt.raw.p, crt.raw.len, d), 0);
  char hex[65];
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", d[i]);
  assert_string_equal(peer.sha256_hex, hex);
  mbedtls_x509_crt_free(&crt);
  assert_true(peer.not_after > (int64_t)time(NULL));

  assert_int_equal(tn_tls_peer_identity(p.c, &peer), TN_OK);
  assert_string_equal(peer.cn, "server");
  assert_string_equal(peer.sans, "DNS:localhost,DNS:tunnel.example,IP:127.0.0.1,IP:::1");
  pair_del(&p);
}

/* ALPN: what both sides list is agreed; a side without a list agrees nothing and refuses nothing. */
static void alpn_case(const char *const *client, const char *const *server, int want_ok, const char *want)
{
  tn_tls_config *cc = cfg_for(TN_TLS_CLIENT, "ca", "client"), *sc = cfg_for(TN_TLS_SERVER, "ca", "server");
  struct pair p;

  if (client != NULL)
    assert_int_equal(tn_tls_config_set_alpn(cc, client), TN_OK);
  if (server != NULL)
    assert_int_equal(tn_tls_config_set_alpn(sc, server), TN_OK);
  pair_new(&p, cc, sc, "localhost");
  assert_string_equal(tn_tls_alpn(p.c), "");
  handshake(&p);
  if (!want_ok) {
    assert_int_equal(p.rc_s, TN_ERR_TLS);
    pair_del(&p);
    return;
  }
  assert_int_equal(p.rc_c, TN_OK);
  assert_int_equal(p.rc_s, TN_OK);
  assert_string_equal(tn_tls_alpn(p.c), want);
  assert_string_equal(tn_tls_alpn(p.s), want);
  pair_del(&p);
}

static void test_alpn(void **state)
{
  static const char *const v2[] = { "tunnel/2", NULL };
  static const char *const v3_v2[] = { "tunnel/3", "tunnel/2", NULL };
  static const char *const http[] = { "http/1.1", NULL };
  static const char *const none[] = { NULL };
  (void)state;

  alpn_case(v2, v2, 1, "tunnel/2");
  alpn_case(v3_v2, v2, 1, "tunnel/2");  /* a later client still offers what an older server speaks */
  alpn_case(v2, NULL, 1, "");           /* an older server ignores the offer */
  alpn_case(NULL, v2, 1, "");           /* an older client offers nothing and is served */
  alpn_case(http, v2, 0, "");           /* offering only other protocols is refused (RFC 7301 section 3.2) */
  assert_int_equal(tn_tls_config_set_alpn(NULL, v2), TN_ERR_ARG);
  {
    tn_tls_config *cc = cfg_for(TN_TLS_CLIENT, "ca", "client");
    assert_int_equal(tn_tls_config_set_alpn(cc, none), TN_ERR_ARG);
    tn_tls_config_unref(cc);
  }
}

static void test_identity_before_handshake(void **state)
{
  (void)state;
  struct pair p;
  pair_new(&p, cfg_for(TN_TLS_CLIENT, "ca", "client"), cfg_for(TN_TLS_SERVER, "ca", "server"), "localhost");
  struct tn_tls_peer peer;
  assert_int_equal(tn_tls_peer_identity(p.s, &peer), TN_ERR_ARG);
  uint8_t b[4];
  assert_int_equal(tn_tls_read(p.s, b, sizeof b), TN_ERR_ARG);
  assert_int_equal(tn_tls_write(p.c, b, sizeof b), TN_ERR_ARG);
  assert_string_equal(tn_tls_ciphersuite(p.c), "");
  pair_del(&p);
}

static uint32_t fnv(uint32_t h, const uint8_t *b, size_t n)
{
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 16777619u;
  return h;
}

/* Sends total bytes from -> to with a checksum while both directions stay pumped. */
static void transfer(tn_tls *from, tn_tls *to, size_t total)
{
  uint8_t *src = malloc(total);
  uint8_t *dst = malloc(total);
  assert_non_null(src);
  assert_non_null(dst);
  for (size_t i = 0; i < total; i++)
    src[i] = (uint8_t)(i * 2654435761u >> 13);
  size_t sent = 0, got = 0;
  int rounds = 0;
  while (got < total) {
    assert_true(++rounds < 100000);
    if (sent < total) {
      long n = tn_tls_write(from, src + sent, total - sent);
      assert_true(n >= 0);
      sent += (size_t)n;
    }
    xfer(from, to);
    for (;;) {
      long n = tn_tls_read(to, dst + got, total - got < 7000 ? total - got : 7000);
      if (n == TN_ERR_NEED_MORE)
        break;
      assert_true(n > 0);
      got += (size_t)n;
      if (got == total)
        break;
    }
    xfer(to, from);
  }
  assert_int_equal(fnv(2166136261u, src, total), fnv(2166136261u, dst, total));
  assert_memory_equal(src, dst, total);
  free(src);
  free(dst);
}

static void test_data_both_ways(void **state)
{
  (void)state;
  struct pair p;
  run(&p, "ca", "client", "ca", "server", "localhost");
  assert_int_equal(p.rc_s, TN_OK);
  transfer(p.c, p.s, 1);
  transfer(p.s, p.c, 100);
  transfer(p.c, p.s, 1u << 20);
  transfer(p.s, p.c, 1u << 20);
  pair_del(&p);
}

/* Data sent in the same flight as the client's Finished is readable right after TN_OK. */
static void test_data_right_after_handshake(void **state)
{
  (void)state;
  struct pair p;
  pair_new(&p, cfg_for(TN_TLS_CLIENT, "ca", "client"), cfg_for(TN_TLS_SERVER, "ca", "server"), "localhost");
  int rc_c = TN_ERR_NEED_MORE;
  for (int i = 0; i < 10 && rc_c != TN_OK; i++) {
    rc_c = tn_tls_handshake(p.c);
    xfer(p.c, p.s);
    if (rc_c == TN_OK)
      break;
    tn_tls_handshake(p.s);
    xfer(p.s, p.c);
  }
  assert_int_equal(rc_c, TN_OK);
  assert_int_equal(tn_tls_write(p.c, (const uint8_t *)"hello", 5), 5);
  xfer(p.c, p.s);
  assert_int_equal(tn_tls_handshake(p.s), TN_OK);
  uint8_t buf[16];
  assert_int_equal(tn_tls_read(p.s, buf, sizeof buf), 5);
  assert_memory_equal(buf, "hello", 5);
  assert_int_equal(tn_tls_read(p.s, buf, sizeof buf), TN_ERR_NEED_MORE);
  pair_del(&p);
}

static void test_bounded_buffers(void **state)
{
  (void)state;
  struct pair p;
  run(&p, "ca", "client", "ca", "server", "localhost");
  assert_int_equal(p.rc_s, TN_OK);
  size_t big = 4u << 20;
  uint8_t *buf = calloc(1, big);
  assert_non_null(buf);
  long n = tn_tls_write(p.c, buf, big);
  assert_true(n > 0 && (size_t)n < big);
  const uint8_t *out;
  size_t pend = tn_tls_pending(p.c, &out);
  assert_true(pend <= TN_TLS_OUTPUT_CAP);
  /* The queue is full: nothing more until the caller drains it. */
  assert_int_equal(tn_tls_write(p.c, buf, big), 0);
  size_t fed = tn_tls_feed(p.s, out, pend);
  assert_true(fed > 0 && fed <= TN_TLS_INPUT_CAP);
  /* The input side is bounded too: what did not fit waits until reads make room. */
  assert_true(fed < pend);
  assert_int_equal(tn_tls_feed(p.s, out + fed, pend - fed), 0);
  uint8_t *plain = malloc(TN_TLS_INPUT_CAP);
  assert_true(tn_tls_read(p.s, plain, TN_TLS_INPUT_CAP) > 0);
  assert_true(tn_tls_feed(p.s, out + fed, pend - fed) > 0);
  free(plain);
  free(buf);
  pair_del(&p);
}

static void test_close_notify(void **state)
{
  (void)state;
  struct pair p;
  run(&p, "ca", "client", "ca", "server", "localhost");
  assert_int_equal(p.rc_s, TN_OK);
  assert_int_equal(tn_tls_write(p.c, (const uint8_t *)"bye", 3), 3);
  assert_int_equal(tn_tls_close_notify(p.c), TN_OK);
  assert_int_equal(tn_tls_write(p.c, (const uint8_t *)"x", 1), TN_ERR_ARG);
  xfer(p.c, p.s);
  uint8_t buf[16];
  assert_int_equal(tn_tls_read(p.s, buf, sizeof buf), 3);
  assert_int_equal(tn_tls_read(p.s, buf, sizeof buf), 0);
  assert_true(tn_tls_peer_closed(p.s));
  assert_int_equal(tn_tls_read(p.s, buf, sizeof buf), 0);
  /* Half-close: the server can still answer. */
  assert_int_equal(tn_tls_write(p.s, (const uint8_t *)"ok", 2), 2);
  assert_int_equal(tn_tls_close_notify(p.s), TN_OK);
  xfer(p.s, p.c);
  assert_int_equal(tn_tls_read(p.c, buf, sizeof buf), 2);
  assert_int_equal(tn_tls_read(p.c, buf, sizeof buf), 0);
  assert_string_equal(tn_tls_error_text(p.s), "");
  pair_del(&p);
}

/* ---- refusals ---- */

static void test_wrong_ca_server_cert(void **state)
{
  (void)state;
  struct pair p;
  /* The server's certificate comes from ca2, which the client does not trust. */
  run(&p, "ca", "client", "ca", "server2", "localhost");
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  assert_rejected(tn_tls_error_text(p.c), "server certificate rejected: unknown CA (not signed by a trusted CA)");
  assert_int_equal(p.rc_s, TN_ERR_TLS);
  assert_string_equal(tn_tls_error_text(p.s), "peer rejected the handshake: unknown CA (alert 48)");
  pair_del(&p);
}

static void test_wrong_ca_client_cert(void **state)
{
  (void)state;
  struct pair p;
  run(&p, "ca", "client2", "ca", "server", "localhost");
  assert_int_equal(p.rc_s, TN_ERR_TLS);
  assert_rejected(tn_tls_error_text(p.s), "client certificate rejected: unknown CA (not signed by a trusted CA)");
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  assert_client_refused(p.c, "peer rejected the handshake: unknown CA (alert 48)");
  pair_del(&p);
}

static void test_expired_client(void **state)
{
  (void)state;
  struct pair p;
  run(&p, "ca", "expired", "ca", "server", "localhost");
  assert_int_equal(p.rc_s, TN_ERR_TLS);
  assert_rejected(tn_tls_error_text(p.s), "client certificate rejected: certificate expired");
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  assert_client_refused(p.c, "peer rejected the handshake: certificate expired (alert 45)");
  pair_del(&p);
}

static void test_future_server(void **state)
{
  (void)state;
  struct pair p;
  run(&p, "ca", "client", "ca", "future", "localhost");
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  assert_rejected(tn_tls_error_text(p.c), "server certificate rejected: certificate not yet valid");
  assert_int_equal(p.rc_s, TN_ERR_TLS);
  pair_del(&p);
}

static void test_hostname_mismatch(void **state)
{
  (void)state;
  struct pair p;
  run(&p, "ca", "client", "ca", "server", "other.example");
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  assert_rejected(tn_tls_error_text(p.c),
                      "server certificate rejected: hostname mismatch (certificate is not for other.example)");
  assert_int_equal(p.rc_s, TN_ERR_TLS);
  assert_contains(tn_tls_error_text(p.s), "peer rejected the handshake");
  pair_del(&p);
}

static void test_ip_san_match(void **state)
{
  (void)state;
  const char *names[] = { "127.0.0.1", "::1", "[::1]", "tunnel.example" };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    struct pair p;
    run(&p, "ca", "client", "ca", "server", names[i]);
    if (p.rc_c != TN_OK)
      fail_msg("%s: %s", names[i], tn_tls_error_text(p.c));
    assert_int_equal(p.rc_s, TN_OK);
    pair_del(&p);
  }
}

static void test_ip_san_mismatch(void **state)
{
  (void)state;
  struct pair p;
  run(&p, "ca", "client", "ca", "server", "10.1.2.3");
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  assert_rejected(tn_tls_error_text(p.c),
                      "server certificate rejected: IP address mismatch (certificate is not for 10.1.2.3)");
  pair_del(&p);
  /* An address written as a DNS name in the certificate does not count for an IP literal. */
  run(&p, "ca", "client", "ca", "server", "::2");
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  assert_contains(tn_tls_error_text(p.c), "IP address mismatch");
  pair_del(&p);
}

static void test_client_cert_as_server(void **state)
{
  (void)state;
  struct pair p;
  /*
   * mbedTLS refuses to serve with a certificate whose EKU forbids it, so the server fails
   * first; the client-side EKU check is exercised against openssl s_server in tls_openssl.sh.
   */
  pair_new(&p, cfg_for(TN_TLS_CLIENT, "ca", "client"), cfg_any(TN_TLS_SERVER, "ca", "client"), "client");
  handshake(&p);
  assert_int_equal(p.rc_s, TN_ERR_TLS);
  assert_string_equal(tn_tls_error_text(p.s),
                      "own certificate is not for server use (extended key usage); no usable certificate");
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  assert_string_equal(tn_tls_error_text(p.c),
                      "peer rejected the handshake: handshake failure (no common parameters) (alert 40)");
  pair_del(&p);
}

static void test_server_cert_as_client(void **state)
{
  (void)state;
  struct pair p;
  pair_new(&p, cfg_any(TN_TLS_CLIENT, "ca", "server"), cfg_for(TN_TLS_SERVER, "ca", "server"), "localhost");
  handshake(&p);
  assert_int_equal(p.rc_s, TN_ERR_TLS);
  assert_rejected(tn_tls_error_text(p.s),
                  "client certificate rejected: certificate not for client use (its extended key usage lacks clientAuth)");
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  assert_client_refused(p.c, "peer rejected the handshake: unsupported certificate (wrong key usage or name) (alert 43)");
  pair_del(&p);
}

#define NO_EKU_CLIENT "client certificate rejected: it has no extended key usage (a client certificate needs " \
  "clientAuth; one for any use could act as client and server)"
#define NO_EKU_SERVER "server certificate rejected: it has no extended key usage (a server certificate needs " \
  "serverAuth; one for any use could act as client and server)"
#define NO_SAN_SERVER "server certificate rejected: it has no DNS or IP subjectAltName (a server certificate names " \
  "its host there; the CN is never taken as a host name)"

/* One certificate without extended key usage or subjectAltName is neither client nor server. */
static void test_dual_use_refused(void **state)
{
  (void)state;
  struct pair p;

  /* As a client: the server refuses it. */
  pair_new(&p, cfg_any(TN_TLS_CLIENT, "ca", "cnonly"), cfg_for(TN_TLS_SERVER, "ca", "server"), "localhost");
  handshake(&p);
  assert_int_equal(p.rc_s, TN_ERR_TLS);
  assert_rejected(tn_tls_error_text(p.s), NO_EKU_CLIENT);
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  pair_del(&p);

  /* As a server dialled by its CN (mbedTLS alone would take the CN as the name): the client refuses it. */
  pair_new(&p, cfg_for(TN_TLS_CLIENT, "ca", "client"), cfg_any(TN_TLS_SERVER, "ca", "cnonly"), "cnonly");
  handshake(&p);
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  assert_rejected(tn_tls_error_text(p.c), NO_EKU_SERVER);
  pair_del(&p);

  /* With SANs but still no extended key usage: refused both ways. */
  pair_new(&p, cfg_for(TN_TLS_CLIENT, "ca", "client"), cfg_any(TN_TLS_SERVER, "ca", "anyuse"), "localhost");
  handshake(&p);
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  assert_rejected(tn_tls_error_text(p.c), NO_EKU_SERVER);
  pair_del(&p);
  pair_new(&p, cfg_any(TN_TLS_CLIENT, "ca", "anyuse"), cfg_for(TN_TLS_SERVER, "ca", "server"), "localhost");
  handshake(&p);
  assert_int_equal(p.rc_s, TN_ERR_TLS);
  assert_rejected(tn_tls_error_text(p.s), NO_EKU_CLIENT);
  pair_del(&p);

  /* serverAuth without a subjectAltName, dialled by its CN and by an address: refused. */
  pair_new(&p, cfg_for(TN_TLS_CLIENT, "ca", "client"), cfg_any(TN_TLS_SERVER, "ca", "nosan"), "nosan");
  handshake(&p);
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  assert_rejected(tn_tls_error_text(p.c), NO_SAN_SERVER);
  pair_del(&p);
  pair_new(&p, cfg_for(TN_TLS_CLIENT, "ca", "client"), cfg_any(TN_TLS_SERVER, "ca", "nosan"), "127.0.0.1");
  handshake(&p);
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  assert_rejected(tn_tls_error_text(p.c), NO_SAN_SERVER);
  pair_del(&p);

  /* The right certificates for each role still meet. */
  run(&p, "ca", "client", "ca", "server", "localhost");
  assert_int_equal(p.rc_c, TN_OK);
  assert_int_equal(p.rc_s, TN_OK);
  pair_del(&p);
}

/* The own certificate must fit the role before any handshake: tn_tls_config_new says why, naming the file. */
static void test_own_role_refused(void **state)
{
  (void)state;
  static const struct {
    enum tn_tls_role role;
    const char *leaf;
    const char *why;
  } cases[] = {
    { TN_TLS_SERVER, "cnonly", "cannot be the server certificate: it has no extended key usage (a server certificate "
                               "needs serverAuth; one for any use could act as client and server)" },
    { TN_TLS_SERVER, "nosan", "cannot be the server certificate: it has no DNS or IP subjectAltName" },
    { TN_TLS_SERVER, "client", "cannot be the server certificate: certificate not for server use (its extended key "
                               "usage lacks serverAuth)" },
    { TN_TLS_CLIENT, "cnonly", "cannot be the client certificate: it has no extended key usage (a client certificate "
                               "needs clientAuth" },
    { TN_TLS_CLIENT, "anyuse", "cannot be the client certificate: it has no extended key usage" },
    { TN_TLS_CLIENT, "server", "cannot be the client certificate: certificate not for client use (its extended key "
                               "usage lacks clientAuth)" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char crt[64], key[64], err[512] = "", want[600];
    tn_tls_config *cfg = NULL;
    snprintf(crt, sizeof crt, "%s.crt", cases[i].leaf);
    snprintf(key, sizeof key, "%s.key", cases[i].leaf);
    assert_int_equal(tn_tls_config_new(&cfg, cases[i].role, path("ca.crt"), path(crt), path(key), err, sizeof err),
                     TN_ERR_INVALID);
    assert_null(cfg);
    snprintf(want, sizeof want, "%s: %s", path(crt), cases[i].why);
    if (strncmp(err, want, strlen(want)) != 0)
      fail_msg("case %zu: \"%s\" does not start with \"%s\"", i, err, want);
    /* Loaded without the rule, the config still answers the question. */
    cfg = cfg_any(cases[i].role, "ca", cases[i].leaf);
    assert_int_equal(tn_tls_config_role_check(cfg, err, sizeof err), TN_ERR_INVALID);
    assert_int_equal(tn_tls_config_usage_ok(cfg), 0);
    tn_tls_config_unref(cfg);
  }
  tn_tls_config *cfg = cfg_for(TN_TLS_SERVER, "ca", "server");
  char why[200];
  assert_int_equal(tn_tls_config_role_check(cfg, why, sizeof why), TN_OK);
  tn_tls_config_unref(cfg);
}

static void test_rsa_server(void **state)
{
  (void)state;
  struct pair p;
  run(&p, "ca", "client", "ca", "rsaserver", "localhost");
  if (p.rc_c != TN_OK)
    fail_msg("%s / %s", tn_tls_error_text(p.c), tn_tls_error_text(p.s));
  assert_int_equal(p.rc_s, TN_OK);
  assert_string_equal(tn_tls_ciphersuite(p.c), tn_tls_has_tls13() ? "TLS1-3-CHACHA20-POLY1305-SHA256"
                                                                  : "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256");
  transfer(p.c, p.s, 100000);
  pair_del(&p);
}

/* A plain mbedTLS client without a certificate, over the same kind of memory pipe. */
struct raw_bio {
  tn_tls *peer;
  uint8_t buf[65536];
  size_t len;
};

static int raw_send(void *ctx, const unsigned char *b, size_t n)
{
  struct raw_bio *r = ctx;
  size_t k = tn_tls_feed(r->peer, b, n);
  return k == 0 ? MBEDTLS_ERR_SSL_WANT_WRITE : (int)k;
}

static int raw_recv(void *ctx, unsigned char *b, size_t n)
{
  struct raw_bio *r = ctx;
  const uint8_t *p;
  size_t have = tn_tls_pending(r->peer, &p);
  if (have == 0)
    return MBEDTLS_ERR_SSL_WANT_READ;
  if (n > have)
    n = have;
  memcpy(b, p, n);
  tn_tls_consumed(r->peer, n);
  return (int)n;
}

static void test_no_client_certificate(void **state)
{
  (void)state;
  tn_tls_config *sc = cfg_for(TN_TLS_SERVER, "ca", "server");
  tn_tls *s;
  assert_int_equal(tn_tls_new(&s, sc, NULL), TN_OK);
  tn_tls_config_unref(sc);

  mbedtls_entropy_context ent;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_ssl_config conf;
  mbedtls_ssl_context ssl;
  mbedtls_entropy_init(&ent);
  mbedtls_ctr_drbg_init(&drbg);
  mbedtls_ssl_config_init(&conf);
  mbedtls_ssl_init(&ssl);
  assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0), 0);
  assert_int_equal(mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                               MBEDTLS_SSL_PRESET_DEFAULT), 0);
  mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_NONE);
  mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
  assert_int_equal(mbedtls_ssl_setup(&ssl, &conf), 0);
  struct raw_bio *bio = calloc(1, sizeof *bio);
  bio->peer = s;
  mbedtls_ssl_set_bio(&ssl, bio, raw_send, raw_recv, NULL);

  int rc = TN_ERR_NEED_MORE;
  int ret = 0;
  for (int i = 0; i < 20 && rc == TN_ERR_NEED_MORE; i++) {
    ret = mbedtls_ssl_handshake(&ssl);
    rc = tn_tls_handshake(s);
  }
  assert_int_equal(rc, TN_ERR_TLS);
  assert_string_equal(tn_tls_error_text(s), "no client certificate");
  ret = mbedtls_ssl_handshake(&ssl);
  if (ret == 0) {
    /* TLS 1.3: the client finished first; the refusal is what it reads next. */
    unsigned char b[16];
    ret = mbedtls_ssl_read(&ssl, b, sizeof b);
  }
  assert_true(ret < 0);

  mbedtls_ssl_free(&ssl);
  mbedtls_ssl_config_free(&conf);
  mbedtls_ctr_drbg_free(&drbg);
  mbedtls_entropy_free(&ent);
  free(bio);
  tn_tls_del(s);
}

/* ---- broken input ---- */

static void test_garbage_handshake(void **state)
{
  (void)state;
  tn_tls_config *sc = cfg_for(TN_TLS_SERVER, "ca", "server");
  tn_tls *s;
  assert_int_equal(tn_tls_new(&s, sc, NULL), TN_OK);
  tn_tls_config_unref(sc);
  const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  tn_tls_feed(s, (const uint8_t *)http, strlen(http));
  assert_int_equal(tn_tls_handshake(s), TN_ERR_TLS);
  assert_string_equal(tn_tls_error_text(s), "malformed record: not a TLS ClientHello");
  /* Final: it stays failed and takes no more input. */
  assert_int_equal(tn_tls_handshake(s), TN_ERR_TLS);
  assert_int_equal(tn_tls_feed(s, (const uint8_t *)"x", 1), 0);
  tn_tls_del(s);
}

static void test_truncated_client_hello(void **state)
{
  (void)state;
  tn_tls_config *cc = cfg_for(TN_TLS_CLIENT, "ca", "client");
  tn_tls_config *sc = cfg_for(TN_TLS_SERVER, "ca", "server");
  tn_tls *c, *s;
  assert_int_equal(tn_tls_new(&c, cc, "localhost"), TN_OK);
  assert_int_equal(tn_tls_new(&s, sc, NULL), TN_OK);
  tn_tls_config_unref(cc);
  tn_tls_config_unref(sc);
  assert_int_equal(tn_tls_handshake(c), TN_ERR_NEED_MORE);
  const uint8_t *hello;
  size_t n = tn_tls_pending(c, &hello);
  assert_true(n > 40);
  /* Every truncation point is "need more", then EOF makes it a clean failure. */
  for (size_t cut = 1; cut < n; cut += 7) {
    tn_tls *s2;
    tn_tls_config *sc2 = cfg_for(TN_TLS_SERVER, "ca", "server");
    assert_int_equal(tn_tls_new(&s2, sc2, NULL), TN_OK);
    tn_tls_config_unref(sc2);
    tn_tls_feed(s2, hello, cut);
    assert_int_equal(tn_tls_handshake(s2), TN_ERR_NEED_MORE);
    tn_tls_eof(s2);
    assert_int_equal(tn_tls_handshake(s2), TN_ERR_TLS);
    assert_string_equal(tn_tls_error_text(s2), "peer closed during handshake");
    tn_tls_del(s2);
  }
  tn_tls_del(c);
  tn_tls_del(s);
}

static void test_corrupt_and_truncated_records(void **state)
{
  (void)state;
  struct pair p;
  run(&p, "ca", "client", "ca", "server", "localhost");
  assert_int_equal(p.rc_s, TN_OK);
  uint8_t msg[1000];
  memset(msg, 'a', sizeof msg);
  assert_int_equal(tn_tls_write(p.c, msg, sizeof msg), sizeof msg);
  const uint8_t *rec;
  size_t n = tn_tls_pending(p.c, &rec);
  uint8_t *copy = malloc(n);
  memcpy(copy, rec, n);
  tn_tls_consumed(p.c, n);

  /* A flipped ciphertext byte fails authentication. */
  copy[n / 2] ^= 1;
  assert_int_equal(tn_tls_feed(p.s, copy, n), n);
  uint8_t buf[2000];
  assert_int_equal(tn_tls_read(p.s, buf, sizeof buf), TN_ERR_TLS_FATAL);
  assert_string_equal(tn_tls_error_text(p.s), "malformed record: authentication failed (bad MAC)");
  assert_int_equal(tn_tls_read(p.s, buf, sizeof buf), TN_ERR_TLS_FATAL);
  assert_int_equal(tn_tls_write(p.s, buf, 1), TN_ERR_TLS_FATAL);
  pair_del(&p);

  /* A record cut short by EOF is a truncation, not a clean close. */
  run(&p, "ca", "client", "ca", "server", "localhost");
  assert_int_equal(tn_tls_write(p.c, msg, sizeof msg), sizeof msg);
  n = tn_tls_pending(p.c, &rec);
  tn_tls_feed(p.s, rec, n - 10);
  assert_int_equal(tn_tls_read(p.s, buf, sizeof buf), TN_ERR_NEED_MORE);
  tn_tls_eof(p.s);
  assert_int_equal(tn_tls_read(p.s, buf, sizeof buf), TN_ERR_TLS_FATAL);
  assert_string_equal(tn_tls_error_text(p.s), "peer closed the connection without close_notify (truncated)");
  pair_del(&p);

  /* Garbage after the handshake: a bad record header. */
  run(&p, "ca", "client", "ca", "server", "localhost");
  const uint8_t junk[] = { 0x99, 0x03, 0x03, 0x00, 0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
  tn_tls_feed(p.s, junk, sizeof junk);
  assert_int_equal(tn_tls_read(p.s, buf, sizeof buf), TN_ERR_TLS_FATAL);
  assert_string_equal(tn_tls_error_text(p.s), "malformed record");
  pair_del(&p);
  free(copy);
}

static void test_peer_closed_during_handshake(void **state)
{
  (void)state;
  tn_tls_config *cc = cfg_for(TN_TLS_CLIENT, "ca", "client");
  tn_tls *c;
  assert_int_equal(tn_tls_new(&c, cc, "localhost"), TN_OK);
  tn_tls_config_unref(cc);
  assert_int_equal(tn_tls_handshake(c), TN_ERR_NEED_MORE);
  tn_tls_eof(c);
  assert_int_equal(tn_tls_handshake(c), TN_ERR_TLS);
  assert_string_equal(tn_tls_error_text(c), "peer closed during handshake");
  tn_tls_del(c);
}

/* ---- configuration errors ---- */

static void expect_config_error(enum tn_tls_role role, const char *ca, const char *crt, const char *key,
                                const char *want)
{
  tn_tls_config *cfg = NULL;
  char err[512];
  int rc = tn_tls_config_new(&cfg, role, ca, crt, key, err, sizeof err);
  assert_int_not_equal(rc, TN_OK);
  assert_null(cfg);
  assert_contains(err, want);
}

static void test_config_errors(void **state)
{
  (void)state;
  char want[600];
  snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path("nope.crt"));
  expect_config_error(TN_TLS_SERVER, path("nope.crt"), path("server.crt"), path("server.key"), want);
  snprintf(want, sizeof want, "%s: no certificate found", path("server.key"));
  expect_config_error(TN_TLS_SERVER, path("server.key"), path("server.crt"), path("server.key"), want);
  /* A certificate given as the key: first its world-readable mode is refused, then its content. */
  snprintf(want, sizeof want, "%s: permissions 0644 are too open for a private key (others may read it); run: chmod 600 %s",
           path("server.crt"), path("server.crt"));
  assert_int_equal(chmod(path("server.crt"), 0644), 0);
  expect_config_error(TN_TLS_SERVER, path("ca.crt"), path("server.crt"), path("server.crt"), want);
  assert_int_equal(chmod(path("server.crt"), 0600), 0);
  snprintf(want, sizeof want, "%s: no private key found", path("server.crt"));
  expect_config_error(TN_TLS_SERVER, path("ca.crt"), path("server.crt"), path("server.crt"), want);
  assert_int_equal(chmod(path("server.crt"), 0644), 0);
  snprintf(want, sizeof want, "%s: private key does not match the certificate in %s", path("client.key"),
           path("server.crt"));
  expect_config_error(TN_TLS_SERVER, path("ca.crt"), path("server.crt"), path("client.key"), want);
  FILE *f = fopen(path("empty.pem"), "w");
  fclose(f);
  snprintf(want, sizeof want, "%s: file is empty", path("empty.pem"));
  expect_config_error(TN_TLS_SERVER, path("empty.pem"), path("server.crt"), path("server.key"), want);

  tn_tls_config *cfg = cfg_for(TN_TLS_CLIENT, "ca", "client");
  tn_tls *t;
  assert_int_equal(tn_tls_new(&t, cfg, NULL), TN_ERR_ARG);
  tn_tls_config_unref(cfg);
}

static void test_fingerprint_parse(void **state)
{
  (void)state;
  char out[65];
  const char *hex = "ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01";
  assert_int_equal(tn_tls_fingerprint_parse(hex, out), TN_OK);
  assert_string_equal(out, hex);
  assert_int_equal(tn_tls_fingerprint_parse("sha256 Fingerprint=AB:01:CD:23:EF:45:AB:01:CD:23:EF:45:AB:01:CD:23:"
                                            "EF:45:AB:01:CD:23:EF:45:AB:01:CD:23:EF:45:AB:01\n", out), TN_OK);
  assert_string_equal(out, hex);
  assert_int_equal(tn_tls_fingerprint_parse("abc", out), TN_ERR_INVALID);
  assert_int_equal(tn_tls_fingerprint_parse("zz01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01", out),
                   TN_ERR_INVALID);
}

static void test_fingerprint_canonical(void **state)
{
  (void)state;
  assert_true(tn_tls_fingerprint_is_canonical("ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01"));
  assert_false(tn_tls_fingerprint_is_canonical("AB01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01"));
  assert_false(tn_tls_fingerprint_is_canonical("ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab0"));
  assert_false(tn_tls_fingerprint_is_canonical("ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab011"));
  assert_false(tn_tls_fingerprint_is_canonical("ab:01"));
  assert_false(tn_tls_fingerprint_is_canonical(""));
  assert_false(tn_tls_fingerprint_is_canonical(NULL));
}

/* The identity rule on one CN value: every way a name can be ambiguous, and the words for each. */
static void test_cn_check(void **state)
{
  (void)state;
  static const struct {
    const char *value;
    size_t len;         /* 0: strlen */
    int tag;
    const char *why;    /* NULL: accepted */
  } cases[] = {
    { "home1", 0, MBEDTLS_ASN1_UTF8_STRING, NULL },
    { "home1", 0, MBEDTLS_ASN1_PRINTABLE_STRING, NULL },
    { "home1", 0, MBEDTLS_ASN1_IA5_STRING, NULL },
    { "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", 0, MBEDTLS_ASN1_UTF8_STRING, NULL },
    { "a", 0, MBEDTLS_ASN1_BMP_STRING, "CN is a BMPString (tag 30), not UTF8String, PrintableString or IA5String" },
    { "a", 0, MBEDTLS_ASN1_T61_STRING, "CN is a T61String (tag 20), not UTF8String, PrintableString or IA5String" },
    { "", 0, MBEDTLS_ASN1_UTF8_STRING, "CN is empty" },
    { "h\xffme", 0, MBEDTLS_ASN1_UTF8_STRING, "CN is not valid UTF-8 (byte 0xff at offset 1)" },
    { "\xc0\xaf", 0, MBEDTLS_ASN1_UTF8_STRING, "CN is not valid UTF-8 (byte 0xc0 at offset 0)" },     /* overlong '/' */
    { "a\xe0\x80\xaf", 0, MBEDTLS_ASN1_UTF8_STRING, "CN is not valid UTF-8 (byte 0xe0 at offset 1)" }, /* overlong */
    { "\xed\xa0\x80", 0, MBEDTLS_ASN1_UTF8_STRING, "CN is not valid UTF-8 (byte 0xed at offset 0)" },  /* surrogate */
    { "\xf4\x90\x80\x80", 0, MBEDTLS_ASN1_UTF8_STRING, "CN is not valid UTF-8 (byte 0xf4 at offset 0)" }, /* > U+10FFFF */
    { "ab\xc3", 0, MBEDTLS_ASN1_UTF8_STRING, "CN is not valid UTF-8 (byte 0xc3 at offset 2)" },       /* cut short */
    { "ab\x80", 0, MBEDTLS_ASN1_UTF8_STRING, "CN is not valid UTF-8 (byte 0x80 at offset 2)" },
    { "\xc3\xa9", 0, MBEDTLS_ASN1_PRINTABLE_STRING, "CN is not valid ASCII (byte 0xc3 at offset 0)" },
    { "a\x01" "b", 0, MBEDTLS_ASN1_UTF8_STRING, "CN holds a control character (U+0001 at offset 1)" },
    { "a\nb", 0, MBEDTLS_ASN1_UTF8_STRING, "CN holds a control character (U+000A at offset 1)" },
    { "a\x7f", 0, MBEDTLS_ASN1_IA5_STRING, "CN holds a control character (U+007F at offset 1)" },
    { "a\xc2\x85", 0, MBEDTLS_ASN1_UTF8_STRING, "CN holds a control character (U+0085 at offset 1)" },
    { "a\0b", 3, MBEDTLS_ASN1_UTF8_STRING, "CN holds a control character (U+0000 at offset 1)" },
    /* Characters that do not show as themselves: bidi controls, zero-width, BOM, separators, odd spaces. */
    { "home1\xe2\x80\xaegnp", 0, MBEDTLS_ASN1_UTF8_STRING,
      "CN holds an invisible or bidi character (U+202E at offset 5)" },
    { "ho\xe2\x80\x8bme", 0, MBEDTLS_ASN1_UTF8_STRING, "CN holds an invisible or bidi character (U+200B at offset 2)" },
    { "\xe2\x81\xa6x\xe2\x81\xa9", 0, MBEDTLS_ASN1_UTF8_STRING,
      "CN holds an invisible or bidi character (U+2066 at offset 0)" },
    { "x\xe2\x81\xa9", 0, MBEDTLS_ASN1_UTF8_STRING, "CN holds an invisible or bidi character (U+2069 at offset 1)" },
    { "\xef\xbb\xbfhome", 0, MBEDTLS_ASN1_UTF8_STRING, "CN holds an invisible or bidi character (U+FEFF at offset 0)" },
    { "ho\xc2\xadme", 0, MBEDTLS_ASN1_UTF8_STRING, "CN holds an invisible or bidi character (U+00AD at offset 2)" },
    { "a\xe2\x80\xa8", 0, MBEDTLS_ASN1_UTF8_STRING, "CN holds an invisible or bidi character (U+2028 at offset 1)" },
    { "a\xe2\x80\xa9", 0, MBEDTLS_ASN1_UTF8_STRING, "CN holds an invisible or bidi character (U+2029 at offset 1)" },
    { "a\xc2\xa0" "b", 0, MBEDTLS_ASN1_UTF8_STRING, "CN holds an invisible or bidi character (U+00A0 at offset 1)" },
    { "a\xef\xbf\xbd", 0, MBEDTLS_ASN1_UTF8_STRING, "CN holds an invisible or bidi character (U+FFFD at offset 1)" },
    { "a\xef\xbf\xb9", 0, MBEDTLS_ASN1_UTF8_STRING, "CN holds an invisible or bidi character (U+FFF9 at offset 1)" },
    { "a\xf3\xa0\x80\x81", 0, MBEDTLS_ASN1_UTF8_STRING,
      "CN holds an invisible or bidi character (U+E0001 at offset 1)" },
    { "a\xd8\x9c", 0, MBEDTLS_ASN1_UTF8_STRING, "CN holds an invisible or bidi character (U+061C at offset 1)" },
    { "a\xc2\x9b", 0, MBEDTLS_ASN1_UTF8_STRING, "CN holds a control character (U+009B at offset 1)" },
    { "caf\xc3\xa9 \xe2\x80\x94 \xe4\xb8\xad", 0, MBEDTLS_ASN1_UTF8_STRING, NULL },
    { "x123456789012345678901234567890123456789012345678901234567890123", 0, MBEDTLS_ASN1_UTF8_STRING, NULL },
    { "x1234567890123456789012345678901234567890123456789012345678901234", 0, MBEDTLS_ASN1_UTF8_STRING,
      "CN is 65 bytes, longer than the identity limit of 64 bytes" },
    { "ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01", 0, MBEDTLS_ASN1_UTF8_STRING,
      "CN is 64 hex digits, the form that names a certificate by its fingerprint" },
    { "AB01CD23EF45AB01CD23EF45AB01CD23EF45AB01CD23EF45AB01CD23EF45AB01", 0, MBEDTLS_ASN1_PRINTABLE_STRING,
      "CN is 64 hex digits, the form that names a certificate by its fingerprint" },
    { "ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab0g", 0, MBEDTLS_ASN1_UTF8_STRING, NULL },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char why[200] = "";
    size_t len = cases[i].len ? cases[i].len : strlen(cases[i].value);
    int rc = tn_tls_cn_check((const uint8_t *)cases[i].value, len, cases[i].tag, why, sizeof why);
    if (cases[i].why == NULL) {
      if (rc != TN_OK)
        fail_msg("case %zu refused: %s", i, why);
    } else {
      if (rc != TN_ERR_INVALID)
        fail_msg("case %zu accepted", i);
      if (strcmp(why, cases[i].why) != 0)
        fail_msg("case %zu: \"%s\" != \"%s\"", i, why, cases[i].why);
    }
  }
}

static size_t read_data(const char *name, uint8_t *buf, size_t cap)
{
  char p[512];
  snprintf(p, sizeof p, "%s/tls/identity/%s", TUNNEL_TEST_DATA, name);
  FILE *f = fopen(p, "rb");
  if (f == NULL)
    fail_msg("cannot open %s", p);
  size_t n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}

/* Whole certificates made by openssl (tests/data/tls/identity/make.sh): the count of CNs and each value. */
static void test_identity_check_der(void **state)
{
  (void)state;
  static const struct {
    const char *file;
    const char *why;
  } cases[] = {
    { "ok.der", NULL },
    { "utf8-ok.der", NULL },
    { "none.der", "certificate has no CN (its CN is the identity)" },
    { "two.der", "certificate has 2 CN attributes (one certificate names one identity)" },
    { "multi-rdn.der", "certificate has 2 CN attributes (one certificate names one identity)" },
    { "long.der", "CN is 66 bytes, longer than the identity limit of 64 bytes" },
    { "bmp.der", "CN is a BMPString (tag 30), not UTF8String, PrintableString or IA5String" },
    { "fingerprint.der", "CN is 64 hex digits, the form that names a certificate by its fingerprint" },
    { "bad-utf8.der", "CN is not valid UTF-8 (byte 0xff at offset 1)" },
    { "control.der", "CN holds a control character (U+0001 at offset 1)" },
    { "bidi.der", "CN holds an invisible or bidi character (U+202E at offset 5)" },
    { "zwsp.der", "CN holds an invisible or bidi character (U+200B at offset 4)" },
    { "isolate.der", "CN holds an invisible or bidi character (U+2066 at offset 0)" },
  };
  uint8_t der[4096];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char why[200] = "";
    size_t n = read_data(cases[i].file, der, sizeof der);
    int rc = tn_tls_identity_check_der(der, n, why, sizeof why);
    if (cases[i].why == NULL) {
      if (rc != TN_OK)
        fail_msg("%s refused: %s", cases[i].file, why);
    } else if (rc != TN_ERR_INVALID || strcmp(why, cases[i].why) != 0) {
      fail_msg("%s: rc %d \"%s\" != \"%s\"", cases[i].file, rc, why, cases[i].why);
    }
    /* A display copy never carries what the rule refused. */
    struct tn_tls_peer id;
    assert_int_equal(tn_tls_identity_from_der(der, n, &id), TN_OK);
    for (const char *c = id.cn; *c != '\0'; c++)
      assert_true((unsigned char)*c >= 0x20 && *c != 0x7f);
  }
  /* A refused name is shown escaped, so a log line shows what the certificate holds. */
  static const struct {
    const char *file, *shown;
  } shown[] = {
    { "bidi.der", "home1\\u{202e}gnp.exe" },
    { "zwsp.der", "home\\u{200b}1" },
    { "isolate.der", "\\u{2066}home1\\u{2069}" },
    { "control.der", "h\\u{1}me" },
    { "bad-utf8.der", "h\\xffme" },
    { "ok.der", "home1" },
  };
  for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++) {
    struct tn_tls_peer id;
    size_t n = read_data(shown[i].file, der, sizeof der);
    assert_int_equal(tn_tls_identity_from_der(der, n, &id), TN_OK);
    assert_string_equal(id.cn, shown[i].shown);
  }
  assert_int_equal(tn_tls_identity_check_der((const uint8_t *)"xx", 2, NULL, 0), TN_ERR_INVALID);
}

static int deny_client(void *ctx, const struct tn_tls_peer *peer, char *why, size_t why_len)
{
  const char *deny = ctx;
  if (strcmp(peer->cn, deny) != 0)
    return 0;
  snprintf(why, why_len, "certificate %s is revoked (test list)", peer->sha256_hex);
  return 1;
}

/* The deny hook refuses at the handshake with its words and alert 44; recheck applies a new config to a live peer. */
static void test_peer_check_and_recheck(void **state)
{
  (void)state;
  struct pair p;
  tn_tls_config *sc = cfg_for(TN_TLS_SERVER, "ca", "server");
  tn_tls_config_set_peer_check(sc, deny_client, "client");
  pair_new(&p, cfg_for(TN_TLS_CLIENT, "ca", "client"), sc, "localhost");
  handshake(&p);
  assert_int_equal(p.rc_s, TN_ERR_TLS);
  assert_contains(tn_tls_error_text(p.s), "client certificate rejected: certificate ");
  assert_contains(tn_tls_error_text(p.s), "is revoked (test list); CN \"client\", sha256 ");
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  assert_client_refused(p.c, "peer rejected the handshake: certificate revoked (alert 44)");
  pair_del(&p);

  run(&p, "ca", "client", "ca", "server", "localhost");
  assert_int_equal(p.rc_s, TN_OK);
  char why[512] = "";
  tn_tls_config *same = cfg_for(TN_TLS_SERVER, "ca", "server");
  assert_int_equal(tn_tls_recheck(p.s, same, why, sizeof why), TN_OK);
  tn_tls_config_set_peer_check(same, deny_client, "client");
  assert_int_equal(tn_tls_recheck(p.s, same, why, sizeof why), TN_ERR_INVALID);
  assert_contains(why, "is revoked (test list)");
  tn_tls_config_unref(same);
  tn_tls_config *other_ca = cfg_for(TN_TLS_SERVER, "ca2", "server2");
  assert_int_equal(tn_tls_recheck(p.s, other_ca, why, sizeof why), TN_ERR_INVALID);
  assert_rejected(why, "client certificate rejected: unknown CA (not signed by a trusted CA)");
  tn_tls_config_unref(other_ca);
  /* The server's view of a client and the client's of a server are not interchangeable. */
  tn_tls_config *client_cfg = cfg_for(TN_TLS_CLIENT, "ca", "client");
  assert_int_equal(tn_tls_recheck(p.s, client_cfg, why, sizeof why), TN_ERR_ARG);
  assert_int_equal(tn_tls_recheck(p.c, client_cfg, why, sizeof why), TN_OK);
  tn_tls_config_unref(client_cfg);
  pair_del(&p);
}

static void test_crl_file_errors(void **state)
{
  (void)state;
  char err[512];
  tn_tls_config *cfg = cfg_for(TN_TLS_SERVER, "ca", "server");
  assert_int_equal(tn_tls_config_set_crl(cfg, path("nothing-here.crl"), err, sizeof err), TN_ERR_INVALID);
  assert_contains(err, "nothing-here.crl: cannot open");
  assert_int_equal(tn_tls_config_set_crl(cfg, path("ca.crt"), err, sizeof err), TN_ERR_INVALID);
  assert_contains(err, "ca.crt: not a CRL");
  FILE *f = fopen(path("junk.crl"), "wb");
  assert_non_null(f);
  fputs("\x30\x03\x02\x01\x01", f);
  fclose(f);
  assert_int_equal(tn_tls_config_set_crl(cfg, path("junk.crl"), err, sizeof err), TN_ERR_INVALID);
  assert_contains(err, "junk.crl: not a CRL");
  tn_tls_config_unref(cfg);
}

/* The fixtures of tests/data/tls/crl (make.sh): a CA, its server, home-ok, and home-revoked listed in ca.crl. */
static tn_tls_config *crl_cfg(enum tn_tls_role role, const char *leaf, int with_crl)
{
  char a[512], c[512], k[512], l[512], err[512];
  tn_tls_config *cfg = NULL;

  snprintf(a, sizeof a, "%s/tls/crl/ca.crt", TUNNEL_TEST_DATA);
  snprintf(c, sizeof c, "%s/tls/crl/%s.crt", TUNNEL_TEST_DATA, leaf);
  snprintf(k, sizeof k, "%s/tls/crl/%s.key", TUNNEL_TEST_DATA, leaf);
  snprintf(l, sizeof l, "%s/tls/crl/ca.crl", TUNNEL_TEST_DATA);
  if (tn_tls_config_new(&cfg, role, a, c, k, err, sizeof err) != TN_OK)
    fail_msg("config %s: %s", leaf, err);
  if (with_crl && tn_tls_config_set_crl(cfg, l, err, sizeof err) != TN_OK)
    fail_msg("CRL: %s", err);
  return cfg;
}

/* A certificate a loaded CRL lists is refused at the handshake; the same CRL lets the others through. */
static void test_crl_revokes_at_handshake(void **state)
{
  (void)state;
  struct pair p;

  pair_new(&p, crl_cfg(TN_TLS_CLIENT, "home-revoked", 0), crl_cfg(TN_TLS_SERVER, "server", 1), "localhost");
  handshake(&p);
  assert_int_equal(p.rc_s, TN_ERR_TLS);
  assert_rejected(tn_tls_error_text(p.s), "client certificate rejected: revoked by a CRL in CrlFile");
  assert_int_equal(p.rc_c, TN_ERR_TLS);
  assert_client_refused(p.c, "peer rejected the handshake: certificate revoked (alert 44)");
  pair_del(&p);

  pair_new(&p, crl_cfg(TN_TLS_CLIENT, "home-ok", 1), crl_cfg(TN_TLS_SERVER, "server", 1), "localhost");
  handshake(&p);
  assert_int_equal(p.rc_s, TN_OK);
  assert_int_equal(p.rc_c, TN_OK);
  pair_del(&p);

  /* Without the CRL the same certificate is accepted: the refusal above is the CRL's. */
  pair_new(&p, crl_cfg(TN_TLS_CLIENT, "home-revoked", 0), crl_cfg(TN_TLS_SERVER, "server", 0), "localhost");
  handshake(&p);
  assert_int_equal(p.rc_s, TN_OK);
  assert_int_equal(p.rc_c, TN_OK);
  pair_del(&p);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_handshake_ok),
    cmocka_unit_test(test_identity_before_handshake),
    cmocka_unit_test(test_alpn),
    cmocka_unit_test(test_data_both_ways),
    cmocka_unit_test(test_data_right_after_handshake),
    cmocka_unit_test(test_bounded_buffers),
    cmocka_unit_test(test_close_notify),
    cmocka_unit_test(test_wrong_ca_server_cert),
    cmocka_unit_test(test_wrong_ca_client_cert),
    cmocka_unit_test(test_expired_client),
    cmocka_unit_test(test_future_server),
    cmocka_unit_test(test_hostname_mismatch),
    cmocka_unit_test(test_ip_san_match),
    cmocka_unit_test(test_ip_san_mismatch),
    cmocka_unit_test(test_client_cert_as_server),
    cmocka_unit_test(test_server_cert_as_client),
    cmocka_unit_test(test_dual_use_refused),
    cmocka_unit_test(test_own_role_refused),
    cmocka_unit_test(test_rsa_server),
    cmocka_unit_test(test_no_client_certificate),
    cmocka_unit_test(test_garbage_handshake),
    cmocka_unit_test(test_truncated_client_hello),
    cmocka_unit_test(test_corrupt_and_truncated_records),
    cmocka_unit_test(test_peer_closed_during_handshake),
    cmocka_unit_test(test_config_errors),
    cmocka_unit_test(test_fingerprint_parse),
    cmocka_unit_test(test_fingerprint_canonical),
    cmocka_unit_test(test_cn_check),
    cmocka_unit_test(test_identity_check_der),
    cmocka_unit_test(test_peer_check_and_recheck),
    cmocka_unit_test(test_crl_file_errors),
    cmocka_unit_test(test_crl_revokes_at_handshake),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
