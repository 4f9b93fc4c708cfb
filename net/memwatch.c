/*
 * memwatch.c - resident memory and the "auto" budget (see memwatch.h).
 *
 * Any thread; the pure helpers hold no state.
 */
#include "net/memwatch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/rm_assert.h"

/* Longest /proc/self/statm text read: seven decimal numbers. */
#define STATM_BYTES_MAX 256
/* Longest cgroup path handled; a deeper one is not looked at (no limit assumed). */
#define CGROUP_PATH_MAX 1024
#define CGROUP_ROOT "/sys/fs/cgroup"
/* cgroup v1 writes "no limit" as a huge number (LONG_MAX rounded to pages). */
#define CGROUP_V1_UNLIMITED (1ull << 62)

/* Skip one decimal number at @p (bounded by @end); false if there is none. */
static bool parse_u64(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;

    if (s == end || *s < '0' || *s > '9') {
        return false;
    }
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10) {
            return false;
        }
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *p = s;
    *out = v;
    return true;
}

int memwatch_parse_statm(const char *text, size_t len, uint64_t page_bytes, uint64_t *rss_bytes)
{
    const char *p = text;
    const char *end = text + len;
    uint64_t size;
    uint64_t resident;

    RM_ASSERT(text != NULL && rss_bytes != NULL);
    RM_ASSERT(page_bytes > 0);
    if (!parse_u64(&p, end, &size) || p == end || *p != ' ') {
        return -EINVAL;
    }
    p++;
    if (!parse_u64(&p, end, &resident) || (p < end && *p != ' ' && *p != '\n')) {
        return -EINVAL;
    }
    if (resident > UINT64_MAX / page_bytes) {
        return -EINVAL;
    }
    *rss_bytes = resident * page_bytes;
    return 0;
}

uint64_t memwatch_budget_of(uint64_t phys_bytes, uint64_t cgroup_bytes)
{
    uint64_t usable = phys_bytes;

    if (cgroup_bytes > 0 && (usable == 0 || cgroup_bytes < usable)) {
        usable = cgroup_bytes;
    }
    return usable / 2;
}

/* The number in file @path; 0 for "max", an unlimited v1 value or anything unreadable. */
static uint64_t read_limit(const char *path)
{
    char buf[64];
    const char *p = buf;
    uint64_t v = 0;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return 0;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0 || !parse_u64(&p, buf + n, &v) || v >= CGROUP_V1_UNLIMITED) {
        return 0;
    }
    return v;
}

/*
 * Whether /proc/self/cgroup line @line ("ID:CONTROLLERS:PATH") is the
 * memory hierarchy's: cgroup v2's ("0::PATH", @v2) or v1's ("N:a,memory:PATH").
 * Sets *@path to PATH (in @line, newline cut off).
 */
static bool memory_line(char *line, bool v2, char **path)
{
    char *ctl = strchr(line, ':');
    char *end;
    char *tok;
    bool found = false;

    if (ctl == NULL) {
        return false;
    }
    ctl++;
    end = strchr(ctl, ':');
    if (end == NULL || end[1] != '/') {
        return false;
    }
    *end = '\0';
    if (v2) {
        found = strcmp(line, "0:") == 0 && *ctl == '\0';
    } else {
        /* Bounded by the line: one token per controller. */
        for (tok = ctl; tok != NULL && !found; tok = strchr(tok, ',')) {
            tok += *tok == ',';
            found = strncmp(tok, "memory", 6) == 0 && (tok[6] == ',' || tok[6] == '\0');
        }
    }
    *path = end + 1;
    (*path)[strcspn(*path, "\n")] = '\0';
    return found;
}

/*
 * The lowest memory limit of this process's cgroup and its ancestors:
 * cgroup v2 (memory.max under /sys/fs/cgroup) or v1 (memory.limit_in_bytes
 * under /sys/fs/cgroup/memory); 0 when none is set or nothing is readable.
 */
static uint64_t cgroup_limit_of(bool v2)
{
    char line[CGROUP_PATH_MAX];
    char file[CGROUP_PATH_MAX + 64];
    const char *dir = v2 ? CGROUP_ROOT : CGROUP_ROOT "/memory";
    const char *name = v2 ? "memory.max" : "memory.limit_in_bytes";
    uint64_t lowest = 0;
    bool found = false;
    char *path = NULL;
    uint32_t depth;
    char *cut;
    FILE *f = fopen("/proc/self/cgroup", "re");

    if (f == NULL) {
        return 0;
    }
    /* Bounded by the file: one line per hierarchy. */
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        found = memory_line(line, v2, &path);
    }
    fclose(f);
    if (!found) {
        return 0;
    }
    /* From the process's own cgroup up to the root (v2's root has no memory.max). */
    for (depth = 0; depth < MEMWATCH_CGROUP_DEPTH_MAX; depth++) {
        uint64_t v;

        snprintf(file, sizeof(file), "%s%s/%s", dir, strcmp(path, "/") == 0 ? "" : path, name);
        v = read_limit(file);
        if (v > 0 && (lowest == 0 || v < lowest)) {
            lowest = v;
        }
        if (strcmp(path, "/") == 0) {
            break;
        }
        cut = strrchr(path, '/');
        cut[cut == path ? 1 : 0] = '\0';
    }
    return lowest;
}

static uint64_t cgroup_limit(void)
{
    uint64_t v2 = cgroup_limit_of(true);
    uint64_t v1 = cgroup_limit_of(false);

    return v2 == 0 || (v1 != 0 && v1 < v2) ? v1 : v2;
}

uint64_t memwatch_auto_budget(uint64_t *phys_bytes, uint64_t *cgroup_bytes)
{
    long pages = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);

    RM_ASSERT(phys_bytes != NULL && cgroup_bytes != NULL);
    *phys_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    *cgroup_bytes = cgroup_limit();
    return memwatch_budget_of(*phys_bytes, *cgroup_bytes);
}

int memwatch_open(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

    return fd < 0 ? -errno : fd;
}

int memwatch_rss(int fd, uint64_t *rss_bytes)
{
    char buf[STATM_BYTES_MAX];
    long page = sysconf(_SC_PAGESIZE);
    ssize_t n;

    RM_ASSERT(fd >= 0 && rss_bytes != NULL);
    n = pread(fd, buf, sizeof(buf), 0);
    if (n < 0) {
        return -errno;
    }
    return memwatch_parse_statm(buf, (size_t)n, page > 0 ? (uint64_t)page : 4096, rss_bytes);
}
