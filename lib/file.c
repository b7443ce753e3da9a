/* file.c: the bounded, type-checked file reader every loader shares. */
#include "tunnel/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "tunnel/error.h"

static const char *kind_of(mode_t m)
{
  if (S_ISDIR(m))
    return "a directory";
  if (S_ISFIFO(m))
    return "a FIFO";
  if (S_ISSOCK(m))
    return "a socket";
  if (S_ISCHR(m) || S_ISBLK(m))
    return "a device";
  return "not a plain file";
}

/* Grows buf to cap bytes; the old copy is wiped first, as it may hold a key. */
static char *grow(char *buf, size_t used, size_t cap)
{
  char *n = malloc(cap);

  if (n != NULL && used > 0)
    memcpy(n, buf, used);
  if (buf != NULL)
    mbedtls_platform_zeroize(buf, used);
  free(buf);
  return n;
}

static int check_private(const char *path, mode_t mode, char *err, size_t errlen)
{
  const char *who;

  /* As sshd: group read is a deployment choice (a daemon's group); anything looser is a leak. */
  if (mode & S_IROTH)
    who = "others may read it";
  else if (mode & (S_IWGRP | S_IWOTH))
    who = "group or others may change it";
  else
    return TN_OK;
  tn_errf(err, errlen, "%s: permissions %04o are too open for a private key (%s); run: chmod 600 %s", path,
          (unsigned)(mode & 07777), who, path);
  return TN_ERR_INVALID;
}

int tn_file_read(const char *path, size_t max, unsigned flags, const char *what, char **out, size_t *len, char *err,
                 size_t errlen)
{
  struct stat st;
  char *buf = NULL;
  size_t used = 0, cap, limit;
  int fd, rc = TN_OK;

  *out = NULL;
  *len = 0;
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | ((flags & TN_FILE_NOFOLLOW) ? O_NOFOLLOW : 0));
  if (fd < 0) {
    if (errno == ENOENT && (flags & TN_FILE_MISSING_OK))
      return TN_OK;
    if (errno == ELOOP && (flags & TN_FILE_NOFOLLOW))
      tn_errf(err, errlen, "%s: is a symbolic link; refusing to follow it (give the path of the file itself)", path);
    else
      tn_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return TN_ERR_INVALID;
  }
  if (fstat(fd, &st) != 0) {
    tn_errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    close(fd);
    return TN_ERR_INVALID;
  }
  if (!S_ISREG(st.st_mode)) {
    tn_errf(err, errlen, "%s: not a regular file (%s)", path, kind_of(st.st_mode));
    close(fd);
    return TN_ERR_INVALID;
  }
  if ((flags & TN_FILE_PRIVATE) && check_private(path, st.st_mode, err, errlen) != TN_OK) {
    close(fd);
    return TN_ERR_INVALID;
  }
  /* The size is a hint (the file may change under us); the bound is enforced on what is read: up to
   * max + 1 bytes, so a file over the bound is told from one exactly at it. */
  limit = max + 1;
  cap = st.st_size > 0 && (uint64_t)st.st_size < limit ? (size_t)st.st_size + 1 : 4096;
  if (cap > limit)
    cap = limit;
  buf = malloc(cap + 1);
  while (buf != NULL) {
    ssize_t n;
    if (used == cap) {
      if (cap == limit)
        break;
      cap = cap > limit / 2 ? limit : cap * 2;
      buf = grow(buf, used, cap + 1);
      continue;
    }
    n = read(fd, buf + used, cap - used);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      tn_errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
      rc = TN_ERR_INVALID;
      break;
    }
    if (n == 0)
      break;
    used += (size_t)n;
  }
  close(fd);
  if (buf == NULL) {
    tn_errf(err, errlen, "%s: out of memory", path);
    return TN_ERR_NOMEM;
  }
  if (rc == TN_OK && used > max) {
    tn_errf(err, errlen, "%s: file is larger than %zu bytes%s%s", path, max, what ? ", not a " : "", what ? what : "");
    rc = TN_ERR_INVALID;
  }
  if (rc != TN_OK) {
    tn_file_free(buf, used);
    return rc;
  }
  buf[used] = '\0';
  *out = buf;
  *len = used;
  return TN_OK;
}

void tn_file_free(char *buf, size_t len)
{
  if (buf == NULL)
    return;
  mbedtls_platform_zeroize(buf, len + 1);
  free(buf);
}
