/* allow.c: a client's announced allow-list against the tunnels routed to it (docs/PROTOCOL.md 8a, docs/API.md). */
#include "allow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "tunnel/control.h"
#include "tunnel/error.h"
#include "tunnel/frame.h"
#include "tunnel/log.h"

void td_allow_free(struct td_allow *a)
{
  if (a == NULL)
    return;
  free(a->names);
  free(a->ports);
  free(a);
}

static struct td_allow *allow_from(const struct tn_ctl_allow *m)
{
  struct td_allow *a = calloc(1, sizeof(*a));

  if (a == NULL)
    return NULL;
  a->ports = malloc((m->n_ports ? m->n_ports : 1) * sizeof(*a->ports));
  a->names = malloc((m->n_names ? m->n_names : 1) * sizeof(*a->names));
  if (a->ports == NULL || a->names == NULL) {
    td_allow_free(a);
    return NULL;
  }
  memcpy(a->ports, m->ports, m->n_ports * sizeof(*a->ports));
  a->n_ports = m->n_ports;
  memcpy(a->names, m->names, m->n_names * sizeof(*a->names));
  a->n_names = m->n_names;
  return a;
}

/* The problem line for client c serving tunnel t, or "" when its list allows it or is unknown. */
static const char *allow_problem(const struct td_client *c, const struct td_tunnel *t, char *out, size_t outlen)
{
  out[0] = '\0';
  if (c == NULL || c->allow == NULL)
    return out;
  if (t->backend_service != NULL && !tn_ctl_names_contain(c->allow->names, c->allow->n_names, t->backend_service))
    snprintf(out, outlen, "client %s does not allow BackEndService %s", c->id, t->backend_service);
  else if (t->backend_service == NULL && !tn_ctl_ports_contain(c->allow->ports, c->allow->n_ports, t->backend_port))
    snprintf(out, outlen, "client %s does not allow BackEndPort %u", c->id, (unsigned)t->backend_port);
  return out;
}

json_t *td_allow_problems(const struct td_server *srv, size_t index)
{
  json_t *arr = NULL;
  char line[TN_TLS_CN_MAX + 320];
  size_t n;
  struct td_client *const *route = td_registry_route(srv, index, &n);

  for (size_t r = 0; r < n; r++) {
    if (allow_problem(route[r], &srv->table.tunnels[index], line, sizeof(line))[0] == '\0')
      continue;
    if (arr == NULL && (arr = json_array()) == NULL)
      return NULL;
    json_array_append_new(arr, json_string(line));
  }
  return arr;
}

int td_allow_client_json(const struct td_client *c, json_t *o)
{
  json_t *ports, *names;

  if (c->allow == NULL)
    return 0;
  ports = json_array();
  names = json_array();
  if (ports == NULL || names == NULL) {
    json_decref(ports);
    json_decref(names);
    return -1;
  }
  for (size_t i = 0; i < c->allow->n_ports; i++)
    json_array_append_new(ports, json_integer(c->allow->ports[i]));
  for (size_t i = 0; i < c->allow->n_names; i++)
    json_array_append_new(names, json_string(c->allow->names[i]));
  if (json_object_set_new(o, "AllowedBackEndPorts", ports) != 0 || json_object_set_new(o, "AllowedServices", names) != 0)
    return -1;
  return 0;
}

/* One warning per tunnel of the table in force that a known list does not allow (an admin's PUT decides how many). */
void td_allow_log_table(const struct td_server *srv)
{
  char line[TN_TLS_CN_MAX + 320];

  for (size_t i = 0; i < srv->table.n; i++) {
    size_t n;
    struct td_client *const *route = td_registry_route(srv, i, &n);
    for (size_t r = 0; r < n; r++) {
      if (allow_problem(route[r], &srv->table.tunnels[i], line, sizeof(line))[0] != '\0')
        tn_log_warn("tunnel port %u: %s (table applied); its connections to that client will be refused",
                    (unsigned)srv->table.tunnels[i].listen.port, line);
    }
  }
}

/*
 * The client decides how often it announces, and the table how many tunnels name it: one line per announcement
 * (a count and the first tunnel), rate-limited per client. Each tunnel's problem stays in GET /tunnels.
 */
