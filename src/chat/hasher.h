/*
 * hasher.h - argon2id password hashing off the event loops.
 *
 * Hashing a password costs tens of milliseconds and megabytes of memory on
 * purpose, so it never runs on a worker's loop nor on libuv's shared pool.
 * A hasher owns `threads` threads of its own and a queue bounded at
 * `max_queue` jobs: the memory argon2 can take at once is
 * threads x memlimit, whatever the login rate; past the bound,
 * hasher_submit refuses the job and the caller answers `unavailable`
 * (or rate_limited), rather than queueing without end.
 *
 * A job is filled by the caller, submitted, and posted back when done to
 * its reply_to mailbox, where `done` runs on the caller's thread and owns
 * the job again.  The password is wiped (sodium_memzero) before `done`.
 */
#ifndef PARLEY_CHAT_HASHER_H
#define PARLEY_CHAT_HASHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mailbox.h"

#define HASHER_STR_LEN 128   /* crypto_pwhash_STRBYTES */
#define HASHER_PW_MAX 1024   /* longest password accepted */

typedef struct hasher hasher;
typedef struct hasher_job hasher_job;

typedef enum hasher_op { HASHER_HASH, HASHER_VERIFY } hasher_op;

struct hasher_job {
    mail mail;                        /* used to post the job back */
    hasher_op op;
    char password[HASHER_PW_MAX + 1]; /* in; wiped before done */
    char hash[HASHER_STR_LEN];        /* HASH: out; VERIFY: in */
    bool ok;                          /* HASH: hashed; VERIFY: password matches */
    mailbox *reply_to;
    void (*done)(hasher_job *j);
    void *udata;
};

typedef struct hasher_config {
    int threads;                      /* default 2 */
    size_t max_queue;                 /* default 256 */
    unsigned long long opslimit;      /* argon2id passes, default 2 */
    size_t memlimit;                  /* bytes, default 19 MiB */
} hasher_config;

/* A zero field of cfg (or a NULL cfg) takes the default; opslimit and
 * memlimit are raised to libsodium's minimums where below them.  NULL only
 * if no thread could be started. */
hasher *hasher_new(const hasher_config *cfg);
/* Finish the jobs already queued (their done callbacks are posted), stop
 * the threads, free. */
void hasher_free(hasher *h);

/* Queue j (reply_to and done must be set; op, password and, for VERIFY,
 * hash filled in); false if max_queue jobs are already waiting (j is
 * untouched and still the caller's).  Jobs running on a thread do not
 * count against max_queue.  A password not NUL-terminated within
 * HASHER_PW_MAX + 1 bytes, or a VERIFY hash not NUL-terminated within
 * HASHER_STR_LEN, completes with ok = false. */
bool hasher_submit(hasher *h, hasher_job *j);

/* Number of jobs queued or running (for metrics). */
size_t hasher_pending(hasher *h);

#endif
