/*
 * rdb_groups.c - groups and channels in the RocksDB backend: create,
 * update, disband, membership (add, remove, role), the reads (a group, a
 * member, the member list, a user's groups, channel search), the group
 * part of a message append, and the member cache.
 *
 * Runs on the store thread only.  The records (key layout at the top of
 * rocksdb.c):
 *
 *   G t g      the group, with its member count
 *   P t g u    a membership            \  written and deleted together
 *   J t u g    the same, by user       /  (member_put, member_del)
 *   C t g, L t lname g                    channel indexes for search
 *
 * Invariants, each kept within one write batch:
 *   1. P t g u exists exactly when J t u g does.
 *   2. G's member count is the number of P rows of g.
 *   3. A group's owner is a member with role owner from creation to
 *      disband: MEMBER_REMOVE skips the owner, MEMBER_ROLE refuses it, and
 *      MEMBER_ADD cannot grant "owner".
 *   4. A disbanded group keeps its G record (disbanded set, count 0) and
 *      nothing else: no P, J, C or L rows.  Every op but create treats it
 *      as missing; create still finds the id taken.
 *   5. C and L rows exist exactly for live channels; L holds the name's
 *      current lowercase form.
 *
 * Membership changes of the batch being built.  Writes that later writes
 * of the same batch must see go through the batch overlay (G, P); a point
 * read of a P row sees them.  Whole member lists (a group message's
 * recipients, a disband) come from a scan of the P rows on disk, which
 * does not; so every membership change is also recorded per group in
 * s->mdelta (scratch memory, cleared after the batch), and a list is the
 * scan merged with the group's changes (members_load).
 *
 * Member cache.  Writing a message to a group (kind "group") needs every
 * member; a busy group would otherwise rescan its rows for each message.
 * The cache keeps member lists by group, most recently used first, up to
 * STORE__MCACHE_ROWS rows in all; a list of more than a quarter of that is
 * used once and not kept.  An entry always equals "disk plus what this
 * batch staged": it is loaded with members_load, dropped whenever the
 * batch changes the group's membership (and reloaded, with the change, by
 * the next message), and the whole cache is dropped when a batch fails to
 * write (rocksdb.c).  Channels never use it: their messages go to no
 * inbox, and a sender's membership is one point read.
 */
#include <stdlib.h>
#include <string.h>

#include "store/rdb_ops.h"

#define uthash_malloc(sz) pl_malloc(sz)
#define uthash_free(ptr, sz) pl_free(ptr)
#include <uthash.h>

/* Channel search reads at most this many index entries. */
#define STORE__CHANNEL_SCAN_MAX 10000

/* ---- member lists ---- */

/* One member as loaded from disk and the batch. */
typedef struct mrow {
    const char *user;      /* scratch */
    int role;
    uint64_t joined_at;
} mrow;

/* One membership change staged by the batch. */
typedef struct mchange {
    struct mchange *next;
    const char *user;      /* scratch */
    int role;              /* -1: removed */
    uint64_t joined_at;
    size_t order;          /* staging order: the later change wins */
} mchange;

/* The batch's changes to one group, keyed by the group's P prefix. */
struct store__md {
    UT_hash_handle hh;
    mchange *first;
    size_t n;
    size_t klen;
    char key[];
};

/* A cached member list, keyed by the group's P prefix.  rows are sorted by
 * user; each names its user by offset into strs (NUL-terminated ids, one
 * block, so a message's recipients are copied out with one memcpy). */
typedef struct mc_row {
    uint32_t off;
    uint8_t role;
} mc_row;

struct store__mc {
    UT_hash_handle hh;
    store__mc *prev, *next;    /* LRU list */
    bool cached;               /* in the cache; else the caller frees it */
    size_t n;
    mc_row *rows;
    char *strs;
    size_t strs_len;
    size_t klen;
    char key[];
};

static store__md *mdelta_for(store__rdb *s, const store__key *prefix)
{
    store__md *d = NULL;
    HASH_FIND(hh, s->mdelta, prefix->b, prefix->len, d);
    if (!d) {
        d = arena_alloc(&s->scratch, sizeof(*d) + prefix->len);
        memcpy(d->key, prefix->b, prefix->len);
        d->klen = prefix->len;
        HASH_ADD_KEYPTR(hh, s->mdelta, d->key, d->klen, d);
    }
    return d;
}

static void mdelta_push(store__rdb *s, store__md *d, const char *user, int role, uint64_t joined)
{
    mchange *c = arena_alloc(&s->scratch, sizeof(*c));
    c->user = user;
    c->role = role;
    c->joined_at = joined;
    c->order = d->n++;
    c->next = d->first;
    d->first = c;
}

void store__mdelta_clear(store__rdb *s) { HASH_CLEAR(hh, s->mdelta); }

static void mc_free(store__mc *m)
{
    if (!m) return;
    pl_free(m->rows);
    pl_free(m->strs);
    pl_free(m);
}

static void mc_unlink(store__rdb *s, store__mc *m)
{
    if (m->prev) m->prev->next = m->next; else s->mc_first = m->next;
    if (m->next) m->next->prev = m->prev; else s->mc_last = m->prev;
    m->prev = m->next = NULL;
}

static void mc_front(store__rdb *s, store__mc *m)
{
    m->prev = NULL;
    m->next = s->mc_first;
    if (s->mc_first) s->mc_first->prev = m; else s->mc_last = m;
    s->mc_first = m;
}

