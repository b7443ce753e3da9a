/* certcheck.c: certificate dates and key readability for --check-config (docs/CONFIG.md, "Checking a configuration"). */
#include "tunnel/certcheck.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mbedtls/x509_crt.h>

#include "tunnel/pki.h"

void tn_certcheck_init(struct tn_certcheck *cc, FILE *out, const char *prog, int64_t now)
{
  memset(cc, 0, sizeof(*cc));
  cc->out = out;
  cc->prog = prog;
  cc->now = now;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t certcheck_days(int64_t y, int64_t m, int64_t d)
{
  int64_t era, yoe, doy, doe;

  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = y - era * 400;
  doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int64_t certcheck_time(const mbedtls_x509_time *t)
{
  return certcheck_days(t->year, t->mon, t->day) * 86400 + t->hour * 3600 + t->min * 60 + t->sec;
}

static void certcheck_one(struct tn_certcheck *cc, const char *path, const char *what, const mbedtls_x509_crt *crt,
                          int own)
{
  int64_t from = certcheck_time(&crt->valid_from), to = certcheck_time(&crt->valid_to);
  char name[256], f[21], t[21];
  const char *state;

  if (cc->now > to)
    state = "expired";
  else if (cc->now < from)
    state = "is not valid yet";
  else
    return;
  if (mbedtls_x509_dn_gets(name, sizeof(name), &crt->subject) < 0)
    snprintf(name, sizeof(name), "(a subject too long to show)");
  tn_pki_format_time(from, f);
  tn_pki_format_time(to, t);
  fprintf(cc->out, "%s: %s: \"%s\": %scertificate \"%s\" %s: valid from %s to %s%s\n", cc->prog, path, what,
          own ? "" : "warning: ", name, state, f, t,
          own ? "; tunnel peers refuse it" : "");
  if (own)
    cc->errors++;
  else
    cc->warnings++;
}

void tn_certcheck_dates(struct tn_certcheck *cc, const char *path, const char *what, int own)
{
  mbedtls_x509_crt chain;
  int first = 1;

  mbedtls_x509_crt_init(&chain);
  if (mbedtls_x509_crt_parse_file(&chain, path) >= 0) {
    for (const mbedtls_x509_crt *c = &chain; c != NULL && c->raw.len > 0; c = c->next) {
      certcheck_one(cc, path, what, c, own && first);
      first = 0;
    }
  }
  mbedtls_x509_crt_free(&chain);
}

/*
 * In the child: become user (groups, gid, uid, in that order) and try the open, or with dir the entry into the
 * directory; the exit status is the errno.
 */
static void certcheck_child(const char *path, const struct passwd *pw, int dir)
{
  int ok;

  if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
    _exit(255);
  ok = dir ? access(path, X_OK) == 0 : open(path, O_RDONLY | O_CLOEXEC) >= 0;
  _exit(ok ? 0 : (errno > 0 && errno < 255 ? errno : 254));
}

/* 0: checked (a refusal is counted), -1: no such user. */
static int certcheck_as_user(struct tn_certcheck *cc, const char *path, const char *what, const char *user,
                             const char *dir)
{
  struct passwd *pw = getpwnam(user);
  int status = 0;
  pid_t pid;

  if (pw == NULL)
    return -1;
  fflush(cc->out);
  pid = fork();
  if (pid == 0)
    certcheck_child(dir != NULL ? dir : path, pw, dir != NULL);
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
    fprintf(cc->out, "%s: %s: \"%s\": could not check whether user \"%s\" can read it\n", cc->prog, path, what, user);
    cc->warnings++;
    return 0;
  }
  if (WEXITSTATUS(status) == 0)
    return 0;
  fprintf(cc->out, "%s: %s: \"%s\": user \"%s\" (the service user) cannot %s%s: %s\n", cc->prog, path, what, user,
          dir != NULL ? "enter " : "read it", dir != NULL ? dir : "",
          WEXITSTATUS(status) == 255 ? "cannot take that user's identity" : strerror(WEXITSTATUS(status)));
  cc->errors++;
  return 0;
}

int tn_certcheck_readable(struct tn_certcheck *cc, const char *path, const char *what, const char *user)
{
  return certcheck_as_user(cc, path, what, user, NULL);
}

/* The directory that will hold path ("." for a bare name), in buf. */
static const char *certcheck_dir(const char *path, char *buf, size_t len)
{
  const char *slash = strrchr(path, '/');
  size_t n = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);

  if (n == 0 || n >= len)
    return n == 0 ? "." : NULL;
  memcpy(buf, path, n);
  buf[n] = '\0';
  return buf;
}

void tn_certcheck_files(struct tn_certcheck *cc, const struct tn_certcheck_file *files, size_t n, const char *user)
{
  const char *u = user != NULL ? user : TN_CERTCHECK_DEFAULT_USER;

  for (size_t i = 0; i < n; i++)
    if (files[i].path != NULL && (files[i].kind == TN_CERTCHECK_OWN_CERT || files[i].kind == TN_CERTCHECK_CA))
      tn_certcheck_dates(cc, files[i].path, files[i].what, files[i].kind == TN_CERTCHECK_OWN_CERT);
  /* Not root: the load that just succeeded read every file as the user the check runs as. */
  if (geteuid() != 0)
    return;
  if (getpwnam(u) == NULL) {
    fprintf(cc->out, "%s: user \"%s\" does not exist: %s (--service-user names the User= of the service)\n",
            cc->prog, u, user != NULL ? "cannot check that it can read the files" : "readability not checked");
    if (user != NULL)
      cc->errors++;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    char dir[4096];
    const char *d;

    if (files[i].path == NULL)
      continue;
    if (files[i].kind != TN_CERTCHECK_INSTALLED) {
      tn_certcheck_readable(cc, files[i].path, files[i].what, u);
    } else if ((d = certcheck_dir(files[i].path, dir, sizeof(dir))) != NULL) {
      certcheck_as_user(cc, files[i].path, files[i].what, u, d);
    }
  }
}
