/* gptoss.c — OpenAI gpt-oss (gpt-oss-20b, gpt-oss-120b), GGUF architecture
 * `gpt-oss`.
 *
 * Per layer (gpt-oss model card, OpenAI 2025, section 2 "Architecture";
 * hyperparameters from the `gpt-oss.*` keys the GGUF converter writes):
 *   h = RMSNorm(x) * attn_norm
 *   q, k, v = W_q h + b_q, W_k h + b_k, W_v h + b_v
 *   q, k    = RoPE with YaRN scaling (rope.scaling.*), magnitude 1 + 0.1 ln(factor)
 *   x      += W_o attention(q, k, v) + b_o        scale 1/sqrt(head_dim), GQA,
 *             one learned sink logit per head (attn_sinks), banded to
 *             `attention.sliding_window` keys on the sliding layers
 *   h = RMSNorm(x) * post_attention_norm
 *   l = W_r h + b_r; top-K of l; weights = softmax over those K logits
 *   x      += sum_k w_k (W_down,k a_k + b_down,k),
 *             a = min(g, 7) sigmoid(1.702 min(g, 7)) (clamp(u, -7, 7) + 1),
 *             g = W_gate,k h + b_gate,k, u = W_up,k h + b_up,k
 * then final RMSNorm and the output head.
 *
 * Sliding layers: the key `attention.sliding_window_pattern` (a period n:
 * layer l slides iff l % n < n - 1; or one bool per layer) when present,
 * else period 2, i.e. even layers slide (HF config `layer_types`). Their KV
 * cache is a ring of `sliding_window` rows; full layers' caches grow.
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

#define GO_ARCH "gpt-oss"

/* The clamped SwiGLU's constants: the gpt-oss model card and reference
 * implementation (`swiglu(x, alpha=1.702, limit=7.0)`, HF config
 * `swiglu_limit` 7.0). The GGUF converter writes no key for them. */
#define GO_SWIGLU_ALPHA 1.702f
#define GO_SWIGLU_LIMIT 7.0f

typedef struct go_hparams {
    uint32_t n_vocab, n_embd, n_layer, n_ctx_train;
    uint32_t n_head, n_head_kv, head_dim, n_rot;
    uint32_t n_expert, n_used, n_ff_exp;
    uint32_t n_swa;          /* attention.sliding_window (0: no sliding layers) */
    float eps;
    rope_params rope;
} go_hparams;

typedef struct go_layer {
    mf_weight attn_norm, post_norm, sinks, router, router_b;
    attn_weights attn;
    int sliding;
} go_layer;

typedef struct go_model {
    go_hparams hp;
    attn_hparams ahp;
    moe_hparams mhp;
    rope_table rope;
    mf_weight tok_embd, output_norm, output;
    go_layer *layers;
    int any_sliding;
    store *store;
    mf_pool *pool;
    lb_model lb;             /* the layers as layer_batch.c runs them */
} go_model;

typedef struct go_state {
    go_model *m;
    uint32_t n_ctx;
    uint32_t n_alloc;        /* rows of the full layers' caches */
    uint32_t n_ring;         /* rows of the sliding layers' rings: min(window, n_ctx) */
    uint32_t ring_lo;        /* positions below this may be overwritten in the rings */
    float **k, **v;          /* per layer */
    float *x, *h, *tmp;
    attn_scratch as;
    moe_scratch ms;
    lb_scratch lb;           /* batched prefill, allocated on its first use */
} go_state;

static int go_hparams_load(const gguf_file *f, go_hparams *hp, mf_error *e)
{
    char k[128];
    const char *a = GO_ARCH;
    dec_dims d;
    if (dec_dims_load(f, a, DEC_ROPE_REQUIRED, &d, e) ||
        gguf_get_u32(f, gguf_arch_key(k, sizeof k, a, "attention.sliding_window"), &hp->n_swa, e) ||
        gguf_get_f32(f, gguf_arch_key(k, sizeof k, a, "attention.layer_norm_rms_epsilon"), &hp->eps, e))
        return -1;
    DEC_DIMS_COPY(hp, d);
    hp->n_ff_exp = d.n_ff;
    return rope_params_load(f, a, (int)hp->n_rot, 1, hp->n_ctx_train, &hp->rope, e);
}

