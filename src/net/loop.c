/*
 * loop.c - the net layer's threads: the main loop that accepts, and the
 * workers that own connections.
 *
 * Main thread (whoever calls net_start and net_run).  Owns the listening
 * sockets, watched with uv_poll; on readability it accepts in a batch with
 * accept4, checks each peer against its IP's limits (iplimit.c: refused
 * sockets are closed at once), and deals the sockets to the workers round
 * robin.  A batch reaches each worker as one mail chain: one wake-up per
 * worker per batch.  A timer forgets idle IP entries.
 *
 * At the open-file limit.  accept fails with EMFILE while the connection
 * waits in the listen backlog, and the listener stays readable: retrying
 * spins, and pausing leaves every new client (health checks included)
 * hanging until a descriptor is free.  So the main thread keeps one
 * descriptor in reserve (`spare_fd`, /dev/null): on EMFILE or ENFILE it
 * closes the spare, accepts the waiting connection, closes that at once
 * (on the HTTP port after a one-line 503), reopens the spare and goes on
 * with the backlog (refuse_for_fd).  Clients see a prompt refusal instead
 * of a hang; once connections close, accepting resumes by itself.  If the
 * spare cannot be had back (another thread took the descriptor), accepting
 * pauses for 100 ms and the spare is reopened first thing after.  Both are
 * logged at most once per FD_LOG_MS with the count since the last line
 * (fd_log), so a server at its limit writes a few lines a minute, not one
 * per attempt; the IP sweep flushes a count the last burst left.
 *
 * Workers.  Each runs its own libuv loop on its own thread:
 *   - `async` is its mailbox's wake function; libuv coalesces sends, so a
 *     burst of posts costs one wake-up, and the callback drains the mailbox
 *     (accepted sockets from here, anything the application posts);
 *   - `prepare` runs just before the loop polls: the application's
 *     on_flush, then every dirty connection is flushed, one send each
 *     (conn.c; UDP connections on the list are closed there), then the
 *     UDP send queue, in sendmmsg batches (udp.c);
 *   - `tick` runs every NET__TICK_MS and sweeps the worker's connections
 *     for timeouts and memory to release (conn.c) -- one timer per worker,
 *     none per connection;
 *   - `app_tick` calls the application's on_tick every tick_ms;
 *   - `udp_poll` watches the worker's own UDP socket (udp.c), bound here
 *     on the main thread with the others of the group and handed over
 *     before the worker's thread starts.
 * worker_start runs on the worker's thread before its loop, and net_start
 * returns only when every worker has run it.
 *
 * Shutdown.  net_stop (main thread) closes the listeners and posts a stop
 * mail to every worker.  A stopping worker closes each connection with the
 * given WebSocket code (an HTTP request still with the application gets up
 * to NET__CLOSE_GRACE_MS to be answered, with Connection: close); when its
 * last connection is freed it stops on_tick, calls worker_stop, closes its
 * handles and its UDP socket (after a last flush) and unrefs `async`, so
 * its loop ends.  The thread then runs the mails that
 * arrived meanwhile and tells the main loop through `done_async`.  When all
 * are done, the main loop joins them, closes its own handles and stops, so
 * net_run returns.  `async` stays open (unreferenced) until net_free, so a
 * late post from another thread never touches a closed handle; mails that
 * arrive after a worker thread ended run in net_free.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "net/net_internal.h"

#define ACCEPT_BATCH 128
#define ACCEPT_PAUSE_MS 100
#define IP_SWEEP_MS 10000
#define FD_LOG_MS 10000

typedef struct accept_mail {
    mail m;
    net_worker *w;
    int fd;
    net_kind kind;
    net__ip *ip;
} accept_mail;

/* ------------------------------------------------------------------ */
/* Workers                                                              */
/* ------------------------------------------------------------------ */

static void worker_wake(void *arg)
{
    net_worker *w = arg;
    if (!atomic_load_explicit(&w->wake_off, memory_order_acquire)) uv_async_send(&w->async);
}

