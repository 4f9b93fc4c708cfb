/*
 * lg_tls.h - the TLS transport: MQTT bytes in TLS 1.2/1.3 records, by
 * wolfSSL (lg_tls.c says who owns what).
 *
 * setup()/cleanup() on the main thread; everything else on the worker
 * thread that owns the connection (also through lg_ws.c, for wss).
 */
#ifndef RINGMQ_LG_TLS_H
#define RINGMQ_LG_TLS_H

#include "perf/lg_transport_types.h"

extern const struct lg_transport lg_tls_transport;

#endif
