/*
 * broker_types.h - struct broker: one shard's core/ state, and the types the
 * modules below broker.c share. Nothing outside core/ includes this.
 *
 * The modules form layers; each calls only the ones below it (and the leaf
 * modules: trie, share, retained, msg, mqtt_*, topic):
 *
 *   broker      the facade net/ drives: framing, dispatch, xmsg intake
 *   connect     CONNECT, AUTH, DISCONNECT, takeover, a client leaving
 *   subscribe   SUBSCRIBE and UNSUBSCRIBE, retained on subscribe
 *   publish     a client's PUBLISH: checks, inbound aliases, acknowledgement
 *   xrecv       messages from other shards
 *   deadline    offline sessions' expiry and delayed wills
 *   route       a message to sessions here, other shards, shared groups
 *   replica     every shard's retained replica, in one order
 *   sess_table  sessions by client id
 *   session     one session's state machine
 *   wait        clients held until other shards acknowledge
 *   output      packets to a client: encoding, dirty list, aliases, close
 *   outbox      messages to other shards, releasing messages
 *
 * Each field of struct broker below names the module that writes it.
 * Owned by one shard; single-threaded.
 */
#ifndef RINGMQ_BROKER_TYPES_H
#define RINGMQ_BROKER_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/broker_stats.h"
#include "core/client.h"
#include "core/limits.h"
#include "core/login_types.h"
#include "core/mqtt_codec.h"
#include "core/trie.h"
#include "core/vhost.h"
#include "core/xmsg.h"

struct acl;
struct auth_method;
struct login_conf;
struct login_fail;
struct login_pending;
struct mqtt_pkt;
struct session_timed;
struct share_table;
struct trie;
struct retained;
struct wal;

/* An outbound topic alias (MQTT 5.0 section 3.3.2.3.4), least recently used first out. */
struct alias_out {
    uint8_t *topic;
    uint16_t topic_len;
    uint16_t alias;
    uint32_t used; /* client_v5.alias_clock when last used */
};

/* Outbound aliases used per connection, at most (within the client's maximum). */
#define BROKER_ALIAS_OUT_MAX 32u

/* A packet handler's result: stop handling this client's bytes until its wait completes. */
#define BROKER__HOLD 3
/* The same, and handle this packet again when the wait completes. */
#define BROKER__REDO 4

/*
 * What a connection negotiated with MQTT 5.0, allocated only for a v5
 * client that negotiated something, uses topic aliases or AUTH
 * (output_v5_state()): a NULL client._v5 reads as the defaults of absent
 * properties, so 3.1.1 and plain v5 connections pay nothing for it.
 */
struct client_v5 {
    uint32_t max_packet;   /* the client's Maximum Packet Size (protocol maximum if none) */
    uint32_t will_delay_s; /* the will's Will Delay Interval */
    uint16_t recv_max;     /* the client's Receive Maximum */
    uint16_t alias_max;    /* the client's Topic Alias Maximum: outbound aliases */
    uint16_t alias_out_count;
    uint32_t alias_clock;
    struct alias_out *alias_out; /* [BROKER_ALIAS_OUT_MAX], lazily */
    struct mqtt_str *alias_in;   /* [alias_in_cap] owned copies, lazily */
    uint16_t alias_in_cap;       /* topic_alias_max when alias_in was allocated */
    /* Enhanced authentication in progress (core/auth.h). */
    const struct auth_method *auth;
    void *auth_priv;             /* the method's state, only while an exchange runs */
    uint8_t *auth_connect;       /* the CONNECT packet, handled once authenticated */
    uint32_t auth_connect_len;
    uint8_t auth_step;
    uint64_t auth_deadline_ms; /* a re-authentication must end by then */
};

/* A shared group's choice for the message being routed: a local member or another shard. */
struct broker_share_pick {
    uint64_t key;
    struct session *member; /* NULL: send to @shard */
    uint32_t shard;
    uint32_t sub_id; /* @member's Subscription Identifier (0: none) */
    uint8_t options;
};

/* One Subscription Identifier of a session matched by the publish being routed. */
struct broker_match_id {
    uint32_t sub_id;
    uint32_t next; /* the session's next one: index + 1 in broker.match_ids; 0: end */
};

