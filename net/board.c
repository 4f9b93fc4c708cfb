/*
 * board.c - the counter board (see board.h).
 *
 * THREADING: board_publish() on the slot's own shard; board_read() anywhere.
 */
#include "net/board.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker.h"
#include "core/rm_assert.h"
#include "net/wal_io.h"

#define BOARD_WORDS (sizeof(struct board_snap) / sizeof(uint64_t))
#define BOARD_CACHELINE 64u
#define RETAINED_WORD (offsetof(struct board_snap, retained) / sizeof(uint64_t))

/* THREADING: written by one shard (relaxed stores), read by any thread (relaxed loads). */
struct board_slot {
    alignas(BOARD_CACHELINE) _Atomic uint64_t word[BOARD_WORDS];
};

struct board {
    uint32_t shard_count;
    struct board_slot *slots; /* [shard_count], BOARD_CACHELINE-aligned */
};

struct board *board_new(uint32_t shard_count)
{
    struct board *b;
    size_t bytes = (size_t)shard_count * sizeof(struct board_slot);

    RM_ASSERT(shard_count > 0);
    RM_ASSERT(sizeof(struct board_slot) % BOARD_CACHELINE == 0);
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    b->slots = aligned_alloc(BOARD_CACHELINE, bytes);
    if (b->slots == NULL) {
        free(b);
        return NULL;
    }
    for (size_t i = 0; i < (size_t)shard_count; i++) {
        for (size_t w = 0; w < BOARD_WORDS; w++) {
            atomic_init(&b->slots[i].word[w], 0);
        }
    }
    b->shard_count = shard_count;
    return b;
}

void board_free(struct board *b)
{
    if (b == NULL) {
        return;
    }
    free(b->slots);
    free(b);
}

void board_publish(struct board *b, const struct shard *s)
{
    struct board_snap snap;

    RM_ASSERT(b != NULL && s != NULL && s->broker != NULL);
    RM_ASSERT(s->id < b->shard_count);
    memset(&snap, 0, sizeof(snap));
    snap.at_ms = s->now_ms;
    snap.subscriptions = broker_subscription_count(s->broker);
    snap.retained = broker_retained_count(s->broker);
    snap.xshard_waiting = s->shard_count > 1 ? xshard_waiting(s->xshard, s->id) : 0;
    snap.conns_open = s->conn_count;
    snap.broker = *broker_stats(s->broker);
    snap.shard = s->stats;
    snap.xport = s->xport_stats;
    snap.xshard = *xshard_stats(s->xshard, s->id);
    if (s->wal != NULL) {
        snap.wal_fsync = wal_io_stats(s->wal)->sync_hist;
    }
    board_store(b, s->id, &snap);
}

void board_store(struct board *b, uint32_t id, const struct board_snap *snap)
{
    uint64_t words[BOARD_WORDS];
    struct board_slot *slot;

    RM_ASSERT(b != NULL && snap != NULL);
    RM_ASSERT(id < b->shard_count);
    memcpy(words, snap, sizeof(words));
    slot = &b->slots[id];
    for (size_t w = 0; w < BOARD_WORDS; w++) {
        atomic_store_explicit(&slot->word[w], words[w], memory_order_relaxed);
    }
}

void board_read(const struct board *b, uint32_t id, struct board_snap *out)
{
    uint64_t words[BOARD_WORDS];
    struct board_slot *slot;

    RM_ASSERT(b != NULL && out != NULL);
    RM_ASSERT(id < b->shard_count);
    slot = &b->slots[id];
    for (size_t w = 0; w < BOARD_WORDS; w++) {
        words[w] = atomic_load_explicit(&slot->word[w], memory_order_relaxed);
    }
    memcpy(out, words, sizeof(*out));
}

void board_sum(const struct board *b, struct board_snap *out)
{
    uint64_t sum[BOARD_WORDS];
    uint64_t retained = 0;

    _Static_assert(offsetof(struct board_snap, at_ms) == 0, "word 0 is at_ms");
    RM_ASSERT(b != NULL && out != NULL);
    memset(sum, 0, sizeof(sum));
    for (uint32_t i = 0; i < b->shard_count; i++) {
        const struct board_slot *slot = &b->slots[i];
        uint64_t at_ms = atomic_load_explicit(&slot->word[0], memory_order_relaxed);

        sum[0] = at_ms > sum[0] ? at_ms : sum[0]; /* the latest, not a sum */
        for (size_t w = 1; w < BOARD_WORDS; w++) {
            sum[w] += atomic_load_explicit(&slot->word[w], memory_order_relaxed);
        }
        uint64_t r = atomic_load_explicit(&slot->word[RETAINED_WORD], memory_order_relaxed);

        retained = r > retained ? r : retained;
    }
    memcpy(out, sum, sizeof(*out));
    out->retained = retained; /* every replica holds the same set: not a sum */
    RM_ASSERT(out->at_ms == sum[0]);
}

uint32_t board_shard_count(const struct board *b)
{
    RM_ASSERT(b != NULL);
    return b->shard_count;
}
