/*
 * test_messages.c - message appends, sequence numbers, dedup, inboxes,
 * history, read positions and events in the embedded store, including the
 * behaviour of several writes executed in one batch.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/rdb.h"
#include "store_test.h"

typedef struct fixture {
    char *dir;
    store *s;
} fixture;

static int setup(void **state)
{
    fixture *f = PL_NEW(fixture);
    f->dir = st_dir_new();
    f->s = st_open(f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(f->s);
    st_dir_free(f->dir);
    pl_free(f);
    return 0;
}

static const char *AB[] = {"alice", "bob", NULL};
static const char *AC[] = {"alice", "carol", NULL};
static const char *ABC[] = {"alice", "bob", "carol", NULL};

/* Append and check status and seq; returns the request (free it). */
static store_req *append_ok(store *s, const char *conv, const char *from, const char *cmid,
                            const char **rcpt, uint64_t want_seq)
{
    store_req *r = st_append(s, "t", conv, from, "hello", cmid, rcpt);
    assert_int_equal(r->status, PL_OK);
    assert_false(r->append.dup);
    assert_int_equal(r->append.seq, want_seq);
    assert_true(r->append.ts > 0);
    return r;
}

static uint64_t inbox_head(store *s, const char *user)
{
    store_req *r = store_req_new(STORE_INBOX_HEAD);
    r->tenant_id = "t";
    r->user_id = user;
    assert_int_equal(store_call(s, r), PL_OK);
    uint64_t h = r->head;
    store_req_free(r);
    return h;
}

static void test_seq_gapless(void **state)
{
    store *s = ((fixture *)*state)->s;
    store_req *r;
    for (uint64_t i = 1; i <= 3; i++) store_req_free(append_ok(s, "dm:alice:bob", "alice", NULL, AB, i));
    store_req_free(append_ok(s, "dm:alice:carol", "alice", NULL, AC, 1));
    store_req_free(append_ok(s, "dm:alice:bob", "bob", NULL, AB, 4));
    store_req_free(append_ok(s, "dm:alice:carol", "carol", NULL, AC, 2));
    /* The same conversation id in another tenant is another conversation. */
    r = st_append(s, "t2", "dm:alice:bob", "alice", "x", NULL, AB);
    assert_int_equal(r->status, PL_OK);
    assert_int_equal(r->append.seq, 1);
    assert_int_equal(r->append.useqs[0], 1);
    store_req_free(r);
}

static void test_useqs(void **state)
{
    store *s = ((fixture *)*state)->s;
    store_req *r = append_ok(s, "dm:alice:bob", "alice", NULL, AB, 1);
    assert_int_equal(r->append.useqs[0], 1);
    assert_int_equal(r->append.useqs[1], 1);
    store_req_free(r);
    r = append_ok(s, "dm:alice:carol", "alice", NULL, AC, 1);
    assert_int_equal(r->append.useqs[0], 2);
    assert_int_equal(r->append.useqs[1], 1);
    store_req_free(r);
    r = append_ok(s, "g:grp", "bob", NULL, ABC, 1);
    assert_int_equal(r->append.useqs[0], 3);
    assert_int_equal(r->append.useqs[1], 2);
    assert_int_equal(r->append.useqs[2], 2);
    store_req_free(r);
    /* A channel message goes to no inbox. */
    r = append_ok(s, "g:chan", "bob", NULL, NULL, 1);
    assert_null(r->append.useqs);
    store_req_free(r);
    assert_int_equal(inbox_head(s, "alice"), 3);
    assert_int_equal(inbox_head(s, "bob"), 2);
    assert_int_equal(inbox_head(s, "carol"), 2);
    assert_int_equal(inbox_head(s, "dave"), 0);
}

