/*
 * 28-shutdown.c - e2e: the graceful stop on SIGTERM (issue 16, net/drain):
 * connected MQTT 5.0 clients hear DISCONNECT 0x8B before their socket
 * closes [MQTT-4.13.2-1], 3.1.1 clients are closed without a byte, new
 * connections are refused as soon as the stop began, the wills of the
 * sessions that end with the process - connected clients' and delayed ones
 * - reach a subscriber before its DISCONNECT [MQTT-3.1.2-8, MQTT-3.1.3-9],
 * and the broker exits 0 on the one signal; with [persistence], a will
 * queued at the stop for an offline session is there after a restart.
 * ringmq-only: mosquitto 2.0.11 closes without DISCONNECT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/e2e/harness.h"

#define ID_MAX 64
#define SHARDS_MAX 4
#define WILL_DELAY_S 300 /* far beyond the test: only the stop can send it */

/* A TCP connect to @port on 127.0.0.1; returns 0 or the errno it failed with. */
static int try_connect(uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int err = 0;

    cr_assert(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        err = errno;
    }
    close(fd);
    return err;
}

/*
 * One v5 client homed on each shard and a 3.1.1 client; SIGTERM. Each v5
 * client reads DISCONNECT 0x8B and keeps its socket open, so the broker is
 * still draining (it waits for the peers to close) when every shard has
 * begun its stop: a new connection is then refused, not accepted and
 * closed. The 3.1.1 client gets no byte. One signal is enough to exit 0.
 */
static void drain(unsigned n)
{
    struct e2e_broker *b;
    int fds[SHARDS_MAX];
    struct e2e_v5pkt d;
    size_t junk = 0;
    int v3;
    int err;
    unsigned i;

    e2e_ringmq_only("mosquitto 2.0.11 closes without DISCONNECT 0x8B");
    b = e2e_broker_start_shards(n, NULL);
    for (i = 0; i < n; i++) {
        char id[ID_MAX];
        char prefix[16];

        snprintf(prefix, sizeof(prefix), "drain%u-", i);
        e2e_id_on(i, n, prefix, id, sizeof(id));
        fds[i] = e2e_raw_connect5_ok(b, id, true, 0, NULL);
    }
    v3 = e2e_raw_connect_ok(b, E2E_V311, "drain-v3", true, 0);
    cr_assert(kill(b->pid, SIGTERM) == 0);
    for (i = 0; i < n; i++) {
        cr_assert(e2e_raw_read5(fds[i], &d, E2E_WAIT_MS), "no DISCONNECT on shard %u", i);
        cr_assert_eq(d.type, E2E_DISCONNECT, "packet type %u on shard %u", d.type, i);
        cr_assert_eq(d.reason, MQTT_RC_SERVER_SHUTTING_DOWN, "reason 0x%02x [MQTT-4.13.2-1]",
                     d.reason);
        e2e_v5pkt_free(&d);
    }
    /* Every shard has begun its stop (each sent a DISCONNECT): nobody listens. */
    err = try_connect(b->port);
    cr_assert_eq(err, ECONNREFUSED, "a new connection during the stop: %s",
                 err == 0 ? "accepted" : strerror(err));
    for (i = 0; i < n; i++) {
        cr_assert(e2e_raw_wait_closed(fds[i], E2E_WAIT_MS, &junk), "shard %u did not close", i);
        cr_assert_eq(junk, 0, "bytes after DISCONNECT [MQTT-3.14.4-1]");
        e2e_raw_close(fds[i]);
    }
    cr_assert(e2e_raw_wait_closed(v3, E2E_WAIT_MS, &junk));
    cr_assert_eq(junk, 0, "a 3.1.1 client got %zu bytes at shutdown", junk);
    e2e_raw_close(v3);
    e2e_broker_wait_exit(b);
}
E2E_TEST_SHARDS(shutdown, sigterm_sends_0x8b_refuses_new_connections_exits_0, drain)

/* A v5 client with a will delayed by WILL_DELAY_S and a session that outlives it. */
static int connect_delayed_will(struct e2e_broker *b, const char *id, const char *topic)
{
    struct e2e_props props = {.len = 0};
    struct e2e_props wp = {.len = 0};
    struct e2e_connect_opts o = {
        .version = E2E_V5,
        .id = id,
        .clean = true,
        .will_topic = topic,
        .will_payload = id,
    };
    struct e2e_v5pkt ack;
    int fd;

    e2e_props_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 2 * WILL_DELAY_S);
    e2e_props_u32(&wp, MQTT_PROP_WILL_DELAY_INTERVAL, WILL_DELAY_S);
    o.props = &props;
    o.will_props = &wp;
    fd = e2e_raw_connect5(b, &o, &ack);
    cr_assert_eq(ack.reason, 0, "CONNACK 0x%02x for %s", ack.reason, id);
    e2e_v5pkt_free(&ack);
    return fd;
}

/*
 * The process ends every session (they live in memory), so every will is
 * due: a connected 3.1.1 client's, a connected v5 client's delayed one and
 * an offline session's delayed one all reach a v5 subscriber before its
 * DISCONNECT 0x8B. One shard: across shards the order is best effort
 * (net/drain.c).
 */
