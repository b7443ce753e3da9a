/* pki.c: the built-in CA: key generation, certificate writing and description with mbedTLS x509write. */
#include "tunnel/pki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#include <psa/crypto.h>
#endif

/* mbedTLS 3.x marks the certificate flags read here (CA, usages) private and has no accessor; 2.28 has no marking. */
#ifndef MBEDTLS_PRIVATE
#define MBEDTLS_PRIVATE(member) member
#endif

#include "tunnel/error.h"
#include "tunnel/file.h"
#include "tunnel/tls.h"

#define PKI_PEM_MAX 16384

void tn_pki_format_time(int64_t t, char out[21])
{
  time_t tt = (time_t)t;
  struct tm tm;
  if (gmtime_r(&tt, &tm) == NULL) {
    snprintf(out, 21, "invalid-time");
    return;
  }
  strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void tn_pki_request_init(struct tn_pki_request *req, const char *subject, enum tn_pki_usage usage, unsigned days)
{
  memset(req, 0, sizeof *req);
  req->subject = subject;
  req->usage = usage;
  req->key_type = TN_PKI_KEY_EC_P256;
  int64_t now = (int64_t)time(NULL);
  /* An hour back so a peer whose clock runs a little behind still accepts a fresh certificate. */
  req->not_before = now - 3600;
  req->not_after = now + (int64_t)days * 86400;
}

struct pki_rng {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
};

static int rng_init(struct pki_rng *r)
{
  static const unsigned char pers[] = "tunnel pki";
  mbedtls_entropy_init(&r->entropy);
  mbedtls_ctr_drbg_init(&r->drbg);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  /* 3.x's key and signature code may run on PSA crypto, which must be up first. */
  if (psa_crypto_init() != PSA_SUCCESS)
    return -1;
#endif
  return mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy, pers, sizeof pers - 1);
}

static void rng_free(struct pki_rng *r)
{
  mbedtls_ctr_drbg_free(&r->drbg);
  mbedtls_entropy_free(&r->entropy);
}

static int gen_key(mbedtls_pk_context *key, enum tn_pki_key_type type, struct pki_rng *r)
{
  if (type == TN_PKI_KEY_RSA_2048) {
    if (mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) != 0)
      return -1;
    return mbedtls_rsa_gen_key(mbedtls_pk_rsa(*key), mbedtls_ctr_drbg_random, &r->drbg, 2048, 65537);
  }
  if (mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0)
    return -1;
  return mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key), mbedtls_ctr_drbg_random, &r->drbg);
}

