/* tunnel/args.h: the command line both programs share (--config, --check-config, --service-user,
 * --installed-as, --version, --help). */
#ifndef TUNNEL_ARGS_H
#define TUNNEL_ARGS_H

#include <stdio.h>

struct tn_args {
  const char *config_path;  /* --config FILE; left as the caller set it (the default) when not given */
  const char *service_user; /* --service-user USER, or NULL */
  int check_only;           /* --check-config */
  const char *installed_as; /* --installed-as PATH (only with --check-config), or NULL */
};

/*
 * Reads argv[1..argc-1] into a (whose config_path holds the default). --version prints "PROG VERSION" and --help
 * (or -h) prints usage to stdout; an unknown argument is named on stderr with the usage. Returns -1 when the
 * program should go on, else its exit status: 0 after --version or --help, 2 after an unknown argument (or
 * --installed-as without --check-config).
 */
int tn_args_parse(int argc, char **argv, const char *prog, void (*usage)(FILE *out), struct tn_args *a);

#endif
