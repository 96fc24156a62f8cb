/* kvcache.h — a layer-major KV cache of float rows that grows with the
 * positions a session uses (doubling from 256, up to --ctx), together with
 * the attention score scratch that grows with it. Growing re-packs the
 * layers; it happens O(log n) times, never per token. */
#ifndef MF_KVCACHE_H
#define MF_KVCACHE_H

#include "models/blocks.h"

typedef struct kv_cache {
    float *k, *v;            /* n_layer x n_alloc x row */
    float *att;              /* n_head x n_alloc scores */
    uint32_t n_layer, n_head, n_alloc, n_ctx;
    size_t row;              /* floats per position and layer (n_head_kv * head_dim) */
} kv_cache;

/* *want = the rows a cache of n_alloc rows grows to for positions < n:
 * doubling from 256, at most n_ctx; n_alloc when it holds them already.
 * "context full" past n_ctx. Every cache grows this way, so that growing
 * happens O(log n) times. */
int kv_grow_rows(uint32_t n_alloc, uint32_t n_ctx, uint32_t n, uint32_t *want, mf_error *e);

/* arch_ops.state_truncate of a session whose only per-position state is a
 * cache of rows: rows past n_past are overwritten before they are read,
 * so forgetting them is free. */
int kv_truncate_free(void *state, uint32_t n_past, mf_error *e);

/* Room for positions < n; "context full" past n_ctx. */
int kv_cache_reserve(kv_cache *c, uint32_t n, mf_error *e);
void kv_cache_free(kv_cache *c);

static inline kv_layer kv_cache_layer(const kv_cache *c, uint32_t l)
{
    kv_layer kv = { c->k + (size_t)l * c->n_alloc * c->row, c->v + (size_t)l * c->n_alloc * c->row };
    return kv;
}

#endif
