/*
 * lg_ws.c - the WebSocket transports: MQTT over RFC 6455, on plain TCP (ws)
 * or on TLS (wss); see lg_ws.h and lg_transport_types.h.
 *
 * open() sends the HTTP/1.1 upgrade (GET --ws-path, Sec-WebSocket-Protocol:
 * mqtt, a random Sec-WebSocket-Key) over the lower transport once that is
 * open, and checks the 101 answer, Sec-WebSocket-Accept (SHA-1 + base64 by
 * wolfSSL) included. Then:
 *
 *   send()  puts the caller's bytes in one masked binary frame (a fresh mask
 *           per frame) in the connection's output buffer and writes it; when
 *           the socket takes only part, the frame stays and the next send()
 *           (which by the transport contract starts with the same bytes)
 *           continues it, reporting payload bytes as the frame goes out.
 *   recv()  reads raw bytes into the caller's buffer and unframes them in
 *           place: payload moves left over the headers, so no per-connection
 *           input buffer is needed; only an incomplete frame header or
 *           control frame (< 128 bytes) is carried to the next call.
 *           Binary and continuation frames make the stream (fragmented
 *           messages are joined; MQTT packets may cross frames); a ping is
 *           answered with a pong carrying its payload; a close is answered
 *           with a close and ends the stream; a text frame is an error
 *           [MQTT-6.0.0-1]; so is anything RFC 6455 forbids a server to send.
 *   close() sends a close frame (1000) where the stream is open, then
 *           closes the lower transport.
 *
 * The configuration (path, Host) is set by setup() on the main thread and
 * read-only afterwards; each connection's state is its worker's alone.
 */
#include "perf/lg_ws.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha.h>

#include "core/rm_assert.h"
#include "perf/lg_tcp.h"
#include "perf/lg_tls.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_HTTP_MAX 8192u        /* the server's upgrade answer, head and all */
#define WS_REQUEST_MAX 1024u     /* our upgrade request */
#define WS_FRAME_MAX (64u << 10) /* payload bytes per frame we send */
#define WS_OUT_KEEP 16384u       /* larger output buffers are freed when drained */
#define WS_OUT_MIN 256u
#define WS_CARRY_MAX 128u     /* > 2 + 125: an incomplete control frame, or a header */
#define WS_HS_READS_MAX 8u    /* lower reads per open() call while the answer comes */
#define WS_CLOSE_NORMAL 1000u /* status code [RFC 6455 7.4.1] */

enum ws_phase {
    WSP_LOWER = 0, /* the lower transport's own handshake (TLS) */
    WSP_REQUEST,   /* sending the upgrade request */
    WSP_RESPONSE,  /* reading the 101 answer */
    WSP_OPEN,
    WSP_CLOSED, /* a close frame was received: the stream has ended */
};

/* One connection. */
struct ws {
    const struct lg_transport *lower; /* tcp or tls */
    struct lg_tconn low;
    uint8_t phase;
    bool in_message; /* a fragmented data message has begun */
    bool close_sent;
    bool data_pending;   /* out holds a data frame not yet all reported to the caller */
    uint8_t carry_len;   /* bytes of an incomplete frame kept for the next recv */
    uint64_t frame_left; /* payload bytes of the current incoming data frame still to come */
    uint64_t rng;        /* masks; xorshift64*, seeded from getrandom */

    uint8_t *out; /* whole frames, written from out_off */
    uint32_t out_off;
    uint32_t out_len;
    uint32_t out_cap;
    uint32_t data_start; /* the pending data frame's payload: out[data_start, +data_len) */
    uint32_t data_len;
    uint32_t data_done; /* of it, reported to the caller as sent */

    char *hs; /* the upgrade answer while it comes, then any bytes after it */
    uint32_t hs_len;
    uint32_t hs_off;

    char accept[LG_WS_ACCEPT_CHARS + 1];
    uint8_t carry[WS_CARRY_MAX];
};

/* Set by setup() on the main thread; read-only while workers run. */
static const struct lg_transport_cfg *ws_cfg;

