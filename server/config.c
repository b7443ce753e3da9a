/* config.c: tunneld.json's loader: a table of keys, each with its own loader, and one precise error line. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tunnel/defaults.h"
#include "tunnel/file.h"
#include "tunnel/json.h"
#include "tunnel/keys.h"
#include "tunnel/tls.h"
#include "tunnel/error.h"

/* A config file is a few hundred bytes; anything this big is the wrong file. */
#define CONFIG_MAX_BYTES (1024u * 1024u)

/* tunneld's own limits; the link and pipe ones are tunnel/limits.h's shared table. */
#define L(key, field, min, max, def) {key, offsetof(struct td_limits, field), min, max, def}
static const struct tn_limit_def limit_defs[] = {
  L("ReplacedLinkGraceMs", replaced_link_grace_ms, 0, 3600000, TN_DEFAULT_REPLACED_LINK_GRACE_MS),
  L("MaxConnectionsPerTunnel", max_connections_per_tunnel, 1, 1000000, TN_DEFAULT_MAX_CONNECTIONS_PER_TUNNEL),
  L("MaxConnectionsPerClient", max_connections_per_client, 1, 1000000, TN_DEFAULT_MAX_CONNECTIONS_PER_CLIENT),
  L("MaxPendingHandshakes", max_pending_handshakes, 1, 100000, TN_DEFAULT_MAX_PENDING_HANDSHAKES),
  L("MaxPendingHandshakesPerSource", max_pending_per_source, 1, 100000, TN_DEFAULT_MAX_PENDING_HANDSHAKES_PER_SOURCE),
  L("ApiMaxNonAdminPerSource", api_max_non_admin_per_source, 1, 10000, TN_DEFAULT_API_MAX_NON_ADMIN_PER_SOURCE),
  L("ApiMaxNonAdminPerIdentity", api_max_non_admin_per_identity, 1, 10000, TN_DEFAULT_API_MAX_NON_ADMIN_PER_IDENTITY),
  L("MaxTunnels", max_tunnels, 0, 1000000, TN_DEFAULT_MAX_TUNNELS),
  L("MaxBackupsPerTunnel", max_backups_per_tunnel, 0, 1024, TN_DEFAULT_MAX_BACKUPS_PER_TUNNEL),
  L("ApiMaxBody", api_max_body, 1024, 67108864, TN_DEFAULT_API_MAX_BODY),
  L("ApiMaxHeader", api_max_header, 1024, 1048576, TN_DEFAULT_API_MAX_HEADER),
  L("ApiHeaderTimeoutMs", api_header_timeout_ms, 100, 600000, TN_DEFAULT_API_HEADER_TIMEOUT_MS),
  L("HostnameTimeoutMs", hostname_timeout_ms, 100, 600000, TN_DEFAULT_HOSTNAME_TIMEOUT_MS),
  L("ApiIdleTimeoutMs", api_idle_timeout_ms, 100, 86400000, TN_DEFAULT_API_IDLE_TIMEOUT_MS),
  L("ApiMaxConnections", api_max_connections, 1, 10000, TN_DEFAULT_API_MAX_CONNECTIONS),
  L("TakeoverPingTimeoutMs", takeover_ping_timeout_ms, 50, 60000, TN_DEFAULT_TAKEOVER_PING_TIMEOUT_MS),
  L("MaxPublicConnectionsPerSource", max_public_per_source, 1, 1000000, TN_DEFAULT_MAX_PUBLIC_CONNECTIONS_PER_SOURCE),
};
#undef L
static const struct tn_limit_table server_limits = { limit_defs, sizeof(limit_defs) / sizeof(limit_defs[0]) };

void td_limits_default(struct td_limits *l)
{
  memset(l, 0, sizeof(*l));
  tn_limits_default(l, &server_limits);
}

static void fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));

static void fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  tn_verrf(err, errlen, path, fmt, ap);
  va_end(ap);
}

static int get_port(const json_t *v, const char *key, uint16_t *out, const char *path, char *err, size_t errlen)
{
  char got[TN_JSON_DESC_LEN];

  if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535) {
    tn_json_describe(got, sizeof(got), v);
    fail(err, errlen, path, "\"%s\": must be an integer 1-65535, got %s", key, got);
    return TN_ERR_INVALID;
  }
  *out = (uint16_t)json_integer_value(v);
  return TN_OK;
}

