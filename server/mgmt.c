/* mgmt.c: the management port: admin connections, their HTTP/1.1 requests answered by the API, PUTs in turn. */
#include "mgmt.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "allow.h"
#include "api.h"
#include "http.h"
#include "metrics.h"
#include "put.h"
#include "server.h"
#include "tunnel/error.h"
#include "tunnel/log.h"

struct td_mgmt_conn {
  struct td_server *srv;
  const struct td_mgmt_io *io;
  void *io_arg;                  /* tunneld: the tn_link */
  const struct td_mgmt_puts *puts;
  bool closed;                   /* the transport has closed: only the timer's close callback is left */
  struct td_http_conn http;
  uv_timer_t timer;              /* header deadline, then idle timeout */
  bool admin;
  bool timing_head;              /* the header deadline is running for the current request */
  bool nonadmin_counted;         /* counted in srv->sources for its source and identity */
  bool finished;                 /* the last response is queued: later bytes are not requests */
  struct td_put *put;            /* its PUT /tunnels being applied: the answer comes when it ends */
  bool waiting;                  /* its change waits for another's PUT (in srv->put_waiting) */
  struct td_mgmt_conn *wait_next;
  char identity[TN_TLS_CN_MAX];
  char sha256[65];
  char peer[TN_ADDR_STRLEN];
  char source[48];
};

static bool conn_closing(const struct td_mgmt_conn *m)
{
  return m->closed || m->io->is_closing(m->io_arg);
}

/* ---- the ops the API reaches the server through ---- */

/* put_arg is the connection asking: it keeps the change, to detach from it if it closes first. */
static bool ops_start_put(void *s, const struct td_api_ctx *ctx, const uint8_t *body, size_t len)
{
  struct td_mgmt_conn *m = ctx->put_arg;

  m->put = m->puts->start(s, body, len, ctx->reserved, ctx->limits, ctx->actor, ctx->peer, ctx->put_done, m);
  return m->put != NULL;
}

static const struct td_table *ops_table(void *s)
{
  return &((struct td_server *)s)->table;
}

static void ops_status(void *s, size_t index, const char **active, uint64_t *open)
{
  struct td_server *srv = s;
  struct td_client *c = td_registry_active(srv, index);
  *active = c != NULL ? c->id : NULL;
  *open = td_listener_open_for(srv, index);
}

static const char *state_name(enum td_client_state s)
{
  switch (s) {
  case TD_CLIENT_CONNECTED: return "ClientConnected";
  case TD_CLIENT_DISCONNECTED: return "ClientDisconnected";
  default: return "ClientUnknown";
  }
}

