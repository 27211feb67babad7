/*
 * bench.h - what the files of parley-bench share.
 *
 *   main.c      options, the scenario table, the run
 *   procs.c     worker processes: fork, ready/go barrier, results by pipe
 *   http.c      a small HTTP/1.1 client on libuv for set-up calls
 *   setup.c     users and tokens through the app API, server discovery,
 *               server memory from /proc
 *   report.c    the table on stdout and the JSON file
 *   hist.c      latency histograms
 *   s_*.c       one scenario each: login, dm, fanout (group, channel),
 *               catchup, idle
 *
 * A run: the parent prepares (creates users over HTTP, on its own loop,
 * closed before forking), forks W worker processes, each of which builds a
 * fresh libuv loop, connects its share of clients and reports "ready";
 * when all are ready the parent sends "go" with a common start time (on
 * CLOCK_MONOTONIC, which all processes of the machine share); each worker
 * runs the load, stops by itself, and writes its statistics back.  The
 * parent merges them and reports.  Every phase has a deadline.
 */
#ifndef PARLEY_BENCH_H
#define PARLEY_BENCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "hist.h"
#include "parley.h"

/* Connections one worker process drives at most: the open-file limit is
 * 20,000 per process, with room for the loop's own descriptors. */
#define BENCH_MAX_CONNS_PER_PROC 18000

typedef struct bench_opts {
    const char *scenario;
    const char *url;          /* ws://127.0.0.1:8080 or tcp://... */
    const char *http;         /* host:port of the HTTP API */
    const char *api_key;
    const char *data_dir;     /* where DATA/default.key is */
    parley_encoding enc;
    double duration;          /* seconds of measurement */
    double warmup;            /* seconds before measuring (dm, fan-out) */
    int procs;                /* worker processes (0: as many as needed) */
    int src_ips;              /* bind clients to 127.0.0.2 .. 127.0.0.(1+N); 0: do not bind */
    int server_pid;           /* 0: found from the HTTP port */
    const char *json_path;
    const char *prefix;       /* user id prefix (default: random) */
    bool quiet;
    /* Scenario sizes. */
    int clients;              /* login: concurrent logins; idle: connections */
    int pairs;                /* dm */
    double rate;              /* dm: messages/s in total; fan-out: messages/s */
    int size;                 /* message text bytes */
    int members;              /* fan-out: online members */
    int offline;              /* fan-out: members that never connect */
    int messages;             /* fan-out: messages sent; catchup: messages missed */
    int convs;                /* catchup: conversations they are spread over */
    int reps;                 /* catchup: repetitions */
    int pw_users;             /* login: users with passwords */
    double settle;            /* idle: seconds between connecting and measuring */
} bench_opts;

typedef struct worker worker;
typedef struct bench bench;

/* Statistics a worker sends back: named slots, meaning per scenario. */
#define BENCH_HISTS 4
#define BENCH_COUNTERS 48

/* Counter slots every scenario uses the same way. */
enum {
    C_CONNECTED = 0,          /* clients logged in at ready */
    C_CONNECT_FAILED,         /* clients that could not log in */
    C_ERR_BASE,               /* C_ERR_BASE + parley_status: errors by status */
    C_SCEN = C_ERR_BASE + PARLEY_STATUS_COUNT,   /* first scenario-specific slot */
};

typedef struct bench_stats {
    hist h[BENCH_HISTS];
    uint64_t n[BENCH_COUNTERS];
    uint64_t t_first_ns, t_last_ns;   /* first and last event, CLOCK_MONOTONIC (0: none) */
} bench_stats;

void stats_init(bench_stats *s);
void stats_merge(bench_stats *into, const bench_stats *from);
void stats_event(bench_stats *s, uint64_t now_ns);
void stats_error(bench_stats *s, parley_status st);
uint64_t stats_errors(const bench_stats *s);

/* ---- scenarios ---- */

typedef struct scenario {
    const char *name;
    const char *help;
    /* Parent, before forking: set-up over HTTP, b->nprocs; 0 or -1 (with a
     * message printed). */
    int (*prepare)(bench *b);
    /* Worker: connect; call worker_ready() once (all connected or failed). */
    void (*start)(worker *w);
    /* Worker: the common start; call worker_done() when finished. */
    void (*go)(worker *w);
    /* Parent: between every worker's ready and go (measure, wait). */
    void (*after_ready)(bench *b);
    /* Parent: while workers run, before their results are read. */
    void (*during)(bench *b);
    /* Parent: one worker's extra bytes (worker->extra). */
    void (*merge_extra)(bench *b, const uint8_t *p, size_t n);
    /* Parent: the table rows and the JSON results. */
    void (*report)(bench *b, const bench_stats *st, json_t *results);
    /* Parent: free b->sd and what it holds (may be NULL). */
    void (*cleanup)(bench *b);
} scenario;