static int plain_string(const json_t *v)
{
  return json_is_string(v) && json_string_length(v) > 0 && strlen(json_string_value(v)) == json_string_length(v);
}

/*
 * A relative file name is taken relative to the config file's directory, so a directory
 * holding tunneld.json and its PEM files works wherever tunneld is started from.
 */
static char *resolve(const char *config_path, const char *value)
{
  const char *slash = strrchr(config_path, '/');
  size_t dirlen, n;
  char *out;

  if (value[0] == '/' || !slash)
    return strdup(value);
  dirlen = (size_t)(slash - config_path) + 1;
  n = dirlen + strlen(value) + 1;
  out = malloc(n);
  if (out)
    snprintf(out, n, "%.*s%s", (int)dirlen, config_path, value);
  return out;
}

static int get_string(const json_t *v, const char *key, char **out, const char *path, char *err, size_t errlen)
{
  char got[TN_JSON_DESC_LEN];

  if (!plain_string(v)) {
    tn_json_describe(got, sizeof(got), v);
    fail(err, errlen, path, "\"%s\": must be a non-empty string, got %s", key, got);
    return TN_ERR_INVALID;
  }
  *out = resolve(path, json_string_value(v));
  if (!*out) {
    fail(err, errlen, path, "out of memory");
    return TN_ERR_NOMEM;
  }
  return TN_OK;
}

/* "1.2.3.4:9100" or "[::1]:9100"; the host must be an IP literal: no resolver at start-up. */
static int parse_host_port(const char *s, struct tn_addr *out)
{
  char host[64];
  const char *colon;
  size_t hlen;
  unsigned long port = 0;

  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (!close || close[1] != ':')
      return 0;
    hlen = (size_t)(close - s - 1);
    if (hlen == 0 || hlen >= sizeof(host))
      return 0;
    memcpy(host, s + 1, hlen);
    colon = close + 1;
  } else {
    colon = strchr(s, ':');
    if (!colon || strchr(colon + 1, ':'))
      return 0;
    hlen = (size_t)(colon - s);
    if (hlen == 0 || hlen >= sizeof(host))
      return 0;
    memcpy(host, s, hlen);
  }
  host[hlen] = 0;
  if (tn_addr_parse_ip(out, host) != TN_OK)
    return 0;
  if (s[0] == '[' && out->family != TN_AF_INET6)
    return 0;
  if (colon[1] == 0 || strlen(colon + 1) > 5)
    return 0;
  for (const char *p = colon + 1; *p; p++) {
    if (*p < '0' || *p > '9')
      return 0;
    port = port * 10 + (unsigned long)(*p - '0');
  }
  if (port < 1 || port > 65535)
    return 0;
  out->port = (uint16_t)port;
  return 1;
}

static int load_limits(const json_t *lim, struct td_limits *l, const char *path, char *err, size_t errlen)
{
  const char *key;
  json_t *v;
  char got[TN_JSON_DESC_LEN];
  char msg[TN_JSON_DESC_LEN + 192];

  if (!lim)
    return TN_OK;
  if (!json_is_object(lim)) {
    tn_json_describe(got, sizeof(got), lim);
    fail(err, errlen, path, "\"Limits\": must be an object, got %s", got);
    return TN_ERR_INVALID;
  }
  json_object_foreach((json_t *)lim, key, v) {
    tn_json_describe(got, sizeof(got), v);
    if (tn_limits_set(l, &server_limits, key, json_is_integer(v), json_is_integer(v) ? json_integer_value(v) : 0, got,
                      msg, sizeof(msg)) != TN_OK) {
      fail(err, errlen, path, "%s", msg);
      return TN_ERR_INVALID;
    }
  }
  if (tn_limits_check(&l->common, msg, sizeof(msg)) != TN_OK) {
    fail(err, errlen, path, "%s", msg);
    return TN_ERR_INVALID;
  }
  return TN_OK;
}

