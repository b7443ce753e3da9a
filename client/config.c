/* config.c: tunnelc's JSON configuration loader: strict keys, range checks, one precise error line. */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/addr.h"
#include "tunnel/defaults.h"
#include "tunnel/error.h"
#include "tunnel/file.h"
#include "tunnel/json.h"
#include "tunnel/keys.h"
#include "tunnel/open.h"

#define PATH_MAX_LEN 4095       /* longest certificate or key path accepted */
#define IDENTIFIER_MAX 255      /* longest ClientIdentifier accepted */
#define FIELD_LEN 600           /* room for "Map"."<255-byte name escaped and cut>" */
#define DESC_LEN TN_JSON_DESC_LEN

struct loader {
  const char *path;
  char *err;
  size_t errlen;
  struct tc_config *cfg;
};

__attribute__((format(printf, 3, 4)))
static int fail(struct loader *ld, const char *field, const char *fmt, ...)
{
  char where[FIELD_LEN + 4096];
  va_list ap;

  if (field != NULL)
    snprintf(where, sizeof(where), "%s: %s", ld->path, field);
  va_start(ap, fmt);
  tn_verrf(ld->err, ld->errlen, field != NULL ? where : ld->path, fmt, ap);
  va_end(ap);
  return TN_ERR_INVALID;
}

static int fail_nomem(struct loader *ld)
{
  fail(ld, NULL, "out of memory");
  return TN_ERR_NOMEM;
}

/* A "got" clause for type errors: `must be X, got <value>`. */
static int fail_type(struct loader *ld, const char *field, const char *want, const json_t *v)
{
  char d[DESC_LEN];

  tn_json_describe(d, sizeof(d), v);
  return fail(ld, field, "must be %s, got %s", want, d);
}

/* Builds the field name of a member: "Parent"."key", with the key quoted safely. */
static void member_field(char *out, size_t outlen, const char *parent, const char *key)
{
  char q[DESC_LEN];

  tn_json_quote(q, sizeof(q), key);
  if (parent != NULL)
    snprintf(out, outlen, "\"%s\".%s", parent, q);
  else
    snprintf(out, outlen, "%s", q);
}

/* ---- host names and addresses ---- */

static bool is_ip_literal(const char *s)
{
  struct tn_addr a;

  memset(&a, 0, sizeof(a));
  return tn_addr_parse_ip(&a, s) == TN_OK;
}

static bool is_label_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/*
 * Letters, digits, '-' and '_' in dot-separated labels of 1-63 bytes, one optional
 * trailing dot. The last label may not be all digits: that is how RFC 1123 tells a
 * name from a mistyped IPv4 address such as "10.0.0.256", which a resolver would
 * otherwise look up as a name.
 */
static bool is_dns_name(const char *s)
{
  size_t len = strlen(s), label = 0;
  bool all_digits = true;

  if (len > 0 && s[len - 1] == '.')
    len--;
  if (len == 0 || len > TC_CONFIG_HOST_MAX)
    return false;
  for (size_t i = 0; i <= len; i++) {
    char c = i < len ? s[i] : '.';

    if (c == '.') {
      if (label == 0 || label > 63 || s[i - 1] == '-')
        return false;
      if (i == len && all_digits)
        return false;
      label = 0;
      all_digits = true;
      continue;
    }
    if (!is_label_char(c))
      return false;
    if (label == 0 && c == '-')
      return false;
    if (c < '0' || c > '9')
      all_digits = false;
    label++;
  }
  return true;
}

static bool is_host(const char *s)
{
  return is_ip_literal(s) || is_dns_name(s);
}

/* Parses decimal "1".."65535" with no sign, spaces or leading zeros beyond a single digit. */
static bool parse_port_text(const char *s, uint16_t *port)
{
  unsigned long v = 0;
  size_t n = 0;

  for (; s[n] != '\0'; n++) {
    if (s[n] < '0' || s[n] > '9' || n >= 5)
      return false;
    v = v * 10 + (unsigned long)(s[n] - '0');
  }
  if (n == 0 || v < 1 || v > 65535 || (s[0] == '0'))
    return false;
  *port = (uint16_t)v;
  return true;
}