struct bench {
    bench_opts o;
    const scenario *sc;
    int nprocs;
    char host[256];           /* of the HTTP API */
    int port;
    char ws_url[512];         /* client URL */
    char prefix[32];
    /* Users made by prepare. */
    size_t n_users;
    char **users;
    char **tokens;
    size_t n_pw_users;
    char **pw_users;
    const char *password;
    /* Scenario data in the parent (and inherited by the workers). */
    void *sd;
    /* Server. */
    int server_pid;
    uint64_t rss_before, rss_after, rss_end;   /* bytes */
    uint64_t mem_before, mem_after;            /* parley_mem_bytes from /metrics, if any */
    long server_fds, server_fd_limit;
    uint64_t t0_ns;           /* the common start */
    json_t *notes;            /* strings worth reporting (limits hit, unsupported) */
};

struct worker {
    bench *b;
    int index, count;         /* this worker, of count */
    uv_loop_t loop;
    bench_stats st;
    buf extra;                /* scenario bytes for merge_extra */
    uint64_t t0_ns;
    void *sd;                 /* the scenario's worker data */
    bool ready_sent, done;
    int res_fd, ctl_fd;
    uv_poll_t ctl;
};

void worker_ready(worker *w);
void worker_done(worker *w);

/* procs.c: run prepare..report; the exit status of parley-bench. */
int bench_run(bench *b);

/* ---- client helpers (main.c) ---- */

/* Options for a bench client of user i (token login), with the common
 * URL, encoding, bind address and callbacks left to fill. */
void bench_client_opts(const bench *b, size_t i, parley_options *po);
/* The source address for connection number i ("" if not binding). */
const char *bench_src_ip(const bench *b, size_t i, char *out, size_t outlen);

static inline uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Message text carrying its intended send time, number and actual send
 * time: "t=<ns> k=<k> s=<ns> " padded with 'x' to size bytes (cut if size
 * is shorter).  Parse gives s = t when s is missing; s_ns may be NULL. */
void bench_text(char *out, size_t size, uint64_t t_ns, uint64_t k, uint64_t s_ns);
bool bench_text_parse(const char *text, uint64_t *t_ns, uint64_t *k, uint64_t *s_ns);

/* ---- set-up (setup.c) ---- */

/* Create n users "<prefix><tag><i>" with tokens (and passwords, if
 * password is not NULL), into b->users/tokens (or pw_users).  0 or -1. */
int setup_users(bench *b, const char *tag, size_t n, const char *password);
/* A call to the HTTP API on a fresh loop: status, body into out. */
int setup_call(bench *b, const char *method, const char *path, const char *auth, const char *body, buf *out);
int find_server_pid(int port);
uint64_t proc_rss(int pid);              /* VmRSS in bytes, 0 if unknown */
long proc_fds(int pid);                  /* open descriptors, -1 if unknown */
long proc_fd_limit(int pid);             /* soft RLIMIT_NOFILE, -1 if unknown */
uint64_t server_mem_metric(bench *b);    /* parley's own allocation count, 0 if not exported */

/* ---- http.c ---- */

typedef struct http_client http_client;
typedef void (*http_cb)(void *arg, int status, const char *body, size_t len);

http_client *http_new(uv_loop_t *loop, const char *host, int port, int conns);
/* Queue a request; cb runs with the status (0 and an empty body if the
 * connection failed). */
void http_request(http_client *h, const char *method, const char *path, const char *auth, const char *body,
                  http_cb cb, void *arg);
size_t http_pending(const http_client *h);
/* Close every connection (after the queue drained); freed from the loop. */
void http_free(http_client *h);

enum { HTTP_MORE = 0, HTTP_DONE = 1, HTTP_ERROR = -1 };
/* Parse a response in p[0..n): HTTP_DONE with the status, head length and
 * body length (Content-Length) when it is complete.  Pure. */
int http_parse_response(const char *p, size_t n, int *status, size_t *head, size_t *body);

/* ---- report.c ---- */

void report_header(const bench *b, const char *what);
/* A table row with a histogram (ns), a count and a rate (< 0: not
 * meaningful, shown as "-"); returns its JSON. */
json_t *report_row(const char *name, const hist *h, uint64_t count, double rate, uint64_t errors);
/* A table row of one value. */
json_t *report_value(const char *name, double value, const char *unit);
void report_note(bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int report_write(bench *b, json_t *results, double elapsed);

/* ---- the scenarios ---- */

extern const scenario scenario_login, scenario_dm, scenario_group, scenario_channel, scenario_catchup,
    scenario_idle;

#endif
