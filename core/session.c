/*
 * session.c - one MQTT session's state machine (see session.h).
 *
 * The inflight window is a small array kept in send order: acknowledgements
 * normally arrive in that order, so the linear search ends at the first
 * entry. The queue is a ring buffer that grows on demand up to queued_max.
 * Owned by the home shard's broker; single-threaded.
 */
#include "core/session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker_types.h"
#include "core/limits.h"
#include "core/mqtt_codec.h"
#include "core/msg.h"
#include "core/rm_assert.h"
#include "core/trie.h"

struct session *session_new(const uint8_t *client_id, size_t len, uint64_t hash, bool clean)
{
    RM_ASSERT(len <= LIMITS_STRING_BYTES_MAX);
    RM_ASSERT(client_id != NULL || len == 0);
    struct session *s = calloc(1, sizeof(*s));
    if (!s)
        goto out;
    s->client_id = malloc(len ? len : 1);
    if (!s->client_id)
        goto out_free_sess;
    memcpy(s->client_id, client_id, len);
    s->client_id_len = (uint16_t)len;
    s->_hash = hash;
    s->clean = clean;
    s->next_pkt_id = 1;
    return s;

out_free_sess:
    free(s);
    s = NULL;
out:
    return s;
}

static struct session_queued *queue_at(struct session *s, uint32_t i)
{
    return &s->queue[(s->queue_head + i) % s->queue_cap];
}

void session_free(struct broker *b, struct session *s)
{
    RM_ASSERT(s != NULL);
    RM_ASSERT(s->client == NULL);
    for (uint32_t i = 0; i < s->sub_count; i++) {
        bool last = false;
        bool removed = trie_remove(b->trie, s->subs[i].filter, s->subs[i].filter_len, s, &last);
        RM_ASSERT(removed);
        if (last)
            broker__interest(b, s->subs[i].filter, s->subs[i].filter_len, false);
        free(s->subs[i].filter);
    }
    for (uint32_t i = 0; i < s->inflight_count; i++) {
        broker__msg_put(b, s->inflight[i].msg);
    }
    for (uint32_t i = 0; i < s->queue_count; i++)
        broker__msg_put(b, queue_at(s, i)->msg);
    free(s->subs);
    free(s->inflight);
    free(s->queue);
    free(s->qos2_in);
    free(s->client_id);
    free(s);
}

/* Grow an array of @elem-byte items to hold one more than @count. */
static int grow(void **arr, uint32_t *cap, uint32_t count, size_t elem)
{
    RM_ASSERT(count <= *cap);
    RM_ASSERT(elem > 0);
    if (count < *cap)
        return 0;
    uint32_t ncap = *cap ? *cap * 2 : 4;
    void *n = realloc(*arr, (size_t)ncap * elem);
    if (!n)
        return -ENOMEM;
    *arr = n;
    *cap = ncap;
    return 0;
}

static struct session_sub *sub_find(struct session *s, const uint8_t *filter, size_t len)
{
    for (uint32_t i = 0; i < s->sub_count; i++) {
        struct session_sub *sub = &s->subs[i];
        if (sub->filter_len == len && memcmp(sub->filter, filter, len) == 0)
            return sub;
    }
    return NULL;
}

int session_subscribe(struct broker *b, struct session *s, const uint8_t *filter, size_t len,
                      uint8_t options)
{
    RM_ASSERT(len > 0 && len <= LIMITS_STRING_BYTES_MAX);
    RM_ASSERT(options <= 2);
    int rc;
    struct session_sub *sub = sub_find(s, filter, len);
    if (sub) {
        /* Same filter again: replace the subscription [MQTT-3.8.4-3]. */
        rc = trie_insert(b->trie, filter, len, s, options, NULL);
        RM_ASSERT(rc == 0);
        sub->options = options;
        return 0;
    }
    if (s->sub_count >= b->lim->subs_per_client_max)
        return -ENOSPC;
    rc = grow((void **)&s->subs, &s->sub_cap, s->sub_count, sizeof(*s->subs));
    if (rc < 0)
        goto out;
    uint8_t *copy = malloc(len);
    if (!copy) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(copy, filter, len);
    bool first = false;
    rc = trie_insert(b->trie, filter, len, s, options, &first);
    if (rc < 0)
        goto out_free_copy;
    RM_ASSERT(rc == 1);
    if (first)
        broker__interest(b, filter, len, true);
    s->subs[s->sub_count++] = (struct session_sub){copy, (uint16_t)len, options};
    return 1;

out_free_copy:
    free(copy);
out:
    return rc;
}

