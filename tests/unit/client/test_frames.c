/*
 * test_frames.c - libparley's framing (client/lib/frames.c): WebSocket
 * client frames out (masked) and server frames in, and the TCP length
 * prefix, with every input split at every byte position.
 *
 * A stream of server frames (text, binary, fragmented messages with
 * interleaved control frames, empty payloads, 16- and 64-bit lengths) is
 * fed in two pieces split at each position, a byte at a time, and whole;
 * what comes out must be the same list of messages each time.  Then the
 * decoder's refusals (RFC 6455 section 5): masked server frames, RSV bits,
 * unknown opcodes, long or fragmented control frames, stray continuations,
 * a new message inside a fragmented one, and messages over the limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/lib/internal.h"
#include "core/mem.h"

/* What the callback saw: each message as opcode byte, 4-byte length, bytes. */
typedef struct sink {
    buf out;
    size_t count;
    size_t stop_at;
} sink;

static int collect(void *arg, unsigned op, const uint8_t *p, size_t n)
{
    sink *s = arg;
    assert_non_null(p);
    uint8_t h[5] = {(uint8_t)op, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    buf_append(&s->out, h, 5);
    buf_append(&s->out, p, n);
    s->count++;
    return s->stop_at && s->count == s->stop_at;
}

static void expect(buf *b, unsigned op, const void *p, size_t n)
{
    uint8_t h[5] = {(uint8_t)op, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    buf_append(b, h, 5);
    buf_append(b, p, n);
}

/* An unmasked (server) frame. */
static void server_frame(buf *b, bool fin, unsigned op, const void *p, size_t n)
{
    uint8_t h[14];
    size_t hl = parley__ws_header(h, fin, op, n, NULL);
    buf_append(b, h, hl);
    buf_append(b, p, n);
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed + i * 7);
}

/* The stream and the messages it must produce. */
static void build_stream(buf *stream, buf *want)
{
    static uint8_t big[70000], mid[300];
    fill(big, sizeof big, 1);
    fill(mid, sizeof mid, 2);
    server_frame(stream, true, PARLEY__WS_TEXT, "{\"id\":1}", 8);
    expect(want, PARLEY__WS_TEXT, "{\"id\":1}", 8);
    server_frame(stream, true, PARLEY__WS_BINARY, "", 0);
    expect(want, PARLEY__WS_BINARY, "", 0);
    server_frame(stream, true, PARLEY__WS_BINARY, mid, sizeof mid);      /* 16-bit length */
    expect(want, PARLEY__WS_BINARY, mid, sizeof mid);
    server_frame(stream, true, PARLEY__WS_PING, "pi", 2);
    expect(want, PARLEY__WS_PING, "pi", 2);
    /* Fragmented text with a pong and an empty fragment in the middle. */
    server_frame(stream, false, PARLEY__WS_TEXT, "hel", 3);
    server_frame(stream, false, PARLEY__WS_CONT, "", 0);
    server_frame(stream, true, PARLEY__WS_PONG, "", 0);
    expect(want, PARLEY__WS_PONG, "", 0);
    server_frame(stream, true, PARLEY__WS_CONT, "lo", 2);
    expect(want, PARLEY__WS_TEXT, "hello", 5);
    server_frame(stream, true, PARLEY__WS_BINARY, big, sizeof big);      /* 64-bit length */
    expect(want, PARLEY__WS_BINARY, big, sizeof big);
    uint8_t close[] = {0x03, 0xe8, 'b', 'y', 'e'};
    server_frame(stream, true, PARLEY__WS_CLOSE, close, sizeof close);
    expect(want, PARLEY__WS_CLOSE, close, sizeof close);
}

static int feed_split(parley__wsdec *d, const buf *stream, size_t at, sink *s)
{
    int r = parley__wsdec_feed(d, buf_begin(stream), at, collect, s);
    if (r) return r;
    return parley__wsdec_feed(d, buf_begin(stream) + at, buf_size(stream) - at, collect, s);
}

static void test_ws_split_everywhere(void **state)
{
    buf stream = {0}, want = {0};
    build_stream(&stream, &want);
    size_t total = buf_size(&stream);
    /* Every split point in the first 400 bytes and around each frame
     * boundary is where the trouble is; step through the large payload
     * more coarsely to keep the test quick. */
    for (size_t at = 0; at <= total; at += (at < 400 || at > total - 400) ? 1 : 97) {
        parley__wsdec d;
        parley__wsdec_init(&d, 1 << 20);
        sink s = {0};
        assert_int_equal(feed_split(&d, &stream, at, &s), 0);
        assert_int_equal(buf_size(&s.out), buf_size(&want));
        assert_memory_equal(buf_begin(&s.out), buf_begin(&want), buf_size(&want));
        assert_int_equal(d.hlen, 0);
        assert_false(d.in_payload);
        assert_int_equal(d.msg_op, 0);
        buf_free(&s.out);
        parley__wsdec_free(&d);
    }
    /* A byte at a time. */
    parley__wsdec d;
    parley__wsdec_init(&d, 1 << 20);
    sink s = {0};
    for (size_t i = 0; i < total; i++) assert_int_equal(parley__wsdec_feed(&d, buf_begin(&stream) + i, 1, collect, &s), 0);
    assert_memory_equal(buf_begin(&s.out), buf_begin(&want), buf_size(&want));
    buf_free(&s.out);
    parley__wsdec_free(&d);
    buf_free(&stream);
    buf_free(&want);
}

static void test_ws_stop(void **state)
{
    buf stream = {0}, want = {0};
    build_stream(&stream, &want);
    parley__wsdec d;
    parley__wsdec_init(&d, 1 << 20);
    sink s = {.stop_at = 2};
    assert_int_equal(parley__wsdec_feed(&d, buf_begin(&stream), buf_size(&stream), collect, &s), PARLEY__DEC_STOPPED);
    assert_int_equal(s.count, 2);
    buf_free(&s.out);
    parley__wsdec_free(&d);
    buf_free(&stream);
    buf_free(&want);
}

/* Feed raw bytes, whole and a byte at a time; both must give `err`. */
static void expect_error(const uint8_t *p, size_t n, size_t max, int err)
{
    for (int mode = 0; mode < 2; mode++) {
        parley__wsdec d;
        parley__wsdec_init(&d, max);
        sink s = {0};
        int r = 0;
        if (mode == 0) {
            r = parley__wsdec_feed(&d, p, n, collect, &s);
        } else {
            for (size_t i = 0; i < n && !r; i++) r = parley__wsdec_feed(&d, p + i, 1, collect, &s);
        }
        assert_int_equal(r, err);
        buf_free(&s.out);
        parley__wsdec_free(&d);
    }
}

static void test_ws_refusals(void **state)
{
    /* A masked server frame. */
    const uint8_t masked[] = {0x81, 0x82, 1, 2, 3, 4, 'a' ^ 1, 'b' ^ 2};
    expect_error(masked, sizeof masked, 100, PARLEY__DEC_PROTO);
    /* RSV1 set (no extension was negotiated). */
    const uint8_t rsv[] = {0xC1, 0x01, 'a'};
    expect_error(rsv, sizeof rsv, 100, PARLEY__DEC_PROTO);
    /* Unknown opcodes, data (3) and control (0xB). */
    const uint8_t op3[] = {0x83, 0x00};
    expect_error(op3, sizeof op3, 100, PARLEY__DEC_PROTO);
    const uint8_t opb[] = {0x8B, 0x00};
    expect_error(opb, sizeof opb, 100, PARLEY__DEC_PROTO);
    /* A fragmented ping, and a ping of 126 bytes. */
    const uint8_t fragping[] = {0x09, 0x00};
    expect_error(fragping, sizeof fragping, 100, PARLEY__DEC_PROTO);
    const uint8_t longping[] = {0x89, 0x7E, 0x00, 0x7E};
    expect_error(longping, sizeof longping, 1000, PARLEY__DEC_PROTO);
    /* A continuation with nothing to continue. */
    const uint8_t cont[] = {0x80, 0x01, 'x'};
    expect_error(cont, sizeof cont, 100, PARLEY__DEC_PROTO);
    /* A new text message inside a fragmented one. */
    const uint8_t inside[] = {0x01, 0x01, 'a', 0x81, 0x01, 'b'};
    expect_error(inside, sizeof inside, 100, PARLEY__DEC_PROTO);
    /* A 64-bit length with the top bit set. */
    const uint8_t huge[] = {0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0};
    expect_error(huge, sizeof huge, 100, PARLEY__DEC_PROTO);
    /* Over the limit: one frame, and fragments that add up. */
    const uint8_t big[] = {0x82, 0x7E, 0x01, 0x00};
    expect_error(big, sizeof big, 255, PARLEY__DEC_TOO_BIG);
    uint8_t frags[64];
    size_t n = 0;
    frags[n++] = 0x01;
    frags[n++] = 3;
    memcpy(frags + n, "abc", 3), n += 3;
    frags[n++] = 0x80;
    frags[n++] = 3;
    memcpy(frags + n, "def", 3), n += 3;
    expect_error(frags, n, 5, PARLEY__DEC_TOO_BIG);
}

static void test_ws_client_frames(void **state)
{
    /* Header shapes at the 7/16/64-bit length boundaries, masked. */
    const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
    const size_t lens[] = {0, 1, 125, 126, 65535, 65536};
    const size_t hls[] = {6, 6, 6, 8, 8, 14};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        uint8_t *payload = pl_malloc(lens[i] + 1);
        fill(payload, lens[i], (uint8_t)i);
        buf out = {0};
        parley__ws_frame(&out, PARLEY__WS_BINARY, payload, lens[i], key);
        assert_int_equal(buf_size(&out), hls[i] + lens[i]);
        const uint8_t *p = buf_begin(&out);
        assert_int_equal(p[0], 0x82);
        assert_true(p[1] & 0x80);
        assert_memory_equal(p + hls[i] - 4, key, 4);
        /* Unmask and compare. */
        uint8_t *copy = pl_malloc(lens[i] + 1);
        memcpy(copy, p + hls[i], lens[i]);
        parley__ws_mask(copy, lens[i], key, 0);
        if (lens[i]) assert_memory_equal(copy, payload, lens[i]);
        pl_free(copy);
        pl_free(payload);
        buf_free(&out);
    }
    /* Masking in pieces at any phase equals masking at once. */
    uint8_t a[37], b[37];
    fill(a, sizeof a, 9);
    memcpy(b, a, sizeof a);
    parley__ws_mask(a, sizeof a, key, 0);
    for (size_t cut = 0; cut <= sizeof b; cut++) {
        uint8_t c[37];
        memcpy(c, b, sizeof b);
        parley__ws_mask(c, cut, key, 0);
        parley__ws_mask(c + cut, sizeof c - cut, key, cut);
        assert_memory_equal(c, a, sizeof a);
    }
}

