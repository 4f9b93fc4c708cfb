/*
 * wal_replay.c - a shard's broker rebuilt from the write-ahead log (see
 * wal_replay.h).
 *
 * Two passes. The first folds the records into a model: per session its
 * user, expiry, subscriptions, kept messages (pointing at their WAL_MSG
 * records) and inbound QoS 2 ids; per retained topic its last set. Nothing
 * is copied: the model points into the segments. The second builds
 * sessions and messages from the model. Owned by one shard before its loop
 * runs; single-threaded.
 */
#include "core/wal_replay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "core/broker_types.h"
#include "core/deadline.h"
#include "core/give.h"
#include "core/grow.h"
#include "core/home.h"
#include "core/msg.h"
#include "core/outbox.h"
#include "core/replica.h"
#include "core/rm_assert.h"
#include "core/sess_table.h"
#include "core/session.h"
#include "core/share.h"
#include "core/wal.h"
#include "core/wal_format.h"
#include "core/xrecv.h"

/* A WAL_MSG record: where its fields are, and the msg built from it (lazily). */
struct rmsg {
    uint64_t key; /* (stream << 40) | id */
    uint64_t origin; /* its QoS 2 tag (core/wal.h); 0: none */
    uint64_t expiry_wall_ms;
    const uint8_t *topic;
    const uint8_t *props;
    const uint8_t *payload;
    uint32_t topic_len;
    uint32_t props_len;
    uint32_t payload_len;
    uint8_t qos;
    bool retain;
    struct msg *m;
};

/* One kept message of a session. */
struct rent {
    uint32_t msg; /* index in replay.msgs + 1; 0: released QoS 2 (no message) */
    uint32_t sub_id;
    const uint8_t *more_ids; /* more_n more identifiers, u32 little-endian, in the segment */
    uint16_t more_n;
    uint64_t share_key;
    uint16_t pkt_id; /* 0: queued, never sent */
    uint8_t qos;
    bool retain;
    bool gone;
};

struct rsub {
    const uint8_t *filter;
    uint32_t len;
    uint32_t sub_id;
    uint8_t options;
};

/* A retained topic's last set (or a delayed will: struct rsess). */
struct rret {
    const uint8_t *topic;
    uint32_t topic_len;
    uint32_t props_len;
    uint32_t payload_len;
    const uint8_t *props;
    const uint8_t *payload;
    uint64_t expiry_wall_ms;
    uint8_t qos;
};

/* An inbound QoS 2 id of a session: uncommitted with its tag, or committed (origin 0). */
struct rq2 {
    uint64_t origin;
    uint16_t pkt_id;
};

/* A give's record (core/give.h) of a session's: WAL_GIVE, or WAL_GIVEN (msg 0). */
struct rgive {
    uint64_t id;
    uint64_t key;
    uint32_t msg; /* index in replay.msgs + 1; 0: WAL_GIVEN */
    uint32_t seq; /* the order read: the last record of an id says whether it is open */
};

struct rsess {
    const uint8_t *cid;
    uint32_t cid_len;
    const uint8_t *user;
    uint32_t user_len;
    uint32_t expiry_s;
    uint8_t listener; /* whose ACL applies */
    struct rsub *subs;
    uint32_t sub_count, sub_cap;
    struct rent *ents;
    uint32_t ent_head, ent_count, ent_cap;
    uint32_t unsent; /* the first entry never sent (all before it were) */
    struct rq2 *q2; /* followed for every session: any shard may hold who had an origin */
    uint32_t q2_count, q2_cap;
    struct rgive *gives; /* kept through its end: they outlive it */
    uint32_t give_count, give_cap;
    uint32_t home;  /* its home shard under today's count */
    struct rret will; /* its delayed will when will_due_wall_ms != 0 (expiry: seconds) */
    bool will_retain;
    uint64_t will_due_wall_ms;
};


/* Open addressing: slot -> index + 1 into an array, by 64-bit hash. */
struct rtab {
    uint32_t *slot;
    uint64_t *hash;
    uint32_t cap; /* a power of two, or 0 */
    uint32_t count;
};

struct replay {
    struct broker *b;
    int64_t wall_offset_ms;
    uint64_t now_wall_ms;
    struct rmsg *msgs;
    uint32_t msg_count, msg_cap;
    struct rtab msg_tab;
    struct rsess *sess;
    uint32_t sess_count, sess_cap;
    struct rtab sess_tab;
    struct rret *ret;
    uint32_t ret_count, ret_cap;
    struct rtab ret_tab;
    uint64_t stream; /* the segment stream being read (from 1) */
    struct wal_has *has; /* who had which origin (tagged deliveries, WAL_HAS) */
    uint32_t has_count, has_cap;
    uint64_t origin_max;
    struct wal_replay_report *rep;
    bool nomem;
};

static int tab_grow(struct rtab *t)
{
    if ((t->count + 1) * 2 <= t->cap)
        return 0;
    uint32_t ncap = t->cap ? t->cap * 2 : 64;
    uint32_t *slot = calloc(ncap, sizeof(*slot));
    uint64_t *hash = calloc(ncap, sizeof(*hash));
    if (!slot || !hash) {
        free(slot);
        free(hash);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < t->cap; i++) {
        if (!t->slot[i])
            continue;
        uint32_t j = (uint32_t)t->hash[i] & (ncap - 1);
        while (slot[j])
            j = (j + 1) & (ncap - 1);
        slot[j] = t->slot[i];
        hash[j] = t->hash[i];
    }
    free(t->slot);
    free(t->hash);
    t->slot = slot;
    t->hash = hash;
    t->cap = ncap;
    return 0;
}

