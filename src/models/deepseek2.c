/* deepseek2.c — DeepSeek-V2/V2-Lite/V3/R1 and Kimi-K2, GGUF architecture
 * `deepseek2`.
 *
 * Per layer (DeepSeek-V2 arXiv:2405.04434, DeepSeek-V3 arXiv:2412.19437;
 * keys and tensors as golden/README.md "Architecture: deepseek2" lists them):
 *   h  = RMSNorm(x) * attn_norm
 *   x += MLA(h)                               models/mla.c (latent KV cache)
 *   h  = RMSNorm(x) * ffn_norm
 *   layers < leading_dense_block_count:  x += down(silu(gate h) * up h)
 *   other layers:  x += routed experts (store) + shared experts (resident)
 * then final RMSNorm and `output`.
 *
 * Routing (V3 §2.1.2): s = sigmoid(router h) (expert_gating_func 2; V2
 * files use softmax, 1 or key absent); selection by s + exp_probs_b,
 * restricted to the best expert_group_used_count of expert_group_count
 * groups (a group scores the sum of its two best); weights are the
 * unbiased s of the chosen, divided by their sum when expert_weights_norm,
 * times expert_weights_scale. The shared experts are one SwiGLU of width
 * expert_feed_forward_length * expert_shared_count, always added, no weight.
 * Everything comes from the GGUF keys; nothing is tied to one model's shapes.
 */
#include "models/arch.h"
#include "models/blocks.h"
#include "models/decoder.h"
#include "models/kvcache.h"
#include "models/layer_batch.h"
#include "models/mla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ds2_hparams {
    uint32_t n_vocab, n_embd, n_layer, n_ctx_train;
    uint32_t n_dense, n_ff;                 /* leading dense layers and their FFN width */
    uint32_t n_expert, n_used, n_ff_exp, n_shared;
    uint32_t n_group, n_group_used;
    uint32_t gating;                        /* expert_gating_func: 1 softmax, 2 sigmoid */
    bool weights_norm;
    float weights_scale;
    float eps;
} ds2_hparams;

typedef struct ds2_layer {
    mf_weight attn_norm, ffn_norm;
    mla_weights attn;
    mf_weight ffn_gate, ffn_up, ffn_down;   /* dense layers */
    mf_weight router, sel_bias;             /* MoE layers (sel_bias optional) */
    mf_weight sh_gate, sh_up, sh_down;      /* shared experts (when n_shared > 0) */
} ds2_layer;

typedef struct ds2_model {
    ds2_hparams hp;
    mla_hparams ahp;
    moe_hparams mhp;                        /* sel_bias set per layer */
    mf_weight tok_embd, output_norm, output;
    ds2_layer *layers;
    store *store;
    mf_pool *pool;
    lb_model lb;                            /* the layers as layer_batch.c runs them */
} ds2_model;

typedef struct ds2_state {
    ds2_model *m;
    uint32_t n_ctx, n_alloc;
    float *kv;                              /* n_layer x n_alloc x mla_kv_row */
    float *buf;                             /* every fixed-size buffer below */
    float *x, *h, *tmp, *sh, *fg, *fu;
    mla_scratch as;
    moe_scratch ms;
    lb_scratch lb;                          /* batched prefill, allocated on its first use */
} ds2_state;

#define ARCH "deepseek2"

static const char *key(char *buf, size_t n, const char *suffix) { return gguf_arch_key(buf, n, ARCH, suffix); }

/* The rope keys: YaRN or none (anything else would need a formula this
 * file does not have). */