static void test_dedup(void **state)
{
    store *s = ((fixture *)*state)->s;
    store_req *a = append_ok(s, "dm:alice:bob", "alice", "c1", AB, 1);
    store_req *b = st_append(s, "t", "dm:alice:bob", "alice", "again", "c1", AB);
    assert_int_equal(b->status, PL_OK);
    assert_true(b->append.dup);
    assert_int_equal(b->append.seq, a->append.seq);
    assert_int_equal(b->append.ts, a->append.ts);
    assert_int_equal(b->append.useqs[0], a->append.useqs[0]);
    assert_int_equal(b->append.useqs[1], a->append.useqs[1]);
    store_req_free(b);
    store_req_free(a);
    /* The dup wrote nothing: the next message is seq 2, inboxes moved by one. */
    store_req_free(append_ok(s, "dm:alice:bob", "alice", "c2", AB, 2));
    assert_int_equal(inbox_head(s, "bob"), 2);
    /* The cmid is scoped to the sender. */
    store_req_free(append_ok(s, "dm:alice:bob", "bob", "c1", AB, 3));
    /* No cmid, no dedup. */
    store_req_free(append_ok(s, "dm:alice:bob", "bob", NULL, AB, 4));
    store_req_free(append_ok(s, "dm:alice:bob", "bob", "", AB, 5));
    store_req_free(append_ok(s, "dm:alice:bob", "bob", NULL, AB, 6));
}

static void test_must_exist(void **state)
{
    store *s = ((fixture *)*state)->s;
    store_req *r = st_append_req("t", "dm:alice:bob", "alice", "hi", "m1", AB);
    r->append.must_exist = "bob";
    assert_int_equal(store_call(s, r), PL_NOT_FOUND);
    assert_int_equal(inbox_head(s, "alice"), 0);
    assert_int_equal(st_user_create(s, "t", "bob", "Bob"), PL_OK);
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->append.seq, 1);
    assert_false(r->append.dup);
    store_req_free(r);
}

/* Several writes in one batch: consecutive seqs, dedup and existence
 * checks see the writes before them, one batch, one wake-up. */
static void test_one_batch(void **state)
{
    store *s = ((fixture *)*state)->s;
    store_stats before, after;
    st_collector c;
    st_collector_init(&c);
    store_req *r[7];
    r[0] = st_append_req("t", "g:x", "alice", "1", "k1", ABC);
    r[1] = st_append_req("t", "g:x", "bob", "2", "k1", ABC);   /* other sender: not a dup */
    r[2] = st_append_req("t", "g:x", "alice", "1", "k1", ABC); /* dup of r[0] */
    r[3] = st_append_req("t", "g:x", "alice", "3", NULL, ABC);
    r[3]->append.must_exist = "dave"; /* created by r[4], after it: not found */
    r[4] = store_req_new(STORE_USER_CREATE);
    r[4]->tenant_id = "t";
    r[4]->user = arena_alloc(&r[4]->arena, sizeof(*r[4]->user));
    r[4]->user->id = "dave";
    r[5] = st_append_req("t", "g:x", "carol", "4", NULL, ABC);
    r[5]->append.must_exist = "dave";
    r[6] = store_req_new(STORE_INBOX_HEAD); /* a read: sees the batch */
    r[6]->tenant_id = "t";
    r[6]->user_id = "carol";

    store_get_stats(s, &before);
    store__rdb_hold(s, true);
    for (int i = 0; i < 7; i++) st_collector_submit(&c, s, r[i]);
    store__rdb_hold(s, false);
    st_collector_wait(&c, 7);
    store_get_stats(s, &after);
    assert_int_equal(after.batches - before.batches, 1);
    assert_int_equal(after.writes - before.writes, 6);
    assert_int_equal(c.wakeups, 1);

    assert_int_equal(r[0]->append.seq, 1);
    assert_int_equal(r[1]->append.seq, 2);
    assert_true(r[2]->append.dup);
    assert_int_equal(r[2]->append.seq, 1);
    assert_int_equal(r[2]->append.ts, r[0]->append.ts);
    for (int i = 0; i < 3; i++) assert_int_equal(r[2]->append.useqs[i], r[0]->append.useqs[i]);
    assert_int_equal(r[3]->status, PL_NOT_FOUND);
    assert_int_equal(r[4]->status, PL_OK);
    assert_int_equal(r[5]->status, PL_OK);
    assert_int_equal(r[5]->append.seq, 3);
    assert_int_equal(r[0]->append.useqs[2], 1);
    assert_int_equal(r[1]->append.useqs[2], 2);
    assert_int_equal(r[5]->append.useqs[2], 3);
    assert_int_equal(r[6]->status, PL_OK);
    assert_int_equal(r[6]->head, 3);
    for (int i = 0; i < 7; i++) store_req_free(r[i]);
    st_collector_destroy(&c);
}

/*
 * The dedup keys of a batch's appends are read ahead in one MultiGet
 * (store__prefetch).  What the batch itself staged must still win over
 * that read (a cmid repeated inside the batch), and the read must not
 * outlive its batch (a retry in the next batch sees the committed entry).
 */