static void async_cb(uv_async_t *a)
{
    net_worker *w = a->data;
    mailbox_run(&w->mb);
}

static void prepare_cb(uv_prepare_t *p)
{
    net_worker *w = p->data;
    if (w->n->cb.on_flush && !w->finished) w->n->cb.on_flush(w, w->wdata);
    while (w->dirty) net__conn_flush(w->dirty);
    if (!w->udp_wait_out) net__udp_flush(w);
}

static void app_tick_cb(uv_timer_t *t)
{
    net_worker *w = t->data;
    w->n->cb.on_tick(w, w->wdata, clock_mono_ms());
}

static void tick_cb(uv_timer_t *t)
{
    net_worker *w = t->data;
    uint32_t now = net__now(w);
    bool trim = ++w->ticks % (1000 / NET__TICK_MS) == 0;
    for (net_conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        net__conn_sweep(c, now, trim);
    }
    if (trim) net__udp_trim(w);
}

static void accept_mail_fn(mail *m)
{
    accept_mail *am = NET__CONTAINER_OF(m, accept_mail, m);
    net_worker *w = am->w;
    if (w->stopping) {
        close(am->fd);
        net__iptab_release(w->n->ips, am->ip);
    } else {
        net__conn_accept(w, am->fd, am->kind, am->ip);
    }
    pl_free(am);
}

void net__worker_maybe_finish(net_worker *w)
{
    if (!w->stopping || w->finished || w->conns) return;
    w->finished = true;
    if (w->app_tick_on) uv_close((uv_handle_t *)&w->app_tick, NULL);
    w->app_tick_on = false;
    if (w->n->cb.worker_stop) w->n->cb.worker_stop(w, w->wdata);
    uv_close((uv_handle_t *)&w->prepare, NULL);
    uv_close((uv_handle_t *)&w->tick, NULL);
    net__udp_worker_close(w);
    uv_unref((uv_handle_t *)&w->async);
}

static void stop_mail_fn(mail *m)
{
    net_worker *w = NET__CONTAINER_OF(m, net_worker, stop_mail);
    w->stopping = true;
    uint32_t now = net__now(w);
    for (net_conn *c = w->conns; c; c = c->next) {
        if (c->kind == NET_HTTP && c->state == NET__S_HTTP_APP) {
            c->stop_pending = 1;
            c->t_mark = now;
        } else {
            net_close(c, w->stop_code, "server shutting down");
        }
    }
    net__worker_maybe_finish(w);
}

static void worker_main(void *arg)
{
    net_worker *w = arg;
    net *n = w->n;
    char name[16];
    snprintf(name, sizeof name, "parley-net-%zu", w->index);
    pthread_setname_np(pthread_self(), name); /* for top -H, perf and gdb */
    if (n->cb.worker_start) w->wdata = n->cb.worker_start(w, n->cb.ud);
    uv_sem_post(&w->started);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    mailbox_run(&w->mb);
    atomic_fetch_add(&n->n_done, 1);
    uv_async_send(&n->done_async);
}

static void worker_init(net *n, net_worker *w, size_t index, int udp_fd)
{
    w->n = n;
    w->index = index;
    uv_loop_init(&w->loop);
    uv_async_init(&w->loop, &w->async, async_cb);
    w->async.data = w;
    uv_prepare_init(&w->loop, &w->prepare);
    w->prepare.data = w;
    uv_prepare_start(&w->prepare, prepare_cb);
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, tick_cb, NET__TICK_MS, NET__TICK_MS);
    if (n->cfg.tick_ms && n->cb.on_tick) {
        uv_timer_init(&w->loop, &w->app_tick);
        w->app_tick.data = w;
        uv_timer_start(&w->app_tick, app_tick_cb, n->cfg.tick_ms, n->cfg.tick_ms);
        w->app_tick_on = true;
    }
    net__udp_worker_init(w, udp_fd);
    uv_sem_init(&w->started, 0);
    mailbox_init(&w->mb, worker_wake, w);
    w->rbuf = pl_malloc(NET__RBUF_SIZE);
    for (int k = 0; k < 4; k++) atomic_init(&w->counts[k], 0);
    atomic_init(&w->wake_off, false);
}

