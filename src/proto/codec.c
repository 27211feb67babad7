/*
 * codec.c - the entry points of the codec and its protobuf half (see codec.h).
 *
 * Decoding protobuf is a quick structural pass that bounds the nesting
 * depth (pb_too_deep: protobuf-c has no bound of its own, which matters as
 * soon as a message can contain itself), protobuf-c's
 * protobuf_c_message_unpack with an allocator over core/mem.h, and one
 * generic walk over the decoded message (pb_check) that enforces what
 * protobuf-c does not: valid UTF-8 in every string, 64-bit integers below
 * 2^53, finite floats; the same walk drops unknown fields.  When unpack
 * fails, a second pass over the bytes (pb_diagnose) finds out why, so that
 * the error names the field; it only runs on that error path.
 *
 * Encoding protobuf is protobuf-c's pack into a buf reserved once.
 *
 * Ownership: a decoded message and everything under it (strings, arrays,
 * sub-messages) is allocated through one allocator, whether it came from
 * protobuf-c or from json.c: proto__allocator (the heap), so that
 * proto_free (protobuf_c_message_free_unpacked with it) frees either, or
 * for proto_decode_in an arena's, whose frees do nothing.  Nothing here
 * keeps state between calls; every function may run on any thread.
 */
#include "proto/codec.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/utf8.h"

/* The largest magnitude a 64-bit integer may have: 2^53 - 1. */
#define PROTO__MAX_SAFE_INT ((uint64_t)9007199254740991ULL)

/* ---- allocation ---- */

static void *pl_alloc_cb(void *data, size_t size)
{
    (void)data;
    return pl_malloc(size);
}

static void pl_free_cb(void *data, void *p)
{
    (void)data;
    pl_free(p);
}

ProtobufCAllocator proto__allocator = {pl_alloc_cb, pl_free_cb, NULL};

static void *arena_alloc_cb(void *data, size_t size) { return arena_alloc(data, size); }

/* A block of an arena is freed with the arena, never alone. */
static void arena_free_cb(void *data, void *p)
{
    (void)data;
    (void)p;
}

void *proto__alloc(proto__ctx *c, size_t size) { return c->al->alloc(c->al->allocator_data, size); }

static void ctx_free(proto__ctx *c, void *p) { c->al->free(c->al->allocator_data, p); }

/* ---- errors ---- */

static void sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) *s = '?';
}

void proto__errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    sanitize(err);
}

/* Append the path of the field f at the current depth, e.g.
 * "sync_ok.entries[2].msg.seq", to out[*pos..n), keeping it terminated. */
static void put_path(const proto__ctx *c, const ProtobufCFieldDescriptor *f, size_t idx, char *out,
                     size_t n, size_t *pos)
{
    for (unsigned i = 0; i + 1 < c->depth && i < PROTO_MAX_DEPTH; i++) {
        const ProtobufCFieldDescriptor *pf = c->path_field[i];
        size_t pi = c->path_index[i];
        int w = pi == SIZE_MAX ? snprintf(out + *pos, n - *pos, "%s%s", i ? "." : "", pf->name)
                               : snprintf(out + *pos, n - *pos, "%s%s[%zu]", i ? "." : "",
                                          pf->name, pi);
        if (w < 0 || (size_t)w >= n - *pos) {
            *pos = n - 1;
            return;
        }
        *pos += (size_t)w;
    }
    if (f) {
        int w = idx == SIZE_MAX ? snprintf(out + *pos, n - *pos, ".%s", f->name)
                                : snprintf(out + *pos, n - *pos, ".%s[%zu]", f->name, idx);
        if (w < 0 || (size_t)w >= n - *pos) {
            *pos = n - 1;
            return;
        }
        *pos += (size_t)w;
    }
}

pl_status proto__fail(proto__ctx *c, const ProtobufCMessageDescriptor *d,
                      const ProtobufCFieldDescriptor *f, size_t idx, const char *fmt, ...)
{
    if (!c->err || !c->errlen) return PL_BAD_REQUEST;
    char *out = c->err;
    size_t n = c->errlen, pos = 0;
    int w = 0;
    if (f && idx != SIZE_MAX)
        w = snprintf(out, n, "field \"%s[%zu]\" of %s: ", f->name, idx, d->short_name);
    else if (f)
        w = snprintf(out, n, "field \"%s\" of %s: ", f->name, d->short_name);
    pos = w < 0 ? 0 : (size_t)w < n ? (size_t)w : n - 1;
    va_list ap;
    va_start(ap, fmt);
    w = vsnprintf(out + pos, n - pos, fmt, ap);
    va_end(ap);
    pos = w < 0 ? pos : pos + (size_t)w < n ? pos + (size_t)w : n - 1;
    if (c->depth > 1 && pos + 6 < n) {
        /* The path from the top, when the field is nested. */
        memcpy(out + pos, " (at ", 6);
        pos += 5;
        put_path(c, f, idx, out, n, &pos);
        if (pos + 1 < n) {
            out[pos++] = ')';
            out[pos] = 0;
        }
    }
    sanitize(out);
    return PL_BAD_REQUEST;
}

