/* arena.c - bump allocator (see arena.h). Blocks grow to fit big requests. */
#include "core/arena.h"

#include <string.h>

#include "core/mem.h"

struct arena_block {
    arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *arena_alloc(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 4000 ? n : 4000;
        b = pl_malloc(sizeof(*b) + cap);
        b->used = 0;
        b->cap = cap;
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
        pl_free(b);
        b = next;
    }
    a->head = NULL;
}
