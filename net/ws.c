/*
 * ws.c - WebSocket upgrade and frame codec (see ws.h).
 *
 * Any thread; pure (no syscalls, no allocation).
 */
#include "net/ws.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hash.h>

#include "core/rm_assert.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* Header lines looked at, at most: a bound on the parse loop over peer data. */
#define WS_HTTP_LINES_MAX 100u
/* Comma-separated tokens looked at in one header value, at most. */
#define WS_TOKENS_MAX 32u

size_t ws_http_head_len(const uint8_t *buf, size_t len)
{
    size_t i;

    RM_ASSERT(buf != NULL || len == 0);
    for (i = 3; i < len; i++) {
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
            return i + 1;
        }
    }
    return 0;
}

/* [p, end) trimmed of spaces and tabs at both ends. */
static void trim(const char **p, const char **end)
{
    while (*p < *end && (**p == ' ' || **p == '\t')) {
        (*p)++;
    }
    while (*end > *p && ((*end)[-1] == ' ' || (*end)[-1] == '\t')) {
        (*end)--;
    }
}

static bool span_is(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);

    return (size_t)(end - p) == n && strncasecmp(p, word, n) == 0;
}

/* Does the comma-separated list [p, end) hold @word (case-insensitive)? */
static bool list_has(const char *p, const char *end, const char *word)
{
    unsigned tokens = 0;

    while (p < end && tokens++ < WS_TOKENS_MAX) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *tok_end = comma != NULL ? comma : end;
        const char *tok = p;

        trim(&tok, &tok_end);
        if (span_is(tok, tok_end, word)) {
            return true;
        }
        p = comma != NULL ? comma + 1 : end;
    }
    return false;
}

static int refuse(struct ws_upgrade *up, int status, const char *why)
{
    up->status = status;
    up->why = why;
    return status;
}

/* The request line: "GET PATH HTTP/1.1". 0, or the refusal's status. */
static int parse_request_line(const char *p, const char *end, const char *path,
                              struct ws_upgrade *up)
{
    const char *sp1 = memchr(p, ' ', (size_t)(end - p));
    const char *sp2;
    const char *target_end;
    const char *query;

    if (sp1 == NULL) {
        return refuse(up, 400, "malformed request line");
    }
    sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
    if (sp2 == NULL || !span_is(sp2 + 1, end, "HTTP/1.1")) {
        return refuse(up, 400, "not an HTTP/1.1 request");
    }
    if (sp1 - p != 3 || memcmp(p, "GET", 3) != 0) {
        return refuse(up, 405, "method is not GET");
    }
    target_end = sp2;
    query = memchr(sp1 + 1, '?', (size_t)(sp2 - sp1 - 1));
    if (query != NULL) {
        target_end = query;
    }
    if ((size_t)(target_end - sp1 - 1) != strlen(path) ||
        memcmp(sp1 + 1, path, strlen(path)) != 0) {
        return refuse(up, 404, "no WebSocket endpoint at this path");
    }
    return 0;
}

/* What the headers said, before the verdict. */
struct ws_seen {
    bool host;
    bool upgrade;
    bool connection;
    bool version_13;
    bool version_other;
    bool key;
    bool protocols_offered;
    const char *protocol;
};

static void parse_header(const char *name, const char *name_end, const char *v,
                         const char *v_end, struct ws_seen *seen, struct ws_upgrade *up)
{
    trim(&v, &v_end);
    if (span_is(name, name_end, "Host")) {
        seen->host = true;
    } else if (span_is(name, name_end, "Upgrade")) {
        seen->upgrade = seen->upgrade || list_has(v, v_end, "websocket");
    } else if (span_is(name, name_end, "Connection")) {
        seen->connection = seen->connection || list_has(v, v_end, "upgrade");
    } else if (span_is(name, name_end, "Sec-WebSocket-Version")) {
        if (span_is(v, v_end, "13")) {
            seen->version_13 = true;
        } else {
            seen->version_other = true;
        }
    } else if (span_is(name, name_end, "Sec-WebSocket-Key")) {
        if ((size_t)(v_end - v) == WS_KEY_LEN && v[WS_KEY_LEN - 2] == '=' &&
            v[WS_KEY_LEN - 1] == '=' && !seen->key) {
            memcpy(up->key, v, WS_KEY_LEN);
            up->key[WS_KEY_LEN] = '\0';
            seen->key = true;
        }
    } else if (span_is(name, name_end, "Sec-WebSocket-Protocol")) {
        seen->protocols_offered = true;
        if (seen->protocol == NULL && list_has(v, v_end, "mqtt")) {
            seen->protocol = "mqtt";
        } else if (seen->protocol == NULL && list_has(v, v_end, "mqttv3.1")) {
            seen->protocol = "mqttv3.1";
        }
    }
}

