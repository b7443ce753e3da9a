/* test_file.c: the shared file reader: regular files only, FIFOs never block, links refused when asked, key modes, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tunnel/error.h"
#include "tunnel/file.h"

static char g_dir[64];

static const char *p(const char *name)
{
  static char buf[4][256];
  static int i;

  i = (i + 1) % 4;
  snprintf(buf[i], sizeof(buf[i]), "%s/%s", g_dir, name);
  return buf[i];
}

static void write_file(const char *path, const char *text, mode_t mode)
{
  FILE *f = fopen(path, "w");

  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
  (void)state;
  snprintf(g_dir, sizeof(g_dir), "/tmp/test_file.XXXXXX");
  return mkdtemp(g_dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
  char cmd[128];

  (void)state;
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void test_regular(void **state)
{
  char *buf, err[512];
  size_t len;

  (void)state;
  write_file(p("a.txt"), "hello", 0644);
  assert_int_equal(tn_file_read(p("a.txt"), 100, 0, NULL, &buf, &len, err, sizeof(err)), TN_OK);
  assert_int_equal(len, 5);
  assert_string_equal(buf, "hello");
  tn_file_free(buf, len);
  /* Exactly at the bound is fine; one byte over is not, and the message names the bound, not the content. */
  assert_int_equal(tn_file_read(p("a.txt"), 5, 0, NULL, &buf, &len, err, sizeof(err)), TN_OK);
  tn_file_free(buf, len);
  assert_int_equal(tn_file_read(p("a.txt"), 4, 0, "thing", &buf, &len, err, sizeof(err)), TN_ERR_INVALID);
  assert_null(buf);
  assert_non_null(strstr(err, ": file is larger than 4 bytes, not a thing"));
  assert_null(strstr(err, "hello"));
  /* Empty files read as empty: the caller decides whether that is an error. */
  write_file(p("empty"), "", 0644);
  assert_int_equal(tn_file_read(p("empty"), 4, 0, NULL, &buf, &len, err, sizeof(err)), TN_OK);
  assert_int_equal(len, 0);
  assert_string_equal(buf, "");
  tn_file_free(buf, len);
}

/* Files bigger than the first guess (a stat size of 0, as in /proc) still read whole, within the bound. */
static void test_grows(void **state)
{
  char *buf, err[512], *big = malloc(100001);
  size_t len;

  (void)state;
  assert_non_null(big);
  memset(big, 'x', 100000);
  big[100000] = '\0';
  write_file(p("big"), big, 0600);
  assert_int_equal(tn_file_read(p("big"), 100000, 0, NULL, &buf, &len, err, sizeof(err)), TN_OK);
  assert_int_equal(len, 100000);
  assert_memory_equal(buf, big, 100000);
  tn_file_free(buf, len);
  assert_int_equal(tn_file_read(p("big"), 99999, 0, NULL, &buf, &len, err, sizeof(err)), TN_ERR_INVALID);
  assert_int_equal(tn_file_read("/proc/self/status", 1u << 20, 0, NULL, &buf, &len, err, sizeof(err)), TN_OK);
  assert_true(len > 0 && strlen(buf) == len);
  tn_file_free(buf, len);
  free(big);
}

static void test_missing(void **state)
{
  char *buf, err[512], want[512];
  size_t len;

  (void)state;
  assert_int_equal(tn_file_read(p("nope"), 10, 0, NULL, &buf, &len, err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", p("nope"));
  assert_string_equal(err, want);
  assert_int_equal(tn_file_read(p("nope"), 10, TN_FILE_MISSING_OK, NULL, &buf, &len, err, sizeof(err)), TN_OK);
  assert_null(buf);
  assert_int_equal(len, 0);
}

/* A FIFO with no writer would block a plain open() forever: refused at once instead. */
static void test_fifo(void **state)
{
  char *buf, err[512], want[512];
  size_t len;

  (void)state;
  assert_int_equal(mkfifo(p("fifo"), 0600), 0);
  assert_int_equal(tn_file_read(p("fifo"), 10, 0, NULL, &buf, &len, err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s: not a regular file (a FIFO)", p("fifo"));
  assert_string_equal(err, want);
  assert_int_equal(tn_file_read(g_dir, 10, 0, NULL, &buf, &len, err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s: not a regular file (a directory)", g_dir);
  assert_string_equal(err, want);
  assert_int_equal(tn_file_read("/dev/zero", 10, 0, NULL, &buf, &len, err, sizeof(err)), TN_ERR_INVALID);
  assert_string_equal(err, "/dev/zero: not a regular file (a device)");
}

static void test_symlink(void **state)
{
  char *buf, err[512], want[512];
  size_t len;

  (void)state;
  write_file(p("secret"), "top secret content", 0600);
  assert_int_equal(symlink(p("secret"), p("link")), 0);
  assert_int_equal(tn_file_read(p("link"), 100, TN_FILE_NOFOLLOW, NULL, &buf, &len, err, sizeof(err)),
                   TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s: is a symbolic link; refusing to follow it (give the path of the file itself)",
           p("link"));
  assert_string_equal(err, want);
  assert_null(strstr(err, "secret content"));
  /* Without the flag a link is followed (certificates under /etc/letsencrypt/live are links). */
  assert_int_equal(tn_file_read(p("link"), 100, 0, NULL, &buf, &len, err, sizeof(err)), TN_OK);
  tn_file_free(buf, len);
}

static void test_private_modes(void **state)
{
  static const struct { mode_t mode; int ok; const char *why; } cases[] = {
    { 0600, 1, NULL }, { 0400, 1, NULL }, { 0640, 1, NULL }, { 0440, 1, NULL },
    { 0644, 0, "others may read it" }, { 0666, 0, "others may read it" }, { 0604, 0, "others may read it" },
    { 0620, 0, "group or others may change it" }, { 0602, 0, "group or others may change it" },
  };
  char *buf, err[512], want[512];
  size_t len;

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    write_file(p("k.key"), "-----BEGIN PRIVATE KEY-----\n", cases[i].mode);
    int rc = tn_file_read(p("k.key"), 100, TN_FILE_PRIVATE, NULL, &buf, &len, err, sizeof(err));
    if (cases[i].ok) {
      assert_int_equal(rc, TN_OK);
      tn_file_free(buf, len);
    } else {
      assert_int_equal(rc, TN_ERR_INVALID);
      snprintf(want, sizeof(want), "%s: permissions %04o are too open for a private key (%s); run: chmod 600 %s",
               p("k.key"), (unsigned)cases[i].mode, cases[i].why, p("k.key"));
      assert_string_equal(err, want);
      assert_null(strstr(err, "BEGIN"));
    }
    unlink(p("k.key"));
  }
  /* The same modes are fine for a file that is not a key. */
  write_file(p("c.crt"), "cert", 0666);
  assert_int_equal(tn_file_read(p("c.crt"), 100, 0, NULL, &buf, &len, err, sizeof(err)), TN_OK);
  tn_file_free(buf, len);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_regular), cmocka_unit_test(test_grows), cmocka_unit_test(test_missing),
    cmocka_unit_test(test_fifo), cmocka_unit_test(test_symlink), cmocka_unit_test(test_private_modes),
  };

  return cmocka_run_group_tests(tests, setup, teardown);
}
