/* put.c: a PUT /tunnels applied without stalling the event loop, one at a time. */
#include "put.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allow.h"
#include "api.h"
#include "server.h"
#include "state.h"
#include "tunnel/error.h"
#include "tunnel/log.h"

/* Listeners are bound, and removed ones closed, for at most this long per loop iteration, so connections and
 * requests are served between. */
#define PUT_SLICE_NS (5u * 1000u * 1000u)

struct td_put {
  struct td_server *srv;
  uv_work_t work;
  uv_idle_t idle;              /* binds a slice per iteration */
  uint8_t *body;
  size_t len;
  struct td_reserved reserved;
  struct td_table_limits limits;
  char actor[TN_TLS_CN_MAX];
  char peer[TN_ADDR_STRLEN];
  struct td_table parsed;      /* the worker's table, until td_apply_begin takes it */
  struct td_apply *apply;
  enum td_put_result result;
  char err[512];
  char **active;               /* [table.n] snapshot for the answer: each tunnel's active client, strdup'd */
  uint64_t *open;              /* and its open connections */
  json_t **problems;           /* and its "Problems" (NULL: none), handed whole to the answer's worker */
  size_t n_status;
  char *answer;                /* the table in force as JSON, built on a worker */
  td_put_done_fn done;
  void *arg;
};

bool td_put_busy(const struct td_server *srv)
{
  return srv->put != NULL;
}

static void put_free(uv_handle_t *h)
{
  struct td_put *p = h->data;

  for (size_t i = 0; i < p->n_status; i++) {
    free(p->active[i]);
    json_decref(p->problems[i]);
  }
  free(p->active);
  free(p->problems);
  free(p->open);
  free(p->answer);
  td_table_free(&p->parsed);
  free(p->body);
  free(p);
}

static void finish(struct td_put *p, enum td_put_result result)
{
  td_apply_free(p->srv, p->apply);  /* closes listeners bound for a table not in force, or removed by one that is */
  p->apply = NULL;
  p->srv->put = NULL;
  p->result = result;
  if (result == TD_PUT_STOPPING)
    snprintf(p->err, sizeof(p->err), "server shutting down; the tunnel table was not changed");
  if (result == TD_PUT_APPLIED)
    p->err[0] = 0;
  if (p->done != NULL)
    p->done(p->arg, result, p->err, result == TD_PUT_APPLIED ? p->answer : NULL);
  uv_close((uv_handle_t *)&p->idle, put_free);
}

/* ---- on a worker thread: nothing here touches the server ---- */

enum td_put_result td_put_parse(const uint8_t *text, size_t len, const struct td_reserved *reserved,
                                const struct td_table_limits *limits, struct td_table *out, char *err, size_t errlen)
{
  json_t *body = td_api_json_load(text, len, err, errlen);
  int rc;

  td_table_init(out);
  if (body == NULL)
    return TD_PUT_INVALID;
  rc = td_table_from_json(body, reserved, limits, out, err, errlen);
  json_decref(body);
  return rc == TN_OK ? TD_PUT_APPLIED : rc == TN_ERR_NOMEM ? TD_PUT_FAILED
                                    : rc == TN_ERR_TOO_LARGE ? TD_PUT_TOO_LARGE
                                    : rc == TN_ERR_CONFLICT ? TD_PUT_CONFLICT : TD_PUT_INVALID;
}

static void parse_work(uv_work_t *w)
{
  struct td_put *p = w->data;

  p->result = td_put_parse(p->body, p->len, &p->reserved, &p->limits, &p->parsed, p->err, sizeof(p->err));
}

/* The revoked list it reads changes only through the API, which waits for this PUT (td_put_busy). */
static void save_work(uv_work_t *w)
{
  struct td_put *p = w->data;

  if (td_state_save(p->srv->cfg.state_file, td_apply_table(p->apply), &p->srv->revoked, p->err, sizeof(p->err)) !=
      TN_OK)
    p->result = TD_PUT_FAILED;
}

/* The answer, as GET /tunnels would give it, from the status snapshot: the table itself cannot change until this
 * PUT has ended, as every change waits for it. */
static void snapshot_status(void *ctx, size_t index, const char **active, uint64_t *open)
{
  const struct td_put *p = ctx;

  *active = index < p->n_status ? p->active[index] : NULL;
  *open = index < p->n_status ? p->open[index] : 0;
}

static void answer_work(uv_work_t *w)
{
  struct td_put *p = w->data;
  json_t *j = td_table_to_json(&p->srv->table, snapshot_status, p);

  /* Only where there is one, as GET /tunnels shows them; each array was made on the loop and is this worker's alone. */
  for (size_t i = 0; j != NULL && i < p->n_status && i < json_array_size(j); i++) {
    if (p->problems[i] != NULL && json_object_set_new(json_array_get(j, i), "Problems", p->problems[i]) != 0) {
      json_decref(j);
      j = NULL;
    }
    p->problems[i] = NULL;
  }
  p->answer = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  json_decref(j);
}

/* ---- on the loop ---- */

