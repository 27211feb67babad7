/*
 * limits.c - string-keyed token buckets in 64 locked shards (see limits.h).
 *
 * Layout: a key picks its shard by a 64-bit FNV-1a hash (top six bits), and
 * within the shard a uthash table maps the key to its entry.  uthash picks
 * its own buckets with a different hash, so keys that share a shard still
 * spread over the shard's buckets.  Each shard is padded to the size of a
 * cache line, so workers locking neighbouring shards barely slow each
 * other down.
 *
 * Locking: a shard mutex covers its table and every bucket in it; it is held
 * only for a lookup, possibly one allocation, and the bucket arithmetic,
 * never across I/O or a callback, and no two shard locks are ever held at
 * once (sweep and count take them one after the other), so
 * there is no lock order to get wrong.
 *
 * Ownership: the limiter owns every entry and its key copy.  An entry is
 * created on the first limited take of a key and dropped by limits_sweep
 * once idle; a dropped bucket is indistinguishable from a new one as long as
 * max_idle_ms is at least the time the bucket takes to refill.
 */
#include "chat/limits.h"

#include <pthread.h>
#include <string.h>

#include "core/mem.h"
#include "core/tbucket.h"

#define uthash_malloc(sz) pl_malloc(sz)
#define uthash_free(ptr, sz) pl_free(ptr)
#include <uthash.h>

#define LIMITS_SHARDS 64
#define LIMITS_SHARD_BITS 6

typedef struct limits__entry {
    UT_hash_handle hh;
    tbucket bucket;
    char key[];     /* NUL-terminated copy of the caller's key */
} limits__entry;

typedef struct limits__shard {
    pthread_mutex_t mu;
    limits__entry *table;   /* uthash head; NULL when empty */
    /* Pads a shard to 64 bytes, so that at most two shards share a cache
     * line even though the heap does not align the array to one. */
    char pad[64 - (sizeof(pthread_mutex_t) + sizeof(void *)) % 64];
} limits__shard;

struct limits {
    limits__shard shards[LIMITS_SHARDS];
};

/* FNV-1a, 64 bits: cheap and well mixed in its top bits. */
static uint64_t limits__hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static limits__shard *limits__shard_of(limits *l, const char *key, size_t len)
{
    return &l->shards[limits__hash(key, len) >> (64 - LIMITS_SHARD_BITS)];
}

limits *limits_new(void)
{
    limits *l = pl_calloc(1, sizeof *l);
    for (int i = 0; i < LIMITS_SHARDS; i++) pthread_mutex_init(&l->shards[i].mu, NULL);
    return l;
}

void limits_free(limits *l)
{
    if (!l) return;
    for (int i = 0; i < LIMITS_SHARDS; i++) {
        limits__shard *s = &l->shards[i];
        limits__entry *e, *tmp;
        HASH_ITER(hh, s->table, e, tmp) {
            HASH_DEL(s->table, e);
            pl_free(e);
        }
        pthread_mutex_destroy(&s->mu);
    }
    pl_free(l);
}

uint64_t limits_take(limits *l, const char *key, uint64_t now_ms, double rate, double burst)
{
    /* Unlimited takes create no entry: no memory for keys never limited. */
    if (!(rate > 0)) return 0;
    size_t len = strlen(key);
    limits__shard *s = limits__shard_of(l, key, len);

    pthread_mutex_lock(&s->mu);
    limits__entry *e;
    HASH_FIND(hh, s->table, key, len, e);
    if (!e) {
        e = pl_malloc(sizeof *e + len + 1);
        memset(&e->bucket, 0, sizeof e->bucket);
        memcpy(e->key, key, len + 1);
        HASH_ADD_KEYPTR(hh, s->table, e->key, len, e);
    }
    uint64_t wait = tbucket_take(&e->bucket, now_ms, rate, burst);
    pthread_mutex_unlock(&s->mu);
    return wait;
}

uint64_t limits_peek(limits *l, const char *key, uint64_t now_ms, double rate, double burst)
{
    if (!(rate > 0)) return 0;
    size_t len = strlen(key);
    limits__shard *s = limits__shard_of(l, key, len);

    pthread_mutex_lock(&s->mu);
    limits__entry *e;
    HASH_FIND(hh, s->table, key, len, e);
    /* Take from a copy, so the real bucket (and its idle time) is left as
     * it was; an unknown key gets a zeroed copy, which starts full. */
    tbucket copy = {0};
    if (e) copy = e->bucket;
    pthread_mutex_unlock(&s->mu);
    return tbucket_take(&copy, now_ms, rate, burst);
}

size_t limits_sweep(limits *l, uint64_t now_ms, uint64_t max_idle_ms)
{
    size_t dropped = 0;
    for (int i = 0; i < LIMITS_SHARDS; i++) {
        limits__shard *s = &l->shards[i];
        pthread_mutex_lock(&s->mu);
        limits__entry *e, *tmp;
        HASH_ITER(hh, s->table, e, tmp) {
            uint64_t last = e->bucket.last_ms;
            /* A bucket touched "in the future" (a clock that went back) is
             * not idle. */
            if (now_ms >= last && now_ms - last >= max_idle_ms) {
                HASH_DEL(s->table, e);
                pl_free(e);
                dropped++;
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
    return dropped;
}

size_t limits_count(limits *l)
{
    size_t n = 0;
    for (int i = 0; i < LIMITS_SHARDS; i++) {
        limits__shard *s = &l->shards[i];
        pthread_mutex_lock(&s->mu);
        n += HASH_COUNT(s->table);
        pthread_mutex_unlock(&s->mu);
    }
    return n;
}
