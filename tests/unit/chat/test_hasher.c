/*
 * test_hasher.c - argon2id off the loop (chat/hasher.h).
 *
 * The test thread plays an event loop: it owns a mailbox whose wake
 * callback (run on a hasher thread) signals a condition variable, and it
 * runs the mailbox when woken.  Jobs are allocated with pl_calloc and freed
 * by their done callbacks, so the memory check at the end of each test
 * proves every job came back.  argon2 runs with libsodium's minimum limits
 * except where a test needs jobs to be slow.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <time.h>

#include "chat/hasher.h"
#include "core/mailbox.h"
#include "core/mem.h"

/* --- The test thread's "loop" ---------------------------------------------- */

typedef struct inbox {
    mailbox mb;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken;
    pthread_t owner;
    int done;                   /* done callbacks run */
    int ok;                     /* of which with ok = true */
    int wrong_thread;           /* done callbacks run on another thread */
    int password_left;          /* done callbacks that saw a password not wiped */
    char last_hash[HASHER_STR_LEN];
} inbox;

static void inbox_wake(void *arg)
{
    inbox *ib = arg;
    pthread_mutex_lock(&ib->mu);
    ib->woken = true;
    pthread_cond_signal(&ib->cv);
    pthread_mutex_unlock(&ib->mu);
}

static void inbox_init(inbox *ib)
{
    memset(ib, 0, sizeof *ib);
    pthread_mutex_init(&ib->mu, NULL);
    pthread_cond_init(&ib->cv, NULL);
    ib->owner = pthread_self();
    mailbox_init(&ib->mb, inbox_wake, ib);
}

static void inbox_destroy(inbox *ib)
{
    assert_int_equal(mailbox_run(&ib->mb), 0);
    pthread_cond_destroy(&ib->cv);
    pthread_mutex_destroy(&ib->mu);
}

/* Run the mailbox until `want` done callbacks have run in all; fails the
 * test after 60 s. */
static void inbox_wait(inbox *ib, int want)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    while (ib->done < want) {
        pthread_mutex_lock(&ib->mu);
        while (!ib->woken) {
            if (pthread_cond_timedwait(&ib->cv, &ib->mu, &deadline) == ETIMEDOUT) {
                pthread_mutex_unlock(&ib->mu);
                fail_msg("timed out with %d of %d jobs done", ib->done, want);
            }
        }
        ib->woken = false;
        pthread_mutex_unlock(&ib->mu);
        mailbox_run(&ib->mb);
    }
}

static void job_done(hasher_job *j)
{
    inbox *ib = j->udata;
    ib->done++;
    ib->ok += j->ok;
    if (!pthread_equal(pthread_self(), ib->owner)) ib->wrong_thread++;
    for (size_t i = 0; i < sizeof j->password; i++)
        if (j->password[i]) {
            ib->password_left++;
            break;
        }
    if (j->op == HASHER_HASH) memcpy(ib->last_hash, j->hash, sizeof j->hash);
    pl_free(j);
}

static hasher_job *job_new(inbox *ib, hasher_op op, const char *password, const char *hash)
{
    hasher_job *j = pl_calloc(1, sizeof *j);
    j->op = op;
    snprintf(j->password, sizeof j->password, "%s", password);
    if (hash) snprintf(j->hash, sizeof j->hash, "%s", hash);
    j->reply_to = &ib->mb;
    j->done = job_done;
    j->udata = ib;
    return j;
}

static const hasher_config fast = {
    .threads = 2,
    .max_queue = 64,
    .opslimit = crypto_pwhash_OPSLIMIT_MIN,
    .memlimit = crypto_pwhash_MEMLIMIT_MIN,
};

static size_t mem_before;

static int setup(void **state)
{
    mem_before = pl_mem_used();
    return 0;
}

static int teardown(void **state)
{
    assert_int_equal(pl_mem_used(), mem_before);
    return 0;
}

/* --- Tests ------------------------------------------------------------------ */

static void test_hash_then_verify(void **state)
{
    inbox ib;
    inbox_init(&ib);
    hasher *h = hasher_new(&fast);
    assert_non_null(h);

    assert_true(hasher_submit(h, job_new(&ib, HASHER_HASH, "correct horse", NULL)));
    inbox_wait(&ib, 1);
    assert_int_equal(ib.ok, 1);
    assert_int_equal(strncmp(ib.last_hash, "$argon2id$", 10), 0);
    char hash[HASHER_STR_LEN];
    memcpy(hash, ib.last_hash, sizeof hash);

    assert_true(hasher_submit(h, job_new(&ib, HASHER_VERIFY, "correct horse", hash)));
    inbox_wait(&ib, 2);
    assert_int_equal(ib.ok, 2);

    assert_true(hasher_submit(h, job_new(&ib, HASHER_VERIFY, "wrong horse", hash)));
    inbox_wait(&ib, 3);
    assert_int_equal(ib.ok, 2);
    assert_true(hasher_submit(h, job_new(&ib, HASHER_VERIFY, "", hash)));
    inbox_wait(&ib, 4);
    assert_int_equal(ib.ok, 2);

    /* done ran on this thread every time, after the password was wiped. */
    assert_int_equal(ib.wrong_thread, 0);
    assert_int_equal(ib.password_left, 0);
    assert_int_equal(hasher_pending(h), 0);
    hasher_free(h);
    inbox_destroy(&ib);
}

/* Hashing the same password twice gives different strings (fresh salt),
 * and each verifies. */