/* Which layers slide: attention.sliding_window_pattern, else period 2. */
static int go_swa_pattern(const gguf_file *f, go_model *m, mf_error *e)
{
    char k[128];
    const go_hparams *hp = &m->hp;
    const gguf_kv *kv = gguf_find(f, gguf_arch_key(k, sizeof k, GO_ARCH, "attention.sliding_window_pattern"));
    if (kv && kv->val.type == GGUF_ARRAY) {
        const gguf_value *arr;
        if (gguf_get_arr(f, k, GGUF_BOOL, &arr, e)) return -1;
        if (arr->v.arr.n != hp->n_layer)
            return mf_fail(e, "%s: key %s: %llu entries, expected one per layer (%u)", f->parts[0].path, k,
                           (unsigned long long)arr->v.arr.n, hp->n_layer);
        for (uint32_t l = 0; l < hp->n_layer; l++) m->layers[l].sliding = gguf_arr_int(arr, l) != 0;
    } else {
        uint32_t period;
        if (gguf_opt_u32(f, k, 2, &period, e)) return -1;
        for (uint32_t l = 0; l < hp->n_layer; l++) m->layers[l].sliding = period == 0 || l % period < period - 1;
    }
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        if (hp->n_swa == 0) m->layers[l].sliding = 0;
        m->any_sliding |= m->layers[l].sliding;
    }
    return 0;
}

static void go_free(void *mp)
{
    go_model *m = mp;
    if (!m) return;
    free(m->layers);
    free(m->lb.layers);
    free(m);
}

static int go_bind_layer(binder *b, const go_hparams *hp, go_layer *L, uint32_t l)
{
    const uint64_t E = hp->n_embd, Q = (uint64_t)hp->n_head * hp->head_dim, KV = (uint64_t)hp->n_head_kv * hp->head_dim;
    const uint64_t F = hp->n_ff_exp, N = hp->n_expert;
    attn_weights *A = &L->attn;
    if (bind_weight(b, &L->attn_norm, 1, 1, (uint64_t[]){ E }, "blk.%u.attn_norm.weight", l) ||
        bind_weight(b, &A->wq, 1, 2, (uint64_t[]){ E, Q }, "blk.%u.attn_q.weight", l) ||
        bind_weight(b, &A->wk, 1, 2, (uint64_t[]){ E, KV }, "blk.%u.attn_k.weight", l) ||
        bind_weight(b, &A->wv, 1, 2, (uint64_t[]){ E, KV }, "blk.%u.attn_v.weight", l) ||
        bind_weight(b, &A->wo, 1, 2, (uint64_t[]){ Q, E }, "blk.%u.attn_output.weight", l) ||
        bind_weight(b, &A->bq, 1, 1, (uint64_t[]){ Q }, "blk.%u.attn_q.bias", l) ||
        bind_weight(b, &A->bk, 1, 1, (uint64_t[]){ KV }, "blk.%u.attn_k.bias", l) ||
        bind_weight(b, &A->bv, 1, 1, (uint64_t[]){ KV }, "blk.%u.attn_v.bias", l) ||
        bind_weight(b, &A->bo, 1, 1, (uint64_t[]){ E }, "blk.%u.attn_output.bias", l) ||
        bind_weight(b, &L->sinks, 1, 1, (uint64_t[]){ hp->n_head }, "blk.%u.attn_sinks.weight", l) ||
        bind_weight(b, &L->post_norm, 1, 1, (uint64_t[]){ E }, "blk.%u.post_attention_norm.weight", l) ||
        bind_weight(b, &L->router, 1, 2, (uint64_t[]){ E, N }, "blk.%u.ffn_gate_inp.weight", l) ||
        bind_weight(b, &L->router_b, 1, 1, (uint64_t[]){ N }, "blk.%u.ffn_gate_inp.bias", l))
        return -1;
    const mf_weight *f32[] = { &L->attn_norm, &A->bq, &A->bk, &A->bv, &A->bo, &L->sinks, &L->post_norm, &L->router_b };
    for (size_t i = 0; i < sizeof f32 / sizeof f32[0]; i++)
        if (bind_check_f32(b, f32[i])) return -1;
    /* The routed experts and their biases are checked here but reached only
     * through the store, which hands out each expert's slice of all six. */
    mf_weight chk;
    if (bind_weight(b, &chk, 1, 3, (uint64_t[]){ E, F, N }, "blk.%u.ffn_gate_exps.weight", l) ||
        bind_weight(b, &chk, 1, 3, (uint64_t[]){ E, F, N }, "blk.%u.ffn_up_exps.weight", l) ||
        bind_weight(b, &chk, 1, 3, (uint64_t[]){ F, E, N }, "blk.%u.ffn_down_exps.weight", l) ||
        bind_weight(b, &chk, 1, 2, (uint64_t[]){ F, N }, "blk.%u.ffn_gate_exps.bias", l) || bind_check_f32(b, &chk) ||
        bind_weight(b, &chk, 1, 2, (uint64_t[]){ F, N }, "blk.%u.ffn_up_exps.bias", l) || bind_check_f32(b, &chk) ||
        bind_weight(b, &chk, 1, 2, (uint64_t[]){ E, N }, "blk.%u.ffn_down_exps.bias", l) || bind_check_f32(b, &chk))
        return -1;
    return 0;
}

