/*
 * test_generic.c - the codec over every kind of field protobuf-c has.
 *
 * parley.proto only uses strings, uint32/uint64, bool and messages, so this
 * test describes its own messages to protobuf-c, by hand, the way protoc-c
 * would generate them (the name index and number ranges are computed at
 * start-up rather than written out):
 *
 *   enum Color { RED = 0; GREEN = 1; BLUE = 5; }
 *   message Node { optional Node child = 1; optional int32 v = 2; }
 *   message All {
 *     optional <every scalar type, enum and bytes> = 1..15;
 *     optional string s = 16; optional Node node = 17;
 *     optional string dflt = 18 [default = "hello"];
 *     int32 p3 = 19; string p3s = 20;                  // proto3, no presence
 *     repeated <every scalar type, enum and bytes> = 21..35;
 *     repeated string r_s = 36; repeated Node r_node = 37;
 *     oneof pick { string p_s = 40; Node p_node = 41; uint32 p_u = 42; }
 *   }
 *   message Req { required uint32 a = 1; optional string b = 2; }
 *
 * Node nests without bound, which is how the depth limit is tested.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/mem.h"
#include "proto/codec.h"

/* ---- the hand-written schema ---- */

/* name, protobuf-c type, C type of every optional scalar with a has_ flag. */
#define SCALARS(X)                                                                                 \
    X(i32, INT32, int32_t)                                                                         \
    X(s32, SINT32, int32_t)                                                                        \
    X(sf32, SFIXED32, int32_t)                                                                     \
    X(i64, INT64, int64_t)                                                                         \
    X(s64, SINT64, int64_t)                                                                        \
    X(sf64, SFIXED64, int64_t)                                                                     \
    X(u32, UINT32, uint32_t)                                                                       \
    X(f32, FIXED32, uint32_t)                                                                      \
    X(u64, UINT64, uint64_t)                                                                       \
    X(f64, FIXED64, uint64_t)                                                                      \
    X(fl, FLOAT, float)                                                                            \
    X(db, DOUBLE, double)                                                                          \
    X(b, BOOL, protobuf_c_boolean)                                                                 \
    X(color, ENUM, int)                                                                            \
    X(by, BYTES, ProtobufCBinaryData)

typedef struct Node {
    ProtobufCMessage base;
    struct Node *child;
    protobuf_c_boolean has_v;
    int32_t v;
} Node;

typedef struct All {
    ProtobufCMessage base;
#define X(n, T, C)                                                                                 \
    protobuf_c_boolean has_##n;                                                                    \
    C n;
    SCALARS(X)
#undef X
    char *s;
    Node *node;
    char *dflt;
    int32_t p3;
    char *p3s;
#define X(n, T, C)                                                                                 \
    size_t n_r_##n;                                                                                \
    C *r_##n;
    SCALARS(X)
#undef X
    size_t n_r_s;
    char **r_s;
    size_t n_r_node;
    Node **r_node;
    uint32_t pick_case;
    union {
        char *p_s;
        Node *p_node;
        uint32_t p_u;
    };
} All;

typedef struct Req {
    ProtobufCMessage base;
    uint32_t a;
    char *b;
} Req;

enum {
    ID_NONE,
#define X(n, T, C) ID_##n,
    SCALARS(X)
#undef X
    ID_s, ID_node, ID_dflt, ID_p3, ID_p3s,
};

static char dflt_value[] = "hello";

static ProtobufCMessageDescriptor node_desc, all_desc, req_desc;
static ProtobufCEnumDescriptor color_desc;

static ProtobufCFieldDescriptor node_fields[] = {
    {"child", 1, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_MESSAGE, 0, offsetof(Node, child),
     &node_desc, NULL, 0, 0, NULL, NULL},
    {"v", 2, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_INT32, offsetof(Node, has_v),
     offsetof(Node, v), NULL, NULL, 0, 0, NULL, NULL},
};

