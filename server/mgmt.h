/* mgmt.h: the management port: admin connections, their HTTP/1.1 requests answered by the API, PUTs in turn. */
#ifndef TD_MGMT_H
#define TD_MGMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "put.h"

struct td_server;
struct td_mgmt_conn;

/* A connection accepted on srv->management: its TLS handshake starts, counted by the gate. */
void td_mgmt_accept(struct td_server *srv);

/*
 * The connection behind its transport, so that it runs without TLS or sockets (tests/fuzz/fuzz_mgmt.c). On tunneld
 * the transport is the TLS link in raw mode and the puts are put.c's; everything between (request framing,
 * keep-alive, pipelining, 100-continue, deadlines, the PUT queue) is the same code.
 */
struct td_mgmt_io {
  int (*send)(void *arg, const uint8_t *data, size_t len);   /* TN_OK, or an error (too much queued) */
  /* Both end in td_mgmt_conn_closed, at once (close) or once what was sent is out (close_when_flushed). */
  void (*close)(void *arg, const char *reason);
  void (*close_when_flushed)(void *arg, const char *reason);
  bool (*is_closing)(void *arg);
};

/* How a connection starts a PUT /tunnels and learns whether one is running: put.c's functions on tunneld. */
struct td_mgmt_puts {
  struct td_put *(*start)(struct td_server *srv, const uint8_t *body, size_t len, const struct td_reserved *reserved,
                          const struct td_table_limits *limits, const char *actor, const char *peer,
                          td_put_done_fn done, void *arg);
  bool (*busy)(const struct td_server *srv);
  void (*detach)(struct td_put *p);
};

/* A connection from peer (address text) in source (its network, for rate-limited log lines); NULL on ENOMEM. */
struct td_mgmt_conn *td_mgmt_conn_new(struct td_server *srv, const struct td_mgmt_io *io, void *io_arg,
                                      const struct td_mgmt_puts *puts, const char *peer, const char *source);
/* Its certificate is known: requests are read from now on, an admin kept alive, anyone else answered once. */
void td_mgmt_conn_established(struct td_mgmt_conn *m, const char *cn, const char *sha256, bool admin);
/* Decrypted bytes from the peer. */
void td_mgmt_conn_feed(struct td_mgmt_conn *m, const uint8_t *data, size_t len);
/* The header, body or idle deadline now, as the timer would (408, or a quiet close when idle); false if none runs. */
bool td_mgmt_conn_expire(struct td_mgmt_conn *m);
bool td_mgmt_conn_is_admin(const struct td_mgmt_conn *m);
/* The transport has closed: a PUT under way completes unreported, a waiting one is dropped; freed by the loop. */
void td_mgmt_conn_closed(struct td_mgmt_conn *m);

#endif
