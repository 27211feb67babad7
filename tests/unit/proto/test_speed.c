/*
 * test_speed.c - how many `msg` push frames per second the codec handles.
 *
 * A typical push (SPEC section 3: conv, seq, useq, from, text, ts, cmid) is
 * encoded and decoded in both encodings in a loop, reusing one output buf
 * as a connection's outbound queue would.  Under ctest the loops are short
 * and only check that every iteration gives the same bytes; with
 * PARLEY_BENCH=1 in the environment they run about a second each and the
 * rates, per core of CPU time, are the benchmark figure (build with
 * optimisation for that):
 *
 *     PARLEY_BENCH=1 build/tests/unit_proto_test_speed
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/mem.h"
#include "proto/codec.h"

static const char push[] =
    "{\"msg\":{\"conv\":\"dm:alice:bob\",\"seq\":1043,\"useq\":20417,\"from\":\"alice\",\"text\":"
    "\"Are we still on for lunch tomorrow? I can book the place near the station.\","
    "\"ts\":1763800000124,\"cmid\":\"c-8f3a91\"}}";

/* CPU time of this thread: the rate per core, not disturbed much by other
 * processes sharing the machine. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long iterations(void)
{
    const char *b = getenv("PARLEY_BENCH");
    return b && *b && strcmp(b, "0") != 0 ? 2000000 : 20000;
}

static void report(const char *what, long n, double secs, size_t bytes)
{
    print_message("%-18s %10.0f frames/s  (%zu bytes/frame, %ld frames in %.2f s of CPU)\n",
                  what, (double)n / secs, bytes, n, secs);
}

static void test_speed(void **state)
{
    (void)state;
    size_t mem_before = pl_mem_used();
    long n = iterations();
    Parley__Frame *f = NULL;
    char err[128];
    assert_int_equal(proto_frame_decode(PROTO_JSON, (const uint8_t *)push, strlen(push), &f, err,
                                        sizeof err),
                     PL_OK);
    buf json = {0}, pb = {0}, out = {0};
    proto_frame_encode(f, PROTO_JSON, &json);
    proto_frame_encode(f, PROTO_PB, &pb);
    assert_int_equal(buf_size(&json), strlen(push));

    double t = now();
    for (long i = 0; i < n; i++) {
        buf_reset(&out);
        proto_frame_encode(f, PROTO_JSON, &out);
        if (buf_size(&out) != buf_size(&json)) fail();
    }
    report("encode JSON", n, now() - t, buf_size(&json));
    assert_memory_equal(buf_begin(&out), buf_begin(&json), buf_size(&json));

    t = now();
    for (long i = 0; i < n; i++) {
        buf_reset(&out);
        proto_frame_encode(f, PROTO_PB, &out);
        if (buf_size(&out) != buf_size(&pb)) fail();
    }
    report("encode protobuf", n, now() - t, buf_size(&pb));
    assert_memory_equal(buf_begin(&out), buf_begin(&pb), buf_size(&pb));

    t = now();
    for (long i = 0; i < n; i++) {
        Parley__Frame *g;
        if (proto_frame_decode(PROTO_JSON, buf_begin(&json), buf_size(&json), &g, err, sizeof err))
            fail();
        if (g->msg->seq != 1043) fail();
        proto_free(&g->base);
    }
    report("decode JSON", n, now() - t, buf_size(&json));

    t = now();
    for (long i = 0; i < n; i++) {
        Parley__Frame *g;
        if (proto_frame_decode(PROTO_PB, buf_begin(&pb), buf_size(&pb), &g, err, sizeof err))
            fail();
        if (g->msg->seq != 1043) fail();
        proto_free(&g->base);
    }
    report("decode protobuf", n, now() - t, buf_size(&pb));

    proto_free(&f->base);
    buf_free(&json);
    buf_free(&pb);
    buf_free(&out);
    assert_int_equal(pl_mem_used(), mem_before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
