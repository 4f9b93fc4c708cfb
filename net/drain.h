/*
 * drain.h - a shard's graceful stop (SIGTERM, SIGINT, or XMSG_SHUTDOWN
 * from shard 0): what happens once, in this order, when it begins, and the
 * point where the shard's write-ahead log is flushed when it ends.
 *
 * drain_start():
 *  1. shard 0 tells the service manager STOPPING=1 (net/sdnotify);
 *  2. every listener of the shard stops listening at once
 *     (listener_stop(): new connections are refused, not accepted and
 *     then closed);
 *  3. wills: sessions live in memory, so each ends with the process, and
 *     its will is due now [MQTT-3.1.2-8, MQTT-3.1.3-9]: the will of every
 *     connected client (the server closing a connection is not the
 *     client's DISCONNECT 0x00) and every delayed will of an offline
 *     session are published, before anyone is told to go, so the
 *     subscribers on this shard receive them ahead of their DISCONNECT;
 *  4. connected MQTT 5.0 clients are sent DISCONNECT 0x8B (Server shutting
 *     down) [MQTT-4.13.2-1], 3.1/3.1.1 clients get nothing (their
 *     protocol has no server DISCONNECT), and every connection is closed
 *     after its output is flushed (bounded by SHARD_STOP_LINGER_MS).
 *
 * drain_wal_flush(): called once the shard's loop has finished (every
 * connection closed, every cross-shard message sent), before the shard
 * returns: where the shard's write-ahead log is made durable.
 *
 * Owned by one shard; that thread only.
 */
#ifndef RINGMQ_DRAIN_H
#define RINGMQ_DRAIN_H

struct shard;

/* Begin the graceful stop of @s (not yet stopping) for @why ("SIGTERM", ...; borrowed). */
void drain_start(struct shard *s, const char *why);

/*
 * The shard's loop has ended after a graceful stop: flush its write-ahead
 * log. Returns 0 or a negative errno (the process then exits 1).
 */
int drain_wal_flush(struct shard *s);

#endif
