/* test_mux.c: tn_mux sessions driven in memory, pairwise and with hand-made frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tunnel/error.h"
#include "tunnel/frame.h"
#include "tunnel/mux.h"

#define MAX_IDS 64

/* What one side observed, per stream id (ids stay small in these tests). */
struct side {
  tn_mux *mux;
  int opened[MAX_IDS];
  int acked[MAX_IDS];
  int fin[MAX_IDS];
  int closed[MAX_IDS];
  int close_reason[MAX_IDS];
  int writable[MAX_IDS];
  uint8_t *rx[MAX_IDS];
  size_t rx_len[MAX_IDS];
  int auto_consume;          /* return received bytes to the window at once */
  uint32_t hold_id;          /* except on this stream, which never consumes */
  int refuse_open;           /* on_stream_open refuses */
  int reset_in_data;         /* reset the stream from inside on_stream_data */
  uint64_t rtt;
  int rtt_calls;
  uint32_t go_away_code;
  int go_aways;
  int go_away_back;          /* answer GoAway with GoAway, as tunnelc does */
};

static int cb_open(tn_mux *m, uint32_t id, void **user, void *session_user)
{
  struct side *s = session_user;
  (void)m;
  assert_true(id < MAX_IDS);
  s->opened[id]++;
  *user = s;
  return s->refuse_open;
}

static void cb_ack(tn_mux *m, uint32_t id, void *user)
{
  struct side *s = tn_mux_user(m);
  (void)user;
  s->acked[id]++;
}

static void cb_data(tn_mux *m, uint32_t id, const uint8_t *data, size_t len, void *user)
{
  struct side *s = tn_mux_user(m);
  (void)user;
  assert_true(id < MAX_IDS);
  s->rx[id] = realloc(s->rx[id], s->rx_len[id] + len);
  memcpy(s->rx[id] + s->rx_len[id], data, len);
  s->rx_len[id] += len;
  if (s->reset_in_data) {
    assert_int_equal(tn_mux_stream_reset(m, id), TN_OK);
    return;
  }
  if (s->auto_consume && id != s->hold_id)
    assert_int_equal(tn_mux_stream_consumed(m, id, len), TN_OK);
}

static void cb_fin(tn_mux *m, uint32_t id, void *user)
{
  struct side *s = tn_mux_user(m);
  (void)user;
  s->fin[id]++;
}

static void cb_writable(tn_mux *m, uint32_t id, void *user)
{
  struct side *s = tn_mux_user(m);
  (void)user;
  s->writable[id]++;
}

static void cb_close(tn_mux *m, uint32_t id, int reason, void *user)
{
  struct side *s = tn_mux_user(m);
  (void)user;
  assert_true(id < MAX_IDS);
  s->closed[id]++;
  s->close_reason[id] = reason;
}

static void cb_rtt(tn_mux *m, uint64_t rtt, void *user)
{
  struct side *s = user;
  (void)m;
  s->rtt = rtt;
  s->rtt_calls++;
}

static void cb_go_away(tn_mux *m, uint32_t code, void *user)
{
  struct side *s = user;
  (void)m;
  s->go_away_code = code;
  s->go_aways++;
  if (s->go_away_back)
    assert_int_equal(tn_mux_go_away(m, TN_GO_AWAY_NORMAL), TN_OK);
}

static const struct tn_mux_callbacks callbacks = {
  cb_open, cb_ack, cb_data, cb_fin, cb_writable, cb_close, cb_rtt, cb_go_away
};

static struct side *side_new(enum tn_mux_role role, const struct tn_mux_options *opt)
{
  struct side *s = calloc(1, sizeof(*s));
  assert_non_null(s);
  s->auto_consume = 1;
  assert_int_equal(tn_mux_new(&s->mux, role, &callbacks, opt, s, 0), TN_OK);
  return s;
}

static void side_free(struct side *s)
{
  tn_mux_del(s->mux);
  for (int i = 0; i < MAX_IDS; i++)
    free(s->rx[i]);
  free(s);
}

/* Moves at most chunk bytes at a time from a's output to b; returns bytes moved. */
static size_t transfer(struct side *a, struct side *b, size_t chunk)
{
  const uint8_t *p;
  size_t total = 0, n;

  while ((n = tn_mux_pending(a->mux, &p)) > 0) {
    uint8_t *copy;
    if (n > chunk)
      n = chunk;
    copy = malloc(n);
    memcpy(copy, p, n);
    tn_mux_consumed(a->mux, n);
    (void)tn_mux_feed(b->mux, copy, n);
    free(copy);
    total += n;
  }
  return total;
}

static void pump_chunked(struct side *a, struct side *b, size_t chunk)
{
  while (transfer(a, b, chunk) + transfer(b, a, chunk) > 0) {
  }
}

static void pump(struct side *a, struct side *b)
{
  pump_chunked(a, b, SIZE_MAX);
}

static uint8_t *pattern(size_t n, unsigned seed)
{
  uint8_t *p = malloc(n);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    p[i] = (uint8_t)(x >> 16);
  }
  return p;
}

/* Writes all of data on stream id, pumping between the sides whenever the window runs out. */
static void write_all(struct side *w, struct side *r, uint32_t id, const uint8_t *data, size_t len)
{
  size_t done = 0;
  int stalls = 0;
  while (done < len) {
    long n = tn_mux_stream_write(w->mux, id, data + done, len - done);
    assert_true(n >= 0);
    done += (size_t)n;
    if (n == 0)
      assert_true(++stalls < 10000);
    pump(w, r);
  }
}

static void test_open_data_fin_both_ways(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  uint32_t id;
  (void)state;

  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  assert_int_equal(id, 1);
  assert_int_equal(tn_mux_stream_write(c->mux, id, (const uint8_t *)"hello", 5), 5);
  pump(c, s);
  assert_int_equal(s->opened[1], 1);
  assert_int_equal(c->acked[1], 1);
  assert_int_equal(s->rx_len[1], 5);
  assert_memory_equal(s->rx[1], "hello", 5);

  assert_int_equal(tn_mux_stream_write(s->mux, 1, (const uint8_t *)"world!", 6), 6);
  assert_int_equal(tn_mux_stream_fin(s->mux, 1), TN_OK);
  pump(c, s);
  assert_int_equal(c->rx_len[1], 6);
  assert_int_equal(c->fin[1], 1);
  assert_int_equal(c->closed[1], 0);
  assert_int_equal(tn_mux_stream_fin(c->mux, 1), TN_OK);
  assert_int_equal(c->closed[1], 1);
  assert_int_equal(c->close_reason[1], TN_MUX_CLOSE_NORMAL);
  pump(c, s);
  assert_int_equal(s->fin[1], 1);
  assert_int_equal(s->closed[1], 1);
  assert_int_equal(s->close_reason[1], TN_MUX_CLOSE_NORMAL);

  struct tn_mux_stats st;
  tn_mux_get_stats(s->mux, &st);
  assert_int_equal(st.streams_open, 0);
  assert_int_equal(st.bytes_in, 5);
  assert_int_equal(st.bytes_out, 6);
  side_free(c);
  side_free(s);
}

