/* llama.c — LLaMA-family decoders, GGUF architecture `llama`: dense models
 * (LLaMA 1/2, TinyLlama, llama2.c's tinyllamas) and the Mixtral 8x7B /
 * 8x22B sparse MoE layout, which GGUF files the same architecture.
 *
 * Per layer (LLaMA, arXiv:2302.13971; GQA, arXiv:2305.13245; Mixtral,
 * arXiv:2401.04088), hyperparameters from the `llama.*` GGUF keys:
 *   h = RMSNorm(x) * attn_norm                eps: attention.layer_norm_rms_epsilon
 *   q, k, v = W_q h, W_k h, W_v h             (+ optional biases)
 *   q, k    = RoPE on adjacent pairs (2i, 2i+1) of each head (the LLaMA
 *             paper's rotary form, GGUF "normal" RoPE: the converter keeps
 *             that pairing), theta_i = pos * freq_base^(-2i/n_rot)
 *   x      += W_o GQA-attention(q, k, v)       scale attention.scale or 1/sqrt(head_dim)
 *   h = RMSNorm(x) * ffn_norm
 *   dense:  x += W_down(silu(W_gate h) * W_up h)                  (SwiGLU, arXiv:2002.05202)
 *   MoE:    p = softmax(W_router h) over all experts; keep the top K and
 *           renormalise them to sum 1 (Mixtral paper, eq. 1: softmax over
 *           the top-K logits, which is the same thing);
 *           x += sum_k p_k * down_k(silu(gate_k h) * up_k h)
 * then final RMSNorm and the output head (the token embedding when
 * output.weight is absent: tied embeddings).
 *
 * A file is MoE when llama.expert_count > 0; routed experts are then
 * reached only through the store. A dense file opens no store at all.
 * Not supported (refused at load with the key or tensor named): the old
 * per-expert Mixtral layout (blk.L.ffn_gate.E.weight), RoPE scaling and
 * LLaMA-3 rope_freqs factors, a fused attn_qkv.
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

typedef struct llama_hparams {
    uint32_t n_vocab, n_embd, n_layer, n_ctx_train;
    uint32_t n_head, n_head_kv, head_dim, n_rot;
    uint32_t n_ff;                 /* dense FFN width, and each expert's (Mixtral) */
    uint32_t n_expert, n_used;     /* 0, 0: dense */
    float eps, freq_base, attn_scale, expert_scale;
} llama_hparams;

typedef struct llama_layer {
    mf_weight attn_norm, ffn_norm;
    attn_weights attn;
    mf_weight router;                          /* MoE */
    mf_weight ffn_gate, ffn_up, ffn_down;      /* dense */
    mf_weight ffn_gate_b, ffn_up_b, ffn_down_b;
} llama_layer;

typedef struct llama_model {
    llama_hparams hp;
    attn_hparams ahp;
    moe_hparams mhp;
    mf_weight tok_embd, output_norm, output;
    llama_layer *layers;
    store *store;                  /* NULL for a dense model */
    mf_pool *pool;
    lb_model lb;                   /* the layers as layer_batch.c runs them */
} llama_model;

typedef struct llama_state {
    llama_model *m;
    uint32_t n_ctx;
    kv_cache kv;                   /* layer-major K and V, and the attention scores */
    float *x, *h, *tmp;
    float *ff_gate, *ff_up;        /* dense FFN: n_ff each */
    attn_scratch as;
    moe_scratch ms;
    lb_scratch lb;                 /* batched prefill, allocated on its first use */
} llama_state;

