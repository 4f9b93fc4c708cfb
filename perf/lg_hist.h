/*
 * lg_hist.h - a log-bucketed latency histogram (HdrHistogram-like).
 *
 * Values are nanoseconds. Below 64 ns every value has its own bucket; above,
 * each power of two is split into 64 equal sub-buckets, so a reported value is
 * within 1/64 (1.6 %) of the true one. Values at or above 2^40 ns (~18 min)
 * land in the top bucket. Exact count, min, max and sum are kept beside the
 * buckets. Recording is O(1) with no branches on the bucket layout.
 *
 * Owned by one thread (each load-generator worker has its own); merge them
 * with lg_hist_merge() after the workers have stopped. Not thread-safe.
 */
#ifndef RINGMQ_LG_HIST_H
#define RINGMQ_LG_HIST_H

#include <stdint.h>

#define LG_HIST_SUB_BITS 6u
#define LG_HIST_SUB (1u << LG_HIST_SUB_BITS)
#define LG_HIST_TOP_BITS 40u
#define LG_HIST_BUCKETS (LG_HIST_SUB + (LG_HIST_TOP_BITS - LG_HIST_SUB_BITS) * LG_HIST_SUB)

struct lg_hist {
    uint64_t count;
    uint64_t min_ns; /* UINT64_MAX while empty */
    uint64_t max_ns;
    uint64_t sum_ns;
    uint64_t buckets[LG_HIST_BUCKETS];
};

/* Make @h empty. */
void lg_hist_init(struct lg_hist *h);

/* Count one value of @v_ns. */
void lg_hist_record(struct lg_hist *h, uint64_t v_ns);

/* Add every value of @from into @into; @from is only read. */
void lg_hist_merge(struct lg_hist *into, const struct lg_hist *from);

/*
 * The value at quantile @q (0 < q <= 1) in ns: the highest value of the bucket
 * that holds the ceil(q * count)-th smallest value, capped at the exact
 * maximum (so q = 1 gives the exact maximum). 0 when @h is empty.
 */
uint64_t lg_hist_quantile(const struct lg_hist *h, double q);

/* Mean in ns; 0 when empty. */
double lg_hist_mean(const struct lg_hist *h);

/* Bucket index of @v_ns and the lowest/highest value sharing it (for tests). */
uint32_t lg_hist_index(uint64_t v_ns);
uint64_t lg_hist_bucket_low(uint32_t idx);
uint64_t lg_hist_bucket_high(uint32_t idx);

#endif
