/* revoked.c: validation, lookup and JSON form of the revoked-certificate list. */
#include "revoked.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"
#include "tunnel/error.h"
#include "tunnel/tls.h"

void td_revoked_init(struct td_revoked *r)
{
  r->fp = NULL;
  r->n = 0;
}

void td_revoked_free(struct td_revoked *r)
{
  free(r->fp);
  td_revoked_init(r);
}

static int fp_cmp(const void *a, const void *b)
{
  return strcmp(a, b);
}

int td_revoked_from_json(const json_t *array, struct td_revoked *out, char *err, size_t errlen)
{
  char got[TD_TABLE_GOT_MAX + 8];
  size_t n;

  td_revoked_init(out);
  if (!json_is_array(array)) {
    td_table_describe_json(array, got, sizeof(got));
    snprintf(err, errlen, "must be a JSON array of SHA-256 fingerprints, got %s", got);
    return TN_ERR_INVALID;
  }
  n = json_array_size(array);
  if (n > TD_REVOKED_MAX) {
    snprintf(err, errlen, "%zu entries, more than the limit of %u", n, TD_REVOKED_MAX);
    return TN_ERR_INVALID;
  }
  if (n == 0)
    return TN_OK;
  out->fp = calloc(n, sizeof(*out->fp));
  if (out->fp == NULL) {
    snprintf(err, errlen, "out of memory");
    return TN_ERR_NOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    const json_t *e = json_array_get(array, i);
    /*
     * Any form people copy (upper case, colons, openssl's "SHA256 Fingerprint=" prefix), stored as 64 lowercase
     * hex digits: what GET returns is canonical and no two spellings name one certificate.
     */
    if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e) ||
        tn_tls_fingerprint_parse(json_string_value(e), out->fp[i]) != TN_OK) {
      td_table_describe_json(e, got, sizeof(got));
      snprintf(err, errlen,
               "[%zu]: must be a SHA-256 fingerprint, 64 hex digits with or without colons (as tunneld pki show or "
               "openssl x509 -fingerprint -sha256 prints it), got %s",
               i, got);
      td_revoked_free(out);
      return TN_ERR_INVALID;
    }
  }
  out->n = n;
  qsort(out->fp, n, sizeof(*out->fp), fp_cmp);
  for (size_t i = 1; i < n; i++) {
    if (strcmp(out->fp[i - 1], out->fp[i]) == 0) {
      /* Name the first place it appears, as the operator wrote the list. */
      size_t first = 0;
      char fp[65] = "";
      while (first < n && (tn_tls_fingerprint_parse(json_string_value(json_array_get(array, first)), fp) != TN_OK ||
                           strcmp(fp, out->fp[i]) != 0))
        first++;
      snprintf(err, errlen, "[%zu]: \"%s\" is listed twice", first, out->fp[i]);
      td_revoked_free(out);
      return TN_ERR_INVALID;
    }
  }
  return TN_OK;
}

json_t *td_revoked_to_json(const struct td_revoked *r)
{
  json_t *a = json_array();

  for (size_t i = 0; a != NULL && i < r->n; i++) {
    if (json_array_append_new(a, json_string(r->fp[i])) != 0) {
      json_decref(a);
      return NULL;
    }
  }
  return a;
}

bool td_revoked_contains(const struct td_revoked *r, const char *sha256_hex)
{
  if (r->n == 0 || sha256_hex == NULL)
    return false;
  return bsearch(sha256_hex, r->fp, r->n, sizeof(*r->fp), fp_cmp) != NULL;
}
