/* listener.c: tunneld's public listeners and the conversations they carry to clients. */
#include "listener.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gate.h"
#include "registry.h"
#include "server.h"
#include "tunnel/log.h"
#include "tunnel/open.h"
#include "tunnel/pipe.h"

/* A public connection: which listener and client it counts against. */
struct td_conv {
  struct td_listener *listener;
  struct td_client *client;
  tn_pipe *pipe;
  char peer[TN_ADDR_STRLEN];
  struct td_conv *next;          /* listener->convs */
  struct td_conv *prev;
  struct td_conv *cnext;         /* client->convs */
  struct td_conv *cprev;
};

/* Public ports: a burst of users connecting at once waits in the kernel rather than being refused. */
#define TD_PUBLIC_BACKLOG 1024
#define TD_REFUSAL_WHY_MAX 320

static void listener_release(struct td_listener *l);

/* ---- public listeners ---- */

static void conv_on_close(tn_pipe *p, const struct tn_pipe_result *r)
{
  struct td_conv *v = tn_pipe_data(p);
  struct td_listener *l = v->listener;

  l->open_connections--;
  l->bytes_in += r->bytes_to_stream;
  l->bytes_out += r->bytes_to_socket;
  if (v->client != NULL) {
    v->client->open_streams--;
    v->client->bytes_in += r->bytes_to_stream;
    v->client->bytes_out += r->bytes_to_socket;
    if (v->cprev != NULL)
      v->cprev->cnext = v->cnext;
    else
      v->client->convs = v->cnext;
    if (v->cnext != NULL)
      v->cnext->cprev = v->cprev;
  }
  if (r->normal)
    tn_log_debug("tunnel port %u: %s via client %s closed (%llu bytes in, %llu out)", (unsigned)l->addr.port, v->peer,
                 v->client ? v->client->id : "-", (unsigned long long)r->bytes_to_stream,
                 (unsigned long long)r->bytes_to_socket);
  else
    tn_log_info("tunnel port %u: %s via client %s ended: %s", (unsigned)l->addr.port, v->peer,
                v->client ? v->client->id : "-", r->reason);
  if (v->prev != NULL)
    v->prev->next = v->next;
  else
    l->convs = v->next;
  if (v->next != NULL)
    v->next->prev = v->prev;
  free(v);
  listener_release(l);
}

static const struct tn_pipe_callbacks conv_callbacks = { .on_close = conv_on_close };

static void refuse_logged(struct td_listener *l, const char *why)
{
  char port[8];

  l->refused++;
  snprintf(port, sizeof(port), "%u", (unsigned)l->addr.port);
  td_server_log_limited(l->srv, TN_LOG_WARN, "tunnel port refusals", port, "tunnel port %u: refused 1 connection(s): %s",
                        (unsigned)l->addr.port, why);
}

/* The accepted connection is counted against its listener and client, and its stream opens with the tunnel's
 * open header. */
static void conv_open(struct td_conv *v, struct td_listener *l, struct td_client *c, const struct td_tunnel *t,
                      tn_pipe *p)
{
  struct tn_open hdr;

  v->listener = l;
  v->client = c;
  v->pipe = p;
  v->next = l->convs;
  if (l->convs != NULL)
    l->convs->prev = v;
  l->convs = v;
  v->cnext = c->convs;
  if (c->convs != NULL)
    c->convs->cprev = v;
  c->convs = v;
  l->open_connections++;
  l->accepted++;
  c->open_streams++;

  memset(&hdr, 0, sizeof(hdr));
  tn_pipe_addresses(p, &hdr.peer, &hdr.listener);
  tn_addr_format(&hdr.peer, v->peer, sizeof(v->peer));
  hdr.proxy_version = t->proxy_version;
  if (t->backend_service != NULL) {
    hdr.backend_kind = TN_OPEN_BACKEND_SERVICE;
    snprintf(hdr.service, sizeof(hdr.service), "%s", t->backend_service);
  } else {
    hdr.backend_kind = TN_OPEN_BACKEND_PORT;
    hdr.backend_port = t->backend_port;
  }
  tn_log_debug("tunnel port %u: %s -> client %s", (unsigned)l->addr.port, v->peer, c->id);
  tn_pipe_start(p, c->link, &hdr);  /* on failure it has already closed through conv_on_close */
}

