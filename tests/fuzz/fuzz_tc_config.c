/* fuzz_tc_config.c: libFuzzer target feeding arbitrary bytes to tunnelc's config loader as a file. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends.h"
#include "backoff.h"
#include "config.h"
#include "tunnel/error.h"
#include "tunnel/open.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * After a successful load, use the result the way tunnelc does (lookups, allow-list,
 * backoff from the limits) so a config that loads but is internally inconsistent
 * (unsorted lists, dangling strings) shows up as a sanitizer report.
 */
static void exercise(const struct tc_config *cfg, const uint8_t *data, size_t size)
{
  struct tc_backends_target t;
  struct tc_backoff b;
  struct tn_open o;
  char err[512], reason[TC_BACKENDS_REASON_MAX], text[300];
  uint16_t port = size >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 80;

  (void)tc_config_server_name(cfg);
  tc_config_check_identity(cfg, "fuzz", err, sizeof(err));
  for (size_t i = 0; i < cfg->n_services; i++) {
    if (tc_config_find_service(cfg, cfg->services[i].name) != &cfg->services[i])
      abort();
    memset(&o, 0, sizeof(o));
    o.backend_kind = TN_OPEN_BACKEND_SERVICE;
    snprintf(o.service, sizeof(o.service), "%s", cfg->services[i].name);
    if (tc_backends_resolve(cfg, &o, &t, reason, sizeof(reason)) != TN_OK)
      abort();
    tc_backends_format(&t, text, sizeof(text));
  }
  for (size_t i = 0; i < cfg->n_allowed_ports; i++)
    if (!tc_config_port_allowed(cfg, cfg->allowed_ports[i]))
      abort();
  memset(&o, 0, sizeof(o));
  o.backend_kind = TN_OPEN_BACKEND_PORT;
  o.backend_port = port;
  if ((tc_backends_resolve(cfg, &o, &t, reason, sizeof(reason)) == TN_OK) != tc_config_port_allowed(cfg, port))
    abort();

  tc_backoff_init(&b, cfg->limits.reconnect_min_ms, cfg->limits.reconnect_max_ms,
                  cfg->limits.reconnect_jitter_percent, cfg->limits.reconnect_reset_after_ms);
  for (uint32_t i = 0; i < 40; i++)
    if (tc_backoff_link_down(&b, i, i * 0x9e3779b9u) == 0 && cfg->limits.reconnect_min_ms > 10)
      abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *tmp = getenv("TMPDIR");
  char path[512], err[1024];
  struct tc_config cfg;
  FILE *f;
  int fd;

  snprintf(path, sizeof(path), "%s/fuzz_tc_config.XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
  fd = mkstemp(path);
  if (fd < 0)
    return 0;
  f = fdopen(fd, "wb");
  if (f == NULL) {
    close(fd);
    unlink(path);
    return 0;
  }
  if (size > 0 && fwrite(data, 1, size, f) != size) {
    fclose(f);
    unlink(path);
    return 0;
  }
  fclose(f);

  err[0] = 'x';
  if (tc_config_load(&cfg, path, err, sizeof(err)) == TN_OK) {
    exercise(&cfg, data, size);
    tc_config_free(&cfg);
  } else if (err[0] == '\0' || memchr(err, '\n', strlen(err)) != NULL) {
    /* Every failure must explain itself on exactly one line. */
    abort();
  }
  unlink(path);
  return 0;
}
