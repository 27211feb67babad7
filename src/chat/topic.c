/*
 * topic.c - per-worker subscriber sets, and pushes to them.
 *
 * Each worker maps a topic key to the sessions on that worker subscribed
 * to it; each session lists its topics, so closing it unsubscribes it
 * everywhere in O(its topics).  Both sides live on the worker's thread
 * only.  A push to a topic is one mail to each worker (session.c's
 * wmail), so a message to a channel of 100,000 members crosses threads once
 * per worker and each worker touches only its own subscribers.
 *
 * Subscriptions follow the inbox events that imply them: when a worker
 * pushes `group_joined` to a session it subscribes the session to the
 * group; `group_left`, `group_removed`, `group_disbanded` unsubscribe it;
 * `friend_added` / `friend_removed` do the same for the friend's presence.
 * A presence subscription the client asked for (presence_sub) is marked
 * as such: it counts against the connection's bound and outlives the end
 * of a friendship with the same user.
 */
#include <stdio.h>
#include <string.h>

#include "chat/chat_internal.h"
#include "core/mem.h"

struct topic {
    char key[TOPIC_KEY_MAX];
    chat_session **subs;
    size_t n, cap;
    UT_hash_handle hh;
};

void topic_group_key(const chat_tenant *t, const char *group, char *out, size_t outlen)
{
    snprintf(out, outlen, "g/%s/%s", t->id, group);
}

void topic_presence_key(const chat_tenant *t, const char *user, char *out, size_t outlen)
{
    snprintf(out, outlen, "p/%s/%s", t->id, user);
}

static session_topic *find_sub(const chat_session *s, const char *key)
{
    for (size_t i = 0; i < s->n_topics; i++)
        if (!strcmp(s->topics[i].t->key, key)) return &s->topics[i];
    return NULL;
}

bool topic_has(const chat_session *s, const char *key) { return find_sub(s, key) != NULL; }

bool topic_asked(const chat_session *s, const char *key)
{
    const session_topic *st = find_sub(s, key);
    return st && st->asked;
}

static session_topic *add_sub(chat_session *s, const char *key)
{
    session_topic *st = find_sub(s, key);
    if (st) return st;
    chat_worker *w = s->w;
    topic *t = NULL;
    HASH_FIND_STR(w->topics, key, t);
    if (!t) {
        t = PL_NEW(topic);
        snprintf(t->key, sizeof t->key, "%s", key);
        HASH_ADD_STR(w->topics, key, t);
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 4;
        t->subs = pl_realloc(t->subs, t->cap * sizeof *t->subs);
    }
    t->subs[t->n++] = s;
    if (s->n_topics == s->cap_topics) {
        s->cap_topics = s->cap_topics ? 2 * s->cap_topics : 4;
        s->topics = pl_realloc(s->topics, s->cap_topics * sizeof *s->topics);
    }
    st = &s->topics[s->n_topics++];
    st->t = t;
    st->asked = false;
    return st;
}

void topic_sub(chat_session *s, const char *key) { add_sub(s, key); }

bool topic_sub_asked(chat_session *s, const char *key)
{
    session_topic *st = add_sub(s, key);
    if (st->asked) return false;
    st->asked = true;
    s->n_presence_subs++;
    return true;
}

static void topic_drop(chat_worker *w, topic *t, chat_session *s)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->subs[i] == s) {
            t->subs[i] = t->subs[--t->n];
            break;
        }
    if (!t->n) {
        HASH_DEL(w->topics, t);
        pl_free(t->subs);
        pl_free(t);
    }
}

void topic_unsub(chat_session *s, const char *key)
{
    session_topic *st = find_sub(s, key);
    if (!st || st->asked) return;
    topic *t = st->t;
    *st = s->topics[--s->n_topics];
    topic_drop(s->w, t, s);
}

void topic_unsub_all(chat_session *s)
{
    for (size_t i = 0; i < s->n_topics; i++) topic_drop(s->w, s->topics[i].t, s);
    pl_free(s->topics);
    s->topics = NULL;
    s->n_topics = s->cap_topics = s->n_presence_subs = 0;
}

void topics_free(chat_worker *w)
{
    topic *t, *tmp;
    HASH_ITER(hh, w->topics, t, tmp)
    {
        HASH_DEL(w->topics, t);
        pl_free(t->subs);
        pl_free(t);
    }
}

/* Called by session.c's push mail on this worker. */
/* Returns the number of sessions the frame was queued for. */
size_t topic__push_local(chat_worker *w, const char *key, const Parley__Frame *f,
                         uint64_t except_sid)
{
    topic *t = NULL;
    HASH_FIND_STR(w->topics, key, t);
    if (!t) return 0;
    chat_memo memo = {0};    /* every subscriber gets the same bytes */
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->subs[i]->id != except_sid) {
            session_send_memo(t->subs[i], f, &memo);
            n++;
        }
    memo_done(&memo);
    return n;
}

void topic_follow_event(chat_session *s, const Parley__Event *e)
{
    if (!e->kind || !s->tenant) return;
    char key[TOPIC_KEY_MAX];
    if (e->group) {
        topic_group_key(s->tenant, e->group, key, sizeof key);
        if (!strcmp(e->kind, "group_joined")) topic_sub(s, key);
        else if (!strcmp(e->kind, "group_left") || !strcmp(e->kind, "group_removed") ||
                 !strcmp(e->kind, "group_disbanded"))
            topic_unsub(s, key);
    } else if (e->user) {
        topic_presence_key(s->tenant, e->user, key, sizeof key);
        if (!strcmp(e->kind, "friend_added")) topic_sub(s, key);
        else if (!strcmp(e->kind, "friend_removed")) topic_unsub(s, key);
    }
}
