/*
 * test_shard_sim.c - a seeded, deterministic simulation of 2 to 4 shards'
 * core/ in one thread (issue 13): what the broker promises across shards,
 * checked against whatever a seed makes the network and the clients do.
 *
 * The world. The seed picks the shard count, the limits, the clients and
 * every event. Each shard is a struct broker fed the way net/ feeds it:
 * clients' bytes through broker_client_feed() in chunks the seed cuts; what
 * a shard hands to broker_next_xmsg() goes into one FIFO per ordered pair of
 * shards (the only order net/ keeps) and is delivered when the seed says,
 * a few items of one pair at a time, so sources interleave arbitrarily at
 * each destination, and a pair may stall for a while so that its queue
 * grows; a connection whose CONNECT belongs to another shard travels home
 * through the same FIFO (with the bytes its shard kept) and is fed there;
 * closing clients on the dirty lists are read out and closed
 * (broker_client_gone()); the clock moves and broker_tick() runs.
 *
 * The clients (up to SIM_CLIENTS_MAX): MQTT 3.1.1 and 5.0; clean and
 * persistent sessions, some without a client id; publishers at QoS 0, 1
 * and 2 (retained on a topic of their own; v5 with message expiry and
 * topic aliases; some payloads too large for a v5 subscriber's Maximum
 * Packet Size); subscribers with wildcards, subscription identifiers and
 * v5 Receive Maximum and Topic Alias Maximum; shared groups with one
 * persistent member that stays; wills. They acknowledge late and now and
 * then out of order, read late, ping, unsubscribe, and reconnect on any
 * shard: after DISCONNECT, after losing the connection, or over the one
 * they still have (takeover); net/ may also kick them (keep alive). Like
 * a TCP peer, a client stops writing once output_bytes_max bytes it wrote
 * are unanswered (the most a broker keeps of a client it holds), and pings
 * to learn how far the broker got. The limits vary by seed (inflight_max
 * 1 to 20, output_bytes_max 1 KiB to 1 MiB). A final phase reconnects
 * every persistent session and lets every message, byte and
 * acknowledgement through until nothing moves.
 *
 * The checks (any failure prints the seed, what failed and the last
 * events, from a rerun of that seed):
 *  - every packet a client reads decodes with core/mqtt_decode in its
 *    version, is one a server may send, fits its Maximum Packet Size, uses
 *    only topic aliases within its Topic Alias Maximum, and answers what
 *    the client did (CONNACK first and once, a SUBACK per SUBSCRIBE with
 *    the QoS asked, acknowledgements only for packet ids in flight, v5
 *    DISCONNECT only for takeover, keep alive or overload);
 *  - a PUBLISH carries an intact message on its topic, matches a
 *    subscription of the session, at no more than the QoS granted and
 *    published, with only subscription identifiers of matching
 *    subscriptions, message expiry as published; a will only once its
 *    connection is gone;
 *  - never more QoS 1/2 PUBLISHes unacknowledged than min(inflight_max,
 *    Receive Maximum), never a packet id still in use;
 *  - per publisher session and subscriber session, QoS 1/2 first
 *    deliveries in publish order, and QoS 0 ones too; a resumed session's
 *    DUPs in the order first sent; no message twice without DUP (beyond
 *    the publisher's own resends); no QoS 2 message twice to the
 *    application (PUBREL flow), nor twice to a shared group;
 *  - after the final phase, every QoS 1/2 message acknowledged to its
 *    publisher (PUBACK/PUBREC read) or published as a will reached every
 *    session still alive with a subscription whose SUBACK was read before
 *    the PUBLISH was fed; one member of each shared group got it (short of
 *    what share_dropped counted); a subscription made after a retained
 *    publish was acknowledged got that message or a later one of its
 *    topic; a persistent session is always present again;
 *  - nobody stuck: every publish of a connected client acknowledged, every
 *    SUBSCRIBE answered; bounds: a client's output within
 *    limits_output_hard_max(), no queue_full, xmsg_lost, route_nomem,
 *    retained_refused or wait_timeouts (the limits are set so that none
 *    may happen); each seed frees every block it allocated.
 *
 * Limits of the model: time only orders events as the simulation sees
 * them, so "SUBACK read before the PUBLISH was fed" is a safe lower bound
 * for "the publish was routed after the SUBACK". What a bound may drop is
 * not required: QoS 0, short message expiry, messages over a client's
 * Maximum Packet Size, sessions that ended (and the QoS 2 messages a clean
 * shared-group member took with it [MQTT-4.8.2-5]), wills of connections
 * that may have sent DISCONNECT; and messages a subscription got on its
 * way in or out (its SUBSCRIBE not answered yet, or after an UNSUBSCRIBE)
 * may or may not arrive.
 *
 * Reproducing: SHARD_SIM_SEEDS=N or =A-B runs those seeds (in the first
 * test; the others then run none); SHARD_SIM_TRACE=1 prints every event as
 * it happens; SHARD_SIM_ALL=1 goes on past a failing seed and lists each.
 * The bugs it found are listed at the end of this file.
 *
 * Built with -Wl,--wrap for malloc, calloc, realloc and free (leaks per
 * seed) and for lvlmap_seed (CMakeLists.txt), so that hash tables lay out
 * as the seed says, not as the heap's addresses do: a seed replays exactly.
 */
#include <criterion/criterion.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/broker.h"
#include "core/limits.h"
#include "core/msg.h"
#include "core/mqtt_codec.h"
#include "core/rm_assert.h"
#include "core/topic.h"
#include "core/wait.h"
#include "core/xmsg.h"

/* After core/ headers: it defines the global broker `b` their parameters would shadow. */
#include "broker_helpers.h"

/* ---- bounds of one run ---- */

#define SIM_SEEDS_DEFAULT 6000u /* seeds of the default run, split over SIM_PARTS tests */
#define SIM_PARTS 4u
#define SIM_SHARDS_MAX 4u
#define SIM_CLIENTS_MAX 10u
#define SIM_CONNS_MAX 400u                     /* connections opened in one run */
#define SIM_CONNS_SPARE (4u * SIM_CLIENTS_MAX) /* kept for the final phase */
#define SIM_MSGS_MAX 1500u                     /* messages published in one run, wills included */
#define SIM_INCS_MAX SIM_CONNS_MAX             /* session incarnations in one run */
#define SIM_STEPS_MIN 1000u                    /* steps of a run before the final phase */
#define SIM_STEPS_SPAN 2000u
#define SIM_SETTLE_ROUNDS 10000u /* passes over the outboxes and dirty lists after a step */
#define SIM_QUIESCE_ROUNDS 5000u /* passes of the final phase before it must be still */
#define SIM_IDS_MAX 64u          /* packet ids a connection tracks in flight (above any window) */
#define SIM_PEND_MAX 96u         /* acknowledgements a client owes on one connection */
#define SIM_MARKS_MAX 128u       /* packets written and not yet fed, per connection */
#define SIM_SUBRECS_MAX 8u       /* SUBSCRIBE/UNSUBSCRIBE waiting for an answer */
#define SIM_OUT_MAX 16u          /* a publisher's QoS 1/2 publishes in flight */
#define SIM_QOS2_MAX 64u         /* QoS 2 ids a subscriber holds until PUBREL */
#define SIM_ALIAS_MAX 8u         /* topic aliases a v5 client takes from the broker */
#define SIM_PINGS_MAX 4u         /* PINGREQs a client leaves unanswered */
#define SIM_PKT_MAX 2048u        /* largest packet a client writes */
#define SIM_BIG_PAYLOAD 700u     /* a payload over SIM_SMALL_MAX_PACKET */
#define SIM_SMALL_MAX_PACKET 300u
#define SIM_TIME_BUDGET_MS 6000u /* simulated time, well inside WAIT_TIMEOUT_MS */
#define SIM_TRACE_LINES 80u
#define SIM_TRACE_LINE_MAX 160u
#define SIM_NONE UINT32_MAX

_Static_assert(SIM_TIME_BUDGET_MS + 2000 < WAIT_TIMEOUT_MS, "no wait may time out in a run");

/* ---- allocation counts and hash seeds (the link wraps them) ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
uint64_t __wrap_lvlmap_seed(const void *owner);

/* Blocks allocated and not freed: a seed must end where it began. */
static int64_t live_blocks;

void *__wrap_malloc(size_t n)
{
    void *p = __real_malloc(n);
    live_blocks += p != NULL;
    return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
    void *p = __real_calloc(n, size);
    live_blocks += p != NULL;
    return p;
}

void *__wrap_realloc(void *p, size_t n)
{
    void *q = __real_realloc(p, n);
    if (!p && q)
        live_blocks++;
    else if (p && n == 0)
        live_blocks--; /* glibc frees it */
    return q;
}

void __wrap_free(void *p)
{
    live_blocks -= p != NULL;
    __real_free(p);
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Hash seeds follow the run's seed, in the order the brokers ask for them. */
static uint64_t hash_seed;

uint64_t __wrap_lvlmap_seed(const void *owner)
{
    (void)owner;
    hash_seed += 0x9e3779b97f4a7c15ull;
    return mix64(hash_seed);
}

/* ---- the seed's random numbers (splitmix64) ---- */

static uint64_t rng;

static uint64_t rnd(void)
{
    rng += 0x9e3779b97f4a7c15ull;
    return mix64(rng);
}

static uint32_t below(uint32_t n)
{
    return n ? (uint32_t)(rnd() % n) : 0;
}

static bool chance(uint32_t pct)
{
    return below(100) < pct;
}

/* ---- failure and trace ---- */

static jmp_buf fail_jmp;
static char fail_why[512];
static int trace_level; /* 0 none, 1 kept in the ring (printed on failure), 2 printed */
static char trace_ring[SIM_TRACE_LINES][SIM_TRACE_LINE_MAX];
static uint32_t trace_next;
static uint64_t ev; /* the event clock: every feed and every packet read */

static void trace_add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace_add(const char *fmt, ...)
{
    char line[SIM_TRACE_LINE_MAX];
    va_list ap;
    int n = snprintf(line, sizeof(line), "%6llu ", (unsigned long long)ev);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (trace_level >= 2)
        fprintf(stderr, "shard_sim: %s\n", line);
    memcpy(trace_ring[trace_next++ % SIM_TRACE_LINES], line, sizeof(line));
}

#define TRACE(...)                                                                                 \
    do {                                                                                           \
        if (trace_level)                                                                           \
            trace_add(__VA_ARGS__);                                                                \
    } while (0)

static void sim_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void sim_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fail_why, sizeof(fail_why), fmt, ap);
    va_end(ap);
    longjmp(fail_jmp, 1);
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            sim_fail(__VA_ARGS__);                                                                 \
    } while (0)

/* ---- topics and filters ---- */

enum {
    T_PLAIN = 0, /* t/... and x/0: anyone publishes (not "$x/0": "$" topics are the broker's) */
    T_PLAIN_N = 6,
    T_SHARED = 6, /* s/0..2: what the shared groups take */
    T_SHARED_N = 3,
    T_RETAINED = 9,                        /* r/<client>: retained, one publisher each */
    T_WILL = T_RETAINED + SIM_CLIENTS_MAX, /* w/<client>: wills */
    T_COUNT = T_WILL + SIM_CLIENTS_MAX,
};

static char topic_names[T_COUNT][8];
static uint8_t topic_lens[T_COUNT];

struct sim_filter {
    const char *str;
    const char *match; /* what it matches: the filter, or a shared group's inner filter */
    int8_t group;      /* shared group, or -1 */
};

static const struct sim_filter filters[] = {
    {"#", "#", -1},         {"t/#", "t/#", -1},          {"t/+/1", "t/+/1", -1},
    {"t/0/+", "t/0/+", -1}, {"t/2/2", "t/2/2", -1},      {"+/+/+", "+/+/+", -1},
    {"r/#", "r/#", -1},     {"r/+", "r/+", -1},          {"w/#", "w/#", -1},
    {"x/#", "x/#", -1},     {"s/#", "s/#", -1},          {"+/0", "+/0", -1},
    {"t/1/+", "t/1/+", -1}, {"$share/g0/s/+", "s/+", 0}, {"$share/g1/s/#", "s/#", 1},
};

#define F_COUNT (sizeof(filters) / sizeof(filters[0]))
#define F_PLAIN_N 13u
#define SIM_GROUPS 2u

static void topics_init(void)
{
    static const char *const fixed[T_RETAINED] = {"t/0/0", "t/0/1", "t/1/1", "t/2/2", "t/1/0",
                                                  "x/0",   "s/0",   "s/1",   "s/2"};
    for (uint32_t i = 0; i < T_RETAINED; i++)
        snprintf(topic_names[i], sizeof(topic_names[i]), "%s", fixed[i]);
    for (uint32_t i = 0; i < SIM_CLIENTS_MAX; i++) {
        snprintf(topic_names[T_RETAINED + i], sizeof(topic_names[0]), "r/%u", i);
        snprintf(topic_names[T_WILL + i], sizeof(topic_names[0]), "w/%u", i);
    }
    for (uint32_t i = 0; i < T_COUNT; i++)
        topic_lens[i] = (uint8_t)strlen(topic_names[i]);
}

