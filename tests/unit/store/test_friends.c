/*
 * test_friends.c - friendships in the embedded store: the state machine
 * (request, accept, reject, delete, withdraw, a crossing request that
 * accepts), the inbox events of each step, refusals that write nothing,
 * the friend list, 1:1 messages that require friendship (also when the
 * friendship is made earlier in the same batch), a reopen, and last seen
 * (STORE_SEEN_SET, STORE_SEEN_GET, and with the friend list).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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
    const char *users[] = {"ann", "bob", "cat", NULL};
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

static store_req *friend_req(const char *user, const char *other, const char *action)
{
    store_req *r = store_req_new(STORE_FRIEND);
    r->tenant_id = "t";
    r->user_id = user;
    r->other = other;
    r->action = action;
    return r;
}

/* Run a FRIEND request; check status, the resulting action and which
 * sides got an event (their useqs, 0 for none). */
static void friend(store *s, const char *user, const char *other, const char *action,
                   pl_status want, const char *want_action, uint64_t want_u, uint64_t want_o)
{
    store_req *r = friend_req(user, other, action);
    assert_int_equal(store_call(s, r), want);
    if (want == PL_OK) {
        assert_string_equal(r->query, want_action);
        assert_int_equal(r->useqs[0], want_u);
        assert_int_equal(r->useqs[1], want_o);
    }
    store_req_free(r);
}

/* The state of other in user's friend list, or "-". */
static const char *state_of(store *s, const char *user, const char *other)
{
    store_req *r = store_req_new(STORE_FRIEND_LIST);
    r->tenant_id = "t";
    r->user_id = user;
    assert_int_equal(store_call(s, r), PL_OK);
    const char *st = "-";
    for (size_t i = 0; i < r->n_friends_out; i++) {
        if (i) assert_true(strcmp(r->friends_out[i - 1].user, r->friends_out[i].user) < 0);
        if (strcmp(r->friends_out[i].user, other) == 0) {
            assert_true(r->friends_out[i].since > 0);
            /* The states are static strings, valid after the request. */
            st = r->friends_out[i].state;
        }
    }
    store_req_free(r);
    return st;
}

/* The event at useq of user. */
static void event_is(store *s, const char *user, uint64_t useq, const char *kind, const char *about)
{
    store_req *r = store_req_new(STORE_INBOX_READ);
    r->tenant_id = "t";
    r->user_id = user;
    r->after = useq - 1;
    r->limit = 1;
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_entries, 1);
    assert_int_equal(r->entries[0].useq, useq);
    assert_non_null(r->entries[0].event);
    assert_string_equal(r->entries[0].event->kind, kind);
    assert_string_equal(r->entries[0].event->user, about);
    assert_null(r->entries[0].event->conv);
    assert_true(r->entries[0].event->ts > 0);
    store_req_free(r);
}

static void test_state_machine(void **state)
{
    store *s = ((fixture *)*state)->s;
    /* request -> accept */
    friend(s, "ann", "bob", "request", PL_OK, "request", 0, 1);
    event_is(s, "bob", 1, "friend_request", "ann");
    assert_string_equal(state_of(s, "ann", "bob"), "requested");
    assert_string_equal(state_of(s, "bob", "ann"), "pending");
    friend(s, "ann", "bob", "request", PL_OK, "request", 0, 0); /* again: nothing */
    assert_int_equal(st_inbox_head(s, "t", "bob"), 1);
    friend(s, "ann", "bob", "accept", PL_NOT_FOUND, NULL, 0, 0); /* not ann's to accept */
    friend(s, "bob", "ann", "delete", PL_NOT_FOUND, NULL, 0, 0); /* bob rejects instead */
    friend(s, "bob", "ann", "accept", PL_OK, "accept", 2, 1);
    event_is(s, "bob", 2, "friend_added", "ann");
    event_is(s, "ann", 1, "friend_added", "bob");
    assert_string_equal(state_of(s, "ann", "bob"), "friends");
    assert_string_equal(state_of(s, "bob", "ann"), "friends");
    friend(s, "ann", "bob", "request", PL_CONFLICT, NULL, 0, 0);
    friend(s, "bob", "ann", "request", PL_CONFLICT, NULL, 0, 0);
    friend(s, "bob", "ann", "accept", PL_NOT_FOUND, NULL, 0, 0);

    /* delete: both rows go, both hear of it */
    friend(s, "bob", "ann", "delete", PL_OK, "delete", 3, 2);
    event_is(s, "bob", 3, "friend_removed", "ann");
    event_is(s, "ann", 2, "friend_removed", "bob");
    assert_string_equal(state_of(s, "ann", "bob"), "-");
    assert_string_equal(state_of(s, "bob", "ann"), "-");
    friend(s, "bob", "ann", "delete", PL_NOT_FOUND, NULL, 0, 0);

    /* request -> reject */
    friend(s, "cat", "ann", "request", PL_OK, "request", 0, 3);
    friend(s, "ann", "cat", "reject", PL_OK, "reject", 0, 1);
    event_is(s, "cat", 1, "friend_rejected", "ann");
    assert_string_equal(state_of(s, "ann", "cat"), "-");
    assert_string_equal(state_of(s, "cat", "ann"), "-");
    friend(s, "ann", "cat", "reject", PL_NOT_FOUND, NULL, 0, 0);

    /* request -> withdraw */
    friend(s, "cat", "bob", "request", PL_OK, "request", 0, 4);
    friend(s, "cat", "bob", "delete", PL_OK, "delete", 2, 5);
    event_is(s, "cat", 2, "friend_removed", "bob");
    event_is(s, "bob", 5, "friend_removed", "cat");
    assert_string_equal(state_of(s, "bob", "cat"), "-");

    /* crossing requests: the second accepts */
    friend(s, "cat", "bob", "request", PL_OK, "request", 0, 6);
    friend(s, "bob", "cat", "request", PL_OK, "accept", 7, 3);
    assert_string_equal(state_of(s, "cat", "bob"), "friends");

    /* refusals write nothing */
    friend(s, "ann", "ann", "request", PL_BAD_REQUEST, NULL, 0, 0);
    friend(s, "ann", "ghost", "request", PL_NOT_FOUND, NULL, 0, 0);
    friend(s, "ann", "bob", "poke", PL_BAD_REQUEST, NULL, 0, 0);
    friend(s, "ann", "", "request", PL_BAD_REQUEST, NULL, 0, 0);
    friend(s, "ann", "bob", NULL, PL_BAD_REQUEST, NULL, 0, 0);
    assert_int_equal(st_inbox_head(s, "t", "ann"), 3);
    assert_string_equal(state_of(s, "ann", "ghost"), "-");
}

