/* qwen35moe.c — Qwen3.5-MoE (Qwen3.5-397B-A17B, Qwen3.5/3.6-35B-A3B,
 * 122B-A10B), GGUF architecture `qwen35moe`: a hybrid of Gated DeltaNet
 * linear attention and gated full attention, every layer with a routed MoE
 * plus a gated shared expert.
 *
 * Per layer (Qwen3.5 / Qwen3-Next model cards; HF config keys as the GGUF
 * converter writes them under `qwen35moe.*`):
 *   h = RMSNorm(x) * attn_norm
 *   linear layers, i.e. (i + 1) % full_attention_interval != 0:
 *     x += GatedDeltaNet(h)                          (models/deltanet.c)
 *   full-attention layers:
 *     [q | gate] per head = W_q h;  k, v = W_k h, W_v h
 *     q, k = per-head RMSNorm (attn_q_norm, attn_k_norm), then NEOX RoPE
 *            on the first rope.dimension_count dims of each head
 *     x += W_o (GQA-attention(q, k, v) * sigmoid(gate))   scale 1/sqrt(head_dim)
 *   h = RMSNorm(x) * post_attention_norm          (the pre-FFN norm)
 *   p = softmax(W_router h); top-K of p, renormalised to sum 1
 *   x += sum_k p_k down_k(silu(gate_k h) * up_k h)
 *        + sigmoid(ffn_gate_inp_shexp . h) * down_sh(silu(gate_sh h) * up_sh h)
 * then final RMSNorm and the output head (or the tied embedding).
 *
 * The rotary layout is IMROPE (`rope.dimension_sections`): each rotated
 * pair takes its position from one of up to four sections (time, height,
 * width, extra). For text every section holds the token's position, so the
 * rotation is plain NEOX RoPE over rope.dimension_count dims, and the
 * sections need not be read.
 *
 * A file may append a multi-token-prediction block (`nextn_predict_layers`
 * of them, blk.N...): the trunk is n_layer = block_count -
 * nextn_predict_layers and the MTP block is not run.
 *
 * Session state: the KV cache of the full-attention layers (grows with the
 * positions) and, per linear layer, the conv window and the DeltaNet state
 * (fixed size). The recurrent state cannot be rewound, so the session can
 * only be truncated to 0 (a reset) or to its current length.
 *
 * Decode prefetches the next layer's guessed experts (as qwen3moe does);
 * prefill runs chunks of tokens layer by layer (q35_forward_batch): every
 * product over the chunk at once, the recurrence and the causal attention
 * in token order inside it, each routed expert read once per chunk. Both
 * give bit for bit the logits of token-by-token evaluation.
 */
#include "models/arch.h"
#include "models/blocks.h"
#include "models/decoder.h"
#include "models/deltanet.h"
#include "models/kvcache.h"
#include "quant/quant.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARCH "qwen35moe"

typedef struct q35_hparams {
    uint32_t n_vocab, n_embd, n_layer, n_ctx_train;
    uint32_t n_head, n_head_kv, head_dim, n_rot;
    uint32_t n_expert, n_used, n_ff_exp, n_ff_shexp;
    float eps, freq_base, attn_scale;
    dnet_hparams dn;
} q35_hparams;

/* A full-attention layer: W_q has 2 head_dim rows per head, [q | gate]. */
typedef struct q35_attn {
    mf_weight wq, wk, wv, wo, q_norm, k_norm;
} q35_attn;

typedef struct q35_layer {
    int recurrent;
    uint32_t slot;           /* index among the layers of its kind (state) */
    mf_weight attn_norm, ffn_norm, router;
    mf_weight sh_gate, sh_up, sh_down, sh_gate_inp;
    dnet_weights dn;
    q35_attn at;
} q35_layer;

typedef struct q35_model {
    int batch;               /* tokens per prefill pass (--batch, or Q35_BATCH) */
    q35_hparams hp;
    moe_hparams mhp;
    uint32_t n_lin, n_full;  /* layers of each kind */
    mf_weight tok_embd, output_norm, output;
    q35_layer *layers;
    store *store;
    mf_pool *pool;
} q35_model;

typedef struct q35_state {
    q35_model *m;
    uint32_t n_ctx, n_alloc;
    uint32_t n_pos;          /* positions folded into the recurrent state */
    int broken;              /* a forward failed midway: the recurrent state is partial */
    float *kcache, *vcache;  /* n_full x n_alloc x kv_dim */
    float *att;              /* n_head x n_alloc scores */
    float *rec;              /* per linear layer: conv window, then S */
    dnet_state *dn;          /* n_lin views into rec */
    float *buf;              /* the per-token scratch below */
    float *x, *h, *tmp, *sh;
    float *qg, *q, *k, *v, *ao;
    float *sh_g, *sh_u, sh_s;
    dnet_scratch ds;
    moe_scratch ms;
    /* batched prefill, allocated on its first use: B tokens per chunk */
    int B;
    float *bbuf;             /* the chunk's rows below */
    float *bx, *bh, *btmp, *bsh;          /* B x n_embd each */
    float *bqg, *bk, *bv, *bao;           /* full attention: B x (2 q_dim, kv_dim, kv_dim, q_dim) */
    float *bsg, *bsu, *bss;               /* shared expert: B x (n_ff_shexp, n_ff_shexp, 1) */
    float *bfloats;
    int32_t *bints;
    void *bq;
    dnet_batch db;           /* shares its floats with the attention rows: a layer is one or the other */
    moe_batch mb;
} q35_state;

