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

/*
 * Scrapers connect a few at a time; a longer queue would only hold a flood. Per address at most
 * METRICS_PER_ADDRESS scrapes at once (a fifth is closed at accept), METRICS_MAX_CONNECTIONS in all: one address
 * cannot take every slot from the monitoring system, and scrapes of a full table together hold a bounded amount of
 * memory (their snapshots, see below). A scrape is closed when its request has not arrived, or its answer has not
 * moved, for METRICS_TIMEOUT_MS.
 */
#define METRICS_BACKLOG 64
#define METRICS_MAX_CONNECTIONS 16u
#define METRICS_PER_ADDRESS 4u
#define METRICS_TIMEOUT_MS 10000u
/*
 * Text written per write completion: the loop's work per step of a scrape. All scrapes together render at most one
 * chunk per METRICS_CHUNK_INTERVAL_MS (4 MB/s): a 2.5 MB exposition of a full table takes 0.6 s alone and a few
 * seconds beside other scrapes, and the scrapes can never take more than that share of the loop from tunnels.
 */
#define METRICS_CHUNK (16u * 1024u)
#define METRICS_CHUNK_INTERVAL_MS 4u

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

#define LISTENERS_HELP \
  "# HELP tunneld_tunnel_connections_accepted_total Public connections accepted per tunnel.\n" \
  "# TYPE tunneld_tunnel_connections_accepted_total counter\n" \
  "# HELP tunneld_tunnel_connections_refused_total Public connections refused per tunnel (no client, limits).\n" \
  "# TYPE tunneld_tunnel_connections_refused_total counter\n" \
  "# HELP tunneld_tunnel_connections_unrouted_total Connections to a hostname-routed port refused: no tunnel for the name they asked and no fallback tunnel.\n" \
  "# TYPE tunneld_tunnel_connections_unrouted_total counter\n" \
  "# HELP tunneld_tunnel_hostname_timeouts_total Connections to a hostname-routed port closed for naming no host within HostnameTimeoutMs.\n" \
  "# TYPE tunneld_tunnel_hostname_timeouts_total counter\n" \
  "# HELP tunneld_tunnel_hostname_unreadable_total Connections to a hostname-routed port refused: their TLS server name or HTTP Host could not be read (malformed, too large, cut short).\n" \
  "# TYPE tunneld_tunnel_hostname_unreadable_total counter\n" \
  "# HELP tunneld_tunnel_connections_aborted_total Public connections that ended abnormally: reset by the visitor or the client, refused after accept, cut by a timeout.\n" \
  "# TYPE tunneld_tunnel_connections_aborted_total counter\n" \
  "# HELP tunneld_tunnel_connections_open Public connections open per tunnel.\n" \
  "# TYPE tunneld_tunnel_connections_open gauge\n" \
  "# HELP tunneld_tunnel_bytes_in_total Bytes from internet users per tunnel.\n" \
  "# TYPE tunneld_tunnel_bytes_in_total counter\n" \
  "# HELP tunneld_tunnel_bytes_out_total Bytes to internet users per tunnel.\n" \
  "# TYPE tunneld_tunnel_bytes_out_total counter\n"

/* One public listener's numbers, taken at once so that they can be written out later. */
struct snap_listener {
  char addr[TN_ADDR_STRLEN];
  uint64_t accepted, refused, unrouted, hostname_timeouts, hostname_unreadable, aborted, in, out;
  unsigned open;
};

static void snap_listener(const struct td_listener *l, struct snap_listener *r)
{
  tn_addr_format(&l->addr, r->addr, sizeof(r->addr));
  td_listener_bytes(l, &r->in, &r->out);
  r->accepted = l->accepted;
  r->refused = l->refused;
  r->unrouted = l->unrouted;
  r->hostname_timeouts = l->hostname_timeouts;
  r->hostname_unreadable = l->hostname_unreadable;
  r->aborted = l->aborted;
  r->open = l->open_connections;
}

