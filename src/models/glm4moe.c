/* glm4moe.c — Zhipu GLM-4.5 / GLM-4.5-Air / GLM-4.6, GGUF architecture
 * `glm4moe`.
 *
 * Per layer (GLM-4.5 technical report, arXiv:2508.06471, section 2; HF
 * config keys as the GGUF converter writes them under `glm4moe.*`):
 *   h = RMSNorm(x) * attn_norm
 *   q, k, v = W_q h + b_q, W_k h + b_k, W_v h + b_v   (attention_bias)
 *   q, k    = per-head RMSNorm (attn_q_norm/attn_k_norm, `use_qk_norm`;
 *             applied iff the tensors exist), then NEOX RoPE on the first
 *             rope.dimension_count dims of each head (partial_rotary_factor)
 *   x      += W_o GQA-attention(q, k, v)               scale 1/sqrt(head_dim)
 *   h = RMSNorm(x) * post_attention_norm
 *   layers < leading_dense_block_count (first_k_dense_replace):
 *   x      += down(silu(gate h) * up h)
 *   other layers (DeepSeek-V3-style routing, arXiv:2412.19437 section 2.1.2):
 *     s = sigmoid(W_r h); top-K by s + exp_probs_b (bias for selection only);
 *     w_k = s_k / sum_K s (expert_weights_norm) * expert_weights_scale
 *   x      += sum_k w_k down_k(silu(gate_k h) * up_k h) + shared expert(h)
 * then final RMSNorm and the output head. The last nextn_predict_layers
 * blocks are the multi-token-prediction head: not run, not bound.
 */
#include "models/arch.h"
#include "models/attn_window.h"
#include "models/blocks.h"
#include "models/decoder.h"
#include "models/kvcache.h"
#include "models/layer_batch.h"
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GLM_ARCH "glm4moe"

typedef struct glm_hparams {
    uint32_t n_vocab, n_embd, n_layer, n_ctx_train;
    uint32_t n_head, n_head_kv, head_dim, n_rot;
    uint32_t n_ff;           /* dense layers (feed_forward_length) */
    uint32_t n_dense;        /* leading_dense_block_count */
    uint32_t n_expert, n_used, n_ff_exp, n_shared;
    uint32_t gating, n_group, n_group_used;
    bool norm_w;
    float w_scale, eps;
    rope_params rope;
} glm_hparams;

typedef struct glm_layer {
    mf_weight attn_norm, post_norm;
    attn_weights attn;
    mf_weight gate, up, down;          /* dense FFN, or the shared expert */
    mf_weight router, probs_b;         /* MoE layers */
    int moe;
} glm_layer;

typedef struct glm_model {
    glm_hparams hp;
    attn_hparams ahp;
    moe_hparams mhp;
    rope_table rope;
    mf_weight tok_embd, output_norm, output;
    glm_layer *layers;
    uint32_t n_ff_max;       /* widest dense FFN / shared expert */
    store *store;
    mf_pool *pool;
    lb_model lb;             /* the layers as layer_batch.c runs them */
} glm_model;

typedef struct glm_state {
    glm_model *m;
    kv_cache kv;             /* layer-major K and V, and the attention scores */
    float *x, *h, *tmp, *tmp2, *fg, *fu;
    attn_scratch as;
    moe_scratch ms;
    lb_scratch lb;           /* batched prefill, allocated on its first use */
} glm_state;

