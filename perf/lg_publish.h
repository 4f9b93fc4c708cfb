/*
 * lg_publish.h - the load generator's publishers at work: start them when
 * the run phase begins (rate-paced ones spread over one period), let each
 * one that may send publish a burst per loop iteration, stop them when the
 * drain begins.
 *
 * Owns the publishing part of struct lg_loop (the payload buffer, the rate
 * period, started/stopped); writes a publisher's seq_next, due_ns, sent_ns,
 * window slots and sent_total as it sends, and counts its unacked messages
 * up (lg_input counts them down). lg_sched says when it may send. Called by
 * the worker thread that owns the publishers.
 */
#ifndef RINGMQ_LG_PUBLISH_H
#define RINGMQ_LG_PUBLISH_H

#include "perf/lg_run_types.h"

/* The run phase has begun: schedule every connected publisher of @w. */
void lg_publish_start(struct lg_worker *w);

/* The drain has begun: no publisher of @w sends again. */
void lg_publish_stop(struct lg_worker *w);

/*
 * One pass over the publishers that may send now: each sends what its
 * window, acks, rate and socket allow, at most a burst, and is scheduled
 * for what it waits on next.
 */
void lg_publish_run(struct lg_worker *w);

#endif
