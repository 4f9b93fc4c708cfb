/*
 * lg_proc.h - sample another process's CPU time and memory from /proc.
 *
 * Used on the broker under test (--broker-pid): CPU seconds are utime +
 * stime from /proc/PID/stat, memory is VmRSS from /proc/PID/status. Called
 * from the load generator's main thread only.
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

#endif
