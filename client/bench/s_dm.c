/*
 * s_dm.c - the `dm` scenario: 1:1 messages end to end, open loop.
 *
 * N pairs (sender -> receiver, each its own user and connection).  The
 * whole run sends `rate` messages per second in total, message k at its
 * intended time t0 + k / rate, from sender k mod N.  The pacer (a 1 ms
 * timer) sends every message whose intended time has come, late ones
 * included, and each message carries its intended time in its text; the
 * receiver measures latency from that time.  So a stall anywhere (server,
 * network, the bench itself) shows up in the latency of every message it
 * delayed, instead of silently lowering the rate: coordinated omission
 * cannot hide it.  The pacer's own lag (issue time - intended time) and the
 * latency from the actual issue time (also in the text) are reported
 * beside, to tell a slow bench from a slow server; the 1 ms pacer tick
 * alone adds up to 1 ms (0.5 ms on average) to the intended-time figures.
 *
 * Processes: pairs are split over W workers by pair number mod W, and N is
 * rounded up to a multiple of W, so message k belongs to worker k mod W and
 * a pair's sender and receiver live in the same worker.
 *
 * Window: messages whose intended time falls in [t0 + warmup, t0 + warmup
 * + duration) are measured; sending stops at the end of the window; the
 * worker then waits up to DRAIN_S for outstanding acks and deliveries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "core/mem.h"

#define DRAIN_S 5

enum { H_E2E, H_ACK, H_LAG, H_SVC };
enum {
    N_SENT = C_SCEN, N_SENT_W, N_ACKED, N_ACKED_W, N_DELIV, N_DELIV_W, N_RECONNECTS, N_RESENDS, N_RATE_LIMITED,
    N_DUPS, N_FOREIGN,
};

typedef struct dm_w dm_w;

typedef struct dm_cl {
    dm_w *d;
    parley_client *c;
    size_t pair;             /* global pair number */
    bool sender;
    bool logged;
    bool closed;
} dm_cl;

struct dm_w {
    worker *w;
    size_t n_pairs_all;      /* N */
    size_t n_mine;
    dm_cl *cl;               /* 2 per pair of mine: sender, receiver */
    size_t attempted;        /* logged in or closed before ready */
    uv_timer_t pacer, drain;
    uint64_t interval_ns;
    uint64_t next_k;
    uint64_t t_meas, t_end;
    uint64_t outstanding;    /* sent, neither acked nor failed */
    bool sending_done;
    bool finished;
    char *text;
};

static int dm_prepare(bench *b)
{
    int W = b->o.procs > 0 ? b->o.procs : (int)((2 * (size_t)b->o.pairs + BENCH_MAX_CONNS_PER_PROC - 1) /
                                                BENCH_MAX_CONNS_PER_PROC);
    if (W < 1) W = 1;
    size_t n = (size_t)b->o.pairs;
    if (n % (size_t)W) n += (size_t)W - n % (size_t)W;
    b->o.pairs = (int)n;
    b->nprocs = W;
    if (b->o.rate <= 0) {
        fprintf(stderr, "parley-bench: dm needs --rate > 0\n");
        return -1;
    }
    if (b->o.size < 32) b->o.size = 32;
    return setup_users(b, "dm", 2 * n, NULL);
}

static void dm_maybe_ready(dm_w *d)
{
    if (d->attempted == 2 * d->n_mine) worker_ready(d->w);
}

static void on_login(parley_client *c, const parley_login_info *li, void *ud)
{
    dm_cl *k = ud;
    if (k->logged) {
        k->d->w->st.n[N_RECONNECTS]++;
        return;
    }
    k->logged = true;
    k->d->w->st.n[C_CONNECTED]++;
    k->d->attempted++;
    dm_maybe_ready(k->d);
}

static void on_state(parley_client *c, parley_state st, parley_status why, void *ud)
{
    dm_cl *k = ud;
    if (st != PARLEY_STATE_CLOSED || k->closed) return;
    k->closed = true;
    stats_error(&k->d->w->st, why);
    if (!k->logged) {
        k->d->w->st.n[C_CONNECT_FAILED]++;
        k->d->attempted++;
        dm_maybe_ready(k->d);
    }
}

