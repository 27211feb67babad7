/*
 * test_groups.c - groups and channels in the embedded store: create, get,
 * update, disband; adding, removing and promoting members, paged member
 * lists; the member limit (also across two adds in one batch); group
 * messages (recipients from membership, gapless inbox numbers per member,
 * who may post) and channel messages (no inbox entries, read by seq);
 * writes of one batch seeing each other's membership changes; a user's
 * groups and channel search; a 100,000-member bulk add (timed); and
 * everything still there after a reopen.
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

static const char *USERS[] = {"ann", "bob", "cat", "dan", "eve", "fay", NULL};

static int setup(void **state)
{
    fixture *f = PL_NEW(fixture);
    f->dir = st_dir_new();
    f->s = st_open(f->dir);
    for (int i = 0; USERS[i]; i++) assert_int_equal(st_user_create(f->s, "t", USERS[i], NULL), PL_OK);
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

static store_req *group_get(store *s, const char *id, pl_status want)
{
    store_req *r = store_req_new(STORE_GROUP_GET);
    r->tenant_id = "t";
    r->group_id = id;
    assert_int_equal(store_call(s, r), want);
    return r;
}

static store_req *member_get(store *s, const char *group, const char *user)
{
    store_req *r = store_req_new(STORE_MEMBER_GET);
    r->tenant_id = "t";
    r->group_id = group;
    r->user_id = user;
    store_call(s, r);
    return r;
}

/* The role of user in group, "-" if not a member, "!" if no group. */
static const char *role_of(store *s, const char *group, const char *user, char buf[16])
{
    store_req *r = member_get(s, group, user);
    if (r->status != PL_OK) snprintf(buf, 16, "!");
    else snprintf(buf, 16, "%s", r->member ? r->member->role : "-");
    store_req_free(r);
    return buf;
}

static pl_status members_call(store *s, store_op op, const char *group, const char **users,
                              const char *role, uint32_t limit, uint64_t *useqs_out)
{
    store_req *r = st_members_req(op, "t", group, users);
    r->role = role;
    r->limit = limit;
    pl_status st = store_call(s, r);
    if (st == PL_OK && useqs_out)
        for (size_t i = 0; i < r->n_users; i++) useqs_out[i] = r->useqs[i];
    store_req_free(r);
    return st;
}

/* The last inbox entry of user (an event), checked against kind and group. */
static void last_event_is(store *s, const char *user, const char *kind, const char *group,
                          const char *by)
{
    uint64_t head = st_inbox_head(s, "t", user);
    assert_true(head > 0);
    store_req *r = store_req_new(STORE_INBOX_READ);
    r->tenant_id = "t";
    r->user_id = user;
    r->after = head - 1;
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_entries, 1);
    assert_non_null(r->entries[0].event);
    assert_string_equal(r->entries[0].event->kind, kind);
    assert_string_equal(r->entries[0].event->group, group);
    char conv[64];
    snprintf(conv, sizeof(conv), "g:%s", group);
    assert_string_equal(r->entries[0].event->conv, conv);
    if (by) assert_string_equal(r->entries[0].event->user, by);
    assert_true(r->entries[0].event->ts > 0);
    store_req_free(r);
}

