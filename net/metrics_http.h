/*
 * metrics_http.h - the /metrics endpoint: a small HTTP/1.1 server on shard
 * 0's ring ([metrics] bind, port; off unless bind is set).
 *
 * GET (or HEAD) /metrics answers 200 with the Prometheus text exposition
 * (net/prom.h, "text/plain; version=0.0.4"); another path 404, another
 * method 405 (with Allow), a request line or headers over
 * METRICS_HTTP_REQUEST_MAX bytes 431, a malformed request 400; the error
 * answers close the connection. HTTP/1.1 keeps the connection open unless
 * the request says "Connection: close" (HTTP/1.0: closed unless it says
 * keep-alive); pipelined requests are answered in order. Partial requests
 * are collected across reads. No thread of its own: accept, recv and send
 * are operations on the shard's ring (user_data URING_OP_OBS, the object
 * naming which), so a slow client costs one connection slot and never
 * blocks the shard: each recv and send carries a linked timeout of
 * METRICS_HTTP_IDLE_MS, past which the connection is closed; at most
 * METRICS_HTTP_CONNS_MAX connections are open, more are closed at accept.
 *
 * Shard 0's thread only (metrics_http_open() on the start-up thread).
 */
#ifndef RINGMQ_METRICS_HTTP_H
#define RINGMQ_METRICS_HTTP_H

#include <liburing.h>
#include <stdint.h>

#include "config/config.h"

#define METRICS_HTTP_REQUEST_MAX 8192u
#define METRICS_HTTP_CONNS_MAX 16u
#define METRICS_HTTP_IDLE_MS 10000u
#define METRICS_HTTP_BACKLOG 64

struct board;
struct metrics_http;

/*
 * Bind and listen on @bind:@port (@port 0: a free one), and log the
 * address. Renders @board (borrowed) with @cfg's listener names and
 * @version. NULL after logging why at ERROR.
 */
struct metrics_http *metrics_http_open(const char *bind, uint16_t port, const struct board *board,
                                       const struct config *cfg, const char *version);

/* Start accepting on @ring (the shard's). Returns 0 or -EBUSY (no SQE). */
int metrics_http_start(struct metrics_http *h, struct io_uring *ring);

/* Stop: cancel the accept and close every connection (their completions still come). */
void metrics_http_stop(struct metrics_http *h, struct io_uring *ring);

/*
 * A completion whose user_data object @obj is one of @h's (an accept, a
 * recv or a send; metrics_http_owns() said so).
 */
void metrics_http_done(struct metrics_http *h, struct io_uring *ring, void *obj,
                       const struct io_uring_cqe *cqe);

/* Free @h (NULL: nothing), after the ring is gone. */
void metrics_http_free(struct metrics_http *h);

#endif
