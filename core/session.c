/*
 * session.c - one MQTT session's state machine (see session.h).
 *
 * The inflight window is a small array kept in send order: acknowledgements
 * normally arrive in that order, so the linear search ends at the first
 * entry. The queue is a ring buffer that grows on demand up to queued_max.
 * Calls only output, outbox and the trie and shared groups. Owned by the
 * home shard's broker; single-threaded.
 */
#include "core/session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/acl.h"
#include "core/broker_types.h"
#include "core/grow.h"
#include "core/limits.h"
#include "core/mqtt_codec.h"
#include "core/msg.h"
#include "core/outbox.h"
#include "core/output.h"
#include "core/rm_assert.h"
#include "core/share.h"
#include "core/trie.h"
#include "core/vhost.h"
#include "core/wal.h"

/* Identifiers ride in what was padding: a kept message costs no more than before. */
_Static_assert(sizeof(void *) != 8 || (sizeof(struct session_inflight) == 24 &&
                                       sizeof(struct session_queued) == 24),
               "window and queue entries stay 24 bytes");

/*
 * True when @s's changes go to the write-ahead log: a log, and a session
 * that outlives its connection.
 */
static bool logged(const struct broker *b, const struct session *s)
{
    return b->wal && s->expiry_s != 0;
}

/* @s's subscription to @filter, logged (and noted: its SUBACK waits for it). */
static void log_sub(struct broker *b, const struct session *s, const uint8_t *filter, size_t len,
                    uint8_t options, uint32_t sub_id)
{
    wal_sub(b, s->client_id, s->client_id_len, filter, len, options, sub_id);
    wal_note(b, WAL_NOTE_SUBS, s->_hash);
}

/*
 * @m kept for @s (see wal_deliver()), logged; a tagged message's
 * recipient is noted (wal_has()): a compaction keeps who had it.
 */
static void log_deliver(struct broker *b, const struct session *s, const struct msg *m,
                        uint8_t qos, bool retain, uint64_t key, const uint32_t *ids, uint32_t n,
                        uint16_t pkt_id)
{
    if (!logged(b, s))
        return;
    wal_deliver(b, s->client_id, s->client_id_len, m, qos, retain, key, ids, n, pkt_id);
    if (m->origin)
        wal_has(b, m->origin, key ? key : s->_hash);
}

/* A one-packet-id step of @s's, logged. */
static void log_pkt(struct broker *b, const struct session *s, enum wal_type type, uint16_t id)
{
    if (logged(b, s))
        wal_pkt(b, type, s->client_id, s->client_id_len, id);
}

/* Where @s's struct session_acl begins: after its names, aligned. */
static size_t acl_offset(size_t id_len, size_t user_len)
{
    size_t end = offsetof(struct session, client_id) + id_len + user_len;
    size_t align = _Alignof(struct session_acl);

    return (end + align - 1) / align * align;
}

struct session *session_new(const uint8_t *client_id, size_t len, uint64_t hash,
                            uint32_t expiry_s, const uint8_t *user, size_t user_len, bool acl)
{
    RM_ASSERT(len <= LIMITS_STRING_BYTES_MAX);
    RM_ASSERT(client_id != NULL || len == 0);
    RM_ASSERT(user_len <= UINT8_MAX && (user != NULL || user_len == 0));
    size_t size = offsetof(struct session, client_id) + len + user_len;
    if (acl)
        size = acl_offset(len, user_len) + sizeof(struct session_acl);
    struct session *s = calloc(1, size > sizeof(*s) ? size : sizeof(*s));
    if (!s)
        return NULL;
    memcpy(s->client_id, client_id, len);
    if (user_len > 0)
        memcpy(s->client_id + len, user, user_len);
    s->client_id_len = (uint16_t)len;
    s->username_len = (uint8_t)user_len;
    s->_hash = hash;
    s->expiry_s = expiry_s;
    s->next_pkt_id = 1;
    if (acl)
        s->_match_opts = SESSION_ACL_INLINE; /* gen 0: built on first use */
    return s;
}

/* The ACL that applies to @s: its listener's; NULL: none (everything allowed). */
static const struct acl *acl_of(const struct broker *b, const struct session *s)
{
    RM_ASSERT(s->listener < CLIENT_LISTENERS_MAX);
    return b->acls[s->listener];
}

/*
 * @s as @acl (its listener's) sees it: its own struct session_acl, rebuilt
 * (and its verdicts forgotten) when the ACL or its generation changed
 * since; or, for a session made while no ACL was in force, *@tmp filled
 * now (no cache).
 */
static const struct acl_who *acl_who_of(struct broker *b, const struct acl *acl,
                                        struct session *s, struct session_acl **st,
                                        struct acl_who *tmp)
{
    RM_ASSERT(acl != NULL && b->acl_gen != 0);
    RM_ASSERT(acl == acl_of(b, s));
    const uint8_t *user = s->username_len ? session_username(s) : NULL;
    /* %c is the id the client knows: without its virtual host's prefix. */
    uint8_t host = vhost_of_name(s->client_id, s->client_id_len);
    size_t skip = host ? VHOST_ID_PREFIX : 0;
    *st = NULL;
    if (!(s->_match_opts & SESSION_ACL_INLINE)) {
        acl_who_init(acl, tmp, user, s->username_len, s->client_id + skip,
                     s->client_id_len - skip);
        tmp->host = host;
        return tmp;
    }
    struct session_acl *a =
        (struct session_acl *)((uint8_t *)s + acl_offset(s->client_id_len, s->username_len));
    if (a->gen != b->acl_gen || a->acl != acl) {
        acl_who_init(acl, &a->who, user, s->username_len, s->client_id + skip,
                     s->client_id_len - skip);
        a->who.host = host;
        memset(a->verdict, 0, sizeof(a->verdict));
        a->read_epoch = 0;
        a->gen = b->acl_gen;
        a->acl = acl;
    }
    *st = a;
    return &a->who;
}

