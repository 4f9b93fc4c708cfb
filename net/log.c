/*
 * log.c - one-line log records, text or JSON, to stderr, a file or syslog
 * (see log.h).
 *
 * The line is built on the stack and written with one write(2), so records
 * from several threads never interleave inside a line (appends to a file
 * opened O_APPEND, and writes to a pipe or terminal of at most PIPE_BUF
 * bytes, are atomic; LOG_LINE_MAX is 4096). Any thread; the level and the
 * format are atomics, the destination is set before the other threads
 * start, and a reopen swaps the file under the same descriptor (log.h).
 */
#include "net/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/config_keys.h"
#include "net/log_syslog.h"

_Atomic int log__level = CONFIG_LOG_INFO;
_Atomic int log__format = CONFIG_LOG_TEXT;

/* Written by log_open() before the shard threads start; then only read. */
static int log_fd = STDERR_FILENO;
static enum config_log_dest log_dest = CONFIG_LOG_STDERR;
static char log_path[CONFIG_LOG_DEST_MAX];

static _Thread_local int log_shard = -1;

static const char *const level_names[] = {
    [CONFIG_LOG_ERROR] = "ERROR",
    [CONFIG_LOG_WARN] = "WARN",
    [CONFIG_LOG_INFO] = "INFO",
    [CONFIG_LOG_DEBUG] = "DEBUG",
};

static const char *const level_json[] = {
    [CONFIG_LOG_ERROR] = "error",
    [CONFIG_LOG_WARN] = "warn",
    [CONFIG_LOG_INFO] = "info",
    [CONFIG_LOG_DEBUG] = "debug",
};

void log_set_level(enum config_log_level level)
{
    atomic_store_explicit(&log__level, (int)level, memory_order_relaxed);
}

void log_set_format(enum config_log_format format)
{
    atomic_store_explicit(&log__format, (int)format, memory_order_relaxed);
}

void log_set_shard(int shard)
{
    log_shard = shard;
}

static int open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

    return fd < 0 ? -errno : fd;
}

int log_open(const char *dest, char *err, size_t err_len)
{
    const char *path;
    int kind = config_log_dest_parse(dest, &path);
    int fd;

    if (kind == CONFIG_LOG_SYSLOG) {
        log_syslog_open();
        log_dest = CONFIG_LOG_SYSLOG;
    } else if (kind == CONFIG_LOG_FILE) {
        fd = open_file(path);
        if (fd < 0) {
            snprintf(err, err_len, "log_dest: cannot open '%s': %s", path, strerror(-fd));
            return fd;
        }
        snprintf(log_path, sizeof(log_path), "%s", path);
        log_fd = fd;
        log_dest = CONFIG_LOG_FILE;
    } else if (kind < 0) {
        snprintf(err, err_len, "log_dest: expected stderr, syslog or file PATH, got \"%s\"", dest);
        return -EINVAL;
    }
    return 0;
}

void log_reopen(void)
{
    int fd;

    if (log_dest != CONFIG_LOG_FILE) {
        return;
    }
    fd = open_file(log_path);
    if (fd < 0) {
        LOG_ERROR("log_dest: cannot reopen '%s': %s; logging to the old file", log_path,
                  strerror(-fd));
        return;
    }
    /* Atomic for the writers: the number now names the new file. */
    if (dup2(fd, log_fd) < 0) {
        LOG_ERROR("log_dest: dup2: %s; logging to the old file", strerror(errno));
    }
    close(fd);
    LOG_INFO("log_dest: reopened '%s'", log_path);
}

void log_close(void)
{
    if (log_dest == CONFIG_LOG_FILE && log_fd != STDERR_FILENO) {
        close(log_fd);
        log_fd = STDERR_FILENO;
    } else if (log_dest == CONFIG_LOG_SYSLOG) {
        log_syslog_close();
    }
    log_dest = CONFIG_LOG_STDERR;
}

/*
 * Output buffer with a bound: a piece that does not fit is dropped whole
 * (never half an escape), and so is everything after it; noted in @cut.
 */
struct lbuf {
    char *p;
    size_t len;
    size_t cap;
    bool cut;
};