static void test_friend_list(void **state)
{
    store *s = ((fixture *)*state)->s;
    friend(s, "bob", "cat", "request", PL_OK, "request", 0, 1);
    friend(s, "ann", "bob", "request", PL_OK, "request", 0, 1);
    friend(s, "bob", "ann", "accept", PL_OK, "accept", 2, 1);
    store_req *r = store_req_new(STORE_FRIEND_LIST);
    r->tenant_id = "t";
    r->user_id = "bob";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_friends_out, 2);
    assert_string_equal(r->friends_out[0].user, "ann");
    assert_string_equal(r->friends_out[0].state, "friends");
    assert_string_equal(r->friends_out[1].user, "cat");
    assert_string_equal(r->friends_out[1].state, "requested");
    r->user_id = "nobody";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_friends_out, 0);
    store_req_free(r);
}

static store_req *dm_req(const char *from, const char *to, bool require_friend)
{
    static const char *ab[] = {"ann", "bob", NULL}, *ba[] = {"bob", "ann", NULL},
                      *aa[] = {"ann", NULL};
    const char **rcpt = strcmp(from, to) == 0 ? aa : strcmp(from, "ann") == 0 ? ab : ba;
    const char *conv = strcmp(from, to) == 0 ? "dm:ann:ann" : "dm:ann:bob";
    store_req *r = st_append_req("t", conv, from, "hi", NULL, rcpt);
    r->append.must_exist = to;
    r->append.require_friend = require_friend;
    return r;
}

static void test_require_friend(void **state)
{
    store *s = ((fixture *)*state)->s;
    store_req *r = dm_req("ann", "bob", true);
    assert_int_equal(store_call(s, r), PL_FORBIDDEN);
    r->append.require_friend = false;
    assert_int_equal(store_call(s, r), PL_OK); /* a tenant without the rule */
    assert_int_equal(r->append.seq, 1);
    store_req_free(r);
    /* A pending request is not friendship. */
    friend(s, "ann", "bob", "request", PL_OK, "request", 0, 2);
    r = dm_req("bob", "ann", true);
    assert_int_equal(store_call(s, r), PL_FORBIDDEN);
    store_req_free(r);
    /* Oneself needs no friend; no must_exist is a bad request. */
    r = dm_req("ann", "ann", true);
    assert_int_equal(store_call(s, r), PL_OK);
    r->append.must_exist = NULL;
    assert_int_equal(store_call(s, r), PL_BAD_REQUEST);
    store_req_free(r);

    /* Accepted earlier in the same batch: allowed; deleted: refused. */
    store_req *b[4];
    b[0] = dm_req("bob", "ann", true);
    b[1] = friend_req("bob", "ann", "accept");
    b[2] = dm_req("bob", "ann", true);
    b[3] = dm_req("ann", "bob", true);
    st_one_batch(s, b, 4);
    assert_int_equal(b[0]->status, PL_FORBIDDEN);
    assert_int_equal(b[1]->status, PL_OK);
    assert_int_equal(b[2]->status, PL_OK);
    assert_int_equal(b[2]->append.seq, 2);
    assert_int_equal(b[3]->status, PL_OK);
    assert_int_equal(b[3]->append.seq, 3);
    for (int i = 0; i < 4; i++) store_req_free(b[i]);
    b[0] = friend_req("ann", "bob", "delete");
    b[1] = dm_req("ann", "bob", true);
    st_one_batch(s, b, 2);
    assert_int_equal(b[0]->status, PL_OK);
    assert_int_equal(b[1]->status, PL_FORBIDDEN);
    store_req_free(b[0]);
    store_req_free(b[1]);
    /* A retry of a message sent while they were friends still gets its ack. */
    r = st_append_req("t", "dm:ann:bob", "ann", "hi", "k1", (const char *[]){"ann", "bob", NULL});
    r->append.must_exist = "bob";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->append.seq, 4);
    r->append.require_friend = true;
    assert_int_equal(store_call(s, r), PL_OK);
    assert_true(r->append.dup);
    assert_int_equal(r->append.seq, 4);
    store_req_free(r);
}

