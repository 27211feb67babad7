/*
 * rdb_ops.c - the request ops of the RocksDB backend for tenants, users,
 * messages, inboxes and tokens, one function each; the dispatch of every
 * op (groups and channels are in rdb_groups.c, friends and the home list
 * in rdb_people.c); and the helpers the op files share (rdb_ops.h).
 *
 * Runs on the store thread only (see rocksdb.c for batches and the key
 * layout).  Write ops validate their input, read what they depend on
 * through the batch being built, and only then stage their writes and
 * advance counters, so a write that fails stages nothing.  Read ops see the
 * committed state.  Results are allocated in the request's arena (records
 * are decoded straight into it); scratch data of a batch (keys, packed
 * values, candidate lists) goes to s->scratch.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "store/rdb_ops.h"

/* Name-prefix search reads at most this many index entries. */
#define STORE__SEARCH_SCAN_MAX 10000

bool store__is_write(store_op op)
{
    switch (op) {
    case STORE_TENANT_CREATE:
    case STORE_TENANT_UPDATE:
    case STORE_USER_CREATE:
    case STORE_USER_UPDATE:
    case STORE_MSG_APPEND:
    case STORE_EVENT_APPEND:
    case STORE_READ_SET:
    case STORE_TOKEN_REVOKE:
    case STORE_GROUP_CREATE:
    case STORE_GROUP_UPDATE:
    case STORE_GROUP_DISBAND:
    case STORE_MEMBER_ADD:
    case STORE_MEMBER_REMOVE:
    case STORE_MEMBER_ROLE:
    case STORE_FRIEND:
    case STORE_SEEN_SET:
    case STORE_PROBE:
        return true;
    default:
        return false;
    }
}

/* ---- helpers (rdb_ops.h) ---- */

bool store__need_id(store_req *r, const char *what, const char *s)
{
    if (store__id_ok(s)) return true;
    store__fail(r, PL_BAD_REQUEST, "%s missing, empty or over %d bytes", what, STORE__ID_MAX);
    return false;
}

static char lower_ascii(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

void store__event_rec(Parley__Rec__Event *e, const store_event *ev, uint64_t now)
{
    e->kind = (char *)ev->kind;
    e->conv = (char *)ev->conv;
    e->has_seq = ev->seq != 0;
    e->seq = ev->seq;
    e->user = (char *)ev->user;
    e->group = (char *)ev->group;
    e->has_ts = 1;
    e->ts = ev->ts ? ev->ts : now;
}

store_event *store__event_from_rec(arena *a, const Parley__Rec__Event *e)
{
    store_event *ev = arena_alloc(a, sizeof(*ev));
    ev->kind = e->kind;
    ev->conv = e->conv;
    ev->seq = e->seq;
    ev->user = e->user;
    ev->group = e->group;
    ev->ts = e->ts;
    return ev;
}

int store__inboxes_load(store__rdb *s, store_req *r, const char *tenant, const char *const *users,
                        size_t n, store__ent **es)
{
    if (store__ents_get(s, r, tenant, STORE__NUM_USER, users, n, es)) return -1;
    for (size_t i = 0; i < n; i++)
        if (!store__ent_last(s, r, es[i], STORE__K_INBOX)) return -1;
    return 0;
}

uint64_t store__inbox_put(store__rdb *s, store__ent *e, const char *v, size_t vlen)
{
    store__ent_num(s, e);
    uint64_t useq = ++e->last;
    store__run_add(s, e, STORE__K_INBOX, useq, (const uint8_t *)v, vlen);
    return useq;
}

int store__stage_events(store__rdb *s, store_req *r, const char *tenant, const char *const *users,
                        size_t n, const store_event *ev, uint64_t *useqs)
{
    store__ent **es = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*es));
    if (store__inboxes_load(s, r, tenant, users, n, es)) return -1;
    /* Every entry holds the same event: pack it once. */
    Parley__Rec__Event e = PARLEY__REC__EVENT__INIT;
    store__event_rec(&e, ev, s->now);
    Parley__Rec__Entry en = PARLEY__REC__ENTRY__INIT;
    en.event = &e;
    size_t vlen = parley__rec__entry__get_packed_size(&en);
    uint8_t *v = arena_alloc(&s->scratch, vlen ? vlen : 1);
    parley__rec__entry__pack(&en, v);
    for (size_t i = 0; i < n; i++) useqs[i] = store__inbox_put(s, es[i], (const char *)v, vlen);
    return 0;
}

int store__users_exist(store__rdb *s, store_req *r, const char *tenant, const char *const *users,
                       size_t n)
{
    if (!n) return 0;
    const char **keys = arena_alloc(&s->scratch, n * sizeof(*keys));
    size_t *klens = arena_alloc(&s->scratch, n * sizeof(*klens));
    const char **vals = arena_alloc(&s->scratch, n * sizeof(*vals));
    size_t *vlens = arena_alloc(&s->scratch, n * sizeof(*vlens));
    for (size_t i = 0; i < n; i++) {
        store__key k;
        store__k_user(&k, tenant, users[i]);
        keys[i] = arena_memdup(&s->scratch, k.b, k.len);
        klens[i] = k.len;
    }
    if (store__get_many(s, r, true, keys, klens, n, NULL, vals, vlens)) return -1;
    for (size_t i = 0; i < n; i++) {
        if (vals[i]) continue;
        store__fail(r, PL_NOT_FOUND, "no such user: %.60s", users[i]);
        return 1;
    }
    return 0;
}

char *store__group_conv(arena *a, const char *group)
{
    size_t n = strlen(group);
    char *c = arena_alloc(a, n + 3);
    memcpy(c, "g:", 2);
    memcpy(c + 2, group, n + 1);
    return c;
}

