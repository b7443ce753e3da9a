/* client.h: tunnelc's event-loop wiring: one link to tunneld kept up, each stream it opens dialed to an allowed backend. */
#ifndef TC_CLIENT_H
#define TC_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "backoff.h"
#include "config.h"
#include "tunnel/link.h"
#include "tunnel/tls.h"

enum tc_client_state {
  TC_CLIENT_RESOLVING,   /* looking up ServerHost */
  TC_CLIENT_CONNECTING,  /* TCP + TLS to one of its addresses */
  TC_CLIENT_UP,          /* link established */
  TC_CLIENT_WAITING,     /* backing off before the next attempt */
  TC_CLIENT_STOPPING,    /* SIGTERM: draining */
  TC_CLIENT_STOPPED
};

struct tc_client {
  uv_loop_t *loop;
  struct tc_config cfg;
  tn_tls_config *tls;
  char identity[TN_TLS_CN_MAX];   /* our certificate's CN */
  char cert_sha256[65];

  enum tc_client_state state;
  tn_link *link;                  /* the attempt or the established link */
  tn_link *old_link;              /* certificate rotation: the previous link, serving until tunneld moves off it */
  uv_timer_t retry_timer;
  uv_timer_t drain_timer;
  uv_getaddrinfo_t resolve_req;
  struct addrinfo *addrs;         /* ServerHost's addresses, tried in order */
  struct addrinfo *next_addr;
  struct tc_backoff backoff;
  char last_failure[256];         /* the last logged reason, so repeats are not logged again */
  uint32_t attempts_since_up;
  uint64_t down_since_ms;
  size_t open_streams;
  bool ready_notified;
  void (*on_stopped)(struct tc_client *client);
};

/*
 * Loads cfg_path (config, certificates, identity check). On failure returns non-zero with
 * one line in err naming the file, field and reason; nothing is started.
 */
int tc_client_init(struct tc_client *c, uv_loop_t *loop, const char *cfg_path, char *err, size_t errlen);
/* Starts connecting; returns at once. */
void tc_client_start(struct tc_client *c);
/* SIGHUP: reloads config and certificates; reconnects if the server or our certificate changed. */
void tc_client_reload(struct tc_client *c, const char *cfg_path);
/* SIGTERM: GoAway to the server, let open streams finish up to the drain timeout, then on_stopped. */
void tc_client_stop(struct tc_client *c);
/* Frees what init allocated (after the loop stopped). */
void tc_client_free(struct tc_client *c);

#endif
