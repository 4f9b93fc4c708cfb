/*
 * lg_input.c - the receive side of the load generator's clients; see
 * lg_input.h.
 *
 * The per-message path (read, decode, account, release the window slot,
 * answer QoS 1/2) stays in this one file so that the compiler can inline it
 * as it sees fit. Runs on the worker thread that owns the connection.
 */
#include "perf/lg_input.h"

#include <errno.h>
#include <stdio.h>

#include "core/mqtt_codec.h"
#include "core/rm_assert.h"
#include "perf/lg_clock.h"
#include "perf/lg_conn.h"
#include "perf/lg_sched.h"
#include "perf/lg_wire.h"
#include "perf/lg_worker_types.h"

/*
 * Reads in a row while the transport says it holds bytes epoll cannot see
 * (TLS records already decrypted, WebSocket frames already read); past this
 * the connection waits in the rx-more list for the next iteration.
 */
#define RX_MORE_READS 8u

/* A subscriber received @pub's payload: account it. */
static void on_message(struct lg_worker *w, struct lg_conn *c, const struct mqtt_publish *pub)
{
    struct lg_run *run = w->run;
    struct lg_loop *lp = w->_loop;
    const struct lg_group *g;
    struct lg_msg_stamp s;
    struct lg_pub *p;
    enum lg_msg_verdict v;

    if (c->sub == NULL || !lg_msg_stamp_get(pub->payload.ptr, pub->payload.len, &s) ||
        s.pub_id >= run->npubs) {
        w->st.bogus++;
        return;
    }
    p = &run->pubs[s.pub_id];
    g = &run->groups[c->sub->group];
    if (p->group != c->sub->group ||
        s.seq >= atomic_load_explicit(&p->sent_total, memory_order_acquire)) {
        w->st.bogus++;
        return;
    }
    v = lg_msg_track_note(&c->sub->tracks[s.pub_id - g->pub_first], s.seq, pub->dup);
    if (v == LG_MSG_DUP) {
        return;
    }
    lg_run_bump(&w->live.recv, 1);
    if (lg_run_measuring(run, lp->now)) {
        lg_run_bump(&w->live.recv_meas, 1);
    }
    if (lg_run_measuring(run, s.sent_ns)) {
        lg_hist_record(&w->lat, lp->now > s.sent_ns ? lp->now - s.sent_ns : 0);
    }
    if (run->opts->window > 0) {
        lg_sched_release(w, p, s.seq);
    }
}

static void on_publish(struct lg_worker *w, struct lg_conn *c, const struct mqtt_publish *pub)
{
    if (c->state != LG_CONN_READY || c->role != LG_CONN_ROLE_SUB) {
        w->st.proto_errors++;
    } else {
        on_message(w, c, pub);
    }
    if (pub->qos == 1) {
        lg_conn_queue_ack(w, c, MQTT_PUBACK, pub->pkt_id);
    } else if (pub->qos == 2) {
        if (c->sub != NULL) {
            c->sub->q2_in++;
            lg_run_bump(&w->live.q2_in, 1);
        }
        lg_conn_queue_ack(w, c, MQTT_PUBREC, pub->pkt_id);
    }
}

/* PUBACK (QoS 1) or PUBCOMP (QoS 2): the broker has the message for good. */
static void on_final_ack(struct lg_worker *w, struct lg_conn *c, uint16_t id)
{
    struct lg_pub *p = c->pub;

    if (p == NULL || p->unacked == 0) {
        w->st.proto_errors++;
        return;
    }
    /* Acks come in publish order [MQTT-4.6.0-2, -3]; ids are seq % 65535 + 1. */
    if (id != (uint16_t)(p->acks % LG_WIRE_PKT_IDS + 1)) {
        w->st.ack_order_errors++;
    }
    p->acks++;
    p->unacked--;
    lg_run_drop(&w->live.unacked, 1);
    lg_sched_unblock(w, p, LG_SCHED_BLOCK_ACKS);
}

/* MQTT 5 DISCONNECT from the broker: it is closing the connection, and says why. */
static void on_disconnect(struct lg_worker *w, struct lg_conn *c, uint8_t rc)
{
    static atomic_bool told;

    w->st.server_disconnects++;
    if (!atomic_exchange(&told, true)) {
        fprintf(stderr, "ringmq-loadgen: the broker sent DISCONNECT with reason code 0x%02x%s\n",
                rc, c->state == LG_CONN_READY ? "" : " while connecting");
    }
    lg_conn_lost(w, c, -ECONNRESET);
}