/*
 * The slot for @h where @same(ctx, index) says the key matches: its index
 * + 1 in *@found (0: free slot). Bounded by the capacity.
 */
static uint32_t tab_find(const struct rtab *t, uint64_t h, bool (*same)(const void *, uint32_t),
                         const void *ctx, uint32_t *found)
{
    *found = 0;
    if (!t->cap)
        return 0;
    uint32_t j = (uint32_t)h & (t->cap - 1);
    for (uint32_t n = 0; n < t->cap && t->slot[j]; n++) {
        if (t->hash[j] == h && same(ctx, t->slot[j] - 1)) {
            *found = t->slot[j];
            return j;
        }
        j = (j + 1) & (t->cap - 1);
    }
    return j;
}

struct key_ctx {
    const struct replay *r;
    const uint8_t *p;
    uint32_t len;
    uint64_t u;
};

static bool same_msg(const void *ctx, uint32_t i)
{
    const struct key_ctx *k = ctx;
    return k->r->msgs[i].key == k->u;
}

/* A message id of the segment being read, as a key unique across segments. */
static uint64_t msg_key(const struct replay *r, uint64_t id)
{
    return (r->stream << 40) | (id & ((1ull << 40) - 1));
}

/* The model message WAL_MSG @id of the segment being read wrote: its index + 1, or 0. */
static uint32_t msg_find(const struct replay *r, uint64_t id)
{
    struct key_ctx k = {r, NULL, 0, msg_key(r, id)};
    uint32_t found;
    tab_find(&r->msg_tab, XXH3_64bits(&k.u, sizeof(k.u)), same_msg, &k, &found);
    return found;
}

static bool same_sess(const void *ctx, uint32_t i)
{
    const struct key_ctx *k = ctx;
    const struct rsess *s = &k->r->sess[i];
    return s->cid_len == k->len && memcmp(s->cid, k->p, k->len) == 0;
}

static bool same_ret(const void *ctx, uint32_t i)
{
    const struct key_ctx *k = ctx;
    const struct rret *t = &k->r->ret[i];
    return t->topic_len == k->len && memcmp(t->topic, k->p, k->len) == 0;
}

/*
 * The session @cid (created when @create), else NULL. Every shard follows
 * every session's subscriptions (another shard's are its interest here);
 * only its home follows its messages.
 */
static struct rsess *sess_of(struct replay *r, const uint8_t *cid, uint32_t len, bool create)
{
    struct key_ctx k = {r, cid, len, 0};
    uint64_t h = XXH3_64bits(cid, len);
    uint32_t found;
    uint32_t j = tab_find(&r->sess_tab, h, same_sess, &k, &found);
    if (found)
        return &r->sess[found - 1];
    if (!create)
        return NULL;
    if (tab_grow(&r->sess_tab) < 0 ||
        grow_array((void **)&r->sess, &r->sess_cap, r->sess_count, sizeof(*r->sess)) < 0) {
        r->nomem = true;
        return NULL;
    }
    j = tab_find(&r->sess_tab, h, same_sess, &k, &found);
    RM_ASSERT(!found);
    r->sess[r->sess_count] =
        (struct rsess){.cid = cid, .cid_len = len, .home = home_shard(cid, len, r->b->shard_count)};
    r->sess_tab.slot[j] = ++r->sess_count;
    r->sess_tab.hash[j] = h;
    r->sess_tab.count++;
    return &r->sess[r->sess_count - 1];
}

/* Forget @s's state, keeping the session (WAL_RESET, WAL_SESSION_END). */
static void sess_clear(struct rsess *s)
{
    s->will_due_wall_ms = 0;
    s->sub_count = 0;
    s->ent_head = s->ent_count = s->unsent = 0;
    s->q2_count = 0;
}

/* The message body fields of WAL_MSG and WAL_RETAIN, after their own leading fields. */
static void read_body(struct wal_in *in, uint64_t *expiry, const uint8_t **topic, uint32_t *tlen,
                      const uint8_t **props, uint32_t *plen, const uint8_t **payload,
                      uint32_t *paylen)
{
    *expiry = wal_get_u64(in);
    *topic = wal_get_str16(in, tlen);
    *props = wal_get_str32(in, plen);
    *payload = wal_get_str32(in, paylen);
}

static int on_msg(struct replay *r, struct wal_in *in)
{
    struct rmsg m = {0};
    uint64_t id = wal_get_u64(in);
    m.qos = wal_get_u8(in);
    m.retain = wal_get_u8(in) != 0;
    read_body(in, &m.expiry_wall_ms, &m.topic, &m.topic_len, &m.props, &m.props_len, &m.payload,
              &m.payload_len);
    if (!in->bad && !wal_in_done(in))
        m.origin = wal_get_u64(in);
    if (!wal_in_done(in) || m.qos == 0 || m.qos > 2 || m.topic_len == 0 ||
        m.origin >= WAL_ORIGIN_MAX)
        return -EBADMSG;
    if (m.origin > r->origin_max)
        r->origin_max = m.origin;
    m.key = msg_key(r, id);
    struct key_ctx k = {r, NULL, 0, m.key};
    uint64_t h = XXH3_64bits(&m.key, sizeof(m.key));
    uint32_t found;
    if (tab_grow(&r->msg_tab) < 0 ||
        grow_array((void **)&r->msgs, &r->msg_cap, r->msg_count, sizeof(*r->msgs)) < 0)
        return -ENOMEM;
    uint32_t j = tab_find(&r->msg_tab, h, same_msg, &k, &found);
    if (found)
        return -EBADMSG; /* an id twice in one stream */
    r->msgs[r->msg_count] = m;
    r->msg_tab.slot[j] = ++r->msg_count;
    r->msg_tab.hash[j] = h;
    r->msg_tab.count++;
    return 0;
}

