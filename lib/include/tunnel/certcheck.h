/* tunnel/certcheck.h: --check-config's checks of certificate dates and of key files the service user must read. */
#ifndef TUNNEL_CERTCHECK_H
#define TUNNEL_CERTCHECK_H

#include <stdint.h>
#include <stdio.h>

/* One run of checks: each finding is one line on out, "PROG: FILE: ..."; errors and warnings are counted. */
struct tn_certcheck {
  FILE *out;
  const char *prog;      /* "tunneld" or "tunnelc" */
  int64_t now;           /* Unix seconds the dates are judged against */
  unsigned errors;       /* the program would not work: --check-config exits 1 */
  unsigned warnings;
};

void tn_certcheck_init(struct tn_certcheck *cc, FILE *out, const char *prog, int64_t now);

/*
 * Judges the validity dates of every certificate in the PEM file at path. With own, the first one is the
 * program's own certificate: expired or not yet valid is an error. Every other certificate (a CA file's, a
 * chain's intermediates) outside its dates is a warning: a bundle may hold an old CA on purpose.
 * what names the config key ("ClientTlsCertificateFile"). A file that does not parse is left to the loader.
 */
void tn_certcheck_dates(struct tn_certcheck *cc, const char *path, const char *what, int own);

/* The service user to judge readability for, when --service-user is not given. */
#define TN_CERTCHECK_DEFAULT_USER "tunnel"

/*
 * Run as root: whether user can open path for reading, judged by a child process that takes the user's uid,
 * gid and groups and opens the file (so directories, ACLs and groups count exactly as for the service).
 * Unreadable is an error. Returns 0 when checked, -1 when user does not exist (nothing counted).
 */
int tn_certcheck_readable(struct tn_certcheck *cc, const char *path, const char *what, const char *user);

enum tn_certcheck_kind {
  TN_CERTCHECK_FILE = 0,     /* read by the service: readability only */
  TN_CERTCHECK_OWN_CERT = 1, /* the program's own certificate (and chain): dates, then readability */
  TN_CERTCHECK_CA = 2,       /* CA certificates: dates (warnings), then readability */
  /*
   * Where the file being checked will be installed (--installed-as): the service user must be able to enter
   * its directory. The file there is not opened: the installer writes it, with its owner and mode, after the
   * check passes.
   */
  TN_CERTCHECK_INSTALLED = 3
};

struct tn_certcheck_file {
  const char *path;          /* NULL: not configured, skipped */
  const char *what;          /* config key, or "--config" for the file itself */
  enum tn_certcheck_kind kind;
};

/*
 * Every check for files: dates by kind; when run as root, readability as user (NULL: TN_CERTCHECK_DEFAULT_USER,
 * where a missing user only earns a note; a user named explicitly that does not exist is an error).
 */
void tn_certcheck_files(struct tn_certcheck *cc, const struct tn_certcheck_file *files, size_t n, const char *user);

#endif
