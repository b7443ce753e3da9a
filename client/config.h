/* config.h: loads and validates tunnelc's JSON configuration file (keys documented in docs/CONFIG.md). */
#ifndef TC_CONFIG_H
#define TC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnel/limits.h"

/* Longest DNS name or IP literal accepted for a host (RFC 1035 text form without the trailing dot). */
#define TC_CONFIG_HOST_MAX 253
/* Longest service name, the same bound as the stream-open header's. */
#define TC_CONFIG_SERVICE_MAX 255
/* A configuration file larger than this is refused before parsing. */
#define TC_CONFIG_FILE_MAX (1024u * 1024u)

/* One entry of ServiceToLocalAddrMap. */
struct tc_config_service {
  char *name;      /* [A-Za-z0-9._-]{1,255} */
  char *host;      /* IP literal (IPv6 without brackets) or DNS name */
  uint16_t port;   /* 1-65535 */
  bool host_is_ip; /* true when host is an IP literal, so no resolver is needed */
};

/* Most servers in "Servers": each costs a TLS link, a keepalive and a reconnect loop. */
#define TC_CONFIG_SERVERS_MAX 16

/* One tunneld to keep a link to: ServerHost, or one entry of Servers. */
struct tc_config_server {
  char *host;        /* IP literal (IPv6 without brackets) or DNS name */
  uint16_t port;     /* the entry's port, else ServerTunnelControlPort, else 9056 */
  char *server_name; /* name verified in its certificate: the entry's ServerName, else ServerName, else host */
};

/* The "Limits" object: every field starts at its TN_DEFAULT_* value from tunnel/defaults.h. */
struct tc_config_limits {
  struct tn_limits common; /* first: the shared table's offsets hold here too */
  uint32_t dial_timeout_ms;
  uint32_t reconnect_min_ms;
  uint32_t reconnect_max_ms;
  uint32_t reconnect_jitter_percent;
  uint32_t reconnect_reset_after_ms;
};

struct tc_config {
  char *path;                 /* the file it was loaded from, for error messages */
  char *server_host;          /* ServerHost: DNS name or IP literal (IPv6 without brackets); NULL with Servers */
  uint16_t server_port;       /* ServerTunnelControlPort */
  char *server_name;          /* name to verify in the server certificate; NULL = use server_host */
  struct tc_config_server *servers; /* ServerHost as one entry, or Servers in order; never empty once loaded */
  size_t n_servers;
  bool servers_listed;        /* the servers came from "Servers" (its links' log lines name their server) */
  char *ca_file;              /* relative paths are resolved against the config file's directory */
  char *cert_file;
  char *key_file;
  char *crl_file;             /* CrlFile: CRLs checked against the server's certificate; NULL when not set */
  char *client_identifier;    /* NULL when not configured */
  struct tc_config_service *services; /* sorted by name (strcmp) */
  size_t n_services;
  uint16_t *allowed_ports;    /* sorted ascending, no duplicates */
  size_t n_allowed_ports;
  bool debug_log;
  struct tc_config_limits limits;
};

/*
 * Reads and validates the file at path into cfg (which needs no initialisation).
 * Returns 0 on success; on failure returns TN_ERR_INVALID (or TN_ERR_NOMEM), writes one
 * line "<path>: <field>: <what is wrong>" to err, and leaves cfg empty (freeing it is
 * allowed but not needed). Nothing is logged; the caller decides how to report.
 */
int tc_config_load(struct tc_config *cfg, const char *path, char *err, size_t errlen);

/* Releases everything tc_config_load allocated and leaves cfg empty; safe to call twice. */
void tc_config_free(struct tc_config *cfg);

/*
 * Compares ClientIdentifier with the CN of the loaded client certificate. Returns 0 when
 * they match or no ClientIdentifier is configured; otherwise TN_ERR_INVALID with
 * "<path>: "ClientIdentifier": "x" does not match the certificate's CN "y"" in err.
 */
int tc_config_check_identity(const struct tc_config *cfg, const char *cert_cn, char *err, size_t errlen);

/* ServerHost's name to verify in the server certificate: ServerName if set, else ServerHost (NULL with Servers). */
const char *tc_config_server_name(const struct tc_config *cfg);

/*
 * True when a and b are the same server for a reload: host (case-insensitive), port and the name verified
 * in its certificate all equal. A server kept this way keeps its link.
 */
bool tc_config_server_same(const struct tc_config_server *a, const struct tc_config_server *b);

/* The ServiceToLocalAddrMap entry for name, or NULL. */
const struct tc_config_service *tc_config_find_service(const struct tc_config *cfg, const char *name);

/* True when port is listed in AllowedBackEndPorts. */
bool tc_config_port_allowed(const struct tc_config *cfg, uint16_t port);

#endif
