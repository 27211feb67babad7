/*
 * rdb_ops.c - the request ops of the RocksDB backend, one function each.
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
#include "store/rdb.h"
#include "store/records.pb-c.h"

/* Name-prefix search reads at most this many index entries. */
#define STORE__SEARCH_SCAN_MAX 10000
/* Bytes of a lower-cased name kept in the name index. */
#define STORE__LNAME_MAX 64

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
        return true;
    default:
        return false;
    }
}

/* ---- keys ---- */

static void k_tenant(store__key *k, const char *t)
{
    store__key_init(k, STORE__K_TENANT);
    store__key_str(k, t);
}

static void k_user(store__key *k, const char *t, const char *u)
{
    store__key_init(k, STORE__K_USER);
    store__key_str(k, t);
    store__key_str(k, u);
}

static void k_conv(store__key *k, const char *t, const char *conv)
{
    store__key_init(k, STORE__K_MSG);
    store__key_str(k, t);
    store__key_str(k, conv);
}

static void k_msg(store__key *k, const char *t, const char *conv, uint64_t seq)
{
    k_conv(k, t, conv);
    store__key_u64(k, seq);
}

static void k_inbox(store__key *k, const char *t, const char *u)
{
    store__key_init(k, STORE__K_INBOX);
    store__key_str(k, t);
    store__key_str(k, u);
}

static void k_dedup(store__key *k, const char *t, const char *from, const char *cmid)
{
    store__key_init(k, STORE__K_DEDUP);
    store__key_str(k, t);
    store__key_str(k, from);
    store__key_str(k, cmid);
}

static void k_read(store__key *k, const char *t, const char *u, const char *conv)
{
    store__key_init(k, STORE__K_READ);
    store__key_str(k, t);
    store__key_str(k, u);
    store__key_str(k, conv);
}

static void k_revoked(store__key *k, const char *jti)
{
    store__key_init(k, STORE__K_REVOKED);
    store__key_str(k, jti);
}

static char lower_ascii(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

/* The name as it is indexed: ASCII-lowercased, cut to STORE__LNAME_MAX. */
static void lname(char out[STORE__LNAME_MAX + 1], const char *name)
{
    size_t i = 0;
    for (; name && name[i] && i < STORE__LNAME_MAX; i++) out[i] = lower_ascii(name[i]);
    out[i] = 0;
}

static void k_name(store__key *k, const char *t, const char *name, const char *u)
{
    char ln[STORE__LNAME_MAX + 1];
    lname(ln, name);
    store__key_init(k, STORE__K_NAME);
    store__key_str(k, t);
    store__key_str(k, ln);
    store__key_str(k, u);
}

/* ---- helpers ---- */

static bool need_id(store_req *r, const char *what, const char *s)
{
    if (store__id_ok(s)) return true;
    store__fail(r, PL_BAD_REQUEST, "%s missing, empty or over %d bytes", what, STORE__ID_MAX);
    return false;
}

/* A growable array on the heap, moved into an arena when complete. */
typedef struct vec {
    char *p;
    size_t n, cap, size;
} vec;

static void *vec_push(vec *v)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 16;
        v->p = pl_realloc(v->p, v->cap * v->size);
    }
    void *slot = v->p + v->n++ * v->size;
    memset(slot, 0, v->size);
    return slot;
}

static void *vec_finish(vec *v, arena *a, size_t *n)
{
    *n = v->n;
    void *out = v->n ? arena_memdup(a, v->p, v->n * v->size) : NULL;
    pl_free(v->p);
    v->p = NULL;
    v->n = v->cap = 0;
    return out;
}

static void event_to_rec(Parley__Rec__Event *e, const store_event *ev, uint64_t now)
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

static store_event *event_from_rec(arena *a, const Parley__Rec__Event *e)
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

/* Stage an inbox entry holding an event for each of users[0..n); useqs out.
 * All counters are loaded before anything is staged. */
