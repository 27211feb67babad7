/*
 * json.c - the JSON mapping of protobuf messages (see codec.h for the rules).
 *
 * Decoding parses the text with jansson (duplicate keys rejected, nothing
 * but whitespace after the object, NUL characters rejected, UTF-8 checked),
 * then walks the tree against the message descriptor, building the message
 * in place: each value is converted by its field's type and written at the
 * field's offset, and has_x / the oneof case / the repeated count at the
 * field's quantifier offset.  Everything is allocated through the
 * decoder's allocator (the heap, or proto_decode_in's arena), and the
 * message is kept consistent for protobuf_c_message_free_unpacked at every
 * step (a pointer is stored before what it points to is filled in, a
 * repeated count only covers initialised elements), so a failure anywhere
 * just frees the partial message.
 *
 * Encoding writes the text straight into the caller's buf, with no tree and
 * no allocation besides the buf's growth: fields in descriptor order (which
 * protoc-c emits sorted by field number), only those that are set.
 *
 * No state outside the arguments; safe on any thread.
 */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "proto/codec.h"

/* The largest magnitude a 64-bit integer may have in JSON: 2^53 - 1. */
#define MAX_SAFE_INT 9007199254740991LL

/* ---- base64 (RFC 4648, standard alphabet, padded) ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_encode(buf *out, const uint8_t *p, size_t n)
{
    size_t olen = (n + 2) / 3 * 4;
    buf_reserve(out, olen);
    char *o = (char *)out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = b64_alphabet[(v >> 6) & 63];
        *o++ = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = b64_alphabet[(v >> 6) & 63];
        *o++ = '=';
    }
    out->len += olen;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decode s[0..n) into out (room for n / 4 * 3 bytes).  Returns the decoded
 * length, or -1 unless s is canonical padded base64: length a multiple of 4,
 * '=' only as the last one or two characters, unused bits zero. */
static long b64_decode(const char *s, size_t n, uint8_t *out)
{
    if (n % 4) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int pad = last && s[i + 3] == '=' ? (s[i + 2] == '=' ? 2 : 1) : 0;
        int a = b64_value((unsigned char)s[i]), b = b64_value((unsigned char)s[i + 1]);
        int c = pad == 2 ? 0 : b64_value((unsigned char)s[i + 2]);
        int d = pad ? 0 : b64_value((unsigned char)s[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0) return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (uint8_t)(v >> 16);
        if (pad == 2) {
            if (v & 0xffff) return -1;
        } else {
            out[o++] = (uint8_t)(v >> 8);
            if (pad == 1) {
                if (v & 0xff) return -1;
            } else {
                out[o++] = (uint8_t)v;
            }
        }
    }
    return (long)o;
}

/* ---- decode ---- */

static pl_status dec_message(proto__ctx *c, const ProtobufCMessageDescriptor *d, json_t *obj,
                             ProtobufCMessage *m);

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "something else";
}

static const char *type_name(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32: return "int32";
    case PROTOBUF_C_TYPE_SINT32: return "sint32";
    case PROTOBUF_C_TYPE_SFIXED32: return "sfixed32";
    case PROTOBUF_C_TYPE_INT64: return "int64";
    case PROTOBUF_C_TYPE_SINT64: return "sint64";
    case PROTOBUF_C_TYPE_SFIXED64: return "sfixed64";
    case PROTOBUF_C_TYPE_UINT32: return "uint32";
    case PROTOBUF_C_TYPE_FIXED32: return "fixed32";
    case PROTOBUF_C_TYPE_UINT64: return "uint64";
    case PROTOBUF_C_TYPE_FIXED64: return "fixed64";
    case PROTOBUF_C_TYPE_FLOAT: return "float";
    case PROTOBUF_C_TYPE_DOUBLE: return "double";
    case PROTOBUF_C_TYPE_BOOL: return "bool";
    case PROTOBUF_C_TYPE_ENUM: return "enum";
    case PROTOBUF_C_TYPE_STRING: return "string";
    case PROTOBUF_C_TYPE_BYTES: return "bytes";
    case PROTOBUF_C_TYPE_MESSAGE: return "message";
    }
    return "?";
}

static pl_status bad_type(proto__ctx *c, const ProtobufCMessageDescriptor *d,
                          const ProtobufCFieldDescriptor *f, size_t idx, const json_t *v,
                          const char *want)
{
    return proto__fail(c, d, f, idx, "expected %s, got %s", want, json_type_name(v));
}

