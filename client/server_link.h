/* server_link.h: one tunneld server of tunnelc: its link kept up with its own backoff, its streams, its drain. */
#ifndef TC_SERVER_LINK_H
#define TC_SERVER_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "backoff.h"
#include "config.h"
#include "tunnel/link.h"

struct tc_client;

enum tc_server_state {
  TC_SERVER_RESOLVING,   /* looking up the host */
  TC_SERVER_CONNECTING,  /* TCP + TLS to one of its addresses */
  TC_SERVER_UP,          /* link established */
  TC_SERVER_WAITING,     /* backing off before the next attempt */
  TC_SERVER_STOPPING,    /* SIGTERM, or removed by SIGHUP: draining */
  TC_SERVER_STOPPED
};

struct tc_server {
  struct tc_client *client;
  struct tc_config_server target; /* own copies of host and server_name */
  /* Appended to "client ID" in log lines: empty with ServerHost (lines as they always were), " (server H:P)"
   * with Servers, so each line says which link it is about. */
  char tag[TC_CONFIG_HOST_MAX + 24];

  enum tc_server_state state;
  tn_link *link;                  /* the attempt or the established link */
  tn_link *old_link;              /* certificate rotation: the previous link, serving until tunneld moves off it */
  uv_timer_t retry_timer;
  uv_timer_t drain_timer;
  uv_getaddrinfo_t resolve_req;
  struct addrinfo *addrs;         /* the host's addresses, tried in order */
  struct addrinfo *next_addr;
  struct tc_backoff backoff;
  char last_failure[256];         /* the last logged reason, so repeats are not logged again */
  uint32_t attempts_since_up;
  uint64_t down_since_ms;
  size_t open_streams;
  bool failed_once;               /* an attempt failed before any link came up (readiness) */
  bool removed;                   /* dropped by a reload: freed once stopped with no stream left */
  int handles_closing;            /* timers whose close callback is still due (release) */
};

/* A server for target (copied), not yet connecting; NULL when out of memory. */
struct tc_server *tc_server_new(struct tc_client *c, const struct tc_config_server *target, bool listed);
/* Starts connecting; returns at once. */
void tc_server_start(struct tc_server *s);
/* GoAway, open streams finish up to the drain timeout, then the client hears tc_client_server_stopped. */
void tc_server_stop(struct tc_server *s);
/* A second stop signal: ends the drain now. Returns true when a drain was running. */
bool tc_server_cut_drain(struct tc_server *s);
/* Reload, step 1: true (and one warning line) when the new CA or CRL no longer trusts the server reached. */
bool tc_server_untrusted(struct tc_server *s);
/* Reload, step 2: reconnect, rotate the certificate, or just announce the new allow-list. */
void tc_server_reloaded(struct tc_server *s, bool reconnect, bool server_changed, bool untrusted);
/* The next attempt goes to target (ServerHost changed); listed: name the server in log lines (Servers). */
int tc_server_retarget(struct tc_server *s, const struct tc_config_server *target, bool listed);
/* Removed by a reload: drains, then frees itself (and leaves the client's list) once nothing refers to it. */
void tc_server_remove(struct tc_server *s);
bool tc_server_is_up(const struct tc_server *s);
/* Frees a server whose handles the loop has already closed (program exit). */
void tc_server_free(struct tc_server *s);

#endif
