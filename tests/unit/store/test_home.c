/*
 * test_home.c - the home list of the embedded store: 1:1s (from their
 * first message), groups and channels (from joining), ordered by last
 * activity, with the last message and unread counts from read positions,
 * including the sender's own position rising with each message; leaving
 * a group takes it off; and the time for a user in 1,000 conversations
 * (warm, and cold after a reopen).  The upgrade of a layout 1 database,
 * which had no home rows, is in test_upgrade.c.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <time.h>

#include "core/clock.h"
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
    const char *users[] = {"ann", "bob", "cat", "dan", NULL};
    for (int i = 0; users[i]; i++) assert_int_equal(st_user_create(f->s, "t", users[i], NULL), PL_OK);
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

/* Let the store's millisecond clock move on, so activities are ordered. */
static void tick(void)
{
    struct timespec ts = {0, 3 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static store_req *home(store *s, const char *user, uint32_t limit)
{
    store_req *r = store_req_new(STORE_HOME);
    r->tenant_id = "t";
    r->user_id = user;
    r->limit = limit;
    assert_int_equal(store_call(s, r), PL_OK);
    for (size_t i = 1; i < r->n_convs_out; i++)
        assert_true(r->convs_out[i - 1].active_ts >= r->convs_out[i].active_ts);
    return r;
}

static void dm(store *s, const char *from, const char *to, const char *text)
{
    const char *rcpt[] = {from, to, NULL};
    char conv[64];
    bool lt = strcmp(from, to) < 0;
    snprintf(conv, sizeof(conv), "dm:%s:%s", lt ? from : to, lt ? to : from);
    store_req *r = st_append(s, "t", conv, from, text, NULL, rcpt);
    assert_int_equal(r->status, PL_OK);
    store_req_free(r);
}

static void post(store *s, const char *group, const char *from, const char *text)
{
    store_req *r = st_group_msg_req("t", group, from, text, NULL);
    assert_int_equal(store_call(s, r), PL_OK);
    store_req_free(r);
}

static void read_set(store *s, const char *user, const char *conv, uint64_t seq)
{
    store_req *r = store_req_new(STORE_READ_SET);
    r->tenant_id = "t";
    r->user_id = user;
    r->event = arena_alloc(&r->arena, sizeof(*r->event));
    r->event->kind = "read";
    r->event->conv = conv;
    r->event->seq = seq;
    assert_int_equal(store_call(s, r), PL_OK);
    store_req_free(r);
}

static void test_order_and_unread(void **state)
{
    store *s = ((fixture *)*state)->s;
    dm(s, "bob", "ann", "b1");
    dm(s, "bob", "ann", "b2");
    dm(s, "bob", "ann", "b3");
    tick();
    const char *cab[] = {"cat", "ann", "bob", NULL};
    assert_int_equal(st_group_create(s, "t", "g", "group", "Gardening", cab), PL_OK);
    tick();
    dm(s, "ann", "cat", "a1");
    tick();
    const char *da[] = {"dan", "ann", NULL};
    assert_int_equal(st_group_create(s, "t", "ch", "channel", "Chess", da), PL_OK);
    post(s, "ch", "dan", "d1");
    post(s, "ch", "dan", "d2");

    store_req *r = home(s, "ann", 0);
    assert_int_equal(r->n_convs_out, 4);
    assert_false(r->more);
    store_conv *c = r->convs_out;
    assert_string_equal(c[0].conv, "g:ch");
    assert_string_equal(c[0].kind, "channel");
    assert_string_equal(c[0].peer, "ch");
    assert_string_equal(c[0].name, "Chess");
    assert_string_equal(c[0].role, "member");
    assert_non_null(c[0].last);
    assert_string_equal(c[0].last->text, "d2");
    assert_string_equal(c[0].last->from, "dan");
    assert_int_equal(c[0].last->seq, 2);
    assert_int_equal(c[0].active_ts, c[0].last->ts);
    assert_int_equal(c[0].unread, 2);
    assert_string_equal(c[1].conv, "dm:ann:cat");
    assert_string_equal(c[1].kind, "dm");
    assert_string_equal(c[1].peer, "cat");
    assert_null(c[1].name);
    assert_null(c[1].role);
    assert_int_equal(c[1].read_seq, 1); /* her own message */
    assert_int_equal(c[1].unread, 0);
    assert_string_equal(c[2].conv, "g:g");
    assert_string_equal(c[2].kind, "group");
    assert_string_equal(c[2].name, "Gardening");
    assert_null(c[2].last);
    assert_int_equal(c[2].unread, 0);
    assert_true(c[2].active_ts > 0); /* when she joined */
    assert_string_equal(c[3].conv, "dm:ann:bob");
    assert_string_equal(c[3].peer, "bob");
    assert_string_equal(c[3].last->text, "b3");
    assert_int_equal(c[3].unread, 3);
    store_req_free(r);

    /* Reading, then answering. */
    read_set(s, "ann", "dm:ann:bob", 2);
    r = home(s, "ann", 0);
    assert_int_equal(r->convs_out[3].unread, 1);
    assert_int_equal(r->convs_out[3].read_seq, 2);
    store_req_free(r);
    tick();
    dm(s, "ann", "bob", "a2");
    r = home(s, "ann", 2);
    assert_int_equal(r->n_convs_out, 2);
    assert_true(r->more);
    assert_string_equal(r->convs_out[0].conv, "dm:ann:bob");
    assert_int_equal(r->convs_out[0].unread, 0);
    assert_int_equal(r->convs_out[0].read_seq, 4);
    assert_string_equal(r->convs_out[1].conv, "g:ch");
    store_req_free(r);
    r = home(s, "bob", 0);
    assert_int_equal(r->n_convs_out, 2);
    assert_string_equal(r->convs_out[0].conv, "dm:ann:bob");
    assert_string_equal(r->convs_out[0].peer, "ann");
    assert_int_equal(r->convs_out[0].unread, 1); /* read up to his own b3 */
    assert_string_equal(r->convs_out[1].conv, "g:g");
    store_req_free(r);
    r = home(s, "cat", 0);
    assert_int_equal(r->n_convs_out, 2);
    assert_string_equal(r->convs_out[0].conv, "dm:ann:cat");
    assert_int_equal(r->convs_out[0].unread, 1);
    assert_string_equal(r->convs_out[1].role, "owner");
    store_req_free(r);

    /* Group messages and leaving. */
    tick();
    post(s, "g", "cat", "c1");
    r = home(s, "ann", 0);
    assert_string_equal(r->convs_out[0].conv, "g:g");
    assert_int_equal(r->convs_out[0].unread, 1);
    store_req_free(r);
    const char *a[] = {"ann", NULL};
    store_req *m = st_members_req(STORE_MEMBER_REMOVE, "t", "g", a);
    assert_int_equal(store_call(s, m), PL_OK);
    store_req_free(m);
    r = home(s, "ann", 0);
    assert_int_equal(r->n_convs_out, 3);
    for (size_t i = 0; i < r->n_convs_out; i++) assert_string_not_equal(r->convs_out[i].conv, "g:g");
    store_req_free(r);

    /* A note to oneself is one conversation; nobody else's list changes. */
    const char *aa[] = {"ann", NULL};
    store_req *self = st_append(s, "t", "dm:ann:ann", "ann", "note", NULL, aa);
    assert_int_equal(self->status, PL_OK);
    store_req_free(self);
    r = home(s, "ann", 0);
    assert_int_equal(r->n_convs_out, 4);
    assert_string_equal(r->convs_out[0].conv, "dm:ann:ann");
    assert_string_equal(r->convs_out[0].peer, "ann");
    assert_int_equal(r->convs_out[0].unread, 0);
    store_req_free(r);
    r = home(s, "nobody", 0);
    assert_int_equal(r->n_convs_out, 0);
    assert_null(r->convs_out);
    store_req_free(r);
}

#define CONVS 1000

static double home_ms(store *s, const char *user, size_t *n, uint64_t *unread)
{
    uint64_t t0 = clock_mono_ns();
    store_req *r = home(s, user, 1000);
    uint64_t t1 = clock_mono_ns();
    *n = r->n_convs_out;
    *unread = 0;
    for (size_t i = 0; i < r->n_convs_out; i++) {
        assert_non_null(r->convs_out[i].last);
        *unread += r->convs_out[i].unread;
    }
    assert_false(r->more);
    store_req_free(r);
    return (double)(t1 - t0) / 1e6;
}

/* A user in 500 1:1s and 500 groups, each with messages. */
static void test_home_1000(void **state)
{
    fixture *f = *state;
    store *s = f->s;
    st_users_bulk(s, "t", "p%03zu", CONVS / 2);
    store_req **reqs = pl_calloc(CONVS * 3, sizeof(*reqs));
    size_t n = 0;
    for (size_t i = 0; i < CONVS / 2; i++) {
        store_req *r = store_req_new(STORE_GROUP_CREATE);
        char id[16];
        snprintf(id, sizeof(id), "p%03zu", i);
        const char **users = arena_alloc(&r->arena, 2 * sizeof(*users));
        users[0] = arena_strdup(&r->arena, id);
        users[1] = "ann";
        snprintf(id, sizeof(id), "grp%03zu", i);
        r->tenant_id = "t";
        r->group = arena_alloc(&r->arena, sizeof(*r->group));
        r->group->id = arena_strdup(&r->arena, id);
        r->group->name = r->group->id;
        r->group->owner = users[0];
        r->users = users;
        r->n_users = 2;
        reqs[n++] = r;
    }
    st_run_many(s, reqs, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(reqs[i]->status, PL_OK);
        store_req_free(reqs[i]);
    }
    /* Messages: two from each peer in their 1:1, one in each group. */
    n = 0;
    for (size_t i = 0; i < CONVS / 2; i++) {
        char p[16], conv[32], g[16];
        snprintf(p, sizeof(p), "p%03zu", i);
        snprintf(conv, sizeof(conv), "dm:ann:%s", p);
        snprintf(g, sizeof(g), "grp%03zu", i);
        for (int k = 0; k < 2; k++) {
            store_req *r = store_req_new(STORE_MSG_APPEND);
            const char **rcpt = arena_alloc(&r->arena, 2 * sizeof(*rcpt));
            rcpt[0] = arena_strdup(&r->arena, p);
            rcpt[1] = "ann";
            r->tenant_id = "t";
            r->append.conv = arena_strdup(&r->arena, conv);
            r->append.from = rcpt[0];
            r->append.text = "hello there";
            r->append.rcpt = rcpt;
            r->append.n_rcpt = 2;
            reqs[n++] = r;
        }
        store_req *r = store_req_new(STORE_MSG_APPEND);
        r->tenant_id = "t";
        r->append.group = arena_strdup(&r->arena, g);
        snprintf(conv, sizeof(conv), "g:%s", g);
        r->append.conv = arena_strdup(&r->arena, conv);
        r->append.from = arena_strdup(&r->arena, p);
        r->append.text = "group hello";
        reqs[n++] = r;
    }
    st_run_many(s, reqs, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(reqs[i]->status, PL_OK);
        store_req_free(reqs[i]);
    }
    pl_free(reqs);

    size_t got;
    uint64_t unread;
    double warm = home_ms(s, "ann", &got, &unread);
    assert_int_equal(got, CONVS);
    assert_int_equal(unread, CONVS / 2 * 2 + CONVS / 2);
    warm = home_ms(s, "ann", &got, &unread);
    store_close(s);
    f->s = s = st_open(f->dir);
    double cold = home_ms(s, "ann", &got, &unread);
    assert_int_equal(got, CONVS);
    assert_int_equal(unread, CONVS / 2 * 2 + CONVS / 2);
    double again = home_ms(s, "ann", &got, &unread);
    printf("# home of a user in %d conversations (500 1:1s, 500 groups): %.2f ms with the "
           "counters cached, %.2f ms after a reopen (cold), %.2f ms the second time\n",
           CONVS, warm, cold, again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_and_unread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_home_1000, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
