/*
 * message.c - send, sync, history, read receipts and typing.
 *
 * The message path: validate (UTF-8, at most max_text code points, a cmid
 * of at most 64 bytes), rate-limit per user, filter per tenant, then one
 * STORE_MSG_APPEND that stores the message once, appends an inbox entry for
 * each participant and dedups by cmid.  Only when the store answers (the
 * WAL write is synced) does the sender get send_ok and do the pushes go
 * out: to every device of the recipient and to the sender's other devices,
 * each with that user's useq.  A resend with a known cmid gets the first
 * ack and pushes nothing.
 *
 * 1:1 conversations are "dm:<a>:<b>" with a <= b; a user may read and
 * write a dm only if it is one of its two sides.
 */
#include <stdio.h>
#include <string.h>

#include "chat/chat_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/utf8.h"
#include "proto/clone.h"

#define HISTORY_DEFAULT 50
#define SYNC_DEFAULT 100
#define PAGE_MAX 1000

static void msg_from_store(Parley__Msg *m, const store_msg *sm)
{
    parley__msg__init(m);
    m->conv = (char *)sm->conv;
    m->has_seq = true;
    m->seq = sm->seq;
    if (sm->useq) {
        m->has_useq = true;
        m->useq = sm->useq;
    }
    m->from = (char *)sm->from;
    m->text = (char *)sm->text;
    m->has_ts = true;
    m->ts = sm->ts;
    m->cmid = (char *)sm->cmid;
}

static void event_from_store(Parley__Event *e, const store_event *se, uint64_t useq)
{
    parley__event__init(e);
    e->kind = (char *)se->kind;
    e->conv = (char *)se->conv;
    if (se->seq) {
        e->has_seq = true;
        e->seq = se->seq;
    }
    e->user = (char *)se->user;
    e->group = (char *)se->group;
    if (se->ts) {
        e->has_ts = true;
        e->ts = se->ts;
    }
    if (useq) {
        e->has_useq = true;
        e->useq = useq;
    }
}

static uint32_t page_limit(bool has, uint32_t v, uint32_t def)
{
    if (!has || !v) return def;
    return v > PAGE_MAX ? PAGE_MAX : v;
}

/* About the bytes a string takes in a reply, counting JSON's escapes. */
static size_t str_cost(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++)
        n += *p < 0x20 ? 6 : (*p == '"' || *p == '\\') ? 2 : 1;
    return n;
}

static size_t msg_cost(const store_msg *m)
{
    return 96 + str_cost(m->conv) + str_cost(m->from) + str_cost(m->text) + str_cost(m->cmid);
}

/* How many of the n messages/entries a page keeps: all, or as many as fit
 * max_page_bytes (at least one), so that one reply never outgrows the
 * connection's outbound bound; the caller then says `more`. */
static size_t page_fit(chat *ch, const store_msg *const *msgs, size_t n)
{
    size_t budget = ch->cfg.max_page_bytes, used = 0;
    if (!budget) return n;
    for (size_t i = 0; i < n; i++) {
        size_t cost = msgs[i] ? msg_cost(msgs[i]) : 96;
        if (i && used + cost > budget) return i;
        used += cost;
    }
    return n;
}

/* ---- send ---- */

static void sent(chat_call *c, store_req *r)
{
    store_append *a = &r->append;
    if (r->status) {
        if (r->status == PL_NOT_FOUND)
            call_err(c, PL_NOT_FOUND, a->group ? "no such group" : "no such user");
        else if (r->status == PL_FORBIDDEN)
            call_err(c, PL_FORBIDDEN, a->group ? "not a member, or only admins may post here"
                                               : "this tenant requires friendship for messages");
        else call_err(c, PL_UNAVAILABLE, "message not stored, retry later");
        return;
    }
    Parley__SendOk ok = PARLEY__SEND_OK__INIT;
    ok.conv = (char *)a->conv;
    ok.has_seq = true;
    ok.seq = a->seq;
    ok.has_ts = true;
    ok.ts = a->ts;
    if (a->n_rcpt && a->useqs && a->useqs[0]) {
        ok.has_useq = true;
        ok.useq = a->useqs[0];
    }
    if (!a->dup) {
        stats_sent(a->conv, a->group && !a->n_rcpt);
        Parley__Msg m = PARLEY__MSG__INIT;
        m.conv = (char *)a->conv;
        m.has_seq = true;
        m.seq = a->seq;
        m.from = (char *)a->from;
        m.text = (char *)a->text;
        m.has_ts = true;
        m.ts = a->ts;
        m.cmid = (char *)a->cmid;
        uint64_t except = c->s ? c->s->id : 0;
        if (a->group && !a->n_rcpt) {
            /* A channel: once per worker, to the online members there. */
            char key[TOPIC_KEY_MAX];
            topic_group_key(c->tenant, a->group, key, sizeof key);
            push_to_topic(c->w, key, PARLEY__FRAME__BODY_MSG, &m.base, except);
        } else {
            push_target *to = arena_alloc(&r->arena, (a->n_rcpt + 1) * sizeof *to);
            for (size_t i = 0; i < a->n_rcpt; i++) {
                to[i].user = a->rcpt[i];
                to[i].useq = a->useqs[i];
            }
            push_to_users(c->w, c->tenant, to, a->n_rcpt, PARLEY__FRAME__BODY_MSG, &m.base, except);
        }
    }
    call_ok(c, &ok.base);
}

