/* proxy.c: PROXY protocol v1/v2 encoders and a strict, allocation-free decoder. */
#include "tunnel/proxy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "tunnel/be.h"
#include "tunnel/error.h"

const uint8_t tn_proxy_v2_signature[12] = {
  0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

/* v2 byte 13 (version and command) and byte 14 (family and transport). */
#define PROXY_V2_CMD_LOCAL 0x20
#define PROXY_V2_CMD_PROXY 0x21
#define PROXY_V2_FAM_UNSPEC 0x00
#define PROXY_V2_FAM_TCP4 0x11
#define PROXY_V2_FAM_UDP4 0x12
#define PROXY_V2_FAM_TCP6 0x21
#define PROXY_V2_FAM_UDP6 0x22
#define PROXY_V2_FAM_UNIX_STREAM 0x31
#define PROXY_V2_FAM_UNIX_DGRAM 0x32
#define PROXY_V2_ADDR_LEN_INET 12
#define PROXY_V2_ADDR_LEN_INET6 36
#define PROXY_V2_TLV_HEADER_LEN 3

static const char proxy_v1_prefix[] = "PROXY ";
#define PROXY_V1_PREFIX_LEN 6

/* ---- encoding ---- */

static int proxy_info_families_ok(const struct tn_proxy_info *info)
{
  if (info->src.family != info->dst.family)
    return 0;
  return info->src.family == TN_AF_UNSPEC || info->src.family == TN_AF_INET ||
         info->src.family == TN_AF_INET6;
}

size_t tn_proxy_v1_encode(const struct tn_proxy_info *info, char *out, size_t out_len)
{
  /* One byte more than the longest line so snprintf's NUL always fits. */
  char line[TN_PROXY_V1_MAX_LEN + 1];
  char src[INET6_ADDRSTRLEN];
  char dst[INET6_ADDRSTRLEN];
  int af;
  int n;

  if (!proxy_info_families_ok(info))
    return 0;
  if (info->src.family == TN_AF_UNSPEC) {
    n = snprintf(line, sizeof(line), "PROXY UNKNOWN\r\n");
  } else {
    af = info->src.family == TN_AF_INET ? AF_INET : AF_INET6;
    if (!inet_ntop(af, info->src.ip, src, sizeof(src)) || !inet_ntop(af, info->dst.ip, dst, sizeof(dst)))
      return 0;
    n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
                 info->src.family == TN_AF_INET ? "TCP4" : "TCP6", src, dst,
                 (unsigned)info->src.port, (unsigned)info->dst.port);
  }
  /* The encoder emits no NUL: the header is exactly the line, like on the wire. */
  if (n <= 0 || (size_t)n > TN_PROXY_V1_MAX_LEN || (size_t)n > out_len)
    return 0;
  memcpy(out, line, (size_t)n);
  return (size_t)n;
}

size_t tn_proxy_v2_encode(const struct tn_proxy_info *info, uint8_t *out, size_t out_len)
{
  size_t alen, auth_len = strnlen(info->authority, sizeof(info->authority));
  size_t total;

  if (!proxy_info_families_ok(info) || auth_len > TN_PROXY_AUTHORITY_MAX)
    return 0;
  alen = tn_addr_ip_len(info->src.family);
  total = TN_PROXY_V2_HEADER_LEN + (alen ? 2 * alen + 4 + (auth_len ? PROXY_V2_TLV_HEADER_LEN + auth_len : 0) : 0);
  if (out_len < total)
    return 0;
  memcpy(out, tn_proxy_v2_signature, sizeof(tn_proxy_v2_signature));
  if (alen == 0) {
    /* LOCAL: the receiver keeps the real endpoints, so no address block is needed. */
    out[12] = PROXY_V2_CMD_LOCAL;
    out[13] = PROXY_V2_FAM_UNSPEC;
    tn_put_be16(out + 14, 0);
    return total;
  }
  out[12] = PROXY_V2_CMD_PROXY;
  out[13] = alen == 4 ? PROXY_V2_FAM_TCP4 : PROXY_V2_FAM_TCP6;
  tn_put_be16(out + 14, (uint16_t)(total - TN_PROXY_V2_HEADER_LEN));
  memcpy(out + 16, info->src.ip, alen);
  memcpy(out + 16 + alen, info->dst.ip, alen);
  tn_put_be16(out + 16 + 2 * alen, info->src.port);
  tn_put_be16(out + 18 + 2 * alen, info->dst.port);
  if (auth_len) {
    uint8_t *tlv = out + 20 + 2 * alen;

    tlv[0] = TN_PROXY_V2_TYPE_AUTHORITY;
    tn_put_be16(tlv + 1, (uint16_t)auth_len);
    memcpy(tlv + PROXY_V2_TLV_HEADER_LEN, info->authority, auth_len);
  }
  return total;
}

