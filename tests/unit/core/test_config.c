/*
 * test_config.c - settings from text, environment and flags (core/config.c):
 * precedence, types, ranges and one-line errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/mem.h"

typedef struct values {
    char *name;
    int64_t count;
    bool flag;
    double rate;
} values;

static const config_def defs[] = {
    {"name", CONFIG_STR, "x", 0, 0, "a name", offsetof(values, name)},
    {"count", CONFIG_INT, "1", 0, 100, "a count", offsetof(values, count)},
    {"flag", CONFIG_BOOL, "false", 0, 0, "a flag", offsetof(values, flag)},
    {"rate", CONFIG_DOUBLE, "1.5", 0, 0, "a rate", offsetof(values, rate)},
};
#define N (sizeof defs / sizeof defs[0])

static void test_text(void **state)
{
    values v = {0};
    char err[256];
    const char *text = "# settings\nname = \"two words\"\n\n  count=7  \nflag = on\nrate = 0.25";
    assert_int_equal(config_parse_text(defs, N, &v, text, strlen(text), "t.conf", err, sizeof err), 0);
    assert_string_equal(v.name, "two words");
    assert_int_equal(v.count, 7);
    assert_true(v.flag);
    assert_true(v.rate == 0.25);
    const char *bad[][2] = {
        {"count = 101\n", "t.conf:1"},      {"count = x\n", "expected an integer"},
        {"\nflag = maybe\n", "t.conf:2"},   {"nope = 1\n", "unknown setting nope"},
        {"just words\n", "expected key = value"}, {"rate = -1\n", "non-negative"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_int_equal(config_parse_text(defs, N, &v, bad[i][0], strlen(bad[i][0]), "t.conf", err,
                                           sizeof err), -1);
        assert_non_null(strstr(err, bad[i][1]));
        assert_null(strchr(err, '\n'));
    }
    config_free_strings(defs, N, &v);
}

static void test_precedence(void **state)
{
    size_t before = pl_mem_used();
    char path[] = "/tmp/parley-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "count = 5\nname = file\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    setenv("PARLEY_COUNT", "6", 1);
    setenv("PARLEY_RATE", "3", 1);
    char *argv[] = {"prog", "--config", path, "--count", "9", "--flag", "--name=cli", NULL};
    values v = {0};
    bool help;
    char err[256];
    assert_int_equal(config_load(defs, N, &v, 7, argv, &help, err, sizeof err), 0);
    assert_false(help);
    assert_int_equal(v.count, 9);          /* flag beats environment beats file */
    assert_true(v.rate == 3);              /* environment beats default */
    assert_string_equal(v.name, "cli");
    assert_true(v.flag);
    config_free_strings(defs, N, &v);
    char *argv2[] = {"prog", "--config", path, NULL};
    assert_int_equal(config_load(defs, N, &v, 3, argv2, &help, err, sizeof err), 0);
    assert_int_equal(v.count, 6);          /* environment beats file */
    assert_string_equal(v.name, "file");
    config_free_strings(defs, N, &v);
    char *argv3[] = {"prog", "--bogus", "1", NULL};
    assert_int_equal(config_load(defs, N, &v, 3, argv3, &help, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown option --bogus"));
    config_free_strings(defs, N, &v);
    unsetenv("PARLEY_COUNT");
    unsetenv("PARLEY_RATE");
    unlink(path);
    assert_int_equal(pl_mem_used(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_precedence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