/* ---- typed getters ---- */

static int get_string(struct loader *ld, const json_t *v, const char *field, size_t max, const char **out)
{
  const char *s;

  if (!json_is_string(v))
    return fail_type(ld, field, "a string", v);
  s = json_string_value(v);
  if (s[0] == '\0')
    return fail(ld, field, "must not be empty");
  if (json_string_length(v) > max)
    return fail(ld, field, "must be at most %zu bytes long, got %zu", max, json_string_length(v));
  if (strlen(s) != json_string_length(v))
    return fail(ld, field, "must not contain NUL characters");
  *out = s;
  return TN_OK;
}

static int get_port(struct loader *ld, const json_t *v, const char *field, uint16_t *out)
{
  json_int_t i;

  if (!json_is_integer(v))
    return fail_type(ld, field, "an integer 1-65535", v);
  i = json_integer_value(v);
  if (i < 1 || i > 65535)
    return fail_type(ld, field, "an integer 1-65535", v);
  *out = (uint16_t)i;
  return TN_OK;
}

static int dup_string(struct loader *ld, const char *s, char **out)
{
  *out = strdup(s);
  return *out != NULL ? TN_OK : fail_nomem(ld);
}

/* ---- top-level keys ---- */

static int load_host(struct loader *ld, const json_t *v, const char *key, char **out)
{
  char field[FIELD_LEN], d[DESC_LEN];
  const char *s;
  int rc;

  snprintf(field, sizeof(field), "\"%s\"", key);
  if ((rc = get_string(ld, v, field, TC_CONFIG_HOST_MAX, &s)) != TN_OK)
    return rc;
  if (!is_host(s)) {
    tn_json_describe(d, sizeof(d), v);
    return fail(ld, field, "must be a DNS name or an IP address (no port, no brackets), got %s", d);
  }
  return dup_string(ld, s, out);
}

/*
 * Certificate and key paths are taken relative to the configuration file, so a
 * directory holding tunnelc.json and its PEM files works wherever the process starts.
 */
static int load_path(struct loader *ld, const json_t *v, const char *key, char **out)
{
  char field[FIELD_LEN];
  const char *s, *slash;
  size_t dirlen, slen;
  int rc;

  snprintf(field, sizeof(field), "\"%s\"", key);
  if ((rc = get_string(ld, v, field, PATH_MAX_LEN, &s)) != TN_OK)
    return rc;
  slash = strrchr(ld->path, '/');
  if (s[0] == '/' || slash == NULL)
    return dup_string(ld, s, out);
  dirlen = (size_t)(slash - ld->path) + 1;
  slen = strlen(s);
  *out = malloc(dirlen + slen + 1);
  if (*out == NULL)
    return fail_nomem(ld);
  memcpy(*out, ld->path, dirlen);
  memcpy(*out + dirlen, s, slen + 1);
  return TN_OK;
}

static int key_server_host(struct loader *ld, const json_t *v)
{
  return load_host(ld, v, "ServerHost", &ld->cfg->server_host);
}

static int key_server_name(struct loader *ld, const json_t *v)
{
  return load_host(ld, v, "ServerName", &ld->cfg->server_name);
}

