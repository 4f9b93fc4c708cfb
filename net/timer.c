/*
 * timer.c - hashed timer wheel with lazy re-slotting (see timer.h).
 *
 * Invariant: a node sits in the slot of a tick T (or in _pending, spliced
 * out of one) with T * TIMER_TICK_MS <= deadline_ms, so its slot is never
 * visited too late. A slot is expired only once its whole tick lies in the
 * past (tick < now_ms / TIMER_TICK_MS), hence every node found there whose
 * deadline falls in that tick is due; a node found there that is not due
 * is a later lap or a lazily moved deadline and is put back in its slot.
 *
 * Pure; one shard; not thread-safe.
 */
#include "net/timer.h"

#include <stddef.h>

#include "core/rm_assert.h"

#define TIMER_MASK (TIMER_SLOTS - 1u)

static void link_init(struct timer_link *head)
{
    head->_prev = head;
    head->_next = head;
}

static bool link_empty(const struct timer_link *head)
{
    return head->_next == head;
}

static void link_add_tail(struct timer_link *head, struct timer_link *l)
{
    l->_prev = head->_prev;
    l->_next = head;
    head->_prev->_next = l;
    head->_prev = l;
}

static void link_del(struct timer_link *l)
{
    l->_prev->_next = l->_next;
    l->_next->_prev = l->_prev;
    l->_prev = NULL;
    l->_next = NULL;
}

/* Move every node of @from to the (empty) list @to. */
static void link_splice(struct timer_link *to, struct timer_link *from)
{
    RM_ASSERT(link_empty(to));
    if (link_empty(from)) {
        return;
    }
    to->_next = from->_next;
    to->_prev = from->_prev;
    to->_next->_prev = to;
    to->_prev->_next = to;
    link_init(from);
}

static void slot_insert(struct timer_wheel *w, struct timer_node *n)
{
    uint64_t tick = n->deadline_ms / TIMER_TICK_MS;

    if (tick < w->_next_tick) {
        tick = w->_next_tick;
    }
    link_add_tail(&w->_slots[tick & TIMER_MASK], &n->_link);
}

void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms)
{
    uint32_t i;

    RM_ASSERT(w != NULL);
    RM_ASSERT((TIMER_SLOTS & TIMER_MASK) == 0);
    for (i = 0; i < TIMER_SLOTS; i++) {
        link_init(&w->_slots[i]);
    }
    link_init(&w->_pending);
    w->_next_tick = now_ms / TIMER_TICK_MS;
    w->count = 0;
}

void timer_node_init(struct timer_node *n)
{
    RM_ASSERT(n != NULL);
    n->_link._prev = NULL;
    n->_link._next = NULL;
    n->deadline_ms = 0;
}

void timer_set(struct timer_wheel *w, struct timer_node *n, uint64_t deadline_ms)
{
    RM_ASSERT(w != NULL && n != NULL);

    if (timer_node_linked(n)) {
        if (deadline_ms >= n->deadline_ms) {
            /* Lazy: the current slot fires no later than the new deadline. */
            n->deadline_ms = deadline_ms;
            return;
        }
        link_del(&n->_link);
    } else {
        w->count++;
    }
    n->deadline_ms = deadline_ms;
    slot_insert(w, n);
    RM_ASSERT(timer_node_linked(n));
}

void timer_del(struct timer_wheel *w, struct timer_node *n)
{
    RM_ASSERT(w != NULL && n != NULL);
    if (!timer_node_linked(n)) {
        return;
    }
    RM_ASSERT(w->count > 0);
    link_del(&n->_link);
    w->count--;
}

struct timer_node *timer_expire(struct timer_wheel *w, uint64_t now_ms)
{
    uint64_t now_tick = now_ms / TIMER_TICK_MS;
    struct timer_node *n;

    RM_ASSERT(w != NULL);

    /*
     * After a long stall one revolution visits every slot, hence every
     * node: skip the ticks before it.
     */
    if (now_tick > w->_next_tick + TIMER_SLOTS) {
        w->_next_tick = now_tick - TIMER_SLOTS;
    }

    for (;;) {
        if (!link_empty(&w->_pending)) {
            n = (struct timer_node *)w->_pending._next;
            link_del(&n->_link);
            if (n->deadline_ms <= now_ms) {
                RM_ASSERT(w->count > 0);
                w->count--;
                return n;
            }
            slot_insert(w, n);
            continue;
        }
        if (w->_next_tick >= now_tick || w->count == 0) {
            if (w->count == 0 && w->_next_tick < now_tick) {
                w->_next_tick = now_tick;
            }
            return NULL;
        }
        link_splice(&w->_pending, &w->_slots[w->_next_tick & TIMER_MASK]);
        w->_next_tick++;
    }
}
