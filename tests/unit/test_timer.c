/*
 * test_timer.c - unit tests for net/timer (the connection deadline wheel).
 *
 * The wheel is pure: every test drives it with explicit now_ms values.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "net/timer.h"

#define T0 1000000u /* an arbitrary, tick-aligned start time */

static struct timer_wheel *wheel_new(uint64_t now_ms)
{
    struct timer_wheel *w = malloc(sizeof(*w));

    cr_assert_not_null(w);
    timer_wheel_init(w, now_ms);
    return w;
}

/* Expire everything due at @now_ms; return how many nodes came out. */
static unsigned drain(struct timer_wheel *w, uint64_t now_ms)
{
    unsigned n = 0;
    struct timer_node *t;

    while ((t = timer_expire(w, now_ms)) != NULL) {
        cr_assert_leq(t->deadline_ms, now_ms, "expired early: deadline %llu now %llu",
                      (unsigned long long)t->deadline_ms, (unsigned long long)now_ms);
        cr_assert(!timer_node_linked(t));
        n++;
    }
    return n;
}

Test(timer, expires_after_its_deadline_never_before)
{
    struct timer_wheel *w = wheel_new(T0);
    struct timer_node n;

    timer_node_init(&n);
    timer_set(w, &n, T0 + 250);
    cr_assert_eq(w->count, 1);
    cr_assert_null(timer_expire(w, T0 + 249));
    /* Due, but its tick (T0+200..T0+299) is not over yet: up to one tick late. */
    cr_assert_null(timer_expire(w, T0 + 299));
    cr_assert_eq(timer_expire(w, T0 + 300), &n);
    cr_assert_eq(w->count, 0);
    cr_assert_null(timer_expire(w, T0 + 10000));
    free(w);
}

Test(timer, deleted_node_never_expires)
{
    struct timer_wheel *w = wheel_new(T0);
    struct timer_node a, b;

    timer_node_init(&a);
    timer_node_init(&b);
    timer_set(w, &a, T0 + 100);
    timer_set(w, &b, T0 + 100);
    timer_del(w, &a);
    timer_del(w, &a); /* idempotent */
    cr_assert(!timer_node_linked(&a));
    cr_assert_eq(w->count, 1);
    cr_assert_eq(timer_expire(w, T0 + 500), &b);
    cr_assert_null(timer_expire(w, T0 + 500));
    free(w);
}

Test(timer, later_deadline_is_lazily_reslotted_and_fires_on_time)
{
    struct timer_wheel *w = wheel_new(T0);
    struct timer_node n;

    timer_node_init(&n);
    timer_set(w, &n, T0 + 1000);
    /* A keepalive reset: only the field changes. */
    timer_set(w, &n, T0 + 5000);
    cr_assert_eq(n.deadline_ms, T0 + 5000);
    cr_assert_eq(w->count, 1);
    cr_assert_eq(drain(w, T0 + 1200), 0);
    cr_assert(timer_node_linked(&n), "not-yet-due node must be put back");
    cr_assert_eq(drain(w, T0 + 5000), 0);
    cr_assert_eq(drain(w, T0 + 5100), 1);
    cr_assert_eq(w->count, 0);
    free(w);
}

Test(timer, earlier_deadline_moves_the_node)
{
    struct timer_wheel *w = wheel_new(T0);
    struct timer_node n;

    timer_node_init(&n);
    timer_set(w, &n, T0 + 60000);
    timer_set(w, &n, T0 + 300);
    cr_assert_eq(w->count, 1);
    cr_assert_eq(drain(w, T0 + 400), 1);
    free(w);
}

Test(timer, deadline_beyond_one_revolution_fires_on_its_own_lap)
{
    struct timer_wheel *w = wheel_new(T0);
    struct timer_node n;
    uint64_t deadline = T0 + 3 * TIMER_SLOTS * TIMER_TICK_MS + 1234; /* 3 laps ahead */
    uint64_t now;

    timer_node_init(&n);
    timer_set(w, &n, deadline);
    /* Advance tick by tick, as the loop does: nothing until the deadline. */
    for (now = T0; now < deadline; now += TIMER_TICK_MS) {
        cr_assert_null(timer_expire(w, now), "fired at %llu before %llu", (unsigned long long)now,
                       (unsigned long long)deadline);
    }
    cr_assert_eq(drain(w, deadline + TIMER_TICK_MS), 1);
    free(w);
}

