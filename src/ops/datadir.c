/*
 * datadir.c - the format version of the data directory as a whole.
 *
 * The embedded store has its own layout version inside RocksDB (key V,
 * src/store/rocksdb.c), which it checks and upgrades when it opens.  This
 * file versions everything else of DATA: which files exist and what they
 * hold (secret, admin.token, default.key, words/, rocksdb/, backups/).
 * DATA/parley.version holds one decimal number and a newline.
 *
 * Versions:
 *   0  a directory made before the version file existed (the files of
 *      version 1 without parley.version)
 *   1  secret, admin.token, default.key, words/<tenant>.txt, rocksdb/,
 *      backups/<name>/ (each a data directory of its own), parley.version
 *
 * parley.pid is not part of the format: a running parleyd holds an
 * exclusive flock on it and writes its pid there (ops_datadir_lock), so a
 * second one on the same directory stops with a clear message before it
 * touches anything (RocksDB's own LOCK would only say "Resource
 * temporarily unavailable").
 *
 * Migrations run one step at a time (migrate[] below) and the version file
 * is written last, so an interrupted upgrade runs again at the next start.
 * A newer version than this build's is refused: an older binary must not
 * write into a layout it does not know (a downgrade needs the backup taken
 * before the upgrade).
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "ops/ops.h"

int ops_datadir_parse_version(const char *text, size_t len)
{
    long v = 0;
    size_t i = 0;
    while (i < len && text[i] >= '0' && text[i] <= '9') {
        v = v * 10 + (text[i] - '0');
        if (v > 1000000) return -1;
        i++;
    }
    if (i == 0) return -1;
    while (i < len && (text[i] == '\n' || text[i] == '\r' || text[i] == ' ')) i++;
    return i == len ? (int)v : -1;
}

int ops_datadir_lock(const char *dir, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/parley.pid", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[24] = "";
        ssize_t n = e == EWOULDBLOCK ? pread(fd, pid, sizeof pid - 1, 0) : -1;
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        if (e == EWOULDBLOCK)
            snprintf(err, errlen, "data directory %s is in use by another parleyd%s%s%s", dir,
                     *pid ? " (pid " : "", pid, *pid ? ")" : "");
        else
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        close(fd);
        return -1;
    }
    char line[24];
    int len = snprintf(line, sizeof line, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)len, 0) != len) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Does dir hold anything parley writes? */
static bool has_parley_files(const char *dir)
{
    static const char *names[] = {"secret", "admin.token", "default.key", "rocksdb"};
    char path[4200];
    struct stat st;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (lstat(path, &st) == 0) return true;
    }
    return false;
}

static int write_version(const char *dir, int version, char *err, size_t errlen)
{
    char path[4200], text[32];
    snprintf(path, sizeof path, "%s/%s", dir, OPS_DATADIR_VERSION_FILE);
    int n = snprintf(text, sizeof text, "%d\n", version);
    if (pl_write_file_atomic(dir, path, text, (size_t)n)) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* 0 -> 1: version 1 is version 0 with the version file; nothing moves. */
static int migrate_0_to_1(const char *dir, char *err, size_t errlen)
{
    (void)dir, (void)err, (void)errlen;
    return 0;
}

static int (*const migrate[OPS_DATADIR_VERSION])(const char *, char *, size_t) = {
    migrate_0_to_1,
};

int ops_datadir_prepare(const char *dir, int *from, char *err, size_t errlen)
{
    char path[4200], text[64];
    snprintf(path, sizeof path, "%s/%s", dir, OPS_DATADIR_VERSION_FILE);
    *from = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if (fd < 0) {
        if (!has_parley_files(dir)) {
            *from = -1;
            return write_version(dir, OPS_DATADIR_VERSION, err, errlen);
        }
    } else {
        ssize_t n = read(fd, text, sizeof text);
        close(fd);
        int v = n > 0 ? ops_datadir_parse_version(text, (size_t)n) : -1;
        if (v < 0) {
            snprintf(err, errlen, "%s does not hold a version number", path);
            return -1;
        }
        *from = v;
        if (v > OPS_DATADIR_VERSION) {
            snprintf(err, errlen,
                     "data directory %s has format version %d, newer than this parleyd "
                     "understands (%d): run a newer parleyd, or restore a backup made before the upgrade",
                     dir, v, OPS_DATADIR_VERSION);
            return -1;
        }
        if (v == OPS_DATADIR_VERSION) return 0;
    }
    for (int v = *from; v < OPS_DATADIR_VERSION; v++)
        if (migrate[v](dir, err, errlen)) return -1;
    return write_version(dir, OPS_DATADIR_VERSION, err, errlen);
}
