/* tunnel/json.h: how both programs' configuration loaders show a value in an error message. */
#ifndef TUNNEL_JSON_H
#define TUNNEL_JSON_H

#include <stddef.h>

#include <jansson.h>

/* Longest string value shown before it is cut with "...". */
#define TN_JSON_QUOTE_MAX 80
/* Room for any description: every shown byte may become \xNN, plus the quotes, "..." and the NUL. */
#define TN_JSON_DESC_LEN (TN_JSON_QUOTE_MAX * 4 + 16)

/*
 * s as a double-quoted string a terminal and a log line can show safely: '"' and '\' escaped, control bytes as
 * \xNN (a hostile value cannot forge log lines), cut after TN_JSON_QUOTE_MAX bytes so one bad key does not flood
 * the journal. An outlen below 8 gives "".
 */
void tn_json_quote(char *out, size_t outlen, const char *s);

/*
 * The "got ..." part of a type or range error for any JSON value, in words for containers ("an object",
 * "an empty array") and as written for scalars (a string quoted by tn_json_quote, 80.0 kept distinct from 80), so
 * tunneld and tunnelc say the same thing about the same mistake.
 */
void tn_json_describe(char *out, size_t outlen, const json_t *v);

#endif
