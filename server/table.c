/* table.c: validation and JSON form of the tunnel table. */
#include "table.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/error.h"
#include "tunnel/json.h"
#include "tunnel/open.h"
#include "tunnel/sni.h"
#include "tunnel/tls.h"
#include "tunnel/utf8.h"

/* A CN longer than the identity limit is refused at the handshake, so no longer name could ever match. */
#define ID_MAX (TN_TLS_CN_MAX - 1)
#define SERVICE_MAX 255
/* Enough of an offending value to recognise it, never the whole body. */
#define GOT_MAX TD_TABLE_GOT_MAX

static const char *const known_keys[] = {
  "ListenAddress", "ListenPort", "ClientIdentifier", "BackupClientIdentifiers", "BackEndPort",
  "BackEndService", "HaProxyProxyProtocol", "ProxyProtocolVersion", "ListenHostnameGlob",
  "ActiveClient", "OpenConnections", "Problems", /* read-only GET keys, ignored so GET output can be PUT */
};

static void fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  tn_verrf(err, errlen, NULL, fmt, ap);
  va_end(ap);
  /* Keys and values quoted from the input may hold control characters: a message stays one line (logs). */
  if (err != NULL && errlen > 0)
    tn_err_one_line(err);
}

void td_table_describe_json(const json_t *v, char *out, size_t outlen)
{
  char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

  if (!s) {
    snprintf(out, outlen, "?");
    return;
  }
  if (strlen(s) > GOT_MAX)
    snprintf(out, outlen, "%.*s...", GOT_MAX, s);
  else
    snprintf(out, outlen, "%s", s);
  free(s);
}

void td_table_init(struct td_table *t)
{
  t->tunnels = NULL;
  t->n = 0;
}

static void tunnel_free(struct td_tunnel *tu)
{
  free(tu->client_id);
  for (size_t i = 0; i < tu->n_backups; i++)
    free(tu->backups[i]);
  free(tu->backups);
  free(tu->backend_service);
  free(tu->glob);
  memset(tu, 0, sizeof(*tu));
}

void td_table_free(struct td_table *t)
{
  for (size_t i = 0; i < t->n; i++)
    tunnel_free(&t->tunnels[i]);
  free(t->tunnels);
  td_table_init(t);
}

/* The text of a non-empty JSON string of at most max bytes with no embedded NUL, its length in *n; else NULL. */
static const char *json_text(const json_t *v, size_t max, size_t *n)
{
  const char *s;

  if (!json_is_string(v))
    return NULL;
  s = json_string_value(v);
  *n = json_string_length(v);
  return *n > 0 && *n <= max && strlen(s) == *n ? s : NULL;
}

/* Such a string with every byte accepted by char_ok. */
static int valid_text(const json_t *v, size_t max, int (*char_ok)(unsigned char c))
{
  size_t n;
  const char *s = json_text(v, max, &n);

  if (s == NULL)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!char_ok((unsigned char)s[i]))
      return 0;
  return 1;
}

/* Certificate CNs are free text; control characters (C0, DEL, C1) would corrupt logs and headers. */
static int valid_identity_text(const char *s, size_t n)
{
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    size_t k = tn_utf8_decode((const uint8_t *)s + i, n - i, &cp);
    if (k == 0 || tn_utf8_is_control(cp))
      return 0;
    i += k;
  }
  return 1;
}

/* True when s is a fingerprint written some other way than 64 lowercase hex digits (upper case, colons). */
static int fingerprint_other_form(const char *s)
{
  size_t hex = 0;

  if (tn_tls_fingerprint_is_canonical(s))
    return 0;
  for (; *s != '\0'; s++) {
    if (*s == ':')
      continue;
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')))
      return 0;
    hex++;
  }
  return hex == 64;
}

static int valid_identity(const json_t *v)
{
  size_t n;
  const char *s = json_text(v, ID_MAX, &n);

  return s != NULL && valid_identity_text(s, n) && !fingerprint_other_form(s);
}

static int valid_service(const json_t *v)
{
  return valid_text(v, SERVICE_MAX, tn_open_service_char);
}

/* Absent and null mean the same: Go encoders write null for unset slices and pointers. */
static const json_t *opt(const json_t *obj, const char *key)
{
  const json_t *v = json_object_get(obj, key);

  return json_is_null(v) ? NULL : v;
}

static int port_value(const json_t *v, uint16_t *out)
{
  json_int_t n;

  if (!json_is_integer(v))
    return 0;
  n = json_integer_value(v);
  if (n < 1 || n > 65535)
    return 0;
  *out = (uint16_t)n;
  return 1;
}

