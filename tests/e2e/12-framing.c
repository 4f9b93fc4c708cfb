/*
 * 12-framing.c - e2e: the byte stream around the packets: packets split
 * into single bytes, many packets in one write, packets straddling receive
 * buffers, slow consumers of large messages, many connections, and a
 * SIGTERM with live state (clean exit, no leak under ASan).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/e2e/harness.h"

/* Every BYTEWISE_PAUSE_EVERY bytes, a pause of 1 ms. */
#define BYTEWISE_PAUSE_EVERY 4

/*
 * Send @p one byte per segment (TCP_NODELAY), bounded by its length. The
 * pauses are the behaviour under test: they let the broker read the packet
 * in pieces rather than whole; a late wake-up only makes the pieces smaller.
 */
static void send_bytewise(int fd, const struct e2e_pkt *p)
{
    size_t i;

    for (i = 0; i < p->len; i++) {
        cr_assert(e2e_raw_send(fd, p->buf + i, 1), "peer closed after %zu bytes", i);
        if (i % BYTEWISE_PAUSE_EVERY == 0) {
            e2e_sleep_ms(1);
        }
    }
}

/* Packets that arrive one byte at a time are reassembled. */
static void bytewise(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *sub = e2e_client_connect(b, version, "sub", true);
    struct e2e_connect_opts o = {.version = version, .id = "trickle", .clean = true};
    char payload[300];
    struct e2e_pkt p;
    struct e2e_msg *m;
    int fd = e2e_raw_open(b);

    memset(payload, 'b', sizeof(payload));
    cr_assert_eq(e2e_client_subscribe(sub, "byte/t", 1), 1);
    e2e_pkt_connect(&p, &o);
    send_bytewise(fd, &p);
    e2e_pkt_free(&p);
    e2e_raw_expect(fd, "\x20\x02\x00\x00", 4, E2E_WAIT_MS);
    /* 300-byte payload: a two-byte remaining length, split too. */
    e2e_pkt_publish(&p, "byte/t", 1, false, false, 0x0101, payload, sizeof(payload));
    send_bytewise(fd, &p);
    e2e_pkt_free(&p);
    e2e_raw_expect(fd, "\x40\x02\x01\x01", 4, E2E_WAIT_MS);
    m = e2e_client_expect_message(sub);
    cr_assert_eq(m->payload_len, sizeof(payload));
    cr_assert(memcmp(m->payload, payload, sizeof(payload)) == 0);
    e2e_msg_free(m);
    e2e_raw_close(fd);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(framing, packets_split_into_single_bytes_are_reassembled, bytewise)

/*
 * CONNECT, three QoS 1 PUBLISHes, PINGREQ and DISCONNECT in one write: every
 * packet is answered in order, then the connection is closed [MQTT-3.14.4-1].
 */
static void coalesced(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *sub = e2e_client_connect(b, version, "sub", true);
    struct e2e_connect_opts o = {.version = version, .id = "burst", .clean = true};
    struct e2e_pkt all;
    struct e2e_pkt p;
    int fd = e2e_raw_open(b);
    int i;

    cr_assert_eq(e2e_client_subscribe(sub, "burst/t", 1), 1);
    e2e_pkt_init(&all);
    all.len = 0; /* used as a plain byte buffer, no fixed header */
    e2e_pkt_connect(&p, &o);
    e2e_pkt_bytes(&all, p.buf, p.len);
    e2e_pkt_free(&p);
    for (i = 1; i <= 3; i++) {
        char payload[4];

        snprintf(payload, sizeof(payload), "p%d", i);
        e2e_pkt_publish(&p, "burst/t", 1, false, false, (uint16_t)i, payload, 2);
        e2e_pkt_bytes(&all, p.buf, p.len);
        e2e_pkt_free(&p);
    }
    e2e_pkt_bytes(&all, "\xc0\x00\xe0\x00", 4);
    cr_assert(e2e_raw_send(fd, all.buf, all.len));
    e2e_pkt_free(&all);

    e2e_raw_expect(fd,
                   "\x20\x02\x00\x00"
                   "\x40\x02\x00\x01"
                   "\x40\x02\x00\x02"
                   "\x40\x02\x00\x03"
                   "\xd0\x00",
                   18, E2E_WAIT_MS);
    e2e_raw_expect_closed_silently(fd);
    e2e_client_expect(sub, "burst/t", "p1", 1, false);
    e2e_client_expect(sub, "burst/t", "p2", 1, false);
    e2e_client_expect(sub, "burst/t", "p3", 1, false);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(framing, many_packets_in_one_write_are_all_processed_in_order, coalesced)

/*
 * 500 QoS 1 PUBLISHes of sizes 0..499 in one 130 KB write: packets straddle
 * every receive-buffer boundary; all are acknowledged in order and arrive
 * intact.
 */
E2E_TEST(framing, packets_straddling_receive_buffers_are_all_delivered_v311)
{
    enum { COUNT = 500 };
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *sub = e2e_client_connect(b, E2E_V311, "sub", true);
    int fd = e2e_raw_connect_ok(b, E2E_V311, "bulk", true, 0);
    uint8_t payload[COUNT];
    uint8_t *acks = malloc(COUNT * 4);
    struct e2e_pkt all;
    struct e2e_pkt p;
    size_t got;
    int i;

    cr_assert_not_null(acks);
    for (i = 0; i < COUNT; i++) {
        payload[i] = (uint8_t)(i * 7);
    }
    cr_assert_eq(e2e_client_subscribe(sub, "bulk/+", 1), 1);
    e2e_pkt_init(&all);
    all.len = 0; /* used as a plain byte buffer, no fixed header */
    for (i = 0; i < COUNT; i++) {
        e2e_pkt_publish(&p, i % 2 ? "bulk/odd" : "bulk/even", 1, false, false, (uint16_t)(i + 1),
                        payload, (size_t)i);
        e2e_pkt_bytes(&all, p.buf, p.len);
        e2e_pkt_free(&p);
    }
    cr_assert(e2e_raw_send(fd, all.buf, all.len));
    e2e_pkt_free(&all);

    got = e2e_raw_recv(fd, acks, COUNT * 4, E2E_WAIT_MS * 2);
    cr_assert_eq(got, COUNT * 4, "got %zu of %d PUBACK bytes", got, COUNT * 4);
    for (i = 0; i < COUNT; i++) {
        const uint8_t *a = acks + i * 4;

        cr_assert(a[0] == 0x40 && a[1] == 0x02 && (a[2] << 8 | a[3]) == i + 1,
                  "PUBACK %d is %02x %02x %02x %02x", i, a[0], a[1], a[2], a[3]);
    }
    free(acks);
    for (i = 0; i < COUNT; i++) {
        struct e2e_msg *m = e2e_client_wait_message(sub, E2E_WAIT_MS);

        cr_assert_not_null(m, "message %d missing", i);
        cr_assert_str_eq(m->topic, i % 2 ? "bulk/odd" : "bulk/even");
        cr_assert_eq(m->payload_len, (size_t)i, "message %d has %zu bytes", i, m->payload_len);
        cr_assert(memcmp(m->payload, payload, (size_t)i) == 0, "message %d corrupted", i);
        e2e_msg_free(m);
    }
    e2e_raw_close(fd);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}

/* How long the slow consumer goes on not reading once everything was published. */
#define SLOW_READER_PAUSE_MS 200

/*
 * A subscriber that stops reading while 40 x 100 KB QoS 1 messages are
 * published gets all of them, intact and in order, once it reads again
 * (a longer pause, on a loaded machine, only asks the broker to hold them
 * longer).
 */
E2E_TEST(framing, slow_consumer_gets_every_large_qos1_message_in_order_v311)
{
    enum { COUNT = 40, SIZE = 100 * 1024 };
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *pub = e2e_client_connect(b, E2E_V311, "pub", true);
    int fd = e2e_raw_connect_ok(b, E2E_V311, "slow", true, 0);
    const char *filters[] = {"slow/t"};
    const uint8_t qos[] = {1};
    uint8_t *payload = malloc(SIZE);
    uint8_t *pkt = malloc(SIZE + 64);
    struct e2e_pkt p;
    int last_mid = 0;
    size_t hdr = 0;
    size_t n;
    int i;

    cr_assert(payload != NULL && pkt != NULL);
    e2e_pkt_subscribe(&p, 1, 1, filters, qos);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x90\x03\x00\x01\x01", 5, E2E_WAIT_MS);
    for (i = 0; i < COUNT; i++) {
        memset(payload, 'a' + i % 26, SIZE);
        payload[0] = (uint8_t)i;
        last_mid = e2e_client_publish_async(pub, "slow/t", payload, SIZE, 1, false);
    }
    e2e_client_wait_published(pub, last_mid, E2E_WAIT_MS * 2);
    /* Not reading for a while is the behaviour under test: the broker must hold the rest. */
    e2e_sleep_ms(SLOW_READER_PAUSE_MS);
    for (i = 0; i < COUNT; i++) {
        uint16_t id;

        n = e2e_raw_read_packet(fd, pkt, SIZE + 64, E2E_WAIT_MS, &hdr);
        cr_assert_gt(n, 0, "message %d missing", i);
        cr_assert_eq(pkt[0] & 0xf6, 0x32, "message %d: first byte %02x", i, pkt[0]);
        cr_assert_eq(n - hdr, 2 + 6 + 2 + SIZE, "message %d: %zu bytes", i, n - hdr);
        id = (uint16_t)(pkt[hdr + 8] << 8 | pkt[hdr + 9]);
        cr_assert_eq(pkt[hdr + 10], (uint8_t)i, "message %d out of order (got %d)", i,
                     pkt[hdr + 10]);
        cr_assert_eq(pkt[hdr + 10 + SIZE - 1], 'a' + i % 26, "message %d corrupted", i);
        e2e_pkt_ack(&p, 0x40, id);
        e2e_raw_send_pkt(fd, &p);
    }
    free(payload);
    free(pkt);
    e2e_raw_close(fd);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}

/* 200 connections at once, each subscribed: one publish reaches all. */
E2E_TEST(framing, one_publish_reaches_200_connected_subscribers_v311)
{
    enum { COUNT = 200 };
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *pub = e2e_client_connect(b, E2E_V311, "pub", true);
    const char *filters[] = {"many/t"};
    const uint8_t qos[] = {0};
    int fds[COUNT];
    char id[16];
    struct e2e_pkt p;
    int i;

    for (i = 0; i < COUNT; i++) {
        snprintf(id, sizeof(id), "m%d", i);
        fds[i] = e2e_raw_connect_ok(b, E2E_V311, id, true, 0);
        e2e_pkt_subscribe(&p, 1, 1, filters, qos);
        e2e_raw_send_pkt(fds[i], &p);
    }
    for (i = 0; i < COUNT; i++) {
        e2e_raw_expect(fds[i], "\x90\x03\x00\x01\x00", 5, E2E_WAIT_MS);
    }
    e2e_client_publish(pub, "many/t", "hi", 2, 1, false);
    for (i = 0; i < COUNT; i++) {
        e2e_raw_expect(fds[i],
                       "\x30\x0a\x00\x06"
                       "many/thi",
                       12, E2E_WAIT_MS);
        e2e_raw_close(fds[i]);
    }
    e2e_client_disconnect(pub);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/*
 * SIGTERM while the broker holds every kind of state (connections, an
 * offline persistent session with queued messages, unacknowledged QoS 1 and
 * QoS 2 in both directions, retained messages, a partial packet): it exits
 * with status 0, which under ASan also means no leak.
 */
E2E_TEST(framing, sigterm_with_live_state_exits_cleanly_v311)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client_opts po = {.version = E2E_V311, .id = "offline", .clean = false};
    struct e2e_client *off = e2e_client_start(b, &po);
    struct e2e_client *pub = e2e_client_connect(b, E2E_V311, "pub", true);
    const char *filters[] = {"live/#"};
    const uint8_t qos[] = {2};
    struct e2e_pkt p;
    uint8_t pkt[64];
    int sub_fd;
    int q2_fd;
    int half_fd;

    cr_assert_eq(e2e_client_wait_connack(off, 0), 0);
    cr_assert_eq(e2e_client_subscribe(off, "live/#", 2), 2);
    e2e_client_abort(off);

    sub_fd = e2e_raw_connect_ok(b, E2E_V311, "nack", false, 0);
    e2e_pkt_subscribe(&p, 1, 1, filters, qos);
    e2e_raw_send_pkt(sub_fd, &p);
    e2e_raw_expect(sub_fd, "\x90\x03\x00\x01\x02", 5, E2E_WAIT_MS);

    e2e_client_publish(pub, "live/r", "retained", 8, 1, true);
    e2e_client_publish(pub, "live/q1", "q1", 2, 1, false);
    e2e_client_publish(pub, "live/q2", "q2", 2, 2, false);
    /* nack never acknowledges: both stay in flight towards it. */
    cr_assert_gt(e2e_raw_read_packet(sub_fd, pkt, sizeof(pkt), E2E_WAIT_MS, NULL), 0);

    /* An inbound QoS 2 waiting for PUBREL. */
    q2_fd = e2e_raw_connect_ok(b, E2E_V311, "q2in", true, 0);
    e2e_pkt_publish(&p, "live/in", 2, false, false, 9, "held", 4);
    e2e_raw_send_pkt(q2_fd, &p);
    e2e_raw_expect(q2_fd, "\x50\x02\x00\x09", 4, E2E_WAIT_MS);

    /* Half a packet. */
    half_fd = e2e_raw_connect_ok(b, E2E_V311, "half", true, 0);
    cr_assert(e2e_raw_send(half_fd, "\x30\x40\x00\x06live/x", 10));
    e2e_client_sync(pub);

    e2e_broker_stop(b);
    cr_assert(e2e_raw_wait_closed(sub_fd, E2E_WAIT_MS, NULL));
    cr_assert(e2e_client_wait_closed(pub, E2E_WAIT_MS));
    e2e_client_abort(pub);
    e2e_raw_close(sub_fd);
    e2e_raw_close(q2_fd);
    e2e_raw_close(half_fd);
}
