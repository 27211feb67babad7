/*
 * process.c - process metrics in the names Prometheus clients use
 * (process_resident_memory_bytes, process_cpu_seconds_total...), read
 * from /proc/self when /metrics is scraped, never in between.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/metrics.h"
#include "ops/ops.h"

/* Field n (1-based, as in proc(5)) of /proc/self/stat, or 0. */
static double stat_field(int n)
{
    char b[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return 0;
    size_t len = fread(b, 1, sizeof b - 1, f);
    fclose(f);
    b[len] = 0;
    /* The command name (field 2) may hold spaces: count from its end. */
    char *p = strrchr(b, ')');
    if (!p) return 0;
    p++;
    for (int i = 3; i <= n; i++) {
        while (*p == ' ') p++;
        if (i == n) return strtod(p, NULL);
        while (*p && *p != ' ') p++;
    }
    return 0;
}

static double rss_bytes(void *ud)
{
    (void)ud;
    return stat_field(24) * (double)sysconf(_SC_PAGESIZE);
}

static double vsize_bytes(void *ud)
{
    (void)ud;
    return stat_field(23);
}

static double threads(void *ud)
{
    (void)ud;
    return stat_field(20);
}

static double cpu_seconds(void *ud)
{
    (void)ud;
    double ticks = (double)sysconf(_SC_CLK_TCK);
    return ticks > 0 ? (stat_field(14) + stat_field(15)) / ticks : 0;
}

static double start_time(void *ud)
{
    (void)ud;
    /* Boot time plus the start in ticks since boot. */
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    char line[256];
    double btime = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "btime ", 6)) btime = strtod(line + 6, NULL);
    fclose(f);
    double ticks = (double)sysconf(_SC_CLK_TCK);
    return ticks > 0 ? btime + stat_field(22) / ticks : 0;
}

static double open_fds(void *ud)
{
    (void)ud;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return 0;
    double n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

static double max_fds(void *ud)
{
    (void)ud;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) return 0;
    return rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur;
}

void ops_process_metrics(void)
{
    metric_fn(METRIC_GAUGE, "process_resident_memory_bytes", "Resident memory size in bytes.",
              NULL, rss_bytes, NULL);
    metric_fn(METRIC_GAUGE, "process_virtual_memory_bytes", "Virtual memory size in bytes.", NULL,
              vsize_bytes, NULL);
    metric_fn(METRIC_GAUGE, "process_open_fds", "Open file descriptors.", NULL, open_fds, NULL);
    metric_fn(METRIC_GAUGE, "process_max_fds", "Largest number of open file descriptors allowed.",
              NULL, max_fds, NULL);
    metric_fn(METRIC_GAUGE, "process_threads", "Threads of the process.", NULL, threads, NULL);
    metric_fn(METRIC_COUNTER, "process_cpu_seconds_total", "User and system CPU time, in seconds.",
              NULL, cpu_seconds, NULL);
    metric_fn(METRIC_GAUGE, "process_start_time_seconds",
              "Start time of the process since the Unix epoch, in seconds.", NULL, start_time, NULL);
}
