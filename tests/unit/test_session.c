/*
 * test_session.c - core/session.c alone: one session's subscriptions,
 * packet ids, inflight window, queue, inbound QoS 2 state and shared-group
 * hand-back, driven through session_*() directly. The broker only provides
 * the shard state a session works in (limits, trie, clock, counters); no
 * packet is fed through it. Output is read back from the client's buffer.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker_types.h"
#include "core/msg.h"
#include "core/outbox.h"
#include "core/output.h"
#include "core/session.h"
#include "core/share.h"

/* After core/ headers: it defines the global broker `b` their parameters would shadow. */
#include "broker_helpers.h"

TestSuite(session, .init = setup, .fini = teardown);

/* A session "id" with client @cl attached (NULL: offline). */
static struct session *sess_new(const char *id, struct client *cl)
{
    struct session *s =
        session_new((const uint8_t *)id, strlen(id), 0, SESSION_EXPIRY_NEVER, NULL, 0, false);
    cr_assert_not_null(s);
    if (cl) {
        broker_client_init(b, cl);
        cl->state = CLIENT_CONNECTED;
        cl->version = MQTT_V311;
        cl->_sess = s;
        s->client = cl;
    }
    return s;
}

/* Detach @cl from @s and forget its buffers (it was never a connection). */
static void detach(struct session *s, struct client *cl)
{
    s->client = NULL;
    cl->_sess = NULL;
    output_unlink(b, cl);
    obuf_free(&cl->out);
    free(cl->_v5);
    cl->_v5 = NULL;
}

/* Attach a fresh MQTT 5.0 client @cl to @s, with Maximum Packet Size and Receive Maximum. */
static void attach_v5(struct session *s, struct client *cl, uint32_t max_packet, uint16_t recv_max)
{
    broker_client_init(b, cl);
    cl->state = CLIENT_CONNECTED;
    cl->version = MQTT_V5;
    cl->_v5 = calloc(1, sizeof(*cl->_v5));
    cr_assert_not_null(cl->_v5);
    cl->_v5->max_packet = max_packet;
    cl->_v5->recv_max = recv_max;
    cl->_sess = s;
    s->client = cl;
}

static void sess_free(struct session *s)
{
    cr_assert_null(s->client);
    session_free(b, s, NULL, NULL);
}

static struct msg *mk(const char *topic, const char *payload, uint8_t qos)
{
    struct msg *m = msg_new((const uint8_t *)topic, strlen(topic), NULL, 0,
                            (const uint8_t *)payload, strlen(payload), qos, false);
    cr_assert_not_null(m);
    m->home_shard = 0;
    return m;
}

/* Deliver a new message to @s at @qos and drop the test's reference. */
static void deliver(struct session *s, const char *topic, const char *payload, uint8_t qos)
{
    struct msg *m = mk(topic, payload, qos);
    session_deliver(b, s, m, qos, false, 0, NULL, 0);
    outbox_msg_put(b, m);
}

/* The next packet for @cl must be a PUBLISH of @payload at @qos; returns its packet id. */
static uint16_t expect_pub(struct client *cl, const char *payload, uint8_t qos, bool dup)
{
    struct got g;
    cr_assert(next_out(cl, &g), "no PUBLISH %s", payload);
    cr_assert_eq(g.pkt.type, MQTT_PUBLISH);
    struct mqtt_publish *p = &g.pkt.u.publish;
    cr_assert_eq(p->payload.len, strlen(payload));
    cr_assert(memcmp(p->payload.ptr, payload, p->payload.len) == 0, "wrong payload");
    cr_assert_eq(p->qos, qos);
    cr_assert_eq(p->dup, dup, "DUP %d, want %d", p->dup, dup);
    return p->pkt_id;
}

Test(session, first_subscriber_of_a_filter_is_reported_for_other_shards)
{
    struct session *s1 = sess_new("a", NULL), *s2 = sess_new("b", NULL);
    uint32_t first = 0;
    cr_assert_eq(session_subscribe(b, s1, (const uint8_t *)"x/+", 3, 1, 0, &first), 1);
    cr_assert_eq(first, 1);
    cr_assert_eq(session_subscribe(b, s2, (const uint8_t *)"x/+", 3, 1, 0, &first), 1);
    cr_assert_eq(first, 0, "a second session's filter is not new to the shard");
    cr_assert_eq(trie_count(b->trie), 2);
    cr_assert(session_unsubscribe(b, s1, (const uint8_t *)"x/+", 3));
    cr_assert_not(session_unsubscribe(b, s1, (const uint8_t *)"x/+", 3));
    cr_assert_eq(s1->sub_count, 0);
    sess_free(s1);
    sess_free(s2);
    cr_assert_eq(trie_count(b->trie), 0, "freeing a session leaves the trie");
}