static int llama_hparams_load(const gguf_file *f, llama_hparams *hp, mf_error *e)
{
    char k[128];
    const char *a = "llama", *path = f->parts[0].path;
    dec_dims d;
    if (dec_dims_load(f, a, DEC_DENSE_OK, &d, e)) return -1;
    DEC_DIMS_COPY(hp, d);
    hp->n_ff = d.n_ff;
#define KEY(name) gguf_arch_key(k, sizeof k, a, name)
    float rope_factor;
    if (gguf_get_f32(f, KEY("attention.layer_norm_rms_epsilon"), &hp->eps, e) ||
        gguf_opt_f32(f, KEY("rope.freq_base"), 10000.0f, &hp->freq_base, e) ||
        gguf_opt_f32(f, KEY("attention.scale"), 0.0f, &hp->attn_scale, e) ||
        gguf_opt_f32(f, KEY("expert_weights_scale"), 0.0f, &hp->expert_scale, e) ||
        gguf_opt_f32(f, KEY("rope.scaling.factor"), 0.0f, &rope_factor, e))
        return -1;
    /* RoPE scaling (linear position interpolation, YaRN, ...) changes theta;
     * the shared RoPE has no scale, so such files are refused, not run wrong. */
    const char *scaling = "none";
    if (gguf_find(f, KEY("rope.scaling.type")) && gguf_get_str(f, KEY("rope.scaling.type"), &scaling, e)) return -1;
    if (strcmp(scaling, "none") && rope_factor != 0.0f && rope_factor != 1.0f)
        return mf_fail(e, "%s: llama: %s \"%s\" with factor %g is not supported yet", path, KEY("rope.scaling.type"),
                       scaling, (double)rope_factor);
    if (gguf_find(f, KEY("rope.scale_linear")))
        return mf_fail(e, "%s: llama: %s (linear RoPE scaling) is not supported yet", path, KEY("rope.scale_linear"));
#undef KEY
    return 0;
}

static void llama_free(void *mp)
{
    llama_model *m = mp;
    if (!m) return;
    free(m->layers);
    free(m->lb.layers);
    free(m);
}

/* The routed experts of layer l: Mixtral's stacked [*_exps] tensors, checked
 * here and reached only through the store. Files from before the stacked
 * layout (one tensor per expert) are named and refused. */
static int llama_bind_experts(binder *b, const llama_hparams *hp, uint32_t l)
{
    const gguf_file *f = b->f;
    char name[96];
    snprintf(name, sizeof name, "blk.%u.ffn_gate_exps.weight", l);
    if (!gguf_find_tensor(f, name)) {
        char old[96];
        snprintf(old, sizeof old, "blk.%u.ffn_gate.0.weight", l);
        if (gguf_find_tensor(f, old)) {
            b->failed = 1;
            return mf_fail(b->e,
                           "%s: tensor %s: the old Mixtral layout with one tensor per expert is not supported yet "
                           "(expected the stacked %s; re-convert the model with a current llama.cpp)",
                           f->parts[0].path, old, name);
        }
    }
    const uint64_t E = hp->n_embd, F = hp->n_ff, N = hp->n_expert;
    mf_weight chk;
    return bind_weight(b, &chk, 1, 3, (uint64_t[]){ E, F, N }, "blk.%u.ffn_gate_exps.weight", l) ||
           bind_weight(b, &chk, 1, 3, (uint64_t[]){ E, F, N }, "blk.%u.ffn_up_exps.weight", l) ||
           bind_weight(b, &chk, 1, 3, (uint64_t[]){ F, E, N }, "blk.%u.ffn_down_exps.weight", l)
               ? -1 : 0;
}

