/*
 * test_wal.c - core/wal and core/wal_replay: what a broker logs, and a
 * broker rebuilt from it after a "crash" (the log taken so far, replayed
 * into a new broker). Clients are fed packets as net/ would; the log is
 * read back exactly as net/wal_io writes it (a WAL_SEGMENT header, then
 * the batches).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/acl.h"
#include "core/broker_types.h"
#include "core/home.h"
#include "core/retained.h"
#include "core/wal_format.h"
#include "core/wal_replay.h"

#include "broker_helpers.h"

#include "core/wait.h"
#include "core/wal.h"

/*
 * Reallocations to fail from now on (linked with --wrap=realloc): the
 * log's arrays of waits and acknowledgements grow with realloc
 * (core/grow.h), so a test fails exactly the one it means to.
 */
static int fail_reallocs;
static void *fail_realloc_of; /* fail the next realloc of this block */
void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);

void *__wrap_realloc(void *p, size_t n)
{
    if (fail_realloc_of && p == fail_realloc_of) {
        fail_realloc_of = NULL;
        return NULL;
    }
    if (fail_reallocs > 0) {
        fail_reallocs--;
        return NULL;
    }
    return __real_realloc(p, n);
}

/* Fail the next malloc of exactly this many bytes (linked with --wrap=malloc); 0: none. */
static size_t fail_malloc_size;
void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);

void *__wrap_malloc(size_t n)
{
    if (fail_malloc_size && n == fail_malloc_size) {
        fail_malloc_size = 0;
        return NULL;
    }
    return __real_malloc(n);
}

/* The log so far: one segment per shard of the broker that wrote it. */
#define SHARDS_MAX 4
static struct wal_out seg[SHARDS_MAX];

static void seg_start(struct wal_out *o, uint32_t shard, uint32_t count)
{
    size_t at = wal_begin(o, WAL_SEGMENT);
    wal_put_u64(o, WAL_MAGIC);
    wal_put_u32(o, WAL_VERSION);
    wal_put_u32(o, 1);
    wal_put_u32(o, shard);
    wal_put_u32(o, count);
    wal_put_u32(o, 0);
    wal_end(o, at);
}

static void start_log(bool sync)
{
    cr_assert_eq(broker_wal_start(b, sync, 0), 0);
    seg_start(&seg[0], 0, 1);
}

/* Write @br's open batch into segment @i, durable at once. */
static void take(struct broker *br, int i)
{
    const uint8_t *p;
    size_t n;
    if (broker_wal_take(br, &p, &n)) {
        wal_put_raw(&seg[i], p, n);
        broker_wal_durable(br);
    }
}

static struct wal_replay_report rep;
static int problems;

static void problem(void *ctx, const char *name, size_t off, const char *what)
{
    (void)ctx;
    (void)name;
    (void)off;
    (void)what;
    problems++;
}

/* Where segment 0's file data ends for rebuilt_with() (struct wal_seg's data); 0: at its end. */
static size_t seg0_data;

/* Segment @i of the fixture, read back whole (no hole at its end). */
static struct wal_seg whole(int i)
{
    return (struct wal_seg){seg[i].buf, seg[i].len, "seg", true, seg[i].len};
}

/* A new broker @id of @count rebuilt from segments [0, @n), logging with @sync. */
static struct broker *rebuilt_with(uint32_t id, uint32_t count, int n, bool sync)
{
    struct wal_seg segs[SHARDS_MAX];
    for (int i = 0; i < n; i++)
        segs[i] = whole(i);
    if (seg0_data)
        segs[0].data = seg0_data;
    struct broker *nb = broker_new(&lim, id, count);
    cr_assert_not_null(nb);
    broker_tick(nb, 1000);
    cr_assert_eq(broker_wal_replay(nb, segs, (size_t)n, 0, problem, NULL, &rep), 0);
    cr_assert_eq(broker_wal_start(nb, sync, 0), 0);
    return nb;
}

static struct broker *rebuilt(uint32_t id, uint32_t count, int n)
{
    return rebuilt_with(id, count, n, false);
}

/*
 * The crash: what was taken survives; the broker and its connected clients
 * @c1, @c2 (NULL: none) are gone. Their goodbyes are logged after the
 * take, so they are lost with the broker, as a kill -9 would lose them.
 */
static void crash_and_restart(struct client *c1, struct client *c2)
{
    take(b, 0);
    if (c1)
        broker_client_gone(b, c1, 0);
    if (c2)
        broker_client_gone(b, c2, 0);
    broker_free(b);
    b = rebuilt(0, 1, 1);
}

static void fini(void)
{
    for (int i = 0; i < SHARDS_MAX; i++)
        wal_out_free(&seg[i]);
    teardown();
}

TestSuite(wal, .init = setup, .fini = fini);

Test(wal, an_offline_persistent_session_keeps_its_messages_and_subscription)
{
    start_log(false);
    struct client sub, pub;
    do_connect(&sub, "sub", false);
    do_subscribe(&sub, "s/#", 2, 2);
    broker_client_gone(b, &sub, 0);
    do_connect(&pub, "pub", true);
    do_publish(&pub, "s/1", "one", 1, false, 1);
    do_publish(&pub, "s/2", "two", 2, false, 2);
    do_publish(&pub, "s/3", "zero", 0, false, 0); /* QoS 0 is not kept offline */
    broker_client_gone(b, &pub, 0);
    crash_and_restart(NULL, NULL);
    cr_assert_eq(rep.sessions, 1, "the clean publisher's session is not restored");
    cr_assert_eq(rep.messages, 2);
    cr_assert(do_connect(&sub, "sub", false), "session present after the restart");
    struct got g;
    expect_publish(&sub, "s/1", "one", 1, false, &g);
    expect_publish(&sub, "s/2", "two", 2, false, &g);
    expect_none(&sub);
    /* Its subscription came back too: a new publish reaches it. */
    do_connect(&pub, "pub", true);
    do_publish(&pub, "s/4", "four", 1, false, 3);
    expect_publish(&sub, "s/4", "four", 1, false, &g);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(wal, acknowledged_deliveries_are_not_sent_again)
{
    start_log(false);
    struct client sub, pub;
    do_connect(&sub, "sub", false);
    do_subscribe(&sub, "s", 1, 1);
    do_connect(&pub, "pub", true);
    do_publish(&pub, "s", "a", 1, false, 1);
    do_publish(&pub, "s", "b", 1, false, 2);
    struct got g;
    expect_publish(&sub, "s", "a", 1, false, &g);
    uint16_t first = g.pkt.u.publish.pkt_id;
    expect_publish(&sub, "s", "b", 1, false, &g);
    ack(&sub, MQTT_PUBACK, first); /* "a" done, "b" still in flight */
    crash_and_restart(&sub, &pub);
    cr_assert(do_connect(&sub, "sub", false));
    expect_publish(&sub, "s", "b", 1, false, &g);
    cr_assert(g.pkt.u.publish.dup, "resent with DUP [MQTT-4.4.0-1]");
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
}

Test(wal, qos2_flows_resume_with_their_packet_ids)
{
    start_log(false);
    struct client sub, pub;
    do_connect(&sub, "sub", false);
    do_subscribe(&sub, "s", 2, 2);
    do_connect(&pub, "pub", true);
    do_publish(&pub, "s", "x", 2, false, 1);
    do_publish(&pub, "s", "y", 2, false, 2);
    struct got g;
    expect_publish(&sub, "s", "x", 2, false, &g);
    uint16_t x = g.pkt.u.publish.pkt_id;
    expect_publish(&sub, "s", "y", 2, false, &g);
    uint16_t y = g.pkt.u.publish.pkt_id;
    ack(&sub, MQTT_PUBREC, x);
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_PUBREL);
    crash_and_restart(&sub, &pub);
    cr_assert_eq(broker_stats(b)->inflight, 2, "the inflight gauge counts replayed flows");
    cr_assert(do_connect(&sub, "sub", false));
    /* Same order, same ids [MQTT-4.4.0-1]: PUBREL for x, PUBLISH (DUP) for y. */
    cr_assert(next_out(&sub, &g));
    cr_assert_eq(g.pkt.type, MQTT_PUBREL);
    cr_assert_eq(g.pkt.u.ack.pkt_id, x);
    expect_publish(&sub, "s", "y", 2, false, &g);
    cr_assert_eq(g.pkt.u.publish.pkt_id, y);
    cr_assert(g.pkt.u.publish.dup);
    ack(&sub, MQTT_PUBCOMP, x);
    expect_none(&sub);
    cr_assert_eq(broker_stats(b)->inflight, 1, "y is still in flight");
    broker_client_gone(b, &sub, 0);
}

Test(wal, inbound_qos2_ids_survive_so_a_resend_is_not_routed_twice)
{
    start_log(false);
    struct client sub, pub;
    do_connect(&sub, "sub", false);
    do_subscribe(&sub, "s", 2, 2);
    broker_client_gone(b, &sub, 0);
    do_connect(&pub, "pub", false);
    do_publish(&pub, "s", "once", 2, false, 9); /* PUBREC sent; PUBREL not yet */
    crash_and_restart(&pub, NULL);
    /* The publisher did not see the PUBREC: it sends the PUBLISH again [MQTT-4.3.3-2]. */
    cr_assert(do_connect(&pub, "pub", false));
    struct mqtt_pkt p = publish_pkt("s", "once", 2, false, 9);
    p.u.publish.dup = true;
    cr_assert_eq(feed_pkt(&pub, &p, MQTT_V311), 0);
    struct got g;
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC);
    ack(&pub, MQTT_PUBREL, 9);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBCOMP);
    cr_assert(do_connect(&sub, "sub", false));
    expect_publish(&sub, "s", "once", 2, false, &g);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(wal, ended_sessions_and_clean_ones_are_not_restored)
{
    start_log(false);
    struct client c;
    do_connect(&c, "gone", false);
    do_subscribe(&c, "s", 1, 1);
    broker_client_gone(b, &c, 0);
    do_connect(&c, "gone", true); /* Clean Session ends the old one */
    broker_client_gone(b, &c, 0);
    do_connect(&c, "clean", true);
    do_subscribe(&c, "s", 1, 1);
    crash_and_restart(&c, NULL);
    cr_assert_eq(rep.sessions, 0);
    cr_assert_not(do_connect(&c, "gone", false), "no session present [MQTT-3.2.2-3]");
    broker_client_gone(b, &c, 0);
}

Test(wal, retained_sets_and_clears_survive)
{
    start_log(false);
    struct client pub, sub;
    do_connect(&pub, "pub", true);
    do_publish(&pub, "r/1", "kept", 1, true, 1);
    do_publish(&pub, "r/2", "cleared", 1, true, 2);
    do_publish(&pub, "r/2", "", 1, true, 3);
    do_publish(&pub, "r/3", "first", 0, true, 0);
    do_publish(&pub, "r/3", "second", 0, true, 0);
    broker_client_gone(b, &pub, 0);
    crash_and_restart(NULL, NULL);
    cr_assert_eq(rep.retained, 2);
    do_connect(&sub, "sub", true);
    do_subscribe(&sub, "r/#", 1, 1);
    struct got g;
    bool seen1 = false, seen3 = false;
    for (int i = 0; i < 2; i++) {
        cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_PUBLISH);
        cr_assert(g.pkt.u.publish.retain);
        if (g.pkt.u.publish.topic.len == 3 && memcmp(g.pkt.u.publish.topic.ptr, "r/1", 3) == 0)
            seen1 = g.pkt.u.publish.payload.len == 4;
        else
            seen3 = g.pkt.u.publish.payload.len == 6; /* "second": the last set wins */
    }
    cr_assert(seen1 && seen3);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
}

Test(wal, the_brokers_own_sys_messages_are_not_logged)
{
    start_log(false);
    struct client pub;
    static const char up[] = "12 seconds";
    do_connect(&pub, "pub", true);
    cr_assert_eq(broker_sys_publish(b, "$SYS/broker/uptime", 18, (const uint8_t *)up,
                                    sizeof(up) - 1),
                 0);
    do_publish(&pub, "r/1", "kept", 1, true, 1);
    broker_client_gone(b, &pub, 0);
    crash_and_restart(NULL, NULL);
    cr_assert_eq(rep.retained, 1, "only the client's retained message is replayed");
}

Test(wal, with_sync_the_puback_waits_until_the_log_is_durable)
{
    start_log(true);
    struct client sub, pub;
    do_connect(&sub, "sub", false);
    /* SUBACK of a persistent session waits too. */
    struct mqtt_sub_entry e = {{(const uint8_t *)"s", 1}, 1};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
    feed_pkt(&sub, &sp, MQTT_V311);
    expect_none(&sub);
    take(b, 0);
    struct got g;
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_SUBACK, "SUBACK once durable");
    broker_client_gone(b, &sub, 0);

    do_connect(&pub, "pub", true);
    struct mqtt_pkt p = publish_pkt("s", "m", 1, false, 5);
    feed_pkt(&pub, &p, MQTT_V311);
    expect_none(&pub);
    take(b, 0);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBACK, "PUBACK once durable");
    /* A message that only online clean sessions get is not logged: acknowledged at once. */
    struct client live;
    do_connect(&live, "live", true);
    do_subscribe(&live, "t", 1, 1);
    p = publish_pkt("t", "m", 1, false, 6);
    feed_pkt(&pub, &p, MQTT_V311);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBACK);
    broker_client_gone(b, &live, 0);
    broker_client_gone(b, &pub, 0);
}

Test(wal, a_snapshot_alone_rebuilds_the_same_state)
{
    start_log(false);
    struct client sub, pub;
    do_connect(&sub, "sub", false);
    do_subscribe(&sub, "s/#", 1, 1);
    broker_client_gone(b, &sub, 0);
    do_connect(&pub, "pub", true);
    do_publish(&pub, "s/1", "one", 1, false, 1);
    do_publish(&pub, "s/2", "two", 1, false, 2);
    do_publish(&pub, "r", "ret", 1, true, 3);
    broker_client_gone(b, &pub, 0);
    take(b, 0);
    /* Compaction: the live state written afresh, the older records dropped. */
    wal_out_free(&seg[0]);
    seg_start(&seg[0], 0, 1);
    struct broker_wal_cursor cur = {0};
    int steps = 0;
    while (!broker_wal_snapshot(b, &cur, 1))
        steps++;
    cr_assert_gt(steps, 1, "a bounded amount per call");
    crash_and_restart(NULL, NULL);
    cr_assert_eq(rep.sessions, 1);
    cr_assert_eq(rep.messages, 2);
    cr_assert_eq(rep.retained, 1);
    cr_assert(do_connect(&sub, "sub", false));
    struct got g;
    expect_publish(&sub, "s/1", "one", 1, false, &g);
    expect_publish(&sub, "s/2", "two", 1, false, &g);
    broker_client_gone(b, &sub, 0);
}

/* A persistent session @id subscribes to @id at QoS 1 and goes; its records go to segment 0. */
static void session_logged(const char *id)
{
    struct client c;
    do_connect(&c, id, false);
    do_subscribe(&c, id, 1, 1);
    broker_client_gone(b, &c, 0);
    take(b, 0);
}

Test(wal, corrupt_records_are_skipped_and_a_torn_tail_ignored)
{
    start_log(false);
    struct client c;
    session_logged("a");
    size_t mid = seg[0].len;
    session_logged("b");
    size_t tail = seg[0].len;
    do_connect(&c, "c", false);
    broker_client_gone(b, &c, 0);
    take(b, 0);
    /* Damage b's records (the middle) and cut c's short (a torn tail). */
    seg[0].buf[mid + WAL_HDR_BYTES + 3] ^= 0xff;
    seg[0].len = tail + 5;
    problems = 0;
    broker_free(b);
    b = rebuilt(0, 1, 1);
    cr_assert_geq(rep.bad, 1);
    cr_assert_eq(rep.torn_bytes, 5);
    cr_assert_geq(problems, 2);
    cr_assert(do_connect(&c, "a", false), "what is before the damage is served");
    broker_client_gone(b, &c, 0);
    cr_assert_not(do_connect(&c, "c", false), "the torn session is not invented");
    broker_client_gone(b, &c, 0);
}