/* "host", "host:port", "[v6]" or "[v6]:port"; a bare IPv6 literal is a host without a port. */
static int parse_server_text(struct loader *ld, const char *field, const json_t *v, char *hostbuf, size_t hostlen,
                             uint16_t *port)
{
  const char *s = json_string_value(v), *port_text = NULL;
  char d[DESC_LEN];
  size_t n;

  tn_json_describe(d, sizeof(d), v);
  if (s[0] == '[') {
    const char *close = strchr(s, ']');

    if (close == NULL || (close[1] != '\0' && close[1] != ':'))
      return fail(ld, field, "must be \"host\", \"host:port\" or \"[IPv6]:port\", got %s", d);
    n = (size_t)(close - s - 1);
    if (n == 0 || n >= hostlen)
      return fail(ld, field, "must have an IPv6 address inside [], got %s", d);
    memcpy(hostbuf, s + 1, n);
    hostbuf[n] = '\0';
    if (strchr(hostbuf, ':') == NULL || !is_ip_literal(hostbuf))
      return fail(ld, field, "must have an IPv6 address inside [], got %s", d);
    if (close[1] == ':')
      port_text = close + 2;
  } else {
    const char *colon = strchr(s, ':');

    if (colon != NULL && strchr(colon + 1, ':') != NULL) {
      /* Two colons: only a whole IPv6 literal makes sense, and it cannot carry a port without brackets. */
      if (!is_ip_literal(s))
        return fail(ld, field, "must be \"host\", \"host:port\" or \"[IPv6]:port\", got %s", d);
      colon = NULL;
    }
    n = colon != NULL ? (size_t)(colon - s) : strlen(s);
    if (n == 0 || n >= hostlen)
      return fail(ld, field, "must be a DNS name or an IP address, with an optional \":port\", got %s", d);
    memcpy(hostbuf, s, n);
    hostbuf[n] = '\0';
    if (!is_host(hostbuf))
      return fail(ld, field, "must be a DNS name or an IP address, with an optional \":port\", got %s", d);
    if (colon != NULL)
      port_text = colon + 1;
  }
  if (port_text != NULL && !parse_port_text(port_text, port))
    return fail(ld, field, "port must be an integer 1-65535, got %s", d);
  return TN_OK;
}

/* {"Host": ..., "Port": ..., "ServerName": ...}: Host required, the others default as for a string entry. */
static int parse_server_object(struct loader *ld, const char *field, const json_t *v, char *hostbuf, size_t hostlen,
                               uint16_t *port, const char **server_name)
{
  char sub[FIELD_LEN + DESC_LEN + 8], d[DESC_LEN];
  const char *key, *s;
  json_t *val;
  int rc;

  json_object_foreach((json_t *)v, key, val) {
    if (strcmp(key, "Host") != 0 && strcmp(key, "Port") != 0 && strcmp(key, "ServerName") != 0) {
      char q[DESC_LEN];

      tn_json_quote(q, sizeof(q), key);
      snprintf(sub, sizeof(sub), "%s.%s", field, q);
      return fail(ld, sub, "unknown key (an entry has \"Host\", \"Port\" and \"ServerName\")");
    }
  }
  snprintf(sub, sizeof(sub), "%s.\"Host\"", field);
  val = json_object_get(v, "Host");
  if (val == NULL)
    return fail(ld, sub, "is required");
  if ((rc = get_string(ld, val, sub, TC_CONFIG_HOST_MAX, &s)) != TN_OK)
    return rc;
  if (!is_host(s)) {
    tn_json_describe(d, sizeof(d), val);
    return fail(ld, sub, "must be a DNS name or an IP address (no port, no brackets), got %s", d);
  }
  snprintf(hostbuf, hostlen, "%s", s);
  if ((val = json_object_get(v, "Port")) != NULL) {
    snprintf(sub, sizeof(sub), "%s.\"Port\"", field);
    if ((rc = get_port(ld, val, sub, port)) != TN_OK)
      return rc;
  }
  if ((val = json_object_get(v, "ServerName")) != NULL) {
    snprintf(sub, sizeof(sub), "%s.\"ServerName\"", field);
    if ((rc = get_string(ld, val, sub, TC_CONFIG_HOST_MAX, &s)) != TN_OK)
      return rc;
    if (!is_host(s)) {
      tn_json_describe(d, sizeof(d), val);
      return fail(ld, sub, "must be a DNS name or an IP address (no port, no brackets), got %s", d);
    }
    *server_name = s;
  }
  return TN_OK;
}

static int add_server(struct loader *ld, const char *host, uint16_t port, const char *server_name)
{
  struct tc_config_server *e = &ld->cfg->servers[ld->cfg->n_servers];

  e->host = strdup(host);
  e->port = port;
  e->server_name = strdup(server_name != NULL ? server_name : host);
  ld->cfg->n_servers++;
  return e->host != NULL && e->server_name != NULL ? TN_OK : fail_nomem(ld);
}

