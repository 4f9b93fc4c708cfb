/*
 * broker.c - one shard's MQTT logic: framing, CONNECT and session homing,
 * takeover, routing, wills (see broker.h).
 *
 * Framing: whole packets are decoded in place from the bytes net/ hands us;
 * only a packet split across reads is copied, into a buffer of exactly its
 * size. Routing: the trie reports every matching (session, filter); the
 * session's match epoch folds overlapping filters into one delivery at the
 * highest granted QoS [MQTT-3.3.5-1], and the msg is only built once
 * somebody wants it.
 *
 * Owned by one shard; single-threaded. No syscalls, no clocks.
 */
#include "core/broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/auth.h"
#include "core/broker_types.h"
#include "core/limits.h"
#include "core/lvlmap.h"
#include "core/mqtt_codec.h"
#include "core/msg.h"
#include "core/retained.h"
#include "core/rm_assert.h"
#include "core/session.h"
#include "core/share.h"
#include "core/topic.h"
#include "core/trie.h"

#define SESS_BUCKETS_MIN 64u
#define HOME_SEED 0x72696e676d71686full
#define OUTBOX_MIN 64u
/* on_packet(): stop handling this client's bytes until its wait completes. */
#define BROKER__HOLD 3
/* on_packet(): the same, and handle this packet again when the wait completes. */
#define BROKER__REDO 4

/* MQTT 3.1 limits client ids to 23 bytes; we allow longer ones as 3.1.1 does. */
#define ASSIGNED_ID_BYTES_MAX 40u

/* share_table's online test: a member session with a connection. */
static bool share_online(void *member)
{
    return ((const struct session *)member)->client != NULL;
}

struct broker *broker_new(const struct limits *lim, uint32_t shard_id, uint32_t shard_count)
{
    RM_ASSERT(lim != NULL);
    RM_ASSERT(lim->inflight_max > 0 && lim->inflight_max < 65535);
    RM_ASSERT(shard_count >= 1 && shard_count <= BROKER_SHARDS_MAX && shard_id < shard_count);
    struct broker *b = calloc(1, sizeof(*b));
    if (!b)
        goto out;
    b->lim = lim;
    b->shard_id = shard_id;
    b->shard_count = shard_count;
    b->seed = lvlmap_seed(b);
    b->trie = trie_new(b->seed);
    b->interest = trie_new(b->seed);
    b->shard_marker = calloc(shard_count, 1);
    if (!b->trie || !b->interest || !b->shard_marker)
        goto out_free;
    b->retained = retained_new();
    b->share = share_table_new(shard_id, shard_count, b->seed, lim->share_key_seed,
                               share_online);
    if (!b->retained || !b->share)
        goto out_free;
    b->sess_buckets = calloc(SESS_BUCKETS_MIN, sizeof(*b->sess_buckets));
    if (!b->sess_buckets)
        goto out_free;
    b->sess_bucket_count = SESS_BUCKETS_MIN;
    return b;

out_free:
    broker_free(b);
    b = NULL;
out:
    return b;
}

void broker_free(struct broker *b)
{
    if (!b)
        return;
    RM_ASSERT(b->stats.clients == 0 || b->sess_buckets != NULL);
    for (uint32_t i = 0; b->sess_buckets && i < b->sess_bucket_count; i++) {
        struct session *s = b->sess_buckets[i];
        while (s) {
            struct session *next = s->_hnext;
            if (s->client) {
                s->client->_sess = NULL;
                s->client = NULL;
            }
            session_free(b, s);
            s = next;
        }
    }
    RM_ASSERT(!b->trie || trie_count(b->trie) == 0);
    free(b->sess_buckets);
    /* Every shard has stopped: what is still in the outbox is ours to drop. */
    for (uint32_t i = 0; i < b->outbox_count; i++)
        broker_xmsg_release(&b->outbox[(b->outbox_head + i) % b->outbox_cap].m);
    free(b->outbox);
    if (b->retained)
        retained_free(b->retained);
    if (b->share)
        share_table_free(b->share);
    free(b->picks);
    if (b->trie)
        trie_free(b->trie);
    if (b->interest)
        trie_free(b->interest);
    free(b->shard_marker);
    free(b->waits);
    free(b->match);
    trie_name_fini(&b->split);
    free(b->sub_ids);
    free(b->rcs);
    free(b);
}

uint32_t broker_home_shard(const uint8_t *id, size_t len, uint32_t shard_count)
{
    RM_ASSERT(shard_count >= 1);
    RM_ASSERT(id != NULL || len == 0);
    /* Seeded apart from the session table's hash, whose low bits pick buckets. */
    return (uint32_t)(XXH3_64bits_withSeed(id, len, HOME_SEED) % shard_count);
}

void broker_set_limits(struct broker *b, const struct limits *lim)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(lim != NULL);
    b->lim = lim;
}

const struct broker_stats *broker_stats(const struct broker *b)
{
    RM_ASSERT(b != NULL);
    return &b->stats;
}

/* ---- cross-shard ---- */

void broker_xmsg_release(struct xmsg *m)
{
    RM_ASSERT(m != NULL);
    switch (m->kind) {
    case XMSG_MSG_FREE:
        msg_free(m->payload.msg);
        break;
    case XMSG_PUBLISH:
    case XMSG_RETAIN_SET:
    case XMSG_RETAIN_APPLY:
    case XMSG_SHARE_PUBLISH:
        msg_unref(m->payload.msg);
        break;
    case XMSG_INTEREST_ADD:
    case XMSG_INTEREST_DEL:
        free(m->payload.buf.ptr);
        break;
    case XMSG_ACK:
        break;
    default:
        RM_ASSERT(!"not a routing message");
    }
    m->kind = XMSG_NONE;
}

void broker__outbox_push(struct broker *b, uint32_t dest, const struct xmsg *m)
{
    RM_ASSERT(dest < b->shard_count && dest != b->shard_id);
    RM_ASSERT(m->kind != XMSG_NONE);
    if (b->outbox_count == b->outbox_cap) {
        uint32_t ncap = b->outbox_cap ? b->outbox_cap * 2 : OUTBOX_MIN;
        struct broker_outbox_entry *n = malloc((size_t)ncap * sizeof(*n));
        if (!n) {
            b->stats.xmsg_lost++;
            struct xmsg lost = *m;
            if (lost.kind == XMSG_MSG_FREE)
                return; /* Leak rather than free on a foreign shard. */
            broker_xmsg_release(&lost);
            return;
        }
        for (uint32_t i = 0; i < b->outbox_count; i++)
            n[i] = b->outbox[(b->outbox_head + i) % b->outbox_cap];
        free(b->outbox);
        b->outbox = n;
        b->outbox_cap = ncap;
        b->outbox_head = 0;
    }
    b->outbox[(b->outbox_head + b->outbox_count++) % b->outbox_cap] =
        (struct broker_outbox_entry){dest, *m};
}

bool broker_next_xmsg(struct broker *b, uint32_t *dest, struct xmsg *m)
{
    RM_ASSERT(b != NULL && dest != NULL && m != NULL);
    if (b->outbox_count == 0)
        return false;
    struct broker_outbox_entry *e = &b->outbox[b->outbox_head];
    *dest = e->dest;
    *m = e->m;
    b->outbox_head = (b->outbox_head + 1) % b->outbox_cap;
    b->outbox_count--;
    RM_ASSERT(*dest < b->shard_count);
    return true;
}

void broker__msg_put(struct broker *b, struct msg *m)
{
    if (!msg_put(m))
        return;
    if (m->home_shard == b->shard_id) {
        msg_free(m);
        return;
    }
    struct xmsg x = {.kind = XMSG_MSG_FREE};
    x.payload.msg = m;
    broker__outbox_push(b, m->home_shard, &x);
}

/* Send @m (taking a new reference for it) to shard @dest as @kind. */
static void send_msg(struct broker *b, uint32_t dest, uint32_t kind, struct msg *m)
{
    struct xmsg x = {.kind = kind};
    x.payload.msg = msg_ref(m);
    broker__outbox_push(b, dest, &x);
}

static uint64_t wait_new(struct broker *b, struct client *cl, uint8_t ack_type, uint16_t pkt_id,
                         uint32_t remaining);

void broker__interest(struct broker *b, const uint8_t *filter, size_t len, bool add)
{
    RM_ASSERT(len > 0 && len <= LIMITS_STRING_BYTES_MAX);
    RM_ASSERT(b->shard_count >= 1);
    if (add && b->shard_count > 1 && b->sub_client && !b->sub_token)
        b->sub_token = wait_new(b, b->sub_client, 0, 0, 0); /* 0: no hold (ENOMEM) */
    for (uint32_t i = 0; i < b->shard_count; i++) {
        if (i == b->shard_id)
            continue;
        struct xmsg x = {.kind = add ? XMSG_INTEREST_ADD : XMSG_INTEREST_DEL};
        x.payload.buf.ptr = malloc(len);
        if (!x.payload.buf.ptr) {
            b->stats.xmsg_lost++;
            continue;
        }
        memcpy(x.payload.buf.ptr, filter, len);
        x.payload.buf.len = (uint32_t)len;
        if (add && b->sub_token) {
            x.payload.buf.token = b->sub_token;
            b->waits[(uint32_t)b->sub_token - 1].remaining++;
        }
        broker__outbox_push(b, i, &x);
    }
}

/* The PUBLISH properties a message carries to its subscribers unchanged [MQTT-3.3.2-4 etc.]. */
#define FORWARDED_PROPS                                                                       \
    (MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) |        \
     MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC) | MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA) |    \
     MQTT_PROP_BIT(MQTT_PROP_USER))

/*
 * Build a message published on this shard, with the forwarded properties of
 * @props (v5; zeroed before) and its Message Expiry Interval, which for a
 * @will starts only when it is published (publish_will()).
 */
static struct msg *new_msg(struct broker *b, const struct mqtt_str *topic,
                           const struct mqtt_str *payload, const struct mqtt_props *props,
                           uint8_t qos, bool retain, bool will)
{
    RM_ASSERT(topic->len > 0);
    RM_ASSERT(qos <= 2);
    struct msg *m;
    /* Only forwarded properties (the common case): the block goes as it is. */
    bool filter = (props->has & ~(uint64_t)FORWARDED_PROPS) != 0;
    size_t kept_len = filter ? mqtt_props_copy(props, FORWARDED_PROPS, NULL) : props->raw.len;
    m = msg_new(topic->ptr, topic->len, filter ? NULL : props->raw.ptr, kept_len, payload->ptr,
                payload->len, qos, retain);
    if (m) {
        /* An alias or expiry sits among them: copy the rest straight into the message. */
        if (filter)
            (void)mqtt_props_copy(props, FORWARDED_PROPS, msg_props_fill(m));
        m->home_shard = b->shard_id;
        if ((props->has & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY)) && will) {
            m->expiry_ms = MSG_EXPIRY_AT_PUBLISH;
            m->will_expiry_s = props->message_expiry;
        } else if (props->has & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY)) {
            m->expiry_ms = b->now_ms + (uint64_t)props->message_expiry * 1000 + 1;
        }
    }
    return m;
}

