/*
 * wait.c - clients held until other shards acknowledge (see wait.h).
 *
 * Slots are reused; a token is the slot number + 1 with the slot's
 * generation above it, so an acknowledgement for a freed slot (given up,
 * or a programming error) is recognised and ignored.
 * Owned by one shard; single-threaded.
 */
#include "core/wait.h"

#include <stdlib.h>
#include <string.h>

#include "core/broker_types.h"
#include "core/outbox.h"
#include "core/output.h"
#include "core/rm_assert.h"
#include "core/sess_table.h"
#include "core/session.h"
#include "core/wal.h"

/* A free slot, taken for @remaining acknowledgements; NULL on ENOMEM. */
static struct broker_wait *slot_take(struct broker *b, uint32_t remaining)
{
    /* Next fit from the last slot taken: holding N clients is O(N), not O(N^2). */
    uint32_t slot = b->wait_cap;
    for (uint32_t i = 0; i < b->wait_cap; i++) {
        uint32_t k = (b->wait_next + i) % b->wait_cap;
        if (b->waits[k].remaining == 0 && !b->waits[k].cl) {
            slot = k;
            break;
        }
    }
    if (slot == b->wait_cap) {
        uint32_t ncap = b->wait_cap ? b->wait_cap * 2 : 16;
        struct broker_wait *n = realloc(b->waits, ncap * sizeof(*n));
        if (!n)
            return NULL;
        memset(n + b->wait_cap, 0, (ncap - b->wait_cap) * sizeof(*n));
        b->waits = n;
        b->wait_cap = ncap;
    }
    struct broker_wait *w = &b->waits[slot];
    w->cl = NULL;
    w->sess = NULL;
    w->remaining = remaining;
    w->pkt_id = 0;
    w->ack_type = 0;
    w->ack_rc = 0;
    w->relay_token = 0;
    w->end_fn = NULL;
    w->origin = 0;
    /*
     * A wait that may hold a durability promise (fsync = always) is never
     * given up: a disk that stalls past the timeout must not turn into a
     * PUBACK for what is not on disk. Its client waits, or disconnects.
     */
    w->expire_ms = wal_sync(b) ? UINT64_MAX : b->now_ms + WAIT_TIMEOUT_MS;
    if (b->wait_used == 0 || w->expire_ms < b->wait_scan_ms)
        b->wait_scan_ms = w->expire_ms;
    b->wait_used++;
    b->wait_next = slot + 1;
    return w;
}

static uint64_t token_of(const struct broker *b, const struct broker_wait *w)
{
    uint32_t slot = (uint32_t)(w - b->waits);
    return (uint64_t)w->gen << 32 | (slot + 1);
}

uint64_t wait_new(struct broker *b, struct client *cl, uint8_t ack_type, uint16_t pkt_id,
                  uint32_t remaining)
{
    RM_ASSERT(cl->_wait == 0);
    /*
     * Other shards' acknowledgements, a login's turn (core/login: any shard
     * count), or the write-ahead log (core/wal: any shard count).
     */
    RM_ASSERT(b->shard_count > 1 || ack_type == 0 || b->wal != NULL);
    struct broker_wait *w = slot_take(b, remaining);
    if (!w)
        return 0;
    w->cl = cl;
    w->sess = cl->_sess;
    w->pkt_id = pkt_id;
    w->ack_type = ack_type;
    uint64_t token = token_of(b, w);
    cl->_wait = (uint32_t)token;
    return token;
}

uint64_t wait_relay(struct broker *b, uint32_t dest, uint64_t token, uint32_t remaining)
{
    RM_ASSERT(dest < b->shard_count && dest != b->shard_id);
    RM_ASSERT(token != 0 && remaining > 0);
    struct broker_wait *w = slot_take(b, remaining);
    if (!w)
        return 0;
    w->relay_dest = dest;
    w->relay_token = token;
    return token_of(b, w);
}

