/* tunnel/notify.h: systemd's readiness protocol (sd_notify over NOTIFY_SOCKET), without libsystemd. */
#ifndef TUNNEL_NOTIFY_H
#define TUNNEL_NOTIFY_H

/*
 * Each call sends one datagram to $NOTIFY_SOCKET when it is set (a path, or "@name" for
 * the abstract namespace) and does nothing otherwise. Returns 1 sent, 0 not under
 * systemd, negative errno on failure.
 */
int tn_notify_ready(const char *status);
int tn_notify_reloading(void);
int tn_notify_stopping(void);
int tn_notify_status(const char *status);

#endif
