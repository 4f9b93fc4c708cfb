/*
 * test_spsc.c - unit tests for net/spsc (the cross-shard SPSC ring).
 *
 * Single-thread tests pin down the contract (FIFO, full/empty, batched
 * publication, index wraparound); two stress tests run a real producer
 * thread against a consumer and check every item arrives exactly once, in
 * order and untorn. Environment:
 *
 *   SPSC_STRESS_N    items in the main stress test (default 5000000)
 *   SPSC_STRESS_SEED PRNG seed for batch sizes (default fixed; printed)
 *
 * Under ThreadSanitizer run `test_spsc --stress-only` (see main()): it runs
 * the stress tests without Criterion's runner, which TSan cannot host.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/rm_assert.h"
#include "net/spsc.h"

#define TEST_KIND 0x5e9u
#define STRESS_N_DEFAULT 5000000u
#define STRESS_SEED_DEFAULT 0x2545f4914f6cdd1dull

/* A message whose every field is derived from @seq, so a torn slot shows. */
static struct xmsg msg_make(uint64_t seq)
{
    struct xmsg m;

    memset(&m, 0, sizeof(m));
    m.kind = TEST_KIND;
    m.arg = (uint32_t)seq;
    m.payload.u64[0] = seq;
    m.payload.u64[1] = ~seq;
    m.payload.u64[2] = seq * 0x9e3779b97f4a7c15ull;
    return m;
}

static bool msg_is(const struct xmsg *m, uint64_t seq)
{
    return m->kind == TEST_KIND && m->arg == (uint32_t)seq && m->payload.u64[0] == seq &&
           m->payload.u64[1] == ~seq && m->payload.u64[2] == seq * 0x9e3779b97f4a7c15ull;
}

static void push_ok(struct spsc *q, uint64_t seq)
{
    struct xmsg m = msg_make(seq);

    cr_assert(spsc_push(q, &m), "push of %" PRIu64 " failed", seq);
}

/* Pop exactly @n items and check they are @first, @first + 1, ... */
static void pop_expect(struct spsc *q, uint64_t first, uint32_t n)
{
    struct xmsg out[64];

    cr_assert_leq(n, RM_ARRAY_LEN(out));
    cr_assert_eq(spsc_pop_batch(q, out, n), n);
    for (uint32_t i = 0; i < n; i++) {
        cr_assert(msg_is(&out[i], first + i), "item %u is not %" PRIu64, i, first + i);
    }
}

/*
 * Place all four indices at @start, as if @start items had already passed
 * through. Reaches into private fields on purpose: it is the only way to
 * reach the uint32_t wrap in a unit test's time.
 */
static void set_indices(struct spsc *q, uint32_t start)
{
    atomic_store(&q->_tail, start);
    atomic_store(&q->_head, start);
    q->_tail_pending = start;
    q->_head_cache = start;
    q->_tail_cache = start;
}

Test(spsc, init_rejects_capacity_not_power_of_two, .signal = SIGABRT)
{
    struct spsc q;

    spsc_init(&q, 24);
}

Test(spsc, init_rejects_capacity_one, .signal = SIGABRT)
{
    struct spsc q;

    spsc_init(&q, 1);
}

Test(spsc, init_rejects_storage_not_cache_line_aligned, .signal = SIGABRT)
{
    static alignas(SPSC_CACHELINE) unsigned char buf[sizeof(struct spsc) + SPSC_CACHELINE];

    spsc_init((struct spsc *)(buf + 8), 16);
}

Test(spsc, layout_keeps_each_side_on_its_own_cache_line)
{
    cr_assert_eq(offsetof(struct spsc, _tail) % SPSC_CACHELINE, 0);
    cr_assert_eq(offsetof(struct spsc, _head) % SPSC_CACHELINE, 0);
    cr_assert_eq(offsetof(struct spsc, _slots) % SPSC_CACHELINE, 0);
    /* Producer-private fields share the producer's line... */
    cr_assert_lt(offsetof(struct spsc, _head_cache), offsetof(struct spsc, _head));
    cr_assert_lt(offsetof(struct spsc, _tail_pending), offsetof(struct spsc, _head));
    /* ...and the consumer's, including the doorbell flag, the consumer's. */
    cr_assert_lt(offsetof(struct spsc, _tail_cache), offsetof(struct spsc, _slots));
    cr_assert_lt(offsetof(struct spsc, consumer_sleeping), offsetof(struct spsc, _slots));
    cr_assert_gt(offsetof(struct spsc, consumer_sleeping), offsetof(struct spsc, _head));
    cr_assert_eq(sizeof(struct xmsg), 32);
}

