/*
 * mailbox.c - lock-free MPSC mail queue (see mailbox.h).
 *
 * Producers push onto a Treiber stack with compare-and-swap; the consumer
 * swaps the head for NULL and reverses what it got, restoring post order.
 * A chain posted in one call stays contiguous and in order.  ABA cannot
 * occur because the consumer never pops single items: it only exchanges.
 */
#include "core/mailbox.h"

void mailbox_init(mailbox *mb, void (*wake)(void *arg), void *wake_arg)
{
    atomic_init(&mb->head, NULL);
    mb->wake = wake;
    mb->wake_arg = wake_arg;
}

void mailbox_post_chain(mailbox *mb, mail *first, mail *last)
{
    /* The stack is newest first, so reverse the chain into it. */
    mail *rev = NULL, *m = first, *tail = first;
    for (;;) {
        mail *next = m->next;
        m->next = rev;
        rev = m;
        if (m == last) break;
        m = next;
    }
    /* rev is now last..first; tail (= first) is the bottom of the pushed run. */
    mail *old = atomic_load_explicit(&mb->head, memory_order_relaxed);
    do {
        tail->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&mb->head, &old, rev, memory_order_release,
                                                    memory_order_relaxed));
    if (!old && mb->wake) mb->wake(mb->wake_arg);
}

void mailbox_post(mailbox *mb, mail *m)
{
    m->next = NULL;
    mailbox_post_chain(mb, m, m);
}

mail *mailbox_take(mailbox *mb)
{
    mail *m = atomic_exchange_explicit(&mb->head, NULL, memory_order_acquire);
    mail *out = NULL;
    while (m) {
        mail *next = m->next;
        m->next = out;
        out = m;
        m = next;
    }
    return out;
}

size_t mailbox_run(mailbox *mb)
{
    size_t n = 0;
    mail *m = mailbox_take(mb);
    while (m) {
        mail *next = m->next; /* fn may free or repost m */
        m->fn(m);
        m = next;
        n++;
    }
    return n;
}
