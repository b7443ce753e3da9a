/* fuzz_td_state.c: libFuzzer target feeding arbitrary bytes to tunneld's state-file loader, read at every start. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "revoked.h"
#include "state.h"
#include "table.h"
#include "tunnel/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_write(const char *path, const uint8_t *data, size_t size)
{
  FILE *f = fopen(path, "wb");

  if (f == NULL || (size > 0 && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
    abort();
}

/* What loads must save and load back to the same table: tunneld rewrites the file after every PUT. */
static void fuzz_round_trip(const struct td_table *t, const struct td_revoked *r)
{
  char path[] = "/tmp/fuzz_td_state_out_XXXXXX";
  char err[512];
  struct td_table back;
  struct td_revoked rback;
  json_t *a, *b;
  int fd = mkstemp(path);

  if (fd < 0)
    abort();
  close(fd);
  if (td_state_save(path, t, r, err, sizeof(err)) != TN_OK)
    abort();
  if (td_state_load(path, NULL, &back, &rback, err, sizeof(err)) != TN_OK)
    abort();
  unlink(path);
  a = td_table_to_json(t, NULL, NULL);
  b = td_table_to_json(&back, NULL, NULL);
  if (a == NULL || b == NULL || !json_equal(a, b) || rback.n != r->n)
    abort();
  json_decref(a);
  json_decref(b);
  td_table_free(&back);
  td_revoked_free(&rback);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char path[] = "/tmp/fuzz_td_state_XXXXXX";
  struct td_table t;
  struct td_revoked r;
  char err[512];
  int fd = mkstemp(path);

  if (fd < 0)
    abort();
  close(fd);
  fuzz_write(path, data, size);
  err[0] = 0;
  if (td_state_load(path, NULL, &t, &r, err, sizeof(err)) == TN_OK) {
    fuzz_round_trip(&t, &r);
  } else if (strncmp(err, path, strlen(path)) != 0 || strchr(err, '\n') != NULL) {
    abort(); /* every message names the file, on one line */
  }
  unlink(path);
  td_table_free(&t);
  td_revoked_free(&r);
  return 0;
}