static int llama_bind_layer(binder *b, const llama_hparams *hp, llama_layer *L, uint32_t l)
{
    attn_weights *A = &L->attn;
    const uint64_t E = hp->n_embd, F = hp->n_ff;
    const uint64_t Q = (uint64_t)hp->n_head * hp->head_dim, KV = (uint64_t)hp->n_head_kv * hp->head_dim;
    char name[96];
    snprintf(name, sizeof name, "blk.%u.attn_q.weight", l);
    if (!gguf_find_tensor(b->f, name)) {
        char fused[96];
        snprintf(fused, sizeof fused, "blk.%u.attn_qkv.weight", l);
        if (gguf_find_tensor(b->f, fused)) {
            b->failed = 1;
            return mf_fail(b->e, "%s: tensor %s: a fused q/k/v projection is not supported yet (expected %s)",
                           b->f->parts[0].path, fused, name);
        }
    }
    if (bind_weight(b, &L->attn_norm, 1, 1, (uint64_t[]){ E }, "blk.%u.attn_norm.weight", l) ||
        bind_weight(b, &A->wq, 1, 2, (uint64_t[]){ E, Q }, "blk.%u.attn_q.weight", l) ||
        bind_weight(b, &A->wk, 1, 2, (uint64_t[]){ E, KV }, "blk.%u.attn_k.weight", l) ||
        bind_weight(b, &A->wv, 1, 2, (uint64_t[]){ E, KV }, "blk.%u.attn_v.weight", l) ||
        bind_weight(b, &A->wo, 1, 2, (uint64_t[]){ Q, E }, "blk.%u.attn_output.weight", l) ||
        bind_weight(b, &A->bq, 0, 1, (uint64_t[]){ Q }, "blk.%u.attn_q.bias", l) ||
        bind_weight(b, &A->bk, 0, 1, (uint64_t[]){ KV }, "blk.%u.attn_k.bias", l) ||
        bind_weight(b, &A->bv, 0, 1, (uint64_t[]){ KV }, "blk.%u.attn_v.bias", l) ||
        bind_weight(b, &A->bo, 0, 1, (uint64_t[]){ E }, "blk.%u.attn_output.bias", l) ||
        bind_weight(b, &L->ffn_norm, 1, 1, (uint64_t[]){ E }, "blk.%u.ffn_norm.weight", l) ||
        bind_check_f32(b, &L->attn_norm) || bind_check_f32(b, &L->ffn_norm) || bind_check_f32(b, &A->bq) ||
        bind_check_f32(b, &A->bk) || bind_check_f32(b, &A->bv) || bind_check_f32(b, &A->bo))
        return -1;
    if (hp->n_expert)
        return bind_weight(b, &L->router, 1, 2, (uint64_t[]){ E, hp->n_expert }, "blk.%u.ffn_gate_inp.weight", l) ||
                       llama_bind_experts(b, hp, l)
                   ? -1 : 0;
    return bind_weight(b, &L->ffn_gate, 1, 2, (uint64_t[]){ E, F }, "blk.%u.ffn_gate.weight", l) ||
                   bind_weight(b, &L->ffn_up, 1, 2, (uint64_t[]){ E, F }, "blk.%u.ffn_up.weight", l) ||
                   bind_weight(b, &L->ffn_down, 1, 2, (uint64_t[]){ F, E }, "blk.%u.ffn_down.weight", l) ||
                   bind_weight(b, &L->ffn_gate_b, 0, 1, (uint64_t[]){ F }, "blk.%u.ffn_gate.bias", l) ||
                   bind_weight(b, &L->ffn_up_b, 0, 1, (uint64_t[]){ F }, "blk.%u.ffn_up.bias", l) ||
                   bind_weight(b, &L->ffn_down_b, 0, 1, (uint64_t[]){ E }, "blk.%u.ffn_down.bias", l) ||
                   bind_check_f32(b, &L->ffn_gate_b) || bind_check_f32(b, &L->ffn_up_b) ||
                   bind_check_f32(b, &L->ffn_down_b)
               ? -1 : 0;
}

/* The layers as layer_batch.c sees them: a dense SwiGLU FFN with its
 * optional biases, or Mixtral's routed experts. */
