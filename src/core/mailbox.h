/*
 * mailbox.h - how work crosses threads: a lock-free multi-producer,
 * single-consumer queue of intrusive `mail` items, with batched wake-ups.
 *
 * Any thread posts a chain of mails; the owning thread takes everything
 * posted so far in one atomic exchange and runs each mail's function.  The
 * `wake` callback runs only when a post finds the mailbox empty, so a
 * consumer that is busy draining is never woken again for the same batch:
 * one wake-up per batch, not per message (SPEC section 7).
 *
 * A mail is owned by whoever posted it until its function runs on the
 * consumer's thread; the function then owns it (usually it is embedded in a
 * larger request that the function completes or frees).
 */
#ifndef PARLEY_CORE_MAILBOX_H
#define PARLEY_CORE_MAILBOX_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct mail mail;
typedef void (*mail_fn)(mail *m);

struct mail {
    mail *next;
    mail_fn fn;
};

typedef struct mailbox {
    _Atomic(mail *) head;             /* newest first */
    void (*wake)(void *arg);          /* called from the posting thread */
    void *wake_arg;
} mailbox;

void mailbox_init(mailbox *mb, void (*wake)(void *arg), void *wake_arg);

/* Post one mail (m->fn must be set). */
void mailbox_post(mailbox *mb, mail *m);

/* Post a chain first..last already linked through `next`, in order. */
void mailbox_post_chain(mailbox *mb, mail *first, mail *last);

/* Take everything posted so far, oldest first; NULL when empty. */
mail *mailbox_take(mailbox *mb);

/* Take and run everything posted so far; returns the number of mails run. */
size_t mailbox_run(mailbox *mb);

/*
 * A chain being built by one thread, posted later in one go.  Lets a
 * producer gather the mails of a whole batch per destination.
 */
typedef struct mail_chain {
    mail *first, *last;
} mail_chain;

static inline void mail_chain_add(mail_chain *c, mail *m)
{
    m->next = NULL;
    if (c->last) c->last->next = m; else c->first = m;
    c->last = m;
}

static inline void mail_chain_post(mail_chain *c, mailbox *mb)
{
    if (c->first) mailbox_post_chain(mb, c->first, c->last);
    c->first = c->last = NULL;
}

#endif