/*
 * The entry just added went out at once. The broker sends at once only
 * with nothing queued, so whatever lies between s->unsent and it has left
 * the queue (WAL_DROPQ leaves its entries in place, marked gone).
 */
static void sent_at_once(struct rsess *s)
{
    RM_ASSERT(s->ent_count > 0);
    for (uint32_t i = s->unsent; i + 1 < s->ent_count; i++) {
        if (!s->ents[i].gone)
            return; /* not what the broker writes (a damaged log): left queued */
    }
    s->unsent = s->ent_count;
}

/* @who had the message tagged @origin (kept if that origin turns out uncommitted). */
static int has_add(struct replay *r, uint64_t origin, uint64_t who)
{
    if (origin > r->origin_max)
        r->origin_max = origin;
    if (grow_array((void **)&r->has, &r->has_cap, r->has_count, sizeof(*r->has)) < 0)
        return -ENOMEM;
    r->has[r->has_count++] = (struct wal_has){origin, who};
    return 0;
}

/*
 * WAL_DELIVER of session @cid: kept for @s when it is ours (else NULL).
 * A tagged message's recipient is noted: a shared group's wherever its
 * member lives, a session's on its home.
 */
static int on_deliver(struct replay *r, struct rsess *s, const uint8_t *cid, uint32_t cid_len,
                      struct wal_in *in)
{
    uint64_t id = wal_get_u64(in);
    struct rent e = {0};
    e.qos = wal_get_u8(in);
    e.retain = wal_get_u8(in) != 0;
    e.share_key = wal_get_u64(in);
    e.sub_id = wal_get_u32(in);
    e.pkt_id = wal_get_u16(in);
    if (!in->bad && !wal_in_done(in)) {
        e.more_n = wal_get_u16(in);
        e.more_ids = in->p;
        for (uint32_t i = 0; i < e.more_n; i++)
            (void)wal_get_u32(in); /* checked here, read at the end */
    }
    if (!wal_in_done(in) || e.qos == 0 || e.qos > 2 || (e.more_n && !e.sub_id))
        return -EBADMSG;
    uint32_t found = msg_find(r, id);
    if (!found)
        return -EBADMSG; /* its WAL_MSG was lost to corruption */
    uint64_t origin = r->msgs[found - 1].origin;
    if (origin && (e.share_key || s) &&
        has_add(r, origin, e.share_key ? e.share_key : sess_table_hash(cid, cid_len)) < 0)
        return -ENOMEM;
    if (!s)
        return 0;
    e.msg = found;
    if (grow_array((void **)&s->ents, &s->ent_cap, s->ent_count, sizeof(*s->ents)) < 0)
        return -ENOMEM;
    s->ents[s->ent_count++] = e;
    if (e.pkt_id != 0)
        sent_at_once(s);
    return 0;
}

/* The live entry of @s with @pkt_id (sent ones come before s->unsent), or NULL. */
static struct rent *ent_find(struct rsess *s, uint16_t pkt_id)
{
    for (uint32_t i = s->ent_head; i < s->unsent; i++) {
        if (!s->ents[i].gone && s->ents[i].pkt_id == pkt_id)
            return &s->ents[i];
    }
    return NULL;
}

static void ent_gone(struct rsess *s, struct rent *e)
{
    e->gone = true;
    while (s->ent_head < s->ent_count && s->ents[s->ent_head].gone)
        s->ent_head++;
    if (s->unsent < s->ent_head)
        s->unsent = s->ent_head;
}

/* Inbound QoS 2 @pkt_id of @s: uncommitted with tag @origin, or committed (0). */
static int q2_set(struct rsess *s, uint16_t pkt_id, uint64_t origin)
{
    for (uint32_t i = 0; i < s->q2_count; i++) {
        if (s->q2[i].pkt_id == pkt_id) {
            s->q2[i].origin = origin;
            return 0;
        }
    }
    if (grow_array((void **)&s->q2, &s->q2_cap, s->q2_count, sizeof(*s->q2)) < 0)
        return -ENOMEM;
    s->q2[s->q2_count++] = (struct rq2){origin, pkt_id};
    return 0;
}

static int on_pkt(struct replay *r, struct rsess *s, uint8_t type, uint16_t pkt_id)
{
    (void)r;
    struct rent *e;
    switch (type) {
    case WAL_SENT:
        while (s->unsent < s->ent_count && s->ents[s->unsent].gone)
            s->unsent++;
        if (s->unsent == s->ent_count)
            return -EBADMSG; /* nothing was queued */
        e = &s->ents[s->unsent++];
        e->pkt_id = pkt_id;
        if (pkt_id == 0)
            ent_gone(s, e); /* dropped as if delivered */
        return 0;
    case WAL_DONE:
        e = ent_find(s, pkt_id);
        if (e)
            ent_gone(s, e);
        return 0;
    case WAL_PUBREC:
        e = ent_find(s, pkt_id);
        if (e) {
            e->msg = 0;
            return 0;
        }
        /* A snapshot's released flow: a window entry of its own. */
        if (grow_array((void **)&s->ents, &s->ent_cap, s->ent_count, sizeof(*s->ents)) < 0)
            return -ENOMEM;
        s->ents[s->ent_count++] = (struct rent){.pkt_id = pkt_id, .qos = 2};
        sent_at_once(s);
        return 0;
    case WAL_QOS2_IN:
        return q2_set(s, pkt_id, 0); /* committed */
    case WAL_QOS2_REL:
        for (uint32_t i = 0; i < s->q2_count; i++) {
            if (s->q2[i].pkt_id == pkt_id) {
                s->q2[i] = s->q2[--s->q2_count];
                break;
            }
        }
        return 0;
    default:
        RM_ASSERT(!"not a packet id record");
        return -EBADMSG;
    }
}

