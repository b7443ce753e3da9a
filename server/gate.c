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
#include "mgmt.h"
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
 * Which handshake makes room, among those a filter admits: the one that has gone longest without progress, judged
 * in three ranks, each emptied before the next:
 *  0. silent for HANDSHAKE_STALL_MS: no whole ClientHello read or waiting in the kernel that long after the accept,
 *     oldest first. It has cost its peer nothing.
 *  1. stalled: no progress for HANDSHAKE_STALL_MS, or silent for less, the one whose last progress is oldest first.
 *     Progress is the accept, then each whole flight of the peer's that the server answered (its ClientHello, ...),
 *     so a peer that sends a ClientHello and nothing after the answer falls behind every newer handshake however
 *     often it is replaced, and a genuine client whose ClientHello is still on its way counts from its accept. A
 *     whole record waiting unread in the kernel counts as progress now: a busy loop that has not read a flight yet
 *     must not judge its sender stalled, as libuv accepts a whole backlog before it reads anything.
 *  2. progressing: a flight answered (or a ClientHello waiting whole) within HANDSHAKE_STALL_MS, least recent first.
 *     A real handshake is one round trip from done and spends that round trip here.
 * Equal progress times go to the silent one, then to the older accept. The rank is a property of each handshake,
 * measured on the server's clock, never of who answers first: no peer can make another's handshake look older.
 */
#define HANDSHAKE_STALL_MS 500u

struct victim_filter {
  const char *source_key;          /* NULL: any source */
  int kind;                        /* -1: any port; else an enum td_count */
  bool management_only;
  const struct td_link_ctx *spare; /* never chosen: the newcomer being judged */
};

struct victim_rank {
  int rank;
  uint64_t t;
  bool silent;
};

static struct victim_rank rank_of(const struct td_link_ctx *c, uint64_t now)
{
  struct victim_rank r = { 1, c->pending_since, false };
  uint64_t quiet;

  if (!tn_link_hello_answered(c->link))
    r.silent = !tn_link_hello_waiting(c->link);
  else if (tn_link_hello_waiting(c->link))
    r.t = now;  /* its next flight waits whole in the kernel: progress, whether or not the loop has read it yet */
  else
    r.t = tn_link_hello_progress_ms(c->link);
  quiet = now > r.t ? now - r.t : 0;
  if (r.silent && quiet >= HANDSHAKE_STALL_MS)
    r.rank = 0;
  else if (!r.silent && quiet < HANDSHAKE_STALL_MS)
    r.rank = 2;
  return r;
}

static bool victim_before(const struct victim_rank *a, const struct victim_rank *b)
{
  if (a->rank != b->rank)
    return a->rank < b->rank;
  if (a->t != b->t)
    return a->t < b->t;
  return a->silent && !b->silent;  /* still equal: the one met first, the older accept, stays chosen */
}

static struct td_link_ctx *least_progress(struct td_server *srv, const struct victim_filter *f)
{
  uint64_t now = uv_now(srv->loop);
  struct td_link_ctx *c, *best = NULL;
  struct victim_rank best_rank = { 0, 0, false };

  for (c = srv->pending_oldest; c != NULL; c = c->pending_next) {
    struct victim_rank r;
    if (c == f->spare || tn_link_is_closing(c->link) || (f->management_only && !c->management) ||
        (f->kind >= 0 && (int)c->pending_kind != f->kind) ||
        (f->source_key != NULL && strcmp(c->source_key, f->source_key) != 0))
      continue;
    r = rank_of(c, now);
    if (best == NULL || victim_before(&r, &best_rank)) {
      best = c;
      best_rank = r;
    }
  }
  return best;
}

/* Closes the management session without an admin certificate that was opened first; false if there is none. */
static bool evict_non_admin(struct td_server *srv)
{
  struct td_link_ctx *ctx, *oldest = NULL;

  for (ctx = srv->links; ctx != NULL; ctx = ctx->next)
    if (ctx->management && ctx->handshake_done && !td_mgmt_conn_is_admin(ctx->mgmt) && !tn_link_is_closing(ctx->link))
      oldest = ctx;  /* links are added at the head: the last match is the oldest */
  if (oldest == NULL)
    return false;
  srv->metrics.handshakes_refused_limit++;
  tn_link_close(oldest->link, "evicted: ApiMaxConnections reached and it is not an admin");
  return true;
}

static bool evict_handshake(struct td_server *srv, bool management_only)
{
  struct victim_filter f = { NULL, -1, management_only, NULL };
  struct td_link_ctx *victim = least_progress(srv, &f);

  if (victim == NULL)
    return false;
  srv->metrics.handshakes_refused_limit++;
  tn_link_close(victim->link, "TLS handshake evicted: too many in progress");
  return true;
}

/*
 * Room for one more connection on a port, made the same way on both: at a port's cap (ApiMaxConnections) the
 * management handshake with the least progress goes, else the oldest session without an admin certificate; at
 * MaxPendingHandshakes the handshake with the least progress on either port. An established session of a client or
 * an admin is never closed for a handshake.
 */
bool td_gate_admit(struct td_server *srv, uv_stream_t *listener, enum td_count kind)
{
  const struct td_limits *lim = &srv->cfg.limits;
  bool management = kind == TD_COUNT_MGMT_PENDING;

  if (!srv->stopping && management && srv->mgmt_connections >= lim->api_max_connections && !evict_handshake(srv, true))
    evict_non_admin(srv);
  if (!srv->stopping && srv->pending_handshakes >= lim->max_pending_handshakes)
    evict_handshake(srv, false);
  if (srv->stopping || srv->pending_handshakes >= lim->max_pending_handshakes ||
      (management && srv->mgmt_connections >= lim->api_max_connections)) {
    srv->metrics.handshakes_refused_limit++;
    td_gate_drop(listener);
    return false;
  }
  return true;
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
    /*
     * The newcomer has just made progress (its accept), so one of the source's others goes; the newcomer itself
     * only if every other is already closing, which keeps the bound strict.
     */
    struct victim_filter f = { ctx->source_key, (int)kind, false, ctx };
    struct td_link_ctx *victim = least_progress(srv, &f);
    srv->metrics.handshakes_refused_limit++;
    tn_link_close(victim != NULL ? victim->link : ctx->link,
                  "TLS handshake evicted: MaxPendingHandshakesPerSource reached for its source");
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
