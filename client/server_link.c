/* server_link.c: one tunneld server's link on libuv: connect, back off, carry streams to backends, rotate, drain. */
#include "server_link.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "client.h"
#include "tunnel/control.h"
#include "tunnel/error.h"
#include "tunnel/log.h"
#include "tunnel/pipe.h"
#include "tunnel/ratelog.h"

/* One conversation: the pipe plus what is needed to dial its backend by name. */
struct tc_conv {
  struct tc_server *server;
  tn_pipe *pipe;                 /* NULL once the conversation ended while a lookup was running */
  uint32_t id;
  bool resolving;
  uv_getaddrinfo_t resolve_req;
  char target[TC_CONFIG_HOST_MAX + 16];
  char identity[TN_TLS_CN_MAX + sizeof(((struct tc_server *)0)->tag)]; /* "ID (server H:P)" for lines after the link */
};

static void server_connect_next(struct tc_server *s);
static void server_schedule_retry(struct tc_server *s, const char *reason);
static void server_resolve(struct tc_server *s);
static void server_maybe_release(struct tc_server *s);

/* "home1" or "home1 (server a.example:9056)": every line about this link starts "client <this>:". */
#define ID(s) (s)->client->identity, (s)->tag

static void link_options(const struct tc_server *s, struct tn_link_options *opt)
{
  tn_link_options_default(opt);
  opt->tls = s->client->tls;
  opt->server_name = s->target.server_name;
  tn_limits_link_options(&s->client->cfg.limits.common, opt);
}

/* ---- conversations ---- */

static void conv_free_if_done(struct tc_conv *v)
{
  if (v->pipe == NULL && !v->resolving)
    free(v);
}

/*
 * A visitor decides how often its stream ends abnormally (2,000 resets are 2,000 ends), so these lines go through
 * the rate limiter per kind and backend: the first at once, then a count. Summaries due are written as later
 * streams close and at exit (tunnelc has no timer of its own for them).
 */
static void conv_log_ended(struct tc_server *s, const struct tc_conv *v, const struct tn_pipe_result *r)
{
  struct tc_client *c = s->client;
  uint64_t now = uv_now(c->loop);
  const char *target = v->target[0] ? v->target : "-";

  tn_ratelog_event(c->ratelog, now, TC_RATELOG_INTERVAL_MS, r->backend_failed ? TN_LOG_WARN : TN_LOG_INFO,
                   r->backend_failed ? "client: backend failed" : "client: streams ended", target,
                   "client %s%s: stream %u to %s ended: %s", ID(s), v->id, target, r->reason);
  tn_ratelog_flush(c->ratelog, now);
}

static void conv_on_close(tn_pipe *p, const struct tn_pipe_result *r)
{
  struct tc_conv *v = tn_pipe_data(p);
  struct tc_server *s = v->server;

  s->open_streams--;
  if (r->normal)
    tn_log_debug("client %s%s: stream %u to %s closed (%llu bytes in, %llu out)", ID(s), v->id, v->target,
                 (unsigned long long)r->bytes_to_socket, (unsigned long long)r->bytes_to_stream);
  else
    conv_log_ended(s, v, r);
  v->pipe = NULL;
  conv_free_if_done(v);
  if (s->state == TC_SERVER_STOPPING && s->open_streams == 0) {
    if (s->old_link != NULL)
      tn_link_close(s->old_link, "stopped");
    if (s->link != NULL)
      tn_link_close(s->link, "stopped");
  }
  server_maybe_release(s);
}

static void conv_dial(struct tc_conv *v, const struct sockaddr *addr, const struct sockaddr *fallback)
{
  tn_pipe_connect(v->pipe, addr, fallback, v->server->client->cfg.limits.dial_timeout_ms);
}

/* An IP literal as a socket address; false when it is not one. */
static bool ip_sockaddr(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
  memset(ss, 0, sizeof(*ss));
  return uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 || uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0;
}