static void on_public_connection(uv_stream_t *server, int status)
{
  struct td_listener *l = server->data;
  struct td_server *srv = l->srv;
  const struct td_tunnel *t;
  struct td_client *c;
  struct td_conv *v;
  struct tn_pipe_options pipe_opt;
  tn_pipe *p;

  if (status < 0) {
    if (!td_gate_shed_on_emfile(srv, server, status))
      tn_log_warn("tunnel port %u: accept failed: %s", (unsigned)l->addr.port, uv_strerror(status));
    return;
  }
  if (l->closed || l->tunnel_index < 0) {
    td_gate_drop(server);
    return;
  }
  t = &srv->table.tunnels[l->tunnel_index];
  if (t->glob != NULL) {
    /* Choosing by the name a connection asks for is not built yet: only a port's "*" tunnel takes connections. */
    td_gate_drop(server);
    refuse_logged(l, "no \"*\" tunnel on this port");
    return;
  }
  c = td_registry_active(srv, (size_t)l->tunnel_index);
  if (c == NULL) {
    char why[TD_REFUSAL_WHY_MAX];
    td_gate_drop(server);
    /* Name the clients: the operator's next step is finding out why that one is not connected. */
    snprintf(why, sizeof(why), "none of its clients is connected (%.255s%s)", t->client_id,
             t->n_backups > 0 ? " and its backups" : "");
    refuse_logged(l, why);
    return;
  }
  if (l->open_connections >= srv->cfg.limits.max_connections_per_tunnel) {
    td_gate_drop(server);
    refuse_logged(l, "MaxConnectionsPerTunnel reached");
    return;
  }
  if (c->open_streams >= srv->cfg.limits.max_connections_per_client) {
    td_gate_drop(server);
    refuse_logged(l, "MaxConnectionsPerClient reached");
    return;
  }
  v = calloc(1, sizeof(*v));
  if (v == NULL) {
    td_gate_drop(server);
    return;
  }
  tn_limits_pipe_options(&srv->cfg.limits.common, &pipe_opt);
  if (tn_pipe_accept(&p, server, &pipe_opt, &conv_callbacks, v) != 0) {
    free(v);
    return;
  }
  conv_open(v, l, c, t, p);
}

static void on_listener_closed(uv_handle_t *h)
{
  struct td_listener *l = h->data;

  l->handle_freed = true;
  listener_release(l);
}

/* Frees a removed listener once its handle is closed and its last connection ended. */
static void listener_release(struct td_listener *l)
{
  struct td_server *srv = l->srv;

  if (!l->closed || !l->handle_freed || l->open_connections > 0)
    return;
  if (l->prev != NULL)
    l->prev->next = l->next;
  else
    srv->listeners = l->next;
  if (l->next != NULL)
    l->next->prev = l->prev;
  free(l);
}

/* The listener takes no new connections (each is dropped at once) and its open ones may drain; false if it was
 * closed already. Its handle still has to be closed (listener_close). */
bool td_listener_retire(struct td_listener *l, uint64_t drain_ms)
{
  if (l->closed)
    return false;
  for (size_t k = l->route_first; k < l->route_first + l->n_routes && l->srv->listener_of != NULL; k++)
    if (l->srv->table_ix != NULL && k < l->srv->table.n)
      l->srv->listener_of[l->srv->table_ix[k].idx] = NULL;
  l->closed = true;
  l->tunnel_index = -1;
  l->n_routes = 0;
  l->drain_deadline_ms = uv_now(l->srv->loop) + drain_ms;
  return true;
}

static void listener_close(struct td_listener *l, uint64_t drain_ms)
{
  if (td_listener_retire(l, drain_ms))
    uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}

static int addr_to_sockaddr(const struct tn_addr *a, struct sockaddr_storage *ss)
{
  memset(ss, 0, sizeof(*ss));
  if (a->family == TN_AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(a->port);
    memcpy(&in->sin_addr, a->ip, 4);
    return 0;
  }
  if (a->family == TN_AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(a->port);
    memcpy(&in6->sin6_addr, a->ip, 16);
    return 0;
  }
  return UV_EINVAL;
}

int td_listener_listen(uv_tcp_t *tcp, const struct tn_addr *addr, uv_connection_cb cb)
{
  struct sockaddr_storage ss;
  int rc;

  rc = addr_to_sockaddr(addr, &ss);
  if (rc == 0)
    rc = uv_tcp_bind(tcp, (const struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)tcp, TD_PUBLIC_BACKLOG, cb);
  return rc;
}

/* Close callback of a listener that was never listed (its handle's data is the listener). */
static void on_unlisted_listener_closed(uv_handle_t *h)
{
  free(h->data);
}

struct td_listener *td_listener_new(struct td_server *srv, const struct tn_addr *addr, int *rc)
{
  struct td_listener *l = calloc(1, sizeof(*l));

  if (l == NULL) {
    *rc = UV_ENOMEM;
    return NULL;
  }
  l->srv = srv;
  l->addr = *addr;
  l->tunnel_index = -1;
  uv_tcp_init(srv->loop, &l->tcp);
  l->tcp.data = l;
  *rc = td_listener_listen(&l->tcp, addr, on_public_connection);
  if (*rc != 0) {
    /* Never listed: close and free without the drain machinery. */
    uv_close((uv_handle_t *)&l->tcp, on_unlisted_listener_closed);
    return NULL;
  }
  return l;
}

