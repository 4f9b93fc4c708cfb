/*
 * xshard.c - rings, overflows and doorbells between shards (see xshard.h).
 *
 * Decisions:
 * - One sleeping flag per consumer shard rather than the per-queue
 *   spsc.consumer_sleeping: a sleeping consumer announces itself once for
 *   all N - 1 inbound rings, and a producer reads one flag per destination.
 *   The spsc field stays zero.
 * - The overflow is a per-link circular array that doubles when full and is
 *   never shrunk (it only grows under a burst that outran the consumer; the
 *   high-water mark is logged at exit). A send never waits and drops only
 *   QoS 0 publishes on a congested link; the budget bounds the rest through
 *   the publishers the broker holds (see XSHARD_BUDGET_MSGS).
 * - Flushing walks every destination: O(shard count) per iteration, a few
 *   loads each, which is noise next to one io_uring wait.
 *
 * Which thread runs what is in xshard.h (THREADING).
 */
#include "net/xshard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/broker.h"
#include "core/msg.h"
#include "core/rm_assert.h"
#include "net/admin_job.h"
#include "net/log.h"
#include "net/xport.h"

/* user_data of a producer-side doorbell CQE (only failures post one): the destination + 1. */
static uint64_t doorbell_ud(uint32_t to)
{
    return ((uint64_t)(to + 1) << 3) | (uint64_t)URING_OP_DOORBELL;
}

static struct spsc *queue(struct xshard *x, uint32_t from, uint32_t to)
{
    RM_ASSERT(from < x->shard_count && to < x->shard_count);
    RM_ASSERT(from != to);
    return &x->q[(size_t)from * x->shard_count + to];
}

static uint32_t pow2_floor(uint64_t v)
{
    uint32_t p = 1;

    while ((uint64_t)p * 2 <= v && p < (1u << 30)) {
        p *= 2;
    }
    return p;
}

uint32_t xshard_capacity_for(uint32_t shard_count)
{
    uint64_t rings;
    uint64_t slots;

    RM_ASSERT(shard_count >= 1 && shard_count <= LIMITS_SHARDS_MAX);
    if (shard_count == 1) {
        return XSHARD_SLOTS_MIN; /* no ring is built */
    }
    rings = (uint64_t)shard_count * (shard_count - 1);
    slots = XSHARD_RINGS_BYTES_MAX / (rings * sizeof(struct xmsg));
    if (slots > XSHARD_SLOTS_MAX) {
        slots = XSHARD_SLOTS_MAX;
    }
    if (slots < XSHARD_SLOTS_MIN) {
        slots = XSHARD_SLOTS_MIN;
    }
    return pow2_floor(slots);
}

/*
 * What one waiting message costs: its slot, plus the message it references
 * (read by the producer, which still owns its reference).
 */
static uint64_t xshard_msg_bytes(const struct xmsg *m)
{
    const struct msg *msg = m->payload.msg;

    switch (m->kind) {
    case XMSG_PUBLISH:
    case XMSG_SHARE_PUBLISH:
    case XMSG_RETAIN_SET:
    case XMSG_RETAIN_APPLY:
        if (msg != NULL) {
            return sizeof(*m) + sizeof(*msg) + msg->topic_len + msg->props_len +
                   msg->payload_len;
        }
        return sizeof(*m);
    default:
        return sizeof(*m);
    }
}

static uint64_t budget_bytes_for(uint32_t shard_count)
{
    uint64_t links = (uint64_t)shard_count * (shard_count - 1);
    uint64_t b = links > 0 ? XSHARD_BUDGET_BYTES_ALL / links : XSHARD_BUDGET_BYTES_MAX;

    if (b < XSHARD_BUDGET_BYTES_MIN) {
        b = XSHARD_BUDGET_BYTES_MIN;
    }
    return b > XSHARD_BUDGET_BYTES_MAX ? XSHARD_BUDGET_BYTES_MAX : b;
}

/* ---- the overflow FIFO ---- */

static bool fifo_empty(const struct xshard_fifo *f)
{
    return f->count == 0;
}

static const struct xmsg *fifo_front(const struct xshard_fifo *f)
{
    RM_ASSERT(f->count > 0);
    return &f->items[f->head];
}