Test(spsc, new_ring_is_empty_and_pop_returns_nothing)
{
    struct spsc q;
    struct xmsg out[4];

    cr_assert_eq(spsc_init(&q, 8), 0);
    cr_assert_eq(spsc_capacity(&q), 8);
    cr_assert(spsc_empty(&q));
    cr_assert_eq(spsc_pop_batch(&q, out, 4), 0);
    cr_assert_eq(spsc_publish(&q), 0, "nothing pushed, nothing to publish");
    cr_assert_eq(atomic_load(&q.consumer_sleeping), 0);
    spsc_destroy(&q);
}

Test(spsc, pushed_and_published_items_pop_in_fifo_order)
{
    struct spsc q;

    cr_assert_eq(spsc_init(&q, 16), 0);
    for (uint64_t i = 0; i < 5; i++) {
        push_ok(&q, 100 + i);
    }
    cr_assert_eq(spsc_publish(&q), 5);
    cr_assert_not(spsc_empty(&q));
    pop_expect(&q, 100, 5);
    cr_assert(spsc_empty(&q));
    spsc_destroy(&q);
}

Test(spsc, pushed_but_unpublished_items_are_invisible_to_the_consumer)
{
    struct spsc q;
    struct xmsg out[8];

    cr_assert_eq(spsc_init(&q, 8), 0);
    push_ok(&q, 1);
    push_ok(&q, 2);
    push_ok(&q, 3);
    cr_assert(spsc_empty(&q));
    cr_assert_eq(spsc_pop_batch(&q, out, 8), 0);

    cr_assert_eq(spsc_publish(&q), 3, "one publish makes the whole batch visible");
    cr_assert_eq(spsc_publish(&q), 0, "a second publish has nothing new");

    /* A new push after the publish stays invisible until the next one. */
    push_ok(&q, 4);
    cr_assert_eq(spsc_pop_batch(&q, out, 8), 3);
    for (uint64_t i = 0; i < 3; i++) {
        cr_assert(msg_is(&out[i], 1 + i));
    }
    cr_assert(spsc_empty(&q));
    cr_assert_eq(spsc_publish(&q), 1);
    pop_expect(&q, 4, 1);
    spsc_destroy(&q);
}

Test(spsc, every_slot_is_usable_and_push_fails_when_full)
{
    struct spsc q;

    cr_assert_eq(spsc_init(&q, 8), 0);
    for (uint64_t i = 0; i < 8; i++) {
        push_ok(&q, i);
    }
    struct xmsg extra = msg_make(8);
    cr_assert_not(spsc_push(&q, &extra), "a ninth push into 8 slots must fail");
    cr_assert_eq(spsc_publish(&q), 8);
    cr_assert_not(spsc_push(&q, &extra), "still full after publishing");

    /* Popping frees exactly what was popped. */
    pop_expect(&q, 0, 3);
    for (uint64_t i = 8; i < 11; i++) {
        push_ok(&q, i);
    }
    extra = msg_make(11);
    cr_assert_not(spsc_push(&q, &extra));
    cr_assert_eq(spsc_publish(&q), 3);
    pop_expect(&q, 3, 8);
    cr_assert(spsc_empty(&q));
    spsc_destroy(&q);
}

Test(spsc, ring_full_of_unpublished_items_drains_only_after_publish)
{
    struct spsc q;
    struct xmsg out[4], m = msg_make(4);

    cr_assert_eq(spsc_init(&q, 4), 0);
    for (uint64_t i = 0; i < 4; i++) {
        push_ok(&q, i);
    }
    cr_assert_not(spsc_push(&q, &m));
    cr_assert_eq(spsc_pop_batch(&q, out, 4), 0, "the consumer cannot free unpublished slots");
    cr_assert_not(spsc_push(&q, &m));
    cr_assert_eq(spsc_publish(&q), 4);
    pop_expect(&q, 0, 4);
    cr_assert(spsc_push(&q, &m));
    spsc_destroy(&q);
}