static int cmp_listener_ptr(const void *pa, const void *pb)
{
  const struct td_listener *a = *(struct td_listener *const *)pa, *b = *(struct td_listener *const *)pb;

  return td_addr_cmp(&a->addr, &b->addr);
}

struct td_listener **td_listener_index(const struct td_server *srv, size_t *n)
{
  struct td_listener **ix, *l;
  size_t k = 0;

  *n = 0;
  for (l = srv->listeners; l != NULL; l = l->next)
    k += !l->closed;
  if (k == 0)
    return NULL;
  ix = calloc(k, sizeof(*ix));
  if (ix == NULL) {
    *n = 1;
    return NULL;
  }
  for (l = srv->listeners, k = 0; l != NULL; l = l->next)
    if (!l->closed)
      ix[k++] = l;
  qsort(ix, k, sizeof(*ix), cmp_listener_ptr);
  *n = k;
  return ix;
}

struct td_listener *td_listener_index_find(struct td_listener **ix, size_t n, const struct tn_addr *addr)
{
  size_t lo = 0, hi = ix != NULL ? n : 0;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = td_addr_cmp(&ix[mid]->addr, addr);
    if (c == 0)
      return ix[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* ---- the list, and what the rest of tunneld asks of it ---- */

void td_listener_discard(struct td_listener *l)
{
  uv_close((uv_handle_t *)&l->tcp, on_unlisted_listener_closed);
}

void td_listener_add(struct td_server *srv, struct td_listener *l)
{
  l->next = srv->listeners;
  l->prev = NULL;
  if (srv->listeners != NULL)
    srv->listeners->prev = l;
  srv->listeners = l;
}

struct td_listener *td_listener_next(const struct td_server *srv, const struct td_listener *l)
{
  return l == NULL ? srv->listeners : l->next;
}

struct td_listener *td_listener_for(const struct td_server *srv, size_t index)
{
  return index < srv->table.n && srv->listener_of != NULL ? srv->listener_of[index] : NULL;
}

/* Closed after the swap, one by one, so thousands of them do not stall one iteration. */
void td_listener_close_retired(struct td_listener *l)
{
  tn_log_info("tunnel port %u: removed; %u open connections may finish within %u ms", (unsigned)l->addr.port,
              l->open_connections, l->srv->cfg.limits.common.drain_timeout_ms);
  uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}

void td_listener_close_all(struct td_server *srv)
{
  for (struct td_listener *l = srv->listeners; l != NULL; l = l->next)
    if (!l->closed)
      listener_close(l, srv->cfg.limits.common.drain_timeout_ms);
}

void td_listener_sweep(struct td_server *srv, uint64_t now)
{
  struct td_listener *l, *lnext;

  for (l = srv->listeners; l != NULL; l = lnext) {
    lnext = l->next;
    if (l->closed && l->open_connections > 0 && now >= l->drain_deadline_ms) {
      tn_log_info("tunnel port %u: drain timeout; closing %u connections", (unsigned)l->addr.port,
                  l->open_connections);
      while (l->convs != NULL && l->open_connections > 0) {
        struct td_conv *v = l->convs;
        if (l->open_connections == 1) {
          tn_pipe_abort(v->pipe, "drain timeout");  /* may free l */
          break;
        }
        tn_pipe_abort(v->pipe, "drain timeout");
      }
    }
  }
}

void td_listener_drain_now(struct td_server *srv, uint64_t now)
{
  for (struct td_listener *l = srv->listeners; l != NULL; l = l->next)
    l->drain_deadline_ms = now;
}

bool td_listener_busy(const struct td_server *srv)
{
  for (const struct td_listener *l = srv->listeners; l != NULL; l = l->next)
    if (l->open_connections > 0)
      return true;
  return false;
}

/* Closed conversations are counted in the totals; open ones are asked for what they carried so far. */
static void add_conv_bytes(const struct td_conv *v, bool by_client, uint64_t *in, uint64_t *out)
{
  for (; v != NULL; v = by_client ? v->cnext : v->next) {
    uint64_t to_stream, to_socket;
    tn_pipe_get_bytes(v->pipe, &to_stream, &to_socket);
    *in += to_stream;
    *out += to_socket;
  }
}

void td_listener_bytes(const struct td_listener *l, uint64_t *in, uint64_t *out)
{
  *in = l->bytes_in;
  *out = l->bytes_out;
  add_conv_bytes(l->convs, false, in, out);
}

void td_listener_client_bytes(const struct td_client *c, uint64_t *in, uint64_t *out)
{
  *in = c->bytes_in;
  *out = c->bytes_out;
  add_conv_bytes(c->convs, true, in, out);
}