/* ---- session table ---- */

static uint64_t id_hash(const uint8_t *id, size_t len)
{
    return XXH3_64bits(id, len);
}

static struct session **sess_slot(struct broker *b, const uint8_t *id, size_t len, uint64_t h)
{
    struct session **pp = &b->sess_buckets[h & (b->sess_bucket_count - 1)];
    for (; *pp; pp = &(*pp)->_hnext) {
        struct session *s = *pp;
        if (s->_hash == h && s->client_id_len == len && memcmp(s->client_id, id, len) == 0)
            break;
    }
    return pp;
}

/* Double the table when it averages more than one session per bucket. */
static void sess_table_grow(struct broker *b)
{
    uint32_t ncount = b->sess_bucket_count * 2;
    struct session **nb = calloc(ncount, sizeof(*nb));
    if (!nb)
        return; /* Longer chains, still correct. */
    for (uint32_t i = 0; i < b->sess_bucket_count; i++) {
        struct session *s = b->sess_buckets[i];
        while (s) {
            struct session *next = s->_hnext;
            struct session **head = &nb[s->_hash & (ncount - 1)];
            s->_hnext = *head;
            *head = s;
            s = next;
        }
    }
    free(b->sess_buckets);
    b->sess_buckets = nb;
    b->sess_bucket_count = ncount;
}

static void sess_insert(struct broker *b, struct session *s)
{
    RM_ASSERT(*sess_slot(b, s->client_id, s->client_id_len, s->_hash) == NULL);
    if (b->sess_count >= b->sess_bucket_count)
        sess_table_grow(b);
    struct session **head = &b->sess_buckets[s->_hash & (b->sess_bucket_count - 1)];
    s->_hnext = *head;
    *head = s;
    b->sess_count++;
    b->stats.sessions = b->sess_count;
}

/* Unlink @s from the table and free it. */
static void sess_destroy(struct broker *b, struct session *s)
{
    struct session **pp = sess_slot(b, s->client_id, s->client_id_len, s->_hash);
    RM_ASSERT(*pp == s);
    *pp = s->_hnext;
    b->sess_count--;
    b->stats.sessions = b->sess_count;
    session_free(b, s);
}

/* ---- output ---- */

void broker__mark_dirty(struct broker *b, struct client *cl)
{
    RM_ASSERT(cl != NULL);
    if (cl->_dirty)
        return;
    cl->_dirty = true;
    cl->_dirty_next = NULL;
    cl->_dirty_prev = b->dirty_tail;
    if (b->dirty_tail)
        b->dirty_tail->_dirty_next = cl;
    else
        b->dirty_head = cl;
    b->dirty_tail = cl;
}

static void dirty_unlink(struct broker *b, struct client *cl)
{
    if (!cl->_dirty)
        return;
    if (cl->_dirty_prev)
        cl->_dirty_prev->_dirty_next = cl->_dirty_next;
    else
        b->dirty_head = cl->_dirty_next;
    if (cl->_dirty_next)
        cl->_dirty_next->_dirty_prev = cl->_dirty_prev;
    else
        b->dirty_tail = cl->_dirty_prev;
    cl->_dirty = false;
    cl->_dirty_next = cl->_dirty_prev = NULL;
}

struct client *broker_next_dirty(struct broker *b)
{
    RM_ASSERT(b != NULL);
    struct client *cl = b->dirty_head;
    if (cl) {
        RM_ASSERT(cl->_dirty);
        dirty_unlink(b, cl);
    }
    return cl;
}

int broker__send(struct broker *b, struct client *cl, const struct mqtt_pkt *pkt,
                 size_t bytes_max)
{
    RM_ASSERT(cl != NULL);
    RM_ASSERT(pkt != NULL);
    if (cl->state == CLIENT_CLOSING)
        return 0; /* Nobody will read it; not an error for the sender. */
    uint8_t version = cl->version ? cl->version : MQTT_V311;
    size_t n = mqtt_encoded_size(pkt, version);
    if (n == 0)
        return -EINVAL;
    if (cl->_v5 && n > cl->_v5->max_packet)
        return -EMSGSIZE;
    uint8_t *p = obuf_reserve(&cl->out, n, bytes_max);
    if (!p)
        return cl->out.len + n > bytes_max ? -ENOBUFS : -ENOMEM;
    mqtt_encode(pkt, version, p, n);
    obuf_commit(&cl->out, n);
    b->stats.pkts_out++;
    broker__mark_dirty(b, cl);
    return 0;
}

/*
 * Give @pub an outbound topic alias: the topic's alias if it has one (the
 * topic is then left out), else a new alias, reusing the least recently
 * used one once BROKER_ALIAS_OUT_MAX or the client's maximum are taken
 * [MQTT-3.3.2-9, -10]. Without memory, no alias.
 */
static void alias_out(struct client_v5 *v5, struct mqtt_publish *pub)
{
    RM_ASSERT(v5->alias_max > 0);
    RM_ASSERT(pub->topic.len > 0);
    uint32_t cap = v5->alias_max < BROKER_ALIAS_OUT_MAX ? v5->alias_max : BROKER_ALIAS_OUT_MAX;
    if (!v5->alias_out) {
        v5->alias_out = calloc(cap, sizeof(*v5->alias_out));
        if (!v5->alias_out)
            return;
    }
    struct alias_out *lru = NULL;
    for (uint32_t i = 0; i < v5->alias_out_count; i++) {
        struct alias_out *a = &v5->alias_out[i];
        if (a->topic_len == pub->topic.len && memcmp(a->topic, pub->topic.ptr, a->topic_len) == 0) {
            a->used = ++v5->alias_clock;
            pub->props.has |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
            pub->props.topic_alias = a->alias;
            pub->topic.len = 0; /* the alias alone names the topic */
            return;
        }
        if (!lru || a->used < lru->used)
            lru = a;
    }
    uint8_t *copy = malloc(pub->topic.len);
    if (!copy)
        return;
    memcpy(copy, pub->topic.ptr, pub->topic.len);
    if (v5->alias_out_count < cap) {
        lru = &v5->alias_out[v5->alias_out_count++];
        lru->alias = (uint16_t)v5->alias_out_count;
    }
    free(lru->topic);
    lru->topic = copy;
    lru->topic_len = (uint16_t)pub->topic.len;
    lru->used = ++v5->alias_clock;
    pub->props.has |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
    pub->props.topic_alias = lru->alias;
}

int broker__send_publish(struct broker *b, struct client *cl, struct mqtt_pkt *pkt,
                         size_t bytes_max)
{
    RM_ASSERT(pkt->type == MQTT_PUBLISH);
    RM_ASSERT(cl != NULL);
    struct client_v5 *v5 = cl->_v5;
    struct mqtt_publish *pub = &pkt->u.publish;
    if (v5 && v5->alias_max > 0 && cl->state != CLIENT_CLOSING)
        alias_out(v5, pub);
    int rc = broker__send(b, cl, pkt, bytes_max);
    if (rc < 0 && (pub->props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS))) {
        /* Not sent: the client does not know this mapping; forget it. */
        struct alias_out *a = &v5->alias_out[pub->props.topic_alias - 1];
        free(a->topic);
        a->topic = NULL;
        a->topic_len = 0;
        if (rc == -EMSGSIZE && pub->topic.len > 0) {
            /* A new alias adds 3 bytes: without it, the packet may fit. */
            pub->props.has &= ~MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
            rc = broker__send(b, cl, pkt, bytes_max);
        }
    }
    return rc;
}

int broker__send_ack(struct broker *b, struct client *cl, uint8_t type, uint16_t pkt_id)
{
    struct mqtt_pkt pkt = {.type = type};
    RM_ASSERT(type >= MQTT_PUBACK && type <= MQTT_PUBCOMP);
    pkt.u.ack.pkt_id = pkt_id;
    return broker__send(b, cl, &pkt, broker__output_hard_max(b));
}

static void client_v5_free(struct broker *b, struct client *cl)
{
    struct client_v5 *v5 = cl->_v5;
    if (!v5)
        return;
    RM_ASSERT(v5->alias_out_count <= BROKER_ALIAS_OUT_MAX);
    for (uint32_t i = 0; i < v5->alias_out_count; i++)
        free(v5->alias_out[i].topic);
    free(v5->alias_out);
    if (v5->alias_in) {
        for (uint32_t i = 0; i < v5->alias_in_cap; i++)
            free((void *)v5->alias_in[i].ptr);
        free(v5->alias_in);
    }
    free(v5->auth_connect);
    free(v5);
    cl->_v5 = NULL;
}

/*
 * The DISCONNECT reason code for error @rc: itself where a DISCONNECT may
 * carry it (MQTT 5.0 section 3.14.2.1; 0x04 is the client's), else 0x80.
 */
static uint8_t disconnect_rc(int rc)
{
    RM_ASSERT(rc < 0 && rc >= -255);
    uint8_t code = (uint8_t)-rc;
    return code != MQTT_RC_DISCONNECT_WITH_WILL && mqtt_rc_allowed(MQTT_DISCONNECT, code)
               ? code
               : MQTT_RC_UNSPECIFIED;
}

/*
 * Send @pkt (a v5 CONNACK or DISCONNECT carrying reason code @rc) with a
 * Reason String naming @rc, or without it when that would pass the
 * client's Maximum Packet Size [MQTT-3.2.2-19, 3.14.2-3].
 */
static int send_with_reason(struct broker *b, struct client *cl, struct mqtt_pkt *pkt,
                            struct mqtt_props *props, uint8_t rc)
{
    RM_ASSERT(cl->version == MQTT_V5);
    RM_ASSERT(pkt->type == MQTT_CONNACK || pkt->type == MQTT_DISCONNECT);
    const char *why = mqtt_rc_name(rc);
    props->has |= MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
    props->reason_string = (struct mqtt_str){(const uint8_t *)why, (uint32_t)strlen(why)};
    int ret = broker__send(b, cl, pkt, broker__output_hard_max(b));
    if (ret == -EMSGSIZE) {
        props->has &= ~MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        ret = broker__send(b, cl, pkt, broker__output_hard_max(b));
    }
    return ret;
}

