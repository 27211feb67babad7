/*
 * client.c - the client: states, login, heartbeat, reconnect, and frames
 * in and out.  Sends live in send.c and inbox tracking in sync.c.
 *
 * States (parley.h draws them for users); the function behind each arrow:
 *
 *   IDLE --parley_client_start: t_conn fires at once (on_reconnect)-->
 *   CONNECTING (connect_now: a new conn, t_conn = connect timeout)
 *        --conn upgraded: parley__on_open sends login; login_ok (login_ok)-->
 *   READY (sync, pending sends go out; t_beat pings and watches answers)
 *        --conn ended (parley__on_end), timeout (on_beat, on_connect_timeout),
 *          goaway, retryable login error (lose)-->
 *   WAITING (t_conn = backoff delay, on_reconnect) --> CONNECTING ...
 *   any --kicked, refused credentials, protocol close codes, 4xx upgrade,
 *         or any loss with no_reconnect (lose -> close_final)--> CLOSED
 *
 * Invariants:
 *   - c->conn is the only connection that can call back; lose() detaches
 *     it first, so frames of an old connection never reach a new state.
 *   - Requests (c->reqs) live on one connection: lose() fails them with
 *     PARLEY_CLOSED, except sends, which go back to the queue (send.c).
 *   - Every user callback may free the client: after one, code checks
 *     c->freed and stops.  Memory stays valid until the timers' close
 *     callbacks (cleanup), which run from the loop later.
 *   - All timing uses the loop's clock (uv_now).
 */
#include <stdio.h>
#include <string.h>

#include <utlist.h>

#include "core/mem.h"
#include "core/utf8.h"
#include "internal.h"

uint64_t parley__now(const parley_client *c) { return uv_now(c->loop); }

static void connect_now(parley_client *c);
static void on_reconnect(uv_timer_t *t);

static void set_state(parley_client *c, parley_state st, parley_status why)
{
    if (c->state == st) return;
    c->state = st;
    if (c->o.cb.on_state) c->o.cb.on_state(c, st, why, c->o.ud);
}

static void set_why(parley_client *c, const char *why)
{
    snprintf(c->why, sizeof c->why, "%s", why ? why : "");
}

bool parley__str_ok(const char *s) { return !s || utf8_valid((const uint8_t *)s, strlen(s)); }

bool parley__ready(const parley_client *c) { return !c->freed && c->conn && c->conn_open && c->logged_in; }

/* ------------------------------------------------------------------ */
/* Requests                                                             */
/* ------------------------------------------------------------------ */

parley__req *parley__req_new(parley_client *c, parley__req_kind kind)
{
    parley__req *r = PL_NEW(parley__req);
    r->id = ++c->next_id;
    r->kind = kind;
    r->sent_ms = parley__now(c);
    DL_APPEND2(c->reqs, r, prev, next);
    return r;
}

void parley__req_free(parley_client *c, parley__req *r)
{
    DL_DELETE2(c->reqs, r, prev, next);
    pl_free(r);
}

static parley__req *req_find(parley_client *c, uint64_t id)
{
    /* Answers come roughly in order: the one sought is near the head. */
    for (parley__req *r = c->reqs; r; r = r->next)
        if (r->id == id) return r;
    return NULL;
}

void parley__send_frame(parley_client *c, Parley__Frame *f)
{
    if (!c->conn) return;
    bool pb = c->url.transport == PARLEY__TCP || c->o.encoding == PARLEY_ENC_PROTOBUF;
    buf_reset(&c->scratch);
    proto_frame_encode(f, pb ? PROTO_PB : PROTO_JSON, &c->scratch);
    parley__conn_send(c->conn, buf_begin(&c->scratch), buf_size(&c->scratch), pb);
    c->stats.frames_out++;
    c->last_tx = parley__now(c);
}

