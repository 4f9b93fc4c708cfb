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
#include <wolfssl/wolfcrypt/memory.h>

#include "core/rm_assert.h"
#include "net/log.h"

/* Regions carved from one mapping (virtual memory only until used). */
#define TLS_MEM_CHUNK_REGIONS 256u
#define BLK_LIVE 0x544c534du  /* "TLSM" */
#define BLK_FREED 0x46524545u /* "FREE": a region's block, its bytes zeroed */

/*
 * Every block's header: who holds it. 16 bytes keep wolfSSL's 16-byte
 * alignment. In a region the headers follow each other (each block takes
 * 16 + round16(size) bytes), freed ones too, so a region can be walked.
 */
struct blk {
    struct tls_mem *owner; /* NULL: malloc; &orphans: a lost region's */
    uint32_t size;         /* bytes asked for */
    uint32_t magic;
};
_Static_assert(sizeof(struct blk) == 16, "a header keeps 16-byte alignment");

/* A sleeping region's run of nonzero words: skip words, then count words follow. */
struct run {
    uint16_t skip;
    uint16_t count;
};
_Static_assert(TLS_MEM_REGION_BYTES / 8 <= UINT16_MAX, "word offsets fit a run");

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
    size_t bytes = (size_t)TLS_MEM_CHUNK_REGIONS * TLS_MEM_REGION_BYTES;
    uint8_t *region = NULL;
    uint8_t *p;

    pthread_mutex_lock(&pool.lock);
    if (pool.warm_n > 0) {
        region = pool.warm[--pool.warm_n];
        goto out;
    }
    if (pool.cold_n == 0 && cold_reserve(TLS_MEM_CHUNK_REGIONS) == 0) {
        p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED) {
            /*
             * No transparent huge pages: a region's pages go back one by one
             * (a DONTNEED inside a huge page frees nothing until it is split).
             */
            (void)madvise(p, bytes, MADV_NOHUGEPAGE);
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
    if (size > UINT32_MAX - sizeof(*b)) {
        return NULL;
    }
    b = malloc(sizeof(*b) + size);
    if (b == NULL) {
        return NULL;
    }
    *b = (struct blk){.owner = NULL, .size = (uint32_t)size, .magic = BLK_LIVE};
    return b + 1;
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

    if (p == NULL) {
        return;
    }
    b = blk_of(p);
    m = b->owner;
    if (m == NULL) {
        free(b);
        return;
    }
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
    b = blk_of(p);
    if (b->owner == NULL) {
        if (size > UINT32_MAX - sizeof(*b)) {
            return NULL;
        }
        b = realloc(b, sizeof(*b) + size);
        if (b == NULL) {
            return NULL;
        }
        b->size = (uint32_t)size;
        return b + 1;
    }
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

/* Encode the nonzero words of @w[0..@n) into @out (NULL: only measure). Returns the length. */
static size_t encode(const uint64_t *w, uint32_t n, uint8_t *out)
{
    struct run r;
    size_t len = 0;
    uint32_t i = 0;
    uint32_t last = 0;
    uint32_t start;

    while (i < n) {
        if (w[i] == 0) {
            i++;
            continue;
        }
        for (start = i; i < n && w[i] != 0; i++) {
        }
        r = (struct run){.skip = (uint16_t)(start - last), .count = (uint16_t)(i - start)};
        if (out != NULL) {
            memcpy(out + len, &r, sizeof(r));
            memcpy(out + len + sizeof(r), w + start, (size_t)r.count * 8);
        }
        len += sizeof(r) + (size_t)r.count * 8;
        last = i;
    }
    return len;
}

int tls_mem_sleep(struct tls_mem *m)
{
    const uint64_t *w;
    uint8_t *nap;
    size_t len;

    RM_ASSERT(m != NULL && current == NULL);
    if (tls_mem_asleep(m)) {
        return 0;
    }
    if (m->base == NULL || m->used == 0) {
        return -ENOMEM;
    }
    w = (const uint64_t *)(const void *)m->base;
    len = encode(w, m->used / 8, NULL);
    nap = malloc(len > 0 ? len : 1);
    if (nap == NULL) {
        return -ENOMEM;
    }
    encode(w, m->used / 8, nap);
    if (madvise(m->base, page_round(m->used), MADV_DONTNEED) != 0) {
        free(nap);
        return -errno;
    }
    m->nap = nap;
    m->nap_len = (uint32_t)len;
    count(&sleeps, 1);
    return 0;
}

void tls_mem_wake(struct tls_mem *m)
{
    struct run r;
    size_t pos = 0;
    size_t word = 0;

    RM_ASSERT(m != NULL);
    if (!tls_mem_asleep(m)) {
        return;
    }
    while (pos < m->nap_len) {
        memcpy(&r, m->nap + pos, sizeof(r));
        pos += sizeof(r);
        word += r.skip;
        RM_ASSERT((word + r.count) * 8 <= m->used && pos + (size_t)r.count * 8 <= m->nap_len);
        memcpy(m->base + word * 8, m->nap + pos, (size_t)r.count * 8);
        pos += (size_t)r.count * 8;
        word += r.count;
    }
    free(m->nap);
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