static void test_create_get_update_disband(void **state)
{
    store *s = ((fixture *)*state)->s;
    const char *ab[] = {"ann", "bob", NULL};
    store_req *r = st_group_create_req("t", "g1", "group", "Hikers", ab);
    r->group->admins_post_only = false;
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->group->members, 2);
    assert_true(r->group->created_at > 0);
    assert_int_equal(r->useqs[0], 1);
    assert_int_equal(r->useqs[1], 1);
    uint64_t created = r->group->created_at;
    store_req_free(r);
    last_event_is(s, "bob", "group_joined", "g1", "ann");
    last_event_is(s, "ann", "group_joined", "g1", "ann");

    r = group_get(s, "g1", PL_OK);
    assert_string_equal(r->group->id, "g1");
    assert_string_equal(r->group->name, "Hikers");
    assert_string_equal(r->group->kind, "group");
    assert_string_equal(r->group->owner, "ann");
    assert_false(r->group->admins_post_only);
    assert_false(r->group->disbanded);
    assert_int_equal(r->group->created_at, created);
    assert_int_equal(r->group->members, 2);
    assert_int_equal(r->group->last_seq, 0);
    store_req_free(r);
    char buf[16];
    assert_string_equal(role_of(s, "g1", "ann", buf), "owner");
    assert_string_equal(role_of(s, "g1", "bob", buf), "member");
    assert_string_equal(role_of(s, "g1", "cat", buf), "-");
    assert_string_equal(role_of(s, "nope", "ann", buf), "!");

    /* Refusals write nothing. */
    assert_int_equal(st_group_create(s, "t", "g1", "group", "x", ab), PL_CONFLICT);
    const char *ghost[] = {"ann", "ghost", NULL};
    assert_int_equal(st_group_create(s, "t", "g2", "group", "x", ghost), PL_NOT_FOUND);
    store_req_free(group_get(s, "g2", PL_NOT_FOUND));
    const char *notowner[] = {"bob", "ann", NULL};
    r = st_group_create_req("t", "g2", "group", "x", notowner);
    r->group->owner = "ann";
    assert_int_equal(store_call(s, r), PL_BAD_REQUEST);
    store_req_free(r);
    assert_int_equal(st_group_create(s, "t", "g2", "club", "x", ab), PL_BAD_REQUEST);
    r = st_group_create_req("t", "g2", "group", "x", USERS);
    r->limit = 5;
    assert_int_equal(store_call(s, r), PL_TOO_LARGE);
    store_req_free(r);
    store_req_free(group_get(s, "g2", PL_NOT_FOUND));
    assert_int_equal(st_inbox_head(s, "t", "cat"), 0);
    assert_int_equal(st_inbox_head(s, "t", "ann"), 1);
    /* Repeats count once (also the owner's). */
    const char *twice[] = {"ann", "cat", "cat", "ann", NULL};
    r = st_group_create_req("t", "g3", "group", "x", twice);
    r->limit = 2;
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->group->members, 2);
    assert_int_equal(r->useqs[0], 2);
    assert_int_equal(r->useqs[1], 1);
    assert_int_equal(r->useqs[2], 0);
    assert_int_equal(r->useqs[3], 0);
    store_req_free(r);
    assert_string_equal(role_of(s, "g3", "ann", buf), "owner");
    assert_string_equal(role_of(s, "g3", "cat", buf), "member");
    /* The same id in another tenant is another group. */
    assert_int_equal(st_user_create(s, "t2", "ann", NULL), PL_OK);
    const char *a2[] = {"ann", NULL};
    assert_int_equal(st_group_create(s, "t2", "g1", "channel", "x", a2), PL_OK);

    /* Update: name and admins_post_only. */
    r = store_req_new(STORE_GROUP_UPDATE);
    r->tenant_id = "t";
    r->group = arena_alloc(&r->arena, sizeof(*r->group));
    r->group->id = "g1";
    r->group->name = "Climbers";
    r->group->admins_post_only = true;
    assert_int_equal(store_call(s, r), PL_OK);
    r->group->id = "g404";
    assert_int_equal(store_call(s, r), PL_NOT_FOUND);
    store_req_free(r);
    r = group_get(s, "g1", PL_OK);
    assert_string_equal(r->group->name, "Climbers");
    assert_true(r->group->admins_post_only);
    store_req_free(r);
    r = store_req_new(STORE_GROUP_UPDATE); /* NULL name keeps it */
    r->tenant_id = "t";
    r->group = arena_alloc(&r->arena, sizeof(*r->group));
    r->group->id = "g1";
    assert_int_equal(store_call(s, r), PL_OK);
    store_req_free(r);
    r = group_get(s, "g1", PL_OK);
    assert_string_equal(r->group->name, "Climbers");
    assert_false(r->group->admins_post_only);
    store_req_free(r);

    /* Disband. */
    r = store_req_new(STORE_GROUP_DISBAND);
    r->tenant_id = "t";
    r->group_id = "g1";
    r->event = arena_alloc(&r->arena, sizeof(*r->event));
    r->event->kind = "group_disbanded";
    r->event->user = "ann";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_users_out, 2);
    assert_string_equal(r->users_out[0].id, "ann");
    assert_string_equal(r->users_out[1].id, "bob");
    assert_int_equal(r->useqs[0], 3); /* ann also joined g3 */
    assert_int_equal(r->useqs[1], 2);
    assert_int_equal(store_call(s, r), PL_NOT_FOUND); /* twice */
    store_req_free(r);
    last_event_is(s, "bob", "group_disbanded", "g1", "ann");
    store_req_free(group_get(s, "g1", PL_NOT_FOUND));
    assert_string_equal(role_of(s, "g1", "ann", buf), "!");
    assert_int_equal(st_group_create(s, "t", "g1", "group", "again", ab), PL_CONFLICT);
    const char *cat[] = {"cat", NULL};
    assert_int_equal(members_call(s, STORE_MEMBER_ADD, "g1", cat, NULL, 0, NULL), PL_NOT_FOUND);
    r = store_req_new(STORE_USER_GROUPS);
    r->tenant_id = "t";
    r->user_id = "bob";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_groups_out, 0);
    store_req_free(r);
    /* The other tenant's g1 is untouched. */
    r = store_req_new(STORE_GROUP_GET);
    r->tenant_id = "t2";
    r->group_id = "g1";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_string_equal(r->group->kind, "channel");
    store_req_free(r);
}

static store_req *member_list(store *s, const char *group, const char *after, uint32_t limit)
{
    store_req *r = store_req_new(STORE_MEMBER_LIST);
    r->tenant_id = "t";
    r->group_id = group;
    r->query = after;
    r->limit = limit;
    store_call(s, r);
    return r;
}

