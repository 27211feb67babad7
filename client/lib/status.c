/*
 * status.c - names of libparley's statuses and states, and the mapping from
 * the protocol's error codes (docs/protocol.md, "Errors") to statuses.
 *
 * The server's codes keep their protocol spelling, so a status printed by
 * an application reads the same as the frame the server sent.
 */
#include <string.h>

#include "internal.h"

static const char *const names[PARLEY_STATUS_COUNT] = {
    [PARLEY_OK] = "ok",
    [PARLEY_BAD_REQUEST] = "bad_request",
    [PARLEY_UNAUTHORIZED] = "unauthorized",
    [PARLEY_FORBIDDEN] = "forbidden",
    [PARLEY_NOT_FOUND] = "not_found",
    [PARLEY_CONFLICT] = "conflict",
    [PARLEY_TOO_LARGE] = "too_large",
    [PARLEY_RATE_LIMITED] = "rate_limited",
    [PARLEY_BLOCKED_CONTENT] = "blocked_content",
    [PARLEY_UNAVAILABLE] = "unavailable",
    [PARLEY_INTERNAL] = "internal",
    [PARLEY_INVALID] = "invalid",
    [PARLEY_NOT_READY] = "not_ready",
    [PARLEY_CLOSED] = "closed",
    [PARLEY_TIMEOUT] = "timeout",
    [PARLEY_KICKED] = "kicked",
    [PARLEY_PROTOCOL] = "protocol",
    [PARLEY_CANCELLED] = "cancelled",
    [PARLEY_UNSUPPORTED] = "unsupported",
    [PARLEY_CONNECT] = "connect",
};

const char *parley_status_str(parley_status st)
{
    if ((unsigned)st >= PARLEY_STATUS_COUNT || !names[st]) return "unknown";
    return names[st];
}

parley_status parley_status_from_code(const char *code)
{
    if (code)
        for (int i = PARLEY_BAD_REQUEST; i <= PARLEY_INTERNAL; i++)
            if (!strcmp(code, names[i])) return (parley_status)i;
    return PARLEY_INTERNAL;
}

const char *parley_state_str(parley_state st)
{
    switch (st) {
    case PARLEY_STATE_IDLE: return "idle";
    case PARLEY_STATE_CONNECTING: return "connecting";
    case PARLEY_STATE_READY: return "ready";
    case PARLEY_STATE_WAITING: return "waiting";
    case PARLEY_STATE_CLOSED: return "closed";
    }
    return "unknown";
}
