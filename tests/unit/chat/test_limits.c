/*
 * test_limits.c - the sharded rate limiter (chat/limits.h).
 *
 * Time is a fake clock passed to every call.  Each test ends by checking
 * that the limiter gave back every byte it allocated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <pthread.h>

#include "chat/limits.h"
#include "core/mem.h"

static size_t mem_before;

static int setup(void **state)
{
    mem_before = pl_mem_used();
    return 0;
}

static int teardown(void **state)
{
    assert_int_equal(pl_mem_used(), mem_before);
    return 0;
}

/* Each key has its own bucket: exhausting one leaves the others alone. */
static void test_keys_independent(void **state)
{
    limits *l = limits_new();
    for (int i = 0; i < 3; i++) assert_int_equal(limits_take(l, "t/alice", 100, 1, 3), 0);
    assert_int_equal(limits_take(l, "t/alice", 100, 1, 3), 1000);
    assert_int_equal(limits_take(l, "t/bob", 100, 1, 3), 0);
    /* A key that is a prefix of another is a different key. */
    assert_int_equal(limits_take(l, "t/ali", 100, 1, 3), 0);
    assert_int_equal(limits_take(l, "", 100, 1, 3), 0);
    assert_int_equal(limits_count(l), 4);
    assert_int_equal(limits_take(l, "t/alice", 1100, 1, 3), 0);
    assert_int_equal(limits_take(l, "t/alice", 1100, 1, 3), 1000);
    limits_free(l);
}

/* Thousands of keys land in every shard, and each keeps its own state. */
static void test_many_keys_across_shards(void **state)
{
    limits *l = limits_new();
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        assert_int_equal(limits_take(l, key, 50, 0.5, 2), 0);
        assert_int_equal(limits_take(l, key, 50, 0.5, 2), 0);
    }
    assert_int_equal(limits_count(l), 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        assert_int_equal(limits_take(l, key, 50, 0.5, 2), 2000);
    }
    assert_int_equal(limits_count(l), 5000);
    limits_free(l);
}

/* rate <= 0 is unlimited and creates no bucket. */
static void test_unlimited_no_entry(void **state)
{
    limits *l = limits_new();
    for (int i = 0; i < 100; i++) assert_int_equal(limits_take(l, "k", 1, 0, 1), 0);
    assert_int_equal(limits_count(l), 0);
    limits_free(l);
}

/* Sweep drops exactly the buckets idle for max_idle_ms or longer, and a
 * dropped key starts again with a full bucket. */
static void test_sweep(void **state)
{
    limits *l = limits_new();
    assert_int_equal(limits_take(l, "old", 1000, 1, 1), 0);
    assert_int_equal(limits_take(l, "mid", 5000, 1, 1), 0);
    assert_int_equal(limits_take(l, "new", 9000, 1, 1), 0);
    /* A refused take touches the bucket too. */
    assert_int_equal(limits_take(l, "old", 1000, 1, 1), 1000);
    assert_int_equal(limits_count(l), 3);

    assert_int_equal(limits_sweep(l, 10000, 10000), 0);
    assert_int_equal(limits_sweep(l, 10999, 10000), 0);
    assert_int_equal(limits_sweep(l, 11000, 10000), 1);  /* "old" */
    assert_int_equal(limits_count(l), 2);
    assert_int_equal(limits_sweep(l, 15000, 10000), 1);  /* "mid" */
    /* A bucket last touched after "now" (clock skew) is not idle. */
    assert_int_equal(limits_sweep(l, 8000, 0), 0);
    assert_int_equal(limits_count(l), 1);
    assert_int_equal(limits_sweep(l, 9000, 0), 1);
    assert_int_equal(limits_count(l), 0);

    assert_int_equal(limits_take(l, "old", 20000, 1, 1), 0);
    assert_int_equal(limits_take(l, "old", 20000, 1, 1), 1000);
    limits_free(l);
}

/* Sweeping a large table drops every idle bucket and only those. */
static void test_sweep_many(void **state)
{
    limits *l = limits_new();
    char key[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof key, "u%d", i);
        assert_int_equal(limits_take(l, key, (i % 2) ? 100 : 200, 1, 1), 0);
    }
    assert_int_equal(limits_sweep(l, 150, 50), 1500);
    assert_int_equal(limits_count(l), 1500);
    assert_int_equal(limits_sweep(l, 250, 50), 1500);
    assert_int_equal(limits_count(l), 0);
    limits_free(l);
}

/*
 * Four threads hammer one key and many shared keys with the clock stopped:
 * exactly `burst` takes succeed per key in total, whoever makes them.
 */
#define THREADS 4
#define BURST 1000
#define SHARED_KEYS 64

typedef struct worker {
    limits *l;
    int allowed_one;
    int allowed_many;
} worker;

static void *hammer(void *arg)
{
    worker *w = arg;
    char key[32];
    for (int i = 0; i < BURST; i++) {
        if (limits_take(w->l, "tenant/hot-user", 42, 10, BURST) == 0) w->allowed_one++;
        for (int k = 0; k < SHARED_KEYS; k++) {
            snprintf(key, sizeof key, "ip-%d", k);
            if (limits_take(w->l, key, 42, 10, BURST / 2) == 0) w->allowed_many++;
        }
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    limits *l = limits_new();
    pthread_t th[THREADS];
    worker w[THREADS] = {0};
    for (int i = 0; i < THREADS; i++) {
        w[i].l = l;
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
    }
    int one = 0, many = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        one += w[i].allowed_one;
        many += w[i].allowed_many;
    }
    assert_int_equal(one, BURST);
    assert_int_equal(many, SHARED_KEYS * (BURST / 2));
    assert_int_equal(limits_count(l), 1 + SHARED_KEYS);
    limits_free(l);
}

/* Peek reports what a take would, takes nothing and creates nothing. */
static void test_peek(void **state)
{
    limits *l = limits_new();
    assert_int_equal(limits_peek(l, "k", 100, 1, 2), 0);
    assert_int_equal(limits_count(l), 0);
    assert_int_equal(limits_peek(l, "k", 100, 0, 2), 0);
    assert_int_equal(limits_take(l, "k", 100, 1, 2), 0);
    assert_int_equal(limits_peek(l, "k", 100, 1, 2), 0);
    assert_int_equal(limits_peek(l, "k", 100, 1, 2), 0);
    assert_int_equal(limits_take(l, "k", 100, 1, 2), 0);
    assert_int_equal(limits_peek(l, "k", 100, 1, 2), 1000);
    assert_int_equal(limits_peek(l, "k", 600, 1, 2), 500);
    assert_int_equal(limits_peek(l, "k", 1100, 1, 2), 0);
    /* Peeking did not refill or touch the stored bucket. */
    assert_int_equal(limits_sweep(l, 1100, 1000), 1);
    limits_free(l);
}

static void test_free_null(void **state) { limits_free(NULL); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keys_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_keys_across_shards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlimited_no_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peek, setup, teardown),
        cmocka_unit_test(test_free_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