static int glm_hparams_load(const gguf_file *f, glm_hparams *hp, mf_error *e)
{
    char k[128];
    const char *a = GLM_ARCH, *path = f->parts[0].path;
    dec_dims d;
    if (dec_dims_load(f, a, DEC_NEXTN | DEC_ROPE_REQUIRED, &d, e)) return -1;
    DEC_DIMS_COPY(hp, d);
    hp->n_ff_exp = d.n_ff;
    if (gguf_get_u32(f, gguf_arch_key(k, sizeof k, a, "expert_shared_count"), &hp->n_shared, e) ||
        gguf_get_f32(f, gguf_arch_key(k, sizeof k, a, "attention.layer_norm_rms_epsilon"), &hp->eps, e) ||
        gguf_get_f32(f, gguf_arch_key(k, sizeof k, a, "expert_weights_scale"), &hp->w_scale, e) ||
        gguf_opt_bool(f, gguf_arch_key(k, sizeof k, a, "expert_weights_norm"), false, &hp->norm_w, e) ||
        gguf_opt_u32(f, gguf_arch_key(k, sizeof k, a, "expert_gating_func"), 0, &hp->gating, e) ||
        gguf_opt_u32(f, gguf_arch_key(k, sizeof k, a, "expert_group_count"), 0, &hp->n_group, e) ||
        gguf_opt_u32(f, gguf_arch_key(k, sizeof k, a, "expert_group_used_count"), 0, &hp->n_group_used, e) ||
        gguf_opt_u32(f, gguf_arch_key(k, sizeof k, a, "leading_dense_block_count"), 0, &hp->n_dense, e) ||
        gguf_opt_u32(f, gguf_arch_key(k, sizeof k, a, "feed_forward_length"), 0, &hp->n_ff, e))
        return -1;
    if (hp->n_dense > hp->n_layer)
        return mf_fail(e, "%s: glm4moe: leading_dense_block_count %u exceeds the %u layers", path, hp->n_dense, hp->n_layer);
    if (hp->n_dense && hp->n_ff == 0)
        return mf_fail(e, "%s: glm4moe: %u dense layers need feed_forward_length > 0", path, hp->n_dense);
    if (hp->n_shared > 64)
        return mf_fail(e, "%s: glm4moe: expert_shared_count %u is implausible", path, hp->n_shared);
    /* expert_gating_func: 1 softmax, 2 sigmoid; absent (0) is sigmoid for GLM-4.5. */
    if (hp->gating == 0) hp->gating = 2;
    if (hp->gating > 2)
        return mf_fail(e, "%s: key %s.expert_gating_func is %u: expected 1 (softmax) or 2 (sigmoid)", path, a, hp->gating);
    if (hp->n_group > 1 && (hp->n_expert % hp->n_group || hp->n_group_used == 0 || hp->n_group_used > hp->n_group ||
                            hp->n_group > 256))
        return mf_fail(e, "%s: glm4moe: expert groups %u (used %u) do not divide %u experts", path, hp->n_group,
                       hp->n_group_used, hp->n_expert);
    return rope_params_load(f, a, (int)hp->n_rot, 1, hp->n_ctx_train, &hp->rope, e);
}

static void glm_free(void *mp)
{
    glm_model *m = mp;
    if (!m) return;
    free(m->layers);
    free(m->lb.layers);
    free(m);
}

