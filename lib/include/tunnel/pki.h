/* tunnel/pki.h: a minimal built-in CA: creates a CA and issues server/client certificates (mbedTLS x509write). */
#ifndef TUNNEL_PKI_H
#define TUNNEL_PKI_H

#include <stddef.h>
#include <stdint.h>

/*
 * Files are PEM. Keys are written with mode 0600 and O_EXCL: nothing is ever overwritten,
 * so a typo cannot destroy a CA key. On failure nothing is left behind and err holds one
 * line naming the file and the reason; keys never appear in error text.
 */

enum tn_pki_usage {
  TN_PKI_USAGE_CA = 1,      /* basicConstraints CA:true, keyUsage keyCertSign|cRLSign */
  TN_PKI_USAGE_SERVER = 2,  /* EKU serverAuth, keyUsage digitalSignature (+keyEncipherment for RSA) */
  TN_PKI_USAGE_CLIENT = 3,  /* EKU clientAuth, keyUsage as for a server */
  TN_PKI_USAGE_NONE = 4     /* leaf without EKU (any use): tunnel refuses it for every role; tests of that refusal */
};

enum tn_pki_key_type {
  TN_PKI_KEY_EC_P256 = 0,   /* the default: small, fast, what tunneld pki issues */
  TN_PKI_KEY_RSA_2048 = 1
};

#define TN_PKI_MAX_SANS 32

struct tn_pki_request {
  const char *subject;              /* mbedTLS name string, e.g. "CN=web1" or "CN=ops,OU=admin" */
  enum tn_pki_usage usage;
  enum tn_pki_key_type key_type;
  const char *const *dns;           /* dNSName SANs */
  size_t dns_count;
  const char *const *ips;           /* iPAddress SANs, IPv4 or IPv6 text */
  size_t ip_count;
  int64_t not_before;               /* Unix seconds UTC */
  int64_t not_after;
};

/* Days of validity tunneld pki uses by default. */
#define TN_PKI_CA_DAYS 3650
#define TN_PKI_LEAF_DAYS 397  /* what public CAs may issue at most; a lost key stops working within a year */

/* Fills req with: usage, EC P-256, validity from now - 1 hour (clock skew) to now + days. */
void tn_pki_request_init(struct tn_pki_request *req, const char *subject, enum tn_pki_usage usage, unsigned days);

/* Creates a self-signed CA (usage must be TN_PKI_USAGE_CA). TN_OK, TN_ERR_ARG, TN_ERR_INVALID (err set). */
int tn_pki_create_ca(const char *cert_path, const char *key_path, const struct tn_pki_request *req,
                     char *err, size_t err_len);

/* Issues a certificate signed by the CA in ca_cert_path / ca_key_path. Same returns. */
int tn_pki_issue(const char *ca_cert_path, const char *ca_key_path, const char *cert_path,
                 const char *key_path, const struct tn_pki_request *req, char *err, size_t err_len);

/*
 * Writes a human-readable description of the certificate(s) in path: subject, issuer,
 * SANs, validity (RFC 3339), key usage, EKU, SHA-256 fingerprint. Returns TN_OK, or
 * TN_ERR_INVALID with err set; out is always NUL-terminated (truncated if cap is small).
 */
int tn_pki_describe(const char *path, char *out, size_t cap, char *err, size_t err_len);

/* Formats Unix seconds as RFC 3339 UTC ("2025-01-31T12:00:00Z"); out needs 21 bytes. */
void tn_pki_format_time(int64_t t, char out[21]);

#endif
