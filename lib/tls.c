/* tls.c: mbedTLS (2.28 or 3.x) driven over memory buffers, with tunnel's fixed TLS policy and plain-words errors. */
#include "tunnel/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#include <psa/crypto.h>
#endif

/*
 * mbedTLS 3.x marks fields it may change as MBEDTLS_PRIVATE; the few read here have no
 * accessor (CA flag, CRL signature parameters, the alert byte). 2.28 has no such marking.
 */
#ifndef MBEDTLS_PRIVATE
#define MBEDTLS_PRIVATE(member) member
#endif
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define tls_sha256 mbedtls_sha256
#else
#define tls_sha256 mbedtls_sha256_ret
#endif

#include "tunnel/error.h"
#include "tunnel/utf8.h"

/* Certificate and key files are small; a bound keeps a wrong path (a disk image...) from eating memory. */

/* CHACHA20-POLY1305 first: it is fast everywhere, AES-GCM only where AES-NI helps. */
static const int tls_ciphersuites[] = {
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
  MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
  MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
  MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
#endif
  MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
  MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
  MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
  MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
  MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
  MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
  0
};

#if MBEDTLS_VERSION_NUMBER >= 0x03010000
/* 3.1 names key exchange groups by their IANA numbers (TLS 1.3 calls curves groups). */
static const uint16_t tls_groups[] = {
  MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
  MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
  MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1,
  MBEDTLS_SSL_IANA_TLS_GROUP_NONE
};
#else
static const mbedtls_ecp_group_id tls_curves[] = {
  MBEDTLS_ECP_DP_CURVE25519,
  MBEDTLS_ECP_DP_SECP256R1,
  MBEDTLS_ECP_DP_SECP384R1,
  MBEDTLS_ECP_DP_NONE
};
#endif

struct tn_tls_config {
  unsigned refs;
  enum tn_tls_role role;
  int own_usage_ok; /* own certificate fits the role (crt_role_check) */
  char own_role_why[200]; /* why it does not */
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_x509_crt ca;
  mbedtls_x509_crt own;
  mbedtls_pk_context key;
  mbedtls_x509_crl crl;
  int has_crl;
  char *ca_file;                 /* for messages about CRLs */
  tn_tls_peer_check_fn peer_check;
  void *peer_check_ctx;
  mbedtls_ssl_config conf;
};

enum tls_state { TLS_HANDSHAKE, TLS_OPEN, TLS_FAILED };

struct tn_tls {
  tn_tls_config *cfg;
  mbedtls_ssl_context ssl;
  enum tls_state state;
  int eof;
  int peer_closed;
  int sent_close;
  int name_is_ip;
  int got_data;   /* application data has arrived: the peer accepted the handshake */
  int sent_any;   /* bytes went out */
  int answered;   /* bytes went out before the current handshake step (a server answered a ClientHello) */
  size_t ip_len;
  unsigned char ip[16];
  size_t expansion; /* ciphertext overhead per record, known once the suite is chosen */
  size_t in_head, in_tail;
  size_t out_head, out_tail;
  char name[256];
  char err[512];
  char why[256];          /* the first specific reason verification gave, "" if none */
  uint32_t why_flags;     /* the verify flags it explains */
  char leaf[192];         /* the peer's leaf for messages: CN (64 bytes at most) and fingerprint */
  uint8_t in[TN_TLS_INPUT_CAP];
  uint8_t out[TN_TLS_OUTPUT_CAP];
};

static void mbed_text(int ret, char *buf, size_t len)
{
  mbedtls_strerror(ret, buf, len);
}

static int is_pem(const unsigned char *buf, size_t len)
{
  return len > 0 && strstr((const char *)buf, "-----BEGIN ") != NULL;
}

static int load_certs(mbedtls_x509_crt *chain, const struct tn_tls_input *in, char *err, size_t err_len)
{
  const char *path = in->name;
  const unsigned char *buf = in->data;
  size_t len = in->len;
  /* PEM parsing wants the terminating NUL counted; DER must not have it. */
  int ret = mbedtls_x509_crt_parse(chain, buf, is_pem(buf, len) ? len + 1 : len);
  int pem = is_pem(buf, len);
  if (chain->version == 0) {
    if (pem || ret == MBEDTLS_ERR_X509_CERT_UNKNOWN_FORMAT) {
      tn_errf(err, err_len, "%s: no certificate found", path);
    } else {
      char m[128];
      mbed_text(ret, m, sizeof m);
      tn_errf(err, err_len, "%s: invalid certificate: %s", path, m);
    }
    return TN_ERR_INVALID;
  }
  if (ret != 0) {
    if (ret > 0) {
      tn_errf(err, err_len, "%s: %d certificate(s) in the file could not be parsed", path, ret);
    } else {
      char m[128];
      mbed_text(ret, m, sizeof m);
      tn_errf(err, err_len, "%s: invalid certificate: %s", path, m);
    }
    return TN_ERR_INVALID;
  }
  return TN_OK;
}

static int load_key(mbedtls_pk_context *key, const struct tn_tls_input *in, mbedtls_ctr_drbg_context *drbg, char *err,
                    size_t err_len)
{
  const char *path = in->name;
  const unsigned char *buf = in->data;
  size_t len = in->len;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  int ret = mbedtls_pk_parse_key(key, buf, is_pem(buf, len) ? len + 1 : len, NULL, 0, mbedtls_ctr_drbg_random, drbg);
#else
  (void)drbg;
  int ret = mbedtls_pk_parse_key(key, buf, is_pem(buf, len) ? len + 1 : len, NULL, 0);
#endif
  if (ret == MBEDTLS_ERR_PK_PASSWORD_REQUIRED || ret == MBEDTLS_ERR_PK_PASSWORD_MISMATCH) {
    tn_errf(err, err_len, "%s: key is protected by a passphrase; tunnel needs an unencrypted key (protect the file with mode 0600)", path);
    return TN_ERR_INVALID;
  }
  if (ret != 0) {
    tn_errf(err, err_len, "%s: no private key found (expected an unencrypted PEM or DER key)", path);
    return TN_ERR_INVALID;
  }
  mbedtls_pk_type_t type = mbedtls_pk_get_type(key);
  if (type == MBEDTLS_PK_RSA) {
    size_t bits = mbedtls_pk_get_bitlen(key);
    if (bits < 2048) {
      tn_errf(err, err_len, "%s: RSA key of %zu bits is too weak (2048 or more needed)", path, bits);
      return TN_ERR_INVALID;
    }
  } else if (type != MBEDTLS_PK_ECKEY) {
    tn_errf(err, err_len, "%s: unsupported key type (use ECDSA P-256 or RSA 2048+)", path);
    return TN_ERR_INVALID;
  }
  return TN_OK;
}

static void config_free(tn_tls_config *cfg)
{
  mbedtls_ssl_config_free(&cfg->conf);
  mbedtls_pk_free(&cfg->key);
  mbedtls_x509_crt_free(&cfg->own);
  mbedtls_x509_crt_free(&cfg->ca);
  mbedtls_x509_crl_free(&cfg->crl);
  free(cfg->ca_file);
  mbedtls_ctr_drbg_free(&cfg->drbg);
  mbedtls_entropy_free(&cfg->entropy);
  free(cfg);
}

/* PSA (3.x) and the DRBG every handshake of this configuration draws from. */
static int seed_random(tn_tls_config *cfg, char *err, size_t err_len)
{
  static const unsigned char pers[] = "tunnel tls";

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  /* TLS 1.3 and 3.x's key handling run on PSA crypto, which must be up before any handshake. */
  if (psa_crypto_init() != PSA_SUCCESS) {
    tn_errf(err, err_len, "TLS configuration: cannot initialise PSA crypto");
    return TN_ERR_INTERNAL;
  }
#endif
  if (mbedtls_ctr_drbg_seed(&cfg->drbg, mbedtls_entropy_func, &cfg->entropy, pers, sizeof pers - 1) != 0) {
    tn_errf(err, err_len, "TLS configuration: cannot seed the random generator");
    return TN_ERR_INTERNAL;
  }
  return TN_OK;
}