static int on_dropq(struct rsess *s, uint32_t index)
{
    uint32_t n = 0;
    for (uint32_t i = s->unsent; i < s->ent_count; i++) {
        if (s->ents[i].gone)
            continue;
        if (n++ == index) {
            ent_gone(s, &s->ents[i]);
            return 0;
        }
    }
    return -EBADMSG;
}

static int on_sub(struct rsess *s, struct wal_in *in, bool add)
{
    struct rsub sub = {0};
    sub.filter = wal_get_str16(in, &sub.len);
    if (add) {
        sub.options = wal_get_u8(in);
        sub.sub_id = wal_get_u32(in);
    }
    if (!wal_in_done(in) || sub.len == 0)
        return -EBADMSG;
    for (uint32_t i = 0; i < s->sub_count; i++) {
        if (s->subs[i].len == sub.len && memcmp(s->subs[i].filter, sub.filter, sub.len) == 0) {
            if (add)
                s->subs[i] = sub;
            else
                s->subs[i] = s->subs[--s->sub_count];
            return 0;
        }
    }
    if (!add)
        return 0;
    if (grow_array((void **)&s->subs, &s->sub_cap, s->sub_count, sizeof(*s->subs)) < 0)
        return -ENOMEM;
    s->subs[s->sub_count++] = sub;
    return 0;
}

static int on_retain(struct replay *r, struct wal_in *in)
{
    struct rret t = {0};
    t.qos = wal_get_u8(in);
    read_body(in, &t.expiry_wall_ms, &t.topic, &t.topic_len, &t.props, &t.props_len, &t.payload,
              &t.payload_len);
    if (!wal_in_done(in) || t.qos > 2 || t.topic_len == 0)
        return -EBADMSG;
    struct key_ctx k = {r, t.topic, t.topic_len, 0};
    uint64_t h = XXH3_64bits(t.topic, t.topic_len);
    uint32_t found;
    uint32_t j = tab_find(&r->ret_tab, h, same_ret, &k, &found);
    if (found) {
        r->ret[found - 1] = t; /* a clear too: an empty payload is dropped at the end */
        return 0;
    }
    if (tab_grow(&r->ret_tab) < 0 ||
        grow_array((void **)&r->ret, &r->ret_cap, r->ret_count, sizeof(*r->ret)) < 0)
        return -ENOMEM;
    j = tab_find(&r->ret_tab, h, same_ret, &k, &found);
    r->ret[r->ret_count] = t;
    r->ret_tab.slot[j] = ++r->ret_count;
    r->ret_tab.hash[j] = h;
    r->ret_tab.count++;
    return 0;
}

/* WAL_GIVE (@add) or WAL_GIVEN of session @s (ours), give @id: sorted out by build_gives(). */
static int on_give(struct replay *r, struct rsess *s, uint64_t id, uint64_t mid, uint64_t key,
                   bool add)
{
    uint32_t found = add ? msg_find(r, mid) : 0;
    if (add && (!found || key == 0))
        return -EBADMSG; /* its WAL_MSG was lost to corruption */
    if (grow_array((void **)&s->gives, &s->give_cap, s->give_count, sizeof(*s->gives)) < 0)
        return -ENOMEM;
    s->gives[s->give_count] = (struct rgive){id, key, found, s->give_count};
    s->give_count++;
    return 0;
}

