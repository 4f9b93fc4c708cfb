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
#include <mqtt_protocol.h>

/* Default bound on every wait for something that must happen. */
#define E2E_WAIT_MS 5000
/* How long to watch for something that must not happen. */
#define E2E_QUIET_MS 300
/*
 * Bound on a wait for something the broker does after a deadline of its own
 * (a session expiry, a will delay), counted from when the deadline started.
 * Only reached on failure, so generous: the deadline, the broker's timer
 * running up to a second late, and a loaded machine.
 */
#define E2E_DEADLINE_WAIT_MS 15000
/* Criterion's per-test timeout: a hung test fails instead of hanging ctest. */
#define E2E_TEST_TIMEOUT_S 40.0

/* Protocol levels (same values as libmosquitto's and core/mqtt_codec.h's). */
#define E2E_V31 MQTT_PROTOCOL_V31
#define E2E_V311 MQTT_PROTOCOL_V311
#define E2E_V5 MQTT_PROTOCOL_V5

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

/*
 * Two tests from one body taking the shard count: <name>_shards1 and
 * <name>_shards4. @fn is a static void fn(unsigned shards) that starts its
 * broker with e2e_broker_start_shards(). In mosquitto mode the shard count
 * means nothing, so <name>_shards4 skips itself there (the body runs once).
 */
