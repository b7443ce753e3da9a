/* apply.h: the tunnel-table swap: bind what the new table adds, then switch routing to it in one step. */
#ifndef TD_APPLY_H
#define TD_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "table.h"

struct td_server;
struct td_apply;

/*
 * A table change in steps, for an apply spread over several loop iterations (put.c). begin takes *new_table's
 * contents (0) or leaves it untouched (TN_ERR_NOMEM, err set); bind binds the new listeners until deadline_ns
 * (uv_hrtime; 0: no deadline), *done once all are, TN_ERR_CONFLICT with err set when one cannot be; the caller
 * persists td_apply_table() and commits, or frees (closing what was bound: nothing changed). Nothing else may
 * change the table or the listeners between begin and commit.
 */
int td_apply_begin(struct td_server *srv, struct td_table *new_table, struct td_apply **out, char *err, size_t errlen);
int td_apply_bind(struct td_server *srv, struct td_apply *a, uint64_t deadline_ns, bool *done, char *err, size_t errlen);
const struct td_table *td_apply_table(const struct td_apply *a);
/* The swap; audit lines name actor (NULL: none, as for a restored table). */
void td_apply_commit(struct td_server *srv, struct td_apply *a, const char *actor, const char *peer);
/* After the commit, closes the handles of the listeners it removed, until deadline_ns (0: all); *done when none is
 * left. Those listeners already take no connections: this only spreads the closing over loop iterations. */
void td_apply_close(struct td_server *srv, struct td_apply *a, uint64_t deadline_ns, bool *done);
void td_apply_free(struct td_server *srv, struct td_apply *a);

/*
 * Every step at once: binds every new listener and writes the state file first; on any failure nothing changes.
 * Returns TN_OK, or with err set TN_ERR_CONFLICT (a port that cannot be bound), TN_ERR_IO (the state file cannot
 * be written) or TN_ERR_NOMEM. Takes ownership of new_table's contents on success. Logs no audit lines: it is how
 * the restored table is applied at start; PUT /tunnels goes through put.c.
 */
int td_apply_now(struct td_server *srv, struct td_table *new_table, char *err, size_t errlen);

#endif
