/* ratelog.c: per-(kind, source) log rate limiting with periodic counts. */
#include "tunnel/ratelog.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIND_MAX 96
#define SOURCE_MAX 64
#define LINE_MAX_ 320

struct rl_entry {
  int used;
  uint32_t hash;
  char kind[KIND_MAX];
  char source[SOURCE_MAX];
  enum tn_log_level level;
  uint64_t interval_ms;
  uint64_t logged_ms;     /* when its last line (first event or summary) was written */
  uint64_t suppressed;    /* events counted since */
  char last[LINE_MAX_];   /* the last suppressed event's line, for the summary */
};

struct tn_ratelog {
  struct rl_entry *entries;
  size_t cap;
  struct rl_entry other;  /* events of pairs beyond cap */
};

tn_ratelog *tn_ratelog_new(size_t max_keys)
{
  tn_ratelog *rl = calloc(1, sizeof(*rl));

  if (rl == NULL)
    return NULL;
  rl->cap = max_keys > 0 ? max_keys : 1;
  rl->entries = calloc(rl->cap, sizeof(*rl->entries));
  if (rl->entries == NULL) {
    free(rl);
    return NULL;
  }
  snprintf(rl->other.kind, sizeof(rl->other.kind), "ratelog");
  snprintf(rl->other.source, sizeof(rl->other.source), "other sources");
  return rl;
}

static uint32_t hash_of(const char *kind, const char *source)
{
  uint32_t h = 2166136261u;

  for (const char *p = kind; *p; p++)
    h = (h ^ (uint8_t)*p) * 16777619u;
  h = (h ^ 0xffu) * 16777619u;
  for (const char *p = source; *p; p++)
    h = (h ^ (uint8_t)*p) * 16777619u;
  return h;
}

static void summarise(struct rl_entry *e, uint64_t now_ms)
{
  uint64_t secs = (now_ms - e->logged_ms + 999) / 1000;

  tn_log(e->level, "%s (%s): %llu more in the last %llu s; last: %s", e->kind, e->source,
         (unsigned long long)e->suppressed, (unsigned long long)(secs > 0 ? secs : 1), e->last);
  e->suppressed = 0;
  e->logged_ms = now_ms;
}

int tn_ratelog_event(tn_ratelog *rl, uint64_t now_ms, uint64_t interval_ms, enum tn_log_level level, const char *kind,
                     const char *source, const char *fmt, ...)
{
  uint32_t h = hash_of(kind, source);
  struct rl_entry *e = NULL, *free_slot = NULL;
  char line[LINE_MAX_];
  va_list ap;

  if (!tn_log_enabled(level))
    return 0;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (rl == NULL) {
    tn_log(level, "%s", line);  /* no table (out of memory at start): unlimited beats silent */
    return 1;
  }
  /* Linear, but over a bounded table, and only for events that are refusals already. */
  for (size_t i = 0; i < rl->cap; i++) {
    struct rl_entry *c = &rl->entries[i];
    if (!c->used) {
      if (free_slot == NULL)
        free_slot = c;
    } else if (c->hash == h && strncmp(c->kind, kind, KIND_MAX - 1) == 0 &&
               strncmp(c->source, source, SOURCE_MAX - 1) == 0) {
      e = c;
      break;
    }
  }
  if (e == NULL && free_slot == NULL) {
    e = &rl->other;
    if (e->logged_ms == 0 && e->suppressed == 0)
      e->logged_ms = now_ms;
    e->level = level < e->level || e->level == 0 ? level : e->level;
    e->interval_ms = interval_ms;
    e->suppressed++;
    snprintf(e->last, sizeof(e->last), "%s", line);
    return 0;
  }
  if (e == NULL) {
    e = free_slot;
    memset(e, 0, sizeof(*e));
    e->used = 1;
    e->hash = h;
    snprintf(e->kind, sizeof(e->kind), "%s", kind);
    snprintf(e->source, sizeof(e->source), "%s", source);
  } else if (now_ms - e->logged_ms < e->interval_ms) {
    e->suppressed++;
    snprintf(e->last, sizeof(e->last), "%s", line);
    return 0;
  } else if (e->suppressed > 0) {
    summarise(e, now_ms);  /* the count belongs before the new first line */
  }
  e->level = level;
  e->interval_ms = interval_ms;
  e->logged_ms = now_ms;
  tn_log(level, "%s", line);
  return 1;
}

void tn_ratelog_end(tn_ratelog *rl, uint64_t now_ms, const char *kind, const char *source)
{
  uint32_t h = hash_of(kind, source);

  for (size_t i = 0; rl != NULL && i < rl->cap; i++) {
    struct rl_entry *e = &rl->entries[i];
    if (e->used && e->hash == h && strncmp(e->kind, kind, KIND_MAX - 1) == 0 &&
        strncmp(e->source, source, SOURCE_MAX - 1) == 0) {
      if (e->suppressed > 0)
        summarise(e, now_ms);
      e->used = 0;
      return;
    }
  }
}

void tn_ratelog_flush(tn_ratelog *rl, uint64_t now_ms)
{
  if (rl == NULL)
    return;
  for (size_t i = 0; i < rl->cap; i++) {
    struct rl_entry *e = &rl->entries[i];
    if (!e->used || now_ms - e->logged_ms < e->interval_ms)
      continue;
    if (e->suppressed > 0)
      summarise(e, now_ms);
    else
      e->used = 0;  /* quiet for an interval: its next event is logged at once */
  }
  if (rl->other.suppressed > 0 && now_ms - rl->other.logged_ms >= rl->other.interval_ms)
    summarise(&rl->other, now_ms);
}

void tn_ratelog_free(tn_ratelog *rl, uint64_t now_ms)
{
  if (rl == NULL)
    return;
  /* Counts still pending are written, so a flood cut short by shutdown is not lost from the log. */
  for (size_t i = 0; i < rl->cap; i++)
    if (rl->entries[i].used && rl->entries[i].suppressed > 0)
      summarise(&rl->entries[i], now_ms);
  if (rl->other.suppressed > 0)
    summarise(&rl->other, now_ms);
  free(rl->entries);
  free(rl);
}
