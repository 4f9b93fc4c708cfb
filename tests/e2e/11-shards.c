/*
 * 11-shards.c - end to end with several shards ([broker] shards = 1, 2, 4;
 * more shards than this machine's cores is fine for correctness).
 *
 * Which shard ACCEPTS a TCP connection is up to SO_REUSEPORT's hash of the
 * 4-tuple, so the tests open many connections; which shard RUNS a session
 * is XXH3(client id) mod N (broker_home_shard() from core/broker.h), so
 * client ids are picked to be homed on chosen shards (id_on()). A CONNECT
 * that lands elsewhere is handed over; in ringmq mode the tests read the
 * per-shard "handoffs N out" counters from the log after the stop, to show
 * the cross-shard paths really ran.
 *
 * Cases: delivery between clients homed on every shard; wildcards and
 * retained messages (set and clear) across shards; takeover when the second
 * connection lands on another shard [MQTT-3.1.4-2]; a persistent session
 * resumed whichever shard the reconnection lands on [MQTT-3.2.2-2]; order
 * of 100k QoS 1 messages from one publisher to one subscriber homed on
 * different shards (all arrive, in order, no duplicates) [MQTT-4.6.0-6];
 * exactly one copy per message for a client subscribed through overlapping
 * filters, whichever shard published it; an empty client id gets an id
 * homed where it landed (no handoff) [MQTT-3.1.3-6]; and a stop with
 * traffic and wills in flight between shards exits 0 (no leak under ASan).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/broker.h"
#include "tests/e2e/harness.h"

#define ID_MAX 48

/* Start a broker with @n shards plus @extra_ini (may be NULL). */
static struct e2e_broker *start_shards(unsigned n, const char *extra_ini)
{
    char ini[1024];
    int len;

    len = snprintf(ini, sizeof(ini), "[broker]\nshards = %u\n\n%s", n,
                   extra_ini != NULL ? extra_ini : "");
    cr_assert(len > 0 && (size_t)len < sizeof(ini));
    return e2e_broker_start(ini);
}

/* A client id starting with @prefix that is homed on shard @want of @n. */
static void id_on(uint32_t want, uint32_t n, const char *prefix, char *out, size_t cap)
{
    for (unsigned i = 0; i < 100000; i++) {
        snprintf(out, cap, "%s%u", prefix, i);
        if (broker_home_shard((const uint8_t *)out, strlen(out), n) == want) {
            return;
        }
    }
    cr_assert_fail("no id with prefix %s homed on shard %u of %u", prefix, want, n);
}

/*
 * After e2e_broker_stop(): the sum over shards of the number that follows
 * @key in the log ("handoffs " for connections handed over). -1 in
 * mosquitto mode.
 */
static long long log_sum(const struct e2e_broker *b, const char *key)
{
    char line[2048];
    long long sum = 0;
    FILE *f;

    if (e2e_mosquitto_mode()) {
        return -1;
    }
    f = fopen(b->log_path, "r");
    cr_assert_not_null(f, "open %s: %s", b->log_path, strerror(errno));
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *p = strstr(line, key);

        if (p != NULL) {
            sum += strtoll(p + strlen(key), NULL, 10);
        }
    }
    fclose(f);
    return sum;
}

/* Connections a probe opens (handoff_probe()). */
#define PROBE_CONNS 24

/*
 * Stop @b (of @n shards) and, with more than one, assert that some
 * connection was handed to its home shard. The test's own connections may
 * all have landed at home (the kernel spreads them over the shards'
 * SO_REUSEPORT sockets by a hash of the 4-tuple: with 2 shards and 6
 * connections 1 run in 64 did), so first PROBE_CONNS clients homed on
 * shard 0 connect and leave: all of them landing there is a 2^-24 event.
 */
static void stop_expecting_handoffs(struct e2e_broker *b, unsigned n)
{
    long long handoffs;

    for (unsigned i = 0; n > 1 && i < PROBE_CONNS; i++) {
        char prefix[16];
        char id[ID_MAX];

        snprintf(prefix, sizeof(prefix), "probe%u-", i);
        id_on(0, n, prefix, id, sizeof(id));
        e2e_client_disconnect(e2e_client_connect(b, E2E_V311, id, true));
    }
    e2e_broker_stop(b);
    handoffs = log_sum(b, "handoffs ");

    if (n > 1 && handoffs >= 0) {
        cr_assert_gt(handoffs, 0, "no connection was handed to its home shard");
    }
}

