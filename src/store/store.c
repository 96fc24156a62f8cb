/* store.c — the expert index, the slots under one budget, opening and
 * closing, counters. Reading experts (demand and prefetch) is in
 * store_fetch.c.
 *
 * The one idea: a slot holds one whole expert (all its roles, each at a
 * 4 KiB-aligned place in the slot), so a hit costs a table lookup and a
 * miss one read per role, read in parallel with the layer's other misses.
 * Pinned slots (pins > 0), slots being read and prefetched slots waiting
 * for their layer are never victims; with at least K slots a layer's K
 * experts always fit, which store_open checks. With O_DIRECT the read
 * covers the aligned superset of an extent and the role's pointer is set
 * to the wanted byte inside it.
 */
#include "store/store_int.h"
#include "engine/plan.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const role_suffix[STORE_ROLE_COUNT] = {
    "ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight", "ffn_gate_up_exps.weight",
    "ffn_gate_exps.bias", "ffn_up_exps.bias", "ffn_down_exps.bias", "ffn_gate_up_exps.bias",
};

const store_tensor *store_layer_roles(const store *s, int layer) { return &s->roles[(size_t)layer * STORE_ROLE_COUNT]; }

bool store_layer_has_experts(const store *s, int layer)
{
    if (s->sim) return layer >= 0 && (uint32_t)layer < s->n_layer;
    const store_tensor *r = store_layer_roles(s, layer);
    for (int i = 0; i < STORE_ROLE_COUNT; i++)
        if (r[i].t) return true;
    return false;
}

bool store_slot_busy(void *ctx, uint32_t i)
{
    const slot *sl = &((store *)ctx)->slots[i];
    return sl->pins > 0 || sl->loading || sl->prefetched;
}

