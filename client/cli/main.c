/*
 * main.c - parley-cli: a terminal chat client and a scripting tool over
 * libparley.
 *
 *   parley-cli [OPTIONS]                      interactive chat (the default)
 *   parley-cli send [OPTIONS] --to USER TEXT  send one message, exit after send_ok
 *   parley-cli tail [OPTIONS] [--useq N]      print messages as JSON lines
 *
 * Everything runs on one libuv loop: the client, stdin (interactive mode),
 * and SIGINT/SIGTERM.  The program ends by freeing the client and closing
 * its own handles, so the loop runs dry and main returns the exit status
 * that `app.rc` holds (the table is in usage() and docs).
 *
 * Interactive input is read only after the first login, so a script piped
 * into the interactive mode runs its commands against a logged-in client;
 * at end of input (or /quit) the client waits for its sends to be
 * acknowledged (up to --timeout) before it exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/mem.h"
#include "parley.h"
#include "proto/codec.h"

enum {
    RC_OK = 0,
    RC_REFUSED = 1,      /* the server refused the request */
    RC_USAGE = 2,
    RC_AUTH = 3,         /* login refused */
    RC_CONNECT = 4,      /* cannot connect, or no answer in time */
    RC_ENDED = 5,        /* kicked, or closed for good by the server */
};

typedef enum { MODE_CHAT, MODE_SEND, MODE_TAIL } cli_mode;

typedef struct cli {
    uv_loop_t *loop;
    parley_client *c;
    cli_mode mode;
    int rc;
    bool done;
    bool logged_in_once;
    uint32_t timeout_ms;
    uv_timer_t t_first;        /* first login within --timeout */
    uv_timer_t t_quit;         /* draining sends before exit */
    uv_signal_t sig_int, sig_term;
    /* send */
    const char *to, *group, *cmid;
    char *text;
    /* tail */
    long count;                /* messages to print, 0: no limit */
    long printed;
    const char *useq_file;
    double duration;
    uv_timer_t t_duration;
    /* chat */
    union {
        uv_tty_t tty;
        uv_pipe_t pipe;
    } in;
    bool in_open, in_reading;
    bool stdin_is_file;
    buf line;
    char current[80];          /* the current peer or group */
    bool current_is_group;
    bool quitting;
    bool holding;              /* input waits for a /join answer */
    bool in_eof;
    int outstanding;           /* /history and /join requests not yet answered */
} cli;

static cli app;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: parley-cli [send|tail] [OPTIONS] [TEXT...]\n"
            "\n"
            "  parley-cli --user alice                interactive chat\n"
            "  parley-cli send --to bob TEXT...       send one message; exit 0 after send_ok\n"
            "  parley-cli tail [--useq N]             print each message as one JSON line\n"
            "\n"
            "Connection and login:\n"
            "  --url URL             ws://HOST:PORT[/path] or tcp://HOST:PORT (default ws://127.0.0.1:8080,\n"
            "                        or $PARLEY_URL)\n"
            "  --user USER           log in as USER with a password (prompted without echo on the\n"
            "                        terminal, or read from --password-file)\n"
            "  --password-file FILE  the password is the first line of FILE\n"
            "  --token TOKEN         log in with a token instead (or --token-file FILE)\n"
            "  --tenant TENANT       default: default\n"
            "  --device KIND         web, ios, android, desktop, cli (default) or bot\n"
            "  --device-id ID\n"
            "  --encoding json|pb    WebSocket frames: JSON text (default) or protobuf binary\n"
            "  --timeout SECONDS     first login (and send: the whole send) must finish in time (default 30)\n"
            "\n"
            "send:   --to USER | --group GROUP, --cmid ID (default: generated); TEXT from the\n"
            "        arguments, or from stdin when there are none.  Prints the ack as JSON.\n"
            "        Retries (reconnecting) until send_ok; the same cmid never stores twice.\n"
            "tail:   --useq N (sync what follows inbox seq N first; default: only new messages),\n"
            "        --useq-file FILE (start from the number in FILE, write the latest back),\n"
            "        --count N (exit after N messages), --duration SECONDS.\n"
            "\n"
            "Interactive commands: /msg USER TEXT (also makes USER the current conversation),\n"
            "/history [CONV|USER], /join GROUP, /quit; any other line goes to the current\n"
            "conversation.\n"
            "\n"
            "Exit status:\n"
            "  0  success (send: the server acknowledged the message; tail: --count reached,\n"
            "     --duration over, or interrupted)\n"
            "  1  the server refused the request (the error is printed: not_found, too_large...)\n"
            "  2  usage error\n"
            "  3  login refused (wrong password or token, banned user)\n"
            "  4  could not connect or log in, or no answer within --timeout\n"
            "  5  the session ended for good: kicked by a newer login, or a protocol error\n"
            "  130, 143  send or chat interrupted by SIGINT, SIGTERM (tail exits 0)\n");
}