static void test_lp_split_everywhere(void **state)
{
    buf stream = {0}, want = {0};
    uint8_t mid[1000];
    fill(mid, sizeof mid, 5);
    parley__lp_frame(&stream, "abc", 3);
    expect(&want, PARLEY__WS_BINARY, "abc", 3);
    parley__lp_frame(&stream, "", 0);
    expect(&want, PARLEY__WS_BINARY, "", 0);
    parley__lp_frame(&stream, mid, sizeof mid);
    expect(&want, PARLEY__WS_BINARY, mid, sizeof mid);
    parley__lp_frame(&stream, "z", 1);
    expect(&want, PARLEY__WS_BINARY, "z", 1);
    size_t total = buf_size(&stream);
    for (size_t a = 0; a <= total; a++) {
        for (size_t b = a; b <= total; b += (b - a < 8 ? 1 : 61)) {
            parley__lpdec d;
            parley__lpdec_init(&d, 4096);
            sink s = {0};
            assert_int_equal(parley__lpdec_feed(&d, buf_begin(&stream), a, collect, &s), 0);
            assert_int_equal(parley__lpdec_feed(&d, buf_begin(&stream) + a, b - a, collect, &s), 0);
            assert_int_equal(parley__lpdec_feed(&d, buf_begin(&stream) + b, total - b, collect, &s), 0);
            assert_int_equal(buf_size(&s.out), buf_size(&want));
            assert_memory_equal(buf_begin(&s.out), buf_begin(&want), buf_size(&want));
            assert_int_equal(d.hlen, 0);
            buf_free(&s.out);
            parley__lpdec_free(&d);
        }
    }
    /* Over the limit, from the header alone. */
    parley__lpdec d;
    parley__lpdec_init(&d, 2);
    sink s = {0};
    assert_int_equal(parley__lpdec_feed(&d, buf_begin(&stream), 4, collect, &s), PARLEY__DEC_TOO_BIG);
    parley__lpdec_free(&d);
    parley__lpdec_init(&d, 2);
    for (size_t i = 0; i < 3; i++) assert_int_equal(parley__lpdec_feed(&d, buf_begin(&stream) + i, 1, collect, &s), 0);
    assert_int_equal(parley__lpdec_feed(&d, buf_begin(&stream) + 3, 1, collect, &s), PARLEY__DEC_TOO_BIG);
    parley__lpdec_free(&d);
    buf_free(&s.out);
    buf_free(&stream);
    buf_free(&want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_split_everywhere),
        cmocka_unit_test(test_ws_stop),
        cmocka_unit_test(test_ws_refusals),
        cmocka_unit_test(test_ws_client_frames),
        cmocka_unit_test(test_lp_split_everywhere),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    if (pl_mem_used()) {
        fprintf(stderr, "leak: %zu bytes still allocated\n", pl_mem_used());
        return 1;
    }
    return r;
}
