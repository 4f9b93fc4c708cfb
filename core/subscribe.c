/*
 * subscribe.c - SUBSCRIBE and UNSUBSCRIBE (see subscribe.h).
 * Owned by one shard; single-threaded.
 */
#include "core/subscribe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/broker_types.h"
#include "core/msg.h"
#include "core/mqtt_codec.h"
#include "core/outbox.h"
#include "core/output.h"
#include "core/retained.h"
#include "core/rm_assert.h"
#include "core/rpair.h"
#include "core/session.h"
#include "core/share.h"
#include "core/topic.h"
#include "core/vhost.h"
#include "core/wait.h"
#include "core/wal.h"

struct retained_ctx {
    struct broker *b;
    struct session *s;
    uint8_t qos;
    bool check;      /* the subscription is classed ACL_SUB_SOME: each one is checked */
    uint32_t sub_id; /* the subscription's identifier, 0: none */
};

static void retained_cb(void *ctx, struct msg *m)
{
    struct retained_ctx *rc = ctx;
    if (rc->check && !session_acl_read(rc->b, rc->s, msg_topic(m), m->topic_len, 0))
        return;
    /* Applied here, its notice still on its way: it comes live, through this subscription too. */
    if (rpair_awaits_notice(rc->b, m))
        return;
    uint8_t qos = m->qos < rc->qos ? m->qos : rc->qos;
    /*
     * Retained messages sent for a new subscription carry RETAIN 1
     * [MQTT-3.3.1-8], and that subscription's identifier: each is sent
     * because of it alone [MQTT-3.3.4-5].
     */
    session_deliver(rc->b, rc->s, m, qos, true, 0, &rc->sub_id, rc->sub_id != 0);
}

/*
 * SUBSCRIBE/UNSUBSCRIBE entry @f (@len bytes) as @s's host knows it: a
 * virtual host's prefix before its topic filter, after "$share/GROUP/" for
 * a shared one (core/vhost.h); @f itself for the default host. Valid until
 * the next call. NULL on ENOMEM.
 */
