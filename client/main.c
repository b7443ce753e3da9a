/* main.c: the tunnelc program (client: keeps one connection to tunneld and splices its streams to local services). */
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
  fprintf(out,
          "usage: tunnelc [--config FILE] [--check-config]\n"
          "       tunnelc --version | --help\n");
}

int main(int argc, char **argv)
{
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--version") == 0) {
      printf("tunnelc %s\n", TUNNEL_VERSION);
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