static void mc_remove(store__rdb *s, store__mc *m)
{
    HASH_DEL(s->mcache, m);
    mc_unlink(s, m);
    s->mc_rows -= m->n;
    mc_free(m);
}

void store__mcache_drop_all(store__rdb *s)
{
    while (s->mc_first) mc_remove(s, s->mc_first);
}

static void mcache_invalidate(store__rdb *s, const store__key *prefix)
{
    store__mc *m = NULL;
    HASH_FIND(hh, s->mcache, prefix->b, prefix->len, m);
    if (m) mc_remove(s, m);
}

static int mchange_cmp(const void *a, const void *b)
{
    const mchange *x = *(const mchange *const *)a, *y = *(const mchange *const *)b;
    int c = strcmp(x->user, y->user);
    if (c) return c;
    return x->order < y->order ? -1 : 1;
}

/*
 * The members of group prefix (P t g) as of now in the batch: the rows on
 * disk merged with the batch's changes, sorted by user, into out (a vec
 * of mrow; strings in scratch).  Returns 0, or -1 with r failed.
 */
static int members_load(store__rdb *s, store_req *r, const store__key *prefix, store__vec *out)
{
    store__vec disk = {.size = sizeof(mrow)};
    store__key hi;
    store__key_succ(prefix, &hi);
    store__iter it;
    store__iter_open(s, &it, prefix, &hi);
    ProtobufCAllocator al = store__allocator(&s->scratch);
    for (rocksdb_iter_seek(it.it, prefix->b, prefix->len); rocksdb_iter_valid(it.it);
         rocksdb_iter_next(it.it)) {
        size_t klen, vlen, off = prefix->len, n;
        const char *key = rocksdb_iter_key(it.it, &klen);
        const char *val = rocksdb_iter_value(it.it, &vlen);
        const char *u = store__key_next_str(key, klen, &off, &n);
        Parley__Rec__Member *m = parley__rec__member__unpack(&al, vlen, (const uint8_t *)val);
        if (!u || !m) continue;
        mrow *row = store__vec_push(&disk);
        row->user = arena_strndup(&s->scratch, u, n);
        row->role = m->role;
        row->joined_at = m->joined_at;
    }
    if (store__iter_close(&it, r)) {
        store__vec_free(&disk);
        return -1;
    }
    store__md *d = NULL;
    HASH_FIND(hh, s->mdelta, prefix->b, prefix->len, d);
    if (!d || !d->n) {
        *out = disk;
        return 0;
    }
    /* Merge: the changes sorted by user, the last change of each winning. */
    mchange **ch = pl_malloc(d->n * sizeof(*ch));
    size_t nc = 0;
    for (mchange *c = d->first; c; c = c->next) ch[nc++] = c;
    qsort(ch, nc, sizeof(*ch), mchange_cmp);
    *out = (store__vec){.size = sizeof(mrow)};
    mrow *rows = (mrow *)disk.p;
    size_t i = 0, j = 0;
    while (i < disk.n || j < nc) {
        while (j + 1 < nc && strcmp(ch[j]->user, ch[j + 1]->user) == 0) j++;
        int c = i == disk.n ? 1 : j == nc ? -1 : strcmp(rows[i].user, ch[j]->user);
        if (c < 0) {
            *(mrow *)store__vec_push(out) = rows[i++];
            continue;
        }
        if (c == 0) i++;
        if (ch[j]->role >= 0)
            *(mrow *)store__vec_push(out) = (mrow){ch[j]->user, ch[j]->role, ch[j]->joined_at};
        j++;
    }
    pl_free(ch);
    store__vec_free(&disk);
    return 0;
}

/* The member list of a group (kind "group") from the cache, loading it if
 * needed.  If the result is not cached (too large), the caller frees it
 * with mc_free after use.  NULL with r failed on a read error. */
static store__mc *mcache_get(store__rdb *s, store_req *r, const store__key *prefix)
{
    store__mc *m = NULL;
    HASH_FIND(hh, s->mcache, prefix->b, prefix->len, m);
    if (m) {
        if (m != s->mc_first) {
            mc_unlink(s, m);
            mc_front(s, m);
        }
        return m;
    }
    store__vec v = {.size = sizeof(mrow)};
    if (members_load(s, r, prefix, &v)) return NULL;
    mrow *rows = (mrow *)v.p;
    size_t len = 0;
    for (size_t i = 0; i < v.n; i++) len += strlen(rows[i].user) + 1;
    m = pl_calloc(1, sizeof(*m) + prefix->len);
    memcpy(m->key, prefix->b, prefix->len);
    m->klen = prefix->len;
    m->n = v.n;
    m->rows = pl_malloc((v.n ? v.n : 1) * sizeof(*m->rows));
    m->strs = pl_malloc(len ? len : 1);
    m->strs_len = len;
    size_t off = 0;
    for (size_t i = 0; i < v.n; i++) {
        size_t n = strlen(rows[i].user) + 1;
        memcpy(m->strs + off, rows[i].user, n);
        m->rows[i] = (mc_row){(uint32_t)off, (uint8_t)rows[i].role};
        off += n;
    }
    store__vec_free(&v);
    if (m->n > STORE__MCACHE_ROWS / 4) return m; /* too large to keep */
    m->cached = true;
    HASH_ADD_KEYPTR(hh, s->mcache, m->key, m->klen, m);
    mc_front(s, m);
    s->mc_rows += m->n;
    while (s->mc_rows > STORE__MCACHE_ROWS && s->mc_last != m) mc_remove(s, s->mc_last);
    return m;
}