static json_t *ops_clients(void *s)
{
  struct td_server *srv = s;
  json_t *all = json_object();
  const struct td_client *c;

  if (all == NULL)
    return NULL;
  for (c = td_registry_next(srv, NULL); c != NULL; c = td_registry_next(srv, c)) {
    char since[32] = "";
    uint64_t in, out;
    json_t *o;
    if (c->state != TD_CLIENT_UNKNOWN) {
      struct tm tm;
      gmtime_r(&c->connected_since, &tm);
      strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    td_listener_client_bytes(c, &in, &out);
    o = json_pack("{s:s, s:s, s:s?, s:s?, s:I, s:I, s:I, s:s?}", "CurrentState", state_name(c->state), "LastState",
                  state_name(c->last_state), "RemoteAddress", c->state == TD_CLIENT_UNKNOWN ? NULL : c->remote,
                  "ConnectedSince", c->state == TD_CLIENT_UNKNOWN ? NULL : since, "OpenStreams",
                  (json_int_t)c->open_streams, "BytesIn", (json_int_t)in, "BytesOut", (json_int_t)out, "CertificateSha256", c->sha256[0] ? c->sha256 : NULL);
    if (o != NULL && c->link != NULL && tn_link_mux(c->link) != NULL) {
      struct tn_mux_stats st;
      tn_mux_get_stats(tn_link_mux(c->link), &st);
      /* The keepalive's last round trip on the current link: 0 until its first answer. */
      if (json_object_set_new(o, "PingRttMs", json_integer((json_int_t)st.last_rtt_ms)) != 0) {
        json_decref(o);
        o = NULL;
      }
    }
    if (o != NULL && td_allow_client_json(c, o) != 0) {
      json_decref(o);
      o = NULL;
    }
    if (o == NULL || json_object_set_new(all, c->id, o) != 0) {
      json_decref(all);
      return NULL;
    }
  }
  return all;
}

static int ops_metrics(void *s, struct td_buf *out)
{
  return td_metrics_text(s, out);
}

static const struct td_revoked *ops_revoked(void *s)
{
  return &((struct td_server *)s)->revoked;
}

static int ops_apply_revoked(void *s, struct td_revoked *r, const char *requester_sha256, char *err, size_t errlen)
{
  return td_server_apply_revoked(s, r, requester_sha256, err, errlen);
}

static json_t *ops_problems(void *s, size_t index)
{
  return td_allow_problems(s, index);
}

static const struct td_api_ops server_ops = {
  .start_put = ops_start_put,
  .current_table = ops_table,
  .tunnel_status = ops_status,
  .clients_json = ops_clients,
  .metrics_text = ops_metrics,
  .revoked = ops_revoked,
  .apply_revoked = ops_apply_revoked,
  .tunnel_problems = ops_problems,
};

/* ---- connections ---- */

static void mgmt_on_timer_closed(uv_handle_t *h)
{
  free(h->data);
}

static void mgmt_send(struct td_mgmt_conn *m, const struct td_api_response *resp, int keep_alive)
{
  struct td_buf out;

  td_buf_init(&out, TD_API_MAX_WIRE);
  if (!keep_alive)
    m->finished = true;
  if (td_api_response_write(resp, keep_alive, &out) != TN_OK || m->io->send(m->io_arg, out.data, out.len) != TN_OK) {
    m->finished = true;  /* before the close, after which the transport is gone: callers test this first */
    m->io->close(m->io_arg, "response too large to send");
  } else if (!keep_alive) {
    m->io->close_when_flushed(m->io_arg, "request done");
  }
  td_buf_free(&out);
}

static void mgmt_arm_timer(struct td_mgmt_conn *m);

/* What one API call needs from the server; the counters are written back by call_end. */
struct mgmt_call {
  struct td_reserved reserved;
  struct td_api_counters counters;
  struct td_table_limits limits;
  struct td_api_ctx api;
};

static void put_done(void *arg, enum td_put_result result, const char *err, const char *table_json);

static void call_begin(struct td_mgmt_conn *m, struct mgmt_call *c)
{
  struct td_server *srv = m->srv;

  td_config_reserved(&srv->cfg, &c->reserved);
  c->counters = (struct td_api_counters){ srv->metrics.put_ok, srv->metrics.put_invalid, srv->metrics.put_conflict,
                                          srv->metrics.put_failed };
  c->limits = (struct td_table_limits){ srv->cfg.limits.max_tunnels, srv->cfg.limits.max_backups_per_tunnel };
  c->api = (struct td_api_ctx){ .ops = &server_ops, .srv = srv, .reserved = &c->reserved, .counters = &c->counters,
                                .requester_sha256 = m->sha256, .limits = &c->limits, .actor = m->identity,
                                .peer = m->peer,
                                .put_done = put_done, .put_arg = m };
}

static void call_end(struct td_server *srv, const struct mgmt_call *c)
{
  srv->metrics.put_ok = c->counters.put_ok;
  srv->metrics.put_invalid = c->counters.put_invalid;
  srv->metrics.put_conflict = c->counters.put_conflict;
  srv->metrics.put_failed = c->counters.put_failed;
}

static void log_answer(const struct td_mgmt_conn *m, const struct td_http_request *req,
                       const struct td_api_response *resp)
{
  const char *peer = m->peer;

  if (resp->status >= 400)  /* the error body says why; an operator reading the log needs that too */
    tn_log_info("management: %s (%s): %s %s -> %d %.*s", peer, m->identity, req->method, req->path, resp->status,
                (int)(resp->body.len > 0 && resp->body.data[resp->body.len - 1] == '\n' ? resp->body.len - 1
                                                                                      : resp->body.len),
                (const char *)resp->body.data);
  else if (strcmp(req->method, "GET") != 0)
    tn_log_info("management: %s (%s): %s %s -> %d", peer, m->identity, req->method, req->path, resp->status);
  else
    tn_log_debug("management: %s (%s): %s %s -> %d", peer, m->identity, req->method, req->path, resp->status);
}

/* A non-admin gets one answer, then the connection closes: it holds a slot an admin may need. */
static int keep_alive_after(const struct td_mgmt_conn *m, const struct td_http_request *req)
{
  return req->keep_alive && !m->srv->stopping && m->admin;
}

static void mgmt_process(struct td_mgmt_conn *m, enum td_http_result r);

static void put_done(void *arg, enum td_put_result result, const char *err, const char *table_json)
{
  struct td_mgmt_conn *m = arg;
  struct td_server *srv = m->srv;
  const struct td_http_request *req = td_http_conn_request(&m->http);
  struct td_api_response resp;
  struct mgmt_call c;

  m->put = NULL;
  call_begin(m, &c);
  td_api_response_init(&resp, TD_API_MAX_RESPONSE);
  td_api_put_tunnels_answer(&c.api, result, err, table_json, &resp);
  call_end(srv, &c);
  log_answer(m, req, &resp);
  mgmt_send(m, &resp, keep_alive_after(m, req));
  td_api_response_free(&resp);
  /* Changes that waited go first, in order; this connection's next request queues behind them if it is one. */
  while (srv->put_waiting != NULL && !m->puts->busy(srv)) {
    struct td_mgmt_conn *w = srv->put_waiting;
    srv->put_waiting = w->wait_next;
    w->waiting = false;
    w->wait_next = NULL;
    mgmt_process(w, TD_HTTP_REQUEST);
  }
  if (!m->finished && !m->waiting && !conn_closing(m))
    mgmt_process(m, td_http_conn_next(&m->http));
}

/* Another change is being applied: this one is answered after it, in arrival order. */
static void wait_turn(struct td_mgmt_conn *m)
{
  struct td_mgmt_conn **pp = &m->srv->put_waiting;

  while (*pp != NULL)
    pp = &(*pp)->wait_next;
  *pp = m;
  m->waiting = true;
}

static void unwait(struct td_mgmt_conn *m)
{
  struct td_mgmt_conn **pp = &m->srv->put_waiting;

  while (*pp != NULL && *pp != m)
    pp = &(*pp)->wait_next;
  if (*pp == m)
    *pp = m->wait_next;
  m->waiting = false;
}

static void mgmt_answer(struct td_mgmt_conn *m, const struct td_http_request *req)
{
  struct td_server *srv = m->srv;
  struct mgmt_call c;
  struct td_api_response resp;

  if (m->admin && strcmp(req->method, "PUT") == 0 && m->puts->busy(srv)) {
    wait_turn(m);
    return;
  }
  call_begin(m, &c);
  td_api_response_init(&resp, TD_API_MAX_RESPONSE);
  if (!m->admin) {
    srv->metrics.mgmt_forbidden++;
    td_server_log_limited(srv, TN_LOG_WARN, "management: requests refused (not an admin)", m->source,
                          "management: %s: %s %.64s refused: certificate CN \"%s\" is not in AdminIdentities",
                          m->peer, req->method, req->path, m->identity);
    td_api_forbidden(&resp, m->identity);
  } else {
    bool answered = td_api_handle(&c.api, req, &resp);
    call_end(srv, &c);
    if (!answered) {  /* a PUT /tunnels being applied: put_done answers */
      td_api_response_free(&resp);
      return;
    }
    log_answer(m, req, &resp);
  }
  mgmt_send(m, &resp, keep_alive_after(m, req));
  td_api_response_free(&resp);
}

static void mgmt_process(struct td_mgmt_conn *m, enum td_http_result r)
{
  for (;;) {
    /* A request still being answered: bytes behind it are kept by the parser until then, with no deadline. */
    if (conn_closing(m) || m->put != NULL || m->waiting)
      return;
    if (r == TD_HTTP_REQUEST) {
      const struct td_http_request *req = td_http_conn_request(&m->http);
      m->timing_head = false;
      /* No header or idle deadline while a request is being answered: a PUT may take a while. */
      uv_timer_stop(&m->timer);
      mgmt_answer(m, req);
      if (m->finished || m->put != NULL || m->waiting || conn_closing(m))
        return;
      r = td_http_conn_next(&m->http);  /* a pipelined request may already be complete */
      continue;
    }
    if (r == TD_HTTP_CONTINUE) {
      m->io->send(m->io_arg, (const uint8_t *)TD_HTTP_100_CONTINUE, strlen(TD_HTTP_100_CONTINUE));
      r = TD_HTTP_NEED_MORE;
      continue;
    }
    if (r == TD_HTTP_ERROR) {
      struct td_api_response resp;
      td_api_response_init(&resp, TD_API_MAX_ERROR_RESPONSE);
      td_api_error(&resp, td_http_conn_error_status(&m->http), td_http_conn_error_text(&m->http));
      td_server_log_limited(m->srv, TN_LOG_INFO, "management: bad requests", m->source,
                            "management: %s: bad request: %d %s", m->peer,
                            td_http_conn_error_status(&m->http), td_http_conn_error_text(&m->http));
      mgmt_send(m, &resp, 0);
      td_api_response_free(&resp);
      return;
    }
    mgmt_arm_timer(m);
    return;
  }
}

static void mgmt_on_timer(uv_timer_t *t)
{
  struct td_mgmt_conn *m = t->data;
  struct td_api_response resp;

  /* A 400 leaves the head's deadline running: a peer that has not taken that last answer by then is cut off,
   * never sent a second one (fuzz_td_mgmt found a 408 queued behind a 400). */
  if (m->finished) {
    m->io->close(m->io_arg, "final answer not read in time");
    return;
  }
  if (td_http_conn_state(&m->http) == TD_HTTP_IDLE) {
    m->io->close(m->io_arg, "idle timeout");
    return;
  }
  /* A request head or body that dribbles in (slowloris) is cut off at the deadline. */
  tn_log_info("management: %s: request not complete within %u ms; closing", m->peer,
              m->srv->cfg.limits.api_header_timeout_ms);
  td_api_response_init(&resp, TD_API_MAX_ERROR_RESPONSE);
  td_api_error(&resp, 408, "request not received in time");
  mgmt_send(m, &resp, 0);
  td_api_response_free(&resp);
}

/* The header deadline runs from a request's first byte and is not pushed back by later bytes. */
static void mgmt_arm_timer(struct td_mgmt_conn *m)
{
  const struct td_limits *lim = &m->srv->cfg.limits;

  if (td_http_conn_state(&m->http) == TD_HTTP_IDLE) {
    m->timing_head = false;
    /* A non-admin is never kept alive: it has until the header deadline to ask its one question. */
    uv_timer_start(&m->timer, mgmt_on_timer, m->admin ? lim->api_idle_timeout_ms : lim->api_header_timeout_ms, 0);
  } else if (!m->timing_head) {
    m->timing_head = true;
    uv_timer_start(&m->timer, mgmt_on_timer, lim->api_header_timeout_ms, 0);
  }
}

/* ---- the connection, whatever carries it ---- */

struct td_mgmt_conn *td_mgmt_conn_new(struct td_server *srv, const struct td_mgmt_io *io, void *io_arg,
                                      const struct td_mgmt_puts *puts, const char *peer, const char *source)
{
  struct td_mgmt_conn *m = calloc(1, sizeof(*m));
  struct td_http_limits limits;

  if (m == NULL)
    return NULL;
  m->srv = srv;
  m->io = io;
  m->io_arg = io_arg;
  m->puts = puts;
  snprintf(m->peer, sizeof(m->peer), "%s", peer);
  snprintf(m->source, sizeof(m->source), "%s", source);
  limits.max_header = srv->cfg.limits.api_max_header;
  limits.max_body = srv->cfg.limits.api_max_body;
  td_http_conn_init(&m->http, &limits);
  uv_timer_init(srv->loop, &m->timer);
  m->timer.data = m;
  return m;
}

void td_mgmt_conn_established(struct td_mgmt_conn *m, const char *cn, const char *sha256, bool admin)
{
  snprintf(m->identity, sizeof(m->identity), "%s", cn);
  snprintf(m->sha256, sizeof(m->sha256), "%s", sha256);
  m->admin = admin;
  mgmt_arm_timer(m);
}

void td_mgmt_conn_feed(struct td_mgmt_conn *m, const uint8_t *data, size_t len)
{
  if (m->finished || m->closed)
    return;  /* pipelined requests behind a final answer are not served */
  mgmt_process(m, td_http_conn_feed(&m->http, data, len));
}

bool td_mgmt_conn_expire(struct td_mgmt_conn *m)
{
  if (m->closed || !uv_is_active((uv_handle_t *)&m->timer))
    return false;
  uv_timer_stop(&m->timer);
  mgmt_on_timer(&m->timer);
  return true;
}

bool td_mgmt_conn_is_admin(const struct td_mgmt_conn *m)
{
  return m->admin;
}

void td_mgmt_conn_closed(struct td_mgmt_conn *m)
{
  m->closed = true;
  if (m->put != NULL)
    m->puts->detach(m->put);  /* the change completes; nobody is left to tell */
  if (m->waiting)
    unwait(m);
  td_http_conn_free(&m->http);
  uv_close((uv_handle_t *)&m->timer, mgmt_on_timer_closed);
}

/* ---- tunneld's transport: the management port's TLS link ---- */

static int link_send(void *arg, const uint8_t *data, size_t len)
{
  return tn_link_send(arg, data, len);
}

static void link_close(void *arg, const char *reason)
{
  tn_link_close(arg, reason);
}

static void link_close_when_flushed(void *arg, const char *reason)
{
  tn_link_close_when_flushed(arg, reason);
}

static bool link_is_closing(void *arg)
{
  return tn_link_is_closing(arg);
}

static const struct td_mgmt_io link_io = {
  .send = link_send,
  .close = link_close,
  .close_when_flushed = link_close_when_flushed,
  .is_closing = link_is_closing,
};

static const struct td_mgmt_puts server_puts = {
  .start = td_put_start,
  .busy = td_put_busy,
  .detach = td_put_detach,
};

/* The key under which a non-admin identity's sessions are counted in srv->sources. */
static void identity_key(const char *cn, char *out, size_t outlen)
{
  snprintf(out, outlen, "cn:%s", cn);
}

static void mgmt_on_established(tn_link *link, const struct tn_tls_peer *peer)
{
  struct td_link_ctx *ctx = tn_link_data(link);
  struct td_server *srv = ctx->srv;
  struct td_mgmt_conn *m = ctx->mgmt;
  const struct td_limits *lim = &srv->cfg.limits;
  char idkey[TD_SOURCE_KEY_MAX];
  bool admin;

  ctx->handshake_done = true;
  td_gate_pending_done(srv, ctx);
  snprintf(m->source, sizeof(m->source), "%s", ctx->source);  /* known once the gate has listed the link */
  admin = td_config_is_admin_cert(&srv->cfg, peer->cn, peer->sha256_hex);
  if (!admin) {
    /*
     * Any certificate from the CA (every tunnel client has one) completes the handshake; without this
     * bound a few of them could hold every management slot until their deadlines.
     */
    identity_key(peer->cn, idkey, sizeof(idkey));
    if (td_sources_get(&srv->sources, ctx->source_key, TD_COUNT_MGMT_NONADMIN) >= lim->api_max_non_admin_per_source ||
        td_sources_get(&srv->sources, idkey, TD_COUNT_MGMT_NONADMIN) >= lim->api_max_non_admin_per_identity) {
      srv->metrics.mgmt_forbidden++;
      td_server_log_limited(srv, TN_LOG_WARN, "management: non-admin sessions over their limit", ctx->source,
                            "management: %s: certificate CN \"%s\" is not in AdminIdentities and its source or "
                            "identity already holds ApiMaxNonAdminPerSource/PerIdentity sessions; closing",
                            tn_link_peer_address(link), peer->cn);
      snprintf(m->identity, sizeof(m->identity), "%s", peer->cn);
      tn_link_close(link, "too many non-admin sessions");
      return;
    }
    td_sources_add(&srv->sources, ctx->source_key, TD_COUNT_MGMT_NONADMIN, 1);
    td_sources_add(&srv->sources, idkey, TD_COUNT_MGMT_NONADMIN, 1);
    m->nonadmin_counted = true;
  }
  td_mgmt_conn_established(m, peer->cn, peer->sha256_hex, admin);
}

static void mgmt_on_data(tn_link *link, const uint8_t *data, size_t len)
{
  struct td_link_ctx *ctx = tn_link_data(link);

  td_mgmt_conn_feed(ctx->mgmt, data, len);
}

static void mgmt_on_closed(tn_link *link, const char *reason)
{
  struct td_link_ctx *ctx = tn_link_data(link);
  struct td_server *srv = ctx->srv;
  struct td_mgmt_conn *m = ctx->mgmt;

  if (!ctx->handshake_done) {
    char kind[96];
    td_gate_pending_done(srv, ctx);
    /* The reason is the kind: each way of failing gets its first line, and a flood of one gets a count. */
    snprintf(kind, sizeof(kind), "management: %s", reason);
    td_server_log_limited(srv, TN_LOG_INFO, kind, ctx->source, "management: %s: %s", tn_link_peer_address(link),
                          reason);
  } else {
    tn_log_debug("management: %s: closed: %s", tn_link_peer_address(link), reason);
  }
  if (m->nonadmin_counted) {
    char idkey[TD_SOURCE_KEY_MAX];
    identity_key(m->identity, idkey, sizeof(idkey));
    td_sources_add(&srv->sources, ctx->source_key, TD_COUNT_MGMT_NONADMIN, -1);
    td_sources_add(&srv->sources, idkey, TD_COUNT_MGMT_NONADMIN, -1);
  }
  srv->mgmt_connections--;
  td_mgmt_conn_closed(m);
  td_gate_forget(ctx);
}

static const struct tn_link_callbacks mgmt_callbacks = {
  .on_established = mgmt_on_established,
  .on_data = mgmt_on_data,
  .on_closed = mgmt_on_closed,
};

void td_mgmt_accept(struct td_server *srv)
{
  struct tn_link_options opt;
  struct td_link_ctx *ctx;
  struct td_mgmt_conn *m;

  if (!td_gate_admit(srv, (uv_stream_t *)&srv->management, TD_COUNT_MGMT_PENDING))
    return;
  ctx = calloc(1, sizeof(*ctx));
  m = ctx == NULL ? NULL : td_mgmt_conn_new(srv, &link_io, NULL, &server_puts, "", "-");
  if (m == NULL) {
    free(ctx);
    srv->metrics.handshakes_refused_limit++;
    td_gate_drop((uv_stream_t *)&srv->management);
    return;
  }
  ctx->srv = srv;
  ctx->management = true;
  ctx->mgmt = m;
  tn_link_options_default(&opt);
  opt.tls = srv->mgmt_tls;
  opt.raw = 1;
  opt.handshake_timeout_ms = srv->cfg.limits.common.handshake_timeout_ms;
  opt.max_raw_output = TD_API_MAX_WIRE;
  if (tn_link_accept(&ctx->link, (uv_stream_t *)&srv->management, &opt, &mgmt_callbacks, ctx) != 0) {
    td_mgmt_conn_closed(m);
    free(ctx);
    return;
  }
  m->io_arg = ctx->link;
  snprintf(m->peer, sizeof(m->peer), "%s", tn_link_peer_address(ctx->link));
  srv->mgmt_connections++;
  td_gate_add(srv, ctx, TD_COUNT_MGMT_PENDING);
}