static const uint8_t *hosted_filter(struct broker *b, const struct session *s, const uint8_t *f,
                                    size_t len, size_t *out_len)
{
    uint8_t host = vhost_of_name(s->client_id, s->client_id_len);
    struct share_name sn = {.filter = f, .filter_len = len};
    size_t at = host && share_parse(f, len, &sn) == 1 ? (size_t)(sn.filter - f) : 0;
    return vhost_filter(&b->vhost_buf[1], host, f, len, at, out_len);
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
 * Announcements on their way. A SUBSCRIBE to a filter that is already on
 * this shard needs no announcement of its own - unless the one that made
 * it known is still on its way to some shard: then a publish made there
 * after this SUBACK would be missed. So filters announced for the first
 * time with a wait are remembered by hash with the wait's token while it
 * lives, and such a SUBSCRIBE announces the filter again and waits too:
 * the rings are FIFO per pair of shards, so its acknowledgements come after
 * the first announcement's. A hash collision only costs an extra
 * announcement.
 */
static uint64_t filter_hash(const struct broker *b, const uint8_t *filter, size_t len)
{
    uint64_t h = XXH3_64bits_withSeed(filter, len, b->seed);
    return h ? h : 1; /* 0 marks an empty slot */
}

static struct broker_announced *announced_slot(const struct broker *b, uint64_t hash)
{
    RM_ASSERT(b->announced_cap > 0 && (b->announced_cap & (b->announced_cap - 1)) == 0);
    uint32_t mask = b->announced_cap - 1;
    /* Bounded: the table is at most half full. */
    for (uint32_t i = (uint32_t)hash & mask;; i = (i + 1) & mask) {
        struct broker_announced *e = &b->announced[i];
        if (e->hash == 0 || e->hash == hash)
            return e;
    }
}

/* Keep only the entries whose wait lives, in a table of @cap slots; false on ENOMEM. */
static bool announced_rebuild(struct broker *b, uint32_t cap)
{
    RM_ASSERT(cap >= 16 && (cap & (cap - 1)) == 0);
    struct broker_announced *old = b->announced;
    uint32_t old_cap = b->announced_cap;
    struct broker_announced *n = calloc(cap, sizeof(*n));
    if (!n)
        return false;
    b->announced = n;
    b->announced_cap = cap;
    b->announced_count = 0;
    for (uint32_t i = 0; i < old_cap; i++) {
        if (old[i].hash && wait_live(b, old[i].token)) {
            *announced_slot(b, old[i].hash) = old[i];
            b->announced_count++;
        }
    }
    free(old);
    return true;
}

/* Remember that @filter was announced on wait @token (best effort: without memory, not). */
static void announced_put(struct broker *b, const uint8_t *filter, size_t len, uint64_t token)
{
    RM_ASSERT(token != 0);
    if (b->announced_count + 1 > b->announced_cap / 2) {
        uint32_t live = 0;
        for (uint32_t i = 0; i < b->announced_cap; i++)
            live += b->announced[i].hash && wait_live(b, b->announced[i].token);
        uint32_t cap = b->announced_cap ? b->announced_cap : 16;
        while (live + 1 > cap / 4)
            cap *= 2;
        if (!announced_rebuild(b, cap))
            return;
    }
    uint64_t hash = filter_hash(b, filter, len);
    struct broker_announced *e = announced_slot(b, hash);
    if (e->hash == 0)
        b->announced_count++;
    *e = (struct broker_announced){hash, token};
}

/* True when @filter's announcement may still be on its way to some shard. */
static bool announced_pending(const struct broker *b, const uint8_t *filter, size_t len)
{
    if (b->announced_count == 0)
        return false;
    const struct broker_announced *e = announced_slot(b, filter_hash(b, filter, len));
    return e->hash != 0 && wait_live(b, e->token);
}

/*
 * This shard's first subscription to @filter, or a shared group's new
 * member count here (@members, see session_subscribe()): tell the other
 * shards, and count their acknowledgements on @cl's wait *@token (made on
 * the first call; it stays 0 without memory, and the SUBACK then goes at
 * once). So a publish made anywhere after the SUBACK reaches the
 * subscriber, and a shared group's new member already gets its share.
 */
static void announce(struct broker *b, struct client *cl, const uint8_t *filter, size_t len,
                     uint32_t members, uint64_t *token)
{
    RM_ASSERT(len > 0 && members > 0);
    if (b->shard_count > 1 && !*token)
        *token = wait_new(b, cl, 0, 0, 0);
    uint32_t told = outbox_interest(b, filter, len, members, *token);
    if (*token)
        wait_add(b, *token, told);
}

/*
 * Subscribe @cl's session to one SUBSCRIBE entry; returns its SUBACK code.
 * New filters are announced on the wait *@token (see announce()).
 */
static uint8_t subscribe_one(struct broker *b, struct client *cl, const struct mqtt_sub_entry *e,
                             uint32_t sub_id, uint64_t *token)
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
    RM_ASSERT((opts & SESSION_SUBOPT_ACL_CHECK) == 0); /* reserved bits never decode */
    if (b->acl_on) {
        /*
         * A filter no rule lets any topic of through is refused now
         * [MQTT-3.9.3-2]; one that some topics of may be denied is
         * granted, marked, and each message through it checked (route.c).
         * A "$share/G/F" is judged by F.
         */
        enum acl_sub_class cls = session_acl_class(b, cl->_sess, e->filter.ptr, e->filter.len);
        if (cls == ACL_SUB_NONE) {
            b->stats.acl_subscribe_denied++;
            return suback_fail(cl, MQTT_RC_NOT_AUTHORIZED);
        }
        if (cls == ACL_SUB_SOME)
            opts |= SESSION_SUBOPT_ACL_CHECK;
    }
    uint32_t members;
    size_t flen;
    const uint8_t *filter = hosted_filter(b, cl->_sess, e->filter.ptr, e->filter.len, &flen);
    if (!filter) /* past 65535 bytes with its host's prefix, or no memory */
        return suback_fail(cl, flen == VHOST_TOO_LONG ? MQTT_RC_TOPIC_FILTER_INVALID
                                                      : MQTT_RC_UNSPECIFIED);
    int rc = session_subscribe(b, cl->_sess, filter, flen, opts, sub_id, &members);
    if (rc == -ENOSPC)
        return suback_fail(cl, MQTT_RC_QUOTA_EXCEEDED);
    if (rc < 0)
        return suback_fail(cl, MQTT_RC_UNSPECIFIED);
    if (members) {
        announce(b, cl, filter, flen, members, token);
        if (*token)
            announced_put(b, filter, flen, *token);
    } else if (announced_pending(b, filter, flen)) {
        /*
         * Its first announcement (a shared group's: its latest count) is
         * still on its way: again, and wait (see announced_put()). Only
         * those are remembered, not this one, so when this SUBSCRIBE is
         * handled again after its wait, they have arrived everywhere (FIFO)
         * and nothing is announced a third time.
         */
        uint32_t n = shared ? share_members(b->share, filter, flen) : 1;
        if (n)
            announce(b, cl, filter, flen, n, token);
    }
    return opts & MQTT_SUBOPT_QOS;
}

