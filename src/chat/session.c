/*
 * session.c - sessions, the per-worker registry, mutual kick and pushes.
 *
 * A session is the chat state of one WebSocket or TCP connection and lives
 * on the connection's worker.  States (function behind each arrow):
 *
 *   anonymous --h_login ok: session_login--> authenticated
 *       ^                                          |
 *       `------------ h_logout: session_logout ----'
 *   any --chat_session_closed--> detached --last call done: session_unref--> freed
 *
 * Each worker keeps `tenant/user -> its sessions` (w->users); anonymous
 * sessions sit on w->anon so the tick can close those that never log in.
 * Nothing here is shared between threads: other workers reach these
 * sessions only through mail (push_to_users, kicks), which runs here.
 */
#include <stdio.h>
#include <string.h>

#include <utlist.h>

#include "chat/chat_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "proto/clone.h"

static void registry_key(const chat_tenant *t, const char *user, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", t->id, user);
}

static user_sessions *registry_find(chat_worker *w, const chat_tenant *t, const char *user)
{
    char key[sizeof ((user_sessions *)0)->key];
    registry_key(t, user, key, sizeof key);
    user_sessions *us = NULL;
    HASH_FIND_STR(w->users, key, us);
    return us;
}

chat_session *chat_session_new(chat_worker *w, const chat_io *io, void *conn, const char *transport,
                               const char *remote_ip)
{
    chat_session *s = PL_NEW(chat_session);
    s->w = w;
    s->io = io;
    s->conn = conn;
    s->refs = 1;
    s->opened_ms = clock_mono_ms();
    snprintf(s->transport, sizeof s->transport, "%s", transport);
    snprintf(s->ip, sizeof s->ip, "%s", remote_ip ? remote_ip : "");
    DL_APPEND(w->anon, s);
    return s;
}

void session_ref(chat_session *s) { s->refs++; }

static void unlink_session(chat_session *s)
{
    chat_worker *w = s->w;
    if (s->us) {
        user_sessions *us = s->us;
        topic_unsub_all(s);
        presence_session_down(s);
        DL_DELETE(us->list, s);
        if (!us->list) {
            HASH_DEL(w->users, us);
            pl_free(us);
        }
        s->us = NULL;
        w->n_authed--;
        stats_session(s, -1);
    } else if (s->prev) {
        DL_DELETE(w->anon, s);
    }
    s->prev = s->next = NULL;
}

void session_unref(chat_session *s)
{
    if (--s->refs > 0) return;
    unlink_session(s);
    pl_free(s);
}

bool session_open(const chat_session *s) { return s->conn != NULL; }

void session_send(chat_session *s, const Parley__Frame *f)
{
    if (s->conn) s->io->send(s->conn, f, NULL);
}

void session_send_memo(chat_session *s, const Parley__Frame *f, chat_memo *memo)
{
    if (s->conn) s->io->send(s->conn, f, memo);
}

void session_close(chat_session *s, uint16_t code, const char *reason)
{
    if (s->conn) s->io->close(s->conn, code, reason);
}

void chat_session_closed(chat_session *s)
{
    if (s->authed)
        log_event(LOG_INFO, "disconnect", "tenant", s->tenant->id, "user", s->user, "device",
                  s->device, "transport", s->transport, "remote", s->ip, NULL);
    s->conn = NULL;
    unlink_session(s);
    s->authed = false;
    session_unref(s);
}

/* ---- mail between workers ---- */

/*
 * One allocation shared by every worker it is posted to, with one mail
 * node per worker; the last worker to run it releases it.  Worker mail is
 * recycled by the worker that made it: a worker that finishes another's
 * mail posts it back (wmail_back, a mailbox nobody wakes), and the owner
 * takes those back when its own free list runs dry.  So the allocation,
 * and the arena block a push's message is cloned into, never goes from one
 * thread's malloc to another's free, where both threads would fight over
 * the allocator's lock for every message.
 */
typedef struct wmail wmail;

typedef struct wmail_node {
    mail m;
    wmail *owner;
    chat_worker *w;
} wmail_node;

#define FREE_WMAILS_MAX 1024 /* recycled worker mail a worker keeps */