uint64_t wait_callback(struct broker *b, broker_wait_end_fn fn, uint64_t arg, uint32_t remaining)
{
    RM_ASSERT(fn != NULL && remaining > 0);
    RM_ASSERT(wal_sync(b)); /* never given up (slot_take()): it ends done or failed */
    struct broker_wait *w = slot_take(b, remaining);
    if (!w)
        return 0;
    w->end_fn = fn;
    w->end_arg = arg;
    return token_of(b, w);
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

static struct broker_wait *wait_at(const struct broker *b, uint64_t token)
{
    uint32_t slot = (uint32_t)token - 1;
    RM_ASSERT(slot < b->wait_cap);
    RM_ASSERT(b->waits[slot].gen == (uint32_t)(token >> 32));
    return &b->waits[slot];
}

int wait_for_log(struct broker *b, struct client *cl, uint8_t ack_type, uint16_t pkt_id,
                 uint8_t rc)
{
    uint64_t token = wait_new(b, cl, ack_type, pkt_id, 1);
    if (!token)
        return output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE); /* never acked before durable */
    b->waits[(uint32_t)token - 1].ack_rc = rc;
    if (wait_on_log(b, token))
        return 1;
    RM_ASSERT(cl->state == CLIENT_CLOSING);
    return cl->close_rc < 0 ? cl->close_rc : -MQTT_RC_SERVER_UNAVAILABLE;
}

bool wait_on_log(struct broker *b, uint64_t token)
{
    if (wal_hold(b, token) == 0)
        return true;
    wait_fail(b, token);
    return false;
}

void wait_set_origin(struct broker *b, uint64_t token, uint64_t origin)
{
    struct broker_wait *w = wait_at(b, token);
    RM_ASSERT(w->cl != NULL && w->cl->_sess != NULL && w->ack_type == MQTT_PUBREC);
    w->origin = origin;
    w->sess_hash = w->cl->_sess->_hash;
}

void wait_set_ack_rc(struct broker *b, uint64_t token, uint8_t rc)
{
    struct broker_wait *w = wait_at(b, token);
    RM_ASSERT(w->cl != NULL);
    w->ack_rc = rc;
}

bool wait_live(const struct broker *b, uint64_t token)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(token != 0);
    uint32_t slot = (uint32_t)token - 1;
    return slot < b->wait_cap && b->waits[slot].gen == (uint32_t)(token >> 32) &&
           b->waits[slot].remaining > 0;
}

void wait_add(struct broker *b, uint64_t token, uint32_t n)
{
    struct broker_wait *w = wait_at(b, token);
    RM_ASSERT(w->cl != NULL || w->relay_token != 0 || w->end_fn != NULL);
    w->remaining += n;
}

void wait_drop(struct broker *b, uint64_t token)
{
    struct broker_wait *w = wait_at(b, token);
    RM_ASSERT(w->cl != NULL);
    RM_ASSERT(w->remaining > 1);
    w->remaining--;
}

uint32_t wait_remaining(const struct broker *b, uint64_t token)
{
    return wait_at(b, token)->remaining;
}

void wait_cancel(struct broker *b, struct client *cl)
{
    RM_ASSERT(cl->_wait > 0 && cl->_wait <= b->wait_cap);
    struct broker_wait *w = &b->waits[cl->_wait - 1];
    RM_ASSERT(w->cl == cl);
    wait_release(b, w);
    cl->_wait = 0;
}

void wait_forget(struct broker *b, struct client *cl)
{
    RM_ASSERT(cl->_wait > 0 && cl->_wait <= b->wait_cap);
    struct broker_wait *w = &b->waits[cl->_wait - 1];
    RM_ASSERT(w->cl == cl);
    w->cl = NULL;
    if (w->remaining == 0)
        wait_release(b, w);
    cl->_wait = 0;
}

/*
 * The last acknowledgement of @w is in (or it was given up): free it, and
 * send its client the deferred acknowledgement. Returns the client, or NULL.
 */