bool session_acl_publish(struct broker *b, struct session *s, const uint8_t *topic, size_t len)
{
    RM_ASSERT(s != NULL && topic != NULL);
    const struct acl *acl = acl_of(b, s);
    if (!acl)
        return true;
    /* Rules are host-relative: a virtual host's topic without its prefix (core/vhost.h). */
    size_t skip = vhost_topic_skip(topic, len);
    topic += skip;
    len -= skip;
    struct session_acl *st;
    struct acl_who tmp;
    const struct acl_who *who = acl_who_of(b, acl, s, &st, &tmp);
    if (!st)
        return acl_check(acl, who, ACL_PUBLISH, topic, len);
    /*
     * The seed is the broker's random one, so a client cannot aim two of
     * its topics at one tag (62 bits): a collision would reuse a verdict.
     * Bit 0 is the verdict's alone (a hash's own bit 0 left there read as
     * "allowed" on the next hit); bit 1 keeps a tag from being 0 (empty).
     */
    uint64_t key = (XXH3_64bits_withSeed(topic, len, b->seed) & ~(uint64_t)3) | 2u;
    uint64_t *slot = &st->verdict[(key >> 2) % SESSION_ACL_SLOTS];
    if ((*slot | 1u) == (key | 1u))
        return *slot & 1u;
    bool ok = acl_check(acl, who, ACL_PUBLISH, topic, len);
    *slot = key | ok;
    RM_ASSERT(*slot != 0);
    return ok;
}

bool session_acl_read(struct broker *b, struct session *s, const uint8_t *topic, size_t len,
                      uint32_t epoch)
{
    RM_ASSERT(s != NULL && topic != NULL);
    const struct acl *acl = acl_of(b, s);
    if (!acl)
        return true;
    size_t skip = vhost_topic_skip(topic, len); /* host-relative, as above */
    topic += skip;
    len -= skip;
    struct session_acl *st;
    struct acl_who tmp;
    const struct acl_who *who = acl_who_of(b, acl, s, &st, &tmp);
    if (st && epoch && st->read_epoch == epoch)
        return st->read_ok;
    bool ok = acl_check(acl, who, ACL_READ, topic, len);
    if (st && epoch) {
        st->read_epoch = epoch;
        st->read_ok = ok;
    }
    if (!ok)
        b->stats.acl_read_denied++;
    return ok;
}

enum acl_sub_class session_acl_class(struct broker *b, struct session *s, const uint8_t *filter,
                                     size_t len)
{
    RM_ASSERT(s != NULL && filter != NULL);
    const struct acl *acl = acl_of(b, s);
    if (!acl)
        return ACL_SUB_ALL;
    /*
     * "$share/G/F" is judged by F, and F host-relative: a stored filter
     * (a reload classing it again) carries its virtual host's prefix.
     */
    struct share_name sn = {.filter = filter, .filter_len = len};
    if (share_parse(filter, len, &sn) == 1) {
        filter = sn.filter;
        len = sn.filter_len;
    }
    size_t skip = vhost_topic_skip(filter, len);
    filter += skip;
    len -= skip;
    struct session_acl *st;
    struct acl_who tmp;
    const struct acl_who *who = acl_who_of(b, acl, s, &st, &tmp);
    return acl_subscribe_class(acl, who, filter, len);
}

void session_acl_reclass(struct broker *b, struct session *s)
{
    RM_ASSERT(s != NULL);
    RM_ASSERT(s->sub_count <= s->sub_cap);
    for (uint32_t i = 0; i < s->sub_count; i++) {
        struct session_sub *sub = &s->subs[i];
        uint8_t opts = sub->options & (uint8_t)~SESSION_SUBOPT_ACL_CHECK;
        if (session_acl_class(b, s, sub->filter, sub->filter_len) != ACL_SUB_ALL)
            opts |= SESSION_SUBOPT_ACL_CHECK;
        if (opts == sub->options)
            continue;
        /* An update of an entry that is there: no allocation, nothing to announce. */
        int rc;
        if (sub->share_key)
            rc = share_join(b->share, sub->filter, sub->filter_len, s, opts, sub->sub_id, NULL);
        else
            rc = trie_insert(b->trie, sub->filter, sub->filter_len, s, opts, sub->sub_id, NULL);
        RM_ASSERT(rc == 0);
        sub->options = opts;
    }
}

void session_acl_move(struct broker *b, struct session *s, uint8_t listener)
{
    RM_ASSERT(s != NULL);
    RM_ASSERT(listener < CLIENT_LISTENERS_MAX && s->listener < CLIENT_LISTENERS_MAX);
    const struct acl *was = acl_of(b, s);
    if (s->listener != listener && logged(b, s)) /* restored under its listener's rules */
        wal_session(b, s->client_id, s->client_id_len, session_username(s), s->username_len,
                    s->expiry_s, listener);
    s->listener = listener;
    /* Its verdicts are keyed by the ACL too (acl_who_of()): nothing to forget here. */
    if (acl_of(b, s) != was)
        session_acl_reclass(b, s);
}

static struct session_queued *queue_at(struct session *s, uint32_t i)
{
    return &s->queue[(s->queue_head + i) % s->queue_cap];
}

/*
 * Keep a delivery's @n Subscription Identifiers @ids and shared group
 * @share_key in the form the window and the queue hold (*@via, *@sub_id; see
 * union session_via): allocates only for two or more. Returns 0, or -ENOMEM
 * (only the first identifier kept).
 */
