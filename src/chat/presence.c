/*
 * presence.c - who is online, shared by every worker.
 *
 * A table tenant/user -> (devices online, last seen), split into 64
 * shards each behind its own mutex, touched when a session logs in or goes
 * away, never per message.  When a user's count moves from 0 to 1 or from
 * 1 to 0, the worker where it happened pushes `presence` to the user's
 * presence topic (topic.c): one mail per worker, each worker telling its
 * own subscribers.  Each time a user goes offline the time is also
 * written to the store (STORE_SEEN_SET, answered by nobody), and the
 * answers to presence_sub, GET /v1/presence and the friend list take last
 * seen from the store for users the table does not hold, so last seen
 * outlives a restart.  An entry stays for a while after its user goes
 * offline (PRESENCE_LINGER_MS): an answer whose store read raced the
 * disconnect still gets the fresh time from the table.  Then the once a
 * minute sweep (chat_worker_tick) drops it, so the table holds the users
 * online and those gone within the last ten minutes or so, not every user
 * seen since start.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "chat/chat_internal.h"
#include "core/clock.h"
#include "core/mem.h"

#define SHARDS 64

typedef struct pres {
    char key[2 * CHAT_ID_MAX + 2];
    int online;
    uint64_t last_seen;
    UT_hash_handle hh;
} pres;

struct presence_shard {
    pthread_mutex_t lock;
    pres *table;
};

static size_t shard_of(const char *key)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) h = (h ^ *p) * 1099511628211ull;
    return (size_t)(h % SHARDS);
}

void presence_init(chat *c)
{
    c->presence = pl_calloc(SHARDS, sizeof *c->presence);
    for (size_t i = 0; i < SHARDS; i++) pthread_mutex_init(&c->presence[i].lock, NULL);
}

void presence_free(chat *c)
{
    if (!c->presence) return;
    for (size_t i = 0; i < SHARDS; i++) {
        pres *p, *tmp;
        HASH_ITER(hh, c->presence[i].table, p, tmp)
        {
            HASH_DEL(c->presence[i].table, p);
            pl_free(p);
        }
        pthread_mutex_destroy(&c->presence[i].lock);
    }
    pl_free(c->presence);
    c->presence = NULL;
}

bool presence_update(chat *c, const char *key, int delta, uint64_t now_ms, uint64_t *last_seen)
{
    struct presence_shard *sh = &c->presence[shard_of(key)];
    pthread_mutex_lock(&sh->lock);
    pres *p = NULL;
    HASH_FIND_STR(sh->table, key, p);
    if (!p) {
        p = PL_NEW(pres);
        snprintf(p->key, sizeof p->key, "%s", key);
        HASH_ADD_STR(sh->table, key, p);
    }
    int before = p->online;
    p->online += delta;
    if (p->online < 0) p->online = 0;
    if (delta < 0 && !p->online) p->last_seen = now_ms;
    *last_seen = p->last_seen;
    bool crossed = (before == 0) != (p->online == 0);
    pthread_mutex_unlock(&sh->lock);
    return crossed;
}

size_t presence_sweep(chat *c, uint64_t now_ms, uint64_t max_offline_ms)
{
    size_t dropped = 0;
    for (size_t i = 0; i < SHARDS; i++) {
        struct presence_shard *sh = &c->presence[i];
        pthread_mutex_lock(&sh->lock);
        pres *p, *tmp;
        HASH_ITER(hh, sh->table, p, tmp)
        {
            /* Written so that a wall clock gone back keeps the entry. */
            if (p->online || now_ms < p->last_seen + max_offline_ms) continue;
            HASH_DEL(sh->table, p);
            pl_free(p);
            dropped++;
        }
        pthread_mutex_unlock(&sh->lock);
    }
    return dropped;
}

size_t presence_count(chat *c)
{
    size_t n = 0;
    for (size_t i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&c->presence[i].lock);
        n += HASH_COUNT(c->presence[i].table);
        pthread_mutex_unlock(&c->presence[i].lock);
    }
    return n;
}

/* The table's key of a user: "tenant/user". */
static void user_key(const chat_tenant *t, const char *user, char *key, size_t keylen)
{
    snprintf(key, keylen, "%s/%s", t->id, user);
}

static void announce(chat_session *s, bool online, uint64_t last_seen)
{
    Parley__Presence p = PARLEY__PRESENCE__INIT;
    p.user = s->user;
    p.has_online = true;
    p.online = online;
    if (!online) {
        p.has_last_seen = true;
        p.last_seen = last_seen;
    }
    char key[TOPIC_KEY_MAX];
    topic_presence_key(s->tenant, s->user, key, sizeof key);
    push_to_topic(s->w, key, PARLEY__FRAME__BODY_PRESENCE, &p.base, 0);
}

void presence_session_up(chat_session *s)
{
    uint64_t seen;
    char key[2 * CHAT_ID_MAX + 2];
    user_key(s->tenant, s->user, key, sizeof key);
    if (presence_update(s->w->c, key, 1, clock_wall_ms(), &seen)) {
        stats_user_online(s->tenant, 1);
        announce(s, true, 0);
    }
}