static void answered(uv_work_t *w, int status)
{
  (void)status;  /* without an answer the API builds one */
  finish(w->data, TD_PUT_APPLIED);
}

/* The per-tunnel status the answer shows, taken now; NULL-filled (no answer built) when out of memory. */
static void take_snapshot(struct td_put *p)
{
  const struct td_table *t = &p->srv->table;

  p->active = calloc(t->n ? t->n : 1, sizeof(*p->active));
  p->open = calloc(t->n ? t->n : 1, sizeof(*p->open));
  p->problems = calloc(t->n ? t->n : 1, sizeof(*p->problems));
  if (p->active == NULL || p->open == NULL || p->problems == NULL)
    return;
  p->n_status = t->n;
  for (size_t i = 0; i < t->n; i++) {
    const struct td_client *c = td_registry_active(p->srv, i);
    p->active[i] = c != NULL ? strdup(c->id) : NULL;
    p->open[i] = td_listener_open_for(p->srv, i);
    p->problems[i] = td_allow_problems(p->srv, i);
  }
}

/* The removed listeners' handles, a slice per iteration; then the answer is built. */
static void close_slice(uv_idle_t *h)
{
  struct td_put *p = h->data;
  bool done;

  td_apply_close(p->srv, p->apply, uv_hrtime() + PUT_SLICE_NS, &done);
  if (!done)
    return;
  uv_idle_stop(h);
  td_apply_free(p->srv, p->apply);
  p->apply = NULL;
  if (p->n_status != p->srv->table.n || uv_queue_work(p->srv->loop, &p->work, answer_work, answered) != 0)
    finish(p, TD_PUT_APPLIED);
}

static void saved(uv_work_t *w, int status)
{
  struct td_put *p = w->data;

  if (status != 0) {
    finish(p, TD_PUT_STOPPING);
    return;
  }
  if (p->result != TD_PUT_APPLIED) {
    finish(p, p->result);
    return;
  }
  td_apply_commit(p->srv, p->apply, p->actor, p->peer);
  if (p->srv->stopping) {
    /* The state file holds the new table, so a restart restores it: it is the one in force, and the drain
     * that began while it was written closes its listeners as it closed the others. */
    td_listener_close_all(p->srv);
    finish(p, TD_PUT_APPLIED);
    return;
  }
  take_snapshot(p);
  uv_idle_start(&p->idle, close_slice);
}

static void bind_slice(uv_idle_t *h)
{
  struct td_put *p = h->data;
  bool done;
  int rc;

  if (p->srv->stopping) {
    uv_idle_stop(h);
    finish(p, TD_PUT_STOPPING);
    return;
  }
  rc = td_apply_bind(p->srv, p->apply, uv_hrtime() + PUT_SLICE_NS, &done, p->err, sizeof(p->err));
  if (rc != 0 || done)
    uv_idle_stop(h);
  if (rc != 0) {
    finish(p, rc == TN_ERR_CONFLICT ? TD_PUT_CONFLICT : TD_PUT_FAILED);
    return;
  }
  if (done && uv_queue_work(p->srv->loop, &p->work, save_work, saved) != 0) {
    snprintf(p->err, sizeof(p->err), "cannot queue the state file write");
    finish(p, TD_PUT_FAILED);
  }
}

static void parsed(uv_work_t *w, int status)
{
  struct td_put *p = w->data;

  if (status != 0 || p->srv->stopping) {
    finish(p, TD_PUT_STOPPING);
    return;
  }
  if (p->result != TD_PUT_APPLIED) {
    finish(p, p->result);
    return;
  }
  if (td_apply_begin(p->srv, &p->parsed, &p->apply, p->err, sizeof(p->err)) != 0) {
    finish(p, TD_PUT_FAILED);
    return;
  }
  uv_idle_start(&p->idle, bind_slice);
}

struct td_put *td_put_start(struct td_server *srv, const uint8_t *body, size_t len, const struct td_reserved *reserved,
                            const struct td_table_limits *limits, const char *actor, const char *peer,
                            td_put_done_fn done, void *arg)
{
  struct td_put *p = calloc(1, sizeof(*p));

  if (p == NULL || (p->body = malloc(len ? len : 1)) == NULL) {
    free(p);
    return NULL;
  }
  memcpy(p->body, body, len);
  p->len = len;
  p->srv = srv;
  p->reserved = *reserved;
  p->limits = *limits;
  snprintf(p->actor, sizeof(p->actor), "%s", actor);
  snprintf(p->peer, sizeof(p->peer), "%s", peer);
  td_table_init(&p->parsed);
  p->done = done;
  p->arg = arg;
  p->work.data = p;
  uv_idle_init(srv->loop, &p->idle);
  p->idle.data = p;
  if (uv_queue_work(srv->loop, &p->work, parse_work, parsed) != 0) {
    uv_close((uv_handle_t *)&p->idle, put_free);
    return NULL;
  }
  srv->put = p;
  return p;
}

void td_put_detach(struct td_put *p)
{
  p->done = NULL;
  p->arg = NULL;
}
