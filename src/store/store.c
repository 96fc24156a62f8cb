/* store.c — the expert index, the slot cache, and demand reads of misses.
 *
 * The one idea: a slot holds one whole expert (all its roles, each at a
 * 4 KiB-aligned place in the slot), so a hit costs a table lookup and a
 * miss one read per role, and a layer's misses are read as one parallel
 * batch through the I/O backend. Pinned slots (pins > 0) are never
 * victims; with at least K slots a layer's K experts always fit, which
 * store_open checks. With O_DIRECT the read covers the aligned superset of
 * an extent and the role's pointer is set to the wanted byte inside it.
 * A failed read leaves the slot empty and the error names file and offset.
 */
#include "store/store.h"
#include "store/io.h"
#include "store/policy.h"
#include "engine/plan.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STORE_ALIGN 4096ull
#define ALIGN_UP(x) (((x) + STORE_ALIGN - 1) / STORE_ALIGN * STORE_ALIGN)

static const char *const role_suffix[STORE_ROLE_COUNT] = {
    "ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight", "ffn_gate_up_exps.weight",
    "ffn_gate_exps.bias", "ffn_up_exps.bias", "ffn_down_exps.bias", "ffn_gate_up_exps.bias",
};

typedef struct slot {
    uint8_t *mem;
    int32_t layer, id;       /* -1: empty */
    int32_t pins;
    store_expert view;
} slot;