/* SUBACK with b->rcs, then the retained messages of each granted filter [MQTT-3.8.4-4]. */
static int suback(struct broker *b, struct client *cl, const struct mqtt_pkt *pkt)
{
    struct session *s = cl->_sess;
    const struct mqtt_subscribe *sub = &pkt->u.subscribe;
    struct mqtt_pkt ack = {.type = MQTT_SUBACK};
    ack.u.suback = (struct mqtt_suback){.pkt_id = sub->pkt_id, .count = sub->count, .rcs = b->rcs};
    if (output_send(b, cl, &ack, output_hard_max(b)) < 0)
        return output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    struct mqtt_sub_iter it;
    struct mqtt_sub_entry e;
    uint32_t i = 0;
    mqtt_sub_iter_init(&it, pkt);
    while (mqtt_sub_next(&it, &e)) {
        RM_ASSERT(i < sub->count);
        if (b->rcs[i++] >= 0x80)
            continue;
        size_t flen;
        const uint8_t *filter = hosted_filter(b, s, e.filter.ptr, e.filter.len, &flen);
        struct session_sub *ss = filter ? session_sub_find(s, filter, flen) : NULL;
        if (!ss)
            continue; /* no memory for its name: no retained messages for it */
        bool fresh = ss->fresh;
        ss->fresh = false;
        /* A new shared subscription gets no retained messages (section 3.3.1.3). */
        if (ss->share_key)
            continue;
        /* Retain Handling: 0 always, 1 only for a new subscription, 2 never [MQTT-3.3.1-9..11]. */
        uint8_t rh = (uint8_t)(ss->options >> MQTT_SUBOPT_RH_SHIFT) & 3;
        if (rh == 2 || (rh == 1 && !fresh))
            continue;
        struct retained_ctx ctx = {b, s, ss->options & MQTT_SUBOPT_QOS,
                                   (ss->options & SESSION_SUBOPT_ACL_CHECK) != 0, ss->sub_id};
        retained_match(b->retained, filter, flen, retained_cb, &ctx);
    }
    return 0;
}

int subscribe_on_subscribe(struct broker *b, struct client *cl, const struct mqtt_pkt *pkt)
{
    const struct mqtt_subscribe *sub = &pkt->u.subscribe;
    RM_ASSERT(cl->_sess != NULL);
    RM_ASSERT(sub->count > 0);
    uint32_t sub_id = 0;
    if (sub->props.has & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)) {
        if (!b->lim->subscription_identifiers) /* section 3.2.2.3.15 */
            return output_close(b, cl, -MQTT_RC_SUBSCRIPTION_IDS_NOT_SUPPORTED);
        sub_id = sub->props.sub_id;
    }
    if (!rcs_reserve(b, sub->count))
        return output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    struct mqtt_sub_iter it;
    struct mqtt_sub_entry e;
    uint32_t i = 0;
    uint64_t token = 0;
    size_t mark = wal_mark(b);
    mqtt_sub_iter_init(&it, pkt);
    while (mqtt_sub_next(&it, &e) && cl->state != CLIENT_CLOSING) {
        RM_ASSERT(i < sub->count);
        b->rcs[i++] = subscribe_one(b, cl, &e, sub_id, &token);
    }
    if (cl->state != CLIENT_CLOSING && wal_sync(b) &&
        (wal_since(b, mark) || wal_noted(b, WAL_NOTE_SUBS, cl->_sess->_hash))) {
        /*
         * A persistent session's new subscriptions are logged: SUBACK once
         * they are durable. The same SUBSCRIBE again (after a takeover)
         * logs nothing but promises as much: it waits for the first's
         * records. The second pass finds them durable: nothing to wait for.
         */
        if (!token)
            token = wait_new(b, cl, 0, 0, 0);
        if (!token) {
            /* No wait, no SUBACK before the subscriptions are durable: the client goes. */
            (void)output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
        } else {
            wait_add(b, token, 1);
            if (!wait_on_log(b, token))
                token = 0; /* the log is degraded: the wait failed, the client is closing */
        }
    }
    if (cl->state == CLIENT_CLOSING) {
        if (token)
            wait_forget(b, cl);
        return cl->close_rc;
    }
    RM_ASSERT(i == sub->count);
    if (token) {
        if (wait_remaining(b, token) > 0) {
            /*
             * New filters for this shard: hold the client until every other
             * shard has them, then handle this SUBSCRIBE again - a plain
             * replace by then - which answers SUBACK and sends the retained.
             */
            return BROKER__REDO;
        }
        wait_cancel(b, cl); /* nothing was sent (out of memory): answer now */
    }
    return suback(b, cl, pkt);
}

int subscribe_on_unsubscribe(struct broker *b, struct client *cl, const struct mqtt_pkt *pkt)
{
    struct session *s = cl->_sess;
    RM_ASSERT(s != NULL);
    RM_ASSERT(pkt->u.subscribe.count > 0);
    bool v5 = cl->version == MQTT_V5;
    if (v5 && !rcs_reserve(b, pkt->u.subscribe.count))
        return output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    struct mqtt_sub_iter it;
    struct mqtt_sub_entry e;
    uint32_t i = 0;
    mqtt_sub_iter_init(&it, pkt);
    while (mqtt_sub_next(&it, &e)) {
        size_t flen;
        const uint8_t *filter = hosted_filter(b, s, e.filter.ptr, e.filter.len, &flen);
        bool had = filter && session_unsubscribe(b, s, filter, flen);
        if (v5)
            b->rcs[i++] = had ? MQTT_RC_SUCCESS : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
    }
    /* UNSUBACK even when nothing matched [MQTT-3.10.4-5]. */
    struct mqtt_pkt ack = {.type = MQTT_UNSUBACK};
    ack.u.suback =
        (struct mqtt_suback){.pkt_id = pkt->u.subscribe.pkt_id, .count = i, .rcs = b->rcs};
    if (output_send(b, cl, &ack, output_hard_max(b)) < 0)
        return output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    return 0;
}
