/*
 * chat_filter.c - libFuzzer driver for the sensitive-word filter.
 *
 * The first half of the input is a word list and the second half a text.
 * The driver builds the filter, then matches and masks the text.  For valid
 * UTF-8 text it checks the contract of filter.h: the mask has the same
 * number of code points, filter_match agrees with the match count, and an
 * unmatched text comes back byte for byte.  Invalid text is masked too
 * (the filter must not crash on it), without those checks.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/filter.h"
#include "core/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t half = size / 2;
    const char *list = (const char *)data;
    const char *text = (const char *)data + half;
    size_t text_len = size - half;

    filter *f = filter_new(list, half);
    buf out = {0};
    size_t n = filter_mask(f, text, text_len, &out);
    bool matched = filter_match(f, text, text_len);

    /* buf_begin of a buf that never allocated would offset a null pointer. */
    const uint8_t *ob = out.data ? buf_begin(&out) : (const uint8_t *)"";
    /* No match: the text comes back byte for byte, valid or not. */
    if (n == 0 && (buf_size(&out) != text_len || memcmp(ob, text, text_len) != 0)) abort();
    long in_count = utf8_count((const uint8_t *)text, text_len);
    if (in_count >= 0) {
        long out_count = utf8_count(ob, buf_size(&out));
        if (out_count != in_count) abort();
        if (matched != (n > 0)) abort();
    }
    /* A filter matches its own words: the list, taken as a text, matches
     * whenever the filter holds any word. */
    if (filter_word_count(f) && utf8_valid(data, half) && !filter_match(f, list, half)) abort();

    buf_free(&out);
    filter_unref(f);
    return 0;
}