static void test_server_opens_even_ids(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  uint32_t a, b;
  (void)state;
  assert_int_equal(tn_mux_open_stream(s->mux, s, &a), TN_OK);
  assert_int_equal(tn_mux_open_stream(s->mux, s, &b), TN_OK);
  assert_int_equal(a, 2);
  assert_int_equal(b, 4);
  pump(c, s);
  assert_int_equal(c->opened[2], 1);
  assert_int_equal(c->opened[4], 1);
  assert_int_equal(s->acked[2], 1);
  side_free(c);
  side_free(s);
}

static void test_interleaved_streams_byte_by_byte(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  uint32_t ids[3];
  uint8_t *data[3];
  const size_t len = 40000;
  (void)state;

  for (int i = 0; i < 3; i++) {
    assert_int_equal(tn_mux_open_stream(c->mux, c, &ids[i]), TN_OK);
    data[i] = pattern(len, (unsigned)i + 1);
  }
  /* Interleave writes in odd-sized pieces, then deliver the wire one byte at a time. */
  for (size_t off = 0; off < len; off += 777) {
    size_t n = len - off < 777 ? len - off : 777;
    for (int i = 0; i < 3; i++)
      assert_int_equal(tn_mux_stream_write(c->mux, ids[i], data[i] + off, n), (long)n);
  }
  pump_chunked(c, s, 1);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(s->rx_len[ids[i]], len);
    assert_memory_equal(s->rx[ids[i]], data[i], len);
    free(data[i]);
  }
  side_free(c);
  side_free(s);
}

static void test_window_exhaustion_and_resume(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  const size_t len = 1024 * 1024;
  uint8_t *data = pattern(len, 7);
  uint32_t id;
  long n;
  (void)state;

  s->auto_consume = 0;
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  n = tn_mux_stream_write(c->mux, id, data, len);
  assert_int_equal(n, 256 * 1024);   /* exactly the initial window */
  assert_int_equal(tn_mux_stream_send_window(c->mux, id), 0);
  assert_int_equal(tn_mux_stream_write(c->mux, id, data + n, len - (size_t)n), 0);
  pump(c, s);
  assert_int_equal(s->rx_len[id], 256 * 1024);
  assert_int_equal(c->writable[id], 0);

  /* Consuming less than half the window sends nothing yet. */
  assert_int_equal(tn_mux_stream_consumed(s->mux, id, 1000), TN_OK);
  pump(c, s);
  assert_int_equal(c->writable[id], 0);
  /* Consuming more than was delivered is a caller error. */
  assert_int_equal(tn_mux_stream_consumed(s->mux, id, 300 * 1024), TN_ERR_ARG);
  assert_int_equal(tn_mux_stream_consumed(s->mux, id, 256 * 1024 - 1000), TN_OK);
  pump(c, s);
  assert_int_equal(c->writable[id], 1);
  assert_int_equal(tn_mux_stream_send_window(c->mux, id), 256 * 1024);

  s->auto_consume = 1;
  assert_int_equal(tn_mux_stream_consumed(s->mux, id, 0), TN_OK);
  write_all(c, s, id, data + n, len - (size_t)n);
  assert_int_equal(s->rx_len[id], len);
  assert_memory_equal(s->rx[id], data, len);
  free(data);
  side_free(c);
  side_free(s);
}

/* A slow consumer on one stream must not stall another stream. */
static void test_blocked_stream_does_not_stall_others(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  const size_t len = 2 * 1024 * 1024;
  uint8_t *data = pattern(len, 3);
  uint32_t slow, fast;
  (void)state;

  assert_int_equal(tn_mux_open_stream(c->mux, c, &slow), TN_OK);
  assert_int_equal(tn_mux_open_stream(c->mux, c, &fast), TN_OK);
  s->hold_id = slow;
  assert_int_equal(tn_mux_stream_write(c->mux, slow, data, len), 256 * 1024);
  pump(c, s);
  write_all(c, s, fast, data, len);
  assert_int_equal(s->rx_len[fast], len);
  assert_memory_equal(s->rx[fast], data, len);
  assert_int_equal(s->rx_len[slow], 256 * 1024);
  assert_int_equal(tn_mux_stream_write(c->mux, slow, data, len), 0);
  free(data);
  side_free(c);
  side_free(s);
}

static void test_half_close_each_direction(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  uint32_t id;
  (void)state;

  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  assert_int_equal(tn_mux_stream_write(c->mux, id, (const uint8_t *)"request", 7), 7);
  assert_int_equal(tn_mux_stream_fin(c->mux, id), TN_OK);
  /* After our FIN we may not write, but the stream stays open for the answer. */
  assert_int_equal(tn_mux_stream_write(c->mux, id, (const uint8_t *)"x", 1), TN_ERR_STREAM_CLOSED);
  pump(c, s);
  assert_int_equal(s->fin[id], 1);
  assert_int_equal(s->closed[id], 0);
  assert_int_equal(tn_mux_stream_write(s->mux, id, (const uint8_t *)"answer after fin", 16), 16);
  pump(c, s);
  assert_int_equal(c->rx_len[id], 16);
  assert_int_equal(c->closed[id], 0);
  assert_int_equal(tn_mux_stream_fin(s->mux, id), TN_OK);
  assert_int_equal(s->closed[id], 1);
  pump(c, s);
  assert_int_equal(c->fin[id], 1);
  assert_int_equal(c->closed[id], 1);
  assert_int_equal(c->close_reason[id], TN_MUX_CLOSE_NORMAL);
  side_free(c);
  side_free(s);
}

/* A Data frame carrying FIN delivers its payload before the FIN. */
static void test_fin_on_data_frame_after_payload(void **state)
{
  struct side *s = side_new(TN_MUX_SERVER, NULL);
  uint8_t wire[12 + 12 + 3];
  struct tn_frame_header syn = { 0, TN_FRAME_WINDOW_UPDATE, TN_FLAG_SYN, 1, 0 };
  struct tn_frame_header data = { 0, TN_FRAME_DATA, TN_FLAG_FIN, 1, 3 };
  (void)state;

  tn_frame_encode(&syn, wire, 12);
  tn_frame_encode(&data, wire + 12, 12);
  memcpy(wire + 24, "abc", 3);
  /* Split inside the payload so FIN must wait for the last byte. */
  assert_int_equal(tn_mux_feed(s->mux, wire, 25), TN_OK);
  assert_int_equal(s->fin[1], 0);
  assert_int_equal(tn_mux_feed(s->mux, wire + 25, 2), TN_OK);
  assert_int_equal(s->rx_len[1], 3);
  assert_int_equal(s->fin[1], 1);
  side_free(s);
}

enum reset_point { RESET_BEFORE_ACK, RESET_OPEN, RESET_AFTER_LOCAL_FIN, RESET_AFTER_REMOTE_FIN };