/* ---- raw helpers ---- */

static void raw_subscribe(int fd, const char *filter, uint8_t qos, uint16_t pkt_id)
{
    const char *filters[1] = {filter};
    uint8_t buf[64];
    struct e2e_pkt p;
    size_t n;

    e2e_pkt_subscribe(&p, pkt_id, 1, filters, &qos);
    e2e_raw_send_pkt(fd, &p);
    n = e2e_raw_read_packet(fd, buf, sizeof(buf), E2E_WAIT_MS, NULL);
    cr_assert_eq(n, 5, "SUBACK expected, got %zu bytes", n);
    cr_assert_eq(buf[0], 0x90);
    cr_assert_eq(buf[4], qos, "granted QoS %u, asked %u", buf[4], qos);
}

static void raw_disconnect(int fd)
{
    cr_assert(e2e_raw_send(fd, "\xe0\x00", 2));
    e2e_raw_close(fd);
}

/*
 * PINGREQ/PINGRESP round trip: the broker handles one connection's packets
 * in order, so everything sent on @fd before (a PUBACK) has been processed.
 * Needed before a takeover from another socket, which may otherwise be
 * handled first and correctly redeliver the unacknowledged message.
 */
static void raw_ping(int fd)
{
    cr_assert(e2e_raw_send(fd, "\xc0\x00", 2));
    e2e_raw_expect(fd, "\xd0\x00", 2, E2E_WAIT_MS);
}

/* Read one QoS 1 PUBLISH on @fd, check topic and payload, acknowledge it. */
static void raw_expect_publish_qos1(int fd, const char *topic, const char *payload)
{
    uint8_t buf[512];
    size_t hdr = 0, n, tlen, off;
    uint16_t id;
    struct e2e_pkt ack;

    n = e2e_raw_read_packet(fd, buf, sizeof(buf), E2E_WAIT_MS, &hdr);
    cr_assert_gt(n, 0, "no PUBLISH of '%s' arrived", payload);
    cr_assert_eq(buf[0] & 0xf6, 0x32, "QoS 1 PUBLISH expected, first byte 0x%02x", buf[0]);
    tlen = (size_t)buf[hdr] << 8 | buf[hdr + 1];
    cr_assert_eq(tlen, strlen(topic));
    cr_assert(memcmp(buf + hdr + 2, topic, tlen) == 0);
    off = hdr + 2 + tlen;
    id = (uint16_t)(buf[off] << 8 | buf[off + 1]);
    off += 2;
    cr_assert_eq(n - off, strlen(payload), "payload length");
    cr_assert(memcmp(buf + off, payload, n - off) == 0, "payload '%.*s', expected '%s'",
              (int)(n - off), (const char *)buf + off, payload);
    e2e_pkt_ack(&ack, 0x40, id);
    e2e_raw_send_pkt(fd, &ack);
}

/* ---- delivery between clients homed on every shard ---- */

#define DELIVER_PER_SHARD 3

