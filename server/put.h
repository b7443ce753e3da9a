/* put.h: a PUT /tunnels applied without stalling the event loop, one at a time. */
#ifndef TD_PUT_H
#define TD_PUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "table.h"

struct td_server;

/* How a PUT /tunnels ended; the API maps these to HTTP statuses. */
enum td_put_result {
  TD_PUT_APPLIED,
  TD_PUT_INVALID,   /* the body does not parse or is not a valid table */
  TD_PUT_TOO_LARGE, /* MaxTunnels or MaxBackupsPerTunnel exceeded */
  TD_PUT_CONFLICT,  /* a listener cannot be bound */
  TD_PUT_FAILED,    /* out of memory, or the state file cannot be written */
  TD_PUT_STOPPING   /* the server began to stop before the table was in force */
};

/*
 * Called on the loop once the PUT has ended; err is "" when applied, and table_json then holds the table in force
 * as GET /tunnels shows it, built on a worker thread (NULL if that ran out of memory). The job is gone after it
 * returns.
 */
typedef void (*td_put_done_fn)(void *arg, enum td_put_result result, const char *err, const char *table_json);

struct td_put;

/*
 * A PUT /tunnels body as the new table: TD_PUT_APPLIED with *out filled, or the result the request ends with, err
 * set and *out empty. Touches nothing shared: td_put_start runs it on a worker thread.
 */
enum td_put_result td_put_parse(const uint8_t *text, size_t len, const struct td_reserved *reserved,
                                const struct td_table_limits *limits, struct td_table *out, char *err, size_t errlen);

/*
 * Starts applying body (JSON, copied) as the new table, for actor (admin identity) at peer. The body is parsed and
 * checked, and the state file written, on libuv's worker threads; listeners are bound a few milliseconds' worth
 * per loop iteration; the swap is one step on the loop. So a table of thousands of tunnels keeps GET /ping and
 * every tunnel answering meanwhile. The caller must not start another (td_put_busy) until done has run: other
 * changes to the table or the revoked list wait for it. NULL when out of memory (done is not called).
 */
struct td_put *td_put_start(struct td_server *srv, const uint8_t *body, size_t len, const struct td_reserved *reserved,
                            const struct td_table_limits *limits, const char *actor, const char *peer,
                            td_put_done_fn done, void *arg);
/* The requester went away: the change still completes (or fails) as it would have, unreported. */
void td_put_detach(struct td_put *p);
/* True while a PUT is being applied. */
bool td_put_busy(const struct td_server *srv);

#endif
