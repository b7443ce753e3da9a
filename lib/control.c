/* control.c: the control-message codec (layout and compatibility rule in docs/PROTOCOL.md). */
#include "tunnel/control.h"

#include <string.h>

#include "tunnel/be.h"
#include "tunnel/error.h"
#include "tunnel/open.h"

/*
 *  0: version u8 (1)   1: type u8   2: reserved u16 (0)   4: total length u32
 *  allow-list body:    port count u16, ports u16 ascending; name count u16, names (length u8, bytes) ascending
 *
 * Names are service names, so they are judged by the stream-open header's character set (tn_open_service_char):
 * a name tunnelc announces is one tunneld can send back in an open header.
 */

/* Byte order of two names given with lengths: the order strcmp gives the NUL-terminated forms. */
static int ctl_name_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
  int c = memcmp(a, b, alen < blen ? alen : blen);

  if (c != 0)
    return c;
  return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static void ctl_head(uint8_t *out, uint8_t type, uint32_t total)
{
  out[0] = TN_CTL_VERSION;
  out[1] = type;
  tn_put_be16(out + 2, 0);
  tn_put_be32(out + 4, total);
}

int tn_ctl_peek(const uint8_t *in, size_t len, uint8_t *version, uint8_t *type, uint32_t *total)
{
  uint32_t t;

  /* The reserved field is judged as soon as it is there: garbage fails before 8 bytes arrive. */
  if ((len > 2 && in[2] != 0) || (len > 3 && in[3] != 0))
    return TN_ERR_INVALID;
  if (len < TN_CTL_HEAD_LEN)
    return TN_ERR_NEED_MORE;
  t = tn_get_be32(in + 4);
  if (t < TN_CTL_HEAD_LEN || t > TN_CTL_MAX_LEN)
    return TN_ERR_INVALID;
  *version = in[0];
  *type = in[1];
  *total = t;
  return TN_OK;
}

size_t tn_ctl_allow_encode(const uint16_t *ports, size_t n_ports, const char *const *names, size_t n_names,
                           uint8_t *out, size_t out_len)
{
  size_t pos = TN_CTL_HEAD_LEN + 2;

  if (n_ports > TN_CTL_MAX_PORTS || n_names > TN_CTL_MAX_NAMES || out_len < pos + 2 * n_ports + 2)
    return 0;
  tn_put_be16(out + TN_CTL_HEAD_LEN, (uint16_t)n_ports);
  for (size_t i = 0; i < n_ports; i++) {
    if (ports[i] == 0 || (i > 0 && ports[i] <= ports[i - 1]))
      return 0;
    tn_put_be16(out + pos, ports[i]);
    pos += 2;
  }
  tn_put_be16(out + pos, (uint16_t)n_names);
  pos += 2;
  for (size_t i = 0; i < n_names; i++) {
    size_t n = strlen(names[i]);

    if (n == 0 || n > TN_CTL_MAX_NAME || pos + 1 + n > out_len ||
        (i > 0 && strcmp(names[i - 1], names[i]) >= 0))
      return 0;
    for (size_t k = 0; k < n; k++)
      if (!tn_open_service_char((uint8_t)names[i][k]))
        return 0;
    out[pos] = (uint8_t)n;
    memcpy(out + pos + 1, names[i], n);
    pos += 1 + n;
  }
  if (pos > TN_CTL_MAX_LEN)
    return 0;
  ctl_head(out, TN_CTL_ALLOW, (uint32_t)pos);
  return pos;
}

