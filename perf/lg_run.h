/*
 * lg_run.h - build a load-generator run from the options, free it, and read
 * its progress.
 *
 * lg_run_setup() turns the options into topic groups, publishers,
 * subscribers and connections, partitions the connections over T workers
 * and allocates each worker's loop state, epoll set and eventfd; the
 * workers themselves are started by lg_worker_start(). Main thread only:
 * setup and free while no worker runs; live_sum and expected at any time
 * (they read only atomics).
 */
#ifndef RINGMQ_LG_RUN_H
#define RINGMQ_LG_RUN_H

#include <stdint.h>

#include "perf/lg_opts.h"
#include "perf/lg_run_types.h"

/*
 * Build groups, publishers, subscribers, workers and connections for
 * @opts (borrowed for the life of @run). Returns 0 or -ENOMEM/-errno; on
 * failure everything built so far is freed.
 */
int lg_run_setup(struct lg_run *run, const struct lg_opts *opts);

/* Free everything lg_run_setup() built; workers must have been joined. */
void lg_run_free(struct lg_run *run);

/* Sum of the workers' live counters (relaxed reads; a consistent-enough snapshot). */
void lg_run_live_sum(const struct lg_run *run, struct lg_live_sum *out);

/*
 * Receptions the subscribers owe so far: for each publisher, messages sent
 * times its group's fan. Safe while workers run (relaxed reads).
 */
uint64_t lg_run_expected(const struct lg_run *run);

#endif