/* A message waiting in the broker's outbox for another shard. */
struct broker_outbox_entry {
    uint32_t dest;
    struct xmsg m;
};

/* Messages held back until a batch of the write-ahead log is durable (outbox_hold_*()). */
struct broker_outbox_hold {
    struct broker_outbox_entry *e;
    uint32_t count;
    uint32_t cap;
};

/* How a wait_callback() wait ended: @done (all acknowledged), else failed. */
struct broker;
typedef void (*broker_wait_end_fn)(struct broker *b, uint64_t arg, bool done);

/* A retained publish waiting for every replica (see broker.waits). */
struct broker_wait {
    struct client *cl; /* NULL once the client is gone */
    /*
     * The client's session when the wait began: it stays after the client
     * is gone (wait_adopt(), wait_publisher()); only compared, never
     * dereferenced, as the session may have ended since.
     */
    const struct session *sess;
    uint32_t gen;      /* bumped when the slot is freed: stale tokens miss */
    uint32_t remaining; /* acknowledgements still to come (slot free: 0 and no cl) */
    uint16_t pkt_id;
    uint8_t ack_type;  /* MQTT_PUBACK, MQTT_PUBREC, or 0 (QoS 0: nothing to send) */
    uint8_t ack_rc;    /* its v5 reason code (0x10: the message matched nobody) */
    /* A relay (wait_relay(), no client): XMSG_ACK(relay_token) to relay_dest when done. */
    uint32_t relay_dest;
    uint64_t expire_ms; /* given up then (wait_expire()): an acknowledgement was lost */
    uint64_t relay_token; /* 0: not a relay */
    /* A wait with no client that tells its owner (wait_callback()): NULL: not one. */
    broker_wait_end_fn end_fn;
    uint64_t end_arg;
    /*
     * A tagged QoS 2 publish's PUBREC wait (wait_set_origin()): its origin
     * and its session's hash, so that it commits even when its client has
     * gone (the session looked up again: it may have ended since).
     */
    uint64_t origin;
    uint64_t sess_hash;
};

/*
 * A message an ended session handed on, until it is logged where it went
 * (give.c). A slot; free when m is NULL (next_free links the free ones).
 */
struct broker_give {
    struct msg *m;  /* a reference of its own */
    uint64_t key;   /* its shared group */
    uint64_t id;    /* WAL_GIVE's (wal_origin_new()) */
    uint64_t token; /* its wait; 0: to be sent again (give_tick()) */
    uint8_t *cid;   /* the session that gave it: its home replays it */
    uint16_t cid_len;
    uint32_t next_free; /* free: the next free slot + 1 (0: none) */
};

/* A retained message's first arrival here, waiting for its pair (rpair.c). */
struct broker_rpair {
    struct msg *m;      /* a reference of its own; NULL: empty slot */
    uint64_t expire_ms; /* given up then (rpair_expire()) */
    bool applied;       /* its apply came first (else its notice) */
};

/* A filter announced with a wait (subscribe.c): its hash, and the wait's token. */
struct broker_announced {
    uint64_t hash; /* 0: empty slot */
    uint64_t token;
};

/* The waits held for one congested link (wait.c). */
struct broker_link_holds {
    uint64_t *tokens;
    uint32_t count;
    uint32_t cap;
};

/* Held logins in order (login.c): a growable array used as a FIFO or a list. */
struct broker_login_queue {
    struct login_pending *items;
    uint32_t head;
    uint32_t count;
    uint32_t cap;
};

struct broker {
    /* Set by broker.c (lim again on reload); read by every module. */
    const struct limits *lim;
    uint32_t shard_id;
    uint32_t shard_count;
    bool memory_pressure; /* broker_set_memory_pressure(); publish.c sheds QoS 0 while set */
    struct trie *trie;     /* session.c: this shard's sessions' subscriptions */
    /* xrecv.c: filters other shards subscribe to; owner = &shard_marker[i] */
    struct trie *interest;
    uint8_t *shard_marker; /* shard_count distinct addresses, one per shard */
    struct retained *retained; /* replica.c */
    uint64_t retained_expire_ms; /* replica.c: no retained message expires before */
    uint64_t retained_sweep_ms; /* replica.c: next sweep of expired retained messages */
    /* rpair.c: retained messages whose notice or apply came, not both yet. */
    struct broker_rpair *rpairs;
    uint32_t rpair_cap; /* a power of two, or 0 */
    uint32_t rpair_count;
    uint64_t rpair_scan_ms; /* rpair_expire() looks again at this time */
    struct share_table *share; /* session.c, xrecv.c: shared groups ($share/g/f) */