Test(wal, a_segment_is_read_to_its_hole_and_a_record_running_into_it_whole)
{
    start_log(false);
    struct client c;
    session_logged("a");
    size_t records = seg[0].len;
    /* A preallocated segment: its records, then the unwritten rest, a hole of zeros. */
    static const uint8_t zeros[4096];
    wal_put_raw(&seg[0], zeros, sizeof(zeros));
    /* The file's data ends a byte short of its last record, whose zero became the hole. */
    seg0_data = records - 1;
    problems = 0;
    broker_free(b);
    b = rebuilt(0, 1, 1);
    seg0_data = 0;
    cr_assert_eq(problems, 0, "neither the hole nor the record running into it is damage");
    cr_assert_eq(rep.bad, 0);
    cr_assert_eq(rep.torn_bytes, 0);
    cr_assert(do_connect(&c, "a", false), "the session is back");
    broker_client_gone(b, &c, 0);
}

/* Hand every cross-shard message between @n brokers until none is left (bounded). */
static void pump(struct broker **br, uint32_t n)
{
    struct xmsg x;
    uint32_t dest;
    for (int round = 0; round < 100; round++) {
        bool any = false;
        for (uint32_t i = 0; i < n; i++) {
            while (broker_next_xmsg(br[i], &dest, &x)) {
                broker_xmsg_receive(br[dest], i, &x);
                any = true;
            }
        }
        if (!any)
            return;
    }
    cr_assert_fail("cross-shard messages never settled");
}

/* @rounds times: each of the @n shards makes its batch durable, and the messages go across. */
static void settle(struct broker **br, uint32_t n, int rounds)
{
    for (int r = 0; r < rounds; r++) {
        for (uint32_t i = 0; i < n; i++) {
            take(br[i], (int)i);
            pump(br, n);
        }
    }
}

Test(wal, a_changed_shard_count_rehomes_every_session)
{
    /* Two shards wrote the log; three replay it: each session lands on its new home only. */
    broker_free(b);
    struct broker *two[2];
    static const char *ids[] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"};
    for (uint32_t i = 0; i < 2; i++) {
        two[i] = broker_new(&lim, i, 2);
        broker_tick(two[i], 1000);
        cr_assert_eq(broker_wal_start(two[i], false, 0), 0);
        seg_start(&seg[i], i, 2);
    }
    for (size_t k = 0; k < 8; k++) {
        const uint8_t *id = (const uint8_t *)ids[k];
        b = two[home_shard(id, 2, 2)];
        struct client c;
        do_connect(&c, ids[k], false);
        struct mqtt_sub_entry e = {{(const uint8_t *)"x", 1}, 1};
        struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
        sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
        feed_pkt(&c, &sp, MQTT_V311);
        pump(two, 2); /* the other shard learns of the filter; the SUBACK goes */
        drain_dirty();
        struct got g;
        cr_assert(next_out(&c, &g) && g.pkt.type == MQTT_SUBACK);
        broker_client_gone(b, &c, 0);
    }
    for (uint32_t i = 0; i < 2; i++)
        take(two[i], (int)i);
    pump(two, 2);
    for (uint32_t i = 0; i < 2; i++)
        broker_free(two[i]);
    uint64_t total = 0;
    for (uint32_t i = 0; i < 3; i++) {
        b = rebuilt(i, 3, 2);
        total += rep.sessions;
        for (size_t k = 0; k < 8; k++) {
            if (home_shard((const uint8_t *)ids[k], 2, 3) != i)
                continue;
            struct client c;
            cr_assert(do_connect(&c, ids[k], false), "%s's session on its new home %u", ids[k], i);
            broker_client_gone(b, &c, 0);
        }
        broker_free(b);
    }
    cr_assert_eq(total, 8, "each session once");
    b = broker_new(&lim, 0, 1); /* for teardown */
}

Test(wal, with_sync_pubrel_and_pubcomp_wait_for_the_log)
{
    /*
     * A PUBREL lets the receiver forget the message, a PUBCOMP lets the
     * sender reuse its packet id: neither may go before the record that a
     * crash would lose, or the restarted broker sends the message twice
     * [MQTT-4.3.3-3] or takes a new one for a duplicate.
     */
    start_log(true);
    struct client sub, pub;
    struct got g;
    do_connect(&sub, "sub", false);
    struct mqtt_sub_entry e = {{(const uint8_t *)"s", 1}, 2};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
    feed_pkt(&sub, &sp, MQTT_V311);
    take(b, 0);
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_SUBACK);
    do_connect(&pub, "pub", false);
    struct mqtt_pkt p = publish_pkt("s", "q2", 2, false, 4);
    feed_pkt(&pub, &p, MQTT_V311);
    expect_none(&pub);
    expect_none(&sub);
    take(b, 0);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC, "PUBREC once durable");
    expect_publish(&sub, "s", "q2", 2, false, &g);
    uint16_t id = g.pkt.u.publish.pkt_id;
    ack(&sub, MQTT_PUBREC, id);
    expect_none(&sub);
    take(b, 0);
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_PUBREL, "PUBREL once durable");
    cr_assert_eq(g.pkt.u.ack.pkt_id, id);
    ack(&pub, MQTT_PUBREL, 4);
    expect_none(&pub);
    take(b, 0);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBCOMP, "PUBCOMP once durable");
    ack(&sub, MQTT_PUBCOMP, id);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

/* @cl (persistent) subscribes to @filter at @qos; its SUBACK once durable. */
static void subscribe_durably(struct client *cl, const char *filter, uint8_t qos)
{
    struct mqtt_sub_entry e = {{(const uint8_t *)filter, (uint32_t)strlen(filter)}, qos};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
    feed_pkt(cl, &sp, MQTT_V311);
    take(b, 0);
    struct got g;
    cr_assert(next_out(cl, &g) && g.pkt.type == MQTT_SUBACK);
}

/* The first of "name0", "name1"... that shard @shard of @count homes. */
static const char *homed_on(char *buf, const char *name, uint32_t shard, uint32_t count)
{
    for (int i = 0; i < 1000; i++) {
        snprintf(buf, 32, "%s%d", name, i);
        if (home_shard((const uint8_t *)buf, strlen(buf), count) == shard)
            return buf;
    }
    cr_assert_fail("no name homed on shard %u", shard);
    return NULL;
}

Test(wal, replay_teaches_every_shard_the_others_filters_and_retained_messages)
{
    /*
     * After a restart no shard may wait for the others' announcements: a
     * publish in the first packet reaches a subscriber restored on another
     * shard, and every replica holds every retained message.
     */
    broker_free(b);
    struct broker *two[2];
    char cid[32], topic[32];
    homed_on(cid, "sub", 1, 2);
    homed_on(topic, "r/", 1, 2);
    for (uint32_t i = 0; i < 2; i++) {
        two[i] = broker_new(&lim, i, 2);
        broker_tick(two[i], 1000);
        cr_assert_eq(broker_wal_start(two[i], false, 0), 0);
        seg_start(&seg[i], i, 2);
    }
    struct client c;
    struct got g;
    b = two[1];
    do_connect(&c, cid, false);
    struct mqtt_sub_entry e = {{(const uint8_t *)"x", 1}, 1};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
    feed_pkt(&c, &sp, MQTT_V311);
    pump(two, 2);
    drain_dirty();
    cr_assert(next_out(&c, &g) && g.pkt.type == MQTT_SUBACK);
    broker_client_gone(b, &c, 0);
    b = two[0];
    do_connect(&c, "pub", true);
    do_publish(&c, topic, "kept", 0, true, 0); /* ordered by shard 1, its home */
    pump(two, 2);
    broker_client_gone(b, &c, 0);
    for (uint32_t i = 0; i < 2; i++)
        take(two[i], (int)i);
    pump(two, 2);
    for (uint32_t i = 0; i < 2; i++)
        broker_free(two[i]);

    for (uint32_t i = 0; i < 2; i++) {
        two[i] = b = rebuilt(i, 2, 2);
        cr_assert_eq(retained_count(b->retained), 1, "shard %u holds the retained message", i);
    }
    /* Nothing was announced: shard 0 knows shard 1's filter from the log itself. */
    uint32_t dest;
    struct xmsg x;
    cr_assert_not(broker_next_xmsg(two[0], &dest, &x));
    cr_assert_not(broker_next_xmsg(two[1], &dest, &x));
    b = two[0];
    do_connect(&c, "pub", true);
    do_publish(&c, "x", "first", 1, false, 1);
    cr_assert(broker_next_xmsg(two[0], &dest, &x), "the publish crosses to the subscriber");
    cr_assert_eq(x.kind, XMSG_PUBLISH);
    cr_assert_eq(dest, 1);
    broker_xmsg_receive(two[1], 0, &x);
    broker_client_gone(b, &c, 0);
    pump(two, 2);
    b = two[1];
    struct client s;
    cr_assert(do_connect(&s, cid, false));
    expect_publish(&s, "x", "first", 1, false, &g);
    broker_client_gone(b, &s, 0);
    pump(two, 2);
    broker_free(two[1]);
    b = two[0]; /* for teardown */
}

/*
 * Three shards with logs (sync): @p, homed on shard 0, connected; members
 * of $share/g/t @c1 on shard 1, gone offline (shard 1 passes the group's
 * messages on), and @c2 on shard 2, online.
 */
static void three_with_a_member_passing_on(struct broker **three, struct client *c1,
                                           struct client *c2, struct client *p)
{
    broker_free(b);
    char pid[32], m1[32], m2[32];
    homed_on(pid, "pub", 0, 3);
    homed_on(m1, "member", 1, 3);
    homed_on(m2, "member", 2, 3);
    for (uint32_t i = 0; i < 3; i++) {
        three[i] = broker_new(&lim, i, 3);
        broker_tick(three[i], 1000);
        cr_assert_eq(broker_wal_start(three[i], true, 0), 0);
        seg_start(&seg[i], i, 3);
    }
    struct got g;
    const char *ids[2] = {m1, m2};
    struct client *cs[2] = {c1, c2};
    for (int k = 0; k < 2; k++) {
        b = three[k + 1];
        do_connect(cs[k], ids[k], false);
        struct mqtt_sub_entry e = {{(const uint8_t *)"$share/g/t", 10}, 1};
        struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
        sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
        feed_pkt(cs[k], &sp, MQTT_V311);
        pump(three, 3);
        take(three[k + 1], k + 1);
        pump(three, 3);
        cr_assert(next_out(cs[k], &g) && g.pkt.type == MQTT_SUBACK);
    }
    b = three[1];
    broker_client_gone(b, c1, 0);
    b = three[0];
    do_connect(p, pid, true);
}

/* The end of three_with_a_member_passing_on(): @p (shard 0) and @c2 (shard 2) go. */
static void three_free(struct broker **three, struct client *c2, struct client *p)
{
    broker_client_gone(three[0], p, 0);
    broker_client_gone(three[2], c2, 0);
    for (uint32_t i = 0; i < 3; i++) {
        take(three[i], (int)i);
        pump(three, 3);
    }
    broker_free(three[1]);
    broker_free(three[2]);
    b = three[0]; /* for teardown */
}

Test(wal, a_shared_message_passed_on_is_acknowledged_once_its_last_shard_has_it)
{
    /*
     * A shared group's message crosses to a shard whose member is offline,
     * which passes it on to the shard with an online member: the PUBACK
     * waits for that last shard's log too, not only for the first one's.
     */
    struct broker *three[3];
    struct client c1, c2, p;
    struct got g;
    three_with_a_member_passing_on(three, &c1, &c2, &p);
    /* The group's shards take turns: one of the two goes through shard 1. */
    for (uint16_t n = 1; n <= 2; n++) {
        struct mqtt_pkt pp = publish_pkt("t", "m", 1, false, n);
        feed_pkt(&p, &pp, MQTT_V311);
        for (int round = 0; round < 3; round++) {
            pump(three, 3);
            take(three[0], 0);
            take(three[1], 1);
        }
        pump(three, 3);
        b = three[0];
        bool early = next_out(&p, &g) && g.pkt.type == MQTT_PUBACK;
        cr_assert_not(early, "PUBACK %u before the member's shard logged the message", n);
        take(three[2], 2);
        pump(three, 3);
        cr_assert(next_out(&p, &g) && g.pkt.type == MQTT_PUBACK, "PUBACK %u once durable", n);
        b = three[2];
        expect_publish(&c2, "t", "m", 1, false, &g);
        ack(&c2, MQTT_PUBACK, g.pkt.u.publish.pkt_id);
        b = three[0];
    }
    three_free(three, &c2, &p);
}

Test(wal, a_restored_session_is_judged_by_its_own_listeners_acl)
{
    /*
     * Listener 0 has no ACL, listener 1's denies reading secret/#. A session
     * made through listener 1 and restored from the log must not have
     * secret/x kept for it (it would be delivered when it comes back).
     */
    struct acl *deny = acl_new();
    unsigned bad_line;
    const char *bad_name;
    struct acl_rule_spec r = {.filter = "secret/#", .filter_len = 8,
                              .access = ACL_SUBSCRIBE | ACL_READ, .allow = false,
                              .who = ACL_WHO_ALL};
    cr_assert_not_null(deny);
    cr_assert_eq(acl_rule_add(deny, &r), 0);
    acl_set_default(deny, true);
    cr_assert_eq(acl_finish(deny, &bad_line, &bad_name), 0);
    const struct acl *per[2] = {NULL, deny};
    broker_set_acls(b, per, 2);
    start_log(false);
    struct client c, pub;
    broker_client_init(b, &c);
    c.listener = 1;
    struct mqtt_pkt p = connect_pkt("s", false, MQTT_V311);
    cr_assert_eq(feed_pkt(&c, &p, MQTT_V311), 0);
    struct got g;
    cr_assert(next_out(&c, &g) && g.pkt.type == MQTT_CONNACK);
    do_subscribe(&c, "#", 1, 1);
    broker_client_gone(b, &c, 0);
    take(b, 0);
    broker_free(b);
    /* The restarted broker knows its listeners' ACLs before it replays (net/shard.c). */
    struct wal_seg segs[1] = {whole(0)};
    b = broker_new(&lim, 0, 1);
    broker_tick(b, 1000);
    broker_set_acls(b, per, 2);
    cr_assert_eq(broker_wal_replay(b, segs, 1, 0, problem, NULL, &rep), 0);
    cr_assert_eq(broker_wal_start(b, false, 0), 0);
    do_connect(&pub, "pub", true);
    do_publish(&pub, "secret/x", "hidden", 1, false, 1);
    do_publish(&pub, "open/x", "seen", 1, false, 2);
    broker_client_gone(b, &pub, 0);
    broker_client_init(b, &c);
    c.listener = 1;
    cr_assert_eq(feed_pkt(&c, &p, MQTT_V311), 0);
    cr_assert(next_out(&c, &g) && g.pkt.type == MQTT_CONNACK);
    cr_assert(g.pkt.u.connack.session_present);
    expect_publish(&c, "open/x", "seen", 1, false, &g);
    expect_none(&c);
    broker_client_gone(b, &c, 0);
    broker_set_acl(b, NULL);
    acl_free(deny);
}

/* A v5 CONNECT of @id: a session that outlives it and a will delayed @delay_s. */
static void connect_will(struct client *cl, const char *id, uint32_t delay_s)
{
    broker_client_init(b, cl);
    struct mqtt_pkt p = {.type = MQTT_CONNECT};
    p.u.connect.version = MQTT_V5;
    p.u.connect.keepalive_s = 60;
    p.u.connect.client_id = (struct mqtt_str){(const uint8_t *)id, (uint32_t)strlen(id)};
    p.u.connect.props.has = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
    p.u.connect.props.session_expiry = 3600;
    p.u.connect.will = true;
    p.u.connect.will_topic = (struct mqtt_str){(const uint8_t *)"w/late", 6};
    p.u.connect.will_payload = (struct mqtt_str){(const uint8_t *)"late", 4};
    p.u.connect.will_props.has = MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY);
    p.u.connect.will_props.will_delay = delay_s;
    cr_assert_eq(feed_pkt(cl, &p, MQTT_V5), 0);
    struct got g;
    cr_assert(next_out(cl, &g) && g.pkt.type == MQTT_CONNACK);
}