/* The row of user in a cached list, or NULL. */
static const mc_row *mc_find(const store__mc *m, const char *user)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->strs + m->rows[mid].off, user);
        if (c == 0) return &m->rows[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

/* ---- staging memberships ---- */

/* What membership writes of one op share: the group and its changes. */
typedef struct mwriter {
    const char *t, *g;
    int kind;
    store__md *delta;
} mwriter;

static void mwriter_init(store__rdb *s, mwriter *w, const char *t, const char *g, int kind)
{
    w->t = t;
    w->g = g;
    w->kind = kind;
    store__key prefix;
    store__k_member(&prefix, t, g, NULL);
    w->delta = mdelta_for(s, &prefix);
    mcache_invalidate(s, &prefix);
}

/* Stage a membership (P and J) with this role; user must stay valid until
 * the batch ends (the request's or the scratch arena). */
static void member_put(store__rdb *s, mwriter *w, const char *user, int role, uint64_t joined)
{
    store__key k;
    Parley__Rec__Member m = PARLEY__REC__MEMBER__INIT;
    m.has_role = role != PARLEY__REC__ROLE__ROLE_MEMBER;
    m.role = role;
    m.has_joined_at = 1;
    m.joined_at = joined;
    store__k_member(&k, w->t, w->g, user);
    store__put(s, &k, &m);
    Parley__Rec__Joined j = PARLEY__REC__JOINED__INIT;
    j.has_kind = w->kind != PARLEY__REC__GROUP_KIND__KIND_GROUP;
    j.kind = w->kind;
    j.has_role = m.has_role;
    j.role = role;
    j.has_joined_at = 1;
    j.joined_at = joined;
    store__k_joined(&k, w->t, user, w->g);
    store__put(s, &k, &j);
    mdelta_push(s, w->delta, user, role, joined);
}

static void member_del(store__rdb *s, mwriter *w, const char *user)
{
    store__key k;
    store__k_member(&k, w->t, w->g, user);
    store__del(s, &k);
    store__k_joined(&k, w->t, user, w->g);
    store__del(s, &k);
    mdelta_push(s, w->delta, user, -1, 0);
}

static void group_put(store__rdb *s, const char *t, const char *g, const Parley__Rec__Group *rec)
{
    store__key k;
    store__k_group(&k, t, g);
    store__put(s, &k, rec);
}

/* The channel indexes (C, L) of a live channel: put or delete. */
static void channel_index(store__rdb *s, const char *t, const char *g, const char *name, bool put)
{
    store__key k;
    store__k_channel(&k, t, g);
    if (put) store__put_raw(s, &k, "", 0); else store__del(s, &k);
    store__k_channame(&k, t, name ? name : "", g);
    if (put) store__put_raw(s, &k, "", 0); else store__del(s, &k);
}

/* ---- validation ---- */

/* A group id must leave room for "g:" within a conversation id. */
static bool need_group_id(store_req *r, const char *g)
{
    if (!store__need_id(r, "group id", g)) return false;
    if (strlen(g) + 2 <= STORE__ID_MAX) return true;
    store__fail(r, PL_BAD_REQUEST, "group id over %d bytes", STORE__ID_MAX - 2);
    return false;
}

/* Order pointers into one array of ids by id, then by position. */
static int id_slot_cmp(const void *a, const void *b)
{
    const char *const *x = *(const char *const *const *)a, *const *y = *(const char *const *const *)b;
    int c = strcmp(*x, *y);
    if (c) return c;
    return x < y ? -1 : x > y;
}

/*
 * Set first[i] to whether users[i] is the first occurrence of its id in
 * users[0..n) (later occurrences get false).  Returns the number of
 * repeats.
 */
static size_t mark_firsts(store__rdb *s, const char *const *users, size_t n, bool *first)
{
    const char *const **p = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*p));
    for (size_t i = 0; i < n; i++) {
        p[i] = &users[i];
        first[i] = true;
    }
    qsort(p, n, sizeof(*p), id_slot_cmp);
    size_t repeats = 0;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(*p[i], *p[i - 1]) != 0) continue;
        first[p[i] - users] = false;
        repeats++;
    }
    return repeats;
}

/* The keys P t g users[i], in scratch, for MultiGet. */
static void member_keys(store__rdb *s, const char *t, const char *g, const char *const *users,
                        size_t n, const char ***keys, size_t **klens)
{
    *keys = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(**keys));
    *klens = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(**klens));
    for (size_t i = 0; i < n; i++) {
        store__key k;
        store__k_member(&k, t, g, users[i]);
        (*keys)[i] = arena_memdup(&s->scratch, k.b, k.len);
        (*klens)[i] = k.len;
    }
}

/* An event for the group's members: the caller's, with the group and its
 * conversation filled in, or one of kind def. */
static store_event group_event(store__rdb *s, store_req *r, const char *g, const char *def)
{
    store_event e = {0};
    if (r->event) e = *r->event;
    if (!e.kind) e.kind = def;
    e.group = g;
    e.conv = store__group_conv(&s->scratch, g);
    if (!e.ts) e.ts = s->now;
    return e;
}

/* ---- results ---- */

/* Fill g (strings copied into r's arena) from a record decoded into
 * scratch; with_seq also looks up the conversation's last seq. */
