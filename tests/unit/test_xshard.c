/*
 * test_xshard.c - unit tests for net/xshard (rings, overflows, doorbells
 * between shards).
 *
 * Single-thread tests drive several "shards" from one thread: the overflow
 * keeps FIFO order across a full ring and drops nothing, later sends queue
 * behind a waiting overflow, the receive bound, and what xshard_free()
 * releases. Doorbell tests use real rings built by uring_init() (so with
 * SINGLE_ISSUER|DEFER_TASKRUN where the kernel has it): a sleeping consumer
 * gets exactly one MSG_RING CQE, an awake one none, a failed doorbell is
 * rung again, a stopped shard is never rung.
 *
 * The stress test runs XSTRESS_SHARDS threads, each a producer and consumer
 * with its own ring that really blocks in io_uring_submit_and_wait_timeout
 * after xshard_sleep_prepare(): a lost wake-up shows as a wait that timed out
 * with a message waiting. Environment: XSHARD_STRESS_N (messages per ordered
 * pair, default 200000). Under ThreadSanitizer run
 * `test_xshard --stress-only` (Criterion's runner cannot start under TSan).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/msg.h"
#include "core/rm_assert.h"
#include "net/uring.h"
#include "net/xshard.h"

/* A kind no real code sends: only the tests' own consumers see it. */
#define TEST_KIND 0x7e57u

static struct xmsg seq_msg(uint64_t seq)
{
    struct xmsg m;

    memset(&m, 0, sizeof(m));
    m.kind = TEST_KIND;
    m.arg = (uint32_t)seq;
    m.payload.u64[0] = seq;
    m.payload.u64[1] = ~seq;
    return m;
}

/* Collects what xshard_receive() hands out. */
struct sink {
    uint64_t next[8]; /* next expected sequence number per source */
    uint64_t count;
    uint64_t bad;
};

static void sink_done(void *ctx, uint32_t from, const struct xmsg *m)
{
    struct sink *k = ctx;

    if (m->kind != TEST_KIND || m->payload.u64[0] != k->next[from] ||
        m->payload.u64[1] != ~k->next[from]) {
        k->bad++;
    }
    k->next[from] = m->payload.u64[0] + 1;
    k->count++;
}

/* Receive everything shard @me has waiting (bounded: the test sends less). */
static uint64_t drain(struct xshard *x, uint32_t me, struct sink *k)
{
    uint64_t total = 0;
    bool more = true;

    for (int i = 0; i < 1000 && more; i++) {
        more = false;
        total += xshard_receive(x, me, &more, k, sink_done);
    }
    return total;
}

static void ring_setup(struct io_uring *ring)
{
    int ret = uring_init(ring);

    if (ret == -ENOSYS || ret == -EPERM) {
        cr_skip_test("io_uring unavailable: %s", strerror(-ret));
    }
    cr_assert_eq(ret, 0, "uring_init: %s", strerror(-ret));
}

/* Count the CQEs waiting on @ring after up to @wait_ms, advancing past them. */
static unsigned cqes(struct io_uring *ring, int wait_ms, uint64_t want_ud, unsigned *other)
{
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = (long long)wait_ms * 1000000};
    struct io_uring_cqe *cqe;
    unsigned head, n = 0, seen = 0;

    io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
    io_uring_for_each_cqe(ring, head, cqe)
    {
        if (cqe->user_data == want_ud) {
            n++;
        } else if (other != NULL) {
            (*other)++;
        }
        seen++;
    }
    io_uring_cq_advance(ring, seen);
    return n;
}

