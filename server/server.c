/* server.c: tunneld's control port, client registry, public listeners and atomic table swaps on libuv. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allow.h"
#include "metrics.h"
#include "state.h"
#include "tunnel/control.h"
#include "tunnel/error.h"
#include "tunnel/log.h"
#include "tunnel/notify.h"
#include "tunnel/pipe.h"

#include <sys/socket.h>
#include <unistd.h>

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

#define SWEEP_INTERVAL_MS 250u
/* Public ports: a burst of users connecting at once waits in the kernel rather than being refused. */
#define TD_PUBLIC_BACKLOG 1024
#define FD_EXHAUSTED_LOG_INTERVAL_MS 60000u
#define RATELOG_MAX_KEYS 256u
#define TD_REFUSAL_WHY_MAX 320

static void listener_release(struct td_listener *l);

/* ---- registry ---- */

static size_t id_hash(const char *id)
{
  uint32_t h = 2166136261u;

  for (; *id; id++)
    h = (h ^ (uint8_t)*id) * 16777619u;
  return h;
}

struct td_client *td_server_find_client(const struct td_server *srv, const char *id)
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

static struct td_client *client_get(struct td_server *srv, const char *id)
{
  struct td_client *c = td_server_find_client(srv, id);
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

struct td_client *td_server_active_client(const struct td_server *srv, size_t index)
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

void td_server_bytes(const struct td_server *srv, const struct td_client *client, const struct td_listener *listener,
                     uint64_t *in, uint64_t *out)
{
  const struct td_conv *v;

  (void)srv;
  *in = client != NULL ? client->bytes_in : listener->bytes_in;
  *out = client != NULL ? client->bytes_out : listener->bytes_out;
  for (v = client != NULL ? client->convs : listener->convs; v != NULL; v = client != NULL ? v->cnext : v->next) {
    uint64_t to_stream, to_socket;
    tn_pipe_get_bytes(v->pipe, &to_stream, &to_socket);
    *in += to_stream;
    *out += to_socket;
  }
}

struct td_listener *td_server_listener_for(const struct td_server *srv, size_t index)
{
  return index < srv->table.n && srv->listener_of != NULL ? srv->listener_of[index] : NULL;
}

/* ---- links on the control port ---- */

void td_server_forget_link(struct td_link_ctx *ctx)
{
  struct td_server *srv = ctx->srv;

  if (ctx->prev != NULL)
    ctx->prev->next = ctx->next;
  else
    srv->links = ctx->next;
  if (ctx->next != NULL)
    ctx->next->prev = ctx->prev;
  td_allow_free(ctx->allow);
  free(ctx);
}

static void retire_link(struct td_link_ctx *ctx, uint64_t grace_ms)
{
  ctx->retiring = true;
  ctx->retire_deadline_ms = uv_now(ctx->srv->loop) + grace_ms;
  tn_link_go_away(ctx->link);  /* on_drained closes it once its streams have ended */
}

/* The link becomes its identity's current link; a current one with the same or an unresponsive certificate retires. */
static void control_admit(struct td_link_ctx *ctx, struct td_client *c)
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
    retire_link(old, srv->cfg.limits.replaced_link_grace_ms);
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

static void contest_start(struct td_link_ctx *ctx, struct td_client *c);

/* The identity's current link announced this very certificate as its successor (a rotation by its own client). */
static bool rotation_vouched(const struct td_client *c, const struct td_link_ctx *ctx)
{
  const struct td_link_ctx *cur = tn_link_data(c->link);

  return cur->rotate_to[0] != '\0' && strcmp(cur->rotate_to, tn_link_peer(ctx->link)->sha256_hex) == 0;
}

/* Decides a waiting link's fate against its identity's current link as it is now. */
static void contest_decide(struct td_link_ctx *ctx, struct td_client *c)
{
  ctx->contest_client = NULL;
  ctx->contest_link = NULL;
  if (c->link == NULL || strcmp(c->sha256, tn_link_peer(ctx->link)->sha256_hex) == 0) {
    control_admit(ctx, c);  /* free, or the same certificate back (a network change) */
  } else if (rotation_vouched(c, ctx)) {
    tn_log_info("client %s: certificate rotation: the link from %s (sha256 %s) takes over from the link from %s "
                "(sha256 %s), which announced it", c->id, tn_link_peer_address(ctx->link),
                tn_link_peer(ctx->link)->sha256_hex, c->remote, c->sha256);
    control_admit(ctx, c);
  } else {
    contest_start(ctx, c);
  }
}

/*
 * A rotation message on a client's current link: the link vouches for the certificate its client's next link
 * will present, so that link replaces this one at once instead of being refused while this one answers pings.
 */
static void control_rotate(tn_link *link, const uint8_t *msg, size_t len)
{
  struct td_link_ctx *ctx = tn_link_data(link);
  uint8_t sha[32];

  if (tn_ctl_rotate_decode(sha, msg, len) != (int)len) {
    td_control_protocol_error(link, "rotation message does not follow the rules");
    return;
  }
  if (ctx->client == NULL || ctx->client->link != link) {
    tn_log_debug("control: %s: ignored a rotation message from a link that is not its client's current one",
                 tn_link_peer_address(link));
    return;
  }
  for (int i = 0; i < 32; i++)
    snprintf(ctx->rotate_to + 2 * i, 3, "%02x", sha[i]);
  tn_log_info("client %s: the link from %s announces a certificate rotation: a link with certificate sha256 %s "
              "takes over from it", ctx->client->id, tn_link_peer_address(link), ctx->rotate_to);
}

static void control_on_message(tn_link *link, const uint8_t *msg, size_t len)
{
  uint8_t version = 0, type = 0;
  uint32_t total = 0;

  if (tn_ctl_peek(msg, len, &version, &type, &total) == TN_OK && version == TN_CTL_VERSION && type == TN_CTL_ROTATE)
    control_rotate(link, msg, len);
  else
    td_allow_on_message(link, msg, len);  /* the allow-list, and every other case: unknown types, garbage */
}

static void contest_start(struct td_link_ctx *ctx, struct td_client *c)
{
  struct td_server *srv = ctx->srv;
  uint64_t now = uv_now(srv->loop);

  ctx->contest_client = c;
  ctx->contest_link = c->link;
  ctx->contest_started_ms = now;
  ctx->contest_deadline_ms = now + srv->cfg.limits.takeover_ping_timeout_ms;
  tn_log_info("client %s: link from %s presents another certificate (sha256 %s); pinging the current link from %s "
              "(sha256 %s) for up to %u ms first", c->id, tn_link_peer_address(ctx->link),
              tn_link_peer(ctx->link)->sha256_hex, c->remote, c->sha256, srv->cfg.limits.takeover_ping_timeout_ms);
  if (tn_link_ping(c->link) != TN_OK) {
    ctx->contest_deadline_ms = now;  /* nothing left to answer: the sweep lets the newcomer in */
  }
}

/* The current link answered: it is alive, so the newcomer with another certificate is refused. */
static void contest_refuse(struct td_link_ctx *ctx)
{
  struct td_server *srv = ctx->srv;
  struct td_client *c = ctx->contest_client;

  srv->metrics.links_refused_in_use++;
  tn_log_warn("client %s: refused the link from %s with certificate sha256 %s: the identity is connected from %s "
              "with certificate sha256 %s, which answered a ping in %llu ms", c->id, tn_link_peer_address(ctx->link),
              tn_link_peer(ctx->link)->sha256_hex, c->remote, c->sha256,
              (unsigned long long)(uv_now(srv->loop) - ctx->contest_started_ms));
  ctx->contest_client = NULL;
  ctx->contest_link = NULL;
  ctx->quiet_close = true;
  tn_link_close(ctx->link, "identity in use by a live link with another certificate");
}

/* link stops being its identity's current link (closed, going away): waiting links are decided now. */
static void contest_link_gone(struct td_server *srv, tn_link *link)
{
  struct td_link_ctx *ctx, *next;

  for (ctx = srv->links; ctx != NULL; ctx = next) {
    next = ctx->next;
    if (ctx->contest_link == link)
      contest_decide(ctx, ctx->contest_client);
  }
}

static void control_on_pong(tn_link *link, uint64_t rtt_ms)
{
  struct td_link_ctx *lctx = tn_link_data(link);
  struct td_link_ctx *ctx, *next;

  (void)rtt_ms;
  for (ctx = lctx->srv->links; ctx != NULL; ctx = next) {
    next = ctx->next;
    if (ctx->contest_link == link && ctx->contest_client != NULL && ctx->contest_client->link == link)
      contest_refuse(ctx);
  }
}

/* The deadline passed without an answer from the current link: the newcomer replaces it, as a dead peer. */
static void contest_expire(struct td_link_ctx *ctx)
{
  struct td_client *c = ctx->contest_client;

  if (c->link != NULL && c->link == ctx->contest_link) {
    tn_log_warn("client %s: the link from %s (sha256 %s) did not answer a ping within %u ms; the link from %s with "
                "certificate sha256 %s replaces it", c->id, c->remote, c->sha256,
                ctx->srv->cfg.limits.takeover_ping_timeout_ms, tn_link_peer_address(ctx->link),
                tn_link_peer(ctx->link)->sha256_hex);
    ctx->contest_client = NULL;
    ctx->contest_link = NULL;
    control_admit(ctx, c);
    return;
  }
  contest_decide(ctx, c);  /* the identity changed links meanwhile: judge against the one it has now */
}

static void control_on_established(tn_link *link, const struct tn_tls_peer *peer)
{
  struct td_link_ctx *ctx = tn_link_data(link);
  struct td_server *srv = ctx->srv;
  struct td_client *c;

  td_server_pending_done(srv, ctx);
  ctx->handshake_done = true;
  if (peer->cn[0] == '\0') {
    tn_log_warn("control: %s: client certificate has no CN; closing", tn_link_peer_address(link));
    tn_link_close(link, "certificate without CN");
    return;
  }
  if (td_config_is_admin_cert(&srv->cfg, peer->cn, peer->sha256_hex)) {
    /* Roles stay apart: an admin certificate that leaks cannot also take over a tunnel's traffic. */
    tn_log_warn("control: %s: certificate \"%s\" is an admin identity and cannot be a tunnel client; closing",
                tn_link_peer_address(link), peer->cn);
    tn_link_close(link, "admin certificate on the control port");
    return;
  }
  c = client_get(srv, peer->cn);
  if (c == NULL) {
    tn_link_close(link, "out of memory");
    return;
  }
  contest_decide(ctx, c);
}

static void control_on_drained(tn_link *link)
{
  struct td_link_ctx *ctx = tn_link_data(link);

  /* A link retires for one of three reasons (shutdown, replacement, the client's GoAway); log the right one. */
  if (!ctx->retiring)
    return;
  if (ctx->srv->stopping)
    tn_link_close(link, "server shutting down");
  else if (ctx->client != NULL && ctx->client->link != NULL)
    tn_link_close(link, "replaced by a newer link");
  else
    tn_link_close(link, "client went away; its streams have ended");
}

static void control_on_go_away(tn_link *link, uint32_t code)
{
  struct td_link_ctx *ctx = tn_link_data(link);
  struct td_client *c = ctx->client;

  /* The client is leaving (SIGTERM): route new connections elsewhere, let its streams finish. */
  if (c != NULL && c->link == link) {
    tn_log_info("client %s: going away (code %u); new connections go to its backups", c->id, code);
    c->link = NULL;
    c->last_state = c->state;
    c->state = TD_CLIENT_DISCONNECTED;
    contest_link_gone(ctx->srv, link);
  }
  if (!ctx->retiring)
    retire_link(ctx, ctx->srv->cfg.limits.common.drain_timeout_ms);
}

static void control_on_closed(tn_link *link, const char *reason)
{
  struct td_link_ctx *ctx = tn_link_data(link);
  struct td_server *srv = ctx->srv;
  struct td_client *c = ctx->client;

  if (!ctx->handshake_done) {
    char kind[96];
    td_server_pending_done(srv, ctx);
    srv->metrics.handshake_failures++;
    /* Anyone can cause these, as often as they like: per way of failing and source, one line, then a count. */
    snprintf(kind, sizeof(kind), "control: %s", reason);
    td_server_log_limited(srv, TN_LOG_WARN, kind, ctx->source, "control: %s: %s", tn_link_peer_address(link), reason);
  } else if (c == NULL) {
    if (!ctx->quiet_close)
      td_server_log_limited(srv, TN_LOG_WARN, "control: refused certificates", ctx->source, "control: %s: %s",
                            tn_link_peer_address(link), reason);
  } else if (c->link == link) {
    c->link = NULL;
    c->last_state = c->state;
    c->state = TD_CLIENT_DISCONNECTED;
    if (strstr(reason, "dead-peer") != NULL)
      srv->metrics.links_dead++;
    tn_log_warn("client %s: disconnected (%s): %s", c->id, tn_link_peer_address(link), reason);
    td_server_forget_link(ctx);
    contest_link_gone(srv, link);  /* after unlisting, so a waiting link is never decided against this one */
    return;
  } else {
    tn_log_info("client %s: old link from %s closed: %s", c->id, tn_link_peer_address(link), reason);
  }
  td_server_forget_link(ctx);
}

static const struct tn_link_callbacks control_callbacks = {
  .on_established = control_on_established,
  .on_pong = control_on_pong,
  .on_go_away = control_on_go_away,
  .on_drained = control_on_drained,
  .on_message = control_on_message,
  .on_closed = control_on_closed,
};

static void link_options(const struct td_server *srv, struct tn_link_options *opt)
{
  tn_link_options_default(opt);
  opt->tls = srv->tls;
  tn_limits_link_options(&srv->cfg.limits.common, opt);
}

/* Close callback of a handle that was malloc'd on its own. */
static void on_lone_handle_closed(uv_handle_t *h)
{
  free(h);
}

/* Close callback of a listener that was never listed (its handle's data is the listener). */
static void on_unlisted_listener_closed(uv_handle_t *h)
{
  free(h->data);
}

/* Accepts and drops a connection we will not serve, so the kernel's queue does not fill. */
void td_server_drop_connection(uv_stream_t *server)
{
  uv_tcp_t *t = malloc(sizeof(*t));

  if (t == NULL)
    return;
  uv_tcp_init(server->loop, t);
  if (uv_accept(server, (uv_stream_t *)t) == 0)
    uv_tcp_close_reset(t, on_lone_handle_closed);
  else
    uv_close((uv_handle_t *)t, on_lone_handle_closed);
}

/* ---- running out of descriptors ---- */

/*
 * Logs running out of descriptors once (then at most once a minute while it lasts) and its end.
 * libuv swallows most EMFILE accepts itself (below), so the sweep also probes with a spare open.
 */
static void note_fd_state(struct td_server *srv, bool exhausted)
{
  static const char kind[] = "server: out of file descriptors";
  uint64_t now = uv_now(srv->loop);

  if (exhausted) {
    tn_ratelog_event(srv->ratelog, now, FD_EXHAUSTED_LOG_INTERVAL_MS, TN_LOG_ERROR, kind, "-",
                     "server: out of file descriptors: new connections are accepted and closed at once until some "
                     "end; raise the descriptor limit (ulimit -n, systemd LimitNOFILE)");
  } else if (srv->fd_exhausted) {
    tn_ratelog_end(srv->ratelog, now, kind, "-");
    tn_log_info("server: file descriptors available again");
  }
  srv->fd_exhausted = exhausted;
}

static void probe_descriptors(struct td_server *srv)
{
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

  if (fd >= 0)
    close(fd);
  if (fd >= 0 || errno == EMFILE || errno == ENFILE)
    note_fd_state(srv, fd < 0);
}

/*
 * Accept back-off on EMFILE/ENFILE. libuv (unix) already keeps a spare descriptor: when accept fails
 * for lack of descriptors it closes the spare, accepts and closes the waiting connections, and reopens
 * it, so the listener is drained instead of staying readable and the loop does not spin; the
 * connection callback never hears of it. The callback only gets EMFILE when libuv could not reopen its
 * spare; the listener then stays readable and, as libuv has no uv_listen_stop (closing the listener
 * would give the port away), we would be called again at once, forever. So do the same with our own
 * spare: give it up, accept and close what waits, take it back. Users see a closed connection, which
 * is what a full server can honestly offer; the log says why.
 */
static bool shed_on_emfile(struct td_server *srv, uv_stream_t *server, int status)
{
  uv_os_fd_t lfd;
  int fd;

  if (status != UV_EMFILE && status != UV_ENFILE)
    return false;
  if (srv->spare_fd >= 0)
    close(srv->spare_fd);
  if (uv_fileno((const uv_handle_t *)server, &lfd) == 0)
    while ((fd = accept(lfd, NULL, NULL)) >= 0)
      close(fd);
  srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  note_fd_state(srv, true);
  return true;
}

/*
 * Closes the oldest connection still in its TLS handshake (only management ones when management_only).
 * Without this, a few hundred connections that never finish a handshake hold every slot until
 * HandshakeTimeoutMs and a real client or admin is refused meanwhile; evicting the oldest lets a
 * genuine handshake (tens of ms) through unless the attacker opens the whole limit's worth within it.
 */
bool td_server_evict_handshake(struct td_server *srv, bool management_only)
{
  struct td_link_ctx *ctx;

  for (ctx = srv->pending_oldest; ctx != NULL; ctx = ctx->pending_next)
    if (!management_only || ctx->management)
      break;
  if (ctx == NULL)
    return false;
  srv->metrics.handshakes_refused_limit++;
  tn_link_close(ctx->link, "TLS handshake evicted: too many in progress");
  return true;
}

/*
 * Which handshake a source over its limit loses, the newcomer included: the oldest silent one (no whole ClientHello
 * read, none waiting in the kernel: it has cost its peer nothing), else the oldest still unfinished
 * PENDING_ANSWERED_GRACE_MS after it was accepted (a real one is one round trip from done), else the newcomer.
 * libuv accepts a whole backlog in one go, before any of it is read: looking into the kernel is what tells a
 * genuine client queued there (an admin behind the same address as a flood) from the stalled ones around it.
 */
#define PENDING_ANSWERED_GRACE_MS 2000

static struct td_link_ctx *source_victim(struct td_server *srv, struct td_link_ctx *newcomer)
{
  uint64_t now = uv_now(srv->loop);
  struct td_link_ctx *c, *answered = NULL;