static void on_packet(struct lg_worker *w, struct lg_conn *c, const struct mqtt_pkt *pkt)
{
    const uint8_t qos = w->run->opts->qos;

    switch (pkt->type) {
    case MQTT_CONNACK:
        lg_conn_on_connack(w, c, &pkt->u.connack);
        break;
    case MQTT_SUBACK:
        lg_conn_on_suback(w, c, &pkt->u.suback);
        break;
    case MQTT_PUBLISH:
        on_publish(w, c, &pkt->u.publish);
        break;
    case MQTT_PUBACK:
        if (qos != 1) {
            w->st.proto_errors++;
            break;
        }
        if (pkt->u.ack.rc >= MQTT_RC_UNSPECIFIED) {
            w->st.pub_refused++; /* v5: the broker did not take the message */
        }
        on_final_ack(w, c, pkt->u.ack.pkt_id);
        break;
    case MQTT_PUBREC:
        if (pkt->u.ack.rc >= MQTT_RC_UNSPECIFIED) {
            /* v5: refused; the exchange ends here, no PUBREL [MQTT-4.3.3-4 ff.] */
            w->st.pub_refused++;
            if (qos != 2) {
                w->st.proto_errors++;
                break;
            }
            on_final_ack(w, c, pkt->u.ack.pkt_id);
            break;
        }
        lg_conn_queue_ack(w, c, MQTT_PUBREL, pkt->u.ack.pkt_id);
        break;
    case MQTT_PUBCOMP:
        if (qos != 2) {
            w->st.proto_errors++;
            break;
        }
        on_final_ack(w, c, pkt->u.ack.pkt_id);
        break;
    case MQTT_PUBREL:
        if (c->sub != NULL && c->sub->q2_in > 0) {
            c->sub->q2_in--;
            lg_run_drop(&w->live.q2_in, 1);
        } else {
            w->st.proto_errors++;
        }
        lg_conn_queue_ack(w, c, MQTT_PUBCOMP, pkt->u.ack.pkt_id);
        break;
    case MQTT_PINGRESP:
        c->flags &= (uint8_t)~LG_CONN_F_PING;
        w->st.pongs++;
        break;
    case MQTT_DISCONNECT:
        if (w->run->opts->mqtt_version == MQTT_V5) {
            on_disconnect(w, c, pkt->u.ack.rc);
            break;
        }
        w->st.proto_errors++; /* a 3.1.1 broker never sends one */
        lg_conn_lost(w, c, -EPROTO);
        break;
    default:
        w->st.proto_errors++;
        lg_conn_lost(w, c, -EPROTO);
        break;
    }
}

/* Read what @c has, handle every whole packet, keep the partial tail. */
static void conn_read(struct lg_worker *w, struct lg_conn *c)
{
    struct lg_loop *lp = w->_loop;
    const uint8_t version = w->run->opts->mqtt_version;
    const uint8_t *buf = lp->rxbuf;
    ssize_t got = lg_wire_recv(w, c);
    uint32_t have;
    uint32_t off = 0;

    if (got == 0) {
        return;
    }
    if (got < 0) {
        lg_conn_lost(w, c, (int)got);
        return;
    }
    have = (uint32_t)got;
    /* Each round consumes a whole packet of at least two bytes. */
    while (off < have) {
        struct mqtt_pkt pkt;
        int r = lg_wire_packet(buf + off, have - off, lp->packet_max, version, &pkt);

        if (r == 0) {
            break;
        }
        if (r < 0) {
            w->st.proto_errors++;
            lg_conn_lost(w, c, -EPROTO);
            return;
        }
        on_packet(w, c, &pkt);
        if (!lg_conn_alive(c)) {
            return;
        }
        off += (uint32_t)r;
    }
    if (off < have && lg_wire_keep(c, buf + off, have - off) < 0) {
        lg_conn_lost(w, c, -ENOMEM);
    }
}

void lg_input_read(struct lg_worker *w, struct lg_conn *c)
{
    struct lg_loop *lp = w->_loop;
    uint32_t reads = 0;

    do {
        conn_read(w, c);
        reads++;
    } while (lg_conn_alive(c) && c->tc.rx_more && reads < RX_MORE_READS);
    if (lg_conn_alive(c) && c->tc.rx_more && (c->flags & LG_CONN_F_RXMORE) == 0) {
        RM_ASSERT(lp->nrxmore < w->nconns);
        c->flags |= LG_CONN_F_RXMORE;
        lp->rxmore[lp->nrxmore++] = c;
    }
}

void lg_input_read_more(struct lg_worker *w)
{
    struct lg_loop *lp = w->_loop;
    uint32_t n = lp->nrxmore;
    uint32_t i;

    /* Each entry re-adds at most itself, at an index <= its own: compaction in place. */
    lp->nrxmore = 0;
    for (i = 0; i < n; i++) {
        struct lg_conn *c = lp->rxmore[i];

        c->flags &= (uint8_t)~LG_CONN_F_RXMORE;
        if (lg_conn_alive(c) && c->tc.rx_more) {
            lp->now = lg_clock_ns();
            lg_input_read(w, c);
        }
    }
}