/* ---------------------------------------------------------------- pure pieces */

int lg_ws_accept(const char *key, char out[LG_WS_ACCEPT_CHARS + 1])
{
    char cat[LG_WS_KEY_CHARS + sizeof(WS_GUID)];
    byte sha[WC_SHA_DIGEST_SIZE];
    byte b64[LG_WS_ACCEPT_CHARS + 4];
    word32 b64_len = sizeof(b64);
    int n;

    RM_ASSERT(key != NULL && out != NULL);
    n = snprintf(cat, sizeof(cat), "%s%s", key, WS_GUID);
    RM_ASSERT(n > 0 && (size_t)n < sizeof(cat));
    if (wc_ShaHash((const byte *)cat, (word32)n, sha) != 0 ||
        Base64_Encode_NoNl(sha, sizeof(sha), b64, &b64_len) != 0 || b64_len != LG_WS_ACCEPT_CHARS) {
        return -EINVAL;
    }
    memcpy(out, b64, LG_WS_ACCEPT_CHARS);
    out[LG_WS_ACCEPT_CHARS] = '\0';
    return 0;
}

int lg_ws_frame_parse(const uint8_t *buf, size_t len, struct lg_ws_frame *f)
{
    uint64_t n;
    uint8_t op;
    int hdr = 2;
    int i;

    RM_ASSERT(f != NULL);
    RM_ASSERT(buf != NULL || len == 0);
    if (len < 2) {
        return 0;
    }
    op = buf[0] & 0x0f;
    if ((buf[0] & 0x70) != 0 || (buf[1] & 0x80) != 0) {
        return -EPROTO; /* reserved bits; a masked frame from the server */
    }
    if (op != LG_WS_CONT && op != LG_WS_TEXT && op != LG_WS_BINARY && op != LG_WS_CLOSE &&
        op != LG_WS_PING && op != LG_WS_PONG) {
        return -EPROTO;
    }
    n = buf[1] & 0x7f;
    if (n == 126) {
        if (len < 4) {
            return 0;
        }
        n = (uint64_t)buf[2] << 8 | buf[3];
        if (n < 126) {
            return -EPROTO;
        }
        hdr = 4;
    } else if (n == 127) {
        if (len < 10) {
            return 0;
        }
        n = 0;
        for (i = 2; i < 10; i++) {
            n = n << 8 | buf[i];
        }
        if (n <= 0xffff || (n >> 63) != 0) {
            return -EPROTO;
        }
        hdr = 10;
    }
    if (op >= LG_WS_CLOSE && ((buf[0] & 0x80) == 0 || n > LG_WS_CONTROL_MAX)) {
        return -EPROTO;
    }
    f->opcode = op;
    f->fin = (buf[0] & 0x80) != 0;
    f->len = n;
    return hdr;
}

size_t lg_ws_frame_header(uint8_t *out, uint8_t opcode, bool fin, uint64_t len,
                          const uint8_t mask[4])
{
    size_t h = 2;
    int i;

    RM_ASSERT(out != NULL && mask != NULL);
    RM_ASSERT((opcode & 0xf0) == 0 && (len >> 63) == 0);
    out[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        out[1] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        out[1] = 0x80 | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        h = 4;
    } else {
        out[1] = 0x80 | 127;
        for (i = 0; i < 8; i++) {
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        }
        h = 10;
    }
    memcpy(out + h, mask, 4);
    return h + 4;
}

void lg_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t at)
{
    size_t i;

    RM_ASSERT(p != NULL || n == 0);
    RM_ASSERT(mask != NULL);
    for (i = 0; i < n; i++) {
        p[i] ^= mask[(at + i) & 3];
    }
}

/* The value of header @name in the head [@p, @end), trimmed; false if absent. */
static bool header_find(const char *p, const char *end, const char *name, const char **v,
                        size_t *vlen)
{
    const size_t nlen = strlen(name);

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *s;
        const char *e;

        if (eol == NULL) {
            eol = end;
        }
        if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            s = p + nlen + 1;
            e = eol;
            while (s < e && (*s == ' ' || *s == '\t')) {
                s++;
            }
            while (e > s && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) {
                e--;
            }
            *v = s;
            *vlen = (size_t)(e - s);
            return true;
        }
        p = eol + 1;
    }
    return false;
}