  for (c = srv->pending_oldest; c != NULL; c = c->pending_next) {
    if (c->pending_kind != newcomer->pending_kind || strcmp(c->source_key, newcomer->source_key) != 0 ||
        tn_link_is_closing(c->link))
      continue;
    if (!tn_link_hello_answered(c->link) && !tn_link_hello_waiting(c->link))
      return c;
    if (answered == NULL && c != newcomer && now - c->pending_since >= PENDING_ANSWERED_GRACE_MS)
      answered = c;
  }
  return answered != NULL ? answered : newcomer;
}

void td_server_pending_add(struct td_server *srv, struct td_link_ctx *ctx, enum td_count kind)
{
  bool over;

  td_source_name(tn_link_peer_addr(ctx->link), ctx->source, sizeof(ctx->source));
  snprintf(ctx->source_key, sizeof(ctx->source_key), "ip:%s", ctx->source);
  over = td_sources_get(&srv->sources, ctx->source_key, kind) >= srv->cfg.limits.max_pending_per_source;
  ctx->pending = true;
  ctx->pending_kind = kind;
  ctx->pending_since = uv_now(srv->loop);
  ctx->pending_next = NULL;
  ctx->pending_prev = srv->pending_newest;
  if (srv->pending_newest != NULL)
    srv->pending_newest->pending_next = ctx;
  else
    srv->pending_oldest = ctx;
  srv->pending_newest = ctx;
  srv->pending_handshakes++;
  /* Out of memory only makes the per-source bound looser, never refuses the connection. */
  (void)td_sources_add(&srv->sources, ctx->source_key, kind, 1);
  if (over) {
    struct td_link_ctx *victim = source_victim(srv, ctx);
    srv->metrics.handshakes_refused_limit++;
    tn_link_close(victim->link, victim == ctx ? "TLS handshake refused: MaxPendingHandshakesPerSource reached for its source"
                                              : "TLS handshake evicted: MaxPendingHandshakesPerSource reached for its source");
  }
}

void td_server_pending_done(struct td_server *srv, struct td_link_ctx *ctx)
{
  if (!ctx->pending)
    return;
  ctx->pending = false;
  if (ctx->pending_prev != NULL)
    ctx->pending_prev->pending_next = ctx->pending_next;
  else
    srv->pending_oldest = ctx->pending_next;
  if (ctx->pending_next != NULL)
    ctx->pending_next->pending_prev = ctx->pending_prev;
  else
    srv->pending_newest = ctx->pending_prev;
  srv->pending_handshakes--;
  td_sources_add(&srv->sources, ctx->source_key, ctx->pending_kind, -1);
}

static void on_control_connection(uv_stream_t *server, int status)
{
  struct td_server *srv = server->data;
  struct tn_link_options opt;
  struct td_link_ctx *ctx;

  if (status < 0) {
    if (!shed_on_emfile(srv, server, status))
      tn_log_warn("control: accept failed: %s", uv_strerror(status));
    return;
  }
  if (!srv->stopping && srv->pending_handshakes >= srv->cfg.limits.max_pending_handshakes)
    td_server_evict_handshake(srv, false);
  if (srv->stopping || srv->pending_handshakes >= srv->cfg.limits.max_pending_handshakes) {
    srv->metrics.handshakes_refused_limit++;
    td_server_drop_connection(server);
    return;
  }
  ctx = calloc(1, sizeof(*ctx));
  if (ctx == NULL) {
    td_server_drop_connection(server);
    return;
  }
  ctx->srv = srv;
  link_options(srv, &opt);
  if (tn_link_accept(&ctx->link, server, &opt, &control_callbacks, ctx) != 0) {
    free(ctx);
    return;
  }
  ctx->next = srv->links;
  if (srv->links != NULL)
    srv->links->prev = ctx;
  srv->links = ctx;
  td_server_pending_add(srv, ctx, TD_COUNT_CONTROL_PENDING);
}

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

static void on_public_connection(uv_stream_t *server, int status)
{
  struct td_listener *l = server->data;
  struct td_server *srv = l->srv;
  const struct td_tunnel *t;
  struct td_client *c;
  struct td_conv *v;
  struct tn_open hdr;
  struct tn_pipe_options pipe_opt;
  tn_pipe *p;

  if (status < 0) {
    if (!shed_on_emfile(srv, server, status))
      tn_log_warn("tunnel port %u: accept failed: %s", (unsigned)l->addr.port, uv_strerror(status));
    return;
  }
  if (l->closed || l->tunnel_index < 0) {
    td_server_drop_connection(server);
    return;
  }
  t = &srv->table.tunnels[l->tunnel_index];
  c = td_server_active_client(srv, (size_t)l->tunnel_index);
  if (c == NULL) {
    char why[TD_REFUSAL_WHY_MAX];
    td_server_drop_connection(server);
    /* Name the clients: the operator's next step is finding out why that one is not connected. */
    snprintf(why, sizeof(why), "none of its clients is connected (%.255s%s)", t->client_id,
             t->n_backups > 0 ? " and its backups" : "");
    refuse_logged(l, why);
    return;
  }
  if (l->open_connections >= srv->cfg.limits.max_connections_per_tunnel) {
    td_server_drop_connection(server);
    refuse_logged(l, "MaxConnectionsPerTunnel reached");
    return;
  }
  if (c->open_streams >= srv->cfg.limits.max_connections_per_client) {
    td_server_drop_connection(server);
    refuse_logged(l, "MaxConnectionsPerClient reached");
    return;
  }
  v = calloc(1, sizeof(*v));
  if (v == NULL) {
    td_server_drop_connection(server);
    return;
  }
  tn_limits_pipe_options(&srv->cfg.limits.common, &pipe_opt);
  if (tn_pipe_accept(&p, server, &pipe_opt, &conv_callbacks, v) != 0) {
    free(v);
    return;
  }
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
static bool listener_retire(struct td_listener *l, uint64_t drain_ms)
{
  if (l->closed)
    return false;
  if (l->tunnel_index >= 0 && l->srv->listener_of != NULL && (size_t)l->tunnel_index < l->srv->table.n)
    l->srv->listener_of[l->tunnel_index] = NULL;
  l->closed = true;
  l->tunnel_index = -1;
  l->drain_deadline_ms = uv_now(l->srv->loop) + drain_ms;
  return true;
}

static void listener_close(struct td_listener *l, uint64_t drain_ms)
{
  if (listener_retire(l, drain_ms))
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

/* Binds and listens on addr; "::" is dual-stack so a default tunnel takes IPv4 users too. */
static int bind_listen(uv_loop_t *loop, uv_tcp_t *tcp, const struct tn_addr *addr, uv_connection_cb cb)
{
  struct sockaddr_storage ss;
  int rc;

  rc = addr_to_sockaddr(addr, &ss);
  if (rc == 0)
    rc = uv_tcp_bind(tcp, (const struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)tcp, TD_PUBLIC_BACKLOG, cb);
  (void)loop;
  return rc;
}

static struct td_listener *listener_new(struct td_server *srv, const struct tn_addr *addr, int *rc)
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
  *rc = bind_listen(srv->loop, &l->tcp, addr, on_public_connection);
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

/* The open listeners sorted by address (*n of them); NULL with *n 0 when there are none, NULL with *n 1 on ENOMEM. */
static struct td_listener **open_listener_index(const struct td_server *srv, size_t *n)
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

static struct td_listener *index_find_listener(struct td_listener **ix, size_t n, const struct tn_addr *addr)
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

/* ---- audit ---- */

/* "client home1, backups [home2, home3], backend port 80, PROXY v2" */
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
    snprintf(out + n, outlen - n, t->proxy_version ? ", PROXY v%u" : ", no PROXY header", (unsigned)t->proxy_version);
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
    long j = td_table_index_find(old_ix, old->n, &nt->tunnels[i].listen);
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
    if (td_table_index_find(new_ix, nt->n, &old->tunnels[k].listen) >= 0)
      continue;
    removed++;
    describe_tunnel(&old->tunnels[k], was, sizeof(was));
    tn_log_info("audit: admin \"%s\" (%s): tunnel %s removed (was %s)", actor, peer,
                tn_addr_format(&old->tunnels[k].listen, addr, sizeof(addr)), was);
  }
  tn_log_info("audit: admin \"%s\" (%s): PUT /tunnels applied: %zu added, %zu changed, %zu removed, %zu unchanged",
              actor, peer, added, changed, removed, nt->n - added - changed);
}

/* Resolves every tunnel's clients to registry entries (listing never-seen ones), then drops unknown clients no
 * tunnel names any more. Nothing else points at such an entry: links and connections only refer to clients that
 * have connected. O(clients + table). */
static void resolve_routes(struct td_server *srv, struct td_client **route, size_t *route_start)
{
  struct td_client **pp, *c;
  size_t k = 0;

  for (c = srv->clients; c != NULL; c = c->next)
    c->named = false;
  for (size_t i = 0; i < srv->table.n; i++) {
    const struct td_tunnel *t = &srv->table.tunnels[i];
    route_start[i] = k;
    /* NULL for a pinned fingerprint (resolved per connection) or when out of memory (that entry never routes). */
    route[k++] = tn_tls_fingerprint_is_canonical(t->client_id) ? NULL : client_get(srv, t->client_id);
    for (size_t b = 0; b < t->n_backups; b++)
      route[k++] = tn_tls_fingerprint_is_canonical(t->backups[b]) ? NULL : client_get(srv, t->backups[b]);
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

int td_server_apply_table(struct td_server *srv, struct td_table *nt, char *err, size_t errlen)
{
  return td_server_apply_table_as(srv, nt, NULL, NULL, err, errlen);
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

/* The handle of one retired listener: closed after the swap, so thousands of them do not stall one iteration. */
static void close_retired(struct td_server *srv, struct td_listener *l)
{
  tn_log_info("tunnel port %u: removed; %u open connections may finish within %u ms", (unsigned)l->addr.port,
              l->open_connections, srv->cfg.limits.common.drain_timeout_ms);
  uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}

void td_apply_close(struct td_server *srv, struct td_apply *a, uint64_t deadline_ns, bool *done)
{
  for (; a->next_close < a->n_retired; a->next_close++) {
    if (deadline_ns != 0 && (a->next_close & 63) == 0 && a->next_close > 0 && uv_hrtime() >= deadline_ns) {
      *done = false;
      return;
    }
    close_retired(srv, a->retired[a->next_close]);
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
      uv_close((uv_handle_t *)&a->fresh[i]->tcp, on_unlisted_listener_closed);
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
  a->open_ix = open_listener_index(srv, &a->n_open);
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

  for (l = srv->listeners; l != NULL && rc == UV_EADDRINUSE; l = l->next)
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
    size_t i = a->next_bind;
    if (deadline_ns != 0 && (i & 63) == 0 && i > 0 && uv_hrtime() >= deadline_ns)
      return 0;
    if (index_find_listener(a->open_ix, a->n_open, &a->nt.tunnels[i].listen) != NULL)
      continue;
    a->fresh[i] = listener_new(srv, &a->nt.tunnels[i].listen, &rc);
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

void td_apply_commit(struct td_server *srv, struct td_apply *a, const char *actor, const char *peer)
{
  struct td_table *nt = &a->nt;
  struct td_listener *l;
  char addr[TN_ADDR_STRLEN];

  if (actor != NULL)
    audit_changes(&srv->table, nt, a->old_ix, a->new_ix, actor, peer != NULL ? peer : "-");
  /* Keep listeners whose address stays, close the ones that go, route the new. */
  for (l = srv->listeners; l != NULL; l = l->next) {
    long j;
    if (l->closed)
      continue;
    j = td_table_index_find(a->new_ix, nt->n, &l->addr);
    if (j < 0) {
      if (listener_retire(l, srv->cfg.limits.common.drain_timeout_ms))
        a->retired[a->n_retired++] = l;
    } else {
      /* A kept listener whose routing changes gets a line, so a move shows in the log. */
      if (l->tunnel_index >= 0 && strcmp(srv->table.tunnels[l->tunnel_index].client_id, nt->tunnels[j].client_id) != 0)
        tn_log_info("tunnel port %u: new connections go to client %s (was %s); %u open connections stay where they are",
                    (unsigned)l->addr.port, nt->tunnels[j].client_id, srv->table.tunnels[l->tunnel_index].client_id,
                    l->open_connections);
      l->tunnel_index = j;
      a->listener_of[j] = l;
    }
  }
  for (size_t i = 0; i < nt->n; i++) {
    if (a->fresh[i] == NULL)
      continue;
    a->fresh[i]->tunnel_index = (long)i;
    a->fresh[i]->next = srv->listeners;
    a->fresh[i]->prev = NULL;
    if (srv->listeners != NULL)
      srv->listeners->prev = a->fresh[i];
    srv->listeners = a->fresh[i];
    a->listener_of[i] = a->fresh[i];
    a->fresh[i] = NULL;
    tn_log_info("tunnel port %u: listening on %s for client %s", (unsigned)nt->tunnels[i].listen.port,
                tn_addr_format(&nt->tunnels[i].listen, addr, sizeof(addr)), nt->tunnels[i].client_id);
  }
  td_table_free(&srv->table);
  srv->table = *nt;
  td_table_init(nt);
  free(srv->listener_of);
  free(srv->route);
  free(srv->route_start);
  srv->listener_of = a->listener_of;
  srv->route = a->route;
  srv->route_start = a->route_start;
  a->listener_of = NULL;
  a->route = NULL;
  a->route_start = NULL;
  /* Every client a tunnel names by CN, backups included, is listed (ClientUnknown until it is seen); GET /clients
   * is keyed by CN, so a fingerprint-pinned tunnel lists nothing until its certificate connects under its CN. */
  resolve_routes(srv, srv->route, srv->route_start);
  td_allow_log_table(srv);
}

int td_server_apply_table_as(struct td_server *srv, struct td_table *nt, const char *actor, const char *peer,
                             char *err, size_t errlen)
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
    td_apply_commit(srv, a, actor, peer);
  else {
    *nt = a->nt;  /* nothing changed: the caller keeps its table */
    td_table_init(&a->nt);
  }
  td_apply_free(srv, a);
  return rc;
}

/* ---- periodic work ---- */

static void on_sweep(uv_timer_t *t)
{
  struct td_server *srv = t->data;
  uint64_t now = uv_now(srv->loop);
  struct td_link_ctx *ctx, *next;
  struct td_listener *l, *lnext;

  probe_descriptors(srv);
  /* Deciding a contest may retire and free any other link: find one, act, look again. */
  for (;;) {
    for (ctx = srv->links; ctx != NULL; ctx = ctx->next)
      if (ctx->contest_client != NULL && now >= ctx->contest_deadline_ms)
        break;
    if (ctx == NULL)
      break;
    contest_expire(ctx);
  }
  tn_ratelog_flush(srv->ratelog, now);
  for (ctx = srv->links; ctx != NULL; ctx = next) {
    next = ctx->next;
    if (ctx->retiring && now >= ctx->retire_deadline_ms)
      tn_link_close(ctx->link, srv->stopping ? "drain timeout; resetting its remaining streams"
                                             : "grace period over; resetting its remaining streams");
  }
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
  if (srv->stopping) {
    bool busy = srv->links != NULL;
    for (l = srv->listeners; l != NULL && !busy; l = l->next)
      busy = l->open_connections > 0;
    if (!busy && srv->mgmt_connections == 0 && srv->put == NULL) {
      uv_timer_stop(&srv->sweep);
      if (srv->on_stopped != NULL)
        srv->on_stopped(srv);
    }
  }
}

/* ---- lifecycle ---- */

/* tn_tls names only the PEM file; the operator also needs the config file and the key that named it. */
static void tls_error_context(const struct td_config *cfg, char *err, size_t errlen)
{
  const char *field = "CaCertificateFile, ServerTlsCertificateFile, ServerTlsKeyFile";
  char *msg = strdup(err);
  size_t n;

  if (msg == NULL)
    return;
  if (strncmp(msg, cfg->key_file, n = strlen(cfg->key_file)) == 0 && msg[n] == ':')
    field = "ServerTlsKeyFile";
  else if (strncmp(msg, cfg->cert_file, n = strlen(cfg->cert_file)) == 0 && msg[n] == ':')
    field = "ServerTlsCertificateFile";
  else if (strncmp(msg, cfg->ca_file, n = strlen(cfg->ca_file)) == 0 && msg[n] == ':')
    field = "CaCertificateFile";
  snprintf(err, errlen, "%s: \"%s\": %s", cfg->path, field, msg);
  free(msg);
}

/* Refuses, at the handshake, a certificate listed by PUT /revoked-certificates. */
static int server_peer_check(void *ctx, const struct tn_tls_peer *peer, char *why, size_t why_len)
{
  const struct td_server *srv = ctx;

  if (!td_revoked_contains(&srv->revoked, peer->sha256_hex))
    return 0;
  snprintf(why, why_len, "certificate revoked (listed in /revoked-certificates)");
  return 1;
}

/* The TLS config from the configured files: CA, own certificate and key, CrlFile, and the revocation hook. */
static int server_tls_load(struct td_server *srv, tn_tls_config **out, char *err, size_t errlen)
{
  const struct td_config *cfg = &srv->cfg;

  if (tn_tls_config_new(out, TN_TLS_SERVER, cfg->ca_file, cfg->cert_file, cfg->key_file, err, errlen) != TN_OK) {
    tls_error_context(cfg, err, errlen);
    return -1;
  }
  if (cfg->crl_file != NULL && tn_tls_config_set_crl(*out, cfg->crl_file, err, errlen) != TN_OK) {
    char *msg = strdup(err);
    snprintf(err, errlen, "%s: \"CrlFile\": %s", cfg->path, msg != NULL ? msg : "invalid");
    free(msg);
    tn_tls_config_unref(*out);
    *out = NULL;
    return -1;
  }
  tn_tls_config_set_peer_check(*out, server_peer_check, srv);
  return 0;
}

int td_server_init(struct td_server *srv, uv_loop_t *loop, const char *config_path, char *err, size_t errlen)
{
  struct td_reserved reserved;

  memset(srv, 0, sizeof(*srv));
  srv->spare_fd = -1;
  srv->loop = loop;
  srv->config_path = config_path;
  td_table_init(&srv->table);
  td_revoked_init(&srv->revoked);
  td_sources_init(&srv->sources);
  if (td_config_load(&srv->cfg, config_path, err, errlen) != TN_OK)
    return -1;
  if (server_tls_load(srv, &srv->tls, err, errlen) != 0) {
    td_config_free(&srv->cfg);
    return -1;
  }
  td_config_reserved(&srv->cfg, &reserved);
  if (td_state_load(srv->cfg.state_file, &reserved, &srv->table, &srv->revoked, err, errlen) != TN_OK) {
    tn_tls_config_unref(srv->tls);
    td_config_free(&srv->cfg);
    return -1;
  }
  srv->ratelog = tn_ratelog_new(RATELOG_MAX_KEYS);  /* NULL (out of memory) only means unlimited lines */
  return 0;
}

static int bind_port(struct td_server *srv, uv_tcp_t *tcp, uint16_t port, uv_connection_cb cb, const char *what,
                     char *err, size_t errlen)
{
  struct tn_addr a = srv->cfg.listen;
  char text[TN_ADDR_STRLEN];
  int rc;

  a.port = port;
  uv_tcp_init(srv->loop, tcp);
  tcp->data = srv;
  rc = bind_listen(srv->loop, tcp, &a, cb);
  if (rc != 0) {
    snprintf(err, errlen, "%s: \"%s\": cannot listen on %s: %s", srv->cfg.path, what,
             tn_addr_format(&a, text, sizeof(text)), uv_strerror(rc));
    return -1;
  }
  tn_log_info("%s: listening on %s", what, tn_addr_format(&a, text, sizeof(text)));
  return 0;
}

static void on_management_connection(uv_stream_t *server, int status)
{
  struct td_server *srv = server->data;

  if (status < 0) {
    if (!shed_on_emfile(srv, server, status))
      tn_log_warn("management: accept failed: %s", uv_strerror(status));
    return;
  }
  td_mgmt_accept(srv);
}

int td_server_start(struct td_server *srv, char *err, size_t errlen)
{
  struct td_table restored = srv->table;
  int rc;

  if (bind_port(srv, &srv->control, srv->cfg.control_port, on_control_connection, "TunnelControlPort", err,
                errlen) != 0)
    return -1;
  if (bind_port(srv, &srv->management, srv->cfg.management_port, on_management_connection, "ManagementPort", err,
                errlen) != 0)
    return -1;
  if (td_metrics_listen(srv, err, errlen) != 0)
    return -1;
  srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  uv_timer_init(srv->loop, &srv->sweep);
  srv->sweep.data = srv;
  uv_timer_start(&srv->sweep, on_sweep, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS);

  /* The restored table is applied like a PUT, so its listeners are up before any client returns. */
  td_table_init(&srv->table);
  rc = td_server_apply_table(srv, &restored, err, errlen);
  if (rc != 0) {
    td_table_free(&restored);
    return -1;
  }
  tn_log_info("server: %zu tunnels restored from %s; %zu admin identities", srv->table.n, srv->cfg.state_file,
              srv->cfg.n_admin_identities);
  tn_notify_ready("listening");
  return 0;
}

/* Closes a live link (control or management) whose certificate is no longer trusted, saying why once. */
static void close_untrusted(struct td_link_ctx *ctx, const char *why)
{
  struct td_server *srv = ctx->srv;
  const struct tn_tls_peer *peer = tn_link_peer(ctx->link);
  char reason[600];

  srv->metrics.links_closed_revoked++;
  if (ctx->management || ctx->client == NULL) {
    /* The control path logs a client's disconnection itself; these would otherwise close in silence. */
    tn_log_warn("%s: %s: closing the connection of certificate \"%s\" (sha256 %s): %s",
                ctx->management ? "management" : "control", tn_link_peer_address(ctx->link), peer->cn,
                peer->sha256_hex, why);
    ctx->quiet_close = true;
  }
  snprintf(reason, sizeof(reason), "closed: %s", why);
  tn_link_close(ctx->link, reason);
}

/* Every live link checked against the current TLS config (CA file, CRLs, revoked list, validity). */
static void recheck_links(struct td_server *srv)
{
  struct td_link_ctx *ctx, *next;
  char why[512];

  for (ctx = srv->links; ctx != NULL; ctx = next) {
    next = ctx->next;
    if (!ctx->handshake_done || tn_link_is_closing(ctx->link))
      continue;
    if (tn_tls_recheck(tn_link_tls(ctx->link), srv->tls, why, sizeof(why)) == TN_ERR_INVALID)
      close_untrusted(ctx, why);
  }
}

void td_server_reload(struct td_server *srv)
{
  tn_tls_config *tls;
  char err[768];

  if (server_tls_load(srv, &tls, err, sizeof(err)) != 0) {
    tn_log_error("server: certificate reload failed, keeping the loaded ones: %s", err);
    return;
  }
  tn_tls_config_unref(srv->tls);
  srv->tls = tls;
  tn_log_info("server: certificates and CA%s reloaded from disk; new connections use them",
              srv->cfg.crl_file != NULL ? " (and CrlFile)" : "");
  recheck_links(srv);
}

int td_server_apply_revoked(struct td_server *srv, struct td_revoked *r, const char *requester_sha256, char *err,
                            size_t errlen)
{
  struct td_link_ctx *ctx, *next;
  size_t added = 0, closed = 0;

  if (requester_sha256 != NULL && td_revoked_contains(r, requester_sha256)) {
    snprintf(err, errlen, "the list revokes the certificate making this request (sha256 %s); revoke it from "
             "another admin certificate or through CrlFile", requester_sha256);
    return TN_ERR_CONFLICT;
  }
  if (td_state_save(srv->cfg.state_file, &srv->table, r, err, errlen) != TN_OK)
    return TN_ERR_IO;
  for (size_t i = 0; i < r->n; i++)
    added += !td_revoked_contains(&srv->revoked, r->fp[i]);
  td_revoked_free(&srv->revoked);
  srv->revoked = *r;
  td_revoked_init(r);
  for (ctx = srv->links; ctx != NULL; ctx = next) {
    next = ctx->next;
    if (!ctx->handshake_done || tn_link_is_closing(ctx->link) ||
        !td_revoked_contains(&srv->revoked, tn_link_peer(ctx->link)->sha256_hex))
      continue;
    close_untrusted(ctx, "certificate revoked (listed in /revoked-certificates)");
    closed++;
  }
  tn_log_info("server: revoked-certificates list replaced: %zu certificates (%zu newly listed); %zu live links closed",
              srv->revoked.n, added, closed);
  return 0;
}

static void close_if_open(uv_handle_t *h)
{
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/*
 * A second stop signal during the drain: the operator (or systemd's stop timeout escalating) wants out now.
 * Every deadline is moved to now and the sweep resets what is still open, so the exit stays the normal path
 * (status 0, state saved, "stopped" logged) instead of death by signal.
 */
static void stop_now(struct td_server *srv)
{
  uint64_t now = uv_now(srv->loop);
  struct td_link_ctx *ctx;
  struct td_listener *l;

  tn_log_info("server: stop signal during the drain; closing the remaining connections now");
  for (l = srv->listeners; l != NULL; l = l->next)
    l->drain_deadline_ms = now;
  for (ctx = srv->links; ctx != NULL; ctx = ctx->next)
    if (ctx->retiring)
      ctx->retire_deadline_ms = now;
  on_sweep(&srv->sweep);
}

void td_server_close_listeners(struct td_server *srv)
{
  for (struct td_listener *l = srv->listeners; l != NULL; l = l->next)
    if (!l->closed)
      listener_close(l, srv->cfg.limits.common.drain_timeout_ms);
}

void td_server_stop(struct td_server *srv)
{
  struct td_link_ctx *ctx, *next;

  if (srv->stopping) {
    stop_now(srv);
    return;
  }
  srv->stopping = true;
  tn_notify_stopping();
  tn_log_info("server: stopping; open connections may finish within %u ms", srv->cfg.limits.common.drain_timeout_ms);
  close_if_open((uv_handle_t *)&srv->control);
  close_if_open((uv_handle_t *)&srv->management);
  td_metrics_close(srv);
  td_server_close_listeners(srv);
  for (ctx = srv->links; ctx != NULL; ctx = next) {
    next = ctx->next;
    if (ctx->management || ctx->client == NULL)
      tn_link_close(ctx->link, "server shutting down");
    else if (!ctx->retiring)
      retire_link(ctx, srv->cfg.limits.common.drain_timeout_ms);
  }
  on_sweep(&srv->sweep);
}

void td_server_free(struct td_server *srv)
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
  free(srv->listener_of);
  free(srv->route);
  free(srv->route_start);
  srv->client_buckets = NULL;
  srv->listener_of = NULL;
  srv->route = NULL;
  srv->route_start = NULL;
  td_table_free(&srv->table);
  td_revoked_free(&srv->revoked);
  tn_tls_config_unref(srv->tls);
  td_config_free(&srv->cfg);
  td_sources_free(&srv->sources);
  tn_ratelog_free(srv->ratelog, uv_now(srv->loop));
  srv->ratelog = NULL;
  if (srv->spare_fd >= 0)
    close(srv->spare_fd);
  srv->spare_fd = -1;
}
