/*
 * sess_table.h - this shard's sessions by client id.
 *
 * Calls only session (to free them all at the end). Owned by one shard; single-threaded.
 */
#ifndef RINGMQ_SESS_TABLE_H
#define RINGMQ_SESS_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include <xxhash.h>

struct broker;
struct session;

#define SESS_TABLE_BUCKETS_MIN 64u

/* The hash sess_table_slot() and session_new() take for client id @id. */
static inline uint64_t sess_table_hash(const uint8_t *id, size_t len)
{
    return XXH3_64bits(id, len);
}

/* Allocate the buckets; 0 or -ENOMEM. */
int sess_table_init(struct broker *b);

/*
 * The link that points at the session for @id (hash @h), or at the NULL
 * where it would go: *result is the session or NULL.
 */
struct session **sess_table_slot(struct broker *b, const uint8_t *id, size_t len, uint64_t h);

/*
 * The session whose client id hashes to @h (session._hash), or NULL: the
 * first such, so the caller rules out a collision by what it expects.
 */
struct session *sess_table_by_hash(struct broker *b, uint64_t h);

/* Add @s, whose client id is not in the table. */
void sess_table_insert(struct broker *b, struct session *s);

/* Unlink @s; the caller frees it (session_free()). */
void sess_table_remove(struct broker *b, struct session *s);

/* Free every session, detaching clients still attached (broker_free()). */
void sess_table_fini(struct broker *b);

#endif
