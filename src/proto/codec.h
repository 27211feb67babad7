/*
 * codec.h - frames and API bodies to and from bytes: protobuf and JSON.
 *
 * One generic converter serves every message of src/proto/parley.proto: it
 * walks the protobuf-c descriptors, so adding a field or a body to the schema
 * needs no code here.  JSON keys are the protobuf field names (snake_case);
 * a oneof member is a key like any other, and at most one member of a oneof
 * may be present.
 *
 * Rules enforced on decode (both encodings), each failing with
 * PL_BAD_REQUEST and a one-line reason in err:
 *   - JSON: the text is one object; unknown keys, wrong types, duplicate
 *     keys, nesting deeper than 32 and integers outside the field's range
 *     are errors; 64-bit integers must be below 2^53 (JSON numbers are
 *     doubles in browsers); `null` counts as absent.
 *   - protobuf: the bytes parse as the message; every string field, at any
 *     depth, is valid UTF-8 (protobuf-c does not check it).
 *   - proto_frame_decode: the frame carries exactly one body.
 *
 * Encoding never fails.  JSON output contains only fields that are set
 * (has_x for optional scalars, non-NULL strings and messages, non-empty
 * repeated fields), in field-number order, with no whitespace.  Strings are
 * escaped per RFC 8259 (control characters as \u00XX; non-ASCII is written
 * as UTF-8, not escaped).
 *
 * Pure functions over bytes: no globals, no I/O.  Decoded messages are
 * allocated through core/mem.h; free them with proto_free.  Thread-safe.
 */
#ifndef PARLEY_PROTO_CODEC_H
#define PARLEY_PROTO_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "core/buf.h"
#include "core/status.h"
#include "proto/parley.pb-c.h"

typedef enum proto_enc {
    PROTO_JSON = 0,   /* a WebSocket text frame, an HTTP body */
    PROTO_PB = 1,     /* a WebSocket binary frame, a TCP frame, a UDP datagram */
} proto_enc;

/* Decode data[0..len) as a message of type d.  On PL_OK *out is the new
 * message (free with proto_free); otherwise *out is NULL and err holds the
 * reason, e.g. "unknown field \"tex\" in Send". */
pl_status proto_decode(const ProtobufCMessageDescriptor *d, proto_enc enc, const uint8_t *data,
                       size_t len, ProtobufCMessage **out, char *err, size_t errlen);

/* Append the encoding of m to out. */
void proto_encode(const ProtobufCMessage *m, proto_enc enc, buf *out);

/* Free a message returned by proto_decode / proto_frame_decode. NULL is ok. */
void proto_free(ProtobufCMessage *m);

/* proto_decode for a Frame, which must also carry exactly one body. */
pl_status proto_frame_decode(proto_enc enc, const uint8_t *data, size_t len, Parley__Frame **out,
                             char *err, size_t errlen);

static inline void proto_frame_encode(const Parley__Frame *f, proto_enc enc, buf *out)
{
    proto_encode(&f->base, enc, out);
}

/* The JSON key of a frame body ("send", "login_ok"...); "" for NOT_SET or
 * an unknown case. */
const char *proto_body_name(Parley__Frame__BodyCase body);

#endif