static void on_backend_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
  struct tc_conv *v = req->data;

  v->resolving = false;
  if (v->pipe == NULL) {
    /* The server may be gone by now (removed by a reload): only v is touched. */
    uv_freeaddrinfo(res);
    conv_free_if_done(v);
    return;
  }
  if (status < 0 || res == NULL) {
    tn_log_warn("client %s: stream %u: cannot resolve backend %s: %s", v->identity, v->id, v->target,
                uv_strerror(status));
    tn_pipe_abort(v->pipe, "backend name did not resolve");
  } else {
    /* A name like "localhost" may give ::1 and 127.0.0.1: a refusal on the first tries the second. */
    conv_dial(v, res->ai_addr, res->ai_next != NULL ? res->ai_next->ai_addr : NULL);
  }
  uv_freeaddrinfo(res);
}

static void conv_on_open_header(tn_pipe *p, const struct tn_open *hdr)
{
  struct tc_conv *v = tn_pipe_data(p);
  struct tc_server *s = v->server;
  struct tc_client *c = s->client;
  struct tc_backends_target t;
  char reason[TC_BACKENDS_REASON_MAX];
  char peer[TN_ADDR_STRLEN];
  struct sockaddr_storage ss;

  tn_addr_format(&hdr->peer, peer, sizeof(peer));
  if (tc_backends_resolve(&c->cfg, hdr, &t, reason, sizeof(reason)) != 0) {
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)hdr->listener.port);
    tn_ratelog_event(c->ratelog, uv_now(c->loop), TC_RATELOG_INTERVAL_MS, TN_LOG_WARN, "client: refused streams", port,
                     "client %s%s: refused stream %u from %s: %s", ID(s), v->id, peer, reason);
    tn_pipe_abort(p, "backend not allowed");
    return;
  }
  tc_backends_format(&t, v->target, sizeof(v->target));
  tn_log_debug("client %s%s: stream %u from %s (listener port %u%s%s) -> %s", ID(s), v->id, peer,
               (unsigned)hdr->listener.port, hdr->authority[0] != '\0' ? ", host " : "", hdr->authority, v->target);
  if (t.host_is_ip) {
    struct sockaddr_storage fb;
    bool has_fb = t.fallback_host[0] != '\0' && ip_sockaddr(t.fallback_host, t.port, &fb);
    if (!ip_sockaddr(t.host, t.port, &ss)) {
      tn_pipe_abort(p, "bad backend address");
      return;
    }
    conv_dial(v, (const struct sockaddr *)&ss, has_fb ? (const struct sockaddr *)&fb : NULL);
    return;
  }
  {
    struct addrinfo hints;
    char port[8];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%u", (unsigned)t.port);
    v->resolve_req.data = v;
    if (uv_getaddrinfo(c->loop, &v->resolve_req, on_backend_resolved, t.host, port, &hints) != 0) {
      tn_pipe_abort(p, "backend name lookup failed");
      return;
    }
    v->resolving = true;
  }
}

static const struct tn_pipe_callbacks conv_callbacks = { .on_open_header = conv_on_open_header, .on_close = conv_on_close };

static struct tn_pipe *link_on_stream_open(tn_link *l, uint32_t id)
{
  struct tc_server *s = tn_link_data(l);
  struct tn_pipe_options pipe_opt;
  struct tc_conv *v;

  if (s->state == TC_SERVER_STOPPING)
    return NULL;
  v = calloc(1, sizeof(*v));
  if (v == NULL)
    return NULL;
  v->server = s;
  v->id = id;
  snprintf(v->identity, sizeof(v->identity), "%s%s", ID(s));
  tn_limits_pipe_options(&s->client->cfg.limits.common, &pipe_opt);
  v->pipe = tn_pipe_new_incoming(l, id, &pipe_opt, &conv_callbacks, v);
  if (v->pipe == NULL) {
    free(v);
    return NULL;
  }
  s->open_streams++;
  return v->pipe;
}