Test(xshard, ring_size_shrinks_with_the_shard_count_within_bounds)
{
    uint32_t prev = XSHARD_SLOTS_MAX;

    cr_assert_eq(xshard_capacity_for(2), XSHARD_SLOTS_MAX);
    for (uint32_t n = 2; n <= 256; n++) {
        uint32_t c = xshard_capacity_for(n);

        cr_assert(c >= XSHARD_SLOTS_MIN && c <= XSHARD_SLOTS_MAX, "n %u: %u slots", n, c);
        cr_assert_eq(c & (c - 1), 0, "n %u: %u is not a power of two", n, c);
        cr_assert_leq(c, prev, "more shards never get bigger rings");
        if (c > XSHARD_SLOTS_MIN) {
            cr_assert_leq((uint64_t)n * (n - 1) * c * sizeof(struct xmsg), XSHARD_RINGS_BYTES_MAX);
        }
        prev = c;
    }
    cr_assert_eq(xshard_capacity_for(256), XSHARD_SLOTS_MIN);
}

Test(xshard, overflow_keeps_fifo_order_across_a_full_ring_and_drops_nothing)
{
    struct xshard *x = xshard_new(2);
    struct io_uring ring;
    struct sink k = {0};
    uint32_t cap;
    uint64_t n, seq;

    cr_assert_not_null(x);
    ring_setup(&ring);
    cap = x->capacity;
    n = 3ull * cap + 17;
    for (seq = 0; seq < n; seq++) {
        struct xmsg m = seq_msg(seq);

        cr_assert_eq(xshard_send(x, 0, 1, &m), 0);
    }
    cr_assert_eq(xshard_stats(x, 0)->overflow_events, n - cap, "everything past the ring waits");
    cr_assert_eq(xshard_stats(x, 0)->overflow_max, n - cap);
    cr_assert(xshard_pending(x, 0));
    cr_assert_eq(drain(x, 1, &k), 0, "nothing is visible before a flush");

    /* Each flush publishes one ring's worth; each drain takes it. */
    for (int round = 0; round < 10 && k.count < n; round++) {
        xshard_flush(x, 0, &ring);
        drain(x, 1, &k);
    }
    cr_assert_eq(k.count, n, "got %" PRIu64 " of %" PRIu64, k.count, n);
    cr_assert_eq(k.bad, 0, "%" PRIu64 " out of order or torn", k.bad);
    cr_assert_not(xshard_pending(x, 0));
    cr_assert_eq(xshard_stats(x, 0)->sent, n);
    cr_assert_eq(xshard_stats(x, 1)->received, n);
    xshard_free(x);
    uring_exit(&ring);
}

/* A QoS @qos XMSG_PUBLISH from shard 0 to 1 with a @payload_len-byte payload; refs it. */
static int send_publish(struct xshard *x, uint8_t qos, size_t payload_len, struct msg **out)
{
    static const uint8_t payload[4096];
    struct msg *msg;
    struct xmsg m = {.kind = XMSG_PUBLISH};

    cr_assert(payload_len <= sizeof(payload));
    msg = msg_new((const uint8_t *)"t", 1, NULL, 0, payload, payload_len, qos, false);
    cr_assert_not_null(msg);
    m.payload.msg = msg_ref(msg); /* the reference the ring would carry */
    *out = msg;
    return xshard_send(x, 0, 1, &m);
}

/* Pop everything shard 1 has from shard 0, releasing it; how many. */
static uint32_t consume(struct xshard *x)
{
    struct xmsg batch[XSHARD_RECV_BATCH];
    uint32_t n, i, total = 0;

    spsc_publish(&x->q[1]); /* q[0][1]: publish what the producer pushed */
    while ((n = spsc_pop_batch(&x->q[1], batch, XSHARD_RECV_BATCH)) > 0) {
        for (i = 0; i < n; i++) {
            xshard_release(&batch[i]);
        }
        total += n;
    }
    return total;
}

