/* main.c: the tunneld program (server: accepts tunnel clients, serves the management API and the public ports). */
#include <stdio.h>
#include <string.h>

#include "pki.h"

static void usage(FILE *out)
{
  fprintf(out,
          "usage: tunneld [--config FILE] [--check-config]\n"
          "       tunneld --version | --help\n");
}

int main(int argc, char **argv)
{
  if (argc >= 2 && strcmp(argv[1], "pki") == 0)
    return td_pki_main(argc - 1, argv + 1);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--version") == 0) {
      printf("tunneld %s\n", TUNNEL_VERSION);
      return 0;
    }
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    }
  }
  usage(stderr);
  return 2;
}