Test(spsc, pop_batch_takes_at_most_max_and_keeps_the_rest_in_order)
{
    struct spsc q;

    cr_assert_eq(spsc_init(&q, 32), 0);
    for (uint64_t i = 0; i < 20; i++) {
        push_ok(&q, i);
    }
    spsc_publish(&q);
    pop_expect(&q, 0, 1);
    pop_expect(&q, 1, 7);
    pop_expect(&q, 8, 12);
    cr_assert_eq(spsc_pop_batch(&q, NULL, 0), 0, "max 0 takes nothing");
    cr_assert(spsc_empty(&q));
    spsc_destroy(&q);
}

Test(spsc, pop_batch_larger_than_available_returns_what_is_there)
{
    struct spsc q;
    struct xmsg out[64];

    cr_assert_eq(spsc_init(&q, 16), 0);
    push_ok(&q, 7);
    push_ok(&q, 8);
    spsc_publish(&q);
    cr_assert_eq(spsc_pop_batch(&q, out, 64), 2);
    cr_assert(msg_is(&out[0], 7) && msg_is(&out[1], 8));
    spsc_destroy(&q);
}

Test(spsc, wraps_around_the_slot_array_many_times)
{
    struct spsc q;
    uint64_t next_push = 0, next_pop = 0;

    cr_assert_eq(spsc_init(&q, 4), 0);
    /*
     * Varying push and pop sizes put the array's end at every offset inside
     * a batch, so pop_batch's two-run copy is exercised in every split.
     */
    for (unsigned round = 0; round < 20000; round++) {
        uint32_t npush = 1 + round % 4;
        uint32_t npop = 1 + (round / 4) % 4;
        uint32_t held = (uint32_t)(next_push - next_pop);

        if (npush > 4 - held) {
            npush = 4 - held;
        }
        for (uint32_t i = 0; i < npush; i++) {
            push_ok(&q, next_push++);
        }
        spsc_publish(&q);
        held = (uint32_t)(next_push - next_pop);
        if (npop > held) {
            npop = held;
        }
        pop_expect(&q, next_pop, npop);
        next_pop += npop;
    }
    cr_assert_gt(next_pop, 40000, "too few items went round: %" PRIu64, next_pop);
    pop_expect(&q, next_pop, (uint32_t)(next_push - next_pop));
    cr_assert(spsc_empty(&q));
    spsc_destroy(&q);
}

Test(spsc, indices_wrap_past_uint32_max)
{
    struct spsc q;
    struct xmsg m = msg_make(99);

    cr_assert_eq(spsc_init(&q, 8), 0);
    set_indices(&q, UINT32_MAX - 2);
    for (uint64_t i = 0; i < 8; i++) {
        push_ok(&q, i);
    }
    cr_assert_not(spsc_push(&q, &m), "full across the wrap");
    cr_assert_eq(spsc_publish(&q), 8);
    pop_expect(&q, 0, 5);
    for (uint64_t i = 8; i < 13; i++) {
        push_ok(&q, i);
    }
    cr_assert_not(spsc_push(&q, &m));
    cr_assert_eq(spsc_publish(&q), 5);
    pop_expect(&q, 5, 8);
    cr_assert(spsc_empty(&q));
    cr_assert_eq(atomic_load(&q._head), 10u, "head went UINT32_MAX - 2 + 13");
    spsc_destroy(&q);
}

Test(spsc, destroyed_ring_can_be_initialised_again)
{
    struct spsc q;
    struct xmsg m = msg_make(1);

    cr_assert_eq(spsc_init(&q, 2), 0);
    cr_assert(spsc_push(&q, &m));
    spsc_publish(&q);
    spsc_destroy(&q);
    cr_assert_eq(spsc_init(&q, 2), 0);
    cr_assert(spsc_empty(&q), "a fresh ring has no leftovers");
    pop_expect(&q, 0, 0);
    spsc_destroy(&q);
}