/* Complete a non-send request that will get no answer. */
static void req_fail(parley_client *c, parley__req *r, parley_status st)
{
    parley__req_kind kind = r->kind;
    void *arg = r->arg;
    parley_history_cb hcb = kind == PARLEY__REQ_HISTORY ? r->cb.history : NULL;
    parley_reply_cb rcb = kind == PARLEY__REQ_RAW ? r->cb.reply : NULL;
    parley__req_free(c, r);
    if (hcb) hcb(c, st, NULL, 0, false, arg);
    if (rcb) {
        parley_reply rep = {.body = "", .json = "", .code = "", .message = ""};
        rcb(c, st, &rep, arg);
    }
}

/* ------------------------------------------------------------------ */
/* Losing a connection, closing for good                                */
/* ------------------------------------------------------------------ */

static void close_final(parley_client *c, parley_status st)
{
    c->final = true;
    uv_timer_stop(&c->t_conn);
    uv_timer_stop(&c->t_beat);
    uv_timer_stop(&c->t_retry);
    c->retry_armed = false;
    if (st == PARLEY_OK) st = PARLEY_CLOSED;
    set_state(c, PARLEY_STATE_CLOSED, st);
    if (c->freed) return;
    parley__sends_fail_all(c, st);
}

/*
 * The current connection is over (or must be).  Fail what cannot survive
 * it, then close for good or reconnect after `delay` ms (-1: backoff).
 */
static void lose(parley_client *c, parley_status st, const char *why, bool final, int64_t delay)
{
    if (c->freed || c->final) return;
    set_why(c, why);
    if (c->conn) parley__conn_close(c->conn, 1000);
    c->conn = NULL;
    c->conn_open = false;
    c->logged_in = false;
    c->syncing = false;
    c->sync_discard = false;
    uv_timer_stop(&c->t_conn);
    uv_timer_stop(&c->t_beat);
    c->stats.disconnects++;
    parley__sends_disconnected(c);
    parley__req *r;
    while ((r = c->reqs)) {
        req_fail(c, r, PARLEY_CLOSED);
        if (c->freed) return;
    }
    if (final || c->o.no_reconnect) {
        close_final(c, st);
        return;
    }
    uint32_t d = delay >= 0 ? (uint32_t)delay
                            : parley__backoff(c->attempt++, c->o.backoff_min_ms, c->o.backoff_max_ms,
                                              parley__rng_next(&c->rng));
    set_state(c, PARLEY_STATE_WAITING, st);
    if (c->freed || c->final) return;
    uv_timer_start(&c->t_conn, on_reconnect, d, 0);
}

void parley__on_end(parley_client *c, const parley__end *e)
{
    if (c->freed) return;
    parley_status st = e->st;
    bool final = false;
    int64_t delay = -1;
    switch (e->ws_code) {
    case 4001:
        st = PARLEY_KICKED;
        final = true;
        break;
    case 4003:
        if (c->password && !c->use_password) {
            /* The token was revoked: log in with the password instead. */
            c->use_password = true;
            delay = 0;
        } else {
            st = PARLEY_UNAUTHORIZED;
            final = true;
        }
        break;
    case 1002:
    case 1007:
    case 1009:
        st = PARLEY_PROTOCOL;
        final = true;
        break;
    }
    if (e->http_status >= 400 && e->http_status < 500 && e->http_status != 408 && e->http_status != 429)
        final = true;
    lose(c, st, e->why, final, delay);
}

static void on_connect_timeout(uv_timer_t *t)
{
    parley_client *c = t->data;
    char why[96];
    snprintf(why, sizeof why, "not logged in within %u ms", (unsigned)c->o.connect_timeout_ms);
    lose(c, PARLEY_TIMEOUT, why, false, -1);
}

static void on_beat(uv_timer_t *t)
{
    parley_client *c = t->data;
    if (!c->conn_open) return;
    uint64_t now = parley__now(c);
    if (c->reqs && now - c->reqs->sent_ms > c->o.request_timeout_ms) {
        char why[96];
        snprintf(why, sizeof why, "no answer from the server within %u ms", (unsigned)c->o.request_timeout_ms);
        lose(c, PARLEY_TIMEOUT, why, false, -1);
        return;
    }
    if (c->logged_in && now - c->last_tx >= c->o.ping_interval_ms) {
        Parley__Frame f = PARLEY__FRAME__INIT;
        Parley__Ping p = PARLEY__PING__INIT;
        parley__req *r = parley__req_new(c, PARLEY__REQ_PING);
        f.has_id = true;
        f.id = r->id;
        f.body_case = PARLEY__FRAME__BODY_PING;
        f.ping = &p;
        parley__send_frame(c, &f);
    }
}