/* True if the comma-separated list [@v, +@n) holds @token (any case). */
static bool has_token(const char *v, size_t n, const char *token)
{
    const size_t tlen = strlen(token);
    const char *end = v + n;

    while (v < end) {
        const char *comma = memchr(v, ',', (size_t)(end - v));
        const char *e = comma != NULL ? comma : end;
        const char *s = v;

        while (s < e && (*s == ' ' || *s == '\t')) {
            s++;
        }
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) {
            e--;
        }
        if ((size_t)(e - s) == tlen && strncasecmp(s, token, tlen) == 0) {
            return true;
        }
        v = comma != NULL ? comma + 1 : end;
    }
    return false;
}

int lg_ws_response_check(const char *resp, size_t len, const char *accept, const char **why)
{
    static const char status[] = "HTTP/1.1 101";
    const char *end = resp + len;
    const char *head;
    const char *v;
    size_t n;
    const char *w = NULL;

    RM_ASSERT(resp != NULL && accept != NULL);
    RM_ASSERT(strlen(accept) == LG_WS_ACCEPT_CHARS);
    if (len < sizeof(status) || memcmp(resp, status, sizeof(status) - 1) != 0 ||
        (resp[sizeof(status) - 1] != ' ' && resp[sizeof(status) - 1] != '\r')) {
        w = "the answer is not HTTP/1.1 101 Switching Protocols";
        goto out;
    }
    head = memchr(resp, '\n', len);
    head = head != NULL ? head + 1 : end;
    if (!header_find(head, end, "Upgrade", &v, &n) || !has_token(v, n, "websocket")) {
        w = "no 'Upgrade: websocket'";
    } else if (!header_find(head, end, "Connection", &v, &n) || !has_token(v, n, "upgrade")) {
        w = "no 'Connection: Upgrade'";
    } else if (!header_find(head, end, "Sec-WebSocket-Accept", &v, &n) || n != LG_WS_ACCEPT_CHARS ||
               memcmp(v, accept, n) != 0) {
        w = "Sec-WebSocket-Accept is missing or does not match the key";
    } else if (!header_find(head, end, "Sec-WebSocket-Protocol", &v, &n) || n != 4 ||
               memcmp(v, "mqtt", 4) != 0) {
        w = "the server did not select the subprotocol 'mqtt'";
    } else if (header_find(head, end, "Sec-WebSocket-Extensions", &v, &n)) {
        w = "the server chose an extension, but none was offered";
    }
out:
    if (why != NULL) {
        *why = w;
    }
    return w == NULL ? 0 : -EPROTO;
}

/* ---------------------------------------------------------------- connection state */

static uint32_t rng_next(struct ws *ws)
{
    uint64_t x = ws->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    ws->rng = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 32);
}

static void tell_once(const char *why)
{
    static atomic_bool told;

    if (!atomic_exchange(&told, true)) {
        fprintf(stderr, "ringmq-loadgen: WebSocket upgrade refused: %s\n", why);
    }
}

/* Room for @n more output bytes, or NULL. Output is compacted only when drained. */
static uint8_t *out_reserve(struct ws *ws, uint32_t n)
{
    uint32_t cap = ws->out_cap > 0 ? ws->out_cap : WS_OUT_MIN;
    uint8_t *nb;

    RM_ASSERT(ws->out_off <= ws->out_len);
    if (ws->out_len + n <= ws->out_cap) {
        return ws->out + ws->out_len;
    }
    while (cap < ws->out_len + n) {
        cap *= 2;
    }
    nb = realloc(ws->out, cap);
    if (nb == NULL) {
        return NULL;
    }
    ws->out = nb;
    ws->out_cap = cap;
    return ws->out + ws->out_len;
}

