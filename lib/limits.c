/* limits.c: the shared "Limits" table, its loader and its mapping onto tn_link_options and tn_pipe_options. */
#include "tunnel/limits.h"

#include <stdio.h>
#include <string.h>

#include "tunnel/defaults.h"
#include "tunnel/error.h"
#include "tunnel/json.h"
#include "tunnel/keys.h"

#define L(key, field, min, max, def) { key, offsetof(struct tn_limits, field), min, max, def }
/*
 * One set of bounds for both programs: nothing so small that a healthy link times out under normal
 * jitter, nothing so large that a dead peer or an unbounded buffer goes unnoticed for days. Where the
 * programs used to differ, the wider range was kept so no working config is refused.
 */
static const struct tn_limit_def shared_defs[] = {
  L("HandshakeTimeoutMs", handshake_timeout_ms, 100u, 600000u, TN_DEFAULT_HANDSHAKE_TIMEOUT_MS),
  L("KeepaliveIntervalMs", keepalive_interval_ms, 100u, 3600000u, TN_DEFAULT_KEEPALIVE_INTERVAL_MS),
  L("DeadPeerTimeoutMs", dead_peer_timeout_ms, 200u, 86400000u, TN_DEFAULT_DEAD_PEER_TIMEOUT_MS),
  L("StreamOpenTimeoutMs", stream_open_timeout_ms, 100u, 600000u, TN_DEFAULT_STREAM_OPEN_TIMEOUT_MS),
  L("MaxStreamsPerLink", max_streams_per_link, 1u, 1000000u, TN_DEFAULT_MAX_STREAMS_PER_LINK),
  L("MaxWindow", max_window, TN_DEFAULT_INITIAL_WINDOW, 1024u * 1024u * 1024u, TN_DEFAULT_MAX_WINDOW),
  L("MaxFramePayload", max_frame_payload, 1024u, 1024u * 1024u, TN_DEFAULT_MAX_FRAME_PAYLOAD),
  L("LinkOutputBuffer", link_output_buffer, 64u * 1024u, 1024u * 1024u * 1024u, TN_DEFAULT_LINK_OUTPUT_BUFFER),
  L("PipeHighWater", pipe_high_water, 4096u, 64u * 1024u * 1024u, TN_DEFAULT_PIPE_HIGH_WATER),
  L("PipeLowWater", pipe_low_water, 0u, 32u * 1024u * 1024u, TN_DEFAULT_PIPE_LOW_WATER),
  L("DrainTimeoutMs", drain_timeout_ms, 0u, 3600000u, TN_DEFAULT_DRAIN_TIMEOUT_MS),
};
#undef L
static const struct tn_limit_table shared = { shared_defs, sizeof(shared_defs) / sizeof(shared_defs[0]) };

static uint32_t *field_of(void *limits, const struct tn_limit_def *d)
{
  return (uint32_t *)(void *)((char *)limits + d->offset);
}

static void table_default(void *limits, const struct tn_limit_table *t)
{
  for (size_t i = 0; t != NULL && i < t->n; i++)
    *field_of(limits, &t->defs[i]) = t->defs[i].def;
}

void tn_limits_default(void *limits, const struct tn_limit_table *own)
{
  table_default(limits, &shared);
  table_default(limits, own);
}

static const struct tn_limit_def *table_find(const struct tn_limit_table *t, const char *key, const char **hint)
{
  return t != NULL ? tn_keys_find(t->defs, t->n, sizeof(t->defs[0]), key, hint) : NULL;
}

int tn_limits_set(void *limits, const struct tn_limit_table *own, const char *key, int is_integer, long long value,
                  const char *got, char *msg, size_t msglen)
{
  const char *hint = NULL;
  const struct tn_limit_def *d = table_find(&shared, key, &hint);

  if (d == NULL)
    d = table_find(own, key, &hint);
  if (d == NULL) {
    char path[TN_JSON_QUOTE_MAX + 8], q[TN_JSON_DESC_LEN];

    /* The key is the user's bytes: quoted so a newline in it cannot split the error into two log lines. */
    snprintf(path, sizeof(path), "Limits.%s", key);
    tn_json_quote(q, sizeof(q), path);
    if (hint != NULL)
      snprintf(msg, msglen, "%s: unknown key (did you mean \"%s\"?)", q, hint);
    else
      snprintf(msg, msglen, "%s: unknown key", q);
    return TN_ERR_INVALID;
  }
  if (!is_integer || value < (long long)d->min || value > (long long)d->max) {
    snprintf(msg, msglen, "\"Limits.%s\": must be an integer %lu-%lu, got %s", d->key, (unsigned long)d->min,
             (unsigned long)d->max, got);
    return TN_ERR_INVALID;
  }
  *field_of(limits, d) = (uint32_t)value;
  return TN_OK;
}

int tn_limits_check(const struct tn_limits *l, char *msg, size_t msglen)
{
  /* Pinging no sooner than the peer is declared dead would drop every idle link. */
  if (l->dead_peer_timeout_ms <= l->keepalive_interval_ms) {
    snprintf(msg, msglen, "\"Limits.DeadPeerTimeoutMs\": must be greater than KeepaliveIntervalMs (%lu), got %lu",
             (unsigned long)l->keepalive_interval_ms, (unsigned long)l->dead_peer_timeout_ms);
    return TN_ERR_INVALID;
  }
  /* Equal marks would make reading flap on and off at every byte. */
  if (l->pipe_low_water >= l->pipe_high_water) {
    snprintf(msg, msglen, "\"Limits.PipeLowWater\": must be less than PipeHighWater (%lu), got %lu",
             (unsigned long)l->pipe_high_water, (unsigned long)l->pipe_low_water);
    return TN_ERR_INVALID;
  }
  return TN_OK;
}

void tn_limits_link_options(const struct tn_limits *l, struct tn_link_options *opt)
{
  opt->handshake_timeout_ms = l->handshake_timeout_ms;
  opt->mux.keepalive_interval_ms = l->keepalive_interval_ms;
  opt->mux.dead_peer_timeout_ms = l->dead_peer_timeout_ms;
  opt->mux.open_timeout_ms = l->stream_open_timeout_ms;
  opt->mux.max_streams = l->max_streams_per_link;
  opt->mux.max_window = l->max_window;
  opt->mux.max_frame_payload = l->max_frame_payload;
  opt->mux.max_output_buffer = l->link_output_buffer;
}

void tn_limits_pipe_options(const struct tn_limits *l, struct tn_pipe_options *opt)
{
  opt->high_water = l->pipe_high_water;
  opt->low_water = l->pipe_low_water;
}
