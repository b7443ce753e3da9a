/* client.c: tunnelc's link keeper and backend dialer on libuv. */
#include "client.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "tunnel/control.h"
#include "tunnel/notify.h"
#include "tunnel/error.h"
#include "tunnel/log.h"
#include "tunnel/pipe.h"

/* One conversation: the pipe plus what is needed to dial its backend by name. */
struct tc_conv {
  struct tc_client *client;
  tn_pipe *pipe;                 /* NULL once the conversation ended while a lookup was running */
  uint32_t id;
  bool resolving;
  uv_getaddrinfo_t resolve_req;
  char target[TC_CONFIG_HOST_MAX + 16];
};

static void client_connect_next(struct tc_client *c);
static void client_schedule_retry(struct tc_client *c, const char *reason);
static void client_resolve(struct tc_client *c);

/* ---- configuration ---- */

static int load_tls(const struct tc_config *cfg, tn_tls_config **tls, char *identity, char *sha256, char *err,
                    size_t errlen)
{
  struct tn_tls_peer own;
  char why[256];

  if (tn_tls_config_new(tls, TN_TLS_CLIENT, cfg->ca_file, cfg->cert_file, cfg->key_file, err, errlen) != TN_OK)
    return -1;
  if (cfg->crl_file != NULL && tn_tls_config_set_crl(*tls, cfg->crl_file, why, sizeof(why)) != TN_OK) {
    snprintf(err, errlen, "%s: \"CrlFile\": %s", cfg->path, why);
    goto fail;
  }
  if (tn_tls_config_identity(*tls, &own) != TN_OK) {
    snprintf(err, errlen, "%s: cannot read the certificate's identity", cfg->cert_file);
    goto fail;
  }
  /* tunneld would refuse it at every handshake; saying so at start is kinder than a retry loop. */
  if (tn_tls_config_identity_check(*tls, why, sizeof(why)) != TN_OK) {
    snprintf(err, errlen, "%s: \"ClientTlsCertificateFile\": %s: %s; tunneld refuses such a certificate", cfg->path,
             cfg->cert_file, why);
    goto fail;
  }
  if (tc_config_check_identity(cfg, own.cn, err, errlen) != 0)
    goto fail;
  memcpy(identity, own.cn, TN_TLS_CN_MAX);
  memcpy(sha256, own.sha256_hex, 65);
  return 0;

fail:
  tn_tls_config_unref(*tls);
  *tls = NULL;
  return -1;
}

int tc_client_init(struct tc_client *c, uv_loop_t *loop, const char *cfg_path, char *err, size_t errlen)
{
  memset(c, 0, sizeof(*c));
  c->loop = loop;
  if (tc_config_load(&c->cfg, cfg_path, err, errlen) != 0)
    return -1;
  if (load_tls(&c->cfg, &c->tls, c->identity, c->cert_sha256, err, errlen) != 0) {
    tc_config_free(&c->cfg);
    return -1;
  }
  {
    /* Jitter only spreads clients cut off together if each process draws its own sequence. */
    unsigned seed;
    if (uv_random(NULL, NULL, &seed, sizeof(seed), 0, NULL) != 0)
      seed = (unsigned)uv_hrtime();
    srandom(seed);
  }
  tc_backoff_init(&c->backoff, c->cfg.limits.reconnect_min_ms, c->cfg.limits.reconnect_max_ms,
                  c->cfg.limits.reconnect_jitter_percent, c->cfg.limits.reconnect_reset_after_ms);
  uv_timer_init(loop, &c->retry_timer);
  uv_timer_init(loop, &c->drain_timer);
  c->retry_timer.data = c->drain_timer.data = c;
  return 0;
}

static void link_options(const struct tc_client *c, struct tn_link_options *opt)
{
  tn_link_options_default(opt);
  opt->tls = c->tls;
  opt->server_name = tc_config_server_name(&c->cfg);
  tn_limits_link_options(&c->cfg.limits.common, opt);
}

/* ---- conversations ---- */

static void conv_free_if_done(struct tc_conv *v)
{
  if (v->pipe == NULL && !v->resolving)
    free(v);
}

