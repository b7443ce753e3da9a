/* tunnel/log.h: one-line-per-event logging to stderr for the two programs (journald-aware). */
#ifndef TUNNEL_LOG_H
#define TUNNEL_LOG_H

enum tn_log_level {
  TN_LOG_ERROR = 3,  /* syslog priorities, so journald can read them */
  TN_LOG_WARN = 4,
  TN_LOG_INFO = 6,
  TN_LOG_DEBUG = 7
};

/*
 * Configures the process-wide logger: program name and the most verbose level shown.
 * The logger is the one piece of process-wide state in the library: every module
 * logs through it, and a program sets it once from main.
 */
void tn_log_init(const char *program, enum tn_log_level max_level);
void tn_log_set_level(enum tn_log_level max_level);
int tn_log_enabled(enum tn_log_level level);

/*
 * Writes one line. Under systemd (JOURNAL_STREAM set) the line starts with "<N>" so the
 * journal records the priority; elsewhere with an ISO 8601 UTC time and the level name.
 * Never log secrets: keys, key passwords, or payload bytes.
 */
void tn_log(enum tn_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define tn_log_error(...) tn_log(TN_LOG_ERROR, __VA_ARGS__)
#define tn_log_warn(...) tn_log(TN_LOG_WARN, __VA_ARGS__)
#define tn_log_info(...) tn_log(TN_LOG_INFO, __VA_ARGS__)
#define tn_log_debug(...) do { if (tn_log_enabled(TN_LOG_DEBUG)) tn_log(TN_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
