/* log.c: the programs' line logger. */
#include "tunnel/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tunnel/utf8.h"

static const char *log_program = "tunnel";
static enum tn_log_level log_max_level = TN_LOG_INFO;
static int log_to_journal = -1;

void tn_log_init(const char *program, enum tn_log_level max_level)
{
  log_program = program;
  log_max_level = max_level;
  log_to_journal = getenv("JOURNAL_STREAM") != NULL;
}

void tn_log_set_level(enum tn_log_level max_level)
{
  log_max_level = max_level;
}

int tn_log_enabled(enum tn_log_level level)
{
  return level <= log_max_level;
}

static const char *level_name(enum tn_log_level level)
{
  switch (level) {
  case TN_LOG_ERROR: return "error";
  case TN_LOG_WARN: return "warn";
  case TN_LOG_INFO: return "info";
  default: return "debug";
  }
}

void tn_log(enum tn_log_level level, const char *fmt, ...)
{
  char line[1024];
  size_t n = 0;
  va_list ap;

  if (!tn_log_enabled(level))
    return;
  if (log_to_journal < 0)
    log_to_journal = getenv("JOURNAL_STREAM") != NULL;

  if (log_to_journal) {
    n = (size_t)snprintf(line, sizeof(line), "<%d>", (int)level);
  } else {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s: ", ts.tv_nsec / 1000000L,
                          log_program, level_name(level));
  }
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof(line) - n, fmt, ap);
  va_end(ap);

  /* One write per line so lines from concurrent processes never interleave. */
  n = strlen(line);
  if (n > sizeof(line) - 2)
    n = sizeof(line) - 2;
  /*
   * Names from certificates, requests and configs end up in lines; a control byte would forge
   * or split a line and invalid UTF-8 breaks log readers, wherever it came from (and a line cut
   * at the limit may end in half a character).
   */
  tn_utf8_sanitize(line, n);
  line[n++] = '\n';
  fwrite(line, 1, n, stderr);
}
