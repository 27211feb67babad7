/*
 * test_codec.c - the frame codec (src/proto/codec.h) over parley.proto.
 *
 * Round trips of every Frame body in both encodings, the exact examples of
 * SPEC section 3, tables of malformed JSON and protobuf input each with the
 * reason expected in the error, truncation at every position, and the
 * accounting of memory: after proto_free, pl_mem_used is back where it was.
 * Every decode is done again into an arena (proto_frame_decode_in), which
 * must agree with the heap decode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/mem.h"
#include "proto/codec.h"

/* ---- helpers ---- */

static size_t mem_before;

static int setup(void **state)
{
    (void)state;
    mem_before = pl_mem_used();
    return 0;
}

/* Every test ends with everything allocated through core/mem.h freed. */
static int teardown(void **state)
{
    (void)state;
    assert_int_equal(pl_mem_used(), mem_before);
    return 0;
}

/* Whether the buf holds exactly the string s. */
static void assert_buf_eq(const buf *b, const char *s)
{
    size_t n = strlen(s);
    if (buf_size(b) != n || memcmp(buf_begin(b), s, n) != 0) {
        print_error("expected: %s\n     got: %.*s\n", s, (int)buf_size(b), (const char *)buf_begin(b));
        fail();
    }
}

/* Decode into an arena too (proto_frame_decode_in) and check that it
 * agrees with the heap decode: the same status and reason, and for a frame
 * the same protobuf bytes.  Every decode of these tests goes through it,
 * so each case checks both allocators; afterwards the arena gives back
 * all it took. */
static void check_arena_agrees(proto_enc enc, const void *data, size_t len, pl_status want_st,
                               const char *want_err, const Parley__Frame *want)
{
    size_t before = pl_mem_used();
    arena a = {0};
    Parley__Frame *f = (Parley__Frame *)0x1;
    char err[256] = "";
    pl_status st = proto_frame_decode_in(&a, enc, data, len, &f, err, sizeof err);
    assert_int_equal(st, want_st);
    if (st != PL_OK) {
        assert_null(f);
        assert_string_equal(err, want_err);
    } else {
        buf x = {0}, y = {0};
        proto_frame_encode(want, PROTO_PB, &x);
        proto_frame_encode(f, PROTO_PB, &y);
        assert_int_equal(buf_size(&x), buf_size(&y));
        assert_memory_equal(buf_begin(&x), buf_begin(&y), buf_size(&x));
        buf_free(&x);
        buf_free(&y);
    }
    arena_free(&a);
    arena_trim();
    assert_int_equal(pl_mem_used(), before);
}

static Parley__Frame *decode_ok(proto_enc enc, const void *data, size_t len)
{
    Parley__Frame *f = NULL;
    char err[256];
    pl_status st = proto_frame_decode(enc, data, len, &f, err, sizeof err);
    if (st != PL_OK) {
        print_error("decode failed: %s\n  input: %.*s\n", err, (int)len, (const char *)data);
        fail();
    }
    assert_non_null(f);
    check_arena_agrees(enc, data, len, PL_OK, NULL, f);
    return f;
}

/* Decode s, which must be in canonical form, and check that it comes back
 * byte for byte from JSON, and from JSON after a trip through protobuf. */
static void roundtrip_json(const char *s)
{
    Parley__Frame *f = decode_ok(PROTO_JSON, s, strlen(s));
    buf j = {0}, p = {0}, p2 = {0}, j2 = {0};
    proto_frame_encode(f, PROTO_JSON, &j);
    assert_buf_eq(&j, s);

    proto_frame_encode(f, PROTO_PB, &p);
    Parley__Frame *g = decode_ok(PROTO_PB, buf_begin(&p), buf_size(&p));
    proto_frame_encode(g, PROTO_PB, &p2);
    assert_int_equal(buf_size(&p2), buf_size(&p));
    assert_memory_equal(buf_begin(&p2), buf_begin(&p), buf_size(&p));
    proto_frame_encode(g, PROTO_JSON, &j2);
    assert_buf_eq(&j2, s);

    proto_free(&f->base);
    proto_free(&g->base);
    buf_free(&j);
    buf_free(&j2);
    buf_free(&p);
    buf_free(&p2);
}

/* Decoding data must fail with a reason that contains want. */
static void expect_error(proto_enc enc, const void *data, size_t len, const char *want)
{
    Parley__Frame *f = (Parley__Frame *)0x1;
    char err[256] = "";
    pl_status st = proto_frame_decode(enc, data, len, &f, err, sizeof err);
    if (st != PL_BAD_REQUEST || f != NULL || !strstr(err, want)) {
        print_error("input: %.*s\n  want error containing: %s\n  got status %d: %s\n",
                    (int)(len > 200 ? 200 : len), (const char *)data, want, (int)st, err);
        if (f && f != (Parley__Frame *)0x1) proto_free(&f->base);
        fail();
    }
    /* The reason is one line of printable ASCII. */
    for (const char *p = err; *p; p++) assert_true(*p >= 0x20 && *p < 0x7f);
    check_arena_agrees(enc, data, len, st, err, NULL);
}

/* ---- round trips ---- */

/* One canonical JSON frame for every body of parley.proto's Frame, with
 * representative values: all fields set where it makes sense, unicode,
 * escapes, the largest integers, nested repeated entries. */