static void test_members(void **state)
{
    store *s = ((fixture *)*state)->s;
    const char *ab[] = {"ann", "bob", NULL};
    assert_int_equal(st_group_create(s, "t", "g", "group", "G", ab), PL_OK);
    char buf[16];

    /* Add: new ones get an event, members and repeats get 0. */
    const char *add[] = {"cat", "bob", "dan", "cat", NULL};
    uint64_t useqs[4];
    store_req *r = st_members_req(STORE_MEMBER_ADD, "t", "g", add);
    r->role = "admin";
    r->event = arena_alloc(&r->arena, sizeof(*r->event));
    r->event->kind = "group_joined";
    r->event->user = "ann";
    assert_int_equal(store_call(s, r), PL_OK);
    memcpy(useqs, r->useqs, sizeof(useqs));
    assert_int_equal(useqs[0], 1);
    assert_int_equal(useqs[1], 0);
    assert_int_equal(useqs[2], 1);
    assert_int_equal(useqs[3], 0);
    assert_non_null(r->group);
    assert_int_equal(r->group->members, 4);
    store_req_free(r);
    last_event_is(s, "dan", "group_joined", "g", "ann");
    assert_int_equal(st_inbox_head(s, "t", "bob"), 1);
    assert_string_equal(role_of(s, "g", "cat", buf), "admin");
    r = member_get(s, "g", "dan");
    assert_int_equal(r->status, PL_OK);
    assert_string_equal(r->member->user, "dan");
    assert_true(r->member->joined_at > 0);
    assert_int_equal(r->group->members, 4);
    store_req_free(r);

    /* Refused adds change nothing. */
    const char *ghost[] = {"eve", "ghost", NULL};
    assert_int_equal(members_call(s, STORE_MEMBER_ADD, "g", ghost, NULL, 0, NULL), PL_NOT_FOUND);
    assert_string_equal(role_of(s, "g", "eve", buf), "-");
    const char *eve[] = {"eve", NULL};
    assert_int_equal(members_call(s, STORE_MEMBER_ADD, "g", eve, "owner", 0, NULL), PL_BAD_REQUEST);
    assert_int_equal(members_call(s, STORE_MEMBER_ADD, "nope", eve, NULL, 0, NULL), PL_NOT_FOUND);

    /* Roles. */
    r = store_req_new(STORE_MEMBER_ROLE);
    r->tenant_id = "t";
    r->group_id = "g";
    r->user_id = "cat";
    r->role = "member";
    assert_int_equal(store_call(s, r), PL_OK);
    r->user_id = "bob";
    r->role = "admin";
    assert_int_equal(store_call(s, r), PL_OK);
    r->user_id = "ann";
    assert_int_equal(store_call(s, r), PL_FORBIDDEN);
    r->user_id = "eve";
    assert_int_equal(store_call(s, r), PL_NOT_FOUND);
    r->user_id = "bob";
    r->role = "owner";
    assert_int_equal(store_call(s, r), PL_BAD_REQUEST);
    store_req_free(r);
    assert_string_equal(role_of(s, "g", "cat", buf), "member");
    assert_string_equal(role_of(s, "g", "bob", buf), "admin");
    assert_string_equal(role_of(s, "g", "ann", buf), "owner");

    /* Remove: never the owner; non-members get 0. */
    const char *rm[] = {"ann", "cat", "eve", "dan", NULL};
    r = st_members_req(STORE_MEMBER_REMOVE, "t", "g", rm);
    r->event = arena_alloc(&r->arena, sizeof(*r->event));
    r->event->kind = "group_removed";
    r->event->user = "bob";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->useqs[0], 0);
    assert_int_equal(r->useqs[1], 2);
    assert_int_equal(r->useqs[2], 0);
    assert_int_equal(r->useqs[3], 2);
    store_req_free(r);
    last_event_is(s, "cat", "group_removed", "g", "bob");
    assert_string_equal(role_of(s, "g", "cat", buf), "-");
    assert_string_equal(role_of(s, "g", "ann", buf), "owner");
    r = group_get(s, "g", PL_OK);
    assert_int_equal(r->group->members, 2);
    store_req_free(r);
    /* A user's groups follow. */
    r = store_req_new(STORE_USER_GROUPS);
    r->tenant_id = "t";
    r->user_id = "cat";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_groups_out, 0);
    store_req_free(r);

    /* Paging through 250 more members. */
    st_users_bulk(s, "t", "m%03zu", 250);
    const char *many[251];
    char names[250][8];
    for (int i = 0; i < 250; i++) {
        snprintf(names[i], sizeof(names[i]), "m%03d", 249 - i); /* any order */
        many[i] = names[i];
    }
    many[250] = NULL;
    assert_int_equal(members_call(s, STORE_MEMBER_ADD, "g", many, NULL, 0, NULL), PL_OK);
    const char *after = NULL;
    char last[16] = "";
    size_t seen = 0;
    int pages = 0;
    for (bool more = true; more; pages++) {
        r = member_list(s, "g", after, 100);
        assert_int_equal(r->status, PL_OK);
        for (size_t i = 0; i < r->n_members_out; i++) {
            assert_true(strcmp(r->members_out[i].user, last) > 0);
            snprintf(last, sizeof(last), "%s", r->members_out[i].user);
            if (strcmp(last, "ann") == 0) assert_string_equal(r->members_out[i].role, "owner");
            if (strcmp(last, "bob") == 0) assert_string_equal(r->members_out[i].role, "admin");
            if (last[0] == 'm') assert_string_equal(r->members_out[i].role, "member");
            seen++;
        }
        more = r->more;
        store_req_free(r);
        after = last;
    }
    assert_int_equal(seen, 252);
    assert_int_equal(pages, 3);
    r = member_list(s, "g", "m100", 5);
    assert_int_equal(r->n_members_out, 5);
    assert_string_equal(r->members_out[0].user, "m101");
    assert_true(r->more);
    store_req_free(r);
    r = member_list(s, "g", "zzz", 5);
    assert_int_equal(r->n_members_out, 0);
    assert_false(r->more);
    store_req_free(r);
    r = member_list(s, "nope", NULL, 5);
    assert_int_equal(r->status, PL_NOT_FOUND);
    store_req_free(r);
    r = group_get(s, "g", PL_OK);
    assert_int_equal(r->group->members, 252);
    store_req_free(r);
}