/* The integer in v if it lies in [lo, hi]; otherwise an error. */
static pl_status get_int(proto__ctx *c, const ProtobufCMessageDescriptor *d,
                         const ProtobufCFieldDescriptor *f, size_t idx, const json_t *v,
                         json_int_t lo, json_int_t hi, json_int_t *out)
{
    if (!json_is_integer(v)) return bad_type(c, d, f, idx, v, "an integer");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        bool wide = hi == MAX_SAFE_INT;
        return proto__fail(c, d, f, idx, "%lld is out of range for %s%s", (long long)x,
                           type_name(f->type),
                           wide ? " (64-bit integers must be below 2^53)" : "");
    }
    *out = x;
    return PL_OK;
}

/* Convert v into the value of field f (element idx of a repeated field, or
 * SIZE_MAX) at p.  Anything allocated is attached at p before it is filled,
 * so that the enclosing message can always be freed. */
static pl_status dec_value(proto__ctx *c, const ProtobufCMessageDescriptor *d,
                           const ProtobufCFieldDescriptor *f, size_t idx, json_t *v, void *p)
{
    json_int_t x;
    pl_status st;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if ((st = get_int(c, d, f, idx, v, INT32_MIN, INT32_MAX, &x))) return st;
        *(int32_t *)p = (int32_t)x;
        return PL_OK;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if ((st = get_int(c, d, f, idx, v, 0, UINT32_MAX, &x))) return st;
        *(uint32_t *)p = (uint32_t)x;
        return PL_OK;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if ((st = get_int(c, d, f, idx, v, -MAX_SAFE_INT, MAX_SAFE_INT, &x))) return st;
        *(int64_t *)p = (int64_t)x;
        return PL_OK;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if ((st = get_int(c, d, f, idx, v, 0, MAX_SAFE_INT, &x))) return st;
        *(uint64_t *)p = (uint64_t)x;
        return PL_OK;
    case PROTOBUF_C_TYPE_FLOAT: {
        if (!json_is_number(v)) return bad_type(c, d, f, idx, v, "a number");
        double r = json_number_value(v);
        /* Values up to half an ulp above FLT_MAX still round to FLT_MAX
         * (its shortest decimal form, 3.4028235e+38, is such a value). */
        if (!(fabs(r) < 0x1.ffffffp+127))
            return proto__fail(c, d, f, idx, "out of range for float");
        *(float *)p = (float)r;
        return PL_OK;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        if (!json_is_number(v)) return bad_type(c, d, f, idx, v, "a number");
        double r = json_number_value(v);
        if (!isfinite(r)) return proto__fail(c, d, f, idx, "not a finite number");
        *(double *)p = r;
        return PL_OK;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v)) return bad_type(c, d, f, idx, v, "true or false");
        *(protobuf_c_boolean *)p = json_is_true(v);
        return PL_OK;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        if (json_is_string(v)) {
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v));
            if (!ev)
                return proto__fail(c, d, f, idx, "\"%.64s\" is not a value of %s",
                                   json_string_value(v), ed->short_name);
            *(int *)p = ev->value;
            return PL_OK;
        }
        if (!json_is_integer(v))
            return bad_type(c, d, f, idx, v, "the name (a string) or number of an enum value");
        if ((st = get_int(c, d, f, idx, v, INT32_MIN, INT32_MAX, &x))) return st;
        *(int *)p = (int)x;
        return PL_OK;
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(v)) return bad_type(c, d, f, idx, v, "a string");
        size_t n = json_string_length(v);
        char *s = proto__alloc(c, n + 1);
        memcpy(s, json_string_value(v), n + 1);
        *(char **)p = s;
        return PL_OK;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (!json_is_string(v)) return bad_type(c, d, f, idx, v, "a base64 string");
        size_t n = json_string_length(v);
        ProtobufCBinaryData *bd = p;
        bd->len = 0;
        bd->data = NULL;
        if (!n) return PL_OK;
        bd->data = proto__alloc(c, n / 4 * 3 + 1);
        long got = b64_decode(json_string_value(v), n, bd->data);
        if (got < 0) return proto__fail(c, d, f, idx, "invalid base64 (standard alphabet, padded)");
        bd->len = (size_t)got;
        return PL_OK;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (!json_is_object(v)) return bad_type(c, d, f, idx, v, "an object");
        if (c->depth >= PROTO_MAX_DEPTH)
            return proto__fail(c, d, f, idx, "messages nest deeper than %d levels",
                               PROTO_MAX_DEPTH);
        const ProtobufCMessageDescriptor *sd = f->descriptor;
        ProtobufCMessage *sub = proto__alloc(c, sd->sizeof_message);
        protobuf_c_message_init(sd, sub);
        *(ProtobufCMessage **)p = sub;
        c->path_field[c->depth - 1] = f;
        c->path_index[c->depth - 1] = idx;
        return dec_message(c, sd, v, sub);
    }
    }
    return proto__fail(c, d, f, idx, "unsupported field type");
}

