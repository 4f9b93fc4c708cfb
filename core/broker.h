/*
 * broker.h - one shard's MQTT logic: the facade net/ drives.
 *
 * A struct broker owns this shard's sessions (by client id), its trie of
 * subscriptions and its retained store. net/ embeds one struct client in each
 * connection and feeds it the bytes it receives; the broker decodes packets,
 * runs the session state machine, routes publishes and appends the encoded
 * answers to each affected client's output buffer. It returns no bytes
 * directly: clients with new output, or that must be closed, are put on the
 * broker's dirty list, which net/ drains once per loop iteration - that is
 * where output is batched into one send per connection.
 *
 * Pure (core/): no syscalls, no clocks, no globals. Owned by one shard; every
 * function must be called on that shard's thread.
 */
#ifndef RINGMQ_BROKER_H
#define RINGMQ_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/wal_replay.h"

#include "core/broker_stats.h"
#include "core/client.h"

struct broker;
struct limits;
struct acl;
struct login_conf;
struct login_peer_ops;
struct msg;
struct vhost_table;
struct xmsg;

/*
 * A broker for shard @shard_id of @shard_count, reading limits from @lim
 * (borrowed; must outlive the broker). NULL on ENOMEM.
 */
struct broker *broker_new(const struct limits *lim, uint32_t shard_id, uint32_t shard_count);

/* The shard that homes sessions with client id @id: XXH3 mod @shard_count. */
uint32_t broker_home_shard(const uint8_t *id, size_t len, uint32_t shard_count);

/* Free every session, subscription, retained and queued message. */
void broker_free(struct broker *b);

/* Point the broker at a new limits snapshot (config reload). */
void broker_set_limits(struct broker *b, const struct limits *lim);

/*
 * Point the broker at authentication snapshot @login (borrowed; NULL:
 * anonymous everywhere) and, when @peer is not NULL, at net/'s answers
 * about a connection (copied). Call it between loop iterations: it is
 * also how a reload's new snapshot is swapped in (core/login.h).
 */
void broker_set_login(struct broker *b, const struct login_conf *login,
                      const struct login_peer_ops *peer);

/*
 * Point the broker at the virtual hosts @vhosts (borrowed, read-only; NULL:
 * none), before any client connects. They do not change on reload: their
 * topic spaces and sessions live in the shards.
 */
void broker_set_vhosts(struct broker *b, const struct vhost_table *vhosts);

/*
 * Point the clients of listener i at access-control list @acls[i], for i
 * below @count (at most CLIENT_LISTENERS_MAX; listeners past it get none),
 * each borrowed from the config snapshot, read-only, shared by every shard
 * (and by listeners whose ACL is the same; NULL: none). Call it between
 * loop iterations: at start-up, and when a reload swaps new ACLs in. A new
 * set gets a new generation, so sessions' cached verdicts are forgotten,
 * and every subscription's ACL check bit is set again from its filter's
 * class under its session's ACL (one walk over this shard's sessions). An
 * ACL without rules that allows by default is kept as NULL: nothing is
 * checked there.
 */
void broker_set_acls(struct broker *b, const struct acl *const *acls, uint32_t count);

/* broker_set_acls() with @acl for every listener (tests, and a broker with one ACL). */
void broker_set_acl(struct broker *b, const struct acl *acl);

/* True while the broker has work for the next loop iteration (logins held for budget). */
bool broker_busy(const struct broker *b);

/*
 * Initialise @cl for a newly accepted connection. net/ then sets
 * cl->listener (the index of its listener in the configuration).
 */
void broker_client_init(struct broker *b, struct client *cl);

/*
 * Feed @len received bytes. Whole packets are handled in place; a trailing
 * partial packet is copied into the client. Answers are appended to cl->out
 * (and other clients' out, for routed messages) and those clients are put on
 * the dirty list.
 * Returns 0 to keep reading; CLIENT_FEED_CLOSE when the client sent
 * DISCONNECT; or a negative mqtt_rc for a protocol error (already counted,
 * and any answer the spec requires, such as CONNACK 0x01, is queued). In
 * both cases the client is now CLOSING and on the dirty list: stop reading,
 * flush cl->out, close. Bytes fed to a CLOSING client are ignored (same
 * return value).
 * CLIENT_FEED_HANDOFF: the CONNECT's client id is homed on another shard
 * (cl->handoff_shard). The client keeps every byte from the CONNECT on; stop
 * reading, feed it whatever the last reads still bring (it keeps those too,
 * same return value), then take them with broker_client_handoff_take().
 */
int broker_client_feed(struct broker *b, struct client *cl, const uint8_t *buf, size_t len);

/*
 * Input a held client sent (kept while its acknowledgement waits on other
 * shards) beyond which net/ should stop reading its socket.
 */
#define BROKER_HELD_READ_MAX (64u * 1024)
/* ... and the least a held client may send before it is closed (0x89). */
#define BROKER_HELD_MAX (4u << 20)

/*
 * True when @cl is held and has sent BROKER_HELD_READ_MAX bytes or more
 * meanwhile: stop reading it until it is next on the dirty list and no
 * longer backlogged (a client leaving a hold is always put there).
 */