static ProtobufCFieldDescriptor all_fields[] = {
#define X(n, T, C)                                                                                 \
    {#n, ID_##n, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_##T, offsetof(All, has_##n),            \
     offsetof(All, n), NULL, NULL, 0, 0, NULL, NULL},
    SCALARS(X)
#undef X
    {"s", ID_s, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_STRING, 0, offsetof(All, s), NULL, NULL,
     0, 0, NULL, NULL},
    {"node", ID_node, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_MESSAGE, 0, offsetof(All, node),
     &node_desc, NULL, 0, 0, NULL, NULL},
    {"dflt", ID_dflt, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_STRING, 0, offsetof(All, dflt),
     NULL, dflt_value, 0, 0, NULL, NULL},
    {"p3", ID_p3, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_INT32, 0, offsetof(All, p3), NULL, NULL, 0,
     0, NULL, NULL},
    {"p3s", ID_p3s, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_STRING, 0, offsetof(All, p3s), NULL,
     NULL, 0, 0, NULL, NULL},
#define X(n, T, C)                                                                                 \
    {"r_" #n, ID_##n + 20, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_##T, offsetof(All, n_r_##n),  \
     offsetof(All, r_##n), NULL, NULL, 0, 0, NULL, NULL},
    SCALARS(X)
#undef X
    {"r_s", 36, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_STRING, offsetof(All, n_r_s),
     offsetof(All, r_s), NULL, NULL, 0, 0, NULL, NULL},
    {"r_node", 37, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_MESSAGE, offsetof(All, n_r_node),
     offsetof(All, r_node), &node_desc, NULL, 0, 0, NULL, NULL},
    {"p_s", 40, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_STRING, offsetof(All, pick_case),
     offsetof(All, p_s), NULL, NULL, PROTOBUF_C_FIELD_FLAG_ONEOF, 0, NULL, NULL},
    {"p_node", 41, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_MESSAGE, offsetof(All, pick_case),
     offsetof(All, p_node), &node_desc, NULL, PROTOBUF_C_FIELD_FLAG_ONEOF, 0, NULL, NULL},
    {"p_u", 42, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_UINT32, offsetof(All, pick_case),
     offsetof(All, p_u), NULL, NULL, PROTOBUF_C_FIELD_FLAG_ONEOF, 0, NULL, NULL},
};

static ProtobufCFieldDescriptor req_fields[] = {
    {"a", 1, PROTOBUF_C_LABEL_REQUIRED, PROTOBUF_C_TYPE_UINT32, 0, offsetof(Req, a), NULL, NULL, 0,
     0, NULL, NULL},
    {"b", 2, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_STRING, 0, offsetof(Req, b), NULL, NULL, 0,
     0, NULL, NULL},
};

static ProtobufCEnumValue color_values[] = {
    {"RED", "COLOR_RED", 0}, {"GREEN", "COLOR_GREEN", 1}, {"BLUE", "COLOR_BLUE", 5}};
static ProtobufCEnumValueIndex color_by_name[] = {{"BLUE", 2}, {"GREEN", 1}, {"RED", 0}};
static ProtobufCIntRange color_ranges[] = {{0, 0}, {5, 2}, {0, 3}};

static void node_init(ProtobufCMessage *m)
{
    memset(m, 0, sizeof(Node));
    m->descriptor = &node_desc;
}

static void all_init(ProtobufCMessage *m)
{
    memset(m, 0, sizeof(All));
    m->descriptor = &all_desc;
    ((All *)m)->dflt = dflt_value;
}

static void req_init(ProtobufCMessage *m)
{
    memset(m, 0, sizeof(Req));
    m->descriptor = &req_desc;
}

static const ProtobufCFieldDescriptor *sort_fields;

static int by_name(const void *a, const void *b)
{
    return strcmp(sort_fields[*(const unsigned *)a].name, sort_fields[*(const unsigned *)b].name);
}

/* Fill in a message descriptor as protoc-c would: fields by number, an
 * index of them by name, and the runs of consecutive numbers. */
static void describe(ProtobufCMessageDescriptor *d, const char *name, size_t size,
                     ProtobufCFieldDescriptor *fields, unsigned n, ProtobufCMessageInit init)
{
    unsigned *idx = calloc(n, sizeof *idx);
    ProtobufCIntRange *ranges = calloc(n + 1, sizeof *ranges);
    unsigned nr = 0;
    for (unsigned i = 0; i < n; i++) {
        idx[i] = i;
        if (i && fields[i].id <= fields[i - 1].id) abort();
        if (!i || fields[i].id != fields[i - 1].id + 1) {
            ranges[nr].start_value = (int)fields[i].id;
            ranges[nr].orig_index = i;
            nr++;
        }
    }
    ranges[nr].start_value = 0;
    ranges[nr].orig_index = n;
    sort_fields = fields;
    qsort(idx, n, sizeof *idx, by_name);
    *d = (ProtobufCMessageDescriptor){
        .magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
        .name = name,
        .short_name = name,
        .c_name = name,
        .package_name = "",
        .sizeof_message = size,
        .n_fields = n,
        .fields = fields,
        .fields_sorted_by_name = idx,
        .n_field_ranges = nr,
        .field_ranges = ranges,
        .message_init = init,
    };
}

static int setup_schema(void **state)
{
    (void)state;
    color_desc = (ProtobufCEnumDescriptor){
        .magic = PROTOBUF_C__ENUM_DESCRIPTOR_MAGIC,
        .name = "Color",
        .short_name = "Color",
        .c_name = "Color",
        .package_name = "",
        .n_values = 3,
        .values = color_values,
        .n_value_names = 3,
        .values_by_name = color_by_name,
        .n_value_ranges = 2,
        .value_ranges = color_ranges,
    };
    for (size_t i = 0; i < sizeof all_fields / sizeof *all_fields; i++)
        if (all_fields[i].type == PROTOBUF_C_TYPE_ENUM) all_fields[i].descriptor = &color_desc;
    describe(&node_desc, "Node", sizeof(Node), node_fields, 2, node_init);
    describe(&all_desc, "All", sizeof(All), all_fields, sizeof all_fields / sizeof *all_fields,
             all_init);
    describe(&req_desc, "Req", sizeof(Req), req_fields, 2, req_init);
    return 0;
}

static int teardown_schema(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *ds[] = {&node_desc, &all_desc, &req_desc};
    for (int i = 0; i < 3; i++) {
        free((void *)ds[i]->fields_sorted_by_name);
        free((void *)ds[i]->field_ranges);
    }
    return 0;
}

/* ---- helpers ---- */

static size_t mem_before;

static int setup(void **state)
{
    (void)state;
    mem_before = pl_mem_used();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(pl_mem_used(), mem_before);
    return 0;
}

static ProtobufCMessage *decode(const ProtobufCMessageDescriptor *d, proto_enc enc,
                                const void *data, size_t len)
{
    ProtobufCMessage *m = NULL;
    char err[256];
    if (proto_decode(d, enc, data, len, &m, err, sizeof err) != PL_OK) {
        print_error("decode failed: %s\n  input: %.*s\n", err, (int)len, (const char *)data);
        fail();
    }
    return m;
}

static void assert_buf_eq(const buf *b, const char *s)
{
    size_t n = strlen(s);
    if (buf_size(b) != n || memcmp(buf_begin(b), s, n) != 0) {
        print_error("expected: %s\n     got: %.*s\n", s, (int)buf_size(b), (const char *)buf_begin(b));
        fail();
    }
}

/* s (canonical) decodes, and encodes back to s, directly and through
 * protobuf. */
static void roundtrip(const ProtobufCMessageDescriptor *d, const char *s)
{
    ProtobufCMessage *m = decode(d, PROTO_JSON, s, strlen(s));
    buf j = {0}, p = {0}, p2 = {0}, j2 = {0};
    proto_encode(m, PROTO_JSON, &j);
    assert_buf_eq(&j, s);
    proto_encode(m, PROTO_PB, &p);
    ProtobufCMessage *g = decode(d, PROTO_PB, buf_begin(&p), buf_size(&p));
    proto_encode(g, PROTO_PB, &p2);
    assert_int_equal(buf_size(&p), buf_size(&p2));
    assert_memory_equal(buf_begin(&p), buf_begin(&p2), buf_size(&p));
    proto_encode(g, PROTO_JSON, &j2);
    assert_buf_eq(&j2, s);
    proto_free(m);
    proto_free(g);
    buf_free(&j);
    buf_free(&p);
    buf_free(&p2);
    buf_free(&j2);
}

static void expect_error(const ProtobufCMessageDescriptor *d, proto_enc enc, const void *data,
                         size_t len, const char *want)
{
    ProtobufCMessage *m = (ProtobufCMessage *)0x1;
    char err[256] = "";
    pl_status st = proto_decode(d, enc, data, len, &m, err, sizeof err);
    if (st != PL_BAD_REQUEST || m != NULL || !strstr(err, want)) {
        print_error("input: %.*s\n  want error containing: %s\n  got status %d: %s\n",
                    (int)(len > 200 ? 200 : len), (const char *)data, want, (int)st, err);
        fail();
    }
}

/* ---- tests ---- */

static void test_all_types_roundtrip(void **state)
{
    (void)state;
    roundtrip(&all_desc, "{}");
    /* Extremes of every integer type; reals that need every digit. */
    roundtrip(&all_desc,
              "{\"i32\":-2147483648,\"s32\":2147483647,\"sf32\":-1,\"i64\":-9007199254740991,"
              "\"s64\":9007199254740991,\"sf64\":-9007199254740991,\"u32\":4294967295,"
              "\"f32\":4294967295,\"u64\":9007199254740991,\"f64\":9007199254740991,"
              "\"fl\":3.4028235e+38,\"db\":0.30000000000000004,\"b\":true,\"color\":\"BLUE\","
              "\"by\":\"AAEC/w==\",\"s\":\"\xe2\x82\xac\",\"node\":{\"v\":-7},\"dflt\":\"x\","
              "\"p3\":3,\"p3s\":\"q\"}");
    roundtrip(&all_desc,
              "{\"i32\":0,\"s32\":0,\"sf32\":0,\"i64\":0,\"s64\":0,\"sf64\":0,\"u32\":0,\"f32\":0,"
              "\"u64\":0,\"f64\":0,\"fl\":0,\"db\":0,\"b\":false,\"color\":\"RED\",\"by\":\"\"}");
    roundtrip(&all_desc, "{\"fl\":1.5,\"db\":-2.5e-300,\"by\":\"Zg==\"}");
    roundtrip(&all_desc, "{\"fl\":0.1,\"db\":1e+300,\"by\":\"Zm8=\"}");
    roundtrip(&all_desc, "{\"by\":\"Zm9v\",\"node\":{}}");
    /* Repeated of every type, and the oneof in each of its shapes. */
    roundtrip(&all_desc,
              "{\"r_i32\":[1,-2],\"r_s32\":[-3],\"r_sf32\":[4],\"r_i64\":[-5,6],\"r_s64\":[7],"
              "\"r_sf64\":[-8],\"r_u32\":[9],\"r_f32\":[10],\"r_u64\":[11,12,13],\"r_f64\":[14],"
              "\"r_fl\":[1.25],\"r_db\":[2.5,3],\"r_b\":[true,false],\"r_color\":[\"GREEN\",\"RED\"],"
              "\"r_by\":[\"\",\"YQ==\"],\"r_s\":[\"a\",\"\",\"c\"],\"r_node\":[{\"v\":1},{},"
              "{\"child\":{\"v\":2}}],\"p_s\":\"pick\"}");
    roundtrip(&all_desc, "{\"p_node\":{\"v\":1}}");
    roundtrip(&all_desc, "{\"p_node\":{}}");
    roundtrip(&all_desc, "{\"p_u\":0}");
    roundtrip(&all_desc, "{\"p_s\":\"\"}");
    roundtrip(&req_desc, "{\"a\":0}");
    roundtrip(&req_desc, "{\"a\":1,\"b\":\"x\"}");
}

/* What decodes to what: numbers for enums and reals, defaults, proto3
 * zeros. */
static void test_values(void **state)
{
    (void)state;
    const char *s = "{\"color\":5,\"fl\":2,\"db\":-3,\"r_color\":[1,7],\"p3\":0,\"p3s\":\"\"}";
    All *a = (All *)decode(&all_desc, PROTO_JSON, s, strlen(s));
    assert_int_equal(a->color, 5);
    assert_true(a->has_color);
    assert_true(a->fl == 2.0f);
    assert_true(a->db == -3.0);
    assert_int_equal(a->n_r_color, 2);
    assert_int_equal(a->r_color[1], 7);
    assert_ptr_equal(a->dflt, dflt_value);
    buf j = {0};
    proto_encode(&a->base, PROTO_JSON, &j);
    /* An enum number without a name stays a number; proto3 zeros and the
     * default string are not written. */
    assert_buf_eq(&j, "{\"fl\":2,\"db\":-3,\"color\":\"BLUE\",\"r_color\":[\"GREEN\",7]}");
    proto_free(&a->base);

    /* Bytes: every length modulo 3, all byte values. */
    for (size_t n = 0; n < 300; n += 1) {
        All in;
        all_init(&in.base);
        uint8_t data[300];
        for (size_t i = 0; i < n; i++) data[i] = (uint8_t)(i * 7 + n);
        in.has_by = 1;
        in.by.len = n;
        in.by.data = data;
        buf_reset(&j);
        proto_encode(&in.base, PROTO_JSON, &j);
        All *out = (All *)decode(&all_desc, PROTO_JSON, buf_begin(&j), buf_size(&j));
        assert_int_equal(out->by.len, n);
        if (n) assert_memory_equal(out->by.data, data, n);
        proto_free(&out->base);
    }

    /* Non-finite reals in a hand-built message are written as null. */
    All in;
    all_init(&in.base);
    in.has_db = 1;
    in.db = INFINITY;
    in.has_fl = 1;
    in.fl = NAN;
    buf_reset(&j);
    proto_encode(&in.base, PROTO_JSON, &j);
    assert_buf_eq(&j, "{\"fl\":null,\"db\":null}");
    /* ... and refused in protobuf input. */
    buf p = {0};
    proto_encode(&in.base, PROTO_PB, &p);
    expect_error(&all_desc, PROTO_PB, buf_begin(&p), buf_size(&p), "field \"fl\" of All: not a finite number");

    /* A 64-bit value beyond 2^53 in protobuf input, signed and unsigned,
     * repeated and nested. */
    all_init(&in.base);
    in.has_i64 = 1;
    in.i64 = -9007199254740992LL;
    buf_reset(&p);
    proto_encode(&in.base, PROTO_PB, &p);
    expect_error(&all_desc, PROTO_PB, buf_begin(&p), buf_size(&p), "-9007199254740992 is out of range");
    all_init(&in.base);
    uint64_t big[] = {1, 1ULL << 60};
    in.n_r_f64 = 2;
    in.r_f64 = big;
    buf_reset(&p);
    proto_encode(&in.base, PROTO_PB, &p);
    expect_error(&all_desc, PROTO_PB, buf_begin(&p), buf_size(&p), "field \"r_f64[1]\" of All");
    buf_free(&p);
    buf_free(&j);
}

static void test_bad_values(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"{\"i32\":2147483648}", "2147483648 is out of range for int32"},
        {"{\"s32\":-2147483649}", "out of range for sint32"},
        {"{\"sf32\":1.5}", "expected an integer, got a real"},
        {"{\"u32\":-1}", "-1 is out of range for uint32"},
        {"{\"f32\":4294967296}", "out of range for fixed32"},
        {"{\"i64\":9007199254740992}", "out of range for int64"},
        {"{\"i64\":-9007199254740992}", "-9007199254740992 is out of range for int64"},
        {"{\"s64\":-9223372036854775808}", "out of range for sint64"},
        {"{\"sf64\":9007199254740992}", "below 2^53"},
        {"{\"u64\":-1}", "out of range for uint64"},
        {"{\"f64\":9007199254740992}", "out of range for fixed64"},
        {"{\"fl\":1e39}", "out of range for float"},
        {"{\"fl\":\"1\"}", "field \"fl\" of All: expected a number, got a string"},
        {"{\"db\":true}", "expected a number"},
        {"{\"db\":1e999}", "invalid JSON"},
        {"{\"b\":0}", "expected true or false"},
        {"{\"color\":\"PURPLE\"}", "\"PURPLE\" is not a value of Color"},
        {"{\"color\":\"red\"}", "is not a value of Color"},
        {"{\"color\":2147483648}", "out of range for enum"},
        {"{\"color\":1.0}", "expected the name (a string) or number of an enum value"},
        {"{\"by\":\"Zg\"}", "invalid base64"},
        {"{\"by\":\"Zg=\"}", "invalid base64"},
        {"{\"by\":\"Zh==\"}", "invalid base64"},
        {"{\"by\":\"Zm9=\"}", "invalid base64"},
        {"{\"by\":\"Z===\"}", "invalid base64"},
        {"{\"by\":\"====\"}", "invalid base64"},
        {"{\"by\":\"Zg==Zg==\"}", "invalid base64"},
        {"{\"by\":\"Zm-v\"}", "invalid base64"},
        {"{\"by\":\"Zm_v\"}", "invalid base64"},
        {"{\"by\":\"Zm9v \"}", "invalid base64"},
        {"{\"by\":5}", "expected a base64 string"},
        {"{\"r_by\":[\"YQ==\",\"Y\"]}", "field \"r_by[1]\" of All: invalid base64"},
        {"{\"r_node\":[{},{\"v\":\"x\"}]}", "field \"v\" of Node: expected an integer, got a string (at r_node[1].v)"},
        {"{\"r_node\":[{},5]}", "field \"r_node[1]\" of All: expected an object"},
        {"{\"node\":{\"child\":{\"child\":{\"w\":1}}}}", "unknown field \"w\" in Node (at node.child.child)"},
        {"{\"p_s\":\"a\",\"p_u\":1}", "fields \"p_s\" and \"p_u\" of All"},
        {"{\"p_node\":{},\"p_s\":null,\"p_u\":3}", "at most one may be set"},
        {"{\"p_node\":{\"v\":\"bad\"}}", "field \"v\" of Node: expected an integer"},
        {"{\"r_s\":[\"a\",{}]}", "field \"r_s[1]\" of All: expected a string, got an object"},
        {"{\"r_u32\":[1,-1]}", "field \"r_u32[1]\" of All: -1 is out of range for uint32"},
        {"{\"r_b\":[true,null]}", "null is not allowed"},
        {"{\"r_i32\":{}}", "expected an array, got an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_error(&all_desc, PROTO_JSON, cases[i].in, strlen(cases[i].in), cases[i].want);

    expect_error(&req_desc, PROTO_JSON, "{}", 2, "field \"a\" of Req: missing");
    expect_error(&req_desc, PROTO_JSON, "{\"a\":null,\"b\":\"x\"}", 18, "field \"a\" of Req: missing");
    /* Req with only b (2: "x") in protobuf. */
    static const uint8_t only_b[] = {0x12, 0x01, 'x'};
    expect_error(&req_desc, PROTO_PB, only_b, sizeof only_b, "field \"a\" of Req: missing required field");
}

/* Nodes nested n deep: {"child":{"child":...{"v":1}...}}. */
static void nested_json(buf *s, int n)
{
    for (int i = 1; i < n; i++) buf_appends(s, "{\"child\":");
    buf_appends(s, "{\"v\":1}");
    for (int i = 1; i < n; i++) buf_appendc(s, '}');
}

/* The same in protobuf, written from the inside out, back to front. */
static void nested_pb(buf *s, int n)
{
    size_t cap = (size_t)n * 7 + 2, start = cap;
    uint8_t *tmp = malloc(cap);
    tmp[--start] = 0x01;   /* v = 1 */
    tmp[--start] = 0x10;
    for (int i = 1; i < n; i++) {
        size_t len = cap - start;
        uint8_t v[10];
        size_t k = 0;
        while (len >= 0x80) {
            v[k++] = (uint8_t)(len | 0x80);
            len >>= 7;
        }
        v[k++] = (uint8_t)len;
        start -= k;
        memcpy(tmp + start, v, k);
        tmp[--start] = 0x0a;   /* child, length-delimited */
    }
    buf_append(s, tmp + start, cap - start);
    free(tmp);
}

static void test_depth(void **state)
{
    (void)state;
    buf s = {0};
    nested_json(&s, PROTO_MAX_DEPTH);
    ProtobufCMessage *m = decode(&node_desc, PROTO_JSON, buf_begin(&s), buf_size(&s));
    buf p = {0};
    proto_encode(m, PROTO_PB, &p);
    proto_free(m);
    m = decode(&node_desc, PROTO_PB, buf_begin(&p), buf_size(&p));
    proto_free(m);

    buf_reset(&s);
    nested_json(&s, PROTO_MAX_DEPTH + 1);
    expect_error(&node_desc, PROTO_JSON, buf_begin(&s), buf_size(&s),
                 "field \"child\" of Node: messages nest deeper than 32 levels (at child.child.");
    buf_reset(&p);
    nested_pb(&p, PROTO_MAX_DEPTH + 1);
    expect_error(&node_desc, PROTO_PB, buf_begin(&p), buf_size(&p),
                 "messages nest deeper than 32 levels");
    buf_reset(&p);
    nested_pb(&p, PROTO_MAX_DEPTH);
    m = decode(&node_desc, PROTO_PB, buf_begin(&p), buf_size(&p));
    proto_free(m);
    /* Far deeper than any stack would survive if protobuf-c recursed into
     * it: refused before unpack. */
    buf_reset(&p);
    nested_pb(&p, 200000);
    expect_error(&node_desc, PROTO_PB, buf_begin(&p), buf_size(&p),
                 "messages nest deeper than 32 levels");

    /* Through a repeated field and a oneof too: All is level 1. */
    buf_reset(&s);
    buf_appends(&s, "{\"r_node\":[{},");
    nested_json(&s, PROTO_MAX_DEPTH);
    buf_appends(&s, "]}");
    expect_error(&all_desc, PROTO_JSON, buf_begin(&s), buf_size(&s), "(at r_node[1].child.");
    buf_reset(&s);
    buf_appends(&s, "{\"p_node\":");
    nested_json(&s, PROTO_MAX_DEPTH - 1);
    buf_appends(&s, "}");
    m = decode(&all_desc, PROTO_JSON, buf_begin(&s), buf_size(&s));
    proto_free(m);
    buf_free(&s);
    buf_free(&p);
}

/* A failure at every point of a large message leaves nothing allocated:
 * the partial message is freed whole.  Each case breaks one value late in
 * an otherwise valid object. */
static void test_partial_free(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "{\"s\":\"a\",\"r_s\":[\"a\",\"b\",3]}",
        "{\"r_node\":[{\"child\":{\"v\":1}},{\"child\":{\"v\":\"x\"}}]}",
        "{\"p_node\":{\"child\":{}},\"node\":{\"v\":1},\"r_by\":[\"YQ==\",\"!\"]}",
        "{\"p_s\":\"abc\",\"r_node\":[{}],\"by\":\"Zg\"}",
        "{\"by\":\"YWJj\",\"r_by\":[\"YQ==\"],\"r_u64\":[1,2],\"zzz\":1}",
        "{\"dflt\":\"x\",\"node\":{\"child\":{\"child\":{\"z\":1}}}}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_error(&all_desc, PROTO_JSON, cases[i], strlen(cases[i]), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_all_types_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_free, setup, teardown),
    };
    return cmocka_run_group_tests(tests, setup_schema, teardown_schema);
}
