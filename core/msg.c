/*
 * msg.c - immutable, reference-counted published messages (see msg.h).
 *
 * One allocation per message: the struct, then the topic, then the payload.
 *
 * THREADING: msg_ref()/msg_unref() may run on any shard holding a
 * reference; everything else about a msg is read-only after msg_new().
 */
#include "core/msg.h"

#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/rm_assert.h"

struct msg *msg_new(const uint8_t *topic, size_t topic_len, const uint8_t *props,
                    size_t props_len, const uint8_t *payload, size_t payload_len, uint8_t qos,
                    bool retain)
{
    struct msg *m;

    RM_ASSERT(topic_len <= LIMITS_STRING_BYTES_MAX && (topic != NULL || topic_len == 0));
    RM_ASSERT(payload_len <= LIMITS_REMAINING_LENGTH_MAX && (payload != NULL || payload_len == 0));
    RM_ASSERT(qos <= 2);
    RM_ASSERT(props_len <= LIMITS_REMAINING_LENGTH_MAX);

    m = malloc(sizeof(*m) + topic_len + props_len + payload_len);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->home_shard = 0;
    m->qos = qos;
    m->retain = retain;
    m->topic_len = (uint16_t)topic_len;
    m->payload_len = (uint32_t)payload_len;
    m->props_len = (uint32_t)props_len;
    m->expiry_ms = 0;
    m->will_expiry_s = 0;
    m->origin = 0;
    if (topic_len > 0)
        memcpy(m->data, topic, topic_len);
    if (props != NULL && props_len > 0)
        memcpy(m->data + topic_len, props, props_len);
    if (payload_len > 0)
        memcpy(m->data + topic_len + props_len, payload, payload_len);
    return m;
}

struct msg *msg_ref(struct msg *m)
{
    uint32_t old;

    RM_ASSERT(m != NULL);
    /*
     * Relaxed: a new reference is only made from an existing one, which
     * already orders every access to the message.
     */
    old = atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    RM_ASSERT(old > 0 && old < UINT32_MAX);
    return m;
}

void msg_unref(struct msg *m)
{
    /* Like free(): dropping no message is a no-op, which eases cleanup paths. */
    if (msg_put(m))
        msg_free(m);
}

bool msg_put(struct msg *m)
{
    uint32_t old;

    if (!m)
        return false;
    RM_ASSERT(m->qos <= 2);
    /*
     * acq_rel: the release orders this holder's reads before the free; the
     * acquire (taking effect on the last release) orders the free after
     * every other holder's reads, whichever shard frees.
     */
    old = atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel);
    RM_ASSERT(old > 0);
    return old == 1;
}

void msg_free(struct msg *m)
{
    RM_ASSERT(m != NULL);
    RM_ASSERT(atomic_load_explicit(&m->refs, memory_order_relaxed) == 0);
    free(m);
}
