/*
 * session.h - one MQTT session: subscriptions, packet ids, the outbound
 * inflight window, the queue of messages waiting for it, and inbound QoS 2
 * state.
 *
 * A session outlives its network connections when clean session is 0
 * [MQTT-3.1.2-4]. While a client is attached, delivery encodes PUBLISH
 * packets straight into the client's output buffer; while offline, QoS 1/2
 * messages wait in the bounded queue (QoS 0 is not kept for offline
 * sessions) and unacknowledged ones stay in the inflight window to be sent
 * again with DUP on reconnect [MQTT-4.4.0-1].
 *
 * Subscription Identifiers [MQTT-3.3.4-3]: a delivery comes with the
 * identifiers of exactly the subscriptions that matched it (the trie or the
 * shared group reports them with the session), so its cost does not depend
 * on how many other subscriptions the session has. A kept delivery (window
 * or queue) keeps them: one in the entry itself, several in one small array
 * allocated only for a message matched by several subscriptions with
 * identifiers.
 *
 * Below route and connect in core/'s layers (broker_types.h): it calls only
 * output (to encode for the attached client), outbox (to release messages
 * and tell other shards a filter is gone), the trie and shared groups.
 * What needs more - a new filter's announcement, giving shared messages to
 * other members - is returned to the caller or done through a function the
 * caller passes.
 *
 * Owned by the broker of the session's home shard; single-threaded. The
 * broker owns the client/session links; these functions only read them.
 */
#ifndef RINGMQ_SESSION_H
#define RINGMQ_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/acl.h"

struct broker;
struct client;
struct msg;
struct session_timed;

/* One subscription, as the session remembers it (for unsubscribe/cleanup). */
struct session_sub {
    uint8_t *filter;
    uint16_t filter_len;
    uint8_t options; /* MQTT_SUBOPT_*, QoS as granted */
    uint32_t sub_id; /* v5 Subscription Identifier; 0 = none */
    bool fresh;      /* added by a SUBACK not sent yet (Retain Handling 1) */
    uint64_t share_key; /* "$share/g/f": share_key() of the filter; 0 = not shared */
};

/* Session Expiry Interval meaning "never expires" (MQTT 5.0 section 3.1.2.11.2). */
#define SESSION_EXPIRY_NEVER UINT32_MAX

enum session_out_state {
    SESSION_WAIT_PUBACK = 1, /* QoS 1 PUBLISH sent */
    SESSION_WAIT_PUBREC,     /* QoS 2 PUBLISH sent */
    SESSION_WAIT_PUBCOMP,    /* PUBREL sent; the message is released */
};

/* session_inflight.sub_id, session_queued.sub_id: several identifiers, at via.sub_ids. */
#define SESSION_SUB_IDS_MANY UINT32_MAX

/*
 * How a kept delivery reached the session, read with the entry's sub_id:
 * when sub_id is SESSION_SUB_IDS_MANY, @sub_ids; else @share_key. A
 * message matched by several subscriptions with identifiers came through
 * plain subscriptions (a shared group is one subscription), so the two
 * never meet, and the window and queue entries stay 24 bytes.
 */
union session_via {
    uint64_t share_key; /* the shared group it came through (share_key()), or 0 */
    uint32_t *sub_ids;  /* owned, malloc'd: [0] the count (2 or more), then the identifiers */
};

/* An outbound QoS 1/2 message awaiting acknowledgement. */
struct session_inflight {
    struct msg *msg; /* NULL once PUBREC arrived */
    union session_via via;
    uint32_t sub_id; /* its Subscription Identifier; 0: none; or SESSION_SUB_IDS_MANY */
    uint16_t pkt_id;
    uint8_t state : 2;  /* enum session_out_state; the QoS follows (WAIT_PUBACK: 1, else 2) */
    uint8_t retain : 1; /* RETAIN flag it was (or is to be) sent with */
    uint8_t fresh : 1;  /* never sent yet: its first PUBLISH goes without DUP */
    uint8_t wait : 1;   /* fresh, and sent only once batch @batch is durable (hold_first()) */
    uint8_t batch;      /* with @wait: the log batch holding its record (wal_batch()) */
};