static int listener_rows(struct td_buf *out, const struct snap_listener *r)
{
  const char *a = r->addr;

  return td_buf_printf(out,
                       "tunneld_tunnel_connections_accepted_total{listen=\"%s\"} %llu\n"
                       "tunneld_tunnel_connections_refused_total{listen=\"%s\"} %llu\n"
                       "tunneld_tunnel_connections_unrouted_total{listen=\"%s\"} %llu\n"
                       "tunneld_tunnel_hostname_timeouts_total{listen=\"%s\"} %llu\n"
                       "tunneld_tunnel_hostname_unreadable_total{listen=\"%s\"} %llu\n"
                       "tunneld_tunnel_connections_aborted_total{listen=\"%s\"} %llu\n"
                       "tunneld_tunnel_connections_open{listen=\"%s\"} %u\n"
                       "tunneld_tunnel_bytes_in_total{listen=\"%s\"} %llu\n"
                       "tunneld_tunnel_bytes_out_total{listen=\"%s\"} %llu\n",
                       a, (unsigned long long)r->accepted, a, (unsigned long long)r->refused, a,
                       (unsigned long long)r->unrouted, a, (unsigned long long)r->hostname_timeouts, a,
                       (unsigned long long)r->hostname_unreadable, a, (unsigned long long)r->aborted, a, r->open, a,
                       (unsigned long long)r->in, a, (unsigned long long)r->out);
}

/* One series per public listener. */
static int metrics_listeners(const struct td_server *srv, struct td_buf *out)
{
  const struct td_listener *l;
  int rc = TN_OK;

  rc |= td_buf_append_str(out, LISTENERS_HELP);
  for (l = td_listener_next(srv, NULL); l != NULL; l = td_listener_next(srv, l)) {
    struct snap_listener row;
    snap_listener(l, &row);
    rc |= listener_rows(out, &row);
  }
  return rc;
}

#define CLIENTS_HELP \
  "# HELP tunneld_client_bytes_in_total Bytes carried towards each client.\n" \
  "# TYPE tunneld_client_bytes_in_total counter\n" \
  "# HELP tunneld_client_bytes_out_total Bytes carried from each client.\n" \
  "# TYPE tunneld_client_bytes_out_total counter\n" \
  "# HELP tunneld_client_streams_open Connections each client carries now.\n" \
  "# TYPE tunneld_client_streams_open gauge\n"

/* One client identity's numbers; id is the client's own string, valid while the snapshot is taken only. */
struct snap_client {
  char *id;  /* owned copy in a snapshot */
  uint64_t v[3];
};

static void snap_client(const struct td_client *c, struct snap_client *r)
{
  td_listener_client_bytes(c, &r->v[0], &r->v[1]);
  r->v[2] = c->open_streams;
}

static int client_rows(struct td_buf *out, const char *id, const uint64_t v[3])
{
  static const char *const names[] = { "tunneld_client_bytes_in_total", "tunneld_client_bytes_out_total",
                                       "tunneld_client_streams_open" };
  int rc = TN_OK;

  for (size_t i = 0; i < 3; i++) {
    rc |= td_buf_printf(out, "%s{client=\"", names[i]);
    rc |= td_metrics_label(out, id);
    rc |= td_buf_printf(out, "\"} %llu\n", (unsigned long long)v[i]);
  }
  return rc;
}

/* One series per client identity. */
static int metrics_clients(const struct td_server *srv, struct td_buf *out)
{
  const struct td_client *c;
  int rc = TN_OK;

  rc |= td_buf_append_str(out, CLIENTS_HELP);
  for (c = td_registry_next(srv, NULL); c != NULL; c = td_registry_next(srv, c)) {
    struct snap_client row;
    snap_client(c, &row);
    rc |= client_rows(out, c->id, row.v);
  }
  return rc;
}

static int api_counters(const struct td_server *srv, struct td_buf *out)
{
  const struct td_metrics *m = &srv->metrics;

  return td_api_counters_text(&(struct td_api_counters){ m->put_ok, m->put_invalid, m->put_conflict, m->put_failed },
                              out);
}