const char *store__role_str(int role)
{
    switch (role) {
    case PARLEY__REC__ROLE__ROLE_OWNER: return "owner";
    case PARLEY__REC__ROLE__ROLE_ADMIN: return "admin";
    default: return "member";
    }
}

int store__role_parse(const char *s)
{
    if (!s) return -1;
    if (strcmp(s, "member") == 0) return PARLEY__REC__ROLE__ROLE_MEMBER;
    if (strcmp(s, "admin") == 0) return PARLEY__REC__ROLE__ROLE_ADMIN;
    if (strcmp(s, "owner") == 0) return PARLEY__REC__ROLE__ROLE_OWNER;
    return -1;
}

const char *store__kind_str(int kind)
{
    return kind == PARLEY__REC__GROUP_KIND__KIND_CHANNEL ? "channel" : "group";
}

int store__group_load(store__rdb *s, store_req *r, bool through_batch, const char *tenant,
                      const char *group, Parley__Rec__Group **g)
{
    store__key k;
    store__k_group(&k, tenant, group);
    int f = store__get(s, r, through_batch, &k, &parley__rec__group__descriptor, &s->scratch,
                       (void **)g);
    if (f > 0 && (*g)->disbanded) return 0;
    return f;
}

int store__run_at(store__rdb *s, rocksdb_iterator_t *it, size_t plen, uint64_t *first,
                  const char ***elems, size_t **lens, size_t *count)
{
    size_t klen, vlen;
    const char *key = rocksdb_iter_key(it, &klen);
    const char *val = rocksdb_iter_value(it, &vlen);
    if (klen != plen + 8) return 0;
    uint64_t last = store__get_u64(key + plen);
    if (store__run_split(&s->scratch, val, vlen, elems, lens, count) || *count > last) return 0;
    *first = last - *count + 1;
    return 1;
}

/* ---- write ops ---- */

static void tenant_put(store__rdb *s, const store__key *k, const char *key_hash,
                       const char *settings, uint64_t created_at)
{
    Parley__Rec__Tenant rec = PARLEY__REC__TENANT__INIT;
    rec.key_hash = (char *)key_hash;
    rec.settings = (char *)settings;
    rec.has_created_at = 1;
    rec.created_at = created_at;
    store__put(s, k, &rec);
}

static void op_tenant_create(store__rdb *s, store_req *r)
{
    store_tenant *t = r->tenant;
    if (!store__need_id(r, "tenant id", t ? t->id : NULL)) return;
    store__key k;
    store__k_tenant(&k, t->id);
    void *old;
    int f = store__get(s, r, true, &k, &parley__rec__tenant__descriptor, &s->scratch, &old);
    if (f < 0) return;
    if (f > 0) {
        store__fail(r, PL_CONFLICT, "tenant exists");
        return;
    }
    if (!t->created_at) t->created_at = s->now;
    tenant_put(s, &k, t->key_hash, t->settings, t->created_at);
}

static void op_tenant_update(store__rdb *s, store_req *r)
{
    store_tenant *t = r->tenant;
    if (!store__need_id(r, "tenant id", t ? t->id : NULL)) return;
    store__key k;
    store__k_tenant(&k, t->id);
    Parley__Rec__Tenant *old;
    int f = store__get(s, r, true, &k, &parley__rec__tenant__descriptor, &s->scratch, (void **)&old);
    if (f < 0) return;
    if (f == 0) {
        store__fail(r, PL_NOT_FOUND, "no such tenant");
        return;
    }
    tenant_put(s, &k, t->key_hash ? t->key_hash : old->key_hash,
               t->settings ? t->settings : old->settings, old->created_at);
}

static void user_put(store__rdb *s, const store__key *k, const char *name, const char *pwhash,
                     uint64_t created_at, bool banned)
{
    Parley__Rec__User rec = PARLEY__REC__USER__INIT;
    rec.name = (char *)name;
    rec.pwhash = (char *)pwhash;
    rec.has_created_at = 1;
    rec.created_at = created_at;
    rec.has_banned = banned;
    rec.banned = banned;
    store__put(s, k, &rec);
}

static void op_user_create(store__rdb *s, store_req *r)
{
    store_user *u = r->user;
    if (!store__need_id(r, "tenant id", r->tenant_id) || !store__need_id(r, "user id", u ? u->id : NULL)) return;
    store__key k;
    store__k_user(&k, r->tenant_id, u->id);
    void *old;
    int f = store__get(s, r, true, &k, &parley__rec__user__descriptor, &s->scratch, &old);
    if (f < 0) return;
    if (f > 0) {
        store__fail(r, PL_CONFLICT, "user exists");
        return;
    }
    if (!u->created_at) u->created_at = s->now;
    user_put(s, &k, u->name, u->pwhash, u->created_at, u->banned);
    if (u->name) {
        store__key nk;
        store__k_name(&nk, r->tenant_id, u->name, u->id);
        store__put_raw(s, &nk, "", 0);
    }
}

static void op_user_update(store__rdb *s, store_req *r)
{
    store_user *u = r->user;
    if (!store__need_id(r, "tenant id", r->tenant_id) || !store__need_id(r, "user id", u ? u->id : NULL)) return;
    store__key k;
    store__k_user(&k, r->tenant_id, u->id);
    Parley__Rec__User *old;
    int f = store__get(s, r, true, &k, &parley__rec__user__descriptor, &s->scratch, (void **)&old);
    if (f < 0) return;
    if (f == 0) {
        store__fail(r, PL_NOT_FOUND, "no such user");
        return;
    }
    const char *name = u->name ? u->name : old->name;
    if (u->name && (!old->name || strcmp(old->name, u->name) != 0)) {
        store__key nk;
        if (old->name) {
            store__k_name(&nk, r->tenant_id, old->name, u->id);
            store__del(s, &nk);
        }
        store__k_name(&nk, r->tenant_id, name, u->id);
        store__put_raw(s, &nk, "", 0);
    }
    user_put(s, &k, name, u->pwhash ? u->pwhash : old->pwhash, old->created_at, u->banned);
}

