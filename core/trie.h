/*
 * trie.h - this shard's subscriptions, by topic filter level.
 *
 * Each node is one filter level; children are found by hashing the level
 * (XXH3), so a level with a million siblings (device ids) is still O(1) per
 * step. '+' and '#' children are kept apart from the literal children so a
 * match walks at most three branches per level. A node holds the
 * subscriptions whose filter ends there: (owner, options) pairs. An owner
 * is an opaque pointer compared by identity: a struct session in a shard's
 * own trie, a remote shard's marker in its interest map (issue 3).
 *
 * Owned by one shard (the shard that homes the subscribing sessions); not
 * thread-safe. Filters must have passed topic_filter_check() first.
 */
#ifndef RINGMQ_TRIE_H
#define RINGMQ_TRIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct trie;

/* Called once per matching subscription; @options as given to trie_insert(). */
typedef void (*trie_match_cb)(void *ctx, void *sess, uint8_t options);

/* A new, empty trie, or NULL on allocation failure. */
struct trie *trie_new(void);

/* Free the trie and every node. Sessions are borrowed, never freed here. */
void trie_free(struct trie *t);

/*
 * Add (@sess, @options) under @filter, or update @options if @sess already
 * subscribes with exactly this filter [MQTT-3.8.4-3].
 * Returns 1 if added, 0 if updated, -ENOMEM.
 * *@filter_first (may be NULL) is set true when this filter went from zero to
 * one subscriber (the interest-map transition of issue 3).
 */
int trie_insert(struct trie *t, const uint8_t *filter, size_t len, void *sess,
                uint8_t options, bool *filter_first);

/*
 * Remove @sess's subscription to exactly @filter. Returns true if it existed.
 * *@filter_last (may be NULL) is set true when the filter has no subscriber
 * left. Empty nodes are freed.
 */
bool trie_remove(struct trie *t, const uint8_t *filter, size_t len, void *sess,
                 bool *filter_last);

/*
 * Call @cb for every subscription whose filter matches topic @name (with the
 * '$' rule). @cb must not modify the trie. A session subscribed through
 * several matching filters is reported once per filter; deduplication is
 * the caller's.
 */
void trie_match(const struct trie *t, const uint8_t *name, size_t len, trie_match_cb cb,
                void *ctx);

/* Number of (filter, session) subscriptions held. */
size_t trie_count(const struct trie *t);

#endif