static void reset_in_state(enum reset_point point, int by_client)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  struct side *resetter, *other;
  uint32_t id;

  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  if (point != RESET_BEFORE_ACK)
    pump(c, s);
  resetter = by_client ? c : s;
  other = by_client ? s : c;
  if (point == RESET_BEFORE_ACK && !by_client) {
    pump(c, s);  /* the server cannot reset what it has not seen */
  }
  if (point == RESET_AFTER_LOCAL_FIN) {
    assert_int_equal(tn_mux_stream_fin(resetter->mux, id), TN_OK);
    pump(c, s);
  }
  if (point == RESET_AFTER_REMOTE_FIN) {
    assert_int_equal(tn_mux_stream_fin(other->mux, id), TN_OK);
    pump(c, s);
    assert_int_equal(resetter->fin[id], 1);
  }
  assert_int_equal(tn_mux_stream_reset(resetter->mux, id), TN_OK);
  assert_int_equal(resetter->closed[id], 1);
  assert_int_equal(resetter->close_reason[id], TN_MUX_CLOSE_RESET_LOCAL);
  assert_int_equal(tn_mux_stream_reset(resetter->mux, id), TN_ERR_STREAM_CLOSED);
  pump(c, s);
  assert_int_equal(other->closed[id], 1);
  assert_int_equal(other->close_reason[id], TN_MUX_CLOSE_RESET_REMOTE);
  /* Frames that were in flight for the dead stream are ignored, not a protocol error. */
  assert_int_equal(tn_mux_stream_write(other->mux, id, (const uint8_t *)"late", 4), TN_ERR_STREAM_CLOSED);
  assert_false(tn_mux_is_closed(c->mux));
  assert_false(tn_mux_is_closed(s->mux));
  side_free(c);
  side_free(s);
}

static void test_reset_in_every_state(void **state)
{
  (void)state;
  for (int by_client = 0; by_client < 2; by_client++) {
    reset_in_state(RESET_BEFORE_ACK, by_client);
    reset_in_state(RESET_OPEN, by_client);
    reset_in_state(RESET_AFTER_LOCAL_FIN, by_client);
    reset_in_state(RESET_AFTER_REMOTE_FIN, by_client);
  }
}

static void test_data_in_flight_after_local_reset_is_ignored(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  uint32_t id;
  (void)state;
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  pump(c, s);
  /* Server sends data; before it arrives the client resets. */
  assert_int_equal(tn_mux_stream_write(s->mux, id, (const uint8_t *)"in flight", 9), 9);
  assert_int_equal(tn_mux_stream_reset(c->mux, id), TN_OK);
  pump(c, s);
  assert_int_equal(c->rx_len[id], 0);
  assert_false(tn_mux_is_closed(c->mux));
  assert_int_equal(s->close_reason[id], TN_MUX_CLOSE_RESET_REMOTE);
  side_free(c);
  side_free(s);
}

static void test_reset_from_data_callback(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  uint8_t *data = pattern(100000, 9);
  uint32_t id;
  (void)state;
  s->reset_in_data = 1;
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  assert_int_equal(tn_mux_stream_write(c->mux, id, data, 100000), 100000);
  assert_int_equal(tn_mux_stream_fin(c->mux, id), TN_OK);
  pump(c, s);
  /* Only the first frame's bytes were delivered; the rest was dropped after the reset. */
  assert_int_equal(s->rx_len[id], 16 * 1024);
  assert_int_equal(s->closed[id], 1);
  assert_int_equal(s->fin[id], 0);
  assert_int_equal(c->close_reason[id], TN_MUX_CLOSE_RESET_REMOTE);
  free(data);
  side_free(c);
  side_free(s);
}

/* yamux may send SYNs out of id order (ids are taken at open, SYNs queued): all are accepted. */
static void test_out_of_order_syns(void **state)
{
  struct side *s = side_new(TN_MUX_SERVER, NULL);
  uint8_t wire[36];
  struct tn_frame_header h = { 0, TN_FRAME_WINDOW_UPDATE, TN_FLAG_SYN, 5, 0 };
  (void)state;
  tn_frame_encode(&h, wire, 12);
  h.stream_id = 1;
  tn_frame_encode(&h, wire + 12, 12);
  h.stream_id = 3;
  tn_frame_encode(&h, wire + 24, 12);
  assert_int_equal(tn_mux_feed(s->mux, wire, sizeof(wire)), TN_OK);
  assert_int_equal(s->opened[1] + s->opened[3] + s->opened[5], 3);
  /* A SYN for a stream that is open now is still a protocol error. */
  assert_int_equal(tn_mux_feed(s->mux, wire + 12, 12), TN_ERR_PROTO);
  side_free(s);
}

static void test_refused_open(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  uint32_t id;
  struct tn_mux_stats st;
  (void)state;
  s->refuse_open = 1;
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  pump(c, s);
  assert_int_equal(s->opened[id], 1);
  assert_int_equal(s->closed[id], 0);  /* never accepted, so no close owed */
  assert_int_equal(c->close_reason[id], TN_MUX_CLOSE_RESET_REMOTE);
  tn_mux_get_stats(s->mux, &st);
  assert_int_equal(st.streams_refused, 1);
  assert_int_equal(st.streams_open, 0);
  side_free(c);
  side_free(s);
}

static void test_stream_limit(void **state)
{
  struct tn_mux_options opt;
  struct side *c, *s;
  uint32_t ids[3];
  struct tn_mux_stats st;
  (void)state;
  tn_mux_options_default(&opt);
  opt.max_streams = 2;
  c = side_new(TN_MUX_CLIENT, NULL);
  s = side_new(TN_MUX_SERVER, &opt);
  for (int i = 0; i < 3; i++)
    assert_int_equal(tn_mux_open_stream(c->mux, c, &ids[i]), TN_OK);
  pump(c, s);
  assert_int_equal(s->opened[ids[0]] + s->opened[ids[1]] + s->opened[ids[2]], 2);
  assert_int_equal(c->close_reason[ids[2]], TN_MUX_CLOSE_RESET_REMOTE);
  tn_mux_get_stats(s->mux, &st);
  assert_int_equal(st.streams_refused, 1);
  /* This side's own limit: opening beyond it fails without touching the wire. */
  assert_int_equal(tn_mux_open_stream(s->mux, s, &ids[0]), TN_ERR_STREAM_LIMIT);
  side_free(c);
  side_free(s);
}

static void test_go_away(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  uint32_t id, id2;
  (void)state;
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  pump(c, s);
  assert_int_equal(tn_mux_go_away(s->mux, TN_GO_AWAY_NORMAL), TN_OK);
  pump(c, s);
  assert_int_equal(c->go_aways, 1);
  assert_int_equal(c->go_away_code, TN_GO_AWAY_NORMAL);
  assert_true(tn_mux_is_going_away(c->mux));
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id2), TN_ERR_GOING_AWAY);
  assert_int_equal(tn_mux_open_stream(s->mux, s, &id2), TN_ERR_GOING_AWAY);
  /* The existing stream keeps working. */
  assert_int_equal(tn_mux_stream_write(c->mux, id, (const uint8_t *)"still", 5), 5);
  pump(c, s);
  assert_int_equal(s->rx_len[id], 5);
  assert_false(tn_mux_is_closed(s->mux));
  assert_int_equal(tn_mux_go_away(c->mux, TN_GO_AWAY_NORMAL), TN_OK);
  assert_int_equal(tn_mux_stream_fin(c->mux, id), TN_OK);
  assert_int_equal(tn_mux_stream_fin(s->mux, id), TN_OK);
  pump(c, s);
  assert_true(tn_mux_is_closed(s->mux));
  assert_true(tn_mux_is_closed(c->mux));
  side_free(c);
  side_free(s);
}

