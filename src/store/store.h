/* store.h — the expert store: every routed expert reaches the layers
 * through here, from RAM or from disk, and the layers cannot tell which.
 *
 * Index: for each (layer, expert) the extents (file, offset, length) of its
 * slices of the layer's `*_exps` tensors, straight from the tensor table.
 * Cache: fixed-size slots under one byte budget, one expert per slot; the
 * slots of the running layer are pinned between acquire and release, so
 * eviction never frees memory a kernel is reading. Misses are read by the
 * I/O backend into the slot (4 KiB aligned). Prefetch: the model names the
 * experts it expects the next layer to choose; the store starts reading
 * those not cached, behind every demand read, and when that layer's real
 * choice arrives keeps what was right and cancels what was not. Errors
 * (short read, EIO, a file that shrank) are returned to the caller with the
 * file and offset named.
 */
#ifndef MF_STORE_H
#define MF_STORE_H

#include "gguf.h"

#include <stdbool.h>
#include <stdint.h>

/* The routed-expert tensors a layer may have, by role. */
typedef enum store_role {
    STORE_GATE, STORE_UP, STORE_DOWN, STORE_GATE_UP,
    STORE_GATE_B, STORE_UP_B, STORE_DOWN_B, STORE_GATE_UP_B,
    STORE_ROLE_COUNT
} store_role;

/* One role of one layer: the 3-D tensor and the bytes of one expert. */
typedef struct store_tensor {
    const gguf_tensor *t;     /* NULL: the layer has no such role */
    uint64_t expert_bytes;    /* nbytes / n_expert */
    uint64_t slot_offset;     /* where this role starts in a slot */
} store_tensor;

/* What acquire hands out: per role, the expert's bytes in its slot. */
typedef struct store_expert {
    int layer, id;
    const void *data[STORE_ROLE_COUNT];
} store_expert;

typedef struct store_params {
    uint64_t cache_bytes;     /* 0: enough for every expert */
    int io;                   /* io_kind: IO_PREAD, IO_DIRECT, IO_URING */
    int io_threads;           /* reader threads (pread/direct) or ring depth (uring); 0: default */
    const char *policy;       /* eviction policy name; NULL: policy_default_name() */
    bool no_prefetch;         /* store_prefetch records the guess but reads nothing */
    const char *hot_set;      /* the "hot" policy's file (read at open, written at close) */
    uint32_t cache_slots;     /* > 0: the cache in experts, overriding cache_bytes (replay) */
} store_params;

typedef struct store_stats {
    uint64_t hits, misses, bytes_read, reads;
    double io_wait_s;         /* time the caller waited for demand reads */
    uint64_t prefetch_issued; /* experts a prefetch started to read */
    uint64_t prefetch_used;   /* ... that their layer then chose */
    uint64_t prefetch_wasted; /* ... that it did not (cancelled or read for nothing) */
    uint64_t prefetch_cancelled; /* wasted ones cancelled before any byte was read */
    uint64_t prefetch_late;   /* demand misses whose prefetch read was still in flight */
    uint64_t planned_reads;   /* a batch's next-wave reads (store_acquire_plan), not
                                 counted as prefetches */
    uint64_t prefetch_failed; /* prefetch reads that failed (the demand read again) */
    uint64_t predicted;       /* experts chosen in layers that had a guess (K per layer) */
    uint64_t predicted_k;     /* ... that were in the guess's first K */
    uint64_t predicted_all;   /* ... that were anywhere in the guess (K + margin) */
} store_stats;

typedef struct store store;

/* Builds the index from f's tensor table (n_layer layers, n_expert experts
 * per MoE layer) and allocates the slots. Fails when the budget cannot hold
 * min_slots experts (one layer's K), naming the minimum. */
store *store_open(const gguf_file *f, uint32_t n_layer, uint32_t n_expert, uint32_t min_slots,
                  const store_params *p, mf_error *e);
