/*
 * port_owner.c - which process holds a TCP port, from /proc (see
 * port_owner.h). Start-up thread only.
 */
#include "net/port_owner.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TCP_LISTEN_STATE 0x0A          /* include/net/tcp_states.h: TCP_LISTEN */
#define PORT_OWNER_INODES_MAX 16       /* listening sockets on one port looked for */
#define PORT_OWNER_LINES_MAX 1000000u  /* lines of one /proc/net/tcp* file read */
#define PORT_OWNER_PIDS_MAX 1000000u   /* processes looked into */
#define PORT_OWNER_FDS_MAX 1048576u    /* descriptors of one process looked at */

/* Add the inodes of sockets listening on @port in @path (/proc/net/tcp or tcp6). */
static void listening_inodes(const char *path, uint16_t port, unsigned long *inodes,
                             size_t *count)
{
    char line[512];
    unsigned lines = 0;
    FILE *f = fopen(path, "re");

    if (f == NULL) {
        return;
    }
    /* "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode" */
    while (fgets(line, sizeof(line), f) != NULL && lines++ < PORT_OWNER_LINES_MAX &&
           *count < PORT_OWNER_INODES_MAX) {
        char local[64];
        unsigned lport;
        unsigned state;
        unsigned long inode;
        char *colon;

        if (sscanf(line, " %*s %63s %*s %x %*s %*s %*s %*s %*s %lu", local, &state, &inode) !=
            3) {
            continue; /* the header line */
        }
        colon = strrchr(local, ':');
        if (colon == NULL || sscanf(colon + 1, "%x", &lport) != 1) {
            continue;
        }
        if (state == TCP_LISTEN_STATE && lport == port && inode != 0) {
            inodes[(*count)++] = inode;
        }
    }
    fclose(f);
}

/* True if process @pid has one of @inodes among its descriptors. */
static bool has_socket(const char *pid, const unsigned long *inodes, size_t count)
{
    char dir_path[300];
    char link_path[600];
    char target[64];
    unsigned fds = 0;
    struct dirent *e;
    bool found = false;
    DIR *d;

    snprintf(dir_path, sizeof(dir_path), "/proc/%s/fd", pid);
    d = opendir(dir_path);
    if (d == NULL) {
        return false; /* gone, or not ours to look into */
    }
    while (!found && (e = readdir(d)) != NULL && fds++ < PORT_OWNER_FDS_MAX) {
        unsigned long inode;
        ssize_t n;

        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(link_path, sizeof(link_path), "%s/%s", dir_path, e->d_name);
        n = readlink(link_path, target, sizeof(target) - 1);
        if (n <= 0) {
            continue;
        }
        target[n] = '\0';
        if (sscanf(target, "socket:[%lu]", &inode) != 1) {
            continue;
        }
        for (size_t i = 0; i < count; i++) {
            if (inodes[i] == inode) {
                found = true;
            }
        }
    }
    closedir(d);
    return found;
}

pid_t port_owner_find(uint16_t port, char *name, size_t name_cap)
{
    unsigned long inodes[PORT_OWNER_INODES_MAX];
    size_t count = 0;
    unsigned pids = 0;
    struct dirent *e;
    pid_t owner = -1;
    DIR *proc;

    name[0] = '\0';
    listening_inodes("/proc/net/tcp", port, inodes, &count);
    listening_inodes("/proc/net/tcp6", port, inodes, &count);
    if (count == 0) {
        return 0;
    }
    proc = opendir("/proc");
    if (proc == NULL) {
        return -1;
    }
    while (owner < 0 && (e = readdir(proc)) != NULL && pids++ < PORT_OWNER_PIDS_MAX) {
        if (!isdigit((unsigned char)e->d_name[0])) {
            continue;
        }
        if (has_socket(e->d_name, inodes, count)) {
            char comm_path[300];
            FILE *f;

            owner = (pid_t)strtol(e->d_name, NULL, 10);
            snprintf(comm_path, sizeof(comm_path), "/proc/%s/comm", e->d_name);
            f = fopen(comm_path, "re");
            if (f != NULL) {
                if (fgets(name, (int)name_cap, f) != NULL) {
                    name[strcspn(name, "\n")] = '\0';
                }
                fclose(f);
            }
        }
    }
    closedir(proc);
    return owner;
}
