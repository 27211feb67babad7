/*
 * auth.c - sign-up, login, logout and users.
 *
 * Password checks run on the hasher's threads (argon2id), never on a
 * worker's loop.  The flows, each step a store or hasher round trip whose
 * completion runs on the caller's worker:
 *
 *   password login:  rate limit (IP) -> lockout check (user) -> USER_GET
 *                    -> hasher VERIFY -> issue token -> [session: INBOX_HEAD]
 *   token login:     verify MAC/expiry/revocation -> USER_GET -> INBOX_HEAD
 *   sign-up:         open sign-up? -> hasher HASH -> USER_CREATE -> token
 *
 * A wrong password takes a token from the user's failed-login bucket;
 * an empty bucket locks password logins for that user out until it refills
 * (failed_login_max per failed_login_window_ms), which is logged.  Errors
 * never say whether the user exists.
 */
#include <stdio.h>
#include <string.h>

#include "chat/chat_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/utf8.h"

#define WRONG_LOGIN "wrong tenant, user or password"

static void fail_key(const chat_tenant *t, const char *user, char *out, size_t outlen)
{
    snprintf(out, outlen, "fail:%s/%s", t->id, user);
}

static double fail_rate(chat *c)
{
    uint32_t window = atomic_load_explicit(&c->failed_login_window_ms, memory_order_relaxed);
    uint32_t max = atomic_load_explicit(&c->failed_login_max, memory_order_relaxed);
    return window ? (double)max * 1000.0 / window : 0;
}

/* Issue a token for the caller's tenant/user/device into c->token. */
static pl_status issue_token(chat_call *c)
{
    token_claims tc = {0};
    snprintf(tc.tenant, sizeof tc.tenant, "%s", c->tenant->id);
    snprintf(tc.user, sizeof tc.user, "%s", c->user);
    snprintf(tc.device, sizeof tc.device, "%s", c->device[0] ? c->device : "web");
    tc.expires_at = clock_wall_ms() + c->c->cfg.token_ttl_ms;
    pl_status st = token_issue(c->c->secret, &tc, c->token, sizeof c->token);
    if (!st) {
        memcpy(c->jti, tc.jti, sizeof c->jti);
        c->token_expires = tc.expires_at;
    }
    return st;
}

static void login_failed(chat_call *c, pl_status st, const char *why)
{
    stats_login(false);
    if (c->s) c->s->logging_in = false;
    call_err(c, st, why);
}

/* ---- password verification, shared by socket and HTTP login ---- */

static void password_checked(chat_call *c, hasher_job *j)
{
    chat *ch = c->c;
    if (!j->ok) {
        char key[160];
        fail_key(c->tenant, c->user, key, sizeof key);
        limits_take(ch->limits, key, clock_wall_ms(), fail_rate(ch), (double)atomic_load_explicit(&ch->failed_login_max, memory_order_relaxed));
        log_event(LOG_WARN, "login_failed", "tenant", c->tenant->id, "user", c->user, "device",
                  c->device, "remote", c->ip, "reason", "wrong_password", NULL);
        login_failed(c, PL_UNAUTHORIZED, WRONG_LOGIN);
        return;
    }
    if (issue_token(c)) {
        login_failed(c, PL_INTERNAL, "cannot issue a token");
        return;
    }
    c->next(c);
}

