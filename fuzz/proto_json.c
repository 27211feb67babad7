/*
 * proto_json.c - libFuzzer driver: arbitrary bytes as a JSON frame.
 *
 * Decoding must fail cleanly (a one-line reason, nothing leaked) or give a
 * frame that survives re-encoding to JSON and protobuf and decoding again
 * unchanged, and a decode into an arena must agree (proto_roundtrip.h).
 * Seeds: fuzz/corpus/proto_json/.
 */
#include <stddef.h>
#include <stdint.h>

#include "proto_roundtrip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Parley__Frame *f = NULL;
    char err[256];
    pl_status st = proto_frame_decode(PROTO_JSON, data, size, &f, err, sizeof err);
    proto_fuzz_arena_agrees(PROTO_JSON, data, size, st, err, f);
    if (st != PL_OK) {
        if (f) abort();
        proto_fuzz_check_err(err);
        return 0;
    }
    proto_fuzz_roundtrip(f);
    proto_free(&f->base);
    return 0;
}
