/*
 * lg_transport.h - the transports --transport picks from:
 *
 *   tcp  MQTT bytes straight on the socket (lg_tcp.c)
 *   tls  TLS 1.2/1.3 with wolfSSL, the socket as its I/O (lg_tls.c)
 *   ws   WebSocket (RFC 6455): HTTP/1.1 upgrade, then masked binary frames
 *        (lg_ws.c)
 *   wss  WebSocket over TLS (lg_ws.c over lg_tls.c)
 *
 * The interface they implement is in lg_transport_types.h. Read-only
 * tables; any thread may call in here.
 */
#ifndef RINGMQ_LG_TRANSPORT_H
#define RINGMQ_LG_TRANSPORT_H

#include "perf/lg_transport_types.h"

/* The transport named @name ("tcp", "tls", "ws", "wss"), or NULL. */
const struct lg_transport *lg_transport_find(const char *name);

#endif
