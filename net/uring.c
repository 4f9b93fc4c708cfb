/*
 * uring.c - io_uring setup, probe and SQE supply (see uring.h).
 *
 * Feature check: liburing 2.3's probe lists opcodes, not multishot support.
 * Multishot accept arrived in 5.19 and multishot recv in 6.0, together with
 * IORING_OP_SEND_ZC (the last opcode added in 6.0); a probe whose last_op
 * reaches SEND_ZC therefore means a kernel with both. Provided buffer rings
 * (5.19) are checked by their registration in net/bufring.
 *
 * One ring per shard; the owning shard's thread only.
 */
#include "net/uring.h"

#include <errno.h>
#include <string.h>

#include "net/log.h"

/* Setup attempts, best first. */
static const struct {
    unsigned flags;
    const char *name;
} setups[] = {
    {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "SINGLE_ISSUER|DEFER_TASKRUN"},
    {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN, "SINGLE_ISSUER|COOP_TASKRUN"},
    {IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN"},
};

/* Opcodes the loop cannot run without. */
static const struct {
    int op;
    const char *name;
} required_ops[] = {
    {IORING_OP_ACCEPT, "ACCEPT"},
    {IORING_OP_RECV, "RECV"},
    {IORING_OP_SEND, "SEND"},
    {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
    {IORING_OP_POLL_ADD, "POLL_ADD"},
    {IORING_OP_MSG_RING, "MSG_RING"},
    {IORING_OP_SEND_ZC, "SEND_ZC (kernel 6.0: multishot recv)"},
};

static int check_features(struct io_uring *ring)
{
    struct io_uring_probe *probe;
    int ret = 0;
    size_t i;

    probe = io_uring_get_probe_ring(ring);
    if (probe == NULL) {
        LOG_ERROR("io_uring: cannot probe opcodes (kernel too old?)");
        return -ENOSYS;
    }
    for (i = 0; i < RM_ARRAY_LEN(required_ops); i++) {
        if (!io_uring_opcode_supported(probe, required_ops[i].op)) {
            LOG_ERROR("io_uring: opcode %s not supported; ringmq needs Linux 6.0 or later",
                      required_ops[i].name);
            ret = -ENOSYS;
            goto out_free;
        }
    }
out_free:
    io_uring_free_probe(probe);
    return ret;
}

int uring_init(struct io_uring *ring)
{
    struct io_uring_params p;
    int ret = -EINVAL;
    size_t i;

    RM_ASSERT(ring != NULL);
    for (i = 0; i < RM_ARRAY_LEN(setups); i++) {
        memset(&p, 0, sizeof(p));
        p.flags =
            setups[i].flags | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = URING_CQ_ENTRIES;
        ret = io_uring_queue_init_params(URING_SQ_ENTRIES, ring, &p);
        if (ret == 0) {
            LOG_DEBUG("io_uring: %s, sq %u, cq %u entries, features 0x%x", setups[i].name,
                      p.sq_entries, p.cq_entries, p.features);
            break;
        }
        if (ret != -EINVAL) {
            break;
        }
        LOG_DEBUG("io_uring: %s refused, trying fewer flags", setups[i].name);
    }
    if (ret < 0) {
        LOG_ERROR("io_uring: setup failed: %s", strerror(-ret));
        return ret;
    }
    if (!(p.features & IORING_FEAT_EXT_ARG) || !(p.features & IORING_FEAT_NODROP)) {
        LOG_ERROR("io_uring: kernel lacks EXT_ARG/NODROP; ringmq needs Linux 6.0 or later");
        ret = -ENOSYS;
        goto out_exit;
    }
    ret = check_features(ring);
    if (ret < 0) {
        goto out_exit;
    }
    return 0;

out_exit:
    io_uring_queue_exit(ring);
    return ret;
}

void uring_exit(struct io_uring *ring)
{
    RM_ASSERT(ring != NULL);
    io_uring_queue_exit(ring);
}

struct io_uring_sqe *uring_get_sqe(struct io_uring *ring)
{
    struct io_uring_sqe *sqe;
    int ret;

    RM_ASSERT(ring != NULL);
    sqe = io_uring_get_sqe(ring);
    if (sqe != NULL) {
        return sqe;
    }
    ret = io_uring_submit(ring);
    sqe = io_uring_get_sqe(ring);
    if (sqe == NULL) {
        LOG_ERROR("io_uring: submission queue full (submit: %s)",
                  ret < 0 ? strerror(-ret) : "took nothing");
    }
    return sqe;
}

int uring_cancel(struct io_uring *ring, uint64_t ud)
{
    struct io_uring_sqe *sqe = uring_get_sqe(ring);

    if (sqe == NULL) {
        return -EBUSY;
    }
    io_uring_prep_cancel64(sqe, ud, 0);
    io_uring_sqe_set_data64(sqe, 0);
    return 0;
}
