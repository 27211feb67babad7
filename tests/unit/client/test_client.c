/*
 * test_client.c - libparley's client against a scripted server in the same
 * process: a libuv TCP listener speaking the TCP transport (4-byte length +
 * protobuf Frame), whose answers each test writes by hand.  So the tests
 * can do what a real server rarely does on cue: push duplicates and gaps,
 * drop the connection right after a send arrived, answer rate_limited,
 * kick.
 *
 * Checked: inbox tracking delivers each entry once and in order through
 * paged syncs, pushes, duplicates and gaps (SPEC section 3, "Inbox and
 * sync"); a send is resent with the same cmid after a reconnect and after
 * rate_limited, and completes once; sends made in one loop turn leave in
 * one write; a kick closes the client for good and
 * fails its sends; freeing a client from its own callback is safe and
 * pending sends are cancelled; no memory is left allocated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client/lib/internal.h"
#include "core/arena.h"
#include "core/mem.h"

/* ------------------------------------------------------------------ */
/* The scripted server                                                  */
/* ------------------------------------------------------------------ */

typedef struct fake fake;
typedef void (*fake_fn)(fake *f, const Parley__Frame *in);

struct fake {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_tcp_t *conn;          /* the current connection */
    parley__lpdec dec;
    int port;
    int connections;         /* accepted so far */
    fake_fn on_frame;
    void *state;
    /* What the client sent, in order: body names and send cmids. */
    char log[4096];
    char cmids[8][80];
    int n_cmids;
};

static void closed_free(uv_handle_t *h) { pl_free(h); }

static void fake_drop(fake *f)
{
    if (!f->conn) return;
    uv_close((uv_handle_t *)f->conn, closed_free);
    f->conn = NULL;
    parley__lpdec_free(&f->dec);
    parley__lpdec_init(&f->dec, 1 << 20);
}

static void written(uv_write_t *w, int status)
{
    pl_free(w->data);
    pl_free(w);
}

static void fake_send(fake *f, Parley__Frame *fr)
{
    if (!f->conn) return;
    buf pb = {0}, out = {0};
    proto_frame_encode(fr, PROTO_PB, &pb);
    parley__lp_frame(&out, buf_begin(&pb), buf_size(&pb));
    buf_free(&pb);
    uv_write_t *w = PL_NEW(uv_write_t);
    w->data = out.data;
    uv_buf_t b = uv_buf_init((char *)buf_begin(&out), (unsigned)buf_size(&out));
    assert_int_equal(uv_write(w, (uv_stream_t *)f->conn, &b, 1, written), 0);
}

static int fake_msg(void *arg, unsigned op, const uint8_t *p, size_t n)
{
    fake *f = arg;
    Parley__Frame *fr = NULL;
    char err[160];
    assert_int_equal(proto_frame_decode(PROTO_PB, p, n, &fr, err, sizeof err), PL_OK);
    strncat(f->log, proto_body_name(fr->body_case), sizeof f->log - strlen(f->log) - 2);
    strcat(f->log, " ");
    if (fr->body_case == PARLEY__FRAME__BODY_SEND && f->n_cmids < 8)
        snprintf(f->cmids[f->n_cmids++], sizeof f->cmids[0], "%s", fr->send->cmid);
    uv_tcp_t *conn = f->conn;
    f->on_frame(f, fr);
    proto_free(&fr->base);
    return f->conn != conn;   /* dropped: stop */
}

static void fake_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    static char mem[65536];
    *b = uv_buf_init(mem, sizeof mem);
}

static void fake_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    fake *f = s->data;
    if ((uv_tcp_t *)s != f->conn) return;
    if (n < 0) {
        fake_drop(f);
        return;
    }
    parley__lpdec_feed(&f->dec, (const uint8_t *)b->base, (size_t)n, fake_msg, f);
}

