/* backends.c: the allow-list check between a server-opened stream and the local dial. */
#include "backends.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tunnel/error.h"

#define LOOPBACK_V4 "127.0.0.1"
#define LOOPBACK_V6 "::1"

/*
 * The service name comes from the server, so it is escaped before it reaches a log
 * line: a compromised server must not be able to forge log entries.
 */
static void escape_name(char *out, size_t outlen, const char *name, size_t len)
{
  size_t o = 0;

  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    char tmp[8];
    size_t n;

    if (c == '"' || c == '\\')
      n = (size_t)snprintf(tmp, sizeof(tmp), "\\%c", c);
    else if (c < 0x20 || c >= 0x7f)
      n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
    else {
      tmp[0] = (char)c;
      n = 1;
    }
    if (o + n + 1 > outlen)
      break;
    memcpy(out + o, tmp, n);
    o += n;
  }
  out[o] = '\0';
}

__attribute__((format(printf, 4, 5)))
static int refuse(struct tc_backends_target *target, char *reason, size_t reason_len, const char *fmt, ...)
{
  va_list ap;

  memset(target, 0, sizeof(*target));
  va_start(ap, fmt);
  tn_verrf(reason, reason_len, NULL, fmt, ap);
  va_end(ap);
  return TN_ERR_INVALID;
}

int tc_backends_resolve(const struct tc_config *cfg, const struct tn_open *o, struct tc_backends_target *target,
                        char *reason, size_t reason_len)
{
  if (reason != NULL && reason_len > 0)
    reason[0] = '\0';
  if (o->backend_kind == TN_OPEN_BACKEND_PORT) {
    if (o->backend_port == 0 || !tc_config_port_allowed(cfg, o->backend_port))
      return refuse(target, reason, reason_len, "port %u is not in AllowedBackEndPorts", (unsigned)o->backend_port);
    memset(target, 0, sizeof(*target));
    memcpy(target->host, LOOPBACK_V4, sizeof(LOOPBACK_V4));
    memcpy(target->fallback_host, LOOPBACK_V6, sizeof(LOOPBACK_V6));
    target->port = o->backend_port;
    target->host_is_ip = true;
    target->kind = TN_OPEN_BACKEND_PORT;
    return TN_OK;
  }
  if (o->backend_kind == TN_OPEN_BACKEND_SERVICE) {
    /* Bounded: the decoder promises a NUL, but the allow-list must not depend on it. */
    size_t len = strnlen(o->service, sizeof(o->service));
    const struct tc_config_service *svc = NULL;

    if (len < sizeof(o->service))
      svc = tc_config_find_service(cfg, o->service);
    if (svc == NULL) {
      char shown[TC_BACKENDS_REASON_MAX - 64];

      escape_name(shown, sizeof(shown), o->service, len);
      return refuse(target, reason, reason_len, "service \"%s\" is not in ServiceToLocalAddrMap", shown);
    }
    memset(target, 0, sizeof(*target));
    snprintf(target->host, sizeof(target->host), "%s", svc->host);
    target->port = svc->port;
    target->host_is_ip = svc->host_is_ip;
    target->kind = TN_OPEN_BACKEND_SERVICE;
    return TN_OK;
  }
  return refuse(target, reason, reason_len, "unknown backend kind %u", (unsigned)o->backend_kind);
}

char *tc_backends_format(const struct tc_backends_target *target, char *out, size_t out_len)
{
  if (out_len == 0)
    return out;
  if (strchr(target->host, ':') != NULL)
    snprintf(out, out_len, "[%s]:%u", target->host, (unsigned)target->port);
  else
    snprintf(out, out_len, "%s:%u", target->host, (unsigned)target->port);
  return out;
}