size_t tn_proxy_encode(int version, const struct tn_proxy_info *info, uint8_t *out, size_t out_len)
{
  switch (version) {
  case TN_PROXY_V1: return tn_proxy_v1_encode(info, (char *)out, out_len);
  case TN_PROXY_V2: return tn_proxy_v2_encode(info, out, out_len);
  default: return 0;
  }
}

/* ---- v1 decoding ----
 * A cursor walks the line once. Every field is judged as soon as its bytes are
 * present, so garbage fails on its first wrong byte, while a true prefix of a valid
 * line stays TN_ERR_NEED_MORE. A line that has not ended by byte 107 is invalid.
 */

struct proxy_v1_cur {
  const uint8_t *in;
  size_t len; /* bytes available, already capped at TN_PROXY_V1_MAX_LEN */
  size_t pos;
  int capped; /* len was cut to the cap: running off the end is invalid, not a prefix */
};

static int proxy_v1_end(const struct proxy_v1_cur *c)
{
  return c->capped ? TN_ERR_INVALID : TN_ERR_NEED_MORE;
}

/* Matches a literal; returns 1 on a full match, else the decode result. */
static int proxy_v1_literal(struct proxy_v1_cur *c, const char *lit, size_t lit_len)
{
  size_t i;

  for (i = 0; i < lit_len; i++) {
    if (c->pos + i >= c->len)
      return proxy_v1_end(c);
    if (c->in[c->pos + i] != (uint8_t)lit[i])
      return TN_ERR_INVALID;
  }
  c->pos += lit_len;
  return 1;
}

static int proxy_v1_addr_char(int family, uint8_t ch)
{
  if (ch >= '0' && ch <= '9')
    return 1;
  if (ch == '.')
    return 1;
  if (family == TN_AF_INET6)
    return ch == ':' || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
  return 0;
}

/* An address token followed by one space; validated by inet_pton once complete. */
static int proxy_v1_addr(struct proxy_v1_cur *c, struct tn_addr *a, int family)
{
  /* Longest text inet_pton accepts: IPv6 with an embedded IPv4 tail. */
  char text[INET6_ADDRSTRLEN];
  size_t max = family == TN_AF_INET ? 15 : INET6_ADDRSTRLEN - 1;
  size_t n = 0;

  for (;;) {
    if (c->pos + n >= c->len)
      return proxy_v1_end(c);
    if (c->in[c->pos + n] == ' ')
      break;
    if (n == max || !proxy_v1_addr_char(family, c->in[c->pos + n]))
      return TN_ERR_INVALID;
    text[n] = (char)c->in[c->pos + n];
    n++;
  }
  if (n == 0)
    return TN_ERR_INVALID;
  text[n] = '\0';
  memset(a->ip, 0, sizeof(a->ip));
  if (inet_pton(family == TN_AF_INET ? AF_INET : AF_INET6, text, a->ip) != 1)
    return TN_ERR_INVALID;
  a->family = (uint8_t)family;
  c->pos += n + 1;
  return 1;
}

/*
 * A port: 1-5 digits, no leading zero (a sender writing "080" is broken, and two
 * spellings of one value would make the line ambiguous), value 0-65535, then term.
 */
static int proxy_v1_port(struct proxy_v1_cur *c, uint16_t *port, uint8_t term)
{
  unsigned long v = 0;
  size_t n = 0;
  uint8_t ch;

  for (;;) {
    if (c->pos + n >= c->len)
      return proxy_v1_end(c);
    ch = c->in[c->pos + n];
    if (ch == term && n > 0)
      break;
    if (ch < '0' || ch > '9')
      return TN_ERR_INVALID;
    if (n == 1 && v == 0)
      return TN_ERR_INVALID;
    v = v * 10 + (unsigned long)(ch - '0');
    if (v > 65535)
      return TN_ERR_INVALID;
    n++;
  }
  *port = (uint16_t)v;
  c->pos += n + 1;
  return 1;
}

