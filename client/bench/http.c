/*
 * http.c - a small HTTP/1.1 client on libuv, for the bench's set-up calls
 * (creating thousands of users through the app API before a run).
 *
 * A pool of keep-alive connections takes requests from one queue, one
 * request per connection at a time; a connection the server closes is
 * opened again for the next request.  Responses must carry Content-Length
 * (parleyd's do); chunked bodies are refused as errors.  Not a general
 * client: no redirects, no TLS, bodies up to 16 MiB.  A request that has
 * no complete answer HTTP_TIMEOUT_MS after it was sent fails with status 0
 * (a server at its open-file limit accepts nothing, for one).
 *
 * Connection states: IDLE --request--> CONNECTING --> SENT --response-->
 * IDLE; any error or close --> DOWN (reopened on the next request).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bench.h"
#include "core/mem.h"

#define HTTP_TIMEOUT_MS 10000

typedef struct http_req {
    struct http_req *next;
    uint64_t sent;           /* loop ms when handed to a connection */
    buf wire;
    http_cb cb;
    void *arg;
    unsigned tries;
} http_req;

typedef struct hconn {
    http_client *h;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    bool open, busy, closing;
    http_req *req;
    buf in;
} hconn;

struct http_client {
    uv_loop_t *loop;
    struct sockaddr_storage addr;
    char hostport[300];
    hconn *conns;
    int n_conns;
    http_req *head, *tail;
    size_t pending;
    bool freeing;
    int open_handles;
    uv_timer_t tick;         /* request timeouts */
};

int http_parse_response(const char *p, size_t n, int *status, size_t *head, size_t *body)
{
    const char *end = NULL;
    for (size_t i = 3; i < n; i++)
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r') {
            end = p + i + 1;
            break;
        }
    if (!end) return n > 65536 ? HTTP_ERROR : HTTP_MORE;
    if (n < 12 || strncmp(p, "HTTP/1.", 7) || p[8] != ' ') return HTTP_ERROR;
    int st = atoi(p + 9);
    if (st < 100 || st > 599) return HTTP_ERROR;
    long long cl = -1;
    const char *q = strstr(p, "\r\n");
    while (q && q + 2 < end - 2) {
        q += 2;
        const char *le = strstr(q, "\r\n");
        if (!le || le > end) break;
        if (!strncasecmp(q, "Content-Length:", 15)) cl = atoll(q + 15);
        else if (!strncasecmp(q, "Transfer-Encoding:", 18)) return HTTP_ERROR;
        q = le;
    }
    if (cl < 0) cl = 0;
    if (cl > (16 << 20)) return HTTP_ERROR;
    *status = st;
    *head = (size_t)(end - p);
    *body = (size_t)cl;
    if (n < *head + *body) return HTTP_MORE;
    return HTTP_DONE;
}

static void pump(http_client *h);

static void release(http_client *h)
{
    if (--h->open_handles) return;
    for (int i = 0; i < h->n_conns; i++) buf_free(&h->conns[i].in);
    pl_free(h->conns);
    pl_free(h);
}

static void on_tick_closed(uv_handle_t *hd) { release(hd->data); }

static void on_hclosed(uv_handle_t *hd)
{
    hconn *k = hd->data;
    http_client *h = k->h;
    k->closing = false;
    k->open = false;
    buf_reset(&k->in);
    if (h->freeing) {
        release(h);
        return;
    }
    pump(h);
}

static void finish_req(hconn *k, int status, const char *body, size_t len)
{
    http_client *h = k->h;
    http_req *r = k->req;
    k->req = NULL;
    k->busy = false;
    h->pending--;
    if (r) {
        r->cb(r->arg, status, body ? body : "", len);
        buf_free(&r->wire);
        pl_free(r);
    }
}

static void conn_down(hconn *k)
{
    http_client *h = k->h;
    if (k->req) {
        http_req *r = k->req;
        k->req = NULL;
        k->busy = false;
        if (r->tries < 3) {
            /* Keep-alive connections may be closed by the server between
             * requests: requeue at the front. */
            r->next = h->head;
            h->head = r;
            if (!h->tail) h->tail = r;
        } else {
            h->pending--;
            r->cb(r->arg, 0, "", 0);
            buf_free(&r->wire);
            pl_free(r);
        }
    }
    if (k->open && !k->closing) {
        k->closing = true;
        uv_close((uv_handle_t *)&k->tcp, on_hclosed);
    }
}

static void h_alloc(uv_handle_t *hd, size_t s, uv_buf_t *b)
{
    static char mem[65536];
    *b = uv_buf_init(mem, sizeof mem);
}

