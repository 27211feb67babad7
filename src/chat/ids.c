/*
 * ids.c - what a valid id looks like, and conversation names.
 *
 * User, tenant and group ids are 1..64 characters of [A-Za-z0-9_.@-]: safe
 * in URLs, in log lines and in store keys, and never containing the ':' and
 * '/' that conversation names and registry keys use as separators.
 */
#include <stdio.h>
#include <string.h>

#include "chat/chat_internal.h"

bool chat_valid_id(const char *s)
{
    if (!s || !*s) return false;
    size_t n = 0;
    for (const char *p = s; *p; p++, n++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '.' || ch == '@' || ch == '-';
        if (!ok || n >= CHAT_ID_MAX) return false;
    }
    return true;
}

bool chat_valid_device(const char *kind)
{
    static const char *kinds[] = {"web", "ios", "android", "desktop", "cli", "bot"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kind, kinds[i])) return true;
    return false;
}

void chat_dm_conv(const char *a, const char *b, char *out, size_t outlen)
{
    if (strcmp(a, b) > 0) {
        const char *t = a;
        a = b;
        b = t;
    }
    snprintf(out, outlen, "dm:%s:%s", a, b);
}

bool chat_dm_peer(const char *conv, const char *user, char *peer, size_t peerlen)
{
    if (!conv || strncmp(conv, "dm:", 3)) return false;
    const char *a = conv + 3, *colon = strchr(a, ':');
    if (!colon) return false;
    char first[CHAT_ID_MAX + 1], second[CHAT_ID_MAX + 1];
    size_t la = (size_t)(colon - a);
    if (la > CHAT_ID_MAX || strlen(colon + 1) > CHAT_ID_MAX) return false;
    memcpy(first, a, la);
    first[la] = 0;
    snprintf(second, sizeof second, "%s", colon + 1);
    if (!chat_valid_id(first) || !chat_valid_id(second) || strcmp(first, second) > 0) return false;
    if (!strcmp(first, user)) snprintf(peer, peerlen, "%s", second);
    else if (!strcmp(second, user)) snprintf(peer, peerlen, "%s", first);
    else return false;
    return true;
}
