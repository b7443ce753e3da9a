/* metrics.c: Prometheus text for tunneld, and the optional plain-HTTP MetricsListen port. */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "http.h"
#include "server.h"
#include "tunnel/error.h"
#include "tunnel/log.h"
#include "tunnel/utf8.h"

/* A scrape connection: one request, one answer, closed. Scrapers reconnect each time. */
struct metrics_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  struct td_server *srv;
  struct td_http_conn http;
  struct td_buf out;
  uv_write_t write_req;
  int handles_open;
  int answered;
};

/* A scraper or two connect at a time; a longer queue would only hold a flood. */
#define METRICS_BACKLOG 64
#define METRICS_MAX_CONNECTIONS 16u
#define METRICS_TIMEOUT_MS 10000u

int td_metrics_label(struct td_buf *out, const char *value)
{
  const uint8_t *p = (const uint8_t *)value;
  size_t len = strlen(value);
  int rc = TN_OK;

  for (size_t i = 0; i < len;) {
    uint32_t cp;
    size_t n = tn_utf8_decode(p + i, len - i, &cp);
    if (n == 0) {
      rc |= td_buf_append(out, "?", 1);
      i++;
    } else if (cp == '\\' || cp == '"') {
      rc |= td_buf_append(out, "\\", 1);
      rc |= td_buf_append(out, p + i, 1);
      i++;
    } else if (cp == '\n') {
      rc |= td_buf_append(out, "\\n", 2);
      i++;
    } else {
      rc |= tn_utf8_is_control(cp) ? td_buf_append(out, "?", 1) : td_buf_append(out, p + i, n);
      i += n;
    }
  }
  return rc == TN_OK ? TN_OK : TN_ERR_NOMEM;
}

/* Server-wide gauges and counters. */
static int metrics_totals(const struct td_server *srv, struct td_buf *out)
{
  const struct td_metrics *m = &srv->metrics;
  uint64_t connected, streams;
  int rc = TN_OK;

  td_registry_totals(srv, &connected, &streams);
  rc |= td_buf_printf(out,
                      "# HELP tunneld_clients_connected Clients with an established link.\n"
                      "# TYPE tunneld_clients_connected gauge\ntunneld_clients_connected %llu\n"
                      "# HELP tunneld_streams_open Public connections being carried now.\n"
                      "# TYPE tunneld_streams_open gauge\ntunneld_streams_open %llu\n"
                      "# HELP tunneld_handshake_failures_total Control-port connections that failed before the link was up.\n"
                      "# TYPE tunneld_handshake_failures_total counter\ntunneld_handshake_failures_total %llu\n"
                      "# HELP tunneld_handshakes_refused_total Control or management connections dropped at the pending-handshake limit.\n"
                      "# TYPE tunneld_handshakes_refused_total counter\ntunneld_handshakes_refused_total %llu\n"
                      "# HELP tunneld_links_replaced_total Links replaced by a newer link of the same client.\n"
                      "# TYPE tunneld_links_replaced_total counter\ntunneld_links_replaced_total %llu\n"
                      "# HELP tunneld_links_dead_total Links dropped by the dead-peer timeout.\n"
                      "# TYPE tunneld_links_dead_total counter\ntunneld_links_dead_total %llu\n"
                      "# HELP tunneld_management_forbidden_total Management requests refused for a non-admin certificate.\n"
                      "# TYPE tunneld_management_forbidden_total counter\ntunneld_management_forbidden_total %llu\n"
                      "# HELP tunneld_links_refused_total Control links refused after the handshake, by reason.\n"
                      "# TYPE tunneld_links_refused_total counter\n"
                      "tunneld_links_refused_total{reason=\"identity_in_use\"} %llu\n"
                      "# HELP tunneld_links_revoked_total Live control and management links closed because their "
                      "certificate was revoked or is no longer trusted.\n"
                      "# TYPE tunneld_links_revoked_total counter\ntunneld_links_revoked_total %llu\n"
                      "# HELP tunneld_revoked_certificates Certificates in the revoked-certificates list.\n"
                      "# TYPE tunneld_revoked_certificates gauge\ntunneld_revoked_certificates %llu\n",
                      (unsigned long long)connected, (unsigned long long)streams,
                      (unsigned long long)m->handshake_failures, (unsigned long long)m->handshakes_refused_limit,
                      (unsigned long long)m->links_replaced, (unsigned long long)m->links_dead,
                      (unsigned long long)m->mgmt_forbidden, (unsigned long long)m->links_refused_in_use,
                      (unsigned long long)m->links_closed_revoked, (unsigned long long)srv->revoked.n);
  return rc;
}

