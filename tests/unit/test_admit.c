/*
 * test_admit.c - net/admit (admission at accept), without sockets: fd
 * numbers are only indexes here, so they need not be open
 * (admit_release() gives counts back without closing anything).
 *
 * The rate is a GCRA: a second's worth of connections at once, then one
 * per interval, also with threads racing for it; the per-address table
 * counts one address's connections wherever they are released, and
 * addresses that share a slot share its limit; the checks undo each
 * other's counts; the memory flag follows the sample.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "net/admit.h"
#include "net/memwatch.h"

/* A configuration with no limit but connections_max, and a fixed seed. */
static struct admit_cfg base_cfg(void)
{
    return (struct admit_cfg){.conns_max = 1000, .fd_cap = 4096, .seed = 0x5eed};
}

static struct sockaddr_storage v4(const char *s)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof(ss));
    in->sin_family = AF_INET;
    cr_assert_eq(inet_pton(AF_INET, s, &in->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *s)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    in6->sin6_family = AF_INET6;
    cr_assert_eq(inet_pton(AF_INET6, s, &in6->sin6_addr), 1);
    return ss;
}

#define MS 1000u /* a clock far from 0, as CLOCK_MONOTONIC is */
#define T0 (1000000u * MS)

Test(admit, without_limits_admits_up_to_connections_max_and_release_frees_one)
{
    struct admit_cfg cfg = base_cfg();
    struct admit *a;
    int fd;

    cfg.conns_max = 3;
    a = admit_new(&cfg);
    cr_assert_not_null(a);
    cr_assert_not(admit_wants_peer(a), "no getpeername without a per-address limit");
    for (fd = 10; fd < 13; fd++) {
        cr_assert_eq(admit_check(a, fd, NULL, T0), ADMIT_OK);
    }
    cr_assert_eq(admit_check(a, 13, NULL, T0), ADMIT_CONNS);
    cr_assert_eq(admit_conns_open(a), 3, "a refusal counts nothing");
    admit_release(a, 11);
    cr_assert_eq(admit_check(a, 11, NULL, T0), ADMIT_OK);
    admit_release(a, 10);
    admit_release(a, 11);
    admit_release(a, 12);
    cr_assert_eq(admit_conns_open(a), 0);
    admit_free(a);
}

Test(admit, rate_admits_a_seconds_worth_at_once_then_one_per_interval)
{
    struct admit_cfg cfg = base_cfg();
    struct admit *a;
    int fd = 10;
    int i;

    cfg.rate_max = 4; /* 250 ms apart, bursts of 4 */
    a = admit_new(&cfg);
    cr_assert_not_null(a);
    for (i = 0; i < 4; i++) {
        cr_assert_eq(admit_check(a, fd++, NULL, T0), ADMIT_OK, "burst %d", i);
    }
    cr_assert_eq(admit_check(a, fd, NULL, T0), ADMIT_RATE);
    cr_assert_eq(admit_check(a, fd, NULL, T0 + 249), ADMIT_RATE, "not before an interval");
    cr_assert_eq(admit_check(a, fd++, NULL, T0 + 250), ADMIT_OK);
    cr_assert_eq(admit_check(a, fd, NULL, T0 + 250), ADMIT_RATE);
    cr_assert_eq(admit_conns_open(a), 5, "refusals by rate give their connection count back");
    /* A long quiet time refills one second's worth, never more. */
    for (i = 0; i < 4; i++) {
        cr_assert_eq(admit_check(a, fd++, NULL, T0 + 60000), ADMIT_OK, "refill %d", i);
    }
    cr_assert_eq(admit_check(a, fd, NULL, T0 + 60000), ADMIT_RATE);
    admit_free(a);
}

Test(admit, rate_bounds_every_window_at_the_configured_rate)
{
    struct admit_cfg cfg = base_cfg();
    struct admit *a;
    uint32_t admitted = 0;
    uint64_t t;
    int fd = 0;

    cfg.conns_max = 100000;
    cfg.fd_cap = 0;
    cfg.rate_max = 100;
    a = admit_new(&cfg);
    cr_assert_not_null(a);
    /* Ten tries a millisecond for ten seconds: 1 s of burst + 10 s at the rate. */
    for (t = T0; t < T0 + 10000; t++) {
        for (int i = 0; i < 10; i++) {
            admitted += admit_check(a, fd, NULL, t) == ADMIT_OK;
        }
    }
    cr_assert(admitted >= 100 + 999 && admitted <= 100 + 1000, "admitted %u", admitted);
    admit_free(a);
}

Test(admit, rate_zero_admits_any_number)
{
    struct admit_cfg cfg = base_cfg();
    struct admit *a;
    int fd;

    cfg.conns_max = 100000;
    a = admit_new(&cfg);
    cr_assert_not_null(a);
    for (fd = 0; fd < 50000; fd++) {
        cr_assert_eq(admit_check(a, fd, NULL, T0), ADMIT_OK);
    }
    admit_free(a);
}

