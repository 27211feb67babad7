/*
 * udp.c - the UDP port: one socket per worker, a virtual connection per
 * peer address, datagrams in and out in batches.
 *
 * Sockets.  net_start binds one UDP socket per worker to the same address
 * with SO_REUSEPORT (addr.c, net__udp_bind) and hands each to its worker
 * (net__udp_worker_init, before the worker's thread starts).  The kernel
 * picks the socket of a datagram by a hash of its addresses, so all the
 * datagrams of one peer address reach one worker, which owns that peer's
 * connection alone: no lock, no hand-off between threads.  Each socket is
 * watched with a uv_poll_t; the net layer does its own recvmmsg and
 * sendmmsg, so datagrams cost one system call per batch, not one each.
 *
 * Connections.  Each worker keeps a table from peer address to its
 * net__uconn (ptab: open addressing with linear probing, keyed by a hash
 * seeded per worker so that nobody can choose addresses that collide).
 * A datagram from an address not in the table opens a connection if the
 * peer's IP is within its limits (iplimit.c, shared with TCP: open count
 * and rate) and the port still accepts; otherwise it is dropped without a
 * word, since an answer to a forged source address would help an attack.
 * Closing (net_close, the idle sweep, net_stop) puts the connection on the
 * worker's dirty list; the flush before the loop sleeps calls
 * net__udp_close_now: on_close, out of the table, freed.  So on_close
 * never runs inside a callback that still uses the connection.
 *
 * Input.  NET__UDP_RX_BATCH datagrams per recvmmsg, into slots of udp_max
 * bytes (min(max_frame, NET_UDP_MAX)): a longer datagram arrives truncated
 * (MSG_TRUNC) and is dropped.  At most NET__UDP_RX_BUDGET datagrams are
 * taken per readiness event; the poll reports the socket again on the next
 * loop iteration.  The slots are one allocation per worker, touched only
 * as far as datagrams fill them.
 *
 * Output.  net_send appends the datagram and its destination to the
 * worker's send queue (uq, uq_d); the worker's prepare hook (loop.c)
 * flushes the queue with sendmmsg, NET__UDP_TX_BATCH at a time, once per
 * loop iteration.  When the kernel's buffer is full the rest waits for
 * the socket to be writable; past NET__UDP_QUEUE_MAX bytes new datagrams
 * are dropped.  A datagram the kernel refuses for its own reason (no
 * route, message too long for the path) is dropped too: the application
 * retransmits what matters.  Datagrams of a connection that closed still
 * go out: the queue holds addresses, not connections.
 *
 * Thread: everything here runs on the worker's thread, except
 * net__udp_worker_init (the main thread, before the worker starts) and
 * net__udp_worker_free (after the worker's loop ended).
 */
#define _GNU_SOURCE /* recvmmsg, sendmmsg */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "net/net_internal.h"

static void udp_poll_cb(uv_poll_t *h, int status, int events);

/* ------------------------------------------------------------------ */
/* Peer addresses and the table                                         */
/* ------------------------------------------------------------------ */

/* The meaningful fields of a received address, the rest zeroed, so that
 * equal peers compare equal byte for byte where it matters. */
static bool peer_from(net__peer *p, const struct sockaddr_storage *ss, socklen_t len)
{
    memset(p, 0, sizeof *p);
    if (ss->ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        p->v4.sin_family = AF_INET;
        p->v4.sin_port = s4->sin_port;
        p->v4.sin_addr = s4->sin_addr;
        return true;
    }
    if (ss->ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        p->v6.sin6_family = AF_INET6;
        p->v6.sin6_port = s6->sin6_port;
        p->v6.sin6_addr = s6->sin6_addr;
        p->v6.sin6_scope_id = s6->sin6_scope_id;
        return true;
    }
    return false;
}

