/*
 * mem.c - allocation wrappers (see mem.h).  The byte count uses
 * malloc_usable_size so that frees need no size; it is a relaxed atomic,
 * cheap enough for every allocation.
 */
#include "core/mem.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_size_t used;

static void *check(void *p, size_t n)
{
    if (!p && n) {
        fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", n);
        abort();
    }
    if (p) atomic_fetch_add_explicit(&used, malloc_usable_size(p), memory_order_relaxed);
    return p;
}

void *pl_malloc(size_t n) { return check(malloc(n ? n : 1), n ? n : 1); }

void *pl_calloc(size_t count, size_t n)
{
    return check(calloc(count ? count : 1, n ? n : 1), 1);
}

void *pl_realloc(void *p, size_t n)
{
    if (p) atomic_fetch_sub_explicit(&used, malloc_usable_size(p), memory_order_relaxed);
    return check(realloc(p, n ? n : 1), n ? n : 1);
}

void pl_free(void *p)
{
    if (!p) return;
    atomic_fetch_sub_explicit(&used, malloc_usable_size(p), memory_order_relaxed);
    free(p);
}

char *pl_strdup(const char *s) { return pl_strndup(s, strlen(s)); }

char *pl_strndup(const char *s, size_t n)
{
    char *d = pl_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

size_t pl_mem_used(void) { return atomic_load_explicit(&used, memory_order_relaxed); }