static int via_keep(uint64_t share_key, const uint32_t *ids, uint32_t n, union session_via *via,
                    uint32_t *sub_id)
{
    RM_ASSERT(ids != NULL || n == 0);
    RM_ASSERT(n <= 1 || share_key == 0); /* a shared group is one subscription */
    if (n <= 1) {
        via->share_key = share_key;
        *sub_id = n == 1 ? ids[0] : 0;
        RM_ASSERT(*sub_id != SESSION_SUB_IDS_MANY);
        return 0;
    }
    uint32_t *a = malloc(((size_t)n + 1) * sizeof(*a));
    if (!a) {
        /*
         * Keep the message with its first identifier rather than lose an
         * acknowledged message to an allocation: one identifier short
         * [MQTT-3.3.4-3] is the lesser harm. Counted by the caller.
         */
        via->share_key = 0;
        *sub_id = ids[0];
        return -ENOMEM;
    }
    a[0] = n;
    memcpy(a + 1, ids, (size_t)n * sizeof(*ids));
    via->sub_ids = a;
    *sub_id = SESSION_SUB_IDS_MANY;
    return 0;
}

/* The identifiers via_keep() kept in (@via, *@sub_id): how many, at *@ids (borrowed). */
static uint32_t via_ids(const union session_via *via, const uint32_t *sub_id,
                        const uint32_t **ids)
{
    RM_ASSERT(sub_id != NULL && ids != NULL);
    if (*sub_id == SESSION_SUB_IDS_MANY) {
        RM_ASSERT(via->sub_ids != NULL && via->sub_ids[0] >= 2);
        *ids = via->sub_ids + 1;
        return via->sub_ids[0];
    }
    *ids = sub_id;
    return *sub_id != 0;
}

/* The shared group a kept delivery came through, or 0. */
static uint64_t via_share_key(const union session_via *via, uint32_t sub_id)
{
    RM_ASSERT(via != NULL);
    return sub_id == SESSION_SUB_IDS_MANY ? 0 : via->share_key;
}

/* Free what via_keep() allocated; the kept delivery has no identifier and no group left. */
static void via_drop(union session_via *via, uint32_t *sub_id)
{
    RM_ASSERT(via != NULL && sub_id != NULL);
    if (*sub_id == SESSION_SUB_IDS_MANY)
        free(via->sub_ids);
    via->share_key = 0;
    *sub_id = 0;
}

/*
 * Take @s out of the trie or the shared group of @sub; tell other shards
 * when the filter has no subscriber left here, or the group's member count
 * here changed (they weigh this shard by it).
 */
static void sub_drop(struct broker *b, struct session *s, const struct session_sub *sub)
{
    uint32_t members = 0;
    bool tell;
    RM_ASSERT(sub->filter != NULL);
    if (sub->share_key) {
        tell = share_leave(b->share, sub->filter, sub->filter_len, s, &members);
        RM_ASSERT(tell);
    } else {
        bool removed = trie_remove(b->trie, sub->filter, sub->filter_len, s, &tell);
        RM_ASSERT(removed);
    }
    if (tell)
        (void)outbox_interest(b, sub->filter, sub->filter_len, members, 0);
}

void session_free(struct broker *b, struct session *s, session_give_fn give, void *give_ctx)
{
    RM_ASSERT(s != NULL);
    RM_ASSERT(s->client == NULL && s->_timed == NULL);
    for (uint32_t i = 0; i < s->sub_count; i++) {
        sub_drop(b, s, &s->subs[i]);
        free(s->subs[i].filter);
    }
    /*
     * No longer a member: its shared messages go to the others (section
     * 4.8.2). Logged first (core/give.h): a log torn after its end keeps
     * where they went. A record of theirs lost meanwhile (no memory): its
     * end is not logged either, so that the log, until a snapshot repairs
     * it, still holds them with the session (brought back by a crash).
     */
    uint64_t lost = b->wal ? b->wal->losses : 0;
    session_share_redispatch(b, s, give, give_ctx);
    if (logged(b, s) && b->wal->losses == lost)
        wal_session_end(b, s->client_id, s->client_id_len);
    for (uint32_t i = 0; i < s->inflight_count; i++) {
        outbox_msg_put(b, s->inflight[i].msg);
        via_drop(&s->inflight[i].via, &s->inflight[i].sub_id);
    }
    b->stats.inflight -= s->inflight_count;
    b->stats.queued -= s->queue_count;
    for (uint32_t i = 0; i < s->queue_count; i++) {
        struct session_queued *q = queue_at(s, i);

        outbox_msg_put(b, q->msg);
        via_drop(&q->via, &q->sub_id);
    }
    free(s->subs);
    free(s->inflight);
    free(s->queue);
    free(s->qos2_in);
    free(s);
}

/* Grow an array of @elem-byte items to hold one more than @count. */
void session_settle(struct session *s)
{
    RM_ASSERT(s != NULL);
    RM_ASSERT(s->sub_count <= s->sub_cap);
    for (uint32_t i = 0; i < s->sub_count; i++)
        s->subs[i].fresh = false;
}

struct session_sub *session_sub_find(struct session *s, const uint8_t *filter, size_t len)
{
    RM_ASSERT(s != NULL);
    RM_ASSERT(filter != NULL || len == 0);
    for (uint32_t i = 0; i < s->sub_count; i++) {
        struct session_sub *sub = &s->subs[i];
        if (sub->filter_len == len && memcmp(sub->filter, filter, len) == 0)
            return sub;
    }
    return NULL;
}

