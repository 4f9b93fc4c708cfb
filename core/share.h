/*
 * share.h - MQTT shared subscriptions ("$share/{ShareName}/{filter}"),
 * one shard's view of every group.
 *
 * A group is identified by its full filter string "$share/g/f" (ShareName g,
 * filter f; MQTT 5.0 section 4.8.2, also honoured for 3.1.1 clients). Each
 * message matching f goes to exactly one member session of the group across
 * all shards, and each member gets the same share wherever it is homed
 * (issue 13): the publishing shard picks one member shard, weighted by the
 * shards' member counts (smooth weighted round-robin, itself included), that
 * shard picks one of its own member sessions (round-robin, online sessions
 * first). One member alone on its shard gets a quarter of the messages
 * when three others share another shard, not a half.
 *
 * A struct share_table is one shard's table. For each group it holds:
 *  - the members homed on this shard (opaque pointers, compared by identity
 *    and never dereferenced; a struct session in the broker) with their
 *    subscription options byte and Subscription Identifier, which a pick
 *    reports with the member;
 *  - the shards that have members, with their member counts: this shard's
 *    own, other shards' as they announce them (the broker broadcasts every
 *    change of a shard's count, not only 0<->1, as interest messages
 *    carrying the full "$share/g/f" string and the count; the receiver
 *    calls share_remote()), and each shard's credit in the rotation;
 *  - a round-robin cursor over local members.
 * Groups are found by their full string (hash table) and by topic (a trie
 * keyed by f whose owners are the groups). A group lives while it has a
 * local member or any remote shard with members.
 *
 * Member counts include offline members (persistent sessions): a shard is
 * weighed by the sessions that subscribed there, and the online-first rule
 * passes a turn that falls on a shard with nobody online to another shard
 * (share_match()) or forwards it (share_pick_shard()).
 *
 * A group's key, share_key(), is the XXH3 of the full string under the
 * process's secret seed: the same on every shard, so a shard can name the
 * group in a cross-shard message, but not computable by a client.
 *
 * Forwarding bound: a shard that receives a message for a group in which it
 * no longer has a member (its members left while the message was in flight)
 * forwards it with share_pick_shard(); the broker carries a hop count and
 * forwards at most SHARE_HOPS_MAX times, then drops the message and counts
 * it. Stale entries exist only while a 1->0 transition is in flight, so a
 * drop needs membership to change during every hop.
 *
 * Pure (core/): no syscalls, no clocks, no globals. Owned by one shard; every
 * function must be called on that shard's thread.
 */
#ifndef RINGMQ_SHARE_H
#define RINGMQ_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/trie.h"

struct share_table;

/* "$share/": the prefix that makes a filter a shared subscription. */
#define SHARE_PREFIX "$share/"
#define SHARE_PREFIX_LEN 7u

/* Shards a table can track; equal to LIMITS_SHARDS_MAX (checked in share.c). */
#define SHARE_SHARDS_MAX 256u

/* Times one message may be forwarded between shards by share_pick_shard(). */
#define SHARE_HOPS_MAX 3u

/* The parts of a "$share/g/f" filter; spans borrow the parsed buffer. */
struct share_name {
    const uint8_t *name; /* ShareName g */
    size_t name_len;
    const uint8_t *filter; /* topic filter f (not yet checked by topic_filter_check) */
    size_t filter_len;
};

/*
 * Called by share_match() once per matching group: the message goes to
 * @shard. For this shard, @member is the chosen local member, @options its
 * subscription options and @sub_id its Subscription Identifier (0: none);
 * for another shard @member is NULL and @options and @sub_id 0 (the broker
 * sends the message with @group_key to @shard, which calls share_pick()).
 * Runs synchronously; it must not call share_join(), share_leave(),
 * share_remote() or share_table_free() on the same table.
 */
typedef void (*share_pick_cb)(void *ctx, uint64_t group_key, uint32_t shard, void *member,
                              uint8_t options, uint32_t sub_id);

/*
 * Split @f (@len bytes, borrowed): 0 if it is not a shared subscription (does
 * not start with "$share/"; the comparison is case-sensitive), 1 if it is and
 * is well formed (*@out gets the ShareName and filter spans),
 * -MQTT_RC_TOPIC_FILTER_INVALID if it starts with "$share/" but the ShareName
 * is empty or contains '+' or '#', or no '/' and non-empty filter follow the
 * ShareName [MQTT-4.8.2-1] [MQTT-4.8.2-2]. @out is written only on 1. The
 * filter's own syntax is the caller's check (topic_filter_check()).
 */
int share_parse(const uint8_t *f, size_t len, struct share_name *out);

/*
 * The group key of full filter @full: XXH3-64 of its bytes under @seed
 * (limits.share_key_seed, equal on every shard). Never 0, which means "not
 * shared" to the session.
 */
