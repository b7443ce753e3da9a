/* tunnel/limits.h: the limits both programs share (one table: name, bounds, default) and their mapping onto the adapter's options. */
#ifndef TUNNEL_LIMITS_H
#define TUNNEL_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "tunnel/link.h"
#include "tunnel/pipe.h"

/* The link and pipe limits of the "Limits" object, the same keys and bounds in tunneld.json and tunnelc.json. */
struct tn_limits {
  uint32_t handshake_timeout_ms;   /* HandshakeTimeoutMs */
  uint32_t keepalive_interval_ms;  /* KeepaliveIntervalMs */
  uint32_t dead_peer_timeout_ms;   /* DeadPeerTimeoutMs */
  uint32_t stream_open_timeout_ms; /* StreamOpenTimeoutMs */
  uint32_t max_streams_per_link;   /* MaxStreamsPerLink */
  uint32_t max_window;             /* MaxWindow */
  uint32_t max_frame_payload;      /* MaxFramePayload */
  uint32_t link_output_buffer;     /* LinkOutputBuffer */
  uint32_t pipe_high_water;        /* PipeHighWater */
  uint32_t pipe_low_water;         /* PipeLowWater */
  uint32_t drain_timeout_ms;       /* DrainTimeoutMs */
};

/*
 * One configurable limit: a uint32_t at offset in a program's limits struct, whose first member is a
 * struct tn_limits (so the shared table's offsets hold there too).
 */
struct tn_limit_def {
  const char *key;
  size_t offset;
  uint32_t min, max, def;
};

/* A program's own limits, looked up after the shared ones. */
struct tn_limit_table {
  const struct tn_limit_def *defs;
  size_t n;
};

/* Sets every shared limit, and every one of own (may be NULL), to its default. */
void tn_limits_default(void *limits, const struct tn_limit_table *own);

/*
 * Sets "Limits".key from one config value. is_integer is false when the value is not an integer, got
 * describes the value for the message. On error msg holds one line naming the field and what is wrong
 * (an unknown key gets a "did you mean" for a key that differs only in case). TN_OK or TN_ERR_INVALID.
 */
int tn_limits_set(void *limits, const struct tn_limit_table *own, const char *key, int is_integer, long long value,
                  const char *got, char *msg, size_t msglen);

/* The checks between fields, run once every key is set (a lone override is judged against the other's default). */
int tn_limits_check(const struct tn_limits *l, char *msg, size_t msglen);

/* The one mapping of the limits onto the options of the code they govern. */
void tn_limits_link_options(const struct tn_limits *l, struct tn_link_options *opt);
void tn_limits_pipe_options(const struct tn_limits *l, struct tn_pipe_options *opt);

#endif