/* Append one masked frame carrying @n bytes of @payload. Returns 0 or -ENOMEM. */
static int frame_put(struct ws *ws, uint8_t opcode, const uint8_t *payload, uint32_t n)
{
    uint32_t m = rng_next(ws);
    uint8_t mask[4] = {(uint8_t)m, (uint8_t)(m >> 8), (uint8_t)(m >> 16), (uint8_t)(m >> 24)};
    uint8_t *p = out_reserve(ws, LG_WS_HEADER_MAX + n);
    size_t h;

    if (p == NULL) {
        return -ENOMEM;
    }
    h = lg_ws_frame_header(p, opcode, true, n, mask);
    memcpy(p + h, payload, n);
    lg_ws_mask(p + h, n, mask, 0);
    if (opcode == LG_WS_BINARY) {
        RM_ASSERT(!ws->data_pending);
        ws->data_start = ws->out_len + (uint32_t)h;
        ws->data_len = n;
        ws->data_done = 0;
        ws->data_pending = true;
    }
    ws->out_len += (uint32_t)h + n;
    return 0;
}

/* Write what out holds. Returns 1 when all is written, 0 when the socket is full, -errno. */
static int out_flush(struct ws *ws)
{
    while (ws->out_off < ws->out_len) {
        ssize_t n = ws->lower->send(&ws->low, ws->out + ws->out_off, ws->out_len - ws->out_off);

        if (n == -EAGAIN || n == -EWOULDBLOCK) {
            return 0;
        }
        if (n <= 0) {
            return n == 0 ? -EPIPE : (int)n;
        }
        ws->out_off += (uint32_t)n;
    }
    return 1;
}

/* Payload bytes of the pending data frame newly written since last reported. */
static uint32_t data_progress(struct ws *ws)
{
    uint32_t written;
    uint32_t fresh;

    if (!ws->data_pending) {
        return 0;
    }
    written = ws->out_off <= ws->data_start ? 0 : ws->out_off - ws->data_start;
    if (written > ws->data_len) {
        written = ws->data_len;
    }
    RM_ASSERT(written >= ws->data_done);
    fresh = written - ws->data_done;
    ws->data_done = written;
    if (ws->data_done == ws->data_len) {
        ws->data_pending = false;
    }
    return fresh;
}

/* Once out is drained and reported, start it over (and give back a big buffer). */
static void out_reset_if_drained(struct ws *ws)
{
    if (ws->out_off < ws->out_len || ws->data_pending) {
        return;
    }
    ws->out_off = 0;
    ws->out_len = 0;
    if (ws->out_cap > WS_OUT_KEEP) {
        free(ws->out);
        ws->out = NULL;
        ws->out_cap = 0;
    }
}

/* ---------------------------------------------------------------- handshake */

static int request_build(struct ws *ws)
{
    uint8_t rnd[16 + sizeof(uint64_t)];
    byte key[LG_WS_KEY_CHARS + 4];
    word32 key_len = sizeof(key);
    uint8_t *p;
    int n;

    RM_ASSERT(ws_cfg != NULL && ws_cfg->ws_path != NULL && ws_cfg->ws_host != NULL);
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        return -EIO;
    }
    memcpy(&ws->rng, rnd + 16, sizeof(ws->rng));
    ws->rng |= 1; /* xorshift must not start at 0 */
    if (Base64_Encode_NoNl(rnd, 16, key, &key_len) != 0 || key_len != LG_WS_KEY_CHARS) {
        return -EINVAL;
    }
    key[LG_WS_KEY_CHARS] = '\0';
    if (lg_ws_accept((const char *)key, ws->accept) < 0) {
        return -EINVAL;
    }
    p = out_reserve(ws, WS_REQUEST_MAX);
    if (p == NULL) {
        return -ENOMEM;
    }
    n = snprintf((char *)p, WS_REQUEST_MAX,
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Protocol: mqtt\r\n"
                 "\r\n",
                 ws_cfg->ws_path, ws_cfg->ws_host, (const char *)key);
    RM_ASSERT(n > 0 && (uint32_t)n < WS_REQUEST_MAX); /* lg_opts bounds the path */
    ws->out_len += (uint32_t)n;
    return 0;
}

