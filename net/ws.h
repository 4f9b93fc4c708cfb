/*
 * ws.h - WebSocket (RFC 6455) server side: the HTTP/1.1 upgrade and the
 * frame codec, for MQTT over WebSocket (MQTT 5.0 section 6).
 *
 * Pure: no syscalls, no allocation, no clock. The caller (net/xport) owns
 * every buffer; this module parses and builds bytes in them. That keeps it
 * fuzzable without a socket (tests/fuzz/fuzz_ws_frame.c) and lets the frame
 * decoder unmask payloads in place, in the receive buffer they arrived in,
 * so MQTT bytes reach the broker without a copy.
 *
 * Upgrade: ws_upgrade_parse() takes one whole request head (up to and
 * including the blank line) and either accepts it (101: key, subprotocol) or
 * names the HTTP status of the refusal and a reason for the log:
 * 400 malformed or missing header, 404 another path, 405 not GET,
 * 426 not an upgrade to websocket, or another Sec-WebSocket-Version (the
 * answer then carries Sec-WebSocket-Version: 13). A client that offers
 * subprotocols must offer "mqtt" (or the MQTT 3.1 "mqttv3.1"); one that
 * offers none is accepted too (some MQTT.js and browser clients send none).
 *
 * Frames: struct ws_rx is one connection's incremental decoder. Each call of
 * ws_rx_next() consumes bytes and reports at most one event: payload bytes
 * of a binary message (already unmasked, pointing into the caller's buffer),
 * a complete control frame (ping, pong, close; their payload is at most 125
 * bytes and is gathered in the decoder when it arrives split), or a protocol
 * violation with its close status: 1002 (unmasked frame, reserved bits or
 * opcodes, fragmented control frame, continuation without a message, new
 * message inside one, a close frame with a status that may not be sent),
 * 1003 (a text frame: MQTT is binary only [MQTT-6.0.0-1]), 1009 (a frame
 * longer than the limit). Frame boundaries mean nothing to MQTT: one
 * packet may span frames and one frame may hold several packets.
 *
 * Any thread; a struct ws_rx belongs to its connection's shard.
 */
#ifndef RINGMQ_WS_H
#define RINGMQ_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A request head larger than this is refused (431) before its end is found. */
#define WS_HTTP_BYTES_MAX 8192u
/* Room ws_upgrade_response() needs, whatever it answers. */
#define WS_HTTP_RESPONSE_MAX 512u
/* Longest frame header: 2 + 8 (64-bit length) + 4 (mask). */
#define WS_FRAME_HDR_MAX 14u
/* Longest header of a server frame (unmasked): 2 + 8. */
#define WS_FRAME_HDR_OUT_MAX 10u
/* Control frames carry at most this many payload bytes (RFC 6455 5.5). */
#define WS_CONTROL_BYTES_MAX 125u
/* Sec-WebSocket-Key: base64 of 16 bytes. */
#define WS_KEY_LEN 24u

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xa,
};

/* Close status codes used here (RFC 6455 7.4.1). */
enum ws_status {
    WS_STATUS_NORMAL = 1000,
    WS_STATUS_GOING_AWAY = 1001,
    WS_STATUS_PROTOCOL = 1002,
    WS_STATUS_UNSUPPORTED = 1003,
    WS_STATUS_NONE = 1005, /* never sent: a close frame without a status */
    WS_STATUS_TOO_BIG = 1009,
};

/* The outcome of parsing an upgrade request. */
struct ws_upgrade {
    int status;                /* 101 accepted, else the HTTP status to answer */
    const char *why;           /* refusals: a short reason for the log (static) */
    char key[WS_KEY_LEN + 1];  /* 101: the client's Sec-WebSocket-Key */
    const char *protocol;      /* 101: the subprotocol to echo, or NULL (static) */
};

/*
 * Find the end of an HTTP request head in @buf[0..@len): returns the number
 * of bytes up to and including the "\r\n\r\n", or 0 if it is not there yet.
 */
size_t ws_http_head_len(const uint8_t *buf, size_t len);

/*
 * Parse the request head @req[0..@len) (as measured by ws_http_head_len(),
 * not NUL-terminated; borrowed until return) for an upgrade on @path. Fills
 * @up and returns up->status.
 */
int ws_upgrade_parse(const uint8_t *req, size_t len, const char *path, struct ws_upgrade *up);

/*
 * Write the answer to @up into @out (@cap >= WS_HTTP_RESPONSE_MAX): the 101
 * with Sec-WebSocket-Accept (SHA-1 and base64 by wolfCrypt) or the refusal,
 * which asks the client to close ("Connection: close"). Returns its length,
 * or 0 when hashing fails (then refuse the connection without an answer).
 */
size_t ws_upgrade_response(const struct ws_upgrade *up, char *out, size_t cap);

/* One connection's frame decoder; zero it (ws_rx_init) before the first call. */
struct ws_rx {
    uint64_t left;        /* payload bytes of the current frame still to come */
    uint64_t frame_max;   /* longest payload accepted in one frame */
    uint8_t hdr[WS_FRAME_HDR_MAX];
    uint8_t hdr_len;      /* header bytes gathered; 0 between frames */
    uint8_t opcode;       /* of the current frame */
    bool fin;             /* of the current frame */
    bool in_message;      /* a binary message has begun and not finished */
    bool in_payload;      /* header complete: now in the payload */
    uint8_t mask[4];
    uint8_t mask_pos;     /* index into mask of the next payload byte */
    uint8_t ctl_len;      /* control payload gathered in ctl */
    uint8_t ctl[WS_CONTROL_BYTES_MAX];
};

enum ws_event_kind {
    WS_EV_DATA = 1, /* data/len: payload of a binary message */
    WS_EV_PING,     /* data/len: the ping's payload (answer with a pong carrying it) */
    WS_EV_PONG,     /* ignored by the caller */
    WS_EV_CLOSE,    /* status: the peer's status (WS_STATUS_NONE when it sent none) */
};

struct ws_event {
    enum ws_event_kind kind;
    const uint8_t *data; /* DATA: into the caller's buffer; PING: into the decoder */
    size_t len;
    uint16_t status;
};

/* Prepare @rx for a new connection, accepting frames of at most @frame_max bytes. */
void ws_rx_init(struct ws_rx *rx, uint64_t frame_max);

/*
 * Decode from @buf[0..@len) (writable: payloads are unmasked in place).
 * Returns the number of bytes consumed (> 0) with *@ev set when an event
 * happened (ev->kind != 0), 0 when @len is 0, or -WS_STATUS_* for a
 * violation (the caller sends a close frame with that status and closes).
 * Call again with the rest until all is consumed. After WS_EV_CLOSE the
 * caller stops decoding.
 */
long ws_rx_next(struct ws_rx *rx, uint8_t *buf, size_t len, struct ws_event *ev);

/*
 * Write a server frame header (FIN set, unmasked) for @opcode and a payload
 * of @len bytes into @out. Returns the header's length (2, 4 or 10).
 */
size_t ws_frame_header(uint8_t out[WS_FRAME_HDR_OUT_MAX], enum ws_opcode opcode, uint64_t len);

#endif
