/*
 * lg_sock.h - the socket under one load-generator connection: create it
 * non-blocking, bind its source address, register it with the worker's
 * epoll set, start the TCP connect, arm EPOLLOUT, read its error, close it.
 *
 * Owns nothing of its own; works on the socket fields of struct lg_conn
 * (tc.fd, LG_CONN_F_EPOLL, LG_CONN_F_OUT). Called by the worker thread that
 * owns the connection, and by lg_run.c on the main thread for connections
 * left open when a run is freed.
 */
#ifndef RINGMQ_LG_SOCK_H
#define RINGMQ_LG_SOCK_H

#include <stdbool.h>

#include "perf/lg_conn_types.h"
#include "perf/lg_opts.h"

/*
 * Open a socket for @c (which has none), register it with @epfd (readable
 * and writable) and connect it to @o's broker address, from the source
 * address --src-range gives @c. Returns 1 when the connect completed at
 * once, 0 while it is in progress (EPOLLOUT tells), or -errno; on error the
 * socket may be open already: the caller closes it as for any failure.
 */
int lg_sock_connect(const struct lg_opts *o, int epfd, struct lg_conn *c);

/* Arm (@on) or disarm EPOLLOUT on @c's socket; nothing if unchanged or not registered. */
void lg_sock_want_out(int epfd, struct lg_conn *c, bool on);

/*
 * Read @c's pending socket error (SO_ERROR, a positive errno or 0) into
 * @err. Returns 0, or -errno when it could not be read.
 */
int lg_sock_error(const struct lg_conn *c, int *err);

/* Close @c's socket (it also leaves the epoll set) and forget it. */
void lg_sock_close(struct lg_conn *c);

#endif
