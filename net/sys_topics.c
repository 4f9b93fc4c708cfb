/*
 * sys_topics.c - the $SYS/broker/... topics (see sys_topics.h).
 *
 * The load averages follow mosquitto's sys_tree.c: at each publication,
 * rate = (total - last total) * 60 / seconds since the last one (per
 * minute), and average = rate + e^(-seconds / window) * (average - rate)
 * for windows of 60, 300 and 900 seconds.
 *
 * Shard 0's thread only.
 */
#include "net/sys_topics.h"

#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/broker.h"
#include "core/rm_assert.h"

static const char *const load_names[SYS_TOPICS_LOADS] = {
    "messages/received", "messages/sent", "publish/received",
    "publish/sent",      "publish/dropped", "bytes/received",
    "bytes/sent",        "connections",     "sockets",
};

static const struct {
    const char *suffix;
    double window_s;
} windows[3] = {{"1min", 60.0}, {"5min", 300.0}, {"15min", 900.0}};

void sys_topics_init(struct sys_topics *st, uint64_t now_ms, const char *version)
{
    RM_ASSERT(st != NULL && version != NULL);
    memset(st, 0, sizeof(*st));
    st->start_ms = now_ms;
    st->version = version;
}

static uint64_t dropped(const struct board_snap *t)
{
    return t->broker.msgs_dropped + t->broker.queue_full + t->broker.msgs_shed_memory +
           t->xshard.qos0_shed;
}

/* The totals behind each load/... topic, in load_names order. */
static void load_totals(const struct board_snap *t, uint64_t v[SYS_TOPICS_LOADS])
{
    v[0] = t->broker.pkts_in;
    v[1] = t->broker.pkts_out;
    v[2] = t->broker.msgs_in;
    v[3] = t->broker.msgs_out;
    v[4] = dropped(t);
    v[5] = t->shard.bytes_in;
    v[6] = t->shard.bytes_out;
    v[7] = t->broker.connects;
    v[8] = t->shard.conns_accepted;
}

/* Publish "$SYS/broker/" @name = @text; counts a failure in *@failed. */
static void put(struct broker *b, const char *name, const char *text, uint32_t *failed)
{
    char topic[SYS_TOPICS_TOPIC_MAX];
    int n = snprintf(topic, sizeof(topic), "$SYS/broker/%s", name);

    RM_ASSERT(n > 0 && (size_t)n < sizeof(topic));
    if (broker_sys_publish(b, topic, (size_t)n, (const uint8_t *)text, strlen(text)) < 0) {
        (*failed)++;
    }
}

static void put_u64(struct broker *b, const char *name, uint64_t v, uint32_t *failed)
{
    char text[24];

    snprintf(text, sizeof(text), "%llu", (unsigned long long)v);
    put(b, name, text, failed);
}

uint32_t sys_topics_publish(struct sys_topics *st, struct broker *b,
                            const struct board_snap *t, uint64_t now_ms)
{
    uint64_t totals[SYS_TOPICS_LOADS];
    struct mallinfo2 mi = mallinfo2();
    uint64_t clients = t->broker.clients;
    uint64_t sessions = t->broker.sessions;
    uint64_t offline = sessions > clients ? sessions - clients : 0;
    uint64_t heap = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
    uint32_t failed = 0;
    char text[64];
    char name[SYS_TOPICS_TOPIC_MAX];

    RM_ASSERT(st != NULL && b != NULL && t != NULL);
    RM_ASSERT(now_ms >= st->start_ms);
    st->clients_max = clients > st->clients_max ? clients : st->clients_max;
    st->heap_max = heap > st->heap_max ? heap : st->heap_max;

    snprintf(text, sizeof(text), "ringmq version %s", st->version);
    put(b, "version", text, &failed);
    snprintf(text, sizeof(text), "%llu seconds",
             (unsigned long long)((now_ms - st->start_ms) / 1000u));
    put(b, "uptime", text, &failed);
    put_u64(b, "clients/connected", clients, &failed);
    put_u64(b, "clients/disconnected", offline, &failed);
    put_u64(b, "clients/maximum", st->clients_max, &failed);
    put_u64(b, "clients/total", clients + offline, &failed);
    put_u64(b, "clients/expired", t->broker.sessions_expired, &failed);
    put_u64(b, "messages/received", t->broker.pkts_in, &failed);
    put_u64(b, "messages/sent", t->broker.pkts_out, &failed);
    put_u64(b, "messages/inflight", t->broker.inflight, &failed);
    put_u64(b, "messages/stored", t->broker.queued + t->retained, &failed);
    put_u64(b, "publish/messages/received", t->broker.msgs_in, &failed);
    put_u64(b, "publish/messages/sent", t->broker.msgs_out, &failed);
    put_u64(b, "publish/messages/dropped", dropped(t), &failed);
    put_u64(b, "bytes/received", t->shard.bytes_in, &failed);
    put_u64(b, "bytes/sent", t->shard.bytes_out, &failed);
    put_u64(b, "subscriptions/count", t->subscriptions, &failed);
    put_u64(b, "retained messages/count", t->retained, &failed);
    put_u64(b, "heap/current size", heap, &failed);
    put_u64(b, "heap/maximum size", st->heap_max, &failed);

    load_totals(t, totals);
    for (uint32_t i = 0; i < SYS_TOPICS_LOADS; i++) {
        double secs = st->last_ms != 0 ? (double)(now_ms - st->last_ms) / 1000.0 : 0.0;
        double rate = 0.0;

        if (secs > 0.0) {
            rate = (double)(totals[i] - st->last[i]) * 60.0 / secs;
        }
        for (uint32_t w = 0; w < 3; w++) {
            double *avg = &st->load[i][w];

            if (secs > 0.0) {
                *avg = rate + exp(-secs / windows[w].window_s) * (*avg - rate);
            }
            snprintf(name, sizeof(name), "load/%s/%s", load_names[i], windows[w].suffix);
            snprintf(text, sizeof(text), "%.2f", *avg);
            put(b, name, text, &failed);
        }
        st->last[i] = totals[i];
    }
    st->last_ms = now_ms;
    return failed;
}
