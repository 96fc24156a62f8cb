/* policy_lru.c — least recently used. Empty slots have time 0 and are
 * taken first. The victim search is a scan of the slots: a few thousand
 * slots at most, next to a disk read of hundreds of microseconds. */
#include "store/policy.h"

#include <stdlib.h>
#include <string.h>

typedef struct lru {
    store_policy base;
    uint64_t clock;
    uint64_t *last;
} lru;

static void lru_touch(store_policy *p, uint32_t slot, int layer, int expert)
{
    (void)layer, (void)expert;
    lru *l = (lru *)p;
    l->last[slot] = ++l->clock;
}

static int64_t lru_victim(store_policy *p, bool (*pinned)(void *, uint32_t), void *ctx)
{
    lru *l = (lru *)p;
    int64_t best = -1;
    for (uint32_t i = 0; i < p->n_slots; i++) {
        if (pinned(ctx, i)) continue;
        if (best < 0 || l->last[i] < l->last[best]) best = i;
        if (l->last[i] == 0) break;
    }
    return best;
}

static void lru_free(store_policy *p)
{
    lru *l = (lru *)p;
    free(l->last);
    free(l);
}

static const store_policy_ops lru_ops = { "lru", lru_touch, lru_touch, lru_victim, lru_free };

store_policy *policy_lru_new(uint32_t n_slots)
{
    lru *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->last = calloc(n_slots ? n_slots : 1, sizeof *l->last);
    if (!l->last) { free(l); return NULL; }
    l->base.ops = &lru_ops;
    l->base.n_slots = n_slots;
    return &l->base;
}

store_policy *policy_new(const char *name, uint32_t n_slots)
{
    if (!name || !strcmp(name, "lru")) return policy_lru_new(n_slots);
    return NULL;
}
