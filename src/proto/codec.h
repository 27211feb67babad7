/*
 * codec.h - frames and API bodies to and from bytes: protobuf and JSON.
 *
 * One generic converter serves every message of src/proto/parley.proto: it
 * walks the protobuf-c descriptors, so adding a field or a body to the schema
 * needs no code here.  JSON keys are the protobuf field names (snake_case);
 * a oneof member is a key like any other, and at most one member of a oneof
 * may be present.  The implementation is in codec.c (protobuf, the entry
 * points) and json.c (the JSON mapping).
 *
 * The JSON mapping of values: integers are JSON integers; 64-bit integers
 * too (not strings), which is why they must stay below 2^53; bool is
 * true/false; float and double are JSON numbers (integers are accepted on
 * decode); an enum is its value name (a number is accepted on decode);
 * bytes are base64 (RFC 4648 standard alphabet, with padding); a message is
 * an object; a repeated field is an array.
 *
 * Rules enforced on decode, each failing with PL_BAD_REQUEST and a one-line
 * reason in err (printable ASCII, naming the field and the message, e.g.
 * `field "seq" of SendOk: expected an integer`, with the path from the top
 * when the field is nested):
 *   - JSON: the text is exactly one object (nothing but whitespace after
 *     it) and valid UTF-8; unknown keys, wrong types, duplicate keys, two
 *     members of one oneof, nesting of messages deeper than PROTO_MAX_DEPTH,
 *     integers outside the field's range and missing proto2 required fields
 *     are errors; `null` counts as absent, also inside a oneof.
 *   - protobuf: the bytes parse as the message; every string field, at any
 *     depth, is valid UTF-8 (protobuf-c does not check it); messages nest at
 *     most PROTO_MAX_DEPTH deep.  Unknown fields are dropped.
 *   - both: 64-bit integers are within +-(2^53 - 1) (JSON numbers are
 *     doubles in browsers; enforcing it on protobuf too means every frame
 *     that decodes in one encoding can be re-encoded in the other), and
 *     float/double values are finite.
 *   - proto_frame_decode: the frame carries exactly one body.
 *
 * Encoding never fails.  JSON output contains only fields that are set
 * (has_x for optional scalars, non-NULL strings and messages that are not
 * the field's default, non-empty repeated fields, the current member of a
 * oneof), in field-number order, with no whitespace.  A set message with no
 * fields set is {}; a oneof member of message type whose case is set but
 * whose pointer is NULL is also written as an empty message (in protobuf
 * too, for the top-level message such as a Frame), so `read_ok` is sent as
 * {"read_ok":{}} either way.  Strings are escaped per RFC 8259 (\" and \\,
 * control characters as \u00XX; everything else, non-ASCII included, is
 * written as is); the caller guarantees they are valid UTF-8.  A non-finite
 * float/double is written as null.
 *
 * Pure functions over bytes: no globals, no I/O.  Decoded messages are
 * allocated through core/mem.h (the JSON parser's transient tree uses
 * jansson's allocator); free them with proto_free, and only them: a message
 * built by hand is not proto_free's to free.  Thread-safe.
 */
#ifndef PARLEY_PROTO_CODEC_H
#define PARLEY_PROTO_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/status.h"
#include "proto/parley.pb-c.h"

/* The deepest nesting of messages a decoder accepts; the top-level message
 * is depth 1, so a Frame with a SyncOk holding Entry -> Msg is depth 4. */
#define PROTO_MAX_DEPTH 32

typedef enum proto_enc {
    PROTO_JSON = 0,   /* a WebSocket text frame, an HTTP body */
    PROTO_PB = 1,     /* a WebSocket binary frame, a TCP frame, a UDP datagram */
} proto_enc;

/* Decode data[0..len) as a message of type d.  On PL_OK *out is the new
 * message (free with proto_free); otherwise *out is NULL and err holds the
 * reason, e.g. "unknown field \"tex\" in Send". */
pl_status proto_decode(const ProtobufCMessageDescriptor *d, proto_enc enc, const uint8_t *data,
                       size_t len, ProtobufCMessage **out, char *err, size_t errlen);

/* Append the encoding of m to out.  m may be any message, decoded or built
 * by hand; it is only read. */
void proto_encode(const ProtobufCMessage *m, proto_enc enc, buf *out);

/* Free a message returned by proto_decode / proto_frame_decode. NULL is ok. */
void proto_free(ProtobufCMessage *m);

/* proto_decode for a Frame, which must also carry exactly one body; if it
 * has none, err is "frame has no body". */
