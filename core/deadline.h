/*
 * deadline.h - offline sessions' deadlines: session expiry [MQTT-3.1.2-23]
 * and delayed wills [MQTT-3.1.3-9]; ending a session.
 *
 * Sessions with a deadline are on one list, walked at the earliest
 * deadline but at most once a second. (Keep alive and connect timeouts
 * are net/'s timers; message expiry is checked when a message is sent.)
 * Calls give, route, sess_table, session and wal. Owned by one shard;
 * single-threaded.
 */
#ifndef RINGMQ_DEADLINE_H
#define RINGMQ_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct session;

/*
 * What an offline session waits for: its expiry (0: never) and its delayed
 * will. Allocated only while there is one (s->_timed), so a session that is
 * online, or never expires and has no will, pays 8 bytes for it.
 */
struct session_timed {
    struct session_timed *next; /* the shard's list of them (b->timed_head) */
    struct session_timed *prev;
    struct session *sess;
    uint64_t expire_at_ms;
    uint64_t will_at_ms;
    struct msg *will; /* the delayed will, owned; NULL once sent */
};

/*
 * @s just went offline with a session that outlives its connection: start
 * its expiry (unless it never expires) and, with @will (owned from here),
 * its will delay until @will_at_ms, and watch them. Without memory for that,
 * the will goes out now and the session does not expire (counted).
 */
void deadline_arm(struct broker *b, struct session *s, struct msg *will, uint64_t will_at_ms);

/* @s is back online: no expiry, and its delayed will is not sent [MQTT-3.1.3-9]. */
void deadline_cancel(struct broker *b, struct session *s);

/* Drop every record and delayed will (broker_free(), before the sessions). */
void deadline_fini(struct broker *b);

/*
 * End @s (offline): remove and free it; its delayed will, if any, goes out
 * now [MQTT-3.1.3-9], and its shared-group messages to other members.
 */
void deadline_end(struct broker *b, struct session *s);

/*
 * The process is stopping and every session ends with it (sessions live in
 * memory): publish every delayed will now [MQTT-3.1.3-9]; the sessions and
 * their expiry stay until broker_free(). Returns how many went.
 */
uint32_t deadline_wills_now(struct broker *b);

/* Advance the clock to @now_ms and run what is due (see broker_tick()). */
void deadline_tick(struct broker *b, uint64_t now_ms);

/* True while any session has a deadline. */
bool deadline_pending(const struct broker *b);

#endif
