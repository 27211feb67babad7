/*
 * test_datadir.c - the data directory's format version (ops/datadir.c):
 * a fresh directory gets the current version, one from before versions is
 * migrated forward, a newer or unreadable version is refused with one
 * line, and the version file parser.
 */
#define _GNU_SOURCE
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

#include "ops/ops.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/parley-datadir-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void put(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void get(const char *name, char *out, size_t outlen)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, outlen - 1, f);
    out[n] = 0;
    fclose(f);
}

static void test_fresh(void **state)
{
    (void)state;
    int from = 99;
    char err[256] = "", text[32];
    assert_int_equal(ops_datadir_prepare(dir, &from, err, sizeof err), 0);
    assert_int_equal(from, -1);
    get(OPS_DATADIR_VERSION_FILE, text, sizeof text);
    assert_string_equal(text, "1\n");
    /* again: nothing to do */
    assert_int_equal(ops_datadir_prepare(dir, &from, err, sizeof err), 0);
    assert_int_equal(from, OPS_DATADIR_VERSION);
}

static void test_before_versions(void **state)
{
    (void)state;
    put("secret", "0123456789abcdef0123456789abcdef");
    int from = 99;
    char err[256] = "", text[32];
    assert_int_equal(ops_datadir_prepare(dir, &from, err, sizeof err), 0);
    assert_int_equal(from, 0);
    get(OPS_DATADIR_VERSION_FILE, text, sizeof text);
    assert_string_equal(text, "1\n");
}

static void test_newer_and_garbage(void **state)
{
    (void)state;
    int from = 0;
    char err[256] = "";
    put(OPS_DATADIR_VERSION_FILE, "7\n");
    assert_int_equal(ops_datadir_prepare(dir, &from, err, sizeof err), -1);
    assert_int_equal(from, 7);
    assert_non_null(strstr(err, "newer"));
    assert_null(strchr(err, '\n'));
    put(OPS_DATADIR_VERSION_FILE, "seven\n");
    err[0] = 0;
    assert_int_equal(ops_datadir_prepare(dir, &from, err, sizeof err), -1);
    assert_non_null(strstr(err, "version"));
}

static void test_parse(void **state)
{
    (void)state;
    assert_int_equal(ops_datadir_parse_version("1\n", 2), 1);
    assert_int_equal(ops_datadir_parse_version("42", 2), 42);
    assert_int_equal(ops_datadir_parse_version("3 \r\n", 4), 3);
    assert_int_equal(ops_datadir_parse_version("", 0), -1);
    assert_int_equal(ops_datadir_parse_version("\n", 1), -1);
    assert_int_equal(ops_datadir_parse_version("1x", 2), -1);
    assert_int_equal(ops_datadir_parse_version("-1", 2), -1);
    assert_int_equal(ops_datadir_parse_version("99999999999", 11), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_before_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_and_garbage, setup, teardown),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