/* Fold one record into the model: 0, -EBADMSG (its fields are wrong) or -ENOMEM. */
static int apply(struct replay *r, const struct wal_rec *rec)
{
    struct wal_in in = wal_in_of(rec);
    if (rec->type == WAL_SEGMENT) {
        (void)wal_get_u64(&in); /* magic: net/ named the file after the rest */
        /* A later version's records would be misread: refused whole (wal_replay()). */
        return wal_get_u32(&in) > WAL_VERSION ? -EPROTONOSUPPORT : 0;
    }
    if (rec->type == WAL_MSG)
        return on_msg(r, &in);
    if (rec->type == WAL_RETAIN)
        return on_retain(r, &in);
    if (rec->type == WAL_HAS) {
        uint64_t origin = wal_get_u64(&in);
        uint64_t who = wal_get_u64(&in);
        return !wal_in_done(&in) || origin == 0 || origin >= WAL_ORIGIN_MAX
                   ? -EBADMSG
                   : has_add(r, origin, who);
    }
    uint32_t cid_len;
    const uint8_t *cid = wal_get_str16(&in, &cid_len);
    if (in.bad || cid_len == 0)
        return -EBADMSG;
    bool give = rec->type == WAL_GIVE || rec->type == WAL_GIVEN;
    struct rsess *s = sess_of(r, cid, cid_len, rec->type == WAL_SESSION || rec->type == WAL_GIVE);
    if (r->nomem)
        return -ENOMEM;
    bool ours = s && s->home == r->b->shard_id;
    if (give) {
        uint64_t id = wal_get_u64(&in);
        uint64_t mid = rec->type == WAL_GIVE ? wal_get_u64(&in) : 0;
        uint64_t key = rec->type == WAL_GIVE ? wal_get_u64(&in) : 0;
        if (!wal_in_done(&in) || id == 0 || id >= WAL_ORIGIN_MAX)
            return -EBADMSG;
        if (id > r->origin_max)
            r->origin_max = id; /* from the same numbers as origins */
        return ours ? on_give(r, s, id, mid, key, rec->type == WAL_GIVE) : 0;
    }
    if (rec->type == WAL_DELIVER)
        return on_deliver(r, ours ? s : NULL, cid, cid_len, &in); /* checks its message */
    if (!s)
        return 0; /* a session that ended */
    /* Inbound QoS 2 state too: every shard learns which origins are uncommitted. */
    if (!ours && rec->type != WAL_SESSION && rec->type != WAL_SESSION_END &&
        rec->type != WAL_RESET && rec->type != WAL_SUB && rec->type != WAL_UNSUB &&
        rec->type != WAL_QOS2_IN && rec->type != WAL_QOS2_REL && rec->type != WAL_QOS2_PEND)
        return 0; /* another shard's message flow */
    switch (rec->type) {
    case WAL_SESSION:
        s->user = wal_get_str8(&in, &s->user_len);
        s->expiry_s = wal_get_u32(&in);
        s->listener = wal_in_done(&in) ? 0 : wal_get_u8(&in); /* older logs: no listener */
        if (s->expiry_s == 0)
            sess_clear(s); /* it ends with its connection: a later one starts afresh */
        return wal_in_done(&in) ? 0 : -EBADMSG;
    case WAL_SESSION_END:
        sess_clear(s);
        s->expiry_s = 0;
        return wal_in_done(&in) ? 0 : -EBADMSG;
    case WAL_RESET:
        sess_clear(s);
        return wal_in_done(&in) ? 0 : -EBADMSG;
    case WAL_SNAP_END:
        return wal_in_done(&in) ? 0 : -EBADMSG;
    case WAL_SUB:
    case WAL_UNSUB:
        return on_sub(s, &in, rec->type == WAL_SUB);
    case WAL_WILL:
        s->will_due_wall_ms = wal_get_u64(&in);
        s->will.qos = wal_get_u8(&in);
        s->will_retain = wal_get_u8(&in) != 0;
        s->will.expiry_wall_ms = wal_get_u32(&in); /* seconds from its publish, here */
        s->will.topic = wal_get_str16(&in, &s->will.topic_len);
        s->will.props = wal_get_str32(&in, &s->will.props_len);
        s->will.payload = wal_get_str32(&in, &s->will.payload_len);
        if (!wal_in_done(&in) || s->will.qos > 2 || s->will.topic_len == 0 ||
            s->will_due_wall_ms == 0) {
            s->will_due_wall_ms = 0;
            return -EBADMSG;
        }
        return 0;
    case WAL_WILL_GONE:
        s->will_due_wall_ms = 0;
        return wal_in_done(&in) ? 0 : -EBADMSG;
    case WAL_DROPQ: {
        uint32_t index = wal_get_u32(&in);
        return wal_in_done(&in) ? on_dropq(s, index) : -EBADMSG;
    }
    case WAL_QOS2_PEND: {
        uint16_t pkt_id = wal_get_u16(&in);
        uint64_t origin = wal_get_u64(&in);
        if (!wal_in_done(&in) || origin == 0 || origin >= WAL_ORIGIN_MAX)
            return -EBADMSG;
        if (origin > r->origin_max)
            r->origin_max = origin;
        return q2_set(s, pkt_id, origin);
    }
    default: {
        uint16_t pkt_id = wal_get_u16(&in);
        return wal_in_done(&in) ? on_pkt(r, s, rec->type, pkt_id) : -EBADMSG;
    }
    }
}

/* @rec's client id, if it is a session's record (all but WAL_SEGMENT, _MSG, _RETAIN, _HAS). */
static bool rec_cid(const struct wal_rec *rec, const uint8_t **cid, uint32_t *len)
{
    if (rec->type == WAL_SEGMENT || rec->type == WAL_MSG || rec->type == WAL_RETAIN ||
        rec->type == WAL_HAS)
        return false;
    struct wal_in in = wal_in_of(rec);
    *cid = wal_get_str16(&in, len);
    return !in.bad;
}

/*
 * The WAL_RESET @reset (just read; @off is past it) starts a session's
 * snapshot: true if its WAL_SNAP_END follows, with only that session's
 * records and messages between. Else *@stop is where it broke off (a torn
 * tail, damage): the snapshot is not trusted, the state before it stays.
 */
static bool snapshot_whole(const uint8_t *buf, size_t len, size_t off, const struct wal_rec *reset,
                           size_t *stop)
{
    const uint8_t *cid;
    uint32_t cid_len;
    if (!rec_cid(reset, &cid, &cid_len))
        return true; /* a malformed RESET: apply() reports it */
    struct wal_rec rec;
    /* Bounded: every step moves @off forward. */
    for (;;) {
        *stop = off;
        if (wal_read(buf, len, &off, &rec) != 1)
            return false;
        const uint8_t *c;
        uint32_t n;
        if (!rec_cid(&rec, &c, &n))
            continue; /* its messages */
        if (n != cid_len || memcmp(c, cid, n) != 0)
            return false;
        if (rec.type == WAL_SNAP_END)
            return true;
    }
}