/* ------------------------------------------------------------------ */
/* Connecting and logging in                                            */
/* ------------------------------------------------------------------ */

static void connect_now(parley_client *c)
{
    set_state(c, PARLEY_STATE_CONNECTING, PARLEY_OK);
    if (c->freed || c->final) return;
    c->stats.connects++;
    c->conn_open = false;
    c->logged_in = false;
    uv_timer_start(&c->t_conn, on_connect_timeout, c->o.connect_timeout_ms, 0);
    /* May end at once (a bad bind address): then lose() already ran. */
    parley__conn_open(c);
}

static void on_reconnect(uv_timer_t *t) { connect_now(t->data); }

void parley__on_open(parley_client *c)
{
    c->conn_open = true;
    c->last_rx = c->last_tx = parley__now(c);
    uint64_t period = (c->o.ping_interval_ms < c->o.request_timeout_ms ? c->o.ping_interval_ms
                                                                       : c->o.request_timeout_ms) / 4;
    if (period < 10) period = 10;
    uv_timer_start(&c->t_beat, on_beat, period, period);

    Parley__Frame f = PARLEY__FRAME__INIT;
    Parley__Login l = PARLEY__LOGIN__INIT;
    parley__req *r = parley__req_new(c, PARLEY__REQ_LOGIN);
    f.has_id = true;
    f.id = r->id;
    f.body_case = PARLEY__FRAME__BODY_LOGIN;
    f.login = &l;
    const char *tok = NULL;
    if (!c->use_password) tok = c->issued ? c->issued : c->token;
    if (tok) {
        l.token = (char *)tok;
    } else {
        l.user = c->user;
        l.password = c->password;
        l.tenant = c->tenant;
    }
    l.device = c->device;
    l.device_id = c->device_id;
    parley__send_frame(c, &f);
}

static void login_ok(parley_client *c, const Parley__LoginOk *ok)
{
    uv_timer_stop(&c->t_conn);
    c->logged_in = true;
    c->attempt = 0;
    c->stats.logins++;
    set_why(c, "");
    snprintf(c->me, sizeof c->me, "%s", ok->user ? ok->user : "");
    snprintf(c->tenant_now, sizeof c->tenant_now, "%s", ok->tenant ? ok->tenant : "");
    if (ok->token && *ok->token) {
        pl_free(c->issued);
        c->issued = pl_strdup(ok->token);
        c->use_password = false;
    }
    if (c->o.cb.on_login) {
        parley_login_info li = {
            .user = c->me,
            .tenant = c->tenant_now,
            .session = ok->session ? ok->session : "",
            .useq = ok->useq,
            .server_ts = ok->server_ts,
            .token = ok->token ? ok->token : "",
            .expires_at = ok->expires_at,
        };
        c->o.cb.on_login(c, &li, c->o.ud);
        if (c->freed || !c->logged_in) return;
    }
    set_state(c, PARLEY_STATE_READY, PARLEY_OK);
    if (!parley__ready(c)) return;
    parley__sync_login(c, ok->useq);
    if (!parley__ready(c)) return;
    parley__sends_pump(c);
}

static void login_failed(parley_client *c, const Parley__Error *e)
{
    parley_status st = parley_status_from_code(e ? e->code : NULL);
    char why[200];
    snprintf(why, sizeof why, "login refused: %s: %s", parley_status_str(st), e && e->message ? e->message : "");
    if (st == PARLEY_UNAUTHORIZED && c->password && !c->use_password) {
        /* The token (given or issued) no longer works: use the password. */
        c->use_password = true;
        pl_free(c->issued);
        c->issued = NULL;
        lose(c, st, why, false, 0);
    } else if (st == PARLEY_RATE_LIMITED && e && e->has_retry_after_ms) {
        c->stats.rate_limited++;
        lose(c, st, why, false, (int64_t)e->retry_after_ms);
    } else if (st == PARLEY_RATE_LIMITED || st == PARLEY_UNAVAILABLE || st == PARLEY_INTERNAL) {
        lose(c, st, why, false, -1);
    } else {
        lose(c, st, why, true, -1);
    }
}

