/*
 * file.h - writing a small file so that a crash leaves either the old
 * contents or the new, never a mix: word lists, the data directory's
 * version file.
 */
#ifndef PARLEY_CORE_FILE_H
#define PARLEY_CORE_FILE_H

#include <stddef.h>

/* Write data to path (mode 0600) through path.tmp: written, fsynced,
 * renamed over path, then dir (the directory holding path) fsynced.
 * Returns 0, or -1 with errno set and path.tmp removed. */
int pl_write_file_atomic(const char *dir, const char *path, const void *data, size_t len);

#endif