Test(session, a_shared_groups_member_count_is_reported_on_every_change)
{
    /* Other shards weigh this shard's members by their count (issue 13). */
    struct session *s1 = sess_new("a", NULL), *s2 = sess_new("b", NULL);
    const uint8_t *f = (const uint8_t *)"$share/g/t";
    uint32_t members = 99;
    cr_assert_eq(session_subscribe(b, s1, f, 10, 1, 0, &members), 1);
    cr_assert_eq(members, 1);
    cr_assert_eq(session_subscribe(b, s2, f, 10, 1, 0, &members), 1);
    cr_assert_eq(members, 2, "a second member is news to the other shards");
    cr_assert_eq(session_subscribe(b, s2, f, 10, 2, 0, &members), 1);
    cr_assert_eq(members, 0, "a replace changes no count");
    cr_assert(session_unsubscribe(b, s1, f, 10));
    cr_assert_eq(share_member_count(b->share, f, 10), 1);
    sess_free(s1);
    sess_free(s2);
    cr_assert_eq(share_group_count(b->share), 0);
}

Test(session, same_filter_again_replaces_the_subscription)
{
    /* [MQTT-3.8.4-3]: replaced, not added; fresh until a connection settles it. */
    struct session *s = sess_new("a", NULL);
    uint32_t first;
    cr_assert_eq(session_subscribe(b, s, (const uint8_t *)"t", 1, 0, 0, &first), 1);
    cr_assert_eq(session_subscribe(b, s, (const uint8_t *)"t", 1, 2, 5, &first), 1);
    cr_assert_eq(s->sub_count, 1);
    cr_assert_eq(s->subs[0].options, 2);
    cr_assert_eq(s->subs[0].sub_id, 5);
    session_settle(s);
    cr_assert_eq(session_subscribe(b, s, (const uint8_t *)"t", 1, 1, 0, &first), 0);
    cr_assert_eq(s->subs[0].sub_id, 0);
    sess_free(s);
}

Test(session, subscriptions_are_bounded_by_subs_per_client_max)
{
    lim.subs_per_client_max = 2;
    struct session *s = sess_new("a", NULL);
    uint32_t first;
    cr_assert_eq(session_subscribe(b, s, (const uint8_t *)"a", 1, 0, 0, &first), 1);
    cr_assert_eq(session_subscribe(b, s, (const uint8_t *)"b", 1, 0, 0, &first), 1);
    cr_assert_eq(session_subscribe(b, s, (const uint8_t *)"c", 1, 0, 0, &first), -ENOSPC);
    sess_free(s);
}

/* The next packet for @cl: a PUBLISH of @payload whose Subscription Identifiers are @want. */
static uint16_t expect_pub_ids(struct client *cl, const char *payload, bool dup,
                               const uint32_t *want, uint32_t n)
{
    struct got g;
    cr_assert(next_out(cl, &g), "no PUBLISH %s", payload);
    cr_assert_eq(g.pkt.type, MQTT_PUBLISH);
    cr_assert_eq(g.pkt.u.publish.payload.len, strlen(payload));
    cr_assert(memcmp(g.pkt.u.publish.payload.ptr, payload, strlen(payload)) == 0);
    cr_assert_eq(g.pkt.u.publish.dup, dup);
    struct mqtt_prop_iter it;
    struct mqtt_prop pr;
    uint32_t got = 0;
    mqtt_prop_iter_init(&it, &g.pkt.u.publish.props);
    while (mqtt_prop_next(&it, &pr)) {
        if (pr.id != MQTT_PROP_SUBSCRIPTION_ID)
            continue;
        cr_assert_lt(got, n, "%s: more identifiers than %u", payload, n);
        cr_assert_eq(pr.num, want[got], "%s: identifier %u is %u, want %u", payload, got,
                     (uint32_t)pr.num, want[got]);
        got++;
    }
    cr_assert_eq(got, n, "%s: %u identifiers, want %u", payload, got, n);
    return g.pkt.u.publish.pkt_id;
}