    /* outbox.c: to other shards, a FIFO ring drained by net/ each iteration. */
    struct broker_outbox_entry *outbox;
    uint32_t outbox_head;
    uint32_t outbox_count;
    uint32_t outbox_cap;
    /* ... and what waits for the log's open batch, and for the one in flight. */
    struct broker_outbox_hold hold_open;
    struct broker_outbox_hold hold_flight;
    uint32_t held_to[LIMITS_SHARDS_MAX]; /* held messages by destination (kept in order) */

    /* route.c scratch: shards with interest in the publish being routed. */
    uint64_t shard_hit[LIMITS_SHARDS_MAX / 64];
    uint32_t remote[LIMITS_SHARDS_MAX];
    uint32_t remote_count;

    /* sess_table.c: sessions by client id, chained, power-of-two buckets. */
    struct session **sess_buckets;
    uint32_t sess_bucket_count;
    uint32_t sess_count;

    /* output.c: clients with new output or closing, in the order they became so. */
    struct client *dirty_head;
    struct client *dirty_tail;

    /*
     * route.c scratch: the topic being routed, split and hashed once under
     * seed, which the trie, the interest map and the shared groups share.
     */
    uint64_t seed;
    struct trie_name split;
    /* route.c scratch: sessions matched by the publish being routed. */
    struct session **match;
    uint32_t match_count;
    uint32_t match_cap;
    uint32_t match_epoch;

    /*
     * route.c scratch: the Subscription Identifiers reported with the
     * matched sessions, a list per session (session._match_ids), and room
     * (match_id_cap) to gather one session's for its PUBLISH.
     */
    struct broker_match_id *match_ids;
    uint32_t match_id_count;
    uint32_t match_id_cap;
    uint32_t *sub_ids;

    /*
     * subscribe.c: filters this shard announced whose acknowledgements may
     * still be due, by hash (open addressing, power-of-two capacity; entries
     * whose wait is over are dropped when the table is rebuilt).
     */
    struct broker_announced *announced;
    uint32_t announced_cap;
    uint32_t announced_count;

    /* subscribe.c scratch: SUBACK and UNSUBACK reason codes. */
    uint8_t *rcs;
    uint32_t rcs_cap;

    /*
     * wait.c: clients held until every shard's retained replica has applied their
     * retained QoS 1/2 publish: only then is it acknowledged, so a subscribe
     * made after the PUBACK sees it on any shard [MQTT-3.3.1-6]; or until
     * every shard forwards a new filter's publishes here, so a publish made
     * after the SUBACK is never missed.
     */
    struct broker_wait *waits;
    uint32_t wait_cap;
    uint32_t wait_used;
    uint64_t wait_scan_ms;  /* wait_expire() looks again at this time */
    uint64_t wait_scan_min; /* the earliest deadline seen by the scan under way */
    uint32_t wait_scan_from; /* where the scan under way resumes; 0: a new one */
    uint32_t wait_next;      /* wait_new() looks for a free slot from here */