static int load_admins(const json_t *v, struct td_config *cfg, const char *path, char *err, size_t errlen)
{
  char got[TN_JSON_DESC_LEN];

  if (!json_is_array(v) || json_array_size(v) == 0) {
    tn_json_describe(got, sizeof(got), v);
    fail(err, errlen, path, "\"AdminIdentities\": must be a non-empty array of certificate names, got %s", got);
    return TN_ERR_INVALID;
  }
  for (size_t i = 0; i < json_array_size(v); i++) {
    const json_t *e = json_array_get(v, i);
    if (!plain_string(e) || json_string_length(e) > 255) {
      tn_json_describe(got, sizeof(got), e);
      fail(err, errlen, path, "\"AdminIdentities[%zu]\": must be a non-empty string of at most 255 bytes, got %s", i,
           got);
      return TN_ERR_INVALID;
    }
  }
  cfg->admin_identities = calloc(json_array_size(v), sizeof(char *));
  if (!cfg->admin_identities) {
    fail(err, errlen, path, "out of memory");
    return TN_ERR_NOMEM;
  }
  for (size_t i = 0; i < json_array_size(v); i++) {
    cfg->admin_identities[i] = strdup(json_string_value(json_array_get(v, i)));
    if (!cfg->admin_identities[i]) {
      fail(err, errlen, path, "out of memory");
      return TN_ERR_NOMEM;
    }
    cfg->n_admin_identities++;
  }
  return TN_OK;
}

/* ---- the keys, one loader each (the design tunnelc's loader has too) ---- */

struct loader {
  const char *path;
  char *err;
  size_t errlen;
  struct td_config *cfg;
};

static int key_control_port(struct loader *ld, const json_t *v)
{
  return get_port(v, "TunnelControlPort", &ld->cfg->control_port, ld->path, ld->err, ld->errlen);
}

static int key_management_port(struct loader *ld, const json_t *v)
{
  return get_port(v, "ManagementPort", &ld->cfg->management_port, ld->path, ld->err, ld->errlen);
}

static int key_listen(struct loader *ld, const json_t *v)
{
  char got[TN_JSON_DESC_LEN];

  if (!plain_string(v) || tn_addr_parse_ip(&ld->cfg->listen, json_string_value(v)) != TN_OK) {
    tn_json_describe(got, sizeof(got), v);
    fail(ld->err, ld->errlen, ld->path, "\"ListenAddress\": must be an IPv4 or IPv6 address literal, got %s", got);
    return TN_ERR_INVALID;
  }
  ld->cfg->listen.port = 0;
  return TN_OK;
}

static int key_ca(struct loader *ld, const json_t *v)
{
  return get_string(v, "CaCertificateFile", &ld->cfg->ca_file, ld->path, ld->err, ld->errlen);
}

static int key_cert(struct loader *ld, const json_t *v)
{
  return get_string(v, "ServerTlsCertificateFile", &ld->cfg->cert_file, ld->path, ld->err, ld->errlen);
}

static int key_key(struct loader *ld, const json_t *v)
{
  return get_string(v, "ServerTlsKeyFile", &ld->cfg->key_file, ld->path, ld->err, ld->errlen);
}

static int key_crl(struct loader *ld, const json_t *v)
{
  return json_is_null(v) ? TN_OK : get_string(v, "CrlFile", &ld->cfg->crl_file, ld->path, ld->err, ld->errlen);
}

static int key_admins(struct loader *ld, const json_t *v)
{
  return load_admins(v, ld->cfg, ld->path, ld->err, ld->errlen);
}

static int key_state_file(struct loader *ld, const json_t *v)
{
  free(ld->cfg->state_file);  /* the default */
  ld->cfg->state_file = NULL;
  return get_string(v, "StateFile", &ld->cfg->state_file, ld->path, ld->err, ld->errlen);
}

static int key_metrics(struct loader *ld, const json_t *v)
{
  char got[TN_JSON_DESC_LEN];

  if (json_is_null(v))
    return TN_OK;
  if (!plain_string(v) || !parse_host_port(json_string_value(v), &ld->cfg->metrics)) {
    tn_json_describe(got, sizeof(got), v);
    fail(ld->err, ld->errlen, ld->path,
         "\"MetricsListen\": must be \"host:port\" with an IP literal host ([...] for IPv6) and port 1-65535, got %s",
         got);
    return TN_ERR_INVALID;
  }
  ld->cfg->metrics_enabled = 1;
  return TN_OK;
}