static uint32_t topic_find(const struct mqtt_str *s)
{
    for (uint32_t i = 0; i < T_COUNT; i++) {
        if (s->len == topic_lens[i] && memcmp(s->ptr, topic_names[i], s->len) == 0)
            return i;
    }
    return SIM_NONE;
}

static uint32_t filter_find(const uint8_t *p, uint32_t len)
{
    for (uint32_t f = 0; f < F_COUNT; f++) {
        if (len == strlen(filters[f].str) && memcmp(p, filters[f].str, len) == 0)
            return f;
    }
    return SIM_NONE;
}

static bool filter_matches(uint32_t f, uint32_t topic)
{
    const char *m = filters[f].match;
    return topic_match((const uint8_t *)m, strlen(m), (const uint8_t *)topic_names[topic],
                       topic_lens[topic]);
}

/* ---- the world's state ---- */

/* A message a client published (or left as a will), by index. */
struct sim_msg {
    uint32_t client; /* who published it */
    uint32_t inc;    /* in which session incarnation: the scope of its order */
    uint32_t seq;    /* the publisher's running count */
    uint32_t topic;
    uint32_t payload_len;
    uint32_t will_conn;  /* a will: its connection; else SIM_NONE */
    uint32_t copies;     /* PUBLISH packets written with it: the first and the resends */
    uint32_t expiry_s;   /* v5 Message Expiry Interval, 0: none */
    uint32_t first_conn; /* the connection its first copy went out on */
    uint8_t qos;
    bool retain;
    bool big;
    bool acked;       /* PUBACK/PUBREC read, or a will surely published */
    bool acked_dup;   /* QoS 2: by the PUBREC of a resent copy (for the failure message) */
    uint64_t t_first; /* its first copy was fed */
    uint64_t t_last;  /* its latest copy was fed */
    uint64_t t_lb;    /* it was routed no earlier than this (see msg_acked()) */
    uint64_t t_acked;
};

enum { F_NONE = 0, F_OPEN, F_CLOSED };

/* One filter of a session incarnation, as its client knows it. */
struct sim_fstate {
    uint8_t st;      /* F_OPEN once a SUBACK is read, F_CLOSED once UNSUBSCRIBE is written */
    uint8_t pending; /* SUBSCRIBE/UNSUBSCRIBE written, not answered (on a connection read) */
    bool ever;       /* subscribed at some point: its messages may arrive */
    bool sid_ever;   /* with its subscription identifier (filter index + 1) */
    uint64_t t_open; /* the SUBACK that opened it was read */
    uint64_t t_sub;  /* the SUBSCRIBE that opened it was fed */
    /*
     * That SUBSCRIBE did not announce the filter (it was on its shard
     * already): said when it fails ("piggyback" at the end of this file).
     */
    bool piggy;
};

/* A session: one per connection of a clean client, one for all of a persistent one. */
struct sim_inc {
    uint32_t client;
    uint32_t shard;      /* where the session lives: its client id's home, or where it landed */
    uint32_t live_reads; /* live PUBLISH packets read, the first of each message numbered */
    bool alive;          /* clean: while its connection is the client's; persistent: always */
    struct sim_fstate f[F_COUNT];
};

/* What a session got of a message. */
struct sim_dlv {
    uint8_t got;    /* PUBLISH packets read, any kind */
    uint8_t dup0;   /* live ones without DUP */
    uint8_t app2;   /* live QoS 2 ones handed to the application */
    uint32_t first; /* 1 + its place among the session's first live reads; 0: none yet */
};

enum { MK_OTHER = 0, MK_PUBLISH, MK_SUBSCRIBE, MK_ID_DONE };

/* The end of a packet in a connection's unfed bytes, and what feeding it means. */
struct sim_mark {
    uint64_t end;
    uint8_t kind;
    uint16_t id;
    uint32_t ref;
};

struct sim_pend {
    uint8_t type; /* MQTT_PUBACK, MQTT_PUBREC or MQTT_PUBCOMP */
    uint16_t id;
};

struct sim_subrec {
    uint16_t id;
    uint8_t filter;
    bool unsub;
    bool announced; /* its shard sent INTEREST_ADDs for it, on its wait */
    bool again;     /* its session had subscribed to that filter before */
    uint64_t t_fed;
    uint64_t end; /* where it ends in the connection's bytes */
};

enum { CONN_SHARD = 0, CONN_TRANSIT, CONN_DEAD };

struct sim_client;

/* A connection: the broker's struct client, and both ends of the wire. */
struct conn {
    struct client cl; /* first: conn_of() */
    struct sim_client *c;
    uint32_t no;
    uint32_t shard; /* where it is, or where it travels */
    uint32_t inc;
    uint32_t will_msg;
    uint8_t where;
    bool reading; /* its client reads it and answers */
    bool writing; /* what the client wrote still goes out */
    bool lost;    /* the client's end is gone: closed at the first chance */
    bool up;      /* CONNACK read */
    bool disconnect_sent;
    bool kicked;
    uint32_t pings;
    uint64_t ping_end[SIM_PINGS_MAX]; /* where each unanswered PINGREQ ends, oldest first */
    uint32_t last_dup;                /* dlv.first of the last DUP PUBLISH read here */
    uint64_t connect_end;
    /*
     * The broker surely handled the bytes before this (it answered a packet
     * that ends there): the rest it may still keep (handoff, held client),
     * within output_bytes_max, so the client writes no more (tx_fits()).
     */
    uint64_t done;
    uint8_t *tx; /* written by the client, not fed yet */
    uint32_t tx_len;
    uint32_t tx_cap;
    uint64_t tx_written;
    uint64_t tx_fed;
    struct sim_mark marks[SIM_MARKS_MAX];
    uint32_t mark_head;
    uint32_t mark_count;
    uint16_t ids[SIM_IDS_MAX]; /* the broker's PUBLISH/PUBREL ids not acknowledged (fed) */
    uint32_t id_count;
    struct sim_pend pend[SIM_PEND_MAX];
    uint32_t pend_count;
    struct sim_subrec subrecs[SIM_SUBRECS_MAX];
    uint32_t subrec_count;
    uint8_t alias_in[4];                   /* aliases it set towards the broker: topic + 1 */
    uint32_t alias_out[SIM_ALIAS_MAX + 1]; /* aliases the broker set: topic, or SIM_NONE */
};

enum { OUT_ACK = 1, OUT_REC, OUT_COMP };

struct sim_out {
    uint16_t id;
    uint8_t state; /* OUT_ACK: PUBACK awaited; OUT_REC: PUBREC; OUT_COMP: PUBCOMP */
    uint32_t msg;
    uint32_t copy_conn; /* the connection its latest copy went out on */
    uint32_t rel_conn;  /* OUT_COMP: the connection its latest PUBREL went out on */
    uint64_t end;       /* where that copy (or PUBREL) ends in that connection's bytes */
    uint64_t t_fed;     /* when that copy was fed; 0: not yet */
};

struct sim_client {
    uint32_t idx;
    char id[16];
    uint8_t id_len; /* 0: the broker assigns one (clean sessions only) */
    uint8_t version;
    bool persistent; /* clean session 0 / v5 session that never ends */
    bool resume0;    /* v5 Clean Start 0 with expiry 0: ends with each connection */
    bool publisher;
    int8_t group; /* shared group it is a member of, or -1 */
    bool anchor;  /* its group's persistent member, never unsubscribing */
    uint8_t filters[4];
    uint8_t filter_count;
    uint8_t qos[F_COUNT]; /* granted QoS of each filter */
    uint32_t read_pct;    /* how eagerly it reads */
    uint8_t will_qos;     /* 0: no will */
    uint16_t recv_max;    /* v5 Receive Maximum, 0: absent */
    uint32_t max_packet;  /* v5 Maximum Packet Size, 0: absent */
    uint16_t alias_max;   /* v5 Topic Alias Maximum */
    uint32_t expiry_s;    /* a persistent v5 session's expiry */
    struct conn *conn;    /* the connection it uses, or NULL */
    uint32_t inc;         /* its session, or SIM_NONE before the first */
    bool had_session;     /* a persistent session's CONNACK was read: present from now on */
    uint32_t seq;
    struct sim_out out[SIM_OUT_MAX];
    uint32_t out_count;
    uint16_t next_id;
    uint16_t next_sub_id;
    uint16_t qos2[SIM_QOS2_MAX]; /* QoS 2 ids handed to the application, PUBREL awaited */
    uint32_t qos2_count;
};

/* One item in flight between two shards: a routing message, or a connection going home. */
struct sim_item {
    struct xmsg x;
    struct conn *conn; /* a handoff: the connection, with the bytes its shard kept */
    uint8_t *kept;
    uint32_t len;
};

struct sim_fifo {
    struct sim_item *items;
    uint32_t head;
    uint32_t count;
    uint32_t cap;
    uint32_t stall_until; /* step before which nothing is delivered */
};

static struct {
    uint32_t shards;
    uint32_t steps;
    uint32_t step;
    uint32_t client_count;
    uint32_t conn_count;
    uint32_t msg_count;
    uint32_t inc_count;
    uint32_t live[SIM_CONNS_MAX]; /* connections not dead */
    uint32_t live_count;
    uint64_t now_ms;
    uint64_t start_ms;
    uint64_t acts; /* anything done: the final phase stops when it stays */
    uint32_t net_pct, flush_pct, stall_pct, churn_pct, kick_pct;
    uint32_t stall_max;
    uint32_t burst_max;
    uint8_t group_qos[SIM_GROUPS];
    int8_t group_anchor[SIM_GROUPS];
    bool group_clean[SIM_GROUPS]; /* a member with a clean session */
} sim;

/* What the runs covered, summed over seeds: the default run must cover each. */
static struct {
    uint64_t seeds;
    uint64_t msgs;
    uint64_t must_live;     /* (session, message) pairs the live rule required */
    uint64_t must_retained; /* ... the retained rule */
    uint64_t must_group;    /* messages a shared group had to get */
    uint64_t deliveries;    /* PUBLISH packets read */
    uint64_t handoffs;
    uint64_t takeovers;
    uint64_t wills;
    uint64_t xmsgs;
    uint64_t fifo_max; /* the longest a FIFO grew */
    uint64_t too_large;
    uint64_t expired;
    uint64_t shed; /* QoS 0 dropped by the output bound or an offline session */
} cover;

static struct broker *sh[SIM_SHARDS_MAX];
static struct sim_fifo fifo[SIM_SHARDS_MAX][SIM_SHARDS_MAX];
static struct sim_client clients[SIM_CLIENTS_MAX];
static struct conn conns[SIM_CONNS_MAX];
static struct sim_msg msgs[SIM_MSGS_MAX];
static struct sim_inc incs[SIM_INCS_MAX];
static struct sim_dlv dlv[SIM_INCS_MAX][SIM_MSGS_MAX];
static uint32_t last_seq[SIM_INCS_MAX][SIM_INCS_MAX][2];
static uint8_t share_got[SIM_GROUPS][SIM_MSGS_MAX];
/* When each INTEREST_ADD of a filter from a shard was delivered (0: not yet). */
static uint8_t share_app2[SIM_GROUPS][SIM_MSGS_MAX];

static struct conn *conn_of(struct client *cl)
{
    return (struct conn *)cl; /* struct client is the first member */
}

static void settle(void);
static void client_read(struct conn *k);

/* ---- messages ---- */

static uint32_t prefix_len(uint32_t idx)
{
    return (uint32_t)snprintf(NULL, 0, "m%u.", idx);
}

/* The payload of message @idx: "m<idx>." then a letter of its own. */
static uint32_t payload_make(uint32_t idx, uint8_t *buf, size_t cap)
{
    const struct sim_msg *m = &msgs[idx];
    RM_ASSERT(m->payload_len <= cap);
    uint32_t n = (uint32_t)snprintf((char *)buf, cap, "m%u.", idx);
    for (uint32_t i = n; i < m->payload_len; i++)
        buf[i] = (uint8_t)('a' + idx % 26);
    return m->payload_len;
}