static int stage_events(store__rdb *s, store_req *r, const char *tenant, const char *const *users,
                        size_t n, const store_event *ev, uint64_t *useqs)
{
    uint64_t **ctrs = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*ctrs));
    for (size_t i = 0; i < n; i++) {
        store__key k;
        k_inbox(&k, tenant, users[i]);
        if (!(ctrs[i] = store__counter(s, r, &k))) return -1;
    }
    Parley__Rec__Event e = PARLEY__REC__EVENT__INIT;
    event_to_rec(&e, ev, s->now);
    Parley__Rec__Entry en = PARLEY__REC__ENTRY__INIT;
    en.event = &e;
    for (size_t i = 0; i < n; i++) {
        store__key k;
        k_inbox(&k, tenant, users[i]);
        useqs[i] = ++*ctrs[i];
        store__key_u64(&k, useqs[i]);
        store__put(s, &k, &en);
    }
    return 0;
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
    if (!need_id(r, "tenant id", t ? t->id : NULL)) return;
    store__key k;
    k_tenant(&k, t->id);
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
    if (!need_id(r, "tenant id", t ? t->id : NULL)) return;
    store__key k;
    k_tenant(&k, t->id);
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
    if (!need_id(r, "tenant id", r->tenant_id) || !need_id(r, "user id", u ? u->id : NULL)) return;
    store__key k;
    k_user(&k, r->tenant_id, u->id);
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
        k_name(&nk, r->tenant_id, u->name, u->id);
        store__put_raw(s, &nk, "", 0);
    }
}

static void op_user_update(store__rdb *s, store_req *r)
{
    store_user *u = r->user;
    if (!need_id(r, "tenant id", r->tenant_id) || !need_id(r, "user id", u ? u->id : NULL)) return;
    store__key k;
    k_user(&k, r->tenant_id, u->id);
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
            k_name(&nk, r->tenant_id, old->name, u->id);
            store__del(s, &nk);
        }
        k_name(&nk, r->tenant_id, name, u->id);
        store__put_raw(s, &nk, "", 0);
    }
    user_put(s, &k, name, u->pwhash ? u->pwhash : old->pwhash, old->created_at, u->banned);
}

static void op_msg_append(store__rdb *s, store_req *r)
{
    store_append *a = &r->append;
    const char *t = r->tenant_id;
    if (!need_id(r, "tenant id", t) || !need_id(r, "conv", a->conv) ||
        !need_id(r, "from", a->from))
        return;
    bool dedup = a->cmid && *a->cmid;
    if (dedup && !need_id(r, "cmid", a->cmid)) return;
    if (a->must_exist && !need_id(r, "must_exist", a->must_exist)) return;
    if (a->n_rcpt && !a->rcpt) {
        store__fail(r, PL_BAD_REQUEST, "rcpt missing");
        return;
    }
    for (size_t i = 0; i < a->n_rcpt; i++)
        if (!need_id(r, "recipient", a->rcpt[i])) return;
    uint64_t *useqs = a->n_rcpt ? arena_alloc(&r->arena, a->n_rcpt * sizeof(*useqs)) : NULL;

    store__key dk;
    if (dedup) {
        k_dedup(&dk, t, a->from, a->cmid);
        Parley__Rec__Dedup *d;
        int f = store__get(s, r, true, &dk, &parley__rec__dedup__descriptor, &s->scratch,
                           (void **)&d);
        if (f < 0) return;
        if (f > 0) {
            a->dup = true;
            a->seq = d->seq;
            a->ts = d->ts;
            for (size_t i = 0; i < a->n_rcpt && i < d->n_useqs; i++) useqs[i] = d->useqs[i];
            a->useqs = useqs;
            return;
        }
    }
    if (a->must_exist) {
        store__key uk;
        k_user(&uk, t, a->must_exist);
        void *u;
        int f = store__get(s, r, true, &uk, &parley__rec__user__descriptor, &s->scratch, &u);
        if (f < 0) return;
        if (f == 0) {
        store__fail(r, PL_NOT_FOUND, "no such user");
        return;
    }
    }

    /* Load every counter before staging anything. */
    store__key ck;
    k_conv(&ck, t, a->conv);
    uint64_t *conv_ctr = store__counter(s, r, &ck);
    if (!conv_ctr) return;
    uint64_t **ctrs = arena_alloc(&s->scratch, (a->n_rcpt ? a->n_rcpt : 1) * sizeof(*ctrs));
    for (size_t i = 0; i < a->n_rcpt; i++) {
        store__key ik;
        k_inbox(&ik, t, a->rcpt[i]);
        if (!(ctrs[i] = store__counter(s, r, &ik))) return;
    }

    a->seq = ++*conv_ctr;
    a->ts = s->now;
    Parley__Rec__Msg m = PARLEY__REC__MSG__INIT;
    m.from = (char *)a->from;
    m.text = (char *)(a->text ? a->text : "");
    m.cmid = dedup ? (char *)a->cmid : NULL;
    m.has_ts = 1;
    m.ts = a->ts;
    store__key_u64(&ck, a->seq);
    store__put(s, &ck, &m);

    Parley__Rec__Entry en = PARLEY__REC__ENTRY__INIT;
    en.conv = (char *)a->conv;
    en.has_seq = 1;
    en.seq = a->seq;
    size_t vlen = parley__rec__entry__get_packed_size(&en);
    uint8_t *v = arena_alloc(&s->scratch, vlen);
    parley__rec__entry__pack(&en, v);
    for (size_t i = 0; i < a->n_rcpt; i++) {
        store__key ik;
        k_inbox(&ik, t, a->rcpt[i]);
        useqs[i] = ++*ctrs[i];
        store__key_u64(&ik, useqs[i]);
        store__put_raw(s, &ik, (const char *)v, vlen);
    }
    a->useqs = useqs;

    if (dedup) {
        Parley__Rec__Dedup d = PARLEY__REC__DEDUP__INIT;
        d.conv = (char *)a->conv;
        d.has_seq = d.has_ts = 1;
        d.seq = a->seq;
        d.ts = a->ts;
        d.n_useqs = a->n_rcpt;
        d.useqs = useqs;
        store__put(s, &dk, &d);
    }
}

