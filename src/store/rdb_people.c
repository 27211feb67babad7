/*
 * rdb_people.c - friends and the home list in the RocksDB backend.
 *
 * Runs on the store thread only (key layout at the top of rocksdb.c).
 *
 * Friends.  A friendship is two rows, F t a b and F t b a, each holding
 * the state from its user's side; they are written and deleted together,
 * so one exists exactly when the other does.  From user U's side of the
 * pair (U, O), with the function behind each arrow (store__op_friend,
 * action in quotes):
 *
 *                 U "request"                 O "accept" (or O "request")
 *     (none) ───────────────────> requested ───────────────────────────> friends
 *        ^  ^                         │                                     │
 *        │  └── U "delete" (withdraw) ┘                                     │
 *        │  └── O "reject" ───────────┘                                     │
 *        └───────────────── U "delete" or O "delete" ───────────────────────┘
 *
 * and symmetrically O's row moves through (none) -> pending -> friends.
 * Every transition appends an event to the inboxes it concerns:
 * friend_request (to O), friend_added (both), friend_rejected (to U),
 * friend_removed (both).  A repeated request while one is open writes
 * nothing.
 *
 * Last seen.  S t u holds when the user's last device went offline, written
 * by presence on every such moment; STORE_FRIEND_LIST returns it with each
 * friend, STORE_SEEN_GET for any users, so last seen outlives a restart.
 *
 * Home.  A user's conversations are the H rows (1:1s, written with their
 * first message) and the J rows (groups and channels, written with the
 * membership).  STORE_HOME scans both, finds each conversation's last
 * message (a point read when the id cache knows its last seq, else one
 * reverse seek, which then enters it into the cache) and the user's read
 * position, with MultiGet for the point reads, and sorts by activity.
 */
#include <stdlib.h>
#include <string.h>

#include "store/rdb_ops.h"

static int seen_many(store__rdb *s, store_req *r, const char *t, const char *const *users,
                     const bool *want, size_t n, uint64_t *out);

/* ---- friends ---- */

static const char *friend_state_str(int st)
{
    switch (st) {
    case PARLEY__REC__FRIEND_STATE__FRIEND_REQUESTED: return "requested";
    case PARLEY__REC__FRIEND_STATE__FRIEND_PENDING: return "pending";
    default: return "friends";
    }
}

/* The state of F t a b (seeing the batch): 0..2, or -1 if there is no
 * row; -2 with r failed on error. */
static int friend_state(store__rdb *s, store_req *r, const char *t, const char *a, const char *b)
{
    store__key k;
    store__k_friend(&k, t, a, b);
    Parley__Rec__Friend *f;
    int rc = store__get(s, r, true, &k, &parley__rec__friend__descriptor, &s->scratch, (void **)&f);
    if (rc < 0) return -2;
    return rc ? (int)f->state : -1;
}

int store__are_friends(store__rdb *s, store_req *r, const char *tenant, const char *a,
                       const char *b)
{
    int st = friend_state(s, r, tenant, a, b);
    if (st == -2) return -1;
    return st == PARLEY__REC__FRIEND_STATE__FRIEND_FRIENDS;
}

static void friend_put(store__rdb *s, const char *t, const char *a, const char *b, int state)
{
    store__key k;
    store__k_friend(&k, t, a, b);
    Parley__Rec__Friend f = PARLEY__REC__FRIEND__INIT;
    f.has_state = state != PARLEY__REC__FRIEND_STATE__FRIEND_FRIENDS;
    f.state = state;
    f.has_since = 1;
    f.since = s->now;
    store__put(s, &k, &f);
}

static void friend_del_pair(store__rdb *s, const char *t, const char *a, const char *b)
{
    store__key k;
    store__k_friend(&k, t, a, b);
    store__del(s, &k);
    store__k_friend(&k, t, b, a);
    store__del(s, &k);
}

/* Append one friend event of this kind to `to`'s inbox, naming `about`.
 * The inbox counter is already loaded (friend_prepare), so this cannot
 * fail. */
static uint64_t friend_event(store__rdb *s, store_req *r, const char *to, const char *kind,
                             const char *about)
{
    store_event ev = {.kind = kind, .user = about, .ts = s->now};
    uint64_t useq = 0;
    store__stage_events(s, r, r->tenant_id, &to, 1, &ev, &useq);
    return useq;
}