/* Release a worker whose thread has ended (or never started). */
static void worker_destroy(net_worker *w)
{
    atomic_store_explicit(&w->wake_off, true, memory_order_release);
    if (!uv_is_closing((uv_handle_t *)&w->async)) uv_close((uv_handle_t *)&w->async, NULL);
    if (!uv_is_closing((uv_handle_t *)&w->prepare)) uv_close((uv_handle_t *)&w->prepare, NULL);
    if (!uv_is_closing((uv_handle_t *)&w->tick)) uv_close((uv_handle_t *)&w->tick, NULL);
    if (w->app_tick_on) uv_close((uv_handle_t *)&w->app_tick, NULL);
    w->app_tick_on = false;
    net__udp_worker_close(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w->loop)) log_warn("net: worker %zu loop still has handles", w->index);
    mailbox_run(&w->mb);
    uv_sem_destroy(&w->started);
    pl_free(w->rbuf);
    w->rbuf = NULL;
    net__ws_worker_free(w);
    net__http_worker_free(w);
    net__out_cache_free(w);
    net__udp_worker_free(w);
}

/* ------------------------------------------------------------------ */
/* Accepting (main thread)                                              */
/* ------------------------------------------------------------------ */

static void on_listen_readable(uv_poll_t *h, int status, int events);

static void listen_poll(net__listener *l, bool on)
{
    if (!l->open) return;
    if (on) uv_poll_start(&l->poll, UV_READABLE, on_listen_readable);
    else uv_poll_stop(&l->poll);
}

/* The descriptor kept in reserve for refusing connections at the limit. */
static void spare_open(net *n)
{
    if (n->spare_fd < 0) n->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Log the connections refused and the pauses for lack of descriptors, at
 * most once per FD_LOG_MS: with accept's error when err is set, else (from
 * the IP sweep) whatever is pending. */
static void fd_log(net *n, int err)
{
    if (!n->fd_refused && !n->fd_pauses) return;
    uint64_t now = clock_mono_ms();
    if (n->fd_log_ms && now - n->fd_log_ms < FD_LOG_MS) return;
    struct rlimit rl;
    unsigned long long lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned long long)rl.rlim_cur : 0;
    double secs = n->fd_log_ms ? (double)(now - n->fd_log_ms) / 1000.0 : 0;
    if (!err) {
        log_warn("net: out of file descriptors (limit %llu): %llu connections refused, %llu pauses in the last %.0f s",
                 lim, (unsigned long long)n->fd_refused, (unsigned long long)n->fd_pauses, secs);
    } else {
        log_warn("net: accept: %s (limit %llu): refusing new connections until descriptors are free "
                 "(%llu refused, %llu pauses%s); logged at most every %d s",
                 uv_strerror(-err), lim, (unsigned long long)n->fd_refused, (unsigned long long)n->fd_pauses,
                 n->fd_log_ms ? " since the last line" : "", FD_LOG_MS / 1000);
    }
    n->fd_log_ms = now;
    n->fd_refused = n->fd_pauses = 0;
}

/*
 * Out of descriptors with a connection waiting on l: give up the spare,
 * accept the connection, close it (HTTP: after a 503; any request already
 * received is read first, so the close is a FIN, not a reset), take the
 * spare back.  Returns 1 if one was refused, 0 if none was waiting, -1 if
 * there is no spare or accept still failed.
 */