/* Stop serving @cl: it is flushed and closed by net/. Returns @rc. */
static int client_close(struct broker *b, struct client *cl, int rc)
{
    RM_ASSERT(rc != 0);
    RM_ASSERT(cl != NULL);
    if (cl->state != CLIENT_CLOSING) {
        if (rc < 0 && cl->_v5 && cl->state == CLIENT_CONNECTED) {
            /* Say why before closing [MQTT-4.13.2-1]. */
            struct mqtt_pkt pkt = {.type = MQTT_DISCONNECT};
            pkt.u.ack.rc = disconnect_rc(rc);
            (void)send_with_reason(b, cl, &pkt, &pkt.u.ack.props, pkt.u.ack.rc);
        }
        cl->state = CLIENT_CLOSING;
        cl->close_rc = rc < 0 ? rc : 0;
        if (rc < 0 && rc != -MQTT_RC_SESSION_TAKEN_OVER && rc != -MQTT_RC_KEEPALIVE_TIMEOUT &&
            rc != -MQTT_RC_SERVER_SHUTTING_DOWN)
            b->stats.malformed++;
    }
    broker__mark_dirty(b, cl);
    return rc;
}

void broker_client_kick(struct broker *b, struct client *cl, int rc)
{
    RM_ASSERT(b != NULL && cl != NULL);
    RM_ASSERT(rc < 0);
    (void)client_close(b, cl, rc);
}

/* ---- routing ---- */

static void match_cb(void *ctx, void *owner, uint8_t options)
{
    struct broker *b = ctx;
    struct session *sess = owner;
    /* No Local: not back to the publishing client [MQTT-3.8.3-3]. */
    if ((options & MQTT_SUBOPT_NO_LOCAL) && sess == b->publisher)
        return;
    uint8_t opts = options & (MQTT_SUBOPT_QOS | MQTT_SUBOPT_RAP);
    if (sess->_match_epoch == b->match_epoch) {
        if ((opts & MQTT_SUBOPT_QOS) > (sess->_match_opts & MQTT_SUBOPT_QOS))
            sess->_match_opts = (uint8_t)((sess->_match_opts & ~MQTT_SUBOPT_QOS) |
                                          (opts & MQTT_SUBOPT_QOS));
        sess->_match_opts |= opts & MQTT_SUBOPT_RAP;
        return;
    }
    if (b->match_count == b->match_cap) {
        uint32_t ncap = b->match_cap ? b->match_cap * 2 : 64;
        struct session **n = realloc(b->match, ncap * sizeof(*n));
        if (!n)
            return; /* Out of memory: this subscriber misses the message. */
        b->match = n;
        b->match_cap = ncap;
    }
    sess->_match_epoch = b->match_epoch;
    sess->_match_opts = opts;
    b->match[b->match_count++] = sess;
}

static void interest_cb(void *ctx, void *owner, uint8_t options)
{
    struct broker *b = ctx;
    (void)options;
    uint32_t shard = (uint32_t)((uint8_t *)owner - b->shard_marker);
    RM_ASSERT(shard < b->shard_count && shard != b->shard_id);
    uint64_t bit = 1ull << (shard % 64);
    if (b->shard_hit[shard / 64] & bit)
        return;
    b->shard_hit[shard / 64] |= bit;
    b->remote[b->remote_count++] = shard;
}

static void pick_cb(void *ctx, uint64_t key, uint32_t shard, void *member, uint8_t options)
{
    struct broker *b = ctx;
    RM_ASSERT(member != NULL || shard != b->shard_id);
    if (b->pick_count == b->pick_cap) {
        uint32_t ncap = b->pick_cap ? b->pick_cap * 2 : 8;
        struct broker_share_pick *n = realloc(b->picks, ncap * sizeof(*n));
        if (!n) {
            b->stats.share_dropped++;
            return;
        }
        b->picks = n;
        b->pick_cap = ncap;
    }
    b->picks[b->pick_count++] = (struct broker_share_pick){key, member, shard, options};
}

/*
 * Match @topic against this shard's sessions (b->match) and, if @remote
 * (the message was published here), other shards' and the shared groups
 * (b->picks: one member per group, anywhere).
 */
static void match(struct broker *b, const struct mqtt_str *topic, bool remote)
{
    RM_ASSERT(b->match_count == 0 && b->remote_count == 0 && b->pick_count == 0);
    RM_ASSERT(topic->len > 0);
    if (++b->match_epoch == 0)
        b->match_epoch = 1; /* 0 is every session's initial epoch */
    if (trie_split(&b->split, b->seed, topic->ptr, topic->len) < 0) {
        b->stats.route_nomem++; /* out of memory: nobody gets this message */
        return;
    }
    trie_match(b->trie, &b->split, match_cb, b);
    if (remote)
        share_match(b->share, &b->split, pick_cb, b);
    if (remote && b->shard_count > 1) {
        trie_match(b->interest, &b->split, interest_cb, b);
        for (uint32_t i = 0; i < b->remote_count; i++)
            b->shard_hit[b->remote[i] / 64] = 0;
    }
}

/* Send @m to shard @dest for one member of shared group @key. */
static void send_share(struct broker *b, uint32_t dest, struct msg *m, uint64_t key, uint32_t hops)
{
    struct xmsg x = {.kind = XMSG_SHARE_PUBLISH, .arg = hops};
    x.payload.retain.msg = msg_ref(m);
    x.payload.retain.token = key;
    broker__outbox_push(b, dest, &x);
}

/*
 * Deliver @m to @s, subscribed with @options: at the lower of the two QoS,
 * RETAIN 0 unless Retain As Published [MQTT-3.3.1-12, -13]; through shared
 * group @key, or 0 for the session's own subscriptions.
 */
static void deliver_one(struct broker *b, struct session *s, struct msg *m, uint8_t options,
                        uint64_t key)
{
    uint8_t qos = options & MQTT_SUBOPT_QOS;
    if (qos > m->qos)
        qos = m->qos;
    session_deliver(b, s, m, qos, m->retain && (options & MQTT_SUBOPT_RAP), key);
}

bool broker__share_redispatch(struct broker *b, struct msg *m, uint64_t key,
                              const struct session *from)
{
    RM_ASSERT(key != 0);
    RM_ASSERT(m != NULL);
    struct mqtt_str topic = {msg_topic(m), m->topic_len};
    uint8_t options = 0;
    struct session *to = share_pick(b->share, key, topic.ptr, topic.len, (void *)from, &options);
    if (to && to != from && to->client) {
        deliver_one(b, to, m, options, key);
        return true;
    }
    /* No other member online here: another shard's, else an offline one here. */
    uint32_t shard;
    if (share_pick_shard(b->share, key, topic.ptr, topic.len, UINT32_MAX, &shard)) {
        send_share(b, shard, m, key, 0);
        return true;
    }
    if (to && to != from) {
        deliver_one(b, to, m, options, key);
        return true;
    }
    return false;
}

/* Deliver @m to what match() found, then reset the scratch. */
static void deliver(struct broker *b, struct msg *m)
{
    for (uint32_t i = 0; i < b->pick_count; i++) {
        struct broker_share_pick *p = &b->picks[i];
        if (p->member)
            deliver_one(b, p->member, m, p->options, p->key);
        else
            send_share(b, p->shard, m, p->key, 0);
    }
    b->pick_count = 0;
    for (uint32_t i = 0; i < b->remote_count; i++) {
        /* One reference per interested shard, never one per subscriber. */
        send_msg(b, b->remote[i], XMSG_PUBLISH, m);
        b->stats.xmsg_publish_out++;
    }
    b->remote_count = 0;
    for (uint32_t i = 0; i < b->match_count; i++)
        deliver_one(b, b->match[i], m, b->match[i]->_match_opts, 0);
    b->match_count = 0;
}

/* Apply a retained set/clear to this shard's replica. */
static void retained_apply(struct broker *b, struct msg *m)
{
    struct msg *old = NULL;
    /* A full store refuses the retain; the message is still forwarded. */
    (void)retained_swap(b->retained, m, b->lim->retained_max, &old);
    broker__msg_put(b, old);
}

static void wait_done_one(struct broker *b, uint64_t token);

/* This shard's replica applied the retained publish of @token from @origin. */
static void retain_applied(struct broker *b, uint64_t token, uint32_t origin)
{
    if (token == 0)
        return;
    if (origin == b->shard_id) {
        wait_done_one(b, token);
        return;
    }
    struct xmsg x = {.kind = XMSG_ACK, .arg = b->shard_id};
    x.payload.retain.token = token;
    broker__outbox_push(b, origin, &x);
}

static void send_retain(struct broker *b, uint32_t dest, uint32_t kind, struct msg *m,
                        uint64_t token, uint32_t origin)
{
    struct xmsg x = {.kind = kind, .arg = origin};
    x.payload.retain.msg = msg_ref(m);
    x.payload.retain.token = token;
    broker__outbox_push(b, dest, &x);
}

/* On the topic's home shard: apply, then have every other replica apply. */
static void retained_home_apply(struct broker *b, struct msg *m, uint64_t token, uint32_t origin)
{
    RM_ASSERT(broker_home_shard(msg_topic(m), m->topic_len, b->shard_count) == b->shard_id);
    retained_apply(b, m);
    retain_applied(b, token, origin);
    for (uint32_t i = 0; i < b->shard_count; i++) {
        if (i != b->shard_id)
            send_retain(b, i, XMSG_RETAIN_APPLY, m, token, origin);
    }
}

/*
 * A retained set/clear published on this shard. Every replica must apply the
 * sets of one topic in the same order, so the topic's home shard orders them:
 * it applies each and broadcasts it to the others. With a @token, each
 * replica reports back to this shard once it has applied it.
 */
static void retained_publish(struct broker *b, struct msg *m, uint64_t token)
{
    RM_ASSERT(m->retain);
    uint32_t home = broker_home_shard(msg_topic(m), m->topic_len, b->shard_count);
    if (home != b->shard_id)
        send_retain(b, home, XMSG_RETAIN_SET, m, token, b->shard_id);
    else
        retained_home_apply(b, m, token, b->shard_id);
}

/* ---- holding a client until every replica has its retained publish ---- */

/* A wait for @remaining acknowledgements; returns its token, or 0 on ENOMEM. */
static uint64_t wait_new(struct broker *b, struct client *cl, uint8_t ack_type, uint16_t pkt_id,
                         uint32_t remaining)
{
    RM_ASSERT(cl->_wait == 0);
    RM_ASSERT(b->shard_count > 1);
    uint32_t slot = 0;
    while (slot < b->wait_cap && (b->waits[slot].remaining != 0 || b->waits[slot].cl))
        slot++;
    if (slot == b->wait_cap) {
        uint32_t ncap = b->wait_cap ? b->wait_cap * 2 : 16;
        struct broker_wait *n = realloc(b->waits, ncap * sizeof(*n));
        if (!n)
            return 0;
        memset(n + b->wait_cap, 0, (ncap - b->wait_cap) * sizeof(*n));
        b->waits = n;
        b->wait_cap = ncap;
    }
    struct broker_wait *w = &b->waits[slot];
    w->cl = cl;
    w->remaining = remaining;
    w->pkt_id = pkt_id;
    w->ack_type = ack_type;
    b->wait_used++;
    cl->_wait = slot + 1;
    return (uint64_t)w->gen << 32 | (slot + 1);
}