/* The layers as layer_batch.c sees them: routed experts with the layer's
 * router bias, no shared or dense FFN. */
static int go_lb_init(go_model *m, int n_batch, mf_error *e)
{
    const go_hparams *hp = &m->hp;
    lb_model *lm = &m->lb;
    const go_layer *L0 = &m->layers[0];
    *lm = (lb_model){
        LB_MODEL_COMMON(m, hp, n_batch),
        .w = { &L0->attn.wq, &L0->attn.wk, &L0->attn.wo, &L0->router }, .n_w = 4,
    };
    if (lb_layers_new(lm, lb_attn_floats(&m->ahp, lm->batch), e)) return -1;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const go_layer *L = &m->layers[l];
        lm->layers[l] = (lb_layer){ .attn_norm = L->attn_norm.data, .ffn_norm = L->post_norm.data, .router = &L->router,
                                    .hp = m->mhp };
        lm->layers[l].hp.router_bias = L->router_b.data;
    }
    return 0;
}

static void *go_load(arch_ctx *ctx, arch_info *info, mf_error *e)
{
    const gguf_file *f = ctx->f;
    go_model *m = calloc(1, sizeof *m);
    if (!m) { mf_fail(e, "out of memory"); return NULL; }
    go_hparams *hp = &m->hp;
    if (go_hparams_load(f, hp, e) || arch_experts_used(ctx, &hp->n_used, e)) goto fail;
    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers) { mf_fail(e, "out of memory"); goto fail; }
    if (go_swa_pattern(f, m, e)) goto fail;

    binder b = { f, e, 0 };
    const uint64_t E = hp->n_embd;
    if (dec_bind_ends(&b, E, &m->tok_embd, &m->output_norm, &m->output, &hp->n_vocab)) goto fail;
    for (uint32_t l = 0; l < hp->n_layer; l++)
        if (go_bind_layer(&b, hp, &m->layers[l], l)) goto fail;
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
        .n_ff = (int)hp->n_ff_exp, .gating = MOE_SOFTMAX_TOPK, .norm_topk = 0, .weights_scale = 1.0f,
        .act = MOE_SWIGLU_OAI, .swiglu_alpha = GO_SWIGLU_ALPHA, .swiglu_limit = GO_SWIGLU_LIMIT,
    };
    if (go_lb_init(m, ctx->n_batch, e)) goto fail;
    *info = (arch_info){ hp->n_vocab, hp->n_embd, hp->n_layer, hp->n_ctx_train, hp->n_expert, hp->n_used };
    return m;
fail:
    go_free(m);
    return NULL;
}

