/*
 * replica.c - every shard's retained replica, in one order (see replica.h).
 * Owned by one shard; single-threaded.
 */
#include "core/replica.h"

#include "core/broker_types.h"
#include "core/home.h"
#include "core/msg.h"
#include "core/outbox.h"
#include "core/retained.h"
#include "core/rm_assert.h"
#include "core/wait.h"

/* Apply a retained set/clear to this shard's replica. */
static void retained_apply(struct broker *b, struct msg *m)
{
    struct msg *old = NULL;
    /* A full store refuses the retain; the message is still forwarded. */
    (void)retained_swap(b->retained, m, b->lim->retained_max, &old);
    outbox_msg_put(b, old);
}

/*
 * This shard's replica applied the retained publish of @token from @origin:
 * acknowledge it. Returns the client released by that, as wait_done().
 */
static struct client *retain_applied(struct broker *b, uint64_t token, uint32_t origin)
{
    if (token == 0)
        return NULL;
    if (origin == b->shard_id)
        return wait_done(b, token);
    struct xmsg x = {.kind = XMSG_ACK, .arg = b->shard_id};
    x.payload.retain.token = token;
    outbox_push(b, origin, &x);
    return NULL;
}

static void send_retain(struct broker *b, uint32_t dest, uint32_t kind, struct msg *m,
                        uint64_t token, uint32_t origin)
{
    struct xmsg x = {.kind = kind, .arg = origin};
    x.payload.retain.msg = msg_ref(m);
    x.payload.retain.token = token;
    outbox_push(b, dest, &x);
}

void replica_home_apply(struct broker *b, struct msg *m, uint64_t token, uint32_t origin)
{
    RM_ASSERT(home_shard(msg_topic(m), m->topic_len, b->shard_count) == b->shard_id);
    retained_apply(b, m);
    /* Never the last acknowledgement: every other replica still owes one. */
    struct client *released = retain_applied(b, token, origin);
    RM_ASSERT(released == NULL);
    for (uint32_t i = 0; i < b->shard_count; i++) {
        if (i != b->shard_id)
            send_retain(b, i, XMSG_RETAIN_APPLY, m, token, origin);
    }
}

void replica_publish(struct broker *b, struct msg *m, uint64_t token)
{
    RM_ASSERT(m->retain);
    uint32_t home = home_shard(msg_topic(m), m->topic_len, b->shard_count);
    if (home != b->shard_id)
        send_retain(b, home, XMSG_RETAIN_SET, m, token, b->shard_id);
    else
        replica_home_apply(b, m, token, b->shard_id);
}

struct client *replica_apply(struct broker *b, struct msg *m, uint64_t token, uint32_t origin)
{
    RM_ASSERT(home_shard(msg_topic(m), m->topic_len, b->shard_count) != b->shard_id);
    RM_ASSERT(origin < b->shard_count);
    retained_apply(b, m);
    return retain_applied(b, token, origin);
}
