/* qwen3moe.c — Qwen3-MoE (Qwen3-30B-A3B, Qwen3-235B-A22B,
 * Qwen3-Coder-480B-A35B), GGUF architecture `qwen3moe`.
 *
 * Per layer (Qwen3 technical report, arXiv:2505.09388; HF config keys as
 * the GGUF converter writes them under `qwen3moe.*`):
 *   h = RMSNorm(x) * attn_norm
 *   q, k, v = W_q h, W_k h, W_v h            (no biases)
 *   q, k    = per-head RMSNorm (attn_q_norm, attn_k_norm), then NEOX RoPE
 *   x      += W_o GQA-attention(q, k, v)      scale 1/sqrt(head_dim)
 *   h = RMSNorm(x) * ffn_norm
 *   p = softmax(W_router h); top-K of p, renormalised to sum 1
 *   x      += sum_k p_k * down_k(silu(gate_k h) * up_k h)
 * then final RMSNorm and the output head (or the tied embedding).
 * Every shape comes from the GGUF keys; nothing is hard-coded.
 */
#include "models/arch.h"
#include "models/blocks.h"
#include "models/decoder.h"
#include "models/kvcache.h"
#include "models/layer_batch.h"
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct q3_hparams {
    uint32_t n_vocab, n_embd, n_layer, n_ctx_train;
    uint32_t n_head, n_head_kv, head_dim, n_rot;
    uint32_t n_expert, n_used, n_ff_exp;
    float eps, freq_base;
} q3_hparams;

typedef struct q3_layer {
    mf_weight attn_norm, ffn_norm, router;
    attn_weights attn;
} q3_layer;

typedef struct q3_model {
    q3_hparams hp;
    attn_hparams ahp;
    moe_hparams mhp;
    mf_weight tok_embd, output_norm, output;
    q3_layer *layers;
    store *store;
    mf_pool *pool;
    lb_model lb;                   /* the layers as layer_batch.c runs them */
} q3_model;

typedef struct q3_state {
    q3_model *m;
    uint32_t n_ctx;
    kv_cache kv;                   /* layer-major K and V, and the attention scores */
    float *x, *h, *tmp;
    attn_scratch as;
    moe_scratch ms;
    lb_scratch lb;                 /* batched prefill, allocated on its first use */
} q3_state;

static int q3_hparams_load(const gguf_file *f, q3_hparams *hp, mf_error *e)
{
    char k[128];
    const char *a = "qwen3moe";
    dec_dims d;
    if (dec_dims_load(f, a, 0, &d, e) ||
        gguf_opt_f32(f, gguf_arch_key(k, sizeof k, a, "attention.layer_norm_rms_epsilon"), 1e-6f, &hp->eps, e) ||
        gguf_opt_f32(f, gguf_arch_key(k, sizeof k, a, "rope.freq_base"), 10000.0f, &hp->freq_base, e))
        return -1;
    DEC_DIMS_COPY(hp, d);
    hp->n_ff_exp = d.n_ff;
    return 0;
}

static void q3_free(void *mp)
{
    q3_model *m = mp;
    if (!m) return;
    free(m->layers);
    free(m->lb.layers);
    free(m);
}

/* The layers as layer_batch.c sees them: routed experts only. */
static int q3_lb_init(q3_model *m, int n_batch, mf_error *e)
{
    const q3_hparams *hp = &m->hp;
    lb_model *lm = &m->lb;
    const q3_layer *L0 = &m->layers[0];
    *lm = (lb_model){
        LB_MODEL_COMMON(m, hp, n_batch),
        .w = { &L0->attn.wq, &L0->attn.wk, &L0->attn.wo, &L0->router }, .n_w = 4,
    };
    if (lb_layers_new(lm, lb_attn_floats(&m->ahp, lm->batch), e)) return -1;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const q3_layer *L = &m->layers[l];
        lm->layers[l] = (lb_layer){ .attn_norm = L->attn_norm.data, .ffn_norm = L->ffn_norm.data, .router = &L->router,
                                    .hp = m->mhp };
    }
    return 0;
}

