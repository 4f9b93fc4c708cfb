/*
 * wal.h - what one shard's broker writes to its write-ahead log, and the
 * acknowledgements that wait for it to be durable (group commit).
 *
 * Only sessions that outlive their connection are logged (expiry_s != 0):
 * their existence, subscriptions, the QoS 1/2 messages kept for them
 * (queued or in flight) with every step of those flows, their inbound
 * QoS 2 ids and delayed wills; and the retained messages whose home this
 * shard is. Each
 * change appends records (core/wal_format.h) to the open batch; net/
 * takes the batch once per loop iteration (broker_wal_take()), writes it
 * and, with fsync = always, syncs it, then reports it durable
 * (broker_wal_durable()). Acknowledgements that promise durability
 * (PUBACK/PUBREC of a message logged here or on another shard, SUBACK of
 * a persistent session, a replica's acknowledgement of a retained set)
 * wait for that: a wait token completed (wal_hold()) or an XMSG_ACK sent
 * (wal_ack_later()) when their batch is durable. Without sync (fsync =
 * interval or off) nothing waits.
 *
 * A message is written once per batch (WAL_MSG) and referenced by id from
 * each delivery of it in that batch; replay (core/wal_replay.h) maps ids
 * back. Calls wal_format and outbox. Owned by one shard; single-threaded.
 */
#ifndef RINGMQ_WAL_H
#define RINGMQ_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/wal_format.h"

struct broker;
struct msg;

/*
 * Exactly once across a crash (fsync = always). A persistent publisher's
 * QoS 2 message is tagged with an origin (msg.origin) when it arrives and
 * WAL_QOS2_PEND names it; WAL_QOS2_IN commits it once every delivery is
 * durable (its PUBREC). What the message crosses to other shards leaves
 * only once the WAL_QOS2_PEND is durable (outbox_hold_*()), so no shard
 * logs a tagged delivery whose origin a restart cannot find. After a crash
 * an uncommitted origin is recovered: its publisher's resend is routed
 * again with the same origin, and skips every session and shared group
 * that the log says already had it (wal_origin_had()). Who had what
 * survives a compaction as WAL_HAS records: the deliveries since the last
 * snapshot began, and what the last restart recovered.
 */
/*
 * Origins (and give ids, core/give.h) a broker gives out stay below this
 * (2^62: centuries of them); a log that holds one at or above it was
 * damaged, and that record is refused, so new ones never wrap to 0.
 */
#define WAL_ORIGIN_MAX (1ull << 62)

struct wal_has {
    uint64_t origin;
    uint64_t who; /* a session's client-id hash (session._hash), or a shared group's key */
};

/* An XMSG_ACK to send to @dest once the batch is durable. */
struct wal_ack {
    uint32_t dest;
    uint64_t token;
};

/*
 * Sessions (their _hash) with records of a kind in a batch, fsync = always
 * only: a packet that logs nothing may still promise what they say.
 */
enum wal_note {
    WAL_NOTE_SUBS,   /* its subscriptions changed: a SUBSCRIBE repeated after a takeover */
    WAL_NOTE_PUBREC, /* an outbound QoS 2 released: a PUBREL resent on a resume */
    WAL_NOTE_KINDS
};

struct wal_notes {
    uint64_t *hash;
    uint32_t count;
    uint32_t cap;
    bool lost; /* one could not be noted: every session counts as noted */
};

/* Records and what waits for them. */
struct wal_batch {
    struct wal_out out;
    bool lossy; /* taken while the log was degraded: its waits fail, its acks are NACKs */
    uint64_t *tokens; /* waits on this shard to complete */
    uint32_t token_count;
    uint32_t token_cap;
    struct wal_ack *acks;
    uint32_t ack_count;
    uint32_t ack_cap;
    struct wal_notes notes[WAL_NOTE_KINDS];
    struct wal_notes pump; /* sessions to pump again once it is durable (wal_pump_later()) */
};