/* Whether crt's extended key usage names oid itself; anyExtendedKeyUsage does not count (it means any role). */
static int crt_has_eku(const mbedtls_x509_crt *crt, const char *oid, size_t oid_len)
{
  for (const mbedtls_x509_sequence *cur = &crt->ext_key_usage; cur != NULL; cur = cur->next)
    if (cur->buf.p != NULL && cur->buf.len == oid_len && memcmp(cur->buf.p, oid, oid_len) == 0)
      return 1;
  return 0;
}

/* How many dNSName and iPAddress entries crt's subjectAltName holds. */
static unsigned crt_name_sans(const mbedtls_x509_crt *crt)
{
  unsigned n = 0;

  for (const mbedtls_x509_sequence *cur = &crt->subject_alt_names; cur != NULL; cur = cur->next) {
    unsigned type = cur->buf.tag & MBEDTLS_ASN1_TAG_VALUE_MASK;
    if (cur->buf.p != NULL && (type == MBEDTLS_X509_SAN_DNS_NAME || type == MBEDTLS_X509_SAN_IP_ADDRESS))
      n++;
  }
  return n;
}

/*
 * The role rule (docs/PKI.md, "Roles"), for a certificate that is to act as a server (role TN_TLS_SERVER) or as
 * a client: its extended key usage must name the role (serverAuth, clientAuth), and a server's must name the
 * host in a DNS or IP subjectAltName. A certificate without extended key usage is for any use, so it could be
 * client and server at once: refused. Without a subjectAltName mbedTLS would check the server name against the
 * CN: refused, so the CN is only ever an identity. TN_OK, or TN_ERR_INVALID with why (flags: the verify flag
 * that matches, when not NULL).
 */
static int crt_role_check(const mbedtls_x509_crt *crt, enum tn_tls_role as, char *why, size_t why_len,
                          uint32_t *flags)
{
  int server = as == TN_TLS_SERVER;
  const char *oid = server ? MBEDTLS_OID_SERVER_AUTH : MBEDTLS_OID_CLIENT_AUTH;
  const char *eku = server ? "serverAuth" : "clientAuth";

  if (!(crt->MBEDTLS_PRIVATE(ext_types) & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE)) {
    tn_errf(why, why_len, "it has no extended key usage (a %s certificate needs %s; one for any use could act as "
            "client and server)", server ? "server" : "client", eku);
    if (flags != NULL)
      *flags = MBEDTLS_X509_BADCERT_EXT_KEY_USAGE;
    return TN_ERR_INVALID;
  }
  if (!crt_has_eku(crt, oid, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH))) {
    tn_errf(why, why_len, "certificate not for %s use (its extended key usage lacks %s)", server ? "server" : "client",
            eku);
    if (flags != NULL)
      *flags = MBEDTLS_X509_BADCERT_EXT_KEY_USAGE;
    return TN_ERR_INVALID;
  }
  if (server && crt_name_sans(crt) == 0) {
    tn_errf(why, why_len, "it has no DNS or IP subjectAltName (a server certificate names its host there; the CN "
            "is never taken as a host name)");
    if (flags != NULL)
      *flags = MBEDTLS_X509_BADCERT_CN_MISMATCH;
    return TN_ERR_INVALID;
  }
  return TN_OK;
}

/* The CA, our certificate and its key, checked to belong together. */
static int load_identity(tn_tls_config *cfg, const struct tn_tls_input *ca, const struct tn_tls_input *cert,
                         const struct tn_tls_input *key, char *err, size_t err_len)
{
  int rc, ret;

  if ((cfg->ca_file = strdup(ca->name)) == NULL) {
    tn_errf(err, err_len, "TLS configuration: out of memory");
    return TN_ERR_NOMEM;
  }
  if ((rc = load_certs(&cfg->ca, ca, err, err_len)) != TN_OK)
    return rc;
  if ((rc = load_certs(&cfg->own, cert, err, err_len)) != TN_OK)
    return rc;
  if ((rc = load_key(&cfg->key, key, &cfg->drbg, err, err_len)) != TN_OK)
    return rc;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  ret = mbedtls_pk_check_pair(&cfg->own.pk, &cfg->key, mbedtls_ctr_drbg_random, &cfg->drbg);
#else
  ret = mbedtls_pk_check_pair(&cfg->own.pk, &cfg->key);
#endif
  if (ret != 0) {
    tn_errf(err, err_len, "%s: private key does not match the certificate in %s", key->name, cert->name);
    return TN_ERR_INVALID;
  }
  cfg->own_usage_ok =
    crt_role_check(&cfg->own, cfg->role, cfg->own_role_why, sizeof cfg->own_role_why, NULL) == TN_OK;
  return TN_OK;
}