static int ds2_rope_load(const gguf_file *f, mla_hparams *ahp, uint32_t n_ctx_train, mf_error *e)
{
    char k[128];
    const char *path = f->parts[0].path;
    float base, factor, beta_fast, beta_slow, log_mul;
    uint32_t n_orig;
    const char *type = "linear";
    char tk[128];
    if (gguf_find(f, key(tk, sizeof tk, "rope.scaling.type")) && gguf_get_str(f, tk, &type, e)) return -1;
    /* yarn_beta_fast/slow are the model card's beta_fast/beta_slow and are
     * read from the file. DeepSeek-V2/V3 write 32 / 1, the values llama.cpp
     * assumes for deepseek2 without reading the keys; a file with other
     * values follows its model card here and differs from llama.cpp. */
    if (gguf_opt_f32(f, key(k, sizeof k, "rope.freq_base"), 10000.0f, &base, e) ||
        gguf_opt_f32(f, key(k, sizeof k, "rope.scaling.factor"), 1.0f, &factor, e) ||
        gguf_opt_u32(f, key(k, sizeof k, "rope.scaling.original_context_length"), n_ctx_train, &n_orig, e) ||
        gguf_opt_f32(f, key(k, sizeof k, "rope.scaling.yarn_beta_fast"), 32.0f, &beta_fast, e) ||
        gguf_opt_f32(f, key(k, sizeof k, "rope.scaling.yarn_beta_slow"), 1.0f, &beta_slow, e) ||
        gguf_opt_f32(f, key(k, sizeof k, "rope.scaling.yarn_log_multiplier"), 0.0f, &log_mul, e))
        return -1;
    /* "none" ignores the factor; an absent type with a factor means linear
     * scaling (llama.cpp's default), which, like any type but YaRN, has no
     * formula here. */
    const int yarn = !strcmp(type, "yarn");
    if (!yarn && strcmp(type, "none") && factor > 1.0f)
        return mf_fail(e, "%s: key %s.rope.scaling.type: \"%s\" with factor %g is not supported for deepseek2 "
                          "(expected yarn or none)", path, ARCH, gguf_find(f, tk) ? type : "absent (linear)", factor);
    if (!(base > 1.0f) || !(factor > 0.0f) || (yarn && (n_orig == 0 || !(beta_fast > 0) || !(beta_slow > 0))))
        return mf_fail(e, "%s: deepseek2: implausible rope keys (freq_base %g, factor %g, original context %u, "
                          "beta_fast %g, beta_slow %g)", path, base, factor, n_orig, beta_fast, beta_slow);
    mla_rope_init(ahp, base, yarn ? factor : 1.0f, n_orig, beta_fast, beta_slow, log_mul);
    return 0;
}

