/*
 * broker.c - the facade net/ drives (see broker.h): framing, packet
 * dispatch, messages from other shards, the clock.
 *
 * Framing: whole packets are decoded in place from the bytes net/ hands us;
 * only a packet split across reads is copied, into a buffer of exactly its
 * size. Each packet goes to its handler module (connect, publish,
 * subscribe, session); see broker_types.h for the layers below.
 *
 * Owned by one shard; single-threaded. No syscalls, no clocks.
 */
#include "core/broker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/acl.h"
#include "core/broker_types.h"
#include "core/connect.h"
#include "core/deadline.h"
#include "core/give.h"
#include "core/home.h"
#include "core/login.h"
#include "core/lvlmap.h"
#include "core/mqtt_codec.h"
#include "core/msg.h"
#include "core/outbox.h"
#include "core/output.h"
#include "core/publish.h"
#include "core/replica.h"
#include "core/retained.h"
#include "core/rm_assert.h"
#include "core/route.h"
#include "core/rpair.h"
#include "core/sess_table.h"
#include "core/session.h"
#include "core/share.h"
#include "core/subscribe.h"
#include "core/trie.h"
#include "core/wait.h"
#include "core/wal.h"
#include "core/wal_replay.h"
#include "core/xrecv.h"

/* share_table's online test: a member session with a connection. */
static bool share_online(void *member)
{
    return ((const struct session *)member)->client != NULL;
}

struct broker *broker_new(const struct limits *lim, uint32_t shard_id, uint32_t shard_count)
{
    RM_ASSERT(lim != NULL);
    RM_ASSERT(lim->inflight_max > 0 && lim->inflight_max < 65535);
    RM_ASSERT(shard_count >= 1 && shard_count <= LIMITS_SHARDS_MAX && shard_id < shard_count);
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
    b->share = share_table_new(shard_id, shard_count, b->seed, lim->share_key_seed, share_online);
    if (!b->retained || !b->share)
        goto out_free;
    b->retained_expire_ms = UINT64_MAX; /* nothing retained, nothing to expire */
    if (sess_table_init(b) < 0)
        goto out_free;
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
    deadline_fini(b); /* before the sessions it points at */
    login_fini(b);
    wal_fini(b); /* first: sessions freed at exit are not logged as ended */
    free(b->origin_has);
    sess_table_fini(b);
    give_fini(b); /* still open in the log: sent again after a restart */
    RM_ASSERT(!b->trie || trie_count(b->trie) == 0);
    outbox_fini(b);
    if (b->retained)
        retained_free(b->retained);
    if (b->share)
        share_table_free(b->share);
    free(b->picks);
    free(b->keys);
    if (b->trie)
        trie_free(b->trie);
    if (b->interest)
        trie_free(b->interest);
    free(b->shard_marker);
    wait_fini(b);
    rpair_fini(b);
    vhost_buf_fini(&b->vhost_buf[0]);
    vhost_buf_fini(&b->vhost_buf[1]);
    free(b->match);
    trie_name_fini(&b->split);
    free(b->sub_ids);
    free(b->match_ids);
    free(b->rcs);
    free(b->announced);
    free(b);
}

uint32_t broker_home_shard(const uint8_t *id, size_t len, uint32_t shard_count)
{
    RM_ASSERT(shard_count >= 1);
    RM_ASSERT(id != NULL || len == 0);
    return home_shard(id, len, shard_count);
}

void broker_set_limits(struct broker *b, const struct limits *lim)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(lim != NULL);
    b->lim = lim;
}

void broker_set_login(struct broker *b, const struct login_conf *login,
                      const struct login_peer_ops *peer)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(login == NULL || login->listener_count <= LOGIN_LISTENERS_MAX);
    b->login = login;
    if (peer)
        b->peer = *peer;
}

void broker_set_vhosts(struct broker *b, const struct vhost_table *vhosts)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(vhosts == NULL || vhosts->count <= VHOST_MAX);
    b->vhosts = vhosts && vhosts->count > 0 ? vhosts : NULL;
}

