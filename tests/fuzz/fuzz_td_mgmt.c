/* fuzz_td_mgmt.c: libFuzzer target for tunneld's management connections (mgmt.c) behind a memory transport: request framing, keep-alive, pipelining, 100-continue, deadlines, limits and the PUT queue across connections. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mgmt.h"
#include "server.h"
#include "tunnel/error.h"
#include "tunnel/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CONNS 3
/* What a connection may have queued, as tn_link's max_raw_output bounds it; small, so "too large" is reached. */
#define OUT_MAX (64u * 1024u)

/* One connection's transport: what it was sent, and how it was closed. */
struct conn {
  struct td_mgmt_conn *m;
  uint8_t out[OUT_MAX];
  size_t out_len;
  bool closed;
  bool close_after_flush;
};

/* The PUT /tunnels being applied, if any: put.c's parse, an outcome held until the input says it ends. */
struct td_put {
  td_put_done_fn done;
  void *arg;
  enum td_put_result result;
  char err[512];
};

static uv_loop_t loop;
static struct td_server srv;
static struct conn conns[CONNS];
static struct td_put *put;

static void conn_close(struct conn *c)
{
  if (c->closed)
    return;
  c->closed = true;
  td_mgmt_conn_closed(c->m);
}

static int io_send(void *arg, const uint8_t *data, size_t len)
{
  struct conn *c = arg;

  if (c->closed || c->close_after_flush)
    abort();  /* nothing is written after the last answer */
  if (len > OUT_MAX - c->out_len)
    return TN_ERR_TOO_LARGE;
  memcpy(c->out + c->out_len, data, len);
  c->out_len += len;
  return TN_OK;
}

static void io_close(void *arg, const char *reason)
{
  (void)reason;
  conn_close(arg);
}

static void io_close_when_flushed(void *arg, const char *reason)
{
  struct conn *c = arg;

  (void)reason;
  c->close_after_flush = true;
}

static bool io_is_closing(void *arg)
{
  return ((struct conn *)arg)->closed;
}

static const struct td_mgmt_io io = {
  .send = io_send,
  .close = io_close,
  .close_when_flushed = io_close_when_flushed,
  .is_closing = io_is_closing,
};

static struct td_put *put_start(struct td_server *s, const uint8_t *body, size_t len,
                                const struct td_reserved *reserved, const struct td_table_limits *limits,
                                const char *actor, const char *peer, td_put_done_fn done, void *arg)
{
  struct td_put *p;
  struct td_table t;

  (void)s;
  (void)actor;
  (void)peer;
  if (put != NULL)
    abort();  /* one at a time: the connection waits its turn */
  p = calloc(1, sizeof(*p));
  if (p == NULL)
    return NULL;
  p->done = done;
  p->arg = arg;
  p->result = td_put_parse(body, len, reserved, limits, &t, p->err, sizeof(p->err));
  if (p->result == TD_PUT_APPLIED && t.n % 3 == 2) {
    p->result = TD_PUT_CONFLICT;  /* as a port that cannot be bound */
    snprintf(p->err, sizeof(p->err), "tunnels[0]: cannot listen: address already in use");
  }
  td_table_free(&t);
  put = p;
  return p;
}

static bool put_busy(const struct td_server *s)
{
  (void)s;
  return put != NULL;
}

static void put_detach(struct td_put *p)
{
  p->done = NULL;
  p->arg = NULL;
}

static const struct td_mgmt_puts fake_puts = {.start = put_start, .busy = put_busy, .detach = put_detach};

/* The change ends: its requester (if still there) answers, and the changes waiting behind it start. */
static void put_end(void)
{
  struct td_put *p = put;

  if (p == NULL)
    return;
  put = NULL;
  if (p->done != NULL)
    p->done(p->arg, p->result, p->result == TD_PUT_APPLIED ? "" : p->err, NULL);
  free(p);
}

/* What tn_link does at the end of a loop iteration: a connection whose last answer is out closes. */
static void flush(void)
{
  for (int i = 0; i < CONNS; i++)
    if (conns[i].m != NULL && conns[i].close_after_flush)
      conn_close(&conns[i]);
}