bool session_unsubscribe(struct broker *b, struct session *s, const uint8_t *filter, size_t len)
{
    RM_ASSERT(s != NULL);
    struct session_sub *sub = sub_find(s, filter, len);
    if (!sub)
        return false;
    bool last = false;
    bool removed = trie_remove(b->trie, filter, len, s, &last);
    RM_ASSERT(removed);
    if (last)
        broker__interest(b, filter, len, false);
    free(sub->filter);
    *sub = s->subs[--s->sub_count];
    return true;
}

static bool pkt_id_in_use(const struct session *s, uint16_t id)
{
    for (uint32_t i = 0; i < s->inflight_count; i++) {
        if (s->inflight[i].pkt_id == id)
            return true;
    }
    return false;
}

/* The next packet id not used by the inflight window [MQTT-2.3.1-2]. */
static uint16_t next_pkt_id(struct session *s)
{
    RM_ASSERT(s->inflight_count < 65535);
    for (uint32_t tries = 0; tries < 65536; tries++) {
        uint16_t id = s->next_pkt_id;
        s->next_pkt_id = (uint16_t)(id == 65535 ? 1 : id + 1);
        if (id != 0 && !pkt_id_in_use(s, id))
            return id;
    }
    RM_ASSERT(!"no free packet id");
    return 0;
}

static int send_publish(struct broker *b, struct client *cl, const struct msg *m, uint8_t qos,
                        bool retain, bool dup, uint16_t pkt_id, size_t bytes_max)
{
    struct mqtt_pkt pkt = {.type = MQTT_PUBLISH};
    pkt.u.publish = (struct mqtt_publish){
        .qos = qos,
        .dup = dup,
        .retain = retain,
        .topic = {msg_topic(m), m->topic_len},
        .pkt_id = pkt_id,
        .payload = {msg_payload(m), m->payload_len},
    };
    int rc = broker__send(b, cl, &pkt, bytes_max);
    if (rc == 0)
        b->stats.msgs_out++;
    return rc;
}

/* Put @m in the inflight window and send it. Returns 0 or -ENOMEM. */
static int inflight_send(struct broker *b, struct session *s, struct msg *m, uint8_t qos,
                         bool retain)
{
    RM_ASSERT(qos == 1 || qos == 2);
    RM_ASSERT(s->client != NULL);
    int rc = grow((void **)&s->inflight, &s->inflight_cap, s->inflight_count,
                  sizeof(*s->inflight));
    if (rc < 0)
        return rc;
    uint16_t id = next_pkt_id(s);
    rc = send_publish(b, s->client, m, qos, retain, false, id, broker__output_hard_max(b));
    if (rc < 0)
        return rc;
    s->inflight[s->inflight_count++] = (struct session_inflight){
        .msg = msg_ref(m),
        .pkt_id = id,
        .qos = qos,
        .state = qos == 1 ? SESSION_WAIT_PUBACK : SESSION_WAIT_PUBREC,
        .retain = retain,
    };
    return 0;
}

static bool queue_push(struct broker *b, struct session *s, struct msg *m, uint8_t qos,
                       bool retain)
{
    /* QoS 0 is never queued: it is sent at once or shed. */
    RM_ASSERT(qos == 1 || qos == 2);
    if (s->queue_count >= b->lim->queued_max)
        return false;
    if (s->queue_count == s->queue_cap) {
        uint32_t ncap = s->queue_cap ? s->queue_cap * 2 : 8;
        if (ncap > b->lim->queued_max)
            ncap = b->lim->queued_max;
        struct session_queued *n = malloc((size_t)ncap * sizeof(*n));
        if (!n)
            return false;
        for (uint32_t i = 0; i < s->queue_count; i++)
            n[i] = *queue_at(s, i);
        free(s->queue);
        s->queue = n;
        s->queue_cap = ncap;
        s->queue_head = 0;
    }
    *queue_at(s, s->queue_count++) = (struct session_queued){msg_ref(m), qos, retain};
    RM_ASSERT(s->queue_count <= s->queue_cap);
    return true;
}

/* Move queued messages into the inflight window while it has room. */
static int pump(struct broker *b, struct session *s)
{
    RM_ASSERT(s->client != NULL);
    int rc = 0;
    while (s->queue_count > 0 && s->inflight_count < b->lim->inflight_max) {
        struct session_queued q = *queue_at(s, 0);
        rc = inflight_send(b, s, q.msg, q.qos, q.retain);
        if (rc < 0)
            break;
        s->queue_head = (s->queue_head + 1) % s->queue_cap;
        s->queue_count--;
        broker__msg_put(b, q.msg);
    }
    return rc;
}