void broker_set_acls(struct broker *b, const struct acl *const *acls, uint32_t count)
{
    const struct acl *next[CLIENT_LISTENERS_MAX] = {0};
    bool on = false;

    RM_ASSERT(b != NULL);
    RM_ASSERT(count <= CLIENT_LISTENERS_MAX && (acls != NULL || count == 0));
    for (uint32_t i = 0; i < count; i++) {
        const struct acl *acl = acls[i];
        if (acl && acl_rule_count(acl) == 0 && acl_default_allows(acl))
            acl = NULL;
        next[i] = acl;
        on |= acl != NULL;
    }
    b->acl_count = count;
    if (memcmp(next, b->acls, sizeof(next)) == 0)
        return;
    bool had = b->acl_on || b->sess_count > 0;
    memcpy(b->acls, next, sizeof(next));
    b->acl_on = on;
    if (++b->acl_gen == 0)
        b->acl_gen = 1; /* 0: a session's state never built */
    if (!had)
        return;
    /* A reload: subscriptions made under the old ACL are classed again. */
    for (uint32_t i = 0; i < b->sess_bucket_count; i++) {
        for (struct session *s = b->sess_buckets[i]; s; s = s->_hnext)
            session_acl_reclass(b, s);
    }
    RM_ASSERT(b->acl_gen != 0);
}

void broker_set_acl(struct broker *b, const struct acl *acl)
{
    const struct acl *all[CLIENT_LISTENERS_MAX];

    RM_ASSERT(b != NULL);
    for (uint32_t i = 0; i < CLIENT_LISTENERS_MAX; i++)
        all[i] = acl;
    broker_set_acls(b, all, CLIENT_LISTENERS_MAX);
}

bool broker_busy(const struct broker *b)
{
    RM_ASSERT(b != NULL);
    return login_backlog(b);
}

void broker_set_memory_pressure(struct broker *b, bool on)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(b->lim != NULL);
    b->memory_pressure = on;
}

const struct broker_stats *broker_stats(const struct broker *b)
{
    RM_ASSERT(b != NULL);
    return &b->stats;
}

size_t broker_subscription_count(const struct broker *b)
{
    RM_ASSERT(b != NULL && b->trie != NULL);
    return trie_count(b->trie);
}

size_t broker_retained_count(const struct broker *b)
{
    RM_ASSERT(b != NULL && b->retained != NULL);
    return retained_count(b->retained);
}

void broker_sessions_each(struct broker *b, broker_session_fn fn, void *ctx)
{
    RM_ASSERT(b != NULL && fn != NULL);
    RM_ASSERT(b->sess_buckets != NULL || b->sess_count == 0);
    for (uint32_t i = 0; i < b->sess_bucket_count; i++) {
        for (const struct session *s = b->sess_buckets[i]; s; s = s->_hnext) {
            struct broker_session_info si = {
                .id = s->client_id,
                .id_len = s->client_id_len,
                .user = s->username_len ? session_username(s) : NULL,
                .user_len = s->username_len,
                .client = s->client,
                .queued = s->queue_count,
                .inflight = s->inflight_count,
                .subs = s->sub_count,
            };
            fn(ctx, &si);
        }
    }
}

static struct session *session_by_id(struct broker *b, const uint8_t *id, size_t len)
{
    RM_ASSERT(b != NULL && (id != NULL || len == 0));
    if (len > UINT16_MAX || b->sess_buckets == NULL)
        return NULL;
    return *sess_table_slot(b, id, len, sess_table_hash(id, len));
}

int broker_session_subs(struct broker *b, const uint8_t *id, size_t len, broker_sub_fn fn,
                        void *ctx)
{
    const struct session *s = session_by_id(b, id, len);
    RM_ASSERT(fn != NULL);
    if (s == NULL)
        return -ENOENT;
    for (uint32_t i = 0; i < s->sub_count; i++)
        fn(ctx, s->subs[i].filter, s->subs[i].filter_len, s->subs[i].options & MQTT_SUBOPT_QOS);
    return 0;
}

struct client *broker_session_client(struct broker *b, const uint8_t *id, size_t len)
{
    struct session *s = session_by_id(b, id, len);
    return s != NULL ? s->client : NULL;
}

int broker_sys_publish(struct broker *b, const char *topic, size_t topic_len,
                       const uint8_t *payload, size_t len)
{
    struct mqtt_str t = {(const uint8_t *)topic, (uint32_t)topic_len};
    struct mqtt_str p = {payload, (uint32_t)len};
    struct mqtt_props props;
    struct msg *m;

    RM_ASSERT(b != NULL && topic != NULL && topic_len > 0 && topic[0] == '$');
    RM_ASSERT(topic_len <= LIMITS_STRING_BYTES_MAX && len <= LIMITS_STRING_BYTES_MAX);
    memset(&props, 0, sizeof(props));
    m = route_msg_new(b, &t, &p, &props, 0, true, false);
    if (m == NULL) {
        return -ENOMEM;
    }
    route_own(b, m);
    return 0;
}