E2E_TEST(shutdown, wills_of_ending_sessions_reach_subscribers_before_0x8b)
{
    struct e2e_connect_opts a = {
        .version = E2E_V311, .id = "will-a", .clean = true,
        .will_topic = "w/a", .will_payload = "a"};
    static const uint8_t ok[4] = {0x20, 0x02, 0x00, 0x00};
    struct e2e_broker *b;
    struct e2e_v5pkt m;
    bool seen[3] = {false, false, false};
    uint8_t ack[4];
    size_t mark;
    int sub;
    int fa;
    int fc;
    int fd;
    int i;

    e2e_ringmq_only("mosquitto 2.0.11 closes without DISCONNECT 0x8B");
    b = e2e_broker_start_shards(1, NULL); /* the harness logs at debug */
    sub = e2e_raw_connect5_ok(b, "will-sub", true, 0, NULL);
    cr_assert_eq(e2e_raw_subscribe5(sub, 1, "w/#", 0, NULL), 0);
    fa = e2e_raw_connect(b, &a, ack);
    cr_assert(memcmp(ack, ok, 4) == 0);
    fc = connect_delayed_will(b, "will-c", "w/c");
    fd = connect_delayed_will(b, "will-d", "w/d");
    /* will-d goes offline: its will waits for the delay, or the session's end. */
    mark = e2e_broker_log_size(b);
    e2e_raw_close(fd);
    for (i = 0; i < E2E_WAIT_MS / 10 && !e2e_broker_log_contains_after(b, mark, " closed: ");
         i++) {
        e2e_sleep_ms(10);
    }
    cr_assert(e2e_broker_log_contains_after(b, mark, " closed: "), "will-d's close not seen");

    cr_assert(kill(b->pid, SIGTERM) == 0);
    /* Bounded: three wills, then the DISCONNECT. */
    for (i = 0; i < 4; i++) {
        cr_assert(e2e_raw_read5(sub, &m, E2E_WAIT_MS), "packet %d did not come", i);
        if (m.type == E2E_DISCONNECT) {
            break;
        }
        cr_assert_eq(m.type, E2E_PUBLISH);
        cr_assert(m.topic[0] == 'w' && m.topic[1] == '/' && m.topic[2] >= 'a' &&
                  m.topic[2] <= 'd' && m.topic[3] == '\0', "topic %s", m.topic);
        seen[m.topic[2] == 'a' ? 0 : m.topic[2] == 'c' ? 1 : 2] = true;
        e2e_v5pkt_free(&m);
    }
    cr_assert_eq(m.type, E2E_DISCONNECT, "no DISCONNECT after the wills");
    cr_assert_eq(m.reason, MQTT_RC_SERVER_SHUTTING_DOWN);
    e2e_v5pkt_free(&m);
    cr_assert(seen[0], "the connected 3.1.1 client's will [MQTT-3.1.2-8]");
    cr_assert(seen[1], "the connected v5 client's delayed will: its session ends [MQTT-3.1.3-9]");
    cr_assert(seen[2], "the offline session's delayed will: its session ends [MQTT-3.1.3-9]");
    e2e_raw_close(sub);
    e2e_raw_close(fa);
    e2e_raw_close(fc);
    e2e_broker_wait_exit(b);
}

/* Remove the write-ahead log directory @dir (its files, then itself). */
static void wal_dir_remove(const char *dir)
{
    char pattern[PATH_MAX];
    glob_t g;
    size_t i;

    snprintf(pattern, sizeof(pattern), "%s/*", dir);
    if (glob(pattern, 0, NULL, &g) == 0) {
        for (i = 0; i < g.gl_pathc; i++) {
            unlink(g.gl_pathv[i]);
        }
        globfree(&g);
    }
    rmdir(dir);
}

/*
 * With [persistence], a persistent session survives the restart but the log
 * keeps no will: the stop publishes a connected client's will, the offline
 * persistent subscriber's session queues it, the log has it on disk before
 * the process exits 0, and the subscriber receives it from the next broker
 * on the same directory [MQTT-3.1.2-8].
 */
E2E_TEST(shutdown, will_published_at_stop_survives_restart_with_persistence)
{
    static const struct e2e_will will = {
        .topic = "w/gone", .payload = "gone", .payload_len = 4, .qos = 1};
    struct e2e_client_opts wo = {.version = E2E_V311, .id = "wal-will", .clean = true,
                                 .will = &will};
    struct e2e_client_opts so = {.version = E2E_V311, .id = "wal-sub", .clean = false};
    char dir[256];
    char ini[sizeof(dir) + 64];
    struct e2e_broker *b;
    struct e2e_client *sub;
    struct e2e_client *wc;

    e2e_ringmq_only("the [persistence] section is ringmq's");
    e2e_tmpdir("shutdown-wal", dir, sizeof(dir));
    snprintf(ini, sizeof(ini), "[persistence]\nenabled = true\ndir = %s\n", dir);

    b = e2e_broker_start_shards(1, ini);
    sub = e2e_client_connect(b, E2E_V311, "wal-sub", false);
    cr_assert_eq(e2e_client_subscribe(sub, "w/#", 1), 1);
    e2e_client_disconnect(sub); /* offline; its session persists */
    wc = e2e_client_start(b, &wo);
    cr_assert_eq(e2e_client_wait_connack(wc, 0), 0);
    e2e_client_sync(wc);
    cr_assert(kill(b->pid, SIGTERM) == 0);
    cr_assert(e2e_client_wait_closed(wc, E2E_WAIT_MS), "the will's client was not closed");
    e2e_broker_wait_exit(b);
    e2e_client_abort(wc);

    b = e2e_broker_start_shards(1, ini);
    sub = e2e_client_start(b, &so);
    cr_assert_eq(e2e_client_wait_connack(sub, 0), 1, "the session did not survive the restart");
    e2e_client_expect(sub, "w/gone", "gone", 1, false);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
    wal_dir_remove(dir);
}