static void errf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void errf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("parley-cli: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int rc_of(parley_status st)
{
    switch (st) {
    case PARLEY_OK: return RC_OK;
    case PARLEY_INVALID: return RC_USAGE;
    case PARLEY_UNAUTHORIZED: return app.logged_in_once ? RC_REFUSED : RC_AUTH;
    case PARLEY_TIMEOUT:
    case PARLEY_CONNECT:
    case PARLEY_CLOSED:
    case PARLEY_NOT_READY: return RC_CONNECT;
    case PARLEY_KICKED:
    case PARLEY_PROTOCOL:
    case PARLEY_CANCELLED: return RC_ENDED;
    default: return RC_REFUSED;
    }
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* End the program with rc: free the client, close every handle. */
static void finish(int rc)
{
    if (app.done) return;
    app.done = true;
    app.rc = rc;
    fflush(stdout);
    parley_client_free(app.c);
    app.c = NULL;
    close_handle((uv_handle_t *)&app.t_first);
    close_handle((uv_handle_t *)&app.t_quit);
    close_handle((uv_handle_t *)&app.t_duration);
    close_handle((uv_handle_t *)&app.sig_int);
    close_handle((uv_handle_t *)&app.sig_term);
    if (app.in_open) close_handle((uv_handle_t *)&app.in);
}

/* ------------------------------------------------------------------ */
/* Output                                                               */
/* ------------------------------------------------------------------ */

static void print_msg_json(const parley_msg *m)
{
    Parley__Msg pm = PARLEY__MSG__INIT;
    pm.conv = (char *)m->conv;
    pm.has_seq = true;
    pm.seq = m->seq;
    pm.has_useq = m->useq != 0;
    pm.useq = m->useq;
    pm.from = (char *)m->from;
    pm.text = (char *)m->text;
    pm.has_ts = true;
    pm.ts = m->ts;
    pm.cmid = *m->cmid ? (char *)m->cmid : NULL;
    buf b = {0};
    proto_encode(&pm.base, PROTO_JSON, &b);
    buf_appendc(&b, '\n');
    fwrite(buf_begin(&b), 1, buf_size(&b), stdout);
    fflush(stdout);
    buf_free(&b);
}

static void print_msg_human(const parley_msg *m)
{
    printf("[%s #%llu] %s: %s\n", m->conv, (unsigned long long)m->seq, m->from, m->text);
    fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* Client callbacks                                                     */
/* ------------------------------------------------------------------ */

static void write_useq_file(uint64_t useq)
{
    if (!app.useq_file) return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", app.useq_file);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        errf("cannot write %s: %s", tmp, strerror(errno));
        return;
    }
    fprintf(f, "%llu\n", (unsigned long long)useq);
    if (fclose(f) || rename(tmp, app.useq_file)) errf("cannot write %s: %s", app.useq_file, strerror(errno));
}

static void on_useq(parley_client *c, uint64_t useq, void *ud) { write_useq_file(useq); }

static void on_msg(parley_client *c, const parley_msg *m, void *ud)
{
    if (app.mode == MODE_TAIL) {
        print_msg_json(m);
        if (app.count && ++app.printed >= app.count) {
            /* Freeing the client here means no on_useq for this one. */
            if (m->useq) write_useq_file(m->useq);
            finish(RC_OK);
        }
    } else if (app.mode == MODE_CHAT) {
        print_msg_human(m);
    }
}

static void on_receipt(parley_client *c, const parley_receipt *r, void *ud)
{
    if (app.mode == MODE_CHAT) {
        printf("(%s read %s up to #%llu)\n", r->user, r->conv, (unsigned long long)r->seq);
        fflush(stdout);
    }
}

static void on_typing(parley_client *c, const char *conv, const char *from, void *ud)
{
    if (app.mode == MODE_CHAT) {
        printf("(%s is typing)\n", from);
        fflush(stdout);
    }
}

static void on_kicked(parley_client *c, const char *reason, void *ud)
{
    errf("kicked: %s", reason);
}

static void on_error(parley_client *c, parley_status st, const char *message, void *ud)
{
    errf("server error: %s: %s", parley_status_str(st), message);
}

static void start_input(void);
static void run_lines(void);

static void on_login(parley_client *c, const parley_login_info *li, void *ud)
{
    bool first = !app.logged_in_once;
    app.logged_in_once = true;
    uv_timer_stop(&app.t_first);
    if (app.mode == MODE_CHAT) {
        if (first) {
            fprintf(stderr,
                    "logged in as %s (tenant %s). Commands: /msg USER TEXT, /history [CONV], "
                    "/join GROUP, /quit\n",
                    li->user, li->tenant);
            start_input();
        } else {
            fprintf(stderr, "(reconnected)\n");
        }
    }
}

static void on_state(parley_client *c, parley_state st, parley_status why, void *ud)
{
    if (st == PARLEY_STATE_WAITING && app.mode == MODE_CHAT && app.logged_in_once)
        fprintf(stderr, "(disconnected: %s; reconnecting)\n", parley_client_error(c));
    if (st != PARLEY_STATE_CLOSED) return;
    const char *e = parley_client_error(c);
    errf("%s", *e ? e : parley_status_str(why));
    if ((why == PARLEY_UNAUTHORIZED || why == PARLEY_FORBIDDEN) && !app.logged_in_once) finish(RC_AUTH);
    else finish(rc_of(why));
}

static void on_first_timeout(uv_timer_t *t)
{
    if (app.logged_in_once) return;
    const char *e = parley_client_error(app.c);
    errf("not logged in within %u s%s%s", app.timeout_ms / 1000, *e ? ": " : "", e);
    finish(RC_CONNECT);
}

/* ------------------------------------------------------------------ */
/* send                                                                 */
/* ------------------------------------------------------------------ */

/* Interactive: after /quit or end of input, exit once nothing is pending. */
static void maybe_quit(void)
{
    if (app.quitting && !app.done && app.outstanding == 0 && (!app.c || parley_client_pending_sends(app.c) == 0))
        finish(RC_OK);
}

static void on_sent(parley_client *c, parley_status st, const parley_send_result *r, void *arg)
{
    if (app.mode == MODE_SEND) {
        if (st == PARLEY_OK) {
            json_t *j = json_pack("{s:s,s:I,s:I,s:I,s:s}", "conv", r->conv, "seq", (json_int_t)r->seq, "ts",
                                  (json_int_t)r->ts, "useq", (json_int_t)r->useq, "cmid", r->cmid);
            char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
            printf("%s\n", s);
            free(s);
            json_decref(j);
            finish(RC_OK);
            return;
        }
        if (st == PARLEY_CANCELLED) return;
        const char *e = parley_client_error(c);
        if (st == PARLEY_TIMEOUT)
            errf("send failed: no send_ok within %u s%s%s%s", app.timeout_ms / 1000, *e ? " (last error: " : "",
                 e, *e ? ")" : "");
        else
            errf("send failed: %s%s%s", parley_status_str(st), *r->error ? ": " : "", r->error);
        finish(rc_of(st));
        return;
    }
    /* Interactive. */
    if (st != PARLEY_OK && st != PARLEY_CANCELLED) {
        printf("! message %s not sent: %s%s%s\n", r->cmid, parley_status_str(st), *r->error ? ": " : "", r->error);
        fflush(stdout);
    }
    maybe_quit();
}

/* ------------------------------------------------------------------ */
/* Interactive                                                          */
/* ------------------------------------------------------------------ */

static void chat_send(const char *text)
{
    if (!*app.current) {
        printf("! no conversation yet: start one with /msg USER TEXT\n");
        return;
    }
    parley_send_req req = {.text = text};
    if (app.current_is_group) req.group = app.current;
    else req.to = app.current;
    parley_status st = parley_send(app.c, &req, on_sent, NULL);
    if (st) printf("! cannot send: %s\n", parley_status_str(st));
}

static void on_history(parley_client *c, parley_status st, const parley_msg *msgs, size_t n, bool more, void *arg)
{
    if (st) {
        printf("! history: %s\n", parley_status_str(st));
    } else {
        if (!n) printf("(no messages)\n");
        for (size_t i = n; i-- > 0;) print_msg_human(&msgs[i]);
        if (more) printf("(older messages exist)\n");
    }
    fflush(stdout);
    app.outstanding--;
    maybe_quit();
}

static void on_join(parley_client *c, parley_status st, const parley_reply *r, void *arg)
{
    char *group = arg;
    if (st == PARLEY_OK) {
        printf("joined %s\n", group);
        snprintf(app.current, sizeof app.current, "%s", group);
        app.current_is_group = true;
    } else if (st != PARLEY_CANCELLED) {
        printf("! /join %s: %s%s%s\n", group, *r->code ? r->code : parley_status_str(st), *r->message ? ": " : "",
               r->message);
    }
    fflush(stdout);
    pl_free(group);
    app.outstanding--;
    app.holding = false;
    run_lines();
    maybe_quit();
}

static void on_quit_timeout(uv_timer_t *t)
{
    errf("%zu message(s) and %d request(s) not answered within %u s",
         app.c ? parley_client_pending_sends(app.c) : 0, app.outstanding, app.timeout_ms / 1000);
    finish(RC_CONNECT);
}

static void begin_quit(void)
{
    app.quitting = true;
    if (app.in_open && app.in_reading) {
        uv_read_stop((uv_stream_t *)&app.in);
        app.in_reading = false;
    }
    maybe_quit();
    if (app.done) return;
    fprintf(stderr, "(waiting for answers to %zu message(s) and %d request(s))\n",
            parley_client_pending_sends(app.c), app.outstanding);
    uv_timer_start(&app.t_quit, on_quit_timeout, app.timeout_ms, 0);
}

static void chat_line(char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
    if (!n || app.quitting) return;
    if (line[0] != '/') {
        chat_send(line);
        return;
    }
    char *cmd = line + 1;
    char *rest = strchr(cmd, ' ');
    if (rest) {
        *rest++ = 0;
        while (*rest == ' ') rest++;
    } else {
        rest = cmd + strlen(cmd);
    }
    if (!strcmp(cmd, "quit") || !strcmp(cmd, "q")) {
        begin_quit();
    } else if (!strcmp(cmd, "msg")) {
        char *text = strchr(rest, ' ');
        if (!*rest || !text) {
            printf("! usage: /msg USER TEXT\n");
            return;
        }
        *text++ = 0;
        snprintf(app.current, sizeof app.current, "%s", rest);
        app.current_is_group = false;
        chat_send(text);
    } else if (!strcmp(cmd, "history")) {
        char conv[200];
        const char *me = parley_client_user(app.c);
        const char *peer = *rest ? rest : app.current;
        if (!*peer) {
            printf("! usage: /history CONV|USER\n");
            return;
        }
        if (strchr(peer, ':')) snprintf(conv, sizeof conv, "%s", peer);
        else if (*rest == 0 && app.current_is_group) snprintf(conv, sizeof conv, "g:%s", peer);
        else if (strcmp(me, peer) < 0) snprintf(conv, sizeof conv, "dm:%s:%s", me, peer);
        else snprintf(conv, sizeof conv, "dm:%s:%s", peer, me);
        parley_status st = parley_history(app.c, conv, 0, 20, on_history, NULL);
        if (st) printf("! history: %s\n", parley_status_str(st));
        else app.outstanding++;
    } else if (!strcmp(cmd, "join")) {
        if (!*rest || strchr(rest, '"') || strchr(rest, '\\')) {
            printf("! usage: /join GROUP\n");
            return;
        }
        char json[200];
        snprintf(json, sizeof json, "{\"group\":\"%s\"}", rest);
        char *arg = pl_strdup(rest);
        parley_status st = parley_request_json(app.c, "group_join", json, on_join, arg);
        if (st) {
            printf("! /join %s: %s\n", rest, st == PARLEY_UNSUPPORTED
                                                ? "groups are not in the protocol this client speaks over this "
                                                  "transport (try a JSON WebSocket)"
                                                : parley_status_str(st));
            pl_free(arg);
        } else {
            app.outstanding++;
            app.holding = true;
        }
    } else if (!strcmp(cmd, "help")) {
        printf("/msg USER TEXT, /history [CONV|USER], /join GROUP, /quit\n");
    } else {
        printf("! unknown command /%s (try /help)\n", cmd);
    }
    fflush(stdout);
}

/* Run the complete lines of app.line, unless a /join is waiting for its
 * answer: the lines after it (a message to the group, say) must not run
 * before the server made us a member. */
static void run_lines(void)
{
    while (!app.done && !app.holding) {
        uint8_t *p = buf_begin(&app.line);
        uint8_t *nl = memchr(p, '\n', buf_size(&app.line));
        if (!nl) break;
        size_t len = (size_t)(nl - p);
        char *l = pl_strndup((const char *)p, len);
        buf_consume(&app.line, len + 1);
        chat_line(l);
        pl_free(l);
    }
    if (!app.done && !app.holding && app.in_eof && !buf_size(&app.line)) begin_quit();
}

static void input_bytes(const char *p, size_t n)
{
    buf_append(&app.line, p, n);
    run_lines();
}

static void input_eof(void)
{
    if (app.in_eof) return;
    app.in_eof = true;
    /* A last line without a newline still counts. */
    if (buf_size(&app.line) && buf_begin(&app.line)[buf_size(&app.line) - 1] != '\n') buf_appendc(&app.line, '\n');
    run_lines();
}

static void in_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    static char mem[4096];
    *b = uv_buf_init(mem, sizeof mem);
}

static void in_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n > 0) input_bytes(b->base, (size_t)n);
    else if (n < 0) input_eof();
}