static int ds2_hparams_load(const gguf_file *f, ds2_hparams *hp, mla_hparams *ahp, mf_error *e)
{
    char k[128];
    const char *path = f->parts[0].path;
    uint32_t n_block, n_nextn, n_head, q_lora, kv_lora, n_rot, k_mla, v_mla;
#define REQ(name, dst) if (gguf_get_u32(f, key(k, sizeof k, name), dst, e)) return -1
#define OPT(name, def, dst) if (gguf_opt_u32(f, key(k, sizeof k, name), def, dst, e)) return -1
    REQ("block_count", &n_block);
    REQ("embedding_length", &hp->n_embd);
    REQ("attention.head_count", &n_head);
    REQ("attention.kv_lora_rank", &kv_lora);
    REQ("rope.dimension_count", &n_rot);
    REQ("expert_count", &hp->n_expert);
    REQ("expert_used_count", &hp->n_used);
    REQ("expert_feed_forward_length", &hp->n_ff_exp);
    OPT("nextn_predict_layers", 0, &n_nextn);
    OPT("context_length", 4096, &hp->n_ctx_train);
    OPT("leading_dense_block_count", 0, &hp->n_dense);
    OPT("feed_forward_length", 0, &hp->n_ff);
    OPT("attention.q_lora_rank", 0, &q_lora);
    OPT("expert_shared_count", 0, &hp->n_shared);
    OPT("expert_group_count", 0, &hp->n_group);
    OPT("expert_group_used_count", 0, &hp->n_group_used);
    OPT("expert_gating_func", 1, &hp->gating);
    if (!gguf_find(f, key(k, sizeof k, "attention.key_length_mla")) ||
        !gguf_find(f, key(k, sizeof k, "attention.value_length_mla")))
        return mf_fail(e, "%s: deepseek2: keys %s.attention.key_length_mla/value_length_mla are missing%s; this "
                          "engine runs the layout with attn_k_b and attn_v_b (files converted before llama.cpp split "
                          "attn_kv_b lack both): convert the model again", path, ARCH,
                       gguf_find_tensor(f, "blk.0.attn_kv_b.weight") ? " and the file has a fused attn_kv_b" : "");
    REQ("attention.key_length_mla", &k_mla);
    REQ("attention.value_length_mla", &v_mla);
#undef REQ
#undef OPT
    if (gguf_opt_bool(f, key(k, sizeof k, "expert_weights_norm"), false, &hp->weights_norm, e) ||
        gguf_opt_f32(f, key(k, sizeof k, "expert_weights_scale"), 1.0f, &hp->weights_scale, e) ||
        gguf_opt_f32(f, key(k, sizeof k, "attention.layer_norm_rms_epsilon"), 1e-6f, &hp->eps, e))
        return -1;
    /* The README's rule: no q LoRA iff attn_q exists (the key may be absent or 0). */
    if (gguf_find_tensor(f, "blk.0.attn_q.weight")) q_lora = 0;
    else if (q_lora == 0)
        return mf_fail(e, "%s: deepseek2: neither blk.0.attn_q.weight nor a %s.attention.q_lora_rank > 0", path, ARCH);

    if (n_block == 0 || n_nextn >= n_block)
        return mf_fail(e, "%s: deepseek2: block_count %u with nextn_predict_layers %u leaves no layer", path, n_block, n_nextn);
    hp->n_layer = n_block - n_nextn;   /* the MTP block(s) at the end are not run */
    if (hp->n_embd == 0 || n_head == 0 || kv_lora == 0 || v_mla == 0 || hp->n_embd > (1u << 20) ||
        hp->n_layer > 4096 || n_head > 4096 || kv_lora > 65536 || q_lora > 65536 || k_mla > 4096 || v_mla > 4096)
        return mf_fail(e, "%s: deepseek2: implausible hyperparameters (embd %u, layers %u, heads %u, q_lora %u, "
                          "kv_lora %u, key_length_mla %u, value_length_mla %u)",
                       path, hp->n_embd, hp->n_layer, n_head, q_lora, kv_lora, k_mla, v_mla);
    if (n_rot == 0 || n_rot % 2 || n_rot > MLA_MAX_ROT || n_rot >= k_mla)
        return mf_fail(e, "%s: deepseek2: rope.dimension_count %u: expected an even number in 2..%d below key_length_mla %u",
                       path, n_rot, MLA_MAX_ROT, k_mla);
    /* key_length / value_length, where present, describe the cached latent row. */
    uint32_t kl, vl;
    if (gguf_opt_u32(f, key(k, sizeof k, "attention.key_length"), kv_lora + n_rot, &kl, e) ||
        gguf_opt_u32(f, key(k, sizeof k, "attention.value_length"), kv_lora, &vl, e))
        return -1;
    if (kl != kv_lora + n_rot || vl != kv_lora)
        return mf_fail(e, "%s: deepseek2: key_length %u / value_length %u: expected kv_lora_rank + rope dims = %u / "
                          "kv_lora_rank = %u", path, kl, vl, kv_lora + n_rot, kv_lora);
    if (hp->n_dense > hp->n_layer || (hp->n_dense > 0 && hp->n_ff == 0) || hp->n_ff > (1u << 24))
        return mf_fail(e, "%s: deepseek2: leading_dense_block_count %u of %u layers with feed_forward_length %u", path,
                       hp->n_dense, hp->n_layer, hp->n_ff);
    if (dec_check_experts(path, ARCH, hp->n_expert, hp->n_used, 0, e)) return -1;
    if (hp->n_ff_exp == 0 || hp->n_ff_exp > (1u << 20) || hp->n_shared > 64)
        return mf_fail(e, "%s: deepseek2: expert_feed_forward_length %u, expert_shared_count %u: expected 1..%u and "
                          "0..64", path, hp->n_ff_exp, hp->n_shared, 1u << 20);
    if (hp->gating != 1 && hp->gating != 2)
        return mf_fail(e, "%s: key %s.expert_gating_func: expected 1 (softmax) or 2 (sigmoid), found %u", path, ARCH, hp->gating);
    if (hp->n_group > 1) {
        const uint32_t per = hp->n_expert / hp->n_group;
        if (hp->n_expert % hp->n_group || hp->n_group > 256 || hp->n_group_used == 0 ||
            hp->n_group_used > hp->n_group || hp->n_group_used * per < hp->n_used)
            return mf_fail(e, "%s: deepseek2: expert_group_count %u / expert_group_used_count %u do not fit %u experts, "
                              "%u used (expected groups dividing the experts, at most 256, keeping >= %u experts)",
                           path, hp->n_group, hp->n_group_used, hp->n_expert, hp->n_used, hp->n_used);
    }
    *ahp = (mla_hparams){
        .n_head = (int)n_head, .q_lora = (int)q_lora, .kv_lora = (int)kv_lora, .n_nope = (int)(k_mla - n_rot),
        .n_rot = (int)n_rot, .n_v = (int)v_mla, .eps = hp->eps,
    };
    return ds2_rope_load(f, ahp, hp->n_ctx_train, e);
}

