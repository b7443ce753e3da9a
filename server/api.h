/* api.h: the management API's routes (PUT/GET /tunnels and /revoked-certificates, GET /clients, /ping, /metrics) over a narrow interface to the live server. */
#ifndef TD_API_H
#define TD_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http.h"
#include "put.h"
#include "revoked.h"
#include "table.h"

struct td_api_ctx;

/* How the API reaches the live server; srv is passed back unchanged. */
struct td_api_ops {
  /*
   * Starts applying a PUT /tunnels body (the JSON as received, parsed with td_put_parse) as the new table, as
   * td_put_start does on tunneld, with ctx's reserved endpoints, limits, actor and peer. ctx->put_done(put_arg, ...)
   * gets the outcome once the change has ended, never before this returns. False when it cannot start (out of
   * memory): put_done is not called.
   */
  bool (*start_put)(void *srv, const struct td_api_ctx *ctx, const uint8_t *body, size_t len);
  const struct td_table *(*current_table)(void *srv);
  /* Status of current_table()->tunnels[index]; see td_table_status_fn. */
  void (*tunnel_status)(void *srv, size_t index, const char **active_client, uint64_t *open_connections);
  /* GET /clients body: a new reference to an object keyed by client identity; NULL on failure. */
  json_t *(*clients_json)(void *srv);
  /* Appends the server's Prometheus text (without the API's own counters); TN_OK or an error. May be NULL. */
  int (*metrics_text)(void *srv, struct td_buf *out);
  /* The revoked-certificate list in force. NULL (with apply_revoked) when the server has none: 404. */
  const struct td_revoked *(*revoked)(void *srv);
  /*
   * Replaces the list as apply_table replaces the table: 0 having taken *r's contents, or an
   * TN_ERR_* code with err set and nothing changed (TN_ERR_CONFLICT: the list revokes requester_sha256,
   * the certificate asking).
   */
  int (*apply_revoked)(void *srv, struct td_revoked *r, const char *requester_sha256, char *err, size_t errlen);
  /* GET /tunnels "Problems" of current_table()->tunnels[index]: a new array reference, or NULL for none. May be NULL. */
  json_t *(*tunnel_problems)(void *srv, size_t index);
};

/* PUT /tunnels outcomes, for /metrics. */
struct td_api_counters {
  uint64_t put_ok;       /* 200 */
  uint64_t put_invalid;  /* 400, 415 */
  uint64_t put_conflict; /* 409 */
  uint64_t put_failed;   /* anything else apply_table returned, or out of memory */
};

struct td_api_ctx {
  const struct td_api_ops *ops;
  void *srv;
  const struct td_reserved *reserved; /* the server's own endpoints (td_config_reserved); may be NULL */
  struct td_api_counters *counters;   /* owned by the server; may be NULL */
  const char *requester_sha256;       /* fingerprint of the admin certificate making the request; may be NULL */
  const struct td_table_limits *limits; /* MaxTunnels, MaxBackupsPerTunnel; NULL: none */
  const char *actor;                  /* the admin's identity and address, for the audit lines of a PUT; may be NULL */
  const char *peer;
  td_put_done_fn put_done;            /* told how a PUT /tunnels started by start_put ended */
  void *put_arg;
};

/* Largest response body built by default (GET /tunnels of a very large table, /metrics). */
#define TD_API_MAX_RESPONSE (32u * 1024u * 1024u)
/* A whole answer on the wire: the body plus its status line and headers (which fit in 4 KiB). */
#define TD_API_MAX_WIRE (TD_API_MAX_RESPONSE + 4096u)
/* The body of an answer that is only an error ({"error": "..."}): the parser's messages are one short line. */
#define TD_API_MAX_ERROR_RESPONSE 4096u

struct td_api_response {
  int status;
  const char *content_type; /* static string */
  struct td_buf body;
  char extra_headers[64];   /* "" or e.g. "Allow: GET, PUT\r\n" */
};

void td_api_response_init(struct td_api_response *r, size_t max_body);
void td_api_response_free(struct td_api_response *r);

/*
 * Routes one request (the caller has already checked the client is an admin) and fills resp; false when the
 * answer comes later: a PUT /tunnels being applied (start_put), whose outcome reaches ctx->put_done, and the
 * caller then answers with td_api_put_tunnels_answer.
 */
bool td_api_handle(const struct td_api_ctx *ctx, const struct td_http_request *req, struct td_api_response *resp);

/* How a PUT /tunnels ended, as its response (200 with the table in force, table_json when the server built it
 * already, or the error), counted. */
void td_api_put_tunnels_answer(const struct td_api_ctx *ctx, enum td_put_result result, const char *err,
                               const char *table_json, struct td_api_response *resp);

/* A JSON text as the API reads request bodies (duplicate keys refused); NULL with the one-line 400 message in err.
 * Touches nothing shared: PUT /tunnels calls it on a worker thread. */
json_t *td_api_json_load(const uint8_t *text, size_t len, char *err, size_t errlen);

/* resp becomes status with body {"error": message} (application/json). */
void td_api_error(struct td_api_response *resp, int status, const char *message);

/* resp becomes the 403 for a certificate identity not in AdminIdentities (identity may be NULL). */
void td_api_forbidden(struct td_api_response *resp, const char *identity);

/* Appends the counters in Prometheus text format (tunneld_api_put_requests_total{result=...}). */
int td_api_counters_text(const struct td_api_counters *c, struct td_buf *out);

/* Serialises resp as an HTTP/1.1 response into out (td_http_response). */
int td_api_response_write(const struct td_api_response *resp, int keep_alive, struct td_buf *out);

#endif
