/* tunnel/ratelog.h: log lines for repeated events (refusals, failed handshakes), rate-limited per kind and source. */
#ifndef TUNNEL_RATELOG_H
#define TUNNEL_RATELOG_H

#include <stddef.h>
#include <stdint.h>

#include "tunnel/log.h"

/*
 * An attacker decides how often a refusal happens, so a line per refusal lets them fill the disk
 * and bury what matters. Each (kind, source) pair, e.g. ("control: TLS handshake failed",
 * "192.0.2.7"), logs its first event at once; further events within interval_ms are counted, and
 * tn_ratelog_flush writes one summary per interval while they continue:
 *   "control: TLS handshake failed (192.0.2.7): 199 more in the last 10 s; last: <the last line>"
 * At most max_keys pairs are tracked; events of further pairs share one "other sources" summary,
 * so the number of lines per interval is bounded whatever the number of sources.
 * Sans clock: the caller passes the time (uv_now), as for tn_mux.
 */
typedef struct tn_ratelog tn_ratelog;

/* Returns NULL when out of memory. */
tn_ratelog *tn_ratelog_new(size_t max_keys);
/* Writes pending summaries (as at shutdown) and frees. NULL is fine. */
void tn_ratelog_free(tn_ratelog *rl, uint64_t now_ms);

/*
 * One event: logged now (returns 1) when its pair was quiet for interval_ms, else counted
 * (returns 0). kind and source are copied (kind up to 95 bytes, source up to 63). With rl NULL
 * every event is logged.
 */
int tn_ratelog_event(tn_ratelog *rl, uint64_t now_ms, uint64_t interval_ms, enum tn_log_level level, const char *kind,
                     const char *source, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* The condition is over (descriptors free again): its pending count is written now and the pair forgotten. */
void tn_ratelog_end(tn_ratelog *rl, uint64_t now_ms, const char *kind, const char *source);

/* Writes the summaries that are due and forgets pairs quiet for an interval. Call it every few hundred ms. */
void tn_ratelog_flush(tn_ratelog *rl, uint64_t now_ms);

#endif
