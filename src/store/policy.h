/* policy.h — cache eviction policies behind one small interface, so that
 * LRU, frequency-aware and learned hot sets are interchangeable and can be
 * tested (and replayed on traces) alone. The store tells a policy about
 * hits and inserts and asks it for a victim among the unpinned slots. */
#ifndef MF_STORE_POLICY_H
#define MF_STORE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct store_policy store_policy;

typedef struct store_policy_ops {
    const char *name;
    void (*on_hit)(store_policy *p, uint32_t slot, int layer, int expert);
    void (*on_insert)(store_policy *p, uint32_t slot, int layer, int expert);
    /* A slot to evict among those for which pinned(slot) is false, or -1. */
    int64_t (*victim)(store_policy *p, bool (*pinned)(void *ctx, uint32_t slot), void *ctx);
    void (*free)(store_policy *p);
} store_policy_ops;

struct store_policy {
    const store_policy_ops *ops;
    uint32_t n_slots;
};

/* Least recently used (a clock per slot; the victim is the oldest). */
store_policy *policy_lru_new(uint32_t n_slots);
/* By name ("lru"); NULL when unknown. */
store_policy *policy_new(const char *name, uint32_t n_slots);

#endif
