/*
 * s_fanout.c - the `group` and `channel` scenarios: one sender, M online
 * members, K messages at --rate per second; deliveries per second, the
 * latency of each delivery, and for each message the time until the last
 * member had it.
 *
 * Set-up uses the HTTP API of SPEC section 4 as documented: the sender
 * creates the group (POST /v1/groups with kind and members); a channel's
 * members are added in one call with the tenant's API key (POST
 * /v1/groups/{id}/members), or, where that is refused, each joins (POST
 * /v1/groups/{id}/join).  Messages are
 * `send` frames with `group` (SPEC section 3).  If the server does not
 * serve groups (the set-up call answers 404, or send answers not_found for
 * the group), the run reports "server does not support groups" with the
 * server's own answers, and no figures.
 *
 * Each worker keeps, per message, the largest latency it saw and how many
 * of its members got it; the parent takes the maximum and the sum over
 * workers, which gives "time until the last member has it" and whether
 * every member got every message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "core/mem.h"

#define DRAIN_S 5

enum { H_DELIV, H_LAST };
enum { N_DELIV = C_SCEN, N_SENT, N_ACKED, N_UNSUPPORTED, N_FOREIGN };

typedef struct fo_parent {
    bool channel;
    char group[128];
    char setup_err[512];
    int setup_status;        /* of POST /v1/groups */
    size_t k;
    uint64_t *maxlat;        /* per message, max over workers */
    uint64_t *reached;       /* per message, members that got it */
    char send_err[256];
} fo_parent;

typedef struct fo_w fo_w;

typedef struct fo_cl {
    fo_w *d;
    parley_client *c;
    bool logged, closed;
} fo_cl;

struct fo_w {
    worker *w;
    fo_parent *p;
    size_t n;                /* clients of mine; with the sender first on worker 0 */
    fo_cl *cl;
    size_t attempted;
    bool has_sender;
    uint64_t *maxlat, *reached;
    uv_timer_t pacer, end;
    size_t next;
    uint64_t interval_ns;
    uint64_t send_end;       /* no message is due after this */
    char *text;
    char send_err[256];
    bool finished;
};

static int fo_prepare(bench *b, bool channel)
{
    fo_parent *p = PL_NEW(fo_parent);
    b->sd = p;
    p->channel = channel;
    p->k = (size_t)b->o.messages;
    p->maxlat = pl_calloc(p->k, sizeof *p->maxlat);
    p->reached = pl_calloc(p->k, sizeof *p->reached);
    size_t m = (size_t)b->o.members;
    b->nprocs = b->o.procs > 0 ? b->o.procs : (int)((m + 1 + BENCH_MAX_CONNS_PER_PROC - 1) / BENCH_MAX_CONNS_PER_PROC);
    if (b->o.rate <= 0) b->o.rate = 5;
    if (b->o.size < 32) b->o.size = 32;
    /* User 0 sends; 1..M are the online members, M+1..M+N the offline
     * ones (members that never connect: the size of the membership list). */
    size_t all = m + (size_t)b->o.offline;
    if (setup_users(b, channel ? "ch" : "gr", all + 1, NULL)) return -1;
    snprintf(p->group, sizeof p->group, "%s%s", b->prefix, channel ? "channel" : "group");
    json_t *body = json_pack("{s:s,s:s}", "name", p->group, "kind", channel ? "channel" : "group");
    if (!channel) {
        json_t *mem = json_array();
        for (size_t i = 1; i <= all; i++) json_array_append_new(mem, json_string(b->users[i]));
        json_object_set_new(body, "members", mem);
    }
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    buf out = {0};
    int st = setup_call(b, "POST", "/v1/groups", b->tokens[0], s, &out);
    free(s);
    p->setup_status = st;
    if (st == 200) {
        json_t *j = json_loads((const char *)buf_begin(&out), 0, NULL);
        const char *id = NULL;
        if (j) {
            id = json_string_value(json_object_get(j, "group"));
            if (!id) id = json_string_value(json_object_get(j, "id"));
            json_t *g = json_object_get(j, "group");
            if (!id && json_is_object(g)) id = json_string_value(json_object_get(g, "id"));
        }
        if (id) snprintf(p->group, sizeof p->group, "%s", id);
        if (j) json_decref(j);
        if (channel) {
            /* Members added with the API key (POST .../members), in
             * batches that keep each body well below max_body; where that
             * is refused, each online member joins by itself. */
            char path[300];
            snprintf(path, sizeof path, "/v1/groups/%s/members", p->group);
            int js = 200;
            for (size_t from = 1; from <= all && js == 200; from += 5000) {
                json_t *add = json_pack("{s:o}", "users", json_array());
                for (size_t i = from; i <= all && i < from + 5000; i++)
                    json_array_append_new(json_object_get(add, "users"), json_string(b->users[i]));
                char *as = json_dumps(add, JSON_COMPACT);
                json_decref(add);
                buf o2 = {0};
                js = setup_call(b, "POST", path, b->o.api_key, as, &o2);
                if (js != 200 && from > 1 && !p->setup_err[0])
                    snprintf(p->setup_err, sizeof p->setup_err, "POST %.150s answered %d: %.200s", path, js,
                             (const char *)buf_begin(&o2));
                free(as);
                buf_free(&o2);
            }
            if (js != 200) {
                snprintf(path, sizeof path, "/v1/groups/%s/join", p->group);
                for (size_t i = 1; i <= m; i++) {
                    buf o3 = {0};
                    js = setup_call(b, "POST", path, b->tokens[i], "{}", &o3);
                    if (js != 200 && !p->setup_err[0])
                        snprintf(p->setup_err, sizeof p->setup_err, "POST %.150s answered %d: %.200s", path, js,
                                 (const char *)buf_begin(&o3));
                    buf_free(&o3);
                }
            }
        }
    } else {
        snprintf(p->setup_err, sizeof p->setup_err, "POST /v1/groups answered %d: %.200s", st,
                 st ? (const char *)buf_begin(&out) : "(no answer)");
    }
    buf_free(&out);
    return 0;
}

