/*
 * test_filter.c - the sensitive-word filter (chat/filter.h).
 *
 * Fixed cases for normalisation (case, fullwidth, ligatures, sharp s),
 * overlapping and nested words, CJK and emoji, list parsing and loading,
 * plus randomised comparisons against a naive masker.
 * Every test checks that the mask keeps the code-point count and ends by
 * checking that every byte allocated was freed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "chat/filter.h"
#include "core/mem.h"
#include "core/utf8.h"

static size_t mem_before;

static int setup(void **state)
{
    /* Build one filter first, so the process-wide normalisation table
     * (static, not heap) is in place before the count is taken. */
    filter_unref(filter_new("x", 1));
    mem_before = pl_mem_used();
    return 0;
}

static int teardown(void **state)
{
    assert_int_equal(pl_mem_used(), mem_before);
    return 0;
}

static filter *make(const char *list) { return filter_new(list, strlen(list)); }

/* Mask text and return the result as a string (static storage); also
 * checks the code-point count and the return value against want_n (-1:
 * do not check). */
static const char *mask(const filter *f, const char *text, long want_n)
{
    static char result[4096];
    buf b = {0};
    size_t n = filter_mask(f, text, strlen(text), &b);
    if (want_n >= 0) assert_int_equal(n, (size_t)want_n);
    assert_true(buf_size(&b) < sizeof result);
    if (buf_size(&b)) memcpy(result, buf_begin(&b), buf_size(&b));
    result[buf_size(&b)] = 0;
    assert_int_equal(utf8_count((const uint8_t *)result, strlen(result)),
                     utf8_count((const uint8_t *)text, strlen(text)));
    /* filter_match agrees with the number of matches. */
    assert_int_equal(filter_match(f, text, strlen(text)), n > 0);
    if (n == 0) assert_string_equal(result, text);
    buf_free(&b);
    return result;
}

static void test_ascii_case(void **state)
{
    filter *f = make("BaD\n");
    assert_int_equal(filter_word_count(f), 1);
    assert_true(filter_match(f, "bad", 3));
    assert_true(filter_match(f, "this is BAD!", 12));
    assert_false(filter_match(f, "ba d", 4));
    assert_false(filter_match(f, "ba", 2));
    assert_false(filter_match(f, "", 0));
    assert_string_equal(mask(f, "so bAd, so BAD", 2), "so ***, so ***");
    assert_string_equal(mask(f, "nothing here", 0), "nothing here");
    filter_unref(f);
}

static void test_fullwidth_and_compat(void **state)
{
    filter *f = make("bad\nfine\nstrasse\n");
    /* Fullwidth letters (U+FF22 U+FF21 U+FF24). */
    assert_true(filter_match(f, "ＢＡＤ", strlen("ＢＡＤ")));
    assert_string_equal(mask(f, "a ＢＡＤ day", 1), "a *** day");
    /* A ligature is one original code point covering two normalised ones. */
    assert_string_equal(mask(f, "ﬁne wine", 1), "*** wine");
    /* Sharp s folds to "ss". */
    assert_string_equal(mask(f, "Straße!", 1), "******!");
    assert_string_equal(mask(f, "STRASSE", 1), "*******");
    filter_unref(f);

    /* Normalisation applies to the list as well. */
    f = make("ＢＡＤ\nﬁ\n");
    assert_int_equal(filter_word_count(f), 2);
    assert_string_equal(mask(f, "so bad", 1), "so ***");
    assert_string_equal(mask(f, "FIFI", 2), "****");
    /* A match on part of a ligature masks the whole original code point. */
    filter_unref(f);
    f = make("fi\n");
    assert_string_equal(mask(f, "oﬃce", 1), "o*ce");
    filter_unref(f);

    /* The Kelvin sign and the Angstrom sign are compatibility forms. */
    f = make("k\nå\n");
    assert_string_equal(mask(f, "\u212A\u212B", 2), "**");
    filter_unref(f);
}