/* A message waiting for a free inflight slot (or for the client to return). */
struct session_queued {
    struct msg *msg;
    union session_via via;
    uint32_t sub_id; /* as in struct session_inflight */
    uint8_t qos;
    bool retain;
};

/*
 * Field order fills every padding hole: the client id starts at byte 123,
 * so a session with a 12-byte client id is one 144-byte malloc chunk, with
 * one of up to 28 bytes one of 160 (an idle connection's cost; see
 * docs/architecture.md).
 */
/* An inbound QoS 2 id awaiting PUBREL (session.qos2_in). */
struct session_qos2 {
    uint64_t origin; /* its message's tag until committed (core/wal.h); 0: committed, or none */
    uint16_t pkt_id;
    bool recovered;  /* restored uncommitted from the log: its resend is routed again */
};

struct session {
    struct session *_hnext; /* broker's client-id table chain */
    uint64_t _hash;
    struct client *client; /* NULL while offline */
    uint32_t expiry_s;     /* Session Expiry Interval: 0 ends with its connection */
    uint32_t _match_ids;   /* routing scratch (see _match_epoch) */
    /* deadline.c: while offline with an expiry or a delayed will, when; else NULL. */
    struct session_timed *_timed;
    uint16_t next_pkt_id;
    uint16_t client_id_len;
    /*
     * Routing scratch (route.c): dedupes a session matched through several
     * filters. With _match_ids, the head of the list of the matched
     * filters' Subscription Identifiers in the broker's match_ids (index +
     * 1; 0: none).
     */
    uint32_t _match_epoch;

    struct session_sub *subs;
    uint32_t sub_count;
    uint32_t sub_cap;

    struct session_inflight *inflight; /* ordered by send time */
    uint32_t inflight_count;
    uint32_t inflight_cap;

    struct session_queued *queue; /* ring buffer */
    uint32_t queue_head;
    uint32_t queue_count;
    uint32_t queue_cap;
    uint32_t queue_bytes; /* payload bytes in the queue, against queued_bytes_max */

    struct session_qos2 *qos2_in; /* inbound QoS 2 packet ids awaiting PUBREL */
    uint32_t qos2_in_cap;
    uint16_t qos2_in_count; /* at most inflight_in_max, itself at most 65535 */
    /*
     * The last inflight_unsent entries are not (re-)sent on this connection
     * yet: a client's Receive Maximum may be smaller than what was in flight
     * when it reconnected [MQTT-3.3.4-9], or a QoS 2 PUBLISH waits for its
     * record (and what came after it, in order, behind it; fresh). pump()
     * sends them first. At most inflight_count, itself at most
     * inflight_max (at most 65535).
     */
    uint16_t inflight_unsent;

    /*
     * Routing scratch: highest QoS | MQTT_SUBOPT_RAP of any matched filter;
     * and SESSION_ACL_INLINE, fixed for the session's life (route.c keeps it).
     */
    uint8_t _match_opts;
    /*
     * The listener of the connection that made it or last took it over
     * (client.listener): whose ACL applies (broker.acls). Written by
     * connect.c (session_acl_move()).
     */
    uint8_t listener;
    /*
     * The authenticated user's name, after the client id (0: anonymous).
     * Fixed for the session's life: a CONNECT by another user either is
     * refused ([auth] bind_client_id_to_user) or starts a new session, so
     * subscriptions made under one user's rights never deliver to another.
     */
    uint8_t username_len;

    /*
     * client_id_len bytes, then username_len bytes, in the session's own
     * allocation (no second chunk per session).
     */
    uint8_t client_id[];
};

_Static_assert(offsetof(struct session, client_id) == 123, "a hole came back into struct session");

