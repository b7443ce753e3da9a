/* registry.c: tunneld's client identities: who is connected over which link, replacements and the grace they get. */
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allow.h"
#include "server.h"
#include "tunnel/error.h"
#include "tunnel/log.h"

static size_t id_hash(const char *id)
{
  uint32_t h = 2166136261u;

  for (; *id; id++)
    h = (h ^ (uint8_t)*id) * 16777619u;
  return h;
}

struct td_client *td_registry_find(const struct td_server *srv, const char *id)
{
  struct td_client *c;

  if (srv->n_client_buckets == 0)
    return NULL;
  for (c = srv->client_buckets[id_hash(id) & (srv->n_client_buckets - 1)]; c != NULL; c = c->hash_next)
    if (strcmp(c->id, id) == 0)
      return c;
  return NULL;
}

/* Keeps the identity hash at most one client per bucket on average: a 4,096-tunnel table names 70,000 at most. */
static int clients_rehash(struct td_server *srv)
{
  size_t n = srv->n_client_buckets ? srv->n_client_buckets * 2 : 64;
  struct td_client **b = calloc(n, sizeof(*b));
  struct td_client *c;

  if (b == NULL)
    return -1;
  for (c = srv->clients; c != NULL; c = c->next) {
    size_t i = id_hash(c->id) & (n - 1);
    c->hash_next = b[i];
    b[i] = c;
  }
  free(srv->client_buckets);
  srv->client_buckets = b;
  srv->n_client_buckets = n;
  return 0;
}

struct td_client *td_registry_get(struct td_server *srv, const char *id)
{
  struct td_client *c = td_registry_find(srv, id);
  size_t i;

  if (c != NULL)
    return c;
  if (srv->n_clients >= srv->n_client_buckets && clients_rehash(srv) != 0)
    return NULL;
  c = calloc(1, sizeof(*c));
  if (c == NULL || (c->id = strdup(id)) == NULL) {
    free(c);
    return NULL;
  }
  c->next = srv->clients;
  srv->clients = c;
  i = id_hash(id) & (srv->n_client_buckets - 1);
  c->hash_next = srv->client_buckets[i];
  srv->client_buckets[i] = c;
  srv->n_clients++;
  return c;
}

static void client_unhash(struct td_server *srv, struct td_client *c)
{
  struct td_client **pp = &srv->client_buckets[id_hash(c->id) & (srv->n_client_buckets - 1)];

  while (*pp != c)
    pp = &(*pp)->hash_next;
  *pp = c->hash_next;
  srv->n_clients--;
}

static bool client_is_connected(const struct td_client *c)
{
  return c != NULL && c->link != NULL && tn_link_is_established(c->link);
}

/* A tunnel may pin one certificate by its fingerprint instead of naming a CN (a CN never has that form). */
static struct td_client *client_by_fingerprint(const struct td_server *srv, const char *sha256)
{
  struct td_client *c;

  for (c = srv->clients; c != NULL; c = c->next)
    if (client_is_connected(c) && strcmp(c->sha256, sha256) == 0)
      return c;
  return NULL;
}

const struct td_client *td_registry_next(const struct td_server *srv, const struct td_client *c)
{
  return c == NULL ? srv->clients : c->next;
}

void td_registry_totals(const struct td_server *srv, uint64_t *connected, uint64_t *streams)
{
  *connected = 0;
  *streams = 0;
  for (const struct td_client *c = srv->clients; c != NULL; c = c->next) {
    *connected += c->state == TD_CLIENT_CONNECTED;
    *streams += c->open_streams;
  }
}

struct td_client *const *td_registry_route(const struct td_server *srv, size_t index, size_t *n)
{
  *n = 0;
  if (index >= srv->table.n || srv->route_start == NULL)
    return NULL;
  *n = srv->route_start[index + 1] - srv->route_start[index];
  return srv->route + srv->route_start[index];
}