struct store {
    const gguf_file *f;
    uint32_t n_layer, n_expert;
    store_tensor *roles;     /* n_layer x STORE_ROLE_COUNT */
    int *fds;                /* one per file part (O_DIRECT for direct) */
    io_kind io;
    io_backend *backend;
    store_policy *policy;
    uint64_t slot_bytes;
    uint32_t n_slots;
    slot *slots;
    uint8_t *arena;
    int32_t *where;          /* (layer, expert) -> slot or -1 */
    io_req *reqs;            /* one batch: K experts x roles */
    int32_t *req_slot;
    uint32_t max_batch;
    uint64_t *uses;          /* (layer, expert) -> times acquired */
    store_stats st;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const store_tensor *store_layer_roles(const store *s, int layer) { return &s->roles[(size_t)layer * STORE_ROLE_COUNT]; }

bool store_layer_has_experts(const store *s, int layer)
{
    const store_tensor *r = store_layer_roles(s, layer);
    for (int i = 0; i < STORE_ROLE_COUNT; i++)
        if (r[i].t) return true;
    return false;
}

static int build_index(store *s, mf_error *e)
{
    const char *path = s->f->parts[0].path;
    for (uint64_t i = 0; i < s->f->n_tensors; i++) {
        const gguf_tensor *t = &s->f->tensors[i];
        const char *rest;
        int l = plan_tensor_layer(t->name, &rest);
        if (l < 0 || (uint32_t)l >= s->n_layer || !plan_is_expert_tensor(rest)) continue;
        int role = -1;
        for (int r = 0; r < STORE_ROLE_COUNT; r++)
            if (!strcmp(rest, role_suffix[r])) role = r;
        if (role < 0) return mf_fail(e, "%s: tensor %s: not a routed-expert tensor this engine knows", path, t->name);
        uint64_t last = t->ne[t->n_dims - 1];
        if (t->n_dims < 2 || last != s->n_expert)
            return mf_fail(e, "%s: tensor %s: expected %u experts in its last dimension, found %" PRIu64, path, t->name,
                           s->n_expert, last);
        store_tensor *st = &s->roles[(size_t)l * STORE_ROLE_COUNT + role];
        st->t = t;
        st->expert_bytes = t->nbytes / s->n_expert;
    }
    /* each role gets its aligned size plus one page, room for the aligned
     * superset an O_DIRECT read of an unaligned extent covers */
    s->slot_bytes = 0;
    for (uint32_t l = 0; l < s->n_layer; l++) {
        uint64_t off = 0;
        for (int r = 0; r < STORE_ROLE_COUNT; r++) {
            store_tensor *st = &s->roles[(size_t)l * STORE_ROLE_COUNT + r];
            if (!st->t) continue;
            st->slot_offset = off;
            off += ALIGN_UP(st->expert_bytes) + (s->io == IO_DIRECT ? STORE_ALIGN : 0);
        }
        if (off > s->slot_bytes) s->slot_bytes = off;
    }
    return 0;
}

static int open_fds(store *s, mf_error *e)
{
    for (int i = 0; i < s->f->n_parts; i++) {
        int flags = O_RDONLY | O_CLOEXEC | (s->io == IO_DIRECT ? O_DIRECT : 0);
        s->fds[i] = open(s->f->parts[i].path, flags);
        if (s->fds[i] < 0)
            return mf_fail(e, "%s: cannot open%s: %s", s->f->parts[i].path, s->io == IO_DIRECT ? " with O_DIRECT" : "",
                           strerror(errno));
    }
    return 0;
}

store *store_open(const gguf_file *f, uint32_t n_layer, uint32_t n_expert, uint32_t min_slots,
                  const store_params *p, mf_error *e)
{
    store_params def = { 0 };
    if (!p) p = &def;
    store *s = calloc(1, sizeof *s);
    if (!s) { mf_fail(e, "out of memory"); return NULL; }
    s->f = f;
    s->n_layer = n_layer;
    s->n_expert = n_expert;
    s->io = (io_kind)p->io;
    s->roles = calloc((size_t)n_layer * STORE_ROLE_COUNT + 1, sizeof *s->roles);
    s->where = malloc(((size_t)n_layer * n_expert + 1) * sizeof *s->where);
    s->fds = malloc((size_t)f->n_parts * sizeof *s->fds);
    s->uses = calloc((size_t)n_layer * n_expert + 1, sizeof *s->uses);
    if (!s->roles || !s->where || !s->fds || !s->uses) { mf_fail(e, "out of memory"); goto fail; }
    for (int i = 0; i < f->n_parts; i++) s->fds[i] = -1;
    for (size_t i = 0; i < (size_t)n_layer * n_expert; i++) s->where[i] = -1;
    if (n_expert && build_index(s, e)) goto fail;
    if (s->slot_bytes == 0) return s; /* a dense model: nothing to stream */
    if (open_fds(s, e)) goto fail;

    uint64_t all = 0;
    for (uint32_t l = 0; l < n_layer; l++)
        if (store_layer_has_experts(s, l)) all += n_expert;
    uint64_t want = p->cache_bytes ? p->cache_bytes / s->slot_bytes : all;
    if (want > all) want = all;
    if (want < min_slots) {
        mf_fail(e, "an expert cache of %" PRIu64 " MiB holds %" PRIu64 " experts of %" PRIu64
                   " bytes, but one layer needs %u at once: use --cache %" PRIu64 "M or more",
                p->cache_bytes >> 20, want, s->slot_bytes, min_slots,
                ((uint64_t)min_slots * s->slot_bytes + (1 << 20) - 1) >> 20);
        goto fail;
    }
    s->n_slots = (uint32_t)want;
    s->slots = calloc(s->n_slots, sizeof *s->slots);
    s->policy = policy_new(p->policy, s->n_slots);
    s->max_batch = (min_slots ? min_slots : 1) * STORE_ROLE_COUNT;
    s->reqs = calloc(s->max_batch, sizeof *s->reqs);
    s->req_slot = calloc(s->max_batch, sizeof *s->req_slot);
    if (!s->slots || !s->policy || !s->reqs || !s->req_slot) {
        mf_fail(e, p->policy && !s->policy ? "unknown cache policy '%s'" : "out of memory", p->policy);
        goto fail;
    }
    if (posix_memalign((void **)&s->arena, STORE_ALIGN, (size_t)(s->n_slots * s->slot_bytes)) != 0) {
        s->arena = NULL;
        mf_fail(e, "cannot allocate the expert cache: %u slots of %" PRIu64 " bytes", s->n_slots, s->slot_bytes);
        goto fail;
    }
    for (uint32_t i = 0; i < s->n_slots; i++) {
        s->slots[i].mem = s->arena + (size_t)i * s->slot_bytes;
        s->slots[i].layer = s->slots[i].id = -1;
    }
    const char *why = NULL;
    s->backend = io_open(s->io, p->io_threads, &why);
    if (!s->backend) { mf_fail(e, "--io %s: %s", io_kind_name(s->io), why); goto fail; }
    return s;
fail:
    store_close(s);
    return NULL;
}

void store_close(store *s)
{
    if (!s) return;
    io_close(s->backend);
    if (s->fds)
        for (int i = 0; i < s->f->n_parts; i++)
            if (s->fds[i] >= 0) close(s->fds[i]);
    if (s->policy) s->policy->ops->free(s->policy);
    free(s->fds);
    free(s->roles);
    free(s->where);
    free(s->uses);
    free(s->slots);
    free(s->reqs);
    free(s->req_slot);
    free(s->arena);
    free(s);
}

static bool slot_pinned(void *ctx, uint32_t i) { return ((store *)ctx)->slots[i].pins > 0; }

/* Adds the read requests of expert (layer, id) into slot sl to the batch. */
static void plan_reads(store *s, slot *sl, int layer, int id, int *n)
{
    const store_tensor *roles = store_layer_roles(s, layer);
    sl->view.layer = layer;
    sl->view.id = id;
    for (int r = 0; r < STORE_ROLE_COUNT; r++) {
        const store_tensor *st = &roles[r];
        sl->view.data[r] = NULL;
        if (!st->t) continue;
        uint64_t off = st->t->offset + (uint64_t)id * st->expert_bytes;
        uint8_t *dst = sl->mem + st->slot_offset;
        io_req *q = &s->reqs[*n];
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
        s->req_slot[*n] = (int32_t)(sl - s->slots);
        (*n)++;
    }
}

static int report_failure(store *s, int n, mf_error *e)
{
    for (int i = 0; i < n; i++) {
        io_req *q = &s->reqs[i];
        if (!q->err) continue;
        slot *sl = &s->slots[s->req_slot[i]];
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

int store_acquire(store *s, int layer, const int32_t *ids, int n, const store_expert **out, mf_error *e)
{
    if (layer < 0 || (uint32_t)layer >= s->n_layer || !store_layer_has_experts(s, layer))
        return mf_fail(e, "store: layer %d has no routed experts", layer);
    if ((uint32_t)n * STORE_ROLE_COUNT > s->max_batch)
        return mf_fail(e, "store: %d experts at once, more than the %u this store was opened for", n,
                       s->max_batch / STORE_ROLE_COUNT);
    int nreq = 0, pinned = 0;
    for (int i = 0; i < n; i++, pinned++) {
        int id = ids[i];
        if (id < 0 || (uint32_t)id >= s->n_expert) {
            store_release(s, layer, ids, pinned);
            return mf_fail(e, "store: expert id %d out of range (0..%u)", id, s->n_expert - 1);
        }
        int32_t *w = &s->where[(size_t)layer * s->n_expert + id];
        s->uses[(size_t)layer * s->n_expert + id]++;
        slot *sl;
        if (*w >= 0) {
            sl = &s->slots[*w];
            s->st.hits++;
            s->policy->ops->on_hit(s->policy, (uint32_t)*w, layer, id);
        } else {
            int64_t v = s->policy->ops->victim(s->policy, slot_pinned, s);
            if (v < 0) {
                store_release(s, layer, ids, pinned);
                return mf_fail(e, "store: no free slot for expert %d of layer %d (%u slots, all pinned)", id, layer,
                               s->n_slots);
            }
            sl = &s->slots[v];
            if (sl->layer >= 0) s->where[(size_t)sl->layer * s->n_expert + sl->id] = -1;
            sl->layer = layer;
            sl->id = id;
            *w = (int32_t)v;
            s->st.misses++;
            s->policy->ops->on_insert(s->policy, (uint32_t)v, layer, id);
            plan_reads(s, sl, layer, id, &nreq);
        }
        sl->pins++;
        out[i] = &sl->view;
    }
    if (nreq == 0) return 0;
    double t0 = now_s();
    int rc = io_read_batch(s->backend, s->reqs, nreq);
    s->st.io_wait_s += now_s() - t0;
    s->st.reads += (uint64_t)nreq;
    for (int i = 0; i < nreq; i++) s->st.bytes_read += s->reqs[i].got;
    if (rc == 0) return 0;
    /* forget every slot this batch was filling: their bytes are not whole */
    rc = report_failure(s, nreq, e);
    for (int i = 0; i < nreq; i++) {
        slot *sl = &s->slots[s->req_slot[i]];
        if (sl->layer >= 0) s->where[(size_t)sl->layer * s->n_expert + sl->id] = -1;
        sl->layer = sl->id = -1;
    }
    for (int i = 0; i < n; i++) {
        int32_t w = s->where[(size_t)layer * s->n_expert + ids[i]];
        if (w >= 0 && s->slots[w].pins > 0) s->slots[w].pins--;
    }
    /* slots emptied above were pinned by this call: unpin them too */
    for (int i = 0; i < nreq; i++) s->slots[s->req_slot[i]].pins = 0;
    return rc;
}

void store_release(store *s, int layer, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= s->n_expert) continue;
        int32_t w = s->where[(size_t)layer * s->n_expert + ids[i]];
        if (w >= 0 && s->slots[w].pins > 0) s->slots[w].pins--;
    }
}

void store_inject_fault(store *s, uint64_t nth, int kind)
{
    if (s->backend) io_inject_fault(s->backend, nth, (io_fault_kind)kind);
}

uint64_t store_expert_uses(const store *s, int layer, int expert)
{
    if (layer < 0 || (uint32_t)layer >= s->n_layer || expert < 0 || (uint32_t)expert >= s->n_expert) return 0;
    return s->uses[(size_t)layer * s->n_expert + expert];
}

void store_get_stats(const store *s, store_stats *out) { *out = s->st; }
void store_reset_stats(store *s) { memset(&s->st, 0, sizeof s->st); }
uint64_t store_slot_bytes(const store *s) { return s->slot_bytes; }
uint32_t store_slot_count(const store *s) { return s->n_slots; }
