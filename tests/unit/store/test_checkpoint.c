/*
 * test_checkpoint.c - the operations requests of the store: STORE_PROBE
 * (a write that changes nothing, for readiness) and STORE_CHECKPOINT (an
 * online copy of the whole store that opens as a store of its own and
 * holds every acknowledged write); and RocksDB's flush thread, which a
 * checkpoint puts to work (it flushes the memtable), runs at the lowest
 * CPU priority so its bursts do not delay messages.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>

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

/* The nice value of this process's threads named `name`: the lowest seen,
 * or 100 if there is none. */
static int thread_nice(const char *name)
{
    int lowest = 100;
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], comm[64] = "", stat[1024];
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
        fclose(f);
        comm[strcspn(comm, "\n")] = 0;
        if (strcmp(comm, name) != 0) continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = 0;
        /* after "(comm) ": state ppid pgrp session tty tpgid flags minflt
         * cminflt majflt cmajflt utime stime cutime cstime priority nice */
        const char *p = strrchr(stat, ')');
        assert_non_null(p);
        int nice = 0;
        assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %d", &nice), 1);
        if (nice < lowest) lowest = nice;
    }
    closedir(d);
    return lowest;
}

static void test_background_work_at_low_priority(void **state)
{
    (void)state;
    char *dir = st_dir_new();
    store *s = st_open(dir);
    store_req *r = st_append(s, "t", "dm:alice:bob", "alice", "hello", "c1", AB);
    assert_int_equal(r->status, PL_OK);
    store_req_free(r);
    char cpdata[4096];
    snprintf(cpdata, sizeof cpdata, "%s/copy", dir);
    assert_int_equal(mkdir(cpdata, 0700), 0);
    r = store_req_new(STORE_CHECKPOINT); /* flushes the memtable first */
    r->query = cpdata;
    assert_int_equal(store_call(s, r), PL_OK);
    store_req_free(r);
    assert_int_equal(thread_nice("rocksdb:high"), 19);
    assert_int_equal(thread_nice("parley-store"), 0);
    store_close(s);
    st_dir_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_checkpoint),
        cmocka_unit_test(test_background_work_at_low_priority),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