static int x509_time_string(int64_t t, char out[15])
{
  time_t tt = (time_t)t;
  struct tm tm;
  if (gmtime_r(&tt, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 1950)
    return -1;
  strftime(out, 15, "%Y%m%d%H%M%S", &tm);
  return 0;
}

/* subjectAltName value: GeneralNames (SEQUENCE OF GeneralName), written back to front as ASN.1 writers do. */
static int build_san(const struct tn_pki_request *req, unsigned char *buf, size_t cap, const unsigned char **der,
                     size_t *der_len, char *err, size_t err_len)
{
  unsigned char *p = buf + cap;
  size_t total = 0;
  int ret;
  for (size_t i = req->ip_count; i-- > 0;) {
    unsigned char ip[16];
    size_t ip_len;
    if (inet_pton(AF_INET, req->ips[i], ip) == 1) {
      ip_len = 4;
    } else if (inet_pton(AF_INET6, req->ips[i], ip) == 1) {
      ip_len = 16;
    } else {
      tn_errf(err, err_len, "--ip %s: not an IPv4 or IPv6 address", req->ips[i]);
      return TN_ERR_ARG;
    }
    ret = mbedtls_asn1_write_tagged_string(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_IP_ADDRESS,
                                           (const char *)ip, ip_len);
    if (ret < 0)
      goto too_long;
    total += (size_t)ret;
  }
  for (size_t i = req->dns_count; i-- > 0;) {
    const char *name = req->dns[i];
    size_t len = strlen(name);
    if (len == 0 || len > 253 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-*") != len) {
      tn_errf(err, err_len, "--dns %s: not a DNS name (letters, digits, '-', '.', a leading '*.' for wildcards)", name);
      return TN_ERR_ARG;
    }
    ret = mbedtls_asn1_write_tagged_string(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME,
                                           name, len);
    if (ret < 0)
      goto too_long;
    total += (size_t)ret;
  }
  if ((ret = mbedtls_asn1_write_len(&p, buf, total)) < 0)
    goto too_long;
  total += (size_t)ret;
  if ((ret = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) < 0)
    goto too_long;
  total += (size_t)ret;
  *der = p;
  *der_len = total;
  return TN_OK;
too_long:
  tn_errf(err, err_len, "too many or too long subject alternative names");
  return TN_ERR_ARG;
}

/* extKeyUsage value: SEQUENCE OF KeyPurposeId. mbedTLS 2.28 has no writer for it. */
static int build_eku(const char *oid, size_t oid_len, unsigned char *buf, size_t cap, const unsigned char **der,
                     size_t *der_len)
{
  unsigned char *p = buf + cap;
  int a = mbedtls_asn1_write_oid(&p, buf, oid, oid_len);
  if (a < 0)
    return a;
  int b = mbedtls_asn1_write_len(&p, buf, (size_t)a);
  if (b < 0)
    return b;
  int c = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
  if (c < 0)
    return c;
  *der = p;
  *der_len = (size_t)(a + b + c);
  return 0;
}

/* Creates path exclusively with mode, writes data, fsyncs. */
static int write_new_file(const char *path, const unsigned char *data, size_t len, mode_t mode, char *err,
                          size_t err_len)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST)
      tn_errf(err, err_len, "%s: already exists; refusing to overwrite (remove it first or choose another name)", path);
    else
      tn_errf(err, err_len, "%s: cannot create: %s", path, strerror(errno));
    return TN_ERR_INVALID;
  }
  /* O_CREAT's mode is filtered by the umask; the key mode must be exactly what was asked. */
  if (fchmod(fd, mode) != 0) {
    tn_errf(err, err_len, "%s: cannot set mode: %s", path, strerror(errno));
    close(fd);
    unlink(path);
    return TN_ERR_INVALID;
  }
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(fd, data + off, len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      tn_errf(err, err_len, "%s: write failed: %s", path, n < 0 ? strerror(errno) : "short write");
      close(fd);
      unlink(path);
      return TN_ERR_INVALID;
    }
    off += (size_t)n;
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    tn_errf(err, err_len, "%s: write failed: %s", path, strerror(errno));
    unlink(path);
    return TN_ERR_INVALID;
  }
  return TN_OK;
}

static int check_absent(const char *path, char *err, size_t err_len)
{
  struct stat st;
  if (lstat(path, &st) == 0) {
    tn_errf(err, err_len, "%s: already exists; refusing to overwrite (remove it first or choose another name)", path);
    return TN_ERR_INVALID;
  }
  return TN_OK;
}

/* mbedTLS refused a field: a message of its own, distinct from a bad request. */
#define PKI_REFUSED 1

/* Basic constraints, key identifiers, key usage, EKU and SANs of req. TN_OK, PKI_REFUSED, or an error with err set. */
static int set_extensions(mbedtls_x509write_cert *crt, const struct tn_pki_request *req,
                          mbedtls_pk_context *subject_key, char *err, size_t err_len)
{
  unsigned char san_buf[4096];
  unsigned char eku_buf[64];
  int rc;

  int is_ca = req->usage == TN_PKI_USAGE_CA;
  if (mbedtls_x509write_crt_set_basic_constraints(crt, is_ca, is_ca ? 0 : -1) != 0 ||
      mbedtls_x509write_crt_set_subject_key_identifier(crt) != 0 ||
      mbedtls_x509write_crt_set_authority_key_identifier(crt) != 0)
    return PKI_REFUSED;
  unsigned ku;
  if (is_ca) {
    ku = MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN;
  } else {
    ku = MBEDTLS_X509_KU_DIGITAL_SIGNATURE;
    if (mbedtls_pk_get_type(subject_key) == MBEDTLS_PK_RSA)
      ku |= MBEDTLS_X509_KU_KEY_ENCIPHERMENT;
  }
  if (mbedtls_x509write_crt_set_key_usage(crt, ku) != 0)
    return PKI_REFUSED;

  if (req->usage == TN_PKI_USAGE_SERVER || req->usage == TN_PKI_USAGE_CLIENT) {
    const char *oid = req->usage == TN_PKI_USAGE_SERVER ? MBEDTLS_OID_SERVER_AUTH : MBEDTLS_OID_CLIENT_AUTH;
    const unsigned char *der;
    size_t der_len;
    if (build_eku(oid, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH), eku_buf, sizeof eku_buf, &der, &der_len) != 0 ||
        mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                            MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0, der, der_len) != 0)
      return PKI_REFUSED;
  }
  if (req->dns_count + req->ip_count > 0) {
    if (req->dns_count + req->ip_count > TN_PKI_MAX_SANS) {
      tn_errf(err, err_len, "too many subject alternative names (at most %d)", TN_PKI_MAX_SANS);
      return TN_ERR_ARG;
    }
    const unsigned char *der;
    size_t der_len;
    if ((rc = build_san(req, san_buf, sizeof san_buf, &der, &der_len, err, err_len)) != TN_OK)
      return rc;
    if (mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                            MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, der, der_len) != 0)
      return PKI_REFUSED;
  }
  return TN_OK;
}

