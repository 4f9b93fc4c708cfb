/*
 * test_tls_mem.c - unit tests for tls/tls_mem: a wolfSSL object in its own
 * region, asleep while idle, awake with its state intact.
 *
 * A real TLS 1.3 (and 1.2) handshake between a wolfSSL server and client
 * over in-memory pipes; the server's object is made inside a region. After
 * a sleep the region's pages must be out of memory (mincore) and the
 * connection must still carry data both ways, also with half a record
 * waiting inside the server's object across the sleep.
 */
#define USE_CERT_BUFFERS_256
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/certs_test.h>
#include <wolfssl/wolfcrypt/aes.h>

#include <wolfssl/wolfcrypt/asn_public.h>

#include "config/config.h"
#include "tls/tls_conn.h"
#include "tls/tls_ctx.h"
#include "tls/tls_mem.h"

#define PIPE_BYTES (64u << 10)

struct pipe {
    uint8_t buf[PIPE_BYTES];
    size_t len;
};

static struct pipe to_server, to_client;

static int pipe_read(struct pipe *p, char *buf, int sz)
{
    size_t n;

    if (p->len == 0) {
        return WOLFSSL_CBIO_ERR_WANT_READ;
    }
    n = p->len < (size_t)sz ? p->len : (size_t)sz;
    memcpy(buf, p->buf, n);
    memmove(p->buf, p->buf + n, p->len - n);
    p->len -= n;
    return (int)n;
}

static int pipe_write(struct pipe *p, const char *buf, int sz)
{
    cr_assert_leq(p->len + (size_t)sz, PIPE_BYTES);
    memcpy(p->buf + p->len, buf, (size_t)sz);
    p->len += (size_t)sz;
    return sz;
}

static int srv_recv(WOLFSSL *s, char *b, int sz, void *c)
{
    (void)s;
    (void)c;
    return pipe_read(&to_server, b, sz);
}

static int srv_send(WOLFSSL *s, char *b, int sz, void *c)
{
    (void)s;
    (void)c;
    return pipe_write(&to_client, b, sz);
}

static int cli_recv(WOLFSSL *s, char *b, int sz, void *c)
{
    (void)s;
    (void)c;
    return pipe_read(&to_client, b, sz);
}

static int cli_send(WOLFSSL *s, char *b, int sz, void *c)
{
    (void)s;
    (void)c;
    return pipe_write(&to_server, b, sz);
}

struct pair {
    WOLFSSL_CTX *sctx;
    WOLFSSL_CTX *cctx;
    WOLFSSL *srv;
    WOLFSSL *cli;
    struct tls_mem mem; /* the server object's */
    uint32_t made;      /* mem.used after wolfSSL_new() */
};

/* A handshaken pair; the server's object in p->mem's region. */
static void pair_open(struct pair *p, bool tls13)
{
    int sr = 0;
    int cr = 0;

    memset(p, 0, sizeof(*p));
    to_server.len = to_client.len = 0;
    cr_assert_eq(tls_init(), 0);
    p->sctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    cr_assert_not_null(p->sctx);
    cr_assert_eq(wolfSSL_CTX_use_certificate_buffer(p->sctx, serv_ecc_der_256,
                                                    sizeof_serv_ecc_der_256, WOLFSSL_FILETYPE_ASN1),
                 WOLFSSL_SUCCESS);
    cr_assert_eq(wolfSSL_CTX_use_PrivateKey_buffer(p->sctx, ecc_key_der_256, sizeof_ecc_key_der_256,
                                                   WOLFSSL_FILETYPE_ASN1),
                 WOLFSSL_SUCCESS);
    wolfSSL_CTX_SetIORecv(p->sctx, srv_recv);
    wolfSSL_CTX_SetIOSend(p->sctx, srv_send);
    p->cctx = wolfSSL_CTX_new(tls13 ? wolfTLSv1_3_client_method() : wolfTLSv1_2_client_method());
    cr_assert_not_null(p->cctx);
    wolfSSL_CTX_set_verify(p->cctx, WOLFSSL_VERIFY_NONE, NULL);
    wolfSSL_CTX_SetIORecv(p->cctx, cli_recv);
    wolfSSL_CTX_SetIOSend(p->cctx, cli_send);

    tls_mem_begin(&p->mem, 0);
    p->srv = wolfSSL_new(p->sctx);
    tls_mem_end();
    cr_assert_not_null(p->srv);
    p->made = p->mem.used;
    p->cli = wolfSSL_new(p->cctx);
    cr_assert_not_null(p->cli);
    for (int i = 0; i < 20 && (sr != 1 || cr != 1); i++) {
        if (cr != 1) {
            cr = wolfSSL_connect(p->cli);
        }
        if (sr != 1) {
            tls_mem_begin(&p->mem, sizeof(Aes)); /* as tls_conn_handshake() does */
            sr = wolfSSL_accept(p->srv);
            tls_mem_end();
        }
    }
    cr_assert(sr == 1 && cr == 1, "handshake: server %d, client %d", sr, cr);
    wolfSSL_FreeArrays(p->srv);
}

