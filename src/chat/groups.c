/*
 * groups.c - groups and channels: create, details, join, leave, members,
 * add, remove, roles, disband, search (SPEC section 2).
 *
 * Who may do what (the store enforces membership and posting rights on
 * send; these handlers check the management calls):
 *
 *   call            user token                              tenant API key
 *   create          anyone (becomes owner)                  yes, naming `owner`
 *   info, members   channels: anyone; groups: members       yes
 *   join            channels only (groups are by invitation) no (no user)
 *   leave           members except the owner                no
 *   add             owner and admins (admins add members)   yes
 *   remove          owner: anyone but itself; admins:       yes, except the owner
 *                   plain members
 *   role            owner                                   yes
 *   disband         owner                                   yes
 *
 * A private group answers not_found to non-members, so its existence does
 * not leak.  Every membership change appends an inbox event to each user it
 * concerns (in the store, in the same batch) and pushes it to their online
 * devices, whose workers follow it in their topic maps (topic.c).
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "chat/chat_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/utf8.h"

#define ADD_MAX 100000
#define MEMBERS_DEFAULT 100

static void conv_of(const char *group, char *out, size_t outlen) { snprintf(out, outlen, "g:%s", group); }

static Parley__Group *group_pb(arena *a, const store_group *g, const char *role)
{
    Parley__Group *p = arena_alloc(a, sizeof *p);
    parley__group__init(p);
    p->group = (char *)g->id;
    p->name = (char *)g->name;
    p->kind = (char *)g->kind;
    p->owner = (char *)g->owner;
    p->has_members = true;
    p->members = g->members;
    p->has_created_at = true;
    p->created_at = g->created_at;
    p->has_admins_post_only = true;
    p->admins_post_only = g->admins_post_only;
    p->role = (char *)(role && *role ? arena_strdup(a, role) : NULL);
    if (g->last_seq) {
        p->has_last_seq = true;
        p->last_seq = g->last_seq;
    }
    return p;
}

/* Push each user with a non-zero useq its copy of the membership event. */
static void push_events(chat_call *c, const char *kind, const char *actor, const char **users,
                        const uint64_t *useqs, size_t n)
{
    size_t k = 0;
    push_target *to = pl_calloc(n ? n : 1, sizeof *to);
    for (size_t i = 0; i < n; i++)
        if (useqs[i]) {
            to[k].user = users[i];
            to[k].useq = useqs[i];
            k++;
        }
    if (k) {
        char conv[CHAT_ID_MAX + 4];
        conv_of(c->group, conv, sizeof conv);
        Parley__Event e = PARLEY__EVENT__INIT;
        e.kind = (char *)kind;
        e.group = c->group;
        e.conv = conv;
        e.user = (char *)actor;
        e.has_ts = true;
        e.ts = clock_wall_ms();
        push_to_users(c->w, c->tenant, to, k, PARLEY__FRAME__BODY_EVENT, &e.base, 0);
    }
    pl_free(to);
}

static store_event *new_event(store_req *r, const char *kind, const char *actor, const char *group)
{
    store_event *e = arena_alloc(&r->arena, sizeof *e);
    char conv[CHAT_ID_MAX + 4];
    conv_of(group, conv, sizeof conv);
    e->kind = kind;
    e->user = arena_strdup(&r->arena, actor);
    e->group = arena_strdup(&r->arena, group);
    e->conv = arena_strdup(&r->arena, conv);
    e->ts = clock_wall_ms();
    return e;
}

static bool is_manager(const chat_call *c) { return !strcmp(c->role, "owner") || !strcmp(c->role, "admin"); }

/* ---- the membership step most calls begin with ---- */

typedef void (*member_next)(chat_call *c, store_req *r);