/* Read the upgrade answer. Returns 1 when it is complete and good, 0 for more, -errno. */
static int response_read(struct ws *ws)
{
    const char *why = NULL;
    char *eoh;
    uint32_t head;
    uint32_t i;

    if (ws->hs == NULL) {
        ws->hs = malloc(WS_HTTP_MAX);
        if (ws->hs == NULL) {
            return -ENOMEM;
        }
        ws->hs_len = 0;
    }
    for (i = 0; i < WS_HS_READS_MAX && ws->hs_len < WS_HTTP_MAX; i++) {
        ssize_t n =
            ws->lower->recv(&ws->low, (uint8_t *)ws->hs + ws->hs_len, WS_HTTP_MAX - ws->hs_len);

        if (n == -EAGAIN || n == -EWOULDBLOCK) {
            break;
        }
        if (n <= 0) {
            return n == 0 ? -ECONNRESET : (int)n;
        }
        ws->hs_len += (uint32_t)n;
        if (!ws->low.rx_more) {
            break;
        }
    }
    eoh = memmem(ws->hs, ws->hs_len, "\r\n\r\n", 4);
    if (eoh == NULL) {
        if (ws->hs_len < WS_HTTP_MAX) {
            return 0;
        }
        tell_once("the answer's head is over 8 KiB");
        return -ECONNABORTED;
    }
    head = (uint32_t)(eoh - ws->hs) + 4;
    if (lg_ws_response_check(ws->hs, head, ws->accept, &why) < 0) {
        tell_once(why);
        return -ECONNABORTED;
    }
    ws->hs_off = head; /* frames the server sent right behind it are read first */
    if (ws->hs_off == ws->hs_len) {
        free(ws->hs);
        ws->hs = NULL;
    }
    return 1;
}

static int ws_open_over(struct lg_tconn *tc, const struct lg_transport *lower)
{
    struct ws *ws = tc->state;
    int r = 0;

    RM_ASSERT(tc->fd >= 0);
    if (ws == NULL) {
        ws = calloc(1, sizeof(*ws));
        if (ws == NULL) {
            return -ENOMEM;
        }
        ws->lower = lower;
        ws->low.fd = tc->fd;
        tc->state = ws;
    }
    RM_ASSERT(ws->lower == lower && ws->low.fd == tc->fd);
    switch (ws->phase) {
    case WSP_LOWER:
        r = lower->open(&ws->low);
        tc->want_out = ws->low.want_out;
        if (r <= 0) {
            break;
        }
        r = request_build(ws);
        if (r < 0) {
            break;
        }
        ws->phase = WSP_REQUEST;
        /* fall through */
    case WSP_REQUEST:
        r = out_flush(ws);
        tc->want_out = r == 0;
        if (r <= 0) {
            break;
        }
        out_reset_if_drained(ws);
        ws->phase = WSP_RESPONSE;
        /* fall through */
    case WSP_RESPONSE:
        r = response_read(ws);
        tc->want_out = false;
        if (r <= 0) {
            break;
        }
        ws->phase = WSP_OPEN;
        break;
    default:
        RM_ASSERT(false && "open() after the stream was open");
        break;
    }
    return r;
}

/* ---------------------------------------------------------------- the open stream */

/* Act on a whole control frame. Returns 0 or -errno. */
static int on_control(struct ws *ws, uint8_t opcode, const uint8_t *payload, uint32_t n)
{
    uint8_t code[2] = {WS_CLOSE_NORMAL >> 8, WS_CLOSE_NORMAL & 0xff};
    int r = 0;

    switch (opcode) {
    case LG_WS_PING:
        r = frame_put(ws, LG_WS_PONG, payload, n); /* the same application data [5.5.3] */
        break;
    case LG_WS_CLOSE:
        if (n == 1) {
            return -EPROTO; /* a status code is two bytes [5.5.1] */
        }
        if (n >= 2) {
            memcpy(code, payload, 2); /* echo the status code */
        }
        if (!ws->close_sent) {
            r = frame_put(ws, LG_WS_CLOSE, code, sizeof(code));
            ws->close_sent = true;
        }
        ws->phase = WSP_CLOSED;
        break;
    default: /* an unsolicited pong: nothing to do [5.5.3] */
        break;
    }
    if (r == 0 && ws->out_off < ws->out_len) {
        r = out_flush(ws);
        r = r < 0 ? r : 0;
    }
    return r;
}