void store__op_friend(store__rdb *s, store_req *r)
{
    const char *t = r->tenant_id, *u = r->user_id, *o = r->other, *act = r->action;
    if (!store__need_id(r, "tenant id", t) || !store__need_id(r, "user id", u) ||
        !store__need_id(r, "other", o))
        return;
    if (!act) {
        store__fail(r, PL_BAD_REQUEST, "action missing");
        return;
    }
    int mine = friend_state(s, r, t, u, o);
    if (mine == -2) return;
    /* Both inbox counters are loaded before anything is staged. */
    const char *both[2] = {u, o};
    store__ent *es[2];
    if (store__inboxes_load(s, r, t, both, 2, es)) return;
    uint64_t *useqs = arena_alloc(&r->arena, 2 * sizeof(*useqs));
    const int FRIENDS = PARLEY__REC__FRIEND_STATE__FRIEND_FRIENDS,
              REQUESTED = PARLEY__REC__FRIEND_STATE__FRIEND_REQUESTED,
              PENDING = PARLEY__REC__FRIEND_STATE__FRIEND_PENDING;

    if (strcmp(act, "request") == 0) {
        if (strcmp(u, o) == 0) {
            store__fail(r, PL_BAD_REQUEST, "cannot befriend oneself");
            return;
        }
        if (mine == FRIENDS) {
            store__fail(r, PL_CONFLICT, "already friends");
            return;
        }
        if (mine != PENDING) {
            store__key k;
            store__k_user(&k, t, o);
            void *rec;
            int f = store__get(s, r, true, &k, &parley__rec__user__descriptor, &s->scratch, &rec);
            if (f < 0) return;
            if (f == 0) {
                store__fail(r, PL_NOT_FOUND, "no such user");
                return;
            }
        }
        if (mine == REQUESTED) {
            r->query = "request"; /* asked already: nothing new */
        } else if (mine == PENDING) {
            act = "accept"; /* they asked first: this accepts */
        } else {
            friend_put(s, t, u, o, REQUESTED);
            friend_put(s, t, o, u, PENDING);
            useqs[1] = friend_event(s, r, o, "friend_request", u);
            r->query = "request";
        }
    }
    if (strcmp(act, "accept") == 0) {
        if (mine != PENDING) {
            store__fail(r, PL_NOT_FOUND, "no request from that user");
            return;
        }
        friend_put(s, t, u, o, FRIENDS);
        friend_put(s, t, o, u, FRIENDS);
        useqs[0] = friend_event(s, r, u, "friend_added", o);
        useqs[1] = friend_event(s, r, o, "friend_added", u);
        r->query = "accept";
    } else if (strcmp(act, "reject") == 0) {
        if (mine != PENDING) {
            store__fail(r, PL_NOT_FOUND, "no request from that user");
            return;
        }
        friend_del_pair(s, t, u, o);
        useqs[1] = friend_event(s, r, o, "friend_rejected", u);
        r->query = "reject";
    } else if (strcmp(act, "delete") == 0) {
        if (mine != FRIENDS && mine != REQUESTED) {
            store__fail(r, PL_NOT_FOUND, "not friends");
            return;
        }
        friend_del_pair(s, t, u, o);
        useqs[0] = friend_event(s, r, u, "friend_removed", o);
        useqs[1] = friend_event(s, r, o, "friend_removed", u);
        r->query = "delete";
    } else if (strcmp(act, "request") != 0) {
        store__fail(r, PL_BAD_REQUEST, "unknown action");
        return;
    }
    r->useqs = useqs;
}