static void test_dedup_read_ahead(void **state)
{
    store *s = ((fixture *)*state)->s;
    /* Numbers for alice and bob, so their appends are read ahead. */
    store_req *first = append_ok(s, "dm:alice:bob", "alice", "k1", AB, 1);
    store_req_free(append_ok(s, "dm:alice:bob", "bob", "b1", AB, 2));

    st_collector c;
    st_collector_init(&c);
    store_req *r[5];
    r[0] = st_append_req("t", "dm:alice:bob", "alice", "again", "k1", AB); /* committed before */
    r[1] = st_append_req("t", "dm:alice:bob", "alice", "new", "k2", AB);
    r[2] = st_append_req("t", "dm:alice:bob", "alice", "new", "k2", AB);   /* dup of r[1] */
    r[3] = st_append_req("t", "dm:alice:bob", "bob", "new", "k2", AB);     /* other sender */
    r[4] = st_append_req("t", "dm:alice:bob", "bob", "new", "b1", AB);     /* committed before */
    store__rdb_hold(s, true);
    for (int i = 0; i < 5; i++) st_collector_submit(&c, s, r[i]);
    store__rdb_hold(s, false);
    st_collector_wait(&c, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(r[i]->status, PL_OK);
    assert_true(r[0]->append.dup);
    assert_int_equal(r[0]->append.seq, first->append.seq);
    assert_false(r[1]->append.dup);
    assert_int_equal(r[1]->append.seq, 3);
    assert_true(r[2]->append.dup);
    assert_int_equal(r[2]->append.seq, 3);
    assert_false(r[3]->append.dup);
    assert_int_equal(r[3]->append.seq, 4);
    assert_true(r[4]->append.dup);
    assert_int_equal(r[4]->append.seq, 2);
    for (int i = 0; i < 5; i++) store_req_free(r[i]);
    st_collector_destroy(&c);
    store_req_free(first);

    /* The next batch reads what the last one wrote. */
    store_req *a = st_append_req("t", "dm:alice:bob", "alice", "again", "k2", AB);
    store_req *b = st_append_req("t", "dm:alice:bob", "bob", "again", "k2", AB);
    st_collector_init(&c);
    store__rdb_hold(s, true);
    st_collector_submit(&c, s, a);
    st_collector_submit(&c, s, b);
    store__rdb_hold(s, false);
    st_collector_wait(&c, 2);
    assert_true(a->append.dup);
    assert_int_equal(a->append.seq, 3);
    assert_true(b->append.dup);
    assert_int_equal(b->append.seq, 4);
    store_req_free(a);
    store_req_free(b);
    st_collector_destroy(&c);
    assert_int_equal(inbox_head(s, "bob"), 4);
}

/* Two writes to one key in one batch: the later one wins on disk. */
static void test_same_key_in_batch(void **state)
{
    store *s = ((fixture *)*state)->s;
    for (int i = 0; i < 9; i++) store_req_free(st_append(s, "t", "g:x", "bob", "m", NULL, NULL));
    st_collector c;
    st_collector_init(&c);
    store_req *r[4];
    for (int i = 0; i < 2; i++) {
        r[i] = store_req_new(i ? STORE_USER_UPDATE : STORE_USER_CREATE);
        r[i]->tenant_id = "t";
        r[i]->user = arena_alloc(&r[i]->arena, sizeof(*r[i]->user));
        r[i]->user->id = "erin";
        r[i]->user->name = i ? "Second" : "First";
    }
    for (int i = 2; i < 4; i++) {
        r[i] = store_req_new(STORE_READ_SET);
        r[i]->tenant_id = "t";
        r[i]->user_id = "erin";
        r[i]->event = arena_alloc(&r[i]->arena, sizeof(*r[i]->event));
        r[i]->event->conv = "g:x";
        r[i]->event->seq = i == 2 ? 5 : 9;
    }
    store__rdb_hold(s, true);
    for (int i = 0; i < 4; i++) st_collector_submit(&c, s, r[i]);
    store__rdb_hold(s, false);
    st_collector_wait(&c, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r[i]->status, PL_OK);
        store_req_free(r[i]);
    }
    st_collector_destroy(&c);

    store_req *g = store_req_new(STORE_USER_GET);
    g->tenant_id = "t";
    g->user_id = "erin";
    assert_int_equal(store_call(s, g), PL_OK);
    assert_string_equal(g->user->name, "Second");
    store_req_free(g);
    g = store_req_new(STORE_READ_GET);
    g->tenant_id = "t";
    g->user_id = "erin";
    g->conv = "g:x";
    assert_int_equal(store_call(s, g), PL_OK);
    assert_int_equal(g->head, 9);
    store_req_free(g);
    g = store_req_new(STORE_USER_SEARCH); /* only the new name is indexed */
    g->tenant_id = "t";
    g->query = "first";
    assert_int_equal(store_call(s, g), PL_OK);
    assert_int_equal(g->n_users_out, 0);
    store_req_free(g);
}

