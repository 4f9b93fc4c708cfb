/*
 * port_owner.h - which process holds a TCP port, for the message when a
 * listener's bind fails with EADDRINUSE. Best effort, from /proc: the
 * listening socket's inode in /proc/net/tcp and tcp6, then the process
 * whose /proc/PID/fd has that socket (only processes this user may look
 * into: another user's, root's included, stay unknown unless ringmq runs
 * as root).
 *
 * Start-up thread only (it reads /proc, which may take a while on a host
 * with many processes; never on a shard's loop).
 */
#ifndef RINGMQ_PORT_OWNER_H
#define RINGMQ_PORT_OWNER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Find the process listening on TCP @port (any address). Returns its pid
 * and its name (/proc/PID/comm) in @name, or 0 when it cannot be told (no
 * listening socket found, or its process is not visible to this user);
 * -1 when a listening socket was found but not its process.
 */
pid_t port_owner_find(uint16_t port, char *name, size_t name_cap);

#endif
