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

static char store__lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

void store__lname(char out[STORE__LNAME_MAX + 1], const char *name)
{
    size_t i = 0;
    for (; name && name[i] && i < STORE__LNAME_MAX; i++) out[i] = store__lower(name[i]);
    out[i] = 0;
}

/* A family byte followed by up to three string components; a NULL
 * component ends the key (and must be the last one given). */
static void store__k3(store__key *k, char family, const char *a, const char *b, const char *c)
{
    store__key_init(k, family);
    if (!a) return;
    store__key_str(k, a);
    if (!b) return;
    store__key_str(k, b);
    if (c) store__key_str(k, c);
}

void store__k_tenant(store__key *k, const char *t) { store__k3(k, STORE__K_TENANT, t, NULL, NULL); }

void store__k_user(store__key *k, const char *t, const char *u)
{
    store__k3(k, STORE__K_USER, t, u, NULL);
}

void store__k_seen(store__key *k, const char *t, const char *u)
{
    store__k3(k, STORE__K_SEEN, t, u, NULL);
}

void store__k_name(store__key *k, const char *t, const char *name, const char *u)
{
    char ln[STORE__LNAME_MAX + 1];
    store__lname(ln, name);
    store__k3(k, STORE__K_NAME, t, ln, u);
}

static void store__k_n(store__key *k, char family, uint64_t n)
{
    store__key_init(k, family);
    store__key_u64(k, n);
}

void store__k_conv(store__key *k, uint64_t conv) { store__k_n(k, STORE__K_MSG, conv); }

void store__k_msg(store__key *k, uint64_t conv, uint64_t seq)
{
    store__k_n(k, STORE__K_MSG, conv);
    store__key_u64(k, seq);
}

void store__k_inbox(store__key *k, uint64_t u) { store__k_n(k, STORE__K_INBOX, u); }

void store__k_dedup(store__key *k, uint64_t from, const char *cmid)
{
    store__k_n(k, STORE__K_DEDUP, from);
    store__key_str(k, cmid);
}

void store__k_read(store__key *k, uint64_t u, uint64_t conv)
{
    store__k_n(k, STORE__K_READ, u);
    store__key_u64(k, conv);
}

void store__k_num(store__key *k, const char *t, char kind, const char *id)
{
    char kd[2] = {kind, 0};
    store__k3(k, STORE__K_NUM, t, kd, id);
}

void store__k_num_last(store__key *k) { store__key_init(k, STORE__K_NUM); }

void store__k_revoked(store__key *k, const char *jti)
{
    store__k3(k, STORE__K_REVOKED, jti, NULL, NULL);
}

void store__k_group(store__key *k, const char *t, const char *g)
{
    store__k3(k, STORE__K_GROUP, t, g, NULL);
}

void store__k_member(store__key *k, const char *t, const char *g, const char *u)
{
    store__k3(k, STORE__K_MEMBER, t, g, u);
}

void store__k_joined(store__key *k, const char *t, const char *u, const char *g)
{
    store__k3(k, STORE__K_JOINED, t, u, g);
}

void store__k_channel(store__key *k, const char *t, const char *g)
{
    store__k3(k, STORE__K_CHANNEL, t, g, NULL);
}

void store__k_channame(store__key *k, const char *t, const char *name, const char *g)
{
    char ln[STORE__LNAME_MAX + 1];
    store__lname(ln, name);
    store__k3(k, STORE__K_CHANNAME, t, ln, g);
}

void store__k_friend(store__key *k, const char *t, const char *u, const char *other)
{
    store__k3(k, STORE__K_FRIEND, t, u, other);
}

void store__k_home(store__key *k, const char *t, const char *u, const char *conv)
{
    store__k3(k, STORE__K_HOME, t, u, conv);
}
