/* table.h: the tunnel table (public listeners and the clients they route to), validated from and written as the management API's JSON. */
#ifndef TD_TABLE_H
#define TD_TABLE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnel/addr.h"

/* One tunnel: a public listener and the ordered list of clients that may serve it. */
struct td_tunnel {
  struct tn_addr listen;   /* ip + port */
  char *client_id;         /* primary client identity (certificate CN) */
  char **backups;          /* failover order after the primary */
  size_t n_backups;
  uint16_t backend_port;   /* nonzero: a port on the client's loopback ... */
  char *backend_service;   /* ... else a service name the client maps (exactly one is set) */
  uint8_t proxy_version;   /* 0 none, 1 or 2: PROXY protocol header version */
  char *glob;              /* ListenHostnameGlob in lower case; NULL for "*" (every name, or the port's fallback) */
};

struct td_table {
  struct td_tunnel *tunnels;
  size_t n;
};

/* Endpoints the server binds itself; a tunnel may not take them. */
#define TD_RESERVED_MAX 4
struct td_reserved {
  struct {
    struct tn_addr addr; /* ip + port */
    const char *what;    /* config key naming it, e.g. "ManagementPort" */
  } ports[TD_RESERVED_MAX];
  size_t n;
};

/* Size limits a PUT must respect (MaxTunnels, MaxBackupsPerTunnel in tunneld.json). */
struct td_table_limits {
  size_t max_tunnels;
  size_t max_backups;
};

/*
 * Status of tunnel `index` for GET output: the client taking new connections now
 * (NULL when none) and the number of open public connections. The string need only
 * live until the callback returns to td_table_to_json's next step (it is copied).
 */
typedef void (*td_table_status_fn)(void *ctx, size_t index, const char **active_client,
                                   uint64_t *open_connections);

void td_table_init(struct td_table *t);
void td_table_free(struct td_table *t);

/*
 * Validates a PUT /tunnels body (or a state file) and builds *out from it. On error
 * returns TN_ERR_INVALID with err naming index and field, e.g.
 * "tunnels[2].ListenPort: must be 1-65535, got 0", and leaves *out empty; more tunnels
 * than limits->max_tunnels is TN_ERR_TOO_LARGE (checked before anything is parsed).
 * Tunnels on one address and port must differ in ListenHostnameGlob; the same glob twice
 * there is TN_ERR_CONFLICT naming both (two "*" stay the TN_ERR_INVALID "duplicates" of
 * before hostname routing).
 * reserved and limits may be NULL (no limit). The read-only GET keys ActiveClient and
 * OpenConnections are accepted and ignored, so GET output can be PUT back verbatim.
 * O(n log n) in the number of tunnels and backups: a body of ApiMaxBody must not stall
 * the event loop.
 */
int td_table_from_json(const json_t *array, const struct td_reserved *reserved, const struct td_table_limits *limits,
                       struct td_table *out, char *err, size_t errlen);

/*
 * The table as a JSON array in PUT's shape with every default written out. With a
 * status_fn, each entry also carries ActiveClient and OpenConnections (GET /tunnels);
 * without, it is the state-file form. Returns a new reference, NULL on allocation failure.
 */
json_t *td_table_to_json(const struct td_table *t, td_table_status_fn status_fn, void *ctx);

/* True when both tunnels have the same listen address and port: the listener can be kept. */
int td_table_same_listener(const struct td_tunnel *a, const struct td_tunnel *b);

/* True when the tunnels are identical in every field (routing unchanged). */
int td_table_equal_tunnel(const struct td_tunnel *a, const struct td_tunnel *b);

/* Index of the tunnel listening on exactly listen (address and port), or -1. Linear: for one lookup. */
long td_table_find_listener(const struct td_table *t, const struct tn_addr *listen);

/* Total order on addresses (family, ip, port), for sorting and bsearch. */
int td_addr_cmp(const struct tn_addr *a, const struct tn_addr *b);

/*
 * The tunnels sorted by listener and then glob ("*" first), for many lookups in O(log n)
 * each: td_table_index_new returns t->n entries (free them), NULL on allocation failure or
 * for an empty table; the tunnels of one listener are one run of it. td_table_index_find
 * returns the index of a tunnel on exactly listen, or -1; td_table_index_find_glob the one
 * on listen with glob (NULL: "*"), or -1; td_table_index_run the position in the index of
 * the first entry on listen and, in *count, how many there are (-1 and 0 for none).
 */
struct td_listener_index {
  struct tn_addr addr;
  const char *glob;   /* the tunnel's, borrowed from the table */
  size_t idx;
};
struct td_listener_index *td_table_index_new(const struct td_table *t);
long td_table_index_find(const struct td_listener_index *index, size_t n, const struct tn_addr *listen);
long td_table_index_find_glob(const struct td_listener_index *index, size_t n, const struct tn_addr *listen,
                              const char *glob);
long td_table_index_run(const struct td_listener_index *index, size_t n, const struct tn_addr *listen, size_t *count);

/*
 * True when two endpoints cannot both be bound: same port and the same address, or one
 * is a wildcard that covers the other. 0.0.0.0 covers IPv4 (and v4-mapped IPv6)
 * addresses; :: is bound dual-stack and covers everything.
 */
int td_table_endpoints_conflict(const struct tn_addr *a, const struct tn_addr *b);

/* Compact JSON text of v, cut to TD_TABLE_GOT_MAX characters, for the "got ..." part of error messages
 * (the config loader's messages use it too). */
#define TD_TABLE_GOT_MAX 48
void td_table_describe_json(const json_t *v, char *out, size_t outlen);

/* Deep copy; TN_OK or TN_ERR_NOMEM (dst left empty). */
int td_table_copy(struct td_table *dst, const struct td_table *src);

#endif