Test(session, identifiers_stay_with_a_message_that_waits_in_the_queue_or_window)
{
    /*
     * [MQTT-3.3.4-3, -4]: the identifiers a delivery came with go out with
     * it, also when it waited offline, and again on a DUP resend; two or
     * more are kept in an array of their own (freed with it: ASan checks).
     */
    lim.inflight_max = 1;
    struct session *s = sess_new("a", NULL);
    static const uint32_t two[] = {7, 268435455};
    static const uint32_t three[] = {1, 2, 3};
    static const uint32_t one[] = {9};
    struct msg *m1 = mk("t", "two", 1), *m2 = mk("t", "one", 1), *m3 = mk("t", "none", 2);
    struct msg *m4 = mk("t", "three", 2), *m5 = mk("t", "lost", 1);
    session_deliver(b, s, m1, 1, false, 0, two, 2);
    session_deliver(b, s, m2, 1, false, 42, one, 1);
    session_deliver(b, s, m3, 2, false, 0, NULL, 0);
    session_deliver(b, s, m4, 2, false, 0, three, 3);
    session_deliver(b, s, m5, 1, false, 0, three, 2);
    cr_assert_eq(s->queue_count, 5);
    cr_assert_eq(s->queue[s->queue_head].sub_id, SESSION_SUB_IDS_MANY);
    cr_assert_eq(s->queue[(s->queue_head + 1) % s->queue_cap].sub_id, 9, "one: in the entry");
    cr_assert_eq(s->queue[(s->queue_head + 1) % s->queue_cap].via.share_key, 42);

    struct client cl;
    attach_v5(s, &cl, UINT32_MAX, 1);
    cr_assert_eq(session_resume(b, s), 0);
    uint16_t id = expect_pub_ids(&cl, "two", false, two, 2);
    expect_none(&cl);
    /* The connection drops before the PUBACK: the DUP carries them again. */
    detach(s, &cl);
    struct client cl2;
    attach_v5(s, &cl2, UINT32_MAX, 1);
    cr_assert_eq(session_resume(b, s), 0);
    cr_assert_eq(expect_pub_ids(&cl2, "two", true, two, 2), id);
    cr_assert_eq(session_on_puback(b, s, id), 0);
    id = expect_pub_ids(&cl2, "one", false, one, 1);
    cr_assert_eq(session_on_puback(b, s, id), 0);
    id = expect_pub_ids(&cl2, "none", false, NULL, 0);
    cr_assert_eq(session_on_pubrec(b, s, id, 0), 1); /* PUBREL due (core/broker sends it) */
    expect_none(&cl2);
    cr_assert_eq(session_on_pubcomp(b, s, id), 0);
    id = expect_pub_ids(&cl2, "three", false, three, 3);
    /* PUBREC releases the message and its identifiers; the session ends holding the rest. */
    cr_assert_eq(session_on_pubrec(b, s, id, 0), 1); /* PUBREL due (core/broker sends it) */
    expect_none(&cl2);
    cr_assert_eq(s->inflight[0].sub_id, 0);
    detach(s, &cl2);
    outbox_msg_put(b, m1);
    outbox_msg_put(b, m2);
    outbox_msg_put(b, m3);
    outbox_msg_put(b, m4);
    outbox_msg_put(b, m5);
    sess_free(s);
}

Test(session, offline_keeps_qos1_and_drops_qos0)
{
    struct session *s = sess_new("a", NULL);
    deliver(s, "t", "zero", 0);
    deliver(s, "t", "one", 1);
    cr_assert_eq(s->queue_count, 1);
    cr_assert_eq(b->stats.msgs_dropped, 1);
    sess_free(s);
}

Test(session, a_full_queue_refuses_and_counts)
{
    lim.queued_max = 3;
    struct session *s = sess_new("a", NULL);
    for (int i = 0; i < 5; i++)
        deliver(s, "t", "m", 1);
    cr_assert_eq(s->queue_count, 3);
    cr_assert_eq(b->stats.queue_full, 2);
    sess_free(s);
}

