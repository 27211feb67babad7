/*
 * clone.h - deep copies of protobuf-c messages into an arena.
 *
 * A push crosses threads: the worker that learns of a message copies the
 * frame body once into an arena that travels with the mail, and every
 * worker reads that copy.  Generic over descriptors, like the codec.
 */
#ifndef PARLEY_PROTO_CLONE_H
#define PARLEY_PROTO_CLONE_H

#include <protobuf-c/protobuf-c.h>

#include "core/arena.h"

/* A deep copy of m whose every string, array and sub-message lives in a;
 * freed with the arena (never with proto_free).  NULL gives NULL. */
ProtobufCMessage *proto_clone(const ProtobufCMessage *m, arena *a);

#endif