void session_deliver(struct broker *b, struct session *s, struct msg *m, uint8_t qos, bool retain)
{
    RM_ASSERT(qos <= 2);
    RM_ASSERT(m != NULL);
    if (!s->client) {
        /* Offline: keep QoS 1/2 for the next connection, drop QoS 0. */
        if (qos == 0)
            b->stats.msgs_dropped++;
        else if (!queue_push(b, s, m, qos, retain))
            b->stats.queue_full++;
        return;
    }
    if (qos == 0) {
        if (send_publish(b, s->client, m, 0, retain, false, 0, b->lim->output_bytes_max) < 0)
            b->stats.msgs_dropped++;
        return;
    }
    /* Keep order: nothing overtakes messages already waiting in the queue. */
    if (s->queue_count == 0 && s->inflight_count < b->lim->inflight_max) {
        if (inflight_send(b, s, m, qos, retain) == 0)
            return;
    }
    if (!queue_push(b, s, m, qos, retain))
        b->stats.queue_full++;
}

static struct session_inflight *inflight_find(struct session *s, uint16_t pkt_id, uint8_t state)
{
    for (uint32_t i = 0; i < s->inflight_count; i++) {
        if (s->inflight[i].pkt_id == pkt_id)
            return s->inflight[i].state == state ? &s->inflight[i] : NULL;
    }
    return NULL;
}

static void inflight_remove(struct broker *b, struct session *s, struct session_inflight *e)
{
    RM_ASSERT(e >= s->inflight && e < s->inflight + s->inflight_count);
    broker__msg_put(b, e->msg);
    size_t tail = (size_t)(s->inflight + s->inflight_count - (e + 1));
    memmove(e, e + 1, tail * sizeof(*e));
    s->inflight_count--;
}

int session_on_puback(struct broker *b, struct session *s, uint16_t pkt_id)
{
    RM_ASSERT(s->client != NULL);
    struct session_inflight *e = inflight_find(s, pkt_id, SESSION_WAIT_PUBACK);
    if (!e)
        return 0;
    inflight_remove(b, s, e);
    return pump(b, s);
}

int session_on_pubrec(struct broker *b, struct session *s, uint16_t pkt_id)
{
    RM_ASSERT(s->client != NULL);
    struct session_inflight *e = inflight_find(s, pkt_id, SESSION_WAIT_PUBREC);
    if (e) {
        /* The receiver owns the message now [MQTT-4.3.3-1]: keep only the id. */
        broker__msg_put(b, e->msg);
        e->msg = NULL;
        e->state = SESSION_WAIT_PUBCOMP;
    } else if (!inflight_find(s, pkt_id, SESSION_WAIT_PUBCOMP)) {
        return 0;
    }
    return broker__send_ack(b, s->client, MQTT_PUBREL, pkt_id);
}

int session_on_pubcomp(struct broker *b, struct session *s, uint16_t pkt_id)
{
    RM_ASSERT(s->client != NULL);
    struct session_inflight *e = inflight_find(s, pkt_id, SESSION_WAIT_PUBCOMP);
    if (!e)
        return 0;
    inflight_remove(b, s, e);
    return pump(b, s);
}

int session_qos2_in_add(struct broker *b, struct session *s, uint16_t pkt_id)
{
    RM_ASSERT(pkt_id != 0);
    for (uint32_t i = 0; i < s->qos2_in_count; i++) {
        if (s->qos2_in[i] == pkt_id)
            return 0;
    }
    if (s->qos2_in_count >= b->lim->inflight_in_max)
        return -MQTT_RC_RECEIVE_MAX_EXCEEDED;
    int rc = grow((void **)&s->qos2_in, &s->qos2_in_cap, s->qos2_in_count, sizeof(uint16_t));
    if (rc < 0)
        return rc;
    s->qos2_in[s->qos2_in_count++] = pkt_id;
    RM_ASSERT(s->qos2_in_count <= s->qos2_in_cap);
    return 1;
}

void session_on_pubrel(struct session *s, uint16_t pkt_id)
{
    RM_ASSERT(s != NULL);
    for (uint32_t i = 0; i < s->qos2_in_count; i++) {
        if (s->qos2_in[i] == pkt_id) {
            s->qos2_in[i] = s->qos2_in[--s->qos2_in_count];
            return;
        }
    }
}

int session_resume(struct broker *b, struct session *s)
{
    RM_ASSERT(s->client != NULL);
    RM_ASSERT(s->inflight_count <= s->inflight_cap);
    int rc = 0;
    /* Same order as first sent [MQTT-4.4.0-1], [MQTT-4.6.0-1..4]. */
    for (uint32_t i = 0; i < s->inflight_count && rc == 0; i++) {
        struct session_inflight *e = &s->inflight[i];
        if (e->state == SESSION_WAIT_PUBCOMP)
            rc = broker__send_ack(b, s->client, MQTT_PUBREL, e->pkt_id);
        else
            rc = send_publish(b, s->client, e->msg, e->qos, e->retain, true, e->pkt_id,
                              broker__output_hard_max(b));
    }
    if (rc == 0)
        rc = pump(b, s);
    return rc;
}
