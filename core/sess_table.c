/*
 * sess_table.c - sessions by client id (see sess_table.h): a chained hash
 * table with power-of-two buckets, doubled when it averages more than one
 * session per bucket. Owned by one shard; single-threaded.
 */
#include "core/sess_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker_types.h"
#include "core/rm_assert.h"
#include "core/session.h"

int sess_table_init(struct broker *b)
{
    RM_ASSERT(b->sess_buckets == NULL);
    b->sess_buckets = calloc(SESS_TABLE_BUCKETS_MIN, sizeof(*b->sess_buckets));
    if (!b->sess_buckets)
        return -ENOMEM;
    b->sess_bucket_count = SESS_TABLE_BUCKETS_MIN;
    return 0;
}

struct session **sess_table_slot(struct broker *b, const uint8_t *id, size_t len, uint64_t h)
{
    struct session **pp = &b->sess_buckets[h & (b->sess_bucket_count - 1)];
    for (; *pp; pp = &(*pp)->_hnext) {
        struct session *s = *pp;
        if (s->_hash == h && s->client_id_len == len && memcmp(s->client_id, id, len) == 0)
            break;
    }
    return pp;
}

/* Double the table when it averages more than one session per bucket. */
static void sess_table_grow(struct broker *b)
{
    uint32_t ncount = b->sess_bucket_count * 2;
    struct session **nb = calloc(ncount, sizeof(*nb));
    if (!nb)
        return; /* Longer chains, still correct. */
    for (uint32_t i = 0; i < b->sess_bucket_count; i++) {
        struct session *s = b->sess_buckets[i];
        while (s) {
            struct session *next = s->_hnext;
            struct session **head = &nb[s->_hash & (ncount - 1)];
            s->_hnext = *head;
            *head = s;
            s = next;
        }
    }
    free(b->sess_buckets);
    b->sess_buckets = nb;
    b->sess_bucket_count = ncount;
}

struct session *sess_table_by_hash(struct broker *b, uint64_t h)
{
    struct session *s = b->sess_buckets[h & (b->sess_bucket_count - 1)];
    while (s && s->_hash != h) /* bounded by the chain */
        s = s->_hnext;
    return s;
}

void sess_table_insert(struct broker *b, struct session *s)
{
    RM_ASSERT(*sess_table_slot(b, s->client_id, s->client_id_len, s->_hash) == NULL);
    if (b->sess_count >= b->sess_bucket_count)
        sess_table_grow(b);
    struct session **head = &b->sess_buckets[s->_hash & (b->sess_bucket_count - 1)];
    s->_hnext = *head;
    *head = s;
    b->sess_count++;
    b->stats.sessions = b->sess_count;
}

void sess_table_remove(struct broker *b, struct session *s)
{
    struct session **pp = sess_table_slot(b, s->client_id, s->client_id_len, s->_hash);
    RM_ASSERT(*pp == s);
    *pp = s->_hnext;
    s->_hnext = NULL;
    b->sess_count--;
    b->stats.sessions = b->sess_count;
}

void sess_table_fini(struct broker *b)
{
    for (uint32_t i = 0; b->sess_buckets && i < b->sess_bucket_count; i++) {
        struct session *s = b->sess_buckets[i];
        while (s) {
            struct session *next = s->_hnext;
            if (s->client) {
                s->client->_sess = NULL;
                s->client = NULL;
            }
            /* Shutting down: no other member is to get its shared messages. */
            session_free(b, s, NULL, NULL);
            s = next;
        }
    }
    free(b->sess_buckets);
    b->sess_buckets = NULL;
    b->sess_count = 0;
}
