/*
 * deadline.h - offline sessions' deadlines: session expiry [MQTT-3.1.2-23]
 * and delayed wills [MQTT-3.1.3-9]; ending a session.
 *
 * Sessions with a deadline are on one list, walked at the earliest
 * deadline but at most once a second. (Keep alive and connect timeouts
 * are net/'s timers; message expiry is checked when a message is sent.)
 * Calls route, sess_table and session. Owned by one shard; single-threaded.
 */
#ifndef RINGMQ_DEADLINE_H
#define RINGMQ_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct session;

/*
 * @s just went offline with a session that outlives its connection: start
 * its expiry (unless it never expires) and, with s->will set, its will
 * delay (s->will_at_ms), and watch them.
 */
void deadline_arm(struct broker *b, struct session *s);

/* @s is back online (or ends): no deadline watched any more. */
void deadline_unlink(struct broker *b, struct session *s);

/*
 * End @s (offline): remove and free it; its delayed will, if any, goes out
 * now [MQTT-3.1.3-9], and its shared-group messages to other members.
 */
void deadline_end(struct broker *b, struct session *s);

/* Advance the clock to @now_ms and run what is due (see broker_tick()). */
void deadline_tick(struct broker *b, uint64_t now_ms);

/* True while any session has a deadline. */
bool deadline_pending(const struct broker *b);

#endif
