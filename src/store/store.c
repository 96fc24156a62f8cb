/* store.c — index, slot cache (LRU) and synchronous pread of misses.
 *
 * The one idea: a slot holds one whole expert (all its roles, each 4 KiB
 * aligned inside the slot), so a hit costs a table lookup and a miss one
 * read per role. Pinned slots (refcount > 0) are never victims; with at
 * least K slots a layer's K experts always fit, which store_open checks.
 * Reading is synchronous here; reader threads, O_DIRECT and io_uring are
 * the I/O backends' business and plug in behind store_read_expert().
 */
#include "store/store.h"
#include "engine/plan.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STORE_ALIGN 4096

static const char *const role_suffix[STORE_ROLE_COUNT] = {
    "ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight", "ffn_gate_up_exps.weight",
    "ffn_gate_exps.bias", "ffn_up_exps.bias", "ffn_down_exps.bias", "ffn_gate_up_exps.bias",
};

typedef struct slot {
    uint8_t *mem;
    int32_t layer, id;       /* -1: empty */
    int32_t pins;
    uint64_t last_use;       /* LRU clock */
    store_expert view;
} slot;

struct store {
    const gguf_file *f;
    uint32_t n_layer, n_expert;
    store_tensor *roles;     /* n_layer x STORE_ROLE_COUNT */
    int *fds;                /* one per file part */
    uint64_t slot_bytes;
    uint32_t n_slots;
    slot *slots;
    uint8_t *arena;
    int32_t *where;          /* (layer, expert) -> slot or -1 */
    uint64_t clock;
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
    s->slot_bytes = 0;
    for (uint32_t l = 0; l < s->n_layer; l++) {
        uint64_t off = 0;
        for (int r = 0; r < STORE_ROLE_COUNT; r++) {
            store_tensor *st = &s->roles[(size_t)l * STORE_ROLE_COUNT + r];
            if (!st->t) continue;
            st->slot_offset = off;
            off += (st->expert_bytes + STORE_ALIGN - 1) / STORE_ALIGN * STORE_ALIGN;
        }
        if (off > s->slot_bytes) s->slot_bytes = off;
    }
    return 0;
}

store *store_open(const gguf_file *f, uint32_t n_layer, uint32_t n_expert, uint32_t min_slots,
                  const store_params *p, mf_error *e)
{
    store *s = calloc(1, sizeof *s);
    if (!s) { mf_fail(e, "out of memory"); return NULL; }
    s->f = f;
    s->n_layer = n_layer;
    s->n_expert = n_expert;
    s->roles = calloc((size_t)n_layer * STORE_ROLE_COUNT + 1, sizeof *s->roles);
    s->where = malloc(((size_t)n_layer * n_expert + 1) * sizeof *s->where);
    s->fds = malloc((size_t)f->n_parts * sizeof *s->fds);
    if (!s->roles || !s->where || !s->fds) { mf_fail(e, "out of memory"); goto fail; }
    for (int i = 0; i < f->n_parts; i++) s->fds[i] = -1;
    for (size_t i = 0; i < (size_t)n_layer * n_expert; i++) s->where[i] = -1;
    if (n_expert && build_index(s, e)) goto fail;
    for (int i = 0; i < f->n_parts; i++) {
        s->fds[i] = open(f->parts[i].path, O_RDONLY | O_CLOEXEC);
        if (s->fds[i] < 0) { mf_fail(e, "%s: cannot open: %s", f->parts[i].path, strerror(errno)); goto fail; }
    }
    if (s->slot_bytes == 0) return s; /* a dense model: nothing to stream */

    uint64_t all = 0;
    for (uint32_t l = 0; l < n_layer; l++)
        if (store_layer_has_experts(s, l)) all += n_expert;
    uint64_t want = p && p->cache_bytes ? p->cache_bytes / s->slot_bytes : all;
    if (want > all) want = all;
    if (want < min_slots) {
        mf_fail(e, "cache of %" PRIu64 " bytes holds %" PRIu64 " experts of %" PRIu64 " bytes; one layer needs %u: "
                   "use --cache %" PRIu64 "M or more",
                p ? p->cache_bytes : 0, want, s->slot_bytes, min_slots,
                ((uint64_t)min_slots * s->slot_bytes + (1 << 20) - 1) >> 20);
        goto fail;
    }
    s->n_slots = (uint32_t)want;
    s->slots = calloc(s->n_slots, sizeof *s->slots);
    if (!s->slots || posix_memalign((void **)&s->arena, STORE_ALIGN, (size_t)(s->n_slots * s->slot_bytes)) != 0) {
        s->arena = NULL;
        mf_fail(e, "cannot allocate the expert cache: %u slots of %" PRIu64 " bytes", s->n_slots, s->slot_bytes);
        goto fail;
    }
    for (uint32_t i = 0; i < s->n_slots; i++) {
        s->slots[i].mem = s->arena + (size_t)i * s->slot_bytes;
        s->slots[i].layer = s->slots[i].id = -1;
    }
    return s;
fail:
    store_close(s);
    return NULL;
}

