/*
 * stats.c - what the chat layer counts (core/metrics.h): sessions online
 * by transport and device kind, users online, logins, sign-ups, kicks,
 * messages sent and delivered by conversation kind, the end-to-end push
 * latency, rate-limit rejections, filter hits and error replies.
 *
 * Handles are registered once, by chat_new (stats_init), and live for the
 * process.  Every function here may run on any worker; each is a few
 * relaxed atomic adds on the calling thread's metrics row, so they are
 * called on the message path freely.  The online counts per tenant (the
 * admin API's) are atomics in the tenant itself, which never goes away.
 *
 * End-to-end push latency is measured from the moment the worker began
 * running the request that produced a message (the `send` frame or HTTP
 * call: chat_worker.cur_t0) to the moment its push is queued on a
 * recipient's connection, on whatever worker that is; the store's group
 * commit is inside it.
 */
#include <stdio.h>
#include <string.h>

#include "chat/chat_internal.h"
#include "core/clock.h"
#include "core/metrics.h"

static const char *transports[] = {"ws", "tcp", "udp"};
static const char *devices[] = {"web", "ios", "android", "desktop", "cli", "bot"};
#define N_TRANSPORTS 3
#define N_DEVICES 6
static const char *conv_kinds[] = {"dm", "group", "channel"};

static struct {
    metric *sessions[N_TRANSPORTS][N_DEVICES];
    metric *users_online;
    metric *logins_ok, *logins_failed, *lockouts, *signups;
    metric *kicks[3];
    metric *sent[3], *delivered[3], *push_latency[3];
    metric *limited_msgs, *limited_logins;
    metric *filter_reject, *filter_mask;
    metric *errors[PL_STATUS_COUNT]; /* by pl_status; [PL_OK] unused */
} m;

void stats_init(void)
{
    char l[96];
    for (int t = 0; t < N_TRANSPORTS; t++)
        for (int d = 0; d < N_DEVICES; d++) {
            snprintf(l, sizeof l, "transport=\"%s\",device=\"%s\"", transports[t], devices[d]);
            m.sessions[t][d] = metric_gauge("parley_sessions",
                                            "Logged-in sessions by transport and device kind.", l);
        }
    m.users_online = metric_gauge("parley_online_users",
                                  "Users with at least one logged-in session on this node.", NULL);
    m.logins_ok = metric_counter("parley_logins_total",
                                 "Logins (socket and HTTP, password and token) by result.",
                                 "result=\"ok\"");
    m.logins_failed = metric_counter("parley_logins_total",
                                     "Logins (socket and HTTP, password and token) by result.",
                                     "result=\"failed\"");
    m.lockouts = metric_counter("parley_login_lockouts_total",
                                "Password logins refused because the user is locked out after failed ones.",
                                NULL);
    m.signups = metric_counter("parley_signups_total", "Users created by open sign-up.", NULL);
    static const char *reasons[] = {"reason=\"new_login\"", "reason=\"admin\"", "reason=\"ban\""};
    for (int i = 0; i < 3; i++)
        m.kicks[i] = metric_counter("parley_kicks_total",
                                    "Sessions ended by a newer login of the same device kind, an admin kick or a ban.",
                                    reasons[i]);
    for (int i = 0; i < 3; i++) {
        snprintf(l, sizeof l, "kind=\"%s\"", conv_kinds[i]);
        m.sent[i] = metric_counter("parley_messages_sent_total",
                                   "Messages stored (acknowledged with send_ok), by conversation kind.", l);
        m.delivered[i] = metric_counter("parley_messages_delivered_total",
                                        "Message pushes queued on recipients' connections, by conversation kind.", l);
        m.push_latency[i] = metric_histogram(
            "parley_push_latency_seconds",
            "From the start of a send to its push queued on a recipient's connection.", l,
            metrics_seconds_ns, metrics_seconds_ns_n, 1e-9);
    }
    m.limited_msgs = metric_counter("parley_rate_limited_total",
                                    "Requests refused with rate_limited, by limit.",
                                    "limit=\"messages\"");
    m.limited_logins = metric_counter("parley_rate_limited_total",
                                      "Requests refused with rate_limited, by limit.",
                                      "limit=\"logins\"");
    m.filter_reject = metric_counter("parley_filter_hits_total",
                                     "Messages that matched their tenant's word list, by policy.",
                                     "policy=\"reject\"");
    m.filter_mask = metric_counter("parley_filter_hits_total",
                                   "Messages that matched their tenant's word list, by policy.",
                                   "policy=\"mask\"");
    for (int st = PL_OK + 1; st < PL_STATUS_COUNT; st++) {
        snprintf(l, sizeof l, "code=\"%s\"", pl_status_str((pl_status)st));
        m.errors[st] = metric_counter("parley_request_errors_total",
                                     "Requests answered with an error, by error code.", l);
    }
}

static int index_of(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], s)) return i;
    return -1;
}

void stats_session(const chat_session *s, int delta)
{
    int t = index_of(transports, N_TRANSPORTS, s->transport);
    int d = index_of(devices, N_DEVICES, s->device);
    if (t >= 0 && d >= 0) {
        if (delta > 0) metric_inc(m.sessions[t][d]);
        else metric_sub(m.sessions[t][d], 1);
    }
    if (s->tenant)
        atomic_fetch_add_explicit(&((chat_tenant *)s->tenant)->n_sessions, delta,
                                  memory_order_relaxed);
}

void stats_user_online(const chat_tenant *t, int delta)
{
    if (delta > 0) metric_inc(m.users_online);
    else metric_sub(m.users_online, 1);
    atomic_fetch_add_explicit(&((chat_tenant *)t)->n_users, delta, memory_order_relaxed);
}

void stats_login(bool ok)
{
    metric_inc(ok ? m.logins_ok : m.logins_failed);
}

void stats_lockout(void) { metric_inc(m.lockouts); }

void stats_signup(void) { metric_inc(m.signups); }

void stats_kick(int reason) { metric_inc(m.kicks[reason]); }

/* dm, group or channel from a conversation id and whether it is a
 * channel's (which the id alone does not say). */
static int kind_of(const char *conv, bool channel)
{
    if (channel) return 2;
    return conv && !strncmp(conv, "dm:", 3) ? 0 : 1;
}

void stats_sent(const char *conv, bool channel) { metric_inc(m.sent[kind_of(conv, channel)]); }

void stats_delivered(Parley__Frame__BodyCase body_case, const ProtobufCMessage *body, bool channel,
                     uint64_t t0_ns, size_t n)
{
    if (body_case != PARLEY__FRAME__BODY_MSG || !n) return;
    int k = kind_of(((const Parley__Msg *)body)->conv, channel);
    metric_add(m.delivered[k], n);
    if (t0_ns) {
        uint64_t dt = clock_mono_ns() - t0_ns;
        metric_observe_n(m.push_latency[k], dt, n);
    }
}

void stats_limited(const char *op)
{
    metric_inc(op && !strcmp(op, "send") ? m.limited_msgs : m.limited_logins);
}

void stats_filter_hit(bool mask) { metric_inc(mask ? m.filter_mask : m.filter_reject); }

void stats_error(pl_status st)
{
    if (st > PL_OK && st < PL_STATUS_COUNT) metric_inc(m.errors[st]);
}