/* Check text and cmid; NULL if fine, else the reason (status in *st). */
static const char *check_text(chat *ch, const char *text, const char *cmid, pl_status *st)
{
    *st = PL_BAD_REQUEST;
    if (!text || !*text) return "text is empty";
    long n = utf8_count((const uint8_t *)text, strlen(text));
    if (n < 0) return "text is not valid UTF-8";
    if ((uint64_t)n > ch->cfg.max_text) {
        *st = PL_TOO_LARGE;
        return "text is longer than the limit of code points";
    }
    if (cmid) {
        size_t cl = strlen(cmid);
        if (!cl || cl > CHAT_CMID_MAX) return "cmid must be 1 to 64 bytes";
        for (const char *p = cmid; *p; p++)
            if ((unsigned char)*p < 0x21 || *p == 0x7f) return "cmid must be printable";
    }
    return NULL;
}

void h_send(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__Send *in = (const Parley__Send *)body;
    chat *ch = c->c;
    bool to_group = in->group && *in->group, to_user = in->to && *in->to;
    if (to_group == to_user) {
        call_err(c, PL_BAD_REQUEST, "send needs one of `to` (a user) or `group`");
        return;
    }
    if (!chat_valid_id(to_group ? in->group : in->to)) {
        call_err(c, PL_NOT_FOUND, to_group ? "no such group" : "no such user");
        return;
    }
    pl_status st;
    const char *why = check_text(ch, in->text, in->cmid, &st);
    if (why) {
        call_err(c, st, why);
        return;
    }
    const tenant_conf *tc = tenant_conf_of(c->w, c->tenant);
    double rate = tc->msg_rate > 0 ? tc->msg_rate : atomic_load_explicit(&ch->msg_rate, memory_order_relaxed);
    if (rate > 0) {
        /* The bucket's key is built only when there is a limit to take. */
        char key[160];
        snprintf(key, sizeof key, "msg:%s/%s", c->tenant->id, c->user);
        uint64_t wait = limits_take(ch->limits, key, clock_wall_ms(), rate,
                                    tc->msg_burst > 0 ? tc->msg_burst
                                                      : atomic_load_explicit(&ch->msg_burst, memory_order_relaxed));
        if (wait) {
            call_limited(c, wait);
            return;
        }
    }
    store_req *r = call_store(c, STORE_MSG_APPEND, sent);
    store_append *a = &r->append;
    const char *text = in->text;
    if (filter_word_count(tc->words)) {
        size_t len = strlen(text);
        if (tc->policy == FILTER_REJECT) {
            if (filter_match(tc->words, text, len)) {
                log_event(LOG_INFO, "filter_hit", "tenant", c->tenant->id, "user", c->user,
                          "policy", "reject", NULL);
                stats_filter_hit(false);
                call_err(c, PL_BLOCKED_CONTENT, "the message contains a blocked word");
                return;
            }
        } else {
            buf masked = {0};
            if (filter_mask(tc->words, text, len, &masked)) {
                stats_filter_hit(true);
                buf_appendc(&masked, 0);
                text = a->text = arena_strdup(&r->arena, (const char *)buf_begin(&masked));
            }
            buf_free(&masked);
        }
    }
    char conv[2 * CHAT_ID_MAX + 8];
    a->from = arena_strdup(&r->arena, c->user);
    if (!a->text) a->text = arena_strdup(&r->arena, text);
    a->cmid = arena_strdup(&r->arena, in->cmid);
    if (to_group) {
        snprintf(conv, sizeof conv, "g:%s", in->group);
        a->group = arena_strdup(&r->arena, in->group);
    } else {
        chat_dm_conv(c->user, in->to, conv, sizeof conv);
        a->n_rcpt = strcmp(c->user, in->to) ? 2 : 1;
        a->rcpt = arena_alloc(&r->arena, 2 * sizeof *a->rcpt);
        a->rcpt[0] = a->from;
        a->rcpt[1] = arena_strdup(&r->arena, in->to);
        a->must_exist = a->rcpt[1];
        a->require_friend = tc->friends_only_dm && a->n_rcpt == 2;
    }
    a->conv = arena_strdup(&r->arena, conv);
    call_submit(c, r);
}

