/*
 * trie.h - this shard's subscriptions, by topic filter level.
 *
 * Each node is one filter level; children are found by hashing the level
 * (XXH3), so a level with a million siblings (device ids) is still O(1) per
 * step. '+' and '#' children are kept apart from the literal children so a
 * match walks at most three branches per level. A node holds the
 * subscriptions whose filter ends there: (owner, options, sub_id) entries.
 * An owner is an opaque pointer compared by identity: a struct session in a
 * shard's own trie, a remote shard's marker in its interest map (issue 3).
 * @sub_id is the subscription's v5 Subscription Identifier (0: none), opaque
 * here: a match reports it with its owner, so whoever delivers has the
 * identifiers of exactly the subscriptions that matched, at no cost per
 * subscription that did not (issue 13).
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

/* Called once per matching subscription; @options and @sub_id as given to trie_insert(). */
typedef void (*trie_match_cb)(void *ctx, void *sess, uint8_t options, uint32_t sub_id);

/*
 * A topic name split into its levels once, each level hashed under one seed
 * (trie_split()). A shard's tries share that seed, so one split serves every
 * trie_match() of a publish: the name is scanned and each level hashed once,
 * not once per trie.
 */
struct trie_level {
    uint32_t off;  /* offset of the level in the name */
    uint32_t len;  /* level bytes (empty levels are 0) */
    uint32_t hash; /* lvlmap_hash() under trie_name.seed */
};

/* Zero-initialised is empty; trie_split() fills it, trie_name_fini() frees it. */
struct trie_name {
    const uint8_t *name; /* borrowed: must outlive the matches */
    uint64_t seed;
    uint32_t count; /* levels: '/' count + 1 */
    uint32_t cap;   /* entries allocated in lvl */
    struct trie_level *lvl;
};

/*
 * A new, empty trie, or NULL on allocation failure. @seed is its level
 * hashing seed (lvlmap_seed()); names are matched after trie_split() with
 * the same seed.
 */
struct trie *trie_new(uint64_t seed);

/*
 * Split @name (@len bytes, at least 1) into @n's levels and hash each under
 * @seed. @n's level array is reused and grown as needed. Returns 0, or
 * -ENOMEM (@n then holds no levels).
 */
int trie_split(struct trie_name *n, uint64_t seed, const uint8_t *name, size_t len);

/* Free @n's level array; @n is empty afterwards. */
void trie_name_fini(struct trie_name *n);

/* Free the trie and every node. Sessions are borrowed, never freed here. */
void trie_free(struct trie *t);

/*
 * Add (@sess, @options, @sub_id) under @filter, or update @options and
 * @sub_id if @sess already subscribes with exactly this filter
 * [MQTT-3.8.4-3]. Returns 1 if added, 0 if updated, -ENOMEM.
 * *@filter_first (may be NULL) is set true when this filter went from zero to
 * one subscriber (the interest-map transition of issue 3).
 */
int trie_insert(struct trie *t, const uint8_t *filter, size_t len, void *sess,
                uint8_t options, uint32_t sub_id, bool *filter_first);

/*
 * Remove @sess's subscription to exactly @filter. Returns true if it existed.
 * *@filter_last (may be NULL) is set true when the filter has no subscriber
 * left. Empty nodes are freed.
 */
bool trie_remove(struct trie *t, const uint8_t *filter, size_t len, void *sess,
                 bool *filter_last);

/*
 * Call @cb for every subscription whose filter matches topic name @n (split
 * under this trie's seed), with the '$' rule. @cb must not modify the trie.
 * A session subscribed through several matching filters is reported once per
 * filter; deduplication is the caller's.
 */
void trie_match(const struct trie *t, const struct trie_name *n, trie_match_cb cb, void *ctx);

/* Number of (filter, session) subscriptions held. */
size_t trie_count(const struct trie *t);

#endif
