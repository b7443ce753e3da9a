/* utf8.c: strict UTF-8 decoding (RFC 3629) and sanitising. */
#include "tunnel/utf8.h"

#include <stdio.h>
#include <string.h>

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

/*
 * Ranges of characters that do not show as themselves (Unicode 15): format characters (Cf), the rest of
 * Default_Ignorable_Code_Point, the separators and spaces other than U+0020, specials and noncharacters.
 * Sorted, so one pass finds a character.
 */
static const struct {
  uint32_t lo, hi;
} utf8_invisible[] = {
  { 0x00a0, 0x00a0 },   { 0x00ad, 0x00ad },   { 0x034f, 0x034f },   { 0x0600, 0x0605 },   { 0x061c, 0x061c },
  { 0x06dd, 0x06dd },   { 0x070f, 0x070f },   { 0x0890, 0x0891 },   { 0x08e2, 0x08e2 },   { 0x115f, 0x1160 },
  { 0x1680, 0x1680 },   { 0x17b4, 0x17b5 },   { 0x180b, 0x180f },   { 0x2000, 0x200f },   { 0x2028, 0x202f },
  { 0x205f, 0x206f },   { 0x3000, 0x3000 },   { 0x3164, 0x3164 },   { 0xfdd0, 0xfdef },   { 0xfe00, 0xfe0f },
  { 0xfeff, 0xfeff },   { 0xffa0, 0xffa0 },   { 0xfff0, 0xffff },   { 0x110bd, 0x110bd }, { 0x110cd, 0x110cd },
  { 0x13430, 0x1343f }, { 0x1bca0, 0x1bca3 }, { 0x1d173, 0x1d17a }, { 0xe0000, 0xe0fff },
};

int tn_utf8_is_invisible(uint32_t cp)
{
  if (tn_utf8_is_control(cp))
    return 1;
  /* U+nFFFE and U+nFFFF are noncharacters in every plane. */
  if ((cp & 0xfffe) == 0xfffe)
    return 1;
  for (size_t i = 0; i < sizeof(utf8_invisible) / sizeof(utf8_invisible[0]) && utf8_invisible[i].lo <= cp; i++)
    if (cp <= utf8_invisible[i].hi)
      return 1;
  return 0;
}

size_t tn_utf8_escape(const char *s, size_t len, char *out, size_t cap)
{
  static const char hex[] = "0123456789abcdef";
  size_t at = 0, i = 0;

  if (cap == 0)
    return 0;
  while (i < len) {
    char piece[16];
    size_t pn, n;
    uint32_t cp;

    n = tn_utf8_decode((const uint8_t *)s + i, len - i, &cp);
    if (n == 0) {
      uint8_t b = (uint8_t)s[i];
      piece[0] = '\\';
      piece[1] = 'x';
      piece[2] = hex[b >> 4];
      piece[3] = hex[b & 15];
      pn = 4;
      n = 1;
    } else if (tn_utf8_is_invisible(cp)) {
      pn = (size_t)snprintf(piece, sizeof(piece), "\\u{%x}", (unsigned)cp);
    } else if (cp == '\\') {
      /* So that a name holding the text \u{202e} cannot pass for an escaped one. */
      piece[0] = piece[1] = '\\';
      pn = 2;
    } else {
      memcpy(piece, s + i, n);
      pn = n;
    }
    if (at + pn >= cap)
      break;
    memcpy(out + at, piece, pn);
    at += pn;
    i += n;
  }
  out[at] = '\0';
  return at;
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
    } else if (tn_utf8_is_invisible(cp)) {
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
