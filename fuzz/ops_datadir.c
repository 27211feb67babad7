/*
 * ops_datadir.c - libFuzzer driver for the data directory's version file
 * parser (ops_datadir_parse_version in src/ops/datadir.c).
 *
 * Checked against a plain reading of the format: digits, then only
 * newlines, carriage returns or spaces; a version is accepted exactly
 * when the input has that shape and the number is small.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "ops/ops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *t = (const char *)data;
    int v = ops_datadir_parse_version(t, size);
    size_t i = 0;
    long want = 0;
    while (i < size && t[i] >= '0' && t[i] <= '9' && want <= 1000000) want = want * 10 + (t[i++] - '0');
    bool digits_ok = i > 0 && want <= 1000000;
    while (digits_ok && i < size && (t[i] == '\n' || t[i] == '\r' || t[i] == ' ')) i++;
    bool ok = digits_ok && i == size;
    if (ok != (v >= 0)) abort();
    if (ok && v != want) abort();
    return 0;
}
