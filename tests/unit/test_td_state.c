/* test_td_state.c: state file round trip, atomic replacement, missing and corrupt files. */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "state.h"
#include "tunnel/error.h"
#include "tunnel/tls.h"

/* Old-format files carry no revoked list; the loader still fills one. */
static struct td_revoked g_rev;

struct fixture {
  char dir[64];
  char path[128];
};

static void rm_rf(const char *dir)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  char p[512];

  if (!d)
    return;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
    if (rmdir(p) != 0)
      unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

static int setup(void **state)
{
  struct fixture *f = calloc(1, sizeof(*f));

  snprintf(f->dir, sizeof(f->dir), "/tmp/td_state_XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof(f->path), "%s/tunnels.json", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;

  rm_rf(f->dir);
  free(f);
  return 0;
}

static size_t count_entries(const char *dir)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  size_t n = 0;

  assert_non_null(d);
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      n++;
  closedir(d);
  return n;
}

static void make_table(struct td_table *t, size_t n)
{
  json_t *arr = json_array();
  char err[256], id[64];

  for (size_t i = 0; i < n; i++) {
    snprintf(id, sizeof(id), "client-%zu", i);
    json_array_append_new(arr, json_pack("{s:s,s:i,s:s,s:[s],s:s,s:b,s:i}", "ListenAddress", "::1", "ListenPort",
                                         (int)(1000 + i), "ClientIdentifier", id, "BackupClientIdentifiers", "spare",
                                         "BackEndService", "web", "HaProxyProxyProtocol", 1, "ProxyProtocolVersion", 2));
  }
  assert_int_equal(td_table_from_json(arr, NULL, NULL, t, err, sizeof(err)), TN_OK);
  json_decref(arr);
}

static char *slurp(const char *path)
{
  FILE *fp = fopen(path, "rb");
  char *buf = calloc(1, 1 << 20);
  size_t n;

  assert_non_null(fp);
  n = fread(buf, 1, (1 << 20) - 1, fp);
  buf[n] = 0;
  fclose(fp);
  return buf;
}

