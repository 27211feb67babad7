/*
 * test_static.c - the web page's file table (server/static.h): which names
 * count as content-hashed, content types, If-None-Match matching, and what
 * a load of a directory takes in and leaves out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/static.h"

static void test_hashed_names(void **state)
{
    (void)state;
    assert_true(srv_static_hashed("app.0123abcd.js"));
    assert_true(srv_static_hashed("/assets/main.e88c6cb2b6a6.js"));
    assert_true(srv_static_hashed("style.ABCDEF0123.css"));
    assert_false(srv_static_hashed("index.html"));
    assert_false(srv_static_hashed("app.js"));
    assert_false(srv_static_hashed("app.0123abc.js"));   /* 7 digits */
    assert_false(srv_static_hashed("app.0123abcg.js"));  /* not hex */
    assert_false(srv_static_hashed("0123abcd.js"));      /* no name */
    assert_false(srv_static_hashed(".0123abcd.js"));
    assert_false(srv_static_hashed("app.0123abcd"));     /* the hash is the extension */
}

static void test_types(void **state)
{
    (void)state;
    assert_string_equal(srv_static_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(srv_static_type("/a/b/app.1234abcd.js"), "text/javascript; charset=utf-8");
    assert_string_equal(srv_static_type("x.CSS"), "text/css; charset=utf-8");
    assert_string_equal(srv_static_type("logo.svg"), "image/svg+xml");
    assert_string_equal(srv_static_type("font.woff2"), "font/woff2");
    assert_string_equal(srv_static_type("Makefile"), "application/octet-stream");
    assert_string_equal(srv_static_type(".js"), "application/octet-stream");
    assert_string_equal(srv_static_type("a.unknown"), "application/octet-stream");
}

static void test_etag_match(void **state)
{
    (void)state;
    const char *e = "\"00112233aabbccdd\"";
    assert_true(srv_static_etag_match("\"00112233aabbccdd\"", e));
    assert_true(srv_static_etag_match("W/\"00112233aabbccdd\"", e));
    assert_true(srv_static_etag_match("\"x\", \"00112233aabbccdd\" ", e));
    assert_true(srv_static_etag_match("*", e));
    assert_false(srv_static_etag_match(NULL, e));
    assert_false(srv_static_etag_match("", e));
    assert_false(srv_static_etag_match("\"00112233aabbccd\"", e));
    assert_false(srv_static_etag_match("00112233aabbccdd", e));
    assert_false(srv_static_etag_match("\"00112233aabbccdd\"x", e));
    assert_false(srv_static_etag_match(",,, ,", e));
}

static void put(const char *dir, const char *rel, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_load_and_find(void **state)
{
    (void)state;
    char base[] = "/tmp/parley-static-XXXXXX";
    assert_non_null(mkdtemp(base));
    char root[1100], sub[1200], outside[1100], link[1200], dlink[1200];
    snprintf(root, sizeof root, "%s/root", base);
    snprintf(sub, sizeof sub, "%s/assets", root);
    snprintf(outside, sizeof outside, "%s/secret", base);
    assert_int_equal(mkdir(root, 0700), 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    put(base, "secret", "secret");
    put(root, "index.html", "<p>hi</p>");
    put(root, "assets/app.0123abcd.js", "x");
    put(root, "assets/empty.txt", "");
    put(root, ".env", "secret");
    put(root, "we ird.txt", "secret");
    snprintf(link, sizeof link, "%s/link.txt", root);
    assert_int_equal(symlink(outside, link), 0);
    snprintf(dlink, sizeof dlink, "%s/up", root);
    assert_int_equal(symlink(base, dlink), 0);

    char err[256];
    srv_static *t = srv_static_load(root, err, sizeof err);
    assert_non_null(t);
    assert_int_equal(t->n, 3);
    assert_int_equal(t->skipped, 4);

    const srv_static_file *f = srv_static_find(t, "/");
    assert_non_null(f);
    assert_string_equal(f->path, "/index.html");
    assert_int_equal(f->len, 9);
    assert_memory_equal(f->body, "<p>hi</p>", 9);
    assert_false(f->immutable);
    f = srv_static_find(t, "/assets/app.0123abcd.js");
    assert_non_null(f);
    assert_true(f->immutable);
    assert_string_equal(f->type, "text/javascript; charset=utf-8");
    f = srv_static_find(t, "/assets/empty.txt");
    assert_non_null(f);
    assert_int_equal(f->len, 0);

    const char *never[] = {"/link.txt", "/up/secret", "/.env", "/we ird.txt", "/../secret", "/assets/../index.html",
                           "/./index.html", "//index.html", "/assets\\app.0123abcd.js", "index.html", "", "/assets",
                           "/assets/", "/index.html/", NULL};
    for (const char **p = never; *p; p++) assert_null(srv_static_find(t, *p));
    assert_null(srv_static_find(t, NULL));
    srv_static_free(t);

    assert_null(srv_static_load("/nonexistent/parley/web", err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
    assert_null(srv_static_load(outside, err, sizeof err)); /* a file, not a directory */

    unlink(link);
    unlink(dlink);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hashed_names),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_etag_match),
        cmocka_unit_test(test_load_and_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
