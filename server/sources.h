/* sources.h: counts of tunneld's connections per source network, per certificate identity and per public site. */
#ifndef TD_SOURCES_H
#define TD_SOURCES_H

#include <stddef.h>
#include <stdint.h>

#include "tunnel/addr.h"

/*
 * Per-source limits (sshd's MaxStartups idea, per address): a handshake in progress or a
 * management session without an admin certificate costs a slot of a shared limit, so one
 * address holding many of them could starve every other. Counting them per source lets tunneld
 * bound what one source holds. A "source" is an IPv4 address or an IPv6 /64 (one host
 * usually owns a whole /64, so counting single IPv6 addresses would bound nothing).
 * Keys are strings ("ip:192.0.2.7", "cn:home1") so identities use the same table.
 */
enum td_count {
  TD_COUNT_CONTROL_PENDING = 0, /* TLS handshakes in progress on the control port */
  TD_COUNT_MGMT_PENDING,        /* ... on the management port */
  TD_COUNT_MGMT_NONADMIN,       /* established management sessions without an admin certificate */
  TD_COUNT_PUBLIC,              /* a public listener's open connections, per source ("ip:") and per site ("site:") */
  TD_COUNT_KINDS
};

struct td_source;
struct td_sources {
  struct td_source **buckets;
  size_t n_buckets;
  size_t n;
};

/* Longest key: "ip:" + an IPv6 /64 in text, or "cn:" + a 255-byte identity. */
#define TD_SOURCE_KEY_MAX 272

/* The source network of an address as text: "192.0.2.7" or "2001:db8:1:2::/64". */
void td_source_name(const struct tn_addr *peer, char *out, size_t outlen);

void td_sources_init(struct td_sources *s);
void td_sources_free(struct td_sources *s);
/* Current count of kind under key (0 when unknown). */
uint32_t td_sources_get(const struct td_sources *s, const char *key, enum td_count kind);
/* Adds delta (+1/-1) to kind under key; an entry whose counts are all 0 is freed. TN_OK or TN_ERR_NOMEM. */
int td_sources_add(struct td_sources *s, const char *key, enum td_count kind, int delta);

#endif
