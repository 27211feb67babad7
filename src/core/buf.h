/*
 * buf.h - a growable byte buffer.
 *
 * Used for outbound queues, partial inbound frames and string building.
 * Invariant: 0 <= off <= len <= cap; the live bytes are data[off..len).
 * Consuming from the front advances `off`; buf_compact moves the rest down.
 * A zeroed buf is a valid empty buffer that owns no memory.
 */
#ifndef PARLEY_CORE_BUF_H
#define PARLEY_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    uint8_t *data;
    size_t off, len, cap;
} buf;

static inline size_t buf_size(const buf *b) { return b->len - b->off; }
static inline uint8_t *buf_begin(const buf *b) { return b->data ? b->data + b->off : (uint8_t *)""; }

void buf_reserve(buf *b, size_t extra);   /* room for `extra` more bytes */
void buf_append(buf *b, const void *p, size_t n);
void buf_appendc(buf *b, char c);
void buf_appends(buf *b, const char *s);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_consume(buf *b, size_t n);       /* drop n bytes from the front */
void buf_compact(buf *b);
void buf_reset(buf *b);                   /* empty, keep memory */
void buf_free(buf *b);                    /* release memory, back to zeroed */

#endif
