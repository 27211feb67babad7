/*
 * call.c - a request in flight, from dispatch to its one reply.
 *
 * A request is a frame on a session or an HTTP call; both become a
 * chat_call and go through the same table of operations below (name, body
 * type, credentials, handler), so a behaviour is written once whichever
 * way a client reaches it.  The handler answers with call_ok / call_err /
 * call_limited exactly once, now or after store or hasher steps; the reply
 * frees the call.  A call holds a reference to its session, so a session
 * whose connection closed stays valid (detached) until its calls finish,
 * and their replies are dropped.
 *
 * Calls are recycled through a per-worker free list: the message path
 * allocates no call.
 *
 * Each call is timed from call_new to its reply (call_free) into the
 * histogram parley_request_duration_seconds{op, api} of its row
 * (call_metrics_init); error replies count by code (stats.c).
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "chat/chat_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"

#define FREE_CALLS_MAX 1024

#define OP(name_, fc, rc, desc, auth_, http_, h)                                                 \
    {.name = name_, .frame_case = PARLEY__FRAME__BODY_##fc, .reply_case = PARLEY__FRAME__BODY_##rc, \
     .body = &desc, .auth = auth_, .http = http_, .handler = h}

/* The operations.  Sockets look rows up by frame_case; HTTP by chat_op. */
static const chat_opdef ops[] = {
    OP("login", LOGIN, LOGIN_OK, parley__login__descriptor, AUTH_NONE, false, h_login),
    OP("logout", LOGOUT, LOGOUT_OK, parley__logout__descriptor, AUTH_USER, false, h_logout),
    OP("ping", PING, PONG, parley__ping__descriptor, AUTH_NONE, false, h_ping),
    OP("send", SEND, SEND_OK, parley__send__descriptor, AUTH_USER, false, h_send),
    OP("sync", SYNC, SYNC_OK, parley__sync__descriptor, AUTH_USER, false, h_sync),
    OP("history", HISTORY, HISTORY_OK, parley__history__descriptor, AUTH_USER, false, h_history),
    OP("read", READ, READ_OK, parley__read__descriptor, AUTH_USER, false, h_read),
    OP("typing", TYPING, _NOT_SET, parley__typing__descriptor, AUTH_USER, false, h_typing),
    OP("presence_sub", PRESENCE_SUB, PRESENCE_SUB_OK, parley__presence_sub__descriptor, AUTH_USER,
       false, h_presence_sub),
    OP("group_create", GROUP_CREATE, GROUP_CREATE_OK, parley__group_create__descriptor, AUTH_USER,
       false, h_group_create),
    OP("group_info", GROUP_INFO, GROUP_INFO_OK, parley__group_ref__descriptor, AUTH_USER, false,
       h_group_info),
    OP("group_join", GROUP_JOIN, GROUP_JOIN_OK, parley__group_ref__descriptor, AUTH_USER, false,
       h_group_join),
    OP("group_leave", GROUP_LEAVE, GROUP_LEAVE_OK, parley__group_ref__descriptor, AUTH_USER, false,
       h_group_leave),
    OP("group_members", GROUP_MEMBERS, GROUP_MEMBERS_OK, parley__group_members__descriptor,
       AUTH_USER, false, h_group_members),
    OP("group_add", GROUP_ADD, GROUP_ADD_OK, parley__group_add__descriptor, AUTH_USER, false,
       h_group_add),
    OP("group_remove", GROUP_REMOVE, GROUP_REMOVE_OK, parley__group_remove__descriptor, AUTH_USER,
       false, h_group_remove),
    OP("group_role", GROUP_ROLE, GROUP_ROLE_OK, parley__group_role__descriptor, AUTH_USER, false,
       h_group_role),
    OP("group_disband", GROUP_DISBAND, GROUP_DISBAND_OK, parley__group_ref__descriptor, AUTH_USER,
       false, h_group_disband),
    OP("friend", FRIEND, FRIEND_OK, parley__friend_op__descriptor, AUTH_USER, false, h_friend),
    OP("friend_list", FRIEND_LIST, FRIEND_LIST_OK, parley__empty__descriptor, AUTH_USER, false,
       h_friend_list),
    OP("home", HOME, HOME_OK, parley__home__descriptor, AUTH_USER, false, h_home),
    OP("channel_search", CHANNEL_SEARCH, CHANNEL_SEARCH_OK, parley__channel_search__descriptor,
       AUTH_USER, false, h_channel_search),
    OP("my_groups", MY_GROUPS, MY_GROUPS_OK, parley__empty__descriptor, AUTH_USER, false,
       h_my_groups),
};