struct client *broker_next_dirty(struct broker *b)
{
    RM_ASSERT(b != NULL);
    return output_next_dirty(b);
}

bool broker_next_xmsg(struct broker *b, uint32_t *dest, struct xmsg *m)
{
    RM_ASSERT(b != NULL && dest != NULL && m != NULL);
    return outbox_next(b, dest, m);
}

void broker_xmsg_release(struct xmsg *m)
{
    outbox_release(m);
}

static void held_resume(struct broker *b, struct client *cl);

void broker_tick(struct broker *b, uint64_t now_ms)
{
    RM_ASSERT(b != NULL);
    deadline_tick(b, now_ms);
    give_tick(b);
    replica_tick(b);
    /* Bounded: each call frees one wait slot or returns NULL. */
    struct client *cl;
    for (uint32_t i = 0; i < b->wait_cap && (cl = wait_expire(b, now_ms)) != NULL; i++)
        held_resume(b, cl);
    xrecv_tick(b);
    /*
     * Held logins: refusals now due, then deferred CONNECTs while budget
     * lasts. Bounded: each call takes one entry off a queue.
     */
    login_tick(b, now_ms);
    int rc;
    while ((cl = login_next(b, &rc)) != NULL) {
        if (rc < 0) {
            obuf_free(&cl->_held); /* the bytes after its CONNECT: never handled */
            connect_refuse(b, cl, rc);
        } else {
            held_resume(b, cl);
        }
        b->login_pass = false;
    }
}

bool broker_has_deadlines(const struct broker *b)
{
    RM_ASSERT(b != NULL);
    return deadline_pending(b) || wait_pending(b) || rpair_pending(b) || login_backlog(b) ||
           give_pending(b);
}

const uint8_t *broker_client_id(const struct client *cl, size_t *len)
{
    RM_ASSERT(cl != NULL && len != NULL);
    RM_ASSERT(!cl->_sess || cl->_sess->client_id_len <= UINT16_MAX);
    *len = cl->_sess ? cl->_sess->client_id_len : 0;
    return cl->_sess ? cl->_sess->client_id : NULL;
}

bool broker_client_will_now(struct broker *b, struct client *cl)
{
    RM_ASSERT(b != NULL && cl != NULL);
    RM_ASSERT(cl->state != CLIENT_NEW || !cl->_will);
    /* With a log, a delayed will of a session that outlives us waits out its delay. */
    if (b->wal && cl->_will && cl->_v5 && cl->_v5->will_delay_s > 0 && cl->_sess &&
        cl->_sess->expiry_s > 0)
        return false; /* armed and logged when its connection closes */
    return connect_will_now(b, cl);
}

uint32_t broker_delayed_wills_now(struct broker *b)
{
    RM_ASSERT(b != NULL);
    return b->wal ? 0 : deadline_wills_now(b); /* logged: due after the restart */
}

void broker_client_kick(struct broker *b, struct client *cl, int rc)
{
    RM_ASSERT(b != NULL && cl != NULL);
    RM_ASSERT(rc < 0);
    (void)output_close(b, cl, rc);
}
/*
 * Send @ack for @pkt_id to @cl once what was logged since @mark is durable
 * (fsync = always): a PUBREL lets the receiver forget a message, a PUBCOMP
 * lets the sender reuse its packet id, so neither may outrun the record
 * that a crash would otherwise lose. A persistent session's ack that logged
 * nothing (a PUBREL resent after a reconnect) waits for whatever is not
 * durable yet: its first copy's record may be among it.
 */
static int ack_logged(struct broker *b, struct client *cl, uint8_t ack, uint16_t pkt_id,
                      size_t mark)
{
    const struct session *s = cl->_sess;
    if (wal_sync(b) && (wal_since(b, mark) || (s && s->expiry_s != 0 && wal_unsettled(b)))) {
        int held = wait_for_log(b, cl, ack, pkt_id, 0);
        return held > 0 ? BROKER__HOLD : held;
    }
    return output_ack(b, cl, ack, pkt_id) < 0 ? output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE)
                                               : 0;
}


/* ---- packets ---- */

