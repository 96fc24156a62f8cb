/* policy_freq.c — frequency-aware policies: LFU with ageing ("lfu") and
 * LRFU, a decayed frequency between LRU and LFU ("lrfu").
 *
 * Both keep their counts per (layer, expert), not per slot, so an expert's
 * history survives its eviction ("perfect" LFU): MoE routing has a skewed,
 * slowly drifting popularity per layer, and a count that restarts at every
 * insert cannot see it. LFU halves every count every AGE_TOKENS tokens so
 * the drift is followed; ties go to the least recently used slot. LRFU
 * (Lee et al., IEEE TC 2001) scores a key by sum over its past uses of
 * 2^(-lambda * age); its half-life is HALF_TOKENS tokens of steps. A
 * prefetch insert is not a use: it counts when a demand hit follows.
 */
#include "store/policy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AGE_TOKENS 32     /* lfu: halve the counts this often */
#define HALF_TOKENS 8.0   /* lrfu: a use weighs half after this many tokens */

typedef struct freq {
    store_policy base;
    uint64_t clock, step;
    uint64_t *last;          /* per slot: clock of the last use; 0: empty */
    int32_t *key;            /* per slot: layer * n_expert + expert */
    float *score;            /* per key: lfu count, or lrfu value at t[key] */
    uint64_t *t;             /* per key: lrfu step of score */
    double lambda;           /* lrfu: per step */
} freq;

static size_t key_of(const store_policy *p, int layer, int expert)
{
    return (size_t)layer * p->pp.n_expert + (size_t)expert;
}

static double lrfu_value(const freq *f, size_t k)
{
    return f->score[k] * exp2(-f->lambda * (double)(f->step - f->t[k]));
}

static void lfu_step(store_policy *p, int layer)
{
    (void)layer;
    freq *f = (freq *)p;
    f->step++;
    uint64_t period = (uint64_t)AGE_TOKENS * p->pp.n_layer;
    if (f->step % period == 0)
        for (size_t k = 0; k < (size_t)p->pp.n_layer * p->pp.n_expert; k++) f->score[k] *= 0.5f;
}

static void lrfu_step(store_policy *p, int layer)
{
    (void)layer;
    ((freq *)p)->step++;
}

static void use(freq *f, size_t k, bool lrfu)
{
    if (lrfu) {
        f->score[k] = (float)(1.0 + lrfu_value(f, k));
        f->t[k] = f->step;
    } else {
        f->score[k] += 1.0f;
    }
}

static void freq_hit_impl(store_policy *p, uint32_t slot, int layer, int expert, bool lrfu)
{
    freq *f = (freq *)p;
    f->last[slot] = ++f->clock;
    use(f, key_of(p, layer, expert), lrfu);
}

static void lfu_hit(store_policy *p, uint32_t slot, int layer, int expert) { freq_hit_impl(p, slot, layer, expert, false); }
static void lrfu_hit(store_policy *p, uint32_t slot, int layer, int expert) { freq_hit_impl(p, slot, layer, expert, true); }

static void freq_insert_impl(store_policy *p, uint32_t slot, int layer, int expert, bool demand, bool lrfu)
{
    freq *f = (freq *)p;
    f->key[slot] = (int32_t)key_of(p, layer, expert);
    f->last[slot] = ++f->clock;
    if (demand) use(f, (size_t)f->key[slot], lrfu);
}

static void lfu_insert(store_policy *p, uint32_t slot, int layer, int expert, bool demand)
{
    freq_insert_impl(p, slot, layer, expert, demand, false);
}

static void lrfu_insert(store_policy *p, uint32_t slot, int layer, int expert, bool demand)
{
    freq_insert_impl(p, slot, layer, expert, demand, true);
}

static void freq_remove(store_policy *p, uint32_t slot)
{
    freq *f = (freq *)p;
    f->last[slot] = 0;
    f->key[slot] = -1;
}

static int64_t victim_impl(store_policy *p, policy_pinned_fn pinned, void *ctx, bool lrfu)
{
    freq *f = (freq *)p;
    int64_t best = -1;
    double best_v = 0;
    for (uint32_t i = 0; i < p->pp.n_slots; i++) {
        if (pinned(ctx, i)) continue;
        if (f->key[i] < 0) return i;
        double v = lrfu ? lrfu_value(f, (size_t)f->key[i]) : f->score[f->key[i]];
        if (best < 0 || v < best_v || (v == best_v && f->last[i] < f->last[best])) best = i, best_v = v;
    }
    return best;
}

static int64_t lfu_victim(store_policy *p, int layer, int expert, policy_pinned_fn pinned, void *ctx)
{
    (void)layer, (void)expert;
    return victim_impl(p, pinned, ctx, false);
}

static int64_t lrfu_victim(store_policy *p, int layer, int expert, policy_pinned_fn pinned, void *ctx)
{
    (void)layer, (void)expert;
    return victim_impl(p, pinned, ctx, true);
}

static void freq_free(store_policy *p)
{
    freq *f = (freq *)p;
    if (!f) return;
    free(f->last);
    free(f->key);
    free(f->score);
    free(f->t);
    free(f);
}

static const store_policy_ops lfu_ops = { "lfu", lfu_step, lfu_hit, lfu_insert, freq_remove, lfu_victim,
                                          freq_free, NULL };
static const store_policy_ops lrfu_ops = { "lrfu", lrfu_step, lrfu_hit, lrfu_insert, freq_remove, lrfu_victim,
                                           freq_free, NULL };

static store_policy *freq_new(const store_policy_params *pp, const store_policy_ops *ops)
{
    freq *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->base.pp = *pp;
    f->base.ops = ops;
    size_t keys = (size_t)pp->n_layer * pp->n_expert + 1;
    f->last = calloc(pp->n_slots + 1, sizeof *f->last);
    f->key = malloc((pp->n_slots + 1) * sizeof *f->key);
    f->score = calloc(keys, sizeof *f->score);
    f->t = calloc(keys, sizeof *f->t);
    if (!f->last || !f->key || !f->score || !f->t) { freq_free(&f->base); return NULL; }
    for (uint32_t i = 0; i < pp->n_slots; i++) f->key[i] = -1;
    f->lambda = 1.0 / (HALF_TOKENS * (pp->n_layer ? pp->n_layer : 1));
    return &f->base;
}

store_policy *policy_lfu_new(const store_policy_params *pp) { return freq_new(pp, &lfu_ops); }
store_policy *policy_lrfu_new(const store_policy_params *pp) { return freq_new(pp, &lrfu_ops); }