void store__op_friend_list(store__rdb *s, store_req *r)
{
    if (!store__need_id(r, "tenant id", r->tenant_id) || !store__need_id(r, "user id", r->user_id))
        return;
    store__key prefix, hi;
    store__k_friend(&prefix, r->tenant_id, r->user_id, NULL);
    store__key_succ(&prefix, &hi);
    store__iter it;
    store__iter_open(s, &it, &prefix, &hi);
    store__vec v = {.size = sizeof(store_friend)};
    ProtobufCAllocator al = store__allocator(&s->scratch);
    for (rocksdb_iter_seek(it.it, prefix.b, prefix.len); rocksdb_iter_valid(it.it);
         rocksdb_iter_next(it.it)) {
        size_t klen, vlen, off = prefix.len, n;
        const char *key = rocksdb_iter_key(it.it, &klen);
        const char *val = rocksdb_iter_value(it.it, &vlen);
        const char *o = store__key_next_str(key, klen, &off, &n);
        Parley__Rec__Friend *f = parley__rec__friend__unpack(&al, vlen, (const uint8_t *)val);
        if (!o || !f) continue;
        store_friend *sf = store__vec_push(&v);
        sf->user = arena_strndup(&r->arena, o, n);
        sf->state = friend_state_str(f->state);
        sf->since = f->since;
    }
    r->friends_out = store__vec_finish(&v, &r->arena, &r->n_friends_out);
    if (store__iter_close(&it, r) != 0) return;
    size_t n = r->n_friends_out;
    const char **users = arena_alloc(&s->scratch, (n + 1) * sizeof *users);
    bool *friends = arena_alloc(&s->scratch, n + 1);
    uint64_t *seen = arena_alloc(&s->scratch, (n + 1) * sizeof *seen);
    for (size_t i = 0; i < n; i++) {
        users[i] = r->friends_out[i].user;
        friends[i] = !strcmp(r->friends_out[i].state, "friends");
    }
    if (seen_many(s, r, r->tenant_id, users, friends, n, seen)) return;
    for (size_t i = 0; i < n; i++) r->friends_out[i].last_seen = seen[i];
}

/* ---- last seen ---- */

/* out[i] = users[i]'s last seen (0: never, or not wanted: want[i] false
 * when want is given), in one MultiGet.  0, or -1 with r failed. */
static int seen_many(store__rdb *s, store_req *r, const char *t, const char *const *users,
                     const bool *want, size_t n, uint64_t *out)
{
    const char **keys = arena_alloc(&s->scratch, (n + 1) * sizeof *keys);
    const char **vals = arena_alloc(&s->scratch, (n + 1) * sizeof *vals);
    size_t *klens = arena_alloc(&s->scratch, (n + 1) * sizeof *klens);
    size_t *vlens = arena_alloc(&s->scratch, (n + 1) * sizeof *vlens);
    size_t *of = arena_alloc(&s->scratch, (n + 1) * sizeof *of);
    size_t nk = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = 0;
        if ((want && !want[i]) || !store__id_ok(users[i])) continue;
        store__key k;
        store__k_seen(&k, t, users[i]);
        keys[nk] = arena_memdup(&s->scratch, k.b, k.len);
        klens[nk] = k.len;
        of[nk++] = i;
    }
    if (store__get_many(s, r, false, keys, klens, nk, &s->scratch, vals, vlens)) return -1;
    for (size_t j = 0; j < nk; j++) {
        if (!vals[j]) continue;
        Parley__Rec__Seen *rec = store__decode(r, &parley__rec__seen__descriptor, &s->scratch, vals[j], vlens[j]);
        if (!rec) return -1;
        out[of[j]] = rec->at;
    }
    return 0;
}

void store__op_seen_set(store__rdb *s, store_req *r)
{
    if (!store__need_id(r, "tenant id", r->tenant_id) || !store__need_id(r, "user id", r->user_id))
        return;
    store__key k;
    store__k_seen(&k, r->tenant_id, r->user_id);
    Parley__Rec__Seen rec = PARLEY__REC__SEEN__INIT;
    rec.has_at = 1;
    rec.at = r->at;
    store__put(s, &k, &rec);
}

void store__op_seen_get(store__rdb *s, store_req *r)
{
    if (!store__need_id(r, "tenant id", r->tenant_id)) return;
    r->seen_out = arena_alloc(&r->arena, (r->n_users + 1) * sizeof *r->seen_out);
    seen_many(s, r, r->tenant_id, r->users, NULL, r->n_users, r->seen_out);
}

/* ---- home ---- */

/* One conversation while the home list is built (scratch). */
typedef struct hconv {
    store_conv c;
    const char *group;         /* groups: the id */
    uint64_t since;            /* when the dm began or the user joined */
    uint64_t last_seq;         /* the conversation's last seq (0: no message) */
    store__ent *ce;            /* the conversation's id cache entry */
    Parley__Rec__Msg *last;    /* in scratch */
} hconv;

static int hconv_cmp(const void *a, const void *b)
{
    const hconv *x = a, *y = b;
    if (x->c.active_ts != y->c.active_ts) return x->c.active_ts > y->c.active_ts ? -1 : 1;
    return strcmp(x->c.conv, y->c.conv);
}