Test(session, online_delivery_fills_the_window_then_queues_in_order)
{
    lim.inflight_max = 2;
    struct client cl;
    struct session *s = sess_new("a", &cl);
    deliver(s, "t", "1", 1);
    deliver(s, "t", "2", 1);
    deliver(s, "t", "3", 1);
    uint16_t id1 = expect_pub(&cl, "1", 1, false);
    uint16_t id2 = expect_pub(&cl, "2", 1, false);
    expect_none(&cl);
    cr_assert_neq(id1, id2, "packet ids in use are unique [MQTT-2.3.1-2]");
    cr_assert_eq(s->inflight_count, 2);
    cr_assert_eq(s->queue_count, 1);
    /* An acknowledgement frees a slot: the queued one goes out. */
    cr_assert_eq(session_on_puback(b, s, id1), 0);
    expect_pub(&cl, "3", 1, false);
    cr_assert_eq(s->queue_count, 0);
    /* An unknown id is ignored. */
    cr_assert_eq(session_on_puback(b, s, 999), 0);
    cr_assert_eq(s->inflight_count, 2);
    detach(s, &cl);
    sess_free(s);
}

Test(session, qos2_outbound_flow_releases_the_message_at_pubrec)
{
    /* [MQTT-4.3.3-1]: PUBREC -> PUBREL, the message is no longer held; PUBCOMP ends it. */
    struct client cl;
    struct session *s = sess_new("a", &cl);
    deliver(s, "t", "two", 2);
    uint16_t id = expect_pub(&cl, "two", 2, false);
    cr_assert_eq(session_on_pubrec(b, s, id, 0), 1); /* PUBREL due (core/broker sends it) */
    expect_none(&cl);
    cr_assert_null(s->inflight[0].msg);
    cr_assert_eq(s->inflight[0].state, SESSION_WAIT_PUBCOMP);
    /* A repeated PUBREC is due a PUBREL again. */
    cr_assert_eq(session_on_pubrec(b, s, id, 0), 1); /* PUBREL due (core/broker sends it) */
    expect_none(&cl);
    cr_assert_eq(session_on_pubcomp(b, s, id), 0);
    cr_assert_eq(s->inflight_count, 0);
    detach(s, &cl);
    sess_free(s);
}

Test(session, pubrec_with_an_error_code_ends_the_flow_without_pubrel)
{
    struct client cl;
    struct session *s = sess_new("a", &cl);
    deliver(s, "t", "two", 2);
    uint16_t id = expect_pub(&cl, "two", 2, false);
    cr_assert_eq(session_on_pubrec(b, s, id, MQTT_RC_UNSPECIFIED), 0);
    expect_none(&cl);
    cr_assert_eq(s->inflight_count, 0);
    detach(s, &cl);
    sess_free(s);
}

Test(session, inbound_qos2_duplicates_and_bound)
{
    /* [MQTT-4.3.3-2]: a resent id is not new until PUBREL releases it. */
    lim.inflight_in_max = 2;
    struct session *s = sess_new("a", NULL);
    cr_assert_eq(session_qos2_in_add(b, s, 1), 1);
    cr_assert_eq(session_qos2_in_add(b, s, 1), 0);
    cr_assert_eq(session_qos2_in_add(b, s, 2), 1);
    cr_assert_eq(session_qos2_in_add(b, s, 3), -MQTT_RC_RECEIVE_MAX_EXCEEDED);
    session_on_pubrel(b, s, 1);
    cr_assert_eq(session_qos2_in_add(b, s, 1), 1);
    sess_free(s);
}

Test(session, resume_resends_in_order_with_dup_within_receive_maximum)
{
    /* [MQTT-4.4.0-1], [MQTT-3.3.4-9]: same order, DUP, no more than Receive Maximum. */
    struct client cl;
    struct session *s = sess_new("a", &cl);
    deliver(s, "t", "1", 1);
    deliver(s, "t", "2", 2);
    deliver(s, "t", "3", 1);
    uint16_t id1 = expect_pub(&cl, "1", 1, false);
    uint16_t id2 = expect_pub(&cl, "2", 2, false);
    uint16_t id3 = expect_pub(&cl, "3", 1, false);
    detach(s, &cl);

    struct client cl2;
    attach_v5(s, &cl2, UINT32_MAX, 2);
    cr_assert_eq(session_resume(b, s), 0);
    cr_assert_eq(expect_pub(&cl2, "1", 1, true), id1);
    cr_assert_eq(expect_pub(&cl2, "2", 2, true), id2);
    expect_none(&cl2);
    cr_assert_eq(session_on_puback(b, s, id1), 0);
    cr_assert_eq(expect_pub(&cl2, "3", 1, true), id3);
    detach(s, &cl2);
    sess_free(s);
}