static void op_event_append(store__rdb *s, store_req *r)
{
    if (!need_id(r, "tenant id", r->tenant_id)) return;
    if (!r->event || !r->event->kind) {
        store__fail(r, PL_BAD_REQUEST, "event missing");
        return;
    }
    if (r->n_users && !r->users) {
        store__fail(r, PL_BAD_REQUEST, "users missing");
        return;
    }
    for (size_t i = 0; i < r->n_users; i++)
        if (!need_id(r, "user", r->users[i])) return;
    if (!r->event->ts) r->event->ts = s->now;
    uint64_t *useqs = arena_alloc(&r->arena, (r->n_users ? r->n_users : 1) * sizeof(*useqs));
    if (stage_events(s, r, r->tenant_id, r->users, r->n_users, r->event, useqs)) return;
    r->useqs = useqs;
}

static void op_read_set(store__rdb *s, store_req *r)
{
    const store_event *ev = r->event;
    if (!need_id(r, "tenant id", r->tenant_id) || !need_id(r, "user id", r->user_id)) return;
    if (!ev || !need_id(r, "conv", ev->conv)) return;
    store__key k;
    k_read(&k, r->tenant_id, r->user_id, ev->conv);
    Parley__Rec__ReadPos *old;
    int f = store__get(s, r, true, &k, &parley__rec__read_pos__descriptor, &s->scratch,
                       (void **)&old);
    if (f < 0) return;
    uint64_t *useqs = arena_alloc(&r->arena, sizeof(*useqs));
    r->useqs = useqs;
    if (ev->seq <= (f > 0 ? old->seq : 0)) return; /* not higher: nothing written, useqs[0] = 0 */
    store_event e = *ev;
    if (!e.kind) e.kind = "read";
    if (!e.ts) e.ts = s->now;
    if (stage_events(s, r, r->tenant_id, &r->user_id, 1, &e, useqs)) return;
    Parley__Rec__ReadPos rp = PARLEY__REC__READ_POS__INIT;
    rp.has_seq = 1;
    rp.seq = ev->seq;
    store__put(s, &k, &rp);
}

