/*
 * test_bufring_inc.c - net/bufring in incremental mode (IOU_PBUF_RING_INC)
 * and the listener's inherited TCP_NODELAY, on a real ring and real
 * sockets (socketpair, loopback on an ephemeral port).
 *
 * Incremental tests skip (Criterion skip) on kernels before 6.12, where
 * bufring_init_incremental() falls back to whole buffers; the fallback
 * itself is checked to still deliver bytes.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/bufring.h"
#include "net/listener.h"
#include "net/uring.h"

struct fixture {
    struct io_uring ring;
    struct bufring br;
    int sv[2];
};

/* What a test needs of a CQE, copied before the CQE is marked seen. */
struct reaped {
    struct io_uring_cqe cqe;
};

static void setup(struct fixture *f, uint32_t entries, uint32_t buf_bytes, bool need_inc)
{
    int ret = uring_init(&f->ring);

    if (ret == -ENOSYS || ret == -EPERM) {
        cr_skip_test("io_uring unavailable: %s", strerror(-ret));
    }
    cr_assert_eq(ret, 0, "uring_init: %s", strerror(-ret));
    cr_assert_eq(bufring_init_incremental(&f->br, &f->ring, 3, entries, buf_bytes, 4, 64), 0);
    if (need_inc && !f->br.incremental) {
        bufring_free(&f->br, &f->ring);
        uring_exit(&f->ring);
        cr_skip_test("kernel lacks IOU_PBUF_RING_INC (Linux 6.12+)");
    }
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, f->sv), 0);
}

static void teardown(struct fixture *f)
{
    close(f->sv[0]);
    close(f->sv[1]);
    bufring_free(&f->br, &f->ring);
    cr_assert_null(f->br.br);
    cr_assert_null(f->br.consumed);
    uring_exit(&f->ring);
}