struct td_client *td_registry_active(const struct td_server *srv, size_t index)
{
  const struct td_tunnel *t;

  if (index >= srv->table.n || srv->route_start == NULL)
    return NULL;
  t = &srv->table.tunnels[index];
  for (size_t k = srv->route_start[index]; k < srv->route_start[index + 1]; k++) {
    size_t pos = k - srv->route_start[index];
    const char *id = pos == 0 ? t->client_id : t->backups[pos - 1];
    /* A pinned fingerprint has no entry in the route (its holder's CN is known only once it connects). */
    struct td_client *c = srv->route[k] != NULL ? srv->route[k]
                          : tn_tls_fingerprint_is_canonical(id) ? client_by_fingerprint(srv, id) : NULL;
    if (client_is_connected(c))
      return c;
  }
  return NULL;
}

/* Resolves every tunnel's clients to registry entries (listing never-seen ones), then drops unknown clients no
 * tunnel names any more. Nothing else points at such an entry: links and connections only refer to clients that
 * have connected. O(clients + table). */
void td_registry_resolve(struct td_server *srv, struct td_client **route, size_t *route_start)
{
  struct td_client **pp, *c;
  size_t k = 0;

  for (c = srv->clients; c != NULL; c = c->next)
    c->named = false;
  for (size_t i = 0; i < srv->table.n; i++) {
    const struct td_tunnel *t = &srv->table.tunnels[i];
    route_start[i] = k;
    /* NULL for a pinned fingerprint (resolved per connection) or when out of memory (that entry never routes). */
    route[k++] = tn_tls_fingerprint_is_canonical(t->client_id) ? NULL : td_registry_get(srv, t->client_id);
    for (size_t b = 0; b < t->n_backups; b++)
      route[k++] = tn_tls_fingerprint_is_canonical(t->backups[b]) ? NULL : td_registry_get(srv, t->backups[b]);
  }
  route_start[srv->table.n] = k;
  for (size_t r = 0; r < k; r++)
    if (route[r] != NULL)
      route[r]->named = true;
  pp = &srv->clients;
  while (*pp != NULL) {
    c = *pp;
    if (c->state == TD_CLIENT_UNKNOWN && c->link == NULL && c->open_streams == 0 && !c->named) {
      *pp = c->next;
      client_unhash(srv, c);
      free(c->id);
      td_allow_free(c->allow);
      free(c);
    } else {
      pp = &c->next;
    }
  }
}

void td_registry_free(struct td_server *srv)
{
  struct td_client *c, *next;

  for (c = srv->clients; c != NULL; c = next) {
    next = c->next;
    free(c->id);
    td_allow_free(c->allow);
    free(c);
  }
  srv->clients = NULL;
  free(srv->client_buckets);
  srv->client_buckets = NULL;
}

/* ---- a link per identity: replacement, refusal, grace ---- */

void td_registry_retire(struct td_link_ctx *ctx, uint64_t grace_ms)
{
  ctx->retiring = true;
  ctx->retire_deadline_ms = uv_now(ctx->srv->loop) + grace_ms;
  tn_link_go_away(ctx->link);  /* on_drained closes it once its streams have ended */
}

