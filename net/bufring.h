/*
 * bufring.h - one provided buffer ring (a buffer group) for multishot recv.
 *
 * Built by hand as liburing's examples/io_uring-udp.c does (liburing 2.3
 * has no io_uring_setup_buf_ring): the ring of struct io_uring_buf and the
 * buffers are mmap()ed, registered with io_uring_register_buf_ring() and
 * filled with io_uring_buf_ring_add()/advance(). The kernel picks a buffer
 * per recv completion (its id is in cqe->flags >> IORING_CQE_BUFFER_SHIFT);
 * the loop hands the bytes to the broker and returns the buffer at once, so
 * no buffer is held between completions and an idle connection holds none
 * (the broker copies a partial packet it keeps).
 *
 * Two modes:
 * - whole buffers (bufring_init): every completion takes one buffer, however
 *   few bytes it carries, and bufring_recycle() gives it back.
 * - incremental consumption (bufring_init_incremental, IOU_PBUF_RING_INC,
 *   Linux 6.12+; falls back to whole buffers where the kernel refuses it):
 *   the kernel packs completions one after another into the buffer at the
 *   head of the ring and moves to the next only when it is used up
 *   (IORING_CQE_F_BUF_MORE says "not yet"). The bytes of a completion
 *   start where the previous completion of the same buffer ended, so this
 *   module keeps a consumed offset per buffer.
 * Callers use bufring_cqe_data() and bufring_cqe_done() for either mode.
 *
 * Why incremental: with whole buffers a 60-byte CONNECT or PUBLISH touches
 * (and keeps resident) a whole buffer, and the ring runs dry after
 * `entries` completions between two reaps (-ENOBUFS) whatever their size.
 * Incremental consumption makes resident memory follow the bytes received
 * and the ring's capacity a number of bytes. Measured (perf/compare, 2
 * shards, 10k idle connections): see perf/README.md.
 *
 * Sizes are named constants (BUFRING_*): the shard uses 64 x 16 KiB = 1 MiB
 * in incremental mode, 256 x 4 KiB = 1 MiB otherwise. Either way the ring
 * is, after enough traffic, a fixed 1 MiB of RSS per shard; what differs is
 * how much of it a few thousand small reads touch.
 *
 * Owned by one shard (registered on its ring); that thread only.
 */
#ifndef RINGMQ_BUFRING_H
#define RINGMQ_BUFRING_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Kernel ABI (Linux 6.12) that liburing 2.3's headers predate. */
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2u
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1u << 4)
#endif

#define BUFRING_ENTRIES 256u         /* whole buffers: power of two, at most 32768 */
#define BUFRING_BUF_BYTES 4096u      /* whole buffers: one completion carries at most this */
#define BUFRING_INC_ENTRIES 64u      /* incremental: buffers */
#define BUFRING_INC_BUF_BYTES 16384u /* incremental: bytes per buffer */
#define BUFRING_GROUP_ID 0u          /* the shard's only buffer group */

struct bufring {
    struct io_uring_buf_ring *br; /* NULL when not set up */
    uint8_t *bufs;                /* entries * buf_bytes, after the ring */
    uint32_t *consumed;           /* incremental: bytes used of each buffer, else NULL */
    size_t map_bytes;
    uint32_t entries;
    uint32_t buf_bytes;
    uint16_t group_id;
    bool incremental; /* the kernel took IOU_PBUF_RING_INC */
};

/*
 * Map, register on @ring as group @group_id and fill a ring of @entries
 * whole buffers of @buf_bytes each. Returns 0 or a negative errno (logged at
 * ERROR; @b is then empty). @entries must be a power of two <= 32768.
 */
int bufring_init(struct bufring *b, struct io_uring *ring, uint16_t group_id, uint32_t entries,
                 uint32_t buf_bytes);

/*
 * As bufring_init(), but asks the kernel for incremental consumption; where
 * it refuses (before Linux 6.12) the ring is built with whole buffers of
 * @fallback_entries x @fallback_bytes instead. b->incremental says which.
 */
int bufring_init_incremental(struct bufring *b, struct io_uring *ring, uint16_t group_id,
                             uint32_t entries, uint32_t buf_bytes, uint32_t fallback_entries,
                             uint32_t fallback_bytes);

/*
 * Unregister from @ring (skipped when @ring is NULL: it was torn down) and
 * unmap. No-op on an empty @b.
 */
void bufring_free(struct bufring *b, struct io_uring *ring);

/* Start of buffer @bid (whole buffers: a completion's bytes start there). */
uint8_t *bufring_buf(struct bufring *b, uint16_t bid);

/* Whole buffers: give buffer @bid back to the kernel, once per completion that used it. */
void bufring_recycle(struct bufring *b, uint16_t bid);

/*
 * Where the bytes of @cqe (IORING_CQE_F_BUFFER set, res > 0) are: valid
 * until bufring_cqe_done(@cqe). They are the caller's to modify until then
 * (the kernel writes only past them): WebSocket payloads are unmasked in
 * place.
 */
uint8_t *bufring_cqe_data(struct bufring *b, const struct io_uring_cqe *cqe);

/*
 * The caller is done with @cqe's bytes (IORING_CQE_F_BUFFER set, any res):
 * whole buffers go back to the kernel; an incremental buffer goes back once
 * the kernel has finished with it (a completion with data and without
 * IORING_CQE_F_BUF_MORE). Call exactly once per such completion, in
 * completion order.
 */
void bufring_cqe_done(struct bufring *b, const struct io_uring_cqe *cqe);

/* Buffer id of a completion with IORING_CQE_F_BUFFER set. */
static inline uint16_t bufring_cqe_bid(const struct io_uring_cqe *cqe)
{
    return (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
}

#endif
