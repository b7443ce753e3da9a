/* tls_file.c: the file side of tn_tls: reads certificates, keys and CRLs for the sans-I/O TLS layer. */
#include "tunnel/tls.h"

#include "tunnel/error.h"
#include "tunnel/file.h"

#define TLS_MAX_FILE (1024u * 1024u)

/* Reads a whole certificate or key file plus a NUL (PEM parsers want it); free with tn_file_free. */
static int read_file(const char *path, unsigned flags, unsigned char **out, size_t *out_len, char *err, size_t err_len)
{
  char *buf;
  int rc = tn_file_read(path, TLS_MAX_FILE, flags, "certificate, key or CRL", &buf, out_len, err, err_len);

  if (rc != TN_OK)
    return rc;
  if (*out_len == 0) {
    tn_file_free(buf, 0);
    tn_errf(err, err_len, "%s: file is empty", path);
    return TN_ERR_INVALID;
  }
  *out = (unsigned char *)buf;
  return TN_OK;
}

static void input_free(struct tn_tls_input *in)
{
  tn_file_free((char *)(uintptr_t)in->data, in->len);
}

int tn_tls_config_new(tn_tls_config **out, enum tn_tls_role role, const char *ca_file,
                      const char *cert_file, const char *key_file, char *err, size_t err_len)
{
  struct tn_tls_input in[3] = { { ca_file, NULL, 0 }, { cert_file, NULL, 0 }, { key_file, NULL, 0 } };
  static const unsigned flags[3] = { 0, 0, TN_FILE_PRIVATE };
  unsigned char *buf;
  int rc = TN_OK;

  if (ca_file == NULL || cert_file == NULL || key_file == NULL)  /* the same refusal, from the same place */
    return tn_tls_config_new_mem(out, role, NULL, NULL, NULL, err, err_len);
  for (int i = 0; i < 3 && rc == TN_OK; i++) {
    rc = read_file(in[i].name, flags[i], &buf, &in[i].len, err, err_len);
    in[i].data = rc == TN_OK ? buf : NULL;
  }
  if (rc == TN_OK)
    rc = tn_tls_config_new_mem(out, role, &in[0], &in[1], &in[2], err, err_len);
  for (int i = 0; i < 3; i++)
    input_free(&in[i]);
  if (rc == TN_OK) {
    char why[200];
    /* The peer would refuse it at every handshake: better said once, at start and by --check-config. */
    if (tn_tls_config_role_check(*out, why, sizeof why) != TN_OK) {
      tn_errf(err, err_len, "%s: cannot be the %s certificate: %s", cert_file, role == TN_TLS_SERVER ? "server" : "client",
              why);
      tn_tls_config_unref(*out);
      *out = NULL;
      rc = TN_ERR_INVALID;
    }
  }
  return rc;
}

int tn_tls_config_set_crl(tn_tls_config *cfg, const char *crl_file, char *err, size_t err_len)
{
  struct tn_tls_input in = { crl_file, NULL, 0 };
  unsigned char *buf;
  int rc;

  if (cfg == NULL || crl_file == NULL)
    return TN_ERR_ARG;
  rc = read_file(crl_file, 0, &buf, &in.len, err, err_len);
  if (rc != TN_OK)
    return rc;
  in.data = buf;
  rc = tn_tls_config_set_crl_mem(cfg, &in, err, err_len);
  input_free(&in);
  return rc;
}