static bool is_dm(const char *conv) { return strncmp(conv, "dm:", 3) == 0; }

/*
 * The side effects of every appended message, staged with it: the
 * sender's read position rises to the new seq, and the first message of a
 * 1:1 conversation enters it into the home list of each of its users (the
 * recipients, sender included), with the other one as peer.
 *
 * The position is written without reading it: READ_SET never sets one
 * past the conversation's latest seq (it clamps), so the new seq, above
 * that, is always above the stored position too.  This saves a point
 * read on every message.
 */
static void append_effects(store__rdb *s, store_req *r, uint64_t from, uint64_t conv)
{
    store_append *a = &r->append;
    const char *t = r->tenant_id;
    store__key k;
    store__k_read(&k, from, conv);
    Parley__Rec__ReadPos rp = PARLEY__REC__READ_POS__INIT;
    rp.has_seq = 1;
    rp.seq = a->seq;
    store__put(s, &k, &rp);
    if (a->seq != 1 || !is_dm(a->conv)) return;
    const char *users[2] = {a->from, a->must_exist};
    size_t n = 0;
    for (size_t i = 0; i < a->n_rcpt && n < 2; i++) users[n++] = a->rcpt[i];
    if (n == 0) n = a->must_exist ? 2 : 1;
    if (n == 1) users[1] = users[0];
    for (size_t i = 0; i < n; i++) {
        Parley__Rec__HomeDm h = PARLEY__REC__HOME_DM__INIT;
        h.peer = (char *)users[1 - i];
        h.has_since = 1;
        h.since = a->ts;
        store__k_home(&k, t, users[i], a->conv);
        store__put(s, &k, &h);
    }
}

/* 1 if user exists (seeing the batch), 0 if not, -1 with r failed.  A
 * user found once is remembered in its id cache entry: users are never
 * deleted, so a dm's recipient is checked without a read from then on. */
static int user_exists(store__rdb *s, store_req *r, const char *t, store__ent *e, const char *user)
{
    if (e->exists) return 1;
    store__key uk;
    store__k_user(&uk, t, user);
    void *u;
    int f = store__get(s, r, true, &uk, &parley__rec__user__descriptor, &s->scratch, &u);
    if (f > 0) e->exists = true;
    return f;
}

static void op_msg_append(store__rdb *s, store_req *r)
{
    store_append *a = &r->append;
    const char *t = r->tenant_id;
    if (!store__need_id(r, "tenant id", t) || !store__need_id(r, "conv", a->conv) ||
        !store__need_id(r, "from", a->from))
        return;
    bool dedup = a->cmid && *a->cmid;
    if (dedup && !store__need_id(r, "cmid", a->cmid)) return;
    if (a->must_exist && !store__need_id(r, "must_exist", a->must_exist)) return;
    if (a->group) {
        /* The recipients are the group's members (an output), if any. */
        if (!store__need_id(r, "group", a->group)) return;
        a->rcpt = NULL;
        a->n_rcpt = 0;
    }
    if (a->n_rcpt && !a->rcpt) {
        store__fail(r, PL_BAD_REQUEST, "rcpt missing");
        return;
    }
    for (size_t i = 0; i < a->n_rcpt; i++)
        if (!store__need_id(r, "recipient", a->rcpt[i])) return;

    store__ent *fe = store__ent_get(s, r, t, STORE__NUM_USER, a->from);
    if (!fe) return;
    /* A sender without a number has never sent a message: no dedup entry. */
    if (dedup && fe->num) {
        store__key dk;
        store__k_dedup(&dk, fe->num, a->cmid);
        Parley__Rec__Dedup *d;
        int f = store__get(s, r, true, &dk, &parley__rec__dedup__descriptor, &s->scratch,
                           (void **)&d);
        if (f < 0) return;
        if (f > 0) {
            a->dup = true;
            a->seq = d->seq;
            a->ts = d->ts;
            if (a->group && d->n_useqs) {
                /* Only the sender's number is kept for a group message. */
                const char **rcpt = arena_alloc(&r->arena, sizeof(*rcpt));
                rcpt[0] = a->from;
                a->rcpt = rcpt;
                a->n_rcpt = 1;
            }
            uint64_t *useqs =
                a->n_rcpt ? arena_alloc(&r->arena, a->n_rcpt * sizeof(*useqs)) : NULL;
            for (size_t i = 0; i < a->n_rcpt && i < d->n_useqs; i++) useqs[i] = d->useqs[i];
            a->useqs = useqs;
            return;
        }
    }
    store__ent *me = NULL;
    if (a->must_exist) {
        me = store__ent_get(s, r, t, STORE__NUM_USER, a->must_exist);
        int f = me ? user_exists(s, r, t, me, a->must_exist) : -1;
        if (f < 0) return;
        if (f == 0) {
            store__fail(r, PL_NOT_FOUND, "no such user");
            return;
        }
    }
    if (a->require_friend && !a->group) {
        if (!a->must_exist) {
            store__fail(r, PL_BAD_REQUEST, "require_friend without must_exist");
            return;
        }
        if (strcmp(a->from, a->must_exist) != 0) {
            int f = store__are_friends(s, r, t, a->from, a->must_exist);
            if (f < 0) return;
            if (f == 0) {
                store__fail(r, PL_FORBIDDEN, "not friends");
                return;
            }
        }
    }
    if (a->group && store__group_append_check(s, r)) return;

    /* Load every counter before staging anything. */
    store__ent *ce = store__ent_get(s, r, t, STORE__NUM_CONV, a->conv);
    uint64_t *conv_ctr = ce ? store__ent_last(s, r, ce, STORE__K_MSG) : NULL;
    if (!conv_ctr) return;
    store__ent **es = arena_alloc(&s->scratch, (a->n_rcpt ? a->n_rcpt : 1) * sizeof(*es));
    if (a->n_rcpt <= 2 && !a->group) {
        /* A dm: its two users are the sender and must_exist, found above. */
        for (size_t i = 0; i < a->n_rcpt; i++) {
            const char *u = a->rcpt[i];
            es[i] = strcmp(u, a->from) == 0                   ? fe
                    : me && strcmp(u, a->must_exist) == 0 ? me
                                                          : store__ent_get(s, r, t, STORE__NUM_USER, u);
            if (!es[i] || !store__ent_last(s, r, es[i], STORE__K_INBOX)) return;
        }
    } else if (store__inboxes_load(s, r, t, a->rcpt, a->n_rcpt, es)) {
        return;
    }
    uint64_t *useqs = a->n_rcpt ? arena_alloc(&r->arena, a->n_rcpt * sizeof(*useqs)) : NULL;

    a->seq = ++*conv_ctr;
    a->ts = s->now;
    uint64_t cnum = store__ent_num(s, ce), fnum = store__ent_num(s, fe);
    append_effects(s, r, fnum, cnum);
    Parley__Rec__Msg m = PARLEY__REC__MSG__INIT;
    m.from = (char *)a->from;
    m.text = (char *)(a->text ? a->text : "");
    m.cmid = dedup ? (char *)a->cmid : NULL;
    m.has_ts = 1;
    m.ts = a->ts;
    size_t mlen;
    const uint8_t *mv = store__pack(s, &m, &mlen);
    store__run_add(s, ce, STORE__K_MSG, a->seq, mv, mlen);

    Parley__Rec__Entry en = PARLEY__REC__ENTRY__INIT;
    en.conv = (char *)a->conv;
    en.has_seq = 1;
    en.seq = a->seq;
    size_t vlen;
    const uint8_t *v = store__pack(s, &en, &vlen);
    for (size_t i = 0; i < a->n_rcpt; i++) useqs[i] = store__inbox_put(s, es[i], (const char *)v, vlen);
    a->useqs = useqs;

    if (dedup) {
        Parley__Rec__Dedup d = PARLEY__REC__DEDUP__INIT;
        d.conv = (char *)a->conv;
        d.has_seq = d.has_ts = 1;
        d.seq = a->seq;
        d.ts = a->ts;
        /* A group message keeps only the sender's number (rcpt[0]): the
         * others are many and a retry only answers the sender. */
        d.n_useqs = a->group ? (a->n_rcpt ? 1 : 0) : a->n_rcpt;
        d.useqs = useqs;
        store__key dk;
        store__k_dedup(&dk, fnum, a->cmid);
        store__put(s, &dk, &d);
    }
}

