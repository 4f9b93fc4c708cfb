/*
 * bufring.c - a hand-built provided buffer ring (see bufring.h).
 *
 * One anonymous mapping holds the ring (entries * 16 bytes, page aligned as
 * the kernel requires) followed by the buffers. Owned by one shard.
 */
#include "net/bufring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "core/rm_assert.h"
#include "net/log.h"

int bufring_init(struct bufring *b, struct io_uring *ring, uint16_t group_id, uint32_t entries,
                 uint32_t buf_bytes)
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
    b->br = map;
    b->bufs = (uint8_t *)map + ring_bytes;
    b->entries = entries;
    b->buf_bytes = buf_bytes;
    b->group_id = group_id;
    io_uring_buf_ring_init(b->br);

    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)b->br;
    reg.ring_entries = entries;
    reg.bgid = group_id;
    ret = io_uring_register_buf_ring(ring, &reg, 0);
    if (ret < 0) {
        LOG_ERROR("bufring: register failed: %s (provided buffer rings need Linux 5.19+)",
                  strerror(-ret));
        goto out_unmap;
    }
    for (i = 0; i < entries; i++) {
        io_uring_buf_ring_add(b->br, bufring_buf(b, (uint16_t)i), buf_bytes, (unsigned short)i,
                              io_uring_buf_ring_mask(entries), (int)i);
    }
    io_uring_buf_ring_advance(b->br, (int)entries);
    return 0;

out_unmap:
    munmap(map, b->map_bytes);
out_clear:
    memset(b, 0, sizeof(*b));
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
    io_uring_buf_ring_add(b->br, bufring_buf(b, bid), b->buf_bytes, bid,
                          io_uring_buf_ring_mask(b->entries), 0);
    io_uring_buf_ring_advance(b->br, 1);
}