/*
 * ---- Two-thread stress. ----
 *
 * The stress code uses no Criterion calls, so main() below can also run it
 * on its own: Criterion's runner cannot start under ThreadSanitizer (its
 * BoxFort arena is mapped at a fixed address inside TSan's shadow range;
 * Snaipe/Criterion#274).
 */

struct stress {
    struct spsc *q;
    uint64_t n;           /* items to send */
    uint64_t seed;        /* producer's PRNG state, never 0 */
    uint32_t batch_max;   /* producer batch sizes are 1..batch_max */
    uint64_t full_events; /* producer: pushes that found the ring full */
};

struct stress_result {
    uint64_t received;    /* items popped */
    uint64_t bad;         /* items out of order, duplicated, lost or torn */
    uint64_t first_bad;   /* sequence number expected at the first bad item */
    uint64_t full_events; /* pushes that found the ring full */
    uint64_t empty_polls; /* pops that found nothing */
    bool leftover;        /* something was still in the ring at the end */
};

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* A bad value is the tester's mistake: say so and stop. */
static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    char *end;
    unsigned long long x;

    if (v == NULL || *v == '\0') {
        return dflt;
    }
    errno = 0;
    x = strtoull(v, &end, 0);
    if (errno != 0 || *end != '\0') {
        fprintf(stderr, "test_spsc: bad %s=%s\n", name, v);
        abort();
    }
    return x;
}

static uint64_t stress_n(void)
{
    return env_u64("SPSC_STRESS_N", STRESS_N_DEFAULT);
}

/*
 * Producer thread: random-sized batches, one publish per batch. On full it
 * publishes first (the ring may be full of its own unpublished items) and
 * then yields: the two threads may share one CPU, and spinning would then
 * burn the consumer's time slice.
 */
static void *stress_producer(void *arg)
{
    struct stress *st = arg;
    uint64_t seq = 0;

    while (seq < st->n) {
        uint64_t batch = 1 + xorshift64(&st->seed) % st->batch_max;

        for (; batch > 0 && seq < st->n; batch--, seq++) {
            struct xmsg m = msg_make(seq);

            while (!spsc_push(st->q, &m)) {
                st->full_events++;
                spsc_publish(st->q);
                sched_yield();
            }
        }
        spsc_publish(st->q);
    }
    return NULL;
}

/*
 * Run @n items through a ring of @capacity, the producer on a new thread and
 * the consumer (random batch sizes up to 64) on this one, and fill @r.
 * Returns 0, or -1 if the ring or the thread could not be set up.
 */
static int stress_run(uint32_t capacity, uint64_t n, uint32_t batch_max, struct stress_result *r)
{
    uint64_t seed = env_u64("SPSC_STRESS_SEED", STRESS_SEED_DEFAULT);
    uint64_t rng = (seed ^ 0xa5a5a5a5a5a5a5a5ull) | 1;
    struct spsc q;
    struct stress st = {.q = &q, .n = n, .seed = seed | 1, .batch_max = batch_max};
    struct xmsg out[64];
    pthread_t producer;
    int ret = -1;

    memset(r, 0, sizeof(*r));
    r->first_bad = UINT64_MAX;
    fprintf(stderr, "spsc stress: capacity %u, n %" PRIu64 ", seed 0x%" PRIx64 "\n", capacity, n,
            seed);
    if (spsc_init(&q, capacity) != 0) {
        goto out;
    }
    if (pthread_create(&producer, NULL, stress_producer, &st) != 0) {
        goto out_destroy;
    }
    while (r->received < n) {
        uint32_t max = 1 + (uint32_t)(xorshift64(&rng) % RM_ARRAY_LEN(out));
        uint32_t got = spsc_pop_batch(&q, out, max);

        if (got == 0) {
            r->empty_polls++;
            sched_yield();
            continue;
        }
        /* Plain comparisons: a Criterion assertion per item would be slow. */
        for (uint32_t i = 0; i < got; i++, r->received++) {
            if (!msg_is(&out[i], r->received) && r->bad++ == 0) {
                r->first_bad = r->received;
            }
        }
    }
    pthread_join(producer, NULL);
    /* After the join every publish is visible: anything left is extra. */
    r->leftover = !spsc_empty(&q) || spsc_pop_batch(&q, out, 1) != 0;
    r->full_events = st.full_events;
    fprintf(stderr,
            "spsc stress: %" PRIu64 " bad, %" PRIu64 " full pushes, %" PRIu64 " empty polls\n",
            r->bad, r->full_events, r->empty_polls);
    ret = 0;
out_destroy:
    spsc_destroy(&q);
out:
    return ret;
}