Test(xshard, a_link_over_its_message_budget_sheds_qos0_until_it_drains_to_half)
{
    struct xshard *x = xshard_new(2);
    struct io_uring ring;
    uint64_t seq, fill;

    cr_assert_not_null(x);
    ring_setup(&ring);
    fill = (uint64_t)x->capacity + XSHARD_BUDGET_MSGS - 1;
    for (seq = 0; seq < fill; seq++) {           /* ring full, overflow one short */
        struct xmsg m = {.kind = XMSG_SHUTDOWN}; /* owns nothing */

        cr_assert_eq(xshard_send(x, 0, 1, &m), 0);
    }
    cr_assert_not(xshard_congested(x, 0, 1), "one short of the budget");
    cr_assert_eq(xshard_congested_links(x, 0), 0);
    for (uint8_t qos = 0; qos <= 2; qos++) {
        struct msg *msg;

        cr_assert_eq(send_publish(x, qos, 1, &msg), 0);
        cr_assert_eq(atomic_load(&msg->refs), 2u, "qos %u: queued (the QoS 0 reaches it)", qos);
        msg_unref(msg);
    }
    cr_assert_eq(xshard_stats(x, 0)->qos0_shed, 0);
    /* The QoS 0 filled the budget; QoS 1 and 2 still queued past it. */
    cr_assert(xshard_congested(x, 0, 1));
    cr_assert_not(xshard_congested(x, 1, 0), "the other direction is not");
    cr_assert_eq(xshard_congested_links(x, 0), 1);
    cr_assert_eq(xshard_stats(x, 0)->congestions, 1);
    {
        struct msg *msg;

        cr_assert_eq(send_publish(x, 0, 1, &msg), 0);
        cr_assert_eq(atomic_load(&msg->refs), 1u, "a QoS 0 on a congested link is shed");
        msg_unref(msg);
        cr_assert_eq(xshard_stats(x, 0)->qos0_shed, 1);
    }
    {
        /* A shared group's QoS 0 crossing too, when its home sends it; not when passed on. */
        struct msg *msg =
            msg_new((const uint8_t *)"t", 1, NULL, 0, (const uint8_t *)"p", 1, 0, false);
        struct xmsg m = {.kind = XMSG_SHARE_PUBLISH};

        cr_assert_not_null(msg);
        m.payload.share.msg = msg_ref(msg);
        m.payload.share.key = 7;
        cr_assert_eq(xshard_send(x, 0, 1, &m), 0);
        cr_assert_eq(atomic_load(&msg->refs), 1u, "a shared QoS 0 on a congested link is shed");
        cr_assert_eq(xshard_stats(x, 0)->qos0_shed, 2);
        msg->home_shard = 1; /* built elsewhere, passed on by shard 0 */
        m.payload.share.msg = msg_ref(msg);
        cr_assert_eq(xshard_send(x, 0, 1, &m), 0);
        cr_assert_eq(atomic_load(&msg->refs), 2u, "passed on: queued, not shed");
        cr_assert_eq(xshard_stats(x, 0)->qos0_shed, 2);
        msg->home_shard = 0; /* the queued reference is released by xshard_free() */
        msg_unref(msg);
    }
    {
        /* A retained QoS 0 crossing is its shard's notice (core/rpair.h): queued. */
        struct msg *msg =
            msg_new((const uint8_t *)"t", 1, NULL, 0, (const uint8_t *)"p", 1, 0, true);
        struct xmsg m = {.kind = XMSG_PUBLISH, .arg = XMSG_PUBLISH_PLAIN};

        cr_assert_not_null(msg);
        m.payload.publish.msg = msg_ref(msg);
        cr_assert_eq(xshard_send(x, 0, 1, &m), 0);
        cr_assert_eq(atomic_load(&msg->refs), 2u, "a retained QoS 0 is not shed");
        cr_assert_eq(xshard_stats(x, 0)->qos0_shed, 2);
        msg_unref(msg);
    }
    /* The consumer takes one ring's worth at a time: congested until half the budget. */
    for (int i = 0; i < 64 && xshard_congested(x, 0, 1); i++) {
        cr_assert_gt(consume(x), 0);
        xshard_flush(x, 0, &ring);
        if (xshard_congested(x, 0, 1)) {
            cr_assert_gt(x->peer[0].links[1].overflow.count, XSHARD_BUDGET_MSGS / 2,
                         "still congested only above half the budget");
        }
    }
    cr_assert_not(xshard_congested(x, 0, 1));
    cr_assert_leq(x->peer[0].links[1].overflow.count, XSHARD_BUDGET_MSGS / 2);
    cr_assert_eq(xshard_congested_links(x, 0), 0);
    xshard_free(x); /* releases the queued QoS 1/2 references */
    uring_exit(&ring);
}

