/*
 * static.c - the web chat page: the files of `web_root`, served from memory.
 *
 * The first request that could be for a page file (a GET or HEAD outside
 * /v1/) loads the whole tree under `web_root` into one table, once per
 * process; the table never changes afterwards and lives until exit.  A
 * request is answered with a file only when its decoded path is exactly
 * the path of a loaded file, so no request can reach anything else:
 *
 *   - the loader walks the tree with openat() and O_NOFOLLOW from the root
 *     directory and takes regular files only: symbolic links (to files or
 *     directories), devices, sockets and fifos are skipped, so nothing
 *     outside the root is ever read;
 *   - names that start with '.' (".env", ".git") and names with characters
 *     outside [A-Za-z0-9._~+-] are skipped, so a table path never contains
 *     "..", ".", an empty segment, a backslash or anything to decode;
 *   - lookups compare whole paths; no path is joined, normalised or opened
 *     at request time, so there is no race with the disk and no blocking
 *     file I/O on a worker's event loop after the first load.
 *
 * Caching: names that carry a content hash (app.1f2e3d4c5b.js, as
 * web/build.mjs writes them) are `immutable` for a year; every other file
 * (index.html) is `no-cache`, revalidated by its ETag (a 64-bit FNV-1a of
 * the content) with If-None-Match -> 304.  Last-Modified is sent too.  A
 * path that names no file is left to the API routes, which answer every
 * unknown path with the same JSON 404.
 *
 * A rebuilt page is picked up when parleyd restarts.  Without index.html
 * under web_root nothing is served here and `/` shows routes.c's note that
 * the page is not installed.
 *
 * Threads: the load runs under a mutex on whichever worker asks first;
 * afterwards readers only read the published table.
 */
#include "server/static.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"

/* ---- content types and names ---- */

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"woff2", "font/woff2"},
    {"woff", "font/woff"},
    {"wasm", "application/wasm"},
};

const char *srv_static_type(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    const char *dot = strrchr(base, '.');
    if (dot && dot != base) {
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (!strcasecmp(dot + 1, types[i].ext)) return types[i].type;
    }
    return "application/octet-stream";
}

static bool is_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

bool srv_static_hashed(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    const char *ext = strrchr(base, '.');
    if (!ext || ext == base) return false;
    const char *h = ext;
    while (h > base && h[-1] != '.') h--;
    if (h - 1 <= base) return false; /* "hash.js", ".hash.js": no name before the hash */
    size_t n = (size_t)(ext - h);
    if (n < 8 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!is_hex(h[i])) return false;
    return true;
}

/* A name the table may hold: no leading dot, only [A-Za-z0-9._~+-]. */
static bool name_ok(const char *name)
{
    if (!*name || *name == '.' || strlen(name) > 255) return false;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '.' || ch == '_' || ch == '-' || ch == '~' || ch == '+';
        if (!ok) return false;
    }
    return true;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---- loading ---- */

typedef struct loader {
    srv_static *t;
    size_t cap;
    const char *root;
} loader;

static void skip(loader *l, const char *rel, const char *why)
{
    l->t->skipped++;
    log_event(LOG_WARN, "web file skipped", "web_root", l->root, "path", rel, "why", why, NULL);
}

/* Reads a regular file opened at fd; true with *out, *len on success. */
static bool read_all(int fd, size_t size, uint8_t **out, size_t *len)
{
    uint8_t *buf = pl_malloc(size ? size : 1);
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got != size) { /* changed while read: leave it out */
        pl_free(buf);
        return false;
    }
    *out = buf;
    *len = got;
    return true;
}

static void add_file(loader *l, int dfd, const char *name, const char *rel)
{
    srv_static *t = l->t;
    if (t->n >= SRV_STATIC_MAX_FILES) {
        skip(l, rel, "too many files");
        return;
    }
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        skip(l, rel, strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        skip(l, rel, "not a regular file");
        return;
    }
    size_t size = (size_t)st.st_size;
    if (size > SRV_STATIC_MAX_FILE || t->bytes + size > SRV_STATIC_MAX_TOTAL) {
        close(fd);
        skip(l, rel, "too large");
        return;
    }
    uint8_t *body;
    size_t len;
    bool ok = read_all(fd, size, &body, &len);
    close(fd);
    if (!ok) {
        skip(l, rel, "could not be read whole");
        return;
    }
    if (t->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        t->files = pl_realloc(t->files, l->cap * sizeof *t->files);
    }
    srv_static_file *f = &t->files[t->n++];
    memset(f, 0, sizeof *f);
    f->path = pl_strdup(rel);
    f->type = srv_static_type(name);
    f->body = body;
    f->len = len;
    f->mtime = st.st_mtime;
    f->immutable = srv_static_hashed(name);
    snprintf(f->etag, sizeof f->etag, "\"%016llx\"", (unsigned long long)fnv1a(body, len));
    t->bytes += len;
}

/* Walks the directory open at fd (which this call closes); rel is its
 * URL path ("" for the root). */