struct wmail {
    _Atomic int refs;
    chat_worker *origin;           /* the worker that made it, and recycles it */
    mail back;                     /* posted back to origin->wmail_back */
    wmail *next_free;
    void (*run)(chat_worker *w, wmail *m);
    arena arena;
    const chat_tenant *tenant;
    char user[CHAT_ID_MAX + 1];    /* kick */
    char device[17];               /* kick */
    char jti[TOKEN_JTI_LEN + 1];   /* revoke */
    uint64_t sid;                  /* kick: sessions older than this; push: except this */
    push_target *to;               /* push */
    size_t n_to;
    Parley__Frame__BodyCase body_case;
    ProtobufCMessage *body;
    char topic[TOPIC_KEY_MAX];     /* push to a topic instead of users */
    uint64_t t0;                   /* push: when the request behind it began */
    uint16_t code;                 /* kick: close code */
    int kind;                      /* kick: STATS_KICK_* */
    char reason[128];              /* kick: the kicked frame's reason */
    wmail_node nodes[];
};

static void wmail_destroy(wmail *wm)
{
    arena_free(&wm->arena);
    pl_free(wm);
}

static void wmail_keep(chat_worker *w, wmail *wm)
{
    if (w->n_free_wmails >= FREE_WMAILS_MAX) {
        wmail_destroy(wm);
        return;
    }
    wm->next_free = w->free_wmails;
    w->free_wmails = wm;
    w->n_free_wmails++;
}

/* Called by each worker that ran wm (w), and by its poster. */
static void wmail_release(chat_worker *w, wmail *wm)
{
    if (atomic_fetch_sub_explicit(&wm->refs, 1, memory_order_acq_rel) != 1) return;
    arena_reset(&wm->arena);
    if (wm->origin == w) wmail_keep(w, wm);
    else mailbox_post(&wm->origin->wmail_back, &wm->back);
}

static void wmail_fn(mail *m)
{
    wmail_node *n = (wmail_node *)m;
    wmail *wm = n->owner;
    wm->run(n->w, wm);
    wmail_release(n->w, wm);
}

/* Take back the mail other workers finished (posted to wmail_back). */
static void wmail_take_back(chat_worker *w)
{
    for (mail *m = mailbox_take(&w->wmail_back), *next; m; m = next) {
        next = m->next;
        wmail_keep(w, (wmail *)((char *)m - offsetof(wmail, back)));
    }
}

static wmail *wmail_new(chat_worker *w, void (*run)(chat_worker *, wmail *))
{
    if (!w->free_wmails) wmail_take_back(w);
    size_t size = sizeof(wmail) + w->c->n_workers * sizeof(wmail_node);
    wmail *wm = w->free_wmails;
    if (wm) {
        w->free_wmails = wm->next_free;
        w->n_free_wmails--;
        arena keep = wm->arena;
        memset(wm, 0, size);
        wm->arena = keep;
    } else {
        wm = pl_calloc(1, size);
    }
    wm->origin = w;
    wm->run = run;
    return wm;
}

void chat__worker_free_wmails(chat_worker *w)
{
    wmail_take_back(w);
    while (w->free_wmails) {
        wmail *wm = w->free_wmails;
        w->free_wmails = wm->next_free;
        wmail_destroy(wm);
    }
    w->n_free_wmails = 0;
}

/* Run wm on every registered worker: by mail on the others, directly here. */
static void wmail_post_all(chat_worker *self, wmail *wm)
{
    chat *c = self->c;
    int n = 0;
    chat_worker *ws[CHAT_MAX_WORKERS];
    for (size_t i = 0; i < c->n_workers; i++) {
        chat_worker *w = atomic_load_explicit(&c->workers[i], memory_order_acquire);
        if (w && w != self) ws[n++] = w;
    }
    atomic_store(&wm->refs, n + 1);
    for (int i = 0; i < n; i++) {
        wmail_node *node = &wm->nodes[i];
        node->owner = wm;
        node->w = ws[i];
        node->m.fn = wmail_fn;
        mailbox_post(ws[i]->mb, &node->m);
    }
    wm->run(self, wm);
    wmail_release(self, wm);
}

/* ---- mutual kick ---- */

static void kick_run(chat_worker *w, wmail *wm)
{
    user_sessions *us = registry_find(w, wm->tenant, wm->user);
    if (!us) return;
    chat_session *s, *tmp;
    DL_FOREACH_SAFE(us->list, s, tmp)
    {
        if (s->id >= wm->sid || strcmp(s->device, wm->device)) continue;
        Parley__Frame f = PARLEY__FRAME__INIT;
        Parley__Kicked k = PARLEY__KICKED__INIT;
        k.reason = "another login of this user on the same kind of device";
        frame_set_body(&f, PARLEY__FRAME__BODY_KICKED, &k);
        session_send(s, &f);
        log_event(LOG_INFO, "kick", "tenant", s->tenant->id, "user", s->user, "device", s->device,
                  "transport", s->transport, "remote", s->ip, "reason", "new_login", NULL);
        stats_kick(STATS_KICK_NEW_LOGIN);
        session_close(s, CHAT_CLOSE_KICKED, "kicked");
        session_logout(s);
    }
}