static void member_got(chat_call *c, store_req *r)
{
    if (r->status == PL_NOT_FOUND) {
        call_err(c, PL_NOT_FOUND, "no such group");
        return;
    }
    if (r->status) {
        call_err(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    snprintf(c->kind, sizeof c->kind, "%s", r->group->kind);
    snprintf(c->role, sizeof c->role, "%s", r->member ? r->member->role : "");
    /* A private group is invisible to those outside it. */
    if (!strcmp(c->kind, "group") && !r->member && c->auth != AUTH_APIKEY) {
        call_err(c, PL_NOT_FOUND, "no such group");
        return;
    }
    c->next_r(c, r);
}

/* Load the group and the caller's membership, then run next. */
static void with_member(chat_call *c, const char *group, member_next next)
{
    if (!chat_valid_id(group)) {
        call_err(c, PL_NOT_FOUND, "no such group");
        return;
    }
    snprintf(c->group, sizeof c->group, "%s", group);
    c->next_r = next;
    /* An API-key call is no member of anything: the group alone. */
    bool user = c->auth == AUTH_USER;
    store_req *r = call_store(c, user ? STORE_MEMBER_GET : STORE_GROUP_GET, member_got);
    r->group_id = arena_strdup(&r->arena, group);
    if (user) r->user_id = arena_strdup(&r->arena, c->user);
    call_submit(c, r);
}

/* ---- create ---- */

static void created(chat_call *c, store_req *r)
{
    if (r->status) {
        const char *why = r->status == PL_CONFLICT    ? "a group with this id exists"
                          : r->status == PL_NOT_FOUND ? "a member does not exist"
                          : r->status == PL_TOO_LARGE ? "too many members for a group"
                                                      : "store unavailable, retry later";
        call_err(c, r->status, why);
        return;
    }
    push_events(c, "group_joined", r->users[0], r->users, r->useqs, r->n_users);
    log_event(LOG_INFO, "group_created", "tenant", c->tenant->id, "group", c->group, "kind",
              r->group->kind, "owner", r->users[0], "user", r->users[0], "device", c->device,
              "remote", c->ip, NULL);
    call_ok(c, &group_pb(&r->arena, r->group, c->auth == AUTH_USER ? "owner" : NULL)->base);
}

void h_group_create(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__GroupCreate *in = (const Parley__GroupCreate *)body;
    chat *ch = c->c;
    const char *kind = in->kind && *in->kind ? in->kind : "group";
    if (strcmp(kind, "group") && strcmp(kind, "channel")) {
        call_err(c, PL_BAD_REQUEST, "kind must be group or channel");
        return;
    }
    const char *owner = c->auth == AUTH_USER ? c->user : in->owner;
    if (!chat_valid_id(owner)) {
        call_err(c, PL_BAD_REQUEST, "an API-key call names the owner");
        return;
    }
    char id[CHAT_ID_MAX + 1];
    if (in->group && *in->group) {
        if (!chat_valid_id(in->group)) {
            call_err(c, PL_BAD_REQUEST, "group must be 1 to 64 of A-Z a-z 0-9 _ . @ -");
            return;
        }
        snprintf(id, sizeof id, "%s", in->group);
    } else {
        uint8_t raw[8];
        randombytes_buf(raw, sizeof raw);
        char hex[17];
        sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
        snprintf(id, sizeof id, "g%s", hex);
    }
    const char *name = in->name && *in->name ? in->name : id;
    long n = utf8_count((const uint8_t *)name, strlen(name));
    if (n < 0 || n > CHAT_NAME_MAX) {
        call_err(c, PL_BAD_REQUEST, "name must be at most 128 characters");
        return;
    }
    if (in->n_members > ADD_MAX) {
        call_err(c, PL_TOO_LARGE, "at most 100,000 members per call");
        return;
    }
    bool is_group = !strcmp(kind, "group");
    snprintf(c->group, sizeof c->group, "%s", id);
    store_req *r = call_store(c, STORE_GROUP_CREATE, created);
    r->group = arena_alloc(&r->arena, sizeof *r->group);
    r->group->id = arena_strdup(&r->arena, id);
    r->group->name = arena_strdup(&r->arena, name);
    r->group->kind = is_group ? "group" : "channel";
    r->group->owner = arena_strdup(&r->arena, owner);
    r->group->admins_post_only = in->has_admins_post_only && in->admins_post_only;
    r->group->created_at = clock_wall_ms();
    r->users = arena_alloc(&r->arena, (in->n_members + 1) * sizeof *r->users);
    r->users[r->n_users++] = r->group->owner;
    for (size_t i = 0; i < in->n_members; i++) {
        const char *m = in->members[i];
        if (!chat_valid_id(m)) {
            call_err(c, PL_BAD_REQUEST, "members must be user ids");
            return;
        }
        bool seen = false;
        for (size_t k = 0; k < r->n_users && !seen && r->n_users < 4096; k++)
            seen = !strcmp(r->users[k], m);
        if (!seen) r->users[r->n_users++] = arena_strdup(&r->arena, m);
    }
    r->limit = is_group ? ch->cfg.group_max_members : 0;
    if (is_group && r->n_users > ch->cfg.group_max_members) {
        call_err(c, PL_TOO_LARGE, "too many members for a group");
        return;
    }
    r->event = new_event(r, "group_joined", owner, id);
    call_submit(c, r);
}

/* ---- info ---- */

static void info_ready(chat_call *c, store_req *r)
{
    call_ok(c, &group_pb(&r->arena, r->group, c->role)->base);
}

void h_group_info(chat_call *c, const ProtobufCMessage *body)
{
    with_member(c, ((const Parley__GroupRef *)body)->group, info_ready);
}

/* ---- join and leave ---- */

static void joined(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, r->status, r->status == PL_TOO_LARGE ? "the group is full" : "cannot join");
        return;
    }
    const char *me = c->user;
    push_events(c, "group_joined", me, &me, r->useqs, 1);
    log_event(LOG_INFO, "group_joined", "tenant", c->tenant->id, "group", c->group, "user", me,
              "device", c->device, "remote", c->ip, NULL);
    call_ok(c, &group_pb(&r->arena, r->group, "member")->base);
}

