/* attn_window.h — self-attention with the pieces gpt-oss-style layers add
 * to blocks.h's: RoPE from a precomputed table (YaRN or plain), learned
 * per-head attention sinks, and a sliding window whose KV cache is a ring
 * buffer holding only the window. With no sinks and no window it is
 * blocks.h's attention plus the GGUF's rope scaling (glm4moe uses it so). */
#ifndef MF_ATTN_WINDOW_H
#define MF_ATTN_WINDOW_H

#include "models/blocks.h"
#include "models/rope_yarn.h"

/* A layer's KV rows: position p lives in row p % n_rows. A full-attention
 * layer has n_rows > every position it sees (so the row is p); a
 * sliding-window layer has n_rows >= window and keeps only the window. */
typedef struct kv_ring {
    float *k, *v;            /* n_rows x (n_head_kv * head_dim) each */
    uint32_t n_rows;
} kv_ring;

typedef struct attn_opts {
    const rope_table *rope;  /* rotary embedding of q and k (NULL: none) */
    const float *sinks;      /* n_head sink logits (NULL: no sinks) */
    uint32_t window;         /* key p0 is masked for query p1 when p1 - p0 >= window; 0: full causal */
} attn_opts;

/* Keys the query at pos sees: [attn_first_key(window, pos), pos]. */
static inline uint32_t attn_first_key(uint32_t window, uint32_t pos)
{
    return window && pos >= window ? pos - window + 1 : 0;
}

/* Self-attention of one token at pos, like attn_forward (biases, optional
 * q/k RMSNorm before RoPE, GQA) but with o's RoPE, sinks and window; uses
 * hp's head counts, head_dim, norm_eps and scale (not its rope fields).
 * Writes the token's k, v into row pos % kv.n_rows, then attends. s->att
 * needs n_head x (number of keys seen) floats. */
void attn_forward_window(mf_pool *pool, const attn_hparams *hp, const attn_opts *o, const attn_weights *w, kv_ring kv,
                         uint32_t pos, const float *h, attn_scratch *s, float *out);

/* The same for T tokens at positions pos0.. (prefill): the projections as
 * matrix products, then token by token in position order each token's k, v
 * written and its attention computed before the next token writes (a ring
 * of window rows cannot hold a chunk's keys and the keys its first tokens
 * still see). Row t of OUT is bit-identical to attn_forward_window of token
 * t after tokens 0..t-1. s: q and o T x q_dim, k and v T x kv_dim, att as
 * attn_forward_window's. */
void attn_forward_window_batch(mf_pool *pool, const attn_hparams *hp, const attn_opts *o, const attn_weights *w,
                               kv_ring kv, uint32_t pos0, int T, const float *H, size_t h_stride, attn_batch_scratch *s,
                               float *OUT, size_t out_stride);

#endif
