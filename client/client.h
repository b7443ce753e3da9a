/* client.h: tunnelc's event-loop wiring: a link kept up to each configured tunneld, each stream dialed to an allowed backend. */
#ifndef TC_CLIENT_H
#define TC_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "server_link.h"
#include "tunnel/ratelog.h"
#include "tunnel/tls.h"

/* Repeated stream ends and refusals: one line per kind and backend per interval, as tunneld's refusals. */
#define TC_RATELOG_MAX_KEYS 64u
#define TC_RATELOG_INTERVAL_MS 10000u

struct tc_client {
  uv_loop_t *loop;
  struct tc_config cfg;
  tn_tls_config *tls;
  char identity[TN_TLS_CN_MAX];   /* our certificate's CN */
  char cert_sha256[65];

  struct tc_server **servers;     /* configured ones in order, then removed ones still draining */
  size_t n_servers;
  bool stopping;
  bool stopped;
  bool ready_notified;
  size_t status_up;               /* connected servers in the last STATUS sent; SIZE_MAX before the first */
  char status[96];                /* systemd status text: "N of M servers connected" with Servers */
  tn_ratelog *ratelog;           /* streams that end abnormally: each visitor can cause one (NULL: unlimited) */
  void (*on_stopped)(struct tc_client *client);
};

/*
 * Loads cfg_path (config, certificates, identity check). On failure returns non-zero with
 * one line in err naming the file, field and reason; nothing is started.
 */
int tc_client_init(struct tc_client *c, uv_loop_t *loop, const char *cfg_path, char *err, size_t errlen);
/* Starts connecting to every server; returns at once. */
void tc_client_start(struct tc_client *c);
/*
 * SIGHUP: reloads config and certificates. Servers kept (same host, port and ServerName) keep their links;
 * removed ones drain; added ones connect. A changed certificate is rotated on each link. A configuration or
 * certificate that fails keeps the running ones and returns -1 with the reason in err.
 */
int tc_client_reload(struct tc_client *c, const char *cfg_path, char *err, size_t errlen);
/* SIGTERM: GoAway to every server, let open streams finish up to the drain timeout, then on_stopped. */
void tc_client_stop(struct tc_client *c);
/* The systemd status text for now ("reloaded" with ServerHost, "N of M servers connected" with Servers). */
const char *tc_client_status(struct tc_client *c);
/* Frees what init allocated (after the loop stopped). */
void tc_client_free(struct tc_client *c);

/* From server_link.c: a link came up or went down, or an attempt failed (readiness and status). */
void tc_client_server_changed(struct tc_client *c);
/* From server_link.c: s reached TC_SERVER_STOPPED. */
void tc_client_server_stopped(struct tc_client *c, struct tc_server *s);
/* From server_link.c: a removed server is about to be freed; drop it from the list. */
void tc_client_forget(struct tc_client *c, struct tc_server *s);

#endif
