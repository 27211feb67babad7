/*
 * http.c - the HTTP/1.1 request parser (pure) and the request helpers of
 * net.h (net_http_header, net_query_get).
 *
 * net__http_feed wraps http-parser, which is resumable byte by byte: a
 * request may arrive in any number of pieces and the result is the same.
 * Each piece http-parser reports (url, header names, values, body) is
 * copied into one buffer, `data`, as NUL-terminated strings; `offs` records
 * where each header's name and value start.  Only when the request is
 * complete are pointers made (the buffer may move while it grows): the
 * decoded path and the raw query are appended, then the net_header array is
 * built in `hdrs`.  Everything in p->req therefore points into the parser
 * and stays valid until net__http_reset or net__http_free.
 *
 * Limits, each answered with a status the caller sends before closing:
 *   - the head (request line and headers) at most max_header bytes: 431;
 *     the parser is never fed past that while the head is incomplete, so
 *     an endless header line costs at most max_header bytes;
 *   - at most NET__HTTP_MAX_HEADERS header fields: 431;
 *   - the body at most max_body bytes, by Content-Length or as chunks
 *     arrive: 413;
 *   - HTTP major version other than 1: 505; CONNECT: 405;
 *   - HTTP/1.1 without a Host header, or with more than one: 400 (RFC 9112
 *     section 3.2; HTTP/1.0 may omit it);
 *   - anything http-parser rejects, a bad request target or a bad
 *     percent-escape in the path: 400.
 *
 * Trailers of chunked bodies are read and ignored.  Header values lose
 * trailing blanks; names are kept as received.
 *
 * Memory: three growable buffers, kept across requests by net__http_reset.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "net/net_internal.h"

enum { LAST_NONE, LAST_URL, LAST_FIELD, LAST_VALUE };

typedef struct hdr_off {
    uint32_t name, value;
} hdr_off;

static net__http_parser *parser_of(http_parser *hp) { return NET__CONTAINER_OF(hp, net__http_parser, hp); }

static int fail(net__http_parser *p, int status, const char *why)
{
    if (!p->status) {
        p->status = status;
        p->error = why;
    }
    /* http-parser refuses to pause a parser that already failed. */
    enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
    if (e == HPE_OK || e == HPE_PAUSED) http_parser_pause(&p->hp, 1);
    return 0;
}

static size_t n_headers(const net__http_parser *p) { return p->offs.len / sizeof(hdr_off); }

static hdr_off *last_header(net__http_parser *p)
{
    return (hdr_off *)(p->offs.data + p->offs.len - sizeof(hdr_off));
}

/* Terminate the string the last callback was appending to. */
static void end_string(net__http_parser *p)
{
    switch (p->last) {
    case LAST_URL:
        p->url_len = p->data.len;
        buf_appendc(&p->data, 0);
        break;
    case LAST_FIELD: /* a name with no value callback: an empty value */
        buf_appendc(&p->data, 0);
        last_header(p)->value = (uint32_t)p->data.len;
        buf_appendc(&p->data, 0);
        break;
    case LAST_VALUE: {
        size_t start = last_header(p)->value;
        while (p->data.len > start && (p->data.data[p->data.len - 1] == ' ' || p->data.data[p->data.len - 1] == '\t'))
            p->data.len--;
        buf_appendc(&p->data, 0);
        break;
    }
    default:
        break;
    }
    p->last = LAST_NONE;
}

static int on_message_begin(http_parser *hp)
{
    parser_of(hp)->started = true;
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t n)
{
    net__http_parser *p = parser_of(hp);
    p->last = LAST_URL;
    buf_append(&p->data, at, n);
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t n)
{
    net__http_parser *p = parser_of(hp);
    if (p->head_done) return 0; /* a trailer */
    if (p->last != LAST_FIELD) {
        end_string(p);
        if (n_headers(p) >= NET__HTTP_MAX_HEADERS) return fail(p, 431, "too many header fields");
        hdr_off h = {(uint32_t)p->data.len, 0};
        buf_append(&p->offs, &h, sizeof h);
    }
    buf_append(&p->data, at, n);
    p->last = LAST_FIELD;
    return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t n)
{
    net__http_parser *p = parser_of(hp);
    if (p->head_done) return 0;
    if (p->last == LAST_FIELD) {
        buf_appendc(&p->data, 0);
        last_header(p)->value = (uint32_t)p->data.len;
    }
    buf_append(&p->data, at, n);
    p->last = LAST_VALUE;
    return 0;
}

