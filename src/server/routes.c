/*
 * routes.c - the HTTP API: one table from method and path to a chat
 * operation, and the rendering of its answer.
 *
 * A request becomes the operation's body message generically: the JSON
 * body (POST), plus path parameters ({conv} fills the field `conv`) and,
 * for GET, query parameters named like the body's fields.  They are merged
 * into one JSON object and decoded by the same codec as socket frames, so
 * the HTTP API and the wire protocol validate input identically.  Errors
 * render as {"error": {"code", "message", "retry_after_ms"}} with the
 * status of core/status.c, and 429 carries Retry-After.
 *
 * A request waits for chat's reply with the connection paused (net does
 * not read the next request until net_http_respond); if the connection
 * closes first, the reply is dropped when it comes.
 *
 * A route may take its request body raw instead of as JSON (`raw`): the
 * body, which must be UTF-8 text, becomes that field of the message (a
 * word list is PUT as the text file it is).
 *
 * Operations endpoints, answered here without chat:
 *   GET /healthz   200 while the process runs
 *   GET /readyz    200 when the node accepts work: not draining, and a
 *                  probe write (STORE_PROBE) went through the store's group
 *                  commit; 503 otherwise
 *   GET /metrics   the metrics registry (core/metrics.h) as Prometheus text
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "server/server.h"
#include "server/static.h"

typedef struct route {
    const char *method;
    const char *pattern;           /* segments; {name} captures one */
    chat_op op;
    const char *preset;            /* "field=value" the route itself sets, or NULL */
    const char *raw;               /* the field the raw body goes into, or NULL (JSON) */
} route;

static const route routes[] = {
    {"POST", "/v1/signup", CHAT_OP_SIGNUP},
    {"POST", "/v1/login", CHAT_OP_LOGIN},
    {"POST", "/v1/logout", CHAT_OP_LOGOUT},
    {"POST", "/v1/users", CHAT_OP_USER_CREATE},
    {"GET", "/v1/users", CHAT_OP_USER_SEARCH},
    {"GET", "/v1/users/{user}", CHAT_OP_USER_GET},
    {"POST", "/v1/messages", CHAT_OP_SEND},
    {"GET", "/v1/sync", CHAT_OP_SYNC},
    {"GET", "/v1/conversations/{conv}/messages", CHAT_OP_HISTORY},
    {"POST", "/v1/conversations/{conv}/read", CHAT_OP_READ},
    {"POST", "/v1/admin/tenants", CHAT_OP_TENANT_CREATE},
    {"GET", "/v1/admin/tenants", CHAT_OP_TENANT_LIST},
    {"PATCH", "/v1/admin/tenants/{tenant}/settings", CHAT_OP_TENANT_SETTINGS},
    {"POST", "/v1/admin/tenants/{tenant}/settings", CHAT_OP_TENANT_SETTINGS},
    {"POST", "/v1/admin/tenants/{tenant}/users/{user}/ban", CHAT_OP_USER_BAN},
    {"POST", "/v1/admin/tenants/{tenant}/users/{user}/unban", CHAT_OP_USER_UNBAN},
    {"POST", "/v1/admin/tenants/{tenant}/users/{user}/kick", CHAT_OP_USER_KICK},
    {"GET", "/v1/admin/tenants/{tenant}/online", CHAT_OP_ONLINE},
    {"GET", "/v1/admin/online", CHAT_OP_ONLINE},
    {"PUT", "/v1/admin/tenants/{tenant}/words", CHAT_OP_WORDS_PUT, NULL, "words"},
    {"POST", "/v1/admin/backup", CHAT_OP_BACKUP},
    {"POST", "/v1/groups", CHAT_OP_GROUP_CREATE},
    {"GET", "/v1/groups", CHAT_OP_MY_GROUPS},
    {"GET", "/v1/groups/{group}", CHAT_OP_GROUP_INFO},
    {"DELETE", "/v1/groups/{group}", CHAT_OP_GROUP_DISBAND},
    {"POST", "/v1/groups/{group}/join", CHAT_OP_GROUP_JOIN},
    {"POST", "/v1/groups/{group}/leave", CHAT_OP_GROUP_LEAVE},
    {"GET", "/v1/groups/{group}/members", CHAT_OP_GROUP_MEMBERS},
    {"POST", "/v1/groups/{group}/members", CHAT_OP_GROUP_ADD},
    {"DELETE", "/v1/groups/{group}/members/{user}", CHAT_OP_GROUP_REMOVE},
    {"POST", "/v1/groups/{group}/roles", CHAT_OP_GROUP_ROLE},
    {"GET", "/v1/channels", CHAT_OP_CHANNEL_SEARCH},
    {"GET", "/v1/friends", CHAT_OP_FRIEND_LIST},
    {"POST", "/v1/friends/requests", CHAT_OP_FRIEND, "action=request"},
    {"POST", "/v1/friends/requests/{user}/accept", CHAT_OP_FRIEND, "action=accept"},
    {"POST", "/v1/friends/requests/{user}/reject", CHAT_OP_FRIEND, "action=reject"},
    {"DELETE", "/v1/friends/{user}", CHAT_OP_FRIEND, "action=delete"},
    {"GET", "/v1/presence", CHAT_OP_PRESENCE},
    {"GET", "/v1/home", CHAT_OP_HOME},
};