static void delivers_between_clients_on_every_shard(unsigned n)
{
    struct e2e_broker *b = start_shards(n, NULL);
    struct e2e_client *c[4 * DELIVER_PER_SHARD];
    char ids[4 * DELIVER_PER_SHARD][ID_MAX];
    char topic[ID_MAX + 8];
    unsigned k = n * DELIVER_PER_SHARD;
    unsigned i;

    for (i = 0; i < k; i++) {
        char prefix[16];

        snprintf(prefix, sizeof(prefix), "dl%u-", i);
        id_on(i % n, n, prefix, ids[i], sizeof(ids[i]));
        c[i] = e2e_client_connect(b, E2E_V311, ids[i], true);
        snprintf(topic, sizeof(topic), "d/%.*s", ID_MAX, ids[i]);
        cr_assert_eq(e2e_client_subscribe(c[i], topic, 1), 1);
        cr_assert_eq(e2e_client_subscribe(c[i], "d/all", 0), 0);
    }
    /* Each client sends to the next one (homed on the next shard). */
    for (i = 0; i < k; i++) {
        snprintf(topic, sizeof(topic), "d/%.*s", ID_MAX, ids[(i + 1) % k]);
        e2e_client_publish(c[i], topic, ids[i], strlen(ids[i]), 1, false);
    }
    e2e_client_publish(c[0], "d/all", "everyone", 8, 0, false);
    for (i = 0; i < k; i++) {
        struct e2e_msg *got[2];
        unsigned from = (i + k - 1) % k;

        /* The QoS 1 message and the broadcast: both arrive, in either order. */
        got[0] = e2e_client_expect_message(c[i]);
        got[1] = e2e_client_expect_message(c[i]);
        if (strcmp(got[0]->topic, "d/all") == 0) {
            struct e2e_msg *t = got[0];

            got[0] = got[1];
            got[1] = t;
        }
        snprintf(topic, sizeof(topic), "d/%.*s", ID_MAX, ids[i]);
        cr_assert_str_eq(got[0]->topic, topic);
        cr_assert_str_eq((const char *)got[0]->payload, ids[from]);
        cr_assert_eq(got[0]->qos, 1);
        cr_assert_str_eq(got[1]->topic, "d/all");
        cr_assert_str_eq((const char *)got[1]->payload, "everyone");
        e2e_msg_free(got[0]);
        e2e_msg_free(got[1]);
    }
    for (i = 0; i < k; i++) {
        e2e_client_expect_no_message(c[i], i == 0 ? E2E_QUIET_MS : 0);
        e2e_client_disconnect(c[i]);
    }
    stop_expecting_handoffs(b, n);
}

E2E_TEST(shards, delivers_between_clients_on_every_shard_1)
{
    delivers_between_clients_on_every_shard(1);
}

E2E_TEST(shards, delivers_between_clients_on_every_shard_2)
{
    delivers_between_clients_on_every_shard(2);
}

E2E_TEST(shards, delivers_between_clients_on_every_shard_4)
{
    delivers_between_clients_on_every_shard(4);
}

/* ---- wildcards and retained messages ---- */

/*
 * A retained set or clear reaches the other shards' replicas through the
 * topic's home shard (two cross-shard hops after the PUBACK). Wait for it as
 * a new subscriber would see it: subscribe a fresh client homed on @shard to
 * @filter and look for @payload (NULL: for no retained message at all),
 * retrying with a fresh client until E2E_WAIT_MS.
 */
static void wait_retained(struct e2e_broker *b, unsigned n, uint32_t shard, const char *filter,
                          const char *topic, const char *payload)
{
    int64_t deadline = e2e_now_ms() + E2E_WAIT_MS;
    char id[ID_MAX];
    unsigned attempt;
    bool ok = false;

    for (attempt = 0; !ok && e2e_now_ms() < deadline; attempt++) {
        struct e2e_client *c;
        struct e2e_msg *m;
        char prefix[24];

        snprintf(prefix, sizeof(prefix), "rw%u-%u-", shard, attempt);
        id_on(shard, n, prefix, id, sizeof(id));
        c = e2e_client_connect(b, E2E_V311, id, true);
        e2e_client_subscribe(c, filter, 1);
        m = e2e_client_wait_message(c, payload != NULL ? 1000 : E2E_QUIET_MS);
        if (payload == NULL) {
            ok = m == NULL;
        } else if (m != NULL) {
            cr_assert_str_eq(m->topic, topic);
            cr_assert_str_eq((const char *)m->payload, payload);
            cr_assert(m->retain, "a retained message must carry RETAIN [MQTT-3.3.1-8]");
            ok = true;
        }
        e2e_msg_free(m);
        if (ok && payload != NULL) {
            /* Exactly one retained message matches the filter. */
            e2e_client_expect_no_message(c, E2E_QUIET_MS);
        }
        e2e_client_disconnect(c);
    }
    cr_assert(ok, "shard %u: retained state of %s not as expected within %d ms", shard, filter,
              E2E_WAIT_MS);
}

