/*
 * admit.h - who may open a connection: the process-wide checks made at
 * accept, before a connection reads a byte, and the memory budget.
 *
 * One struct admit per process, built by the start-up thread before any
 * shard thread starts and freed after they are all joined (as struct
 * xshard). Each shard asks admit_check() about every socket it accepts, in
 * this order, and closes the socket at once when refused (no CONNACK:
 * nothing was read, so nothing is owed):
 *   1. memory: while the process is near memory_max (the flag below);
 *   2. connections_per_address_max: the count of the peer's address;
 *   3. connections_max: the count of open connections;
 *   4. accept_rate_max: a token bucket of connections admitted per second.
 * A refusal undoes the counts taken before it, so only a connection that is
 * admitted takes a token: a flood from one address over its limit does not
 * use up the rate that other addresses get.
 *
 * The counts are process-wide because a connection is admitted by the shard
 * that accepts it but lives on its session's home shard (net/conn's
 * handoff): each admitted fd is given back with exactly one admit_close()
 * (or admit_release() and the caller's close(2)) on whichever shard holds it
 * then. To give back its address's count there without carrying anything
 * in struct conn (whose size is the idle-connection budget) or in the
 * handoff message, the address's slot is kept by fd number (fd_slot[fd]),
 * as HAProxy's fdtab keeps per-fd state: written at admission, taken just
 * before the close - before, because the number may be reused by another
 * shard's accept as soon as the fd is closed.
 *
 * Per-address counts live in a fixed table of counters, indexed by a hash
 * of the address (XXH3 under a per-process random seed, so a client cannot
 * pick addresses that share a victim's slot). IPv4 counts its 4 bytes, an
 * IPv4-mapped IPv6 address the same 4, IPv6 its 16. Two addresses that
 * share a slot share its limit: a collision can only refuse early, never
 * admit more than the limit from one address. The table has at least
 * ADMIT_SLOTS_PER_CONN slots per connection allowed (so a full broker of
 * one connection per address has most addresses alone in their slot),
 * allocated zeroed at start-up and touched only as used.
 *
 * The rate is a GCRA (the token bucket as one timestamp): each admission
 * moves a theoretical arrival time one interval (1 s / rate) forward; a
 * connection is refused when that would put it more than one second ahead
 * of now, so up to a second's worth (rate connections) may come at once
 * and the long-run rate is bounded by accept_rate_max. Process-wide, not
 * per shard: the operator's number is what the host takes, and
 * SO_REUSEPORT spreads few sources unevenly over the shards.
 *
 * Memory: admit_memory_poll(), called by every shard once per loop
 * iteration, lets one shard at a time (whichever claims the sample) read
 * the resident set at most every MEMWATCH_INTERVAL_MS (net/memwatch) and
 * set the pressure flag with hysteresis; each shard reads the flag at
 * accept and tells its broker (core/) when it changes. While the flag is on
 * the sampler also calls malloc_trim(0) at most every
 * MEMWATCH_TRIM_INTERVAL_MS, so memory freed when the load drops goes back
 * to the kernel and the resident set (hence the flag) can fall again.
 *
 * Cost per accept: one relaxed load (memory), then with each limit on: a
 * getpeername(2) by the caller, a hash and two atomic adds (address), one
 * atomic add (connections), one compare-and-swap (rate). Nothing is
 * allocated per connection and no lock is taken. Per message: nothing.
 *
 * THREADING: admit_new/admit_free run while no shard thread runs. Then any
 * shard calls the rest. The atomics are the shared state (each says who
 * writes it); the fields after them are read-only.
 */
#ifndef RINGMQ_ADMIT_H
#define RINGMQ_ADMIT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADMIT_CACHELINE 64
#define ADMIT_SLOTS_PER_CONN 4u      /* address slots per connection allowed */
#define ADMIT_SLOTS_MIN 1024u        /* address table size, at least */
#define ADMIT_SLOTS_MAX (1u << 22)   /* ... and at most (16 MiB of counters) */
#define ADMIT_FD_CAP_MAX (1u << 24)  /* fd numbers tracked, at most (64 MiB, touched as used) */
#define ADMIT_RATE_TRIES_MAX 64u     /* compare-and-swap tries of one admission */

/* What admit_check() decided. */
enum admit_verdict {
    ADMIT_OK = 0,
    ADMIT_MEMORY,  /* near memory_max */
    ADMIT_ADDRESS, /* connections_per_address_max from this address (or fd untrackable) */
    ADMIT_CONNS,   /* connections_max */
    ADMIT_RATE,    /* accept_rate_max */
};

