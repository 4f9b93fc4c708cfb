/*
 * 20-overload.c - e2e: floods across shards to a subscriber that never
 * reads. The broker's memory stays within its bounds (output_bytes_max per
 * connection, the cross-shard budget, queued_max per session), subscribers
 * that keep up keep receiving, and nothing acknowledged is lost: QoS 1
 * reaches them all, in order, while the publisher is held rather than
 * buffered without end. ringmq-only (shards and limit keys).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tests/e2e/harness.h"

/* The broker's /proc status field @key ("VmRSS:", "VmHWM:") in KiB; asserts it is there. */
static long status_kb(const struct e2e_broker *b, const char *key)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)b->pid);
    f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, strlen(key)) == 0) {
            kb = strtol(line + strlen(key), NULL, 10);
            break;
        }
    }
    fclose(f);
    cr_assert_geq(kb, 0, "no %s in %s", key, path);
    return kb;
}

/*
 * True when the broker runs under AddressSanitizer: its quarantine keeps
 * freed memory resident, so RSS says nothing about the broker's bounds.
 */
static bool sanitized(const struct e2e_broker *b)
{
    char path[64], line[512];
    bool found = false;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/maps", (int)b->pid);
    f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        found = strstr(line, "libasan") != NULL || strstr(line, "libtsan") != NULL;
    }
    fclose(f);
    return found;
}

/* A raw client on @b that subscribes @filter at @qos, then never reads again. */
static int stalled_reader(struct e2e_broker *b, const char *id, const char *filter, uint8_t qos)
{
    struct e2e_connect_opts co = {.version = E2E_V311, .id = id, .clean = true};
    const char *filters[] = {filter};
    uint8_t suback[5] = {0x90, 0x03, 0x00, 0x01, qos};
    struct e2e_pkt p;
    int fd = e2e_raw_open_rcvbuf(b, 4096);

    e2e_pkt_connect(&p, &co);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x20\x02\x00\x00", 4, E2E_WAIT_MS);
    e2e_pkt_subscribe(&p, 1, 1, filters, &qos);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, suback, sizeof(suback), E2E_WAIT_MS);
    return fd;
}

/* The "N publishers held" shard 0 logged at exit (after e2e_broker_stop()). */
static unsigned long long held_count(const struct e2e_broker *b)
{
    char line[1024];
    unsigned long long n = 0;
    FILE *f = fopen(b->log_path, "r");

    cr_assert_not_null(f, "%s", b->log_path);
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *at = strstr(line, " publishers held");
        const char *num = at;

        if (at == NULL || strstr(line, "shard 0:") == NULL) {
            continue;
        }
        while (num > line && num[-1] >= '0' && num[-1] <= '9') {
            num--;
        }
        n = strtoull(num, NULL, 10);
    }
    fclose(f);
    return n;
}

/* Keep the last 4 bytes of a stream read in pieces, @p[0..@n) the newest. */
static void keep_tail(uint8_t tail[4], const uint8_t *p, size_t n)
{
    for (size_t i = n > 4 ? n - 4 : 0; i < n; i++) {
        memmove(tail, tail + 1, 3);
        tail[3] = p[i];
    }
}

/*
 * Broker memory may grow by this much over a flood several times larger:
 * what stalled readers hold (output_bytes_max each) plus the cross-shard
 * ring and budget (net/xshard.h), with room for the allocator.
 */
#define GROWTH_MAX_KB (32L * 1024)
#define FAN_OUT_GROWTH_MAX_KB (64L * 1024)

/*
 * A QoS 0 flood of 160 MB from shard 0 to a stalled reader on shard 1:
 * shard 1 sheds what the reader cannot take, the link between the shards
 * sheds QoS 0 past its budget, and the QoS 1 ticks among the flood reach a
 * subscriber that keeps up, every one, with the publisher held (not read)
 * while the link is over budget.
 */
