/*
 * lg_proc.c - /proc sampling of the broker under test; see lg_proc.h.
 *
 * Main thread only; holds no state between calls.
 */
#include "perf/lg_proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rm_assert.h"

/* Fields after the command name; utime and stime are the 14th and 15th overall. */
#define STAT_FIELD_UTIME 14
#define STAT_FIELD_STIME 15
#define PROC_TEXT_MAX 16384

/* Read a whole small /proc file into @buf (NUL-terminated). Returns bytes or -errno. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    ssize_t n;
    ssize_t ret;
    int fd;

    RM_ASSERT(path != NULL && buf != NULL);
    RM_ASSERT(cap > 1);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ret = -errno;
        goto out;
    }
    n = read(fd, buf, cap - 1);
    ret = n < 0 ? -errno : n;
    close(fd);
    if (ret >= 0) {
        buf[ret] = '\0';
    }
out:
    return ret;
}

int lg_proc_parse_stat(const char *text, size_t len, uint64_t *ticks)
{
    const char *p;
    const char *end = text + len;
    uint64_t utime = 0;
    uint64_t stime = 0;
    int field;
    int ret = -EINVAL;

    RM_ASSERT(text != NULL && ticks != NULL);
    RM_ASSERT(memchr(text, '\0', len + 1) != NULL); /* NUL-terminated by the caller */

    /* The command name is in parentheses and may hold anything: skip to the last ')'. */
    p = memrchr(text, ')', len);
    if (p == NULL) {
        goto out;
    }
    p++;
    /* Field 3 (state) follows; count fields from there. */
    for (field = 3; field <= STAT_FIELD_STIME && p < end; field++) {
        char *num_end;
        unsigned long long v;

        while (p < end && *p == ' ') {
            p++;
        }
        if (p >= end) {
            goto out;
        }
        if (field == STAT_FIELD_UTIME || field == STAT_FIELD_STIME) {
            errno = 0;
            v = strtoull(p, &num_end, 10);
            if (errno != 0 || num_end == p) {
                goto out;
            }
            if (field == STAT_FIELD_UTIME) {
                utime = v;
            } else {
                stime = v;
            }
            p = num_end;
        } else {
            while (p < end && *p != ' ') {
                p++;
            }
        }
    }
    if (field <= STAT_FIELD_STIME) {
        goto out;
    }
    *ticks = utime + stime;
    ret = 0;
out:
    return ret;
}

int lg_proc_cpu_ns(pid_t pid, uint64_t *ns)
{
    char path[96];
    char text[256];
    struct dirent *de;
    uint64_t sum = 0;
    DIR *dir;
    int ret = 0;

    RM_ASSERT(ns != NULL);
    RM_ASSERT(pid > 0);
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    dir = opendir(path);
    if (dir == NULL) {
        return -errno;
    }
    while ((de = readdir(dir)) != NULL) {
        unsigned long long v;
        char *num_end;
        ssize_t n;

        if (de->d_name[0] < '0' || de->d_name[0] > '9') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat", (int)pid, de->d_name);
        n = read_small(path, text, sizeof(text));
        if (n == -ENOENT) {
            continue; /* the thread exited meanwhile */
        }
        if (n < 0) {
            ret = (int)n;
            break;
        }
        errno = 0;
        v = strtoull(text, &num_end, 10);
        if (errno != 0 || num_end == text) {
            ret = -EINVAL;
            break;
        }
        sum += v;
    }
    closedir(dir);
    if (ret == 0) {
        *ns = sum;
    }
    return ret;
}

/* VmRSS in bytes from the text of /proc/PID/status, or -EINVAL. */
static int parse_rss(const char *text, uint64_t *rss_bytes)
{
    const char *p = strstr(text, "\nVmRSS:");
    unsigned long long kb;
    char *num_end;

    if (p == NULL) {
        return -EINVAL; /* a kernel thread or a zombie has no VmRSS */
    }
    p += strlen("\nVmRSS:");
    errno = 0;
    kb = strtoull(p, &num_end, 10);
    if (errno != 0 || num_end == p) {
        return -EINVAL;
    }
    *rss_bytes = (uint64_t)kb * 1024u;
    return 0;
}

int lg_proc_sample(pid_t pid, struct lg_proc_sample *out)
{
    char path[64];
    char text[PROC_TEXT_MAX];
    uint64_t ticks = 0;
    uint64_t ns = 0;
    long hz;
    ssize_t n;
    int ret;

    RM_ASSERT(out != NULL);
    RM_ASSERT(pid > 0);
    memset(out, 0, sizeof(*out));

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    n = read_small(path, text, sizeof(text));
    if (n < 0) {
        ret = (int)n;
        goto out;
    }
    ret = lg_proc_parse_stat(text, (size_t)n, &ticks);
    if (ret < 0) {
        goto out;
    }
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    n = read_small(path, text, sizeof(text));
    if (n < 0) {
        ret = (int)n;
        goto out;
    }
    ret = parse_rss(text, &out->rss_bytes);
    if (ret < 0) {
        goto out;
    }
    if (lg_proc_cpu_ns(pid, &ns) == 0) {
        out->cpu_s = (double)ns / 1e9;
    } else {
        hz = sysconf(_SC_CLK_TCK);
        out->cpu_s = (double)ticks / (double)(hz > 0 ? hz : 100);
    }
    out->ok = true;
out:
    return ret;
}
