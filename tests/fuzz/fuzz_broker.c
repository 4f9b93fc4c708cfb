/*
 * fuzz_broker.c - libFuzzer target for the whole core/: up to 3 shards'
 * brokers in one thread, up to 8 clients' byte streams, both protocol
 * versions (the bytes decide: any CONNECT the codec takes).
 *
 * Input: a script.
 *   byte 0   setup: shard count 1 + (b & 3) % 3; bit 2 turns the optional
 *            features off (max QoS 1, no retain, wildcards, shared
 *            subscriptions, subscription ids, topic aliases, empty ids).
 *   records  op arg [bytes]
 *            op bits 0-2  client 0..7
 *            op bits 3-4  kind: 0 bytes (arg bytes follow, fed in one
 *                         broker_client_feed(); a closed slot is first opened
 *                         on the shard of bits 6-7), 1 connection gone (arg
 *                         unused), 2 clock forward ((arg & 63) << 5 * (arg >> 6)
 *                         ms, then broker_tick() on every shard), 3 control
 *                         (arg % 3: 0 keepalive kick, 1 the peer stops/starts
 *                         reading, 2 finish a pending handoff)
 *            op bit 5     defer: neither deliver cross-shard messages nor
 *                         finish handoffs after this record
 *            op bits 6-7  shard a new connection lands on (mod count)
 * After each record, like one net/ loop iteration: pending handoffs finish
 * (broker_client_handoff_take(), fed to a fresh client on the home shard),
 * every shard's outbox is delivered in order (broker_next_xmsg() ->
 * broker_xmsg_receive()), and every dirty list is drained: output is
 * discarded unless the peer stopped reading, and CLOSING clients are gone.
 * At the end every client is gone, the outboxes run dry and every broker is
 * freed, so LeakSanitizer sees any leak.
 * Invariants (abort on failure): feed results agree with the client state;
 * a drained client is one of ours; a client's output stays within twice
 * output_bytes_max (a handoff's kept input within output_bytes_max); no
 * client is dirty after a drain; each shard's stats.clients counts its
 * clients holding a session; delivery reaches quiescence.
 * Build: cmake -DRINGMQ_FUZZ=ON -DCMAKE_C_COMPILER=clang
 * Run:   ./fuzz_broker -dict=tests/fuzz/broker.dict tests/fuzz/corpus/broker
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker.h"
#include "core/limits.h"
#include "core/mqtt_codec.h"
#include "core/xmsg.h"

#define FUZZ_SHARDS_MAX 3u
#define FUZZ_CLIENTS 8u
/* Cross-shard messages or drain rounds before we call it a livelock. */
#define FUZZ_QUIESCE_MAX (1u << 20)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_broker: invariant failed: %s (line %d)\n", #cond, __LINE__);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

enum {
    OP_BYTES = 0,
    OP_GONE = 1,
    OP_TICK = 2,
    OP_CTL = 3,
};

enum {
    CTL_KICK = 0,
    CTL_STALL = 1,
    CTL_HANDOFF = 2,
};

struct fclient {
    struct client cl;
    uint32_t shard;
    bool open;
    bool stalled; /* the peer does not read: output piles up */
};

