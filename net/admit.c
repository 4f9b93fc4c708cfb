/*
 * admit.c - admission at accept and the memory budget (see admit.h).
 *
 * THREADING: admit_new/admit_free on the start-up thread while no shard
 * runs; the rest on any shard.
 */
#include "net/admit.h"

#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/rm_assert.h"
#include "net/log.h"
#include "net/memwatch.h"

#define NS_PER_S 1000000000ull
#define NS_PER_MS 1000000ull
#define MIB (1024.0 * 1024.0)

/* The address table's size for @conns_max connections: a power of two within bounds. */
static uint32_t slots_for(uint32_t conns_max)
{
    uint64_t want = (uint64_t)conns_max * ADMIT_SLOTS_PER_CONN;
    uint32_t n = ADMIT_SLOTS_MIN;

    while (n < want && n < ADMIT_SLOTS_MAX) {
        n *= 2;
    }
    return n;
}

/* Take the sample at @now_ms: update the flag (and log a change), trim while under pressure. */
static void memory_sample(struct admit *a, uint64_t now_ms)
{
    bool was = atomic_load_explicit(&a->pressure, memory_order_relaxed) != 0;
    uint64_t rss;
    bool on;
    int ret;

    ret = memwatch_rss(a->mem_fd, &rss);
    if (ret < 0) {
        /* Keep the last level: one failed read says nothing about memory. */
        if (a->mem_errors++ == 0) {
            LOG_WARN("memory: cannot read /proc/self/statm: %s", strerror(-ret));
        }
        return;
    }
    a->mem_rss_bytes = rss;
    on = memwatch_pressure(rss, a->memory_max, was);
    if (on != was) {
        atomic_store_explicit(&a->pressure, on ? 1u : 0u, memory_order_relaxed);
        if (on) {
            LOG_WARN("memory: %.1f MiB resident, %u%% of memory_max (%.1f MiB) or more: "
                     "refusing new connections, shedding QoS 0 publishes",
                     (double)rss / MIB, MEMWATCH_ON_PERCENT, (double)a->memory_max / MIB);
        } else {
            LOG_INFO("memory: %.1f MiB resident, under %u%% of memory_max (%.1f MiB): "
                     "accepting connections and QoS 0 publishes again",
                     (double)rss / MIB, MEMWATCH_OFF_PERCENT, (double)a->memory_max / MIB);
        }
    }
    if (on && now_ms >= a->mem_trim_at_ms) {
        /* Give freed heap pages back, so that the resident set can fall under the level. */
        malloc_trim(0);
        a->mem_trim_at_ms = now_ms + MEMWATCH_TRIM_INTERVAL_MS;
    }
}

struct admit *admit_new(const struct admit_cfg *cfg)
{
    struct admit *a;
    uint64_t rss;
    int ret;

    RM_ASSERT(cfg != NULL && cfg->conns_max > 0);
    RM_ASSERT(cfg->per_address_max == 0 || cfg->fd_cap > 0);
    /* sizeof(*a) is a multiple of its alignment, as aligned_alloc() wants. */
    a = aligned_alloc(ADMIT_CACHELINE, sizeof(*a));
    if (a == NULL) {
        goto out_nomem;
    }
    memset(a, 0, sizeof(*a));
    a->mem_fd = -1;
    a->conns_max = cfg->conns_max;
    a->per_address_max = cfg->per_address_max;
    a->memory_max = cfg->memory_max;
    a->seed = cfg->seed;
    if (cfg->rate_max > 0) {
        a->rate_interval_ns = NS_PER_S / cfg->rate_max;
        RM_ASSERT(a->rate_interval_ns > 0);
        a->rate_window_ns = a->rate_interval_ns * cfg->rate_max;
    }
    if (cfg->per_address_max > 0) {
        uint32_t slots = slots_for(cfg->conns_max);

        a->addr_mask = slots - 1;
        a->fd_cap = cfg->fd_cap < ADMIT_FD_CAP_MAX ? cfg->fd_cap : ADMIT_FD_CAP_MAX;
        /* Zeroed pages from the kernel: resident only once a slot or fd is used. */
        a->addr_count = calloc(slots, sizeof(*a->addr_count));
        a->fd_slot = calloc(a->fd_cap, sizeof(*a->fd_slot));
        if (a->addr_count == NULL || a->fd_slot == NULL) {
            goto out_nomem;
        }
    }
    if (cfg->memory_max > 0) {
        a->mem_fd = memwatch_open();
        if (a->mem_fd < 0) {
            LOG_ERROR("memory_max: cannot open /proc/self/statm: %s", strerror(-a->mem_fd));
            goto out_free;
        }
        ret = memwatch_rss(a->mem_fd, &rss);
        if (ret < 0) {
            LOG_ERROR("memory_max: cannot read /proc/self/statm: %s", strerror(-ret));
            goto out_free;
        }
        memory_sample(a, 0);
    }
    return a;

out_nomem:
    LOG_ERROR("cannot set up connection admission: out of memory");
out_free:
    admit_free(a);
    return NULL;
}

void admit_free(struct admit *a)
{
    if (a == NULL) {
        return;
    }
    if (a->mem_fd >= 0) {
        close(a->mem_fd);
    }
    free(a->addr_count);
    free(a->fd_slot);
    free(a);
}

/* Count one more at @n if fewer than @max are there; false (nothing counted) otherwise. */
static bool count_take(_Atomic uint32_t *n, uint32_t max)
{
    /* Relaxed: counts, ordering nothing else. */
    uint32_t before = atomic_fetch_add_explicit(n, 1, memory_order_relaxed);

    if (before < max) {
        return true;
    }
    atomic_fetch_sub_explicit(n, 1, memory_order_relaxed);
    return false;
}

