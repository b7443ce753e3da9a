/* apply.c: the tunnel-table swap: bind what the new table adds, then switch routing to it in one step. */
#include "apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allow.h"
#include "listener.h"
#include "registry.h"
#include "server.h"
#include "state.h"
#include "tunnel/error.h"
#include "tunnel/log.h"

static void describe_tunnel(const struct td_tunnel *t, char *out, size_t outlen)
{
  size_t n = (size_t)snprintf(out, outlen, "client %s, backups [", t->client_id);

  for (size_t b = 0; b < t->n_backups && n < outlen; b++)
    n += (size_t)snprintf(out + n, outlen - n, "%s%s", b ? ", " : "", t->backups[b]);
  if (n < outlen && t->backend_service != NULL)
    n += (size_t)snprintf(out + n, outlen - n, "], backend service %s", t->backend_service);
  else if (n < outlen)
    n += (size_t)snprintf(out + n, outlen - n, "], backend port %u", (unsigned)t->backend_port);
  if (n < outlen)
    n += (size_t)snprintf(out + n, outlen - n, t->proxy_version ? ", PROXY v%u" : ", no PROXY header",
                          (unsigned)t->proxy_version);
  if (n < outlen && t->glob != NULL)
    snprintf(out + n, outlen - n, ", hostnames %s", t->glob);
}

/*
 * One line per tunnel added, removed or changed by a PUT, with who made it: the table is the server's
 * routing of other people's traffic, and "PUT /tunnels -> 200" alone does not say what moved where.
 */
static void audit_changes(const struct td_table *old, const struct td_table *nt, const struct td_listener_index *old_ix,
                          const struct td_listener_index *new_ix, const char *actor, const char *peer)
{
  char addr[TN_ADDR_STRLEN], was[700], now[700];
  size_t added = 0, changed = 0, removed = 0;

  for (size_t i = 0; i < nt->n; i++) {
    long j = td_table_index_find_glob(old_ix, old->n, &nt->tunnels[i].listen, nt->tunnels[i].glob);
    if (j >= 0 && td_table_equal_tunnel(&old->tunnels[j], &nt->tunnels[i]))
      continue;
    tn_addr_format(&nt->tunnels[i].listen, addr, sizeof(addr));
    describe_tunnel(&nt->tunnels[i], now, sizeof(now));
    if (j < 0) {
      added++;
      tn_log_info("audit: admin \"%s\" (%s): tunnel %s added: %s", actor, peer, addr, now);
    } else {
      changed++;
      describe_tunnel(&old->tunnels[j], was, sizeof(was));
      tn_log_info("audit: admin \"%s\" (%s): tunnel %s changed: %s (was %s)", actor, peer, addr, now, was);
    }
  }
  for (size_t k = 0; k < old->n; k++) {
    if (td_table_index_find_glob(new_ix, nt->n, &old->tunnels[k].listen, old->tunnels[k].glob) >= 0)
      continue;
    removed++;
    describe_tunnel(&old->tunnels[k], was, sizeof(was));
    tn_log_info("audit: admin \"%s\" (%s): tunnel %s removed (was %s)", actor, peer,
                tn_addr_format(&old->tunnels[k].listen, addr, sizeof(addr)), was);
  }
  tn_log_info("audit: admin \"%s\" (%s): PUT /tunnels applied: %zu added, %zu changed, %zu removed, %zu unchanged",
              actor, peer, added, changed, removed, nt->n - added - changed);
}

/*
 * A table change in steps: td_apply_begin sizes it, td_apply_bind binds new listeners (in slices when a
 * deadline is given), the state file is written, td_apply_commit swaps. Every lookup goes through a sorted
 * index: O((n + L) log(n + L)) for n tunnels and L listeners.
 */
struct td_apply {
  struct td_table nt;                /* the table being applied, owned */
  struct td_listener **fresh;        /* [nt.n]: listeners bound for it, NULL where one is kept */
  struct td_listener **listener_of;  /* [nt.n]: becomes srv->listener_of */
  size_t *route_start;               /* becomes srv->route_start */
  struct td_client **route;          /* becomes srv->route */
  struct td_listener **open_ix;      /* the listeners open at the start, sorted */
  size_t n_open;
  struct td_listener_index *new_ix, *old_ix;
  size_t next_bind;                  /* tunnels [0, next_bind) are bound or kept */
  struct td_listener **retired;      /* [n_open]: removed by the commit, their handles closed by td_apply_close */
  size_t n_retired, next_close;
};

void td_apply_close(struct td_server *srv, struct td_apply *a, uint64_t deadline_ns, bool *done)
{
  for (; a->next_close < a->n_retired; a->next_close++) {
    if (deadline_ns != 0 && (a->next_close & 63) == 0 && a->next_close > 0 && uv_hrtime() >= deadline_ns) {
      *done = false;
      return;
    }
    td_listener_close_retired(a->retired[a->next_close]);
  }
  *done = true;
}

