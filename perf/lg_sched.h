/*
 * lg_sched.h - when each of a worker's publishers may send: the ready ring
 * (may send now), the timed heap (rate pacing: due later), the blocked array
 * (window full, or too many QoS 1/2 awaiting acks), tx-wait (its socket is
 * backed up) or idle. A publisher is in exactly one of them.
 *
 * The window: a publisher owns W slots; message seq takes slot seq % W and
 * may be sent only when that slot is free, i.e. the message W before it has
 * been received by all its subscribers (or given up on after
 * --window-timeout-ms). Subscribers, on any worker, count a slot down with a
 * CAS that also checks the slot still belongs to their seq; the one that
 * frees it wakes the publisher's worker (a bit in its wake_mask, which the
 * loop turns into one eventfd write per woken worker per iteration).
 *
 * Owns struct lg_pub's state, block, in_ring and pos and the scheduling part
 * of struct lg_loop. Called by the worker thread that owns the publisher,
 * except lg_sched_release(), which a subscriber's worker calls on any
 * publisher (it touches only the atomic slots, unless the publisher is its
 * own).
 */
#ifndef RINGMQ_LG_SCHED_H
#define RINGMQ_LG_SCHED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/rm_assert.h"
#include "perf/lg_run_types.h"
#include "perf/lg_worker_types.h"

enum lg_sched_state {
    LG_SCHED_IDLE = 0,
    LG_SCHED_READY,
    LG_SCHED_TIMED,
    LG_SCHED_BLOCKED,
    LG_SCHED_TXWAIT,
};

enum lg_sched_block {
    LG_SCHED_BLOCK_WINDOW = 1,
    LG_SCHED_BLOCK_ACKS,
};

/* Take @p out of whatever holds it; it becomes LG_SCHED_IDLE. */
void lg_sched_detach(struct lg_loop *lp, struct lg_pub *p);

/* @p may send now: queue it on the ready ring (once). */
void lg_sched_ready(struct lg_worker *w, struct lg_pub *p);

/* @p sends next at p->due_ns: put it on the timed heap. */
void lg_sched_timed(struct lg_worker *w, struct lg_pub *p);

/* @p waits for @why (enum lg_sched_block): put it on the blocked array. */
void lg_sched_block(struct lg_worker *w, struct lg_pub *p, uint8_t why);

/* @p waits for its socket to drain: LG_SCHED_TXWAIT until lg_sched_tx_drained(). */
void lg_sched_txwait(struct lg_worker *w, struct lg_pub *p);

/*
 * True when @p's next message has a free window slot and a free packet id;
 * false with @why set (enum lg_sched_block) otherwise.
 */
bool lg_sched_can_send(const struct lg_run *run, const struct lg_pub *p, uint8_t *why);

/*
 * Start of a publishing pass: move due timed publishers to the ready ring,
 * and blocked ones that may send now when a recheck was asked for. Returns
 * how many are ready: the pass pops at most that many (lg_sched_pop), so a
 * publisher re-queued by its burst waits a turn.
 */
uint32_t lg_sched_due(struct lg_worker *w);

/* Every publisher of @w back to idle and the ready ring empty (publishing stops). */
void lg_sched_clear(struct lg_worker *w);

/* Give up on messages outstanding past --window-timeout-ms (every sweep). */
void lg_sched_sweep_windows(struct lg_worker *w);

static inline uint32_t lg_sched_slot_left(uint64_t v)
{
    return (uint32_t)v;
}

static inline uint32_t lg_sched_slot_seq(uint64_t v)
{
    return (uint32_t)(v >> 32);
}

/*
 * The next entry of the ready ring (lg_sched_due() said how many there
 * are): the publisher, now idle, or NULL when it was detached while queued.
 * Inline: it runs for every publisher on every pass.
 */
static inline struct lg_pub *lg_sched_pop(struct lg_worker *w)
{
    struct lg_loop *lp = w->_loop;
    struct lg_pub *p = lp->ready[lp->ready_head];

    lp->ready_head = (lp->ready_head + 1) % w->npubs;
    lp->ready_len--;
    p->in_ring = false;
    if (p->state != LG_SCHED_READY) {
        return NULL; /* detached while queued */
    }
    p->state = LG_SCHED_IDLE;
    return p;
}

/* If @p waits for @why (enum lg_sched_block), it may go on. */
static inline void lg_sched_unblock(struct lg_worker *w, struct lg_pub *p, uint8_t why)
{
    if (p->state == LG_SCHED_BLOCKED && p->block == why) {
        lg_sched_ready(w, p);
    }
}

/* @p's socket has drained: if it waited for that, it may go on. */
static inline void lg_sched_tx_drained(struct lg_worker *w, struct lg_pub *p)
{
    if (p->state == LG_SCHED_TXWAIT) {
        p->state = LG_SCHED_IDLE;
        lg_sched_ready(w, p);
    }
}

/*
 * A subscriber on worker @w received message @seq of @p (any worker's):
 * count the slot down if it still holds @seq, and when it reaches zero let
 * the publisher go on, or mark its worker for waking. Inline: it runs for
 * every message received.
 */
static inline void lg_sched_release(struct lg_worker *w, struct lg_pub *p, uint32_t seq)
{
    const uint32_t window = w->run->opts->window;
    _Atomic uint64_t *slot;
    uint64_t v;
    uint64_t nv;

    RM_ASSERT(window > 0);
    slot = &p->slots[seq % window];
    v = atomic_load_explicit(slot, memory_order_relaxed);
    do {
        if (lg_sched_slot_seq(v) != seq || lg_sched_slot_left(v) == 0) {
            return; /* timed out, or the slot moved on */
        }
        nv = v - 1;
    } while (!atomic_compare_exchange_weak_explicit(slot, &v, nv, memory_order_acq_rel,
                                                    memory_order_relaxed));
    if (lg_sched_slot_left(nv) != 0) {
        return;
    }
    if (p->thread == w->idx) {
        lg_sched_unblock(w, p, LG_SCHED_BLOCK_WINDOW);
    } else {
        w->_loop->wake_mask |= 1ull << p->thread;
    }
}

#endif