/* ------------------------------------------------------------------ */
/* Inbound frames                                                       */
/* ------------------------------------------------------------------ */

static const char *str(const char *s) { return s ? s : ""; }

void parley__msg_view(const Parley__Msg *m, parley_msg *out, bool synced)
{
    out->conv = str(m->conv);
    out->seq = m->seq;
    out->useq = m->useq;
    out->from = str(m->from);
    out->text = str(m->text);
    out->ts = m->ts;
    out->cmid = str(m->cmid);
    out->synced = synced;
}

void parley__deliver_msg(parley_client *c, const Parley__Msg *m, bool synced)
{
    if (!m || !c->o.cb.on_msg) return;
    parley_msg v;
    parley__msg_view(m, &v, synced);
    c->o.cb.on_msg(c, &v, c->o.ud);
}

void parley__deliver_event(parley_client *c, const Parley__Event *e, bool synced)
{
    if (!e || !c->o.cb.on_event) return;
    parley_event v = {
        .kind = str(e->kind),
        .conv = str(e->conv),
        .user = str(e->user),
        .group = str(e->group),
        .seq = e->seq,
        .ts = e->ts,
        .useq = e->useq,
        .synced = synced,
    };
    c->o.cb.on_event(c, &v, c->o.ud);
}

static void report_error(parley_client *c, const Parley__Error *e)
{
    if (c->o.cb.on_error)
        c->o.cb.on_error(c, parley_status_from_code(e ? e->code : NULL), e && e->message ? e->message : "",
                         c->o.ud);
}

/* The body of a frame as a message (NULL if the body is empty). */
static const ProtobufCMessage *frame_body(const Parley__Frame *f)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(&parley__frame__descriptor, (unsigned)f->body_case);
    if (!fd || fd->type != PROTOBUF_C_TYPE_MESSAGE) return NULL;
    return *(const ProtobufCMessage *const *)((const char *)f + fd->offset);
}

static void raw_reply(parley_client *c, parley__req *r, const Parley__Frame *f)
{
    parley_reply_cb cb = r->cb.reply;
    void *arg = r->arg;
    parley__req_free(c, r);
    if (!cb) return;
    buf json = {0};
    const ProtobufCMessage *body = frame_body(f);
    if (body) proto_encode(body, PROTO_JSON, &json);
    else buf_appends(&json, "{}");
    buf_appendc(&json, 0);
    parley_reply rep = {.body = proto_body_name(f->body_case), .json = (const char *)buf_begin(&json),
                        .code = "", .message = ""};
    parley_status st = PARLEY_OK;
    if (f->body_case == PARLEY__FRAME__BODY_ERROR && f->error) {
        st = parley_status_from_code(f->error->code);
        rep.code = str(f->error->code);
        rep.message = str(f->error->message);
        rep.retry_after_ms = f->error->retry_after_ms;
        if (st == PARLEY_RATE_LIMITED) c->stats.rate_limited++;
    }
    cb(c, st, &rep, arg);
    buf_free(&json);
}

static void history_reply(parley_client *c, parley__req *r, const Parley__Frame *f)
{
    parley_history_cb cb = r->cb.history;
    void *arg = r->arg;
    parley__req_free(c, r);
    if (!cb) return;
    if (f->body_case != PARLEY__FRAME__BODY_HISTORY_OK) {
        parley_status st = f->body_case == PARLEY__FRAME__BODY_ERROR && f->error
                               ? parley_status_from_code(f->error->code)
                               : PARLEY_PROTOCOL;
        cb(c, st, NULL, 0, false, arg);
        return;
    }
    const Parley__HistoryOk *h = f->history_ok;
    size_t n = h ? h->n_msgs : 0;
    parley_msg *v = pl_calloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++) parley__msg_view(h->msgs[i], &v[i], true);
    cb(c, PARLEY_OK, v, n, h && h->more, arg);
    pl_free(v);
}