static socklen_t peer_len(const net__peer *p)
{
    return p->sa.sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static bool peer_eq(const net__peer *a, const net__peer *b)
{
    if (a->sa.sa_family != b->sa.sa_family) return false;
    if (a->sa.sa_family == AF_INET)
        return a->v4.sin_port == b->v4.sin_port && a->v4.sin_addr.s_addr == b->v4.sin_addr.s_addr;
    return a->v6.sin6_port == b->v6.sin6_port && a->v6.sin6_scope_id == b->v6.sin6_scope_id &&
           !memcmp(&a->v6.sin6_addr, &b->v6.sin6_addr, sizeof a->v6.sin6_addr);
}

/* A 64-bit mixing step: xor-shifts around odd multipliers, so every input
 * bit reaches every output bit. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ull;
    x ^= x >> 29;
    x *= 0xa5cb9243f7b0e3c5ull;
    x ^= x >> 32;
    return x;
}

static uint32_t peer_hash(uint64_t seed, const net__peer *p)
{
    uint64_t h = seed ^ ((uint64_t)p->sa.sa_family << 48);
    if (p->sa.sa_family == AF_INET) {
        h = mix(h ^ ((uint64_t)p->v4.sin_port << 32 | p->v4.sin_addr.s_addr));
    } else {
        uint64_t a, b;
        memcpy(&a, p->v6.sin6_addr.s6_addr, 8);
        memcpy(&b, p->v6.sin6_addr.s6_addr + 8, 8);
        h = mix(h ^ ((uint64_t)p->v6.sin6_port << 32 | p->v6.sin6_scope_id));
        h = mix(h ^ a);
        h = mix(h ^ b);
    }
    return (uint32_t)(h ^ (h >> 32));
}

static net__uconn *ptab_find(net_worker *w, const net__peer *p, uint32_t h)
{
    if (!w->ptab_cap) return NULL;
    size_t mask = w->ptab_cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        net__uconn *u = w->ptab[i];
        if (!u) return NULL;
        if (u->hash == h && peer_eq(&u->peer, p)) return u;
    }
}

static void ptab_place(net__uconn **tab, size_t cap, net__uconn *u)
{
    size_t mask = cap - 1, i = u->hash & mask;
    while (tab[i]) i = (i + 1) & mask;
    tab[i] = u;
}

static void ptab_resize(net_worker *w, size_t cap)
{
    net__uconn **tab = pl_calloc(cap, sizeof *tab);
    for (size_t i = 0; i < w->ptab_cap; i++)
        if (w->ptab[i]) ptab_place(tab, cap, w->ptab[i]);
    pl_free(w->ptab);
    w->ptab = tab;
    w->ptab_cap = cap;
}

static void ptab_insert(net_worker *w, net__uconn *u)
{
    /* Kept at most 70% full, so probes stay short. */
    if ((w->ptab_n + 1) * 10 > w->ptab_cap * 7) ptab_resize(w, w->ptab_cap ? 2 * w->ptab_cap : 16);
    ptab_place(w->ptab, w->ptab_cap, u);
    w->ptab_n++;
}

/* Remove u and close the gap: every entry after it in the same run that
 * may not be found past the hole moves back into it (no tombstones). */
static void ptab_remove(net_worker *w, net__uconn *u)
{
    size_t mask = w->ptab_cap - 1, i = u->hash & mask;
    while (w->ptab[i] != u) i = (i + 1) & mask;
    w->ptab[i] = NULL;
    for (size_t j = (i + 1) & mask; w->ptab[j]; j = (j + 1) & mask) {
        size_t home = w->ptab[j]->hash & mask;
        /* The entry at j stays if its home lies cyclically in (i, j]. */
        bool stays = i < j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        w->ptab[i] = w->ptab[j];
        w->ptab[j] = NULL;
        i = j;
    }
    w->ptab_n--;
    /* Give memory back after a crowd has gone. */
    if (w->ptab_cap > 16 && w->ptab_n * 8 < w->ptab_cap) ptab_resize(w, w->ptab_cap / 2);
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */
/* ------------------------------------------------------------------ */

static net__uconn *uconn_open(net_worker *w, const net__peer *p, uint32_t h)
{
    net *n = w->n;
    if (w->stopping || !atomic_load_explicit(&n->udp_accepting, memory_order_relaxed)) return NULL;
    net__ip *ip = net__iptab_admit(n->ips, &p->sa, clock_mono_ms());
    if (!ip) {
        metric_inc(net__m.refused);
        return NULL;
    }
    metric_inc(net__m.accepted);
    net__uconn *u = PL_NEW(net__uconn);
    net_conn *c = &u->c;
    u->peer = *p;
    u->hash = h;
    c->w = w;
    c->ip = ip;
    c->kind = NET_UDP;
    c->state = NET__S_OPEN;
    c->id = net__conn_next_id();
    c->last_rx = net__now(w);
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    ptab_insert(w, u);
    atomic_fetch_add_explicit(&w->counts[NET_UDP], 1, memory_order_relaxed);
    if (n->cb.on_open) n->cb.on_open(c);
    return u;
}

void net__udp_close_now(net_conn *c)
{
    if (c->state == NET__S_CLOSED) return;
    net_worker *w = c->w;
    net__uconn *u = NET__CONTAINER_OF(c, net__uconn, c);
    c->state = NET__S_CLOSED;
    net__conn_unmark_dirty(c);
    if (w->n->cb.on_close) w->n->cb.on_close(c);
    ptab_remove(w, u);
    if (c->prev) c->prev->next = c->next;
    else w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    atomic_fetch_sub_explicit(&w->counts[NET_UDP], 1, memory_order_relaxed);
    net__iptab_release(w->n->ips, c->ip);
    pl_free(u);
    net__worker_maybe_finish(w);
}

/* ------------------------------------------------------------------ */
/* Input                                                                */
/* ------------------------------------------------------------------ */

static void deliver(net_worker *w, const net__peer *p, const uint8_t *data, size_t len)
{
    uint32_t h = peer_hash(w->ptab_seed, p);
    net__uconn *u = ptab_find(w, p, h);
    if (!u && !(u = uconn_open(w, p, h))) return;
    net_conn *c = &u->c;
    if (c->state != NET__S_OPEN) return; /* closing: input is dropped */
    c->last_rx = net__now(w);
    metric_inc(net__m.frames_in[NET_UDP]);
    metric_add(net__m.bytes_in[NET_UDP], len);
    if (w->n->cb.on_message) w->n->cb.on_message(c, true, data, len);
}

static void udp_read(net_worker *w)
{
    size_t slot = w->n->udp_max;
    for (unsigned taken = 0; taken < NET__UDP_RX_BUDGET && w->udp_open;) {
        for (unsigned i = 0; i < NET__UDP_RX_BATCH; i++) {
            struct msghdr *mh = &w->urx_msgs[i].msg_hdr;
            mh->msg_name = &w->urx_from[i];
            mh->msg_namelen = sizeof(struct sockaddr_storage);
            mh->msg_iov = &w->urx_iov[i];
            mh->msg_iovlen = 1;
            mh->msg_control = NULL;
            mh->msg_controllen = 0;
            mh->msg_flags = 0;
            w->urx_iov[i].iov_base = w->urx + (size_t)i * slot;
            w->urx_iov[i].iov_len = slot;
        }
        int r = recvmmsg(w->udp_fd, w->urx_msgs, NET__UDP_RX_BATCH, MSG_DONTWAIT, NULL);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_debug("net: udp receive: %s", uv_strerror(-errno));
            return;
        }
        for (int i = 0; i < r && w->udp_open; i++) {
            struct msghdr *mh = &w->urx_msgs[i].msg_hdr;
            net__peer p;
            if (mh->msg_flags & MSG_TRUNC) continue; /* above udp_max */
            if (!peer_from(&p, mh->msg_name, mh->msg_namelen)) continue;
            deliver(w, &p, w->urx + (size_t)i * slot, w->urx_msgs[i].msg_len);
        }
        taken += (unsigned)r;
        if ((unsigned)r < NET__UDP_RX_BATCH) return;
    }
}

