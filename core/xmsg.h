/*
 * xmsg.h - the cross-shard message: what one shard tells another.
 *
 * Shards share nothing mutable; they talk only through SPSC rings (net/spsc)
 * of these fixed-size, by-value messages, one ring per ordered pair of shards.
 * core/ produces and consumes the routing kinds (broker_next_xmsg(),
 * broker_xmsg_receive()); net/ produces and consumes the connection and
 * control kinds.
 *
 * THREADING: a message is written by the sending shard and read by the
 * receiving shard; after a push the sender never touches what it pushed
 * (the pointed-to msg, filter bytes or handoff bytes now belong to the
 * receiver, except that a msg is only ever freed by the shard that built it).
 */
#ifndef RINGMQ_XMSG_H
#define RINGMQ_XMSG_H

#include <stdint.h>

struct msg;
struct xport;

/* XMSG_PUBLISH's arg: deliver to the plain subscribers, and the count of more keys. */
#define XMSG_PUBLISH_PLAIN 0x80000000u
/*
 * XMSG_PUBLISH's arg: the last of its keys (key, then more[]) is not a
 * group's but the origin's wait token: acknowledge it (XMSG_ACK) once
 * what this message left here is durable (core/wal.h).
 */
#define XMSG_PUBLISH_TOKEN 0x40000000u
#define XMSG_PUBLISH_MORE 0x0000ffffu

enum xmsg_kind {
    XMSG_NONE = 0,
    /* core/ routing kinds */
    XMSG_PUBLISH,       /* publish: a message's one crossing to a shard (see below) */
    XMSG_MSG_FREE,      /* msg: the last reference was dropped remotely; free it */
    /*
     * buf: filter the sender's sessions now subscribe to; arg: 1, or for a
     * shared group "$share/g/f" its member count there, sent on every change
     * (the group's shards are weighed by it); XMSG_ACK if token.
     */
    XMSG_INTEREST_ADD,
    XMSG_INTEREST_DEL,  /* buf: filter the sender's sessions no longer subscribe to; arg 0 */
    XMSG_RETAIN_SET,    /* retain: set/clear, sent to the topic's home shard; arg = origin */
    XMSG_RETAIN_APPLY,  /* retain: set/clear the home ordered; arg = origin (replica.h) */
    XMSG_ACK,           /* retain.token: done (retained applied, interest added); to the origin */
    XMSG_NACK,          /* retain.token: its promise cannot be kept (wait_fail()); to the origin */
    XMSG_SHARE_PUBLISH, /* share: msg for one member of shared group key; arg = hops */
    /* net/ kinds */
    XMSG_CONN_HANDOFF, /* conn: a connection whose CONNECT is the receiver's; arg: its listener */
    XMSG_SHUTDOWN,     /* stop: close connections and leave the loop */
    /*
     * ptr[0]: a reload's new live snapshot (net/live.h), owned by shard 0:
     * apply it, then answer XMSG_RELOAD_DONE; never free it.
     */
    XMSG_RELOAD,
    XMSG_RELOAD_DONE, /* ptr[0]: the snapshot the sender now uses; to shard 0 */
    XMSG_WAL_COMPACT, /* compact the write-ahead log now (SIGUSR1 on shard 0) */
    /*
     * ptr[0]: an admin socket command (struct admin_job, net/admin_job.h)
     * for the receiver to run; it answers XMSG_ADMIN_DONE with the same
     * job, filled in. The job belongs to whoever holds the message.
     */
    XMSG_ADMIN,
    XMSG_ADMIN_DONE, /* ptr[0]: the job, answered; to shard 0 */
};

struct xmsg {
    uint32_t kind; /* enum xmsg_kind */
    uint32_t arg;  /* small kind-specific argument; 0 if unused */
    union {
        struct msg *msg;
        /*
         * XMSG_PUBLISH, the one crossing of a message to a shard: to its
         * plain subscribers there (arg & XMSG_PUBLISH_PLAIN), and to one
         * member of each shared group chosen there: @key, then the
         * (arg & XMSG_PUBLISH_MORE) keys at @more.
         */
        struct {
            struct msg *msg; /* first, so payload.msg reads it too */
            uint64_t key;    /* a shared group's key (share_key()); 0 = none */
            uint64_t *more;  /* malloc'd, the receiver frees it; NULL if none */
        } publish;
        struct {
            struct msg *msg; /* first, so payload.msg reads it too */
            uint64_t token;  /* the origin's wait for every replica; 0 = none */
        } retain;
        struct {
            struct msg *msg; /* first, so payload.msg reads it too */
            uint64_t key;    /* the shared group's key (share_key()) */
            /*
             * The sender's wait (fsync = always): acknowledge it (XMSG_ACK)
             * once what this message left here, and wherever it was passed
             * on from here, is durable; 0 = none.
             */
            uint64_t token;
        } share;
        struct {
            uint8_t *ptr; /* malloc'd; the receiver frees it */
            uint32_t len;
            uint64_t token; /* XMSG_INTEREST_ADD: the sender waits for an XMSG_ACK; 0 = no */
        } buf;
        struct {
            uint8_t *bytes; /* MQTT bytes read so far (from the CONNECT on); receiver frees */
            uint32_t len;
            int32_t fd;
            struct xport *xport; /* TLS / WebSocket state (net/xport); NULL: plain TCP */
        } conn;
        void *ptr[3];
        uint64_t u64[3];
        uint32_t u32[6];
        unsigned char bytes[24];
    } payload;
};

_Static_assert(sizeof(struct xmsg) == 32, "struct xmsg must stay 32 bytes");

#endif
