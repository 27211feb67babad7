/*
 * arena.h - a bump allocator freed all at once.
 *
 * Requests that cross threads (a store request and its results, say) keep
 * every string and array they own in one arena, so the side that finishes
 * with the request frees it with one call and nothing can leak piecemeal.
 * Not thread-safe: one thread uses an arena at a time.
 */
#ifndef PARLEY_CORE_ARENA_H
#define PARLEY_CORE_ARENA_H

#include <stddef.h>

typedef struct arena_block arena_block;

typedef struct arena {
    arena_block *head;
} arena;

void *arena_alloc(arena *a, size_t n);          /* zeroed, 16-byte aligned */
char *arena_strdup(arena *a, const char *s);    /* NULL stays NULL */
char *arena_strndup(arena *a, const char *s, size_t n);
void *arena_memdup(arena *a, const void *p, size_t n);
void arena_free(arena *a);                      /* back to empty */
/* Back to empty but keeping one standard block, for an arena that is
 * about to be used again (a recycled object's). */
void arena_reset(arena *a);
/* Free the standard blocks this thread keeps for its next arenas (its
 * exit does that too): for a check that everything was given back. */
void arena_trim(void);

#endif