/*
 * A subscription option bit of ringmq's own (bits 6-7 of the options byte
 * are reserved on the wire and never stored from it): deliveries through
 * this subscription are checked with acl_check(ACL_READ), its filter being
 * classed ACL_SUB_SOME (or, after a reload, NONE). It rides in the options
 * byte the trie and the shared groups keep, so it costs no memory.
 */
#define SESSION_SUBOPT_ACL_CHECK 0x40u

/*
 * session._match_opts: the session's allocation holds a struct session_acl
 * after its names (it was made while an ACL with rules was in force).
 */
#define SESSION_ACL_INLINE 0x40u

/* Publish verdicts a session remembers (direct mapped by topic hash). */
#define SESSION_ACL_SLOTS 8u

/*
 * A session's access-control state, only in sessions made while an ACL
 * with rules is in force (after its names, in the same allocation), so a
 * broker without rules pays nothing. Rebuilt lazily when the broker's ACL
 * generation differs from @gen (a reload), or the session's ACL from @acl
 * (a takeover from another listener): the verdicts are keyed by both.
 */
struct session_acl {
    const struct acl *acl; /* the ACL @who and @verdict were made under (compared only) */
    uint32_t gen;        /* broker.acl_gen @who and @verdict were made under; 0: never */
    uint32_t read_epoch; /* broker.match_epoch @read_ok is for (0: none) */
    bool read_ok;        /* the ACL_READ verdict on the topic being routed */
    /* (topic hash | 2) with the PUBLISH verdict in bit 0; 0: empty. */
    uint64_t verdict[SESSION_ACL_SLOTS];
    struct acl_who who; /* points at the session's own names */
};

/* @s's user name (session_username_len(s) bytes; not NUL-terminated). */
static inline const uint8_t *session_username(const struct session *s)
{
    return s->client_id + s->client_id_len;
}

/* True when @s belongs to user @user (@len bytes; 0: anonymous). */
static inline bool session_owned_by(const struct session *s, const uint8_t *user, size_t len)
{
    return s->username_len == len && (len == 0 || memcmp(session_username(s), user, len) == 0);
}


/*
 * Give @m, which member @from of shared group @share_key can no longer
 * take, to another member; false when @from is the only member left
 * anywhere (it keeps the message). Borrows @m. route_share_give() is the
 * one the broker passes.
 */
typedef bool (*session_give_fn)(void *ctx, struct msg *m, uint64_t share_key,
                                const struct session *from);

/*
 * A new offline session for @client_id (copied) with Session Expiry
 * Interval @expiry_s (0: ends with its connection), belonging to user
 * @user (@user_len bytes, at most 255, copied; 0: anonymous); with room
 * for a struct session_acl when @acl (an ACL with rules is in force).
 * NULL on ENOMEM.
 */
struct session *session_new(const uint8_t *client_id, size_t len, uint64_t hash,
                            uint32_t expiry_s, const uint8_t *user, size_t user_len, bool acl);

/*
 * May @s publish to topic name @topic (@len bytes) under its listener's
 * ACL (b->acls[s->listener])? Through the session's verdict cache (XXH3
 * of the topic under b->seed, kept for one ACL and generation): a
 * publisher repeating a topic costs one hash and one compare. No ACL
 * there allows.
 */
bool session_acl_publish(struct broker *b, struct session *s, const uint8_t *topic, size_t len);

/*
 * May @s receive a message on topic name @topic? When @epoch is not 0
 * (broker.match_epoch of the message being routed), the verdict is kept
 * for that epoch, so a session matched through several checked
 * subscriptions is asked once. No ACL on @s's listener allows.
 */
bool session_acl_read(struct broker *b, struct session *s, const uint8_t *topic, size_t len,
                      uint32_t epoch);

/* The class of @s subscribing to @filter (a "$share/G/" prefix allowed); ALL without an ACL. */
enum acl_sub_class session_acl_class(struct broker *b, struct session *s, const uint8_t *filter,
                                     size_t len);