/*
 * Several servers, one link each. Runs after ServerHost, ServerTunnelControlPort and ServerName (key_defs'
 * order), whose values it needs.
 */
static int key_servers(struct loader *ld, const json_t *v)
{
  struct tc_config *cfg = ld->cfg;
  size_t n = json_array_size(v);

  if (cfg->server_host != NULL)
    return fail(ld, "\"Servers\"", "cannot be used together with \"ServerHost\"; list every server in \"Servers\"");
  if (!json_is_array(v))
    return fail_type(ld, "\"Servers\"", "an array of \"host\", \"host:port\" or {\"Host\", \"Port\", \"ServerName\"}", v);
  if (n == 0)
    return fail(ld, "\"Servers\"", "must list at least one server");
  if (n > TC_CONFIG_SERVERS_MAX)
    return fail(ld, "\"Servers\"", "must list at most %d servers, got %zu", TC_CONFIG_SERVERS_MAX, n);
  cfg->servers = calloc(n, sizeof(*cfg->servers));
  if (cfg->servers == NULL)
    return fail_nomem(ld);
  cfg->servers_listed = true;
  for (size_t i = 0; i < n; i++) {
    const json_t *e = json_array_get(v, i);
    char field[FIELD_LEN], host[TC_CONFIG_HOST_MAX + 1];
    const char *server_name = cfg->server_name;
    uint16_t port = cfg->server_port;
    int rc;

    snprintf(field, sizeof(field), "\"Servers\"[%zu]", i);
    if (json_is_string(e)) {
      const char *s;

      if ((rc = get_string(ld, e, field, TC_CONFIG_HOST_MAX + 8, &s)) != TN_OK)
        return rc;
      rc = parse_server_text(ld, field, e, host, sizeof(host), &port);
    } else if (json_is_object(e)) {
      rc = parse_server_object(ld, field, e, host, sizeof(host), &port, &server_name);
    } else {
      rc = fail_type(ld, field, "\"host\", \"host:port\" or an object {\"Host\", \"Port\", \"ServerName\"}", e);
    }
    if (rc != TN_OK)
      return rc;
    /* Two links with one certificate to one tunneld would replace each other there, over and over. */
    for (size_t j = 0; j < cfg->n_servers; j++) {
      if (strcasecmp(cfg->servers[j].host, host) == 0 && cfg->servers[j].port == port)
        return fail(ld, field, "server %s%s%s:%u is listed twice (also at [%zu])", strchr(host, ':') ? "[" : "",
                    host, strchr(host, ':') ? "]" : "", (unsigned)port, j);
    }
    if ((rc = add_server(ld, host, port, server_name)) != TN_OK)
      return rc;
  }
  return TN_OK;
}

static int key_control_port(struct loader *ld, const json_t *v)
{
  return get_port(ld, v, "\"ServerTunnelControlPort\"", &ld->cfg->server_port);
}

static int key_management_port(struct loader *ld, const json_t *v)
{
  uint16_t ignored;

  return get_port(ld, v, "\"ServerManagementPort\"", &ignored);
}

static int key_ca(struct loader *ld, const json_t *v)
{
  return load_path(ld, v, "CaCertificateFile", &ld->cfg->ca_file);
}

static int key_cert(struct loader *ld, const json_t *v)
{
  return load_path(ld, v, "ClientTlsCertificateFile", &ld->cfg->cert_file);
}

static int key_key(struct loader *ld, const json_t *v)
{
  return load_path(ld, v, "ClientTlsKeyFile", &ld->cfg->key_file);
}

static int key_crl(struct loader *ld, const json_t *v)
{
  if (json_is_null(v))
    return TN_OK;
  return load_path(ld, v, "CrlFile", &ld->cfg->crl_file);
}

static int key_identifier(struct loader *ld, const json_t *v)
{
  const char *s;
  int rc;

  if ((rc = get_string(ld, v, "\"ClientIdentifier\"", IDENTIFIER_MAX, &s)) != TN_OK)
    return rc;
  return dup_string(ld, s, &ld->cfg->client_identifier);
}