static void *q3_load(arch_ctx *ctx, arch_info *info, mf_error *e)
{
    const gguf_file *f = ctx->f;
    q3_model *m = calloc(1, sizeof *m);
    if (!m) { mf_fail(e, "out of memory"); return NULL; }
    q3_hparams *hp = &m->hp;
    if (q3_hparams_load(f, hp, e) || arch_experts_used(ctx, &hp->n_used, e)) goto fail;
    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers) { mf_fail(e, "out of memory"); goto fail; }

    binder b = { f, e, 0 };
    const uint64_t E = hp->n_embd, Q = (uint64_t)hp->n_head * hp->head_dim, KV = (uint64_t)hp->n_head_kv * hp->head_dim;
    if (dec_bind_ends(&b, E, &m->tok_embd, &m->output_norm, &m->output, &hp->n_vocab)) goto fail;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        q3_layer *L = &m->layers[l];
        attn_weights *A = &L->attn;
        if (bind_weight(&b, &L->attn_norm, 1, 1, (uint64_t[]){ E }, "blk.%u.attn_norm.weight", l) ||
            bind_weight(&b, &A->wq, 1, 2, (uint64_t[]){ E, Q }, "blk.%u.attn_q.weight", l) ||
            bind_weight(&b, &A->wk, 1, 2, (uint64_t[]){ E, KV }, "blk.%u.attn_k.weight", l) ||
            bind_weight(&b, &A->wv, 1, 2, (uint64_t[]){ E, KV }, "blk.%u.attn_v.weight", l) ||
            bind_weight(&b, &A->wo, 1, 2, (uint64_t[]){ Q, E }, "blk.%u.attn_output.weight", l) ||
            bind_weight(&b, &A->q_norm, 1, 1, (uint64_t[]){ hp->head_dim }, "blk.%u.attn_q_norm.weight", l) ||
            bind_weight(&b, &A->k_norm, 1, 1, (uint64_t[]){ hp->head_dim }, "blk.%u.attn_k_norm.weight", l) ||
            bind_weight(&b, &L->ffn_norm, 1, 1, (uint64_t[]){ E }, "blk.%u.ffn_norm.weight", l) ||
            bind_weight(&b, &L->router, 1, 2, (uint64_t[]){ E, hp->n_expert }, "blk.%u.ffn_gate_inp.weight", l) ||
            bind_check_f32(&b, &L->attn_norm) || bind_check_f32(&b, &L->ffn_norm) ||
            bind_check_f32(&b, &A->q_norm) || bind_check_f32(&b, &A->k_norm))
            goto fail;
        /* The routed experts are checked here but reached only through the store. */
        mf_weight chk;
        if (bind_weight(&b, &chk, 1, 3, (uint64_t[]){ E, hp->n_ff_exp, hp->n_expert }, "blk.%u.ffn_gate_exps.weight", l) ||
            bind_weight(&b, &chk, 1, 3, (uint64_t[]){ E, hp->n_ff_exp, hp->n_expert }, "blk.%u.ffn_up_exps.weight", l) ||
            bind_weight(&b, &chk, 1, 3, (uint64_t[]){ hp->n_ff_exp, E, hp->n_expert }, "blk.%u.ffn_down_exps.weight", l))
            goto fail;
    }
    if (arch_open_store(ctx, hp->n_layer, hp->n_expert, hp->n_used, e)) goto fail;
    m->store = ctx->store;
    m->pool = ctx->pool;

    m->ahp = (attn_hparams){
        .n_head = (int)hp->n_head, .n_head_kv = (int)hp->n_head_kv, .head_dim = (int)hp->head_dim,
        .n_rot = (int)hp->n_rot, .rope_neox = 1, .freq_base = hp->freq_base, .norm_eps = hp->eps,
        .scale = 1.0f / sqrtf((float)hp->head_dim),
    };
    m->mhp = (moe_hparams){
        .n_expert = (int)hp->n_expert, .n_used = (int)hp->n_used, .n_embd = (int)hp->n_embd,
        .n_ff = (int)hp->n_ff_exp, .gating = MOE_SOFTMAX, .norm_topk = 1, .weights_scale = 1.0f,
    };
    if (q3_lb_init(m, ctx->n_batch, e)) goto fail;
    *info = (arch_info){ hp->n_vocab, hp->n_embd, hp->n_layer, hp->n_ctx_train, hp->n_expert, hp->n_used };
    return m;
fail:
    q3_free(m);
    return NULL;
}

