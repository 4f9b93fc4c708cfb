/*
 * lg_proc.h - sample another process's CPU time and memory from /proc.
 *
 * Used on the broker under test (--broker-pid): CPU seconds are the sum of
 * the first field of /proc/PID/task/TID/schedstat over its threads (time on
 * a CPU in nanoseconds, the same sum_exec_runtime that utime + stime are
 * scaled to), falling back to utime + stime from /proc/PID/stat (10 ms
 * ticks) where schedstat is missing. Nanoseconds matter for short phases:
 * a 10k-connection run costs a broker ~0.3 s, where two 10 ms readings
 * already make +-7 %. The broker's threads must outlive the run (ringmq's
 * shards and mosquitto's one thread do): a thread that exits takes its time
 * out of the task/ sum. Memory is VmRSS from /proc/PID/status. Called from
 * the load generator's main thread only.
 */
#ifndef RINGMQ_LG_PROC_H
#define RINGMQ_LG_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct lg_proc_sample {
    bool ok;      /* false if the process could not be read */
    double cpu_s; /* user + system CPU seconds since the process started */
    uint64_t rss_bytes;
};

/* Read @pid's CPU time and RSS into @out. Returns 0, or -errno (out->ok false). */
int lg_proc_sample(pid_t pid, struct lg_proc_sample *out);

/*
 * Parse the text of a /proc/PID/stat file (@len bytes) into user + system
 * clock ticks. Returns 0 or -EINVAL. Split out for tests: the command name
 * may hold spaces and parentheses.
 */
int lg_proc_parse_stat(const char *text, size_t len, uint64_t *ticks);

/*
 * Sum of the on-CPU nanoseconds of every thread of @pid (schedstat). Returns
 * 0, or -errno when any thread's figure could not be read.
 */
int lg_proc_cpu_ns(pid_t pid, uint64_t *ns);

#endif
