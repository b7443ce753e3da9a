/* gate.h: the links of tunneld's two TLS ports and what admits them: handshake limits, per-source bounds, descriptors. */
#ifndef TD_GATE_H
#define TD_GATE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "sources.h"
#include "tunnel/link.h"

struct td_server;
struct td_client;
struct td_allow;
struct td_mgmt_conn;

/* A link's server-side context: which client it belongs to and whether it is being retired. */
struct td_link_ctx {
  struct td_server *srv;
  struct td_client *client;      /* NULL during the handshake */
  bool management;               /* a management-port connection (raw TLS) */
  bool handshake_done;
  bool retiring;                 /* replaced or shutting down: closes when drained or at deadline */
  uint64_t retire_deadline_ms;
  struct td_link_ctx *next;      /* srv->links */
  struct td_link_ctx *prev;
  tn_link *link;
  struct td_mgmt_conn *mgmt;     /* management connections only */
  struct td_allow *allow;        /* announced before the link became its client's current one */
  char rotate_to[65];            /* "": none; else the certificate (sha256 hex) this current link vouched for */
  bool quiet_close;              /* the reason was already logged */
  /* Until the handshake ends: in srv's pending list (oldest first) and counted for its source. */
  bool pending;
  enum td_count pending_kind;
  uint64_t pending_since;        /* loop time of the accept: a handshake's progress until its first answer */
  struct td_link_ctx *pending_next;
  struct td_link_ctx *pending_prev;
  char source[48];               /* the peer's source network, "192.0.2.7" or "2001:db8::/64" */
  char source_key[56];           /* "ip:" + source, the key in srv->sources */
};

/*
 * A just-accepted link is listed and starts its handshake: counted globally and for its source, listed as pending.
 * Past MaxPendingHandshakesPerSource on this port, the source's handshake with the least progress other than the
 * newcomer is closed (see gate.c): one address can hold only so many, and never starve other sources.
 */
void td_gate_add(struct td_server *srv, struct td_link_ctx *ctx, enum td_count kind);
/* The handshake ended (established or closed): uncounted and unlisted as pending. Idempotent. */
void td_gate_pending_done(struct td_server *srv, struct td_link_ctx *ctx);
/* Unlists and frees a link context whose link has closed. */
void td_gate_forget(struct td_link_ctx *ctx);
/* Every live link of both ports, newest first: ctx NULL gives the first, NULL after the last. */
struct td_link_ctx *td_gate_next(const struct td_server *srv, const struct td_link_ctx *ctx);
/*
 * Admission of a connection waiting on a listener of the control (TD_COUNT_CONTROL_PENDING) or management
 * (TD_COUNT_MGMT_PENDING) port: makes room under the global caps (see gate.c for whom it closes) and returns true
 * when the caller may accept it; false when it was accepted and reset at once (refused by a limit, counted).
 */
bool td_gate_admit(struct td_server *srv, uv_stream_t *listener, enum td_count kind);
/* Accepts the next connection from a listener and resets it at once (refused by a limit). */
void td_gate_drop(uv_stream_t *listener);
/* A failed accept on any port: true when it was for lack of descriptors and the waiting connections were shed. */
bool td_gate_shed_on_emfile(struct td_server *srv, uv_stream_t *server, int status);
/* The sweep's check that descriptors are available again (or still exhausted), for the log. */
void td_gate_probe_descriptors(struct td_server *srv);

#endif