/*
 * Unframe the @n raw bytes at @buf in place. Returns the payload bytes now at
 * the start of @buf, or -EPROTO/-errno. An incomplete frame at the end goes
 * to ws->carry.
 */
static ssize_t unframe(struct ws *ws, uint8_t *buf, size_t n)
{
    size_t rd = 0;
    size_t wr = 0;

    /* Every round consumes at least one byte (a header is 2 or more). */
    while (rd < n && ws->phase == WSP_OPEN) {
        struct lg_ws_frame f;
        int h;

        if (ws->frame_left > 0) {
            size_t k = n - rd < ws->frame_left ? n - rd : (size_t)ws->frame_left;

            memmove(buf + wr, buf + rd, k);
            wr += k;
            rd += k;
            ws->frame_left -= k;
            continue;
        }
        h = lg_ws_frame_parse(buf + rd, n - rd, &f);
        if (h < 0) {
            return h;
        }
        if (h == 0) {
            break;
        }
        if (f.opcode >= LG_WS_CLOSE) {
            int r;

            if (n - rd < (size_t)h + f.len) {
                break; /* the rest of the control frame comes later */
            }
            r = on_control(ws, f.opcode, buf + rd + h, (uint32_t)f.len);
            if (r < 0) {
                return r;
            }
            rd += (size_t)h + f.len;
            continue;
        }
        /* Data: binary, or a continuation exactly while a message is open. */
        if (f.opcode == LG_WS_TEXT || (f.opcode == LG_WS_CONT) != ws->in_message) {
            return -EPROTO;
        }
        ws->in_message = !f.fin;
        ws->frame_left = f.len;
        rd += (size_t)h;
    }
    if (ws->phase == WSP_OPEN && rd < n) {
        RM_ASSERT(n - rd < WS_CARRY_MAX); /* only a header or a control frame stops the loop */
        memcpy(ws->carry, buf + rd, n - rd);
        ws->carry_len = (uint8_t)(n - rd);
    }
    return (ssize_t)wr;
}

static ssize_t ws_recv(struct lg_tconn *tc, uint8_t *buf, size_t len)
{
    struct ws *ws = tc->state;
    size_t n = 0;
    ssize_t r;

    RM_ASSERT(ws != NULL && ws->phase >= WSP_OPEN);
    RM_ASSERT(buf != NULL && len >= LG_TRANSPORT_RECV_MIN);
    tc->rx_more = false;
    if (ws->phase == WSP_CLOSED) {
        return 0;
    }
    memcpy(buf, ws->carry, ws->carry_len);
    n = ws->carry_len;
    ws->carry_len = 0;
    if (ws->hs != NULL) {
        size_t k = ws->hs_len - ws->hs_off;

        k = k < len - n ? k : len - n;
        memcpy(buf + n, ws->hs + ws->hs_off, k);
        n += k;
        ws->hs_off += (uint32_t)k;
        if (ws->hs_off == ws->hs_len) {
            free(ws->hs);
            ws->hs = NULL;
        }
    } else {
        r = ws->lower->recv(&ws->low, buf + n, len - n);
        if (r <= 0) {
            if (r == -EAGAIN || r == -EWOULDBLOCK) {
                memcpy(ws->carry, buf, n); /* still incomplete */
                ws->carry_len = (uint8_t)n;
            }
            return r;
        }
        n += (size_t)r;
    }
    tc->rx_more = ws->low.rx_more || ws->hs != NULL;
    r = unframe(ws, buf, n);
    tc->want_out = ws->out_off < ws->out_len;
    if (r == 0) {
        return ws->phase == WSP_CLOSED ? 0 : -EAGAIN;
    }
    return r;
}

