/* state.h: the tunnel table's state file, written atomically after every applied PUT and read at start. */
#ifndef TD_STATE_H
#define TD_STATE_H

#include <stddef.h>

#include "table.h"

/* Largest state file read back: a table PUT bodies (at most ApiMaxBody's 64 MiB) can build, written indented. */
#define TD_STATE_MAX_BYTES (256u * 1024u * 1024u)

/*
 * Writes t (as the JSON array PUT /tunnels takes) to path atomically: a temporary file
 * in the same directory, written, fsynced, renamed over path, then the directory
 * fsynced; mode 0600. On failure the old file is untouched and no temporary is left.
 * Returns TN_OK, or TN_ERR_INVALID / TN_ERR_NOMEM with err naming the file and the fault.
 */
int td_state_save(const char *path, const struct td_table *t, char *err, size_t errlen);

/*
 * Reads path into *out, validated like a PUT body against reserved (may be NULL).
 * A missing file is an empty table (first start), not an error. A corrupt or invalid
 * file is TN_ERR_INVALID with err naming the file (and line/column or the tunnel), as is
 * anything but a regular file, a symbolic link included. Messages never quote the file.
 */
int td_state_load(const char *path, const struct td_reserved *reserved, struct td_table *out, char *err,
                  size_t errlen);

#endif