/* ---- presence ---- */

int proto__zeroish(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_BOOL:
        return !*(const protobuf_c_boolean *)p;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        return !*(const uint32_t *)p;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return !*(const uint64_t *)p;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)p == 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)p == 0;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return !s || !*s;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(void *const *)p == NULL;
    }
    return true;
}

/* ---- protobuf decode: the checks after unpack ---- */

static pl_status pb_check(proto__ctx *c, ProtobufCMessage *m);

/* Check one value of field f (element idx of a repeated field, or SIZE_MAX)
 * at p. */
static pl_status pb_check_value(proto__ctx *c, const ProtobufCMessageDescriptor *d,
                                const ProtobufCFieldDescriptor *f, size_t idx, void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char **)p;
        if (s && !utf8_valid((const uint8_t *)s, strlen(s)))
            return proto__fail(c, d, f, idx, "invalid UTF-8");
        return PL_OK;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage *sub = *(ProtobufCMessage **)p;
        if (!sub) return PL_OK;
        if (c->depth >= PROTO_MAX_DEPTH)
            return proto__fail(c, d, f, idx, "messages nest deeper than %d levels",
                               PROTO_MAX_DEPTH);
        c->path_field[c->depth - 1] = f;
        c->path_index[c->depth - 1] = idx;
        return pb_check(c, sub);
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        int64_t v = *(int64_t *)p;
        if (v > (int64_t)PROTO__MAX_SAFE_INT || v < -(int64_t)PROTO__MAX_SAFE_INT)
            return proto__fail(c, d, f, idx,
                               "%lld is out of range (64-bit integers must be below 2^53)",
                               (long long)v);
        return PL_OK;
    }
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t v = *(uint64_t *)p;
        if (v > PROTO__MAX_SAFE_INT)
            return proto__fail(c, d, f, idx,
                               "%llu is out of range (64-bit integers must be below 2^53)",
                               (unsigned long long)v);
        return PL_OK;
    }
    case PROTOBUF_C_TYPE_FLOAT:
        if (!isfinite(*(float *)p)) return proto__fail(c, d, f, idx, "not a finite number");
        return PL_OK;
    case PROTOBUF_C_TYPE_DOUBLE:
        if (!isfinite(*(double *)p)) return proto__fail(c, d, f, idx, "not a finite number");
        return PL_OK;
    default:
        return PL_OK;
    }
}

size_t proto__elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return 4;
    }
}

/* Whether values of type t need a look after unpack at all. */
static bool needs_check(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        return true;
    default:
        return false;
    }
}

static pl_status pb_check(proto__ctx *c, ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    c->depth++;
    if (m->n_unknown_fields) {
        for (unsigned i = 0; i < m->n_unknown_fields; i++) ctx_free(c, m->unknown_fields[i].data);
        ctx_free(c, m->unknown_fields);
        m->unknown_fields = NULL;
        m->n_unknown_fields = 0;
    }
    char *base = (char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!needs_check(f->type)) continue;
        pl_status st;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(size_t *)(base + f->quantifier_offset);
            char *arr = *(char **)(base + f->offset);
            size_t es = proto__elem_size(f->type);
            for (size_t j = 0; j < n; j++)
                if ((st = pb_check_value(c, d, f, j, arr + j * es))) return st;
        } else if (proto__present(m, f)) {
            if ((st = pb_check_value(c, d, f, SIZE_MAX, base + f->offset))) return st;
        }
    }
    c->depth--;
    return PL_OK;
}

/* ---- protobuf decode: why unpack failed ---- */

bool proto__read_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 70 && *i < len; shift += 7) {
        uint8_t b = p[(*i)++];
        r |= (uint64_t)(b & 0x7f) << (shift < 64 ? shift : 63);
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* The wire type a non-packed value of type t is written with. */
static unsigned wire_type_of(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return PROTOBUF_C_WIRE_TYPE_64BIT;
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return PROTOBUF_C_WIRE_TYPE_32BIT;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    default:
        return PROTOBUF_C_WIRE_TYPE_VARINT;
    }
}

/* Whether the message p[0..len) of type d, itself at depth `depth`, nests
 * messages deeper than PROTO_MAX_DEPTH.  protobuf-c recurses into nested
 * messages without a limit of its own, so this runs before unpack; it only
 * follows the structure (a few instructions per field, no allocation) and
 * leaves anything malformed for unpack to reject. */
