/*
 * sys_topics.h - the $SYS/broker/... topics: mosquitto's names, units and
 * cadence, from the summed counter board, published through shard 0's
 * broker as retained QoS 0 messages in the default host's topic space.
 *
 * Every [broker] sys_interval seconds (0: never) shard 0 publishes: version
 * ("ringmq version X"), uptime ("N seconds"), clients/connected,
 * disconnected (sessions without a connection), maximum (most connected
 * seen at a publication), total (connected + disconnected), expired;
 * messages/received and sent (MQTT packets of any type), inflight, stored
 * (queued for sessions, plus retained); publish/messages/received, sent,
 * dropped; bytes/received and sent (socket bytes); subscriptions/count;
 * "retained messages/count"; "heap/current size" and "heap/maximum size"
 * (malloc'd bytes in use, from mallinfo2(3)); and load/{messages,publish,
 * bytes}/{received,sent}, load/publish/dropped, load/connections and
 * load/sockets, each /1min, /5min and /15min: mosquitto's exponential
 * moving averages of the per-minute rate, "%.2f". Who may read them is the
 * ACL's decision ($SYS topics are matched only by filters that name $SYS).
 *
 * Shard 0's thread only.
 */
#ifndef RINGMQ_SYS_TOPICS_H
#define RINGMQ_SYS_TOPICS_H

#include <stdbool.h>
#include <stdint.h>

#include "net/board.h"

struct broker;

/* The load averages kept: one per load/... topic, each at 1, 5 and 15 minutes. */
#define SYS_TOPICS_LOADS 9u
#define SYS_TOPICS_TOPIC_MAX 64u /* longest topic name, with its terminator */

struct sys_topics {
    uint64_t start_ms;  /* the broker's start (CLOCK_MONOTONIC ms) */
    uint64_t last_ms;   /* the last publication; 0: none yet */
    uint64_t clients_max;
    uint64_t heap_max;
    uint64_t last[SYS_TOPICS_LOADS]; /* the loads' totals at the last publication */
    double load[SYS_TOPICS_LOADS][3];
    const char *version;
};

/* Start @st at @now_ms for a broker of @version (borrowed, static). */
void sys_topics_init(struct sys_topics *st, uint64_t now_ms, const char *version);

/*
 * Publish every $SYS topic from @total (board_sum()) through @b at
 * @now_ms. Returns the number of topics that could not be published
 * (ENOMEM; they are published again next time).
 */
uint32_t sys_topics_publish(struct sys_topics *st, struct broker *b,
                            const struct board_snap *total, uint64_t now_ms);

#endif
