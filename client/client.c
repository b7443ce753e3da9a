/* client.c: tunnelc's lifecycle: configuration and identity, the list of servers, readiness, reload and stop. */
#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/error.h"
#include "tunnel/log.h"
#include "tunnel/notify.h"
#include "tunnel/open.h"

/* ---- configuration ---- */

/* The TLS layer names the file; the operator also needs the config file and the key that named it. */
static void tls_error_context(const struct tc_config *cfg, char *err, size_t errlen)
{
  const char *field = "CaCertificateFile, ClientTlsCertificateFile, ClientTlsKeyFile";
  char *msg = strdup(err);
  size_t n;

  if (msg == NULL)
    return;
  if (strncmp(msg, cfg->key_file, n = strlen(cfg->key_file)) == 0 && msg[n] == ':')
    field = "ClientTlsKeyFile";
  else if (strncmp(msg, cfg->cert_file, n = strlen(cfg->cert_file)) == 0 && msg[n] == ':')
    field = "ClientTlsCertificateFile";
  else if (strncmp(msg, cfg->ca_file, n = strlen(cfg->ca_file)) == 0 && msg[n] == ':')
    field = "CaCertificateFile";
  snprintf(err, errlen, "%s: \"%s\": %s", cfg->path, field, msg);
  free(msg);
}

