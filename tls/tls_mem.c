/*
 * tls_mem.c - regions for wolfSSL objects, and their sleep (see tls_mem.h).
 *
 * Each thread: its own cache of free regions and its own current region;
 * the pool of free regions behind it is shared (a mutex). Counters:
 * process-wide relaxed atomics.
 */
#include "tls/tls_mem.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/memory.h>

#include "core/rm_assert.h"
#include "net/log.h"
#include "tls/tls_nap.h"

/* Regions carved from one mapping (virtual memory only until used). */
#define TLS_MEM_CHUNK_REGIONS 256u
/* A mapping of regions: 16 MB, aligned to its size, so its address names it. */
#define CHUNK_SHIFT 24u
#define CHUNK_BYTES ((size_t)1 << CHUNK_SHIFT)
_Static_assert(TLS_MEM_CHUNK_REGIONS *(size_t)TLS_MEM_REGION_BYTES == CHUNK_BYTES, "one chunk");
/*
 * User addresses below this: where mmap places mappings without a hint
 * (47 bits on x86-64, 4- or 5-level paging; 48 on arm64).
 */
#define ADDR_SHIFT 48u
#define BLK_LIVE 0x544c534du  /* "TLSM" */
#define BLK_FREED 0x46524545u /* "FREE": a region's block, its bytes zeroed */

/*
 * A region block's header: who holds it. 16 bytes keep wolfSSL's 16-byte
 * alignment. The headers follow each other (each block takes 16 +
 * round16(size) bytes), freed ones too, so a region can be walked. Blocks
 * from malloc have none: a pointer is a region's when its chunk is marked
 * in chunk_bits.
 */
struct blk {
    struct tls_mem *owner; /* &orphans: a lost region's */
    uint32_t size;         /* bytes asked for */
    uint32_t magic;
};
_Static_assert(sizeof(struct blk) == 16, "a header keeps 16-byte alignment");

_Static_assert(TLS_MEM_REGION_BYTES / 8 < (1u << 14), "word offsets fit a nap's run");

/* A thread's free regions, taken and given back without a lock. */
struct cache {
    uint8_t *v[TLS_MEM_WARM_REGIONS];
    uint32_t n;
};

/*
 * Free regions shared by all threads: where a thread's full cache spills and
 * an empty one refills (a connection is often freed on another shard than
 * the one that made it). Up to TLS_MEM_POOL_WARM of them keep their pages
 * (warm); the rest are cold: new mappings' regions, and those given back
 * past that count, whose pages went back to the kernel.
 */
struct pool {
    pthread_mutex_t lock;
    uint8_t *warm[TLS_MEM_POOL_WARM]; /* THREADING: all under lock */
    uint32_t warm_n;
    uint8_t **cold;
    uint32_t cold_n;
    uint32_t cold_cap;
};

static __thread struct tls_mem *current;
static __thread size_t current_only; /* 0: every block; else only blocks of this size */
/* The owner of blocks left in a released region: their frees only zero them. */
static struct tls_mem orphans;
static __thread struct cache cache;
static struct pool pool = {.lock = PTHREAD_MUTEX_INITIALIZER};
/*
 * One bit per 16 MB of the address space: set when a chunk of regions is
 * mapped there, before any of its regions is handed out; never cleared
 * (chunks stay mapped). 2 MB of address space, a few pages of it touched.
 */
static _Atomic uint64_t chunk_bits[((size_t)1 << (ADDR_SHIFT - CHUNK_SHIFT)) / 64];
/* A mapping landed beyond the bitmap: regions are off for good (chunk_map()). */
static _Atomic bool beyond_reach;

static _Atomic uint64_t regions_mapped;
static _Atomic uint64_t regions_lost;
static _Atomic uint64_t sleeps;
static _Atomic uint64_t wakes;

static size_t round16(size_t n)
{
    return (n + 15u) & ~(size_t)15u;
}

static size_t page_round(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    return (n + page - 1) / page * page;
}

