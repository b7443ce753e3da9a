/* splice.h: the private contract between tn_link (which owns the mux) and tn_pipe (which owns a stream's socket). */
#ifndef TUNNEL_SPLICE_H
#define TUNNEL_SPLICE_H

#include <stddef.h>
#include <stdint.h>

#include "tunnel/pipe.h"

/* Stream events the link routes from its mux to the pipe that is the stream's user pointer. */
void tn_pipe__on_data(tn_pipe *pipe, const uint8_t *data, size_t len);
void tn_pipe__on_fin(tn_pipe *pipe);
void tn_pipe__on_writable(tn_pipe *pipe);
void tn_pipe__on_stream_close(tn_pipe *pipe, int reason);

#endif