static const char *const frames[] = {
    "{\"id\":1,\"login\":{\"token\":\"t0k.en\",\"user\":\"alice\",\"password\":\"p\\\"w\\\\d\","
    "\"tenant\":\"default\",\"device\":\"web\",\"device_id\":\"d-1\"}}",
    "{\"id\":1,\"login_ok\":{\"user\":\"alice\",\"session\":\"s1\",\"useq\":9007199254740991,"
    "\"server_ts\":1763800000123,\"tenant\":\"default\"}}",
    "{\"id\":2,\"logout\":{}}",
    "{\"id\":2,\"logout_ok\":{}}",
    "{\"id\":3,\"ping\":{}}",
    "{\"id\":3,\"pong\":{\"server_ts\":1763800000123}}",
    "{\"id\":7,\"send\":{\"to\":\"bob\",\"text\":\"h\xc3\xa9llo \xf0\x9f\x91\x8b \xe4\xb8\x96\xe7\x95\x8c"
    " \\u0001\\u001f\\u000a\\\"\",\"cmid\":\"a1\"}}",
    "{\"id\":7,\"send\":{\"group\":\"g1\",\"text\":\"hi\",\"cmid\":\"a2\"}}",
    "{\"id\":7,\"send_ok\":{\"conv\":\"dm:alice:bob\",\"seq\":42,\"ts\":1763800000123,\"useq\":0}}",
    "{\"id\":9,\"sync\":{\"useq\":100,\"channels\":[{\"group\":\"c1\",\"seq\":5},{\"group\":\"c2\"}],"
    "\"limit\":4294967295}}",
    "{\"id\":9,\"sync_ok\":{\"entries\":[{\"useq\":101,\"msg\":{\"conv\":\"dm:alice:bob\",\"seq\":1,"
    "\"useq\":101,\"from\":\"bob\",\"text\":\"\xce\xb1\xce\xb2\xce\xb3\",\"ts\":1,\"cmid\":\"x\"}},"
    "{\"useq\":102,\"event\":{\"kind\":\"group_joined\",\"conv\":\"g:g1\",\"seq\":3,\"user\":\"alice\","
    "\"group\":\"g1\",\"ts\":2,\"useq\":102}},{\"useq\":103}],\"more\":true,\"channels\":[{\"group\":"
    "\"c1\",\"msgs\":[{\"conv\":\"g:c1\",\"seq\":6,\"from\":\"carol\",\"text\":\"yo\",\"ts\":3},"
    "{\"conv\":\"g:c1\",\"seq\":7}],\"more\":false},{\"group\":\"c2\"}],\"useq\":103}}",
    "{\"id\":10,\"history\":{\"conv\":\"g:g1\",\"before_seq\":0,\"limit\":50}}",
    "{\"id\":10,\"history_ok\":{\"msgs\":[{\"conv\":\"g:g1\",\"seq\":2,\"text\":\"b\"},{\"conv\":"
    "\"g:g1\",\"seq\":1,\"text\":\"a\"}]}}",
    "{\"id\":11,\"read\":{\"conv\":\"dm:alice:bob\",\"seq\":42}}",
    "{\"id\":11,\"read_ok\":{}}",
    "{\"typing\":{\"conv\":\"g:g1\",\"from\":\"bob\"}}",
    "{\"id\":12,\"presence_sub\":{\"users\":[\"bob\",\"carol\",\"\"]}}",
    "{\"id\":12,\"presence_sub_ok\":{\"presences\":[{\"user\":\"bob\",\"online\":true},{\"user\":"
    "\"carol\",\"online\":false,\"last_seen\":1763800000000}]}}",
    "{\"msg\":{\"conv\":\"dm:alice:bob\",\"seq\":43,\"useq\":7,\"from\":\"alice\",\"text\":\"hi\","
    "\"ts\":1763800000124,\"cmid\":\"a1\"}}",
    "{\"event\":{\"kind\":\"friend_request\",\"user\":\"dave\",\"ts\":5,\"useq\":8}}",
    "{\"receipt\":{\"conv\":\"dm:alice:bob\",\"user\":\"bob\",\"seq\":43,\"ts\":9}}",
    "{\"presence\":{\"user\":\"bob\",\"online\":false,\"last_seen\":1763800000999}}",
    "{\"kicked\":{\"reason\":\"another login on web\"}}",
    "{\"goaway\":{\"url\":\"ws://10.0.0.2:8080/v1/ws\",\"reason\":\"shutdown\"}}",
    "{\"id\":20,\"group_create\":{\"group\":\"team\",\"name\":\"T\xc3\xa9" "am\",\"kind\":\"group\","
    "\"members\":[\"bob\",\"carol\"],\"admins_post_only\":false,\"owner\":\"alice\"}}",
    "{\"id\":20,\"group_create_ok\":{\"group\":\"team\",\"name\":\"Team\",\"kind\":\"group\","
    "\"owner\":\"alice\",\"members\":3,\"created_at\":1763800000123,\"admins_post_only\":false,"
    "\"role\":\"owner\"}}",
    "{\"id\":21,\"group_info\":{\"group\":\"news\"}}",
    "{\"id\":21,\"group_info_ok\":{\"group\":\"news\",\"kind\":\"channel\",\"members\":100000,"
    "\"admins_post_only\":true,\"last_seq\":9007199254740991}}",
    "{\"id\":22,\"group_join\":{\"group\":\"news\"}}",
    "{\"id\":22,\"group_join_ok\":{\"group\":\"news\",\"role\":\"member\"}}",
    "{\"id\":23,\"group_leave\":{\"group\":\"news\"}}",
    "{\"id\":23,\"group_leave_ok\":{}}",
    "{\"id\":24,\"group_members\":{\"group\":\"team\",\"after\":\"bob\",\"limit\":100}}",
    "{\"id\":24,\"group_members_ok\":{\"members\":[{\"user\":\"carol\",\"role\":\"admin\","
    "\"joined_at\":5},{\"user\":\"dave\",\"role\":\"member\"}],\"more\":true}}",
    "{\"id\":25,\"group_add\":{\"group\":\"team\",\"users\":[\"erin\",\"frank\"],\"role\":\"admin\"}}",
    "{\"id\":25,\"group_add_ok\":{\"added\":2,\"group\":{\"group\":\"team\",\"members\":5}}}",
    "{\"id\":26,\"group_remove\":{\"group\":\"team\",\"user\":\"erin\"}}",
    "{\"id\":26,\"group_remove_ok\":{}}",
    "{\"id\":27,\"group_role\":{\"group\":\"team\",\"user\":\"frank\",\"role\":\"member\"}}",
    "{\"id\":27,\"group_role_ok\":{}}",
    "{\"id\":28,\"group_disband\":{\"group\":\"team\"}}",
    "{\"id\":28,\"group_disband_ok\":{}}",
    "{\"id\":29,\"friend\":{\"user\":\"bob\",\"action\":\"request\"}}",
    "{\"id\":29,\"friend_ok\":{\"user\":\"bob\",\"state\":\"requested\"}}",
    "{\"id\":30,\"friend_list\":{}}",
    "{\"id\":30,\"friend_list_ok\":{\"friends\":[{\"user\":\"bob\",\"state\":\"friends\",\"since\":7,"
    "\"online\":false,\"last_seen\":8}]}}",
    "{\"id\":31,\"home\":{\"limit\":1000}}",
    "{\"id\":31,\"home_ok\":{\"convs\":[{\"conv\":\"dm:alice:bob\",\"kind\":\"dm\",\"peer\":\"bob\","
    "\"last\":{\"conv\":\"dm:alice:bob\",\"seq\":3,\"from\":\"bob\",\"text\":\"x\",\"ts\":9},"
    "\"read_seq\":1,\"unread\":2,\"active_ts\":9},{\"conv\":\"g:news\",\"kind\":\"channel\","
    "\"peer\":\"news\",\"name\":\"News\",\"role\":\"member\"}],\"more\":false}}",
    "{\"id\":32,\"channel_search\":{\"q\":\"ne\",\"limit\":20}}",
    "{\"id\":32,\"channel_search_ok\":{\"groups\":[{\"group\":\"news\",\"name\":\"News\"}]}}",
    "{\"id\":33,\"my_groups\":{}}",
    "{\"id\":33,\"my_groups_ok\":{}}",
    "{\"id\":8,\"error\":{\"code\":\"rate_limited\",\"message\":\"slow down\",\"retry_after_ms\":800}}",
    "{\"id\":0,\"error\":{}}",
};