static void join_checked(chat_call *c, store_req *prev)
{
    if (c->role[0]) {          /* already a member: nothing to do */
        call_ok(c, &group_pb(&prev->arena, prev->group, c->role)->base);
        return;
    }
    if (!strcmp(c->kind, "group")) {
        call_err(c, PL_FORBIDDEN, "a group is joined by invitation");
        return;
    }
    store_req *r = call_store(c, STORE_MEMBER_ADD, joined);
    r->group_id = arena_strdup(&r->arena, c->group);
    r->users = arena_alloc(&r->arena, sizeof *r->users);
    r->users[0] = arena_strdup(&r->arena, c->user);
    r->n_users = 1;
    r->role = "member";
    r->event = new_event(r, "group_joined", c->user, c->group);
    call_submit(c, r);
}

void h_group_join(chat_call *c, const ProtobufCMessage *body)
{
    with_member(c, ((const Parley__GroupRef *)body)->group, join_checked);
}

static void left(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    const char *me = c->user;
    push_events(c, "group_left", me, &me, r->useqs, 1);
    log_event(LOG_INFO, "group_left", "tenant", c->tenant->id, "group", c->group, "user", me,
              "device", c->device, "remote", c->ip, NULL);
    Parley__Empty e = PARLEY__EMPTY__INIT;
    call_ok(c, &e.base);
}

static void leave_checked(chat_call *c, store_req *prev)
{
    if (!c->role[0]) {
        call_err(c, PL_NOT_FOUND, "not a member");
        return;
    }
    if (!strcmp(c->role, "owner")) {
        call_err(c, PL_FORBIDDEN, "the owner cannot leave; disband the group instead");
        return;
    }
    store_req *r = call_store(c, STORE_MEMBER_REMOVE, left);
    r->group_id = arena_strdup(&r->arena, c->group);
    r->users = arena_alloc(&r->arena, sizeof *r->users);
    r->users[0] = arena_strdup(&r->arena, c->user);
    r->n_users = 1;
    r->event = new_event(r, "group_left", c->user, c->group);
    call_submit(c, r);
}

void h_group_leave(chat_call *c, const ProtobufCMessage *body)
{
    with_member(c, ((const Parley__GroupRef *)body)->group, leave_checked);
}

/* ---- members ---- */

static void members_listed(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, r->status == PL_NOT_FOUND ? PL_NOT_FOUND : PL_UNAVAILABLE, "cannot list members");
        return;
    }
    Parley__GroupMembersOk ok = PARLEY__GROUP_MEMBERS_OK__INIT;
    ok.n_members = r->n_members_out;
    ok.members = arena_alloc(&r->arena, (r->n_members_out + 1) * sizeof *ok.members);
    for (size_t i = 0; i < r->n_members_out; i++) {
        Parley__Member *m = arena_alloc(&r->arena, sizeof *m);
        parley__member__init(m);
        m->user = (char *)r->members_out[i].user;
        m->role = (char *)r->members_out[i].role;
        m->has_joined_at = true;
        m->joined_at = r->members_out[i].joined_at;
        ok.members[i] = m;
    }
    ok.has_more = true;
    ok.more = r->more;
    call_ok(c, &ok.base);
}

