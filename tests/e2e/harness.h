/*
 * harness.h - end-to-end test harness: start a real broker, drive it with
 * real clients.
 *
 * Each Criterion test runs in its own process and gets its own broker (own
 * temp dir under /tmp, own ephemeral port on 127.0.0.1, own log file), so
 * tests can run in parallel (--jobs 2). The broker is $RINGMQ_BIN, or, with
 * RINGMQ_E2E_MOSQUITTO=1, Debian's /usr/sbin/mosquitto as a reference broker
 * (tests of ringmq-only behaviour skip themselves in that mode).
 *
 * Three layers:
 *  - e2e_broker_*: start/stop the broker process. e2e_broker_stop() asserts
 *    a clean exit (status 0), so a leak under ASan fails the test. The
 *    Criterion runner prints the broker log of every failed test and removes
 *    the temp dir afterwards (a report hook in harness.c).
 *  - e2e_client_*: a libmosquitto client run by a harness-owned loop thread
 *    (no automatic reconnects, so a broker-side close is observable);
 *    received messages go into a queue that tests wait on with timeouts.
 *  - e2e_raw_* / e2e_pkt_*: a plain TCP socket and an independent packet
 *    builder (deliberately not core/mqtt_codec, so a symmetric codec bug in
 *    the broker cannot hide) for exact-byte and malformed-input tests.
 *
 * Every wait is bounded. Functions that "assert" use cr_assert and abort the
 * test on failure. Threads: call everything from the test's main thread; the
 * client loop threads only run libmosquitto callbacks.
 */
#ifndef RINGMQ_E2E_HARNESS_H
#define RINGMQ_E2E_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <criterion/criterion.h>
#include <mosquitto.h>

/* Default bound on every wait for something that must happen. */
#define E2E_WAIT_MS 5000
/* How long to watch for something that must not happen. */
#define E2E_QUIET_MS 300
/* Criterion's per-test timeout: a hung test fails instead of hanging ctest. */
#define E2E_TEST_TIMEOUT_S 40.0

/* Protocol levels (same values as libmosquitto's and core/mqtt_codec.h's). */
#define E2E_V31 MQTT_PROTOCOL_V31
#define E2E_V311 MQTT_PROTOCOL_V311

/* A test, with the harness's timeout. */
#define E2E_TEST(suite, name) Test(suite, name, .timeout = E2E_TEST_TIMEOUT_S)

/*
 * Two tests from one body taking the protocol level: <name>_v311 and
 * <name>_v31. @fn is a static void fn(int version).
 */