/* What admit_new() needs; main.c fills it from the configuration. */
struct admit_cfg {
    uint32_t conns_max;       /* connections_max, fitted to RLIMIT_NOFILE (> 0) */
    uint32_t per_address_max; /* connections_per_address_max; 0: no limit */
    uint32_t rate_max;        /* accept_rate_max, per second; 0: no limit */
    uint32_t fd_cap;          /* with per_address_max: fds numbered below this can be admitted */
    uint64_t memory_max;      /* the budget in bytes (auto resolved); 0: off */
    uint64_t seed;            /* address hash seed: random, drawn per process */
};

struct admit {
    /* Open connections. THREADING: any shard: +1 at admission, -1 at the final close. */
    alignas(ADMIT_CACHELINE) _Atomic uint32_t conns_open;
    /* The rate's theoretical arrival time (ns). THREADING: any shard, by CAS at admission. */
    alignas(ADMIT_CACHELINE) _Atomic uint64_t rate_tat_ns;
    /*
     * THREADING: the next sample is due at mem_next_ms. The shard whose CAS
     * sets it to UINT64_MAX (acquire) takes that sample, and it alone
     * writes pressure (1: near the budget; read by every shard at accept
     * and once per iteration) and the sampler fields below, until it
     * stores the next due time (release), which orders its writes before
     * the next sampler's reads. The other shards skip the sample meanwhile.
     */
    alignas(ADMIT_CACHELINE) _Atomic uint64_t mem_next_ms;
    _Atomic uint32_t pressure;
    uint64_t mem_trim_at_ms; /* sampler: next malloc_trim() while under pressure */
    uint64_t mem_rss_bytes;  /* sampler: the last sample */
    uint32_t mem_errors;     /* sampler: failed reads (logged once) */

    /* Read-only after admit_new(). */
    alignas(ADMIT_CACHELINE) uint32_t conns_max;
    uint32_t per_address_max;
    uint32_t fd_cap;    /* fd_slot's length */
    uint32_t addr_mask; /* addr_count's length - 1 (a power of two) */
    uint64_t rate_interval_ns; /* 1 s / accept_rate_max; 0: no limit */
    uint64_t rate_window_ns;   /* how far ahead of now the arrival time may be */
    uint64_t memory_max;
    uint64_t seed;
    int mem_fd; /* /proc/self/statm; -1 when memory_max is 0 */
    /* Per address slot: open connections. THREADING: any shard, atomically. */
    _Atomic uint32_t *addr_count;
    /* Per fd: 1 + its address's slot, 0 for none. THREADING: see above. */
    _Atomic uint32_t *fd_slot;
};

/*
 * Build the process's admission state per @cfg (borrowed until return) and,
 * with a memory budget, take the first sample (so the flag is right before
 * the first accept). Start-up only. NULL after logging why (ENOMEM, or
 * /proc/self/statm cannot be read).
 */
struct admit *admit_new(const struct admit_cfg *cfg);

/* Free @a (NULL: no-op). Once no shard runs. */
void admit_free(struct admit *a);

/* True when admit_check() needs the peer's address (connections_per_address_max is on). */
static inline bool admit_wants_peer(const struct admit *a)
{
    return a->per_address_max > 0;
}

/*
 * Decide about @fd, just accepted, from @peer (getpeername(2); may be NULL
 * unless admit_wants_peer()), at @now_ms (CLOCK_MONOTONIC milliseconds).
 * ADMIT_OK: the connection counts from now on; pair it with one
 * admit_close() or admit_release(). Anything else: nothing was counted;
 * the caller closes @fd.
 */
enum admit_verdict admit_check(struct admit *a, int fd, const struct sockaddr_storage *peer,
                               uint64_t now_ms);

/*
 * Give back admitted @fd's counts, before the caller closes it (the number
 * may be reused by any shard once closed). For a close the caller must make
 * itself; otherwise use admit_close().
 */
void admit_release(struct admit *a, int fd);

/* admit_release(), then close(2) @fd. */
void admit_close(struct admit *a, int fd);

/* True while the process is near its memory budget. */
static inline bool admit_pressure(const struct admit *a)
{
    /* Relaxed: a flag, ordering nothing else; a late view admits or sheds one more. */
    return atomic_load_explicit(&a->pressure, memory_order_relaxed) != 0;
}

/*
 * Once per loop iteration of every shard, at @now_ms: take the memory
 * sample if it is due and no other shard took it (see above). Cheap when
 * not due: one load.
 */
void admit_memory_poll(struct admit *a, uint64_t now_ms);

/* The open connections (for logs and tests). */
static inline uint32_t admit_conns_open(const struct admit *a)
{
    return atomic_load_explicit(&a->conns_open, memory_order_relaxed);
}

/* A verdict's reason, for logs: "connection limit reached" and so on. */
const char *admit_verdict_str(enum admit_verdict v);

#endif