static int key_debug_log(struct loader *ld, const json_t *v)
{
  char got[TN_JSON_DESC_LEN];

  if (!json_is_boolean(v)) {
    tn_json_describe(got, sizeof(got), v);
    fail(ld->err, ld->errlen, ld->path, "\"DebugLog\": must be true or false, got %s", got);
    return TN_ERR_INVALID;
  }
  ld->cfg->debug_log = json_is_true(v);
  return TN_OK;
}

static int key_use_tls(struct loader *ld, const json_t *v)
{
  char got[TN_JSON_DESC_LEN];

  if (!json_is_true(v)) {
    tn_json_describe(got, sizeof(got), v);
    fail(ld->err, ld->errlen, ld->path, "\"UseTls\": must be true (there is no plaintext mode), got %s", got);
    return TN_ERR_INVALID;
  }
  return TN_OK;
}

static int key_limits(struct loader *ld, const json_t *v)
{
  return load_limits(v, &ld->cfg->limits, ld->path, ld->err, ld->errlen);
}

struct key_def {
  const char *key;
  int (*load)(struct loader *ld, const json_t *v);
  const char *required;          /* NULL: optional; else why it is needed ("" when that goes without saying) */
};

static const struct key_def key_defs[] = {
  { "TunnelControlPort", key_control_port, NULL },
  { "ManagementPort", key_management_port, NULL },
  { "ListenAddress", key_listen, NULL },
  { "CaCertificateFile", key_ca, "" },
  { "ServerTlsCertificateFile", key_cert, "" },
  { "ServerTlsKeyFile", key_key, "" },
  { "AdminIdentities", key_admins, "the certificate names allowed on the management port" },
  { "StateFile", key_state_file, NULL },
  { "CrlFile", key_crl, NULL },
  { "MetricsListen", key_metrics, NULL },
  { "DebugLog", key_debug_log, NULL },
  { "UseTls", key_use_tls, NULL },
  { "Limits", key_limits, NULL },
};
#define N_KEYS (sizeof(key_defs) / sizeof(key_defs[0]))

static int check_unknown_keys(struct loader *ld, const json_t *root)
{
  const char *key;
  json_t *v;

  json_object_foreach((json_t *)root, key, v) {
    const char *hint = NULL;
    char q[TN_JSON_DESC_LEN];

    if (tn_keys_find(key_defs, N_KEYS, sizeof(key_defs[0]), key, &hint) != NULL)
      continue;
    tn_json_quote(q, sizeof(q), key);
    if (hint != NULL)
      fail(ld->err, ld->errlen, ld->path, "%s: unknown key (did you mean \"%s\"?)", q, hint);
    else
      fail(ld->err, ld->errlen, ld->path, "%s: unknown key", q);
    return TN_ERR_INVALID;
  }
  return TN_OK;
}

/* The checks between keys, once each is set. */
static int check_ports(struct loader *ld)
{
  const struct td_config *cfg = ld->cfg;

  if (cfg->control_port == cfg->management_port) {
    fail(ld->err, ld->errlen, ld->path, "\"ManagementPort\": must differ from TunnelControlPort, both are %u",
         (unsigned)cfg->control_port);
    return TN_ERR_INVALID;
  }
  if (cfg->metrics_enabled && (cfg->metrics.port == cfg->control_port || cfg->metrics.port == cfg->management_port)) {
    fail(ld->err, ld->errlen, ld->path, "\"MetricsListen\": port %u is already the %s", (unsigned)cfg->metrics.port,
         cfg->metrics.port == cfg->control_port ? "TunnelControlPort" : "ManagementPort");
    return TN_ERR_INVALID;
  }
  return TN_OK;
}