/* One series per public listener. */
static int metrics_listeners(const struct td_server *srv, struct td_buf *out)
{
  const struct td_listener *l;
  int rc = TN_OK;

  rc |= td_buf_append_str(out, "# HELP tunneld_tunnel_connections_accepted_total Public connections accepted per tunnel.\n"
                               "# TYPE tunneld_tunnel_connections_accepted_total counter\n"
                               "# HELP tunneld_tunnel_connections_refused_total Public connections refused per tunnel (no client, limits).\n"
                               "# TYPE tunneld_tunnel_connections_refused_total counter\n"
                               "# HELP tunneld_tunnel_connections_unrouted_total Connections to a hostname-routed port refused: no tunnel for the name they asked and no fallback tunnel.\n"
                               "# TYPE tunneld_tunnel_connections_unrouted_total counter\n"
                               "# HELP tunneld_tunnel_hostname_timeouts_total Connections to a hostname-routed port closed for naming no host within HostnameTimeoutMs.\n"
                               "# TYPE tunneld_tunnel_hostname_timeouts_total counter\n"
                               "# HELP tunneld_tunnel_hostname_unreadable_total Connections to a hostname-routed port refused: their TLS server name or HTTP Host could not be read (malformed, too large, cut short).\n"
                               "# TYPE tunneld_tunnel_hostname_unreadable_total counter\n"
                               "# HELP tunneld_tunnel_connections_aborted_total Public connections that ended abnormally: reset by the visitor or the client, refused after accept, cut by a timeout.\n"
                               "# TYPE tunneld_tunnel_connections_aborted_total counter\n"
                               "# HELP tunneld_tunnel_connections_open Public connections open per tunnel.\n"
                               "# TYPE tunneld_tunnel_connections_open gauge\n"
                               "# HELP tunneld_tunnel_bytes_in_total Bytes from internet users per tunnel.\n"
                               "# TYPE tunneld_tunnel_bytes_in_total counter\n"
                               "# HELP tunneld_tunnel_bytes_out_total Bytes to internet users per tunnel.\n"
                               "# TYPE tunneld_tunnel_bytes_out_total counter\n");
  for (l = td_listener_next(srv, NULL); l != NULL; l = td_listener_next(srv, l)) {
    char addr[TN_ADDR_STRLEN];
    uint64_t in, out_bytes;
    tn_addr_format(&l->addr, addr, sizeof(addr));
    td_listener_bytes(l, &in, &out_bytes);
    rc |= td_buf_printf(out,
                        "tunneld_tunnel_connections_accepted_total{listen=\"%s\"} %llu\n"
                        "tunneld_tunnel_connections_refused_total{listen=\"%s\"} %llu\n"
                        "tunneld_tunnel_connections_unrouted_total{listen=\"%s\"} %llu\n"
                        "tunneld_tunnel_hostname_timeouts_total{listen=\"%s\"} %llu\n"
                        "tunneld_tunnel_hostname_unreadable_total{listen=\"%s\"} %llu\n"
                        "tunneld_tunnel_connections_aborted_total{listen=\"%s\"} %llu\n"
                        "tunneld_tunnel_connections_open{listen=\"%s\"} %u\n"
                        "tunneld_tunnel_bytes_in_total{listen=\"%s\"} %llu\n"
                        "tunneld_tunnel_bytes_out_total{listen=\"%s\"} %llu\n",
                        addr, (unsigned long long)l->accepted, addr, (unsigned long long)l->refused, addr,
                        (unsigned long long)l->unrouted, addr, (unsigned long long)l->hostname_timeouts, addr,
                        (unsigned long long)l->hostname_unreadable, addr,
                        (unsigned long long)l->aborted, addr,
                        l->open_connections, addr, (unsigned long long)in, addr, (unsigned long long)out_bytes);
  }
  return rc;
}