static void go_state_free(void *sp)
{
    go_state *s = sp;
    if (!s) return;
    for (uint32_t l = 0; s->k && l < s->m->hp.n_layer; l++) free(s->k[l]), free(s->v[l]);
    free(s->k);
    free(s->v);
    free(s->x);
    free(s->as.att);
    moe_scratch_ids_free(&s->ms);
    lb_free(&s->lb);
    free(s);
}

/* Grows the full layers' caches (and the score scratch) to hold n rows. */
static int go_state_reserve(void *sp, uint32_t n, mf_error *e)
{
    go_state *s = sp;
    const go_model *m = s->m;
    const go_hparams *hp = &m->hp;
    uint32_t want = 0;
    if (kv_grow_rows(s->n_alloc, s->n_ctx, n, &want, e)) return -1;
    if (want == s->n_alloc) return 0;
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t att_rows = want > s->n_ring ? want : s->n_ring;
    float *att = realloc(s->as.att, (size_t)hp->n_head * att_rows * sizeof(float));
    if (!att) return mf_fail(e, "out of memory for attention scores of %u positions", want);
    s->as.att = att;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        if (m->layers[l].sliding) continue;
        float *k = realloc(s->k[l], want * kv_dim * sizeof(float));
        if (k) s->k[l] = k;
        float *v = k ? realloc(s->v[l], want * kv_dim * sizeof(float)) : NULL;
        if (v) s->v[l] = v;
        /* A failed layer keeps its old size; n_alloc stays the smallest. */
        if (!k || !v) return mf_fail(e, "out of memory for a KV cache of %u positions", want);
    }
    s->n_alloc = want;
    return 0;
}

static void *go_state_new(void *mp, uint32_t n_ctx, mf_error *e)
{
    go_model *m = mp;
    const go_hparams *hp = &m->hp;
    go_state *s = calloc(1, sizeof *s);
    if (!s) { mf_fail(e, "out of memory"); return NULL; }
    s->m = m;
    s->n_ctx = n_ctx;
    s->n_ring = hp->n_swa < n_ctx ? hp->n_swa : n_ctx;
    const size_t E = hp->n_embd, KV = (size_t)hp->n_head_kv * hp->head_dim, K = hp->n_used, F = hp->n_ff_exp;
    size_t nf = 3 * E + attn_scratch_floats(&m->ahp) + moe_scratch_floats(hp->n_expert, (int)K, (int)F, (int)E, 0);
    s->k = calloc(hp->n_layer, sizeof *s->k);
    s->v = calloc(hp->n_layer, sizeof *s->v);
    s->x = calloc(nf, sizeof(float));
    if (!s->k || !s->v || !s->x || moe_scratch_ids_alloc(&s->ms, (int)K)) goto oom;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        if (!m->layers[l].sliding) continue;
        s->k[l] = calloc((size_t)s->n_ring * KV, sizeof(float));
        s->v[l] = calloc((size_t)s->n_ring * KV, sizeof(float));
        if (!s->k[l] || !s->v[l]) goto oom;
    }
    float *p = s->x;
    s->x = p, p += E;
    s->h = p, p += E;
    s->tmp = p, p += E;
    p = attn_scratch_lay(&s->as, &m->ahp, p);
    moe_scratch_lay(&s->ms, p, hp->n_expert, (int)K, (int)F, (int)E, 0);
    if (go_state_reserve(s, n_ctx < 256 ? n_ctx : 256, e)) { go_state_free(s); return NULL; }
    return s;
oom:
    go_state_free(s);
    mf_fail(e, "out of memory");
    return NULL;
}

/* Full layers keep every row, so forgetting positions is free there. A
 * ring keeps only the last n_ring positions written: going back is possible
 * while the window of the next position is still in it. */
static int go_state_truncate(void *sp, uint32_t n_past, mf_error *e)
{
    go_state *s = sp;
    if (n_past == 0) {
        s->ring_lo = 0;
        return 0;
    }
    if (s->m->any_sliding && attn_first_key(s->m->hp.n_swa, n_past) < s->ring_lo)
        return mf_fail(e, "cannot go back to %u positions: the sliding-window layers keep only the last %u positions "
                          "(positions below %u are gone); start over from 0",
                       n_past, s->n_ring, s->ring_lo);
    return 0;
}