static pl_status dec_repeated(proto__ctx *c, const ProtobufCMessageDescriptor *d,
                              const ProtobufCFieldDescriptor *f, json_t *v, ProtobufCMessage *m)
{
    if (!json_is_array(v)) return bad_type(c, d, f, SIZE_MAX, v, "an array");
    size_t n = json_array_size(v);
    if (!n) return PL_OK;
    char *base = (char *)m;
    size_t es = proto__elem_size(f->type);
    char *arr = proto__alloc(c, n * es);
    size_t *count = (size_t *)(base + f->quantifier_offset);
    *(char **)(base + f->offset) = arr;
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (json_is_null(e))
            return bad_type(c, d, f, i, e, "a value (null is not allowed in an array)");
        void *slot = arr + i * es;
        memset(slot, 0, es);
        (*count)++;
        pl_status st = dec_value(c, d, f, i, e, slot);
        if (st) return st;
    }
    return PL_OK;
}

static pl_status dec_message(proto__ctx *c, const ProtobufCMessageDescriptor *d, json_t *obj,
                             ProtobufCMessage *m)
{
    char *base = (char *)m;
    const char *key;
    json_t *v;
    pl_status st;
    c->depth++;
    json_object_foreach(obj, key, v) {
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
        if (!f) return proto__fail(c, d, NULL, SIZE_MAX, "unknown field \"%.64s\" in %s", key,
                                   d->short_name);
        if (json_is_null(v)) continue;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t *which = (uint32_t *)(base + f->quantifier_offset);
            if (*which) {
                const ProtobufCFieldDescriptor *other =
                    protobuf_c_message_descriptor_get_field(d, *which);
                return proto__fail(c, d, NULL, SIZE_MAX,
                                   "fields \"%s\" and \"%s\" of %s are members of one oneof: at "
                                   "most one may be set",
                                   other ? other->name : "?", f->name, d->short_name);
            }
            /* The case first: free_unpacked then frees whatever the value
             * allocates, even if it fails half way. */
            *which = f->id;
            st = dec_value(c, d, f, SIZE_MAX, v, base + f->offset);
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            st = dec_repeated(c, d, f, v, m);
        } else {
            st = dec_value(c, d, f, SIZE_MAX, v, base + f->offset);
            if (!st && f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
                f->type != PROTOBUF_C_TYPE_MESSAGE)
                *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
        }
        if (st) return st;
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label != PROTOBUF_C_LABEL_REQUIRED || f->default_value) continue;
        json_t *rv = json_object_get(obj, f->name);
        if (!rv || json_is_null(rv)) return proto__fail(c, d, f, SIZE_MAX, "missing (required)");
    }
    c->depth--;
    return PL_OK;
}

pl_status proto__json_decode(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                             ProtobufCMessage **out, proto__ctx *c)
{
    json_error_t je;
    json_t *root =
        json_loadb(data ? (const char *)data : "", data ? len : 0, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        proto__errf(c->err, c->errlen, "invalid JSON at byte %d: %s", je.position, je.text);
        return PL_BAD_REQUEST;
    }
    if (!json_is_object(root)) {
        proto__errf(c->err, c->errlen, "expected a JSON object, got %s", json_type_name(root));
        json_decref(root);
        return PL_BAD_REQUEST;
    }
    ProtobufCMessage *m = proto__alloc(c, d->sizeof_message);
    protobuf_c_message_init(d, m);
    pl_status st = dec_message(c, d, root, m);
    json_decref(root);
    if (st) {
        protobuf_c_message_free_unpacked(m, c->al);
        return st;
    }
    *out = m;
    return PL_OK;
}

/* ---- encode ---- */

/* Room for n more bytes at the end of o: the common case, enough room
 * already, is one comparison. */
static inline uint8_t *room(buf *o, size_t n)
{
    if (o->cap - o->len < n) buf_reserve(o, n);
    return o->data + o->len;
}

/* 1 for the bytes that must be escaped inside a JSON string: control
 * characters, '"' and '\\'. */
static const uint8_t escape_table[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
};