    /*
     * wait.c: back-pressure between shards. Bit d: net/ says the link to
     * shard d is over its budget (broker_set_congested()). link_holds[d]:
     * the waits of clients held until that link drains (allocated on the
     * first hold).
     */
    uint64_t congested[LIMITS_SHARDS_MAX / 64];
    uint32_t congested_count;
    struct broker_link_holds *link_holds;
    /* route.c scratch: congested shards the QoS 1/2 publish being routed crossed to. */
    uint32_t hold[LIMITS_SHARDS_MAX];
    uint32_t hold_count;
    bool hold_on; /* routing a client's QoS 1/2 publish while a link is congested */
    /*
     * publish.c, read by route.c: the publisher's wait that each crossing
     * to another shard adds an acknowledgement to, due once that shard has
     * logged what it keeps of the message (fsync = always); 0: none.
     */
    uint64_t wal_token;
    /*
     * xrecv.c and route.c: while a crossing that carries another shard's
     * wait (relay_token, of shard relay_dest) is routed here, a shared
     * group's message passed on from it owes that wait through relay_wait,
     * a relay made for the first one (0: none yet); relay_failed when
     * none could be made, and that wait was told it failed (XMSG_NACK).
     */
    uint64_t relay_token;
    uint64_t relay_wait;
    uint32_t relay_dest;
    bool relay_failed;
    /*
     * wal.c, read by outbox.c: this shard's origins up to this one are
     * durable (their WAL_QOS2_PEND); a message with a later one of ours
     * leaves for another shard only once it is (outbox_hold_*()).
     */
    uint64_t origin_durable;
    /*
     * wal_replay.c: who had which uncommitted origin when the log was
     * replayed, sorted by (origin, who) (wal_origin_had()); and the highest
     * origin the log held (wal_origin_new() starts above it).
     */
    struct wal_has *origin_has;
    uint32_t origin_has_count;
    uint64_t origin_floor;
    /*
     * give.c: messages ended sessions handed on, not yet logged where they
     * went; give_retry when some wait to be sent again, at give_retry_ms.
     */
    struct broker_give *gives;
    uint32_t give_slots; /* slots in use or free, of give_cap */
    uint32_t give_cap;
    uint32_t give_count; /* open */
    uint32_t give_free;  /* the first free slot + 1 (0: none) */
    bool give_retry;
    uint64_t give_retry_ms;
    uint32_t give_backoff_ms; /* the next retry's delay: doubles while tries fail */

    /*
     * deadline.c: offline sessions with a deadline: a finite session expiry, or a
     * delayed will. Walked by broker_tick() at next_scan_ms: the earliest
     * deadline, at most once a second.
     */
    struct session_timed *timed_head;
    uint64_t now_ms;      /* broker_tick()'s clock */
    uint64_t next_scan_ms;

    /* route.c scratch: one pick per matching shared group. */
    struct broker_share_pick *picks;
    uint32_t pick_count;
    uint32_t pick_cap;
    /* route.c scratch: the group keys of one crossing to a shard. */
    uint64_t *keys;
    uint32_t keys_cap;

    /* route.c scratch: the session publishing (No Local), or NULL. */
    const struct session *publisher;
    /* route.c scratch: the topic being matched, for ACL_READ checks. */
    const uint8_t *match_topic;
    size_t match_topic_len;

    /*
     * broker.c: the access-control list of each listener (core/acl.h),
     * borrowed from the config snapshot (listeners with the same ACL share
     * one); NULL where there is none or it allows everything (no rule,
     * default allow), so nothing is checked there. A session is checked
     * against its listener's (session.listener). acl_on: any is not NULL.
     * acl_gen changes with every new set: session.c's per-session caches
     * compare it, and the ACL they were built for.
     */
    const struct acl *acls[CLIENT_LISTENERS_MAX];
    uint32_t acl_count; /* the listeners configured (acls[] past it: none) */
    bool acl_on;
    uint32_t acl_gen;

    /* broker.c: the virtual hosts (NULL: none); room for host-prefixed ids [0], topics [1]. */
    const struct vhost_table *vhosts;
    struct vhost_buf vhost_buf[2];
    /* broker.c: the authentication snapshot (NULL: anonymous) and net/'s peer questions. */
    const struct login_conf *login;
    struct login_peer_ops peer;
    /* login.c: the pacing of checks and refusals (core/login.h). */
    int64_t login_budget;  /* PBKDF2 iterations left this loop iteration */
    bool login_pass;       /* the CONNECT handled next was deferred: it goes first */
    struct broker_login_queue login_deferred; /* CONNECTs waiting for budget, oldest first */
    struct broker_login_queue login_delayed;  /* refusals waiting for their time */
    uint64_t login_delayed_due;               /* the earliest of them (0: none) */
    uint64_t login_fail_last_ms;              /* the last failure (succeed() looks up since) */
    struct login_fail *login_fails;           /* [LOGIN_FAIL_SLOTS], on the first failure */

    uint64_t assigned_id_seq; /* connect.c */
    /* wal.c: the write-ahead log's open batch and the one being written (NULL: off). */
    struct wal *wal;
    struct broker_stats stats; /* every module counts here */
};

#endif
