/*
 * test_bufring.c - unit tests for net/bufring and net/uring on a real ring.
 *
 * Uses a socketpair, no network. Skipped where io_uring is unavailable
 * (e.g. a sandbox whose seccomp policy refuses io_uring_setup).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/bufring.h"
#include "net/uring.h"

struct fixture {
    struct io_uring ring;
    struct bufring br;
    int sv[2];
};

static void setup(struct fixture *f, uint32_t entries, uint32_t buf_bytes)
{
    int ret = uring_init(&f->ring);

    if (ret == -ENOSYS || ret == -EPERM) {
        cr_skip_test("io_uring unavailable: %s", strerror(-ret));
    }
    cr_assert_eq(ret, 0, "uring_init: %s", strerror(-ret));
    cr_assert_eq(bufring_init(&f->br, &f->ring, 7, entries, buf_bytes), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, f->sv), 0);
}

static void teardown(struct fixture *f)
{
    close(f->sv[0]);
    close(f->sv[1]);
    bufring_free(&f->br, &f->ring);
    cr_assert_null(f->br.br);
    uring_exit(&f->ring);
}

static void arm_recv(struct fixture *f, void *obj)
{
    struct io_uring_sqe *sqe = uring_get_sqe(&f->ring);

    cr_assert_not_null(sqe);
    io_uring_prep_recv_multishot(sqe, f->sv[0], NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = f->br.group_id;
    io_uring_sqe_set_data64(sqe, uring_ud(obj, URING_OP_RECV));
}

/* What a test needs of a CQE (the struct itself ends in a flexible array). */
struct reaped {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
};

static uint16_t bid_of(const struct reaped *r)
{
    cr_assert(r->flags & IORING_CQE_F_BUFFER);
    return (uint16_t)(r->flags >> IORING_CQE_BUFFER_SHIFT);
}

/* Send @msg (unless NULL) and wait for the next recv completion. */
static struct reaped send_and_reap(struct fixture *f, const char *msg)
{
    struct io_uring_cqe *cqe;
    struct reaped copy;
    int ret;

    if (msg != NULL) {
        cr_assert_eq(write(f->sv[1], msg, strlen(msg)), (ssize_t)strlen(msg));
    }
    ret = io_uring_submit_and_wait(&f->ring, 1);
    cr_assert_geq(ret, 0, "submit_and_wait: %s", strerror(-ret));
    cr_assert_eq(io_uring_peek_cqe(&f->ring, &cqe), 0);
    copy.user_data = cqe->user_data;
    copy.res = cqe->res;
    copy.flags = cqe->flags;
    io_uring_cqe_seen(&f->ring, cqe);
    return copy;
}

Test(uring, user_data_round_trips_object_and_op_kind)
{
    static uint64_t obj[4];
    uint64_t ud = uring_ud(&obj[1], URING_OP_SEND);

    cr_assert_eq(uring_ud_obj(ud), &obj[1]);
    cr_assert_eq(uring_ud_op(ud), URING_OP_SEND);
    cr_assert_eq(uring_ud_op(uring_ud(&obj[2], URING_OP_IGNORE)), URING_OP_IGNORE);
}

Test(uring, misaligned_object_is_a_programmer_error, .signal = SIGABRT)
{
    static uint64_t obj[2];

    uring_ud((char *)obj + 1, URING_OP_RECV);
}

Test(uring, get_sqe_submits_when_the_queue_is_full)
{
    struct fixture f;
    struct io_uring_cqe *cqe;
    unsigned i, seen = 0;
    unsigned head;

    setup(&f, 2, 64);
    /* More NOPs than SQ entries: uring_get_sqe() must submit to make room. */
    for (i = 0; i < URING_SQ_ENTRIES + 100; i++) {
        struct io_uring_sqe *sqe = uring_get_sqe(&f.ring);

        cr_assert_not_null(sqe, "no SQE at %u", i);
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, 0);
    }
    cr_assert_geq(io_uring_submit_and_wait(&f.ring, URING_SQ_ENTRIES + 100), 0);
    io_uring_for_each_cqe(&f.ring, head, cqe)
    {
        seen++;
    }
    io_uring_cq_advance(&f.ring, seen);
    cr_assert_eq(seen, URING_SQ_ENTRIES + 100);
    teardown(&f);
}

Test(bufring, received_bytes_land_in_the_buffer_the_cqe_names)
{
    struct fixture f;
    static uint64_t obj;
    struct reaped cqe;
    uint16_t bid;

    setup(&f, 4, 64);
    arm_recv(&f, &obj);
    cqe = send_and_reap(&f, "hello");
    cr_assert_eq(cqe.res, 5);
    cr_assert(cqe.flags & IORING_CQE_F_BUFFER);
    cr_assert(cqe.flags & IORING_CQE_F_MORE, "multishot recv must stay armed");
    cr_assert_eq(uring_ud_obj(cqe.user_data), &obj);
    cr_assert_eq(uring_ud_op(cqe.user_data), URING_OP_RECV);
    bid = bid_of(&cqe);
    cr_assert_lt(bid, 4);
    cr_assert_eq(memcmp(bufring_buf(&f.br, bid), "hello", 5), 0);
    bufring_recycle(&f.br, bid);
    teardown(&f);
}

Test(bufring, completions_are_capped_at_the_buffer_size)
{
    struct fixture f;
    static uint64_t obj;
    struct reaped cqe;

    setup(&f, 4, 8);
    arm_recv(&f, &obj);
    cqe = send_and_reap(&f, "0123456789abc"); /* 13 bytes, 8-byte buffers */
    cr_assert_eq(cqe.res, 8);
    cr_assert_eq(memcmp(bufring_buf(&f.br, bid_of(&cqe)), "01234567", 8), 0);
    bufring_recycle(&f.br, bid_of(&cqe));
    cqe = send_and_reap(&f, NULL);
    cr_assert_eq(cqe.res, 5);
    cr_assert_eq(memcmp(bufring_buf(&f.br, bid_of(&cqe)), "89abc", 5), 0);
    teardown(&f);
}

/*
 * The loop relies on this kernel behaviour: with every buffer taken, the
 * multishot recv ends with -ENOBUFS and without IORING_CQE_F_MORE, and a
 * re-armed recv works again once buffers are recycled.
 */
Test(bufring, exhausted_ring_ends_the_multishot_recv_with_enobufs_until_recycled)
{
    struct fixture f;
    static uint64_t obj;
    struct reaped cqe;
    uint16_t bids[2];

    setup(&f, 2, 16);
    arm_recv(&f, &obj);
    cqe = send_and_reap(&f, "one");
    bids[0] = bid_of(&cqe);
    cqe = send_and_reap(&f, "two");
    bids[1] = bid_of(&cqe);
    cr_assert_neq(bids[0], bids[1]);
    cqe = send_and_reap(&f, "three");
    cr_assert_eq(cqe.res, -ENOBUFS);
    cr_assert_not(cqe.flags & IORING_CQE_F_MORE);
    cr_assert_not(cqe.flags & IORING_CQE_F_BUFFER);

    bufring_recycle(&f.br, bids[0]);
    bufring_recycle(&f.br, bids[1]);
    arm_recv(&f, &obj);
    cqe = send_and_reap(&f, NULL); /* "three" is still queued in the socket */
    cr_assert_eq(cqe.res, 5);
    cr_assert_eq(memcmp(bufring_buf(&f.br, bid_of(&cqe)), "three", 5), 0);
    teardown(&f);
}
