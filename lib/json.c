/* json.c: how both programs' configuration loaders show a value in an error message (tunnel/json.h). */
#include "tunnel/json.h"

#include <stdio.h>
#include <string.h>

void tn_json_quote(char *out, size_t outlen, const char *s)
{
  size_t o = 0, shown = 0;

  /* Room for the quotes, "..." and the NUL is kept back from the start. */
  if (outlen < 8) {
    if (outlen > 0)
      out[0] = '\0';
    return;
  }
  out[o++] = '"';
  for (; *s != '\0' && shown < TN_JSON_QUOTE_MAX; s++, shown++) {
    unsigned char c = (unsigned char)*s;
    char tmp[8];
    size_t n;

    if (c == '"' || c == '\\')
      n = (size_t)snprintf(tmp, sizeof(tmp), "\\%c", c);
    else if (c < 0x20 || c == 0x7f)
      n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
    else {
      tmp[0] = (char)c;
      n = 1;
    }
    if (o + n + 5 > outlen)
      break;
    memcpy(out + o, tmp, n);
    o += n;
  }
  if (*s != '\0') {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o++] = '"';
  out[o] = '\0';
}

void tn_json_describe(char *out, size_t outlen, const json_t *v)
{
  if (outlen == 0)
    return;
  switch (json_typeof(v)) {
  case JSON_STRING:
    tn_json_quote(out, outlen, json_string_value(v));
    break;
  case JSON_INTEGER:
    snprintf(out, outlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    break;
  case JSON_REAL:
    /* 80.0 must not print as 80, or "must be an integer, got 80" would make no sense. */
    snprintf(out, outlen, "%.15g", json_real_value(v));
    if (strpbrk(out, ".eEni") == NULL && strlen(out) + 3 <= outlen)
      strcat(out, ".0");
    break;
  case JSON_TRUE:
    snprintf(out, outlen, "true");
    break;
  case JSON_FALSE:
    snprintf(out, outlen, "false");
    break;
  case JSON_NULL:
    snprintf(out, outlen, "null");
    break;
  /* Empty is said: "must be a non-empty array, got an array" would read as a contradiction. */
  case JSON_OBJECT:
    snprintf(out, outlen, json_object_size(v) == 0 ? "an empty object" : "an object");
    break;
  case JSON_ARRAY:
    snprintf(out, outlen, json_array_size(v) == 0 ? "an empty array" : "an array");
    break;
  default:
    snprintf(out, outlen, "an unknown value");
    break;
  }
}