/* The message a payload carries, or SIM_NONE if it is not one of ours, intact. */
static uint32_t payload_msg(const struct mqtt_str *p)
{
    uint8_t want[SIM_BIG_PAYLOAD + 32];
    uint32_t idx = 0, i = 1;
    if (p->len < 3 || p->ptr[0] != 'm')
        return SIM_NONE;
    for (; i < p->len && i < 8 && p->ptr[i] >= '0' && p->ptr[i] <= '9'; i++)
        idx = idx * 10 + (uint32_t)(p->ptr[i] - '0');
    if (i == 1 || i == p->len || p->ptr[i] != '.' || idx >= sim.msg_count)
        return SIM_NONE;
    if (p->len != msgs[idx].payload_len || payload_make(idx, want, sizeof(want)) != p->len ||
        memcmp(want, p->ptr, p->len) != 0)
        return SIM_NONE;
    return idx;
}

static uint32_t msg_register(struct sim_client *c, uint32_t inc, uint32_t topic, uint8_t qos,
                             bool retain, uint32_t pad)
{
    RM_ASSERT(sim.msg_count < SIM_MSGS_MAX);
    uint32_t idx = sim.msg_count++;
    struct sim_msg *m = &msgs[idx];
    *m = (struct sim_msg){.client = c->idx,
                          .inc = inc,
                          .seq = ++c->seq,
                          .topic = topic,
                          .qos = qos,
                          .retain = retain,
                          .will_conn = SIM_NONE};
    m->payload_len = prefix_len(idx) + pad;
    return idx;
}

/*
 * Message @idx was acknowledged to its publisher (a PUBACK or PUBREC read
 * now), whose acknowledged copy was fed at @t_copy: it was routed at the
 * earliest then. A QoS 2 message is routed by its first processed copy
 * (later ones are duplicates), so by its first fed one at the earliest.
 */
static void msg_acked(uint32_t idx, uint64_t t_copy)
{
    struct sim_msg *m = &msgs[idx];
    uint64_t lb = m->qos == 2 ? m->t_first : t_copy;
    CHECK(lb != 0, "m%u acknowledged before any copy of it was fed", idx);
    if (!m->acked)
        m->t_acked = ev;
    m->acked = true;
    if (lb > m->t_lb)
        m->t_lb = lb;
}

/* ---- session incarnations ---- */

static uint32_t inc_new(struct sim_client *c)
{
    RM_ASSERT(sim.inc_count < SIM_INCS_MAX);
    uint32_t i = sim.inc_count++;
    memset(&incs[i], 0, sizeof(incs[i]));
    incs[i].client = c->idx;
    incs[i].alive = true;
    memset(dlv[i], 0, sizeof(dlv[i]));
    memset(last_seq[i], 0, sizeof(last_seq[i]));
    return i;
}

/* ---- the wire: client to broker ---- */

static void tx_put(struct conn *k, const struct mqtt_pkt *p, uint8_t kind, uint16_t id,
                   uint32_t ref)
{
    uint8_t version = k->c->version;
    size_t n = mqtt_encoded_size(p, version);
    RM_ASSERT(n > 0 && n <= SIM_PKT_MAX);
    RM_ASSERT(k->mark_count < SIM_MARKS_MAX);
    if (k->tx_len + n > k->tx_cap) {
        uint32_t ncap = k->tx_cap ? k->tx_cap * 2 : 256;
        while (ncap < k->tx_len + n)
            ncap *= 2;
        uint8_t *t = realloc(k->tx, ncap);
        RM_ASSERT(t != NULL);
        k->tx = t;
        k->tx_cap = ncap;
    }
    mqtt_encode(p, version, k->tx + k->tx_len, n);
    k->tx_len += (uint32_t)n;
    k->tx_written += n;
    k->marks[(k->mark_head + k->mark_count++) % SIM_MARKS_MAX] =
        (struct sim_mark){k->tx_written, kind, id, ref};
    sim.acts++;
}

static bool tx_room(const struct conn *k)
{
    return k->mark_count + 2 < SIM_MARKS_MAX;
}

/*
 * Room for a packet of about @need bytes: what the broker may not have
 * handled yet stays within output_bytes_max, which bounds what it keeps
 * of a client it holds (a client that never hears back stops writing).
 */
static bool tx_fits(const struct conn *k, uint32_t need)
{
    return tx_room(k) && k->tx_written - k->done + need + 64 <= lim.output_bytes_max;
}

/* A response to the packet that ends at @end was read. */
static void tx_done(struct conn *k, uint64_t end)
{
    RM_ASSERT(end <= k->tx_written);
    if (end > k->done)
        k->done = end;
}

static void ids_remove(struct conn *k, uint16_t id)
{
    for (uint32_t i = 0; i < k->id_count; i++) {
        if (k->ids[i] == id) {
            k->ids[i] = k->ids[--k->id_count];
            return;
        }
    }
}

static bool ids_has(const struct conn *k, uint16_t id)
{
    for (uint32_t i = 0; i < k->id_count; i++) {
        if (k->ids[i] == id)
            return true;
    }
    return false;
}

/* @n bytes of @k's were fed at @t: what the packets that ended in them mean. */
static void tx_consumed(struct conn *k, uint32_t n, uint64_t t)
{
    RM_ASSERT(n <= k->tx_len);
    memmove(k->tx, k->tx + n, k->tx_len - n);
    k->tx_len -= n;
    k->tx_fed += n;
    struct sim_client *c = k->c;
    while (k->mark_count > 0 && k->marks[k->mark_head % SIM_MARKS_MAX].end <= k->tx_fed) {
        struct sim_mark mk = k->marks[k->mark_head++ % SIM_MARKS_MAX];
        k->mark_count--;
        if (mk.kind == MK_PUBLISH) {
            struct sim_msg *m = &msgs[mk.ref];
            if (!m->t_first)
                m->t_first = t;
            m->t_last = t;
            for (uint32_t i = 0; i < c->out_count; i++) {
                if (c->out[i].msg == mk.ref && c->out[i].copy_conn == k->no)
                    c->out[i].t_fed = t;
            }
        } else if (mk.kind == MK_SUBSCRIBE) {
            for (uint32_t i = 0; i < k->subrec_count; i++) {
                if (k->subrecs[i].id == mk.id)
                    k->subrecs[i].t_fed = t;
            }
        } else if (mk.kind == MK_ID_DONE) {
            ids_remove(k, mk.id); /* the broker has the acknowledgement now */
        }
    }
}

/* ---- connections ---- */

static void live_remove(uint32_t no)
{
    for (uint32_t i = 0; i < sim.live_count; i++) {
        if (sim.live[i] == no) {
            memmove(&sim.live[i], &sim.live[i + 1], (sim.live_count - i - 1) * sizeof(uint32_t));
            sim.live_count--;
            return;
        }
    }
    RM_ASSERT(!"connection not live");
}

static void fifo_push(uint32_t from, uint32_t to, const struct sim_item *it)
{
    struct sim_fifo *f = &fifo[from][to];
    RM_ASSERT(from != to && from < sim.shards && to < sim.shards);
    if (f->count == f->cap) {
        uint32_t ncap = f->cap ? f->cap * 2 : 64;
        struct sim_item *n = malloc(ncap * sizeof(*n));
        RM_ASSERT(n != NULL);
        for (uint32_t i = 0; i < f->count; i++)
            n[i] = f->items[(f->head + i) % f->cap];
        free(f->items);
        f->items = n;
        f->cap = ncap;
        f->head = 0;
    }
    f->items[(f->head + f->count++) % f->cap] = *it;
    if (f->count > cover.fifo_max)
        cover.fifo_max = f->count;
}

/* A persistent session goes on without its client; a clean one ended with it. */
static void client_offline(struct sim_client *c)
{
    c->conn = NULL;
    if (c->persistent)
        return;
    if (c->inc != SIM_NONE)
        incs[c->inc].alive = false;
    c->out_count = 0;
    c->qos2_count = 0;
}

/* @k's client no longer reads it: what it waited for there is forgotten. */
static void conn_stop_reading(struct conn *k)
{
    struct sim_inc *in = &incs[k->inc];
    if (!k->reading)
        return;
    k->reading = false;
    for (uint32_t i = 0; i < k->subrec_count; i++)
        in->f[k->subrecs[i].filter].pending--;
    k->subrec_count = 0;
    k->pend_count = 0;
}

/* net/ closes @k: the broker forgets it; a will goes if it was surely armed. */
static void conn_gone(struct conn *k)
{
    RM_ASSERT(k->where == CONN_SHARD);
    ev++;
    TRACE("c%u conn%u gone on shard %u", k->c->idx, k->no, k->shard);
    broker_client_gone(sh[k->shard], &k->cl, 0);
    k->where = CONN_DEAD;
    live_remove(k->no);
    sim.acts++;
    if (k->will_msg != SIM_NONE && k->up && !k->disconnect_sent) {
        struct sim_msg *m = &msgs[k->will_msg];
        m->t_first = ev;
        msg_acked(k->will_msg, ev); /* published now, by connect_leave() */
    }
    if (k->c->conn == k) {
        conn_stop_reading(k);
        client_offline(k->c);
    }
    free(k->tx);
    k->tx = NULL;
    k->tx_len = k->tx_cap = 0;
}

/* net/ hands @k (HANDOFF) to its home shard: stop reading, take the bytes, send them. */
static void handoff_start(struct conn *k)
{
    uint8_t *kept;
    uint32_t len;
    uint32_t home = k->cl.handoff_shard;
    CHECK(home < sim.shards && home != k->shard, "handoff to shard %u from %u", home, k->shard);
    if (k->tx_len > 0 && chance(30)) {
        /* The last reads before the cancel completes bring more: kept too. */
        uint32_t n = 1 + below(k->tx_len);
        uint64_t t = ++ev;
        int rc = broker_client_feed(sh[k->shard], &k->cl, k->tx, n);
        tx_consumed(k, n, t);
        if (rc != CLIENT_FEED_HANDOFF) {
            /* Over output_bytes_max behind the CONNECT: refused here (CLOSING). */
            CHECK(rc == -MQTT_RC_SERVER_BUSY && k->cl.state == CLIENT_CLOSING,
                  "bytes after a HANDOFF gave %d", rc);
            return;
        }
    }
    int rc = broker_client_handoff_take(sh[k->shard], &k->cl, &kept, &len);
    CHECK(rc == 0, "handoff_take failed: %d", rc);
    TRACE("c%u conn%u handed off %u -> %u (%u bytes)", k->c->idx, k->no, k->shard, home, len);
    struct sim_item it = {.conn = k, .kept = kept, .len = len};
    fifo_push(k->shard, home, &it);
    k->where = CONN_TRANSIT;
    k->shard = home;
}

/* Feed @n of @k's bytes to its shard. */
static void conn_feed(struct conn *k, uint32_t n)
{
    RM_ASSERT(k->where == CONN_SHARD && n > 0 && n <= k->tx_len);
    uint64_t t = ++ev;
    int rc = broker_client_feed(sh[k->shard], &k->cl, k->tx, n);
    TRACE("c%u conn%u fed %u bytes on shard %u: %d", k->c->idx, k->no, n, k->shard, rc);
    tx_consumed(k, n, t);
    sim.acts++;
    if (rc == CLIENT_FEED_HANDOFF)
        handoff_start(k);
    settle();
}

static bool conn_can_feed(const struct conn *k)
{
    return k->where == CONN_SHARD && k->writing && k->tx_len > 0 && k->cl.state != CLIENT_CLOSING &&
           k->cl.state != CLIENT_HANDOFF;
}

/* ---- delivering between shards ---- */

static void item_deliver(uint32_t from, uint32_t to, struct sim_item *it)
{
    sim.acts++;
    ev++;
    if (!it->conn) {
        if (trace_level) {
            static const char *const kinds[] = {
                [XMSG_NONE] = "NONE",
                [XMSG_PUBLISH] = "PUBLISH",
                [XMSG_MSG_FREE] = "MSG_FREE",
                [XMSG_INTEREST_ADD] = "INTEREST_ADD",
                [XMSG_INTEREST_DEL] = "INTEREST_DEL",
                [XMSG_RETAIN_SET] = "RETAIN_SET",
                [XMSG_RETAIN_APPLY] = "RETAIN_APPLY",
                [XMSG_ACK] = "ACK",
                [XMSG_NACK] = "NACK",
                [XMSG_SHARE_PUBLISH] = "SHARE_PUBLISH"};
            const struct msg *m = it->x.payload.msg;
            bool has_msg = it->x.kind == XMSG_PUBLISH || it->x.kind == XMSG_RETAIN_SET ||
                           it->x.kind == XMSG_RETAIN_APPLY || it->x.kind == XMSG_SHARE_PUBLISH;
            bool has_buf = it->x.kind == XMSG_INTEREST_ADD || it->x.kind == XMSG_INTEREST_DEL;
            trace_add("xmsg %u -> %u %s arg %#x %.*s%.*s", from, to,
                      it->x.kind < sizeof(kinds) / sizeof(kinds[0]) ? kinds[it->x.kind] : "?",
                      it->x.arg,
                      has_msg ? (int)(m->payload_len < 6 ? m->payload_len : 6) : 0,
                      has_msg ? (const char *)msg_payload(m) : "",
                      has_buf ? (int)it->x.payload.buf.len : 0,
                      has_buf ? (const char *)it->x.payload.buf.ptr : "");
        }
        broker_xmsg_receive(sh[to], from, &it->x);
        return;
    }
    struct conn *k = it->conn;
    RM_ASSERT(k->where == CONN_TRANSIT && k->shard == to);
    TRACE("c%u conn%u lands on shard %u", k->c->idx, k->no, to);
    k->where = CONN_SHARD;
    int rc = handoff_land(sh[to], &k->cl, it->kept, it->len);
    CHECK(rc != CLIENT_FEED_HANDOFF, "conn%u handed off again by its home shard %u", k->no, to);
    if (k->lost) {
        settle(); /* net/ reads EOF after the bytes it kept */
        if (k->where == CONN_SHARD)
            conn_gone(k);
    }
}