/* HTTP operations, indexed by chat_op. */
static const chat_opdef http_ops[CHAT_OP_COUNT] = {
    [CHAT_OP_SIGNUP] = OP("signup", _NOT_SET, _NOT_SET, parley__signup__descriptor, AUTH_NONE,
                          true, h_signup),
    [CHAT_OP_LOGIN] = OP("login", _NOT_SET, _NOT_SET, parley__http_login__descriptor, AUTH_NONE,
                         true, h_http_login),
    [CHAT_OP_LOGOUT] = OP("logout", _NOT_SET, _NOT_SET, parley__empty__descriptor, AUTH_USER,
                          true, h_logout),
    [CHAT_OP_USER_CREATE] = OP("user_create", _NOT_SET, _NOT_SET, parley__user_create__descriptor,
                               AUTH_APIKEY, true, h_user_create),
    [CHAT_OP_USER_GET] = OP("user_get", _NOT_SET, _NOT_SET, parley__user_query__descriptor,
                            AUTH_USER | AUTH_APIKEY, true, h_user_get),
    [CHAT_OP_USER_SEARCH] = OP("user_search", _NOT_SET, _NOT_SET, parley__user_query__descriptor,
                               AUTH_USER | AUTH_APIKEY, true, h_user_search),
    [CHAT_OP_SEND] = OP("send", _NOT_SET, _NOT_SET, parley__send__descriptor, AUTH_USER, true,
                        h_send),
    [CHAT_OP_HISTORY] = OP("history", _NOT_SET, _NOT_SET, parley__history__descriptor, AUTH_USER,
                           true, h_history),
    [CHAT_OP_SYNC] = OP("sync", _NOT_SET, _NOT_SET, parley__sync__descriptor, AUTH_USER, true,
                        h_sync),
    [CHAT_OP_READ] = OP("read", _NOT_SET, _NOT_SET, parley__read__descriptor, AUTH_USER, true,
                        h_read),
    [CHAT_OP_TENANT_CREATE] = OP("tenant_create", _NOT_SET, _NOT_SET,
                                 parley__tenant_create__descriptor, AUTH_ADMIN, true,
                                 h_tenant_create),
    [CHAT_OP_TENANT_LIST] = OP("tenant_list", _NOT_SET, _NOT_SET, parley__empty__descriptor,
                               AUTH_ADMIN, true, h_tenant_list),
#define HOP(op_, name_, desc, auth_, h) [op_] = OP(name_, _NOT_SET, _NOT_SET, desc, auth_, true, h)
    HOP(CHAT_OP_GROUP_CREATE, "group_create", parley__group_create__descriptor,
        AUTH_USER | AUTH_APIKEY, h_group_create),
    HOP(CHAT_OP_GROUP_INFO, "group_info", parley__group_ref__descriptor, AUTH_USER | AUTH_APIKEY,
        h_group_info),
    HOP(CHAT_OP_GROUP_JOIN, "group_join", parley__group_ref__descriptor, AUTH_USER, h_group_join),
    HOP(CHAT_OP_GROUP_LEAVE, "group_leave", parley__group_ref__descriptor, AUTH_USER, h_group_leave),
    HOP(CHAT_OP_GROUP_MEMBERS, "group_members", parley__group_members__descriptor,
        AUTH_USER | AUTH_APIKEY, h_group_members),
    HOP(CHAT_OP_GROUP_ADD, "group_add", parley__group_add__descriptor, AUTH_USER | AUTH_APIKEY,
        h_group_add),
    HOP(CHAT_OP_GROUP_REMOVE, "group_remove", parley__group_remove__descriptor,
        AUTH_USER | AUTH_APIKEY, h_group_remove),
    HOP(CHAT_OP_GROUP_ROLE, "group_role", parley__group_role__descriptor, AUTH_USER | AUTH_APIKEY,
        h_group_role),
    HOP(CHAT_OP_GROUP_DISBAND, "group_disband", parley__group_ref__descriptor,
        AUTH_USER | AUTH_APIKEY, h_group_disband),
    HOP(CHAT_OP_CHANNEL_SEARCH, "channel_search", parley__channel_search__descriptor,
        AUTH_USER | AUTH_APIKEY, h_channel_search),
    HOP(CHAT_OP_MY_GROUPS, "my_groups", parley__empty__descriptor, AUTH_USER, h_my_groups),
    HOP(CHAT_OP_FRIEND, "friend", parley__friend_op__descriptor, AUTH_USER, h_friend),
    HOP(CHAT_OP_FRIEND_LIST, "friend_list", parley__empty__descriptor, AUTH_USER, h_friend_list),
    HOP(CHAT_OP_PRESENCE, "presence", parley__presence_sub__descriptor, AUTH_USER | AUTH_APIKEY,
        h_presence_get),
    HOP(CHAT_OP_HOME, "home", parley__home__descriptor, AUTH_USER, h_home),
    HOP(CHAT_OP_TENANT_SETTINGS, "tenant_settings", parley__tenant_settings_update__descriptor,
        AUTH_ADMIN, h_tenant_settings),
    HOP(CHAT_OP_USER_BAN, "user_ban", parley__admin_user__descriptor, AUTH_ADMIN, h_user_ban),
    HOP(CHAT_OP_USER_UNBAN, "user_unban", parley__admin_user__descriptor, AUTH_ADMIN, h_user_unban),
    HOP(CHAT_OP_USER_KICK, "user_kick", parley__admin_user__descriptor, AUTH_ADMIN, h_user_kick),
    HOP(CHAT_OP_ONLINE, "online", parley__online_query__descriptor, AUTH_ADMIN, h_online),
    HOP(CHAT_OP_WORDS_PUT, "words_put", parley__word_list__descriptor, AUTH_ADMIN, h_words_put),
    HOP(CHAT_OP_BACKUP, "backup", parley__backup__descriptor, AUTH_ADMIN, h_backup),
#undef HOP
};

