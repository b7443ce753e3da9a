/* pki.c: `tunneld pki`: a small built-in CA so a deployment needs no openssl recipes (see docs/PKI.md). */
#include "pki.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tunnel/error.h"
#include "tunnel/pki.h"
#include "tunnel/tls.h"

#define TD_PKI_EXIT_FAIL 1
#define TD_PKI_EXIT_USAGE 2

static void td_pki_usage(FILE *out)
{
  fprintf(out,
          "usage: tunneld pki init DIR [--days N]\n"
          "       tunneld pki issue DIR --name NAME [--server (--dns HOST | --ip ADDR)...] [--admin] [--days N]\n"
          "       tunneld pki show FILE\n"
          "\n"
          "init   creates DIR (mode 0700) with ca.crt and ca.key: an ECDSA P-256 CA named\n"
          "       \"tunnel CA\", valid %d days unless --days says otherwise. An existing CA is\n"
          "       never overwritten.\n"
          "issue  writes DIR/NAME.crt and DIR/NAME.key (mode 0600), signed by DIR's CA,\n"
          "       ECDSA P-256, valid %d days unless --days says otherwise.\n"
          "         --server     a tunneld certificate (extended key usage serverAuth); name it\n"
          "                      with --dns and/or --ip, each repeatable: tunnelc checks that its\n"
          "                      ServerHost is one of them.\n"
          "         (default)    a client certificate (clientAuth): for tunnelc, identified by\n"
          "                      CN=NAME and by its SHA-256 fingerprint.\n"
          "         --admin      a client certificate for the management API, with OU=admin in\n"
          "                      the subject as a label only: admin rights come from listing the\n"
          "                      certificate's name or fingerprint in tunneld's AdminIdentities.\n"
          "show   prints subject, issuer, SANs, validity, key usage and SHA-256 fingerprint.\n"
          "\n"
          "Exit status: 0 done, 1 failed, 2 usage error.\n",
          TN_PKI_CA_DAYS, TN_PKI_LEAF_DAYS);
}

static int td_pki_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int td_pki_usage_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "tunneld pki: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n(see tunneld pki --help)\n");
  va_end(ap);
  return TD_PKI_EXIT_USAGE;
}