static void pair_close(struct pair *p)
{
    struct tls_mem_stats st;

    tls_mem_wake(&p->mem);
    wolfSSL_free(p->srv);
    tls_mem_release(&p->mem);
    wolfSSL_free(p->cli);
    wolfSSL_CTX_free(p->sctx);
    wolfSSL_CTX_free(p->cctx);
    tls_mem_stats(&st);
    cr_assert_eq(st.regions_lost, 0, "wolfSSL kept blocks of a freed object");
    tls_mem_thread_done();
    tls_cleanup();
}

/* @msg from @from to @to, read there whole. */
static void say(WOLFSSL *from, WOLFSSL *to, const char *msg)
{
    char buf[256];
    int n;

    cr_assert_eq(wolfSSL_write(from, msg, (int)strlen(msg)), (int)strlen(msg));
    n = wolfSSL_read(to, buf, sizeof(buf));
    cr_assert_eq(n, (int)strlen(msg), "read %d for '%s'", n, msg);
    cr_assert_arr_eq(buf, msg, (size_t)n);
}

/* Pages of the region resident in memory. */
static size_t resident_pages(const struct tls_mem *m)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char vec[TLS_MEM_REGION_BYTES / 4096];
    size_t n = TLS_MEM_REGION_BYTES / page;
    size_t in = 0;

    cr_assert_eq(mincore(m->base, TLS_MEM_REGION_BYTES, vec), 0);
    for (size_t i = 0; i < n; i++) {
        in += vec[i] & 1u;
    }
    return in;
}

static void sleeps_and_wakes(bool tls13)
{
    struct pair p;
    uint8_t rest[128];
    size_t half_len;
    size_t rest_len;
    char buf[64];

    pair_open(&p, tls13);
    cr_assert_not_null(p.mem.base, "no region");
    cr_assert_gt(p.mem.used, 37000u, "the WOLFSSL object is not in the region (%u)", p.mem.used);
    cr_assert_gt(p.mem.live, 0u);
    /* The cipher state (an AES-GCM suite each way) joined the object in its region. */
    cr_assert_geq(p.mem.used, p.made + 2 * (16 + (unsigned)sizeof(Aes)), "used %u", p.mem.used);
    say(p.cli, p.srv, "before");
    cr_assert_gt(resident_pages(&p.mem), 8u);

    for (int round = 0; round < 3; round++) {
        cr_assert_eq(tls_mem_sleep(&p.mem), 0);
        cr_assert(tls_mem_asleep(&p.mem));
        /* Of ~56 KB; under 3.5 KB only when its cipher states are rebuilt (tls_nap.h). */
        cr_assert_lt(p.mem.nap_len, 3500u, "asleep in %u bytes", p.mem.nap_len);
        cr_assert_eq(resident_pages(&p.mem), 0u, "pages still in memory while asleep");
        cr_assert_eq(tls_mem_sleep(&p.mem), 0, "a second sleep is a no-op");
        tls_mem_wake(&p.mem);
        cr_assert_not(tls_mem_asleep(&p.mem));
        say(p.cli, p.srv, "to the server after a sleep");
        say(p.srv, p.cli, "to the client after a sleep");
    }

    /* Half a record inside the server's object while it sleeps. */
    cr_assert_eq(wolfSSL_write(p.cli, "split record", 12), 12);
    cr_assert_leq(to_server.len, sizeof(rest));
    half_len = to_server.len / 2;
    rest_len = to_server.len - half_len;
    memcpy(rest, to_server.buf + half_len, rest_len);
    to_server.len = half_len;
    cr_assert_eq(wolfSSL_read(p.srv, buf, sizeof(buf)), -1);
    cr_assert_eq(wolfSSL_get_error(p.srv, -1), WOLFSSL_ERROR_WANT_READ);
    cr_assert_eq(to_server.len, 0u, "the server took the half record");
    cr_assert_eq(tls_mem_sleep(&p.mem), 0);
    cr_assert_eq(resident_pages(&p.mem), 0u);
    tls_mem_wake(&p.mem);
    memcpy(to_server.buf, rest, rest_len);
    to_server.len = rest_len;
    cr_assert_eq(wolfSSL_read(p.srv, buf, sizeof(buf)), 12);
    cr_assert_arr_eq(buf, "split record", 12);
    pair_close(&p);
}