static void fifo_pop(struct xshard_fifo *f)
{
    RM_ASSERT(f->count > 0);
    f->head = (f->head + 1) & (f->cap - 1);
    f->count--;
}

/* Append *@m; 0 or -ENOMEM (the FIFO is unchanged then). */
static int fifo_push(struct xshard_fifo *f, const struct xmsg *m)
{
    struct xmsg *n;
    uint32_t ncap;
    uint32_t i;

    if (f->count == f->cap) {
        if (f->cap >= (1u << 30)) {
            return -ENOMEM;
        }
        ncap = f->cap != 0 ? f->cap * 2 : XSHARD_OVERFLOW_MIN;
        n = malloc((size_t)ncap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        /* Bounded by the old count. */
        for (i = 0; i < f->count; i++) {
            n[i] = f->items[(f->head + i) & (f->cap - 1)];
        }
        free(f->items);
        f->items = n;
        f->cap = ncap;
        f->head = 0;
    }
    f->items[(f->head + f->count) & (f->cap - 1)] = *m;
    f->count++;
    return 0;
}

/* ---- life cycle ---- */

struct xshard *xshard_new(uint32_t shard_count)
{
    struct xshard *x;
    uint32_t from, to;
    size_t bytes;

    RM_ASSERT(shard_count >= 1 && shard_count <= LIMITS_SHARDS_MAX);
    /* Line-aligned like its members (calloc() only promises 16 bytes). */
    x = aligned_alloc(SPSC_CACHELINE, sizeof(*x));
    if (x == NULL) {
        return NULL;
    }
    memset(x, 0, sizeof(*x));
    x->shard_count = shard_count;
    x->capacity = xshard_capacity_for(shard_count);
    x->budget_bytes = budget_bytes_for(shard_count);

    /* Both sizes are multiples of the line size (their members are line-aligned). */
    bytes = (size_t)shard_count * sizeof(struct xshard_peer);
    x->peer = aligned_alloc(SPSC_CACHELINE, bytes);
    if (x->peer == NULL) {
        goto out_free;
    }
    memset(x->peer, 0, bytes);
    bytes = (size_t)shard_count * shard_count * sizeof(struct spsc);
    x->q = aligned_alloc(SPSC_CACHELINE, bytes);
    if (x->q == NULL) {
        goto out_free;
    }
    memset(x->q, 0, bytes);
    for (from = 0; from < shard_count; from++) {
        struct xshard_peer *p = &x->peer[from];

        atomic_init(&p->sleeping, 0);
        atomic_init(&p->done, 0);
        p->ring_fd = -1;
        p->links = calloc(shard_count, sizeof(*p->links));
        if (p->links == NULL) {
            goto out_free;
        }
        for (to = 0; to < shard_count; to++) {
            if (to == from) {
                continue;
            }
            if (spsc_init(queue(x, from, to), x->capacity) < 0) {
                goto out_free;
            }
            p->links[to].ring_ready = true;
        }
    }
    return x;

out_free:
    xshard_free(x);
    return NULL;
}

void xshard_set_ring_fd(struct xshard *x, uint32_t id, int ring_fd)
{
    RM_ASSERT(x != NULL && id < x->shard_count);
    RM_ASSERT(ring_fd >= 0);
    x->peer[id].ring_fd = ring_fd;
}

void xshard_release(struct xmsg *m)
{
    RM_ASSERT(m != NULL);
    switch (m->kind) {
    case XMSG_CONN_HANDOFF:
        if (m->payload.conn.fd >= 0) {
            close(m->payload.conn.fd);
        }
        free(m->payload.conn.bytes);
        xport_free(m->payload.conn.xport);
        break;
    case XMSG_SHUTDOWN:
    case XMSG_RELOAD:
    case XMSG_RELOAD_DONE:
        break; /* the snapshot is shard 0's (net/live.h): main frees it */
    case XMSG_ADMIN:
    case XMSG_ADMIN_DONE:
        admin_job_free(m->payload.ptr[0]);
        break;
    default:
        broker_xmsg_release(m); /* the routing kinds */
        break;
    }
    m->kind = XMSG_NONE;
}

void xshard_free(struct xshard *x)
{
    struct xmsg batch[XSHARD_RECV_BATCH];
    uint32_t from, to, i, n;

    if (x == NULL) {
        return;
    }
    RM_ASSERT(x->shard_count >= 1);
    for (from = 0; x->peer != NULL && from < x->shard_count; from++) {
        struct xshard_peer *p = &x->peer[from];

        for (to = 0; p->links != NULL && to < x->shard_count; to++) {
            struct xshard_link *l = &p->links[to];

            if (l->ring_ready) {
                struct spsc *q = queue(x, from, to);

                /* Publish what the producer pushed last; this thread is both sides now. */
                spsc_publish(q);
                /* Bounded: the ring holds at most capacity items. */
                while ((n = spsc_pop_batch(q, batch, XSHARD_RECV_BATCH)) > 0) {
                    for (i = 0; i < n; i++) {
                        xshard_release(&batch[i]);
                    }
                }
                spsc_destroy(q);
            }
            /* Bounded by the overflow's count. */
            while (!fifo_empty(&l->overflow)) {
                struct xmsg m = *fifo_front(&l->overflow);

                fifo_pop(&l->overflow);
                xshard_release(&m);
            }
            free(l->overflow.items);
        }
        free(p->links);
    }
    free(x->q);
    free(x->peer);
    free(x);
}

/* ---- producer ---- */

/*
 * Whether @m may be dropped on a congested link from shard @from: a QoS 0
 * message's crossing, plain or to a shared group's member, sent by the
 * shard that built it (XMSG_PUBLISH always is; an XMSG_SHARE_PUBLISH
 * passed on by another shard is not, and only the home may free it). Not
 * a retained one: its crossing is the notice its RETAIN_APPLY waits for
 * there (core/rpair.h), and its publisher is held until it is applied.
 */
static bool sheddable(const struct xmsg *m, uint32_t from)
{
    if (m->kind != XMSG_PUBLISH && m->kind != XMSG_SHARE_PUBLISH) {
        return false;
    }
    return m->payload.msg->qos == 0 && !m->payload.msg->retain &&
           m->payload.msg->home_shard == from;
}

int xshard_send(struct xshard *x, uint32_t from, uint32_t to, const struct xmsg *m)
{
    struct xshard_peer *p;
    struct xshard_link *l;
    int ret;

    RM_ASSERT(x != NULL && m != NULL);
    RM_ASSERT(m->kind != XMSG_NONE);
    p = &x->peer[from];
    l = &p->links[to];
    if (fifo_empty(&l->overflow) && spsc_push(queue(x, from, to), m)) {
        l->pushed++;
        p->stats.sent++;
        return 0;
    }
    if (l->congested && sheddable(m, from)) {
        /* The sender built the message: free it here if this was the last reference. */
        RM_ASSERT(m->payload.msg->home_shard == from);
        if (m->kind == XMSG_PUBLISH) {
            free(m->payload.publish.more); /* its shared groups lose this QoS 0 too */
        }
        if (msg_put(m->payload.msg)) {
            msg_free(m->payload.msg);
        }
        p->stats.qos0_shed++;
        return 0;
    }
    ret = fifo_push(&l->overflow, m);
    if (ret < 0) {
        p->stats.overflow_nomem++;
        return ret;
    }
    if (l->overflow.count == 1) {
        p->overflowing++;
    }
    l->overflow_bytes += xshard_msg_bytes(m);
    if (!l->congested &&
        (l->overflow.count >= XSHARD_BUDGET_MSGS || l->overflow_bytes >= x->budget_bytes)) {
        l->congested = true;
        p->congested++;
        p->stats.congestions++;
    }
    if (l->overflow.count > p->stats.overflow_max) {
        p->stats.overflow_max = l->overflow.count;
    }
    p->stats.overflow_events++;
    p->stats.sent++;
    return 0;
}

/* Move what fits from @l's overflow into its ring, oldest first. */
static void overflow_retry(struct xshard *x, uint32_t from, uint32_t to)
{
    struct xshard_peer *p = &x->peer[from];
    struct xshard_link *l = &p->links[to];
    struct spsc *q = queue(x, from, to);
    uint32_t i;

    /* Bounded by the ring's capacity: each pass fills one slot. */
    for (i = 0; i < x->capacity && !fifo_empty(&l->overflow); i++) {
        const struct xmsg *m = fifo_front(&l->overflow);
        uint64_t bytes = xshard_msg_bytes(m); /* before the consumer may free it */

        if (!spsc_push(q, m)) {
            break;
        }
        RM_ASSERT(l->overflow_bytes >= bytes);
        l->overflow_bytes -= bytes;
        fifo_pop(&l->overflow);
        l->pushed++;
    }
    if (l->congested && l->overflow.count <= XSHARD_BUDGET_MSGS / 2 &&
        l->overflow_bytes <= x->budget_bytes / 2) {
        l->congested = false;
        RM_ASSERT(p->congested > 0);
        p->congested--;
    }
    if (fifo_empty(&l->overflow)) {
        RM_ASSERT(p->overflowing > 0);
        p->overflowing--;
    }
}

static bool ring_doorbell(struct xshard *x, uint32_t from, uint32_t to, struct io_uring *ring)
{
    struct io_uring_sqe *sqe = uring_get_sqe(ring);

    if (sqe == NULL) {
        return false;
    }
    io_uring_prep_msg_ring(sqe, x->peer[to].ring_fd, 0, XSHARD_DOORBELL_USERDATA, 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, doorbell_ud(to));
    x->peer[from].stats.doorbells++;
    return true;
}

uint32_t xshard_flush(struct xshard *x, uint32_t from, struct io_uring *ring)
{
    struct xshard_peer *p;
    uint32_t rung = 0;
    bool published = false;
    uint32_t to;

    RM_ASSERT(x != NULL && ring != NULL);
    RM_ASSERT(from < x->shard_count);
    p = &x->peer[from];
    for (to = 0; to < x->shard_count; to++) {
        struct xshard_link *l = &p->links[to];

        if (to == from) {
            continue;
        }
        if (!fifo_empty(&l->overflow)) {
            overflow_retry(x, from, to);
        }
        if (l->pushed > 0) {
            spsc_publish(queue(x, from, to));
            published = true;
        }
    }
    if (published) {
        /* Pairs with the fence in xshard_sleep_prepare() (Dekker; see xshard.h). */
        atomic_thread_fence(memory_order_seq_cst);
    }
    for (to = 0; to < x->shard_count; to++) {
        struct xshard_link *l = &p->links[to];
        struct xshard_peer *dest = &x->peer[to];
        bool due;

        if (to == from || (l->pushed == 0 && !l->ring_again)) {
            continue;
        }
        l->pushed = 0;
        if (atomic_load_explicit(&dest->done, memory_order_acquire)) {
            l->ring_again = false;
            continue;
        }
        due = l->ring_again;
        if (!due && atomic_load_explicit(&dest->sleeping, memory_order_relaxed) != 0) {
            /* Claim the wake-up: only one producer rings for one sleep. */
            due = atomic_exchange_explicit(&dest->sleeping, 0, memory_order_relaxed) != 0;
        }
        if (!due) {
            continue;
        }
        /* No SQE: keep the claim and try again on the next flush. */
        l->ring_again = !ring_doorbell(x, from, to, ring);
        rung += l->ring_again ? 0 : 1;
    }
    return rung;
}

bool xshard_congested(const struct xshard *x, uint32_t from, uint32_t to)
{
    RM_ASSERT(x != NULL && from < x->shard_count && to < x->shard_count);
    return to != from && x->peer[from].links[to].congested;
}

uint32_t xshard_congested_links(const struct xshard *x, uint32_t from)
{
    RM_ASSERT(x != NULL && from < x->shard_count);
    return x->peer[from].congested;
}

uint64_t xshard_waiting(const struct xshard *x, uint32_t from)
{
    const struct xshard_peer *p;
    uint64_t n = 0;
    uint32_t to;

    RM_ASSERT(x != NULL && from < x->shard_count);
    p = &x->peer[from];
    for (to = 0; to < x->shard_count; to++) {
        if (to != from && p->links[to].ring_ready) {
            n += spsc_used(&x->q[from * x->shard_count + to]) + p->links[to].overflow.count;
        }
    }
    return n;
}

bool xshard_pending(const struct xshard *x, uint32_t from)
{
    const struct xshard_peer *p;
    uint32_t to;

    RM_ASSERT(x != NULL && from < x->shard_count);
    p = &x->peer[from];
    if (p->overflowing == 0) {
        return false;
    }
    for (to = 0; to < x->shard_count; to++) {
        if (to != from && !fifo_empty(&p->links[to].overflow) &&
            !atomic_load_explicit(&x->peer[to].done, memory_order_acquire)) {
            return true;
        }
    }
    return false;
}

void xshard_doorbell_done(struct xshard *x, uint32_t me, const struct io_uring_cqe *cqe)
{
    struct xshard_peer *p;
    uint64_t to;

    RM_ASSERT(x != NULL && cqe != NULL);
    RM_ASSERT(uring_ud_op(cqe->user_data) == URING_OP_DOORBELL);
    if (cqe->user_data == XSHARD_DOORBELL_USERDATA) {
        return; /* a wake-up: the rings are drained every iteration */
    }
    p = &x->peer[me];
    to = (cqe->user_data >> 3) - 1;
    RM_ASSERT(to < x->shard_count && to != me);
    p->stats.doorbell_errors++;
    if (p->stats.doorbell_errors == 1 || p->stats.doorbell_errors % 1024 == 0) {
        LOG_WARN("shard %u: doorbell to shard %u failed: %s (%llu failures)", me, (unsigned)to,
                 strerror(-cqe->res), (unsigned long long)p->stats.doorbell_errors);
    }
    p->links[to].ring_again = true;
}

/* ---- consumer ---- */

uint32_t xshard_receive(struct xshard *x, uint32_t me, bool *more, void *ctx,
                        void (*done)(void *ctx, uint32_t from, const struct xmsg *m))
{
    struct xmsg batch[XSHARD_RECV_BATCH];
    uint32_t total = 0;
    uint32_t from, got, n, i;

    RM_ASSERT(x != NULL && more != NULL && done != NULL);
    RM_ASSERT(me < x->shard_count);
    for (from = 0; from < x->shard_count; from++) {
        struct spsc *q;

        if (from == me) {
            continue;
        }
        q = queue(x, from, me);
        for (got = 0; got < XSHARD_RECV_PER_SOURCE_MAX; got += n) {
            n = spsc_pop_batch(q, batch, XSHARD_RECV_BATCH);
            if (n == 0) {
                break;
            }
            for (i = 0; i < n; i++) {
                done(ctx, from, &batch[i]);
            }
        }
        if (got >= XSHARD_RECV_PER_SOURCE_MAX) {
            *more = true;
        }
        total += got;
    }
    x->peer[me].stats.received += total;
    return total;
}

bool xshard_sleep_prepare(struct xshard *x, uint32_t me)
{
    struct xshard_peer *p;
    uint32_t from;

    RM_ASSERT(x != NULL && me < x->shard_count);
    p = &x->peer[me];
    atomic_store_explicit(&p->sleeping, 1, memory_order_relaxed);
    /* Pairs with the fence in xshard_flush() (Dekker; see xshard.h). */
    atomic_thread_fence(memory_order_seq_cst);
    for (from = 0; from < x->shard_count; from++) {
        if (from != me && !spsc_empty(queue(x, from, me))) {
            atomic_store_explicit(&p->sleeping, 0, memory_order_relaxed);
            return false;
        }
    }
    return true;
}

void xshard_woke(struct xshard *x, uint32_t me)
{
    RM_ASSERT(x != NULL && me < x->shard_count);
    /* Relaxed: a late producer that still sees 1 only rings once too often. */
    if (atomic_load_explicit(&x->peer[me].sleeping, memory_order_relaxed) != 0) {
        atomic_store_explicit(&x->peer[me].sleeping, 0, memory_order_relaxed);
    }
}

void xshard_done(struct xshard *x, uint32_t me)
{
    RM_ASSERT(x != NULL && me < x->shard_count);
    atomic_store_explicit(&x->peer[me].done, 1, memory_order_release);
}
