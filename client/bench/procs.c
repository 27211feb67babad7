/*
 * procs.c - a run across worker processes.
 *
 *   parent: prepare ------ fork W workers -------------------------------
 *   worker:                 start: connect --'R'--> |
 *   parent:                        (all 'R') after_ready, 'G'+t0 --> |
 *   worker:                                      go: load ... done: stats --> |
 *   parent:                                      during ......... read stats, merge, report
 *
 * Pipes: each worker has a result pipe (worker -> parent: 'R', then the
 * stats record) and a control pipe (parent -> worker: 'G' and the common
 * start time).  A worker whose parent goes away sees EOF on the control
 * pipe and exits.  Every wait of the parent has a deadline; on a deadline
 * the workers are killed and the run fails with a message.
 *
 * Workers inherit the parent's prepared data (users, tokens) through
 * fork and build their own libuv loop; no loop exists in the parent at the
 * time of fork.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "core/mem.h"

#define RESULT_MAGIC 0x504c4252u   /* "PLBR" */

/* ---- stats ---- */

void stats_init(bench_stats *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < BENCH_HISTS; i++) hist_init(&s->h[i]);
}

void stats_merge(bench_stats *into, const bench_stats *from)
{
    for (int i = 0; i < BENCH_HISTS; i++) hist_merge(&into->h[i], &from->h[i]);
    for (int i = 0; i < BENCH_COUNTERS; i++) into->n[i] += from->n[i];
    if (from->t_first_ns && (!into->t_first_ns || from->t_first_ns < into->t_first_ns))
        into->t_first_ns = from->t_first_ns;
    if (from->t_last_ns > into->t_last_ns) into->t_last_ns = from->t_last_ns;
}

void stats_event(bench_stats *s, uint64_t now_ns)
{
    if (!s->t_first_ns) s->t_first_ns = now_ns;
    s->t_last_ns = now_ns;
}

void stats_error(bench_stats *s, parley_status st)
{
    if ((unsigned)st < PARLEY_STATUS_COUNT) s->n[C_ERR_BASE + st]++;
}

uint64_t stats_errors(const bench_stats *s)
{
    uint64_t n = 0;
    for (int i = 1; i < PARLEY_STATUS_COUNT; i++) n += s->n[C_ERR_BASE + i];
    return n;
}

/* ---- pipes with deadlines ---- */

