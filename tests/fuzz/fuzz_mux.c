/* fuzz_mux.c: libFuzzer target driving a tn_mux session with peer bytes interleaved with local API calls. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/error.h"
#include "tunnel/mux.h"

/*
 * Input is a script: each op byte picks an action, most take a length or id from the
 * next bytes. Peer bytes go through tn_mux_feed, so the frame parser and every state
 * transition it reaches are fuzzed, while local opens/writes/FINs/resets/ticks put the
 * session into states raw bytes alone cannot.
 */

struct fuzz_state {
  uint32_t ids[16];
  size_t n_ids;
  int hold;   /* do not consume received data: windows fill up */
};

static int on_open(tn_mux *m, uint32_t id, void **user, void *session_user)
{
  struct fuzz_state *st = session_user;
  (void)m;
  if (st->n_ids < 16)
    st->ids[st->n_ids++] = id;
  *user = NULL;
  return (id % 7) == 0;  /* refuse some */
}

static void on_data(tn_mux *m, uint32_t id, const uint8_t *data, size_t len, void *user)
{
  struct fuzz_state *st = tn_mux_user(m);
  (void)data;
  (void)user;
  if (!st->hold)
    tn_mux_stream_consumed(m, id, len);
  if (len > 0 && data[0] == 0xEE)
    tn_mux_stream_reset(m, id);  /* callbacks may close the stream they report */
}

static void on_fin(tn_mux *m, uint32_t id, void *user)
{
  (void)user;
  if (id & 2)
    tn_mux_stream_fin(m, id);
}

static void on_writable(tn_mux *m, uint32_t id, void *user)
{
  static const uint8_t more[64];
  (void)user;
  tn_mux_stream_write(m, id, more, sizeof(more));
}

static void on_close(tn_mux *m, uint32_t id, int reason, void *user)
{
  struct fuzz_state *st = tn_mux_user(m);
  (void)reason;
  (void)user;
  for (size_t i = 0; i < st->n_ids; i++)
    if (st->ids[i] == id)
      st->ids[i] = st->ids[--st->n_ids];
}

static const struct tn_mux_callbacks callbacks = {
  on_open, NULL, on_data, on_fin, on_writable, on_close, NULL, NULL
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static uint8_t payload[70000];
  struct fuzz_state st = { { 0 }, 0, 0 };
  struct tn_mux_options opt;
  tn_mux *m;
  size_t pos = 0;
  uint64_t now = 0;

  if (size < 1)
    return 0;
  tn_mux_options_default(&opt);
  opt.max_streams = 8;
  opt.max_output_buffer = 32 * 1024;
  opt.keepalive_interval_ms = 100;
  opt.dead_peer_timeout_ms = 1000;
  opt.open_timeout_ms = 300;
  st.hold = data[0] & 1;
  if (tn_mux_new(&m, (data[0] & 2) ? TN_MUX_SERVER : TN_MUX_CLIENT, &callbacks, &opt, &st, 0) != TN_OK)
    return 0;
  pos = 1;
  while (pos < size) {
    uint8_t op = data[pos++];
    uint8_t arg = pos < size ? data[pos] : 0;
    uint32_t id = st.n_ids ? st.ids[arg % st.n_ids] : arg;
    const uint8_t *out;

    switch (op >> 5) {
    case 0: case 1: case 2: {  /* feed peer bytes: the common case */
      size_t n = (size_t)(op & 0x3f) + 1;
      if (n > size - pos)
        n = size - pos;
      tn_mux_feed(m, data + pos, n);
      pos += n;
      break;
    }
    case 3: {
      uint32_t nid;
      if (tn_mux_open_stream(m, NULL, &nid) == TN_OK && st.n_ids < 16)
        st.ids[st.n_ids++] = nid;
      break;
    }
    case 4:
      pos++;
      tn_mux_stream_write(m, id, payload, (size_t)(op & 0x1f) * 2048 + arg);
      break;
    case 5:
      pos++;
      if (op & 1)
        tn_mux_stream_fin(m, id);
      else
        tn_mux_stream_reset(m, id);
      break;
    case 6:
      now += (uint64_t)(op & 0x1f) * 37;
      tn_mux_tick(m, now);
      break;
    default:
      if (op & 1)
        tn_mux_go_away(m, op & 3);
      else if (op & 2)
        tn_mux_ping(m);
      tn_mux_consumed(m, tn_mux_pending(m, &out));
      break;
    }
  }
  tn_mux_terminate(m);
  tn_mux_del(m);
  return 0;
}
