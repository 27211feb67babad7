/*
 * clone.c - deep copy of a message into an arena (see clone.h).
 *
 * The struct is copied whole, then every pointer it holds (strings, bytes,
 * sub-messages, repeated arrays) is replaced by a copy in the arena.  Only
 * the active member of a oneof is followed, since members share storage.
 */
#include "proto/clone.h"

#include <string.h>

static void *clone_value(const ProtobufCFieldDescriptor *fd, const void *src, void *dst, arena *a);

static size_t elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* Copy what one element at src points to; the element itself (pointer or
 * struct) is already copied at dst. */
static void *clone_value(const ProtobufCFieldDescriptor *fd, const void *src, void *dst, arena *a)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)src;
        *(char **)dst = s ? arena_strdup(a, s) : NULL;
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = src;
        ProtobufCBinaryData *d = dst;
        d->data = b->len ? arena_memdup(a, b->data, b->len) : NULL;
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)src;
        *(ProtobufCMessage **)dst = proto_clone(m, a);
        break;
    }
    default:
        break;
    }
    return dst;
}

ProtobufCMessage *proto_clone(const ProtobufCMessage *m, arena *a)
{
    if (!m) return NULL;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    ProtobufCMessage *out = arena_memdup(a, m, d->sizeof_message);
    out->unknown_fields = NULL;
    out->n_unknown_fields = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        const char *sp = (const char *)m + fd->offset;
        char *dp = (char *)out + fd->offset;
        if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which = *(const uint32_t *)((const char *)m + fd->quantifier_offset);
            if (which != fd->id) continue;
        }
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + fd->quantifier_offset);
            const void *arr = *(void *const *)sp;
            if (!n || !arr) {
                *(void **)dp = NULL;
                continue;
            }
            size_t es = elem_size(fd->type);
            char *copy = arena_memdup(a, arr, n * es);
            for (size_t k = 0; k < n; k++) clone_value(fd, (const char *)arr + k * es, copy + k * es, a);
            *(void **)dp = copy;
        } else {
            clone_value(fd, sp, dp, a);
        }
    }
    return out;
}
