/*
 * peek.c - the request id of a frame that does not decode.
 *
 * A client whose frame is refused should learn which request failed, so
 * the error answer carries the frame's `id` whenever it can be read: the
 * top-level "id" of a JSON object, or the top-level field 1 (a varint) of
 * a protobuf message, found by walking the wire format without the schema.
 * Anything unreadable gives 0 (no id).
 */
#include <stdbool.h>

#include <jansson.h>

#include "proto/codec.h"

#define ID_MAX ((uint64_t)1 << 53)

static uint64_t pb_id(const uint8_t *p, size_t len)
{
    size_t i = 0;
    uint64_t id = 0;
    while (i < len) {
        uint64_t key, v;
        if (!proto__read_varint(p, len, &i, &key)) return id;
        switch (key & 7) {
        case 0:
            if (!proto__read_varint(p, len, &i, &v)) return id;
            if ((key >> 3) == 1) id = v < ID_MAX ? v : 0;
            break;
        case 1:
            i += 8;
            break;
        case 2:
            if (!proto__read_varint(p, len, &i, &v) || v > len - i) return id;
            i += v;
            break;
        case 5:
            i += 4;
            break;
        default:
            return id;
        }
    }
    return id;
}

static uint64_t json_id(const uint8_t *p, size_t len)
{
    json_error_t e;
    json_t *root = json_loadb((const char *)p, len, 0, &e);
    uint64_t id = 0;
    json_t *v = root && json_is_object(root) ? json_object_get(root, "id") : NULL;
    if (v && json_is_integer(v) && json_integer_value(v) > 0 &&
        (uint64_t)json_integer_value(v) < ID_MAX)
        id = (uint64_t)json_integer_value(v);
    json_decref(root);
    return id;
}

uint64_t proto_frame_peek_id(proto_enc enc, const uint8_t *data, size_t len)
{
    return enc == PROTO_JSON ? json_id(data, len) : pb_id(data, len);
}