static void test_syn_after_local_go_away_is_reset(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  uint32_t id;
  (void)state;
  assert_int_equal(tn_mux_go_away(s->mux, TN_GO_AWAY_NORMAL), TN_OK);
  /* The client opens before it has seen the GoAway. */
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  pump(c, s);
  assert_int_equal(s->opened[id], 0);
  assert_int_equal(c->close_reason[id], TN_MUX_CLOSE_RESET_REMOTE);
  side_free(c);
  side_free(s);
}

static void test_ping_rtt(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  struct tn_mux_stats st;
  (void)state;
  assert_int_equal(tn_mux_tick(c->mux, 100), TN_OK);
  assert_int_equal(tn_mux_ping(c->mux), TN_OK);
  transfer(c, s, SIZE_MAX);
  assert_int_equal(tn_mux_tick(c->mux, 137), TN_OK);
  transfer(s, c, SIZE_MAX);
  assert_int_equal(c->rtt_calls, 1);
  assert_int_equal(c->rtt, 37);
  tn_mux_get_stats(c->mux, &st);
  assert_int_equal(st.last_rtt_ms, 37);
  side_free(c);
  side_free(s);
}

static size_t count_frames(struct side *a, uint8_t type)
{
  const uint8_t *p;
  size_t n = tn_mux_pending(a->mux, &p), count = 0;
  struct tn_frame_header h;
  for (size_t off = 0; off + 12 <= n;) {
    assert_int_equal(tn_frame_decode(&h, p + off, n - off), 12);
    if (h.type == type)
      count++;
    off += 12 + (h.type == TN_FRAME_DATA ? h.length : 0);
  }
  return count;
}

static void test_keepalive_and_dead_peer(void **state)
{
  struct tn_mux_options opt;
  struct side *c, *s;
  uint32_t id;
  (void)state;
  tn_mux_options_default(&opt);
  opt.keepalive_interval_ms = 1000;
  opt.dead_peer_timeout_ms = 3000;
  c = side_new(TN_MUX_CLIENT, &opt);
  s = side_new(TN_MUX_SERVER, NULL);
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  pump(c, s);

  assert_int_equal(tn_mux_tick(c->mux, 999), TN_OK);
  assert_int_equal(count_frames(c, TN_FRAME_PING), 0);
  assert_int_equal(tn_mux_tick(c->mux, 1000), TN_OK);
  assert_int_equal(count_frames(c, TN_FRAME_PING), 1);
  /* An answered ping is activity: the peer is alive. */
  pump(c, s);
  assert_int_equal(c->rtt_calls, 1);
  /* Now the peer goes silent: the ping at 2000 goes unanswered, one more at 3000, then the deadline. */
  assert_int_equal(tn_mux_tick(c->mux, 2000), TN_OK);
  assert_int_equal(count_frames(c, TN_FRAME_PING), 1);
  assert_int_equal(tn_mux_tick(c->mux, 3000), TN_OK);
  assert_int_equal(count_frames(c, TN_FRAME_PING), 2);
  assert_int_equal(tn_mux_tick(c->mux, 3999), TN_OK);
  assert_int_equal(tn_mux_tick(c->mux, 4000), TN_ERR_TIMEOUT);
  assert_int_equal(c->closed[id], 1);
  assert_int_equal(c->close_reason[id], TN_MUX_CLOSE_SESSION);
  assert_true(tn_mux_is_closed(c->mux));
  assert_int_equal(tn_mux_feed(c->mux, (const uint8_t *)"x", 1), TN_ERR_SESSION_CLOSED);
  side_free(c);
  side_free(s);
}

/*
 * A caller that was itself stalled (off the CPU) past the dead-peer timeout sets the clock, feeds what the peer sent
 * meanwhile, then ticks: the peer is alive. Only a tick with nothing fed since the deadline calls it dead.
 */
static void test_stalled_caller_reads_before_judging(void **state)
{
  struct tn_mux_options opt;
  struct side *c, *s;
  (void)state;
  tn_mux_options_default(&opt);
  opt.keepalive_interval_ms = 1000;
  opt.dead_peer_timeout_ms = 3000;
  c = side_new(TN_MUX_CLIENT, &opt);
  s = side_new(TN_MUX_SERVER, NULL);
  assert_int_equal(tn_mux_ping(s->mux), TN_OK);  /* the peer talks while the caller is stalled */
  tn_mux_set_time(c->mux, 10000);
  assert_false(tn_mux_is_closed(c->mux));
  pump(s, c);
  assert_int_equal(tn_mux_tick(c->mux, 10000), TN_OK);
  assert_false(tn_mux_is_closed(c->mux));
  /* Silence from here on is judged from 10000. */
  assert_int_equal(tn_mux_tick(c->mux, 12999), TN_OK);
  assert_int_equal(tn_mux_tick(c->mux, 13000), TN_ERR_TIMEOUT);
  side_free(c);
  side_free(s);
}

static void test_open_timeout(void **state)
{
  struct tn_mux_options opt;
  struct side *s;
  uint32_t a, b;
  (void)state;
  tn_mux_options_default(&opt);
  opt.open_timeout_ms = 500;
  opt.keepalive_interval_ms = 0;
  opt.dead_peer_timeout_ms = 0;
  s = side_new(TN_MUX_SERVER, &opt);
  assert_int_equal(tn_mux_open_stream(s->mux, s, &a), TN_OK);
  assert_int_equal(tn_mux_tick(s->mux, 300), TN_OK);
  assert_int_equal(tn_mux_open_stream(s->mux, s, &b), TN_OK);
  assert_int_equal(tn_mux_tick(s->mux, 500), TN_OK);
  assert_int_equal(s->closed[a], 1);
  assert_int_equal(s->close_reason[a], TN_MUX_CLOSE_OPEN_TIMEOUT);
  assert_int_equal(s->closed[b], 0);
  assert_int_equal(tn_mux_tick(s->mux, 800), TN_OK);
  assert_int_equal(s->closed[b], 1);
  side_free(s);
}

static void test_terminate_closes_every_stream(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL);
  uint32_t ids[5];
  (void)state;
  for (int i = 0; i < 5; i++)
    assert_int_equal(tn_mux_open_stream(c->mux, c, &ids[i]), TN_OK);
  tn_mux_terminate(c->mux);
  tn_mux_terminate(c->mux);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(c->closed[ids[i]], 1);
    assert_int_equal(c->close_reason[ids[i]], TN_MUX_CLOSE_SESSION);
  }
  assert_int_equal(tn_mux_open_stream(c->mux, c, &ids[0]), TN_ERR_SESSION_CLOSED);
  side_free(c);
}