static void group_set(store__rdb *s, store_req *r, store_group *g, const char *id,
                      const Parley__Rec__Group *rec, bool with_seq)
{
    memset(g, 0, sizeof(*g));
    g->id = arena_strdup(&r->arena, id);
    g->name = arena_strdup(&r->arena, rec->name ? rec->name : "");
    g->kind = store__kind_str(rec->kind);
    g->owner = arena_strdup(&r->arena, rec->owner);
    g->admins_post_only = rec->admins_post_only;
    g->disbanded = rec->disbanded;
    g->created_at = rec->created_at;
    g->members = rec->members;
    if (with_seq) {
        store__ent *ce =
            store__ent_get(s, r, r->tenant_id, STORE__NUM_CONV, store__group_conv(&s->scratch, id));
        uint64_t *last = ce ? store__ent_last(s, r, ce, STORE__K_MSG) : NULL;
        if (last) g->last_seq = *last;
    }
}

static store_group *group_new(store__rdb *s, store_req *r, const char *id,
                              const Parley__Rec__Group *rec, bool with_seq)
{
    store_group *g = arena_alloc(&r->arena, sizeof(*g));
    group_set(s, r, g, id, rec, with_seq);
    return g;
}

/* ---- the group part of a message append ---- */

int store__group_append_check(store__rdb *s, store_req *r)
{
    store_append *a = &r->append;
    const char *t = r->tenant_id;
    if (strncmp(a->conv, "g:", 2) != 0 || strcmp(a->conv + 2, a->group) != 0) {
        store__fail(r, PL_BAD_REQUEST, "conv of a group message must be g:<group>");
        return -1;
    }
    Parley__Rec__Group *g;
    int f = store__group_load(s, r, true, t, a->group, &g);
    if (f < 0) return -1;
    if (f == 0) {
        store__fail(r, PL_NOT_FOUND, "no such group");
        return -1;
    }
    store__key prefix;
    store__k_member(&prefix, t, a->group, NULL);
    if (g->kind == PARLEY__REC__GROUP_KIND__KIND_CHANNEL) {
        store__key k;
        store__k_member(&k, t, a->group, a->from);
        Parley__Rec__Member *m;
        f = store__get(s, r, true, &k, &parley__rec__member__descriptor, &s->scratch, (void **)&m);
        if (f < 0) return -1;
        if (f == 0 || (g->admins_post_only && m->role == PARLEY__REC__ROLE__ROLE_MEMBER)) {
            store__fail(r, PL_FORBIDDEN, f ? "only admins may post" : "not a member");
            return -1;
        }
        return 0;
    }
    store__mc *mc = mcache_get(s, r, &prefix);
    if (!mc) return -1;
    const mc_row *me = mc_find(mc, a->from);
    if (!me || (g->admins_post_only && me->role == PARLEY__REC__ROLE__ROLE_MEMBER)) {
        store__fail(r, PL_FORBIDDEN, me ? "only admins may post" : "not a member");
        if (!mc->cached) mc_free(mc);
        return -1;
    }
    /* The recipients, sender first, pointing into one copy of the ids. */
    char *strs = arena_memdup(&r->arena, mc->strs, mc->strs_len ? mc->strs_len : 1);
    const char **rcpt = arena_alloc(&r->arena, mc->n * sizeof(*rcpt));
    size_t n = 0;
    rcpt[n++] = strs + me->off;
    for (size_t i = 0; i < mc->n; i++)
        if (&mc->rows[i] != me) rcpt[n++] = strs + mc->rows[i].off;
    a->rcpt = rcpt;
    a->n_rcpt = n;
    if (!mc->cached) mc_free(mc);
    return 0;
}

/* ---- write ops ---- */