static void wildcard_and_retained_across_shards(unsigned n)
{
    struct e2e_broker *b = start_shards(n, NULL);
    struct e2e_client *plus[4], *hash[4], *pub;
    char id[ID_MAX];
    uint32_t s;

    id_on(n - 1, n, "wr-pub", id, sizeof(id));
    pub = e2e_client_connect(b, E2E_V311, id, true);
    e2e_client_publish(pub, "rt/a/1", "one", 3, 1, true);
    e2e_client_publish(pub, "rt/b/2", "two", 3, 1, true);
    for (s = 0; s < n; s++) {
        wait_retained(b, n, s, "rt/+/1", "rt/a/1", "one");
        wait_retained(b, n, s, "rt/b/#", "rt/b/2", "two");
    }

    /* Live messages through wildcards, subscribers on every shard. */
    for (s = 0; s < n; s++) {
        char prefix[16];

        snprintf(prefix, sizeof(prefix), "wp%u-", s);
        id_on(s, n, prefix, id, sizeof(id));
        plus[s] = e2e_client_connect(b, E2E_V311, id, true);
        e2e_client_subscribe(plus[s], "wl/+/x", 1);
        snprintf(prefix, sizeof(prefix), "wh%u-", s);
        id_on(s, n, prefix, id, sizeof(id));
        hash[s] = e2e_client_connect(b, E2E_V311, id, true);
        e2e_client_subscribe(hash[s], "wl/#", 1);
    }
    e2e_client_publish(pub, "wl/a/x", "ax", 2, 1, false);
    e2e_client_publish(pub, "wl/b/y", "by", 2, 1, false);
    for (s = 0; s < n; s++) {
        e2e_client_expect(plus[s], "wl/a/x", "ax", 1, false);
        e2e_client_expect(hash[s], "wl/a/x", "ax", 1, false);
        e2e_client_expect(hash[s], "wl/b/y", "by", 1, false);
    }
    for (s = 0; s < n; s++) {
        e2e_client_expect_no_message(plus[s], s == 0 ? E2E_QUIET_MS : 0);
        e2e_client_expect_no_message(hash[s], 0);
    }

    /* Clearing a retained message [MQTT-3.3.1-10] reaches every replica too. */
    e2e_client_publish(pub, "rt/a/1", "", 0, 1, true);
    for (s = 0; s < n; s++) {
        wait_retained(b, n, s, "rt/+/1", NULL, NULL);
        wait_retained(b, n, s, "rt/b/#", "rt/b/2", "two");
    }
    for (s = 0; s < n; s++) {
        e2e_client_disconnect(plus[s]);
        e2e_client_disconnect(hash[s]);
    }
    e2e_client_disconnect(pub);
    stop_expecting_handoffs(b, n);
}

E2E_TEST(shards, wildcard_and_retained_across_shards_2)
{
    wildcard_and_retained_across_shards(2);
}

E2E_TEST(shards, wildcard_and_retained_across_shards_4)
{
    wildcard_and_retained_across_shards(4);
}

/* ---- takeover ---- */

/*
 * Each connection lands on a shard other than the session's home about
 * half the time (with 2 shards; see PERSIST_ROUNDS): 16 rounds make a
 * takeover that never crossed shards a 1-in-130,000 event.
 */
#define TAKEOVER_ROUNDS 16

/*
 * [MQTT-3.1.4-2]: a CONNECT with a client id already connected closes the
 * existing connection. Each new connection lands on a shard of the kernel's
 * choosing; over the rounds most land away from the id's home.
 */
static void takeover_lands_on_another_shard(unsigned n)
{
    struct e2e_broker *b = start_shards(n, NULL);
    struct e2e_client *pub;
    int prev, fd;
    int round;

    pub = e2e_client_connect(b, E2E_V311, "tk-pub", true);
    prev = e2e_raw_connect_ok(b, E2E_V311, "tk", false, 0);
    raw_subscribe(prev, "tk/t", 1, 1);
    for (round = 0; round < TAKEOVER_ROUNDS; round++) {
        struct e2e_connect_opts o = {.version = E2E_V311, .id = "tk", .clean = false};
        uint8_t connack[4];
        char payload[16];

        fd = e2e_raw_connect(b, &o, connack);
        cr_assert_eq(connack[0], 0x20);
        cr_assert_eq(connack[3], 0, "round %d: CONNACK return code %u", round, connack[3]);
        cr_assert_eq(connack[2], 1, "round %d: the session was taken over, not lost", round);
        cr_assert(e2e_raw_wait_closed(prev, E2E_WAIT_MS, NULL),
                  "round %d: the old connection was not closed [MQTT-3.1.4-2]", round);
        e2e_raw_close(prev);
        /* The session (and its subscription) lives on with the new connection. */
        snprintf(payload, sizeof(payload), "tk%d", round);
        e2e_client_publish(pub, "tk/t", payload, strlen(payload), 1, false);
        raw_expect_publish_qos1(fd, "tk/t", payload);
        raw_ping(fd);
        prev = fd;
    }
    raw_disconnect(prev);
    e2e_client_disconnect(pub);
    stop_expecting_handoffs(b, n);
}

