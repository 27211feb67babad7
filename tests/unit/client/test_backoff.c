/*
 * test_backoff.c - reconnect delays and the random generator
 * (client/lib/backoff.c).
 *
 * The delay for attempt k lies in [base/2, base] with base = min(max,
 * min * 2^k); both ends are reachable; it never exceeds the maximum, even
 * for absurd attempt numbers; and over many draws the jitter spreads
 * clients out (not all on one value).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "client/lib/internal.h"

static void test_bounds(void **state)
{
    const uint32_t min = 250, max = 30000;
    for (unsigned k = 0; k < 40; k++) {
        uint64_t base = min;
        for (unsigned i = 0; i < k && base < max; i++) base *= 2;
        if (base > max) base = max;
        uint32_t lo = (uint32_t)(base - base / 2), hi = (uint32_t)base;
        assert_int_equal(parley__backoff(k, min, max, 0), lo);
        assert_int_equal(parley__backoff(k, min, max, base / 2), hi);
        assert_int_equal(parley__backoff(k, min, max, UINT64_MAX), lo + (uint32_t)(UINT64_MAX % (base / 2 + 1)));
        parley__rng r;
        parley__rng_seed_with(&r, k);
        for (int i = 0; i < 1000; i++) {
            uint32_t d = parley__backoff(k, min, max, parley__rng_next(&r));
            assert_in_range(d, lo, hi);
        }
    }
    assert_in_range(parley__backoff(1000000u, min, max, 12345), max / 2, max);
}

static void test_degenerate(void **state)
{
    /* min 0 counts as 1; max below min is min. */
    assert_in_range(parley__backoff(0, 0, 0, 7), 1, 1);
    assert_in_range(parley__backoff(5, 100, 10, 7), 50, 100);
}

static void test_spread(void **state)
{
    parley__rng r;
    parley__rng_seed_with(&r, 42);
    unsigned buckets[10] = {0};
    for (int i = 0; i < 10000; i++) {
        uint32_t d = parley__backoff(3, 1000, 60000, parley__rng_next(&r)); /* [4000, 8000] */
        buckets[(d - 4000) * 10 / 4001]++;
    }
    for (int i = 0; i < 10; i++) assert_in_range(buckets[i], 800, 1200);
}

static void test_rng(void **state)
{
    parley__rng a, b;
    parley__rng_seed_with(&a, 1);
    parley__rng_seed_with(&b, 1);
    for (int i = 0; i < 100; i++) assert_int_equal(parley__rng_next(&a), parley__rng_next(&b));
    parley__rng_seed(&a);
    parley__rng_seed(&b);
    assert_true(parley__rng_next(&a) != parley__rng_next(&b));
    uint8_t out[13];
    memset(out, 0, sizeof out);
    parley__rng_bytes(&a, out, sizeof out);
    int nonzero = 0;
    for (size_t i = 0; i < sizeof out; i++) nonzero += out[i] != 0;
    assert_true(nonzero > 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_degenerate),
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_rng),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
