/*
 * metrics.c - what the net layer counts (core/metrics.h), by transport:
 * frames and bytes in and out, open connections, connections refused by
 * the per-IP limits or for lack of file descriptors (loop.c), slow
 * consumers cut off and UDP datagrams dropped on a full send queue.
 *
 * Bytes are counted on the wire (HTTP heads, WebSocket and TCP framing
 * included); frames are whole messages handed to on_message or given to
 * net_send.  The handles are registered once by net_start and live for
 * the process; the open-connection gauges read the workers' counts at
 * scrape time and are dropped by net_free.
 */
#include "core/metrics.h"
#include "net/net_internal.h"

net__metrics net__m;

static const char *kind_labels[4] = {"transport=\"http\"", "transport=\"ws\"",
                                     "transport=\"tcp\"", "transport=\"udp\""};

typedef struct conn_gauge {
    net *n;
    net_kind kind;
} conn_gauge;

static conn_gauge gauges[4];

static double open_conns(void *ud)
{
    conn_gauge *g = ud;
    size_t sum = 0;
    for (size_t i = 0; i < g->n->n_workers; i++) sum += net_worker_conns(&g->n->workers[i], g->kind);
    return (double)sum;
}

void net__metrics_init(net *n)
{
    for (int k = 0; k < 4; k++) {
        const char *l = kind_labels[k];
        net__m.frames_in[k] = metric_counter("parley_frames_received_total",
                                             "Whole frames (WebSocket messages, TCP frames, datagrams, HTTP requests) received.", l);
        net__m.frames_out[k] = metric_counter("parley_frames_sent_total",
                                              "Whole frames (WebSocket messages, TCP frames, datagrams, HTTP responses) queued to send.", l);
        net__m.bytes_in[k] = metric_counter("parley_received_bytes_total",
                                            "Bytes read from clients, framing included.", l);
        net__m.bytes_out[k] = metric_counter("parley_sent_bytes_total",
                                             "Bytes written to clients, framing included.", l);
        net__m.slow[k] = metric_counter("parley_slow_consumer_disconnects_total",
                                        "Connections closed because their outbound queue passed max_outbound.", l);
        gauges[k].n = n;
        gauges[k].kind = (net_kind)k;
        metric_fn(METRIC_GAUGE, "parley_connections", "Open connections.", l, open_conns, &gauges[k]);
    }
    net__m.udp_dropped = metric_counter("parley_outbound_dropped_total",
                                        "Outbound frames dropped because a queue was full.",
                                        "transport=\"udp\"");
    net__m.refused = metric_counter("parley_connections_refused_total",
                                    "New connections refused by the per-IP limits (max_conns_per_ip, conn_rate_per_ip).",
                                    NULL);
    net__m.refused_fd = metric_counter("parley_connections_refused_no_fd_total",
                                       "New connections accepted only to be closed at once: the process was out of file descriptors.",
                                       NULL);
    net__m.accepted = metric_counter("parley_connections_accepted_total",
                                     "Connections accepted (UDP: peer addresses that opened a session).", NULL);
}

void net__metrics_drop(net *n)
{
    if (gauges[0].n != n) return;
    for (int k = 0; k < 4; k++) metric_fn_drop("parley_connections", kind_labels[k]);
}