void store__op_group_create(store__rdb *s, store_req *r)
{
    store_group *gr = r->group;
    const char *t = r->tenant_id;
    if (!store__need_id(r, "tenant id", t)) return;
    if (!gr) {
        store__fail(r, PL_BAD_REQUEST, "group missing");
        return;
    }
    if (!need_group_id(r, gr->id) || !store__need_id(r, "owner", gr->owner)) return;
    int kind;
    if (!gr->kind || strcmp(gr->kind, "group") == 0) {
        kind = PARLEY__REC__GROUP_KIND__KIND_GROUP;
    } else if (strcmp(gr->kind, "channel") == 0) {
        kind = PARLEY__REC__GROUP_KIND__KIND_CHANNEL;
    } else {
        store__fail(r, PL_BAD_REQUEST, "kind must be group or channel");
        return;
    }
    const char *const *users = r->users;
    size_t n = r->n_users;
    if (n == 0) {
        users = &gr->owner;
        n = 1;
    }
    if (!users) {
        store__fail(r, PL_BAD_REQUEST, "users missing");
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!store__need_id(r, "user", users[i])) return;
    if (strcmp(users[0], gr->owner) != 0) {
        store__fail(r, PL_BAD_REQUEST, "users[0] must be the owner");
        return;
    }
    /* A user listed again is a member once (its useq stays 0). */
    bool *first = arena_alloc(&s->scratch, n * sizeof(*first));
    size_t nm = n - mark_firsts(s, users, n, first);
    const char **members = arena_alloc(&s->scratch, nm * sizeof(*members));
    for (size_t i = 0, j = 0; i < n; i++)
        if (first[i]) members[j++] = users[i];
    if (r->limit && nm > r->limit) {
        store__fail(r, PL_TOO_LARGE, "%zu members, at most %u", nm, r->limit);
        return;
    }
    store__key gk;
    store__k_group(&gk, t, gr->id);
    void *old;
    int f = store__get(s, r, true, &gk, &parley__rec__group__descriptor, &s->scratch, &old);
    if (f < 0) return;
    if (f > 0) {
        store__fail(r, PL_CONFLICT, "group exists");
        return;
    }
    if (store__users_exist(s, r, t, members, nm)) return;

    if (!gr->created_at) gr->created_at = s->now;
    store_event ev = group_event(s, r, gr->id, "group_joined");
    if (!ev.user) ev.user = gr->owner;
    uint64_t *ev_useqs = arena_alloc(&s->scratch, nm * sizeof(*ev_useqs));
    if (store__stage_events(s, r, t, members, nm, &ev, ev_useqs)) return;
    uint64_t *useqs = arena_alloc(&r->arena, n * sizeof(*useqs));
    for (size_t i = 0, j = 0; i < n; i++)
        if (first[i]) useqs[i] = ev_useqs[j++];

    Parley__Rec__Group rec = PARLEY__REC__GROUP__INIT;
    rec.name = (char *)(gr->name ? gr->name : "");
    rec.has_kind = 1;
    rec.kind = kind;
    rec.owner = (char *)gr->owner;
    rec.has_admins_post_only = gr->admins_post_only;
    rec.admins_post_only = gr->admins_post_only;
    rec.has_created_at = 1;
    rec.created_at = gr->created_at;
    rec.has_members = 1;
    rec.members = nm;
    group_put(s, t, gr->id, &rec);
    mwriter w;
    mwriter_init(s, &w, t, gr->id, kind);
    for (size_t i = 0; i < nm; i++)
        member_put(s, &w, members[i],
                   i ? PARLEY__REC__ROLE__ROLE_MEMBER : PARLEY__REC__ROLE__ROLE_OWNER,
                   gr->created_at);
    if (kind == PARLEY__REC__GROUP_KIND__KIND_CHANNEL) channel_index(s, t, gr->id, rec.name, true);
    gr->members = nm;
    gr->disbanded = false;
    r->useqs = useqs;
}

/* Validate tenant and group id and load the live group through the batch:
 * 1 with *g, or 0 with r failed (PL_NOT_FOUND or another error). */
static int live_group(store__rdb *s, store_req *r, const char *g, Parley__Rec__Group **out)
{
    if (!store__need_id(r, "tenant id", r->tenant_id) || !need_group_id(r, g)) return 0;
    int f = store__group_load(s, r, true, r->tenant_id, g, out);
    if (f == 0) store__fail(r, PL_NOT_FOUND, "no such group");
    return f > 0;
}

void store__op_group_update(store__rdb *s, store_req *r)
{
    store_group *gr = r->group;
    Parley__Rec__Group *g;
    if (!gr) {
        store__fail(r, PL_BAD_REQUEST, "group missing");
        return;
    }
    if (!live_group(s, r, gr->id, &g)) return;
    const char *t = r->tenant_id;
    if (gr->name && strcmp(gr->name, g->name ? g->name : "") != 0) {
        if (g->kind == PARLEY__REC__GROUP_KIND__KIND_CHANNEL) {
            store__key k;
            store__k_channame(&k, t, g->name ? g->name : "", gr->id);
            store__del(s, &k);
            store__k_channame(&k, t, gr->name, gr->id);
            store__put_raw(s, &k, "", 0);
        }
        g->name = (char *)gr->name;
    }
    g->has_admins_post_only = gr->admins_post_only;
    g->admins_post_only = gr->admins_post_only;
    group_put(s, t, gr->id, g);
}

void store__op_group_disband(store__rdb *s, store_req *r)
{
    Parley__Rec__Group *g;
    if (!live_group(s, r, r->group_id, &g)) return;
    const char *t = r->tenant_id, *id = r->group_id;
    store__key prefix;
    store__k_member(&prefix, t, id, NULL);
    store__vec v = {.size = sizeof(mrow)};
    if (members_load(s, r, &prefix, &v)) return;
    mrow *rows = (mrow *)v.p;
    size_t n = v.n;
    store_user *out = arena_alloc(&r->arena, (n ? n : 1) * sizeof(*out));
    const char **users = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*users));
    for (size_t i = 0; i < n; i++) {
        out[i].id = arena_strdup(&r->arena, rows[i].user);
        users[i] = rows[i].user;
    }
    store__vec_free(&v);
    store_event ev = group_event(s, r, id, "group_disbanded");
    uint64_t *useqs = arena_alloc(&r->arena, (n ? n : 1) * sizeof(*useqs));
    if (store__stage_events(s, r, t, users, n, &ev, useqs)) return;

    mwriter w;
    mwriter_init(s, &w, t, id, g->kind);
    for (size_t i = 0; i < n; i++) member_del(s, &w, users[i]);
    if (g->kind == PARLEY__REC__GROUP_KIND__KIND_CHANNEL) channel_index(s, t, id, g->name, false);
    g->has_disbanded = 1;
    g->disbanded = true;
    g->has_members = 1;
    g->members = 0;
    group_put(s, t, id, g);
    r->users_out = out;
    r->n_users_out = n;
    r->useqs = useqs;
}