bool broker_client_backlogged(const struct client *cl);

/*
 * Back-pressure: the link from this shard to shard @dest is over its
 * budget (@congested), or drained back under it. While it is over, a
 * client whose QoS 1/2 publish crosses to @dest is held - not acknowledged
 * and, past BROKER_HELD_READ_MAX, not read - until the link drains; the
 * holds for @dest are released here when it does (see wait.h).
 */
void broker_set_congested(struct broker *b, uint32_t dest, bool congested);

/*
 * Take the bytes a HANDOFF client kept (malloc'd; the caller owns them, and
 * passes them to the home shard, which feeds them to a fresh client), then
 * forget the client as broker_client_gone() would. Returns 0 or -ENOMEM
 * (nothing kept: close the connection instead).
 */
int broker_client_handoff_take(struct broker *b, struct client *cl, uint8_t **bytes,
                               uint32_t *len);

/*
 * The connection of @cl is gone (peer closed, I/O error, keepalive or connect
 * timeout, or the broker closed it). @reason is 0 or a negative errno/mqtt_rc,
 * for logs. Publishes the will unless a DISCONNECT was received, detaches the
 * session (kept if clean session was 0, destroyed otherwise), frees the
 * client's buffers, and removes it from the dirty list. @cl may then be freed.
 */
void broker_client_gone(struct broker *b, struct client *cl, int reason);

/*
 * Pop the next client that got output or must close since the last call, or
 * NULL. net/ calls this at the end of each loop iteration and, for each,
 * starts a send if none is in flight, and closes it once flushed if
 * CLIENT_CLOSING.
 */
struct client *broker_next_dirty(struct broker *b);

/*
 * Pop the next message this shard must send to another shard: *@dest gets
 * the destination, *@m the message (its pointers now belong to the
 * receiver). false when none is pending. net/ pushes them into the SPSC
 * ring for (this shard, dest), in order.
 */
bool broker_next_xmsg(struct broker *b, uint32_t *dest, struct xmsg *m);

/*
 * The write-ahead log (core/wal.h; b has one after wal_init()). Once per
 * loop iteration, when no batch is being written, net/ takes the open
 * batch: true with its records at *@buf (*@len bytes, possibly 0 when only
 * acknowledgements wait), valid until broker_wal_durable(). net/ writes
 * them (and syncs, with fsync = always), then calls broker_wal_durable():
 * what waited for that batch is acknowledged and held clients resume.
 */
bool broker_wal_take(struct broker *b, const uint8_t **buf, size_t *len);
/* True when records or acknowledgements wait in the open batch. */
bool broker_wal_pending(const struct broker *b);
void broker_wal_durable(struct broker *b);

/*
 * The log lost a promise to allocation failure (core/wal.h, struct wal):
 * until a snapshot begun after the loss is durable, what it promised fails
 * (clients closed, never acknowledged). True while no compaction has begun
 * since the loss: net/ begins one.
 */
bool broker_wal_repair_wanted(const struct broker *b);

/*
 * net/: a compaction's snapshot is complete, and @durable (its last batch
 * synced) or not. True when it is whole (nothing lost since it began): the
 * older segments may go. *@repaired: it made a degraded log whole again,
 * acknowledgements that promise durability go again. Not durable, or not
 * whole, a degraded log wants another compaction.
 */
bool broker_wal_compacted(struct broker *b, bool durable, bool *repaired);

/* Records, waits and acknowledgements the log lost to allocation failure, ever (counted). */
uint64_t broker_wal_lost(const struct broker *b);

/*
 * Start-up, before the loop: rebuild @b from the log's segments (see
 * core/wal_replay.h; @b's clock must be set, broker_tick()), then start
 * logging (@sync: acknowledgements wait for durability). Returns 0 or
 * -ENOMEM.
 */
int broker_wal_replay(struct broker *b, const struct wal_seg *segs, size_t n,
                      int64_t wall_offset_ms, wal_replay_problem_fn problem, void *ctx,
                      struct wal_replay_report *rep);
int broker_wal_start(struct broker *b, bool sync, int64_t wall_offset_ms);

/* Where a snapshot of @b's live state has got to (broker_wal_snapshot()). */
struct broker_wal_cursor {
    uint32_t bucket;  /* next session bucket */
    uint32_t buckets; /* the table's size when it began (a resize starts it again) */
    bool has;         /* who had which QoS 2 origin written (wal_snap_has()) */
    bool retained;    /* sessions done, retained messages written */
};

/*
 * Append a snapshot of @b's live state to the open batch: persistent
 * sessions from @c->bucket on, at most @max buckets this call, then the
 * retained messages this shard orders. Returns true when it is complete
 * (from a zeroed cursor). For compaction and start-up.
 */
bool broker_wal_snapshot(struct broker *b, struct broker_wal_cursor *c, uint32_t max);

/*
 * A routing message (XMSG_PUBLISH, XMSG_MSG_FREE, XMSG_INTEREST_*, XMSG_RETAIN_*)
 * from shard @from. Takes ownership of what @m points to.
 */