int td_metrics_text(const struct td_server *srv, struct td_buf *out)
{
  int rc = metrics_totals(srv, out);

  rc |= metrics_listeners(srv, out);
  rc |= metrics_clients(srv, out);
  return rc == TN_OK ? TN_OK : TN_ERR_NOMEM;
}

/*
 * A MetricsListen scrape: the numbers are copied once when the request arrives (a few hundred kilobytes for a full
 * table, no text), then the text is written out METRICS_CHUNK bytes per write completion, so a large table costs
 * the loop a little at a time and never more memory than the copy and one chunk per scrape.
 */
struct metrics_snapshot {
  struct td_buf head;              /* the server-wide totals, rendered at once (small) */
  struct snap_listener *listeners;
  size_t n_listeners;
  struct snap_client *clients;
  size_t n_clients;
  struct td_buf tail;              /* the API counters */
  size_t stage;                    /* 0 head, 1 listeners, 2 clients, 3 tail, 4 done */
  size_t next;                     /* next row of the current stage */
};

static void snapshot_free(struct metrics_snapshot *s)
{
  for (size_t i = 0; i < s->n_clients; i++)
    free(s->clients[i].id);
  free(s->clients);
  free(s->listeners);
  td_buf_free(&s->head);
  td_buf_free(&s->tail);
  memset(s, 0, sizeof(*s));
}

static int snapshot_take(const struct td_server *srv, struct metrics_snapshot *s)
{
  const struct td_listener *l;
  const struct td_client *c;
  size_t nl = 0, nc = 0;

  memset(s, 0, sizeof(*s));
  td_buf_init(&s->head, TD_API_MAX_RESPONSE);
  td_buf_init(&s->tail, TD_API_MAX_RESPONSE);
  for (l = td_listener_next(srv, NULL); l != NULL; l = td_listener_next(srv, l))
    nl++;
  for (c = td_registry_next(srv, NULL); c != NULL; c = td_registry_next(srv, c))
    nc++;
  s->listeners = calloc(nl + 1, sizeof(*s->listeners));
  s->clients = calloc(nc + 1, sizeof(*s->clients));
  if (s->listeners == NULL || s->clients == NULL || metrics_totals(srv, &s->head) != TN_OK ||
      api_counters(srv, &s->tail) != TN_OK)
    return TN_ERR_NOMEM;
  for (l = td_listener_next(srv, NULL); l != NULL && s->n_listeners < nl; l = td_listener_next(srv, l))
    snap_listener(l, &s->listeners[s->n_listeners++]);
  for (c = td_registry_next(srv, NULL); c != NULL && s->n_clients < nc; c = td_registry_next(srv, c)) {
    struct snap_client *r = &s->clients[s->n_clients];
    snap_client(c, r);
    if ((r->id = strdup(c->id)) == NULL)
      return TN_ERR_NOMEM;
    s->n_clients++;
  }
  return TN_OK;
}

/* Renders the next rows into out until it holds at least `chunk` bytes or the text ends; false once all is out. */
static int snapshot_render(struct metrics_snapshot *s, struct td_buf *out, size_t chunk)
{
  int rc = TN_OK;

  while (s->stage < 4 && out->len < chunk && rc == TN_OK) {
    switch (s->stage) {
    case 0:
      rc |= td_buf_append(out, s->head.data, s->head.len);
      rc |= td_buf_append_str(out, LISTENERS_HELP);
      s->stage = 1;
      break;
    case 1:
      if (s->next < s->n_listeners) {
        rc |= listener_rows(out, &s->listeners[s->next++]);
      } else {
        rc |= td_buf_append_str(out, CLIENTS_HELP);
        s->stage = 2;
        s->next = 0;
      }
      break;
    case 2:
      if (s->next < s->n_clients) {
        rc |= client_rows(out, s->clients[s->next].id, s->clients[s->next].v);
        s->next++;
      } else {
        s->stage = 3;
      }
      break;
    default:
      rc |= td_buf_append(out, s->tail.data, s->tail.len);
      s->stage = 4;
      break;
    }
  }
  return rc == TN_OK ? TN_OK : TN_ERR_NOMEM;
}

