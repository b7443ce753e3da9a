/* state.c: atomic persistence of the tunnel table. */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "tunnel/error.h"
#include "tunnel/file.h"

/* The directory part of path ("." when there is none), for the temp file and the directory fsync. */
static char *dir_of(const char *path)
{
  const char *slash = strrchr(path, '/');

  if (!slash)
    return strdup(".");
  if (slash == path)
    return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

static int write_all(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The file's JSON: the bare table while nothing is revoked, else the object form (see state.h). */
static json_t *state_json(const struct td_table *t, const struct td_revoked *r)
{
  json_t *tunnels = td_table_to_json(t, NULL, NULL);
  json_t *revoked;

  if (tunnels == NULL || r == NULL || r->n == 0)
    return tunnels;
  revoked = td_revoked_to_json(r);
  if (revoked == NULL) {
    json_decref(tunnels);
    return NULL;
  }
  return json_pack("{s:o, s:o}", "Tunnels", tunnels, "RevokedCertificates", revoked);
}

int td_state_save(const char *path, const struct td_table *t, const struct td_revoked *r, char *err, size_t errlen)
{
  json_t *j = state_json(t, r);
  char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
  char *dir = dir_of(path);
  size_t tmplen = strlen(path) + sizeof(".tmp.XXXXXX");
  char *tmp = malloc(tmplen);
  const char *step = NULL;
  int fd = -1, dfd, saved_errno = 0;

  json_decref(j);
  if (!text || !dir || !tmp) {
    snprintf(err, errlen, "%s: out of memory", path);
    free(text);
    free(dir);
    free(tmp);
    return TN_ERR_NOMEM;
  }
  snprintf(tmp, tmplen, "%s.tmp.XXXXXX", path);
  /* mkstemp creates the file 0600: the table names clients, not for every local user. */
  fd = mkstemp(tmp);
  if (fd < 0) {
    step = "cannot create a temporary file beside it";
    saved_errno = errno;
    goto out;
  }
  if (fchmod(fd, 0600) < 0) {
    step = "chmod";
  } else if (write_all(fd, text, strlen(text)) < 0 || write_all(fd, "\n", 1) < 0) {
    step = "write";
  } else if (fsync(fd) < 0) {
    step = "fsync";
  }
  if (step)
    saved_errno = errno;
  if (close(fd) < 0 && !step) {
    step = "close";
    saved_errno = errno;
  }
  if (!step && rename(tmp, path) < 0) {
    step = "rename";
    saved_errno = errno;
  }
  if (step) {
    unlink(tmp);
    goto out;
  }
  /* Without this the rename itself may not survive a power cut. */
  dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) < 0) {
    step = "fsync of the directory";
    saved_errno = errno;
  }
  if (dfd >= 0)
    close(dfd);

out:
  if (step)
    snprintf(err, errlen, "%s: cannot save the state file: %s: %s", path, step, strerror(saved_errno));
  free(text);
  free(dir);
  free(tmp);
  return step ? TN_ERR_INVALID : TN_OK;
}

int td_state_check_place(const char *path, uid_t service_uid, char *err, size_t errlen)
{
  char *dir = dir_of(path);
  struct stat st;
  int rc = TN_ERR_INVALID;

  if (dir == NULL) {
    snprintf(err, errlen, "%s: out of memory", path);
    return TN_ERR_NOMEM;
  }
  /*
   * Whoever can write the directory can delete the file (every revocation with it) or plant a table that opens
   * ports for any client at the next start; the sticky bit does not stop the owner of a planted file. So the
   * directory is writable by root and the service user only, whatever its sticky bit (/tmp is the classic case).
   */
  if (stat(dir, &st) != 0) {
    snprintf(err, errlen, "%s: its directory %s %s", path, dir,
             errno == ENOENT ? "does not exist (create it, owned by the service user, mode 0750)" : strerror(errno));
  } else if (!S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "%s: %s is not a directory", path, dir);
  } else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    snprintf(err, errlen, "%s: its directory %s is writable by %s (mode %04o): anyone who can write there can delete "
             "the state file with its revocations or plant a table; make it writable by its owner only (chmod 0750)",
             path, dir, (st.st_mode & S_IWOTH) ? "others" : "its group", (unsigned)(st.st_mode & 07777));
  } else if (st.st_uid != 0 && st.st_uid != service_uid) {
    snprintf(err, errlen, "%s: its directory %s is owned by uid %u, neither root nor the service user (uid %u)", path,
             dir, (unsigned)st.st_uid, (unsigned)service_uid);
  } else if (lstat(path, &st) == 0 && st.st_uid != 0 && st.st_uid != service_uid) {
    snprintf(err, errlen, "%s: owned by uid %u, neither root nor the service user (uid %u)", path,
             (unsigned)st.st_uid, (unsigned)service_uid);
  } else if (lstat(path, &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH))) {
    snprintf(err, errlen, "%s: writable by group or others (mode %04o); tunneld writes it 0600", path,
             (unsigned)(st.st_mode & 07777));
  } else {
    rc = TN_OK;
  }
  free(dir);
  return rc;
}

