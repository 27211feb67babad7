/*
 * iplimit.c - per-IP connection accounting: how many connections each
 * remote IP has open, and a token bucket for how fast it may open new ones
 * (SPEC: "connections per IP" rate limit).
 *
 * The main thread admits connections as it accepts them; workers release
 * them when they are freed.  One mutex guards the table: it is taken once
 * per accepted and once per closed connection, never on the message path.
 *
 * An entry lives while connections of its IP are open (each holds a
 * pointer to it, which is also where net_conn_remote_ip's string lives) and
 * until its bucket is full again; the main thread's sweep then forgets it,
 * so the table does not grow with every address ever seen.
 *
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, from a dual-stack listener)
 * count as the IPv4 address.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/tbucket.h"
#include "net/net_internal.h"

/* The table's memory goes through the core wrappers like everything else. */
#define uthash_malloc(sz) pl_malloc(sz)
#define uthash_free(ptr, sz) pl_free(ptr)
#include <uthash.h>

struct net__ip {
    uint8_t key[17];           /* family byte, then 4 or 16 address bytes */
    uint32_t open;
    tbucket bucket;
    char str[INET6_ADDRSTRLEN];
    UT_hash_handle hh;
};

struct net__iptab {
    uv_mutex_t mu;
    net__ip *map;
    uint32_t max_conns;
    double rate, burst;
};

net__iptab *net__iptab_new(uint32_t max_conns, double rate, double burst)
{
    net__iptab *t = PL_NEW(net__iptab);
    uv_mutex_init(&t->mu);
    t->max_conns = max_conns;
    t->rate = rate;
    t->burst = burst;
    return t;
}

void net__iptab_set_limits(net__iptab *t, uint32_t max_conns, double rate, double burst)
{
    uv_mutex_lock(&t->mu);
    t->max_conns = max_conns;
    t->rate = rate;
    t->burst = burst;
    uv_mutex_unlock(&t->mu);
}

void net__iptab_free(net__iptab *t)
{
    if (!t) return;
    net__ip *e, *tmp;
    HASH_ITER(hh, t->map, e, tmp) {
        HASH_DEL(t->map, e);
        pl_free(e);
    }
    uv_mutex_destroy(&t->mu);
    pl_free(t);
}

/* The key and text form of an address. */
static void ip_key(const struct sockaddr *sa, uint8_t key[17], char *str, size_t strlen_)
{
    memset(key, 0, 17);
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            key[0] = 4;
            memcpy(key + 1, s6->sin6_addr.s6_addr + 12, 4);
            inet_ntop(AF_INET, key + 1, str, (socklen_t)strlen_);
        } else {
            key[0] = 6;
            memcpy(key + 1, s6->sin6_addr.s6_addr, 16);
            inet_ntop(AF_INET6, key + 1, str, (socklen_t)strlen_);
        }
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        key[0] = 4;
        memcpy(key + 1, &s4->sin_addr, 4);
        inet_ntop(AF_INET, key + 1, str, (socklen_t)strlen_);
    } else {
        snprintf(str, strlen_, "unknown");
    }
}

net__ip *net__iptab_admit(net__iptab *t, const struct sockaddr *sa, uint64_t now_ms)
{
    uint8_t key[17];
    char str[INET6_ADDRSTRLEN];
    ip_key(sa, key, str, sizeof str);

    uv_mutex_lock(&t->mu);
    net__ip *e;
    HASH_FIND(hh, t->map, key, sizeof key, e);
    if (!e) {
        e = PL_NEW(net__ip);
        memcpy(e->key, key, sizeof key);
        memcpy(e->str, str, sizeof str);
        HASH_ADD(hh, t->map, key, sizeof e->key, e);
    }
    if (t->max_conns && e->open >= t->max_conns) e = NULL;
    else if (tbucket_take(&e->bucket, now_ms, t->rate, t->burst)) e = NULL;
    else e->open++;
    uv_mutex_unlock(&t->mu);
    return e;
}

void net__iptab_release(net__iptab *t, net__ip *ip)
{
    uv_mutex_lock(&t->mu);
    ip->open--;
    uv_mutex_unlock(&t->mu);
}

const char *net__ip_str(const net__ip *ip) { return ip->str; }

size_t net__iptab_sweep(net__iptab *t, uint64_t now_ms)
{
    uv_mutex_lock(&t->mu);
    net__ip *e, *tmp;
    HASH_ITER(hh, t->map, e, tmp) {
        if (e->open) continue;
        /* Full again when the missing tokens have had time to refill. */
        bool full = !(t->rate > 0) || e->bucket.last_ms == 0;
        if (!full) {
            double burst = t->burst >= 1 ? t->burst : 1;
            double elapsed = now_ms > e->bucket.last_ms ? (double)(now_ms - e->bucket.last_ms) : 0;
            full = e->bucket.tokens + elapsed * t->rate / 1000.0 >= burst;
        }
        if (full) {
            HASH_DEL(t->map, e);
            pl_free(e);
        }
    }
    size_t left = HASH_COUNT(t->map);
    uv_mutex_unlock(&t->mu);
    return left;
}
