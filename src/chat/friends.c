/*
 * friends.c - friend requests, acceptances, rejections, removals and the
 * friend list (SPEC section 2, People).
 *
 * The store applies the state machine and writes both users' rows and
 * inbox events in one batch (store.h, STORE_FRIEND); this file pushes the
 * same events to the online devices of both sides.  A new friendship also
 * subscribes each side's sessions to the other's presence, through the
 * `friend_added` event the worker pushes (topic.c).
 */
#include <stdio.h>
#include <string.h>

#include "chat/chat_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"

/* Push event kind to `to` (with its useq), naming `about`. */
static void push_friend_event(chat_call *c, const char *to, uint64_t useq, const char *kind,
                              const char *about)
{
    if (!useq) return;
    Parley__Event e = PARLEY__EVENT__INIT;
    e.kind = (char *)kind;
    e.user = (char *)about;
    e.has_ts = true;
    e.ts = clock_wall_ms();
    push_target t = {.user = to, .useq = useq};
    push_to_users(c->w, c->tenant, &t, 1, PARLEY__FRAME__BODY_EVENT, &e.base, 0);
}

static void friend_done(chat_call *c, store_req *r)
{
    if (r->status) {
        const char *why = r->status == PL_NOT_FOUND   ? "no such user or no such request"
                          : r->status == PL_CONFLICT  ? "already friends"
                          : r->status == PL_BAD_REQUEST ? "not with oneself"
                                                        : "store unavailable, retry later";
        call_err(c, r->status, why);
        return;
    }
    const char *me = c->user, *other = c->target, *done = r->query ? r->query : "";
    uint64_t u0 = r->useqs ? r->useqs[0] : 0, u1 = r->useqs ? r->useqs[1] : 0;
    const char *state = "none";
    if (!strcmp(done, "request")) {
        push_friend_event(c, other, u1, "friend_request", me);
        state = "requested";
    } else if (!strcmp(done, "accept")) {
        push_friend_event(c, me, u0, "friend_added", other);
        push_friend_event(c, other, u1, "friend_added", me);
        state = "friends";
    } else if (!strcmp(done, "reject")) {
        push_friend_event(c, other, u1, "friend_rejected", me);
    } else if (!strcmp(done, "delete")) {
        push_friend_event(c, me, u0, "friend_removed", other);
        push_friend_event(c, other, u1, "friend_removed", me);
    }
    log_event(LOG_INFO, "friend", "tenant", c->tenant->id, "user", me, "other", other, "action",
              done, "device", c->device, "remote", c->ip, NULL);
    Parley__FriendOk ok = PARLEY__FRIEND_OK__INIT;
    ok.user = c->target;
    ok.state = (char *)state;
    call_ok(c, &ok.base);
}

void h_friend(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__FriendOp *in = (const Parley__FriendOp *)body;
    static const char *actions[] = {"request", "accept", "reject", "delete"};
    const char *action = NULL;
    for (size_t i = 0; i < 4 && in->action; i++)
        if (!strcmp(in->action, actions[i])) action = actions[i];
    if (!action) {
        call_err(c, PL_BAD_REQUEST, "action must be request, accept, reject or delete");
        return;
    }
    if (!chat_valid_id(in->user)) {
        call_err(c, PL_NOT_FOUND, "no such user");
        return;
    }
    snprintf(c->target, sizeof c->target, "%s", in->user);
    store_req *r = call_store(c, STORE_FRIEND, friend_done);
    r->user_id = arena_strdup(&r->arena, c->user);
    r->other = arena_strdup(&r->arena, in->user);
    r->action = action;
    call_submit(c, r);
}

static void friends_listed(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    Parley__FriendList ok = PARLEY__FRIEND_LIST__INIT;
    ok.n_friends = r->n_friends_out;
    ok.friends = arena_alloc(&r->arena, (r->n_friends_out + 1) * sizeof *ok.friends);
    for (size_t i = 0; i < r->n_friends_out; i++) {
        const store_friend *sf = &r->friends_out[i];
        Parley__Friend *f = arena_alloc(&r->arena, sizeof *f);
        parley__friend__init(f);
        f->user = (char *)sf->user;
        f->state = (char *)sf->state;
        f->has_since = true;
        f->since = sf->since;
        if (!strcmp(sf->state, "friends")) {
            bool online;
            uint64_t seen;
            presence_get(c->c, c->tenant, sf->user, &online, &seen);
            if (!seen) seen = sf->last_seen;
            f->has_online = true;
            f->online = online;
            if (!online && seen) {
                f->has_last_seen = true;
                f->last_seen = seen;
            }
        }
        ok.friends[i] = f;
    }
    call_ok(c, &ok.base);
}

void h_friend_list(chat_call *c, const ProtobufCMessage *body)
{
    store_req *r = call_store(c, STORE_FRIEND_LIST, friends_listed);
    r->user_id = arena_strdup(&r->arena, c->user);
    call_submit(c, r);
}
