/* listener.c: tunneld's public listeners and the conversations they carry to clients. */
#include "listener.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gate.h"
#include "registry.h"
#include "server.h"
#include "tunnel/error.h"
#include "tunnel/log.h"
#include "tunnel/open.h"
#include "tunnel/pipe.h"
#include "tunnel/sni.h"

/* A public connection: which listener and client it counts against. */
struct td_conv {
  struct td_listener *listener;
  struct td_client *client;
  tn_pipe *pipe;
  char peer[TN_ADDR_STRLEN];
  char source_key[TD_SOURCE_KEY_MAX]; /* "ip:" + its source network once counted there, else "" */
  uint32_t reads;                /* reads while waiting for a host name ... */
  size_t held;                   /* ... the bytes they brought ... */
  size_t next_parse;             /* ... and how many make the next parse worth it */
  bool routed;                   /* its stream is open (a port shared by hostname reads first) ... */
  char *glob;                    /* ... to the tunnel with this glob (NULL: "*"), to count per tunnel */
  struct td_conv *next;          /* listener->convs */
  struct td_conv *prev;
  struct td_conv *cnext;         /* client->convs */
  struct td_conv *cprev;
};

/* Public ports: a burst of users connecting at once waits in the kernel rather than being refused. */
#define TD_PUBLIC_BACKLOG 1024
/* What browsers send: a request head with 32 KiB of headers and more (nginx's default accepts 32 KiB, Cloudflare
 * 32 KiB, a browser 180 cookies of 4 KiB), and the largest ClientHello tn_sni accepts. It costs no more memory than
 * one read does (the pipe reads 64 KiB at a time). A visitor whose name is not read within it is refused. */
#define TD_HOSTNAME_PEEK_MAX 65536
/* A visitor whose reads average fewer bytes than this after this many reads, its name still incomplete, is
 * dribbling (real clients send a ClientHello or request head in one or two writes; a large head arrives in
 * segments of a thousand bytes and more): refused, not left to hold its slot until HostnameTimeoutMs. */
#define TD_HOSTNAME_PEEK_READS 32
#define TD_HOSTNAME_PEEK_MIN_READ 256
#define TD_REFUSAL_WHY_MAX 320

static void listener_release(struct td_listener *l);

/* ---- public listeners ---- */

/* The key a site's routed connections are counted under in listener->counts: its glob ("*" for none). */
static void site_key(char *out, size_t len, const char *glob)
{
  snprintf(out, len, "site:%s", glob != NULL ? glob : "*");
}

/* A visitor decides how often its connection ends abnormally (a reset right after connecting, thousands a second):
 * counted, and logged through the rate limiter per port, never a line each. */
static void conv_log_ended(struct td_listener *l, const struct td_conv *v, const char *reason)
{
  char port[8];

  l->aborted++;
  snprintf(port, sizeof(port), "%u", (unsigned)l->addr.port);
  td_server_log_limited(l->srv, TN_LOG_INFO, "tunnel port connections ended", port,
                        "tunnel port %u: %s via client %s ended: %s", (unsigned)l->addr.port, v->peer,
                        v->client ? v->client->id : "-", reason);
}