static void fake_accept(uv_stream_t *l, int status)
{
    fake *f = l->data;
    uv_tcp_t *c = PL_NEW(uv_tcp_t);
    uv_tcp_init(f->loop, c);
    assert_int_equal(uv_accept(l, (uv_stream_t *)c), 0);
    fake_drop(f);   /* one connection at a time */
    f->conn = c;
    c->data = f;
    f->connections++;
    uv_read_start((uv_stream_t *)c, fake_alloc, fake_read);
}

static void fake_start(fake *f, uv_loop_t *loop, fake_fn fn)
{
    memset(f, 0, sizeof *f);
    f->loop = loop;
    f->on_frame = fn;
    parley__lpdec_init(&f->dec, 1 << 20);
    uv_tcp_init(loop, &f->listener);
    f->listener.data = f;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&f->listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->listener, 16, fake_accept), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&f->listener, (struct sockaddr *)&ss, &len);
    f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void fake_stop(fake *f)
{
    fake_drop(f);
    uv_close((uv_handle_t *)&f->listener, NULL);
    parley__lpdec_free(&f->dec);
}

/* Answers. */

static void reply_login_ok(fake *f, uint64_t id, uint64_t useq)
{
    Parley__Frame fr = PARLEY__FRAME__INIT;
    Parley__LoginOk ok = PARLEY__LOGIN_OK__INIT;
    fr.has_id = true;
    fr.id = id;
    fr.body_case = PARLEY__FRAME__BODY_LOGIN_OK;
    fr.login_ok = &ok;
    ok.user = "alice";
    ok.tenant = "default";
    ok.session = "1";
    ok.has_useq = true;
    ok.useq = useq;
    fake_send(f, &fr);
}

static Parley__Msg *new_msg(uint64_t useq)
{
    static Parley__Msg pool[64];
    static char texts[64][16];
    Parley__Msg *m = &pool[useq % 64];
    parley__msg__init(m);
    snprintf(texts[useq % 64], sizeof texts[0], "m%llu", (unsigned long long)useq);
    m->conv = "dm:alice:bob";
    m->from = "bob";
    m->text = texts[useq % 64];
    m->has_seq = m->has_useq = true;
    m->seq = useq;
    m->useq = useq;
    return m;
}

static void push_msg(fake *f, uint64_t useq)
{
    Parley__Frame fr = PARLEY__FRAME__INIT;
    fr.body_case = PARLEY__FRAME__BODY_MSG;
    fr.msg = new_msg(useq);
    fake_send(f, &fr);
}

/* sync_ok with entries from..to (inclusive), `more`, latest useq. */
static void reply_sync(fake *f, uint64_t id, uint64_t from, uint64_t to, bool more, uint64_t latest)
{
    Parley__Frame fr = PARLEY__FRAME__INIT;
    Parley__SyncOk ok = PARLEY__SYNC_OK__INIT;
    Parley__Entry entries[16], *ep[16];
    size_t n = 0;
    for (uint64_t u = from; u <= to && n < 16; u++, n++) {
        parley__entry__init(&entries[n]);
        entries[n].has_useq = true;
        entries[n].useq = u;
        entries[n].msg = new_msg(u);
        ep[n] = &entries[n];
    }
    fr.has_id = true;
    fr.id = id;
    fr.body_case = PARLEY__FRAME__BODY_SYNC_OK;
    fr.sync_ok = &ok;
    ok.n_entries = n;
    ok.entries = ep;
    ok.has_more = true;
    ok.more = more;
    ok.has_useq = true;
    ok.useq = latest;
    fake_send(f, &fr);
}

static void reply_send_ok(fake *f, uint64_t id, uint64_t seq)
{
    Parley__Frame fr = PARLEY__FRAME__INIT;
    Parley__SendOk ok = PARLEY__SEND_OK__INIT;
    fr.has_id = true;
    fr.id = id;
    fr.body_case = PARLEY__FRAME__BODY_SEND_OK;
    fr.send_ok = &ok;
    ok.conv = "dm:alice:bob";
    ok.has_seq = true;
    ok.seq = seq;
    fake_send(f, &fr);
}

