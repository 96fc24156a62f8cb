/* policy_nextuse.c — evict the expert whose next use is expected farthest
 * away ("nextuse"): Belady's rule with the future replaced by an estimate
 * from each expert's past and the layer cycle.
 *
 * Per (layer, expert) the policy keeps a decayed use count, as LRFU does
 * (each use weighs 2^(-age / half-life), HALF_TOKENS tokens of steps), and
 * reads it as p, the chance the expert is chosen at a given token: an
 * expert used at every token settles at 1 / (1 - 2^(-n_layer / half-life)),
 * so p = count * (1 - 2^(-n_layer / half-life)), at most 1. If its layer
 * runs next in `off` steps, its next use is expected in
 *     off + n_layer * (1 / p - 1)
 * steps, and the victim is the expert for which that is largest.
 *
 * Why this beats LRU and LRFU on MoE routing: in decode an expert of the
 * layer just run is next needed a whole token (n_layer steps) later, while
 * LRU considers it the most valuable and LRFU as valuable as one of the
 * layer about to run. Below one token's working set LRU evicts every
 * expert just before its next use and scores 0%; this policy keeps the
 * frequently chosen experts of the layers coming next. `off` follows the
 * order of execution: steps that repeat a layer (batched prefill, one step
 * per token) make that layer's experts the ones needed next.
 */
#include "store/policy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HALF_TOKENS 8.0

typedef struct nextuse {
    store_policy base;
    uint64_t step, clock;
    int cur, prev;            /* layer of this step and of the one before */
    int32_t *key;             /* per slot; -1: empty */
    uint64_t *slot_last;      /* per slot: clock of the last touch (ties) */
    float *count;             /* per key: decayed uses at step t[key] */
    uint64_t *t;
    double lambda, p_scale;
    float *decay;             /* 2^(-lambda * age) for age < n_decay (16 half-lives) */
    uint64_t n_decay;
} nextuse;

static void nu_step(store_policy *p, int layer)
{
    nextuse *n = (nextuse *)p;
    n->step++;
    n->prev = n->cur;
    n->cur = layer;
}

/* The victim search asks this of every slot: a table, not exp2. */
static double decayed(const nextuse *n, size_t k)
{
    uint64_t age = n->step - n->t[k];
    return age < n->n_decay ? n->count[k] * n->decay[age] : 0.0;
}

static void nu_use(nextuse *n, size_t k)
{
    n->count[k] = (float)(1.0 + decayed(n, k));
    n->t[k] = n->step;
}

static void nu_hit(store_policy *p, uint32_t slot, int layer, int expert)
{
    nextuse *n = (nextuse *)p;
    n->slot_last[slot] = ++n->clock;
    nu_use(n, (size_t)layer * p->pp.n_expert + (size_t)expert);
}

static void nu_insert(store_policy *p, uint32_t slot, int layer, int expert, bool demand)
{
    nextuse *n = (nextuse *)p;
    size_t k = (size_t)layer * p->pp.n_expert + (size_t)expert;
    n->key[slot] = (int32_t)k;
    n->slot_last[slot] = ++n->clock;
    if (demand) nu_use(n, k);
}

static void nu_remove(store_policy *p, uint32_t slot)
{
    nextuse *n = (nextuse *)p;
    n->key[slot] = -1;
    n->slot_last[slot] = 0;
}

/* Steps until layer l runs again, seen from the current step. */
static double offset(const nextuse *n, int l)
{
    int L = (int)n->base.pp.n_layer;
    if (l == n->cur && n->prev == n->cur) return 1; /* a layer repeating: batched prefill */
    int d = ((l - n->cur) % L + L) % L;
    return d ? d : L;
}

static double expected_next(const nextuse *n, size_t k)
{
    double p = decayed(n, k) * n->p_scale;
    if (p > 1) p = 1;
    if (p < 1e-9) p = 1e-9;
    int l = (int)(k / n->base.pp.n_expert);
    return offset(n, l) + n->base.pp.n_layer * (1.0 / p - 1.0);
}

static int64_t nu_victim(store_policy *p, int layer, int expert, policy_pinned_fn pinned, void *ctx)
{
    (void)layer, (void)expert;
    nextuse *n = (nextuse *)p;
    int64_t best = -1;
    double best_r = 0;
    for (uint32_t i = 0; i < p->pp.n_slots; i++) {
        if (pinned(ctx, i)) continue;
        if (n->key[i] < 0) return i;
        double r = expected_next(n, (size_t)n->key[i]);
        if (best < 0 || r > best_r || (r == best_r && n->slot_last[i] < n->slot_last[best])) best = i, best_r = r;
    }
    return best;
}

static void nu_free(store_policy *p)
{
    nextuse *n = (nextuse *)p;
    if (!n) return;
    free(n->key);
    free(n->slot_last);
    free(n->count);
    free(n->t);
    free(n->decay);
    free(n);
}

static const store_policy_ops nu_ops = { "nextuse", nu_step, nu_hit, nu_insert, nu_remove, nu_victim,
                                         nu_free, NULL };

store_policy *policy_nextuse_new(const store_policy_params *pp)
{
    nextuse *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->base.pp = *pp;
    n->base.ops = &nu_ops;
    size_t keys = (size_t)pp->n_layer * pp->n_expert + 1;
    n->key = malloc((pp->n_slots + 1) * sizeof *n->key);
    n->slot_last = calloc(pp->n_slots + 1, sizeof *n->slot_last);
    n->count = calloc(keys, sizeof *n->count);
    n->t = calloc(keys, sizeof *n->t);
    double L = pp->n_layer ? pp->n_layer : 1;
    n->lambda = 1.0 / (HALF_TOKENS * L);
    n->p_scale = 1.0 - exp2(-n->lambda * L);
    n->n_decay = (uint64_t)(16 * HALF_TOKENS * L) + 1;
    n->decay = malloc(n->n_decay * sizeof *n->decay);
    if (!n->key || !n->slot_last || !n->count || !n->t || !n->decay) { nu_free(&n->base); return NULL; }
    for (uint64_t a = 0; a < n->n_decay; a++) n->decay[a] = (float)exp2(-n->lambda * (double)a);
    for (uint32_t i = 0; i < pp->n_slots; i++) n->key[i] = -1;
    n->cur = n->prev = -1;
    return &n->base;
}
