/* layer_batch.h — what the attention + FFN architectures (deepseek2,
 * glm4moe, gpt-oss, llama, qwen3moe) share: the FFN half of a layer (dense
 * SwiGLU, or routed experts plus shared ones, with the decode prefetch of
 * the next layer's guess) and the layers of one token, and the evaluation
 * of a prompt layer by layer over chunks of tokens.
 *
 * The one idea of the chunks: T tokens go through layer l before any token
 * enters layer l + 1, so a routed expert used by several tokens of the
 * chunk is read from the store once (moe_forward_batch) instead of once per
 * token. Every product is op_matmul, bit-identical to the op_matvec token by
 * token evaluation uses, and every per-token step (norms, RoPE, attention)
 * is the same function on the same numbers: logits are bit-identical to
 * token by token for any chunk size. The architecture describes its layers
 * once at load (lb_model) and supplies its attention over a chunk; lb_run
 * does the rest.
 */
#ifndef MF_LAYER_BATCH_H
#define MF_LAYER_BATCH_H

#include "models/blocks.h"

/* Tokens per layer pass unless --batch says otherwise. An expert read
 * serves on average T*K/N tokens of a chunk, so T must be several times
 * N/K to cut prefill reads by 10x: measured on the Qwen3-30B-A3B shape
 * (N/K = 16) under a 1.5 GiB cap, 64 tokens read 62 MB per prompt token
 * against 199 token by token (3.2x). 256 keeps the scratch near 30 MB. */
#define LB_BATCH 256

/* A SwiGLU FFN: down(silu(gate h + gate_b) * (up h + up_b)) + down_b
 * (Shazeer 2020); absent biases have name NULL. Dense layers and shared
 * experts. */
typedef struct lb_ffn {
    const mf_weight *gate, *up, *down;        /* gate NULL: no FFN */
    const mf_weight *gate_b, *up_b, *down_b;  /* NULL or absent: none */
} lb_ffn;

/* One token: g and u hold gate->ne[1] floats each. */
void lb_ffn_one(mf_pool *pool, const lb_ffn *f, const float *h, float *g, float *u, float *out);

/* A layer as lb_* sees it: its two norms, and its FFN half. */
typedef struct lb_layer {
    const float *attn_norm, *ffn_norm;
    const mf_weight *router;   /* NULL: a dense layer (ffn is its FFN) */
    moe_hparams hp;            /* the layer's routing, its own biases included */
    lb_ffn ffn;                /* the dense FFN, or the shared experts (gate NULL: none) */
} lb_layer;

/* What the shared code needs of a model, filled once at load. */
typedef struct lb_model {
    mf_pool *pool;
    store *store;              /* NULL: a dense model */
    const mf_weight *tok_embd, *output_norm, *output;
    uint32_t n_vocab, n_layer, n_embd;
    float eps;                 /* of every RMSNorm */
    int batch;                 /* tokens per prefill pass */
    lb_layer *layers;          /* n_layer (the architecture frees them) */
    /* the chunk scratch's sizes */
    size_t n_ff;               /* the widest dense FFN or shared experts */
    size_t attn_floats;        /* the attention's, per chunk */
    const mf_weight *w[8];     /* resident weights the chunk multiplies (NULL or absent: skipped), */
    int n_w;                   /* so that the quantized-input buffer fits the largest */
} lb_model;

/* The lb_model fields every architecture takes from its model m and
 * hparams hp under the same names, as designated initializers; the
 * architecture adds n_ff and w. */
#define LB_MODEL_COMMON(m, hp, n_batch)                                                                   \
    .pool = (m)->pool, .store = (m)->store, .tok_embd = &(m)->tok_embd, .output_norm = &(m)->output_norm, \
    .output = &(m)->output, .n_vocab = (hp)->n_vocab, .n_layer = (hp)->n_layer, .n_embd = (hp)->n_embd,  \
    .eps = (hp)->eps, .batch = (n_batch) > 1 ? (n_batch) : LB_BATCH