static void ds2_free(void *mp)
{
    ds2_model *m = mp;
    if (!m) return;
    free(m->layers);
    free(m->lb.layers);
    free(m);
}

static int bind_attn(binder *b, const ds2_hparams *hp, const mla_hparams *a, mla_weights *w, uint32_t l)
{
    const uint64_t E = hp->n_embd, H = (uint64_t)a->n_head, QK = (uint64_t)(a->n_nope + a->n_rot);
    const uint64_t L = (uint64_t)a->kv_lora, R = (uint64_t)a->n_rot, V = (uint64_t)a->n_v;
    if (a->q_lora) {
        if (bind_weight(b, &w->q_a, 1, 2, (uint64_t[]){ E, (uint64_t)a->q_lora }, "blk.%u.attn_q_a.weight", l) ||
            bind_weight(b, &w->q_a_norm, 1, 1, (uint64_t[]){ (uint64_t)a->q_lora }, "blk.%u.attn_q_a_norm.weight", l) ||
            bind_check_f32(b, &w->q_a_norm) ||
            bind_weight(b, &w->q_b, 1, 2, (uint64_t[]){ (uint64_t)a->q_lora, H * QK }, "blk.%u.attn_q_b.weight", l))
            return -1;
    } else if (bind_weight(b, &w->q, 1, 2, (uint64_t[]){ E, H * QK }, "blk.%u.attn_q.weight", l)) {
        return -1;
    }
    return bind_weight(b, &w->kv_a, 1, 2, (uint64_t[]){ E, L + R }, "blk.%u.attn_kv_a_mqa.weight", l) ||
           bind_weight(b, &w->kv_a_norm, 1, 1, (uint64_t[]){ L }, "blk.%u.attn_kv_a_norm.weight", l) ||
           bind_check_f32(b, &w->kv_a_norm) ||
           bind_weight(b, &w->k_b, 1, 3, (uint64_t[]){ (uint64_t)a->n_nope, L, H }, "blk.%u.attn_k_b.weight", l) ||
           bind_weight(b, &w->v_b, 1, 3, (uint64_t[]){ L, V, H }, "blk.%u.attn_v_b.weight", l) ||
           bind_weight(b, &w->wo, 1, 2, (uint64_t[]){ H * V, E }, "blk.%u.attn_output.weight", l)
               ? -1 : 0;
}

