/*
 * prom.c - the Prometheus text exposition of the counter board (see prom.h).
 *
 * One family after another: its HELP and TYPE lines, then one sample per
 * shard (and per label value). Reads every shard's snapshot once, so a
 * family's samples come from the same snapshots as the next family's.
 *
 * Any thread (shard 0's, for /metrics).
 */
#include "net/prom.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rm_assert.h"

static void family(struct text *t, const char *name, const char *type, const char *help)
{
    text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* What renders one family: the snapshots and how many. */
struct view {
    const struct board_snap *snap;
    uint32_t n;
    struct text *t;
};

/* One sample per shard of a field read by @get. */
static void per_shard(const struct view *v, const char *name, const char *type,
                      const char *help, uint64_t (*get)(const struct board_snap *))
{
    family(v->t, name, type, help);
    for (uint32_t i = 0; i < v->n; i++) {
        text_printf(v->t, "%s{shard=\"%u\"} %llu\n", name, i, (unsigned long long)get(&v->snap[i]));
    }
}

/* One sample per shard and label value: @count values of @label, @vals[shard * @count + k]. */
static void per_label(const struct view *v, const char *name, const char *type,
                      const char *help, const char *label, const char *const *values,
                      uint32_t count, const uint64_t *vals)
{
    family(v->t, name, type, help);
    for (uint32_t i = 0; i < v->n; i++) {
        for (uint32_t k = 0; k < count; k++) {
            text_printf(v->t, "%s{shard=\"%u\",%s=\"%s\"} %llu\n", name, i, label, values[k],
                   (unsigned long long)vals[(size_t)i * count + k]);
        }
    }
}

static void seconds(const struct view *v, const char *name, const char *help,
                    uint64_t (*get)(const struct board_snap *))
{
    family(v->t, name, "counter", help);
    for (uint32_t i = 0; i < v->n; i++) {
        text_printf(v->t, "%s{shard=\"%u\"} %.9f\n", name, i, (double)get(&v->snap[i]) / 1e9);
    }
}

#define GETTER(fn, expr)                                                                           \
    static uint64_t fn(const struct board_snap *s)                                                 \
    {                                                                                              \
        return (uint64_t)(expr);                                                                   \
    }

GETTER(g_conns_open, s->conns_open)
GETTER(g_clients, s->broker.clients)
GETTER(g_sessions, s->broker.sessions)
GETTER(g_pkts_in, s->broker.pkts_in)
GETTER(g_pkts_out, s->broker.pkts_out)
GETTER(g_bytes_in, s->shard.bytes_in)
GETTER(g_bytes_out, s->shard.bytes_out)
GETTER(g_queued, s->broker.queued)
GETTER(g_inflight, s->broker.inflight)
GETTER(g_xwaiting, s->xshard_waiting)
GETTER(g_xsent, s->xshard.sent)
GETTER(g_xreceived, s->xshard.received)
GETTER(g_xoverflow, s->xshard.overflow_events)
GETTER(g_xcongestions, s->xshard.congestions)
GETTER(g_subs, s->subscriptions)
GETTER(g_retained, s->retained)
GETTER(g_busy, s->shard.busy_ns)
GETTER(g_wait, s->shard.wait_ns)
GETTER(g_iterations, s->shard.iterations)
GETTER(g_logins_ok, s->broker.logins_ok)
GETTER(g_handoffs, s->shard.handoffs_out)
GETTER(g_wills, s->broker.wills_sent)
GETTER(g_takeovers, s->broker.takeovers)

static const char *const qos_values[3] = {"0", "1", "2"};
static const char *const proto_values[3] = {"3.1", "3.1.1", "5.0"};

static const char *const drop_reasons[] = {
    "slow_subscriber", "memory",   "broker_topic", "queue_full",      "expired",
    "too_large",       "acl_publish", "acl_read",  "share_no_member", "no_memory",
    "shard_link_congested", "shard_link_lost",
};
#define DROP_REASONS (sizeof(drop_reasons) / sizeof(drop_reasons[0]))

static void drops(const struct board_snap *s, uint64_t *out)
{
    const uint64_t v[DROP_REASONS] = {
        s->broker.msgs_dropped,  s->broker.msgs_shed_memory, s->broker.msgs_refused,
        s->broker.queue_full,    s->broker.msgs_expired,     s->broker.msgs_too_large,
        s->broker.acl_publish_denied, s->broker.acl_read_denied, s->broker.share_dropped,
        s->broker.route_nomem,   s->xshard.qos0_shed,        s->broker.xmsg_lost,
    };

    memcpy(out, v, sizeof(v));
}

static const char *const close_reasons[] = {
    "slow_reader", "protocol_error", "connect_timeout", "keepalive_timeout", "linger_timeout",
};
#define CLOSE_REASONS (sizeof(close_reasons) / sizeof(close_reasons[0]))

static void closes(const struct board_snap *s, uint64_t *out)
{
    const uint64_t v[CLOSE_REASONS] = {
        s->broker.slow_readers_closed, s->broker.malformed,       s->shard.connect_timeouts,
        s->shard.keepalive_timeouts,   s->shard.linger_timeouts,
    };

    memcpy(out, v, sizeof(v));
}

static const char *const refuse_reasons[] = {"memory", "address", "rate", "other"};

static void refusals(const struct board_snap *s, uint64_t *out)
{
    uint64_t known = s->shard.refused_memory + s->shard.refused_address + s->shard.refused_rate;

    out[0] = s->shard.refused_memory;
    out[1] = s->shard.refused_address;
    out[2] = s->shard.refused_rate;
    out[3] = s->shard.conns_refused > known ? s->shard.conns_refused - known : 0;
}

static const char *const auth_reasons[] = {"bad_credentials", "not_allowed",
                                           "client_id_of_another_user"};

static void auth_failures(const struct board_snap *s, uint64_t *out)
{
    out[0] = s->broker.logins_failed;
    out[1] = s->broker.logins_refused;
    out[2] = s->broker.takeovers_refused;
}

static const char *const tls_results[] = {"full", "resumed", "failed"};

static void tls(const struct board_snap *s, uint64_t *out)
{
    out[0] = s->xport.tls_handshakes;
    out[1] = s->xport.tls_resumed;
    out[2] = s->xport.tls_failed;
}

static const char *const ws_results[] = {"accepted", "refused", "protocol_error"};

static void ws(const struct board_snap *s, uint64_t *out)
{
    out[0] = s->xport.ws_upgrades;
    out[1] = s->xport.ws_refused;
    out[2] = s->xport.ws_protocol_errors;
}

/* A family with @count label values filled per shard by @fill. */
static int labelled(const struct view *v, const char *name, const char *help, const char *label,
                    const char *const *values, uint32_t count,
                    void (*fill)(const struct board_snap *, uint64_t *))
{
    uint64_t *vals = calloc((size_t)v->n * count, sizeof(*vals));

    if (vals == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < v->n; i++) {
        fill(&v->snap[i], vals + (size_t)i * count);
    }
    per_label(v, name, "counter", help, label, values, count, vals);
    free(vals);
    return 0;
}

/* A family of one of the broker's per-QoS arrays (@off: its offset in struct broker_stats). */
static int by_qos(const struct view *v, const char *name, const char *help, size_t off)
{
    uint64_t *vals = calloc((size_t)v->n * 3, sizeof(*vals));

    if (vals == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < v->n; i++) {
        memcpy(vals + (size_t)i * 3, (const char *)&v->snap[i].broker + off, 3 * sizeof(*vals));
    }
    per_label(v, name, "counter", help, "qos", qos_values, 3, vals);
    free(vals);
    return 0;
}

static void listeners(const struct view *v, const struct config *cfg)
{
    const char *name = "ringmq_connections_accepted_total";

    family(v->t, name, "counter", "Connections accepted, by the listener they came in on.");
    for (uint32_t i = 0; i < v->n; i++) {
        for (uint32_t l = 0; l < cfg->listener_count; l++) {
            /* Listener names are [listener.NAME] section names: no quote or backslash. */
            text_printf(v->t, "%s{shard=\"%u\",listener=\"%s\"} %llu\n", name, i,
                   cfg->listeners[l].name,
                   (unsigned long long)v->snap[i].shard.accepted_by_listener[l]);
        }
    }
}

static void fsync_histogram(const struct view *v)
{
    const char *name = "ringmq_wal_fsync_seconds";

    family(v->t, name, "histogram", "Latency of the write-ahead log's fsyncs.");
    for (uint32_t i = 0; i < v->n; i++) {
        const struct hist *h = &v->snap[i].wal_fsync;
        uint64_t cum = 0;

        for (uint32_t k = 0; k < HIST_BUCKETS; k++) {
            cum += h->bucket[k];
            if (k + 1 < HIST_BUCKETS) {
                text_printf(v->t, "%s_bucket{shard=\"%u\",le=\"%g\"} %llu\n", name, i,
                       (double)hist_bound_ns(k) / 1e9, (unsigned long long)cum);
            } else {
                text_printf(v->t, "%s_bucket{shard=\"%u\",le=\"+Inf\"} %llu\n", name, i,
                       (unsigned long long)cum);
            }
        }
        text_printf(v->t, "%s_sum{shard=\"%u\"} %.9f\n", name, i, (double)h->sum_ns / 1e9);
        text_printf(v->t, "%s_count{shard=\"%u\"} %llu\n", name, i, (unsigned long long)h->count);
    }
}

int prom_render(const struct board *b, const struct config *cfg, const char *version,
                struct text *t)
{
    uint32_t n = board_shard_count(b);
    struct board_snap *snap = calloc(n, sizeof(*snap));
    struct view v = {snap, n, t};
    uint64_t *protos;
    int ret = 0;

    RM_ASSERT(cfg != NULL && version != NULL && t != NULL);
    RM_ASSERT(t->err == 0);
    if (snap == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        board_read(b, i, &snap[i]);
    }
    family(t, "ringmq_build_info", "gauge", "Always 1; the version label says which ringmq.");
    text_printf(t, "ringmq_build_info{version=\"%s\"} 1\n", version);

    listeners(&v, cfg);
    ret = labelled(&v, "ringmq_connections_refused_total",
                   "Connections refused at accept, by the limit that refused them.", "reason",
                   refuse_reasons, 4, refusals);
    per_shard(&v, "ringmq_connections_open", "gauge", "Open client connections.", g_conns_open);
    protos = calloc((size_t)n * 3, sizeof(*protos));
    if (protos == NULL) {
        ret = -ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        memcpy(protos + (size_t)i * 3, snap[i].broker.connects_proto, sizeof(uint64_t) * 3);
    }
    per_label(&v, "ringmq_mqtt_connects_total", "counter",
              "CONNECTs accepted, by MQTT protocol version.", "protocol", proto_values, 3, protos);
    free(protos);
    per_shard(&v, "ringmq_clients_connected", "gauge", "Connected MQTT clients.", g_clients);
    per_shard(&v, "ringmq_sessions", "gauge", "Sessions held, online or not.", g_sessions);
    per_shard(&v, "ringmq_session_takeovers_total", "counter",
              "Sessions taken over by a new connection with the same client id.", g_takeovers);
    per_shard(&v, "ringmq_connection_handoffs_total", "counter",
              "Connections handed to their session's home shard.", g_handoffs);
    per_shard(&v, "ringmq_logins_total", "counter", "User names authenticated.", g_logins_ok);
    ret |= labelled(&v, "ringmq_auth_failures_total", "Logins refused, by reason.", "reason",
                    auth_reasons, 3, auth_failures);
    ret |= labelled(&v, "ringmq_tls_handshakes_total", "TLS handshakes, by result.", "result",
                    tls_results, 3, tls);
    ret |= labelled(&v, "ringmq_websocket_upgrades_total", "WebSocket upgrades, by result.",
                    "result", ws_results, 3, ws);

    per_shard(&v, "ringmq_packets_received_total", "counter", "MQTT packets received.",
              g_pkts_in);
    per_shard(&v, "ringmq_packets_sent_total", "counter", "MQTT packets sent.", g_pkts_out);
    per_shard(&v, "ringmq_received_bytes_total", "counter",
              "Bytes read from client sockets (TLS and WebSocket framing included).", g_bytes_in);
    per_shard(&v, "ringmq_sent_bytes_total", "counter", "Bytes written to client sockets.",
              g_bytes_out);
    ret |= by_qos(&v, "ringmq_messages_received_total",
                  "PUBLISH messages received from clients (and wills published), by QoS.",
                  offsetof(struct broker_stats, msgs_in_qos));
    ret |= by_qos(&v, "ringmq_messages_sent_total", "PUBLISH messages sent to subscribers, by QoS.",
                  offsetof(struct broker_stats, msgs_out_qos));
    ret |= by_qos(&v, "ringmq_message_payload_received_bytes_total",
                  "Payload bytes of the messages received, by QoS.",
                  offsetof(struct broker_stats, bytes_in_qos));
    ret |= by_qos(&v, "ringmq_message_payload_sent_bytes_total",
                  "Payload bytes of the messages sent, by QoS.",
                  offsetof(struct broker_stats, bytes_out_qos));
    per_shard(&v, "ringmq_wills_published_total", "counter", "Wills published.", g_wills);
    ret |= labelled(&v, "ringmq_messages_dropped_total",
                    "Messages not delivered or not routed, by reason.", "reason", drop_reasons,
                    DROP_REASONS, drops);
    ret |= labelled(&v, "ringmq_clients_closed_total",
                    "Connections the broker closed, by reason.", "reason", close_reasons,
                    CLOSE_REASONS, closes);
    per_shard(&v, "ringmq_session_queued_messages", "gauge",
              "QoS 1/2 messages waiting in session queues.", g_queued);
    per_shard(&v, "ringmq_session_inflight_messages", "gauge",
              "Messages sent and not yet acknowledged (inflight windows).", g_inflight);
    per_shard(&v, "ringmq_subscriptions", "gauge",
              "Subscriptions of the sessions homed on the shard (shared groups apart).", g_subs);
    per_shard(&v, "ringmq_retained_messages", "gauge",
              "Retained messages in the shard's replica (every replica holds the same).",
              g_retained);

    per_shard(&v, "ringmq_shard_link_waiting_messages", "gauge",
              "Messages sent to other shards and not yet taken (rings and overflows).",
              g_xwaiting);
    per_shard(&v, "ringmq_shard_link_sent_total", "counter", "Messages sent to other shards.",
              g_xsent);
    per_shard(&v, "ringmq_shard_link_received_total", "counter",
              "Messages received from other shards.", g_xreceived);
    per_shard(&v, "ringmq_shard_link_overflowed_total", "counter",
              "Messages that waited in an overflow: their ring was full.", g_xoverflow);
    per_shard(&v, "ringmq_shard_link_congestions_total", "counter",
              "Times a link to another shard went over its budget.", g_xcongestions);

    seconds(&v, "ringmq_loop_busy_seconds_total",
            "Time the shard's loop spent working (outside the ring wait).", g_busy);
    seconds(&v, "ringmq_loop_wait_seconds_total",
            "Time the shard's loop spent in the ring wait.", g_wait);
    per_shard(&v, "ringmq_loop_iterations_total", "counter", "Loop iterations.", g_iterations);
    fsync_histogram(&v);
out:
    free(snap);
    if (ret == 0 && t->err != 0) {
        ret = t->err;
    }
    return ret < 0 ? -ENOMEM : 0;
}
