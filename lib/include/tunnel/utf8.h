/* tunnel/utf8.h: strict UTF-8 decoding and in-place sanitising, for identities and log lines. */
#ifndef TUNNEL_UTF8_H
#define TUNNEL_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * Decodes one character at s (len bytes available) into *cp. Returns the bytes it takes
 * (1-4), or 0 when s does not start with a valid character: a stray continuation byte, an
 * overlong form, a surrogate, a value above U+10FFFF, or a sequence cut short.
 */
size_t tn_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp);

/* True for the control characters: C0 (U+0000-U+001F), DEL and C1 (U+0080-U+009F). */
int tn_utf8_is_control(uint32_t cp);

/*
 * True for the characters that do not show as themselves, which make two different names look alike or
 * reorder a line on screen: the controls above; format characters (Unicode category Cf: bidi embeddings,
 * overrides and isolates U+202A-202E and U+2066-2069, zero-width U+200B-200F, U+2060-2064, the BOM U+FEFF,
 * U+00AD, ...) and the other default-ignorable characters (U+034F, Hangul fillers, variation selectors,
 * tags U+E0000-E0FFF); the line and paragraph separators U+2028/2029; every space but U+0020 (U+00A0,
 * U+2000-200A, U+202F, U+205F, U+3000, ...); the specials U+FFF0-FFFF; and the noncharacters (U+FDD0-FDEF,
 * U+nFFFE, U+nFFFF).
 */
int tn_utf8_is_invisible(uint32_t cp);

/*
 * Writes s (len bytes) to out (cap bytes, always NUL-terminated) so that it shows what it holds: an
 * invisible character (tn_utf8_is_invisible) becomes "\u{202e}", each byte of an invalid sequence "\xff",
 * a backslash two backslashes; everything else is copied. Stops before an item that does not fit whole. Returns the
 * bytes written, without the NUL.
 */
size_t tn_utf8_escape(const char *s, size_t len, char *out, size_t cap);

/*
 * Makes s (len bytes, in place) printable UTF-8: each byte of an invalid sequence and each
 * byte of an invisible character (tn_utf8_is_invisible) becomes '?'. Returns how many bytes were replaced.
 */
size_t tn_utf8_sanitize(char *s, size_t len);

#endif
