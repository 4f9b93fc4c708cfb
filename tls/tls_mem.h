/*
 * tls_mem.h - where a TLS connection's wolfSSL object lives, and how it
 * sleeps while the connection is idle.
 *
 * Debian's wolfSSL allocates about 54 KB per connection and keeps it for the
 * connection's life: the WOLFSSL object itself (37.5 KB) and its session
 * (10.9 KB) are almost all zeros once the handshake is done (about 2 KB of
 * them are not). wolfSSL has no way to shrink them, and no way to export a
 * connection's keys (session export is not in Debian's build), so:
 *
 * - Everything wolfSSL_new() allocates for a connection (between
 *   tls_mem_begin() and tls_mem_end(), on that thread) is placed in the
 *   connection's own region: page-aligned memory of its own, taken from a
 *   per-thread cache of free regions, refilled from (and spilling into) a
 *   shared pool of regions carved from large anonymous mappings. So
 *   is, during the handshake, each block of exactly sizeof(Aes): the
 *   connection's AES-GCM cipher state (one per direction, 1104 bytes each),
 *   allocated when the handshake sets the traffic keys. The handshake's
 *   other allocations are its temporaries and wolfSSL's global caches (the
 *   fixed-point ECC tables, the error queue), which must not live in a
 *   region that sleeps or is reused: they, what does not fit, and
 *   everything allocated at other times come from malloc as before.
 * - tls_mem_sleep() encodes the region into a small heap buffer (a nap,
 *   tls_nap.h: the words that are neither zero nor part of a cipher state
 *   wolfCrypt can rebuild from its key) and hands the region's pages back
 *   to the kernel (MADV_DONTNEED: they read as zeros again).
 *   tls_mem_wake() rebuilds the region word for word at the same
 *   addresses, so every pointer into it stays valid. Only wolfSSL calls on
 *   the connection's own object touch its region, so the owner wakes it
 *   before any of them.
 * - A block freed inside a region is zeroed, so a region stays compressible
 *   and one whose blocks were all freed goes back to the cache clean.
 *
 * wolfSSL's allocation callbacks are process-wide (tls_mem_init(), before
 * wolfSSL_Init()). A block in a region carries a 16-byte header (its owner
 * and size; 16 keeps wolfSSL's alignment); one from malloc is malloc's own,
 * with nothing added. Regions are carved from 16 MB mappings aligned to
 * their size, marked in a bitmap of the address space, so a free knows in
 * one load which kind of block it holds.
 *
 * THREADING: a region is used by the thread that owns its connection; it
 * moves with the connection (the handoff hands over one owner at a time).
 * The cache of free regions is per thread; a region freed on another
 * thread than the one that took it joins that thread's cache, and a full
 * cache spills into the shared pool (a mutex), which an empty one refills
 * from, so regions flow back from the shards that close connections to
 * the ones that accept them.
 */
#ifndef RINGMQ_TLS_MEM_H
#define RINGMQ_TLS_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One region's bytes: wolfSSL_new() needs ~56 KB in Debian's 5.5.4 build. */
#define TLS_MEM_REGION_BYTES (64u << 10)
/* Free regions a thread keeps for its next connections, without a lock. */
#define TLS_MEM_WARM_REGIONS 16u
/* Free regions the shared pool keeps with their pages; past that, the pages go back. */
#define TLS_MEM_POOL_WARM 64u

/* One connection's region, embedded in its owner (a stable address while in use). */
struct tls_mem {
    uint8_t *base;    /* the region; NULL: none (every block came from malloc) */
    uint32_t used;    /* bytes handed out, from base; a multiple of 16 */
    uint32_t live;    /* blocks in the region not yet freed */
    uint8_t *nap;     /* asleep: the region, encoded (tls_nap.h); NULL when awake */
    uint32_t nap_len; /* bytes at nap */
    /*
     * A region laid out alike that never changes (a fresh object of the
     * same context, tls_ctx.h), which the nap is encoded against; NULL:
     * none. Set by the owner; it must outlive this region's sleeps.
     */
    const struct tls_mem *ref;
};

/* Process-wide counters (relaxed atomics): what tls_mem_stats() reads. */
struct tls_mem_stats {
    uint64_t regions_mapped; /* regions ever carved from mappings */
    uint64_t regions_lost;   /* released with blocks still allocated: never reused */
    uint64_t sleeps;         /* tls_mem_sleep() calls that released pages */
    uint64_t wakes;
};

/* Route wolfSSL's allocations through this module. Before wolfSSL_Init(). 0 or -1. */
int tls_mem_init(void);

/* This thread ends: its cache of free regions goes to the shared pool. */
void tls_mem_thread_done(void);

/*
 * wolfSSL's allocations on this thread go to @m's region until
 * tls_mem_end(): all of them when @only is 0, else only blocks of exactly
 * @only bytes. A zeroed @m takes a region now (none when no mapping can be
 * made: then everything comes from malloc). @m must be awake.
 */
void tls_mem_begin(struct tls_mem *m, size_t only);
void tls_mem_end(void);

/*
 * The object whose memory @m holds was freed (wolfSSL_free): the region
 * goes back to this thread's cache. If wolfSSL still holds a block in it
 * (which it never did in testing), the region is kept as it is, counted in
 * regions_lost, and never reused. @m must be awake.
 */
void tls_mem_release(struct tls_mem *m);

/*
 * Put @m to sleep: its contents go to a nap (tls_nap.h) and its pages to
 * the kernel. 0, or -ENOMEM (nothing changed: no buffer, or no region).
 * Already asleep: 0.
 */
int tls_mem_sleep(struct tls_mem *m);

/* Wake @m (no-op when awake): the region reads as before tls_mem_sleep(). */
void tls_mem_wake(struct tls_mem *m);

static inline bool tls_mem_asleep(const struct tls_mem *m)
{
    return m->nap != NULL;
}

/* The counters, summed over threads. */
void tls_mem_stats(struct tls_mem_stats *out);

#endif
