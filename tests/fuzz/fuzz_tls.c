/* fuzz_tls.c: arbitrary bytes as TLS records into tn_tls's server side (fuzz_tls_client.c: tunnelc's client side): it fails cleanly, with words, never crashes or leaks. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/error.h"
#include "tunnel/tls.h"

/* fuzz_tls_client.c builds this file with FUZZ_TLS_CLIENT: the same checks on the side tunnelc runs. */
#ifdef FUZZ_TLS_CLIENT
#define FUZZ_TLS_ROLE TN_TLS_CLIENT
#define FUZZ_TLS_PEER "client"
#define FUZZ_TLS_SERVER_NAME "localhost"
#else
#define FUZZ_TLS_ROLE TN_TLS_SERVER
#define FUZZ_TLS_PEER "server"
#define FUZZ_TLS_SERVER_NAME NULL
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Loaded once: parsing certificates per input would drown the signal in setup cost. */
static tn_tls_config *fuzz_tls_cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  char err[512];
  int rc = tn_tls_config_new(&fuzz_tls_cfg, FUZZ_TLS_ROLE, TUNNEL_TEST_DATA "/tls/ca.crt",
                             TUNNEL_TEST_DATA "/tls/" FUZZ_TLS_PEER ".crt", TUNNEL_TEST_DATA "/tls/" FUZZ_TLS_PEER ".key",
                             err, sizeof err);
  if (rc != TN_OK) {
    fprintf(stderr, "fuzz_tls: %s\n", err);
    abort();
  }
  return 0;
}

static void fuzz_tls_check_result(const tn_tls *t, int rc)
{
  if (rc == TN_ERR_TLS || rc == TN_ERR_TLS_FATAL) {
    /* Every failure must be explained. */
    if (tn_tls_error_text(t)[0] == '\0')
      abort();
  } else if (rc != TN_OK && rc != TN_ERR_NEED_MORE && rc < 0) {
    abort();
  }
}

/* Runs the handshake, then reads whatever plaintext there is; returns the last result. */
static int fuzz_tls_drive(tn_tls *t)
{
  uint8_t plain[4096];
  int rc = tn_tls_handshake(t);
  fuzz_tls_check_result(t, rc);
  if (rc != TN_OK)
    return rc;
  for (int i = 0; i < 64; i++) {
    long n = tn_tls_read(t, plain, sizeof plain);
    fuzz_tls_check_result(t, (int)(n > 0 ? 0 : n));
    if (n <= 0)
      return (int)n;
  }
  return TN_OK;
}

static void fuzz_tls_drain_output(tn_tls *t)
{
  const uint8_t *out;
  size_t n;
  while ((n = tn_tls_pending(t, &out)) > 0) {
    if (n > TN_TLS_OUTPUT_CAP)
      abort();
    tn_tls_consumed(t, n);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  tn_tls *t;
  if (tn_tls_new(&t, fuzz_tls_cfg, FUZZ_TLS_SERVER_NAME) != TN_OK)
    abort();
#ifdef FUZZ_TLS_CLIENT
  /* The client speaks first: its ClientHello is out before any server byte arrives, as on a real link. */
  fuzz_tls_check_result(t, tn_tls_handshake(t));
  fuzz_tls_drain_output(t);
#endif
  /*
   * Inputs of odd length are fed in small slices so record and message boundaries fall
   * everywhere; even ones in one piece (or as much as the bounded buffer takes).
   */
  size_t slice = (size_t)1 + (size & 1 ? size % 13 : size);
  size_t off = 0;
  int rc = TN_ERR_NEED_MORE;
  while (off < size) {
    size_t want = size - off < slice ? size - off : slice;
    size_t k = tn_tls_feed(t, data + off, want);
    off += k;
    rc = fuzz_tls_drive(t);
    fuzz_tls_drain_output(t);
    if (rc == TN_ERR_TLS || rc == TN_ERR_TLS_FATAL)
      break;
    if (k == 0 && rc == TN_ERR_NEED_MORE) {
      /* Input buffer full and nothing consumable: only possible if the engine is stuck. */
      abort();
    }
  }
  /* And the transport ends: a clean failure or close, never a hang. */
  tn_tls_eof(t);
  rc = fuzz_tls_drive(t);
  fuzz_tls_drain_output(t);
  if (!tn_tls_is_established(t) && rc != TN_ERR_TLS)
    abort();
  tn_tls_del(t);
  return 0;
}