/* Free @w's slot; stale tokens for it miss from now on (gen). */
static void wait_release(struct broker *b, struct broker_wait *w)
{
    RM_ASSERT(b->wait_used > 0);
    w->cl = NULL;
    w->remaining = 0;
    w->gen++;
    b->wait_used--;
}

/* Free @cl's wait slot before anything was asked of other shards. */
static void wait_cancel(struct broker *b, struct client *cl)
{
    RM_ASSERT(cl->_wait > 0 && cl->_wait <= b->wait_cap);
    struct broker_wait *w = &b->waits[cl->_wait - 1];
    RM_ASSERT(w->cl == cl);
    wait_release(b, w);
    cl->_wait = 0;
}

static void wait_done_one(struct broker *b, uint64_t token)
{
    uint32_t slot = (uint32_t)token - 1;
    RM_ASSERT(slot < b->wait_cap);
    struct broker_wait *w = &b->waits[slot];
    RM_ASSERT(w->gen == (uint32_t)(token >> 32) && w->remaining > 0);
    if (--w->remaining > 0)
        return;
    struct client *cl = w->cl;
    uint8_t ack_type = w->ack_type;
    uint16_t pkt_id = w->pkt_id;
    wait_release(b, w);
    if (!cl)
        return; /* The client went away; nobody to acknowledge. */
    cl->_wait = 0;
    if (ack_type && broker__send_ack(b, cl, ack_type, pkt_id) < 0) {
        client_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
        return;
    }
    /* Now handle what arrived meanwhile, in order (it may hold the client again). */
    struct obuf held = cl->_held;
    cl->_held = (struct obuf){0};
    if (held.len > 0)
        (void)broker_client_feed(b, cl, held.data, held.len);
    obuf_free(&held);
}

/*
 * Route a PUBLISH received from @from's client on this shard. A retained
 * one carries @token (0: nobody waits for its replicas). Returns 0 or
 * -ENOMEM.
 */
static int publish(struct broker *b, const struct session *from, const struct mqtt_publish *pub,
                   uint64_t token)
{
    RM_ASSERT(pub->qos <= 2);
    RM_ASSERT(pub->topic.len > 0);
    b->stats.msgs_in++;
    b->publisher = from;
    match(b, &pub->topic, true);
    b->publisher = NULL;
    /* Build the message only if somebody wants it. */
    if (!pub->retain && b->match_count == 0 && b->remote_count == 0 && b->pick_count == 0)
        return 0;
    struct msg *m = new_msg(b, &pub->topic, &pub->payload, &pub->props, pub->qos, pub->retain,
                            false);
    if (!m) {
        b->match_count = b->remote_count = b->pick_count = 0;
        return -ENOMEM;
    }
    if (pub->retain)
        retained_publish(b, m, token);
    deliver(b, m);
    broker__msg_put(b, m);
    return 0;
}

/* Publish a will built on this shard; drops the caller's reference. */
static void publish_will(struct broker *b, struct msg *m)
{
    struct mqtt_str topic = {msg_topic(m), m->topic_len};
    RM_ASSERT(m->home_shard == b->shard_id && atomic_load(&m->refs) == 1);
    if (m->expiry_ms == MSG_EXPIRY_AT_PUBLISH) /* still ours alone: may change */
        m->expiry_ms = b->now_ms + (uint64_t)m->will_expiry_s * 1000 + 1;
    b->stats.msgs_in++;
    b->stats.wills_sent++;
    if (m->retain)
        retained_publish(b, m, 0);
    match(b, &topic, true);
    deliver(b, m);
    broker__msg_put(b, m);
}

/* A message for one member of shared group @key, sent here by shard @from. */
static void share_received(struct broker *b, uint32_t from, struct msg *m, uint64_t key,
                           uint32_t hops)
{
    RM_ASSERT(key != 0);
    RM_ASSERT(from < b->shard_count);
    uint8_t options = 0;
    struct session *to = share_pick(b->share, key, msg_topic(m), m->topic_len, NULL, &options);
    /*
     * Our members left while it travelled, or none of them is online (the
     * sender may have chosen us by turn): another shard may have someone
     * online. Pass it on a bounded number of times; the last shard queues
     * it for an offline member of its own.
     */
    uint32_t shard;
    if ((!to || !to->client) && hops < SHARE_HOPS_MAX &&
        share_pick_shard(b->share, key, msg_topic(m), m->topic_len, from, &shard)) {
        send_share(b, shard, m, key, hops + 1);
        return;
    }
    if (to)
        deliver_one(b, to, m, options, key);
    else
        b->stats.share_dropped++;
}

void broker_xmsg_receive(struct broker *b, uint32_t from, const struct xmsg *x)
{
    RM_ASSERT(b != NULL && x != NULL);
    RM_ASSERT(from < b->shard_count && from != b->shard_id);
    struct msg *m = x->payload.msg;
    switch (x->kind) {
    case XMSG_PUBLISH: {
        struct mqtt_str topic = {msg_topic(m), m->topic_len};
        match(b, &topic, false);
        deliver(b, m);
        broker__msg_put(b, m);
        break;
    }
    case XMSG_MSG_FREE:
        RM_ASSERT(m->home_shard == b->shard_id);
        msg_free(m);
        break;
    case XMSG_RETAIN_SET:
        retained_home_apply(b, m, x->payload.retain.token, x->arg);
        broker__msg_put(b, m);
        break;
    case XMSG_RETAIN_APPLY:
        retained_apply(b, m);
        retain_applied(b, x->payload.retain.token, x->arg);
        broker__msg_put(b, m);
        break;
    case XMSG_ACK:
        wait_done_one(b, x->payload.retain.token);
        break;
    case XMSG_SHARE_PUBLISH:
        share_received(b, from, m, x->payload.retain.token, x->arg);
        broker__msg_put(b, m);
        break;
    case XMSG_INTEREST_ADD: {
        struct share_name sn;
        int rc;
        if (share_parse(x->payload.buf.ptr, x->payload.buf.len, &sn) == 1)
            rc = share_remote(b->share, x->payload.buf.ptr, x->payload.buf.len, from, true);
        else
            rc = trie_insert(b->interest, x->payload.buf.ptr, x->payload.buf.len,
                             &b->shard_marker[from], 0, NULL);
        /*
         * 0<->1 transitions arrive in order, so a duplicate only follows a
         * DEL lost to allocation failure: already interested, nothing to do.
         */
        if (rc < 0)
            b->stats.xmsg_lost++;
        free(x->payload.buf.ptr);
        if (x->payload.buf.token) {
            /* Matching publishes here are now forwarded: the SUBACK may go. */
            struct xmsg ack = {.kind = XMSG_ACK, .arg = b->shard_id};
            ack.payload.retain.token = x->payload.buf.token;
            broker__outbox_push(b, from, &ack);
        }
        break;
    }
    case XMSG_INTEREST_DEL: {
        struct share_name sn;
        if (share_parse(x->payload.buf.ptr, x->payload.buf.len, &sn) == 1)
            (void)share_remote(b->share, x->payload.buf.ptr, x->payload.buf.len, from, false);
        else
            (void)trie_remove(b->interest, x->payload.buf.ptr, x->payload.buf.len,
                              &b->shard_marker[from], NULL);
        free(x->payload.buf.ptr);
        break;
    }
    default:
        RM_ASSERT(!"not a routing message");
    }
}

/* ---- packets ---- */

static int send_connack(struct broker *b, struct client *cl, bool session_present, uint8_t rc,
                        const struct mqtt_props *props)
{
    struct mqtt_pkt pkt = {.type = MQTT_CONNACK};
    pkt.u.connack.session_present = session_present;
    pkt.u.connack.rc = rc;
    if (props)
        pkt.u.connack.props = *props;
    return broker__send(b, cl, &pkt, broker__output_hard_max(b));
}

/* Refuse a CONNECT with a CONNACK reason code, then close [MQTT-3.2.2-5, 3.2.2-7]. */
static int connect_refuse(struct broker *b, struct client *cl, int rc)
{
    RM_ASSERT(rc < 0);
    RM_ASSERT(cl->state == CLIENT_NEW);
    b->stats.connects_refused++;
    if (cl->version == MQTT_V5) {
        struct mqtt_pkt pkt = {.type = MQTT_CONNACK};
        pkt.u.connack.rc = (uint8_t)-rc;
        (void)send_with_reason(b, cl, &pkt, &pkt.u.connack.props, (uint8_t)-rc);
    } else {
        (void)send_connack(b, cl, false, mqtt_rc_to_connack_v3(rc), NULL);
    }
    return client_close(b, cl, rc);
}

/* A fresh id for a client that sent an empty one [MQTT-3.1.3-6]. */
static size_t assign_client_id(struct broker *b, uint8_t *buf, size_t cap)
{
    RM_ASSERT(cap >= ASSIGNED_ID_BYTES_MAX);
    size_t n;
    /* Homed here, so a later CONNECT with this id lands on this shard too. */
    do {
        n = (size_t)snprintf((char *)buf, cap, "ringmq-%u-%llu", (unsigned)b->shard_id,
                             (unsigned long long)++b->assigned_id_seq);
    } while (broker_home_shard(buf, n, b->shard_count) != b->shard_id ||
             *sess_slot(b, buf, n, id_hash(buf, n)) != NULL);
    RM_ASSERT(n < cap);
    return n;
}

/* ---- session deadlines: expiry and delayed wills ---- */

static void timed_unlink(struct broker *b, struct session *s)
{
    if (!s->_timed)
        return;
    if (s->_tprev)
        s->_tprev->_tnext = s->_tnext;
    else
        b->timed_head = s->_tnext;
    if (s->_tnext)
        s->_tnext->_tprev = s->_tprev;
    s->_tnext = s->_tprev = NULL;
    s->_timed = false;
}

static void timed_link(struct broker *b, struct session *s)
{
    RM_ASSERT(s->client == NULL);
    if (s->_timed)
        return;
    s->_tprev = NULL;
    s->_tnext = b->timed_head;
    if (b->timed_head)
        b->timed_head->_tprev = s;
    b->timed_head = s;
    s->_timed = true;
}

