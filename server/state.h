/* state.h: the state file (tunnel table and revoked certificates), written atomically after every applied PUT and read at start. */
#ifndef TD_STATE_H
#define TD_STATE_H

#include <stddef.h>
#include <sys/types.h>

#include "revoked.h"
#include "table.h"

/* Largest state file read back: a table PUT bodies (at most ApiMaxBody's 64 MiB) can build, written indented. */
#define TD_STATE_MAX_BYTES (256u * 1024u * 1024u)

/*
 * Two forms. With no revoked certificates the file is the JSON array PUT /tunnels takes (as
 * every earlier tunneld wrote it, so a downgrade still reads it); otherwise an object
 * {"Tunnels": [...], "RevokedCertificates": [...]}. Both are read.
 *
 * Writes t and r to path atomically: a temporary file
 * in the same directory, written, fsynced, renamed over path, then the directory
 * fsynced; mode 0600. On failure the old file is untouched and no temporary is left.
 * Returns TN_OK, or TN_ERR_INVALID / TN_ERR_NOMEM with err naming the file and the fault.
 */
int td_state_save(const char *path, const struct td_table *t, const struct td_revoked *r, char *err, size_t errlen);

/*
 * Reads path into *out and *revoked, validated like PUT bodies (tunnels against reserved,
 * which may be NULL). A missing file is an empty table and list (first start), not an error.
 * A corrupt or invalid file is TN_ERR_INVALID with err naming the file (and line/column,
 * the tunnel or the entry), as is anything but a regular file, a symbolic link included;
 * both outputs are then empty. Messages never quote the file.
 */
int td_state_load(const char *path, const struct td_reserved *reserved, struct td_table *out,
                  struct td_revoked *revoked, char *err, size_t errlen);

/*
 * Refuses a StateFile whose directory is missing, not a directory, writable by group or others (sticky or not),
 * or owned by someone other than root or service_uid, and a file owned by someone else or writable by group or
 * others: whoever can replace it decides the table and the revocations. TN_OK, or TN_ERR_INVALID with err
 * naming the path and the problem.
 */
int td_state_check_place(const char *path, uid_t service_uid, char *err, size_t errlen);

/* True when nothing is at path (a start that must not take that for an empty table). */
int td_state_missing(const char *path);

#endif
