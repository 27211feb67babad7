/*
 * main.c - parley-bench: load generator and measuring instrument for
 * parleyd (SPEC section 6).
 *
 *   parley-bench SCENARIO [OPTIONS]
 *
 * Scenarios: login, dm, group, channel, catchup, idle (see --help).  Each
 * run creates its own users (with a random prefix) through the app API,
 * so runs do not disturb each other, prints a table and, with --json, a
 * JSON document.  Every run stops by itself: --duration bounds the
 * measurement, and each phase around it has a deadline.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "bench.h"
#include "core/mem.h"

static const scenario *const scenarios[] = {
    &scenario_login, &scenario_dm, &scenario_group, &scenario_channel, &scenario_catchup, &scenario_idle,
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: parley-bench SCENARIO [OPTIONS]\n"
            "\n"
            "Scenarios:\n");
    for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++)
        fprintf(f, "  %-8s %s\n", scenarios[i]->name, scenarios[i]->help);
    fprintf(f,
            "\n"
            "Server:\n"
            "  --url URL          ws://HOST:PORT (default ws://127.0.0.1:8080) or tcp://HOST:PORT\n"
            "  --http HOST:PORT   the HTTP API (default: the ws URL's; required with tcp://)\n"
            "  --api-key KEY      the tenant's API key, to create users (or --data DIR: DIR/default.key)\n"
            "  --data DIR         parleyd's data directory\n"
            "  --server-pid PID   parleyd's process, for memory figures (default: found from the HTTP port)\n"
            "  --encoding json|pb WebSocket frames (default pb)\n"
            "Run:\n"
            "  --duration S       seconds measured (default 10)\n"
            "  --warmup S         seconds of load before measuring (dm, group, channel; default 2)\n"
            "  --procs N          worker processes (default: enough for 18,000 connections each)\n"
            "  --src-ips N        spread connections over source addresses 127.0.0.2..127.0.0.(N+1)\n"
            "  --json FILE        also write the results as JSON\n"
            "  --prefix P         user id prefix (default: random)\n"
            "  --quiet            no progress lines on stderr\n"
            "Sizes:\n"
            "  --clients N        login: concurrent logins (16); idle: connections (1000)\n"
            "  --pw-users N       login: users logging in by password (default: --clients)\n"
            "  --pairs N          dm: sender/receiver pairs (100)\n"
            "  --rate R           dm: messages/s offered in total (2000); group/channel: messages/s (5)\n"
            "  --size B           message text bytes (64)\n"
            "  --members N        group/channel: online members (200)\n"
            "  --offline N        group/channel: more members that stay offline (0)\n"
            "  --messages K       group/channel: messages sent (20); catchup: messages missed (1000)\n"
            "  --convs C          catchup: conversations they are spread over (50)\n"
            "  --reps R           catchup: repetitions (10)\n"
            "  --settle S         idle: seconds between connecting and measuring memory (3)\n"
            "\n"
            "Latencies are in milliseconds; percentiles come from a histogram with buckets of at most\n"
            "1.6%% width.  Exit status: 0 when the run completed (whatever it measured), 1 when it\n"
            "could not run (server unreachable, set-up refused, a worker died), 2 for usage errors.\n");
}

/* ---- shared client helpers ---- */

const char *bench_src_ip(const bench *b, size_t i, char *out, size_t outlen)
{
    if (b->o.src_ips <= 0) {
        out[0] = 0;
        return out;
    }
    snprintf(out, outlen, "127.0.0.%d", 2 + (int)(i % (size_t)b->o.src_ips));
    return out;
}

void bench_client_opts(const bench *b, size_t i, parley_options *po)
{
    static char ip[32];
    memset(po, 0, sizeof *po);
    po->url = b->ws_url;
    po->encoding = b->o.enc;
    po->token = b->tokens ? b->tokens[i] : NULL;
    po->device = "bot";
    po->connect_timeout_ms = 30000;
    po->request_timeout_ms = 60000;
    po->backoff_min_ms = 100;
    po->backoff_max_ms = 2000;
    bench_src_ip(b, i, ip, sizeof ip);
    po->bind_ip = ip[0] ? ip : NULL;
}

void bench_text(char *out, size_t size, uint64_t t_ns, uint64_t k, uint64_t s_ns)
{
    int n = snprintf(out, size + 1, "t=%llu k=%llu s=%llu ", (unsigned long long)t_ns, (unsigned long long)k,
                     (unsigned long long)s_ns);
    size_t len = n < 0 ? 0 : (size_t)n;
    if (len > size) len = size;
    while (len < size) out[len++] = 'x';
    out[len] = 0;
}

bool bench_text_parse(const char *text, uint64_t *t_ns, uint64_t *k, uint64_t *s_ns)
{
    if (strncmp(text, "t=", 2)) return false;
    char *end;
    errno = 0;
    unsigned long long t = strtoull(text + 2, &end, 10);
    if (errno || end == text + 2 || strncmp(end, " k=", 3)) return false;
    const char *q = end + 3;
    unsigned long long n = strtoull(q, &end, 10);
    if (errno || end == q) return false;
    unsigned long long sent = t;
    if (!strncmp(end, " s=", 3)) {
        q = end + 3;
        sent = strtoull(q, &end, 10);
        if (errno || end == q) sent = t;
    }
    *t_ns = t;
    *k = n;
    if (s_ns) *s_ns = sent;
    return true;
}