/* End @s: its delayed will, if any, goes out now [MQTT-3.1.3-9]. */
static void session_end(struct broker *b, struct session *s)
{
    RM_ASSERT(s->client == NULL);
    timed_unlink(b, s);
    struct msg *will = s->will;
    s->will = NULL;
    sess_destroy(b, s);
    if (will)
        publish_will(b, will);
}

void broker_tick(struct broker *b, uint64_t now_ms)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(now_ms >= b->now_ms);
    b->now_ms = now_ms;
    if (now_ms < b->next_scan_ms)
        return;
    /*
     * The next scan is at the earliest deadline left, but not within a
     * second: a shard holding a million sessions that expire in days walks
     * them once, not every second.
     */
    uint64_t earliest = UINT64_MAX;
    struct session *s = b->timed_head;
    while (s) {
        struct session *next = s->_tnext;
        if (s->will && s->will_at_ms <= now_ms) {
            struct msg *will = s->will;
            s->will = NULL;
            publish_will(b, will);
        }
        if (s->expire_at_ms && s->expire_at_ms <= now_ms) {
            b->stats.sessions_expired++;
            session_end(b, s);
        } else if (!s->will && !s->expire_at_ms) {
            timed_unlink(b, s);
        } else {
            if (s->will && s->will_at_ms < earliest)
                earliest = s->will_at_ms;
            if (s->expire_at_ms && s->expire_at_ms < earliest)
                earliest = s->expire_at_ms;
        }
        s = next;
    }
    b->next_scan_ms = earliest > now_ms + 1000 ? earliest : now_ms + 1000;
}

bool broker_has_deadlines(const struct broker *b)
{
    RM_ASSERT(b != NULL);
    return b->timed_head != NULL;
}

/* ---- CONNECT ---- */

/* The client's MQTT 5.0 CONNECT properties; -ENOMEM. */
static int connect_v5(struct client *cl, const struct mqtt_connect *c)
{
    RM_ASSERT(c->version == MQTT_V5 && cl->_v5 == NULL);
    const struct mqtt_props *pr = &c->props;
    struct client_v5 *v5 = calloc(1, sizeof(*v5));
    if (!v5)
        return -ENOMEM;
    v5->max_packet = (pr->has & MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE)) ? pr->max_packet_size
                                                                         : UINT32_MAX;
    v5->recv_max = (pr->has & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX)) ? pr->receive_max : 65535;
    v5->alias_max = pr->topic_alias_max;
    /*
     * Request Problem Information 0 needs nothing: Reason Strings go only on
     * CONNACK and DISCONNECT, which it still allows [MQTT-3.1.2-29].
     */
    if (c->will && (c->will_props.has & MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY)))
        v5->will_delay_s = c->will_props.will_delay;
    RM_ASSERT(v5->recv_max > 0);
    cl->_v5 = v5;
    return 0;
}

/* CONNACK properties telling a v5 client what this server allows (section 3.2.2.3). */
static void connack_props(const struct broker *b, const struct client *cl,
                          const uint8_t *assigned, size_t assigned_len, bool keepalive_set,
                          struct mqtt_props *pr)
{
    const struct limits *lim = b->lim;
    RM_ASSERT(cl->version == MQTT_V5);
    RM_ASSERT(lim->max_qos <= 2);
    pr->has |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX) | MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE);
    pr->receive_max = (uint16_t)(lim->inflight_in_max < 65535 ? lim->inflight_in_max : 65535);
    pr->max_packet_size = lim->packet_bytes_max;
    if (lim->max_qos < 2) {
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_MAX_QOS);
        pr->max_qos = lim->max_qos;
    }
    if (!lim->retain_available)
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE); /* value 0 */
    if (!lim->wildcard_subscriptions)
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_WILDCARD_SUB_AVAILABLE);
    if (!lim->subscription_identifiers)
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_SUB_ID_AVAILABLE);
    if (!lim->shared_subscriptions)
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_SHARED_SUB_AVAILABLE);
    if (lim->topic_alias_max > 0) {
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAX);
        pr->topic_alias_max = lim->topic_alias_max;
    }
    if (assigned) {
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID);
        pr->assigned_client_id = (struct mqtt_str){assigned, (uint32_t)assigned_len};
    }
    if (keepalive_set) {
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEPALIVE);
        pr->server_keepalive = cl->keepalive_s;
    }
    if (cl->_v5->auth) {
        /* The method the exchange used (MQTT 5.0 section 3.2.2.3.17). */
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD);
        pr->auth_method = (struct mqtt_str){(const uint8_t *)cl->_v5->auth->name,
                                            (uint32_t)strlen(cl->_v5->auth->name)};
    }
}

/* auth_step while a CONNECT authenticated by its exchange is handled again. */
#define AUTH_STEP_DONE 0xFF

static int send_auth(struct broker *b, struct client *cl, uint8_t rc, const struct mqtt_str *data)
{
    RM_ASSERT(cl->_v5 && cl->_v5->auth);
    RM_ASSERT(rc == MQTT_RC_SUCCESS || rc == MQTT_RC_CONTINUE_AUTH);
    struct mqtt_pkt pkt = {.type = MQTT_AUTH};
    struct mqtt_props *pr = &pkt.u.ack.props;
    pkt.u.ack.rc = rc;
    pr->has = MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD);
    pr->auth_method = (struct mqtt_str){(const uint8_t *)cl->_v5->auth->name,
                                        (uint32_t)strlen(cl->_v5->auth->name)};
    if (data) {
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA);
        pr->auth_data = *data;
    }
    if (broker__send(b, cl, &pkt, broker__output_hard_max(b)) < 0)
        return client_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    return 0;
}

/*
 * A CONNECT naming an Authentication Method (section 4.12): judge its data.
 * Returns 1 to go on connecting, 0 while an AUTH exchange goes on (the
 * CONNECT @raw is kept and handled again once it succeeds), or what
 * connect_refuse() returns.
 */
static int connect_auth(struct broker *b, struct client *cl, const struct mqtt_connect *c,
                        const uint8_t *raw, uint32_t raw_len)
{
    struct client_v5 *v5 = cl->_v5;
    RM_ASSERT(v5 != NULL && c->version == MQTT_V5);
    if (v5->auth_step == AUTH_STEP_DONE) {
        v5->auth_step = 0;
        return 1;
    }
    v5->auth = auth_find(b->lim, &c->props.auth_method);
    if (!v5->auth)
        return connect_refuse(b, cl, -MQTT_RC_BAD_AUTH_METHOD); /* [MQTT-4.12.0-1] */
    struct mqtt_str out;
    enum auth_result r = v5->auth->step(0, &c->props.auth_data, &out);
    if (r == AUTH_OK)
        return 1;
    if (r == AUTH_FAIL)
        return connect_refuse(b, cl, -MQTT_RC_NOT_AUTHORIZED);
    RM_ASSERT(raw != NULL && raw_len > 0);
    v5->auth_connect = malloc(raw_len);
    if (!v5->auth_connect)
        return connect_refuse(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    memcpy(v5->auth_connect, raw, raw_len);
    v5->auth_connect_len = raw_len;
    v5->auth_step = 1;
    /* The connect timeout still runs: a client that stalls here is closed. */
    return send_auth(b, cl, MQTT_RC_CONTINUE_AUTH, &out);
}

static int on_connect(struct broker *b, struct client *cl, const struct mqtt_connect *c,
                      const uint8_t *raw, uint32_t raw_len);

/* The exchange for a pending CONNECT succeeded: handle the CONNECT now. */
static int connect_resume(struct broker *b, struct client *cl)
{
    struct client_v5 *v5 = cl->_v5;
    RM_ASSERT(v5 && v5->auth_connect);
    RM_ASSERT(cl->state == CLIENT_NEW);
    uint8_t *raw = v5->auth_connect;
    struct mqtt_fixed fh;
    struct mqtt_pkt pkt;
    v5->auth_connect = NULL;
    v5->auth_step = AUTH_STEP_DONE;
    int r = mqtt_fixed_parse(raw, v5->auth_connect_len, UINT32_MAX, &fh);
    RM_ASSERT(r > 0);
    int rc = mqtt_decode(&fh, raw + r, 0, &pkt);
    RM_ASSERT(rc == 0 && pkt.type == MQTT_CONNECT);
    rc = on_connect(b, cl, &pkt.u.connect, NULL, 0);
    free(raw);
    return rc;
}

static int on_auth(struct broker *b, struct client *cl, const struct mqtt_ack *a)
{
    struct client_v5 *v5 = cl->_v5;
    RM_ASSERT(cl->version == MQTT_V5);
    bool connecting = cl->state == CLIENT_NEW;
    /* Only within the method the CONNECT chose [MQTT-4.12.0-1, 4.12.1-1]. */
    if (!v5 || !v5->auth || !(a->props.has & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD)) ||
        auth_find(b->lim, &a->props.auth_method) != v5->auth)
        return client_close(b, cl, -MQTT_RC_PROTOCOL_ERROR);
    uint8_t step;
    if (a->rc == MQTT_RC_REAUTHENTICATE && !connecting && v5->auth_step == 0)
        step = 0;
    else if (a->rc == MQTT_RC_CONTINUE_AUTH && v5->auth_step > 0)
        step = v5->auth_step;
    else
        return client_close(b, cl, -MQTT_RC_PROTOCOL_ERROR);
    struct mqtt_str out;
    enum auth_result r = v5->auth->step(step, &a->props.auth_data, &out);
    if (r == AUTH_CONTINUE) {
        if (step == 0 && !connecting)
            v5->auth_deadline_ms = b->now_ms + b->lim->connect_timeout_ms;
        v5->auth_step = (uint8_t)(step + 1 < AUTH_STEP_DONE ? step + 1 : AUTH_STEP_DONE - 1);
        return send_auth(b, cl, MQTT_RC_CONTINUE_AUTH, &out);
    }
    v5->auth_step = 0;
    if (r == AUTH_FAIL)
        return connecting ? connect_refuse(b, cl, -MQTT_RC_NOT_AUTHORIZED)
                          : client_close(b, cl, -MQTT_RC_NOT_AUTHORIZED);
    return connecting ? connect_resume(b, cl) : send_auth(b, cl, MQTT_RC_SUCCESS, NULL);
}

