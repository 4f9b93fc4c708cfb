/*
 * route.c - where a message goes (see route.h).
 *
 * The topic is split and hashed once; the trie reports every matching
 * (session, filter), and the session's match epoch folds overlapping
 * filters into one delivery at the highest granted QoS, carrying the
 * Subscription Identifiers the trie reported with them (a list per session
 * in the broker's match_ids), so a delivery costs nothing per subscription
 * that did not match. Owned by one shard; single-threaded.
 */
#include "core/route.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker_types.h"
#include "core/home.h"
#include "core/msg.h"
#include "core/mqtt_codec.h"
#include "core/outbox.h"
#include "core/replica.h"
#include "core/rpair.h"
#include "core/rm_assert.h"
#include "core/wait.h"
#include "core/session.h"
#include "core/share.h"
#include "core/trie.h"
#include "core/wal.h"
#include "core/xmsg.h"

/* The PUBLISH properties a message carries to its subscribers unchanged [MQTT-3.3.2-4 etc.]. */
#define FORWARDED_PROPS                                                                            \
    (MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) |             \
     MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC) | MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA) |         \
     MQTT_PROP_BIT(MQTT_PROP_USER))

struct msg *route_msg_new(struct broker *b, const struct mqtt_str *topic,
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

/* session._match_opts: an identifier of the session could not be kept (it goes without). */
#define MATCH_LOST 0x80u
_Static_assert(((MQTT_SUBOPT_QOS | MQTT_SUBOPT_RAP | SESSION_ACL_INLINE) & MATCH_LOST) == 0,
               "a spare bit");
_Static_assert(((MQTT_SUBOPT_QOS | MQTT_SUBOPT_RAP) & SESSION_ACL_INLINE) == 0, "a spare bit");

/* Members of a shared group tried for one message when the ACL denies the chosen one. */
#define SHARE_ACL_TRIES 8u

/* Add @sub_id to the identifiers of @sess, matched by the publish being routed. */
static void match_id_add(struct broker *b, struct session *sess, uint32_t sub_id)
{
    RM_ASSERT(sub_id != 0 && sess->_match_epoch == b->match_epoch);
    RM_ASSERT(b->match_id_count <= b->match_id_cap);
    if (b->match_id_count == b->match_id_cap) {
        /* b->sub_ids has room for every identifier, to gather one session's. */
        uint32_t ncap = b->match_id_cap ? b->match_id_cap * 2 : 16;
        struct broker_match_id *n = realloc(b->match_ids, (size_t)ncap * sizeof(*n));
        if (n)
            b->match_ids = n;
        uint32_t *ids = n ? realloc(b->sub_ids, (size_t)ncap * sizeof(*ids)) : NULL;
        if (ids)
            b->sub_ids = ids;
        if (!ids) {
            sess->_match_opts |= MATCH_LOST;
            return;
        }
        b->match_id_cap = ncap;
    }
    b->match_ids[b->match_id_count] = (struct broker_match_id){sub_id, sess->_match_ids};
    sess->_match_ids = ++b->match_id_count;
}

static void match_cb(void *ctx, void *owner, uint8_t options, uint32_t sub_id)
{
    struct broker *b = ctx;
    struct session *sess = owner;
    /* No Local: not back to the publishing client [MQTT-3.8.3-3]. */
    if ((options & MQTT_SUBOPT_NO_LOCAL) && sess == b->publisher)
        return;
    /*
     * A subscription the ACL may deny some topics of: asked once per
     * session and message (the verdict is kept for this match epoch). A
     * topic it denies no fully allowed subscription can match, so the
     * session gets nothing.
     */
    if ((options & SESSION_SUBOPT_ACL_CHECK) &&
        !session_acl_read(b, sess, b->match_topic, b->match_topic_len, b->match_epoch))
        return;
    uint8_t opts = options & (MQTT_SUBOPT_QOS | MQTT_SUBOPT_RAP);
    if (sess->_match_epoch == b->match_epoch) {
        if ((opts & MQTT_SUBOPT_QOS) > (sess->_match_opts & MQTT_SUBOPT_QOS))
            sess->_match_opts =
                (uint8_t)((sess->_match_opts & ~MQTT_SUBOPT_QOS) | (opts & MQTT_SUBOPT_QOS));
        sess->_match_opts |= opts & MQTT_SUBOPT_RAP;
    } else {
        if (b->match_count == b->match_cap) {
            uint32_t ncap = b->match_cap ? b->match_cap * 2 : 64;
            struct session **n = realloc(b->match, ncap * sizeof(*n));
            if (!n)
                return; /* Out of memory: this subscriber misses the message. */
            b->match = n;
            b->match_cap = ncap;
        }
        sess->_match_epoch = b->match_epoch;
        sess->_match_opts = (uint8_t)((sess->_match_opts & SESSION_ACL_INLINE) | opts);
        sess->_match_ids = 0;
        b->match[b->match_count++] = sess;
    }
    if (sub_id)
        match_id_add(b, sess, sub_id);
}

static void interest_cb(void *ctx, void *owner, uint8_t options, uint32_t sub_id)
{
    struct broker *b = ctx;
    (void)options;
    (void)sub_id;
    uint32_t shard = (uint32_t)((uint8_t *)owner - b->shard_marker);
    RM_ASSERT(shard < b->shard_count && shard != b->shard_id);
    uint64_t bit = 1ull << (shard % 64);
    if (b->shard_hit[shard / 64] & bit)
        return;
    b->shard_hit[shard / 64] |= bit;
    b->remote[b->remote_count++] = shard;
}

static void pick_cb(void *ctx, uint64_t key, uint32_t shard, void *member, uint8_t options,
                    uint32_t sub_id)
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
    b->picks[b->pick_count++] = (struct broker_share_pick){key, member, shard, sub_id, options};
}