/* Read one segment into the model. */
static int read_seg(struct replay *r, const struct wal_seg *seg, wal_replay_problem_fn problem,
                    void *ctx)
{
    size_t off = 0;
    struct wal_rec rec;
    /* Records start before @end: past it only zeros, read where a record runs into them. */
    RM_ASSERT(seg->data <= seg->len);
    size_t end = seg->data;
    r->stream++; /* message ids are per segment file, even if its header is damaged */
    size_t skip_until = 0; /* a broken snapshot's records, up to here, are not applied */
    const uint8_t *skip_cid = NULL;
    uint32_t skip_len = 0;
    for (;;) {
        if (off >= end)
            return 0; /* only the hole's zeros are left */
        int rc = wal_read(seg->buf, end, &off, &rec);
        if (rc < 0 && end < seg->len)
            rc = wal_read(seg->buf, seg->len, &off, &rec); /* one ending in the hole */
        if (rc == 0)
            return 0;
        if (rc < 0) {
            size_t next = wal_resync(seg->buf, end, off);
            if (next == end && seg->last) {
                r->rep->torn_bytes += end - off;
                if (problem)
                    problem(ctx, seg->name, off, "torn tail (an unfinished write): ignored");
                return 0;
            }
            r->rep->bad++;
            r->rep->skipped_bytes += next - off;
            if (problem)
                problem(ctx, seg->name, off, "corrupt record: skipped");
            off = next;
            continue;
        }
        r->rep->records++;
        const uint8_t *cid;
        uint32_t cid_len;
        size_t at = off - WAL_HDR_BYTES - rec.len;
        if (skip_cid && at < skip_until && rec_cid(&rec, &cid, &cid_len) && cid_len == skip_len &&
            memcmp(cid, skip_cid, cid_len) == 0)
            continue;
        size_t stop;
        /*
         * A snapshot's records are all before @end (only a segment's last
         * record ends in zeros); a RESET that ran past it begins none.
         */
        if (rec.type == WAL_RESET && !snapshot_whole(seg->buf, off > end ? off : end, off, &rec,
                                                     &stop)) {
            /* A snapshot cut short (a tear mid-compaction): the older segments' state stays. */
            r->rep->bad++;
            if (problem)
                problem(ctx, seg->name, at,
                        "a session's snapshot without its end: the state before it kept");
            (void)rec_cid(&rec, &skip_cid, &skip_len);
            skip_until = stop;
            continue;
        }
        rc = apply(r, &rec);
        if (rc == -EPROTONOSUPPORT && problem)
            problem(ctx, seg->name, at, "written by a later ringmq (a newer log version)");
        if (rc == -ENOMEM || rc == -EPROTONOSUPPORT)
            return rc;
        if (rc < 0) {
            r->rep->bad++;
            if (problem)
                problem(ctx, seg->name, off - WAL_HDR_BYTES - rec.len,
                        "record does not fit its session's state: skipped");
        }
    }
}

/* The msg of model message @i + 1, built on first use; NULL when expired or no memory. */
static struct msg *msg_of(struct replay *r, uint32_t i)
{
    struct rmsg *rm = &r->msgs[i - 1];
    if (rm->m)
        return rm->m;
    if (rm->expiry_wall_ms && rm->expiry_wall_ms <= r->now_wall_ms)
        return NULL;
    rm->m = msg_new(rm->topic, rm->topic_len, rm->props, rm->props_len, rm->payload,
                    rm->payload_len, rm->qos, rm->retain);
    if (rm->m && rm->expiry_wall_ms)
        rm->m->expiry_ms = (uint64_t)((int64_t)rm->expiry_wall_ms - r->wall_offset_ms);
    if (rm->m)
        rm->m->home_shard = r->b->shard_id;
    /*
     * Not rm->origin: who had an uncommitted one is in b->origin_has (and
     * every snapshot); a restored copy passed on to another group member
     * (a redispatch) must not be taken for the resend that skips its group.
     */
    return rm->m;
}

/* Kept entry @e of @s with message @m (NULL: a released QoS 2 flow), its identifiers too. */
static int restore_ent(struct broker *b, struct session *s, struct msg *m, const struct rent *e)
{
    uint32_t one = e->sub_id;
    if (!e->more_n)
        return session_restore(b, s, m, e->qos, e->retain, e->share_key, &one, one != 0,
                               e->pkt_id);
    uint32_t *ids = malloc(((size_t)e->more_n + 1) * sizeof(*ids));
    if (!ids)
        return -ENOMEM;
    ids[0] = e->sub_id;
    struct wal_in in = {e->more_ids, e->more_ids + (size_t)e->more_n * 4, false};
    for (uint32_t i = 1; i <= e->more_n; i++)
        ids[i] = wal_get_u32(&in);
    int rc = session_restore(b, s, m, e->qos, e->retain, e->share_key, ids, e->more_n + 1u,
                             e->pkt_id);
    free(ids);
    return rc;
}