static void op_token_revoke(store__rdb *s, store_req *r)
{
    if (!need_id(r, "jti", r->revoked ? r->revoked->jti : NULL)) return;
    store__key k;
    k_revoked(&k, r->revoked->jti);
    Parley__Rec__Revoked rec = PARLEY__REC__REVOKED__INIT;
    rec.has_expires_at = 1;
    rec.expires_at = r->revoked->expires_at;
    store__put(s, &k, &rec);
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
    vec v = {.size = sizeof(store_tenant)};
    ProtobufCAllocator al = store__allocator(&r->arena);
    for (rocksdb_iter_seek(it.it, lo.b, lo.len); rocksdb_iter_valid(it.it); rocksdb_iter_next(it.it)) {
        size_t klen, vlen, off = 1, idlen;
        const char *key = rocksdb_iter_key(it.it, &klen);
        const char *val = rocksdb_iter_value(it.it, &vlen);
        const char *id = store__key_next_str(key, klen, &off, &idlen);
        Parley__Rec__Tenant *rec =
            parley__rec__tenant__unpack(&al, vlen, (const uint8_t *)val);
        if (!id || !rec) continue;
        store_tenant *t = vec_push(&v);
        t->id = arena_strndup(&r->arena, id, idlen);
        t->key_hash = rec->key_hash;
        t->settings = rec->settings;
        t->created_at = rec->created_at;
    }
    r->tenants = vec_finish(&v, &r->arena, &r->n_tenants);
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
    if (!need_id(r, "tenant id", r->tenant_id) || !need_id(r, "user id", r->user_id)) return;
    store__key k;
    k_user(&k, r->tenant_id, r->user_id);
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

static bool name_matches(const char *name, const char *q)
{
    if (!name) return false;
    for (; *q; q++, name++)
        if (lower_ascii(*name) != lower_ascii(*q)) return false;
    return true;
}

/* Push onto ids the user id of every key in [lo, succ(lo)), at most max;
 * the id is component `skip` (0-based) after the tenant. */
static int collect_ids(store__rdb *s, store_req *r, const store__key *lo, int skip, size_t max,
                       vec *ids)
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
        if (c) *(char **)vec_push(ids) = arena_strndup(&s->scratch, c, n);
    }
    return store__iter_close(&it, r);
}

static void op_user_search(store__rdb *s, store_req *r)
{
    if (!need_id(r, "tenant id", r->tenant_id)) return;
    const char *q = r->query ? r->query : "";
    if (strlen(q) > STORE__ID_MAX) {
        store__fail(r, PL_BAD_REQUEST, "query too long");
        return;
    }
    uint32_t limit = store__limit(r->limit);

    vec ids = {.size = sizeof(char *)};
    store__key lo;
    store__key_init(&lo, STORE__K_USER);
    store__key_str(&lo, r->tenant_id);
    store__key_raw(&lo, q, strlen(q));
    int rc = collect_ids(s, r, &lo, 0, limit, &ids);
    if (rc == 0 && *q) {
        char lq[STORE__LNAME_MAX + 1];
        lname(lq, q);
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

    vec out = {.size = sizeof(store_user)};
    size_t qlen = strlen(q);
    for (size_t i = 0; i < ids.n && out.n < limit; i++) {
        if (i > 0 && strcmp(cand[i], cand[i - 1]) == 0) continue;
        store__key k;
        k_user(&k, r->tenant_id, cand[i]);
        Parley__Rec__User *rec;
        int f = store__get(s, r, false, &k, &parley__rec__user__descriptor, &r->arena,
                           (void **)&rec);
        if (f < 0) break;
        if (f == 0) continue;
        if (strncmp(cand[i], q, qlen) != 0 && !name_matches(rec->name, q)) continue;
        user_from_rec(vec_push(&out), &r->arena, cand[i], rec);
    }
    pl_free(ids.p);
    r->users_out = vec_finish(&out, &r->arena, &r->n_users_out);
}

/* Fetch the messages entries[i].msg refer to (conv and seq set) in one
 * MultiGet and fill in the rest. */
static void resolve_msgs(store__rdb *s, store_req *r, store_entry *entries, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) m += entries[i].msg != NULL;
    if (!m) return;
    char **keys = arena_alloc(&s->scratch, m * sizeof(*keys));
    size_t *klens = arena_alloc(&s->scratch, m * sizeof(*klens));
    char **vals = arena_alloc(&s->scratch, m * sizeof(*vals));
    size_t *vlens = arena_alloc(&s->scratch, m * sizeof(*vlens));
    char **errs = arena_alloc(&s->scratch, m * sizeof(*errs));
    for (size_t i = 0, j = 0; i < n; i++) {
        if (!entries[i].msg) continue;
        store__key k;
        k_msg(&k, r->tenant_id, entries[i].msg->conv, entries[i].msg->seq);
        keys[j] = arena_memdup(&s->scratch, k.b, k.len);
        klens[j++] = k.len;
    }
    rocksdb_multi_get(s->db, s->ro, m, (const char *const *)keys, klens, vals, vlens, errs);
    ProtobufCAllocator al = store__allocator(&r->arena);
    for (size_t i = 0, j = 0; i < n; i++) {
        store_msg *msg = entries[i].msg;
        if (!msg) continue;
        if (errs[j] && r->status == PL_OK) store__fail(r, PL_UNAVAILABLE, "read: %s", errs[j]);
        Parley__Rec__Msg *rec =
            vals[j] ? parley__rec__msg__unpack(&al, vlens[j], (const uint8_t *)vals[j]) : NULL;
        if (rec) {
            msg->from = rec->from;
            msg->text = rec->text ? rec->text : "";
            msg->cmid = rec->cmid;
            msg->ts = rec->ts;
        } else {
            /* Only a damaged database gets here: keep the entry, empty. */
            msg->from = "";
            msg->text = "";
        }
        rocksdb_free(vals[j]);
        rocksdb_free(errs[j]);
        j++;
    }
}

