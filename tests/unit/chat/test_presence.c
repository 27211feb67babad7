/*
 * test_presence.c - the presence table (chat/presence.c): online counts,
 * last seen, and the sweep that forgets users offline for long enough.
 *
 * Time is a fake wall clock passed to every call.  Each test ends by
 * checking that the table gave back every byte it allocated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chat/chat_internal.h"
#include "core/mem.h"

static size_t mem_before;
static chat c;

static int setup(void **state)
{
    mem_before = pl_mem_used();
    memset(&c, 0, sizeof c);
    presence_init(&c);
    return 0;
}

static int teardown(void **state)
{
    presence_free(&c);
    assert_int_equal(pl_mem_used(), mem_before);
    return 0;
}

/* The count crosses zero on the first device up and the last one down;
 * last seen is the time the last device went. */
static void test_devices_and_last_seen(void **state)
{
    uint64_t seen = 1;
    assert_true(presence_update(&c, "t/ann", 1, 1000, &seen));
    assert_int_equal(seen, 0);
    assert_false(presence_update(&c, "t/ann", 1, 2000, &seen));
    assert_false(presence_update(&c, "t/ann", -1, 3000, &seen));
    assert_int_equal(seen, 0);
    assert_true(presence_update(&c, "t/ann", -1, 4000, &seen));
    assert_int_equal(seen, 4000);
    /* Back online: last seen is kept for when it goes again. */
    assert_true(presence_update(&c, "t/ann", 1, 5000, &seen));
    assert_int_equal(seen, 4000);
    assert_int_equal(presence_count(&c), 1);
}

/* The sweep forgets a user only once offline for the whole linger; users
 * online, and users gone more recently, stay. */
static void test_sweep_forgets_long_offline(void **state)
{
    uint64_t seen;
    presence_update(&c, "t/ann", 1, 0, &seen);
    presence_update(&c, "t/ann", -1, 1000, &seen);    /* offline since 1000 */
    presence_update(&c, "t/bob", 1, 0, &seen);        /* online */
    presence_update(&c, "t/cy", 1, 0, &seen);
    presence_update(&c, "t/cy", -1, 50000, &seen);    /* offline since 50000 */
    assert_int_equal(presence_count(&c), 3);

    assert_int_equal(presence_sweep(&c, 1000 + 59999, 60000), 0);
    assert_int_equal(presence_count(&c), 3);
    assert_int_equal(presence_sweep(&c, 1000 + 60000, 60000), 1);
    assert_int_equal(presence_count(&c), 2);
    /* Forgotten: a new login starts from no last seen (the store has it). */
    assert_true(presence_update(&c, "t/ann", 1, 70000, &seen));
    assert_int_equal(seen, 0);

    /* Long after: only cy goes; bob and ann are online. */
    assert_int_equal(presence_sweep(&c, 10000000, 60000), 1);
    assert_int_equal(presence_count(&c), 2);
}

/* A wall clock that went back does not make everyone look long gone. */
static void test_sweep_clock_back(void **state)
{
    uint64_t seen;
    presence_update(&c, "t/ann", 1, 0, &seen);
    presence_update(&c, "t/ann", -1, 500000, &seen);
    assert_int_equal(presence_sweep(&c, 1000, 60000), 0);
    assert_int_equal(presence_count(&c), 1);
}

/* Many users across the shards: all offline, all swept. */
static void test_sweep_all_shards(void **state)
{
    uint64_t seen;
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "t/u%d", i);
        presence_update(&c, key, 1, 0, &seen);
        presence_update(&c, key, -1, 10, &seen);
    }
    assert_int_equal(presence_count(&c), 1000);
    assert_int_equal(presence_sweep(&c, 10 + 60000, 60000), 1000);
    assert_int_equal(presence_count(&c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_devices_and_last_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_forgets_long_offline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_clock_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_all_shards, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