static int on_connect(struct broker *b, struct client *cl, const struct mqtt_connect *c,
                      const uint8_t *raw, uint32_t raw_len)
{
    RM_ASSERT(cl->state == CLIENT_NEW);
    RM_ASSERT(c->version == MQTT_V31 || c->version == MQTT_V311 || c->version == MQTT_V5);
    const struct limits *lim = b->lim;
    bool v5 = c->version == MQTT_V5;
    uint8_t assigned[ASSIGNED_ID_BYTES_MAX];
    const uint8_t *id = c->client_id.ptr;
    size_t id_len = c->client_id.len;
    bool id_assigned = false;
    int rc;

    cl->version = c->version;
    if (id_len == 0) {
        /*
         * 3.1 requires an id; 3.1.1 only with clean session [MQTT-3.1.3-7,
         * -8]; v5 with either Clean Start [MQTT-3.1.3-6 (v5)].
         */
        if (c->version == MQTT_V31 || (!v5 && !c->clean_session) ||
            !lim->allow_zero_length_client_id)
            return connect_refuse(b, cl, -MQTT_RC_CLIENT_ID_NOT_VALID);
        id_len = assign_client_id(b, assigned, sizeof(assigned));
        id = assigned;
        id_assigned = true;
    } else if (id_len > lim->client_id_bytes_max) {
        return connect_refuse(b, cl, -MQTT_RC_CLIENT_ID_NOT_VALID);
    } else {
        uint32_t home = broker_home_shard(id, id_len, b->shard_count);
        if (home != b->shard_id) {
            /* The home shard decides takeover and owns the session. */
            cl->state = CLIENT_HANDOFF;
            cl->handoff_shard = home;
            cl->version = 0;
            return BROKER_FEED_HANDOFF;
        }
    }
    if (v5 && !cl->_v5 && connect_v5(cl, c) < 0)
        return connect_refuse(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    if (v5 && (c->props.has & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD))) {
        rc = connect_auth(b, cl, c, raw, raw_len);
        if (rc != 1)
            return rc;
    }
    if (c->will) {
        if (topic_name_check(c->will_topic.ptr, c->will_topic.len, lim) < 0)
            return v5 ? connect_refuse(b, cl, -MQTT_RC_TOPIC_NAME_INVALID)
                      : client_close(b, cl, -MQTT_RC_TOPIC_NAME_INVALID);
        if (c->will_qos > lim->max_qos) /* [MQTT-3.2.2-12] */
            return connect_refuse(b, cl, -MQTT_RC_QOS_NOT_SUPPORTED);
        if (c->will_retain && !lim->retain_available) /* [MQTT-3.2.2-13] */
            return connect_refuse(b, cl, -MQTT_RC_RETAIN_NOT_SUPPORTED);
    }
    struct msg *will = NULL;
    if (c->will) {
        will = new_msg(b, &c->will_topic, &c->will_payload, &c->will_props, c->will_qos,
                       c->will_retain, true);
        if (!will)
            return connect_refuse(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    }

    uint32_t expiry_s = c->clean_session ? 0 : SESSION_EXPIRY_NEVER;
    if (v5)
        expiry_s = c->props.session_expiry; /* absent: 0 [MQTT-3.1.2-11 (v5)] */
    uint64_t h = id_hash(id, id_len);
    struct session *s = *sess_slot(b, id, id_len, h);
    if (s && s->client) {
        /* Takeover: the existing connection is closed [MQTT-3.1.4-2]. */
        struct client *old = s->client;
        old->_sess = NULL;
        s->client = NULL;
        session_settle(s);
        if (old->_will && old->_v5 && old->_v5->will_delay_s > 0 && !c->clean_session &&
            s->expiry_s > 0) {
            /* The session goes on: a delayed will is not sent [MQTT-3.1.3-9]. */
            broker__msg_put(b, old->_will);
            old->_will = NULL;
        }
        client_close(b, old, -MQTT_RC_SESSION_TAKEN_OVER);
        b->stats.clients--;
        b->stats.takeovers++;
    }
    if (s && (c->clean_session || s->expiry_s == 0)) {
        /* Clean Start, or a session that ended with its connection. */
        session_end(b, s);
        s = NULL;
    }
    bool present = s != NULL;
    if (s) {
        /* Back in time: no expiry, no delayed will [MQTT-3.1.3-9]. */
        timed_unlink(b, s);
        s->expire_at_ms = 0;
        broker__msg_put(b, s->will);
        s->will = NULL;
        s->expiry_s = expiry_s;
    } else {
        s = session_new(id, id_len, h, expiry_s);
        if (!s) {
            broker__msg_put(b, will);
            return connect_refuse(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
        }
        sess_insert(b, s);
    }
    s->client = cl;
    cl->_sess = s;
    cl->_will = will;
    cl->keepalive_s = c->keepalive_s;
    bool keepalive_set = false;
    if (v5 && lim->keepalive_max_s &&
        (c->keepalive_s == 0 || c->keepalive_s > lim->keepalive_max_s)) {
        /* Server Keep Alive: the client must use ours [MQTT-3.2.2-21]. */
        cl->keepalive_s = lim->keepalive_max_s;
        keepalive_set = true;
    }
    cl->state = CLIENT_CONNECTED;
    b->stats.connects++;
    b->stats.clients++;

    struct mqtt_props props = {0};
    if (v5)
        connack_props(b, cl, id_assigned ? id : NULL, id_len, keepalive_set, &props);
    /* Session present is 0 for a clean session [MQTT-3.2.2-1], else [-2, -3]. */
    rc = send_connack(b, cl, present, MQTT_CONNACK_ACCEPTED, &props);
    if (rc == 0 && present)
        rc = session_resume(b, s);
    if (rc < 0)
        return client_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    return 0;
}

/*
 * Resolve an inbound Topic Alias (MQTT 5.0 section 3.3.2.3.4): a topic with
 * an alias sets it, an empty topic uses it. Returns 0 or a negative mqtt_rc.
 */
static int alias_in(struct broker *b, struct client *cl, struct mqtt_publish *pub)
{
    struct client_v5 *v5 = cl->_v5;
    uint16_t alias = pub->props.topic_alias;
    RM_ASSERT(v5 != NULL);
    RM_ASSERT(pub->props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS));
    if (alias == 0 || alias > b->lim->topic_alias_max)
        return -MQTT_RC_TOPIC_ALIAS_INVALID; /* [MQTT-3.3.2-8, -9] */
    if (!v5->alias_in) {
        v5->alias_in = calloc(b->lim->topic_alias_max, sizeof(*v5->alias_in));
        if (!v5->alias_in)
            return -MQTT_RC_SERVER_BUSY;
        v5->alias_in_cap = b->lim->topic_alias_max;
    }
    if (alias > v5->alias_in_cap)
        return -MQTT_RC_TOPIC_ALIAS_INVALID; /* the maximum this connection was told */
    struct mqtt_str *slot = &v5->alias_in[alias - 1];
    if (pub->topic.len == 0) {
        if (!slot->ptr)
            return -MQTT_RC_PROTOCOL_ERROR; /* an alias never set */
        pub->topic = *slot;
        return 0;
    }
    uint8_t *copy = malloc(pub->topic.len);
    if (!copy)
        return -MQTT_RC_SERVER_BUSY;
    memcpy(copy, pub->topic.ptr, pub->topic.len);
    free((void *)slot->ptr);
    *slot = (struct mqtt_str){copy, pub->topic.len};
    return 0;
}

/* MQTT 5.0 rules a PUBLISH from a client must keep; 0 or a negative mqtt_rc. */
static int publish_v5_check(struct broker *b, struct client *cl, struct mqtt_publish *pub)
{
    const struct mqtt_props *pr = &pub->props;
    RM_ASSERT(cl->version == MQTT_V5);
    RM_ASSERT(pub->qos <= 2);
    if (pr->has & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID))
        return -MQTT_RC_PROTOCOL_ERROR; /* [MQTT-3.3.4-6] */
    if ((pr->has & MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC)) &&
        topic_name_check(pr->response_topic.ptr, pr->response_topic.len, b->lim) < 0)
        return -MQTT_RC_PROTOCOL_ERROR; /* no wildcards [MQTT-3.3.2-14] */
    if (pr->has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS))
        return alias_in(b, cl, pub);
    return pub->topic.len == 0 ? -MQTT_RC_PROTOCOL_ERROR : 0;
}

static int on_publish(struct broker *b, struct client *cl, struct mqtt_publish *pub)
{
    struct session *s = cl->_sess;
    RM_ASSERT(s != NULL);
    RM_ASSERT(pub->qos <= 2);
    int rc = 0;
    if (pub->qos > b->lim->max_qos)
        return client_close(b, cl, -MQTT_RC_QOS_NOT_SUPPORTED); /* [MQTT-3.2.2-11] */
    if (pub->retain && !b->lim->retain_available)
        return client_close(b, cl, -MQTT_RC_RETAIN_NOT_SUPPORTED); /* [MQTT-3.2.2-14] */
    if (cl->version == MQTT_V5)
        rc = publish_v5_check(b, cl, pub);
    if (rc == 0)
        rc = topic_name_check(pub->topic.ptr, pub->topic.len, b->lim);
    if (rc < 0)
        return client_close(b, cl, rc);
    bool route = true;
    if (pub->qos == 2) {
        rc = session_qos2_in_add(b, s, pub->pkt_id);
        if (rc < 0)
            return client_close(b, cl, rc == -ENOMEM ? -MQTT_RC_SERVER_UNAVAILABLE : rc);
        /* A duplicate is acknowledged again but not routed again [MQTT-4.3.3-2]. */
        route = rc == 1;
    }
    uint8_t ack = pub->qos == 2 ? MQTT_PUBREC : pub->qos == 1 ? MQTT_PUBACK : 0;
    uint64_t token = 0;
    if (route && pub->retain && b->shard_count > 1) {
        /*
         * Acknowledge (if QoS > 0) and read on only once every shard's
         * replica has it (see broker.waits): even at QoS 0 this
         * connection's next SUBSCRIBE must see it.
         */
        token = wait_new(b, cl, ack, pub->pkt_id, b->shard_count);
        if (!token)
            goto out_fail;
    }
    if (route && publish(b, s, pub, token) < 0) {
        if (token)
            wait_cancel(b, cl);
        goto out_fail;
    }
    if (token)
        return BROKER__HOLD;
    rc = ack ? broker__send_ack(b, cl, ack, pub->pkt_id) : 0;
    return rc < 0 ? client_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE) : 0;

out_fail:
    /* Not routed: a resend of this QoS 2 id must not count as a duplicate. */
    if (route && pub->qos == 2)
        session_on_pubrel(s, pub->pkt_id);
    return client_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
}

struct retained_ctx {
    struct broker *b;
    struct session *s;
    uint8_t qos;
};

static void retained_cb(void *ctx, struct msg *m)
{
    struct retained_ctx *rc = ctx;
    uint8_t qos = m->qos < rc->qos ? m->qos : rc->qos;
    /* Retained messages sent for a new subscription carry RETAIN 1 [MQTT-3.3.1-8]. */
    session_deliver(rc->b, rc->s, m, qos, true, 0);
}

