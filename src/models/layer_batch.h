/* layer_batch.h — what the attention + FFN architectures (deepseek2,
 * glm4moe, gpt-oss, llama) share to evaluate a prompt layer by layer over
 * chunks of tokens, and the SwiGLU FFN they share token by token.
 *
 * The one idea: a chunk of T tokens goes through layer l before any token
 * enters layer l + 1, so a routed expert used by several tokens of the
 * chunk is read from the store once (moe_forward_batch) instead of once per
 * token. Every product is op_matmul, bit-identical to the op_matvec token by
 * token evaluation uses, and every per-token step (norms, RoPE, attention)
 * is the same function on the same numbers: logits are bit-identical to
 * token by token for any chunk size. The architecture supplies one
 * function, its layer over a chunk; lb_run does embedding, layers, logits.
 */
#ifndef MF_LAYER_BATCH_H
#define MF_LAYER_BATCH_H

#include "models/blocks.h"

/* Tokens per layer pass unless --batch says otherwise: the reasoning and
 * the measurement are qwen3moe.c's (Q3_BATCH): an expert read serves T*K/N
 * tokens of a chunk, so T must be several times N/K. */
#define LB_BATCH 256

/* A SwiGLU FFN: down(silu(gate h + gate_b) * (up h + up_b)) + down_b
 * (Shazeer 2020); absent biases have name NULL. Dense layers and shared
 * experts. */
typedef struct lb_ffn {
    const mf_weight *gate, *up, *down;
    const mf_weight *gate_b, *up_b, *down_b;  /* NULL or absent: none */
} lb_ffn;

/* One token: g and u hold gate->ne[1] floats each. */
void lb_ffn_one(mf_pool *pool, const lb_ffn *f, const float *h, float *g, float *u, float *out);

/* The scratch of one chunk, allocated on the first prompt of a session. */
typedef struct lb_scratch {
    int cap;                   /* tokens per pass */
    size_t n_embd, n_ff;
    float *X, *H, *Y, *Y2;     /* cap x n_embd: residual stream, normed input, block output, shared experts */
    float *G, *U;              /* cap x n_ff: dense FFN / shared experts */
    float *A;                  /* the architecture's attention scratch (attn_floats at lb_alloc) */
    moe_batch mb;              /* the routed experts' (when the model has them) */
    void *q;                   /* quantized inputs of every op_matmul */
    size_t qcap;
    float *floats;
    int32_t *ints;
} lb_scratch;


/* Row t of H = RMSNorm(row t of X) * g, T rows of n. */
void lb_rmsnorm(float *H, const float *X, const float *g, int T, size_t n, float eps);
/* X += Y over n floats. */
void lb_add(float *X, const float *Y, size_t n);

/* The FFN of T rows of b->H into OUT (rows n_embd apart). */
void lb_ffn_batch(mf_pool *pool, const lb_ffn *f, int T, lb_scratch *b, float *OUT);

/* Routed experts of layer l of T rows of b->H into b->Y, plus the shared
 * experts (sh NULL: none) added as moe_forward's caller adds them token by
 * token: Y = routed, Y += shared. */
int lb_moe_batch(mf_pool *pool, store *st, int l, const moe_hparams *hp, const mf_weight *router, const lb_ffn *sh,
                 int T, lb_scratch *b, mf_error *e);

/* What lb_run needs of the model. */
typedef struct lb_model {
    mf_pool *pool;
    const mf_weight *tok_embd, *output_norm, *output;
    uint32_t n_vocab, n_layer, n_embd;
    float eps;                 /* of the final norm */
    int batch;                 /* tokens per pass */
} lb_model;

/* Sizes everything for lm->batch tokens: n_ff the widest dense FFN or
 * shared expert (0: none), attn_floats what the attention needs, moe and st
 * the routed experts (NULL: a dense model), w[0..n_w) every resident weight
 * the chunk multiplies, absent ones included (name NULL, skipped): the
 * quantized-input buffer fits the largest (a
 * smaller one would only make op_matmul go token by token). Once: nothing
 * happens when b is allocated already. */
int lb_alloc(lb_scratch *b, const lb_model *lm, size_t n_ff, size_t attn_floats, const moe_hparams *moe, store *st,
             int n_w, const mf_weight *const *w, mf_error *e);
void lb_free(lb_scratch *b);

/* The GQA attention scratch (blocks.h) of lm->batch tokens carved from
 * b->A, lb_attn_floats of it; att the state's score scratch. */
size_t lb_attn_floats(const attn_hparams *hp, int T);
attn_batch_scratch lb_attn_scratch(const lb_scratch *b, const attn_hparams *hp, float *att);

/* Layer l of the architecture over the T tokens at positions p0.. whose
 * residual stream is b->X (updated in place). */
typedef int (*lb_layer_fn)(void *model, void *state, uint32_t l, uint32_t p0, int T, lb_scratch *b, mf_error *e);

/* arch_ops.forward_batch over chunks of lm->batch tokens: embedding, every
 * layer, final norm and output head for the rows asked for. The caller has
 * reserved positions < pos0 + n. */
int lb_run(const lb_model *lm, lb_scratch *b, lb_layer_fn layer, void *model, void *state, const int32_t *tokens,
           int n, uint32_t pos0, float *all, float *last, mf_error *e);

/* Decode prefetch with per-layer gating biases: after layer l's experts are
 * acquired (moe_route without a guess, so they are pinned), the guess for
 * layer next_layer from x, with that layer's hparams (moe_route's own
 * guess would rank with layer l's biases). Does nothing when the layer has
 * no router (router NULL). */
void lb_prefetch(mf_pool *pool, store *st, const moe_hparams *next_hp, int next_layer, const mf_weight *router,
                 const float *norm, float eps, const float *x, moe_scratch *s);

#endif
