/*
 * test_frames.c - inbound reassembly (src/net/frames.c) with the TCP port's
 * length prefix (src/net/tcpframe.c) and the WebSocket frame scanner
 * (src/net/wsproto.c).
 *
 * A stream of frames is fed split at every byte position, one byte at a
 * time, and in assorted chunk sizes; the frames that come out must be the
 * frames that went in, whole and in order, and nothing may stay buffered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/mem.h"
#include "net/net_internal.h"

/* What the frame callback collected. */
typedef struct sink {
    buf frames;     /* each frame as received, concatenated */
    size_t count;
    size_t stop_at; /* ask to stop after this many (0: never) */
} sink;

static int collect(void *arg, const uint8_t *frame, size_t len)
{
    sink *s = arg;
    buf_append(&s->frames, frame, len);
    s->count++;
    return s->stop_at && s->count == s->stop_at;
}

static void put_tcp_frame(buf *b, size_t len, uint8_t fill)
{
    uint8_t h[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    buf_append(b, h, 4);
    for (size_t i = 0; i < len; i++) buf_appendc(b, (char)(fill + i));
}

/* Feed `stream` in chunks of the given sizes (cycled; 0 = all at once). */
static int feed_chunks(buf *in, const buf *stream, const size_t *sizes, size_t n_sizes, net__scan_fn scan,
                       size_t max, sink *s)
{
    size_t off = 0, k = 0, total = buf_size(stream);
    while (off < total) {
        size_t len = n_sizes ? sizes[k++ % n_sizes] : total;
        if (len > total - off) len = total - off;
        int r = net__frames_feed(in, buf_begin(stream) + off, len, scan, max, collect, s);
        if (r != NET__FEED_OK) return r;
        off += len;
    }
    return NET__FEED_OK;
}

static const size_t tcp_sizes[] = {0, 1, 2, 3, 5, 17, 126, 300, 1000};

static void make_tcp_stream(buf *stream)
{
    for (size_t i = 0; i < sizeof tcp_sizes / sizeof tcp_sizes[0]; i++) put_tcp_frame(stream, tcp_sizes[i], (uint8_t)i);
}

static void check_tcp_result(const buf *stream, sink *s, buf *in)
{
    assert_int_equal(s->count, sizeof tcp_sizes / sizeof tcp_sizes[0]);
    assert_int_equal(buf_size(&s->frames), buf_size(stream));
    assert_memory_equal(buf_begin(&s->frames), buf_begin(stream), buf_size(stream));
    assert_int_equal(buf_size(in), 0);
}

static void test_tcp_scan(void **state)
{
    size_t total = 0;
    const uint8_t hdr[] = {0, 0, 1, 0};
    assert_int_equal(net__tcpframe_scan(hdr, 0, 1000, &total), NET__SCAN_MORE);
    assert_int_equal(net__tcpframe_scan(hdr, 3, 1000, &total), NET__SCAN_MORE);
    assert_int_equal(net__tcpframe_scan(hdr, 4, 1000, &total), NET__SCAN_FRAME);
    assert_int_equal(total, 4 + 256);
    assert_int_equal(net__tcpframe_scan(hdr, 4, 256, &total), NET__SCAN_FRAME);
    assert_int_equal(net__tcpframe_scan(hdr, 4, 255, &total), NET__SCAN_TOO_BIG);
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(net__tcpframe_scan(huge, 4, 1u << 20, &total), NET__SCAN_TOO_BIG);
    const uint8_t zero[] = {0, 0, 0, 0};
    assert_int_equal(net__tcpframe_scan(zero, 4, 0, &total), NET__SCAN_FRAME);
    assert_int_equal(total, 4);
}

static void test_tcp_split_everywhere(void **state)
{
    buf stream = {0};
    make_tcp_stream(&stream);
    size_t total = buf_size(&stream);
    for (size_t at = 0; at <= total; at++) {
        sink s = {0};
        buf in = {0};
        assert_int_equal(net__frames_feed(&in, buf_begin(&stream), at, net__tcpframe_scan, 4096, collect, &s),
                         NET__FEED_OK);
        assert_int_equal(net__frames_feed(&in, buf_begin(&stream) + at, total - at, net__tcpframe_scan, 4096,
                                          collect, &s),
                         NET__FEED_OK);
        check_tcp_result(&stream, &s, &in);
        buf_free(&s.frames);
        buf_free(&in);
    }
    buf_free(&stream);
}

static void test_tcp_chunk_sizes(void **state)
{
    buf stream = {0};
    make_tcp_stream(&stream);
    const size_t patterns[][3] = {{1, 1, 1}, {2, 3, 5}, {7, 1, 13}, {4, 4, 4}, {1000, 1, 3}};
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        sink s = {0};
        buf in = {0};
        assert_int_equal(feed_chunks(&in, &stream, patterns[i], 3, net__tcpframe_scan, 4096, &s), NET__FEED_OK);
        check_tcp_result(&stream, &s, &in);
        buf_free(&s.frames);
        buf_free(&in);
    }
    buf_free(&stream);
}