E2E_TEST(shards, takeover_when_the_second_connection_lands_on_another_shard_2)
{
    takeover_lands_on_another_shard(2);
}

E2E_TEST(shards, takeover_when_the_second_connection_lands_on_another_shard_4)
{
    takeover_lands_on_another_shard(4);
}

/* ---- persistent session ---- */

/*
 * Reconnections of the persistent session. The kernel spreads connections
 * over the shards' SO_REUSEPORT sockets by a hash of the 4-tuple, so each
 * one lands on a shard other than the home one about half the time (with
 * 2 shards): 16 rounds make a resume that never crossed shards a
 * 1-in-250,000 event.
 */
#define PERSIST_ROUNDS 16
#define PERSIST_MSGS 3

static void persistent_session_resumes(unsigned n)
{
    struct e2e_broker *b = start_shards(n, NULL);
    struct e2e_client *pub;
    char sid[ID_MAX], pid[ID_MAX];
    int fd;
    int round, i;

    id_on(0, n, "ps-sub", sid, sizeof(sid));
    id_on(n - 1, n, "ps-pub", pid, sizeof(pid));
    pub = e2e_client_connect(b, E2E_V311, pid, true);
    fd = e2e_raw_connect_ok(b, E2E_V311, sid, false, 0);
    raw_subscribe(fd, "ps/t", 1, 1);
    for (round = 0; round < PERSIST_ROUNDS; round++) {
        struct e2e_connect_opts o = {.version = E2E_V311, .id = sid, .clean = false};
        uint8_t connack[4];
        char payload[32];

        raw_disconnect(fd);
        /* Offline: these wait in the session on its home shard. */
        for (i = 0; i < PERSIST_MSGS; i++) {
            snprintf(payload, sizeof(payload), "r%d-m%d", round, i);
            e2e_client_publish(pub, "ps/t", payload, strlen(payload), 1, false);
        }
        fd = e2e_raw_connect(b, &o, connack);
        cr_assert_eq(connack[3], 0);
        cr_assert_eq(connack[2], 1, "round %d: session present [MQTT-3.2.2-2]", round);
        for (i = 0; i < PERSIST_MSGS; i++) {
            snprintf(payload, sizeof(payload), "r%d-m%d", round, i);
            raw_expect_publish_qos1(fd, "ps/t", payload);
        }
        raw_ping(fd);
    }
    raw_disconnect(fd);
    e2e_client_disconnect(pub);
    stop_expecting_handoffs(b, n);
}

E2E_TEST(shards, persistent_session_resumed_after_landing_on_another_shard_2)
{
    persistent_session_resumes(2);
}

E2E_TEST(shards, persistent_session_resumed_after_landing_on_another_shard_4)
{
    persistent_session_resumes(4);
}

/* ---- 100k QoS 1 messages in order ---- */

#define ORDER_N 100000u
#define ORDER_WINDOW 64u /* publisher: unacknowledged PUBLISHes */
#define ORDER_DEADLINE_MS 40000
#define ORDER_LIMITS "[limits]\nqueued_max = 200000\ninflight_max = 100\n"

/* A streaming reader of MQTT packets from a socket. */
struct pkt_reader {
    uint8_t buf[65536];
    size_t len;
};

/*
 * Take the next whole packet at *@off of @r into (*@pkt, *@pkt_len, *@hdr)
 * and advance *@off, or return false if none is complete. The pointer is
 * valid until the buffer is compacted.
 */
static bool reader_next(struct pkt_reader *r, size_t *off, const uint8_t **pkt, size_t *pkt_len,
                        size_t *hdr)
{
    size_t avail = r->len - *off;
    const uint8_t *p = r->buf + *off;
    size_t rem = 0, i;
    unsigned shift = 0;

    for (i = 1; i < 5 && i < avail; i++) {
        rem |= (size_t)(p[i] & 0x7f) << shift;
        shift += 7;
        if (!(p[i] & 0x80)) {
            break;
        }
    }
    if (i >= avail || i == 5 || avail < i + 1 + rem) {
        return false;
    }
    *pkt = p;
    *hdr = i + 1;
    *pkt_len = i + 1 + rem;
    *off += *pkt_len;
    return true;
}