Test(wal, a_delayed_will_survives_a_restart_and_goes_out_when_due)
{
    /* [MQTT-3.1.3-9]: the will waits its delay; a crash in between must not forget it. */
    start_log(false);
    struct client sub, w, back;
    struct got g;
    do_connect(&sub, "watcher", true);
    do_subscribe(&sub, "w/#", 0, 0);
    connect_will(&w, "willer", 5);
    uint64_t due = b->now_ms + 5000;
    cr_assert_gt(due, 1001, "due after the restart's clock");
    broker_client_gone(b, &w, 0); /* no DISCONNECT: the will is armed for 5 s */
    connect_will(&back, "back", 5);
    broker_client_gone(b, &back, 0);
    cr_assert(do_connect(&back, "back", false), "its session is there");
    broker_client_gone(b, &back, 0); /* resumed, then a plain clean close: no will */
    expect_none(&sub);
    crash_and_restart(&sub, NULL);
    do_connect(&sub, "watcher", true);
    do_subscribe(&sub, "w/#", 0, 0);
    broker_tick(b, due - 1); /* the log keeps its time (wall clock; here the same clock) */
    expect_none(&sub);
    broker_tick(b, due);
    expect_publish(&sub, "w/late", "late", 0, false, &g);
    expect_none(&sub); /* "back" resumed before the crash: its will was cancelled */
    broker_client_gone(b, &sub, 0);
}

Test(wal, with_a_log_a_stop_keeps_delayed_wills_for_after_the_restart)
{
    /*
     * A session that survives the restart keeps its delayed will: it goes
     * when due, not at the stop, and not if the client is back in time
     * [MQTT-3.1.3-9].
     */
    start_log(false);
    struct client sub, on, off;
    struct got g;
    do_connect(&sub, "watcher", true);
    do_subscribe(&sub, "w/#", 0, 0);
    connect_will(&off, "off", 5);
    uint64_t due = b->now_ms + 5000;
    broker_client_gone(b, &off, 0);
    connect_will(&on, "on", 5);
    cr_assert_eq(broker_delayed_wills_now(b), 0, "logged, not sent at the stop");
    cr_assert_not(broker_client_will_now(b, &on), "a connected client's delayed will waits too");
    expect_none(&sub);
    broker_client_gone(b, &on, 0); /* the stop closes it: its will is armed and logged */
    expect_none(&sub);
    crash_and_restart(&sub, NULL);
    do_connect(&sub, "watcher", true);
    do_subscribe(&sub, "w/#", 0, 0);
    broker_tick(b, due + 1000);
    expect_publish(&sub, "w/late", "late", 0, false, &g);
    expect_publish(&sub, "w/late", "late", 0, false, &g);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
}

static uint16_t got_publish(struct client *cl, const char *payload)
{
    struct got g;
    cr_assert(next_out(cl, &g), "no PUBLISH %s", payload);
    cr_assert_eq(g.pkt.type, MQTT_PUBLISH, "type %d want PUBLISH %s", g.pkt.type, payload);
    cr_assert_eq(g.pkt.u.publish.payload.len, strlen(payload));
    cr_assert(memcmp(g.pkt.u.publish.payload.ptr, payload, strlen(payload)) == 0, "payload != %s",
              payload);
    return g.pkt.u.publish.pkt_id;
}

Test(wal, a_delivery_sent_at_once_after_a_dropped_queue_entry_stays_in_flight)
{
    /* WAL_DROPQ leaves its entry in place: replay must still see C as sent, not queued. */
    lim.inflight_max = 2;
    start_log(false);
    struct client sub, pub, m2;
    do_connect(&sub, "sub", false);
    do_subscribe(&sub, "t", 1, 1);
    do_subscribe(&sub, "$share/g/s", 1, 1);
    do_connect(&pub, "pub", true);
    do_publish(&pub, "t", "A", 1, false, 1);
    do_publish(&pub, "t", "X", 1, false, 2);
    do_publish(&pub, "s", "B", 1, false, 3); /* queued: window full */
    uint16_t pa = got_publish(&sub, "A");
    uint16_t px = got_publish(&sub, "X");
    expect_none(&sub);
    do_connect(&m2, "m2", true);
    do_subscribe(&m2, "$share/g/s", 1, 1);
    broker_client_gone(b, &sub, 0); /* B goes to m2: WAL_DROPQ 0 */
    got_publish(&m2, "B");
    cr_assert(do_connect(&sub, "sub", false));
    cr_assert_eq(got_publish(&sub, "A"), pa);
    cr_assert_eq(got_publish(&sub, "X"), px);
    ack(&sub, MQTT_PUBACK, px);
    do_publish(&pub, "t", "C", 1, false, 4); /* sent at once */
    uint16_t pc = got_publish(&sub, "C");
    do_publish(&pub, "t", "D", 1, false, 5); /* queued */
    expect_none(&sub);
    ack(&sub, MQTT_PUBACK, pa); /* D goes: WAL_SENT */
    uint16_t pd = got_publish(&sub, "D");
    ack(&sub, MQTT_PUBACK, pd); /* D done; C still unacknowledged */
    broker_client_gone(b, &pub, 0);
    broker_client_gone(b, &m2, 0);
    crash_and_restart(&sub, NULL);
    /*
     * C is unacknowledged: it comes again, with its id [MQTT-4.4.0-1]; D
     * does not. B too: m2 left without acknowledging it, so it came back
     * to the group's other member, sent at once behind C.
     */
    cr_assert(do_connect(&sub, "sub", false));
    cr_assert_eq(got_publish(&sub, "C"), pc);
    got_publish(&sub, "B");
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
}

Test(wal, a_qos2_resend_after_a_reconnect_waits_for_the_first_copys_records)
{
    /* [MQTT-4.3.3-2] with one shard: the duplicate adopts the first copy's pending PUBREC. */
    start_log(true);
    struct client sub, pub;
    do_connect(&sub, "sub", false);
    struct mqtt_sub_entry e = {{(const uint8_t *)"q", 1}, 2};
    struct mqtt_pkt p = {.type = MQTT_SUBSCRIBE};
    p.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
    feed_pkt(&sub, &p, ver(&sub));
    take(b, 0);
    struct got g;
    cr_assert(next_out(&sub, &g));
    cr_assert_eq(g.pkt.type, MQTT_SUBACK);
    broker_client_gone(b, &sub, 0);
    take(b, 0);
    do_connect(&pub, "pub", false);
    take(b, 0);
    struct mqtt_pkt pp = publish_pkt("q", "M", 2, false, 5);
    feed_pkt(&pub, &pp, ver(&pub));
    expect_none(&pub); /* held on the log */
    broker_client_gone(b, &pub, 0); /* connection lost while held */
    cr_assert(do_connect(&pub, "pub", false));
    pp.u.publish.dup = true;
    feed_pkt(&pub, &pp, ver(&pub));
    bool early = next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC;
    cr_assert_not(early, "PUBREC for a duplicate before the first copy's records are durable");
    take(b, 0);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC, "PUBREC once durable");
    broker_client_gone(b, &pub, 0);
}

Test(wal, a_subscribe_repeated_after_a_takeover_waits_for_the_first_ones_record)
{
    /*
     * The first SUBSCRIBE's record is not durable when another connection
     * takes the session over and subscribes the same again: nothing new is
     * logged, but its SUBACK promises the same subscription.
     */
    start_log(true);
    struct client c1, c2;
    do_connect(&c1, "sub", false);
    take(b, 0);
    struct mqtt_sub_entry e = {{(const uint8_t *)"s", 1}, 1};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
    feed_pkt(&c1, &sp, MQTT_V311);
    expect_none(&c1); /* held on the log */
    cr_assert(do_connect(&c2, "sub", false));
    broker_client_gone(b, &c1, 0);
    feed_pkt(&c2, &sp, MQTT_V311);
    struct got g;
    bool early = next_out(&c2, &g) && g.pkt.type == MQTT_SUBACK;
    cr_assert_not(early, "SUBACK before the subscription's record is durable");
    take(b, 0);
    cr_assert(next_out(&c2, &g) && g.pkt.type == MQTT_SUBACK, "SUBACK once durable");
    /* Once durable, the same SUBSCRIBE again is answered at once. */
    feed_pkt(&c2, &sp, MQTT_V311);
    cr_assert(next_out(&c2, &g) && g.pkt.type == MQTT_SUBACK);
    broker_client_gone(b, &c2, 0);
}

static void connect_v5(struct client *cl, const char *id, bool clean, uint32_t expiry)
{
    broker_client_init(b, cl);
    struct mqtt_pkt p = connect_pkt(id, clean, MQTT_V5);
    p.u.connect.props.has = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
    p.u.connect.props.session_expiry = expiry;
    cr_assert_eq(feed_pkt(cl, &p, MQTT_V5), 0);
    struct got g;
    cr_assert(next_out(cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_CONNACK);
}

Test(wal, a_session_that_ended_does_not_come_back_from_the_log)
{
    /* Expiry set to 0 [MQTT-3.1.2-23 (v5)]: its end is not logged, its WAL_SESSION says it. */
    start_log(false);
    struct client c;
    connect_v5(&c, "c", false, 3600);
    do_subscribe(&c, "old/#", 1, 1);
    broker_client_gone(b, &c, 0);
    connect_v5(&c, "c", false, 0); /* resumed; from now on ends with its connection */
    broker_client_gone(b, &c, 0);  /* the session ends: nothing logged */
    connect_v5(&c, "c", false, 3600); /* a new session */
    broker_client_gone(b, &c, 0);
    crash_and_restart(NULL, NULL);
    /* The new session has no subscription: a publish to old/x must not be kept for it. */
    struct client pub;
    do_connect(&pub, "pub", true);
    do_publish(&pub, "old/x", "ghost", 1, false, 1);
    broker_client_gone(b, &pub, 0);
    connect_v5(&c, "c", false, 3600);
    struct got g;
    bool ghost = next_out(&c, &g) && g.pkt.type == MQTT_PUBLISH;
    cr_assert_not(ghost, "the ended session's subscription came back from the log");
    broker_client_gone(b, &c, 0);
}

Test(wal, a_pubrel_resent_after_a_reconnect_gets_pubcomp_once_durable)
{
    /* PUBCOMP frees the id for reuse: not before WAL_QOS2_REL is on disk. */
    start_log(true);
    struct client pub;
    do_connect(&pub, "pub", false);
    take(b, 0);
    struct mqtt_pkt pp = publish_pkt("nobody", "M", 2, false, 5);
    feed_pkt(&pub, &pp, ver(&pub));
    take(b, 0);
    struct got g;
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC);
    take(b, 0); /* WAL_QOS2_IN durable */
    ack(&pub, MQTT_PUBREL, 5); /* WAL_QOS2_REL in the open batch; PUBCOMP held */
    expect_none(&pub);
    broker_client_gone(b, &pub, 0);
    cr_assert(do_connect(&pub, "pub", false));
    ack(&pub, MQTT_PUBREL, 5);
    bool early = next_out(&pub, &g) && g.pkt.type == MQTT_PUBCOMP;
    cr_assert_not(early, "PUBCOMP before WAL_QOS2_REL is durable");
    take(b, 0);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBCOMP, "PUBCOMP once durable");
    broker_client_gone(b, &pub, 0);
}

Test(wal, a_retained_puback_waits_for_other_shards_deliveries)
{
    /* Its home's WAL_RETAIN durable is not enough: shard 0 logged a delivery too. */
    broker_free(b);
    struct broker *two[2];
    for (uint32_t i = 0; i < 2; i++) {
        two[i] = broker_new(&lim, i, 2);
        broker_tick(two[i], 1000);
        cr_assert_eq(broker_wal_start(two[i], true, 0), 0);
        seg_start(&seg[i], i, 2);
    }
    char tb[32], sb[32], pb[32];
    const char *topic = homed_on(tb, "t", 1, 2);
    const char *sid = homed_on(sb, "s", 0, 2);
    const char *pid = homed_on(pb, "p", 0, 2);
    b = two[0];
    struct client sub, pub;
    struct got g;
    do_connect(&sub, sid, false);
    struct mqtt_sub_entry e = {{(const uint8_t *)topic, (uint32_t)strlen(topic)}, 1};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
    feed_pkt(&sub, &sp, MQTT_V311);
    pump(two, 2);
    take(two[0], 0);
    take(two[1], 1);
    pump(two, 2);
    drain_dirty();
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_SUBACK);
    broker_client_gone(b, &sub, 0);
    take(two[0], 0);
    do_connect(&pub, pid, true);
    take(two[0], 0);
    struct mqtt_pkt pp = publish_pkt(topic, "R", 1, true, 1);
    feed_pkt(&pub, &pp, MQTT_V311);
    expect_none(&pub);
    pump(two, 2);     /* RETAIN_SET to the home, RETAIN_APPLY back: sub's delivery logged on 0 */
    take(two[1], 1);  /* the home's WAL_RETAIN durable: its ACK goes */
    pump(two, 2);
    drain_dirty();
    bool pending = broker_wal_pending(two[0]);
    bool acked = next_out(&pub, &g) && g.pkt.type == MQTT_PUBACK;
    cr_assert(pending, "shard 0 logged the subscriber's delivery");
    cr_assert_not(acked, "PUBACK before the subscriber's delivery on shard 0 is durable");
    take(two[0], 0);
    pump(two, 2);
    drain_dirty();
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBACK, "PUBACK once durable");
    broker_client_gone(b, &pub, 0);
    for (uint32_t i = 0; i < 2; i++)
        broker_free(two[i]);
    b = broker_new(&lim, 0, 1);
}

Test(wal, a_snapshot_torn_in_the_middle_keeps_the_state_before_it)
{
    /* A power cut inside a compaction's snapshot: the older segments still hold the truth. */
    start_log(false);
    struct client sub, pub;
    do_connect(&sub, "sub", false);
    do_subscribe(&sub, "s", 1, 1);
    broker_client_gone(b, &sub, 0);
    do_connect(&pub, "pub", true);
    do_publish(&pub, "s", "one", 1, false, 1);
    do_publish(&pub, "s", "two", 1, false, 2);
    broker_client_gone(b, &pub, 0);
    take(b, 0);
    /* A compaction: the next segment, a snapshot; power cut inside it. */
    seg_start(&seg[1], 0, 1);
    size_t base = seg[1].len;
    struct broker_wal_cursor cur = {0};
    broker_wal_snapshot(b, &cur, UINT32_MAX);
    take(b, 1);
    size_t off = base;
    struct wal_rec r;
    int n = 0;
    while (wal_read(seg[1].buf, seg[1].len, &off, &r) == 1 && ++n < 2) /* SESSION, RESET */
        ;
    cr_assert_eq(r.type, WAL_RESET);
    seg[1].len = off + 7; /* torn in the next record */
    broker_free(b);
    b = rebuilt(0, 1, 2);
    cr_assert_eq(rep.messages, 2, "durable, acknowledged messages lost to a torn snapshot");
    cr_assert_gt(problems, 0, "the broken snapshot is reported");
    struct got g;
    cr_assert(do_connect(&sub, "sub", false));
    expect_publish(&sub, "s", "one", 1, false, &g);
    expect_publish(&sub, "s", "two", 1, false, &g);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
}

/* ---- QoS 2 exactly once across a crash (msg.origin, core/wal.h) ---- */

/* @c (id @id) subscribes to @filter at QoS 2 on @br and gets its SUBACK once @br's log has it. */
static void subscribe_q2(struct broker **br, uint32_t n, struct broker *home, int segi,
                         struct client *c, const char *filter)
{
    b = home;
    struct mqtt_sub_entry e = {{(const uint8_t *)filter, (uint32_t)strlen(filter)}, 2};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
    feed_pkt(c, &sp, MQTT_V311);
    pump(br, n);
    take(home, segi);
    pump(br, n);
    struct got g;
    cr_assert(next_out(c, &g) && g.pkt.type == MQTT_SUBACK);
}

/*
 * How many PUBLISHes of @payload (NULL: any) @c has been sent, reading all
 * it was sent (acknowledging none).
 */
static int copies(struct client *c, const char *payload)
{
    int n = 0;
    struct got g;
    while (next_out(c, &g)) {
        if (g.pkt.type == MQTT_PUBLISH &&
            (!payload || (g.pkt.u.publish.payload.len == strlen(payload) &&
                          memcmp(g.pkt.u.publish.payload.ptr, payload, strlen(payload)) == 0)))
            n++;
    }
    return n;
}

/* A log with sync; @sub (persistent) subscribed to "s" at QoS 2; @pub connected. */
static void sub_q2_and_pub(struct client *sub, struct client *pub, bool pub_clean)
{
    start_log(true);
    do_connect(sub, "sub", false);
    subscribe_durably(sub, "s", 2);
    do_connect(pub, "pub", pub_clean);
}