void td_apply_free(struct td_server *srv, struct td_apply *a)
{
  bool done;

  if (a == NULL)
    return;
  td_apply_close(srv, a, 0, &done);
  free(a->retired);
  for (size_t i = 0; a->fresh != NULL && i < a->nt.n; i++)
    if (a->fresh[i] != NULL)
      td_listener_discard(a->fresh[i]);
  free(a->fresh);
  free(a->listener_of);
  free(a->route);
  free(a->route_start);
  free(a->open_ix);
  free(a->new_ix);
  free(a->old_ix);
  td_table_free(&a->nt);
  free(a);
}

int td_apply_begin(struct td_server *srv, struct td_table *nt, struct td_apply **out, char *err, size_t errlen)
{
  struct td_apply *a = calloc(1, sizeof(*a));
  size_t n_route = 0;

  *out = NULL;
  if (a == NULL) {
    snprintf(err, errlen, "out of memory");
    return TN_ERR_NOMEM;
  }
  a->nt = *nt;
  td_table_init(nt);
  for (size_t i = 0; i < a->nt.n; i++)
    n_route += 1 + a->nt.tunnels[i].n_backups;
  a->fresh = calloc(a->nt.n ? a->nt.n : 1, sizeof(*a->fresh));
  a->listener_of = calloc(a->nt.n ? a->nt.n : 1, sizeof(*a->listener_of));
  a->route_start = calloc(a->nt.n + 1, sizeof(*a->route_start));
  a->route = calloc(n_route ? n_route : 1, sizeof(*a->route));
  a->open_ix = td_listener_index(srv, &a->n_open);
  a->retired = calloc(a->n_open ? a->n_open : 1, sizeof(*a->retired));
  a->new_ix = td_table_index_new(&a->nt);
  a->old_ix = td_table_index_new(&srv->table);
  if (a->fresh == NULL || a->listener_of == NULL || a->route_start == NULL || a->route == NULL || a->retired == NULL ||
      (a->open_ix == NULL && a->n_open > 0) || (a->new_ix == NULL && a->nt.n > 0) ||
      (a->old_ix == NULL && srv->table.n > 0)) {
    *nt = a->nt;  /* untouched for the caller, as on every failure */
    td_table_init(&a->nt);
    td_apply_free(srv, a);
    snprintf(err, errlen, "out of memory");
    return TN_ERR_NOMEM;
  }
  *out = a;
  return 0;
}

/* The message of the conflict for tunnel i, whose address could not be bound (rc). */
static void bind_error(struct td_server *srv, const struct td_tunnel *t, size_t i, int rc, char *err, size_t errlen)
{
  const struct td_listener *own = NULL, *l;
  char addr[TN_ADDR_STRLEN], own_addr[TN_ADDR_STRLEN];

  for (l = td_listener_next(srv, NULL); l != NULL && rc == UV_EADDRINUSE; l = td_listener_next(srv, l))
    if (!l->closed && td_table_endpoints_conflict(&l->addr, &t->listen)) {
      own = l;
      break;
    }
  /* "address in use" by tunneld itself needs another remedy than a foreign process would. */
  if (own != NULL)
    snprintf(err, errlen,
             "tunnels[%zu]: cannot listen on %s: tunneld's current listener %s holds that port until the new "
             "table is in force; remove that tunnel with one PUT, then add this one with another",
             i, tn_addr_format(&t->listen, addr, sizeof(addr)), tn_addr_format(&own->addr, own_addr, sizeof(own_addr)));
  else
    snprintf(err, errlen, "tunnels[%zu]: cannot listen on %s: %s", i, tn_addr_format(&t->listen, addr, sizeof(addr)),
             uv_strerror(rc));
}

int td_apply_bind(struct td_server *srv, struct td_apply *a, uint64_t deadline_ns, bool *done, char *err, size_t errlen)
{
  int rc;

  *done = false;
  for (; a->next_bind < a->nt.n; a->next_bind++) {
    size_t i = a->next_bind, count;
    long first;
    if (deadline_ns != 0 && (i & 63) == 0 && i > 0 && uv_hrtime() >= deadline_ns)
      return 0;
    if (td_listener_index_find(a->open_ix, a->n_open, &a->nt.tunnels[i].listen) != NULL)
      continue;
    /* Tunnels sharing an address share its listener, bound for the first of them in the index. */
    first = td_table_index_run(a->new_ix, a->nt.n, &a->nt.tunnels[i].listen, &count);
    if (first >= 0 && a->new_ix[first].idx != i)
      continue;
    a->fresh[i] = td_listener_new(srv, &a->nt.tunnels[i].listen, &rc);
    if (a->fresh[i] == NULL) {
      bind_error(srv, &a->nt.tunnels[i], i, rc, err, errlen);
      return TN_ERR_CONFLICT;
    }
  }
  *done = true;
  return 0;
}