static void arm_recv(struct fixture *f)
{
    static uint64_t obj;
    struct io_uring_sqe *sqe = uring_get_sqe(&f->ring);

    cr_assert_not_null(sqe);
    io_uring_prep_recv_multishot(sqe, f->sv[0], NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = f->br.group_id;
    io_uring_sqe_set_data64(sqe, uring_ud(&obj, URING_OP_RECV));
}

/* Send @msg (unless NULL) and reap the next recv completion into *@r. */
static void reap(struct fixture *f, const char *msg, struct reaped *r)
{
    struct io_uring_cqe *cqe;
    int ret;

    if (msg != NULL) {
        cr_assert_eq(write(f->sv[1], msg, strlen(msg)), (ssize_t)strlen(msg));
    }
    ret = io_uring_submit_and_wait(&f->ring, 1);
    cr_assert_geq(ret, 0, "submit_and_wait: %s", strerror(-ret));
    cr_assert_eq(io_uring_peek_cqe(&f->ring, &cqe), 0);
    r->cqe.user_data = cqe->user_data;
    r->cqe.res = cqe->res;
    r->cqe.flags = cqe->flags;
    io_uring_cqe_seen(&f->ring, cqe);
}

/* The completion's bytes, checked against @want, then handed back. */
static void expect_bytes(struct fixture *f, const struct reaped *r, const char *want)
{
    size_t n = strlen(want);

    cr_assert_eq(r->cqe.res, (int)n, "res %d, want %zu", r->cqe.res, n);
    cr_assert(r->cqe.flags & IORING_CQE_F_BUFFER);
    cr_assert_eq(memcmp(bufring_cqe_data(&f->br, &r->cqe), want, n), 0);
    bufring_cqe_done(&f->br, &r->cqe);
}

Test(bufring, incremental_completions_share_one_buffer_back_to_back)
{
    struct fixture f;
    struct reaped a;
    struct reaped b;

    setup(&f, 4, 64, true);
    arm_recv(&f);
    reap(&f, "hello", &a);
    cr_assert(a.cqe.flags & IORING_CQE_F_BUF_MORE, "a 64-byte buffer is not used up by 5");
    cr_assert_eq(bufring_cqe_data(&f.br, &a.cqe), bufring_buf(&f.br, bufring_cqe_bid(&a.cqe)));
    expect_bytes(&f, &a, "hello");
    reap(&f, "world!", &b);
    cr_assert_eq(bufring_cqe_bid(&b.cqe), bufring_cqe_bid(&a.cqe), "same buffer, further on");
    cr_assert_eq(bufring_cqe_data(&f.br, &b.cqe), bufring_buf(&f.br, bufring_cqe_bid(&b.cqe)) + 5);
    expect_bytes(&f, &b, "world!");
    teardown(&f);
}

Test(bufring, incremental_buffer_returns_to_the_ring_once_used_up)
{
    struct fixture f;
    struct reaped r;
    uint16_t first;
    int i;

    /* Two 16-byte buffers: 8 + 8 fills the first, and so on round the ring. */
    setup(&f, 2, 16, true);
    arm_recv(&f);
    reap(&f, "01234567", &r);
    first = bufring_cqe_bid(&r.cqe);
    expect_bytes(&f, &r, "01234567");
    reap(&f, "89abcdef", &r);
    cr_assert_eq(bufring_cqe_bid(&r.cqe), first);
    cr_assert_not(r.cqe.flags & IORING_CQE_F_BUF_MORE, "16 of 16 bytes: used up");
    expect_bytes(&f, &r, "89abcdef");
    cr_assert_eq(f.br.consumed[first], 0, "a recycled buffer starts again at 0");
    /* Four more buffers' worth: only possible if each used-up buffer came back. */
    for (i = 0; i < 8; i++) {
        reap(&f, "ABCDEFGH", &r);
        cr_assert(r.cqe.flags & IORING_CQE_F_MORE, "round %d: recv still armed", i);
        expect_bytes(&f, &r, "ABCDEFGH");
    }
    teardown(&f);
}

Test(bufring, incremental_read_is_capped_at_what_is_left_of_the_buffer)
{
    struct fixture f;
    struct reaped r;

    setup(&f, 2, 16, true);
    arm_recv(&f);
    reap(&f, "0123456789", &r);
    expect_bytes(&f, &r, "0123456789");
    reap(&f, "abcdefghij", &r); /* 6 bytes left in the first buffer */
    expect_bytes(&f, &r, "abcdef");
    reap(&f, NULL, &r);
    expect_bytes(&f, &r, "ghij");
    teardown(&f);
}

Test(bufring, incremental_eof_gives_no_buffer_back)
{
    struct fixture f;
    struct reaped r;
    uint16_t bid;

    setup(&f, 2, 64, true);
    arm_recv(&f);
    reap(&f, "last", &r);
    bid = bufring_cqe_bid(&r.cqe);
    expect_bytes(&f, &r, "last");
    close(f.sv[1]);
    reap(&f, NULL, &r);
    cr_assert_eq(r.cqe.res, 0);
    if (r.cqe.flags & IORING_CQE_F_BUFFER) {
        bufring_cqe_done(&f.br, &r.cqe);
    }
    cr_assert_eq(f.br.consumed[bid], 4, "EOF consumed nothing of the buffer");
    f.sv[1] = socket(AF_UNIX, SOCK_STREAM, 0); /* for teardown */
    teardown(&f);
}

Test(bufring, incremental_falls_back_or_delivers_either_way)
{
    struct fixture f;
    struct reaped r;

    setup(&f, 4, 64, false);
    arm_recv(&f);
    reap(&f, "either way", &r);
    expect_bytes(&f, &r, "either way");
    teardown(&f);
}

Test(listener, accepted_sockets_inherit_tcp_nodelay)
{
    struct config_listener cfg;
    struct listener l;
    struct sockaddr_in sin;
    socklen_t len = sizeof(int);
    int c;
    int a;
    int v = 0;

    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.name, sizeof(cfg.name), "test");
    cfg.backlog = 16;
    snprintf(cfg.bind, sizeof(cfg.bind), "127.0.0.1");
    cr_assert_eq(listener_open(&l, &cfg, NULL, 0, false), 0);
    cr_assert(l.nodelay);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(l.port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(c, 0);
    cr_assert_eq(connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
    a = accept(l.fd, NULL, NULL);
    cr_assert_geq(a, 0);
    cr_assert_eq(getsockopt(a, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    cr_assert_eq(v, 1, "conn_accept() skips its setsockopt because of this");
    close(a);
    close(c);
    listener_close(&l);
}
