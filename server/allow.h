/* allow.h: what each client announced it serves (allow-list control message), and the tunnels it cannot serve. */
#ifndef TD_ALLOW_H
#define TD_ALLOW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnel/control.h"
#include "tunnel/link.h"

struct td_server;
struct td_client;

/* A client's announced allow-list, sized to what it holds. Ports ascending, names ascending (strcmp). */
struct td_allow {
  uint16_t *ports;
  size_t n_ports;
  char (*names)[TN_CTL_MAX_NAME + 1];
  size_t n_names;
};

void td_allow_free(struct td_allow *a);

/* tn_link on_message for control links: decodes, stores and logs; a malformed message closes the link. */
void td_allow_on_message(tn_link *link, const uint8_t *msg, size_t len);

/* The link became its client's current one: the list it announced (if any yet) is the client's now. */
void td_allow_link_admitted(struct td_server *srv, struct td_client *c, struct td_allow **link_allow);

/* Logs and ends a link whose control message breaks the protocol: GoAway(1), then close. what says how. */
void td_control_protocol_error(tn_link *link, const char *what);

/* GET /tunnels "Problems" of tunnel index: a new array of strings, or NULL when there are none (or none known). */
json_t *td_allow_problems(const struct td_server *srv, size_t index);

/* GET /clients fields: AllowedBackEndPorts and AllowedServices, set on o when the client's list is known. */
int td_allow_client_json(const struct td_client *c, json_t *o);

/* Logs a warning for every tunnel of the table in force that a known list does not allow (after a PUT). */
void td_allow_log_table(const struct td_server *srv);

#endif
