/*
 * give.c - messages that ended sessions handed on, until they are logged
 * where they went (see give.h).
 *
 * Gives are slots that never move (a wait's callback names its slot), with
 * a list of the free ones. Owned by one shard; single-threaded.
 */
#include "core/give.h"

#include <stdlib.h>
#include <string.h>

#include "core/broker_types.h"
#include "core/grow.h"
#include "core/msg.h"
#include "core/outbox.h"
#include "core/rm_assert.h"
#include "core/route.h"
#include "core/session.h"
#include "core/wait.h"
#include "core/wal.h"

/* A failed try is tried again this long after, doubling up to GIVE_BACKOFF_MAX_MS. */
#define GIVE_RETRY_MS 1000u
#define GIVE_BACKOFF_MAX_MS 64000u

static struct broker_give *give_take(struct broker *b)
{
    if (b->give_free) {
        struct broker_give *g = &b->gives[b->give_free - 1];
        b->give_free = g->next_free;
        return g;
    }
    if (grow_array((void **)&b->gives, &b->give_cap, b->give_slots, sizeof(*b->gives)) < 0)
        return NULL;
    return &b->gives[b->give_slots++];
}

/* A give for @m, shared group @key, session @cid: open, not sent. NULL on ENOMEM. */
static struct broker_give *give_add(struct broker *b, struct msg *m, uint64_t key, uint64_t id,
                                    const uint8_t *cid, size_t cid_len)
{
    RM_ASSERT(cid_len > 0 && cid_len <= UINT16_MAX);
    RM_ASSERT(m != NULL && key != 0);
    uint8_t *copy = malloc(cid_len);
    if (!copy)
        return NULL;
    struct broker_give *g = give_take(b);
    if (!g) {
        free(copy);
        return NULL;
    }
    memcpy(copy, cid, cid_len);
    *g = (struct broker_give){msg_ref(m), key, id, 0, copy, (uint16_t)cid_len, 0};
    b->give_count++;
    return g;
}

static void give_drop(struct broker *b, struct broker_give *g)
{
    RM_ASSERT(g >= b->gives && g < b->gives + b->give_slots && g->m != NULL);
    RM_ASSERT(b->give_count > 0);
    outbox_msg_put(b, g->m);
    free(g->cid);
    *g = (struct broker_give){.next_free = b->give_free};
    b->give_free = (uint32_t)(g - b->gives) + 1;
    b->give_count--;
}

/* @g is logged where it went (WAL_GIVEN): closed. */
static void give_close(struct broker *b, struct broker_give *g)
{
    wal_given(b, g->cid, g->cid_len, g->id);
    give_drop(b, g);
}

/* A try failed, or none could begin: another one later, backing off while they fail. */
static void retry_later(struct broker *b, struct broker_give *g)
{
    g->token = 0;
    if (!b->give_retry) {
        if (b->give_backoff_ms < GIVE_RETRY_MS)
            b->give_backoff_ms = GIVE_RETRY_MS;
        b->give_retry_ms = b->now_ms + b->give_backoff_ms;
        if (b->give_backoff_ms < GIVE_BACKOFF_MAX_MS)
            b->give_backoff_ms *= 2;
    }
    b->give_retry = true;
}

static void give_ended(struct broker *b, uint64_t slot, bool done);

/*
 * Route @g's message with a new wait: one acknowledgement for this shard's
 * log (which holds its WAL_GIVE), one more if it went to another shard.
 */
static void give_send(struct broker *b, struct broker_give *g)
{
    RM_ASSERT(g->token == 0 && g->m != NULL);
    if (!wal_sync(b)) {
        /* Restored by a broker without fsync = always: nothing waits for the log. */
        (void)route_give(b, g->m, g->key, 0);
        give_close(b, g);
        return;
    }
    uint64_t token = wait_callback(b, give_ended, (uint64_t)(g - b->gives), 1);
    if (!token) {
        retry_later(b, g);
        return;
    }
    g->token = token;
    (void)route_give(b, g->m, g->key, token);
    (void)wait_on_log(b, token); /* or it failed: give_ended() */
}

/* Give @slot's wait ended: @done, it is logged where it went (WAL_GIVEN); else tried again. */
static void give_ended(struct broker *b, uint64_t slot, bool done)
{
    RM_ASSERT(slot < b->give_slots);
    struct broker_give *g = &b->gives[slot];
    RM_ASSERT(g->m != NULL && g->token != 0);
    if (!done) {
        retry_later(b, g);
        return;
    }
    b->give_backoff_ms = 0;
    give_close(b, g);
}

bool give_share(void *ctx, struct msg *m, uint64_t key, const struct session *from)
{
    struct broker *b = ctx;
    RM_ASSERT(key != 0 && m != NULL);
    RM_ASSERT(from != NULL && from->client == NULL);
    if (!wal_sync(b) || from->expiry_s == 0) /* not logged: nothing to keep */
        return route_share_give(b, m, key, from);
    struct broker_give *g =
        give_add(b, m, key, wal_origin_new(b), from->client_id, from->client_id_len);
    if (!g) {
        /*
         * Out of memory: handed on without a give. The session keeps it
         * (false) and the log is degraded, so the session's end is not
         * logged (session_free()): the log still holds the message with
         * the session until a snapshot repairs it.
         */
        wal_lose(b);
        (void)route_share_give(b, m, key, from);
        return false;
    }
    uint64_t losses = b->wal->losses;
    wal_give(b, g->cid, g->cid_len, g->id, m, key);
    give_send(b, g);
    /* Its record lost (no memory): the session keeps the message too, as above. */
    return b->wal->losses == losses;
}

int give_restore(struct broker *b, struct msg *m, uint64_t key, uint64_t id, const uint8_t *cid,
                 size_t cid_len)
{
    RM_ASSERT(key != 0 && id != 0);
    RM_ASSERT(m != NULL);
    struct broker_give *g = give_add(b, m, key, id, cid, cid_len);
    if (!g)
        return -ENOMEM;
    b->give_retry = true;
    b->give_retry_ms = 0; /* at the first tick */
    return 0;
}

void give_tick(struct broker *b)
{
    /* A degraded log fails every wait: after its repair, not one copy per try meanwhile. */
    if (!b->give_retry || b->now_ms < b->give_retry_ms || wal_degraded(b))
        return;
    b->give_retry = false;
    /* Bounded: each slot once; a try that fails now sets give_retry again. */
    for (uint32_t i = 0; i < b->give_slots; i++) {
        if (b->gives[i].m && b->gives[i].token == 0)
            give_send(b, &b->gives[i]);
    }
}

bool give_pending(const struct broker *b)
{
    return b->give_retry;
}

void give_snapshot(struct broker *b)
{
    for (uint32_t i = 0; i < b->give_slots; i++) {
        const struct broker_give *g = &b->gives[i];
        if (g->m)
            wal_give(b, g->cid, g->cid_len, g->id, g->m, g->key);
    }
}

void give_fini(struct broker *b)
{
    for (uint32_t i = 0; i < b->give_slots; i++) {
        if (b->gives[i].m)
            give_drop(b, &b->gives[i]);
    }
    free(b->gives);
    b->gives = NULL;
    b->give_cap = b->give_slots = b->give_free = 0;
    RM_ASSERT(b->give_count == 0);
}