static void test_output_limit_and_writable(void **state)
{
  struct tn_mux_options opt;
  struct side *c, *s;
  uint8_t *data = pattern(200000, 5);
  uint32_t id;
  long n;
  (void)state;
  tn_mux_options_default(&opt);
  opt.max_output_buffer = 64 * 1024;
  c = side_new(TN_MUX_CLIENT, &opt);
  s = side_new(TN_MUX_SERVER, NULL);
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  n = tn_mux_stream_write(c->mux, id, data, 200000);
  assert_true(n >= 64 * 1024 - 16 * 1024 && n < 100000);
  assert_int_equal(c->writable[id], 0);
  pump(c, s);  /* draining the output wakes the writer */
  assert_int_equal(c->writable[id], 1);
  free(data);
  side_free(c);
  side_free(s);
}

static void test_window_autotune_grows(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  const size_t len = 8 * 1024 * 1024;
  uint8_t *data = pattern(len, 11);
  uint32_t id;
  (void)state;
  /* Give the receiver an RTT so it can judge that the window, not the path, is the limit. */
  assert_int_equal(tn_mux_ping(s->mux), TN_OK);
  transfer(s, c, SIZE_MAX);
  assert_int_equal(tn_mux_tick(s->mux, 10), TN_OK);
  transfer(c, s, SIZE_MAX);
  assert_int_equal(s->rtt, 10);
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  write_all(c, s, id, data, len);
  assert_int_equal(s->rx_len[id], len);
  assert_memory_equal(s->rx[id], data, len);
  assert_true(tn_mux_stream_send_window(c->mux, id) > 256 * 1024);
  free(data);
  side_free(c);
  side_free(s);
}

/* ---- protocol violations, fed as raw frames to a server session ---- */

struct violation {
  const char *name;
  struct tn_frame_header frames[3];
  size_t n_frames;
  uint32_t payload;  /* payload bytes following the last frame */
};

#define HDR(t, f, id, len) { 0, (t), (f), (id), (len) }

static const struct violation violations[] = {
  { "bad version", { { 1, TN_FRAME_PING, TN_FLAG_SYN, 0, 0 } }, 1, 0 },
  { "unknown type", { { 0, 9, 0, 0, 0 } }, 1, 0 },
  { "data beyond window",
    { HDR(TN_FRAME_WINDOW_UPDATE, TN_FLAG_SYN, 1, 0), HDR(TN_FRAME_DATA, 0, 1, 256 * 1024 + 1) }, 2, 0 },
  { "unknown stream", { HDR(TN_FRAME_DATA, 0, 5, 1) }, 1, 1 },
  { "unknown stream window update", { HDR(TN_FRAME_WINDOW_UPDATE, 0, 4, 10) }, 1, 0 },
  { "duplicate SYN",
    { HDR(TN_FRAME_WINDOW_UPDATE, TN_FLAG_SYN, 1, 0), HDR(TN_FRAME_WINDOW_UPDATE, TN_FLAG_SYN, 1, 0) }, 2, 0 },
  { "SYN with the server's parity", { HDR(TN_FRAME_WINDOW_UPDATE, TN_FLAG_SYN, 2, 0) }, 1, 0 },
  { "data after FIN",
    { HDR(TN_FRAME_WINDOW_UPDATE, TN_FLAG_SYN | TN_FLAG_FIN, 1, 0), HDR(TN_FRAME_DATA, 0, 1, 1) }, 2, 1 },
  { "length over the limit", { HDR(TN_FRAME_DATA, 0, 1, 16u * 1024 * 1024 + 1) }, 1, 0 },
  { "data on stream 0", { HDR(TN_FRAME_DATA, 0, 0, 0) }, 1, 0 },
  { "ping on a stream", { HDR(TN_FRAME_PING, TN_FLAG_SYN, 1, 0) }, 1, 0 },
  { "ping without SYN or ACK", { HDR(TN_FRAME_PING, 0, 0, 0) }, 1, 0 },
  { "go-away on a stream", { HDR(TN_FRAME_GO_AWAY, 0, 3, 0) }, 1, 0 },
  { "window overflow",
    { HDR(TN_FRAME_WINDOW_UPDATE, TN_FLAG_SYN, 1, 0), HDR(TN_FRAME_WINDOW_UPDATE, 0, 1, UINT32_MAX - 1000) }, 2, 0 },
};

static void test_protocol_violations(void **state)
{
  (void)state;
  for (size_t v = 0; v < sizeof(violations) / sizeof(violations[0]); v++) {
    const struct violation *vi = &violations[v];
    struct side *s = side_new(TN_MUX_SERVER, NULL);
    uint8_t wire[64] = { 0 };
    size_t len = 0;
    const uint8_t *p;
    size_t n;
    struct tn_frame_header go;
    struct tn_mux_stats st;
    uint32_t own;
    int rc;

    /* One healthy stream of the server's own, so we can see it closed by the failure. */
    assert_int_equal(tn_mux_open_stream(s->mux, s, &own), TN_OK);
    tn_mux_consumed(s->mux, tn_mux_pending(s->mux, &p));
    for (size_t i = 0; i < vi->n_frames; i++)
      len += tn_frame_encode(&vi->frames[i], wire + len, sizeof(wire) - len);
    len += vi->payload;
    rc = tn_mux_feed(s->mux, wire, len);
    if (rc != TN_ERR_PROTO)
      fail_msg("%s: feed returned %d, expected TN_ERR_PROTO", vi->name, rc);
    tn_mux_get_stats(s->mux, &st);
    assert_int_equal(st.protocol_errors, 1);
    assert_int_equal(s->closed[own], 1);
    assert_int_equal(s->close_reason[own], TN_MUX_CLOSE_SESSION);
    assert_true(tn_mux_is_closed(s->mux));
    /* The last frame queued is GoAway(protocol error). */
    n = tn_mux_pending(s->mux, &p);
    assert_true(n >= 12);
    assert_int_equal(tn_frame_decode(&go, p + n - 12, 12), 12);
    assert_int_equal(go.type, TN_FRAME_GO_AWAY);
    assert_int_equal(go.length, TN_GO_AWAY_PROTOCOL_ERROR);
    assert_int_equal(tn_mux_feed(s->mux, wire, len), TN_ERR_SESSION_CLOSED);
    side_free(s);
  }
}


/* ---- data for streams that are gone ---- */

/* Feeds one Data frame of len zero bytes for stream id; returns what tn_mux_feed said. */
static int feed_data(struct side *s, uint32_t id, uint16_t flags, uint32_t len)
{
  struct tn_frame_header h = { 0, TN_FRAME_DATA, flags, id, len };
  uint8_t *wire = calloc(1, 12 + (size_t)len);
  int rc;

  assert_non_null(wire);
  tn_frame_encode(&h, wire, 12);
  rc = tn_mux_feed(s->mux, wire, 12 + (size_t)len);
  free(wire);
  return rc;
}

