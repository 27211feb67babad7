/*
 * mem.h - allocation wrappers.
 *
 * All heap allocation in parley goes through these, so memory can be counted
 * (pl_mem_used, exported as a metric) and so one decision covers running out
 * of memory: parley aborts with a message.  A chat server that cannot allocate
 * a few bytes cannot keep its promises either; dying loudly lets the
 * supervisor restart it, and every acknowledged message is already durable.
 */
#ifndef PARLEY_CORE_MEM_H
#define PARLEY_CORE_MEM_H

#include <stddef.h>

void *pl_malloc(size_t n);
void *pl_calloc(size_t count, size_t n);
void *pl_realloc(void *p, size_t n);
void pl_free(void *p);
char *pl_strdup(const char *s);
char *pl_strndup(const char *s, size_t n);

/* Bytes currently allocated through these wrappers (approximate). */
size_t pl_mem_used(void);

#define PL_NEW(type) ((type *)pl_calloc(1, sizeof(type)))

#endif
