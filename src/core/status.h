/*
 * status.h - the one status enum used across parley.
 *
 * Every layer returns these codes; the server layer turns them into the
 * protocol's error codes (SPEC section 3) and HTTP statuses in one place
 * (src/server/errors.c).  PL_OK is zero so `if (st)` reads as "failed".
 */
#ifndef PARLEY_CORE_STATUS_H
#define PARLEY_CORE_STATUS_H

typedef enum pl_status {
    PL_OK = 0,
    PL_BAD_REQUEST,     /* malformed or invalid input */
    PL_UNAUTHORIZED,    /* no or bad credentials */
    PL_FORBIDDEN,       /* authenticated, but not allowed */
    PL_NOT_FOUND,
    PL_CONFLICT,        /* already exists */
    PL_TOO_LARGE,
    PL_RATE_LIMITED,
    PL_BLOCKED_CONTENT,
    PL_UNAVAILABLE,     /* try again later: store down, disk full, draining */
    PL_INTERNAL,
    PL_STATUS_COUNT
} pl_status;

/* The protocol's stable code for a status: "bad_request", "unauthorized"... */
const char *pl_status_str(pl_status st);

/* The HTTP status for a status: 400, 401, ... */
int pl_status_http(pl_status st);

#endif