static void reply_error(fake *f, uint64_t id, const char *code, uint64_t retry_after)
{
    Parley__Frame fr = PARLEY__FRAME__INIT;
    Parley__Error e = PARLEY__ERROR__INIT;
    fr.has_id = true;
    fr.id = id;
    fr.body_case = PARLEY__FRAME__BODY_ERROR;
    fr.error = &e;
    e.code = (char *)code;
    e.message = "scripted";
    e.has_retry_after_ms = retry_after != 0;
    e.retry_after_ms = retry_after;
    fake_send(f, &fr);
}

/* ------------------------------------------------------------------ */
/* The client side                                                      */
/* ------------------------------------------------------------------ */

typedef struct seen {
    uint64_t useqs[64];
    int n;
    uint64_t last_useq_cb, synced_at;
    int synced;
    int sends_ok, sends_failed;
    parley_status send_status;
    parley_state state;
    parley_status why;
    bool stop;
    bool free_in_msg;
    parley_client *c;
} seen;

static void on_msg(parley_client *c, const parley_msg *m, void *ud)
{
    seen *s = ud;
    if (s->n < 64) s->useqs[s->n++] = m->useq;
    if (s->free_in_msg) {
        parley_client_free(c);
        s->c = NULL;
        s->stop = true;
    }
}

static void on_useq(parley_client *c, uint64_t useq, void *ud) { ((seen *)ud)->last_useq_cb = useq; }

static void on_synced(parley_client *c, uint64_t useq, void *ud)
{
    seen *s = ud;
    s->synced++;
    s->synced_at = useq;
}

static void on_state(parley_client *c, parley_state st, parley_status why, void *ud)
{
    seen *s = ud;
    s->state = st;
    s->why = why;
}

static void on_sent(parley_client *c, parley_status st, const parley_send_result *r, void *arg)
{
    seen *s = arg;
    s->send_status = st;
    if (st == PARLEY_OK) s->sends_ok++;
    else s->sends_failed++;
}

static parley_client *client_for(uv_loop_t *loop, fake *f, seen *s, parley_sync_mode sync, uint64_t useq)
{
    char url[64], err[256];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", f->port);
    parley_options o = {
        .url = url,
        .token = "t",
        .sync = sync,
        .useq = useq,
        .backoff_min_ms = 10,
        .backoff_max_ms = 40,
        .ud = s,
    };
    o.cb.on_msg = on_msg;
    o.cb.on_useq = on_useq;
    o.cb.on_synced = on_synced;
    o.cb.on_state = on_state;
    parley_client *c = parley_client_new(loop, &o, err, sizeof err);
    assert_non_null(c);
    s->c = c;
    return c;
}

/* Run the loop until cond holds or 5 s pass. */
static void run_until(uv_loop_t *loop, bool (*cond)(seen *), seen *s)
{
    uint64_t end = uv_now(loop) + 5000;
    while (!cond(s) && uv_now(loop) < end) uv_run(loop, UV_RUN_ONCE);
    assert_true(cond(s));
}

