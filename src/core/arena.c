/*
 * arena.c - bump allocator (see arena.h).  Blocks grow to fit big requests.
 *
 * Most arenas live for one request and need one standard block, so each
 * thread keeps the standard blocks it frees (up to ARENA_CACHE of them) for
 * its next arenas: a message's call, store request and push each start an
 * arena, and without the cache each of those is a 4 KB malloc and free,
 * too big for malloc's per-thread cache.  A block freed on another thread
 * than the one that allocated it stays with the thread that freed it.
 * Under AddressSanitizer the cache is off and arena_reset keeps no block,
 * so a use after arena_free or arena_reset is still reported.
 */
#include "core/arena.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "core/mem.h"

#define ARENA_BLOCK 4000 /* a standard block's capacity */
#define ARENA_CACHE 64   /* standard blocks a thread keeps */

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_NO_CACHE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_NO_CACHE 1
#endif
#endif

struct arena_block {
    arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

static _Thread_local arena_block *cache;
static _Thread_local unsigned n_cache;

#ifndef ARENA_NO_CACHE
/* Frees the blocks a thread kept when it exits. */
static void cache_drop(void *unused)
{
    (void)unused;
    while (cache) {
        arena_block *b = cache;
        cache = b->next;
        pl_free(b);
    }
    n_cache = 0;
}

static _Thread_local bool cache_registered; /* cache_drop set to run at exit */
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_key_init(void) { pthread_key_create(&cache_key, cache_drop); }
#endif

void arena_trim(void)
{
#ifndef ARENA_NO_CACHE
    cache_drop(NULL);
#endif
}

static arena_block *block_new(size_t cap)
{
    if (cap == ARENA_BLOCK && cache) {
        arena_block *b = cache;
        cache = b->next;
        n_cache--;
        return b;
    }
    arena_block *b = pl_malloc(sizeof(*b) + cap);
    b->cap = cap;
    return b;
}

static void block_free(arena_block *b)
{
#ifndef ARENA_NO_CACHE
    if (b->cap == ARENA_BLOCK && n_cache < ARENA_CACHE) {
        if (!cache_registered) {
            pthread_once(&cache_once, cache_key_init);
            pthread_setspecific(cache_key, &cache);
            cache_registered = true;
        }
        b->next = cache;
        cache = b;
        n_cache++;
        return;
    }
#endif
    pl_free(b);
}

void *arena_alloc(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        b = block_new(n > ARENA_BLOCK ? n : ARENA_BLOCK);
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
    if (!s) return NULL;
    char *d = arena_alloc(a, n + 1);
    memcpy(d, s, n);
    return d;
}

char *arena_strdup(arena *a, const char *s) { return s ? arena_strndup(a, s, strlen(s)) : NULL; }

void *arena_memdup(arena *a, const void *p, size_t n)
{
    void *d = arena_alloc(a, n);
    if (n) memcpy(d, p, n);
    return d;
}

void arena_free(arena *a)
{
    arena_block *b = a->head;
    while (b) {
        arena_block *next = b->next;
        block_free(b);
        b = next;
    }
    a->head = NULL;
}

void arena_reset(arena *a)
{
#ifdef ARENA_NO_CACHE
    /* Keep nothing, so that a pointer kept past the reset is reported. */
    arena_free(a);
    return;
#endif
    arena_block *keep = NULL, *b = a->head;
    while (b) {
        arena_block *next = b->next;
        if (!keep && b->cap == ARENA_BLOCK) keep = b;
        else block_free(b);
        b = next;
    }
    if (keep) {
        keep->used = 0;
        keep->next = NULL;
    }
    a->head = keep;
}
