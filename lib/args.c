/* args.c: the command line both programs share (tunnel/args.h). */
#include "tunnel/args.h"

#include <string.h>

int tn_args_parse(int argc, char **argv, const char *prog, void (*usage)(FILE *out), struct tn_args *a)
{
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--version") == 0) {
      printf("%s %s\n", prog, TUNNEL_VERSION);
      return 0;
    }
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (strcmp(argv[i], "--check-config") == 0) {
      a->check_only = 1;
    } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      a->config_path = argv[++i];
    } else if (strcmp(argv[i], "--service-user") == 0 && i + 1 < argc) {
      a->service_user = argv[++i];
    } else if (strcmp(argv[i], "--installed-as") == 0 && i + 1 < argc) {
      a->installed_as = argv[++i];
    } else {
      fprintf(stderr, "%s: unknown argument \"%s\"\n", prog, argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (a->installed_as != NULL && !a->check_only) {
    fprintf(stderr, "%s: --installed-as goes with --check-config\n", prog);
    usage(stderr);
    return 2;
  }
  return -1;
}
