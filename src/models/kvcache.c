/* kvcache.c — growing the layer-major KV cache. */
#include "models/kvcache.h"

#include <stdlib.h>
#include <string.h>

int kv_grow_rows(uint32_t n_alloc, uint32_t n_ctx, uint32_t n, uint32_t *want, mf_error *e)
{
    if (n > n_ctx) return mf_fail(e, "context full: %u positions requested, --ctx is %u", n, n_ctx);
    *want = n_alloc;
    if (n <= n_alloc) return 0;
    uint32_t w = n_alloc ? n_alloc : 256;
    while (w < n) w *= 2;
    *want = w > n_ctx ? n_ctx : w;
    return 0;
}

int kv_truncate_free(void *state, uint32_t n_past, mf_error *e)
{
    (void)state, (void)n_past, (void)e;
    return 0;
}

int kv_cache_reserve(kv_cache *c, uint32_t n, mf_error *e)
{
    uint32_t want = 0;
    if (kv_grow_rows(c->n_alloc, c->n_ctx, n, &want, e)) return -1;
    if (want == c->n_alloc) return 0;
    float *k = calloc((size_t)c->n_layer * want * c->row, sizeof(float));
    float *v = calloc((size_t)c->n_layer * want * c->row, sizeof(float));
    float *att = calloc((size_t)c->n_head * want, sizeof(float));
    if (!k || !v || !att) {
        free(k), free(v), free(att);
        return mf_fail(e, "out of memory for a KV cache of %u positions", want);
    }
    for (uint32_t l = 0; l < c->n_layer && c->n_alloc; l++) {
        memcpy(k + (size_t)l * want * c->row, c->k + (size_t)l * c->n_alloc * c->row, c->n_alloc * c->row * sizeof(float));
        memcpy(v + (size_t)l * want * c->row, c->v + (size_t)l * c->n_alloc * c->row, c->n_alloc * c->row * sizeof(float));
    }
    free(c->k), free(c->v), free(c->att);
    c->k = k, c->v = v, c->att = att;
    c->n_alloc = want;
    return 0;
}

void kv_cache_free(kv_cache *c)
{
    free(c->k), free(c->v), free(c->att);
    c->k = c->v = c->att = NULL;
    c->n_alloc = 0;
}
