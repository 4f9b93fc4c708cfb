/*
 * hist.c - fixed-bound latency histograms (see hist.h).
 *
 * Pure; the caller owns the histogram.
 */
#include "core/hist.h"

#include "core/rm_assert.h"

/* Prometheus's habit (1-2.5-5 steps), 50 us to 1 s: an fsync's usual range. */
static const uint64_t bounds_ns[HIST_BUCKETS - 1] = {
    50000,    100000,    250000,    500000,    1000000,   2500000,   5000000,
    10000000, 25000000,  50000000,  100000000, 250000000, 500000000, 1000000000,
};

uint64_t hist_bound_ns(uint32_t i)
{
    RM_ASSERT(i < HIST_BUCKETS - 1);
    return bounds_ns[i];
}

void hist_record(struct hist *h, uint64_t ns)
{
    uint32_t lo = 0;
    uint32_t hi = HIST_BUCKETS - 1;

    RM_ASSERT(h != NULL);
    /* The first bound >= ns, or the +Inf bucket: a binary search over 14 bounds. */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;

        if (ns <= bounds_ns[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    RM_ASSERT(lo < HIST_BUCKETS);
    h->bucket[lo]++;
    h->count++;
    h->sum_ns += ns;
}