uint64_t share_key(uint64_t seed, const uint8_t *full, size_t len);

/*
 * A new, empty table for shard @shard_id of @shard_count (1..SHARE_SHARDS_MAX),
 * or NULL on allocation failure. @seed is the level hashing seed of the
 * shard's tries (share_match() takes names split under it), @key_seed the
 * process's share_key() seed. @online tells
 * whether a member can receive now (a connected session); it must not modify
 * the table.
 */
struct share_table *share_table_new(uint32_t shard_id, uint32_t shard_count, uint64_t seed,
                                    uint64_t key_seed, bool (*online)(void *member));

/* Free the table and every group. Members are borrowed, never freed here. */
void share_table_free(struct share_table *t);

/*
 * Add @member with subscription options @options and Subscription
 * Identifier @sub_id (0: none) to the group of full filter @full (@len
 * bytes, copied; share_parse() must have returned 1 for it and its filter
 * passed topic_filter_check()), or update @options and @sub_id if @member
 * is already in it (its round-robin position is kept) [MQTT-3.8.4-3].
 * *@members (may be NULL) gets this shard's member count of the group
 * afterwards. Returns 1 if added: the count changed, and the broker
 * broadcasts it (XMSG_INTEREST_ADD with @full and the count; a count of 1
 * makes the group new to this shard); 0 if updated; -ENOMEM (nothing
 * changed).
 */
int share_join(struct share_table *t, const uint8_t *full, size_t len, void *member,
               uint8_t options, uint32_t sub_id, uint32_t *members);

/* This shard's member count of the group of @full (0: none, or no such group). */
uint32_t share_members(const struct share_table *t, const uint8_t *full, size_t len);

/*
 * Remove @member from the group of @full. Returns true if it was a member:
 * the count changed, and the broker broadcasts it (XMSG_INTEREST_ADD with
 * @full and the count, XMSG_INTEREST_DEL once it is 0). *@members (may be
 * NULL) gets this shard's member count of the group afterwards. The group
 * is freed once it has neither local members nor remote shards with
 * members.
 */
bool share_leave(struct share_table *t, const uint8_t *full, size_t len, void *member,
                 uint32_t *members);

/*
 * Record that shard @shard (another shard, < shard_count) now has @members
 * members in the group of @full (share_parse() returned 1; 0: none any
 * more), creating or freeing the group as needed. Idempotent: the last
 * count announced wins. Returns 0 or -ENOMEM (only for a shard new to the
 * group; nothing changed).
 */
int share_remote(struct share_table *t, const uint8_t *full, size_t len, uint32_t shard,
                 uint32_t members);

/*
 * For each group whose filter matches topic name @topic (split by trie_split()
 * under the table's seed), with the '$' rule, choose one shard among those
 * with members, each as often as it has members (smooth weighted
 * round-robin), and call @cb (synchronously, once per group). When the turn
 * falls on this shard but none of its members is online and other shards
 * have members, the turn of the others is taken instead; with only this
 * shard, an offline member is chosen (round-robin) so a persistent session
 * queues the message. Advances the rotations.
 */
void share_match(struct share_table *t, const struct trie_name *topic, share_pick_cb cb, void *ctx);

/*
 * Pick a local member of the group with key @group_key whose filter matches
 * @topic (guards against key collisions), for a message another shard sent
 * here or for a re-dispatch. Order of preference: an online member other
 * than @exclude, an offline member other than @exclude (round-robin each),
 * @exclude itself when it is the only member. *@options and *@sub_id (each
 * may be NULL) get the member's options and Subscription Identifier.
 * Returns NULL if this shard has no member in such a group. @exclude may be
 * NULL.
 */
void *share_pick(struct share_table *t, uint64_t group_key, const uint8_t *topic, size_t topic_len,
                 void *exclude, uint8_t *options, uint32_t *sub_id);

/*
 * Choose another shard to forward a message for the group with key
 * @group_key (filter matching @topic) when share_pick() found no local
 * member: weighted by member count as share_match(), among the group's
 * shards other than this shard, avoiding @exclude_shard (the sender;
 * UINT32_MAX for none) unless it is the only one. Returns false when no
 * other shard has members (drop the message). The broker forwards at most
 * SHARE_HOPS_MAX times per message.
 */
bool share_pick_shard(struct share_table *t, uint64_t group_key, const uint8_t *topic,
                      size_t topic_len, uint32_t exclude_shard, uint32_t *shard);

/* Groups held (with local members or remote shards with members). */
size_t share_group_count(const struct share_table *t);

/* Local members in the group of @full; 0 if there is no such group. */
size_t share_member_count(const struct share_table *t, const uint8_t *full, size_t len);

#endif