static store_req *inbox_read(store *s, const char *user, uint64_t after, uint32_t limit)
{
    store_req *r = store_req_new(STORE_INBOX_READ);
    r->tenant_id = "t";
    r->user_id = user;
    r->after = after;
    r->limit = limit;
    assert_int_equal(store_call(s, r), PL_OK);
    return r;
}

static void test_inbox_read(void **state)
{
    store *s = ((fixture *)*state)->s;
    char text[32], cmid[32];
    const int n = 1150;
    for (int i = 1; i <= n; i++) {
        snprintf(text, sizeof(text), "text %d", i);
        snprintf(cmid, sizeof(cmid), "c%d", i);
        const char *conv = i % 2 ? "dm:alice:bob" : "g:grp";
        store_req *r = st_append(s, "t", conv, "alice", text, cmid, i % 2 ? AB : ABC);
        assert_int_equal(r->status, PL_OK);
        store_req_free(r);
    }
    /* A default page: 100 entries from useq 1, more to come. */
    store_req *r = inbox_read(s, "bob", 0, 0);
    assert_int_equal(r->n_entries, 100);
    assert_true(r->more);
    assert_int_equal(r->head, n);
    for (size_t i = 0; i < r->n_entries; i++) {
        store_entry *e = &r->entries[i];
        int k = (int)i + 1;
        assert_int_equal(e->useq, k);
        assert_non_null(e->msg);
        assert_null(e->event);
        snprintf(text, sizeof(text), "text %d", k);
        snprintf(cmid, sizeof(cmid), "c%d", k);
        assert_string_equal(e->msg->text, text);
        assert_string_equal(e->msg->cmid, cmid);
        assert_string_equal(e->msg->from, "alice");
        assert_string_equal(e->msg->conv, k % 2 ? "dm:alice:bob" : "g:grp");
        assert_int_equal(e->msg->seq, (uint64_t)(k + 1) / 2);
        assert_int_equal(e->msg->useq, k);
        assert_true(e->msg->ts > 0);
    }
    store_req_free(r);

    /* A big limit is capped at 1000. */
    r = inbox_read(s, "bob", 100, 5000);
    assert_int_equal(r->n_entries, 1000);
    assert_int_equal(r->entries[0].useq, 101);
    assert_true(r->more);
    store_req_free(r);
    r = inbox_read(s, "bob", 1100, 50);
    assert_int_equal(r->n_entries, 50);
    assert_int_equal(r->entries[49].useq, 1150);
    assert_false(r->more);
    store_req_free(r);
    r = inbox_read(s, "bob", 1149, 50);
    assert_int_equal(r->n_entries, 1);
    assert_false(r->more);
    store_req_free(r);
    r = inbox_read(s, "bob", n, 0);
    assert_int_equal(r->n_entries, 0);
    assert_false(r->more);
    assert_int_equal(r->head, n);
    store_req_free(r);
    /* Carol got only the group messages. */
    r = inbox_read(s, "carol", 0, 1000);
    assert_int_equal(r->n_entries, n / 2);
    assert_string_equal(r->entries[0].msg->text, "text 2");
    assert_false(r->more);
    store_req_free(r);
    r = inbox_read(s, "nobody", 0, 0);
    assert_int_equal(r->n_entries, 0);
    assert_int_equal(r->head, 0);
    store_req_free(r);
}

static store_req *history(store *s, const char *conv, uint64_t before, uint32_t limit)
{
    store_req *r = store_req_new(STORE_HISTORY);
    r->tenant_id = "t";
    r->conv = conv;
    r->before = before;
    r->limit = limit;
    assert_int_equal(store_call(s, r), PL_OK);
    return r;
}

