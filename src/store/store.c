/*
 * store.c - the backend-independent part of the store interface.
 *
 * Picks a backend, dispatches through its table, and provides the request
 * lifecycle (store_req_new/free) and the synchronous store_call used by
 * start-up code and tests.  store_call waits on a private mailbox whose
 * wake function signals a condition variable; the completion is taken off
 * that mailbox by the waiting thread itself, so r->done never runs.
 */
#include "store/store_int.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

void store_config_init(store_config *cfg, const char *data_dir)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->data_dir = data_dir;
    cfg->sync = true;
    cfg->max_batch = 1024;
    cfg->counter_cache = 262144;
}

static bool store__is_postgres(const char *url)
{
    return url && (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0);
}

int store_open(store **out, const store_config *cfg, char *err, size_t errlen)
{
    *out = NULL;
    if (store__is_postgres(cfg->url)) {
        snprintf(err, errlen, "postgres store not built yet");
        return -1;
    }
    if (cfg->url && *cfg->url) {
        snprintf(err, errlen, "unknown store url scheme (expected postgres://)");
        return -1;
    }
    int rc = store_rocksdb.open(out, cfg, err, errlen);
    if (rc == 0) (*out)->backend = &store_rocksdb;
    return rc;
}

void store__complete(mail *m)
{
    store_req *r = (store_req *)((char *)m - offsetof(store_req, mail));
    r->done(r);
}

uint32_t store__limit(uint32_t limit)
{
    if (limit == 0) return 100;
    return limit > 1000 ? 1000 : limit;
}

void store_submit(store *s, store_req *r)
{
    if (!r->reply_to != !r->done) {
        log_error("store_submit: request without reply_to or done (op %d)", (int)r->op);
        abort();
    }
    r->mail.fn = store__complete;
    r->status = PL_OK;
    r->err[0] = 0;
    r->append.seq = r->append.ts = 0;
    r->append.useqs = NULL;
    r->append.dup = false;
    r->tenants = NULL;
    r->n_tenants = 0;
    r->users_out = NULL;
    r->n_users_out = 0;
    r->entries = NULL;
    r->n_entries = 0;
    r->msgs = NULL;
    r->n_msgs = 0;
    r->revoked_out = NULL;
    r->n_revoked = 0;
    r->useqs = NULL;
    r->head = 0;
    r->more = false;
    r->member = NULL;
    r->members_out = NULL;
    r->n_members_out = 0;
    r->groups_out = NULL;
    r->n_groups_out = 0;
    r->friends_out = NULL;
    r->n_friends_out = 0;
    r->seen_out = NULL;
    r->convs_out = NULL;
    r->n_convs_out = 0;
    s->backend->submit(s, r);
}

void store_close(store *s)
{
    if (s) s->backend->close(s);
}

void store_get_stats(store *s, store_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (s->backend->stats) s->backend->stats(s, out);
}

typedef struct store__waiter {
    mailbox mb;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool posted;
} store__waiter;

static void store__waiter_wake(void *arg)
{
    store__waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->posted = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void store__call_done(store_req *r) { (void)r; }

pl_status store_call(store *s, store_req *r)
{
    store__waiter w;
    mailbox_init(&w.mb, store__waiter_wake, &w);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.posted = false;

    mailbox *reply_to = r->reply_to;
    store_done_fn done = r->done;
    r->reply_to = &w.mb;
    r->done = store__call_done;
    store_submit(s, r);

    pthread_mutex_lock(&w.mu);
    while (!w.posted) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    (void)mailbox_take(&w.mb); /* the one mail: r itself */

    r->reply_to = reply_to;
    r->done = done;
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return r->status;
}

store_req *store_req_new(store_op op)
{
    store_req *r = PL_NEW(store_req);
    r->op = op;
    return r;
}

void store_req_free(store_req *r)
{
    if (!r) return;
    arena_free(&r->arena);
    pl_free(r);
}
