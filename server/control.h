/* control.h: tunneld's control port: client links from accept to close, and their control messages. */
#ifndef TD_CONTROL_H
#define TD_CONTROL_H

#include <uv.h>

/* The control port's connection callback (its handle's data is the server). */
void td_control_on_connection(uv_stream_t *server, int status);

#endif
