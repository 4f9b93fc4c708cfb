/*
 * home.h - which shard is home to a client id (its session) or to a topic
 * (the order of its retained sets): XXH3 mod the shard count, the same
 * on every shard. Pure; any thread.
 */
#ifndef RINGMQ_HOME_H
#define RINGMQ_HOME_H

#include <stddef.h>
#include <stdint.h>

#include <xxhash.h>

/* Seeded apart from the session table's hash, whose low bits pick buckets. */
#define HOME_SEED 0x72696e676d71686full

/* The shard of @shard_count that homes @id (a client id or a topic). */
static inline uint32_t home_shard(const uint8_t *id, size_t len, uint32_t shard_count)
{
    return (uint32_t)(XXH3_64bits_withSeed(id, len, HOME_SEED) % shard_count);
}

#endif