static void members_checked(chat_call *c, store_req *prev)
{
    const char *after = c->text;
    uint32_t limit = (uint32_t)c->n1;
    store_req *r = call_store(c, STORE_MEMBER_LIST, members_listed);
    r->group_id = arena_strdup(&r->arena, c->group);
    r->query = arena_strdup(&r->arena, after ? after : "");
    r->limit = limit;
    call_submit(c, r);
}

void h_group_members(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__GroupMembers *in = (const Parley__GroupMembers *)body;
    c->text = in->after && *in->after ? arena_strdup(&c->arena, in->after) : NULL;
    c->n1 = in->has_limit && in->limit ? (in->limit > 1000 ? 1000 : in->limit) : MEMBERS_DEFAULT;
    with_member(c, in->group, members_checked);
}

/* ---- add ---- */

static void added(chat_call *c, store_req *r)
{
    if (r->status) {
        const char *why = r->status == PL_TOO_LARGE  ? "the group would pass its member limit"
                          : r->status == PL_NOT_FOUND ? "a user does not exist"
                                                      : "store unavailable, retry later";
        call_err(c, r->status, why);
        return;
    }
    uint64_t n = 0;
    for (size_t i = 0; i < r->n_users; i++) n += r->useqs[i] != 0;
    push_events(c, "group_joined", c->auth == AUTH_USER ? c->user : "", r->users, r->useqs,
                r->n_users);
    log_event(LOG_INFO, "group_members_added", "tenant", c->tenant->id, "group", c->group, "by",
              c->auth == AUTH_USER ? c->user : "api", "user", c->auth == AUTH_USER ? c->user : "api",
              "device", c->device, "remote", c->ip, NULL);
    Parley__GroupAddOk ok = PARLEY__GROUP_ADD_OK__INIT;
    ok.has_added = true;
    ok.added = n;
    ok.group = group_pb(&r->arena, r->group, c->role);
    call_ok(c, &ok.base);
}

static void add_checked(chat_call *c, store_req *prev)
{
    if (c->auth != AUTH_APIKEY && !is_manager(c)) {
        call_err(c, PL_FORBIDDEN, "only the owner and admins add members");
        return;
    }
    if (c->flag && c->auth != AUTH_APIKEY && strcmp(c->role, "owner")) {
        call_err(c, PL_FORBIDDEN, "only the owner makes admins");
        return;
    }
    store_req *r = call_store(c, STORE_MEMBER_ADD, added);
    r->group_id = arena_strdup(&r->arena, c->group);
    r->users = c->users;           /* in the call's arena, which outlives r */
    r->n_users = c->n_users;
    r->role = c->flag ? "admin" : "member";
    r->limit = !strcmp(c->kind, "group") ? c->c->cfg.group_max_members : 0;
    r->event = new_event(r, "group_joined", c->auth == AUTH_USER ? c->user : "", c->group);
    call_submit(c, r);
}

void h_group_add(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__GroupAdd *in = (const Parley__GroupAdd *)body;
    if (!in->n_users) {
        call_err(c, PL_BAD_REQUEST, "users is empty");
        return;
    }
    if (in->n_users > ADD_MAX) {
        call_err(c, PL_TOO_LARGE, "at most 100,000 users per call");
        return;
    }
    if (in->role && *in->role && strcmp(in->role, "member") && strcmp(in->role, "admin")) {
        call_err(c, PL_BAD_REQUEST, "role must be member or admin");
        return;
    }
    c->flag = in->role && !strcmp(in->role, "admin");
    c->users = arena_alloc(&c->arena, in->n_users * sizeof *c->users);
    for (size_t i = 0; i < in->n_users; i++) {
        if (!chat_valid_id(in->users[i])) {
            call_err(c, PL_BAD_REQUEST, "users must be user ids");
            return;
        }
        c->users[i] = arena_strdup(&c->arena, in->users[i]);
    }
    c->n_users = in->n_users;
    with_member(c, in->group, add_checked);
}

/* ---- remove ---- */

static void removed(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    if (!r->useqs[0]) {
        call_err(c, PL_NOT_FOUND, "not a member");
        return;
    }
    push_events(c, "group_removed", c->auth == AUTH_USER ? c->user : "", r->users, r->useqs, 1);
    log_event(LOG_INFO, "group_removed", "tenant", c->tenant->id, "group", c->group, "user",
              r->users[0], "by", c->auth == AUTH_USER ? c->user : "api", "device", c->device,
              "remote", c->ip, NULL);
    Parley__Empty e = PARLEY__EMPTY__INIT;
    call_ok(c, &e.base);
}

