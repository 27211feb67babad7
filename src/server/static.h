/*
 * static.h - the web chat page: the files of `web_root`, served from memory
 * (static.c).
 */
#ifndef PARLEY_SERVER_STATIC_H
#define PARLEY_SERVER_STATIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "net/net.h"

typedef struct srv_static_file {
    char *path;            /* the URL path, e.g. "/assets/app.1f2e3d4c5b.js" */
    const char *type;      /* Content-Type (static string) */
    uint8_t *body;
    size_t len;
    time_t mtime;
    char etag[24];         /* "\"<16 hex digits>\"" of the content */
    bool immutable;        /* content-hashed name: may be cached for a year */
} srv_static_file;

/* An immutable table of files, sorted by path. */
typedef struct srv_static {
    srv_static_file *files;
    size_t n;
    size_t bytes;
    size_t skipped;        /* entries left out: links, dotfiles, odd names, limits */
} srv_static;

/* Limits of what one load takes in. */
#define SRV_STATIC_MAX_FILES 4096
#define SRV_STATIC_MAX_FILE (16u << 20)
#define SRV_STATIC_MAX_TOTAL (64u << 20)
#define SRV_STATIC_MAX_DEPTH 16

/* Reads every regular file under root into a new table (pure of the
 * network; used by the unit tests).  Returns NULL with a reason in err when
 * root cannot be opened as a directory.  The caller owns the table:
 * srv_static_free. */
srv_static *srv_static_load(const char *root, char *err, size_t errlen);
void srv_static_free(srv_static *t);

/* The file a decoded request path names ("/" is "/index.html"), or NULL.
 * Only exact matches of loaded paths: nothing else can be reached. */
const srv_static_file *srv_static_find(const srv_static *t, const char *path);

/* Content-Type for a file name, by extension. */
const char *srv_static_type(const char *name);

/* Whether a file name carries a content hash: name.<8+ hex digits>.ext */
bool srv_static_hashed(const char *name);

/* Whether an If-None-Match header value matches etag. */
bool srv_static_etag_match(const char *if_none_match, const char *etag);

/* Serves a GET or HEAD of the page's files from the table of `web_root`
 * (loaded on first use, once per process).  Returns false, answering
 * nothing, for other methods, for /v1/ paths, for paths that name no file
 * and when no page is installed (no index.html under web_root); then the
 * API routes answer (a JSON 404 for an unknown path). */
bool srv_static_serve(const char *web_root, net_conn *c, const net_http_req *req);

#endif