struct wal {
    struct wal_batch open;   /* filled during this iteration */
    struct wal_batch flight; /* with net/ until durable (broker_wal_take()) */
    bool in_flight;
    bool flight_settled;     /* in flight and durable: what waited on it runs (wal_settled()) */
    uint8_t batch;           /* the open batch's number (wal_batch()) */
    bool sync;               /* acknowledgements wait for durability */
    uint64_t next_msg_id;
    /* The message last written in the open batch (deliveries reference it). */
    struct msg *last_msg; /* a reference of its own */
    uint64_t last_msg_id;
    /* Wall-clock ms minus broker ms: message expiry is logged in wall time. */
    int64_t wall_offset_ms;
    uint64_t nomem; /* promises lost to allocation failure (counted, never silent) */
    uint64_t losses; /* of which records (degrade()): the log is degraded */
    /*
     * The log lost a record to allocation failure (end(), wal_has()).
     * Until a snapshot begun after the last loss is durable, what a taken
     * batch promised fails instead of completing (wait_fail(), XMSG_NACK):
     * a client is closed rather than acknowledged. A compaction repairs it
     * (wal_repair_wanted()).
     */
    bool degraded;
    bool repair_wanted;    /* degraded, and no snapshot has begun since the last loss */
    uint64_t snaps_begun;  /* snapshots begun, ever (wal_snap_begin()) */
    uint64_t snap_running; /* the number of the last one begun */
    uint64_t repair_after; /* a snapshot numbered above this one repairs the last loss */
    uint64_t next_origin;   /* wal_origin_new() */
    uint64_t flight_origin; /* the last origin given out before the batch in flight was taken */
    /* Tagged deliveries since the last snapshot began (fsync = always). */
    struct wal_has *has;
    uint32_t has_count;
    uint32_t has_cap;
};

/*
 * Start logging on @b (b->wal): @sync makes acknowledgements wait for
 * durability; @wall_offset_ms is the wall clock minus b->now_ms. Returns
 * 0 or -ENOMEM.
 */
int wal_init(struct broker *b, bool sync, int64_t wall_offset_ms);

/* Free b->wal (broker_free()). */
void wal_fini(struct broker *b);

/* True when acknowledgements wait for durability (never without a log). */
bool wal_sync(const struct broker *b);

/* The open batch's length: compare with wal_since() to see what a step logged. */
size_t wal_mark(const struct broker *b);

/*
 * True when records were appended since @mark (0 without a log); with
 * sync, always while the log is degraded (what was logged may be lost).
 */
bool wal_since(const struct broker *b, size_t mark);

/* True when some records are not durable yet (the open batch, or one in flight). */
bool wal_unsettled(const struct broker *b);

/*
 * Complete wait @token once what is in the open batch is durable. Returns
 * 0, or -ENOMEM (counted): the caller fails the wait now (wait_fail();
 * never completed as if durable).
 */
int wal_hold(struct broker *b, uint64_t token);

/* Send XMSG_ACK(@token) to @dest once the open batch is durable (XMSG_NACK now on ENOMEM). */
void wal_ack_later(struct broker *b, uint32_t dest, uint64_t token);

/* XMSG_ACK(@token) to @dest once what was logged since @mark is durable; now if nothing was. */
void wal_ack_after(struct broker *b, size_t mark, uint32_t dest, uint64_t token);

/* Session @hash (session._hash) has a record of kind @kind in the open batch (sync only). */
void wal_note(struct broker *b, enum wal_note kind, uint64_t hash);

/*
 * True while a record of kind @kind of session @hash is not durable (never
 * without sync; always while the log is degraded).
 */
bool wal_noted(const struct broker *b, enum wal_note kind, uint64_t hash);

/*
 * The number of the open batch, modulo 256: what a record logged now
 * waits for (wal_batch_durable()). Batches are numbered as they are taken.
 */
uint8_t wal_batch(const struct broker *b);

/*
 * Whether batch @n (wal_batch() when its record was logged) is durable:
 * false only for the open batch and an unsettled one in flight. A number
 * 256 batches old reads as open: it waits one batch more, never less.
 */
bool wal_batch_durable(const struct broker *b, uint8_t n);

/*
 * Session @hash holds something back until batch @n (the open one or the
 * one in flight) is durable: a PUBREL whose PUBREC record is noted, or a
 * QoS 2 PUBLISH whose record is in it. broker_wal_durable() pumps it
 * (session_pump()) then. False on ENOMEM: not before it is durable, so
 * the caller closes the client.
 */
bool wal_pump_later(struct broker *b, uint8_t n, uint64_t hash);

/*
 * The batch in flight is durable: forget its notes, and count it durable,
 * before the waits it completes run their clients again and the sessions
 * it held back are pumped (broker_wal_durable()).
 */
void wal_settled(struct broker *b);

/*
 * A record the log should have had was not written (its caller had no
 * memory for what it needed): degraded, as if end() had lost it.
 */
void wal_lose(struct broker *b);

/* True while the log is degraded (see struct wal); never without a log. */
bool wal_degraded(const struct broker *b);

/*
 * Degraded (see struct wal): a compaction should begin, the first since the
 * last loss; net/ starts one (broker_wal_repair_wanted()).
 */
bool wal_repair_wanted(const struct broker *b);

/* A snapshot begins (or begins again from its first bucket): broker_wal_snapshot(). */
void wal_snap_begin(struct broker *b);