Test(tls_mem, a_tls13_connection_sleeps_in_a_few_kilobytes_and_wakes_intact)
{
    sleeps_and_wakes(true);
}

Test(tls_mem, a_tls12_connection_sleeps_in_a_few_kilobytes_and_wakes_intact)
{
    sleeps_and_wakes(false);
}

Test(tls_mem, a_freed_region_comes_back_clean_for_the_next_object)
{
    struct pair p;
    uint8_t *base;
    uint32_t used;

    pair_open(&p, true);
    base = p.mem.base;
    used = p.mem.used;
    tls_mem_wake(&p.mem);
    wolfSSL_free(p.srv);
    tls_mem_release(&p.mem);
    cr_assert_null(p.mem.base);
    for (uint32_t i = 0; i < used; i++) {
        cr_assert_eq(base[i], 0, "byte %u of a released region is %#x", i, base[i]);
    }
    tls_mem_begin(&p.mem, 0);
    p.srv = wolfSSL_new(p.sctx);
    tls_mem_end();
    cr_assert_eq(p.mem.base, base, "the warm region is taken first");
    wolfSSL_free(p.cli);
    p.cli = wolfSSL_new(p.cctx);
    to_server.len = to_client.len = 0;
    for (int i = 0; i < 20 && !wolfSSL_is_init_finished(p.srv); i++) {
        (void)wolfSSL_connect(p.cli);
        tls_mem_begin(&p.mem, sizeof(Aes));
        (void)wolfSSL_accept(p.srv);
        tls_mem_end();
    }
    say(p.cli, p.srv, "second object");
    pair_close(&p);
}

Test(tls_mem, blocks_in_and_out_of_a_region)
{
    struct tls_mem m = {0};
    struct tls_mem_stats st;
    uint8_t *a;
    uint8_t *b;
    uint8_t *c;
    uint8_t *b2;
    uint8_t *c2;
    uint8_t *base;

    cr_assert_eq(tls_init(), 0);
    c = wolfSSL_Malloc(100); /* outside begin/end: malloc */
    cr_assert_not_null(c);
    tls_mem_begin(&m, 0);
    a = wolfSSL_Malloc(100);
    b = wolfSSL_Malloc(TLS_MEM_REGION_BYTES); /* does not fit: malloc */
    tls_mem_end();
    cr_assert_not_null(m.base);
    cr_assert(a >= m.base && a < m.base + TLS_MEM_REGION_BYTES, "a is not in the region");
    cr_assert((uintptr_t)a % 16 == 0, "alignment");
    cr_assert(b < m.base || b >= m.base + TLS_MEM_REGION_BYTES, "b is in the region");
    cr_assert(c < m.base || c >= m.base + TLS_MEM_REGION_BYTES, "c is in the region");
    /* A block from malloc is malloc's own, with no header of ours before it. */
    cr_assert_geq(malloc_usable_size(c), 100u);
    cr_assert_lt(malloc_usable_size(c), 100u + 16u, "c carries more than malloc's rounding");
    cr_assert_eq(m.live, 1u);
    tls_mem_begin(&m, 48); /* only blocks of 48 bytes */
    b2 = wolfSSL_Malloc(48);
    c2 = wolfSSL_Malloc(47);
    tls_mem_end();
    cr_assert(b2 >= m.base && b2 < m.base + TLS_MEM_REGION_BYTES, "48 bytes not in the region");
    cr_assert(c2 < m.base || c2 >= m.base + TLS_MEM_REGION_BYTES, "47 bytes in the region");
    cr_assert_eq(m.live, 2u);
    wolfSSL_Free(b2);
    wolfSSL_Free(c2);
    cr_assert_eq(m.live, 1u);
    memset(a, 0xab, 100);
    a = wolfSSL_Realloc(a, 50); /* shrinks in place */
    cr_assert(a >= m.base && a < m.base + TLS_MEM_REGION_BYTES);
    a = wolfSSL_Realloc(a, 5000); /* grows: moves out, the region block freed */
    cr_assert_not_null(a);
    cr_assert(a < m.base || a >= m.base + TLS_MEM_REGION_BYTES);
    cr_assert_eq(a[49], 0xab);
    cr_assert_eq(m.live, 0u);
    c = wolfSSL_Realloc(c, 100000);
    cr_assert_not_null(c);
    wolfSSL_Free(a);
    wolfSSL_Free(b);
    wolfSSL_Free(c);

    /* A block left behind: the region is never reused, its block still frees. */
    base = m.base;
    tls_mem_release(&m);
    memset(&m, 0, sizeof(m));
    tls_mem_begin(&m, 0);
    cr_assert_eq(m.base, base, "a clean region is reused");
    a = wolfSSL_Malloc(64);
    tls_mem_end();
    tls_mem_release(&m);
    tls_mem_stats(&st);
    cr_assert_eq(st.regions_lost, 1u);
    memset(&m, 0, sizeof(m));
    tls_mem_begin(&m, 0);
    tls_mem_end();
    cr_assert_neq(m.base, base, "a region with a block left was reused");
    wolfSSL_Free(a);
    tls_mem_release(&m);
    tls_mem_thread_done();
    tls_cleanup();
}