static int bind_ffn(binder *b, const ds2_hparams *hp, ds2_layer *L, uint32_t l)
{
    const uint64_t E = hp->n_embd, N = hp->n_expert, F = hp->n_ff_exp;
    if (l < hp->n_dense)
        return bind_weight(b, &L->ffn_gate, 1, 2, (uint64_t[]){ E, hp->n_ff }, "blk.%u.ffn_gate.weight", l) ||
               bind_weight(b, &L->ffn_up, 1, 2, (uint64_t[]){ E, hp->n_ff }, "blk.%u.ffn_up.weight", l) ||
               bind_weight(b, &L->ffn_down, 1, 2, (uint64_t[]){ hp->n_ff, E }, "blk.%u.ffn_down.weight", l)
                   ? -1 : 0;
    if (bind_weight(b, &L->router, 1, 2, (uint64_t[]){ E, N }, "blk.%u.ffn_gate_inp.weight", l) ||
        bind_weight(b, &L->sel_bias, 0, 1, (uint64_t[]){ N }, "blk.%u.exp_probs_b.bias", l) ||
        bind_check_f32(b, &L->sel_bias))
        return -1;
    if (hp->n_shared) {
        const uint64_t S = F * hp->n_shared;
        if (bind_weight(b, &L->sh_gate, 1, 2, (uint64_t[]){ E, S }, "blk.%u.ffn_gate_shexp.weight", l) ||
            bind_weight(b, &L->sh_up, 1, 2, (uint64_t[]){ E, S }, "blk.%u.ffn_up_shexp.weight", l) ||
            bind_weight(b, &L->sh_down, 1, 2, (uint64_t[]){ S, E }, "blk.%u.ffn_down_shexp.weight", l))
            return -1;
    }
    /* The routed experts are checked here but reached only through the store. */
    mf_weight chk;
    char name[96];
    snprintf(name, sizeof name, "blk.%u.ffn_gate_up_exps.weight", l);
    if (gguf_find_tensor(b->f, name)) {
        if (bind_weight(b, &chk, 1, 3, (uint64_t[]){ E, 2 * F, N }, "%s", name)) return -1;
    } else if (bind_weight(b, &chk, 1, 3, (uint64_t[]){ E, F, N }, "blk.%u.ffn_gate_exps.weight", l) ||
               bind_weight(b, &chk, 1, 3, (uint64_t[]){ E, F, N }, "blk.%u.ffn_up_exps.weight", l)) {
        return -1;
    }
    return bind_weight(b, &chk, 1, 3, (uint64_t[]){ F, E, N }, "blk.%u.ffn_down_exps.weight", l);
}

/* The layers as layer_batch.c sees them: leading dense layers, then
 * routed experts with their selection bias plus the shared experts. */
static int ds2_lb_init(ds2_model *m, int n_batch, mf_error *e)
{
    const ds2_hparams *hp = &m->hp;
    lb_model *lm = &m->lb;
    const ds2_layer *D = &m->layers[0], *M = &m->layers[hp->n_layer - 1];
    const mla_weights *A = &D->attn;
    *lm = (lb_model){
        LB_MODEL_COMMON(m, hp, n_batch), .n_ff = (size_t)hp->n_ff_exp * hp->n_shared,
        .w = { m->ahp.q_lora ? &A->q_a : &A->q, &A->q_b, &A->kv_a, &A->wo, &D->ffn_gate, &D->ffn_down, &M->router,
               &M->sh_down },
        .n_w = 8,
    };
    if (hp->n_dense && hp->n_ff > lm->n_ff) lm->n_ff = hp->n_ff;
    if (lb_layers_new(lm, mla_batch_floats(&m->ahp, lm->batch), e)) return -1;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const ds2_layer *L = &m->layers[l];
        lb_layer *B = &lm->layers[l];
        *B = (lb_layer){ .attn_norm = L->attn_norm.data, .ffn_norm = L->ffn_norm.data, .hp = m->mhp };
        if (l < hp->n_dense) {
            B->ffn = (lb_ffn){ &L->ffn_gate, &L->ffn_up, &L->ffn_down, NULL, NULL, NULL };
            continue;
        }
        B->router = &L->router;
        B->hp.sel_bias = L->sel_bias.data;   /* NULL when the layer has none */
        if (hp->n_shared) B->ffn = (lb_ffn){ &L->sh_gate, &L->sh_up, &L->sh_down, NULL, NULL, NULL };
    }
    return 0;
}