static int key_debug_log(struct loader *ld, const json_t *v)
{
  if (!json_is_boolean(v))
    return fail_type(ld, "\"DebugLog\"", "true or false", v);
  ld->cfg->debug_log = json_is_true(v);
  return TN_OK;
}

static int key_use_tls(struct loader *ld, const json_t *v)
{
  if (json_is_false(v))
    return fail(ld, "\"UseTls\"", "no plaintext mode: tunnelc always uses TLS; set it to true or remove it");
  if (!json_is_true(v))
    return fail_type(ld, "\"UseTls\"", "true", v);
  return TN_OK;
}

static int cmp_service(const void *a, const void *b)
{
  return strcmp(((const struct tc_config_service *)a)->name, ((const struct tc_config_service *)b)->name);
}

/* Splits "host:port" / "[v6]:port" and checks both halves; host is written into hostbuf. */
static int parse_service_addr(struct loader *ld, const char *field, const json_t *v, char *hostbuf,
                              size_t hostlen, uint16_t *port, bool *is_ip)
{
  const char *s = json_string_value(v), *colon, *host = s;
  char d[DESC_LEN];
  size_t n;

  tn_json_describe(d, sizeof(d), v);
  if (s[0] == '[') {
    const char *close = strchr(s, ']');

    if (close == NULL || close[1] != ':')
      return fail(ld, field, "must be \"host:port\" or \"[IPv6]:port\", got %s", d);
    host = s + 1;
    n = (size_t)(close - host);
    colon = close + 1;
    if (n == 0 || n >= hostlen)
      return fail(ld, field, "must have an IPv6 address inside [], got %s", d);
    memcpy(hostbuf, host, n);
    hostbuf[n] = '\0';
    if (strchr(hostbuf, ':') == NULL || !is_ip_literal(hostbuf))
      return fail(ld, field, "must have an IPv6 address inside [], got %s", d);
  } else {
    colon = strrchr(s, ':');
    if (colon == NULL)
      return fail(ld, field, "must be \"host:port\", got %s", d);
    if (memchr(s, ':', (size_t)(colon - s)) != NULL)
      return fail(ld, field, "an IPv6 address needs brackets, as in \"[::1]:8080\", got %s", d);
    n = (size_t)(colon - s);
    if (n == 0)
      return fail(ld, field, "host is missing, got %s", d);
    if (n >= hostlen)
      return fail(ld, field, "host must be at most %d bytes long, got %s", TC_CONFIG_HOST_MAX, d);
    memcpy(hostbuf, s, n);
    hostbuf[n] = '\0';
    if (!is_host(hostbuf))
      return fail(ld, field, "host must be an IP address or a DNS name, got %s", d);
  }
  if (!parse_port_text(colon + 1, port))
    return fail(ld, field, "port must be an integer 1-65535, got %s", d);
  *is_ip = is_ip_literal(hostbuf);
  return TN_OK;
}

static int key_services(struct loader *ld, const json_t *v)
{
  struct tc_config *cfg = ld->cfg;
  const char *name;
  json_t *val;
  size_t n = json_object_size(v);

  if (!json_is_object(v))
    return fail_type(ld, "\"ServiceToLocalAddrMap\"", "an object mapping service names to \"host:port\"", v);
  if (n == 0)
    return TN_OK;
  cfg->services = calloc(n, sizeof(*cfg->services));
  if (cfg->services == NULL)
    return fail_nomem(ld);
  json_object_foreach((json_t *)v, name, val) {
    struct tc_config_service *svc = &cfg->services[cfg->n_services];
    char field[FIELD_LEN], host[TC_CONFIG_HOST_MAX + 1];
    size_t len = strlen(name);
    int rc;

    member_field(field, sizeof(field), "ServiceToLocalAddrMap", name);
    if (len == 0)
      return fail(ld, field, "a service name must not be empty");
    if (len > TC_CONFIG_SERVICE_MAX)
      return fail(ld, field, "a service name must be at most %d bytes long, got %zu", TC_CONFIG_SERVICE_MAX, len);
    for (size_t i = 0; i < len; i++)
      if (!tn_open_service_char((unsigned char)name[i]))
        return fail(ld, field, "a service name may contain only letters, digits, '.', '_' and '-'");
    if (!json_is_string(val))
      return fail_type(ld, field, "a string \"host:port\"", val);
    rc = parse_service_addr(ld, field, val, host, sizeof(host), &svc->port, &svc->host_is_ip);
    if (rc != TN_OK)
      return rc;
    svc->name = strdup(name);
    svc->host = strdup(host);
    cfg->n_services++;
    if (svc->name == NULL || svc->host == NULL)
      return fail_nomem(ld);
  }
  qsort(cfg->services, cfg->n_services, sizeof(*cfg->services), cmp_service);
  return TN_OK;
}

