/*
 * test_failure.c - a store whose disk refuses writes.
 *
 * The tests run as root, which ignores directory permissions, so an
 * unwritable directory cannot be provoked reliably.  A file-size limit
 * can: with RLIMIT_FSIZE below the size the WAL has reached (and SIGXFSZ
 * ignored), every further WAL write fails with EFBIG, as on a full disk.
 * The limit is set above the size of RocksDB's info LOG (in /dev/shm, see
 * rocksdb.c), since a full disk would not affect that either, and the
 * data written before is incompressible, so that reopening the database
 * (which flushes the recovered WAL to a table file) fails too while the
 * limit holds.  The limit is per process, hence a program of its own.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <sys/resource.h>

#include "store/rdb.h"
#include "store_test.h"

static const char *AB[] = {"alice", "bob", NULL};

#define LIMIT (100 * 1024)

static void limit_file_size(bool on)
{
    static struct rlimit saved;
    if (on) {
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
        struct rlimit lim = {LIMIT, saved.rlim_max};
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    } else {
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    }
}

static uint64_t head(store *s, const char *user)
{
    store_req *r = store_req_new(STORE_INBOX_HEAD);
    r->tenant_id = "t";
    r->user_id = user;
    assert_int_equal(store_call(s, r), PL_OK);
    uint64_t h = r->head;
    store_req_free(r);
    return h;
}

static void test_write_failure(void **state)
{
    (void)state;
    signal(SIGXFSZ, SIG_IGN);
    char *dir = st_dir_new();
    store *s = st_open(dir);
    /* A group whose member list the member cache holds after a message. */
    const char *gh[] = {"gina", "hal", NULL};
    for (int i = 0; i < 2; i++) assert_int_equal(st_user_create(s, "t", gh[i], NULL), PL_OK);
    assert_int_equal(st_user_create(s, "t", "ivy", NULL), PL_OK);
    assert_int_equal(st_group_create(s, "t", "grp", "group", "G", gh), PL_OK);
    store_req *gm = st_group_msg_req("t", "grp", "gina", "hi", NULL);
    assert_int_equal(store_call(s, gm), PL_OK);
    assert_int_equal(gm->append.n_rcpt, 2);
    store_req_free(gm);
    /* 300 KB of incompressible text: the WAL is well past LIMIT. */
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char text[1001];
    srand(7);
    for (int i = 1; i <= 3; i++) {
        for (int k = 0; k < 100; k++) {
            for (size_t j = 0; j < sizeof(text) - 1; j++) text[j] = alnum[rand() % 62];
            text[sizeof(text) - 1] = 0;
            char conv[32];
            snprintf(conv, sizeof(conv), "g:fill%d", k);
            store_req_free(st_append(s, "t", conv, "carol", text, NULL, NULL));
        }
        store_req *r = st_append(s, "t", "dm:alice:bob", "alice", "before", NULL, AB);
        assert_int_equal(r->status, PL_OK);
        assert_int_equal(r->append.seq, i);
        store_req_free(r);
    }
    store_req *ok = st_append(s, "t", "dm:alice:bob", "alice", "before", "kept", AB);
    assert_int_equal(ok->append.seq, 4);
    store_req_free(ok);

    /* One batch: appends (one a dup of a committed message, one of an
     * append earlier in the batch), a user, a read, a new group member and
     * a group message that goes to it. */
    limit_file_size(true);
    st_collector c;
    st_collector_init(&c);
    store_req *r[8];
    r[0] = st_append_req("t", "dm:alice:bob", "alice", "lost", "x1", AB);
    r[1] = st_append_req("t", "dm:alice:bob", "alice", "lost", "x1", AB);
    r[2] = st_append_req("t", "g:other", "bob", "lost", NULL, AB);
    r[3] = st_append_req("t", "dm:alice:bob", "alice", "before", "kept", AB);
    r[4] = store_req_new(STORE_USER_CREATE);
    r[4]->tenant_id = "t";
    r[4]->user = arena_alloc(&r[4]->arena, sizeof(*r[4]->user));
    r[4]->user->id = "carol";
    r[5] = store_req_new(STORE_INBOX_HEAD);
    r[5]->tenant_id = "t";
    r[5]->user_id = "bob";
    const char *ivy[] = {"ivy", NULL};
    r[6] = st_members_req(STORE_MEMBER_ADD, "t", "grp", ivy);
    r[7] = st_group_msg_req("t", "grp", "gina", "lost", NULL);
    store__rdb_hold(s, true);
    for (int i = 0; i < 8; i++) st_collector_submit(&c, s, r[i]);
    store__rdb_hold(s, false);
    st_collector_wait(&c, 8);
    for (int i = 0; i < 8; i++) {
        if (i == 5) continue;
        assert_int_equal(r[i]->status, PL_UNAVAILABLE);
        assert_true(r[i]->err[0] != 0);
        assert_int_equal(r[i]->append.seq, 0);
        assert_false(r[i]->append.dup);
    }
    assert_null(r[6]->useqs);
    assert_int_equal(r[7]->append.n_rcpt, 0);
    printf("# %s\n", r[0]->err);
    /* The read ran after the failed write and saw none of it. */
    assert_int_equal(r[5]->status, PL_OK);
    assert_int_equal(r[5]->head, 4);
    for (int i = 0; i < 8; i++) store_req_free(r[i]);
    st_collector_destroy(&c);

    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.failed_batches, 1);

    /* Writes keep failing cleanly while the disk refuses them (the store
     * tries to reopen the database, which fails as well). */
    store_req *w = st_append(s, "t", "dm:alice:bob", "alice", "lost", "x2", AB);
    assert_int_equal(w->status, PL_UNAVAILABLE);
    store_req_free(w);
    limit_file_size(false);

    /* Once the disk takes writes again, the store recovers by itself
     * (within a second or so): none of the failed writes were applied and
     * numbering continues gapless. */
    int tries = 0;
    for (;; tries++) {
        assert_true(tries < 50);
        w = st_append(s, "t", "dm:alice:bob", "alice", "after", "x1", AB);
        if (w->status == PL_OK) break;
        assert_int_equal(w->status, PL_UNAVAILABLE);
        store_req_free(w);
        usleep(100 * 1000);
    }
    printf("# recovered after %d retries\n", tries);
    assert_false(w->append.dup);
    assert_int_equal(w->append.seq, 5);
    assert_int_equal(w->append.useqs[0], 5);
    assert_int_equal(w->append.useqs[1], 5);
    store_req_free(w);
    assert_int_equal(head(s, "bob"), 5);
    /* The member added in the failed batch is not one: the member cache
     * was dropped with the batch. */
    gm = st_group_msg_req("t", "grp", "gina", "after", NULL);
    assert_int_equal(store_call(s, gm), PL_OK);
    assert_int_equal(gm->append.seq, 2);
    assert_int_equal(gm->append.n_rcpt, 2);
    assert_string_equal(gm->append.rcpt[1], "hal");
    assert_int_equal(gm->append.useqs[0], 3);
    store_req_free(gm);
    assert_int_equal(head(s, "ivy"), 0);

    /* And so does a reopened store. */
    store_close(s);
    s = st_open(dir);
    assert_int_equal(head(s, "bob"), 5);
    w = st_append(s, "t", "dm:alice:bob", "alice", "after", "x1", AB);
    assert_true(w->append.dup);
    assert_int_equal(w->append.seq, 5);
    store_req_free(w);
    w = st_append(s, "t", "g:other", "bob", "after", NULL, AB);
    assert_int_equal(w->append.seq, 1);
    store_req_free(w);
    assert_int_equal(st_user_create(s, "t", "carol", NULL), PL_OK);
    store_close(s);
    st_dir_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