static void dm_finish(dm_w *d);

static void maybe_end(dm_w *d)
{
    /* A push may come before its sender's send_ok: compare totals. */
    if (d->sending_done && !d->outstanding && d->w->st.n[N_DELIV] >= d->w->st.n[N_ACKED]) dm_finish(d);
}

static void on_msg(parley_client *c, const parley_msg *m, void *ud)
{
    dm_cl *k = ud;
    dm_w *d = k->d;
    uint64_t now = mono_ns(), t, n, sent;
    if (!bench_text_parse(m->text, &t, &n, &sent)) {
        d->w->st.n[N_FOREIGN]++;
        return;
    }
    d->w->st.n[N_DELIV]++;
    if (t >= d->t_meas && t < d->t_end) {
        hist_add(&d->w->st.h[H_E2E], now > t ? now - t : 0);
        hist_add(&d->w->st.h[H_SVC], now > sent ? now - sent : 0);
        d->w->st.n[N_DELIV_W]++;
        stats_event(&d->w->st, now);
    }
    maybe_end(d);
}

static void on_sent(parley_client *c, parley_status st, const parley_send_result *r, void *arg)
{
    if (st == PARLEY_CANCELLED) return;
    dm_cl *k = parley_client_ud(c);
    dm_w *d = k->d;
    uint64_t t = (uint64_t)(uintptr_t)arg, now = mono_ns();
    d->outstanding--;
    if (st != PARLEY_OK) {
        stats_error(&d->w->st, st);
    } else {
        d->w->st.n[N_ACKED]++;
        if (t >= d->t_meas && t < d->t_end) {
            d->w->st.n[N_ACKED_W]++;
            hist_add(&d->w->st.h[H_ACK], now > t ? now - t : 0);
        }
    }
    maybe_end(d);
}

static void on_pace(uv_timer_t *tm)
{
    dm_w *d = tm->data;
    bench *b = d->w->b;
    uint64_t now = mono_ns();
    size_t W = (size_t)d->w->count;
    for (;;) {
        uint64_t t = d->w->t0_ns + d->next_k * d->interval_ns;
        if (t >= d->t_end) {
            d->sending_done = true;
            uv_timer_stop(&d->pacer);
            maybe_end(d);
            return;
        }
        if (t > now) return;
        size_t pair = (size_t)(d->next_k % d->n_pairs_all);
        dm_cl *s = &d->cl[2 * (pair / W)];
        dm_cl *r = s + 1;
        bench_text(d->text, (size_t)b->o.size, t, d->next_k, now);
        parley_send_req req = {.to = b->users[2 * pair + 1], .text = d->text};
        if (!s->closed && parley_send(s->c, &req, on_sent, (void *)(uintptr_t)t) == PARLEY_OK) {
            d->outstanding++;
            d->w->st.n[N_SENT]++;
            if (t >= d->t_meas) {
                d->w->st.n[N_SENT_W]++;
                hist_add(&d->w->st.h[H_LAG], now - t);
            }
        } else {
            stats_error(&d->w->st, PARLEY_CLOSED);
        }
        (void)r;
        d->next_k += W;
    }
}

static void on_drain(uv_timer_t *tm) { dm_finish(tm->data); }

static void dm_go(worker *w)
{
    dm_w *d = w->sd;
    bench *b = w->b;
    d->interval_ns = (uint64_t)(1e9 / b->o.rate);
    if (!d->interval_ns) d->interval_ns = 1;
    d->t_meas = w->t0_ns + (uint64_t)(b->o.warmup * 1e9);
    d->t_end = d->t_meas + (uint64_t)(b->o.duration * 1e9);
    d->next_k = (uint64_t)w->index;
    uv_timer_init(&w->loop, &d->pacer);
    uv_timer_init(&w->loop, &d->drain);
    d->pacer.data = d->drain.data = d;
    uv_timer_start(&d->pacer, on_pace, 1, 1);
    uint64_t total_ms = (d->t_end - mono_ns()) / 1000000u + DRAIN_S * 1000u;
    uv_timer_start(&d->drain, on_drain, total_ms, 0);
}

