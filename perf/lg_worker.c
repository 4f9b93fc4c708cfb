/*
 * lg_worker.c - the load generator's worker threads and their loop; see
 * lg_worker.h.
 *
 * One worker = one thread = one level-triggered epoll loop. Per iteration it
 * (1) waits for readiness with a timeout taken from its earliest deadline,
 * (2) reads every readable connection into one shared receive buffer and
 * handles whole packets (lg_input), (3) starts due connects (lg_conn),
 * (4) lets due publishers publish (lg_publish), (5) flushes each connection
 * that has output with one send() (lg_wire's dirty list), (6) wakes the
 * other workers whose publishers it released, and every SWEEP_NS checks
 * deadlines (connect timeouts, retries, keepalive, window timeouts).
 *
 * Connections speak through a transport (lg_transport_types.h: tcp, tls,
 * ws, wss). The loop is level-triggered on the socket, so a transport that
 * has already pulled bytes off the socket (decrypted TLS records) says so
 * with rx_more: lg_input reads the connection again at once, up to a bound,
 * then from the rx-more list in the next iteration; and one that has output
 * of its own (a WebSocket pong) sets want_out and is flushed like the rest.
 *
 * worker_main() and what it calls run on the worker thread; the exported
 * functions run on the main thread.
 */
#include "perf/lg_worker.h"

#include <errno.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "core/rm_assert.h"
#include "perf/lg_clock.h"
#include "perf/lg_conn.h"
#include "perf/lg_input.h"
#include "perf/lg_publish.h"
#include "perf/lg_sched.h"
#include "perf/lg_sock.h"
#include "perf/lg_worker_types.h"

#define EVENTS_MAX 256u
#define SWEEP_NS 100000000ull /* deadline checks every 100 ms */
#define WAIT_MAX_NS SWEEP_NS  /* a worker notices phases within this even unwoken */

static void conn_event(struct lg_worker *w, struct lg_conn *c, uint32_t events)
{
    int err = 0;
    int r;

    if (!lg_conn_alive(c)) {
        return; /* closed earlier in this batch */
    }
    if (c->state == LG_CONN_CONNECTING) {
        if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
            return;
        }
        r = lg_sock_error(c, &err);
        if (r < 0) {
            err = -r;
        }
        lg_conn_connected(w, c, -err);
        return;
    }
    if (c->state == LG_CONN_OPENING) {
        lg_conn_open(w, c);
        return;
    }
    if ((events & EPOLLIN) != 0) {
        /* Latency is stamped per read, not per batch of events (vDSO: ~20 ns). */
        w->_loop->now = lg_clock_ns();
        lg_input_read(w, c);
    } else if ((events & (EPOLLERR | EPOLLHUP)) != 0) {
        if (lg_sock_error(c, &err) < 0 || err == 0) {
            err = ECONNRESET;
        }
        lg_conn_lost(w, c, -err);
        return;
    }
    if ((events & EPOLLOUT) != 0 && lg_conn_alive(c)) {
        lg_conn_flush(w, c);
    }
}

static void sweep(struct lg_worker *w)
{
    struct lg_loop *lp = w->_loop;

    lg_conn_sweep(w);
    lg_sched_sweep_windows(w);
    lp->recheck = true; /* belt and braces against a lost cross-worker wake-up */
    lp->next_sweep_ns = lp->now + SWEEP_NS;
}

static void flush_dirty(struct lg_worker *w)
{
    struct lg_loop *lp = w->_loop;
    uint32_t i;

    for (i = 0; i < lp->ndirty; i++) {
        struct lg_conn *c = lp->dirty[i];

        c->flags &= (uint8_t)~LG_CONN_F_DIRTY;
        if (lg_conn_alive(c) && c->state != LG_CONN_CONNECTING && (c->flags & LG_CONN_F_OUT) == 0) {
            lg_conn_flush(w, c);
        }
    }
    lp->ndirty = 0;
}

static void wake_others(struct lg_worker *w)
{
    struct lg_loop *lp = w->_loop;
    const uint64_t one = 1;

    while (lp->wake_mask != 0) {
        uint32_t t = (uint32_t)__builtin_ctzll(lp->wake_mask);

        lp->wake_mask &= lp->wake_mask - 1;
        RM_ASSERT(t < w->run->nworkers && t != w->idx);
        if (write(w->run->workers[t].evfd, &one, sizeof(one)) < 0) {
            /* EAGAIN: the counter is saturated, so it is awake anyway. */
        }
    }
}