/*
 * Encodes crt and its subject key as PEM and writes the key (0600), then the certificate (0644). TN_OK, PKI_REFUSED,
 * or an error with err set. The key's PEM is wiped before it is freed.
 */
static int write_pem_files(mbedtls_x509write_cert *crt, mbedtls_pk_context *subject_key, struct pki_rng *r,
                           const char *cert_path, const char *key_path, char *err, size_t err_len)
{
  unsigned char *pem = malloc(PKI_PEM_MAX);
  unsigned char *key_pem = malloc(PKI_PEM_MAX);
  int rc = PKI_REFUSED;

  if (pem == NULL || key_pem == NULL) {
    tn_errf(err, err_len, "out of memory");
    rc = TN_ERR_NOMEM;
  } else if (mbedtls_x509write_crt_pem(crt, pem, PKI_PEM_MAX, mbedtls_ctr_drbg_random, &r->drbg) == 0 &&
             mbedtls_pk_write_key_pem(subject_key, key_pem, PKI_PEM_MAX) == 0) {
    /* Key first: a certificate without its key is useless, a leftover key is removed below. */
    rc = write_new_file(key_path, key_pem, strlen((const char *)key_pem), 0600, err, err_len);
    if (rc == TN_OK && (rc = write_new_file(cert_path, pem, strlen((const char *)pem), 0644, err, err_len)) != TN_OK)
      unlink(key_path);
  }
  if (key_pem != NULL) {
    mbedtls_platform_zeroize(key_pem, PKI_PEM_MAX);
    free(key_pem);
  }
  free(pem);
  return rc;
}

/*
 * The common part of create_ca and issue: subject_key is freshly generated, issuer_key
 * and issuer_name are the CA's (or the same key and subject for a self-signed CA).
 */
static int write_cert(const struct tn_pki_request *req, mbedtls_pk_context *subject_key, mbedtls_pk_context *issuer_key,
                      const char *issuer_name, struct pki_rng *r, const char *cert_path, const char *key_path,
                      char *err, size_t err_len)
{
  mbedtls_x509write_cert crt;
  mbedtls_x509write_crt_init(&crt);
#if MBEDTLS_VERSION_NUMBER < 0x03040000
  mbedtls_mpi serial;
  mbedtls_mpi_init(&serial);
#endif
  int rc = TN_ERR_INVALID;

  char nb[15], na[15];
  if (req->not_after <= req->not_before || x509_time_string(req->not_before, nb) != 0 ||
      x509_time_string(req->not_after, na) != 0) {
    tn_errf(err, err_len, "invalid validity period");
    rc = TN_ERR_ARG;
    goto out;
  }
  unsigned char sb[16];
  if (mbedtls_ctr_drbg_random(&r->drbg, sb, sizeof sb) != 0) {
    tn_errf(err, err_len, "random generator failed");
    goto out;
  }
  /* Positive and full length: the top bit clear, the next one set. */
  sb[0] = (unsigned char)((sb[0] & 0x7f) | 0x40);
#if MBEDTLS_VERSION_NUMBER < 0x03040000
  if (mbedtls_mpi_read_binary(&serial, sb, sizeof sb) != 0)
    goto internal;
#endif

  mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(&crt, subject_key);
  mbedtls_x509write_crt_set_issuer_key(&crt, issuer_key);
  if (mbedtls_x509write_crt_set_subject_name(&crt, req->subject) != 0) {
    tn_errf(err, err_len, "invalid subject name \"%s\"", req->subject);
    rc = TN_ERR_ARG;
    goto out;
  }
  if (mbedtls_x509write_crt_set_issuer_name(&crt, issuer_name) != 0) {
    tn_errf(err, err_len, "invalid issuer name \"%s\"", issuer_name);
    goto out;
  }
#if MBEDTLS_VERSION_NUMBER >= 0x03040000
  /* 3.4 takes the serial's bytes as they go in the certificate (the MPI form is deprecated). */
  if (mbedtls_x509write_crt_set_serial_raw(&crt, sb, sizeof sb) != 0)
    goto internal;
#else
  if (mbedtls_x509write_crt_set_serial(&crt, &serial) != 0)
    goto internal;
#endif
  if (mbedtls_x509write_crt_set_validity(&crt, nb, na) != 0)
    goto internal;

  if ((rc = set_extensions(&crt, req, subject_key, err, err_len)) == TN_OK)
    rc = write_pem_files(&crt, subject_key, r, cert_path, key_path, err, err_len);
  if (rc != PKI_REFUSED)
    goto out;

internal:
  tn_errf(err, err_len, "cannot build the certificate (mbedTLS refused a field)");
  rc = TN_ERR_INVALID;
out:
#if MBEDTLS_VERSION_NUMBER < 0x03040000
  mbedtls_mpi_free(&serial);
#endif
  mbedtls_x509write_crt_free(&crt);
  return rc;
}

