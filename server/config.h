/* config.h: tunneld's configuration file (JSON): ports, certificates, admin identities, state file and limits. */
#ifndef TD_CONFIG_H
#define TD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "table.h"
#include "tunnel/addr.h"
#include "tunnel/limits.h"

/* Every tunneld-relevant limit of tunnel/defaults.h, overridable by the "Limits" object. */
struct td_limits {
  struct tn_limits common;             /* first: the shared table's offsets hold here too */
  uint32_t replaced_link_grace_ms;     /* ReplacedLinkGraceMs */
  uint32_t max_connections_per_tunnel; /* MaxConnectionsPerTunnel */
  uint32_t max_connections_per_client; /* MaxConnectionsPerClient */
  uint32_t max_pending_handshakes;     /* MaxPendingHandshakes */
  uint32_t max_pending_per_source;     /* MaxPendingHandshakesPerSource */
  uint32_t api_max_non_admin_per_source;   /* ApiMaxNonAdminPerSource */
  uint32_t api_max_non_admin_per_identity; /* ApiMaxNonAdminPerIdentity */
  uint32_t max_tunnels;                /* MaxTunnels */
  uint32_t max_backups_per_tunnel;     /* MaxBackupsPerTunnel */
  uint32_t api_max_body;               /* ApiMaxBody */
  uint32_t api_max_header;             /* ApiMaxHeader */
  uint32_t api_header_timeout_ms;      /* ApiHeaderTimeoutMs */
  uint32_t hostname_timeout_ms;        /* HostnameTimeoutMs */
  uint32_t api_idle_timeout_ms;        /* ApiIdleTimeoutMs */
  uint32_t api_max_connections;        /* ApiMaxConnections */
  uint32_t takeover_ping_timeout_ms;   /* TakeoverPingTimeoutMs: still accepted so older configs load; no effect */
  uint32_t max_public_per_source;      /* MaxPublicConnectionsPerSource */
};

struct td_config {
  char *path;                 /* the file it came from, for messages */
  uint16_t control_port;      /* TunnelControlPort */
  uint16_t management_port;   /* ManagementPort */
  struct tn_addr listen;      /* ListenAddress, ip only (port 0); default :: (dual-stack, all addresses) */
  /* File names below are as given when absolute, else relative to the config file's directory. */
  char *ca_file;              /* CaCertificateFile */
  char *cert_file;            /* ServerTlsCertificateFile */
  char *key_file;             /* ServerTlsKeyFile */
  char *crl_file;             /* CrlFile, NULL when not set */
  char **admin_identities;    /* AdminIdentities, at least one */
  size_t n_admin_identities;
  char *state_file;           /* StateFile */
  int metrics_enabled;        /* MetricsListen given */
  struct tn_addr metrics;     /* MetricsListen ip + port */
  int debug_log;              /* DebugLog */
  struct td_limits limits;
};

/* The defaults of tunnel/defaults.h. */
void td_limits_default(struct td_limits *l);

/*
 * Loads and validates path into *cfg. Returns TN_OK, or TN_ERR_INVALID (TN_ERR_NOMEM)
 * with err set to one line naming the file, the field and the fault, e.g.
 * `/etc/tunnel/tunneld.json: "ManagementPort": must be an integer 1-65535, got "abc"`.
 * On error *cfg holds nothing that needs freeing (td_config_free is still safe).
 */
int td_config_load(struct td_config *cfg, const char *path, char *err, size_t errlen);
void td_config_free(struct td_config *cfg);

/* True when identity (a certificate CN) is listed in AdminIdentities. */
int td_config_is_admin(const struct td_config *cfg, const char *identity);
/*
 * True when a certificate is an admin: its CN is listed, or its SHA-256 fingerprint is
 * (in any form people write: openssl's colon-separated upper case, or 64 hex digits).
 * A fingerprint pins one certificate; a CN admits any certificate the CA issues with it.
 */
int td_config_is_admin_cert(const struct td_config *cfg, const char *cn, const char *sha256_hex);

/* The endpoints the server binds itself (control, management, metrics), for td_table_from_json. */
void td_config_reserved(const struct td_config *cfg, struct td_reserved *out);

#endif