int session_subscribe(struct broker *b, struct session *s, const uint8_t *filter, size_t len,
                      uint8_t options, uint32_t sub_id, uint32_t *announce)
{
    *announce = 0;
    RM_ASSERT(len > 0 && len <= LIMITS_STRING_BYTES_MAX);
    RM_ASSERT((options & MQTT_SUBOPT_QOS) <= 2 && sub_id <= MQTT_VARINT_MAX);
    int rc;
    struct session_sub *sub = session_sub_find(s, filter, len);
    if (sub) {
        /* Same filter again: replace the subscription [MQTT-3.8.4-3]. */
        if (sub->share_key)
            rc = share_join(b->share, filter, len, s, options, sub_id, NULL);
        else
            rc = trie_insert(b->trie, filter, len, s, options, sub_id, NULL);
        RM_ASSERT(rc == 0);
        bool changed = sub->options != options || sub->sub_id != sub_id;
        sub->options = options;
        sub->sub_id = sub_id;
        if (changed && logged(b, s))
            log_sub(b, s, filter, len, options, sub_id);
        return sub->fresh ? 1 : 0;
    }
    if (s->sub_count >= b->lim->subs_per_client_max)
        return -ENOSPC;
    struct share_name sn;
    bool shared = share_parse(filter, len, &sn) == 1;
    rc = grow_array((void **)&s->subs, &s->sub_cap, s->sub_count, sizeof(*s->subs));
    if (rc < 0)
        goto out;
    uint8_t *copy = malloc(len);
    if (!copy) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(copy, filter, len);
    bool first = false;
    if (shared)
        rc = share_join(b->share, filter, len, s, options, sub_id, announce);
    else
        rc = trie_insert(b->trie, filter, len, s, options, sub_id, &first);
    if (rc < 0)
        goto out_free_copy;
    RM_ASSERT(rc == 1);
    if (!shared)
        *announce = first;
    uint64_t key = shared ? share_key(b->lim->share_key_seed, filter, len) : 0;
    s->subs[s->sub_count++] = (struct session_sub){copy, (uint16_t)len, options, sub_id, true, key};
    if (logged(b, s))
        log_sub(b, s, filter, len, options, sub_id);
    return 1;

out_free_copy:
    free(copy);
out:
    return rc;
}

