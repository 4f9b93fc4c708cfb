/*
 * test_hist.c - core/hist: fixed-bound latency histograms.
 */
#include <criterion/criterion.h>

#include "core/hist.h"

Test(hist, puts_a_sample_on_a_bound_in_that_bound_s_bucket)
{
    struct hist h = {0};

    hist_record(&h, hist_bound_ns(0));
    hist_record(&h, hist_bound_ns(0) + 1);
    hist_record(&h, hist_bound_ns(HIST_BUCKETS - 2));
    cr_assert_eq(h.bucket[0], 1);
    cr_assert_eq(h.bucket[1], 1);
    cr_assert_eq(h.bucket[HIST_BUCKETS - 2], 1);
    cr_assert_eq(h.count, 3);
}

Test(hist, counts_zero_in_the_first_bucket_and_the_slowest_in_inf)
{
    struct hist h = {0};

    hist_record(&h, 0);
    hist_record(&h, UINT64_C(60) * 1000000000u);
    cr_assert_eq(h.bucket[0], 1);
    cr_assert_eq(h.bucket[HIST_BUCKETS - 1], 1);
    cr_assert_eq(h.sum_ns, UINT64_C(60) * 1000000000u);
}

Test(hist, bounds_rise_strictly)
{
    for (uint32_t i = 1; i + 1 < HIST_BUCKETS; i++) {
        cr_assert_gt(hist_bound_ns(i), hist_bound_ns(i - 1));
    }
}

Test(hist, every_sample_lands_in_exactly_one_bucket)
{
    struct hist h = {0};
    uint64_t total = 0;

    for (uint64_t ns = 1; ns < UINT64_C(4000000000); ns = ns * 3 + 7) {
        hist_record(&h, ns);
    }
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        total += h.bucket[i];
    }
    cr_assert_eq(total, h.count);
}