static void allow_log_client(struct td_server *srv, const struct td_client *c)
{
  char line[TN_TLS_CN_MAX + 320], first[TN_CTL_MAX_NAME + 64] = "";
  size_t count = 0;

  for (size_t i = 0; i < srv->table.n; i++) {
    size_t n;
    const struct td_tunnel *t = &srv->table.tunnels[i];
    struct td_client *const *route = td_registry_route(srv, i, &n);
    for (size_t r = 0; r < n; r++) {
      if (route[r] != c || allow_problem(c, t, line, sizeof(line))[0] == '\0')
        continue;
      if (count++ == 0) {
        if (t->backend_service != NULL)
          snprintf(first, sizeof(first), "port %u -> service %s", (unsigned)t->listen.port, t->backend_service);
        else
          snprintf(first, sizeof(first), "port %u -> %u", (unsigned)t->listen.port, (unsigned)t->backend_port);
      }
      break;
    }
  }
  if (count == 0)
    td_server_log_limited(srv, TN_LOG_INFO, "allow-list announced", c->id,
                          "client %s: allow-list announced: allows %zu BackEndPorts and %zu services", c->id,
                          c->allow->n_ports, c->allow->n_names);
  else
    td_server_log_limited(srv, TN_LOG_WARN, "allow-list announced", c->id,
                          "client %s: allow-list announced (%zu BackEndPorts, %zu services); %zu tunnel%s a "
                          "backend it does not accept (first: %s); their connections to that client will be "
                          "refused (GET /tunnels lists each under Problems)",
                          c->id, c->allow->n_ports, c->allow->n_names, count, count == 1 ? " names" : "s name", first);
}

static void allow_set(struct td_server *srv, struct td_client *c, struct td_allow *a)
{
  td_allow_free(c->allow);
  c->allow = a;
  allow_log_client(srv, c);
}

void td_allow_link_admitted(struct td_server *srv, struct td_client *c, struct td_allow **link_allow)
{
  /* A link that announced nothing yet leaves the last known list in place: it is about to send its own. */
  if (*link_allow != NULL) {
    allow_set(srv, c, *link_allow);
    *link_allow = NULL;
  }
}

void td_control_protocol_error(tn_link *link, const char *what)
{
  struct td_link_ctx *ctx = tn_link_data(link);

  tn_log_warn("client %s: %s: malformed control message (%s); closing its link",
              ctx->client != NULL ? ctx->client->id : tn_link_peer(link)->cn, tn_link_peer_address(link), what);
  /* GoAway(1) first: the close that follows then only flushes it (a link going away keeps its code). */
  tn_mux_go_away(tn_link_mux(link), TN_GO_AWAY_PROTOCOL_ERROR);
  tn_link_close(link, "protocol error from peer: malformed control message");
}

void td_allow_on_message(tn_link *link, const uint8_t *msg, size_t len)
{
  struct td_link_ctx *ctx = tn_link_data(link);
  struct tn_ctl_allow *m;
  struct td_allow *a;
  uint8_t version = 0, type = 0;
  uint32_t total = 0;
  int rc = tn_ctl_peek(msg, len, &version, &type, &total);

  if (rc != TN_OK || total != len) {
    td_control_protocol_error(link, rc == TN_OK ? "its length disagrees with the stream" : "bad head");
    return;
  }
  if (version != TN_CTL_VERSION || type != TN_CTL_ALLOW) {
    /* Forward compatibility: a newer client may announce what this server does not know yet. */
    tn_log_debug("control: %s: ignored a control message of version %u type %u", tn_link_peer_address(link),
                 (unsigned)version, (unsigned)type);
    return;
  }
  if ((m = malloc(sizeof(*m))) == NULL)
    return;
  rc = tn_ctl_allow_decode(m, msg, len);
  if (rc != (int)len) {
    free(m);
    td_control_protocol_error(link, "allow-list does not follow the rules");
    return;
  }
  a = allow_from(m);
  free(m);
  if (a == NULL)
    return;
  if (ctx->client != NULL && ctx->client->link == link) {
    allow_set(ctx->srv, ctx->client, a);
  } else {
    td_allow_free(ctx->allow);
    ctx->allow = a;
  }
}