/* The TLS profile of PROTOCOL.md, in one place: versions, AEAD suites, groups, no renegotiation, no tickets. */
static int apply_profile(tn_tls_config *cfg, char *err, size_t err_len)
{
  int ret = mbedtls_ssl_config_defaults(&cfg->conf,
                                        cfg->role == TN_TLS_SERVER ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                        MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
  if (ret != 0) {
    tn_errf(err, err_len, "TLS configuration: mbedTLS defaults failed");
    return TN_ERR_INTERNAL;
  }
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
  mbedtls_ssl_conf_min_tls_version(&cfg->conf, MBEDTLS_SSL_VERSION_TLS1_2);
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
  mbedtls_ssl_conf_max_tls_version(&cfg->conf, MBEDTLS_SSL_VERSION_TLS1_3);
#else
  mbedtls_ssl_conf_max_tls_version(&cfg->conf, MBEDTLS_SSL_VERSION_TLS1_2);
#endif
#else
  mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#endif
  mbedtls_ssl_conf_ciphersuites(&cfg->conf, tls_ciphersuites);
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
  /* (EC)DHE only: without pre-shared keys or tickets there is nothing to resume from. */
  mbedtls_ssl_conf_tls13_key_exchange_modes(&cfg->conf, MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL);
#endif
#if MBEDTLS_VERSION_NUMBER >= 0x03010000
  mbedtls_ssl_conf_groups(&cfg->conf, tls_groups);
#else
  mbedtls_ssl_conf_curves(&cfg->conf, tls_curves);
#endif
  mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_renegotiation(&cfg->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
  mbedtls_ssl_conf_legacy_renegotiation(&cfg->conf, MBEDTLS_SSL_LEGACY_NO_RENEGOTIATION);
  mbedtls_ssl_conf_session_tickets(&cfg->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
  mbedtls_ssl_conf_rng(&cfg->conf, mbedtls_ctr_drbg_random, &cfg->drbg);
  mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca, NULL);
  if (mbedtls_ssl_conf_own_cert(&cfg->conf, &cfg->own, &cfg->key) != 0) {
    tn_errf(err, err_len, "TLS configuration: out of memory");
    return TN_ERR_NOMEM;
  }
  return TN_OK;
}

int tn_tls_config_new_mem(tn_tls_config **out, enum tn_tls_role role, const struct tn_tls_input *ca,
                          const struct tn_tls_input *cert, const struct tn_tls_input *key, char *err, size_t err_len)
{
  int rc;

  if (err != NULL && err_len > 0)
    err[0] = '\0';
  if (out == NULL || ca == NULL || ca->name == NULL || cert == NULL || cert->name == NULL || key == NULL ||
      key->name == NULL || (role != TN_TLS_CLIENT && role != TN_TLS_SERVER)) {
    tn_errf(err, err_len, "TLS configuration: missing CA, certificate or key file");
    return TN_ERR_ARG;
  }
  *out = NULL;
  tn_tls_config *cfg = calloc(1, sizeof *cfg);
  if (cfg == NULL) {
    tn_errf(err, err_len, "TLS configuration: out of memory");
    return TN_ERR_NOMEM;
  }
  cfg->refs = 1;
  cfg->role = role;
  mbedtls_entropy_init(&cfg->entropy);
  mbedtls_ctr_drbg_init(&cfg->drbg);
  mbedtls_x509_crt_init(&cfg->ca);
  mbedtls_x509_crt_init(&cfg->own);
  mbedtls_pk_init(&cfg->key);
  mbedtls_x509_crl_init(&cfg->crl);
  mbedtls_ssl_config_init(&cfg->conf);
  if ((rc = seed_random(cfg, err, err_len)) != TN_OK || (rc = load_identity(cfg, ca, cert, key, err, err_len)) != TN_OK ||
      (rc = apply_profile(cfg, err, err_len)) != TN_OK) {
    config_free(cfg);
    return rc;
  }
  *out = cfg;
  return TN_OK;
}

void tn_tls_config_ref(tn_tls_config *cfg)
{
  if (cfg != NULL)
    cfg->refs++;
}

void tn_tls_config_unref(tn_tls_config *cfg)
{
  if (cfg == NULL)
    return;
  if (--cfg->refs == 0)
    config_free(cfg);
}

int tn_tls_config_usage_ok(const tn_tls_config *cfg)
{
  return cfg->own_usage_ok;
}

int tn_tls_config_role_check(const tn_tls_config *cfg, char *why, size_t why_len)
{
  if (cfg == NULL)
    return TN_ERR_ARG;
  if (cfg->own_usage_ok)
    return TN_OK;
  tn_errf(why, why_len, "%s", cfg->own_role_why);
  return TN_ERR_INVALID;
}

enum tn_tls_role tn_tls_config_role(const tn_tls_config *cfg)
{
  return cfg->role;
}

void tn_tls_config_set_peer_check(tn_tls_config *cfg, tn_tls_peer_check_fn fn, void *ctx)
{
  if (cfg == NULL)
    return;
  cfg->peer_check = fn;
  cfg->peer_check_ctx = ctx;
}

int tn_tls_config_set_alpn(tn_tls_config *cfg, const char *const *protocols)
{
  if (cfg == NULL || protocols == NULL || protocols[0] == NULL)
    return TN_ERR_ARG;
#if defined(MBEDTLS_SSL_ALPN)
  /* mbedTLS only reads the list; its prototype predates const-correct lists. */
  return mbedtls_ssl_conf_alpn_protocols(&cfg->conf, (const char **)(uintptr_t)protocols) == 0 ? TN_OK
                                                                                                : TN_ERR_ARG;
#else
  return TN_ERR_UNSUPPORTED;
#endif
}

/* The issuer's CN of a CRL (or "?"), printable, for messages. */
static void crl_issuer_text(const mbedtls_x509_crl *crl, char *out, size_t cap)
{
  snprintf(out, cap, "?");
  for (const mbedtls_x509_name *n = &crl->issuer; n != NULL; n = n->next) {
    if (n->oid.p != NULL && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
      tn_utf8_escape((const char *)n->val.p, n->val.len, out, cap);
      return;
    }
  }
}

/* True when a certificate of the CA file issued crl and its signature verifies with that key. */
static int crl_signed_by_ca(const tn_tls_config *cfg, const mbedtls_x509_crl *crl)
{
  const mbedtls_md_info_t *md = mbedtls_md_info_from_type(crl->MBEDTLS_PRIVATE(sig_md));
  unsigned char hash[MBEDTLS_MD_MAX_SIZE];

  if (md == NULL || mbedtls_md(md, crl->tbs.p, crl->tbs.len, hash) != 0)
    return 0;
  for (const mbedtls_x509_crt *ca = &cfg->ca; ca != NULL && ca->raw.p != NULL; ca = ca->next) {
    if (ca->subject_raw.len != crl->issuer_raw.len ||
        memcmp(ca->subject_raw.p, crl->issuer_raw.p, crl->issuer_raw.len) != 0)
      continue;
    /* mbedtls_pk_verify_ext's context argument is not const in 2.28; it is only read. */
    if (mbedtls_pk_verify_ext(crl->MBEDTLS_PRIVATE(sig_pk), crl->MBEDTLS_PRIVATE(sig_opts),
                              (mbedtls_pk_context *)&ca->pk, crl->MBEDTLS_PRIVATE(sig_md), hash,
                              mbedtls_md_get_size(md), crl->MBEDTLS_PRIVATE(sig).p, crl->MBEDTLS_PRIVATE(sig).len) == 0)
      return 1;
  }
  return 0;
}

/* DER CRLs may simply follow each other in one file; mbedTLS parses one at a time. */
static int parse_der_crls(mbedtls_x509_crl *chain, const unsigned char *buf, size_t len)
{
  const unsigned char *p = buf, *end = buf + len;

  while (p < end) {
    unsigned char *q = (unsigned char *)p;
    size_t body;
    int ret = mbedtls_asn1_get_tag(&q, end, &body, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
    if (ret != 0)
      return ret;
    size_t whole = (size_t)(q - p) + body;
    if ((ret = mbedtls_x509_crl_parse_der(chain, p, whole)) != 0)
      return ret;
    p += whole;
  }
  return 0;
}

int tn_tls_config_set_crl_mem(tn_tls_config *cfg, const struct tn_tls_input *in, char *err, size_t err_len)
{
  char m[128];

  if (cfg == NULL || in == NULL || in->name == NULL)
    return TN_ERR_ARG;
  const char *crl_file = in->name;
  const unsigned char *buf = in->data;
  size_t len = in->len;
  mbedtls_x509_crl crl;
  mbedtls_x509_crl_init(&crl);
  int ret = is_pem(buf, len) ? mbedtls_x509_crl_parse(&crl, buf, len + 1) : parse_der_crls(&crl, buf, len);
  if (ret != 0 || crl.version == 0) {
    mbed_text(ret, m, sizeof m);
    tn_errf(err, err_len, "%s: not a CRL (expected PEM \"X509 CRL\" blocks or DER): %s", crl_file,
            ret != 0 ? m : "no CRL found");
    mbedtls_x509_crl_free(&crl);
    return TN_ERR_INVALID;
  }
  size_t i = 1;
  for (const mbedtls_x509_crl *c = &crl; c != NULL && c->version != 0; c = c->next, i++) {
    char issuer[TN_TLS_CN_MAX];
    crl_issuer_text(c, issuer, sizeof issuer);
    if (!crl_signed_by_ca(cfg, c)) {
      tn_errf(err, err_len, "%s: CRL %zu (issuer CN \"%s\") is not signed by a certificate in %s", crl_file, i,
              issuer, cfg->ca_file);
      mbedtls_x509_crl_free(&crl);
      return TN_ERR_INVALID;
    }
    /* mbedTLS refuses every certificate of a CA whose CRL is past nextUpdate: say so now, not at each handshake. */
    if (mbedtls_x509_time_is_past(&c->next_update)) {
      tn_errf(err, err_len, "%s: CRL %zu (issuer CN \"%s\") expired on %04d-%02d-%02d (nextUpdate); make a new one "
              "(openssl ca -gencrl)", crl_file, i, issuer, c->next_update.year, c->next_update.mon,
              c->next_update.day);
      mbedtls_x509_crl_free(&crl);
      return TN_ERR_INVALID;
    }
  }
  mbedtls_x509_crl_free(&cfg->crl);
  cfg->crl = crl;  /* the chain's later links are heap nodes; moving the head keeps them */
  cfg->has_crl = 1;
  mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca, &cfg->crl);
  return TN_OK;
}

/* ---- memory BIO ---- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
  tn_tls *t = ctx;
  size_t room = TN_TLS_OUTPUT_CAP - t->out_tail;
  if (room == 0)
    return MBEDTLS_ERR_SSL_WANT_WRITE;
  if (len > room)
    len = room;
  memcpy(t->out + t->out_tail, buf, len);
  t->out_tail += len;
  t->sent_any = 1;
  return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
  tn_tls *t = ctx;
  size_t avail = t->in_tail - t->in_head;
  if (avail == 0)
    return t->eof ? 0 : MBEDTLS_ERR_SSL_WANT_READ;
  if (len > avail)
    len = avail;
  memcpy(buf, t->in + t->in_head, len);
  t->in_head += len;
  if (t->in_head == t->in_tail)
    t->in_head = t->in_tail = 0;
  return (int)len;
}

/* ---- verification ---- */

static int crt_has_ip(const mbedtls_x509_crt *crt, const unsigned char *ip, size_t ip_len)
{
  for (const mbedtls_x509_sequence *cur = &crt->subject_alt_names; cur != NULL; cur = cur->next) {
    if (cur->buf.p == NULL)
      continue;
    if ((cur->buf.tag & MBEDTLS_ASN1_TAG_VALUE_MASK) == MBEDTLS_X509_SAN_IP_ADDRESS &&
        cur->buf.len == ip_len && memcmp(cur->buf.p, ip, ip_len) == 0)
      return 1;
  }
  return 0;
}

static void identity_from_crt(const mbedtls_x509_crt *crt, struct tn_tls_peer *peer);
static int identity_check_crt(const mbedtls_x509_crt *crt, char *why, size_t why_len);

/* What one verification needs besides the certificate: the config, the dialled address, and where to say why. */
struct verify_ctx {
  const tn_tls_config *cfg;
  int name_is_ip;
  const unsigned char *ip;
  size_t ip_len;
  char *why;          /* the first specific reason */
  size_t why_len;
  uint32_t *why_flags; /* the verify flags that reason explains */
  char *leaf;         /* the leaf as messages show it */
  size_t leaf_len;
};

static void verify_why(struct verify_ctx *v, uint32_t flags, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void verify_why(struct verify_ctx *v, uint32_t flags, const char *fmt, ...)
{
  va_list ap;

  if (v->why[0] != '\0')
    return;
  *v->why_flags = flags;
  va_start(ap, fmt);
  tn_verrf(v->why, v->why_len, NULL, fmt, ap);
  va_end(ap);
}

static int ca_file_holds(const tn_tls_config *cfg, const mbedtls_x509_crt *crt)
{
  for (const mbedtls_x509_crt *c = &cfg->ca; c != NULL && c->raw.p != NULL; c = c->next)
    if (c->raw.len == crt->raw.len && memcmp(c->raw.p, crt->raw.p, c->raw.len) == 0)
      return 1;
  return 0;
}

/*
 * Called by mbedTLS for every certificate of the chain it built, root first. Above the leaf,
 * every certificate must come from the CA file: mbedTLS would also take intermediates the peer
 * sent, and a peer's own word adds no trust (a leaf wrongly issued with CA:TRUE could otherwise
 * mint any identity). At the leaf: the role rule (crt_role_check: mbedTLS takes a certificate without
 * extended key usage for any role and checks a server name against the CN when there is no
 * subjectAltName), iPAddress SANs (2.28's hostname check ignores them), never a CA, the identity rule
 * for clients, and the deny hook.
 */
static int verify_leaf(struct verify_ctx *v, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
  const tn_tls_config *cfg = v->cfg;
  const char *who = cfg->role == TN_TLS_SERVER ? "client" : "server";

  if (depth != 0) {
    /* A chain mbedTLS already found untrusted is an unknown CA; this rule is about chains it would accept. */
    if (!(*flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) && !ca_file_holds(cfg, crt)) {
      *flags |= MBEDTLS_X509_BADCERT_NOT_TRUSTED;
      verify_why(v, MBEDTLS_X509_BADCERT_NOT_TRUSTED, "it is issued by an intermediate that is not in the CA file (certificates the peer sends add no "
                    "trust)");
    }
    return 0;
  }
  struct tn_tls_peer id;
  char name_why[160];
  int name_ok = identity_check_crt(crt, name_why, sizeof name_why) == TN_OK;
  identity_from_crt(crt, &id);
  /* A name the rule refuses is not shown at all: a cleaned-up copy would be a name the certificate does not have. */
  if (id.cn[0] != '\0' && (name_ok || cfg->role == TN_TLS_CLIENT))
    snprintf(v->leaf, v->leaf_len, "CN \"%s\", sha256 %s", id.cn, id.sha256_hex);
  else
    snprintf(v->leaf, v->leaf_len, "sha256 %s", id.sha256_hex);
  char role_why[200];
  uint32_t role_flag = 0;
  if (crt_role_check(crt, cfg->role == TN_TLS_SERVER ? TN_TLS_CLIENT : TN_TLS_SERVER, role_why, sizeof role_why,
                     &role_flag) != TN_OK) {
    *flags |= role_flag;
    verify_why(v, role_flag, "%s", role_why);
  }
  if (v->name_is_ip && !crt_has_ip(crt, v->ip, v->ip_len))
    *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
  if (crt->MBEDTLS_PRIVATE(ca_istrue)) {
    *flags |= MBEDTLS_X509_BADCERT_OTHER;
    verify_why(v, MBEDTLS_X509_BADCERT_OTHER, "it is a CA certificate (basicConstraints CA:TRUE), never a %s", who);
  }
  if (cfg->role == TN_TLS_SERVER && !name_ok) {
    *flags |= MBEDTLS_X509_BADCERT_OTHER;
    verify_why(v, MBEDTLS_X509_BADCERT_OTHER, "%s", name_why);
  }
  if (*flags & MBEDTLS_X509_BADCERT_REVOKED)
    verify_why(v, MBEDTLS_X509_BADCERT_REVOKED, "revoked by a CRL in CrlFile");
  if (cfg->peer_check != NULL) {
    char w[160] = "";
    if (cfg->peer_check(cfg->peer_check_ctx, &id, w, sizeof w) != 0) {
      *flags |= MBEDTLS_X509_BADCERT_REVOKED;
      verify_why(v, MBEDTLS_X509_BADCERT_REVOKED, "%s", w[0] != '\0' ? w : "revoked");
    }
  }
  return 0;
}

static int verify_cb_recheck(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
  return verify_leaf(ctx, crt, depth, flags);
}

static int verify_cb(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
  tn_tls *t = ctx;
  struct verify_ctx v = { t->cfg, t->name_is_ip, t->ip, t->ip_len, t->why, sizeof t->why, &t->why_flags, t->leaf,
                          sizeof t->leaf };
  return verify_leaf(&v, crt, depth, flags);
}

static const char *alert_text(unsigned code)
{
  switch (code) {
  case 0: return "close_notify";
  case 10: return "unexpected message";
  case 20: return "bad record MAC";
  case 22: return "record overflow";
  case 40: return "handshake failure (no common parameters)";
  case 42: return "bad certificate";
  case 43: return "unsupported certificate (wrong key usage or name)";
  case 44: return "certificate revoked";
  case 45: return "certificate expired";
  case 46: return "certificate unknown";
  case 47: return "illegal parameter";
  case 48: return "unknown CA";
  case 49: return "access denied (name mismatch or not allowed)";
  case 50: return "decode error";
  case 51: return "decrypt error";
  case 70: return "protocol version (TLS 1.2 or later required)";
  case 71: return "insufficient security";
  case 80: return "internal error";
  case 90: return "user canceled";
  case 100: return "no renegotiation";
  case 110: return "unsupported extension";
  case 112: return "unrecognized name";
  default: return "unknown alert";
  }
}

#define append tn_errf_append

/* The verification flags in the order they are told, each with its words (or what it names beside them). */
enum flag_says { SAYS_TEXT, SAYS_NAME, SAYS_ROLE };
struct flag_text {
  uint32_t mask;
  enum flag_says says;
  const char *text;
};
static const struct flag_text flag_texts[] = {
  { MBEDTLS_X509_BADCERT_NOT_TRUSTED, SAYS_TEXT, "unknown CA (not signed by a trusted CA)" },
  { MBEDTLS_X509_BADCERT_EXPIRED, SAYS_TEXT, "certificate expired" },
  { MBEDTLS_X509_BADCERT_FUTURE, SAYS_TEXT, "certificate not yet valid" },
  { MBEDTLS_X509_BADCERT_REVOKED, SAYS_TEXT, "certificate revoked" },
  { MBEDTLS_X509_BADCERT_CN_MISMATCH, SAYS_NAME, NULL },
  { MBEDTLS_X509_BADCERT_EXT_KEY_USAGE | MBEDTLS_X509_BADCERT_NS_CERT_TYPE, SAYS_ROLE, NULL },
  { MBEDTLS_X509_BADCERT_KEY_USAGE, SAYS_TEXT, "key usage does not allow TLS signatures" },
  { MBEDTLS_X509_BADCERT_BAD_MD | MBEDTLS_X509_BADCERT_BAD_PK | MBEDTLS_X509_BADCERT_BAD_KEY, SAYS_TEXT,
    "weak or unsupported signature or key" },
  { MBEDTLS_X509_BADCRL_EXPIRED, SAYS_TEXT, "the CRL for its CA in CrlFile is past its nextUpdate (make a new one)" },
  { MBEDTLS_X509_BADCRL_NOT_TRUSTED | MBEDTLS_X509_BADCRL_FUTURE | MBEDTLS_X509_BADCRL_BAD_MD |
      MBEDTLS_X509_BADCRL_BAD_PK | MBEDTLS_X509_BADCRL_BAD_KEY,
    SAYS_TEXT, "a CRL in CrlFile is not usable (signature or date)" },
};

/*
 * Verification flags in words: "client certificate rejected: <reasons>; CN "x", sha256 ...".
 * A specific reason (why) comes first; the leaf, when known, last, so a log line says which certificate.
 */
static void describe_flags(char *out, size_t cap, enum tn_tls_role role, uint32_t flags, int name_is_ip,
                           const char *name, const char *why, uint32_t why_flags, const char *leaf)
{
  const char *who = role == TN_TLS_SERVER ? "client" : "server";
  size_t at = append(out, cap, 0, "%s certificate rejected: ", who);
  const char *sep = "";
  if (flags & MBEDTLS_X509_BADCERT_MISSING) {
    append(out, cap, 0, "no %s certificate", who);
    return;
  }
  if (why != NULL && why[0] != '\0') {
    at = append(out, cap, at, "%s", why);
    sep = ", ";
    /* The reason already says it; the flag's generic words would only repeat it. */
    flags &= ~why_flags;
  }
  for (size_t i = 0; i < sizeof(flag_texts) / sizeof(flag_texts[0]); i++) {
    const struct flag_text *f = &flag_texts[i];

    if (!(flags & f->mask))
      continue;
    if (f->says == SAYS_NAME)
      at = append(out, cap, at, "%s%s mismatch (certificate is not for %s)", sep,
                  name_is_ip ? "IP address" : "hostname", name);
    else if (f->says == SAYS_ROLE)
      at = append(out, cap, at, "%scertificate not for %s use (extended key usage)", sep, who);
    else
      at = append(out, cap, at, "%s%s", sep, f->text);
    sep = ", ";
  }
  if (*sep == '\0')
    at = append(out, cap, at, "verification failed");
  if (leaf != NULL && leaf[0] != '\0')
    append(out, cap, at, "; %s", leaf);
}

/* Turns an mbedTLS failure into words; during the handshake, verify flags say the most. */
/*
 * A TLS 1.3 client finishes its handshake before the server has judged the client's certificate: a failure
 * before any application data is the server's refusal arriving late.
 */
static int tls13_client_before_data(const tn_tls *t)
{
  return t->cfg->role == TN_TLS_CLIENT && !t->got_data && strcmp(mbedtls_ssl_get_version(&t->ssl), "TLSv1.3") == 0;
}

static void describe_fatal_alert(tn_tls *t, int in_handshake)
{
  unsigned code = t->ssl.MBEDTLS_PRIVATE(in_msg) != NULL ? t->ssl.MBEDTLS_PRIVATE(in_msg)[1] : 255;
  int refusal = in_handshake || tls13_client_before_data(t);

  snprintf(t->err, sizeof t->err, "peer %s: %s (alert %u)", refusal ? "rejected the handshake" : "sent a fatal alert",
           alert_text(code), code);
}

static void describe_bad_mac(tn_tls *t, int in_handshake)
{
  /*
   * A TLS 1.3 client that refuses the server's certificate sends its alert before it has
   * keys, in the clear, where the server expects a protected record: show it as the alert.
   */
  const unsigned char *h = t->ssl.MBEDTLS_PRIVATE(in_hdr);
  if (in_handshake && h != NULL && h[0] == MBEDTLS_SSL_MSG_ALERT && h[3] == 0 && h[4] == 2 && h[5] == 2) {
    snprintf(t->err, sizeof t->err, "peer rejected the handshake: %s (alert %u)", alert_text(h[6]), h[6]);
    return;
  }
  /*
   * The other way round: an mbedTLS 3.6 server refuses a TLS 1.3 client's certificate
   * with an alert under its handshake keys, after this client has moved on to the
   * application keys, so the alert cannot be read. Nothing else arrives that early.
   */
  if (!in_handshake && tls13_client_before_data(t)) {
    snprintf(t->err, sizeof t->err, "peer rejected the handshake (TLS 1.3: its alert is unreadable here; the "
                                    "server's log says why)");
    return;
  }
  snprintf(t->err, sizeof t->err, "malformed record: authentication failed (bad MAC)");
}

static void describe_no_suite(tn_tls *t)
{
  /* mbedTLS will not offer a suite with a certificate whose usage forbids it (by its own judgement). */
  const char *oid = t->cfg->role == TN_TLS_SERVER ? MBEDTLS_OID_SERVER_AUTH : MBEDTLS_OID_CLIENT_AUTH;
  if (mbedtls_x509_crt_check_extended_key_usage(&t->cfg->own, oid, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) != 0) {
    snprintf(t->err, sizeof t->err, "own certificate is not for %s use (extended key usage); no usable certificate",
             t->cfg->role == TN_TLS_SERVER ? "server" : "client");
    return;
  }
  snprintf(t->err, sizeof t->err, "no shared cipher suite (ECDHE with CHACHA20-POLY1305 or AES-GCM required)");
}

/* Anything without a case of its own: the verification flags if the handshake set any, else mbedTLS's text. */
static void describe_other(tn_tls *t, int ret, uint32_t flags, int in_handshake)
{
  char m[128];

  if (flags != 0 && flags != MBEDTLS_X509_BADCERT_SKIP_VERIFY && in_handshake) {
    describe_flags(t->err, sizeof t->err, t->cfg->role, flags, t->name_is_ip, t->name, t->why, t->why_flags, t->leaf);
    return;
  }
  mbed_text(ret, m, sizeof m);
  /* mbedTLS's texts start with the module ("SSL - "); the rest reads as a reason. */
  const char *reason = strncmp(m, "SSL - ", 6) == 0 ? m + 6 : m;
  snprintf(t->err, sizeof t->err, "%s: %s", in_handshake ? "handshake failed" : "connection failed", reason);
}

static void describe_failure(tn_tls *t, int ret, int in_handshake)
{
  uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
  if (flags == (uint32_t)-1)
    flags = 0;
  const char *who = t->cfg->role == TN_TLS_SERVER ? "client" : "server";
  switch (ret) {
  case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
    snprintf(t->err, sizeof t->err, "no client certificate");
    return;
  case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  case MBEDTLS_ERR_SSL_BAD_CERTIFICATE:
#else
  case MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE:
  case MBEDTLS_ERR_SSL_PEER_VERIFY_FAILED:
#endif
    if (flags != 0) {
      describe_flags(t->err, sizeof t->err, t->cfg->role, flags, t->name_is_ip, t->name, t->why, t->why_flags, t->leaf);
      return;
    }
    snprintf(t->err, sizeof t->err, "%s certificate rejected: malformed certificate message", who);
    return;
  case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
    describe_fatal_alert(t, in_handshake);
    return;
  case MBEDTLS_ERR_SSL_CONN_EOF:
  case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
    snprintf(t->err, sizeof t->err, in_handshake ? "peer closed during handshake"
                                                 : "peer closed the connection without close_notify (truncated)");
    return;
#if MBEDTLS_VERSION_NUMBER < 0x03000000
  case MBEDTLS_ERR_SSL_INVALID_RECORD:
    snprintf(t->err, sizeof t->err, "malformed record");
    return;
#endif
  case MBEDTLS_ERR_SSL_INVALID_MAC:
    describe_bad_mac(t, in_handshake);
    return;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  case MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION:
#else
  case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
#endif
    snprintf(t->err, sizeof t->err, "protocol version not supported (TLS 1.2 or later required)");
    return;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  case MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE: /* 3.0 folded the no-suite codes into it */
#else
  case MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN:
  case MBEDTLS_ERR_SSL_NO_USABLE_CIPHERSUITE:
#endif
    describe_no_suite(t);
    return;
#if MBEDTLS_VERSION_NUMBER < 0x03000000
  case MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO:
#else
  case MBEDTLS_ERR_SSL_DECODE_ERROR:
    if (!in_handshake)
      break;
    /* fall through */
  case MBEDTLS_ERR_SSL_INVALID_RECORD:
    /* 3.x calls a server's first bytes that are not TLS an invalid record. */
    if (ret == MBEDTLS_ERR_SSL_INVALID_RECORD && (!in_handshake || t->cfg->role != TN_TLS_SERVER || t->answered)) {
      snprintf(t->err, sizeof t->err, "malformed record");
      return;
    }
#endif
    snprintf(t->err, sizeof t->err, "malformed record: not a TLS ClientHello");
    return;
  case MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE:
    snprintf(t->err, sizeof t->err, "unexpected message from peer");
    return;
  case MBEDTLS_ERR_SSL_ALLOC_FAILED:
    snprintf(t->err, sizeof t->err, "out of memory");
    return;
  default:
    break;
  }
  describe_other(t, ret, flags, in_handshake);
}

/* ---- connection ---- */

int tn_tls_new(tn_tls **out, tn_tls_config *cfg, const char *server_name)
{
  if (out == NULL || cfg == NULL)
    return TN_ERR_ARG;
  *out = NULL;
  if (cfg->role == TN_TLS_CLIENT && (server_name == NULL || server_name[0] == '\0'))
    return TN_ERR_ARG;
  if (cfg->role == TN_TLS_SERVER && server_name != NULL)
    return TN_ERR_ARG;
  if (server_name != NULL && strlen(server_name) >= sizeof((tn_tls *)0)->name)
    return TN_ERR_ARG;

  tn_tls *t = malloc(sizeof *t);
  if (t == NULL)
    return TN_ERR_NOMEM;
  /* The two big buffers need no clearing; only the header does. */
  memset(t, 0, offsetof(struct tn_tls, in));
  t->cfg = cfg;
  t->state = TLS_HANDSHAKE;
  mbedtls_ssl_init(&t->ssl);
  if (mbedtls_ssl_setup(&t->ssl, &cfg->conf) != 0) {
    mbedtls_ssl_free(&t->ssl);
    free(t);
    return TN_ERR_NOMEM;
  }
  if (server_name != NULL) {
    snprintf(t->name, sizeof t->name, "%s", server_name);
    /* "[::1]" is how people write an IPv6 host; the brackets are not part of the address. */
    char bare[sizeof t->name];
    size_t n = strlen(server_name);
    if (n >= 2 && server_name[0] == '[' && server_name[n - 1] == ']') {
      memcpy(bare, server_name + 1, n - 2);
      bare[n - 2] = '\0';
    } else {
      memcpy(bare, server_name, n + 1);
    }
    if (inet_pton(AF_INET, bare, t->ip) == 1) {
      t->name_is_ip = 1;
      t->ip_len = 4;
    } else if (inet_pton(AF_INET6, bare, t->ip) == 1) {
      t->name_is_ip = 1;
      t->ip_len = 16;
    } else if (mbedtls_ssl_set_hostname(&t->ssl, server_name) != 0) {
      /* An IP literal gets neither SNI (RFC 6066 forbids it) nor mbedTLS's DNS-only name check. */
      mbedtls_ssl_free(&t->ssl);
      free(t);
      return TN_ERR_ARG;
    }
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    /* 3.6 refuses to verify a server without a name unless told that the name check is done elsewhere (here). */
    if (t->name_is_ip && mbedtls_ssl_set_hostname(&t->ssl, NULL) != 0) {
      mbedtls_ssl_free(&t->ssl);
      free(t);
      return TN_ERR_ARG;
    }
#endif
  }
  mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
  mbedtls_ssl_set_verify(&t->ssl, verify_cb, t);
  tn_tls_config_ref(cfg);
  *out = t;
  return TN_OK;
}

void tn_tls_del(tn_tls *t)
{
  if (t == NULL)
    return;
  mbedtls_ssl_free(&t->ssl);
  tn_tls_config_unref(t->cfg);
  free(t);
}

size_t tn_tls_feed(tn_tls *t, const uint8_t *in, size_t len)
{
  if (t == NULL || in == NULL || t->eof || t->state == TLS_FAILED)
    return 0;
  size_t used = t->in_tail - t->in_head;
  if (TN_TLS_INPUT_CAP - t->in_tail < len && t->in_head > 0) {
    memmove(t->in, t->in + t->in_head, used);
    t->in_head = 0;
    t->in_tail = used;
  }
  size_t room = TN_TLS_INPUT_CAP - t->in_tail;
  if (len > room)
    len = room;
  memcpy(t->in + t->in_tail, in, len);
  t->in_tail += len;
  return len;
}

void tn_tls_eof(tn_tls *t)
{
  if (t != NULL)
    t->eof = 1;
}

int tn_tls_handshake(tn_tls *t)
{
  if (t == NULL)
    return TN_ERR_ARG;
  if (t->state == TLS_OPEN)
    return TN_OK;
  if (t->state == TLS_FAILED)
    return TN_ERR_TLS;
  t->answered = t->sent_any;
  int ret = mbedtls_ssl_handshake(&t->ssl);
  if (ret == 0) {
    int exp = mbedtls_ssl_get_record_expansion(&t->ssl);
    t->expansion = exp > 0 ? (size_t)exp : 256;
    t->state = TLS_OPEN;
    return TN_OK;
  }
  if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
    return TN_ERR_NEED_MORE;
  describe_failure(t, ret, 1);
  t->state = TLS_FAILED;
  return TN_ERR_TLS;
}

int tn_tls_is_established(const tn_tls *t)
{
  return t != NULL && t->state == TLS_OPEN;
}

long tn_tls_read(tn_tls *t, uint8_t *out, size_t cap)
{
  if (t == NULL || (out == NULL && cap > 0))
    return TN_ERR_ARG;
  if (t->state == TLS_FAILED)
    return TN_ERR_TLS_FATAL;
  if (t->state != TLS_OPEN)
    return TN_ERR_ARG;
  if (t->peer_closed)
    return 0;
  if (cap == 0)
    return TN_ERR_NEED_MORE;
  int ret = mbedtls_ssl_read(&t->ssl, out, cap);
#if defined(MBEDTLS_SSL_PROTO_TLS1_3) && defined(MBEDTLS_SSL_SESSION_TICKETS)
  /* A TLS 1.3 server may send session tickets after the handshake; they carry no data and resume nothing here. */
  while (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
    ret = mbedtls_ssl_read(&t->ssl, out, cap);
#endif
  if (ret > 0) {
    t->got_data = 1;
    return ret;
  }
  if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
    t->peer_closed = 1;
    return 0;
  }
  if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
    return TN_ERR_NEED_MORE;
  /* mbedTLS reports transport EOF from ssl_read as 0, which is not a clean close here. */
  if (ret == 0)
    ret = MBEDTLS_ERR_SSL_CONN_EOF;
  describe_failure(t, ret, 0);
  t->state = TLS_FAILED;
  return TN_ERR_TLS_FATAL;
}

long tn_tls_write(tn_tls *t, const uint8_t *in, size_t len)
{
  if (t == NULL || (in == NULL && len > 0))
    return TN_ERR_ARG;
  if (t->state == TLS_FAILED)
    return TN_ERR_TLS_FATAL;
  if (t->state != TLS_OPEN || t->sent_close)
    return TN_ERR_ARG;
  int maxp = mbedtls_ssl_get_max_out_record_payload(&t->ssl);
  size_t max_chunk = maxp > 0 && (size_t)maxp < TN_TLS_MAX_RECORD_PLAINTEXT ? (size_t)maxp : TN_TLS_MAX_RECORD_PLAINTEXT;
  size_t done = 0;
  while (done < len) {
    size_t chunk = len - done < max_chunk ? len - done : max_chunk;
    /*
     * Only start a record that fits whole: mbedTLS wants a partly sent record retried
     * with the same arguments, which a caller of a bounded queue cannot promise.
     */
    if (TN_TLS_OUTPUT_CAP - t->out_tail < chunk + t->expansion)
      break;
    int ret = mbedtls_ssl_write(&t->ssl, in + done, chunk);
    if (ret < 0) {
      describe_failure(t, ret, 0);
      t->state = TLS_FAILED;
      return TN_ERR_TLS_FATAL;
    }
    done += (size_t)ret;
  }
  return (long)done;
}

size_t tn_tls_pending(tn_tls *t, const uint8_t **out)
{
  if (t == NULL) {
    if (out != NULL)
      *out = NULL;
    return 0;
  }
  if (out != NULL)
    *out = t->out + t->out_head;
  return t->out_tail - t->out_head;
}

void tn_tls_consumed(tn_tls *t, size_t n)
{
  if (t == NULL)
    return;
  size_t used = t->out_tail - t->out_head;
  if (n > used)
    n = used;
  t->out_head += n;
  if (t->out_head == t->out_tail) {
    t->out_head = t->out_tail = 0;
  } else if (t->out_head >= TN_TLS_OUTPUT_CAP / 2) {
    /* Keep room for whole records at the end; the caller re-reads tn_tls_pending after this. */
    memmove(t->out, t->out + t->out_head, t->out_tail - t->out_head);
    t->out_tail -= t->out_head;
    t->out_head = 0;
  }
}

int tn_tls_close_notify(tn_tls *t)
{
  if (t == NULL)
    return TN_ERR_ARG;
  if (t->sent_close)
    return TN_OK;
  if (t->state != TLS_OPEN) {
    t->sent_close = 1;
    return TN_OK;
  }
  if (TN_TLS_OUTPUT_CAP - t->out_tail < 64 + t->expansion)
    return TN_ERR_NO_SPACE;
  int ret = mbedtls_ssl_close_notify(&t->ssl);
  t->sent_close = 1;
  if (ret != 0 && ret != MBEDTLS_ERR_SSL_WANT_WRITE) {
    describe_failure(t, ret, 0);
    t->state = TLS_FAILED;
    return TN_ERR_TLS_FATAL;
  }
  return TN_OK;
}

int tn_tls_peer_closed(const tn_tls *t)
{
  return t != NULL && t->peer_closed;
}

const char *tn_tls_error_text(const tn_tls *t)
{
  return t != NULL ? t->err : "";
}

const char *tn_tls_ciphersuite(const tn_tls *t)
{
  if (t == NULL || t->state != TLS_OPEN)
    return "";
  const char *s = mbedtls_ssl_get_ciphersuite(&t->ssl);
  return s != NULL ? s : "";
}

int tn_tls_has_tls13(void)
{
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
  return 1;
#else
  return 0;
#endif
}

const char *tn_tls_alpn(const tn_tls *t)
{
#if defined(MBEDTLS_SSL_ALPN)
  if (t != NULL && t->state == TLS_OPEN) {
    const char *s = mbedtls_ssl_get_alpn_protocol(&t->ssl);
    return s != NULL ? s : "";
  }
#else
  (void)t;
#endif
  return "";
}

const char *tn_tls_version(const tn_tls *t)
{
  if (t == NULL || t->state != TLS_OPEN)
    return "";
  const char *s = mbedtls_ssl_get_version(&t->ssl);
  return s != NULL ? s : "";
}

/* ---- identity ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's civil algorithm). */
static int64_t days_from_civil(int y, int m, int d)
{
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int64_t x509_time_to_unix(const mbedtls_x509_time *tm)
{
  return days_from_civil(tm->year, tm->mon, tm->day) * 86400 + tm->hour * 3600 + tm->min * 60 + tm->sec;
}

static int is_hex(unsigned char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static const char *asn1_string_name(int tag)
{
  switch (tag) {
  case MBEDTLS_ASN1_T61_STRING: return "a T61String";
  case MBEDTLS_ASN1_BMP_STRING: return "a BMPString";
  case MBEDTLS_ASN1_UNIVERSAL_STRING: return "a UniversalString";
  default: return "an unusual string type";
  }
}

int tn_tls_cn_check(const uint8_t *value, size_t len, int asn1_tag, char *why, size_t why_len)
{
  int ascii_only = asn1_tag == MBEDTLS_ASN1_PRINTABLE_STRING || asn1_tag == MBEDTLS_ASN1_IA5_STRING;

  if (value == NULL && len > 0)
    return TN_ERR_ARG;
  /* Other string types would need converting to UTF-8 first: refused rather than normalised. */
  if (asn1_tag != MBEDTLS_ASN1_UTF8_STRING && !ascii_only) {
    tn_errf(why, why_len, "CN is %s (tag %d), not UTF8String, PrintableString or IA5String", asn1_string_name(asn1_tag),
            asn1_tag);
    return TN_ERR_INVALID;
  }
  if (len == 0) {
    tn_errf(why, why_len, "CN is empty");
    return TN_ERR_INVALID;
  }
  if (len > TN_TLS_CN_MAX - 1) {
    tn_errf(why, why_len, "CN is %zu bytes, longer than the identity limit of %u bytes", len, TN_TLS_CN_MAX - 1);
    return TN_ERR_INVALID;
  }
  size_t hex = 0;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    size_t n = tn_utf8_decode(value + i, len - i, &cp);
    if (n == 0 || (ascii_only && cp > 0x7f)) {
      tn_errf(why, why_len, "CN is not valid %s (byte 0x%02x at offset %zu)", ascii_only ? "ASCII" : "UTF-8",
              value[i], i);
      return TN_ERR_INVALID;
    }
    if (tn_utf8_is_control(cp)) {
      tn_errf(why, why_len, "CN holds a control character (U+%04X at offset %zu)", (unsigned)cp, i);
      return TN_ERR_INVALID;
    }
    /* Bidi overrides, zero-width and space-like characters make one name pass for another on screen. */
    if (tn_utf8_is_invisible(cp)) {
      tn_errf(why, why_len, "CN holds an invisible or bidi character (U+%04X at offset %zu)", (unsigned)cp, i);
      return TN_ERR_INVALID;
    }
    hex += n == 1 && is_hex(value[i]);
    i += n;
  }
  if (len == 64 && hex == 64) {
    tn_errf(why, why_len, "CN is 64 hex digits, the form that names a certificate by its fingerprint");
    return TN_ERR_INVALID;
  }
  return TN_OK;
}

/* The identity rule on a parsed certificate: one CN attribute, and a value tn_tls_cn_check accepts. */
static int identity_check_crt(const mbedtls_x509_crt *crt, char *why, size_t why_len)
{
  const mbedtls_x509_name *cn = NULL;
  unsigned count = 0;

  /* Multi-valued RDNs ("CN=a+CN=b") are flattened into this list too, so each CN counts. */
  for (const mbedtls_x509_name *n = &crt->subject; n != NULL; n = n->next) {
    if (n->oid.p != NULL && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
      count++;
      if (cn == NULL)
        cn = n;
    }
  }
  if (count == 0) {
    tn_errf(why, why_len, "certificate has no CN (its CN is the identity)");
    return TN_ERR_INVALID;
  }
  if (count > 1) {
    tn_errf(why, why_len, "certificate has %u CN attributes (one certificate names one identity)", count);
    return TN_ERR_INVALID;
  }
  return tn_tls_cn_check(cn->val.p, cn->val.len, cn->val.tag, why, why_len);
}

int tn_tls_identity_check_der(const uint8_t *der, size_t len, char *why, size_t why_len)
{
  mbedtls_x509_crt crt;
  int rc;

  if (der == NULL)
    return TN_ERR_ARG;
  mbedtls_x509_crt_init(&crt);
  if (mbedtls_x509_crt_parse_der(&crt, der, len) != 0) {
    tn_errf(why, why_len, "not a DER certificate");
    rc = TN_ERR_INVALID;
  } else {
    rc = identity_check_crt(&crt, why, why_len);
  }
  mbedtls_x509_crt_free(&crt);
  return rc;
}

int tn_tls_config_identity_check(const tn_tls_config *cfg, char *why, size_t why_len)
{
  if (cfg == NULL)
    return TN_ERR_ARG;
  return identity_check_crt(&cfg->own, why, why_len);
}

int tn_tls_fingerprint_is_canonical(const char *s)
{
  size_t n = 0;

  if (s == NULL)
    return 0;
  for (; s[n] != '\0'; n++)
    if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')) || n == 64)
      return 0;
  return n == 64;
}

static void identity_from_crt(const mbedtls_x509_crt *crt, struct tn_tls_peer *peer)
{
  memset(peer, 0, sizeof *peer);
  for (const mbedtls_x509_name *n = &crt->subject; n != NULL; n = n->next) {
    if (n->oid.p != NULL && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
      /* Only for display: a client whose name needs escaping was refused at the handshake. */
      if (tn_tls_cn_check(n->val.p, n->val.len, n->val.tag, NULL, 0) == TN_OK) {
        memcpy(peer->cn, n->val.p, n->val.len);
        peer->cn[n->val.len] = '\0';
      } else {
        tn_utf8_escape((const char *)n->val.p, n->val.len, peer->cn, sizeof peer->cn);
      }
      break;
    }
  }
  unsigned char digest[32];
  tls_sha256(crt->raw.p, crt->raw.len, digest, 0);
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < 32; i++) {
    peer->sha256_hex[2 * i] = hex[digest[i] >> 4];
    peer->sha256_hex[2 * i + 1] = hex[digest[i] & 15];
  }
  peer->sha256_hex[64] = '\0';

  size_t at = 0;
  for (const mbedtls_x509_sequence *cur = &crt->subject_alt_names; cur != NULL; cur = cur->next) {
    if (cur->buf.p == NULL)
      continue;
    char item[4 + 4 * 255 + 1];
    unsigned type = cur->buf.tag & MBEDTLS_ASN1_TAG_VALUE_MASK;
    if (type == MBEDTLS_X509_SAN_DNS_NAME) {
      size_t len = cur->buf.len < 255 ? cur->buf.len : 255;
      memcpy(item, "DNS:", 4);
      tn_utf8_escape((const char *)cur->buf.p, len, item + 4, sizeof item - 4);
      for (char *p = item; *p; p++)
        if (*p == ',')
          *p = '?';
    } else if (type == MBEDTLS_X509_SAN_IP_ADDRESS && (cur->buf.len == 4 || cur->buf.len == 16)) {
      char addr[INET6_ADDRSTRLEN];
      inet_ntop(cur->buf.len == 4 ? AF_INET : AF_INET6, cur->buf.p, addr, sizeof addr);
      snprintf(item, sizeof item, "IP:%s", addr);
    } else {
      continue;
    }
    size_t need = strlen(item) + (at ? 1 : 0);
    if (at + need + 4 >= sizeof peer->sans) {
      snprintf(peer->sans + at, sizeof peer->sans - at, "%s", at ? ",..." : "...");
      break;
    }
    at += (size_t)snprintf(peer->sans + at, sizeof peer->sans - at, "%s%s", at ? "," : "", item);
  }
  peer->not_before = x509_time_to_unix(&crt->valid_from);
  peer->not_after = x509_time_to_unix(&crt->valid_to);
}

int tn_tls_peer_identity(const tn_tls *t, struct tn_tls_peer *peer)
{
  if (t == NULL || peer == NULL || t->state != TLS_OPEN)
    return TN_ERR_ARG;
  const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&t->ssl);
  if (crt == NULL)
    return TN_ERR_ARG;
  identity_from_crt(crt, peer);
  return TN_OK;
}

int tn_tls_identity_from_der(const uint8_t *der, size_t len, struct tn_tls_peer *peer)
{
  if (der == NULL || peer == NULL)
    return TN_ERR_ARG;
  mbedtls_x509_crt crt;
  mbedtls_x509_crt_init(&crt);
  if (mbedtls_x509_crt_parse_der(&crt, der, len) != 0) {
    mbedtls_x509_crt_free(&crt);
    return TN_ERR_INVALID;
  }
  identity_from_crt(&crt, peer);
  mbedtls_x509_crt_free(&crt);
  return TN_OK;
}

int tn_tls_fingerprint_parse(const char *text, char out[65])
{
  if (text == NULL || out == NULL)
    return TN_ERR_ARG;
  const char *eq = strchr(text, '=');
  if (eq != NULL)
    text = eq + 1;
  size_t n = 0;
  for (const char *p = text; *p; p++) {
    char c = *p;
    if (c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r')
      continue;
    if (c >= 'A' && c <= 'F')
      c = (char)(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) || n == 64)
      return TN_ERR_INVALID;
    out[n++] = c;
  }
  if (n != 64)
    return TN_ERR_INVALID;
  out[64] = '\0';
  return TN_OK;
}

int tn_tls_recheck(const tn_tls *t, const tn_tls_config *cfg, char *why, size_t why_len)
{
  if (t == NULL || cfg == NULL || t->state != TLS_OPEN || cfg->role != t->cfg->role)
    return TN_ERR_ARG;
  const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&t->ssl);
  if (peer == NULL)
    return TN_ERR_ARG;
  /* The leaf alone, as at a handshake: whatever chain the peer sent then adds nothing now either. */
  mbedtls_x509_crt leaf;
  mbedtls_x509_crt_init(&leaf);
  if (mbedtls_x509_crt_parse_der(&leaf, peer->raw.p, peer->raw.len) != 0) {
    mbedtls_x509_crt_free(&leaf);
    return TN_ERR_NOMEM;
  }
  char reason[256] = "", desc[192] = "";
  uint32_t reason_flags = 0;
  struct verify_ctx v = { cfg, t->name_is_ip, t->ip, t->ip_len, reason, sizeof reason, &reason_flags, desc,
                          sizeof desc };
  uint32_t flags = 0;
  const char *name = cfg->role == TN_TLS_CLIENT && !t->name_is_ip ? t->name : NULL;
  /* mbedTLS 2.28 takes the trust anchors and CRLs as non-const; it only reads them. */
  int ret = mbedtls_x509_crt_verify_with_profile(&leaf, (mbedtls_x509_crt *)&cfg->ca,
                                                 cfg->has_crl ? (mbedtls_x509_crl *)&cfg->crl : NULL,
                                                 cfg->conf.MBEDTLS_PRIVATE(cert_profile), name, &flags,
                                                 verify_cb_recheck, &v);
  mbedtls_x509_crt_free(&leaf);
  if (ret == 0 && flags == 0)
    return TN_OK;
  describe_flags(why, why_len, cfg->role, flags, t->name_is_ip, t->name, reason, reason_flags, desc);
  return TN_ERR_INVALID;
}

int tn_tls_config_identity(const tn_tls_config *cfg, struct tn_tls_peer *own)
{
  if (cfg == NULL || own == NULL)
    return TN_ERR_ARG;
  identity_from_crt(&cfg->own, own);
  return TN_OK;
}
