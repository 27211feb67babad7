/*
 * test_accounts.c - tenants, users, search and revoked tokens in the
 * embedded store: creation, conflicts, updates, listing, tenant isolation
 * and input validation.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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

static pl_status tenant_op(store *s, store_op op, const char *id, const char *settings,
                           const char *key_hash)
{
    store_req *r = store_req_new(op);
    r->tenant = arena_alloc(&r->arena, sizeof(*r->tenant));
    r->tenant->id = id;
    r->tenant->settings = settings;
    r->tenant->key_hash = key_hash;
    pl_status st = store_call(s, r);
    if (op == STORE_TENANT_CREATE && st == PL_OK) assert_true(r->tenant->created_at > 0);
    store_req_free(r);
    return st;
}

static void test_tenants(void **state)
{
    store *s = ((fixture *)*state)->s;
    assert_int_equal(tenant_op(s, STORE_TENANT_CREATE, "beta", "{}", "h1"), PL_OK);
    assert_int_equal(tenant_op(s, STORE_TENANT_CREATE, "alpha", "{\"x\":1}", "h2"), PL_OK);
    assert_int_equal(tenant_op(s, STORE_TENANT_CREATE, "beta", "{}", "h3"), PL_CONFLICT);
    assert_int_equal(tenant_op(s, STORE_TENANT_UPDATE, "gamma", "{}", NULL), PL_NOT_FOUND);
    assert_int_equal(tenant_op(s, STORE_TENANT_UPDATE, "beta", "{\"open\":true}", NULL), PL_OK);
    assert_int_equal(tenant_op(s, STORE_TENANT_CREATE, "", "{}", NULL), PL_BAD_REQUEST);

    store_req *r = store_req_new(STORE_TENANT_LIST);
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_tenants, 2);
    assert_string_equal(r->tenants[0].id, "alpha");
    assert_string_equal(r->tenants[0].settings, "{\"x\":1}");
    assert_string_equal(r->tenants[0].key_hash, "h2");
    assert_string_equal(r->tenants[1].id, "beta");
    /* The update changed the settings and kept the key hash. */
    assert_string_equal(r->tenants[1].settings, "{\"open\":true}");
    assert_string_equal(r->tenants[1].key_hash, "h1");
    assert_true(r->tenants[1].created_at > 0);
    store_req_free(r);
}

static store_req *user_get(store *s, const char *tenant, const char *id)
{
    store_req *r = store_req_new(STORE_USER_GET);
    r->tenant_id = tenant;
    r->user_id = id;
    store_call(s, r);
    return r;
}

static void test_users(void **state)
{
    store *s = ((fixture *)*state)->s;
    assert_int_equal(st_user_create(s, "t1", "alice", "Alice"), PL_OK);
    assert_int_equal(st_user_create(s, "t1", "alice", "Other"), PL_CONFLICT);
    /* Same id in another tenant is another user. */
    assert_int_equal(st_user_create(s, "t2", "alice", "Alice Two"), PL_OK);

    store_req *r = user_get(s, "t1", "alice");
    assert_int_equal(r->status, PL_OK);
    assert_string_equal(r->user->id, "alice");
    assert_string_equal(r->user->name, "Alice");
    assert_null(r->user->pwhash);
    assert_false(r->user->banned);
    uint64_t created = r->user->created_at;
    assert_true(created > 0);
    store_req_free(r);

    r = user_get(s, "t1", "bob");
    assert_int_equal(r->status, PL_NOT_FOUND);
    store_req_free(r);
    r = user_get(s, "t3", "alice");
    assert_int_equal(r->status, PL_NOT_FOUND);
    store_req_free(r);

    /* Update: new name and hash, banned; NULL fields keep their values. */
    r = store_req_new(STORE_USER_UPDATE);
    r->tenant_id = "t1";
    r->user = arena_alloc(&r->arena, sizeof(*r->user));
    r->user->id = "alice";
    r->user->name = "Alicia";
    r->user->pwhash = "$argon2id$x";
    r->user->banned = true;
    assert_int_equal(store_call(s, r), PL_OK);
    r->user->name = NULL;
    r->user->pwhash = NULL;
    assert_int_equal(store_call(s, r), PL_OK);
    r->user->id = "nobody";
    assert_int_equal(store_call(s, r), PL_NOT_FOUND);
    store_req_free(r);

    r = user_get(s, "t1", "alice");
    assert_int_equal(r->status, PL_OK);
    assert_string_equal(r->user->name, "Alicia");
    assert_string_equal(r->user->pwhash, "$argon2id$x");
    assert_true(r->user->banned);
    assert_int_equal(r->user->created_at, created);
    store_req_free(r);
    r = user_get(s, "t2", "alice");
    assert_string_equal(r->user->name, "Alice Two");
    store_req_free(r);
}

static store_req *search(store *s, const char *tenant, const char *q, uint32_t limit)
{
    store_req *r = store_req_new(STORE_USER_SEARCH);
    r->tenant_id = tenant;
    r->query = q;
    r->limit = limit;
    assert_int_equal(store_call(s, r), PL_OK);
    return r;
}