static void test_limit(void **state)
{
    store *s = ((fixture *)*state)->s;
    const char *ab[] = {"ann", "bob", NULL};
    assert_int_equal(st_group_create(s, "t", "g", "group", "G", ab), PL_OK);
    const char *cde[] = {"cat", "dan", "eve", NULL};
    assert_int_equal(members_call(s, STORE_MEMBER_ADD, "g", cde, NULL, 4, NULL), PL_TOO_LARGE);
    char buf[16];
    assert_string_equal(role_of(s, "g", "cat", buf), "-");
    assert_int_equal(st_inbox_head(s, "t", "cat"), 0);
    /* Members already in do not count twice. */
    const char *bc[] = {"bob", "cat", NULL};
    assert_int_equal(members_call(s, STORE_MEMBER_ADD, "g", bc, NULL, 3, NULL), PL_OK);

    /* Two adds in one batch: the second sees the first's count. */
    const char *d[] = {"dan", NULL}, *e[] = {"eve", NULL};
    store_req *r[3];
    r[0] = st_members_req(STORE_MEMBER_ADD, "t", "g", d);
    r[0]->limit = 4;
    r[1] = st_members_req(STORE_MEMBER_ADD, "t", "g", e);
    r[1]->limit = 4;
    r[2] = store_req_new(STORE_GROUP_GET);
    r[2]->tenant_id = "t";
    r[2]->group_id = "g";
    st_one_batch(s, r, 3);
    assert_int_equal(r[0]->status, PL_OK);
    assert_int_equal(r[0]->group->members, 4);
    assert_int_equal(r[1]->status, PL_TOO_LARGE);
    assert_int_equal(r[2]->group->members, 4);
    for (int i = 0; i < 3; i++) store_req_free(r[i]);
    assert_string_equal(role_of(s, "g", "eve", buf), "-");

    /* A removal makes room again within the same batch. */
    r[0] = st_members_req(STORE_MEMBER_REMOVE, "t", "g", d);
    r[1] = st_members_req(STORE_MEMBER_ADD, "t", "g", e);
    r[1]->limit = 4;
    st_one_batch(s, r, 2);
    assert_int_equal(r[0]->status, PL_OK);
    assert_int_equal(r[1]->status, PL_OK);
    assert_int_equal(r[1]->group->members, 4);
    store_req_free(r[0]);
    store_req_free(r[1]);
    /* A limit of 0 is no bound. */
    const char *f[] = {"fay", "dan", NULL};
    assert_int_equal(members_call(s, STORE_MEMBER_ADD, "g", f, NULL, 0, NULL), PL_OK);
}

/* Post to group g and check the recipients: the sender, then the other
 * members in id order; returns the request (free it). */
static store_req *group_post(store *s, const char *g, const char *from, const char *cmid,
                             const char **want_rcpt, pl_status want)
{
    store_req *r = st_group_msg_req("t", g, from, "hello", cmid);
    assert_int_equal(store_call(s, r), want);
    if (want != PL_OK) return r;
    size_t n = 0;
    while (want_rcpt && want_rcpt[n]) n++;
    assert_int_equal(r->append.n_rcpt, n);
    for (size_t i = 0; i < n; i++) assert_string_equal(r->append.rcpt[i], want_rcpt[i]);
    return r;
}