static void q3_state_free(void *sp)
{
    q3_state *s = sp;
    if (!s) return;
    kv_cache_free(&s->kv);
    free(s->x);
    moe_scratch_ids_free(&s->ms);
    lb_free(&s->lb);
    free(s);
}

static int q3_state_reserve(void *sp, uint32_t n, mf_error *e)
{
    q3_state *s = sp;
    if (kv_cache_reserve(&s->kv, n, e)) return -1;
    s->as.att = s->kv.att;
    return 0;
}

static void *q3_state_new(void *mp, uint32_t n_ctx, mf_error *e)
{
    q3_model *m = mp;
    const q3_hparams *hp = &m->hp;
    q3_state *s = calloc(1, sizeof *s);
    if (!s) { mf_fail(e, "out of memory"); return NULL; }
    s->m = m;
    s->n_ctx = n_ctx;
    s->kv = (kv_cache){ .n_layer = hp->n_layer, .n_head = hp->n_head, .n_ctx = n_ctx,
                        .row = (size_t)hp->n_head_kv * hp->head_dim };
    const size_t E = hp->n_embd, K = hp->n_used, F = hp->n_ff_exp;
    size_t nf = 3 * E + attn_scratch_floats(&m->ahp) + moe_scratch_floats(hp->n_expert, (int)K, (int)F, (int)E, 0);
    s->x = calloc(nf, sizeof(float));
    if (!s->x || moe_scratch_ids_alloc(&s->ms, (int)K)) { q3_state_free(s); mf_fail(e, "out of memory"); return NULL; }
    float *p = s->x;
    s->x = p, p += E;
    s->h = p, p += E;
    s->tmp = p, p += E;
    p = attn_scratch_lay(&s->as, &m->ahp, p);
    moe_scratch_lay(&s->ms, p, hp->n_expert, (int)K, (int)F, (int)E, 0);
    if (q3_state_reserve(s, n_ctx < 256 ? n_ctx : 256, e)) { q3_state_free(s); return NULL; }
    return s;
}

/* The attention of layer l for the token at pos (lb_forward). */
static void q3_attn(void *mp, void *sp, uint32_t l, uint32_t pos, const float *h, float *out)
{
    q3_model *m = mp;
    q3_state *s = sp;
    attn_forward(m->pool, &m->ahp, &m->layers[l].attn, kv_cache_layer(&s->kv, l), pos, h, &s->as, out);
}

static int q3_forward(void *mp, void *sp, int32_t token, uint32_t pos, float *logits, mf_error *e)
{
    q3_model *m = mp;
    q3_state *s = sp;
    if (q3_state_reserve(s, pos + 1, e)) return -1;
    const lb_token t = { s->x, s->h, s->tmp, NULL, NULL, NULL, &s->ms };
    return lb_forward(&m->lb, &t, q3_attn, m, s, token, pos, logits, e);
}

/* The attention of layer l over the T tokens of a chunk (lb_run), which
 * runs the same layers as q3_forward one layer at a time, each routed
 * expert read once per chunk. */
static void q3_attn_batch(void *mp, void *sp, uint32_t l, uint32_t p0, int T, lb_scratch *b)
{
    q3_model *m = mp;
    q3_state *s = sp;
    attn_batch_scratch as = lb_attn_scratch(b, &m->ahp, s->kv.att);
    attn_forward_batch(m->pool, &m->ahp, &m->layers[l].attn, kv_cache_layer(&s->kv, l), p0, T, b->H, m->hp.n_embd,
                       &as, b->Y, m->hp.n_embd);
}

static int q3_forward_batch(void *mp, void *sp, const int32_t *tokens, int n, uint32_t pos0, float *all, float *last,
                            mf_error *e)
{
    q3_model *m = mp;
    q3_state *s = sp;
    if (q3_state_reserve(s, pos0 + (uint32_t)n, e)) return -1;
    return lb_run(&m->lb, &s->lb, q3_attn_batch, m, s, tokens, n, pos0, all, last, e);
}

const arch_ops arch_qwen3moe = {
    .name = "qwen3moe",
    .load = q3_load,
    .free = q3_free,
    .state_new = q3_state_new,
    .state_free = q3_state_free,
    .state_truncate = kv_truncate_free,
    .state_reserve = q3_state_reserve,
    .forward = q3_forward,
    .forward_batch = q3_forward_batch,
};
