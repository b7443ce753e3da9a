/* utf8.c: strict UTF-8 decoding (RFC 3629) and sanitising. */
#include "tunnel/utf8.h"

size_t tn_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp)
{
  uint8_t b0, lo = 0x80, hi = 0xbf;
  size_t n;
  uint32_t v;

  if (len == 0)
    return 0;
  b0 = s[0];
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2;
    v = b0 & 0x1f;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    v = b0 & 0x0f;
    /* The second byte's range is what rules out overlong forms and surrogates. */
    if (b0 == 0xe0)
      lo = 0xa0;
    else if (b0 == 0xed)
      hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    v = b0 & 0x07;
    if (b0 == 0xf0)
      lo = 0x90;
    else if (b0 == 0xf4)
      hi = 0x8f;
  } else {
    return 0;
  }
  if (len < n)
    return 0;
  for (size_t i = 1; i < n; i++) {
    uint8_t b = s[i];
    if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf))
      return 0;
    v = (v << 6) | (b & 0x3f);
  }
  *cp = v;
  return n;
}

int tn_utf8_is_control(uint32_t cp)
{
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

size_t tn_utf8_sanitize(char *s, size_t len)
{
  size_t i = 0, replaced = 0;

  while (i < len) {
    uint32_t cp;
    size_t n = tn_utf8_decode((const uint8_t *)s + i, len - i, &cp);
    if (n == 0) {
      s[i++] = '?';
      replaced++;
    } else if (tn_utf8_is_control(cp)) {
      for (size_t k = 0; k < n; k++)
        s[i + k] = '?';
      i += n;
      replaced += n;
    } else {
      i += n;
    }
  }
  return replaced;
}