/*
 * Match @topic against this shard's sessions (b->match) and, if @remote
 * (the message was published here), other shards' and the shared groups
 * (b->picks: one member per group, anywhere).
 */
static void match(struct broker *b, const struct mqtt_str *topic, bool remote)
{
    RM_ASSERT(b->match_count == 0 && b->remote_count == 0 && b->pick_count == 0);
    RM_ASSERT(topic->len > 0 && b->match_id_count == 0);
    if (++b->match_epoch == 0)
        b->match_epoch = 1; /* 0 is every session's initial epoch */
    b->match_topic = topic->ptr;
    b->match_topic_len = topic->len;
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

/*
 * While a client's QoS 1/2 publish is routed (b->hold_on), remember each
 * congested shard it crosses to: the publisher is held until those links
 * drain (wait_link_hold()).
 */
static void note_crossing(struct broker *b, uint32_t dest)
{
    RM_ASSERT(dest < b->shard_count && dest != b->shard_id);
    RM_ASSERT(b->hold_count <= b->shard_count);
    if (!b->hold_on || !wait_congested(b->congested, dest))
        return;
    for (uint32_t i = 0; i < b->hold_count; i++) {
        if (b->hold[i] == dest)
            return;
    }
    RM_ASSERT(b->hold_count < b->shard_count);
    b->hold[b->hold_count++] = dest;
}

/*
 * The wait on this shard that a shared group's message sent on now owes an
 * acknowledgement (fsync = always): the publisher's (b->wal_token), or, for
 * a crossing from another shard that carried its wait (b->relay_token), a
 * relay made once per crossing. 0: none (no sync, or no memory for the
 * relay: the wait it would stand for fails instead, never acknowledged
 * before the shard it goes to has logged it).
 */
static uint64_t share_token(struct broker *b)
{
    if (b->wal_token)
        return b->wal_token;
    if (b->relay_token && !b->relay_wait && !b->relay_failed) {
        b->relay_wait = wait_relay(b, b->relay_dest, b->relay_token, 1); /* 1: ours */
        if (!b->relay_wait) {
            b->relay_failed = true; /* settled by the caller (xrecv.c) */
            outbox_nack(b, b->relay_dest, b->relay_token);
        }
    }
    return b->relay_token ? b->relay_wait : 0;
}

/*
 * Send @m to shard @dest for one member of shared group @key, passed on
 * @hops times, owing wait @token (0: none) an acknowledgement.
 */
static void send_share(struct broker *b, uint32_t dest, struct msg *m, uint64_t key, uint32_t hops,
                       uint64_t token)
{
    struct xmsg x = {.kind = XMSG_SHARE_PUBLISH, .arg = hops};
    x.payload.share.msg = msg_ref(m);
    x.payload.share.key = key;
    x.payload.share.token = token;
    if (token)
        wait_add(b, token, 1);
    outbox_push(b, dest, &x);
    note_crossing(b, dest);
}

/*
 * The one crossing of @m to shard @dest (a new reference): for its plain
 * subscribers if @plain, and for one member of each shared group @keys[0..@n)
 * chosen there.
 */
static void send_crossing(struct broker *b, uint32_t dest, struct msg *m, bool plain,
                          const uint64_t *keys, uint32_t n)
{
    RM_ASSERT(plain || n > 0);
    RM_ASSERT(keys != NULL || n == 0);
    /* The publisher's durability wait rides as the last key (XMSG_PUBLISH_TOKEN). */
    uint64_t token = b->wal_token;
    uint32_t more = n > 1 ? n - 1 : 0;
    if (more > XMSG_PUBLISH_MORE - 1)
        more = XMSG_PUBLISH_MORE - 1;
    uint32_t slots = more + (token && n > 0);
    uint64_t *list = NULL;
    if (slots > 0 && !(list = malloc(slots * sizeof(*list)))) {
        /* Out of memory: each group crosses on its own, with the publisher's wait. */
        b->stats.route_nomem++;
        if (plain)
            send_crossing(b, dest, m, true, NULL, 0);
        for (uint32_t i = 0; i < n; i++)
            send_share(b, dest, m, keys[i], 0, share_token(b));
        return;
    }
    struct xmsg x = {.kind = XMSG_PUBLISH, .arg = plain ? XMSG_PUBLISH_PLAIN : 0};
    x.payload.publish.msg = msg_ref(m);
    x.payload.publish.key = n > 0 ? keys[0] : token;
    if (list) {
        if (more)
            memcpy(list, keys + 1, more * sizeof(*keys));
        if (token && n > 0)
            list[more] = token;
        x.payload.publish.more = list;
        x.arg |= slots;
    }
    if (token) {
        x.arg |= XMSG_PUBLISH_TOKEN;
        wait_add(b, token, 1);
    }
    outbox_push(b, dest, &x);
    note_crossing(b, dest);
    b->stats.xmsg_publish_out++;
    /* Past 65536 groups: the rest cross on their own. */
    for (uint32_t i = 1 + more; i < n; i++)
        send_share(b, dest, m, keys[i], 0, share_token(b));
}

/*
 * Deliver @m to @s, subscribed with @options: at the lower of the two QoS,
 * RETAIN 0 unless Retain As Published [MQTT-3.3.1-12, -13]; through shared
 * group @key, or 0 for the session's own subscriptions; with the @n
 * Subscription Identifiers @ids of the subscriptions that matched.
 */
static void deliver_one(struct broker *b, struct session *s, struct msg *m, uint8_t options,
                        uint64_t key, const uint32_t *ids, uint32_t n)
{
    /*
     * A resend after a crash of what this session (or its group) already
     * had (core/wal.h): not again. Routing only: a retained copy sent for
     * a later SUBSCRIBE is another matter.
     */
    if (m->origin && b->origin_has_count && wal_origin_had(b, m->origin, key ? key : s->_hash))
        return;
    uint8_t qos = options & MQTT_SUBOPT_QOS;
    if (qos > m->qos)
        qos = m->qos;
    session_deliver(b, s, m, qos, m->retain && (options & MQTT_SUBOPT_RAP), key, ids, n);
}

/*
 * Member @to of shared group @key, chosen for @m with @options: itself when
 * the ACL lets it read @m's topic, else another local member that may
 * (round-robin, at most SHARE_ACL_TRIES tried), with *@options and
 * *@sub_id its own; NULL when none of those may. @exclude: as share_pick().
 */
static struct session *share_allowed(struct broker *b, struct session *to, struct msg *m,
                                     uint64_t key, void *exclude, uint8_t *options,
                                     uint32_t *sub_id)
{
    RM_ASSERT(key != 0 && m != NULL);
    for (uint32_t i = 0; to && i < SHARE_ACL_TRIES; i++) {
        if (!(*options & SESSION_SUBOPT_ACL_CHECK) ||
            session_acl_read(b, to, msg_topic(m), m->topic_len, 0))
            return to;
        struct session *next =
            share_pick(b->share, key, msg_topic(m), m->topic_len, exclude ? exclude : to,
                       options, sub_id);
        if (next == to)
            break; /* the only member left */
        to = next;
    }
    return NULL;
}

/* Where share_place() put a message. */
enum place { PLACED_NONE, PLACED_HERE, PLACED_FAR };

/*
 * Place @m with a member of shared group @key other than @from (NULL:
 * any): delivered to one online here (PLACED_HERE), else, when @far, one
 * on another shard is chosen, *@shard, for the caller to send it to
 * (PLACED_FAR), else delivered to one offline here; PLACED_NONE when the
 * group has no such member.
 */
static enum place share_place(struct broker *b, struct msg *m, uint64_t key,
                              const struct session *from, bool far, uint32_t *shard)
{
    RM_ASSERT(key != 0);
    RM_ASSERT(m != NULL);
    struct mqtt_str topic = {msg_topic(m), m->topic_len};
    uint8_t options = 0;
    uint32_t sub_id = 0;
    struct session *to =
        share_pick(b->share, key, topic.ptr, topic.len, (void *)from, &options, &sub_id);
    if (to && to != from)
        to = share_allowed(b, to, m, key, (void *)from, &options, &sub_id);
    if (to && to != from && to->client) {
        deliver_one(b, to, m, options, key, &sub_id, sub_id != 0);
        return PLACED_HERE;
    }
    /* No other member online here: another shard's, else an offline one here. */
    if (far && share_pick_shard(b->share, key, topic.ptr, topic.len, UINT32_MAX, shard))
        return PLACED_FAR;
    if (to && to != from) {
        deliver_one(b, to, m, options, key, &sub_id, sub_id != 0);
        return PLACED_HERE;
    }
    return PLACED_NONE;
}

bool route_share_give(void *ctx, struct msg *m, uint64_t key, const struct session *from)
{
    struct broker *b = ctx;
    uint32_t shard;
    enum place p = share_place(b, m, key, from, true, &shard);
    if (p == PLACED_FAR)
        send_share(b, shard, m, key, 0, share_token(b));
    return p != PLACED_NONE;
}

bool route_share_give_here(void *ctx, struct msg *m, uint64_t key, const struct session *from)
{
    uint32_t shard;
    return share_place(ctx, m, key, from, false, &shard) != PLACED_NONE;
}

bool route_give(struct broker *b, struct msg *m, uint64_t key, uint64_t token)
{
    RM_ASSERT(key != 0 && m != NULL);
    uint32_t shard;
    enum place p = share_place(b, m, key, NULL, true, &shard);
    if (p == PLACED_FAR)
        send_share(b, shard, m, key, 0, token);
    if (p == PLACED_NONE)
        b->stats.share_dropped++; /* the group has no member left */
    return p != PLACED_NONE;
}

/*
 * Shared groups chose members on other shards: cross to each shard once,
 * for its plain subscribers (b->remote[0..remote_count)) and every group
 * that chose it together.
 */
static void deliver_far(struct broker *b, struct msg *m)
{
    uint32_t plain = b->remote_count;
    for (uint32_t r = 0; r < plain; r++)
        b->shard_hit[b->remote[r] / 64] |= 1ull << (b->remote[r] % 64);
    for (uint32_t i = 0; i < b->pick_count; i++) {
        uint32_t d = b->picks[i].shard;
        if (b->picks[i].member || !b->picks[i].key || (b->shard_hit[d / 64] & (1ull << (d % 64))))
            continue;
        b->shard_hit[d / 64] |= 1ull << (d % 64);
        b->remote[b->remote_count++] = d;
    }
    if (b->keys_cap < b->pick_count) {
        uint64_t *n = realloc(b->keys, b->pick_count * sizeof(*n));
        if (n) {
            b->keys = n;
            b->keys_cap = b->pick_count;
        }
    }
    for (uint32_t r = 0; r < b->remote_count; r++) {
        uint32_t d = b->remote[r];
        uint32_t n = 0;
        for (uint32_t i = 0; i < b->pick_count; i++) {
            const struct broker_share_pick *p = &b->picks[i];
            if (p->member || !p->key || p->shard != d)
                continue;
            if (n < b->keys_cap)
                b->keys[n++] = p->key;
            else
                send_share(b, d, m, p->key, 0, share_token(b)); /* no memory for the scratch */
        }
        if (r < plain || n > 0)
            send_crossing(b, d, m, r < plain, b->keys, n);
        b->shard_hit[d / 64] = 0;
    }
}

/* Deliver @m to what match() found, then reset the scratch. */
static void deliver(struct broker *b, struct msg *m)
{
    bool far = false;
    for (uint32_t i = 0; i < b->pick_count; i++) {
        struct broker_share_pick *p = &b->picks[i];
        if (p->member && (p->options & SESSION_SUBOPT_ACL_CHECK)) {
            p->member =
                share_allowed(b, p->member, m, p->key, NULL, &p->options, &p->sub_id);
            uint32_t shard;
            if (!p->member && share_pick_shard(b->share, p->key, msg_topic(m), m->topic_len,
                                               UINT32_MAX, &shard))
                p->shard = shard; /* nobody here may: one elsewhere may */
            else if (!p->member) {
                p->key = 0; /* nobody may: dropped (counted in acl_read_denied) */
                continue;
            }
        }
        if (p->member)
            deliver_one(b, p->member, m, p->options, p->key, &p->sub_id, p->sub_id != 0);
        else
            far = true;
    }
    if (far) {
        deliver_far(b, m);
    } else {
        /* One reference per interested shard, never one per subscriber. */
        for (uint32_t i = 0; i < b->remote_count; i++)
            send_crossing(b, b->remote[i], m, true, NULL, 0);
    }
    b->pick_count = 0;
    b->remote_count = 0;
    for (uint32_t i = 0; i < b->match_count; i++) {
        struct session *s = b->match[i];
        uint32_t n = 0;
        if (s->_match_opts & MATCH_LOST) {
            /* Delivered with the identifiers kept: short of one beats losing the message. */
            b->stats.route_nomem++;
            s->_match_opts &= (uint8_t)~MATCH_LOST;
        }
        /* Its identifiers, gathered from its list: as many steps as it has. */
        for (uint32_t j = s->_match_ids; j != 0; j = b->match_ids[j - 1].next)
            b->sub_ids[n++] = b->match_ids[j - 1].sub_id;
        RM_ASSERT(n <= b->match_id_count);
        deliver_one(b, s, m, s->_match_opts, 0, b->sub_ids, n);
    }
    b->match_count = 0;
    b->match_id_count = 0;
}

/*
 * Retained @m, published here and matched (match()): to its replicas
 * (replica_publish(), @token as there), and its plain subscribers reached
 * where each replica takes it, in the same step, so that a SUBSCRIBE on
 * any shard either finds it in that shard's replica or gets it live:
 *   - here, now if this is the topic's home shard, else when our replica
 *     applies it (route_retained());
 *   - on the home shard, when it applies it (its RETAIN_SET follows our
 *     other messages to it);
 *   - on every other shard, at the later of its apply and a notice sent
 *     now - the plain crossing, to every shard, interested or not - which
 *     follows our earlier messages there (core/rpair.h).
 * Routed from here directly, as other messages are, a SUBSCRIBE elsewhere
 * could be answered, and its replica read, between this routing (which its
 * filter's announcement had not reached) and its replica's update. The
 * publisher is held until every replica has it, so its next message comes
 * after. Shared groups' members get no retained messages on subscribing:
 * they are reached from here.
 */
static void retained_route(struct broker *b, struct msg *m, uint64_t token)
{
    RM_ASSERT(m->retain);
    replica_publish(b, m, token);
    uint32_t home = home_shard(msg_topic(m), m->topic_len, b->shard_count);
    b->remote_count = 0;
    if (home == b->shard_id)
        return; /* applied here: ours now; the others when its RETAIN_APPLY comes */
    b->match_count = b->match_id_count = 0; /* ours when our replica applies it */
    for (uint32_t i = 0; i < b->shard_count; i++) {
        if (i != b->shard_id && i != home)
            b->remote[b->remote_count++] = i; /* notices */
    }
}

void route_retained(struct broker *b, struct msg *m, const struct session *publisher)
{
    RM_ASSERT(m->retain);
    struct mqtt_str topic = {msg_topic(m), m->topic_len};
    b->publisher = publisher;
    match(b, &topic, false);
    b->publisher = NULL;
    deliver(b, m);
}

int route_publish(struct broker *b, const struct session *from, const struct mqtt_publish *pub,
                  uint64_t token, uint64_t origin)
{
    RM_ASSERT(pub->qos <= 2);
    RM_ASSERT(pub->topic.len > 0);
    b->stats.msgs_in++;
    b->stats.msgs_in_qos[pub->qos]++;
    b->stats.bytes_in_qos[pub->qos] += pub->payload.len;
    b->hold_count = 0;
    b->publisher = from;
    match(b, &pub->topic, true);
    b->publisher = NULL;
    /* Build the message only if somebody wants it. */
    int matched = b->match_count > 0 || b->remote_count > 0 || b->pick_count > 0;
    if (!pub->retain && !matched)
        return 0;
    struct msg *m =
        route_msg_new(b, &pub->topic, &pub->payload, &pub->props, pub->qos, pub->retain, false);
    if (!m) {
        b->match_count = b->remote_count = b->pick_count = b->match_id_count = 0;
        return -ENOMEM;
    }
    m->origin = origin;
    if (pub->retain)
        retained_route(b, m, token);
    b->hold_on = pub->qos > 0 && b->congested_count > 0;
    deliver(b, m);
    b->hold_on = false;
    outbox_msg_put(b, m);
    return matched;
}

void route_will(struct broker *b, struct msg *m)
{
    RM_ASSERT(m->home_shard == b->shard_id && atomic_load(&m->refs) == 1);
    if (m->expiry_ms == MSG_EXPIRY_AT_PUBLISH) /* still ours alone: may change */
        m->expiry_ms = b->now_ms + (uint64_t)m->will_expiry_s * 1000 + 1;
    b->stats.msgs_in++;
    b->stats.msgs_in_qos[m->qos]++;
    b->stats.bytes_in_qos[m->qos] += m->payload_len;
    b->stats.wills_sent++;
    route_own(b, m);
}

void route_own(struct broker *b, struct msg *m)
{
    struct mqtt_str topic = {msg_topic(m), m->topic_len};
    RM_ASSERT(m->home_shard == b->shard_id && atomic_load(&m->refs) == 1);
    RM_ASSERT(m->expiry_ms != MSG_EXPIRY_AT_PUBLISH);
    match(b, &topic, true);
    if (m->retain)
        retained_route(b, m, 0);
    deliver(b, m);
    outbox_msg_put(b, m);
}

void route_share_received(struct broker *b, uint32_t from, struct msg *m, uint64_t key,
                          uint32_t hops, uint64_t token)
{
    RM_ASSERT(key != 0);
    RM_ASSERT(from < b->shard_count);
    b->relay_dest = from;
    b->relay_token = token; /* what passing it on owes (share_token()) */
    uint8_t options = 0;
    uint32_t sub_id = 0;
    struct session *to =
        share_pick(b->share, key, msg_topic(m), m->topic_len, NULL, &options, &sub_id);
    /*
     * Our members left while it travelled, or none of them is online (the
     * sender may have chosen us by turn): another shard may have someone
     * online. Pass it on a bounded number of times; the last shard queues
     * it for an offline member of its own.
     */
    if (to)
        to = share_allowed(b, to, m, key, NULL, &options, &sub_id);
    uint32_t shard;
    if ((!to || !to->client) && hops < SHARE_HOPS_MAX &&
        share_pick_shard(b->share, key, msg_topic(m), m->topic_len, from, &shard)) {
        send_share(b, shard, m, key, hops + 1, share_token(b));
    } else if (to) {
        deliver_one(b, to, m, options, key, &sub_id, sub_id != 0);
    } else {
        b->stats.share_dropped++;
    }
    b->relay_token = 0;
}

uint64_t route_remote(struct broker *b, uint32_t from, const struct xmsg *x)
{
    struct msg *m = x->payload.publish.msg;
    RM_ASSERT(x->kind == XMSG_PUBLISH && m != NULL);
    RM_ASSERT(m->home_shard != b->shard_id && from < b->shard_count);
    /* A retained one's plain crossing is its notice: delivered once its apply came too. */
    if ((x->arg & XMSG_PUBLISH_PLAIN) && (!m->retain || rpair_arrive(b, m, false))) {
        struct mqtt_str topic = {msg_topic(m), m->topic_len};
        match(b, &topic, false);
        deliver(b, m);
    }
    uint64_t key = x->payload.publish.key;
    uint64_t *more = x->payload.publish.more;
    uint32_t count = x->arg & XMSG_PUBLISH_MORE;
    uint64_t token = 0;
    if ((x->arg & XMSG_PUBLISH_TOKEN) && count == 0) {
        token = key;
        key = 0;
    } else if (x->arg & XMSG_PUBLISH_TOKEN) {
        token = more[--count];
    }
    if (key)
        route_share_received(b, from, m, key, 0, token);
    for (uint32_t i = 0; i < count; i++)
        route_share_received(b, from, m, more[i], 0, token);
    free(more);
    return token;
}
