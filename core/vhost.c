/*
 * vhost.c - virtual hosts (see vhost.h). Pure.
 */
#include "core/vhost.h"

#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/rm_assert.h"

uint8_t vhost_of_user(const struct vhost_table *t, const uint8_t *user, size_t len)
{
    if (!t || t->count == 0 || !user || len == 0)
        return 0;
    const uint8_t *at = memrchr(user, '@', len);
    if (!at)
        return 0;
    size_t hlen = len - (size_t)(at + 1 - user);
    for (uint32_t i = 0; i < t->count; i++) {
        if (t->len[i] == hlen && memcmp(t->name[i], at + 1, hlen) == 0)
            return (uint8_t)(i + 1);
    }
    return 0;
}

size_t vhost_prefix(uint8_t host, bool topic, const uint8_t *name, size_t len, uint8_t *out)
{
    RM_ASSERT(host >= 1 && host <= VHOST_MAX);
    RM_ASSERT(out != NULL && (name != NULL || len == 0));
    out[0] = 0;
    out[1] = (uint8_t)(0x80u | host);
    size_t n = VHOST_ID_PREFIX;
    if (topic)
        out[n++] = '/';
    if (len)
        memcpy(out + n, name, len);
    return n + len;
}

const uint8_t *vhost_name(struct vhost_buf *vb, uint8_t host, bool topic, const uint8_t *name,
                          size_t len, size_t *out_len)
{
    RM_ASSERT(vb != NULL && out_len != NULL);
    if (host == 0) {
        *out_len = len;
        return name;
    }
    if (len + (topic ? VHOST_TOPIC_PREFIX : VHOST_ID_PREFIX) > LIMITS_STRING_BYTES_MAX) {
        *out_len = VHOST_TOO_LONG;
        return NULL;
    }
    size_t need = len + VHOST_TOPIC_PREFIX;
    if (vb->cap < need) {
        uint8_t *p = realloc(vb->p, need);
        if (!p)
            return NULL;
        vb->p = p;
        vb->cap = need;
    }
    *out_len = vhost_prefix(host, topic, name, len, vb->p);
    return vb->p;
}

const uint8_t *vhost_filter(struct vhost_buf *vb, uint8_t host, const uint8_t *filter, size_t len,
                            size_t at, size_t *out_len)
{
    RM_ASSERT(at <= len);
    if (host == 0 || at == 0)
        return vhost_name(vb, host, true, filter, len, out_len);
    if (len + VHOST_TOPIC_PREFIX > LIMITS_STRING_BYTES_MAX) {
        *out_len = VHOST_TOO_LONG;
        return NULL;
    }
    if (!vhost_name(vb, host, true, filter + at, len - at, out_len))
        return NULL;
    if (vb->cap < *out_len + at) {
        uint8_t *p = realloc(vb->p, *out_len + at);
        if (!p)
            return NULL;
        vb->p = p;
        vb->cap = *out_len + at;
    }
    memmove(vb->p + at, vb->p, *out_len);
    memcpy(vb->p, filter, at);
    *out_len += at;
    return vb->p;
}

void vhost_buf_fini(struct vhost_buf *vb)
{
    free(vb->p);
    *vb = (struct vhost_buf){0};
}

int vhost_add(struct vhost_table *t, const char *name, size_t len, const char **why)
{
    RM_ASSERT(t != NULL && name != NULL && why != NULL);
    if (t->count == VHOST_MAX) {
        *why = "too many hosts (at most 127)";
        return -1;
    }
    if (len == 0) {
        *why = "an empty host name";
        return -1;
    }
    if (len > VHOST_NAME_MAX) {
        *why = "a host name longer than 63 bytes";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= ' ' || c == 0x7f || strchr("@/+#$", c)) {
            *why = "a host name may not contain spaces, control bytes or any of @/+#$";
            return -1;
        }
    }
    for (uint32_t i = 0; i < t->count; i++) {
        if (t->len[i] == len && memcmp(t->name[i], name, len) == 0) {
            *why = "a host named twice";
            return -1;
        }
    }
    memcpy(t->name[t->count], name, len);
    t->name[t->count][len] = '\0';
    t->len[t->count] = (uint8_t)len;
    return (int)++t->count;
}
