/*
 * metrics.c - the metrics registry (see metrics.h).
 *
 * Storage.  `rows` is METRICS_SHARDS rows of METRICS_SLOTS 64-bit slots,
 * each row aligned to a cache line.  A series owns slot indexes, the same
 * in every row; a thread writes only to the row it took on its first
 * count (metrics__tl_row).  A histogram's slots are its buckets (+Inf
 * last), not cumulative, then the sum of observations.
 *
 * Registry.  The series descriptors and their families (one per name) are
 * kept in fixed arrays guarded by `reg_lock`; a descriptor never moves, so
 * the metric pointer handed out stays valid for the life of the process.
 * Rendering holds the lock, sums the rows slot by slot with relaxed loads
 * (a scrape may see one thread's add before another's: each value is
 * exact at some moment, the set is not a snapshot) and calls the scrape
 * functions of metric_fn series.
 */
#include "core/metrics.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MAX_SERIES 2048
#define MAX_FAMILIES 256
#define NAME_MAX_LEN 96
#define LABELS_MAX_LEN 160
#define HELP_MAX_LEN 200

typedef struct series {
    metric m;
    int family;
    int next;                      /* next series of the family, or -1 */
    char labels[LABELS_MAX_LEN];
    uint64_t bounds[METRICS_MAX_BUCKETS];
    double (*fn)(void *);
    void *ud;
    bool is_fn;
} series;

typedef struct family {
    char name[NAME_MAX_LEN];
    char help[HELP_MAX_LEN];
    metric_type type;
    double scale;
    int first, last;               /* series indexes */
} family;

static _Alignas(64) _Atomic uint64_t rows[METRICS_SHARDS][METRICS_SLOTS];
static _Atomic unsigned next_row;
_Thread_local _Atomic uint64_t *metrics__tl_row;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static series all_series[MAX_SERIES];
static int n_series;
static family families[MAX_FAMILIES];
static int n_families;
static uint32_t next_slot;

const uint64_t metrics_seconds_ns[] = {
    50000,     100000,    250000,     500000,     1000000,    2500000,
    5000000,   10000000,  25000000,   50000000,   100000000,  250000000,
    500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};
const size_t metrics_seconds_ns_n = sizeof metrics_seconds_ns / sizeof metrics_seconds_ns[0];
const uint64_t metrics_sizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
const size_t metrics_sizes_n = sizeof metrics_sizes / sizeof metrics_sizes[0];

_Atomic uint64_t *metrics__row_take(void)
{
    unsigned i = atomic_fetch_add_explicit(&next_row, 1, memory_order_relaxed);
    return metrics__tl_row = rows[i % METRICS_SHARDS];
}

/* The family named name, created with type, help and scale if new; -1 if
 * the table is full or the name is taken by another type. */
static int family_of(const char *name, const char *help, metric_type type, double scale)
{
    for (int i = 0; i < n_families; i++)
        if (!strcmp(families[i].name, name)) return families[i].type == type ? i : -1;
    if (n_families == MAX_FAMILIES || strlen(name) >= NAME_MAX_LEN) return -1;
    family *f = &families[n_families];
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->help, sizeof f->help, "%s", help ? help : "");
    f->type = type;
    f->scale = scale;
    f->first = f->last = -1;
    return n_families++;
}

/* Find or add the series (name, labels); called with reg_lock held. */
static series *find_or_add(const char *name, const char *help, const char *labels,
                           metric_type type, const uint64_t *bounds, size_t n_bounds,
                           double scale, bool *created)
{
    *created = false;
    if (!labels) labels = "";
    int fi = family_of(name, help, type, scale);
    if (fi < 0 || strlen(labels) >= LABELS_MAX_LEN) return NULL;
    for (int i = families[fi].first; i >= 0; i = all_series[i].next)
        if (!strcmp(all_series[i].labels, labels)) return &all_series[i];
    if (n_bounds > METRICS_MAX_BUCKETS) return NULL;
    uint32_t width = type == METRIC_HISTOGRAM ? (uint32_t)n_bounds + 2 : 1;
    if (n_series == MAX_SERIES || next_slot + width > METRICS_SLOTS) return NULL;
    series *s = &all_series[n_series];
    memset(s, 0, sizeof *s);
    s->m.type = type;
    s->m.slot = next_slot;
    s->m.n_bounds = (uint32_t)n_bounds;
    if (n_bounds) memcpy(s->bounds, bounds, n_bounds * sizeof *bounds);
    s->m.bounds = s->bounds;
    s->family = fi;
    s->next = -1;
    snprintf(s->labels, sizeof s->labels, "%s", labels);
    next_slot += width;
    if (families[fi].last >= 0) all_series[families[fi].last].next = n_series;
    else families[fi].first = n_series;
    families[fi].last = n_series;
    n_series++;
    *created = true;
    return s;
}

static metric *reg(const char *name, const char *help, const char *labels, metric_type type,
                   const uint64_t *bounds, size_t n, double scale)
{
    bool created;
    pthread_mutex_lock(&reg_lock);
    series *s = find_or_add(name, help, labels, type, bounds, n, scale, &created);
    if (s && s->is_fn) s = NULL;
    pthread_mutex_unlock(&reg_lock);
    return s ? &s->m : NULL;
}

metric *metric_counter(const char *name, const char *help, const char *labels)
{
    return reg(name, help, labels, METRIC_COUNTER, NULL, 0, 1);
}