static int refuse_for_fd(net *n, net__listener *l)
{
    spare_open(n);
    if (n->spare_fd < 0) return -1;
    close(n->spare_fd);
    n->spare_fd = -1;
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int e = errno;
    if (fd >= 0) {
        if (l->kind == NET_HTTP) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                       "Content-Type: text/plain; charset=utf-8\r\n"
                                       "Content-Length: 30\r\nConnection: close\r\n\r\n"
                                       "server out of file descriptors";
            char sink[4096];
            while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) continue;
            ssize_t w = send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            (void)w;
        }
        close(fd);
        n->fd_refused++;
        metric_inc(net__m.refused_fd);
    }
    spare_open(n);
    if (fd >= 0) return 1;
    return e == EAGAIN || e == EWOULDBLOCK ? 0 : -1;
}

static void accept_resume_cb(uv_timer_t *t)
{
    net *n = t->data;
    if (n->stopping) return;
    spare_open(n);
    listen_poll(&n->http, true);
    listen_poll(&n->tcp, true);
}

static void accept_pause(net *n)
{
    listen_poll(&n->http, false);
    listen_poll(&n->tcp, false);
    uv_timer_start(&n->accept_pause, accept_resume_cb, ACCEPT_PAUSE_MS, 0);
}

static void on_listen_readable(uv_poll_t *h, int status, int events)
{
    net__listener *l = h->data;
    net *n = l->n;
    if (status < 0) {
        log_warn("net: listener poll: %s", uv_strerror(status));
        return;
    }
    uint64_t now = clock_mono_ms();
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
            if (e == EAGAIN || e == EWOULDBLOCK) break;
            if (e == EMFILE || e == ENFILE) {
                int r = refuse_for_fd(n, l);
                if (r < 0) {
                    n->fd_pauses++;
                    accept_pause(n);
                }
                fd_log(n, e);
                if (r > 0) continue;
                break;
            }
            if (e == ENOBUFS || e == ENOMEM) {
                log_warn("net: accept: %s; pausing accepts for %d ms", uv_strerror(-e), ACCEPT_PAUSE_MS);
                accept_pause(n);
                break;
            }
            log_warn("net: accept: %s", uv_strerror(-e));
            break;
        }
        net__ip *ip = net__iptab_admit(n->ips, (struct sockaddr *)&ss, now);
        if (!ip) {
            metric_inc(net__m.refused);
            close(fd);
            continue;
        }
        metric_inc(net__m.accepted);
        size_t wi = n->rr++ % n->n_workers;
        accept_mail *am = PL_NEW(accept_mail);
        am->m.fn = accept_mail_fn;
        am->w = &n->workers[wi];
        am->fd = fd;
        am->kind = l->kind;
        am->ip = ip;
        mail_chain_add(&n->chains[wi], &am->m);
    }
    for (size_t i = 0; i < n->n_workers; i++) mail_chain_post(&n->chains[i], &n->workers[i].mb);
}

static void listener_closed(uv_handle_t *h)
{
    net__listener *l = h->data;
    close(l->fd);
    l->fd = -1;
}

static void listener_close(net__listener *l)
{
    if (l->open) {
        l->open = false;
        uv_close((uv_handle_t *)&l->poll, listener_closed);
    } else if (l->fd >= 0 && !uv_is_closing((uv_handle_t *)&l->poll)) {
        close(l->fd);
        l->fd = -1;
    }
}

static void ip_sweep_cb(uv_timer_t *t)
{
    net *n = t->data;
    net__iptab_sweep(n->ips, clock_mono_ms());
    fd_log(n, 0);
    spare_open(n);
}

static void close_main_handles(net *n)
{
    if (n->freed_handles) return;
    n->freed_handles = true;
    net_stop_accepting(n);
    uv_close((uv_handle_t *)&n->accept_pause, NULL);
    uv_close((uv_handle_t *)&n->ip_sweep, NULL);
    uv_close((uv_handle_t *)&n->done_async, NULL);
}