/* ---- options ---- */

static char *read_key(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/default.key", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "parley-bench: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char line[512];
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    fclose(f);
    line[strcspn(line, "\r\n")] = 0;
    return pl_strdup(line);
}

static int split_hostport(const char *s, char *host, size_t hl, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return -1;
    size_t n = (size_t)(colon - s);
    if (s[0] == '[' && n >= 2 && s[n - 1] == ']') s++, n -= 2;
    if (n >= hl) return -1;
    memcpy(host, s, n);
    host[n] = 0;
    *port = atoi(colon + 1);
    return *port > 0 && *port < 65536 ? 0 : -1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    bench *b = PL_NEW(bench);
    bench_opts *o = &b->o;
    o->scenario = argv[1];
    for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++)
        if (!strcmp(scenarios[i]->name, o->scenario)) b->sc = scenarios[i];
    if (!b->sc) {
        fprintf(stderr, "parley-bench: unknown scenario \"%s\"\n", o->scenario);
        usage(stderr);
        return 2;
    }
    o->url = "ws://127.0.0.1:8080";
    o->enc = PARLEY_ENC_PROTOBUF;
    o->duration = 10;
    o->warmup = 2;
    o->clients = -1;
    o->pairs = 100;
    o->rate = -1;
    o->size = 64;
    o->members = 200;
    o->messages = -1;
    o->convs = 50;
    o->reps = 10;
    o->settle = 3;
    char *key = NULL;

    enum {
        O_URL = 256, O_HTTP, O_KEY, O_DATA, O_PID, O_ENC, O_DUR, O_WARM, O_PROCS, O_SRC, O_JSON, O_PREFIX, O_QUIET,
        O_CLIENTS, O_PW, O_PAIRS, O_RATE, O_SIZE, O_MEMBERS, O_OFFLINE, O_MESSAGES, O_CONVS, O_REPS, O_SETTLE,
    };
    static const struct option lopts[] = {
        {"url", required_argument, 0, O_URL}, {"http", required_argument, 0, O_HTTP},
        {"api-key", required_argument, 0, O_KEY}, {"data", required_argument, 0, O_DATA},
        {"server-pid", required_argument, 0, O_PID}, {"encoding", required_argument, 0, O_ENC},
        {"duration", required_argument, 0, O_DUR}, {"warmup", required_argument, 0, O_WARM},
        {"procs", required_argument, 0, O_PROCS}, {"src-ips", required_argument, 0, O_SRC},
        {"json", required_argument, 0, O_JSON}, {"prefix", required_argument, 0, O_PREFIX},
        {"quiet", no_argument, 0, O_QUIET}, {"clients", required_argument, 0, O_CLIENTS},
        {"pw-users", required_argument, 0, O_PW}, {"pairs", required_argument, 0, O_PAIRS},
        {"rate", required_argument, 0, O_RATE}, {"size", required_argument, 0, O_SIZE},
        {"members", required_argument, 0, O_MEMBERS}, {"offline", required_argument, 0, O_OFFLINE},
        {"messages", required_argument, 0, O_MESSAGES},
        {"convs", required_argument, 0, O_CONVS}, {"reps", required_argument, 0, O_REPS},
        {"settle", required_argument, 0, O_SETTLE}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (c) {
        case O_URL: o->url = optarg; break;
        case O_HTTP: o->http = optarg; break;
        case O_KEY: o->api_key = optarg; break;
        case O_DATA: o->data_dir = optarg; break;
        case O_PID: o->server_pid = atoi(optarg); break;
        case O_ENC:
            if (!strcmp(optarg, "json")) o->enc = PARLEY_ENC_JSON;
            else if (!strcmp(optarg, "pb") || !strcmp(optarg, "protobuf")) o->enc = PARLEY_ENC_PROTOBUF;
            else {
                fprintf(stderr, "parley-bench: --encoding must be json or pb\n");
                return 2;
            }
            break;
        case O_DUR: o->duration = atof(optarg); break;
        case O_WARM: o->warmup = atof(optarg); break;
        case O_PROCS: o->procs = atoi(optarg); break;
        case O_SRC: o->src_ips = atoi(optarg); break;
        case O_JSON: o->json_path = optarg; break;
        case O_PREFIX: o->prefix = optarg; break;
        case O_QUIET: o->quiet = true; break;
        case O_CLIENTS: o->clients = atoi(optarg); break;
        case O_PW: o->pw_users = atoi(optarg); break;
        case O_PAIRS: o->pairs = atoi(optarg); break;
        case O_RATE: o->rate = atof(optarg); break;
        case O_SIZE: o->size = atoi(optarg); break;
        case O_MEMBERS: o->members = atoi(optarg); break;
        case O_OFFLINE: o->offline = atoi(optarg); break;
        case O_MESSAGES: o->messages = atoi(optarg); break;
        case O_CONVS: o->convs = atoi(optarg); break;
        case O_REPS: o->reps = atoi(optarg); break;
        case O_SETTLE: o->settle = atof(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "parley-bench: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (o->duration <= 0 || o->duration > 3600 || o->warmup < 0 || o->warmup > 600) {
        fprintf(stderr, "parley-bench: --duration must be in (0, 3600] s and --warmup in [0, 600] s\n");
        return 2;
    }
    if (o->pairs < 1 || o->size < 1 || o->size > 10000 || o->members < 1 || o->offline < 0 || o->offline > 10000000 || o->convs < 1 || o->reps < 1 ||
        o->src_ips < 0 || o->src_ips > 250 || o->procs < 0 || o->procs > 64) {
        fprintf(stderr, "parley-bench: a size option is out of range\n");
        return 2;
    }
    /* Per-scenario defaults. */
    bool idle = b->sc == &scenario_idle, login = b->sc == &scenario_login;
    if (o->clients < 0) o->clients = idle ? 1000 : 16;
    if (o->clients < 1) o->clients = 1;
    if (o->pw_users <= 0) o->pw_users = login ? o->clients : 0;
    if (o->rate < 0) o->rate = b->sc == &scenario_dm ? 2000 : 5;
    if (o->messages < 0) o->messages = b->sc == &scenario_catchup ? 1000 : 20;
    if (o->messages < 1) o->messages = 1;
    /* One source address has about 28,000 ephemeral ports towards one
     * server port: past 25,000 connections, spread them. */
    long conns = o->clients;
    if (b->sc == &scenario_group || b->sc == &scenario_channel) conns = (long)o->members + 1;
    if (b->sc == &scenario_dm) conns = 2L * o->pairs;
    if (!idle && b->sc != &scenario_group && b->sc != &scenario_channel && b->sc != &scenario_dm) conns = 0;
    if (conns > 25000 && o->src_ips == 0) {
        o->src_ips = (int)((conns + 24999) / 25000);
        if (!o->quiet)
            fprintf(stderr, "parley-bench: %ld connections: from %d source addresses (127.0.0.2...)\n", conns,
                    o->src_ips);
    }

    char err[256];
    parley_options probe = {.url = o->url, .token = "x"};
    uv_loop_t tmp;
    uv_loop_init(&tmp);
    parley_client *pc = parley_client_new(&tmp, &probe, err, sizeof err);
    if (!pc) {
        fprintf(stderr, "parley-bench: %s\n", err);
        return 2;
    }
    parley_client_free(pc);
    uv_run(&tmp, UV_RUN_DEFAULT);
    uv_loop_close(&tmp);
    snprintf(b->ws_url, sizeof b->ws_url, "%s", o->url);
    if (o->http) {
        if (split_hostport(o->http, b->host, sizeof b->host, &b->port)) {
            fprintf(stderr, "parley-bench: --http must be HOST:PORT\n");
            return 2;
        }
    } else if (!strncasecmp(o->url, "ws://", 5)) {
        char hp[300];
        snprintf(hp, sizeof hp, "%s", o->url + 5);
        hp[strcspn(hp, "/?")] = 0;
        if (!strchr(hp, ':') || (hp[0] == '[' && !strstr(hp, "]:"))) strncat(hp, ":80", sizeof hp - strlen(hp) - 1);
        if (split_hostport(hp, b->host, sizeof b->host, &b->port)) {
            fprintf(stderr, "parley-bench: cannot tell the HTTP address from %s: give --http\n", o->url);
            return 2;
        }
    } else {
        fprintf(stderr, "parley-bench: with a tcp:// URL give --http HOST:PORT for the API\n");
        return 2;
    }
    if (!o->api_key && o->data_dir) {
        key = read_key(o->data_dir);
        if (!key) return 1;
        o->api_key = key;
    }
    if (o->prefix) {
        snprintf(b->prefix, sizeof b->prefix, "%.24s", o->prefix);
    } else {
        uint32_t r = 0;
        if (getrandom(&r, sizeof r, 0) != sizeof r) r = (uint32_t)getpid() ^ (uint32_t)mono_ns();
        snprintf(b->prefix, sizeof b->prefix, "b%06x_", r & 0xffffff);
    }
    b->server_pid = o->server_pid ? o->server_pid : find_server_pid(b->port);

    int rc = bench_run(b);

    for (size_t i = 0; i < b->n_users; i++) {
        pl_free(b->users[i]);
        pl_free(b->tokens[i]);
    }
    for (size_t i = 0; i < b->n_pw_users; i++) pl_free(b->pw_users[i]);
    pl_free(b->users);
    pl_free(b->tokens);
    pl_free(b->pw_users);
    pl_free(key);
    if (b->notes) json_decref(b->notes);
    if (b->sc->cleanup) b->sc->cleanup(b);
    pl_free(b);
    return rc;
}