bool session_unsubscribe(struct broker *b, struct session *s, const uint8_t *filter, size_t len)
{
    RM_ASSERT(s != NULL);
    struct session_sub *sub = session_sub_find(s, filter, len);
    if (!sub)
        return false;
    sub_drop(b, s, sub);
    if (logged(b, s)) {
        wal_unsub(b, s->client_id, s->client_id_len, filter, len);
        wal_note(b, WAL_NOTE_SUBS, s->_hash);
    }
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

/* Whole seconds left of a message's expiry, rounded down: never more than it had. */
static uint32_t expiry_left_s(const struct broker *b, const struct msg *m)
{
    RM_ASSERT(m->expiry_ms != 0);
    RM_ASSERT(b != NULL);
    if (m->expiry_ms <= b->now_ms)
        return 0;
    return (uint32_t)((m->expiry_ms - b->now_ms) / 1000);
}

/*
 * Encode PUBLISH @m for @s's client, with the @n Subscription Identifiers
 * @ids (v5 only). Returns 0 when it was encoded; 1 when it never will be
 * and counts as delivered: it expired before delivery started
 * [MQTT-3.3.2-5], or it is larger than the client's Maximum Packet Size
 * [MQTT-3.1.2-25]; -ENOBUFS over @bytes_max; -ENOMEM.
 */
static int send_publish(struct broker *b, struct session *s, const struct msg *m, uint8_t qos,
                        bool retain, bool dup, uint16_t pkt_id, const uint32_t *ids, uint32_t n,
                        size_t bytes_max)
{
    struct client *cl = s->client;
    RM_ASSERT(cl != NULL);
    RM_ASSERT(qos <= 2 && (qos == 0) == (pkt_id == 0));
    struct mqtt_pkt pkt = {.type = MQTT_PUBLISH};
    struct mqtt_publish *pub = &pkt.u.publish;
    *pub = (struct mqtt_publish){
        .qos = qos,
        .dup = dup,
        .retain = retain,
        /* The client sees its host's topics without the prefix (core/vhost.h). */
        .topic = {msg_topic(m) + vhost_topic_skip(msg_topic(m), m->topic_len),
                  m->topic_len - (uint32_t)vhost_topic_skip(msg_topic(m), m->topic_len)},
        .pkt_id = pkt_id,
        .payload = {msg_payload(m), m->payload_len},
    };
    if (m->expiry_ms && !dup && m->expiry_ms <= b->now_ms) {
        b->stats.msgs_expired++;
        return 1;
    }
    if (cl->version == MQTT_V5) {
        struct mqtt_props *pr = &pub->props;
        pr->raw = (struct mqtt_str){msg_props(m), m->props_len};
        if (m->expiry_ms) {
            /* The time left, not the original interval [MQTT-3.3.2-6]. */
            pr->has |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
            pr->message_expiry = expiry_left_s(b, m);
        }
        /* Every matching subscription's identifier, in one copy [MQTT-3.3.4-4]. */
        pr->sub_ids = ids;
        pr->sub_id_count = n;
    }
    int rc = output_publish(b, cl, &pkt, bytes_max);
    if (rc == -EMSGSIZE) {
        b->stats.msgs_too_large++;
        return 1;
    }
    if (rc == 0) {
        b->stats.msgs_out++;
        b->stats.msgs_out_qos[qos]++;
        b->stats.bytes_out_qos[qos] += m->payload_len;
    }
    return rc;
}

/* Unacknowledged QoS 1/2 PUBLISHes the client takes: its Receive Maximum [MQTT-3.3.4-9]. */
static uint32_t window(const struct broker *b, const struct session *s)
{
    RM_ASSERT(s->client != NULL);
    uint32_t w = b->lim->inflight_max;
    if (s->client->_v5 && s->client->_v5->recv_max < w)
        w = s->client->_v5->recv_max;
    RM_ASSERT(w > 0);
    return w;
}

/* The QoS an inflight PUBLISH was sent with. */
static uint8_t inflight_qos(const struct session_inflight *e)
{
    RM_ASSERT(e->state == SESSION_WAIT_PUBACK || e->state == SESSION_WAIT_PUBREC);
    return e->state == SESSION_WAIT_PUBACK ? 1 : 2;
}

/*
 * Send @m and put it in the window with (@via, @sub_id) from via_keep().
 * Returns 0 when it was sent, or dropped as if delivered (see
 * send_publish()): (@via, @sub_id) are the window's or freed. Below 0 it
 * was not sent and they are still the caller's.
 */
static int inflight_send(struct broker *b, struct session *s, struct msg *m, uint8_t qos,
                         bool retain, union session_via via, uint32_t sub_id)
{
    RM_ASSERT(qos == 1 || qos == 2);
    RM_ASSERT(s->client != NULL);
    int rc = grow_array((void **)&s->inflight, &s->inflight_cap, s->inflight_count,
                  sizeof(*s->inflight));
    if (rc < 0)
        return rc;
    uint16_t id = next_pkt_id(s);
    const uint32_t *ids;
    uint32_t n = via_ids(&via, &sub_id, &ids);
    rc = send_publish(b, s, m, qos, retain, false, id, ids, n, output_hard_max(b));
    if (rc < 0)
        return rc;
    if (rc == 1) {
        via_drop(&via, &sub_id); /* dropped as if delivered */
        return 0;
    }
    b->stats.inflight++;
    s->inflight[s->inflight_count++] = (struct session_inflight){
        .msg = msg_ref(m),
        .via = via,
        .sub_id = sub_id,
        .pkt_id = id,
        .state = qos == 1 ? SESSION_WAIT_PUBACK : SESSION_WAIT_PUBREC,
        .retain = retain,
    };
    return 0;
}

/* Queue @m with (@via, @sub_id) from via_keep(), which it takes; false (nothing taken) if full. */
static bool queue_push(struct broker *b, struct session *s, struct msg *m, uint8_t qos,
                       bool retain, union session_via via, uint32_t sub_id)
{
    /* QoS 0 is never queued: it is sent at once or shed. */
    RM_ASSERT(qos == 1 || qos == 2);
    if (s->queue_count >= b->lim->queued_max)
        return false;
    if (b->lim->queued_bytes_max && m->payload_len > b->lim->queued_bytes_max - s->queue_bytes)
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
    s->queue_bytes += m->payload_len;
    b->stats.queued++;
    *queue_at(s, s->queue_count++) = (struct session_queued){
        .msg = msg_ref(m),
        .via = via,
        .sub_id = sub_id,
        .qos = qos,
        .retain = retain,
    };
    RM_ASSERT(s->queue_count <= s->queue_cap);
    return true;
}

/*
 * Whether a @qos PUBLISH to @s waits for its record before it goes: under
 * fsync = always, a QoS 2 message of a persistent session. Sent before
 * its record is durable, a crash would make the restarted broker send it
 * again under a new packet id, and a receiver that delivers on PUBLISH
 * (MQTT 4.3.3, "Method B") would deliver it twice [MQTT-4.3.3-2]. Its
 * publisher's PUBREC waits for the same batch.
 */
static bool hold_first(const struct broker *b, const struct session *s, uint8_t qos)
{
    return qos == 2 && logged(b, s) && wal_sync(b);
}

/*
 * Put @m in the window with (@via, @sub_id) from via_keep(), not sent
 * yet (fresh, at the end of the unsent entries): pump() sends it, once
 * its record is durable when @wait. Returns 0, or -ENOMEM with nothing
 * taken.
 */
static int inflight_hold(struct broker *b, struct session *s, struct msg *m, uint8_t qos,
                         bool retain, union session_via via, uint32_t sub_id, bool wait)
{
    RM_ASSERT(qos == 1 || qos == 2);
    RM_ASSERT(s->client != NULL && s->inflight_unsent < UINT16_MAX);
    if (wait && !wal_pump_later(b, wal_batch(b), s->_hash))
        return -ENOMEM;
    int rc = grow_array((void **)&s->inflight, &s->inflight_cap, s->inflight_count,
                        sizeof(*s->inflight));
    if (rc < 0)
        return rc;
    b->stats.inflight++;
    s->inflight_unsent++;
    s->inflight[s->inflight_count++] = (struct session_inflight){
        .msg = msg_ref(m),
        .via = via,
        .sub_id = sub_id,
        .pkt_id = next_pkt_id(s),
        .state = qos == 1 ? SESSION_WAIT_PUBACK : SESSION_WAIT_PUBREC,
        .retain = retain,
        .fresh = 1,
        .wait = wait,
        .batch = wait ? wal_batch(b) : 0,
    };
    return 0;
}

/* Whether the window ends in fresh entries, not sent yet: what comes now queues behind them. */
static bool holding(const struct session *s)
{
    return s->inflight_unsent > 0 && s->inflight[s->inflight_count - 1].fresh;
}

/* Into the window: sent now, or held (hold_first(), or behind what is held). As inflight_send(). */
static int window_add(struct broker *b, struct session *s, struct msg *m, uint8_t qos,
                      bool retain, union session_via via, uint32_t sub_id)
{
    bool wait = hold_first(b, s, qos);
    if (wait || holding(s))
        return inflight_hold(b, s, m, qos, retain, via, sub_id, wait);
    return inflight_send(b, s, m, qos, retain, via, sub_id);
}

/*
 * Whether @e waits for its record: not durable yet, or the log degraded
 * (the record may be what was lost; the repair snapshot rewrites it).
 */
static bool held(const struct broker *b, const struct session_inflight *e)
{
    return e->wait && (wal_degraded(b) || !wal_batch_durable(b, e->batch));
}

/*
 * Send inflight entry @e on this connection: a fresh one for the first
 * time, else again (DUP PUBLISH or PUBREL); as send_publish().
 */
static int resend(struct broker *b, struct session *s, struct session_inflight *e)
{
    RM_ASSERT(s->client != NULL);
    if (e->state == SESSION_WAIT_PUBCOMP)
        return output_ack(b, s->client, MQTT_PUBREL, e->pkt_id);
    const uint32_t *ids;
    uint32_t n = via_ids(&e->via, &e->sub_id, &ids);
    int rc = send_publish(b, s, e->msg, inflight_qos(e), e->retain, !e->fresh, e->pkt_id, ids,
                          n, output_hard_max(b));
    if (rc == 0)
        e->fresh = e->wait = 0;
    return rc;
}

static void inflight_remove(struct broker *b, struct session *s, struct session_inflight *e);

/*
 * Fill the window: first the entries a resume left unsent, then the queue,
 * never more unacknowledged than window() [MQTT-3.3.4-9].
 */
static int pump(struct broker *b, struct session *s)
{
    RM_ASSERT(s->client != NULL);
    RM_ASSERT(s->inflight_unsent <= s->inflight_count);
    int rc = 0;
    while (s->inflight_unsent > 0 && s->inflight_count - s->inflight_unsent < window(b, s)) {
        struct session_inflight *e = &s->inflight[s->inflight_count - s->inflight_unsent];
        /*
         * A PUBREL resent on a resume whose PUBREC record may not be durable
         * yet (the wait of the connection that logged it was cut short): it
         * lets the receiver forget the message, so it waits for that record
         * (fsync = always), and the rest behind it in order.
         */
        if (e->state == SESSION_WAIT_PUBCOMP && wal_noted(b, WAL_NOTE_PUBREC, s->_hash)) {
            if (wal_pump_later(b, wal_batch(b), s->_hash))
                break;
            /* No memory to hold it back: the client goes, rather than the PUBREL outrun it. */
            rc = -MQTT_RC_SERVER_UNAVAILABLE;
            goto out;
        }
        /* A QoS 2 PUBLISH whose record is not durable yet (hold_first()), and all behind it. */
        if (held(b, e)) {
            uint8_t n = wal_batch_durable(b, e->batch) ? wal_batch(b) : e->batch;
            if (wal_pump_later(b, n, s->_hash))
                break;
            rc = -MQTT_RC_SERVER_UNAVAILABLE;
            goto out;
        }
        rc = resend(b, s, e);
        if (rc < 0)
            goto out;
        s->inflight_unsent--;
        if (rc == 1)
            inflight_remove(b, s, e); /* too large for this connection: as if delivered */
        rc = 0;
    }
    while ((s->inflight_unsent == 0 || holding(s)) && s->queue_count > 0 &&
           s->inflight_count < window(b, s)) {
        struct session_queued q = *queue_at(s, 0);
        uint32_t before = s->inflight_count;
        rc = window_add(b, s, q.msg, q.qos, q.retain, q.via, q.sub_id);
        if (rc < 0)
            break;
        /* Sent with its packet id, or dropped as if delivered (0). */
        log_pkt(b, s, WAL_SENT, s->inflight_count > before ? s->inflight[before].pkt_id : 0);
        s->queue_head = (s->queue_head + 1) % s->queue_cap;
        s->queue_count--;
        b->stats.queued--;
        s->queue_bytes -= q.msg->payload_len;
        outbox_msg_put(b, q.msg);
    }
out:
    /*
     * The output is full (a window of large messages resent on resume, or
     * a backlog): stop here. What is already on its way to the client brings
     * an acknowledgement, and each one pumps again. Only with nothing of
     * this session's on the way is a full output the client's end.
     */
    if (rc == -ENOBUFS && s->inflight_count > s->inflight_unsent)
        return 0;
    return rc;
}

void session_deliver(struct broker *b, struct session *s, struct msg *m, uint8_t qos, bool retain,
                     uint64_t share_key, const uint32_t *sub_ids, uint32_t sub_id_count)
{
    RM_ASSERT(qos <= 2);
    RM_ASSERT(m != NULL);
    RM_ASSERT(sub_ids != NULL || sub_id_count == 0);
    if (qos == 0) {
        /* Offline: QoS 0 is not kept. */
        if (!s->client || send_publish(b, s, m, 0, retain, false, 0, sub_ids, sub_id_count,
                                       b->lim->output_bytes_max) < 0) {
            b->stats.msgs_dropped++;
            if (s->client)
                output_overloaded(b, s->client);
        }
        return;
    }
    union session_via via;
    uint32_t sub_id;
    if (via_keep(share_key, sub_ids, sub_id_count, &via, &sub_id) < 0)
        b->stats.route_nomem++; /* delivered with its first identifier only */
    /*
     * Offline: keep it for the next connection. Online: keep order, nothing
     * overtakes messages already waiting in the queue.
     */
    uint64_t key = via_share_key(&via, sub_id);
    const uint32_t *ids; /* what was kept (all, or the first when out of memory) */
    uint32_t n = via_ids(&via, &sub_id, &ids);
    bool tried = false;
    if (s->client && s->queue_count == 0 && (s->inflight_unsent == 0 || holding(s)) &&
        s->inflight_count < window(b, s)) {
        uint32_t before = s->inflight_count;
        if (window_add(b, s, m, qos, retain, via, sub_id) == 0) {
            if (s->inflight_count > before)
                log_deliver(b, s, m, qos, retain, key, ids, n, s->inflight[before].pkt_id);
            return;
        }
        tried = true;
    }
    if (tried && hold_first(b, s, qos)) {
        /*
         * It could not be held (no memory), so no pump may come for it: the
         * client goes, rather than wait for nothing, and its return sends it.
         */
        output_close(b, s->client, -MQTT_RC_SERVER_UNAVAILABLE);
    }
    if (!queue_push(b, s, m, qos, retain, via, sub_id)) {
        via_drop(&via, &sub_id);
        b->stats.queue_full++;
        if (s->client)
            output_overloaded(b, s->client);
        return;
    }
    log_deliver(b, s, m, qos, retain, key, ids, n, 0);
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
    if (e - s->inflight >= (ptrdiff_t)(s->inflight_count - s->inflight_unsent))
        s->inflight_unsent--; /* acknowledged before it was re-sent here */
    log_pkt(b, s, WAL_DONE, e->pkt_id);
    outbox_msg_put(b, e->msg);
    via_drop(&e->via, &e->sub_id);
    size_t tail = (size_t)(s->inflight + s->inflight_count - (e + 1));
    memmove(e, e + 1, tail * sizeof(*e));
    s->inflight_count--;
    b->stats.inflight--;
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

int session_on_pubrec(struct broker *b, struct session *s, uint16_t pkt_id, uint8_t rc)
{
    RM_ASSERT(s->client != NULL);
    struct session_inflight *e = inflight_find(s, pkt_id, SESSION_WAIT_PUBREC);
    if (e && rc >= 0x80) {
        /* The receiver refused it: the flow ends here, no PUBREL [MQTT-4.3.3-4 (v5)]. */
        inflight_remove(b, s, e);
        return pump(b, s);
    }
    if (e) {
        /* The receiver owns the message now [MQTT-4.3.3-1]: keep only the id. */
        outbox_msg_put(b, e->msg);
        e->msg = NULL;
        via_drop(&e->via, &e->sub_id);
        e->state = SESSION_WAIT_PUBCOMP;
        log_pkt(b, s, WAL_PUBREC, pkt_id);
        if (logged(b, s))
            wal_note(b, WAL_NOTE_PUBREC, s->_hash);
    } else if (!inflight_find(s, pkt_id, SESSION_WAIT_PUBCOMP)) {
        return 0;
    }
    return 1; /* PUBREL due */
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

static struct session_qos2 *qos2_find(struct session *s, uint16_t pkt_id)
{
    for (uint32_t i = 0; i < s->qos2_in_count; i++) {
        if (s->qos2_in[i].pkt_id == pkt_id)
            return &s->qos2_in[i];
    }
    return NULL;
}

int session_qos2_in_add(struct broker *b, struct session *s, uint16_t pkt_id)
{
    RM_ASSERT(pkt_id != 0);
    if (qos2_find(s, pkt_id))
        return 0;
    if (s->qos2_in_count >= b->lim->inflight_in_max)
        return -MQTT_RC_RECEIVE_MAX_EXCEEDED;
    int rc = grow_array((void **)&s->qos2_in, &s->qos2_in_cap, s->qos2_in_count,
                        sizeof(*s->qos2_in));
    if (rc < 0)
        return rc;
    s->qos2_in[s->qos2_in_count++] = (struct session_qos2){.pkt_id = pkt_id};
    RM_ASSERT(s->qos2_in_count <= s->qos2_in_cap);
    return 1;
}

void session_qos2_in_log(struct broker *b, struct session *s, uint16_t pkt_id)
{
    struct session_qos2 *q = qos2_find(s, pkt_id);
    if (!q)
        return; /* released meanwhile (a v5 refusal of its resend): nothing to commit */
    q->origin = 0; /* committed: a resend is a duplicate from now on */
    log_pkt(b, s, WAL_QOS2_IN, pkt_id);
}

void session_qos2_in_commit(struct broker *b, struct session *s, uint16_t pkt_id,
                            uint64_t origin)
{
    const struct session_qos2 *q = qos2_find(s, pkt_id);
    if (q && q->origin == origin)
        session_qos2_in_log(b, s, pkt_id);
}

void session_qos2_in_pend(struct broker *b, struct session *s, uint16_t pkt_id, uint64_t origin)
{
    struct session_qos2 *q = qos2_find(s, pkt_id);
    RM_ASSERT(q != NULL && origin != 0);
    q->origin = origin;
    if (logged(b, s))
        wal_qos2_pend(b, s->client_id, s->client_id_len, pkt_id, origin);
}

uint64_t session_qos2_in_resume(struct session *s, uint16_t pkt_id)
{
    struct session_qos2 *q = qos2_find(s, pkt_id);
    if (!q || !q->recovered)
        return 0;
    q->recovered = false;
    return q->origin;
}

int session_qos2_in_restore(struct broker *b, struct session *s, uint16_t pkt_id,
                            uint64_t origin)
{
    int rc = session_qos2_in_add(b, s, pkt_id);
    if (rc < 0)
        return rc;
    struct session_qos2 *q = qos2_find(s, pkt_id);
    q->origin = origin;
    q->recovered = origin != 0;
    return 0;
}

void session_on_pubrel(struct broker *b, struct session *s, uint16_t pkt_id)
{
    RM_ASSERT(s != NULL);
    for (uint32_t i = 0; i < s->qos2_in_count; i++) {
        if (s->qos2_in[i].pkt_id == pkt_id) {
            s->qos2_in[i] = s->qos2_in[--s->qos2_in_count];
            log_pkt(b, s, WAL_QOS2_REL, pkt_id);
            return;
        }
    }
}

int session_pump(struct broker *b, struct session *s)
{
    return pump(b, s);
}

int session_resume(struct broker *b, struct session *s)
{
    RM_ASSERT(s->client != NULL);
    RM_ASSERT(s->inflight_count <= s->inflight_cap);
    RM_ASSERT(s->inflight_count <= UINT16_MAX); /* within inflight_max, at most 65535 */
    /*
     * Same order as first sent [MQTT-4.4.0-1], [MQTT-4.6.0-1..4], as many
     * as the new connection's Receive Maximum allows; pump() sends the rest
     * as acknowledgements free the window.
     */
    s->inflight_unsent = (uint16_t)s->inflight_count;
    return pump(b, s);
}

void session_share_redispatch(struct broker *b, struct session *s, session_give_fn give,
                              void *give_ctx)
{
    RM_ASSERT(s != NULL);
    RM_ASSERT(s->client == NULL);
    if (!give)
        return;
    for (uint32_t i = 0; i < s->inflight_count;) {
        struct session_inflight *e = &s->inflight[i];
        /*
         * QoS 1 only: a QoS 2 PUBLISH once sent is completed with this
         * session or not at all [MQTT-4.8.2-4, -5]. Queued ones were never
         * sent, so any QoS may go.
         */
        uint64_t key = via_share_key(&e->via, e->sub_id);
        if (key && e->state == SESSION_WAIT_PUBACK && give(give_ctx, e->msg, key, s)) {
            inflight_remove(b, s, e);
            continue;
        }
        i++;
    }
    uint32_t kept = 0;
    uint32_t n = s->queue_count;
    for (uint32_t i = 0; i < n; i++) {
        struct session_queued q = *queue_at(s, i);
        uint64_t key = via_share_key(&q.via, q.sub_id);
        if (key && give(give_ctx, q.msg, key, s)) {
            if (logged(b, s))
                wal_dropq(b, s->client_id, s->client_id_len, kept);
            s->queue_bytes -= q.msg->payload_len;
            b->stats.queued--;
            outbox_msg_put(b, q.msg);
            via_drop(&q.via, &q.sub_id);
            continue;
        }
        *queue_at(s, kept++) = q;
    }
    s->queue_count = kept;
}

void session_wal_snapshot(struct broker *b, const struct session *s)
{
    RM_ASSERT(b->wal != NULL);
    RM_ASSERT(s->expiry_s != 0);
    const uint8_t *cid = s->client_id;
    size_t cid_len = s->client_id_len;
    wal_session(b, cid, cid_len, session_username(s), s->username_len, s->expiry_s, s->listener);
    wal_reset(b, cid, cid_len);
    for (uint32_t i = 0; i < s->sub_count; i++) {
        const struct session_sub *sub = &s->subs[i];
        wal_sub(b, cid, cid_len, sub->filter, sub->filter_len, sub->options, sub->sub_id);
    }
    for (uint32_t i = 0; i < s->inflight_count; i++) {
        const struct session_inflight *e = &s->inflight[i];
        const uint32_t *ids;
        uint32_t n = via_ids(&e->via, &e->sub_id, &ids);
        if (e->state == SESSION_WAIT_PUBCOMP)
            wal_pkt(b, WAL_PUBREC, cid, cid_len, e->pkt_id);
        else
            wal_deliver(b, cid, cid_len, e->msg, inflight_qos(e), e->retain,
                        via_share_key(&e->via, e->sub_id), ids, n, e->pkt_id);
    }
    for (uint32_t i = 0; i < s->queue_count; i++) {
        const struct session_queued *q = queue_at((struct session *)s, i);
        const uint32_t *ids;
        uint32_t n = via_ids(&q->via, &q->sub_id, &ids);
        wal_deliver(b, cid, cid_len, q->msg, q->qos, q->retain, via_share_key(&q->via, q->sub_id),
                    ids, n, 0);
    }
    for (uint32_t i = 0; i < s->qos2_in_count; i++) {
        const struct session_qos2 *q = &s->qos2_in[i];
        if (q->origin) /* not committed yet: a crash must not take a resend for a duplicate */
            wal_qos2_pend(b, cid, cid_len, q->pkt_id, q->origin);
        else
            wal_pkt(b, WAL_QOS2_IN, cid, cid_len, q->pkt_id);
    }
}

int session_restore(struct broker *b, struct session *s, struct msg *m, uint8_t qos, bool retain,
                    uint64_t share_key, const uint32_t *ids, uint32_t n, uint16_t pkt_id)
{
    RM_ASSERT(s->client == NULL);
    RM_ASSERT(m != NULL || pkt_id != 0);
    RM_ASSERT(ids != NULL || n == 0);
    union session_via via;
    uint32_t id;
    if (via_keep(share_key, ids, n, &via, &id) < 0)
        return -ENOMEM;
    if (pkt_id != 0) {
        /*
         * Ids go on from the last one sent, as before the restart: one freed
         * in this run is not handed out again before its release is durable
         * (a receiver that still holds it would take the new message for
         * the old one's PUBREL).
         */
        s->next_pkt_id = (uint16_t)(pkt_id == 65535 ? 1 : pkt_id + 1);
    }
    if (pkt_id == 0) {
        if (queue_push(b, s, m, qos, retain, via, id))
            return 0;
        via_drop(&via, &id);
        b->stats.queue_full++;
        return -ENOSPC;
    }
    int rc = grow_array((void **)&s->inflight, &s->inflight_cap, s->inflight_count,
                  sizeof(*s->inflight));
    if (rc < 0) {
        via_drop(&via, &id);
        return rc;
    }
    uint8_t state = !m         ? SESSION_WAIT_PUBCOMP
                    : qos == 1 ? SESSION_WAIT_PUBACK
                               : SESSION_WAIT_PUBREC;
    b->stats.inflight++;
    s->inflight[s->inflight_count++] = (struct session_inflight){
        .msg = m ? msg_ref(m) : NULL,
        .via = via,
        .sub_id = id,
        .pkt_id = pkt_id,
        .state = state,
        .retain = retain,
    };
    return 0;
}
