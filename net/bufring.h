/*
 * bufring.h - one provided buffer ring (a buffer group) for multishot recv.
 *
 * Built by hand as liburing's examples/io_uring-udp.c does (liburing 2.3
 * has no io_uring_setup_buf_ring): the ring of struct io_uring_buf and the
 * buffers are mmap()ed, registered with io_uring_register_buf_ring() and
 * filled with io_uring_buf_ring_add()/advance(). The kernel picks a buffer
 * per recv completion (its id is in cqe->flags >> IORING_CQE_BUFFER_SHIFT);
 * the loop hands the bytes to the broker and returns the buffer at once with
 * bufring_recycle(), so no buffer is held between completions and an idle
 * connection holds none (the broker copies a partial packet it keeps).
 *
 * Sizes are named constants for now (256 x 4 KiB = 1 MiB per shard); they
 * are arguments of bufring_init() so config can set them later. Buffers are
 * handed out round-robin, so every one is touched once traffic has flowed:
 * the ring is a fixed RSS cost per shard. 256 rather than 1024 measured
 * (perf/compare --quick, 2 shards, 10k idle connections): RSS per
 * connection 1299 B -> 627 B, p2p QoS 0 W=10 at 503k vs 483k msgs per
 * broker CPU-second (within run-to-run noise); 128 gave 539 B with fan-in
 * 1000->1 looking weaker, so it was not taken.
 *
 * Owned by one shard (registered on its ring); that thread only.
 */
#ifndef RINGMQ_BUFRING_H
#define RINGMQ_BUFRING_H

#include <liburing.h>
#include <stddef.h>
#include <stdint.h>

#define BUFRING_ENTRIES 256u    /* power of two, at most 32768 */
#define BUFRING_BUF_BYTES 4096u /* one recv completion carries at most this */
#define BUFRING_GROUP_ID 0u     /* the shard's only buffer group */

struct bufring {
    struct io_uring_buf_ring *br; /* NULL when not set up */
    uint8_t *bufs;                /* entries * buf_bytes, after the ring */
    size_t map_bytes;
    uint32_t entries;
    uint32_t buf_bytes;
    uint16_t group_id;
};

/*
 * Map, register on @ring as group @group_id and fill a ring of @entries
 * buffers of @buf_bytes each. Returns 0 or a negative errno (logged at ERROR;
 * @b is then empty). @entries must be a power of two <= 32768.
 */
int bufring_init(struct bufring *b, struct io_uring *ring, uint16_t group_id, uint32_t entries,
                 uint32_t buf_bytes);

/*
 * Unregister from @ring (skipped when @ring is NULL: it was torn down) and
 * unmap. No-op on an empty @b.
 */
void bufring_free(struct bufring *b, struct io_uring *ring);

/* Address of buffer @bid (from a CQE's flags). */
uint8_t *bufring_buf(struct bufring *b, uint16_t bid);

/* Give buffer @bid back to the kernel. Call once per completion that used it. */
void bufring_recycle(struct bufring *b, uint16_t bid);

/* Buffer id of a completion with IORING_CQE_F_BUFFER set. */
static inline uint16_t bufring_cqe_bid(const struct io_uring_cqe *cqe)
{
    return (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
}

#endif