int ws_upgrade_parse(const uint8_t *req, size_t len, const char *path, struct ws_upgrade *up)
{
    const char *p = (const char *)req;
    const char *end = p + len;
    struct ws_seen seen = {0};
    unsigned lines = 0;
    int rc;

    RM_ASSERT(req != NULL && path != NULL && up != NULL);
    memset(up, 0, sizeof(*up));
    for (; p < end && lines < WS_HTTP_LINES_MAX; lines++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end;
        const char *colon;

        if (nl == NULL || nl == p || nl[-1] != '\r') {
            return refuse(up, 400, "malformed header line");
        }
        line_end = nl - 1;
        if (line_end == p) {
            break; /* the blank line */
        }
        if (memchr(p, '\0', (size_t)(line_end - p)) != NULL) {
            return refuse(up, 400, "NUL byte in the request");
        }
        if (lines == 0) {
            rc = parse_request_line(p, line_end, path, up);
            if (rc != 0) {
                return rc;
            }
        } else {
            colon = memchr(p, ':', (size_t)(line_end - p));
            if (colon == NULL || colon == p) {
                return refuse(up, 400, "malformed header line");
            }
            parse_header(p, colon, colon + 1, line_end, &seen, up);
        }
        p = nl + 1;
    }
    if (lines == 0 || lines >= WS_HTTP_LINES_MAX) {
        return refuse(up, 400, lines == 0 ? "empty request" : "too many header lines");
    }
    if (!seen.upgrade || !seen.connection) {
        return refuse(up, 426, "not a WebSocket upgrade request");
    }
    if (!seen.version_13 || seen.version_other) {
        return refuse(up, 426, "Sec-WebSocket-Version is not 13");
    }
    if (!seen.host || !seen.key) {
        return refuse(up, 400, seen.host ? "missing or malformed Sec-WebSocket-Key"
                                          : "missing Host header");
    }
    if (seen.protocols_offered && seen.protocol == NULL) {
        return refuse(up, 400, "no subprotocol 'mqtt' offered");
    }
    up->protocol = seen.protocol;
    up->status = 101;
    return up->status;
}

static const char *status_text(int status)
{
    switch (status) {
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    default:
        return "Bad Request";
    }
}

