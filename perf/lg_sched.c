/*
 * lg_sched.c - when each of a worker's publishers may send; see lg_sched.h.
 *
 * Runs on the worker thread that owns the publishers (lg_sched_release()
 * is inline in the header).
 */
#include "perf/lg_sched.h"

static void heap_swap(struct lg_pub **h, uint32_t a, uint32_t b)
{
    struct lg_pub *t = h[a];

    h[a] = h[b];
    h[b] = t;
    h[a]->pos = a;
    h[b]->pos = b;
}

static void heap_up(struct lg_pub **h, uint32_t i)
{
    while (i > 0 && h[(i - 1) / 2]->due_ns > h[i]->due_ns) {
        heap_swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct lg_pub **h, uint32_t len, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1;
        uint32_t m = i;

        if (l < len && h[l]->due_ns < h[m]->due_ns) {
            m = l;
        }
        if (l + 1 < len && h[l + 1]->due_ns < h[m]->due_ns) {
            m = l + 1;
        }
        if (m == i) {
            break;
        }
        heap_swap(h, i, m);
        i = m;
    }
}

void lg_sched_detach(struct lg_loop *lp, struct lg_pub *p)
{
    uint32_t i = p->pos;

    switch (p->state) {
    case LG_SCHED_TIMED:
        RM_ASSERT(i < lp->heap_len && lp->heap[i] == p);
        lp->heap_len--;
        if (i != lp->heap_len) {
            lp->heap[i] = lp->heap[lp->heap_len];
            lp->heap[i]->pos = i;
            heap_down(lp->heap, lp->heap_len, i);
            heap_up(lp->heap, i);
        }
        break;
    case LG_SCHED_BLOCKED:
        RM_ASSERT(i < lp->blocked_len && lp->blocked[i] == p);
        lp->blocked_len--;
        if (i != lp->blocked_len) {
            lp->blocked[i] = lp->blocked[lp->blocked_len];
            lp->blocked[i]->pos = i;
        }
        break;
    case LG_SCHED_READY:
        /* The ring entry stays; it is skipped by state, or reused by lg_sched_ready(). */
        break;
    default:
        break;
    }
    p->state = LG_SCHED_IDLE;
}

void lg_sched_ready(struct lg_worker *w, struct lg_pub *p)
{
    struct lg_loop *lp = w->_loop;

    if (p->state == LG_SCHED_READY) {
        return;
    }
    lg_sched_detach(lp, p);
    p->state = LG_SCHED_READY;
    if (p->in_ring) {
        return; /* its earlier entry is still queued */
    }
    RM_ASSERT(lp->ready_len < w->npubs);
    lp->ready[(lp->ready_head + lp->ready_len) % w->npubs] = p;
    lp->ready_len++;
    p->in_ring = true;
}

void lg_sched_timed(struct lg_worker *w, struct lg_pub *p)
{
    struct lg_loop *lp = w->_loop;

    lg_sched_detach(lp, p);
    RM_ASSERT(lp->heap_len < w->npubs);
    p->pos = lp->heap_len;
    lp->heap[lp->heap_len++] = p;
    heap_up(lp->heap, p->pos);
    p->state = LG_SCHED_TIMED;
}

void lg_sched_block(struct lg_worker *w, struct lg_pub *p, uint8_t why)
{
    struct lg_loop *lp = w->_loop;

    lg_sched_detach(lp, p);
    RM_ASSERT(lp->blocked_len < w->npubs);
    p->pos = lp->blocked_len;
    lp->blocked[lp->blocked_len++] = p;
    p->state = LG_SCHED_BLOCKED;
    p->block = why;
}

void lg_sched_txwait(struct lg_worker *w, struct lg_pub *p)
{
    lg_sched_detach(w->_loop, p);
    p->state = LG_SCHED_TXWAIT;
}

bool lg_sched_can_send(const struct lg_run *run, const struct lg_pub *p, uint8_t *why)
{
    const struct lg_opts *o = run->opts;

    if (o->window > 0 && lg_sched_slot_left(atomic_load_explicit(&p->slots[p->seq_next % o->window],
                                                                 memory_order_acquire)) != 0) {
        *why = LG_SCHED_BLOCK_WINDOW;
        return false;
    }
    if (o->qos > 0 && p->unacked >= p->unacked_max) {
        *why = LG_SCHED_BLOCK_ACKS;
        return false;
    }
    return true;
}

uint32_t lg_sched_due(struct lg_worker *w)
{
    struct lg_loop *lp = w->_loop;

    while (lp->heap_len > 0 && lp->heap[0]->due_ns <= lp->now) {
        lg_sched_ready(w, lp->heap[0]);
    }
    if (lp->recheck) {
        uint32_t i = 0;
        uint8_t why;

        lp->recheck = false;
        while (i < lp->blocked_len) {
            struct lg_pub *p = lp->blocked[i];

            if (lg_sched_can_send(w->run, p, &why)) {
                lg_sched_ready(w, p); /* swaps the last blocked one into i */
            } else {
                i++;
            }
        }
    }
    return lp->ready_len;
}

void lg_sched_clear(struct lg_worker *w)
{
    struct lg_loop *lp = w->_loop;
    uint32_t i;

    for (i = 0; i < w->npubs; i++) {
        lg_sched_detach(lp, w->pubs[i]);
        w->pubs[i]->in_ring = false;
    }
    lp->ready_len = 0;
}

void lg_sched_sweep_windows(struct lg_worker *w)
{
    struct lg_loop *lp = w->_loop;
    const uint32_t window = w->run->opts->window;
    uint32_t i = 0;

    if (window == 0) {
        return;
    }
    while (i < lp->blocked_len) {
        struct lg_pub *p = lp->blocked[i];
        uint32_t k = p->seq_next % window;
        uint64_t v = atomic_load_explicit(&p->slots[k], memory_order_acquire);
        bool freed = false;

        while (p->block == LG_SCHED_BLOCK_WINDOW && lg_sched_slot_left(v) != 0 &&
               lp->now - p->sent_ns[k] >= lp->window_timeout_ns) {
            if (atomic_compare_exchange_weak_explicit(&p->slots[k], &v, v & 0xffffffff00000000ull,
                                                      memory_order_acq_rel, memory_order_acquire)) {
                w->st.window_timeouts++;
                freed = true;
                break;
            }
        }
        if (freed || lg_sched_slot_left(v) == 0) {
            lp->recheck = true;
        }
        i++;
    }
}