static void test_roundtrip_every_body(void **state)
{
    (void)state;
    /* Every body of the schema appears in the table. */
    const ProtobufCMessageDescriptor *d = &parley__frame__descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (!(fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) continue;
        char key[64];
        snprintf(key, sizeof key, "\"%s\":{", fd->name);
        bool found = false;
        for (size_t k = 0; k < sizeof frames / sizeof *frames && !found; k++)
            found = strstr(frames[k], key) != NULL;
        if (!found) print_error("no round trip for body %s\n", fd->name);
        assert_true(found);
    }
    for (size_t k = 0; k < sizeof frames / sizeof *frames; k++) roundtrip_json(frames[k]);
}

/* A message of 10,000 code points of four bytes each, and long ids. */
static void test_roundtrip_max_lengths(void **state)
{
    (void)state;
    buf s = {0};
    buf_appends(&s, "{\"id\":9007199254740991,\"msg\":{\"conv\":\"dm:");
    for (int i = 0; i < 64; i++) buf_appendc(&s, 'a');
    buf_appends(&s, ":");
    for (int i = 0; i < 64; i++) buf_appendc(&s, 'b');
    buf_appends(&s, "\",\"seq\":9007199254740991,\"text\":\"");
    for (int i = 0; i < 10000; i++) buf_append(&s, "\xf0\x9f\x98\x80", 4);
    buf_appends(&s, "\",\"ts\":9007199254740991}}");
    buf_appendc(&s, 0);
    roundtrip_json((const char *)buf_begin(&s));
    buf_free(&s);
}

/* SyncOk with many entries, each with a message, and many channels. */
static void test_roundtrip_big_sync(void **state)
{
    (void)state;
    buf s = {0};
    buf_appends(&s, "{\"id\":4,\"sync_ok\":{\"entries\":[");
    for (int i = 0; i < 1000; i++)
        buf_printf(&s,
                   "%s{\"useq\":%d,\"msg\":{\"conv\":\"dm:a:b\",\"seq\":%d,\"from\":\"a\",\"text\":"
                   "\"m%d \xe2\x9c\x93\",\"ts\":%d}}",
                   i ? "," : "", i + 1, i + 1, i, 1000 + i);
    buf_appends(&s, "],\"more\":true,\"channels\":[");
    for (int c = 0; c < 50; c++) {
        buf_printf(&s, "%s{\"group\":\"c%d\",\"msgs\":[", c ? "," : "", c);
        for (int i = 0; i < 20; i++)
            buf_printf(&s, "%s{\"conv\":\"g:c%d\",\"seq\":%d,\"text\":\"t\"}", i ? "," : "", c, i + 1);
        buf_appends(&s, "],\"more\":true}");
    }
    buf_appends(&s, "],\"useq\":1000}}");
    buf_appendc(&s, 0);
    roundtrip_json((const char *)buf_begin(&s));
    buf_free(&s);
}

/* ---- SPEC section 3 ---- */

