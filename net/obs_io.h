/*
 * obs_io.h - the objects behind URING_OP_OBS completions: every object the
 * observability services (net/metrics_http, net/admin)
 * give the ring as user_data starts with a struct obs_io naming its kind,
 * so net/obs dispatches one op kind to the right service.
 *
 * Types only; owned by shard 0.
 */
#ifndef RINGMQ_OBS_IO_H
#define RINGMQ_OBS_IO_H

#include <stdint.h>

enum obs_io_kind {
    OBS_IO_NONE = 0,
    OBS_IO_HTTP_LISTEN, /* net/metrics_http: the multishot accept */
    OBS_IO_HTTP_CONN,   /* net/metrics_http: a connection's recv or send */
    OBS_IO_ADMIN_LISTEN, /* net/admin: the multishot accept */
    OBS_IO_ADMIN_CONN,   /* net/admin: a connection's recv or send */
};

/* First member of every such object (which must be 8-byte aligned: net/uring.h). */
struct obs_io {
    uint32_t kind; /* enum obs_io_kind */
};

#endif