static bool stress_ok(const struct stress_result *r, uint64_t n)
{
    /* batch_max > capacity makes "full" certain on long runs: the full path ran. */
    return r->bad == 0 && r->received == n && !r->leftover && (n < 10000 || r->full_events > 0);
}

static void stress_check(uint32_t capacity, uint64_t n, uint32_t batch_max)
{
    struct stress_result r;

    cr_assert_eq(stress_run(capacity, n, batch_max, &r), 0, "stress set-up failed");
    cr_assert_eq(r.bad, 0,
                 "%" PRIu64 " items out of order, duplicated, lost or torn; first at seq %" PRIu64,
                 r.bad, r.first_bad);
    cr_assert_eq(r.received, n);
    cr_assert_not(r.leftover, "producer sent more than n items");
    cr_assert(stress_ok(&r, n), "the producer never found the ring full");
}

/* The two configurations, shared by the Criterion tests and --stress-only. */
#define STRESS_MAIN_CAPACITY 256u
#define STRESS_MAIN_BATCH_MAX 384u /* > capacity: some batches must wait for room */
#define STRESS_TINY_CAPACITY 2u    /* every publish and pop crosses cores */
#define STRESS_TINY_BATCH_MAX 3u
#define STRESS_TINY_DIVISOR 25u /* the tiny ring moves n / 25 items */

Test(spsc, two_threads_deliver_every_item_exactly_once_in_order, .timeout = 120)
{
    stress_check(STRESS_MAIN_CAPACITY, stress_n(), STRESS_MAIN_BATCH_MAX);
}

Test(spsc, two_threads_through_the_smallest_ring_lose_nothing, .timeout = 120)
{
    stress_check(STRESS_TINY_CAPACITY, stress_n() / STRESS_TINY_DIVISOR, STRESS_TINY_BATCH_MAX);
}

/*
 * `test_spsc --stress-only` runs just the two stress configurations in this
 * process, without Criterion's runner (for ThreadSanitizer); exit 0 if both
 * pass. Any other arguments go to Criterion as usual.
 */
static int stress_only(void)
{
    static const uint32_t cfg[2][3] = {
        {STRESS_MAIN_CAPACITY, 1, STRESS_MAIN_BATCH_MAX},
        {STRESS_TINY_CAPACITY, STRESS_TINY_DIVISOR, STRESS_TINY_BATCH_MAX},
    };
    struct stress_result r;
    int ret = 0;

    for (size_t i = 0; i < RM_ARRAY_LEN(cfg); i++) {
        uint64_t n = stress_n() / cfg[i][1];

        if (stress_run(cfg[i][0], n, cfg[i][2], &r) != 0 || !stress_ok(&r, n)) {
            fprintf(stderr,
                    "spsc stress FAILED: capacity %u: received %" PRIu64 " of %" PRIu64 ", %" PRIu64
                    " bad (first at %" PRIu64 "), leftover %d, full %" PRIu64 "\n",
                    cfg[i][0], r.received, n, r.bad, r.first_bad, r.leftover, r.full_events);
            ret = 1;
        }
    }
    if (ret == 0) {
        fprintf(stderr, "spsc stress: PASS\n");
    }
    return ret;
}

int main(int argc, char *argv[])
{
    struct criterion_test_set *tests;
    int ret = 0;

    if (argc == 2 && strcmp(argv[1], "--stress-only") == 0) {
        return stress_only();
    }
    tests = criterion_initialize();
    if (criterion_handle_args(argc, argv, true)) {
        ret = !criterion_run_all_tests(tests);
    }
    criterion_finalize(tests);
    return ret;
}