/* Body after the head: each field judged as soon as it is complete. */
static int ctl_allow_body(struct tn_ctl_allow *out, const uint8_t *in, size_t len, size_t total)
{
  size_t pos = TN_CTL_HEAD_LEN, n, avail = len < total ? len : total;

  if (avail < pos + 2)
    return len < total ? TN_ERR_NEED_MORE : TN_ERR_INVALID;
  n = tn_get_be16(in + pos);
  if (n > TN_CTL_MAX_PORTS)
    return TN_ERR_INVALID;
  pos += 2;
  for (size_t i = 0; i < n; i++, pos += 2) {
    if (pos + 2 > avail)
      return len < total && pos + 2 <= total ? TN_ERR_NEED_MORE : TN_ERR_INVALID;
    out->ports[i] = tn_get_be16(in + pos);
    if (out->ports[i] == 0 || (i > 0 && out->ports[i] <= out->ports[i - 1]))
      return TN_ERR_INVALID;
    out->n_ports = i + 1;
  }
  if (pos + 2 > avail)
    return len < total && pos + 2 <= total ? TN_ERR_NEED_MORE : TN_ERR_INVALID;
  n = tn_get_be16(in + pos);
  if (n > TN_CTL_MAX_NAMES)
    return TN_ERR_INVALID;
  pos += 2;
  for (size_t i = 0; i < n; i++) {
    size_t nl, k;

    if (pos + 1 > avail)
      return len < total && pos + 1 <= total ? TN_ERR_NEED_MORE : TN_ERR_INVALID;
    nl = in[pos];
    if (nl == 0 || pos + 1 + nl > total)
      return TN_ERR_INVALID;
    for (k = 0; k < nl && pos + 1 + k < avail; k++)
      if (!tn_open_service_char(in[pos + 1 + k]))
        return TN_ERR_INVALID;
    if (k < nl)
      return TN_ERR_NEED_MORE;
    if (i > 0 && ctl_name_cmp((const uint8_t *)out->names[i - 1], strlen(out->names[i - 1]), in + pos + 1, nl) >= 0)
      return TN_ERR_INVALID;
    memcpy(out->names[i], in + pos + 1, nl);
    out->names[i][nl] = '\0';
    out->n_names = i + 1;
    pos += 1 + nl;
  }
  return pos == total ? (int)total : TN_ERR_INVALID;
}

int tn_ctl_allow_decode(struct tn_ctl_allow *out, const uint8_t *in, size_t len)
{
  uint8_t version = 0, type = 0;
  uint32_t total = 0;
  int rc;

  out->n_ports = out->n_names = 0;
  if (len > 0 && in[0] == 0)
    return TN_ERR_INVALID;  /* version 0 is never valid */
  rc = tn_ctl_peek(in, len, &version, &type, &total);
  if (rc != TN_OK)
    return rc;
  if (version != TN_CTL_VERSION || type != TN_CTL_ALLOW)
    return TN_ERR_UNSUPPORTED;
  return ctl_allow_body(out, in, len, total);
}

size_t tn_ctl_rotate_encode(const uint8_t sha256[32], uint8_t *out, size_t out_len)
{
  if (out_len < TN_CTL_ROTATE_LEN)
    return 0;
  ctl_head(out, TN_CTL_ROTATE, TN_CTL_ROTATE_LEN);
  memcpy(out + TN_CTL_HEAD_LEN, sha256, 32);
  return TN_CTL_ROTATE_LEN;
}

int tn_ctl_rotate_decode(uint8_t sha256[32], const uint8_t *in, size_t len)
{
  uint8_t version = 0, type = 0;
  uint32_t total = 0;
  int rc;

  if (len > 0 && in[0] == 0)
    return TN_ERR_INVALID;
  rc = tn_ctl_peek(in, len, &version, &type, &total);
  if (rc != TN_OK)
    return rc;
  if (version != TN_CTL_VERSION || type != TN_CTL_ROTATE)
    return TN_ERR_UNSUPPORTED;
  if (total != TN_CTL_ROTATE_LEN)
    return TN_ERR_INVALID;
  if (len < TN_CTL_ROTATE_LEN)
    return TN_ERR_NEED_MORE;
  memcpy(sha256, in + TN_CTL_HEAD_LEN, 32);
  return TN_CTL_ROTATE_LEN;
}

int tn_ctl_ports_contain(const uint16_t *sorted, size_t n, uint16_t port)
{
  size_t lo = 0, hi = n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (sorted[mid] == port)
      return 1;
    if (sorted[mid] < port)
      lo = mid + 1;
    else
      hi = mid;
  }
  return 0;
}

int tn_ctl_names_contain(const char (*sorted)[TN_CTL_MAX_NAME + 1], size_t n, const char *name)
{
  size_t lo = 0, hi = n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(sorted[mid], name);
    if (c == 0)
      return 1;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return 0;
}

int tn_ctl_allow_has_port(const struct tn_ctl_allow *a, uint16_t port)
{
  return tn_ctl_ports_contain(a->ports, a->n_ports, port);
}

int tn_ctl_allow_has_name(const struct tn_ctl_allow *a, const char *name)
{
  return tn_ctl_names_contain(a->names, a->n_names, name);
}
