/*
 * send.c - the send queue: every message the application sends, from
 * parley_send until its callback, across reconnects.
 *
 * A send is in one of three places:
 *
 *   queued    (s->req == NULL, !waiting) --ready: transmit--> in flight
 *   in flight (s->req != NULL)
 *       --send_ok--> done (callback OK)
 *       --final error (not_found, too_large...)--> done (callback with it)
 *       --rate_limited / unavailable / internal--> waiting
 *       --connection lost (parley__sends_disconnected)--> queued
 *   waiting   (not_before in the future) --t_retry (parley__retry_tick)--> in flight
 *   any --deadline passed (t_retry)--> done (PARLEY_TIMEOUT)
 *   any --client closed for good (parley__sends_fail_all)--> done
 *
 * The cmid never changes, so the server stores the message once however
 * many times it is transmitted (SPEC section 3: exactly-once effect).
 * Sends sit in one list in the order they were made; parley__sends_pump
 * transmits the queued ones in that order after each login.
 *
 * t_retry runs (every RETRY_TICK_MS) only while some send has a deadline
 * or waits for a retry (n_timed > 0), so idle clients cost no wake-ups.
 */
#include <stdio.h>
#include <string.h>

#include <utlist.h>

#include "core/mem.h"
#include "core/utf8.h"
#include "internal.h"

#define RETRY_TICK_MS 20

static void update_timed(parley_client *c, parley__send *s)
{
    bool timed = s->deadline || s->waiting;
    if (timed == s->timed) return;
    s->timed = timed;
    if (timed) c->n_timed++;
    else c->n_timed--;
    if (timed) parley__retry_arm(c);
}

static void on_retry(uv_timer_t *t) { parley__retry_tick(t->data); }

void parley__retry_arm(parley_client *c)
{
    if (c->retry_armed || !c->n_timed || c->freed || c->final) return;
    c->retry_armed = true;
    uv_timer_start(&c->t_retry, on_retry, RETRY_TICK_MS, RETRY_TICK_MS);
}

static void send_free(parley__send *s)
{
    pl_free(s->to);
    pl_free(s->group);
    pl_free(s->text);
    pl_free(s->cmid);
    pl_free(s);
}

/* Remove s and run its callback. */
static void complete(parley_client *c, parley__send *s, parley_status st, const Parley__SendOk *ok,
                     const char *error)
{
    DL_DELETE2(c->sends, s, prev, next);
    c->n_sends--;
    s->deadline = 0;
    s->waiting = false;
    update_timed(c, s);
    if (s->req) {
        /* A late answer to it will find no request. */
        parley__req_free(c, s->req);
        s->req = NULL;
    }
    if (st == PARLEY_OK) c->stats.send_ok++;
    else c->stats.send_failed++;
    if (s->cb) {
        parley_send_result r = {.conv = "", .cmid = s->cmid, .error = error ? error : ""};
        if (ok) {
            r.conv = ok->conv ? ok->conv : "";
            r.seq = ok->seq;
            r.ts = ok->ts;
            r.useq = ok->useq;
        }
        s->cb(c, st, &r, s->arg);
    }
    send_free(s);
}

static void transmit(parley_client *c, parley__send *s)
{
    Parley__Frame f = PARLEY__FRAME__INIT;
    Parley__Send b = PARLEY__SEND__INIT;
    parley__req *r = parley__req_new(c, PARLEY__REQ_SEND);
    r->send = s;
    s->req = r;
    if (s->tries++) c->stats.resends++;
    f.has_id = true;
    f.id = r->id;
    f.body_case = PARLEY__FRAME__BODY_SEND;
    f.send = &b;
    b.to = s->to;
    b.group = s->group;
    b.text = s->text;
    b.cmid = s->cmid;
    parley__send_frame(c, &f);
}