static void done_cb(uv_async_t *a)
{
    net *n = a->data;
    if (n->joined || atomic_load(&n->n_done) < n->n_workers) return;
    for (size_t i = 0; i < n->n_workers; i++) uv_thread_join(&n->workers[i].thread);
    n->joined = true;
    close_main_handles(n);
    uv_stop(&n->loop);
}

/* ------------------------------------------------------------------ */
/* Public                                                               */
/* ------------------------------------------------------------------ */

static void apply_defaults(net_config *c)
{
    if (c->workers < 1) c->workers = 1;
    if (!c->max_frame) c->max_frame = 1u << 20;
    if (!c->max_header) c->max_header = 16u << 10;
    if (!c->max_body) c->max_body = 1u << 20;
    if (!c->max_outbound) c->max_outbound = 4u << 20;
    /* Whole buffers are handed to libuv, whose lengths are 32-bit. */
    if (c->max_frame > (1u << 30)) c->max_frame = 1u << 30;
    if (c->max_outbound > (1u << 30)) c->max_outbound = 1u << 30;
}


int net_start(net **out, const net_config *cfg, const net_callbacks *cb, char *err, size_t errlen)
{
    *out = NULL;
    /* libuv writes with write(2): a peer that went away must give EPIPE,
     * not kill the process.  A handler the program installed is kept. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);

    net *n = PL_NEW(net);
    n->cfg = *cfg;
    apply_defaults(&n->cfg);
    n->cb = *cb;
    n->http.fd = n->tcp.fd = -1;
    net__metrics_init(n);
    n->http.n = n->tcp.n = n;
    n->http.kind = NET_HTTP;
    n->tcp.kind = NET_TCP;

    if (net__listen(cfg->http_addr, &n->http.fd, &n->http.port, err, errlen)) goto fail;
    if (cfg->tcp_addr && *cfg->tcp_addr && net__listen(cfg->tcp_addr, &n->tcp.fd, &n->tcp.port, err, errlen))
        goto fail;
    n->udp_max = n->cfg.max_frame < NET_UDP_MAX ? n->cfg.max_frame : NET_UDP_MAX;
    atomic_init(&n->udp_accepting, true);
    if (cfg->udp_addr && *cfg->udp_addr) {
        n->udp_fds = pl_calloc((size_t)n->cfg.workers, sizeof(int));
        if (net__udp_bind(cfg->udp_addr, (size_t)n->cfg.workers, n->udp_fds, &n->udp_port, err, errlen)) {
            pl_free(n->udp_fds);
            n->udp_fds = NULL;
            goto fail;
        }
    }
    n->cfg.http_addr = n->cfg.tcp_addr = n->cfg.udp_addr = NULL; /* the caller's strings are not kept */

    uv_loop_init(&n->loop);
    n->spare_fd = -1;
    spare_open(n);
    n->ips = net__iptab_new(n->cfg.max_conns_per_ip, n->cfg.conn_rate_per_ip, n->cfg.conn_burst_per_ip);
    uv_timer_init(&n->loop, &n->accept_pause);
    n->accept_pause.data = n;
    uv_timer_init(&n->loop, &n->ip_sweep);
    n->ip_sweep.data = n;
    uv_timer_start(&n->ip_sweep, ip_sweep_cb, IP_SWEEP_MS, IP_SWEEP_MS);
    uv_unref((uv_handle_t *)&n->ip_sweep);
    uv_async_init(&n->loop, &n->done_async, done_cb);
    n->done_async.data = n;
    atomic_init(&n->n_done, 0);

    net__listener *ls[2] = {&n->http, &n->tcp};
    for (int i = 0; i < 2; i++) {
        if (ls[i]->fd < 0) continue;
        uv_poll_init(&n->loop, &ls[i]->poll, ls[i]->fd);
        ls[i]->poll.data = ls[i];
        ls[i]->open = true;
        listen_poll(ls[i], true);
    }

    n->n_workers = (size_t)n->cfg.workers;
    n->workers = pl_calloc(n->n_workers, sizeof(net_worker));
    n->chains = pl_calloc(n->n_workers, sizeof(mail_chain));
    for (size_t i = 0; i < n->n_workers; i++) worker_init(n, &n->workers[i], i, n->udp_fds ? n->udp_fds[i] : -1);
    pl_free(n->udp_fds); /* the sockets are the workers' now */
    n->udp_fds = NULL;
    for (size_t i = 0; i < n->n_workers; i++) {
        if (uv_thread_create(&n->workers[i].thread, worker_main, &n->workers[i])) {
            snprintf(err, errlen, "cannot start worker thread %zu", i);
            /* Stop what started; the rest never ran. */
            for (size_t j = i; j < n->n_workers; j++) worker_destroy(&n->workers[j]);
            n->n_workers = i;
            for (size_t j = 0; j < i; j++) uv_sem_wait(&n->workers[j].started);
            net_free(n);
            return -1;
        }
    }
    for (size_t i = 0; i < n->n_workers; i++) uv_sem_wait(&n->workers[i].started);
    *out = n;
    return 0;

fail:
    if (n->http.fd >= 0) close(n->http.fd);
    if (n->tcp.fd >= 0) close(n->tcp.fd);
    pl_free(n);
    return -1;
}