static void revoke_run(chat_worker *w, wmail *wm)
{
    user_sessions *us = registry_find(w, wm->tenant, wm->user);
    if (!us) return;
    chat_session *s, *tmp;
    DL_FOREACH_SAFE(us->list, s, tmp)
    {
        if (s->id == wm->sid || strcmp(s->jti, wm->jti)) continue;
        session_close(s, CHAT_CLOSE_UNAUTHORIZED, "token revoked");
        session_logout(s);
    }
}

static void kick_user_run(chat_worker *w, wmail *wm)
{
    user_sessions *us = registry_find(w, wm->tenant, wm->user);
    if (!us) return;
    chat_session *s, *tmp;
    DL_FOREACH_SAFE(us->list, s, tmp)
    {
        if (wm->device[0] && strcmp(s->device, wm->device)) continue;
        Parley__Frame f = PARLEY__FRAME__INIT;
        Parley__Kicked k = PARLEY__KICKED__INIT;
        k.reason = wm->reason;
        frame_set_body(&f, PARLEY__FRAME__BODY_KICKED, &k);
        session_send(s, &f);
        log_event(LOG_INFO, "kick", "tenant", s->tenant->id, "user", s->user, "device", s->device,
                  "transport", s->transport, "remote", s->ip, "reason",
                  wm->kind == STATS_KICK_BAN ? "ban" : "admin", NULL);
        stats_kick(wm->kind);
        session_close(s, wm->code, wm->kind == STATS_KICK_BAN ? "banned" : "kicked");
        session_logout(s);
    }
}

void sessions_kick(chat_worker *w, const chat_tenant *t, const char *user, const char *device,
                   const char *reason, uint16_t code, int kind)
{
    wmail *wm = wmail_new(w, kick_user_run);
    wm->tenant = t;
    snprintf(wm->user, sizeof wm->user, "%s", user);
    snprintf(wm->device, sizeof wm->device, "%s", device ? device : "");
    snprintf(wm->reason, sizeof wm->reason, "%s", reason);
    wm->code = code;
    wm->kind = kind;
    wmail_post_all(w, wm);
}

void sessions_revoke(chat_worker *w, const chat_tenant *t, const char *user, const char *jti,
                     uint64_t except_sid)
{
    wmail *wm = wmail_new(w, revoke_run);
    wm->tenant = t;
    snprintf(wm->user, sizeof wm->user, "%s", user);
    snprintf(wm->jti, sizeof wm->jti, "%s", jti);
    wm->sid = except_sid;
    wmail_post_all(w, wm);
}

void session_login(chat_session *s)
{
    chat_worker *w = s->w;
    unlink_session(s);
    s->id = atomic_fetch_add(&w->c->next_session_id, 1) + 1;
    s->authed = true;
    user_sessions *us = registry_find(w, s->tenant, s->user);
    if (!us) {
        us = PL_NEW(user_sessions);
        registry_key(s->tenant, s->user, us->key, sizeof us->key);
        HASH_ADD_STR(w->users, key, us);
    }
    DL_APPEND(us->list, s);
    s->us = us;
    w->n_authed++;
    stats_session(s, 1);
    /* Count this device online before the kick takes the older one away,
     * so a kick never shows the user offline for a moment. */
    presence_session_up(s);

    wmail *wm = wmail_new(w, kick_run);
    wm->tenant = s->tenant;
    memcpy(wm->user, s->user, sizeof wm->user);
    memcpy(wm->device, s->device, sizeof wm->device);
    wm->sid = s->id;
    wmail_post_all(w, wm);
}

void session_logout(chat_session *s)
{
    if (!s->authed) return;
    unlink_session(s);
    s->authed = false;
    s->jti[0] = 0;
    if (s->conn) DL_APPEND(s->w->anon, s);
}

/* ---- pushes ---- */

static void push_one(chat_session *s, const wmail *wm, uint64_t useq, chat_memo *memo)
{
    Parley__Frame f = PARLEY__FRAME__INIT;
    if (wm->body_case == PARLEY__FRAME__BODY_MSG && useq) {
        Parley__Msg m = *(const Parley__Msg *)wm->body;
        m.has_useq = true;
        m.useq = useq;
        frame_set_body(&f, wm->body_case, &m);
        session_send_memo(s, &f, memo);
    } else if (wm->body_case == PARLEY__FRAME__BODY_EVENT) {
        Parley__Event e = *(const Parley__Event *)wm->body;
        if (useq) {
            e.has_useq = true;
            e.useq = useq;
        }
        topic_follow_event(s, &e);
        frame_set_body(&f, wm->body_case, &e);
        session_send_memo(s, &f, memo);
    } else {
        frame_set_body(&f, wm->body_case, wm->body);
        session_send_memo(s, &f, memo);
    }
}