/* A store without files for trace replay: every layer has n_expert
 * experts of expert_bytes, n_slots slots, misses cost no I/O (bytes are
 * counted) and acquire hands out views with NULL data. */
store *store_open_sim(uint32_t n_layer, uint32_t n_expert, uint32_t min_slots, uint32_t n_slots,
                      uint64_t expert_bytes, const char *policy, const char *hot_set, mf_error *e);
/* Settings of a store an architecture opened (arch_open_store passes only
 * budget, I/O and policy): prefetch on or off, and the hot-set file, which
 * selects the "hot" policy's history. Before the first acquire. */
int store_configure(store *s, bool prefetch, const char *hot_set, mf_error *e);
/* Waits for reads in flight, saves the hot set (a failure is printed on
 * stderr: there is no caller left to tell), frees everything. */
void store_close(store *s);

/* The role table of a layer (for shape checks at model load). */
const store_tensor *store_layer_roles(const store *s, int layer);
bool store_layer_has_experts(const store *s, int layer);

/* Makes experts ids[0..n) of layer resident and pinned; out[i] describes
 * ids[i]. Every acquire is followed by a release of the same ids. The
 * acquire also settles the prefetches made for this layer. */
int store_acquire(store *s, int layer, const int32_t *ids, int n, const store_expert **out, mf_error *e);
/* The same, with the guess for the next layer (see store_prefetch) issued
 * right behind this layer's demand reads and before waiting for them, so
 * the disk goes from one to the other without a pause. */
int store_acquire_next(store *s, int layer, const int32_t *ids, int n, const store_expert **out, int next_layer,
                       const int32_t *guess, int n_guess, int k, mf_error *e);
/* Batched prefill: the same as store_acquire, and behind this wave's demand
 * reads the next wave's experts next[0..n_next) of the same layer are read
 * at prefetch priority while this wave computes. A plan, not a guess: it
 * reads even with --no-prefetch (whenever the cache holds two waves) and is
 * not counted in the predictor statistics. */
int store_acquire_plan(store *s, int layer, const int32_t *ids, int n, const store_expert **out, const int32_t *next,
                       int n_next, mf_error *e);
void store_release(store *s, int layer, const int32_t *ids, int n);

/* The model's guess of the experts layer will choose, best first: ids[0..k)
 * its top-K, the rest a margin. Starts reading those not cached at
 * prefetch priority (unless prefetch is off); never evicts a pinned expert
 * or one of the guess. Never fails: a prefetch is a hint. */
void store_prefetch(store *s, int layer, const int32_t *ids, int n, int k);
/* Whether store_prefetch reads anything (off: --no-prefetch, a cache too
 * small to hold two layers' experts, or a simulation). */
bool store_prefetch_enabled(const store *s);

/* Test hook: the nth demand read from now fails (kind: io_fault_kind in
 * io.h, | IO_FAULT_PREFETCH for the nth prefetch read). */
void store_inject_fault(store *s, uint64_t nth, int kind);

/* The budget `--cache auto` gives: 90% of what memory is available to this
 * process (MemAvailable, and the cgroup's limit minus its usage when one is
 * set) after the resident weights and the KV cache, less a 64 MiB margin
 * for activations, code and the allocator. 0 when nothing is left. */
uint64_t store_auto_cache_bytes(uint64_t resident_bytes, uint64_t kv_bytes);
/* All the memory this process may use: MemAvailable, or the memory
 * cgroup's limit when that is less (for warnings about an explicit
 * --cache that cannot fit). */
uint64_t store_memory_limit(void);

/* How often expert (layer, expert) was acquired since open. */
uint64_t store_expert_uses(const store *s, int layer, int expert);

void store_get_stats(const store *s, store_stats *out);
void store_reset_stats(store *s);
uint64_t store_slot_bytes(const store *s);
uint32_t store_slot_count(const store *s);
const char *store_policy_name(const store *s);

#endif