/* The examples as printed in the SPEC, with spaces; the encoder writes the
 * same without them. */
static void test_spec_examples(void **state)
{
    (void)state;
    static const char *const spec[][2] = {
        {"{\"id\": 7, \"send\": {\"to\": \"bob\", \"text\": \"hi\", \"cmid\": \"a1\"}}",
         "{\"id\":7,\"send\":{\"to\":\"bob\",\"text\":\"hi\",\"cmid\":\"a1\"}}"},
        {"{\"id\": 7, \"send_ok\": {\"conv\": \"dm:alice:bob\", \"seq\": 42, \"ts\": 1763800000123}}",
         "{\"id\":7,\"send_ok\":{\"conv\":\"dm:alice:bob\",\"seq\":42,\"ts\":1763800000123}}"},
        {"{\"id\": 8, \"error\": {\"code\": \"rate_limited\", \"message\": \"...\", "
         "\"retry_after_ms\": 800}}",
         "{\"id\":8,\"error\":{\"code\":\"rate_limited\",\"message\":\"...\",\"retry_after_ms\":800}}"},
    };
    for (size_t i = 0; i < sizeof spec / sizeof *spec; i++) {
        Parley__Frame *f = decode_ok(PROTO_JSON, spec[i][0], strlen(spec[i][0]));
        buf j = {0};
        proto_frame_encode(f, PROTO_JSON, &j);
        assert_buf_eq(&j, spec[i][1]);
        buf_free(&j);
        proto_free(&f->base);
        roundtrip_json(spec[i][1]);
    }
    /* And the decoded values are the right ones. */
    const char *s = spec[1][0];
    Parley__Frame *f = decode_ok(PROTO_JSON, s, strlen(s));
    assert_true(f->has_id);
    assert_int_equal(f->id, 7);
    assert_int_equal(f->body_case, PARLEY__FRAME__BODY_SEND_OK);
    assert_string_equal(f->send_ok->conv, "dm:alice:bob");
    assert_true(f->send_ok->has_seq);
    assert_int_equal(f->send_ok->seq, 42);
    assert_int_equal(f->send_ok->ts, 1763800000123ULL);
    assert_false(f->send_ok->has_useq);
    assert_string_equal(proto_body_name(f->body_case), "send_ok");
    proto_free(&f->base);
}

/* ---- details of the JSON mapping ---- */

static void test_json_details(void **state)
{
    (void)state;
    /* Escapes in: every JSON escape decodes; out: only \" \\ and \u00XX. */
    const char *in = "{\"send\":{\"text\":\"a\\n\\t\\r\\b\\f\\/\\u00e9\\ud83d\\ude00\\\"\\\\\"}}";
    Parley__Frame *f = decode_ok(PROTO_JSON, in, strlen(in));
    assert_string_equal(f->send->text, "a\n\t\r\b\f/\xc3\xa9\xf0\x9f\x98\x80\"\\");
    buf j = {0};
    proto_frame_encode(f, PROTO_JSON, &j);
    assert_buf_eq(&j, "{\"send\":{\"text\":\"a\\u000a\\u0009\\u000d\\u0008\\u000c/\xc3\xa9\xf0\x9f\x98\x80"
                      "\\\"\\\\\"}}");
    proto_free(&f->base);

    /* Whitespace everywhere JSON allows it; null is absent, also in the
     * oneof; integers as large as allowed. */
    in = " {\r\n\t\"id\" : 9007199254740991 , \"ping\" : null , \"pong\" : { \"server_ts\" : null } "
         "}\n ";
    f = decode_ok(PROTO_JSON, in, strlen(in));
    assert_int_equal(f->body_case, PARLEY__FRAME__BODY_PONG);
    assert_false(f->pong->has_server_ts);
    buf_reset(&j);
    proto_frame_encode(f, PROTO_JSON, &j);
    assert_buf_eq(&j, "{\"id\":9007199254740991,\"pong\":{}}");
    proto_free(&f->base);

    /* Encoding appends to what the buf already holds. */
    buf_reset(&j);
    buf_appends(&j, "xy");
    in = "{\"ping\":{}}";
    f = decode_ok(PROTO_JSON, in, strlen(in));
    proto_frame_encode(f, PROTO_JSON, &j);
    assert_buf_eq(&j, "xy{\"ping\":{}}");
    size_t before = buf_size(&j);
    proto_frame_encode(f, PROTO_PB, &j);
    assert_true(buf_size(&j) > before);
    assert_memory_equal(buf_begin(&j), "xy{\"ping\":{}}", before);
    Parley__Frame *g = decode_ok(PROTO_PB, buf_begin(&j) + before, buf_size(&j) - before);
    assert_int_equal(g->body_case, PARLEY__FRAME__BODY_PING);
    proto_free(&g->base);
    proto_free(&f->base);
    buf_free(&j);
}

/* Frames built by hand: an Empty body set by pointer, and one whose case
 * is set with a NULL pointer, both encode as {} in JSON and as a present
 * (empty) body in protobuf. */
