/*
 * keys.h - building and taking apart the embedded store's keys.
 *
 * A key is one family byte followed by components.  A string component is
 * the string's bytes and a terminating NUL; a number is 8 bytes big-endian.
 * The families written with every message (M, I, D, R) name their
 * conversation and user by number instead of by string: the id map (K)
 * gives each (tenant, user) and (tenant, conversation) a number, and those
 * keys are short, with a fixed-size prefix (family byte + number) that
 * tells apart one conversation's or inbox's keys from the next.
 * Because a C string cannot hold a NUL, a string component always ends at
 * its first NUL, so no id, however malformed, can make one key a prefix of
 * another entity's key range: "ann" encodes as "ann\0" and "ann\0x" cannot
 * exist.  Byte order of the encoded keys is the order of the components:
 * strings compare bytewise ("ann\0" sorts before "anna\0"), numbers
 * numerically.  The families and what lives under them are described at
 * the top of rocksdb.c.
 *
 * Strings are limited to STORE__ID_MAX bytes (store__id_ok), which bounds a
 * key to STORE__KEY_MAX bytes, so keys live in fixed buffers on the stack.
 * Pure functions; no allocation.
 */
#ifndef PARLEY_STORE_KEYS_H
#define PARLEY_STORE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE__ID_MAX 255
#define STORE__KEY_MAX (1 + 4 * (STORE__ID_MAX + 1) + 8 + 8)

/* Key families (the first byte of every key). */
enum {
    STORE__K_META = 'V',
    STORE__K_TENANT = 'T',
    STORE__K_USER = 'U',
    STORE__K_NAME = 'N',
    STORE__K_MSG = 'M',
    STORE__K_INBOX = 'I',
    STORE__K_DEDUP = 'D',
    STORE__K_READ = 'R',
    STORE__K_REVOKED = 'X',
    STORE__K_GROUP = 'G',
    STORE__K_MEMBER = 'P',
    STORE__K_JOINED = 'J',
    STORE__K_CHANNEL = 'C',
    STORE__K_CHANNAME = 'L',
    STORE__K_FRIEND = 'F',
    STORE__K_HOME = 'H',
    STORE__K_SEEN = 'S',
    STORE__K_NUM = 'K',
};

/* Kinds of the id map (K): what a number stands for. */
#define STORE__NUM_USER 'u'
#define STORE__NUM_CONV 'c'

/* Bytes of the prefix that groups a numbered key range: the family byte
 * and the number (M n, I n, D n, R n).  RocksDB keeps an insert position
 * per such prefix (rocksdb.c). */
#define STORE__NUM_PREFIX 9

/* Bytes of a lower-cased name kept in the name indexes (N, L). */
#define STORE__LNAME_MAX 64

typedef struct store__key {
    size_t len;
    bool overflow;   /* a component did not fit: the key is unusable */
    char b[STORE__KEY_MAX];
} store__key;

/* True if s is usable as a key component: non-NULL, 1..STORE__ID_MAX bytes. */
bool store__id_ok(const char *s);

void store__key_init(store__key *k, char family);
/* Append a string component (its bytes and a NUL). */
void store__key_str(store__key *k, const char *s);
/* Append raw bytes without a terminator (for prefix searches). */
void store__key_raw(store__key *k, const char *p, size_t n);
void store__key_u64(store__key *k, uint64_t v);

/*
 * The smallest key greater than every key that starts with k (k's last
 * byte incremented, trailing 0xff bytes dropped first).  Returns false if
 * there is none (k is empty or all 0xff), which never happens for our keys
 * since family bytes are ASCII letters.
 */
bool store__key_succ(const store__key *k, store__key *out);

/* The number stored big-endian at p (8 bytes). */
uint64_t store__get_u64(const char *p);

/*
 * The string component starting at offset *off of key[0..len): returns a
 * pointer to it (NUL-terminated inside the key) and its length through
 * *n, and advances *off past its NUL; NULL if the key ends first.
 */
const char *store__key_next_str(const char *key, size_t len, size_t *off, size_t *n);

/* The name as the name indexes hold it: ASCII-lowercased, cut to
 * STORE__LNAME_MAX bytes. */
void store__lname(char out[STORE__LNAME_MAX + 1], const char *name);

/*
 * The keys of each family, as laid out at the top of rocksdb.c.  Where the
 * last argument may be NULL the key stops before it: the prefix of that
 * family's range for the components given (every member of a group, every
 * group of a user...).
 */
void store__k_tenant(store__key *k, const char *t);
void store__k_user(store__key *k, const char *t, const char *u);
void store__k_seen(store__key *k, const char *t, const char *u);
void store__k_name(store__key *k, const char *t, const char *name, const char *u);
void store__k_conv(store__key *k, uint64_t conv);                      /* M conv# */
void store__k_msg(store__key *k, uint64_t conv, uint64_t seq);
void store__k_inbox(store__key *k, uint64_t u);                        /* I user# */
void store__k_dedup(store__key *k, uint64_t from, const char *cmid);
void store__k_read(store__key *k, uint64_t u, uint64_t conv);
/* K t kind id: the number of a user (kind STORE__NUM_USER) or a
 * conversation (STORE__NUM_CONV). */
void store__k_num(store__key *k, const char *t, char kind, const char *id);
/* K alone: the last number given out. */
void store__k_num_last(store__key *k);
void store__k_revoked(store__key *k, const char *jti);
void store__k_group(store__key *k, const char *t, const char *g);
void store__k_member(store__key *k, const char *t, const char *g, const char *u);
void store__k_joined(store__key *k, const char *t, const char *u, const char *g);
void store__k_channel(store__key *k, const char *t, const char *g);
void store__k_channame(store__key *k, const char *t, const char *name, const char *g);
void store__k_friend(store__key *k, const char *t, const char *u, const char *other);
void store__k_home(store__key *k, const char *t, const char *u, const char *conv);

#endif