/* recv what is there (non-blocking after poll); false when the peer closed. */
static bool reader_fill(struct pkt_reader *r, int fd)
{
    ssize_t got;

    if (r->len == sizeof(r->buf)) {
        return true; /* cannot happen: whole packets are taken after each fill */
    }
    got = recv(fd, r->buf + r->len, sizeof(r->buf) - r->len, MSG_DONTWAIT);
    if (got == 0) {
        return false;
    }
    if (got > 0) {
        r->len += (size_t)got;
    }
    return got > 0 || errno == EAGAIN || errno == EINTR;
}

static void order_of_100k_qos1(unsigned n)
{
    struct e2e_broker *b = start_shards(n, ORDER_LIMITS);
    static struct pkt_reader rp, rs;
    char sid[ID_MAX], pid[ID_MAX];
    uint32_t next = 0, acked = 0, received = 0, dups = 0, gaps = 0;
    uint32_t inflight = 0;
    int64_t deadline;
    int sub, pub;

    id_on(0, n, "ord-sub", sid, sizeof(sid));
    id_on(n - 1, n, "ord-pub", pid, sizeof(pid));
    sub = e2e_raw_connect_ok(b, E2E_V311, sid, true, 0);
    raw_subscribe(sub, "ord/t", 1, 1);
    pub = e2e_raw_connect_ok(b, E2E_V311, pid, true, 0);
    rp.len = rs.len = 0;
    deadline = e2e_now_ms() + ORDER_DEADLINE_MS;
    while ((received < ORDER_N || acked < ORDER_N) && e2e_now_ms() < deadline) {
        struct pollfd pfd[2] = {{.fd = pub, .events = POLLIN}, {.fd = sub, .events = POLLIN}};
        uint8_t out[ORDER_WINDOW * 32];
        uint8_t acks[1024 * 4];
        size_t out_len = 0, acks_len = 0, off;
        const uint8_t *pkt;
        size_t pkt_len, hdr;

        /* Publisher: keep the window full. */
        while (inflight < ORDER_WINDOW && next < ORDER_N) {
            uint8_t *q = out + out_len;
            uint16_t id = (uint16_t)(next % 65535 + 1);

            /* PUBLISH QoS 1, topic "ord/t", packet id, 4-byte big-endian sequence. */
            q[0] = 0x32;
            q[1] = 2 + 5 + 2 + 4;
            q[2] = 0;
            q[3] = 5;
            memcpy(q + 4, "ord/t", 5);
            q[9] = (uint8_t)(id >> 8);
            q[10] = (uint8_t)id;
            q[11] = (uint8_t)(next >> 24);
            q[12] = (uint8_t)(next >> 16);
            q[13] = (uint8_t)(next >> 8);
            q[14] = (uint8_t)next;
            out_len += 15;
            next++;
            inflight++;
        }
        if (out_len > 0) {
            cr_assert(e2e_raw_send(pub, out, out_len), "publisher send failed");
        }
        if (poll(pfd, 2, 100) < 0) {
            continue;
        }
        if (pfd[0].revents) {
            cr_assert(reader_fill(&rp, pub), "the broker closed the publisher");
            off = 0;
            while (reader_next(&rp, &off, &pkt, &pkt_len, &hdr)) {
                cr_assert_eq(pkt[0], 0x40, "PUBACK expected, got 0x%02x", pkt[0]);
                acked++;
                inflight--;
            }
            memmove(rp.buf, rp.buf + off, rp.len - off);
            rp.len -= off;
        }
        if (pfd[1].revents) {
            cr_assert(reader_fill(&rs, sub), "the broker closed the subscriber");
            off = 0;
            while (reader_next(&rs, &off, &pkt, &pkt_len, &hdr)) {
                uint32_t seq;
                size_t p = hdr + 2 + 5;

                cr_assert_eq(pkt[0] & 0xf6, 0x32, "QoS 1 PUBLISH expected, got 0x%02x", pkt[0]);
                cr_assert_eq(pkt_len, p + 2 + 4);
                seq = (uint32_t)pkt[p + 2] << 24 | (uint32_t)pkt[p + 3] << 16 |
                      (uint32_t)pkt[p + 4] << 8 | pkt[p + 5];
                if (seq < received) {
                    dups++;
                } else if (seq > received) {
                    gaps++;
                }
                cr_assert_eq(seq, received, "message %u arrived when %u was due (%s)", seq,
                             received, seq < received ? "duplicate" : "lost or reordered");
                received++;
                memcpy(acks + acks_len, "\x40\x02", 2);
                memcpy(acks + acks_len + 2, pkt + p, 2);
                acks_len += 4;
                if (acks_len == sizeof(acks)) {
                    cr_assert(e2e_raw_send(sub, acks, acks_len));
                    acks_len = 0;
                }
            }
            memmove(rs.buf, rs.buf + off, rs.len - off);
            rs.len -= off;
            if (acks_len > 0) {
                cr_assert(e2e_raw_send(sub, acks, acks_len));
            }
        }
    }
    cr_assert_eq(acked, ORDER_N, "%u of %u PUBACKs within %d ms", acked, ORDER_N,
                 ORDER_DEADLINE_MS);
    cr_assert_eq(received, ORDER_N, "%u of %u messages within %d ms", received, ORDER_N,
                 ORDER_DEADLINE_MS);
    cr_assert_eq(dups + gaps, 0);
    /* Nothing more may come: no duplicate after the last one. */
    {
        uint8_t extra[64];

        cr_assert_eq(e2e_raw_recv(sub, extra, 1, E2E_QUIET_MS), 0, "a message after the last");
    }
    raw_disconnect(sub);
    raw_disconnect(pub);
    e2e_broker_stop(b);
}

