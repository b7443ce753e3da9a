/* server.c: tunneld's lifecycle: load, bind the ports, the sweep timer, reloads and revocations, drain and stop. */
#include "server.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "control.h"
#include "metrics.h"
#include "mgmt.h"
#include "state.h"
#include "tunnel/error.h"
#include "tunnel/log.h"
#include "tunnel/notify.h"
#include "tunnel/open.h"

#define SWEEP_INTERVAL_MS 250u
#define RATELOG_MAX_KEYS 256u

/* ---- periodic work ---- */

static void on_sweep(uv_timer_t *t)
{
  struct td_server *srv = t->data;
  uint64_t now = uv_now(srv->loop);

  td_gate_probe_descriptors(srv);
  tn_ratelog_flush(srv->ratelog, now);
  td_registry_sweep(srv, now);
  td_listener_sweep(srv, now);
  if (srv->stopping && td_gate_next(srv, NULL) == NULL && !td_listener_busy(srv) && srv->mgmt_connections == 0 &&
      srv->put == NULL) {
    uv_timer_stop(&srv->sweep);
    if (srv->on_stopped != NULL)
      srv->on_stopped(srv);
  }
}

/* ---- lifecycle ---- */

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

/*
 * A TLS config from the configured files: CA, own certificate and key, CrlFile, and the revocation hook. The
 * control port's also agrees ALPN "tunnel/2" with a tunnelc that speaks stream-open version 2; the management
 * port's has no list, since a list makes mbedTLS refuse clients that offer only other protocols.
 */
static int server_tls_load_one(struct td_server *srv, bool control, tn_tls_config **out, char *err, size_t errlen)
{
  static const char *const control_alpn[] = { TN_OPEN_ALPN_V2, NULL };
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
  /* Without ALPN in mbedTLS, tunnelc is simply sent version 1 headers. */
  if (control && tn_tls_config_set_alpn(*out, control_alpn) == TN_ERR_UNSUPPORTED)
    tn_log_debug("server: this mbedTLS has no ALPN; stream-open headers stay at version 1");
  return 0;
}

/* Both configs, or neither (the ones in *control and *mgmt are untouched on failure). */
static int server_tls_load(struct td_server *srv, tn_tls_config **control, tn_tls_config **mgmt, char *err,
                           size_t errlen)
{
  tn_tls_config *c = NULL, *m = NULL;

  if (server_tls_load_one(srv, true, &c, err, errlen) != 0)
    return -1;
  if (server_tls_load_one(srv, false, &m, err, errlen) != 0) {
    tn_tls_config_unref(c);
    return -1;
  }
  *control = c;
  *mgmt = m;
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
  if (server_tls_load(srv, &srv->tls, &srv->mgmt_tls, err, errlen) != 0) {
    td_config_free(&srv->cfg);
    return -1;
  }
  td_config_reserved(&srv->cfg, &reserved);
  if (td_state_load(srv->cfg.state_file, &reserved, &srv->table, &srv->revoked, err, errlen) != TN_OK) {
    tn_tls_config_unref(srv->tls);
    tn_tls_config_unref(srv->mgmt_tls);
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
  rc = td_listener_listen(tcp, &a, cb);
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
    if (!td_gate_shed_on_emfile(srv, server, status))
      tn_log_warn("management: accept failed: %s", uv_strerror(status));
    return;
  }
  td_mgmt_accept(srv);
}

int td_server_start(struct td_server *srv, char *err, size_t errlen)
{
  struct td_table restored = srv->table;
  int rc;

  if (bind_port(srv, &srv->control, srv->cfg.control_port, td_control_on_connection, "TunnelControlPort", err,
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
  rc = td_apply_now(srv, &restored, err, errlen);
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

  for (ctx = td_gate_next(srv, NULL); ctx != NULL; ctx = next) {
    next = td_gate_next(srv, ctx);
    if (!ctx->handshake_done || tn_link_is_closing(ctx->link))
      continue;
    if (tn_tls_recheck(tn_link_tls(ctx->link), srv->tls, why, sizeof(why)) == TN_ERR_INVALID)
      close_untrusted(ctx, why);
  }
}

int td_server_reload(struct td_server *srv, char *err, size_t errlen)
{
  tn_tls_config *tls, *mgmt_tls;

  if (server_tls_load(srv, &tls, &mgmt_tls, err, errlen) != 0) {
    tn_log_error("server: certificate reload failed, keeping the loaded ones: %s", err);
    return -1;
  }
  tn_tls_config_unref(srv->tls);
  srv->tls = tls;
  tn_tls_config_unref(srv->mgmt_tls);
  srv->mgmt_tls = mgmt_tls;
  tn_log_info("server: certificates and CA%s reloaded from disk; new connections use them",
              srv->cfg.crl_file != NULL ? " (and CrlFile)" : "");
  recheck_links(srv);
  return 0;
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
  for (ctx = td_gate_next(srv, NULL); ctx != NULL; ctx = next) {
    next = td_gate_next(srv, ctx);
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

  tn_log_info("server: stop signal during the drain; closing the remaining connections now");
  td_listener_drain_now(srv, now);
  for (ctx = td_gate_next(srv, NULL); ctx != NULL; ctx = td_gate_next(srv, ctx))
    if (ctx->retiring)
      ctx->retire_deadline_ms = now;
  on_sweep(&srv->sweep);
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
  td_listener_close_all(srv);
  for (ctx = td_gate_next(srv, NULL); ctx != NULL; ctx = next) {
    next = td_gate_next(srv, ctx);
    if (ctx->management || ctx->client == NULL)
      tn_link_close(ctx->link, "server shutting down");
    else if (!ctx->retiring)
      td_registry_retire(ctx, srv->cfg.limits.common.drain_timeout_ms);
  }
  on_sweep(&srv->sweep);
}

void td_server_free(struct td_server *srv)
{
  td_registry_free(srv);
  free(srv->listener_of);
  free(srv->table_ix);
  free(srv->route);
  free(srv->route_start);
  srv->listener_of = NULL;
  srv->table_ix = NULL;
  srv->route = NULL;
  srv->route_start = NULL;
  td_table_free(&srv->table);
  td_revoked_free(&srv->revoked);
  tn_tls_config_unref(srv->tls);
  tn_tls_config_unref(srv->mgmt_tls);
  td_config_free(&srv->cfg);
  td_sources_free(&srv->sources);
  tn_ratelog_free(srv->ratelog, uv_now(srv->loop));
  srv->ratelog = NULL;
  if (srv->spare_fd >= 0)
    close(srv->spare_fd);
  srv->spare_fd = -1;
}
