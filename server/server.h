/* server.h: tunneld's event-loop wiring: control port, client registry, public listeners, table swaps and shutdown. */
#ifndef TD_SERVER_H
#define TD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "config.h"
#include "revoked.h"
#include "sources.h"
#include "table.h"
#include "tunnel/link.h"
#include "tunnel/ratelog.h"
#include "tunnel/tls.h"

enum td_client_state {
  TD_CLIENT_UNKNOWN = 0,     /* named by a tunnel, never seen */
  TD_CLIENT_CONNECTED,
  TD_CLIENT_DISCONNECTED
};

struct td_allow;

/* One client identity (certificate CN) and the link that carries its new connections. */
struct td_client {
  char *id;
  tn_link *link;                 /* current established link, NULL when disconnected */
  enum td_client_state state;
  enum td_client_state last_state;
  char remote[TN_ADDR_STRLEN];
  time_t connected_since;
  char sha256[65];
  uint64_t bytes_in;             /* from the internet users, towards the client */
  uint64_t bytes_out;
  uint32_t open_streams;         /* conversations it carries now, on any of its links */
  uint64_t links_accepted;
  struct td_conv *convs;         /* conversations it carries now (for live byte counts) */
  bool named;                    /* scratch: named by the table being applied */
  struct td_allow *allow;        /* what its latest link announced it serves; NULL: unknown */
  struct td_client *next;
  struct td_client *hash_next;   /* srv->client_buckets */
};

/* A link's server-side context: which client it belongs to and whether it is being retired. */
struct td_link_ctx {
  struct td_server *srv;
  struct td_client *client;      /* NULL during the handshake */
  bool management;               /* a management-port connection (raw TLS) */
  bool handshake_done;
  bool retiring;                 /* replaced or shutting down: closes when drained or at deadline */
  uint64_t retire_deadline_ms;
  struct td_link_ctx *next;      /* srv->links */
  struct td_link_ctx *prev;
  tn_link *link;
  struct td_mgmt_conn *mgmt;     /* management connections only */
  struct td_allow *allow;        /* announced before the link became its client's current one */
  char rotate_to[65];            /* "": none; else the certificate (sha256 hex) this current link vouched for */
  /*
   * A link whose certificate differs from the one its identity is connected with waits here
   * while the current link is pinged: an answer refuses it, silence until the deadline lets it
   * replace the current one (see ARCHITECTURE.md, "Server state and its rules").
   */
  struct td_client *contest_client;
  tn_link *contest_link;         /* the current link that was pinged */
  uint64_t contest_started_ms;
  uint64_t contest_deadline_ms;
  bool quiet_close;              /* the reason was already logged */
  /* Until the handshake ends: in srv's pending list (oldest first) and counted for its source. */
  bool pending;
  enum td_count pending_kind;
  uint64_t pending_since;        /* loop time of the accept, for the per-source eviction grace */
  struct td_link_ctx *pending_next;
  struct td_link_ctx *pending_prev;
  char source[48];               /* the peer's source network, "192.0.2.7" or "2001:db8::/64" */
  char source_key[56];           /* "ip:" + source, the key in srv->sources */
};

struct td_conv;

/* A public listener for one tunnel. Outlives its tunnel while its connections drain. */
struct td_listener {
  uv_tcp_t tcp;
  struct td_server *srv;
  struct tn_addr addr;
  long tunnel_index;             /* into srv->table, -1 once removed */
  bool closed;                   /* handle closed (removed or shutdown) */
  bool handle_freed;
  uint64_t drain_deadline_ms;    /* removed: open connections are cut after this */
  uint32_t open_connections;
  uint64_t accepted;
  uint64_t refused;
  uint64_t bytes_in;
  uint64_t bytes_out;
  struct td_conv *convs;         /* open conversations, for draining */
  struct td_listener *next;
  struct td_listener *prev;       /* srv->listeners is doubly linked: thousands are removed at once */
};

struct td_metrics {
  uint64_t handshake_failures;
  uint64_t handshakes_refused_limit;
  uint64_t put_ok;
  uint64_t put_invalid;
  uint64_t put_conflict;
  uint64_t put_failed;
  uint64_t mgmt_forbidden;
  uint64_t links_replaced;
  uint64_t links_dead;
  uint64_t links_refused_in_use;  /* another certificate while the identity's link answered pings */
  uint64_t links_closed_revoked;  /* live links closed by a revocation (API list, CRL or CA reload) */
};

struct td_server {
  uv_loop_t *loop;
  struct td_config cfg;
  const char *config_path;
  tn_tls_config *tls;
  uv_tcp_t control;
  uv_tcp_t management;
  uv_timer_t sweep;              /* retiring links and draining listeners */
  bool stopping;
  void (*on_stopped)(struct td_server *srv);

  struct td_table table;
  struct td_revoked revoked;     /* PUT /revoked-certificates, persisted with the table */
  /* Resolved with the table at every apply, so routing a connection costs no lookups by name. */
  struct td_listener **listener_of;  /* [table.n]: the open listener of tunnel i */
  struct td_client **route;          /* primary then backups of every tunnel, in table order */
  size_t *route_start;               /* [table.n + 1]: tunnel i's clients are route[route_start[i] ..] */
  struct td_listener *listeners;
  struct td_client *clients;
  struct td_client **client_buckets; /* by identity */
  size_t n_client_buckets;
  size_t n_clients;
  struct td_put *put;            /* the PUT /tunnels being applied (put.c), NULL when none */
  struct td_mgmt_conn *put_waiting; /* management connections whose change waits for it, oldest first */
  const char *api_actor;         /* identity of the admin whose PUT is being applied (audit lines) */
  const char *api_peer;          /* and the address it came from */
  struct td_link_ctx *links;
  struct td_link_ctx *pending_oldest; /* handshakes in progress, both ports, oldest first */
  struct td_link_ctx *pending_newest;
  uint32_t pending_handshakes;
  struct td_sources sources;     /* per-source and per-identity counts of untrusted connections */
  tn_ratelog *ratelog;           /* repeated refusals: first line, then a count per interval */
  uint32_t mgmt_connections;
  uv_tcp_t metrics_tcp;          /* MetricsListen, when configured */
  bool metrics_listening;
  uint32_t metrics_connections;
  struct td_metrics metrics;
  int spare_fd;                  /* reserved descriptor, given up to shed connections on EMFILE */
  bool fd_exhausted;             /* the last descriptor probe failed */
};