static void dm_finish(dm_w *d)
{
    if (d->finished) return;
    d->finished = true;
    worker *w = d->w;
    for (size_t i = 0; i < 2 * d->n_mine; i++) {
        parley_stats ps;
        parley_client_stats(d->cl[i].c, &ps);
        w->st.n[N_RESENDS] += ps.resends;
        w->st.n[N_RATE_LIMITED] += ps.rate_limited;
        w->st.n[N_DUPS] += ps.duplicates;
        parley_client_free(d->cl[i].c);
    }
    uv_close((uv_handle_t *)&d->pacer, NULL);
    uv_close((uv_handle_t *)&d->drain, NULL);
    worker_done(w);
}

static void dm_start(worker *w)
{
    bench *b = w->b;
    dm_w *d = PL_NEW(dm_w);
    w->sd = d;
    d->w = w;
    d->n_pairs_all = (size_t)b->o.pairs;
    d->n_mine = d->n_pairs_all / (size_t)w->count;
    d->cl = pl_calloc(2 * d->n_mine, sizeof *d->cl);
    d->text = pl_malloc((size_t)b->o.size + 1);
    for (size_t j = 0; j < d->n_mine; j++) {
        size_t pair = j * (size_t)w->count + (size_t)w->index;
        for (int role = 0; role < 2; role++) {
            dm_cl *k = &d->cl[2 * j + (size_t)role];
            k->d = d;
            k->pair = pair;
            k->sender = role == 0;
            parley_options po;
            bench_client_opts(b, 2 * pair + (size_t)role, &po);
            po.ud = k;
            po.cb.on_login = on_login;
            po.cb.on_state = on_state;
            po.cb.on_msg = on_msg;
            char err[256];
            k->c = parley_client_new(&w->loop, &po, err, sizeof err);
            if (!k->c) {
                fprintf(stderr, "parley-bench: %s\n", err);
                _exit(2);
            }
            parley_client_start(k->c);
        }
    }
    if (!d->n_mine) worker_ready(w);
}