static void test_encode_hand_built(void **state)
{
    (void)state;
    Parley__Empty empty = PARLEY__EMPTY__INIT;
    Parley__Frame fr = PARLEY__FRAME__INIT;
    fr.has_id = 1;
    fr.id = 5;
    fr.body_case = PARLEY__FRAME__BODY_READ_OK;
    fr.read_ok = &empty;
    buf j = {0}, p = {0};
    proto_frame_encode(&fr, PROTO_JSON, &j);
    assert_buf_eq(&j, "{\"id\":5,\"read_ok\":{}}");
    proto_frame_encode(&fr, PROTO_PB, &p);
    Parley__Frame *g = decode_ok(PROTO_PB, buf_begin(&p), buf_size(&p));
    assert_int_equal(g->body_case, PARLEY__FRAME__BODY_READ_OK);
    assert_non_null(g->read_ok);
    proto_free(&g->base);

    fr.logout_ok = NULL;
    fr.body_case = PARLEY__FRAME__BODY_LOGOUT_OK;
    buf_reset(&j);
    buf_reset(&p);
    proto_frame_encode(&fr, PROTO_JSON, &j);
    assert_buf_eq(&j, "{\"id\":5,\"logout_ok\":{}}");
    proto_frame_encode(&fr, PROTO_PB, &p);
    g = decode_ok(PROTO_PB, buf_begin(&p), buf_size(&p));
    assert_int_equal(g->body_case, PARLEY__FRAME__BODY_LOGOUT_OK);
    proto_free(&g->base);

    /* Unset fields stay out; a set empty string stays in. */
    Parley__Send send = PARLEY__SEND__INIT;
    send.text = "";
    fr.has_id = 0;
    fr.body_case = PARLEY__FRAME__BODY_SEND;
    fr.send = &send;
    buf_reset(&j);
    proto_frame_encode(&fr, PROTO_JSON, &j);
    assert_buf_eq(&j, "{\"send\":{\"text\":\"\"}}");

    /* Every control character is escaped as \u00XX. */
    char ctl[33];
    for (int i = 1; i < 32; i++) ctl[i - 1] = (char)i;
    ctl[31] = 0x7f;
    ctl[32] = 0;
    send.text = ctl;
    buf_reset(&j);
    proto_frame_encode(&fr, PROTO_JSON, &j);
    assert_buf_eq(&j, "{\"send\":{\"text\":\"\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\u0008"
                      "\\u0009\\u000a\\u000b\\u000c\\u000d\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013"
                      "\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e"
                      "\\u001f\x7f\"}}");
    g = decode_ok(PROTO_JSON, buf_begin(&j), buf_size(&j));
    assert_string_equal(g->send->text, ctl);
    proto_free(&g->base);
    buf_free(&j);
    buf_free(&p);
}

static void test_body_names(void **state)
{
    (void)state;
    assert_string_equal(proto_body_name(PARLEY__FRAME__BODY_SEND), "send");
    assert_string_equal(proto_body_name(PARLEY__FRAME__BODY_LOGIN_OK), "login_ok");
    assert_string_equal(proto_body_name(PARLEY__FRAME__BODY_READ_OK), "read_ok");
    assert_string_equal(proto_body_name(PARLEY__FRAME__BODY_ERROR), "error");
    assert_string_equal(proto_body_name(PARLEY__FRAME__BODY__NOT_SET), "");
    assert_string_equal(proto_body_name((Parley__Frame__BodyCase)1), "");   /* id */
    assert_string_equal(proto_body_name((Parley__Frame__BodyCase)999), "");
    assert_string_equal(proto_body_name((Parley__Frame__BodyCase)-1), "");
}

/* Every message of the schema lists its fields by increasing number: the
 * JSON encoder relies on it for field-number order. */
static void test_descriptor_order(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *all[] = {
        &parley__frame__descriptor,  &parley__sync_ok__descriptor, &parley__msg__descriptor,
        &parley__login__descriptor,  &parley__error__descriptor,   &parley__entry__descriptor,
        &parley__tenant__descriptor, &parley__user__descriptor,
    };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        for (unsigned k = 1; k < all[i]->n_fields; k++)
            assert_true(all[i]->fields[k - 1].id < all[i]->fields[k].id);
}

/* ---- malformed JSON ---- */

typedef struct bad_case {
    const char *why;
    const char *input;
    const char *want;   /* a substring of the error */
} bad_case;