/* Deliver up to @n items from @from to @to, in order. */
static void fifo_deliver(uint32_t from, uint32_t to, uint32_t n)
{
    struct sim_fifo *f = &fifo[from][to];
    for (uint32_t i = 0; i < n && f->count > 0; i++) {
        struct sim_item it = f->items[f->head];
        f->head = (f->head + 1) % f->cap;
        f->count--;
        item_deliver(from, to, &it);
        settle();
    }
}

/*
 * Shard @from announces a filter (@x, an INTEREST_ADD) to another: with a
 * token, the SUBSCRIBE held on that wait announced it.
 */
static void add_record(uint32_t from, const struct xmsg *x)
{
    uint32_t f = filter_find(x->payload.buf.ptr, x->payload.buf.len);
    CHECK(f != SIM_NONE, "shard %u announces a filter nobody subscribed to", from);
    uint32_t slot = (uint32_t)x->payload.buf.token; /* the wait's slot + 1, as client._wait */
    for (uint32_t i = 0; slot && i < sim.live_count; i++) {
        struct conn *k = &conns[sim.live[i]];
        if (k->where != CONN_SHARD || k->shard != from || k->cl._wait != slot)
            continue;
        for (uint32_t j = 0; j < k->subrec_count; j++) {
            if (k->subrecs[j].filter == f && !k->subrecs[j].unsub)
                k->subrecs[j].announced = true;
        }
    }
}

/* Move what the shards produced into the FIFOs; close the clients that are closing. */
static void settle(void)
{
    for (uint32_t round = 0;; round++) {
        CHECK(round < SIM_SETTLE_ROUNDS, "the shards never settle");
        bool more = false;
        for (uint32_t i = 0; i < sim.shards; i++) {
            uint32_t dest;
            struct sim_item it = {0};
            while (broker_next_xmsg(sh[i], &dest, &it.x)) {
                CHECK(dest < sim.shards && dest != i, "xmsg from %u to %u", i, dest);
                if (it.x.kind == XMSG_INTEREST_ADD)
                    add_record(i, &it.x);
                fifo_push(i, dest, &it);
                more = true;
            }
        }
        for (uint32_t i = 0; i < sim.shards; i++) {
            struct client *cl;
            while ((cl = broker_next_dirty(sh[i])) != NULL) {
                struct conn *k = conn_of(cl);
                CHECK(k->where == CONN_SHARD && k->shard == i, "conn%u dirty on shard %u", k->no,
                      i);
                CHECK(cl->out.len <= limits_output_hard_max(&lim),
                      "conn%u has %u bytes of output, over %zu", k->no, cl->out.len,
                      limits_output_hard_max(&lim));
                if (cl->state != CLIENT_CLOSING)
                    continue;
                if (k->reading)
                    client_read(k); /* flushed before the close */
                conn_gone(k);
                more = true;
            }
        }
        if (!more)
            return;
    }
}

/* ---- the clock ---- */

static void clock_advance(uint32_t ms)
{
    if (sim.now_ms + ms > sim.start_ms + SIM_TIME_BUDGET_MS)
        return;
    sim.now_ms += ms;
    for (uint32_t i = 0; i < sim.shards; i++)
        broker_tick(sh[i], sim.now_ms);
    settle();
}

/* ---- clients: writing ---- */

static uint16_t pub_id_new(struct sim_client *c)
{
    for (;;) {
        uint16_t id = c->next_id;
        c->next_id = (uint16_t)(id >= 29999 ? 1 : id + 1);
        bool used = false;
        for (uint32_t i = 0; i < c->out_count; i++)
            used |= c->out[i].id == id;
        if (!used)
            return id;
    }
}

static uint32_t window(const struct sim_client *c)
{
    uint32_t w = lim.inflight_max;
    if (c->recv_max && c->recv_max < w)
        w = c->recv_max;
    return w;
}

static uint32_t out_max(void)
{
    return lim.inflight_in_max < SIM_OUT_MAX ? lim.inflight_in_max : SIM_OUT_MAX;
}

/* Write the PUBLISH of message @idx on @k; @alias: a v5 topic alias may stand for the topic. */
static void write_publish(struct conn *k, uint32_t idx, uint16_t id, bool dup, bool alias)
{
    struct sim_msg *m = &msgs[idx];
    uint8_t payload[SIM_BIG_PAYLOAD + 32];
    uint32_t n = payload_make(idx, payload, sizeof(payload));
    struct mqtt_pkt p = {.type = MQTT_PUBLISH};
    p.u.publish = (struct mqtt_publish){
        .qos = m->qos,
        .dup = dup,
        .retain = m->retain,
        .topic = {(const uint8_t *)topic_names[m->topic], topic_lens[m->topic]},
        .pkt_id = id,
        .payload = {payload, n},
    };
    if (k->c->version == MQTT_V5 && m->expiry_s) {
        p.u.publish.props.has |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
        p.u.publish.props.message_expiry = m->expiry_s;
    }
    if (alias) {
        uint32_t slot = 1 + m->topic % 3;
        p.u.publish.props.has |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
        p.u.publish.props.topic_alias = (uint16_t)slot;
        if (k->alias_in[slot] == m->topic + 1)
            p.u.publish.topic.len = 0; /* the alias alone */
        k->alias_in[slot] = (uint8_t)(m->topic + 1);
    }
    m->copies++;
    tx_put(k, &p, MK_PUBLISH, id, idx);
}

static void write_ping(struct conn *k)
{
    if (!tx_room(k) || k->pings == SIM_PINGS_MAX)
        return;
    struct mqtt_pkt p = {.type = MQTT_PINGREQ};
    tx_put(k, &p, MK_OTHER, 0, 0);
    k->ping_end[k->pings++] = k->tx_written;
}

static void write_ack(struct conn *k, uint8_t type, uint16_t id)
{
    struct mqtt_pkt p = {.type = type};
    p.u.ack.pkt_id = id;
    tx_put(k, &p, type == MQTT_PUBACK || type == MQTT_PUBCOMP ? MK_ID_DONE : MK_OTHER, id, 0);
}

static void client_connect(struct sim_client *c)
{
    bool fresh = !c->persistent || c->inc == SIM_NONE; /* a new session incarnation */
    if (sim.conn_count == SIM_CONNS_MAX || (fresh && sim.inc_count == SIM_INCS_MAX))
        return;
    RM_ASSERT(c->conn == NULL);
    uint32_t home = broker_home_shard((const uint8_t *)c->id, c->id_len, sim.shards);
    uint32_t landed = c->id_len && chance(40) ? home : below(sim.shards);
    struct conn *k = &conns[sim.conn_count];
    memset(k, 0, sizeof(*k));
    k->no = sim.conn_count++;
    k->c = c;
    k->shard = landed;
    k->where = CONN_SHARD;
    k->reading = k->writing = true;
    k->will_msg = SIM_NONE;
    for (uint32_t i = 0; i <= SIM_ALIAS_MAX; i++)
        k->alias_out[i] = SIM_NONE;
    sim.live[sim.live_count++] = k->no;
    broker_client_init(sh[landed], &k->cl);
    if (fresh) {
        if (c->inc != SIM_NONE)
            incs[c->inc].alive = false;
        c->inc = inc_new(c);
        incs[c->inc].shard = c->id_len ? home : landed; /* no handoff without an id */
    }
    k->inc = c->inc;
    c->conn = k;

    bool clean = !c->persistent && !c->resume0;
    struct mqtt_pkt p = connect_pkt(c->id, clean, c->version);
    struct mqtt_props *pr = &p.u.connect.props;
    if (c->version == MQTT_V5) {
        if (c->persistent) {
            pr->has |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
            pr->session_expiry = c->expiry_s;
        }
        if (c->recv_max) {
            pr->has |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX);
            pr->receive_max = c->recv_max;
        }
        if (c->max_packet) {
            pr->has |= MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE);
            pr->max_packet_size = c->max_packet;
        }
        if (c->alias_max) {
            pr->has |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAX);
            pr->topic_alias_max = c->alias_max;
        }
    }
    uint8_t payload[64];
    if (c->will_qos && sim.msg_count < SIM_MSGS_MAX) {
        uint32_t w = msg_register(c, c->inc, T_WILL + c->idx, c->will_qos, false, below(8));
        msgs[w].will_conn = k->no;
        msgs[w].copies = 1;
        k->will_msg = w;
        uint32_t n = payload_make(w, payload, sizeof(payload));
        p.u.connect.will = true;
        p.u.connect.will_qos = c->will_qos;
        p.u.connect.will_topic = (struct mqtt_str){(const uint8_t *)topic_names[T_WILL + c->idx],
                                                   topic_lens[T_WILL + c->idx]};
        p.u.connect.will_payload = (struct mqtt_str){payload, n};
    }
    TRACE("c%u conn%u connects v%u %s on shard %u (home %u)", c->idx, k->no, c->version,
          c->persistent ? "persistent" : "clean", landed, home);
    tx_put(k, &p, MK_OTHER, 0, 0);
    k->connect_end = k->tx_written;
}

/* ---- clients: reading ---- */

static struct sim_out *out_find(struct sim_client *c, uint16_t id, uint8_t state)
{
    for (uint32_t i = 0; i < c->out_count; i++) {
        if (c->out[i].id == id && c->out[i].state == state)
            return &c->out[i];
    }
    return NULL;
}

static void out_remove(struct sim_client *c, struct sim_out *o)
{
    uint32_t i = (uint32_t)(o - c->out);
    memmove(&c->out[i], &c->out[i + 1], (c->out_count - i - 1) * sizeof(*o));
    c->out_count--;
}

static void pend_add(struct conn *k, uint8_t type, uint16_t id)
{
    CHECK(k->pend_count < SIM_PEND_MAX, "c%u owes more than %u acknowledgements", k->c->idx,
          SIM_PEND_MAX);
    k->pend[k->pend_count++] = (struct sim_pend){type, id};
}

static bool needs_resend(const struct sim_out *o, const struct conn *k)
{
    return (o->state == OUT_COMP ? o->rel_conn : o->copy_conn) != k->no;
}

static void write_pubrel(struct conn *k, struct sim_out *o)
{
    struct mqtt_pkt rel = {.type = MQTT_PUBREL};
    rel.u.ack.pkt_id = o->id;
    tx_put(k, &rel, MK_OTHER, o->id, 0);
    o->rel_conn = k->no;
    o->end = k->tx_written;
}

/*
 * Resend on @k, in order and with the same ids, what is in flight from
 * earlier connections [MQTT-4.4.0-1], as much as tx_fits() lets it; the
 * rest at its next steps, before anything new.
 */
static void client_resend(struct conn *k)
{
    struct sim_client *c = k->c;
    for (uint32_t i = 0; i < c->out_count; i++) {
        struct sim_out *o = &c->out[i];
        if (!needs_resend(o, k))
            continue;
        if (!tx_fits(k, msgs[o->msg].big ? SIM_BIG_PAYLOAD + 64 : 96))
            return;
        if (o->state == OUT_COMP) {
            write_pubrel(k, o);
            continue;
        }
        o->copy_conn = k->no;
        o->t_fed = 0;
        write_publish(k, o->msg, o->id, true, false);
        o->end = k->tx_written;
    }
}

static bool resend_pending(const struct conn *k)
{
    const struct sim_client *c = k->c;
    for (uint32_t i = 0; i < c->out_count; i++) {
        if (needs_resend(&c->out[i], k))
            return true;
    }
    return false;
}