static void conv_on_close(tn_pipe *p, const struct tn_pipe_result *r)
{
  struct td_conv *v = tn_pipe_data(p);
  struct td_listener *l = v->listener;

  l->open_connections--;
  if (v->source_key[0] != '\0')
    td_sources_add(&l->counts, v->source_key, TD_COUNT_PUBLIC, -1);
  if (v->routed) {
    char key[TD_SOURCE_KEY_MAX];
    site_key(key, sizeof(key), v->glob);
    td_sources_add(&l->counts, key, TD_COUNT_PUBLIC, -1);
  }
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
    conv_log_ended(l, v, r->reason);
  if (v->prev != NULL)
    v->prev->next = v->next;
  else
    l->convs = v->next;
  if (v->next != NULL)
    v->next->prev = v->prev;
  free(v->glob);
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

/* The accepted connection is counted against its listener from the start, so a listener waiting for a name is
 * not freed under it. */
static void conv_track(struct td_conv *v, struct td_listener *l, tn_pipe *p)
{
  v->listener = l;
  v->pipe = p;
  v->next = l->convs;
  if (l->convs != NULL)
    l->convs->prev = v;
  l->convs = v;
  l->open_connections++;
}

/*
 * ... and against its source (an IPv4 address, an IPv6 /64): false, the connection refused, once the source holds
 * MaxPublicConnectionsPerSource on this port, so one address cannot take every slot of a port (or of a site).
 */
static bool conv_count_source(struct td_conv *v, tn_pipe *p)
{
  struct td_listener *l = v->listener;
  uint32_t max = l->srv->cfg.limits.max_public_per_source;
  char source[48], key[TD_SOURCE_KEY_MAX];
  struct tn_addr peer;

  if (tn_pipe_addresses(p, &peer, NULL) != 0)
    return true;  /* gone already: it ends at its first read */
  tn_addr_format(&peer, v->peer, sizeof(v->peer));
  td_source_name(&peer, source, sizeof(source));
  snprintf(key, sizeof(key), "ip:%s", source);
  if (td_sources_get(&l->counts, key, TD_COUNT_PUBLIC) >= max) {
    l->refused++;
    td_server_log_limited(l->srv, TN_LOG_WARN, "tunnel port per-source refusals", source,
                          "tunnel port %u: refused %s: MaxPublicConnectionsPerSource (%u) reached for %s",
                          (unsigned)l->addr.port, v->peer, (unsigned)max, source);
    tn_pipe_refuse(p, NULL, 0, "MaxPublicConnectionsPerSource reached");
    return false;
  }
  if (td_sources_add(&l->counts, key, TD_COUNT_PUBLIC, 1) == TN_OK)
    snprintf(v->source_key, sizeof(v->source_key), "%s", key);
  return true;
}

/*
 * A site's own share of the port and of its client's link, given the site holds n connections now: each site on a
 * shared port has its own MaxConnectionsPerTunnel, and no tunnel may hold more than half of MaxStreamsPerLink, so
 * one tunnel's visitors can never take the streams its client's other tunnels need.
 */
static bool site_admits(const struct td_listener *l, uint64_t n, char *why, size_t whylen)
{
  const struct td_limits *lim = &l->srv->cfg.limits;
  uint32_t share = lim->common.max_streams_per_link / 2 > 0 ? lim->common.max_streams_per_link / 2 : 1;

  if (n >= lim->max_connections_per_tunnel) {
    snprintf(why, whylen, "MaxConnectionsPerTunnel reached");
    return false;
  }
  if (n >= share) {
    snprintf(why, whylen, "the tunnel holds half of its client link's MaxStreamsPerLink (%u)", (unsigned)share);
    return false;
  }
  return true;
}

/* The connection is routed to the site glob: counted as the site's. */
static void conv_routed(struct td_conv *v, const char *glob)
{
  char key[TD_SOURCE_KEY_MAX];

  site_key(key, sizeof(key), glob);
  if (td_sources_add(&v->listener->counts, key, TD_COUNT_PUBLIC, 1) == TN_OK)
    v->routed = true;
}

/*
 * ... and against its client once routed; its stream opens with the tunnel's open header. name is the host name
 * the visitor asked for on a port shared by hostname (NULL or "" for none): it goes in the header (version 2)
 * when the client's TLS handshake agreed ALPN "tunnel/2", for its PROXY v2 header.
 */
static void conv_open(struct td_conv *v, struct td_client *c, const struct td_tunnel *t, const char *name)
{
  struct td_listener *l = v->listener;
  struct tn_open hdr;

  v->client = c;
  v->cnext = c->convs;
  if (c->convs != NULL)
    c->convs->cprev = v;
  c->convs = v;
  l->accepted++;
  c->open_streams++;

  memset(&hdr, 0, sizeof(hdr));
  tn_pipe_addresses(v->pipe, &hdr.peer, &hdr.listener);
  hdr.proxy_version = t->proxy_version;
  if (t->backend_service != NULL) {
    hdr.backend_kind = TN_OPEN_BACKEND_SERVICE;
    snprintf(hdr.service, sizeof(hdr.service), "%s", t->backend_service);
  } else {
    hdr.backend_kind = TN_OPEN_BACKEND_PORT;
    hdr.backend_port = t->backend_port;
  }
  if (name != NULL && name[0] != '\0' && strcmp(tn_tls_alpn(tn_link_tls(c->link)), TN_OPEN_ALPN_V2) == 0)
    snprintf(hdr.authority, sizeof(hdr.authority), "%s", name);
  tn_log_debug("tunnel port %u: %s -> client %s", (unsigned)l->addr.port, v->peer, c->id);
  tn_pipe_start(v->pipe, c->link, &hdr);  /* on failure it has already closed through conv_on_close */
}

/* The client tunnel index should go to now, or NULL with why (the connection is refused). */
static struct td_client *route_client(struct td_listener *l, size_t index, char *why, size_t whylen)
{
  struct td_server *srv = l->srv;
  const struct td_tunnel *t = &srv->table.tunnels[index];
  struct td_client *c = td_registry_active(srv, index);

  if (c == NULL) {
    /* Name the clients: the operator's next step is finding out why that one is not connected. */
    snprintf(why, whylen, "none of its clients is connected (%.255s%s)", t->client_id,
             t->n_backups > 0 ? " and its backups" : "");
    return NULL;
  }
  if (c->open_streams >= srv->cfg.limits.max_connections_per_client) {
    snprintf(why, whylen, "MaxConnectionsPerClient reached");
    return NULL;
  }
  return c;
}

/* The listener's tunnel whose glob matches name most specifically ("" matches "*" only), or -1. */
static long pick_tunnel(const struct td_listener *l, const char *name)
{
  const struct td_listener_index *ix = l->srv->table_ix;
  enum tn_sni_match best = TN_SNI_NO_MATCH;
  long pick = -1;

  for (size_t k = l->route_first; ix != NULL && k < l->route_first + l->n_routes; k++) {
    enum tn_sni_match m = ix[k].glob == NULL ? TN_SNI_MATCH_ANY : tn_sni_glob_match(ix[k].glob, name);
    if (m > best) {
      best = m;
      pick = (long)ix[k].idx;
    }
  }
  return pick;
}

/* A fatal unrecognized_name alert (RFC 6066 section 3): the visitor's browser says which name was not served. */
static const uint8_t tls_unrecognized_name[] = { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70 };
/* Fatal decode_error: a ClientHello tn_sni cannot read. */
static const uint8_t tls_decode_error[] = { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32 };
/* Fatal handshake_failure: a ClientHello larger than TD_HOSTNAME_PEEK_MAX, or not complete before the visitor
 * stopped sending. */
static const uint8_t tls_handshake_failure[] = { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28 };
static const char http_misdirected[] = "HTTP/1.1 421 Misdirected Request\r\nContent-Type: text/plain\r\n"
                                       "Content-Length: 40\r\nConnection: close\r\n\r\n"
                                       "no site for this host name on this port\n";
static const char http_bad_request[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                       "Content-Length: 40\r\nConnection: close\r\n\r\n"
                                       "request head malformed or without Host\n";
static const char http_too_large[] = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n"
                                     "Content-Length: 33\r\nConnection: close\r\n\r\n"
                                     "request head larger than 64 KiB\n";

/*
 * Each parse reads everything held, so a visitor sending a byte per segment must not cost a parse per byte (64 KiB
 * of parsing per byte). Parse on the first read (garbage is refused at once), whenever the held bytes have grown
 * by a quarter since the last parse (the total stays a few times what was held), and when they may have just
 * become complete: an HTTP head's empty line arrived, or a TLS record's announced length is reached.
 */
static bool worth_parsing(const struct td_conv *v, const uint8_t *data, size_t len)
{
  size_t from = v->held > 3 ? v->held - 3 : 0;

  if (v->held == 0 || len >= v->next_parse)
    return true;
  if (data[0] == 0x16) {
    size_t first = len >= 5 ? 5 + ((size_t)data[3] << 8 | data[4]) : SIZE_MAX;
    return v->held < first && len >= first;
  }
  for (size_t i = from; i + 1 < len; i++)
    if (data[i] == '\n' && (data[i + 1] == '\n' || (i + 2 < len && data[i + 1] == '\r' && data[i + 2] == '\n')))
      return true;
  return false;
}

/* A visitor on a port shared by hostname whose name could not be read: refused in its own protocol, never guessed
 * to be for "*" (a request for one site with a large cookie must not reach another site's backend). */
enum td_unreadable { TD_MALFORMED, TD_TOO_LARGE, TD_TOO_SLOW };
static const char http_timeout[] = "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n"
                                   "Content-Length: 37\r\nConnection: close\r\n\r\n"
                                   "request head sent a few bytes a time\n";

static void refuse_unreadable(struct td_conv *v, tn_pipe *p, enum tn_sni_kind kind, enum td_unreadable why,
                              const char *what)
{
  struct td_listener *l = v->listener;
  char port[8];

  l->hostname_unreadable++;
  snprintf(port, sizeof(port), "%u", (unsigned)l->addr.port);
  td_server_log_limited(l->srv, TN_LOG_WARN, "tunnel port unreadable names", port,
                        "tunnel port %u: refused %s: %s", (unsigned)l->addr.port, v->peer, what);
  if (kind == TN_SNI_TLS && why != TD_MALFORMED)
    tn_pipe_refuse(p, tls_handshake_failure, sizeof(tls_handshake_failure), what);
  else if (kind == TN_SNI_TLS)
    tn_pipe_refuse(p, tls_decode_error, sizeof(tls_decode_error), what);
  else if (kind == TN_SNI_HTTP && why == TD_TOO_LARGE)
    tn_pipe_refuse(p, (const uint8_t *)http_too_large, sizeof(http_too_large) - 1, what);
  else if (kind == TN_SNI_HTTP && why == TD_TOO_SLOW)
    tn_pipe_refuse(p, (const uint8_t *)http_timeout, sizeof(http_timeout) - 1, what);
  else if (kind == TN_SNI_HTTP)
    tn_pipe_refuse(p, (const uint8_t *)http_bad_request, sizeof(http_bad_request) - 1, what);
  else
    tn_pipe_refuse(p, NULL, 0, what);
}

/* Hostname routing: the first bytes so far; decides once they name a host, or once no more will come. */
static void on_peeked(tn_pipe *p, const uint8_t *data, size_t len, enum tn_pipe_peek_status status)
{
  struct td_conv *v = tn_pipe_data(p);
  struct td_listener *l = v->listener;
  char name[TN_SNI_NAME_MAX + 1], why[TD_REFUSAL_WHY_MAX], port[8];
  enum tn_sni_kind kind = TN_SNI_UNKNOWN;
  struct td_client *c;
  bool dribbling = false;
  long idx;
  int rc;

  if (status == TN_PIPE_PEEK_MORE) {
    v->reads++;
    dribbling = v->reads > TD_HOSTNAME_PEEK_READS && len / v->reads < TD_HOSTNAME_PEEK_MIN_READ;
    if (!dribbling && !worth_parsing(v, data, len)) {
      v->held = len;
      return;
    }
  }
  /* The pipe may hold one read past the bound; judging those bytes would let the read sizes, not the visitor's
   * head, decide whether a head over the bound is routed. */
  rc = tn_sni_peek(data, len < TD_HOSTNAME_PEEK_MAX ? len : TD_HOSTNAME_PEEK_MAX, &kind, name);
  v->held = len;
  v->next_parse = len + len / 4 + 1;
  if (rc == TN_ERR_NEED_MORE && status == TN_PIPE_PEEK_MORE && !dribbling)
    return;
  if (l->closed || l->n_routes == 0) {
    tn_pipe_refuse(p, NULL, 0, "tunnel removed");
    return;
  }
  snprintf(port, sizeof(port), "%u", (unsigned)l->addr.port);
  if (rc == TN_ERR_NEED_MORE && status == TN_PIPE_PEEK_TIMEOUT) {
    /* A visitor that names no host in time holds a descriptor and a buffer: cut it, whatever "*" would take. */
    l->hostname_timeouts++;
    td_server_log_limited(l->srv, TN_LOG_WARN, "tunnel port hostname timeouts", port,
                          "tunnel port %u: %s named no host within HostnameTimeoutMs (%u ms, %zu bytes); closed",
                          (unsigned)l->addr.port, v->peer, l->srv->cfg.limits.hostname_timeout_ms, len);
    tn_pipe_refuse(p, NULL, 0, "no host name in time");
    return;
  }
  if (rc == TN_ERR_NEED_MORE && status == TN_PIPE_PEEK_EOF && len == 0) {
    tn_pipe_refuse(p, NULL, 0, "closed before sending anything");
    return;
  }
  if (rc == TN_ERR_NEED_MORE && status == TN_PIPE_PEEK_EOF) {
    refuse_unreadable(v, p, kind, TD_MALFORMED, "it stopped sending before naming a host");
    return;
  }
  if (rc == TN_ERR_NEED_MORE && status == TN_PIPE_PEEK_MORE) {
    snprintf(why, sizeof(why), "a host name still incomplete after %u reads of %zu bytes on average (under %u)",
             (unsigned)v->reads, len / v->reads, TD_HOSTNAME_PEEK_MIN_READ);
    refuse_unreadable(v, p, kind, TD_TOO_SLOW, why);
    return;
  }
  if (rc == TN_ERR_NEED_MORE) {
    refuse_unreadable(v, p, kind, TD_TOO_LARGE,
                      kind == TN_SNI_TLS ? "a ClientHello larger than 64 KiB" : "a request head larger than 64 KiB");
    return;
  }
  if (rc != TN_OK) {
    refuse_unreadable(v, p, kind, TD_MALFORMED,
                      kind == TN_SNI_TLS    ? "a malformed ClientHello"
                      : kind == TN_SNI_HTTP ? "a malformed HTTP request head (or HTTP/1.1 without Host)"
                                            : "bytes that are neither TLS nor HTTP");
    return;
  }
  idx = pick_tunnel(l, name);
  if (idx < 0) {
    l->unrouted++;
    char what[TN_SNI_NAME_MAX + 64];
    if (name[0] != 0)
      snprintf(what, sizeof(what), "%s \"%s\"", kind == TN_SNI_TLS ? "TLS server name" : "HTTP Host", name);
    else
      snprintf(what, sizeof(what), "%s", kind == TN_SNI_TLS ? "a ClientHello without server name"
                                                            : "an HTTP/1.0 request without Host");
    td_server_log_limited(l->srv, TN_LOG_WARN, "tunnel port unrouted", port,
                          "tunnel port %u: refused %s: no tunnel for %s and no \"*\"", (unsigned)l->addr.port,
                          v->peer, what);
    if (kind == TN_SNI_TLS)
      tn_pipe_refuse(p, tls_unrecognized_name, sizeof(tls_unrecognized_name), "no tunnel for its TLS server name");
    else
      tn_pipe_refuse(p, (const uint8_t *)http_misdirected, sizeof(http_misdirected) - 1, "no tunnel for its HTTP Host");
    return;
  }
  {
    char key[TD_SOURCE_KEY_MAX];
    site_key(key, sizeof(key), l->srv->table.tunnels[idx].glob);
    c = site_admits(l, td_sources_get(&l->counts, key, TD_COUNT_PUBLIC), why, sizeof(why))
          ? route_client(l, (size_t)idx, why, sizeof(why))
          : NULL;
  }
  if (c == NULL) {
    refuse_logged(l, why);
    tn_pipe_refuse(p, NULL, 0, why);
    return;
  }
  if (l->srv->table.tunnels[idx].glob != NULL && (v->glob = strdup(l->srv->table.tunnels[idx].glob)) == NULL) {
    tn_pipe_refuse(p, NULL, 0, "out of memory");
    return;
  }
  conv_routed(v, v->glob);
  conv_open(v, c, &l->srv->table.tunnels[idx], name);
}

static void on_public_connection(uv_stream_t *server, int status)
{
  struct td_listener *l = server->data;
  struct td_server *srv = l->srv;
  struct td_client *c = NULL;
  struct td_conv *v;
  struct tn_pipe_options pipe_opt;
  tn_pipe *p;
  char why[TD_REFUSAL_WHY_MAX];
  bool by_name;

  if (status < 0) {
    if (!td_gate_shed_on_emfile(srv, server, status))
      tn_log_warn("tunnel port %u: accept failed: %s", (unsigned)l->addr.port, uv_strerror(status));
    return;
  }
  if (l->closed || l->tunnel_index < 0 || l->n_routes == 0) {
    td_gate_drop(server);
    return;
  }
  /* One "*" tunnel: today's path, no read before the stream opens. */
  by_name = l->n_routes > 1 || srv->table.tunnels[l->tunnel_index].glob != NULL;
  /* The tunnel's own limit is named before the client's: it is the one its operator set for this port. On a port
   * shared by hostname each site has its own (checked once the name is read), and the port all of theirs. */
  if (by_name && l->open_connections >= (uint64_t)srv->cfg.limits.max_connections_per_tunnel * l->n_routes) {
    td_gate_drop(server);
    refuse_logged(l, "MaxConnectionsPerTunnel of every site on the port reached");
    return;
  }
  if (!by_name && !site_admits(l, l->open_connections, why, sizeof(why))) {
    td_gate_drop(server);
    refuse_logged(l, why);
    return;
  }
  if (!by_name && (c = route_client(l, (size_t)l->tunnel_index, why, sizeof(why))) == NULL) {
    td_gate_drop(server);
    refuse_logged(l, why);
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
  conv_track(v, l, p);
  if (!conv_count_source(v, p))
    return;
  if (!by_name) {
    conv_routed(v, NULL);
    conv_open(v, c, &srv->table.tunnels[l->tunnel_index], NULL);
    return;
  }
  if (tn_pipe_peek(p, TD_HOSTNAME_PEEK_MAX, srv->cfg.limits.hostname_timeout_ms, on_peeked) != 0)
    tn_pipe_abort(p, "socket read failed");
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
  td_sources_free(&l->counts);
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
  struct td_listener *l = h->data;

  td_sources_free(&l->counts);
  free(l);
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

/* A port shared by hostname counts by the glob each connection was routed by: tunnel indexes change at every PUT,
 * globs on one listener do not. */
uint64_t td_listener_open_for(const struct td_server *srv, size_t index)
{
  const struct td_listener *l = td_listener_for(srv, index);
  char key[TD_SOURCE_KEY_MAX];
  const char *glob;

  if (l == NULL)
    return 0;
  if (l->n_routes == 1 && srv->table.tunnels[index].glob == NULL)
    return l->open_connections;
  glob = srv->table.tunnels[index].glob;
  site_key(key, sizeof(key), glob);
  return td_sources_get(&l->counts, key, TD_COUNT_PUBLIC);
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