/* NAME becomes a file name and a CN: keep it to characters that are safe in both. */
static int td_pki_name_ok(const char *name)
{
  size_t n = strlen(name);
  if (n == 0 || n > 64 || name[0] == '.' || name[0] == '-')
    return 0;
  return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static void td_pki_join(char *out, size_t cap, const char *dir, const char *file)
{
  size_t n = strlen(dir);
  snprintf(out, cap, "%s%s%s", dir, n > 0 && dir[n - 1] == '/' ? "" : "/", file);
}

static int td_pki_print_fingerprint(const char *crt_path)
{
  char text[8192], err[512];
  if (tn_pki_describe(crt_path, text, sizeof text, err, sizeof err) != TN_OK) {
    fprintf(stderr, "tunneld pki: %s\n", err);
    return TD_PKI_EXIT_FAIL;
  }
  const char *fp = strstr(text, "SHA-256:");
  if (fp != NULL)
    printf("  %s", fp);
  return 0;
}

static int td_pki_days(const char *v, long *days)
{
  char *end;
  errno = 0;
  *days = strtol(v, &end, 10);
  if (errno != 0 || *end != '\0' || end == v || *days < 1 || *days > 36500)
    return td_pki_usage_error("--days: must be an integer 1-36500, got \"%s\"", v);
  return 0;
}

static int td_pki_init(int argc, char **argv)
{
  long days = TN_PKI_CA_DAYS;
  if (argc == 4 && strcmp(argv[2], "--days") == 0) {
    if (td_pki_days(argv[3], &days) != 0)
      return TD_PKI_EXIT_USAGE;
  } else if (argc == 3 && strncmp(argv[2], "--days=", 7) == 0) {
    if (td_pki_days(argv[2] + 7, &days) != 0)
      return TD_PKI_EXIT_USAGE;
  } else if (argc != 2) {
    return td_pki_usage_error("%s", "init takes one directory and optionally --days N");
  }
  const char *dir = argv[1];
  if (dir[0] == '-')
    return td_pki_usage_error("%s", "init needs the directory first: tunneld pki init DIR [--days N]");
  if (mkdir(dir, 0700) != 0) {
    struct stat st;
    if (errno != EEXIST || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
      fprintf(stderr, "tunneld pki: %s: cannot create directory: %s\n", dir, strerror(errno == 0 ? EEXIST : errno));
      return TD_PKI_EXIT_FAIL;
    }
  } else if (chmod(dir, 0700) != 0) {
    fprintf(stderr, "tunneld pki: %s: cannot set mode 0700: %s\n", dir, strerror(errno));
    return TD_PKI_EXIT_FAIL;
  }
  char crt[4096], key[4096], err[512];
  td_pki_join(crt, sizeof crt, dir, "ca.crt");
  td_pki_join(key, sizeof key, dir, "ca.key");
  struct tn_pki_request req;
  tn_pki_request_init(&req, "CN=tunnel CA", TN_PKI_USAGE_CA, (unsigned)days);
  if (tn_pki_create_ca(crt, key, &req, err, sizeof err) != TN_OK) {
    fprintf(stderr, "tunneld pki: %s\n", err);
    return TD_PKI_EXIT_FAIL;
  }
  printf("created CA %s (certificate) and %s (private key: keep it secret, ideally offline)\n", crt, key);
  return td_pki_print_fingerprint(crt);
}

/* Takes "--opt VALUE" or "--opt=VALUE"; returns the value or NULL, advancing *i. */
static const char *td_pki_value(int argc, char **argv, int *i, const char *opt)
{
  size_t n = strlen(opt);
  if (strncmp(argv[*i], opt, n) != 0)
    return NULL;
  if (argv[*i][n] == '=')
    return argv[*i] + n + 1;
  if (argv[*i][n] != '\0' || *i + 1 >= argc)
    return NULL;
  (*i)++;
  return argv[*i];
}

static int td_pki_is_opt(const char *arg, const char *opt)
{
  size_t n = strlen(opt);
  return strncmp(arg, opt, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

/* The options of "tunneld pki issue DIR ...", read and judged together before anything is written. */
struct td_pki_issue_args {
  const char *dir, *name;
  const char *dns[TN_PKI_MAX_SANS], *ips[TN_PKI_MAX_SANS];
  size_t ndns, nip;
  int server, admin;
  long days;
};

/* Fills a from argv; 0 when the request is complete and consistent, else the usage error's exit status. */
static int td_pki_issue_parse(int argc, char **argv, struct td_pki_issue_args *a)
{
  if (argc < 2 || argv[1][0] == '-')
    return td_pki_usage_error("%s", "issue needs the CA directory first: tunneld pki issue DIR --name NAME ...");
  memset(a, 0, sizeof(*a));
  a->dir = argv[1];
  a->days = TN_PKI_LEAF_DAYS;
  for (int i = 2; i < argc; i++) {
    const char *arg = argv[i];
    const char *v;
    if (strcmp(arg, "--server") == 0) {
      a->server = 1;
    } else if (strcmp(arg, "--admin") == 0) {
      a->admin = 1;
    } else if (td_pki_is_opt(arg, "--name")) {
      if ((v = td_pki_value(argc, argv, &i, "--name")) == NULL)
        return td_pki_usage_error("%s", "--name needs a value");
      a->name = v;
    } else if (td_pki_is_opt(arg, "--dns")) {
      if ((v = td_pki_value(argc, argv, &i, "--dns")) == NULL)
        return td_pki_usage_error("%s", "--dns needs a host name");
      if (a->ndns + a->nip >= TN_PKI_MAX_SANS)
        return td_pki_usage_error("too many --dns/--ip (at most %d)", TN_PKI_MAX_SANS);
      a->dns[a->ndns++] = v;
    } else if (td_pki_is_opt(arg, "--ip")) {
      if ((v = td_pki_value(argc, argv, &i, "--ip")) == NULL)
        return td_pki_usage_error("%s", "--ip needs an address");
      if (a->ndns + a->nip >= TN_PKI_MAX_SANS)
        return td_pki_usage_error("too many --dns/--ip (at most %d)", TN_PKI_MAX_SANS);
      a->ips[a->nip++] = v;
    } else if (td_pki_is_opt(arg, "--days")) {
      if ((v = td_pki_value(argc, argv, &i, "--days")) == NULL)
        return td_pki_usage_error("%s", "--days needs a number");
      if (td_pki_days(v, &a->days) != 0)
        return TD_PKI_EXIT_USAGE;
    } else {
      return td_pki_usage_error("issue: unknown argument \"%s\"", arg);
    }
  }
  if (a->name == NULL)
    return td_pki_usage_error("%s", "issue needs --name NAME");
  if (!td_pki_name_ok(a->name))
    return td_pki_usage_error("--name: \"%s\" must be 1-64 letters, digits, '.', '_' or '-' (not starting with '.' or '-')", a->name);
  if (a->server && a->admin)
    return td_pki_usage_error("%s", "--admin is for client certificates; it cannot be combined with --server");
  if (a->server && a->ndns + a->nip == 0)
    return td_pki_usage_error("%s", "--server needs at least one --dns HOST or --ip ADDR (the names tunnelc will dial)");
  if (!a->server && a->ndns + a->nip > 0)
    return td_pki_usage_error("%s", "--dns and --ip are for server certificates: add --server");
  if (strcmp(a->name, "ca") == 0)
    return td_pki_usage_error("--name: \"%s\" is the CA's own file name; choose another", a->name);
  return 0;
}

static int td_pki_issue(int argc, char **argv)
{
  struct td_pki_issue_args a;
  struct tn_pki_request req;
  char subject[128], file[80], ca_crt[4096], ca_key[4096], crt[4096], key[4096], err[512];
  int rc = td_pki_issue_parse(argc, argv, &a);

  if (rc != 0)
    return rc;
  snprintf(subject, sizeof subject, a.admin ? "CN=%s,OU=admin" : "CN=%s", a.name);
  td_pki_join(ca_crt, sizeof ca_crt, a.dir, "ca.crt");
  td_pki_join(ca_key, sizeof ca_key, a.dir, "ca.key");
  snprintf(file, sizeof file, "%s.crt", a.name);
  td_pki_join(crt, sizeof crt, a.dir, file);
  snprintf(file, sizeof file, "%s.key", a.name);
  td_pki_join(key, sizeof key, a.dir, file);

  tn_pki_request_init(&req, subject, a.server ? TN_PKI_USAGE_SERVER : TN_PKI_USAGE_CLIENT, (unsigned)a.days);
  req.dns = a.dns;
  req.dns_count = a.ndns;
  req.ips = a.ips;
  req.ip_count = a.nip;
  rc = tn_pki_issue(ca_crt, ca_key, crt, key, &req, err, sizeof err);
  if (rc != TN_OK) {
    fprintf(stderr, "tunneld pki: %s\n", err);
    return rc == TN_ERR_ARG ? TD_PKI_EXIT_USAGE : TD_PKI_EXIT_FAIL;
  }
  printf("issued %s certificate %s and key %s (valid %ld days)\n",
         a.server ? "server" : a.admin ? "admin client" : "client", crt, key, a.days);
  if (td_pki_print_fingerprint(crt) != 0)
    return TD_PKI_EXIT_FAIL;
  if (a.admin)
    printf("  to grant admin rights, add \"%s\" (or the fingerprint) to AdminIdentities in tunneld's config\n", a.name);
  return 0;
}

static int td_pki_show(int argc, char **argv)
{
  if (argc != 2)
    return td_pki_usage_error("%s", "show takes exactly one argument: FILE");
  char text[16384], err[512];
  if (tn_pki_describe(argv[1], text, sizeof text, err, sizeof err) != TN_OK) {
    fprintf(stderr, "tunneld pki: %s\n", err);
    return TD_PKI_EXIT_FAIL;
  }
  fputs(text, stdout);
  return 0;
}

int td_pki_main(int argc, char **argv)
{
  if (argc < 2)
    return td_pki_usage_error("%s", "missing command: init, issue or show");
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    td_pki_usage(stdout);
    return 0;
  }
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      td_pki_usage(stdout);
      return 0;
    }
  }
  if (strcmp(cmd, "init") == 0)
    return td_pki_init(argc - 1, argv + 1);
  if (strcmp(cmd, "issue") == 0)
    return td_pki_issue(argc - 1, argv + 1);
  if (strcmp(cmd, "show") == 0)
    return td_pki_show(argc - 1, argv + 1);
  return td_pki_usage_error("unknown command \"%s\": init, issue or show", cmd);
}
