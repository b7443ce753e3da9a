/* backoff.c: exponential reconnect delays with jitter, no clock and no random source of its own. */
#include "backoff.h"

#include <string.h>

void tc_backoff_init(struct tc_backoff *b, uint32_t min_ms, uint32_t max_ms, uint32_t jitter_percent,
                     uint32_t reset_after_ms)
{
  memset(b, 0, sizeof(*b));
  /* A zero minimum would double to zero forever and spin on a dead server. */
  b->min_ms = min_ms > 0 ? min_ms : 1;
  b->max_ms = max_ms >= b->min_ms ? max_ms : b->min_ms;
  b->jitter_percent = jitter_percent <= 100 ? jitter_percent : 100;
  b->reset_after_ms = reset_after_ms;
  b->base_ms = b->min_ms;
}

void tc_backoff_reset(struct tc_backoff *b)
{
  b->base_ms = b->min_ms;
  b->failures = 0;
}

void tc_backoff_link_up(struct tc_backoff *b, uint64_t now_ms)
{
  b->up = true;
  b->up_since_ms = now_ms;
}

uint32_t tc_backoff_link_down(struct tc_backoff *b, uint64_t now_ms, uint32_t random)
{
  uint64_t base, offset, span, delay;

  /* A clock that went backwards never counts as a stable link. */
  if (b->up && now_ms >= b->up_since_ms && now_ms - b->up_since_ms >= b->reset_after_ms)
    tc_backoff_reset(b);
  b->up = false;

  base = b->base_ms;
  offset = base * b->jitter_percent / 100u;
  span = 2u * offset + 1u;
  /* Multiply-shift maps the draw onto [0, span) without the bias of a modulo. */
  delay = base - offset + (((uint64_t)random * span) >> 32);

  b->base_ms = base * 2u >= b->max_ms ? b->max_ms : (uint32_t)(base * 2u);
  if (b->failures < UINT32_MAX)
    b->failures++;
  return delay > UINT32_MAX ? UINT32_MAX : (uint32_t)delay;
}

uint32_t tc_backoff_failures(const struct tc_backoff *b)
{
  return b->failures;
}