static int group_prepare(bench *b) { return fo_prepare(b, false); }
static int channel_prepare(bench *b) { return fo_prepare(b, true); }

static void fo_finish(fo_w *d)
{
    if (d->finished) return;
    d->finished = true;
    for (size_t i = 0; i < d->n; i++) parley_client_free(d->cl[i].c);
    uv_close((uv_handle_t *)&d->pacer, NULL);
    uv_close((uv_handle_t *)&d->end, NULL);
    /* Extra: k, maxlat[k], reached[k], the send error. */
    uint64_t k = d->p->k;
    buf_append(&d->w->extra, &k, 8);
    buf_append(&d->w->extra, d->maxlat, k * 8);
    buf_append(&d->w->extra, d->reached, k * 8);
    buf_append(&d->w->extra, d->send_err, sizeof d->send_err);
    worker_done(d->w);
}

static void on_login(parley_client *c, const parley_login_info *li, void *ud)
{
    fo_cl *k = ud;
    if (k->logged) return;
    k->logged = true;
    k->d->w->st.n[C_CONNECTED]++;
    if (++k->d->attempted == k->d->n) worker_ready(k->d->w);
}

static void on_state(parley_client *c, parley_state st, parley_status why, void *ud)
{
    fo_cl *k = ud;
    if (st != PARLEY_STATE_CLOSED || k->closed) return;
    k->closed = true;
    stats_error(&k->d->w->st, why);
    if (k->logged) return;
    k->d->w->st.n[C_CONNECT_FAILED]++;
    if (++k->d->attempted == k->d->n) worker_ready(k->d->w);
}

static void on_msg(parley_client *c, const parley_msg *m, void *ud)
{
    fo_cl *k = ud;
    fo_w *d = k->d;
    uint64_t t, n, now = mono_ns();
    if (strncmp(m->conv, "g:", 2) || !bench_text_parse(m->text, &t, &n, NULL) || n >= d->p->k) {
        d->w->st.n[N_FOREIGN]++;
        return;
    }
    uint64_t lat = now > t ? now - t : 0;
    hist_add(&d->w->st.h[H_DELIV], lat);
    stats_event(&d->w->st, now);
    d->w->st.n[N_DELIV]++;
    if (lat > d->maxlat[n]) d->maxlat[n] = lat;
    d->reached[n]++;
}

