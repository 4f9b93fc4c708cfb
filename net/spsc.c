/*
 * spsc.c - bounded lock-free single-producer/single-consumer ring.
 *
 * Owns nothing but each ring's slot array. See spsc.h for the design, the
 * field-by-field THREADING notes and which thread may call what.
 *
 * The memory-ordering argument in one place: there are exactly two
 * cross-thread edges, and each is one release store paired with one acquire
 * load.
 *
 *  (1) Producer -> consumer, "these slots are filled": the producer writes
 *      slots, then store-releases _tail (spsc_publish). The consumer
 *      load-acquires _tail (spsc_pop_batch, spsc_empty) before reading those
 *      slots, so it sees their contents.
 *
 *  (2) Consumer -> producer, "these slots are free": the consumer reads
 *      slots, then store-releases _head (spsc_pop_batch). The producer
 *      load-acquires _head (spsc_push) before overwriting those slots, so
 *      its writes cannot land before the consumer's reads have finished.
 *
 * Each thread reads its own index with relaxed order (it is the only writer)
 * and keeps the other's in a private cache, which is only ever a lower bound
 * of the truth (indices only grow), so a stale cache can make the ring look
 * fuller or emptier than it is, never the other way round.
 */
#include "net/spsc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/rm_assert.h"

static bool is_pow2(uint32_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

int spsc_init(struct spsc *q, uint32_t capacity)
{
    size_t bytes = (size_t)capacity * sizeof(struct xmsg);
    int ret = 0;

    RM_ASSERT(q != NULL);
    RM_ASSERT((uintptr_t)q % SPSC_CACHELINE == 0);
    RM_ASSERT(is_pow2(capacity) && capacity >= 2 && capacity <= SPSC_CAPACITY_MAX);

    memset(q, 0, sizeof(*q));
    /*
     * capacity >= 2 makes @bytes a multiple of 64, as aligned_alloc wants.
     * Zeroing is not needed for correctness (a slot is only read after it
     * was written), but keeps never-used slots defined for tools and dumps.
     */
    q->_slots = aligned_alloc(SPSC_CACHELINE, bytes);
    if (q->_slots == NULL) {
        ret = -ENOMEM;
        goto out;
    }
    memset(q->_slots, 0, bytes);
    q->_mask = capacity - 1;
    q->_capacity = capacity;
    /*
     * Plain (relaxed) stores are enough: whoever starts the producer and
     * consumer threads publishes this whole struct to them (thread creation
     * or the start-up barrier is the happens-before edge).
     */
    atomic_store_explicit(&q->_tail, 0, memory_order_relaxed);
    atomic_store_explicit(&q->_head, 0, memory_order_relaxed);
    atomic_store_explicit(&q->consumer_sleeping, 0, memory_order_relaxed);
out:
    return ret;
}

void spsc_destroy(struct spsc *q)
{
    RM_ASSERT(q != NULL);
    RM_ASSERT(q->_slots != NULL);

    free(q->_slots);
    q->_slots = NULL;
    q->_capacity = 0;
    q->_mask = 0;
}

bool spsc_push(struct spsc *q, const struct xmsg *m)
{
    uint32_t tail = q->_tail_pending;
    bool ret = false;

    RM_ASSERT(m != NULL);
    /* The cache is a lower bound of the head, so this can never exceed capacity. */
    RM_ASSERT(tail - q->_head_cache <= q->_capacity);

    if (tail - q->_head_cache == q->_capacity) {
        /*
         * Looks full by the cache; find out where the consumer really is.
         * Acquire pairs with the release store of _head in spsc_pop_batch:
         * the consumer's reads of every slot before the new head happen
         * before our write below, so we never overwrite an unread item.
         */
        q->_head_cache = atomic_load_explicit(&q->_head, memory_order_acquire);
        if (tail - q->_head_cache == q->_capacity) {
            goto out;
        }
    }
    q->_slots[tail & q->_mask] = *m;
    /* Not published: only this thread reads _tail_pending. */
    q->_tail_pending = tail + 1;
    ret = true;
out:
    return ret;
}

uint32_t spsc_publish(struct spsc *q)
{
    /* Relaxed: the producer is the only writer of _tail. */
    uint32_t published = atomic_load_explicit(&q->_tail, memory_order_relaxed);
    uint32_t n = q->_tail_pending - published;

    RM_ASSERT(n <= q->_capacity);

    if (n > 0) {
        /*
         * Release pairs with the acquire load of _tail in spsc_pop_batch and
         * spsc_empty: every slot written by spsc_push before this store is
         * visible to a consumer that sees the new tail. Skipped when nothing
         * is pending, so an idle producer does not dirty its line.
         */
        atomic_store_explicit(&q->_tail, q->_tail_pending, memory_order_release);
    }
    return n;
}

uint32_t spsc_pop_batch(struct spsc *q, struct xmsg *out, uint32_t max)
{
    /* Relaxed: the consumer is the only writer of _head. */
    uint32_t head = atomic_load_explicit(&q->_head, memory_order_relaxed);
    uint32_t avail = q->_tail_cache - head;
    uint32_t n, first, idx;

    RM_ASSERT(out != NULL || max == 0);
    RM_ASSERT(avail <= q->_capacity);

    if (avail < max) {
        /*
         * The cache cannot cover the request; look for more. Acquire pairs
         * with the release store of _tail in spsc_publish: the slots up to
         * the tail we read here were fully written before it was stored.
         */
        q->_tail_cache = atomic_load_explicit(&q->_tail, memory_order_acquire);
        avail = q->_tail_cache - head;
        RM_ASSERT(avail <= q->_capacity);
    }
    n = avail < max ? avail : max;
    if (n == 0) {
        goto out;
    }

    /* At most two runs: up to the end of the array, then from its start. */
    idx = head & q->_mask;
    first = q->_capacity - idx;
    if (first > n) {
        first = n;
    }
    memcpy(out, &q->_slots[idx], (size_t)first * sizeof(*out));
    memcpy(out + first, &q->_slots[0], (size_t)(n - first) * sizeof(*out));

    /*
     * Release pairs with the acquire load of _head in spsc_push: our reads
     * of these n slots (the memcpy above) complete before the producer can
     * see them free and overwrite them.
     */
    atomic_store_explicit(&q->_head, head + n, memory_order_release);
out:
    return n;
}

uint32_t spsc_used(const struct spsc *q)
{
    uint32_t head = atomic_load_explicit(&q->_head, memory_order_relaxed);
    uint32_t used = q->_tail_pending - head;

    RM_ASSERT(q->_slots != NULL);
    RM_ASSERT(used <= q->_capacity);
    return used;
}

bool spsc_empty(struct spsc *q)
{
    uint32_t head = atomic_load_explicit(&q->_head, memory_order_relaxed);

    RM_ASSERT(q->_slots != NULL);

    if (q->_tail_cache == head) {
        /*
         * Acquire for the same reason as in spsc_pop_batch: a consumer that
         * goes on to pop what this load saw must see the slots' contents.
         * (spsc_pop_batch only skips its own acquire when the cache already
         * covers the request, and the cache was itself loaded with acquire.)
         */
        q->_tail_cache = atomic_load_explicit(&q->_tail, memory_order_acquire);
    }
    return q->_tail_cache == head;
}