static const bad_case bad_json[] = {
    {"unknown key", "{\"id\":1,\"sned\":{}}", "unknown field \"sned\" in Frame"},
    {"unknown nested key", "{\"send\":{\"tex\":\"hi\"}}", "unknown field \"tex\" in Send"},
    {"unknown key deep", "{\"sync_ok\":{\"entries\":[{},{\"msg\":{\"sq\":1}}]}}",
     "unknown field \"sq\" in Msg (at sync_ok.entries[1].msg)"},
    {"string for an integer", "{\"send_ok\":{\"seq\":\"42\"}}",
     "field \"seq\" of SendOk: expected an integer, got a string (at send_ok.seq)"},
    {"real for an integer", "{\"id\":1.5,\"ping\":{}}", "field \"id\" of Frame: expected an integer"},
    {"exponent for an integer", "{\"id\":1e3,\"ping\":{}}", "expected an integer, got a real"},
    {"integral real for an integer", "{\"id\":1.0,\"ping\":{}}", "expected an integer"},
    {"integer for a bool", "{\"sync_ok\":{\"more\":1}}", "field \"more\" of SyncOk: expected true or false"},
    {"string for a bool", "{\"presence\":{\"online\":\"true\"}}", "expected true or false"},
    {"integer for a string", "{\"send\":{\"text\":5}}", "field \"text\" of Send: expected a string"},
    {"array for a string", "{\"send\":{\"text\":[\"a\"]}}", "expected a string, got an array"},
    {"string for a message", "{\"send\":\"hi\"}", "field \"send\" of Frame: expected an object"},
    {"array for a message", "{\"send\":[]}", "expected an object, got an array"},
    {"string for a repeated", "{\"presence_sub\":{\"users\":\"bob\"}}",
     "field \"users\" of PresenceSub: expected an array"},
    {"wrong element", "{\"presence_sub\":{\"users\":[\"a\",1]}}",
     "field \"users[1]\" of PresenceSub: expected a string, got an integer"},
    {"null element", "{\"presence_sub\":{\"users\":[null]}}", "null is not allowed"},
    {"wrong nested element", "{\"sync\":{\"channels\":[{\"group\":\"a\"},{\"seq\":true}]}}",
     "field \"seq\" of ChannelPos: expected an integer, got true (at sync.channels[1].seq)"},
    {"two bodies", "{\"ping\":{},\"logout\":{}}", "fields \"ping\" and \"logout\" of Frame"},
    {"two bodies, second empty", "{\"send\":{\"text\":\"a\"},\"read_ok\":{}}", "at most one may be set"},
    {"no body", "{\"id\":3}", "frame has no body"},
    {"null body", "{\"id\":3,\"ping\":null}", "frame has no body"},
    {"empty object", "{}", "frame has no body"},
    {"2^53", "{\"id\":9007199254740992,\"ping\":{}}", "9007199254740992 is out of range for uint64"},
    {"2^53 nested", "{\"send_ok\":{\"ts\":9007199254740992}}", "below 2^53"},
    {"2^63 - 1", "{\"id\":9223372036854775807,\"ping\":{}}", "out of range"},
    {"beyond int64", "{\"id\":18446744073709551616,\"ping\":{}}", "invalid JSON"},
    {"negative uint64", "{\"id\":-1,\"ping\":{}}", "-1 is out of range for uint64"},
    {"negative -2^53", "{\"id\":-9007199254740992,\"ping\":{}}", "out of range"},
    {"negative uint32", "{\"sync\":{\"limit\":-1}}", "field \"limit\" of Sync: -1 is out of range for uint32"},
    {"uint32 overflow", "{\"sync\":{\"limit\":4294967296}}", "4294967296 is out of range for uint32"},
    {"duplicate key", "{\"ping\":{},\"ping\":{}}", "duplicate object key"},
    {"duplicate nested key", "{\"send\":{\"to\":\"a\",\"to\":\"b\"}}", "duplicate object key"},
    {"duplicate null key", "{\"id\":1,\"id\":null,\"ping\":{}}", "duplicate object key"},
    {"invalid UTF-8 byte", "{\"send\":{\"text\":\"\xff\"}}", "invalid JSON"},
    {"overlong UTF-8", "{\"send\":{\"text\":\"\xc0\xaf\"}}", "invalid JSON"},
    {"UTF-8 surrogate", "{\"send\":{\"text\":\"\xed\xa0\x80\"}}", "invalid JSON"},
    {"cut UTF-8", "{\"send\":{\"text\":\"\xe4\xb8\"}}", "invalid JSON"},
    {"invalid UTF-8 in a key", "{\"\xfe\":1}", "invalid JSON"},
    {"lone surrogate escape", "{\"send\":{\"text\":\"\\ud800\"}}", "invalid JSON"},
    {"NUL escape", "{\"send\":{\"text\":\"a\\u0000b\"}}", "invalid JSON"},
    {"raw control character", "{\"send\":{\"text\":\"a\nb\"}}", "invalid JSON"},
    {"truncated", "{\"send\":{\"text\":\"hi\"", "invalid JSON"},
    {"truncated in a string", "{\"send\":{\"text\":\"h", "invalid JSON"},
    {"truncated after a key", "{\"id\"", "invalid JSON"},
    {"empty input", "", "invalid JSON"},
    {"only whitespace", "  \n", "invalid JSON"},
    {"array at the top", "[{\"ping\":{}}]", "expected a JSON object, got an array"},
    {"string at the top", "\"ping\"", "invalid JSON"},
    {"number at the top", "42", "invalid JSON"},
    {"null at the top", "null", "invalid JSON"},
    {"trailing garbage", "{\"ping\":{}} x", "invalid JSON"},
    {"two objects", "{\"ping\":{}}{\"ping\":{}}", "invalid JSON"},
    {"trailing comma", "{\"ping\":{},}", "invalid JSON"},
    {"single quotes", "{'ping':{}}", "invalid JSON"},
    {"NaN", "{\"id\":NaN,\"ping\":{}}", "invalid JSON"},
    {"object nested in a string field", "{\"send\":{\"to\":{\"a\":{\"b\":{}}}}}",
     "field \"to\" of Send: expected a string, got an object"},
    {"quote and newline in a key", "{\"a\\\"b\\nc\":1}", "unknown field \"a\"b?c\" in Frame"},
};

static void test_bad_json(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_json / sizeof *bad_json; i++) {
        const bad_case *c = &bad_json[i];
        print_message("bad JSON: %s\n", c->why);
        expect_error(PROTO_JSON, c->input, strlen(c->input), c->want);
    }
}

/* Deep nesting: beyond what jansson parses at all, and deep inside a
 * field, both are clean errors. */
static void test_bad_json_deep(void **state)
{
    (void)state;
    buf s = {0};
    buf_appends(&s, "{\"send\":{\"to\":");
    for (int i = 0; i < 100000; i++) buf_appendc(&s, '[');
    expect_error(PROTO_JSON, buf_begin(&s), buf_size(&s), "invalid JSON");
    for (int i = 0; i < 100000; i++) buf_appendc(&s, ']');
    buf_appends(&s, "}}");
    expect_error(PROTO_JSON, buf_begin(&s), buf_size(&s), "maximum parsing depth");

    buf_reset(&s);
    buf_appends(&s, "{\"send\":{\"to\":");
    for (int i = 0; i < 40; i++) buf_appends(&s, "{\"a\":");
    buf_appends(&s, "1");
    for (int i = 0; i < 40; i++) buf_appends(&s, "}");
    buf_appends(&s, "}}");
    expect_error(PROTO_JSON, buf_begin(&s), buf_size(&s), "expected a string, got an object");
    buf_free(&s);
}

