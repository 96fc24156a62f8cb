/* store_fetch.c — getting experts into slots: demand reads in acquire,
 * prefetch reads from the model's guess, and settling the two.
 *
 * The order of one layer's acquire:
 *   1. reap fills that completed since the last call;
 *   2. settle this layer's prefetches: a guessed expert the router chose is
 *      used; one it did not is wasted, and if none of its reads started it
 *      is cancelled and its slot emptied;
 *   3. pin every chosen expert already in a slot (ready, or still being
 *      read: then its queued reads are promoted to demand), so no miss of
 *      this layer can evict another of its experts;
 *   4. give each miss a victim slot and submit the misses as demand reads;
 *   5. wait for every chosen slot still being read.
 * A prefetch read that failed leaves its slot empty, or, when the layer is
 * already waiting for it, is read again as a demand read: only a demand
 * read's failure reaches the caller. Single-threaded by contract: all
 * calls come from the thread running the model; the I/O backend's threads
 * touch only the requests and the slot memory they were given.
 */
#include "store/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint32_t slot_index(const store *s, const slot *sl) { return (uint32_t)(sl - s->slots); }

/* Fills sl's read requests for expert (layer, id) and marks it loading. */
static void plan_reads(store *s, slot *sl, int layer, int id, bool prefetch)
{
    const store_tensor *roles = store_layer_roles(s, layer);
    sl->view.layer = layer;
    sl->view.id = id;
    sl->nreq = 0;
    for (int r = 0; r < STORE_ROLE_COUNT; r++) {
        const store_tensor *st = &roles[r];
        sl->view.data[r] = NULL;
        if (!st->t) continue;
        uint64_t off = st->t->offset + (uint64_t)id * st->expert_bytes;
        uint8_t *dst = sl->mem + st->slot_offset;
        io_req *q = &sl->req[sl->nreq++];
        q->fd = s->fds[st->t->file];
        if (s->io == IO_DIRECT) {
            uint64_t a = off / STORE_ALIGN * STORE_ALIGN;
            q->off = a;
            q->len = ALIGN_UP(off + st->expert_bytes) - a;
            q->need = off + st->expert_bytes - a;
            q->dst = dst;
            sl->view.data[r] = dst + (off - a);
        } else {
            q->off = off;
            q->len = q->need = st->expert_bytes;
            q->dst = dst;
            sl->view.data[r] = dst;
        }
    }
    sl->loading = sl->nreq > 0;
    sl->pf_fill = prefetch;
    sl->failed = 0;
    if (sl->loading) s->loading[s->n_loading++] = (int32_t)slot_index(s, sl);
}

/* Takes sl's reads into the batch array from position n; returns the new n. */
static int add_reads(store *s, slot *sl, int n)
{
    for (int r = 0; r < sl->nreq; r++) s->batch[n++] = &sl->req[r];
    return n;
}

/* sl's reads as an array of pointers (the batch array may be in use). */
static int own_reads(slot *sl, io_req *out[STORE_ROLE_COUNT])
{
    for (int r = 0; r < sl->nreq; r++) out[r] = &sl->req[r];
    return sl->nreq;
}

static bool fill_done(slot *sl)
{
    for (int r = 0; r < sl->nreq; r++)
        if (!io_done(&sl->req[r])) return false;
    return true;
}

static bool fill_failed(const slot *sl)
{
    for (int r = 0; r < sl->nreq; r++)
        if (sl->req[r].err) return true;
    return false;
}

/* A completed fill: counts its bytes, leaves the loading list; a failed
 * prefetch fill empties the slot. Returns whether the fill failed. */
static bool finish(store *s, slot *sl)
{
    sl->loading = 0;
    for (uint32_t i = 0; i < s->n_loading; i++)
        if (s->loading[i] == (int32_t)slot_index(s, sl)) {
            s->loading[i] = s->loading[--s->n_loading];
            break;
        }
    for (int r = 0; r < sl->nreq; r++) s->st.bytes_read += sl->req[r].got;
    s->st.reads += sl->nreq;
    bool failed = fill_failed(sl);
    sl->failed = failed;
    if (failed && sl->pf_fill) {
        s->st.prefetch_failed++;
        if (sl->pins == 0) store_unmap(s, sl);
    }
    return failed;
}

void store_reap(store *s)
{
    for (uint32_t i = 0; i < s->n_loading;) {
        slot *sl = &s->slots[s->loading[i]];
        if (fill_done(sl)) finish(s, sl); /* swaps the last entry into i */
        else i++;
    }
}

