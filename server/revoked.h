/* revoked.h: the revoked-certificate list (SHA-256 fingerprints) set by PUT /revoked-certificates and kept in the state file. */
#ifndef TD_REVOKED_H
#define TD_REVOKED_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Fingerprints as 64 lowercase hex digits, sorted and unique (so lookups are binary searches). */
struct td_revoked {
  char (*fp)[65];
  size_t n;
};

/* A list bigger than this is a mistake, not a CA's worth of lost machines. */
#define TD_REVOKED_MAX 100000u

void td_revoked_init(struct td_revoked *r);
void td_revoked_free(struct td_revoked *r);

/*
 * Validates a PUT body (or the state file's "RevokedCertificates") and builds *out from it:
 * a JSON array of distinct fingerprints, each exactly 64 lowercase hex digits (the form
 * `tunneld pki show` prints and GET returns). On error returns TN_ERR_INVALID with err naming
 * the entry, e.g. `[2]: must be 64 lowercase hex digits (a SHA-256 fingerprint), got "AB:CD"`,
 * or TN_ERR_NOMEM; *out is left empty.
 */
int td_revoked_from_json(const json_t *array, struct td_revoked *out, char *err, size_t errlen);

/* The list as a sorted JSON array of strings; a new reference, NULL on allocation failure. */
json_t *td_revoked_to_json(const struct td_revoked *r);

bool td_revoked_contains(const struct td_revoked *r, const char *sha256_hex);

#endif
