/*
 * test_rudp.c - reliable frames over a lossy, duplicating, reordering
 * channel (proto/rudp.c): every frame arrives exactly once, acks release
 * the sender's copies, and a silent peer is declared gone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/mem.h"
#include "proto/codec.h"
#include "proto/rudp.h"

/* A channel of datagrams in flight. */
typedef struct wire {
    uint8_t *data[4096];
    size_t len[4096];
    size_t n;
} wire;

static void wire_put(void *ud, const uint8_t *d, size_t n)
{
    wire *w = ud;
    if (w->n == 4096) return;
    w->data[w->n] = pl_malloc(n);
    memcpy(w->data[w->n], d, n);
    w->len[w->n++] = n;
}

static void wire_put_buf(wire *w, buf *b) { wire_put(w, buf_begin(b), buf_size(b)); }

static void wire_clear(wire *w)
{
    for (size_t i = 0; i < w->n; i++) pl_free(w->data[i]);
    w->n = 0;
}

static Parley__Frame ping_frame(uint64_t id)
{
    static Parley__Ping ping = PARLEY__PING__INIT;
    Parley__Frame f = PARLEY__FRAME__INIT;
    f.has_id = true;
    f.id = id;
    f.body_case = PARLEY__FRAME__BODY_PING;
    f.ping = &ping;
    return f;
}

static void test_in_order_exactly_once(void **state)
{
    size_t before = pl_mem_used();
    rudp a, b;
    rudp_init(&a);
    rudp_init(&b);
    buf out = {0};
    char err[128];
    for (uint64_t i = 1; i <= 5; i++) {
        Parley__Frame f = ping_frame(i);
        rudp_send(&a, &f, 0, &out);
        Parley__Frame *got = NULL;
        assert_int_equal(rudp_recv(&b, buf_begin(&out), buf_size(&out), &got, err, sizeof err), PL_OK);
        assert_non_null(got);
        assert_int_equal(got->id, i);
        assert_int_equal(got->dgram, i);
        proto_free(&got->base);
        /* the same datagram again is acknowledged but not handed on */
        assert_int_equal(rudp_recv(&b, buf_begin(&out), buf_size(&out), &got, err, sizeof err), PL_OK);
        assert_null(got);
    }
    assert_int_equal(rudp_unacked_count(&a), 5);
    assert_true(rudp_ack(&b, &out));
    Parley__Frame *got = NULL;
    assert_int_equal(rudp_recv(&a, buf_begin(&out), buf_size(&out), &got, err, sizeof err), PL_OK);
    assert_null(got);
    assert_int_equal(rudp_unacked_count(&a), 0);
    assert_int_equal(rudp_unacked_bytes(&a), 0);
    assert_false(rudp_ack(&b, &out));
    rudp_free(&a);
    rudp_free(&b);
    buf_free(&out);
    assert_int_equal(pl_mem_used(), before);
}

/* 2,000 frames through a channel that drops 10% (both ways), duplicates 18% and
 * shuffles; both sides poll their timers; everything arrives once. */
static void test_lossy_channel(void **state)
{
    size_t before = pl_mem_used();
    srand(7);
    rudp a, b;
    rudp_init(&a);
    rudp_init(&b);
    wire *ab = calloc(1, sizeof *ab), *ba = calloc(1, sizeof *ba);
    buf out = {0};
    char err[128];
    enum { N = 2000 };
    static unsigned char seen[N + 1];
    memset(seen, 0, sizeof seen);
    size_t delivered = 0;
    uint64_t now = 0, sent = 0;
    while (delivered < N && now < 10000000) {
        for (int k = 0; k < 8 && sent < N; k++) {
            Parley__Frame f = ping_frame(++sent);
            rudp_send(&a, &f, now, &out);
            wire_put_buf(ab, &out);
        }
        /* deliver a->b with loss, duplication and reordering */
        for (size_t i = ab->n; i > 1; i--) {
            size_t j = (size_t)rand() % i;
            uint8_t *td = ab->data[i - 1];
            size_t tl = ab->len[i - 1];
            ab->data[i - 1] = ab->data[j];
            ab->len[i - 1] = ab->len[j];
            ab->data[j] = td;
            ab->len[j] = tl;
        }
        for (size_t i = 0; i < ab->n; i++) {
            int copies = rand() % 10 < 1 ? 0 : rand() % 10 < 2 ? 2 : 1;
            for (int c = 0; c < copies; c++) {
                Parley__Frame *got = NULL;
                assert_int_equal(rudp_recv(&b, ab->data[i], ab->len[i], &got, err, sizeof err), PL_OK);
                if (got) {
                    assert_true(got->id >= 1 && got->id <= N);
                    assert_int_equal(seen[got->id], 0);
                    seen[got->id] = 1;
                    delivered++;
                    proto_free(&got->base);
                }
            }
        }
        wire_clear(ab);
        if (rudp_ack(&b, &out)) wire_put_buf(ba, &out);
        for (size_t i = 0; i < ba->n; i++) {
            if (rand() % 10 < 1) continue;
            Parley__Frame *got = NULL;
            assert_int_equal(rudp_recv(&a, ba->data[i], ba->len[i], &got, err, sizeof err), PL_OK);
            assert_null(got);
        }
        wire_clear(ba);
        now += 100;
        assert_true(rudp_poll(&a, now, wire_put, ab) >= 0);
    }
    assert_int_equal(delivered, N);
    rudp_free(&a);
    rudp_free(&b);
    wire_clear(ab);
    wire_clear(ba);
    free(ab);
    free(ba);
    buf_free(&out);
    assert_int_equal(pl_mem_used(), before);
}

static void test_silent_peer_is_gone(void **state)
{
    rudp a;
    rudp_init(&a);
    buf out = {0};
    Parley__Frame f = ping_frame(1);
    rudp_send(&a, &f, 0, &out);
    wire *w = calloc(1, sizeof *w);
    uint64_t now = 0;
    int rc = 0, resends = 0;
    while ((rc = rudp_poll(&a, now, wire_put, w)) >= 0 && now < 120000) {
        resends += rc;
        now += 50;
    }
    assert_int_equal(rc, -1);
    assert_int_equal(resends, RUDP_MAX_TRIES - 1);
    assert_true(now < 30000);
    wire_clear(w);
    free(w);
    rudp_free(&a);
    buf_free(&out);
}

static void test_bad_datagrams(void **state)
{
    rudp r;
    rudp_init(&r);
    char err[128];
    Parley__Frame *got = NULL;
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(rudp_recv(&r, junk, sizeof junk, &got, err, sizeof err), PL_BAD_REQUEST);
    assert_null(got);
    /* a body without a number */
    Parley__Frame f = ping_frame(9);
    buf b = {0};
    proto_frame_encode(&f, PROTO_PB, &b);
    assert_int_equal(rudp_recv(&r, buf_begin(&b), buf_size(&b), &got, err, sizeof err), PL_BAD_REQUEST);
    assert_non_null(strstr(err, "dgram"));
    /* a number far beyond the window is dropped without an ack */
    f.has_dgram = true;
    f.dgram = RUDP_WINDOW + 5;
    buf_reset(&b);
    proto_frame_encode(&f, PROTO_PB, &b);
    assert_int_equal(rudp_recv(&r, buf_begin(&b), buf_size(&b), &got, err, sizeof err), PL_OK);
    assert_null(got);
    assert_false(rudp_ack(&r, &b));
    buf_free(&b);
    rudp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_exactly_once),
        cmocka_unit_test(test_lossy_channel),
        cmocka_unit_test(test_silent_peer_is_gone),
        cmocka_unit_test(test_bad_datagrams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
