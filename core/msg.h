/*
 * msg.h - an immutable, reference-counted published message.
 *
 * One allocation holds the topic, the MQTT 5.0 application properties it
 * carries from its publisher, and the payload. Once built a msg never
 * changes; holders share it by reference: subscriber queues, inflight
 * windows, the retained store, and (issue 3) other shards.
 *
 * THREADING: the reference count is the one atomic field, so that other
 * shards may hold references; the shard that allocated a msg frees it (the
 * last remote release goes home over the SPSC queue as XMSG_MSG_FREE).
 * home_shard and expiry_ms are set by the building shard before the msg is shared;
 * everything is read-only from then on.
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
    uint32_t home_shard; /* the shard that built it, and alone frees it */
    uint32_t props_len;  /* encoded v5 properties forwarded to subscribers */
    uint32_t will_expiry_s; /* a will's Message Expiry Interval, while MSG_EXPIRY_AT_PUBLISH */
    uint64_t expiry_ms;  /* v5 message expiry, broker clock; 0 = never */
    /*
     * A persistent publisher's QoS 2 message under fsync = always: the
     * instance its shard numbered (wal_origin_new()), logged with every
     * delivery so a restart knows who already has it; 0: none. Set before
     * the message is shared.
     */
    uint64_t origin;
    uint8_t data[];      /* topic bytes, property bytes, then payload bytes */
};

/*
 * Build a message with one reference held by the caller. Copies @topic,
 * @props (already encoded MQTT 5.0 properties: payload format, content
 * type, response topic, correlation data, user properties; may be empty)
 * and @payload. With @props NULL and @props_len > 0 the property bytes are
 * left for the builder to write through msg_props_fill() before sharing the
 * message. Returns NULL on allocation failure.
 */
struct msg *msg_new(const uint8_t *topic, size_t topic_len, const uint8_t *props,
                    size_t props_len, const uint8_t *payload, size_t payload_len, uint8_t qos,
                    bool retain);

/*
 * expiry_ms of a will whose Message Expiry Interval (will_expiry_s) starts
 * when the will is published, not when its CONNECT arrived.
 */
#define MSG_EXPIRY_AT_PUBLISH UINT64_MAX

static inline const uint8_t *msg_topic(const struct msg *m)
{
    return m->data;
}

static inline const uint8_t *msg_props(const struct msg *m)
{
    return m->data + m->topic_len;
}

/* The property bytes of a message being built (msg_new() with @props NULL). */
static inline uint8_t *msg_props_fill(struct msg *m)
{
    return m->data + m->topic_len;
}

static inline const uint8_t *msg_payload(const struct msg *m)
{
    return m->data + m->topic_len + m->props_len;
}

/* Take one more reference; returns @m. */
struct msg *msg_ref(struct msg *m);

/*
 * Drop one reference; frees the message when it was the last. Only for a
 * thread that may free @m: its home shard, or any thread once every shard
 * has stopped (and in single-shard tests and tools).
 */
void msg_unref(struct msg *m);

/*
 * Drop one reference from any shard. Returns true when it was the last: the
 * caller must then get @m freed by its home shard (msg_free() there, or an
 * XMSG_MSG_FREE sent home). NULL is a no-op returning false.
 */
bool msg_put(struct msg *m);

/* Free a message whose last reference is gone (on its home shard). */
void msg_free(struct msg *m);

#endif