static int check_request(const struct tn_pki_request *req, char *err, size_t err_len)
{
  if (req == NULL || req->subject == NULL || req->subject[0] == '\0') {
    tn_errf(err, err_len, "a subject name is required");
    return TN_ERR_ARG;
  }
  if ((req->dns_count > 0 && req->dns == NULL) || (req->ip_count > 0 && req->ips == NULL)) {
    tn_errf(err, err_len, "invalid subject alternative names");
    return TN_ERR_ARG;
  }
  return TN_OK;
}

int tn_pki_create_ca(const char *cert_path, const char *key_path, const struct tn_pki_request *req, char *err,
                     size_t err_len)
{
  if (err != NULL && err_len > 0)
    err[0] = '\0';
  int rc = check_request(req, err, err_len);
  if (rc != TN_OK)
    return rc;
  if (cert_path == NULL || key_path == NULL || req->usage != TN_PKI_USAGE_CA) {
    tn_errf(err, err_len, "a CA needs a certificate path, a key path and the CA usage");
    return TN_ERR_ARG;
  }
  if ((rc = check_absent(cert_path, err, err_len)) != TN_OK || (rc = check_absent(key_path, err, err_len)) != TN_OK)
    return rc;
  struct pki_rng r;
  mbedtls_pk_context key;
  mbedtls_pk_init(&key);
  if (rng_init(&r) != 0) {
    tn_errf(err, err_len, "cannot seed the random generator");
    rc = TN_ERR_INVALID;
  } else if (gen_key(&key, req->key_type, &r) != 0) {
    tn_errf(err, err_len, "key generation failed");
    rc = TN_ERR_INVALID;
  } else {
    rc = write_cert(req, &key, &key, req->subject, &r, cert_path, key_path, err, err_len);
  }
  mbedtls_pk_free(&key);
  rng_free(&r);
  return rc;
}