Test(wal, with_sync_a_qos2_publish_waits_for_its_record_and_what_follows_waits_behind_it)
{
    /*
     * Sent before its record is durable, a crash would have the restarted
     * broker send it again under a new packet id, and a receiver that
     * delivers on PUBLISH would deliver it twice [MQTT-4.3.3-2]. The QoS 1
     * message after it keeps its place [MQTT-4.6.0-6].
     */
    struct client sub, pub;
    struct got g;
    sub_q2_and_pub(&sub, &pub, true);
    subscribe_durably(&sub, "o", 1);
    struct mqtt_pkt p = publish_pkt("s", "a", 2, false, 1);
    feed_pkt(&pub, &p, MQTT_V311);
    p = publish_pkt("o", "b", 1, false, 2);
    feed_pkt(&pub, &p, MQTT_V311);
    expect_none(&sub);
    take(b, 0);
    expect_publish(&sub, "s", "a", 2, false, &g);
    cr_assert_not(g.pkt.u.publish.dup, "its first copy: DUP 0 [MQTT-4.3.3-1]");
    expect_publish(&sub, "o", "b", 1, false, &g);
    cr_assert_not(g.pkt.u.publish.dup);
    expect_none(&sub);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC);
    take(b, 0);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBACK);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(wal, with_sync_a_qos2_publish_whose_record_a_crash_lost_was_never_sent)
{
    struct client sub, pub;
    struct got g;
    sub_q2_and_pub(&sub, &pub, false);
    take(b, 0);
    struct mqtt_pkt p = publish_pkt("s", "x", 2, false, 5);
    feed_pkt(&pub, &p, MQTT_V311);
    int before = copies(&sub, "x");
    /* The crash: nothing of the open batch was written. */
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
    broker_free(b);
    b = rebuilt_with(0, 1, 1, true);
    cr_assert(do_connect(&pub, "pub", false));
    p.u.publish.dup = true; /* the publisher never got its PUBREC: it resends */
    feed_pkt(&pub, &p, MQTT_V311);
    cr_assert(do_connect(&sub, "sub", false));
    take(b, 0);
    int after = 0;
    while (next_out(&sub, &g)) {
        if (g.pkt.type == MQTT_PUBLISH) {
            cr_assert_not(g.pkt.u.publish.dup, "new to this subscriber: DUP 0");
            after++;
        }
    }
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
    cr_assert_eq(before + after, 1, "exactly once: %d before the crash, %d after", before, after);
}

Test(wal, with_sync_queued_qos2_messages_all_go_after_one_sync_in_order)
{
    /* Not one per sync: the window fills with them at once, each sent once durable. */
    struct client sub, pub;
    struct got g;
    sub_q2_and_pub(&sub, &pub, true);
    broker_client_gone(b, &sub, 0);
    const char *msgs[] = {"m1", "m2", "m3"};
    for (uint16_t i = 0; i < 3; i++) {
        struct mqtt_pkt p = publish_pkt("s", msgs[i], 2, false, (uint16_t)(i + 1));
        feed_pkt(&pub, &p, MQTT_V311);
        take(b, 0);
        cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC);
    }
    cr_assert(do_connect(&sub, "sub", false));
    expect_none(&sub); /* each one's WAL_SENT first */
    take(b, 0);
    for (int i = 0; i < 3; i++) {
        expect_publish(&sub, "s", msgs[i], 2, false, &g);
        cr_assert_not(g.pkt.u.publish.dup);
    }
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

/*
 * @sub gets QoS 1 "one" (sent at once) and then QoS 2 "two" is held; its
 * PUBACK of "one" pumps the session while "two"'s batch is open or, with
 * @in_flight, taken but not yet durable: "two" still waits.
 */
static void pumped_by_an_ack_while_held(bool in_flight)
{
    struct client sub, pub;
    struct got g;
    sub_q2_and_pub(&sub, &pub, true);
    subscribe_durably(&sub, "o", 1);
    struct mqtt_pkt p = publish_pkt("o", "one", 1, false, 1);
    feed_pkt(&pub, &p, MQTT_V311);
    expect_publish(&sub, "o", "one", 1, false, &g);
    uint16_t id1 = g.pkt.u.publish.pkt_id;
    take(b, 0);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBACK);
    p = publish_pkt("s", "two", 2, false, 2);
    feed_pkt(&pub, &p, MQTT_V311);
    expect_none(&sub);
    const uint8_t *buf;
    size_t n;
    if (in_flight) {
        cr_assert(broker_wal_take(b, &buf, &n));
        wal_put_raw(&seg[0], buf, n);
    }
    ack(&sub, MQTT_PUBACK, id1);
    expect_none(&sub);
    if (in_flight)
        broker_wal_durable(b);
    else
        take(b, 0);
    expect_publish(&sub, "s", "two", 2, false, &g);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(wal, with_sync_an_ack_that_pumps_a_held_publish_before_its_batch_is_taken_does_not_send_it)
{
    pumped_by_an_ack_while_held(false);
}

Test(wal, with_sync_an_ack_that_pumps_a_held_publish_while_its_batch_is_written_does_not_send_it)
{
    pumped_by_an_ack_while_held(true);
}

Test(wal, with_sync_a_publish_that_cannot_be_held_closes_its_subscriber_who_gets_it_on_return)
{
    struct client sub, pub;
    sub_q2_and_pub(&sub, &pub, true);
    take(b, 0);
    /* The open batch's list of sessions to pump is full; its next growth fails. */
    for (uint64_t h = 1; h <= 4; h++)
        cr_assert(wal_pump_later(b, wal_batch(b), 0xdead0000u + h));
    cr_assert_eq(b->wal->open.pump.count, b->wal->open.pump.cap);
    fail_realloc_of = b->wal->open.pump.hash;
    struct mqtt_pkt p = publish_pkt("s", "x", 2, false, 1);
    feed_pkt(&pub, &p, MQTT_V311);
    cr_assert_null(fail_realloc_of, "the registration's growth failed");
    take(b, 0);
    drain_dirty();
    cr_assert_eq(copies(&sub, "x"), 0);
    cr_assert_eq(sub.state, CLIENT_CLOSING, "closed rather than left waiting for nothing");
    broker_client_gone(b, &sub, 0);
    cr_assert(do_connect(&sub, "sub", false));
    take(b, 0);
    cr_assert_eq(copies(&sub, "x"), 1);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(wal, with_sync_a_held_publish_whose_record_was_lost_waits_for_the_repair)
{
    /* As a_pubrel_resent_on_resume_waits_for_the_repair, for a held QoS 2 PUBLISH. */
    struct client sub, pub;
    sub_q2_and_pub(&sub, &pub, true);
    take(b, 0);
    wal_open_out(b)->nomem = true; /* the delivery's WAL_MSG is lost */
    struct mqtt_pkt p = publish_pkt("s", "x", 2, false, 1);
    feed_pkt(&pub, &p, MQTT_V311);
    cr_assert(wal_degraded(b));
    take(b, 0); /* lossy */
    drain_dirty();
    cr_assert_eq(copies(&sub, "x"), 0);
    cr_assert_eq(sub.state, CLIENT_CLOSING, "the subscriber goes, and resumes later");
    broker_client_gone(b, &sub, 0);
    /* It comes back while the log is still degraded. */
    cr_assert(do_connect(&sub, "sub", false));
    int early = copies(&sub, "x");
    take(b, 0);
    drain_dirty();
    early += copies(&sub, "x");
    cr_assert(wal_degraded(b));
    cr_assert_eq(early, 0, "a held PUBLISH went out (%d) before a whole log has its record",
                 early);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(wal, with_sync_a_qos2_publish_held_while_its_subscriber_reconnects_goes_once_without_dup)
{
    struct client sub, pub;
    struct got g;
    sub_q2_and_pub(&sub, &pub, true);
    struct mqtt_pkt p = publish_pkt("s", "y", 2, false, 3);
    feed_pkt(&pub, &p, MQTT_V311);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0); /* gone before its record is durable */
    take(b, 0);
    cr_assert(do_connect(&sub, "sub", false));
    expect_publish(&sub, "s", "y", 2, false, &g);
    cr_assert_not(g.pkt.u.publish.dup, "never sent before: DUP 0 [MQTT-4.3.3-1]");
    uint16_t id = g.pkt.u.publish.pkt_id;
    expect_none(&sub);
    ack(&sub, MQTT_PUBREC, id);
    take(b, 0);
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_PUBREL && g.pkt.u.ack.pkt_id == id);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

/* @n brokers of @n shards, each with a log (sync) in its own segment. */
static void brokers_new(struct broker **br, uint32_t n)
{
    broker_free(b);
    for (uint32_t i = 0; i < n; i++) {
        br[i] = broker_new(&lim, i, n);
        broker_tick(br[i], 1000);
        cr_assert_eq(broker_wal_start(br[i], true, 0), 0);
        seg_start(&seg[i], i, n);
    }
}

/*
 * A kill -9 of all @n: what their logs took survives, nothing else. Their
 * clients @sub (on @br[@sub_at]) and @pub (on @br[0]), when not NULL, go
 * with them: their goodbyes reach only the open batches, lost.
 */
static void brokers_crash(struct broker **br, uint32_t n, struct client *sub, uint32_t sub_at,
                          struct client *pub)
{
    if (sub)
        broker_client_gone(br[sub_at], sub, 0);
    if (pub)
        broker_client_gone(br[0], pub, 0);
    for (uint32_t i = 0; i < n; i++)
        broker_free(br[i]);
    for (uint32_t i = 0; i < n; i++)
        br[i] = rebuilt_with(i, n, (int)n, true); /* fsync = always again, as it was */
}

/*
 * After a crash: @pub (id @pid, homed on @br[0]) comes back and sends @pp
 * again (DUP, as it never got PUBREC); its PUBREC comes once the @n shards
 * have settled.
 */
static void resend_after_crash(struct broker **br, uint32_t n, struct client *pub,
                               const char *pid, struct mqtt_pkt *pp)
{
    b = br[0];
    cr_assert(do_connect(pub, pid, false));
    pp->u.publish.dup = true;
    feed_pkt(pub, pp, MQTT_V311);
    settle(br, n, 3);
    struct got g;
    cr_assert(next_out(pub, &g) && g.pkt.type == MQTT_PUBREC, "the resend is acknowledged");
}

Test(wal, a_qos2_message_uncommitted_at_a_crash_is_not_delivered_twice_one_shard)
{
    /*
     * Its delivery is durable and its PUBREC was on its way when the broker
     * died (the commit, WAL_QOS2_IN, was not): the publisher resends it
     * [MQTT-4.3.3-2 of 3.1.1's receiver side, MQTT-4.4.0-1]; the
     * subscriber that had it must not get it again [MQTT-4.3.3-3 (v5)].
     */
    struct broker *one[1];
    brokers_new(one, 1);
    struct client sub, pub;
    b = one[0];
    do_connect(&sub, "sub", false);
    subscribe_q2(one, 1, one[0], 0, &sub, "q");
    do_connect(&pub, "pub", false);
    take(b, 0);
    struct mqtt_pkt pp = publish_pkt("q", "once", 2, false, 5);
    feed_pkt(&pub, &pp, MQTT_V311);
    take(b, 0); /* the delivery and WAL_QOS2_PEND */
    cr_assert_eq(copies(&sub, "once"), 1);
    /* PUBREC 5 is out, its commit only in the open batch: lost with the broker. */
    brokers_crash(one, 1, &sub, 0, &pub);
    resend_after_crash(one, 1, &pub, "pub", &pp);
    cr_assert(do_connect(&sub, "sub", false));
    cr_assert_eq(copies(&sub, "once"), 1, "exactly once: the restored copy only");
    /* A new message with the same id afterwards is a new message. */
    ack(&pub, MQTT_PUBREL, 5);
    take(b, 0);
    pp = publish_pkt("q", "next", 2, false, 5);
    feed_pkt(&pub, &pp, MQTT_V311);
    take(b, 0);
    cr_assert_eq(copies(&sub, "next"), 1);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

/*
 * Two shards with a log (fsync = always): a persistent QoS 2 subscriber
 * @sub (its id into @sid, homed on shard 1) of "q", and a persistent
 * publisher @pub (@pid, homed on shard 0), connected; b is shard 0.
 */
static void pub_and_sub(struct broker **two, char *pid, struct client *pub, char *sid,
                        struct client *sub)
{
    homed_on(pid, "pub", 0, 2);
    homed_on(sid, "sub", 1, 2);
    brokers_new(two, 2);
    b = two[1];
    do_connect(sub, sid, false);
    subscribe_q2(two, 2, two[1], 1, sub, "q");
    b = two[0];
    do_connect(pub, pid, false);
    take(b, 0);
}

Test(wal, a_qos2_message_uncommitted_at_a_crash_is_not_delivered_twice_across_shards)
{
    struct broker *two[2];
    char pid[32], sid[32];
    struct client sub, pub;
    pub_and_sub(two, pid, &pub, sid, &sub);
    struct mqtt_pkt pp = publish_pkt("q", "once", 2, false, 5);
    feed_pkt(&pub, &pp, MQTT_V311);
    pump(two, 2);
    cr_assert_eq(copies(&sub, "once"), 0, "the crossing waits for WAL_QOS2_PEND");
    take(two[0], 0);
    pump(two, 2);
    cr_assert_eq(copies(&sub, "once"), 0, "the PUBLISH waits for its record on shard 1");
    take(two[1], 1); /* the delivery is durable: shard 1 sends it and acknowledges */
    pump(two, 2);
    cr_assert_eq(copies(&sub, "once"), 1);
    struct got g;
    b = two[0];
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC);
    /* Shard 0's commit is not taken: the crash loses it. */
    brokers_crash(two, 2, &sub, 1, &pub);
    resend_after_crash(two, 2, &pub, pid, &pp);
    b = two[1];
    cr_assert(do_connect(&sub, sid, false));
    cr_assert_eq(copies(&sub, "once"), 1, "exactly once across the shards");
    broker_client_gone(b, &sub, 0);
    b = two[0];
    broker_client_gone(b, &pub, 0);
    pump(two, 2);
    broker_free(two[1]);
}

Test(wal, who_had_an_uncommitted_qos2_message_survives_a_compaction_and_a_second_crash)
{
    /*
     * The subscriber completes the message and its shard compacts before
     * the publisher's shard commits it: the snapshot keeps who had it
     * (WAL_HAS). After the crash, the restart's own snapshot keeps it too,
     * through a second crash before the publisher resends.
     */
    struct broker *two[2];
    char pid[32], sid[32];
    struct client sub, pub;
    pub_and_sub(two, pid, &pub, sid, &sub);
    struct mqtt_pkt pp = publish_pkt("q", "once", 2, false, 5);
    feed_pkt(&pub, &pp, MQTT_V311);
    take(two[0], 0);
    pump(two, 2);
    b = two[1];
    expect_none(&sub); /* the PUBLISH waits for its record on shard 1 */
    take(two[1], 1);
    pump(two, 2); /* shard 0 commits: in its open batch only */
    uint16_t id = got_publish(&sub, "once");
    ack(&sub, MQTT_PUBREC, id);
    take(two[1], 1);
    struct got g;
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_PUBREL);
    ack(&sub, MQTT_PUBCOMP, id); /* done: the session keeps nothing of it */
    take(two[1], 1);
    /* Shard 1 compacts: its segment is replaced by a snapshot. */
    wal_out_free(&seg[1]);
    seg_start(&seg[1], 1, 2);
    struct broker_wal_cursor cur = {0};
    cr_assert(broker_wal_snapshot(two[1], &cur, UINT32_MAX));
    take(two[1], 1);
    brokers_crash(two, 2, &sub, 1, &pub);
    /* The restart writes its own snapshots (net/wal_io does at start-up); a second crash. */
    for (uint32_t i = 0; i < 2; i++) {
        wal_out_free(&seg[i]);
        seg_start(&seg[i], i, 2);
        cur = (struct broker_wal_cursor){0};
        cr_assert(broker_wal_snapshot(two[i], &cur, UINT32_MAX));
        take(two[i], (int)i);
    }
    brokers_crash(two, 2, NULL, 0, NULL);
    resend_after_crash(two, 2, &pub, pid, &pp);
    b = two[1];
    cr_assert(do_connect(&sub, sid, false));
    cr_assert_eq(copies(&sub, "once"), 0, "it completed before the crash: never again");
    broker_client_gone(b, &sub, 0);
    b = two[0];
    broker_client_gone(b, &pub, 0);
    pump(two, 2);
    broker_free(two[1]);
}