static int load_tls(const struct tc_config *cfg, tn_tls_config **tls, char *identity, char *sha256, char *err,
                    size_t errlen)
{
  struct tn_tls_peer own;
  char why[256];

  /* Offered so tunneld sends stream-open version 2 (the visitor's host name); an older tunneld ignores it. */
  static const char *const alpn[] = { TN_OPEN_ALPN_V2, NULL };

  if (tn_tls_config_new(tls, TN_TLS_CLIENT, cfg->ca_file, cfg->cert_file, cfg->key_file, err, errlen) != TN_OK) {
    tls_error_context(cfg, err, errlen);
    return -1;
  }
  if (tn_tls_config_set_alpn(*tls, alpn) == TN_ERR_UNSUPPORTED)
    tn_log_debug("client: this mbedTLS has no ALPN; tunneld will send no host names for PROXY v2");
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

static int add_server(struct tc_client *c, const struct tc_config_server *target)
{
  struct tc_server **grown, *s;

  grown = realloc(c->servers, (c->n_servers + 1) * sizeof(*c->servers));
  if (grown == NULL)
    return TN_ERR_NOMEM;
  c->servers = grown;
  s = tc_server_new(c, target, c->cfg.servers_listed);
  if (s == NULL)
    return TN_ERR_NOMEM;
  c->servers[c->n_servers++] = s;
  return TN_OK;
}

int tc_client_init(struct tc_client *c, uv_loop_t *loop, const char *cfg_path, char *err, size_t errlen)
{
  memset(c, 0, sizeof(*c));
  c->loop = loop;
  c->status_up = SIZE_MAX;
  if (tc_config_load(&c->cfg, cfg_path, err, errlen) != 0)
    return -1;
  c->ratelog = tn_ratelog_new(TC_RATELOG_MAX_KEYS);  /* NULL (out of memory) only means unlimited lines */
  if (load_tls(&c->cfg, &c->tls, c->identity, c->cert_sha256, err, errlen) != 0) {
    tc_config_free(&c->cfg);
    tn_ratelog_free(c->ratelog, uv_now(loop));
    c->ratelog = NULL;
    return -1;
  }
  {
    /* Jitter only spreads clients cut off together if each process draws its own sequence. */
    unsigned seed;
    if (uv_random(NULL, NULL, &seed, sizeof(seed), 0, NULL) != 0)
      seed = (unsigned)uv_hrtime();
    srandom(seed);
  }
  for (size_t i = 0; i < c->cfg.n_servers; i++) {
    if (add_server(c, &c->cfg.servers[i]) != TN_OK) {
      snprintf(err, errlen, "%s: out of memory", cfg_path);
      for (size_t j = 0; j < c->n_servers; j++) {
        uv_close((uv_handle_t *)&c->servers[j]->retry_timer, NULL);
        uv_close((uv_handle_t *)&c->servers[j]->drain_timer, NULL);
      }
      uv_run(loop, UV_RUN_DEFAULT);
      tc_client_free(c);
      return -1;
    }
  }
  return 0;
}

/* Servers the configuration names now (removed ones still draining are not counted). */
static size_t servers_configured(const struct tc_client *c, size_t *up)
{
  size_t n = 0;

  *up = 0;
  for (size_t i = 0; i < c->n_servers; i++) {
    if (c->servers[i]->removed)
      continue;
    n++;
    if (tc_server_is_up(c->servers[i]))
      (*up)++;
  }
  return n;
}

const char *tc_client_status(struct tc_client *c)
{
  size_t up, n = servers_configured(c, &up);

  if (!c->cfg.servers_listed)
    return "reloaded";
  snprintf(c->status, sizeof(c->status), "%zu of %zu servers connected", up, n);
  return c->status;
}

void tc_client_server_changed(struct tc_client *c)
{
  size_t up, n = servers_configured(c, &up);
  bool all_failed = true;

  if (c->stopping)
    return;
  if (!c->cfg.servers_listed) {
    /* One server: readiness as it always was. */
    if (!c->ready_notified && (up > 0 || (n > 0 && c->servers[0]->failed_once))) {
      c->ready_notified = true;
      tn_notify_ready(up > 0 ? "connected" : "retrying");
    }
    return;
  }
  for (size_t i = 0; i < c->n_servers; i++)
    if (!c->servers[i]->removed && !c->servers[i]->failed_once && !tc_server_is_up(c->servers[i]))
      all_failed = false;
  if (!c->ready_notified && (up > 0 || all_failed)) {
    /* Up on the first link; configured and retrying everywhere is a steady state, not a start failure. */
    c->ready_notified = true;
    c->status_up = up;
    tn_notify_ready(tc_client_status(c));
    return;
  }
  if (c->ready_notified && up != c->status_up) {
    c->status_up = up;
    tn_notify_status(tc_client_status(c));
  }
}

void tc_client_start(struct tc_client *c)
{
  const struct tc_config *cfg = &c->cfg;

  if (!cfg->servers_listed) {
    tn_log_info("client %s: starting; server %s:%u (verifying name %s); %zu services, %zu allowed ports",
                c->identity, cfg->server_host, (unsigned)cfg->server_port, tc_config_server_name(cfg),
                cfg->n_services, cfg->n_allowed_ports);
  } else {
    char list[TC_CONFIG_SERVERS_MAX * 64 + 8];
    size_t o = 0;

    list[0] = '\0';
    for (size_t i = 0; i < cfg->n_servers && o < sizeof(list) - 1; i++) {
      const struct tc_config_server *e = &cfg->servers[i];
      bool v6 = strchr(e->host, ':') != NULL;
      int w = snprintf(list + o, sizeof(list) - o, "%s%s%s%s:%u", i ? ", " : "", v6 ? "[" : "", e->host,
                       v6 ? "]" : "", (unsigned)e->port);

      o = w < 0 ? o : o + (size_t)w < sizeof(list) ? o + (size_t)w : sizeof(list) - 1;
    }
    tn_log_info("client %s: starting; %zu servers, one link each: %s; %zu services, %zu allowed ports", c->identity,
                cfg->n_servers, list, cfg->n_services, cfg->n_allowed_ports);
  }
  for (size_t i = 0; i < c->n_servers; i++)
    tc_server_start(c->servers[i]);
}

/* ---- stop ---- */

static size_t open_streams(const struct tc_client *c)
{
  size_t n = 0;

  for (size_t i = 0; i < c->n_servers; i++)
    n += c->servers[i]->open_streams;
  return n;
}

void tc_client_server_stopped(struct tc_client *c, struct tc_server *s)
{
  (void)s;
  if (!c->stopping || c->stopped)
    return;
  for (size_t i = 0; i < c->n_servers; i++)
    if (c->servers[i]->state != TC_SERVER_STOPPED)
      return;
  c->stopped = true;
  if (c->on_stopped != NULL)
    c->on_stopped(c);
}

void tc_client_forget(struct tc_client *c, struct tc_server *s)
{
  for (size_t i = 0; i < c->n_servers; i++) {
    if (c->servers[i] == s) {
      memmove(&c->servers[i], &c->servers[i + 1], (c->n_servers - i - 1) * sizeof(*c->servers));
      c->n_servers--;
      return;
    }
  }
}

void tc_client_stop(struct tc_client *c)
{
  if (c->stopped)
    return;
  if (c->stopping) {
    /* A second stop signal ends the drain now; the exit is still the normal one (status 0). */
    bool draining = false;

    for (size_t i = 0; i < c->n_servers; i++)
      if (c->servers[i]->state == TC_SERVER_STOPPING && uv_is_active((uv_handle_t *)&c->servers[i]->drain_timer))
        draining = true;
    if (draining) {
      tn_log_info("client %s: stop signal during the drain; resetting %zu open streams now", c->identity,
                  open_streams(c));
      for (size_t i = 0; i < c->n_servers; i++)
        tc_server_cut_drain(c->servers[i]);
    }
    return;
  }
  tn_log_info("client %s: stopping; %zu open streams may finish within %u ms", c->identity, open_streams(c),
              c->cfg.limits.common.drain_timeout_ms);
  tn_notify_stopping();
  c->stopping = true;
  /* A server may stop at once and be released (removed ones): walk a copy of the list. */
  {
    size_t n = c->n_servers;
    struct tc_server **copy = malloc((n ? n : 1) * sizeof(*copy));

    if (copy != NULL) {
      memcpy(copy, c->servers, n * sizeof(*copy));
      for (size_t i = 0; i < n; i++)
        tc_server_stop(copy[i]);
      free(copy);
    }
  }
  tc_client_server_stopped(c, NULL);
}

/* ---- reload ---- */

static struct tc_server *find_server(const struct tc_client *c, const struct tc_config_server *e)
{
  for (size_t i = 0; i < c->n_servers; i++)
    if (!c->servers[i]->removed && tc_config_server_same(&c->servers[i]->target, e))
      return c->servers[i];
  return NULL;
}

/* The reload with ServerHost before and after: one link, whose target may change. */
static void reload_single(struct tc_client *c, bool server_changed, bool cert_changed)
{
  struct tc_server *s = NULL;
  bool reconnect = server_changed || cert_changed, untrusted = false;

  for (size_t i = 0; s == NULL && i < c->n_servers; i++)
    if (!c->servers[i]->removed)
      s = c->servers[i];
  if (s == NULL)
    return;
  if (server_changed && tc_server_retarget(s, &c->cfg.servers[0], false) != TN_OK)
    tn_log_error("client %s: out of memory changing the server; keeping the old one", c->identity);
  /* A new CA or CRL may no longer trust the server this link reached. */
  if (!server_changed && tc_server_untrusted(s))
    reconnect = untrusted = true;
  tn_log_info("client %s: configuration reloaded (%zu services, %zu allowed ports)%s", c->identity,
              c->cfg.n_services, c->cfg.n_allowed_ports,
              !reconnect ? "" : server_changed || untrusted ? "; reconnecting" : "; new certificate");
  if (!c->stopping)
    tc_server_reloaded(s, reconnect, server_changed, untrusted);
}

/* The reload with Servers on either side: kept servers keep their links; the rest are removed or added. */
static void reload_servers(struct tc_client *c, bool cert_changed)
{
  size_t kept = 0, added = 0, removed = 0, n_old;
  struct tc_server **old;

  /* Old ones first, on a copy: a removed server with nothing to drain may leave the list at once. */
  n_old = c->n_servers;
  old = malloc((n_old ? n_old : 1) * sizeof(*old));
  if (old == NULL) {
    tn_log_error("client %s: out of memory applying the reload", c->identity);
    return;
  }
  memcpy(old, c->servers, n_old * sizeof(*old));
  for (size_t i = 0; i < n_old; i++) {
    bool found = false;

    if (old[i]->removed)
      continue;
    for (size_t j = 0; j < c->cfg.n_servers && !found; j++)
      found = tc_config_server_same(&old[i]->target, &c->cfg.servers[j]);
    if (found) {
      kept++;
      /* The tag follows the configuration's form (ServerHost or Servers). */
      tc_server_retarget(old[i], &old[i]->target, c->cfg.servers_listed);
    } else {
      removed++;
      tc_server_remove(old[i]);
    }
  }
  free(old);
  for (size_t j = 0; j < c->cfg.n_servers; j++)
    if (find_server(c, &c->cfg.servers[j]) == NULL)
      added++;
  tn_log_info("client %s: configuration reloaded (%zu services, %zu allowed ports); servers: %zu kept, %zu added, "
              "%zu removed%s", c->identity, c->cfg.n_services, c->cfg.n_allowed_ports, kept, added, removed,
              cert_changed ? "; new certificate" : "");
  if (c->stopping)
    return;
  n_old = c->n_servers;
  for (size_t i = 0; i < n_old; i++) {
    struct tc_server *s = c->servers[i];
    bool untrusted;

    if (s->removed)
      continue;
    untrusted = tc_server_untrusted(s);
    tc_server_reloaded(s, cert_changed || untrusted, false, untrusted);
  }
  for (size_t j = 0; j < c->cfg.n_servers; j++) {
    if (find_server(c, &c->cfg.servers[j]) != NULL)
      continue;
    if (add_server(c, &c->cfg.servers[j]) != TN_OK) {
      tn_log_error("client %s: out of memory adding a server", c->identity);
      continue;
    }
    tn_log_info("client %s%s: server added to the configuration; connecting", c->identity,
                c->servers[c->n_servers - 1]->tag);
    tc_server_start(c->servers[c->n_servers - 1]);
  }
  tc_client_server_changed(c);
}

int tc_client_reload(struct tc_client *c, const char *cfg_path, char *err, size_t errlen)
{
  struct tc_config cfg;
  tn_tls_config *tls = NULL;
  char identity[TN_TLS_CN_MAX], sha256[65];
  bool server_changed = false, cert_changed, single;

  if (tc_config_load(&cfg, cfg_path, err, errlen) != 0) {
    tn_log_error("client %s: reload refused, keeping the running configuration: %s", c->identity, err);
    return -1;
  }
  if (load_tls(&cfg, &tls, identity, sha256, err, errlen) != 0) {
    tn_log_error("client %s: reload refused, keeping the running configuration: %s", c->identity, err);
    tc_config_free(&cfg);
    return -1;
  }
  single = !cfg.servers_listed && !c->cfg.servers_listed;
  if (single)
    server_changed = !tc_config_server_same(&cfg.servers[0], &c->cfg.servers[0]);
  cert_changed = strcmp(sha256, c->cert_sha256) != 0;
  tc_config_free(&c->cfg);
  c->cfg = cfg;
  tn_tls_config_unref(c->tls);
  c->tls = tls;
  memcpy(c->identity, identity, sizeof(identity));
  memcpy(c->cert_sha256, sha256, sizeof(sha256));
  if (single)
    reload_single(c, server_changed, cert_changed);
  else
    reload_servers(c, cert_changed);
  return 0;
}

void tc_client_free(struct tc_client *c)
{
  for (size_t i = 0; i < c->n_servers; i++)
    tc_server_free(c->servers[i]);
  free(c->servers);
  c->servers = NULL;
  c->n_servers = 0;
  tn_tls_config_unref(c->tls);
  tc_config_free(&c->cfg);
  tn_ratelog_free(c->ratelog, uv_now(c->loop));
  c->ratelog = NULL;
}
