/*
 * test_durability.c - what survives a reopen (counters continue gapless,
 * dedup still holds, inboxes and read positions are intact), opening
 * failures with a one-line reason, and many concurrent appends from
 * several threads numbered exactly once each.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "store/rdb.h"
#include "store_test.h"

static const char *AB[] = {"alice", "bob", NULL};

static void test_reopen(void **state)
{
    (void)state;
    char *dir = st_dir_new();
    store *s = st_open(dir);
    assert_int_equal(st_user_create(s, "t", "bob", "Bob"), PL_OK);
    store_req *first = NULL;
    for (int i = 1; i <= 5; i++) {
        char cmid[16];
        snprintf(cmid, sizeof(cmid), "c%d", i);
        store_req *r = st_append(s, "t", "dm:alice:bob", "alice", "hi", cmid, AB);
        assert_int_equal(r->status, PL_OK);
        assert_int_equal(r->append.seq, i);
        if (i == 1) first = r; else store_req_free(r);
    }
    store_close(s);

    s = st_open(dir);
    /* Counters continue where they were. */
    store_req *r = st_append(s, "t", "dm:alice:bob", "bob", "back", "b1", AB);
    assert_int_equal(r->status, PL_OK);
    assert_false(r->append.dup);
    assert_int_equal(r->append.seq, 6);
    assert_int_equal(r->append.useqs[0], 6);
    assert_int_equal(r->append.useqs[1], 6);
    store_req_free(r);
    /* Dedup holds across the reopen. */
    r = st_append(s, "t", "dm:alice:bob", "alice", "hi", "c1", AB);
    assert_int_equal(r->status, PL_OK);
    assert_true(r->append.dup);
    assert_int_equal(r->append.seq, 1);
    assert_int_equal(r->append.ts, first->append.ts);
    assert_int_equal(r->append.useqs[1], first->append.useqs[1]);
    store_req_free(r);
    store_req_free(first);
    /* Users are still there. */
    assert_int_equal(st_user_create(s, "t", "bob", "Bob"), PL_CONFLICT);
    store_close(s);
    st_dir_free(dir);
}

static void test_locked(void **state)
{
    (void)state;
    char *dir = st_dir_new();
    store *s = st_open(dir);
    store_config cfg;
    store_config_init(&cfg, dir);
    store *s2 = NULL;
    char err[256] = "";
    assert_int_not_equal(store_open(&s2, &cfg, err, sizeof(err)), 0);
    assert_null(s2);
    assert_non_null(strstr(err, "cannot open store at "));
    printf("# %s\n", err);
    assert_non_null(strstr(err, "lock"));
    assert_null(strchr(err, '\n'));
    store_close(s);
    st_dir_free(dir);
}

static void test_unusable_dir(void **state)
{
    (void)state;
    char *dir = st_dir_new();
    /* A data directory below a regular file cannot be created (even by
     * root, unlike a directory without write permission). */
    char file[300], data[320];
    snprintf(file, sizeof(file), "%s/file", dir);
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    snprintf(data, sizeof(data), "%s/data", file);
    store_config cfg;
    store_config_init(&cfg, data);
    store *s = NULL;
    char err[512] = "";
    assert_int_not_equal(store_open(&s, &cfg, err, sizeof(err)), 0);
    assert_null(s);
    assert_non_null(strstr(err, "cannot open store at "));
    assert_null(strchr(err, '\n'));

    printf("# %s\n", err);
    /* The data directory is a file. */
    store_config_init(&cfg, file);
    err[0] = 0;
    assert_int_not_equal(store_open(&s, &cfg, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "cannot open store at "));

    store_config_init(&cfg, dir);
    cfg.url = "postgres://localhost/parley";
    assert_int_not_equal(store_open(&s, &cfg, err, sizeof(err)), 0);
    assert_string_equal(err, "postgres store not built yet");
    st_dir_free(dir);
}

#define PER_THREAD 1000