static void test_group_append(void **state)
{
    store *s = ((fixture *)*state)->s;
    const char *abcd[] = {"ann", "bob", "cat", "dan", NULL};
    assert_int_equal(st_group_create(s, "t", "g", "group", "G", abcd), PL_OK);
    /* ann has seen 1 inbox entry (the join event), so have the others. */
    const char *from_cat[] = {"cat", "ann", "bob", "dan", NULL};
    store_req *r = group_post(s, "g", "cat", "c1", from_cat, PL_OK);
    assert_int_equal(r->append.seq, 1);
    for (int i = 0; i < 4; i++) assert_int_equal(r->append.useqs[i], 2);
    store_req_free(r);
    /* A dm of bob moves only bob's and ann's numbers. */
    const char *ab[] = {"ann", "bob", NULL};
    store_req_free(st_append(s, "t", "dm:ann:bob", "ann", "x", NULL, ab));
    const char *from_ann[] = {"ann", "bob", "cat", "dan", NULL};
    r = group_post(s, "g", "ann", NULL, from_ann, PL_OK);
    assert_int_equal(r->append.seq, 2);
    assert_int_equal(r->append.useqs[0], 4);
    assert_int_equal(r->append.useqs[1], 4);
    assert_int_equal(r->append.useqs[2], 3);
    assert_int_equal(r->append.useqs[3], 3);
    store_req_free(r);

    /* A retry with the same cmid: the original seq and the sender's useq. */
    r = st_group_msg_req("t", "g", "cat", "hello again", "c1");
    assert_int_equal(store_call(s, r), PL_OK);
    assert_true(r->append.dup);
    assert_int_equal(r->append.seq, 1);
    assert_int_equal(r->append.n_rcpt, 1);
    assert_string_equal(r->append.rcpt[0], "cat");
    assert_int_equal(r->append.useqs[0], 2);
    store_req_free(r);

    /* dan's inbox holds the group messages in order. */
    r = store_req_new(STORE_INBOX_READ);
    r->tenant_id = "t";
    r->user_id = "dan";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_entries, 3);
    assert_non_null(r->entries[1].msg);
    assert_string_equal(r->entries[1].msg->conv, "g:g");
    assert_string_equal(r->entries[1].msg->from, "cat");
    assert_int_equal(r->entries[2].msg->seq, 2);
    store_req_free(r);
    /* The sender's read position followed its message. */
    r = store_req_new(STORE_READ_GET);
    r->tenant_id = "t";
    r->user_id = "ann";
    r->conv = "g:g";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->head, 2);
    r->user_id = "bob";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->head, 0);
    store_req_free(r);

    /* Who may post. */
    store_req_free(group_post(s, "g", "eve", NULL, NULL, PL_FORBIDDEN));
    store_req_free(group_post(s, "nope", "ann", NULL, NULL, PL_NOT_FOUND));
    r = st_group_msg_req("t", "g", "ann", "x", NULL);
    r->append.conv = "g:other";
    assert_int_equal(store_call(s, r), PL_BAD_REQUEST);
    store_req_free(r);
    r = store_req_new(STORE_GROUP_UPDATE);
    r->tenant_id = "t";
    r->group = arena_alloc(&r->arena, sizeof(*r->group));
    r->group->id = "g";
    r->group->admins_post_only = true;
    assert_int_equal(store_call(s, r), PL_OK);
    store_req_free(r);
    r = store_req_new(STORE_MEMBER_ROLE);
    r->tenant_id = "t";
    r->group_id = "g";
    r->user_id = "dan";
    r->role = "admin";
    assert_int_equal(store_call(s, r), PL_OK);
    store_req_free(r);
    store_req_free(group_post(s, "g", "bob", NULL, NULL, PL_FORBIDDEN));
    const char *from_dan[] = {"dan", "ann", "bob", "cat", NULL};
    store_req_free(group_post(s, "g", "dan", NULL, from_dan, PL_OK));
    store_req_free(group_post(s, "g", "ann", NULL, from_ann, PL_OK));
    /* Nothing refused was numbered: seqs 1..4, gapless. */
    r = store_req_new(STORE_CONV_READ);
    r->tenant_id = "t";
    r->conv = "g:g";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_msgs, 4);
    assert_int_equal(r->head, 4);
    for (size_t i = 0; i < 4; i++) assert_int_equal(r->msgs[i].seq, i + 1);
    store_req_free(r);
    assert_int_equal(st_inbox_head(s, "t", "bob"), 6);
    assert_int_equal(st_inbox_head(s, "t", "eve"), 0);

    /* After removal, bob gets no more; after disband, nobody may post. */
    const char *b[] = {"bob", NULL};
    assert_int_equal(members_call(s, STORE_MEMBER_REMOVE, "g", b, NULL, 0, NULL), PL_OK);
    const char *from_ann2[] = {"ann", "cat", "dan", NULL};
    store_req_free(group_post(s, "g", "ann", NULL, from_ann2, PL_OK));
    assert_int_equal(st_inbox_head(s, "t", "bob"), 7); /* the removal event */
    store_req_free(group_post(s, "g", "bob", NULL, NULL, PL_FORBIDDEN));
    r = store_req_new(STORE_GROUP_DISBAND);
    r->tenant_id = "t";
    r->group_id = "g";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_users_out, 3);
    store_req_free(r);
    store_req_free(group_post(s, "g", "ann", NULL, NULL, PL_NOT_FOUND));
}