/* Tokens per layer pass in batched prefill, as qwen3moe and for the same
 * reason: an expert read serves T*K/N tokens of a chunk on average, and
 * Qwen3.5-35B-A3B has N/K = 32. At that shape the chunk's scratch is
 * about 60 MB. */
#define Q35_BATCH 256

static int key_u32(const gguf_file *f, const char *name, uint32_t *out, mf_error *e)
{
    char k[128];
    return gguf_get_u32(f, gguf_arch_key(k, sizeof k, ARCH, name), out, e);
}

static int opt_u32(const gguf_file *f, const char *name, uint32_t def, uint32_t *out, mf_error *e)
{
    char k[128];
    return gguf_opt_u32(f, gguf_arch_key(k, sizeof k, ARCH, name), def, out, e);
}

static int opt_f32(const gguf_file *f, const char *name, float def, float *out, mf_error *e)
{
    char k[128];
    return gguf_opt_f32(f, gguf_arch_key(k, sizeof k, ARCH, name), def, out, e);
}

static int q35_hparams_load(const gguf_file *f, q35_hparams *hp, mf_error *e)
{
    const char *path = f->parts[0].path;
    uint32_t conv, state, groups, dt_rank, inner;
    dec_dims d;
    if (dec_dims_load(f, ARCH, DEC_NEXTN, &d, e)) return -1;
    DEC_DIMS_COPY(hp, d);
    hp->n_ff_exp = d.n_ff;
    if (key_u32(f, "ssm.conv_kernel", &conv, e) || key_u32(f, "ssm.state_size", &state, e) ||
        key_u32(f, "ssm.group_count", &groups, e) || key_u32(f, "ssm.time_step_rank", &dt_rank, e) ||
        key_u32(f, "ssm.inner_size", &inner, e))
        return -1;
    if (opt_u32(f, "expert_shared_feed_forward_length", 0, &hp->n_ff_shexp, e) ||
        opt_f32(f, "attention.layer_norm_rms_epsilon", 1e-6f, &hp->eps, e) ||
        opt_f32(f, "rope.freq_base", 10000.0f, &hp->freq_base, e) ||
        opt_f32(f, "attention.scale", 0.0f, &hp->attn_scale, e))
        return -1;
    char k[128];
    const gguf_kv *scaling = gguf_find(f, gguf_arch_key(k, sizeof k, ARCH, "rope.scaling.type"));
    if (scaling) {
        const char *type;
        if (gguf_get_str(f, k, &type, e)) return -1;
        if (strcmp(type, "none") && strcmp(type, ""))
            return mf_fail(e, "%s: %s: rope scaling \"%s\" is not supported for " ARCH, path, k, type);
    }
    if (dt_rank == 0 || inner % dt_rank)
        return mf_fail(e, "%s: " ARCH ": ssm.inner_size %u is not a multiple of ssm.time_step_rank %u", path, inner,
                       dt_rank);
    hp->dn = (dnet_hparams){
        .n_embd = (int)hp->n_embd, .d_conv = (int)conv, .n_k_heads = (int)groups, .n_v_heads = (int)dt_rank,
        .d_k = (int)state, .d_v = (int)(inner / dt_rank), .eps = hp->eps,
    };
    return dnet_hparams_check(&hp->dn, path, e);
}

/* Which layers are linear: the per-layer `attention.recurrent_layers` flags
 * when the file has them, else every layer but each full_attention_interval-th. */
static int q35_layer_kinds(const gguf_file *f, q35_model *m, mf_error *e)
{
    const char *path = f->parts[0].path;
    char k[128];
    const gguf_kv *kv = gguf_find(f, gguf_arch_key(k, sizeof k, ARCH, "attention.recurrent_layers"));
    uint32_t interval = 4;
    if (kv) {
        const gguf_value *a = &kv->val;
        if (a->type != GGUF_ARRAY || a->v.arr.etype == GGUF_STRING || a->v.arr.etype == GGUF_ARRAY ||
            a->v.arr.n < m->hp.n_layer)
            return mf_fail(e, "%s: %s: expected an array of %u flags", path, k, m->hp.n_layer);
    } else {
        if (opt_u32(f, "full_attention_interval", 4, &interval, e)) return -1;
        if (interval == 0) return mf_fail(e, "%s: " ARCH ".full_attention_interval is 0", path);
    }
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        q35_layer *L = &m->layers[l];
        L->recurrent = kv ? gguf_arr_int(&kv->val, l) != 0 : (l + 1) % interval != 0;
        L->slot = L->recurrent ? m->n_lin++ : m->n_full++;
    }
    return 0;
}