#define ID_RULE                                                                                                  \
  "must be a certificate CN (printable, at most 64 bytes) or a certificate's SHA-256 fingerprint as 64 lowercase " \
  "hex digits"

struct named_index {
  const char *s;
  size_t idx;
};

static int cmp_named_index(const void *pa, const void *pb)
{
  const struct named_index *a = pa, *b = pb;
  int c = strcmp(a->s, b->s);

  if (c)
    return c;
  return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/*
 * Reports the repeated backup with the lowest index (as a pairwise scan would) in O(b log b): sorted
 * by name then index, each name's second entry is its first repeat.
 */
static int check_duplicate_backups(const json_t *backups, size_t idx, char *err, size_t errlen)
{
  size_t n = json_array_size(backups), best = SIZE_MAX;
  struct named_index *ni;

  if (n < 2)
    return TN_OK;
  ni = calloc(n, sizeof(*ni));
  if (!ni) {
    fail(err, errlen, "tunnels[%zu]: out of memory", idx);
    return TN_ERR_NOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    ni[i].s = json_string_value(json_array_get(backups, i));
    ni[i].idx = i;
  }
  qsort(ni, n, sizeof(*ni), cmp_named_index);
  for (size_t i = 1; i < n; i++)
    if (strcmp(ni[i].s, ni[i - 1].s) == 0 && (i < 2 || strcmp(ni[i].s, ni[i - 2].s) != 0) && ni[i].idx < best)
      best = ni[i].idx;
  free(ni);
  if (best != SIZE_MAX) {
    fail(err, errlen, "tunnels[%zu].BackupClientIdentifiers[%zu]: \"%s\" is listed twice", idx, best,
         json_string_value(json_array_get(backups, best)));
    return TN_ERR_INVALID;
  }
  return TN_OK;
}

static int check_tunnel_keys(const json_t *o, size_t idx, char *err, size_t errlen)
{
  const char *key;
  const json_t *v;

  json_object_foreach((json_t *)o, key, v) {
    size_t k;
    for (k = 0; k < sizeof(known_keys) / sizeof(known_keys[0]); k++)
      if (strcmp(key, known_keys[k]) == 0)
        break;
    if (k == sizeof(known_keys) / sizeof(known_keys[0])) {
      char q[TN_JSON_DESC_LEN];

      tn_json_quote(q, sizeof(q), key);
      fail(err, errlen, "tunnels[%zu]: unknown key %s", idx, q);
      return TN_ERR_INVALID;
    }
  }
  return TN_OK;
}

/* ListenAddress (default 0.0.0.0) and ListenPort. */
static int parse_listen(const json_t *o, size_t idx, struct td_tunnel *tu, char *err, size_t errlen)
{
  const json_t *addr, *port;
  char got[GOT_MAX + 8];

  addr = opt(o, "ListenAddress");
  if (!addr) {
    tn_addr_parse_ip(&tu->listen, "0.0.0.0");
  } else if (!json_is_string(addr) || strlen(json_string_value(addr)) != json_string_length(addr) ||
             tn_addr_parse_ip(&tu->listen, json_string_value(addr)) != TN_OK) {
    td_table_describe_json(addr, got, sizeof(got));
    fail(err, errlen, "tunnels[%zu].ListenAddress: must be an IPv4 or IPv6 address literal, got %s", idx,
         got);
    return TN_ERR_INVALID;
  }

  port = opt(o, "ListenPort");
  if (!port) {
    fail(err, errlen, "tunnels[%zu].ListenPort: is required (1-65535)", idx);
    return TN_ERR_INVALID;
  }
  if (!port_value(port, &tu->listen.port)) {
    td_table_describe_json(port, got, sizeof(got));
    fail(err, errlen, "tunnels[%zu].ListenPort: must be 1-65535, got %s", idx, got);
    return TN_ERR_INVALID;
  }
  return TN_OK;
}

/* ClientIdentifier and BackupClientIdentifiers: valid, within MaxBackupsPerTunnel, no name twice. */
static int check_clients(const json_t *o, size_t idx, const struct td_table_limits *limits, char *err, size_t errlen)
{
  const json_t *id, *backups;
  char got[GOT_MAX + 8];
  int rc;

  id = opt(o, "ClientIdentifier");
  if (!id) {
    fail(err, errlen, "tunnels[%zu].ClientIdentifier: is required", idx);
    return TN_ERR_INVALID;
  }
  if (!valid_identity(id)) {
    td_table_describe_json(id, got, sizeof(got));
    fail(err, errlen, "tunnels[%zu].ClientIdentifier: " ID_RULE ", got %s", idx, got);
    return TN_ERR_INVALID;
  }

  backups = opt(o, "BackupClientIdentifiers");
  if (backups && !json_is_array(backups)) {
    td_table_describe_json(backups, got, sizeof(got));
    fail(err, errlen, "tunnels[%zu].BackupClientIdentifiers: must be an array of strings, got %s", idx, got);
    return TN_ERR_INVALID;
  }
  if (backups && limits && json_array_size(backups) > limits->max_backups) {
    fail(err, errlen, "tunnels[%zu].BackupClientIdentifiers: %zu entries, more than MaxBackupsPerTunnel (%zu)", idx,
         json_array_size(backups), limits->max_backups);
    return TN_ERR_INVALID;
  }
  for (size_t i = 0; backups && i < json_array_size(backups); i++) {
    const json_t *b = json_array_get(backups, i);
    if (!valid_identity(b)) {
      td_table_describe_json(b, got, sizeof(got));
      fail(err, errlen, "tunnels[%zu].BackupClientIdentifiers[%zu]: " ID_RULE ", got %s", idx, i, got);
      return TN_ERR_INVALID;
    }
    if (strcmp(json_string_value(b), json_string_value(id)) == 0) {
      fail(err, errlen, "tunnels[%zu].BackupClientIdentifiers[%zu]: \"%s\" is already the ClientIdentifier",
           idx, i, json_string_value(b));
      return TN_ERR_INVALID;
    }
  }
  if (backups && (rc = check_duplicate_backups(backups, idx, err, errlen)) != TN_OK)
    return rc;
  return TN_OK;
}

/* Exactly one of BackEndPort and BackEndService. */
static int parse_backend(const json_t *o, size_t idx, struct td_tunnel *tu, char *err, size_t errlen)
{
  const json_t *bport, *bsvc;
  char got[GOT_MAX + 8];

  bport = opt(o, "BackEndPort");
  bsvc = opt(o, "BackEndService");
  if ((bport != NULL) == (bsvc != NULL)) {
    fail(err, errlen, "tunnels[%zu]: exactly one of BackEndPort or BackEndService is required, got %s", idx,
         bport ? "both" : "neither");
    return TN_ERR_INVALID;
  }
  if (bport && !port_value(bport, &tu->backend_port)) {
    td_table_describe_json(bport, got, sizeof(got));
    fail(err, errlen, "tunnels[%zu].BackEndPort: must be 1-65535, got %s", idx, got);
    return TN_ERR_INVALID;
  }
  if (bsvc && !valid_service(bsvc)) {
    td_table_describe_json(bsvc, got, sizeof(got));
    fail(err, errlen, "tunnels[%zu].BackEndService: must be 1-255 characters of A-Z a-z 0-9 . _ -, got %s",
         idx, got);
    return TN_ERR_INVALID;
  }
  return TN_OK;
}

/* HaProxyProxyProtocol and ProxyProtocolVersion, into tu->proxy_version (0: none). */
static int parse_proxy(const json_t *o, size_t idx, struct td_tunnel *tu, char *err, size_t errlen)
{
  const json_t *haproxy, *ppv;
  char got[GOT_MAX + 8];
  int proxy;

  haproxy = opt(o, "HaProxyProxyProtocol");
  if (haproxy && !json_is_boolean(haproxy)) {
    td_table_describe_json(haproxy, got, sizeof(got));
    fail(err, errlen, "tunnels[%zu].HaProxyProxyProtocol: must be true or false, got %s", idx, got);
    return TN_ERR_INVALID;
  }
  proxy = haproxy && json_is_true(haproxy);
  ppv = opt(o, "ProxyProtocolVersion");
  if (ppv && (!json_is_integer(ppv) || (json_integer_value(ppv) != 1 && json_integer_value(ppv) != 2))) {
    td_table_describe_json(ppv, got, sizeof(got));
    fail(err, errlen, "tunnels[%zu].ProxyProtocolVersion: must be 1 or 2, got %s", idx, got);
    return TN_ERR_INVALID;
  }
  /* A version without the switch is almost certainly a forgotten switch: say so rather than guess. */
  if (ppv && !proxy) {
    fail(err, errlen, "tunnels[%zu].ProxyProtocolVersion: only allowed when HaProxyProxyProtocol is true", idx);
    return TN_ERR_INVALID;
  }
  tu->proxy_version = proxy ? (ppv ? (uint8_t)json_integer_value(ppv) : 1) : 0;
  return TN_OK;
}

/* ListenHostnameGlob into tu->glob, lower case so that globs differing only in case are one glob. */
static int parse_glob(const json_t *o, size_t idx, struct td_tunnel *tu, char *err, size_t errlen)
{
  const json_t *glob;
  char got[GOT_MAX + 8];
  size_t n;
  const char *s;

  glob = opt(o, "ListenHostnameGlob");
  if (glob == NULL)
    return TN_OK;
  s = json_text(glob, TN_SNI_NAME_MAX + 2, &n);
  if (s == NULL || tn_sni_glob_valid(s) != TN_OK) {
    td_table_describe_json(glob, got, sizeof(got));
    fail(err, errlen,
         "tunnels[%zu].ListenHostnameGlob: must be \"*\", a host name (A-labels: letters, digits, '-' and '.') or "
         "\"*.\" and a host name, got %s",
         idx, got);
    return TN_ERR_INVALID;
  }
  if (strcmp(s, "*") == 0)
    return TN_OK;
  tu->glob = strdup(s);
  if (tu->glob == NULL) {
    fail(err, errlen, "tunnels[%zu]: out of memory", idx);
    return TN_ERR_NOMEM;
  }
  for (char *c = tu->glob; *c; c++)
    if (*c >= 'A' && *c <= 'Z')
      *c = (char)(*c - 'A' + 'a');
  return TN_OK;
}

/* Copies the validated names into tu. */
static int copy_names(const json_t *o, size_t idx, struct td_tunnel *tu, char *err, size_t errlen)
{
  const json_t *id = opt(o, "ClientIdentifier"), *bsvc = opt(o, "BackEndService");
  const json_t *backups = opt(o, "BackupClientIdentifiers");

  tu->client_id = strdup(json_string_value(id));
  if (!tu->client_id)
    goto nomem;
  if (bsvc) {
    tu->backend_service = strdup(json_string_value(bsvc));
    if (!tu->backend_service)
      goto nomem;
  }
  if (backups && json_array_size(backups) > 0) {
    tu->backups = calloc(json_array_size(backups), sizeof(char *));
    if (!tu->backups)
      goto nomem;
    for (size_t i = 0; i < json_array_size(backups); i++) {
      tu->backups[i] = strdup(json_string_value(json_array_get(backups, i)));
      if (!tu->backups[i])
        goto nomem;
      tu->n_backups++;
    }
  }
  return TN_OK;

nomem:
  tunnel_free(tu);
  fail(err, errlen, "tunnels[%zu]: out of memory", idx);
  return TN_ERR_NOMEM;
}

static int parse_tunnel(const json_t *o, size_t idx, const struct td_table_limits *limits, struct td_tunnel *tu,
                        char *err, size_t errlen)
{
  char got[GOT_MAX + 8];
  int rc;

  memset(tu, 0, sizeof(*tu));
  if (!json_is_object(o)) {
    td_table_describe_json(o, got, sizeof(got));
    fail(err, errlen, "tunnels[%zu]: must be an object, got %s", idx, got);
    return TN_ERR_INVALID;
  }
  /* In this order, so the first error named is the same as it always was. */
  if ((rc = check_tunnel_keys(o, idx, err, errlen)) != TN_OK || (rc = parse_listen(o, idx, tu, err, errlen)) != TN_OK ||
      (rc = check_clients(o, idx, limits, err, errlen)) != TN_OK ||
      (rc = parse_backend(o, idx, tu, err, errlen)) != TN_OK || (rc = parse_proxy(o, idx, tu, err, errlen)) != TN_OK ||
      (rc = parse_glob(o, idx, tu, err, errlen)) != TN_OK) {
    free(tu->glob);
    tu->glob = NULL;
    return rc;
  }
  return copy_names(o, idx, tu, err, errlen);
}

static int is_v4_mapped(const struct tn_addr *a)
{
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

  return a->family == TN_AF_INET6 && memcmp(a->ip, prefix, sizeof(prefix)) == 0;
}

/* The IPv4 view of an address when it has one (v4-mapped IPv6 binds the same v4 address). */
static void as_v4(const struct tn_addr *a, struct tn_addr *out)
{
  *out = *a;
  if (is_v4_mapped(a)) {
    memset(out->ip, 0, sizeof(out->ip));
    memcpy(out->ip, a->ip + 12, 4);
    out->family = TN_AF_INET;
  }
}

static int is_any(const struct tn_addr *a)
{
  static const uint8_t zero[16];

  return memcmp(a->ip, zero, tn_addr_ip_len(a->family)) == 0;
}

int td_table_endpoints_conflict(const struct tn_addr *a, const struct tn_addr *b)
{
  struct tn_addr x, y;

  if (a->port != b->port)
    return 0;
  as_v4(a, &x);
  as_v4(b, &y);
  if ((x.family == TN_AF_INET6 && is_any(&x)) || (y.family == TN_AF_INET6 && is_any(&y)))
    return 1;
  if (x.family != y.family)
    return 0;
  if (x.family == TN_AF_INET && (is_any(&x) || is_any(&y)))
    return 1;
  return tn_addr_equal(&x, &y);
}

/* "*" (NULL) first, so a listener's fallback leads its run. */
static int glob_cmp(const char *a, const char *b)
{
  if (a == NULL || b == NULL)
    return (a != NULL) - (b != NULL);
  return strcmp(a, b);
}

struct port_index {
  uint16_t port;
  uint8_t family;      /* the address as written: a v4-mapped IPv6 address is another listener than its IPv4 */
  size_t idx;
  const char *glob;
  struct tn_addr norm; /* the address as bound: v4-mapped IPv6 folded to IPv4 */
};

static int cmp_port_index(const void *pa, const void *pb)
{
  const struct port_index *a = pa, *b = pb;

  if (a->port != b->port)
    return a->port < b->port ? -1 : 1;
  return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int cmp_port_addr_index(const void *pa, const void *pb)
{
  const struct port_index *a = pa, *b = pb;
  int c;

  if (a->port != b->port)
    return a->port < b->port ? -1 : 1;
  if (a->norm.family != b->norm.family)
    return a->norm.family < b->norm.family ? -1 : 1;
  c = memcmp(a->norm.ip, b->norm.ip, sizeof(a->norm.ip));
  if (c)
    return c;
  if (a->family != b->family)
    return a->family < b->family ? -1 : 1;
  c = glob_cmp(a->glob, b->glob);
  if (c)
    return c;
  return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int is_v6_any(const struct tn_addr *a)
{
  return a->family == TN_AF_INET6 && is_any(a);
}

/*
 * For each tunnel, the lowest earlier index it cannot share its bound address with (SIZE_MAX: none), from pi
 * sorted by cmp_port_addr_index. Tunnels share one listener when they name the same address the same way and
 * their globs differ; the same glob twice, or one address written as IPv4 and as v4-mapped IPv6, cannot.
 */
static void same_address_conflicts(const struct port_index *pi, size_t n, size_t *dup_of)
{
  for (size_t g = 0; g < n;) {
    size_t end = g + 1, fam_min[2] = {SIZE_MAX, SIZE_MAX};
    while (end < n && pi[end].port == pi[g].port && tn_addr_equal(&pi[end].norm, &pi[g].norm))
      end++;
    for (size_t k = g; k < end; k++) {
      size_t f = pi[k].family == TN_AF_INET;
      if (pi[k].idx < fam_min[f])
        fam_min[f] = pi[k].idx;
    }
    for (size_t k = g, run = g; k < end; k++) {
      size_t j = pi[k].idx, other = fam_min[pi[k].family != TN_AF_INET];
      if (k > run && (pi[k].family != pi[run].family || glob_cmp(pi[k].glob, pi[run].glob) != 0))
        run = k;
      if (other < j)
        dup_of[j] = other;
      if (run < k && pi[run].idx < dup_of[j])
        dup_of[j] = pi[run].idx;
    }
    g = end;
  }
}

/*
 * Finds the conflicting pair with the lowest later index (and for it the lowest earlier
 * index) in O(n log n): a PUT body of 1 MiB holds over ten thousand tunnels, and a
 * pairwise check of many addresses sharing one port would stall the event loop.
 * Same-address conflicts come from sorting by address; wildcard overlaps from one pass per
 * port in index order, remembering the first wildcard and the first other address seen.
 */
/* tunnels[j] conflicts with the earlier tunnels[i]: one message naming both, and the status it deserves. */
static int report_conflict(const struct td_table *t, size_t best_i, size_t best_j, char *err, size_t errlen)
{
  char a[TN_ADDR_STRLEN], b[TN_ADDR_STRLEN];
  const struct td_tunnel *ti = &t->tunnels[best_i], *tj = &t->tunnels[best_j];
  const struct tn_addr *x = &ti->listen, *y = &tj->listen;
  struct tn_addr nx, ny;
  tn_addr_format(y, b, sizeof(b));
  tn_addr_format(x, a, sizeof(a));
  as_v4(x, &nx);
  as_v4(y, &ny);
  if (tn_addr_equal(x, y) && tj->glob != NULL) {
    /* Both tunnels are in force as far as each is concerned: the operator must drop or rename one. */
    fail(err, errlen,
         "tunnels[%zu] (client %s): listener %s with ListenHostnameGlob \"%s\" is already tunnels[%zu]'s "
         "(client %s): one port routes each glob to one tunnel",
         best_j, tj->client_id, b, tj->glob, best_i, ti->client_id);
    return TN_ERR_CONFLICT;
  }
  if (tn_addr_equal(x, y))
    fail(err, errlen, "tunnels[%zu]: listener %s duplicates tunnels[%zu]", best_j, b, best_i);
  else if (tn_addr_equal(&nx, &ny))
    fail(err, errlen, "tunnels[%zu]: listener %s is the same address and port as tunnels[%zu] (%s)", best_j, b,
         best_i, a);
  else
    fail(err, errlen,
         "tunnels[%zu]: listener %s overlaps tunnels[%zu] (%s): a wildcard address and another address "
         "cannot share a port",
         best_j, b, best_i, a);
  return TN_ERR_INVALID;
}

static int check_conflicts(const struct td_table *t, char *err, size_t errlen)
{
  struct port_index *pi;
  size_t *dup_of;
  size_t best_j = SIZE_MAX, best_i = 0;

  if (t->n < 2)
    return TN_OK;
  pi = calloc(t->n, sizeof(*pi));
  dup_of = calloc(t->n, sizeof(*dup_of));
  if (!pi || !dup_of) {
    free(pi);
    free(dup_of);
    fail(err, errlen, "tunnels: out of memory");
    return TN_ERR_NOMEM;
  }
  for (size_t k = 0; k < t->n; k++) {
    pi[k].port = t->tunnels[k].listen.port;
    pi[k].family = t->tunnels[k].listen.family;
    pi[k].idx = k;
    pi[k].glob = t->tunnels[k].glob;
    as_v4(&t->tunnels[k].listen, &pi[k].norm);
    pi[k].norm.port = 0;
    dup_of[k] = SIZE_MAX;
  }
  qsort(pi, t->n, sizeof(*pi), cmp_port_addr_index);
  same_address_conflicts(pi, t->n, dup_of);
  qsort(pi, t->n, sizeof(*pi), cmp_port_index);
  for (size_t g = 0; g < t->n;) {
    size_t end = g + 1, v6any = SIZE_MAX, not_v6any = SIZE_MAX, v4any = SIZE_MAX, v4 = SIZE_MAX;
    while (end < t->n && pi[end].port == pi[g].port)
      end++;
    for (size_t k = g; k < end && pi[k].idx < best_j; k++) {
      const struct tn_addr *a = &pi[k].norm;
      size_t j = pi[k].idx, i = dup_of[j];
      int is4 = a->family == TN_AF_INET, v6a = is_v6_any(a), v4a = is4 && is_any(a);
      /* Other addresses only: the same address is same_address_conflicts' to judge. */
      if (!v6a && v6any < i)
        i = v6any;
      if (v6a && not_v6any < i)
        i = not_v6any; /* :: covers everything before it */
      if (is4 && !v4a && v4any < i)
        i = v4any;
      if (v4a && v4 < i)
        i = v4;
      if (i != SIZE_MAX) {
        best_j = j;
        best_i = i;
        break;
      }
      if (v6a && v6any == SIZE_MAX)
        v6any = j;
      if (!v6a && not_v6any == SIZE_MAX)
        not_v6any = j;
      if (v4a && v4any == SIZE_MAX)
        v4any = j;
      if (is4 && !v4a && v4 == SIZE_MAX)
        v4 = j;
    }
    g = end;
  }
  free(pi);
  free(dup_of);
  return best_j != SIZE_MAX ? report_conflict(t, best_i, best_j, err, errlen) : TN_OK;
}

static int check_reserved(const struct td_table *t, const struct td_reserved *r, char *err, size_t errlen)
{
  for (size_t k = 0; r && k < t->n; k++) {
    for (size_t i = 0; i < r->n && i < TD_RESERVED_MAX; i++) {
      if (td_table_endpoints_conflict(&t->tunnels[k].listen, &r->ports[i].addr)) {
        char a[TN_ADDR_STRLEN], b[TN_ADDR_STRLEN];
        fail(err, errlen, "tunnels[%zu].ListenPort: listener %s collides with the server's %s (%s)", k,
             tn_addr_format(&t->tunnels[k].listen, a, sizeof(a)), r->ports[i].what ? r->ports[i].what : "port",
             tn_addr_format(&r->ports[i].addr, b, sizeof(b)));
        return TN_ERR_INVALID;
      }
    }
  }
  return TN_OK;
}

int td_table_from_json(const json_t *array, const struct td_reserved *reserved, const struct td_table_limits *limits,
                       struct td_table *out, char *err, size_t errlen)
{
  struct td_table t;
  char got[GOT_MAX + 8];
  int rc;

  td_table_init(out);
  td_table_init(&t);
  if (!json_is_array(array)) {
    td_table_describe_json(array, got, sizeof(got));
    fail(err, errlen, "tunnels: must be a JSON array of tunnel objects, got %s", got);
    return TN_ERR_INVALID;
  }
  if (limits && json_array_size(array) > limits->max_tunnels) {
    fail(err, errlen, "tunnels: %zu tunnels, more than MaxTunnels (%zu)", json_array_size(array),
         limits->max_tunnels);
    return TN_ERR_TOO_LARGE;
  }
  if (json_array_size(array) > 0) {
    t.tunnels = calloc(json_array_size(array), sizeof(*t.tunnels));
    if (!t.tunnels) {
      fail(err, errlen, "tunnels: out of memory");
      return TN_ERR_NOMEM;
    }
  }
  for (size_t i = 0; i < json_array_size(array); i++) {
    rc = parse_tunnel(json_array_get(array, i), i, limits, &t.tunnels[i], err, errlen);
    if (rc != TN_OK) {
      td_table_free(&t);
      return rc;
    }
    t.n++;
  }
  rc = check_reserved(&t, reserved, err, errlen);
  if (rc == TN_OK)
    rc = check_conflicts(&t, err, errlen);
  if (rc != TN_OK) {
    td_table_free(&t);
    return rc;
  }
  *out = t;
  return TN_OK;
}

static json_t *ip_json(const struct tn_addr *a)
{
  char ip[INET6_ADDRSTRLEN];

  if (!inet_ntop(a->family == TN_AF_INET ? AF_INET : AF_INET6, a->ip, ip, sizeof(ip)))
    return NULL;
  return json_string(ip);
}

/* json_object_set_new consumes v even on failure, so a NULL v just reports failure. */
static int put(json_t *o, const char *key, json_t *v)
{
  return v ? json_object_set_new(o, key, v) : -1;
}

static json_t *tunnel_json(const struct td_tunnel *tu)
{
  json_t *o = json_object();
  json_t *backups = json_array();
  int bad = 0;

  if (!o || !backups) {
    json_decref(o);
    json_decref(backups);
    return NULL;
  }
  bad |= put(o, "ListenAddress", ip_json(&tu->listen));
  bad |= put(o, "ListenPort", json_integer(tu->listen.port));
  bad |= put(o, "ClientIdentifier", json_string(tu->client_id));
  for (size_t i = 0; i < tu->n_backups; i++)
    bad |= json_array_append_new(backups, json_string(tu->backups[i]));
  bad |= put(o, "BackupClientIdentifiers", backups);
  if (tu->backend_service)
    bad |= put(o, "BackEndService", json_string(tu->backend_service));
  else
    bad |= put(o, "BackEndPort", json_integer(tu->backend_port));
  bad |= put(o, "HaProxyProxyProtocol", json_boolean(tu->proxy_version != 0));
  /* Only with the switch on: PUT refuses a version without it. */
  if (tu->proxy_version)
    bad |= put(o, "ProxyProtocolVersion", json_integer(tu->proxy_version));
  bad |= put(o, "ListenHostnameGlob", json_string(tu->glob ? tu->glob : "*"));
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return o;
}

json_t *td_table_to_json(const struct td_table *t, td_table_status_fn status_fn, void *ctx)
{
  json_t *arr = json_array();

  if (!arr)
    return NULL;
  for (size_t i = 0; i < t->n; i++) {
    json_t *o = tunnel_json(&t->tunnels[i]);
    if (o && status_fn) {
      const char *active = NULL;
      uint64_t open = 0;
      status_fn(ctx, i, &active, &open);
      if (put(o, "ActiveClient", active ? json_string(active) : json_null()) ||
          put(o, "OpenConnections", json_integer(open > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX
                                                                                     : (json_int_t)open))) {
        json_decref(o);
        o = NULL;
      }
    }
    if (!o || json_array_append_new(arr, o)) {
      json_decref(arr);
      return NULL;
    }
  }
  return arr;
}

int td_table_same_listener(const struct td_tunnel *a, const struct td_tunnel *b)
{
  return tn_addr_equal(&a->listen, &b->listen);
}

static int str_eq(const char *a, const char *b)
{
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int td_table_equal_tunnel(const struct td_tunnel *a, const struct td_tunnel *b)
{
  if (!td_table_same_listener(a, b) || !str_eq(a->client_id, b->client_id) || a->n_backups != b->n_backups ||
      a->backend_port != b->backend_port || !str_eq(a->backend_service, b->backend_service) ||
      a->proxy_version != b->proxy_version || !str_eq(a->glob, b->glob))
    return 0;
  for (size_t i = 0; i < a->n_backups; i++)
    if (!str_eq(a->backups[i], b->backups[i]))
      return 0;
  return 1;
}

long td_table_find_listener(const struct td_table *t, const struct tn_addr *listen)
{
  for (size_t i = 0; i < t->n; i++)
    if (tn_addr_equal(&t->tunnels[i].listen, listen))
      return (long)i;
  return -1;
}

int td_addr_cmp(const struct tn_addr *a, const struct tn_addr *b)
{
  int c;

  if (a->family != b->family)
    return a->family < b->family ? -1 : 1;
  c = memcmp(a->ip, b->ip, tn_addr_ip_len(a->family));
  if (c)
    return c < 0 ? -1 : 1;
  return a->port < b->port ? -1 : a->port > b->port;
}

static int cmp_listener_index(const void *pa, const void *pb)
{
  const struct td_listener_index *a = pa, *b = pb;
  int c = td_addr_cmp(&a->addr, &b->addr);

  if (c == 0)
    c = glob_cmp(a->glob, b->glob);
  return c ? c : (a->idx < b->idx ? -1 : a->idx > b->idx);
}

struct td_listener_index *td_table_index_new(const struct td_table *t)
{
  struct td_listener_index *ix = t->n ? calloc(t->n, sizeof(*ix)) : NULL;

  if (!ix)
    return NULL;
  for (size_t i = 0; i < t->n; i++) {
    ix[i].addr = t->tunnels[i].listen;
    ix[i].glob = t->tunnels[i].glob;
    ix[i].idx = i;
  }
  qsort(ix, t->n, sizeof(*ix), cmp_listener_index);
  return ix;
}

long td_table_index_run(const struct td_listener_index *ix, size_t n, const struct tn_addr *listen, size_t *count)
{
  size_t lo = 0, hi = ix ? n : 0, end;

  *count = 0;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (td_addr_cmp(&ix[mid].addr, listen) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (ix == NULL || lo >= n || td_addr_cmp(&ix[lo].addr, listen) != 0)
    return -1;
  for (end = lo + 1; end < n && td_addr_cmp(&ix[end].addr, listen) == 0; end++)
    ;
  *count = end - lo;
  return (long)lo;
}

long td_table_index_find(const struct td_listener_index *ix, size_t n, const struct tn_addr *listen)
{
  size_t count;
  long first = td_table_index_run(ix, n, listen, &count);

  return first < 0 ? -1 : (long)ix[first].idx;
}

long td_table_index_find_glob(const struct td_listener_index *ix, size_t n, const struct tn_addr *listen,
                              const char *glob)
{
  size_t count, lo, hi;
  long first = td_table_index_run(ix, n, listen, &count);

  if (first < 0)
    return -1;
  lo = (size_t)first;
  hi = lo + count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = glob_cmp(ix[mid].glob, glob);
    if (c == 0)
      return (long)ix[mid].idx;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

static char *dup_or_null(const char *s, int *bad)
{
  char *d;

  if (!s)
    return NULL;
  d = strdup(s);
  if (!d)
    *bad = 1;
  return d;
}

int td_table_copy(struct td_table *dst, const struct td_table *src)
{
  int bad = 0;

  td_table_init(dst);
  if (src->n == 0)
    return TN_OK;
  dst->tunnels = calloc(src->n, sizeof(*dst->tunnels));
  if (!dst->tunnels)
    return TN_ERR_NOMEM;
  for (size_t i = 0; i < src->n && !bad; i++) {
    const struct td_tunnel *s = &src->tunnels[i];
    struct td_tunnel *d = &dst->tunnels[i];
    dst->n++;
    *d = *s;
    d->client_id = dup_or_null(s->client_id, &bad);
    d->backend_service = dup_or_null(s->backend_service, &bad);
    d->glob = dup_or_null(s->glob, &bad);
    d->backups = NULL;
    d->n_backups = 0;
    if (s->n_backups) {
      d->backups = calloc(s->n_backups, sizeof(char *));
      if (!d->backups)
        bad = 1;
      for (size_t k = 0; d->backups && k < s->n_backups && !bad; k++) {
        d->backups[k] = dup_or_null(s->backups[k], &bad);
        d->n_backups++;
      }
    }
  }
  if (bad) {
    td_table_free(dst);
    return TN_ERR_NOMEM;
  }
  return TN_OK;
}
