/*
 * deadline.c - offline sessions' deadlines (see deadline.h).
 * Owned by one shard; single-threaded.
 */
#include "core/deadline.h"

#include <stdlib.h>

#include "core/broker_types.h"
#include "core/give.h"
#include "core/outbox.h"
#include "core/route.h"
#include "core/rm_assert.h"
#include "core/sess_table.h"
#include "core/session.h"
#include "core/wal.h"

/* Unlink and free @t; its session has no deadline any more. Returns its will (owned). */
static struct msg *timed_free(struct broker *b, struct session_timed *t)
{
    RM_ASSERT(t->sess->_timed == t);
    if (t->prev)
        t->prev->next = t->next;
    else
        b->timed_head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    struct msg *will = t->will;
    t->sess->_timed = NULL;
    free(t);
    return will;
}

void deadline_arm(struct broker *b, struct session *s, struct msg *will, uint64_t will_at_ms)
{
    RM_ASSERT(s->client == NULL && s->_timed == NULL);
    RM_ASSERT(s->expiry_s > 0);
    uint64_t expire_at_ms = 0;
    if (s->expiry_s != SESSION_EXPIRY_NEVER)
        expire_at_ms = b->now_ms + (uint64_t)s->expiry_s * 1000;
    if (!will && !expire_at_ms)
        return; /* nothing to wait for: nothing allocated */
    struct session_timed *t = malloc(sizeof(*t));
    if (!t) {
        /* Early rather than never; the session stays, as if it never expired. */
        b->stats.deadline_nomem++;
        if (will)
            route_will(b, will);
        return;
    }
    *t = (struct session_timed){.next = b->timed_head, .sess = s, .expire_at_ms = expire_at_ms,
                                .will_at_ms = will_at_ms, .will = will};
    if (will && b->wal)
        wal_will(b, s->client_id, s->client_id_len, will, will_at_ms);
    if (b->timed_head)
        b->timed_head->prev = t;
    b->timed_head = t;
    s->_timed = t;
    uint64_t due = will ? will_at_ms : expire_at_ms;
    if (expire_at_ms && expire_at_ms < due)
        due = expire_at_ms;
    if (due < b->next_scan_ms)
        b->next_scan_ms = due; /* a short delay is not late by a second */
}

/* @s's delayed will is gone (sent or cancelled): so the log says. */
static void will_gone(struct broker *b, const struct session *s)
{
    if (b->wal)
        wal_will(b, s->client_id, s->client_id_len, NULL, 0);
}

void deadline_cancel(struct broker *b, struct session *s)
{
    if (!s->_timed)
        return;
    if (s->_timed->will)
        will_gone(b, s);
    outbox_msg_put(b, timed_free(b, s->_timed));
}

void deadline_end(struct broker *b, struct session *s)
{
    RM_ASSERT(s->client == NULL);
    struct msg *will = s->_timed ? timed_free(b, s->_timed) : NULL;
    sess_table_remove(b, s);
    session_free(b, s, give_share, b);
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
    struct session_timed *t = b->timed_head;
    while (t) {
        struct session_timed *next = t->next;
        if (t->will && t->will_at_ms <= now_ms) {
            struct msg *will = t->will;
            t->will = NULL;
            route_will(b, will); /* its deliveries logged before its end */
            will_gone(b, t->sess);
        }
        if (t->expire_at_ms && t->expire_at_ms <= now_ms) {
            b->stats.sessions_expired++;
            deadline_end(b, t->sess);
        } else if (!t->will && !t->expire_at_ms) {
            (void)timed_free(b, t); /* the will went; the session never expires */
        } else {
            if (t->will && t->will_at_ms < earliest)
                earliest = t->will_at_ms;
            if (t->expire_at_ms && t->expire_at_ms < earliest)
                earliest = t->expire_at_ms;
        }
        t = next;
    }
    b->next_scan_ms = earliest > now_ms + 1000 ? earliest : now_ms + 1000;
}

uint32_t deadline_wills_now(struct broker *b)
{
    RM_ASSERT(b != NULL);
    uint32_t sent = 0;
    /* Bounded by the list, which only shrinks here (route_will() arms nothing). */
    for (struct session_timed *t = b->timed_head; t; t = t->next) {
        RM_ASSERT(t->sess->_timed == t);
        if (t->will) {
            struct msg *will = t->will;
            t->will = NULL;
            route_will(b, will);
            sent++;
        }
    }
    return sent;
}

void deadline_fini(struct broker *b)
{
    while (b->timed_head)
        outbox_msg_put(b, timed_free(b, b->timed_head));
}

bool deadline_pending(const struct broker *b)
{
    RM_ASSERT(b != NULL);
    return b->timed_head != NULL;
}