static struct client *complete(struct broker *b, struct broker_wait *w)
{
    struct client *cl = w->cl;
    uint8_t ack_type = w->ack_type;
    uint8_t ack_rc = w->ack_rc;
    uint16_t pkt_id = w->pkt_id;
    uint64_t relay = w->relay_token;
    uint64_t origin = w->origin;
    broker_wait_end_fn end_fn = w->end_fn;
    uint64_t end_arg = w->end_arg;
    wait_release(b, w);
    if (relay)
        outbox_ack(b, w->relay_dest, relay); /* the shard whose wait it stood for */
    if (end_fn)
        end_fn(b, end_arg, true);
    if (!cl) {
        /*
         * The client went away; nobody to acknowledge. A tagged QoS 2
         * message is committed all the same: every delivery is durable,
         * and a resend is a duplicate from now on (core/wal.h).
         */
        struct session *s = origin ? sess_table_by_hash(b, w->sess_hash) : NULL;
        if (s)
            session_qos2_in_commit(b, s, pkt_id, origin);
        return NULL;
    }
    cl->_wait = 0;
    if (ack_type == MQTT_PUBREC && cl->_sess)
        session_qos2_in_log(b, cl->_sess, pkt_id); /* every delivery is durable now */
    if (ack_type && output_ack_rc(b, cl, ack_type, pkt_id, ack_rc) < 0) {
        output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
        return NULL;
    }
    return cl;
}

void wait_fail(struct broker *b, uint64_t token)
{
    uint32_t slot = (uint32_t)token - 1;
    RM_ASSERT(slot < b->wait_cap);
    struct broker_wait *w = &b->waits[slot];
    if (w->gen != (uint32_t)(token >> 32) || w->remaining == 0)
        return; /* it ended already */
    struct client *cl = w->cl;
    uint64_t relay = w->relay_token;
    uint32_t relay_dest = w->relay_dest;
    uint16_t pkt_id = w->pkt_id;
    broker_wait_end_fn end_fn = w->end_fn;
    uint64_t end_arg = w->end_arg;
    struct session *s = w->origin ? sess_table_by_hash(b, w->sess_hash) : NULL;
    wait_release(b, w);
    b->stats.wait_failed++;
    if (end_fn)
        end_fn(b, end_arg, false);
    /*
     * A tagged QoS 2 message (its PUBREC's wait): its id is released, so the
     * client's resend is routed again rather than taken for a duplicate of
     * what no log may hold. Delivered twice, perhaps; never lost.
     */
    if (s)
        session_on_pubrel(b, s, pkt_id);
    if (relay)
        outbox_nack(b, relay_dest, relay);
    if (cl) {
        cl->_wait = 0;
        (void)output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    }
}

struct client *wait_done(struct broker *b, uint64_t token)
{
    uint32_t slot = (uint32_t)token - 1;
    RM_ASSERT(slot < b->wait_cap);
    struct broker_wait *w = &b->waits[slot];
    if (w->gen != (uint32_t)(token >> 32) || w->remaining == 0)
        return NULL; /* late, for a wait given up (wait_expire()) */
    if (--w->remaining > 0)
        return NULL;
    return complete(b, w);
}

const struct session *wait_publisher(const struct broker *b, uint64_t token)
{
    RM_ASSERT(b != NULL);
    return token && wait_live(b, token) ? b->waits[(uint32_t)token - 1].sess : NULL;
}

uint64_t wait_adopt(struct broker *b, struct client *cl, uint16_t pkt_id)
{
    RM_ASSERT(cl->_wait == 0 && cl->_sess != NULL);
    RM_ASSERT(pkt_id != 0);
    for (uint32_t i = 0; i < b->wait_cap && b->wait_used > 0; i++) {
        struct broker_wait *w = &b->waits[i];
        if (w->cl || w->remaining == 0 || w->sess != cl->_sess || w->pkt_id != pkt_id ||
            w->ack_type != MQTT_PUBREC)
            continue;
        w->cl = cl;
        cl->_wait = i + 1;
        return (uint64_t)w->gen << 32 | (i + 1);
    }
    return 0;
}