void store__op_member_add(store__rdb *s, store_req *r)
{
    Parley__Rec__Group *g;
    if (!live_group(s, r, r->group_id, &g)) return;
    const char *t = r->tenant_id, *id = r->group_id;
    int role = r->role ? store__role_parse(r->role) : PARLEY__REC__ROLE__ROLE_MEMBER;
    if (role != PARLEY__REC__ROLE__ROLE_MEMBER && role != PARLEY__REC__ROLE__ROLE_ADMIN) {
        store__fail(r, PL_BAD_REQUEST, "role must be member or admin");
        return;
    }
    size_t n = r->n_users;
    if (n && !r->users) {
        store__fail(r, PL_BAD_REQUEST, "users missing");
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!store__need_id(r, "user", r->users[i])) return;
    bool *add = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*add));
    mark_firsts(s, r->users, n, add);
    if (store__users_exist(s, r, t, r->users, n)) return;
    const char **keys, **vals = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*vals));
    size_t *klens, *vlens = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*vlens));
    member_keys(s, t, id, r->users, n, &keys, &klens);
    if (store__get_many(s, r, true, keys, klens, n, NULL, vals, vlens)) return;
    const char **added = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*added));
    size_t na = 0;
    for (size_t i = 0; i < n; i++) {
        if (vals[i]) add[i] = false; /* already a member */
        if (add[i]) added[na++] = r->users[i];
    }
    if (r->limit && g->members + na > r->limit) {
        store__fail(r, PL_TOO_LARGE, "%llu members, at most %u",
                    (unsigned long long)(g->members + na), r->limit);
        return;
    }
    /* The conversation's latest seq, for the new members' read positions,
     * and their id cache entries, loaded before anything is staged. */
    store__ent *ce = store__ent_get(s, r, t, STORE__NUM_CONV, store__group_conv(&s->scratch, id));
    uint64_t *last = ce ? store__ent_last(s, r, ce, STORE__K_MSG) : NULL;
    if (!last) return;
    store__ent **es = arena_alloc(&s->scratch, (na ? na : 1) * sizeof(*es));
    if (*last && store__ents_get(s, r, t, STORE__NUM_USER, added, na, es)) return;
    store_event ev = group_event(s, r, id, "group_joined");
    uint64_t *ev_useqs = arena_alloc(&s->scratch, (na ? na : 1) * sizeof(*ev_useqs));
    if (store__stage_events(s, r, t, added, na, &ev, ev_useqs)) return;

    uint64_t *useqs = arena_alloc(&r->arena, (n ? n : 1) * sizeof(*useqs));
    if (na) {
        mwriter w;
        mwriter_init(s, &w, t, id, g->kind);
        for (size_t i = 0, j = 0; i < n; i++) {
            if (!add[i]) continue;
            member_put(s, &w, r->users[i], role, s->now);
            useqs[i] = ev_useqs[j++];
        }
        g->has_members = 1;
        g->members += na;
        group_put(s, t, id, g);
        /* A new member has read what came before it joined: its home shows
         * no unread backlog of a channel it has just found. */
        if (*last) {
            Parley__Rec__ReadPos rp = PARLEY__REC__READ_POS__INIT;
            rp.has_seq = 1;
            rp.seq = *last;
            for (size_t i = 0; i < na; i++) {
                store__key k;
                store__k_read(&k, store__ent_num(s, es[i]), ce->num);
                store__put(s, &k, &rp);
            }
        }
    }
    r->useqs = useqs;
    r->group = group_new(s, r, id, g, false);
}

void store__op_member_remove(store__rdb *s, store_req *r)
{
    Parley__Rec__Group *g;
    if (!live_group(s, r, r->group_id, &g)) return;
    const char *t = r->tenant_id, *id = r->group_id;
    size_t n = r->n_users;
    if (n && !r->users) {
        store__fail(r, PL_BAD_REQUEST, "users missing");
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!store__need_id(r, "user", r->users[i])) return;
    bool *rm = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*rm));
    mark_firsts(s, r->users, n, rm);
    const char **keys, **vals = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*vals));
    size_t *klens, *vlens = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*vlens));
    member_keys(s, t, id, r->users, n, &keys, &klens);
    if (store__get_many(s, r, true, keys, klens, n, &s->scratch, vals, vlens)) return;
    const char **gone = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*gone));
    size_t ng = 0;
    for (size_t i = 0; i < n; i++) {
        if (!vals[i]) rm[i] = false;
        if (!rm[i]) continue;
        Parley__Rec__Member *m =
            store__decode(r, &parley__rec__member__descriptor, &s->scratch, vals[i], vlens[i]);
        if (!m) return;
        if (m->role == PARLEY__REC__ROLE__ROLE_OWNER) rm[i] = false; /* never the owner */
        else gone[ng++] = r->users[i];
    }
    store_event ev = group_event(s, r, id, "group_left");
    uint64_t *ev_useqs = arena_alloc(&s->scratch, (ng ? ng : 1) * sizeof(*ev_useqs));
    if (store__stage_events(s, r, t, gone, ng, &ev, ev_useqs)) return;

    uint64_t *useqs = arena_alloc(&r->arena, (n ? n : 1) * sizeof(*useqs));
    if (ng) {
        mwriter w;
        mwriter_init(s, &w, t, id, g->kind);
        for (size_t i = 0, j = 0; i < n; i++) {
            if (!rm[i]) continue;
            member_del(s, &w, r->users[i]);
            useqs[i] = ev_useqs[j++];
        }
        g->has_members = 1;
        g->members = g->members > ng ? g->members - ng : 0;
        group_put(s, t, id, g);
    }
    r->useqs = useqs;
}