static void test_channel_append(void **state)
{
    store *s = ((fixture *)*state)->s;
    const char *abc[] = {"ann", "bob", "cat", NULL};
    assert_int_equal(st_group_create(s, "t", "ch", "channel", "News", abc), PL_OK);
    for (uint64_t i = 1; i <= 5; i++) {
        store_req *r = st_group_msg_req("t", "ch", i % 2 ? "bob" : "cat", "news", NULL);
        assert_int_equal(store_call(s, r), PL_OK);
        assert_int_equal(r->append.seq, i);
        assert_int_equal(r->append.n_rcpt, 0);
        assert_null(r->append.useqs);
        store_req_free(r);
    }
    /* No inbox entries beyond the join event. */
    assert_int_equal(st_inbox_head(s, "t", "ann"), 1);
    assert_int_equal(st_inbox_head(s, "t", "bob"), 1);
    store_req *r = store_req_new(STORE_CONV_READ);
    r->tenant_id = "t";
    r->conv = "g:ch";
    r->after = 2;
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->head, 5);
    assert_int_equal(r->n_msgs, 3);
    assert_int_equal(r->msgs[0].seq, 3);
    assert_string_equal(r->msgs[0].from, "bob");
    store_req_free(r);
    /* A retry of a channel message. */
    r = st_group_msg_req("t", "ch", "bob", "n", "k1");
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->append.seq, 6);
    assert_int_equal(store_call(s, r), PL_OK);
    assert_true(r->append.dup);
    assert_int_equal(r->append.seq, 6);
    assert_int_equal(r->append.n_rcpt, 0);
    store_req_free(r);

    /* Non-members may not post until they join; posting can be restricted. */
    r = st_group_msg_req("t", "ch", "dan", "hi", NULL);
    assert_int_equal(store_call(s, r), PL_FORBIDDEN);
    const char *d[] = {"dan", NULL};
    assert_int_equal(members_call(s, STORE_MEMBER_ADD, "ch", d, NULL, 0, NULL), PL_OK);
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->append.seq, 7);
    store_req_free(r);
    r = store_req_new(STORE_GROUP_UPDATE);
    r->tenant_id = "t";
    r->group = arena_alloc(&r->arena, sizeof(*r->group));
    r->group->id = "ch";
    r->group->admins_post_only = true;
    assert_int_equal(store_call(s, r), PL_OK);
    store_req_free(r);
    r = st_group_msg_req("t", "ch", "dan", "hi", NULL);
    assert_int_equal(store_call(s, r), PL_FORBIDDEN);
    r->append.from = "ann";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->append.seq, 8);
    store_req_free(r);
    r = group_get(s, "ch", PL_OK);
    assert_int_equal(r->group->last_seq, 8);
    assert_int_equal(r->group->members, 4);
    store_req_free(r);
}

/* Membership changes and messages in one batch see each other, and the
 * member cache never serves a stale list. */
static void test_batch_visibility(void **state)
{
    store *s = ((fixture *)*state)->s;
    const char *ab[] = {"ann", "bob", NULL};
    assert_int_equal(st_group_create(s, "t", "g", "group", "G", ab), PL_OK);
    const char *from_ann[] = {"ann", "bob", NULL};
    store_req_free(group_post(s, "g", "ann", NULL, from_ann, PL_OK)); /* cached now */

    const char *c[] = {"cat", NULL}, *b[] = {"bob", NULL}, *ac[] = {"ann", "cat", NULL};
    const char *dn[] = {"dan", "new", NULL};
    store_req *r[9];
    r[0] = st_group_msg_req("t", "g", "ann", "1", NULL);
    r[1] = st_members_req(STORE_MEMBER_ADD, "t", "g", c);
    r[2] = st_group_msg_req("t", "g", "cat", "2", NULL);
    r[3] = st_members_req(STORE_MEMBER_REMOVE, "t", "g", b);
    r[4] = st_group_msg_req("t", "g", "ann", "3", NULL);
    r[5] = store_req_new(STORE_USER_CREATE); /* a user created in the batch */
    r[5]->tenant_id = "t";
    r[5]->user = arena_alloc(&r[5]->arena, sizeof(*r[5]->user));
    r[5]->user->id = "new";
    r[6] = st_group_create_req("t", "g2", "group", "G2", dn);
    r[7] = st_group_msg_req("t", "g2", "new", "4", NULL);
    r[8] = store_req_new(STORE_GROUP_DISBAND);
    r[8]->tenant_id = "t";
    r[8]->group_id = "g";
    st_one_batch(s, r, 9);
    for (int i = 0; i < 9; i++) assert_int_equal(r[i]->status, PL_OK);
    assert_int_equal(r[0]->append.n_rcpt, 2);
    assert_int_equal(r[2]->append.n_rcpt, 3);
    assert_string_equal(r[2]->append.rcpt[0], "cat");
    assert_int_equal(r[2]->append.useqs[0], 2); /* cat: join event, message */
    assert_int_equal(r[4]->append.n_rcpt, 2);
    for (size_t i = 0; i < 2; i++) assert_string_equal(r[4]->append.rcpt[i], ac[i]);
    assert_int_equal(r[4]->append.seq, 4);
    assert_int_equal(r[7]->append.n_rcpt, 2);
    assert_string_equal(r[7]->append.rcpt[1], "dan");
    assert_int_equal(r[8]->n_users_out, 2); /* ann and cat, not bob */
    assert_string_equal(r[8]->users_out[1].id, "cat");
    for (int i = 0; i < 9; i++) store_req_free(r[i]);
    store_req_free(group_post(s, "g", "ann", NULL, NULL, PL_NOT_FOUND));

    /* Disband, then a message, in one batch. */
    const char *x[] = {"ann", "bob", NULL};
    assert_int_equal(st_group_create(s, "t", "g3", "group", "G3", x), PL_OK);
    r[0] = store_req_new(STORE_GROUP_DISBAND);
    r[0]->tenant_id = "t";
    r[0]->group_id = "g3";
    r[1] = st_group_msg_req("t", "g3", "ann", "late", NULL);
    r[2] = st_members_req(STORE_MEMBER_ADD, "t", "g3", c);
    st_one_batch(s, r, 3);
    assert_int_equal(r[0]->status, PL_OK);
    assert_int_equal(r[1]->status, PL_NOT_FOUND);
    assert_int_equal(r[2]->status, PL_NOT_FOUND);
    for (int i = 0; i < 3; i++) store_req_free(r[i]);

    /* Across batches: cached, changed, reloaded. */
    const char *ab2[] = {"ann", "bob", NULL};
    assert_int_equal(st_group_create(s, "t", "g4", "group", "G4", ab2), PL_OK);
    store_req_free(group_post(s, "g4", "ann", NULL, from_ann, PL_OK));
    assert_int_equal(members_call(s, STORE_MEMBER_ADD, "g4", c, NULL, 0, NULL), PL_OK);
    const char *abc[] = {"ann", "bob", "cat", NULL};
    store_req_free(group_post(s, "g4", "ann", NULL, abc, PL_OK));
    r[0] = store_req_new(STORE_MEMBER_ROLE);
    r[0]->tenant_id = "t";
    r[0]->group_id = "g4";
    r[0]->user_id = "bob";
    r[0]->role = "admin";
    r[1] = st_members_req(STORE_MEMBER_REMOVE, "t", "g4", c);
    st_one_batch(s, r, 2);
    store_req_free(r[0]);
    store_req_free(r[1]);
    store_req_free(group_post(s, "g4", "ann", NULL, from_ann, PL_OK));
}

