/*
 * test_throughput.c - how fast the embedded store appends 1:1 messages.
 *
 * Not a timed assertion.  Two shapes of traffic, each into a fresh store:
 *
 *   spread  PARLEY_STORE_BENCH_MSGS messages (default 100,000) between
 *           1,000 users, each talking to 10 others (10,000 conversations,
 *           so a batch of 1,000 messages touches about 1,000 of them)
 *   pairs   as many messages in 100 pairs (100 conversations, each sender
 *           writing to one receiver, as parley-bench dm does: a batch
 *           holds about 10 messages of every conversation)
 *
 * every message with a cmid, two inbox entries and its recipient as
 * must_exist (as the chat layer sends a dm), synced group commit as
 * configured by default.  Requests are kept in flight in a window of 4,000
 * so the store thread always finds a full batch waiting.  Prints
 * messages/s, the average batch size and the CPU time of the process per
 * message (both threads and RocksDB's), then checks that every
 * conversation and inbox was numbered gaplessly.
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

/* CPU time of the whole process (both threads and RocksDB's), in s. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

#define WINDOW 4000

/* Who talks to whom: conversation c of nconv is from -> to. */
typedef struct shape {
    const char *name;
    size_t users, nconv;
    bool pairs;            /* c: 2c -> 2c+1; else c / 10 -> the next 1..10 users */
} shape;

static const shape SPREAD = {"spread", 1000, 10000, false};
static const shape PAIRS = {"pairs", 200, 100, true};

static void conv_users(const shape *sh, size_t c, size_t *from, size_t *to)
{
    if (sh->pairs) {
        *from = 2 * c;
        *to = 2 * c + 1;
    } else {
        *from = c / 10;
        *to = (*from + 1 + c % 10) % sh->users;
    }
}

typedef struct bench {
    st_collector c;
    const shape *sh;
    uint64_t *conv_last;   /* per conversation index: highest seq seen */
    uint64_t *inbox_last;  /* per user: highest useq seen */
    size_t errors;
} bench;

static void bench_done(store_req *r)
{
    bench *b = r->udata;
    b->c.done++;
    if (r->status != PL_OK || r->append.dup) {
        b->errors++;
    } else {
        size_t conv = (size_t)r->udata2, from, to;
        conv_users(b->sh, conv, &from, &to);
        /* One submitter's requests run and complete in order, so every
         * conversation and inbox number is the previous one plus one. */
        if (r->append.seq != ++b->conv_last[conv]) b->errors++;
        if (r->append.useqs[0] != ++b->inbox_last[from]) b->errors++;
        if (r->append.useqs[1] != ++b->inbox_last[to]) b->errors++;
    }
    store_req_free(r);
}

static store_req *make(const shape *sh, size_t i)
{
    size_t conv = i % sh->nconv, from, to;
    conv_users(sh, conv, &from, &to);
    store_req *r = store_req_new(STORE_MSG_APPEND);
    char a[16], b[16], buf[64];
    snprintf(a, sizeof(a), "u%04zu", from);
    snprintf(b, sizeof(b), "u%04zu", to);
    const char **rcpt = arena_alloc(&r->arena, 2 * sizeof(*rcpt));
    rcpt[0] = arena_strdup(&r->arena, a);
    rcpt[1] = arena_strdup(&r->arena, b);
    snprintf(buf, sizeof(buf), "dm:%s:%s", strcmp(a, b) < 0 ? a : b, strcmp(a, b) < 0 ? b : a);
    r->tenant_id = "default";
    r->append.conv = arena_strdup(&r->arena, buf);
    r->append.from = rcpt[0];
    r->append.text = "a message of about the length people type, maybe a bit longer than that";
    snprintf(buf, sizeof(buf), "cm-%zu", i);
    r->append.cmid = arena_strdup(&r->arena, buf);
    r->append.rcpt = rcpt;
    r->append.n_rcpt = 2;
    r->append.must_exist = rcpt[1];
    r->udata2 = conv;
    return r;
}

static void run(const shape *sh)
{
    const char *env = getenv("PARLEY_STORE_BENCH_MSGS");
    size_t n = env ? (size_t)strtoull(env, NULL, 10) : 100000;
    char *dir = st_dir_new();
    store *s = st_open(dir);
    st_users_bulk(s, "default", "u%04zu", sh->users);
    bench b;
    memset(&b, 0, sizeof b);
    st_collector_init(&b.c);
    b.sh = sh;
    b.conv_last = pl_calloc(sh->nconv, sizeof(uint64_t));
    b.inbox_last = pl_calloc(sh->users, sizeof(uint64_t));

    store_stats before, after;
    store_get_stats(s, &before);
    double cpu0 = cpu_seconds();
    uint64_t t0 = clock_mono_ns();
    size_t submitted = 0, next_report = 100000;
    uint64_t tr = t0;
    while (b.c.done < n) {
        if (b.c.done >= next_report && n > 100000) {
            uint64_t now = clock_mono_ns();
            printf("#   %zu: %.0f messages/s over the last 100,000\n", b.c.done,
                   100000.0 / ((double)(now - tr) / 1e9));
            tr = now;
            next_report += 100000;
        }
        while (submitted < n && submitted - b.c.done < WINDOW) {
            store_req *r = make(sh, submitted++);
            r->reply_to = &b.c.mb;
            r->done = bench_done;
            r->udata = &b;
            store_submit(s, r);
        }
        st_collector_wait(&b.c, b.c.done + 1);
    }
    uint64_t t1 = clock_mono_ns();
    double cpu = cpu_seconds() - cpu0;
    store_get_stats(s, &after);
    double secs = (double)(t1 - t0) / 1e9;
    uint64_t batches = after.batches - before.batches;
    printf("# %s: %zu messages (%zu conversations, 2 inbox entries each) in %.2f s: %.0f "
           "messages/s, %llu batches, %.0f messages per batch, %.1f us of CPU per message\n",
           sh->name, n, sh->nconv, secs, (double)n / secs, (unsigned long long)batches,
           batches ? (double)n / (double)batches : 0.0, cpu * 1e6 / (double)n);
    assert_int_equal(b.errors, 0);
    uint64_t total = 0;
    for (size_t i = 0; i < sh->nconv; i++) total += b.conv_last[i];
    assert_int_equal(total, n);

    pl_free(b.conv_last);
    pl_free(b.inbox_last);
    st_collector_destroy(&b.c);
    store_close(s);
    st_dir_free(dir);
}

static void test_spread(void **state)
{
    (void)state;
    run(&SPREAD);
}

static void test_pairs(void **state)
{
    (void)state;
    run(&PAIRS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_pairs),
    };
    /* PARLEY_STORE_BENCH_SHAPE=spread or pairs runs only that one. */
    const char *only = getenv("PARLEY_STORE_BENCH_SHAPE");
    if (only && strcmp(only, "spread") == 0)
        return _cmocka_run_group_tests("throughput", tests, 1, NULL, NULL);
    if (only && strcmp(only, "pairs") == 0)
        return _cmocka_run_group_tests("throughput", tests + 1, 1, NULL, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
