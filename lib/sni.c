/* sni.c: the host name a new connection asks for, read from its first bytes without consuming them. */
#include "tunnel/sni.h"

#include <string.h>

#include "tunnel/error.h"

#define TLS_RECORD_HEADER 5
#define TLS_RECORD_MAX 16384           /* plaintext fragment limit, RFC 8446 §5.1 */
#define TLS_HANDSHAKE 22
#define TLS_CLIENT_HELLO 1
#define TLS_EXT_SERVER_NAME 0
#define TLS_NAME_TYPE_HOST 0
#define TLS_RANDOM_LEN 32
#define TLS_SESSION_ID_MAX 32
#define DNS_LABEL_MAX 63

/* ---- host names ---- */

static int is_name_char(uint8_t c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* Copies a name of len bytes in lower case; TN_ERR_INVALID (name untouched) unless it is labels of 1-63 name
 * characters. */
static int copy_name(const uint8_t *s, size_t len, char *name)
{
  size_t label = 0;

  if (len == 0 || len > TN_SNI_NAME_MAX)
    return TN_ERR_INVALID;
  for (size_t i = 0; i < len; i++) {
    if (!is_name_char(s[i]))
      return TN_ERR_INVALID;
    if (s[i] != '.')
      label++;
    else if (label == 0)
      return TN_ERR_INVALID;
    else
      label = 0;
    if (label > DNS_LABEL_MAX)
      return TN_ERR_INVALID;
  }
  if (label == 0)
    return TN_ERR_INVALID;  /* a trailing dot is not sent in server_name (RFC 6066 §3) */
  for (size_t i = 0; i < len; i++)
    name[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
  name[len] = 0;
  return TN_OK;
}

/* ---- TLS: a ClientHello read across records ---- */

/* Reads the handshake bytes of consecutive handshake records as one stream, however they were cut. */
struct hello_reader {
  const uint8_t *in;
  size_t len;
  size_t next_record;  /* where the next record header starts */
  size_t pos;          /* the next payload byte */
  size_t left;         /* payload bytes of the current record not read yet */
  size_t msg_left;     /* bytes of the ClientHello message not read yet */
};

/* The next record's header, as much of it as there is. */
static int next_record(struct hello_reader *r)
{
  const uint8_t *h = r->in + r->next_record;
  size_t have = r->len - r->next_record, rec_len;

  if ((have > 0 && h[0] != TLS_HANDSHAKE) || (have > 1 && h[1] != 3) || (have > 2 && h[2] > 4))
    return TN_ERR_INVALID;
  if (have < TLS_RECORD_HEADER)
    return TN_ERR_NEED_MORE;
  rec_len = (size_t)h[3] << 8 | h[4];
  /* Zero-length handshake fragments are forbidden (RFC 8446 §5.1): a peer sending them is not a real client. */
  if (rec_len == 0 || rec_len > TLS_RECORD_MAX)
    return TN_ERR_INVALID;
  r->pos = r->next_record + TLS_RECORD_HEADER;
  r->left = rec_len;
  r->next_record = r->pos + rec_len;
  return TN_OK;
}

static int read_byte(struct hello_reader *r, uint8_t *b)
{
  int rc;

  while (r->left == 0)
    if ((rc = next_record(r)) != TN_OK)
      return rc;
  if (r->pos >= r->len)
    return TN_ERR_NEED_MORE;
  *b = r->in[r->pos++];
  r->left--;
  return TN_OK;
}

/* Reads n bytes (into out unless NULL) from the message; past its end is invalid. */
static int read_msg(struct hello_reader *r, size_t n, uint8_t *out)
{
  uint8_t b;
  int rc;

  if (n > r->msg_left)
    return TN_ERR_INVALID;
  for (size_t i = 0; i < n; i++) {
    if ((rc = read_byte(r, &b)) != TN_OK)
      return rc;
    if (out != NULL)
      out[i] = b;
  }
  r->msg_left -= n;
  return TN_OK;
}

static int read_u16(struct hello_reader *r, size_t *v)
{
  uint8_t b[2];
  int rc = read_msg(r, 2, b);

  *v = (size_t)b[0] << 8 | b[1];
  return rc;
}

/* A vector with a 1- or 2-byte length between min and max, skipped; *len gets its length. */
static int skip_vector(struct hello_reader *r, size_t len_bytes, size_t min, size_t max, size_t *len)
{
  uint8_t b = 0;
  int rc = len_bytes == 1 ? read_msg(r, 1, &b) : read_u16(r, len);

  if (rc != TN_OK)
    return rc;
  if (len_bytes == 1)
    *len = b;
  if (*len < min || *len > max)
    return TN_ERR_INVALID;
  return read_msg(r, *len, NULL);
}

/* server_name: exactly one host_name (RFC 6066 §3). */
static int read_server_name(struct hello_reader *r, size_t ext_len, char *name)
{
  uint8_t type, raw[TN_SNI_NAME_MAX];
  size_t list_len, name_len;
  int rc;

  if ((rc = read_u16(r, &list_len)) != TN_OK)
    return rc;
  if (list_len + 2 != ext_len || list_len < 3)
    return TN_ERR_INVALID;
  if ((rc = read_msg(r, 1, &type)) != TN_OK || (rc = read_u16(r, &name_len)) != TN_OK)
    return rc;
  if (type != TLS_NAME_TYPE_HOST || name_len + 3 != list_len || name_len == 0 || name_len > TN_SNI_NAME_MAX)
    return TN_ERR_INVALID;
  if ((rc = read_msg(r, name_len, raw)) != TN_OK)
    return rc;
  return copy_name(raw, name_len, name);
}

static int read_extensions(struct hello_reader *r, char *name)
{
  uint8_t seen[65536 / 8];
  size_t total, type, ext_len;
  int rc;

  if (r->msg_left == 0)
    return TN_OK;  /* no extensions at all: a hello from before TLS 1.2, with no name */
  if ((rc = read_u16(r, &total)) != TN_OK)
    return rc;
  if (total != r->msg_left)
    return TN_ERR_INVALID;
  memset(seen, 0, sizeof(seen));
  while (r->msg_left > 0) {
    if ((rc = read_u16(r, &type)) != TN_OK || (rc = read_u16(r, &ext_len)) != TN_OK)
      return rc;
    if (ext_len > r->msg_left || (seen[type / 8] & (1u << (type % 8))) != 0)
      return TN_ERR_INVALID;  /* one of each type at most (RFC 8446 §4.2) */
    seen[type / 8] |= (uint8_t)(1u << (type % 8));
    rc = type == TLS_EXT_SERVER_NAME ? read_server_name(r, ext_len, name) : read_msg(r, ext_len, NULL);
    if (rc != TN_OK)
      return rc;
  }
  return TN_OK;
}

int tn_sni_tls(const uint8_t *in, size_t len, char *name)
{
  struct hello_reader r = { in, len, 0, 0, 0, 4 };
  uint8_t head[4];
  size_t n;
  int rc;

  name[0] = 0;
  if ((rc = read_msg(&r, 4, head)) != TN_OK)
    return rc;
  if (head[0] != TLS_CLIENT_HELLO)
    return TN_ERR_INVALID;
  r.msg_left = (size_t)head[1] << 16 | (size_t)head[2] << 8 | head[3];
  if (r.msg_left > TN_SNI_HELLO_MAX)
    return TN_ERR_INVALID;
  /* legacy_version and random, then session id, cipher suites (pairs, at least one) and compression methods. */
  if ((rc = read_msg(&r, 2 + TLS_RANDOM_LEN, NULL)) != TN_OK ||
      (rc = skip_vector(&r, 1, 0, TLS_SESSION_ID_MAX, &n)) != TN_OK ||
      (rc = skip_vector(&r, 2, 2, 65534, &n)) != TN_OK)
    return rc;
  if (n % 2 != 0)
    return TN_ERR_INVALID;
  if ((rc = skip_vector(&r, 1, 1, 255, &n)) == TN_OK)
    rc = read_extensions(&r, name);
  if (rc != TN_OK)
    name[0] = 0;  /* a name read before the hello turned out incomplete or invalid is not reported */
  return rc;
}

/* ---- HTTP/1.x: the Host of a request head ---- */

static int is_tchar(uint8_t c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The bytes a header value may hold: visible, space, tab, and obs-text. */
static int is_value_char(uint8_t c)
{
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* "METHOD SP target SP HTTP/1.x": only what may start such a line when the line is not complete yet. *minor gets
 * x once the line is complete. */
static int check_request_line(const uint8_t *s, size_t len, int complete, int *minor)
{
  static const char version[] = "HTTP/1.";
  size_t i = 0, m, t;

  while (i < len && s[i] >= 'A' && s[i] <= 'Z')
    i++;
  m = i;
  if (i == len)
    return complete || m > 20 ? TN_ERR_INVALID : TN_ERR_NEED_MORE;
  if (m == 0 || m > 20 || s[i++] != ' ')
    return TN_ERR_INVALID;
  t = i;
  while (i < len && s[i] > 0x20 && s[i] < 0x7f)
    i++;
  if (i == len)
    return complete ? TN_ERR_INVALID : TN_ERR_NEED_MORE;
  if (i == t || s[i++] != ' ')
    return TN_ERR_INVALID;
  for (size_t k = 0; k < sizeof(version) - 1; k++, i++) {
    if (i == len)
      return complete ? TN_ERR_INVALID : TN_ERR_NEED_MORE;
    if (s[i] != (uint8_t)version[k])
      return TN_ERR_INVALID;
  }
  if (i == len)
    return complete ? TN_ERR_INVALID : TN_ERR_NEED_MORE;
  if (s[i] != '0' && s[i] != '1')
    return TN_ERR_INVALID;
  *minor = s[i] - '0';
  i++;
  if (complete)
    return i == len ? TN_OK : TN_ERR_INVALID;
  return i == len || (i + 1 == len && s[i] == '\r') ? TN_ERR_NEED_MORE : TN_ERR_INVALID;
}

/* A Host value: name, IPv4 or [IPv6], then an optional :port. */
static int parse_host(const uint8_t *v, size_t len, char *name)
{
  size_t end = len, port_digits = 0;
  unsigned long port = 0;

  if (len == 0) {
    name[0] = 0;
    return TN_OK;
  }
  if (v[0] == '[') {
    size_t close = 1;
    while (close < len && v[close] != ']')
      close++;
    if (close == len || close == 1 || close + 1 > TN_SNI_NAME_MAX)
      return TN_ERR_INVALID;
    for (size_t i = 1; i < close; i++)
      if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f') || (v[i] >= 'A' && v[i] <= 'F') ||
            v[i] == ':' || v[i] == '.'))
        return TN_ERR_INVALID;
    end = close + 1;
  } else {
    while (end > 0 && v[end - 1] >= '0' && v[end - 1] <= '9')
      end--;
    if (end > 0 && v[end - 1] == ':')
      end--;
    else
      end = len;
  }
  if (end < len) {
    if (v[end] != ':')
      return TN_ERR_INVALID;
    for (size_t i = end + 1; i < len; i++, port_digits++) {
      if (v[i] < '0' || v[i] > '9')
        return TN_ERR_INVALID;
      port = port * 10 + (unsigned long)(v[i] - '0');
      if (port > 65535)
        return TN_ERR_INVALID;
    }
    if (port_digits == 0)
      return TN_ERR_INVALID;
  }
  if (v[0] == '[') {
    for (size_t i = 0; i < end; i++)
      name[i] = (char)(v[i] >= 'A' && v[i] <= 'F' ? v[i] - 'A' + 'a' : v[i]);
    name[end] = 0;
    return TN_OK;
  }
  if (end > 1 && v[end - 1] == '.')
    end--;  /* "example.net." names the same host */
  return copy_name(v, end, name);
}

/* One "name: value" line (without its CRLF); *is_host when it is Host, its value trimmed in value/value_len. */
static int check_header(const uint8_t *s, size_t len, int *is_host, const uint8_t **value, size_t *value_len)
{
  size_t i = 0, vs, ve;

  while (i < len && is_tchar(s[i]))
    i++;
  if (i == 0 || i == len || s[i] != ':')
    return TN_ERR_INVALID;  /* no name, or a space before the colon, or an obs-fold continuation */
  *is_host = i == 4 && (s[0] | 0x20) == 'h' && (s[1] | 0x20) == 'o' && (s[2] | 0x20) == 's' && (s[3] | 0x20) == 't';
  vs = i + 1;
  for (size_t k = vs; k < len; k++)
    if (!is_value_char(s[k]))
      return TN_ERR_INVALID;
  while (vs < len && (s[vs] == ' ' || s[vs] == '\t'))
    vs++;
  ve = len;
  while (ve > vs && (s[ve - 1] == ' ' || s[ve - 1] == '\t'))
    ve--;
  *value = s + vs;
  *value_len = ve - vs;
  return TN_OK;
}

int tn_sni_http(const uint8_t *in, size_t len, char *name)
{
  const uint8_t *value = NULL;
  size_t pos = 0, value_len = 0, line = 0;
  int hosts = 0, minor = 0, rc;

  name[0] = 0;
  for (;;) {
    const uint8_t *lf = memchr(in + pos, '\n', len - pos);
    size_t end;
    if (lf == NULL) {
      /* An incomplete line: only the request line is checked as it grows; a header is judged when whole. */
      if (line == 0)
        return check_request_line(in, len, 0, &minor);
      for (size_t k = pos; k < len; k++)
        if (in[k] != '\r' && in[k] != '\t' && (in[k] < 0x20 || in[k] == 0x7f))
          return TN_ERR_INVALID;
      return TN_ERR_NEED_MORE;
    }
    end = (size_t)(lf - in);
    if (end == pos || in[end - 1] != '\r')
      return TN_ERR_INVALID;  /* CRLF only */
    if (line == 0) {
      if ((rc = check_request_line(in, end - 1, 1, &minor)) != TN_OK)
        return rc;
    } else if (end - 1 == pos) {
      break;  /* the empty line: the head is complete */
    } else {
      int is_host;
      const uint8_t *v;
      size_t vlen;
      if ((rc = check_header(in + pos, end - 1 - pos, &is_host, &v, &vlen)) != TN_OK)
        return rc;
      if (is_host) {
        if (++hosts > 1)
          return TN_ERR_INVALID;  /* which one a backend believes is anybody's guess: refuse both */
        value = v;
        value_len = vlen;
      }
    }
    line++;
    pos = end + 1;
  }
  if (hosts == 0)
    return minor == 0 ? TN_OK : TN_ERR_INVALID;  /* HTTP/1.1 requires Host (RFC 9112 section 3.2): a 400, not "*" */
  return parse_host(value, value_len, name);
}

/* ---- globs ---- */

int tn_sni_glob_valid(const char *glob)
{
  char name[TN_SNI_NAME_MAX + 1];

  if (strcmp(glob, "*") == 0)
    return TN_OK;
  if (glob[0] == '*' && glob[1] == '.')
    glob += 2;
  return copy_name((const uint8_t *)glob, strlen(glob), name);
}

static int equal_nocase(const char *a, const char *b)
{
  for (; *a && *b; a++, b++)
    if ((*a >= 'A' && *a <= 'Z' ? *a - 'A' + 'a' : *a) != (*b >= 'A' && *b <= 'Z' ? *b - 'A' + 'a' : *b))
      return 0;
  return *a == *b;
}

enum tn_sni_match tn_sni_glob_match(const char *glob, const char *name)
{
  const char *dot;

  if (strcmp(glob, "*") == 0)
    return TN_SNI_MATCH_ANY;
  if (glob[0] == '*' && glob[1] == '.') {
    dot = strchr(name, '.');
    return dot != NULL && dot != name && equal_nocase(dot + 1, glob + 2) ? TN_SNI_MATCH_WILDCARD : TN_SNI_NO_MATCH;
  }
  return name[0] != 0 && equal_nocase(glob, name) ? TN_SNI_MATCH_EXACT : TN_SNI_NO_MATCH;
}

int tn_sni_peek(const uint8_t *in, size_t len, enum tn_sni_kind *kind, char *name)
{
  name[0] = 0;
  *kind = TN_SNI_UNKNOWN;
  if (len == 0)
    return TN_ERR_NEED_MORE;
  if (in[0] == TLS_HANDSHAKE) {
    *kind = TN_SNI_TLS;
    return tn_sni_tls(in, len, name);
  }
  if (in[0] >= 'A' && in[0] <= 'Z') {
    *kind = TN_SNI_HTTP;
    return tn_sni_http(in, len, name);
  }
  return TN_ERR_INVALID;
}
