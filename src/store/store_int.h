/*
 * store_int.h - what the generic store code and the backends share.
 * Private to src/store.
 */
#ifndef PARLEY_STORE_STORE_INT_H
#define PARLEY_STORE_STORE_INT_H

#include "store/store.h"

/* The head of every backend's store object: how store.c dispatches. */
struct store {
    const store_backend *backend;
};

/* The mail function every completion carries: runs r->done. */
void store__complete(mail *m);

/* Normalise a read limit: 0 -> 100, above 1000 -> 1000. */
uint32_t store__limit(uint32_t limit);

#endif