const struct td_table *td_apply_table(const struct td_apply *a)
{
  return &a->nt;
}

/* l serves the tunnels of a->new_ix[first .. first + count). */
static void route_listener(struct td_apply *a, struct td_listener *l, size_t first, size_t count)
{
  l->tunnel_index = (long)a->new_ix[first].idx;
  l->route_first = first;
  l->n_routes = count;
  for (size_t k = first; k < first + count; k++)
    a->listener_of[a->new_ix[k].idx] = l;
}

void td_apply_commit(struct td_server *srv, struct td_apply *a, const char *actor, const char *peer)
{
  struct td_table *nt = &a->nt;
  struct td_listener *l;
  char addr[TN_ADDR_STRLEN];

  if (actor != NULL)
    audit_changes(&srv->table, nt, a->old_ix, a->new_ix, actor, peer != NULL ? peer : "-");
  /* Keep listeners whose address stays, close the ones that go, route the new. */
  for (l = td_listener_next(srv, NULL); l != NULL; l = td_listener_next(srv, l)) {
    size_t count;
    long first;
    if (l->closed)
      continue;
    first = td_table_index_run(a->new_ix, nt->n, &l->addr, &count);
    if (first < 0) {
      if (td_listener_retire(l, srv->cfg.limits.common.drain_timeout_ms))
        a->retired[a->n_retired++] = l;
    } else {
      size_t j = a->new_ix[first].idx;
      /* A kept listener whose routing changes gets a line, so a move shows in the log. */
      if (count == 1 && l->n_routes == 1 && l->tunnel_index >= 0 &&
          strcmp(srv->table.tunnels[l->tunnel_index].client_id, nt->tunnels[j].client_id) != 0)
        tn_log_info("tunnel port %u: new connections go to client %s (was %s); %u open connections stay where they are",
                    (unsigned)l->addr.port, nt->tunnels[j].client_id, srv->table.tunnels[l->tunnel_index].client_id,
                    l->open_connections);
      route_listener(a, l, (size_t)first, count);
    }
  }
  for (size_t i = 0; i < nt->n; i++) {
    size_t count;
    long first;
    if (a->fresh[i] == NULL)
      continue;
    first = td_table_index_run(a->new_ix, nt->n, &nt->tunnels[i].listen, &count);
    route_listener(a, a->fresh[i], (size_t)first, count);
    td_listener_add(srv, a->fresh[i]);
    a->fresh[i] = NULL;
    if (count == 1)
      tn_log_info("tunnel port %u: listening on %s for client %s", (unsigned)nt->tunnels[i].listen.port,
                  tn_addr_format(&nt->tunnels[i].listen, addr, sizeof(addr)), nt->tunnels[i].client_id);
    else
      tn_log_info("tunnel port %u: listening on %s for %zu tunnels by hostname", (unsigned)nt->tunnels[i].listen.port,
                  tn_addr_format(&nt->tunnels[i].listen, addr, sizeof(addr)), count);
  }
  td_table_free(&srv->table);
  srv->table = *nt;
  td_table_init(nt);
  free(srv->listener_of);
  free(srv->table_ix);
  free(srv->route);
  free(srv->route_start);
  srv->listener_of = a->listener_of;
  srv->table_ix = a->new_ix;  /* its globs are the table's, which srv now owns */
  a->new_ix = NULL;
  srv->route = a->route;
  srv->route_start = a->route_start;
  a->listener_of = NULL;
  a->route = NULL;
  a->route_start = NULL;
  /* Every client a tunnel names by CN, backups included, is listed (ClientUnknown until it is seen); GET /clients
   * is keyed by CN, so a fingerprint-pinned tunnel lists nothing until its certificate connects under its CN. */
  td_registry_resolve(srv, srv->route, srv->route_start);
  td_allow_log_table(srv);
}

int td_apply_now(struct td_server *srv, struct td_table *nt, char *err, size_t errlen)
{
  struct td_apply *a;
  bool done;
  int rc = td_apply_begin(srv, nt, &a, err, errlen);

  if (rc != 0)
    return rc;
  rc = td_apply_bind(srv, a, 0, &done, err, errlen);
  /* Persist before the swap: a table that cannot be restored after a restart is not applied. */
  if (rc == 0 && td_state_save(srv->cfg.state_file, &a->nt, &srv->revoked, err, errlen) != TN_OK)
    rc = TN_ERR_IO;
  if (rc == 0)
    td_apply_commit(srv, a, NULL, NULL);
  else {
    *nt = a->nt;  /* nothing changed: the caller keeps its table */
    td_table_init(&a->nt);
  }
  td_apply_free(srv, a);
  return rc;
}