/* The value of the first header called name, and how many there are. */
static const char *find_header_n(const net__http_parser *p, const char *name, size_t *count)
{
    const hdr_off *h = (const hdr_off *)p->offs.data;
    const char *first = NULL;
    *count = 0;
    for (size_t i = 0; i < n_headers(p); i++)
        if (!strcasecmp((const char *)p->data.data + h[i].name, name)) {
            if (!(*count)++) first = (const char *)p->data.data + h[i].value;
        }
    return first;
}

static const char *find_header(const net__http_parser *p, const char *name)
{
    size_t n;
    return find_header_n(p, name, &n);
}

static int on_headers_complete(http_parser *hp)
{
    net__http_parser *p = parser_of(hp);
    end_string(p);
    p->head_done = true;
    if (hp->http_major != 1) return fail(p, 505, "HTTP version not supported");
    size_t hosts;
    find_header_n(p, "Host", &hosts);
    if (hp->http_minor >= 1 && hosts != 1)
        return fail(p, 400, hosts ? "more than one Host header" : "missing Host header");
    p->keep_alive = http_should_keep_alive(hp) != 0;
    p->is_head = hp->method == HTTP_HEAD;
    bool chunked = (hp->flags & F_CHUNKED) != 0;
    bool has_length = hp->content_length != 0 && hp->content_length != UINT64_MAX;
    if (!chunked && has_length && hp->content_length > p->max_body) return fail(p, 413, "request body too large");
    const char *expect = find_header(p, "Expect");
    if (expect && !strcasecmp(expect, "100-continue") && (chunked || has_length)) p->expect_continue = true;
    p->body_off = p->data.len;
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t n)
{
    net__http_parser *p = parser_of(hp);
    if (p->body_len + n > p->max_body) return fail(p, 413, "request body too large");
    buf_append(&p->data, at, n);
    p->body_len += n;
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    net__http_parser *p = parser_of(hp);
    p->done = true;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void net__http_init(net__http_parser *p, size_t max_header, size_t max_body)
{
    memset(p, 0, sizeof *p);
    p->max_header = max_header;
    p->max_body = max_body;
    http_parser_init(&p->hp, HTTP_REQUEST);
}

void net__http_reset(net__http_parser *p)
{
    buf data = p->data, offs = p->offs, hdrs = p->hdrs;
    size_t max_header = p->max_header, max_body = p->max_body;
    buf_reset(&data);
    buf_reset(&offs);
    buf_reset(&hdrs);
    net__http_init(p, max_header, max_body);
    p->data = data;
    p->offs = offs;
    p->hdrs = hdrs;
}

void net__http_free(net__http_parser *p)
{
    buf_free(&p->data);
    buf_free(&p->offs);
    buf_free(&p->hdrs);
}

/* Build p->req once the whole request is in. */
static int finish(net__http_parser *p)
{
    if (p->hp.method == HTTP_CONNECT) {
        fail(p, 405, "CONNECT is not supported");
        return NET__HTTP_ERROR;
    }
    p->upgrade = p->hp.upgrade != 0;
    buf_appendc(&p->data, 0); /* the body is NUL-terminated too */

    struct http_parser_url u;
    http_parser_url_init(&u);
    if (!p->url_len || http_parser_parse_url((const char *)p->data.data, p->url_len, 0, &u)) {
        fail(p, 400, "bad request target");
        return NET__HTTP_ERROR;
    }

    size_t path_off = p->data.len;
    if (u.field_set & (1u << UF_PATH)) {
        size_t off = u.field_data[UF_PATH].off, len = u.field_data[UF_PATH].len;
        buf_reserve(&p->data, len + 1);
        long d = net__pct_decode((const char *)p->data.data + off, len, (char *)p->data.data + path_off, false);
        if (d < 0) {
            fail(p, 400, "bad percent-encoding in path");
            return NET__HTTP_ERROR;
        }
        p->data.len += (size_t)d + 1;
        if (p->data.data[path_off] != '/') { /* "*" and other non-origin forms */
            fail(p, 400, "bad request target");
            return NET__HTTP_ERROR;
        }
    } else {
        buf_append(&p->data, "/", 2);
    }

    size_t query_off = p->data.len;
    if (u.field_set & (1u << UF_QUERY)) {
        size_t off = u.field_data[UF_QUERY].off, len = u.field_data[UF_QUERY].len;
        buf_reserve(&p->data, len + 1);
        memcpy(p->data.data + query_off, p->data.data + off, len);
        p->data.data[query_off + len] = 0;
        p->data.len += len + 1;
    } else {
        buf_appendc(&p->data, 0);
    }

    size_t nh = n_headers(p);
    buf_reset(&p->hdrs);
    buf_reserve(&p->hdrs, nh * sizeof(net_header) + 1);
    net_header *hv = (net_header *)p->hdrs.data;
    const hdr_off *h = (const hdr_off *)p->offs.data;
    for (size_t i = 0; i < nh; i++) {
        hv[i].name = (const char *)p->data.data + h[i].name;
        hv[i].value = (const char *)p->data.data + h[i].value;
    }
    p->hdrs.len = nh * sizeof(net_header);

    const char *base = (const char *)p->data.data;
    p->req.method = http_method_str((enum http_method)p->hp.method);
    p->req.path = base + path_off;
    p->req.query = base + query_off;
    p->req.headers = hv;
    p->req.n_headers = nh;
    p->req.body = (const uint8_t *)base + p->body_off;
    p->req.body_len = p->body_len;
    return NET__HTTP_DONE;
}

int net__http_feed(net__http_parser *p, const uint8_t *data, size_t len, size_t *used)
{
    size_t off = 0;
    *used = 0;
    if (p->status) return NET__HTTP_ERROR;
    if (p->done) return NET__HTTP_DONE;
    while (off < len) {
        size_t chunk = len - off;
        if (!p->head_done) {
            if (p->head_bytes >= p->max_header) {
                fail(p, 431, "request head too large");
                return NET__HTTP_ERROR;
            }
            if (chunk > p->max_header - p->head_bytes) chunk = p->max_header - p->head_bytes;
        }
        bool in_head = !p->head_done;
        size_t n = http_parser_execute(&p->hp, &settings, (const char *)data + off, chunk);
        if (in_head) p->head_bytes += n;
        off += n;
        *used = off;
        if (p->status) return NET__HTTP_ERROR;
        if (p->done) return finish(p);
        enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
        if (e != HPE_OK) {
            fail(p, e == HPE_HEADER_OVERFLOW ? 431 : 400, http_errno_description(e));
            return NET__HTTP_ERROR;
        }
        if (n != chunk) {
            fail(p, 400, "malformed request");
            return NET__HTTP_ERROR;
        }
    }
    return NET__HTTP_MORE;
}

/* ------------------------------------------------------------------ */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode into out[0..cap) with a NUL; -1 if bad or if it does not fit. */
static long decode_bounded(const char *src, size_t n, char *out, size_t cap, bool plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)src[i];
        if (ch == '%') {
            if (i + 2 >= n) return -1;
            int hi = hexval((unsigned char)src[i + 1]), lo = hexval((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            ch = hi << 4 | lo;
            i += 2;
        } else if (ch == '+' && plus_space) {
            ch = ' ';
        }
        if (ch == 0 || o + 1 >= cap) return -1;
        out[o++] = (char)ch;
    }
    if (o >= cap) return -1;
    out[o] = 0;
    return (long)o;
}

long net__pct_decode(const char *src, size_t n, char *out, bool plus_space)
{
    return decode_bounded(src, n, out, n + 1, plus_space);
}

const char *net_http_header(const net_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (!strcasecmp(req->headers[i].name, name)) return req->headers[i].value;
    return NULL;
}

bool net_query_get(const char *query, const char *key, char *out, size_t outlen)
{
    if (!query || !key || !out || !outlen) return false;
    size_t klen = strlen(key);
    char name[256];
    const char *s = query;
    for (;;) {
        const char *amp = strchr(s, '&');
        size_t plen = amp ? (size_t)(amp - s) : strlen(s);
        const char *eq = memchr(s, '=', plen);
        size_t nlen = eq ? (size_t)(eq - s) : plen;
        if (klen < sizeof name) {
            long d = decode_bounded(s, nlen, name, klen + 1, true);
            if (d == (long)klen && !memcmp(name, key, klen)) {
                const char *v = eq ? eq + 1 : s + plen;
                size_t vlen = eq ? plen - nlen - 1 : 0;
                return decode_bounded(v, vlen, out, outlen, true) >= 0;
            }
        }
        if (!amp) return false;
        s = amp + 1;
    }
}

bool net__http_has_token(const char *value, const char *token)
{
    if (!value) return false;
    size_t tlen = strlen(token);
    const char *s = value;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == ',') s++;
        const char *e = s;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t')) t--;
        if ((size_t)(t - s) == tlen && !strncasecmp(s, token, tlen)) return true;
        s = e;
    }
    return false;
}

const char *net__http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status < 200 ? "Informational" : status < 300 ? "Success" : status < 400 ? "Redirection"
                                                   : status < 500 ? "Client Error" : "Server Error";
    }
}