static void on_reply(parley_client *c, const Parley__Frame *f)
{
    parley__req *r = req_find(c, f->id);
    if (!r) return;   /* an answer to a request given up on */
    switch (r->kind) {
    case PARLEY__REQ_LOGIN:
        parley__req_free(c, r);
        if (f->body_case == PARLEY__FRAME__BODY_LOGIN_OK && f->login_ok) login_ok(c, f->login_ok);
        else if (f->body_case == PARLEY__FRAME__BODY_ERROR) login_failed(c, f->error);
        else lose(c, PARLEY_PROTOCOL, "unexpected answer to login", false, -1);
        break;
    case PARLEY__REQ_PING:
        parley__req_free(c, r);
        break;
    case PARLEY__REQ_SEND:
        parley__send_reply(c, r, f);
        break;
    case PARLEY__REQ_SYNC:
        parley__req_free(c, r);
        parley__sync_reply(c, f);
        break;
    case PARLEY__REQ_HISTORY:
        history_reply(c, r, f);
        break;
    case PARLEY__REQ_READ:
        parley__req_free(c, r);
        if (f->body_case == PARLEY__FRAME__BODY_ERROR) report_error(c, f->error);
        break;
    case PARLEY__REQ_RAW:
        raw_reply(c, r, f);
        break;
    }
}

static void on_push(parley_client *c, const Parley__Frame *f)
{
    const parley_callbacks *cb = &c->o.cb;
    void *ud = c->o.ud;
    switch (f->body_case) {
    case PARLEY__FRAME__BODY_MSG:
        c->stats.pushes++;
        if (c->tracking && f->msg && f->msg->useq) parley__inbox_push(c, f);
        else parley__deliver_msg(c, f->msg, false);
        break;
    case PARLEY__FRAME__BODY_EVENT:
        c->stats.pushes++;
        if (c->tracking && f->event && f->event->useq) parley__inbox_push(c, f);
        else parley__deliver_event(c, f->event, false);
        break;
    case PARLEY__FRAME__BODY_RECEIPT:
        c->stats.pushes++;
        if (cb->on_receipt && f->receipt) {
            parley_receipt r = {str(f->receipt->conv), str(f->receipt->user), f->receipt->seq, f->receipt->ts};
            cb->on_receipt(c, &r, ud);
        }
        break;
    case PARLEY__FRAME__BODY_TYPING:
        c->stats.pushes++;
        if (cb->on_typing && f->typing) cb->on_typing(c, str(f->typing->conv), str(f->typing->from), ud);
        break;
    case PARLEY__FRAME__BODY_PRESENCE:
        c->stats.pushes++;
        if (cb->on_presence && f->presence)
            cb->on_presence(c, str(f->presence->user), f->presence->online, f->presence->last_seen, ud);
        break;
    case PARLEY__FRAME__BODY_KICKED: {
        const char *reason = f->kicked ? str(f->kicked->reason) : "";
        if (cb->on_kicked) cb->on_kicked(c, reason, ud);
        if (c->freed) return;
        char why[200];
        snprintf(why, sizeof why, "kicked: %s", reason);
        lose(c, PARLEY_KICKED, why, true, -1);
        break;
    }
    case PARLEY__FRAME__BODY_GOAWAY: {
        const char *url = f->goaway ? str(f->goaway->url) : "";
        if (cb->on_goaway) cb->on_goaway(c, url, f->goaway ? str(f->goaway->reason) : "", ud);
        if (c->freed) return;
        if (*url) {
            parley__url u;
            char err[64];
            if (!parley__url_parse(url, &u, err, sizeof err)) c->url = u;
        }
        uint32_t d = 1 + (uint32_t)(parley__rng_next(&c->rng) % (c->o.backoff_min_ms + 1));
        lose(c, PARLEY_CLOSED, "the server is going away", false, d);
        break;
    }
    case PARLEY__FRAME__BODY_ERROR: {
        /* An error without an id: the server could not read a frame.  The
         * library's own frames are ones every server of this protocol
         * reads, so it answers a parley_request_json: the oldest one sent
         * with a body this library does not know, else the oldest one (an
         * older server that does not know a body this library does). */
        parley__req *raw = NULL;
        for (parley__req *r = c->reqs; r; r = r->next)
            if (r->kind == PARLEY__REQ_RAW && (r->unknown_body || !raw)) {
                raw = r;
                if (r->unknown_body) break;
            }
        if (raw) raw_reply(c, raw, f);
        else report_error(c, f->error);
        break;
    }
    default:
        break;
    }
}

