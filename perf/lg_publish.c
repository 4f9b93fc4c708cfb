/*
 * lg_publish.c - the load generator's publishers at work; see
 * lg_publish.h.
 *
 * The per-message path (check, stamp, encode, account) stays in this one
 * file so that the compiler can inline it as it sees fit. Runs on the worker
 * thread that owns the publishers.
 */
#include "perf/lg_publish.h"

#include "core/mqtt_codec.h"
#include "core/rm_assert.h"
#include "perf/lg_conn.h"
#include "perf/lg_sched.h"
#include "perf/lg_wire.h"
#include "perf/lg_worker_types.h"

#define RATE_SLACK_NS 100000000ull   /* a publisher this far behind its rate skips ahead */
#define BURST_MAX 64u                /* messages one publisher sends per iteration */
#define TX_HIGH_BYTES (256u * 1024u) /* a publisher waits while its socket backs up this much */

/*
 * Publish @p's next message. @pkt is room for the PUBLISH in the caller's
 * frame: as a local here its 560 bytes would stop the compiler from inlining
 * this into the burst loop (stack-frame growth limit) without LTO.
 */
static void publish_one(struct lg_worker *w, struct lg_pub *p, struct mqtt_pkt *pkt)
{
    struct lg_run *run = w->run;
    const struct lg_opts *o = run->opts;
    struct lg_loop *lp = w->_loop;
    const struct lg_group *g = &run->groups[p->group];
    const uint32_t seq = p->seq_next;
    struct lg_msg_stamp s = {.seq = seq, .pub_id = p->id, .sent_ns = lp->now};

    *pkt = (struct mqtt_pkt){.type = MQTT_PUBLISH};
    lg_msg_stamp_put(lp->payload, &s);
    pkt->u.publish.qos = o->qos;
    pkt->u.publish.topic.ptr = (const uint8_t *)g->topic;
    pkt->u.publish.topic.len = g->topic_len;
    pkt->u.publish.pkt_id = o->qos > 0 ? (uint16_t)(seq % LG_WIRE_PKT_IDS + 1) : 0;
    pkt->u.publish.payload.ptr = lp->payload;
    pkt->u.publish.payload.len = o->payload_bytes;
    if (lg_conn_queue(w, p->conn, pkt) < 0) {
        return;
    }
    if (o->window > 0) {
        uint32_t i = seq % o->window;

        p->sent_ns[i] = lp->now;
        atomic_store_explicit(&p->slots[i], (uint64_t)seq << 32 | g->fan, memory_order_release);
    }
    if (o->qos > 0) {
        p->unacked++;
        lg_run_bump(&w->live.unacked, 1);
    }
    p->seq_next = seq + 1;
    atomic_store_explicit(&p->sent_total, p->seq_next, memory_order_release);
    lg_run_bump(&w->live.sent, 1);
    if (lg_run_measuring(run, lp->now)) {
        lg_run_bump(&w->live.sent_meas, 1);
    }
    if (lp->pub_period_ns > 0) {
        p->due_ns += lp->pub_period_ns;
        if (p->due_ns + RATE_SLACK_NS < lp->now) {
            p->due_ns = lp->now;
            w->st.rate_lag++;
        }
    }
}

/* Let @p send what its window, acks, rate and socket allow (at most BURST_MAX). */
static void pub_run(struct lg_worker *w, struct lg_pub *p)
{
    struct lg_run *run = w->run;
    struct lg_loop *lp = w->_loop;
    struct mqtt_pkt pkt;
    uint32_t i;
    uint8_t why;

    for (i = 0; i < BURST_MAX; i++) {
        if (lp->phase != LG_PHASE_RUN || lp->now >= run->t_meas_end_ns ||
            p->conn->state != LG_CONN_READY) {
            lg_sched_detach(lp, p);
            return;
        }
        if (!lg_sched_can_send(run, p, &why)) {
            lg_sched_block(w, p, why);
            return;
        }
        if (lp->pub_period_ns > 0 && p->due_ns > lp->now) {
            lg_sched_timed(w, p);
            return;
        }
        if (lg_wire_queued(p->conn) >= TX_HIGH_BYTES) {
            lg_sched_txwait(w, p);
            return;
        }
        publish_one(w, p, &pkt);
        if (!lg_conn_alive(p->conn)) {
            return;
        }
    }
    lg_sched_ready(w, p); /* burst used up: again next iteration */
}

void lg_publish_start(struct lg_worker *w)
{
    struct lg_run *run = w->run;
    struct lg_loop *lp = w->_loop;
    uint32_t i;

    lp->pubs_started = true;
    for (i = 0; i < w->npubs; i++) {
        struct lg_pub *p = w->pubs[i];

        if (p->conn->state != LG_CONN_READY) {
            continue;
        }
        /* Rate-paced publishers start spread over one period, not in lockstep. */
        p->due_ns = run->t_pub_start_ns + lp->pub_period_ns * p->id / run->npubs;
        if (lp->pub_period_ns > 0) {
            lg_sched_timed(w, p);
        } else {
            lg_sched_ready(w, p);
        }
    }
}

void lg_publish_stop(struct lg_worker *w)
{
    w->_loop->pubs_stopped = true;
    lg_sched_clear(w);
}

void lg_publish_run(struct lg_worker *w)
{
    uint32_t n;

    /* Only those ready at the start: a publisher re-queued by its burst waits a turn. */
    for (n = lg_sched_due(w); n > 0; n--) {
        struct lg_pub *p = lg_sched_pop(w);

        if (p != NULL) {
            pub_run(w, p);
        }
    }
}