/* Evaluating positions up to last drops, from the rings, the positions
 * before last + 1 - n_ring (recorded before anything is written, so that
 * it holds even if a later layer fails). */
static void go_ring_advance(go_state *s, uint32_t last)
{
    if (s->m->any_sliding && last + 1 > s->n_ring && last + 1 - s->n_ring > s->ring_lo) s->ring_lo = last + 1 - s->n_ring;
}

/* The attention options of layer L: YaRN RoPE, sinks, and the window on
 * sliding layers; and its KV rows (a ring of n_ring rows there). */
static attn_opts go_attn_opts(const go_model *m, const go_layer *L)
{
    return (attn_opts){ &m->rope, L->sinks.data, L->sliding ? m->hp.n_swa : 0 };
}
static kv_ring go_kv(const go_state *s, uint32_t l)
{
    return (kv_ring){ s->k[l], s->v[l], s->m->layers[l].sliding ? s->n_ring : s->n_alloc };
}

/* The attention of layer l for the token at pos (lb_forward): YaRN RoPE, sinks, and the window on sliding layers. */
static void go_attn(void *mp, void *sp, uint32_t l, uint32_t pos, const float *h, float *out)
{
    go_model *m = mp;
    go_state *s = sp;
    const attn_opts o = go_attn_opts(m, &m->layers[l]);
    attn_forward_window(m->pool, &m->ahp, &o, &m->layers[l].attn, go_kv(s, l), pos, h, &s->as, out);
}

static int go_forward(void *mp, void *sp, int32_t token, uint32_t pos, float *logits, mf_error *e)
{
    go_model *m = mp;
    go_state *s = sp;
    if (go_state_reserve(s, pos + 1, e)) return -1;
    /* a token out of range is refused before the rings forget anything */
    if (token < 0 || (uint32_t)token >= m->hp.n_vocab)
        return mf_fail(e, "token id %d out of range (vocab %u)", token, m->hp.n_vocab);
    go_ring_advance(s, pos);
    const lb_token t = { s->x, s->h, s->tmp, NULL, NULL, NULL, &s->ms };
    return lb_forward(&m->lb, &t, go_attn, m, s, token, pos, logits, e);
}

/* The attention of layer l over the T tokens of a chunk (lb_run). A chunk
 * may be far longer than the window: attn_forward_window_batch writes each
 * token's ring row only after the token before it has attended. */
static void go_attn_batch(void *mp, void *sp, uint32_t l, uint32_t p0, int T, lb_scratch *b)
{
    go_model *m = mp;
    go_state *s = sp;
    const attn_opts o = go_attn_opts(m, &m->layers[l]);
    attn_batch_scratch as = lb_attn_scratch(b, &m->ahp, s->as.att);
    attn_forward_window_batch(m->pool, &m->ahp, &o, &m->layers[l].attn, go_kv(s, l), p0, T, b->H, m->hp.n_embd, &as,
                              b->Y, m->hp.n_embd);
}

static int go_forward_batch(void *mp, void *sp, const int32_t *tokens, int n, uint32_t pos0, float *all, float *last,
                            mf_error *e)
{
    go_model *m = mp;
    go_state *s = sp;
    if (go_state_reserve(s, pos0 + (uint32_t)n, e)) return -1;
    go_ring_advance(s, pos0 + (uint32_t)n - 1);
    return lb_run(&m->lb, &s->lb, go_attn_batch, m, s, tokens, n, pos0, all, last, e);
}

const arch_ops arch_gptoss = {
    .name = GO_ARCH,
    .load = go_load,
    .free = go_free,
    .state_new = go_state_new,
    .state_free = go_state_free,
    .state_truncate = go_state_truncate,
    .state_reserve = go_state_reserve,
    .forward = go_forward,
    .forward_batch = go_forward_batch,
};