static void op_inbox_read(store__rdb *s, store_req *r)
{
    if (!need_id(r, "tenant id", r->tenant_id) || !need_id(r, "user id", r->user_id)) return;
    uint32_t limit = store__limit(r->limit);
    store__key prefix, lo, hi;
    k_inbox(&prefix, r->tenant_id, r->user_id);
    uint64_t *head = store__counter(s, r, &prefix);
    if (!head) return;
    r->head = *head;
    if (r->after >= r->head) return;
    lo = prefix;
    store__key_u64(&lo, r->after + 1);
    store__key_succ(&prefix, &hi);

    store__iter it;
    store__iter_open(s, &it, &lo, &hi);
    vec v = {.size = sizeof(store_entry)};
    ProtobufCAllocator al = store__allocator(&r->arena);
    rocksdb_iter_seek(it.it, lo.b, lo.len);
    for (; rocksdb_iter_valid(it.it) && v.n < limit; rocksdb_iter_next(it.it)) {
        size_t klen, vlen;
        const char *key = rocksdb_iter_key(it.it, &klen);
        const char *val = rocksdb_iter_value(it.it, &vlen);
        Parley__Rec__Entry *rec = parley__rec__entry__unpack(&al, vlen, (const uint8_t *)val);
        if (klen != prefix.len + 8 || !rec) continue;
        store_entry *e = vec_push(&v);
        e->useq = store__get_u64(key + prefix.len);
        if (rec->event) {
            e->event = event_from_rec(&r->arena, rec->event);
        } else {
            e->msg = arena_alloc(&r->arena, sizeof(*e->msg));
            e->msg->conv = rec->conv ? rec->conv : "";
            e->msg->seq = rec->seq;
            e->msg->useq = e->useq;
        }
    }
    r->more = rocksdb_iter_valid(it.it);
    r->entries = vec_finish(&v, &r->arena, &r->n_entries);
    if (store__iter_close(&it, r)) return;
    resolve_msgs(s, r, r->entries, r->n_entries);
}

