/*
 * test_group_throughput.c - how fast the embedded store writes messages
 * to a group of 2,000 members (write diffusion: each message is stored
 * once and gets an inbox entry per member, 2,000 keys a message).
 *
 * Not a timed assertion: it appends PARLEY_STORE_BENCH_GROUP_MSGS
 * messages (default 2,000) from changing members, each with a cmid,
 * keeping a window of requests in flight so the store always finds a
 * batch waiting, with synced group commit as configured by default.
 * Prints messages/s, deliveries/s (messages x members) and batch sizes,
 * then checks that the seqs were gapless and every member's inbox got
 * exactly one entry per message.  A second run interleaves membership
 * changes, so the member cache is dropped and reloaded as it goes.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/resource.h>

#include "core/clock.h"
#include "store_test.h"

#define MEMBERS 2000
#define WINDOW 256

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

typedef struct bench {
    st_collector c;
    uint64_t last_seq;
    size_t errors, deliveries;
} bench;

static void bench_done(store_req *r)
{
    bench *b = r->udata;
    b->c.done++;
    if (r->op == STORE_MSG_APPEND) {
        if (r->status != PL_OK || r->append.dup || r->append.seq != ++b->last_seq) b->errors++;
        b->deliveries += r->append.n_rcpt;
    } else if (r->status != PL_OK) {
        b->errors++;
    }
    store_req_free(r);
}

static store_req *make_msg(size_t i)
{
    char from[16], cmid[32];
    snprintf(from, sizeof(from), "m%04zu", (i * 37) % MEMBERS);
    snprintf(cmid, sizeof(cmid), "g-%zu", i);
    store_req *r = st_group_msg_req("t", "big", "", "a message to the whole group, of a usual length",
                                    NULL);
    r->append.from = arena_strdup(&r->arena, from);
    r->append.cmid = arena_strdup(&r->arena, cmid);
    return r;
}

/* Every 100th request (with churn) adds or removes one extra user. */
static store_req *make_churn(size_t i)
{
    store_req *r = store_req_new((i / 100) % 2 ? STORE_MEMBER_REMOVE : STORE_MEMBER_ADD);
    const char **users = arena_alloc(&r->arena, sizeof(*users));
    users[0] = "extra";
    r->tenant_id = "t";
    r->group_id = "big";
    r->users = users;
    r->n_users = 1;
    return r;
}

static void run(store *s, size_t n, bool churn)
{
    bench b;
    memset(&b, 0, sizeof b);
    st_collector_init(&b.c);
    store_stats before, after;
    store_get_stats(s, &before);
    double cpu0 = cpu_seconds();
    uint64_t t0 = clock_mono_ns();
    size_t submitted = 0, msgs = 0;
    while (b.c.done < submitted || msgs < n) {
        while (msgs < n && submitted - b.c.done < WINDOW) {
            store_req *r = churn && submitted % 100 == 99 ? make_churn(submitted) : make_msg(msgs++);
            r->reply_to = &b.c.mb;
            r->done = bench_done;
            r->udata = &b;
            submitted++;
            store_submit(s, r);
        }
        st_collector_wait(&b.c, b.c.done + 1);
    }
    double secs = (double)(clock_mono_ns() - t0) / 1e9;
    double cpu = cpu_seconds() - cpu0;
    store_get_stats(s, &after);
    uint64_t batches = after.batches - before.batches;
    printf("# %s%zu messages to %d members in %.2f s: %.0f messages/s, %.0f deliveries/s, "
           "%llu batches (%.1f messages each), %.0f us of CPU per message\n",
           churn ? "with membership changes: " : "", n, MEMBERS, secs, (double)n / secs,
           (double)b.deliveries / secs, (unsigned long long)batches,
           batches ? (double)n / (double)batches : 0.0, cpu * 1e6 / (double)n);
    assert_int_equal(b.errors, 0);
    assert_int_equal(b.last_seq, n);
    st_collector_destroy(&b.c);
}

static void test_group_throughput(void **state)
{
    (void)state;
    const char *env = getenv("PARLEY_STORE_BENCH_GROUP_MSGS");
    size_t n = env ? (size_t)strtoull(env, NULL, 10) : 2000;
    char *dir = st_dir_new();
    store *s = st_open(dir);
    st_users_bulk(s, "t", "m%04zu", MEMBERS);
    assert_int_equal(st_user_create(s, "t", "extra", NULL), PL_OK);
    store_req *r = store_req_new(STORE_GROUP_CREATE);
    const char **users = arena_alloc(&r->arena, MEMBERS * sizeof(*users));
    for (size_t i = 0; i < MEMBERS; i++) {
        char id[16];
        snprintf(id, sizeof(id), "m%04zu", i);
        users[i] = arena_strdup(&r->arena, id);
    }
    r->tenant_id = "t";
    r->group = arena_alloc(&r->arena, sizeof(*r->group));
    r->group->id = "big";
    r->group->owner = users[0];
    r->users = users;
    r->n_users = MEMBERS;
    r->limit = MEMBERS + 1;
    assert_int_equal(store_call(s, r), PL_OK);
    store_req_free(r);

    run(s, n, false);
    /* Each member: the join event, then one entry per message. */
    for (size_t i = 0; i < MEMBERS; i += 199) {
        char id[16];
        snprintf(id, sizeof(id), "m%04zu", i);
        assert_int_equal(st_inbox_head(s, "t", id), n + 1);
    }
    store_close(s);
    st_dir_free(dir);

    /* Again in a fresh store, with membership changes mixed in: the
     * numbers must come out just as gapless. */
    dir = st_dir_new();
    s = st_open(dir);
    st_users_bulk(s, "t", "m%04zu", MEMBERS);
    assert_int_equal(st_user_create(s, "t", "extra", NULL), PL_OK);
    r = store_req_new(STORE_GROUP_CREATE);
    users = arena_alloc(&r->arena, MEMBERS * sizeof(*users));
    for (size_t i = 0; i < MEMBERS; i++) {
        char id[16];
        snprintf(id, sizeof(id), "m%04zu", i);
        users[i] = arena_strdup(&r->arena, id);
    }
    r->tenant_id = "t";
    r->group = arena_alloc(&r->arena, sizeof(*r->group));
    r->group->id = "big";
    r->group->owner = users[0];
    r->users = users;
    r->n_users = MEMBERS;
    assert_int_equal(store_call(s, r), PL_OK);
    store_req_free(r);
    size_t n2 = n < 1000 ? n : 1000;
    run(s, n2, true);
    assert_int_equal(st_inbox_head(s, "t", "m1234"), n2 + 1);
    /* extra's inbox: its own join/leave events plus the messages sent
     * while it was a member, each numbered once: the head counts them. */
    store_req *ir = store_req_new(STORE_INBOX_READ);
    ir->tenant_id = "t";
    ir->user_id = "extra";
    ir->limit = 1000;
    uint64_t useq = 0;
    for (bool more = true; more;) {
        ir->after = useq;
        assert_int_equal(store_call(s, ir), PL_OK);
        for (size_t i = 0; i < ir->n_entries; i++) assert_int_equal(ir->entries[i].useq, ++useq);
        more = ir->more;
    }
    assert_int_equal(useq, ir->head);
    store_req_free(ir);
    store_close(s);
    st_dir_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