#define E2E_TEST_BOTH(suite, name, fn)                                                             \
    E2E_TEST(suite, name##_v311)                                                                   \
    {                                                                                              \
        fn(E2E_V311);                                                                              \
    }                                                                                              \
    E2E_TEST(suite, name##_v31)                                                                    \
    {                                                                                              \
        fn(E2E_V31);                                                                               \
    }

/* ------------------------------------------------------------------ broker */

struct e2e_broker {
    pid_t pid;      /* the broker process; 0 once reaped */
    uint16_t port;  /* its listener on 127.0.0.1 */
    bool mosquitto; /* reference mode */
    char dir[256];  /* temp dir: config file and log */
    char conf_path[320];
    char log_path[320];
};

/* True when RINGMQ_E2E_MOSQUITTO=1: the broker under test is mosquitto. */
bool e2e_mosquitto_mode(void);

/*
 * Skip the current test (Criterion skip) in mosquitto mode: for tests of
 * ringmq's own limit keys or of behaviour where mosquitto is known to differ
 * (@why says which). Does not return in that mode.
 */
void e2e_ringmq_only(const char *why);

/*
 * Start a broker with the harness's base config ([broker] log_level = debug,
 * [listener.default] bind = 127.0.0.1, port = 0) plus @extra_ini (INI text
 * appended verbatim, may be NULL). Waits (bounded) until it listens and
 * returns it; asserts on any failure. In mosquitto mode the [limits] keys
 * queued_max, inflight_max and allow_zero_length_client_id of @extra_ini are
 * mapped to mosquitto.conf; others are ignored. The returned object lives
 * until the test process exits.
 */
struct e2e_broker *e2e_broker_start(const char *extra_ini);

/*
 * SIGTERM the broker, wait (bounded, then SIGKILL) and assert it exited with
 * status 0. Call at the end of every test that started one.
 */
void e2e_broker_stop(struct e2e_broker *b);

/* True if the broker's log so far contains @needle. */
bool e2e_broker_log_contains(const struct e2e_broker *b, const char *needle);

/* Print the broker's log to stderr (the runner also does it on failure). */
void e2e_broker_dump_log(const struct e2e_broker *b);

/*
 * Assert the broker still serves a new client: a fresh libmosquitto client
 * connects, subscribes, publishes to itself at QoS 1 and receives it.
 */
void e2e_broker_check_alive(struct e2e_broker *b);

/*
 * The latest acceptable disconnect, in ms after CONNACK, of a silent client
 * with keepalive 1 s: 3000 (1.5 s [MQTT-3.1.2-24] plus slack for sanitizer
 * builds). mosquitto 2.0.11 checks keepalives only every ~5 s, so in
 * reference mode this is 6500.
 */
int64_t e2e_keepalive_1s_max_ms(void);

/* Monotonic milliseconds. */
int64_t e2e_now_ms(void);

/* Sleep @ms milliseconds (short pauses only; prefer waiting on conditions). */
void e2e_sleep_ms(int ms);

/* ------------------------------------------------------ libmosquitto client */

/* One received PUBLISH, owned by the caller after e2e_client_wait_message(). */
struct e2e_msg {
    char *topic;
    uint8_t *payload; /* NUL-terminated copy (the NUL is not counted) */
    size_t payload_len;
    int qos;
    bool retain;
    int mid;
    struct e2e_msg *_next;
};

void e2e_msg_free(struct e2e_msg *msg);

struct e2e_will {
    const char *topic;
    const void *payload;
    size_t payload_len;
    int qos;
    bool retain;
};

struct e2e_client_opts {
    int version;                 /* E2E_V31 or E2E_V311 */
    const char *id;              /* must be non-NULL and non-empty */
    bool clean;                  /* clean session flag */
    int keepalive_s;             /* 0: 60 s; libmosquitto refuses 1..4 */
    const struct e2e_will *will; /* NULL: none */
};

struct e2e_client;

/*
 * Create a client, open the TCP connection and send CONNECT, without waiting
 * for CONNACK (see e2e_client_wait_connack()). Asserts the TCP connect works.
 */
struct e2e_client *e2e_client_start(struct e2e_broker *b, const struct e2e_client_opts *o);

/*
 * Wait (bounded) for CONNACK; assert its return code is @rc. Returns the
 * session-present flag (0 or 1).
 */
int e2e_client_wait_connack(struct e2e_client *c, int rc);

/* e2e_client_start() + e2e_client_wait_connack(c, 0); asserts session present 0. */
struct e2e_client *e2e_client_connect(struct e2e_broker *b, int version, const char *id,
                                      bool clean);

/* Subscribe one filter and wait for SUBACK; returns the granted QoS (0x80 = failure). */
int e2e_client_subscribe(struct e2e_client *c, const char *filter, int qos);

/*
 * Barrier: return once the broker has processed everything @c sent before
 * (a SUBACK round trip for the filter "$e2e/sync").
 */
void e2e_client_sync(struct e2e_client *c);

/* Unsubscribe one filter and wait for UNSUBACK (asserted). */
void e2e_client_unsubscribe(struct e2e_client *c, const char *filter);

/*
 * Publish and wait until the broker has processed it: PUBACK/PUBCOMP for
 * QoS 1/2, e2e_client_sync() for QoS 0. Asserts both. (With several shards,
 * "processed" means by the publisher's shard: the message may still be on
 * its way to subscribers homed elsewhere.)
 */
void e2e_client_publish(struct e2e_client *c, const char *topic, const void *payload, size_t len,
                        int qos, bool retain);

/* Publish without waiting; returns the message id for e2e_client_wait_published(). */
int e2e_client_publish_async(struct e2e_client *c, const char *topic, const void *payload,
                             size_t len, int qos, bool retain);
void e2e_client_wait_published(struct e2e_client *c, int mid, int timeout_ms);

/* The next received message within @timeout_ms, or NULL. Caller frees it. */
struct e2e_msg *e2e_client_wait_message(struct e2e_client *c, int timeout_ms);

/* Like e2e_client_wait_message() with E2E_WAIT_MS, asserting a message came. */
struct e2e_msg *e2e_client_expect_message(struct e2e_client *c);

/*
 * Expect the next message to be @topic with @payload (string), @qos and
 * @retain; asserts each field and frees it.
 */
void e2e_client_expect(struct e2e_client *c, const char *topic, const char *payload, int qos,
                       bool retain);

/* Assert no message arrives within @ms. */
void e2e_client_expect_no_message(struct e2e_client *c, int ms);

/* True once the connection is gone (closed by the broker or lost). */
bool e2e_client_wait_closed(struct e2e_client *c, int timeout_ms);

/* Send DISCONNECT, wait until sent, close and free. */
void e2e_client_disconnect(struct e2e_client *c);

/* Close the socket without DISCONNECT (the broker sees EOF), free. */
void e2e_client_abort(struct e2e_client *c);

/* -------------------------------------------------------- raw MQTT packets */

/* A growable packet buffer; build the body, then e2e_pkt_finish(). */
struct e2e_pkt {
    uint8_t *buf;
    size_t len;
    size_t cap;
};

void e2e_pkt_init(struct e2e_pkt *p);
void e2e_pkt_free(struct e2e_pkt *p);
void e2e_pkt_u8(struct e2e_pkt *p, uint8_t v);
void e2e_pkt_u16(struct e2e_pkt *p, uint16_t v);
void e2e_pkt_bytes(struct e2e_pkt *p, const void *data, size_t len);
/* A length-prefixed field of @len bytes (need not be valid UTF-8). */
void e2e_pkt_str_n(struct e2e_pkt *p, const void *s, size_t len);
void e2e_pkt_str(struct e2e_pkt *p, const char *s);
/* Prepend the fixed header: @first_byte and the remaining length. */
void e2e_pkt_finish(struct e2e_pkt *p, uint8_t first_byte);

struct e2e_connect_opts {
    int version;    /* E2E_V31 ("MQIsdp") or E2E_V311 ("MQTT") */
    const char *id; /* may be "" */
    bool clean;
    uint16_t keepalive_s;
    const char *will_topic; /* NULL: no will */
    const char *will_payload;
    uint8_t will_qos;
    bool will_retain;
    const char *username; /* NULL: none */
    const char *password; /* NULL: none */
    /* Overrides for malformed CONNECTs. */
    const char *proto_name; /* NULL: the version's name */
    int proto_level;        /* 0: @version */
    uint8_t flags_set;      /* OR-ed into the connect flags */
};

void e2e_pkt_connect(struct e2e_pkt *p, const struct e2e_connect_opts *o);
void e2e_pkt_publish(struct e2e_pkt *p, const char *topic, uint8_t qos, bool retain, bool dup,
                     uint16_t pkt_id, const void *payload, size_t len);
void e2e_pkt_subscribe(struct e2e_pkt *p, uint16_t pkt_id, size_t n, const char *const *filters,
                       const uint8_t *qos);
void e2e_pkt_unsubscribe(struct e2e_pkt *p, uint16_t pkt_id, size_t n, const char *const *filters);
/* A two-byte-body packet: PUBACK 0x40, PUBREC 0x50, PUBREL 0x62, PUBCOMP 0x70. */
void e2e_pkt_ack(struct e2e_pkt *p, uint8_t first_byte, uint16_t pkt_id);

/* ----------------------------------------------------------- raw socket */

/* TCP connect to the broker; asserts. Returns the fd. */
int e2e_raw_open(const struct e2e_broker *b);

/* e2e_raw_open() with SO_RCVBUF set to @rcvbuf_bytes before connecting. */
int e2e_raw_open_rcvbuf(const struct e2e_broker *b, int rcvbuf_bytes);

/* Send everything; false if the peer closed (EPIPE/ECONNRESET). */
bool e2e_raw_send(int fd, const void *buf, size_t len);

/* Send a finished packet and free it; asserts the send worked. */
void e2e_raw_send_pkt(int fd, struct e2e_pkt *p);

/*
 * Read exactly @n bytes within @timeout_ms. Returns the bytes read: @n, or
 * fewer on timeout or when the peer closed.
 */
size_t e2e_raw_recv(int fd, void *buf, size_t n, int timeout_ms);

/* Assert the next bytes are exactly @want (printed in hex on mismatch). */
void e2e_raw_expect(int fd, const void *want, size_t n, int timeout_ms);

/*
 * Read one whole MQTT packet within @timeout_ms into @buf (fixed header
 * included). Returns its size, or 0 on timeout/close/overflow. @hdr_bytes
 * (may be NULL) receives the fixed header size.
 */
size_t e2e_raw_read_packet(int fd, uint8_t *buf, size_t cap, int timeout_ms, size_t *hdr_bytes);

/*
 * Wait until the peer closes (recv 0 or ECONNRESET). Returns true if it
 * closed within @timeout_ms. @junk (may be NULL) receives the number of
 * bytes that arrived before the close.
 */
bool e2e_raw_wait_closed(int fd, int timeout_ms, size_t *junk);

/* Assert the broker closes @fd within E2E_WAIT_MS without sending anything. */
void e2e_raw_expect_closed_silently(int fd);

/*
 * Open a socket, send CONNECT per @o and read the 4-byte CONNACK into
 * @connack (asserted to arrive). Returns the fd.
 */
int e2e_raw_connect(const struct e2e_broker *b, const struct e2e_connect_opts *o,
                    uint8_t connack[4]);

/* e2e_raw_connect() asserting CONNACK "20 02 00 00". */
int e2e_raw_connect_ok(const struct e2e_broker *b, int version, const char *id, bool clean,
                       uint16_t keepalive_s);

/* Close @fd (no DISCONNECT). */
void e2e_raw_close(int fd);

#endif