static void walk(loader *l, int fd, const char *rel, int depth)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        skip(l, *rel ? rel : "/", "cannot list");
        return;
    }
    int dfd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        if (!strcmp(name, ".") || !strcmp(name, "..")) continue;
        char path[1024];
        int n = snprintf(path, sizeof path, "%s/%s", rel, name);
        if (n < 0 || (size_t)n >= sizeof path) {
            skip(l, rel, "path too long");
            continue;
        }
        if (*name == '.') { /* hidden: left out without a word */
            l->t->skipped++;
            continue;
        }
        if (!name_ok(name)) {
            skip(l, path, "unusual name");
            continue;
        }
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW)) {
            skip(l, path, strerror(errno));
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (depth >= SRV_STATIC_MAX_DEPTH) {
                skip(l, path, "too deep");
                continue;
            }
            int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                skip(l, path, strerror(errno));
                continue;
            }
            walk(l, sub, path, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            add_file(l, dfd, name, path);
        } else {
            skip(l, path, S_ISLNK(st.st_mode) ? "symbolic link" : "not a regular file");
        }
    }
    closedir(d);
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const srv_static_file *)a)->path, ((const srv_static_file *)b)->path);
}

srv_static *srv_static_load(const char *root, char *err, size_t errlen)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", root, strerror(errno));
        return NULL;
    }
    srv_static *t = pl_calloc(1, sizeof *t);
    loader l = {.t = t, .root = root};
    walk(&l, fd, "", 0);
    if (t->n) qsort(t->files, t->n, sizeof *t->files, by_path);
    return t;
}

void srv_static_free(srv_static *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        pl_free(t->files[i].path);
        pl_free(t->files[i].body);
    }
    pl_free(t->files);
    pl_free(t);
}

const srv_static_file *srv_static_find(const srv_static *t, const char *path)
{
    if (!t || !t->n || !path || path[0] != '/') return NULL;
    if (!strcmp(path, "/")) path = "/index.html";
    /* Not needed for safety (only loaded paths match), but say no early to
     * anything a loaded path can never look like. */
    if (strstr(path, "/.") || strstr(path, "//") || strchr(path, '\\')) return NULL;
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(path, t->files[mid].path);
        if (!c) return &t->files[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

bool srv_static_etag_match(const char *inm, const char *etag)
{
    if (!inm) return false;
    size_t elen = strlen(etag);
    const char *p = inm;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        const char *start = p;
        while (*p && *p != ',') p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t')) end--;
        if (end - start == 1 && *start == '*') return true;
        if (end - start > 2 && !strncmp(start, "W/", 2)) start += 2; /* weak comparison (RFC 9110) */
        if ((size_t)(end - start) == elen && !strncmp(start, etag, elen)) return true;
    }
    return false;
}

/* ---- the process-wide table ---- */

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(srv_static *) table;
static atomic_bool table_tried;

static const srv_static *table_get(const char *root)
{
    if (atomic_load_explicit(&table_tried, memory_order_acquire)) return atomic_load(&table);
    pthread_mutex_lock(&table_lock);
    if (!atomic_load(&table_tried)) {
        srv_static *t = NULL;
        char err[512] = "";
        if (root && *root) t = srv_static_load(root, err, sizeof err);
        else snprintf(err, sizeof err, "the setting web_root is empty");
        if (t && !srv_static_find(t, "/index.html")) {
            snprintf(err, sizeof err, "no index.html in %s", root);
            srv_static_free(t);
            t = NULL;
        }
        if (t) {
            char files[32], bytes[32];
            snprintf(files, sizeof files, "%zu", t->n);
            snprintf(bytes, sizeof bytes, "%zu", t->bytes);
            log_event(LOG_INFO, "web page loaded", "web_root", root, "files", files, "bytes", bytes, NULL);
        } else {
            log_event(LOG_WARN, "web page not installed: / shows a placeholder", "web_root", root ? root : "",
                      "why", err, NULL);
        }
        atomic_store(&table, t);
        atomic_store_explicit(&table_tried, true, memory_order_release);
    }
    pthread_mutex_unlock(&table_lock);
    return atomic_load(&table);
}

/* ---- answering ---- */

static void http_date(time_t t, char *out, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Headers of pages: scripts and styles from this origin only, WebSockets
 * to it, no framing. */
#define HTML_HEADERS                                                                          \
    "Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; "              \
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'\r\n"    \
    "Referrer-Policy: no-referrer\r\n"

bool srv_static_serve(const char *web_root, net_conn *c, const net_http_req *req)
{
    bool get = !strcmp(req->method, "GET");
    if (!get && strcmp(req->method, "HEAD")) return false;
    if (!strncmp(req->path, "/v1/", 4) || !strcmp(req->path, "/v1")) return false;
    const srv_static *t = table_get(web_root);
    if (!t) return false;
    const srv_static_file *f = srv_static_find(t, req->path);
    if (!f) return false; /* the API's JSON 404, like any unknown path */
    char modified[64];
    http_date(f->mtime, modified, sizeof modified);
    bool html = !strncmp(f->type, "text/html", 9);
    char headers[1024];
    snprintf(headers, sizeof headers,
             "Cache-Control: %s\r\nETag: %s\r\nLast-Modified: %s\r\nX-Content-Type-Options: nosniff\r\n%s",
             f->immutable ? "public, max-age=31536000, immutable" : "no-cache", f->etag, modified,
             html ? HTML_HEADERS : "");
    if (srv_static_etag_match(net_http_header(req, "If-None-Match"), f->etag)) {
        net_http_respond(c, 304, NULL, headers, NULL, 0);
        return true;
    }
    net_http_respond(c, 200, f->type, headers, f->body, f->len);
    return true;
}