#define MAX_PARAMS 4

typedef struct param {
    char name[32];
    char value[256];
} param;

/* Does path match pattern?  Captures go into params. */
static bool match(const char *pattern, const char *path, param *params, size_t *n)
{
    *n = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p != '/' || *s != '/') return false;
        p++, s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p), sl = se ? (size_t)(se - s) : strlen(s);
        if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
            if (!sl || *n >= MAX_PARAMS || sl >= sizeof params[0].value || pl - 2 >= sizeof params[0].name)
                return false;
            memcpy(params[*n].name, p + 1, pl - 2);
            params[*n].name[pl - 2] = 0;
            memcpy(params[*n].value, s, sl);
            params[*n].value[sl] = 0;
            (*n)++;
        } else if (pl != sl || strncmp(p, s, pl)) {
            return false;
        }
        p += pl;
        s += sl;
    }
    return !*p && !*s;
}

/* Set key=value in obj, typed by the field of d named key. */
static const char *set_param(json_t *obj, const ProtobufCMessageDescriptor *d, const char *key,
                             const char *value)
{
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field_by_name(d, key);
    if (!fd) return "unknown parameter";
    json_t *v = NULL;
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
        /* A list of strings, comma-separated: ?users=a,b,c */
        if (fd->type != PROTOBUF_C_TYPE_STRING) return "parameter of an unsupported type";
        v = json_array();
        for (const char *p = value; *p;) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            json_t *item = n ? json_stringn(p, n) : NULL;
            if (n && !item) {
                json_decref(v);
                return "parameter is not valid UTF-8";
            }
            if (item) json_array_append_new(v, item);
            p += n + (comma ? 1 : 0);
        }
        json_object_set_new(obj, key, v);
        return NULL;
    }
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING:
        v = json_string(value);
        if (!v) return "parameter is not valid UTF-8";
        break;
    case PROTOBUF_C_TYPE_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "1")) v = json_true();
        else if (!strcmp(value, "false") || !strcmp(value, "0")) v = json_false();
        else return "parameter must be true or false";
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_UINT64: {
        if (!*value || strlen(value) > 16 || strspn(value, "0123456789") != strlen(value))
            return "parameter must be a non-negative integer";
        v = json_integer((json_int_t)strtoll(value, NULL, 10));
        break;
    }
    default:
        return "parameter of an unsupported type";
    }
    json_object_set_new(obj, key, v);
    return NULL;
}

/* The op's body message from the request, or NULL with the reason. */
static ProtobufCMessage *request_body(chat_op op, const char *preset, const char *raw,
                                      const net_http_req *req, const param *params,
                                      size_t n_params, char *err, size_t errlen)
{
    const ProtobufCMessageDescriptor *d = chat_op_body(op);
    json_t *obj;
    if (raw) {
        obj = json_object();
        json_t *text = json_stringn((const char *)req->body, req->body_len);
        if (!text) {
            snprintf(err, errlen, "the body must be UTF-8 text");
            json_decref(obj);
            return NULL;
        }
        json_object_set_new(obj, raw, text);
    } else if (req->body_len) {
        json_error_t je;
        obj = json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
        if (!obj || !json_is_object(obj)) {
            snprintf(err, errlen, "body is not a JSON object: %s", obj ? "wrong type" : je.text);
            json_decref(obj);
            return NULL;
        }
    } else {
        obj = json_object();
    }
    const char *why = NULL;
    if (preset) {
        const char *eq = strchr(preset, '=');
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(eq - preset), preset);
        why = set_param(obj, d, name, eq + 1);
    }
    for (size_t i = 0; i < n_params && !why; i++) {
        why = set_param(obj, d, params[i].name, params[i].value);
        if (why) snprintf(err, errlen, "%.31s: %.120s", params[i].name, why);
    }
    if (!strcmp(req->method, "GET") && !why) {
        /* A decoded value is never longer than the raw query, which the
         * head limit bounds: long lists (?users=a,b,... up to 500 ids) fit. */
        size_t vlen = strlen(req->query ? req->query : "") + 1;
        char *value = pl_malloc(vlen);
        for (unsigned i = 0; i < d->n_fields && !why; i++) {
            const char *name = d->fields[i].name;
            if (!json_object_get(obj, name) && net_query_get(req->query, name, value, vlen)) {
                why = set_param(obj, d, name, value);
                if (why) snprintf(err, errlen, "%.60s: %.120s", name, why);
            }
        }
        pl_free(value);
    }
    ProtobufCMessage *m = NULL;
    if (!why) {
        char *text = json_dumps(obj, JSON_COMPACT);
        if (text && proto_decode(d, PROTO_JSON, (const uint8_t *)text, strlen(text), &m, err, errlen))
            m = NULL;
        free(text);
    }
    json_decref(obj);
    return m;
}

