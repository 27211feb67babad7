/*
 * s_login.c - the `login` scenario: logins per second and their latency,
 * by token and by password, one after the other.
 *
 * Closed loop: --clients slots each log in, and as soon as login_ok
 * arrives close that connection and start the next login, for --duration
 * seconds per phase.  Slot i always logs in as user i (so no two
 * concurrent logins share a device slot) with device kind "bot".  The
 * latency of a login is from the start of the connection (TCP connect,
 * WebSocket upgrade) to login_ok: what a device waits for after opening
 * the app.  Password logins cost the server an argon2id hash each, at
 * whatever cost it was started with.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "core/mem.h"

#define PASSWORD "bench-password-1"
#define RETRY_MS 20

enum { H_TOKEN, H_PASSWORD };
enum { N_TOKEN = C_SCEN, N_PASSWORD, N_TOKEN_ERR, N_PASSWORD_ERR };

typedef struct lg_w lg_w;

typedef struct slot {
    lg_w *d;
    size_t i;
    parley_client *c;
    uint64_t t_start;
    uv_timer_t retry;
} slot;

struct lg_w {
    worker *w;
    int phase;               /* 0 token, 1 password, 2 done */
    uint64_t phase_end;
    slot *slots;
    size_t n_slots, busy;
    uv_timer_t phase_timer;
    bool closing;
};

static int lg_prepare(bench *b)
{
    b->nprocs = 1;
    if (setup_users(b, "lt", (size_t)b->o.clients, NULL)) return -1;
    return setup_users(b, "lp", (size_t)b->o.pw_users, PASSWORD);
}

static void next_login(slot *s);
static void phase_start(lg_w *d);

static void slot_idle(slot *s)
{
    lg_w *d = s->d;
    d->busy--;
    if (mono_ns() < d->phase_end) {
        next_login(s);
        return;
    }
    if (!d->busy) phase_start(d);   /* every slot of this phase is done */
}

static void on_login(parley_client *c, const parley_login_info *li, void *ud)
{
    slot *s = ud;
    lg_w *d = s->d;
    uint64_t now = mono_ns();
    hist_add(&d->w->st.h[d->phase == 0 ? H_TOKEN : H_PASSWORD], now - s->t_start);
    d->w->st.n[d->phase == 0 ? N_TOKEN : N_PASSWORD]++;
    stats_event(&d->w->st, now);
    parley_client_free(c);
    s->c = NULL;
    slot_idle(s);
}

static void on_retry(uv_timer_t *t) { slot_idle(t->data); }

static void on_state(parley_client *c, parley_state st, parley_status why, void *ud)
{
    if (st != PARLEY_STATE_CLOSED) return;
    slot *s = ud;
    lg_w *d = s->d;
    stats_error(&d->w->st, why);
    d->w->st.n[d->phase == 0 ? N_TOKEN_ERR : N_PASSWORD_ERR]++;
    parley_client_free(c);
    s->c = NULL;
    /* Do not hammer a server that refuses. */
    uv_timer_start(&s->retry, on_retry, RETRY_MS, 0);
}

static void next_login(slot *s)
{
    lg_w *d = s->d;
    bench *b = d->w->b;
    parley_options po;
    bench_client_opts(b, s->i, &po);
    if (d->phase == 1) {
        po.token = NULL;
        po.user = b->pw_users[s->i];
        po.password = b->password;
    }
    po.no_reconnect = true;
    po.ud = s;
    po.cb.on_login = on_login;
    po.cb.on_state = on_state;
    char err[256];
    s->c = parley_client_new(&d->w->loop, &po, err, sizeof err);
    if (!s->c) {
        fprintf(stderr, "parley-bench: %s\n", err);
        _exit(2);
    }
    d->busy++;
    s->t_start = mono_ns();
    parley_client_start(s->c);
}

static void close_all(lg_w *d)
{
    for (size_t i = 0; i < d->n_slots; i++) uv_close((uv_handle_t *)&d->slots[i].retry, NULL);
    worker_done(d->w);
}

static void phase_start(lg_w *d)
{
    bench *b = d->w->b;
    d->phase++;
    if (d->phase > 1 || (d->phase == 1 && !b->n_pw_users)) {
        d->phase = 2;
        close_all(d);
        return;
    }
    d->phase_end = mono_ns() + (uint64_t)(b->o.duration * 1e9);
    d->n_slots = d->phase == 0 ? b->n_users : b->n_pw_users;
    for (size_t i = 0; i < d->n_slots; i++) next_login(&d->slots[i]);
}

static void lg_start(worker *w)
{
    lg_w *d = PL_NEW(lg_w);
    w->sd = d;
    d->w = w;
    bench *b = w->b;
    size_t n = b->n_users > b->n_pw_users ? b->n_users : b->n_pw_users;
    d->slots = pl_calloc(n ? n : 1, sizeof *d->slots);
    for (size_t i = 0; i < n; i++) {
        d->slots[i].d = d;
        d->slots[i].i = i;
        uv_timer_init(&w->loop, &d->slots[i].retry);
        d->slots[i].retry.data = &d->slots[i];
    }
    d->n_slots = n;
    d->phase = -1;
    worker_ready(w);
}

static void lg_go(worker *w) { phase_start(w->sd); }

static void lg_report(bench *b, const bench_stats *st, json_t *res)
{
    char what[1024];
    snprintf(what, sizeof what, "%d concurrent token logins, %zu concurrent password logins, %.0f s each, %.300s",
             b->o.clients, b->n_pw_users, b->o.duration, b->ws_url);
    report_header(b, what);
    json_t *rows = json_array();
    json_array_append_new(rows, report_row("login by token (connect->login_ok)", &st->h[H_TOKEN], st->n[N_TOKEN],
                                           (double)st->n[N_TOKEN] / b->o.duration, st->n[N_TOKEN_ERR]));
    if (b->n_pw_users)
        json_array_append_new(rows, report_row("login by password (connect->login_ok)", &st->h[H_PASSWORD],
                                               st->n[N_PASSWORD], (double)st->n[N_PASSWORD] / b->o.duration,
                                               st->n[N_PASSWORD_ERR]));
    json_object_set_new(res, "rows", rows);
    json_object_set_new(res, "token_logins_per_s", json_real((double)st->n[N_TOKEN] / b->o.duration));
    json_object_set_new(res, "password_logins_per_s", json_real((double)st->n[N_PASSWORD] / b->o.duration));
    json_object_set_new(res, "errors", json_integer((json_int_t)stats_errors(st)));
    for (int i = 1; i < PARLEY_STATUS_COUNT; i++)
        if (st->n[C_ERR_BASE + i])
            report_note(b, "%llu failed logins: %s", (unsigned long long)st->n[C_ERR_BASE + i],
                        parley_status_str((parley_status)i));
    if (st->n[C_ERR_BASE + PARLEY_RATE_LIMITED])
        report_note(b, "the server rate-limited logins (start parleyd with --login-rate-per-ip 0 "
                       "--conn-rate-per-ip 0 for this scenario)");
}

const scenario scenario_login = {
    .name = "login",
    .help = "logins/s and latency (connect->login_ok), by token then by password, --clients at a time",
    .prepare = lg_prepare,
    .start = lg_start,
    .go = lg_go,
    .report = lg_report,
};