static void op_inbox_head(store__rdb *s, store_req *r)
{
    if (!need_id(r, "tenant id", r->tenant_id) || !need_id(r, "user id", r->user_id)) return;
    store__key prefix;
    k_inbox(&prefix, r->tenant_id, r->user_id);
    uint64_t *head = store__counter(s, r, &prefix);
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
    if (!need_id(r, "tenant id", r->tenant_id) || !need_id(r, "conv", r->conv)) return;
    uint32_t limit = store__limit(r->limit);
    store__key lo, hi;
    k_conv(&lo, r->tenant_id, r->conv);
    if (r->before) {
        hi = lo;
        store__key_u64(&hi, r->before);
    } else {
        store__key_succ(&lo, &hi);
    }
    store__iter it;
    store__iter_open(s, &it, &lo, &hi);
    vec v = {.size = sizeof(store_msg)};
    ProtobufCAllocator al = store__allocator(&r->arena);
    const char *conv = arena_strdup(&r->arena, r->conv);
    rocksdb_iter_seek_to_last(it.it);
    for (; rocksdb_iter_valid(it.it) && v.n < limit; rocksdb_iter_prev(it.it)) {
        size_t klen, vlen;
        const char *key = rocksdb_iter_key(it.it, &klen);
        const char *val = rocksdb_iter_value(it.it, &vlen);
        Parley__Rec__Msg *rec = parley__rec__msg__unpack(&al, vlen, (const uint8_t *)val);
        if (klen != lo.len + 8 || !rec) continue;
        msg_from_rec(vec_push(&v), conv, store__get_u64(key + lo.len), rec);
    }
    r->more = rocksdb_iter_valid(it.it);
    r->msgs = vec_finish(&v, &r->arena, &r->n_msgs);
    store__iter_close(&it, r);
}

static void op_conv_read(store__rdb *s, store_req *r)
{
    if (!need_id(r, "tenant id", r->tenant_id) || !need_id(r, "conv", r->conv)) return;
    uint32_t limit = store__limit(r->limit);
    store__key prefix, lo, hi;
    k_conv(&prefix, r->tenant_id, r->conv);
    uint64_t *head = store__counter(s, r, &prefix);
    if (!head) return;
    r->head = *head;
    if (r->after >= r->head) return;
    lo = prefix;
    store__key_u64(&lo, r->after + 1);
    store__key_succ(&prefix, &hi);
    store__iter it;
    store__iter_open(s, &it, &lo, &hi);
    vec v = {.size = sizeof(store_msg)};
    ProtobufCAllocator al = store__allocator(&r->arena);
    const char *conv = arena_strdup(&r->arena, r->conv);
    rocksdb_iter_seek(it.it, lo.b, lo.len);
    for (; rocksdb_iter_valid(it.it) && v.n < limit; rocksdb_iter_next(it.it)) {
        size_t klen, vlen;
        const char *key = rocksdb_iter_key(it.it, &klen);
        const char *val = rocksdb_iter_value(it.it, &vlen);
        Parley__Rec__Msg *rec = parley__rec__msg__unpack(&al, vlen, (const uint8_t *)val);
        if (klen != prefix.len + 8 || !rec) continue;
        msg_from_rec(vec_push(&v), conv, store__get_u64(key + prefix.len), rec);
    }
    r->more = rocksdb_iter_valid(it.it);
    r->msgs = vec_finish(&v, &r->arena, &r->n_msgs);
    store__iter_close(&it, r);
}

static void op_token_list(store__rdb *s, store_req *r)
{
    store__key lo, hi;
    store__key_init(&lo, STORE__K_REVOKED);
    store__key_succ(&lo, &hi);
    store__iter it;
    store__iter_open(s, &it, &lo, &hi);
    vec v = {.size = sizeof(store_revoked)};
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
        store_revoked *t = vec_push(&v);
        t->jti = arena_strndup(&r->arena, jti, n);
        t->expires_at = rec->expires_at;
    }
    r->revoked_out = vec_finish(&v, &r->arena, &r->n_revoked);
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
    if (!need_id(r, "tenant id", r->tenant_id) || !need_id(r, "user id", r->user_id) ||
        !need_id(r, "conv", r->conv))
        return;
    store__key k;
    k_read(&k, r->tenant_id, r->user_id, r->conv);
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
    default: store__fail(r, PL_BAD_REQUEST, "unknown op %d", (int)r->op); break;
    }
}
