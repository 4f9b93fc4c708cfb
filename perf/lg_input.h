/*
 * lg_input.h - the receive side of the load generator's clients: read a
 * connection, and act on each packet the broker sent. A subscriber accounts
 * each message (loss, duplicates, order, latency) and releases its window
 * slot; a publisher counts its acknowledgements; QoS 1/2 are answered;
 * CONNACK and SUBACK go to lg_conn.
 *
 * Owns the rx-more list of struct lg_loop and LG_CONN_F_RXMORE. Called by
 * the worker thread that owns the connection.
 */
#ifndef RINGMQ_LG_INPUT_H
#define RINGMQ_LG_INPUT_H

#include "perf/lg_conn_types.h"
#include "perf/lg_run_types.h"

/*
 * Read @c (readable) and handle every whole packet; read again while its
 * transport holds bytes the socket's readiness will not announce, up to a
 * bound, then leave it on the rx-more list for lg_input_read_more().
 */
void lg_input_read(struct lg_worker *w, struct lg_conn *c);

/* Read the connections whose transports still held bytes after their last turn. */
void lg_input_read_more(struct lg_worker *w);

#endif