static int cmp_port(const void *a, const void *b)
{
  uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;

  return (x > y) - (x < y);
}

static int key_ports(struct loader *ld, const json_t *v)
{
  struct tc_config *cfg = ld->cfg;
  size_t n = json_array_size(v);
  /* Index of each port's first listing, so a duplicate names both positions. */
  uint32_t *seen = NULL;

  if (!json_is_array(v))
    return fail_type(ld, "\"AllowedBackEndPorts\"", "an array of port numbers", v);
  if (n == 0)
    return TN_OK;
  cfg->allowed_ports = calloc(n, sizeof(*cfg->allowed_ports));
  seen = calloc(65536, sizeof(*seen));
  if (cfg->allowed_ports == NULL || seen == NULL) {
    free(seen);
    return fail_nomem(ld);
  }
  for (size_t i = 0; i < n; i++) {
    char field[FIELD_LEN];
    uint16_t port = 0;  /* set by get_port; gcc -O2 cannot see that */
    int rc;

    snprintf(field, sizeof(field), "\"AllowedBackEndPorts\"[%zu]", i);
    if ((rc = get_port(ld, json_array_get(v, i), field, &port)) != TN_OK) {
      free(seen);
      return rc;
    }
    if (seen[port] != 0) {
      unsigned first = (unsigned)(seen[port] - 1);

      free(seen);
      return fail(ld, field, "port %u is listed twice (also at [%u])", (unsigned)port, first);
    }
    seen[port] = (uint32_t)i + 1;
    cfg->allowed_ports[cfg->n_allowed_ports++] = port;
  }
  free(seen);
  qsort(cfg->allowed_ports, cfg->n_allowed_ports, sizeof(*cfg->allowed_ports), cmp_port);
  return TN_OK;
}

/* ---- Limits ---- */

/* tunnelc's own limits; the link and pipe ones are tunnel/limits.h's shared table. */
#define LIMIT(k, f, lo, hi, def) { k, offsetof(struct tc_config_limits, f), lo, hi, def }
static const struct tn_limit_def limit_defs[] = {
  LIMIT("DialTimeoutMs", dial_timeout_ms, 100u, 600000u, TN_DEFAULT_DIAL_TIMEOUT_MS),
  LIMIT("ReconnectMinMs", reconnect_min_ms, 10u, 3600000u, TN_DEFAULT_RECONNECT_MIN_MS),
  LIMIT("ReconnectMaxMs", reconnect_max_ms, 10u, 3600000u, TN_DEFAULT_RECONNECT_MAX_MS),
  LIMIT("ReconnectJitterPercent", reconnect_jitter_percent, 0u, 50u, TN_DEFAULT_RECONNECT_JITTER_PERCENT),
  LIMIT("ReconnectResetAfterMs", reconnect_reset_after_ms, 0u, 86400000u, TN_DEFAULT_RECONNECT_RESET_AFTER_MS),
};
#undef LIMIT
static const struct tn_limit_table client_limits = { limit_defs, sizeof(limit_defs) / sizeof(limit_defs[0]) };