static void count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Whether @p lies in a chunk of regions (then a header precedes it). */
static bool in_region(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    uint64_t bit;

    if ((a >> ADDR_SHIFT) != 0) {
        return false;
    }
    a >>= CHUNK_SHIFT;
    bit = atomic_load_explicit(&chunk_bits[a / 64], memory_order_acquire);
    return (bit >> (a % 64)) & 1u;
}

/* A new chunk of regions, aligned to its size and marked in chunk_bits; NULL when it cannot. */
static uint8_t *chunk_map(void)
{
    uint8_t *p;
    uint8_t *chunk;
    uintptr_t a;
    size_t head;

    p = mmap(NULL, 2 * CHUNK_BYTES, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    chunk = (uint8_t *)(((uintptr_t)p + CHUNK_BYTES - 1) & ~(uintptr_t)(CHUNK_BYTES - 1));
    head = (size_t)(chunk - p);
    if (head > 0) {
        (void)munmap(p, head);
    }
    (void)munmap(chunk + CHUNK_BYTES, CHUNK_BYTES - head);
    a = (uintptr_t)chunk;
    if ((a >> ADDR_SHIFT) != 0) {
        /* Out of the bitmap's reach: no regions on this system, said once, never tried again. */
        (void)munmap(chunk, CHUNK_BYTES);
        if (!atomic_exchange_explicit(&beyond_reach, true, memory_order_relaxed)) {
            LOG_WARN("tls: mappings at %p are beyond %u-bit addresses: idle TLS connections "
                     "keep their memory",
                     (void *)chunk, ADDR_SHIFT);
        }
        return NULL;
    }
    /*
     * No transparent huge pages: a region's pages go back one by one
     * (a DONTNEED inside a huge page frees nothing until it is split).
     */
    (void)madvise(chunk, CHUNK_BYTES, MADV_NOHUGEPAGE);
    a >>= CHUNK_SHIFT;
    atomic_fetch_or_explicit(&chunk_bits[a / 64], (uint64_t)1 << (a % 64), memory_order_release);
    return chunk;
}

/* Room for @more cold regions. Under pool.lock. 0 or -ENOMEM. */
static int cold_reserve(uint32_t more)
{
    uint8_t **v;
    uint32_t cap;

    if (pool.cold_n + more <= pool.cold_cap) {
        return 0;
    }
    cap = pool.cold_cap == 0 ? TLS_MEM_CHUNK_REGIONS : pool.cold_cap;
    while (cap < pool.cold_n + more) {
        cap *= 2;
    }
    v = realloc(pool.cold, cap * sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    pool.cold = v;
    pool.cold_cap = cap;
    return 0;
}

/* A region from the pool, warm first, mapping more when empty; NULL when it cannot. */
static uint8_t *pool_take(void)
{
    uint8_t *region = NULL;
    uint8_t *p;

    pthread_mutex_lock(&pool.lock);
    if (pool.warm_n > 0) {
        region = pool.warm[--pool.warm_n];
        goto out;
    }
    if (pool.cold_n == 0 && !atomic_load_explicit(&beyond_reach, memory_order_relaxed) &&
        cold_reserve(TLS_MEM_CHUNK_REGIONS) == 0) {
        p = chunk_map();
        if (p != NULL) {
            /* Last first, so regions are handed out in address order. */
            for (uint32_t i = TLS_MEM_CHUNK_REGIONS; i > 0; i--) {
                pool.cold[pool.cold_n++] = p + (size_t)(i - 1) * TLS_MEM_REGION_BYTES;
            }
            count(&regions_mapped, TLS_MEM_CHUNK_REGIONS);
        }
    }
    if (pool.cold_n > 0) {
        region = pool.cold[--pool.cold_n];
    }
out:
    pthread_mutex_unlock(&pool.lock);
    return region;
}

/* Give a clean @region to the pool: warm while there is room, else cold. */
static void pool_give(uint8_t *region)
{
    bool kept;

    pthread_mutex_lock(&pool.lock);
    kept = pool.warm_n < TLS_MEM_POOL_WARM;
    if (kept) {
        pool.warm[pool.warm_n++] = region;
    }
    pthread_mutex_unlock(&pool.lock);
    if (kept) {
        return;
    }
    (void)madvise(region, TLS_MEM_REGION_BYTES, MADV_DONTNEED); /* outside the lock */
    pthread_mutex_lock(&pool.lock);
    if (cold_reserve(1) == 0) {
        pool.cold[pool.cold_n++] = region;
    } else {
        count(&regions_lost, 1); /* no room to remember it: its address space stays unused */
    }
    pthread_mutex_unlock(&pool.lock);
}

static void *mem_malloc(size_t size)
{
    struct tls_mem *m = current;
    struct blk *b;
    size_t need;

    if (m != NULL && m->base != NULL && size <= TLS_MEM_REGION_BYTES &&
        (current_only == 0 || size == current_only)) {
        need = sizeof(*b) + round16(size);
        if (m->used + need <= TLS_MEM_REGION_BYTES) {
            b = (struct blk *)(void *)(m->base + m->used);
            m->used += (uint32_t)need;
            m->live++;
            *b = (struct blk){.owner = m, .size = (uint32_t)size, .magic = BLK_LIVE};
            return b + 1;
        }
    }
    return malloc(size);
}

static struct blk *blk_of(void *p)
{
    struct blk *b = (struct blk *)p - 1;

    RM_ASSERT(b->magic == BLK_LIVE);
    return b;
}

static void mem_free(void *p)
{
    struct blk *b;
    struct tls_mem *m;

    if (!in_region(p)) {
        free(p); /* NULL too */
        return;
    }
    b = blk_of(p);
    m = b->owner;
    if (m != &orphans) {
        RM_ASSERT(!tls_mem_asleep(m) && m->live > 0);
        m->live--;
    }
    memset(p, 0, round16(b->size)); /* compressible, and clean for the next */
    b->magic = BLK_FREED;
}

static void *mem_realloc(void *p, size_t size)
{
    struct blk *b;
    void *n;

    if (p == NULL) {
        return mem_malloc(size);
    }
    if (!in_region(p)) {
        return realloc(p, size);
    }
    b = blk_of(p);
    if (size <= b->size) {
        return p; /* the block keeps its size: its free zeroes all of it */
    }
    n = mem_malloc(size);
    if (n != NULL) {
        memcpy(n, p, b->size);
        mem_free(p);
    }
    return n;
}

int tls_mem_init(void)
{
    return wolfSSL_SetAllocators(mem_malloc, mem_free, mem_realloc) == 0 ? 0 : -1;
}

void tls_mem_thread_done(void)
{
    while (cache.n > 0) {
        pool_give(cache.v[--cache.n]);
    }
}

void tls_mem_begin(struct tls_mem *m, size_t only)
{
    RM_ASSERT(m != NULL && current == NULL && !tls_mem_asleep(m));
    if (m->base == NULL) {
        RM_ASSERT(m->used == 0 && m->live == 0);
        m->base = cache.n > 0 ? cache.v[--cache.n] : pool_take();
    }
    current = m;
    current_only = only;
}

void tls_mem_end(void)
{
    RM_ASSERT(current != NULL);
    current = NULL;
}

/*
 * Walk @m's blocks: with @orphan, the live ones get the orphans' owner (@m
 * is going away); without, every (freed) header is zeroed, so the region
 * is all zeros again.
 */
static void walk(struct tls_mem *m, bool orphan)
{
    struct blk *b;
    uint32_t off = 0;

    while (off < m->used) {
        b = (struct blk *)(void *)(m->base + off);
        RM_ASSERT(b->magic == BLK_LIVE || b->magic == BLK_FREED);
        off += (uint32_t)(sizeof(*b) + round16(b->size));
        if (orphan) {
            if (b->magic == BLK_LIVE) {
                b->owner = &orphans;
            }
        } else {
            memset(b, 0, sizeof(*b));
        }
    }
}

void tls_mem_release(struct tls_mem *m)
{
    RM_ASSERT(m != NULL && !tls_mem_asleep(m));
    if (m->base == NULL) {
        return;
    }
    if (m->live != 0) {
        /* Never reused; its blocks stay where they are (wolfSSL would have leaked them). */
        walk(m, true);
        count(&regions_lost, 1);
        LOG_WARN("tls: wolfSSL kept %u blocks of a freed connection; its region stays as it is",
                 m->live);
        memset(m, 0, sizeof(*m));
        return;
    }
    walk(m, false); /* all zeros now: blocks when freed, headers here */
    if (cache.n < TLS_MEM_WARM_REGIONS) {
        cache.v[cache.n++] = m->base;
    } else {
        pool_give(m->base);
    }
    memset(m, 0, sizeof(*m));
}

/* Offsets of @m's live blocks that may be cipher states (sizeof(Aes)), at most @cap. */
static uint32_t ciphers(const struct tls_mem *m, uint32_t *off, uint32_t cap)
{
    const struct blk *b;
    uint32_t n = 0;
    uint32_t at = 0;

    while (at < m->used && n < cap) {
        b = (const struct blk *)(const void *)(m->base + at);
        if (b->magic == BLK_LIVE && b->size == sizeof(Aes)) {
            off[n++] = at + (uint32_t)sizeof(*b);
        }
        at += (uint32_t)(sizeof(*b) + round16(b->size));
    }
    return n;
}

/* @m's reference, as the nap sees it (same at sleep and wake). */
static struct tls_nap_ref reference(const struct tls_mem *m)
{
    if (m->ref == NULL || m->ref->base == NULL) {
        return (struct tls_nap_ref){.base = NULL, .len = 0};
    }
    RM_ASSERT(m->ref != m && !tls_mem_asleep(m->ref));
    /* Its block headers name their owner: the reference's reads as @m. */
    return (struct tls_nap_ref){.base = m->ref->base,
                                .len = m->ref->used,
                                .owner = (uintptr_t)m->ref,
                                .owner_as = (uintptr_t)m};
}

int tls_mem_sleep(struct tls_mem *m)
{
    struct tls_nap_ref ref;
    uint32_t off[TLS_NAP_CIPHERS_MAX];
    uint8_t *nap;
    uint32_t len;

    RM_ASSERT(m != NULL && current == NULL);
    if (tls_mem_asleep(m)) {
        return 0;
    }
    if (m->base == NULL || m->used == 0) {
        return -ENOMEM;
    }
    ref = reference(m);
    nap = tls_nap_encode(m->base, m->used, &ref, off, ciphers(m, off, TLS_NAP_CIPHERS_MAX), &len);
    if (nap == NULL) {
        return -ENOMEM;
    }
    if (madvise(m->base, page_round(m->used), MADV_DONTNEED) != 0) {
        int err = errno;

        tls_nap_free(nap, len);
        return -err;
    }
    m->nap = nap;
    m->nap_len = len;
    count(&sleeps, 1);
    return 0;
}

void tls_mem_wake(struct tls_mem *m)
{
    struct tls_nap_ref ref;

    RM_ASSERT(m != NULL);
    if (!tls_mem_asleep(m)) {
        return;
    }
    ref = reference(m);
    tls_nap_decode(m->base, m->used, &ref, m->nap, m->nap_len);
    tls_nap_free(m->nap, m->nap_len);
    m->nap = NULL;
    m->nap_len = 0;
    count(&wakes, 1);
}

void tls_mem_stats(struct tls_mem_stats *out)
{
    RM_ASSERT(out != NULL);
    out->regions_mapped = atomic_load_explicit(&regions_mapped, memory_order_relaxed);
    out->regions_lost = atomic_load_explicit(&regions_lost, memory_order_relaxed);
    out->sleeps = atomic_load_explicit(&sleeps, memory_order_relaxed);
    out->wakes = atomic_load_explicit(&wakes, memory_order_relaxed);
}