static void dm_report(bench *b, const bench_stats *st, json_t *res)
{
    char what[1024];
    snprintf(what, sizeof what, "%d pairs, %.0f msg/s offered, %.0f s measured after %.0f s warm-up, %d-byte texts, %.300s",
             b->o.pairs, b->o.rate, b->o.duration, b->o.warmup, b->o.size, b->ws_url);
    report_header(b, what);
    /* Rates over wall time: from the start of the window to the last push
     * of a window message, so that a backlog drained late lowers them. */
    double dur = b->o.duration;
    uint64_t t_meas = b->t0_ns + (uint64_t)(b->o.warmup * 1e9);
    if (st->t_last_ns > t_meas && (double)(st->t_last_ns - t_meas) / 1e9 > dur)
        dur = (double)(st->t_last_ns - t_meas) / 1e9;
    uint64_t errors = stats_errors(st);
    json_t *rows = json_array();
    json_array_append_new(rows, report_row("e2e latency (intended send->push)", &st->h[H_E2E], st->n[N_DELIV_W],
                                           (double)st->n[N_DELIV_W] / dur, errors));
    json_array_append_new(rows, report_row("ack latency (intended send->send_ok)", &st->h[H_ACK], st->n[N_ACKED_W],
                                           (double)st->n[N_ACKED_W] / dur, 0));
    json_array_append_new(rows, report_row("e2e latency (actual send->push)", &st->h[H_SVC], st->n[N_DELIV_W],
                                           (double)st->n[N_DELIV_W] / dur, 0));
    json_array_append_new(rows, report_row("bench pacer lag (actual-intended)", &st->h[H_LAG], st->n[N_SENT_W],
                                           (double)st->n[N_SENT_W] / dur, 0));
    json_object_set_new(res, "rows", rows);
    double delivered_rate = (double)st->n[N_DELIV_W] / dur;
    uint64_t lost = st->n[N_ACKED_W] > st->n[N_DELIV_W] ? st->n[N_ACKED_W] - st->n[N_DELIV_W] : 0;
    printf("offered %.0f msg/s, delivered %.1f msg/s (window messages over %.2f s); sent %llu, acked %llu, delivered %llu "
           "(window: %llu / %llu / %llu)\n",
           b->o.rate, delivered_rate, dur, (unsigned long long)st->n[N_SENT], (unsigned long long)st->n[N_ACKED],
           (unsigned long long)st->n[N_DELIV], (unsigned long long)st->n[N_SENT_W],
           (unsigned long long)st->n[N_ACKED_W], (unsigned long long)st->n[N_DELIV_W]);
    json_object_set_new(res, "offered_per_s", json_real(b->o.rate));
    json_object_set_new(res, "delivered_per_s", json_real(delivered_rate));
    json_object_set_new(res, "sent", json_integer((json_int_t)st->n[N_SENT]));
    json_object_set_new(res, "acked", json_integer((json_int_t)st->n[N_ACKED]));
    json_object_set_new(res, "delivered", json_integer((json_int_t)st->n[N_DELIV]));
    json_object_set_new(res, "sent_window", json_integer((json_int_t)st->n[N_SENT_W]));
    json_object_set_new(res, "acked_window", json_integer((json_int_t)st->n[N_ACKED_W]));
    json_object_set_new(res, "delivered_window", json_integer((json_int_t)st->n[N_DELIV_W]));
    json_object_set_new(res, "undelivered_window", json_integer((json_int_t)lost));
    json_object_set_new(res, "errors", json_integer((json_int_t)errors));
    json_object_set_new(res, "reconnects", json_integer((json_int_t)st->n[N_RECONNECTS]));
    json_object_set_new(res, "resends", json_integer((json_int_t)st->n[N_RESENDS]));
    json_object_set_new(res, "rate_limited", json_integer((json_int_t)st->n[N_RATE_LIMITED]));
    json_object_set_new(res, "connected", json_integer((json_int_t)st->n[C_CONNECTED]));
    json_object_set_new(res, "connect_failed", json_integer((json_int_t)st->n[C_CONNECT_FAILED]));
    for (int i = 1; i < PARLEY_STATUS_COUNT; i++)
        if (st->n[C_ERR_BASE + i]) report_note(b, "%llu errors: %s", (unsigned long long)st->n[C_ERR_BASE + i],
                                               parley_status_str((parley_status)i));
    if (st->n[C_CONNECT_FAILED])
        report_note(b, "%llu of %d clients could not log in", (unsigned long long)st->n[C_CONNECT_FAILED],
                    2 * b->o.pairs);
    if (lost) report_note(b, "%llu acknowledged messages of the window were not pushed within %d s", (unsigned long long)lost, DRAIN_S);
    if (st->n[N_RATE_LIMITED])
        report_note(b, "the server rate-limited %llu sends (start parleyd with --msg-rate 0 for throughput runs)",
                    (unsigned long long)st->n[N_RATE_LIMITED]);
    if (st->n[N_RECONNECTS]) report_note(b, "%llu reconnects during the run", (unsigned long long)st->n[N_RECONNECTS]);
    if (delivered_rate < 0.95 * b->o.rate)
        report_note(b, "delivered %.0f%% of the offered rate: the system is saturated at this rate",
                    100.0 * delivered_rate / b->o.rate);
    if (hist_pct(&st->h[H_LAG], 99) > 5000000)
        report_note(b, "the bench's own pacer lagged (p99 %.1f ms): the bench process is a bottleneck too",
                    (double)hist_pct(&st->h[H_LAG], 99) / 1e6);
}

const scenario scenario_dm = {
    .name = "dm",
    .help = "1:1 messages, N pairs, open loop at --rate msg/s; latency from the intended send time to the push",
    .prepare = dm_prepare,
    .start = dm_start,
    .go = dm_go,
    .report = dm_report,
};