struct world {
    struct limits lim;
    struct broker *sh[FUZZ_SHARDS_MAX];
    uint32_t n;
    struct fclient c[FUZZ_CLIENTS];
    uint64_t now_ms;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limits, so that every bound is within reach of a short input. */
static void limits_init(struct limits *lim, bool features)
{
    *lim = (struct limits){
        .packet_bytes_max = 512,
        .client_id_bytes_max = 23,
        .topic_bytes_max = 64,
        .topic_levels_max = 8,
        .subs_per_client_max = 4,
        .inflight_max = 2,
        .inflight_in_max = 2,
        .queued_max = 4,
        .output_bytes_max = 512,
        .retained_max = 4,
        .connect_timeout_ms = 1000,
        .connections_max = FUZZ_CLIENTS,
        .allow_zero_length_client_id = features,
        .max_qos = features ? 2 : 1,
        .retain_available = features,
        .wildcard_subscriptions = features,
        .subscription_identifiers = features,
        .shared_subscriptions = features,
        .topic_alias_max = features ? 2 : 0,
        .keepalive_max_s = features ? 0 : 30,
        .auth_test_method = true,
        .share_key_seed = 0x5eed5eed5eed5eedull,
    };
}

static struct fclient *find(struct world *w, const struct client *cl)
{
    for (uint32_t i = 0; i < FUZZ_CLIENTS; i++) {
        if (w->c[i].open && &w->c[i].cl == cl) {
            return &w->c[i];
        }
    }
    return NULL;
}

static void gone(struct world *w, struct fclient *fc)
{
    broker_client_gone(w->sh[fc->shard], &fc->cl, 0);
    fc->open = false;
    fc->stalled = false;
}

/* What a feed returned must agree with the state it left the client in. */
static void check_feed(const struct fclient *fc, int rc)
{
    uint8_t st = fc->cl.state;

    if (rc == 0) {
        CHECK(st == CLIENT_NEW || st == CLIENT_CONNECTED);
    } else if (rc == CLIENT_FEED_HANDOFF) {
        CHECK(st == CLIENT_HANDOFF);
    } else {
        CHECK(rc == CLIENT_FEED_CLOSE || (rc < 0 && rc > -256));
        CHECK(st == CLIENT_CLOSING);
    }
}

/* Feed @len bytes to @fc; open it on shard @land first if closed. */
static void feed(struct world *w, struct fclient *fc, uint32_t land, const uint8_t *p, size_t len)
{
    int rc;

    if (!fc->open) {
        fc->shard = land;
        fc->open = true;
        broker_client_init(w->sh[land], &fc->cl);
    }
    rc = broker_client_feed(w->sh[fc->shard], &fc->cl, p, len);
    check_feed(fc, rc);
}

/* What net/conn's handoff_finish() and the home shard's conn_adopt() do. */
static void handoff(struct world *w, struct fclient *fc)
{
    uint32_t home = fc->cl.handoff_shard;
    uint8_t *kept = NULL;
    uint32_t kept_len = 0;
    int rc;

    CHECK(home < w->n && home != fc->shard);
    /* Only allocation failure fails it: a whole CONNECT is kept. */
    CHECK(broker_client_handoff_take(w->sh[fc->shard], &fc->cl, &kept, &kept_len) == 0);
    CHECK(kept != NULL && kept_len >= 2);
    fc->shard = home;
    broker_client_init(w->sh[home], &fc->cl);
    rc = broker_client_feed(w->sh[home], &fc->cl, kept, kept_len);
    free(kept);
    CHECK(rc != CLIENT_FEED_HANDOFF); /* every shard agrees on the home */
    check_feed(fc, rc);
}

static void handoffs(struct world *w)
{
    for (uint32_t i = 0; i < FUZZ_CLIENTS; i++) {
        if (w->c[i].open && w->c[i].cl.state == CLIENT_HANDOFF) {
            handoff(w, &w->c[i]);
        }
    }
}

/* Deliver every pending cross-shard message, per pair in FIFO order. */
static bool pump(struct world *w)
{
    uint32_t moved = 0;
    bool more = true;

    while (more) {
        more = false;
        for (uint32_t from = 0; from < w->n; from++) {
            uint32_t dest;
            struct xmsg x;

            while (broker_next_xmsg(w->sh[from], &dest, &x)) {
                CHECK(dest < w->n && dest != from);
                CHECK(++moved < FUZZ_QUIESCE_MAX);
                broker_xmsg_receive(w->sh[dest], from, &x);
                more = true;
            }
        }
    }
    return moved > 0;
}

static void check_client(const struct world *w, const struct fclient *fc)
{
    size_t max =
        fc->cl.state == CLIENT_HANDOFF ? w->lim.output_bytes_max : limits_output_hard_max(&w->lim);

    CHECK(fc->cl.state <= CLIENT_HANDOFF);
    CHECK(fc->cl.out.len <= max);
    CHECK(fc->cl.out.len <= fc->cl.out.cap);
}

/* Drain every dirty list as net/ does once per loop iteration. */
static bool drain(struct world *w)
{
    bool any = false;

    for (uint32_t s = 0; s < w->n; s++) {
        struct client *cl;
        uint32_t rounds = 0;

        while ((cl = broker_next_dirty(w->sh[s])) != NULL) {
            struct fclient *fc = find(w, cl);

            CHECK(++rounds < FUZZ_QUIESCE_MAX);
            CHECK(fc != NULL && fc->shard == s);
            check_client(w, fc);
            any = true;
            if (fc->cl.state == CLIENT_CLOSING) {
                gone(w, fc); /* flushed, then closed; may publish a will */
            } else if (!fc->stalled && fc->cl.state != CLIENT_HANDOFF) {
                obuf_free(&fc->cl.out); /* sent */
            }
        }
    }
    return any;
}

/* End of a loop iteration; @deliver: finish handoffs and run the outboxes. */
static void settle(struct world *w, bool deliver)
{
    uint32_t rounds = 0;
    bool more = true;

    while (more) {
        CHECK(++rounds < FUZZ_QUIESCE_MAX);
        if (deliver) {
            handoffs(w);
        }
        more = deliver && pump(w);
        more = drain(w) || more;
    }
    for (uint32_t s = 0; s < w->n; s++) {
        uint32_t sessions_held = 0;

        CHECK(broker_next_dirty(w->sh[s]) == NULL);
        for (uint32_t i = 0; i < FUZZ_CLIENTS; i++) {
            const struct fclient *fc = &w->c[i];

            if (!fc->open || fc->shard != s) {
                continue;
            }
            check_client(w, fc);
            CHECK(!fc->cl._dirty); /* a private field, read for the invariant only */
            sessions_held += fc->cl._sess != NULL;
        }
        CHECK(broker_stats(w->sh[s])->clients == sessions_held);
    }
}

static void control(struct world *w, struct fclient *fc, uint8_t arg)
{
    if (!fc->open) {
        return;
    }
    switch (arg % 3) {
    case CTL_KICK:
        if (fc->cl.state == CLIENT_CONNECTED) {
            broker_client_kick(w->sh[fc->shard], &fc->cl, -MQTT_RC_KEEPALIVE_TIMEOUT);
            CHECK(fc->cl.state == CLIENT_CLOSING);
        }
        break;
    case CTL_STALL:
        fc->stalled = !fc->stalled;
        break;
    default:
        if (fc->cl.state == CLIENT_HANDOFF) {
            handoff(w, fc);
        }
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct world w;
    size_t i = 1;

    if (size < 1) {
        return 0;
    }
    memset(&w, 0, sizeof(w));
    limits_init(&w.lim, (data[0] & 4) == 0);
    w.n = 1 + (uint32_t)(data[0] & 3) % FUZZ_SHARDS_MAX;
    for (uint32_t s = 0; s < w.n; s++) {
        w.sh[s] = broker_new(&w.lim, s, w.n);
        CHECK(w.sh[s] != NULL);
    }

    while (i < size) {
        uint8_t op = data[i++];
        struct fclient *fc = &w.c[op & 7];
        uint32_t land = (uint32_t)(op >> 6) % w.n;
        bool deliver = (op & 0x20) == 0;
        uint8_t arg = 0;

        if (i < size) {
            arg = data[i++]; /* the length of OP_BYTES */
        }

        switch ((op >> 3) & 3) {
        case OP_BYTES: {
            size_t len = arg;

            if (len > size - i) {
                len = size - i;
            }
            feed(&w, fc, land, data + i, len);
            i += len;
            break;
        }
        case OP_GONE:
            if (fc->open) {
                gone(&w, fc);
            }
            break;
        case OP_TICK:
            w.now_ms += (uint64_t)(arg & 63) << (5 * (arg >> 6));
            for (uint32_t s = 0; s < w.n; s++) {
                broker_tick(w.sh[s], w.now_ms);
            }
            break;
        default:
            control(&w, fc, arg);
            break;
        }
        settle(&w, deliver);
    }

    for (uint32_t k = 0; k < FUZZ_CLIENTS; k++) {
        if (w.c[k].open) {
            gone(&w, &w.c[k]);
        }
    }
    settle(&w, true);
    for (uint32_t s = 0; s < w.n; s++) {
        CHECK(broker_stats(w.sh[s])->clients == 0);
        broker_free(w.sh[s]);
    }
    return 0;
}