static bool pb_too_deep(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                        unsigned depth)
{
    size_t i = 0;
    while (i < len) {
        uint64_t tag, n;
        if (!proto__read_varint(p, len, &i, &tag)) return false;
        switch (tag & 7) {
        case PROTOBUF_C_WIRE_TYPE_VARINT:
            if (!proto__read_varint(p, len, &i, &n)) return false;
            break;
        case PROTOBUF_C_WIRE_TYPE_64BIT:
            if (len - i < 8) return false;
            i += 8;
            break;
        case PROTOBUF_C_WIRE_TYPE_32BIT:
            if (len - i < 4) return false;
            i += 4;
            break;
        case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED: {
            if (!proto__read_varint(p, len, &i, &n) || n > len - i) return false;
            uint64_t num = tag >> 3;
            const ProtobufCFieldDescriptor *f =
                num <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)num)
                                  : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (depth >= PROTO_MAX_DEPTH) return true;
                if (pb_too_deep(f->descriptor, p + i, (size_t)n, depth + 1)) return true;
            }
            i += (size_t)n;
            break;
        }
        default:
            return false;
        }
    }
    return false;
}

/* Report a problem found by pb_diagnose with field f (NULL for an unknown
 * field) of d. */
static void dfail(proto__ctx *c, const ProtobufCMessageDescriptor *d,
                  const ProtobufCFieldDescriptor *f, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void dfail(proto__ctx *c, const ProtobufCMessageDescriptor *d,
                  const ProtobufCFieldDescriptor *f, const char *fmt, ...)
{
    char reason[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (f)
        proto__fail(c, d, f, SIZE_MAX, "%s", reason);
    else
        proto__fail(c, d, NULL, SIZE_MAX, "%s: %s", d->short_name, reason);
}

/* Walk the bytes p[0..len) of a message of type d, which start at byte
 * `origin` of the input, looking for the first problem, and describe it in
 * c->err; false if none was found. */
static bool pb_diagnose(proto__ctx *c, const ProtobufCMessageDescriptor *d, const uint8_t *p,
                        size_t len, size_t origin)
{
    size_t i = 0;
    uint64_t seen[4] = {0};   /* fields (by index, the first 256) that occur */
    c->depth++;
    while (i < len) {
        size_t at = origin + i;   /* for messages: from the start of the input */
        uint64_t tag, n;
        if (!proto__read_varint(p, len, &i, &tag)) {
            dfail(c, d, NULL, "truncated or invalid field key at byte %zu", at);
            return true;
        }
        uint64_t num = tag >> 3;
        unsigned wt = (unsigned)(tag & 7);
        const ProtobufCFieldDescriptor *f =
            num && num <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)num)
                                     : NULL;
        if (num == 0 || num > 536870911) {
            dfail(c, d, NULL, "invalid field number %llu at byte %zu", (unsigned long long)num, at);
            return true;
        }
        if (wt == 3 || wt == 4 || wt > 5) {
            dfail(c, d, f, "unsupported wire type %u at byte %zu", wt, at);
            return true;
        }
        if (f) {
            size_t fi = (size_t)(f - d->fields);
            if (fi < 256) seen[fi / 64] |= (uint64_t)1 << (fi % 64);
            unsigned want = wire_type_of(f->type);
            bool packed = f->label == PROTOBUF_C_LABEL_REPEATED &&
                          want != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED &&
                          wt == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
            if (wt != want && !packed) {
                dfail(c, d, f, "wrong wire type %u (expected %u)", wt, want);
                return true;
            }
        }
        switch (wt) {
        case PROTOBUF_C_WIRE_TYPE_VARINT:
            if (!proto__read_varint(p, len, &i, &n)) {
                dfail(c, d, f, "truncated or invalid varint at byte %zu", at);
                return true;
            }
            break;
        case PROTOBUF_C_WIRE_TYPE_64BIT:
        case PROTOBUF_C_WIRE_TYPE_32BIT: {
            size_t w = wt == PROTOBUF_C_WIRE_TYPE_64BIT ? 8 : 4;
            if (len - i < w) {
                dfail(c, d, f, "truncated value at byte %zu", at);
                return true;
            }
            i += w;
            break;
        }
        case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
            if (!proto__read_varint(p, len, &i, &n) || n > len - i) {
                dfail(c, d, f, "truncated value at byte %zu", at);
                return true;
            }
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (c->depth >= PROTO_MAX_DEPTH) {
                    dfail(c, d, f, "messages nest deeper than %d levels",
                                PROTO_MAX_DEPTH);
                    return true;
                }
                c->path_field[c->depth - 1] = f;
                c->path_index[c->depth - 1] = SIZE_MAX;
                if (pb_diagnose(c, f->descriptor, p + i, (size_t)n, origin + i)) return true;
            }
            i += (size_t)n;
            break;
        default:
            dfail(c, d, f, "unsupported wire type %u at byte %zu", wt, at);
            return true;
        }
    }
    for (unsigned k = 0; k < d->n_fields && k < 256; k++) {
        /* The only other reason protobuf-c gives up: a missing required
         * field (one with a default may be left out). */
        const ProtobufCFieldDescriptor *f = &d->fields[k];
        if (f->label == PROTOBUF_C_LABEL_REQUIRED && !f->default_value &&
            !(seen[k / 64] & ((uint64_t)1 << (k % 64)))) {
            dfail(c, d, f, "missing required field");
            return true;
        }
    }
    c->depth--;
    return false;
}

