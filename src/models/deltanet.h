/* deltanet.h — the Gated DeltaNet linear-attention layer (Yang, Kautz,
 * Hatamizadeh, "Gated Delta Networks: Improving Mamba2 with Delta Rule",
 * arXiv:2412.06464) as Qwen3-Next / Qwen3.5 use it, one token at a time or
 * a chunk of tokens in order (prefill).
 *
 * The layer keeps no per-position entries: its whole history is a causal
 * convolution window (the last d_conv - 1 inputs of each channel) and, per
 * value head, a d_k x d_v state matrix. Both are owned by the caller (the
 * architecture's session state) and updated in place by dnet_forward, so a
 * session cannot be rewound except to zero (dnet_state_reset).
 */
#ifndef MF_DELTANET_H
#define MF_DELTANET_H

#include "models/ops.h"

typedef struct dnet_hparams {
    int n_embd;
    int d_conv;              /* ssm.conv_kernel: taps of the causal conv, current token included */
    int n_k_heads;           /* ssm.group_count: q/k heads */
    int n_v_heads;           /* ssm.time_step_rank: value heads (one decay and beta each) */
    int d_k;                 /* ssm.state_size: q/k head dim */
    int d_v;                 /* ssm.inner_size / n_v_heads: value head dim */
    float eps;               /* L2-norm floor of q, k and the gated RMSNorm epsilon */
} dnet_hparams;

/* Tensors of blk.L as the GGUF converter writes them (Qwen3_5MoeTextModel). */
typedef struct dnet_weights {
    mf_weight qkv;           /* attn_qkv {n_embd, 2 n_k d_k + n_v d_v}: rows q | k | v */
    mf_weight z;             /* attn_gate {n_embd, n_v d_v}: the output gate */
    mf_weight conv;          /* ssm_conv1d {d_conv, channels}, f32 */
    mf_weight dt_bias;       /* ssm_dt.bias {n_v}, f32 */
    mf_weight a;             /* ssm_a {n_v}, f32: -exp(A_log) */
    mf_weight beta, alpha;   /* ssm_beta, ssm_alpha {n_embd, n_v} */
    mf_weight norm;          /* ssm_norm {d_v}, f32 */
    mf_weight out;           /* ssm_out {n_v d_v, n_embd} */
} dnet_weights;

/* One layer's recurrent state (zero at sequence start). */
typedef struct dnet_state {
    float *conv;             /* channels x (d_conv - 1): each channel's last inputs, oldest first */
    float *S;                /* n_v x d_k x d_v */
} dnet_state;

typedef struct dnet_scratch {
    float *mixed;            /* channels: qkv projection, then conv output */
    float *z;                /* n_v d_v */
    float *beta, *g;         /* n_v each */
    float *o;                /* n_v d_v */
    float *u;                /* n_v d_v: each head's delta-rule correction */
} dnet_scratch;

/* Checks the shape relations (the caller has read the keys); 0 or -1. */
int dnet_hparams_check(const dnet_hparams *hp, const char *path, mf_error *e);
/* qkv channels = 2 n_k d_k + n_v d_v. */
size_t dnet_channels(const dnet_hparams *hp);
/* Floats of one layer's conv and S states, and of the scratch. */
size_t dnet_conv_floats(const dnet_hparams *hp);
size_t dnet_S_floats(const dnet_hparams *hp);
size_t dnet_scratch_floats(const dnet_hparams *hp);
/* Carves the scratch from p (dnet_scratch_floats of them). */
void dnet_scratch_init(dnet_scratch *s, const dnet_hparams *hp, float *p);

/* Binds layer l's tensors with their shapes checked; 0 or -1. */
int dnet_bind(binder *b, const dnet_hparams *hp, dnet_weights *w, uint32_t l);

void dnet_state_reset(const dnet_hparams *hp, dnet_state st);

/* One token: h is the normed input (n_embd), out (n_embd) receives
 * ssm_out . gated-RMSNorm(delta-rule output). Advances st by one token. */
void dnet_forward(mf_pool *pool, const dnet_hparams *hp, const dnet_weights *w, dnet_state st, const float *h,
                  dnet_scratch *s, float *out);

/* Scratch of a chunk of T tokens: projections and outputs row by token. */
typedef struct dnet_batch {
    int T;                   /* capacity in tokens */
    float *mixed;            /* T x channels */
    float *z, *o;            /* T x n_v d_v each */
    float *beta, *g;         /* T x n_v each */
    float *u;                /* n_v d_v */
    void *qbuf;              /* quantized inputs of op_matmul (qcap bytes) */
    size_t qcap;
} dnet_batch;

size_t dnet_batch_floats(const dnet_hparams *hp, int T);
/* Carves b from p (dnet_batch_floats(hp, T) of them). */
void dnet_batch_init(dnet_batch *b, const dnet_hparams *hp, int T, float *p, void *qbuf, size_t qcap);

/* T <= b->T tokens (prefill): H rows h_stride floats apart are the normed
 * inputs, OUT rows (out_stride apart) receive what dnet_forward would give
 * for each token in turn, bit for bit. Advances st by T tokens. */
void dnet_forward_batch(mf_pool *pool, const dnet_hparams *hp, const dnet_weights *w, dnet_state st, const float *H,
                        size_t h_stride, int T, dnet_batch *b, float *OUT, size_t out_stride);

#endif
