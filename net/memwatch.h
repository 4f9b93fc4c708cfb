/*
 * memwatch.h - how much memory the process holds, against its budget
 * ([limits] memory_max).
 *
 * The measure is the resident set (RSS) from /proc/self/statm: what the
 * kernel's OOM killer and an operator's `top` see, read with one pread(2)
 * on a descriptor kept open, so a sample costs a few microseconds and no
 * allocation. net/admit samples at most every MEMWATCH_INTERVAL_MS from
 * whichever shard's loop gets there first (never on the per-message path)
 * and turns the sample into a pressure flag with memwatch_pressure().
 *
 * The budget's "auto" value is half of the memory the process may use: the
 * physical memory, or the cgroup limit (the lowest memory.max, or v1
 * memory.limit_in_bytes, of the process's cgroup and its ancestors) where
 * that is lower, as in a container. Half,
 * because RSS is not all a connection costs: its kernel socket buffers,
 * the page cache and the rest of the host live beside it; and the pressure
 * level starts at MEMWATCH_ON_PERCENT of the budget, leaving room for the
 * memory already promised (acknowledged QoS 1/2 still queue).
 *
 * The pure helpers (parse, pressure, budget) take no lock and touch no
 * global; memwatch_open/memwatch_rss/memwatch_auto_budget make syscalls.
 * Any thread.
 */
#ifndef RINGMQ_MEMWATCH_H
#define RINGMQ_MEMWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEMWATCH_INTERVAL_MS 100u     /* at most one sample per this */
#define MEMWATCH_ON_PERCENT 90u       /* pressure starts at this share of the budget */
#define MEMWATCH_OFF_PERCENT 85u      /* and ends below this one (hysteresis) */
#define MEMWATCH_TRIM_INTERVAL_MS 1000u /* malloc_trim() at most this often while on */
#define MEMWATCH_CGROUP_DEPTH_MAX 64u /* cgroup ancestors looked at, at most */

/*
 * Whether the process is under memory pressure with @rss_bytes resident of
 * @budget_bytes (> 0), given whether it was (@was_on): on at or above
 * MEMWATCH_ON_PERCENT, off again only below MEMWATCH_OFF_PERCENT, so a
 * process hovering at the threshold does not flap with every sample.
 */
static inline bool memwatch_pressure(uint64_t rss_bytes, uint64_t budget_bytes, bool was_on)
{
    /* Compared as rss * 100 against budget * percent: no overflow below 2^57 bytes. */
    uint64_t percent = was_on ? MEMWATCH_OFF_PERCENT : MEMWATCH_ON_PERCENT;

    return rss_bytes / 64 * 100 >= budget_bytes / 64 * percent;
}

/*
 * The resident set in bytes from the text of /proc/self/statm (@text, @len
 * bytes, need not be NUL-terminated: "size resident shared ..." in pages of
 * @page_bytes). Returns 0, or -EINVAL when the text is not of that form.
 */
int memwatch_parse_statm(const char *text, size_t len, uint64_t page_bytes, uint64_t *rss_bytes);

/*
 * The "auto" budget for @phys_bytes of physical memory and a cgroup limit
 * of @cgroup_bytes (0: none): half of the lower. Pure.
 */
uint64_t memwatch_budget_of(uint64_t phys_bytes, uint64_t cgroup_bytes);

/*
 * Resolve memory_max = auto on this host (sysconf for the physical memory,
 * /proc/self/cgroup and /sys/fs/cgroup/.../memory.max for the limit).
 * *@phys_bytes and *@cgroup_bytes (0: no limit found) say what it saw, for
 * the log. Start-up only.
 */
uint64_t memwatch_auto_budget(uint64_t *phys_bytes, uint64_t *cgroup_bytes);

/* Open /proc/self/statm for memwatch_rss(). The fd, or a negative errno. */
int memwatch_open(void);

/* The resident set in bytes, read from @fd (memwatch_open()). 0 or a negative errno. */
int memwatch_rss(int fd, uint64_t *rss_bytes);

#endif