/* Push every conversation under prefix (H t u or J t u) onto v. */
static int home_scan(store__rdb *s, store_req *r, const store__key *prefix, bool groups,
                     store__vec *v)
{
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
        const char *id = store__key_next_str(key, klen, &off, &n);
        if (!id) continue;
        if (groups) {
            Parley__Rec__Joined *j = parley__rec__joined__unpack(&al, vlen, (const uint8_t *)val);
            if (!j) continue;
            hconv *h = store__vec_push(v);
            h->group = arena_strndup(&s->scratch, id, n);
            h->c.conv = store__group_conv(&s->scratch, h->group);
            h->c.kind = store__kind_str(j->kind);
            h->c.peer = h->group;
            h->c.role = store__role_str(j->role);
            h->since = j->joined_at;
        } else {
            Parley__Rec__HomeDm *d = parley__rec__home_dm__unpack(&al, vlen, (const uint8_t *)val);
            if (!d) continue;
            hconv *h = store__vec_push(v);
            h->c.conv = arena_strndup(&s->scratch, id, n);
            h->c.kind = "dm";
            h->c.peer = d->peer ? d->peer : "";
            h->since = d->since;
        }
    }
    return store__iter_close(&it, r);
}

/* The last message of a run (M), decoded into scratch; NULL with r
 * failed if the value is damaged. */
static Parley__Rec__Msg *last_msg(store__rdb *s, store_req *r, const char *v, size_t n)
{
    const char **el;
    size_t *ln, cnt;
    if (store__run_split(&s->scratch, v, n, &el, &ln, &cnt)) {
        store__fail(r, PL_INTERNAL, "corrupt run of messages");
        return NULL;
    }
    return store__decode(r, &parley__rec__msg__descriptor, &s->scratch, el[cnt - 1], ln[cnt - 1]);
}

/*
 * The last message of each conversation whose last seq the id cache does
 * not know: one reverse seek each, on one iterator over all messages; the
 * seq found is entered into the cache (a read: the cache equals the
 * committed state).
 */
static int home_seek_last(store__rdb *s, store_req *r, hconv *hs, size_t n)
{
    store__key lo, hi;
    store__key_init(&lo, STORE__K_MSG);
    store__key_succ(&lo, &hi);
    store__iter it;
    store__iter_open(s, &it, &lo, &hi);
    for (size_t i = 0; i < n; i++) {
        store__ent *ce = hs[i].ce;
        if (ce->has_last || !ce->num) continue;
        store__key prefix, end;
        store__k_conv(&prefix, ce->num);
        store__key_succ(&prefix, &end);
        rocksdb_iter_seek_for_prev(it.it, end.b, end.len);
        uint64_t seq = 0;
        if (rocksdb_iter_valid(it.it)) {
            size_t klen, vlen;
            const char *key = rocksdb_iter_key(it.it, &klen);
            if (klen == prefix.len + 8 && memcmp(key, prefix.b, prefix.len) == 0) {
                seq = store__get_u64(key + prefix.len);
                const char *val = rocksdb_iter_value(it.it, &vlen);
                hs[i].last = last_msg(s, r, val, vlen);
                if (!hs[i].last) break;
            }
        }
        hs[i].last_seq = seq;
        ce->last = seq;
        ce->has_last = true;
    }
    return store__iter_close(&it, r) || r->status != PL_OK ? -1 : 0;
}