void store__op_member_role(store__rdb *s, store_req *r)
{
    Parley__Rec__Group *g;
    if (!live_group(s, r, r->group_id, &g)) return;
    if (!store__need_id(r, "user id", r->user_id)) return;
    int role = store__role_parse(r->role);
    if (role != PARLEY__REC__ROLE__ROLE_MEMBER && role != PARLEY__REC__ROLE__ROLE_ADMIN) {
        store__fail(r, PL_BAD_REQUEST, "role must be member or admin");
        return;
    }
    store__key k;
    store__k_member(&k, r->tenant_id, r->group_id, r->user_id);
    Parley__Rec__Member *m;
    int f = store__get(s, r, true, &k, &parley__rec__member__descriptor, &s->scratch, (void **)&m);
    if (f < 0) return;
    if (f == 0) {
        store__fail(r, PL_NOT_FOUND, "not a member");
        return;
    }
    if (m->role == PARLEY__REC__ROLE__ROLE_OWNER) {
        store__fail(r, PL_FORBIDDEN, "the owner's role never changes");
        return;
    }
    if ((int)m->role == role) return;
    mwriter w;
    mwriter_init(s, &w, r->tenant_id, r->group_id, g->kind);
    member_put(s, &w, r->user_id, role, m->joined_at);
}

/* ---- read ops ---- */

/* Validate, load the live group (committed state) and set r->group. */
static Parley__Rec__Group *read_group(store__rdb *s, store_req *r)
{
    if (!store__need_id(r, "tenant id", r->tenant_id) || !need_group_id(r, r->group_id))
        return NULL;
    Parley__Rec__Group *g;
    int f = store__group_load(s, r, false, r->tenant_id, r->group_id, &g);
    if (f < 0) return NULL;
    if (f == 0) {
        store__fail(r, PL_NOT_FOUND, "no such group");
        return NULL;
    }
    r->group = group_new(s, r, r->group_id, g, true);
    return g;
}

void store__op_group_get(store__rdb *s, store_req *r) { read_group(s, r); }

void store__op_member_get(store__rdb *s, store_req *r)
{
    if (!read_group(s, r) || !store__need_id(r, "user id", r->user_id)) return;
    store__key k;
    store__k_member(&k, r->tenant_id, r->group_id, r->user_id);
    Parley__Rec__Member *m;
    int f = store__get(s, r, false, &k, &parley__rec__member__descriptor, &s->scratch, (void **)&m);
    if (f <= 0) return;
    r->member = arena_alloc(&r->arena, sizeof(*r->member));
    r->member->user = arena_strdup(&r->arena, r->user_id);
    r->member->role = store__role_str(m->role);
    r->member->joined_at = m->joined_at;
}

void store__op_member_list(store__rdb *s, store_req *r)
{
    if (!read_group(s, r)) return;
    const char *after = r->query && *r->query ? r->query : NULL;
    if (after && strlen(after) > STORE__ID_MAX) {
        store__fail(r, PL_BAD_REQUEST, "after too long");
        return;
    }
    uint32_t limit = store__limit(r->limit);
    store__key prefix, lo, hi;
    store__k_member(&prefix, r->tenant_id, r->group_id, NULL);
    store__key_succ(&prefix, &hi);
    lo = prefix;
    if (after) {
        /* The first key after "after\0" is "after\0\0" or above. */
        store__key_str(&lo, after);
        store__key_raw(&lo, "", 1);
    }
    store__iter it;
    store__iter_open(s, &it, &prefix, &hi);
    store__vec v = {.size = sizeof(store_member)};
    ProtobufCAllocator al = store__allocator(&s->scratch);
    rocksdb_iter_seek(it.it, lo.b, lo.len);
    for (; rocksdb_iter_valid(it.it) && v.n < limit; rocksdb_iter_next(it.it)) {
        size_t klen, vlen, off = prefix.len, n;
        const char *key = rocksdb_iter_key(it.it, &klen);
        const char *val = rocksdb_iter_value(it.it, &vlen);
        const char *u = store__key_next_str(key, klen, &off, &n);
        Parley__Rec__Member *m = parley__rec__member__unpack(&al, vlen, (const uint8_t *)val);
        if (!u || !m) continue;
        store_member *sm = store__vec_push(&v);
        sm->user = arena_strndup(&r->arena, u, n);
        sm->role = store__role_str(m->role);
        sm->joined_at = m->joined_at;
    }
    r->more = rocksdb_iter_valid(it.it);
    r->members_out = store__vec_finish(&v, &r->arena, &r->n_members_out);
    store__iter_close(&it, r);
}

/*
 * Fill groups_out from a list of group ids (sorted), their records read
 * with one MultiGet; roles[i] (may be NULL) is the user's role in ids[i].
 * Groups that are missing or disbanded are left out.
 */
