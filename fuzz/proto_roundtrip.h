/*
 * proto_roundtrip.h - the property both proto fuzz drivers check.
 *
 * A frame that decoded (from either encoding) must encode to JSON and to
 * protobuf, both encodings must decode again, and everything must agree:
 * the same JSON text and the same protobuf bytes from every copy; and a
 * decode into an arena must agree with the heap's.  Any disagreement
 * aborts, which libFuzzer reports as a crash with the input.
 */
#ifndef PARLEY_FUZZ_PROTO_ROUNDTRIP_H
#define PARLEY_FUZZ_PROTO_ROUNDTRIP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/codec.h"

static void proto_fuzz_same(const buf *a, const buf *b, const char *what)
{
    if (buf_size(a) != buf_size(b) || memcmp(buf_begin(a), buf_begin(b), buf_size(a)) != 0) {
        fprintf(stderr, "%s differ:\n  %.*s\n  %.*s\n", what, (int)buf_size(a),
                (const char *)buf_begin(a), (int)buf_size(b), (const char *)buf_begin(b));
        abort();
    }
}

/* An error reason must be one non-empty line of printable ASCII. */
static void proto_fuzz_check_err(const char *err)
{
    if (!*err) abort();
    for (const char *p = err; *p; p++)
        if (*p < 0x20 || *p > 0x7e) abort();
}

static Parley__Frame *proto_fuzz_redecode(proto_enc enc, const buf *b)
{
    Parley__Frame *f = NULL;
    char err[256];
    if (proto_frame_decode(enc, buf_begin(b), buf_size(b), &f, err, sizeof err) != PL_OK) {
        fprintf(stderr, "re-decoding %s failed: %s\n  %.*s\n",
                enc == PROTO_JSON ? "JSON" : "protobuf", err, (int)buf_size(b),
                (const char *)buf_begin(b));
        abort();
    }
    return f;
}

/* The input decoded again into an arena (proto_frame_decode_in) must give
 * the same answer: the same status and reason, or a frame with the same
 * protobuf bytes. */
static void proto_fuzz_arena_agrees(proto_enc enc, const uint8_t *data, size_t size, pl_status st,
                                    const char *err, const Parley__Frame *f)
{
    arena a = {0};
    Parley__Frame *g = NULL;
    char err2[256];
    pl_status st2 = proto_frame_decode_in(&a, enc, data, size, &g, err2, sizeof err2);
    if (st2 != st || (st != PL_OK && (g || strcmp(err, err2) != 0))) {
        fprintf(stderr, "heap and arena decodes differ: %d \"%s\" against %d \"%s\"\n", (int)st,
                st ? err : "", (int)st2, st2 ? err2 : "");
        abort();
    }
    if (st == PL_OK) {
        buf x = {0}, y = {0};
        proto_frame_encode(f, PROTO_PB, &x);
        proto_frame_encode(g, PROTO_PB, &y);
        proto_fuzz_same(&x, &y, "protobuf of the heap and the arena decode");
        buf_free(&x);
        buf_free(&y);
    }
    arena_free(&a);
}

/* Check the property for f, which decoded from the fuzzer's input. */
static void proto_fuzz_roundtrip(const Parley__Frame *f)
{
    buf j1 = {0}, p1 = {0}, j2 = {0}, p2 = {0}, j3 = {0}, p3 = {0};
    proto_frame_encode(f, PROTO_JSON, &j1);
    proto_frame_encode(f, PROTO_PB, &p1);
    Parley__Frame *from_json = proto_fuzz_redecode(PROTO_JSON, &j1);
    Parley__Frame *from_pb = proto_fuzz_redecode(PROTO_PB, &p1);
    proto_frame_encode(from_json, PROTO_JSON, &j2);
    proto_frame_encode(from_json, PROTO_PB, &p2);
    proto_frame_encode(from_pb, PROTO_JSON, &j3);
    proto_frame_encode(from_pb, PROTO_PB, &p3);
    proto_fuzz_same(&j1, &j2, "JSON of the frame and of its JSON");
    proto_fuzz_same(&j1, &j3, "JSON of the frame and of its protobuf");
    proto_fuzz_same(&p1, &p2, "protobuf of the frame and of its JSON");
    proto_fuzz_same(&p1, &p3, "protobuf of the frame and of its protobuf");
    if (from_json->body_case != f->body_case || from_pb->body_case != f->body_case) abort();
    proto_free(&from_json->base);
    proto_free(&from_pb->base);
    buf_free(&j1);
    buf_free(&p1);
    buf_free(&j2);
    buf_free(&p2);
    buf_free(&j3);
    buf_free(&p3);
}

#endif