Test(xshard, a_link_over_its_byte_budget_is_congested_before_its_message_budget)
{
    struct xshard *x = xshard_new(2);
    uint64_t seq, sent = 0;

    cr_assert_not_null(x);
    for (seq = 0; seq < x->capacity; seq++) { /* fill the ring: not counted */
        struct xmsg m = {.kind = XMSG_SHUTDOWN};

        cr_assert_eq(xshard_send(x, 0, 1, &m), 0);
    }
    /* 4 KB messages: the byte budget is reached long before XSHARD_BUDGET_MSGS. */
    while (!xshard_congested(x, 0, 1)) {
        struct msg *msg;

        cr_assert_lt(sent, XSHARD_BUDGET_MSGS, "never congested by bytes");
        cr_assert_eq(send_publish(x, 1, 4096, &msg), 0);
        msg_unref(msg);
        sent++;
    }
    /* Each costs its payload plus under 256 bytes of message and slot. */
    cr_assert_geq(sent, x->budget_bytes / (4096 + 256), "%" PRIu64 " sent", sent);
    cr_assert_leq(sent, x->budget_bytes / 4096 + 1, "%" PRIu64 " sent", sent);
    xshard_free(x);
}

Test(xshard, a_send_queues_behind_a_waiting_overflow_even_when_the_ring_has_room)
{
    struct xshard *x = xshard_new(2);
    struct io_uring ring;
    struct sink k = {0};
    struct xmsg m;
    uint32_t cap;
    uint64_t seq;

    cr_assert_not_null(x);
    ring_setup(&ring);
    cap = x->capacity;
    for (seq = 0; seq <= cap; seq++) { /* one more than fits */
        m = seq_msg(seq);
        cr_assert_eq(xshard_send(x, 0, 1, &m), 0);
    }
    /* Publish the full ring and let the consumer empty it without a retry. */
    spsc_publish(&x->q[0 * 2 + 1]);
    cr_assert_eq(drain(x, 1, &k), cap);
    /* The ring is empty now, but item cap still waits: cap + 1 must go behind it. */
    m = seq_msg(cap + 1);
    cr_assert_eq(xshard_send(x, 0, 1, &m), 0);
    cr_assert_eq(xshard_stats(x, 0)->overflow_events, 2);
    xshard_flush(x, 0, &ring);
    drain(x, 1, &k);
    cr_assert_eq(k.count, cap + 2);
    cr_assert_eq(k.bad, 0, "the later send overtook the overflow");
    xshard_free(x);
    uring_exit(&ring);
}

Test(xshard, receive_takes_a_bounded_batch_per_source_and_says_there_is_more)
{
    struct xshard *x = xshard_new(3);
    struct io_uring ring;
    struct sink k = {0};
    bool more = false;
    uint32_t got;

    cr_assert_not_null(x);
    ring_setup(&ring);
    for (uint64_t seq = 0; seq < XSHARD_RECV_PER_SOURCE_MAX + 10; seq++) {
        struct xmsg m = seq_msg(seq);

        cr_assert_eq(xshard_send(x, 0, 2, &m), 0);
        cr_assert_eq(xshard_send(x, 1, 2, &m), 0);
    }
    xshard_flush(x, 0, &ring);
    xshard_flush(x, 1, &ring);
    got = xshard_receive(x, 2, &more, &k, sink_done);
    cr_assert_eq(got, 2 * XSHARD_RECV_PER_SOURCE_MAX);
    cr_assert(more);
    more = false;
    got = xshard_receive(x, 2, &more, &k, sink_done);
    cr_assert_eq(got, 20);
    cr_assert_not(more);
    cr_assert_eq(k.bad, 0);
    xshard_free(x);
    uring_exit(&ring);
}