/* ---- sync ---- */

#define SYNC_CHANNELS_MAX 100

static void channel_step(chat_call *c);

static void synced(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    const store_msg **sm = arena_alloc(&r->arena, (r->n_entries + 1) * sizeof *sm);
    for (size_t i = 0; i < r->n_entries; i++) sm[i] = r->entries[i].msg;
    size_t n = page_fit(c->c, sm, r->n_entries);
    Parley__SyncOk ok = PARLEY__SYNC_OK__INIT;
    ok.n_entries = n;
    ok.entries = arena_alloc(&r->arena, (n + 1) * sizeof *ok.entries);
    for (size_t i = 0; i < n; i++) {
        const store_entry *se = &r->entries[i];
        Parley__Entry *e = arena_alloc(&r->arena, sizeof *e);
        parley__entry__init(e);
        e->has_useq = true;
        e->useq = se->useq;
        if (se->msg) {
            e->msg = arena_alloc(&r->arena, sizeof *e->msg);
            msg_from_store(e->msg, se->msg);
            e->msg->has_useq = true;
            e->msg->useq = se->useq;
        } else if (se->event) {
            e->event = arena_alloc(&r->arena, sizeof *e->event);
            event_from_store(e->event, se->event, se->useq);
        }
        ok.entries[i] = e;
    }
    ok.has_more = true;
    ok.more = r->more || n < r->n_entries;
    ok.has_useq = true;
    ok.useq = r->head;
    if (!c->n_users) {
        call_ok(c, &ok.base);
        return;
    }
    /* Channels follow: keep the inbox part in the call's arena. */
    Parley__SyncOk *kept = (Parley__SyncOk *)proto_clone(&ok.base, &c->arena);
    kept->channels = arena_alloc(&c->arena, c->n_users * sizeof *kept->channels);
    kept->n_channels = 0;
    c->saved = kept;
    c->n1 = 0;
    channel_step(c);
}