static int q35_bind_layer(binder *b, q35_model *m, uint32_t l)
{
    const q35_hparams *hp = &m->hp;
    q35_layer *L = &m->layers[l];
    const uint64_t E = hp->n_embd, HD = hp->head_dim, Q = (uint64_t)hp->n_head * HD, KV = (uint64_t)hp->n_head_kv * HD;
    if (bind_weight(b, &L->attn_norm, 1, 1, (uint64_t[]){ E }, "blk.%u.attn_norm.weight", l) ||
        bind_weight(b, &L->ffn_norm, 1, 1, (uint64_t[]){ E }, "blk.%u.post_attention_norm.weight", l) ||
        bind_check_f32(b, &L->attn_norm) || bind_check_f32(b, &L->ffn_norm))
        return -1;
    if (L->recurrent) {
        if (dnet_bind(b, &hp->dn, &L->dn, l)) return -1;
    } else {
        q35_attn *A = &L->at;
        if (bind_weight(b, &A->wq, 1, 2, (uint64_t[]){ E, 2 * Q }, "blk.%u.attn_q.weight", l) ||
            bind_weight(b, &A->wk, 1, 2, (uint64_t[]){ E, KV }, "blk.%u.attn_k.weight", l) ||
            bind_weight(b, &A->wv, 1, 2, (uint64_t[]){ E, KV }, "blk.%u.attn_v.weight", l) ||
            bind_weight(b, &A->wo, 1, 2, (uint64_t[]){ Q, E }, "blk.%u.attn_output.weight", l) ||
            bind_weight(b, &A->q_norm, 1, 1, (uint64_t[]){ HD }, "blk.%u.attn_q_norm.weight", l) ||
            bind_weight(b, &A->k_norm, 1, 1, (uint64_t[]){ HD }, "blk.%u.attn_k_norm.weight", l) ||
            bind_check_f32(b, &A->q_norm) || bind_check_f32(b, &A->k_norm))
            return -1;
    }
    /* The shared expert's width comes from its key, else from the tensor. */
    const uint64_t FS = hp->n_ff_shexp;
    if (bind_weight(b, &L->router, 1, 2, (uint64_t[]){ E, hp->n_expert }, "blk.%u.ffn_gate_inp.weight", l) ||
        bind_weight(b, &L->sh_gate_inp, 1, 2, (uint64_t[]){ E, 1 }, "blk.%u.ffn_gate_inp_shexp.weight", l) ||
        bind_weight(b, &L->sh_gate, 1, 2, (uint64_t[]){ E, FS }, "blk.%u.ffn_gate_shexp.weight", l) ||
        bind_weight(b, &L->sh_up, 1, 2, (uint64_t[]){ E, L->sh_gate.ne[1] }, "blk.%u.ffn_up_shexp.weight", l) ||
        bind_weight(b, &L->sh_down, 1, 2, (uint64_t[]){ L->sh_gate.ne[1], E }, "blk.%u.ffn_down_shexp.weight", l))
        return -1;
    if (l > 0 && L->sh_gate.ne[1] != m->layers[0].sh_gate.ne[1])
        return mf_fail(b->e, "%s: blk.%u.ffn_gate_shexp.weight has %" PRIu64 " rows, blk.0's has %" PRIu64,
                       b->f->parts[0].path, l, L->sh_gate.ne[1], m->layers[0].sh_gate.ne[1]);
    /* The routed experts are checked here but reached only through the store. */
    const uint64_t F = hp->n_ff_exp, NE = hp->n_expert;
    mf_weight chk;
    if (bind_weight(b, &chk, 0, 3, (uint64_t[]){ E, 2 * F, NE }, "blk.%u.ffn_gate_up_exps.weight", l)) return -1;
    if (!chk.name &&
        (bind_weight(b, &chk, 1, 3, (uint64_t[]){ E, F, NE }, "blk.%u.ffn_gate_exps.weight", l) ||
         bind_weight(b, &chk, 1, 3, (uint64_t[]){ E, F, NE }, "blk.%u.ffn_up_exps.weight", l)))
        return -1;
    return bind_weight(b, &chk, 1, 3, (uint64_t[]){ F, E, NE }, "blk.%u.ffn_down_exps.weight", l);
}

static void q35_free(void *mp)
{
    q35_model *m = mp;
    if (!m) return;
    free(m->layers);
    free(m);
}

