/* tunnel/loop.h: what both programs do with their event loop: take the stop and reload signals, close everything on the way out. */
#ifndef TUNNEL_LOOP_H
#define TUNNEL_LOOP_H

#include <uv.h>

/* SIGTERM and SIGINT ask the program to drain and stop; SIGHUP to reload. */
struct tn_loop_signals {
  uv_signal_t term;
  uv_signal_t intr;
  uv_signal_t hup;
};

/* Starts watching the three signals; cb gets the signal number, handle->data is data. */
void tn_loop_signals_start(uv_loop_t *loop, struct tn_loop_signals *s, uv_signal_cb cb, void *data);
/* Stops watching them once the drain is over; from then on the three signals are ignored until exit. */
void tn_loop_signals_stop(struct tn_loop_signals *s);

/*
 * Closes every handle that is not already closing and runs the loop until all are closed,
 * so uv_loop_close succeeds. Call it after uv_run returned, never from inside a callback:
 * a callback may belong to a handle whose owner is closing it in its own way.
 */
void tn_loop_close_all(uv_loop_t *loop);

#endif