static void test_reopen(void **state)
{
    fixture *f = *state;
    friend(f->s, "ann", "bob", "request", PL_OK, "request", 0, 1);
    friend(f->s, "bob", "ann", "accept", PL_OK, "accept", 2, 1);
    friend(f->s, "cat", "ann", "request", PL_OK, "request", 0, 2);
    store_close(f->s);
    f->s = st_open(f->dir);
    assert_string_equal(state_of(f->s, "ann", "bob"), "friends");
    assert_string_equal(state_of(f->s, "ann", "cat"), "pending");
    assert_string_equal(state_of(f->s, "cat", "ann"), "requested");
    friend(f->s, "ann", "cat", "accept", PL_OK, "accept", 3, 1);
}

/* Submit a SEEN_SET nobody waits for (the store frees it). */
static void seen_set(store *s, const char *user, uint64_t at)
{
    store_req *r = store_req_new(STORE_SEEN_SET);
    r->tenant_id = "t";
    r->user_id = user;
    r->at = at;
    store_submit(s, r);
}

/* SEEN_GET of ann, bob, cat and a user that does not exist, in order. */
static void seen_get(store *s, uint64_t want[4])
{
    const char *users[] = {"ann", "bob", "cat", "nobody"};
    store_req *r = store_req_new(STORE_SEEN_GET);
    r->tenant_id = "t";
    r->users = users;
    r->n_users = 4;
    assert_int_equal(store_call(s, r), PL_OK);
    for (int i = 0; i < 4; i++) assert_int_equal(r->seen_out[i], want[i]);
    store_req_free(r);
}

static uint64_t friend_seen(store *s, const char *user, const char *other)
{
    store_req *r = store_req_new(STORE_FRIEND_LIST);
    r->tenant_id = "t";
    r->user_id = user;
    assert_int_equal(store_call(s, r), PL_OK);
    uint64_t seen = UINT64_MAX;
    for (size_t i = 0; i < r->n_friends_out; i++)
        if (!strcmp(r->friends_out[i].user, other)) seen = r->friends_out[i].last_seen;
    store_req_free(r);
    return seen;
}

/* Last seen: written without an answer, read back by SEEN_GET and with each
 * friend (not with open requests), later writes win, kept across a reopen. */
static void test_last_seen(void **state)
{
    fixture *f = *state;
    seen_get(f->s, (uint64_t[4]){0, 0, 0, 0});
    seen_set(f->s, "bob", 1000);
    seen_set(f->s, "cat", 2000);
    seen_set(f->s, "bob", 1500);
    seen_get(f->s, (uint64_t[4]){0, 1500, 2000, 0});
    friend(f->s, "ann", "bob", "request", PL_OK, "request", 0, 1);
    assert_int_equal(friend_seen(f->s, "ann", "bob"), 0); /* only a request yet */
    friend(f->s, "bob", "ann", "accept", PL_OK, "accept", 2, 1);
    friend(f->s, "cat", "ann", "request", PL_OK, "request", 0, 2);
    assert_int_equal(friend_seen(f->s, "ann", "bob"), 1500);
    assert_int_equal(friend_seen(f->s, "ann", "cat"), 0);
    assert_int_equal(friend_seen(f->s, "bob", "ann"), 0);
    store_close(f->s);
    f->s = st_open(f->dir);
    seen_get(f->s, (uint64_t[4]){0, 1500, 2000, 0});
    assert_int_equal(friend_seen(f->s, "ann", "bob"), 1500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_state_machine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_friend_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_require_friend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_seen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
