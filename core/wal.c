/*
 * wal.c - the records a shard's broker logs, and what waits for them (see wal.h).
 * Owned by one shard; single-threaded.
 */
#include "core/wal.h"

#include <errno.h>
#include <stdlib.h>

#include "core/broker_types.h"
#include "core/grow.h"
#include "core/limits.h"
#include "core/msg.h"
#include "core/outbox.h"
#include "core/rm_assert.h"
#include "core/xmsg.h"

static void end(struct broker *b, size_t off);

/* A promise is lost (see struct wal): counted; waits fail until a snapshot repairs the log. */
static void degrade(struct broker *b)
{
    struct wal *w = b->wal;
    w->nomem++;
    w->losses++;
    w->degraded = true;
    w->repair_wanted = true;
    w->repair_after = w->snaps_begun; /* one already running may have passed what was lost */
}

void wal_lose(struct broker *b)
{
    RM_ASSERT(b->wal != NULL);
    degrade(b);
}

bool wal_degraded(const struct broker *b)
{
    return b->wal && b->wal->degraded;
}

bool wal_repair_wanted(const struct broker *b)
{
    return b->wal && b->wal->repair_wanted;
}

void wal_snap_begin(struct broker *b)
{
    struct wal *w = b->wal;
    w->snap_running = ++w->snaps_begun;
    if (w->degraded && w->snap_running > w->repair_after)
        w->repair_wanted = false; /* this one repairs it, once durable */
}

bool wal_snap_done(struct broker *b, bool durable, bool *repaired)
{
    struct wal *w = b->wal;
    RM_ASSERT(w != NULL && repaired != NULL);
    *repaired = false;
    if (!durable) {
        if (w->degraded) {
            w->repair_wanted = true; /* the next snapshot, begun after this one */
            w->repair_after = w->snaps_begun;
        }
        return false;
    }
    if (w->degraded && w->snap_running <= w->repair_after)
        return false; /* something was lost since it began: not whole */
    *repaired = w->degraded;
    w->degraded = false;
    return true;
}

int wal_init(struct broker *b, bool sync, int64_t wall_offset_ms)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(b->wal == NULL);
    b->wal = calloc(1, sizeof(*b->wal));
    if (!b->wal)
        return -ENOMEM;
    b->wal->sync = sync;
    b->wal->next_msg_id = 1;
    b->wal->wall_offset_ms = wall_offset_ms;
    /* Origins are shard + a multiple of LIMITS_SHARDS_MAX: unique across shards. */
    b->wal->next_origin =
        (b->origin_floor / LIMITS_SHARDS_MAX + 1) * LIMITS_SHARDS_MAX + b->shard_id;
    b->origin_durable = b->wal->next_origin - LIMITS_SHARDS_MAX; /* none of ours yet */
    b->wal->flight_origin = b->origin_durable;
    return 0;
}

static void batch_free(struct wal_batch *bt)
{
    wal_out_free(&bt->out);
    free(bt->tokens);
    free(bt->acks);
    for (int k = 0; k < WAL_NOTE_KINDS; k++)
        free(bt->notes[k].hash);
    free(bt->pump.hash);
    *bt = (struct wal_batch){0};
}

void wal_fini(struct broker *b)
{
    if (!b->wal)
        return;
    if (b->wal->last_msg)
        outbox_msg_put(b, b->wal->last_msg);
    batch_free(&b->wal->open);
    batch_free(&b->wal->flight);
    free(b->wal->has);
    free(b->wal);
    b->wal = NULL;
}

uint64_t wal_origin_new(struct broker *b)
{
    RM_ASSERT(wal_sync(b));
    uint64_t n = b->wal->next_origin;
    b->wal->next_origin += LIMITS_SHARDS_MAX;
    return n;
}

void wal_has(struct broker *b, uint64_t origin, uint64_t who)
{
    RM_ASSERT(origin != 0);
    struct wal *w = b->wal;
    if (!wal_sync(b))
        return;
    if (grow_array((void **)&w->has, &w->has_cap, w->has_count, sizeof(*w->has)) < 0) {
        degrade(b); /* a resend after a crash may reach this one twice */
        return;
    }
    w->has[w->has_count++] = (struct wal_has){origin, who};
}

