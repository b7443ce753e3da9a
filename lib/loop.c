/* loop.c: signal watching and final teardown shared by tunneld and tunnelc. */
#include "tunnel/loop.h"

#include <signal.h>

void tn_loop_signals_start(uv_loop_t *loop, struct tn_loop_signals *s, uv_signal_cb cb, void *data)
{
  uv_signal_init(loop, &s->term);
  uv_signal_init(loop, &s->intr);
  uv_signal_init(loop, &s->hup);
  s->term.data = s->intr.data = s->hup.data = data;
  uv_signal_start(&s->term, cb, SIGTERM);
  uv_signal_start(&s->intr, cb, SIGINT);
  uv_signal_start(&s->hup, cb, SIGHUP);
}

void tn_loop_signals_stop(struct tn_loop_signals *s)
{
  uv_signal_stop(&s->term);
  uv_signal_stop(&s->intr);
  uv_signal_stop(&s->hup);
  /*
   * Stopping a libuv watcher restores the default action, which for these signals is death. The program has
   * finished its drain and is only closing handles; a late SIGTERM (systemd, a script) must not turn a clean
   * exit 0 into status 143, so the few milliseconds left are spent ignoring them.
   */
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
}

static void close_unless_closing(uv_handle_t *h, void *arg)
{
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

void tn_loop_close_all(uv_loop_t *loop)
{
  uv_walk(loop, close_unless_closing, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
}