#define N_OPS (sizeof ops / sizeof ops[0])

/* Request duration histograms, parallel to ops[] and http_ops[]. */
static metric *m_ops[N_OPS], *m_http_ops[CHAT_OP_COUNT];

void call_metrics_init(void)
{
    char l[96];
    for (size_t i = 0; i < N_OPS; i++) {
        snprintf(l, sizeof l, "op=\"%s\",api=\"frame\"", ops[i].name);
        m_ops[i] = metric_histogram("parley_request_duration_seconds",
                                    "Time from a request's arrival to its reply, by operation and API.",
                                    l, metrics_seconds_ns, metrics_seconds_ns_n, 1e-9);
    }
    for (size_t i = 0; i < CHAT_OP_COUNT; i++) {
        if (!http_ops[i].name) continue;
        snprintf(l, sizeof l, "op=\"%s\",api=\"http\"", http_ops[i].name);
        m_http_ops[i] = metric_histogram("parley_request_duration_seconds",
                                         "Time from a request's arrival to its reply, by operation and API.",
                                         l, metrics_seconds_ns, metrics_seconds_ns_n, 1e-9);
    }
}

static metric *duration_metric(const chat_opdef *op)
{
    if (op >= ops && op < ops + N_OPS) return m_ops[op - ops];
    if (op >= http_ops && op < http_ops + CHAT_OP_COUNT) return m_http_ops[op - http_ops];
    return NULL;
}

const ProtobufCMessageDescriptor *chat_op_body(chat_op op)
{
    return (unsigned)op < CHAT_OP_COUNT ? http_ops[op].body : NULL;
}

void frame_set_body(Parley__Frame *f, Parley__Frame__BodyCase body_case, const void *msg)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(&parley__frame__descriptor, (unsigned)body_case);
    if (!fd) return;
    f->body_case = body_case;
    memcpy((char *)f + fd->offset, &msg, sizeof msg);
}

static chat_call *call_new(chat_worker *w, const chat_opdef *op)
{
    chat_call *c = w->free_calls;
    if (c) {
        w->free_calls = c->next_free;
        w->n_free_calls--;
        memset(c, 0, sizeof *c);
    } else {
        c = PL_NEW(chat_call);
    }
    c->w = w;
    c->c = w->c;
    c->op = op;
    c->t0 = clock_mono_ns();
    w->n_calls++;
    return c;
}

static void call_free(chat_call *c)
{
    chat_worker *w = c->w;
    metric_observe(duration_metric(c->op), clock_mono_ns() - c->t0);
    if (c->req) store_req_free(c->req);
    if (c->job) {
        sodium_memzero(c->job, sizeof *c->job);
        pl_free(c->job);
    }
    if (c->s) session_unref(c->s);
    arena_free(&c->arena);
    w->n_calls--;
    if (w->n_free_calls < FREE_CALLS_MAX) {
        c->next_free = w->free_calls;
        w->free_calls = c;
        w->n_free_calls++;
    } else {
        pl_free(c);
    }
}

