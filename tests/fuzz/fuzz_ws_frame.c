/*
 * fuzz_ws_frame.c - libFuzzer target: any bytes as what a WebSocket client
 * sends to a ws listener.
 *
 * The first byte picks how the rest is cut into reads (so split request
 * heads, frame headers and payloads are all reached); the rest goes through
 * net/xport exactly as a connection's received bytes do: the upgrade
 * request (net/ws's HTTP parser, up to 8 KiB gathered), then frames
 * (unmasking in place, control frames, fragmentation, limits) with the MQTT
 * payload bytes delivered to a sink. It must never crash, hang, leak or read
 * out of bounds; every MQTT byte delivered must be a byte of the input after
 * unmasking, the transport's output must start with an HTTP status line and
 * stay within its bound (pongs to a peer that never reads), and once a read
 * is refused nothing more may be delivered.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/rm_assert.h"
#include "net/xport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Frames larger than this are refused (1009): small, so the limit is reached. */
#define FUZZ_FRAME_MAX 4096u
/* Output held for the wire, at most (plus the slack): pings without reads reach it. */
#define FUZZ_OUT_MAX 1024u

struct sink_state {
    size_t delivered;
    bool closed;
};

static int sink(void *arg, const uint8_t *bytes, size_t len)
{
    struct sink_state *st = arg;

    RM_ASSERT(!st->closed);
    RM_ASSERT(bytes != NULL && len > 0);
    st->delivered += len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config_listener lcfg;
    struct sink_state st = {0};
    struct xport_stats stats = {0};
    struct xport_sink s = {.fn = sink, .arg = &st, .scratch = NULL};
    struct xport *xp;
    uint8_t *copy;
    size_t step;
    size_t off;
    int err;
    int ret = 0;

    if (size < 1) {
        return 0;
    }
    lcfg.protocol = CONFIG_PROTO_WEBSOCKETS;
    memcpy(lcfg.ws_path, "/mqtt", 6);
    step = (size_t)data[0] + 1;
    data++;
    size--;
    xp = xport_new(&lcfg, NULL, FUZZ_FRAME_MAX, FUZZ_OUT_MAX, &err);
    RM_ASSERT(xp != NULL && err == 0);
    /* The transport unmasks in place: give it a writable copy, as the ring's buffers are. */
    copy = malloc(size > 0 ? size : 1);
    RM_ASSERT(copy != NULL);
    memcpy(copy, data, size);
    for (off = 0; off < size && ret == 0; off += step) {
        size_t n = size - off < step ? size - off : step;

        ret = xport_recv(xp, copy + off, n, &s, &stats);
        if (ret < 0) {
            st.closed = true;
        }
    }
    RM_ASSERT(st.delivered <= size);
    RM_ASSERT(xp->tx.len <= FUZZ_OUT_MAX + XPORT_TX_SLACK_BYTES);
    if (xp->tx.len > 0) {
        RM_ASSERT(xp->tx.len >= 12 && memcmp(xp->tx.data, "HTTP/1.1 ", 9) == 0);
    }
    RM_ASSERT(stats.ws_upgrades + stats.ws_refused <= 1);
    xport_free(xp);
    free(copy);
    return 0;
}