E2E_TEST(overload, qos0_flood_across_shards_to_a_stalled_reader_stays_bounded)
{
    enum { COUNT = 40000, SIZE = 4096, TICKS = 20, DONE_ID = 1000 };
    struct e2e_broker *b;
    struct e2e_client *fast;
    char sid[32], fid[32], pid[32], tick[32];
    uint8_t *payload = calloc(1, SIZE);
    uint8_t buf[64];
    struct e2e_pkt data, p;
    long rss0, hwm;
    int stalled, pub, ticks = 0;

    e2e_ringmq_only("shards and output_bytes_max are ringmq settings");
    cr_assert_not_null(payload);
    b = e2e_broker_start_shards(2, "[limits]\noutput_bytes_max = 1m\n");
    e2e_id_on(1, 2, "stalled", sid, sizeof(sid));
    e2e_id_on(1, 2, "fast", fid, sizeof(fid));
    e2e_id_on(0, 2, "pub", pid, sizeof(pid));
    fast = e2e_client_connect(b, E2E_V311, fid, true);
    cr_assert_eq(e2e_client_subscribe(fast, "flood/tick", 1), 1);
    stalled = stalled_reader(b, sid, "flood/#", 0);
    pub = e2e_raw_connect_ok(b, E2E_V311, pid, true, 0);
    rss0 = status_kb(b, "VmRSS:");

    e2e_pkt_publish(&data, "flood/data", 0, false, false, 0, payload, SIZE);
    for (int i = 0; i < COUNT; i++) {
        cr_assert(e2e_raw_send(pub, data.buf, data.len), "send %d", i);
        if (i % (COUNT / TICKS) == 0) {
            snprintf(tick, sizeof(tick), "%d", ticks);
            e2e_pkt_publish(&p, "flood/tick", 1, false, false, (uint16_t)(ticks + 1), tick,
                            strlen(tick));
            e2e_raw_send_pkt(pub, &p);
            ticks++;
        }
    }
    e2e_pkt_publish(&p, "flood/tick", 1, false, false, DONE_ID, "done", 4);
    e2e_raw_send_pkt(pub, &p);
    /* Every tick is acknowledged, the last one after the whole flood was read. */
    for (int acks = 0; acks <= TICKS;) {
        size_t n = e2e_raw_read_packet(pub, buf, sizeof(buf), 30000, NULL);

        cr_assert_eq(n, 4, "PUBACK %d of %d did not come", acks + 1, TICKS + 1);
        cr_assert_eq(buf[0], 0x40);
        acks++;
        if (((buf[2] << 8) | buf[3]) == DONE_ID) {
            cr_assert_eq(acks, TICKS + 1, "acknowledged out of order");
        }
    }
    for (int i = 0; i < TICKS; i++) {
        snprintf(tick, sizeof(tick), "%d", i);
        e2e_client_expect_within(fast, 30000, "flood/tick", tick, 1, false);
    }
    e2e_client_expect_within(fast, 30000, "flood/tick", "done", 1, false);

    hwm = status_kb(b, "VmHWM:");
    if (!sanitized(b)) {
        cr_assert_lt(hwm - rss0, GROWTH_MAX_KB,
                     "broker grew by %ld KiB under a %d MiB flood (bound %ld KiB)", hwm - rss0,
                     COUNT * SIZE >> 20, GROWTH_MAX_KB);
    }
    e2e_broker_check_alive(b);
    e2e_pkt_free(&data);
    free(payload);
    e2e_raw_close(stalled);
    e2e_raw_close(pub);
    e2e_client_disconnect(fast);
    e2e_broker_stop(b);
}

/*
 * A QoS 1 flood of 80 MB across shards: the stalled reader's session queue
 * stops at queued_max (its overflow is dropped and counted, as mosquitto's
 * max_queued_messages), while a subscriber that keeps up (the test reads
 * each batch before publishing the next, so its queue never fills) gets
 * every message in order and the publisher is never stuck.
 */