Test(xshard, rings_a_sleeping_consumer_exactly_once)
{
    struct xshard *x = xshard_new(3);
    struct io_uring r0, r1, r2;
    struct xmsg m = seq_msg(0);
    unsigned other = 0;

    cr_assert_not_null(x);
    ring_setup(&r0);
    ring_setup(&r1);
    ring_setup(&r2);
    xshard_set_ring_fd(x, 0, r0.ring_fd);
    xshard_set_ring_fd(x, 1, r1.ring_fd);
    xshard_set_ring_fd(x, 2, r2.ring_fd);

    cr_assert(xshard_sleep_prepare(x, 2), "nothing waits: shard 2 may sleep");
    cr_assert_eq(xshard_send(x, 0, 2, &m), 0);
    cr_assert_eq(xshard_send(x, 1, 2, &m), 0);
    cr_assert_eq(xshard_flush(x, 0, &r0), 1, "the first producer rings");
    cr_assert_eq(xshard_flush(x, 1, &r1), 0, "the wake-up was claimed: no second doorbell");
    io_uring_submit(&r0);
    io_uring_submit(&r1);
    cr_assert_eq(cqes(&r2, 1000, XSHARD_DOORBELL_USERDATA, &other), 1,
                 "one doorbell CQE on the consumer's ring");
    cr_assert_eq(other, 0);
    cr_assert_eq(cqes(&r0, 0, XSHARD_DOORBELL_USERDATA, &other), 0);
    cr_assert_eq(other, 0, "a successful MSG_RING posts nothing on the producer's ring");
    xshard_woke(x, 2);

    /* Awake consumer: a publish rings nothing. */
    cr_assert_eq(xshard_send(x, 0, 2, &m), 0);
    cr_assert_eq(xshard_flush(x, 0, &r0), 0);
    io_uring_submit(&r0);
    cr_assert_eq(cqes(&r2, 50, XSHARD_DOORBELL_USERDATA, NULL), 0);

    /* A flush with nothing new rings nothing, even for a sleeper. */
    {
        struct sink k = {0};

        drain(x, 2, &k);
        cr_assert_eq(k.count, 3);
    }
    cr_assert(xshard_sleep_prepare(x, 2));
    cr_assert_eq(xshard_flush(x, 0, &r0), 0);
    cr_assert_eq(xshard_stats(x, 0)->doorbells, 1);
    xshard_free(x);
    uring_exit(&r0);
    uring_exit(&r1);
    uring_exit(&r2);
}

Test(xshard, a_consumer_with_a_message_waiting_does_not_sleep)
{
    struct xshard *x = xshard_new(2);
    struct io_uring r0;
    struct xmsg m = {.kind = XMSG_SHUTDOWN}; /* left queued: nothing to release */

    cr_assert_not_null(x);
    ring_setup(&r0);
    xshard_set_ring_fd(x, 1, r0.ring_fd); /* never rung here */
    cr_assert_eq(xshard_send(x, 0, 1, &m), 0);
    cr_assert_eq(xshard_flush(x, 0, &r0), 0, "shard 1 is awake");
    cr_assert_not(xshard_sleep_prepare(x, 1), "a published message waits");
    cr_assert_eq(atomic_load(&x->peer[1].sleeping), 0, "the flag is withdrawn");
    xshard_free(x);
    uring_exit(&r0);
}