static void op_event_append(store__rdb *s, store_req *r)
{
    if (!store__need_id(r, "tenant id", r->tenant_id)) return;
    if (!r->event || !r->event->kind) {
        store__fail(r, PL_BAD_REQUEST, "event missing");
        return;
    }
    if (r->n_users && !r->users) {
        store__fail(r, PL_BAD_REQUEST, "users missing");
        return;
    }
    for (size_t i = 0; i < r->n_users; i++)
        if (!store__need_id(r, "user", r->users[i])) return;
    if (!r->event->ts) r->event->ts = s->now;
    uint64_t *useqs = arena_alloc(&r->arena, (r->n_users ? r->n_users : 1) * sizeof(*useqs));
    if (store__stage_events(s, r, r->tenant_id, r->users, r->n_users, r->event, useqs)) return;
    r->useqs = useqs;
}

static void op_read_set(store__rdb *s, store_req *r)
{
    store_event *ev = r->event;
    if (!store__need_id(r, "tenant id", r->tenant_id) || !store__need_id(r, "user id", r->user_id)) return;
    if (!ev || !store__need_id(r, "conv", ev->conv)) return;
    /* A position never points past the latest message (append_effects
     * relies on it). */
    store__ent *ce = store__ent_get(s, r, r->tenant_id, STORE__NUM_CONV, ev->conv);
    uint64_t *head = ce ? store__ent_last(s, r, ce, STORE__K_MSG) : NULL;
    if (!head) return;
    if (ev->seq > *head) ev->seq = *head;
    store__ent *ue = store__ent_get(s, r, r->tenant_id, STORE__NUM_USER, r->user_id);
    if (!ue) return;
    uint64_t old = 0;
    if (ue->num && ce->num) {
        store__key k;
        store__k_read(&k, ue->num, ce->num);
        Parley__Rec__ReadPos *rec;
        int f = store__get(s, r, true, &k, &parley__rec__read_pos__descriptor, &s->scratch,
                           (void **)&rec);
        if (f < 0) return;
        if (f > 0) old = rec->seq;
    }
    uint64_t *useqs = arena_alloc(&r->arena, sizeof(*useqs));
    r->useqs = useqs;
    if (ev->seq <= old) return; /* not higher: nothing written, useqs[0] = 0 */
    store_event e = *ev;
    if (!e.kind) e.kind = "read";
    if (!e.ts) e.ts = s->now;
    if (store__stage_events(s, r, r->tenant_id, &r->user_id, 1, &e, useqs)) return;
    /* seq > 0 here, so the conversation has messages and a number. */
    store__key k;
    store__k_read(&k, store__ent_num(s, ue), ce->num);
    Parley__Rec__ReadPos rp = PARLEY__REC__READ_POS__INIT;
    rp.has_seq = 1;
    rp.seq = ev->seq;
    store__put(s, &k, &rp);
}