static int key_limits(struct loader *ld, const json_t *v)
{
  struct tc_config_limits *l = &ld->cfg->limits;
  const char *key;
  json_t *val;
  char msg[DESC_LEN + 192];

  if (!json_is_object(v))
    return fail_type(ld, "\"Limits\"", "an object", v);
  json_object_foreach((json_t *)v, key, val) {
    char got[DESC_LEN];

    tn_json_describe(got, sizeof(got), val);
    if (tn_limits_set(l, &client_limits, key, json_is_integer(val), json_is_integer(val) ? json_integer_value(val) : 0,
                      got, msg, sizeof(msg)) != TN_OK)
      return fail(ld, NULL, "%s", msg);
  }
  if (tn_limits_check(&l->common, msg, sizeof(msg)) != TN_OK)
    return fail(ld, NULL, "%s", msg);
  /* Checked after all keys so a lone override is judged against the other's default. */
  if (l->reconnect_min_ms > l->reconnect_max_ms)
    return fail(ld, NULL, "\"Limits.ReconnectMaxMs\": must be at least ReconnectMinMs (%u), got %u",
                (unsigned)l->reconnect_min_ms, (unsigned)l->reconnect_max_ms);
  return TN_OK;
}

/* ---- the file ---- */

struct key_def {
  const char *key;
  int (*load)(struct loader *ld, const json_t *v);
  bool required;
};

static const struct key_def key_defs[] = {
  { "ServerHost", key_server_host, false },
  { "ServerTunnelControlPort", key_control_port, false },
  { "ServerName", key_server_name, false },
  { "Servers", key_servers, false },
  { "CaCertificateFile", key_ca, true },
  { "ClientTlsCertificateFile", key_cert, true },
  { "ClientTlsKeyFile", key_key, true },
  { "CrlFile", key_crl, false },
  { "ClientIdentifier", key_identifier, false },
  { "ServiceToLocalAddrMap", key_services, false },
  { "AllowedBackEndPorts", key_ports, false },
  { "DebugLog", key_debug_log, false },
  { "Limits", key_limits, false },
  { "ServerManagementPort", key_management_port, false },
  { "UseTls", key_use_tls, false },
};

#define N_KEYS (sizeof(key_defs) / sizeof(key_defs[0]))

static int check_unknown_keys(struct loader *ld, const json_t *root)
{
  const char *key;
  json_t *val;

  json_object_foreach((json_t *)root, key, val) {
    const char *hint = NULL;
    char field[FIELD_LEN];

    if (tn_keys_find(key_defs, N_KEYS, sizeof(key_defs[0]), key, &hint) != NULL)
      continue;
    member_field(field, sizeof(field), NULL, key);
    if (hint != NULL)
      return fail(ld, field, "unknown key (did you mean \"%s\"?)", hint);
    return fail(ld, field, "unknown key");
  }
  return TN_OK;
}

/* Reads the whole file with a size bound, so a wrong path to a huge file fails fast. */
static int read_file(struct loader *ld, char **out, size_t *outlen)
{
  return tn_file_read(ld->path, TC_CONFIG_FILE_MAX, 0, NULL, out, outlen, ld->err, ld->errlen);
}

static int load_root(struct loader *ld, const json_t *root)
{
  int rc;

  if (!json_is_object(root))
    return fail_type(ld, NULL, "a JSON object at the top level", root);
  if ((rc = check_unknown_keys(ld, root)) != TN_OK)
    return rc;
  for (size_t i = 0; i < N_KEYS; i++) {
    const json_t *v = json_object_get(root, key_defs[i].key);

    if (v == NULL) {
      if (key_defs[i].required)
        return fail(ld, NULL, "\"%s\": is required", key_defs[i].key);
      continue;
    }
    if ((rc = key_defs[i].load(ld, v)) != TN_OK)
      return rc;
  }
  if (ld->cfg->n_servers > 0)
    return TN_OK;
  if (ld->cfg->server_host == NULL)
    return fail(ld, NULL, "\"ServerHost\": is required (or list several servers in \"Servers\")");
  ld->cfg->servers = calloc(1, sizeof(*ld->cfg->servers));
  if (ld->cfg->servers == NULL)
    return fail_nomem(ld);
  return add_server(ld, ld->cfg->server_host, ld->cfg->server_port, tc_config_server_name(ld->cfg));
}

