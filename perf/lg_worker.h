/*
 * lg_worker.h - the load generator's worker threads.
 *
 * Each worker is one thread with its own epoll loop that owns its
 * connections outright (lg_run.c dealt them out): it connects them, speaks
 * MQTT on them (CONNECT, SUBSCRIBE, PUBLISH with QoS 0/1/2 in both
 * directions, PINGREQ), batches their writes once per loop iteration, and
 * paces its publishers.
 *
 * Why epoll and not io_uring: the generator must not be the bottleneck and
 * must be easy to trust. With a few hundred busy sockets per thread a
 * level-triggered epoll loop that batches one send() per connection per
 * iteration costs the generator less CPU than the broker spends on the same
 * messages, needs no kernel feature probing, and keeps the generator
 * independent of the broker's own I/O layer (a bug in one does not hide in
 * the other's numbers).
 *
 * The functions here are the main thread's: it starts the workers, drives
 * the run through phases and joins them; meanwhile it reads only the
 * _Atomic progress counters (lg_run_live_sum). Everything else in a worker
 * is private to it until lg_worker_join() returns.
 */
#ifndef RINGMQ_LG_WORKER_H
#define RINGMQ_LG_WORKER_H

#include "perf/lg_run_types.h"

/* Start every worker thread (after lg_run_setup) in LG_PHASE_CONNECT. Returns 0 or -errno. */
int lg_worker_start(struct lg_run *run);

/* Move every worker to @phase (never backwards) and wake them. */
void lg_worker_set_phase(struct lg_run *run, enum lg_phase phase);

/* Wait for every started worker to return (after LG_PHASE_STOP). */
void lg_worker_join(struct lg_run *run);

#endif
