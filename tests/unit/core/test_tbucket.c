/*
 * test_tbucket.c - the token bucket (core/tbucket.h) driven by a fake clock.
 *
 * Time is a plain integer the tests advance by hand, so every refill and
 * every retry-after value is checked exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/tbucket.h"

/* A fresh bucket allows exactly `burst` takes at one instant, then tells
 * the caller how long to wait for the next token. */
static void test_burst_then_wait(void **state)
{
    tbucket b = {0};
    uint64_t now = 1000;
    for (int i = 0; i < 5; i++) assert_int_equal(tbucket_take(&b, now, 10, 5), 0);
    /* 10 tokens a second: one token every 100 ms. */
    assert_int_equal(tbucket_take(&b, now, 10, 5), 100);
    /* A refused take consumes nothing, so asking again says the same. */
    assert_int_equal(tbucket_take(&b, now, 10, 5), 100);
    assert_int_equal(tbucket_take(&b, now + 40, 10, 5), 60);
    assert_int_equal(tbucket_take(&b, now + 99, 10, 5), 1);
    assert_int_equal(tbucket_take(&b, now + 100, 10, 5), 0);
    assert_int_equal(tbucket_take(&b, now + 100, 10, 5), 100);
}

/* Refill is proportional to elapsed time and capped at the burst. */
static void test_refill_capped(void **state)
{
    tbucket b = {0};
    uint64_t now = 5;
    for (int i = 0; i < 3; i++) assert_int_equal(tbucket_take(&b, now, 2, 3), 0);
    assert_int_equal(tbucket_take(&b, now, 2, 3), 500);
    /* An hour later the bucket holds only `burst` tokens, not 7,200. */
    now += 3600 * 1000;
    for (int i = 0; i < 3; i++) assert_int_equal(tbucket_take(&b, now, 2, 3), 0);
    assert_int_equal(tbucket_take(&b, now, 2, 3), 500);
    /* 1.5 s gives three tokens. */
    now += 1500;
    for (int i = 0; i < 3; i++) assert_int_equal(tbucket_take(&b, now, 2, 3), 0);
    assert_true(tbucket_take(&b, now, 2, 3) > 0);
}

/* Retrying exactly after the advertised wait always succeeds, whatever
 * the rate (checks the rounding of fractional tokens). */
static void test_retry_after_is_enough(void **state)
{
    const double rates[] = {0.3, 1, 3, 7, 33.3, 1000, 2500};
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
        tbucket b = {0};
        uint64_t now = 77;
        assert_int_equal(tbucket_take(&b, now, rates[r], 1), 0);
        for (int i = 0; i < 200; i++) {
            uint64_t wait = tbucket_take(&b, now, rates[r], 1);
            assert_true(wait >= 1);
            /* One millisecond early is still too early when the wait is
             * more than a millisecond of refill. */
            if (wait > 1) assert_true(tbucket_take(&b, now + wait - 1, rates[r], 1) >= 1);
            now += wait;
            assert_int_equal(tbucket_take(&b, now, rates[r], 1), 0);
        }
    }
}

/* Rates above 1000 a second give sub-millisecond waits, reported as 1. */
static void test_fast_rate_min_wait(void **state)
{
    tbucket b = {0};
    assert_int_equal(tbucket_take(&b, 10, 5000, 1), 0);
    assert_int_equal(tbucket_take(&b, 10, 5000, 1), 1);
    assert_int_equal(tbucket_take(&b, 11, 5000, 1), 0);
}

/* rate <= 0 means unlimited; NaN is treated the same way. */
static void test_unlimited(void **state)
{
    tbucket b = {0};
    for (int i = 0; i < 1000; i++) assert_int_equal(tbucket_take(&b, 1, 0, 1), 0);
    for (int i = 0; i < 1000; i++) assert_int_equal(tbucket_take(&b, 1, -5, 1), 0);
    assert_int_equal(b.last_ms, 0);
}

/* A clock starting at zero still gives a full bucket only once, and a
 * clock going backwards neither refills nor wraps around. */
static void test_clock_edges(void **state)
{
    tbucket b = {0};
    assert_int_equal(tbucket_take(&b, 0, 1, 2), 0);
    assert_int_equal(tbucket_take(&b, 0, 1, 2), 0);
    assert_int_equal(tbucket_take(&b, 0, 1, 2), 1000);
    assert_true(b.last_ms != 0);

    tbucket c = {0};
    assert_int_equal(tbucket_take(&c, 10000, 1, 1), 0);
    assert_int_equal(tbucket_take(&c, 5000, 1, 1), 1000);
    assert_int_equal(tbucket_take(&c, 10999, 1, 1), 1);
    assert_int_equal(tbucket_take(&c, 11000, 1, 1), 0);
}

/* A burst below one counts as one, and lowering the burst between takes
 * caps the tokens already held. */
static void test_burst_edges(void **state)
{
    tbucket b = {0};
    assert_int_equal(tbucket_take(&b, 100, 1, 0), 0);
    assert_int_equal(tbucket_take(&b, 100, 1, 0.5), 1000);

    tbucket c = {0};
    assert_int_equal(tbucket_take(&c, 100, 1, 10), 0);  /* 9 left */
    assert_int_equal(tbucket_take(&c, 100, 1, 2), 0);   /* capped to 2, 1 left */
    assert_int_equal(tbucket_take(&c, 100, 1, 2), 0);
    assert_int_equal(tbucket_take(&c, 100, 1, 2), 1000);
}

/* Absurdly small rates give a large but bounded wait. */
static void test_tiny_rate(void **state)
{
    tbucket b = {0};
    assert_int_equal(tbucket_take(&b, 1, 1e-300, 1), 0);
    uint64_t w = tbucket_take(&b, 1, 1e-300, 1);
    assert_true(w >= 1000000000000ull);
    assert_true(w < UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_wait),
        cmocka_unit_test(test_refill_capped),
        cmocka_unit_test(test_retry_after_is_enough),
        cmocka_unit_test(test_fast_rate_min_wait),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_clock_edges),
        cmocka_unit_test(test_burst_edges),
        cmocka_unit_test(test_tiny_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
