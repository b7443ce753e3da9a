/* backends.h: tunnelc's backend allow-list: turns a stream-open header into a dial target or a refusal. */
#ifndef TC_BACKENDS_H
#define TC_BACKENDS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "tunnel/open.h"

/* Room for a refusal reason: the longest is a 255-byte service name with every byte escaped. */
#define TC_BACKENDS_REASON_MAX 1100

/*
 * Where to dial. The strings are copies, so a target stays valid after the config it
 * came from is freed (a SIGHUP reload while a dial is in flight).
 *
 * Loopback policy for TN_OPEN_BACKEND_PORT: the target is 127.0.0.1:port and
 * fallback_host is "::1". The dialer tries host first; only when that connect fails
 * with "connection refused" does it try fallback_host:port, once. Both addresses are
 * the machine's own loopback on the listed port, so the fallback widens nothing: it
 * lets a service that listens on "localhost" as ::1 only (common for development
 * servers) work without a ServiceToLocalAddrMap entry. A timeout on 127.0.0.1 is not
 * retried on ::1, so a backend that hangs costs one dial timeout, never two.
 *
 * For TN_OPEN_BACKEND_SERVICE the target is exactly the configured host:port and
 * fallback_host is empty. A DNS name is resolved afresh on each dial (every address it
 * yields may be tried); the operator who listed the name chose to trust that resolver.
 */
struct tc_backends_target {
  char host[TC_CONFIG_HOST_MAX + 1];          /* IP literal (IPv6 without brackets) or DNS name */
  char fallback_host[TC_CONFIG_HOST_MAX + 1]; /* "" when there is no fallback */
  uint16_t port;
  bool host_is_ip;                            /* false: host must be resolved first */
  uint8_t kind;                               /* enum tn_open_backend it came from */
};

/*
 * Decides whether the stream described by o may be served. Returns 0 and fills target,
 * or TN_ERR_INVALID and writes a log-ready reason such as "port 22 is not in
 * AllowedBackEndPorts" or "service \"db\" is not in ServiceToLocalAddrMap" (target is
 * then zeroed). Nothing outside the config's lists can ever be returned.
 */
int tc_backends_resolve(const struct tc_config *cfg, const struct tn_open *o, struct tc_backends_target *target,
                        char *reason, size_t reason_len);

/* Writes "127.0.0.1:8080", "[::1]:8080" or "db.lan:5432" for log lines; returns out. */
char *tc_backends_format(const struct tc_backends_target *target, char *out, size_t out_len);

#endif
