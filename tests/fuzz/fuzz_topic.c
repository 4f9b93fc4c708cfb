/*
 * fuzz_topic.c - libFuzzer target for core/topic, core/trie, core/retained.
 *
 * The input is split into lines. Every line is checked as a topic name and
 * as a topic filter (which must not crash, and must agree between a small
 * and a large limit). Each line that is a valid filter subscribes a session
 * of its own to a trie; each line that is a valid name stores a retained
 * message. Then every valid name is matched against the trie and every valid
 * filter against the retained store, and each answer must be exactly what
 * the reference matcher topic_match() says; a disagreement aborts. Finally
 * everything is removed again and both structures must be empty.
 *
 * Build: cmake -DRINGMQ_FUZZ=ON (clang), or see tests/fuzz/corpus/topic/.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/msg.h"
#include "core/mqtt_codec.h"
#include "core/retained.h"
#include "core/topic.h"
#include "core/trie.h"

/* Lines looked at per input; the rest are ignored. */
#define FUZZ_LINES_MAX 48

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct line {
    const uint8_t *s;
    size_t len;
    bool name_ok;
    bool filter_ok;
    bool stored;   /* its retained message is the one stored for its topic */
    struct msg *m; /* when name_ok */
    uint32_t hits; /* reports in the current match */
};

struct fuzz {
    struct line lines[FUZZ_LINES_MAX];
    size_t count;
};

static void check(bool ok)
{
    if (!ok)
        abort();
}

static struct session *sess_of(size_t i)
{
    return (struct session *)(uintptr_t)(16 * (i + 1));
}

static void on_sub(void *ctx, void *sess, uint8_t options, uint32_t sub_id)
{
    struct fuzz *f = ctx;
    uintptr_t p = (uintptr_t)sess;
    size_t i;

    check(p % 16 == 0 && p >= 16);
    i = p / 16 - 1;
    check(i < f->count && f->lines[i].filter_ok);
    check(options == (uint8_t)(i % 3));
    f->lines[i].hits++;
}

static void on_msg(void *ctx, struct msg *m)
{
    struct fuzz *f = ctx;
    size_t i;

    for (i = 0; i < f->count; i++) {
        if (f->lines[i].m == m) {
            check(f->lines[i].stored);
            f->lines[i].hits++;
            return;
        }
    }
    abort();
}

/* Does a line in [@from, @to) other than @self hold the same valid filter as @self? */
static bool same_filter_in(const struct fuzz *f, size_t self, size_t from, size_t to)
{
    const struct line *l = &f->lines[self];
    size_t j;

    for (j = from; j < to; j++) {
        if (j != self && f->lines[j].filter_ok && f->lines[j].len == l->len &&
            memcmp(f->lines[j].s, l->s, l->len) == 0)
            return true;
    }
    return false;
}

static void clear_hits(struct fuzz *f)
{
    size_t i;

    for (i = 0; i < f->count; i++)
        f->lines[i].hits = 0;
}

static void split(struct fuzz *f, const uint8_t *data, size_t size)
{
    size_t pos = 0;

    f->count = 0;
    while (f->count < FUZZ_LINES_MAX && pos <= size) {
        const uint8_t *nl = size > pos ? memchr(data + pos, '\n', size - pos) : NULL;
        size_t end = nl ? (size_t)(nl - data) : size;
        struct line *l = &f->lines[f->count++];

        memset(l, 0, sizeof(*l));
        l->s = data + pos;
        l->len = end - pos;
        pos = end + 1;
    }
}

