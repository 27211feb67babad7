/*
 * filter.h - the sensitive-word filter: Aho-Corasick over normalised text.
 *
 * A filter is built once from a word list and is then immutable, so any
 * number of threads may use it at the same time without locks; reloading a
 * list builds a new filter and swaps the pointer (the old one is freed when
 * its last user drops it: see filter_ref / filter_unref).
 *
 * Normalisation, applied to the words and to the text alike, code point by
 * code point: Unicode compatibility decomposition (NFKC, so fullwidth "ＢＡＤ"
 * and ligatures match their plain forms) followed by full case folding
 * (libunistring).  Each normalised code point remembers the original code
 * point it came from, so a match maps back to a range of the original
 * text.  Matching is on whole code points; a word may match inside a longer
 * word (the usual behaviour of chat filters, which cannot know word
 * boundaries in every script).
 *
 * Policies: FILTER_REJECT (the caller refuses the message with
 * blocked_content) and FILTER_MASK (every original code point covered by a
 * match is replaced by '*'; the result has the same number of code points).
 */
#ifndef PARLEY_CHAT_FILTER_H
#define PARLEY_CHAT_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct filter filter;

typedef enum filter_policy { FILTER_REJECT = 0, FILTER_MASK = 1 } filter_policy;

/* Build from a word list: one word per line ("\n" or "\r\n"), UTF-8;
 * surrounding whitespace (Unicode White_Space, and a byte order mark) is
 * trimmed; blank lines and lines whose first non-blank character is '#'
 * are skipped; invalid UTF-8 lines are skipped.  Never NULL (an empty list
 * gives a filter that matches nothing).  The new filter has one
 * reference. */
filter *filter_new(const char *list, size_t len);

/* Build from the file at path; NULL (and errno set) if it cannot be read.
 * A missing file is not an error for callers that treat it as "no words":
 * they check errno == ENOENT. */
filter *filter_load(const char *path);

/* Number of distinct words after normalisation ("Bad" and "bad" are one). */
size_t filter_word_count(const filter *f);

/* Reference counting (atomic): a worker that holds a filter while a reload
 * swaps it in keeps using the old one until it drops its reference. */
filter *filter_ref(filter *f);
void filter_unref(filter *f);

/* Does valid UTF-8 text[0..len) contain a listed word?  (Invalid bytes,
 * which callers should not pass, match nothing and break any match that
 * would span them.) */
bool filter_match(const filter *f, const char *text, size_t len);

/* Write text with every matched code point replaced by '*' into out
 * (appended).  Returns the number of matches, every occurrence of every
 * word counted even where they overlap ("she", "he" and "hers" in "ushers"
 * are 3); 0: out gets text unchanged. */
size_t filter_mask(const filter *f, const char *text, size_t len, buf *out);

#endif
