/* gate.c: the links of tunneld's two TLS ports and what admits them: handshake limits, per-source bounds, descriptors. */
#include "gate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "allow.h"
#include "server.h"
#include "tunnel/log.h"

#define FD_EXHAUSTED_LOG_INTERVAL_MS 60000u

/* ---- the list of live links ---- */

void td_gate_forget(struct td_link_ctx *ctx)
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

struct td_link_ctx *td_gate_next(const struct td_server *srv, const struct td_link_ctx *ctx)
{
  return ctx == NULL ? srv->links : ctx->next;
}

/* Close callback of a handle that was malloc'd on its own. */
static void on_lone_handle_closed(uv_handle_t *h)
{
  free(h);
}

/* Accepts and drops a connection we will not serve, so the kernel's queue does not fill. */
void td_gate_drop(uv_stream_t *server)
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

void td_gate_probe_descriptors(struct td_server *srv)
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
bool td_gate_shed_on_emfile(struct td_server *srv, uv_stream_t *server, int status)
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
 */
bool td_gate_evict_handshake(struct td_server *srv, bool management_only)
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

static void pending_add(struct td_server *srv, struct td_link_ctx *ctx, enum td_count kind)
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

void td_gate_pending_done(struct td_server *srv, struct td_link_ctx *ctx)
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

void td_gate_add(struct td_server *srv, struct td_link_ctx *ctx, enum td_count kind)
{
  ctx->next = srv->links;
  if (srv->links != NULL)
    srv->links->prev = ctx;
  srv->links = ctx;
  pending_add(srv, ctx, kind);
}