static void count_give(_Atomic uint32_t *n)
{
    uint32_t before = atomic_fetch_sub_explicit(n, 1, memory_order_relaxed);

    RM_ASSERT(before > 0);
}

/* The address table slot of @peer. */
static uint32_t addr_slot(const struct admit *a, const struct sockaddr_storage *peer)
{
    static const uint8_t none[1];
    const uint8_t *key = none;
    size_t len = sizeof(none);

    if (peer->ss_family == AF_INET) {
        key = (const uint8_t *)&((const struct sockaddr_in *)peer)->sin_addr;
        len = sizeof(struct in_addr);
    } else if (peer->ss_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)peer)->sin6_addr;

        key = in6->s6_addr;
        len = sizeof(*in6);
        if (IN6_IS_ADDR_V4MAPPED(in6)) {
            /* The same host as its IPv4 form: the same slot. */
            key += 12;
            len = sizeof(struct in_addr);
        }
    }
    return (uint32_t)XXH3_64bits_withSeed(key, len, a->seed) & a->addr_mask;
}

/* One token of the rate at @now_ns (GCRA, see admit.h); false: over the rate. */
static bool rate_take(struct admit *a, uint64_t now_ns)
{
    uint64_t tat = atomic_load_explicit(&a->rate_tat_ns, memory_order_relaxed);
    uint32_t tries;

    /* Bounded: a CAS fails only when another shard admitted meanwhile. */
    for (tries = 0; tries < ADMIT_RATE_TRIES_MAX; tries++) {
        uint64_t next = (tat > now_ns ? tat : now_ns) + a->rate_interval_ns;

        if (next - now_ns > a->rate_window_ns) {
            return false;
        }
        if (atomic_compare_exchange_weak_explicit(&a->rate_tat_ns, &tat, next,
                                                  memory_order_relaxed, memory_order_relaxed)) {
            return true;
        }
    }
    return false; /* that contended: refusing one is the safe side */
}

enum admit_verdict admit_check(struct admit *a, int fd, const struct sockaddr_storage *peer,
                               uint64_t now_ms)
{
    enum admit_verdict v = ADMIT_OK;
    uint32_t slot = 0;

    RM_ASSERT(a != NULL && fd >= 0);
    RM_ASSERT(peer != NULL || a->per_address_max == 0);
    if (admit_pressure(a)) {
        return ADMIT_MEMORY;
    }
    if (a->per_address_max > 0) {
        if ((uint32_t)fd >= a->fd_cap) {
            /* Its count could not be found again at close: refuse (never reached below 16M). */
            return ADMIT_ADDRESS;
        }
        slot = addr_slot(a, peer);
        if (!count_take(&a->addr_count[slot], a->per_address_max)) {
            return ADMIT_ADDRESS;
        }
    }
    if (!count_take(&a->conns_open, a->conns_max)) {
        v = ADMIT_CONNS;
        goto out_address;
    }
    if (a->rate_interval_ns > 0 && !rate_take(a, now_ms * NS_PER_MS)) {
        v = ADMIT_RATE;
        goto out_conns;
    }
    if (a->per_address_max > 0) {
        /* Relaxed: the handoff's queue orders it before another shard's read. */
        atomic_store_explicit(&a->fd_slot[fd], slot + 1, memory_order_relaxed);
    }
    return ADMIT_OK;

out_conns:
    count_give(&a->conns_open);
out_address:
    if (a->per_address_max > 0) {
        count_give(&a->addr_count[slot]);
    }
    return v;
}

void admit_release(struct admit *a, int fd)
{
    uint32_t slot;

    RM_ASSERT(a != NULL && fd >= 0);
    count_give(&a->conns_open);
    if (a->per_address_max == 0) {
        return;
    }
    RM_ASSERT((uint32_t)fd < a->fd_cap);
    slot = atomic_exchange_explicit(&a->fd_slot[fd], 0, memory_order_relaxed);
    RM_ASSERT(slot != 0 && slot - 1 <= a->addr_mask); /* admitted, released once */
    count_give(&a->addr_count[slot - 1]);
}

void admit_close(struct admit *a, int fd)
{
    admit_release(a, fd);
    close(fd);
}

void admit_memory_poll(struct admit *a, uint64_t now_ms)
{
    uint64_t due;

    RM_ASSERT(a != NULL);
    if (a->mem_fd < 0) {
        return;
    }
    due = atomic_load_explicit(&a->mem_next_ms, memory_order_relaxed);
    if (now_ms < due) {
        return;
    }
    /*
     * Claim the sample: UINT64_MAX keeps every other shard out until the
     * release store below, which also orders this sample's writes before
     * the next sampler's reads (its claim is an acquire).
     */
    if (!atomic_compare_exchange_strong_explicit(&a->mem_next_ms, &due, UINT64_MAX,
                                                 memory_order_acquire, memory_order_relaxed)) {
        return; /* another shard takes this one */
    }
    memory_sample(a, now_ms);
    atomic_store_explicit(&a->mem_next_ms, now_ms + MEMWATCH_INTERVAL_MS, memory_order_release);
}

const char *admit_verdict_str(enum admit_verdict v)
{
    switch (v) {
    case ADMIT_OK:
        return "admitted";
    case ADMIT_MEMORY:
        return "near memory_max";
    case ADMIT_ADDRESS:
        return "connections_per_address_max reached";
    case ADMIT_CONNS:
        return "connection limit reached";
    case ADMIT_RATE:
        return "over accept_rate_max";
    }
    return "?";
}