/* ---- entry points ---- */

pl_status proto_decode_in(arena *a, const ProtobufCMessageDescriptor *d, proto_enc enc,
                          const uint8_t *data, size_t len, ProtobufCMessage **out, char *err,
                          size_t errlen)
{
    ProtobufCAllocator in_arena = {arena_alloc_cb, arena_free_cb, a};
    proto__ctx c;
    c.al = a ? &in_arena : &proto__allocator;
    c.err = err;
    c.errlen = errlen;
    c.depth = 0;
    *out = NULL;
    if (err && errlen) err[0] = 0;
    if (enc == PROTO_JSON) return proto__json_decode(d, data, len, out, &c);
    if (enc != PROTO_PB) {
        proto__errf(err, errlen, "unknown encoding %d", (int)enc);
        return PL_BAD_REQUEST;
    }
    static const uint8_t none[1];
    if (!data) data = none;
    ProtobufCMessage *m = NULL;
    if (pb_too_deep(d, data, len, 1) ||
        !(m = protobuf_c_message_unpack(d, c.al, len, data))) {
        if (!pb_diagnose(&c, d, data, len, 0))
            proto__errf(err, errlen, "invalid protobuf: not a valid %s", d->short_name);
        return PL_BAD_REQUEST;
    }
    pl_status st = pb_check(&c, m);
    if (st) {
        protobuf_c_message_free_unpacked(m, c.al);
        return st;
    }
    *out = m;
    return PL_OK;
}

pl_status proto_decode(const ProtobufCMessageDescriptor *d, proto_enc enc, const uint8_t *data,
                       size_t len, ProtobufCMessage **out, char *err, size_t errlen)
{
    return proto_decode_in(NULL, d, enc, data, len, out, err, errlen);
}

/* Append the varint v to out (room for 10 bytes reserved by the caller). */
static void put_varint(buf *out, uint64_t v)
{
    uint8_t *p = out->data + out->len;
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    out->len += n;
}

void proto_encode(const ProtobufCMessage *m, proto_enc enc, buf *out)
{
    if (enc == PROTO_JSON) {
        proto__json_encode(m, out);
        return;
    }
    size_t n = protobuf_c_message_get_packed_size(m);
    buf_reserve(out, n);
    out->len += protobuf_c_message_pack(m, out->data + out->len);
    /* protobuf-c leaves out a oneof member of message type whose pointer is
     * NULL; write it as an empty message, as the JSON encoder does.  Only the
     * top level can be patched this way (deeper, the lengths of the
     * enclosing messages would change). */
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) || f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *base = (const char *)m;
        if (*(const uint32_t *)(base + f->quantifier_offset) == f->id &&
            !*(void *const *)(base + f->offset)) {
            buf_reserve(out, 11);
            put_varint(out, ((uint64_t)f->id << 3) | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
            out->data[out->len++] = 0;
        }
    }
}

void proto_free(ProtobufCMessage *m)
{
    if (m) protobuf_c_message_free_unpacked(m, &proto__allocator);
}

pl_status proto_frame_decode_in(arena *a, proto_enc enc, const uint8_t *data, size_t len,
                                Parley__Frame **out, char *err, size_t errlen)
{
    ProtobufCMessage *m;
    *out = NULL;
    pl_status st = proto_decode_in(a, &parley__frame__descriptor, enc, data, len, &m, err, errlen);
    if (st) return st;
    Parley__Frame *f = (Parley__Frame *)m;
    if (f->body_case == PARLEY__FRAME__BODY__NOT_SET) {
        proto__errf(err, errlen, "frame has no body");
        if (!a) proto_free(m);
        return PL_BAD_REQUEST;
    }
    *out = f;
    return PL_OK;
}

pl_status proto_frame_decode(proto_enc enc, const uint8_t *data, size_t len, Parley__Frame **out,
                             char *err, size_t errlen)
{
    return proto_frame_decode_in(NULL, enc, data, len, out, err, errlen);
}

const char *proto_body_name(Parley__Frame__BodyCase body)
{
    if (body == PARLEY__FRAME__BODY__NOT_SET) return "";
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&parley__frame__descriptor, (unsigned)body);
    if (!f || !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) return "";
    return f->name;
}