Test(admit, per_address_limit_counts_each_address_alone)
{
    struct admit_cfg cfg = base_cfg();
    struct sockaddr_storage one = v4("192.0.2.1");
    struct sockaddr_storage two = v4("192.0.2.2");
    struct admit *a;

    cfg.per_address_max = 2;
    a = admit_new(&cfg);
    cr_assert_not_null(a);
    cr_assert(admit_wants_peer(a));
    cr_assert_eq(admit_check(a, 10, &one, T0), ADMIT_OK);
    cr_assert_eq(admit_check(a, 11, &one, T0), ADMIT_OK);
    cr_assert_eq(admit_check(a, 12, &one, T0), ADMIT_ADDRESS);
    cr_assert_eq(admit_check(a, 12, &two, T0), ADMIT_OK, "another address is not affected");
    cr_assert_eq(admit_conns_open(a), 3);
    /* Released by fd number, as the shard holding it after a handoff does. */
    admit_release(a, 10);
    cr_assert_eq(admit_check(a, 13, &one, T0), ADMIT_OK, "a release frees a place");
    cr_assert_eq(admit_check(a, 14, &one, T0), ADMIT_ADDRESS);
    admit_release(a, 11);
    admit_release(a, 12);
    admit_release(a, 13);
    cr_assert_eq(admit_conns_open(a), 0);
    cr_assert_eq(admit_check(a, 11, &one, T0), ADMIT_OK);
    cr_assert_eq(admit_check(a, 12, &one, T0), ADMIT_OK);
    admit_release(a, 11);
    admit_release(a, 12);
    admit_free(a);
}

Test(admit, ipv6_and_ipv4_mapped_addresses_are_keyed_by_host)
{
    struct admit_cfg cfg = base_cfg();
    struct sockaddr_storage plain = v4("198.51.100.7");
    struct sockaddr_storage mapped = v6("::ffff:198.51.100.7");
    struct sockaddr_storage six = v6("2001:db8::7");
    struct sockaddr_storage six_b = v6("2001:db8::8");
    struct admit *a;

    cfg.per_address_max = 1;
    a = admit_new(&cfg);
    cr_assert_not_null(a);
    cr_assert_eq(admit_check(a, 10, &plain, T0), ADMIT_OK);
    cr_assert_eq(admit_check(a, 11, &mapped, T0), ADMIT_ADDRESS, "the same host in IPv6 form");
    cr_assert_eq(admit_check(a, 11, &six, T0), ADMIT_OK);
    cr_assert_eq(admit_check(a, 12, &six, T0), ADMIT_ADDRESS);
    cr_assert_eq(admit_check(a, 12, &six_b, T0), ADMIT_OK, "each IPv6 address alone");
    admit_release(a, 10);
    admit_release(a, 11);
    admit_release(a, 12);
    admit_free(a);
}

Test(admit, addresses_sharing_a_slot_share_its_limit_and_never_exceed_it)
{
    struct admit_cfg cfg = base_cfg();
    struct sockaddr_storage first = v4("10.0.0.1");
    struct sockaddr_storage other;
    struct admit *a;
    char text[32];
    uint32_t i;
    int found = 0;

    cfg.conns_max = 1; /* the smallest table: ADMIT_SLOTS_MIN slots */
    cfg.per_address_max = 1;
    a = admit_new(&cfg);
    cr_assert_not_null(a);
    cr_assert_eq(a->addr_mask + 1, ADMIT_SLOTS_MIN);
    a->conns_max = UINT32_MAX; /* only the address table decides here */
    cr_assert_eq(admit_check(a, 10, &first, T0), ADMIT_OK);
    /* Of 64k other addresses some share 10.0.0.1's slot: refused, never admitted twice. */
    for (i = 2; i < 65536 && found == 0; i++) {
        snprintf(text, sizeof(text), "10.0.%u.%u", i >> 8, i & 0xff);
        other = v4(text);
        if (admit_check(a, 11, &other, T0) == ADMIT_ADDRESS) {
            found = 1;
        } else {
            admit_release(a, 11);
        }
    }
    cr_assert(found, "no address shares a slot of %u", ADMIT_SLOTS_MIN);
    admit_release(a, 10);
    cr_assert_eq(admit_check(a, 11, &other, T0), ADMIT_OK, "free once the other one left");
    admit_release(a, 11);
    admit_free(a);
}

