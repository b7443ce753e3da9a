/* bench_tls.c: tn_tls client->server throughput in memory, beside raw mbedTLS AEAD speed on 16 KiB records, one core. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/chachapoly.h>
#include <mbedtls/gcm.h>

#include "tunnel/error.h"
#include "tunnel/pki.h"
#include "tunnel/tls.h"

#define BENCH_RECORD 16384u

/* CPU time, not wall time: "one core" must still mean one core when the machine is shared and loaded. */
static double bench_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_die(const char *what, const char *why)
{
  fprintf(stderr, "bench_tls: %s: %s\n", what, why);
  exit(1);
}

static void bench_make_certs(const char *dir)
{
  char ca[512], cak[512], crt[512], key[512], err[512];
  struct tn_pki_request req;
  snprintf(ca, sizeof ca, "%s/ca.crt", dir);
  snprintf(cak, sizeof cak, "%s/ca.key", dir);
  tn_pki_request_init(&req, "CN=bench CA", TN_PKI_USAGE_CA, 1);
  if (tn_pki_create_ca(ca, cak, &req, err, sizeof err) != TN_OK)
    bench_die("ca", err);
  static const char *dns[] = { "localhost" };
  const char *names[] = { "server", "client" };
  for (int i = 0; i < 2; i++) {
    char subject[64];
    snprintf(subject, sizeof subject, "CN=%s", names[i]);
    snprintf(crt, sizeof crt, "%s/%s.crt", dir, names[i]);
    snprintf(key, sizeof key, "%s/%s.key", dir, names[i]);
    tn_pki_request_init(&req, subject, i == 0 ? TN_PKI_USAGE_SERVER : TN_PKI_USAGE_CLIENT, 1);
    if (i == 0) {
      req.dns = dns;
      req.dns_count = 1;
    }
    if (tn_pki_issue(ca, cak, crt, key, &req, err, sizeof err) != TN_OK)
      bench_die(names[i], err);
  }
}

static size_t bench_xfer(tn_tls *from, tn_tls *to)
{
  const uint8_t *p;
  size_t n, moved = 0;
  while ((n = tn_tls_pending(from, &p)) > 0) {
    size_t k = tn_tls_feed(to, p, n);
    tn_tls_consumed(from, k);
    moved += k;
    if (k < n)
      break;
  }
  return moved;
}

static double bench_tn_tls(const char *dir, size_t total, char *suite, size_t suite_len)
{
  char ca[512], c[512], k[512], err[512];
  tn_tls_config *cc, *sc;
  snprintf(ca, sizeof ca, "%s/ca.crt", dir);
  snprintf(c, sizeof c, "%s/client.crt", dir);
  snprintf(k, sizeof k, "%s/client.key", dir);
  if (tn_tls_config_new(&cc, TN_TLS_CLIENT, ca, c, k, err, sizeof err) != TN_OK)
    bench_die("client config", err);
  snprintf(c, sizeof c, "%s/server.crt", dir);
  snprintf(k, sizeof k, "%s/server.key", dir);
  if (tn_tls_config_new(&sc, TN_TLS_SERVER, ca, c, k, err, sizeof err) != TN_OK)
    bench_die("server config", err);
  tn_tls *cl, *sv;
  if (tn_tls_new(&cl, cc, "localhost") != TN_OK || tn_tls_new(&sv, sc, NULL) != TN_OK)
    bench_die("tn_tls_new", "failed");
  tn_tls_config_unref(cc);
  tn_tls_config_unref(sc);
  for (int i = 0; i < 20 && !(tn_tls_is_established(cl) && tn_tls_is_established(sv)); i++) {
    tn_tls_handshake(cl);
    bench_xfer(cl, sv);
    tn_tls_handshake(sv);
    bench_xfer(sv, cl);
  }
  if (!tn_tls_is_established(cl) || !tn_tls_is_established(sv))
    bench_die("handshake", tn_tls_error_text(cl)[0] ? tn_tls_error_text(cl) : tn_tls_error_text(sv));
  snprintf(suite, suite_len, "%s", tn_tls_ciphersuite(cl));

  /* What a link does: the mux hands 64 KiB at a time, the socket delivers 64 KiB reads. */
  size_t chunk = 65536;
  uint8_t *src = malloc(chunk);
  uint8_t *dst = malloc(chunk);
  memset(src, 0x5a, chunk);
  size_t sent = 0, got = 0, off = 0;
  uint64_t sum = 0;
  double t0 = bench_now();
  while (got < total) {
    if (sent < total) {
      size_t want = total - sent < chunk - off ? total - sent : chunk - off;
      long n = tn_tls_write(cl, src + off, want);
      if (n < 0)
        bench_die("write", tn_tls_error_text(cl));
      sent += (size_t)n;
      off = (off + (size_t)n) % chunk;
    }
    bench_xfer(cl, sv);
    for (;;) {
      long n = tn_tls_read(sv, dst, chunk);
      if (n == TN_ERR_NEED_MORE)
        break;
      if (n <= 0)
        bench_die("read", tn_tls_error_text(sv));
      got += (size_t)n;
      sum += dst[0];
    }
  }
  double dt = bench_now() - t0;
  if (sum == 0)
    bench_die("checksum", "nothing read");
  free(src);
  free(dst);
  tn_tls_del(cl);
  tn_tls_del(sv);
  return (double)total / dt / 1e6;
}