static void start_input(void)
{
    if (app.stdin_is_file) {
        /* A regular file cannot be polled: read it all now. */
        char mem[4096];
        ssize_t n;
        while (!app.done && (n = read(0, mem, sizeof mem)) > 0) input_bytes(mem, (size_t)n);
        if (!app.done) input_eof();
        return;
    }
    if (app.in_open && !app.in_reading) {
        uv_read_start((uv_stream_t *)&app.in, in_alloc, in_read);
        app.in_reading = true;
    }
}

static int open_input(void)
{
    uv_handle_type t = uv_guess_handle(0);
    int r;
    if (t == UV_TTY) {
        r = uv_tty_init(app.loop, &app.in.tty, 0, 1);
    } else if (t == UV_NAMED_PIPE || t == UV_TCP) {
        r = uv_pipe_init(app.loop, &app.in.pipe, 0);
        if (!r) r = uv_pipe_open(&app.in.pipe, 0);
    } else if (t == UV_FILE) {
        app.stdin_is_file = true;
        return 0;
    } else {
        /* No usable stdin (closed): chat without input until interrupted. */
        return 0;
    }
    if (r) {
        errf("cannot read stdin: %s", uv_strerror(r));
        return -1;
    }
    app.in_open = true;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Signals, timers, set-up                                              */
/* ------------------------------------------------------------------ */

static void on_signal(uv_signal_t *s, int signum)
{
    if (app.mode == MODE_CHAT && !app.quitting) {
        begin_quit();
        return;
    }
    finish(app.mode == MODE_TAIL ? RC_OK : 128 + signum);
}

static void on_duration(uv_timer_t *t) { finish(RC_OK); }

static char *read_first_line(const char *path, const char *what)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        errf("cannot read %s %s: %s", what, path, strerror(errno));
        return NULL;
    }
    char line[4096];
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    fclose(f);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    return pl_strdup(line);
}