parley_status parley_send(parley_client *c, const parley_send_req *req, parley_send_cb cb, void *arg)
{
    if (!c) return PARLEY_INVALID;
    if (c->freed) return PARLEY_CANCELLED;
    if (c->final) return PARLEY_CLOSED;
    if (!req || !req->text) return PARLEY_INVALID;
    bool to = req->to && *req->to, group = req->group && *req->group;
    if (to == group) return PARLEY_INVALID;
    if (req->cmid && (!*req->cmid || strlen(req->cmid) > 64)) return PARLEY_INVALID;
    /* A frame the server cannot decode is answered without an id, so it
     * could never complete: refuse what would make one. */
    if (!parley__str_ok(req->text) || !parley__str_ok(req->to) || !parley__str_ok(req->group) ||
        !parley__str_ok(req->cmid))
        return PARLEY_INVALID;
    parley__send *s = PL_NEW(parley__send);
    s->to = to ? pl_strdup(req->to) : NULL;
    s->group = group ? pl_strdup(req->group) : NULL;
    s->text = pl_strdup(req->text);
    if (req->cmid) {
        s->cmid = pl_strdup(req->cmid);
    } else {
        char id[48];
        snprintf(id, sizeof id, "%s-%llu", c->cmid_prefix, (unsigned long long)++c->cmid_n);
        s->cmid = pl_strdup(id);
    }
    s->cb = cb;
    s->arg = arg;
    if (req->timeout_ms) s->deadline = parley__now(c) + req->timeout_ms;
    DL_APPEND2(c->sends, s, prev, next);
    c->n_sends++;
    c->stats.sends++;
    update_timed(c, s);
    if (parley__ready(c)) transmit(c, s);
    return PARLEY_OK;
}

size_t parley_client_pending_sends(const parley_client *c) { return c->n_sends; }

void parley__sends_pump(parley_client *c)
{
    uint64_t now = parley__now(c);
    for (parley__send *s = c->sends; s && parley__ready(c); s = s->next) {
        if (s->req || (s->waiting && s->not_before > now)) continue;
        if (s->waiting) {
            s->waiting = false;
            update_timed(c, s);
        }
        transmit(c, s);
    }
}

void parley__send_reply(parley_client *c, parley__req *r, const Parley__Frame *f)
{
    parley__send *s = r->send;
    parley__req_free(c, r);
    if (!s) return;
    s->req = NULL;
    if (f->body_case == PARLEY__FRAME__BODY_SEND_OK) {
        const Parley__SendOk *ok = f->send_ok;
        uint64_t useq = ok ? ok->useq : 0;
        complete(c, s, PARLEY_OK, ok, NULL);
        if (!c->freed && c->tracking && useq && parley__ready(c)) parley__inbox_own(c, useq);
        return;
    }
    const Parley__Error *e = f->body_case == PARLEY__FRAME__BODY_ERROR ? f->error : NULL;
    parley_status st = e ? parley_status_from_code(e->code) : PARLEY_PROTOCOL;
    uint64_t now = parley__now(c);
    if (st == PARLEY_RATE_LIMITED) {
        c->stats.rate_limited++;
        uint64_t after = e && e->has_retry_after_ms ? e->retry_after_ms : 0;
        s->not_before = now + (after ? after : 100);
        s->waiting = true;
        update_timed(c, s);
        return;
    }
    if (st == PARLEY_UNAVAILABLE || st == PARLEY_INTERNAL) {
        s->not_before = now + parley__backoff(s->errors++, c->o.backoff_min_ms, c->o.backoff_max_ms,
                                              parley__rng_next(&c->rng));
        s->waiting = true;
        update_timed(c, s);
        return;
    }
    complete(c, s, st, NULL, e && e->message ? e->message : (e ? "" : "unexpected answer to send"));
}

void parley__sends_disconnected(parley_client *c)
{
    for (parley__send *s = c->sends; s; s = s->next) {
        if (!s->req) continue;
        s->req->send = NULL;
        s->req = NULL;
    }
}

void parley__sends_fail_all(parley_client *c, parley_status st)
{
    parley__send *s;
    while ((s = c->sends)) complete(c, s, c->freed && st != PARLEY_CANCELLED ? PARLEY_CANCELLED : st, NULL, NULL);
}

void parley__retry_tick(parley_client *c)
{
    if (c->freed) return;
    uint64_t now = parley__now(c);
    parley__send *s = c->sends, *next;
    for (; s; s = next) {
        next = s->next;
        if (s->deadline && now >= s->deadline) {
            complete(c, s, PARLEY_TIMEOUT, NULL, "no send_ok in time");
            if (c->freed) return;
            /* The callback may have completed others: start over. */
            next = c->sends;
            continue;
        }
        if (s->waiting && s->not_before <= now && parley__ready(c) && !s->req) {
            s->waiting = false;
            update_timed(c, s);
            transmit(c, s);
        }
    }
    if (!c->n_timed) {
        uv_timer_stop(&c->t_retry);
        c->retry_armed = false;
    }
}