static void on_sent(parley_client *c, parley_status st, const parley_send_result *r, void *arg)
{
    if (st == PARLEY_CANCELLED) return;
    fo_w *d = arg;
    if (st == PARLEY_OK) {
        d->w->st.n[N_ACKED]++;
        return;
    }
    stats_error(&d->w->st, st);
    if (!d->send_err[0])
        snprintf(d->send_err, sizeof d->send_err, "send {group: \"%s\"} answered %s: %s", d->p->group,
                 parley_status_str(st), r->error);
    if (st == PARLEY_NOT_FOUND) {
        /* The server has no such group: nothing to measure. */
        d->w->st.n[N_UNSUPPORTED] = 1;
        fo_finish(d);
    }
}

static void on_pace(uv_timer_t *tm)
{
    fo_w *d = tm->data;
    bench *b = d->w->b;
    uint64_t now = mono_ns();
    while (d->next < d->p->k) {
        uint64_t t = d->w->t0_ns + (uint64_t)d->next * d->interval_ns;
        if (t >= d->send_end && d->next) break;
        if (t > now) return;
        bench_text(d->text, (size_t)b->o.size, t, d->next, now);
        parley_send_req req = {.group = d->p->group, .text = d->text};
        if (parley_send(d->cl[0].c, &req, on_sent, d) == PARLEY_OK) d->w->st.n[N_SENT]++;
        d->next++;
    }
    uv_timer_stop(&d->pacer);
}

static void on_end(uv_timer_t *t) { fo_finish(t->data); }

