/*
 * hasher.c - argon2id on a pool of threads of its own (see hasher.h).
 *
 * A job's life:
 *
 *     caller fills job ─hasher_submit─> queued ─worker takes it─> running
 *       ─argon2id, password wiped─> posted to job->reply_to
 *       ─mailbox run by its owner─> hasher__deliver ─> job->done (caller's again)
 *
 * The queue is an intrusive FIFO through the job's own mail.next link (a
 * queued job is not in any mailbox yet), so submitting allocates nothing.
 * One mutex covers the queue, the counters and `stopping`; one condition
 * variable wakes workers when a job arrives or the pool stops.  No lock is
 * held while hashing or posting.
 *
 * Bounds: at most `threads` hashes run at once, so argon2 holds at most
 * threads x memlimit bytes (for VERIFY, the memlimit recorded in the stored
 * hash string, which we wrote); at most `max_queue` jobs wait.
 *
 * Posting runs the mailbox's wake callback on the worker thread; that is
 * the mailbox owner's business (it must be safe from any thread).
 *
 * Shutdown (hasher_free): set `stopping`, wake every worker; a worker exits
 * only once the queue is empty, so every job accepted is finished and
 * posted before the threads are joined.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "chat/hasher.h"

#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/mem.h"

_Static_assert(HASHER_STR_LEN == crypto_pwhash_STRBYTES, "HASHER_STR_LEN must match libsodium");

#define HASHER_DEFAULT_THREADS 2
#define HASHER_MAX_THREADS 256
#define HASHER_DEFAULT_QUEUE 256
#define HASHER_DEFAULT_OPSLIMIT 2
#define HASHER_DEFAULT_MEMLIMIT ((size_t)19 << 20)

struct hasher {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* a job was queued, or stopping was set */
    hasher_job *head, *tail;    /* queued jobs, oldest first, linked by mail.next */
    size_t queued, running;
    size_t max_queue;
    bool stopping;
    int nthreads;
    pthread_t *threads;
    unsigned long long opslimit;
    size_t memlimit;
};

static void hasher__sodium_init(void)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"libsodium failed to initialise\"}\n");
        abort();
    }
}

static void hasher__ensure_sodium(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, hasher__sodium_init);
}

static hasher_job *hasher__job_of(mail *m)
{
    return (hasher_job *)((char *)m - offsetof(hasher_job, mail));
}

/* Runs on the reply_to mailbox's thread: hand the job back. */
static void hasher__deliver(mail *m)
{
    hasher_job *j = hasher__job_of(m);
    j->done(j);
}

/* Hash or verify; sets j->ok and wipes the password. */
static void hasher__run(const hasher *h, hasher_job *j)
{
    size_t pwlen = strnlen(j->password, sizeof j->password);
    j->ok = false;
    if (pwlen <= HASHER_PW_MAX) {
        if (j->op == HASHER_HASH) {
            j->ok = crypto_pwhash_str_alg(j->hash, j->password, pwlen, h->opslimit, h->memlimit,
                                          crypto_pwhash_ALG_ARGON2ID13) == 0;
            if (!j->ok) memset(j->hash, 0, sizeof j->hash);
        } else if (memchr(j->hash, 0, sizeof j->hash)) {
            j->ok = crypto_pwhash_str_verify(j->hash, j->password, pwlen) == 0;
        }
    } else if (j->op == HASHER_HASH) {
        memset(j->hash, 0, sizeof j->hash);
    }
    sodium_memzero(j->password, sizeof j->password);
}

static void *hasher__worker(void *arg)
{
    hasher *h = arg;
    pthread_setname_np(pthread_self(), "parley-hasher"); /* for top -H, perf and gdb */
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->head && !h->stopping) pthread_cond_wait(&h->cv, &h->mu);
        if (!h->head) break;    /* stopping, and nothing left to do */
        hasher_job *j = h->head;
        h->head = j->mail.next ? hasher__job_of(j->mail.next) : NULL;
        if (!h->head) h->tail = NULL;
        h->queued--;
        h->running++;
        pthread_mutex_unlock(&h->mu);

        hasher__run(h, j);

        /* Count the job as finished before its owner can see it. */
        pthread_mutex_lock(&h->mu);
        h->running--;
        pthread_mutex_unlock(&h->mu);
        mailbox_post(j->reply_to, &j->mail);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

hasher *hasher_new(const hasher_config *cfg)
{
    hasher__ensure_sodium();
    hasher_config c = cfg ? *cfg : (hasher_config){0};
    if (c.threads <= 0) c.threads = HASHER_DEFAULT_THREADS;
    if (c.threads > HASHER_MAX_THREADS) c.threads = HASHER_MAX_THREADS;
    if (!c.max_queue) c.max_queue = HASHER_DEFAULT_QUEUE;
    if (!c.opslimit) c.opslimit = HASHER_DEFAULT_OPSLIMIT;
    if (!c.memlimit) c.memlimit = HASHER_DEFAULT_MEMLIMIT;
    if (c.opslimit < crypto_pwhash_OPSLIMIT_MIN) c.opslimit = crypto_pwhash_OPSLIMIT_MIN;
    if (c.opslimit > crypto_pwhash_OPSLIMIT_MAX) c.opslimit = crypto_pwhash_OPSLIMIT_MAX;
    if (c.memlimit < crypto_pwhash_MEMLIMIT_MIN) c.memlimit = crypto_pwhash_MEMLIMIT_MIN;
    if (c.memlimit > crypto_pwhash_MEMLIMIT_MAX) c.memlimit = crypto_pwhash_MEMLIMIT_MAX;

    hasher *h = PL_NEW(hasher);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->max_queue = c.max_queue;
    h->opslimit = c.opslimit;
    h->memlimit = c.memlimit;
    h->threads = pl_calloc((size_t)c.threads, sizeof *h->threads);

    /* Workers block every signal, so signals go to the threads that
     * handle them (the loops). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < c.threads; i++) {
        if (pthread_create(&h->threads[h->nthreads], NULL, hasher__worker, h) != 0) break;
        h->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (!h->nthreads) {
        pthread_cond_destroy(&h->cv);
        pthread_mutex_destroy(&h->mu);
        pl_free(h->threads);
        pl_free(h);
        return NULL;
    }
    return h;
}

void hasher_free(hasher *h)
{
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < h->nthreads; i++) pthread_join(h->threads[i], NULL);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    pl_free(h->threads);
    pl_free(h);
}

bool hasher_submit(hasher *h, hasher_job *j)
{
    assert(j->reply_to && j->done);
    pthread_mutex_lock(&h->mu);
    if (h->stopping || h->queued >= h->max_queue) {
        pthread_mutex_unlock(&h->mu);
        return false;
    }
    j->mail.fn = hasher__deliver;
    j->mail.next = NULL;
    if (h->tail) h->tail->mail.next = &j->mail;
    else h->head = j;
    h->tail = j;
    h->queued++;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return true;
}

size_t hasher_pending(hasher *h)
{
    pthread_mutex_lock(&h->mu);
    size_t n = h->queued + h->running;
    pthread_mutex_unlock(&h->mu);
    return n;
}
