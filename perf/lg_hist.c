/*
 * lg_hist.c - log-bucketed latency histogram; see lg_hist.h.
 *
 * Bucket layout: index v for v < 64; above, with m = floor(log2 v) (6..39),
 * index 64 + (m - 6) * 64 + the six bits below the leading one. Each bucket
 * covers [low, low + 2^(m-6)), where low >= 64 * 2^(m-6): width/low <= 1/64.
 * Owned by one thread.
 */
#include "perf/lg_hist.h"

#include <string.h>

#include "core/rm_assert.h"

#define TOP_VALUE ((1ull << LG_HIST_TOP_BITS) - 1)

void lg_hist_init(struct lg_hist *h)
{
    RM_ASSERT(h != NULL);
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
    RM_ASSERT(lg_hist_index(TOP_VALUE) == LG_HIST_BUCKETS - 1);
}

uint32_t lg_hist_index(uint64_t v_ns)
{
    uint32_t m;
    uint32_t idx;

    if (v_ns < LG_HIST_SUB) {
        return (uint32_t)v_ns;
    }
    if (v_ns > TOP_VALUE) {
        v_ns = TOP_VALUE;
    }
    m = 63u - (uint32_t)__builtin_clzll(v_ns);
    idx = LG_HIST_SUB + (m - LG_HIST_SUB_BITS) * LG_HIST_SUB +
          (uint32_t)((v_ns >> (m - LG_HIST_SUB_BITS)) & (LG_HIST_SUB - 1));
    RM_ASSERT(idx < LG_HIST_BUCKETS);
    return idx;
}

uint64_t lg_hist_bucket_low(uint32_t idx)
{
    uint32_t octave;
    uint32_t sub;

    RM_ASSERT(idx < LG_HIST_BUCKETS);
    if (idx < LG_HIST_SUB) {
        return idx;
    }
    octave = (idx - LG_HIST_SUB) / LG_HIST_SUB; /* m - 6 */
    sub = (idx - LG_HIST_SUB) % LG_HIST_SUB;
    return (uint64_t)(LG_HIST_SUB + sub) << octave;
}

uint64_t lg_hist_bucket_high(uint32_t idx)
{
    RM_ASSERT(idx < LG_HIST_BUCKETS);
    if (idx < LG_HIST_SUB) {
        return idx;
    }
    return lg_hist_bucket_low(idx) + (1ull << ((idx - LG_HIST_SUB) / LG_HIST_SUB)) - 1;
}

void lg_hist_record(struct lg_hist *h, uint64_t v_ns)
{
    RM_ASSERT(h != NULL);
    h->buckets[lg_hist_index(v_ns)]++;
    h->count++;
    h->sum_ns += v_ns;
    if (v_ns < h->min_ns) {
        h->min_ns = v_ns;
    }
    if (v_ns > h->max_ns) {
        h->max_ns = v_ns;
    }
}

void lg_hist_merge(struct lg_hist *into, const struct lg_hist *from)
{
    uint32_t i;

    RM_ASSERT(into != NULL && from != NULL);
    RM_ASSERT(into != from);
    for (i = 0; i < LG_HIST_BUCKETS; i++) {
        into->buckets[i] += from->buckets[i];
    }
    into->count += from->count;
    into->sum_ns += from->sum_ns;
    if (from->min_ns < into->min_ns) {
        into->min_ns = from->min_ns;
    }
    if (from->max_ns > into->max_ns) {
        into->max_ns = from->max_ns;
    }
}

uint64_t lg_hist_quantile(const struct lg_hist *h, double q)
{
    uint64_t rank;
    uint64_t seen = 0;
    uint64_t v = 0;
    uint32_t i;

    RM_ASSERT(h != NULL);
    RM_ASSERT(q > 0.0 && q <= 1.0);
    if (h->count == 0) {
        goto out;
    }
    rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count) {
        rank++; /* ceil */
    }
    if (rank == 0) {
        rank = 1;
    }
    if (rank > h->count) {
        rank = h->count;
    }
    for (i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            v = lg_hist_bucket_high(i);
            break;
        }
    }
    if (v > h->max_ns) {
        v = h->max_ns;
    }
    if (v < h->min_ns) {
        v = h->min_ns;
    }
out:
    return v;
}

double lg_hist_mean(const struct lg_hist *h)
{
    RM_ASSERT(h != NULL);
    return h->count == 0 ? 0.0 : (double)h->sum_ns / (double)h->count;
}