/* One series per client identity. */
static int metrics_clients(const struct td_server *srv, struct td_buf *out)
{
  const struct td_client *c;
  int rc = TN_OK;

  rc |= td_buf_append_str(out, "# HELP tunneld_client_bytes_in_total Bytes carried towards each client.\n"
                               "# TYPE tunneld_client_bytes_in_total counter\n"
                               "# HELP tunneld_client_bytes_out_total Bytes carried from each client.\n"
                               "# TYPE tunneld_client_bytes_out_total counter\n"
                               "# HELP tunneld_client_streams_open Connections each client carries now.\n"
                               "# TYPE tunneld_client_streams_open gauge\n");
  for (c = td_registry_next(srv, NULL); c != NULL; c = td_registry_next(srv, c)) {
    static const char *const names[] = { "tunneld_client_bytes_in_total", "tunneld_client_bytes_out_total",
                                         "tunneld_client_streams_open" };
    uint64_t v[3];
    td_listener_client_bytes(c, &v[0], &v[1]);
    v[2] = c->open_streams;
    for (size_t i = 0; i < 3; i++) {
      rc |= td_buf_printf(out, "%s{client=\"", names[i]);
      rc |= td_metrics_label(out, c->id);
      rc |= td_buf_printf(out, "\"} %llu\n", (unsigned long long)v[i]);
    }
  }
  return rc;
}

int td_metrics_text(const struct td_server *srv, struct td_buf *out)
{
  int rc = metrics_totals(srv, out);

  rc |= metrics_listeners(srv, out);
  rc |= metrics_clients(srv, out);
  return rc == TN_OK ? TN_OK : TN_ERR_NOMEM;
}

static void conn_on_closed(uv_handle_t *h)
{
  struct metrics_conn *m = h->data;

  if (--m->handles_open > 0)
    return;
  m->srv->metrics_connections--;
  td_http_conn_free(&m->http);
  td_buf_free(&m->out);
  free(m);
}

static void conn_close(struct metrics_conn *m)
{
  if (uv_is_closing((uv_handle_t *)&m->tcp))
    return;
  uv_close((uv_handle_t *)&m->tcp, conn_on_closed);
  uv_close((uv_handle_t *)&m->timer, conn_on_closed);
}

static void on_written(uv_write_t *req, int status)
{
  (void)status;
  conn_close(req->data);
}

static void conn_answer(struct metrics_conn *m, int status, const char *type, const struct td_buf *body)
{
  uv_buf_t buf;

  m->answered = 1;
  uv_read_stop((uv_stream_t *)&m->tcp);
  if (td_http_response(&m->out, status, type, body != NULL ? body->data : NULL, body != NULL ? body->len : 0, 0,
                       NULL) != TN_OK) {
    conn_close(m);
    return;
  }
  buf = uv_buf_init((char *)m->out.data, (unsigned)m->out.len);
  m->write_req.data = m;
  if (uv_write(&m->write_req, (uv_stream_t *)&m->tcp, &buf, 1, on_written) != 0)
    conn_close(m);
}