Test(session, expired_messages_are_not_sent_and_expiry_counts_down)
{
    /* [MQTT-3.3.2-5] expired: not sent; [MQTT-3.3.2-6] the interval left is sent. */
    struct client cl;
    struct session *s = sess_new("a", NULL);
    deliver(s, "t", "old", 1);
    struct msg *m = mk("t", "new", 1);
    m->expiry_ms = 10000 + 1;
    session_deliver(b, s, m, 1, false, 0, NULL, 0);
    outbox_msg_put(b, m);
    s->queue[0].msg->expiry_ms = 3000; /* "old" expires at 3 s */
    broker_tick(b, 4000);

    attach_v5(s, &cl, UINT32_MAX, 10);
    cr_assert_eq(session_resume(b, s), 0);
    struct got g;
    cr_assert(next_out(&cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_PUBLISH);
    cr_assert(memcmp(g.pkt.u.publish.payload.ptr, "new", 3) == 0, "the expired one was sent");
    cr_assert(g.pkt.u.publish.props.has & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY));
    cr_assert_eq(g.pkt.u.publish.props.message_expiry, 6);
    expect_none(&cl);
    cr_assert_eq(b->stats.msgs_expired, 1);
    detach(s, &cl);
    sess_free(s);
}

Test(session, too_large_for_the_client_is_dropped_as_delivered)
{
    /* [MQTT-3.1.2-25]: over the client's Maximum Packet Size, not sent. */
    struct client cl;
    struct session *s = sess_new("a", &cl);
    cl.version = MQTT_V5;
    cl._v5 = calloc(1, sizeof(*cl._v5));
    cr_assert_not_null(cl._v5);
    cl._v5->max_packet = 20;
    cl._v5->recv_max = 10;
    deliver(s, "t", "a payload longer than twenty bytes", 1);
    deliver(s, "t", "ok", 1);
    expect_pub(&cl, "ok", 1, false);
    expect_none(&cl);
    cr_assert_eq(b->stats.msgs_too_large, 1);
    cr_assert_eq(s->inflight_count, 1, "the dropped one holds no slot");
    detach(s, &cl);
    sess_free(s);
}

/* A give function that takes every message (counting them) or none. */
struct give_log {
    bool take;
    int given;
};

static bool give(void *ctx, struct msg *m, uint64_t key, const struct session *from)
{
    struct give_log *log = ctx;
    cr_assert_not_null(m);
    cr_assert_eq(key, 42);
    cr_assert_not_null(from);
    log->given += log->take;
    return log->take;
}

Test(session, shared_messages_go_back_except_qos2_once_sent)
{
    /* [MQTT-4.8.2-4, -5]: QoS 2 once sent stays; QoS 1 unacknowledged and queued go. */
    lim.inflight_max = 2;
    struct client cl;
    struct session *s = sess_new("a", &cl);
    struct msg *m1 = mk("t", "1", 1), *m2 = mk("t", "2", 2), *m3 = mk("t", "3", 1);
    session_deliver(b, s, m2, 2, false, 42, NULL, 0);
    session_deliver(b, s, m1, 1, false, 42, NULL, 0);
    session_deliver(b, s, m3, 1, false, 42, NULL, 0);
    deliver(s, "t", "own", 1); /* the session's own subscription: not given back */
    cr_assert_eq(s->inflight_count, 2);
    cr_assert_eq(s->queue_count, 2);
    detach(s, &cl);

    struct give_log refuse = {.take = false};
    session_share_redispatch(b, s, give, &refuse);
    cr_assert_eq(s->inflight_count, 2, "refused: kept");
    cr_assert_eq(s->queue_count, 2);

    struct give_log take = {.take = true};
    session_share_redispatch(b, s, give, &take);
    cr_assert_eq(take.given, 2, "the QoS 1 in flight and the queued shared one");
    cr_assert_eq(s->inflight_count, 1);
    cr_assert_eq(s->inflight[0].state, SESSION_WAIT_PUBREC, "the QoS 2 one");
    cr_assert_eq(s->queue_count, 1);
    cr_assert_eq(s->queue[(s->queue_head) % s->queue_cap].via.share_key, 0);
    outbox_msg_put(b, m1);
    outbox_msg_put(b, m2);
    outbox_msg_put(b, m3);
    sess_free(s);
}

