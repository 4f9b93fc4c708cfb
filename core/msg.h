/*
 * msg.h - an immutable, reference-counted published message.
 *
 * One allocation holds the topic and the payload. Once built a msg never
 * changes; holders share it by reference: subscriber queues, inflight
 * windows, the retained store, and (issue 3) other shards.
 *
 * THREADING: the reference count is the one atomic field, so that other
 * shards may hold references; the shard that allocated a msg frees it (the
 * last remote release goes home over the SPSC queue, issue 3). Everything
 * else is read-only after msg_new().
 */
#ifndef RINGMQ_MSG_H
#define RINGMQ_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msg {
    _Atomic uint32_t refs;
    uint8_t qos;      /* QoS it was published with */
    bool retain;      /* RETAIN flag it was published with */
    uint16_t topic_len;
    uint32_t payload_len;
    uint8_t data[];   /* topic bytes, then payload bytes */
};

/*
 * Build a message with one reference held by the caller. Copies @topic and
 * @payload. Returns NULL on allocation failure.
 */
struct msg *msg_new(const uint8_t *topic, size_t topic_len, const uint8_t *payload,
                    size_t payload_len, uint8_t qos, bool retain);

static inline const uint8_t *msg_topic(const struct msg *m)
{
    return m->data;
}

static inline const uint8_t *msg_payload(const struct msg *m)
{
    return m->data + m->topic_len;
}

/* Take one more reference; returns @m. */
struct msg *msg_ref(struct msg *m);

/* Drop one reference; frees the message when it was the last. */
void msg_unref(struct msg *m);

#endif
