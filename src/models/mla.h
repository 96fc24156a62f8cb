/* mla.h — multi-head latent attention (DeepSeek-V2, arXiv:2405.04434 §2.1;
 * used unchanged by DeepSeek-V3/R1 and Kimi-K2), with YaRN RoPE on the
 * decoupled rotary dims (arXiv:2309.00071).
 *
 * The cache holds, per token and layer, only the compressed latent: the
 * normalised c (kv_lora_rank) and the roped k_pe (n_rot), never per-head K
 * or V. Attention is computed in the absorbed form: W_UK is folded into
 * the query and W_UV applied after the softmax (see mla.c for the costs).
 */
#ifndef MF_MLA_H
#define MF_MLA_H

#include "models/ops.h"

#include <stdint.h>

#define MLA_MAX_ROT 256       /* rotary dims per head this engine accepts */

typedef struct mla_hparams {
    int n_head;
    int q_lora;               /* q LoRA rank; 0: plain attn_q (DeepSeek-V2-Lite) */
    int kv_lora;              /* kv_lora_rank: width of the cached latent c */
    int n_nope, n_rot;        /* per-head q.k dims without / with RoPE */
    int n_v;                  /* per-head value width (value_length_mla) */
    float eps;                /* RMSNorm epsilon of the q and kv latents */
    float kq_scale;           /* softmax scale, YaRN mscale^2 / sqrt(n_nope + n_rot) */
    float rope_mag;           /* magnitude of the rotation (1 for DeepSeek files) */
    double rope_freq[MLA_MAX_ROT / 2];  /* per pair: angle per position, YaRN-mixed */
} mla_hparams;

typedef struct mla_weights {
    mf_weight q_a, q_a_norm, q_b;  /* q LoRA: q = q_b . norm(q_a . h) */
    mf_weight q;                   /* or a plain q projection */
    mf_weight kv_a;                /* attn_kv_a_mqa: [c | k_pe] = kv_a . h */
    mf_weight kv_a_norm;
    mf_weight k_b;                 /* {n_nope, kv_lora, n_head}: W_UK per head */
    mf_weight v_b;                 /* {kv_lora, n_v, n_head}: W_UV per head */
    mf_weight wo;                  /* {n_head * n_v, n_embd} */
} mla_weights;

typedef struct mla_scratch {
    float *qa;                /* q_lora */
    float *q;                 /* n_head x (n_nope + n_rot) */
    float *kva;               /* kv_lora + n_rot */
    float *qcat;              /* n_head x (kv_lora + n_rot): [W_UK^T q_nope | q_pe] */
    float *olat;              /* n_head x kv_lora: attention-weighted latents */
    float *o;                 /* n_head x n_v */
    float *att;               /* n_head x n_ctx scores */
} mla_scratch;

/* Floats of one cached row (one token, one layer): kv_lora + n_rot. */
static inline size_t mla_kv_row(const mla_hparams *hp) { return (size_t)hp->kv_lora + (size_t)hp->n_rot; }

/* Bytes of latent cache per token over n_layer layers, bytes_per_value 4
 * for this engine's f32 cache (2 for an f16 one). */
uint64_t mla_kv_bytes_per_token(uint64_t kv_lora, uint64_t n_rot, uint64_t n_layer, uint64_t bytes_per_value);

/* Fills rope_freq, rope_mag and kq_scale from the rope keys. factor <= 1
 * means no scaling (plain RoPE); yarn_log_mul is the GGUF value
 * rope.scaling.yarn_log_multiplier (0.1 * mscale_all_dim), 0 when absent. */
void mla_rope_init(mla_hparams *hp, float freq_base, float factor, uint32_t n_ctx_orig, float beta_fast,
                   float beta_slow, float yarn_log_mul);

/* Floats mla_forward needs in s (all but att, which is n_head x n_ctx). */
size_t mla_scratch_floats(const mla_hparams *hp);
/* Points s's buffers (except att) into p, which holds mla_scratch_floats. */
void mla_scratch_bind(const mla_hparams *hp, mla_scratch *s, float *p);

/* Attention of one token at pos over positions 0..pos of this layer's cache
 * (rows of mla_kv_row floats); h is the normed input, out (n_embd) receives
 * attn_output . attention. Writes the token's latent row at pos. */
void mla_forward(mf_pool *pool, const mla_hparams *hp, const mla_weights *w, float *kv, uint32_t pos,
                 const float *h, mla_scratch *s, float *out);

/* Floats mla_forward_batch needs in scratch for T tokens. */
size_t mla_batch_floats(const mla_hparams *hp, int T);

/* The same for T tokens at positions pos0.. (prefill): the projections as
 * matrix products (qbuf of qcap bytes holds their quantized inputs, see
 * op_matmul), the rest token by token. Row t of OUT is bit-identical to
 * mla_forward of token t after tokens 0..t-1. att: n_head x (pos0 + T). */
void mla_forward_batch(mf_pool *pool, const mla_hparams *hp, const mla_weights *w, float *kv, uint32_t pos0, int T,
                       const float *H, size_t h_stride, float *scratch, float *att, void *qbuf, size_t qcap, float *OUT,
                       size_t out_stride);

#endif