static int write_all(int fd, const void *p, size_t n)
{
    const char *q = p;
    while (n) {
        ssize_t w = write(fd, q, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        q += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read n bytes before deadline (CLOCK_MONOTONIC ns); 0, or -1 on EOF,
 * error or timeout. */
static int read_all(int fd, void *p, size_t n, uint64_t deadline)
{
    char *q = p;
    while (n) {
        uint64_t now = mono_ns();
        if (now >= deadline) return -1;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int ms = (int)((deadline - now) / 1000000u) + 1;
        int r = poll(&pf, 1, ms);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        ssize_t got = read(fd, q, n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        q += got;
        n -= (size_t)got;
    }
    return 0;
}

/* ---- the worker side ---- */

static void on_ctl(uv_poll_t *p, int status, int events)
{
    worker *w = p->data;
    uint8_t msg[9];
    ssize_t n = read(w->ctl_fd, msg, sizeof msg);
    if (n != (ssize_t)sizeof msg || msg[0] != 'G') _exit(3);   /* the parent is gone */
    uv_poll_stop(p);
    uv_close((uv_handle_t *)p, NULL);
    memcpy(&w->t0_ns, msg + 1, 8);
    w->b->t0_ns = w->t0_ns;
    w->b->sc->go(w);
}

void worker_ready(worker *w)
{
    if (w->ready_sent) return;
    w->ready_sent = true;
    if (write_all(w->res_fd, "R", 1)) _exit(3);
}

void worker_done(worker *w)
{
    w->done = true;
    if (!uv_is_closing((uv_handle_t *)&w->ctl)) uv_close((uv_handle_t *)&w->ctl, NULL);
}

static void run_worker(bench *b, int index, int count, int res_fd, int ctl_fd)
{
    worker w;
    memset(&w, 0, sizeof w);
    w.b = b;
    w.index = index;
    w.count = count;
    w.res_fd = res_fd;
    w.ctl_fd = ctl_fd;
    stats_init(&w.st);
    uv_loop_init(&w.loop);
    uv_poll_init(&w.loop, &w.ctl, ctl_fd);
    w.ctl.data = &w;
    uv_poll_start(&w.ctl, UV_READABLE, on_ctl);
    b->sc->start(&w);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    if (!w.done) _exit(4);
    uint32_t magic = RESULT_MAGIC;
    uint64_t extra = buf_size(&w.extra);
    if (!w.ready_sent) worker_ready(&w);
    if (write_all(res_fd, &magic, 4) || write_all(res_fd, &extra, 8) || write_all(res_fd, &w.st, sizeof w.st) ||
        (extra && write_all(res_fd, buf_begin(&w.extra), extra)))
        _exit(3);
    uv_loop_close(&w.loop);
    _exit(0);
}

/* ---- the parent side ---- */

static void kill_all(pid_t *pids, int n)
{
    for (int i = 0; i < n; i++)
        if (pids[i] > 0) kill(pids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        if (pids[i] > 0) waitpid(pids[i], NULL, 0);
}

int bench_run(bench *b)
{
    uint64_t t_start = mono_ns();
    b->notes = json_array();
    if (b->sc->prepare(b)) return 1;
    int W = b->nprocs < 1 ? 1 : b->nprocs;
    pid_t *pids = pl_calloc((size_t)W, sizeof *pids);
    int *res = pl_calloc((size_t)W, sizeof *res), *ctl = pl_calloc((size_t)W, sizeof *ctl);
    fflush(stdout);
    fflush(stderr);
    for (int i = 0; i < W; i++) {
        int rp[2], cp[2];
        if (pipe(rp) || pipe(cp)) {
            perror("parley-bench: pipe");
            kill_all(pids, i);
            return 1;
        }
        pid_t pid = fork();
        if (pid < 0) {
            perror("parley-bench: fork");
            kill_all(pids, i);
            return 1;
        }
        if (pid == 0) {
            close(rp[0]);
            close(cp[1]);
            for (int j = 0; j < i; j++) {
                close(res[j]);
                close(ctl[j]);
            }
            run_worker(b, i, W, rp[1], cp[0]);
        }
        close(rp[1]);
        close(cp[0]);
        pids[i] = pid;
        res[i] = rp[0];
        ctl[i] = cp[1];
    }

    int rc = 0;
    /* Ready: connecting tens of thousands of clients takes a while. */
    uint64_t ready_deadline = mono_ns() + (uint64_t)(120 + b->o.clients / 200) * 1000000000ull;
    for (int i = 0; i < W; i++) {
        char r;
        if (read_all(res[i], &r, 1, ready_deadline) || r != 'R') {
            fprintf(stderr, "parley-bench: worker %d did not get ready in time\n", i);
            kill_all(pids, W);
            return 1;
        }
    }
    if (b->sc->after_ready) b->sc->after_ready(b);
    uint64_t t0 = mono_ns() + 20000000u;
    b->t0_ns = t0;
    for (int i = 0; i < W; i++) {
        uint8_t msg[9] = {'G'};
        memcpy(msg + 1, &t0, 8);
        if (write_all(ctl[i], msg, sizeof msg)) rc = 1;
    }
    if (b->sc->during) b->sc->during(b);

    bench_stats *all = pl_malloc(sizeof *all), *one = pl_malloc(sizeof *one);
    stats_init(all);
    uint64_t deadline = t0 + (uint64_t)((b->o.warmup + b->o.duration + 90) * 1e9);
    for (int i = 0; i < W; i++) {
        uint32_t magic = 0;
        uint64_t extra = 0;
        if (read_all(res[i], &magic, 4, deadline) || magic != RESULT_MAGIC || read_all(res[i], &extra, 8, deadline) ||
            read_all(res[i], one, sizeof *one, deadline)) {
            fprintf(stderr, "parley-bench: worker %d did not report in time\n", i);
            rc = 1;
            continue;
        }
        stats_merge(all, one);
        if (extra) {
            uint8_t *x = pl_malloc(extra);
            if (read_all(res[i], x, extra, deadline)) rc = 1;
            else if (b->sc->merge_extra) b->sc->merge_extra(b, x, extra);
            pl_free(x);
        }
    }
    for (int i = 0; i < W; i++) {
        int status = 0;
        if (rc) kill(pids[i], SIGKILL);
        waitpid(pids[i], &status, 0);
        if (!rc && (!WIFEXITED(status) || WEXITSTATUS(status))) {
            fprintf(stderr, "parley-bench: worker %d exited with status %d\n", i, status);
            rc = 1;
        }
        close(res[i]);
        close(ctl[i]);
    }
    if (!rc) {
        json_t *results = json_object();
        b->sc->report(b, all, results);
        rc = report_write(b, results, (double)(mono_ns() - t_start) / 1e9);
    }
    pl_free(all);
    pl_free(one);
    pl_free(pids);
    pl_free(res);
    pl_free(ctl);
    return rc;
}