/* ---- the link ---- */

/*
 * Tells tunneld which backends this client serves, so it can show a tunnel that would be refused here
 * (docs/PROTOCOL.md 8a). Sent when the link comes up and after each reload.
 */
static void announce_allow_list(struct tc_server *s, tn_link *l)
{
  const struct tc_config *cfg = &s->client->cfg;
  const char **names;
  uint8_t *buf;
  size_t n;
  int rc;

  if (cfg->n_allowed_ports > TN_CTL_MAX_PORTS || cfg->n_services > TN_CTL_MAX_NAMES) {
    tn_log_warn("client %s%s: %zu allowed ports and %zu services are more than tunneld can be told (at most %u and "
                "%u); it shows this client's allow-list as unknown", ID(s), cfg->n_allowed_ports, cfg->n_services,
                TN_CTL_MAX_PORTS, TN_CTL_MAX_NAMES);
    return;
  }
  names = calloc(cfg->n_services ? cfg->n_services : 1, sizeof(*names));
  buf = malloc(TN_CTL_MAX_LEN);
  if (names == NULL || buf == NULL) {
    free(names);
    free(buf);
    return;
  }
  for (size_t i = 0; i < cfg->n_services; i++)
    names[i] = cfg->services[i].name;
  n = tn_ctl_allow_encode(cfg->allowed_ports, cfg->n_allowed_ports, names, cfg->n_services, buf, TN_CTL_MAX_LEN);
  rc = n > 0 ? tn_link_send_message(l, buf, n) : TN_ERR_INVALID;
  if (rc != TN_OK)
    tn_log_warn("client %s%s: could not announce the allow-list to tunneld: %s", ID(s), tn_strerror(rc));
  else
    tn_log_debug("client %s%s: announced %zu allowed ports and %zu services", ID(s), cfg->n_allowed_ports,
                 cfg->n_services);
  free(names);
  free(buf);
}

static void reconnect_now(struct tc_server *s, const char *why);

/* The rotation message was answered: with FIN, the new link may come up beside this one; with RST, reconnect. */
static void rotation_answered(struct tc_server *s, tn_link *l, int accepted)
{
  if (!accepted) {
    tn_log_info("client %s%s: tunneld did not take the rotation announcement (an older version); reconnecting with "
                "the new certificate", ID(s));
    reconnect_now(s, "configuration changed");
    return;
  }
  tn_log_info("client %s%s: tunneld took the rotation announcement; connecting with the new certificate while the "
              "link from %s keeps serving", ID(s), tn_link_peer_address(l));
  s->old_link = l;
  s->link = NULL;
  tc_backoff_reset(&s->backoff);
  server_resolve(s);
}

static void link_on_message_done(tn_link *l, const uint8_t *msg, size_t len, int accepted)
{
  struct tc_server *s = tn_link_data(l);
  uint8_t version = 0, type = 0;
  uint32_t total = 0;

  /* A link that is closing reports every message as not taken; its close is handled by link_on_closed. */
  if (tn_link_is_closing(l) || s->link != l || s->state != TC_SERVER_UP)
    return;
  if (tn_ctl_peek(msg, len, &version, &type, &total) == TN_OK && type == TN_CTL_ROTATE) {
    rotation_answered(s, l, accepted);
    return;
  }
  /* A tunneld older than the allow-list message refuses its stream; everything else works as before. */
  if (!accepted)
    tn_log_info("client %s%s: tunneld did not take the allow-list announcement (an older version); it cannot show "
                "tunnels this client would refuse", ID(s));
}

