/*
 * lg_tcp.h - the plain TCP transport: MQTT bytes straight on the socket.
 *
 * Owns nothing; called by the worker thread that owns the connection (and
 * by lg_ws.c, for ws, on that same thread).
 */
#ifndef RINGMQ_LG_TCP_H
#define RINGMQ_LG_TCP_H

#include "perf/lg_transport_types.h"

extern const struct lg_transport lg_tcp_transport;

#endif
