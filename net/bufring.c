/*
 * bufring.c - a hand-built provided buffer ring (see bufring.h).
 *
 * One anonymous mapping holds the ring (entries * 16 bytes, page aligned as
 * the kernel requires) followed by the buffers; pages become resident only
 * when the kernel first writes into them.
 *
 * Incremental mode: the kernel advances the head entry's addr/len in place
 * as it consumes a buffer, and moves the ring head on only when the buffer
 * is used up. A completion without data (EOF, an error) consumed nothing:
 * older 6.x kernels report it without IORING_CQE_F_BUF_MORE although the
 * buffer is still at the ring head, so such a completion never returns the
 * buffer here (it would then sit in the ring twice).
 *
 * Owned by one shard.
 */
#include "net/bufring.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/rm_assert.h"
#include "net/log.h"

/*
 * Map, register and fill; @flags 0 or IOU_PBUF_RING_INC. A refused
 * IOU_PBUF_RING_INC (-EINVAL) is not logged: the caller falls back.
 */
static int setup(struct bufring *b, struct io_uring *ring, uint16_t group_id, uint32_t entries,
                 uint32_t buf_bytes, uint16_t flags)
{
    struct io_uring_buf_reg reg;
    size_t ring_bytes;
    void *map;
    uint32_t i;
    int ret;

    RM_ASSERT(b != NULL && ring != NULL);
    RM_ASSERT(entries > 0 && entries <= 32768 && (entries & (entries - 1)) == 0);
    RM_ASSERT(buf_bytes > 0);
    memset(b, 0, sizeof(*b));
    ring_bytes = sizeof(struct io_uring_buf) * entries;
    b->map_bytes = ring_bytes + (size_t)entries * buf_bytes;
    map = mmap(NULL, b->map_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (map == MAP_FAILED) {
        ret = -errno;
        LOG_ERROR("bufring: mmap of %zu bytes failed: %s", b->map_bytes, strerror(-ret));
        goto out_clear;
    }
    if (flags & IOU_PBUF_RING_INC) {
        b->consumed = calloc(entries, sizeof(*b->consumed));
        if (b->consumed == NULL) {
            ret = -ENOMEM;
            LOG_ERROR("bufring: out of memory");
            goto out_unmap;
        }
    }
    b->br = map;
    b->bufs = (uint8_t *)map + ring_bytes;
    b->entries = entries;
    b->buf_bytes = buf_bytes;
    b->group_id = group_id;
    b->incremental = (flags & IOU_PBUF_RING_INC) != 0;
    io_uring_buf_ring_init(b->br);

    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)b->br;
    reg.ring_entries = entries;
    reg.bgid = group_id;
    /*
     * The 16 bits after bgid are the kernel's `flags`; liburing 2.3 names
     * them `pad`, later headers `flags`: write them by position for both.
     */
    _Static_assert(sizeof(reg) == 40, "struct io_uring_buf_reg layout");
    memcpy((uint8_t *)&reg + offsetof(struct io_uring_buf_reg, bgid) + sizeof(reg.bgid), &flags,
           sizeof(flags));
    ret = io_uring_register_buf_ring(ring, &reg, 0);
    if (ret < 0) {
        if (!(ret == -EINVAL && flags != 0)) {
            LOG_ERROR("bufring: register failed: %s (provided buffer rings need Linux 5.19+)",
                      strerror(-ret));
        }
        goto out_unmap;
    }
    for (i = 0; i < entries; i++) {
        io_uring_buf_ring_add(b->br, bufring_buf(b, (uint16_t)i), buf_bytes, (unsigned short)i,
                              io_uring_buf_ring_mask(entries), (int)i);
    }
    io_uring_buf_ring_advance(b->br, (int)entries);
    return 0;

out_unmap:
    free(b->consumed);
    munmap(map, b->map_bytes);
out_clear:
    memset(b, 0, sizeof(*b));
    return ret;
}

int bufring_init(struct bufring *b, struct io_uring *ring, uint16_t group_id, uint32_t entries,
                 uint32_t buf_bytes)
{
    return setup(b, ring, group_id, entries, buf_bytes, 0);
}

int bufring_init_incremental(struct bufring *b, struct io_uring *ring, uint16_t group_id,
                             uint32_t entries, uint32_t buf_bytes, uint32_t fallback_entries,
                             uint32_t fallback_bytes)
{
    int ret = setup(b, ring, group_id, entries, buf_bytes, IOU_PBUF_RING_INC);

    if (ret == -EINVAL) {
        LOG_DEBUG("bufring: no incremental consumption (Linux 6.12+); whole buffers");
        ret = setup(b, ring, group_id, fallback_entries, fallback_bytes, 0);
    }
    return ret;
}

void bufring_free(struct bufring *b, struct io_uring *ring)
{
    RM_ASSERT(b != NULL);
    if (b->br == NULL) {
        return;
    }
    if (ring != NULL) {
        io_uring_unregister_buf_ring(ring, b->group_id);
    }
    munmap(b->br, b->map_bytes);
    free(b->consumed);
    memset(b, 0, sizeof(*b));
}

uint8_t *bufring_buf(struct bufring *b, uint16_t bid)
{
    RM_ASSERT(b->br != NULL);
    RM_ASSERT(bid < b->entries);
    return b->bufs + (size_t)bid * b->buf_bytes;
}

void bufring_recycle(struct bufring *b, uint16_t bid)
{
    RM_ASSERT(b->br != NULL);
    RM_ASSERT(bid < b->entries);
    if (b->incremental) {
        b->consumed[bid] = 0;
    }
    io_uring_buf_ring_add(b->br, bufring_buf(b, bid), b->buf_bytes, bid,
                          io_uring_buf_ring_mask(b->entries), 0);
    io_uring_buf_ring_advance(b->br, 1);
}

uint8_t *bufring_cqe_data(struct bufring *b, const struct io_uring_cqe *cqe)
{
    uint16_t bid = bufring_cqe_bid(cqe);

    RM_ASSERT(cqe->flags & IORING_CQE_F_BUFFER);
    RM_ASSERT(bid < b->entries);
    if (!b->incremental) {
        return bufring_buf(b, bid);
    }
    /* The kernel never writes past the buffer: a mismatch is a bug here. */
    RM_ASSERT(cqe->res <= 0 || b->consumed[bid] + (uint32_t)cqe->res <= b->buf_bytes);
    return bufring_buf(b, bid) + b->consumed[bid];
}

void bufring_cqe_done(struct bufring *b, const struct io_uring_cqe *cqe)
{
    uint16_t bid = bufring_cqe_bid(cqe);

    RM_ASSERT(cqe->flags & IORING_CQE_F_BUFFER);
    RM_ASSERT(bid < b->entries);
    if (!b->incremental) {
        bufring_recycle(b, bid);
        return;
    }
    if (cqe->res <= 0) {
        return; /* nothing consumed: the buffer is still the kernel's */
    }
    if (cqe->flags & IORING_CQE_F_BUF_MORE) {
        b->consumed[bid] += (uint32_t)cqe->res;
        return;
    }
    bufring_recycle(b, bid);
}