E2E_TEST(shards, keeps_the_order_of_100k_qos1_messages_between_shards_2)
{
    order_of_100k_qos1(2);
}

E2E_TEST(shards, keeps_the_order_of_100k_qos1_messages_between_shards_4)
{
    order_of_100k_qos1(4);
}

/* ---- overlapping filters: one copy per message ---- */

#define OVERLAP_MSGS 20

/*
 * 3.1.1 allows one copy per matching subscription; ringmq delivers one copy
 * per message at the highest granted QoS - and never one per shard, however
 * many shards hold subscribers or relay the message.
 */
static void one_copy_through_overlapping_filters(unsigned n)
{
    static const char *const filters[] = {"ov/#", "ov/+/x", "ov/a/x", "ov/a/+", "+/a/x"};
    struct e2e_broker *b = start_shards(n, NULL);
    struct e2e_client *subs[4 * 2], *pub;
    char id[ID_MAX];
    unsigned k = 2 * n, s, i;

    for (s = 0; s < k; s++) {
        char prefix[16];

        snprintf(prefix, sizeof(prefix), "ov%u-", s);
        id_on(s % n, n, prefix, id, sizeof(id));
        subs[s] = e2e_client_connect(b, E2E_V311, id, true);
        for (i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
            e2e_client_subscribe(subs[s], filters[i], i % 2 == 0 ? 1 : 0);
        }
    }
    id_on(n - 1, n, "ov-pub", id, sizeof(id));
    pub = e2e_client_connect(b, E2E_V311, id, true);
    for (i = 0; i < OVERLAP_MSGS; i++) {
        char payload[16];

        snprintf(payload, sizeof(payload), "m%u", i);
        e2e_client_publish(pub, "ov/a/x", payload, strlen(payload), 1, false);
    }
    for (s = 0; s < k; s++) {
        for (i = 0; i < OVERLAP_MSGS; i++) {
            char payload[16];

            snprintf(payload, sizeof(payload), "m%u", i);
            e2e_client_expect(subs[s], "ov/a/x", payload, 1, false);
        }
    }
    for (s = 0; s < k; s++) {
        e2e_client_expect_no_message(subs[s], s == 0 ? E2E_QUIET_MS : 0);
        e2e_client_disconnect(subs[s]);
    }
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}

E2E_TEST(shards, one_copy_per_message_through_overlapping_filters_1)
{
    one_copy_through_overlapping_filters(1);
}

