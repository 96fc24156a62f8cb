/* arch.h — what an architecture provides to the engine.
 *
 * An architecture binds its hyperparameters and tensors from the GGUF at
 * load (errors name the key or tensor, expected and found), owns its
 * per-session state (KV cache, recurrent state) and evaluates one token at
 * a position. It reaches routed experts only through the store and never
 * reads files itself.
 */
#ifndef MF_ARCH_H
#define MF_ARCH_H

#include "gguf.h"
#include "store/store.h"
#include "threads/pool.h"

#include <stdbool.h>
#include <stdint.h>

/* What the engine needs to know of any loaded architecture. */
typedef struct arch_info {
    uint32_t n_vocab;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_ctx_train;
    uint32_t n_expert, n_expert_used;
} arch_info;

typedef struct arch_ctx {
    const gguf_file *f;
    store *store;            /* NULL until the arch asked for it with arch_open_store */
    mf_pool *pool;
    uint64_t cache_bytes;    /* the store's budget in bytes (--cache auto is resolved by the engine) */
    int io, io_threads;      /* store_params' I/O backend and threads */
    const char *policy;      /* store_params' eviction policy */
    int n_batch;             /* --batch: tokens per layer-by-layer prefill pass
                                (<= 1: the architecture's default) */
    int experts_used;        /* mf_model_params.n_expert_used: 0, or K to route to instead of the model's */
} arch_ctx;

typedef struct arch_ops {
    const char *name;        /* general.architecture */
    /* Binds everything; returns the arch's model object. */
    void *(*load)(arch_ctx *ctx, arch_info *info, mf_error *e);
    void (*free)(void *model);
    /* Per-session state for up to n_ctx positions (allocated as used). */
    void *(*state_new)(void *model, uint32_t n_ctx, mf_error *e);
    void (*state_free)(void *state);
    /* Forgets positions >= n_past (KV entries beyond are simply overwritten;
     * recurrent archs must restore or refuse). */
    int (*state_truncate)(void *state, uint32_t n_past, mf_error *e);
    /* Ensures room for positions < n (grows the KV cache; not per token). */
    int (*state_reserve)(void *state, uint32_t n, mf_error *e);
    /* Evaluates token at pos; writes n_vocab logits when logits != NULL. */
    int (*forward)(void *model, void *state, int32_t token, uint32_t pos, float *logits, mf_error *e);
    /* Optional (NULL: forward token by token). Evaluates n tokens at
     * positions pos0.. layer by layer, so that each routed expert is read
     * once per batch; logits of every token into all (n x n_vocab) when it
     * is not NULL, and of the last into last when it is not NULL. Results
     * equal n calls of forward. */
    int (*forward_batch)(void *model, void *state, const int32_t *tokens, int n, uint32_t pos0, float *all,
                         float *last, mf_error *e);
} arch_ops;

/* The architecture named arch, or NULL. */
const arch_ops *arch_find(const char *arch);
/* Space-separated names of the supported architectures. */
const char *arch_supported(void);

/* Applies --experts-used to the model's K (*n_used, from expert_used_count)
 * before anything is sized by it: 0 keeps it, 1..*n_used replaces it,
 * anything else is an error naming both. Every MoE architecture calls it
 * right after reading its hyperparameters. */
int arch_experts_used(const arch_ctx *ctx, uint32_t *n_used, mf_error *e);

/* Opens ctx->store for the model's routed experts (helper for archs). */
int arch_open_store(arch_ctx *ctx, uint32_t n_layer, uint32_t n_expert, uint32_t n_used, mf_error *e);

#endif
