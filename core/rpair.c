/*
 * rpair.c - a retained message's two arrivals on a shard, paired (see
 * rpair.h). An open-addressing table keyed by the message's address (a
 * kept reference makes it unique), linear probing, deletion by backward
 * shift. At most one retained publish per held publisher is on its way,
 * so it stays small. Owned by one shard; single-threaded.
 */
#include "core/rpair.h"

#include <stdlib.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/broker_types.h"
#include "core/msg.h"
#include "core/outbox.h"
#include "core/rm_assert.h"

static uint32_t slot_of(const struct broker *b, const struct msg *m)
{
    uintptr_t p = (uintptr_t)m;
    return (uint32_t)XXH3_64bits(&p, sizeof(p)) & (b->rpair_cap - 1);
}

/* The slot holding @m, or the empty slot where it would go. */
static struct broker_rpair *find(const struct broker *b, const struct msg *m)
{
    RM_ASSERT(b->rpair_cap > 0 && (b->rpair_cap & (b->rpair_cap - 1)) == 0);
    /* Bounded: the table is at most half full. */
    for (uint32_t i = slot_of(b, m);; i = (i + 1) & (b->rpair_cap - 1)) {
        struct broker_rpair *e = &b->rpairs[i];
        if (!e->m || e->m == m)
            return e;
    }
}

/* Room for one more entry; false on ENOMEM. */
static bool reserve(struct broker *b)
{
    if (b->rpair_count + 1 <= b->rpair_cap / 2)
        return true;
    uint32_t ncap = b->rpair_cap ? b->rpair_cap * 2 : 16;
    struct broker_rpair *old = b->rpairs;
    uint32_t old_cap = b->rpair_cap;
    struct broker_rpair *n = calloc(ncap, sizeof(*n));
    if (!n)
        return false;
    b->rpairs = n;
    b->rpair_cap = ncap;
    for (uint32_t i = 0; i < old_cap; i++) {
        if (old[i].m)
            *find(b, old[i].m) = old[i];
    }
    free(old);
    return true;
}

/* Empty @e's slot, shifting back the entries of its probe run. */
static void take_out(struct broker *b, struct broker_rpair *e)
{
    uint32_t mask = b->rpair_cap - 1;
    uint32_t hole = (uint32_t)(e - b->rpairs);
    e->m = NULL;
    b->rpair_count--;
    for (uint32_t i = (hole + 1) & mask; b->rpairs[i].m; i = (i + 1) & mask) {
        uint32_t want = slot_of(b, b->rpairs[i].m);
        /* Move it into the hole unless its wanted slot lies after the hole, up to i. */
        if (((i - want) & mask) >= ((i - hole) & mask)) {
            b->rpairs[hole] = b->rpairs[i];
            b->rpairs[i].m = NULL;
            hole = i;
        }
    }
}

bool rpair_arrive(struct broker *b, struct msg *m, bool applied)
{
    RM_ASSERT(b != NULL && m != NULL);
    RM_ASSERT(m->retain);
    if (b->rpair_count > 0) {
        struct broker_rpair *e = find(b, m);
        if (e->m) {
            RM_ASSERT(e->applied != applied);
            take_out(b, e);
            outbox_msg_put(b, m); /* the kept reference; the caller holds its own */
            return true;
        }
    }
    if (!reserve(b)) {
        /*
         * No room to wait: an apply is delivered now (perhaps ahead of the
         * publisher's earlier messages, never lost); a notice is dropped,
         * as its apply, finding no entry either, will be delivered then
         * (delivering both would be twice).
         */
        b->stats.rpair_nomem++;
        return applied;
    }
    struct broker_rpair *e = find(b, m);
    RM_ASSERT(e->m == NULL);
    *e = (struct broker_rpair){msg_ref(m), b->now_ms + RPAIR_TIMEOUT_MS, applied};
    b->rpair_count++;
    if (b->rpair_count == 1 || e->expire_ms < b->rpair_scan_ms)
        b->rpair_scan_ms = e->expire_ms;
    return false;
}

struct msg *rpair_expire(struct broker *b, uint64_t now_ms)
{
    if (b->rpair_count == 0 || now_ms < b->rpair_scan_ms)
        return NULL;
    uint64_t next = UINT64_MAX;
    for (uint32_t i = 0; i < b->rpair_cap; i++) {
        struct broker_rpair *e = &b->rpairs[i];
        if (!e->m)
            continue;
        if (e->expire_ms > now_ms) {
            if (e->expire_ms < next)
                next = e->expire_ms;
            continue;
        }
        struct msg *m = e->m;
        bool applied = e->applied;
        take_out(b, e);
        b->stats.rpair_timeouts++;
        if (applied)
            return m; /* the caller delivers it and drops this reference */
        outbox_msg_put(b, m);
        i--; /* take_out() may have shifted another entry into slot i */
    }
    /* Not more often than once a second. */
    b->rpair_scan_ms = next > now_ms + 1000 ? next : now_ms + 1000;
    return NULL;
}

bool rpair_awaits_notice(const struct broker *b, const struct msg *m)
{
    RM_ASSERT(b != NULL && m != NULL);
    if (b->rpair_count == 0)
        return false;
    const struct broker_rpair *e = find(b, m);
    return e->m == m && e->applied;
}

bool rpair_pending(const struct broker *b)
{
    return b->rpair_count > 0;
}

void rpair_fini(struct broker *b)
{
    for (uint32_t i = 0; i < b->rpair_cap; i++) {
        if (b->rpairs[i].m)
            msg_unref(b->rpairs[i].m);
    }
    free(b->rpairs);
    b->rpairs = NULL;
    b->rpair_cap = b->rpair_count = 0;
}
