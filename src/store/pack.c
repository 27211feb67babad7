/*
 * pack.c - the records written with every message, packed directly.
 *
 * protobuf-c packs a record by walking its descriptor twice (once for the
 * size, once for the bytes); for the four small records of every message
 * (Msg, Entry of a message, ReadPos, Dedup) that walk cost as much as
 * several of the store's own steps.  These writers produce the same bytes
 * protobuf-c does (fields in number order; an optional string when its
 * pointer is set, an optional number when its has_ flag is, a packed
 * repeated field when it has elements), which tests/unit/store/test_pack.c
 * checks against protobuf-c itself.  Everything else, and an Entry
 * holding an event, goes through protobuf-c.  Reading is always
 * protobuf-c's.
 */
#include "store/pack.h"

#include <stdbool.h>
#include <string.h>

/* All fields here have numbers below 16: a tag is one byte. */
#define TAG(field, wire) ((uint8_t)((field) << 3 | (wire)))
#define WIRE_VARINT 0
#define WIRE_LEN 2

size_t store__varint_len(uint64_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7) n++;
    return n;
}

uint8_t *store__varint_put(uint8_t *p, uint64_t v)
{
    for (; v >= 0x80; v >>= 7) *p++ = (uint8_t)(v | 0x80);
    *p++ = (uint8_t)v;
    return p;
}

/* A string field: its size, and its bytes at p. */
typedef struct sfield {
    const char *s;
    size_t len;
} sfield;

static size_t str_size(sfield *f, const char *s)
{
    f->s = s;
    f->len = 0;
    if (!s) return 0;
    f->len = strlen(s);
    return 1 + store__varint_len(f->len) + f->len;
}

static uint8_t *str_put(uint8_t *p, int field, const sfield *f)
{
    if (!f->s) return p;
    *p++ = TAG(field, WIRE_LEN);
    p = store__varint_put(p, f->len);
    memcpy(p, f->s, f->len);
    return p + f->len;
}

static size_t u64_size(bool has, uint64_t v) { return has ? 1 + store__varint_len(v) : 0; }

static uint8_t *u64_put(uint8_t *p, int field, bool has, uint64_t v)
{
    if (!has) return p;
    *p++ = TAG(field, WIRE_VARINT);
    return store__varint_put(p, v);
}

static const uint8_t *pack_msg(const Parley__Rec__Msg *m, arena *a, size_t *n)
{
    sfield from, text, cmid;
    size_t size = str_size(&from, m->from) + str_size(&text, m->text) + str_size(&cmid, m->cmid) +
                  u64_size(m->has_ts, m->ts);
    uint8_t *buf = arena_alloc(a, size ? size : 1), *p = buf;
    p = str_put(p, 1, &from);
    p = str_put(p, 2, &text);
    p = str_put(p, 3, &cmid);
    p = u64_put(p, 4, m->has_ts, m->ts);
    *n = (size_t)(p - buf);
    return buf;
}

static const uint8_t *pack_entry(const Parley__Rec__Entry *m, arena *a, size_t *n)
{
    sfield conv;
    size_t size = str_size(&conv, m->conv) + u64_size(m->has_seq, m->seq);
    uint8_t *buf = arena_alloc(a, size ? size : 1), *p = buf;
    p = str_put(p, 1, &conv);
    p = u64_put(p, 2, m->has_seq, m->seq);
    *n = (size_t)(p - buf);
    return buf;
}

static const uint8_t *pack_read_pos(const Parley__Rec__ReadPos *m, arena *a, size_t *n)
{
    uint8_t *buf = arena_alloc(a, 11), *p = buf;
    p = u64_put(p, 1, m->has_seq, m->seq);
    *n = (size_t)(p - buf);
    return buf;
}

static const uint8_t *pack_dedup(const Parley__Rec__Dedup *m, arena *a, size_t *n)
{
    sfield conv;
    size_t useqs = 0;
    for (size_t i = 0; i < m->n_useqs; i++) useqs += store__varint_len(m->useqs[i]);
    size_t size = str_size(&conv, m->conv) + u64_size(m->has_seq, m->seq) +
                  u64_size(m->has_ts, m->ts) + (m->n_useqs ? 1 + store__varint_len(useqs) + useqs : 0);
    uint8_t *buf = arena_alloc(a, size ? size : 1), *p = buf;
    p = str_put(p, 1, &conv);
    p = u64_put(p, 2, m->has_seq, m->seq);
    p = u64_put(p, 3, m->has_ts, m->ts);
    if (m->n_useqs) {
        *p++ = TAG(4, WIRE_LEN);
        p = store__varint_put(p, useqs);
        for (size_t i = 0; i < m->n_useqs; i++) p = store__varint_put(p, m->useqs[i]);
    }
    *n = (size_t)(p - buf);
    return buf;
}

const uint8_t *store__pack_fast(const ProtobufCMessage *m, arena *a, size_t *n)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (d == &parley__rec__msg__descriptor) return pack_msg((const Parley__Rec__Msg *)m, a, n);
    if (d == &parley__rec__entry__descriptor) {
        const Parley__Rec__Entry *e = (const Parley__Rec__Entry *)m;
        return e->event ? NULL : pack_entry(e, a, n);
    }
    if (d == &parley__rec__read_pos__descriptor)
        return pack_read_pos((const Parley__Rec__ReadPos *)m, a, n);
    if (d == &parley__rec__dedup__descriptor) return pack_dedup((const Parley__Rec__Dedup *)m, a, n);
    return NULL;
}
