/*
 * obuf.c - a growable output byte buffer (see obuf.h).
 *
 * Growth: the first allocation is OBUF_CAP_MIN bytes (or exactly what is
 * asked, when the limit is smaller), then the capacity doubles; it is
 * clamped to @bytes_max so a buffer never holds more than its limit allows.
 * An empty buffer holds no memory (data == NULL) once freed or moved from.
 * Owned by one shard; not thread-safe. No syscalls beyond the allocator.
 */
#include "core/obuf.h"

#include <stdlib.h>
#include <string.h>

#include "core/rm_assert.h"

/*
 * First allocation: small, because most connections only ever hold a CONNACK
 * or a few acks; a burst doubles it from there. With 4096, the freed 4 KiB
 * chunks stayed resident in malloc's free lists: 492 -> 447 B per idle
 * connection in perf/compare's conn scenario when this went to 256.
 */
#define OBUF_CAP_MIN 256u

uint8_t *obuf_reserve(struct obuf *b, size_t n, size_t bytes_max)
{
    size_t need;
    size_t cap;
    uint8_t *data;

    RM_ASSERT(b != NULL);
    RM_ASSERT(b->len <= b->cap);
    RM_ASSERT((b->data == NULL) == (b->cap == 0));

    if (n > UINT32_MAX - b->len) {
        return NULL;
    }
    need = (size_t)b->len + n;
    if (need > bytes_max) {
        return NULL;
    }
    if (need <= b->cap) {
        return b->data + b->len;
    }

    cap = b->cap ? b->cap : OBUF_CAP_MIN;
    while (cap < need) {
        cap *= 2;
    }
    if (cap > bytes_max) {
        cap = bytes_max;
    }
    if (cap > UINT32_MAX) {
        cap = UINT32_MAX;
    }
    RM_ASSERT(cap >= need);

    data = realloc(b->data, cap);
    if (data == NULL) {
        return NULL;
    }
    b->data = data;
    b->cap = (uint32_t)cap;
    return b->data + b->len;
}

void obuf_commit(struct obuf *b, size_t n)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(n <= (size_t)(b->cap - b->len));
    b->len += (uint32_t)n;
}

void obuf_free(struct obuf *b)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(b->len <= b->cap);
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}