static void check_output(const struct conn *c)
{
  /* Every byte written is a response or a 100 Continue line: always a status line first. */
  if (c->out_len > 0 && (c->out_len < 12 || memcmp(c->out, "HTTP/1.1 ", 9) != 0))
    abort();
}

static char state_dir[64];
static char state_file[80];

/* The state file and its directory go with the process (state.c writes through a temporary file it renames). */
static void remove_state(void)
{
  unlink(state_file);
  rmdir(state_dir);
}

static void setup_once(void)
{
  static bool done;
  char dir[] = "/dev/shm/fuzz_td_mgmt.XXXXXX";

  if (done)
    return;
  done = true;
  tn_log_init("fuzz_td_mgmt", (enum tn_log_level)0);
  uv_loop_init(&loop);
  srv.loop = &loop;
  td_limits_default(&srv.cfg.limits);
  /* Small request limits so 413 and 431 are reached with short inputs. */
  srv.cfg.limits.api_max_header = 512;
  srv.cfg.limits.api_max_body = 2048;
  srv.cfg.limits.max_tunnels = 8;
  srv.cfg.limits.max_backups_per_tunnel = 4;
  td_table_init(&srv.table);
  td_revoked_init(&srv.revoked);
  td_sources_init(&srv.sources);
  /* PUT /revoked-certificates writes the state file: in memory, so inputs that reach it stay fast. */
  if (mkdtemp(dir) == NULL && mkdtemp(strcpy(dir, "/tmp/fuzz_td_mgmt.XXXXXX")) == NULL)
    abort();
  snprintf(state_dir, sizeof(state_dir), "%s", dir);
  snprintf(state_file, sizeof(state_file), "%s/state.json", dir);
  srv.cfg.state_file = state_file;
  atexit(remove_state);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  size_t off = 0;

  setup_once();
  if (size < 1)
    return 0;
  /* First byte: which connections hold admin certificates, and whether the server is stopping. */
  srv.stopping = (data[0] & 0x80) != 0;
  for (int i = 0; i < CONNS; i++) {
    conns[i] = (struct conn){0};
    conns[i].m = td_mgmt_conn_new(&srv, &io, &conns[i], &fake_puts, "192.0.2.1:40000", "192.0.2.1");
    if (conns[i].m == NULL)
      abort();
    td_mgmt_conn_established(conns[i].m, i == 2 ? "home1" : "admin",
                             "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", (data[0] >> i) & 1);
  }
  off = 1;
  /*
   * Then operations: a byte whose low two bits pick the connection and whose high bits pick the action,
   * then, for a feed, a length byte and that many bytes (fewer at the end of the input).
   */
  while (off < size) {
    uint8_t op = data[off++];
    struct conn *c = &conns[(op & 3) % CONNS];
    switch ((op >> 2) % 8) {
    case 0: case 1: case 2: case 3: {
      size_t n = off < size ? (size_t)data[off++] + 1 : 0;
      if (n > size - off)
        n = size - off;
      if (!c->closed)
        td_mgmt_conn_feed(c->m, data + off, n);
      off += n;
      break;
    }
    case 4:
      if (!c->closed)
        td_mgmt_conn_expire(c->m);
      break;
    case 5:
      put_end();
      break;
    case 6:
      conn_close(c);  /* the peer went away */
      break;
    default:
      flush();
      break;
    }
    check_output(c);
  }
  /* Whatever is left ends: the change completes unreported, the connections close, the loop frees them. */
  flush();
  for (int i = 0; i < CONNS; i++)
    conn_close(&conns[i]);
  put_end();
  if (srv.put_waiting != NULL)
    abort();  /* every waiting connection has left the queue */
  uv_run(&loop, UV_RUN_NOWAIT);
  td_revoked_free(&srv.revoked);
  td_revoked_init(&srv.revoked);
  memset(&srv.metrics, 0, sizeof(srv.metrics));
  return 0;
}