/* A frame above the limit is an error as soon as its header is seen, even
 * when it comes after good frames and in pieces. */
static void test_tcp_too_big(void **state)
{
    buf stream = {0};
    put_tcp_frame(&stream, 10, 1);
    put_tcp_frame(&stream, 101, 2);
    for (size_t at = 0; at < 18; at++) {
        sink s = {0};
        buf in = {0};
        int r = net__frames_feed(&in, buf_begin(&stream), at, net__tcpframe_scan, 100, collect, &s);
        if (r == NET__FEED_OK)
            r = net__frames_feed(&in, buf_begin(&stream) + at, 18 - at, net__tcpframe_scan, 100, collect, &s);
        assert_int_equal(r, NET__SCAN_TOO_BIG);
        assert_int_equal(s.count, 1);
        assert_int_equal(buf_size(&in), 0);
        buf_free(&s.frames);
        buf_free(&in);
    }
    buf_free(&stream);
}

/* A callback that stops the feed drops the rest. */
static void test_stop(void **state)
{
    buf stream = {0};
    make_tcp_stream(&stream);
    sink s = {.stop_at = 3};
    buf in = {0};
    assert_int_equal(net__frames_feed(&in, buf_begin(&stream), buf_size(&stream), net__tcpframe_scan, 4096, collect, &s),
                     NET__FEED_STOPPED);
    assert_int_equal(s.count, 3);
    assert_int_equal(buf_size(&in), 0);
    buf_free(&s.frames);
    buf_free(&in);
    buf_free(&stream);
}

/* A big frame kept across reads is buffered once at its full size. */
static void test_big_frame(void **state)
{
    buf stream = {0};
    put_tcp_frame(&stream, 200000, 9);
    sink s = {0};
    buf in = {0};
    const size_t sizes[] = {3, 65536};
    assert_int_equal(feed_chunks(&in, &stream, sizes, 2, net__tcpframe_scan, 1u << 20, &s), NET__FEED_OK);
    assert_int_equal(s.count, 1);
    assert_memory_equal(buf_begin(&s.frames), buf_begin(&stream), buf_size(&stream));
    buf_free(&s.frames);
    buf_free(&in);
    buf_free(&stream);
}

/* ------------------------------------------------------------------ */

/* A masked client frame. */
static void put_ws_frame(buf *b, bool fin, unsigned opcode, size_t len, bool masked)
{
    uint8_t h[14];
    size_t hl = net__ws_frame_header(h, fin, opcode, len);
    if (masked) {
        h[1] |= 0x80;
        memcpy(h + hl, "\x11\x22\x33\x44", 4);
        hl += 4;
    }
    buf_append(b, h, hl);
    for (size_t i = 0; i < len; i++) buf_appendc(b, (char)('a' + i % 26));
}