static void on_connack(struct conn *k, const struct mqtt_connack *ca)
{
    struct sim_client *c = k->c;
    CHECK(!k->up, "c%u conn%u: a second CONNACK", c->idx, k->no);
    CHECK(ca->rc == 0, "c%u conn%u refused: CONNACK %#x", c->idx, k->no, ca->rc);
    if (!c->persistent)
        CHECK(!ca->session_present, "c%u conn%u: session present for a clean session", c->idx,
              k->no);
    else if (c->had_session)
        CHECK(ca->session_present, "c%u conn%u: persistent session lost", c->idx, k->no);
    k->up = true;
    tx_done(k, k->connect_end);
    if (c->persistent)
        c->had_session = true;
    if (!ca->session_present) {
        /* No session: nothing of earlier connections to resume [MQTT-3.2.2-4 (v5)]. */
        uint32_t kept = 0;
        for (uint32_t i = 0; i < c->out_count; i++) {
            if (c->out[i].copy_conn == k->no)
                c->out[kept++] = c->out[i]; /* written on this one before its CONNACK */
        }
        c->out_count = kept;
        c->qos2_count = 0;
        return;
    }
    client_resend(k);
}

/* The highest QoS a subscription of session @in that ever matched @topic was granted. */
static int best_qos(const struct sim_client *c, const struct sim_inc *in, uint32_t topic)
{
    int best = -1;
    for (uint32_t f = 0; f < F_COUNT; f++) {
        if (!in->f[f].ever || !filter_matches(f, topic))
            continue;
        if ((filters[f].group >= 0) != (c->group >= 0))
            continue;
        if (c->qos[f] > best)
            best = c->qos[f];
    }
    return best;
}

static void check_sub_ids(const struct sim_inc *in, const struct mqtt_publish *pub, uint32_t topic)
{
    struct mqtt_prop_iter it;
    struct mqtt_prop pr;
    mqtt_prop_iter_init(&it, &pub->props);
    while (mqtt_prop_next(&it, &pr)) {
        if (pr.id != MQTT_PROP_SUBSCRIPTION_ID)
            continue;
        uint32_t f = pr.num - 1;
        CHECK(f < F_COUNT && in->f[f].sid_ever && filter_matches(f, topic),
              "subscription identifier %u on %s matches no subscription made with it", pr.num,
              topic_names[topic]);
    }
}

static void on_publish(struct conn *k, struct mqtt_publish *pub)
{
    struct sim_client *c = k->c;
    struct sim_inc *in = &incs[k->inc];
    uint32_t topic;
    if (pub->props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)) {
        uint16_t a = pub->props.topic_alias;
        CHECK(a >= 1 && a <= c->alias_max && a <= SIM_ALIAS_MAX,
              "c%u: topic alias %u over its Topic Alias Maximum %u", c->idx, a, c->alias_max);
        if (pub->topic.len > 0) {
            topic = topic_find(&pub->topic);
            CHECK(topic != SIM_NONE, "c%u: PUBLISH on a topic nobody published", c->idx);
            k->alias_out[a] = topic;
        } else {
            topic = k->alias_out[a];
            CHECK(topic != SIM_NONE, "c%u: topic alias %u never set", c->idx, a);
        }
    } else {
        topic = topic_find(&pub->topic);
        CHECK(topic != SIM_NONE, "c%u: PUBLISH on a topic nobody published", c->idx);
    }
    uint32_t idx = payload_msg(&pub->payload);
    CHECK(idx != SIM_NONE, "c%u: PUBLISH on %s with a payload nobody published", c->idx,
          topic_names[topic]);
    struct sim_msg *m = &msgs[idx];
    TRACE("c%u conn%u reads m%u (c%u#%u %s q%u%s) q%u id %u%s%s", c->idx, k->no, idx, m->client,
          m->seq, topic_names[topic], m->qos, m->retain ? " retained" : "", pub->qos, pub->pkt_id,
          pub->dup ? " dup" : "", pub->retain ? " retain" : "");
    CHECK(m->topic == topic, "c%u: m%u of %s arrived on %s", c->idx, idx, topic_names[m->topic],
          topic_names[topic]);
    CHECK(pub->qos <= m->qos, "c%u: m%u at QoS %u, published at %u", c->idx, idx, pub->qos, m->qos);
    CHECK(!pub->retain || m->retain, "c%u: m%u with RETAIN, published without", c->idx, idx);
    int best = best_qos(c, in, topic);
    CHECK(best >= 0, "c%u: m%u on %s matches no subscription of its session", c->idx, idx,
          topic_names[topic]);
    CHECK(pub->qos <= best, "c%u: m%u at QoS %u, granted at most %d", c->idx, idx, pub->qos, best);
    CHECK(m->will_conn == SIM_NONE || conns[m->will_conn].where == CONN_DEAD,
          "c%u: the will m%u of conn%u, still open", c->idx, idx, m->will_conn);
    if (c->version == MQTT_V5) {
        bool has = pub->props.has & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
        CHECK(has == (m->expiry_s != 0), "c%u: m%u message expiry %s", c->idx, idx,
              has ? "added" : "dropped");
        CHECK(!has || pub->props.message_expiry <= m->expiry_s,
              "c%u: m%u expiry %u s, published with %u s", c->idx, idx, pub->props.message_expiry,
              m->expiry_s);
        check_sub_ids(in, pub, topic);
    }
    bool app = true;
    if (pub->qos > 0) {
        CHECK(!ids_has(k, pub->pkt_id), "c%u: m%u with packet id %u, still in use", c->idx, idx,
              pub->pkt_id);
        CHECK(k->id_count < SIM_IDS_MAX, "c%u: too many ids in flight", c->idx);
        k->ids[k->id_count++] = pub->pkt_id;
        CHECK(k->id_count <= window(c),
              "c%u: %u QoS 1/2 PUBLISH unacknowledged, over min(inflight_max %u, Receive "
              "Maximum %u)",
              c->idx, k->id_count, lim.inflight_max, c->recv_max);
        pend_add(k, pub->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, pub->pkt_id);
    }
    if (pub->qos == 2) {
        for (uint32_t i = 0; i < c->qos2_count; i++)
            app &= c->qos2[i] != pub->pkt_id; /* a resend: the application has it */
        if (app) {
            CHECK(c->qos2_count < SIM_QOS2_MAX, "c%u: too many QoS 2 ids held", c->idx);
            c->qos2[c->qos2_count++] = pub->pkt_id;
        }
    }
    struct sim_dlv *d = &dlv[k->inc][idx];
    bool first = d->got == 0;
    cover.deliveries++;
    if (d->got < UINT8_MAX)
        d->got++;
    if (pub->retain)
        return; /* a retained message for a new subscription: no order, may repeat */
    if (c->group >= 0) {
        /* A group's messages move between members: only QoS 2 once per group. */
        uint32_t g = (uint32_t)c->group;
        if (share_got[g][idx] < UINT8_MAX)
            share_got[g][idx]++;
        if (app && pub->qos == 2)
            CHECK(++share_app2[g][idx] == 1, "group %u: QoS 2 m%u handed to the application twice",
                  g, idx);
        return;
    }
    if (!pub->dup)
        CHECK(++d->dup0 <= m->copies, "c%u: m%u delivered %u times without DUP, published %u",
              c->idx, idx, d->dup0, m->copies);
    if (m->copies == 1 && m->will_conn == SIM_NONE) {
        /*
         * Resent in the order first sent [MQTT-4.4.0-1, 4.6.0-1]: a DUP of
         * a message read before comes after the DUPs of those read before it.
         */
        if (pub->dup && d->first) {
            CHECK(d->first > k->last_dup, "c%u conn%u: m%u resent out of the order first sent",
                  c->idx, k->no, idx);
            k->last_dup = d->first;
        }
        if (!d->first && !pub->dup)
            d->first = ++in->live_reads; /* a first send read: numbered in send order */
    }
    if (app && pub->qos == 2)
        CHECK(++d->app2 == 1, "c%u: QoS 2 m%u handed to the application twice", c->idx, idx);
    if (m->will_conn != SIM_NONE || m->copies != 1 || pub->dup || !first)
        return; /* wills of several connections, and resent messages, have no one order */
    uint32_t *last = &last_seq[k->inc][m->inc][pub->qos ? 1 : 0];
    CHECK(m->seq > *last, "c%u: m%u (c%u#%u) at QoS %u after #%u of the same publisher", c->idx,
          idx, m->client, m->seq, pub->qos, *last);
    *last = m->seq;
}

static void on_publisher_ack(struct conn *k, uint8_t type, const struct mqtt_ack *a)
{
    struct sim_client *c = k->c;
    uint8_t want = type == MQTT_PUBACK ? OUT_ACK : type == MQTT_PUBREC ? OUT_REC : OUT_COMP;
    struct sim_out *o = out_find(c, a->pkt_id, want);
    CHECK(o != NULL, "c%u conn%u: %s for packet id %u, not awaited", c->idx, k->no,
          mqtt_type_name(type), a->pkt_id);
    TRACE("c%u conn%u reads %s %u (m%u) rc %#x", c->idx, k->no, mqtt_type_name(type), a->pkt_id,
          o->msg, a->rc);
    if (type == MQTT_PUBCOMP) {
        CHECK(o->rel_conn == k->no, "c%u conn%u: PUBCOMP %u before its PUBREL", c->idx, k->no,
              a->pkt_id);
        tx_done(k, o->end);
        out_remove(c, o);
        return;
    }
    CHECK(o->copy_conn == k->no && o->t_fed != 0,
          "c%u conn%u: %s for id %u before that PUBLISH was fed", c->idx, k->no,
          mqtt_type_name(type), a->pkt_id);
    tx_done(k, o->end);
    if (a->rc >= 0x80) {
        out_remove(c, o); /* refused: not the broker's any more */
        return;
    }
    msg_acked(o->msg, o->t_fed);
    if (type == MQTT_PUBREC && o->copy_conn != msgs[o->msg].first_conn)
        msgs[o->msg].acked_dup = true;
    if (type == MQTT_PUBACK) {
        out_remove(c, o);
        return;
    }
    o->state = OUT_COMP;
    write_pubrel(k, o);
}

static void on_pubrel(struct conn *k, uint16_t id)
{
    struct sim_client *c = k->c;
    if (!ids_has(k, id)) {
        /* Resent for a PUBREC of an earlier connection: it holds a slot of the window. */
        CHECK(k->id_count < SIM_IDS_MAX, "c%u: too many ids in flight", c->idx);
        k->ids[k->id_count++] = id;
        CHECK(k->id_count <= window(c), "c%u: %u unacknowledged (PUBREL), over %u", c->idx,
              k->id_count, window(c));
    }
    for (uint32_t i = 0; i < c->qos2_count; i++) {
        if (c->qos2[i] == id) {
            c->qos2[i] = c->qos2[--c->qos2_count];
            break;
        }
    }
    pend_add(k, MQTT_PUBCOMP, id);
}

/* Another session of shard @shard than @inc may have subscribed to filter @f. */
static bool filter_elsewhere(uint32_t inc, uint32_t shard, uint32_t f)
{
    for (uint32_t i = 0; i < sim.inc_count; i++) {
        if (i != inc && incs[i].shard == shard && incs[i].f[f].ever)
            return true;
    }
    return false;
}

static void on_suback(struct conn *k, uint8_t type, const struct mqtt_suback *sa)
{
    struct sim_client *c = k->c;
    struct sim_inc *in = &incs[k->inc];
    bool unsub = type == MQTT_UNSUBACK;
    uint32_t i = 0;
    while (i < k->subrec_count && (k->subrecs[i].id != sa->pkt_id || k->subrecs[i].unsub != unsub))
        i++;
    CHECK(i < k->subrec_count, "c%u conn%u: %s %u for nothing asked", c->idx, k->no,
          mqtt_type_name(type), sa->pkt_id);
    struct sim_subrec r = k->subrecs[i];
    k->subrecs[i] = k->subrecs[--k->subrec_count];
    struct sim_fstate *fs = &in->f[r.filter];
    fs->pending--;
    tx_done(k, r.end);
    TRACE("c%u conn%u reads %s %u (%s)", c->idx, k->no, mqtt_type_name(type), sa->pkt_id,
          filters[r.filter].str);
    if (unsub) {
        CHECK(c->version != MQTT_V5 || (sa->count == 1 && sa->rcs[0] == MQTT_RC_SUCCESS),
              "c%u: UNSUBACK of a subscription it had: %#x", c->idx, sa->count ? sa->rcs[0] : 0xff);
        return;
    }
    CHECK(sa->count == 1 && sa->rcs[0] == c->qos[r.filter], "c%u: SUBACK %#x for %s at QoS %u",
          c->idx, sa->count ? sa->rcs[0] : 0xff, filters[r.filter].str, c->qos[r.filter]);
    CHECK(r.t_fed != 0, "c%u: SUBACK before its SUBSCRIBE was fed", c->idx);
    if (fs->st != F_OPEN) {
        fs->st = F_OPEN;
        fs->t_open = ev;
        fs->t_sub = r.t_fed;
        fs->piggy = !r.announced && (r.again || filter_elsewhere(k->inc, k->shard, r.filter));
    }
}

