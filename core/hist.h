/*
 * hist.h - a latency histogram with fixed bounds, for durations that
 * Prometheus shows as a histogram (the WAL's fsync latency first).
 *
 * Buckets are not cumulative here: bucket[i] counts the samples at or
 * under hist_bound_ns(i) and over the bound before it; the last bucket
 * (HIST_BUCKETS - 1) has no bound (+Inf). Renderers make them cumulative.
 * All fields are uint64_t so a histogram can be copied word by word.
 *
 * Pure. A histogram is owned by one shard; single-threaded.
 */
#ifndef RINGMQ_HIST_H
#define RINGMQ_HIST_H

#include <stdint.h>

/* Bounds 50 us .. 1 s, then +Inf. */
#define HIST_BUCKETS 15u

struct hist {
    uint64_t count;  /* samples recorded */
    uint64_t sum_ns; /* their total */
    uint64_t bucket[HIST_BUCKETS];
};

/* The upper bound of bucket @i (< HIST_BUCKETS - 1), in nanoseconds. */
uint64_t hist_bound_ns(uint32_t i);

/*
 * Record one sample of @ns nanoseconds into @h. Called by the shard that
 * owns @h, e.g. the WAL after each fsync completion. O(log buckets).
 */
void hist_record(struct hist *h, uint64_t ns);

#endif
