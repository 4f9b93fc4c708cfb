/*
 * lg_clock.h - the load generator's one clock: CLOCK_MONOTONIC in
 * nanoseconds, the clock of every timestamp it takes (message stamps,
 * deadlines, phase edges).
 *
 * Owns nothing; any thread may call it (a vDSO read, ~20 ns).
 */
#ifndef RINGMQ_LG_CLOCK_H
#define RINGMQ_LG_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Now, in CLOCK_MONOTONIC nanoseconds. */
static inline uint64_t lg_clock_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
