/*
 * test_checkpoint.c - the operations requests of the store: STORE_PROBE
 * (a write that changes nothing, for readiness) and STORE_CHECKPOINT (an
 * online copy of the whole store that opens as a store of its own and
 * holds every acknowledged write).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store_test.h"

static const char *AB[] = {"alice", "bob", NULL};

static void test_probe(void **state)
{
    (void)state;
    char *dir = st_dir_new();
    store *s = st_open(dir);
    for (int i = 0; i < 3; i++) {
        store_req *r = store_req_new(STORE_PROBE);
        assert_int_equal(store_call(s, r), PL_OK);
        store_req_free(r);
    }
    store_close(s);
    /* the layout version it rewrote still opens */
    s = st_open(dir);
    store_close(s);
    st_dir_free(dir);
}

static void test_checkpoint(void **state)
{
    (void)state;
    char *dir = st_dir_new();
    store *s = st_open(dir);
    assert_int_equal(st_user_create(s, "t", "alice", "Alice"), PL_OK);
    for (int i = 0; i < 50; i++) {
        char cmid[16];
        snprintf(cmid, sizeof cmid, "c%d", i);
        store_req *r = st_append(s, "t", "dm:alice:bob", "alice", "hello", cmid, AB);
        assert_int_equal(r->status, PL_OK);
        store_req_free(r);
    }
    char cp[4200], cpdata[4096];
    snprintf(cpdata, sizeof cpdata, "%s/copy", dir);
    assert_int_equal(mkdir(cpdata, 0700), 0);
    snprintf(cp, sizeof cp, "%s/rocksdb", cpdata);
    store_req *r = store_req_new(STORE_CHECKPOINT);
    r->query = cpdata;
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(access(cp, F_OK), 0); /* where store_open on cpdata looks */
    store_req_free(r);
    /* a second one into the same place is refused */
    r = store_req_new(STORE_CHECKPOINT);
    r->query = cpdata;
    assert_int_equal(store_call(s, r), PL_CONFLICT);
    store_req_free(r);
    /* written after the checkpoint: not in it */
    r = st_append(s, "t", "dm:alice:bob", "alice", "later", "late", AB);
    assert_int_equal(r->status, PL_OK);
    store_req_free(r);
    store_close(s);

    store *c = st_open(cpdata);
    r = store_req_new(STORE_HISTORY);
    r->tenant_id = "t";
    r->conv = "dm:alice:bob";
    r->limit = 1000;
    assert_int_equal(store_call(c, r), PL_OK);
    assert_int_equal(r->n_msgs, 50);
    assert_int_equal(r->msgs[0].seq, 50);
    store_req_free(r);
    r = store_req_new(STORE_USER_GET);
    r->tenant_id = "t";
    r->user_id = "alice";
    assert_int_equal(store_call(c, r), PL_OK);
    store_req_free(r);
    store_close(c);
    st_dir_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
