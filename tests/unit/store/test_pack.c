/*
 * test_pack.c - the direct packing of the records written with every
 * message (src/store/pack.c) gives exactly protobuf-c's bytes, for
 * strings absent, empty, short and longer than 127 bytes, numbers absent,
 * zero, small and at the top of the range, and lists of every length.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "store/pack.h"

static void same(const ProtobufCMessage *m)
{
    arena a = {0};
    size_t n = 0;
    const uint8_t *fast = store__pack_fast(m, &a, &n);
    assert_non_null(fast);
    size_t want = protobuf_c_message_get_packed_size(m);
    uint8_t *ref = malloc(want ? want : 1);
    assert_int_equal(protobuf_c_message_pack(m, ref), want);
    assert_int_equal(n, want);
    assert_memory_equal(fast, ref, want);
    free(ref);
    arena_free(&a);
}

static const uint64_t NUMS[] = {0, 1, 127, 128, 300, 16383, 16384, (uint64_t)1 << 35,
                                UINT64_MAX - 1, UINT64_MAX};
#define N_NUMS (sizeof(NUMS) / sizeof(NUMS[0]))

static char *long_string(size_t n)
{
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++) s[i] = (char)('a' + i % 26);
    s[n] = 0;
    return s;
}

static void test_msg(void **state)
{
    (void)state;
    char *l200 = long_string(200), *l20k = long_string(20000);
    const char *strs[] = {NULL, "", "ann", l200, l20k};
    for (size_t a = 0; a < 5; a++)
        for (size_t b = 0; b < 5; b++)
            for (size_t c = 0; c < 5; c++)
                for (size_t t = 0; t <= N_NUMS; t++) {
                    Parley__Rec__Msg m = PARLEY__REC__MSG__INIT;
                    m.from = (char *)strs[a];
                    m.text = (char *)strs[b];
                    m.cmid = (char *)strs[c];
                    m.has_ts = t < N_NUMS;
                    m.ts = t < N_NUMS ? NUMS[t] : 0;
                    same(&m.base);
                }
    free(l200);
    free(l20k);
}

static void test_entry(void **state)
{
    (void)state;
    char *l300 = long_string(300);
    const char *strs[] = {NULL, "", "dm:ann:bob", l300};
    for (size_t a = 0; a < 4; a++)
        for (size_t t = 0; t <= N_NUMS; t++) {
            Parley__Rec__Entry m = PARLEY__REC__ENTRY__INIT;
            m.conv = (char *)strs[a];
            m.has_seq = t < N_NUMS;
            m.seq = t < N_NUMS ? NUMS[t] : 0;
            same(&m.base);
        }
    /* An entry holding an event is left to protobuf-c. */
    Parley__Rec__Event e = PARLEY__REC__EVENT__INIT;
    Parley__Rec__Entry m = PARLEY__REC__ENTRY__INIT;
    m.event = &e;
    arena a = {0};
    size_t n;
    assert_null(store__pack_fast(&m.base, &a, &n));
    Parley__Rec__User u = PARLEY__REC__USER__INIT;
    assert_null(store__pack_fast(&u.base, &a, &n));
    arena_free(&a);
    free(l300);
}

static void test_read_pos(void **state)
{
    (void)state;
    for (size_t t = 0; t <= N_NUMS; t++) {
        Parley__Rec__ReadPos m = PARLEY__REC__READ_POS__INIT;
        m.has_seq = t < N_NUMS;
        m.seq = t < N_NUMS ? NUMS[t] : 0;
        same(&m.base);
    }
}

static void test_dedup(void **state)
{
    (void)state;
    uint64_t useqs[1000];
    for (size_t i = 0; i < 1000; i++) useqs[i] = NUMS[i % N_NUMS] + i;
    const size_t counts[] = {0, 1, 2, 3, 17, 1000};
    const char *strs[] = {NULL, "", "g:grp"};
    for (size_t a = 0; a < 3; a++)
        for (size_t t = 0; t <= N_NUMS; t++)
            for (size_t c = 0; c < 6; c++) {
                Parley__Rec__Dedup m = PARLEY__REC__DEDUP__INIT;
                m.conv = (char *)strs[a];
                m.has_seq = t < N_NUMS;
                m.seq = t < N_NUMS ? NUMS[t] : 0;
                m.has_ts = t % 2 == 0;
                m.ts = NUMS[(t + 3) % N_NUMS];
                m.n_useqs = counts[c];
                m.useqs = useqs;
                same(&m.base);
            }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg),
        cmocka_unit_test(test_entry),
        cmocka_unit_test(test_read_pos),
        cmocka_unit_test(test_dedup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