pl_status proto_frame_decode(proto_enc enc, const uint8_t *data, size_t len, Parley__Frame **out,
                             char *err, size_t errlen);

/* proto_decode and proto_frame_decode with every byte of the message taken
 * from arena a (a NULL a: the heap, as proto_decode).  The message lives
 * until the arena is reset or freed, and is not proto_free's to free.  For
 * the frames of a connection, decoded, handled and dropped one at a time:
 * an arena kept for that and reset after each frame makes decoding
 * allocation-free. */
pl_status proto_decode_in(arena *a, const ProtobufCMessageDescriptor *d, proto_enc enc,
                          const uint8_t *data, size_t len, ProtobufCMessage **out, char *err,
                          size_t errlen);
pl_status proto_frame_decode_in(arena *a, proto_enc enc, const uint8_t *data, size_t len,
                                Parley__Frame **out, char *err, size_t errlen);

static inline void proto_frame_encode(const Parley__Frame *f, proto_enc enc, buf *out)
{
    proto_encode(&f->base, enc, out);
}

/* The request id of a frame that failed to decode, if one can be read
 * from it (a top-level "id" in JSON, field 1 in protobuf); 0 if not. */
uint64_t proto_frame_peek_id(proto_enc enc, const uint8_t *data, size_t len);

/* The JSON key of a frame body ("send", "login_ok"...); "" for NOT_SET or
 * an unknown case.  The string is static. */
const char *proto_body_name(Parley__Frame__BodyCase body);

/* ---- Internal to src/proto: shared by codec.c and json.c. ---- */

/* The allocator of every decoded message but proto_decode_in's: pl_malloc
 * / pl_free. */
extern ProtobufCAllocator proto__allocator;

/* Where a decoder is: the depth of the message being decoded (the top one is
 * 1) and, for each level below the top, the field (and repeated index, or
 * SIZE_MAX) that leads into it, so that errors can name the path. */
typedef struct proto__ctx {
    ProtobufCAllocator *al;    /* where the message's memory comes from */
    char *err;
    size_t errlen;
    unsigned depth;
    const ProtobufCFieldDescriptor *path_field[PROTO_MAX_DEPTH];
    size_t path_index[PROTO_MAX_DEPTH];
} proto__ctx;

/* size bytes from the decoder's allocator (c->al). */
void *proto__alloc(proto__ctx *c, size_t size);

/* Write `field "<f>" of <d>: <reason>` (or `field "<f>[idx]" ...` for an
 * element of a repeated field; idx is SIZE_MAX otherwise), plus
 * ` (at a.b[2].c)` when the field is below the top-level message, into
 * c->err, and return PL_BAD_REQUEST.  With f NULL the reason is written
 * alone (it names the message itself) and the path is the message's. */
pl_status proto__fail(proto__ctx *c, const ProtobufCMessageDescriptor *d,
                      const ProtobufCFieldDescriptor *f, size_t idx, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Like snprintf into err, then every byte outside printable ASCII becomes
 * '?', so that the reason is one safe line whatever the input was. */
void proto__errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Read a varint at p[*i..len) into *v, advancing *i; false if it is cut or
 * longer than 10 bytes. */
bool proto__read_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v);

/* Whether the value at p of a field without presence (proto3) is zero. */
int proto__zeroish(const ProtobufCFieldDescriptor *f, const void *p);

/* Whether a non-repeated field of m is set, by the same rules protobuf-c
 * uses to decide what to pack, except that the current member of a oneof
 * of message type counts as set even when its pointer is NULL.  Inline:
 * both codecs ask it for every field of every message. */
static inline int proto__present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)m;
    const void *p = base + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) return 0;
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            const char *s = *(char *const *)p;
            return s && s != f->default_value;
        }
        return 1;
    }
    switch (f->label) {
    case PROTOBUF_C_LABEL_OPTIONAL:
        if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) {
            const void *q = *(void *const *)p;
            return q && q != f->default_value;
        }
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset) != 0;
    case PROTOBUF_C_LABEL_REQUIRED:
        return 1;
    case PROTOBUF_C_LABEL_NONE:
        return !proto__zeroish(f, p);
    case PROTOBUF_C_LABEL_REPEATED:
        return *(const size_t *)(base + f->quantifier_offset) != 0;
    }
    return 0;
}

/* The size of one element of a repeated field of type t, as protobuf-c lays
 * out the array. */
size_t proto__elem_size(ProtobufCType t);

/* The JSON halves of proto_decode and proto_encode. */
pl_status proto__json_decode(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                             ProtobufCMessage **out, proto__ctx *c);
void proto__json_encode(const ProtobufCMessage *m, buf *out);

#endif