void store__op_home(store__rdb *s, store_req *r)
{
    const char *t = r->tenant_id, *u = r->user_id;
    if (!store__need_id(r, "tenant id", t) || !store__need_id(r, "user id", u)) return;
    uint32_t limit = store__limit(r->limit);
    store__vec v = {.size = sizeof(hconv)};
    store__key prefix;
    store__k_home(&prefix, t, u, NULL);
    if (home_scan(s, r, &prefix, false, &v)) goto out;
    size_t ndm = v.n;
    store__k_joined(&prefix, t, u, NULL);
    if (home_scan(s, r, &prefix, true, &v)) goto out;
    hconv *hs = (hconv *)v.p;
    size_t n = v.n;
    store__ent *ue = store__ent_get(s, r, t, STORE__NUM_USER, u);
    if (!ue) goto out;
    const char **convs = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*convs));
    store__ent **ces = arena_alloc(&s->scratch, (n ? n : 1) * sizeof(*ces));
    for (size_t i = 0; i < n; i++) convs[i] = hs[i].c.conv;
    if (store__ents_get(s, r, t, STORE__NUM_CONV, convs, n, ces)) goto out;

    /* Point reads: the last message where its seq is cached, the read
     * position of every conversation, the record of every group. */
    size_t nk = 0, cap = 3 * (n ? n : 1);
    const char **keys = arena_alloc(&s->scratch, cap * sizeof(*keys));
    size_t *klens = arena_alloc(&s->scratch, cap * sizeof(*klens));
    const char **vals = arena_alloc(&s->scratch, cap * sizeof(*vals));
    size_t *vlens = arena_alloc(&s->scratch, cap * sizeof(*vlens));
    size_t *kmsg = arena_alloc(&s->scratch, cap * sizeof(*kmsg));
    size_t *kread = kmsg + n, *kgroup = kmsg + 2 * n;
    for (size_t i = 0; i < n; i++) {
        store__key k;
        store__ent *ce = hs[i].ce = ces[i];
        kmsg[i] = kread[i] = kgroup[i] = SIZE_MAX;
        if (ce->has_last && ce->last) {
            hs[i].last_seq = ce->last;
            store__k_msg(&k, ce->num, ce->last);
            keys[nk] = arena_memdup(&s->scratch, k.b, k.len);
            klens[nk] = k.len;
            kmsg[i] = nk++;
        }
        if (ue->num && ce->num) {
            store__k_read(&k, ue->num, ce->num);
            keys[nk] = arena_memdup(&s->scratch, k.b, k.len);
            klens[nk] = k.len;
            kread[i] = nk++;
        }
        if (i >= ndm) {
            store__k_group(&k, t, hs[i].group);
            keys[nk] = arena_memdup(&s->scratch, k.b, k.len);
            klens[nk] = k.len;
            kgroup[i] = nk++;
        }
    }
    if (store__get_many(s, r, false, keys, klens, nk, &s->scratch, vals, vlens)) goto out;
    if (home_seek_last(s, r, hs, n)) goto out;
    for (size_t i = 0; i < n; i++) {
        hconv *h = &hs[i];
        if (kmsg[i] != SIZE_MAX && vals[kmsg[i]]) {
            h->last = last_msg(s, r, vals[kmsg[i]], vlens[kmsg[i]]);
            if (!h->last) goto out;
        }
        if (kread[i] != SIZE_MAX && vals[kread[i]]) {
            Parley__Rec__ReadPos *rp = store__decode(r, &parley__rec__read_pos__descriptor,
                                                     &s->scratch, vals[kread[i]], vlens[kread[i]]);
            if (!rp) goto out;
            h->c.read_seq = rp->seq;
        }
        if (kgroup[i] != SIZE_MAX && vals[kgroup[i]]) {
            Parley__Rec__Group *g = store__decode(r, &parley__rec__group__descriptor,
                                                  &s->scratch, vals[kgroup[i]], vlens[kgroup[i]]);
            if (!g) goto out;
            h->c.name = g->name ? g->name : "";
        }
        h->c.active_ts = h->last ? h->last->ts : h->since;
        if (h->last && h->last_seq > h->c.read_seq) h->c.unread = h->last_seq - h->c.read_seq;
    }
    if (n > 1) qsort(hs, n, sizeof(*hs), hconv_cmp);

    /* The first `limit`, copied into the request's arena. */
    size_t m = n < limit ? n : limit;
    r->more = n > limit;
    store_conv *out = arena_alloc(&r->arena, (m ? m : 1) * sizeof(*out));
    for (size_t i = 0; i < m; i++) {
        hconv *h = &hs[i];
        store_conv *c = &out[i];
        *c = h->c;
        c->conv = arena_strdup(&r->arena, h->c.conv);
        c->peer = arena_strdup(&r->arena, h->c.peer);
        c->name = arena_strdup(&r->arena, h->c.name);
        if (h->last) {
            store_msg *msg = arena_alloc(&r->arena, sizeof(*msg));
            msg->conv = c->conv;
            msg->seq = h->last_seq;
            msg->from = arena_strdup(&r->arena, h->last->from ? h->last->from : "");
            msg->text = arena_strdup(&r->arena, h->last->text ? h->last->text : "");
            msg->cmid = arena_strdup(&r->arena, h->last->cmid);
            msg->ts = h->last->ts;
            c->last = msg;
        }
    }
    r->convs_out = m ? out : NULL;
    r->n_convs_out = m;
out:
    store__vec_free(&v);
}