/* A scrape connection: one request, one answer, closed. Scrapers reconnect each time. */
struct metrics_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  struct td_server *srv;
  struct td_http_conn http;
  struct td_buf out;
  struct metrics_snapshot snap;
  uv_write_t write_req;
  int handles_open;
  int answered;
  bool streaming;                  /* the answer is the snapshot, written chunk by chunk */
  bool paced;                      /* the timer waits for the next chunk's turn, not for a timeout */
  bool listed;
  char peer[TN_ADDR_STRLEN];       /* the peer's IP address: METRICS_PER_ADDRESS */
  struct metrics_conn *next;       /* srv->metrics_conns */
  struct metrics_conn *prev;
};

static void conn_on_closed(uv_handle_t *h)
{
  struct metrics_conn *m = h->data;

  if (--m->handles_open > 0)
    return;
  m->srv->metrics_connections--;
  if (m->listed) {
    if (m->prev != NULL)
      m->prev->next = m->next;
    else
      m->srv->metrics_conns = m->next;
    if (m->next != NULL)
      m->next->prev = m->prev;
  }
  td_http_conn_free(&m->http);
  td_buf_free(&m->out);
  snapshot_free(&m->snap);
  free(m);
}

static void conn_close(struct metrics_conn *m)
{
  if (uv_is_closing((uv_handle_t *)&m->tcp))
    return;
  uv_close((uv_handle_t *)&m->tcp, conn_on_closed);
  uv_close((uv_handle_t *)&m->timer, conn_on_closed);
}

static void conn_write_out(struct metrics_conn *m);
static void conn_next_chunk(struct metrics_conn *m);

static void on_timeout(uv_timer_t *t)
{
  struct metrics_conn *m = t->data;

  if (m->paced) {
    m->paced = false;
    conn_next_chunk(m);
    return;
  }
  conn_close(m);
}

/* Renders and writes the next chunk when the scrapes' shared pace allows, else waits for its turn. */
static void conn_next_chunk(struct metrics_conn *m)
{
  struct td_server *srv = m->srv;
  uint64_t now = uv_now(srv->loop);

  if (srv->metrics_next_chunk_ms > now) {
    m->paced = true;
    uv_timer_start(&m->timer, on_timeout, srv->metrics_next_chunk_ms - now, 0);
    return;
  }
  srv->metrics_next_chunk_ms = now + METRICS_CHUNK_INTERVAL_MS;
  if (snapshot_render(&m->snap, &m->out, METRICS_CHUNK) != TN_OK) {
    conn_close(m);
    return;
  }
  uv_timer_start(&m->timer, on_timeout, METRICS_TIMEOUT_MS, 0);  /* the answer moved */
  conn_write_out(m);
}

static void on_written(uv_write_t *req, int status)
{
  struct metrics_conn *m = req->data;

  if (status < 0 || !m->streaming || m->snap.stage >= 4 || uv_is_closing((uv_handle_t *)&m->tcp)) {
    conn_close(m);
    return;
  }
  td_buf_reset(&m->out);
  conn_next_chunk(m);
}

static void conn_write_out(struct metrics_conn *m)
{
  uv_buf_t buf = uv_buf_init((char *)m->out.data, (unsigned)m->out.len);

  m->write_req.data = m;
  if (uv_write(&m->write_req, (uv_stream_t *)&m->tcp, &buf, 1, on_written) != 0)
    conn_close(m);
}

static void conn_answer(struct metrics_conn *m, int status, const char *type, const struct td_buf *body)
{
  m->answered = 1;
  uv_read_stop((uv_stream_t *)&m->tcp);
  if (td_http_response(&m->out, status, type, body != NULL ? body->data : NULL, body != NULL ? body->len : 0, 0,
                       NULL) != TN_OK) {
    conn_close(m);
    return;
  }
  conn_write_out(m);
}