static int glm_bind_layer(binder *b, const glm_hparams *hp, glm_layer *L, uint32_t l)
{
    const uint64_t E = hp->n_embd, Q = (uint64_t)hp->n_head * hp->head_dim, KV = (uint64_t)hp->n_head_kv * hp->head_dim;
    const uint64_t F = hp->n_ff_exp, N = hp->n_expert, SH = (uint64_t)hp->n_ff_exp * hp->n_shared;
    attn_weights *A = &L->attn;
    if (bind_weight(b, &L->attn_norm, 1, 1, (uint64_t[]){ E }, "blk.%u.attn_norm.weight", l) ||
        bind_weight(b, &A->wq, 1, 2, (uint64_t[]){ E, Q }, "blk.%u.attn_q.weight", l) ||
        bind_weight(b, &A->wk, 1, 2, (uint64_t[]){ E, KV }, "blk.%u.attn_k.weight", l) ||
        bind_weight(b, &A->wv, 1, 2, (uint64_t[]){ E, KV }, "blk.%u.attn_v.weight", l) ||
        bind_weight(b, &A->wo, 1, 2, (uint64_t[]){ Q, E }, "blk.%u.attn_output.weight", l) ||
        bind_weight(b, &A->bq, 1, 1, (uint64_t[]){ Q }, "blk.%u.attn_q.bias", l) ||
        bind_weight(b, &A->bk, 1, 1, (uint64_t[]){ KV }, "blk.%u.attn_k.bias", l) ||
        bind_weight(b, &A->bv, 1, 1, (uint64_t[]){ KV }, "blk.%u.attn_v.bias", l) ||
        bind_weight(b, &A->q_norm, 0, 1, (uint64_t[]){ hp->head_dim }, "blk.%u.attn_q_norm.weight", l) ||
        bind_weight(b, &A->k_norm, 0, 1, (uint64_t[]){ hp->head_dim }, "blk.%u.attn_k_norm.weight", l) ||
        bind_weight(b, &L->post_norm, 1, 1, (uint64_t[]){ E }, "blk.%u.post_attention_norm.weight", l))
        return -1;
    const mf_weight *f32[] = { &L->attn_norm, &A->bq, &A->bk, &A->bv, &A->q_norm, &A->k_norm, &L->post_norm };
    for (size_t i = 0; i < sizeof f32 / sizeof f32[0]; i++)
        if (bind_check_f32(b, f32[i])) return -1;
    if (!A->q_norm.name != !A->k_norm.name)
        return mf_fail(b->e, "%s: blk.%u has only one of attn_q_norm and attn_k_norm", b->f->parts[0].path, l);
    L->moe = l >= hp->n_dense;
    if (!L->moe)
        return bind_weight(b, &L->gate, 1, 2, (uint64_t[]){ E, hp->n_ff }, "blk.%u.ffn_gate.weight", l) ||
               bind_weight(b, &L->up, 1, 2, (uint64_t[]){ E, hp->n_ff }, "blk.%u.ffn_up.weight", l) ||
               bind_weight(b, &L->down, 1, 2, (uint64_t[]){ hp->n_ff, E }, "blk.%u.ffn_down.weight", l) ? -1 : 0;
    if (bind_weight(b, &L->router, 1, 2, (uint64_t[]){ E, N }, "blk.%u.ffn_gate_inp.weight", l) ||
        bind_weight(b, &L->probs_b, 1, 1, (uint64_t[]){ N }, "blk.%u.exp_probs_b.bias", l) ||
        bind_check_f32(b, &L->probs_b))
        return -1;
    if (hp->n_shared &&
        (bind_weight(b, &L->gate, 1, 2, (uint64_t[]){ E, SH }, "blk.%u.ffn_gate_shexp.weight", l) ||
         bind_weight(b, &L->up, 1, 2, (uint64_t[]){ E, SH }, "blk.%u.ffn_up_shexp.weight", l) ||
         bind_weight(b, &L->down, 1, 2, (uint64_t[]){ SH, E }, "blk.%u.ffn_down_shexp.weight", l)))
        return -1;
    /* The routed experts are checked here but reached only through the store. */
    mf_weight chk;
    if (bind_weight(b, &chk, 1, 3, (uint64_t[]){ E, F, N }, "blk.%u.ffn_gate_exps.weight", l) ||
        bind_weight(b, &chk, 1, 3, (uint64_t[]){ E, F, N }, "blk.%u.ffn_up_exps.weight", l) ||
        bind_weight(b, &chk, 1, 3, (uint64_t[]){ F, E, N }, "blk.%u.ffn_down_exps.weight", l))
        return -1;
    return 0;
}

/* The layers as layer_batch.c sees them: leading dense layers, then
 * routed experts with their exp_probs_b plus the shared expert. */