static ssize_t ws_send(struct lg_tconn *tc, const uint8_t *buf, size_t len)
{
    struct ws *ws = tc->state;
    uint32_t done;
    int r;

    RM_ASSERT(ws != NULL && ws->phase >= WSP_OPEN);
    RM_ASSERT(buf != NULL && len > 0);
    if (ws->phase != WSP_OPEN) {
        return -EPIPE;
    }
    if (ws->data_pending) {
        /* @buf starts with the rest of the frame in out: already framed and masked. */
        RM_ASSERT(len >= ws->data_len - ws->data_done);
    } else {
        r = out_flush(ws); /* control frames first, whole */
        if (r <= 0) {
            tc->want_out = r == 0;
            return r == 0 ? -EAGAIN : r;
        }
        out_reset_if_drained(ws);
        r = frame_put(ws, LG_WS_BINARY, buf, (uint32_t)(len < WS_FRAME_MAX ? len : WS_FRAME_MAX));
        if (r < 0) {
            return r;
        }
    }
    r = out_flush(ws);
    if (r < 0) {
        return r;
    }
    done = data_progress(ws);
    out_reset_if_drained(ws);
    tc->want_out = ws->out_off < ws->out_len;
    return done > 0 ? (ssize_t)done : -EAGAIN;
}

static int ws_flush(struct lg_tconn *tc)
{
    struct ws *ws = tc->state;
    int r;

    RM_ASSERT(ws != NULL);
    RM_ASSERT(!ws->data_pending); /* the worker has handed over all its bytes */
    r = out_flush(ws);
    if (r > 0) {
        out_reset_if_drained(ws);
    }
    tc->want_out = r == 0;
    return r;
}

static void ws_close(struct lg_tconn *tc)
{
    static const uint8_t code[2] = {WS_CLOSE_NORMAL >> 8, WS_CLOSE_NORMAL & 0xff};
    struct ws *ws = tc->state;

    RM_ASSERT(tc != NULL);
    if (ws == NULL) {
        return;
    }
    if (ws->phase == WSP_OPEN && !ws->close_sent && frame_put(ws, LG_WS_CLOSE, code, 2) == 0) {
        ws->close_sent = true;
        out_flush(ws); /* one try; never waits */
    }
    ws->lower->close(&ws->low);
    free(ws->out);
    free(ws->hs);
    free(ws);
    tc->state = NULL;
}

static int ws_open(struct lg_tconn *tc)
{
    return ws_open_over(tc, &lg_tcp_transport);
}

static int wss_open(struct lg_tconn *tc)
{
    return ws_open_over(tc, &lg_tls_transport);
}

static int ws_setup(const struct lg_transport_cfg *cfg)
{
    RM_ASSERT(cfg != NULL && cfg->ws_path != NULL);
    ws_cfg = cfg;
    return 0;
}

static void ws_cleanup(void)
{
    ws_cfg = NULL;
}

static int wss_setup(const struct lg_transport_cfg *cfg)
{
    ws_setup(cfg);
    return lg_tls_transport.setup(cfg);
}

static void wss_thread_done(void)
{
    lg_tls_transport.thread_done();
}

static void wss_cleanup(void)
{
    ws_cleanup();
    lg_tls_transport.cleanup();
}

const struct lg_transport lg_ws_transport = {
    .name = "ws",
    .setup = ws_setup,
    .cleanup = ws_cleanup,
    .thread_done = NULL,
    .open = ws_open,
    .recv = ws_recv,
    .send = ws_send,
    .flush = ws_flush,
    .close = ws_close,
};

const struct lg_transport lg_ws_tls_transport = {
    .name = "wss",
    .setup = wss_setup,
    .cleanup = wss_cleanup,
    .thread_done = wss_thread_done,
    .open = wss_open,
    .recv = ws_recv,
    .send = ws_send,
    .flush = ws_flush,
    .close = ws_close,
};