static void *q35_load(arch_ctx *ctx, arch_info *info, mf_error *e)
{
    const gguf_file *f = ctx->f;
    q35_model *m = calloc(1, sizeof *m);
    if (!m) { mf_fail(e, "out of memory"); return NULL; }
    q35_hparams *hp = &m->hp;
    m->batch = ctx->n_batch > 1 ? ctx->n_batch : Q35_BATCH;
    if (q35_hparams_load(f, hp, e) || arch_experts_used(ctx, &hp->n_used, e)) goto fail;
    m->layers = calloc(hp->n_layer ? hp->n_layer : 1, sizeof *m->layers);
    if (!m->layers) { mf_fail(e, "out of memory"); goto fail; }
    if (q35_layer_kinds(f, m, e)) goto fail;

    binder b = { f, e, 0 };
    const uint64_t E = hp->n_embd;
    if (dec_bind_ends(&b, E, &m->tok_embd, &m->output_norm, &m->output, &hp->n_vocab)) goto fail;
    for (uint32_t l = 0; l < hp->n_layer; l++)
        if (q35_bind_layer(&b, m, l)) goto fail;
    hp->n_ff_shexp = hp->n_layer ? (uint32_t)m->layers[0].sh_gate.ne[1] : 0;
    if (arch_open_store(ctx, hp->n_layer, hp->n_expert, hp->n_used, e)) goto fail;
    m->store = ctx->store;
    m->pool = ctx->pool;
    /* Qwen3.5 hard-codes softmax gating with the top-K renormalised (no
     * expert_gating_func / expert_weights_* keys are written). */
    m->mhp = (moe_hparams){
        .n_expert = (int)hp->n_expert, .n_used = (int)hp->n_used, .n_embd = (int)hp->n_embd,
        .n_ff = (int)hp->n_ff_exp, .gating = MOE_SOFTMAX, .norm_topk = 1, .weights_scale = 1.0f,
    };
    *info = (arch_info){ hp->n_vocab, hp->n_embd, hp->n_layer, hp->n_ctx_train, hp->n_expert, hp->n_used };
    return m;
fail:
    q35_free(m);
    return NULL;
}

static void q35_state_free(void *sp)
{
    q35_state *s = sp;
    if (!s) return;
    free(s->kcache);
    free(s->vcache);
    free(s->att);
    free(s->rec);
    free(s->dn);
    free(s->buf);
    moe_scratch_ids_free(&s->ms);
    free(s->bbuf);
    free(s->bfloats);
    free(s->bints);
    free(s->bq);
    free(s);
}

static int q35_state_reserve(void *sp, uint32_t n, mf_error *e)
{
    q35_state *s = sp;
    const q35_model *m = s->m;
    const q35_hparams *hp = &m->hp;
    uint32_t want = 0;
    if (kv_grow_rows(s->n_alloc, s->n_ctx, n, &want, e)) return -1;
    if (want == s->n_alloc) return 0;
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim, nf = m->n_full ? m->n_full : 1;
    /* The cache is laid out layer-major, so growing re-packs it. */
    float *k = calloc(nf * want * kv_dim, sizeof(float));
    float *v = calloc(nf * want * kv_dim, sizeof(float));
    float *att = calloc((size_t)hp->n_head * want, sizeof(float));
    if (!k || !v || !att) {
        free(k), free(v), free(att);
        return mf_fail(e, "out of memory for a KV cache of %u positions", want);
    }
    for (uint32_t l = 0; l < m->n_full && s->n_alloc; l++) {
        memcpy(k + l * want * kv_dim, s->kcache + l * s->n_alloc * kv_dim, s->n_alloc * kv_dim * sizeof(float));
        memcpy(v + l * want * kv_dim, s->vcache + l * s->n_alloc * kv_dim, s->n_alloc * kv_dim * sizeof(float));
    }
    free(s->kcache), free(s->vcache), free(s->att);
    s->kcache = k, s->vcache = v, s->att = att;
    s->n_alloc = want;
    return 0;
}

static void q35_state_reset(q35_state *s)
{
    for (uint32_t i = 0; i < s->m->n_lin; i++) dnet_state_reset(&s->m->hp.dn, s->dn[i]);
    s->n_pos = 0;
    s->broken = 0;
}