static int on_packet(struct broker *b, struct client *cl, const struct mqtt_fixed *fh,
                     const uint8_t *body)
{
    struct mqtt_pkt pkt;
    int rc = mqtt_decode(fh, body, cl->version, &pkt);
    b->stats.pkts_in++;
    if (rc == -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION && cl->state == CLIENT_NEW)
        return connect_refuse(b, cl, rc); /* CONNACK 0x01 [MQTT-3.1.2-2] */
    if (rc < 0)
        return output_close(b, cl, rc); /* No CONNACK for a bad CONNECT [MQTT-3.1.4-1] */
    if (cl->state == CLIENT_NEW && pkt.type != MQTT_CONNECT) {
        /* Between CONNECT and CONNACK only the AUTH exchange (section 4.12). */
        RM_ASSERT(cl->version == MQTT_V5);
        if (pkt.type == MQTT_AUTH)
            return connect_on_auth(b, cl, &pkt.u.ack);
        return output_close(b, cl, -MQTT_RC_PROTOCOL_ERROR);
    }
    RM_ASSERT(cl->state == CLIENT_CONNECTED || pkt.type == MQTT_CONNECT);
    if (cl->_v5 && cl->_v5->auth_step && cl->state == CLIENT_CONNECTED &&
        b->now_ms > cl->_v5->auth_deadline_ms) {
        /*
         * A re-authentication left unanswered for connect_timeout_ms: the
         * next packet ends the connection (a silent one meets keep alive).
         */
        return output_close(b, cl, -MQTT_RC_NOT_AUTHORIZED);
    }

    struct session *s = cl->_sess;
    switch (pkt.type) {
    case MQTT_CONNECT:
        return connect_on_connect(b, cl, &pkt.u.connect, body - fh->hdr_bytes,
                                  fh->hdr_bytes + fh->body_bytes);
    case MQTT_PUBLISH:
        return publish_on_publish(b, cl, &pkt.u.publish);
    case MQTT_PUBACK:
        rc = session_on_puback(b, s, pkt.u.ack.pkt_id);
        break;
    case MQTT_PUBREC: {
        size_t mark = wal_mark(b);
        rc = session_on_pubrec(b, s, pkt.u.ack.pkt_id, pkt.u.ack.rc);
        if (rc == 1)
            return ack_logged(b, cl, MQTT_PUBREL, pkt.u.ack.pkt_id, mark);
        break;
    }
    case MQTT_PUBREL: {
        /* PUBCOMP even for an unknown id, so the sender can finish. */
        size_t mark = wal_mark(b);
        session_on_pubrel(b, s, pkt.u.ack.pkt_id);
        return ack_logged(b, cl, MQTT_PUBCOMP, pkt.u.ack.pkt_id, mark);
    }
    case MQTT_PUBCOMP:
        rc = session_on_pubcomp(b, s, pkt.u.ack.pkt_id);
        break;
    case MQTT_SUBSCRIBE:
        return subscribe_on_subscribe(b, cl, &pkt);
    case MQTT_UNSUBSCRIBE:
        return subscribe_on_unsubscribe(b, cl, &pkt);
    case MQTT_PINGREQ:
        rc = output_send(b, cl, &(struct mqtt_pkt){.type = MQTT_PINGRESP}, output_hard_max(b));
        break;
    case MQTT_DISCONNECT:
        return connect_on_disconnect(b, cl, &pkt.u.ack);
    case MQTT_AUTH:
        return connect_on_auth(b, cl, &pkt.u.ack);
    default:
        return output_close(b, cl, -MQTT_RC_PROTOCOL_ERROR);
    }
    return rc < 0 ? output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE) : 0;
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
        return CLIENT_FEED_HANDOFF;
    return cl->close_rc < 0 ? cl->close_rc : CLIENT_FEED_CLOSE;
}

/*
 * Keep bytes of a connection being handed to another shard. They wait in
 * cl->out, which is never sent in this state, bounded by output_bytes_max.
 */
static int handoff_keep(struct broker *b, struct client *cl, const uint8_t *p, size_t len)
{
    RM_ASSERT(cl->state == CLIENT_HANDOFF);
    if (len == 0)
        return CLIENT_FEED_HANDOFF;
    uint8_t *dst = obuf_reserve(&cl->out, len, b->lim->output_bytes_max);
    if (!dst) {
        /* Too much pipelined behind the CONNECT: refuse it here instead. */
        obuf_free(&cl->out); /* the kept input, never to be sent back */
        cl->state = CLIENT_NEW;
        return output_close(b, cl, -MQTT_RC_SERVER_BUSY);
    }
    memcpy(dst, p, len);
    obuf_commit(&cl->out, len);
    return CLIENT_FEED_HANDOFF;
}