static int load_root(struct loader *ld, const json_t *root)
{
  struct td_config *cfg = ld->cfg;
  char got[TN_JSON_DESC_LEN];
  int rc;

  if (!json_is_object(root)) {
    tn_json_describe(got, sizeof(got), root);
    fail(ld->err, ld->errlen, ld->path, "must be a JSON object at the top level, got %s", got);
    return TN_ERR_INVALID;
  }
  if ((rc = check_unknown_keys(ld, root)) != TN_OK)
    return rc;
  cfg->control_port = TN_DEFAULT_CONTROL_PORT;
  cfg->management_port = TN_DEFAULT_MANAGEMENT_PORT;
  tn_addr_parse_ip(&cfg->listen, "::");
  cfg->listen.port = 0;
  cfg->state_file = strdup(TN_DEFAULT_STATE_FILE);
  if (cfg->state_file == NULL) {
    fail(ld->err, ld->errlen, ld->path, "out of memory");
    return TN_ERR_NOMEM;
  }
  for (size_t i = 0; i < N_KEYS; i++) {
    const json_t *v = json_object_get(root, key_defs[i].key);
    if (v == NULL) {
      if (key_defs[i].required == NULL)
        continue;
      fail(ld->err, ld->errlen, ld->path, "\"%s\": is required%s%s%s", key_defs[i].key,
           key_defs[i].required[0] ? " (" : "", key_defs[i].required, key_defs[i].required[0] ? ")" : "");
      return TN_ERR_INVALID;
    }
    if ((rc = key_defs[i].load(ld, v)) != TN_OK)
      return rc;
  }
  return check_ports(ld);
}

int td_config_load(struct td_config *cfg, const char *path, char *err, size_t errlen)
{
  char *data = NULL;
  size_t len = 0;
  json_t *root;
  json_error_t jerr;
  int rc;

  memset(cfg, 0, sizeof(*cfg));
  td_limits_default(&cfg->limits);
  rc = tn_file_read(path, CONFIG_MAX_BYTES, 0, "tunneld configuration", &data, &len, err, errlen);
  if (rc != TN_OK)
    return rc;
  root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
  tn_file_free(data, len);
  if (!root) {
    tn_err_one_line(jerr.text);  /* jansson quotes the input, newlines and all */
    if (err != NULL && errlen > 0)
      snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column, jerr.text);
    return TN_ERR_INVALID;
  }
  rc = load_root(&(struct loader){ path, err, errlen, cfg }, root);
  json_decref(root);
  if (rc == TN_OK) {
    cfg->path = strdup(path);
    if (!cfg->path) {
      fail(err, errlen, path, "out of memory");
      rc = TN_ERR_NOMEM;
    }
  }
  if (rc != TN_OK)
    td_config_free(cfg);
  return rc;
}

void td_config_free(struct td_config *cfg)
{
  free(cfg->path);
  free(cfg->ca_file);
  free(cfg->cert_file);
  free(cfg->key_file);
  free(cfg->crl_file);
  for (size_t i = 0; i < cfg->n_admin_identities; i++)
    free(cfg->admin_identities[i]);
  free(cfg->admin_identities);
  free(cfg->state_file);
  memset(cfg, 0, sizeof(*cfg));
  td_limits_default(&cfg->limits);
}

int td_config_is_admin(const struct td_config *cfg, const char *identity)
{
  if (!identity)
    return 0;
  for (size_t i = 0; i < cfg->n_admin_identities; i++)
    if (strcmp(cfg->admin_identities[i], identity) == 0)
      return 1;
  return 0;
}

int td_config_is_admin_cert(const struct td_config *cfg, const char *cn, const char *sha256_hex)
{
  char fp[65];

  if (td_config_is_admin(cfg, cn))
    return 1;
  for (size_t i = 0; sha256_hex != NULL && i < cfg->n_admin_identities; i++)
    if (tn_tls_fingerprint_parse(cfg->admin_identities[i], fp) == TN_OK && strcmp(fp, sha256_hex) == 0)
      return 1;
  return 0;
}

void td_config_reserved(const struct td_config *cfg, struct td_reserved *out)
{
  memset(out, 0, sizeof(*out));
  out->ports[0].addr = cfg->listen;
  out->ports[0].addr.port = cfg->control_port;
  out->ports[0].what = "TunnelControlPort";
  out->ports[1].addr = cfg->listen;
  out->ports[1].addr.port = cfg->management_port;
  out->ports[1].what = "ManagementPort";
  out->n = 2;
  if (cfg->metrics_enabled) {
    out->ports[2].addr = cfg->metrics;
    out->ports[2].what = "MetricsListen";
    out->n = 3;
  }
}