static char *prompt_password(const char *user)
{
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
    if (fd < 0) {
        errf("no password: give --password-file or --token (there is no terminal to ask on)");
        return NULL;
    }
    struct termios old, quiet;
    bool restore = tcgetattr(fd, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    char prompt[128];
    int pl = snprintf(prompt, sizeof prompt, "password for %s: ", user);
    if (write(fd, prompt, (size_t)pl) < 0) { /* nothing to do */ }
    char line[1024];
    size_t n = 0;
    char ch;
    while (n < sizeof line - 1 && read(fd, &ch, 1) == 1 && ch != '\n') line[n++] = ch;
    line[n] = 0;
    if (restore) tcsetattr(fd, TCSAFLUSH, &old);
    if (write(fd, "\n", 1) < 0) { /* nothing to do */ }
    close(fd);
    if (n && line[n - 1] == '\r') line[--n] = 0;
    return pl_strdup(line);
}

static char *read_stdin_text(void)
{
    buf b = {0};
    char mem[4096];
    ssize_t n;
    while ((n = read(0, mem, sizeof mem)) > 0) buf_append(&b, mem, (size_t)n);
    while (buf_size(&b) && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r')) b.len--;
    buf_appendc(&b, 0);
    char *s = pl_strdup((char *)buf_begin(&b));
    buf_free(&b);
    return s;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    while (*end == '\n' || *end == ' ') end++;
    if (errno || *end || *s == '-') return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    app.loop = uv_default_loop();
    app.mode = MODE_CHAT;
    int argi = 1;
    if (argc > 1 && !strcmp(argv[1], "send")) app.mode = MODE_SEND, argi = 2;
    else if (argc > 1 && !strcmp(argv[1], "tail")) app.mode = MODE_TAIL, argi = 2;
    else if (argc > 1 && !strcmp(argv[1], "chat")) argi = 2;

    const char *url = getenv("PARLEY_URL");
    if (!url || !*url) url = "ws://127.0.0.1:8080";
    const char *user = NULL, *tenant = NULL, *device = "cli", *device_id = NULL;
    const char *password_file = NULL, *token_file = NULL;
    const char *useq_s = NULL;
    char *token = NULL, *password = NULL;
    parley_encoding enc = PARLEY_ENC_JSON;
    double timeout = 30;

    enum {
        O_URL = 256, O_USER, O_PWFILE, O_TOKEN, O_TOKFILE, O_TENANT, O_DEVICE, O_DEVID, O_ENC, O_TIMEOUT,
        O_TO, O_GROUP, O_CMID, O_USEQ, O_USEQFILE, O_COUNT, O_DURATION,
    };
    static const struct option opts[] = {
        {"url", required_argument, 0, O_URL},
        {"user", required_argument, 0, O_USER},
        {"password-file", required_argument, 0, O_PWFILE},
        {"token", required_argument, 0, O_TOKEN},
        {"token-file", required_argument, 0, O_TOKFILE},
        {"tenant", required_argument, 0, O_TENANT},
        {"device", required_argument, 0, O_DEVICE},
        {"device-id", required_argument, 0, O_DEVID},
        {"encoding", required_argument, 0, O_ENC},
        {"timeout", required_argument, 0, O_TIMEOUT},
        {"to", required_argument, 0, O_TO},
        {"group", required_argument, 0, O_GROUP},
        {"cmid", required_argument, 0, O_CMID},
        {"useq", required_argument, 0, O_USEQ},
        {"useq-file", required_argument, 0, O_USEQFILE},
        {"count", required_argument, 0, O_COUNT},
        {"duration", required_argument, 0, O_DURATION},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    optind = argi;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case O_URL: url = optarg; break;
        case O_USER: user = optarg; break;
        case O_PWFILE: password_file = optarg; break;
        case O_TOKEN:
            pl_free(token);
            token = pl_strdup(optarg);
            break;
        case O_TOKFILE: token_file = optarg; break;
        case O_TENANT: tenant = optarg; break;
        case O_DEVICE: device = optarg; break;
        case O_DEVID: device_id = optarg; break;
        case O_ENC:
            if (!strcmp(optarg, "json")) enc = PARLEY_ENC_JSON;
            else if (!strcmp(optarg, "pb") || !strcmp(optarg, "protobuf")) enc = PARLEY_ENC_PROTOBUF;
            else {
                errf("--encoding must be json or pb");
                pl_free(token);
                return RC_USAGE;
            }
            break;
        case O_TIMEOUT:
            timeout = atof(optarg);
            if (timeout <= 0) {
                errf("--timeout must be a positive number of seconds");
                pl_free(token);
                return RC_USAGE;
            }
            break;
        case O_TO: app.to = optarg; break;
        case O_GROUP: app.group = optarg; break;
        case O_CMID: app.cmid = optarg; break;
        case O_USEQ: useq_s = optarg; break;
        case O_USEQFILE: app.useq_file = optarg; break;
        case O_COUNT: app.count = atol(optarg); break;
        case O_DURATION: app.duration = atof(optarg); break;
        case 'h':
            usage(stdout);
            pl_free(token);
            return RC_OK;
        default:
            usage(stderr);
            pl_free(token);
            return RC_USAGE;
        }
    }
    app.timeout_ms = (uint32_t)(timeout * 1000);

    if (app.mode == MODE_SEND) {
        if (!!app.to == !!app.group) {
            errf("send needs --to USER or --group GROUP");
            goto usage_fail;
        }
        if (optind < argc) {
            buf b = {0};
            for (int i = optind; i < argc; i++) {
                if (i > optind) buf_appendc(&b, ' ');
                buf_appends(&b, argv[i]);
            }
            buf_appendc(&b, 0);
            app.text = pl_strdup((char *)buf_begin(&b));
            buf_free(&b);
        } else {
            app.text = read_stdin_text();
        }
        if (!*app.text) {
            errf("nothing to send: give TEXT");
            goto usage_fail;
        }
    } else if (optind < argc) {
        errf("unexpected argument \"%s\"", argv[optind]);
        usage(stderr);
        goto usage_fail;
    }

    if (token_file) {
        pl_free(token);
        if (!(token = read_first_line(token_file, "token file"))) goto usage_fail;
    }
    if (!token) {
        if (!user) {
            errf("give --user (with a password) or --token");
            goto usage_fail;
        }
        if (password_file) password = read_first_line(password_file, "password file");
        else password = prompt_password(user);
        if (!password) goto usage_fail;
    }

    parley_options po = {
        .url = url,
        .encoding = enc,
        .token = token,
        .user = user,
        .password = password,
        .tenant = tenant,
        .device = device,
        .device_id = device_id,
        .connect_timeout_ms = app.timeout_ms < 10000 ? app.timeout_ms : 10000,
        .backoff_min_ms = 200,
        .backoff_max_ms = 5000,
    };
    po.cb.on_state = on_state;
    po.cb.on_login = on_login;
    po.cb.on_msg = on_msg;
    po.cb.on_receipt = on_receipt;
    po.cb.on_typing = on_typing;
    po.cb.on_kicked = on_kicked;
    po.cb.on_error = on_error;
    po.cb.on_useq = on_useq;
    if (app.mode == MODE_TAIL) {
        uint64_t useq = 0;
        if (useq_s && !parse_u64(useq_s, &useq)) {
            errf("--useq must be a number");
            goto usage_fail;
        }
        if (!useq_s && app.useq_file) {
            char *s = read_first_line(app.useq_file, "useq file");
            if (s && !parse_u64(s, &useq)) {
                errf("%s does not hold a number", app.useq_file);
                pl_free(s);
                goto usage_fail;
            }
            pl_free(s);
            useq_s = "file";
        }
        po.sync = useq_s ? PARLEY_SYNC_FROM : PARLEY_SYNC_LATEST;
        po.useq = useq;
    } else if (app.mode == MODE_CHAT) {
        po.sync = PARLEY_SYNC_LATEST;
    }

    char err[256];
    app.c = parley_client_new(app.loop, &po, err, sizeof err);
    if (password) {
        explicit_bzero(password, strlen(password));
        pl_free(password);
    }
    pl_free(token);
    password = token = NULL;
    if (!app.c) {
        errf("%s", err);
        goto usage_fail;
    }

    uv_timer_init(app.loop, &app.t_first);
    uv_timer_init(app.loop, &app.t_quit);
    uv_timer_init(app.loop, &app.t_duration);
    uv_signal_init(app.loop, &app.sig_int);
    uv_signal_init(app.loop, &app.sig_term);
    uv_signal_start(&app.sig_int, on_signal, SIGINT);
    uv_signal_start(&app.sig_term, on_signal, SIGTERM);
    /* A send has its own deadline (the same --timeout). */
    if (app.mode != MODE_SEND) uv_timer_start(&app.t_first, on_first_timeout, app.timeout_ms, 0);
    if (app.mode == MODE_TAIL && app.duration > 0)
        uv_timer_start(&app.t_duration, on_duration, (uint64_t)(app.duration * 1000), 0);
    if (app.mode == MODE_CHAT && open_input()) {
        finish(RC_USAGE);
    }

    if (app.mode == MODE_SEND) {
        parley_send_req req = {.to = app.to, .group = app.group, .text = app.text, .cmid = app.cmid,
                               .timeout_ms = app.timeout_ms};
        parley_status st = parley_send(app.c, &req, on_sent, NULL);
        if (st) {
            errf("cannot send: %s", parley_status_str(st));
            finish(rc_of(st));
        }
    }
    if (!app.done) parley_client_start(app.c);
    uv_run(app.loop, UV_RUN_DEFAULT);
    uv_loop_close(app.loop);
    buf_free(&app.line);
    pl_free(app.text);
    return app.rc;

usage_fail:
    if (password) explicit_bzero(password, strlen(password));
    pl_free(password);
    pl_free(token);
    pl_free(app.text);
    return RC_USAGE;
}