/*
 * Keep bytes that arrive while @cl is held. net/ stops reading past
 * BROKER_HELD_READ_MAX, but what the kernel had already read still comes:
 * the bound is the larger of twice output_bytes_max and BROKER_HELD_MAX.
 */
static int held_keep(struct broker *b, struct client *cl, const uint8_t *p, size_t len)
{
    RM_ASSERT(cl->_wait != 0);
    RM_ASSERT(cl->_partial_hdr_len == 0); /* nor a partial packet: they share a buffer */
    if (len == 0)
        return 0;
    size_t max = limits_output_hard_max(b->lim);
    if (max < BROKER_HELD_MAX)
        max = BROKER_HELD_MAX;
    uint8_t *dst = obuf_reserve(&cl->_held, len, max);
    if (!dst)
        return output_close(b, cl, -MQTT_RC_SERVER_BUSY);
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
            r = mqtt_fixed_parse(cl->_partial_hdr, cl->_partial_hdr_len, b->lim->packet_bytes_max,
                                 &fh);
            if (r != 0)
                break;
        }
        if (r <= 0)
            return r < 0 ? output_close(b, cl, r) : 0;
        uint32_t total = (uint32_t)r + fh.body_bytes;
        cl->_partial = malloc(total);
        if (!cl->_partial)
            return output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
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
    if (rc == CLIENT_FEED_HANDOFF)
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
            return output_close(b, cl, r);
        if (r == 0 || (size_t)r + fh.body_bytes > len - pos) {
            size_t used;
            rc = feed_partial(b, cl, buf + pos, len - pos, &used);
            RM_ASSERT(rc != 0 || used == len - pos);
            pos += used;
            goto out;
        }
        rc = on_packet(b, cl, &fh, buf + pos + r);
        if (rc == CLIENT_FEED_HANDOFF)
            return handoff_keep(b, cl, buf + pos, len - pos);
        if (rc == BROKER__REDO)
            return held_keep(b, cl, buf + pos, len - pos);
        pos += (size_t)r + fh.body_bytes;
        if (rc != 0)
            goto out;
    }
out:
    if (rc == CLIENT_FEED_HANDOFF)
        return handoff_keep(b, cl, buf + pos, len - pos);
    if (rc == BROKER__HOLD)
        return held_keep(b, cl, buf + pos, len - pos);
    return rc == 0 ? 0 : feed_result(cl);
}

int broker_client_handoff_take(struct broker *b, struct client *cl, uint8_t **bytes, uint32_t *len)
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
    (void)reason;
    connect_leave(b, cl);
    if (cl->_wait)
        wait_forget(b, cl); /* the wait completes without anyone to acknowledge */
    output_unlink(b, cl);
    obuf_free(&cl->out);
    free(cl->_partial); /* or the held bytes: they share the buffer */
    cl->_partial = NULL;
    cl->_partial_len = cl->_partial_need = 0;
    cl->_partial_hdr_len = 0;
    cl->state = CLIENT_CLOSING;
}

/*
 * @cl's wait completed (and its acknowledgement is queued): handle what it
 * sent meanwhile, in order. That may hold it again.
 */
static void held_resume(struct broker *b, struct client *cl)
{
    RM_ASSERT(cl->_wait == 0);
    struct obuf held = cl->_held;
    cl->_held = (struct obuf){0};
    if (held.len > 0)
        (void)broker_client_feed(b, cl, held.data, held.len);
    obuf_free(&held);
    /* net/ may have stopped reading it (broker_client_backlogged()): tell it. */
    output_mark_dirty(b, cl);
}

bool broker_client_backlogged(const struct client *cl)
{
    RM_ASSERT(cl != NULL);
    return cl->_wait != 0 && cl->_held.len >= BROKER_HELD_READ_MAX;
}

void broker_set_congested(struct broker *b, uint32_t dest, bool congested)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(dest < b->shard_count && dest != b->shard_id);
    wait_set_congested(b, dest, congested);
    if (congested)
        return;
    /* Bounded: each call completes one hold for @dest or returns NULL. */
    struct client *cl;
    while ((cl = wait_link_drained(b, dest)) != NULL)
        held_resume(b, cl);
}

bool broker_wal_take(struct broker *b, const uint8_t **buf, size_t *len)
{
    RM_ASSERT(b != NULL && b->wal != NULL);
    return wal_take(b, buf, len);
}

bool broker_wal_pending(const struct broker *b)
{
    RM_ASSERT(b != NULL && b->wal != NULL);
    const struct wal_batch *bt = &b->wal->open;
    return bt->out.len > 0 || bt->token_count > 0 || bt->ack_count > 0 || outbox_holding(b);
}