int tc_config_load(struct tc_config *cfg, const char *path, char *err, size_t errlen)
{
  struct loader ld = { path, err, errlen, cfg };
  json_error_t jerr;
  json_t *root;
  char *buf = NULL;
  size_t len = 0;
  int rc;

  memset(cfg, 0, sizeof(*cfg));
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (path == NULL) {
    ld.path = "(null)";
    return fail(&ld, NULL, "no configuration file given");
  }
  if ((rc = read_file(&ld, &buf, &len)) != TN_OK)
    return rc;
  /* Duplicate keys are refused: with two "ServerHost" lines, which one wins is a trap. */
  root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
  tn_file_free(buf, len);
  if (root == NULL) {
    tn_err_one_line(jerr.text);  /* jansson quotes the input, newlines and all */
    if (err != NULL && errlen > 0)
      snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column, jerr.text);
    return TN_ERR_INVALID;
  }
  cfg->server_port = TN_DEFAULT_CONTROL_PORT;
  tn_limits_default(&cfg->limits, &client_limits);
  rc = dup_string(&ld, path, &cfg->path);
  if (rc == TN_OK)
    rc = load_root(&ld, root);
  json_decref(root);
  if (rc != TN_OK)
    tc_config_free(cfg);
  return rc;
}

void tc_config_free(struct tc_config *cfg)
{
  for (size_t i = 0; i < cfg->n_services; i++) {
    free(cfg->services[i].name);
    free(cfg->services[i].host);
  }
  free(cfg->services);
  for (size_t i = 0; i < cfg->n_servers; i++) {
    free(cfg->servers[i].host);
    free(cfg->servers[i].server_name);
  }
  free(cfg->servers);
  free(cfg->allowed_ports);
  free(cfg->path);
  free(cfg->server_host);
  free(cfg->server_name);
  free(cfg->ca_file);
  free(cfg->crl_file);
  free(cfg->cert_file);
  free(cfg->key_file);
  free(cfg->client_identifier);
  memset(cfg, 0, sizeof(*cfg));
}

int tc_config_check_identity(const struct tc_config *cfg, const char *cert_cn, char *err, size_t errlen)
{
  char want[DESC_LEN], got[DESC_LEN];

  if (cfg->client_identifier == NULL)
    return TN_OK;
  if (cert_cn != NULL && strcmp(cfg->client_identifier, cert_cn) == 0)
    return TN_OK;
  if (err != NULL && errlen > 0) {
    tn_json_quote(want, sizeof(want), cfg->client_identifier);
    tn_json_quote(got, sizeof(got), cert_cn != NULL ? cert_cn : "");
    snprintf(err, errlen, "%s: \"ClientIdentifier\": %s does not match the certificate's CN %s",
             cfg->path != NULL ? cfg->path : "(config)", want, got);
  }
  return TN_ERR_INVALID;
}

const char *tc_config_server_name(const struct tc_config *cfg)
{
  return cfg->server_name != NULL ? cfg->server_name : cfg->server_host;
}

bool tc_config_server_same(const struct tc_config_server *a, const struct tc_config_server *b)
{
  return strcasecmp(a->host, b->host) == 0 && a->port == b->port && strcasecmp(a->server_name, b->server_name) == 0;
}

static int cmp_service_key(const void *key, const void *elem)
{
  return strcmp((const char *)key, ((const struct tc_config_service *)elem)->name);
}

const struct tc_config_service *tc_config_find_service(const struct tc_config *cfg, const char *name)
{
  if (cfg->n_services == 0 || name == NULL)
    return NULL;
  return bsearch(name, cfg->services, cfg->n_services, sizeof(*cfg->services), cmp_service_key);
}

bool tc_config_port_allowed(const struct tc_config *cfg, uint16_t port)
{
  if (cfg->n_allowed_ports == 0)
    return false;
  return bsearch(&port, cfg->allowed_ports, cfg->n_allowed_ports, sizeof(*cfg->allowed_ports), cmp_port) != NULL;
}
