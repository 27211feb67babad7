/*
 * home.c - the home screen: the user's conversations, newest activity
 * first, each with its last message and unread count (SPEC section 2,
 * People).  One store read does the work (STORE_HOME); this file only
 * shapes the answer.
 */
#include <string.h>

#include "chat/chat_internal.h"

static void home_read(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    Parley__HomeOk ok = PARLEY__HOME_OK__INIT;
    ok.n_convs = r->n_convs_out;
    ok.convs = arena_alloc(&r->arena, (r->n_convs_out + 1) * sizeof *ok.convs);
    for (size_t i = 0; i < r->n_convs_out; i++) {
        const store_conv *sc = &r->convs_out[i];
        Parley__Conv *cv = arena_alloc(&r->arena, sizeof *cv);
        parley__conv__init(cv);
        cv->conv = (char *)sc->conv;
        cv->kind = (char *)sc->kind;
        cv->peer = (char *)sc->peer;
        cv->name = (char *)sc->name;
        cv->role = (char *)sc->role;
        if (sc->last) {
            Parley__Msg *m = arena_alloc(&r->arena, sizeof *m);
            parley__msg__init(m);
            m->conv = (char *)sc->last->conv;
            m->has_seq = true;
            m->seq = sc->last->seq;
            m->from = (char *)sc->last->from;
            m->text = (char *)sc->last->text;
            m->has_ts = true;
            m->ts = sc->last->ts;
            m->cmid = (char *)sc->last->cmid;
            cv->last = m;
        }
        cv->has_read_seq = true;
        cv->read_seq = sc->read_seq;
        cv->has_unread = true;
        cv->unread = sc->unread;
        cv->has_active_ts = true;
        cv->active_ts = sc->active_ts;
        ok.convs[i] = cv;
    }
    ok.has_more = true;
    ok.more = r->more;
    call_ok(c, &ok.base);
}

void h_home(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__Home *in = (const Parley__Home *)body;
    store_req *r = call_store(c, STORE_HOME, home_read);
    r->user_id = arena_strdup(&r->arena, c->user);
    r->limit = in->has_limit && in->limit ? (in->limit > 1000 ? 1000 : in->limit) : 1000;
    call_submit(c, r);
}