static int feed_syn(struct side *s, uint32_t id)
{
  struct tn_frame_header h = { 0, TN_FRAME_WINDOW_UPDATE, TN_FLAG_SYN, id, 0 };
  uint8_t wire[12];

  tn_frame_encode(&h, wire, 12);
  return tn_mux_feed(s->mux, wire, 12);
}

/* The session failed with GoAway(protocol error) queued and the given reason, and its other streams ended. */
static void assert_failed_for_dead_data(struct side *s, uint32_t own)
{
  struct tn_frame_header go;
  const uint8_t *p;
  size_t n = tn_mux_pending(s->mux, &p);

  assert_true(tn_mux_is_closed(s->mux));
  assert_string_equal(tn_mux_error(s->mux), "data for closed streams beyond what their windows allowed");
  assert_true(n >= 12);
  assert_int_equal(tn_frame_decode(&go, p + n - 12, 12), 12);
  assert_int_equal(go.type, TN_FRAME_GO_AWAY);
  assert_int_equal(go.length, TN_GO_AWAY_PROTOCOL_ERROR);
  assert_int_equal(s->close_reason[own], TN_MUX_CLOSE_SESSION);
}

/* After a local reset the peer may still send what the window allowed, in frames of any size; not a byte more. */
static void test_reset_stream_data_counts_against_its_window(void **state)
{
  struct side *s = side_new(TN_MUX_SERVER, NULL);
  struct tn_mux_stats st;
  uint32_t own;
  (void)state;
  assert_int_equal(tn_mux_open_stream(s->mux, s, &own), TN_OK);
  assert_int_equal(feed_syn(s, 1), TN_OK);
  s->hold_id = 1;  /* 100 KB delivered and not consumed: 156 KB of window left */
  assert_int_equal(feed_data(s, 1, 0, 100 * 1024), TN_OK);
  assert_int_equal(tn_mux_stream_reset(s->mux, 1), TN_OK);
  assert_int_equal(feed_data(s, 1, 0, 100 * 1024), TN_OK);
  assert_int_equal(feed_data(s, 1, 0, 0), TN_OK);
  assert_int_equal(feed_data(s, 1, 0, 56 * 1024), TN_OK);
  assert_false(tn_mux_is_closed(s->mux));
  tn_mux_get_stats(s->mux, &st);
  assert_int_equal(st.bytes_dropped, 156 * 1024);
  assert_null(tn_mux_error(s->mux));
  /* One byte past the window the reset stream still had is a flood, not in-flight data. */
  assert_int_equal(feed_data(s, 1, 0, 1), TN_ERR_PROTO);
  assert_failed_for_dead_data(s, own);
  side_free(s);
}

/* A stream that ended with both FINs leaves no credit: the peer said it was done sending. */
static void test_finished_stream_data_is_a_protocol_error(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  uint32_t id, own;
  (void)state;
  assert_int_equal(tn_mux_open_stream(s->mux, s, &own), TN_OK);
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  assert_int_equal(tn_mux_stream_fin(c->mux, id), TN_OK);
  pump(c, s);
  assert_int_equal(tn_mux_stream_fin(s->mux, id), TN_OK);
  pump(c, s);
  assert_int_equal(s->close_reason[id], TN_MUX_CLOSE_NORMAL);
  assert_int_equal(feed_data(s, id, 0, 0), TN_OK);  /* an empty frame spends nothing */
  assert_int_equal(feed_data(s, id, 0, 10), TN_ERR_PROTO);
  assert_failed_for_dead_data(s, own);
  side_free(c);
  side_free(s);
}

/* A refused SYN may carry the initial window's worth of data behind it (yamux sends before the ACK). */
static void test_refused_syn_data_within_initial_window(void **state)
{
  struct side *s = side_new(TN_MUX_SERVER, NULL);
  uint32_t own;
  (void)state;
  assert_int_equal(tn_mux_open_stream(s->mux, s, &own), TN_OK);
  s->refuse_open = 1;
  assert_int_equal(feed_syn(s, 1), TN_OK);
  for (int i = 0; i < 16; i++)
    assert_int_equal(feed_data(s, 1, 0, 16 * 1024), TN_OK);
  assert_int_equal(feed_data(s, 1, TN_FLAG_FIN, 1), TN_ERR_PROTO);
  assert_failed_for_dead_data(s, own);
  side_free(s);
}

/* Credit from many resets adds up, but never past max_window: a long session does not bank an open door. */
static void test_dead_stream_credit_is_capped(void **state)
{
  struct tn_mux_options opt;
  struct side *s;
  uint32_t own;
  (void)state;
  tn_mux_options_default(&opt);
  opt.max_window = 512 * 1024;
  s = side_new(TN_MUX_SERVER, &opt);
  assert_int_equal(tn_mux_open_stream(s->mux, s, &own), TN_OK);
  for (uint32_t id = 1; id < 20; id += 2) {
    assert_int_equal(feed_syn(s, id), TN_OK);
    assert_int_equal(tn_mux_stream_reset(s->mux, id), TN_OK);
  }
  assert_int_equal(feed_data(s, 7, 0, 512 * 1024), TN_OK);
  assert_int_equal(feed_data(s, 3, 0, 1), TN_ERR_PROTO);
  assert_failed_for_dead_data(s, own);
  side_free(s);
}

/* Two real sessions: a reset while the peer streams leaves the session healthy and the other streams flowing. */
static void test_reset_mid_transfer_keeps_session(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  uint8_t *data = pattern(1 << 20, 3);
  uint32_t a, b;
  (void)state;
  assert_int_equal(tn_mux_open_stream(c->mux, c, &a), TN_OK);
  assert_int_equal(tn_mux_open_stream(c->mux, c, &b), TN_OK);
  pump(c, s);
  /* The client queues a whole window on a; the server resets a before any of it arrives. */
  assert_int_equal(tn_mux_stream_write(c->mux, a, data, 1 << 20), 256 * 1024);
  assert_int_equal(tn_mux_stream_reset(s->mux, a), TN_OK);
  pump_chunked(c, s, 1000);
  assert_false(tn_mux_is_closed(s->mux));
  assert_false(tn_mux_is_closed(c->mux));
  write_all(c, s, b, data, 1 << 20);
  assert_int_equal(s->rx_len[b], 1 << 20);
  assert_memory_equal(s->rx[b], data, 1 << 20);
  free(data);
  side_free(c);
  side_free(s);
}

/* Garbage is refused as soon as its first bytes show it, without waiting for a whole header. */
static void test_garbage_fails_fast(void **state)
{
  struct side *s = side_new(TN_MUX_SERVER, NULL);
  (void)state;
  assert_int_equal(tn_mux_feed(s->mux, (const uint8_t *)"\x16\x03", 2), TN_ERR_PROTO);
  side_free(s);
}