Test(wal, a_qos2_message_uncommitted_at_a_crash_reaches_a_shared_group_once)
{
    /* The group had it through one member: the resend goes to none of its members. */
    struct broker *two[2];
    char pid[32], m1[32], m2[32];
    homed_on(pid, "pub", 0, 2);
    homed_on(m1, "ma", 1, 2);
    homed_on(m2, "mb", 1, 2);
    brokers_new(two, 2);
    struct client a, c, pub;
    b = two[1];
    do_connect(&a, m1, false);
    subscribe_q2(two, 2, two[1], 1, &a, "$share/g/q");
    do_connect(&c, m2, false);
    subscribe_q2(two, 2, two[1], 1, &c, "$share/g/q");
    b = two[0];
    do_connect(&pub, pid, false);
    take(b, 0);
    struct mqtt_pkt pp = publish_pkt("q", "once", 2, false, 5);
    feed_pkt(&pub, &pp, MQTT_V311);
    take(two[0], 0);
    pump(two, 2);
    take(two[1], 1);
    pump(two, 2);
    cr_assert_eq(copies(&a, "once") + copies(&c, "once"), 1);
    b = two[1];
    broker_client_gone(b, &c, 0);
    brokers_crash(two, 2, &a, 1, &pub);
    resend_after_crash(two, 2, &pub, pid, &pp);
    b = two[1];
    cr_assert(do_connect(&a, m1, false));
    cr_assert(do_connect(&c, m2, false));
    cr_assert_eq(copies(&a, "once") + copies(&c, "once"), 1, "the group gets it once");
    broker_client_gone(b, &a, 0);
    broker_client_gone(b, &c, 0);
    b = two[0];
    broker_client_gone(b, &pub, 0);
    pump(two, 2);
    broker_free(two[1]);
}

Test(wal, with_sync_a_disconnected_members_messages_stay_on_its_shard)
{
    /*
     * A member of a shared group goes away with messages unacknowledged;
     * its session goes on. Under fsync = always they are not handed to a
     * member on another shard (a crash between the two shards' logs would
     * lose them): they wait for their member's return [MQTT 5.0 4.8.2].
     */
    struct broker *two[2];
    char pid[32], xid[32], yid[32];
    homed_on(pid, "pub", 0, 2);
    homed_on(xid, "x", 1, 2);
    homed_on(yid, "y", 0, 2);
    lim.inflight_max = 10; /* all four go out at once: nothing waits in a queue */
    brokers_new(two, 2);
    struct client x, y, pub;
    b = two[1];
    do_connect(&x, xid, false);
    subscribe_q2(two, 2, two[1], 1, &x, "$share/g/t");
    b = two[0];
    do_connect(&y, yid, false);
    subscribe_q2(two, 2, two[0], 0, &y, "$share/g/t");
    do_connect(&pub, pid, true);
    static const char *const pay[4] = {"m1", "m2", "m3", "m4"};
    for (uint16_t n = 0; n < 4; n++) {
        b = two[0];
        struct mqtt_pkt pp = publish_pkt("t", pay[n], 1, false, (uint16_t)(n + 1));
        feed_pkt(&pub, &pp, MQTT_V311);
        settle(two, 2, 2);
    }
    b = two[0];
    int at_y = copies(&y, NULL);
    cr_assert(at_y < 4, "x was given some");
    b = two[1];
    broker_client_gone(b, &x, 0); /* unacknowledged; the session goes on */
    settle(two, 2, 2);
    b = two[0];
    cr_assert_eq(copies(&y, NULL), 0, "handed to a member on another shard");
    b = two[1];
    cr_assert(do_connect(&x, xid, false));
    int at_x = 0;
    struct got g;
    while (next_out(&x, &g)) { /* each acknowledged: the window lets the next one out */
        cr_assert_eq(g.pkt.type, MQTT_PUBLISH);
        at_x++;
        ack(&x, MQTT_PUBACK, g.pkt.u.publish.pkt_id);
        take(two[1], 1);
    }
    cr_assert_eq(at_x + at_y, 4, "x gets its own again, once each: %d + %d", at_x, at_y);
    broker_client_gone(b, &x, 0);
    b = two[0];
    broker_client_gone(b, &y, 0);
    broker_client_gone(b, &pub, 0);
    pump(two, 2);
    broker_free(two[1]);
}

/* ---- found by an independent review of the above ---- */

/* Shard @i of one compacts with nothing else in flight: its stream is replaced by a snapshot. */
static void compact_all(struct broker *br, uint32_t i, uint32_t n)
{
    wal_out_free(&seg[i]);
    seg_start(&seg[i], i, n);
    struct broker_wal_cursor cur = {0};
    cr_assert(broker_wal_snapshot(br, &cur, UINT32_MAX));
    take(br, (int)i);
}

Test(wal, a_qos2_message_whose_publisher_left_before_its_pubrec_is_committed)
{
    struct broker *one[1];
    brokers_new(one, 1);
    struct client sub, pub;
    b = one[0];
    do_connect(&sub, "sub", false);
    subscribe_q2(one, 1, one[0], 0, &sub, "q");
    do_connect(&pub, "pub", false);
    take(b, 0);
    struct mqtt_pkt pp = publish_pkt("q", "once", 2, false, 5);
    feed_pkt(&pub, &pp, MQTT_V311);
    expect_none(&sub); /* the PUBLISH waits for its record */
    /* The publisher's connection drops before its PUBREC: its wait completes with nobody. */
    broker_client_gone(b, &pub, 0);
    take(b, 0);
    uint16_t id = got_publish(&sub, "once");
    ack(&sub, MQTT_PUBREC, id);
    take(b, 0);
    struct got g;
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_PUBREL);
    ack(&sub, MQTT_PUBCOMP, id);
    take(b, 0);
    /* Two compactions (e.g. the publisher stays away for a while). */
    compact_all(b, 0, 1);
    compact_all(b, 0, 1);
    brokers_crash(one, 1, &sub, 0, NULL);
    b = one[0];
    cr_assert(do_connect(&pub, "pub", false));
    pp.u.publish.dup = true;
    feed_pkt(&pub, &pp, MQTT_V311);
    take(b, 0);
    cr_assert(do_connect(&sub, "sub", false));
    int n = copies(&sub, "once");
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
    cr_assert_eq(n, 0, "the subscriber completed it before the crash, yet got it %d more time(s)",
                 n);
}

Test(wal, a_retained_resend_still_goes_to_a_later_subscribe)
{
    struct broker *one[1];
    brokers_new(one, 1);
    struct client sub, pub;
    b = one[0];
    do_connect(&sub, "sub", false);
    subscribe_q2(one, 1, one[0], 0, &sub, "r");
    do_connect(&pub, "pub", false);
    take(b, 0);
    struct mqtt_pkt pp = publish_pkt("r", "v1", 2, true, 5);
    feed_pkt(&pub, &pp, MQTT_V311);
    expect_none(&sub); /* the PUBLISH waits for its record */
    broker_client_gone(b, &pub, 0); /* no commit */
    take(b, 0);
    uint16_t id = got_publish(&sub, "v1");
    ack(&sub, MQTT_PUBREC, id);
    take(b, 0);
    struct got g;
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_PUBREL);
    ack(&sub, MQTT_PUBCOMP, id);
    take(b, 0);
    brokers_crash(one, 1, &sub, 0, NULL);
    b = one[0];
    cr_assert(do_connect(&pub, "pub", false));
    pp.u.publish.dup = true;
    feed_pkt(&pub, &pp, MQTT_V311);
    take(b, 0);
    cr_assert(do_connect(&sub, "sub", false));
    cr_assert_eq(copies(&sub, "v1"), 0, "not again live: correct");
    /* A new subscription: its retained message is due [MQTT-3.3.1-6, MQTT-3.8.4-3 (3.1.1)]. */
    struct mqtt_sub_entry e = {{(const uint8_t *)"r", 1}, 2};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 8, .count = 1, .entries = &e};
    feed_pkt(&sub, &sp, MQTT_V311);
    take(b, 0);
    int n = copies(&sub, "v1");
    /* a fresh session gets it, for comparison */
    struct client other;
    do_connect(&other, "other", true);
    do_subscribe(&other, "r", 0, 0);
    int m = copies(&other, "v1");
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
    broker_client_gone(b, &other, 0);
    cr_assert_eq(m, 1, "another session gets the retained message (%d)", m);
    cr_assert_eq(n, 1, "re-subscribing session got its retained message %d times", n);
}

/* The payload of the first retained PUBLISH @c was sent, copied into @out. */
static bool retained_payload(struct client *c, char *out, size_t cap)
{
    struct got g;
    while (next_out(c, &g)) {
        if (g.pkt.type == MQTT_PUBLISH && g.pkt.u.publish.retain) {
            size_t n = g.pkt.u.publish.payload.len;
            if (n > cap - 1)
                n = cap - 1;
            memcpy(out, g.pkt.u.publish.payload.ptr, n);
            out[n] = 0;
            return true;
        }
    }
    return false;
}

/*
 * A clean client @id on @br[@i] (of two) subscribes to @topic: the payload
 * of the retained message it is sent, into @out; false when none.
 */
static bool retained_at(struct broker **br, uint32_t i, const char *id, const char *topic,
                        char *out, size_t cap)
{
    struct client c;
    struct mqtt_sub_entry e = {{(const uint8_t *)topic, (uint32_t)strlen(topic)}, 0};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 9, .count = 1, .entries = &e};
    b = br[i];
    do_connect(&c, id, true);
    feed_pkt(&c, &sp, MQTT_V311);
    pump(br, 2);
    bool got = retained_payload(&c, out, cap);
    broker_client_gone(br[i], &c, 0);
    return got;
}

Test(wal, replicas_agree_when_a_tagged_retained_set_is_followed_by_an_untagged_one)
{
    struct broker *two[2];
    char pid[32], cid[32], topic[32], s0[32], s1[32];
    homed_on(pid, "pub", 0, 2);
    homed_on(cid, "cc", 0, 2);
    homed_on(topic, "t", 0, 2); /* shard 0 orders the topic */
    homed_on(s0, "sa", 0, 2);
    homed_on(s1, "sb", 1, 2);
    brokers_new(two, 2);
    struct client pub, c;
    b = two[0];
    do_connect(&pub, pid, false);
    take(two[0], 0);
    do_connect(&c, cid, true);
    struct mqtt_pkt p1 = publish_pkt(topic, "A", 2, true, 5);
    feed_pkt(&pub, &p1, MQTT_V311); /* tagged: its RETAIN_APPLYs wait for the batch */
    struct mqtt_pkt p2 = publish_pkt(topic, "B", 1, true, 6);
    feed_pkt(&c, &p2, MQTT_V311); /* untagged: its RETAIN_APPLYs go now */
    pump(two, 2);
    settle(two, 2, 4);
    /* Clean subscribers on each shard ask for the retained message. */
    char r0[16] = "", r1[16] = "";
    bool g0 = retained_at(two, 0, s0, topic, r0, sizeof(r0));
    bool g1 = retained_at(two, 1, s1, topic, r1, sizeof(r1));
    b = two[0];
    broker_client_gone(b, &c, 0);
    broker_client_gone(b, &pub, 0);
    pump(two, 2);
    broker_free(two[1]);
    cr_assert(g0 && g1, "both got a retained message (%d %d)", g0, g1);
    cr_assert_str_eq(r0, r1, "shard 0's replica has %s, shard 1's %s", r0, r1);
}

Test(wal, a_birth_then_its_will_leave_the_will_retained)
{
    /*
     * The status pattern: retained QoS 2 "online", then the connection
     * drops and its will says "offline": the will is what stays retained.
     */
    struct broker *two[2];
    char pid[32], topic[32], s0[32], s1[32];
    homed_on(pid, "pub", 0, 2);
    homed_on(topic, "st", 1, 2); /* shard 1 orders the topic */
    homed_on(s0, "sa", 0, 2);
    homed_on(s1, "sb", 1, 2);
    brokers_new(two, 2);
    struct client pub;
    b = two[0];
    broker_client_init(b, &pub);
    struct mqtt_pkt cp = connect_pkt(pid, false, MQTT_V311);
    cp.u.connect.will = true;
    cp.u.connect.will_qos = 1;
    cp.u.connect.will_retain = true;
    cp.u.connect.will_topic = (struct mqtt_str){(const uint8_t *)topic, (uint32_t)strlen(topic)};
    cp.u.connect.will_payload = (struct mqtt_str){(const uint8_t *)"offline", 7};
    cr_assert_eq(feed_pkt(&pub, &cp, MQTT_V311), 0);
    struct got g;
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_CONNACK);
    take(two[0], 0);
    struct mqtt_pkt p1 = publish_pkt(topic, "online", 2, true, 5);
    feed_pkt(&pub, &p1, MQTT_V311);
    /* Its connection drops: the will goes now. */
    broker_client_will_now(b, &pub);
    broker_client_gone(b, &pub, 0);
    pump(two, 2);
    settle(two, 2, 4);
    /* Clean subscribers on each shard ask for the retained message. */
    char r0[16] = "", r1[16] = "";
    bool g0 = retained_at(two, 0, s0, topic, r0, sizeof(r0));
    bool g1 = retained_at(two, 1, s1, topic, r1, sizeof(r1));
    b = two[0];
    pump(two, 2);
    broker_free(two[1]);
    cr_assert(g0 && g1, "both got a retained message (%d %d)", g0, g1);
    cr_assert_str_eq(r0, "offline", "shard 0 retains %s", r0);
    cr_assert_str_eq(r1, "offline", "shard 1 retains %s", r1);
}

/* Complete every QoS 2 PUBLISH @c is sent (window by window); how many carried @payload. */
static int drain_count(struct client *c, const char *payload)
{
    int n = 0;
    for (int round = 0; round < 50; round++) {
        struct got g;
        bool any = false;
        while (next_out(c, &g)) {
            if (g.pkt.type == MQTT_PUBLISH) {
                any = true;
                if (g.pkt.u.publish.payload.len == strlen(payload) &&
                    memcmp(g.pkt.u.publish.payload.ptr, payload, strlen(payload)) == 0)
                    n++;
                ack(c, MQTT_PUBREC, g.pkt.u.publish.pkt_id);
            } else if (g.pkt.type == MQTT_PUBREL) {
                any = true;
                ack(c, MQTT_PUBCOMP, g.pkt.u.ack.pkt_id);
            }
        }
        if (!any)
            break;
    }
    return n;
}

Test(wal, a_tagged_message_passed_on_before_its_pend_is_durable_reaches_its_group_once)
{
    /*
     * X (shard 0, window full) has the tagged message queued when it leaves
     * its group in the same iteration: the message is passed to Y on shard 1
     * at once, while its WAL_QOS2_PEND is still in shard 0's open batch.
     */
    lim.inflight_max = 1;
    struct broker *two[2];
    char pid[32], xid[32], yid[32];
    homed_on(pid, "pub", 0, 2);
    homed_on(xid, "xx", 0, 2);
    homed_on(yid, "yy", 1, 2);
    brokers_new(two, 2);
    struct client x, y, pub;
    b = two[1];
    do_connect(&y, yid, false);
    subscribe_q2(two, 2, two[1], 1, &y, "$share/g/q");
    take(two[1], 1);
    b = two[0];
    do_connect(&x, xid, false);
    subscribe_q2(two, 2, two[0], 0, &x, "$share/g/q");
    b = two[0];
    do_connect(&pub, pid, false);
    take(two[0], 0);
    char payload[16] = "";
    struct mqtt_pkt pp;
    bool queued_at_x = false;
    for (int k = 1; k < 12 && !queued_at_x; k++) {
        snprintf(payload, sizeof(payload), "m%d", k);
        uint64_t before = broker_stats(two[0])->queued;
        pp = publish_pkt("q", payload, 2, false, (uint16_t)k);
        b = two[0];
        feed_pkt(&pub, &pp, MQTT_V311);
        if (broker_stats(two[0])->queued > before) {
            queued_at_x = true;
            break;
        }
        settle(two, 2, 3);
        struct got g;
        while (next_out(&pub, &g))
            if (g.pkt.type == MQTT_PUBREC) {
                ack(&pub, MQTT_PUBREL, g.pkt.u.ack.pkt_id);
            }
        for (int i = 0; i < 2; i++) {
            take(two[0], 0);
            pump(two, 2);
        }
        while (next_out(&pub, &g))
            ;
    }
    cr_assert(queued_at_x, "a message queued at X");
    /* Same iteration: X leaves the group; its queued message goes to Y on shard 1. */
    b = two[0];
    broker_client_gone(two[0], &x, 0); /* X's connection drops: its group messages go to others */
    pump(two, 2);
    take(two[1], 1); /* Y's delivery is durable; shard 0's batch (the PEND) is not */
    /* kill -9 */
    b = two[0];
    broker_client_gone(two[0], &pub, 0);
    broker_client_gone(two[1], &y, 0);
    for (uint32_t i = 0; i < 2; i++)
        broker_free(two[i]);
    /* Y's goodbye is lost with its broker too. */
    for (uint32_t i = 0; i < 2; i++)
        two[i] = rebuilt(i, 2, 2);
    b = two[0];
    cr_assert(do_connect(&pub, pid, false));
    pp.u.publish.dup = true;
    feed_pkt(&pub, &pp, MQTT_V311);
    settle(two, 2, 4);
    b = two[0];
    cr_assert(do_connect(&x, xid, false));
    int nx = drain_count(&x, payload);
    b = two[1];
    cr_assert(do_connect(&y, yid, false));
    int ny = drain_count(&y, payload);
    broker_client_gone(two[1], &y, 0);
    broker_client_gone(two[0], &x, 0);
    broker_client_gone(two[0], &pub, 0);
    pump(two, 2);
    broker_free(two[1]);
    b = two[0];
    cr_assert_eq(nx + ny, 1, "group g got %s %d times after the restart (x %d, y %d)", payload,
                 nx + ny, nx, ny);
}

