/*
 * spsc.h - bounded lock-free single-producer/single-consumer ring.
 *
 * The only channel between two shards (DESIGN.md "Threads and ownership"):
 * one struct spsc per ordered pair of shards, the sender is the one producer
 * and the receiver the one consumer. Slots carry a struct xmsg by value.
 * Nothing here blocks, sleeps, allocates (after spsc_init) or makes a
 * syscall; a full ring is reported to the producer, which keeps its own
 * overflow (net/xshard).
 *
 * Why slots of one compile-time type rather than a slot size parameter:
 * every queue in the design carries exactly struct xmsg (STYLE.md
 * "Ownership"), so a fixed 32-byte slot lets the compiler turn each copy
 * into two 16-byte moves instead of a variable-length memcpy, and the API is
 * type-checked. The ring depends on nothing but sizeof(struct xmsg), which
 * must divide SPSC_CACHELINE so that no slot straddles two cache lines
 * (checked below). struct xmsg itself lives in core/xmsg.h, because core/
 * produces and consumes the routing kinds.
 *
 * Indices are free-running uint32_t counters (slot = index & mask): full is
 * `tail - head == capacity`, empty is `tail == head`, and unsigned wrap past
 * UINT32_MAX is harmless because capacity <= 2^31. All capacity slots are
 * usable (no sacrificed slot as in ck_ring).
 *
 * Publication is batched: spsc_push() only writes a slot; spsc_publish()
 * makes every pushed slot visible with one release store, so a shard
 * publishes (and later rings the doorbell) once per loop iteration. The
 * consumer takes a batch with one acquire load (spsc_pop_batch()).
 *
 * Each side keeps a cached copy of the other side's index on its own cache
 * line and reloads the shared index only when the cache says full (producer)
 * or empty (consumer), so in steady state each index line moves between
 * cores about once per batch rather than once per item (the scheme of
 * rigtorp's SPSCQueue; ck_ring.h has the same fences without the caches).
 *
 * THREADING: spsc_init() and spsc_destroy() run while no other thread uses
 * the ring (start-up, shutdown). Then exactly one thread at a time may be
 * the producer (spsc_push, spsc_publish) and exactly one the consumer
 * (spsc_pop_batch, spsc_empty); spsc_capacity() is for anyone. Handing a
 * role to another thread needs a happens-before edge (e.g. thread start).
 */
#ifndef RINGMQ_SPSC_H
#define RINGMQ_SPSC_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/xmsg.h"

/*
 * Destructive-interference distance. 64 on the x86-64 and arm64 parts we run
 * on; Intel's adjacent-line prefetcher argues for 128, which is this one
 * constant if measurements ever say so.
 */
#define SPSC_CACHELINE 64u

/* Largest capacity spsc_init() accepts (keeps tail - head unambiguous). */
#define SPSC_CAPACITY_MAX (1u << 31)

_Static_assert(SPSC_CACHELINE % sizeof(struct xmsg) == 0,
               "a slot must never straddle two cache lines");

/*
 * The ring. Storage for it must be SPSC_CACHELINE-aligned (static, or
 * aligned_alloc; plain malloc is not enough) - spsc_init() checks. Fields
 * starting with '_' are private to net/spsc.c; each says which thread writes
 * and which reads it.
 */
struct spsc {
    /* --- Producer's cache line. --- */

    /*
     * Published tail: items [head, _tail) are visible to the consumer.
     * THREADING: written by the producer only (release, in spsc_publish);
     * read by the consumer (acquire) when its _tail_cache runs dry.
     */
    alignas(SPSC_CACHELINE) _Atomic uint32_t _tail;

    /*
     * Next index to push; [_tail, _tail_pending) are pushed but unpublished.
     * THREADING: producer only.
     */
    uint32_t _tail_pending;

    /*
     * The consumer's _head as the producer last loaded it; a lower bound of
     * the real head, so "full" by this value may be stale but never wrong in
     * the unsafe direction. THREADING: producer only.
     */
    uint32_t _head_cache;

    /* --- Consumer's cache line. --- */

    /*
     * Consumer head: slots [_head, _tail) hold unread items; slots before
     * _head are free for the producer to overwrite. THREADING: written by
     * the consumer only (release, in spsc_pop_batch); read by the producer
     * (acquire) when its _head_cache says full.
     */
    alignas(SPSC_CACHELINE) _Atomic uint32_t _head;

    /*
     * The producer's _tail as the consumer last loaded it (acquire); a lower
     * bound of the real published tail. THREADING: consumer only.
     */
    uint32_t _tail_cache;

    /*
     * Unused: spsc_init() zeroes it and nothing reads or writes it after.
     * net/xshard keeps one sleeping flag per consumer shard instead of one
     * per ring (the doorbell protocol is in net/xshard.h).
     */
    _Atomic uint32_t consumer_sleeping;

    /*
     * --- Read-only line. ---
     * THREADING: written only by spsc_init()/spsc_destroy() (no other thread
     * running), then read by both sides; never written while shared, so both
     * cores keep a clean copy of this line.
     */

    alignas(SPSC_CACHELINE) struct xmsg *_slots;   /* capacity slots, 64-aligned */
    uint32_t _mask;                                /* capacity - 1 */
    uint32_t _capacity;                            /* power of two, 2.. */
};

/*
 * Set up @q as an empty ring of @capacity slots; allocates the slot array
 * with aligned_alloc. @q must be SPSC_CACHELINE-aligned and not in use;
 * @capacity a power of two in [2, SPSC_CAPACITY_MAX] (both asserted).
 * Start-up only. Returns 0, or -ENOMEM (then @q holds nothing to destroy).
 */
int spsc_init(struct spsc *q, uint32_t capacity);

/*
 * Free @q's slot array. No thread may use @q any more. Items still in the
 * ring are dropped without a look: if they own references, drain the ring
 * with spsc_pop_batch() first. @q may be spsc_init()ed again afterwards.
 */
void spsc_destroy(struct spsc *q);

/*
 * Producer: copy *@m into the next free slot without publishing it (see
 * spsc_publish). Returns true if stored, false if the ring is full; never
 * waits. Borrows @m until return.
 *
 * A ring can be full of the producer's own unpublished items: publish before
 * waiting for room, or the consumer can never make any.
 */
bool spsc_push(struct spsc *q, const struct xmsg *m);

/*
 * Producer: make every pushed, unpublished item visible to the consumer
 * with one release store. Returns how many items this call published; 0
 * means nothing was pending and no store was made (so no doorbell is due).
 */
uint32_t spsc_publish(struct spsc *q);

/*
 * Consumer: move up to @max published items, oldest first, into @out[0..n)
 * and free their slots for the producer. One acquire load per call at most
 * (none while the cached tail already covers @max) and one release store
 * when n > 0. Returns n, 0 when nothing is published. @out is borrowed until
 * return and must hold @max items.
 */
uint32_t spsc_pop_batch(struct spsc *q, struct xmsg *out, uint32_t max);

/*
 * Consumer: true if no published item is waiting. Reloads the producer's
 * tail when the cached copy says empty, so a false "empty" is only as old
 * as this call (what the doorbell check before sleeping needs).
 */
bool spsc_empty(struct spsc *q);

/*
 * Producer only: items pushed and not yet popped (pushed but unpublished
 * ones included), for metrics. One relaxed load of the consumer's head:
 * may be a little high, never over capacity.
 */
uint32_t spsc_used(const struct spsc *q);

/* Any thread: the slot count given to spsc_init(). */
static inline uint32_t spsc_capacity(const struct spsc *q)
{
    return q->_capacity;
}

#endif