static void link_on_established(tn_link *l, const struct tn_tls_peer *peer)
{
  struct tc_server *s = tn_link_data(l);
  uint64_t now = uv_now(s->client->loop);

  s->state = TC_SERVER_UP;
  tc_backoff_link_up(&s->backoff, now);
  if (s->attempts_since_up > 0 && s->down_since_ms > 0)
    tn_log_info("client %s%s: connected to %s (server certificate CN %s) over %s after %llu ms down, %u attempts",
                ID(s), tn_link_peer_address(l), peer->cn, tn_tls_version(tn_link_tls(l)),
                (unsigned long long)(now - s->down_since_ms), s->attempts_since_up);
  else
    tn_log_info("client %s%s: connected to %s (server certificate CN %s) over %s", ID(s), tn_link_peer_address(l),
                peer->cn, tn_tls_version(tn_link_tls(l)));
  s->attempts_since_up = 0;
  s->down_since_ms = 0;  /* the next "ms down" counts from the next real loss, not from this one */
  s->last_failure[0] = '\0';
  if (s->addrs != NULL) {
    uv_freeaddrinfo(s->addrs);
    s->addrs = s->next_addr = NULL;
  }
  tc_client_server_changed(s->client);
  announce_allow_list(s, l);
}

static void link_on_go_away(tn_link *l, uint32_t code)
{
  struct tc_server *s = tn_link_data(l);

  if (l == s->old_link) {
    tn_log_info("client %s%s: tunneld moved new connections to the new link; the old link from %s drains (GoAway "
                "code %u) and closes once its streams have ended", ID(s), tn_link_peer_address(l), code);
    tn_link_go_away(l);
    return;
  }
  tn_log_info("client %s%s: server %s is going away (code %u); reconnecting once its open streams have ended",
              ID(s), tn_link_peer_address(l), code);
  /* GoAway only stops new streams: the server lets open ones drain (SIGTERM, replaced link), so they are
   * finished here too; on_drained closes the link, then the usual reconnect follows. */
  tn_link_go_away(l);
}

static void link_on_drained(tn_link *l)
{
  tn_link_close(l, "drained");
}

static void server_finish_stop(struct tc_server *s)
{
  if (s->state == TC_SERVER_STOPPED)
    return;
  s->state = TC_SERVER_STOPPED;
  uv_timer_stop(&s->retry_timer);
  uv_timer_stop(&s->drain_timer);
  tc_client_server_stopped(s->client, s);
  server_maybe_release(s);
}

static void link_on_closed(tn_link *l, const char *reason)
{
  struct tc_server *s = tn_link_data(l);
  bool was_up = s->state == TC_SERVER_UP;

  if (l == s->old_link) {
    s->old_link = NULL;
    tn_log_info("client %s%s: old link from %s closed after the certificate rotation: %s", ID(s),
                tn_link_peer_address(l), reason);
    if (s->link == NULL && s->down_since_ms == 0)
      s->down_since_ms = uv_now(s->client->loop);  /* no link carries traffic any more: down from now */
    if (s->state == TC_SERVER_STOPPING && s->link == NULL)
      server_finish_stop(s);
    return;
  }
  s->link = NULL;
  if (s->state == TC_SERVER_STOPPING || s->state == TC_SERVER_STOPPED) {
    tn_log_info("client %s%s: link closed: %s", ID(s), reason);
    if (s->old_link == NULL)
      server_finish_stop(s);
    return;
  }
  if (was_up) {
    tn_log_warn("client %s%s: disconnected from %s: %s", ID(s), tn_link_peer_address(l), reason);
    s->down_since_ms = uv_now(s->client->loop);
    tc_client_server_changed(s->client);
    server_schedule_retry(s, reason);
    return;
  }
  /* An attempt failed: try the name's next address before backing off. */
  tn_log_debug("client %s%s: attempt to %s failed: %s", ID(s), tn_link_peer_address(l), reason);
  if (s->next_addr != NULL) {
    server_connect_next(s);
    return;
  }
  server_schedule_retry(s, reason);
}

