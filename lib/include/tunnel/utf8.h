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
 * Makes s (len bytes, in place) printable UTF-8: each byte of an invalid sequence and each
 * byte of a control character becomes '?'. Returns how many bytes were replaced.
 */
size_t tn_utf8_sanitize(char *s, size_t len);

#endif