static void *ds2_load(arch_ctx *ctx, arch_info *info, mf_error *e)
{
    const gguf_file *f = ctx->f;
    ds2_model *m = calloc(1, sizeof *m);
    if (!m) { mf_fail(e, "out of memory"); return NULL; }
    ds2_hparams *hp = &m->hp;
    if (ds2_hparams_load(f, hp, &m->ahp, e) || arch_experts_used(ctx, &hp->n_used, e)) goto fail;
    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers) { mf_fail(e, "out of memory"); goto fail; }

    binder b = { f, e, 0 };
    const uint64_t E = hp->n_embd;
    if (dec_bind_ends(&b, E, &m->tok_embd, &m->output_norm, &m->output, &hp->n_vocab)) goto fail;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        ds2_layer *L = &m->layers[l];
        if (bind_weight(&b, &L->attn_norm, 1, 1, (uint64_t[]){ E }, "blk.%u.attn_norm.weight", l) ||
            bind_weight(&b, &L->ffn_norm, 1, 1, (uint64_t[]){ E }, "blk.%u.ffn_norm.weight", l) ||
            bind_check_f32(&b, &L->attn_norm) || bind_check_f32(&b, &L->ffn_norm) ||
            bind_attn(&b, hp, &m->ahp, &L->attn, l) || bind_ffn(&b, hp, L, l))
            goto fail;
    }
    if (arch_open_store(ctx, hp->n_layer, hp->n_expert, hp->n_used, e)) goto fail;
    m->store = ctx->store;
    m->pool = ctx->pool;
    m->mhp = (moe_hparams){
        .n_expert = (int)hp->n_expert, .n_used = (int)hp->n_used, .n_embd = (int)hp->n_embd, .n_ff = (int)hp->n_ff_exp,
        .gating = hp->gating == 2 ? MOE_SIGMOID : MOE_SOFTMAX, .n_group = (int)hp->n_group,
        .n_group_used = (int)hp->n_group_used, .norm_topk = hp->weights_norm, .weights_scale = hp->weights_scale,
        .act = MOE_SWIGLU,
    };
    if (ds2_lb_init(m, ctx->n_batch, e)) goto fail;
    *info = (arch_info){ hp->n_vocab, hp->n_embd, hp->n_layer, hp->n_ctx_train, hp->n_expert, hp->n_used };
    return m;
fail:
    ds2_free(m);
    return NULL;
}

static void ds2_state_free(void *sp)
{
    ds2_state *s = sp;
    if (!s) return;
    free(s->kv);
    free(s->buf);
    free(s->as.att);
    moe_scratch_ids_free(&s->ms);
    lb_free(&s->lb);
    free(s);
}

static int ds2_state_reserve(void *sp, uint32_t n, mf_error *e)
{
    ds2_state *s = sp;
    const ds2_model *m = s->m;
    uint32_t want = 0;
    if (kv_grow_rows(s->n_alloc, s->n_ctx, n, &want, e)) return -1;
    if (want == s->n_alloc) return 0;
    const size_t R = mla_kv_row(&m->ahp), NL = m->hp.n_layer;
    float *kv = calloc(NL * want * R, sizeof(float));
    float *att = calloc((size_t)m->ahp.n_head * want, sizeof(float));
    if (!kv || !att) {
        free(kv), free(att);
        return mf_fail(e, "out of memory for a latent KV cache of %u positions (%zu bytes)", want,
                       NL * want * R * sizeof(float));
    }
    /* Layer-major, so growing re-packs it. */
    for (size_t l = 0; l < NL && s->n_alloc; l++)
        memcpy(kv + l * want * R, s->kv + l * s->n_alloc * R, s->n_alloc * R * sizeof(float));
    free(s->kv), free(s->as.att);
    s->kv = kv, s->as.att = att;
    s->n_alloc = want;
    return 0;
}