int tn_pki_issue(const char *ca_cert_path, const char *ca_key_path, const char *cert_path, const char *key_path,
                 const struct tn_pki_request *req, char *err, size_t err_len)
{
  if (err != NULL && err_len > 0)
    err[0] = '\0';
  int rc = check_request(req, err, err_len);
  if (rc != TN_OK)
    return rc;
  if (ca_cert_path == NULL || ca_key_path == NULL || cert_path == NULL || key_path == NULL ||
      req->usage == TN_PKI_USAGE_CA) {
    tn_errf(err, err_len, "issuing needs the CA's certificate and key and a leaf usage");
    return TN_ERR_ARG;
  }
  if ((rc = check_absent(cert_path, err, err_len)) != TN_OK || (rc = check_absent(key_path, err, err_len)) != TN_OK)
    return rc;

  mbedtls_x509_crt ca;
  mbedtls_pk_context ca_key, key;
  struct pki_rng r;
  mbedtls_x509_crt_init(&ca);
  mbedtls_pk_init(&ca_key);
  mbedtls_pk_init(&key);
  int rng_ok = rng_init(&r) == 0;
  rc = TN_ERR_INVALID;
  char issuer[512];
  int ret;
  if (!rng_ok) {
    tn_errf(err, err_len, "cannot seed the random generator");
    goto out;
  }
  if ((ret = mbedtls_x509_crt_parse_file(&ca, ca_cert_path)) != 0 || ca.version == 0) {
    tn_errf(err, err_len, "%s: %s", ca_cert_path,
            ret == MBEDTLS_ERR_PK_FILE_IO_ERROR ? "cannot read the CA certificate" : "no valid CA certificate found");
    goto out;
  }
  if (!ca.MBEDTLS_PRIVATE(ca_istrue)) {
    tn_errf(err, err_len, "%s: not a CA certificate (basicConstraints CA:false)", ca_cert_path);
    goto out;
  }
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  ret = mbedtls_pk_parse_keyfile(&ca_key, ca_key_path, NULL, mbedtls_ctr_drbg_random, &r.drbg);
#else
  ret = mbedtls_pk_parse_keyfile(&ca_key, ca_key_path, NULL);
#endif
  if (ret != 0) {
    tn_errf(err, err_len, "%s: %s", ca_key_path,
            ret == MBEDTLS_ERR_PK_FILE_IO_ERROR ? "cannot read the CA key" : "no unencrypted private key found");
    goto out;
  }
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  ret = mbedtls_pk_check_pair(&ca.pk, &ca_key, mbedtls_ctr_drbg_random, &r.drbg);
#else
  ret = mbedtls_pk_check_pair(&ca.pk, &ca_key);
#endif
  if (ret != 0) {
    tn_errf(err, err_len, "%s: CA key does not match the certificate in %s", ca_key_path, ca_cert_path);
    goto out;
  }
  if (mbedtls_x509_dn_gets(issuer, sizeof issuer, &ca.subject) < 0) {
    tn_errf(err, err_len, "%s: CA subject name too long", ca_cert_path);
    goto out;
  }
  if (gen_key(&key, req->key_type, &r) != 0) {
    tn_errf(err, err_len, "key generation failed");
    goto out;
  }
  rc = write_cert(req, &key, &ca_key, issuer, &r, cert_path, key_path, err, err_len);
out:
  mbedtls_pk_free(&key);
  mbedtls_pk_free(&ca_key);
  mbedtls_x509_crt_free(&ca);
  if (rng_ok)
    rng_free(&r);
  return rc;
}

/* ---- describe ---- */

struct pki_out {
  char *buf;
  size_t cap;
  size_t at;
};

#define out_add(o, ...) ((o)->at = tn_errf_append((o)->buf, (o)->cap, (o)->at, __VA_ARGS__))

static void x509_time_rfc3339(const mbedtls_x509_time *t, char out[32])
{
  snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02dZ", t->year % 10000, t->mon % 100, t->day % 100, t->hour % 100,
           t->min % 100, t->sec % 100);
}