/* ---- replies ---- */

typedef struct pending {
    net_conn *c;                   /* NULL once the connection closed */
    srv_worker *sw;
} pending;

static void respond_json(net_conn *c, int status, const ProtobufCMessage *m, const char *extra,
                         buf *b)
{
    buf_reset(b);
    if (m) proto_encode(m, PROTO_JSON, b);
    else buf_appends(b, "{}");
    char headers[256];
    snprintf(headers, sizeof headers, "Cache-Control: no-store\r\n%s", extra ? extra : "");
    net_http_respond(c, status, "application/json", headers, buf_begin(b), buf_size(b));
}

static void respond_error(net_conn *c, pl_status st, const char *message, uint64_t retry, buf *b)
{
    Parley__ErrorReply r = PARLEY__ERROR_REPLY__INIT;
    Parley__Error e = PARLEY__ERROR__INIT;
    e.code = (char *)pl_status_str(st);
    e.message = (char *)(message ? message : "");
    char extra[64] = "";
    if (retry) {
        e.has_retry_after_ms = true;
        e.retry_after_ms = retry;
        snprintf(extra, sizeof extra, "Retry-After: %llu\r\n",
                 (unsigned long long)((retry + 999) / 1000));
    }
    r.error = &e;
    respond_json(c, pl_status_http(st), &r.base, extra, b);
}

static void reply(void *ud, pl_status st, const char *message, uint64_t retry,
                  const ProtobufCMessage *body)
{
    pending *p = ud;
    if (p->c) {
        net_conn_set_data(p->c, NULL);
        if (st) respond_error(p->c, st, message, retry, &p->sw->scratch);
        else respond_json(p->c, 200, body, NULL, &p->sw->scratch);
    }
    pl_free(p);
}

void srv_http_closed(net_conn *c)
{
    pending *p = net_conn_data(c);
    if (p) p->c = NULL;
    net_conn_set_data(c, NULL);
}

/* ---- operations endpoints ---- */

static void respond_text(net_conn *c, int status, const char *type, const char *text)
{
    net_http_respond(c, status, type, "Cache-Control: no-store\r\n", text, strlen(text));
}

static void metrics(srv_worker *sw, net_conn *c)
{
    buf *b = &sw->scratch;
    buf_reset(b);
    metrics_render(b);
    net_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8",
                     "Cache-Control: no-store\r\n", buf_begin(b), buf_size(b));
}

/* /readyz: a probe write through the store.  The completion runs on this
 * worker; the connection may have closed meanwhile (p->c NULL), and the
 * worker itself may be gone (it then runs in net_free): it touches
 * neither the srv_worker nor its scratch buffer. */
static void probe_done(store_req *r)
{
    pending *p = r->udata;
    if (p->c) {
        net_conn_set_data(p->c, NULL);
        if (r->status == PL_OK)
            respond_text(p->c, 200, "application/json", "{\"status\":\"ready\"}");
        else
            respond_text(p->c, 503, "application/json",
                         "{\"status\":\"unavailable\",\"reason\":\"the store does not take writes\"}");
    }
    pl_free(p);
    store_req_free(r);
}

static void readyz(srv_worker *sw, net_conn *c)
{
    server *srv = sw->srv;
    if (atomic_load(&srv->draining)) {
        respond_text(c, 503, "application/json", "{\"status\":\"draining\"}");
        return;
    }
    pending *p = PL_NEW(pending);
    p->c = c;
    p->sw = sw;
    net_conn_set_data(c, p);
    store_req *r = store_req_new(STORE_PROBE);
    r->reply_to = net_worker_mailbox(sw->nw);
    r->done = probe_done;
    r->udata = p;
    store_submit(srv->st, r);
}