struct client *wait_expire(struct broker *b, uint64_t now_ms)
{
    if (b->wait_used == 0 || now_ms < b->wait_scan_ms)
        return NULL;
    /* One pass over the slots per scan, resumed where the last call returned. */
    if (b->wait_scan_from == 0)
        b->wait_scan_min = UINT64_MAX;
    for (uint32_t i = b->wait_scan_from; i < b->wait_cap; i++) {
        struct broker_wait *w = &b->waits[i];
        if (w->remaining == 0 && !w->cl)
            continue; /* free */
        if (w->expire_ms > now_ms) {
            if (w->expire_ms < b->wait_scan_min)
                b->wait_scan_min = w->expire_ms;
            continue;
        }
        b->stats.wait_timeouts++;
        struct client *cl = complete(b, w);
        if (cl) {
            b->wait_scan_from = i + 1; /* the caller calls again */
            return cl;
        }
    }
    /* Not more often than once a second, however many waits begin. */
    uint64_t next = b->wait_scan_min;
    b->wait_scan_from = 0;
    b->wait_scan_ms = next > now_ms + 1000 ? next : now_ms + 1000;
    return NULL;
}

bool wait_pending(const struct broker *b)
{
    return b->wait_used > 0;
}

void wait_set_congested(struct broker *b, uint32_t dest, bool on)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(dest < b->shard_count && dest != b->shard_id);
    if (wait_congested(b->congested, dest) == on)
        return;
    b->congested[dest / 64] ^= 1ull << (dest % 64);
    if (on)
        b->congested_count++;
    else
        b->congested_count--;
}

/* Room for one more token in each of @dests' hold lists; false on ENOMEM. */
static bool link_reserve(struct broker *b, const uint32_t *dests, uint32_t n)
{
    RM_ASSERT(dests != NULL && n > 0);
    RM_ASSERT(n < b->shard_count);
    if (!b->link_holds) {
        b->link_holds = calloc(b->shard_count, sizeof(*b->link_holds));
        if (!b->link_holds)
            return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct broker_link_holds *h = &b->link_holds[dests[i]];
        if (h->count < h->cap)
            continue;
        uint32_t ncap = h->cap ? h->cap * 2 : 16;
        uint64_t *t = realloc(h->tokens, ncap * sizeof(*t));
        if (!t)
            return false;
        h->tokens = t;
        h->cap = ncap;
    }
    return true;
}

uint64_t wait_link_hold(struct broker *b, struct client *cl, uint8_t ack_type, uint16_t pkt_id,
                        uint64_t token, const uint32_t *dests, uint32_t n)
{
    RM_ASSERT(n > 0 && n < b->shard_count);
    RM_ASSERT(token == 0 || cl->_wait != 0);
    uint64_t held = token;
    if (!link_reserve(b, dests, n))
        goto nomem;
    if (!held) {
        held = wait_new(b, cl, ack_type, pkt_id, n);
        if (!held)
            goto nomem;
    } else {
        wait_add(b, held, n);
    }
    for (uint32_t i = 0; i < n; i++) {
        struct broker_link_holds *h = &b->link_holds[dests[i]];
        h->tokens[h->count++] = held;
    }
    b->stats.publishers_held++;
    return held;

nomem:
    b->stats.hold_nomem++;
    return token;
}

struct client *wait_link_drained(struct broker *b, uint32_t dest)
{
    RM_ASSERT(dest < b->shard_count);
    RM_ASSERT(!wait_congested(b->congested, dest));
    struct broker_link_holds *h = b->link_holds ? &b->link_holds[dest] : NULL;
    /* Bounded by the list: each pass takes one token off it. */
    while (h && h->count > 0) {
        struct client *cl = wait_done(b, h->tokens[--h->count]);
        if (cl)
            return cl;
    }
    return NULL;
}

void wait_fini(struct broker *b)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(b->link_holds == NULL || b->shard_count > 1);
    for (uint32_t i = 0; b->link_holds && i < b->shard_count; i++)
        free(b->link_holds[i].tokens);
    free(b->link_holds);
    b->link_holds = NULL;
    free(b->waits);
    b->waits = NULL;
}