static void *q35_state_new(void *mp, uint32_t n_ctx, mf_error *e)
{
    q35_model *m = mp;
    const q35_hparams *hp = &m->hp;
    q35_state *s = calloc(1, sizeof *s);
    if (!s) { mf_fail(e, "out of memory"); return NULL; }
    s->m = m;
    s->n_ctx = n_ctx;
    const size_t E = hp->n_embd, Q = (size_t)hp->n_head * hp->head_dim, KV = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t K = hp->n_used, F = hp->n_ff_exp, FS = hp->n_ff_shexp;
    const size_t conv = dnet_conv_floats(&hp->dn), S = dnet_S_floats(&hp->dn);
    /* recurrent state: per linear layer the conv window, then S */
    s->rec = calloc((size_t)m->n_lin * (conv + S) + 1, sizeof(float));
    s->dn = calloc((size_t)m->n_lin + 1, sizeof *s->dn);
    size_t nf = 4 * E + 4 * Q + 2 * KV + 2 * FS + dnet_scratch_floats(&hp->dn) + moe_scratch_floats(hp->n_expert, (int)K, (int)F, (int)E, 0);
    s->buf = calloc(nf, sizeof(float));
    if (!s->rec || !s->dn || !s->buf || moe_scratch_ids_alloc(&s->ms, (int)K)) { q35_state_free(s); mf_fail(e, "out of memory"); return NULL; }
    for (uint32_t i = 0; i < m->n_lin; i++) {
        s->dn[i].conv = s->rec + i * (conv + S);
        s->dn[i].S = s->dn[i].conv + conv;
    }
    float *p = s->buf;
    s->x = p, p += E;
    s->h = p, p += E;
    s->tmp = p, p += E;
    s->sh = p, p += E;
    s->qg = p, p += 2 * Q;
    s->q = p, p += Q;
    s->k = p, p += KV;
    s->v = p, p += KV;
    s->ao = p, p += Q;
    s->sh_g = p, p += FS;
    s->sh_u = p, p += FS;
    dnet_scratch_init(&s->ds, &hp->dn, p), p += dnet_scratch_floats(&hp->dn);
    moe_scratch_lay(&s->ms, p, hp->n_expert, (int)K, (int)F, (int)E, 0);
    if (q35_state_reserve(s, n_ctx < 256 ? n_ctx : 256, e)) { q35_state_free(s); return NULL; }
    return s;
}

static int q35_state_truncate(void *sp, uint32_t n_past, mf_error *e)
{
    q35_state *s = sp;
    if (n_past == 0) { q35_state_reset(s); return 0; }
    if (n_past == s->n_pos && !s->broken) return 0; /* KV rows past n_past are overwritten before they are read */
    if (s->broken)
        return mf_fail(e, ARCH ": cannot keep %u positions: an earlier evaluation failed midway and left the DeltaNet "
                          "state partial; truncate to 0 to start over", n_past);
    return mf_fail(e, ARCH ": cannot truncate the session from %u to %u positions: the Gated DeltaNet layers keep one "
                      "recurrent state, not per-position entries, so only truncation to 0 (a reset) is supported",
                   s->n_pos, n_past);
}

/* Everything of a gated full-attention layer between the projections and
 * W_o for one token at pos (Qwen3-Next / Qwen3.5: the output of each head
 * is multiplied by sigmoid of its gate rows): qg = W_q h ([q | gate] per
 * head), k and v the token's projections (k normed in place); the token's
 * k, v go into the cache at pos, the gated attention output into ao. */
static void q35_attend(const q35_model *m, const q35_attn *w, q35_state *s, uint32_t slot, uint32_t pos,
                       const float *qg, float *k, const float *v, float *ao)
{
    const q35_hparams *hp = &m->hp;
    const int hd = (int)hp->head_dim, nh = (int)hp->n_head, nkv = (int)hp->n_head_kv;
    const size_t kv_dim = (size_t)nkv * hd;
    for (int i = 0; i < nh; i++) /* rows of head i: [q (hd) | gate (hd)] */
        op_rmsnorm(s->q + (size_t)i * hd, qg + (size_t)i * 2 * hd, w->q_norm.data, (size_t)hd, hp->eps);
    for (int i = 0; i < nkv; i++)
        op_rmsnorm(k + (size_t)i * hd, k + (size_t)i * hd, w->k_norm.data, (size_t)hd, hp->eps);
    if (hp->n_rot > 0) {
        op_rope_neox(s->q, nh, hd, (int)hp->n_rot, (int)pos, hp->freq_base);
        op_rope_neox(k, nkv, hd, (int)hp->n_rot, (int)pos, hp->freq_base);
    }
    float *kc = s->kcache + (size_t)slot * s->n_alloc * kv_dim, *vc = s->vcache + (size_t)slot * s->n_alloc * kv_dim;
    memcpy(kc + (size_t)pos * kv_dim, k, kv_dim * sizeof(float));
    memcpy(vc + (size_t)pos * kv_dim, v, kv_dim * sizeof(float));
    /* attention.scale when the file sets one, else 1/sqrt(head_dim) */
    const float scale = hp->attn_scale != 0.0f ? hp->attn_scale : 1.0f / sqrtf((float)hd);
    op_attention(m->pool, s->q, kc, vc, kv_dim, (int)pos + 1, nh, nkv, hd, scale, s->att, ao);
    for (int i = 0; i < nh; i++) {
        float *o = ao + (size_t)i * hd;
        const float *gate = qg + (size_t)i * 2 * hd + hd;
        for (int c = 0; c < hd; c++) o[c] *= op_sigmoid(gate[c]);
    }
}