Test(xshard, a_failed_doorbell_is_rung_again_and_a_stopped_shard_never)
{
    struct xshard *x = xshard_new(3);
    struct io_uring r0;
    struct xmsg m = {.kind = XMSG_SHUTDOWN}; /* left queued: nothing to release */
    struct io_uring_cqe *cqe;
    int pipefd[2];
    int ret;

    cr_assert_not_null(x);
    ring_setup(&r0);
    cr_assert_eq(pipe(pipefd), 0);
    /* Not a ring: MSG_RING fails and says so on the producer's ring. */
    xshard_set_ring_fd(x, 1, pipefd[0]);
    cr_assert(xshard_sleep_prepare(x, 1));
    cr_assert_eq(xshard_send(x, 0, 1, &m), 0);
    cr_assert_eq(xshard_flush(x, 0, &r0), 1);
    ret = io_uring_submit_and_wait(&r0, 1);
    cr_assert_geq(ret, 0);
    cr_assert_eq(io_uring_peek_cqe(&r0, &cqe), 0);
    cr_assert_eq(uring_ud_op(cqe->user_data), URING_OP_DOORBELL);
    cr_assert_neq(cqe->user_data, XSHARD_DOORBELL_USERDATA, "the producer's own failure");
    cr_assert_lt(cqe->res, 0);
    xshard_doorbell_done(x, 0, cqe);
    io_uring_cqe_seen(&r0, cqe);
    cr_assert_eq(xshard_stats(x, 0)->doorbell_errors, 1);
    cr_assert_eq(xshard_flush(x, 0, &r0), 1, "rung again with nothing new to send");
    io_uring_submit_and_wait(&r0, 1);
    cr_assert_eq(io_uring_peek_cqe(&r0, &cqe), 0);
    io_uring_cqe_seen(&r0, cqe);

    /* Shard 2 has stopped: never rung, and its overflow does not count as pending. */
    xshard_set_ring_fd(x, 2, pipefd[0]);
    cr_assert(xshard_sleep_prepare(x, 2));
    xshard_done(x, 2);
    for (uint32_t i = 0; i <= x->capacity; i++) {
        cr_assert_eq(xshard_send(x, 0, 2, &m), 0);
    }
    cr_assert_eq(xshard_flush(x, 0, &r0), 0);
    cr_assert_not(xshard_pending(x, 0), "nobody will make room: do not wait for it");
    xshard_free(x);
    uring_exit(&r0);
    close(pipefd[0]);
    close(pipefd[1]);
}

Test(xshard, free_releases_what_is_left_in_rings_and_overflows)
{
    struct xshard *x = xshard_new(2);
    int fds[8];
    uint32_t cap;

    cr_assert_not_null(x);
    cap = x->capacity;
    /* Fill the ring with interest messages, then put owners in the overflow. */
    for (uint32_t i = 0; i < cap; i++) {
        struct xmsg m = {.kind = XMSG_INTEREST_ADD};

        m.payload.buf.ptr = malloc(8);
        m.payload.buf.len = 8;
        cr_assert_eq(xshard_send(x, 0, 1, &m), 0);
    }
    for (int i = 0; i < 4; i++) {
        struct xmsg m = {.kind = XMSG_CONN_HANDOFF};

        cr_assert_eq(pipe(&fds[2 * i]), 0);
        close(fds[2 * i + 1]);
        m.payload.conn.fd = fds[2 * i];
        m.payload.conn.bytes = malloc(16);
        m.payload.conn.len = 16;
        cr_assert_eq(xshard_send(x, 0, 1, &m), 0);
    }
    {
        struct xmsg m = {.kind = XMSG_PUBLISH};

        m.payload.msg =
            msg_new((const uint8_t *)"t", 1, NULL, 0, (const uint8_t *)"p", 1, 1, false);
        cr_assert_eq(xshard_send(x, 1, 0, &m), 0); /* the other direction, in its ring */
    }
    cr_assert_eq(xshard_stats(x, 0)->overflow_events, 4);
    /* Unpublished ring items and overflow items alike: ASan reports any leak. */
    xshard_free(x);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(fcntl(fds[2 * i], F_GETFD), -1, "handed-off fd %d left open", fds[2 * i]);
    }
}

/*
 * ---- Threads: real rings, real sleeps. ----
 * No Criterion calls below until xstress_check(), so --stress-only can run it.
 */
#define XSTRESS_SHARDS 3u
#define XSTRESS_N_DEFAULT 200000u
#define XSTRESS_BURST_MAX 6000u /* > ring capacity: overflows happen */
#define XSTRESS_SLEEP_MS 2000   /* a lost wake-up costs this long */
#define XSTRESS_ITERS_MAX 100000000u