void broker_xmsg_receive(struct broker *b, uint32_t from, const struct xmsg *m);

/*
 * Release what an undelivered routing message owns, once no shard will
 * receive it (shutdown): msg_unref for XMSG_PUBLISH and XMSG_RETAIN_SET/APPLY,
 * msg_free for XMSG_MSG_FREE, free() for XMSG_INTEREST_*. Any thread, but only
 * when every shard has stopped.
 */
void broker_xmsg_release(struct xmsg *m);

/*
 * Advance the broker's clock to @now_ms (monotonic milliseconds; never
 * earlier than the last call) and run what is due: session expiry and
 * delayed wills (checked once a second), and clients held too long for
 * another shard's acknowledgement. Message expiry is measured with this
 * clock, so net/ calls it once per loop iteration.
 */
void broker_tick(struct broker *b, uint64_t now_ms);

/* True while something waits for a deadline: net/ must call broker_tick() without traffic. */
bool broker_has_deadlines(const struct broker *b);

/*
 * The client id of @cl's session (*@len bytes, not NUL-terminated; borrowed
 * while the session lives), or NULL before a CONNECT made it one. For log
 * lines about the client.
 */
const uint8_t *broker_client_id(const struct client *cl, size_t *len);

/*
 * The process is stopping (SIGTERM). Without [persistence] every session
 * ends with it, so every will is due now, delay or not [MQTT-3.1.2-8,
 * MQTT-3.1.3-9]. With it, a session that outlives its connection survives
 * the restart, and so does its delayed will (the log keeps it): that one
 * waits out its delay; every other will is due now.
 * broker_client_will_now() publishes connected @cl's will when due (true
 * if it did); broker_delayed_wills_now() those of offline sessions still
 * in their Will Delay Interval, without a log (returns how many). net/
 * calls both before it sends anyone DISCONNECT 0x8B, so subscribers on
 * this shard get the wills first.
 */
bool broker_client_will_now(struct broker *b, struct client *cl);
uint32_t broker_delayed_wills_now(struct broker *b);

/*
 * The server ends @cl's connection for reason @rc (-MQTT_RC_KEEPALIVE_TIMEOUT,
 * -MQTT_RC_SERVER_SHUTTING_DOWN, ...): an MQTT 5.0 client is sent DISCONNECT
 * with that reason code first [MQTT-4.13.2-1]. The client becomes CLOSING;
 * net/ flushes its output, then closes and calls broker_client_gone().
 */
void broker_client_kick(struct broker *b, struct client *cl, int rc);

/*
 * The process is near its memory budget (@on) or back under it. While on,
 * a QoS 0 PUBLISH from a client is dropped on arrival (counted in
 * msgs_shed_memory; nothing is sent back, as nothing is owed for QoS 0),
 * after the checks a malformed one must fail and after its topic alias is
 * recorded; QoS 1/2 still flow, so nothing acknowledged is dropped. net/
 * measures memory and calls this on each change (core/ reads no clock or
 * /proc); every shard's broker is told.
 */
void broker_set_memory_pressure(struct broker *b, bool on);

/* The broker's counters. */
const struct broker_stats *broker_stats(const struct broker *b);

/* (filter, session) subscriptions of this shard's sessions (shared groups not counted). */
size_t broker_subscription_count(const struct broker *b);

/* Retained messages in this shard's replica (every replica holds the same set). */
size_t broker_retained_count(const struct broker *b);

/* One session as the admin socket lists it (broker_sessions_each()); borrowed. */
struct broker_session_info {
    const uint8_t *id; /* client id as stored (a virtual host's carries its prefix) */
    size_t id_len;
    const uint8_t *user; /* NULL: anonymous */
    size_t user_len;
    const struct client *client; /* NULL: offline */
    uint32_t queued;
    uint32_t inflight;
    uint32_t subs;
};

typedef void (*broker_session_fn)(void *ctx, const struct broker_session_info *si);
typedef void (*broker_sub_fn)(void *ctx, const uint8_t *filter, size_t len, uint8_t qos);

/* Call @fn for every session homed on this shard (online or not), in no order. */
void broker_sessions_each(struct broker *b, broker_session_fn fn, void *ctx);

/*
 * Call @fn for each subscription of the session with client id @id (@len
 * bytes, as stored) homed here. Returns 0, or -ENOENT: no such session.
 */
int broker_session_subs(struct broker *b, const uint8_t *id, size_t len, broker_sub_fn fn,
                        void *ctx);

/* The connected client of the session @id (@len bytes) homed here; NULL: none or offline. */
struct client *broker_session_client(struct broker *b, const uint8_t *id, size_t len);

/*
 * Publish a retained QoS 0 message from the broker itself on @topic (the
 * default host's, @topic_len bytes; a '$SYS/...' name) with @payload
 * (@len bytes; both borrowed until return): to this shard's subscribers,
 * the interested shards and every retained replica, like a client's.
 * Counts nothing in the message counters. Returns 0 or -ENOMEM.
 */
int broker_sys_publish(struct broker *b, const char *topic, size_t topic_len,
                       const uint8_t *payload, size_t len);

#endif
