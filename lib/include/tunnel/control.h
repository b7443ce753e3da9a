/* tunnel/control.h: control messages tunnelc sends tunneld on client-opened streams (allow-list announcement). */
#ifndef TUNNEL_CONTROL_H
#define TUNNEL_CONTROL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Each client-opened (odd) stream carries exactly one control message and then FIN; the
 * receiver answers with FIN. A peer that predates control messages refuses the stream with
 * RST, which is why they travel on a stream and not in a new frame type (an unknown frame
 * type ends the session). Byte layout in docs/PROTOCOL.md section 8a.
 */

#define TN_CTL_VERSION 1
#define TN_CTL_HEAD_LEN 8
/* Every message fits in a stream's initial window, so it never waits for a window update. */
#define TN_CTL_MAX_LEN (256u * 1024u)

enum tn_ctl_type {
  TN_CTL_ALLOW = 1,  /* the BackEndPorts and service names the client serves */
  TN_CTL_ROTATE = 2  /* the certificate the client's next link will present (rotation) */
};

/* A rotation message: head, then the SHA-256 of the next certificate (DER). */
#define TN_CTL_ROTATE_LEN (TN_CTL_HEAD_LEN + 32u)

#define TN_CTL_MAX_PORTS 8192u
#define TN_CTL_MAX_NAMES 512u
#define TN_CTL_MAX_NAME 255u

/* A decoded allow-list (about 140 KiB: allocate it). Ports strictly ascending, names strictly ascending (strcmp). */
struct tn_ctl_allow {
  uint16_t ports[TN_CTL_MAX_PORTS];
  size_t n_ports;
  char names[TN_CTL_MAX_NAMES][TN_CTL_MAX_NAME + 1];
  size_t n_names;
};

/*
 * Reads the 8-byte head common to every message: TN_OK with version, type and total length set,
 * TN_ERR_NEED_MORE for fewer than 8 bytes, TN_ERR_INVALID for a nonzero reserved field or a total
 * length below 8 or above TN_CTL_MAX_LEN.
 */
int tn_ctl_peek(const uint8_t *in, size_t len, uint8_t *version, uint8_t *type, uint32_t *total);

/*
 * Writes an allow-list message: ports strictly ascending and nonzero, names strictly ascending,
 * each 1-255 bytes of [A-Za-z0-9._-]. Returns bytes written, or 0 when the input breaks a rule,
 * exceeds TN_CTL_MAX_PORTS / TN_CTL_MAX_NAMES, or does not fit out_len.
 */
size_t tn_ctl_allow_encode(const uint16_t *ports, size_t n_ports, const char *const *names, size_t n_names,
                           uint8_t *out, size_t out_len);

/*
 * Decodes an allow-list message. Returns the message length consumed, TN_ERR_NEED_MORE for a
 * valid prefix, TN_ERR_UNSUPPORTED for another version or type (skip it: its total length is
 * from tn_ctl_peek), or TN_ERR_INVALID. Judges each byte as soon as it has arrived.
 */
int tn_ctl_allow_decode(struct tn_ctl_allow *out, const uint8_t *in, size_t len);

/* Writes a rotation message for the certificate with this SHA-256; returns TN_CTL_ROTATE_LEN, or 0 when out_len is short. */
size_t tn_ctl_rotate_encode(const uint8_t sha256[32], uint8_t *out, size_t out_len);

/* Decodes a rotation message: TN_CTL_ROTATE_LEN, TN_ERR_NEED_MORE, TN_ERR_UNSUPPORTED or TN_ERR_INVALID, as above. */
int tn_ctl_rotate_decode(uint8_t sha256[32], const uint8_t *in, size_t len);

/* True when the list has port (binary search). */
int tn_ctl_allow_has_port(const struct tn_ctl_allow *a, uint16_t port);
/* True when the list has the service name. */
int tn_ctl_allow_has_name(const struct tn_ctl_allow *a, const char *name);
/* The same searches over any sorted ports, and names in rows as a decoded list holds them (a copy kept elsewhere). */
int tn_ctl_ports_contain(const uint16_t *sorted, size_t n, uint16_t port);
int tn_ctl_names_contain(const char (*sorted)[TN_CTL_MAX_NAME + 1], size_t n, const char *name);

#endif