/* Room for @n reason codes in b->rcs; false on ENOMEM. */
static bool rcs_reserve(struct broker *b, uint32_t n)
{
    RM_ASSERT(n > 0);
    if (b->rcs_cap < n) {
        uint8_t *p = realloc(b->rcs, n);
        if (!p)
            return false;
        b->rcs = p;
        b->rcs_cap = n;
    }
    RM_ASSERT(b->rcs != NULL);
    return true;
}

/* A refused filter's SUBACK code: the v5 reason, or 0x80 before v5 [MQTT-3.9.3-2]. */
static uint8_t suback_fail(const struct client *cl, uint8_t v5_rc)
{
    RM_ASSERT(v5_rc >= 0x80);
    return cl->version == MQTT_V5 ? v5_rc : MQTT_SUBACK_FAILURE;
}

/*
 * Subscribe @s to one SUBSCRIBE entry; returns its SUBACK code, or 0 with
 * @cl closing (No Local on a shared subscription).
 */
static uint8_t subscribe_one(struct broker *b, struct client *cl, const struct mqtt_sub_entry *e,
                             uint32_t sub_id)
{
    const struct limits *lim = b->lim;
    uint8_t opts = e->options;
    RM_ASSERT((opts & MQTT_SUBOPT_QOS) <= 2);
    struct share_name sn = {.filter = e->filter.ptr, .filter_len = e->filter.len};
    int shared = share_parse(e->filter.ptr, e->filter.len, &sn);
    if (shared < 0 || topic_filter_check(sn.filter, sn.filter_len, lim) < 0)
        return suback_fail(cl, MQTT_RC_TOPIC_FILTER_INVALID);
    if (shared && !lim->shared_subscriptions)
        return suback_fail(cl, MQTT_RC_SHARED_SUBS_NOT_SUPPORTED);
    if (!lim->wildcard_subscriptions &&
        (memchr(sn.filter, '+', sn.filter_len) || memchr(sn.filter, '#', sn.filter_len)))
        return suback_fail(cl, MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED); /* section 3.2.2.3.14 */
    /* No Local on a shared filter never gets here: the codec refuses it [MQTT-3.8.3-4]. */
    if ((opts & MQTT_SUBOPT_QOS) > lim->max_qos) /* granted lower [MQTT-3.2.2-9] */
        opts = (uint8_t)((opts & ~MQTT_SUBOPT_QOS) | lim->max_qos);
    int rc = session_subscribe(b, cl->_sess, e->filter.ptr, e->filter.len, opts, sub_id);
    if (rc == -ENOSPC)
        return suback_fail(cl, MQTT_RC_QUOTA_EXCEEDED);
    if (rc < 0)
        return suback_fail(cl, MQTT_RC_UNSPECIFIED);
    return opts & MQTT_SUBOPT_QOS;
}

static int on_subscribe(struct broker *b, struct client *cl, const struct mqtt_pkt *pkt)
{
    struct session *s = cl->_sess;
    const struct mqtt_subscribe *sub = &pkt->u.subscribe;
    RM_ASSERT(s != NULL);
    RM_ASSERT(sub->count > 0);
    uint32_t sub_id = 0;
    if (sub->props.has & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)) {
        if (!b->lim->subscription_identifiers) /* section 3.2.2.3.15 */
            return client_close(b, cl, -MQTT_RC_SUBSCRIPTION_IDS_NOT_SUPPORTED);
        sub_id = sub->props.sub_id;
    }
    if (!rcs_reserve(b, sub->count))
        return client_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    struct mqtt_sub_iter it;
    struct mqtt_sub_entry e;
    uint32_t i = 0;
    b->sub_client = cl;
    b->sub_token = 0;
    mqtt_sub_iter_init(&it, pkt);
    while (mqtt_sub_next(&it, &e) && cl->state != CLIENT_CLOSING) {
        RM_ASSERT(i < sub->count);
        b->rcs[i++] = subscribe_one(b, cl, &e, sub_id);
    }
    b->sub_client = NULL;
    if (cl->state == CLIENT_CLOSING) {
        if (b->sub_token) {
            b->sub_token = 0; /* the wait completes without anyone to answer */
            b->waits[cl->_wait - 1].cl = NULL;
            if (b->waits[cl->_wait - 1].remaining == 0)
                wait_release(b, &b->waits[cl->_wait - 1]);
            cl->_wait = 0;
        }
        return cl->close_rc;
    }
    RM_ASSERT(i == sub->count);
    if (b->sub_token) {
        b->sub_token = 0;
        if (b->waits[cl->_wait - 1].remaining > 0) {
            /*
             * New filters for this shard: hold the client until every other
             * shard has them, then handle this SUBSCRIBE again - a plain
             * replace by then - which answers SUBACK and sends the retained.
             */
            return BROKER__REDO;
        }
        wait_cancel(b, cl); /* nothing was sent (out of memory): answer now */
    }

    struct mqtt_pkt ack = {.type = MQTT_SUBACK};
    ack.u.suback = (struct mqtt_suback){.pkt_id = sub->pkt_id, .count = i, .rcs = b->rcs};
    if (broker__send(b, cl, &ack, broker__output_hard_max(b)) < 0)
        return client_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);

    /* Then the retained messages of each granted filter [MQTT-3.8.4-4]. */
    i = 0;
    mqtt_sub_iter_init(&it, pkt);
    while (mqtt_sub_next(&it, &e)) {
        if (b->rcs[i++] >= 0x80)
            continue;
        struct session_sub *ss = session_sub_find(s, e.filter.ptr, e.filter.len);
        RM_ASSERT(ss != NULL);
        bool fresh = ss->fresh;
        ss->fresh = false;
        /* A new shared subscription gets no retained messages (section 3.3.1.3). */
        if (ss->share_key)
            continue;
        /* Retain Handling: 0 always, 1 only for a new subscription, 2 never [MQTT-3.3.1-9..11]. */
        uint8_t rh = (uint8_t)(ss->options >> MQTT_SUBOPT_RH_SHIFT) & 3;
        if (rh == 2 || (rh == 1 && !fresh))
            continue;
        struct retained_ctx ctx = {b, s, ss->options & MQTT_SUBOPT_QOS};
        retained_match(b->retained, e.filter.ptr, e.filter.len, retained_cb, &ctx);
    }
    return 0;
}

static int on_unsubscribe(struct broker *b, struct client *cl, const struct mqtt_pkt *pkt)
{
    struct session *s = cl->_sess;
    RM_ASSERT(s != NULL);
    RM_ASSERT(pkt->u.subscribe.count > 0);
    bool v5 = cl->version == MQTT_V5;
    if (v5 && !rcs_reserve(b, pkt->u.subscribe.count))
        return client_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    struct mqtt_sub_iter it;
    struct mqtt_sub_entry e;
    uint32_t i = 0;
    mqtt_sub_iter_init(&it, pkt);
    while (mqtt_sub_next(&it, &e)) {
        bool had = session_unsubscribe(b, s, e.filter.ptr, e.filter.len);
        if (v5)
            b->rcs[i++] = had ? MQTT_RC_SUCCESS : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
    }
    /* UNSUBACK even when nothing matched [MQTT-3.10.4-5]. */
    struct mqtt_pkt ack = {.type = MQTT_UNSUBACK};
    ack.u.suback = (struct mqtt_suback){.pkt_id = pkt->u.subscribe.pkt_id, .count = i,
                                        .rcs = b->rcs};
    if (broker__send(b, cl, &ack, broker__output_hard_max(b)) < 0)
        return client_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    return 0;
}

static int on_disconnect(struct broker *b, struct client *cl, const struct mqtt_ack *d)
{
    struct session *s = cl->_sess;
    RM_ASSERT(s != NULL);
    RM_ASSERT(cl->version == MQTT_V5 || d->rc == 0);
    if (d->props.has & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY)) {
        /* Not from 0 to more: the session is already bound to end [MQTT-3.14.2-2]. */
        if (s->expiry_s == 0 && d->props.session_expiry != 0)
            return client_close(b, cl, -MQTT_RC_PROTOCOL_ERROR);
        s->expiry_s = d->props.session_expiry;
    }
    /* Only 0x00 discards the will; 0x04 and errors publish it [MQTT-3.14.4-3, 3.1.2-8]. */
    if (d->rc == MQTT_RC_SUCCESS) {
        broker__msg_put(b, cl->_will); /* not published [MQTT-3.1.2-10] */
        cl->_will = NULL;
    }
    client_close(b, cl, 1);
    return 1;
}

static int on_packet(struct broker *b, struct client *cl, const struct mqtt_fixed *fh,
                     const uint8_t *body)
{
    struct mqtt_pkt pkt;
    int rc = mqtt_decode(fh, body, cl->version, &pkt);
    b->stats.pkts_in++;
    if (rc == -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION && cl->state == CLIENT_NEW)
        return connect_refuse(b, cl, rc); /* CONNACK 0x01 [MQTT-3.1.2-2] */
    if (rc < 0)
        return client_close(b, cl, rc); /* No CONNACK for a bad CONNECT [MQTT-3.1.4-1] */
    if (cl->state == CLIENT_NEW && pkt.type != MQTT_CONNECT) {
        /* Between CONNECT and CONNACK only the AUTH exchange (section 4.12). */
        RM_ASSERT(cl->version == MQTT_V5);
        if (pkt.type == MQTT_AUTH)
            return on_auth(b, cl, &pkt.u.ack);
        return client_close(b, cl, -MQTT_RC_PROTOCOL_ERROR);
    }
    RM_ASSERT(cl->state == CLIENT_CONNECTED || pkt.type == MQTT_CONNECT);
    if (cl->_v5 && cl->_v5->auth_step && cl->state == CLIENT_CONNECTED &&
        b->now_ms > cl->_v5->auth_deadline_ms) {
        /*
         * A re-authentication left unanswered for connect_timeout_ms: the
         * next packet ends the connection (a silent one meets keep alive).
         */
        return client_close(b, cl, -MQTT_RC_NOT_AUTHORIZED);
    }

    struct session *s = cl->_sess;
    switch (pkt.type) {
    case MQTT_CONNECT:
        return on_connect(b, cl, &pkt.u.connect, body - fh->hdr_bytes,
                          fh->hdr_bytes + fh->body_bytes);
    case MQTT_PUBLISH:
        return on_publish(b, cl, &pkt.u.publish);
    case MQTT_PUBACK:
        rc = session_on_puback(b, s, pkt.u.ack.pkt_id);
        break;
    case MQTT_PUBREC:
        rc = session_on_pubrec(b, s, pkt.u.ack.pkt_id, pkt.u.ack.rc);
        break;
    case MQTT_PUBREL:
        /* PUBCOMP even for an unknown id, so the sender can finish. */
        session_on_pubrel(s, pkt.u.ack.pkt_id);
        rc = broker__send_ack(b, cl, MQTT_PUBCOMP, pkt.u.ack.pkt_id);
        break;
    case MQTT_PUBCOMP:
        rc = session_on_pubcomp(b, s, pkt.u.ack.pkt_id);
        break;
    case MQTT_SUBSCRIBE:
        return on_subscribe(b, cl, &pkt);
    case MQTT_UNSUBSCRIBE:
        return on_unsubscribe(b, cl, &pkt);
    case MQTT_PINGREQ:
        rc = broker__send(b, cl, &(struct mqtt_pkt){.type = MQTT_PINGRESP},
                          broker__output_hard_max(b));
        break;
    case MQTT_DISCONNECT:
        return on_disconnect(b, cl, &pkt.u.ack);
    case MQTT_AUTH:
        return on_auth(b, cl, &pkt.u.ack);
    default:
        return client_close(b, cl, -MQTT_RC_PROTOCOL_ERROR);
    }
    return rc < 0 ? client_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE) : 0;
}