/* Gated full attention of one token. */
static void q35_attention(const q35_model *m, const q35_attn *w, q35_state *s, uint32_t slot, uint32_t pos, float *out)
{
    const mf_weight *ws[3] = { &w->wq, &w->wk, &w->wv };
    float *ys[3] = { s->qg, s->k, s->v };
    op_matvec_multi(m->pool, 3, ws, s->h, ys);
    q35_attend(m, w, s, slot, pos, s->qg, s->k, s->v, s->ao);
    op_matvec(m->pool, &w->wo, s->ao, out);
}

/* The shared expert, scaled by its per-token gate:
 * sigmoid(ffn_gate_inp_shexp . h) * down_sh(silu(gate_sh h) * up_sh h). */
static void q35_shared_expert(const q35_model *m, const q35_layer *L, q35_state *s, float *out)
{
    const size_t FS = m->hp.n_ff_shexp;
    const mf_weight *ws[3] = { &L->sh_gate, &L->sh_up, &L->sh_gate_inp };
    float *ys[3] = { s->sh_g, s->sh_u, &s->sh_s };
    op_matvec_multi(m->pool, 3, ws, s->h, ys);
    for (size_t i = 0; i < FS; i++) s->sh_g[i] = op_silu(s->sh_g[i]) * s->sh_u[i];
    op_matvec(m->pool, &L->sh_down, s->sh_g, out);
    const float g = op_sigmoid(s->sh_s);
    for (size_t i = 0; i < m->hp.n_embd; i++) out[i] *= g;
}

static int q35_forward(void *mp, void *sp, int32_t token, uint32_t pos, float *logits, mf_error *e)
{
    q35_model *m = mp;
    q35_state *s = sp;
    const q35_hparams *hp = &m->hp;
    const size_t E = hp->n_embd;
    if (token < 0 || (uint32_t)token >= hp->n_vocab) return mf_fail(e, "token id %d out of range (vocab %u)", token, hp->n_vocab);
    if (s->broken)
        return mf_fail(e, ARCH ": an earlier evaluation failed midway and left the DeltaNet state partial; truncate "
                          "the session to 0 to start over");
    if (pos != s->n_pos)
        return mf_fail(e, ARCH ": position %u evaluated after %u: the recurrent state needs the positions in order",
                       pos, s->n_pos);
    if (q35_state_reserve(s, pos + 1, e)) return -1;
    /* the embedding row may come from disk and fail: before any state changes */
    if (op_get_row(&m->tok_embd, (uint64_t)token, s->x, e)) return -1;
    s->broken = 1; /* until this token has gone through every layer */
    /* Prefetch as qwen3moe does: layer l + 1's router applied to the
     * residual stream after layer l's attention (or DeltaNet) guesses its
     * experts, read behind layer l's demand reads while layer l's experts,
     * its shared expert and layer l + 1's mixer compute; layer 0's guess
     * comes from the embedding. A guess only warms the cache: the logits
     * are the same with and without it. */
    moe_next next = { 0, &m->layers[0].router, m->layers[0].ffn_norm.data, hp->eps, s->x, NULL };
    moe_prefetch(m->pool, m->store, &m->mhp, &next, &s->ms);
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const q35_layer *L = &m->layers[l];
        op_rmsnorm(s->h, s->x, L->attn_norm.data, E, hp->eps);
        if (L->recurrent) dnet_forward(m->pool, &hp->dn, &L->dn, s->dn[L->slot], s->h, &s->ds, s->tmp);
        else q35_attention(m, &L->at, s, L->slot, pos, s->tmp);
        for (size_t i = 0; i < E; i++) s->x[i] += s->tmp[i];
        op_rmsnorm(s->h, s->x, L->ffn_norm.data, E, hp->eps);
        const bool last = l + 1 == hp->n_layer;
        if (!last) {
            const q35_layer *N = &m->layers[l + 1];
            next = (moe_next){ (int)l + 1, &N->router, N->ffn_norm.data, hp->eps, s->x, NULL };
        }
        if (moe_route(m->pool, m->store, (int)l, &m->mhp, &L->router, s->h, &s->ms, last ? NULL : &next, e)) return -1;
        moe_experts(m->pool, m->store, (int)l, &m->mhp, s->h, &s->ms, s->tmp);
        q35_shared_expert(m, L, s, s->sh);
        for (size_t i = 0; i < E; i++) s->x[i] += s->tmp[i] + s->sh[i];
    }
    s->broken = 0;
    s->n_pos = pos + 1;
    if (logits) dec_logits(m->pool, &m->output_norm, &m->output, hp->eps, s->x, s->h, logits);
    return 0;
}

/* The largest quantized input of the products a chunk of B tokens runs,
 * group by group as they are called. */