bool wal_origin_had(const struct broker *b, uint64_t origin, uint64_t who)
{
    /* Sorted by (origin, who) at replay: a binary search. */
    uint32_t lo = 0;
    uint32_t hi = b->origin_has_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const struct wal_has *h = &b->origin_has[mid];
        if (h->origin == origin && h->who == who)
            return true;
        if (h->origin < origin || (h->origin == origin && h->who < who))
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static void put_has(struct broker *b, const struct wal_has *h)
{
    struct wal_out *o = &b->wal->open.out;
    size_t off = wal_begin(o, WAL_HAS);
    wal_put_u64(o, h->origin);
    wal_put_u64(o, h->who);
    end(b, off);
}

void wal_snap_has(struct broker *b)
{
    struct wal *w = b->wal;
    for (uint32_t i = 0; i < w->has_count; i++)
        put_has(b, &w->has[i]);
    w->has_count = 0;
    for (uint32_t i = 0; i < b->origin_has_count; i++)
        put_has(b, &b->origin_has[i]);
}



bool wal_sync(const struct broker *b)
{
    return b->wal && b->wal->sync;
}

size_t wal_mark(const struct broker *b)
{
    return b->wal ? b->wal->open.out.len : 0;
}

bool wal_since(const struct broker *b, size_t mark)
{
    RM_ASSERT(!b->wal || mark <= b->wal->open.out.len);
    /* Degraded, what a step logged may be the record that was lost: it waits (and fails). */
    return b->wal && (b->wal->open.out.len > mark || (b->wal->sync && b->wal->degraded));
}

bool wal_unsettled(const struct broker *b)
{
    return b->wal && (b->wal->in_flight || b->wal->open.out.len > 0);
}

int wal_hold(struct broker *b, uint64_t token)
{
    RM_ASSERT(b->wal != NULL && token != 0);
    struct wal_batch *bt = &b->wal->open;
    if (grow_array((void **)&bt->tokens, &bt->token_cap, bt->token_count, sizeof(*bt->tokens)) <
        0) {
        b->wal->nomem++; /* no record is lost: only this wait fails (the caller) */
        return -ENOMEM;
    }
    bt->tokens[bt->token_count++] = token;
    return 0;
}

void wal_note(struct broker *b, enum wal_note kind, uint64_t hash)
{
    if (!wal_sync(b))
        return;
    struct wal_notes *n = &b->wal->open.notes[kind];
    if (grow_array((void **)&n->hash, &n->cap, n->count, sizeof(*n->hash)) < 0) {
        n->lost = true;
        return;
    }
    n->hash[n->count++] = hash;
}

uint8_t wal_batch(const struct broker *b)
{
    RM_ASSERT(b->wal != NULL);
    return b->wal->batch;
}

bool wal_batch_durable(const struct broker *b, uint8_t n)
{
    const struct wal *w = b->wal;
    RM_ASSERT(w != NULL);
    if (n == w->batch)
        return false;
    return !(w->in_flight && !w->flight_settled && n == (uint8_t)(w->batch - 1));
}

bool wal_pump_later(struct broker *b, uint8_t n, uint64_t hash)
{
    struct wal *w = b->wal;
    RM_ASSERT(!wal_batch_durable(b, n));
    struct wal_notes *p = n == w->batch ? &w->open.pump : &w->flight.pump;
    if (p->count > 0 && p->hash[p->count - 1] == hash)
        return true; /* its deliveries come in runs: once is enough */
    if (grow_array((void **)&p->hash, &p->cap, p->count, sizeof(*p->hash)) < 0)
        return false;
    p->hash[p->count++] = hash;
    return true;
}

/* True when @n names session @hash (a short list: one batch's). */
static bool notes_name(const struct wal_notes *n, uint64_t hash)
{
    if (n->lost)
        return true;
    for (uint32_t i = 0; i < n->count; i++) {
        if (n->hash[i] == hash)
            return true;
    }
    return false;
}

bool wal_noted(const struct broker *b, enum wal_note kind, uint64_t hash)
{
    const struct wal *w = b->wal;
    if (!wal_sync(b))
        return false;
    if (w->degraded)
        return true; /* the record a packet would wait for may be the one lost */
    return notes_name(&w->open.notes[kind], hash) ||
           (w->in_flight && notes_name(&w->flight.notes[kind], hash));
}

static void notes_clear(struct wal_batch *bt)
{
    for (int k = 0; k < WAL_NOTE_KINDS; k++) {
        bt->notes[k].count = 0;
        bt->notes[k].lost = false;
    }
}

void wal_settled(struct broker *b)
{
    notes_clear(&b->wal->flight);
    b->wal->flight_settled = true;
}

void wal_ack_later(struct broker *b, uint32_t dest, uint64_t token)
{
    RM_ASSERT(b->wal != NULL && token != 0);
    RM_ASSERT(dest < b->shard_count && dest != b->shard_id);
    struct wal_batch *bt = &b->wal->open;
    if (grow_array((void **)&bt->acks, &bt->ack_cap, bt->ack_count, sizeof(*bt->acks)) == 0) {
        bt->acks[bt->ack_count++] = (struct wal_ack){dest, token};
        return;
    }
    /* No memory to defer it: never acknowledged as if durable; the wait there fails. */
    b->wal->nomem++;
    outbox_nack(b, dest, token);
}

void wal_ack_after(struct broker *b, size_t mark, uint32_t dest, uint64_t token)
{
    if (wal_since(b, mark))
        wal_ack_later(b, dest, token);
    else
        outbox_ack(b, dest, token);
}

/* The open batch's output, after counting a lost record if the last one failed. */
static struct wal_out *out_of(struct broker *b)
{
    RM_ASSERT(b->wal != NULL);
    return &b->wal->open.out;
}

/* Finish a record; an allocation failure drops the record: the log is degraded. */
static void end(struct broker *b, size_t off)
{
    struct wal_out *o = out_of(b);
    wal_end(o, off);
    if (o->nomem) {
        degrade(b);
        o->nomem = false;
        o->len = off;
    }
}

static size_t begin_cid(struct broker *b, enum wal_type type, const uint8_t *cid, size_t cid_len)
{
    struct wal_out *o = out_of(b);
    size_t off = wal_begin(o, type);
    wal_put_str16(o, cid, cid_len);
    return off;
}

void wal_session(struct broker *b, const uint8_t *cid, size_t cid_len, const uint8_t *user,
                 size_t user_len, uint32_t expiry_s, uint8_t listener)
{
    size_t off = begin_cid(b, WAL_SESSION, cid, cid_len);
    wal_put_str8(out_of(b), user, user_len);
    wal_put_u32(out_of(b), expiry_s);
    wal_put_u8(out_of(b), listener);
    end(b, off);
}

void wal_session_end(struct broker *b, const uint8_t *cid, size_t cid_len)
{
    end(b, begin_cid(b, WAL_SESSION_END, cid, cid_len));
}

void wal_reset(struct broker *b, const uint8_t *cid, size_t cid_len)
{
    end(b, begin_cid(b, WAL_RESET, cid, cid_len));
}

void wal_snap_end(struct broker *b, const uint8_t *cid, size_t cid_len)
{
    end(b, begin_cid(b, WAL_SNAP_END, cid, cid_len));
}

void wal_sub(struct broker *b, const uint8_t *cid, size_t cid_len, const uint8_t *filter,
             size_t len, uint8_t options, uint32_t sub_id)
{
    size_t off = begin_cid(b, WAL_SUB, cid, cid_len);
    wal_put_str16(out_of(b), filter, len);
    wal_put_u8(out_of(b), options);
    wal_put_u32(out_of(b), sub_id);
    end(b, off);
}

void wal_unsub(struct broker *b, const uint8_t *cid, size_t cid_len, const uint8_t *filter,
               size_t len)
{
    size_t off = begin_cid(b, WAL_UNSUB, cid, cid_len);
    wal_put_str16(out_of(b), filter, len);
    end(b, off);
}

/* A message's expiry in wall-clock ms (0: never). */
static uint64_t wall_expiry(const struct broker *b, const struct msg *m)
{
    if (m->expiry_ms == 0 || m->expiry_ms == MSG_EXPIRY_AT_PUBLISH)
        return 0;
    return (uint64_t)((int64_t)m->expiry_ms + b->wal->wall_offset_ms);
}

/* @m's topic, properties and payload, as WAL_MSG and WAL_RETAIN end. */
static void put_body(struct broker *b, const struct msg *m)
{
    struct wal_out *o = out_of(b);
    wal_put_u64(o, wall_expiry(b, m));
    wal_put_str16(o, msg_topic(m), m->topic_len);
    wal_put_str32(o, msg_props(m), m->props_len);
    wal_put_str32(o, msg_payload(m), m->payload_len);
}

/* The id of @m in the open batch, writing it first if it is not there yet. */
static uint64_t msg_id(struct broker *b, const struct msg *m)
{
    struct wal *w = b->wal;
    if (w->last_msg == m && w->last_msg_id != 0)
        return w->last_msg_id;
    uint64_t id = w->next_msg_id++;
    struct wal_out *o = out_of(b);
    size_t off = wal_begin(o, WAL_MSG);
    wal_put_u64(o, id);
    wal_put_u8(o, m->qos);
    wal_put_u8(o, m->retain);
    put_body(b, m);
    if (m->origin)
        wal_put_u64(o, m->origin);
    end(b, off);
    /*
     * Remembered, with a reference (so its address is not reused), for
     * the deliveries that follow in this batch only: wal_take() forgets it.
     */
    if (w->last_msg)
        outbox_msg_put(b, w->last_msg);
    w->last_msg = msg_ref((struct msg *)m);
    w->last_msg_id = id;
    return id;
}

void wal_deliver(struct broker *b, const uint8_t *cid, size_t cid_len, const struct msg *m,
                 uint8_t qos, bool retain, uint64_t share_key, const uint32_t *ids, uint32_t n,
                 uint16_t pkt_id)
{
    RM_ASSERT(ids != NULL || n == 0);
    RM_ASSERT(qos == 1 || qos == 2);
    uint64_t id = msg_id(b, m);
    size_t off = begin_cid(b, WAL_DELIVER, cid, cid_len);
    struct wal_out *o = out_of(b);
    wal_put_u64(o, id);
    wal_put_u8(o, qos);
    wal_put_u8(o, retain);
    wal_put_u64(o, share_key);
    wal_put_u32(o, n ? ids[0] : 0);
    wal_put_u16(o, pkt_id);
    if (n > 1) {
        /* Several subscriptions matched, each with its identifier [MQTT-3.3.4-3]. */
        uint32_t more = n - 1 > UINT16_MAX ? UINT16_MAX : n - 1;
        wal_put_u16(o, (uint16_t)more);
        for (uint32_t i = 1; i <= more; i++)
            wal_put_u32(o, ids[i]);
    }
    end(b, off);
}

void wal_give(struct broker *b, const uint8_t *cid, size_t cid_len, uint64_t id,
              const struct msg *m, uint64_t share_key)
{
    RM_ASSERT(id != 0 && share_key != 0);
    uint64_t mid = msg_id(b, m);
    size_t off = begin_cid(b, WAL_GIVE, cid, cid_len);
    struct wal_out *o = out_of(b);
    wal_put_u64(o, id);
    wal_put_u64(o, mid);
    wal_put_u64(o, share_key);
    end(b, off);
}

void wal_given(struct broker *b, const uint8_t *cid, size_t cid_len, uint64_t id)
{
    RM_ASSERT(id != 0 && cid_len > 0);
    size_t off = begin_cid(b, WAL_GIVEN, cid, cid_len);
    wal_put_u64(out_of(b), id);
    end(b, off);
}

void wal_pkt(struct broker *b, enum wal_type type, const uint8_t *cid, size_t cid_len,
             uint16_t pkt_id)
{
    RM_ASSERT(type == WAL_SENT || type == WAL_DONE || type == WAL_PUBREC ||
              type == WAL_QOS2_IN || type == WAL_QOS2_REL);
    size_t off = begin_cid(b, type, cid, cid_len);
    wal_put_u16(out_of(b), pkt_id);
    end(b, off);
}

void wal_qos2_pend(struct broker *b, const uint8_t *cid, size_t cid_len, uint16_t pkt_id,
                   uint64_t origin)
{
    size_t off = begin_cid(b, WAL_QOS2_PEND, cid, cid_len);
    wal_put_u16(out_of(b), pkt_id);
    wal_put_u64(out_of(b), origin);
    end(b, off);
}

void wal_dropq(struct broker *b, const uint8_t *cid, size_t cid_len, uint32_t index)
{
    size_t off = begin_cid(b, WAL_DROPQ, cid, cid_len);
    wal_put_u32(out_of(b), index);
    end(b, off);
}

void wal_will(struct broker *b, const uint8_t *cid, size_t cid_len, const struct msg *m,
              uint64_t due_ms)
{
    size_t off = begin_cid(b, m ? WAL_WILL : WAL_WILL_GONE, cid, cid_len);
    if (m) {
        struct wal_out *o = out_of(b);
        wal_put_u64(o, (uint64_t)((int64_t)due_ms + b->wal->wall_offset_ms));
        wal_put_u8(o, m->qos);
        wal_put_u8(o, m->retain);
        wal_put_u32(o, m->expiry_ms == MSG_EXPIRY_AT_PUBLISH ? m->will_expiry_s : 0);
        wal_put_str16(o, msg_topic(m), m->topic_len);
        wal_put_str32(o, msg_props(m), m->props_len);
        wal_put_str32(o, msg_payload(m), m->payload_len);
    }
    end(b, off);
}

void wal_retain(struct broker *b, const struct msg *m)
{
    RM_ASSERT(m != NULL && m->retain);
    struct wal_out *o = out_of(b);
    size_t off = wal_begin(o, WAL_RETAIN);
    wal_put_u8(o, m->qos);
    put_body(b, m);
    end(b, off);
}

struct wal_out *wal_open_out(struct broker *b)
{
    return out_of(b);
}

bool wal_take(struct broker *b, const uint8_t **buf, size_t *len)
{
    struct wal *w = b->wal;
    RM_ASSERT(w != NULL && !w->in_flight);
    if (w->last_msg) {
        outbox_msg_put(b, w->last_msg);
        w->last_msg = NULL;
        w->last_msg_id = 0;
    }
    if (w->open.out.len == 0 && w->open.token_count == 0 && w->open.ack_count == 0 &&
        w->open.pump.count == 0 && !outbox_holding(b))
        return false;
    struct wal_batch t = w->flight;
    w->flight = w->open;
    w->flight.lossy = w->degraded;
    w->open = t;
    w->open.out.len = 0;
    w->open.token_count = 0;
    w->open.ack_count = 0;
    notes_clear(&w->open);
    w->open.pump.count = 0;
    outbox_hold_take(b); /* what the open batch held back now waits for it in flight */
    w->flight_origin = w->next_origin - LIMITS_SHARDS_MAX; /* the last one given out */
    w->in_flight = true;
    w->flight_settled = false;
    w->batch++;
    *buf = w->flight.out.buf;
    *len = w->flight.out.len;
    return true;
}

void wal_durable(struct broker *b)
{
    struct wal *w = b->wal;
    RM_ASSERT(w != NULL && w->in_flight);
    for (uint32_t i = 0; i < w->flight.ack_count; i++) {
        if (w->flight.lossy)
            outbox_nack(b, w->flight.acks[i].dest, w->flight.acks[i].token);
        else
            outbox_ack(b, w->flight.acks[i].dest, w->flight.acks[i].token);
    }
    w->flight.ack_count = 0;
    w->flight.pump.count = 0;
    b->origin_durable = w->flight_origin;
    outbox_hold_release(b);
    w->flight.out.len = 0;
    w->in_flight = false;
}