int parley__on_frame(parley_client *c, bool binary, const uint8_t *data, size_t len)
{
    c->last_rx = parley__now(c);
    c->stats.frames_in++;
    /* The frame lives in an arena for as long as its callbacks run; the
     * arena's block comes from and goes back to this thread's cache
     * (core/arena.c), so decoding a frame costs no malloc. */
    arena fa = {0};
    Parley__Frame *f = NULL;
    char err[160];
    if (proto_frame_decode_in(&fa, binary ? PROTO_PB : PROTO_JSON, data, len, &f, err, sizeof err)) {
        arena_free(&fa);
        char why[200];
        snprintf(why, sizeof why, "undecodable frame from the server: %s", err);
        lose(c, PARLEY_PROTOCOL, why, false, -1);
        return 1;
    }
    if (f->has_id) on_reply(c, f);
    else on_push(c, f);
    arena_free(&fa);
    return c->freed || !c->conn_open;
}

/* ------------------------------------------------------------------ */
/* Creating and freeing                                                 */
/* ------------------------------------------------------------------ */

static char *dup_opt(const char *s) { return s && *s ? pl_strdup(s) : NULL; }

parley_client *parley_client_new(uv_loop_t *loop, const parley_options *opts, char *err, size_t errlen)
{
    char e[256];
    if (!err) {
        err = e;
        errlen = sizeof e;
    }
    if (!loop || !opts) {
        snprintf(err, errlen, "no loop or no options");
        return NULL;
    }
    parley__url url;
    if (parley__url_parse(opts->url, &url, err, errlen)) return NULL;
    bool has_token = opts->token && *opts->token;
    bool has_pw = opts->user && *opts->user && opts->password;
    if (!has_token && !has_pw) {
        snprintf(err, errlen, "no credentials: give a token, or a user and a password");
        return NULL;
    }
    struct sockaddr_storage bind_addr;
    memset(&bind_addr, 0, sizeof bind_addr);
    bool has_bind = opts->bind_ip && *opts->bind_ip;
    if (has_bind && uv_ip4_addr(opts->bind_ip, 0, (struct sockaddr_in *)&bind_addr) &&
        uv_ip6_addr(opts->bind_ip, 0, (struct sockaddr_in6 *)&bind_addr)) {
        snprintf(err, errlen, "bad bind address \"%.64s\"", opts->bind_ip);
        return NULL;
    }
    const char *strs[] = {opts->token, opts->user, opts->password, opts->tenant, opts->device, opts->device_id};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        if (!parley__str_ok(strs[i])) {
            snprintf(err, errlen, "credentials and device names must be UTF-8");
            return NULL;
        }
    if (opts->sync > PARLEY_SYNC_LATEST) {
        snprintf(err, errlen, "bad sync mode");
        return NULL;
    }

    parley_client *c = PL_NEW(parley_client);
    c->loop = loop;
    c->o = *opts;
    c->url = url;
    c->url_s = pl_strdup(opts->url);
    c->token = dup_opt(opts->token);
    c->user = dup_opt(opts->user);
    c->password = opts->password ? pl_strdup(opts->password) : NULL;
    c->tenant = dup_opt(opts->tenant);
    c->device = dup_opt(opts->device);
    c->device_id = dup_opt(opts->device_id);
    c->bind_ip = dup_opt(opts->bind_ip);
    c->bind_addr = bind_addr;
    c->has_bind = has_bind;
    /* The copies replace the caller's pointers. */
    c->o.url = c->url_s;
    c->o.token = c->token;
    c->o.user = c->user;
    c->o.password = c->password;
    c->o.tenant = c->tenant;
    c->o.device = c->device;
    c->o.device_id = c->device_id;
    c->o.bind_ip = c->bind_ip;
    if (!c->o.connect_timeout_ms) c->o.connect_timeout_ms = 10000;
    if (!c->o.request_timeout_ms) c->o.request_timeout_ms = 15000;
    if (!c->o.ping_interval_ms) c->o.ping_interval_ms = 30000;
    if (!c->o.backoff_min_ms) c->o.backoff_min_ms = 250;
    if (!c->o.backoff_max_ms) c->o.backoff_max_ms = 30000;
    if (c->o.backoff_max_ms < c->o.backoff_min_ms) c->o.backoff_max_ms = c->o.backoff_min_ms;
    if (!c->o.max_frame) c->o.max_frame = 4u << 20;
    c->use_password = !has_token;
    c->state = PARLEY_STATE_IDLE;

    parley__rng_seed(&c->rng);
    snprintf(c->cmid_prefix, sizeof c->cmid_prefix, "%012llx",
             (unsigned long long)(parley__rng_next(&c->rng) & 0xffffffffffffull));
    if (opts->sync == PARLEY_SYNC_FROM) {
        c->tracking = true;
        c->useq = opts->useq;
    }

    uv_timer_init(loop, &c->t_conn);
    uv_timer_init(loop, &c->t_beat);
    uv_timer_init(loop, &c->t_retry);
    c->t_conn.data = c->t_beat.data = c->t_retry.data = c;
    return c;
}

