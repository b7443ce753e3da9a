/* open.c: the stream-open header codec (layout and rationale in docs/PROTOCOL.md). */
#include "tunnel/open.h"

#include <string.h>

#include "tunnel/be.h"
#include "tunnel/error.h"
#include "tunnel/proxy.h"

/*
 *  0: version u8 (1)          1: reserved u8 (0)        2: total length u16
 *  4: backend kind u8         5: proxy version u8       6: backend port u16
 *  8: peer address            then listener address     (family u8, port u16, 4|16 ip bytes)
 *  then, for a service backend only: name length u8, name bytes
 *  then, version 2 only: authority length u8, authority bytes
 */
#define OPEN_FIXED_LEN 8
#define OPEN_ADDR_HEAD_LEN 3
#define OPEN_MIN_LEN (OPEN_FIXED_LEN + 2 * (OPEN_ADDR_HEAD_LEN + 4))

int tn_open_service_char(unsigned char ch)
{
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '.' || ch == '_' || ch == '-';
}

int tn_open_authority_char(unsigned char ch)
{
  /* [ ] : for the IPv6 literal an HTTP Host may carry. */
  return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == ':' || ch == '[' ||
         ch == ']';
}

/* Length of a valid name (service or authority), or 0 when it is empty, longer than max or has a bad byte. */
static size_t open_name_len(const char *s, size_t max, int (*ok)(unsigned char))
{
  size_t n;

  for (n = 0; n <= max && s[n] != '\0'; n++)
    if (!ok((uint8_t)s[n]))
      return 0;
  return n > max ? 0 : n;
}

static size_t open_put_addr(uint8_t *p, const struct tn_addr *a)
{
  size_t iplen = tn_addr_ip_len(a->family);

  p[0] = a->family;
  tn_put_be16(p + 1, a->port);
  memcpy(p + OPEN_ADDR_HEAD_LEN, a->ip, iplen);
  return OPEN_ADDR_HEAD_LEN + iplen;
}

size_t tn_open_encode(const struct tn_open *o, uint8_t *out, size_t out_len)
{
  size_t svc_len = 0, auth_len = 0;
  size_t total;
  size_t pos;

  if (o->proxy_version > TN_PROXY_V2)
    return 0;
  if (o->backend_kind == TN_OPEN_BACKEND_PORT) {
    if (o->backend_port == 0)
      return 0;
  } else if (o->backend_kind == TN_OPEN_BACKEND_SERVICE) {
    if ((svc_len = open_name_len(o->service, TN_OPEN_MAX_SERVICE, tn_open_service_char)) == 0)
      return 0;
  } else {
    return 0;
  }
  if (tn_addr_ip_len(o->peer.family) == 0 || tn_addr_ip_len(o->listener.family) == 0)
    return 0;
  if (o->authority[0] != '\0' &&
      (auth_len = open_name_len(o->authority, TN_OPEN_MAX_AUTHORITY, tn_open_authority_char)) == 0)
    return 0;
  total = OPEN_FIXED_LEN + 2 * OPEN_ADDR_HEAD_LEN + tn_addr_ip_len(o->peer.family) +
          tn_addr_ip_len(o->listener.family) + (svc_len ? 1 + svc_len : 0) + (auth_len ? 1 + auth_len : 0);
  if (total > out_len)
    return 0;
  out[0] = auth_len ? TN_OPEN_VERSION_AUTHORITY : TN_OPEN_VERSION;
  out[1] = 0;
  tn_put_be16(out + 2, (uint16_t)total);
  out[4] = o->backend_kind;
  out[5] = o->proxy_version;
  tn_put_be16(out + 6, o->backend_kind == TN_OPEN_BACKEND_PORT ? o->backend_port : 0);
  pos = OPEN_FIXED_LEN;
  pos += open_put_addr(out + pos, &o->peer);
  pos += open_put_addr(out + pos, &o->listener);
  if (svc_len) {
    out[pos++] = (uint8_t)svc_len;
    memcpy(out + pos, o->service, svc_len);
    pos += svc_len;
  }
  if (auth_len) {
    out[pos++] = (uint8_t)auth_len;
    memcpy(out + pos, o->authority, auth_len);
    pos += auth_len;
  }
  return pos;
}

/*
 * The decoder walks fields in order and judges each as soon as its bytes arrive, so a
 * bad byte fails at once while every true prefix of a good header is TN_ERR_NEED_MORE.
 * A field may never reach past the declared total length.
 */
struct open_cur {
  const uint8_t *in;
  size_t len;
  size_t total;
  size_t pos;
};

/* 1 when n more bytes are available, else the decode result. */
static int open_need(const struct open_cur *c, size_t n)
{
  if (c->pos + n > c->total)
    return TN_ERR_INVALID;
  if (c->pos + n > c->len)
    return TN_ERR_NEED_MORE;
  return 1;
}