Test(session, packet_ids_skip_those_in_flight)
{
    /* [MQTT-2.3.1-2]: wrapping at 65535 never reuses an id still in flight. */
    struct client cl;
    struct session *s = sess_new("a", &cl);
    deliver(s, "t", "a", 1);
    uint16_t first = expect_pub(&cl, "a", 1, false);
    s->next_pkt_id = first; /* as if the counter wrapped around */
    deliver(s, "t", "b", 1);
    uint16_t second = expect_pub(&cl, "b", 1, false);
    cr_assert_neq(second, first);
    cr_assert_neq(second, 0);
    detach(s, &cl);
    sess_free(s);
}

Test(session, resume_drops_what_the_new_connection_cannot_take)
{
    /* [MQTT-3.1.2-25] on a resend: too large for the new Maximum Packet Size. */
    struct client cl;
    struct session *s = sess_new("a", &cl);
    deliver(s, "t", "a payload longer than twenty bytes", 1);
    expect_pub(&cl, "a payload longer than twenty bytes", 1, false);
    detach(s, &cl);
    struct client cl2;
    attach_v5(s, &cl2, 20, 10);
    cr_assert_eq(session_resume(b, s), 0);
    expect_none(&cl2);
    cr_assert_eq(s->inflight_count, 0, "dropped as if delivered");
    cr_assert_eq(b->stats.msgs_too_large, 1);
    detach(s, &cl2);
    sess_free(s);
}

/* ------------------------------------------------------------ access control */

/* An ACL of one rule "@filter allow|deny all" for @access, then default @dflt. */
static struct acl *acl_one(const char *filter, uint8_t access, bool allow, bool dflt)
{
    struct acl *a = acl_new();
    unsigned bad_line;
    const char *bad_name;
    struct acl_rule_spec r = {.filter = filter, .filter_len = strlen(filter), .access = access,
                              .allow = allow, .who = ACL_WHO_ALL};
    cr_assert_not_null(a);
    cr_assert_eq(acl_rule_add(a, &r), 0);
    acl_set_default(a, dflt);
    cr_assert_eq(acl_finish(a, &bad_line, &bad_name), 0);
    return a;
}

static bool may_pub(struct session *s, const char *t)
{
    return session_acl_publish(b, s, (const uint8_t *)t, strlen(t));
}

Test(session, publish_verdict_cache_stays_right_past_its_slots_and_across_a_new_acl)
{
    struct acl *deny_x = acl_one("x/#", ACL_PUBLISH, false, true);
    struct acl *deny_y = acl_one("y/#", ACL_PUBLISH, false, true);
    struct session *s =
        session_new((const uint8_t *)"c", 1, 0, SESSION_EXPIRY_NEVER, NULL, 0, true);
    char t[32];

    cr_assert_not_null(s);
    broker_set_acl(b, deny_x);
    /* Three rounds over 40 topics: 8 slots, so hits, misses and evictions all happen. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 40; i++) {
            snprintf(t, sizeof(t), "%c/%d", i % 2 ? 'x' : 'y', i);
            cr_assert_eq(may_pub(s, t), i % 2 == 0, "%s round %d", t, round);
        }
    }
    /* A new ACL (a reload): a new generation, so no verdict of the old one is reused. */
    broker_set_acl(b, deny_y);
    cr_assert(may_pub(s, "x/1"));
    cr_assert_not(may_pub(s, "y/0"));
    /* A session made without room (no ACL then) is still checked, uncached. */
    struct session *old =
        session_new((const uint8_t *)"o", 1, 0, SESSION_EXPIRY_NEVER, NULL, 0, false);
    cr_assert_not(may_pub(old, "y/0"));
    cr_assert(may_pub(old, "x/0"));
    broker_set_acl(b, NULL);
    cr_assert(may_pub(s, "y/0"), "no ACL: everything allowed");
    session_free(b, s, NULL, NULL);
    session_free(b, old, NULL, NULL);
    acl_free(deny_x);
    acl_free(deny_y);
}