/* The link becomes its identity's current link; a current one (same certificate, or a vouched rotation) retires. */
static void admit(struct td_link_ctx *ctx, struct td_client *c)
{
  struct td_server *srv = ctx->srv;
  tn_link *link = ctx->link;
  const struct tn_tls_peer *peer = tn_link_peer(link);

  struct td_link_ctx *old = c->link != NULL ? tn_link_data(c->link) : NULL;

  ctx->client = c;
  if (old != NULL)
    tn_log_info("client %s: new link from %s replaces the one from %s; old link drains for up to %u ms", c->id,
                tn_link_peer_address(link), c->remote, srv->cfg.limits.replaced_link_grace_ms);
  c->link = link;
  if (old != NULL) {
    /* The newer link wins at once; the old one finishes what it carries, within a grace period. Retired after
     * the switch, so an old link that closes at once is seen as the old one. */
    srv->metrics.links_replaced++;
    td_registry_retire(old, srv->cfg.limits.replaced_link_grace_ms);
  }
  c->last_state = c->state;
  c->state = TD_CLIENT_CONNECTED;
  c->connected_since = time(NULL);
  c->links_accepted++;
  snprintf(c->remote, sizeof(c->remote), "%s", tn_link_peer_address(link));
  memcpy(c->sha256, peer->sha256_hex, sizeof(c->sha256));
  tn_log_info("client %s: connected from %s (certificate sha256 %s) over %s", c->id, c->remote, c->sha256,
              tn_tls_version(tn_link_tls(link)));
  td_allow_link_admitted(srv, c, &ctx->allow);
}

/* The identity's current link announced this very certificate as its successor (a rotation by its own client). */
static bool rotation_vouched(const struct td_client *c, const struct td_link_ctx *ctx)
{
  const struct td_link_ctx *cur = tn_link_data(c->link);

  return cur->rotate_to[0] != '\0' && strcmp(cur->rotate_to, tn_link_peer(ctx->link)->sha256_hex) == 0;
}

/*
 * Another certificate while the identity's current link is alive: refused outright. Alive means the current link
 * has not been closed, and only its own dead-peer timer (nothing a newcomer does) closes a silent one, so the
 * answer does not depend on how many newcomers come, how fast, or how busy the link is.
 */
static void refuse_in_use(struct td_link_ctx *ctx, struct td_client *c)
{
  struct td_server *srv = ctx->srv;
  const struct td_link_ctx *cur = tn_link_data(c->link);

  srv->metrics.links_refused_in_use++;
  /* Anyone holding a certificate of this CA can repeat this as fast as it can handshake: rate-limited per identity. */
  td_server_log_limited(srv, TN_LOG_WARN, "control: identity in use", c->id,
                        "client %s: refused the link from %s with certificate sha256 %s: the identity is connected "
                        "from %s with certificate sha256 %s, alive (last heard from %llu ms ago)",
                        c->id, tn_link_peer_address(ctx->link), tn_link_peer(ctx->link)->sha256_hex, c->remote,
                        c->sha256, (unsigned long long)tn_mux_silent_ms(tn_link_mux(cur->link), uv_now(srv->loop)));
  ctx->quiet_close = true;
  tn_link_close(ctx->link, "identity in use by a live link with another certificate");
}

void td_registry_link_up(struct td_link_ctx *ctx, struct td_client *c)
{
  if (c->link == NULL || strcmp(c->sha256, tn_link_peer(ctx->link)->sha256_hex) == 0) {
    admit(ctx, c);  /* free, or the same certificate back (a network change) */
  } else if (rotation_vouched(c, ctx)) {
    tn_log_info("client %s: certificate rotation: the link from %s (sha256 %s) takes over from the link from %s "
                "(sha256 %s), which announced it", c->id, tn_link_peer_address(ctx->link),
                tn_link_peer(ctx->link)->sha256_hex, c->remote, c->sha256);
    admit(ctx, c);
  } else {
    refuse_in_use(ctx, c);
  }
}

void td_registry_link_down(struct td_client *c)
{
  c->link = NULL;
  c->last_state = c->state;
  c->state = TD_CLIENT_DISCONNECTED;
}

void td_registry_sweep(struct td_server *srv, uint64_t now)
{
  struct td_link_ctx *ctx, *next;

  for (ctx = td_gate_next(srv, NULL); ctx != NULL; ctx = next) {
    next = td_gate_next(srv, ctx);
    if (ctx->retiring && now >= ctx->retire_deadline_ms)
      tn_link_close(ctx->link, srv->stopping ? "drain timeout; resetting its remaining streams"
                                             : "grace period over; resetting its remaining streams");
  }
}