/* Raw AEAD: seal each 16 KiB record and, as the receiving half of a pair does, open it again. */
static void bench_raw(size_t total, double *chacha_enc, double *chacha_both, double *gcm_enc, double *gcm_both)
{
  uint8_t key[32] = { 1 }, nonce[12] = { 2 }, aad[13] = { 3 }, tag[16];
  uint8_t *in = malloc(BENCH_RECORD), *ct = malloc(BENCH_RECORD), *pt = malloc(BENCH_RECORD);
  memset(in, 0x5a, BENCH_RECORD);
  size_t records = total / BENCH_RECORD;

  mbedtls_chachapoly_context cp;
  mbedtls_chachapoly_init(&cp);
  mbedtls_chachapoly_setkey(&cp, key);
  double t0 = bench_now();
  for (size_t i = 0; i < records; i++) {
    nonce[11] = (uint8_t)i;
    mbedtls_chachapoly_encrypt_and_tag(&cp, BENCH_RECORD, nonce, aad, sizeof aad, in, ct, tag);
  }
  *chacha_enc = (double)total / (bench_now() - t0) / 1e6;
  t0 = bench_now();
  for (size_t i = 0; i < records; i++) {
    nonce[11] = (uint8_t)i;
    mbedtls_chachapoly_encrypt_and_tag(&cp, BENCH_RECORD, nonce, aad, sizeof aad, in, ct, tag);
    if (mbedtls_chachapoly_auth_decrypt(&cp, BENCH_RECORD, nonce, aad, sizeof aad, tag, ct, pt) != 0)
      bench_die("chachapoly", "decrypt failed");
  }
  *chacha_both = (double)total / (bench_now() - t0) / 1e6;
  mbedtls_chachapoly_free(&cp);

  mbedtls_gcm_context g;
  mbedtls_gcm_init(&g);
  mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 128);
  t0 = bench_now();
  for (size_t i = 0; i < records; i++) {
    nonce[11] = (uint8_t)i;
    mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, BENCH_RECORD, nonce, sizeof nonce, aad, sizeof aad, in, ct,
                              sizeof tag, tag);
  }
  *gcm_enc = (double)total / (bench_now() - t0) / 1e6;
  t0 = bench_now();
  for (size_t i = 0; i < records; i++) {
    nonce[11] = (uint8_t)i;
    mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, BENCH_RECORD, nonce, sizeof nonce, aad, sizeof aad, in, ct,
                              sizeof tag, tag);
    if (mbedtls_gcm_auth_decrypt(&g, BENCH_RECORD, nonce, sizeof nonce, aad, sizeof aad, tag, sizeof tag, ct, pt) != 0)
      bench_die("gcm", "decrypt failed");
  }
  *gcm_both = (double)total / (bench_now() - t0) / 1e6;
  mbedtls_gcm_free(&g);
  free(in);
  free(ct);
  free(pt);
}

int main(int argc, char **argv)
{
  size_t mib = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 1024;
  if (mib == 0)
    mib = 1024;
  size_t total = mib << 20;
  char dir[] = "/tmp/tunnel-bench-tls.XXXXXX";
  if (mkdtemp(dir) == NULL)
    bench_die("mkdtemp", "failed");
  bench_make_certs(dir);

  char suite[96];
  double tls = bench_tn_tls(dir, total, suite, sizeof suite);
  double ce, cb, ge, gb;
  bench_raw(total, &ce, &cb, &ge, &gb);

  printf("bench_tls: %zu MiB, one core, 16 KiB records\n", mib);
  printf("  tn_tls pair (%s), client->server: %8.1f MB/s\n", suite, tls);
  printf("  raw CHACHA20-POLY1305 seal:                   %8.1f MB/s\n", ce);
  printf("  raw CHACHA20-POLY1305 seal+open (pair work):  %8.1f MB/s  (tn_tls at %.0f%% of it)\n", cb, 100.0 * tls / cb);
  printf("  raw AES-128-GCM seal:                         %8.1f MB/s\n", ge);
  printf("  raw AES-128-GCM seal+open (pair work):        %8.1f MB/s\n", gb);

  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    return 1;
  return 0;
}
