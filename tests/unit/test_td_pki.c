/* test_td_pki.c: `tunneld pki` command line: exit codes, files and modes written, refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>

#include "pki.h"
#include "tunnel/error.h"
#include "tunnel/tls.h"

static char g_dir[256];
static char g_ca[300];

static int run(int argc, const char **argv)
{
  /* td_pki_main's argv is a program's: mutable strings. */
  char *copy[32];
  for (int i = 0; i < argc; i++)
    copy[i] = strdup(argv[i]);
  copy[argc] = NULL;
  fflush(stdout);
  int rc = td_pki_main(argc, copy);
  for (int i = 0; i < argc; i++)
    free(copy[i]);
  return rc;
}

static int run_list(const char **argv)
{
  int argc = 0;
  while (argv[argc] != NULL)
    argc++;
  return run(argc, argv);
}

#define RUN(...) run_list((const char *[]){ "pki", __VA_ARGS__, NULL })

static const char *in_ca(const char *file)
{
  static char buf[4][400];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof buf[i], "%s/%s", g_ca, file);
  return buf[i];
}

static int setup(void **state)
{
  (void)state;
  snprintf(g_dir, sizeof g_dir, "/tmp/tunnel-test-td-pki.XXXXXX");
  if (mkdtemp(g_dir) == NULL)
    return -1;
  snprintf(g_ca, sizeof g_ca, "%s/ca", g_dir);
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

static mode_t mode_of(const char *path)
{
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return st.st_mode & 0777;
}

/* basicConstraints CA as mbedTLS prints it: the field itself is private in mbedTLS 3.x. */
static int crt_is_ca(const mbedtls_x509_crt *crt)
{
  char info[4096];
  return mbedtls_x509_crt_info(info, sizeof info, "", crt) > 0 && strstr(info, "CA=true") != NULL;
}

static void test_usage(void **state)
{
  (void)state;
  assert_int_equal(RUN("--help"), 0);
  assert_int_equal(run(1, (const char *[]){ "pki" }), 2);
  assert_int_equal(RUN("frobnicate"), 2);
  assert_int_equal(RUN("init"), 2);
  assert_int_equal(RUN("init", "a", "b"), 2);
  assert_int_equal(RUN("init", "a", "--days", "0"), 2);
  assert_int_equal(RUN("init", "--days", "5"), 2);
  assert_int_equal(RUN("issue", "--name", "x"), 2);
  assert_int_equal(RUN("show"), 2);
  assert_int_equal(RUN("issue", g_ca, "--help"), 0);
}

static void test_init(void **state)
{
  (void)state;
  assert_int_equal(RUN("init", g_ca), 0);
  assert_int_equal(mode_of(g_ca), 0700);
  assert_int_equal(mode_of(in_ca("ca.key")), 0600);
  assert_int_equal(access(in_ca("ca.crt"), R_OK), 0);
  /* A second init must not touch the existing CA. */
  struct stat before, after;
  assert_int_equal(stat(in_ca("ca.key"), &before), 0);
  assert_int_equal(RUN("init", g_ca), 1);
  assert_int_equal(stat(in_ca("ca.key"), &after), 0);
  assert_int_equal(before.st_ino, after.st_ino);
  assert_int_equal(before.st_size, after.st_size);

  mbedtls_x509_crt crt;
  mbedtls_x509_crt_init(&crt);
  assert_int_equal(mbedtls_x509_crt_parse_file(&crt, in_ca("ca.crt")), 0);
  assert_true(crt_is_ca(&crt));
  assert_int_equal(mbedtls_x509_crt_check_key_usage(&crt, MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN), 0);
  assert_int_equal(mbedtls_pk_get_type(&crt.pk), MBEDTLS_PK_ECKEY);
  /* Ten years, give or take the hour of clock-skew slack. */
  int years = crt.valid_to.year - crt.valid_from.year;
  assert_true(years == 10 || years == 9);
  mbedtls_x509_crt_free(&crt);
}

static void test_issue_server_client_admin(void **state)
{
  (void)state;
  assert_int_equal(RUN("issue", g_ca, "--name", "web1", "--server", "--dns", "tunnel.example", "--ip", "127.0.0.1",
                       "--ip=2001:db8::1", "--days", "30"), 0);
  assert_int_equal(mode_of(in_ca("web1.key")), 0600);
  assert_int_equal(RUN("issue", g_ca, "--name=home", "--days=10"), 0);
  assert_int_equal(RUN("issue", g_ca, "--name", "ops", "--admin"), 0);

  mbedtls_x509_crt crt;
  mbedtls_x509_crt_init(&crt);
  assert_int_equal(mbedtls_x509_crt_parse_file(&crt, in_ca("web1.crt")), 0);
  assert_false(crt_is_ca(&crt));
  assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(&crt, MBEDTLS_OID_SERVER_AUTH,
                                                             MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)), 0);
  assert_int_not_equal(mbedtls_x509_crt_check_extended_key_usage(&crt, MBEDTLS_OID_CLIENT_AUTH,
                                                                 MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)), 0);
  struct tn_tls_peer id;
  assert_int_equal(tn_tls_identity_from_der(crt.raw.p, crt.raw.len, &id), TN_OK);
  assert_string_equal(id.cn, "web1");
  assert_string_equal(id.sans, "DNS:tunnel.example,IP:127.0.0.1,IP:2001:db8::1");
  assert_true(id.not_after - id.not_before >= 30 * 86400);
  assert_true(id.not_after - id.not_before <= 30 * 86400 + 3600);
  uint32_t flags = 0;
  mbedtls_x509_crt ca;
  mbedtls_x509_crt_init(&ca);
  assert_int_equal(mbedtls_x509_crt_parse_file(&ca, in_ca("ca.crt")), 0);
  assert_int_equal(mbedtls_x509_crt_verify(&crt, &ca, NULL, "tunnel.example", &flags, NULL, NULL), 0);
  mbedtls_x509_crt_free(&crt);

  mbedtls_x509_crt_init(&crt);
  assert_int_equal(mbedtls_x509_crt_parse_file(&crt, in_ca("ops.crt")), 0);
  assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(&crt, MBEDTLS_OID_CLIENT_AUTH,
                                                             MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)), 0);
  char dn[256];
  assert_true(mbedtls_x509_dn_gets(dn, sizeof dn, &crt.subject) > 0);
  assert_non_null(strstr(dn, "OU=admin"));
  assert_non_null(strstr(dn, "CN=ops"));
  assert_int_equal(mbedtls_x509_crt_verify(&crt, &ca, NULL, NULL, &flags, NULL, NULL), 0);
  mbedtls_x509_crt_free(&crt);
  mbedtls_x509_crt_free(&ca);

  /* Never overwritten. */
  assert_int_equal(RUN("issue", g_ca, "--name", "home"), 1);
  assert_int_equal(RUN("show", in_ca("web1.crt")), 0);
}