/*
 * The exposition: a snapshot of the numbers, then the text a chunk at a time. Its length is not known in advance,
 * so the body ends with the connection (HTTP/1.1 allows it with Connection: close, and Prometheus reads it).
 */
static void conn_stream_metrics(struct metrics_conn *m)
{
  static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                             "Cache-Control: no-store\r\nConnection: close\r\n\r\n";

  m->answered = 1;
  uv_read_stop((uv_stream_t *)&m->tcp);
  if (snapshot_take(m->srv, &m->snap) != TN_OK) {
    struct td_buf empty;
    snapshot_free(&m->snap);
    td_buf_init(&empty, 1);
    conn_answer(m, 500, "text/plain; charset=utf-8", &empty);
    td_buf_free(&empty);
    return;
  }
  m->streaming = true;
  if (td_buf_append(&m->out, head, sizeof(head) - 1) != TN_OK) {
    conn_close(m);
    return;
  }
  conn_next_chunk(m);
}

static void conn_serve(struct metrics_conn *m, const struct td_http_request *req)
{
  struct td_buf body;

  if (strcmp(req->path, "/metrics") == 0 && strcmp(req->method, "GET") == 0) {
    conn_stream_metrics(m);
    return;
  }
  td_buf_init(&body, TD_API_MAX_RESPONSE);
  if (strcmp(req->path, "/metrics") != 0) {
    td_buf_append_str(&body, "not found: this port serves GET /metrics only\n");
    conn_answer(m, 404, "text/plain; charset=utf-8", &body);
  } else {
    td_buf_append_str(&body, "method not allowed\n");
    conn_answer(m, 405, "text/plain; charset=utf-8", &body);
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

/*
 * Scrapes open now from the same address as m. One already closing (its scraper left, its close callback still to
 * come in this loop turn) holds no slot: a scraper that reconnects at once is not refused for its own last scrape.
 */
static unsigned same_address(const struct td_server *srv, const struct metrics_conn *m)
{
  const struct metrics_conn *o;
  unsigned n = 0;

  for (o = srv->metrics_conns; o != NULL; o = o->next)
    if (o != m && !uv_is_closing((const uv_handle_t *)&o->tcp) && strcmp(o->peer, m->peer) == 0)
      n++;
  return n;
}

static void peer_ip(const uv_tcp_t *t, char *out, size_t outlen)
{
  struct sockaddr_storage ss;
  int len = sizeof(ss);

  out[0] = '\0';
  if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len) != 0)
    return;
  if (ss.ss_family == AF_INET)
    uv_ip4_name((const struct sockaddr_in *)&ss, out, outlen);
  else if (ss.ss_family == AF_INET6)
    uv_ip6_name((const struct sockaddr_in6 *)&ss, out, outlen);
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
  if (uv_accept(server, (uv_stream_t *)&m->tcp) != 0) {
    conn_close(m);
    return;
  }
  peer_ip(&m->tcp, m->peer, sizeof(m->peer));
  if (srv->metrics_connections > METRICS_MAX_CONNECTIONS || same_address(srv, m) >= METRICS_PER_ADDRESS ||
      uv_read_start((uv_stream_t *)&m->tcp, on_alloc, on_read) != 0) {
    uv_tcp_close_reset(&m->tcp, conn_on_closed);
    uv_close((uv_handle_t *)&m->timer, conn_on_closed);
    return;
  }
  m->listed = true;
  m->next = srv->metrics_conns;
  if (m->next != NULL)
    m->next->prev = m;
  srv->metrics_conns = m;
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
  struct metrics_conn *m;

  if (srv->metrics_listening && !uv_is_closing((uv_handle_t *)&srv->metrics_tcp))
    uv_close((uv_handle_t *)&srv->metrics_tcp, NULL);
  /* A scrape can last seconds now: end those under way, so their snapshots are freed by their close callbacks. */
  for (m = srv->metrics_conns; m != NULL; m = m->next)
    conn_close(m);
}
