/* fuzz_td_config.c: libFuzzer target feeding arbitrary bytes to tunneld's config loader as a file. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "tunnel/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char path[] = "/tmp/fuzz_td_config_XXXXXX";
  struct td_config cfg;
  struct td_reserved r;
  char err[512];
  int fd = mkstemp(path);
  size_t off = 0;
  int rc;

  if (fd < 0)
    abort();
  while (off < size) {
    ssize_t w = write(fd, data + off, size - off);
    if (w <= 0)
      abort();
    off += (size_t)w;
  }
  close(fd);
  err[0] = 0;
  rc = td_config_load(&cfg, path, err, sizeof(err));
  unlink(path);
  if (rc == TN_OK) {
    /* What a loaded config promises the rest of tunneld. */
    if (cfg.control_port == 0 || cfg.management_port == 0 || cfg.control_port == cfg.management_port ||
        cfg.n_admin_identities == 0 || !cfg.ca_file || !cfg.cert_file || !cfg.key_file || !cfg.state_file ||
        cfg.limits.common.dead_peer_timeout_ms <= cfg.limits.common.keepalive_interval_ms ||
        cfg.limits.common.pipe_low_water >= cfg.limits.common.pipe_high_water)
      abort();
    td_config_reserved(&cfg, &r);
    if (!td_config_is_admin(&cfg, cfg.admin_identities[cfg.n_admin_identities - 1]))
      abort();
  } else if (strncmp(err, path, strlen(path)) != 0 || strchr(err, '\n') != NULL) {
    abort(); /* every message names the file, on one line */
  }
  td_config_free(&cfg);
  return 0;
}
