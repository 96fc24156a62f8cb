/* blocks.h — the layer blocks architectures share: GQA attention with an
 * optional per-head q/k RMSNorm, biases and partial rotary; and the routed
 * MoE FFN that reaches its experts through the store. */
#ifndef MF_BLOCKS_H
#define MF_BLOCKS_H

#include "models/ops.h"
#include "store/store.h"

typedef struct attn_hparams {
    int n_head, n_head_kv, head_dim;
    int n_rot;               /* rotated dims per head (<= head_dim) */
    int rope_neox;           /* 1: NEOX pairs (i, i+n_rot/2); 0: adjacent pairs */
    float freq_base;
    float norm_eps;          /* q/k norm epsilon */
    float scale;             /* softmax scale, usually 1/sqrt(head_dim) */
} attn_hparams;

typedef struct attn_weights {
    mf_weight wq, wk, wv, wo;
    mf_weight bq, bk, bv, bo;       /* optional biases (f32) */
    mf_weight q_norm, k_norm;       /* optional per-head RMSNorm (f32, head_dim) */
} attn_weights;

/* Per-layer KV cache rows: n_head_kv * head_dim floats per position. */
typedef struct kv_layer { float *k, *v; } kv_layer;

typedef struct attn_scratch {
    float *q, *k, *v, *att, *out;   /* att: n_head * n_ctx scores */
} attn_scratch;

/* Floats of q, k, v and out (att is the KV cache's: see kv_cache), and
 * pointing them into p in that order; returns the float after them. */
size_t attn_scratch_floats(const attn_hparams *hp);
float *attn_scratch_lay(attn_scratch *s, const attn_hparams *hp, float *p);

/* Self-attention of one token at pos over positions 0..pos; h is the
 * normed input, out (n_embd) receives W_o . attention. Writes the token's
 * k, v into the cache at pos. */
void attn_forward(mf_pool *pool, const attn_hparams *hp, const attn_weights *w, kv_layer kv, uint32_t pos,
                  const float *h, attn_scratch *s, float *out);

/* Scratch of a batch of T tokens: q and o T x q_dim, k and v T x kv_dim,
 * att n_head x n_ctx, qbuf the quantized inputs (op_matmul_qbytes). */
typedef struct attn_batch_scratch {
    float *q, *k, *v, *o, *att;
    void *qbuf;
    size_t qcap;
} attn_batch_scratch;

/* The same for T tokens at positions pos0.. (prefill): projections as
 * matrix products, attention causal token by token. Row t of OUT is
 * bit-identical to attn_forward of token t after tokens 0..t-1. */
void attn_forward_batch(mf_pool *pool, const attn_hparams *hp, const attn_weights *w, kv_layer kv, uint32_t pos0,
                        int T, const float *H, size_t h_stride, attn_batch_scratch *s, float *OUT, size_t out_stride);

/* How router logits become expert choices and mixing weights. */
typedef enum moe_gating {
    MOE_SOFTMAX,         /* p = softmax(all logits); top-K of p (Qwen, Mixtral) */
    MOE_SIGMOID,         /* p = sigmoid(logits); top-K of p + sel_bias (DeepSeek-V3, GLM-4.5) */
    MOE_SOFTMAX_TOPK,    /* top-K of the logits; weights = softmax of those K (gpt-oss) */
} moe_gating;

typedef enum moe_act {
    MOE_SWIGLU,          /* silu(gate) * up */
    MOE_SWIGLU_OAI,      /* gpt-oss: g = min(gate, limit), u = clamp(up, -limit, limit),
                            g * sigmoid(alpha g) * (u + 1) */
} moe_act;

typedef struct moe_hparams {
    int n_expert, n_used, n_embd, n_ff;
    moe_gating gating;
    const float *sel_bias;   /* per-expert bias added for selection only (NULL: none) */
    const float *router_bias;   /* added to the router logits before gating (gpt-oss; NULL: none) */
    int n_group, n_group_used;  /* group-limited selection (DeepSeek-V3); 0/1: off */
    int norm_topk;           /* renormalise the K weights to sum 1 */
    float weights_scale;     /* multiply the K weights (1: none) */
    moe_act act;
    float swiglu_alpha, swiglu_limit;
} moe_hparams;

typedef struct moe_scratch {
    float *logits;           /* n_expert */
    float *sel;              /* n_expert: selection scores */
    float *gate, *up;        /* n_used * n_ff each; gate must be followed by up (a fused
                                gate_up expert writes 2 * n_used * n_ff from gate) */
    float *down;             /* n_used * n_embd: each expert's down projection */
    int32_t *ids;            /* n_used */
    float *w;                /* n_used */
    /* prefetch (optional: an architecture that guesses allocates them) */
    float *pf_h;             /* n_embd */
    int32_t *pf_ids;         /* moe_guess_count(n_used) */
    const store_expert *ex[64];  /* moe_route's experts, for moe_experts */
} moe_scratch;