static void test_overlapping(void **state)
{
    filter *f = make("he\nshe\nhers\n");
    assert_int_equal(filter_word_count(f), 3);
    assert_true(filter_match(f, "ushers", 6));
    /* she (1..3), he (2..3), hers (2..5): all three counted, one span. */
    assert_string_equal(mask(f, "ushers", 3), "u*****");
    assert_string_equal(mask(f, "he", 1), "**");
    assert_string_equal(mask(f, "she", 2), "***");
    assert_string_equal(mask(f, "h e r s", 0), "h e r s");
    filter_unref(f);

    /* Chained overlaps join into one span; apart they stay apart. */
    f = make("ab\nbc\ncd\n");
    assert_string_equal(mask(f, "xabcdx", 3), "x****x");
    assert_string_equal(mask(f, "ab-cd", 2), "**-**");
    assert_string_equal(mask(f, "abab", 2), "****");
    filter_unref(f);

    /* A short word inside a long one, and a long word that starts before
     * the span already masked. */
    f = make("c\nabcde\n");
    assert_string_equal(mask(f, "xabcdex", 2), "x*****x");
    assert_string_equal(mask(f, "abc", 1), "ab*");
    filter_unref(f);
}

static void test_inside_words(void **state)
{
    filter *f = make("ass\n");
    assert_string_equal(mask(f, "a classic class", 2), "a cl***ic cl***");
    filter_unref(f);
}

static void test_cjk_and_emoji(void **state)
{
    filter *f = make("敏感词\n💣\n坏蛋\nbad😀\n");
    assert_int_equal(filter_word_count(f), 4);
    assert_string_equal(mask(f, "这是敏感词测试", 1), "这是***测试");
    assert_string_equal(mask(f, "boom 💣💣!", 2), "boom **!");
    assert_string_equal(mask(f, "你是坏蛋吗", 1), "你是**吗");
    assert_string_equal(mask(f, "so BAD😀 really", 1), "so **** really");
    assert_string_equal(mask(f, "bad😃", 0), "bad😃");
    assert_string_equal(mask(f, "敏感 词", 0), "敏感 词");
    /* A supplementary-plane CJK character outside the table. */
    filter_unref(f);
    f = make("𠀀𠀁\n");
    assert_string_equal(mask(f, "x𠀀𠀁y", 1), "x**y");
    filter_unref(f);
}

static void test_empty_list(void **state)
{
    const char *lists[] = {"", "\n\n", "# only a comment\n", "   \t \r\n", "\xff\xfe\n"};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        filter *f = make(lists[i]);
        assert_int_equal(filter_word_count(f), 0);
        assert_false(filter_match(f, "anything at all", 15));
        assert_string_equal(mask(f, "anything 敏感词 💣", 0), "anything 敏感词 💣");
        filter_unref(f);
    }
    filter *f = filter_new(NULL, 0);
    assert_int_equal(filter_word_count(f), 0);
    filter_unref(f);
}

static void test_list_parsing(void **state)
{
    filter *f = make("# a comment\n"
                     "\n"
                     "   \n"
                     "  bad  \r\n"
                     "#bad2\n"
                     "   # indented comment\n"
                     "\tgood\t\n"
                     "\xef\xbb\xbf" "bom\n"              /* a byte order mark */
                     "\xe3\x80\x80" "wide\xe3\x80\x80\n" /* ideographic spaces */
                     "in\xff" "valid\n"
                     "two words\n"
                     "BAD\n"                          /* the same word again */
                     "last");                         /* no final newline */
    assert_int_equal(filter_word_count(f), 6);
    assert_string_equal(mask(f, "bad good bom wide last", 5), "*** **** *** **** ****");
    assert_string_equal(mask(f, "bad2 #bad2", 2), "***2 #***2");
    assert_string_equal(mask(f, "indented comment", 0), "indented comment");
    assert_string_equal(mask(f, "invalid", 0), "invalid");
    /* Inner whitespace is part of the word. */
    assert_string_equal(mask(f, "two words, twowords", 1), "*********, twowords");
    filter_unref(f);
}

/* Bytes outside matches are copied exactly, including NUL bytes and the
 * invalid UTF-8 that the filter tolerates. */