/* Every proper prefix of a valid JSON frame is an error, never a crash. */
static void test_json_every_prefix(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof frames / sizeof *frames; k++) {
        const char *s = frames[k];
        size_t n = strlen(s);
        for (size_t i = 0; i < n; i++) {
            Parley__Frame *f = NULL;
            char err[128];
            /* A copy of exactly i bytes, so that ASan sees reads past it. */
            char *cut = malloc(i ? i : 1);
            memcpy(cut, s, i);
            assert_int_equal(proto_frame_decode(PROTO_JSON, (uint8_t *)cut, i, &f, err, sizeof err),
                             PL_BAD_REQUEST);
            assert_null(f);
            check_arena_agrees(PROTO_JSON, cut, i, PL_BAD_REQUEST, err, NULL);
            free(cut);
        }
    }
}

/* ---- malformed protobuf ---- */

/* The protobuf encoding of the canonical JSON frame s. */
static void pb_of(const char *s, buf *out)
{
    Parley__Frame *f = decode_ok(PROTO_JSON, s, strlen(s));
    proto_frame_encode(f, PROTO_PB, out);
    proto_free(&f->base);
}

static void test_bad_pb(void **state)
{
    (void)state;
    /* sync_ok(19) { entries(1) { msg(2) { text(5): "\xff" } } } */
    static const uint8_t bad_utf8[] = {0x9a, 0x01, 0x07, 0x0a, 0x05, 0x12, 0x03, 0x2a, 0x01, 0xff};
    expect_error(PROTO_PB, bad_utf8, sizeof bad_utf8,
                 "field \"text\" of Msg: invalid UTF-8 (at sync_ok.entries[0].msg.text)");
    /* The same with a valid string decodes. */
    static const uint8_t good[] = {0x9a, 0x01, 0x07, 0x0a, 0x05, 0x12, 0x03, 0x2a, 0x01, 'a'};
    Parley__Frame *f = decode_ok(PROTO_PB, good, sizeof good);
    assert_string_equal(f->sync_ok->entries[0]->msg->text, "a");
    proto_free(&f->base);

    /* A surrogate and an overlong form inside a repeated string. */
    static const uint8_t surrogate[] = {0xca, 0x01, 0x05, 0x0a, 0x03, 0xed, 0xa0, 0x80};
    expect_error(PROTO_PB, surrogate, sizeof surrogate,
                 "field \"users[0]\" of PresenceSub: invalid UTF-8");
    static const uint8_t overlong[] = {0xca, 0x01, 0x06, 0x0a, 0x01, 'a', 0x0a, 0x01, 0xc0};
    expect_error(PROTO_PB, overlong, sizeof overlong, "field \"users[1]\" of PresenceSub");

    /* id(1) sent as length-delimited; send(16).text(3) sent as a varint. */
    static const uint8_t wire_id[] = {0x0a, 0x00, 0x72, 0x00};
    expect_error(PROTO_PB, wire_id, sizeof wire_id, "field \"id\" of Frame: wrong wire type 2");
    static const uint8_t wire_text[] = {0x82, 0x01, 0x02, 0x18, 0x01};
    expect_error(PROTO_PB, wire_text, sizeof wire_text,
                 "field \"text\" of Send: wrong wire type 0 (expected 2) (at send.text)");
    /* A group wire type, and wire types that do not exist. */
    static const uint8_t group[] = {0x0b, 0x0c};
    expect_error(PROTO_PB, group, sizeof group, "wire type 3");
    static const uint8_t wt7[] = {0x77, 0x01, 0x72, 0x00};
    expect_error(PROTO_PB, wt7, sizeof wt7, "unsupported wire type 7");
    /* Field number 0. */
    static const uint8_t zero[] = {0x00, 0x01};
    expect_error(PROTO_PB, zero, sizeof zero, "invalid field number 0");
    /* A varint longer than 10 bytes. */
    static const uint8_t long_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0x01};
    expect_error(PROTO_PB, long_varint, sizeof long_varint, "invalid varint");
    /* A length beyond the end. */
    static const uint8_t long_len[] = {0x72, 0x05, 0x00};
    expect_error(PROTO_PB, long_len, sizeof long_len, "truncated value at byte 0");

    /* 2^53 as a frame id, and as a nested seq. */
    static const uint8_t big_id[] = {0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0x72, 0x00};
    expect_error(PROTO_PB, big_id, sizeof big_id, "9007199254740992 is out of range");
    static const uint8_t max_id[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x72, 0x00};
    f = decode_ok(PROTO_PB, max_id, sizeof max_id);
    assert_int_equal(f->id, 9007199254740991ULL);
    proto_free(&f->base);

    /* No body; an empty input. */
    static const uint8_t no_body[] = {0x08, 0x05};
    expect_error(PROTO_PB, no_body, sizeof no_body, "frame has no body");
    expect_error(PROTO_PB, "", 0, "frame has no body");

    /* Truncated: a valid frame cut one byte short. */
    buf p = {0};
    pb_of(frames[6], &p);
    expect_error(PROTO_PB, buf_begin(&p), buf_size(&p) - 1, "truncated");
    buf_free(&p);
}

/* Unknown fields are accepted and dropped; two bodies in protobuf mean the
 * last one (protobuf's rule for a oneof). */
