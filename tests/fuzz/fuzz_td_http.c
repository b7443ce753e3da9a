/* fuzz_td_http.c: libFuzzer target for the API behind the HTTP parser: bytes -> HTTP connection -> API routes (PUT /tunnels parsed by put.c's td_put_parse, as tunneld does) with a fake server. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "http.h"
#include "tunnel/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A server that keeps the applied table and refuses every third apply, as a failed bind would. */
struct fake {
  struct td_table table;
  unsigned applies;
  bool pending;                  /* a PUT /tunnels ended; answer() hands its outcome to put_done */
  enum td_put_result result;
  char err[512];
};

static enum td_put_result fake_apply(struct fake *f, struct td_table *t, char *err, size_t errlen)
{
  struct td_table copy;
  json_t *j;
  char inner[256];

  /* Whatever validation accepted must survive GET -> PUT unchanged. */
  j = td_table_to_json(t, NULL, NULL);
  if (!j || td_table_from_json(j, NULL, NULL, &copy, inner, sizeof(inner)) != TN_OK || copy.n != t->n)
    abort();
  for (size_t i = 0; i < t->n; i++)
    if (!td_table_equal_tunnel(&t->tunnels[i], &copy.tunnels[i]))
      abort();
  td_table_free(&copy);
  json_decref(j);

  if (++f->applies % 3 == 0) {
    snprintf(err, errlen, "cannot listen: address already in use");
    return TD_PUT_CONFLICT;
  }
  td_table_free(&f->table);
  f->table = *t;
  td_table_init(t);
  return TD_PUT_APPLIED;
}

/* The body parsed as tunneld's put.c parses it; the outcome waits for answer(), as tunneld's waits for the loop. */
static bool fake_start_put(void *srv, const struct td_api_ctx *ctx, const uint8_t *body, size_t len)
{
  struct fake *f = srv;
  struct td_table t;

  if (f->pending)
    abort();
  f->result = td_put_parse(body, len, ctx->reserved, ctx->limits, &t, f->err, sizeof(f->err));
  if (f->result == TD_PUT_APPLIED)
    f->result = fake_apply(f, &t, f->err, sizeof(f->err));
  else if (t.n != 0)
    abort();
  td_table_free(&t);
  f->pending = true;
  return true;
}

static const struct td_table *fake_current(void *srv)
{
  return &((struct fake *)srv)->table;
}

static void fake_status(void *srv, size_t index, const char **active, uint64_t *open)
{
  const struct fake *f = srv;

  *active = index % 2 ? f->table.tunnels[index].client_id : NULL;
  *open = index;
}

static json_t *fake_clients(void *srv)
{
  return json_pack("{s:{s:s}}", "home1", "CurrentState", "ClientConnected");
}

static int fake_metrics(void *srv, struct td_buf *out)
{
  return td_buf_append_str(out, "tunneld_clients_connected 0\n");
}

static struct td_revoked fake_list;

static const struct td_revoked *fake_revoked(void *srv)
{
  (void)srv;
  return &fake_list;
}

/* Whatever validation accepted must read back the same from its JSON form. */
static int fake_apply_revoked(void *srv, struct td_revoked *r, const char *requester, char *err, size_t errlen)
{
  struct td_revoked copy;
  json_t *j = td_revoked_to_json(r);
  char inner[256];

  (void)srv;
  if (!j || td_revoked_from_json(j, &copy, inner, sizeof(inner)) != TN_OK || copy.n != r->n)
    abort();
  for (size_t i = 0; i < r->n; i++)
    if (strcmp(copy.fp[i], r->fp[i]) != 0 || !td_revoked_contains(&copy, r->fp[i]))
      abort();
  td_revoked_free(&copy);
  json_decref(j);
  if (requester != NULL && td_revoked_contains(r, requester)) {
    snprintf(err, errlen, "the list revokes the certificate making this request");
    return 409;
  }
  td_revoked_free(&fake_list);
  fake_list = *r;
  td_revoked_init(r);
  return 0;
}