void chat__worker_free_calls(chat_worker *w)
{
    while (w->free_calls) {
        chat_call *c = w->free_calls;
        w->free_calls = c->next_free;
        pl_free(c);
    }
    w->n_free_calls = 0;
}

static void reply_frame(chat_call *c, const Parley__Frame *f)
{
    if (c->s) session_send(c->s, f);
}

void call_ok(chat_call *c, const ProtobufCMessage *body)
{
    if (c->reply) {
        c->reply(c->ud, PL_OK, NULL, 0, body);
    } else if (c->op->reply_case != PARLEY__FRAME__BODY__NOT_SET) {
        Parley__Frame f = PARLEY__FRAME__INIT;
        if (c->id) {
            f.has_id = true;
            f.id = c->id;
        }
        frame_set_body(&f, c->op->reply_case, body);
        reply_frame(c, &f);
    }
    call_free(c);
}

static void err_reply(chat_call *c, pl_status st, const char *message, uint64_t retry)
{
    stats_error(st);
    if (c->reply) {
        c->reply(c->ud, st, message, retry, NULL);
    } else {
        Parley__Frame f = PARLEY__FRAME__INIT;
        Parley__Error e = PARLEY__ERROR__INIT;
        e.code = (char *)pl_status_str(st);
        e.message = (char *)(message ? message : "");
        if (retry) {
            e.has_retry_after_ms = true;
            e.retry_after_ms = retry;
        }
        if (c->id) {
            f.has_id = true;
            f.id = c->id;
        }
        frame_set_body(&f, PARLEY__FRAME__BODY_ERROR, &e);
        reply_frame(c, &f);
    }
    call_free(c);
}

void call_err(chat_call *c, pl_status st, const char *message) { err_reply(c, st, message, 0); }

void call_limited(chat_call *c, uint64_t retry_after_ms)
{
    stats_limited(c->op->name);
    err_reply(c, PL_RATE_LIMITED, "too many requests, retry later", retry_after_ms);
}

static void store_trampoline(store_req *r)
{
    chat_call *c = r->udata;
    chat_worker *w = c->w;
    w->cur_t0 = c->t0;
    c->store_fn(c, r);
    w->cur_t0 = 0;
}

store_req *call_store(chat_call *c, store_op op, void (*fn)(chat_call *c, store_req *r))
{
    if (c->req) store_req_free(c->req);
    store_req *r = store_req_new(op);
    r->reply_to = c->w->mb;
    r->done = store_trampoline;
    r->udata = c;
    if (c->tenant) r->tenant_id = c->tenant->id;
    c->store_fn = fn;
    c->req = r;
    return r;
}

void call_submit(chat_call *c, store_req *r) { store_submit(c->c->st, r); }

static void hash_trampoline(hasher_job *j)
{
    chat_call *c = j->udata;
    chat_worker *w = c->w;
    w->cur_t0 = c->t0;
    c->hash_fn(c, j);
    w->cur_t0 = 0;
}

bool call_hash(chat_call *c, hasher_op op, const char *password, const char *hash,
               void (*fn)(chat_call *c, hasher_job *j))
{
    if (!c->job) c->job = pl_calloc(1, sizeof *c->job);
    hasher_job *j = c->job;
    j->op = op;
    snprintf(j->password, sizeof j->password, "%s", password);
    if (hash) snprintf(j->hash, sizeof j->hash, "%s", hash);
    j->reply_to = c->w->mb;
    j->done = hash_trampoline;
    j->udata = c;
    c->hash_fn = fn;
    return hasher_submit(c->c->hasher, j);
}

/* ---- dispatch ---- */

static void run(chat_call *c, const ProtobufCMessage *body)
{
    if (body && body->descriptor != c->op->body) {
        call_err(c, PL_BAD_REQUEST, "wrong body type");
        return;
    }
    chat_worker *w = c->w;
    w->cur_t0 = c->t0;
    c->op->handler(c, body);
    w->cur_t0 = 0;
}

void chat_session_frame(chat_session *s, const Parley__Frame *f)
{
    const chat_opdef *op = NULL;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (ops[i].frame_case == f->body_case) {
            op = &ops[i];
            break;
        }
    if (!op) {
        chat_session_bad_frame(s, f->has_id ? f->id : 0, PL_BAD_REQUEST,
                               "this body is not a request a client can send");
        return;
    }
    chat_call *c = call_new(s->w, op);
    c->s = s;
    session_ref(s);
    c->id = f->has_id ? f->id : 0;
    snprintf(c->ip, sizeof c->ip, "%s", s->ip);
    if (op->auth & AUTH_USER) {
        if (!s->authed) {
            call_err(c, PL_UNAUTHORIZED, "log in first");
            return;
        }
        c->auth = AUTH_USER;
        c->tenant = s->tenant;
        memcpy(c->user, s->user, sizeof c->user);
        memcpy(c->device, s->device, sizeof c->device);
        memcpy(c->jti, s->jti, sizeof c->jti);
    }
    const ProtobufCMessage *body = NULL;
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(&parley__frame__descriptor, (unsigned)f->body_case);
    memcpy(&body, (const char *)f + fd->offset, sizeof body);
    run(c, body);
}