/* Forgets what sl holds (its bytes are not whole, or not wanted). */
void store_unmap(store *s, slot *sl)
{
    if (sl->layer >= 0) s->where[(size_t)sl->layer * s->n_expert + sl->id] = -1;
    sl->layer = sl->id = -1;
    sl->prefetched = 0;
    s->policy->ops->on_remove(s->policy, (uint32_t)(sl - s->slots));
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

static store *store_new(uint32_t n_layer, uint32_t n_expert, uint32_t min_slots, mf_error *e)
{
    store *s = calloc(1, sizeof *s);
    if (!s) { mf_fail(e, "out of memory"); return NULL; }
    s->n_layer = n_layer;
    s->n_expert = n_expert;
    s->min_slots = min_slots ? min_slots : 1;
    s->guess_layer = -1;
    s->roles = calloc((size_t)n_layer * STORE_ROLE_COUNT + 1, sizeof *s->roles);
    s->where = malloc(((size_t)n_layer * n_expert + 1) * sizeof *s->where);
    s->uses = calloc((size_t)n_layer * n_expert + 1, sizeof *s->uses);
    s->wait_slot = calloc(s->min_slots, sizeof *s->wait_slot);
    s->guess = calloc((size_t)n_expert + 1, sizeof *s->guess);
    s->guard = calloc((size_t)n_expert + 1, sizeof *s->guard);
    if (!s->roles || !s->where || !s->uses || !s->wait_slot || !s->guess || !s->guard) {
        mf_fail(e, "out of memory");
        store_close(s);
        return NULL;
    }
    for (size_t i = 0; i < (size_t)n_layer * n_expert; i++) s->where[i] = -1;
    return s;
}

static int set_policy(store *s, const char *name, const char *hot_set, mf_error *e)
{
    store_policy_params pp = { s->n_slots, s->n_layer, s->n_expert, s->min_slots, hot_set };
    store_policy *p = policy_new(name, &pp, e);
    if (!p) return -1;
    if (s->policy) s->policy->ops->free(s->policy);
    s->policy = p;
    free(s->hot_set);
    s->hot_set = hot_set ? strdup(hot_set) : NULL;
    return 0;
}

/* Slots, their reads and the bookkeeping arrays, once n_slots is known. */
static int alloc_slots(store *s, const char *policy, const char *hot_set, mf_error *e)
{
    size_t nr = (size_t)s->n_slots * STORE_ROLE_COUNT;
    s->slots = calloc(s->n_slots, sizeof *s->slots);
    s->reqs = calloc(nr, sizeof *s->reqs);
    s->batch = calloc(nr, sizeof *s->batch);
    s->loading = calloc(s->n_slots, sizeof *s->loading);
    s->pf = calloc(s->n_slots, sizeof *s->pf);
    if (!s->slots || !s->reqs || !s->batch || !s->loading || !s->pf) return mf_fail(e, "out of memory");
    if (!s->sim && s->slot_bytes) {
        if (posix_memalign((void **)&s->arena, STORE_ALIGN, (size_t)(s->n_slots * s->slot_bytes)) != 0) {
            s->arena = NULL;
            return mf_fail(e, "cannot allocate the expert cache: %u slots of %" PRIu64 " bytes", s->n_slots,
                           s->slot_bytes);
        }
    }
    for (uint32_t i = 0; i < s->n_slots; i++) {
        s->slots[i].mem = s->arena ? s->arena + (size_t)i * s->slot_bytes : NULL;
        s->slots[i].layer = s->slots[i].id = -1;
        s->slots[i].req = &s->reqs[(size_t)i * STORE_ROLE_COUNT];
    }
    return set_policy(s, policy, hot_set, e);
}

/* Prefetch needs room for the running layer's K pinned experts and the
 * next layer's guess besides; below that it would only evict what the
 * demand reads are about to need. */
static bool room_for_prefetch(const store *s) { return s->n_slots >= 2 * s->min_slots && !s->sim; }

store *store_open(const gguf_file *f, uint32_t n_layer, uint32_t n_expert, uint32_t min_slots,
                  const store_params *p, mf_error *e)
{
    store_params def = { 0 };
    if (!p) p = &def;
    store *s = store_new(n_layer, n_expert, min_slots, e);
    if (!s) return NULL;
    s->f = f;
    s->io = (io_kind)p->io;
    s->fds = malloc((size_t)f->n_parts * sizeof *s->fds);
    if (!s->fds) { mf_fail(e, "out of memory"); goto fail; }
    for (int i = 0; i < f->n_parts; i++) s->fds[i] = -1;
    if (n_expert && build_index(s, e)) goto fail;
    if (s->slot_bytes == 0) return s; /* a dense model: nothing to stream */
    if (open_fds(s, e)) goto fail;

    uint64_t all = 0;
    for (uint32_t l = 0; l < n_layer; l++)
        if (store_layer_has_experts(s, l)) all += n_expert;
    uint64_t want = p->cache_slots ? p->cache_slots : p->cache_bytes ? p->cache_bytes / s->slot_bytes : all;
    if (want > all) want = all;
    if (want < s->min_slots) {
        mf_fail(e, "an expert cache of %" PRIu64 " MiB holds %" PRIu64 " experts of %" PRIu64
                   " bytes, but one layer needs %u at once: use --cache %" PRIu64 "M or more",
                p->cache_bytes >> 20, want, s->slot_bytes, s->min_slots,
                ((uint64_t)s->min_slots * s->slot_bytes + (1 << 20) - 1) >> 20);
        goto fail;
    }
    s->n_slots = (uint32_t)want;
    if (alloc_slots(s, p->policy, p->hot_set, e)) goto fail;
    const char *why = NULL;
    s->backend = io_open(s->io, p->io_threads, &why);
    if (!s->backend) { mf_fail(e, "--io %s: %s", io_kind_name(s->io), why); goto fail; }
    s->prefetch_on = !p->no_prefetch && room_for_prefetch(s);
    s->plan_on = room_for_prefetch(s);
    return s;
fail:
    store_close(s);
    return NULL;
}

store *store_open_sim(uint32_t n_layer, uint32_t n_expert, uint32_t min_slots, uint32_t n_slots,
                      uint64_t expert_bytes, const char *policy, const char *hot_set, mf_error *e)
{
    store *s = store_new(n_layer, n_expert, min_slots, e);
    if (!s) return NULL;
    s->sim = true;
    s->sim_bytes = expert_bytes;
    s->slot_bytes = expert_bytes;
    uint64_t all = (uint64_t)n_layer * n_expert;
    if (n_slots > all) n_slots = (uint32_t)all;
    if (n_slots < s->min_slots) {
        mf_fail(e, "a cache of %u experts, but one step needs %u at once", n_slots, s->min_slots);
        store_close(s);
        return NULL;
    }
    s->n_slots = n_slots;
    if (alloc_slots(s, policy, hot_set, e)) { store_close(s); return NULL; }
    return s;
}

int store_configure(store *s, bool prefetch, const char *hot_set, mf_error *e)
{
    if (!s->slots) return 0; /* nothing streamed */
    s->prefetch_on = prefetch && room_for_prefetch(s);
    if (!hot_set) return 0;
    if (strcmp(s->policy->ops->name, "hot"))
        return mf_fail(e, "--hot-set %s: the hot set belongs to --policy hot, not %s", hot_set, s->policy->ops->name);
    return set_policy(s, "hot", hot_set, e);
}

void store_close(store *s)
{
    if (!s) return;
    io_close(s->backend); /* reads in flight land before the arena goes */
    if (s->hot_set) {
        mf_error e;
        if (policy_save(s->policy, s->hot_set, &e)) fprintf(stderr, "moeflash: %s\n", e.msg);
    }
    if (s->fds && s->f)
        for (int i = 0; i < s->f->n_parts; i++)
            if (s->fds[i] >= 0) close(s->fds[i]);
    if (s->policy) s->policy->ops->free(s->policy);
    free(s->hot_set);
    free(s->fds);
    free(s->roles);
    free(s->where);
    free(s->uses);
    free(s->slots);
    free(s->reqs);
    free(s->batch);
    free(s->loading);
    free(s->pf);
    free(s->wait_slot);
    free(s->guess);
    free(s->guard);
    free(s->arena);
    free(s);
}

void store_inject_fault(store *s, uint64_t nth, int kind)
{
    if (s->backend) io_inject_fault(s->backend, nth, kind);
}

uint64_t store_expert_uses(const store *s, int layer, int expert)
{
    if (layer < 0 || (uint32_t)layer >= s->n_layer || expert < 0 || (uint32_t)expert >= s->n_expert) return 0;
    return s->uses[(size_t)layer * s->n_expert + expert];
}

bool store_prefetch_enabled(const store *s) { return s->prefetch_on; }
void store_get_stats(const store *s, store_stats *out) { *out = s->st; }
void store_reset_stats(store *s) { memset(&s->st, 0, sizeof s->st); }
uint64_t store_slot_bytes(const store *s) { return s->slot_bytes; }
uint32_t store_slot_count(const store *s) { return s->n_slots; }
const char *store_policy_name(const store *s) { return s->policy ? s->policy->ops->name : policy_default_name(); }