static void test_ws_scan(void **state)
{
    size_t total;
    buf b = {0};
    put_ws_frame(&b, true, NET__WS_TEXT, 5, true);
    assert_int_equal(net__ws_frame_scan(buf_begin(&b), 1, 100, &total), NET__SCAN_MORE);
    assert_int_equal(net__ws_frame_scan(buf_begin(&b), 5, 100, &total), NET__SCAN_MORE); /* mask key cut */
    assert_int_equal(net__ws_frame_scan(buf_begin(&b), 6, 100, &total), NET__SCAN_FRAME);
    assert_int_equal(total, 2 + 4 + 5);
    buf_reset(&b);

    put_ws_frame(&b, true, NET__WS_BINARY, 300, true);
    assert_int_equal(net__ws_frame_scan(buf_begin(&b), 3, 1000, &total), NET__SCAN_MORE);
    assert_int_equal(net__ws_frame_scan(buf_begin(&b), 8, 1000, &total), NET__SCAN_FRAME);
    assert_int_equal(total, 2 + 2 + 4 + 300);
    assert_int_equal(net__ws_frame_scan(buf_begin(&b), 8, 299, &total), NET__SCAN_TOO_BIG);
    buf_reset(&b);

    put_ws_frame(&b, false, NET__WS_BINARY, 70000, true);
    assert_int_equal(net__ws_frame_scan(buf_begin(&b), 13, 100000, &total), NET__SCAN_MORE);
    assert_int_equal(net__ws_frame_scan(buf_begin(&b), 14, 100000, &total), NET__SCAN_FRAME);
    assert_int_equal(total, 14 + 70000);
    buf_reset(&b);

    /* Control frames: at most 125 bytes and never fragmented. */
    const uint8_t ping126[] = {0x89, 0xfe, 0, 126};
    assert_int_equal(net__ws_frame_scan(ping126, 4, 1000, &total), NET__SCAN_PROTO);
    const uint8_t ping_frag[] = {0x09, 0x80};
    assert_int_equal(net__ws_frame_scan(ping_frag, 2, 1000, &total), NET__SCAN_PROTO);
    /* A 64-bit length with the top bit set. */
    const uint8_t top[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    assert_int_equal(net__ws_frame_scan(top, 13, SIZE_MAX, &total), NET__SCAN_MORE);
    assert_int_equal(net__ws_frame_scan(top, 14, SIZE_MAX, &total), NET__SCAN_PROTO);
    /* Control frames are not subject to max. */
    const uint8_t ping5[] = {0x89, 0x85};
    assert_int_equal(net__ws_frame_scan(ping5, 2, 0, &total), NET__SCAN_MORE);
    buf_free(&b);
}

static void test_ws_split_everywhere(void **state)
{
    buf stream = {0};
    put_ws_frame(&stream, true, NET__WS_TEXT, 0, true);
    put_ws_frame(&stream, false, NET__WS_TEXT, 10, true);
    put_ws_frame(&stream, true, NET__WS_PING, 3, true);
    put_ws_frame(&stream, true, NET__WS_CONT, 125, true);
    put_ws_frame(&stream, true, NET__WS_BINARY, 126, true);
    put_ws_frame(&stream, true, NET__WS_BINARY, 700, true);
    put_ws_frame(&stream, true, NET__WS_CLOSE, 2, true);
    size_t total = buf_size(&stream);
    for (size_t at = 0; at <= total; at++) {
        sink s = {0};
        buf in = {0};
        assert_int_equal(net__frames_feed(&in, buf_begin(&stream), at, net__ws_frame_scan, 1000, collect, &s),
                         NET__FEED_OK);
        assert_int_equal(
            net__frames_feed(&in, buf_begin(&stream) + at, total - at, net__ws_frame_scan, 1000, collect, &s),
            NET__FEED_OK);
        assert_int_equal(s.count, 7);
        assert_memory_equal(buf_begin(&s.frames), buf_begin(&stream), total);
        assert_int_equal(buf_size(&in), 0);
        buf_free(&s.frames);
        buf_free(&in);
    }
    const size_t ones[] = {1};
    sink s = {0};
    buf in = {0};
    assert_int_equal(feed_chunks(&in, &stream, ones, 1, net__ws_frame_scan, 1000, &s), NET__FEED_OK);
    assert_int_equal(s.count, 7);
    buf_free(&s.frames);
    buf_free(&in);
    buf_free(&stream);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_scan),     cmocka_unit_test(test_tcp_split_everywhere),
        cmocka_unit_test(test_tcp_chunk_sizes), cmocka_unit_test(test_tcp_too_big),
        cmocka_unit_test(test_stop),         cmocka_unit_test(test_big_frame),
        cmocka_unit_test(test_ws_scan),      cmocka_unit_test(test_ws_split_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