metric *metric_gauge(const char *name, const char *help, const char *labels)
{
    return reg(name, help, labels, METRIC_GAUGE, NULL, 0, 1);
}

metric *metric_histogram(const char *name, const char *help, const char *labels,
                         const uint64_t *bounds, size_t n, double scale)
{
    return reg(name, help, labels, METRIC_HISTOGRAM, bounds, n, scale);
}

void metric_fn(metric_type type, const char *name, const char *help, const char *labels,
               double (*fn)(void *ud), void *ud)
{
    if (type == METRIC_HISTOGRAM) return;
    bool created;
    pthread_mutex_lock(&reg_lock);
    series *s = find_or_add(name, help, labels, type, NULL, 0, 1, &created);
    if (s && (created || s->is_fn)) {
        s->is_fn = true;
        s->fn = fn;
        s->ud = ud;
    }
    pthread_mutex_unlock(&reg_lock);
}

void metric_fn_drop(const char *name, const char *labels)
{
    if (!labels) labels = "";
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < n_series; i++) {
        series *s = &all_series[i];
        if (s->is_fn && !strcmp(families[s->family].name, name) && !strcmp(s->labels, labels)) {
            s->fn = NULL;
            s->ud = NULL;
        }
    }
    pthread_mutex_unlock(&reg_lock);
}

void metric_observe_n(metric *m, uint64_t v, uint64_t n)
{
    if (!m || !n) return;
    uint32_t b = 0;
    while (b < m->n_bounds && v > m->bounds[b]) b++;
    _Atomic uint64_t *r = metrics__row();
    atomic_fetch_add_explicit(&r[m->slot + b], n, memory_order_relaxed);
    atomic_fetch_add_explicit(&r[m->slot + m->n_bounds + 1], v * n, memory_order_relaxed);
}

void metric_observe(metric *m, uint64_t v) { metric_observe_n(m, v, 1); }

static uint64_t slot_sum(uint32_t slot)
{
    uint64_t v = 0;
    for (int i = 0; i < METRICS_SHARDS; i++)
        v += atomic_load_explicit(&rows[i][slot], memory_order_relaxed);
    return v;
}

int64_t metric_value(const metric *m)
{
    if (!m) return 0;
    if (m->type != METRIC_HISTOGRAM) return (int64_t)slot_sum(m->slot);
    uint64_t n = 0;
    for (uint32_t b = 0; b <= m->n_bounds; b++) n += slot_sum(m->slot + b);
    return (int64_t)n;
}

/* A value the way Prometheus reads it: integers without a fraction. */
static void put_number(buf *out, double v)
{
    if (v == (double)(int64_t)v && v > -9e15 && v < 9e15)
        buf_printf(out, "%lld", (long long)v);
    else
        buf_printf(out, "%.9g", v);
}

static void put_series_name(buf *out, const char *name, const char *suffix, const char *labels,
                            const char *le)
{
    buf_appends(out, name);
    buf_appends(out, suffix);
    if (!*labels && !le) {
        buf_appendc(out, ' ');
        return;
    }
    buf_appendc(out, '{');
    buf_appends(out, labels);
    if (le) {
        if (*labels) buf_appendc(out, ',');
        buf_printf(out, "le=\"%s\"", le);
    }
    buf_appends(out, "} ");
}

static void render_series(buf *out, const family *f, const series *s)
{
    if (s->is_fn) {
        if (!s->fn) return;
        put_series_name(out, f->name, "", s->labels, NULL);
        put_number(out, s->fn(s->ud));
        buf_appendc(out, '\n');
        return;
    }
    if (f->type == METRIC_COUNTER) {
        put_series_name(out, f->name, "", s->labels, NULL);
        buf_printf(out, "%llu\n", (unsigned long long)slot_sum(s->m.slot));
        return;
    }
    if (f->type == METRIC_GAUGE) {
        put_series_name(out, f->name, "", s->labels, NULL);
        buf_printf(out, "%lld\n", (long long)(int64_t)slot_sum(s->m.slot));
        return;
    }
    uint64_t cum = 0;
    char le[40];
    for (uint32_t b = 0; b <= s->m.n_bounds; b++) {
        cum += slot_sum(s->m.slot + b);
        if (b < s->m.n_bounds) snprintf(le, sizeof le, "%.9g", (double)s->bounds[b] * f->scale);
        else snprintf(le, sizeof le, "+Inf");
        put_series_name(out, f->name, "_bucket", s->labels, le);
        buf_printf(out, "%llu\n", (unsigned long long)cum);
    }
    put_series_name(out, f->name, "_sum", s->labels, NULL);
    put_number(out, (double)slot_sum(s->m.slot + s->m.n_bounds + 1) * f->scale);
    buf_appendc(out, '\n');
    put_series_name(out, f->name, "_count", s->labels, NULL);
    buf_printf(out, "%llu\n", (unsigned long long)cum);
}

void metrics_render(buf *out)
{
    static const char *types[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < n_families; i++) {
        const family *f = &families[i];
        bool any = false;
        for (int j = f->first; j >= 0; j = all_series[j].next)
            if (!all_series[j].is_fn || all_series[j].fn) any = true;
        if (!any) continue;
        buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, types[f->type]);
        for (int j = f->first; j >= 0; j = all_series[j].next) render_series(out, f, &all_series[j]);
    }
    pthread_mutex_unlock(&reg_lock);
}