static size_t q35_batch_qbytes(const q35_model *m, int B)
{
    size_t qb = 0;
#define QB(n, ...) do { const mf_weight *ws_[] = { __VA_ARGS__ }; \
        size_t b_ = op_matmul_qbytes(n, ws_, B); if (b_ > qb) qb = b_; } while (0)
    QB(1, &m->output);
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const q35_layer *L = &m->layers[l];
        if (L->recurrent) {
            QB(1, &L->dn.qkv);
            QB(1, &L->dn.z);
            QB(2, &L->dn.beta, &L->dn.alpha);
            QB(1, &L->dn.out);
        } else {
            QB(1, &L->at.wq);
            QB(2, &L->at.wk, &L->at.wv);
            QB(1, &L->at.wo);
        }
        QB(1, &L->router);
        QB(2, &L->sh_gate, &L->sh_up);
        QB(1, &L->sh_gate_inp);
        QB(1, &L->sh_down);
        const store_tensor *roles = store_layer_roles(m->store, (int)l);
        for (int r = 0; r < STORE_ROLE_COUNT; r++) {
            if (!roles[r].t) continue;
            const mf_weight w = { .type = roles[r].t->type, .ne = { roles[r].t->ne[0], 1, 1, 1 } };
            const mf_weight *wp[1] = { &w };
            /* gate and up share one input and may take different activation types */
            const size_t b = 2 * op_matmul_qbytes(1, wp, B);
            if (b > qb) qb = b;
        }
    }
#undef QB
    return qb;
}

static int q35_batch_alloc(q35_state *s, mf_error *e)
{
    if (s->bbuf) return 0;
    const q35_model *m = s->m;
    const q35_hparams *hp = &m->hp;
    const int B = s->n_ctx < (uint32_t)m->batch ? (int)s->n_ctx : m->batch;
    const size_t E = hp->n_embd, Q = (size_t)hp->n_head * hp->head_dim, KV = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t FS = hp->n_ff_shexp, attn = (size_t)B * (3 * Q + 2 * KV), dn = dnet_batch_floats(&hp->dn, B);
    const size_t qb = q35_batch_qbytes(m, B) + 64;
    s->bbuf = calloc((size_t)B * (4 * E + 2 * FS + 1) + (attn > dn ? attn : dn), sizeof(float));
    s->bfloats = calloc(moe_batch_floats(&m->mhp, B), sizeof(float));
    s->bints = calloc(moe_batch_ints(&m->mhp, B), sizeof(int32_t));
    s->bq = malloc(qb);
    if (!s->bbuf || !s->bfloats || !s->bints || !s->bq) return mf_fail(e, "out of memory for the prefill batch scratch");
    s->B = B;
    float *p = s->bbuf;
    s->bx = p, p += (size_t)B * E;
    s->bh = p, p += (size_t)B * E;
    s->btmp = p, p += (size_t)B * E;
    s->bsh = p, p += (size_t)B * E;
    s->bsg = p, p += (size_t)B * FS;
    s->bsu = p, p += (size_t)B * FS;
    s->bss = p, p += (size_t)B;
    dnet_batch_init(&s->db, &hp->dn, B, p, s->bq, qb);
    s->bqg = p, p += (size_t)B * 2 * Q;
    s->bk = p, p += (size_t)B * KV;
    s->bv = p, p += (size_t)B * KV;
    s->bao = p;
    moe_batch_init(&s->mb, &m->mhp, B, s->bfloats, s->bints, s->bq, qb);
    return 0;
}

/* Gated full attention of T tokens at p0..: the projections as matrix
 * products, then each token in order against the cache (causal). */
static void q35_attention_batch(const q35_model *m, const q35_attn *w, q35_state *s, uint32_t slot, uint32_t p0,
                                int T, float *OUT)
{
    const q35_hparams *hp = &m->hp;
    const size_t E = hp->n_embd, Q = (size_t)hp->n_head * hp->head_dim, KV = (size_t)hp->n_head_kv * hp->head_dim;
    const mf_weight *wq[1] = { &w->wq }, *wkv[2] = { &w->wk, &w->wv }, *wo[1] = { &w->wo };
    float *yq[1] = { s->bqg }, *ykv[2] = { s->bk, s->bv }, *yo[1] = { OUT };
    op_matmul(m->pool, 1, wq, s->bh, E, T, yq, 2 * Q, s->bq, s->db.qcap);
    op_matmul(m->pool, 2, wkv, s->bh, E, T, ykv, KV, s->bq, s->db.qcap);
    for (int t = 0; t < T; t++)
        q35_attend(m, w, s, slot, p0 + (uint32_t)t, s->bqg + (size_t)t * 2 * Q, s->bk + (size_t)t * KV,
                   s->bv + (size_t)t * KV, s->bao + (size_t)t * Q);
    op_matmul(m->pool, 1, wo, s->bao, Q, T, yo, E, s->bq, s->db.qcap);
}