/* Waits until any fill in flight completes (a victim search found only
 * slots being read). */
static void wait_any(store *s)
{
    if (s->n_loading == 0) return;
    io_req *r[STORE_ROLE_COUNT];
    io_wait(s->backend, r, own_reads(&s->slots[s->loading[0]], r));
    store_reap(s);
}

static bool in_ids(const int32_t *ids, int n, int id)
{
    for (int i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

/* Step 2: the prefetches made for this layer meet its real choice. */
static void settle(store *s, int layer, const int32_t *ids, int n)
{
    if (s->guess_layer == layer && !s->guess_planned) {
        int k = s->guess_k < s->guess_n ? s->guess_k : s->guess_n;
        for (int i = 0; i < n; i++) {
            s->st.predicted++;
            s->st.predicted_k += in_ids(s->guess, k, ids[i]);
            s->st.predicted_all += in_ids(s->guess, s->guess_n, ids[i]);
        }
    }
    s->guess_layer = -1;
    for (uint32_t i = 0; i < s->n_pf; i++) {
        slot *sl = &s->slots[s->pf[i]];
        if (!sl->prefetched) continue; /* failed and emptied meanwhile */
        sl->prefetched = 0;
        if (sl->layer == layer && in_ids(ids, n, sl->id)) {
            if (!s->guess_planned) s->st.prefetch_used++;
            continue;
        }
        if (!s->guess_planned) s->st.prefetch_wasted++;
        io_req *r[STORE_ROLE_COUNT];
        if (sl->loading && io_cancel(s->backend, r, own_reads(sl, r))) {
            s->st.prefetch_cancelled++;
            sl->loading = 0;
            for (uint32_t j = 0; j < s->n_loading; j++)
                if (s->loading[j] == s->pf[i]) { s->loading[j] = s->loading[--s->n_loading]; break; }
            store_unmap(s, sl);
        }
    }
    s->n_pf = 0;
}

static void issue_guess(store *s, int layer, const int32_t *ids, int n, int k, bool planned);
static int acquire(store *s, int layer, const int32_t *ids, int n, const store_expert **out, int next_layer,
                   const int32_t *guess, int n_guess, int k, bool planned, mf_error *e);

static int report_failure(store *s, const slot *sl, mf_error *e)
{
    for (int i = 0; i < sl->nreq; i++) {
        const io_req *q = &sl->req[i];
        if (!q->err) continue;
        int file = -1;
        for (int k = 0; k < s->f->n_parts; k++) if (s->fds[k] == q->fd) file = k;
        const char *path = file >= 0 ? s->f->parts[file].path : "?";
        if (q->err == -1)
            return mf_fail(e, "%s: reading expert %d of layer %d at byte %" PRIu64 ": got %" PRIu64 " of %" PRIu64
                              " bytes (the file is shorter than its tensor table says: truncated or changed?)",
                           path, sl->view.id, sl->view.layer, q->off, q->got, q->need);
        return mf_fail(e, "%s: reading expert %d of layer %d at byte %" PRIu64 " (%" PRIu64 " bytes): %s", path,
                       sl->view.id, sl->view.layer, q->off, q->len, strerror(q->err));
    }
    return mf_fail(e, "expert read failed");
}

/* Step 4's victim: waits for fills in flight when only they are left. */
static int64_t find_victim(store *s, int layer, int id)
{
    for (;;) {
        int64_t v = s->policy->ops->victim(s->policy, layer, id, store_slot_busy, s);
        if (v >= 0 || s->n_loading == 0 || s->sim) return v;
        wait_any(s);
    }
}

static void unpin(store *s, int layer, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++) {
        int32_t w = s->where[(size_t)layer * s->n_expert + ids[i]];
        if (w >= 0 && s->slots[w].pins > 0) s->slots[w].pins--;
    }
}

int store_acquire(store *s, int layer, const int32_t *ids, int n, const store_expert **out, mf_error *e)
{
    return store_acquire_next(s, layer, ids, n, out, -1, NULL, 0, 0, e);
}

int store_acquire_next(store *s, int layer, const int32_t *ids, int n, const store_expert **out, int next_layer,
                       const int32_t *guess, int n_guess, int k, mf_error *e)
{
    return acquire(s, layer, ids, n, out, next_layer, guess, n_guess, k, false, e);
}

int store_acquire_plan(store *s, int layer, const int32_t *ids, int n, const store_expert **out, const int32_t *next,
                       int n_next, mf_error *e)
{
    return acquire(s, layer, ids, n, out, layer, next, n_next, n_next, true, e);
}

static int acquire(store *s, int layer, const int32_t *ids, int n, const store_expert **out, int next_layer,
                   const int32_t *guess, int n_guess, int k, bool planned, mf_error *e)
{
    if (layer < 0 || (uint32_t)layer >= s->n_layer || !store_layer_has_experts(s, layer))
        return mf_fail(e, "store: layer %d has no routed experts", layer);
    if ((uint32_t)n > s->min_slots)
        return mf_fail(e, "store: %d experts at once, more than the %u this store was opened for", n, s->min_slots);
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= s->n_expert)
            return mf_fail(e, "store: expert id %d out of range (0..%u)", ids[i], s->n_expert - 1);
        if (in_ids(ids, i, ids[i])) return mf_fail(e, "store: expert %d chosen twice in layer %d", ids[i], layer);
    }
    store_reap(s);
    s->policy->ops->on_step(s->policy, layer);
    settle(s, layer, ids, n);

    /* 3: pin what is there, promote what is on its way */
    int nwait = 0, npromote = 0;
    for (int i = 0; i < n; i++) {
        size_t key = (size_t)layer * s->n_expert + ids[i];
        s->uses[key]++;
        int32_t w = s->where[key];
        if (w < 0) continue;
        slot *sl = &s->slots[w];
        sl->pins++;
        s->policy->ops->on_hit(s->policy, (uint32_t)w, layer, ids[i]);
        if (!sl->loading) { s->st.hits++; continue; }
        s->st.misses++;
        if (sl->pf_fill && !s->guess_planned) s->st.prefetch_late++;
        s->wait_slot[nwait++] = w;
        npromote = add_reads(s, sl, npromote);
    }
    if (npromote) io_promote(s->backend, s->batch, npromote);

    /* 4: misses take victims and are read as demand. A victim search that
     * must wait for fills in flight first submits what is planned, so
     * every slot marked loading has its reads queued. */
    int nsub = 0;
    for (int i = 0; i < n; i++) {
        size_t key = (size_t)layer * s->n_expert + ids[i];
        if (s->where[key] >= 0) continue; /* pinned in step 3 */
        int64_t v = s->policy->ops->victim(s->policy, layer, ids[i], store_slot_busy, s);
        if (v < 0 && nsub) io_submit(s->backend, s->batch, nsub, IO_DEMAND), nsub = 0;
        if (v < 0) v = find_victim(s, layer, ids[i]);
        if (v < 0) {
            if (nsub) io_submit(s->backend, s->batch, nsub, IO_DEMAND);
            unpin(s, layer, ids, n);
            return mf_fail(e, "store: no free slot for expert %d of layer %d (%u slots, all pinned)", ids[i], layer,
                           s->n_slots);
        }
        slot *sl = &s->slots[v];
        if (sl->layer >= 0) s->where[(size_t)sl->layer * s->n_expert + sl->id] = -1;
        sl->layer = layer;
        sl->id = ids[i];
        s->where[key] = (int32_t)v;
        sl->pins++;
        s->st.misses++;
        s->policy->ops->on_insert(s->policy, (uint32_t)v, layer, ids[i], true);
        if (s->sim) {
            s->st.bytes_read += s->sim_bytes;
            s->st.reads++;
            continue;
        }
        plan_reads(s, sl, layer, ids[i], false);
        nsub = add_reads(s, sl, nsub);
        s->wait_slot[nwait++] = (int32_t)v;
    }
    if (nsub) io_submit(s->backend, s->batch, nsub, IO_DEMAND);
    /* the next layer's guess queues behind these demand reads; this
     * layer's experts are pinned, so it cannot evict them */
    if (guess) issue_guess(s, next_layer, guess, n_guess, k, planned);

    /* 5: wait for every chosen slot still being read; a prefetch fill that
     * failed is read again as demand, a demand fill that failed is the
     * caller's error */
    int rc = 0;
    if (nwait) {
        double t0 = now_s();
        for (int round = 0;; round++) {
            int nr = 0;
            for (int i = 0; i < nwait; i++)
                if (s->slots[s->wait_slot[i]].loading) nr = add_reads(s, &s->slots[s->wait_slot[i]], nr);
            if (nr) io_wait(s->backend, s->batch, nr);
            int again = 0;
            for (int i = 0; i < nwait; i++) {
                slot *sl = &s->slots[s->wait_slot[i]];
                if (sl->loading) finish(s, sl);
                if (!sl->failed) continue;
                if (sl->pf_fill && round == 0) {
                    plan_reads(s, sl, sl->layer, sl->id, false);
                    again = add_reads(s, sl, again);
                } else if (!rc) {
                    rc = report_failure(s, sl, e);
                }
            }
            if (again) io_submit(s->backend, s->batch, again, IO_DEMAND);
            if (!again || rc) break;
        }
        s->st.io_wait_s += now_s() - t0;
    }
    if (rc) {
        /* forget every chosen slot whose bytes are not whole; unpin all */
        for (int i = 0; i < nwait; i++) {
            slot *sl = &s->slots[s->wait_slot[i]];
            io_req *r[STORE_ROLE_COUNT];
            if (sl->loading) {
                io_wait(s->backend, r, own_reads(sl, r));
                finish(s, sl);
            }
            if (sl->failed) {
                sl->pins = 0;
                store_unmap(s, sl);
            }
        }
        unpin(s, layer, ids, n);
        return rc;
    }
    for (int i = 0; i < n; i++) {
        slot *sl = &s->slots[s->where[(size_t)layer * s->n_expert + ids[i]]];
        sl->view.layer = layer;
        sl->view.id = ids[i];
        out[i] = &sl->view;
    }
    return 0;
}