static void op_token_revoke(store__rdb *s, store_req *r)
{
    if (!store__need_id(r, "jti", r->revoked ? r->revoked->jti : NULL)) return;
    store__key k;
    store__k_revoked(&k, r->revoked->jti);
    Parley__Rec__Revoked rec = PARLEY__REC__REVOKED__INIT;
    rec.has_expires_at = 1;
    rec.expires_at = r->revoked->expires_at;
    store__put(s, &k, &rec);
}

bool store__append_dedup_key(store__rdb *s, const store_req *r, store__key *k)
{
    if (r->op != STORE_MSG_APPEND) return false;
    const store_append *a = &r->append;
    if (!store__id_ok(r->tenant_id) || !store__id_ok(a->from) || !store__id_ok(a->cmid)) return false;
    store__ent *fe = store__ent_cached(s, r->tenant_id, STORE__NUM_USER, a->from);
    if (!fe || !fe->num) return false;
    store__k_dedup(k, fe->num, a->cmid);
    return true;
}

void store__exec_write(store__rdb *s, store_req *r)
{
    switch (r->op) {
    case STORE_TENANT_CREATE: op_tenant_create(s, r); break;
    case STORE_TENANT_UPDATE: op_tenant_update(s, r); break;
    case STORE_USER_CREATE: op_user_create(s, r); break;
    case STORE_USER_UPDATE: op_user_update(s, r); break;
    case STORE_MSG_APPEND: op_msg_append(s, r); break;
    case STORE_EVENT_APPEND: op_event_append(s, r); break;
    case STORE_READ_SET: op_read_set(s, r); break;
    case STORE_TOKEN_REVOKE: op_token_revoke(s, r); break;
    case STORE_GROUP_CREATE: store__op_group_create(s, r); break;
    case STORE_GROUP_UPDATE: store__op_group_update(s, r); break;
    case STORE_GROUP_DISBAND: store__op_group_disband(s, r); break;
    case STORE_MEMBER_ADD: store__op_member_add(s, r); break;
    case STORE_MEMBER_REMOVE: store__op_member_remove(s, r); break;
    case STORE_MEMBER_ROLE: store__op_member_role(s, r); break;
    case STORE_FRIEND: store__op_friend(s, r); break;
    case STORE_SEEN_SET: store__op_seen_set(s, r); break;
    case STORE_PROBE: store__op_probe(s, r); break;
    default: store__fail(r, PL_BAD_REQUEST, "not a write op: %d", (int)r->op); break;
    }
}

/* ---- read ops ---- */

static void op_tenant_list(store__rdb *s, store_req *r)
{
    store__key lo, hi;
    store__key_init(&lo, STORE__K_TENANT);
    store__key_succ(&lo, &hi);
    store__iter it;
    store__iter_open(s, &it, &lo, &hi);
    store__vec v = {.size = sizeof(store_tenant)};
    ProtobufCAllocator al = store__allocator(&r->arena);
    for (rocksdb_iter_seek(it.it, lo.b, lo.len); rocksdb_iter_valid(it.it); rocksdb_iter_next(it.it)) {
        size_t klen, vlen, off = 1, idlen;
        const char *key = rocksdb_iter_key(it.it, &klen);
        const char *val = rocksdb_iter_value(it.it, &vlen);
        const char *id = store__key_next_str(key, klen, &off, &idlen);
        Parley__Rec__Tenant *rec =
            parley__rec__tenant__unpack(&al, vlen, (const uint8_t *)val);
        if (!id || !rec) continue;
        store_tenant *t = store__vec_push(&v);
        t->id = arena_strndup(&r->arena, id, idlen);
        t->key_hash = rec->key_hash;
        t->settings = rec->settings;
        t->created_at = rec->created_at;
    }
    r->tenants = store__vec_finish(&v, &r->arena, &r->n_tenants);
    store__iter_close(&it, r);
}

static void user_from_rec(store_user *u, arena *a, const char *id, const Parley__Rec__User *rec)
{
    u->id = arena_strdup(a, id);
    u->name = rec->name;
    u->pwhash = rec->pwhash;
    u->created_at = rec->created_at;
    u->banned = rec->banned;
}