Test(wal, a_log_of_a_later_version_is_refused_not_misread)
{
    struct wal_out o = {0};
    size_t at = wal_begin(&o, WAL_SEGMENT);
    wal_put_u64(&o, WAL_MAGIC);
    wal_put_u32(&o, WAL_VERSION + 1);
    wal_put_u32(&o, 1);
    wal_put_u32(&o, 0);
    wal_put_u32(&o, 1);
    wal_put_u32(&o, 0);
    wal_end(&o, at);
    struct wal_seg s = {o.buf, o.len, "later", true, o.len};
    struct broker *nb = broker_new(&lim, 0, 1);
    cr_assert_not_null(nb);
    problems = 0;
    cr_assert_eq(broker_wal_replay(nb, &s, 1, 0, problem, NULL, &rep), -EPROTONOSUPPORT);
    cr_assert_eq(problems, 1, "the segment is named");
    broker_free(nb);
    wal_out_free(&o);
}

Test(wal, a_recovered_id_refused_by_the_acl_is_free_again_for_a_new_message)
{
    /*
     * The resend of a message uncommitted at the crash is refused (v5:
     * PUBREC 0x87 ends the exchange [MQTT-4.3.3-4 (v5)]): the id is free, so
     * the next message with it is new and reaches everyone, also those
     * that had the refused one.
     */
    struct broker *one[1];
    brokers_new(one, 1);
    struct client sub, pub;
    b = one[0];
    do_connect(&sub, "sub", false);
    subscribe_q2(one, 1, one[0], 0, &sub, "#");
    connect_v5(&pub, "pub", false, 3600);
    take(b, 0);
    struct mqtt_pkt pp = publish_pkt("a/x", "first", 2, false, 5);
    feed_pkt(&pub, &pp, MQTT_V5);
    take(b, 0);
    cr_assert_eq(copies(&sub, "first"), 1);
    brokers_crash(one, 1, &sub, 0, &pub); /* its commit was in the open batch */
    b = one[0];
    struct acl *deny = acl_new();
    unsigned bad_line;
    const char *bad_name;
    struct acl_rule_spec r = {.filter = "a/#", .filter_len = 3, .access = ACL_PUBLISH,
                              .allow = false, .who = ACL_WHO_ALL};
    cr_assert_eq(acl_rule_add(deny, &r), 0);
    acl_set_default(deny, true);
    cr_assert_eq(acl_finish(deny, &bad_line, &bad_name), 0);
    broker_set_acl(b, deny);
    connect_v5(&pub, "pub", false, 3600);
    pp.u.publish.dup = true;
    feed_pkt(&pub, &pp, MQTT_V5);
    struct got g;
    bool early = next_out(&pub, &g);
    cr_assert_not(early, "0x87 frees the id: it waits for the id's release to be durable");
    take(b, 0);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC);
    cr_assert_eq(g.pkt.u.ack.rc, MQTT_RC_NOT_AUTHORIZED);
    pp = publish_pkt("b/y", "second", 2, false, 5); /* a new message, the same id */
    feed_pkt(&pub, &pp, MQTT_V5);
    take(b, 0);
    cr_assert(do_connect(&sub, "sub", false));
    take(b, 0); /* "second" leaves the queue: its WAL_SENT first */
    int second = 0;
    while (next_out(&sub, &g)) { /* "first" (restored), then "second" */
        if (g.pkt.type == MQTT_PUBLISH && g.pkt.u.publish.payload.len == 6 &&
            memcmp(g.pkt.u.publish.payload.ptr, "second", 6) == 0)
            second++;
    }
    cr_assert_eq(second, 1, "the new message reaches the one that had the old");
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
    broker_set_acl(b, NULL);
    acl_free(deny);
}

Test(wal, a_kept_message_keeps_every_subscription_identifier_across_a_restart)
{
    /* Two subscriptions match, each with its identifier: both come back [MQTT-3.3.4-3]. */
    start_log(false);
    struct client c, pub;
    connect_v5(&c, "c", false, 3600);
    static const char *const filters[2] = {"a/#", "a/b"};
    for (uint32_t k = 0; k < 2; k++) {
        uint32_t id = 7 + k;
        struct mqtt_sub_entry e = {{(const uint8_t *)filters[k], 3}, 1};
        struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
        sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 11, .count = 1, .entries = &e};
        sp.u.subscribe.props.has = MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID);
        sp.u.subscribe.props.sub_ids = &id;
        sp.u.subscribe.props.sub_id_count = 1;
        feed_pkt(&c, &sp, MQTT_V5);
        struct got g;
        cr_assert(next_out(&c, &g) && g.pkt.type == MQTT_SUBACK);
    }
    broker_client_gone(b, &c, 0);
    do_connect(&pub, "pub", true);
    do_publish(&pub, "a/b", "both", 1, false, 1);
    broker_client_gone(b, &pub, 0);
    crash_and_restart(NULL, NULL);
    connect_v5(&c, "c", false, 3600);
    struct got g;
    cr_assert(next_out(&c, &g) && g.pkt.type == MQTT_PUBLISH);
    uint32_t seen = 0;
    struct mqtt_prop_iter it;
    struct mqtt_prop pr;
    mqtt_prop_iter_init(&it, &g.pkt.u.publish.props);
    while (mqtt_prop_next(&it, &pr)) {
        if (pr.id == MQTT_PROP_SUBSCRIPTION_ID)
            seen |= 1u << (pr.num - 7);
    }
    cr_assert_eq(seen, 3u, "identifiers 7 and 8 (seen mask %u)", seen);
    broker_client_gone(b, &c, 0);
}

Test(wal, a_pubrel_resent_on_a_resume_waits_for_its_pubrec_record)
{
    /*
     * The subscriber's PUBREC is logged; before it is durable the session
     * is taken over. The PUBREL resent on the new connection lets the
     * receiver forget the message, so it waits for that record: a crash
     * first would send the message again to a receiver done with it.
     */
    start_log(true);
    struct client sub, sub2, pub;
    struct got g;
    do_connect(&sub, "sub", false);
    struct mqtt_sub_entry e = {{(const uint8_t *)"s", 1}, 2};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
    feed_pkt(&sub, &sp, MQTT_V311);
    take(b, 0);
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_SUBACK);
    do_connect(&pub, "pub", true);
    struct mqtt_pkt p = publish_pkt("s", "q2", 2, false, 4);
    feed_pkt(&pub, &p, MQTT_V311);
    take(b, 0);
    uint16_t id = got_publish(&sub, "q2");
    ack(&sub, MQTT_PUBREC, id); /* WAL_PUBREC in the open batch; its PUBREL waits */
    expect_none(&sub);
    cr_assert(do_connect(&sub2, "sub", false)); /* taken over before the record is durable */
    broker_client_gone(b, &sub, 0);
    bool early = next_out(&sub2, &g) && g.pkt.type == MQTT_PUBREL;
    cr_assert_not(early, "PUBREL resent before its PUBREC record is durable");
    take(b, 0);
    cr_assert(next_out(&sub2, &g) && g.pkt.type == MQTT_PUBREL, "PUBREL once durable");
    cr_assert_eq(g.pkt.u.ack.pkt_id, id);
    ack(&sub2, MQTT_PUBCOMP, id);
    take(b, 0);
    broker_client_gone(b, &sub2, 0);
    broker_client_gone(b, &pub, 0);
}

/* ---- found by a second review ---- */

/* A deny-publish ACL on @filter (3 bytes) for everyone; acl_free() it. */
static struct acl *deny_publish(const char *filter)
{
    struct acl *a = acl_new();
    unsigned bad_line;
    const char *bad_name;
    struct acl_rule_spec r = {.filter = filter, .filter_len = strlen(filter),
                              .access = ACL_PUBLISH, .allow = false, .who = ACL_WHO_ALL};
    cr_assert_not_null(a);
    cr_assert_eq(acl_rule_add(a, &r), 0);
    acl_set_default(a, true);
    cr_assert_eq(acl_finish(a, &bad_line, &bad_name), 0);
    return a;
}

Test(wal, a_v5_refusal_of_a_recovered_id_survives_a_crash_before_it_is_durable)
{
    /* The id's release must be durable before the 0x87, or a crash brings the origin back. */
    struct broker *one[1];
    brokers_new(one, 1);
    struct client sub, pub;
    struct got g;
    b = one[0];
    do_connect(&sub, "sub", false);
    subscribe_q2(one, 1, one[0], 0, &sub, "#");
    connect_v5(&pub, "pub", false, 3600);
    take(b, 0);
    struct mqtt_pkt pp = publish_pkt("a/x", "first", 2, false, 5);
    feed_pkt(&pub, &pp, MQTT_V5);
    take(b, 0);
    cr_assert_eq(copies(&sub, "first"), 1);
    brokers_crash(one, 1, &sub, 0, &pub); /* the commit is lost */
    b = one[0];
    struct acl *deny = deny_publish("a/#");
    broker_set_acl(b, deny);
    connect_v5(&pub, "pub", false, 3600);
    pp.u.publish.dup = true;
    feed_pkt(&pub, &pp, MQTT_V5); /* refused: its 0x87 waits for the release */
    cr_assert_not(next_out(&pub, &g));
    broker_set_acl(b, NULL);
    brokers_crash(one, 1, NULL, 0, &pub); /* the release is lost, and no 0x87 went out */
    b = one[0];
    broker_set_acl(b, deny);
    connect_v5(&pub, "pub", false, 3600);
    feed_pkt(&pub, &pp, MQTT_V5); /* the client resends again: refused again */
    take(b, 0);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC);
    cr_assert_eq(g.pkt.u.ack.rc, MQTT_RC_NOT_AUTHORIZED);
    broker_set_acl(b, NULL);
    acl_free(deny);
    brokers_crash(one, 1, NULL, 0, &pub); /* now the release was durable */
    b = one[0];
    connect_v5(&pub, "pub", false, 3600);
    pp = publish_pkt("b/y", "second", 2, false, 5);
    feed_pkt(&pub, &pp, MQTT_V5);
    take(b, 0);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC && g.pkt.u.ack.rc == 0);
    cr_assert(do_connect(&sub, "sub", false));
    take(b, 0); /* "second" leaves the queue: its WAL_SENT first */
    int second = copies(&sub, "second");
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
    cr_assert_eq(second, 1, "an acknowledged message reached its subscriber %d times", second);
}

Test(wal, a_v5_refusal_of_a_committed_duplicate_frees_its_id_too)
{
    /* 0x87 ends the exchange [MQTT-4.3.3-4 (v5)]: the next message with the id is new. */
    struct client sub, pub;
    struct got g;
    do_connect(&sub, "sub", false);
    do_subscribe(&sub, "#", 2, 2);
    connect_v5(&pub, "pub", false, 3600);
    struct mqtt_pkt pp = publish_pkt("a/x", "first", 2, false, 5);
    feed_pkt(&pub, &pp, MQTT_V5);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC); /* lost on the way */
    broker_client_gone(b, &pub, 0);
    struct acl *deny = deny_publish("a/#");
    broker_set_acl(b, deny);
    connect_v5(&pub, "pub", false, 3600);
    pp.u.publish.dup = true;
    feed_pkt(&pub, &pp, MQTT_V5);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC);
    cr_assert_eq(g.pkt.u.ack.rc, MQTT_RC_NOT_AUTHORIZED);
    pp = publish_pkt("b/y", "second", 2, false, 5);
    feed_pkt(&pub, &pp, MQTT_V5);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC);
    int second = copies(&sub, "second");
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
    broker_set_acl(b, NULL);
    acl_free(deny);
    cr_assert_eq(second, 1, "an acknowledged message reached its subscriber %d times", second);
}

/* Restarts as net/wal_io does them: each a new segment that begins with the snapshot. */
#define GENS_MAX 4
static struct wal_out gen_seg[GENS_MAX];
static int gen_now;

static void gen_take(struct broker *br)
{
    const uint8_t *p;
    size_t n;
    if (broker_wal_take(br, &p, &n)) {
        wal_put_raw(&gen_seg[gen_now], p, n);
        broker_wal_durable(br);
    }
}

/* A broker rebuilt (fsync = always) from every segment so far, its snapshot in a new one. */
static struct broker *gen_restart(void)
{
    struct wal_seg segs[GENS_MAX];
    for (int g = 0; g <= gen_now; g++)
        segs[g] = (struct wal_seg){gen_seg[g].buf, gen_seg[g].len, "seg", true, gen_seg[g].len};
    struct broker *nb = broker_new(&lim, 0, 1);
    cr_assert_not_null(nb);
    broker_tick(nb, 1000);
    cr_assert_eq(broker_wal_replay(nb, segs, (size_t)gen_now + 1, 0, problem, NULL, &rep), 0);
    cr_assert_eq(broker_wal_start(nb, true, 0), 0);
    cr_assert_lt(gen_now + 1, GENS_MAX);
    gen_now++;
    seg_start(&gen_seg[gen_now], 0, 1);
    struct broker_wal_cursor cur = {0};
    cr_assert(broker_wal_snapshot(nb, &cur, UINT32_MAX));
    gen_take(nb);
    return nb;
}