static void target_checked(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, r->status == PL_NOT_FOUND ? PL_NOT_FOUND : PL_UNAVAILABLE, "no such group");
        return;
    }
    const char *role = r->member ? r->member->role : NULL;
    if (!role) {
        call_err(c, PL_NOT_FOUND, "not a member");
        return;
    }
    if (!strcmp(role, "owner")) {
        call_err(c, PL_FORBIDDEN, "the owner cannot be removed");
        return;
    }
    if (c->auth != AUTH_APIKEY && strcmp(c->role, "owner") && strcmp(role, "member")) {
        call_err(c, PL_FORBIDDEN, "admins remove plain members only");
        return;
    }
    store_req *nr = call_store(c, STORE_MEMBER_REMOVE, removed);
    nr->group_id = arena_strdup(&nr->arena, c->group);
    nr->users = arena_alloc(&nr->arena, sizeof *nr->users);
    nr->users[0] = arena_strdup(&nr->arena, c->target);
    nr->n_users = 1;
    nr->event = new_event(nr, "group_removed", c->auth == AUTH_USER ? c->user : "", c->group);
    call_submit(c, nr);
}

static void remove_checked(chat_call *c, store_req *prev)
{
    if (c->auth != AUTH_APIKEY && !is_manager(c)) {
        call_err(c, PL_FORBIDDEN, "only the owner and admins remove members");
        return;
    }
    if (c->auth == AUTH_USER && !strcmp(c->target, c->user)) {
        call_err(c, PL_BAD_REQUEST, "to leave a group, use leave");
        return;
    }
    store_req *r = call_store(c, STORE_MEMBER_GET, target_checked);
    r->group_id = arena_strdup(&r->arena, c->group);
    r->user_id = arena_strdup(&r->arena, c->target);
    call_submit(c, r);
}

void h_group_remove(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__GroupRemove *in = (const Parley__GroupRemove *)body;
    if (!chat_valid_id(in->user)) {
        call_err(c, PL_NOT_FOUND, "not a member");
        return;
    }
    snprintf(c->target, sizeof c->target, "%s", in->user);
    with_member(c, in->group, remove_checked);
}

/* ---- roles ---- */

static void role_set(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, r->status,
                 r->status == PL_NOT_FOUND    ? "not a member"
                 : r->status == PL_FORBIDDEN ? "the owner's role does not change"
                                             : "store unavailable, retry later");
        return;
    }
    log_event(LOG_INFO, "group_role", "tenant", c->tenant->id, "group", c->group, "user", c->target,
              "role", c->flag ? "admin" : "member", "by", c->auth == AUTH_USER ? c->user : "api",
              "device", c->device, "remote", c->ip, NULL);
    Parley__Empty e = PARLEY__EMPTY__INIT;
    call_ok(c, &e.base);
}

static void role_checked(chat_call *c, store_req *prev)
{
    if (c->auth != AUTH_APIKEY && strcmp(c->role, "owner")) {
        call_err(c, PL_FORBIDDEN, "only the owner changes roles");
        return;
    }
    store_req *r = call_store(c, STORE_MEMBER_ROLE, role_set);
    r->group_id = arena_strdup(&r->arena, c->group);
    r->user_id = arena_strdup(&r->arena, c->target);
    r->role = c->flag ? "admin" : "member";
    call_submit(c, r);
}

void h_group_role(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__GroupRole *in = (const Parley__GroupRole *)body;
    if (!in->role || (strcmp(in->role, "admin") && strcmp(in->role, "member"))) {
        call_err(c, PL_BAD_REQUEST, "role must be admin or member");
        return;
    }
    if (!chat_valid_id(in->user)) {
        call_err(c, PL_NOT_FOUND, "not a member");
        return;
    }
    c->flag = !strcmp(in->role, "admin");
    snprintf(c->target, sizeof c->target, "%s", in->user);
    with_member(c, in->group, role_checked);
}

/* ---- disband ---- */