Test(timer, past_deadline_fires_at_the_next_tick)
{
    struct timer_wheel *w = wheel_new(T0);
    struct timer_node n;

    cr_assert_null(timer_expire(w, T0 + 5000));
    timer_node_init(&n);
    timer_set(w, &n, T0 + 10); /* long gone */
    cr_assert_eq(drain(w, T0 + 5000), 0);
    cr_assert_eq(drain(w, T0 + 5100), 1);
    free(w);
}

Test(timer, clock_jump_of_many_revolutions_expires_all_due_nodes_only)
{
    struct timer_wheel *w = wheel_new(T0);
    struct timer_node nodes[100];
    uint64_t jump = T0 + 10 * TIMER_SLOTS * TIMER_TICK_MS;
    unsigned i;

    for (i = 0; i < 100; i++) {
        timer_node_init(&nodes[i]);
        /* Half due before the jump, half long after it. */
        timer_set(w, &nodes[i], i % 2 ? T0 + i * 997 : jump + 100000 + i);
    }
    cr_assert_eq(drain(w, jump), 50);
    cr_assert_eq(w->count, 50);
    for (i = 0; i < 100; i++) {
        cr_assert_eq(timer_node_linked(&nodes[i]), i % 2 == 0);
    }
    free(w);
}

Test(timer, expired_node_can_be_rearmed_from_the_expiry_loop)
{
    struct timer_wheel *w = wheel_new(T0);
    struct timer_node n;
    struct timer_node *t;
    unsigned fired = 0;

    timer_node_init(&n);
    timer_set(w, &n, T0 + 100);
    while ((t = timer_expire(w, T0 + 1000)) != NULL) {
        fired++;
        timer_set(w, t, T0 + 2000); /* e.g. a close linger deadline */
    }
    cr_assert_eq(fired, 1);
    cr_assert_eq(w->count, 1);
    cr_assert_eq(drain(w, T0 + 2100), 1);
    free(w);
}

/* Randomised against a brute-force model: every node fires once, within a tick. */
Test(timer, random_schedule_matches_a_brute_force_model)
{
    enum { N = 2000, STEPS = 3000 };
    struct timer_wheel *w = wheel_new(T0);
    struct timer_node *nodes = calloc(N, sizeof(*nodes));
    uint64_t *fired_at = calloc(N, sizeof(*fired_at));
    uint64_t now = T0;
    unsigned seed = 12345;
    unsigned i, step;
    struct timer_node *t;

    cr_assert_not_null(nodes);
    cr_assert_not_null(fired_at);
    for (i = 0; i < N; i++) {
        timer_node_init(&nodes[i]);
    }
    for (step = 0; step < STEPS; step++) {
        for (i = 0; i < 5; i++) {
            unsigned k = (unsigned)rand_r(&seed) % N;
            unsigned op = (unsigned)rand_r(&seed) % 4;

            if (op == 0) {
                timer_del(w, &nodes[k]);
            } else {
                timer_set(w, &nodes[k], now + (uint64_t)(rand_r(&seed) % 120000));
                fired_at[k] = 0;
            }
        }
        now += (uint64_t)(rand_r(&seed) % 250);
        while ((t = timer_expire(w, now)) != NULL) {
            size_t k = (size_t)(t - nodes);

            cr_assert_leq(t->deadline_ms, now);
            fired_at[k] = now;
        }
        /* Nothing still in the wheel may be overdue by more than a tick. */
        for (i = 0; i < N; i++) {
            if (timer_node_linked(&nodes[i])) {
                cr_assert_gt(nodes[i].deadline_ms + TIMER_TICK_MS, now, "node %u overdue", i);
            }
        }
    }
    free(fired_at);
    free(nodes);
    free(w);
}