static void put(struct lbuf *b, const char *s, size_t n)
{
    if (b->cut || n > b->cap - b->len) {
        b->cut = true;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void puts_(struct lbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at @s (of @n bytes), or 0 if it is not one. */
static size_t utf8_len(const uint8_t *s, size_t n)
{
    size_t len;
    uint32_t cp;
    size_t i;

    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        cp = s[0] & 0x1Fu;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        cp = s[0] & 0x0Fu;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    /* Overlong forms, surrogates and past U+10FFFF are not UTF-8. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

/* @s (@n bytes) as the inside of a JSON string. A sequence is written whole or not at all. */
static void put_json(struct lbuf *b, const uint8_t *s, size_t n)
{
    char esc[8];
    size_t i = 0;
    size_t k;

    while (i < n && !b->cut) {
        uint8_t c = s[i];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(b, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(b, esc, 6);
            i++;
        } else if ((k = utf8_len(s + i, n - i)) == 0) {
            put(b, "\\ufffd", 6); /* not UTF-8: the replacement character */
            i++;
        } else {
            put(b, (const char *)s + i, k);
            i += k;
        }
    }
}

/* @s (@n bytes) for a text line: printable ASCII as is, other bytes as \xHH. */
static void put_text(struct lbuf *b, const uint8_t *s, size_t n)
{
    char esc[8];
    size_t i;

    for (i = 0; i < n && !b->cut; i++) {
        if (s[i] < 0x20 || s[i] >= 0x7F || s[i] == '"' || s[i] == '\\') {
            snprintf(esc, sizeof(esc), "\\x%02x", s[i]);
            put(b, esc, 4);
        } else {
            put(b, (const char *)s + i, 1);
        }
    }
}

/* The peer address of @fd as "a.b.c.d:port" or "[v6]:port"; "" if unknown. */
static void peer_addr(int fd, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN];

    out[0] = '\0';
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) < 0) {
        return;
    }
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;

        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host)) != NULL) {
            snprintf(out, cap, "%s:%u", host, ntohs(a->sin_port));
        }
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;

        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)) != NULL) {
            snprintf(out, cap, "[%s]:%u", host, ntohs(a->sin6_port));
        }
    }
}

void log_msg(enum config_log_level level, const struct log_who *who, const char *fmt, ...)
{
    char msg[LOG_MSG_MAX];
    char line[LOG_LINE_MAX];
    char ts[96];
    char addr[INET6_ADDRSTRLEN + 16] = "";
    char num[16];
    struct lbuf b = {.p = line, .len = 0, .cap = sizeof(line) - 8, .cut = false};
    bool json = atomic_load_explicit(&log__format, memory_order_relaxed) == CONFIG_LOG_JSON;
    bool sys = log_dest == CONFIG_LOG_SYSLOG;
    struct timespec now;
    struct tm tm;
    size_t msg_len;
    va_list ap;
    int n;

    if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0])) {
        level = CONFIG_LOG_ERROR;
    }
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    msg_len = n < 0 ? 0 : (size_t)n;
    if (msg_len >= sizeof(msg)) {
        msg_len = sizeof(msg) - 1;
        memcpy(msg + msg_len - 3, "...", 3);
    }
    if (who != NULL) {
        peer_addr(who->fd, addr, sizeof(addr));
    }
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             now.tv_nsec / 1000000);
    snprintf(num, sizeof(num), "%d", log_shard);

    if (json) {
        puts_(&b, "{\"ts\":\"");
        puts_(&b, ts);
        puts_(&b, "\",\"level\":\"");
        puts_(&b, level_json[level]);
        puts_(&b, "\",\"shard\":");
        puts_(&b, log_shard >= 0 ? num : "null");
        puts_(&b, ",\"client_id\":");
        if (who != NULL && who->id != NULL) {
            puts_(&b, "\"");
            put_json(&b, who->id, who->id_len);
            puts_(&b, "\"");
        } else {
            puts_(&b, "null");
        }
        puts_(&b, ",\"addr\":");
        if (addr[0] != '\0') {
            puts_(&b, "\"");
            puts_(&b, addr);
            puts_(&b, "\"");
        } else {
            puts_(&b, "null");
        }
        puts_(&b, ",\"msg\":\"");
        put_json(&b, (const uint8_t *)msg, msg_len);
        if (b.cut) {
            /* The 8 bytes kept out of cap close the object. */
            b.cut = false;
            b.cap = sizeof(line) - 1;
            puts_(&b, "...");
        }
        puts_(&b, "\"}");
    } else {
        if (!sys) {
            puts_(&b, ts);
            puts_(&b, " ");
            puts_(&b, level_names[level]);
            puts_(&b, " ");
        }
        put(&b, msg, msg_len);
        puts_(&b, " | shard=");
        puts_(&b, log_shard >= 0 ? num : "-");
        if (who != NULL && who->id != NULL) {
            puts_(&b, " client_id=\"");
            put_text(&b, who->id, who->id_len);
            puts_(&b, "\"");
        }
        if (addr[0] != '\0') {
            puts_(&b, " addr=");
            puts_(&b, addr);
        }
    }
    if (b.cut && !json) {
        /* The 8 bytes kept out of cap. */
        b.cut = false;
        b.cap = sizeof(line) - 1;
        puts_(&b, "...");
    }

    if (sys) {
        log_syslog_write(level, line, b.len);
        return;
    }
    line[b.len++] = '\n';
    /* One write per line; a failed or short write is dropped. */
    while (write(log_fd, line, b.len) < 0 && errno == EINTR) {
    }
}
