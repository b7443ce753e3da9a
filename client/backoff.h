/* backoff.h: tunnelc's reconnect delay as a pure state machine (exponential, jittered, reset by a stable link). */
#ifndef TC_BACKOFF_H
#define TC_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

/*
 * The caller owns the clock and the randomness: it passes a monotonic now_ms and one
 * uniformly random uint32 per delay, so tests replay exact sequences.
 *
 * Delays: min, 2*min, 4*min, ... capped at max, each multiplied by a factor drawn
 * uniformly from [1 - jitter%, 1 + jitter%] (so with the defaults 500 ms .. 30 s and
 * 20%, delays lie in 400-600 ms first and 24-36 s at the cap: the cap is the centre of
 * the spread, so clients that lost the same server do not all return on the same tick).
 * A link that stayed up for reset_after_ms or longer starts the sequence again at min.
 */
struct tc_backoff {
  uint32_t min_ms;
  uint32_t max_ms;
  uint32_t jitter_percent;
  uint32_t reset_after_ms;
  uint32_t base_ms;     /* un-jittered delay of the next failure */
  uint32_t failures;    /* consecutive failures since the last reset */
  uint64_t up_since_ms; /* valid while up */
  bool up;
};

/* Sets the parameters and starts at min. min is raised to 1, max to min, jitter capped at 100. */
void tc_backoff_init(struct tc_backoff *b, uint32_t min_ms, uint32_t max_ms, uint32_t jitter_percent,
                     uint32_t reset_after_ms);

/* The link is established (TLS handshake done) at now_ms. */
void tc_backoff_link_up(struct tc_backoff *b, uint64_t now_ms);

/*
 * A connection attempt failed, or an established link was lost, at now_ms. Returns how
 * many milliseconds to wait before the next attempt; random is a fresh uniform draw.
 */
uint32_t tc_backoff_link_down(struct tc_backoff *b, uint64_t now_ms, uint32_t random);

/* Back to the first delay (e.g. after a config reload changed the server). */
void tc_backoff_reset(struct tc_backoff *b);

/* Consecutive failures since the last reset, for "still failing after N attempts" log lines. */
uint32_t tc_backoff_failures(const struct tc_backoff *b);

#endif