/*
 * @s's ACL changed (a reload, a takeover from another listener): set or
 * clear SESSION_SUBOPT_ACL_CHECK on each
 * of @s's subscriptions as its filter's class now says, in the trie and
 * the shared groups too. A subscription now classed NONE stays, checked.
 */
void session_acl_reclass(struct broker *b, struct session *s);

/*
 * @s now belongs to a connection of listener @listener (a takeover): its
 * listener's ACL applies from now on, and its subscriptions are classed
 * again when that ACL is another one.
 */
void session_acl_move(struct broker *b, struct session *s, uint8_t listener);

/*
 * Free @s and everything it holds: removes its subscriptions from @b's trie
 * and shared groups (telling other shards of filters nobody here has any
 * more), gives its shared-group messages to other members through @give
 * (see session_share_redispatch()) and drops its message references. @s
 * must be detached from any client.
 */
void session_free(struct broker *b, struct session *s, session_give_fn give, void *give_ctx);

/*
 * Add or replace the subscription to @filter with subscription options
 * @options (MQTT_SUBOPT_*) and v5 Subscription Identifier @sub_id (0:
 * none). Returns 1 added (or replacing one still fresh), 0 replaced,
 * -ENOSPC over subs_per_client_max, -ENOMEM. *@announce: what the caller
 * tells the other shards (outbox_interest()), 0 for nothing: 1 when no
 * session on this shard had @filter before, or a shared group's new member
 * count on this shard (other shards weigh it by that count, see share.h).
 */
int session_subscribe(struct broker *b, struct session *s, const uint8_t *filter, size_t len,
                      uint8_t options, uint32_t sub_id, uint32_t *announce);

/* A connection left @s: no subscription is fresh any more (see session_sub.fresh). */
void session_settle(struct session *s);

/* The subscription to exactly @filter, or NULL. */
struct session_sub *session_sub_find(struct session *s, const uint8_t *filter, size_t len);

/*
 * Remove the subscription to exactly @filter; true if there was one. When
 * it was this shard's last to @filter, or it was a shared group's (whose
 * member count changed), the other shards are told.
 */
bool session_unsubscribe(struct broker *b, struct session *s, const uint8_t *filter,
                         size_t len);

/*
 * Deliver @m to @s at QoS @qos (already min(message, subscription)) with
 * RETAIN flag @retain: encoded to the attached client, put in the inflight
 * window, or queued. Takes its own references. Counts what it sheds.
 * @share_key: the shared group it was chosen through, or 0. @sub_ids
 * (borrowed until return): the @sub_id_count Subscription Identifiers of
 * the subscriptions it matched, all sent in this one copy [MQTT-3.3.4-3,
 * -4] and kept with it if it waits; at most one with a @share_key. No
 * allocation unless it waits with two or more.
 */
void session_deliver(struct broker *b, struct session *s, struct msg *m, uint8_t qos,
                     bool retain, uint64_t share_key, const uint32_t *sub_ids,
                     uint32_t sub_id_count);

/*
 * @s just lost its connection, or ends: give the messages it got through
 * shared subscriptions and cannot take now (queued ones, and QoS 1 sent
 * but not PUBACKed) to other members of their groups; QoS 2 already sent
 * stays with @s [MQTT-4.8.2-4, -5]. Each goes through @give(@give_ctx, ...);
 * what it refuses stays with @s. A NULL @give keeps them all.
 */
void session_share_redispatch(struct broker *b, struct session *s, session_give_fn give,
                              void *give_ctx);

/*
 * Outbound acknowledgements from the attached client. Unknown packet ids are
 * ignored (3.1.1 gives no way to answer them). A v5 PUBREC with reason
 * code @rc >= 0x80 ends that QoS 2 flow. Returns 0, or -ENOMEM when an
 * answer could not be queued (the caller closes the connection);
 * session_on_pubrec() returns 1 when a PUBREL is due, which the caller
 * sends once what this logged is durable (the receiver may forget the
 * message at PUBREL: the broker must not send it again after a crash).
 */
