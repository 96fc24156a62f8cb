/* ops.h — the shared numeric blocks of every architecture: matrix-vector
 * products over quantized weights (split over the thread pool by rows),
 * RMSNorm, RoPE, softmax, SiLU, and single-query attention over a KV cache.
 * Activations are float between ops. A matvec quantizes its input once to
 * the 8-bit blocks its weights' kernels take (quant/kernels.h; float weights
 * keep float x) and dots every row with them; a row is computed whole by one
 * thread, so its result does not depend on which thread computed it (logits
 * are identical for any thread count). */
#ifndef MF_OPS_H
#define MF_OPS_H

#include "models/weights.h"
#include "threads/pool.h"

#include <stddef.h>
#include <stdint.h>

/* y[r] = dot(row r of w, x) for r in [0, ne[1]); w->data may be any
 * pointer with w's layout (a mapped tensor or an expert slot). The
 * quantized x lives in the pool's scratch (pool_scratch): with a NULL pool
 * the float reference kernels run instead. Nothing is allocated. */
void op_matvec(mf_pool *pool, const mf_weight *w, const float *x, float *y);
/* The same, for several weights sharing one input (q, k, v: one dispatch);
 * all have the same ne[0]. */
void op_matvec_multi(mf_pool *pool, int n, const mf_weight *const *w, const float *x, float *const *y);
/* The same, each weight with its own input x[i] (the K experts' down
 * projections: one dispatch instead of K); y[i] equals op_matvec(w[i], x[i]). */
void op_matvec_each(mf_pool *pool, int n, const mf_weight *const *w, const float *const *x, float *const *y);

/* The same product for T inputs: Y[t] = W . X[t] for each weight of w,
 * X rows x_stride floats apart, y[i] rows of weight i y_stride floats apart.
 * Each weight row is loaded once per block of tokens and dotted with every
 * token's quantized input, its blocks unpacked once for all of them
 * (vec_dot_n, quant/kernels.h), with results equal bit for bit to the
 * kernels op_matvec uses: Y[t] is bit-identical to op_matvec on X[t]. qbuf (qcap bytes) holds the quantized
 * inputs; when it is too small the tokens are done one by one. */
void op_matmul(mf_pool *pool, int n, const mf_weight *const *w, const float *X, size_t x_stride, int T,
               float *const *Y, size_t y_stride, void *qbuf, size_t qcap);
/* Bytes qbuf needs for T inputs of ne0 values for weights of these types. */
size_t op_matmul_qbytes(int n, const mf_weight *const *w, int T);

/* Row `id` of an embedding table, dequantized: from memory, or read from
 * the file when the table was left on disk (weight_read_row). Fails on a
 * read error or an id past the table, with a message naming both. */
int op_get_row(const mf_weight *w, uint64_t id, float *out, mf_error *e);

/* out = x / sqrt(mean(x^2) + eps) * g (g may be NULL). out may equal x. */
void op_rmsnorm(float *out, const float *x, const float *g, size_t n, float eps);

/* NEOX-style rotary embedding on the first n_rot dims of each of n_heads
 * heads of head_dim: pairs (i, i + n_rot/2), theta_i = pos * base^(-2i/n_rot). */
void op_rope_neox(float *x, int n_heads, int head_dim, int n_rot, int pos, float freq_base);
/* GPT-J / llama "normal" style: adjacent pairs (2i, 2i+1). */
void op_rope_norm(float *x, int n_heads, int head_dim, int n_rot, int pos, float freq_base);

void op_softmax(float *x, size_t n);
static inline float op_silu(float x) { return x / (1.0f + __builtin_expf(-x)); }
static inline float op_sigmoid(float x) { return 1.0f / (1.0f + __builtin_expf(-x)); }

/* One query position against n_kv cached positions, for all heads:
 * out[h] = softmax(q_h . k_t * scale) . v_t, q head h reading kv head
 * h / (n_head / n_head_kv). k and v rows are n_head_kv * head_dim floats
 * per position (stride kv_stride floats). */
void op_attention(mf_pool *pool, const float *q, const float *k, const float *v, size_t kv_stride, int n_kv,
                  int n_head, int n_head_kv, int head_dim, float scale, float *att_scratch, float *out);
/* T queries at positions pos0..pos0+T-1 (rows q_stride apart) over a cache
 * that already holds their keys and values: row t of OUT attends to
 * positions 0..pos0+t, with the same numbers op_attention gives that token.
 * att_scratch: min(threads, n_head) x (pos0 + T) floats. */
void op_attention_causal(mf_pool *pool, const float *Q, size_t q_stride, const float *k, const float *v,
                         size_t kv_stride, uint32_t pos0, int T, int n_head, int n_head_kv, int head_dim, float scale,
                         float *att_scratch, float *OUT, size_t out_stride);

#endif