static void *ds2_state_new(void *mp, uint32_t n_ctx, mf_error *e)
{
    ds2_model *m = mp;
    const ds2_hparams *hp = &m->hp;
    ds2_state *s = calloc(1, sizeof *s);
    if (!s) { mf_fail(e, "out of memory"); return NULL; }
    s->m = m;
    s->n_ctx = n_ctx;
    const size_t E = hp->n_embd, N = hp->n_expert, K = hp->n_used, F = hp->n_ff_exp;
    size_t FF = (size_t)hp->n_ff_exp * hp->n_shared;
    if (hp->n_dense && hp->n_ff > FF) FF = hp->n_ff;
    const size_t nf = 4 * E + 2 * FF + mla_scratch_floats(&m->ahp) + moe_scratch_floats((int)N, (int)K, (int)F, (int)E, 1);
    s->buf = calloc(nf, sizeof(float));
    if (!s->buf || moe_scratch_ids_alloc(&s->ms, (int)K)) { ds2_state_free(s); mf_fail(e, "out of memory"); return NULL; }
    float *p = s->buf;
    s->x = p, p += E;
    s->h = p, p += E;
    s->tmp = p, p += E;
    s->sh = p, p += E;
    s->fg = p, p += FF;
    s->fu = p, p += FF;
    mla_scratch_bind(&m->ahp, &s->as, p);
    p += mla_scratch_floats(&m->ahp);
    moe_scratch_lay(&s->ms, p, (int)N, (int)K, (int)F, (int)E, 1);
    if (ds2_state_reserve(s, n_ctx < 256 ? n_ctx : 256, e)) { ds2_state_free(s); return NULL; }
    return s;
}

/* The attention of layer l for the token at pos (lb_forward): MLA. */
static void ds2_attn(void *mp, void *sp, uint32_t l, uint32_t pos, const float *h, float *out)
{
    ds2_model *m = mp;
    ds2_state *s = sp;
    const size_t R = mla_kv_row(&m->ahp);
    mla_forward(m->pool, &m->ahp, &m->layers[l].attn, s->kv + (size_t)l * s->n_alloc * R, pos, h, &s->as, out);
}

static int ds2_forward(void *mp, void *sp, int32_t token, uint32_t pos, float *logits, mf_error *e)
{
    ds2_model *m = mp;
    ds2_state *s = sp;
    if (ds2_state_reserve(s, pos + 1, e)) return -1;
    const lb_token t = { s->x, s->h, s->tmp, s->fg, s->fu, s->sh, &s->ms };
    return lb_forward(&m->lb, &t, ds2_attn, m, s, token, pos, logits, e);
}

/* MLA of layer l over the T tokens of a chunk (lb_run). */
static void ds2_attn_batch(void *mp, void *sp, uint32_t l, uint32_t p0, int T, lb_scratch *b)
{
    ds2_model *m = mp;
    ds2_state *s = sp;
    const size_t E = m->hp.n_embd, R = mla_kv_row(&m->ahp);
    mla_forward_batch(m->pool, &m->ahp, &m->layers[l].attn, s->kv + (size_t)l * s->n_alloc * R, p0, T, b->H, E, b->A,
                      s->as.att, b->q, b->qcap, b->Y, E);
}

static int ds2_forward_batch(void *mp, void *sp, const int32_t *tokens, int n, uint32_t pos0, float *all, float *last,
                             mf_error *e)
{
    ds2_model *m = mp;
    ds2_state *s = sp;
    if (ds2_state_reserve(s, pos0 + (uint32_t)n, e)) return -1;
    return lb_run(&m->lb, &s->lb, ds2_attn_batch, m, s, tokens, n, pos0, all, last, e);
}

const arch_ops arch_deepseek2 = {
    .name = "deepseek2",
    .load = ds2_load,
    .free = ds2_free,
    .state_new = ds2_state_new,
    .state_free = ds2_state_free,
    .state_truncate = kv_truncate_free,
    .state_reserve = ds2_state_reserve,
    .forward = ds2_forward,
    .forward_batch = ds2_forward_batch,
};