/* A peer that floods pings but never reads gets cut off instead of growing our buffer forever. */
static void test_ping_flood_without_reading_is_bounded(void **state)
{
  struct side *s = side_new(TN_MUX_SERVER, NULL);
  struct tn_frame_header ping = HDR(TN_FRAME_PING, TN_FLAG_SYN, 0, 1);
  uint8_t frame[12 * 1024];
  int rc = TN_OK;
  (void)state;
  for (size_t i = 0; i < sizeof(frame); i += 12)
    tn_frame_encode(&ping, frame + i, 12);
  for (int i = 0; i < 10000 && rc == TN_OK; i++)
    rc = tn_mux_feed(s->mux, frame, sizeof(frame));
  assert_int_equal(rc, TN_ERR_PROTO);
  const uint8_t *p;
  assert_true(tn_mux_pending(s->mux, &p) < 2u * 1024 * 1024 + 64 * 1024);
  side_free(s);
}

/* After a large burst drains, the session releases its output buffer; pending() must still be safe. */
static void test_pending_after_buffer_release(void **state)
{
  struct side *c = side_new(TN_MUX_CLIENT, NULL), *s = side_new(TN_MUX_SERVER, NULL);
  uint8_t *data = pattern(200000, 13);
  const uint8_t *p = (const uint8_t *)"x";
  uint32_t id;
  (void)state;
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  assert_int_equal(tn_mux_stream_write(c->mux, id, data, 200000), 200000);
  pump(c, s);
  assert_int_equal(tn_mux_pending(c->mux, &p), 0);
  assert_null(p);
  assert_int_equal(tn_mux_stream_write(c->mux, id, data, 10), 10);  /* and it comes back when needed */
  assert_int_equal(tn_mux_pending(c->mux, &p), 22);
  assert_non_null(p);
  free(data);
  side_free(c);
  side_free(s);
}

/*
 * A busy link pings too (its round trip stays measured), and it is dead only after DeadPeerTimeoutMs with nothing at
 * all from the peer: data alone keeps it alive, whatever becomes of the pings.
 */
static void test_busy_link_pings_and_any_frame_is_life(void **state)
{
  struct tn_mux_options opt;
  struct side *c, *s;
  uint8_t chunk[100] = { 0 };
  uint32_t id;
  const uint8_t *p;
  (void)state;
  tn_mux_options_default(&opt);
  opt.keepalive_interval_ms = 1000;
  opt.dead_peer_timeout_ms = 3000;
  c = side_new(TN_MUX_CLIENT, NULL);
  s = side_new(TN_MUX_SERVER, &opt);
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  pump(c, s);
  /* The client sends data every 250 ms; the server's pings are never answered (their answers are dropped). */
  for (uint64_t t = 250; t <= 6000; t += 250) {
    assert_int_equal(tn_mux_stream_write(c->mux, id, chunk, sizeof(chunk)), (long)sizeof(chunk));
    tn_mux_set_time(s->mux, t);
    transfer(c, s, SIZE_MAX);
    assert_int_equal(tn_mux_tick(s->mux, t), TN_OK);
    if (t % 1000 == 0)
      assert_int_equal(count_frames(s, TN_FRAME_PING), 1);  /* one ping per interval, busy or not */
    tn_mux_consumed(s->mux, tn_mux_pending(s->mux, &p));
  }
  assert_int_equal(s->rx_len[id], 24 * sizeof(chunk));
  /* Now nothing at all: dead exactly DeadPeerTimeoutMs after the last bytes. */
  assert_int_equal(tn_mux_tick(s->mux, 8999), TN_OK);
  assert_int_equal(tn_mux_tick(s->mux, 9000), TN_ERR_TIMEOUT);
  side_free(c);
  side_free(s);
}

/* Options for a writer that may queue megabytes: a window and an output buffer that take 4 MiB at once. */
static void big_queue_options(struct tn_mux_options *opt)
{
  tn_mux_options_default(opt);
  opt->initial_window = 4u * 1024 * 1024;
  opt->max_window = 4u * 1024 * 1024;
  opt->max_output_buffer = 8u * 1024 * 1024;
}

static const uint8_t *p0(struct side *a)
{
  const uint8_t *p;

  (void)tn_mux_pending(a->mux, &p);
  return p;
}

/* Decodes the frame header at the start of a's output (which must have one). */
static struct tn_frame_header first_frame(struct side *a, size_t *n)
{
  const uint8_t *p;
  struct tn_frame_header h;

  *n = tn_mux_pending(a->mux, &p);
  assert_true(*n >= 12);
  assert_int_equal(tn_frame_decode(&h, p, *n), 12);
  return h;
}

/* A stream opened before GoAway reaches the peer before it, even when data waits: the peer accepts it. */
static void test_syn_stays_ahead_of_go_away(void **state)
{
  struct tn_mux_options opt;
  struct side *c, *s;
  size_t len = 512u * 1024;
  uint8_t *data = pattern(len, 24);
  uint32_t busy, late;
  (void)state;
  big_queue_options(&opt);
  c = side_new(TN_MUX_CLIENT, &opt);
  s = side_new(TN_MUX_SERVER, &opt);
  c->go_away_back = 1;  /* from then on it refuses new streams */
  assert_int_equal(tn_mux_open_stream(s->mux, s, &busy), TN_OK);
  assert_int_equal(tn_mux_stream_write(s->mux, busy, data, len), (long)len);
  assert_int_equal(tn_mux_open_stream(s->mux, s, &late), TN_OK);
  assert_int_equal(tn_mux_go_away(s->mux, TN_GO_AWAY_NORMAL), TN_OK);
  pump(s, c);
  assert_int_equal(c->opened[busy], 1);
  assert_int_equal(c->opened[late], 1);
  assert_int_equal(c->closed[late], 0);  /* accepted, not refused for the GoAway */
  assert_int_equal(c->rx_len[busy], len);
  assert_int_equal(c->go_aways, 1);
  free(data);
  side_free(c);
  side_free(s);
}

/* A keepalive ping queued after megabytes of stream data is the next frame out: it measures the path, not the queue. */
static void test_ping_overtakes_queued_data(void **state)
{
  struct tn_mux_options opt;
  struct side *c, *s;
  size_t len = 2u * 1024 * 1024, n;
  uint8_t *data = pattern(len, 21);
  const uint8_t *p;
  struct tn_frame_header h;
  uint32_t id;
  (void)state;
  big_queue_options(&opt);
  c = side_new(TN_MUX_CLIENT, &opt);
  s = side_new(TN_MUX_SERVER, &opt);
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  assert_int_equal(tn_mux_stream_write(c->mux, id, data, len), (long)len);
  assert_int_equal(tn_mux_ping(c->mux), TN_OK);
  /* The control frames alone, in their order: the stream's SYN, then the ping; the data follows. */
  h = first_frame(c, &n);
  assert_int_equal(n, 24);
  assert_int_equal(h.type, TN_FRAME_WINDOW_UPDATE);
  assert_int_equal(h.flags, TN_FLAG_SYN);
  assert_int_equal(tn_frame_decode(&h, p0(c) + 12, 12), 12);
  assert_int_equal(h.type, TN_FRAME_PING);
  assert_int_equal(h.flags, TN_FLAG_SYN);
  assert_int_equal(tn_mux_feed(s->mux, p0(c), 24), TN_OK);
  tn_mux_consumed(c->mux, 24);
  h = first_frame(c, &n);
  assert_int_equal(h.type, TN_FRAME_DATA);
  assert_true(n > len);
  assert_int_equal(tn_mux_pending_control(c->mux, &p), 0);  /* nothing urgent left */
  /* Everything still arrives, in order, and the ping is answered. */
  pump(c, s);
  assert_int_equal(s->rx_len[id], len);
  assert_memory_equal(s->rx[id], data, len);
  assert_int_equal(c->rtt_calls, 1);
  free(data);
  side_free(c);
  side_free(s);
}