void *net_main_loop(net *n) { return &n->loop; }

void net_run(net *n)
{
    if (!n->joined) uv_run(&n->loop, UV_RUN_DEFAULT);
}

void net_set_ip_limits(net *n, uint32_t max_conns_per_ip, double conn_rate_per_ip,
                       double conn_burst_per_ip)
{
    net__iptab_set_limits(n->ips, max_conns_per_ip, conn_rate_per_ip, conn_burst_per_ip);
}

void net_stop_accepting(net *n)
{
    atomic_store(&n->udp_accepting, false);
    listener_close(&n->http);
    listener_close(&n->tcp);
}

void net_stop(net *n, uint16_t code)
{
    if (n->stopping) return;
    n->stopping = true;
    net_stop_accepting(n);
    uv_timer_stop(&n->accept_pause);
    for (size_t i = 0; i < n->n_workers; i++) {
        net_worker *w = &n->workers[i];
        w->stop_code = code;
        w->stop_mail.fn = stop_mail_fn;
        mailbox_post(&w->mb, &w->stop_mail);
    }
    if (!n->n_workers) uv_async_send(&n->done_async);
}

void net_free(net *n)
{
    if (!n) return;
    net__metrics_drop(n);
    if (!n->joined) {
        net_stop(n, NET_CLOSE_GOING_AWAY);
        while (!n->joined) uv_run(&n->loop, UV_RUN_ONCE);
    }
    close_main_handles(n);
    uv_run(&n->loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&n->loop)) log_warn("net: main loop still has handles at net_free");
    for (size_t i = 0; i < n->n_workers; i++) worker_destroy(&n->workers[i]);
    net__iptab_free(n->ips);
    if (n->spare_fd >= 0) close(n->spare_fd);
    pl_free(n->workers);
    pl_free(n->chains);
    pl_free(n);
}

size_t net_worker_count(const net *n) { return n->n_workers; }
net_worker *net_worker_at(net *n, size_t i) { return i < n->n_workers ? &n->workers[i] : NULL; }
size_t net_worker_index(const net_worker *w) { return w->index; }
void *net_worker_data(const net_worker *w) { return w->wdata; }
mailbox *net_worker_mailbox(net_worker *w) { return &w->mb; }

size_t net_worker_conns(const net_worker *w, net_kind kind)
{
    if ((unsigned)kind > NET_UDP) return 0;
    return atomic_load_explicit(&((net_worker *)w)->counts[kind], memory_order_relaxed);
}

int net_http_port(const net *n) { return n->http.port; }
int net_tcp_port(const net *n) { return n->tcp.port; }
int net_udp_port(const net *n) { return n->udp_port; }
