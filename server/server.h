/* server.h: tunneld's state as one struct, and its lifecycle: load, start, reload, revoke, stop. */
#ifndef TD_SERVER_H
#define TD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "apply.h"
#include "config.h"
#include "gate.h"
#include "listener.h"
#include "registry.h"
#include "revoked.h"
#include "sources.h"
#include "table.h"
#include "tunnel/link.h"
#include "tunnel/ratelog.h"
#include "tunnel/tls.h"

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
  tn_tls_config *tls;            /* the control port: offers ALPN TN_OPEN_ALPN_V2 */
  tn_tls_config *mgmt_tls;       /* the management port: the same files, no ALPN (curl offers h2 and http/1.1) */
  uv_tcp_t control;
  uv_tcp_t management;
  uv_timer_t sweep;              /* retiring links and draining listeners */
  bool stopping;
  void (*on_stopped)(struct td_server *srv);

  struct td_table table;
  struct td_revoked revoked;     /* PUT /revoked-certificates, persisted with the table */
  /* Resolved with the table at every apply, so routing a connection costs no lookups by name. */
  struct td_listener **listener_of;  /* [table.n]: the open listener of tunnel i */
  struct td_listener_index *table_ix; /* [table.n]: by listener then glob; a listener's tunnels are one run of it */
  struct td_client **route;          /* primary then backups of every tunnel, in table order */
  size_t *route_start;               /* [table.n + 1]: tunnel i's clients are route[route_start[i] ..] */
  struct td_listener *listeners;     /* listener.c's, reached through td_listener_* */
  struct td_client *clients;         /* registry.c's, reached through td_registry_* */
  struct td_client **client_buckets; /* by identity */
  size_t n_client_buckets;
  size_t n_clients;
  struct td_put *put;            /* the PUT /tunnels being applied (put.c), NULL when none */
  struct td_mgmt_conn *put_waiting; /* management connections whose change waits for it, oldest first */
  struct td_link_ctx *links;     /* gate.c's: every live link of both TLS ports, newest first */
  struct td_link_ctx *pending_oldest; /* handshakes in progress, both ports, oldest first */
  struct td_link_ctx *pending_newest;
  uint32_t pending_handshakes;
  struct td_sources sources;     /* per-source and per-identity counts of untrusted connections */
  tn_ratelog *ratelog;           /* repeated refusals: first line, then a count per interval */
  uint32_t mgmt_connections;
  uv_tcp_t metrics_tcp;          /* MetricsListen, when configured */
  bool metrics_listening;
  uint32_t metrics_connections;
  struct metrics_conn *metrics_conns; /* open MetricsListen scrapes (metrics.c) */
  uint64_t metrics_next_chunk_ms;      /* loop time before which no scrape renders another chunk (metrics.c) */
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
 * whose certificate the new ones would refuse is closed. A file that fails keeps the old ones and returns -1
 * with the reason in err.
 */
int td_server_reload(struct td_server *srv, char *err, size_t errlen);
/* SIGTERM: stop accepting, GoAway to clients, drain, then on_stopped. */
void td_server_stop(struct td_server *srv);
void td_server_free(struct td_server *srv);

/*
 * Replaces the revoked-certificate list (PUT /revoked-certificates): writes the state file,
 * swaps, then closes every control and management link presenting a listed certificate.
 * requester_sha256 (may be NULL) is the certificate making the request: a list naming it is
 * refused (TN_ERR_CONFLICT), so an admin cannot cut off the connection it is using. Returns 0, or
 * TN_ERR_CONFLICT / TN_ERR_IO with err set and nothing changed. Takes ownership of *r's contents on success.
 */
int td_server_apply_revoked(struct td_server *srv, struct td_revoked *r, const char *requester_sha256, char *err,
                            size_t errlen);

#endif
