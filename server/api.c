/* api.c: management API routing, request validation and JSON responses. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tunnel/error.h"

#define JSON_TYPE "application/json"
#define PROMETHEUS_TYPE "text/plain; version=0.0.4; charset=utf-8"

void td_api_response_init(struct td_api_response *r, size_t max_body)
{
  r->status = 500;
  r->content_type = NULL;
  td_buf_init(&r->body, max_body);
  r->extra_headers[0] = 0;
}

void td_api_response_free(struct td_api_response *r)
{
  td_buf_free(&r->body);
}

void td_api_error(struct td_api_response *resp, int status, const char *message)
{
  json_t *j = json_pack("{s:s}", "error", message ? message : "");
  char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

  json_decref(j);
  td_buf_reset(&resp->body);
  resp->status = status;
  resp->content_type = JSON_TYPE;
  /* Invalid UTF-8 in message makes json_pack fail; the status alone still tells the story. */
  if (!text || td_buf_append_str(&resp->body, text) != TN_OK || td_buf_append(&resp->body, "\n", 1) != TN_OK) {
    td_buf_reset(&resp->body);
    td_buf_append_str(&resp->body, "{\"error\":\"(message unavailable)\"}\n");
  }
  free(text);
}

void td_api_forbidden(struct td_api_response *resp, const char *identity)
{
  char msg[400];

  if (identity)
    snprintf(msg, sizeof(msg), "certificate \"%.255s\" is not allowed on the management port (not in AdminIdentities)",
             identity);
  else
    snprintf(msg, sizeof(msg), "a client certificate listed in AdminIdentities is required");
  td_api_error(resp, 403, msg);
}

/* Dumps j (stolen) as the 200 body. */
static void reply_json(struct td_api_response *resp, json_t *j)
{
  char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

  json_decref(j);
  if (!text) {
    td_api_error(resp, 500, "out of memory");
    return;
  }
  td_buf_reset(&resp->body);
  if (td_buf_append_str(&resp->body, text) != TN_OK || td_buf_append(&resp->body, "\n", 1) != TN_OK) {
    free(text);
    td_api_error(resp, 500, "response too large");
    return;
  }
  free(text);
  resp->status = 200;
  resp->content_type = JSON_TYPE;
}

struct status_ctx {
  const struct td_api_ctx *api;
};

static void status_thunk(void *p, size_t index, const char **active, uint64_t *open)
{
  const struct status_ctx *s = p;

  *active = NULL;
  *open = 0;
  if (s->api->ops->tunnel_status)
    s->api->ops->tunnel_status(s->api->srv, index, active, open);
}

static void get_tunnels(const struct td_api_ctx *ctx, struct td_api_response *resp)
{
  const struct td_table *t = ctx->ops->current_table(ctx->srv);
  struct td_table empty;
  struct status_ctx s = {ctx};

  json_t *arr;

  td_table_init(&empty);
  arr = td_table_to_json(t ? t : &empty, status_thunk, &s);
  /* Only where there is one, so GET output without problems stays exactly as it always was. */
  for (size_t i = 0; arr != NULL && t != NULL && ctx->ops->tunnel_problems != NULL && i < json_array_size(arr); i++) {
    json_t *problems = ctx->ops->tunnel_problems(ctx->srv, i);
    if (problems != NULL && json_object_set_new(json_array_get(arr, i), "Problems", problems) != 0) {
      json_decref(arr);
      arr = NULL;
    }
  }
  reply_json(resp, arr);
}

/* application/json, any case, parameters (charset=...) allowed. */
static int is_json_type(const char *ct)
{
  size_t n;

  if (!ct)
    return 0;
  while (*ct == ' ' || *ct == '\t')
    ct++;
  n = strlen(JSON_TYPE);
  if (strncasecmp(ct, JSON_TYPE, n) != 0)
    return 0;
  ct += n;
  while (*ct == ' ' || *ct == '\t')
    ct++;
  return *ct == 0 || *ct == ';';
}

static void count(const struct td_api_ctx *ctx, int status)
{
  if (!ctx->counters)
    return;
  if (status == 200)
    ctx->counters->put_ok++;
  else if (status == 400 || status == 413 || status == 415)
    ctx->counters->put_invalid++;
  else if (status == 409)
    ctx->counters->put_conflict++;
  else
    ctx->counters->put_failed++;
}

