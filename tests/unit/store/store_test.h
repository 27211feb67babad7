/*
 * store_test.h - helpers shared by the store's unit tests: a fresh
 * temporary data directory per test, synchronous wrappers around the
 * common requests, and a collector that waits for many asynchronous
 * completions on one mailbox.
 *
 * Include after <cmocka.h> and its prerequisites; define _GNU_SOURCE
 * before any include (for nftw).
 */
#ifndef PARLEY_TESTS_STORE_TEST_H
#define PARLEY_TESTS_STORE_TEST_H

#include <ftw.h>
#include <glob.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"
#include "store/rdb.h"
#include "store/store.h"

static inline int st_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* A new empty directory under /tmp; free with st_dir_free. */
static inline char *st_dir_new(void)
{
    char tmpl[] = "/tmp/parley-store-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return pl_strdup(d);
}

/* Remove the directory and RocksDB's info LOG files of a store in it,
 * which rocksdb.c keeps in /dev/shm named after the database path. */
static inline void st_dir_free(char *dir)
{
    nftw(dir, st_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    const char *base = strrchr(dir, '/');
    char pat[300];
    snprintf(pat, sizeof(pat), "/dev/shm/*%s_*LOG*", base ? base + 1 : dir);
    glob_t g;
    if (glob(pat, 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++) remove(g.gl_pathv[i]);
    globfree(&g);
    pl_free(dir);
}

static inline store *st_open(const char *dir)
{
    store_config cfg;
    store_config_init(&cfg, dir);
    store *s = NULL;
    char err[256] = "";
    int rc = store_open(&s, &cfg, err, sizeof(err));
    if (rc) fprintf(stderr, "store_open: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(s);
    return s;
}

/* A store's closed database opened directly, for tests that look at its
 * keys: cf[0] is "default", cf[1] the dedup column family.  Close with
 * st_raw_close. */
typedef struct st_raw {
    rocksdb_t *db;
    rocksdb_options_t *o;
    rocksdb_column_family_handle_t *cf[2];
} st_raw;

static inline void st_raw_open(st_raw *d, const char *dir)
{
    char path[512], *err = NULL;
    snprintf(path, sizeof(path), "%s/rocksdb", dir);
    d->o = rocksdb_options_create();
    const char *names[2] = {"default", STORE__CF_DEDUP};
    const rocksdb_options_t *cfo[2] = {d->o, d->o};
    d->db = rocksdb_open_column_families(d->o, path, 2, names, cfo, d->cf, &err);
    if (err) {
        fprintf(stderr, "st_raw_open: %s\n", err);
        abort();
    }
}

static inline void st_raw_close(st_raw *d)
{
    rocksdb_column_family_handle_destroy(d->cf[0]);
    rocksdb_column_family_handle_destroy(d->cf[1]);
    rocksdb_close(d->db);
    rocksdb_options_destroy(d->o);
}

static inline pl_status st_user_create(store *s, const char *tenant, const char *id, const char *name)
{
    store_req *r = store_req_new(STORE_USER_CREATE);
    r->tenant_id = tenant;
    r->user = arena_alloc(&r->arena, sizeof(*r->user));
    r->user->id = id;
    r->user->name = name;
    pl_status st = store_call(s, r);
    store_req_free(r);
    return st;
}

/* An append request (not submitted); rcpt is a NULL-terminated list. */
static inline store_req *st_append_req(const char *tenant, const char *conv, const char *from,
                                const char *text, const char *cmid, const char **rcpt)
{
    store_req *r = store_req_new(STORE_MSG_APPEND);
    r->tenant_id = tenant;
    r->append.conv = conv;
    r->append.from = from;
    r->append.text = text;
    r->append.cmid = cmid;
    size_t n = 0;
    while (rcpt && rcpt[n]) n++;
    r->append.rcpt = rcpt;
    r->append.n_rcpt = n;
    return r;
}

/* Append synchronously; returns the finished request (free it). */
static inline store_req *st_append(store *s, const char *tenant, const char *conv, const char *from,
                            const char *text, const char *cmid, const char **rcpt)
{
    store_req *r = st_append_req(tenant, conv, from, text, cmid, rcpt);
    store_call(s, r);
    return r;
}

/* Collects asynchronous completions: requests submitted with
 * st_collector_submit are posted back to its mailbox, and st_collector_wait
 * runs their completions on the calling thread until n have arrived. */
typedef struct st_collector {
    mailbox mb;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int posted;
    size_t done;
    size_t wakeups;
} st_collector;

static inline void st_collector_wake(void *arg)
{
    st_collector *c = arg;
    pthread_mutex_lock(&c->mu);
    c->posted = 1;
    c->wakeups++;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static inline void st_collector_init(st_collector *c)
{
    memset(c, 0, sizeof(*c));
    mailbox_init(&c->mb, st_collector_wake, c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static inline void st_collector_destroy(st_collector *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static inline void st_collector_done(store_req *r)
{
    st_collector *c = r->udata;
    c->done++;
}

static inline void st_collector_submit(st_collector *c, store *s, store_req *r)
{
    r->reply_to = &c->mb;
    r->done = st_collector_done;
    r->udata = c;
    store_submit(s, r);
}

static inline void st_collector_wait(st_collector *c, size_t n)
{
    while (c->done < n) {
        pthread_mutex_lock(&c->mu);
        while (!c->posted) pthread_cond_wait(&c->cv, &c->mu);
        c->posted = 0;
        pthread_mutex_unlock(&c->mu);
        mailbox_run(&c->mb);
    }
}

/* Create n users named by fmt (one %zu conversion, 0..n-1), submitted
 * asynchronously in a window so the store batches them. */
static inline void st_users_bulk(store *s, const char *tenant, const char *fmt, size_t n)
{
    st_collector c;
    st_collector_init(&c);
    store_req **reqs = pl_calloc(n ? n : 1, sizeof(*reqs));
    size_t sent = 0;
    while (c.done < n) {
        while (sent < n && sent - c.done < 4000) {
            store_req *r = store_req_new(STORE_USER_CREATE);
            char id[64];
            snprintf(id, sizeof(id), fmt, sent);
            r->tenant_id = tenant;
            r->user = arena_alloc(&r->arena, sizeof(*r->user));
            r->user->id = arena_strdup(&r->arena, id);
            reqs[sent++] = r;
            st_collector_submit(&c, s, r);
        }
        st_collector_wait(&c, c.done + 1);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(reqs[i]->status, PL_OK);
        store_req_free(reqs[i]);
    }
    pl_free(reqs);
    st_collector_destroy(&c);
}

/* A GROUP_CREATE request (not submitted); users is NULL-terminated with
 * the owner first. */
static inline store_req *st_group_create_req(const char *tenant, const char *id, const char *kind,
                                             const char *name, const char **users)
{
    store_req *r = store_req_new(STORE_GROUP_CREATE);
    r->tenant_id = tenant;
    r->group = arena_alloc(&r->arena, sizeof(*r->group));
    r->group->id = id;
    r->group->kind = kind;
    r->group->name = name;
    r->group->owner = users[0];
    size_t n = 0;
    while (users[n]) n++;
    r->users = users;
    r->n_users = n;
    return r;
}

static inline pl_status st_group_create(store *s, const char *tenant, const char *id,
                                        const char *kind, const char *name, const char **users)
{
    store_req *r = st_group_create_req(tenant, id, kind, name, users);
    pl_status st = store_call(s, r);
    store_req_free(r);
    return st;
}

/* A MEMBER_ADD / MEMBER_REMOVE request (not submitted); users is
 * NULL-terminated. */
static inline store_req *st_members_req(store_op op, const char *tenant, const char *group,
                                        const char **users)
{
    store_req *r = store_req_new(op);
    r->tenant_id = tenant;
    r->group_id = group;
    size_t n = 0;
    while (users[n]) n++;
    r->users = users;
    r->n_users = n;
    return r;
}

/* A group message request (not submitted). */
static inline store_req *st_group_msg_req(const char *tenant, const char *group, const char *from,
                                          const char *text, const char *cmid)
{
    store_req *r = store_req_new(STORE_MSG_APPEND);
    r->tenant_id = tenant;
    r->append.group = group;
    char conv[300];
    snprintf(conv, sizeof(conv), "g:%s", group);
    r->append.conv = arena_strdup(&r->arena, conv);
    r->append.from = from;
    r->append.text = text;
    r->append.cmid = cmid;
    return r;
}

static inline uint64_t st_inbox_head(store *s, const char *tenant, const char *user)
{
    store_req *r = store_req_new(STORE_INBOX_HEAD);
    r->tenant_id = tenant;
    r->user_id = user;
    assert_int_equal(store_call(s, r), PL_OK);
    uint64_t h = r->head;
    store_req_free(r);
    return h;
}

/* Submit reqs[0..n) at once (the store batches them as it likes) and
 * wait for all of them. */
static inline void st_run_many(store *s, store_req **reqs, size_t n)
{
    st_collector c;
    st_collector_init(&c);
    for (size_t i = 0; i < n; i++) st_collector_submit(&c, s, reqs[i]);
    st_collector_wait(&c, n);
    st_collector_destroy(&c);
}

/* Submit reqs[0..n) while the store is held, so they run as one batch,
 * and wait for all of them; checks that they did run as one. */
static inline void st_one_batch(store *s, store_req **reqs, size_t n)
{
    st_collector c;
    st_collector_init(&c);
    store_stats before, after;
    store_get_stats(s, &before);
    store__rdb_hold(s, true);
    for (size_t i = 0; i < n; i++) st_collector_submit(&c, s, reqs[i]);
    store__rdb_hold(s, false);
    st_collector_wait(&c, n);
    store_get_stats(s, &after);
    assert_int_equal(after.batches - before.batches, 1);
    st_collector_destroy(&c);
}

#endif
