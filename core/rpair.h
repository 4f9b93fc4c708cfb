/*
 * rpair.h - a retained message's two arrivals on a shard, paired.
 *
 * A retained message published on shard P reaches another shard S twice:
 * its RETAIN_APPLY from the topic's home shard H (S's replica takes it)
 * and, when S is neither P nor H, a notice from P itself (an XMSG_PUBLISH
 * crossing, in P's order with P's other messages to S). S's plain
 * subscribers get it at the later of the two: after P's earlier messages
 * (the notice), and in the same step as its replica takes it or later (the
 * apply), so a SUBSCRIBE on S either finds it in the replica or gets it
 * live. rpair keeps the first arrival until the second comes.
 *
 * Calls outbox. Owned by one shard; single-threaded.
 */
#ifndef RINGMQ_RPAIR_H
#define RINGMQ_RPAIR_H

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct msg;

/* The arrival that comes first is given up this long after it came (its pair was lost). */
#define RPAIR_TIMEOUT_MS 10000u

/*
 * Retained @m arrived here: its notice (@applied false) or its apply
 * (@applied true). True when the other one came before, or when it is the
 * apply and there is no memory to wait (counted): deliver @m now. False:
 * it is kept (a reference of its own) until the other comes, or, a notice
 * without memory to wait, dropped (its apply is delivered then).
 */
bool rpair_arrive(struct broker *b, struct msg *m, bool applied);

/*
 * Give up one first arrival older than RPAIR_TIMEOUT_MS at @now_ms (its
 * pair was lost on the way): returns an applied message to deliver anyway
 * (the caller drops it with outbox_msg_put()), NULL when none is left
 * (call again until NULL). A notice without its apply is dropped: the
 * replicas never got the message either.
 */
struct msg *rpair_expire(struct broker *b, uint64_t now_ms);

/*
 * True when @m was applied here and waits for its notice: it will reach
 * this shard's subscribers live, so a SUBSCRIBE now must not also send it
 * from the replica (a QoS 2 message delivered twice).
 */
bool rpair_awaits_notice(const struct broker *b, const struct msg *m);

/* True while a first arrival waits for its pair: the clock must keep ticking. */
bool rpair_pending(const struct broker *b);

/* Drop what is kept (broker_free(), every shard stopped). */
void rpair_fini(struct broker *b);

#endif