/* ------------------------------------------------------------------ */
/* Output                                                               */
/* ------------------------------------------------------------------ */

static void wait_writable(net_worker *w, bool on)
{
    if (w->udp_wait_out == on || !w->udp_open) return;
    w->udp_wait_out = on;
    uv_poll_start(&w->udp_poll, UV_READABLE | (on ? UV_WRITABLE : 0), udp_poll_cb);
}

/* Drop what was sent from the front of the queue. */
static void queue_shift(net_worker *w)
{
    if (w->uq_head == w->uq_n) {
        buf_reset(&w->uq);
        w->uq_n = w->uq_head = 0;
        return;
    }
    uint32_t base = w->uq_d[w->uq_head].off;
    size_t left = w->uq_n - w->uq_head;
    memmove(w->uq_d, w->uq_d + w->uq_head, left * sizeof *w->uq_d);
    for (size_t i = 0; i < left; i++) w->uq_d[i].off -= base;
    buf_consume(&w->uq, base);
    buf_compact(&w->uq);
    w->uq_n = left;
    w->uq_head = 0;
}

void net__udp_flush(net_worker *w)
{
    if (!w->udp_open || w->uq_head == w->uq_n) return;
    bool full = false;
    while (w->uq_head < w->uq_n) {
        size_t k = w->uq_n - w->uq_head;
        if (k > NET__UDP_TX_BATCH) k = NET__UDP_TX_BATCH;
        const uint8_t *base = buf_begin(&w->uq);
        for (size_t i = 0; i < k; i++) {
            net__dgram *d = &w->uq_d[w->uq_head + i];
            struct msghdr *mh = &w->utx_msgs[i].msg_hdr;
            memset(mh, 0, sizeof *mh);
            w->utx_iov[i].iov_base = (void *)(base + d->off);
            w->utx_iov[i].iov_len = d->len;
            mh->msg_name = &d->to;
            mh->msg_namelen = peer_len(&d->to);
            mh->msg_iov = &w->utx_iov[i];
            mh->msg_iovlen = 1;
        }
        int r = sendmmsg(w->udp_fd, w->utx_msgs, (unsigned)k, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r > 0) {
            uint64_t sent = 0;
            for (int i = 0; i < r; i++) sent += w->utx_iov[i].iov_len;
            metric_add(net__m.bytes_out[NET_UDP], sent);
            w->uq_head += (size_t)r;
            continue;
        }
        int e = r < 0 ? errno : EAGAIN;
        if (e == EINTR) continue;
        if (e == EAGAIN || e == EWOULDBLOCK) {
            full = true;
            break;
        }
        /* The first datagram of the batch was refused (no route, too
         * long for the path, a bad address...): drop it and go on. */
        log_debug("net: udp send: %s; datagram dropped", uv_strerror(-e));
        w->uq_head++;
    }
    queue_shift(w);
    wait_writable(w, full);
}