static void test_search(void **state)
{
    store *s = ((fixture *)*state)->s;
    assert_int_equal(st_user_create(s, "t", "zed", "Anna Zed"), PL_OK);
    assert_int_equal(st_user_create(s, "t", "ann", "Someone"), PL_OK);
    assert_int_equal(st_user_create(s, "t", "anna", NULL), PL_OK);
    assert_int_equal(st_user_create(s, "t", "bob", "ANNIKA"), PL_OK);
    assert_int_equal(st_user_create(s, "t", "carl", "Carl"), PL_OK);
    /* Tenant "t2" and a user of tenant "t" whose id starts like it must not
     * leak into each other's results. */
    assert_int_equal(st_user_create(s, "t2", "annx", "Anne"), PL_OK);

    store_req *r = search(s, "t", "ann", 0);
    assert_int_equal(r->n_users_out, 4);
    assert_string_equal(r->users_out[0].id, "ann");
    assert_string_equal(r->users_out[1].id, "anna");
    assert_string_equal(r->users_out[2].id, "bob");  /* name ANNIKA */
    assert_string_equal(r->users_out[3].id, "zed");  /* name Anna Zed */
    assert_string_equal(r->users_out[3].name, "Anna Zed");
    store_req_free(r);

    r = search(s, "t", "ann", 2);
    assert_int_equal(r->n_users_out, 2);
    assert_string_equal(r->users_out[0].id, "ann");
    assert_string_equal(r->users_out[1].id, "anna");
    store_req_free(r);

    r = search(s, "t", "CAR", 0);  /* names are case-insensitive */
    assert_int_equal(r->n_users_out, 1);
    assert_string_equal(r->users_out[0].id, "carl");
    store_req_free(r);

    r = search(s, "t", "xyz", 0);
    assert_int_equal(r->n_users_out, 0);
    store_req_free(r);

    r = search(s, "t", "", 0);  /* everyone, by id */
    assert_int_equal(r->n_users_out, 5);
    assert_string_equal(r->users_out[0].id, "ann");
    assert_string_equal(r->users_out[4].id, "zed");
    store_req_free(r);

    /* A renamed user is found by the new name only. */
    r = store_req_new(STORE_USER_UPDATE);
    r->tenant_id = "t";
    r->user = arena_alloc(&r->arena, sizeof(*r->user));
    r->user->id = "carl";
    r->user->name = "Karl";
    assert_int_equal(store_call(s, r), PL_OK);
    store_req_free(r);
    r = search(s, "t", "car", 0);
    assert_int_equal(r->n_users_out, 1); /* the id still matches */
    store_req_free(r);
    r = search(s, "t", "kar", 0);
    assert_int_equal(r->n_users_out, 1);
    assert_string_equal(r->users_out[0].name, "Karl");
    store_req_free(r);
    r = search(s, "t", "Carl", 0);
    assert_int_equal(r->n_users_out, 0);
    store_req_free(r);
}

static void test_bad_ids(void **state)
{
    store *s = ((fixture *)*state)->s;
    char longid[300];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = 0;
    assert_int_equal(st_user_create(s, "t", longid, NULL), PL_BAD_REQUEST);
    assert_int_equal(st_user_create(s, "t", "", NULL), PL_BAD_REQUEST);
    assert_int_equal(st_user_create(s, NULL, "x", NULL), PL_BAD_REQUEST);
    assert_int_equal(st_user_create(s, "", "x", NULL), PL_BAD_REQUEST);
    store_req *r = store_req_new(STORE_OP_COUNT);
    assert_int_equal(store_call(s, r), PL_BAD_REQUEST);
    store_req_free(r);
}

static pl_status revoke_token(store *s, const char *jti, uint64_t expires_at)
{
    store_req *r = store_req_new(STORE_TOKEN_REVOKE);
    r->revoked = arena_alloc(&r->arena, sizeof(*r->revoked));
    r->revoked->jti = jti;
    r->revoked->expires_at = expires_at;
    pl_status st = store_call(s, r);
    store_req_free(r);
    return st;
}

static void test_tokens(void **state)
{
    store *s = ((fixture *)*state)->s;
    uint64_t now = clock_wall_ms();
    assert_int_equal(revoke_token(s, "j1", now + 3600000), PL_OK);
    assert_int_equal(revoke_token(s, "j0", now - 1000), PL_OK);  /* already expired */
    assert_int_equal(revoke_token(s, "j2", now + 60000), PL_OK);
    assert_int_equal(revoke_token(s, "", now), PL_BAD_REQUEST);

    for (int round = 0; round < 2; round++) {  /* the second sees the purge */
        store_req *r = store_req_new(STORE_TOKEN_LIST);
        assert_int_equal(store_call(s, r), PL_OK);
        assert_int_equal(r->n_revoked, 2);
        assert_string_equal(r->revoked_out[0].jti, "j1");
        assert_int_equal(r->revoked_out[0].expires_at, now + 3600000);
        assert_string_equal(r->revoked_out[1].jti, "j2");
        store_req_free(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