static int llama_lb_init(llama_model *m, int n_batch, mf_error *e)
{
    const llama_hparams *hp = &m->hp;
    lb_model *lm = &m->lb;
    const llama_layer *L0 = &m->layers[0];
    *lm = (lb_model){
        LB_MODEL_COMMON(m, hp, n_batch), .n_ff = hp->n_expert ? 0 : hp->n_ff,
        .w = { &L0->attn.wq, &L0->attn.wk, &L0->attn.wo, &L0->router, &L0->ffn_gate, &L0->ffn_down }, .n_w = 6,
    };
    if (lb_layers_new(lm, lb_attn_floats(&m->ahp, lm->batch), e)) return -1;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const llama_layer *L = &m->layers[l];
        lb_layer *B = &lm->layers[l];
        *B = (lb_layer){ .attn_norm = L->attn_norm.data, .ffn_norm = L->ffn_norm.data, .hp = m->mhp };
        if (hp->n_expert) B->router = &L->router;
        else B->ffn = (lb_ffn){ &L->ffn_gate, &L->ffn_up, &L->ffn_down, &L->ffn_gate_b, &L->ffn_up_b, &L->ffn_down_b };
    }
    return 0;
}

static void *llama_load(arch_ctx *ctx, arch_info *info, mf_error *e)
{
    const gguf_file *f = ctx->f;
    llama_model *m = calloc(1, sizeof *m);
    if (!m) { mf_fail(e, "out of memory"); return NULL; }
    llama_hparams *hp = &m->hp;
    if (llama_hparams_load(f, hp, e) || arch_experts_used(ctx, &hp->n_used, e)) goto fail;
    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers) { mf_fail(e, "out of memory"); goto fail; }

    binder b = { f, e, 0 };
    const uint64_t E = hp->n_embd;
    if (dec_bind_ends(&b, E, &m->tok_embd, &m->output_norm, &m->output, &hp->n_vocab)) goto fail;
    /* LLaMA 3.1's per-frequency RoPE factors: not in the shared RoPE yet. */
    if (gguf_find_tensor(f, "rope_freqs.weight")) {
        mf_fail(e, "%s: tensor rope_freqs.weight: RoPE frequency factors (LLaMA 3.1 rope scaling) are not supported yet",
                f->parts[0].path);
        goto fail;
    }
    for (uint32_t l = 0; l < hp->n_layer; l++)
        if (llama_bind_layer(&b, hp, &m->layers[l], l)) goto fail;
    if (hp->n_expert) {
        if (arch_open_store(ctx, hp->n_layer, hp->n_expert, hp->n_used, e)) goto fail;
        m->store = ctx->store;
    }
    m->pool = ctx->pool;

    m->ahp = (attn_hparams){
        .n_head = (int)hp->n_head, .n_head_kv = (int)hp->n_head_kv, .head_dim = (int)hp->head_dim,
        .n_rot = (int)hp->n_rot, .rope_neox = 0, .freq_base = hp->freq_base, .norm_eps = hp->eps,
        .scale = hp->attn_scale != 0.0f ? hp->attn_scale : 1.0f / sqrtf((float)hp->head_dim),
    };
    /* Mixtral gating: softmax over all experts, top-K renormalised; an
     * optional llama.expert_weights_scale multiplies the K weights. */
    m->mhp = (moe_hparams){
        .n_expert = (int)hp->n_expert, .n_used = (int)hp->n_used, .n_embd = (int)hp->n_embd,
        .n_ff = (int)hp->n_ff, .gating = MOE_SOFTMAX, .norm_topk = 1,
        .weights_scale = hp->expert_scale != 0.0f ? hp->expert_scale : 1.0f,
    };
    if (llama_lb_init(m, ctx->n_batch, e)) goto fail;
    *info = (arch_info){ hp->n_vocab, hp->n_embd, hp->n_layer, hp->n_ctx_train, hp->n_expert, hp->n_used };
    return m;
fail:
    llama_free(m);
    return NULL;
}

static void llama_state_free(void *sp)
{
    llama_state *s = sp;
    if (!s) return;
    kv_cache_free(&s->kv);
    free(s->x);
    moe_scratch_ids_free(&s->ms);
    lb_free(&s->lb);
    free(s);
}

static int llama_state_reserve(void *sp, uint32_t n, mf_error *e)
{
    llama_state *s = sp;
    if (kv_cache_reserve(&s->kv, n, e)) return -1;
    s->as.att = s->kv.att;
    return 0;
}