int net__udp_send(net_conn *c, const void *data, size_t len)
{
    net_worker *w = c->w;
    if (len > w->n->udp_max) return -1;
    if (buf_size(&w->uq) + len > NET__UDP_QUEUE_MAX) {
        metric_inc(net__m.udp_dropped);
        if (w->udp_dropped++ % 1000 == 0)
            log_warn("net: udp send queue full (%zu bytes): datagrams dropped", buf_size(&w->uq));
        return 0;
    }
    if (w->uq_n == w->uq_cap) {
        w->uq_cap = w->uq_cap ? 2 * w->uq_cap : 64;
        w->uq_d = pl_realloc(w->uq_d, w->uq_cap * sizeof *w->uq_d);
    }
    net__dgram *d = &w->uq_d[w->uq_n++];
    d->to = NET__CONTAINER_OF(c, net__uconn, c)->peer;
    d->off = (uint32_t)buf_size(&w->uq);
    d->len = (uint32_t)len;
    buf_append(&w->uq, data, len);
    metric_inc(net__m.frames_out[NET_UDP]);
    return 0;
}

void net__udp_trim(net_worker *w)
{
    if (w->uq_head == w->uq_n && w->uq.cap > NET__UDP_QUEUE_KEEP) {
        buf_free(&w->uq);
        pl_free(w->uq_d);
        w->uq_d = NULL;
        w->uq_n = w->uq_head = w->uq_cap = 0;
    }
}

/* ------------------------------------------------------------------ */
/* The socket                                                           */
/* ------------------------------------------------------------------ */

static void udp_poll_cb(uv_poll_t *h, int status, int events)
{
    net_worker *w = h->data;
    if (status < 0) {
        log_warn("net: udp poll: %s", uv_strerror(status));
        return;
    }
    if (events & UV_WRITABLE) net__udp_flush(w);
    if (events & UV_READABLE) udp_read(w);
}

void net__udp_worker_init(net_worker *w, int fd)
{
    w->udp_fd = fd;
    if (fd < 0) return;
    size_t slot = w->n->udp_max;
    w->urx = pl_malloc(NET__UDP_RX_BATCH * slot);
    w->urx_msgs = pl_calloc(NET__UDP_RX_BATCH, sizeof *w->urx_msgs);
    w->urx_iov = pl_calloc(NET__UDP_RX_BATCH, sizeof *w->urx_iov);
    w->urx_from = pl_calloc(NET__UDP_RX_BATCH, sizeof(struct sockaddr_storage));
    w->utx_msgs = pl_calloc(NET__UDP_TX_BATCH, sizeof *w->utx_msgs);
    w->utx_iov = pl_calloc(NET__UDP_TX_BATCH, sizeof *w->utx_iov);
    w->ptab_seed = mix(uv_hrtime() ^ ((uint64_t)(uintptr_t)w << 16) ^ (uint64_t)getpid());
    uv_poll_init(&w->loop, &w->udp_poll, fd);
    w->udp_poll.data = w;
    w->udp_open = true;
    uv_poll_start(&w->udp_poll, UV_READABLE, udp_poll_cb);
}

static void udp_closed(uv_handle_t *h)
{
    net_worker *w = h->data;
    close(w->udp_fd);
    w->udp_fd = -1;
}

void net__udp_worker_close(net_worker *w)
{
    if (!w->udp_open) return;
    net__udp_flush(w); /* last words (a goaway...), as far as the kernel takes them */
    w->udp_open = false;
    uv_close((uv_handle_t *)&w->udp_poll, udp_closed);
}

void net__udp_worker_free(net_worker *w)
{
    pl_free(w->urx);
    pl_free(w->urx_msgs);
    pl_free(w->urx_iov);
    pl_free(w->urx_from);
    pl_free(w->utx_msgs);
    pl_free(w->utx_iov);
    pl_free(w->ptab);
    pl_free(w->uq_d);
    buf_free(&w->uq);
    w->urx = NULL;
    w->urx_msgs = w->utx_msgs = NULL;
    w->urx_iov = w->utx_iov = NULL;
    w->urx_from = NULL;
    w->ptab = NULL;
    w->uq_d = NULL;
    w->ptab_cap = w->ptab_n = w->uq_n = w->uq_head = w->uq_cap = 0;
}