typedef struct producer {
    store *s;
    int id;
    store_req *reqs[PER_THREAD];
    st_collector c;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    const char *from = p->id ? "bob" : "alice";
    for (int i = 0; i < PER_THREAD; i++) {
        char cmid[32];
        snprintf(cmid, sizeof(cmid), "p%d-%d", p->id, i);
        p->reqs[i] = st_append_req("t", "g:big", from, "load", NULL, AB);
        p->reqs[i]->append.cmid = arena_strdup(&p->reqs[i]->arena, cmid);
        st_collector_submit(&p->c, p->s, p->reqs[i]);
    }
    st_collector_wait(&p->c, PER_THREAD);
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    char *dir = st_dir_new();
    store *s = st_open(dir);
    store_stats before, after;
    store_get_stats(s, &before);
    producer *p = pl_calloc(2, sizeof(*p));
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        p[i].s = s;
        p[i].id = i;
        st_collector_init(&p[i].c);
        assert_int_equal(pthread_create(&th[i], NULL, produce, &p[i]), 0);
    }
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    store_get_stats(s, &after);

    const int n = 2 * PER_THREAD;
    char *seen_seq = pl_calloc(n + 1, 1), *seen_useq = pl_calloc(n + 1, 1);
    for (int t = 0; t < 2; t++) {
        uint64_t last = 0;
        for (int i = 0; i < PER_THREAD; i++) {
            store_req *r = p[t].reqs[i];
            assert_int_equal(r->status, PL_OK);
            assert_false(r->append.dup);
            uint64_t seq = r->append.seq;
            assert_true(seq >= 1 && seq <= (uint64_t)n);
            assert_false(seen_seq[seq]);
            seen_seq[seq] = 1;
            /* One thread's requests are executed in its submission order. */
            assert_true(seq > last);
            last = seq;
            /* Both inboxes got the entry; bob's useq runs with the seqs. */
            assert_int_equal(r->append.useqs[1], seq);
            assert_false(seen_useq[r->append.useqs[0]]);
            seen_useq[r->append.useqs[0]] = 1;
            store_req_free(r);
        }
        st_collector_destroy(&p[t].c);
    }
    for (int i = 1; i <= n; i++) assert_true(seen_seq[i]);
    printf("# %d appends in %llu batches\n", n,
           (unsigned long long)(after.batches - before.batches));
    assert_int_equal(after.writes - before.writes, n);
    pl_free(seen_seq);
    pl_free(seen_useq);
    pl_free(p);

    /* Still gapless after a reopen. */
    store_close(s);
    s = st_open(dir);
    store_req *r = st_append(s, "t", "g:big", "alice", "after", NULL, AB);
    assert_int_equal(r->append.seq, n + 1);
    assert_int_equal(r->append.useqs[0], n + 1);
    store_req_free(r);
    store_close(s);
    st_dir_free(dir);
}

/* A tiny batch limit splits what the store thread takes into several
 * write batches; a tiny counter cache forces numbers to be reloaded from
 * disk all the time.  Numbering must not notice either. */
static void test_small_limits(void **state)
{
    (void)state;
    char *dir = st_dir_new();
    store_config cfg;
    store_config_init(&cfg, dir);
    cfg.max_batch = 2;
    cfg.counter_cache = 3;
    store *s = NULL;
    char err[256];
    assert_int_equal(store_open(&s, &cfg, err, sizeof(err)), 0);

    enum { N = 40, CONVS = 5 };
    static const char *convs[CONVS] = {"g:a", "g:b", "g:c", "g:d", "g:e"};
    static const char *users[CONVS][3] = {{"u1", "u2", NULL}, {"u2", "u3", NULL},
                                          {"u3", "u4", NULL}, {"u4", "u5", NULL},
                                          {"u5", "u1", NULL}};
    for (int round = 0; round < 2; round++) {
        st_collector c;
        st_collector_init(&c);
        store_req *r[N];
        store_stats before, after;
        store_get_stats(s, &before);
        store__rdb_hold(s, true);
        for (int i = 0; i < N; i++) {
            r[i] = st_append_req("t", convs[i % CONVS], "u1", "x", NULL, users[i % CONVS]);
            st_collector_submit(&c, s, r[i]);
        }
        store__rdb_hold(s, false);
        st_collector_wait(&c, N);
        store_get_stats(s, &after);
        assert_int_equal(after.batches - before.batches, N / 2);
        uint64_t useq[6] = {0};
        for (int i = 0; i < N; i++) {
            assert_int_equal(r[i]->status, PL_OK);
            assert_int_equal(r[i]->append.seq, (uint64_t)(round * N + i) / CONVS + 1);
            for (int k = 0; k < 2; k++) {
                int u = users[i % CONVS][k][1] - '0';
                if (useq[u]) assert_int_equal(r[i]->append.useqs[k], useq[u] + 1);
                useq[u] = r[i]->append.useqs[k];
            }
            store_req_free(r[i]);
        }
        /* Every user is in two conversations: 2 * N / CONVS entries per round. */
        for (int u = 1; u <= 5; u++) assert_int_equal(useq[u], (uint64_t)(round + 1) * 2 * N / CONVS);
        st_collector_destroy(&c);
    }
    store_close(s);
    st_dir_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_locked),
        cmocka_unit_test(test_unusable_dir),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_small_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