/* lm->attn_floats, and lm->layers: n_layer zeroed descriptions for the
 * architecture to fill. 0, or -1 with e set. */
int lb_layers_new(lb_model *lm, size_t attn_floats, mf_error *e);

/* The FFN half of layer l for one token: h normed input, out its output.
 * A MoE layer acquires its experts first, then guesses layer l + 1's from
 * x (the residual stream after this layer's attention) so that those reads
 * run while this layer computes (see lb_guess); a dense layer guesses
 * before its FFN. g, u: lm->n_ff floats; sh: n_embd. */
int lb_ffn_block(const lb_model *lm, uint32_t l, const float *h, const float *x, moe_scratch *ms, float *g, float *u,
                 float *sh, float *out, mf_error *e);

/* Decode prefetch of layer l's experts (when it has them and the store
 * prefetches): its router on RMSNorm(x) * ffn_norm, ranked with layer l's
 * own biases (moe_route's guess would rank with the running layer's). The
 * guess changes when experts arrive, never the logits. */
void lb_guess(const lb_model *lm, uint32_t l, const float *x, moe_scratch *ms);

/* ---- one token ---- */

/* The buffers of one token: x, h, tmp n_embd floats each (the residual
 * stream, a block's normed input, a block's output); g, u, sh and ms as
 * lb_ffn_block takes them (g, u, sh NULL where the model has no dense FFN
 * or shared experts). */
typedef struct lb_token {
    float *x, *h, *tmp;
    float *g, *u, *sh;
    moe_scratch *ms;
} lb_token;

/* The attention of layer l for the one token at pos: h its normed input,
 * out (n_embd) the block's output. */
typedef void (*lb_attn1_fn)(void *model, void *state, uint32_t l, uint32_t pos, const float *h, float *out);

/* arch_ops.forward: embedding (the first layer's guess prefetched from it),
 * every layer (norm, attn, residual, norm, lb_ffn_block, residual), final
 * norm and output head when logits is not NULL. The caller has reserved
 * positions <= pos. */
int lb_forward(const lb_model *lm, const lb_token *t, lb_attn1_fn attn, void *model, void *state, int32_t token,
               uint32_t pos, float *logits, mf_error *e);

/* ---- chunks ---- */

/* The scratch of one chunk, allocated on the first prompt of a session. */
typedef struct lb_scratch {
    int cap;                   /* tokens per pass */
    size_t n_embd, n_ff;
    float *X, *H, *Y, *Y2;     /* cap x n_embd: residual stream, normed input, block output, shared experts */
    float *G, *U;              /* cap x n_ff: dense FFN / shared experts */
    float *A;                  /* the architecture's attention scratch (lm->attn_floats) */
    moe_batch mb;              /* the routed experts' (when the model has them) */
    void *q;                   /* quantized inputs of every op_matmul */
    size_t qcap;
    float *floats;
    int32_t *ints;
} lb_scratch;

void lb_free(lb_scratch *b);

/* The attention of layer l over the T tokens at positions p0.., whose
 * normed inputs are b->H, into b->Y (rows n_embd apart). */
typedef void (*lb_attn_fn)(void *model, void *state, uint32_t l, uint32_t p0, int T, lb_scratch *b);

/* arch_ops.forward_batch over chunks of lm->batch tokens: embedding, every
 * layer (norm, attn, residual, norm, FFN half, residual), final norm and
 * output head for the rows asked for. The caller has reserved positions
 * < pos0 + n. */
int lb_run(const lb_model *lm, lb_scratch *b, lb_attn_fn attn, void *model, void *state, const int32_t *tokens, int n,
           uint32_t pos0, float *all, float *last, mf_error *e);

/* The GQA attention scratch (blocks.h) of a chunk carved from b->A,
 * lb_attn_floats of it; att the state's score scratch. */
size_t lb_attn_floats(const attn_hparams *hp, int T);
attn_batch_scratch lb_attn_scratch(const lb_scratch *b, const attn_hparams *hp, float *att);

#endif
