/*
 * timer.h - a hashed timer wheel for connection deadlines.
 *
 * TIMER_SLOTS slots of TIMER_TICK_MS each (51.2 s per revolution). A node
 * carries its own absolute deadline_ms and sits in the slot of its deadline's
 * tick; a deadline further away than one revolution is simply checked (and
 * put back) each time its slot comes round. Nodes are intrusive (embedded in
 * the owner, e.g. struct conn) and doubly linked: set and delete are O(1).
 *
 * Moving a deadline later - the keepalive reset on every received packet -
 * only updates the field: the node stays in its earlier slot and is
 * re-slotted when that slot fires and finds the deadline still ahead (lazy
 * re-slotting). Moving it earlier re-slots at once.
 *
 * Resolution: a node expires at the first timer_expire() call at or after the
 * end of its deadline's tick, i.e. up to TIMER_TICK_MS late, never early.
 *
 * Pure: no clock, time is the caller's now_ms. Owned by one shard; not
 * thread-safe.
 */
#ifndef RINGMQ_TIMER_H
#define RINGMQ_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#define TIMER_TICK_MS 100u
#define TIMER_SLOTS 512u /* power of two */

struct timer_link {
    struct timer_link *_prev;
    struct timer_link *_next;
};

struct timer_node {
    struct timer_link _link; /* unlinked: both NULL */
    uint64_t deadline_ms;    /* read-only for the owner; write with timer_set() */
};

struct timer_wheel {
    struct timer_link _slots[TIMER_SLOTS];
    struct timer_link _pending; /* spliced out of the slot being expired */
    uint64_t _next_tick;        /* first tick not yet expired */
    uint32_t count;             /* nodes in the wheel */
};

/* Empty wheel whose first tick is @now_ms's. */
void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms);

/* An unlinked node (not in any wheel). */
void timer_node_init(struct timer_node *n);

/* True if @n is in a wheel. */
static inline bool timer_node_linked(const struct timer_node *n)
{
    return n->_link._next != 0;
}

/*
 * Give @n the deadline @deadline_ms, adding it to @w if it is not in it. A
 * deadline in the past expires at the next timer_expire() past the current
 * tick. @n must be unlinked or in @w.
 */
void timer_set(struct timer_wheel *w, struct timer_node *n, uint64_t deadline_ms);

/* Remove @n from @w; no-op if @n is unlinked. */
void timer_del(struct timer_wheel *w, struct timer_node *n);

/*
 * Pop one node whose deadline is <= @now_ms, unlinked, or NULL when none is
 * due. Call until NULL each loop iteration; between calls the caller may set
 * or delete any node, including the one returned (e.g. to give it a new
 * deadline). Work per call is bounded: at most TIMER_SLOTS slots are scanned
 * over a run of calls, however far the clock jumped.
 */
struct timer_node *timer_expire(struct timer_wheel *w, uint64_t now_ms);

#endif