static void test_salted(void **state)
{
    inbox ib;
    inbox_init(&ib);
    hasher *h = hasher_new(&fast);
    char h1[HASHER_STR_LEN], h2[HASHER_STR_LEN];
    assert_true(hasher_submit(h, job_new(&ib, HASHER_HASH, "pw", NULL)));
    inbox_wait(&ib, 1);
    memcpy(h1, ib.last_hash, sizeof h1);
    assert_true(hasher_submit(h, job_new(&ib, HASHER_HASH, "pw", NULL)));
    inbox_wait(&ib, 2);
    memcpy(h2, ib.last_hash, sizeof h2);
    assert_string_not_equal(h1, h2);
    assert_true(hasher_submit(h, job_new(&ib, HASHER_VERIFY, "pw", h1)));
    assert_true(hasher_submit(h, job_new(&ib, HASHER_VERIFY, "pw", h2)));
    inbox_wait(&ib, 4);
    assert_int_equal(ib.ok, 4);
    hasher_free(h);
    inbox_destroy(&ib);
}

/* Malformed inputs complete with ok = false instead of failing. */
static void test_bad_inputs(void **state)
{
    inbox ib;
    inbox_init(&ib);
    hasher *h = hasher_new(&fast);

    assert_true(hasher_submit(h, job_new(&ib, HASHER_VERIFY, "pw", "not a hash")));
    char unterminated[HASHER_STR_LEN];
    memset(unterminated, '$', sizeof unterminated);
    hasher_job *j = job_new(&ib, HASHER_VERIFY, "pw", NULL);
    memcpy(j->hash, unterminated, sizeof j->hash);
    assert_true(hasher_submit(h, j));
    /* A password filling the whole array with no NUL. */
    j = job_new(&ib, HASHER_HASH, "", NULL);
    memset(j->password, 'p', sizeof j->password);
    assert_true(hasher_submit(h, j));
    inbox_wait(&ib, 3);
    assert_int_equal(ib.ok, 0);
    assert_int_equal(ib.password_left, 0);

    /* The longest accepted password works. */
    j = job_new(&ib, HASHER_HASH, "", NULL);
    memset(j->password, 'p', HASHER_PW_MAX);
    assert_true(hasher_submit(h, j));
    inbox_wait(&ib, 4);
    assert_int_equal(ib.ok, 1);
    hasher_free(h);
    inbox_destroy(&ib);
}

/* With one thread busy on slow jobs, the queue takes max_queue jobs (one
 * more may already be running) and refuses the next, leaving it untouched. */
static void test_queue_bound(void **state)
{
    inbox ib;
    inbox_init(&ib);
    hasher_config slow = {
        .threads = 1, .max_queue = 2, .opslimit = 10, .memlimit = 8 << 20};
    hasher *h = hasher_new(&slow);

    int accepted = 0;
    hasher_job *refused = NULL;
    for (int i = 0; i < 10 && !refused; i++) {
        hasher_job *j = job_new(&ib, HASHER_HASH, "pw", NULL);
        if (hasher_submit(h, j)) accepted++;
        else refused = j;
    }
    assert_non_null(refused);
    assert_true(accepted >= 2 && accepted <= 3);
    assert_int_equal(hasher_pending(h), (size_t)accepted);

    /* Untouched: the password is still there, no link or callback set. */
    assert_string_equal(refused->password, "pw");
    assert_null(refused->mail.fn);
    assert_null(refused->mail.next);
    pl_free(refused);

    inbox_wait(&ib, accepted);
    assert_int_equal(ib.ok, accepted);
    assert_int_equal(hasher_pending(h), 0);
    /* Room again once the queue drained. */
    assert_true(hasher_submit(h, job_new(&ib, HASHER_HASH, "pw", NULL)));
    inbox_wait(&ib, accepted + 1);
    hasher_free(h);
    inbox_destroy(&ib);
}

/* hasher_free with jobs still queued finishes and posts every one of
 * them; the memory check in the teardown proves none leaked. */
static void test_free_drains(void **state)
{
    inbox ib;
    inbox_init(&ib);
    hasher_config cfg = fast;
    cfg.threads = 1;
    cfg.max_queue = 16;
    cfg.opslimit = 3;
    hasher *h = hasher_new(&cfg);
    for (int i = 0; i < 16; i++)
        assert_true(hasher_submit(h, job_new(&ib, i % 2 ? HASHER_VERIFY : HASHER_HASH, "pw",
                                             "garbage")));
    assert_true(hasher_pending(h) > 0);
    hasher_free(h);
    /* Everything was posted before hasher_free returned. */
    assert_int_equal(mailbox_run(&ib.mb), 16);
    assert_int_equal(ib.done, 16);
    assert_int_equal(ib.ok, 8);
    inbox_destroy(&ib);
}

/* Many jobs over several threads all come back, each exactly once. */
static void test_many(void **state)
{
    inbox ib;
    inbox_init(&ib);
    hasher_config cfg = fast;
    cfg.threads = 4;
    hasher *h = hasher_new(&cfg);
    for (int i = 0; i < 60; i++)
        assert_true(hasher_submit(h, job_new(&ib, HASHER_HASH, "pw", NULL)));
    inbox_wait(&ib, 60);
    assert_int_equal(ib.done, 60);
    assert_int_equal(ib.ok, 60);
    assert_int_equal(ib.wrong_thread, 0);
    hasher_free(h);
    inbox_destroy(&ib);
}

/* Defaults apply to a NULL or zeroed config; nothing runs, nothing leaks. */
static void test_defaults(void **state)
{
    hasher *h = hasher_new(NULL);
    assert_non_null(h);
    assert_int_equal(hasher_pending(h), 0);
    hasher_free(h);
    hasher_config zero = {0};
    h = hasher_new(&zero);
    assert_non_null(h);
    hasher_free(h);
    hasher_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hash_then_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_salted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