static void test_user_groups_and_search(void **state)
{
    store *s = ((fixture *)*state)->s;
    const char *ab[] = {"ann", "bob", NULL}, *ba[] = {"bob", "ann", NULL}, *b[] = {"bob", NULL};
    assert_int_equal(st_group_create(s, "t", "team", "group", "Team Red", ab), PL_OK);
    assert_int_equal(st_group_create(s, "t", "news", "channel", "Daily News", ba), PL_OK);
    assert_int_equal(st_group_create(s, "t", "newbies", "channel", "Beginners", b), PL_OK);
    assert_int_equal(st_group_create(s, "t", "nest", "group", "News of the nest", b), PL_OK);
    assert_int_equal(st_group_create(s, "t", "zoo", "channel", "NEWSROOM", b), PL_OK);
    store_req_free(st_append(s, "t", "g:news", "bob", "x", NULL, NULL)); /* not checked here */
    store_req *m = st_group_msg_req("t", "news", "bob", "y", NULL);
    assert_int_equal(store_call(s, m), PL_OK);
    store_req_free(m);

    store_req *r = store_req_new(STORE_USER_GROUPS);
    r->tenant_id = "t";
    r->user_id = "ann";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_groups_out, 2);
    assert_string_equal(r->groups_out[0].id, "news");
    assert_string_equal(r->groups_out[0].kind, "channel");
    assert_string_equal(r->groups_out[0].role, "member");
    assert_string_equal(r->groups_out[0].name, "Daily News");
    assert_int_equal(r->groups_out[0].last_seq, 2);
    assert_string_equal(r->groups_out[1].id, "team");
    assert_string_equal(r->groups_out[1].role, "owner");
    assert_int_equal(r->groups_out[1].last_seq, 0);
    assert_int_equal(r->groups_out[1].members, 2);
    store_req_free(r);

    /* Search: channels only, by id prefix or name prefix (any case). */
    r = store_req_new(STORE_GROUP_SEARCH);
    r->tenant_id = "t";
    r->query = "new";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_groups_out, 3);
    assert_string_equal(r->groups_out[0].id, "newbies");
    assert_string_equal(r->groups_out[1].id, "news");
    assert_string_equal(r->groups_out[2].id, "zoo");
    assert_int_equal(r->groups_out[1].last_seq, 2);
    r->query = "DAILY n";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_groups_out, 1);
    assert_string_equal(r->groups_out[0].id, "news");
    r->query = "team";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_groups_out, 0);
    r->query = "";
    r->limit = 2;
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_groups_out, 2);
    assert_string_equal(r->groups_out[0].id, "newbies");
    store_req_free(r);

    /* A rename moves the name index; a disband removes the channel. */
    r = store_req_new(STORE_GROUP_UPDATE);
    r->tenant_id = "t";
    r->group = arena_alloc(&r->arena, sizeof(*r->group));
    r->group->id = "zoo";
    r->group->name = "Animals";
    assert_int_equal(store_call(s, r), PL_OK);
    store_req_free(r);
    r = store_req_new(STORE_GROUP_DISBAND);
    r->tenant_id = "t";
    r->group_id = "newbies";
    assert_int_equal(store_call(s, r), PL_OK);
    store_req_free(r);
    r = store_req_new(STORE_GROUP_SEARCH);
    r->tenant_id = "t";
    r->query = "new";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_groups_out, 1);
    assert_string_equal(r->groups_out[0].id, "news");
    r->query = "anim";
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->n_groups_out, 1);
    assert_string_equal(r->groups_out[0].id, "zoo");
    assert_string_equal(r->groups_out[0].name, "Animals");
    store_req_free(r);
}

#define BULK 100000

