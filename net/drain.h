/*
 * drain.h - a shard's graceful stop (SIGTERM, SIGINT, or XMSG_SHUTDOWN
 * from shard 0): what happens once, in this order, when it begins.
 *
 * drain_start():
 *  1. shard 0 tells the service manager STOPPING=1 (net/sdnotify);
 *  2. every listener of the shard stops listening at once
 *     (listener_stop(): new connections are refused, not accepted and
 *     then closed);
 *  3. wills: without [persistence] a session ends with the process, so
 *     its will is due now [MQTT-3.1.2-8, MQTT-3.1.3-9]: the will of every
 *     connected client (the server closing a connection is not the
 *     client's DISCONNECT 0x00) and every delayed will of an offline
 *     session are published, before anyone is told to go, so the
 *     subscribers on this shard receive them ahead of their DISCONNECT.
 *     With it, a delayed will of a session that survives the restart is
 *     logged instead and goes out when due (broker_client_will_now());
 *  4. connected MQTT 5.0 clients are sent DISCONNECT 0x8B (Server shutting
 *     down) [MQTT-4.13.2-1], 3.1/3.1.1 clients get nothing (their
 *     protocol has no server DISCONNECT), and every connection is closed
 *     after its output is flushed (bounded by SHARD_STOP_LINGER_MS).
 *
 * The records these steps append to the write-ahead log (the wills queued
 * for persistent sessions, their sessions' last state) are made durable by
 * the log itself: the shard's loop does not finish while wal_io_busy(), and
 * shard_free()'s wal_io_close() writes and syncs what is left.
 *
 * Owned by one shard; that thread only.
 */
#ifndef RINGMQ_DRAIN_H
#define RINGMQ_DRAIN_H

struct shard;

/* Begin the graceful stop of @s (not yet stopping) for @why ("SIGTERM", ...; borrowed). */
void drain_start(struct shard *s, const char *why);

#endif
