/* policy_lru.c — least recently used, globally ("lru") and under per-layer
 * quotas ("lru-layer").
 *
 * Global LRU is the baseline every other policy is measured against. Its
 * known weakness on MoE routing: a cache smaller than one token's working
 * set (layers x K) is swept by the layer cycle, each expert evicted just
 * before its next use, and scores 0% in decode. Per-layer quotas give each
 * layer n_slots / n_layer slots with LRU inside the layer, so one layer's
 * misses cannot flush another's experts. Empty slots have time 0 and are
 * taken first. The victim search is a scan of the slots: a few thousand at
 * most, next to a disk read of hundreds of microseconds.
 */
#include "store/policy.h"

#include <stdlib.h>
#include <string.h>

typedef struct lru {
    store_policy base;
    uint64_t clock;
    uint64_t *last;          /* per slot; 0: empty */
    int32_t *layer;          /* per slot; -1: empty (lru-layer) */
    uint32_t *count;         /* per layer: slots held (lru-layer) */
} lru;

static void lru_step(store_policy *p, int layer) { (void)p, (void)layer; }

static void lru_hit(store_policy *p, uint32_t slot, int layer, int expert)
{
    (void)layer, (void)expert;
    lru *l = (lru *)p;
    l->last[slot] = ++l->clock;
}

static void lru_insert(store_policy *p, uint32_t slot, int layer, int expert, bool demand)
{
    (void)demand;
    lru_hit(p, slot, layer, expert);
}

static void lru_remove(store_policy *p, uint32_t slot) { ((lru *)p)->last[slot] = 0; }

/* The least recently used unpinned slot, among slots of layer `only`
 * (-1: any; -2: layers over their quota). */
static int64_t oldest(lru *l, int only, policy_pinned_fn pinned, void *ctx)
{
    const store_policy_params *pp = &l->base.pp;
    int64_t best = -1;
    for (uint32_t i = 0; i < pp->n_slots; i++) {
        if (only == -2 && (l->layer[i] < 0 || (uint64_t)l->count[l->layer[i]] * pp->n_layer <= pp->n_slots)) continue;
        if (only >= 0 && l->layer[i] != only) continue;
        if (pinned(ctx, i)) continue;
        if (best < 0 || l->last[i] < l->last[best]) best = i;
        if (l->last[i] == 0) break;
    }
    return best;
}

static int64_t lru_victim(store_policy *p, int layer, int expert, policy_pinned_fn pinned, void *ctx)
{
    (void)layer, (void)expert;
    return oldest((lru *)p, -1, pinned, ctx);
}

static void lru_free(store_policy *p)
{
    lru *l = (lru *)p;
    if (!l) return;
    free(l->last);
    free(l->layer);
    free(l->count);
    free(l);
}

static const store_policy_ops lru_ops = { "lru", lru_step, lru_hit, lru_insert, lru_remove, lru_victim, lru_free, NULL };

static lru *lru_alloc(const store_policy_params *pp, bool quotas)
{
    lru *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->base.pp = *pp;
    l->last = calloc(pp->n_slots + 1, sizeof *l->last);
    if (quotas) {
        l->layer = malloc((pp->n_slots + 1) * sizeof *l->layer);
        l->count = calloc(pp->n_layer + 1, sizeof *l->count);
    }
    if (!l->last || (quotas && (!l->layer || !l->count))) { lru_free(&l->base); return NULL; }
    for (uint32_t i = 0; quotas && i < pp->n_slots; i++) l->layer[i] = -1;
    return l;
}

store_policy *policy_lru_new(const store_policy_params *pp)
{
    lru *l = lru_alloc(pp, false);
    if (!l) return NULL;
    l->base.ops = &lru_ops;
    return &l->base;
}

/* ---- per-layer quotas ---- */

static void quota_insert(store_policy *p, uint32_t slot, int layer, int expert, bool demand)
{
    lru *l = (lru *)p;
    if (l->layer[slot] >= 0) l->count[l->layer[slot]]--;
    l->layer[slot] = layer;
    l->count[layer]++;
    lru_insert(p, slot, layer, expert, demand);
}

static void quota_remove(store_policy *p, uint32_t slot)
{
    lru *l = (lru *)p;
    if (l->layer[slot] >= 0) l->count[l->layer[slot]]--;
    l->layer[slot] = -1;
    lru_remove(p, slot);
}

/* The incoming layer at or over its quota replaces its own oldest expert;
 * below it, an empty slot, else the oldest of a layer over its quota, else
 * the oldest anywhere (quotas are a preference, never a reason to fail). */
static int64_t quota_victim(store_policy *p, int layer, int expert, policy_pinned_fn pinned, void *ctx)
{
    (void)expert;
    lru *l = (lru *)p;
    const store_policy_params *pp = &p->pp;
    int64_t v = -1;
    if ((uint64_t)(l->count[layer] + 1) * pp->n_layer > pp->n_slots) v = oldest(l, layer, pinned, ctx);
    if (v < 0) {
        v = oldest(l, -1, pinned, ctx);
        if (v >= 0 && l->last[v] != 0) {
            int64_t over = oldest(l, -2, pinned, ctx);
            if (over >= 0) v = over;
        }
    }
    return v;
}

static const store_policy_ops quota_ops = { "lru-layer", lru_step, lru_hit, quota_insert, quota_remove,
                                            quota_victim, lru_free, NULL };

store_policy *policy_lru_layer_new(const store_policy_params *pp)
{
    lru *l = lru_alloc(pp, true);
    if (!l) return NULL;
    l->base.ops = &quota_ops;
    return &l->base;
}
