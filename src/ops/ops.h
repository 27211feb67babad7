/*
 * ops.h - the operations layer: what an operator needs that is not chat.
 *
 *   process.c   process metrics read from /proc/self at scrape time
 *               (resident and virtual memory, open and allowed file
 *               descriptors, threads, CPU seconds, start time)
 *   datadir.c   the data directory's format version (DATA/parley.version):
 *               initialise a fresh directory, migrate an older one forward,
 *               refuse a newer one
 *
 * The layer uses core only; src/server wires it in.
 */
#ifndef PARLEY_OPS_OPS_H
#define PARLEY_OPS_OPS_H

#include <stddef.h>

/* Register the process_* metrics (core/metrics.h).  Idempotent. */
void ops_process_metrics(void);

/* The data directory format this build writes and understands. */
#define OPS_DATADIR_VERSION 1
#define OPS_DATADIR_VERSION_FILE "parley.version"

/* Check the format version of the data directory dir (which exists):
 *   - no version file and nothing of parley in dir: a fresh directory;
 *     the current version is written;
 *   - no version file but parley's files present (a directory made before
 *     versions existed, format 0), or an older version: each migration
 *     step up to the current version runs, then the file is rewritten;
 *   - a newer version than OPS_DATADIR_VERSION: refused.
 * 0, or -1 with a one-line reason in err (for parleyd to print and exit
 * non-zero).  *from is set to the version found: 0 for a directory made
 * before versions, -1 for a fresh one. */
int ops_datadir_prepare(const char *dir, int *from, char *err, size_t errlen);

/* Hold the data directory dir (which exists) for this process: an
 * exclusive flock on dir/parley.pid, which then holds this process's pid.
 * Returns the lock's descriptor (keep it open while running; the lock goes
 * with the process), or -1 with a one-line reason in err, naming the pid
 * of the parleyd that holds the directory. */
int ops_datadir_lock(const char *dir, char *err, size_t errlen);

/* Parse the contents of a version file ("<n>\n"): the version, or -1 if
 * it is not one.  Pure. */
int ops_datadir_parse_version(const char *text, size_t len);

#endif