/*
 * The snapshot last begun is complete, and @durable (a compaction's last
 * batch synced) or not. True when it is whole (nothing lost since it
 * began): the log's older segments may go. *@repaired: that made a
 * degraded log whole again, waits complete again. Not durable, or not
 * whole, a degraded log wants another snapshot.
 */
bool wal_snap_done(struct broker *b, bool durable, bool *repaired);

/*
 * A new origin for a tagged QoS 2 message (or a give's id, core/give.h):
 * unique across shards, and above every origin and give id the log held at
 * start-up (b->origin_floor).
 */
uint64_t wal_origin_new(struct broker *b);

/* @who (see struct wal_has) was given the message tagged @origin: kept for the next snapshot. */
void wal_has(struct broker *b, uint64_t origin, uint64_t who);

/* True when @who had the message tagged @origin before the last restart (a resend skips it). */
bool wal_origin_had(const struct broker *b, uint64_t origin, uint64_t who);

/*
 * A snapshot's WAL_HAS records: wal_has()'s since the last snapshot began
 * (forgotten now: their own records stay until the next compaction) and
 * the ones the last restart recovered.
 */
void wal_snap_has(struct broker *b);

/* Records; @cid is a session's client id as stored (host prefix included). */
/* The session exists, with @expiry_s, through @listener (whose ACL applies). */
void wal_session(struct broker *b, const uint8_t *cid, size_t cid_len, const uint8_t *user,
                 size_t user_len, uint32_t expiry_s, uint8_t listener);
void wal_session_end(struct broker *b, const uint8_t *cid, size_t cid_len);
void wal_reset(struct broker *b, const uint8_t *cid, size_t cid_len);
/* The end of a session's snapshot: replay trusts its WAL_RESET only with this after it. */
void wal_snap_end(struct broker *b, const uint8_t *cid, size_t cid_len);
void wal_sub(struct broker *b, const uint8_t *cid, size_t cid_len, const uint8_t *filter,
             size_t len, uint8_t options, uint32_t sub_id);
void wal_unsub(struct broker *b, const uint8_t *cid, size_t cid_len, const uint8_t *filter,
               size_t len);
/*
 * @m kept for the session at @qos (RETAIN @retain), through shared group
 * @share_key (0: none) with the @n Subscription Identifiers @ids; @pkt_id
 * when it was sent at once, 0 when queued. Writes @m first unless the open
 * batch already has it.
 */
void wal_deliver(struct broker *b, const uint8_t *cid, size_t cid_len, const struct msg *m,
                 uint8_t qos, bool retain, uint64_t share_key, const uint32_t *ids, uint32_t n,
                 uint16_t pkt_id);
/* Inbound QoS 2 @pkt_id arrived and was tagged @origin, not committed yet. */
void wal_qos2_pend(struct broker *b, const uint8_t *cid, size_t cid_len, uint16_t pkt_id,
                   uint64_t origin);
/* A one-packet-id step: WAL_SENT, WAL_DONE, WAL_PUBREC, WAL_QOS2_IN or WAL_QOS2_REL. */
void wal_pkt(struct broker *b, enum wal_type type, const uint8_t *cid, size_t cid_len,
             uint16_t pkt_id);
void wal_dropq(struct broker *b, const uint8_t *cid, size_t cid_len, uint32_t index);
/*
 * The session's delayed will @m, due at broker time @due_ms (logged in wall
 * time), or (@m NULL) its delayed will is gone: sent, or the session resumed.
 */
void wal_will(struct broker *b, const uint8_t *cid, size_t cid_len, const struct msg *m,
              uint64_t due_ms);
/*
 * Session @cid, ending, handed @m (shared group @share_key) to another
 * member: give @id (core/give.h). Writes @m first unless the open batch
 * already has it.
 */
void wal_give(struct broker *b, const uint8_t *cid, size_t cid_len, uint64_t id,
              const struct msg *m, uint64_t share_key);
/* Give @id of session @cid is logged where it went. */
void wal_given(struct broker *b, const uint8_t *cid, size_t cid_len, uint64_t id);
/* A retained set (or clear: empty payload) ordered by this shard, its topic's home. */
void wal_retain(struct broker *b, const struct msg *m);

/*
 * Hand the open batch to net/ (broker_wal_take()): its records at *@buf
 * (*@len bytes, valid until wal_durable()). False when there is nothing
 * to write or complete. Only while no batch is in flight.
 */
bool wal_take(struct broker *b, const uint8_t **buf, size_t *len);

/*
 * The batch in flight is durable: its deferred XMSG_ACKs and crossings go
 * out. Its wait tokens (b->wal->flight.tokens) are the caller's to complete
 * first, after wal_settled() (broker_wal_durable()).
 */
void wal_durable(struct broker *b);

/* The open batch's records, for a snapshot written outside the loop (start-up). */
struct wal_out *wal_open_out(struct broker *b);

#endif
