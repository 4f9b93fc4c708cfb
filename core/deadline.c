/*
 * deadline.c - offline sessions' deadlines (see deadline.h).
 * Owned by one shard; single-threaded.
 */
#include "core/deadline.h"

#include "core/broker_types.h"
#include "core/route.h"
#include "core/rm_assert.h"
#include "core/sess_table.h"
#include "core/session.h"

void deadline_unlink(struct broker *b, struct session *s)
{
    if (!s->_timed)
        return;
    if (s->_tprev)
        s->_tprev->_tnext = s->_tnext;
    else
        b->timed_head = s->_tnext;
    if (s->_tnext)
        s->_tnext->_tprev = s->_tprev;
    s->_tnext = s->_tprev = NULL;
    s->_timed = false;
}

static void deadline_link(struct broker *b, struct session *s)
{
    RM_ASSERT(s->client == NULL);
    if (s->_timed)
        return;
    s->_tprev = NULL;
    s->_tnext = b->timed_head;
    if (b->timed_head)
        b->timed_head->_tprev = s;
    b->timed_head = s;
    s->_timed = true;
}

void deadline_arm(struct broker *b, struct session *s)
{
    RM_ASSERT(s->client == NULL);
    RM_ASSERT(s->expiry_s > 0);
    if (s->expiry_s != SESSION_EXPIRY_NEVER)
        s->expire_at_ms = b->now_ms + (uint64_t)s->expiry_s * 1000;
    uint64_t due = s->will ? s->will_at_ms : s->expire_at_ms;
    if (s->expire_at_ms && s->expire_at_ms < due)
        due = s->expire_at_ms;
    if (!due)
        return;
    deadline_link(b, s);
    if (due < b->next_scan_ms)
        b->next_scan_ms = due; /* a short delay is not late by a second */
}

void deadline_end(struct broker *b, struct session *s)
{
    RM_ASSERT(s->client == NULL);
    deadline_unlink(b, s);
    struct msg *will = s->will;
    s->will = NULL;
    sess_table_remove(b, s);
    session_free(b, s, route_share_give, b);
    if (will)
        route_will(b, will);
}

void deadline_tick(struct broker *b, uint64_t now_ms)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(now_ms >= b->now_ms);
    b->now_ms = now_ms;
    if (now_ms < b->next_scan_ms)
        return;
    /*
     * The next scan is at the earliest deadline left, but not within a
     * second: a shard holding a million sessions that expire in days walks
     * them once, not every second.
     */
    uint64_t earliest = UINT64_MAX;
    struct session *s = b->timed_head;
    while (s) {
        struct session *next = s->_tnext;
        if (s->will && s->will_at_ms <= now_ms) {
            struct msg *will = s->will;
            s->will = NULL;
            route_will(b, will);
        }
        if (s->expire_at_ms && s->expire_at_ms <= now_ms) {
            b->stats.sessions_expired++;
            deadline_end(b, s);
        } else if (!s->will && !s->expire_at_ms) {
            deadline_unlink(b, s);
        } else {
            if (s->will && s->will_at_ms < earliest)
                earliest = s->will_at_ms;
            if (s->expire_at_ms && s->expire_at_ms < earliest)
                earliest = s->expire_at_ms;
        }
        s = next;
    }
    b->next_scan_ms = earliest > now_ms + 1000 ? earliest : now_ms + 1000;
}

bool deadline_pending(const struct broker *b)
{
    RM_ASSERT(b != NULL);
    return b->timed_head != NULL;
}
