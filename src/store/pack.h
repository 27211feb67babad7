/*
 * pack.h - packing the records written with every message (Msg, a
 * message's Entry, ReadPos, Dedup) without protobuf-c's descriptor walk;
 * the bytes are protobuf-c's (pack.c).
 */
#ifndef PARLEY_STORE_PACK_H
#define PARLEY_STORE_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "store/records.pb-c.h"

/* Protobuf's base-128 varint: its size, and written at p (returns the end). */
size_t store__varint_len(uint64_t v);
uint8_t *store__varint_put(uint8_t *p, uint64_t v);

/* m packed into arena a (*n bytes), or NULL if m is not one of those
 * records (pack it with protobuf-c). */
const uint8_t *store__pack_fast(const ProtobufCMessage *m, arena *a, size_t *n);

#endif
