/*
 * setup.c - what a run needs from outside the protocol: users and tokens
 * through the app API (POST /v1/users with the tenant's API key and
 * issue_token, so no password hashing is paid for bulk users), and the
 * server process's memory and descriptors from /proc.
 *
 * Runs in the parent before the workers are forked, each call on a loop of
 * its own that is closed again, so no libuv state crosses a fork.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "core/mem.h"

typedef struct user_job {
    bench *b;
    size_t i;
    char **names, **tokens;
    size_t *done, *failed;
    char *err;
} user_job;

static void on_user(void *arg, int status, const char *body, size_t len)
{
    user_job *j = arg;
    (*j->done)++;
    json_t *js = json_loadb(body, len, 0, NULL);
    const char *tok = js ? json_string_value(json_object_get(js, "token")) : NULL;
    if (status == 200 && tok) {
        j->tokens[j->i] = pl_strdup(tok);
    } else {
        (*j->failed)++;
        if (!*j->err) snprintf(j->err, 256, "POST /v1/users answered %d: %.200s", status, len ? body : "(no answer)");
    }
    if (js) json_decref(js);
    pl_free(j);
}

int setup_users(bench *b, const char *tag, size_t n, const char *password)
{
    if (!b->o.api_key) {
        fprintf(stderr, "parley-bench: no API key: give --api-key KEY or --data DIR (reads DIR/default.key)\n");
        return -1;
    }
    char **names = pl_calloc(n ? n : 1, sizeof *names);
    char **tokens = pl_calloc(n ? n : 1, sizeof *tokens);
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_client *h = http_new(&loop, b->host, b->port, 32);
    if (!h) {
        fprintf(stderr, "parley-bench: bad HTTP address %s:%d\n", b->host, b->port);
        uv_loop_close(&loop);
        pl_free(names);
        pl_free(tokens);
        return -1;
    }
    size_t done = 0, failed = 0;
    char err[256] = "";
    uint64_t t = mono_ns();
    for (size_t i = 0; i < n; i++) {
        char name[80];
        snprintf(name, sizeof name, "%s%s%zu", b->prefix, tag, i);
        names[i] = pl_strdup(name);
        json_t *body = json_pack("{s:s,s:b}", "user", name, "issue_token", 1);
        if (password) json_object_set_new(body, "password", json_string(password));
        char *s = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        user_job *j = PL_NEW(user_job);
        *j = (user_job){b, i, names, tokens, &done, &failed, err};
        http_request(h, "POST", "/v1/users", b->o.api_key, s, on_user, j);
        free(s);
        /* Keep the queue short so memory stays flat for large n. */
        while (http_pending(h) > 256) uv_run(&loop, UV_RUN_ONCE);
    }
    while (http_pending(h)) uv_run(&loop, UV_RUN_ONCE);
    http_free(h);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (failed) {
        fprintf(stderr, "parley-bench: %zu of %zu users not created: %s\n", failed, n, err);
        for (size_t i = 0; i < n; i++) {
            pl_free(names[i]);
            pl_free(tokens[i]);
        }
        pl_free(names);
        pl_free(tokens);
        return -1;
    }
    if (!b->o.quiet)
        fprintf(stderr, "parley-bench: created %zu users%s in %.1f s\n", n, password ? " with passwords" : "",
                (double)(mono_ns() - t) / 1e9);
    if (password) {
        b->pw_users = names;
        b->n_pw_users = n;
        for (size_t i = 0; i < n; i++) pl_free(tokens[i]);
        pl_free(tokens);
        b->password = password;
    } else {
        b->users = names;
        b->tokens = tokens;
        b->n_users = n;
    }
    return 0;
}

typedef struct call_job {
    int status;
    buf *out;
    bool done;
} call_job;

static void on_call(void *arg, int status, const char *body, size_t len)
{
    call_job *j = arg;
    j->status = status;
    if (j->out) buf_append(j->out, body, len);
    j->done = true;
}

int setup_call(bench *b, const char *method, const char *path, const char *auth, const char *body, buf *out)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_client *h = http_new(&loop, b->host, b->port, 1);
    if (!h) {
        uv_loop_close(&loop);
        return 0;
    }
    call_job j = {.out = out};
    http_request(h, method, path, auth, body, on_call, &j);
    while (!j.done) uv_run(&loop, UV_RUN_ONCE);
    http_free(h);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (out) buf_appendc(out, 0), out->len--;
    return j.status;
}

/* ---- /proc ---- */

static unsigned long listen_inode(const char *file, int port)
{
    FILE *f = fopen(file, "r");
    if (!f) return 0;
    char line[512];
    unsigned long inode = 0;
    if (!fgets(line, sizeof line, f)) line[0] = 0;   /* header */
    while (!inode && fgets(line, sizeof line, f)) {
        char local[128], remote[128];
        unsigned st;
        unsigned long ino;
        if (sscanf(line, " %*d: %127s %127s %x %*s %*s %*s %*s %*s %lu", local, remote, &st, &ino) != 4) continue;
        const char *colon = strrchr(local, ':');
        if (!colon || st != 0x0A) continue;   /* LISTEN */
        if ((int)strtol(colon + 1, NULL, 16) == port) inode = ino;
    }
    fclose(f);
    return inode;
}

int find_server_pid(int port)
{
    unsigned long inode = listen_inode("/proc/net/tcp", port);
    if (!inode) inode = listen_inode("/proc/net/tcp6", port);
    if (!inode) return 0;
    char want[64];
    snprintf(want, sizeof want, "socket:[%lu]", inode);
    DIR *d = opendir("/proc");
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid == getpid()) continue;
        char dir[64];
        snprintf(dir, sizeof dir, "/proc/%ld/fd", pid);
        DIR *fd = opendir(dir);
        if (!fd) continue;
        struct dirent *fe;
        while ((fe = readdir(fd))) {
            char path[600], link[128];
            snprintf(path, sizeof path, "%s/%s", dir, fe->d_name);
            ssize_t n = readlink(path, link, sizeof link - 1);
            if (n <= 0) continue;
            link[n] = 0;
            if (!strcmp(link, want)) {
                found = (int)pid;
                break;
            }
        }
        closedir(fd);
    }
    closedir(d);
    return found;
}

uint64_t proc_rss(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = strtoull(line + 6, NULL, 10);
    fclose(f);
    return kb * 1024;
}

long proc_fds(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

long proc_fd_limit(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/limits", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long soft = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Max open files", 14)) soft = strtol(line + 14, NULL, 10);
    fclose(f);
    return soft;
}

uint64_t server_mem_metric(bench *b)
{
    buf out = {0};
    uint64_t v = 0;
    if (setup_call(b, "GET", "/metrics", NULL, NULL, &out) == 200) {
        const char *p = strstr((const char *)buf_begin(&out), "\nparley_heap_bytes ");
        if (p) v = strtoull(p + 19, NULL, 10);
    }
    buf_free(&out);
    return v;
}
