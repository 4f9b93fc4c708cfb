/*
 * lg_ws.h - the ws and wss transports (RFC 6455 over lg_tcp or lg_tls), and
 * their WebSocket client pieces as pure functions the self-test can check on
 * their own.
 *
 * The transports follow lg_transport_types.h: setup()/cleanup() on the main
 * thread, everything else on the worker thread that owns the connection. The
 * helpers touch only their arguments; any thread may call them.
 */
#ifndef RINGMQ_LG_WS_H
#define RINGMQ_LG_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "perf/lg_transport_types.h"

#define LG_WS_KEY_CHARS 24u    /* base64 of the 16-byte Sec-WebSocket-Key nonce */
#define LG_WS_ACCEPT_CHARS 28u /* base64 of a SHA-1 */
#define LG_WS_HEADER_MAX 14u   /* 2 + 8 (64-bit length) + 4 (mask) */
#define LG_WS_CONTROL_MAX 125u /* payload of a control frame [RFC 6455 5.5] */

enum lg_ws_opcode {
    LG_WS_CONT = 0x0,
    LG_WS_TEXT = 0x1,
    LG_WS_BINARY = 0x2,
    LG_WS_CLOSE = 0x8,
    LG_WS_PING = 0x9,
    LG_WS_PONG = 0xA,
};

/* MQTT over WebSocket on plain TCP ("ws"). */
extern const struct lg_transport lg_ws_transport;
/* MQTT over WebSocket on TLS ("wss"). */
extern const struct lg_transport lg_ws_tls_transport;

/* A frame header as lg_ws_frame_parse() reads it. */
struct lg_ws_frame {
    uint8_t opcode; /* enum lg_ws_opcode */
    bool fin;
    uint64_t len; /* payload bytes */
};

/*
 * Sec-WebSocket-Accept for @key (LG_WS_KEY_CHARS characters, NUL-terminated):
 * base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), written with a
 * NUL to @out. Returns 0, or -EINVAL if wolfSSL fails.
 */
int lg_ws_accept(const char *key, char out[LG_WS_ACCEPT_CHARS + 1]);

/*
 * Parse the header of a frame from the server at @buf (@len bytes). Returns
 * its size (2..10) and fills @f; 0 when more bytes are needed; -EPROTO when
 * the frame is invalid for a client to receive: masked [RFC 6455 5.1], a
 * reserved bit or opcode set (no extension was negotiated), a control frame
 * fragmented or over 125 bytes, a length not in its shortest form or with
 * the top bit set [5.2].
 */
int lg_ws_frame_parse(const uint8_t *buf, size_t len, struct lg_ws_frame *f);

/*
 * Write the header of a masked client frame [RFC 6455 5.2] to @out (room for
 * LG_WS_HEADER_MAX bytes). Returns its size (6..14).
 */
size_t lg_ws_frame_header(uint8_t *out, uint8_t opcode, bool fin, uint64_t len,
                          const uint8_t mask[4]);

/* XOR @n bytes at @p with @mask, the first of them being payload byte @at. */
void lg_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t at);

/*
 * Check the server's answer to the upgrade request: @resp is the response
 * head, @len bytes up to and including the blank line. It must be
 * "HTTP/1.1 101", with Upgrade: websocket, a Connection header holding the
 * token "upgrade", Sec-WebSocket-Accept equal to @accept and
 * Sec-WebSocket-Protocol "mqtt" [MQTT-6.0.0-4] (header names and the
 * Upgrade/Connection values compared without case). Returns 0 or -EPROTO,
 * with @why (when not NULL) set to a static explanation.
 */
int lg_ws_response_check(const char *resp, size_t len, const char *accept, const char **why);

#endif