static void on_disconnect(struct conn *k, const struct mqtt_ack *d)
{
    struct sim_client *c = k->c;
    TRACE("c%u conn%u reads DISCONNECT %#x", c->idx, k->no, d->rc);
    CHECK(c->version == MQTT_V5, "c%u: DISCONNECT sent to an MQTT %u client", c->idx, c->version);
    /* Takeover, keep alive, or overload: never a protocol error of a client that keeps the rules.
     */
    CHECK(d->rc == MQTT_RC_SESSION_TAKEN_OVER ||
              (d->rc == MQTT_RC_KEEPALIVE_TIMEOUT && k->kicked) || d->rc == MQTT_RC_SERVER_BUSY ||
              d->rc == MQTT_RC_SERVER_UNAVAILABLE || d->rc == MQTT_RC_QUOTA_EXCEEDED,
          "c%u conn%u closed with DISCONNECT %#x (%s)", c->idx, k->no, d->rc, mqtt_rc_name(d->rc));
}

static void on_packet(struct conn *k, struct mqtt_pkt *p)
{
    struct sim_client *c = k->c;
    CHECK(k->up || p->type == MQTT_CONNACK, "c%u conn%u: %s before CONNACK", c->idx, k->no,
          mqtt_type_name(p->type));
    switch (p->type) {
    case MQTT_CONNACK:
        TRACE("c%u conn%u reads CONNACK present %u", c->idx, k->no, p->u.connack.session_present);
        on_connack(k, &p->u.connack);
        break;
    case MQTT_PUBLISH:
        on_publish(k, &p->u.publish);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        on_publisher_ack(k, p->type, &p->u.ack);
        break;
    case MQTT_PUBREL:
        on_pubrel(k, p->u.ack.pkt_id);
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        on_suback(k, p->type, &p->u.suback);
        break;
    case MQTT_PINGRESP:
        CHECK(k->pings > 0, "c%u: PINGRESP for no PINGREQ", c->idx);
        tx_done(k, k->ping_end[0]);
        memmove(k->ping_end, k->ping_end + 1, --k->pings * sizeof(k->ping_end[0]));
        break;
    case MQTT_DISCONNECT:
        on_disconnect(k, &p->u.ack);
        break;
    default:
        sim_fail("c%u conn%u: the broker sent %s", c->idx, k->no, mqtt_type_name(p->type));
    }
}

/* The client reads everything @k's shard queued for it. */
static void client_read(struct conn *k)
{
    struct sim_client *c = k->c;
    RM_ASSERT(k->reading && k->where == CONN_SHARD && k->cl.state != CLIENT_HANDOFF);
    const uint8_t *buf = k->cl.out.data;
    uint32_t len = k->cl.out.len;
    uint32_t max = c->max_packet ? c->max_packet : LIMITS_REMAINING_LENGTH_MAX;
    CHECK(len <= limits_output_hard_max(&lim), "conn%u: %u bytes of output, over %zu", k->no, len,
          limits_output_hard_max(&lim));
    for (uint32_t pos = 0; pos < len;) {
        struct mqtt_fixed fh;
        struct mqtt_pkt p;
        int r = mqtt_fixed_parse(buf + pos, len - pos, max, &fh);
        CHECK(r != -MQTT_RC_PACKET_TOO_LARGE, "c%u: a packet over its Maximum Packet Size %u",
              c->idx, max);
        CHECK(r > 0 && (uint64_t)r + fh.body_bytes <= len - pos,
              "c%u: output ends in a broken packet (%d)", c->idx, r);
        int d = mqtt_decode_any(&fh, buf + pos + r, c->version, &p);
        CHECK(d == 0, "c%u: a %s that MQTT %u cannot decode: %d", c->idx, mqtt_type_name(fh.type),
              c->version, d);
        ev++;
        sim.acts++;
        on_packet(k, &p);
        pos += (uint32_t)r + fh.body_bytes;
    }
    k->cl.out.len = 0;
}

/* ---- clients: acting ---- */

static void act_publish(struct sim_client *c, struct conn *k)
{
    if (sim.msg_count + SIM_CLIENTS_MAX + 1 >= SIM_MSGS_MAX)
        return;
    uint32_t topic;
    uint8_t qos;
    bool retain = false;
    uint32_t r = below(100);
    if (r < 15 && c->id_len && k->up) {
        /* Its own retained topic, only once connected: no stale copy can follow a newer one. */
        topic = T_RETAINED + c->idx;
        retain = true;
        qos = (uint8_t)(1 + below(2));
    } else {
        topic = r < 40 ? T_SHARED + below(T_SHARED_N) : T_PLAIN + below(T_PLAIN_N);
        r = below(100);
        qos = r < 30 ? 0 : r < 65 ? 1 : 2;
    }
    if (qos > 0 && c->out_count >= out_max())
        return;
    bool big = topic_names[topic][0] == 't' && chance(6) && tx_fits(k, SIM_BIG_PAYLOAD + 64);
    uint32_t idx = msg_register(c, k->inc, topic, qos, retain, big ? SIM_BIG_PAYLOAD : below(24));
    struct sim_msg *m = &msgs[idx];
    m->big = big;
    if (c->version == MQTT_V5 && chance(15))
        m->expiry_s = !retain && chance(30) ? 1 : 3600;
    uint16_t id = qos ? pub_id_new(c) : 0;
    m->first_conn = k->no;
    TRACE("c%u conn%u publishes m%u (#%u %s q%u%s%s) id %u", c->idx, k->no, idx, m->seq,
          topic_names[topic], qos, retain ? " retained" : "", big ? " big" : "", id);
    write_publish(k, idx, id, false, c->version == MQTT_V5 && k->up && chance(30));
    if (qos)
        c->out[c->out_count++] = (struct sim_out){.id = id,
                                                  .state = qos == 1 ? OUT_ACK : OUT_REC,
                                                  .msg = idx,
                                                  .copy_conn = k->no,
                                                  .rel_conn = SIM_NONE,
                                                  .end = k->tx_written};
}

static void act_subscribe(struct sim_client *c, struct conn *k)
{
    struct sim_inc *in = &incs[k->inc];
    uint8_t f = c->filters[below(c->filter_count)];
    struct sim_fstate *fs = &in->f[f];
    if (fs->pending || k->subrec_count == SIM_SUBRECS_MAX)
        return;
    struct mqtt_sub_entry e = {{(const uint8_t *)filters[f].str, (uint32_t)strlen(filters[f].str)},
                               c->qos[f]};
    struct mqtt_pkt p = {.type = MQTT_SUBSCRIBE};
    uint16_t id = c->next_sub_id++;
    c->next_sub_id = (uint16_t)(c->next_sub_id < 30000 ? 30000 : c->next_sub_id);
    p.u.subscribe = (struct mqtt_subscribe){.pkt_id = id, .count = 1, .entries = &e};
    bool unsub = fs->st == F_OPEN && !c->anchor && chance(25);
    bool again = fs->ever;
    uint32_t sid = f + 1; /* the identifier of each filter: its index + 1 */
    if (unsub) {
        p.type = MQTT_UNSUBSCRIBE;
        fs->st = F_CLOSED; /* what it gets from now on may or may not come */
    } else {
        if (c->version == MQTT_V5 && chance(40)) {
            p.u.subscribe.props.sub_ids = &sid;
            p.u.subscribe.props.sub_id_count = 1;
            fs->sid_ever = true;
        }
        fs->ever = true;
    }
    fs->pending++;
    k->subrecs[k->subrec_count++] = (struct sim_subrec){id, f, unsub, false, again, 0, 0};
    TRACE("c%u conn%u %s %s q%u id %u", c->idx, k->no, unsub ? "unsubscribes" : "subscribes",
          filters[f].str, c->qos[f], id);
    tx_put(k, &p, unsub ? MK_OTHER : MK_SUBSCRIBE, id, 0);
    k->subrecs[k->subrec_count - 1].end = k->tx_written;
}

static void act_ack(struct conn *k)
{
    uint32_t n = 1 + below(k->pend_count);
    for (uint32_t i = 0; i < n && k->pend_count > 0 && tx_fits(k, 8); i++) {
        /* Mostly in order [MQTT-4.6.0-2]; now and then not, which the broker must take too. */
        uint32_t j = chance(85) ? 0 : below(k->pend_count);
        struct sim_pend pd = k->pend[j];
        memmove(&k->pend[j], &k->pend[j + 1], (k->pend_count - j - 1) * sizeof(pd));
        k->pend_count--;
        write_ack(k, pd.type, pd.id);
    }
}

/* The client stops using its connection: @how is 0 DISCONNECT, 1 lost, 2 left open (takeover). */
static void client_leave(struct sim_client *c, int how)
{
    struct conn *k = c->conn;
    static const char *const hows[] = {"disconnects", "loses", "abandons"};
    TRACE("c%u %s conn%u", c->idx, hows[how], k->no);
    if (how == 0) {
        struct mqtt_pkt p = {.type = MQTT_DISCONNECT};
        tx_put(k, &p, MK_OTHER, 0, 0);
        k->disconnect_sent = true;
    }
    conn_stop_reading(k);
    client_offline(c);
    if (how == 1) {
        k->lost = true;
        k->writing = false;
        if (k->where == CONN_SHARD)
            conn_gone(k);
        settle();
    }
}

static void client_step(struct sim_client *c)
{
    struct conn *k = c->conn;
    bool spare = sim.conn_count + SIM_CONNS_SPARE < SIM_CONNS_MAX;
    if (!k) {
        if (spare && chance(c->persistent ? 40 : 25))
            client_connect(c);
        return;
    }
    bool on_shard = k->where == CONN_SHARD && k->cl.state != CLIENT_HANDOFF;
    bool can_act = k->up || (!c->persistent && k->where != CONN_DEAD);
    if (k->up)
        client_resend(k);
    if (k->up && !tx_fits(k, 256) && k->pings == 0)
        write_ping(k); /* unheard for a while: how far did the broker get? */
    uint32_t r = below(100);
    if (r < c->read_pct) {
        if (on_shard && k->cl.out.len > 0) {
            client_read(k);
            settle();
        }
    } else if (r < c->read_pct + 20) {
        if (k->pend_count > 0)
            act_ack(k);
    } else if (r < c->read_pct + 45) {
        /* Now and then a burst, which fills queues between shards. */
        uint32_t n = chance(10) ? 1 + below(sim.burst_max) : 1;
        for (uint32_t i = 0;
             i < n && c->publisher && can_act && tx_fits(k, 96) && !resend_pending(k); i++)
            act_publish(c, k);
    } else if (r < c->read_pct + 55) {
        if (c->filter_count && can_act && tx_fits(k, 64))
            act_subscribe(c, k);
    } else if (r < c->read_pct + 57) {
        if (can_act)
            write_ping(k);
    } else if (r < c->read_pct + 57 + sim.churn_pct && spare) {
        uint32_t how = below(3);
        if (how == 0 && !tx_room(k))
            how = 1;
        client_leave(c, (int)how);
        if (how == 2)
            client_connect(c); /* over the connection it still has */
    }
}

/* ---- the network and net/ ---- */

static void net_deliver(void)
{
    uint32_t from[SIM_SHARDS_MAX * SIM_SHARDS_MAX], to[SIM_SHARDS_MAX * SIM_SHARDS_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < sim.shards; i++) {
        for (uint32_t j = 0; j < sim.shards; j++) {
            if (fifo[i][j].count > 0 && fifo[i][j].stall_until <= sim.step) {
                from[n] = i;
                to[n++] = j;
            }
        }
    }
    if (n == 0)
        return;
    if (chance(5)) {
        for (uint32_t i = 0; i < n; i++)
            fifo_deliver(from[i], to[i], fifo[from[i]][to[i]].count);
        return;
    }
    uint32_t pick = below(n);
    fifo_deliver(from[pick], to[pick], 1 + below(8));
}

static void net_flush(void)
{
    uint32_t cand[SIM_CONNS_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < sim.live_count; i++) {
        if (conn_can_feed(&conns[sim.live[i]]))
            cand[n++] = sim.live[i];
    }
    if (n == 0)
        return;
    struct conn *k = &conns[cand[below(n)]];
    conn_feed(k, chance(60) ? k->tx_len : 1 + below(k->tx_len));
}

static void net_stall(void)
{
    uint32_t from = below(sim.shards), to = below(sim.shards);
    uint32_t until = sim.step + 1 + below(sim.stall_max);
    if (from != to && until > fifo[from][to].stall_until)
        fifo[from][to].stall_until = until;
}

static void net_kick(void)
{
    uint32_t cand[SIM_CONNS_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < sim.live_count; i++) {
        struct conn *k = &conns[sim.live[i]];
        if (k->where == CONN_SHARD && k->cl.state == CLIENT_CONNECTED)
            cand[n++] = sim.live[i];
    }
    if (n == 0)
        return;
    struct conn *k = &conns[cand[below(n)]];
    TRACE("c%u conn%u kicked (keep alive)", k->c->idx, k->no);
    k->kicked = true;
    broker_client_kick(sh[k->shard], &k->cl, -MQTT_RC_KEEPALIVE_TIMEOUT);
    settle();
}