static void test_history(void **state)
{
    store *s = ((fixture *)*state)->s;
    char text[32];
    for (int i = 1; i <= 25; i++) {
        snprintf(text, sizeof(text), "m%d", i);
        store_req_free(st_append(s, "t", "g:chan", "bob", text, NULL, NULL));
        store_req_free(st_append(s, "t", "g:chan2", "bob", text, NULL, NULL));
    }
    uint64_t before = 0, want = 25;
    int pages = 0;
    for (;;) {
        store_req *r = history(s, "g:chan", before, 10);
        pages++;
        for (size_t i = 0; i < r->n_msgs; i++, want--) {
            assert_int_equal(r->msgs[i].seq, want);
            snprintf(text, sizeof(text), "m%d", (int)want);
            assert_string_equal(r->msgs[i].text, text);
            assert_string_equal(r->msgs[i].conv, "g:chan");
            assert_string_equal(r->msgs[i].from, "bob");
            assert_int_equal(r->msgs[i].useq, 0);
        }
        bool more = r->more;
        if (r->n_msgs) before = r->msgs[r->n_msgs - 1].seq;
        assert_int_equal(r->n_msgs, pages < 3 ? 10 : 5);
        store_req_free(r);
        if (!more) break;
    }
    assert_int_equal(pages, 3);
    assert_int_equal(want, 0);
    store_req *r = history(s, "g:chan", 1, 10);
    assert_int_equal(r->n_msgs, 0);
    assert_false(r->more);
    store_req_free(r);
    r = history(s, "g:none", 0, 10);
    assert_int_equal(r->n_msgs, 0);
    store_req_free(r);
}

static store_req *conv_read(store *s, const char *conv, uint64_t after, uint32_t limit)
{
    store_req *r = store_req_new(STORE_CONV_READ);
    r->tenant_id = "t";
    r->conv = conv;
    r->after = after;
    r->limit = limit;
    assert_int_equal(store_call(s, r), PL_OK);
    return r;
}

/* A channel's timeline read forward from a seq, as channel sync does. */
static void test_conv_read(void **state)
{
    store *s = ((fixture *)*state)->s;
    char text[32];
    for (int i = 1; i <= 25; i++) {
        snprintf(text, sizeof(text), "m%d", i);
        store_req_free(st_append(s, "t", "g:chan", "bob", text, NULL, NULL));
    }
    store_req_free(st_append(s, "t", "g:chan2", "bob", "other", NULL, NULL));
    uint64_t after = 0;
    int pages = 0;
    for (bool more = true; more; pages++) {
        store_req *r = conv_read(s, "g:chan", after, 10);
        assert_int_equal(r->head, 25);
        for (size_t i = 0; i < r->n_msgs; i++) {
            assert_int_equal(r->msgs[i].seq, ++after);
            snprintf(text, sizeof(text), "m%d", (int)after);
            assert_string_equal(r->msgs[i].text, text);
            assert_string_equal(r->msgs[i].conv, "g:chan");
        }
        more = r->more;
        store_req_free(r);
    }
    assert_int_equal(pages, 3);
    assert_int_equal(after, 25);
    store_req *r = conv_read(s, "g:chan", 25, 10);
    assert_int_equal(r->n_msgs, 0);
    assert_false(r->more);
    store_req_free(r);
    r = conv_read(s, "g:none", 0, 10);
    assert_int_equal(r->n_msgs, 0);
    assert_int_equal(r->head, 0);
    store_req_free(r);
}

static uint64_t read_set(store *s, const char *user, const char *conv, uint64_t seq)
{
    store_req *r = store_req_new(STORE_READ_SET);
    r->tenant_id = "t";
    r->user_id = user;
    r->event = arena_alloc(&r->arena, sizeof(*r->event));
    r->event->kind = "read";
    r->event->conv = conv;
    r->event->seq = seq;
    r->event->user = user;
    assert_int_equal(store_call(s, r), PL_OK);
    uint64_t useq = r->useqs[0];
    store_req_free(r);
    return useq;
}

static uint64_t read_get(store *s, const char *user, const char *conv)
{
    store_req *r = store_req_new(STORE_READ_GET);
    r->tenant_id = "t";
    r->user_id = user;
    r->conv = conv;
    assert_int_equal(store_call(s, r), PL_OK);
    uint64_t h = r->head;
    store_req_free(r);
    return h;
}

