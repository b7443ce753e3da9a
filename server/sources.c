/* sources.c: a small string-keyed hash of per-source and per-identity connection counts. */
#include "sources.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/error.h"

struct td_source {
  uint32_t hash;
  uint32_t counts[TD_COUNT_KINDS];
  struct td_source *next;
  char key[];
};

void td_source_name(const struct tn_addr *peer, char *out, size_t outlen)
{
  char text[INET6_ADDRSTRLEN];
  uint8_t net[16];

  if (peer->family == TN_AF_INET && inet_ntop(AF_INET, peer->ip, text, sizeof(text)) != NULL) {
    snprintf(out, outlen, "%s", text);
    return;
  }
  if (peer->family == TN_AF_INET6) {
    memset(net, 0, sizeof(net));
    memcpy(net, peer->ip, 8);
    if (inet_ntop(AF_INET6, net, text, sizeof(text)) != NULL) {
      snprintf(out, outlen, "%s/64", text);
      return;
    }
  }
  snprintf(out, outlen, "-");
}

static uint32_t hash_key(const char *key)
{
  uint32_t h = 2166136261u;

  for (; *key; key++)
    h = (h ^ (uint8_t)*key) * 16777619u;
  return h;
}

void td_sources_init(struct td_sources *s)
{
  memset(s, 0, sizeof(*s));
}

void td_sources_free(struct td_sources *s)
{
  for (size_t i = 0; i < s->n_buckets; i++) {
    struct td_source *e = s->buckets[i], *next;
    for (; e != NULL; e = next) {
      next = e->next;
      free(e);
    }
  }
  free(s->buckets);
  td_sources_init(s);
}

static struct td_source **find(const struct td_sources *s, const char *key, uint32_t h)
{
  struct td_source **pp;

  if (s->n_buckets == 0)
    return NULL;
  for (pp = &s->buckets[h & (s->n_buckets - 1)]; *pp != NULL; pp = &(*pp)->next)
    if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
      return pp;
  return NULL;
}

uint32_t td_sources_get(const struct td_sources *s, const char *key, enum td_count kind)
{
  struct td_source **pp = find(s, key, hash_key(key));

  return pp != NULL ? (*pp)->counts[kind] : 0;
}

static int grow(struct td_sources *s)
{
  size_t n = s->n_buckets ? s->n_buckets * 2 : 64;
  struct td_source **b = calloc(n, sizeof(*b));

  if (b == NULL)
    return TN_ERR_NOMEM;
  for (size_t i = 0; i < s->n_buckets; i++) {
    struct td_source *e = s->buckets[i], *next;
    for (; e != NULL; e = next) {
      next = e->next;
      e->next = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
    }
  }
  free(s->buckets);
  s->buckets = b;
  s->n_buckets = n;
  return TN_OK;
}

int td_sources_add(struct td_sources *s, const char *key, enum td_count kind, int delta)
{
  uint32_t h = hash_key(key);
  struct td_source **pp = find(s, key, h), *e;
  size_t len;

  if (pp == NULL) {
    if (delta <= 0)
      return TN_OK;
    if ((s->n >= s->n_buckets || s->n_buckets == 0) && grow(s) != TN_OK)
      return TN_ERR_NOMEM;
    len = strlen(key);
    e = calloc(1, sizeof(*e) + len + 1);
    if (e == NULL)
      return TN_ERR_NOMEM;
    memcpy(e->key, key, len + 1);
    e->hash = h;
    e->next = s->buckets[h & (s->n_buckets - 1)];
    s->buckets[h & (s->n_buckets - 1)] = e;
    s->n++;
    pp = &s->buckets[h & (s->n_buckets - 1)];
  }
  e = *pp;
  if (delta < 0 && e->counts[kind] < (uint32_t)-delta)
    e->counts[kind] = 0;
  else
    e->counts[kind] += (uint32_t)delta;
  for (int k = 0; k < TD_COUNT_KINDS; k++)
    if (e->counts[k] != 0)
      return TN_OK;
  *pp = e->next;
  free(e);
  s->n--;
  return TN_OK;
}