/* The answer to a peer's ping overtakes data the answering side has queued, but never splits a frame in two. */
static void test_ping_answer_overtakes_data_at_a_frame_boundary(void **state)
{
  struct tn_mux_options opt;
  struct side *c, *s;
  size_t len = 1024u * 1024, n, frame_left;
  uint8_t *data = pattern(len, 22);
  struct tn_frame_header h;
  const uint8_t *p;
  uint32_t id;
  (void)state;
  big_queue_options(&opt);
  c = side_new(TN_MUX_CLIENT, &opt);
  s = side_new(TN_MUX_SERVER, &opt);
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  pump(c, s);
  /* The server sends megabytes, and has handed 100 bytes of its first data frame to the transport. */
  assert_int_equal(tn_mux_stream_write(s->mux, id, data, len), (long)len);
  h = first_frame(s, &n);
  assert_int_equal(h.type, TN_FRAME_DATA);
  frame_left = 12 + h.length - 100;
  tn_mux_consumed(s->mux, 100);
  /* The client pings; the server's answer waits only for the rest of the frame in progress. */
  assert_int_equal(tn_mux_ping(c->mux), TN_OK);
  transfer(c, s, SIZE_MAX);
  assert_int_equal(tn_mux_pending_control(s->mux, &p), frame_left);
  n = tn_mux_pending(s->mux, &p);
  assert_int_equal(n, frame_left);
  tn_mux_consumed(s->mux, 37);  /* the transport takes it in pieces */
  assert_int_equal(tn_mux_pending(s->mux, &p), frame_left - 37);
  tn_mux_consumed(s->mux, frame_left - 37);
  h = first_frame(s, &n);
  assert_int_equal(h.type, TN_FRAME_PING);
  assert_int_equal(h.flags, TN_FLAG_ACK);
  assert_int_equal(n, 12);
  free(data);
  side_free(c);
  side_free(s);
}

/* Window updates (and the GoAway) jump the queue too; a FIN stays behind the data it ends. */
static void test_control_frames_overtake_but_fin_keeps_order(void **state)
{
  struct tn_mux_options opt;
  struct side *c, *s;
  size_t len = 512u * 1024, n;
  uint8_t *data = pattern(len, 23);
  struct tn_frame_header h;
  uint32_t id;
  (void)state;
  big_queue_options(&opt);
  c = side_new(TN_MUX_CLIENT, &opt);
  s = side_new(TN_MUX_SERVER, &opt);
  assert_int_equal(tn_mux_open_stream(c->mux, c, &id), TN_OK);
  pump(c, s);
  assert_int_equal(tn_mux_stream_write(c->mux, id, data, len), (long)len);
  assert_int_equal(tn_mux_stream_fin(c->mux, id), TN_OK);
  assert_int_equal(tn_mux_go_away(c->mux, TN_GO_AWAY_NORMAL), TN_OK);
  h = first_frame(c, &n);
  assert_int_equal(h.type, TN_FRAME_GO_AWAY);
  assert_int_equal(n, 12);
  assert_int_equal(tn_mux_feed(s->mux, p0(c), 12), TN_OK);
  tn_mux_consumed(c->mux, 12);
  h = first_frame(c, &n);
  assert_int_equal(h.type, TN_FRAME_DATA);
  pump(c, s);
  assert_int_equal(s->rx_len[id], len);
  assert_int_equal(s->fin[id], 1);
  assert_int_equal(s->go_aways, 1);
  free(data);
  side_free(c);
  side_free(s);
}

static void test_new_rejects_bad_arguments(void **state)
{
  struct tn_mux_callbacks none = { 0 };
  struct tn_mux_options opt;
  tn_mux *m;
  (void)state;
  assert_int_equal(tn_mux_new(&m, TN_MUX_CLIENT, &none, NULL, NULL, 0), TN_ERR_ARG);
  assert_null(m);
  tn_mux_options_default(&opt);
  opt.max_window = opt.initial_window - 1;
  assert_int_equal(tn_mux_new(&m, TN_MUX_CLIENT, &callbacks, &opt, NULL, 0), TN_ERR_ARG);
  assert_int_equal(tn_mux_new(&m, (enum tn_mux_role)7, &callbacks, NULL, NULL, 0), TN_ERR_ARG);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_open_data_fin_both_ways),
    cmocka_unit_test(test_stalled_caller_reads_before_judging),
    cmocka_unit_test(test_server_opens_even_ids),
    cmocka_unit_test(test_interleaved_streams_byte_by_byte),
    cmocka_unit_test(test_window_exhaustion_and_resume),
    cmocka_unit_test(test_blocked_stream_does_not_stall_others),
    cmocka_unit_test(test_half_close_each_direction),
    cmocka_unit_test(test_fin_on_data_frame_after_payload),
    cmocka_unit_test(test_reset_in_every_state),
    cmocka_unit_test(test_data_in_flight_after_local_reset_is_ignored),
    cmocka_unit_test(test_reset_from_data_callback),
    cmocka_unit_test(test_out_of_order_syns),
    cmocka_unit_test(test_refused_open),
    cmocka_unit_test(test_stream_limit),
    cmocka_unit_test(test_go_away),
    cmocka_unit_test(test_syn_after_local_go_away_is_reset),
    cmocka_unit_test(test_ping_rtt),
    cmocka_unit_test(test_keepalive_and_dead_peer),
    cmocka_unit_test(test_open_timeout),
    cmocka_unit_test(test_terminate_closes_every_stream),
    cmocka_unit_test(test_output_limit_and_writable),
    cmocka_unit_test(test_window_autotune_grows),
    cmocka_unit_test(test_protocol_violations),
    cmocka_unit_test(test_reset_stream_data_counts_against_its_window),
    cmocka_unit_test(test_finished_stream_data_is_a_protocol_error),
    cmocka_unit_test(test_refused_syn_data_within_initial_window),
    cmocka_unit_test(test_dead_stream_credit_is_capped),
    cmocka_unit_test(test_reset_mid_transfer_keeps_session),
    cmocka_unit_test(test_garbage_fails_fast),
    cmocka_unit_test(test_ping_flood_without_reading_is_bounded),
    cmocka_unit_test(test_pending_after_buffer_release),
    cmocka_unit_test(test_new_rejects_bad_arguments),
    cmocka_unit_test(test_busy_link_pings_and_any_frame_is_life),
    cmocka_unit_test(test_ping_overtakes_queued_data),
    cmocka_unit_test(test_syn_stays_ahead_of_go_away),
    cmocka_unit_test(test_ping_answer_overtakes_data_at_a_frame_boundary),
    cmocka_unit_test(test_control_frames_overtake_but_fin_keeps_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