void broker_wal_durable(struct broker *b)
{
    RM_ASSERT(b != NULL && b->wal != NULL);
    struct wal_batch *bt = &b->wal->flight;
    /* Its notes and records are durable for the packets handled again below. */
    wal_settled(b);
    /*
     * Bounded: the tokens of one batch; what a resumed client logs goes to
     * the open one. Taken while the log was degraded: they fail instead.
     */
    for (uint32_t i = 0; i < bt->token_count; i++) {
        if (bt->lossy) {
            wait_fail(b, bt->tokens[i]);
            continue;
        }
        struct client *cl = wait_done(b, bt->tokens[i]);
        if (cl)
            held_resume(b, cl);
    }
    bt->token_count = 0;
    /*
     * Sessions that held back a PUBREL or a QoS 2 PUBLISH for this batch
     * (wal_pump_later()): found again by hash. Degraded, the record it
     * waits on may be what was lost: the client goes, and resumes once the
     * log is whole.
     */
    for (uint32_t i = 0; i < bt->pump.count; i++) {
        struct session *s = sess_table_by_hash(b, bt->pump.hash[i]);
        if (s && s->client && (bt->lossy || session_pump(b, s) < 0))
            output_close(b, s->client, -MQTT_RC_SERVER_UNAVAILABLE);
    }
    wal_durable(b);
}

bool broker_wal_repair_wanted(const struct broker *b)
{
    RM_ASSERT(b != NULL);
    return wal_repair_wanted(b);
}

bool broker_wal_compacted(struct broker *b, bool durable, bool *repaired)
{
    RM_ASSERT(b != NULL && b->wal != NULL);
    return wal_snap_done(b, durable, repaired);
}

uint64_t broker_wal_lost(const struct broker *b)
{
    RM_ASSERT(b != NULL);
    return b->wal ? b->wal->nomem : 0;
}

int broker_wal_replay(struct broker *b, const struct wal_seg *segs, size_t n,
                      int64_t wall_offset_ms, wal_replay_problem_fn problem, void *ctx,
                      struct wal_replay_report *rep)
{
    RM_ASSERT(b != NULL && b->wal == NULL);
    return wal_replay(b, segs, n, wall_offset_ms, problem, ctx, rep);
}

int broker_wal_start(struct broker *b, bool sync, int64_t wall_offset_ms)
{
    return wal_init(b, sync, wall_offset_ms);
}

/* Collects the retained messages this shard orders (snapshot). */
static void snap_retained(void *ctx, struct msg *m)
{
    struct broker *b = ctx;
    if (home_shard(msg_topic(m), m->topic_len, b->shard_count) == b->shard_id)
        wal_retain(b, m);
}

bool broker_wal_snapshot(struct broker *b, struct broker_wal_cursor *c, uint32_t max)
{
    RM_ASSERT(b != NULL && b->wal != NULL);
    RM_ASSERT(max > 0);
    if (c->buckets != b->sess_bucket_count) {
        /* The table grew: its sessions again, but who had what was written once already. */
        *c = (struct broker_wal_cursor){.buckets = b->sess_bucket_count, .has = c->has};
        wal_snap_begin(b); /* it begins again: what it wrote so far may miss a loss since */
    }
    if (!c->has) {
        wal_snap_has(b); /* before the sessions: their old tagged deliveries go with the segments */
        give_snapshot(b);
        c->has = true;
    }
    /* Bounded: @max buckets, each a short chain. */
    for (uint32_t n = 0; n < max && c->bucket < c->buckets; n++, c->bucket++) {
        for (struct session *s = b->sess_buckets[c->bucket]; s; s = s->_hnext) {
            if (s->expiry_s == 0)
                continue;
            session_wal_snapshot(b, s);
            if (s->_timed && s->_timed->will)
                wal_will(b, s->client_id, s->client_id_len, s->_timed->will,
                         s->_timed->will_at_ms);
            wal_snap_end(b, s->client_id, s->client_id_len);
        }
    }
    if (c->bucket < c->buckets)
        return false;
    if (!c->retained) {
        retained_each(b->retained, snap_retained, b);
        c->retained = true;
    }
    return true;
}

void broker_xmsg_receive(struct broker *b, uint32_t from, const struct xmsg *x)
{
    RM_ASSERT(b != NULL && x != NULL);
    struct client *released = xrecv_receive(b, from, x);
    if (released)
        held_resume(b, released);
}