Test(session, a_new_acl_sets_and_clears_the_check_bit_of_each_subscription)
{
    struct acl *some = acl_one("a/secret", ACL_SUBSCRIBE | ACL_READ, false, true);
    struct acl *open = acl_one("zzz", ACL_PUBLISH, false, true);
    struct session *s =
        session_new((const uint8_t *)"c", 1, 0, SESSION_EXPIRY_NEVER, NULL, 0, true);
    uint32_t announce;

    cr_assert_not_null(s);
    broker_set_acl(b, open);
    cr_assert_eq(session_acl_class(b, s, (const uint8_t *)"a/#", 3), ACL_SUB_ALL);
    cr_assert_eq(session_subscribe(b, s, (const uint8_t *)"a/#", 3, 1, 0, &announce), 1);
    broker_set_acl(b, some); /* walks this shard's sessions: s is in no table, so by hand */
    session_acl_reclass(b, s);
    cr_assert_eq(session_acl_class(b, s, (const uint8_t *)"a/#", 3), ACL_SUB_SOME);
    cr_assert(s->subs[0].options & SESSION_SUBOPT_ACL_CHECK);
    cr_assert_eq(s->subs[0].options & MQTT_SUBOPT_QOS, 1, "the QoS is kept");
    cr_assert_not(session_acl_read(b, s, (const uint8_t *)"a/secret", 8, 0));
    cr_assert(session_acl_read(b, s, (const uint8_t *)"a/open", 6, 0));
    broker_set_acl(b, open);
    session_acl_reclass(b, s);
    cr_assert_not(s->subs[0].options & SESSION_SUBOPT_ACL_CHECK);
    broker_set_acl(b, NULL);
    session_free(b, s, NULL, NULL);
    acl_free(some);
    acl_free(open);
}

Test(session, each_listener_has_its_acl_and_a_move_or_reload_forgets_the_verdicts)
{
    /* Listener 0 denies publishing x/#, listener 1 allows it and denies reading a/secret. */
    struct acl *deny_x = acl_one("x/#", ACL_PUBLISH, false, true);
    struct acl *some = acl_one("a/secret", ACL_SUBSCRIBE | ACL_READ, false, true);
    const struct acl *per[2] = {deny_x, some};
    struct session *s =
        session_new((const uint8_t *)"c", 1, 0, SESSION_EXPIRY_NEVER, NULL, 0, true);
    struct session *t =
        session_new((const uint8_t *)"d", 1, 0, SESSION_EXPIRY_NEVER, NULL, 0, true);
    uint32_t announce;

    cr_assert_not_null(s);
    cr_assert_not_null(t);
    broker_set_acls(b, per, 2);
    t->listener = 1;
    /* The same topic, the same moment: allowed on one listener, denied on the other. */
    cr_assert_not(may_pub(s, "x/1"), "listener 0's ACL");
    cr_assert(may_pub(t, "x/1"), "listener 1's ACL");
    cr_assert_eq(session_subscribe(b, s, (const uint8_t *)"a/#", 3, 1, 0, &announce), 1);
    cr_assert_not(s->subs[0].options & SESSION_SUBOPT_ACL_CHECK);
    /* Taken over from listener 1: its verdict on x/1 (cached: denied) is not reused. */
    session_acl_move(b, s, 1);
    cr_assert(may_pub(s, "x/1"), "the cache is keyed by the ACL");
    cr_assert(s->subs[0].options & SESSION_SUBOPT_ACL_CHECK, "classed under listener 1's ACL");
    cr_assert_not(session_acl_read(b, s, (const uint8_t *)"a/secret", 8, 0));
    /* Back, then a reload that swaps the two: the generation changes, verdicts go. */
    session_acl_move(b, s, 0);
    cr_assert_not(s->subs[0].options & SESSION_SUBOPT_ACL_CHECK);
    cr_assert_not(may_pub(s, "x/1"));
    const struct acl *swapped[2] = {some, deny_x};
    broker_set_acls(b, swapped, 2);
    session_acl_reclass(b, s); /* broker_set_acls() walks the table: s is in none */
    cr_assert(may_pub(s, "x/1"), "listener 0 now has the other ACL");
    cr_assert_not(may_pub(t, "x/1"));
    cr_assert(s->subs[0].options & SESSION_SUBOPT_ACL_CHECK);
    /* A listener with no ACL allows everything, whatever the others say. */
    const struct acl *one[2] = {deny_x, NULL};
    broker_set_acls(b, one, 2);
    cr_assert(may_pub(t, "x/1"));
    cr_assert(b->acl_on);
    broker_set_acl(b, NULL);
    cr_assert_not(b->acl_on);
    session_free(b, s, NULL, NULL);
    session_free(b, t, NULL, NULL);
    acl_free(deny_x);
    acl_free(some);
}