/* The shared expert of T tokens (rows of bh) into bsh. */
static void q35_shared_expert_batch(const q35_model *m, const q35_layer *L, q35_state *s, int T)
{
    const size_t E = m->hp.n_embd, FS = m->hp.n_ff_shexp;
    const mf_weight *wgu[2] = { &L->sh_gate, &L->sh_up }, *wg[1] = { &L->sh_gate_inp }, *wd[1] = { &L->sh_down };
    float *ygu[2] = { s->bsg, s->bsu }, *yg[1] = { s->bss }, *yd[1] = { s->bsh };
    op_matmul(m->pool, 2, wgu, s->bh, E, T, ygu, FS, s->bq, s->db.qcap);
    op_matmul(m->pool, 1, wg, s->bh, E, T, yg, 1, s->bq, s->db.qcap);
    for (size_t i = 0; i < (size_t)T * FS; i++) s->bsg[i] = op_silu(s->bsg[i]) * s->bsu[i];
    op_matmul(m->pool, 1, wd, s->bsg, FS, T, yd, E, s->bq, s->db.qcap);
    for (int t = 0; t < T; t++) {
        const float g = op_sigmoid(s->bss[t]);
        float *o = s->bsh + (size_t)t * E;
        for (size_t i = 0; i < E; i++) o[i] *= g;
    }
}

/* One chunk of T <= B tokens at p0.., layer by layer: the same layers as
 * q35_forward with every product over the chunk at once, the DeltaNet
 * recurrence and causal attention token by token inside it, each routed
 * expert read once per chunk. */
static int q35_chunk(q35_model *m, q35_state *s, const int32_t *tokens, int T, uint32_t p0, mf_error *e)
{
    const q35_hparams *hp = &m->hp;
    const size_t E = hp->n_embd;
    /* the embedding rows may come from disk and fail: before any state changes */
    for (int t = 0; t < T; t++)
        if (op_get_row(&m->tok_embd, (uint64_t)tokens[t], s->bx + (size_t)t * E, e)) return -1;
    s->broken = 1; /* until the chunk has gone through every layer */
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const q35_layer *L = &m->layers[l];
        for (int t = 0; t < T; t++) op_rmsnorm(s->bh + t * E, s->bx + t * E, L->attn_norm.data, E, hp->eps);
        if (L->recurrent)
            dnet_forward_batch(m->pool, &hp->dn, &L->dn, s->dn[L->slot], s->bh, E, T, &s->db, s->btmp, E);
        else q35_attention_batch(m, &L->at, s, L->slot, p0, T, s->btmp);
        for (size_t i = 0; i < (size_t)T * E; i++) s->bx[i] += s->btmp[i];
        for (int t = 0; t < T; t++) op_rmsnorm(s->bh + t * E, s->bx + t * E, L->ffn_norm.data, E, hp->eps);
        if (moe_forward_batch(m->pool, m->store, (int)l, &m->mhp, &L->router, s->bh, E, T, &s->mb, s->btmp, E, e))
            return -1;
        q35_shared_expert_batch(m, L, s, T);
        for (size_t i = 0; i < (size_t)T * E; i++) s->bx[i] += s->btmp[i] + s->bsh[i];
    }
    return 0;
}

/* n tokens from pos0 in chunks of B (arch_ops.forward_batch). No prefetch
 * here: a chunk's experts are known before they are read. */
static int q35_forward_batch(void *mp, void *sp, const int32_t *tokens, int n, uint32_t pos0, float *all, float *last,
                             mf_error *e)
{
    q35_model *m = mp;
    q35_state *s = sp;
    const q35_hparams *hp = &m->hp;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= hp->n_vocab)
            return mf_fail(e, "token id %d out of range (vocab %u)", tokens[i], hp->n_vocab);
    if (s->broken)
        return mf_fail(e, ARCH ": an earlier evaluation failed midway and left the DeltaNet state partial; truncate "
                          "the session to 0 to start over");
    if (pos0 != s->n_pos)
        return mf_fail(e, ARCH ": position %u evaluated after %u: the recurrent state needs the positions in order",
                       pos0, s->n_pos);
    if (q35_state_reserve(s, pos0 + (uint32_t)n, e) || q35_batch_alloc(s, e)) return -1;
    for (int c = 0; c < n; c += s->B) {
        const int T = n - c < s->B ? n - c : s->B;
        if (q35_chunk(m, s, tokens + c, T, pos0 + (uint32_t)c, e)) return -1; /* sets s->broken until done */
        s->broken = 0;
        s->n_pos += (uint32_t)T;
        dec_logits_rows(m->pool, &m->output_norm, &m->output, hp->eps, s->bx, s->h, c, T, n, all, last);
    }
    return 0;
}

const arch_ops arch_qwen35moe = {
    .name = ARCH,
    .load = q35_load,
    .free = q35_free,
    .state_new = q35_state_new,
    .state_free = q35_state_free,
    .state_truncate = q35_state_truncate,
    .state_reserve = q35_state_reserve,
    .forward = q35_forward,
    .forward_batch = q35_forward_batch,
};