static const char index_page[] =
    "<!doctype html><html lang=en><meta charset=utf-8><title>parley</title>"
    "<body><h1>parley is running</h1>"
    "<p>The web chat page is not installed on this node: build it with <code>make</code> (it needs "
    "Node.js and npm), or point the setting <code>web_root</code> (<code>PARLEY_WEB_ROOT</code>) at "
    "the built files, then restart parleyd. The HTTP API is at <code>/v1/</code>, WebSockets at "
    "<code>/v1/ws</code>; see the README.</p></body></html>\n";

void srv_http(srv_worker *sw, net_conn *c, const net_http_req *req)
{
    bool get = !strcmp(req->method, "GET");
    if (get && !strcmp(req->path, "/healthz")) {
        respond_text(c, 200, "application/json", "{\"status\":\"ok\"}");
        return;
    }
    if (get && !strcmp(req->path, "/readyz")) {
        readyz(sw, c);
        return;
    }
    if (get && !strcmp(req->path, "/metrics")) {
        metrics(sw, c);
        return;
    }
    if (srv_static_serve(sw->srv->cfg.web_root, c, req)) return;
    if (get && !strcmp(req->path, "/")) {
        respond_text(c, 200, "text/html; charset=utf-8", index_page);
        return;
    }
    char allow[64] = "", err[200];
    chat_op op;
    ProtobufCMessage *body = NULL;
    int status = srv_route_decode(req, &op, &body, allow, sizeof allow, err, sizeof err);
    if (status == 405) {
        /* The path exists with other methods: 405 with Allow (RFC 9110). */
        char extra[128];
        snprintf(extra, sizeof extra, "Cache-Control: no-store\r\nAllow: %s\r\n", allow);
        buf *b = &sw->scratch;
        buf_reset(b);
        buf_appends(b, "{\"error\":{\"code\":\"bad_request\",\"message\":\"method not allowed; use ");
        buf_appends(b, allow);
        buf_appends(b, "\"}}");
        net_http_respond(c, 405, "application/json", extra, buf_begin(b), buf_size(b));
        return;
    }
    if (status) {
        respond_error(c, status == 404 ? PL_NOT_FOUND : PL_BAD_REQUEST, err, 0, &sw->scratch);
        return;
    }
    const char *auth = net_http_header(req, "Authorization");
    const char *bearer = NULL;
    if (auth && !strncasecmp(auth, "Bearer ", 7)) bearer = auth + 7;
    pending *p = PL_NEW(pending);
    p->c = c;
    p->sw = sw;
    net_conn_set_data(c, p);
    chat_http(sw->cw, op, bearer, net_conn_remote_ip(c), body, reply, p);
    proto_free(body);
}

int srv_route_decode(const net_http_req *req, chat_op *op, ProtobufCMessage **body, char *allow,
                     size_t allowlen, char *err, size_t errlen)
{
    param params[MAX_PARAMS];
    size_t n_params = 0;
    const route *rt = NULL;
    *body = NULL;
    if (allowlen) *allow = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!match(routes[i].pattern, req->path, params, &n_params)) continue;
        if (!strcmp(routes[i].method, req->method)) {
            rt = &routes[i];
            break;
        }
        size_t used = strlen(allow);
        if (used < allowlen)
            snprintf(allow + used, allowlen - used, "%s%s", used ? ", " : "", routes[i].method);
    }
    if (!rt && allowlen && *allow) {
        snprintf(err, errlen, "method not allowed");
        return 405;
    }
    if (!rt) {
        snprintf(err, errlen, "no such endpoint");
        return 404;
    }
    *op = rt->op;
    *body = request_body(rt->op, rt->preset, rt->raw, req, params, n_params, err, errlen);
    return *body ? 0 : 400;
}

int srv_ws_check(server *srv, const net_http_req *req)
{
    if (strcmp(req->path, "/v1/ws")) return 404;
    if (atomic_load(&srv->draining)) return 503;
    const char *origin = net_http_header(req, "Origin");
    if (!origin || srv->any_origin) return 0;
    for (size_t i = 0; i < srv->n_origins; i++)
        if (!strcasecmp(origin, srv->origins[i])) return 0;
    /* Same host: http(s)://<Host> */
    const char *host = net_http_header(req, "Host");
    if (host) {
        const char *o = origin;
        if (!strncasecmp(o, "http://", 7)) o += 7;
        else if (!strncasecmp(o, "https://", 8)) o += 8;
        else return 403;
        if (!strcasecmp(o, host)) return 0;
    }
    return 403;
}
