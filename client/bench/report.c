/*
 * report.c - what a run prints (a table on stdout) and writes (--json).
 *
 * Latencies are kept in nanoseconds and shown in milliseconds.  The JSON
 * holds everything the table shows plus the run's parameters, the machine
 * (cores, memory, load average at the end, kernel) and the date, so that a
 * figure in docs/benchmarks.md can be traced to the run that produced it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"


static void fmt_ms(char *out, size_t n, uint64_t ns)
{
    double ms = (double)ns / 1e6;
    if (ms < 10) snprintf(out, n, "%.3f", ms);
    else if (ms < 1000) snprintf(out, n, "%.1f", ms);
    else snprintf(out, n, "%.0f", ms);
}

void report_header(const bench *b, const char *what)
{
    printf("\n== %s: %s\n", b->sc->name, what);
    printf("%-38s %10s %11s %9s %9s %9s %9s %9s %7s\n", "metric", "count", "rate/s", "p50 ms", "p90 ms", "p99 ms",
           "p99.9 ms", "max ms", "errors");
}

static double ms(uint64_t ns) { return (double)ns / 1e6; }

json_t *report_row(const char *name, const hist *h, uint64_t count, double rate, uint64_t errors)
{
    char p50[32], p90[32], p99[32], p999[32], mx[32];
    fmt_ms(p50, sizeof p50, hist_pct(h, 50));
    fmt_ms(p90, sizeof p90, hist_pct(h, 90));
    fmt_ms(p99, sizeof p99, hist_pct(h, 99));
    fmt_ms(p999, sizeof p999, hist_pct(h, 99.9));
    fmt_ms(mx, sizeof mx, h->max);
    if (!h->count) strcpy(p50, "-"), strcpy(p90, "-"), strcpy(p99, "-"), strcpy(p999, "-"), strcpy(mx, "-");
    char rs[32];
    if (rate < 0) snprintf(rs, sizeof rs, "-");
    else snprintf(rs, sizeof rs, "%.1f", rate);
    printf("%-38s %10llu %11s %9s %9s %9s %9s %9s %7llu\n", name, (unsigned long long)count, rs, p50, p90, p99,
           p999, mx, (unsigned long long)errors);
    json_t *lat = json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:I}", "p50", ms(hist_pct(h, 50)), "p90",
                            ms(hist_pct(h, 90)), "p99", ms(hist_pct(h, 99)), "p99_9", ms(hist_pct(h, 99.9)), "max",
                            ms(h->count ? h->max : 0), "min", ms(h->count ? h->min : 0), "mean", hist_mean(h) / 1e6,
                            "samples", (json_int_t)h->count);
    return json_pack("{s:s,s:I,s:o,s:I,s:o}", "name", name, "count", (json_int_t)count, "rate_per_s",
                     rate < 0 ? json_null() : json_real(rate), "errors", (json_int_t)errors, "latency_ms", lat);
}

json_t *report_value(const char *name, double value, const char *unit)
{
    printf("%-38s %10.6g %s\n", name, value, unit);
    return json_pack("{s:s,s:f,s:s}", "name", name, "value", value, "unit", unit);
}

void report_note(bench *b, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    printf("note: %s\n", line);
    if (b->notes) json_array_append_new(b->notes, json_string(line));
}

int report_write(bench *b, json_t *results, double elapsed)
{
    fflush(stdout);
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    struct sysinfo si;
    double mem_gib = 0;
    if (!sysinfo(&si)) mem_gib = (double)si.totalram * si.mem_unit / (1024.0 * 1024 * 1024);
    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    struct utsname un;
    uname(&un);
    const bench_opts *o = &b->o;
    json_t *params = json_pack("{s:s,s:s,s:f,s:f,s:i,s:i,s:i,s:f,s:i,s:i,s:i,s:i,s:i,s:i}", "url", b->ws_url,
                               "encoding", o->enc == PARLEY_ENC_PROTOBUF ? "protobuf" : "json", "duration_s",
                               o->duration, "warmup_s", o->warmup, "procs", b->nprocs, "clients", o->clients, "pairs",
                               o->pairs, "rate", o->rate, "size", o->size, "members", o->members, "messages",
                               o->messages, "convs", o->convs, "reps", o->reps, "src_ips", o->src_ips);
    json_object_set_new(params, "offline", json_integer(o->offline));
    json_t *machine = json_pack("{s:i,s:f,s:[f,f,f],s:s,s:s}", "cores", (int)sysconf(_SC_NPROCESSORS_ONLN),
                                "mem_gib", mem_gib, "loadavg", load[0], load[1], load[2], "kernel", un.release,
                                "host", un.nodename);
    json_t *server = json_pack("{s:i}", "pid", b->server_pid);
    json_t *doc = json_pack("{s:s,s:s,s:f,s:o,s:o,s:o,s:o,s:O}", "scenario", b->sc->name, "date", date,
                            "elapsed_s", elapsed, "machine", machine, "server", server, "params", params, "results",
                            results, "notes", b->notes ? b->notes : json_array());
    printf("(%s, %.1f s, load average %.2f %.2f %.2f, %d cores)\n", date, elapsed, load[0], load[1], load[2],
           (int)sysconf(_SC_NPROCESSORS_ONLN));
    int rc = 0;
    if (o->json_path) {
        if (json_dump_file(doc, o->json_path, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) {
            fprintf(stderr, "parley-bench: cannot write %s\n", o->json_path);
            rc = 1;
        }
    }
    json_decref(doc);
    return rc;
}
