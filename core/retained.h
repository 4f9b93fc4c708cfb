/*
 * retained.h - retained messages by topic name.
 *
 * A tree of topic levels (children hashed with XXH3, like the trie) whose
 * nodes hold at most one retained msg each. A subscribe walks it with the
 * new filter ('+' visits every child, '#' the whole subtree, '$' rule
 * applied at the first level). Each shard holds a replica (issue 3); the
 * message bodies are shared by reference.
 *
 * Owned by one shard; not thread-safe.
 */
#ifndef RINGMQ_RETAINED_H
#define RINGMQ_RETAINED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msg;
struct retained;

typedef void (*retained_match_cb)(void *ctx, struct msg *m);

struct retained *retained_new(void);

/* Free the store, dropping its reference on every message. */
void retained_free(struct retained *r);

/*
 * Store @m as the retained message for its topic, replacing any previous one
 * [MQTT-3.3.1-5], or clear the topic if @m's payload is empty
 * [MQTT-3.3.1-10, -11]. Takes its own reference on a stored @m (the caller
 * keeps its own). Returns 1 stored, 0 cleared (or nothing to clear),
 * -ENOSPC if storing a new topic would pass @count_max, -ENOMEM.
 * Drops the displaced message's reference itself: for single-shard use
 * (tests, tools) where the caller owns every message.
 */
int retained_set(struct retained *r, struct msg *m, size_t count_max);

/*
 * retained_set(), but the displaced (replaced or cleared) message is handed to
 * the caller in *@old with its reference (NULL if none), so a shard can send
 * a message built elsewhere home to be freed (see msg.h).
 */
int retained_swap(struct retained *r, struct msg *m, size_t count_max, struct msg **old);

/*
 * Call @cb for each retained message whose topic matches @filter (a valid
 * filter). @cb may take references; it must not modify the store.
 */
void retained_match(const struct retained *r, const uint8_t *filter, size_t len,
                    retained_match_cb cb, void *ctx);

/* Call @cb for every retained message (any order). @cb must not modify the store. */
void retained_each(const struct retained *r, retained_match_cb cb, void *ctx);

/*
 * Remove @m if it is still its topic's retained message: returns it with
 * the store's reference (the caller drops it), else NULL.
 */
struct msg *retained_take(struct retained *r, const struct msg *m);

/* Number of retained messages held. */
size_t retained_count(const struct retained *r);

#endif
