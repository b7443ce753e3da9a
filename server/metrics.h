/* metrics.h: tunneld's Prometheus text, served on the management API and, optionally, on a plain-HTTP MetricsListen port. */
#ifndef TD_METRICS_H
#define TD_METRICS_H

#include "buf.h"

struct td_server;

/* Appends every server gauge and counter in Prometheus text format 0.0.4. TN_OK or TN_ERR_NOMEM. */
int td_metrics_text(const struct td_server *srv, struct td_buf *out);

/*
 * Appends value as a Prometheus label value (text format 0.0.4): backslash, double quote and
 * line feed escaped as \\, \" and \n; anything that is not printable UTF-8 as '?', so a
 * scrape never carries invalid UTF-8. TN_OK or TN_ERR_NOMEM.
 */
int td_metrics_label(struct td_buf *out, const char *value);

/* Binds MetricsListen (when configured) for unauthenticated GET /metrics. 0 or a libuv error. */
int td_metrics_listen(struct td_server *srv, char *err, size_t errlen);
/* Stops the MetricsListen port and closes the scrapes under way. */
void td_metrics_close(struct td_server *srv);

#endif