static void test_round_trip(void **state)
{
  struct fixture *f = *state;
  struct td_table t, back;
  struct stat st;
  char err[512];

  make_table(&t, 3);
  assert_int_equal(td_state_save(f->path, &t, NULL, err, sizeof(err)), TN_OK);
  assert_int_equal(stat(f->path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(count_entries(f->dir), 1);
  assert_int_equal(td_state_load(f->path, NULL, &back, &g_rev, err, sizeof(err)), TN_OK);
  assert_int_equal(back.n, 3);
  for (size_t i = 0; i < 3; i++)
    assert_true(td_table_equal_tunnel(&t.tunnels[i], &back.tunnels[i]));
  td_table_free(&back);

  /* Replacing with a smaller table leaves no trace of the old one. */
  td_table_free(&t);
  td_table_init(&t);
  assert_int_equal(td_state_save(f->path, &t, NULL, err, sizeof(err)), TN_OK);
  assert_int_equal(td_state_load(f->path, NULL, &back, &g_rev, err, sizeof(err)), TN_OK);
  assert_int_equal(back.n, 0);
  {
    char *text = slurp(f->path);
    assert_string_equal(text, "[]\n");
    free(text);
  }
  assert_int_equal(count_entries(f->dir), 1);
  td_table_free(&back);
}

static void test_relative_path(void **state)
{
  struct fixture *f = *state;
  struct td_table t, back;
  char err[512], cwd[512];

  assert_non_null(getcwd(cwd, sizeof(cwd)));
  assert_int_equal(chdir(f->dir), 0);
  make_table(&t, 1);
  assert_int_equal(td_state_save("rel.json", &t, NULL, err, sizeof(err)), TN_OK);
  assert_int_equal(td_state_load("rel.json", NULL, &back, &g_rev, err, sizeof(err)), TN_OK);
  assert_int_equal(back.n, 1);
  td_table_free(&back);
  td_table_free(&t);
  assert_int_equal(chdir(cwd), 0);
}

static void test_missing_file(void **state)
{
  struct fixture *f = *state;
  struct td_table t;
  char err[512] = "";

  assert_int_equal(td_state_load(f->path, NULL, &t, &g_rev, err, sizeof(err)), TN_OK);
  assert_int_equal(t.n, 0);
  assert_string_equal(err, "");
  td_table_free(&t);
}

static void write_text(const char *path, const char *text)
{
  FILE *fp = fopen(path, "w");

  assert_non_null(fp);
  fputs(text, fp);
  fclose(fp);
}

static void test_corrupt_file(void **state)
{
  struct fixture *f = *state;
  struct td_table t;
  char err[512], want[512];
  struct td_reserved r;

  write_text(f->path, "[{\"ListenPort\": 80,\n");
  assert_int_equal(td_state_load(f->path, NULL, &t, &g_rev, err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s: corrupt state file: line 2, column 0: ", f->path);
  assert_memory_equal(err, want, strlen(want));
  assert_int_equal(t.n, 0);

  /* jansson quotes the input, a newline included: the message stays one line and quotes nothing. */
  write_text(f->path, "[{\"a\":\"\\\n  \"9\\n\"}]");
  assert_int_equal(td_state_load(f->path, NULL, &t, &g_rev, err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s: corrupt state file: line 2, column 0: invalid escape", f->path);
  assert_string_equal(err, want);

  write_text(f->path, "[{\"ListenPort\": 0, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1}]");
  assert_int_equal(td_state_load(f->path, NULL, &t, &g_rev, err, sizeof(err)), TN_ERR_INVALID);
  /* Without the value: the file's content is never quoted, whatever it turns out to hold. */
  snprintf(want, sizeof(want), "%s: invalid state file: tunnels[0].ListenPort: must be 1-65535", f->path);
  assert_string_equal(err, want);

  /* A table saved before the server's ports changed now collides with them. */
  memset(&r, 0, sizeof(r));
  tn_addr_parse_ip(&r.ports[0].addr, "::");
  r.ports[0].addr.port = 80;
  r.ports[0].what = "ManagementPort";
  r.n = 1;
  write_text(f->path, "[{\"ListenPort\": 80, \"ClientIdentifier\": \"a\", \"BackEndPort\": 1}]");
  assert_int_equal(td_state_load(f->path, &r, &t, &g_rev, err, sizeof(err)), TN_ERR_INVALID);
  assert_non_null(strstr(err, "collides with the server's ManagementPort"));
}

static void test_unreadable(void **state)
{
  struct fixture *f = *state;
  struct td_table t;
  char err[512], want[512];

  assert_int_equal(mkdir(f->path, 0700), 0);
  assert_int_equal(td_state_load(f->path, NULL, &t, &g_rev, err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s: cannot read the state file: not a regular file (a directory)", f->path);
  assert_string_equal(err, want);
}

/* A save that fails part way (here: the file size limit hits during write) keeps the old file intact. */
static void test_failed_save_keeps_old(void **state)
{
  struct fixture *f = *state;
  struct td_table small, big, back;
  struct rlimit old, lim;
  char err[512], *before, *after;
  void (*prev)(int);

  make_table(&small, 1);
  make_table(&big, 200);
  assert_int_equal(td_state_save(f->path, &small, NULL, err, sizeof(err)), TN_OK);
  before = slurp(f->path);

  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  lim = old;
  lim.rlim_cur = 4096;
  prev = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  assert_int_equal(td_state_save(f->path, &big, NULL, err, sizeof(err)), TN_ERR_INVALID);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, prev);
  assert_non_null(strstr(err, ": cannot save the state file: write: File too large"));

  after = slurp(f->path);
  assert_string_equal(before, after);
  assert_int_equal(count_entries(f->dir), 1); /* no temporary left behind */
  assert_int_equal(td_state_load(f->path, NULL, &back, &g_rev, err, sizeof(err)), TN_OK);
  assert_int_equal(back.n, 1);
  td_table_free(&back);

  /* A rename that cannot happen (the target is a non-empty directory) also leaves no temporary. */
  assert_int_equal(unlink(f->path), 0);
  assert_int_equal(mkdir(f->path, 0700), 0);
  {
    char inner[256];
    snprintf(inner, sizeof(inner), "%s/keep", f->path);
    write_text(inner, "x");
    assert_int_equal(td_state_save(f->path, &small, NULL, err, sizeof(err)), TN_ERR_INVALID);
    assert_non_null(strstr(err, ": cannot save the state file: rename: "));
    assert_int_equal(count_entries(f->dir), 1);
    unlink(inner);
  }

  free(before);
  free(after);
  td_table_free(&small);
  td_table_free(&big);
}

static void test_missing_directory(void **state)
{
  struct fixture *f = *state;
  struct td_table t;
  char err[512], path[256], want[512];

  td_table_init(&t);
  snprintf(path, sizeof(path), "%s/nodir/tunnels.json", f->dir);
  assert_int_equal(td_state_save(path, &t, NULL, err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want),
           "%s: cannot save the state file: cannot create a temporary file beside it: No such file or directory", path);
  assert_string_equal(err, want);
}

#define FP_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FP_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* A revoked list makes the object form; it reads back whole, and an empty list writes the old bare array. */
static void test_revoked_round_trip(void **state)
{
  struct fixture *f = *state;
  struct td_table t, back;
  struct td_revoked r, rback;
  char err[512] = "";
  json_error_t jerr;
  json_t *list = json_loads("[\"" FP_B "\", \"" FP_A "\"]", 0, &jerr), *file;
  json_t *table = json_loads("[{\"ListenPort\": 8080, \"ClientIdentifier\": \"home1\", \"BackEndPort\": 80}]", 0, &jerr);

  assert_int_equal(td_table_from_json(table, NULL, NULL, &t, err, sizeof(err)), TN_OK);
  json_decref(table);
  assert_int_equal(td_revoked_from_json(list, &r, err, sizeof(err)), TN_OK);
  json_decref(list);
  assert_int_equal(td_state_save(f->path, &t, &r, err, sizeof(err)), TN_OK);
  file = json_load_file(f->path, 0, &jerr);
  assert_true(json_is_object(file));
  assert_true(json_is_array(json_object_get(file, "Tunnels")));
  assert_int_equal(json_array_size(json_object_get(file, "RevokedCertificates")), 2);
  json_decref(file);
  assert_int_equal(td_state_load(f->path, NULL, &back, &rback, err, sizeof(err)), TN_OK);
  assert_int_equal(back.n, 1);
  assert_int_equal(rback.n, 2);
  assert_string_equal(rback.fp[0], FP_B);  /* sorted */
  assert_true(td_revoked_contains(&rback, FP_A));
  td_table_free(&back);
  td_revoked_free(&rback);

  td_revoked_free(&r);
  assert_int_equal(td_state_save(f->path, &t, &r, err, sizeof(err)), TN_OK);
  file = json_load_file(f->path, 0, &jerr);
  assert_true(json_is_array(file));
  json_decref(file);
  td_table_free(&t);
}

static void test_revoked_invalid(void **state)
{
  struct fixture *f = *state;
  struct td_table t;
  char err[512], want[512];

  write_text(f->path, "{\"Tunnels\": [], \"RevokedCertificates\": [\"" FP_A "\", \"AB:CD\"]}");
  assert_int_equal(td_state_load(f->path, NULL, &t, &g_rev, err, sizeof(err)), TN_ERR_INVALID);
  snprintf(want, sizeof(want), "%s: invalid state file: RevokedCertificates[1]: must be a SHA-256 fingerprint, 64 hex "
           "digits with or without colons (as tunneld pki show or openssl x509 -fingerprint -sha256 prints it)", f->path);  /* the file's content is never quoted */
  assert_string_equal(err, want);
  assert_int_equal(g_rev.n, 0);

  write_text(f->path, "{\"Tunnels\": [], \"RevokedCertificates\": {}}");
  assert_int_equal(td_state_load(f->path, NULL, &t, &g_rev, err, sizeof(err)), TN_ERR_INVALID);
  assert_non_null(strstr(err, "RevokedCertificates: must be a JSON array of SHA-256 fingerprints"));
  assert_null(strstr(err, "got"));

  write_text(f->path, "{\"RevokedCertificates\": []}");
  assert_int_equal(td_state_load(f->path, NULL, &t, &g_rev, err, sizeof(err)), TN_ERR_INVALID);
  assert_non_null(strstr(err, "\"Tunnels\" is missing"));

  write_text(f->path, "{\"Tunnels\": [], \"Extra\": 1}");
  assert_int_equal(td_state_load(f->path, NULL, &t, &g_rev, err, sizeof(err)), TN_ERR_INVALID);
  assert_non_null(strstr(err, "an unknown key at the top level"));
  assert_null(strstr(err, "Extra"));
}

/* The list as PUT takes it: exact form, no duplicates, and the entry named in the message. */
static void test_revoked_parse(void **state)
{
  static const struct {
    const char *json;
    const char *err; /* NULL: accepted */
  } cases[] = {
    { "[]", NULL },
    { "[\"" FP_A "\"]", NULL },
    { "[\"" FP_A "\", \"" FP_B "\"]", NULL },
    { "{}", "must be a JSON array of SHA-256 fingerprints, got {}" },
    { "[\"" FP_A "\", \"" FP_B "\", \"" FP_A "\"]", "[0]: \"" FP_A "\" is listed twice" },
    { "[1]", "[0]: must be a SHA-256 fingerprint, 64 hex digits with or without colons (as tunneld pki show or "
             "openssl x509 -fingerprint -sha256 prints it), got 1" },
    /* docs/PKI.md: either form wherever a fingerprint is read, kept as 64 lowercase hex digits. */
    { "[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"]", NULL },
    { "[\"01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF\"]", NULL },
    { "[\"" FP_A "\", \"AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA\"]",
      "[0]: \"" FP_A "\" is listed twice" },
    { "[\"" FP_B "\\u0000" FP_A "\"]", "[0]: must be a SHA-256" },
    { "[\"" FP_A "a\"]", "[0]: must be a SHA-256" },
    { "[\"aa:bb\"]", "[0]: must be a SHA-256" },
    { "[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\\u0000\"]", "[0]: must be a SHA-256" },
    { "[null]", "[0]: must be a SHA-256" },
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    json_error_t jerr;
    json_t *j = json_loads(cases[i].json, JSON_ALLOW_NUL, &jerr);
    struct td_revoked r;
    char err[512] = "";
    int rc;

    assert_non_null(j);
    rc = td_revoked_from_json(j, &r, err, sizeof(err));
    json_decref(j);
    if (cases[i].err == NULL) {
      if (rc != TN_OK)
        fail_msg("case %zu refused: %s", i, err);
      for (size_t k = 0; k < r.n; k++)
        assert_true(tn_tls_fingerprint_is_canonical(r.fp[k]));
    } else if (rc != TN_ERR_INVALID || strncmp(err, cases[i].err, strlen(cases[i].err)) != 0) {
      fail_msg("case %zu: rc %d \"%s\", want \"%s\"", i, rc, err, cases[i].err);
    } else {
      assert_int_equal(r.n, 0);
    }
    td_revoked_free(&r);
  }
}

/* Where the state file may live: only root and the service user may replace it (docs/CONFIG.md, State file). */
static void test_check_place(void **state)
{
  struct fixture *f = *state;
  char err[768], missing[200];
  uid_t me = geteuid();

  assert_int_equal(chmod(f->dir, 0700), 0);
  assert_int_equal(td_state_check_place(f->path, me, err, sizeof(err)), TN_OK);
  assert_true(td_state_missing(f->path));
  write_text(f->path, "[]");
  assert_false(td_state_missing(f->path));
  assert_int_equal(td_state_check_place(f->path, me, err, sizeof(err)), TN_OK);

  assert_int_equal(chmod(f->dir, 0777), 0);
  assert_int_equal(td_state_check_place(f->path, me, err, sizeof(err)), TN_ERR_INVALID);
  assert_non_null(strstr(err, "is writable by others (mode 0777)"));
  assert_int_equal(chmod(f->dir, 01777), 0);  /* sticky: still refused */
  assert_int_equal(td_state_check_place(f->path, me, err, sizeof(err)), TN_ERR_INVALID);
  assert_non_null(strstr(err, "is writable by others (mode 1777)"));
  assert_int_equal(chmod(f->dir, 0770), 0);
  assert_int_equal(td_state_check_place(f->path, me, err, sizeof(err)), TN_ERR_INVALID);
  assert_non_null(strstr(err, "is writable by its group (mode 0770)"));
  assert_int_equal(chmod(f->dir, 0755), 0);

  assert_int_equal(chmod(f->path, 0666), 0);
  assert_int_equal(td_state_check_place(f->path, me, err, sizeof(err)), TN_ERR_INVALID);
  assert_non_null(strstr(err, "writable by group or others (mode 0666)"));
  assert_int_equal(chmod(f->path, 0600), 0);

  /* Owned by me, judged for another service user: refused unless I am root. */
  assert_int_equal(td_state_check_place(f->path, me + 1, err, sizeof(err)), me == 0 ? TN_OK : TN_ERR_INVALID);

  snprintf(missing, sizeof(missing), "%s/no-such-dir/tunnels.json", f->dir);
  assert_int_equal(td_state_check_place(missing, me, err, sizeof(err)), TN_ERR_INVALID);
  assert_non_null(strstr(err, "no-such-dir does not exist"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
    cmocka_unit_test_setup_teardown(test_relative_path, setup, teardown),
    cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
    cmocka_unit_test_setup_teardown(test_corrupt_file, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unreadable, setup, teardown),
    cmocka_unit_test_setup_teardown(test_failed_save_keeps_old, setup, teardown),
    cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
    cmocka_unit_test_setup_teardown(test_revoked_round_trip, setup, teardown),
    cmocka_unit_test_setup_teardown(test_revoked_invalid, setup, teardown),
    cmocka_unit_test(test_revoked_parse),
    cmocka_unit_test_setup_teardown(test_check_place, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
