/*
 * test_alloc_fail.c - core/ under allocation failure: a scripted session
 * over 4 shards (handoff, subscribe plain and shared, publish at QoS 0, 1
 * and 2, retained, cross-shard, a will, a takeover) runs once with every
 * allocation succeeding, counting them, then once per allocation with that
 * one failing. Each run must end without a crash or assertion, and free
 * everything (ASan's leak check over the whole process). Whatever failed,
 * the affected client got an error, a close or nothing - never a crash.
 *
 * Built with -Wl,--wrap for malloc, calloc and realloc (CMakeLists.txt),
 * so every allocation of core/ goes through the counters below.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker.h"
#include "core/limits.h"
#include "core/mqtt_codec.h"
#include "core/xmsg.h"

/* After core/ headers: it defines the global broker `b` their parameters would shadow. */
#include "broker_helpers.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

/* Allocations seen since the count began, and the one to fail (0: none). */
static uint64_t allocs;
static uint64_t fail_at;
static bool failed;

static bool fail_now(void)
{
    if (++allocs != fail_at)
        return false;
    failed = true;
    return true;
}

void *__wrap_malloc(size_t n)
{
    return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fail_now() ? NULL : __real_realloc(p, n);
}

#define NSHARDS 4
#define CLIENTS 5

static struct broker *sh[NSHARDS];

struct conn {
    struct client cl;
    uint32_t shard;
    bool live; /* known to its shard's broker */
};

static struct conn conns[CLIENTS];

/* Deliver every cross-shard message (bounded). */
static void pump(void)
{
    for (unsigned round = 0; round < 1000; round++) {
        bool more = false;
        for (uint32_t from = 0; from < NSHARDS; from++) {
            uint32_t dest;
            struct xmsg x;
            while (broker_next_xmsg(sh[from], &dest, &x)) {
                broker_xmsg_receive(sh[dest], from, &x);
                more = true;
            }
        }
        for (uint32_t i = 0; i < NSHARDS; i++)
            while (broker_next_dirty(sh[i]))
                ;
        if (!more)
            return;
    }
    cr_assert_fail("cross-shard messages never stop");
}

/* What a client was sent is read and dropped, as a connection would. */
static void drain(struct conn *c)
{
    c->cl.out.len = 0;
}

/* Feed @pkt to @c, following a handoff; a client the broker closes is gone. */
static void feed_conn(struct conn *c, const struct mqtt_pkt *pkt, uint8_t version)
{
    uint8_t buf[512];
    size_t n = mqtt_encoded_size(pkt, version);
    if (!c->live || c->cl.state == CLIENT_CLOSING)
        return;
    cr_assert(n > 0 && n <= sizeof(buf));
    mqtt_encode(pkt, version, buf, sizeof(buf));
    int rc = broker_client_feed(sh[c->shard], &c->cl, buf, n);
    if (rc == CLIENT_FEED_HANDOFF) {
        uint8_t *kept;
        uint32_t len;
        uint32_t home = c->cl.handoff_shard;
        if (broker_client_handoff_take(sh[c->shard], &c->cl, &kept, &len) < 0) {
            c->live = false; /* net/ closes it */
            return;
        }
        c->shard = home;
        rc = handoff_land(sh[home], &c->cl, kept, len);
    }
    pump();
    drain(c);
}

static void gone(struct conn *c)
{
    if (!c->live)
        return;
    broker_client_gone(sh[c->shard], &c->cl, 0);
    c->live = false;
    pump();
}

static void open_conn(struct conn *c, uint32_t landed)
{
    c->shard = landed;
    c->live = true;
    broker_client_init(sh[landed], &c->cl);
}

static void connect_pkt_to(struct conn *c, const char *id, bool clean, uint8_t version,
                           const char *will_topic)
{
    struct mqtt_pkt p = {.type = MQTT_CONNECT};
    p.u.connect.version = version;
    p.u.connect.clean_session = clean;
    p.u.connect.keepalive_s = 60;
    p.u.connect.client_id = (struct mqtt_str){(const uint8_t *)id, (uint32_t)strlen(id)};
    if (will_topic) {
        p.u.connect.will = true;
        p.u.connect.will_qos = 1;
        p.u.connect.will_topic =
            (struct mqtt_str){(const uint8_t *)will_topic, (uint32_t)strlen(will_topic)};
        p.u.connect.will_payload = (struct mqtt_str){(const uint8_t *)"gone", 4};
    }
    feed_conn(c, &p, version);
}

/* A v5 CONNECT with a session that expires and a delayed will: what deadline.c tracks. */
static void connect_expiring(struct conn *c, const char *id)
{
    struct mqtt_pkt p = {.type = MQTT_CONNECT};
    p.u.connect.version = MQTT_V5;
    p.u.connect.keepalive_s = 60;
    p.u.connect.client_id = (struct mqtt_str){(const uint8_t *)id, (uint32_t)strlen(id)};
    p.u.connect.props.has = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
    p.u.connect.props.session_expiry = 30;
    p.u.connect.will = true;
    p.u.connect.will_topic = (struct mqtt_str){(const uint8_t *)"a/late", 6};
    p.u.connect.will_payload = (struct mqtt_str){(const uint8_t *)"late", 4};
    p.u.connect.will_props.has = MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY);
    p.u.connect.will_props.will_delay = 5;
    feed_conn(c, &p, MQTT_V5);
}