static void test_mask_preserves_bytes(void **state)
{
    filter *f = make("bad\n");
    const char text[] = "a\0bad\xff\xc3(ba\xff" "d é\r\n";
    size_t len = sizeof text - 1;
    buf b = {0};
    assert_int_equal(filter_mask(f, text, len, &b), 1);
    const char want[] = "a\0***\xff\xc3(ba\xff" "d é\r\n";
    assert_int_equal(buf_size(&b), sizeof want - 1);
    assert_memory_equal(buf_begin(&b), want, sizeof want - 1);
    /* An invalid byte splits what would otherwise be a match. */
    assert_false(filter_match(f, "ba\xff" "d", 4));
    buf_free(&b);

    /* filter_mask appends. */
    buf_appends(&b, "prefix:");
    filter_mask(f, "x bad", 5, &b);
    assert_int_equal(buf_size(&b), strlen("prefix:x ***"));
    assert_memory_equal(buf_begin(&b), "prefix:x ***", buf_size(&b));
    buf_free(&b);
    filter_unref(f);
}

/* Words longer than the on-stack ring of the masker. */
static void test_long_words(void **state)
{
    char list[300], text[400];
    memset(list, 'a', 100);
    list[100] = 0;
    filter *f = make(list);
    memset(text, 'A', 150);
    text[150] = 0;
    const char *r = mask(f, text, 51);
    assert_int_equal(strlen(r), 150);
    assert_int_equal(strspn(r, "*"), 150);
    memcpy(text + 150, "bbb", 4);
    text[50] = 'b';
    r = mask(f, text, 0);
    filter_unref(f);

    /* A huge word next to a short one: short texts still mask right (the
     * masker sizes its ring by the text when that is smaller), and a text
     * holding the huge word is masked whole. */
    static char huge_list[8200], huge_text[8300];
    memset(huge_list, 'z', 8000);
    memcpy(huge_list + 8000, "\nbad\n", 6);
    f = make(huge_list);
    assert_int_equal(filter_word_count(f), 2);
    assert_string_equal(mask(f, "so bad", 1), "so ***");
    memcpy(huge_text, "<<", 2);
    memset(huge_text + 2, 'Z', 8000);
    memcpy(huge_text + 8002, ">>", 3);
    buf b = {0};
    assert_int_equal(filter_mask(f, huge_text, strlen(huge_text), &b), 1);
    assert_int_equal(buf_size(&b), 8004);
    assert_memory_equal(buf_begin(&b), "<<***", 5);
    assert_memory_equal(buf_begin(&b) + 8000, "**>>", 4);
    buf_free(&b);
    filter_unref(f);
}

static void test_refcount(void **state)
{
    filter *f = make("bad\n");
    assert_ptr_equal(filter_ref(f), f);
    filter_unref(f);
    assert_true(filter_match(f, "bad", 3));
    filter_unref(f);
    assert_null(filter_ref(NULL));
    filter_unref(NULL);
}

static void test_load(void **state)
{
    char path[] = "/tmp/parley-filter-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char list[] = "# words\nbad\nＷＯＲＳＥ\n";
    assert_int_equal(write(fd, list, sizeof list - 1), (ssize_t)(sizeof list - 1));
    close(fd);
    filter *f = filter_load(path);
    assert_non_null(f);
    assert_int_equal(filter_word_count(f), 2);
    assert_string_equal(mask(f, "bad and worse", 2), "*** and *****");
    filter_unref(f);
    unlink(path);

    errno = 0;
    assert_null(filter_load("/nonexistent/parley/words.txt"));
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_null(filter_load("/tmp"));
    assert_int_not_equal(errno, 0);
}

/*
 * Random words and texts over tiny alphabets (so matches overlap all the
 * time), checked against the obvious quadratic masker.  Words use "a", "b",
 * "c" and "é" (two bytes, lower case already); texts add upper case and a
 * letter on no edge.  Working on bytes is exact here: UTF-8 never matches
 * across code point boundaries, and the only folding needed is ASCII's.
 */