static void user_for_password(chat_call *c, store_req *r)
{
    if (r->status == PL_NOT_FOUND || (!r->status && !r->user->pwhash)) {
        log_event(LOG_WARN, "login_failed", "tenant", c->tenant->id, "user", c->user, "device",
                  c->device, "remote", c->ip, "reason", "no_such_user", NULL);
        login_failed(c, PL_UNAUTHORIZED, WRONG_LOGIN);
        return;
    }
    if (r->status) {
        login_failed(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    if (r->user->banned) {
        log_event(LOG_WARN, "login_failed", "tenant", c->tenant->id, "user", c->user, "device",
                  c->device, "remote", c->ip, "reason", "banned", NULL);
        login_failed(c, PL_FORBIDDEN, "this user is banned");
        return;
    }
    if (!call_hash(c, HASHER_VERIFY, c->text, r->user->pwhash, password_checked))
        login_failed(c, PL_UNAVAILABLE, "too many logins in progress, retry later");
}

/* Check tenant/user/password, then run next(c) with c->tenant, c->user,
 * c->device set and a fresh token in c->token. */
static void verify_password(chat_call *c, const char *tenant, const char *user,
                            const char *password, void (*next)(chat_call *c))
{
    chat *ch = c->c;
    uint64_t now = clock_wall_ms(), wait;
    char key[160];
    snprintf(key, sizeof key, "login:%s", c->ip);
    if ((wait = limits_take(ch->limits, key, now, atomic_load_explicit(&ch->login_rate_ip, memory_order_relaxed), atomic_load_explicit(&ch->login_burst_ip, memory_order_relaxed)))) {
        if (c->s) c->s->logging_in = false;
        call_limited(c, wait);
        return;
    }
    const chat_tenant *t = tenants_find(ch, tenant && *tenant ? tenant : "default");
    if (!t || !chat_valid_id(user) || !password || strlen(password) > HASHER_PW_MAX) {
        login_failed(c, PL_UNAUTHORIZED, WRONG_LOGIN);
        return;
    }
    c->tenant = t;
    snprintf(c->user, sizeof c->user, "%s", user);
    fail_key(t, user, key, sizeof key);
    if ((wait = limits_peek(ch->limits, key, now, fail_rate(ch), (double)atomic_load_explicit(&ch->failed_login_max, memory_order_relaxed)))) {
        log_event(LOG_WARN, "login_failed", "tenant", t->id, "user", user, "device", c->device,
                  "remote", c->ip, "reason", "locked_out", NULL);
        stats_login(false);
        stats_lockout();
        if (c->s) c->s->logging_in = false;
        call_limited(c, wait);
        return;
    }
    c->next = next;
    store_req *r = call_store(c, STORE_USER_GET, user_for_password);
    r->user_id = arena_strdup(&r->arena, user);
    c->text = arena_strdup(&r->arena, password);
    call_submit(c, r);
}

/* ---- socket login ---- */

static void login_finish(chat_call *c, store_req *r)
{
    chat_session *s = c->s;
    if (r->status) {
        login_failed(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    s->logging_in = false;
    if (!session_open(s)) {
        call_err(c, PL_UNAVAILABLE, "connection closed");
        return;
    }
    s->tenant = c->tenant;
    memcpy(s->user, c->user, sizeof s->user);
    memcpy(s->device, c->device, sizeof s->device);
    memcpy(s->jti, c->jti, sizeof s->jti);
    s->token_expires = c->token_expires;
    session_login(s);
    /* Follow the friends read before, now, so that a friend's presence
     * change right after login_ok reaches this session; chat_after_login
     * then reads groups and friends again from the registry's point on. */
    for (size_t i = 0; i < c->n_users; i++) {
        char key[TOPIC_KEY_MAX];
        topic_presence_key(s->tenant, c->users[i], key, sizeof key);
        topic_sub(s, key);
    }
    log_event(LOG_INFO, "login", "tenant", s->tenant->id, "user", s->user, "device", s->device,
              "device_id", s->device_id, "transport", s->transport, "remote", s->ip, NULL);
    stats_login(true);
    char sid[24];
    snprintf(sid, sizeof sid, "%llx", (unsigned long long)s->id);
    Parley__LoginOk ok = PARLEY__LOGIN_OK__INIT;
    ok.user = s->user;
    ok.tenant = (char *)s->tenant->id;
    ok.session = sid;
    ok.has_useq = true;
    ok.useq = r->head;
    ok.has_server_ts = true;
    ok.server_ts = clock_wall_ms();
    if (c->flag) {     /* password login: hand the client its token */
        ok.token = c->token;
        ok.has_expires_at = true;
        ok.expires_at = c->token_expires;
    }
    call_ok(c, &ok.base);
    chat_after_login(s);
}

static void login_friends(chat_call *c, store_req *r)
{
    c->n_users = 0;
    if (!r->status) {
        c->users = arena_alloc(&c->arena, (r->n_friends_out + 1) * sizeof *c->users);
        for (size_t i = 0; i < r->n_friends_out; i++)
            if (!strcmp(r->friends_out[i].state, "friends"))
                c->users[c->n_users++] = arena_strdup(&c->arena, r->friends_out[i].user);
    }
    store_req *nr = call_store(c, STORE_INBOX_HEAD, login_finish);
    nr->user_id = arena_strdup(&nr->arena, c->user);
    call_submit(c, nr);
}

/* The user's friends, then its inbox head, then login_finish. */
static void login_head(chat_call *c)
{
    store_req *r = call_store(c, STORE_FRIEND_LIST, login_friends);
    r->user_id = arena_strdup(&r->arena, c->user);
    call_submit(c, r);
}

static void user_for_token(chat_call *c, store_req *r)
{
    if (r->status == PL_NOT_FOUND) {
        login_failed(c, PL_UNAUTHORIZED, "invalid token");
        return;
    }
    if (r->status) {
        login_failed(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    if (r->user->banned) {
        log_event(LOG_WARN, "login_failed", "tenant", c->tenant->id, "user", c->user, "device",
                  c->device, "remote", c->ip, "reason", "banned", NULL);
        login_failed(c, PL_FORBIDDEN, "this user is banned");
        return;
    }
    login_head(c);
}

void h_login(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__Login *in = (const Parley__Login *)body;
    chat_session *s = c->s;
    if (s->authed || s->logging_in) {
        call_err(c, PL_BAD_REQUEST, s->authed ? "already logged in" : "a login is in progress");
        return;
    }
    const char *device = in->device && *in->device ? in->device : NULL;
    if (device && !chat_valid_device(device)) {
        call_err(c, PL_BAD_REQUEST, "device must be one of web, ios, android, desktop, cli, bot");
        return;
    }
    if (in->device_id && *in->device_id && !chat_valid_id(in->device_id)) {
        call_err(c, PL_BAD_REQUEST, "device_id must be 1 to 64 of A-Z a-z 0-9 _ . @ -");
        return;
    }
    snprintf(s->device_id, sizeof s->device_id, "%s", in->device_id ? in->device_id : "");
    s->logging_in = true;
    if (in->token && *in->token) {
        token_claims tc;
        if (token_verify(c->c->secret, in->token, clock_wall_ms(), &tc) ||
            chat_is_revoked(c->c, tc.jti) || !(c->tenant = tenants_find(c->c, tc.tenant))) {
            log_event(LOG_WARN, "login_failed", "device", device ? device : "", "transport",
                      s->transport, "remote", c->ip, "reason", "bad_token", NULL);
            login_failed(c, PL_UNAUTHORIZED, "invalid, expired or revoked token");
            return;
        }
        snprintf(c->user, sizeof c->user, "%s", tc.user);
        snprintf(c->device, sizeof c->device, "%s", device ? device : tc.device);
        memcpy(c->jti, tc.jti, sizeof c->jti);
        c->token_expires = tc.expires_at;
        store_req *r = call_store(c, STORE_USER_GET, user_for_token);
        r->user_id = arena_strdup(&r->arena, c->user);
        call_submit(c, r);
        return;
    }
    if (!in->user || !in->password) {
        login_failed(c, PL_BAD_REQUEST, "login needs a token, or user and password");
        return;
    }
    snprintf(c->device, sizeof c->device, "%s", device ? device : "web");
    c->flag = true;
    verify_password(c, in->tenant, in->user, in->password, login_head);
}

/* ---- HTTP login and sign-up ---- */

static void reply_token(chat_call *c)
{
    Parley__TokenOk ok = PARLEY__TOKEN_OK__INIT;
    ok.token = c->token;
    ok.has_expires_at = true;
    ok.expires_at = c->token_expires;
    ok.user = c->user;
    ok.tenant = (char *)c->tenant->id;
    log_event(LOG_INFO, c->flag ? "signup" : "login", "tenant", c->tenant->id, "user", c->user,
              "device", c->device, "transport", "http", "remote", c->ip, NULL);
    if (c->flag) stats_signup();
    else stats_login(true);
    call_ok(c, &ok.base);
}

void h_http_login(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__HttpLogin *in = (const Parley__HttpLogin *)body;
    if (in->device && *in->device && !chat_valid_device(in->device)) {
        call_err(c, PL_BAD_REQUEST, "device must be one of web, ios, android, desktop, cli, bot");
        return;
    }
    snprintf(c->device, sizeof c->device, "%s", in->device && *in->device ? in->device : "web");
    verify_password(c, in->tenant, in->user, in->password, reply_token);
}

/* Check a new user's fields; NULL if fine, else the reason. */
static const char *check_new_user(const char *user, const char *password, bool password_required,
                                  const char *name)
{
    if (!chat_valid_id(user)) return "user must be 1 to 64 of A-Z a-z 0-9 _ . @ -";
    if (password || password_required) {
        if (!password || strlen(password) < CHAT_PW_MIN)
            return "password must be at least 8 characters";
        if (strlen(password) > HASHER_PW_MAX) return "password is too long";
    }
    if (name) {
        long n = utf8_count((const uint8_t *)name, strlen(name));
        if (n < 0 || n > CHAT_NAME_MAX) return "name must be at most 128 characters";
    }
    return NULL;
}

static void user_created(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, r->status, r->status == PL_CONFLICT ? "user exists" : "cannot create user");
        return;
    }
    if (c->op->body == &parley__signup__descriptor) {
        c->flag = true;
        if (issue_token(c)) {
            call_err(c, PL_INTERNAL, "cannot issue a token");
            return;
        }
        reply_token(c);
        return;
    }
    log_event(LOG_INFO, "user_created", "tenant", c->tenant->id, "user", c->user, "remote", c->ip,
              NULL);
    Parley__User u = PARLEY__USER__INIT;
    u.user = c->user;
    u.name = (char *)r->user->name;
    u.has_created_at = true;
    u.created_at = r->user->created_at;
    if (c->flag) {
        snprintf(c->device, sizeof c->device, "bot");
        if (issue_token(c)) {
            call_err(c, PL_INTERNAL, "cannot issue a token");
            return;
        }
        u.token = c->token;
        u.has_expires_at = true;
        u.expires_at = c->token_expires;
    }
    call_ok(c, &u.base);
}

static void submit_user_create(chat_call *c)
{
    call_submit(c, c->req);
}

static void password_hashed(chat_call *c, hasher_job *j)
{
    if (!j->ok) {
        call_err(c, PL_INTERNAL, "cannot hash the password");
        return;
    }
    c->req->user->pwhash = arena_strdup(&c->req->arena, j->hash);
    submit_user_create(c);
}

/* Create user (hashing password first if there is one). */
static void create_user(chat_call *c, const char *user, const char *password, const char *name)
{
    snprintf(c->user, sizeof c->user, "%s", user);
    store_req *r = call_store(c, STORE_USER_CREATE, user_created);
    r->user = arena_alloc(&r->arena, sizeof *r->user);
    r->user->id = arena_strdup(&r->arena, user);
    r->user->name = arena_strdup(&r->arena, name && *name ? name : user);
    r->user->created_at = clock_wall_ms();
    if (!password) {
        submit_user_create(c);
        return;
    }
    if (!call_hash(c, HASHER_HASH, password, NULL, password_hashed))
        call_err(c, PL_UNAVAILABLE, "too many password operations in progress, retry later");
}

void h_signup(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__Signup *in = (const Parley__Signup *)body;
    chat *ch = c->c;
    char key[80];
    snprintf(key, sizeof key, "login:%s", c->ip);
    uint64_t wait = limits_take(ch->limits, key, clock_wall_ms(), atomic_load_explicit(&ch->login_rate_ip, memory_order_relaxed),
                                atomic_load_explicit(&ch->login_burst_ip, memory_order_relaxed));
    if (wait) {
        call_limited(c, wait);
        return;
    }
    const chat_tenant *t = tenants_find(ch, in->tenant && *in->tenant ? in->tenant : "default");
    if (!t) {
        call_err(c, PL_NOT_FOUND, "no such tenant");
        return;
    }
    if (!tenant_conf_of(c->w, t)->open_signup) {
        call_err(c, PL_FORBIDDEN, "sign-up is closed for this tenant");
        return;
    }
    const char *why = check_new_user(in->user, in->password, true, in->name);
    if (why) {
        call_err(c, PL_BAD_REQUEST, why);
        return;
    }
    c->tenant = t;
    snprintf(c->device, sizeof c->device, "web");
    create_user(c, in->user, in->password, in->name);
}

void h_user_create(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__UserCreate *in = (const Parley__UserCreate *)body;
    const char *why = check_new_user(in->user, in->password, false, in->name);
    if (why) {
        call_err(c, PL_BAD_REQUEST, why);
        return;
    }
    c->flag = in->has_issue_token && in->issue_token;
    create_user(c, in->user, in->password, in->name);
}

/* ---- logout ---- */

static void revoked_done(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    chat_revoke_local(c->c, c->jti, c->token_expires);
    uint64_t sid = 0;
    if (c->s) {
        sid = c->s->id;
        session_logout(c->s);
    }
    sessions_revoke(c->w, c->tenant, c->user, c->jti, sid);
    log_event(LOG_INFO, "logout", "tenant", c->tenant->id, "user", c->user, "device", c->device,
              "remote", c->ip, NULL);
    Parley__Empty e = PARLEY__EMPTY__INIT;
    call_ok(c, &e.base);
}

void h_logout(chat_call *c, const ProtobufCMessage *body)
{
    if (c->s) c->token_expires = c->s->token_expires;
    store_req *r = call_store(c, STORE_TOKEN_REVOKE, revoked_done);
    r->revoked = arena_alloc(&r->arena, sizeof *r->revoked);
    r->revoked->jti = arena_strdup(&r->arena, c->jti);
    r->revoked->expires_at = c->token_expires;
    call_submit(c, r);
}

/* ---- users ---- */

static void user_got(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, r->status, r->status == PL_NOT_FOUND ? "no such user" : "store unavailable");
        return;
    }
    Parley__User u = PARLEY__USER__INIT;
    u.user = (char *)r->user->id;
    u.name = (char *)r->user->name;
    u.has_created_at = true;
    u.created_at = r->user->created_at;
    call_ok(c, &u.base);
}

void h_user_get(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__UserQuery *in = (const Parley__UserQuery *)body;
    if (!chat_valid_id(in->user)) {
        call_err(c, PL_NOT_FOUND, "no such user");
        return;
    }
    store_req *r = call_store(c, STORE_USER_GET, user_got);
    r->user_id = arena_strdup(&r->arena, in->user);
    call_submit(c, r);
}

static void users_found(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, PL_UNAVAILABLE, "store unavailable");
        return;
    }
    Parley__UserList out = PARLEY__USER_LIST__INIT;
    out.n_users = r->n_users_out;
    out.users = arena_alloc(&r->arena, (r->n_users_out + 1) * sizeof *out.users);
    for (size_t i = 0; i < r->n_users_out; i++) {
        Parley__User *u = arena_alloc(&r->arena, sizeof *u);
        parley__user__init(u);
        u->user = (char *)r->users_out[i].id;
        u->name = (char *)r->users_out[i].name;
        u->has_created_at = true;
        u->created_at = r->users_out[i].created_at;
        out.users[i] = u;
    }
    call_ok(c, &out.base);
}

void h_user_search(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__UserQuery *in = (const Parley__UserQuery *)body;
    store_req *r = call_store(c, STORE_USER_SEARCH, users_found);
    r->query = arena_strdup(&r->arena, in->q ? in->q : "");
    r->limit = in->has_limit && in->limit ? (in->limit > 100 ? 100 : in->limit) : 20;
    call_submit(c, r);
}