/* After "UNKNOWN" the spec lets a sender put anything before CRLF; we still insist on printable ASCII. */
static int proxy_v1_unknown_tail(struct proxy_v1_cur *c)
{
  uint8_t ch;

  if (c->pos >= c->len)
    return proxy_v1_end(c);
  if (c->in[c->pos] == '\r')
    return 1;
  if (c->in[c->pos] != ' ')
    return TN_ERR_INVALID;
  for (c->pos++;; c->pos++) {
    if (c->pos >= c->len)
      return proxy_v1_end(c);
    ch = c->in[c->pos];
    if (ch == '\r')
      return 1;
    if (ch < 0x20 || ch > 0x7e)
      return TN_ERR_INVALID;
  }
}

static int proxy_v1_decode(struct tn_proxy_info *info, const uint8_t *in, size_t in_len)
{
  struct proxy_v1_cur c;
  int family;
  int r;

  c.in = in;
  c.len = in_len > TN_PROXY_V1_MAX_LEN ? TN_PROXY_V1_MAX_LEN : in_len;
  c.capped = in_len >= TN_PROXY_V1_MAX_LEN;
  c.pos = 0;
  memset(info, 0, sizeof(*info));
  info->version = TN_PROXY_V1;

  if ((r = proxy_v1_literal(&c, proxy_v1_prefix, PROXY_V1_PREFIX_LEN)) != 1)
    return r;
  /* The three protocol words differ by their 2nd or 4th byte; compare against each prefix. */
  if (c.pos < c.len && c.in[c.pos] == 'U') {
    if ((r = proxy_v1_literal(&c, "UNKNOWN", 7)) != 1)
      return r;
    if ((r = proxy_v1_unknown_tail(&c)) != 1)
      return r;
    info->local = 1;
  } else {
    if ((r = proxy_v1_literal(&c, "TCP", 3)) != 1)
      return r;
    if (c.pos >= c.len)
      return proxy_v1_end(&c);
    if (c.in[c.pos] == '4')
      family = TN_AF_INET;
    else if (c.in[c.pos] == '6')
      family = TN_AF_INET6;
    else
      return TN_ERR_INVALID;
    c.pos++;
    if ((r = proxy_v1_literal(&c, " ", 1)) != 1)
      return r;
    if ((r = proxy_v1_addr(&c, &info->src, family)) != 1)
      return r;
    if ((r = proxy_v1_addr(&c, &info->dst, family)) != 1)
      return r;
    if ((r = proxy_v1_port(&c, &info->src.port, ' ')) != 1)
      return r;
    if ((r = proxy_v1_port(&c, &info->dst.port, '\r')) != 1)
      return r;
    c.pos--; /* the port consumed the CR; the CRLF check below wants it */
  }
  if ((r = proxy_v1_literal(&c, "\r\n", 2)) != 1)
    return r;
  return (int)c.pos;
}

/* ---- v2 decoding ---- */

static int proxy_v2_family_known(uint8_t fam)
{
  switch (fam) {
  case PROXY_V2_FAM_UNSPEC:
  case PROXY_V2_FAM_TCP4:
  case PROXY_V2_FAM_UDP4:
  case PROXY_V2_FAM_TCP6:
  case PROXY_V2_FAM_UDP6:
  case PROXY_V2_FAM_UNIX_STREAM:
  case PROXY_V2_FAM_UNIX_DGRAM:
    return 1;
  default:
    return 0;
  }
}

/* The authority TLV's value when it is one the caller can show and use: 1..max printable ASCII bytes. */
static int proxy_v2_authority_usable(const uint8_t *v, size_t len)
{
  if (len == 0 || len > TN_PROXY_AUTHORITY_MAX)
    return 0;
  for (size_t i = 0; i < len; i++)
    if (v[i] <= 0x20 || v[i] >= 0x7f)
      return 0;
  return 1;
}

/*
 * TLVs must tile the rest of the block exactly: a length that overruns is a broken sender. The first usable
 * authority TLV goes into authority.
 */