/*
 * Runs: what a batch appends to one conversation or inbox is stored as
 * runs (at most STORE__RUN_ELEMS elements or STORE__RUN_BYTES bytes each).
 * Three batches build runs of every kind: full and partial ones, runs of
 * one, runs cut by size, an event inside an inbox run; then every read is
 * checked from every starting point against what was appended, before and
 * after a reopen.
 */
#define RUN_MSGS 300
#define RUN_BIG 10

typedef struct model {
    char *dm[RUN_MSGS + 16];       /* dm:alice:bob texts by seq (1-based) */
    char *grp[RUN_MSGS + 16];      /* g:grp */
    size_t n_dm, n_grp;
    /* bob's inbox by useq: conv (NULL: the event) and seq */
    const char *bconv[2 * RUN_MSGS + 32];
    uint64_t bseq[2 * RUN_MSGS + 32];
    size_t n_bob;
} model;

static void model_add(model *m, const char *conv, const char *text)
{
    bool dm = strcmp(conv, "dm:alice:bob") == 0;
    char **t = dm ? m->dm : m->grp;
    size_t *n = dm ? &m->n_dm : &m->n_grp;
    t[++*n] = pl_strdup(text);
    m->n_bob++;
    m->bconv[m->n_bob] = dm ? "dm:alice:bob" : "g:grp";
    m->bseq[m->n_bob] = *n;
}

static void model_free(model *m)
{
    for (size_t i = 1; i <= m->n_dm; i++) pl_free(m->dm[i]);
    for (size_t i = 1; i <= m->n_grp; i++) pl_free(m->grp[i]);
}

static void check_runs(store *s, const model *m)
{
    /* history of the dm from every "before", 7 at a time */
    for (uint64_t before = 0; before <= m->n_dm + 1; before++) {
        store_req *r = history(s, "dm:alice:bob", before, 7);
        uint64_t top = before == 0 || before > m->n_dm ? m->n_dm : before - 1;
        uint64_t want = top < 7 ? top : 7;
        assert_int_equal(r->n_msgs, want);
        for (size_t i = 0; i < r->n_msgs; i++) {
            assert_int_equal(r->msgs[i].seq, top - i);
            assert_string_equal(r->msgs[i].text, m->dm[top - i]);
        }
        assert_int_equal(r->more, top > 7);
        store_req_free(r);
    }
    /* the group's timeline from every "after", 9 at a time */
    for (uint64_t after = 0; after <= m->n_grp; after++) {
        store_req *r = conv_read(s, "g:grp", after, 9);
        uint64_t left = m->n_grp - after, want = left < 9 ? left : 9;
        assert_int_equal(r->head, m->n_grp);
        assert_int_equal(r->n_msgs, want);
        for (size_t i = 0; i < r->n_msgs; i++) {
            assert_int_equal(r->msgs[i].seq, after + 1 + i);
            assert_string_equal(r->msgs[i].text, m->grp[after + 1 + i]);
        }
        assert_int_equal(r->more, left > 9);
        store_req_free(r);
    }
    /* bob's inbox from every "after", 11 at a time */
    for (uint64_t after = 0; after <= m->n_bob; after++) {
        store_req *r = inbox_read(s, "bob", after, 11);
        uint64_t left = m->n_bob - after, want = left < 11 ? left : 11;
        assert_int_equal(r->head, m->n_bob);
        assert_int_equal(r->n_entries, want);
        for (size_t i = 0; i < r->n_entries; i++) {
            uint64_t u = after + 1 + i;
            store_entry *e = &r->entries[i];
            assert_int_equal(e->useq, u);
            if (!m->bconv[u]) {
                assert_non_null(e->event);
                assert_string_equal(e->event->kind, "group_joined");
                continue;
            }
            assert_non_null(e->msg);
            assert_string_equal(e->msg->conv, m->bconv[u]);
            assert_int_equal(e->msg->seq, m->bseq[u]);
            bool dm = strcmp(m->bconv[u], "dm:alice:bob") == 0;
            assert_string_equal(e->msg->text, (dm ? m->dm : m->grp)[m->bseq[u]]);
        }
        assert_int_equal(r->more, left > 11);
        store_req_free(r);
    }
}