/* ---- a run ---- */

static void world_init(void)
{
    sim.shards = 2 + below(SIM_SHARDS_MAX - 1);
    sim.steps = SIM_STEPS_MIN + below(SIM_STEPS_SPAN);
    /* A congested network now and then: queues between shards grow long. */
    sim.net_pct = chance(25) ? 3 + below(5) : 15 + below(35);
    sim.flush_pct = 10 + below(20);
    sim.stall_pct = below(4);
    sim.stall_max = 1 + below(chance(30) ? 2000 : 200);
    sim.churn_pct = chance(20) ? 5 + below(20) : 1 + below(4);
    sim.kick_pct = below(2);
    sim.burst_max = 1 + below(40);

    if (chance(10)) {
        /* One pair of shards stalled until the final phase: its queue takes the whole run. */
        uint32_t from = below(sim.shards), to = (from + 1 + below(sim.shards - 1)) % sim.shards;
        fifo[from][to].stall_until = UINT32_MAX;
    }
    limits_defaults();
    static const uint32_t inflight[] = {1, 2, 4, 20};
    lim.inflight_max = inflight[below(4)];
    /* A small output bound now and then: QoS 0 is shed, QoS 1/2 wait in the queue. */
    uint32_t out = below(100);
    lim.output_bytes_max = out < 15 ? 1024 : out < 40 ? 4096 : 1u << 20;
    lim.inflight_in_max = chance(50) ? 4 : 16;
    lim.queued_max = 1000000; /* no queue may fill: SIM_MSGS_MAX are all there is */
    lim.retained_max = 1000000;
    lim.share_key_seed = rnd() | 1;

    sim.client_count = 4 + below(SIM_CLIENTS_MAX - 3);
    for (uint32_t i = 0; i < sim.client_count; i++) {
        struct sim_client *c = &clients[i];
        memset(c, 0, sizeof(*c));
        c->idx = i;
        c->inc = SIM_NONE;
        c->group = -1;
        c->next_id = 1;
        c->next_sub_id = 30000;
        c->version = chance(50) ? MQTT_V5 : MQTT_V311;
        if (!chance(10))
            c->id_len = (uint8_t)snprintf(c->id, sizeof(c->id), "sim-%u", i);
        c->persistent = c->id_len && chance(50);
        c->resume0 = !c->persistent && c->version == MQTT_V5 && c->id_len && chance(25);
        c->publisher = chance(55);
        c->read_pct = chance(20) ? 5 : 20 + below(30);
        c->will_qos = chance(25) ? (uint8_t)(1 + below(2)) : 0;
        if (c->version == MQTT_V5) {
            c->recv_max = chance(50) ? (uint16_t)(1 + below(3)) : 0;
            c->max_packet = chance(30) ? SIM_SMALL_MAX_PACKET : 0;
            c->alias_max = chance(50) ? (uint16_t)(1 + below(4)) : 0;
            c->expiry_s = chance(70) ? UINT32_MAX : 3600;
        }
        if (c->publisher && chance(50))
            continue; /* a publisher only */
        uint32_t want = 1 + below(4);
        for (uint32_t j = 0; j < want * 3 && c->filter_count < want; j++) {
            uint8_t f = (uint8_t)below(F_PLAIN_N);
            bool have = false;
            for (uint32_t l = 0; l < c->filter_count; l++)
                have |= c->filters[l] == f;
            if (!have)
                c->filters[c->filter_count++] = f;
        }
        for (uint32_t f = 0; f < F_COUNT; f++) {
            uint32_t r = below(100);
            c->qos[f] = r < 15 ? 0 : r < 60 ? 1 : 2;
        }
    }
    /* Shared groups: some clients, the first one persistent, take one group's filter only. */
    for (uint32_t g = 0; g < SIM_GROUPS; g++) {
        sim.group_anchor[g] = -1;
        sim.group_qos[g] = (uint8_t)(1 + below(2));
        if (!chance(60))
            continue;
        uint32_t members = 1 + below(3);
        for (uint32_t j = 0; j < members; j++) {
            struct sim_client *c = &clients[below(sim.client_count)];
            if (c->group >= 0)
                continue;
            c->group = (int8_t)g;
            c->filter_count = 1;
            c->filters[0] = (uint8_t)(F_PLAIN_N + g);
            c->qos[F_PLAIN_N + g] = sim.group_qos[g];
            if (sim.group_anchor[g] < 0 && c->id_len) {
                sim.group_anchor[g] = (int8_t)c->idx;
                c->anchor = true;
                c->persistent = true;
                c->resume0 = false;
            }
            sim.group_clean[g] |= !c->persistent;
        }
    }
}

static void world_fini(void)
{
    /* Every connection ends; what that sends between shards is delivered. */
    for (uint32_t round = 0; round < SIM_QUIESCE_ROUNDS && sim.live_count > 0; round++) {
        struct conn *k = &conns[sim.live[0]];
        if (k->where == CONN_SHARD) {
            conn_gone(k);
            settle();
        } else {
            for (uint32_t i = 0; i < sim.shards; i++) {
                for (uint32_t j = 0; j < sim.shards; j++)
                    fifo_deliver(i, j, fifo[i][j].count);
            }
        }
    }
    CHECK(sim.live_count == 0, "connections left at the end");
    for (uint32_t round = 0;; round++) {
        CHECK(round < SIM_QUIESCE_ROUNDS, "cross-shard messages never stop");
        bool more = false;
        for (uint32_t i = 0; i < sim.shards; i++) {
            for (uint32_t j = 0; j < sim.shards; j++) {
                more |= fifo[i][j].count > 0;
                fifo_deliver(i, j, fifo[i][j].count);
            }
        }
        if (!more)
            break;
    }
    cover.seeds++;
    cover.msgs += sim.msg_count;
    for (uint32_t i = 0; i < sim.shards; i++) {
        const struct broker_stats *st = broker_stats(sh[i]);
        CHECK(st->clients == 0, "shard %u counts %u clients at the end", i, st->clients);
        cover.handoffs += st->handoffs;
        cover.takeovers += st->takeovers;
        cover.wills += st->wills_sent;
        cover.xmsgs += st->xmsg_publish_out;
        cover.too_large += st->msgs_too_large;
        cover.expired += st->msgs_expired;
        cover.shed += st->msgs_dropped;
        broker_free(sh[i]);
        sh[i] = NULL;
        for (uint32_t j = 0; j < sim.shards; j++) {
            free(fifo[i][j].items);
            fifo[i][j] = (struct sim_fifo){0};
        }
    }
}

/* Until nothing moves: persistent sessions back, every byte, message and acknowledgement through.
 */
static void quiesce(void)
{
    for (uint32_t i = 0; i < sim.shards; i++) {
        for (uint32_t j = 0; j < sim.shards; j++)
            fifo[i][j].stall_until = 0;
    }
    for (uint32_t round = 0;; round++) {
        CHECK(round < SIM_QUIESCE_ROUNDS, "the final phase never comes to rest");
        uint64_t acts = sim.acts;
        for (uint32_t i = 0; i < sim.client_count; i++) {
            struct sim_client *c = &clients[i];
            if (!c->conn && c->persistent)
                client_connect(c);
        }
        for (uint32_t i = 0; i < sim.shards; i++) {
            for (uint32_t j = 0; j < sim.shards; j++)
                fifo_deliver(i, j, fifo[i][j].count);
        }
        for (uint32_t i = 0; i < sim.live_count; i++) {
            struct conn *k = &conns[sim.live[i]];
            if (conn_can_feed(k))
                conn_feed(k, k->tx_len);
        }
        /*
         * Connections nobody reads any more (left open by their client) hold
         * what they were sent: net/'s keep alive ends them, so their sessions
         * end or resume elsewhere.
         */
        for (uint32_t i = 0; i < sim.live_count; i++) {
            struct conn *k = &conns[sim.live[i]];
            if (k->reading || k->where != CONN_SHARD || k->cl.state == CLIENT_CLOSING ||
                (k->writing && k->tx_len > 0))
                continue;
            TRACE("c%u conn%u kicked (nobody reads it)", k->c->idx, k->no);
            broker_client_kick(sh[k->shard], &k->cl, -MQTT_RC_KEEPALIVE_TIMEOUT);
            settle();
            i = UINT32_MAX; /* settle() closed it, and maybe others: from the start */
        }
        for (uint32_t i = 0; i < sim.client_count; i++) {
            struct conn *k = clients[i].conn;
            if (!k || k->where != CONN_SHARD || k->cl.state == CLIENT_HANDOFF)
                continue;
            if (k->cl.out.len > 0)
                client_read(k);
            if (k->up)
                client_resend(k);
            while (k->pend_count > 0 && tx_fits(k, 8))
                act_ack(k);
            if (k->up && (k->pend_count > 0 || resend_pending(k)) && k->pings == 0)
                write_ping(k); /* to hear how far the broker got */
            settle();
        }
        clock_advance(1);
        if (sim.acts == acts)
            return;
    }
}

/* Session @in got message @idx if it should have (see the header). */
static void check_delivered(uint32_t inc, uint32_t idx)
{
    const struct sim_inc *in = &incs[inc];
    const struct sim_client *c = &clients[in->client];
    const struct sim_msg *m = &msgs[idx];
    if (!m->acked || m->qos == 0 || m->expiry_s == 1)
        return;
    if (m->big && c->max_packet && c->max_packet < SIM_BIG_PAYLOAD)
        return; /* over its Maximum Packet Size: counts as delivered [MQTT-3.1.2-25] */
    uint32_t live = SIM_NONE, retained = SIM_NONE; /* a filter that requires it, each way */
    for (uint32_t f = 0; f < F_PLAIN_N; f++) {
        const struct sim_fstate *fs = &in->f[f];
        if (fs->st != F_OPEN || !filter_matches(f, m->topic))
            continue;
        uint8_t q = c->qos[f] < m->qos ? c->qos[f] : m->qos;
        if (q > 0 && fs->t_open < m->t_lb)
            live = f;
        if (m->retain && q > 0)
            retained = f;
    }
    cover.must_live += live != SIM_NONE;
    cover.must_retained += retained != SIM_NONE;
    if (live != SIM_NONE)
        CHECK(dlv[inc][idx].got > 0,
              "c%u lost m%u (c%u#%u on %s, QoS %u, fed at %llu, acknowledged at %llu): "
              "its SUBACK for %s was read at %llu%s",
              c->idx, idx, m->client, m->seq, topic_names[m->topic], m->qos,
              (unsigned long long)m->t_lb, (unsigned long long)m->t_acked, filters[live].str,
              (unsigned long long)in->f[live].t_open,
              in->f[live].piggy ? ", without an announcement of its own" : "");
    if (retained == SIM_NONE)
        return;
    for (uint32_t j = 0; j < sim.msg_count; j++) {
        /*
         * A later one of its publisher; or an earlier one it sent again
         * (a QoS 1 resend is routed, and retained, again) after this one.
         */
        const struct sim_msg *n = &msgs[j];
        if (n->topic == m->topic && (n->seq >= m->seq || n->t_last > m->t_first) &&
            dlv[inc][j].got > 0)
            return;
    }
    sim_fail("c%u never got retained m%u (c%u#%u on %s, acknowledged at %llu%s) nor a later "
             "one: its SUBSCRIBE to %s was fed at %llu",
             c->idx, idx, m->client, m->seq, topic_names[m->topic], (unsigned long long)m->t_acked,
             m->acked_dup ? " for a resent copy" : "", filters[retained].str,
             (unsigned long long)in->f[retained].t_sub);
}

static void check_group(uint32_t g)
{
    if (sim.group_anchor[g] < 0)
        return;
    const struct sim_client *a = &clients[sim.group_anchor[g]];
    uint32_t f = F_PLAIN_N + g;
    if (a->inc == SIM_NONE || incs[a->inc].f[f].st != F_OPEN)
        return;
    const struct sim_fstate *fs = &incs[a->inc].f[f];
    uint64_t dropped = 0;
    for (uint32_t i = 0; i < sim.shards; i++)
        dropped += broker_stats(sh[i])->share_dropped;
    uint32_t missing = 0, first = SIM_NONE;
    for (uint32_t idx = 0; idx < sim.msg_count; idx++) {
        const struct sim_msg *m = &msgs[idx];
        if (!m->acked || m->qos == 0 || m->expiry_s == 1 || !filter_matches(f, m->topic) ||
            m->t_lb <= fs->t_open)
            continue;
        /*
         * A QoS 2 message once sent stays with its member, and goes with
         * a clean session that ends before its client read it [MQTT-4.8.2-5].
         */
        if (m->qos == 2 && sim.group_qos[g] == 2 && sim.group_clean[g])
            continue;
        cover.must_group++;
        if (share_got[g][idx] > 0)
            continue;
        if (first == SIM_NONE)
            first = idx;
        missing++;
    }
    CHECK(missing <= dropped,
          "group %u lost %u acknowledged messages (first m%u), %llu dropped; c%u's SUBACK read at "
          "%llu%s",
          g, missing, first, (unsigned long long)dropped, a->idx, (unsigned long long)fs->t_open,
          fs->piggy ? ", without an announcement of its own" : "");
}