/* Repeated refusals are logged once per kind and source, then counted every this many ms. */
#define TD_REFUSAL_LOG_INTERVAL_MS 10000u

/* Logs a refusal through srv->ratelog: kind names the event, source the peer network (or port, identity). */
#define td_server_log_limited(srv, level, kind, source, ...) \
  tn_ratelog_event((srv)->ratelog, uv_now((srv)->loop), TD_REFUSAL_LOG_INTERVAL_MS, level, kind, source, __VA_ARGS__)

/* Loads the config, certificates and the state file. Nothing is bound yet. */
int td_server_init(struct td_server *srv, uv_loop_t *loop, const char *config_path, char *err, size_t errlen);
/* Binds the control and management ports and the restored tunnels' listeners. */
int td_server_start(struct td_server *srv, char *err, size_t errlen);
/*
 * SIGHUP: reloads certificates, CA and CrlFile; new handshakes use them, and every live link
 * whose certificate the new ones would refuse is closed. A file that fails keeps the old ones.
 */
void td_server_reload(struct td_server *srv);
/* SIGTERM: stop accepting, GoAway to clients, drain, then on_stopped. */
void td_server_stop(struct td_server *srv);
/* Every public listener stops accepting; its open connections may finish within DrainTimeoutMs. */
void td_server_close_listeners(struct td_server *srv);
void td_server_free(struct td_server *srv);

/*
 * Replaces the tunnel table atomically: binds every new listener and writes the state
 * file first; on any failure nothing changes. Returns TN_OK, or with err set TN_ERR_CONFLICT
 * (a port that cannot be bound), TN_ERR_IO (the state file cannot be written) or TN_ERR_NOMEM.
 * Takes ownership of new_table's contents on success.
 */
int td_server_apply_table(struct td_server *srv, struct td_table *new_table, char *err, size_t errlen);
/* As td_server_apply_table for a PUT: also logs an audit line per tunnel added, removed or changed, naming actor. */
int td_server_apply_table_as(struct td_server *srv, struct td_table *new_table, const char *actor, const char *peer,
                             char *err, size_t errlen);

/*
 * The steps of td_server_apply_table, for an apply spread over several loop iterations (apply.c). begin takes
 * *new_table's contents (0) or leaves it untouched (TN_ERR_NOMEM, err set); bind binds the new listeners until deadline_ns
 * (uv_hrtime; 0: no deadline), *done once all are, TN_ERR_CONFLICT with err set when one cannot be; the caller persists
 * td_apply_table() and commits, or frees (closing what was bound: nothing changed). Nothing else may change
 * the table or the listeners between begin and commit.
 */
struct td_apply;
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
 * Replaces the revoked-certificate list (PUT /revoked-certificates): writes the state file,
 * swaps, then closes every control and management link presenting a listed certificate.
 * requester_sha256 (may be NULL) is the certificate making the request: a list naming it is
 * refused (TN_ERR_CONFLICT), so an admin cannot cut off the connection it is using. Returns 0, or
 * TN_ERR_CONFLICT / TN_ERR_IO with err set and nothing changed. Takes ownership of *r's contents on success.
 */
int td_server_apply_revoked(struct td_server *srv, struct td_revoked *r, const char *requester_sha256, char *err,
                            size_t errlen);

/* Client that takes tunnel index's new connections now, or NULL. */
struct td_client *td_server_active_client(const struct td_server *srv, size_t index);
struct td_client *td_server_find_client(const struct td_server *srv, const char *id);
/*
 * Bytes carried so far, including connections still open: for a client (listener NULL) or a
 * listener (client NULL). in = from internet users towards the client, out = back to them.
 */
void td_server_bytes(const struct td_server *srv, const struct td_client *client, const struct td_listener *listener,
                     uint64_t *in, uint64_t *out);
/* The listener serving tunnel index, or NULL. */
struct td_listener *td_server_listener_for(const struct td_server *srv, size_t index);

/* Management port (mgmt.c): a connection accepted on srv->management. */
void td_mgmt_accept(struct td_server *srv);
/* Closes the oldest connection still in its TLS handshake (management ones only if asked); false if none. */
bool td_server_evict_handshake(struct td_server *srv, bool management_only);
/*
 * A just-accepted link starts its handshake: counted globally and for its source, listed as pending.
 * Past MaxPendingHandshakesPerSource on this port, one of that source's handshakes is closed (see
 * server.c for which): one address can hold only so many, and never starve other sources.
 */
void td_server_pending_add(struct td_server *srv, struct td_link_ctx *ctx, enum td_count kind);
/* The handshake ended (established or closed): uncounted and unlisted. Idempotent. */
void td_server_pending_done(struct td_server *srv, struct td_link_ctx *ctx);
/* Accepts the next connection from a listener and resets it at once (refused by a limit). */
void td_server_drop_connection(uv_stream_t *listener);
/* Unlists and frees a link context whose link has closed. */
void td_server_forget_link(struct td_link_ctx *ctx);

#endif
