/*
 * sync.c - inbox tracking (SPEC section 3, "Inbox and sync").
 *
 * With tracking on, c->useq is the last inbox entry handed to the
 * application, and each entry is handed on once, in useq order:
 *
 *   push with useq u:  u <= useq       --> dropped (a duplicate)
 *                      u == useq + 1   --> delivered; useq = u
 *                      u >  useq + 1   --> a gap: sync from useq (the push
 *                                          itself comes back in the sync)
 *   send_ok with useq u (our own message in our inbox): the same, except
 *                      that nothing is delivered for u == useq + 1
 *   login_ok with useq L: sync from useq if L > useq, else current
 *   sync_ok: entries after useq are delivered in order; `more`, or a newer
 *            useq seen meanwhile, asks for the next page; otherwise the
 *            device is current: on_synced
 *
 * One sync request is in flight at a time (c->syncing).  Pushes that fill
 * the next slot during a sync are delivered at once; the sync page then
 * drops them as duplicates.  on_useq follows every advance, after the
 * entries up to it were delivered.
 */
#include <string.h>

#include "internal.h"

static void advanced(parley_client *c)
{
    if (c->o.cb.on_useq) c->o.cb.on_useq(c, c->useq, c->o.ud);
}

static void synced(parley_client *c)
{
    if (c->o.cb.on_synced) c->o.cb.on_synced(c, c->useq, c->o.ud);
}

void parley__sync_start(parley_client *c)
{
    if (c->syncing || !parley__ready(c)) return;
    c->syncing = true;
    c->sync_from = c->useq;
    c->stats.syncs++;
    Parley__Frame f = PARLEY__FRAME__INIT;
    Parley__Sync s = PARLEY__SYNC__INIT;
    parley__req *r = parley__req_new(c, PARLEY__REQ_SYNC);
    f.has_id = true;
    f.id = r->id;
    f.body_case = PARLEY__FRAME__BODY_SYNC;
    f.sync = &s;
    s.has_useq = true;
    s.useq = c->useq;
    s.has_limit = c->o.sync_limit != 0;
    s.limit = c->o.sync_limit;
    parley__send_frame(c, &f);
}

void parley__sync_login(parley_client *c, uint64_t login_useq)
{
    bool first = !c->first_login_done;
    c->first_login_done = true;
    if (!c->tracking) {
        if (c->o.sync != PARLEY_SYNC_LATEST || !first) return;
        c->tracking = true;
        c->useq = login_useq;
        c->latest = login_useq;
        advanced(c);
        if (!parley__ready(c)) return;
        synced(c);
        return;
    }
    if (login_useq > c->latest) c->latest = login_useq;
    if (c->useq < login_useq) parley__sync_start(c);
    else synced(c);
}

parley_status parley_sync(parley_client *c, uint64_t useq)
{
    if (!c) return PARLEY_INVALID;
    if (c->freed) return PARLEY_CANCELLED;
    if (c->final) return PARLEY_CLOSED;
    c->tracking = true;
    c->useq = useq;
    if (c->latest < useq) c->latest = useq;
    /* A sync in flight asked from another useq: its page is dropped and
     * the sync starts again from the new one. */
    if (c->syncing) c->sync_discard = true;
    else parley__sync_start(c);
    return PARLEY_OK;
}

void parley__sync_reply(parley_client *c, const Parley__Frame *f)
{
    c->syncing = false;
    if (c->sync_discard) {
        c->sync_discard = false;
        parley__sync_start(c);
        return;
    }
    if (f->body_case != PARLEY__FRAME__BODY_SYNC_OK || !f->sync_ok) {
        if (f->body_case == PARLEY__FRAME__BODY_ERROR && c->o.cb.on_error)
            c->o.cb.on_error(c, parley_status_from_code(f->error ? f->error->code : NULL),
                             f->error && f->error->message ? f->error->message : "", c->o.ud);
        return;
    }
    const Parley__SyncOk *ok = f->sync_ok;
    uint64_t before = c->useq;
    for (size_t i = 0; i < ok->n_entries; i++) {
        const Parley__Entry *e = ok->entries[i];
        if (!e || e->useq <= c->useq) {
            c->stats.duplicates++;
            continue;
        }
        c->useq = e->useq;
        if (e->msg) parley__deliver_msg(c, e->msg, true);
        else if (e->event) parley__deliver_event(c, e->event, true);
        if (c->freed) return;
    }
    if (ok->useq > c->latest) c->latest = ok->useq;
    if (c->useq > c->latest) c->latest = c->useq;
    if (c->useq != before) {
        advanced(c);
        if (!parley__ready(c)) return;
    }
    bool progress = c->useq > c->sync_from;
    if (ok->more && progress) {
        parley__sync_start(c);
    } else if (c->useq < c->latest && progress) {
        /* Pushes announced newer entries meanwhile. */
        parley__sync_start(c);
    } else {
        /* Current (a latest the server could not fill is forgotten). */
        c->latest = c->useq;
        synced(c);
    }
}

void parley__inbox_push(parley_client *c, const Parley__Frame *f)
{
    uint64_t u = f->body_case == PARLEY__FRAME__BODY_MSG ? f->msg->useq : f->event->useq;
    if (u > c->latest) c->latest = u;
    if (u <= c->useq) {
        c->stats.duplicates++;
        return;
    }
    if (u == c->useq + 1) {
        c->useq = u;
        if (f->body_case == PARLEY__FRAME__BODY_MSG) parley__deliver_msg(c, f->msg, false);
        else parley__deliver_event(c, f->event, false);
        if (c->freed) return;
        advanced(c);
        return;
    }
    parley__sync_start(c);
}

void parley__inbox_own(parley_client *c, uint64_t u)
{
    if (u > c->latest) c->latest = u;
    if (u <= c->useq) return;
    if (u == c->useq + 1) {
        c->useq = u;
        advanced(c);
        return;
    }
    parley__sync_start(c);
}