static int open_get_addr(struct open_cur *c, struct tn_addr *a)
{
  size_t iplen;
  int r;

  if ((r = open_need(c, 1)) != 1)
    return r;
  if ((iplen = tn_addr_ip_len(c->in[c->pos])) == 0)
    return TN_ERR_INVALID;
  if ((r = open_need(c, OPEN_ADDR_HEAD_LEN + iplen)) != 1)
    return r;
  memset(a, 0, sizeof(*a));
  a->family = c->in[c->pos];
  a->port = tn_get_be16(c->in + c->pos + 1);
  memcpy(a->ip, c->in + c->pos + OPEN_ADDR_HEAD_LEN, iplen);
  c->pos += OPEN_ADDR_HEAD_LEN + iplen;
  return 1;
}

/* A length byte (1..max) and that many bytes each passing ok, copied with a NUL into out. */
static int open_get_name(struct open_cur *c, char *out, size_t max, int (*ok)(unsigned char))
{
  size_t n;
  int r;

  if ((r = open_need(c, 1)) != 1)
    return r;
  n = c->in[c->pos++];
  if (n == 0 || n > max)
    return TN_ERR_INVALID;
  for (size_t i = 0; i < n; i++) {
    if ((r = open_need(c, 1)) != 1)
      return r;
    if (!ok(c->in[c->pos]))
      return TN_ERR_INVALID;
    out[i] = (char)c->in[c->pos++];
  }
  out[n] = '\0';
  return 1;
}

static int open_decode(struct tn_open *o, const uint8_t *in, size_t in_len)
{
  struct open_cur c;
  int r;

  if (in_len < 1)
    return TN_ERR_NEED_MORE;
  /* 0 was never a version; anything newer is refused so the caller can reset the stream. */
  if (in[0] == 0)
    return TN_ERR_INVALID;
  if (in[0] != TN_OPEN_VERSION && in[0] != TN_OPEN_VERSION_AUTHORITY)
    return TN_ERR_UNSUPPORTED;
  if (in_len < 2)
    return TN_ERR_NEED_MORE;
  if (in[1] != 0)
    return TN_ERR_INVALID;
  if (in_len < 4)
    return TN_ERR_NEED_MORE;
  c.in = in;
  c.len = in_len;
  c.total = tn_get_be16(in + 2);
  c.pos = 4;
  if (c.total < OPEN_MIN_LEN || c.total > TN_OPEN_MAX_LEN)
    return TN_ERR_INVALID;

  /* No memset of the whole struct: the name buffers would dominate the cost. */
  o->service[0] = '\0';
  o->authority[0] = '\0';
  if ((r = open_need(&c, 1)) != 1)
    return r;
  o->backend_kind = in[c.pos++];
  if (o->backend_kind != TN_OPEN_BACKEND_PORT && o->backend_kind != TN_OPEN_BACKEND_SERVICE)
    return TN_ERR_INVALID;
  if ((r = open_need(&c, 1)) != 1)
    return r;
  o->proxy_version = in[c.pos++];
  if (o->proxy_version > TN_PROXY_V2)
    return TN_ERR_INVALID;
  /* The port is judged byte by byte: a service header's nonzero high byte fails early. */
  if ((r = open_need(&c, 1)) != 1)
    return r;
  if (o->backend_kind == TN_OPEN_BACKEND_SERVICE && in[c.pos] != 0)
    return TN_ERR_INVALID;
  if ((r = open_need(&c, 2)) != 1)
    return r;
  o->backend_port = tn_get_be16(in + c.pos);
  if ((o->backend_kind == TN_OPEN_BACKEND_PORT) != (o->backend_port != 0))
    return TN_ERR_INVALID;
  c.pos += 2;
  if ((r = open_get_addr(&c, &o->peer)) != 1)
    return r;
  if ((r = open_get_addr(&c, &o->listener)) != 1)
    return r;
  if (o->backend_kind == TN_OPEN_BACKEND_SERVICE &&
      (r = open_get_name(&c, o->service, TN_OPEN_MAX_SERVICE, tn_open_service_char)) != 1)
    return r;
  if (in[0] == TN_OPEN_VERSION_AUTHORITY &&
      (r = open_get_name(&c, o->authority, TN_OPEN_MAX_AUTHORITY, tn_open_authority_char)) != 1)
    return r;
  /* No version has optional fields: a longer total is a broken or confused sender. */
  if (c.pos != c.total)
    return TN_ERR_INVALID;
  return (int)c.pos;
}

int tn_open_decode(struct tn_open *o, const uint8_t *in, size_t in_len)
{
  struct tn_open tmp;
  int r = open_decode(&tmp, in, in_len);

  /* A failed call leaves the caller's struct untouched. */
  if (r > 0)
    *o = tmp;
  return r;
}