/* Named fields: an op added later (tunnel_problems is optional) is NULL here, and the API copes with that. */
static const struct td_api_ops ops = {.start_put = fake_start_put, .current_table = fake_current,
                                      .tunnel_status = fake_status, .clients_json = fake_clients,
                                      .metrics_text = fake_metrics, .revoked = fake_revoked,
                                      .apply_revoked = fake_apply_revoked};

static int answer(const struct td_api_ctx *ctx, struct td_http_conn *c, struct td_buf *out)
{
  const struct td_http_request *req = td_http_conn_request(c);
  struct td_api_response resp;
  int keep;

  if (!req)
    abort();
  td_api_response_init(&resp, 1u << 20);
  if (!td_api_handle(ctx, req, &resp)) {
    struct fake *f = ctx->srv;
    if (!f->pending)
      abort();
    f->pending = false;
    td_api_put_tunnels_answer(ctx, f->result, f->err, NULL, &resp);
  }
  if (resp.status < 200 || resp.status > 599 || !resp.content_type)
    abort();
  keep = req->keep_alive;
  td_buf_reset(out);
  td_api_response_write(&resp, keep, out);
  td_api_response_free(&resp);
  return keep;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* Small limits so the fuzzer reaches 413 and 431 with short inputs. */
  const struct td_http_limits limits = {.max_header = 512, .max_body = 2048};
  struct fake srv;
  struct td_api_counters counters = {0};
  struct td_reserved reserved;
  /* Small table limits too, so MaxTunnels (413) and MaxBackupsPerTunnel (400) are reached. */
  const struct td_table_limits table_limits = {8, 4};
  struct td_api_ctx ctx = {.ops = &ops, .srv = &srv, .reserved = &reserved, .counters = &counters,
                           .requester_sha256 = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
                           .limits = &table_limits, .actor = "admin", .peer = "192.0.2.1:1"};
  struct td_http_conn c;
  struct td_buf out;
  size_t step, off = 0;
  int open = 1;

  if (size < 1)
    return 0;
  /* The first byte picks how the rest is cut into reads, so every split point gets covered. */
  step = (size_t)data[0] + 1;
  data++;
  size--;

  memset(&reserved, 0, sizeof(reserved));
  tn_addr_parse_ip(&reserved.ports[0].addr, "::");
  reserved.ports[0].addr.port = 9057;
  reserved.ports[0].what = "ManagementPort";
  reserved.n = 1;
  td_table_init(&srv.table);
  srv.applies = 0;
  srv.pending = false;
  td_http_conn_init(&c, &limits);
  td_buf_init(&out, 2u << 20);

  while (open && off < size) {
    size_t n = size - off < step ? size - off : step;
    enum td_http_result r = td_http_conn_feed(&c, data + off, n);
    off += n;
    while (open) {
      if (r == TD_HTTP_REQUEST) {
        if (!answer(&ctx, &c, &out)) {
          open = 0;
          break;
        }
        r = td_http_conn_next(&c);
      } else if (r == TD_HTTP_ERROR) {
        struct td_api_response resp;
        int st = td_http_conn_error_status(&c);
        if (st != 400 && st != 413 && st != 431 && st != 501 && st != 505 && st != 500)
          abort();
        td_api_response_init(&resp, 4096);
        td_api_error(&resp, st, td_http_conn_error_text(&c));
        td_buf_reset(&out);
        td_api_response_write(&resp, 0, &out);
        td_api_response_free(&resp);
        open = 0;
      } else {
        break; /* NEED_MORE, or CONTINUE: the interim line would be written here */
      }
    }
  }

  td_buf_free(&out);
  td_http_conn_free(&c);
  td_table_free(&srv.table);
  td_revoked_free(&fake_list);
  return 0;
}
