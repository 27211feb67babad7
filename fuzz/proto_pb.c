/*
 * proto_pb.c - libFuzzer driver: arbitrary bytes as a protobuf frame.
 *
 * Decoding must fail cleanly (a one-line reason, nothing leaked) or give a
 * frame that survives re-encoding to JSON and protobuf and decoding again
 * unchanged (proto_roundtrip.h).  Seeds: fuzz/corpus/proto_pb/.
 */
#include <stddef.h>
#include <stdint.h>

#include "proto_roundtrip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Parley__Frame *f = NULL;
    char err[256];
    if (proto_frame_decode(PROTO_PB, data, size, &f, err, sizeof err) != PL_OK) {
        if (f) abort();
        proto_fuzz_check_err(err);
        return 0;
    }
    proto_fuzz_roundtrip(f);
    proto_free(&f->base);
    return 0;
}