static void h_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    hconn *k = s->data;
    if (n < 0) {
        conn_down(k);
        return;
    }
    buf_append(&k->in, b->base, (size_t)n);
    int status;
    size_t head, body;
    int r = http_parse_response((const char *)buf_begin(&k->in), buf_size(&k->in), &status, &head, &body);
    if (r == HTTP_MORE) return;
    if (r == HTTP_ERROR) {
        if (k->req) k->req->tries = 99;
        conn_down(k);
        return;
    }
    buf_appendc(&k->in, 0);
    finish_req(k, status, (const char *)buf_begin(&k->in) + head, body);
    buf_reset(&k->in);
    pump(k->h);
}

static void h_written(uv_write_t *w, int status)
{
    hconn *k = w->data;
    if (status < 0) conn_down(k);
}

static void send_req(hconn *k)
{
    uv_buf_t b = uv_buf_init((char *)buf_begin(&k->req->wire), (unsigned)buf_size(&k->req->wire));
    k->wreq.data = k;
    if (uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, h_written)) conn_down(k);
}

static void h_connected(uv_connect_t *c, int status)
{
    hconn *k = c->data;
    if (status < 0) {
        conn_down(k);
        return;
    }
    uv_read_start((uv_stream_t *)&k->tcp, h_alloc, h_read);
    send_req(k);
}

static void pump(http_client *h)
{
    for (int i = 0; i < h->n_conns && h->head; i++) {
        hconn *k = &h->conns[i];
        if (k->busy || k->closing) continue;
        http_req *r = h->head;
        h->head = r->next;
        if (!h->head) h->tail = NULL;
        r->next = NULL;
        r->tries++;
        r->sent = uv_now(h->loop);
        k->req = r;
        k->busy = true;
        if (k->open) {
            send_req(k);
            continue;
        }
        uv_tcp_init(h->loop, &k->tcp);
        k->tcp.data = k;
        k->open = true;
        k->creq.data = k;
        if (uv_tcp_connect(&k->creq, &k->tcp, (struct sockaddr *)&h->addr, h_connected)) conn_down(k);
    }
}

static void on_tick(uv_timer_t *t)
{
    http_client *h = t->data;
    uint64_t now = uv_now(h->loop);
    for (int i = 0; i < h->n_conns; i++) {
        hconn *k = &h->conns[i];
        if (k->req && now - k->req->sent > HTTP_TIMEOUT_MS) {
            k->req->tries = 99;   /* no retry: fail it */
            conn_down(k);
        }
    }
}

http_client *http_new(uv_loop_t *loop, const char *host, int port, int conns)
{
    http_client *h = PL_NEW(http_client);
    h->loop = loop;
    const char *ip = !strcmp(host, "localhost") ? "127.0.0.1" : host;
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&h->addr) &&
        uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&h->addr)) {
        pl_free(h);
        return NULL;
    }
    h->loop = loop;
    snprintf(h->hostport, sizeof h->hostport, "%s:%d", host, port);
    h->n_conns = conns < 1 ? 1 : conns;
    h->conns = pl_calloc((size_t)h->n_conns, sizeof *h->conns);
    for (int i = 0; i < h->n_conns; i++) h->conns[i].h = h;
    uv_timer_init(loop, &h->tick);
    h->tick.data = h;
    uv_timer_start(&h->tick, on_tick, 250, 250);
    return h;
}

void http_request(http_client *h, const char *method, const char *path, const char *auth, const char *body,
                  http_cb cb, void *arg)
{
    http_req *r = PL_NEW(http_req);
    r->cb = cb;
    r->arg = arg;
    size_t bl = body ? strlen(body) : 0;
    buf_printf(&r->wire, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, h->hostport);
    if (auth) buf_printf(&r->wire, "Authorization: Bearer %s\r\n", auth);
    if (body) buf_printf(&r->wire, "Content-Type: application/json\r\n");
    buf_printf(&r->wire, "Content-Length: %zu\r\n\r\n", bl);
    if (bl) buf_append(&r->wire, body, bl);
    if (h->tail) h->tail->next = r;
    else h->head = r;
    h->tail = r;
    h->pending++;
    pump(h);
}

size_t http_pending(const http_client *h) { return h->pending; }

void http_free(http_client *h)
{
    h->freeing = true;
    int open = 1;   /* the tick */
    uv_close((uv_handle_t *)&h->tick, on_tick_closed);
    for (int i = 0; i < h->n_conns; i++) {
        hconn *k = &h->conns[i];
        if (k->open) {
            open++;
            if (!k->closing) {
                k->closing = true;
                uv_close((uv_handle_t *)&k->tcp, on_hclosed);
            }
        }
    }
    h->open_handles = open;
}