E2E_TEST(overload, qos1_flood_across_shards_reaches_the_reader_that_keeps_up_in_order)
{
    enum { COUNT = 20000, SIZE = 4096, BATCH = 500 };
    struct e2e_broker *b;
    struct e2e_client *fast, *pub;
    char sid[32], fid[32], pid[32];
    uint8_t *payload = calloc(1, SIZE);
    long rss0, hwm;
    int stalled, last = 0;

    e2e_ringmq_only("shards and output_bytes_max are ringmq settings");
    cr_assert_not_null(payload);
    b = e2e_broker_start_shards(2, "[limits]\noutput_bytes_max = 1m\nqueued_max = 1000\n");
    e2e_id_on(1, 2, "stalled", sid, sizeof(sid));
    e2e_id_on(1, 2, "fast", fid, sizeof(fid));
    e2e_id_on(0, 2, "pub", pid, sizeof(pid));
    fast = e2e_client_connect(b, E2E_V311, fid, true);
    cr_assert_eq(e2e_client_subscribe(fast, "flood/#", 1), 1);
    stalled = stalled_reader(b, sid, "flood/#", 1);
    pub = e2e_client_connect(b, E2E_V311, pid, true);
    rss0 = status_kb(b, "VmRSS:");

    /* In batches the fast reader takes in full before the next: it keeps up. */
    for (int i = 0; i < COUNT; i += BATCH) {
        for (int j = i; j < i + BATCH; j++) {
            snprintf((char *)payload, SIZE, "%d", j);
            last = e2e_client_publish_async(pub, "flood/q1", payload, SIZE, 1, false);
        }
        e2e_client_wait_published(pub, last, 30000);
        for (int j = i; j < i + BATCH; j++) {
            struct e2e_msg *m = e2e_client_wait_message(fast, 30000);

            cr_assert_not_null(m, "message %d of %d never came", j, COUNT);
            cr_assert_eq(strtol((const char *)m->payload, NULL, 10), j,
                         "out of order or lost at %d", j);
            cr_assert_eq(m->qos, 1);
            e2e_msg_free(m);
        }
    }
    hwm = status_kb(b, "VmHWM:");
    if (!sanitized(b)) {
        cr_assert_lt(hwm - rss0, GROWTH_MAX_KB,
                     "broker grew by %ld KiB under a %d MiB QoS 1 flood", hwm - rss0,
                     COUNT * SIZE >> 20);
    }
    e2e_broker_check_alive(b);
    free(payload);
    e2e_raw_close(stalled);
    e2e_client_disconnect(pub);
    e2e_client_disconnect(fast);
    e2e_broker_stop(b);
}

/*
 * Fan-out makes the receiving shard the slow one: each message costs it
 * one delivery per subscriber, and the publisher's shard only forwards. A
 * QoS 1 publisher that never waits for its acknowledgements is held, then
 * no longer read, whenever the link between the shards is over its budget;
 * it still gets every acknowledgement, and the broker's memory stays bounded
 * however far ahead of the fan-out it tries to run.
 */