/* Nanoseconds until the earliest thing this worker must do unprompted. */
static uint64_t wait_ns(struct lg_worker *w)
{
    struct lg_loop *lp = w->_loop;
    uint64_t until = lp->next_sweep_ns;

    if (lp->ready_len > 0 || lp->recheck || lp->nrxmore > 0) {
        return 0;
    }
    if (lp->heap_len > 0 && lp->heap[0]->due_ns < until) {
        until = lp->heap[0]->due_ns;
    }
    if (lp->phase == LG_PHASE_CONNECT && lp->conn_next < w->nconns &&
        lp->pending < lp->pending_max && lp->conn_due_ns < until) {
        until = lp->conn_due_ns;
    }
    if (until <= lp->now) {
        return 0;
    }
    return until - lp->now > WAIT_MAX_NS ? WAIT_MAX_NS : until - lp->now;
}

static void phase_step(struct lg_worker *w)
{
    struct lg_loop *lp = w->_loop;

    lp->phase = atomic_load_explicit(&w->run->phase, memory_order_acquire);
    if (lp->phase == LG_PHASE_CONNECT) {
        lg_conn_start_due(w);
    }
    if (lp->phase == LG_PHASE_RUN && !lp->pubs_started) {
        lg_publish_start(w);
    }
    if (lp->phase >= LG_PHASE_DRAIN && !lp->pubs_stopped) {
        lg_publish_stop(w);
    }
}

static void *worker_main(void *arg)
{
    struct lg_worker *w = arg;
    struct lg_loop *lp = w->_loop;
    struct epoll_event evs[EVENTS_MAX];
    uint64_t timeout_ns = 0;

    for (;;) {
        struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000ull),
                              .tv_nsec = (long)(timeout_ns % 1000000000ull)};
        int n = epoll_pwait2(w->epfd, evs, EVENTS_MAX, &ts, NULL);
        int i;

        lp->now = lg_clock_ns();
        for (i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                uint64_t v;

                if (read(w->evfd, &v, sizeof(v)) < 0) {
                    /* EAGAIN: already drained */
                }
                lp->recheck = true;
                continue;
            }
            conn_event(w, evs[i].data.ptr, evs[i].events);
        }
        if (lp->nrxmore > 0) {
            lg_input_read_more(w);
        }
        phase_step(w);
        if (lp->phase == LG_PHASE_STOP) {
            break;
        }
        lp->now = lg_clock_ns(); /* send stamps: after the reads above */
        lg_publish_run(w);
        flush_dirty(w);
        wake_others(w);
        if (lp->now >= lp->next_sweep_ns) {
            sweep(w);
            flush_dirty(w);
        }
        w->st.loops++;
        timeout_ns = wait_ns(w);
    }
    lg_conn_shutdown(w);
    if (w->run->opts->transport->thread_done != NULL) {
        w->run->opts->transport->thread_done();
    }
    return NULL;
}

int lg_worker_start(struct lg_run *run)
{
    uint64_t now = lg_clock_ns();
    uint32_t i;
    int ret = 0;

    RM_ASSERT(run != NULL && run->workers != NULL);
    RM_ASSERT(atomic_load(&run->phase) == LG_PHASE_CONNECT);
    for (i = 0; i < run->nworkers; i++) {
        struct lg_worker *w = &run->workers[i];
        struct lg_loop *lp = w->_loop;

        lp->now = now;
        lp->conn_due_ns = now;
        lp->next_sweep_ns = now + SWEEP_NS;
        ret = -pthread_create(&w->tid, NULL, worker_main, w);
        if (ret < 0) {
            break;
        }
        w->started = true;
    }
    return ret;
}

void lg_worker_set_phase(struct lg_run *run, enum lg_phase phase)
{
    const uint64_t one = 1;
    uint32_t i;

    RM_ASSERT(run != NULL);
    RM_ASSERT((int)phase >= atomic_load(&run->phase));
    atomic_store_explicit(&run->phase, phase, memory_order_release);
    for (i = 0; i < run->nworkers; i++) {
        if (run->workers[i].evfd >= 0 && write(run->workers[i].evfd, &one, sizeof(one)) < 0) {
            /* saturated counter: awake anyway */
        }
    }
}

void lg_worker_join(struct lg_run *run)
{
    uint32_t i;

    RM_ASSERT(run != NULL);
    RM_ASSERT(atomic_load(&run->phase) == LG_PHASE_STOP);
    for (i = 0; i < run->nworkers; i++) {
        if (run->workers[i].started) {
            pthread_join(run->workers[i].tid, NULL);
            run->workers[i].started = false;
        }
    }
}