void parley_client_start(parley_client *c)
{
    if (!c || c->freed || c->started) return;
    c->started = true;
    /* From the loop, so that no callback runs inside this call. */
    uv_timer_start(&c->t_conn, on_reconnect, 0, 0);
}

static void cleanup(parley_client *c)
{
    parley__req *r;
    parley__sends_disconnected(c);
    while ((r = c->reqs)) req_fail(c, r, PARLEY_CANCELLED);
    parley__sends_fail_all(c, PARLEY_CANCELLED);
    pl_free(c->url_s);
    pl_free(c->token);
    pl_free(c->user);
    pl_free(c->password);
    pl_free(c->tenant);
    pl_free(c->device);
    pl_free(c->device_id);
    pl_free(c->bind_ip);
    pl_free(c->issued);
    buf_free(&c->scratch);
    pl_free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    parley_client *c = h->data;
    if (--c->open_handles == 0) cleanup(c);
}

void parley_client_free(parley_client *c)
{
    if (!c || c->freed) return;
    c->freed = true;
    c->final = true;
    if (c->conn) parley__conn_close(c->conn, 1000);
    c->conn = NULL;
    c->conn_open = c->logged_in = false;
    c->open_handles = 3;
    uv_close((uv_handle_t *)&c->t_conn, on_timer_closed);
    uv_close((uv_handle_t *)&c->t_beat, on_timer_closed);
    uv_close((uv_handle_t *)&c->t_retry, on_timer_closed);
}

/* ------------------------------------------------------------------ */
/* Accessors and requests                                               */
/* ------------------------------------------------------------------ */

parley_state parley_client_state(const parley_client *c) { return c->state; }
uv_loop_t *parley_client_loop(const parley_client *c) { return c->loop; }
void *parley_client_ud(const parley_client *c) { return c->o.ud; }
const char *parley_client_user(const parley_client *c) { return c->me; }
const char *parley_client_error(const parley_client *c) { return c->why; }
uint64_t parley_client_useq(const parley_client *c) { return c->useq; }
void parley_client_stats(const parley_client *c, parley_stats *out) { *out = c->stats; }

const char *parley_client_token(const parley_client *c)
{
    if (c->issued) return c->issued;
    return c->token ? c->token : "";
}

static parley_status check_ready(const parley_client *c)
{
    if (c->freed) return PARLEY_CANCELLED;
    if (c->final) return PARLEY_CLOSED;
    return parley__ready(c) ? PARLEY_OK : PARLEY_NOT_READY;
}