static void test_runs(void **state)
{
    fixture *f = *state;
    model *m = pl_calloc(1, sizeof(*m));
    char text[64], cmid[32];

    /* Batch 1: 300 messages in two conversations and an event. */
    store_req **reqs = pl_calloc(RUN_MSGS + 1, sizeof(*reqs));
    size_t n = 0;
    for (int i = 0; i < RUN_MSGS; i++) {
        const char *conv = i % 2 ? "g:grp" : "dm:alice:bob";
        snprintf(text, sizeof(text), "batch one %d", i);
        snprintf(cmid, sizeof(cmid), "b1-%d", i);
        store_req *r = st_append_req("t", conv, i % 4 == 2 ? "bob" : "alice", text, NULL,
                                     i % 2 ? ABC : AB);
        r->append.cmid = arena_strdup(&r->arena, cmid);
        r->append.text = arena_strdup(&r->arena, text);
        reqs[n++] = r;
        model_add(m, conv, text);
        if (i == 150) {
            store_req *ev = store_req_new(STORE_EVENT_APPEND);
            ev->tenant_id = "t";
            ev->users = AB + 1; /* bob */
            ev->n_users = 1;
            ev->event = arena_alloc(&ev->arena, sizeof(*ev->event));
            ev->event->kind = "group_joined";
            ev->event->group = "grp";
            reqs[n++] = ev;
            m->n_bob++;
            m->bconv[m->n_bob] = NULL;
        }
    }
    st_one_batch(f->s, reqs, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(reqs[i]->status, PL_OK);
        store_req_free(reqs[i]);
    }

    /* Batch 2..6: runs of one. */
    for (int i = 0; i < 5; i++) {
        snprintf(text, sizeof(text), "alone %d", i);
        store_req_free(st_append(f->s, "t", "dm:alice:bob", "bob", text, NULL, AB));
        model_add(m, "dm:alice:bob", text);
    }

    /* One more batch of big messages: runs cut by size. */
    char *big = pl_malloc(8001);
    n = 0;
    for (int i = 0; i < RUN_BIG; i++) {
        memset(big, 'a' + i, 8000);
        big[8000] = 0;
        store_req *r = st_append_req("t", "dm:alice:bob", "alice", NULL, NULL, AB);
        r->append.text = arena_strdup(&r->arena, big);
        reqs[n++] = r;
        model_add(m, "dm:alice:bob", big);
    }
    st_one_batch(f->s, reqs, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(reqs[i]->status, PL_OK);
        store_req_free(reqs[i]);
    }
    pl_free(big);
    pl_free(reqs);

    /* Dedup still answers from within a run. */
    store_req *r = st_append(f->s, "t", "g:grp", "alice", "again", "b1-1", ABC);
    assert_true(r->append.dup);
    assert_int_equal(r->append.seq, 1);
    store_req_free(r);

    check_runs(f->s, m);
    store_close(f->s);

    /* The dm's 165 messages are in 10 runs: 128 + 22 from batch 1, five
     * of one, 4 + 4 + 2 of 8 kB each (32 kB a run); the group's 150 in 2. */
    st_raw d;
    st_raw_open(&d, f->dir);
    rocksdb_t *db = d.db;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db, ro, d.cf[0]);
    size_t mkeys = 0;
    for (rocksdb_iter_seek(it, "M", 1); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        if (rocksdb_iter_key(it, &klen)[0] != 'M') break;
        mkeys++;
    }
    assert_int_equal(mkeys, 12);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    st_raw_close(&d);

    f->s = st_open(f->dir);
    check_runs(f->s, m);
    /* And appends go on from the last runs. */
    r = append_ok(f->s, "dm:alice:bob", "alice", NULL, AB, m->n_dm + 1);
    assert_int_equal(r->append.useqs[1], m->n_bob + 1);
    store_req_free(r);
    model_free(m);
    pl_free(m);
}