struct xstress {
    struct xshard *x;
    uint64_t n; /* per ordered pair */
    pthread_barrier_t ready;
};

struct xstress_shard {
    struct xstress *st;
    uint32_t id;
    pthread_t thread;
    int setup_ret;
    uint64_t received;
    uint64_t bad;
    uint64_t lost_wakeups; /* woke by timeout with a message waiting */
    uint64_t sleeps;
    uint64_t wakeups;
    struct sink sink;
};

static uint64_t xstress_n(void)
{
    const char *env = getenv("XSHARD_STRESS_N");

    return env != NULL ? strtoull(env, NULL, 10) : XSTRESS_N_DEFAULT;
}

static void *xstress_main(void *arg)
{
    struct xstress_shard *me = arg;
    struct xstress *st = me->st;
    struct xshard *x = st->x;
    uint64_t sent[XSTRESS_SHARDS] = {0};
    uint64_t expect = st->n * (XSTRESS_SHARDS - 1);
    uint64_t rng = 0x9e3779b97f4a7c15ull * (me->id + 1);
    struct io_uring ring;
    uint32_t iter;

    me->setup_ret = uring_init(&ring);
    if (me->setup_ret == 0) {
        xshard_set_ring_fd(x, me->id, ring.ring_fd);
    }
    pthread_barrier_wait(&st->ready);
    if (me->setup_ret != 0) {
        return NULL;
    }
    for (iter = 0; iter < XSTRESS_ITERS_MAX; iter++) {
        struct __kernel_timespec ts = {.tv_sec = XSTRESS_SLEEP_MS / 1000};
        struct io_uring_cqe *cqe;
        bool all_sent = true;
        bool more = false;
        unsigned head, seen = 0;
        uint32_t burst, to, got;

        /* Send a random burst to a random other shard. */
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        to = (me->id + 1 + (uint32_t)(rng % (XSTRESS_SHARDS - 1))) % XSTRESS_SHARDS;
        /*
         * Shard 0 floods (its rings overflow) and so finishes sending early,
         * then sleeps for real while the others trickle to it in small bursts,
         * each of which must wake it.
         */
        burst = (uint32_t)((rng >> 20) %
                           (me->id == 0 || (rng >> 50) % 16 == 0 ? XSTRESS_BURST_MAX : 64));
        for (uint32_t i = 0; i < burst && sent[to] < st->n; i++) {
            struct xmsg m = seq_msg(sent[to]);

            if (xshard_send(x, me->id, to, &m) == 0) {
                sent[to]++;
            }
        }
        for (to = 0; to < XSTRESS_SHARDS; to++) {
            if (to != me->id && sent[to] < st->n) {
                all_sent = false;
            }
        }
        xshard_flush(x, me->id, &ring);
        io_uring_submit(&ring); /* the doorbells flush queued */
        got = xshard_receive(x, me->id, &more, &me->sink, sink_done);
        if (all_sent && !xshard_pending(x, me->id) && me->sink.count == expect) {
            break;
        }
        /*
         * Sleep now and then. A shard that still has to send naps at most
         * 1 ms (it has work, like a real shard with traffic); one that has
         * sent everything sleeps until a doorbell, and if its long wait times
         * out with a message waiting, a wake-up was lost.
         */
        if (got == 0 && !more && (rng >> 40) % 2 == 0) {
            bool pending = xshard_pending(x, me->id);
            bool nap = pending || !all_sent;
            struct __kernel_timespec short_ts = {.tv_nsec = pending ? XSHARD_RETRY_NS : 1000000};

            if (xshard_sleep_prepare(x, me->id)) {
                int ret;

                me->sleeps++;
                ret = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, nap ? &short_ts : &ts, NULL);
                xshard_woke(x, me->id);
                if (ret == -ETIME && !nap) {
                    bool m2 = false;

                    /* Timed out: was a message waiting all along? */
                    if (xshard_receive(x, me->id, &m2, &me->sink, sink_done) > 0) {
                        me->lost_wakeups++;
                    }
                }
            }
        }
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            if (uring_ud_op(cqe->user_data) == URING_OP_DOORBELL) {
                xshard_doorbell_done(x, me->id, cqe);
                if (cqe->user_data == XSHARD_DOORBELL_USERDATA) {
                    me->wakeups++;
                }
            }
            seen++;
        }
        io_uring_cq_advance(&ring, seen);
    }
    me->received = me->sink.count;
    me->bad = me->sink.bad;
    /* Keep the ring until everyone is done: others may still ring it. */
    pthread_barrier_wait(&st->ready);
    xshard_done(x, me->id);
    uring_exit(&ring);
    return NULL;
}