static void disbanded(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, r->status == PL_NOT_FOUND ? PL_NOT_FOUND : PL_UNAVAILABLE, "cannot disband");
        return;
    }
    const char **users = arena_alloc(&r->arena, (r->n_users_out + 1) * sizeof *users);
    for (size_t i = 0; i < r->n_users_out; i++) users[i] = r->users_out[i].id;
    push_events(c, "group_disbanded", c->auth == AUTH_USER ? c->user : "", users, r->useqs,
                r->n_users_out);
    log_event(LOG_INFO, "group_disbanded", "tenant", c->tenant->id, "group", c->group, "by",
              c->auth == AUTH_USER ? c->user : "api", "user", c->auth == AUTH_USER ? c->user : "api",
              "device", c->device, "remote", c->ip, NULL);
    Parley__Empty e = PARLEY__EMPTY__INIT;
    call_ok(c, &e.base);
}

static void disband_checked(chat_call *c, store_req *prev)
{
    if (c->auth != AUTH_APIKEY && strcmp(c->role, "owner")) {
        call_err(c, PL_FORBIDDEN, "only the owner disbands a group");
        return;
    }
    store_req *r = call_store(c, STORE_GROUP_DISBAND, disbanded);
    r->group_id = arena_strdup(&r->arena, c->group);
    r->event = new_event(r, "group_disbanded", c->auth == AUTH_USER ? c->user : "", c->group);
    call_submit(c, r);
}

void h_group_disband(chat_call *c, const ProtobufCMessage *body)
{
    with_member(c, ((const Parley__GroupRef *)body)->group, disband_checked);
}

/* ---- lists ---- */

static void groups_listed(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    Parley__GroupList ok = PARLEY__GROUP_LIST__INIT;
    ok.n_groups = r->n_groups_out;
    ok.groups = arena_alloc(&r->arena, (r->n_groups_out + 1) * sizeof *ok.groups);
    for (size_t i = 0; i < r->n_groups_out; i++)
        ok.groups[i] = group_pb(&r->arena, &r->groups_out[i], r->groups_out[i].role);
    call_ok(c, &ok.base);
}

void h_channel_search(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__ChannelSearch *in = (const Parley__ChannelSearch *)body;
    store_req *r = call_store(c, STORE_GROUP_SEARCH, groups_listed);
    r->query = arena_strdup(&r->arena, in->q ? in->q : "");
    r->limit = in->has_limit && in->limit ? (in->limit > 100 ? 100 : in->limit) : 20;
    call_submit(c, r);
}

void h_my_groups(chat_call *c, const ProtobufCMessage *body)
{
    store_req *r = call_store(c, STORE_USER_GROUPS, groups_listed);
    r->user_id = arena_strdup(&r->arena, c->user);
    call_submit(c, r);
}

/* ---- after a login: follow the user's groups and friends ---- */

static void quiet_reply(void *ud, pl_status st, const char *message, uint64_t retry,
                        const ProtobufCMessage *body)
{
}

static void friends_followed(chat_call *c, store_req *r)
{
    if (!r->status && session_open(c->s) && c->s->authed)
        for (size_t i = 0; i < r->n_friends_out; i++)
            if (!strcmp(r->friends_out[i].state, "friends")) {
                char key[TOPIC_KEY_MAX];
                topic_presence_key(c->tenant, r->friends_out[i].user, key, sizeof key);
                topic_sub(c->s, key);
            }
    call_ok(c, NULL);
}

static void groups_followed(chat_call *c, store_req *r)
{
    if (r->status || !session_open(c->s) || !c->s->authed) {
        call_ok(c, NULL);
        return;
    }
    for (size_t i = 0; i < r->n_groups_out; i++) {
        char key[TOPIC_KEY_MAX];
        topic_group_key(c->tenant, r->groups_out[i].id, key, sizeof key);
        topic_sub(c->s, key);
    }
    store_req *nr = call_store(c, STORE_FRIEND_LIST, friends_followed);
    nr->user_id = arena_strdup(&nr->arena, c->user);
    call_submit(c, nr);
}

void chat__after_login_call(chat_session *s, const chat_opdef *op, void (*start)(chat_call *c));

static void after_login_start(chat_call *c)
{
    c->reply = quiet_reply;
    store_req *r = call_store(c, STORE_USER_GROUPS, groups_followed);
    r->user_id = arena_strdup(&r->arena, c->user);
    call_submit(c, r);
}

void chat_after_login(chat_session *s)
{
    static const chat_opdef op = {.name = "after_login"};
    chat__after_login_call(s, &op, after_login_start);
}