int td_state_missing(const char *path)
{
  struct stat st;

  return lstat(path, &st) != 0 && errno == ENOENT;
}

/* Keeps the part of a message before any quoted input: jansson's "near '...'" and the table's ", got ...". */
static void drop_quoted(char *msg)
{
  char *cut = strstr(msg, " near ");
  char *got = strstr(msg, ", got ");

  if (got != NULL && (cut == NULL || got < cut))
    cut = got;
  if (cut != NULL)
    *cut = '\0';
}

int td_state_load(const char *path, const struct td_reserved *reserved, struct td_table *out,
                  struct td_revoked *revoked, char *err, size_t errlen)
{
  char *text;
  size_t len;
  json_t *j;
  const json_t *tunnels, *list = NULL;
  json_error_t jerr;
  char inner[512];
  int rc;

  td_table_init(out);
  td_revoked_init(revoked);
  /*
   * tunneld writes this file too, so a link planted at the path would make it read (and rename over)
   * something else: refused. Messages never quote the content, whatever the file turns out to hold.
   */
  rc = tn_file_read(path, TD_STATE_MAX_BYTES, TN_FILE_NOFOLLOW | TN_FILE_MISSING_OK, "tunnel table", &text, &len,
                    inner, sizeof(inner));
  if (rc != TN_OK) {
    size_t n = strlen(path);
    const char *why = strncmp(inner, path, n) == 0 && inner[n] == ':' ? inner + n + 2 : inner;
    snprintf(err, errlen, "%s: cannot read the state file: %s", path, why);
    return rc;
  }
  if (text == NULL)
    return TN_OK;  /* first start */
  j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  tn_file_free(text, len);
  if (!j) {
    drop_quoted(jerr.text);
    tn_err_one_line(jerr.text);
    snprintf(err, errlen, "%s: corrupt state file: line %d, column %d: %s", path, jerr.line, jerr.column,
             jerr.text);
    return TN_ERR_INVALID;
  }
  tunnels = j;
  if (json_is_object(j)) {
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
      if (strcmp(key, "Tunnels") != 0 && strcmp(key, "RevokedCertificates") != 0) {
        /* Not the key itself: nothing from the file is ever quoted back. */
        snprintf(err, errlen, "%s: invalid state file: an unknown key at the top level (only \"Tunnels\" and "
                 "\"RevokedCertificates\" belong there)", path);
        json_decref(j);
        return TN_ERR_INVALID;
      }
    }
    tunnels = json_object_get(j, "Tunnels");
    list = json_object_get(j, "RevokedCertificates");
    if (tunnels == NULL) {
      snprintf(err, errlen, "%s: invalid state file: \"Tunnels\" is missing", path);
      json_decref(j);
      return TN_ERR_INVALID;
    }
  }
  /* Sizes are judged by the caller against MaxTunnels, with a message that says which limit to raise. */
  rc = td_table_from_json(tunnels, reserved, NULL, out, inner, sizeof(inner));
  if (rc != TN_OK) {
    drop_quoted(inner);
    snprintf(err, errlen, "%s: invalid state file: %s", path, inner);
  } else if (list != NULL && (rc = td_revoked_from_json(list, revoked, inner, sizeof(inner))) != TN_OK) {
    drop_quoted(inner);
    snprintf(err, errlen, "%s: invalid state file: RevokedCertificates%s%s", path, inner[0] == '[' ? "" : ": ", inner);
    td_table_free(out);
  }
  json_decref(j);
  return rc;
}