/* Run the stress; returns 0 if every check passed (prints why not). */
static int xstress_run(uint64_t n)
{
    struct xstress st = {.n = n};
    struct xstress_shard sh[XSTRESS_SHARDS];
    int ret = 0;

    st.x = xshard_new(XSTRESS_SHARDS);
    if (st.x == NULL) {
        return -ENOMEM;
    }
    pthread_barrier_init(&st.ready, NULL, XSTRESS_SHARDS);
    memset(sh, 0, sizeof(sh));
    for (uint32_t i = 0; i < XSTRESS_SHARDS; i++) {
        sh[i].st = &st;
        sh[i].id = i;
        pthread_create(&sh[i].thread, NULL, xstress_main, &sh[i]);
    }
    for (uint32_t i = 0; i < XSTRESS_SHARDS; i++) {
        pthread_join(sh[i].thread, NULL);
    }
    for (uint32_t i = 0; i < XSTRESS_SHARDS; i++) {
        const struct xshard_stats *xstats = xshard_stats(st.x, i);

        fprintf(stderr,
                "xshard stress: shard %u: setup %d, received %" PRIu64 "/%" PRIu64 ", bad %" PRIu64
                ", lost wake-ups %" PRIu64 ", sleeps %" PRIu64 ", doorbell wake-ups %" PRIu64
                ", overflowed %" PRIu64 " (deepest %" PRIu64 "), doorbells %" PRIu64 "\n",
                i, sh[i].setup_ret, sh[i].received, n * (XSTRESS_SHARDS - 1), sh[i].bad,
                sh[i].lost_wakeups, sh[i].sleeps, sh[i].wakeups, xstats->overflow_events,
                xstats->overflow_max, xstats->doorbells);
        if (sh[i].setup_ret != 0) {
            ret = sh[i].setup_ret;
        } else if (sh[i].received != n * (XSTRESS_SHARDS - 1) || sh[i].bad != 0 ||
                   sh[i].lost_wakeups != 0) {
            ret = -EPROTO;
        }
    }
    pthread_barrier_destroy(&st.ready);
    xshard_free(st.x);
    return ret;
}

Test(xshard, threads_with_real_sleeps_get_every_message_in_order_and_never_miss_a_wakeup,
     .timeout = 120.0)
{
    int ret = xstress_run(xstress_n());

    if (ret == -ENOSYS || ret == -EPERM) {
        cr_skip_test("io_uring unavailable");
    }
    cr_assert_eq(ret, 0, "stress failed (see the lines above): %s", strerror(-ret));
}

int main(int argc, char *argv[])
{
    struct criterion_test_set *tests;
    int ret = 0;

    if (argc == 2 && strcmp(argv[1], "--stress-only") == 0) {
        ret = xstress_run(xstress_n());
        fprintf(stderr, "xshard stress: %s\n", ret == 0 ? "PASS" : "FAILED");
        return ret == 0 ? 0 : 1;
    }
    tests = criterion_initialize();
    if (criterion_handle_args(argc, argv, true)) {
        ret = !criterion_run_all_tests(tests);
    }
    criterion_finalize(tests);
    return ret;
}