static void test_read_set(void **state)
{
    store *s = ((fixture *)*state)->s;
    for (uint64_t i = 1; i <= 8; i++) store_req_free(append_ok(s, "dm:alice:bob", "alice", NULL, AB, i));
    assert_int_equal(read_get(s, "bob", "dm:alice:bob"), 0);
    assert_int_equal(read_set(s, "bob", "dm:alice:bob", 5), 9);
    assert_int_equal(read_get(s, "bob", "dm:alice:bob"), 5);
    assert_int_equal(read_set(s, "bob", "dm:alice:bob", 3), 0); /* never lowers */
    assert_int_equal(read_set(s, "bob", "dm:alice:bob", 5), 0);
    assert_int_equal(read_get(s, "bob", "dm:alice:bob"), 5);
    assert_int_equal(read_set(s, "bob", "dm:alice:bob", 7), 10);
    assert_int_equal(read_get(s, "bob", "dm:alice:bob"), 7);
    /* Past the latest message: clamped to it. */
    assert_int_equal(read_set(s, "bob", "dm:alice:bob", 100), 11);
    assert_int_equal(read_get(s, "bob", "dm:alice:bob"), 8);
    assert_int_equal(read_set(s, "bob", "dm:alice:bob", 100), 0);
    assert_int_equal(read_set(s, "bob", "g:empty", 3), 0); /* no messages: stays 0 */
    assert_int_equal(read_get(s, "bob", "g:empty"), 0);
    /* Sending raised the sender's own position to the message. */
    assert_int_equal(read_get(s, "alice", "dm:alice:bob"), 8);
    assert_int_equal(read_get(s, "bob", "g:other"), 0);
    assert_int_equal(inbox_head(s, "bob"), 11);

    store_req *r = inbox_read(s, "bob", 8, 0);
    assert_int_equal(r->n_entries, 3);
    assert_null(r->entries[0].msg);
    assert_non_null(r->entries[0].event);
    assert_string_equal(r->entries[0].event->kind, "read");
    assert_string_equal(r->entries[0].event->conv, "dm:alice:bob");
    assert_int_equal(r->entries[0].event->seq, 5);
    assert_string_equal(r->entries[0].event->user, "bob");
    assert_true(r->entries[0].event->ts > 0);
    assert_int_equal(r->entries[1].event->seq, 7);
    assert_int_equal(r->entries[2].event->seq, 8);
    store_req_free(r);
}

static void test_event_append(void **state)
{
    store *s = ((fixture *)*state)->s;
    store_req_free(append_ok(s, "dm:alice:bob", "alice", NULL, AB, 1));
    store_req *r = store_req_new(STORE_EVENT_APPEND);
    r->tenant_id = "t";
    r->users = ABC;
    r->n_users = 3;
    r->event = arena_alloc(&r->arena, sizeof(*r->event));
    r->event->kind = "group_joined";
    r->event->group = "grp";
    r->event->user = "carol";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->useqs[0], 2);
    assert_int_equal(r->useqs[1], 2);
    assert_int_equal(r->useqs[2], 1);
    store_req_free(r);

    r = inbox_read(s, "alice", 0, 0);
    assert_int_equal(r->n_entries, 2);
    assert_non_null(r->entries[0].msg);
    assert_non_null(r->entries[1].event);
    assert_string_equal(r->entries[1].event->kind, "group_joined");
    assert_string_equal(r->entries[1].event->group, "grp");
    assert_string_equal(r->entries[1].event->user, "carol");
    assert_null(r->entries[1].event->conv);
    assert_int_equal(r->entries[1].useq, 2);
    store_req_free(r);

    r = store_req_new(STORE_EVENT_APPEND); /* no event: rejected */
    r->tenant_id = "t";
    r->users = ABC;
    r->n_users = 3;
    assert_int_equal(store_call(s, r), PL_BAD_REQUEST);
    store_req_free(r);
    assert_int_equal(inbox_head(s, "carol"), 1);
}

static void test_bad_appends(void **state)
{
    store *s = ((fixture *)*state)->s;
    const char *bad_rcpt[] = {"alice", "", NULL};
    store_req *r = st_append(s, "t", "dm:alice:bob", "alice", "x", NULL, bad_rcpt);
    assert_int_equal(r->status, PL_BAD_REQUEST);
    store_req_free(r);
    r = st_append(s, "t", "", "alice", "x", NULL, AB);
    assert_int_equal(r->status, PL_BAD_REQUEST);
    store_req_free(r);
    r = st_append(s, "t", "dm:alice:bob", NULL, "x", NULL, AB);
    assert_int_equal(r->status, PL_BAD_REQUEST);
    store_req_free(r);
    /* Nothing was numbered. */
    store_req_free(append_ok(s, "dm:alice:bob", "alice", NULL, AB, 1));
    assert_int_equal(inbox_head(s, "alice"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seq_gapless, setup, teardown),
        cmocka_unit_test_setup_teardown(test_useqs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_must_exist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_read_ahead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_key_in_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conv_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_appends, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
