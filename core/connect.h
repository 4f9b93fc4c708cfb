/*
 * connect.h - a client's session binding: CONNECT (client id, homing,
 * takeover, clean start, wills, v5 properties), the AUTH exchange,
 * DISCONNECT, and a client leaving (detach, will, session end or expiry).
 *
 * This is where an authentication check (password, certificate identity)
 * belongs: in connect_on_connect(), before the session is touched.
 * Packet handlers return 0, or what output_close()/connect_refuse()
 * returned (the client is closing), or CLIENT_FEED_HANDOFF. Calls
 * deadline, route, sess_table, session, output and auth. Owned by one
 * shard; single-threaded.
 */
#ifndef RINGMQ_CONNECT_H
#define RINGMQ_CONNECT_H

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct client;
struct mqtt_ack;
struct mqtt_connect;

/*
 * CONNECT @c from @cl (state CLIENT_NEW); @raw/@raw_len: the whole packet,
 * kept if an AUTH exchange must finish first.
 */
int connect_on_connect(struct broker *b, struct client *cl, const struct mqtt_connect *c,
                       const uint8_t *raw, uint32_t raw_len);

/* AUTH @a: continues a CONNECT's exchange, or a re-authentication (section 4.12). */
int connect_on_auth(struct broker *b, struct client *cl, const struct mqtt_ack *a);

/* DISCONNECT @d: returns 1 (CLIENT_FEED_CLOSE), or an error as output_close(). */
int connect_on_disconnect(struct broker *b, struct client *cl, const struct mqtt_ack *d);

/* Refuse a CONNECT with a CONNACK reason code @rc (< 0), then close [MQTT-3.2.2-5, 3.2.2-7]. */
int connect_refuse(struct broker *b, struct client *cl, int rc);

/*
 * @cl's connection is gone: detach its session (kept, or ended when its
 * expiry is 0), publish its will or start its delay, and free what the
 * connection negotiated. The caller frees the client's buffers.
 */
void connect_leave(struct broker *b, struct client *cl);

/*
 * The process is stopping and @cl's session ends with it (sessions live in
 * memory): publish @cl's will now, whatever its delay [MQTT-3.1.2-8,
 * MQTT-3.1.3-9], so subscribers still connected get it before the server
 * closes them. True if there was one; the later connect_leave() then has
 * none to send.
 */
bool connect_will_now(struct broker *b, struct client *cl);

#endif