static void conn_serve(struct metrics_conn *m, const struct td_http_request *req)
{
  struct td_buf body;

  td_buf_init(&body, TD_API_MAX_RESPONSE);
  if (strcmp(req->path, "/metrics") != 0) {
    td_buf_append_str(&body, "not found: this port serves GET /metrics only\n");
    conn_answer(m, 404, "text/plain; charset=utf-8", &body);
  } else if (strcmp(req->method, "GET") != 0) {
    td_buf_append_str(&body, "method not allowed\n");
    conn_answer(m, 405, "text/plain; charset=utf-8", &body);
  } else if (td_metrics_text(m->srv, &body) != TN_OK || td_api_counters_text(&(struct td_api_counters){
               m->srv->metrics.put_ok, m->srv->metrics.put_invalid, m->srv->metrics.put_conflict,
               m->srv->metrics.put_failed }, &body) != TN_OK) {
    td_buf_reset(&body);
    conn_answer(m, 500, "text/plain; charset=utf-8", &body);
  } else {
    conn_answer(m, 200, "text/plain; version=0.0.4; charset=utf-8", &body);
  }
  td_buf_free(&body);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  static char scratch[4096];  /* requests are tiny and parsed at once: no per-read allocation */
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(scratch, sizeof(scratch));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
  struct metrics_conn *m = s->data;
  enum td_http_result r;

  if (m->answered)
    return;
  if (nread < 0) {
    conn_close(m);
    return;
  }
  r = td_http_conn_feed(&m->http, (const uint8_t *)buf->base, (size_t)nread);
  if (r == TD_HTTP_REQUEST)
    conn_serve(m, td_http_conn_request(&m->http));
  else if (r == TD_HTTP_ERROR)
    conn_answer(m, td_http_conn_error_status(&m->http), NULL, NULL);
}

static void on_timeout(uv_timer_t *t)
{
  conn_close(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
  struct td_server *srv = server->data;
  struct td_http_limits limits = { 8192, 0 };
  struct metrics_conn *m;

  if (status < 0)
    return;
  m = calloc(1, sizeof(*m));
  if (m == NULL)
    return;
  m->srv = srv;
  uv_tcp_init(srv->loop, &m->tcp);
  uv_timer_init(srv->loop, &m->timer);
  m->tcp.data = m->timer.data = m;
  m->handles_open = 2;
  td_http_conn_init(&m->http, &limits);
  td_buf_init(&m->out, TD_API_MAX_WIRE);
  srv->metrics_connections++;
  if (uv_accept(server, (uv_stream_t *)&m->tcp) != 0 || srv->metrics_connections > METRICS_MAX_CONNECTIONS ||
      uv_read_start((uv_stream_t *)&m->tcp, on_alloc, on_read) != 0) {
    conn_close(m);
    return;
  }
  uv_timer_start(&m->timer, on_timeout, METRICS_TIMEOUT_MS, 0);
}

int td_metrics_listen(struct td_server *srv, char *err, size_t errlen)
{
  struct sockaddr_storage ss;
  char text[TN_ADDR_STRLEN];
  int rc;

  if (!srv->cfg.metrics_enabled)
    return 0;
  tn_addr_format(&srv->cfg.metrics, text, sizeof(text));
  memset(&ss, 0, sizeof(ss));
  if (srv->cfg.metrics.family == TN_AF_INET)
    rc = uv_ip4_addr("0.0.0.0", srv->cfg.metrics.port, (struct sockaddr_in *)&ss);
  else
    rc = uv_ip6_addr("::", srv->cfg.metrics.port, (struct sockaddr_in6 *)&ss);
  if (srv->cfg.metrics.family == TN_AF_INET)
    memcpy(&((struct sockaddr_in *)&ss)->sin_addr, srv->cfg.metrics.ip, 4);
  else
    memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, srv->cfg.metrics.ip, 16);
  uv_tcp_init(srv->loop, &srv->metrics_tcp);
  srv->metrics_tcp.data = srv;
  if (rc == 0)
    rc = uv_tcp_bind(&srv->metrics_tcp, (const struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&srv->metrics_tcp, METRICS_BACKLOG, on_connection);
  if (rc != 0) {
    snprintf(err, errlen, "%s: \"MetricsListen\": cannot listen on %s: %s", srv->cfg.path, text, uv_strerror(rc));
    return rc;
  }
  srv->metrics_listening = true;
  tn_log_info("MetricsListen: serving plain-HTTP GET /metrics on %s (no authentication: keep it private)", text);
  return 0;
}

void td_metrics_close(struct td_server *srv)
{
  if (srv->metrics_listening && !uv_is_closing((uv_handle_t *)&srv->metrics_tcp))
    uv_close((uv_handle_t *)&srv->metrics_tcp, NULL);
}