static void channel_read(chat_call *c, store_req *r)
{
    Parley__SyncOk *kept = c->saved;
    if (r->status) {
        call_err(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    const store_msg **sm = arena_alloc(&r->arena, (r->n_msgs + 1) * sizeof *sm);
    for (size_t i = 0; i < r->n_msgs; i++) sm[i] = &r->msgs[i];
    size_t n = page_fit(c->c, sm, r->n_msgs);
    Parley__ChannelMsgs cm = PARLEY__CHANNEL_MSGS__INIT;
    cm.group = (char *)c->users[c->n1];
    cm.n_msgs = n;
    cm.msgs = arena_alloc(&r->arena, (n + 1) * sizeof *cm.msgs);
    for (size_t i = 0; i < n; i++) {
        cm.msgs[i] = arena_alloc(&r->arena, sizeof *cm.msgs[i]);
        msg_from_store(cm.msgs[i], &r->msgs[i]);
    }
    cm.has_more = true;
    cm.more = r->more || n < r->n_msgs;
    kept->channels[kept->n_channels++] = (Parley__ChannelMsgs *)proto_clone(&cm.base, &c->arena);
    c->n1++;
    channel_step(c);
}

static void channel_checked(chat_call *c, store_req *r)
{
    /* Only channels sync by seq (a group's messages are in the inbox), and
     * a channel is public within its tenant. */
    if (r->status || strcmp(r->group->kind, "channel")) {
        c->n1++;
        channel_step(c);
        return;
    }
    char conv[CHAT_ID_MAX + 4];
    snprintf(conv, sizeof conv, "g:%s", c->users[c->n1]);
    uint64_t after = c->seqs[c->n1];
    store_req *nr = call_store(c, STORE_CONV_READ, channel_read);
    nr->conv = arena_strdup(&nr->arena, conv);
    nr->after = after;
    nr->limit = (uint32_t)c->n2;
    call_submit(c, nr);
}

static void channel_step(chat_call *c)
{
    if (c->n1 >= c->n_users) {
        call_ok(c, c->saved);
        return;
    }
    store_req *r = call_store(c, STORE_MEMBER_GET, channel_checked);
    r->group_id = arena_strdup(&r->arena, c->users[c->n1]);
    r->user_id = arena_strdup(&r->arena, c->user);
    call_submit(c, r);
}

void h_sync(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__Sync *in = (const Parley__Sync *)body;
    if (in->n_channels > SYNC_CHANNELS_MAX) {
        call_err(c, PL_TOO_LARGE, "at most 100 channels per sync");
        return;
    }
    c->users = arena_alloc(&c->arena, (in->n_channels + 1) * sizeof *c->users);
    c->seqs = arena_alloc(&c->arena, (in->n_channels + 1) * sizeof *c->seqs);
    for (size_t i = 0; i < in->n_channels; i++) {
        const Parley__ChannelPos *cp = in->channels[i];
        if (!chat_valid_id(cp->group)) {
            call_err(c, PL_BAD_REQUEST, "channels[].group must be a group id");
            return;
        }
        c->users[i] = arena_strdup(&c->arena, cp->group);
        c->seqs[i] = cp->has_seq ? cp->seq : 0;
    }
    c->n_users = in->n_channels;
    c->n2 = page_limit(in->has_limit, in->limit, SYNC_DEFAULT);
    store_req *r = call_store(c, STORE_INBOX_READ, synced);
    r->user_id = arena_strdup(&r->arena, c->user);
    r->after = in->has_useq ? in->useq : 0;
    r->limit = (uint32_t)c->n2;
    call_submit(c, r);
}

/* ---- access to a conversation ---- */

/* Group conversations g:<id>: the group id into out, true. */
static bool group_conv(const char *conv, char *out, size_t outlen)
{
    if (!conv || strncmp(conv, "g:", 2) || !chat_valid_id(conv + 2)) return false;
    snprintf(out, outlen, "%s", conv + 2);
    return true;
}

/* Check that the caller may use conv, then run next.  A dm: the caller is
 * one side (c->target = the peer).  A group: the caller is a member
 * (c->kind, c->role set); for reading (`read_only`), a channel is open to
 * anyone of its tenant. */
static void conv_member_got(chat_call *c, store_req *r)
{
    if (r->status == PL_NOT_FOUND || (!r->status && !r->member &&
                                      (!c->flag || strcmp(r->group->kind, "channel")))) {
        call_err(c, PL_NOT_FOUND, "no such conversation");
        return;
    }
    if (r->status) {
        call_err(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    snprintf(c->kind, sizeof c->kind, "%s", r->group->kind);
    snprintf(c->role, sizeof c->role, "%s", r->member ? r->member->role : "");
    c->next(c);
}

static void with_conv(chat_call *c, const char *conv, bool read_only, void (*next)(chat_call *c))
{
    char group[CHAT_ID_MAX + 1];
    c->target[0] = c->group[0] = 0;
    if (conv && chat_dm_peer(conv, c->user, c->target, sizeof c->target)) {
        next(c);
        return;
    }
    if (!group_conv(conv, group, sizeof group)) {
        call_err(c, PL_NOT_FOUND, "no such conversation");
        return;
    }
    snprintf(c->group, sizeof c->group, "%s", group);
    c->flag = read_only;
    c->next = next;
    store_req *r = call_store(c, STORE_MEMBER_GET, conv_member_got);
    r->group_id = arena_strdup(&r->arena, group);
    r->user_id = arena_strdup(&r->arena, c->user);
    call_submit(c, r);
}

/* ---- history ---- */

static void history_read(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    const store_msg **sm = arena_alloc(&r->arena, (r->n_msgs + 1) * sizeof *sm);
    for (size_t i = 0; i < r->n_msgs; i++) sm[i] = &r->msgs[i];
    size_t n = page_fit(c->c, sm, r->n_msgs);
    Parley__HistoryOk ok = PARLEY__HISTORY_OK__INIT;
    ok.n_msgs = n;
    ok.msgs = arena_alloc(&r->arena, (n + 1) * sizeof *ok.msgs);
    for (size_t i = 0; i < n; i++) {
        ok.msgs[i] = arena_alloc(&r->arena, sizeof *ok.msgs[i]);
        msg_from_store(ok.msgs[i], &r->msgs[i]);
        ok.msgs[i]->has_useq = false;
    }
    ok.has_more = true;
    ok.more = r->more || n < r->n_msgs;
    call_ok(c, &ok.base);
}

static void history_allowed(chat_call *c)
{
    Parley__History *in = c->saved;
    store_req *r = call_store(c, STORE_HISTORY, history_read);
    r->conv = arena_strdup(&r->arena, in->conv);
    r->before = in->has_before_seq ? in->before_seq : 0;
    r->limit = page_limit(in->has_limit, in->limit, HISTORY_DEFAULT);
    call_submit(c, r);
}

void h_history(chat_call *c, const ProtobufCMessage *body)
{
    c->saved = proto_clone(body, &c->arena);
    with_conv(c, ((const Parley__History *)body)->conv, true, history_allowed);
}

/* ---- read receipts ---- */

static void read_set(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, PL_UNAVAILABLE, "store unavailable, retry later");
        return;
    }
    uint64_t useq = r->useqs ? r->useqs[0] : 0;
    if (useq) {
        const store_event *ev = r->event;
        /* The peer of a dm learns it was read; in groups only the reader's
         * own devices hear of it (a receipt to every member would cost a
         * push per member per read). */
        if (c->target[0] && strcmp(c->target, c->user)) {
            Parley__Receipt rc = PARLEY__RECEIPT__INIT;
            rc.conv = (char *)ev->conv;
            rc.user = c->user;
            rc.has_seq = true;
            rc.seq = ev->seq;
            rc.has_ts = true;
            rc.ts = ev->ts;
            push_target peer = {.user = c->target, .useq = 0};
            push_to_users(c->w, c->tenant, &peer, 1, PARLEY__FRAME__BODY_RECEIPT, &rc.base, 0);
        }
        Parley__Event e;
        event_from_store(&e, ev, useq);
        push_target self = {.user = c->user, .useq = useq};
        push_to_users(c->w, c->tenant, &self, 1, PARLEY__FRAME__BODY_EVENT, &e.base,
                      c->s ? c->s->id : 0);
    }
    Parley__Empty ok = PARLEY__EMPTY__INIT;
    call_ok(c, &ok.base);
}

static void read_allowed(chat_call *c)
{
    if (c->group[0] && !c->role[0]) {
        call_err(c, PL_NOT_FOUND, "no such conversation");
        return;
    }
    Parley__Read *in = c->saved;
    store_req *r = call_store(c, STORE_READ_SET, read_set);
    r->user_id = arena_strdup(&r->arena, c->user);
    r->event = arena_alloc(&r->arena, sizeof *r->event);
    r->event->kind = "read";
    r->event->conv = arena_strdup(&r->arena, in->conv);
    r->event->seq = in->seq;
    r->event->user = r->user_id;
    if (c->group[0]) r->event->group = arena_strdup(&r->arena, c->group);
    r->event->ts = clock_wall_ms();
    call_submit(c, r);
}

void h_read(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__Read *in = (const Parley__Read *)body;
    if (!in->has_seq || !in->seq) {
        call_err(c, PL_BAD_REQUEST, "read needs the seq read up to");
        return;
    }
    c->saved = proto_clone(body, &c->arena);
    with_conv(c, in->conv, false, read_allowed);
}

/* ---- typing (never stored) ---- */

void h_typing(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__Typing *in = (const Parley__Typing *)body;
    char peer[CHAT_ID_MAX + 1], group[CHAT_ID_MAX + 1], topic_key[TOPIC_KEY_MAX];
    bool dm = in->conv && chat_dm_peer(in->conv, c->user, peer, sizeof peer);
    bool grp = !dm && group_conv(in->conv, group, sizeof group);
    if (grp) topic_group_key(c->tenant, group, topic_key, sizeof topic_key);
    /* A group: the session itself knows whether it is a member. */
    if (!dm && !(grp && c->s && topic_has(c->s, topic_key))) {
        call_err(c, PL_NOT_FOUND, "no such conversation");
        return;
    }
    char key[160];
    snprintf(key, sizeof key, "typing:%s/%s", c->tenant->id, c->user);
    if (!limits_take(c->c->limits, key, clock_wall_ms(), 2, 5)) {
        Parley__Typing t = PARLEY__TYPING__INIT;
        t.conv = in->conv;
        t.from = c->user;
        if (grp) {
            push_to_topic(c->w, topic_key, PARLEY__FRAME__BODY_TYPING, &t.base, c->s->id);
        } else if (strcmp(peer, c->user)) {
            push_target to = {.user = peer};
            push_to_users(c->w, c->tenant, &to, 1, PARLEY__FRAME__BODY_TYPING, &t.base, 0);
        }
    }
    call_ok(c, NULL);
}

