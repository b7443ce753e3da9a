/* control.c: tunneld's control port: client links from accept to close, and their control messages. */
#include "control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allow.h"
#include "gate.h"
#include "registry.h"
#include "server.h"
#include "tunnel/control.h"
#include "tunnel/error.h"
#include "tunnel/log.h"

/*
 * A rotation message on a client's current link: the link vouches for the certificate its client's next link
 * will present, so that link replaces this one at once instead of being refused while this one is alive.
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
static void control_on_established(tn_link *link, const struct tn_tls_peer *peer)
{
  struct td_link_ctx *ctx = tn_link_data(link);
  struct td_server *srv = ctx->srv;
  struct td_client *c;

  td_gate_pending_done(srv, ctx);
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
  c = td_registry_get(srv, peer->cn);
  if (c == NULL) {
    tn_link_close(link, "out of memory");
    return;
  }
  td_registry_link_up(ctx, c);
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
    td_registry_link_down(c);
  }
  if (!ctx->retiring)
    td_registry_retire(ctx, ctx->srv->cfg.limits.common.drain_timeout_ms);
}

static void control_on_closed(tn_link *link, const char *reason)
{
  struct td_link_ctx *ctx = tn_link_data(link);
  struct td_server *srv = ctx->srv;
  struct td_client *c = ctx->client;

  if (!ctx->handshake_done) {
    char kind[96];
    td_gate_pending_done(srv, ctx);
    srv->metrics.handshake_failures++;
    /* Anyone can cause these, as often as they like: per way of failing and source, one line, then a count. */
    snprintf(kind, sizeof(kind), "control: %s", reason);
    td_server_log_limited(srv, TN_LOG_WARN, kind, ctx->source, "control: %s: %s", tn_link_peer_address(link), reason);
  } else if (c == NULL) {
    if (!ctx->quiet_close)
      td_server_log_limited(srv, TN_LOG_WARN, "control: refused certificates", ctx->source, "control: %s: %s",
                            tn_link_peer_address(link), reason);
  } else if (c->link == link) {
    td_registry_link_down(c);
    if (strstr(reason, "dead-peer") != NULL)
      srv->metrics.links_dead++;
    tn_log_warn("client %s: disconnected (%s): %s", c->id, tn_link_peer_address(link), reason);
  } else {
    tn_log_info("client %s: old link from %s closed: %s", c->id, tn_link_peer_address(link), reason);
  }
  td_gate_forget(ctx);
}

static const struct tn_link_callbacks control_callbacks = {
  .on_established = control_on_established,
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
void td_control_on_connection(uv_stream_t *server, int status)
{
  struct td_server *srv = server->data;
  struct tn_link_options opt;
  struct td_link_ctx *ctx;

  if (status < 0) {
    if (!td_gate_shed_on_emfile(srv, server, status))
      tn_log_warn("control: accept failed: %s", uv_strerror(status));
    return;
  }
  if (!td_gate_admit(srv, server, TD_COUNT_CONTROL_PENDING))
    return;
  ctx = calloc(1, sizeof(*ctx));
  if (ctx == NULL) {
    td_gate_drop(server);
    return;
  }
  ctx->srv = srv;
  link_options(srv, &opt);
  if (tn_link_accept(&ctx->link, server, &opt, &control_callbacks, ctx) != 0) {
    free(ctx);
    return;
  }
  td_gate_add(srv, ctx, TD_COUNT_CONTROL_PENDING);
}
