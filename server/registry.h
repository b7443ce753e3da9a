/* registry.h: tunneld's client identities: who is connected over which link, replacements and the grace they get. */
#ifndef TD_REGISTRY_H
#define TD_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tunnel/addr.h"
#include "tunnel/link.h"

struct td_server;
struct td_link_ctx;
struct td_allow;
struct td_conv;

enum td_client_state {
  TD_CLIENT_UNKNOWN = 0,     /* named by a tunnel, never seen */
  TD_CLIENT_CONNECTED,
  TD_CLIENT_DISCONNECTED
};

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

struct td_client *td_registry_find(const struct td_server *srv, const char *id);
/* The entry for id, created (ClientUnknown) if there is none; NULL when out of memory. */
struct td_client *td_registry_get(struct td_server *srv, const char *id);
/* Every client, in no particular order: c NULL gives the first, NULL after the last. */
const struct td_client *td_registry_next(const struct td_server *srv, const struct td_client *c);
/* Clients with an established link, and the conversations all clients carry now. */
void td_registry_totals(const struct td_server *srv, uint64_t *connected, uint64_t *streams);
/* Tunnel index's clients as resolved at the last apply, primary first (*n of them; an entry is NULL for a pinned
 * fingerprint, resolved per connection); NULL with *n 0 for no such tunnel. */
struct td_client *const *td_registry_route(const struct td_server *srv, size_t index, size_t *n);
/* Client that takes tunnel index's new connections now, or NULL. */
struct td_client *td_registry_active(const struct td_server *srv, size_t index);
/*
 * Resolves every tunnel of srv->table to registry entries into route/route_start (see struct td_server), listing
 * never-seen clients, then drops the unknown clients no tunnel names any more.
 */
void td_registry_resolve(struct td_server *srv, struct td_client **route, size_t *route_start);
void td_registry_free(struct td_server *srv);

/*
 * A control link has completed its handshake as identity c: it becomes c's current link (c is free, the same
 * certificate is back, or c's current link announced this certificate as its rotation), or it is refused and
 * closed (another certificate while c's current link is alive). See ARCHITECTURE.md, "Server state and its rules".
 */
void td_registry_link_up(struct td_link_ctx *ctx, struct td_client *c);
/* c's current link stopped carrying new connections (closed, going away): c is disconnected. */
void td_registry_link_down(struct td_client *c);
/* The link stops taking new streams; on_drained or the sweep (after grace_ms) closes it. */
void td_registry_retire(struct td_link_ctx *ctx, uint64_t grace_ms);
/* The sweep: retired links past their deadline are closed. */
void td_registry_sweep(struct td_server *srv, uint64_t now);

#endif