static int glm_lb_init(glm_model *m, int n_batch, mf_error *e)
{
    const glm_hparams *hp = &m->hp;
    lb_model *lm = &m->lb;
    const glm_layer *D = &m->layers[0], *M = &m->layers[hp->n_layer - 1];
    *lm = (lb_model){
        LB_MODEL_COMMON(m, hp, n_batch), .n_ff = m->n_ff_max,
        .w = { &D->attn.wq, &D->attn.wk, &D->attn.wo, &D->gate, &D->down, &M->router, &M->down }, .n_w = 7,
    };
    if (lb_layers_new(lm, lb_attn_floats(&m->ahp, lm->batch), e)) return -1;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const glm_layer *L = &m->layers[l];
        lb_layer *B = &lm->layers[l];
        *B = (lb_layer){ .attn_norm = L->attn_norm.data, .ffn_norm = L->post_norm.data, .hp = m->mhp };
        if (L->gate.name) B->ffn = (lb_ffn){ &L->gate, &L->up, &L->down, NULL, NULL, NULL };
        if (!L->moe) continue;
        B->router = &L->router;
        B->hp.sel_bias = L->probs_b.data;
    }
    return 0;
}

static void *glm_load(arch_ctx *ctx, arch_info *info, mf_error *e)
{
    const gguf_file *f = ctx->f;
    glm_model *m = calloc(1, sizeof *m);
    if (!m) { mf_fail(e, "out of memory"); return NULL; }
    glm_hparams *hp = &m->hp;
    if (glm_hparams_load(f, hp, e) || arch_experts_used(ctx, &hp->n_used, e)) goto fail;
    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers) { mf_fail(e, "out of memory"); goto fail; }

    binder b = { f, e, 0 };
    const uint64_t E = hp->n_embd;
    if (dec_bind_ends(&b, E, &m->tok_embd, &m->output_norm, &m->output, &hp->n_vocab)) goto fail;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        if (glm_bind_layer(&b, hp, &m->layers[l], l)) goto fail;
        uint32_t w = m->layers[l].gate.name ? (uint32_t)m->layers[l].gate.ne[1] : 0;
        if (w > m->n_ff_max) m->n_ff_max = w;
    }
    if (arch_open_store(ctx, hp->n_layer, hp->n_expert, hp->n_used, e)) goto fail;
    m->store = ctx->store;
    m->pool = ctx->pool;

    rope_table_init(&m->rope, &hp->rope);
    m->ahp = (attn_hparams){
        .n_head = (int)hp->n_head, .n_head_kv = (int)hp->n_head_kv, .head_dim = (int)hp->head_dim,
        .n_rot = (int)hp->n_rot, .rope_neox = 1, .freq_base = hp->rope.freq_base, .norm_eps = hp->eps,
        .scale = 1.0f / sqrtf((float)hp->head_dim),
    };
    m->mhp = (moe_hparams){
        .n_expert = (int)hp->n_expert, .n_used = (int)hp->n_used, .n_embd = (int)hp->n_embd,
        .n_ff = (int)hp->n_ff_exp, .gating = hp->gating == 1 ? MOE_SOFTMAX : MOE_SIGMOID,
        .n_group = (int)hp->n_group, .n_group_used = (int)hp->n_group_used,
        .norm_topk = hp->norm_w, .weights_scale = hp->w_scale, .act = MOE_SWIGLU,
    };
    if (glm_lb_init(m, ctx->n_batch, e)) goto fail;
    *info = (arch_info){ hp->n_vocab, hp->n_embd, hp->n_layer, hp->n_ctx_train, hp->n_expert, hp->n_used };
    return m;
fail:
    glm_free(m);
    return NULL;
}

static void glm_state_free(void *sp)
{
    glm_state *s = sp;
    if (!s) return;
    kv_cache_free(&s->kv);
    free(s->x);
    moe_scratch_ids_free(&s->ms);
    lb_free(&s->lb);
    free(s);
}

static int glm_state_reserve(void *sp, uint32_t n, mf_error *e)
{
    glm_state *s = sp;
    if (kv_cache_reserve(&s->kv, n, e)) return -1;
    s->as.att = s->kv.att; /* n_head x n_alloc, grown with the cache */
    return 0;
}

