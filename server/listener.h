/* listener.h: tunneld's public listeners and the conversations they carry to clients. */
#ifndef TD_LISTENER_H
#define TD_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sources.h"
#include "tunnel/addr.h"

struct td_server;
struct td_client;
struct td_conv;

/*
 * A public listener for the tunnels on one address and port: one tunnel with "*" takes every connection as it
 * comes; several, or one with a hostname glob, are chosen among by the name each connection asks for. Outlives
 * its tunnels while its connections drain.
 */
struct td_listener {
  uv_tcp_t tcp;
  struct td_server *srv;
  struct tn_addr addr;
  long tunnel_index;             /* into srv->table, -1 once removed: the first of its tunnels */
  size_t route_first;            /* its tunnels are srv->table_ix[route_first ..], "*" first when there is one */
  size_t n_routes;               /* 0 once removed */
  bool closed;                   /* handle closed (removed or shutdown) */
  bool handle_freed;
  uint64_t drain_deadline_ms;    /* removed: open connections are cut after this */
  uint32_t open_connections;
  uint64_t accepted;
  uint64_t refused;
  uint64_t unrouted;             /* hostname routing: no tunnel for the name asked (or none asked) and no "*" */
  uint64_t hostname_timeouts;    /* hostname routing: no name within HostnameTimeoutMs */
  uint64_t aborted;               /* accepted connections that ended abnormally (reset, failed, cut by a limit) */
  uint64_t hostname_unreadable;  /* hostname routing: refused, name not readable (malformed, too large, cut short) */
  uint64_t bytes_in;
  uint64_t bytes_out;
  struct td_conv *convs;         /* open conversations, for draining */
  struct td_sources counts;      /* open connections per source ("ip:" key) and routed per glob ("site:" key) */
  struct td_listener *next;
  struct td_listener *prev;       /* srv->listeners is doubly linked: thousands are removed at once */
};

/* Binds and listens on addr; "::" is dual-stack so a default tunnel takes IPv4 users too. 0 or a libuv error. */
int td_listener_listen(uv_tcp_t *tcp, const struct tn_addr *addr, uv_connection_cb cb);
/* A bound listener for addr, not yet listed (td_listener_add) and routing nothing; NULL with *rc a libuv error. */
struct td_listener *td_listener_new(struct td_server *srv, const struct tn_addr *addr, int *rc);
/* Closes and frees a listener from td_listener_new that was never listed. */
void td_listener_discard(struct td_listener *l);
void td_listener_add(struct td_server *srv, struct td_listener *l);
/* Every listener, open or draining: l NULL gives the first, NULL after the last. */
struct td_listener *td_listener_next(const struct td_server *srv, const struct td_listener *l);
/* The listener serving tunnel index, or NULL. */
struct td_listener *td_listener_for(const struct td_server *srv, size_t index);
/* Public connections open now for tunnel index (on a port shared by hostname, those routed to it). */
uint64_t td_listener_open_for(const struct td_server *srv, size_t index);

/* The open listeners sorted by address (*n of them); NULL with *n 0 when there are none, NULL with *n 1 on ENOMEM. */
struct td_listener **td_listener_index(const struct td_server *srv, size_t *n);
struct td_listener *td_listener_index_find(struct td_listener **ix, size_t n, const struct tn_addr *addr);

/* The listener takes no new connections (each is dropped at once) and its open ones may drain for drain_ms; false
 * if it was closed already. Its handle still has to be closed (td_listener_close_retired). */
bool td_listener_retire(struct td_listener *l, uint64_t drain_ms);
/* Closes a retired listener's handle, saying so in the log. */
void td_listener_close_retired(struct td_listener *l);
/* Every listener stops accepting; its open connections may finish within DrainTimeoutMs. */
void td_listener_close_all(struct td_server *srv);

/* The sweep: listeners past their drain deadline have their remaining connections reset. */
void td_listener_sweep(struct td_server *srv, uint64_t now);
/* Every drain deadline becomes now (a second stop signal). */
void td_listener_drain_now(struct td_server *srv, uint64_t now);
/* True while any listener still carries a connection. */
bool td_listener_busy(const struct td_server *srv);

/*
 * Bytes carried so far, including connections still open, by a listener or for a client.
 * in = from internet users towards the client, out = back to them.
 */
void td_listener_bytes(const struct td_listener *l, uint64_t *in, uint64_t *out);
void td_listener_client_bytes(const struct td_client *c, uint64_t *in, uint64_t *out);

#endif