static void test_issue_refusals(void **state)
{
  (void)state;
  assert_int_equal(RUN("issue", g_ca), 2);                                     /* no --name */
  assert_int_equal(RUN("issue", g_ca, "--name", "../evil"), 2);               /* path in name */
  assert_int_equal(RUN("issue", g_ca, "--name", "a b"), 2);
  assert_int_equal(RUN("issue", g_ca, "--name", "ca"), 2);                    /* the CA's own files */
  assert_int_equal(RUN("issue", g_ca, "--name", "s", "--server"), 2);         /* server without names */
  assert_int_equal(RUN("issue", g_ca, "--name", "s", "--dns", "x.example"), 2); /* names without --server */
  assert_int_equal(RUN("issue", g_ca, "--name", "s", "--server", "--admin", "--dns", "x"), 2);
  assert_int_equal(RUN("issue", g_ca, "--name", "s", "--server", "--ip", "300.1.1.1"), 2);
  assert_int_equal(RUN("issue", g_ca, "--name", "s", "--server", "--dns", "bad name"), 2);
  assert_int_equal(RUN("issue", g_ca, "--name", "s", "--days", "0"), 2);
  assert_int_equal(RUN("issue", g_ca, "--name", "s", "--days", "12x"), 2);
  assert_int_equal(RUN("issue", g_ca, "--name", "s", "--bogus"), 2);
  assert_int_equal(RUN("issue", g_ca, "--name"), 2);
  /* Nothing half-written by the refusals. */
  assert_int_not_equal(access(in_ca("s.key"), F_OK), 0);
  assert_int_not_equal(access(in_ca("s.crt"), F_OK), 0);
  /* A directory without a CA. */
  char nodir[400];
  snprintf(nodir, sizeof nodir, "%s/none", g_dir);
  assert_int_equal(RUN("issue", nodir, "--name", "s"), 1);
  assert_int_equal(RUN("show", in_ca("ca.key")), 1);
  assert_int_equal(RUN("show", nodir), 1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_usage),
    cmocka_unit_test(test_init),
    cmocka_unit_test(test_issue_server_client_admin),
    cmocka_unit_test(test_issue_refusals),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
