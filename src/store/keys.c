/* keys.c - key encoding for the embedded store (see keys.h). */
#include "store/keys.h"

#include <string.h>

bool store__id_ok(const char *s)
{
    if (!s || !*s) return false;
    return strnlen(s, STORE__ID_MAX + 1) <= STORE__ID_MAX;
}

void store__key_init(store__key *k, char family)
{
    k->len = 1;
    k->overflow = false;
    k->b[0] = family;
}

void store__key_raw(store__key *k, const char *p, size_t n)
{
    if (k->overflow || n > sizeof(k->b) - k->len) {
        k->overflow = true;
        return;
    }
    memcpy(k->b + k->len, p, n);
    k->len += n;
}

void store__key_str(store__key *k, const char *s)
{
    if (!s) s = "";
    store__key_raw(k, s, strlen(s) + 1);
}

void store__key_u64(store__key *k, uint64_t v)
{
    char be[8];
    for (int i = 7; i >= 0; i--) {
        be[i] = (char)(v & 0xff);
        v >>= 8;
    }
    store__key_raw(k, be, 8);
}

bool store__key_succ(const store__key *k, store__key *out)
{
    *out = *k;
    while (out->len > 0 && (unsigned char)out->b[out->len - 1] == 0xff) out->len--;
    if (out->len == 0) return false;
    out->b[out->len - 1] = (char)((unsigned char)out->b[out->len - 1] + 1);
    return true;
}

uint64_t store__get_u64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | (unsigned char)p[i];
    return v;
}

const char *store__key_next_str(const char *key, size_t len, size_t *off, size_t *n)
{
    if (*off >= len) return NULL;
    const char *s = key + *off;
    const char *end = memchr(s, 0, len - *off);
    if (!end) return NULL;
    *n = (size_t)(end - s);
    *off += *n + 1;
    return s;
}