/* ---- through tls/tls_conn, as the broker uses it ---- */

/* @der as a PEM file at @path. */
static void write_pem(const char *path, const unsigned char *der, int der_len, int type)
{
    uint8_t pem[4096];
    int n = wc_DerToPem(der, (word32)der_len, pem, sizeof(pem), type);
    FILE *f;

    cr_assert_gt(n, 0, "wc_DerToPem: %d", n);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(pem, 1, (size_t)n, f), (size_t)n);
    cr_assert_eq(fclose(f), 0);
}

static struct tls_ctx *server_ctx(struct config_listener *l)
{
    char err[256];
    struct tls_ctx *t;

    memset(l, 0, sizeof(*l));
    snprintf(l->certfile, sizeof(l->certfile), "/tmp/ringmq-test-tls-mem-%d.crt", (int)getpid());
    snprintf(l->keyfile, sizeof(l->keyfile), "/tmp/ringmq-test-tls-mem-%d.key", (int)getpid());
    write_pem(l->certfile, serv_ecc_der_256, sizeof_serv_ecc_der_256, CERT_TYPE);
    write_pem(l->keyfile, ecc_key_der_256, sizeof_ecc_key_der_256, ECC_PRIVATEKEY_TYPE);
    l->tls_version = CONFIG_TLS_12;
    /* AES-GCM, whose cipher states join the region (the default may prefer ChaCha20). */
    snprintf(l->ciphers_tls13, sizeof(l->ciphers_tls13), "TLS13-AES128-GCM-SHA256");
    t = tls_ctx_new(l, err, sizeof(err));
    cr_assert_not_null(t, "tls_ctx_new: %s", err);
    return t;
}

struct served {
    WOLFSSL *ssl;
    struct tls_io io;
    struct obuf out;
    WOLFSSL *cli;
};

/* The server's output so far, to the client. */
static void flush_out(struct served *c)
{
    if (c->out.len > 0) {
        (void)pipe_write(&to_client, (const char *)c->out.data, (int)c->out.len);
        c->out.len = 0;
    }
}

/* What the client sent, fed to the server as one completion's bytes. */
static void feed_in(struct served *c)
{
    static uint8_t in[PIPE_BYTES];

    memcpy(in, to_server.buf, to_server.len);
    c->io.in = in;
    c->io.in_len = to_server.len;
    to_server.len = 0;
}

/* A connection through tls_conn, handshaken with a wolfSSL client. */
static void served_open(struct served *c, const struct tls_ctx *t, WOLFSSL_CTX *cctx)
{
    int sr = 0;
    int cr = 0;
    uint32_t made;

    memset(c, 0, sizeof(*c));
    to_server.len = to_client.len = 0;
    c->io.out = &c->out;
    c->io.out_max = 1u << 20;
    c->ssl = tls_conn_new(t, &c->io);
    cr_assert_not_null(c->ssl);
    cr_assert_not_null(c->io.mem.base, "tls_conn_new() made no region");
    cr_assert_gt(c->io.mem.used, 37000u, "the WOLFSSL object is not in its region");
    made = c->io.mem.used;
    c->cli = wolfSSL_new(cctx);
    cr_assert_not_null(c->cli);
    for (int i = 0; i < 20 && (sr <= 0 || cr != 1); i++) {
        if (cr != 1) {
            cr = wolfSSL_connect(c->cli);
        }
        if (sr <= 0) {
            feed_in(c);
            sr = tls_conn_handshake(c->ssl);
            cr_assert_geq(sr, 0, "server handshake failed");
            flush_out(c);
        }
    }
    cr_assert(sr > 0 && cr == 1, "handshake: server %d, client %d", sr, cr);
    tls_conn_handshake_over(c->ssl);
    /* Two cipher states (AES-GCM each way), each with its 16-byte header. */
    cr_assert_geq(c->io.mem.used, made + 2 * (16 + (unsigned)sizeof(Aes)),
                  "tls_conn_handshake() left the cipher state out of the region (%u, %u)", made,
                  c->io.mem.used);
}