Test(wal, a_packet_id_freed_by_pubcomp_is_not_reused_before_its_release_is_durable)
{
    /*
     * After a restart the subscriber completes the restored message (its
     * WAL_DONE in the open batch) and the queued one goes out. Under the
     * id just freed, a crash would make the restart's PUBREL for the old
     * flow release the new message at a receiver that delivers on PUBREL,
     * and then the broker would send it again as new: twice.
     */
    lim.inflight_max = 1; /* one in flight: the second waits in the queue */
    broker_free(b);
    b = broker_new(&lim, 0, 1);
    broker_tick(b, 1000);
    cr_assert_eq(broker_wal_start(b, true, 0), 0);
    gen_now = 0;
    seg_start(&gen_seg[0], 0, 1);
    struct client sub, pub;
    struct got g;
    do_connect(&sub, "sub", false);
    struct mqtt_sub_entry e = {{(const uint8_t *)"t", 1}, 2};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
    feed_pkt(&sub, &sp, MQTT_V311);
    gen_take(b);
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_SUBACK);
    do_connect(&pub, "pub", true);
    struct mqtt_pkt p1 = publish_pkt("t", "m1", 2, false, 1);
    feed_pkt(&pub, &p1, MQTT_V311);
    gen_take(b);
    struct mqtt_pkt p2 = publish_pkt("t", "m2", 2, false, 2);
    feed_pkt(&pub, &p2, MQTT_V311);
    gen_take(b);
    uint16_t id1 = got_publish(&sub, "m1");
    expect_none(&sub); /* m2 is queued */
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
    broker_free(b);
    b = gen_restart();
    cr_assert(do_connect(&sub, "sub", false));
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_PUBLISH && g.pkt.u.publish.dup);
    cr_assert_eq(g.pkt.u.publish.pkt_id, id1);
    ack(&sub, MQTT_PUBREC, id1);
    gen_take(b);
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_PUBREL);
    ack(&sub, MQTT_PUBCOMP, id1); /* the receiver delivered m1 on the PUBREL */
    expect_none(&sub); /* m2, a QoS 2 PUBLISH, waits for its record */
    gen_take(b);
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_PUBLISH);
    cr_assert_not(g.pkt.u.publish.dup, "its first copy: DUP 0 [MQTT-4.3.3-1]");
    uint16_t held_id = g.pkt.u.publish.pkt_id; /* the receiver holds m2 under it */
    cr_assert_neq(held_id, id1, "m2 under the id whose release is not durable yet");
    ack(&sub, MQTT_PUBREC, held_id);
    /* A crash before the next take; the restart resends what its log says. */
    broker_client_gone(b, &sub, 0);
    broker_free(b);
    b = gen_restart();
    cr_assert(do_connect(&sub, "sub", false));
    int delivered_m2 = 0;
    bool holding = true; /* a receiver that delivers on PUBREL, holding m2 under held_id */
    for (int round = 0; round < 10; round++) {
        bool any = false;
        while (next_out(&sub, &g)) {
            any = true;
            if (g.pkt.type == MQTT_PUBREL) {
                if (holding && g.pkt.u.ack.pkt_id == held_id) {
                    delivered_m2++;
                    holding = false;
                }
                ack(&sub, MQTT_PUBCOMP, g.pkt.u.ack.pkt_id);
            } else if (g.pkt.type == MQTT_PUBLISH) {
                if (!holding || g.pkt.u.publish.pkt_id != held_id) {
                    held_id = g.pkt.u.publish.pkt_id;
                    holding = true;
                }
                ack(&sub, MQTT_PUBREC, g.pkt.u.publish.pkt_id);
            }
        }
        gen_take(b);
        if (!any)
            break;
    }
    broker_client_gone(b, &sub, 0);
    for (int i = 0; i <= gen_now; i++)
        wal_out_free(&gen_seg[i]);
    cr_assert_eq(delivered_m2, 1, "m2 reached the QoS 2 subscriber %d times", delivered_m2);
}

/* ---- promises the log cannot keep (allocation failure): fail, never acknowledge ---- */

/* @cl (a persistent session) subscribes to @filter at QoS 1: SUBACK once durable. */
static void subscribe_durable(struct client *cl, const char *filter)
{
    struct mqtt_sub_entry e = {{(const uint8_t *)filter, (uint32_t)strlen(filter)}, 1};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
    feed_pkt(cl, &sp, MQTT_V311);
    take(b, 0);
    struct got g;
    cr_assert(next_out(cl, &g) && g.pkt.type == MQTT_SUBACK);
}

/* A QoS 1 PUBLISH of @topic from @cl (id @id), under fsync = always: held for the log. */
static void publish_held(struct client *cl, const char *topic, const char *payload, uint16_t id)
{
    struct mqtt_pkt p = publish_pkt(topic, payload, 1, false, id);
    feed_pkt(cl, &p, MQTT_V311);
    expect_none(cl);
}

Test(wal, a_record_lost_to_allocation_failure_fails_pubacks_until_a_snapshot_repairs_the_log)
{
    start_log(true);
    struct client sub, p1, p2, p3;
    do_connect(&sub, "sub", false);
    subscribe_durable(&sub, "s");
    broker_client_gone(b, &sub, 0);
    take(b, 0);

    /* The WAL_MSG of the first message cannot be written (its buffer cannot grow). */
    do_connect(&p1, "p1", true);
    wal_open_out(b)->nomem = true;
    publish_held(&p1, "s", "one", 1);
    cr_assert_eq(broker_wal_lost(b), 1u, "the lost record is counted");
    cr_assert(broker_wal_repair_wanted(b), "a compaction is wanted");
    take(b, 0);
    expect_none(&p1); /* never a PUBACK for what the log does not hold */
    cr_assert_eq(p1.state, CLIENT_CLOSING, "its publisher is closed instead");

    /* Until the log is repaired, a later message's PUBACK fails too: it may depend on the loss. */
    do_connect(&p2, "p2", true);
    publish_held(&p2, "s", "two", 2);
    take(b, 0);
    expect_none(&p2);
    cr_assert_eq(p2.state, CLIENT_CLOSING);
    cr_assert_eq(b->stats.wait_failed, 2u);

    /* A compaction's snapshot (begun after the loss) is durable: the log is whole again. */
    struct broker_wal_cursor c = {0};
    cr_assert(broker_wal_snapshot(b, &c, UINT32_MAX));
    cr_assert_not(broker_wal_repair_wanted(b), "a snapshot began after the loss");
    take(b, 0);
    bool repaired;
    cr_assert(broker_wal_compacted(b, true, &repaired), "its snapshot is whole");
    cr_assert(repaired, "and it repairs the log");
    do_connect(&p3, "p3", true);
    publish_held(&p3, "s", "three", 3);
    take(b, 0);
    struct got g;
    cr_assert(next_out(&p3, &g) && g.pkt.type == MQTT_PUBACK, "PUBACK again once repaired");
    broker_client_gone(b, &p1, 0);
    broker_client_gone(b, &p2, 0);
    broker_client_gone(b, &p3, 0);

    /* After a crash: the acknowledged message, and the two the snapshot kept. */
    crash_and_restart(NULL, NULL);
    cr_assert(do_connect(&sub, "sub", false));
    expect_publish(&sub, "s", "one", 1, false, &g);
    expect_publish(&sub, "s", "two", 1, false, &g);
    expect_publish(&sub, "s", "three", 1, false, &g);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
}

Test(wal, a_loss_while_a_snapshot_runs_needs_the_next_one)
{
    start_log(true);
    struct client sub, pub;
    do_connect(&sub, "sub", false);
    subscribe_durable(&sub, "s");
    broker_client_gone(b, &sub, 0);
    take(b, 0);
    struct broker_wal_cursor c = {0};
    cr_assert(broker_wal_snapshot(b, &c, UINT32_MAX)); /* begun before the loss */
    do_connect(&pub, "pub", true);
    wal_open_out(b)->nomem = true;
    publish_held(&pub, "s", "lost", 1);
    cr_assert(broker_wal_repair_wanted(b));
    take(b, 0);
    bool repaired;
    cr_assert_not(broker_wal_compacted(b, true, &repaired),
                  "a snapshot begun before the loss is not whole: the older segments stay");
    cr_assert_not(repaired, "nor does it repair the log");
    cr_assert(broker_wal_repair_wanted(b));
    cr_assert_eq(pub.state, CLIENT_CLOSING);
    c = (struct broker_wal_cursor){0};
    cr_assert(broker_wal_snapshot(b, &c, UINT32_MAX));
    take(b, 0);
    cr_assert(broker_wal_compacted(b, true, &repaired));
    cr_assert(repaired);
    broker_client_gone(b, &pub, 0);
}

Test(wal, a_wait_the_log_cannot_take_closes_its_client_without_an_acknowledgement)
{
    start_log(true);
    struct client pub;
    do_connect(&pub, "pub", false);
    take(b, 0);
    wait_new(b, &pub, MQTT_PUBACK, 8, 1); /* the shard's wait slots exist */
    wait_cancel(b, &pub);
    /* The batch's array of waits cannot grow [wal_hold()]: the wait fails at once. */
    fail_reallocs = 1;
    int r = wait_for_log(b, &pub, MQTT_PUBACK, 9, 0);
    fail_reallocs = 0;
    cr_assert_lt(r, 0, "the client is closed");
    cr_assert_eq(pub.state, CLIENT_CLOSING);
    cr_assert_eq(pub._wait, 0u, "no longer held");
    take(b, 0);
    expect_none(&pub);
    cr_assert_eq(b->stats.wait_failed, 1u);
    cr_assert_eq(broker_wal_lost(b), 1u, "counted");
    cr_assert_not(broker_wal_repair_wanted(b), "no record was lost: nothing to repair");
    broker_client_gone(b, &pub, 0);
}

Test(wal, an_acknowledgement_another_shard_cannot_defer_fails_the_wait_there)
{
    struct broker *two[2];
    brokers_new(two, 2);
    b = two[0];
    char pb[32];
    struct client pub;
    do_connect(&pub, homed_on(pb, "p", 0, 2), true);
    /* Shard 0 waits for shard 1's durable acknowledgement of what it logged for it. */
    uint64_t token = wait_new(two[0], &pub, MQTT_PUBACK, 3, 1);
    cr_assert_neq(token, 0u);
    fail_reallocs = 1; /* shard 1's array of deferred acknowledgements cannot grow */
    wal_ack_later(two[1], 0, token);
    fail_reallocs = 0;
    cr_assert_eq(broker_wal_lost(two[1]), 1u);
    pump(two, 2); /* an XMSG_NACK, not an XMSG_ACK */
    drain_dirty();
    expect_none(&pub);
    cr_assert_eq(pub.state, CLIENT_CLOSING, "the wait failed: its client is closed");
    cr_assert_eq(two[0]->stats.wait_failed, 1u);

    /* Shard 1 loses a record: the acknowledgement it defers next goes as a NACK too. */
    struct client pub2;
    do_connect(&pub2, homed_on(pb, "q", 0, 2), true);
    token = wait_new(two[0], &pub2, MQTT_PUBACK, 4, 1);
    wal_open_out(two[1])->nomem = true;
    wal_session_end(two[1], (const uint8_t *)"gone", 4);
    cr_assert(broker_wal_repair_wanted(two[1]));
    wal_ack_later(two[1], 0, token);
    take(two[1], 1);
    pump(two, 2);
    drain_dirty();
    expect_none(&pub2);
    cr_assert_eq(pub2.state, CLIENT_CLOSING);
    broker_client_gone(two[0], &pub, 0);
    broker_client_gone(two[0], &pub2, 0);
    broker_free(two[1]);
}

/* Fill @br's open batch's array of waits (with a stale token): its next growth fails. */
static void tokens_full_then_fail(struct broker *br, struct client *cl)
{
    uint64_t stale = wait_new(br, cl, MQTT_PUBACK, 99, 1);
    cr_assert_neq(stale, 0u);
    wait_cancel(br, cl);
    cr_assert_eq(wal_hold(br, stale), 0);
    while (br->wal->open.token_count < br->wal->open.token_cap)
        cr_assert_eq(wal_hold(br, stale), 0);
    fail_realloc_of = br->wal->open.tokens;
}

/* A retained publish on its topic's home shard whose wait the log cannot take: no crash, no ack. */
static void retained_home_wal_hold_fails(uint8_t qos)
{
    struct broker *two[2];
    brokers_new(two, 2);
    b = two[0];
    char pb[32], tb[32];
    struct client pub;
    do_connect(&pub, homed_on(pb, "p", 0, 2), true);
    const char *topic = homed_on(tb, "t", 0, 2);
    take(b, 0);
    tokens_full_then_fail(two[0], &pub);
    struct mqtt_pkt p = publish_pkt(topic, "r", qos, true, qos ? 3 : 0);
    cr_assert_lt(feed_pkt(&pub, &p, MQTT_V311), 0, "the publisher is closed");
    fail_realloc_of = NULL;
    pump(two, 2);
    take(two[0], 0);
    take(two[1], 1);
    pump(two, 2);
    expect_none(&pub);
    cr_assert_eq(pub.state, CLIENT_CLOSING);
    broker_client_gone(two[0], &pub, 0);
    broker_free(two[1]);
}

Test(wal, a_retained_qos1_publish_whose_wait_the_log_cannot_take_closes_its_client)
{
    retained_home_wal_hold_fails(1);
}

Test(wal, a_retained_qos0_publish_whose_wait_the_log_cannot_take_closes_its_client)
{
    retained_home_wal_hold_fails(0);
}

Test(wal, a_subscribe_repeated_while_the_log_is_degraded_gets_no_early_suback)
{
    start_log(true);
    struct client sub, pub;
    do_connect(&sub, "sub", false);
    take(b, 0);
    wal_open_out(b)->nomem = true; /* the WAL_SUB is lost */
    struct mqtt_sub_entry e = {{(const uint8_t *)"s", 1}, 1};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
    feed_pkt(&sub, &sp, MQTT_V311);
    take(b, 0);
    expect_none(&sub);
    cr_assert_eq(sub.state, CLIENT_CLOSING, "its SUBACK failed");
    broker_client_gone(b, &sub, 0);
    /* It comes back and subscribes again: the log is still degraded. */
    cr_assert(do_connect(&sub, "sub", false));
    feed_pkt(&sub, &sp, MQTT_V311);
    expect_none(&sub);
    take(b, 0);
    expect_none(&sub);
    cr_assert_eq(sub.state, CLIENT_CLOSING, "no SUBACK before the log is whole");
    broker_client_gone(b, &sub, 0);
    /* Repaired, the same SUBSCRIBE gets its SUBACK, and the subscription survives a crash. */
    struct broker_wal_cursor c = {0};
    cr_assert(broker_wal_snapshot(b, &c, UINT32_MAX));
    take(b, 0);
    bool repaired;
    cr_assert(broker_wal_compacted(b, true, &repaired) && repaired);
    cr_assert(do_connect(&sub, "sub", false));
    feed_pkt(&sub, &sp, MQTT_V311);
    take(b, 0);
    struct got g;
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_SUBACK);
    crash_and_restart(&sub, NULL);
    cr_assert(do_connect(&sub, "sub", false));
    do_connect(&pub, "pub", true);
    do_publish(&pub, "s", "m", 1, false, 1);
    cr_assert(next_out(&sub, &g) && g.pkt.type == MQTT_PUBLISH, "the subscription came back");
    broker_client_gone(b, &pub, 0);
    broker_client_gone(b, &sub, 0);
}

/* A persistent QoS 2 subscriber "sub" of "q" with "x" in flight; returns its id. */
static uint16_t sub_with_x(struct client *sub)
{
    struct client pub;
    do_connect(sub, "sub", false);
    struct mqtt_sub_entry e = {{(const uint8_t *)"q", 1}, 2};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
    feed_pkt(sub, &sp, MQTT_V311);
    take(b, 0);
    struct got g;
    cr_assert(next_out(sub, &g) && g.pkt.type == MQTT_SUBACK);
    do_connect(&pub, "pub", true);
    struct mqtt_pkt pp = publish_pkt("q", "x", 2, false, 1);
    feed_pkt(&pub, &pp, MQTT_V311);
    take(b, 0);
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBREC);
    broker_client_gone(b, &pub, 0);
    take(b, 0);
    return got_publish(sub, "x");
}

Test(wal, a_pubrel_whose_own_pubrec_record_was_lost_is_not_sent)
{
    start_log(true);
    struct client sub;
    uint16_t id = sub_with_x(&sub);
    wal_open_out(b)->nomem = true; /* the WAL_PUBREC is lost; nothing else is open */
    ack(&sub, MQTT_PUBREC, id);
    expect_none(&sub);
    take(b, 0);
    expect_none(&sub); /* a PUBREL lets the receiver forget the message */
    cr_assert_eq(sub.state, CLIENT_CLOSING, "the client goes instead");
    crash_and_restart(&sub, NULL);
    cr_assert(do_connect(&sub, "sub", false));
    cr_assert_eq(copies(&sub, "x"), 1, "the message is sent again: it was never released");
    broker_client_gone(b, &sub, 0);
}

Test(wal, a_pubrel_resent_on_resume_waits_for_the_repair)
{
    start_log(true);
    struct client sub, other;
    uint16_t id = sub_with_x(&sub);
    do_connect(&other, "other", false); /* logs WAL_SESSION: the open batch is unsettled */
    wal_open_out(b)->nomem = true;      /* the WAL_PUBREC is lost */
    ack(&sub, MQTT_PUBREC, id);
    expect_none(&sub);
    take(b, 0);
    expect_none(&sub);
    cr_assert_eq(sub.state, CLIENT_CLOSING, "the PUBREL was not sent: the client goes");
    broker_client_gone(b, &sub, 0);
    /* It comes back while the log is still degraded: no PUBREL yet. */
    cr_assert(do_connect(&sub, "sub", false));
    struct got g;
    bool pubrel = next_out(&sub, &g) && g.pkt.type == MQTT_PUBREL;
    take(b, 0);
    pubrel = pubrel || (next_out(&sub, &g) && g.pkt.type == MQTT_PUBREL);
    cr_assert_not(pubrel, "a PUBREL went out before its PUBREC record is in a whole log");
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &other, 0);
}

