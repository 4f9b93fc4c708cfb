/*
 * config_check.c - rules that relate several keys or sections.
 *
 * Runs once after the whole file is parsed, over ld->cfg. Each rule names
 * the line that set the offending key, so the message points where the fix
 * goes. Start-up thread only.
 */
#include "config/config_check.h"

#include <arpa/inet.h>
#include <string.h>

#include "core/rm_assert.h"

/* A listener's address in binary form, for comparing "::1" with "0::1". */
struct addr {
    int family;
    unsigned char bytes[sizeof(struct in6_addr)];
};

static size_t key_index(enum config__scope scope, const char *name)
{
    const struct config__key *keys;
    size_t count;
    size_t i;

    keys = config__keys(&count);
    for (i = 0; i < count; i++) {
        if (keys[i].scope == scope && strcmp(keys[i].name, name) == 0) {
            break;
        }
    }
    RM_ASSERT(i < count); /* the rules below name keys of the table */
    return i;
}

static int check_limits(struct config__load *ld)
{
    const struct limits *lim = &ld->cfg.limits;
    size_t out = key_index(CONFIG__SCOPE_LIMITS, "output_bytes_max");
    size_t pkt = key_index(CONFIG__SCOPE_LIMITS, "packet_bytes_max");
    unsigned out_line = ld->key_line[out];
    unsigned pkt_line = ld->key_line[pkt];
    int rc = 0;

    if (lim->output_bytes_max < lim->packet_bytes_max) {
        /* The defaults pass, so at least one of the two was set in the file. */
        RM_ASSERT(out_line != 0 || pkt_line != 0);
        if (out_line >= pkt_line) {
            config__fail(ld, out_line,
                         "[limits] output_bytes_max: must be at least packet_bytes_max (%u), "
                         "got %u",
                         lim->packet_bytes_max, lim->output_bytes_max);
        } else {
            config__fail(ld, pkt_line,
                         "[limits] packet_bytes_max: must be at most output_bytes_max (%u), "
                         "got %u",
                         lim->output_bytes_max, lim->packet_bytes_max);
        }
        rc = -1;
    }
    return rc;
}

static void addr_parse(const char *s, struct addr *a)
{
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, s, a->bytes) == 1) {
        a->family = AF_INET;
    } else {
        /* Parsing already accepted @s as one or the other. */
        RM_ASSERT(inet_pton(AF_INET6, s, a->bytes) == 1);
        a->family = AF_INET6;
    }
}

/* The first listener before @j on the same address and port as @j, or @j. */
static uint32_t listener_clash(const struct config *cfg, uint32_t j)
{
    const struct config_listener *lj = &cfg->listeners[j];
    struct addr a;
    struct addr b;
    uint32_t i;

    RM_ASSERT(j < cfg->listener_count);
    addr_parse(lj->bind, &b);
    for (i = 0; i < j; i++) {
        const struct config_listener *li = &cfg->listeners[i];

        addr_parse(li->bind, &a);
        if (li->port == lj->port && a.family == b.family &&
            memcmp(a.bytes, b.bytes, sizeof(a.bytes)) == 0) {
            break;
        }
    }
    return i;
}

static int check_listeners(struct config__load *ld)
{
    const struct config *cfg = &ld->cfg;
    size_t bind = key_index(CONFIG__SCOPE_LISTENER, "bind");
    size_t port = key_index(CONFIG__SCOPE_LISTENER, "port");
    uint32_t i = 0;
    uint32_t j;
    int rc = -1;

    if (cfg->listener_count == 0) {
        config__fail(ld, 0, "no listener");
        goto out;
    }
    RM_ASSERT(cfg->listener_count <= CONFIG_LISTENERS_MAX);
    for (j = 1; j < cfg->listener_count; j++) {
        /* Port 0 asks the kernel for a fresh port each time: never a clash. */
        if (cfg->listeners[j].port != 0) {
            i = listener_clash(cfg, j);
            if (i < j) {
                break;
            }
        }
    }
    if (j < cfg->listener_count) {
        const struct config_listener *lj = &cfg->listeners[j];
        unsigned bind_line = ld->listener_key_line[j][bind];
        unsigned port_line = ld->listener_key_line[j][port];
        unsigned line = ld->listener_line[j];
        const char *key = "";
        bool v6 = strchr(lj->bind, ':') != NULL;

        if (bind_line != 0 || port_line != 0) {
            line = bind_line > port_line ? bind_line : port_line;
            key = bind_line > port_line ? " bind" : " port";
        }
        config__fail(ld, line,
                     "[listener.%s]%s: %s%s%s:%u is already used by [listener.%s] (line %u)",
                     lj->name, key, v6 ? "[" : "", lj->bind, v6 ? "]" : "", lj->port,
                     cfg->listeners[i].name, ld->listener_line[i]);
        goto out;
    }
    rc = 0;
out:
    return rc;
}

int config__check(struct config__load *ld)
{
    int rc;

    RM_ASSERT(ld != NULL);
    RM_ASSERT(!ld->failed);
    rc = check_limits(ld);
    if (rc == 0) {
        rc = check_listeners(ld);
    }
    RM_ASSERT(rc == 0 || ld->failed);
    return rc;
}
