/* tunnel/keys.h: the configuration keys of a table, found by name, with a hint for a key that differs only in case. */
#ifndef TUNNEL_KEYS_H
#define TUNNEL_KEYS_H

#include <stddef.h>

/*
 * The entry named key in table (n entries of size bytes each, every one starting with its const char *name), or
 * NULL; then *hint (left alone otherwise) is set to a name that differs from key only in case, if there is one.
 * Both programs' loaders and the shared Limits use it, so an unknown key gets the same "did you mean" everywhere.
 */
const void *tn_keys_find(const void *table, size_t n, size_t size, const char *key, const char **hint);

#endif