/* One request adds 100,000 members to a channel: one write, one reply. */
static void test_bulk_add(void **state)
{
    store *s = ((fixture *)*state)->s;
    uint64_t t0 = clock_mono_ns();
    st_users_bulk(s, "t", "u%06zu", BULK);
    uint64_t t1 = clock_mono_ns();
    const char *own[] = {"ann", NULL};
    assert_int_equal(st_group_create(s, "t", "big", "channel", "Big", own), PL_OK);

    store_req *r = store_req_new(STORE_MEMBER_ADD);
    const char **users = arena_alloc(&r->arena, BULK * sizeof(*users));
    for (size_t i = 0; i < BULK; i++) {
        char id[16];
        snprintf(id, sizeof(id), "u%06zu", (i * 7919) % BULK); /* shuffled */
        users[i] = arena_strdup(&r->arena, id);
    }
    r->tenant_id = "t";
    r->group_id = "big";
    r->users = users;
    r->n_users = BULK;
    store_stats before, after;
    store_get_stats(s, &before);
    uint64_t t2 = clock_mono_ns();
    assert_int_equal(store_call(s, r), PL_OK);
    uint64_t t3 = clock_mono_ns();
    store_get_stats(s, &after);
    assert_int_equal(after.batches - before.batches, 1);
    assert_int_equal(r->group->members, BULK + 1);
    for (size_t i = 0; i < BULK; i++) assert_int_equal(r->useqs[i], 1);
    /* Again: all are members, nothing is written. */
    uint64_t t4 = clock_mono_ns();
    assert_int_equal(store_call(s, r), PL_OK);
    uint64_t t5 = clock_mono_ns();
    for (size_t i = 0; i < BULK; i++) assert_int_equal(r->useqs[i], 0);
    store_req_free(r);
    printf("# %d users created in %.2f s; %d members added to a channel in one request in "
           "%.2f s; the same request again (all members already) %.2f s\n",
           BULK, (double)(t1 - t0) / 1e9, BULK, (double)(t3 - t2) / 1e9,
           (double)(t5 - t4) / 1e9);

    r = group_get(s, "big", PL_OK);
    assert_int_equal(r->group->members, BULK + 1);
    store_req_free(r);
    r = member_list(s, "big", "u049999", 3);
    assert_int_equal(r->n_members_out, 3);
    assert_string_equal(r->members_out[0].user, "u050000");
    store_req_free(r);
    r = st_group_msg_req("t", "big", "u077777", "hello everyone", NULL);
    assert_int_equal(store_call(s, r), PL_OK);
    assert_int_equal(r->append.seq, 1);
    assert_int_equal(r->append.n_rcpt, 0);
    store_req_free(r);
    assert_int_equal(st_inbox_head(s, "t", "u012345"), 1);

    /* Disbanding it reaches every member. */
    r = store_req_new(STORE_GROUP_DISBAND);
    r->tenant_id = "t";
    r->group_id = "big";
    uint64_t t6 = clock_mono_ns();
    assert_int_equal(store_call(s, r), PL_OK);
    uint64_t t7 = clock_mono_ns();
    assert_int_equal(r->n_users_out, BULK + 1);
    store_req_free(r);
    printf("# disbanding it (removing %d members, one event each) took %.2f s\n", BULK + 1,
           (double)(t7 - t6) / 1e9);
    assert_int_equal(st_inbox_head(s, "t", "u012345"), 2);
}

static void test_reopen(void **state)
{
    fixture *f = *state;
    const char *abc[] = {"ann", "bob", "cat", NULL}, *ab[] = {"ann", "bob", NULL};
    assert_int_equal(st_group_create(f->s, "t", "g", "group", "G", abc), PL_OK);
    assert_int_equal(st_group_create(f->s, "t", "ch", "channel", "Chan", ab), PL_OK);
    const char *d[] = {"dan", NULL};
    assert_int_equal(members_call(f->s, STORE_MEMBER_ADD, "g", d, "admin", 0, NULL), PL_OK);
    store_req_free(group_post(f->s, "g", "ann", NULL, (const char *[]){"ann", "bob", "cat", "dan", NULL}, PL_OK));
    store_close(f->s);

    f->s = st_open(f->dir);
    store_req *r = group_get(f->s, "g", PL_OK);
    assert_int_equal(r->group->members, 4);
    assert_int_equal(r->group->last_seq, 1);
    store_req_free(r);
    char buf[16];
    assert_string_equal(role_of(f->s, "g", "dan", buf), "admin");
    r = store_req_new(STORE_USER_GROUPS);
    r->tenant_id = "t";
    r->user_id = "bob";
    assert_int_equal(store_call(f->s, r), PL_OK);
    assert_int_equal(r->n_groups_out, 2);
    store_req_free(r);
    r = store_req_new(STORE_GROUP_SEARCH);
    r->tenant_id = "t";
    r->query = "cha";
    assert_int_equal(store_call(f->s, r), PL_OK);
    assert_int_equal(r->n_groups_out, 1);
    store_req_free(r);
    /* Numbers continue. */
    r = group_post(f->s, "g", "dan", NULL, (const char *[]){"dan", "ann", "bob", "cat", NULL}, PL_OK);
    assert_int_equal(r->append.seq, 2);
    /* dan: joined, message 1, this; ann also joined the channel; cat
     * only g. */
    assert_int_equal(r->append.useqs[0], 3);
    assert_int_equal(r->append.useqs[1], 4);
    assert_int_equal(r->append.useqs[2], 4);
    assert_int_equal(r->append.useqs[3], 3);
    store_req_free(r);
    assert_int_equal(st_group_create(f->s, "t", "g", "group", "G", abc), PL_CONFLICT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_get_update_disband, setup, teardown),
        cmocka_unit_test_setup_teardown(test_members, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_visibility, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_groups_and_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_add, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