/* ---- framing ---- */

void broker_client_init(struct broker *b, struct client *cl)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(cl != NULL);
    memset(cl, 0, sizeof(*cl));
    cl->state = CLIENT_NEW;
}

static int feed_result(const struct client *cl)
{
    if (cl->state == CLIENT_HANDOFF)
        return BROKER_FEED_HANDOFF;
    return cl->close_rc < 0 ? cl->close_rc : BROKER_FEED_CLOSE;
}

/*
 * Keep bytes of a connection being handed to another shard. They wait in
 * cl->out, which is never sent in this state, bounded by output_bytes_max.
 */
static int handoff_keep(struct broker *b, struct client *cl, const uint8_t *p, size_t len)
{
    RM_ASSERT(cl->state == CLIENT_HANDOFF);
    if (len == 0)
        return BROKER_FEED_HANDOFF;
    uint8_t *dst = obuf_reserve(&cl->out, len, b->lim->output_bytes_max);
    if (!dst) {
        /* Too much pipelined behind the CONNECT: refuse it here instead. */
        obuf_free(&cl->out); /* the kept input, never to be sent back */
        cl->state = CLIENT_NEW;
        return client_close(b, cl, -MQTT_RC_SERVER_BUSY);
    }
    memcpy(dst, p, len);
    obuf_commit(&cl->out, len);
    return BROKER_FEED_HANDOFF;
}

/* Keep bytes that arrive while @cl is held, bounded by output_bytes_max. */
static int held_keep(struct broker *b, struct client *cl, const uint8_t *p, size_t len)
{
    RM_ASSERT(cl->_wait != 0);
    if (len == 0)
        return 0;
    uint8_t *dst = obuf_reserve(&cl->_held, len, b->lim->output_bytes_max);
    if (!dst)
        return client_close(b, cl, -MQTT_RC_SERVER_BUSY);
    memcpy(dst, p, len);
    obuf_commit(&cl->_held, len);
    return 0;
}

/*
 * Complete a packet split across reads: first its fixed header (at most 5
 * bytes, kept inline), then its body in a buffer of exactly its size, and
 * handle it once whole. *@used gets the bytes taken from @buf. Returns 0 or
 * what on_packet() returned (the client then stops: closing or handoff).
 */
static int feed_partial(struct broker *b, struct client *cl, const uint8_t *buf, size_t len,
                        size_t *used)
{
    struct mqtt_fixed fh;
    *used = 0;
    if (!cl->_partial) {
        int r = 0;
        while (*used < len && cl->_partial_hdr_len < sizeof(cl->_partial_hdr)) {
            cl->_partial_hdr[cl->_partial_hdr_len++] = buf[(*used)++];
            r = mqtt_fixed_parse(cl->_partial_hdr, cl->_partial_hdr_len,
                                 b->lim->packet_bytes_max, &fh);
            if (r != 0)
                break;
        }
        if (r <= 0)
            return r < 0 ? client_close(b, cl, r) : 0;
        uint32_t total = (uint32_t)r + fh.body_bytes;
        cl->_partial = malloc(total);
        if (!cl->_partial)
            return client_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
        memcpy(cl->_partial, cl->_partial_hdr, cl->_partial_hdr_len);
        cl->_partial_len = cl->_partial_hdr_len;
        cl->_partial_need = total;
        cl->_partial_hdr_len = 0;
    }
    size_t n = cl->_partial_need - cl->_partial_len;
    if (n > len - *used)
        n = len - *used;
    memcpy(cl->_partial + cl->_partial_len, buf + *used, n);
    cl->_partial_len += (uint32_t)n;
    *used += n;
    if (cl->_partial_len < cl->_partial_need)
        return 0;

    int r = mqtt_fixed_parse(cl->_partial, cl->_partial_len, b->lim->packet_bytes_max, &fh);
    RM_ASSERT(r > 0 && (uint32_t)r + fh.body_bytes == cl->_partial_need);
    uint8_t *pkt = cl->_partial;
    uint32_t total = cl->_partial_need;
    cl->_partial = NULL;
    cl->_partial_len = cl->_partial_need = 0;
    int rc = on_packet(b, cl, &fh, pkt + r);
    if (rc == BROKER_FEED_HANDOFF)
        rc = handoff_keep(b, cl, pkt, total);
    if (rc == BROKER__REDO) {
        rc = held_keep(b, cl, pkt, total);
        rc = rc < 0 ? rc : BROKER__HOLD; /* the caller keeps the rest behind it */
    }
    free(pkt);
    return rc;
}

int broker_client_feed(struct broker *b, struct client *cl, const uint8_t *buf, size_t len)
{
    RM_ASSERT(b != NULL && cl != NULL);
    RM_ASSERT(buf != NULL || len == 0);
    if (cl->state == CLIENT_HANDOFF)
        return handoff_keep(b, cl, buf, len);
    if (cl->state == CLIENT_CLOSING)
        return feed_result(cl);
    if (cl->_wait)
        return held_keep(b, cl, buf, len);
    size_t pos = 0;
    int rc = 0;
    if (cl->_partial || cl->_partial_hdr_len) {
        rc = feed_partial(b, cl, buf, len, &pos);
        if (rc != 0 || cl->_partial || cl->_partial_hdr_len)
            goto out;
    }
    /* Each pass consumes at least a 2-byte header: bounded by @len. */
    while (pos < len) {
        struct mqtt_fixed fh;
        int r = mqtt_fixed_parse(buf + pos, len - pos, b->lim->packet_bytes_max, &fh);
        if (r < 0)
            return client_close(b, cl, r);
        if (r == 0 || (size_t)r + fh.body_bytes > len - pos) {
            size_t used;
            rc = feed_partial(b, cl, buf + pos, len - pos, &used);
            RM_ASSERT(rc != 0 || used == len - pos);
            pos += used;
            goto out;
        }
        rc = on_packet(b, cl, &fh, buf + pos + r);
        if (rc == BROKER_FEED_HANDOFF)
            return handoff_keep(b, cl, buf + pos, len - pos);
        if (rc == BROKER__REDO)
            return held_keep(b, cl, buf + pos, len - pos);
        pos += (size_t)r + fh.body_bytes;
        if (rc != 0)
            goto out;
    }
out:
    if (rc == BROKER_FEED_HANDOFF)
        return handoff_keep(b, cl, buf + pos, len - pos);
    if (rc == BROKER__HOLD)
        return held_keep(b, cl, buf + pos, len - pos);
    return rc == 0 ? 0 : feed_result(cl);
}

int broker_client_handoff_take(struct broker *b, struct client *cl, uint8_t **bytes,
                               uint32_t *len)
{
    RM_ASSERT(cl->state == CLIENT_HANDOFF);
    RM_ASSERT(cl->_sess == NULL && cl->_will == NULL && !cl->_partial);
    int rc = 0;
    *bytes = cl->out.data;
    *len = cl->out.len;
    if (!*bytes)
        rc = -ENOMEM; /* Nothing kept: cannot happen after a whole CONNECT. */
    cl->out = (struct obuf){0};
    b->stats.handoffs++;
    broker_client_gone(b, cl, 0);
    return rc;
}

void broker_client_gone(struct broker *b, struct client *cl, int reason)
{
    RM_ASSERT(b != NULL && cl != NULL);
    RM_ASSERT(cl->state != CLIENT_NEW || cl->_sess == NULL);
    RM_ASSERT(!cl->_sess || cl->_sess->client == cl);
    (void)reason;
    struct session *s = cl->_sess;
    struct msg *will = cl->_will; /* NULL after a normal DISCONNECT (on_disconnect) */
    cl->_will = NULL;
    if (s) {
        /* Detach first: a persistent session subscribed to its own will queues it. */
        b->stats.clients--;
        s->client = NULL;
        cl->_sess = NULL;
        session_settle(s);
        if (will && cl->_v5 && cl->_v5->will_delay_s > 0 && s->expiry_s > 0) {
            /* Delayed: sent later unless the session resumes first [MQTT-3.1.3-9]. */
            s->will = will;
            s->will_at_ms = b->now_ms + (uint64_t)cl->_v5->will_delay_s * 1000;
            will = NULL;
        }
        if (s->expiry_s == 0) {
            session_end(b, s); /* its shared-group messages go to others there */
        } else {
            /* Its unacknowledged shared-group messages go to other members. */
            session_share_redispatch(b, s);
            if (s->expiry_s != SESSION_EXPIRY_NEVER)
                s->expire_at_ms = b->now_ms + (uint64_t)s->expiry_s * 1000;
            uint64_t due = s->will ? s->will_at_ms : s->expire_at_ms;
            if (s->expire_at_ms && s->expire_at_ms < due)
                due = s->expire_at_ms;
            if (due) {
                timed_link(b, s);
                if (due < b->next_scan_ms)
                    b->next_scan_ms = due; /* a short delay is not late by a second */
            }
        }
    }
    if (will)
        publish_will(b, will); /* on every other end [MQTT-3.1.2-8] */
    if (cl->_wait) {
        /* The wait completes without anyone to acknowledge. */
        RM_ASSERT(b->waits[cl->_wait - 1].cl == cl);
        b->waits[cl->_wait - 1].cl = NULL;
        cl->_wait = 0;
    }
    client_v5_free(b, cl);
    obuf_free(&cl->_held);
    dirty_unlink(b, cl);
    obuf_free(&cl->out);
    free(cl->_partial);
    cl->_partial = NULL;
    cl->_partial_len = cl->_partial_need = 0;
    cl->_partial_hdr_len = 0;
    cl->state = CLIENT_CLOSING;
}