static void subscribe(struct conn *c, const char *filter, uint8_t qos, uint8_t version)
{
    struct mqtt_sub_entry e = {{(const uint8_t *)filter, (uint32_t)strlen(filter)}, qos};
    struct mqtt_pkt p = {.type = MQTT_SUBSCRIBE};
    p.u.subscribe = (struct mqtt_subscribe){.pkt_id = 1, .count = 1, .entries = &e};
    feed_conn(c, &p, version);
}

static void publish(struct conn *c, const char *topic, uint8_t qos, bool retain, uint16_t id,
                    uint8_t version)
{
    struct mqtt_pkt p = publish_pkt(topic, "payload", qos, retain, id);
    feed_conn(c, &p, version);
    if (qos == 2) {
        struct mqtt_pkt rel = {.type = MQTT_PUBREL};
        rel.u.ack.pkt_id = id;
        feed_conn(c, &rel, version);
    }
}

/* The session under test, from brokers' creation to their end. */
static void script(void)
{
    for (uint32_t i = 0; i < NSHARDS; i++) {
        sh[i] = broker_new(&lim, i, NSHARDS);
        if (!sh[i]) {
            for (uint32_t j = 0; j < i; j++)
                broker_free(sh[j]);
            return; /* start-up: a broker that cannot be built is fatal there */
        }
    }
    memset(conns, 0, sizeof(conns));
    struct conn *sub = &conns[0], *pub = &conns[1], *mem = &conns[2], *wil = &conns[3],
                *taker = &conns[4];
    open_conn(sub, 0);
    connect_pkt_to(sub, "subscriber-a", false, MQTT_V311, NULL);
    subscribe(sub, "a/#", 2, MQTT_V311);
    open_conn(mem, 3);
    connect_pkt_to(mem, "member-b", true, MQTT_V5, NULL);
    subscribe(mem, "$share/g/a/+", 1, MQTT_V5);
    open_conn(pub, 2);
    connect_pkt_to(pub, "publisher-c", true, MQTT_V5, NULL);
    publish(pub, "a/b", 0, false, 0, MQTT_V5);
    publish(pub, "a/b", 1, false, 1, MQTT_V5);
    publish(pub, "a/c", 2, false, 2, MQTT_V5);
    publish(pub, "a/r", 1, true, 3, MQTT_V5);
    open_conn(wil, 1);
    connect_pkt_to(wil, "will-d", false, MQTT_V311, "a/will");
    open_conn(taker, 0);
    connect_pkt_to(taker, "will-d", false, MQTT_V311, NULL); /* takes over: the will goes */
    gone(wil);
    gone(sub); /* persistent: messages now queue */
    publish(pub, "a/b", 1, false, 4, MQTT_V5);
    open_conn(sub, 1);
    connect_pkt_to(sub, "subscriber-a", false, MQTT_V311, NULL); /* resumes */
    open_conn(wil, 2);
    connect_expiring(wil, "expiring-e");
    gone(wil); /* offline: its expiry and delayed will are watched */
    for (uint32_t i = 0; i < NSHARDS; i++)
        broker_tick(sh[i], 6000); /* the will goes */
    pump();
    open_conn(wil, 3);
    connect_expiring(wil, "expiring-e"); /* back: the deadline is cancelled */
    gone(wil);
    for (int i = 0; i < CLIENTS; i++)
        gone(&conns[i]);
    if (fail_at == 0) {
        /* Without failures the script covers what it claims to. */
        struct broker_stats sum = {0};
        for (uint32_t i = 0; i < NSHARDS; i++) {
            const struct broker_stats *st = broker_stats(sh[i]);
            sum.handoffs += st->handoffs;
            sum.xmsg_publish_out += st->xmsg_publish_out;
            sum.takeovers += st->takeovers;
            sum.wills_sent += st->wills_sent;
            sum.msgs_out += st->msgs_out;
        }
        cr_assert_geq(sum.handoffs, 3);
        cr_assert_geq(sum.xmsg_publish_out, 3);
        cr_assert_eq(sum.takeovers, 1);
        cr_assert_eq(sum.wills_sent, 2, "the takeover's will and the delayed one");
        cr_assert_geq(sum.msgs_out, 6);
    }
    for (uint32_t i = 0; i < NSHARDS; i++)
        broker_free(sh[i]);
}

/* broker_helpers.h's limits, without its single broker: the script makes its own. */
TestSuite(alloc_fail, .init = limits_defaults);

Test(alloc_fail, every_allocation_of_a_scripted_session_may_fail_without_a_crash_or_leak)
{
    allocs = 0;
    fail_at = 0;
    script();
    uint64_t total = allocs;
    cr_log_info("%llu allocations in the script", (unsigned long long)total);
    cr_assert_gt(total, 50, "the script made only %llu allocations", (unsigned long long)total);
    for (uint64_t n = 1; n <= total; n++) {
        allocs = 0;
        failed = false;
        fail_at = n;
        script();
        fail_at = 0;
        cr_assert(failed, "allocation %llu of %llu was never reached", (unsigned long long)n,
                  (unsigned long long)total);
    }
}