static void *glm_state_new(void *mp, uint32_t n_ctx, mf_error *e)
{
    glm_model *m = mp;
    const glm_hparams *hp = &m->hp;
    glm_state *s = calloc(1, sizeof *s);
    if (!s) { mf_fail(e, "out of memory"); return NULL; }
    s->m = m;
    const size_t E = hp->n_embd, KV = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t K = hp->n_used, F = hp->n_ff_exp, N = hp->n_expert, FF = m->n_ff_max;
    size_t nf = 4 * E + 2 * FF + attn_scratch_floats(&m->ahp) + moe_scratch_floats((int)N, (int)K, (int)F, (int)E, 1);
    s->kv = (kv_cache){ .n_layer = hp->n_layer, .n_head = hp->n_head, .n_ctx = n_ctx, .row = KV };
    s->x = calloc(nf, sizeof(float));
    if (!s->x || moe_scratch_ids_alloc(&s->ms, (int)K)) { glm_state_free(s); mf_fail(e, "out of memory"); return NULL; }
    float *p = s->x;
    s->x = p, p += E;
    s->h = p, p += E;
    s->tmp = p, p += E;
    s->tmp2 = p, p += E;
    s->fg = p, p += FF;
    s->fu = p, p += FF;
    p = attn_scratch_lay(&s->as, &m->ahp, p);
    moe_scratch_lay(&s->ms, p, (int)N, (int)K, (int)F, (int)E, 1);
    if (glm_state_reserve(s, n_ctx < 256 ? n_ctx : 256, e)) { glm_state_free(s); return NULL; }
    return s;
}

/* The attention of layer l for the token at pos (lb_forward). */
static void glm_attn(void *mp, void *sp, uint32_t l, uint32_t pos, const float *h, float *out)
{
    glm_model *m = mp;
    glm_state *s = sp;
    const attn_opts o = { &m->rope, NULL, 0 };
    const kv_layer c = kv_cache_layer(&s->kv, l);
    kv_ring kv = { c.k, c.v, s->kv.n_alloc };
    attn_forward_window(m->pool, &m->ahp, &o, &m->layers[l].attn, kv, pos, h, &s->as, out);
}

static int glm_forward(void *mp, void *sp, int32_t token, uint32_t pos, float *logits, mf_error *e)
{
    glm_model *m = mp;
    glm_state *s = sp;
    if (glm_state_reserve(s, pos + 1, e)) return -1;
    const lb_token t = { s->x, s->h, s->tmp, s->fg, s->fu, s->tmp2, &s->ms };
    return lb_forward(&m->lb, &t, glm_attn, m, s, token, pos, logits, e);
}

/* The attention of layer l over the T tokens of a chunk (lb_run). */
static void glm_attn_batch(void *mp, void *sp, uint32_t l, uint32_t p0, int T, lb_scratch *b)
{
    glm_model *m = mp;
    glm_state *s = sp;
    const attn_opts o = { &m->rope, NULL, 0 };
    attn_batch_scratch as = lb_attn_scratch(b, &m->ahp, s->as.att);
    const kv_layer c = kv_cache_layer(&s->kv, l);
    kv_ring kv = { c.k, c.v, s->kv.n_alloc };
    attn_forward_window_batch(m->pool, &m->ahp, &o, &m->layers[l].attn, kv, p0, T, b->H, m->hp.n_embd, &as, b->Y,
                              m->hp.n_embd);
}

static int glm_forward_batch(void *mp, void *sp, const int32_t *tokens, int n, uint32_t pos0, float *all, float *last,
                             mf_error *e)
{
    glm_model *m = mp;
    glm_state *s = sp;
    if (glm_state_reserve(s, pos0 + (uint32_t)n, e)) return -1;
    return lb_run(&m->lb, &s->lb, glm_attn_batch, m, s, tokens, n, pos0, all, last, e);
}

const arch_ops arch_glm4moe = {
    .name = GLM_ARCH,
    .load = glm_load,
    .free = glm_free,
    .state_new = glm_state_new,
    .state_free = glm_state_free,
    .state_truncate = kv_truncate_free,
    .state_reserve = glm_state_reserve,
    .forward = glm_forward,
    .forward_batch = glm_forward_batch,
};
