/*
 * test_hist.c - parley-bench's latency histogram (client/bench/hist.c):
 * bucket arithmetic, percentiles against exact answers on known
 * distributions, merging, and the edges (empty, huge values).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/bench/hist.h"

static void test_buckets(void **state)
{
    /* Every bucket's bounds index back to it, buckets tile the range
     * without gaps, and widths stay within 1/64 of their values. */
    for (unsigned i = 0; i < HIST_BUCKETS - 1; i++) {
        uint64_t lo = hist_lower(i), hi = hist_upper(i);
        assert_true(lo <= hi);
        assert_int_equal(hist_index(lo), i);
        assert_int_equal(hist_index(hi), i);
        assert_int_equal(hist_lower(i + 1), hi + 1);
        if (lo >= HIST_SUB) assert_true((hi - lo + 1) * 64 <= lo);
    }
    assert_int_equal(hist_index(0), 0);
    assert_int_equal(hist_index(127), 127);
    assert_int_equal(hist_index(128), 128);
    assert_int_equal(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
    assert_int_equal(hist_index((uint64_t)1 << 40), HIST_BUCKETS - 1);
    assert_int_equal(hist_index(((uint64_t)1 << 40) - 1), HIST_BUCKETS - 1);
    assert_int_equal(hist_index(((uint64_t)127 << 33) - 1), HIST_BUCKETS - 2);
}

/* |got - want| within 1.6% of want, and never below want. */
static void near(uint64_t got, uint64_t want)
{
    if (got < want || (double)(got - want) > (double)want / 64.0 + 1)
        fail_msg("got %llu, want %llu (+1.6%%)", (unsigned long long)got, (unsigned long long)want);
}

static void test_uniform(void **state)
{
    hist h;
    hist_init(&h);
    for (uint64_t v = 1; v <= 1000000; v++) hist_add(&h, v * 1000);   /* 1 us .. 1 s */
    assert_int_equal(h.count, 1000000);
    assert_int_equal(h.min, 1000);
    assert_int_equal(h.max, 1000000000);
    near(hist_pct(&h, 50), 500000000);
    near(hist_pct(&h, 90), 900000000);
    near(hist_pct(&h, 99), 990000000);
    near(hist_pct(&h, 99.9), 999000000);
    assert_int_equal(hist_pct(&h, 100), 1000000000);
    assert_true(hist_mean(&h) > 500000000.0 - 1 && hist_mean(&h) < 500000000.0 + 1000);
}

static void test_small_exact_and_tail(void **state)
{
    hist h;
    hist_init(&h);
    /* 999 values of 5 and one outlier: p99.9 is still 5, max the outlier. */
    for (int i = 0; i < 999; i++) hist_add(&h, 5);
    hist_add(&h, 7000000000ull);
    assert_int_equal(hist_pct(&h, 50), 5);
    assert_int_equal(hist_pct(&h, 99.9), 5);
    assert_int_equal(hist_pct(&h, 99.95), 7000000000ull);
    assert_int_equal(hist_pct(&h, 100), 7000000000ull);
    /* Percentile never exceeds the exact max. */
    hist g;
    hist_init(&g);
    hist_add(&g, 1000001);
    assert_int_equal(hist_pct(&g, 50), 1000001);
}

static void test_merge_and_empty(void **state)
{
    hist a, b, all;
    hist_init(&a);
    hist_init(&b);
    hist_init(&all);
    assert_int_equal(hist_pct(&a, 99), 0);
    assert_true(hist_mean(&a) == 0);
    srand(7);
    for (int i = 0; i < 50000; i++) {
        uint64_t v = (uint64_t)rand() % 10000000u;
        hist_add(i & 1 ? &a : &b, v);
        hist_add(&all, v);
    }
    hist m;
    hist_init(&m);
    hist_merge(&m, &a);
    hist_merge(&m, &b);
    assert_int_equal(m.count, all.count);
    assert_int_equal(m.min, all.min);
    assert_int_equal(m.max, all.max);
    assert_memory_equal(m.b, all.b, sizeof m.b);
    for (double p = 1; p <= 100; p += 7.5) assert_int_equal(hist_pct(&m, p), hist_pct(&all, p));
    /* Huge values land in the last bucket and still report exactly as max. */
    hist_add(&m, UINT64_MAX / 2);
    assert_int_equal(hist_pct(&m, 100), UINT64_MAX / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_small_exact_and_tail),
        cmocka_unit_test(test_merge_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
