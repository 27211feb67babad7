/*
 * s_idle.c - the `idle` scenario: N authenticated idle connections, and
 * what each costs the server in memory.
 *
 * The parent reads the server's VmRSS (and parley_heap_bytes from
 * /metrics, parley's own allocations) with no bench connection open; the
 * workers (at most BENCH_MAX_CONNS_PER_PROC connections each, as the
 * open-file limit is 20,000 per process) connect and log in their share,
 * CONCURRENCY at a time, and report ready when every connection logged in
 * or failed; after --settle seconds (the server releases per-connection
 * buffers about a second after traffic stops) the parent reads the
 * server's memory again, and once more near the end of --duration, while
 * the connections idle (heartbeat only).
 *
 * Per connection = (after - before) / connections held.  When fewer than N
 * log in, the report says what limited the count: the server's open-file
 * limit (its descriptors against RLIMIT_NOFILE from /proc/PID/limits), or
 * the errors the clients saw.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "core/mem.h"

#define CONCURRENCY 200

enum { H_CONNECT };
enum { N_DROPPED = C_SCEN };

typedef struct id_w id_w;

typedef struct id_cl {
    id_w *d;
    parley_client *c;
    uint64_t t_start;
    bool logged, closed;
} id_cl;

struct id_w {
    worker *w;
    size_t n;                /* mine */
    id_cl *cl;
    size_t next, attempted, in_progress;
    uv_timer_t hold;
};

static int id_prepare(bench *b)
{
    size_t n = (size_t)b->o.clients;
    b->nprocs = b->o.procs > 0 ? b->o.procs : (int)((n + BENCH_MAX_CONNS_PER_PROC - 1) / BENCH_MAX_CONNS_PER_PROC);
    if (!b->server_pid) fprintf(stderr, "parley-bench: idle: cannot find the server's process: give --server-pid\n");
    if (setup_users(b, "id", n, NULL)) return -1;
    if (b->server_pid) {
        /* Let the user creation's traffic settle first. */
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
        b->rss_before = proc_rss(b->server_pid);
    }
    b->mem_before = server_mem_metric(b);
    return 0;
}

static void id_launch(id_w *d);

static void attempt_done(id_cl *k)
{
    id_w *d = k->d;
    d->attempted++;
    d->in_progress--;
    if (d->attempted == d->n) worker_ready(d->w);
    else id_launch(d);
}

static void on_login(parley_client *c, const parley_login_info *li, void *ud)
{
    id_cl *k = ud;
    if (k->logged) return;
    k->logged = true;
    hist_add(&k->d->w->st.h[H_CONNECT], mono_ns() - k->t_start);
    k->d->w->st.n[C_CONNECTED]++;
    attempt_done(k);
}

static void on_state(parley_client *c, parley_state st, parley_status why, void *ud)
{
    id_cl *k = ud;
    if (st != PARLEY_STATE_CLOSED || k->closed) return;
    k->closed = true;
    stats_error(&k->d->w->st, why);
    if (k->logged) {
        k->d->w->st.n[N_DROPPED]++;
        return;
    }
    k->d->w->st.n[C_CONNECT_FAILED]++;
    attempt_done(k);
}

static void id_launch(id_w *d)
{
    bench *b = d->w->b;
    while (d->next < d->n && d->in_progress < CONCURRENCY) {
        id_cl *k = &d->cl[d->next];
        size_t user = d->next * (size_t)d->w->count + (size_t)d->w->index;
        d->next++;
        parley_options po;
        bench_client_opts(b, user, &po);
        po.no_reconnect = true;
        po.connect_timeout_ms = 15000;
        po.ping_interval_ms = 20000;
        po.ud = k;
        po.cb.on_login = on_login;
        po.cb.on_state = on_state;
        char err[256];
        k->d = d;
        k->c = parley_client_new(&d->w->loop, &po, err, sizeof err);
        if (!k->c) {
            fprintf(stderr, "parley-bench: %s\n", err);
            _exit(2);
        }
        d->in_progress++;
        k->t_start = mono_ns();
        parley_client_start(k->c);
    }
}

static void id_start(worker *w)
{
    bench *b = w->b;
    id_w *d = PL_NEW(id_w);
    w->sd = d;
    d->w = w;
    size_t all = (size_t)b->o.clients;
    d->n = all / (size_t)w->count + ((size_t)w->index < all % (size_t)w->count ? 1 : 0);
    d->cl = pl_calloc(d->n ? d->n : 1, sizeof *d->cl);
    uv_timer_init(&w->loop, &d->hold);
    d->hold.data = d;
    if (!d->n) worker_ready(w);
    id_launch(d);
}

static void on_hold_end(uv_timer_t *t)
{
    id_w *d = t->data;
    for (size_t i = 0; i < d->n; i++) parley_client_free(d->cl[i].c);
    uv_close((uv_handle_t *)&d->hold, NULL);
    worker_done(d->w);
}

static void id_go(worker *w)
{
    id_w *d = w->sd;
    uv_timer_start(&d->hold, on_hold_end, (uint64_t)(w->b->o.duration * 1000), 0);
}

static void sleep_s(double s)
{
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts)) {}
}