static void conv_on_close(tn_pipe *p, const struct tn_pipe_result *r)
{
  struct tc_conv *v = tn_pipe_data(p);
  struct tc_client *c = v->client;

  c->open_streams--;
  if (r->normal)
    tn_log_debug("client %s: stream %u to %s closed (%llu bytes in, %llu out)", c->identity, v->id, v->target,
                 (unsigned long long)r->bytes_to_socket, (unsigned long long)r->bytes_to_stream);
  else
    tn_log(r->backend_failed ? TN_LOG_WARN : TN_LOG_INFO, "client %s: stream %u to %s ended: %s", c->identity, v->id,
           v->target[0] ? v->target : "-", r->reason);
  v->pipe = NULL;
  conv_free_if_done(v);
  if (c->state == TC_CLIENT_STOPPING && c->open_streams == 0) {
    if (c->old_link != NULL)
      tn_link_close(c->old_link, "stopped");
    if (c->link != NULL)
      tn_link_close(c->link, "stopped");
  }
}

static void conv_dial(struct tc_conv *v, const struct sockaddr *addr, const struct sockaddr *fallback)
{
  tn_pipe_connect(v->pipe, addr, fallback, v->client->cfg.limits.dial_timeout_ms);
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
    uv_freeaddrinfo(res);
    conv_free_if_done(v);
    return;
  }
  if (status < 0 || res == NULL) {
    tn_log_warn("client %s: stream %u: cannot resolve backend %s: %s", v->client->identity, v->id, v->target,
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
  struct tc_client *c = v->client;
  struct tc_backends_target t;
  char reason[TC_BACKENDS_REASON_MAX];
  char peer[TN_ADDR_STRLEN];
  struct sockaddr_storage ss;

  tn_addr_format(&hdr->peer, peer, sizeof(peer));
  if (tc_backends_resolve(&c->cfg, hdr, &t, reason, sizeof(reason)) != 0) {
    tn_log_warn("client %s: refused stream %u from %s: %s", c->identity, v->id, peer, reason);
    tn_pipe_abort(p, "backend not allowed");
    return;
  }
  tc_backends_format(&t, v->target, sizeof(v->target));
  tn_log_debug("client %s: stream %u from %s (listener port %u) -> %s", c->identity, v->id, peer,
               (unsigned)hdr->listener.port, v->target);
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
  struct tc_client *c = tn_link_data(l);
  struct tn_pipe_options pipe_opt;
  struct tc_conv *v;

  if (c->state == TC_CLIENT_STOPPING)
    return NULL;
  v = calloc(1, sizeof(*v));
  if (v == NULL)
    return NULL;
  v->client = c;
  v->id = id;
  tn_limits_pipe_options(&c->cfg.limits.common, &pipe_opt);
  v->pipe = tn_pipe_new_incoming(l, id, &pipe_opt, &conv_callbacks, v);
  if (v->pipe == NULL) {
    free(v);
    return NULL;
  }
  c->open_streams++;
  return v->pipe;
}

/* ---- the link ---- */

/*
 * Tells tunneld which backends this client serves, so it can show a tunnel that would be refused here
 * (docs/PROTOCOL.md 8a). Sent when the link comes up and after each reload.
 */
static void announce_allow_list(struct tc_client *c, tn_link *l)
{
  const struct tc_config *cfg = &c->cfg;
  const char **names;
  uint8_t *buf;
  size_t n;
  int rc;

  if (cfg->n_allowed_ports > TN_CTL_MAX_PORTS || cfg->n_services > TN_CTL_MAX_NAMES) {
    tn_log_warn("client %s: %zu allowed ports and %zu services are more than tunneld can be told (at most %u and %u); "
                "it shows this client's allow-list as unknown", c->identity, cfg->n_allowed_ports, cfg->n_services,
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
    tn_log_warn("client %s: could not announce the allow-list to tunneld: %s", c->identity, tn_strerror(rc));
  else
    tn_log_debug("client %s: announced %zu allowed ports and %zu services", c->identity, cfg->n_allowed_ports,
                 cfg->n_services);
  free(names);
  free(buf);
}

static void reconnect_now(struct tc_client *c, const char *why);

/* The rotation message was answered: with FIN, the new link may come up beside this one; with RST, reconnect. */
static void rotation_answered(struct tc_client *c, tn_link *l, int accepted)
{
  if (!accepted) {
    tn_log_info("client %s: tunneld did not take the rotation announcement (an older version); reconnecting with the "
                "new certificate", c->identity);
    reconnect_now(c, "configuration changed");
    return;
  }
  tn_log_info("client %s: tunneld took the rotation announcement; connecting with the new certificate while the link "
              "from %s keeps serving", c->identity, tn_link_peer_address(l));
  c->old_link = l;
  c->link = NULL;
  tc_backoff_reset(&c->backoff);
  client_resolve(c);
}

static void link_on_message_done(tn_link *l, const uint8_t *msg, size_t len, int accepted)
{
  struct tc_client *c = tn_link_data(l);
  uint8_t version = 0, type = 0;
  uint32_t total = 0;

  /* A link that is closing reports every message as not taken; its close is handled by link_on_closed. */
  if (tn_link_is_closing(l) || c->link != l || c->state != TC_CLIENT_UP)
    return;
  if (tn_ctl_peek(msg, len, &version, &type, &total) == TN_OK && type == TN_CTL_ROTATE) {
    rotation_answered(c, l, accepted);
    return;
  }
  /* A tunneld older than the allow-list message refuses its stream; everything else works as before. */
  if (!accepted)
    tn_log_info("client %s: tunneld did not take the allow-list announcement (an older version); it cannot show "
                "tunnels this client would refuse", c->identity);
}

static void link_on_established(tn_link *l, const struct tn_tls_peer *peer)
{
  struct tc_client *c = tn_link_data(l);
  uint64_t now = uv_now(c->loop);

  c->state = TC_CLIENT_UP;
  tc_backoff_link_up(&c->backoff, now);
  if (c->attempts_since_up > 0 && c->down_since_ms > 0)
    tn_log_info("client %s: connected to %s (server certificate CN %s) over %s after %llu ms down, %u attempts",
                c->identity, tn_link_peer_address(l), peer->cn, tn_tls_version(tn_link_tls(l)),
                (unsigned long long)(now - c->down_since_ms), c->attempts_since_up);
  else
    tn_log_info("client %s: connected to %s (server certificate CN %s) over %s", c->identity, tn_link_peer_address(l),
                peer->cn, tn_tls_version(tn_link_tls(l)));
  c->attempts_since_up = 0;
  c->last_failure[0] = '\0';
  if (c->addrs != NULL) {
    uv_freeaddrinfo(c->addrs);
    c->addrs = c->next_addr = NULL;
  }
  if (!c->ready_notified) {
    c->ready_notified = true;
    tn_notify_ready("connected");
  }
  announce_allow_list(c, l);
}

static void link_on_go_away(tn_link *l, uint32_t code)
{
  struct tc_client *c = tn_link_data(l);

  if (l == c->old_link) {
    tn_log_info("client %s: tunneld moved new connections to the new link; the old link from %s drains (GoAway code "
                "%u) and closes once its streams have ended", c->identity, tn_link_peer_address(l), code);
    tn_link_go_away(l);
    return;
  }
  tn_log_info("client %s: server %s is going away (code %u); reconnecting once its open streams have ended",
              c->identity, tn_link_peer_address(l), code);
  /* GoAway only stops new streams: the server lets open ones drain (SIGTERM, replaced link), so they are
   * finished here too; on_drained closes the link, then the usual reconnect follows. */
  tn_link_go_away(l);
}

static void link_on_drained(tn_link *l)
{
  tn_link_close(l, "drained");
}

static void client_finish_stop(struct tc_client *c)
{
  if (c->state == TC_CLIENT_STOPPED)
    return;
  c->state = TC_CLIENT_STOPPED;
  uv_timer_stop(&c->retry_timer);
  uv_timer_stop(&c->drain_timer);
  if (c->on_stopped != NULL)
    c->on_stopped(c);
}

static void link_on_closed(tn_link *l, const char *reason)
{
  struct tc_client *c = tn_link_data(l);
  bool was_up = c->state == TC_CLIENT_UP;

  if (l == c->old_link) {
    c->old_link = NULL;
    tn_log_info("client %s: old link from %s closed after the certificate rotation: %s", c->identity,
                tn_link_peer_address(l), reason);
    if (c->state == TC_CLIENT_STOPPING && c->link == NULL)
      client_finish_stop(c);
    return;
  }
  c->link = NULL;
  if (c->state == TC_CLIENT_STOPPING || c->state == TC_CLIENT_STOPPED) {
    tn_log_info("client %s: link closed: %s", c->identity, reason);
    if (c->old_link == NULL)
      client_finish_stop(c);
    return;
  }
  if (was_up) {
    tn_log_warn("client %s: disconnected from %s: %s", c->identity, tn_link_peer_address(l), reason);
    c->down_since_ms = uv_now(c->loop);
    client_schedule_retry(c, reason);
    return;
  }
  /* An attempt failed: try the name's next address before backing off. */
  tn_log_debug("client %s: attempt to %s failed: %s", c->identity, tn_link_peer_address(l), reason);
  if (c->next_addr != NULL) {
    client_connect_next(c);
    return;
  }
  client_schedule_retry(c, reason);
}

static const struct tn_link_callbacks client_link_callbacks = {
  .on_established = link_on_established,
  .on_stream_open = link_on_stream_open,
  .on_go_away = link_on_go_away,
  .on_drained = link_on_drained,
  .on_message_done = link_on_message_done,
  .on_closed = link_on_closed,
};

static void client_connect_next(struct tc_client *c)
{
  struct tn_link_options opt;
  struct addrinfo *ai = c->next_addr;

  c->next_addr = ai->ai_next;
  c->state = TC_CLIENT_CONNECTING;
  link_options(c, &opt);
  if (tn_link_connect(&c->link, c->loop, ai->ai_addr, &opt, &client_link_callbacks, c) != 0)
    client_schedule_retry(c, "out of memory");
}

static void on_server_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
  struct tc_client *c = req->data;
  char reason[160];

  if (c->state != TC_CLIENT_RESOLVING) {
    uv_freeaddrinfo(res);
    if (c->state == TC_CLIENT_STOPPING && c->old_link == NULL)
      client_finish_stop(c);
    return;
  }
  if (status < 0 || res == NULL) {
    snprintf(reason, sizeof(reason), "cannot resolve %s: %s", c->cfg.server_host, uv_strerror(status));
    client_schedule_retry(c, reason);
    return;
  }
  c->addrs = c->next_addr = res;
  client_connect_next(c);
}

/* DNS is asked afresh on every attempt, so a server that moved is found again. */
static void client_resolve(struct tc_client *c)
{
  struct addrinfo hints;
  char port[8];

  if (c->addrs != NULL) {
    uv_freeaddrinfo(c->addrs);
    c->addrs = c->next_addr = NULL;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(port, sizeof(port), "%u", (unsigned)c->cfg.server_port);
  c->state = TC_CLIENT_RESOLVING;
  c->attempts_since_up++;
  c->resolve_req.data = c;
  if (uv_getaddrinfo(c->loop, &c->resolve_req, on_server_resolved, c->cfg.server_host, port, &hints) != 0)
    client_schedule_retry(c, "name lookup could not start");
}

static void on_retry_timer(uv_timer_t *t)
{
  struct tc_client *c = t->data;

  if (c->state == TC_CLIENT_WAITING)
    client_resolve(c);
}

static void client_schedule_retry(struct tc_client *c, const char *reason)
{
  /* random() gives 31 bits; the backoff maps a full 32-bit draw, else the jitter would only ever shorten. */
  uint32_t draw = ((uint32_t)random() << 16) ^ (uint32_t)random();
  uint32_t delay = tc_backoff_link_down(&c->backoff, uv_now(c->loop), draw);

  if (c->addrs != NULL) {
    uv_freeaddrinfo(c->addrs);
    c->addrs = c->next_addr = NULL;
  }
  if (c->down_since_ms == 0)
    c->down_since_ms = uv_now(c->loop);
  /* One line per change of reason, not one per retry. */
  if (strncmp(c->last_failure, reason, 127) != 0) {
    tn_log_warn("client %s: cannot connect to %s:%u: %s; retrying with backoff (next in %u ms)", c->identity,
                c->cfg.server_host, (unsigned)c->cfg.server_port, reason, delay);
    snprintf(c->last_failure, 128, "%s", reason);
  } else {
    tn_log_debug("client %s: still failing (%u attempts): %s; next in %u ms", c->identity, c->attempts_since_up,
                 reason, delay);
  }
  if (!c->ready_notified) {
    /* Readiness for systemd: configured and retrying is a steady state, not a start failure. */
    c->ready_notified = true;
    tn_notify_ready("retrying");
  }
  c->state = TC_CLIENT_WAITING;
  uv_timer_start(&c->retry_timer, on_retry_timer, delay, 0);
}

void tc_client_start(struct tc_client *c)
{
  tn_log_info("client %s: starting; server %s:%u (verifying name %s); %zu services, %zu allowed ports",
              c->identity, c->cfg.server_host, (unsigned)c->cfg.server_port, tc_config_server_name(&c->cfg),
              c->cfg.n_services, c->cfg.n_allowed_ports);
  client_resolve(c);
}

/* ---- signals ---- */

static void on_drain_timeout(uv_timer_t *t)
{
  struct tc_client *c = t->data;

  if (c->link != NULL || c->old_link != NULL) {
    tn_log_warn("client %s: drain timeout: resetting %zu open streams", c->identity, c->open_streams);
    if (c->old_link != NULL)
      tn_link_close(c->old_link, "drain timeout");
    if (c->link != NULL)
      tn_link_close(c->link, "drain timeout");
  } else {
    client_finish_stop(c);
  }
}

void tc_client_stop(struct tc_client *c)
{
  if (c->state == TC_CLIENT_STOPPED)
    return;
  if (c->state == TC_CLIENT_STOPPING) {
    /* A second stop signal ends the drain now; the exit is still the normal one (status 0). */
    if (uv_is_active((uv_handle_t *)&c->drain_timer)) {
      tn_log_info("client %s: stop signal during the drain; resetting %zu open streams now", c->identity,
                  c->open_streams);
      uv_timer_start(&c->drain_timer, on_drain_timeout, 0, 0);
    }
    return;
  }
  tn_log_info("client %s: stopping; %zu open streams may finish within %u ms", c->identity, c->open_streams,
              c->cfg.limits.common.drain_timeout_ms);
  tn_notify_stopping();
  uv_timer_stop(&c->retry_timer);
  if (c->old_link != NULL) {
    /* Mid-rotation: the old link still carries streams; it drains like the current one. */
    uv_timer_start(&c->drain_timer, on_drain_timeout, c->cfg.limits.common.drain_timeout_ms, 0);
    tn_link_go_away(c->old_link);
  }
  if (c->state == TC_CLIENT_RESOLVING) {
    c->state = TC_CLIENT_STOPPING;  /* the lookup's callback finishes the stop */
    uv_cancel((uv_req_t *)&c->resolve_req);
    return;
  }
  c->state = TC_CLIENT_STOPPING;
  if (c->link == NULL) {
    if (c->old_link == NULL)
      client_finish_stop(c);
    return;
  }
  if (!tn_link_is_established(c->link) || c->open_streams == 0) {
    tn_link_close(c->link, "stopped");
    return;
  }
  tn_link_go_away(c->link);
  uv_timer_start(&c->drain_timer, on_drain_timeout, c->cfg.limits.common.drain_timeout_ms, 0);
}

/* Closes the link (GoAway first, so tunneld lets go of it at once) and connects again without the backoff. */
static void reconnect_now(struct tc_client *c, const char *why)
{
  if (c->link != NULL)
    tn_link_close(c->link, why);
  if (c->state == TC_CLIENT_WAITING) {
    uv_timer_stop(&c->retry_timer);
    tc_backoff_reset(&c->backoff);
    client_resolve(c);
  }
}

/*
 * A new certificate for a link that is up: the link announces it (docs/PROTOCOL.md 8a) and, once tunneld has
 * taken that, the new link connects beside it; tunneld then moves new connections to the new link and sends the
 * old one GoAway, and its streams finish there. Returns false when it cannot start (then reconnect).
 */
static bool rotation_start(struct tc_client *c)
{
  uint8_t sha[32], msg[TN_CTL_ROTATE_LEN];

  if (c->state != TC_CLIENT_UP || c->link == NULL || c->old_link != NULL || !tn_link_is_established(c->link) ||
      tn_mux_is_going_away(tn_link_mux(c->link)))
    return false;
  for (int i = 0; i < 32; i++) {
    unsigned v;
    if (sscanf(c->cert_sha256 + 2 * i, "%2x", &v) != 1)
      return false;
    sha[i] = (uint8_t)v;
  }
  tn_ctl_rotate_encode(sha, msg, sizeof(msg));
  return tn_link_send_message(c->link, msg, sizeof(msg)) == TN_OK;
}

void tc_client_reload(struct tc_client *c, const char *cfg_path)
{
  struct tc_config cfg;
  tn_tls_config *tls = NULL;
  char identity[TN_TLS_CN_MAX], sha256[65], err[512];
  bool reconnect, server_changed, cert_changed, untrusted = false;

  if (tc_config_load(&cfg, cfg_path, err, sizeof(err)) != 0) {
    tn_log_error("client %s: reload refused, keeping the running configuration: %s", c->identity, err);
    return;
  }
  if (load_tls(&cfg, &tls, identity, sha256, err, sizeof(err)) != 0) {
    tn_log_error("client %s: reload refused, keeping the running configuration: %s", c->identity, err);
    tc_config_free(&cfg);
    return;
  }
  server_changed = strcmp(cfg.server_host, c->cfg.server_host) != 0 || cfg.server_port != c->cfg.server_port ||
                   strcmp(tc_config_server_name(&cfg), tc_config_server_name(&c->cfg)) != 0;
  cert_changed = strcmp(sha256, c->cert_sha256) != 0;
  reconnect = server_changed || cert_changed;
  tc_config_free(&c->cfg);
  c->cfg = cfg;
  tn_tls_config_unref(c->tls);
  c->tls = tls;
  memcpy(c->identity, identity, sizeof(identity));
  memcpy(c->cert_sha256, sha256, sizeof(sha256));
  /* A new CA or CRL may no longer trust the server this link reached. */
  if (!server_changed && c->link != NULL && tn_link_is_established(c->link) &&
      tn_tls_recheck(tn_link_tls(c->link), c->tls, err, sizeof(err)) == TN_ERR_INVALID) {
    tn_log_warn("client %s: the connected server is no longer trusted: %s", c->identity, err);
    reconnect = untrusted = true;
  }
  tn_log_info("client %s: configuration reloaded (%zu services, %zu allowed ports)%s", c->identity,
              c->cfg.n_services, c->cfg.n_allowed_ports,
              !reconnect ? "" : server_changed || untrusted ? "; reconnecting" : "; new certificate");
  if (!reconnect && c->state == TC_CLIENT_UP && c->link != NULL)
    announce_allow_list(c, c->link);
  if (!reconnect || c->state == TC_CLIENT_STOPPING || c->state == TC_CLIENT_STOPPED)
    return;
  if (!server_changed && !untrusted && rotation_start(c))
    return;  /* rotation_answered goes on */
  reconnect_now(c, "configuration changed");
}

void tc_client_free(struct tc_client *c)
{
  if (c->addrs != NULL)
    uv_freeaddrinfo(c->addrs);
  tn_tls_config_unref(c->tls);
  tc_config_free(&c->cfg);
}