E2E_TEST(shards, one_copy_per_message_through_overlapping_filters_2)
{
    one_copy_through_overlapping_filters(2);
}

E2E_TEST(shards, one_copy_per_message_through_overlapping_filters_4)
{
    one_copy_through_overlapping_filters(4);
}

/* ---- empty client id ---- */

#define EMPTY_ID_CONNS 12

static void empty_id_stays_where_it_landed(unsigned n)
{
    struct e2e_broker *b;
    int fds[EMPTY_ID_CONNS];
    int i;

    b = start_shards(n, NULL);
    for (i = 0; i < EMPTY_ID_CONNS; i++) {
        fds[i] = e2e_raw_connect_ok(b, E2E_V311, "", true, 0);
        raw_subscribe(fds[i], "e/t", 1, 1);
    }
    {
        struct e2e_client *pub = e2e_client_connect(b, E2E_V311, "e-pub", true);

        e2e_client_publish(pub, "e/t", "hi", 2, 1, false);
        e2e_client_disconnect(pub);
    }
    for (i = 0; i < EMPTY_ID_CONNS; i++) {
        raw_expect_publish_qos1(fds[i], "e/t", "hi");
        raw_disconnect(fds[i]);
    }
    e2e_broker_stop(b);
    if (!e2e_mosquitto_mode()) {
        /* Only e-pub may have been handed over. */
        cr_assert_leq(log_sum(b, "handoffs "), 1, "an assigned id was homed elsewhere");
    }
}

E2E_TEST(shards, an_empty_client_id_gets_an_id_homed_where_it_landed_2)
{
    e2e_ringmq_only("the log's handoff counters");
    empty_id_stays_where_it_landed(2);
}

E2E_TEST(shards, an_empty_client_id_gets_an_id_homed_where_it_landed_4)
{
    e2e_ringmq_only("the log's handoff counters");
    empty_id_stays_where_it_landed(4);
}

/* ---- stop with traffic in flight ---- */

#define FLOOD_MSGS 3000

/*
 * SIGTERM while every shard has messages queued to the others (publishes,
 * wills, interest changes): every shard stops, the process exits 0, and
 * under ASan nothing leaks - what was still in a ring or an overflow is
 * released after the threads are joined.
 */
static void stops_cleanly_with_traffic_in_flight(unsigned n)
{
    struct e2e_broker *b = start_shards(n, NULL);
    struct e2e_client *subs[4], *pubs[4];
    struct e2e_will will = {.topic = "fl/will", .payload = "gone", .payload_len = 4, .qos = 1};
    static const char payload[256];
    char id[ID_MAX];
    uint32_t s;
    int i;

    for (s = 0; s < n; s++) {
        struct e2e_client_opts o = {
            .version = E2E_V311, .id = id, .clean = s % 2 == 0, .will = &will};
        char prefix[16];

        snprintf(prefix, sizeof(prefix), "fs%u-", s);
        id_on(s, n, prefix, id, sizeof(id));
        subs[s] = e2e_client_start(b, &o);
        e2e_client_wait_connack(subs[s], 0);
        e2e_client_subscribe(subs[s], "fl/#", s % 2);
        snprintf(prefix, sizeof(prefix), "fp%u-", s);
        id_on((s + 1) % n, n, prefix, id, sizeof(id));
        pubs[s] = e2e_client_connect(b, E2E_V311, id, true);
    }
    for (i = 0; i < FLOOD_MSGS; i++) {
        for (s = 0; s < n; s++) {
            e2e_client_publish_async(pubs[s], i % 7 == 0 ? "fl/r" : "fl/t", payload,
                                     sizeof(payload), i % 3 == 0 ? 1 : 0, i % 7 == 0);
        }
    }
    /* Let some of it reach the broker, then stop it mid-flood. */
    e2e_msg_free(e2e_client_wait_message(subs[0], 1000));
    e2e_broker_stop(b);
    for (s = 0; s < n; s++) {
        e2e_client_abort(subs[s]);
        e2e_client_abort(pubs[s]);
    }
}

E2E_TEST(shards, stops_cleanly_with_traffic_in_flight_2)
{
    stops_cleanly_with_traffic_in_flight(2);
}

E2E_TEST(shards, stops_cleanly_with_traffic_in_flight_4)
{
    stops_cleanly_with_traffic_in_flight(4);
}