#define E2E_TEST_SHARDS(suite, name, fn)                                                           \
    E2E_TEST(suite, name##_shards1)                                                                \
    {                                                                                              \
        fn(1);                                                                                     \
    }                                                                                              \
    E2E_TEST(suite, name##_shards4)                                                                \
    {                                                                                              \
        e2e_ringmq_only("the shard count is a ringmq setting (the _shards1 twin runs)");           \
        fn(4);                                                                                     \
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
 * returns it; asserts on any failure. In mosquitto mode these keys of
 * @extra_ini are mapped to mosquitto.conf: [limits] queued_max, inflight_max,
 * allow_zero_length_client_id, packet_bytes_max (max_packet_size); [mqtt]
 * max_qos, retain_available, topic_alias_max (max_topic_alias),
 * keepalive_max (max_keepalive); others are ignored. The returned object lives
 * until the test process exits.
 */
struct e2e_broker *e2e_broker_start(const char *extra_ini);

/*
 * e2e_broker_start() with "[broker]\nshards = @shards" before @extra_ini
 * (may be NULL; it must not have its own [broker] section).
 */
struct e2e_broker *e2e_broker_start_shards(unsigned shards, const char *extra_ini);

/*
 * A client id starting with @prefix that ringmq homes on shard @want of @n
 * (broker_home_shard()); @prefix itself when @n is 1 or in mosquitto mode.
 */
void e2e_id_on(uint32_t want, uint32_t n, const char *prefix, char *out, size_t cap);

/*
 * SIGTERM the broker, wait (bounded, then SIGKILL) and assert it exited with
 * status 0. Call at the end of every test that started one.
 */
void e2e_broker_stop(struct e2e_broker *b);

/*
 * Wait (bounded, then SIGKILL) for a broker already told to stop (the test
 * sent the signal itself) to exit, sending nothing; assert status 0.
 */
void e2e_broker_wait_exit(struct e2e_broker *b);

/*
 * The port of the broker's @n-th listener (0: the first), from its log's
 * "listening on ADDR:PORT" lines; asserts it is there.
 */
uint16_t e2e_broker_listener_port(const struct e2e_broker *b, unsigned n);

/*
 * A fresh directory for a test's own files (password and ACL files), made
 * under $TMPDIR (or /tmp) with @tag in its name; its path into @dir.
 */
void e2e_tmpdir(const char *tag, char *dir, size_t cap);

/*
 * (Re)write password file @path in mosquitto's format with the broker's
 * own core/pwhash: @n users @users[i][0] with passwords @users[i][1], each
 * hashed with @iterations PBKDF2 rounds and a salt of its own.
 */
void e2e_pwfile_write(const char *path, const char *const (*users)[2], size_t n,
                      uint32_t iterations);

/* True if the broker's log so far contains @needle. */
bool e2e_broker_log_contains(const struct e2e_broker *b, const char *needle);

/* The size of the broker's log so far: a mark to look only at what follows. */
size_t e2e_broker_log_size(const struct e2e_broker *b);

/* True if the broker's log past byte @from (an e2e_broker_log_size()) contains @needle. */
bool e2e_broker_log_contains_after(const struct e2e_broker *b, size_t from, const char *needle);

/*
 * Replace the broker's configuration file with @ini, verbatim: the whole
 * file, [listener.default] included (ringmq only), for a reload.
 */
void e2e_broker_write_config(struct e2e_broker *b, const char *ini);

/*
 * Send SIGHUP to the broker process the harness started (only that pid)
 * and wait (E2E_WAIT_MS, asserted) for the reload's outcome in its log:
 * handed to every shard (@ok) or refused (!@ok). Returns the log size from
 * before the signal, for e2e_broker_log_contains_after(). ringmq only.
 */
size_t e2e_broker_reload(struct e2e_broker *b, bool ok);

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

/*
 * Sleep until e2e_now_ms() reaches @when_ms; returns at once if it already
 * has. For time that must pass as the behaviour under test (a message aging
 * in the broker), measured from the event it is counted from rather than
 * from whenever the test thread got to run.
 */
void e2e_sleep_until_ms(int64_t when_ms);

/* ------------------------------------------------------ libmosquitto client */

/* One received PUBLISH, owned by the caller after e2e_client_wait_message(). */
struct e2e_msg {
    char *topic;
    uint8_t *payload; /* NUL-terminated copy (the NUL is not counted) */
    size_t payload_len;
    int qos;
    bool retain;
    int mid;
    mosquitto_property *props; /* v5 clients: the PUBLISH's properties (NULL: none) */
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
    int version;                 /* E2E_V31, E2E_V311 or E2E_V5 */
    const char *id;              /* must be non-NULL and non-empty */
    bool clean;                  /* clean session flag (v5: clean start) */
    int keepalive_s;             /* 0: 60 s; libmosquitto refuses 1..4 */
    const struct e2e_will *will; /* NULL: none */
    /* v5 only. CONNECT properties (copied; the caller keeps ownership). */
    const mosquitto_property *props;
    /* v5 only. Will properties: ownership passes to the harness. */
    mosquitto_property *will_props;
    const char *username; /* NULL: none */
    const char *password; /* NULL: none (needs @username) */
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

/*
 * e2e_client_expect() waiting up to @timeout_ms instead of E2E_WAIT_MS: for
 * a message the broker sends after a deadline (E2E_DEADLINE_WAIT_MS).
 */
void e2e_client_expect_within(struct e2e_client *c, int timeout_ms, const char *topic,
                              const char *payload, int qos, bool retain);

/* Assert no message arrives within @ms. */
void e2e_client_expect_no_message(struct e2e_client *c, int ms);

/* True once the connection is gone (closed by the broker or lost). */
bool e2e_client_wait_closed(struct e2e_client *c, int timeout_ms);

/* Send DISCONNECT, wait until sent, close and free. */
void e2e_client_disconnect(struct e2e_client *c);

/* Close the socket without DISCONNECT (the broker sees EOF), free. */
void e2e_client_abort(struct e2e_client *c);

/*
 * e2e_client_abort() that returns only once the broker has seen the
 * connection end: it sends EOF, then waits (E2E_WAIT_MS, asserted) for the
 * broker to close its side, discarding whatever the broker sent meanwhile.
 * After it, the broker has handled the loss (a will or its delay has
 * started), so the next step cannot overtake it. Frees @c.
 */
void e2e_client_drop(struct e2e_client *c);

/* ------------------------------------------------- libmosquitto v5 client */

/*
 * Property list builders (libmosquitto's mosquitto_property lists), asserting
 * success. Free a list with mosquitto_property_free_all().
 */
void e2e_prop_u8(mosquitto_property **l, int id, uint8_t v);
void e2e_prop_u32(mosquitto_property **l, int id, uint32_t v);
void e2e_prop_str(mosquitto_property **l, int id, const char *v);
void e2e_prop_bin(mosquitto_property **l, int id, const void *v, uint16_t len);
void e2e_prop_pair(mosquitto_property **l, const char *name, const char *value);

/* The properties of the client's CONNACK (NULL before it or if it had none). */
const mosquitto_property *e2e_client_connack_props(struct e2e_client *c);

/*
 * A v5 client: clean start @clean_start, Session Expiry Interval
 * @session_expiry (0: property left out). Waits for CONNACK 0x00 and
 * returns; *@present (may be NULL) receives the session-present flag.
 */
struct e2e_client *e2e_client_connect5(struct e2e_broker *b, const char *id, bool clean_start,
                                       uint32_t session_expiry, int *present);

/*
 * v5 SUBSCRIBE of one filter with @options (QoS | MQTT_SUB_OPT_NO_LOCAL |
 * MQTT_SUB_OPT_RETAIN_AS_PUBLISHED | MQTT_SUB_OPT_SEND_RETAIN_*) and
 * @props (may be NULL); waits for SUBACK and returns its reason code.
 */
int e2e_client_subscribe5(struct e2e_client *c, const char *filter, int options,
                          const mosquitto_property *props);

/*
 * v5 PUBLISH with @props (may be NULL); waits as e2e_client_publish() does
 * and returns the PUBACK/PUBREC reason code (0 for QoS 0).
 */
int e2e_client_publish5(struct e2e_client *c, const char *topic, const void *payload, size_t len,
                        int qos, bool retain, const mosquitto_property *props);

/* v5 DISCONNECT with @reason and @props (may be NULL), wait until closed, free. */
void e2e_client_disconnect5(struct e2e_client *c, int reason, const mosquitto_property *props);

/*
 * Wait (bounded) for the connection to end; returns the reason code of the
 * broker's DISCONNECT, or -1 if it closed without one.
 */
int e2e_client_wait_disconnect_reason(struct e2e_client *c, int timeout_ms);

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

/* v5 properties for raw packets: the encoded property bytes, without length. */
#define E2E_PROPS_BYTES_MAX 8192
struct e2e_props {
    uint8_t buf[E2E_PROPS_BYTES_MAX];
    size_t len;
};

/* Append one property (the id decides nothing: the caller picks the type). */
void e2e_props_u8(struct e2e_props *pr, uint8_t id, uint8_t v);
void e2e_props_u16(struct e2e_props *pr, uint8_t id, uint16_t v);
void e2e_props_u32(struct e2e_props *pr, uint8_t id, uint32_t v);
void e2e_props_varint(struct e2e_props *pr, uint8_t id, uint32_t v);
void e2e_props_str(struct e2e_props *pr, uint8_t id, const char *v);
void e2e_props_bin(struct e2e_props *pr, uint8_t id, const void *v, size_t len);
void e2e_props_pair(struct e2e_props *pr, const char *name, const char *value);

struct e2e_connect_opts {
    int version;    /* E2E_V31 ("MQIsdp"), E2E_V311 or E2E_V5 ("MQTT") */
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
    /* v5 only (NULL: property length 0). */
    const struct e2e_props *props;
    const struct e2e_props *will_props;
};

void e2e_pkt_connect(struct e2e_pkt *p, const struct e2e_connect_opts *o);
void e2e_pkt_publish(struct e2e_pkt *p, const char *topic, uint8_t qos, bool retain, bool dup,
                     uint16_t pkt_id, const void *payload, size_t len);
void e2e_pkt_subscribe(struct e2e_pkt *p, uint16_t pkt_id, size_t n, const char *const *filters,
                       const uint8_t *qos);
void e2e_pkt_unsubscribe(struct e2e_pkt *p, uint16_t pkt_id, size_t n, const char *const *filters);
/* A two-byte-body packet: PUBACK 0x40, PUBREC 0x50, PUBREL 0x62, PUBCOMP 0x70. */
void e2e_pkt_ack(struct e2e_pkt *p, uint8_t first_byte, uint16_t pkt_id);

/* A Variable Byte Integer. */
void e2e_pkt_varint(struct e2e_pkt *p, uint32_t v);
/* Property Length and the properties (@pr NULL: length 0). */
void e2e_pkt_props(struct e2e_pkt *p, const struct e2e_props *pr);

/* v5 packets (@props may be NULL everywhere). */
void e2e_pkt_publish5(struct e2e_pkt *p, const char *topic, uint8_t qos, bool retain, bool dup,
                      uint16_t pkt_id, const struct e2e_props *props, const void *payload,
                      size_t len);
/* @options: one Subscription Options byte per filter. */
void e2e_pkt_subscribe5(struct e2e_pkt *p, uint16_t pkt_id, const struct e2e_props *props, size_t n,
                        const char *const *filters, const uint8_t *options);
void e2e_pkt_unsubscribe5(struct e2e_pkt *p, uint16_t pkt_id, const struct e2e_props *props,
                          size_t n, const char *const *filters);
/* PUBACK/PUBREC/PUBREL/PUBCOMP with a reason code (and properties). */
void e2e_pkt_ack5(struct e2e_pkt *p, uint8_t first_byte, uint16_t pkt_id, uint8_t reason,
                  const struct e2e_props *props);
void e2e_pkt_disconnect5(struct e2e_pkt *p, uint8_t reason, const struct e2e_props *props);
void e2e_pkt_auth(struct e2e_pkt *p, uint8_t reason, const struct e2e_props *props);

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

/* ----------------------------------------------------------- raw v5 */

/* Packet types (the high nibble of the first byte). */
enum {
    E2E_CONNACK = 2,
    E2E_PUBLISH = 3,
    E2E_PUBACK = 4,
    E2E_PUBREC = 5,
    E2E_PUBREL = 6,
    E2E_PUBCOMP = 7,
    E2E_SUBACK = 9,
    E2E_UNSUBACK = 11,
    E2E_PINGRESP = 13,
    E2E_DISCONNECT = 14,
    E2E_AUTH = 15,
};

/* One decoded property; pointers point into the packet's buffer. */
struct e2e_prop {
    uint8_t id;
    uint32_t value;      /* byte, two/four byte and variable byte integers */
    const uint8_t *data; /* strings and binary data; the name of a pair */
    size_t len;
    const uint8_t *data2; /* the value of a pair */
    size_t len2;
};

#define E2E_PKT_PROPS_MAX 64
#define E2E_PKT_REASONS_MAX 64

/*
 * One v5 packet from the broker, parsed independently of core/ (every
 * length and property type checked, asserting on anything malformed).
 */
struct e2e_v5pkt {
    uint8_t *buf; /* the whole packet, owned; e2e_v5pkt_free() */
    size_t len;
    uint8_t type;  /* E2E_* */
    uint8_t flags; /* low nibble of the first byte */
    /* PUBLISH */
    uint8_t qos;
    bool retain;
    bool dup;
    char *topic; /* NUL-terminated copy, owned ("" when an alias stands in) */
    const uint8_t *payload;
    size_t payload_len;
    /* PUBLISH (QoS > 0), PUBACK..PUBCOMP, SUBACK, UNSUBACK */
    uint16_t pkt_id;
    /* CONNACK, PUBACK..PUBCOMP, DISCONNECT, AUTH (0 when left out) */
    uint8_t reason;
    bool session_present;
    /* SUBACK, UNSUBACK */
    size_t nreasons;
    uint8_t reasons[E2E_PKT_REASONS_MAX];
    size_t nprops;
    struct e2e_prop props[E2E_PKT_PROPS_MAX];
};

/*
 * Read and parse one v5 packet within @timeout_ms. False on timeout or
 * close (then *@out holds nothing to free).
 */
bool e2e_raw_read5(int fd, struct e2e_v5pkt *out, int timeout_ms);

/* Read one packet within E2E_WAIT_MS and assert its type is @type. */
void e2e_raw_expect5(int fd, uint8_t type, struct e2e_v5pkt *out);

void e2e_v5pkt_free(struct e2e_v5pkt *p);

/* The first property @id of @p (NULL if absent), and how many it has. */
const struct e2e_prop *e2e_v5pkt_prop(const struct e2e_v5pkt *p, uint8_t id);
size_t e2e_v5pkt_prop_count(const struct e2e_v5pkt *p, uint8_t id);
/* True if property @id is a string/binary equal to @s (@len bytes). */
bool e2e_prop_eq(const struct e2e_prop *pr, const void *s, size_t len);
bool e2e_prop_streq(const struct e2e_prop *pr, const char *s);

/*
 * Assert the broker sends DISCONNECT with @reason (and no Session Expiry
 * Interval [MQTT-3.14.2-2]) and then closes, within E2E_WAIT_MS. Closes @fd.
 */
void e2e_raw_expect_disconnect5(int fd, uint8_t reason);

/*
 * e2e_raw_expect_disconnect5(), except that in mosquitto mode a close
 * without DISCONNECT is accepted too: for server DISCONNECTs that mosquitto
 * 2.0.11 does not send (a DISCONNECT it does send must still carry @reason).
 */
void e2e_raw_expect_disconnect5_or_mosquitto_close(int fd, uint8_t reason);

/*
 * Send a v5 CONNECT per @o (version forced to 5) and read the CONNACK into
 * *@connack (asserted to arrive). Returns the fd.
 */
int e2e_raw_connect5(const struct e2e_broker *b, const struct e2e_connect_opts *o,
                     struct e2e_v5pkt *connack);

/*
 * A v5 connection with @id, clean start @clean_start, Session Expiry
 * @session_expiry (0: left out) and extra CONNECT @props (may be NULL);
 * asserts CONNACK 0x00 and returns the fd.
 */
int e2e_raw_connect5_ok(const struct e2e_broker *b, const char *id, bool clean_start,
                        uint32_t session_expiry, const struct e2e_props *props);

/*
 * v5 SUBSCRIBE of one filter (@props may be NULL); asserts the next packet
 * is its SUBACK and returns the reason code.
 */
uint8_t e2e_raw_subscribe5(int fd, uint16_t pkt_id, const char *filter, uint8_t options,
                           const struct e2e_props *props);

/*
 * v5 PUBLISH and its handshake (PUBACK, or PUBREC/PUBREL/PUBCOMP), asserting
 * the next packets are those; returns the PUBACK/PUBREC reason code (0 for
 * QoS 0, after a PINGREQ round trip).
 */
uint8_t e2e_raw_publish5(int fd, const char *topic, uint8_t qos, bool retain, uint16_t pkt_id,
                         const struct e2e_props *props, const void *payload, size_t len);

/* PINGREQ and assert the next packet is PINGRESP: a barrier. */
void e2e_raw_ping5(int fd);

/* Send v5 DISCONNECT (0x00, no properties) and close. */
void e2e_raw_disconnect5(int fd);

#endif
