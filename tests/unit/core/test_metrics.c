/*
 * test_metrics.c - the metrics registry (core/metrics.h): counts from many
 * threads sum exactly, registration is idempotent, histograms render
 * cumulative buckets with +Inf, _sum and _count, and scrape functions
 * appear and disappear.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/metrics.h"

#define THREADS 24
#define PER_THREAD 100000

static metric *shared_counter;

static void *count_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) metric_inc(shared_counter);
    return NULL;
}

static bool contains(const buf *b, const char *line)
{
    size_t n = strlen(line);
    const char *p = (const char *)buf_begin(b), *end = p + buf_size(b);
    for (; p + n <= end; p++)
        if (!memcmp(p, line, n)) return true;
    return false;
}

static void test_counter_threads(void **state)
{
    (void)state;
    shared_counter = metric_counter("t_threads_total", "Counted by many threads.", NULL);
    assert_non_null(shared_counter);
    /* more threads than shards: rows are shared, sums stay exact */
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, count_many, NULL);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    assert_int_equal(metric_value(shared_counter), (int64_t)THREADS * PER_THREAD);
    assert_ptr_equal(metric_counter("t_threads_total", "again", NULL), shared_counter);
    buf b = {0};
    metrics_render(&b);
    assert_true(contains(&b, "# TYPE t_threads_total counter\nt_threads_total 2400000\n"));
    buf_free(&b);
}

static void test_labels_and_gauges(void **state)
{
    (void)state;
    metric *ws = metric_gauge("t_conns", "Open connections.", "transport=\"ws\"");
    metric *tcp = metric_gauge("t_conns", "Open connections.", "transport=\"tcp\"");
    assert_ptr_not_equal(ws, tcp);
    metric_add(ws, 3);
    metric_sub(ws, 1);
    metric_sub(tcp, 2);
    metric_add(tcp, 2);
    assert_int_equal(metric_value(ws), 2);
    /* the same name as another type is refused */
    assert_null(metric_counter("t_conns", "x", "transport=\"udp\""));
    buf b = {0};
    metrics_render(&b);
    assert_true(contains(&b, "# HELP t_conns Open connections.\n# TYPE t_conns gauge\n"
                             "t_conns{transport=\"ws\"} 2\nt_conns{transport=\"tcp\"} 0\n"));
    buf_free(&b);
}

static void test_histogram(void **state)
{
    (void)state;
    metric *h = metric_histogram("t_latency_seconds", "Latency.", "op=\"send\"", metrics_seconds_ns,
                                 metrics_seconds_ns_n, 1e-9);
    metric_observe(h, 40000);          /* 40 us: the first bucket */
    metric_observe(h, 1000000);        /* exactly 1 ms: le="0.001" */
    metric_observe(h, 20000000000u);   /* 20 s: only +Inf */
    assert_int_equal(metric_value(h), 3);
    buf b = {0};
    metrics_render(&b);
    assert_true(contains(&b, "t_latency_seconds_bucket{op=\"send\",le=\"5e-05\"} 1\n"));
    assert_true(contains(&b, "t_latency_seconds_bucket{op=\"send\",le=\"0.0005\"} 1\n"));
    assert_true(contains(&b, "t_latency_seconds_bucket{op=\"send\",le=\"0.001\"} 2\n"));
    assert_true(contains(&b, "t_latency_seconds_bucket{op=\"send\",le=\"10\"} 2\n"));
    assert_true(contains(&b, "t_latency_seconds_bucket{op=\"send\",le=\"+Inf\"} 3\n"));
    assert_true(contains(&b, "t_latency_seconds_sum{op=\"send\"} 20.00104\n"));
    assert_true(contains(&b, "t_latency_seconds_count{op=\"send\"} 3\n"));
    buf_free(&b);
    metric *sz = metric_histogram("t_batch_size", "Sizes.", NULL, metrics_sizes, metrics_sizes_n, 1);
    metric_observe(sz, 3);
    b = (buf){0};
    metrics_render(&b);
    assert_true(contains(&b, "t_batch_size_bucket{le=\"2\"} 0\nt_batch_size_bucket{le=\"4\"} 1\n"));
    assert_true(contains(&b, "t_batch_size_sum 3\n"));
    buf_free(&b);
    metric_observe_n(sz, 100, 5);      /* five of 100 at once */
    metric_observe_n(sz, 7, 0);        /* none */
    assert_int_equal(metric_value(sz), 6);
    b = (buf){0};
    metrics_render(&b);
    assert_true(contains(&b, "t_batch_size_bucket{le=\"64\"} 1\nt_batch_size_bucket{le=\"128\"} 6\n"));
    assert_true(contains(&b, "t_batch_size_sum 503\n"));
    buf_free(&b);
}

static double forty_two(void *ud) { return *(double *)ud; }

static void test_scrape_functions(void **state)
{
    (void)state;
    double v = 42.5;
    metric_fn(METRIC_GAUGE, "t_rss_bytes", "Resident memory.", NULL, forty_two, &v);
    buf b = {0};
    metrics_render(&b);
    assert_true(contains(&b, "# TYPE t_rss_bytes gauge\nt_rss_bytes 42.5\n"));
    buf_free(&b);
    v = 7;
    metric_fn_drop("t_rss_bytes", NULL);
    b = (buf){0};
    metrics_render(&b);
    assert_false(contains(&b, "t_rss_bytes"));
    buf_free(&b);
    /* a NULL handle counts nothing and does not crash */
    metric_inc(NULL);
    metric_observe(NULL, 1);
    assert_int_equal(metric_value(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_threads),
        cmocka_unit_test(test_labels_and_gauges),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_scrape_functions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
