/* status.c - names and HTTP statuses of pl_status (see status.h). */
#include "core/status.h"

static const struct {
    const char *name;
    int http;
} table[PL_STATUS_COUNT] = {
    [PL_OK] = {"ok", 200},
    [PL_BAD_REQUEST] = {"bad_request", 400},
    [PL_UNAUTHORIZED] = {"unauthorized", 401},
    [PL_FORBIDDEN] = {"forbidden", 403},
    [PL_NOT_FOUND] = {"not_found", 404},
    [PL_CONFLICT] = {"conflict", 409},
    [PL_TOO_LARGE] = {"too_large", 413},
    [PL_RATE_LIMITED] = {"rate_limited", 429},
    [PL_BLOCKED_CONTENT] = {"blocked_content", 422},
    [PL_UNAVAILABLE] = {"unavailable", 503},
    [PL_INTERNAL] = {"internal", 500},
};

const char *pl_status_str(pl_status st)
{
    if ((unsigned)st >= PL_STATUS_COUNT) return "internal";
    return table[st].name;
}

int pl_status_http(pl_status st)
{
    if ((unsigned)st >= PL_STATUS_COUNT) return 500;
    return table[st].http;
}