Test(admit, a_later_refusal_gives_back_the_earlier_counts)
{
    struct admit_cfg cfg = base_cfg();
    struct sockaddr_storage one = v4("192.0.2.1");
    struct admit *a;

    cfg.per_address_max = 5;
    cfg.conns_max = 1;
    cfg.rate_max = 1;
    a = admit_new(&cfg);
    cr_assert_not_null(a);
    cr_assert_eq(admit_check(a, 10, &one, T0), ADMIT_OK);
    cr_assert_eq(admit_check(a, 11, &one, T0), ADMIT_CONNS, "took and gave back its address");
    admit_release(a, 10);
    cr_assert_eq(admit_check(a, 11, &one, T0), ADMIT_RATE, "the rate's token is spent");
    cr_assert_eq(admit_conns_open(a), 0);
    /* Nothing leaked from the refusals: 5 from one address still fit. */
    a->conns_max = 5;
    a->rate_interval_ns = 0;
    for (int fd = 20; fd < 25; fd++) {
        cr_assert_eq(admit_check(a, fd, &one, T0), ADMIT_OK);
    }
    cr_assert_eq(admit_check(a, 25, &one, T0), ADMIT_ADDRESS);
    for (int fd = 20; fd < 25; fd++) {
        admit_release(a, fd);
    }
    admit_free(a);
}

Test(admit, fd_numbers_beyond_the_table_are_refused_when_addresses_count)
{
    struct admit_cfg cfg = base_cfg();
    struct sockaddr_storage one = v4("192.0.2.1");
    struct admit *a;

    cfg.per_address_max = 5;
    cfg.fd_cap = 16;
    a = admit_new(&cfg);
    cr_assert_not_null(a);
    cr_assert_eq(admit_check(a, 15, &one, T0), ADMIT_OK);
    cr_assert_eq(admit_check(a, 16, &one, T0), ADMIT_ADDRESS);
    cr_assert_eq(admit_conns_open(a), 1);
    admit_release(a, 15);
    admit_free(a);
}

Test(admit, memory_budget_below_the_resident_set_refuses_everything)
{
    struct admit_cfg cfg = base_cfg();
    struct admit *a;

    cfg.memory_max = 4096; /* far below any process */
    a = admit_new(&cfg);
    cr_assert_not_null(a);
    cr_assert(admit_pressure(a), "the first sample is taken at start-up");
    cr_assert_eq(admit_check(a, 10, NULL, T0), ADMIT_MEMORY);
    cr_assert_eq(admit_conns_open(a), 0);
    admit_memory_poll(a, T0);
    cr_assert(admit_pressure(a));
    admit_free(a);

    cfg.memory_max = 1ull << 50;
    a = admit_new(&cfg);
    cr_assert_not_null(a);
    cr_assert_not(admit_pressure(a));
    cr_assert_eq(admit_check(a, 10, NULL, T0), ADMIT_OK);
    admit_release(a, 10);
    admit_free(a);
}

Test(admit, memory_is_sampled_once_per_interval_by_one_caller)
{
    struct admit_cfg cfg = base_cfg();
    struct admit *a;

    cfg.memory_max = 1ull << 50;
    a = admit_new(&cfg);
    cr_assert_not_null(a);
    admit_memory_poll(a, T0);
    cr_assert_eq(atomic_load(&a->mem_next_ms), T0 + MEMWATCH_INTERVAL_MS);
    /* Not due: untouched (a fake sample would otherwise show). */
    a->mem_rss_bytes = 1;
    admit_memory_poll(a, T0 + MEMWATCH_INTERVAL_MS - 1);
    cr_assert_eq(a->mem_rss_bytes, 1);
    admit_memory_poll(a, T0 + MEMWATCH_INTERVAL_MS);
    cr_assert_gt(a->mem_rss_bytes, 1);
    /* Turned on and off by the sample, against the budget. */
    a->memory_max = a->mem_rss_bytes / 2;
    admit_memory_poll(a, T0 + 10 * MEMWATCH_INTERVAL_MS);
    cr_assert(admit_pressure(a));
    a->memory_max = 1ull << 50;
    admit_memory_poll(a, T0 + 20 * MEMWATCH_INTERVAL_MS);
    cr_assert_not(admit_pressure(a));
    admit_free(a);
}

/* Threads admitting at once through one rate: together never more than the burst. */
struct racer {
    struct admit *a;
    int base;
    uint32_t admitted;
};

static void *race(void *arg)
{
    struct racer *r = arg;

    for (int i = 0; i < 2000; i++) {
        r->admitted += admit_check(r->a, r->base + i, NULL, T0) == ADMIT_OK;
    }
    return NULL;
}

Test(admit, concurrent_admissions_share_one_rate)
{
    struct admit_cfg cfg = base_cfg();
    struct racer r[4];
    pthread_t t[4];
    uint32_t total = 0;
    int i;

    cfg.conns_max = 100000;
    cfg.rate_max = 1000;
    for (i = 0; i < 4; i++) {
        r[i] = (struct racer){.base = i * 2000};
    }
    r[0].a = admit_new(&cfg);
    cr_assert_not_null(r[0].a);
    for (i = 0; i < 4; i++) {
        r[i].a = r[0].a;
        cr_assert_eq(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        total += r[i].admitted;
    }
    /* All at one instant: exactly a second's worth, however the CASes interleaved. */
    cr_assert_eq(total, 1000);
    cr_assert_eq(admit_conns_open(r[0].a), 1000);
    admit_free(r[0].a);
}