void store_close(store *s)
{
    if (!s) return;
    if (s->fds)
        for (int i = 0; i < s->f->n_parts; i++)
            if (s->fds[i] >= 0) close(s->fds[i]);
    free(s->fds);
    free(s->roles);
    free(s->where);
    free(s->slots);
    free(s->arena);
    free(s);
}

/* Reads every role of expert (layer, id) into slot sl. */
static int store_read_expert(store *s, slot *sl, int layer, int id, mf_error *e)
{
    const store_tensor *roles = store_layer_roles(s, layer);
    double t0 = now_s();
    for (int r = 0; r < STORE_ROLE_COUNT; r++) {
        const store_tensor *st = &roles[r];
        if (!st->t) continue;
        const gguf_part *part = &s->f->parts[st->t->file];
        uint64_t off = st->t->offset + (uint64_t)id * st->expert_bytes;
        uint8_t *dst = sl->mem + st->slot_offset;
        uint64_t done = 0;
        while (done < st->expert_bytes) {
            ssize_t n = pread(s->fds[st->t->file], dst + done, st->expert_bytes - done, (off_t)(off + done));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0)
                return mf_fail(e, "%s: reading expert %d of layer %d (%s) at byte %" PRIu64 ": %s", part->path, id,
                               layer, st->t->name, off + done,
                               n < 0 ? strerror(errno) : "unexpected end of file (the file shrank?)");
            done += (uint64_t)n;
            s->st.reads++;
        }
        s->st.bytes_read += st->expert_bytes;
    }
    s->st.io_wait_s += now_s() - t0;
    return 0;
}

static slot *pick_victim(store *s)
{
    slot *best = NULL;
    for (uint32_t i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        if (sl->pins) continue;
        if (sl->layer < 0) return sl;
        if (!best || sl->last_use < best->last_use) best = sl;
    }
    return best;
}

int store_acquire(store *s, int layer, const int32_t *ids, int n, const store_expert **out, mf_error *e)
{
    if (layer < 0 || (uint32_t)layer >= s->n_layer || !store_layer_has_experts(s, layer))
        return mf_fail(e, "store: layer %d has no routed experts", layer);
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || (uint32_t)id >= s->n_expert) {
            store_release(s, layer, ids, i);
            return mf_fail(e, "store: expert id %d out of range (0..%u)", id, s->n_expert - 1);
        }
        int32_t *w = &s->where[(size_t)layer * s->n_expert + id];
        slot *sl;
        if (*w >= 0) {
            sl = &s->slots[*w];
            s->st.hits++;
        } else {
            sl = pick_victim(s);
            if (!sl) {
                store_release(s, layer, ids, i);
                return mf_fail(e, "store: no free slot for expert %d of layer %d (%u slots, all pinned)", id, layer,
                               s->n_slots);
            }
            if (sl->layer >= 0) s->where[(size_t)sl->layer * s->n_expert + sl->id] = -1;
            sl->layer = sl->id = -1;
            s->st.misses++;
            if (store_read_expert(s, sl, layer, id, e)) {
                store_release(s, layer, ids, i);
                return -1;
            }
            sl->layer = layer;
            sl->id = id;
            *w = (int32_t)(sl - s->slots);
            sl->view.layer = layer;
            sl->view.id = id;
            const store_tensor *roles = store_layer_roles(s, layer);
            for (int r = 0; r < STORE_ROLE_COUNT; r++)
                sl->view.data[r] = roles[r].t ? sl->mem + roles[r].slot_offset : NULL;
        }
        sl->pins++;
        sl->last_use = ++s->clock;
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

void store_get_stats(const store *s, store_stats *out) { *out = s->st; }
void store_reset_stats(store *s) { memset(&s->st, 0, sizeof s->st); }
uint64_t store_slot_bytes(const store *s) { return s->slot_bytes; }
uint32_t store_slot_count(const store *s) { return s->n_slots; }