static void naive_mask(char **words, size_t nwords, const char *text, char *out, size_t *count)
{
    size_t n = strlen(text);
    char *lower = malloc(n + 1);
    char *hit = calloc(1, n + 1);
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)((text[i] >= 'A' && text[i] <= 'Z') ? text[i] + 32 : text[i]);
    *count = 0;
    for (size_t w = 0; w < nwords; w++) {
        size_t wl = strlen(words[w]);
        for (size_t i = 0; i + wl <= n; i++) {
            if (memcmp(lower + i, words[w], wl) == 0) {
                (*count)++;
                memset(hit + i, 1, wl);
            }
        }
    }
    /* One '*' per code point with any byte hit. */
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = ((unsigned char)text[i] & 0xE0) == 0xC0 ? 2 : 1;
        if (hit[i]) out[o++] = '*';
        else for (size_t k = 0; k < len; k++) out[o++] = text[i + k];
        i += len;
    }
    out[o] = 0;
    free(lower);
    free(hit);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One comparison: up to max_words words of wl_min..wl_max symbols, `texts`
 * texts of up to text_max symbols. */
static void random_round(size_t max_words, int wl_min, int wl_max, int texts, int text_max)
{
    static const char *word_sym[] = {"a", "b", "c", "é"};
    static const char *text_sym[] = {"a", "b", "c", "é", "A", "B", "x"};
    size_t nwords = 1 + (size_t)rand() % max_words;
    char **words = calloc(nwords, sizeof *words);
    for (size_t w = 0; w < nwords; w++) {
        int wl = wl_min + rand() % (wl_max - wl_min + 1);
        words[w] = calloc(1, (size_t)wl * 2 + 1);
        for (int i = 0; i < wl; i++) strcat(words[w], word_sym[rand() % 4]);
    }
    /* Distinct words only, so the naive count agrees. */
    qsort(words, nwords, sizeof *words, cmp_str);
    size_t u = 0;
    for (size_t w = 0; w < nwords; w++) {
        if (u && strcmp(words[u - 1], words[w]) == 0) free(words[w]);
        else words[u++] = words[w];
    }
    nwords = u;
    buf list = {0};
    for (size_t w = 0; w < nwords; w++) {
        buf_appends(&list, words[w]);
        buf_appendc(&list, '\n');
    }
    filter *f = filter_new((const char *)list.data, list.len);
    buf_free(&list);
    assert_int_equal(filter_word_count(f), nwords);

    for (int t = 0; t < texts; t++) {
        char text[1024] = "";
        int tl = rand() % (text_max + 1);
        for (int i = 0; i < tl; i++) strcat(text, text_sym[rand() % 7]);
        char want[1024];
        size_t want_n;
        naive_mask(words, nwords, text, want, &want_n);
        const char *got = mask(f, text, (long)want_n);
        if (strcmp(got, want) != 0) fail_msg("text %s: got %s want %s", text, got, want);
    }
    filter_unref(f);
    for (size_t w = 0; w < nwords; w++) free(words[w]);
    free(words);
}

static void test_random_against_naive(void **state)
{
    srand(12345);
    for (int round = 0; round < 400; round++) random_round(6, 1, 4, 3, 40);
}

/* A list big enough that not every state gets a dense table, so the
 * sparse transitions and failure links are exercised as well. */
static void test_large_list_against_naive(void **state)
{
    srand(777);
    for (int round = 0; round < 2; round++) random_round(20000, 8, 16, 10, 200);
}

/* Many threads share one filter (read-only, no locks), each holding its own
 * reference as a worker would: taken for it before it starts, dropped by
 * the thread when done. */
static void *matcher(void *arg)
{
    filter *f = arg;
    int hits = 0;
    for (int i = 0; i < 2000; i++) {
        hits += filter_match(f, "this has a ＢＡＤ word", strlen("this has a ＢＡＤ word"));
        buf b = {0};
        filter_mask(f, "敏感词 and bad", strlen("敏感词 and bad"), &b);
        buf_free(&b);
    }
    filter_unref(f);
    return (void *)(intptr_t)hits;
}

static void test_threads(void **state)
{
    filter *f = make("bad\n敏感词\n");
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, matcher, filter_ref(f)), 0);
    /* Drop the creator's reference while the workers still run. */
    filter_unref(f);
    for (int i = 0; i < 4; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_int_equal((intptr_t)ret, 2000);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ascii_case, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fullwidth_and_compat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inside_words, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cjk_and_emoji, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mask_preserves_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_words, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refcount, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_against_naive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_list_against_naive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