static int proxy_v2_tlvs_ok(const uint8_t *p, size_t len, char *authority)
{
  size_t vlen;

  while (len > 0) {
    if (len < PROXY_V2_TLV_HEADER_LEN)
      return 0;
    vlen = tn_get_be16(p + 1);
    if (vlen > len - PROXY_V2_TLV_HEADER_LEN)
      return 0;
    if (p[0] == TN_PROXY_V2_TYPE_AUTHORITY && authority[0] == '\0' &&
        proxy_v2_authority_usable(p + PROXY_V2_TLV_HEADER_LEN, vlen)) {
      memcpy(authority, p + PROXY_V2_TLV_HEADER_LEN, vlen);
      authority[vlen] = '\0';
    }
    p += PROXY_V2_TLV_HEADER_LEN + vlen;
    len -= PROXY_V2_TLV_HEADER_LEN + vlen;
  }
  return 1;
}

static int proxy_v2_decode(struct tn_proxy_info *info, const uint8_t *in, size_t in_len)
{
  size_t n = in_len < sizeof(tn_proxy_v2_signature) ? in_len : sizeof(tn_proxy_v2_signature);
  size_t block;
  size_t alen;
  uint8_t cmd;
  uint8_t fam;

  if (memcmp(in, tn_proxy_v2_signature, n) != 0)
    return TN_ERR_INVALID;
  if (in_len < 13)
    return TN_ERR_NEED_MORE;
  cmd = in[12];
  if (cmd != PROXY_V2_CMD_LOCAL && cmd != PROXY_V2_CMD_PROXY)
    return TN_ERR_INVALID;
  if (in_len < 14)
    return TN_ERR_NEED_MORE;
  fam = in[13];
  if (!proxy_v2_family_known(fam))
    return TN_ERR_INVALID;
  if (cmd == PROXY_V2_CMD_PROXY && fam != PROXY_V2_FAM_UNSPEC && fam != PROXY_V2_FAM_TCP4 &&
      fam != PROXY_V2_FAM_TCP6)
    return TN_ERR_UNSUPPORTED;
  if (in_len < TN_PROXY_V2_HEADER_LEN)
    return TN_ERR_NEED_MORE;
  block = tn_get_be16(in + 14);
  alen = 0;
  if (cmd == PROXY_V2_CMD_PROXY)
    alen = fam == PROXY_V2_FAM_TCP4 ? PROXY_V2_ADDR_LEN_INET
         : fam == PROXY_V2_FAM_TCP6 ? PROXY_V2_ADDR_LEN_INET6 : 0;
  if (block < alen)
    return TN_ERR_INVALID;
  if (in_len < TN_PROXY_V2_HEADER_LEN + block)
    return TN_ERR_NEED_MORE;

  memset(info, 0, sizeof(*info));
  info->version = TN_PROXY_V2;
  /*
   * LOCAL (health checks from the proxy itself) and UNSPEC both mean "use the real
   * endpoints": no addresses, and the block's layout is unknown, so it is skipped whole.
   */
  if (alen == 0) {
    info->local = 1;
    return (int)(TN_PROXY_V2_HEADER_LEN + block);
  }
  if (!proxy_v2_tlvs_ok(in + TN_PROXY_V2_HEADER_LEN + alen, block - alen, info->authority))
    return TN_ERR_INVALID;
  {
    const uint8_t *a = in + TN_PROXY_V2_HEADER_LEN;
    size_t iplen = (alen - 4) / 2;

    info->src.family = info->dst.family = iplen == 4 ? TN_AF_INET : TN_AF_INET6;
    memcpy(info->src.ip, a, iplen);
    memcpy(info->dst.ip, a + iplen, iplen);
    info->src.port = tn_get_be16(a + 2 * iplen);
    info->dst.port = tn_get_be16(a + 2 * iplen + 2);
  }
  return (int)(TN_PROXY_V2_HEADER_LEN + block);
}

int tn_proxy_decode(struct tn_proxy_info *info, const uint8_t *in, size_t in_len)
{
  struct tn_proxy_info tmp;
  int r;

  if (in_len == 0)
    return TN_ERR_NEED_MORE;
  /* Decode into a local so a failed call leaves the caller's struct untouched. */
  if (in[0] == (uint8_t)proxy_v1_prefix[0])
    r = proxy_v1_decode(&tmp, in, in_len);
  else if (in[0] == tn_proxy_v2_signature[0])
    r = proxy_v2_decode(&tmp, in, in_len);
  else
    r = TN_ERR_INVALID;
  if (r > 0)
    *info = tmp;
  return r;
}