static void finish(uv_loop_t *loop, fake *f, seen *s)
{
    if (s->c) parley_client_free(s->c);
    s->c = NULL;
    fake_stop(f);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

/* Login says useq 3; the device has 0.  Sync pages 1-2 (more), then 3.
 * Then pushes: 4, 4 again, then 6 (gap: sync from 4 brings 5, 6). */
static void sync_script(fake *f, const Parley__Frame *in)
{
    int *step = f->state;
    switch (in->body_case) {
    case PARLEY__FRAME__BODY_LOGIN:
        reply_login_ok(f, in->id, 3);
        break;
    case PARLEY__FRAME__BODY_SYNC:
        if (in->sync->useq == 0) {
            reply_sync(f, in->id, 1, 2, true, 3);
        } else if (in->sync->useq == 2) {
            reply_sync(f, in->id, 3, 3, false, 3);
            push_msg(f, 4);
            push_msg(f, 4);
            push_msg(f, 6);
            (*step)++;
        } else if (in->sync->useq == 4) {
            /* 6 again in the page: the client drops nothing it has not seen. */
            reply_sync(f, in->id, 5, 6, false, 6);
        } else {
            fail_msg("unexpected sync from %llu", (unsigned long long)in->sync->useq);
        }
        break;
    default:
        break;
    }
}

static bool six_seen(seen *s) { return s->n >= 6 && s->synced >= 2; }

static void test_inbox_order_duplicates_and_gaps(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake f;
    int step = 0;
    fake_start(&f, &loop, sync_script);
    f.state = &step;
    seen s = {0};
    parley_client *c = client_for(&loop, &f, &s, PARLEY_SYNC_FROM, 0);
    parley_client_start(c);
    run_until(&loop, six_seen, &s);
    for (int i = 0; i < 6; i++) assert_int_equal(s.useqs[i], (uint64_t)(i + 1));
    assert_int_equal(s.n, 6);
    assert_int_equal(s.last_useq_cb, 6);
    assert_int_equal(s.synced_at, 6);
    assert_int_equal(parley_client_useq(c), 6);
    parley_stats st;
    parley_client_stats(c, &st);
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(st.syncs, 3);
    assert_string_equal(f.log, "login sync sync sync ");
    finish(&loop, &f, &s);
}

/* The first send arrives and the connection drops before the answer; the
 * client reconnects and resends with the same cmid. */
static void drop_script(fake *f, const Parley__Frame *in)
{
    switch (in->body_case) {
    case PARLEY__FRAME__BODY_LOGIN:
        reply_login_ok(f, in->id, 0);
        break;
    case PARLEY__FRAME__BODY_SEND:
        if (f->n_cmids == 1) fake_drop(f);
        else reply_send_ok(f, in->id, 7);
        break;
    default:
        break;
    }
}

static bool sent_once(seen *s) { return s->sends_ok + s->sends_failed > 0; }

static void test_resend_after_reconnect_keeps_cmid(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake f;
    fake_start(&f, &loop, drop_script);
    seen s = {0};
    parley_client *c = client_for(&loop, &f, &s, PARLEY_SYNC_OFF, 0);
    parley_send_req bad = {.to = "bob", .text = "\xff\xfe"};
    assert_int_equal(parley_send(c, &bad, on_sent, &s), PARLEY_INVALID);
    bad = (parley_send_req){.to = "bob", .group = "g", .text = "x"};
    assert_int_equal(parley_send(c, &bad, on_sent, &s), PARLEY_INVALID);
    bad = (parley_send_req){.to = "bob", .text = "x", .cmid = ""};
    assert_int_equal(parley_send(c, &bad, on_sent, &s), PARLEY_INVALID);
    parley_send_req req = {.to = "bob", .text = "hello"};
    /* Queued before the first login. */
    assert_int_equal(parley_send(c, &req, on_sent, &s), PARLEY_OK);
    assert_int_equal(parley_client_pending_sends(c), 1);
    parley_client_start(c);
    run_until(&loop, sent_once, &s);
    assert_int_equal(s.sends_ok, 1);
    assert_int_equal(s.sends_failed, 0);
    assert_int_equal(f.n_cmids, 2);
    assert_string_equal(f.cmids[0], f.cmids[1]);
    assert_int_equal(f.connections, 2);
    parley_stats st;
    parley_client_stats(c, &st);
    assert_int_equal(st.resends, 1);
    assert_int_equal(st.logins, 2);
    assert_int_equal(parley_client_pending_sends(c), 0);
    finish(&loop, &f, &s);
}

/* rate_limited with retry_after: the same cmid again, not before then. */
static uint64_t first_send_ms, second_send_ms;

static void limit_script(fake *f, const Parley__Frame *in)
{
    switch (in->body_case) {
    case PARLEY__FRAME__BODY_LOGIN:
        reply_login_ok(f, in->id, 0);
        break;
    case PARLEY__FRAME__BODY_SEND:
        if (f->n_cmids == 1) {
            first_send_ms = uv_now(f->loop);
            reply_error(f, in->id, "rate_limited", 80);
        } else {
            second_send_ms = uv_now(f->loop);
            reply_send_ok(f, in->id, 1);
        }
        break;
    default:
        break;
    }
}

static void test_rate_limited_send_is_retried_after_the_delay(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake f;
    fake_start(&f, &loop, limit_script);
    seen s = {0};
    parley_client *c = client_for(&loop, &f, &s, PARLEY_SYNC_OFF, 0);
    parley_client_start(c);
    parley_send_req req = {.to = "bob", .text = "hello", .cmid = "mine-1"};
    assert_int_equal(parley_send(c, &req, on_sent, &s), PARLEY_OK);
    run_until(&loop, sent_once, &s);
    assert_int_equal(s.sends_ok, 1);
    assert_int_equal(f.n_cmids, 2);
    assert_string_equal(f.cmids[0], "mine-1");
    assert_string_equal(f.cmids[1], "mine-1");
    assert_true(second_send_ms - first_send_ms >= 75);
    assert_int_equal(f.connections, 1);
    parley_stats st;
    parley_client_stats(c, &st);
    assert_int_equal(st.rate_limited, 1);
    finish(&loop, &f, &s);
}

/* A final error completes the send with it; not retried. */
static void refuse_script(fake *f, const Parley__Frame *in)
{
    if (in->body_case == PARLEY__FRAME__BODY_LOGIN) reply_login_ok(f, in->id, 0);
    else if (in->body_case == PARLEY__FRAME__BODY_SEND) reply_error(f, in->id, "not_found", 0);
}

static void test_final_error_is_not_retried(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake f;
    fake_start(&f, &loop, refuse_script);
    seen s = {0};
    parley_client *c = client_for(&loop, &f, &s, PARLEY_SYNC_OFF, 0);
    parley_client_start(c);
    parley_send_req req = {.to = "nobody", .text = "x"};
    assert_int_equal(parley_send(c, &req, on_sent, &s), PARLEY_OK);
    run_until(&loop, sent_once, &s);
    assert_int_equal(s.send_status, PARLEY_NOT_FOUND);
    assert_int_equal(f.n_cmids, 1);
    finish(&loop, &f, &s);
}

/* Sends made in one loop turn leave in one write, in order, and each
 * completes once. */
static void ok_script(fake *f, const Parley__Frame *in)
{
    if (in->body_case == PARLEY__FRAME__BODY_LOGIN) reply_login_ok(f, in->id, 0);
    else if (in->body_case == PARLEY__FRAME__BODY_SEND) reply_send_ok(f, in->id, (uint64_t)f->n_cmids);
}

static bool online(seen *s) { return s->state == PARLEY_STATE_READY; }
static bool five_sent(seen *s) { return s->sends_ok + s->sends_failed >= 5; }

static void test_sends_of_one_turn_share_a_write(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake f;
    fake_start(&f, &loop, ok_script);
    seen s = {0};
    parley_client *c = client_for(&loop, &f, &s, PARLEY_SYNC_OFF, 0);
    parley_client_start(c);
    run_until(&loop, online, &s);
    parley_stats st;
    parley_client_stats(c, &st);
    uint64_t writes = st.writes;
    assert_true(writes >= 1); /* the login */
    char cmid[5][8];
    for (int i = 0; i < 5; i++) {
        snprintf(cmid[i], sizeof cmid[i], "m%d", i);
        parley_send_req req = {.to = "bob", .text = "hello", .cmid = cmid[i]};
        assert_int_equal(parley_send(c, &req, on_sent, &s), PARLEY_OK);
    }
    run_until(&loop, five_sent, &s);
    assert_int_equal(s.sends_ok, 5);
    assert_int_equal(f.n_cmids, 5);
    for (int i = 0; i < 5; i++) assert_string_equal(f.cmids[i], cmid[i]);
    parley_client_stats(c, &st);
    assert_int_equal(st.writes - writes, 1);
    assert_int_equal(st.frames_out, 6);
    finish(&loop, &f, &s);
}

/* kicked: the client closes for good, its pending send fails, and it
 * does not come back. */
static void kick_script(fake *f, const Parley__Frame *in)
{
    if (in->body_case == PARLEY__FRAME__BODY_LOGIN) {
        reply_login_ok(f, in->id, 0);
    } else if (in->body_case == PARLEY__FRAME__BODY_SEND) {
        Parley__Frame fr = PARLEY__FRAME__INIT;
        Parley__Kicked k = PARLEY__KICKED__INIT;
        k.reason = "another login";
        fr.body_case = PARLEY__FRAME__BODY_KICKED;
        fr.kicked = &k;
        fake_send(f, &fr);
    }
}

static bool closed(seen *s) { return s->state == PARLEY_STATE_CLOSED && sent_once(s); }

static void test_kicked_closes_for_good(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake f;
    fake_start(&f, &loop, kick_script);
    seen s = {0};
    parley_client *c = client_for(&loop, &f, &s, PARLEY_SYNC_OFF, 0);
    parley_client_start(c);
    parley_send_req req = {.to = "bob", .text = "x"};
    assert_int_equal(parley_send(c, &req, on_sent, &s), PARLEY_OK);
    run_until(&loop, closed, &s);
    assert_int_equal(s.why, PARLEY_KICKED);
    assert_int_equal(s.send_status, PARLEY_KICKED);
    assert_int_equal(parley_send(c, &req, on_sent, &s), PARLEY_CLOSED);
    /* Give it time to (wrongly) reconnect. */
    uint64_t end = uv_now(&loop) + 200;
    while (uv_now(&loop) < end) uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(f.connections, 1);
    finish(&loop, &f, &s);
}

/* Freeing the client inside on_msg, with a send pending: no crash, no
 * callback but the cancellation, no leak. */
static void free_script(fake *f, const Parley__Frame *in)
{
    if (in->body_case == PARLEY__FRAME__BODY_LOGIN) {
        reply_login_ok(f, in->id, 0);
        push_msg(f, 1);
        push_msg(f, 2);
    }
}

static bool stopped(seen *s) { return s->stop; }
static bool cancelled(seen *s) { return s->sends_failed > 0; }

static void test_free_from_a_callback(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake f;
    fake_start(&f, &loop, free_script);
    seen s = {.free_in_msg = true};
    parley_client *c = client_for(&loop, &f, &s, PARLEY_SYNC_OFF, 0);
    parley_send_req req = {.to = "bob", .text = "never answered"};
    assert_int_equal(parley_send(c, &req, on_sent, &s), PARLEY_OK);
    parley_client_start(c);
    run_until(&loop, stopped, &s);
    run_until(&loop, cancelled, &s);
    assert_int_equal(s.n, 1);   /* the second push came after the free */
    assert_int_equal(s.send_status, PARLEY_CANCELLED);
    finish(&loop, &f, &s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inbox_order_duplicates_and_gaps),
        cmocka_unit_test(test_resend_after_reconnect_keeps_cmid),
        cmocka_unit_test(test_rate_limited_send_is_retried_after_the_delay),
        cmocka_unit_test(test_final_error_is_not_retried),
        cmocka_unit_test(test_sends_of_one_turn_share_a_write),
        cmocka_unit_test(test_kicked_closes_for_good),
        cmocka_unit_test(test_free_from_a_callback),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    arena_trim(); /* the blocks the frames' arenas left in this thread's cache */
    if (pl_mem_used()) {
        fprintf(stderr, "leak: %zu bytes still allocated\n", pl_mem_used());
        return 1;
    }
    return r;
}
