/*
 * s_catchup.c - the `catchup` scenario: a device that missed K messages
 * across C conversations comes back; how long until it is current?
 *
 * Set-up (before the measurement): C sender users each send their share of
 * K messages to each of R target users, while the targets are offline, and
 * wait for every send_ok.  Then, one target at a time, a fresh device of
 * the target connects with inbox tracking from useq 0 (sync pages of
 * 1,000) and the clock runs from the start of its connection until the
 * library reports it current (on_synced with all K entries delivered).
 * Reported: login-to-current time (what SPEC section 6's "current in under
 * 100 ms" is about, connection set-up included) and the sync part alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "core/mem.h"

enum { H_TOTAL, H_SYNC };
enum { N_REPS = C_SCEN, N_MSGS, N_SENT, N_BAD, N_SYNCS };

typedef struct cu_w {
    worker *w;
    size_t n_conv, n_reps, k;
    parley_client **senders;
    size_t logged, closed;
    uint64_t sends_left;
    size_t rep;
    parley_client *target;
    uint64_t t_start, t_login;
    uint64_t got;
    uint64_t deadline;
    uv_timer_t next;
    bool senders_freed;
    bool finished;
} cu_w;

static int cu_prepare(bench *b)
{
    b->nprocs = 1;
    if ((size_t)b->o.convs > (size_t)b->o.messages) b->o.convs = b->o.messages;
    /* Users 0..C-1 send, C..C+R-1 are the targets. */
    return setup_users(b, "cu", (size_t)b->o.convs + (size_t)b->o.reps, NULL);
}

static void cu_finish(cu_w *d)
{
    if (d->finished) return;
    d->finished = true;
    if (!d->senders_freed)
        for (size_t i = 0; i < d->n_conv; i++) parley_client_free(d->senders[i]);
    d->senders_freed = true;
    parley_client_free(d->target);
    d->target = NULL;
    uv_close((uv_handle_t *)&d->next, NULL);
    worker_done(d->w);
}

static void on_sent(parley_client *c, parley_status st, const parley_send_result *r, void *arg)
{
    cu_w *d = arg;
    if (st == PARLEY_CANCELLED) return;
    if (st) stats_error(&d->w->st, st);
    else d->w->st.n[N_SENT]++;
    if (--d->sends_left == 0) {
        if (d->w->st.n[N_SENT] != (uint64_t)(d->k * d->n_reps)) {
            fprintf(stderr, "parley-bench: catchup: %llu of %zu messages stored\n",
                    (unsigned long long)d->w->st.n[N_SENT], d->k * d->n_reps);
        }
        worker_ready(d->w);
    }
}

static void fill(cu_w *d)
{
    bench *b = d->w->b;
    char text[128];
    d->sends_left = d->k * d->n_reps;
    for (size_t r = 0; r < d->n_reps; r++) {
        for (size_t m = 0; m < d->k; m++) {
            size_t s = m % d->n_conv;
            snprintf(text, sizeof text, "catch-up %zu of %zu", m + 1, d->k);
            parley_send_req req = {.to = b->users[d->n_conv + r], .text = text};
            if (parley_send(d->senders[s], &req, on_sent, d)) {
                fprintf(stderr, "parley-bench: catchup: cannot send\n");
                _exit(2);
            }
        }
    }
}

static void on_sender_login(parley_client *c, const parley_login_info *li, void *ud)
{
    cu_w *d = ud;
    if (++d->logged == d->n_conv) fill(d);
}

static void on_sender_state(parley_client *c, parley_state st, parley_status why, void *ud)
{
    cu_w *d = ud;
    if (st != PARLEY_STATE_CLOSED || d->finished) return;
    fprintf(stderr, "parley-bench: catchup: a sender could not log in: %s\n", parley_client_error(c));
    _exit(2);
}

static void start_rep(cu_w *d);

static void on_next(uv_timer_t *t)
{
    cu_w *d = t->data;
    if (d->rep >= d->n_reps || mono_ns() >= d->deadline) cu_finish(d);
    else start_rep(d);
}

static void rep_over(cu_w *d)
{
    parley_client_free(d->target);
    d->target = NULL;
    d->rep++;
    uv_timer_start(&d->next, on_next, 0, 0);
}

static void on_t_login(parley_client *c, const parley_login_info *li, void *ud)
{
    cu_w *d = ud;
    d->t_login = mono_ns();
}

static void on_t_msg(parley_client *c, const parley_msg *m, void *ud)
{
    cu_w *d = ud;
    d->got++;
}

static void on_t_synced(parley_client *c, uint64_t useq, void *ud)
{
    cu_w *d = ud;
    d->w->st.n[N_SYNCS]++;
    if (useq < d->k) return;   /* not everything yet (should not happen) */
    uint64_t now = mono_ns();
    hist_add(&d->w->st.h[H_TOTAL], now - d->t_start);
    hist_add(&d->w->st.h[H_SYNC], now - d->t_login);
    stats_event(&d->w->st, now);
    d->w->st.n[N_REPS]++;
    d->w->st.n[N_MSGS] += d->got;
    if (d->got != d->k) d->w->st.n[N_BAD]++;
    rep_over(d);
}