size_t ws_upgrade_response(const struct ws_upgrade *up, char *out, size_t cap)
{
    char concat[WS_KEY_LEN + sizeof(WS_GUID)];
    unsigned char digest[WC_SHA_DIGEST_SIZE];
    unsigned char accept[32];
    word32 accept_len = sizeof(accept);
    int n;

    RM_ASSERT(up != NULL && out != NULL && cap >= WS_HTTP_RESPONSE_MAX);
    if (up->status != 101) {
        n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\n%sConnection: close\r\nContent-Length: 0\r\n\r\n",
                     up->status, status_text(up->status),
                     up->status == 426 ? "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                                       : "");
        RM_ASSERT(n > 0 && (size_t)n < cap);
        return (size_t)n;
    }
    memcpy(concat, up->key, WS_KEY_LEN);
    memcpy(concat + WS_KEY_LEN, WS_GUID, sizeof(WS_GUID) - 1);
    if (wc_ShaHash((const byte *)concat, (word32)(WS_KEY_LEN + sizeof(WS_GUID) - 1), digest) !=
            0 ||
        Base64_Encode_NoNl(digest, sizeof(digest), accept, &accept_len) != 0) {
        return 0;
    }
    RM_ASSERT(accept_len < sizeof(accept));
    n = snprintf(out, cap,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %.*s\r\n%s%s%s\r\n",
                 (int)accept_len, (const char *)accept,
                 up->protocol != NULL ? "Sec-WebSocket-Protocol: " : "",
                 up->protocol != NULL ? up->protocol : "", up->protocol != NULL ? "\r\n" : "");
    RM_ASSERT(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

void ws_rx_init(struct ws_rx *rx, uint64_t frame_max)
{
    RM_ASSERT(rx != NULL);
    memset(rx, 0, sizeof(*rx));
    rx->frame_max = frame_max;
}

/* Header bytes a frame needs, from its first two (0 if fewer than two are in). */
static size_t header_need(const struct ws_rx *rx)
{
    size_t need = 2;

    if (rx->hdr_len < 2) {
        return need;
    }
    if ((rx->hdr[1] & 0x7f) == 126) {
        need += 2;
    } else if ((rx->hdr[1] & 0x7f) == 127) {
        need += 8;
    }
    if (rx->hdr[1] & 0x80) {
        need += 4;
    }
    return need;
}

/* The header is complete in rx->hdr: check it and enter the payload. 0 or -WS_STATUS_*. */
static int header_done(struct ws_rx *rx)
{
    uint8_t b0 = rx->hdr[0];
    uint8_t b1 = rx->hdr[1];
    uint64_t len = b1 & 0x7f;
    size_t at = 2;
    size_t i;
    bool control;

    rx->fin = (b0 & 0x80) != 0;
    rx->opcode = b0 & 0x0f;
    control = (rx->opcode & 0x08) != 0;
    if (b0 & 0x70) {
        return -WS_STATUS_PROTOCOL; /* RSV bits: no extension was negotiated */
    }
    if (!(b1 & 0x80)) {
        return -WS_STATUS_PROTOCOL; /* client frames must be masked (RFC 6455 5.1) */
    }
    if (len == 126) {
        len = ((uint64_t)rx->hdr[2] << 8) | rx->hdr[3];
        at = 4;
    } else if (len == 127) {
        len = 0;
        for (i = 0; i < 8; i++) {
            len = (len << 8) | rx->hdr[2 + i];
        }
        at = 10;
        if (len >> 63) {
            return -WS_STATUS_PROTOCOL;
        }
    }
    memcpy(rx->mask, rx->hdr + at, 4);
    switch (rx->opcode) {
    case WS_OP_CONT:
        if (!rx->in_message) {
            return -WS_STATUS_PROTOCOL;
        }
        break;
    case WS_OP_BINARY:
        if (rx->in_message) {
            return -WS_STATUS_PROTOCOL;
        }
        break;
    case WS_OP_TEXT:
        return -WS_STATUS_UNSUPPORTED;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        break;
    default:
        return -WS_STATUS_PROTOCOL;
    }
    if (control && (!rx->fin || len > WS_CONTROL_BYTES_MAX)) {
        return -WS_STATUS_PROTOCOL;
    }
    if (!control && len > rx->frame_max) {
        return -WS_STATUS_TOO_BIG;
    }
    if (!control) {
        rx->in_message = !rx->fin;
    }
    rx->left = len;
    rx->mask_pos = 0;
    rx->ctl_len = 0;
    rx->in_payload = true;
    return 0;
}

static void unmask(struct ws_rx *rx, uint8_t *p, size_t n)
{
    size_t i;
    unsigned pos = rx->mask_pos;

    for (i = 0; i < n; i++) {
        p[i] ^= rx->mask[pos];
        pos = (pos + 1) & 3u;
    }
    rx->mask_pos = (uint8_t)pos;
}

/* A whole control frame is in rx->ctl: its event. 0 or -WS_STATUS_*. */
static int control_done(struct ws_rx *rx, struct ws_event *ev)
{
    uint16_t status;

    ev->data = rx->ctl;
    ev->len = rx->ctl_len;
    switch (rx->opcode) {
    case WS_OP_PING:
        ev->kind = WS_EV_PING;
        break;
    case WS_OP_PONG:
        ev->kind = WS_EV_PONG;
        break;
    default:
        RM_ASSERT(rx->opcode == WS_OP_CLOSE);
        ev->kind = WS_EV_CLOSE;
        ev->status = WS_STATUS_NONE;
        if (rx->ctl_len == 1) {
            return -WS_STATUS_PROTOCOL;
        }
        if (rx->ctl_len >= 2) {
            status = (uint16_t)((rx->ctl[0] << 8) | rx->ctl[1]);
            /* RFC 6455 7.4 and IANA's registry: 1000-1003, 1007-1014, 3000-4999 may be sent. */
            if (status < 1000 || (status > 1003 && status < 1007) ||
                (status > 1014 && status < 3000) || status > 4999) {
                return -WS_STATUS_PROTOCOL;
            }
            ev->status = status;
        }
        break;
    }
    return 0;
}

long ws_rx_next(struct ws_rx *rx, uint8_t *buf, size_t len, struct ws_event *ev)
{
    size_t used = 0;
    size_t n;
    int rc;

    RM_ASSERT(rx != NULL && ev != NULL);
    RM_ASSERT(buf != NULL || len == 0);
    memset(ev, 0, sizeof(*ev));
    if (len == 0) {
        return 0;
    }
    if (!rx->in_payload) {
        /* Gather the header: at most WS_FRAME_HDR_MAX bytes, some maybe from earlier calls. */
        while (used < len && rx->hdr_len < header_need(rx)) {
            rx->hdr[rx->hdr_len++] = buf[used++];
        }
        RM_ASSERT(rx->hdr_len <= WS_FRAME_HDR_MAX);
        if (rx->hdr_len < header_need(rx)) {
            return (long)used;
        }
        rc = header_done(rx);
        if (rc < 0) {
            return rc;
        }
        rx->hdr_len = 0;
    }
    n = len - used;
    if (n > rx->left) {
        n = (size_t)rx->left;
    }
    unmask(rx, buf + used, n);
    if (rx->opcode & 0x08) {
        RM_ASSERT(rx->ctl_len + n <= WS_CONTROL_BYTES_MAX);
        memcpy(rx->ctl + rx->ctl_len, buf + used, n);
        rx->ctl_len = (uint8_t)(rx->ctl_len + n);
    } else if (n > 0) {
        ev->kind = WS_EV_DATA;
        ev->data = buf + used;
        ev->len = n;
    }
    used += n;
    rx->left -= n;
    if (rx->left == 0) {
        rx->in_payload = false;
        if (rx->opcode & 0x08) {
            rc = control_done(rx, ev);
            if (rc < 0) {
                return rc;
            }
        }
    }
    RM_ASSERT(used > 0 && used <= len);
    return (long)used;
}

size_t ws_frame_header(uint8_t out[WS_FRAME_HDR_OUT_MAX], enum ws_opcode opcode, uint64_t len)
{
    size_t i;

    RM_ASSERT(out != NULL);
    RM_ASSERT((len >> 63) == 0);
    out[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (i = 0; i < 8; i++) {
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    }
    return 10;
}