/* @msg from the client to the server and back. */
static void echo(struct served *c, const char *msg)
{
    uint8_t buf[256];
    long n;

    cr_assert_eq(wolfSSL_write(c->cli, msg, (int)strlen(msg)), (int)strlen(msg));
    feed_in(c);
    n = tls_conn_read(c->ssl, buf, sizeof(buf));
    cr_assert_eq(n, (long)strlen(msg), "server read %ld", n);
    cr_assert_eq(tls_conn_write(c->ssl, buf, (size_t)n), 0);
    flush_out(c);
    cr_assert_eq(wolfSSL_read(c->cli, (char *)buf, sizeof(buf)), (int)strlen(msg));
    cr_assert_arr_eq(buf, msg, strlen(msg));
}

static void served_close(struct served *c)
{
    tls_conn_free(c->ssl, &c->io);
    cr_assert_null(c->io.mem.base, "the region was not released");
    wolfSSL_free(c->cli);
    obuf_free(&c->out);
}

/*
 * While one connection sleeps, its region is made inaccessible and another
 * connection runs a whole life on the same thread (a full handshake, data,
 * close): nothing wolfSSL keeps elsewhere lives in a sleeping region. Then
 * the sleeper wakes and works, and tls_conn_free() of a sleeping
 * connection wakes it first and frees everything in its region.
 */
Test(tls_mem, a_sleeping_connection_is_untouched_while_another_lives_and_frees_cleanly)
{
    struct config_listener l;
    struct tls_mem_stats st;
    struct served a;
    struct served b;
    struct tls_ctx *t;
    WOLFSSL_CTX *cctx;
    const struct tls_mem *ref;

    cr_assert_eq(tls_init(), 0);
    t = server_ctx(&l);
    cctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    cr_assert_not_null(cctx);
    wolfSSL_CTX_set_verify(cctx, WOLFSSL_VERIFY_NONE, NULL);
    wolfSSL_CTX_SetIORecv(cctx, cli_recv);
    wolfSSL_CTX_SetIOSend(cctx, cli_send);

    /*
     * The context's reference object (tls_nap.h) is read-only from here to
     * the end: anything that wrote into it would fault where it writes.
     */
    ref = tls_ctx__reference(t);
    cr_assert_not_null(ref, "no reference object");
    cr_assert_eq(mprotect(ref->base, TLS_MEM_REGION_BYTES, PROT_READ), 0);

    served_open(&a, t, cctx);
    cr_assert_eq(a.io.mem.ref, ref,
                 "the connection is not encoded against its context's reference");
    echo(&a, "a before");
    cr_assert_eq(tls_conn_sleep(&a.io), 0);
    /* Against the reference, cipher states rebuilt (copied word by word it was 4.2 KB). */
    cr_assert_lt(a.io.mem.nap_len, 2600u, "asleep in %u bytes", a.io.mem.nap_len);
    cr_assert_eq(mprotect(a.io.mem.base, TLS_MEM_REGION_BYTES, PROT_NONE), 0);
    served_open(&b, t, cctx);
    echo(&b, "b while a sleeps");
    served_close(&b);
    cr_assert_eq(mprotect(a.io.mem.base, TLS_MEM_REGION_BYTES, PROT_READ | PROT_WRITE), 0);
    tls_conn_wake(&a.io);
    echo(&a, "a after its sleep");
    cr_assert_eq(tls_conn_sleep(&a.io), 0);
    served_close(&a); /* asleep: freed through a wake */
    tls_mem_stats(&st);
    cr_assert_eq(st.regions_lost, 0, "a freed connection left blocks in its region");
    cr_assert_geq(st.sleeps, 2u);

    wolfSSL_CTX_free(cctx);
    cr_assert_eq(mprotect(ref->base, TLS_MEM_REGION_BYTES, PROT_READ | PROT_WRITE), 0);
    tls_ctx_free(t); /* the reference's region goes back: written again */
    unlink(l.certfile);
    unlink(l.keyfile);
    tls_mem_thread_done();
    tls_cleanup();
}