static const struct tn_link_callbacks server_link_callbacks = {
  .on_established = link_on_established,
  .on_stream_open = link_on_stream_open,
  .on_go_away = link_on_go_away,
  .on_drained = link_on_drained,
  .on_message_done = link_on_message_done,
  .on_closed = link_on_closed,
};

static void server_connect_next(struct tc_server *s)
{
  struct tn_link_options opt;
  struct addrinfo *ai = s->next_addr;

  s->next_addr = ai->ai_next;
  s->state = TC_SERVER_CONNECTING;
  link_options(s, &opt);
  if (tn_link_connect(&s->link, s->client->loop, ai->ai_addr, &opt, &server_link_callbacks, s) != 0)
    server_schedule_retry(s, "out of memory");
}

static void on_server_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
  struct tc_server *s = req->data;
  char reason[TC_CONFIG_HOST_MAX + 64];

  if (s->state != TC_SERVER_RESOLVING) {
    uv_freeaddrinfo(res);
    if (s->state == TC_SERVER_STOPPING && s->old_link == NULL && s->link == NULL)
      server_finish_stop(s);
    return;
  }
  if (status < 0 || res == NULL) {
    snprintf(reason, sizeof(reason), "cannot resolve %s: %s", s->target.host, uv_strerror(status));
    server_schedule_retry(s, reason);
    return;
  }
  s->addrs = s->next_addr = res;
  server_connect_next(s);
}