E2E_TEST(overload, a_qos1_publisher_outrunning_a_fan_out_shard_is_held_and_not_read)
{
    enum { SUBS = 100, COUNT = 100000, SIZE = 1024, DONE_ID = 65535 };
    struct e2e_broker *b;
    char id[32];
    uint8_t *payload = calloc(1, SIZE);
    uint8_t buf[4096], tail[4] = {0};
    struct e2e_pkt p;
    int *subs = calloc(SUBS, sizeof(*subs));
    long rss0, hwm;
    size_t got = 0;
    int pub;

    e2e_ringmq_only("shards and output_bytes_max are ringmq settings");
    cr_assert(payload != NULL && subs != NULL);
    b = e2e_broker_start_shards(2, "[limits]\noutput_bytes_max = 65536\n"
                                   "packet_bytes_max = 16384\n");
    for (int i = 0; i < SUBS; i++) {
        char prefix[16];

        snprintf(prefix, sizeof(prefix), "s%d-", i);
        e2e_id_on(1, 2, prefix, id, sizeof(id));
        subs[i] = stalled_reader(b, id, "fan/#", 0);
    }
    e2e_id_on(0, 2, "pub", id, sizeof(id));
    pub = e2e_raw_connect_ok(b, E2E_V311, id, true, 0);
    rss0 = status_kb(b, "VmRSS:");
    for (int i = 0; i <= COUNT; i++) {
        uint16_t pkt_id = i == COUNT ? DONE_ID : (uint16_t)(i % 65000 + 1);

        e2e_pkt_publish(&p, "fan/out", 1, false, false, pkt_id, payload, SIZE);
        cr_assert(e2e_raw_send(pub, p.buf, p.len), "send %d: the publisher was closed", i);
        e2e_pkt_free(&p);
        /* Take the acknowledgements that are there: this publisher does not wait for them. */
        for (ssize_t n = 1; i % 64 == 0 && n > 0;) {
            n = recv(pub, buf, sizeof(buf), MSG_DONTWAIT);
            if (n > 0) {
                keep_tail(tail, buf, (size_t)n);
                got += (size_t)n;
            }
        }
    }
    /* Every PUBACK comes (4 bytes each), the last one for DONE_ID. */
    while (got < (size_t)(COUNT + 1) * 4) {
        size_t want = (size_t)(COUNT + 1) * 4 - got;
        size_t n = e2e_raw_recv(pub, buf, want < sizeof(buf) ? want : sizeof(buf), 30000);

        cr_assert_gt(n, 0, "%zu of %d PUBACKs came", got / 4, COUNT + 1);
        keep_tail(tail, buf, n);
        got += n;
    }
    cr_assert_eq(got, (size_t)(COUNT + 1) * 4);
    cr_assert(memcmp(tail, "\x40\x02\xff\xff", 4) == 0, "the last PUBACK is not DONE_ID's");
    hwm = status_kb(b, "VmHWM:");
    if (!sanitized(b)) {
        cr_assert_lt(hwm - rss0, FAN_OUT_GROWTH_MAX_KB,
                     "broker grew by %ld KiB under a %d MiB flood", hwm - rss0, COUNT * SIZE >> 20);
    }
    for (int i = 0; i < SUBS; i++) {
        e2e_raw_close(subs[i]);
    }
    e2e_raw_close(pub);
    e2e_broker_stop(b);
    cr_assert_gt(held_count(b), 0, "the publisher was never held: the shards kept pace");
    free(subs);
    free(payload);
}

/*
 * slow_reader_grace: a reader that stays over its output bound (its QoS 0
 * shed) for the grace is disconnected (core tests check the v5 DISCONNECT
 * 0x97 it is sent first), while a reader that keeps up is not.
 */
E2E_TEST(overload, a_reader_over_its_bound_past_slow_reader_grace_is_disconnected)
{
    enum { COUNT = 2500, SIZE = 4096 };
    struct e2e_broker *b;
    struct e2e_client *pub, *fast;
    uint8_t *payload = calloc(1, SIZE);
    size_t junk = 0;
    int64_t until;
    int stalled;

    e2e_ringmq_only("slow_reader_grace is a ringmq limit key");
    cr_assert_not_null(payload);
    b = e2e_broker_start("[limits]\noutput_bytes_max = 65536\npacket_bytes_max = 16384\n"
                         "slow_reader_grace = 1\n");
    fast = e2e_client_connect(b, E2E_V311, "fast", true);
    cr_assert_eq(e2e_client_subscribe(fast, "grace/tick", 0), 0);
    stalled = stalled_reader(b, "stalled", "grace/#", 0);
    pub = e2e_client_connect(b, E2E_V311, "pub", true);
    for (int i = 0; i < COUNT; i++) { /* 10 MB: past what the socket buffers take */
        e2e_client_publish_async(pub, "grace/data", payload, SIZE, 0, false);
    }
    /* Still over its bound 1 s later: what follows is shed for it, until it is closed. */
    until = e2e_now_ms() + 2500;
    while (e2e_now_ms() < until) {
        for (int i = 0; i < 63; i++) { /* 256 KB: 4 times its bound */
            e2e_client_publish_async(pub, "grace/data", payload, SIZE, 0, false);
        }
        e2e_client_publish(pub, "grace/data", payload, SIZE, 0, false);
        e2e_client_publish(pub, "grace/tick", "t", 1, 0, false);
        e2e_client_expect(fast, "grace/tick", "t", 0, false);
        e2e_sleep_ms(100);
    }
    cr_assert(e2e_raw_wait_closed(stalled, E2E_WAIT_MS, &junk),
              "the stalled reader was not disconnected (%zu bytes read)", junk);
    e2e_broker_check_alive(b);
    free(payload);
    e2e_client_disconnect(pub);
    e2e_client_disconnect(fast);
    e2e_broker_stop(b);
}