static void *llama_state_new(void *mp, uint32_t n_ctx, mf_error *e)
{
    llama_model *m = mp;
    const llama_hparams *hp = &m->hp;
    llama_state *s = calloc(1, sizeof *s);
    if (!s) { mf_fail(e, "out of memory"); return NULL; }
    s->m = m;
    s->n_ctx = n_ctx;
    s->kv = (kv_cache){ .n_layer = hp->n_layer, .n_head = hp->n_head, .n_ctx = n_ctx,
                        .row = (size_t)hp->n_head_kv * hp->head_dim };
    const size_t E = hp->n_embd, K = hp->n_used, F = hp->n_ff, N = hp->n_expert;
    /* x h tmp | q k v out | dense gate up | router logits, K gates, K ups, down, guess input, K weights */
    size_t nf = 3 * E + attn_scratch_floats(&m->ahp) + 2 * F + moe_scratch_floats((int)N, (int)K, (int)F, (int)E, 0);
    s->x = calloc(nf, sizeof(float));
    if (!s->x || moe_scratch_ids_alloc(&s->ms, (int)K)) { llama_state_free(s); mf_fail(e, "out of memory"); return NULL; }
    float *p = s->x;
    s->x = p, p += E;
    s->h = p, p += E;
    s->tmp = p, p += E;
    p = attn_scratch_lay(&s->as, &m->ahp, p);
    s->ff_gate = p, p += F;
    s->ff_up = p, p += F;
    moe_scratch_lay(&s->ms, p, (int)N, (int)K, (int)F, (int)E, 0);
    if (llama_state_reserve(s, n_ctx < 256 ? n_ctx : 256, e)) { llama_state_free(s); return NULL; }
    return s;
}

/* The attention of layer l for the token at pos (lb_forward). */
static void llama_attn(void *mp, void *sp, uint32_t l, uint32_t pos, const float *h, float *out)
{
    llama_model *m = mp;
    llama_state *s = sp;
    attn_forward(m->pool, &m->ahp, &m->layers[l].attn, kv_cache_layer(&s->kv, l), pos, h, &s->as, out);
}

static int llama_forward(void *mp, void *sp, int32_t token, uint32_t pos, float *logits, mf_error *e)
{
    llama_model *m = mp;
    llama_state *s = sp;
    if (llama_state_reserve(s, pos + 1, e)) return -1;
    const lb_token t = { s->x, s->h, s->tmp, s->ff_gate, s->ff_up, NULL, &s->ms };
    return lb_forward(&m->lb, &t, llama_attn, m, s, token, pos, logits, e);
}

/* The attention of layer l over the T tokens of a chunk (lb_run). Dense
 * files are batched too: their FFN is read once per chunk, not per token. */
static void llama_attn_batch(void *mp, void *sp, uint32_t l, uint32_t p0, int T, lb_scratch *b)
{
    llama_model *m = mp;
    llama_state *s = sp;
    attn_batch_scratch as = lb_attn_scratch(b, &m->ahp, s->kv.att);
    attn_forward_batch(m->pool, &m->ahp, &m->layers[l].attn, kv_cache_layer(&s->kv, l), p0, T, b->H, m->hp.n_embd,
                       &as, b->Y, m->hp.n_embd);
}

static int llama_forward_batch(void *mp, void *sp, const int32_t *tokens, int n, uint32_t pos0, float *all, float *last,
                               mf_error *e)
{
    llama_model *m = mp;
    llama_state *s = sp;
    if (llama_state_reserve(s, pos0 + (uint32_t)n, e)) return -1;
    return lb_run(&m->lb, &s->lb, llama_attn_batch, m, s, tokens, n, pos0, all, last, e);
}

const arch_ops arch_llama = {
    .name = "llama",
    .load = llama_load,
    .free = llama_free,
    .state_new = llama_state_new,
    .state_free = llama_state_free,
    .state_truncate = kv_truncate_free,
    .state_reserve = llama_state_reserve,
    .forward = llama_forward,
    .forward_batch = llama_forward_batch,
};