static void put_string(buf *o, const char *s)
{
    size_t n = strlen(s);
    /* Enough for the string without escapes and both quotes; escapes grow
     * the buf as they come. */
    uint8_t *p = room(o, n + 2);
    *p = '"';
    o->len++;
    const uint8_t *u = (const uint8_t *)s, *run = u, *end = u + n;
    for (const uint8_t *q = u; q < end; q++) {
        if (!escape_table[*q]) continue;
        size_t k = (size_t)(q - run);
        p = room(o, k + 6 + (size_t)(end - q));
        memcpy(p, run, k);
        p += k;
        *p++ = '\\';
        if (*q == '"' || *q == '\\') {
            *p++ = *q;
        } else {
            static const char hex[] = "0123456789abcdef";
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = (uint8_t)hex[*q >> 4];
            *p++ = (uint8_t)hex[*q & 15];
        }
        o->len = (size_t)(p - o->data);
        run = q + 1;
    }
    size_t k = (size_t)(end - run);
    p = room(o, k + 1);
    memcpy(p, run, k);
    p[k] = '"';
    o->len += k + 1;
}

static void put_u64(buf *o, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    size_t n = sizeof tmp - i;
    memcpy(room(o, n), tmp + i, n);
    o->len += n;
}

static void put_i64(buf *o, int64_t v)
{
    if (v < 0) {
        *room(o, 1) = '-';
        o->len++;
        put_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(o, (uint64_t)v);
    }
}

static inline void put_raw(buf *o, const char *s, size_t n)
{
    memcpy(room(o, n), s, n);
    o->len += n;
}

static inline void put_char(buf *o, char c)
{
    *room(o, 1) = (uint8_t)c;
    o->len++;
}

/* The shortest %g form that reads back as the same value. */
static void put_real(buf *o, double v, bool single)
{
    if (!isfinite(v)) {
        put_raw(o, "null", 4);
        return;
    }
    char tmp[40];
    int lo = single ? 6 : 15, hi = single ? 9 : 17;
    for (int prec = lo; prec <= hi; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (single ? strtof(tmp, NULL) == (float)v : strtod(tmp, NULL) == v) break;
    }
    put_raw(o, tmp, strlen(tmp));
}

static void enc_message(buf *o, const ProtobufCMessage *m);

/* Write the value of field f at p. */
static void enc_value(buf *o, const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        put_i64(o, *(const int32_t *)p);
        return;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        put_u64(o, *(const uint32_t *)p);
        return;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        put_i64(o, *(const int64_t *)p);
        return;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        put_u64(o, *(const uint64_t *)p);
        return;
    case PROTOBUF_C_TYPE_FLOAT:
        put_real(o, *(const float *)p, true);
        return;
    case PROTOBUF_C_TYPE_DOUBLE:
        put_real(o, *(const double *)p, false);
        return;
    case PROTOBUF_C_TYPE_BOOL:
        if (*(const protobuf_c_boolean *)p)
            put_raw(o, "true", 4);
        else
            put_raw(o, "false", 5);
        return;
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        if (ev)
            put_string(o, ev->name);
        else
            put_i64(o, v);
        return;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        put_string(o, s ? s : "");
        return;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *bd = p;
        put_char(o, '"');
        if (bd->len) b64_encode(o, bd->data, bd->len);
        put_char(o, '"');
        return;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (sub)
            enc_message(o, sub);
        else
            put_raw(o, "{}", 2);
        return;
    }
    }
}

/* Write `,"name":` (without the comma for the first key).  Field names are
 * identifiers: nothing to escape. */
static void put_key(buf *o, const char *name, bool first)
{
    size_t n = strlen(name);
    uint8_t *p = room(o, n + 4);
    if (!first) *p++ = ',';
    *p++ = '"';
    memcpy(p, name, n);
    p += n;
    *p++ = '"';
    *p++ = ':';
    o->len = (size_t)(p - o->data);
}

static void enc_message(buf *o, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    bool first = true;
    put_char(o, '{');
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            if (!n) continue;
            const char *arr = *(char *const *)(base + f->offset);
            size_t es = proto__elem_size(f->type);
            put_key(o, f->name, first);
            first = false;
            put_char(o, '[');
            for (size_t j = 0; j < n; j++) {
                if (j) put_char(o, ',');
                enc_value(o, f, arr + j * es);
            }
            put_char(o, ']');
            continue;
        }
        if (!proto__present(m, f)) continue;
        put_key(o, f->name, first);
        first = false;
        enc_value(o, f, base + f->offset);
    }
    put_char(o, '}');
}

void proto__json_encode(const ProtobufCMessage *m, buf *out) { enc_message(out, m); }