/* ids and pf_ids for K = n_used (0 for a dense model: one entry each,
 * never read), and freeing them. */
int moe_scratch_ids_alloc(moe_scratch *s, int n_used);
void moe_scratch_ids_free(moe_scratch *s);
/* Floats of the buffers moe_scratch_lay lays out (with_sel: s->sel too). */
size_t moe_scratch_floats(int n_expert, int n_used, int n_ff, int n_embd, int with_sel);
/* Points logits, sel (or NULL), gate, up, down, pf_h and w into p, in that
 * order; returns the float after them. ids and pf_ids are the caller's. */
float *moe_scratch_lay(moe_scratch *s, float *p, int n_expert, int n_used, int n_ff, int n_embd, int with_sel);

/* The next layer's guess for prefetch: its router applied to
 * RMSNorm(x) * norm, x being the residual stream as it is now (after this
 * layer's attention); the top-(K + margin) go to the store. Gating, router
 * and selection biases are taken from the hparams passed with it (an
 * architecture whose layers differ there passes the next layer's). */
typedef struct moe_next {
    int layer;                 /* the layer guessed */
    const mf_weight *router;   /* its router */
    const float *norm;         /* its pre-FFN RMSNorm weight (NULL: x as it is) */
    float eps;
    const float *x;            /* n_embd */
    const moe_hparams *hp;     /* its gating and biases (NULL: the same as this layer's) */
} moe_next;

/* Routed experts of layer: router -> top-K -> experts from the store ->
 * out = sum_k w_k * down_k(act(gate_k h, up_k h)), with the experts' biases
 * where the layer has them. s->sel may be NULL when gating needs no
 * separate selection scores (MOE_SOFTMAX without sel_bias).
 * moe_forward = moe_route then moe_experts; an architecture that prefetches
 * calls the two itself and passes moe_route the next layer's guess, whose
 * reads then queue behind this layer's demand reads and run while this
 * layer's experts and the next layer's attention compute. */
int moe_forward(mf_pool *pool, store *st, int layer, const moe_hparams *hp, const mf_weight *router, const float *h,
                moe_scratch *s, float *out, mf_error *e);
/* Router, gating, top-K, and the experts acquired (pinned) from the store;
 * next (may be NULL) is guessed and prefetched before the wait for them. */
int moe_route(mf_pool *pool, store *st, int layer, const moe_hparams *hp, const mf_weight *router, const float *h,
              moe_scratch *s, const moe_next *next, mf_error *e);
/* The experts moe_route acquired, mixed into out; releases them. */
void moe_experts(mf_pool *pool, store *st, int layer, const moe_hparams *hp, const float *h, moe_scratch *s,
                 float *out);
/* A guess prefetched on its own (the first layer's, from the embedding).
 * Nothing happens when the store does not prefetch or s->pf_h is NULL.
 * Writes s->logits, s->pf_h, s->pf_ids only (never what moe_experts reads). */
void moe_prefetch(mf_pool *pool, store *st, const moe_hparams *hp, const moe_next *next, moe_scratch *s);
/* Scratch of a batch: see moe_batch_init. */
typedef struct moe_batch {
    int T;                      /* capacity in tokens */
    float *logits, *sel, *w, *X, *G, *U, *Dn, *D;
    int32_t *ids, *start, *order;
    void *qbuf;
    size_t qcap;
} moe_batch;

/* Floats and int32s moe_batch_init carves for T tokens. */
size_t moe_batch_floats(const moe_hparams *hp, int T);
static inline size_t moe_batch_ints(const moe_hparams *hp, int T)
{
    return (size_t)T * (size_t)hp->n_used * 2 + (size_t)hp->n_expert + 1;
}
void moe_batch_init(moe_batch *b, const moe_hparams *hp, int T, float *floats, int32_t *ints, void *qbuf, size_t qcap);

/* The routed FFN of T tokens (prefill): every token routed as moe_route
 * does, then each expert used by the batch acquired once (in waves of K)
 * and applied to all its tokens as a matrix product. Row t of OUT is
 * bit-identical to moe_forward of H row t. */
int moe_forward_batch(mf_pool *pool, store *st, int layer, const moe_hparams *hp, const mf_weight *router,
                      const float *H, size_t h_stride, int T, moe_batch *b, float *OUT, size_t out_stride,
                      mf_error *e);

/* How many experts a guess names for K chosen: K plus a margin. */
int moe_guess_count(int n_used);

/* Top-k of x[0..n) by value (ties: lower index first), descending. */
void moe_topk(const float *x, int n, int k, int32_t *ids);

#endif