/* Answers 415 unless the request says its body is JSON; false then. */
static bool require_json_type(const struct td_http_request *req, struct td_api_response *resp)
{
  char err[160];

  if (is_json_type(req->content_type))
    return true;
  snprintf(err, sizeof(err), "Content-Type must be application/json, got %s%.100s%s", req->content_type ? "\"" : "",
           req->content_type ? req->content_type : "none", req->content_type ? "\"" : "");
  td_api_error(resp, 415, err);
  return false;
}

json_t *td_api_json_load(const uint8_t *text, size_t len, char *err, size_t errlen)
{
  json_error_t jerr;
  json_t *j = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &jerr);

  if (j == NULL) {
    tn_err_one_line(jerr.text);  /* jansson quotes the input, newlines and all */
    snprintf(err, errlen, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
  }
  return j;
}

/* The request's JSON body, or NULL after answering 415 (not JSON) or 400 (does not parse). */
static json_t *json_body(const struct td_http_request *req, struct td_api_response *resp)
{
  json_t *body;
  char err[512];

  if (!require_json_type(req, resp))
    return NULL;
  if ((body = td_api_json_load(req->body, req->body_len, err, sizeof(err))) == NULL)
    td_api_error(resp, 400, err);
  return body;
}

/* The one place a server error becomes an HTTP status. */
static int apply_status(int rc)
{
  switch (rc) {
  case TN_ERR_CONFLICT: return 409;
  case TN_ERR_TOO_LARGE: return 413;
  default: return 500;
  }
}

/* The body is parsed, checked and applied by start_put (put.c on tunneld); only its media type is judged here. */
static bool put_tunnels(const struct td_api_ctx *ctx, const struct td_http_request *req, struct td_api_response *resp)
{
  if (!require_json_type(req, resp)) {
    count(ctx, resp->status);
    return true;
  }
  if (ctx->ops->start_put(ctx->srv, ctx, req->body, req->body_len))
    return false;
  td_api_put_tunnels_answer(ctx, TD_PUT_FAILED, "out of memory", NULL, resp);
  return true;
}

void td_api_put_tunnels_answer(const struct td_api_ctx *ctx, enum td_put_result result, const char *err,
                               const char *table_json, struct td_api_response *resp)
{
  static const int status[] = { [TD_PUT_APPLIED] = 200, [TD_PUT_INVALID] = 400, [TD_PUT_TOO_LARGE] = 413,
                                [TD_PUT_CONFLICT] = 409, [TD_PUT_FAILED] = 500, [TD_PUT_STOPPING] = 503 };

  resp->extra_headers[0] = 0;
  td_buf_reset(&resp->body);
  if (result == TD_PUT_APPLIED && table_json != NULL && td_buf_append_str(&resp->body, table_json) == TN_OK &&
      td_buf_append(&resp->body, "\n", 1) == TN_OK) {
    resp->status = 200;
    resp->content_type = JSON_TYPE;
  } else if (result == TD_PUT_APPLIED)
    get_tunnels(ctx, resp);
  else
    td_api_error(resp, status[result], err != NULL && err[0] ? err : "the tunnel table could not be applied");
  count(ctx, resp->status);
}

static void get_revoked(const struct td_api_ctx *ctx, struct td_api_response *resp)
{
  reply_json(resp, td_revoked_to_json(ctx->ops->revoked(ctx->srv)));
}

static void put_revoked(const struct td_api_ctx *ctx, const struct td_http_request *req, struct td_api_response *resp)
{
  json_t *body;
  struct td_revoked r;
  char err[512], inner[400];
  int rc;

  if ((body = json_body(req, resp)) == NULL)
    return;
  inner[0] = 0;
  rc = td_revoked_from_json(body, &r, inner, sizeof(inner));
  json_decref(body);
  if (rc != TN_OK) {
    snprintf(err, sizeof(err), "revoked-certificates%s%s", inner[0] == '[' ? "" : ": ", inner);
    td_api_error(resp, rc == TN_ERR_NOMEM ? 500 : 400, err);
    return;
  }
  err[0] = 0;
  rc = ctx->ops->apply_revoked(ctx->srv, &r, ctx->requester_sha256, err, sizeof(err));
  td_revoked_free(&r);
  if (rc != 0) {
    td_api_error(resp, apply_status(rc), err[0] ? err : "the list could not be applied");
    return;
  }
  get_revoked(ctx, resp);
}