void store_release(store *s, int layer, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= s->n_expert) continue;
        int32_t w = s->where[(size_t)layer * s->n_expert + ids[i]];
        if (w >= 0 && s->slots[w].pins > 0) s->slots[w].pins--;
    }
}

/* Records the guess and reads what is not cached at prefetch priority. */
static void issue_guess(store *s, int layer, const int32_t *ids, int n, int k, bool planned)
{
    if (layer < 0 || (uint32_t)layer >= s->n_layer || !s->slots || !store_layer_has_experts(s, layer)) return;
    /* keep the valid, distinct ids of the guess in order */
    int m = 0;
    for (int i = 0; i < n && m < (int)s->n_expert; i++)
        if (ids[i] >= 0 && (uint32_t)ids[i] < s->n_expert && !in_ids(s->guess, m, ids[i])) s->guess[m++] = ids[i];
    s->guess_layer = layer;
    s->guess_n = m;
    s->guess_k = k < m ? k : m;
    s->guess_planned = planned;
    if (!(planned ? s->plan_on : s->prefetch_on)) return;
    /* the guess's cached experts are pinned while it evicts for the others */
    int npin = 0;
    for (int i = 0; i < m; i++) {
        int32_t w = s->where[(size_t)layer * s->n_expert + s->guess[i]];
        if (w >= 0) s->slots[w].pins++, s->guard[npin++] = w;
    }
    int nsub = 0;
    for (int i = 0; i < m && s->n_pf < s->n_slots; i++) {
        size_t key = (size_t)layer * s->n_expert + s->guess[i];
        if (s->where[key] >= 0) continue;
        int64_t v = s->policy->ops->victim(s->policy, layer, s->guess[i], store_slot_busy, s);
        if (v < 0) break; /* everything else is pinned or in flight: a hint gives way */
        slot *sl = &s->slots[v];
        if (sl->layer >= 0) s->where[(size_t)sl->layer * s->n_expert + sl->id] = -1;
        sl->layer = layer;
        sl->id = s->guess[i];
        s->where[key] = (int32_t)v;
        sl->prefetched = 1;
        s->pf[s->n_pf++] = (int32_t)v;
        s->policy->ops->on_insert(s->policy, (uint32_t)v, layer, s->guess[i], false);
        plan_reads(s, sl, layer, s->guess[i], true);
        nsub = add_reads(s, sl, nsub);
        if (planned) s->st.planned_reads++;
        else s->st.prefetch_issued++;
    }
    for (int i = 0; i < npin; i++) s->slots[s->guard[i]].pins--;
    if (nsub) io_submit(s->backend, s->batch, nsub, IO_PREFETCH);
}

void store_prefetch(store *s, int layer, const int32_t *ids, int n, int k)
{
    if (s->prefetch_on) store_reap(s);
    issue_guess(s, layer, ids, n, k, false);
}