static int build_sess(struct replay *r, struct rsess *rs)
{
    struct broker *b = r->b;
    uint64_t h = sess_table_hash(rs->cid, rs->cid_len);
    struct session *s =
        session_new(rs->cid, rs->cid_len, h, rs->expiry_s, rs->user, rs->user_len, b->acl_on);
    if (!s)
        return -ENOMEM;
    sess_table_insert(b, s);
    r->rep->sessions++;
    /* Its listener's ACL applies (a listener no longer configured: the first one's). */
    s->listener = rs->listener < b->acl_count ? rs->listener : 0;
    for (uint32_t i = 0; i < rs->sub_count; i++) {
        const struct rsub *sub = &rs->subs[i];
        uint32_t announce; /* not sent: every shard learns it from the log (interest()) */
        uint8_t opts = sub->options & (uint8_t)~SESSION_SUBOPT_ACL_CHECK;
        if (session_subscribe(b, s, sub->filter, sub->len, opts, sub->sub_id, &announce) < 0)
            return -ENOMEM;
    }
    session_settle(s);
    session_acl_reclass(b, s); /* today's rules decide which subscriptions are checked */
    for (uint32_t i = rs->ent_head; i < rs->ent_count; i++) {
        const struct rent *e = &rs->ents[i];
        if (e->gone)
            continue;
        struct msg *m = e->msg ? msg_of(r, e->msg) : NULL;
        if (e->msg && !m) {
            r->rep->dropped++; /* expired while the broker was down (or no memory) */
            continue;
        }
        if (restore_ent(b, s, m, e) < 0)
            r->rep->dropped++;
        else
            r->rep->messages++;
    }
    for (uint32_t i = 0; i < rs->q2_count; i++) {
        if (session_qos2_in_restore(b, s, rs->q2[i].pkt_id, rs->q2[i].origin) < 0)
            return -ENOMEM;
    }
    struct msg *will = NULL;
    uint64_t will_at_ms = 0;
    if (rs->will_due_wall_ms) {
        const struct rret *w = &rs->will;
        will = msg_new(w->topic, w->topic_len, w->props, w->props_len, w->payload,
                       w->payload_len, w->qos, rs->will_retain);
        if (!will)
            return -ENOMEM;
        will->home_shard = b->shard_id;
        if (w->expiry_wall_ms) {
            will->expiry_ms = MSG_EXPIRY_AT_PUBLISH;
            will->will_expiry_s = (uint32_t)w->expiry_wall_ms;
        }
        /* Due while the broker was down: at the first tick. */
        will_at_ms = rs->will_due_wall_ms > r->now_wall_ms
                         ? (uint64_t)((int64_t)rs->will_due_wall_ms - r->wall_offset_ms)
                         : b->now_ms;
    }
    /* Its expiry counts from now (it was offline); its delayed will keeps its time. */
    deadline_arm(b, s, will, will_at_ms);
    return 0;
}