static void fo_start(worker *w)
{
    bench *b = w->b;
    fo_w *d = PL_NEW(fo_w);
    w->sd = d;
    d->w = w;
    d->p = b->sd;
    d->maxlat = pl_calloc(d->p->k, sizeof *d->maxlat);
    d->reached = pl_calloc(d->p->k, sizeof *d->reached);
    d->text = pl_malloc((size_t)b->o.size + 1);
    uv_timer_init(&w->loop, &d->pacer);
    uv_timer_init(&w->loop, &d->end);
    d->pacer.data = d->end.data = d;
    /* Users 0..M (the online ones): user u belongs to worker u mod W. */
    size_t all = (size_t)b->o.members + 1;
    d->n = all / (size_t)w->count + ((size_t)w->index < all % (size_t)w->count ? 1 : 0);
    d->has_sender = w->index == 0;
    d->cl = pl_calloc(d->n ? d->n : 1, sizeof *d->cl);
    for (size_t j = 0; j < d->n; j++) {
        size_t u = j * (size_t)w->count + (size_t)w->index;
        fo_cl *k = &d->cl[j];
        k->d = d;
        parley_options po;
        bench_client_opts(b, u, &po);
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
    if (!d->n) worker_ready(w);
}

static void fo_go(worker *w)
{
    fo_w *d = w->sd;
    bench *b = w->b;
    d->interval_ns = (uint64_t)(1e9 / b->o.rate);
    /* Sending stops after --messages or --duration, whichever is first. */
    double send_s = (double)d->p->k / b->o.rate;
    if (send_s > b->o.duration) send_s = b->o.duration;
    uint64_t send_ms = (uint64_t)(send_s * 1000);
    d->send_end = w->t0_ns + send_ms * 1000000u;
    if (d->has_sender) uv_timer_start(&d->pacer, on_pace, 1, 1);
    uv_timer_start(&d->end, on_end, send_ms + DRAIN_S * 1000, 0);
}

static void fo_merge(bench *b, const uint8_t *x, size_t n)
{
    fo_parent *p = b->sd;
    uint64_t k;
    if (n < 8) return;
    memcpy(&k, x, 8);
    if (k != p->k || n != 8 + 16 * k + 256) return;
    for (size_t i = 0; i < k; i++) {
        uint64_t v, r;
        memcpy(&v, x + 8 + 8 * i, 8);
        memcpy(&r, x + 8 + 8 * k + 8 * i, 8);
        if (v > p->maxlat[i]) p->maxlat[i] = v;
        p->reached[i] += r;
    }
    const char *e = (const char *)x + 8 + 16 * k;
    if (e[0] && !p->send_err[0]) snprintf(p->send_err, sizeof p->send_err, "%.255s", e);
}

static void fo_report(bench *b, const bench_stats *st, json_t *res)
{
    fo_parent *p = b->sd;
    const char *kind = p->channel ? "channel" : "group";
    char what[1024];
    snprintf(what, sizeof what, "%d online of %d members, %zu messages at %.1f/s, %.300s", b->o.members,
             b->o.members + b->o.offline + 1, p->k, b->o.rate,
             b->ws_url);
    report_header(b, what);
    bool refused = st->n[N_UNSUPPORTED] || (!st->n[N_ACKED] && st->n[C_ERR_BASE + PARLEY_NOT_FOUND]);
    /* Unsupported: no group endpoint and no such group for send.  Any
     * other refusal is a failed set-up, reported as such. */
    bool unsupported = refused && (p->setup_status == 404 || p->setup_status == 405);
    json_object_set_new(res, "kind", json_string(kind));
    json_object_set_new(res, "group", json_string(p->group));
    json_object_set_new(res, "supported", json_boolean(!unsupported));
    if (refused) {
        char reason[900];
        snprintf(reason, sizeof reason, "%s%s%s", p->send_err, p->setup_err[0] ? "; " : "", p->setup_err);
        json_object_set_new(res, "reason", json_string(reason));
        if (unsupported) {
            printf("server does not support groups: %s\n", reason);
            report_note(b, "server does not support groups: no %s figures", kind);
        } else {
            printf("%s set-up failed: %s\n", kind, reason);
            report_note(b, "%s set-up failed: no figures", kind);
        }
        return;
    }
    if (p->setup_err[0]) report_note(b, "set-up: %s", p->setup_err);
    hist last;
    hist_init(&last);
    size_t complete = 0;
    uint64_t members = (uint64_t)b->o.members;
    size_t sent = st->n[N_SENT] < p->k ? (size_t)st->n[N_SENT] : p->k;
    for (size_t i = 0; i < sent; i++) {
        if (p->reached[i] >= members) {
            complete++;
            hist_add(&last, p->maxlat[i]);
        }
    }
    double span = st->t_last_ns > b->t0_ns ? (double)(st->t_last_ns - b->t0_ns) / 1e9 : 0;
    double dps = span > 0 ? (double)st->n[N_DELIV] / span : 0;
    json_t *rows = json_array();
    json_array_append_new(rows, report_row("delivery latency (send->push)", &st->h[H_DELIV], st->n[N_DELIV], dps,
                                           stats_errors(st)));
    json_array_append_new(rows, report_row("last member has it (per message)", &last, complete,
                                           span > 0 ? (double)complete / span : 0, 0));
    json_object_set_new(res, "rows", rows);
    printf("%llu deliveries (%.0f/s from the first send to the last push); %zu of %zu messages sent reached all %d "
           "online members\n",
           (unsigned long long)st->n[N_DELIV], dps, complete, sent, b->o.members);
    json_object_set_new(res, "deliveries", json_integer((json_int_t)st->n[N_DELIV]));
    json_object_set_new(res, "deliveries_per_s", json_real(dps));
    json_object_set_new(res, "messages_sent", json_integer((json_int_t)sent));
    json_object_set_new(res, "messages_complete", json_integer((json_int_t)complete));
    json_object_set_new(res, "errors", json_integer((json_int_t)stats_errors(st)));
    if (complete < sent) report_note(b, "%zu messages did not reach every member within %d s", sent - complete, DRAIN_S);
    if (sent < p->k) report_note(b, "--duration ended the run after %zu of %zu messages", sent, p->k);
    for (int i = 1; i < PARLEY_STATUS_COUNT; i++)
        if (st->n[C_ERR_BASE + i])
            report_note(b, "%llu errors: %s", (unsigned long long)st->n[C_ERR_BASE + i],
                        parley_status_str((parley_status)i));
}

static void fo_cleanup(bench *b)
{
    fo_parent *p = b->sd;
    if (!p) return;
    pl_free(p->maxlat);
    pl_free(p->reached);
    pl_free(p);
    b->sd = NULL;
}

const scenario scenario_group = {
    .name = "group",
    .help = "group fan-out: --members online (+ --offline), --messages at --rate/s; deliveries/s, time to the last member",
    .prepare = group_prepare,
    .start = fo_start,
    .go = fo_go,
    .merge_extra = fo_merge,
    .report = fo_report,
    .cleanup = fo_cleanup,
};

const scenario scenario_channel = {
    .name = "channel",
    .help = "channel fan-out: the same with a public channel (read diffusion)",
    .prepare = channel_prepare,
    .start = fo_start,
    .go = fo_go,
    .merge_extra = fo_merge,
    .report = fo_report,
    .cleanup = fo_cleanup,
};