static void describe_one(struct pki_out *o, const mbedtls_x509_crt *crt)
{
  char name[512];
  struct tn_tls_peer id;
  tn_tls_identity_from_der(crt->raw.p, crt->raw.len, &id);
  if (mbedtls_x509_dn_gets(name, sizeof name, &crt->subject) < 0)
    snprintf(name, sizeof name, "(too long)");
  out_add(o, "subject:     %s\n", name);
  if (mbedtls_x509_dn_gets(name, sizeof name, &crt->issuer) < 0)
    snprintf(name, sizeof name, "(too long)");
  out_add(o, "issuer:      %s\n", name);
  if (mbedtls_x509_serial_gets(name, sizeof name, &crt->serial) < 0)
    snprintf(name, sizeof name, "(too long)");
  out_add(o, "serial:      %s\n", name);
  out_add(o, "SANs:        %s\n", id.sans[0] ? id.sans : "(none)");
  char from[32], to[32];
  x509_time_rfc3339(&crt->valid_from, from);
  x509_time_rfc3339(&crt->valid_to, to);
  const char *state = mbedtls_x509_time_is_past(&crt->valid_to)     ? " (EXPIRED)"
                      : mbedtls_x509_time_is_future(&crt->valid_from) ? " (NOT YET VALID)"
                                                                      : "";
  out_add(o, "not before:  %s\n", from);
  out_add(o, "not after:   %s%s\n", to, state);
  out_add(o, "CA:          %s\n", crt->MBEDTLS_PRIVATE(ca_istrue) ? "yes" : "no");
  out_add(o, "key:         %s %zu bits\n", mbedtls_pk_get_name(&crt->pk), mbedtls_pk_get_bitlen(&crt->pk));
  if (crt->MBEDTLS_PRIVATE(ext_types) & MBEDTLS_X509_EXT_KEY_USAGE) {
    out_add(o, "key usage:  ");
    static const struct { unsigned bit; const char *name; } kus[] = {
      { MBEDTLS_X509_KU_DIGITAL_SIGNATURE, "digitalSignature" },
      { MBEDTLS_X509_KU_NON_REPUDIATION, "nonRepudiation" },
      { MBEDTLS_X509_KU_KEY_ENCIPHERMENT, "keyEncipherment" },
      { MBEDTLS_X509_KU_DATA_ENCIPHERMENT, "dataEncipherment" },
      { MBEDTLS_X509_KU_KEY_AGREEMENT, "keyAgreement" },
      { MBEDTLS_X509_KU_KEY_CERT_SIGN, "keyCertSign" },
      { MBEDTLS_X509_KU_CRL_SIGN, "cRLSign" },
    };
    for (size_t i = 0; i < sizeof kus / sizeof kus[0]; i++)
      if (crt->MBEDTLS_PRIVATE(key_usage) & kus[i].bit)
        out_add(o, " %s", kus[i].name);
    out_add(o, "\n");
  }
  out_add(o, "EKU:        ");
  if (!(crt->MBEDTLS_PRIVATE(ext_types) & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE)) {
    /* A leaf without one could act as client and server: tunnel refuses it (docs/PKI.md, "Roles"). */
    out_add(o, crt->MBEDTLS_PRIVATE(ca_istrue) ? " (none)" : " (none: any use, which tunnel refuses for every role)");
  } else {
    for (const mbedtls_x509_sequence *cur = &crt->ext_key_usage; cur != NULL; cur = cur->next) {
      if (cur->buf.p == NULL)
        continue;
      if (MBEDTLS_OID_CMP(MBEDTLS_OID_SERVER_AUTH, &cur->buf) == 0)
        out_add(o, " serverAuth");
      else if (MBEDTLS_OID_CMP(MBEDTLS_OID_CLIENT_AUTH, &cur->buf) == 0)
        out_add(o, " clientAuth");
      else
        out_add(o, " other");
    }
  }
  out_add(o, "\n");
  out_add(o, "SHA-256:     %s\n", id.sha256_hex);
}

/* pki show reads certificates only; bundles of a few hundred stay well below this. */
#define PKI_SHOW_MAX (4u * 1024u * 1024u)

int tn_pki_describe(const char *path, char *out, size_t cap, char *err, size_t err_len)
{
  if (out == NULL || cap == 0)
    return TN_ERR_ARG;
  out[0] = '\0';
  if (err != NULL && err_len > 0)
    err[0] = '\0';
  if (path == NULL)
    return TN_ERR_ARG;
  mbedtls_x509_crt chain;
  mbedtls_x509_crt_init(&chain);
  char *text;
  size_t len;
  int rc = tn_file_read(path, PKI_SHOW_MAX, 0, "certificate", &text, &len, err, err_len);
  if (rc != TN_OK) {
    mbedtls_x509_crt_free(&chain);
    return rc;
  }
  /* PEM parsing wants the terminating NUL counted; DER must not have it. */
  mbedtls_x509_crt_parse(&chain, (const unsigned char *)text,
                         strstr(text, "-----BEGIN ") != NULL ? len + 1 : len);
  tn_file_free(text, len);
  if (chain.version == 0) {
    tn_errf(err, err_len, "%s: no certificate found", path);
    mbedtls_x509_crt_free(&chain);
    return TN_ERR_INVALID;
  }
  struct pki_out o = { out, cap, 0 };
  int i = 0;
  for (const mbedtls_x509_crt *c = &chain; c != NULL && c->version != 0; c = c->next, i++) {
    if (i > 0)
      out_add(&o, "\n");
    describe_one(&o, c);
  }
  mbedtls_x509_crt_free(&chain);
  return TN_OK;
}