/* DNS is asked afresh on every attempt, so a server that moved is found again. */
static void server_resolve(struct tc_server *s)
{
  struct addrinfo hints;
  char port[8];

  if (s->addrs != NULL) {
    uv_freeaddrinfo(s->addrs);
    s->addrs = s->next_addr = NULL;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(port, sizeof(port), "%u", (unsigned)s->target.port);
  s->state = TC_SERVER_RESOLVING;
  s->attempts_since_up++;
  s->resolve_req.data = s;
  if (uv_getaddrinfo(s->client->loop, &s->resolve_req, on_server_resolved, s->target.host, port, &hints) != 0)
    server_schedule_retry(s, "name lookup could not start");
}

static void on_retry_timer(uv_timer_t *t)
{
  struct tc_server *s = t->data;

  if (s->state == TC_SERVER_WAITING)
    server_resolve(s);
}

static void server_schedule_retry(struct tc_server *s, const char *reason)
{
  /* random() gives 31 bits; the backoff maps a full 32-bit draw, else the jitter would only ever shorten. */
  uint32_t draw = ((uint32_t)random() << 16) ^ (uint32_t)random();
  uint32_t delay = tc_backoff_link_down(&s->backoff, uv_now(s->client->loop), draw);
  bool v6 = strchr(s->target.host, ':') != NULL;

  if (s->addrs != NULL) {
    uv_freeaddrinfo(s->addrs);
    s->addrs = s->next_addr = NULL;
  }
  /* While a rotation's old link still serves, a failed attempt of the new one is no time down. */
  if (s->down_since_ms == 0 && s->old_link == NULL)
    s->down_since_ms = uv_now(s->client->loop);
  /* One line per change of reason, not one per retry. */
  if (strncmp(s->last_failure, reason, 127) != 0) {
    tn_log_warn("client %s%s: cannot connect to %s%s%s:%u: %s; retrying with backoff (next in %u ms)", ID(s),
                v6 && s->tag[0] ? "[" : "", s->target.host, v6 && s->tag[0] ? "]" : "", (unsigned)s->target.port,
                reason, delay);
    snprintf(s->last_failure, 128, "%s", reason);
  } else {
    tn_log_debug("client %s%s: still failing (%u attempts): %s; next in %u ms", ID(s), s->attempts_since_up, reason,
                 delay);
  }
  s->state = TC_SERVER_WAITING;
  s->failed_once = true;
  tc_client_server_changed(s->client);
  uv_timer_start(&s->retry_timer, on_retry_timer, delay, 0);
}

static void server_set_tag(struct tc_server *s, bool listed)
{
  bool v6 = strchr(s->target.host, ':') != NULL;

  if (!listed)
    s->tag[0] = '\0';
  else
    snprintf(s->tag, sizeof(s->tag), " (server %s%s%s:%u)", v6 ? "[" : "", s->target.host, v6 ? "]" : "",
             (unsigned)s->target.port);
}

int tc_server_retarget(struct tc_server *s, const struct tc_config_server *target, bool listed)
{
  char *host = strdup(target->host), *name = strdup(target->server_name);

  if (host == NULL || name == NULL) {
    free(host);
    free(name);
    return TN_ERR_NOMEM;
  }
  free(s->target.host);
  free(s->target.server_name);
  s->target.host = host;
  s->target.server_name = name;
  s->target.port = target->port;
  server_set_tag(s, listed);
  return TN_OK;
}

struct tc_server *tc_server_new(struct tc_client *c, const struct tc_config_server *target, bool listed)
{
  struct tc_server *s = calloc(1, sizeof(*s));

  if (s == NULL)
    return NULL;
  s->client = c;
  if (tc_server_retarget(s, target, listed) != TN_OK) {
    free(s);
    return NULL;
  }
  tc_backoff_init(&s->backoff, c->cfg.limits.reconnect_min_ms, c->cfg.limits.reconnect_max_ms,
                  c->cfg.limits.reconnect_jitter_percent, c->cfg.limits.reconnect_reset_after_ms);
  uv_timer_init(c->loop, &s->retry_timer);
  uv_timer_init(c->loop, &s->drain_timer);
  s->retry_timer.data = s->drain_timer.data = s;
  s->state = TC_SERVER_WAITING;
  return s;
}

void tc_server_start(struct tc_server *s)
{
  server_resolve(s);
}

bool tc_server_is_up(const struct tc_server *s)
{
  return s->state == TC_SERVER_UP && !s->removed;
}

/* ---- stop, removal ---- */

static void on_drain_timeout(uv_timer_t *t)
{
  struct tc_server *s = t->data;

  if (s->link != NULL || s->old_link != NULL) {
    tn_log_warn("client %s%s: drain timeout: resetting %zu open streams", ID(s), s->open_streams);
    if (s->old_link != NULL)
      tn_link_close(s->old_link, "drain timeout");
    if (s->link != NULL)
      tn_link_close(s->link, "drain timeout");
  } else {
    server_finish_stop(s);
  }
}

bool tc_server_cut_drain(struct tc_server *s)
{
  if (s->state != TC_SERVER_STOPPING || !uv_is_active((uv_handle_t *)&s->drain_timer))
    return false;
  uv_timer_start(&s->drain_timer, on_drain_timeout, 0, 0);
  return true;
}

void tc_server_stop(struct tc_server *s)
{
  uint32_t drain_ms = s->client->cfg.limits.common.drain_timeout_ms;

  if (s->state == TC_SERVER_STOPPED || s->state == TC_SERVER_STOPPING)
    return;
  uv_timer_stop(&s->retry_timer);
  if (s->old_link != NULL) {
    /* Mid-rotation: the old link still carries streams; it drains like the current one. */
    uv_timer_start(&s->drain_timer, on_drain_timeout, drain_ms, 0);
    tn_link_go_away(s->old_link);
  }
  if (s->state == TC_SERVER_RESOLVING) {
    s->state = TC_SERVER_STOPPING;  /* the lookup's callback finishes the stop */
    uv_cancel((uv_req_t *)&s->resolve_req);
    return;
  }
  s->state = TC_SERVER_STOPPING;
  if (s->link == NULL) {
    if (s->old_link == NULL)
      server_finish_stop(s);
    return;
  }
  if (!tn_link_is_established(s->link) || s->open_streams == 0) {
    tn_link_close(s->link, "stopped");
    return;
  }
  tn_link_go_away(s->link);
  uv_timer_start(&s->drain_timer, on_drain_timeout, drain_ms, 0);
}

static void on_released(uv_handle_t *h)
{
  struct tc_server *s = h->data;

  if (--s->handles_closing > 0)
    return;
  tc_client_forget(s->client, s);
  tc_server_free(s);
}

/* A removed server goes once no link, lookup or stream can call back into it. */
static void server_maybe_release(struct tc_server *s)
{
  if (!s->removed || s->state != TC_SERVER_STOPPED || s->open_streams > 0 || s->handles_closing > 0)
    return;
  if (uv_is_closing((uv_handle_t *)&s->retry_timer))
    return;  /* the program is closing every handle; tc_client_free frees it */
  tn_log_info("client %s%s: removed server's link is closed", ID(s));
  s->handles_closing = 2;
  uv_close((uv_handle_t *)&s->retry_timer, on_released);
  uv_close((uv_handle_t *)&s->drain_timer, on_released);
}

void tc_server_remove(struct tc_server *s)
{
  tn_log_info("client %s%s: server removed from the configuration; %s", ID(s),
              s->open_streams > 0 ? "its open streams finish first" : "closing its link");
  s->removed = true;
  tc_server_stop(s);
  server_maybe_release(s);
}

/* ---- reload ---- */

/* Closes the link (GoAway first, so tunneld lets go of it at once) and connects again without the backoff. */
static void reconnect_now(struct tc_server *s, const char *why)
{
  if (s->link != NULL)
    tn_link_close(s->link, why);
  if (s->state == TC_SERVER_WAITING) {
    uv_timer_stop(&s->retry_timer);
    tc_backoff_reset(&s->backoff);
    server_resolve(s);
  }
}

/*
 * A new certificate for a link that is up: the link announces it (docs/PROTOCOL.md 8a) and, once tunneld has
 * taken that, the new link connects beside it; tunneld then moves new connections to the new link and sends the
 * old one GoAway, and its streams finish there. Returns false when it cannot start (then reconnect).
 */
static bool rotation_start(struct tc_server *s)
{
  uint8_t sha[32], msg[TN_CTL_ROTATE_LEN];

  if (s->state != TC_SERVER_UP || s->link == NULL || s->old_link != NULL || !tn_link_is_established(s->link) ||
      tn_mux_is_going_away(tn_link_mux(s->link)))
    return false;
  for (int i = 0; i < 32; i++) {
    unsigned v;
    if (sscanf(s->client->cert_sha256 + 2 * i, "%2x", &v) != 1)
      return false;
    sha[i] = (uint8_t)v;
  }
  tn_ctl_rotate_encode(sha, msg, sizeof(msg));
  return tn_link_send_message(s->link, msg, sizeof(msg)) == TN_OK;
}

bool tc_server_untrusted(struct tc_server *s)
{
  char err[512];

  if (s->link == NULL || !tn_link_is_established(s->link) ||
      tn_tls_recheck(tn_link_tls(s->link), s->client->tls, err, sizeof(err)) != TN_ERR_INVALID)
    return false;
  tn_log_warn("client %s%s: the connected server is no longer trusted: %s", ID(s), err);
  return true;
}

void tc_server_reloaded(struct tc_server *s, bool reconnect, bool server_changed, bool untrusted)
{
  if (!reconnect && s->state == TC_SERVER_UP && s->link != NULL)
    announce_allow_list(s, s->link);
  if (!reconnect || s->state == TC_SERVER_STOPPING || s->state == TC_SERVER_STOPPED)
    return;
  if (!server_changed && !untrusted && rotation_start(s))
    return;  /* rotation_answered goes on */
  reconnect_now(s, "configuration changed");
}

void tc_server_free(struct tc_server *s)
{
  if (s->addrs != NULL)
    uv_freeaddrinfo(s->addrs);
  free(s->target.host);
  free(s->target.server_name);
  free(s);
}