static void id_after_ready(bench *b)
{
    sleep_s(b->o.settle);
    if (b->server_pid) {
        b->rss_after = proc_rss(b->server_pid);
        b->server_fds = proc_fds(b->server_pid);
        b->server_fd_limit = proc_fd_limit(b->server_pid);
    }
    b->mem_after = server_mem_metric(b);
}

static void id_during(bench *b)
{
    /* Sample again near the end of the hold. */
    double left = b->o.duration - 1;
    sleep_s(left);
    if (b->server_pid) b->rss_end = proc_rss(b->server_pid);
}

static void id_report(bench *b, const bench_stats *st, json_t *res)
{
    uint64_t held = st->n[C_CONNECTED];
    char what[1024];
    snprintf(what, sizeof what, "%d connections requested over %d process(es)%s, held %.0f s, %.300s", b->o.clients,
             b->nprocs, b->o.src_ips > 0 ? " and several source addresses" : "", b->o.duration, b->ws_url);
    report_header(b, what);
    json_t *rows = json_array();
    json_array_append_new(rows, report_row("connect+login of each connection", &st->h[H_CONNECT], held, -1,
                                           st->n[C_CONNECT_FAILED]));
    printf("connections held: %llu of %d (%llu failed to log in, %llu dropped while idle)\n",
           (unsigned long long)held, b->o.clients, (unsigned long long)st->n[C_CONNECT_FAILED],
           (unsigned long long)st->n[N_DROPPED]);
    json_object_set_new(res, "requested", json_integer(b->o.clients));
    json_object_set_new(res, "held", json_integer((json_int_t)held));
    json_object_set_new(res, "failed", json_integer((json_int_t)st->n[C_CONNECT_FAILED]));
    json_object_set_new(res, "dropped", json_integer((json_int_t)st->n[N_DROPPED]));
    if (b->server_pid && b->rss_before && b->rss_after && held) {
        double per = ((double)b->rss_after - (double)b->rss_before) / (double)held;
        json_array_append_new(rows, report_value("server RSS before", (double)b->rss_before / 1048576.0, "MiB"));
        json_array_append_new(rows, report_value("server RSS with connections", (double)b->rss_after / 1048576.0, "MiB"));
        if (b->rss_end)
            json_array_append_new(rows, report_value("server RSS at end of hold", (double)b->rss_end / 1048576.0, "MiB"));
        json_array_append_new(rows, report_value("server RSS per connection", per, "bytes"));
        json_object_set_new(res, "rss_before", json_integer((json_int_t)b->rss_before));
        json_object_set_new(res, "rss_after", json_integer((json_int_t)b->rss_after));
        json_object_set_new(res, "rss_end", json_integer((json_int_t)b->rss_end));
        json_object_set_new(res, "rss_per_conn_bytes", json_real(per));
        if (b->rss_after <= b->rss_before + 4096u * (held / 64 + 1))
            report_note(b, "the server's RSS hardly grew: it is reusing memory freed after earlier load; measure "
                           "idle on a freshly started parleyd");
        if (b->rss_end) {
            double per_end = ((double)b->rss_end - (double)b->rss_before) / (double)held;
            json_array_append_new(rows, report_value("server RSS per connection at end", per_end, "bytes"));
            json_object_set_new(res, "rss_per_conn_end_bytes", json_real(per_end));
        }
    } else {
        report_note(b, "no server memory figures: server process unknown (give --server-pid) or nothing held");
    }
    if (b->mem_before && b->mem_after && held) {
        double per = ((double)b->mem_after - (double)b->mem_before) / (double)held;
        json_array_append_new(rows, report_value("server heap (parley_heap_bytes) per conn", per, "bytes"));
        json_object_set_new(res, "heap_per_conn_bytes", json_real(per));
    }
    json_object_set_new(res, "rows", rows);
    if (b->server_fds >= 0 && b->server_fd_limit > 0) {
        json_object_set_new(res, "server_fds", json_integer(b->server_fds));
        json_object_set_new(res, "server_fd_limit", json_integer(b->server_fd_limit));
    }
    const char *limit;
    char why[512];
    if (held >= (uint64_t)b->o.clients) {
        limit = "the requested count";
    } else if (b->server_fd_limit > 0 && b->server_fds >= b->server_fd_limit - 16) {
        snprintf(why, sizeof why, "the server's open-file limit (%ld descriptors open of RLIMIT_NOFILE %ld)",
                 b->server_fds, b->server_fd_limit);
        limit = why;
    } else {
        snprintf(why, sizeof why, "client errors (see notes; server had %ld descriptors open of %ld)", b->server_fds,
                 b->server_fd_limit);
        limit = why;
    }
    printf("limited by: %s\n", limit);
    json_object_set_new(res, "limited_by", json_string(limit));
    for (int i = 1; i < PARLEY_STATUS_COUNT; i++)
        if (st->n[C_ERR_BASE + i])
            report_note(b, "%llu connections ended with: %s", (unsigned long long)st->n[C_ERR_BASE + i],
                        parley_status_str((parley_status)i));
}

const scenario scenario_idle = {
    .name = "idle",
    .help = "--clients authenticated idle connections: server memory per connection (VmRSS), and the limit",
    .prepare = id_prepare,
    .start = id_start,
    .go = id_go,
    .after_ready = id_after_ready,
    .during = id_during,
    .report = id_report,
};