Test(wal, a_qos2_resend_after_a_nack_is_routed_again_never_acknowledged_early)
{
    struct broker *two[2];
    char pid[32], sid[32];
    struct client sub, pub;
    pub_and_sub(two, pid, &pub, sid, &sub);
    struct mqtt_pkt pp = publish_pkt("q", "lost", 2, false, 5);
    feed_pkt(&pub, &pp, MQTT_V311);
    pump(two, 2);
    take(two[0], 0);                    /* WAL_QOS2_PEND durable: the crossing leaves */
    wal_open_out(two[1])->nomem = true; /* shard 1 loses the WAL_MSG */
    pump(two, 2);
    b = two[1];
    cr_assert_eq(copies(&sub, "lost"), 0, "the PUBLISH waits for its record");
    take(two[1], 1); /* lossy: XMSG_NACK */
    pump(two, 2);
    drain_dirty();
    cr_assert_eq(copies(&sub, "lost"), 0, "its record may be what was lost");
    cr_assert_eq(sub.state, CLIENT_CLOSING, "the subscriber goes, and resumes later");
    b = two[0];
    drain_dirty();
    expect_none(&pub);
    cr_assert_eq(pub.state, CLIENT_CLOSING, "the wait failed");
    broker_client_gone(two[0], &pub, 0);
    /* The publisher comes back and resends (DUP) while shard 1 is still degraded. */
    cr_assert(do_connect(&pub, pid, false));
    pp.u.publish.dup = true;
    feed_pkt(&pub, &pp, MQTT_V311);
    expect_none(&pub);
    pump(two, 2);
    take(two[0], 0);
    take(two[1], 1);
    pump(two, 2);
    drain_dirty();
    expect_none(&pub); /* no PUBREC for a message no whole log holds */
    take(two[1], 1); /* the resend's delivery there is written (still lossy: NACK again) */
    pump(two, 2);
    drain_dirty();
    expect_none(&pub);
    /* Crash: the subscriber gets the message again (its resend's copy), not none. */
    brokers_crash(two, 2, &sub, 1, &pub);
    b = two[1];
    cr_assert(do_connect(&sub, sid, false));
    cr_assert_geq(copies(&sub, "lost"), 1);
    broker_client_gone(b, &sub, 0);
    broker_free(two[1]);
    b = two[0];
}

Test(wal, a_crossing_whose_list_of_groups_cannot_be_made_still_waits_for_that_shard)
{
    /*
     * A QoS 1 message crosses to shard 1 for a plain subscriber and a
     * shared group's member there. The crossing's list of groups, which
     * carries the publisher's wait, cannot be allocated: the PUBACK still
     * waits for shard 1's log.
     */
    struct broker *two[2];
    char pid[32], sid[32], mid[32];
    homed_on(pid, "pub", 0, 2);
    homed_on(sid, "sub", 1, 2);
    homed_on(mid, "member", 1, 2);
    brokers_new(two, 2);
    struct client sub, member, pub;
    b = two[1];
    do_connect(&sub, sid, false);
    subscribe_q2(two, 2, two[1], 1, &sub, "t");
    b = two[1];
    do_connect(&member, mid, false);
    subscribe_q2(two, 2, two[1], 1, &member, "$share/g/t");
    b = two[0];
    do_connect(&pub, pid, true);
    uint64_t nomem = two[0]->stats.route_nomem;
    struct mqtt_pkt pp = publish_pkt("t", "m", 1, false, 3);
    fail_malloc_size = sizeof(uint64_t); /* the list: the publisher's wait alone */
    feed_pkt(&pub, &pp, MQTT_V311);
    fail_malloc_size = 0;
    pump(two, 2);
    take(two[0], 0);
    pump(two, 2);
    drain_dirty();
    expect_none(&pub); /* not before shard 1 logged its deliveries */
    take(two[1], 1);
    pump(two, 2);
    drain_dirty();
    struct got g;
    cr_assert(next_out(&pub, &g) && g.pkt.type == MQTT_PUBACK, "once shard 1 logged them");
    cr_assert_eq(two[0]->stats.route_nomem, nomem + 1, "the list was not made");
    b = two[1];
    cr_assert_eq(copies(&sub, "m"), 1);
    cr_assert_eq(copies(&member, "m"), 1);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &member, 0);
    b = two[0];
    broker_client_gone(b, &pub, 0);
    pump(two, 2);
    broker_free(two[1]);
}

Test(wal, a_shared_message_passed_on_without_a_relay_fails_its_publishers_wait)
{
    /*
     * Shard 1 passes a shared group's message on to shard 2 but has no
     * memory for the relay that would wait for shard 2's log: the
     * publisher's wait fails (closed, never acknowledged), not acknowledged
     * before shard 2 has logged the message.
     */
    struct broker *three[3];
    struct client c1, c2, p;
    three_with_a_member_passing_on(three, &c1, &c2, &p);
    /* Shard 1's wait slots are full, and the next growth fails. */
    struct broker *one = three[1];
    uint64_t fillers[64];
    uint32_t filled = 0;
    do {
        cr_assert_lt(filled, 64u);
        fillers[filled] = wait_relay(one, 0, 0xdead00000001ull, 1); /* stale at shard 0 */
        cr_assert_neq(fillers[filled++], 0u);
    } while (one->wait_used < one->wait_cap);
    fail_realloc_of = one->waits;
    /* The group's shards take turns: one of the two goes through shard 1. */
    bool passed = false;
    for (uint16_t n = 1; n <= 2 && !passed; n++) {
        b = three[0];
        struct mqtt_pkt pp = publish_pkt("t", "m", 1, false, n);
        feed_pkt(&p, &pp, MQTT_V311);
        pump(three, 3);
        passed = fail_realloc_of == NULL;
        for (int round = 0; round < 3; round++) {
            take(three[0], 0);
            take(three[1], 1);
            pump(three, 3);
        }
        b = three[0];
        drain_dirty();
        struct got g;
        if (!passed) {
            take(three[2], 2);
            pump(three, 3);
            cr_assert(next_out(&p, &g) && g.pkt.type == MQTT_PUBACK, "PUBACK %u", n);
            b = three[2];
            expect_publish(&c2, "t", "m", 1, false, &g);
            ack(&c2, MQTT_PUBACK, g.pkt.u.publish.pkt_id);
            continue;
        }
        expect_none(&p); /* before shard 2 logged it */
        take(three[2], 2);
        pump(three, 3);
        drain_dirty();
        expect_none(&p); /* nor after: no relay could count shard 2's acknowledgement */
        cr_assert_eq(p.state, CLIENT_CLOSING, "the wait failed: the publisher is closed");
        cr_assert_eq(three[0]->stats.wait_failed, 1u);
    }
    fail_realloc_of = NULL;
    cr_assert(passed, "one of the two went through shard 1");
    for (uint32_t i = 0; i < filled; i++)
        (void)wait_done(one, fillers[i]);
    pump(three, 3);
    three_free(three, &c2, &p);
}

/*
 * Two shards with logs (sync): members of $share/g/t a (homed on shard 0)
 * and bm (homed on shard 1, offline); pub (shard 0) sent "m", which a got
 * and left unacknowledged. Its session goes on offline, and keeps it
 * (fsync = always: not handed to another shard), until gf_end() ends it.
 */
struct gf {
    struct broker *two[2];
    char aid[32], bid[32];
    struct client a, bm, pub;
};

static void gf_start(struct gf *f)
{
    char pid[32];
    homed_on(pid, "pub", 0, 2);
    homed_on(f->aid, "a", 0, 2);
    homed_on(f->bid, "b", 1, 2);
    brokers_new(f->two, 2);
    b = f->two[1];
    do_connect(&f->bm, f->bid, false);
    subscribe_q2(f->two, 2, f->two[1], 1, &f->bm, "$share/g/t");
    broker_client_gone(f->two[1], &f->bm, 0);
    b = f->two[0];
    do_connect(&f->a, f->aid, false);
    subscribe_q2(f->two, 2, f->two[0], 0, &f->a, "$share/g/t");
    b = f->two[0];
    do_connect(&f->pub, pid, true);
    struct mqtt_pkt pp = publish_pkt("t", "m", 1, false, 1);
    feed_pkt(&f->pub, &pp, MQTT_V311);
    settle(f->two, 2, 2);
    b = f->two[0];
    struct got g;
    cr_assert(next_out(&f->pub, &g) && g.pkt.type == MQTT_PUBACK);
    cr_assert_eq(copies(&f->a, "m"), 1, "the member online here has it");
    broker_client_gone(f->two[0], &f->a, 0);
    settle(f->two, 2, 2);
}

/* a comes back with a Clean Start: its session ends, and hands the message on. */
static void gf_end(struct gf *f)
{
    b = f->two[0];
    cr_assert_not(do_connect(&f->a, f->aid, true), "its session ends");
}

/* A kill -9 of both shards, a and pub connected: what their logs took survives. */
static void gf_crash(struct gf *f)
{
    brokers_crash(f->two, 2, &f->a, 0, &f->pub);
}

/* The shards tick at 2 s (open gives go again at the first tick) and settle. */
static void gf_tick(struct gf *f, uint64_t now_ms)
{
    broker_tick(f->two[0], now_ms);
    broker_tick(f->two[1], now_ms);
    settle(f->two, 2, 3);
}

/* How often @c (id @id, homed on shard @i) gets "m" as it comes back; then it goes again. */
static int gf_copies(struct gf *f, struct client *c, const char *id, uint32_t i)
{
    b = f->two[i];
    cr_assert(do_connect(c, id, false), "its session came back");
    int n = copies(c, "m");
    broker_client_gone(f->two[i], c, 0);
    settle(f->two, 2, 1);
    return n;
}

/* The end of the test: shard 1 is freed, shard 0 is the fixture's. */
static void gf_free(struct gf *f)
{
    broker_free(f->two[1]);
    b = f->two[0];
}

Test(wal, a_message_an_ending_session_hands_to_another_shard_survives_a_crash_before_it_is_logged)
{
    /*
     * a's session ends (a Clean Start) holding the group's message: it
     * goes to bm, on shard 1 [MQTT 5.0 4.8.2]. Shard 0's log has the
     * session's end; the crash comes before shard 1's log has the
     * delivery. The message was acknowledged to its publisher: it must
     * reach the group after the restart.
     */
    struct gf f;
    gf_start(&f);
    gf_end(&f);
    take(f.two[0], 0);
    pump(f.two, 2); /* shard 1 has it, in its open batch only */
    cr_assert_eq(f.two[0]->give_count, 1u, "open until shard 1 has logged it");
    gf_crash(&f);
    cr_assert_eq(f.two[0]->give_count, 1u, "open again after the restart");
    gf_tick(&f, 2000);
    cr_assert_eq(gf_copies(&f, &f.bm, f.bid, 1), 1);
    cr_assert_eq(f.two[0]->give_count, 0u, "closed once shard 1 logged it");
    gf_free(&f);
}

Test(wal, a_message_handed_on_and_logged_there_is_not_handed_on_again_after_a_crash)
{
    struct gf f;
    gf_start(&f);
    gf_end(&f);
    settle(f.two, 2, 3); /* both logs have it, then WAL_GIVEN */
    cr_assert_eq(f.two[0]->give_count, 0u);
    gf_crash(&f);
    cr_assert_eq(f.two[0]->give_count, 0u, "nothing to send again");
    gf_tick(&f, 2000);
    cr_assert_eq(gf_copies(&f, &f.bm, f.bid, 1), 1, "once");
    gf_free(&f);
}

Test(wal, a_compaction_keeps_the_messages_an_ended_session_handed_on)
{
    struct gf f;
    gf_start(&f);
    gf_end(&f);
    take(f.two[0], 0);
    pump(f.two, 2);
    compact_all(f.two[0], 0, 2); /* shard 0's stream is now its snapshot alone */
    gf_crash(&f);
    gf_tick(&f, 2000);
    cr_assert_eq(gf_copies(&f, &f.bm, f.bid, 1), 1);
    gf_free(&f);
}

Test(wal, a_message_handed_on_whose_wait_failed_is_sent_again)
{
    /*
     * Shard 1 loses its record of the delivery (allocation failure): it
     * says so, and shard 0 sends the message again a second later.
     */
    struct gf f;
    gf_start(&f);
    gf_end(&f);
    take(f.two[0], 0);
    wal_open_out(f.two[1])->nomem = true; /* shard 1 loses the delivery's record */
    pump(f.two, 2);
    take(f.two[1], 1); /* lossy: XMSG_NACK */
    pump(f.two, 2);
    take(f.two[0], 0);
    cr_assert_eq(f.two[0]->give_count, 1u);
    cr_assert(broker_has_deadlines(f.two[0]), "a try is due: the clock ticks");
    /* Shard 1's log is repaired; a second later shard 0 tries again. */
    struct broker_wal_cursor c = {0};
    cr_assert(broker_wal_snapshot(f.two[1], &c, UINT32_MAX));
    take(f.two[1], 1);
    bool repaired;
    cr_assert(broker_wal_compacted(f.two[1], true, &repaired) && repaired);
    gf_tick(&f, 1500);
    cr_assert_eq(f.two[0]->give_count, 1u, "not before a second has passed");
    gf_tick(&f, 2100);
    cr_assert_eq(f.two[0]->give_count, 0u, "sent again, and logged there");
    broker_client_gone(f.two[0], &f.a, 0);
    broker_client_gone(f.two[0], &f.pub, 0);
    cr_assert_geq(gf_copies(&f, &f.bm, f.bid, 1), 1, "at least once");
    gf_free(&f);
}

Test(wal, a_message_handed_on_goes_again_under_a_restart_without_sync)
{
    /* Restarted with fsync = interval: the open give goes at the first tick, waiting for nobody. */
    struct gf f;
    gf_start(&f);
    gf_end(&f);
    take(f.two[0], 0);
    pump(f.two, 2);
    broker_client_gone(f.two[0], &f.a, 0);
    broker_client_gone(f.two[0], &f.pub, 0);
    for (uint32_t i = 0; i < 2; i++)
        broker_free(f.two[i]);
    for (uint32_t i = 0; i < 2; i++)
        f.two[i] = rebuilt_with(i, 2, 2, false);
    cr_assert_eq(f.two[0]->give_count, 1u);
    broker_tick(f.two[0], 2000);
    cr_assert_eq(f.two[0]->give_count, 0u, "sent, and closed at once");
    gf_tick(&f, 2000);
    cr_assert_eq(gf_copies(&f, &f.bm, f.bid, 1), 1);
    gf_free(&f);
}

/* The offset of the last whole record of @o. */
static size_t last_record_at(const struct wal_out *o)
{
    size_t off = 0, last = 0;
    struct wal_rec rec;
    for (;;) {
        size_t at = off;
        if (wal_read(o->buf, o->len, &off, &rec) != 1)
            return last;
        last = at;
    }
}

Test(wal, a_log_torn_after_an_ending_sessions_give_keeps_the_message)
{
    /*
     * The batch holding the session's end is torn in its last record: the
     * give is written before the end [core/give.h], so the message
     * survives with the give (the session, which the torn end did not end,
     * is a member again: the group's message may go to it).
     */
    struct gf f;
    gf_start(&f);
    gf_end(&f);
    size_t before = seg[0].len;
    take(f.two[0], 0);
    size_t last = last_record_at(&seg[0]);
    cr_assert_gt(last, before, "the batch has records");
    seg[0].len = last + 5; /* the kill -9 came during the write */
    pump(f.two, 2);
    gf_crash(&f);
    cr_assert_eq(f.two[0]->give_count, 1u, "the give is open");
    gf_tick(&f, 2000);
    int got = gf_copies(&f, &f.bm, f.bid, 1) + gf_copies(&f, &f.a, f.aid, 0);
    cr_assert_geq(got, 1, "the group has it after the torn write");
    gf_free(&f);
}

Test(wal, a_give_whose_record_is_lost_leaves_the_message_with_its_session_in_the_log)
{
    /*
     * The log loses the give's message record (no memory) as the session
     * ends: the session keeps the message, and its end is not logged, so
     * a crash before the repair brings the session back with it.
     */
    struct gf f;
    gf_start(&f);
    wal_open_out(f.two[0])->nomem = true; /* the next record: the give's WAL_MSG */
    gf_end(&f);
    cr_assert(broker_wal_repair_wanted(f.two[0]));
    take(f.two[0], 0);
    pump(f.two, 2);
    gf_crash(&f);
    cr_assert_eq(gf_copies(&f, &f.a, f.aid, 0), 1, "the session is back, with the message");
    gf_free(&f);
}