/* Write last seen to the store; nothing waits for the answer. */
static void seen_store(chat *c, const chat_tenant *t, const char *user, uint64_t at)
{
    store_req *r = store_req_new(STORE_SEEN_SET);
    r->tenant_id = arena_strdup(&r->arena, t->id);
    r->user_id = arena_strdup(&r->arena, user);
    r->at = at;
    store_submit(c->st, r);
}

void presence_session_down(chat_session *s)
{
    uint64_t seen;
    char key[2 * CHAT_ID_MAX + 2];
    user_key(s->tenant, s->user, key, sizeof key);
    if (presence_update(s->w->c, key, -1, clock_wall_ms(), &seen)) {
        stats_user_online(s->tenant, -1);
        /* Stored first: whoever hears of the push and then writes to the
         * store writes after it. */
        seen_store(s->w->c, s->tenant, s->user, seen);
        announce(s, false, seen);
    }
}

void presence_get(chat *c, const chat_tenant *t, const char *user, bool *online,
                  uint64_t *last_seen)
{
    char key[2 * CHAT_ID_MAX + 2];
    user_key(t, user, key, sizeof key);
    struct presence_shard *sh = &c->presence[shard_of(key)];
    pthread_mutex_lock(&sh->lock);
    pres *p = NULL;
    HASH_FIND_STR(sh->table, key, p);
    *online = p && p->online > 0;
    *last_seen = p ? p->last_seen : 0;
    pthread_mutex_unlock(&sh->lock);
}

void presence_fill(chat *c, const chat_tenant *t, const char *user, uint64_t stored_seen,
                   Parley__Presence *p)
{
    bool online;
    uint64_t seen;
    presence_get(c, t, user, &online, &seen);
    if (!seen) seen = stored_seen;
    parley__presence__init(p);
    p->user = (char *)user;
    p->has_online = true;
    p->online = online;
    if (!online) {
        p->has_last_seen = true;
        p->last_seen = seen;
    }
}

/* ---- presence_sub and GET /v1/presence ---- */

#define PRESENCE_SUB_MAX 500

/* The stored last seen of the users asked for has arrived: answer. */
static void states_seen(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    size_t n = r->n_users;
    Parley__PresenceSubOk ok = PARLEY__PRESENCE_SUB_OK__INIT;
    Parley__Presence *ps = arena_alloc(&r->arena, (n + 1) * sizeof *ps);
    Parley__Presence **pp = arena_alloc(&r->arena, (n + 1) * sizeof *pp);
    for (size_t i = 0; i < n; i++) {
        presence_fill(c->c, c->tenant, r->users[i], r->seen_out[i], &ps[i]);
        pp[i] = &ps[i];
    }
    ok.n_presences = n;
    ok.presences = pp;
    call_ok(c, &ok.base);
}

/* Subscribe (at once, so no change is missed) and answer with each user's
 * state, once the store has said when the offline ones were last seen. */
static void reply_states(chat_call *c, char **users, size_t n, bool subscribe)
{
    store_req *r = call_store(c, STORE_SEEN_GET, states_seen);
    r->users = arena_alloc(&r->arena, (n + 1) * sizeof *r->users);
    for (size_t i = 0; i < n; i++) {
        if (!chat_valid_id(users[i])) continue;
        if (subscribe && c->s) {
            char key[TOPIC_KEY_MAX];
            topic_presence_key(c->tenant, users[i], key, sizeof key);
            topic_sub_asked(c->s, key);
        }
        r->users[r->n_users++] = arena_strdup(&r->arena, users[i]);
    }
    call_submit(c, r);
}

void h_presence_sub(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__PresenceSub *in = (const Parley__PresenceSub *)body;
    for (size_t i = 0; i < in->n_users; i++)
        if (!chat_valid_id(in->users[i])) {
            call_err(c, PL_BAD_REQUEST, "users must be user ids");
            return;
        }
    /* The bound counts the distinct users the connection asked to follow;
     * asking again for one it follows, or following friends, costs nothing. */
    size_t fresh = 0;
    if (in->n_users > PRESENCE_SUB_MAX) {
        fresh = in->n_users;
    } else if (c->s) {
        for (size_t i = 0; i < in->n_users; i++) {
            char key[TOPIC_KEY_MAX];
            topic_presence_key(c->tenant, in->users[i], key, sizeof key);
            bool dup = topic_asked(c->s, key);
            for (size_t k = 0; k < i && !dup; k++) dup = !strcmp(in->users[k], in->users[i]);
            fresh += !dup;
        }
    }
    if (c->s && c->s->n_presence_subs + fresh > PRESENCE_SUB_MAX) {
        call_err(c, PL_TOO_LARGE, "at most 500 presence subscriptions per connection");
        return;
    }
    reply_states(c, in->users, in->n_users, true);
}

void h_presence_get(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__PresenceSub *in = (const Parley__PresenceSub *)body;
    if (in->n_users > PRESENCE_SUB_MAX) {
        call_err(c, PL_TOO_LARGE, "at most 500 users per query");
        return;
    }
    reply_states(c, in->users, in->n_users, false);
}