int session_on_puback(struct broker *b, struct session *s, uint16_t pkt_id);
int session_on_pubrec(struct broker *b, struct session *s, uint16_t pkt_id, uint8_t rc);
int session_on_pubcomp(struct broker *b, struct session *s, uint16_t pkt_id);

/*
 * Inbound QoS 2: record @pkt_id as received. Returns 1 if it is new (route
 * the message), 0 if it is a duplicate [MQTT-4.3.3-2] (do not route again),
 * -MQTT_RC_RECEIVE_MAX_EXCEEDED past inflight_in_max, -ENOMEM.
 */
int session_qos2_in_add(struct broker *b, struct session *s, uint16_t pkt_id);

/*
 * Commit inbound QoS 2 id @pkt_id (WAL_QOS2_IN) as its PUBREC goes out, not
 * when it arrives: only once every delivery of the message is durable may
 * a restarted broker treat a resend as a duplicate (else a crash between
 * the two logs loses it for the shards whose deliveries were not).
 */
void session_qos2_in_log(struct broker *b, struct session *s, uint16_t pkt_id);

/* As session_qos2_in_log(), only while @pkt_id is still the message tagged @origin. */
void session_qos2_in_commit(struct broker *b, struct session *s, uint16_t pkt_id,
                            uint64_t origin);

/*
 * Inbound QoS 2 id @pkt_id (just added) is routed as the message tagged
 * @origin: logged (WAL_QOS2_PEND) before its deliveries, uncommitted
 * until session_qos2_in_log().
 */
void session_qos2_in_pend(struct broker *b, struct session *s, uint16_t pkt_id, uint64_t origin);

/*
 * A PUBLISH of @pkt_id, already known: when it was restored uncommitted
 * from the log, its tag (it is routed again, once); else 0 (a duplicate).
 */
uint64_t session_qos2_in_resume(struct session *s, uint16_t pkt_id);

/* Replay: inbound QoS 2 id @pkt_id, uncommitted with tag @origin (0: committed). */
int session_qos2_in_restore(struct broker *b, struct session *s, uint16_t pkt_id,
                            uint64_t origin);

/*
 * Send what @s (connected) can send now: the window's resends, then the
 * queue (after a PUBREL held back on the log, core/wal.h). 0 or negative.
 */
int session_pump(struct broker *b, struct session *s);

/* Inbound QoS 2: PUBREL for @pkt_id releases it (no-op if unknown). */
void session_on_pubrel(struct broker *b, struct session *s, uint16_t pkt_id);

/*
 * A client has just been attached to @s (after CONNACK was queued): send the
 * unacknowledged PUBLISH (DUP) and PUBREL packets again, then fill the
 * inflight window from the queue. Returns 0 or -ENOMEM.
 */
int session_resume(struct broker *b, struct session *s);

/*
 * Append all of @s's state (a session that outlives its connection) to
 * b->wal as a snapshot: WAL_SESSION, WAL_RESET, then its subscriptions,
 * kept messages in order and inbound QoS 2 ids. For compaction.
 */
void session_wal_snapshot(struct broker *b, const struct session *s);

/*
 * Replay: put @m back into offline @s, sent before with @pkt_id (the
 * window, to be re-sent with DUP), or queued when @pkt_id is 0; a NULL @m
 * with @pkt_id is a QoS 2 flow whose PUBREC came (PUBREL due); through
 * shared group @share_key (0: none), with the @n Subscription Identifiers
 * @ids. Takes its
 * own reference. Returns 0, -ENOSPC (the queue is full: counted) or
 * -ENOMEM.
 */
int session_restore(struct broker *b, struct session *s, struct msg *m, uint8_t qos, bool retain,
                    uint64_t share_key, const uint32_t *ids, uint32_t n, uint16_t pkt_id);

#endif