static void on_t_state(parley_client *c, parley_state st, parley_status why, void *ud)
{
    cu_w *d = ud;
    if (st != PARLEY_STATE_CLOSED) return;
    stats_error(&d->w->st, why);
    rep_over(d);
}

static void start_rep(cu_w *d)
{
    bench *b = d->w->b;
    parley_options po;
    bench_client_opts(b, d->n_conv + d->rep, &po);
    po.sync = PARLEY_SYNC_FROM;
    po.useq = 0;
    po.sync_limit = 1000;
    po.no_reconnect = true;
    po.ud = d;
    po.cb.on_login = on_t_login;
    po.cb.on_msg = on_t_msg;
    po.cb.on_synced = on_t_synced;
    po.cb.on_state = on_t_state;
    char err[256];
    d->target = parley_client_new(&d->w->loop, &po, err, sizeof err);
    if (!d->target) {
        fprintf(stderr, "parley-bench: %s\n", err);
        _exit(2);
    }
    d->got = 0;
    d->t_start = mono_ns();
    parley_client_start(d->target);
}

static void cu_start(worker *w)
{
    bench *b = w->b;
    cu_w *d = PL_NEW(cu_w);
    w->sd = d;
    d->w = w;
    d->n_conv = (size_t)b->o.convs;
    d->n_reps = (size_t)b->o.reps;
    d->k = (size_t)b->o.messages;
    d->senders = pl_calloc(d->n_conv, sizeof *d->senders);
    uv_timer_init(&w->loop, &d->next);
    d->next.data = d;
    for (size_t i = 0; i < d->n_conv; i++) {
        parley_options po;
        bench_client_opts(b, i, &po);
        po.ud = d;
        po.cb.on_login = on_sender_login;
        po.cb.on_state = on_sender_state;
        char err[256];
        d->senders[i] = parley_client_new(&w->loop, &po, err, sizeof err);
        if (!d->senders[i]) {
            fprintf(stderr, "parley-bench: %s\n", err);
            _exit(2);
        }
        parley_client_start(d->senders[i]);
    }
}

static void cu_go(worker *w)
{
    cu_w *d = w->sd;
    d->deadline = w->t0_ns + (uint64_t)(w->b->o.duration * 1e9);
    /* The senders are not needed while measuring. */
    for (size_t i = 0; i < d->n_conv; i++) parley_client_free(d->senders[i]);
    d->senders_freed = true;
    start_rep(d);
}

static void cu_report(bench *b, const bench_stats *st, json_t *res)
{
    char what[1024];
    snprintf(what, sizeof what, "%d messages missed across %d conversations, %llu device(s) caught up, %.300s",
             b->o.messages, b->o.convs, (unsigned long long)st->n[N_REPS], b->ws_url);
    report_header(b, what);
    json_t *rows = json_array();
    double secs = st->h[H_SYNC].sum / 1e9;
    json_array_append_new(rows, report_row("catch-up: connect->current", &st->h[H_TOTAL], st->n[N_REPS], -1,
                                           stats_errors(st)));
    json_array_append_new(rows, report_row("catch-up: login_ok->current", &st->h[H_SYNC], st->n[N_REPS], -1, 0));
    json_object_set_new(res, "rows", rows);
    double mps = secs > 0 ? (double)st->n[N_MSGS] / secs : 0;
    printf("synced %llu messages at %.0f messages/s while syncing\n", (unsigned long long)st->n[N_MSGS], mps);
    json_object_set_new(res, "messages_synced", json_integer((json_int_t)st->n[N_MSGS]));
    json_object_set_new(res, "sync_messages_per_s", json_real(mps));
    json_object_set_new(res, "catchups", json_integer((json_int_t)st->n[N_REPS]));
    json_object_set_new(res, "incomplete", json_integer((json_int_t)st->n[N_BAD]));
    json_object_set_new(res, "errors", json_integer((json_int_t)stats_errors(st)));
    if (st->n[N_BAD]) report_note(b, "%llu catch-ups delivered a number of messages other than %d",
                                  (unsigned long long)st->n[N_BAD], b->o.messages);
    if (st->n[N_REPS] < (uint64_t)b->o.reps)
        report_note(b, "%llu of %d repetitions ran within --duration", (unsigned long long)st->n[N_REPS], b->o.reps);
    for (int i = 1; i < PARLEY_STATUS_COUNT; i++)
        if (st->n[C_ERR_BASE + i])
            report_note(b, "%llu errors: %s", (unsigned long long)st->n[C_ERR_BASE + i],
                        parley_status_str((parley_status)i));
}

const scenario scenario_catchup = {
    .name = "catchup",
    .help = "a device that missed --messages across --convs conversations: time from connect to current",
    .prepare = cu_prepare,
    .start = cu_start,
    .go = cu_go,
    .report = cu_report,
};
