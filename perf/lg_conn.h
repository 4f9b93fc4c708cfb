/*
 * lg_conn.h - the life of one load-generator client connection: connect
 * (paced and bounded), transport handshake, CONNECT, CONNACK and SUBACK,
 * then keepalive; on failure retry or give up; lost, closed, and the
 * DISCONNECT at the end.
 *
 * Owns struct lg_conn's state, attempts, timestamps, keepalive and
 * LG_CONN_F_PING, and the connecting part of struct lg_loop: every change
 * of a connection's state happens here. Closing a connection also takes its
 * publisher off the schedule (lg_sched) and returns its in-flight counts.
 * Called by the worker thread that owns the connection.
 */
#ifndef RINGMQ_LG_CONN_H
#define RINGMQ_LG_CONN_H

#include <stdint.h>

#include "core/mqtt_codec.h"
#include "core/rm_assert.h"
#include "perf/lg_conn_types.h"
#include "perf/lg_run_types.h"
#include "perf/lg_sched.h"
#include "perf/lg_wire.h"

/*
 * @c failed or closed with @err (-errno; -EPROTO: the broker broke the
 * protocol) in whatever state it is: an attempt in progress fails (and may
 * be retried), a ready connection is counted lost and closed.
 */
void lg_conn_lost(struct lg_worker *w, struct lg_conn *c, int err);

/* Start due connects, paced by --connect-rate and bounded by the concurrency. */
void lg_conn_start_due(struct lg_worker *w);

/* @c's TCP connect finished with @err (0, or -errno): on to the handshake, or fail. */
void lg_conn_connected(struct lg_worker *w, struct lg_conn *c, int err);

/*
 * Run @c's transport handshake (again, on readiness) and send CONNECT once
 * it is done.
 */
void lg_conn_open(struct lg_worker *w, struct lg_conn *c);

/* CONNACK @ca (borrowed) on @c: subscribe a subscriber, or finish connecting. */
void lg_conn_on_connack(struct lg_worker *w, struct lg_conn *c, const struct mqtt_connack *ca);

/* SUBACK @sa (borrowed) on @c: finish connecting, or fail on a refusal. */
void lg_conn_on_suback(struct lg_worker *w, struct lg_conn *c, const struct mqtt_suback *sa);

/* Deadlines of every connection: connect timeouts, retries, keepalive pings. */
void lg_conn_sweep(struct lg_worker *w);

/* The end: DISCONNECT where connected, then close every connection and free its buffers. */
void lg_conn_shutdown(struct lg_worker *w);

/*
 * Encode @pkt (borrowed until return) onto @c's output, to be flushed at the
 * end of the iteration. Returns 0, or -ENOBUFS after closing @c. Inline: it
 * runs for every message sent and acknowledged.
 */
static inline int lg_conn_queue(struct lg_worker *w, struct lg_conn *c, const struct mqtt_pkt *pkt)
{
    int r;

    RM_ASSERT(c->state != LG_CONN_CLOSED && c->state != LG_CONN_FAILED);
    r = lg_wire_queue(w, c, pkt);
    if (r < 0) {
        lg_conn_lost(w, c, r);
    }
    return r;
}

/* lg_conn_queue() of an acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP) of @id. */
static inline int lg_conn_queue_ack(struct lg_worker *w, struct lg_conn *c, uint8_t type,
                                    uint16_t id)
{
    struct mqtt_pkt pkt = {.type = type, .u.ack.pkt_id = id};

    return lg_conn_queue(w, c, &pkt);
}

/* lg_conn_queue() of a packet without fields (PINGREQ, DISCONNECT). */
static inline int lg_conn_queue_empty(struct lg_worker *w, struct lg_conn *c, uint8_t type)
{
    struct mqtt_pkt pkt = {.type = type};

    return lg_conn_queue(w, c, &pkt);
}

/*
 * Send what @c has queued; when the socket is full EPOLLOUT is armed, when
 * it fails @c is closed, and when all is sent a publisher waiting for its
 * socket may go on. Inline: it runs for every send.
 */
static inline void lg_conn_flush(struct lg_worker *w, struct lg_conn *c)
{
    int r = lg_wire_flush(w, c);

    if (r < 0) {
        lg_conn_lost(w, c, r);
        return;
    }
    if (r > 0 && c->pub != NULL) {
        lg_sched_tx_drained(w, c->pub);
    }
}

#endif
