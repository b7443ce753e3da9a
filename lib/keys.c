/* keys.c: the configuration keys of a table, found by name, with a hint for a key that differs only in case. */
#include "tunnel/keys.h"

#include <string.h>
#include <strings.h>

const void *tn_keys_find(const void *table, size_t n, size_t size, const char *key, const char **hint)
{
  const char *entry = table;

  for (size_t i = 0; i < n; i++, entry += size) {
    const char *name = *(const char *const *)(const void *)entry;
    if (strcmp(name, key) == 0)
      return entry;
    if (strcasecmp(name, key) == 0)
      *hint = name;
  }
  return NULL;
}