static void get_clients(const struct td_api_ctx *ctx, struct td_api_response *resp)
{
  json_t *j = ctx->ops->clients_json ? ctx->ops->clients_json(ctx->srv) : json_object();

  if (!j) {
    td_api_error(resp, 500, "client list unavailable");
    return;
  }
  if (!json_is_object(j)) {
    json_decref(j);
    td_api_error(resp, 500, "client list unavailable");
    return;
  }
  reply_json(resp, j);
}

static void get_metrics(const struct td_api_ctx *ctx, struct td_api_response *resp)
{
  struct td_api_counters zero = {0};

  td_buf_reset(&resp->body);
  if ((ctx->ops->metrics_text && ctx->ops->metrics_text(ctx->srv, &resp->body) != TN_OK) ||
      td_api_counters_text(ctx->counters ? ctx->counters : &zero, &resp->body) != TN_OK) {
    td_api_error(resp, 500, "metrics unavailable");
    return;
  }
  resp->status = 200;
  resp->content_type = PROMETHEUS_TYPE;
}

static void ping(struct td_api_response *resp)
{
  td_buf_reset(&resp->body);
  td_buf_append_str(&resp->body, "pong");
  resp->status = 200;
  resp->content_type = "text/plain; charset=utf-8";
}

bool td_api_handle(const struct td_api_ctx *ctx, const struct td_http_request *req, struct td_api_response *resp)
{
  const char *path = req->path ? req->path : "";
  const char *m = req->method ? req->method : "";
  int is_get = strcmp(m, "GET") == 0;

  resp->extra_headers[0] = 0;
  if (strcmp(path, "/tunnels") == 0) {
    if (is_get) {
      get_tunnels(ctx, resp);
      return true;
    }
    if (strcmp(m, "PUT") == 0)
      return put_tunnels(ctx, req, resp);
    snprintf(resp->extra_headers, sizeof(resp->extra_headers), "Allow: GET, PUT\r\n");
  } else if (strcmp(path, "/revoked-certificates") == 0 && ctx->ops->revoked && ctx->ops->apply_revoked) {
    if (is_get) {
      get_revoked(ctx, resp);
      return true;
    }
    if (strcmp(m, "PUT") == 0) {
      put_revoked(ctx, req, resp);
      return true;
    }
    snprintf(resp->extra_headers, sizeof(resp->extra_headers), "Allow: GET, PUT\r\n");
  } else if (strcmp(path, "/clients") == 0 || strcmp(path, "/ping") == 0 || strcmp(path, "/metrics") == 0) {
    if (is_get) {
      if (path[1] == 'c')
        get_clients(ctx, resp);
      else if (path[1] == 'p')
        ping(resp);
      else
        get_metrics(ctx, resp);
      return true;
    }
    snprintf(resp->extra_headers, sizeof(resp->extra_headers), "Allow: GET\r\n");
  } else {
    char msg[128];
    snprintf(msg, sizeof(msg), "no such endpoint: %.80s", path);
    td_api_error(resp, 404, msg);
    return true;
  }
  {
    char msg[128];
    snprintf(msg, sizeof(msg), "method %.16s not allowed on %s", m, path);
    td_api_error(resp, 405, msg);
  }
  return true;
}

int td_api_counters_text(const struct td_api_counters *c, struct td_buf *out)
{
  return td_buf_printf(out,
                       "# HELP tunneld_api_put_requests_total PUT /tunnels requests by result.\n"
                       "# TYPE tunneld_api_put_requests_total counter\n"
                       "tunneld_api_put_requests_total{result=\"ok\"} %llu\n"
                       "tunneld_api_put_requests_total{result=\"invalid\"} %llu\n"
                       "tunneld_api_put_requests_total{result=\"conflict\"} %llu\n"
                       "tunneld_api_put_requests_total{result=\"failed\"} %llu\n",
                       (unsigned long long)c->put_ok, (unsigned long long)c->put_invalid,
                       (unsigned long long)c->put_conflict, (unsigned long long)c->put_failed);
}

int td_api_response_write(const struct td_api_response *resp, int keep_alive, struct td_buf *out)
{
  return td_http_response(out, resp->status, resp->content_type, resp->body.data, resp->body.len, keep_alive,
                          resp->extra_headers[0] ? resp->extra_headers : NULL);
}