size_t topic__push_local(chat_worker *w, const char *key, const Parley__Frame *f,
                         uint64_t except_sid);

static void push_topic_run(chat_worker *w, wmail *wm)
{
    Parley__Frame f = PARLEY__FRAME__INIT;
    frame_set_body(&f, wm->body_case, wm->body);
    size_t n = topic__push_local(w, wm->topic, &f, wm->sid);
    stats_delivered(wm->body_case, wm->body, true, wm->t0, n);
}

void push_to_topic(chat_worker *w, const char *key, Parley__Frame__BodyCase body_case,
                   const ProtobufCMessage *body, uint64_t except_sid)
{
    wmail *wm = wmail_new(w, push_topic_run);
    wm->t0 = w->cur_t0;
    snprintf(wm->topic, sizeof wm->topic, "%s", key);
    wm->sid = except_sid;
    wm->body_case = body_case;
    wm->body = proto_clone(body, &wm->arena);
    wmail_post_all(w, wm);
}

static void push_run(chat_worker *w, wmail *wm)
{
    size_t n = 0;
    for (size_t i = 0; i < wm->n_to; i++) {
        user_sessions *us = registry_find(w, wm->tenant, wm->to[i].user);
        if (!us) continue;
        /* One user's devices get the same frame (same useq): encode once
         * when there are several; one device encodes into the
         * connection's scratch buffer, with nothing to allocate. */
        chat_memo memo = {0};
        chat_memo *mp = us->list && us->list->next ? &memo : NULL;
        chat_session *s;
        DL_FOREACH(us->list, s)
        {
            if (s->id != wm->sid) {
                push_one(s, wm, wm->to[i].useq, mp);
                n++;
            }
        }
        memo_done(&memo);
    }
    stats_delivered(wm->body_case, wm->body, false, wm->t0, n);
}

void push_to_users(chat_worker *w, const chat_tenant *t, const push_target *to, size_t n,
                   Parley__Frame__BodyCase body_case, const ProtobufCMessage *body,
                   uint64_t except_sid)
{
    wmail *wm = wmail_new(w, push_run);
    wm->t0 = w->cur_t0;
    wm->tenant = t;
    wm->sid = except_sid;
    wm->body_case = body_case;
    wm->body = proto_clone(body, &wm->arena);
    wm->to = arena_alloc(&wm->arena, n * sizeof *wm->to);
    wm->n_to = n;
    for (size_t i = 0; i < n; i++) {
        wm->to[i].user = arena_strdup(&wm->arena, to[i].user);
        wm->to[i].useq = to[i].useq;
    }
    wmail_post_all(w, wm);
}

/* ---- the tick ---- */

void chat_worker_tick(chat_worker *w, uint64_t now_ms)
{
    uint64_t mono = clock_mono_ms();
    chat_session *s, *tmp;
    DL_FOREACH_SAFE(w->anon, s, tmp)
    {
        if (!s->logging_in && mono - s->opened_ms > w->c->cfg.login_timeout_ms) {
            session_close(s, CHAT_CLOSE_LOGIN_TIMEOUT, "no login in time");
            DL_DELETE(w->anon, s);
            s->prev = s->next = NULL;
        }
    }
    if (w->index == 0 && now_ms - w->last_sweep_ms > 60000) {
        w->last_sweep_ms = now_ms;
        limits_sweep(w->c->limits, now_ms, 600000);
        presence_sweep(w->c, now_ms, PRESENCE_LINGER_MS);
    }
}

void chat_worker_goaway(chat_worker *w, const char *url)
{
    Parley__Frame f = PARLEY__FRAME__INIT;
    Parley__Goaway g = PARLEY__GOAWAY__INIT;
    g.url = (char *)url;
    g.reason = "node is shutting down";
    frame_set_body(&f, PARLEY__FRAME__BODY_GOAWAY, &g);
    user_sessions *us, *tmp;
    chat_session *s;
    HASH_ITER(hh, w->users, us, tmp)
    {
        DL_FOREACH(us->list, s) session_send(s, &f);
    }
    DL_FOREACH(w->anon, s) session_send(s, &f);
}

size_t chat_worker_sessions(const chat_worker *w) { return w->n_authed; }
