/*
 * obuf.h - a growable output byte buffer.
 *
 * core/ appends encoded packets to a client's obuf; net/ takes the whole
 * buffer into its in-flight send slot (one send in flight per connection)
 * and frees it when sent. An idle connection holds no buffer
 * (data == NULL), which keeps idle memory per connection small.
 * Owned by one shard; not thread-safe.
 */
#ifndef RINGMQ_OBUF_H
#define RINGMQ_OBUF_H

#include <stddef.h>
#include <stdint.h>

struct obuf {
    uint8_t *data;
    uint32_t len;
    uint32_t cap;
};

/*
 * Make room for @n more bytes and return a pointer to them (to be filled and
 * then published with obuf_commit()), or NULL if allocation fails or the
 * buffer would pass @bytes_max. The buffer is unchanged on failure.
 */
uint8_t *obuf_reserve(struct obuf *b, size_t n, size_t bytes_max);

/* Publish @n bytes written at the pointer obuf_reserve() returned. */
void obuf_commit(struct obuf *b, size_t n);

/* Free the buffer; @b becomes empty. */
void obuf_free(struct obuf *b);

#endif