static int give_cmp(const void *pa, const void *pb)
{
    const struct rgive *a = pa;
    const struct rgive *b = pb;
    if (a->id != b->id)
        return a->id < b->id ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/*
 * @rs's open gives (its session may have ended), whose last record is a
 * WAL_GIVE (a compaction writes an open one again): sent again at the
 * first tick.
 */
static int build_gives(struct replay *r, struct rsess *rs)
{
    if (rs->give_count > 1)
        qsort(rs->gives, rs->give_count, sizeof(*rs->gives), give_cmp);
    for (uint32_t i = 0; i < rs->give_count; i++) {
        const struct rgive *g = &rs->gives[i];
        if (g->msg == 0 || (i + 1 < rs->give_count && rs->gives[i + 1].id == g->id))
            continue; /* closed, or not its last record */
        struct msg *m = msg_of(r, g->msg);
        if (!m) {
            r->rep->dropped++; /* expired while the broker was down (or no memory) */
            continue;
        }
        if (give_restore(r->b, m, g->key, g->id, rs->cid, rs->cid_len) < 0)
            return -ENOMEM;
        r->rep->messages++;
    }
    return 0;
}

static int build_retained(struct replay *r, const struct rret *t)
{
    if (t->payload_len == 0)
        return 0; /* cleared */
    if (t->expiry_wall_ms && t->expiry_wall_ms <= r->now_wall_ms)
        return 0;
    struct msg *m = msg_new(t->topic, t->topic_len, t->props, t->props_len, t->payload,
                            t->payload_len, t->qos, true);
    if (!m)
        return -ENOMEM;
    uint32_t home = home_shard(t->topic, t->topic_len, r->b->shard_count);
    m->home_shard = home;
    if (t->expiry_wall_ms)
        m->expiry_ms = (uint64_t)((int64_t)t->expiry_wall_ms - r->wall_offset_ms);
    /* Every replica restores it itself: none waits for a broadcast. */
    int rc = replica_restore(r->b, m);
    outbox_msg_put(r->b, m);
    if (rc == -ENOMEM)
        return rc;
    if (home == r->b->shard_id)
        r->rep->retained += rc == 0;
    return 0;
}

/* A shared subscription of another shard's session: that shard's members are counted. */
struct rshare {
    const uint8_t *filter;
    uint32_t len;
    uint32_t home;
};

static int share_cmp(const void *pa, const void *pb)
{
    const struct rshare *a = pa;
    const struct rshare *b = pb;
    if (a->home != b->home)
        return a->home < b->home ? -1 : 1;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return memcmp(a->filter, b->filter, a->len);
}

/*
 * Other shards' sessions' subscriptions become this shard's interest now,
 * as their XMSG_INTEREST_ADDs would make them later: a publish here
 * reaches a restored subscriber on another shard from the first packet
 * any listener serves.
 */
static int learn_interest(struct replay *r)
{
    struct broker *b = r->b;
    struct rshare *shares = NULL;
    uint32_t count = 0;
    uint32_t cap = 0;
    int rc = 0;
    for (uint32_t i = 0; i < r->sess_count && rc == 0; i++) {
        const struct rsess *s = &r->sess[i];
        if (s->expiry_s == 0 || s->home == b->shard_id)
            continue;
        for (uint32_t j = 0; j < s->sub_count && rc == 0; j++) {
            const struct rsub *sub = &s->subs[j];
            struct share_name sn;
            if (share_parse(sub->filter, sub->len, &sn) != 1) {
                rc = xrecv_interest(b, s->home, sub->filter, sub->len, 1, true);
                continue;
            }
            rc = grow_array((void **)&shares, &cap, count, sizeof(*shares));
            if (rc == 0)
                shares[count++] = (struct rshare){sub->filter, sub->len, s->home};
        }
    }
    if (count > 1)
        qsort(shares, count, sizeof(*shares), share_cmp);
    /* Each run of one group on one shard is that shard's member count. */
    for (uint32_t i = 0, n; i < count && rc == 0; i += n) {
        for (n = 1; i + n < count && share_cmp(&shares[i], &shares[i + n]) == 0; n++)
            ;
        rc = xrecv_interest(b, shares[i].home, shares[i].filter, shares[i].len, n, true);
    }
    free(shares);
    return rc < 0 ? -ENOMEM : 0;
}

static int u64_cmp(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa;
    uint64_t b = *(const uint64_t *)pb;
    return a < b ? -1 : a > b;
}

static int has_cmp(const void *pa, const void *pb)
{
    const struct wal_has *a = pa;
    const struct wal_has *b = pb;
    if (a->origin != b->origin)
        return a->origin < b->origin ? -1 : 1;
    return a->who < b->who ? -1 : a->who > b->who;
}

/*
 * Who had which uncommitted origin (some session's inbound QoS 2 whose
 * PUBREC never went out): kept in b->origin_has for the resends
 * (wal_origin_had()), sorted, once each; the rest is forgotten. And the
 * highest origin the log held: new ones start above it.
 */
static int keep_uncommitted(struct replay *r)
{
    struct broker *b = r->b;
    b->origin_floor = r->origin_max;
    uint64_t *open = NULL;
    uint32_t count = 0;
    uint32_t cap = 0;
    for (uint32_t i = 0; i < r->sess_count; i++) {
        const struct rsess *s = &r->sess[i];
        for (uint32_t j = 0; s->expiry_s != 0 && j < s->q2_count; j++) {
            if (!s->q2[j].origin)
                continue;
            if (grow_array((void **)&open, &cap, count, sizeof(*open)) < 0) {
                free(open);
                return -ENOMEM;
            }
            open[count++] = s->q2[j].origin;
        }
    }
    if (count > 1)
        qsort(open, count, sizeof(*open), u64_cmp);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < r->has_count; i++) {
        if (count && bsearch(&r->has[i].origin, open, count, sizeof(*open), u64_cmp))
            r->has[kept++] = r->has[i];
    }
    free(open);
    if (kept > 1)
        qsort(r->has, kept, sizeof(*r->has), has_cmp);
    uint32_t n = 0;
    for (uint32_t i = 0; i < kept; i++) {
        if (n == 0 || has_cmp(&r->has[n - 1], &r->has[i]) != 0)
            r->has[n++] = r->has[i];
    }
    free(b->origin_has);
    b->origin_has = NULL;
    b->origin_has_count = 0;
    if (n == 0)
        return 0;
    b->origin_has = malloc(n * sizeof(*b->origin_has));
    if (!b->origin_has)
        return -ENOMEM;
    memcpy(b->origin_has, r->has, n * sizeof(*b->origin_has));
    b->origin_has_count = n;
    return 0;
}

static void replay_free(struct replay *r)
{
    for (uint32_t i = 0; i < r->msg_count; i++)
        outbox_msg_put(r->b, r->msgs[i].m);
    for (uint32_t i = 0; i < r->sess_count; i++) {
        free(r->sess[i].subs);
        free(r->sess[i].ents);
        free(r->sess[i].q2);
        free(r->sess[i].gives);
    }
    free(r->msgs);
    free(r->has);
    free(r->sess);
    free(r->ret);
    free(r->msg_tab.slot);
    free(r->msg_tab.hash);
    free(r->sess_tab.slot);
    free(r->sess_tab.hash);
    free(r->ret_tab.slot);
    free(r->ret_tab.hash);
}

int wal_replay(struct broker *b, const struct wal_seg *segs, size_t n, int64_t wall_offset_ms,
               wal_replay_problem_fn problem, void *ctx, struct wal_replay_report *rep)
{
    RM_ASSERT(b != NULL && rep != NULL);
    RM_ASSERT(segs != NULL || n == 0);
    *rep = (struct wal_replay_report){0};
    struct replay r = {.b = b, .wall_offset_ms = wall_offset_ms, .rep = rep};
    r.now_wall_ms = (uint64_t)((int64_t)b->now_ms + wall_offset_ms);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = read_seg(&r, &segs[i], problem, ctx);
    if (rc == 0)
        rc = keep_uncommitted(&r);
    for (uint32_t i = 0; i < r.sess_count && rc == 0; i++) {
        if (r.sess[i].home != b->shard_id)
            continue;
        if (r.sess[i].expiry_s != 0)
            rc = build_sess(&r, &r.sess[i]);
        if (rc == 0)
            rc = build_gives(&r, &r.sess[i]); /* its session may have ended */
    }
    if (rc == 0)
        rc = learn_interest(&r);
    for (uint32_t i = 0; i < r.ret_count && rc == 0; i++)
        rc = build_retained(&r, &r.ret[i]);
    replay_free(&r);
    return rc;
}
