/*
 * give.c - messages that ended sessions handed on, until they are logged
 * where they went (see give.h).
 *
 * Gives are rare (a session ending with shared-group messages), so they
 * are an array searched by id. Owned by one shard; single-threaded.
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

/* Sent again this long after a failed try. */
#define GIVE_RETRY_MS 1000u

/* A try failed, or none could begin: another one at a later tick. */
static void retry_later(struct broker *b, struct broker_give *g)
{
    g->token = 0;
    if (!b->give_retry)
        b->give_retry_ms = b->now_ms + GIVE_RETRY_MS;
    b->give_retry = true;
}

static void give_drop(struct broker *b, struct broker_give *g)
{
    RM_ASSERT(g >= b->gives && g < b->gives + b->give_count);
    outbox_msg_put(b, g->m);
    free(g->cid);
    *g = b->gives[--b->give_count];
}

static void give_ended(struct broker *b, uint64_t id, bool done);

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
        wal_given(b, g->cid, g->cid_len, g->id);
        give_drop(b, g);
        return;
    }
    uint64_t token = wait_callback(b, give_ended, g->id, 1);
    if (!token) {
        retry_later(b, g);
        return;
    }
    g->token = token;
    (void)route_give(b, g->m, g->key, token);
    (void)wait_on_log(b, token); /* or it failed: give_failed() */
}

static struct broker_give *give_add(struct broker *b, struct msg *m, uint64_t key, uint64_t id,
                                    const uint8_t *cid, size_t cid_len)
{
    RM_ASSERT(cid_len > 0 && cid_len <= UINT16_MAX);
    if (grow_array((void **)&b->gives, &b->give_cap, b->give_count, sizeof(*b->gives)) < 0)
        return NULL;
    uint8_t *copy = malloc(cid_len);
    if (!copy)
        return NULL;
    memcpy(copy, cid, cid_len);
    struct broker_give *g = &b->gives[b->give_count++];
    *g = (struct broker_give){msg_ref(m), key, id, 0, copy, (uint16_t)cid_len};
    return g;
}

bool give_share(void *ctx, struct msg *m, uint64_t key, const struct session *from)
{
    struct broker *b = ctx;
    RM_ASSERT(key != 0 && m != NULL);
    RM_ASSERT(from != NULL && from->client == NULL);
    struct broker_give *g = NULL;
    if (wal_sync(b) && from->expiry_s != 0) /* logged: it stays in the log (see give.h) */
        g = give_add(b, m, key, wal_origin_new(b), from->client_id, from->client_id_len);
    if (!g)
        return route_share_give(b, m, key, from);
    wal_give(b, g->cid, g->cid_len, g->id, m, key);
    give_send(b, g);
    return true;
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

static struct broker_give *give_find(struct broker *b, uint64_t id)
{
    for (uint32_t i = 0; i < b->give_count; i++) {
        if (b->gives[i].id == id)
            return &b->gives[i];
    }
    return NULL;
}

/* Give @id's wait completed: it is logged where it went (WAL_GIVEN). */
static void give_done(struct broker *b, uint64_t id)
{
    struct broker_give *g = give_find(b, id);
    RM_ASSERT(g != NULL && g->token != 0);
    wal_given(b, g->cid, g->cid_len, id);
    give_drop(b, g);
}

/* Give @id's wait failed: sent again at a later tick. */
static void give_failed(struct broker *b, uint64_t id)
{
    struct broker_give *g = give_find(b, id);
    RM_ASSERT(g != NULL);
    retry_later(b, g);
}

static void give_ended(struct broker *b, uint64_t id, bool done)
{
    if (done)
        give_done(b, id);
    else
        give_failed(b, id);
}

void give_tick(struct broker *b)
{
    if (!b->give_retry || b->now_ms < b->give_retry_ms)
        return;
    b->give_retry = false;
    /*
     * Bounded: each open give once, from the last (one dropped takes the
     * last one's place); a try that fails now sets give_retry again.
     */
    for (uint32_t i = b->give_count; i-- > 0;) {
        if (b->gives[i].token == 0)
            give_send(b, &b->gives[i]);
    }
}

bool give_pending(const struct broker *b)
{
    return b->give_retry;
}

void give_snapshot(struct broker *b)
{
    for (uint32_t i = 0; i < b->give_count; i++) {
        const struct broker_give *g = &b->gives[i];
        wal_give(b, g->cid, g->cid_len, g->id, g->m, g->key);
    }
}

void give_fini(struct broker *b)
{
    while (b->give_count > 0)
        give_drop(b, &b->gives[b->give_count - 1]);
    free(b->gives);
    b->gives = NULL;
    b->give_cap = 0;
}
