/* policy.h — cache eviction policies behind one small interface, so that
 * LRU, frequency-aware and learned hot sets are interchangeable and can be
 * tested (and replayed on traces) alone.
 *
 * The store tells a policy when a step (one layer's acquire) begins, about
 * hits and inserts, about slots it emptied itself (a cancelled or failed
 * read), and asks it for a victim among the unpinned slots for an incoming
 * (layer, expert). A policy never sees expert data and never allocates
 * after policy_new. Time, for every policy, is the step count: one step per
 * acquire, so a decoded token is n_layer steps and a batched prefill of a
 * layer is one step per token.
 */
#ifndef MF_STORE_POLICY_H
#define MF_STORE_POLICY_H

#include "moeflash.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct store_policy store_policy;

typedef bool (*policy_pinned_fn)(void *ctx, uint32_t slot);

typedef struct store_policy_ops {
    const char *name;
    /* A new step: layer's experts are about to be looked up. */
    void (*on_step)(store_policy *p, int layer);
    /* slot (holding layer, expert) was used by a demand lookup. */
    void (*on_hit)(store_policy *p, uint32_t slot, int layer, int expert);
    /* slot now holds (layer, expert); demand: the insert is a use (a miss),
     * false: a prefetch, which counts as a use only when a hit follows. */
    void (*on_insert)(store_policy *p, uint32_t slot, int layer, int expert, bool demand);
    /* slot was emptied by the store (cancelled prefetch, failed read). */
    void (*on_remove)(store_policy *p, uint32_t slot);
    /* A slot to evict for the incoming (layer, expert) among those for
     * which pinned(ctx, slot) is false; empty slots first; -1 if none. */
    int64_t (*victim)(store_policy *p, int layer, int expert, policy_pinned_fn pinned, void *ctx);
    void (*free)(store_policy *p);
    /* Optional (NULL): persists what the policy learned (the hot set). */
    int (*save)(store_policy *p, const char *path, mf_error *e);
} store_policy_ops;

typedef struct store_policy_params {
    uint32_t n_slots, n_layer, n_expert, n_used;
    const char *hot_set;      /* "hot": counts to start from and save to (may be NULL) */
} store_policy_params;

struct store_policy {
    const store_policy_ops *ops;
    store_policy_params pp;
};

/* The policy called name (NULL: the default), or NULL with e set (unknown
 * name, out of memory, a hot-set file that cannot be read). */
store_policy *policy_new(const char *name, const store_policy_params *pp, mf_error *e);
/* The default policy's name, and every name, space-separated. */
const char *policy_default_name(void);
const char *policy_names(void);

/* Constructors (policy_new dispatches by name). */
store_policy *policy_lru_new(const store_policy_params *pp);       /* "lru" */
store_policy *policy_lru_layer_new(const store_policy_params *pp); /* "lru-layer": per-layer quotas */
store_policy *policy_lfu_new(const store_policy_params *pp);       /* "lfu": with ageing */
store_policy *policy_lrfu_new(const store_policy_params *pp);      /* "lrfu": decayed frequency */
store_policy *policy_hot_new(const store_policy_params *pp, mf_error *e); /* "hot": learned hot set */
store_policy *policy_nextuse_new(const store_policy_params *pp);   /* "nextuse": estimated next use */

/* Writes what p learned to path (the "hot" policy's counts, the
 * --hot-set file); 0 without writing for policies that learn nothing. */
int policy_save(store_policy *p, const char *path, mf_error *e);

#endif