void chat__after_login_call(chat_session *s, const chat_opdef *op, void (*start)(chat_call *c))
{
    chat_call *c = call_new(s->w, op);
    c->s = s;
    session_ref(s);
    c->auth = AUTH_USER;
    c->tenant = s->tenant;
    memcpy(c->user, s->user, sizeof c->user);
    memcpy(c->device, s->device, sizeof c->device);
    snprintf(c->ip, sizeof c->ip, "%s", s->ip);
    start(c);
}

void chat_session_bad_frame(chat_session *s, uint64_t id, pl_status st, const char *why)
{
    static const chat_opdef bad = {.name = "bad_frame"};
    chat_call *c = call_new(s->w, &bad);
    c->s = s;
    session_ref(s);
    c->id = id;
    call_err(c, st, why);
}

/* Match an HTTP bearer credential to the kinds op accepts. */
static pl_status authenticate(chat_call *c, const char *bearer, const char **why)
{
    chat *ch = c->c;
    unsigned want = c->op->auth;
    if (want == AUTH_NONE) return PL_OK;
    if (!bearer || !*bearer) {
        *why = "missing Authorization: Bearer credentials";
        return PL_UNAUTHORIZED;
    }
    if (!strncmp(bearer, "v1.", 3)) {
        token_claims tc;
        if (token_verify(ch->secret, bearer, clock_wall_ms(), &tc) || chat_is_revoked(ch, tc.jti)) {
            *why = "invalid, expired or revoked token";
            return PL_UNAUTHORIZED;
        }
        const chat_tenant *t = tenants_find(ch, tc.tenant);
        if (!t) {
            *why = "invalid token";
            return PL_UNAUTHORIZED;
        }
        if (chat_is_banned(ch, t, tc.user)) {
            *why = "this user is banned";
            return PL_FORBIDDEN;
        }
        c->auth = AUTH_USER;
        c->tenant = t;
        snprintf(c->user, sizeof c->user, "%s", tc.user);
        snprintf(c->device, sizeof c->device, "%s", tc.device);
        snprintf(c->jti, sizeof c->jti, "%s", tc.jti);
        c->token_expires = tc.expires_at;
    } else if (!strncmp(bearer, "ak.", 3)) {
        const chat_tenant *t = tenants_by_key(ch, bearer);
        if (!t) {
            *why = "invalid API key";
            return PL_UNAUTHORIZED;
        }
        c->auth = AUTH_APIKEY;
        c->tenant = t;
    } else {
        size_t n = strlen(bearer);
        if (n != strlen(ch->admin_token) || sodium_memcmp(bearer, ch->admin_token, n)) {
            *why = "invalid credentials";
            return PL_UNAUTHORIZED;
        }
        c->auth = AUTH_ADMIN;
    }
    if (!(want & c->auth)) {
        *why = "these credentials may not make this call";
        return PL_FORBIDDEN;
    }
    return PL_OK;
}

void chat_http(chat_worker *w, chat_op op, const char *bearer, const char *remote_ip,
               const ProtobufCMessage *body, chat_reply_fn reply, void *ud)
{
    if ((unsigned)op >= CHAT_OP_COUNT || !http_ops[op].handler) {
        reply(ud, PL_NOT_FOUND, "no such operation", 0, NULL);
        return;
    }
    chat_call *c = call_new(w, &http_ops[op]);
    c->reply = reply;
    c->ud = ud;
    snprintf(c->ip, sizeof c->ip, "%s", remote_ip ? remote_ip : "");
    const char *why = "";
    pl_status st = authenticate(c, bearer, &why);
    if (st) {
        call_err(c, st, why);
        return;
    }
    run(c, body);
}

void h_ping(chat_call *c, const ProtobufCMessage *body)
{
    Parley__Pong p = PARLEY__PONG__INIT;
    p.has_server_ts = true;
    p.server_ts = clock_wall_ms();
    call_ok(c, &p.base);
}