static void check_end(void)
{
    for (uint32_t i = 0; i < sim.client_count; i++) {
        const struct sim_client *c = &clients[i];
        const struct conn *k = c->conn;
        if (c->persistent)
            CHECK(k && k->up, "persistent c%u is not connected at the end", i);
        if (!k)
            continue;
        CHECK(k->up, "c%u conn%u never got its CONNACK", i, k->no);
        CHECK(c->out_count == 0, "c%u: publish m%u never acknowledged (held?)", i, c->out[0].msg);
        CHECK(k->subrec_count == 0, "c%u: SUBSCRIBE/UNSUBSCRIBE %u never answered", i,
              k->subrecs[0].id);
        CHECK(k->pings == 0, "c%u: PINGREQ never answered", i);
    }
    for (uint32_t i = 0; i < sim.shards; i++) {
        const struct broker_stats *st = broker_stats(sh[i]);
        CHECK(st->queue_full == 0 && st->xmsg_lost == 0 && st->route_nomem == 0 &&
                  st->retained_refused == 0 && st->wait_timeouts == 0 && st->deadline_nomem == 0,
              "shard %u hit a bound it must not: queue_full %llu xmsg_lost %llu route_nomem "
              "%llu retained_refused %llu wait_timeouts %llu deadline_nomem %llu",
              i, (unsigned long long)st->queue_full, (unsigned long long)st->xmsg_lost,
              (unsigned long long)st->route_nomem, (unsigned long long)st->retained_refused,
              (unsigned long long)st->wait_timeouts, (unsigned long long)st->deadline_nomem);
    }
    for (uint32_t inc = 0; inc < sim.inc_count; inc++) {
        if (!incs[inc].alive || clients[incs[inc].client].group >= 0)
            continue;
        for (uint32_t idx = 0; idx < sim.msg_count; idx++)
            check_delivered(inc, idx);
    }
    for (uint32_t g = 0; g < SIM_GROUPS; g++)
        check_group(g);
}

static void run(uint64_t seed)
{
    rng = seed;
    hash_seed = seed;
    ev = 0;
    trace_next = 0;
    memset(&sim, 0, sizeof(sim));
    memset(share_got, 0, sizeof(share_got));
    memset(share_app2, 0, sizeof(share_app2));
    memset(fifo, 0, sizeof(fifo)); /* what a failed run left is dropped */
    world_init();
    for (uint32_t i = 0; i < sim.shards; i++) {
        sh[i] = broker_new(&lim, i, sim.shards);
        RM_ASSERT(sh[i] != NULL);
    }
    sim.start_ms = sim.now_ms = 1000;
    clock_advance(0);
    TRACE("seed %llu: %u shards, %u clients, %u steps, inflight_max %u, output_bytes_max %u",
          (unsigned long long)seed, sim.shards, sim.client_count, sim.steps, lim.inflight_max,
          lim.output_bytes_max);
    for (sim.step = 0; sim.step < sim.steps; sim.step++) {
        uint32_t r = below(100);
        if (r < sim.net_pct)
            net_deliver();
        else if (r < sim.net_pct + sim.flush_pct)
            net_flush();
        else if (r < sim.net_pct + sim.flush_pct + sim.stall_pct)
            net_stall();
        else if (r < sim.net_pct + sim.flush_pct + sim.stall_pct + sim.kick_pct)
            net_kick();
        else
            client_step(&clients[below(sim.client_count)]);
        if (chance(30))
            clock_advance(chance(3) ? 100 + below(300) : 1 + below(4));
    }
    quiesce();
    check_end();
    world_fini();
}

/* ---- the tests ---- */

static volatile sig_atomic_t crash_armed;
static uint64_t crash_seed;

/* Say which seed crashed (RM_ASSERT, a sanitizer): async-signal-safe. */
static void crash_note(void)
{
    char buf[80] = "shard_sim: crashed in seed ";
    size_t n = strlen(buf);
    char digits[24];
    size_t d = 0;
    uint64_t s = crash_seed;
    if (!crash_armed)
        return;
    crash_armed = 0; /* once: the sanitizer's callback, then its abort() */
    do {
        digits[d++] = (char)('0' + s % 10);
        s /= 10;
    } while (s > 0);
    while (d > 0)
        buf[n++] = digits[--d];
    buf[n++] = '\n';
    (void)!write(2, buf, n);
}

static void on_crash(int sig)
{
    crash_note();
    signal(sig, SIG_DFL);
    raise(sig);
}

void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

/* Run @seed; false (with fail_why) if a check failed. */
static bool run_checked(uint64_t seed)
{
    crash_seed = seed;
    if (setjmp(fail_jmp))
        return false;
    int64_t blocks = live_blocks;
    run(seed);
    CHECK(live_blocks == blocks, "%lld blocks leaked", (long long)(live_blocks - blocks));
    return true;
}

static void run_seeds(uint64_t first, uint64_t count)
{
    const char *t = getenv("SHARD_SIM_TRACE");
    bool all = getenv("SHARD_SIM_ALL") != NULL; /* every failing seed, one line each */
    uint64_t failed = 0;
    trace_level = t && t[0] == '1' ? 2 : 0;
    topics_init();
    signal(SIGABRT, on_crash);
    signal(SIGSEGV, on_crash);
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(crash_note);
    crash_armed = 1;
    for (uint64_t s = first; s < first + count; s++) {
        if (run_checked(s))
            continue;
        if (all) {
            fprintf(stderr, "shard_sim: seed %llu failed: %s\n", (unsigned long long)s, fail_why);
            failed++;
            continue;
        }
        char why[sizeof(fail_why)];
        memcpy(why, fail_why, sizeof(why));
        if (!trace_level) {
            /* Again, the same run, remembering its last events. */
            trace_level = 1;
            (void)run_checked(s);
            fprintf(stderr, "shard_sim: seed %llu, last events:\n", (unsigned long long)s);
            for (uint32_t i = 0; i < SIM_TRACE_LINES; i++) {
                const char *line = trace_ring[(trace_next + i) % SIM_TRACE_LINES];
                if (line[0])
                    fprintf(stderr, "  %s\n", line);
            }
        }
        crash_armed = 0;
        cr_assert_fail(
            "shard_sim: seed %llu failed: %s (again: SHARD_SIM_SEEDS=%llu SHARD_SIM_TRACE=1)",
            (unsigned long long)s, why, (unsigned long long)s);
        return;
    }
    crash_armed = 0;
    cr_assert_eq(failed, 0, "shard_sim: %llu of %llu seeds failed", (unsigned long long)failed,
                 (unsigned long long)count);
}

/* What the seeds covered; the default ones must cover every kind of event. */
static void cover_report(void)
{
    cr_log_info("shard_sim: %llu seeds, %llu messages, %llu PUBLISH read; required: %llu live, "
                "%llu retained, %llu to groups; %llu handoffs, %llu takeovers, %llu wills, "
                "%llu crossings, longest FIFO %llu; %llu too large, %llu expired, %llu shed",
                (unsigned long long)cover.seeds, (unsigned long long)cover.msgs,
                (unsigned long long)cover.deliveries, (unsigned long long)cover.must_live,
                (unsigned long long)cover.must_retained, (unsigned long long)cover.must_group,
                (unsigned long long)cover.handoffs, (unsigned long long)cover.takeovers,
                (unsigned long long)cover.wills, (unsigned long long)cover.xmsgs,
                (unsigned long long)cover.fifo_max, (unsigned long long)cover.too_large,
                (unsigned long long)cover.expired, (unsigned long long)cover.shed);
}

/* SHARD_SIM_SEEDS: "N" or "A-B"; false when unset. */
static bool seeds_from_env(uint64_t *first, uint64_t *count)
{
    const char *v = getenv("SHARD_SIM_SEEDS");
    char *end;
    if (!v || !v[0])
        return false;
    uint64_t a = strtoull(v, &end, 10), last = a;
    if (*end == '-')
        last = strtoull(end + 1, &end, 10);
    cr_assert(*end == '\0' && last >= a, "SHARD_SIM_SEEDS=%s: want N or A-B", v);
    *first = a;
    *count = last - a + 1;
    return true;
}

/* Part @part of SIM_PARTS of the default seeds, so that they run in parallel. */
static void run_part(uint32_t part)
{
    uint64_t first, count;
    if (seeds_from_env(&first, &count)) {
        if (part == 0) {
            run_seeds(first, count);
            cover_report();
        }
        return;
    }
    count = SIM_SEEDS_DEFAULT / SIM_PARTS;
    run_seeds(1 + part * count, count);
    cover_report();
    /* Each part covers what the header claims (a twentieth of what it covered when written). */
    cr_expect_geq(cover.must_live, 1500, "few live deliveries required");
    cr_expect_geq(cover.must_retained, 300, "few retained deliveries required");
    cr_expect_geq(cover.must_group, 800, "few shared-group deliveries required");
    cr_expect_geq(cover.handoffs, 1000, "few handoffs");
    cr_expect_geq(cover.takeovers, 800, "few takeovers");
    cr_expect_geq(cover.wills, 600, "few wills");
    cr_expect_geq(cover.fifo_max, 50, "no queue between shards grew long");
    cr_expect_geq(cover.too_large, 20, "nothing over a Maximum Packet Size");
    cr_expect_geq(cover.expired, 20, "no message expired");
    cr_expect_geq(cover.shed, 200, "no QoS 0 shed");
}

TestSuite(shard_sim, .timeout = 300);

Test(shard_sim, first_quarter_of_the_seeds_loses_no_acknowledged_message_and_keeps_every_bound)
{
    run_part(0);
}

Test(shard_sim, second_quarter_of_the_seeds_loses_no_acknowledged_message_and_keeps_every_bound)
{
    run_part(1);
}

Test(shard_sim, third_quarter_of_the_seeds_loses_no_acknowledged_message_and_keeps_every_bound)
{
    run_part(2);
}

Test(shard_sim, last_quarter_of_the_seeds_loses_no_acknowledged_message_and_keeps_every_bound)
{
    run_part(3);
}

/*
 * Bugs this simulation found or was told of, all fixed; it makes no
 * allowance for any (40,000 seeds passed when the last was fixed).
 *
 * piggyback (found here). A SUBSCRIBE to a filter that another session on
 * the same shard (or an earlier connection of the same session) subscribed
 * to a moment before was answered at once, while the first subscription's
 * INTEREST_ADD (a shared group's count) could still be on its way to the
 * other shards: a publish made there after the second SUBACK was missed.
 * core/subscribe.c now remembers first announcements still acknowledged by
 * nobody and announces again (seeds 8, 145, 51 and 113).
 *
 * qos2_dup (found here). A retained QoS 2 PUBLISH whose connection ended
 * while it was held for the replicas, resent with DUP on the next
 * connection, is a duplicate (its id is still in the session's qos2_in):
 * it was answered PUBREC at once, without the wait the first copy had,
 * while its RETAIN_SET/APPLY could still be on their way; a SUBSCRIBE after
 * that PUBREC, on a shard the RETAIN_APPLY had not reached, got neither
 * the message nor a later one [MQTT-3.3.1-6]. The resend now takes the
 * first copy's wait over (wait_adopt(); seeds 3015 and 5630).
 *
 * resume_overflow (found here): session_resume() re-sent the window at
 * once, each PUBLISH within limits_output_hard_max(); when the window's
 * messages did not fit there (20 of 1 MiB against the default 16 MiB),
 * pump() failed with -ENOBUFS and the connection was closed right after
 * its CONNACK, on every reconnection. pump() now stops at a full output
 * while something of the session's is on its way (its acknowledgement
 * pumps again; seeds 6206 and 14931).
 *
 * retained_race (known before). A SUBSCRIBE racing a retained PUBLISH made
 * on another shard could miss both the live message and the retained one:
 * the publishing shard routed it before the new filter's INTEREST_ADD
 * arrived, and the subscriber's shard, its interest acknowledged, answered
 * SUBACK before the RETAIN_APPLY from the topic's home reached its replica.
 * A retained message's plain subscribers are now reached where each
 * replica takes it (retained_route() in core/route.c, core/rpair.h; seeds
 * 59, 392, 474, 677).
 */
