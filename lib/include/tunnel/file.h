/* tunnel/file.h: the one place configuration, certificate, key and state files are opened: regular files only, bounded, contents never echoed. */
#ifndef TUNNEL_FILE_H
#define TUNNEL_FILE_H

#include <stddef.h>

/*
 * Why one reader: every file tunnel reads names a path an operator (or a package script) chose,
 * and each has been a way in. A FIFO at the path would block the event loop's program at start
 * forever; a device could be read without end; a symbolic link at a path the daemon also writes
 * (StateFile) could make it read, and quote in an error, another file. So the file is opened with
 * O_NONBLOCK (a FIFO open never waits), checked with fstat on the open descriptor (no race
 * between check and use), read with a size bound, and never quoted in a message.
 */
enum tn_file_flags {
  TN_FILE_NOFOLLOW = 1u,   /* refuse a symbolic link at the path itself (directories above may be links) */
  TN_FILE_PRIVATE = 2u,    /* a private key: refuse it when others may read it or group/others may write it */
  TN_FILE_MISSING_OK = 4u  /* a missing file is TN_OK with *out NULL and *len 0 (first start) */
};

/*
 * Reads the whole regular file at path, at most max bytes, into a new buffer with a NUL after
 * the last byte (PEM and JSON parsers want one). Returns TN_OK, TN_ERR_INVALID (cannot open,
 * not a regular file, a link with TN_FILE_NOFOLLOW, a key with too open permissions,
 * too large) or TN_ERR_NOMEM, with err set to one line that starts with the path and
 * says what to do, e.g.
 *   "/etc/tunnel/server.key: permissions 0644 are too open for a private key (others may read it); run: chmod 600 /etc/tunnel/server.key"
 * what names the expected content for the size message ("certificate or key"); may be NULL.
 * Free the buffer with tn_file_free (it wipes it first: it may hold a key).
 */
int tn_file_read(const char *path, size_t max, unsigned flags, const char *what, char **out, size_t *len, char *err,
                 size_t errlen);

/* Wipes and frees a buffer from tn_file_read (len as returned); NULL is fine. */
void tn_file_free(char *buf, size_t len);

#endif