static void op_user_get(store__rdb *s, store_req *r)
{
    if (!store__need_id(r, "tenant id", r->tenant_id) || !store__need_id(r, "user id", r->user_id)) return;
    store__key k;
    store__k_user(&k, r->tenant_id, r->user_id);
    Parley__Rec__User *rec;
    int f = store__get(s, r, false, &k, &parley__rec__user__descriptor, &r->arena, (void **)&rec);
    if (f < 0) return;
    if (f == 0) {
        store__fail(r, PL_NOT_FOUND, "no such user");
        return;
    }
    r->user = arena_alloc(&r->arena, sizeof(*r->user));
    user_from_rec(r->user, &r->arena, r->user_id, rec);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool store__name_prefix(const char *name, const char *q)
{
    if (!name) return false;
    for (; *q; q++, name++)
        if (lower_ascii(*name) != lower_ascii(*q)) return false;
    return true;
}

/* Push onto ids the user id of every key in [lo, succ(lo)), at most max;
 * the id is component `skip` (0-based) after the tenant. */
static int collect_ids(store__rdb *s, store_req *r, const store__key *lo, int skip, size_t max,
                       store__vec *ids)
{
    store__key hi;
    store__key_succ(lo, &hi);
    store__iter it;
    store__iter_open(s, &it, lo, &hi);
    for (rocksdb_iter_seek(it.it, lo->b, lo->len); rocksdb_iter_valid(it.it) && max > 0;
         rocksdb_iter_next(it.it), max--) {
        size_t klen, off = 1, n = 0;
        const char *key = rocksdb_iter_key(it.it, &klen);
        const char *c = store__key_next_str(key, klen, &off, &n); /* tenant */
        for (int i = 0; c && i <= skip; i++) c = store__key_next_str(key, klen, &off, &n);
        if (c) *(char **)store__vec_push(ids) = arena_strndup(&s->scratch, c, n);
    }
    return store__iter_close(&it, r);
}

static void op_user_search(store__rdb *s, store_req *r)
{
    if (!store__need_id(r, "tenant id", r->tenant_id)) return;
    const char *q = r->query ? r->query : "";
    if (strlen(q) > STORE__ID_MAX) {
        store__fail(r, PL_BAD_REQUEST, "query too long");
        return;
    }
    uint32_t limit = store__limit(r->limit);

    store__vec ids = {.size = sizeof(char *)};
    store__key lo;
    store__key_init(&lo, STORE__K_USER);
    store__key_str(&lo, r->tenant_id);
    store__key_raw(&lo, q, strlen(q));
    int rc = collect_ids(s, r, &lo, 0, limit, &ids);
    if (rc == 0 && *q) {
        char lq[STORE__LNAME_MAX + 1];
        store__lname(lq, q);
        store__key_init(&lo, STORE__K_NAME);
        store__key_str(&lo, r->tenant_id);
        store__key_raw(&lo, lq, strlen(lq));
        rc = collect_ids(s, r, &lo, 1, STORE__SEARCH_SCAN_MAX, &ids);
    }
    if (rc) {
        pl_free(ids.p);
        return;
    }
    char **cand = (char **)ids.p;
    if (ids.n > 1) qsort(cand, ids.n, sizeof(*cand), cmp_str);

    store__vec out = {.size = sizeof(store_user)};
    size_t qlen = strlen(q);
    for (size_t i = 0; i < ids.n && out.n < limit; i++) {
        if (i > 0 && strcmp(cand[i], cand[i - 1]) == 0) continue;
        store__key k;
        store__k_user(&k, r->tenant_id, cand[i]);
        Parley__Rec__User *rec;
        int f = store__get(s, r, false, &k, &parley__rec__user__descriptor, &r->arena,
                           (void **)&rec);
        if (f < 0) break;
        if (f == 0) continue;
        if (strncmp(cand[i], q, qlen) != 0 && !store__name_prefix(rec->name, q)) continue;
        user_from_rec(store__vec_push(&out), &r->arena, cand[i], rec);
    }
    pl_free(ids.p);
    r->users_out = store__vec_finish(&out, &r->arena, &r->n_users_out);
}

/* A message an inbox entry refers to, while resolving them. */
typedef struct want {
    uint64_t conv;             /* its number (0: none, so no message) */
    uint64_t seq;
    store_msg *msg;
} want;

static int want_cmp(const void *a, const void *b)
{
    const want *x = a, *y = b;
    if (x->conv != y->conv) return x->conv < y->conv ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Fill in the messages entries[i].msg refer to (conv and seq set): in
 * order of conversation and seq, one seek per run they lie in (entries of
 * one page mostly come from a few runs), on one iterator.
 */
static void resolve_msgs(store__rdb *s, store_req *r, store_entry *entries, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) m += entries[i].msg != NULL;
    if (!m) return;
    const char **convs = arena_alloc(&s->scratch, m * sizeof(*convs));
    store__ent **ces = arena_alloc(&s->scratch, m * sizeof(*ces));
    want *w = arena_alloc(&s->scratch, m * sizeof(*w));
    for (size_t i = 0, j = 0; i < n; i++) {
        store_msg *msg = entries[i].msg;
        if (!msg) continue;
        /* What a damaged database leaves unresolved stays empty. */
        msg->from = msg->text = "";
        convs[j] = msg->conv;
        w[j++] = (want){0, msg->seq, msg};
    }
    if (store__ents_get(s, r, r->tenant_id, STORE__NUM_CONV, convs, m, ces)) return;
    for (size_t j = 0; j < m; j++) w[j].conv = ces[j]->num;
    qsort(w, m, sizeof(*w), want_cmp);

    store__key lo, hi;
    store__key_init(&lo, STORE__K_MSG);
    store__key_succ(&lo, &hi);
    store__iter it;
    store__iter_open(s, &it, &lo, &hi);
    ProtobufCAllocator al = store__allocator(&r->arena);
    uint64_t cur = 0, first = 0;
    const char **el = NULL;
    size_t *ln = NULL, cnt = 0;
    for (size_t j = 0; j < m; j++) {
        if (!w[j].conv) continue;
        if (w[j].conv != cur || w[j].seq < first || w[j].seq - first >= cnt) {
            store__key k;
            store__k_msg(&k, w[j].conv, w[j].seq);
            rocksdb_iter_seek(it.it, k.b, k.len);
            cur = 0;
            cnt = 0;
            if (!rocksdb_iter_valid(it.it)) continue;
            size_t klen;
            const char *key = rocksdb_iter_key(it.it, &klen);
            if (klen < STORE__NUM_PREFIX || memcmp(key, k.b, STORE__NUM_PREFIX) != 0) continue;
            if (!store__run_at(s, it.it, STORE__NUM_PREFIX, &first, &el, &ln, &cnt)) continue;
            cur = w[j].conv;
            if (w[j].seq < first) continue;
        }
        Parley__Rec__Msg *rec =
            parley__rec__msg__unpack(&al, ln[w[j].seq - first], (const uint8_t *)el[w[j].seq - first]);
        if (!rec) continue;
        store_msg *msg = w[j].msg;
        msg->from = rec->from ? rec->from : "";
        msg->text = rec->text ? rec->text : "";
        msg->cmid = rec->cmid;
        msg->ts = rec->ts;
    }
    store__iter_close(&it, r);
}

static void op_inbox_read(store__rdb *s, store_req *r)
{
    if (!store__need_id(r, "tenant id", r->tenant_id) || !store__need_id(r, "user id", r->user_id)) return;
    uint32_t limit = store__limit(r->limit);
    store__key prefix, lo, hi;
    store__ent *ue = store__ent_get(s, r, r->tenant_id, STORE__NUM_USER, r->user_id);
    uint64_t *head = ue ? store__ent_last(s, r, ue, STORE__K_INBOX) : NULL;
    if (!head) return;
    r->head = *head;
    if (r->after >= r->head) return;
    store__k_inbox(&prefix, ue->num);
    lo = prefix;
    store__key_u64(&lo, r->after + 1);
    store__key_succ(&prefix, &hi);

    /* The first run whose last useq is after + 1 or more holds it. */
    store__iter it;
    store__iter_open(s, &it, &lo, &hi);
    store__vec v = {.size = sizeof(store_entry)};
    ProtobufCAllocator al = store__allocator(&r->arena);
    bool more = false;
    rocksdb_iter_seek(it.it, lo.b, lo.len);
    for (; rocksdb_iter_valid(it.it) && !more; rocksdb_iter_next(it.it)) {
        uint64_t first;
        const char **el;
        size_t *ln, cnt;
        if (!store__run_at(s, it.it, prefix.len, &first, &el, &ln, &cnt)) continue;
        for (size_t j = 0; j < cnt; j++) {
            if (first + j <= r->after) continue;
            if (v.n == limit) {
                more = true;
                break;
            }
            Parley__Rec__Entry *rec = parley__rec__entry__unpack(&al, ln[j], (const uint8_t *)el[j]);
            if (!rec) continue;
            store_entry *e = store__vec_push(&v);
            e->useq = first + j;
            if (rec->event) {
                e->event = store__event_from_rec(&r->arena, rec->event);
            } else {
                e->msg = arena_alloc(&r->arena, sizeof(*e->msg));
                e->msg->conv = rec->conv ? rec->conv : "";
                e->msg->seq = rec->seq;
                e->msg->useq = e->useq;
            }
        }
    }
    r->more = more;
    r->entries = store__vec_finish(&v, &r->arena, &r->n_entries);
    if (store__iter_close(&it, r)) return;
    resolve_msgs(s, r, r->entries, r->n_entries);
}

static void op_inbox_head(store__rdb *s, store_req *r)
{
    if (!store__need_id(r, "tenant id", r->tenant_id) || !store__need_id(r, "user id", r->user_id)) return;
    store__ent *ue = store__ent_get(s, r, r->tenant_id, STORE__NUM_USER, r->user_id);
    uint64_t *head = ue ? store__ent_last(s, r, ue, STORE__K_INBOX) : NULL;
    if (head) r->head = *head;
}

static void msg_from_rec(store_msg *m, const char *conv, uint64_t seq, const Parley__Rec__Msg *rec)
{
    m->conv = conv;
    m->seq = seq;
    m->from = rec->from;
    m->text = rec->text ? rec->text : "";
    m->cmid = rec->cmid;
    m->ts = rec->ts;
}

static void op_history(store__rdb *s, store_req *r)
{
    if (!store__need_id(r, "tenant id", r->tenant_id) || !store__need_id(r, "conv", r->conv)) return;
    uint32_t limit = store__limit(r->limit);
    store__ent *ce = store__ent_get(s, r, r->tenant_id, STORE__NUM_CONV, r->conv);
    if (!ce || !ce->num) return; /* no messages */
    if (r->before == 1) return;  /* nothing before seq 1 */
    /* The newest wanted: before - 1, in the first run whose last seq is
     * that or more (or the last run, if none is). */
    uint64_t target = r->before ? r->before - 1 : UINT64_MAX;
    store__key prefix, hi;
    store__k_conv(&prefix, ce->num);
    store__key_succ(&prefix, &hi);
    store__iter it;
    store__iter_open(s, &it, &prefix, &hi);
    store__vec v = {.size = sizeof(store_msg)};
    ProtobufCAllocator al = store__allocator(&r->arena);
    const char *conv = arena_strdup(&r->arena, r->conv);
    if (r->before) {
        store__key lo = prefix;
        store__key_u64(&lo, target);
        rocksdb_iter_seek(it.it, lo.b, lo.len);
    }
    if (!r->before || !rocksdb_iter_valid(it.it)) rocksdb_iter_seek_to_last(it.it);
    bool more = false;
    for (; rocksdb_iter_valid(it.it) && !more; rocksdb_iter_prev(it.it)) {
        uint64_t first;
        const char **el;
        size_t *ln, cnt;
        if (!store__run_at(s, it.it, prefix.len, &first, &el, &ln, &cnt)) continue;
        for (size_t j = cnt; j-- > 0;) {
            if (first + j > target) continue;
            if (v.n == limit) {
                more = true;
                break;
            }
            Parley__Rec__Msg *rec = parley__rec__msg__unpack(&al, ln[j], (const uint8_t *)el[j]);
            if (rec) msg_from_rec(store__vec_push(&v), conv, first + j, rec);
        }
    }
    r->more = more;
    r->msgs = store__vec_finish(&v, &r->arena, &r->n_msgs);
    store__iter_close(&it, r);
}

static void op_conv_read(store__rdb *s, store_req *r)
{
    if (!store__need_id(r, "tenant id", r->tenant_id) || !store__need_id(r, "conv", r->conv)) return;
    uint32_t limit = store__limit(r->limit);
    store__key prefix, lo, hi;
    store__ent *ce = store__ent_get(s, r, r->tenant_id, STORE__NUM_CONV, r->conv);
    uint64_t *head = ce ? store__ent_last(s, r, ce, STORE__K_MSG) : NULL;
    if (!head) return;
    r->head = *head;
    if (r->after >= r->head) return;
    store__k_conv(&prefix, ce->num);
    lo = prefix;
    store__key_u64(&lo, r->after + 1);
    store__key_succ(&prefix, &hi);
    store__iter it;
    store__iter_open(s, &it, &lo, &hi);
    store__vec v = {.size = sizeof(store_msg)};
    ProtobufCAllocator al = store__allocator(&r->arena);
    const char *conv = arena_strdup(&r->arena, r->conv);
    bool more = false;
    rocksdb_iter_seek(it.it, lo.b, lo.len);
    for (; rocksdb_iter_valid(it.it) && !more; rocksdb_iter_next(it.it)) {
        uint64_t first;
        const char **el;
        size_t *ln, cnt;
        if (!store__run_at(s, it.it, prefix.len, &first, &el, &ln, &cnt)) continue;
        for (size_t j = 0; j < cnt; j++) {
            if (first + j <= r->after) continue;
            if (v.n == limit) {
                more = true;
                break;
            }
            Parley__Rec__Msg *rec = parley__rec__msg__unpack(&al, ln[j], (const uint8_t *)el[j]);
            if (rec) msg_from_rec(store__vec_push(&v), conv, first + j, rec);
        }
    }
    r->more = more;
    r->msgs = store__vec_finish(&v, &r->arena, &r->n_msgs);
    store__iter_close(&it, r);
}

static void op_token_list(store__rdb *s, store_req *r)
{
    store__key lo, hi;
    store__key_init(&lo, STORE__K_REVOKED);
    store__key_succ(&lo, &hi);
    store__iter it;
    store__iter_open(s, &it, &lo, &hi);
    store__vec v = {.size = sizeof(store_revoked)};
    rocksdb_writebatch_t *purge = rocksdb_writebatch_create();
    ProtobufCAllocator al = store__allocator(&s->scratch);
    for (rocksdb_iter_seek(it.it, lo.b, lo.len); rocksdb_iter_valid(it.it); rocksdb_iter_next(it.it)) {
        size_t klen, vlen, off = 1, n;
        const char *key = rocksdb_iter_key(it.it, &klen);
        const char *val = rocksdb_iter_value(it.it, &vlen);
        const char *jti = store__key_next_str(key, klen, &off, &n);
        Parley__Rec__Revoked *rec = parley__rec__revoked__unpack(&al, vlen, (const uint8_t *)val);
        if (!jti || !rec) continue;
        if (rec->expires_at && rec->expires_at <= s->now) {
            rocksdb_writebatch_delete(purge, key, klen);
            continue;
        }
        store_revoked *t = store__vec_push(&v);
        t->jti = arena_strndup(&r->arena, jti, n);
        t->expires_at = rec->expires_at;
    }
    r->revoked_out = store__vec_finish(&v, &r->arena, &r->n_revoked);
    if (store__iter_close(&it, r) == 0 && rocksdb_writebatch_count(purge) > 0) {
        char *err = NULL;
        rocksdb_write(s->db, s->wo_lazy, purge, &err);
        if (err) {
            log_warn("store: purging expired revocations failed: %s", err);
            rocksdb_free(err);
        }
    }
    rocksdb_writebatch_destroy(purge);
}

static void op_read_get(store__rdb *s, store_req *r)
{
    if (!store__need_id(r, "tenant id", r->tenant_id) || !store__need_id(r, "user id", r->user_id) ||
        !store__need_id(r, "conv", r->conv))
        return;
    store__ent *ue = store__ent_get(s, r, r->tenant_id, STORE__NUM_USER, r->user_id);
    store__ent *ce = ue ? store__ent_get(s, r, r->tenant_id, STORE__NUM_CONV, r->conv) : NULL;
    if (!ce || !ue->num || !ce->num) return; /* never read (or a read error) */
    store__key k;
    store__k_read(&k, ue->num, ce->num);
    Parley__Rec__ReadPos *rec;
    int f = store__get(s, r, false, &k, &parley__rec__read_pos__descriptor, &s->scratch,
                       (void **)&rec);
    if (f > 0) r->head = rec->seq;
}

void store__exec_read(store__rdb *s, store_req *r)
{
    switch (r->op) {
    case STORE_TENANT_LIST: op_tenant_list(s, r); break;
    case STORE_USER_GET: op_user_get(s, r); break;
    case STORE_USER_SEARCH: op_user_search(s, r); break;
    case STORE_INBOX_READ: op_inbox_read(s, r); break;
    case STORE_INBOX_HEAD: op_inbox_head(s, r); break;
    case STORE_HISTORY: op_history(s, r); break;
    case STORE_TOKEN_LIST: op_token_list(s, r); break;
    case STORE_READ_GET: op_read_get(s, r); break;
    case STORE_CONV_READ: op_conv_read(s, r); break;
    case STORE_GROUP_GET: store__op_group_get(s, r); break;
    case STORE_MEMBER_GET: store__op_member_get(s, r); break;
    case STORE_MEMBER_LIST: store__op_member_list(s, r); break;
    case STORE_USER_GROUPS: store__op_user_groups(s, r); break;
    case STORE_GROUP_SEARCH: store__op_group_search(s, r); break;
    case STORE_FRIEND_LIST: store__op_friend_list(s, r); break;
    case STORE_SEEN_GET: store__op_seen_get(s, r); break;
    case STORE_HOME: store__op_home(s, r); break;
    case STORE_CHECKPOINT: store__op_checkpoint(s, r); break;
    default: store__fail(r, PL_BAD_REQUEST, "unknown op %d", (int)r->op); break;
    }
}