parley_status parley_history(parley_client *c, const char *conv, uint64_t before_seq, uint32_t limit,
                             parley_history_cb cb, void *arg)
{
    parley_status st = check_ready(c);
    if (st) return st;
    if (!conv || !*conv || !parley__str_ok(conv)) return PARLEY_INVALID;
    Parley__Frame f = PARLEY__FRAME__INIT;
    Parley__History h = PARLEY__HISTORY__INIT;
    parley__req *r = parley__req_new(c, PARLEY__REQ_HISTORY);
    r->cb.history = cb;
    r->arg = arg;
    f.has_id = true;
    f.id = r->id;
    f.body_case = PARLEY__FRAME__BODY_HISTORY;
    f.history = &h;
    h.conv = (char *)conv;
    h.has_before_seq = before_seq != 0;
    h.before_seq = before_seq;
    h.has_limit = limit != 0;
    h.limit = limit;
    parley__send_frame(c, &f);
    return PARLEY_OK;
}

parley_status parley_read(parley_client *c, const char *conv, uint64_t seq)
{
    parley_status st = check_ready(c);
    if (st) return st;
    if (!conv || !*conv || !parley__str_ok(conv)) return PARLEY_INVALID;
    Parley__Frame f = PARLEY__FRAME__INIT;
    Parley__Read rd = PARLEY__READ__INIT;
    parley__req *r = parley__req_new(c, PARLEY__REQ_READ);
    f.has_id = true;
    f.id = r->id;
    f.body_case = PARLEY__FRAME__BODY_READ;
    f.read = &rd;
    rd.conv = (char *)conv;
    rd.has_seq = true;
    rd.seq = seq;
    parley__send_frame(c, &f);
    return PARLEY_OK;
}

parley_status parley_typing(parley_client *c, const char *conv)
{
    parley_status st = check_ready(c);
    if (st) return st;
    if (!conv || !*conv || !parley__str_ok(conv)) return PARLEY_INVALID;
    Parley__Frame f = PARLEY__FRAME__INIT;
    Parley__Typing t = PARLEY__TYPING__INIT;
    f.body_case = PARLEY__FRAME__BODY_TYPING;
    f.typing = &t;
    t.conv = (char *)conv;
    parley__send_frame(c, &f);
    return PARLEY_OK;
}

static bool body_name_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 64) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return false;
    return true;
}

parley_status parley_request_json(parley_client *c, const char *body, const char *json, parley_reply_cb cb,
                                  void *arg)
{
    parley_status st = check_ready(c);
    if (st) return st;
    if (!body_name_ok(body) || !strcmp(body, "id")) return PARLEY_INVALID;
    if (!json || !*json) json = "{}";
    if (!parley__str_ok(json)) return PARLEY_INVALID;
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(&parley__frame__descriptor, body);
    if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE && (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
        ProtobufCMessage *m = NULL;
        char err[160];
        if (proto_decode(fd->descriptor, PROTO_JSON, (const uint8_t *)json, strlen(json), &m, err, sizeof err))
            return PARLEY_INVALID;
        Parley__Frame f = PARLEY__FRAME__INIT;
        parley__req *r = parley__req_new(c, PARLEY__REQ_RAW);
        r->cb.reply = cb;
        r->arg = arg;
        f.has_id = true;
        f.id = r->id;
        f.body_case = (Parley__Frame__BodyCase)fd->id;
        *(ProtobufCMessage **)((char *)&f + fd->offset) = m;
        parley__send_frame(c, &f);
        proto_free(m);
        return PARLEY_OK;
    }
    if (c->url.transport != PARLEY__WS || c->o.encoding != PARLEY_ENC_JSON) return PARLEY_UNSUPPORTED;
    /* A body this library does not know: as is, on a JSON WebSocket. */
    const char *p = json;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p != '{') return PARLEY_INVALID;
    parley__req *r = parley__req_new(c, PARLEY__REQ_RAW);
    r->cb.reply = cb;
    r->arg = arg;
    r->unknown_body = true;
    buf_reset(&c->scratch);
    buf_printf(&c->scratch, "{\"id\":%llu,\"%s\":%s}", (unsigned long long)r->id, body, json);
    parley__conn_send(c->conn, buf_begin(&c->scratch), buf_size(&c->scratch), false);
    c->stats.frames_out++;
    c->last_tx = parley__now(c);
    return PARLEY_OK;
}
