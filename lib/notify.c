/* notify.c: sd_notify's datagram protocol, spoken directly. */
#include "tunnel/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int notify_send(const char *message)
{
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un sa;
  size_t len;
  socklen_t salen;
  int fd, rc = 1;

  if (path == NULL || path[0] == '\0')
    return 0;
  len = strlen(path);
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
    return -EINVAL;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, len);
  if (path[0] == '@')
    sa.sun_path[0] = '\0';  /* abstract namespace */
  salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (sendto(fd, message, strlen(message), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
    rc = -errno;
  close(fd);
  return rc;
}

int tn_notify_ready(const char *status)
{
  const char *st = status ? status : "ready";
  size_t n = strnlen(st, 900);
  char msg[1024];

  /* A long status (a reload error quoting file names) is cut to leave room for MAINPID. */
  snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%.*s\nMAINPID=%ld", (int)n, st, (long)getpid());
  /* A line break inside the status would start a field of its own. */
  for (size_t i = 0; i < n; i++)
    if (msg[strlen("READY=1\nSTATUS=") + i] == '\n')
      msg[strlen("READY=1\nSTATUS=") + i] = ' ';
  return notify_send(msg);
}

int tn_notify_reloading(void)
{
  return notify_send("RELOADING=1");
}

int tn_notify_stopping(void)
{
  return notify_send("STOPPING=1");
}

int tn_notify_status(const char *status)
{
  char msg[256];

  snprintf(msg, sizeof(msg), "STATUS=%s", status);
  return notify_send(msg);
}