static void check_validity(struct line *l)
{
    static const struct limits big = {.topic_bytes_max = 65535, .topic_levels_max = 65535};
    static const struct limits small = {.topic_bytes_max = 24, .topic_levels_max = 4};
    const uint8_t *lvl;
    size_t pos = 0, ll, levels = 0, slashes = 0, i;
    int rc;

    rc = topic_name_check(l->s, l->len, &big);
    check(rc == 0 || rc == -MQTT_RC_TOPIC_NAME_INVALID);
    l->name_ok = rc == 0;
    rc = topic_filter_check(l->s, l->len, &big);
    check(rc == 0 || rc == -MQTT_RC_TOPIC_FILTER_INVALID);
    l->filter_ok = rc == 0;
    /* Every name is a filter; a tighter limit never accepts more. */
    check(!l->name_ok || l->filter_ok);
    check(topic_name_check(l->s, l->len, &small) != 0 || l->name_ok);
    check(topic_filter_check(l->s, l->len, &small) != 0 || l->filter_ok);

    /* Levels: one more than the slashes, and they rebuild the input. */
    for (i = 0; i < l->len; i++)
        slashes += l->s[i] == '/';
    while (topic_level_next(&pos, l->s, l->len, &lvl, &ll)) {
        check(lvl >= l->s && lvl + ll <= l->s + l->len);
        check(ll == 0 || memchr(lvl, '/', ll) == NULL);
        levels++;
    }
    check(levels == slashes + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fuzz f;
    static struct trie_name name; /* its level array is reused across inputs */
    struct trie *t = trie_new(0x5eed);
    struct retained *r = retained_new();
    size_t i, j, subs = 0;

    if (!t || !r)
        abort();
    split(&f, data, size);
    for (i = 0; i < f.count; i++)
        check_validity(&f.lines[i]);
    /* The reference matcher must survive any pair, valid or not. */
    if (f.count >= 2)
        (void)topic_match(f.lines[0].s, f.lines[0].len, f.lines[1].s, f.lines[1].len);

    for (i = 0; i < f.count; i++) {
        struct line *l = &f.lines[i];
        bool first = false;

        if (l->filter_ok) {
            check(trie_insert(t, l->s, l->len, sess_of(i), (uint8_t)(i % 3), 0, &first) == 1);
            /* The filter's first subscriber is its first line. */
            check(first == !same_filter_in(&f, i, 0, i));
            check(trie_insert(t, l->s, l->len, sess_of(i), (uint8_t)(i % 3), 0, &first) == 0);
            check(!first);
            subs++;
        }
        if (l->name_ok) {
            l->m = msg_new(l->s, l->len, NULL, 0, (const uint8_t *)"v", 1, 0, true);
            if (!l->m)
                abort();
            check(retained_set(r, l->m, FUZZ_LINES_MAX) == 1);
            /* An earlier line with the same topic was replaced. */
            for (j = 0; j < i; j++) {
                if (f.lines[j].stored && f.lines[j].len == l->len &&
                    memcmp(f.lines[j].s, l->s, l->len) == 0)
                    f.lines[j].stored = false;
            }
            l->stored = true;
        }
    }
    check(trie_count(t) == subs);

    /* Each valid name against the trie. */
    for (i = 0; i < f.count; i++) {
        if (!f.lines[i].name_ok)
            continue;
        clear_hits(&f);
        if (trie_split(&name, 0x5eed, f.lines[i].s, f.lines[i].len) < 0)
            abort();
        trie_match(t, &name, on_sub, &f);
        for (j = 0; j < f.count; j++) {
            bool want = f.lines[j].filter_ok &&
                        topic_match(f.lines[j].s, f.lines[j].len, f.lines[i].s, f.lines[i].len);

            check(f.lines[j].hits == (want ? 1u : 0u));
        }
    }
    /* Each valid filter against the retained store. */
    for (i = 0; i < f.count; i++) {
        if (!f.lines[i].filter_ok)
            continue;
        clear_hits(&f);
        retained_match(r, f.lines[i].s, f.lines[i].len, on_msg, &f);
        for (j = 0; j < f.count; j++) {
            bool want = f.lines[j].stored &&
                        topic_match(f.lines[i].s, f.lines[i].len, f.lines[j].s, f.lines[j].len);

            check(f.lines[j].hits == (want ? 1u : 0u));
        }
    }

    /* Take everything out again; both must end empty. */
    for (i = 0; i < f.count; i++) {
        struct line *l = &f.lines[i];
        bool last = false;

        if (l->filter_ok) {
            check(trie_remove(t, l->s, l->len, sess_of(i), &last));
            /* Lines are removed in order: the last one of a filter empties it. */
            check(last == !same_filter_in(&f, i, i + 1, f.count));
            check(!trie_remove(t, l->s, l->len, sess_of(i), NULL));
        }
        if (l->stored) {
            struct msg *clear = msg_new(l->s, l->len, NULL, 0, NULL, 0, 0, true);

            if (!clear)
                abort();
            check(retained_set(r, clear, FUZZ_LINES_MAX) == 0);
            msg_unref(clear);
        }
    }
    check(trie_count(t) == 0);
    check(retained_count(r) == 0);
    for (i = 0; i < f.count; i++) {
        if (f.lines[i].m) {
            check(atomic_load(&f.lines[i].m->refs) == 1);
            msg_unref(f.lines[i].m);
        }
    }
    trie_free(t);
    retained_free(r);
    return 0;
}