static void test_pb_unknown_and_oneof(void **state)
{
    (void)state;
    /* ping(14) {}, field 99 varint 5, field 100 length 2 "ab", pong(15) {}. */
    static const uint8_t in[] = {0x72, 0x00, 0x98, 0x06, 0x05, 0xa2, 0x06, 0x02, 'a', 'b', 0x7a, 0x00};
    Parley__Frame *f = decode_ok(PROTO_PB, in, sizeof in);
    assert_int_equal(f->body_case, PARLEY__FRAME__BODY_PONG);
    assert_int_equal(f->base.n_unknown_fields, 0);
    buf out = {0};
    proto_frame_encode(f, PROTO_PB, &out);
    static const uint8_t want[] = {0x7a, 0x00};
    assert_int_equal(buf_size(&out), sizeof want);
    assert_memory_equal(buf_begin(&out), want, sizeof want);
    buf_free(&out);
    proto_free(&f->base);
}

/* Every prefix of valid protobuf frames decodes or fails cleanly, and what
 * decodes re-encodes to the same JSON after a trip through JSON. */
static void test_pb_every_prefix(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof frames / sizeof *frames; k++) {
        buf p = {0};
        pb_of(frames[k], &p);
        for (size_t i = 0; i <= buf_size(&p); i++) {
            uint8_t *cut = malloc(i ? i : 1);
            memcpy(cut, buf_begin(&p), i);
            Parley__Frame *f = NULL;
            char err[128];
            pl_status st = proto_frame_decode(PROTO_PB, cut, i, &f, err, sizeof err);
            check_arena_agrees(PROTO_PB, cut, i, st, err, f);
            if (st == PL_OK) {
                buf j = {0}, j2 = {0};
                proto_frame_encode(f, PROTO_JSON, &j);
                Parley__Frame *g = decode_ok(PROTO_JSON, buf_begin(&j), buf_size(&j));
                proto_frame_encode(g, PROTO_JSON, &j2);
                assert_int_equal(buf_size(&j), buf_size(&j2));
                assert_memory_equal(buf_begin(&j), buf_begin(&j2), buf_size(&j));
                proto_free(&g->base);
                proto_free(&f->base);
                buf_free(&j);
                buf_free(&j2);
            } else {
                assert_null(f);
                assert_true(i < buf_size(&p));
            }
            free(cut);
        }
        buf_free(&p);
    }
}

/* ---- other entry points ---- */

static void test_decode_other_messages(void **state)
{
    (void)state;
    /* proto_decode serves the HTTP bodies too. */
    const char *s = "{\"tenant\":\"acme\",\"settings\":{\"open_signup\":true,\"msg_rate\":20}}";
    ProtobufCMessage *m = NULL;
    char err[128];
    assert_int_equal(proto_decode(&parley__tenant_create__descriptor, PROTO_JSON, (const uint8_t *)s,
                                  strlen(s), &m, err, sizeof err),
                     PL_OK);
    Parley__TenantCreate *tc = (Parley__TenantCreate *)m;
    assert_string_equal(tc->tenant, "acme");
    assert_true(tc->settings->open_signup);
    assert_int_equal(tc->settings->msg_rate, 20);
    buf j = {0};
    proto_encode(m, PROTO_JSON, &j);
    assert_buf_eq(&j, s);
    proto_free(m);

    /* An empty object is a valid message; a frame needs a body. */
    m = (ProtobufCMessage *)0x1;
    assert_int_equal(proto_decode(&parley__user_create__descriptor, PROTO_JSON, (const uint8_t *)"{}",
                                  2, &m, err, sizeof err),
                     PL_OK);
    buf_reset(&j);
    proto_encode(m, PROTO_JSON, &j);
    assert_buf_eq(&j, "{}");
    proto_free(m);

    /* An unknown encoding; a NULL err is allowed. */
    assert_int_equal(proto_decode(&parley__frame__descriptor, (proto_enc)7, (const uint8_t *)"{}", 2,
                                  &m, err, sizeof err),
                     PL_BAD_REQUEST);
    assert_null(m);
    assert_int_equal(proto_decode(&parley__frame__descriptor, PROTO_JSON, (const uint8_t *)"[", 1, &m,
                                  NULL, 0),
                     PL_BAD_REQUEST);
    /* A tiny err buffer truncates the reason, never overflows. */
    char tiny[8];
    assert_int_equal(proto_decode(&parley__frame__descriptor, PROTO_JSON,
                                  (const uint8_t *)"{\"sync\":{\"channels\":[{\"seq\":\"x\"}]}}", 35,
                                  &m, tiny, sizeof tiny),
                     PL_BAD_REQUEST);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    proto_free(NULL);
    buf_free(&j);
}

/* Decoded messages are allocated through core/mem.h. */
static void test_memory_accounting(void **state)
{
    (void)state;
    size_t base = pl_mem_used();
    const char *s = frames[10];
    Parley__Frame *f = decode_ok(PROTO_JSON, s, strlen(s));
    assert_true(pl_mem_used() > base);
    proto_free(&f->base);
    assert_int_equal(pl_mem_used(), base);
    buf p = {0};
    pb_of(s, &p);
    size_t with_buf = pl_mem_used();
    f = decode_ok(PROTO_PB, buf_begin(&p), buf_size(&p));
    assert_true(pl_mem_used() > with_buf);
    proto_free(&f->base);
    assert_int_equal(pl_mem_used(), with_buf);
    buf_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_every_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_max_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_big_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spec_examples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_details, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_hand_built, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_descriptor_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_json_deep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_every_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_pb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pb_unknown_and_oneof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pb_every_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode_other_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_accounting, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