static void groups_fill(store__rdb *s, store_req *r, const char *const *ids, const int *roles,
                        size_t n, size_t limit)
{
    const char **keys = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*keys));
    size_t *klens = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*klens));
    const char **vals = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*vals));
    size_t *vlens = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*vlens));
    for (size_t i = 0; i < n; i++) {
        store__key k;
        store__k_group(&k, r->tenant_id, ids[i]);
        keys[i] = arena_memdup(&s->scratch, k.b, k.len);
        klens[i] = k.len;
    }
    if (store__get_many(s, r, false, keys, klens, n, &s->scratch, vals, vlens)) return;
    store__vec v = {.size = sizeof(store_group)};
    for (size_t i = 0; i < n && v.n < limit; i++) {
        if (!vals[i]) continue;
        Parley__Rec__Group *g =
            store__decode(r, &parley__rec__group__descriptor, &s->scratch, vals[i], vlens[i]);
        if (!g) break;
        if (g->disbanded) continue;
        store_group *out = store__vec_push(&v);
        group_set(s, r, out, ids[i], g, true);
        if (roles) out->role = store__role_str(roles[i]);
    }
    r->groups_out = store__vec_finish(&v, &r->arena, &r->n_groups_out);
}

void store__op_user_groups(store__rdb *s, store_req *r)
{
    if (!store__need_id(r, "tenant id", r->tenant_id) || !store__need_id(r, "user id", r->user_id))
        return;
    store__key prefix, hi;
    store__k_joined(&prefix, r->tenant_id, r->user_id, NULL);
    store__key_succ(&prefix, &hi);
    store__iter it;
    store__iter_open(s, &it, &prefix, &hi);
    store__vec ids = {.size = sizeof(char *)}, roles = {.size = sizeof(int)};
    ProtobufCAllocator al = store__allocator(&s->scratch);
    for (rocksdb_iter_seek(it.it, prefix.b, prefix.len); rocksdb_iter_valid(it.it);
         rocksdb_iter_next(it.it)) {
        size_t klen, vlen, off = prefix.len, n;
        const char *key = rocksdb_iter_key(it.it, &klen);
        const char *val = rocksdb_iter_value(it.it, &vlen);
        const char *g = store__key_next_str(key, klen, &off, &n);
        Parley__Rec__Joined *j = parley__rec__joined__unpack(&al, vlen, (const uint8_t *)val);
        if (!g || !j) continue;
        *(char **)store__vec_push(&ids) = arena_strndup(&s->scratch, g, n);
        *(int *)store__vec_push(&roles) = j->role;
    }
    if (store__iter_close(&it, r) == 0)
        groups_fill(s, r, (const char *const *)ids.p, (const int *)roles.p, ids.n, SIZE_MAX);
    store__vec_free(&ids);
    store__vec_free(&roles);
}

/* Push the group id (the last component) of every key in [lo, succ(lo)),
 * at most max of them, onto ids. */
static int collect_last(store__rdb *s, store_req *r, const store__key *lo, size_t max,
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
        const char *c = NULL, *last = NULL;
        size_t lastn = 0;
        while ((c = store__key_next_str(key, klen, &off, &n))) last = c, lastn = n;
        if (last) *(char **)store__vec_push(ids) = arena_strndup(&s->scratch, last, lastn);
    }
    return store__iter_close(&it, r);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void store__op_group_search(store__rdb *s, store_req *r)
{
    if (!store__need_id(r, "tenant id", r->tenant_id)) return;
    const char *q = r->query ? r->query : "";
    if (strlen(q) > STORE__ID_MAX) {
        store__fail(r, PL_BAD_REQUEST, "query too long");
        return;
    }
    uint32_t limit = store__limit(r->limit);
    /* Candidates: channels whose id starts with q (the first `limit` of
     * them in id order suffice), and whose indexed name does. */
    store__vec ids = {.size = sizeof(char *)};
    store__key lo;
    store__key_init(&lo, STORE__K_CHANNEL);
    store__key_str(&lo, r->tenant_id);
    store__key_raw(&lo, q, strlen(q));
    int rc = collect_last(s, r, &lo, limit, &ids);
    if (rc == 0 && *q) {
        char lq[STORE__LNAME_MAX + 1];
        store__lname(lq, q);
        store__key_init(&lo, STORE__K_CHANNAME);
        store__key_str(&lo, r->tenant_id);
        store__key_raw(&lo, lq, strlen(lq));
        rc = collect_last(s, r, &lo, STORE__CHANNEL_SCAN_MAX, &ids);
    }
    if (rc) {
        store__vec_free(&ids);
        return;
    }
    char **cand = (char **)ids.p;
    if (ids.n > 1) qsort(cand, ids.n, sizeof(*cand), cmp_str);
    size_t n = 0;
    for (size_t i = 0; i < ids.n; i++)
        if (n == 0 || strcmp(cand[i], cand[n - 1]) != 0) cand[n++] = cand[i];
    /* Read them in id order until limit match (names are checked in full:
     * the index holds a lowercase prefix). */
    size_t qlen = strlen(q);
    store__vec out = {.size = sizeof(store_group)};
    for (size_t i = 0; i < n && out.n < limit; i++) {
        Parley__Rec__Group *g;
        int f = store__group_load(s, r, false, r->tenant_id, cand[i], &g);
        if (f < 0) break;
        if (f == 0 || g->kind != PARLEY__REC__GROUP_KIND__KIND_CHANNEL) continue;
        if (strncmp(cand[i], q, qlen) != 0 && !store__name_prefix(g->name, q)) continue;
        group_set(s, r, store__vec_push(&out), cand[i], g, true);
    }
    store__vec_free(&ids);
    r->groups_out = store__vec_finish(&out, &r->arena, &r->n_groups_out);
}
