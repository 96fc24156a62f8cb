/* synth_archs.c — synthetic random-weight models of the qwen35moe,
 * deepseek2 and gpt-oss architectures, shaped like Qwen3.5-35B-A3B,
 * DeepSeek-V3 and gpt-oss-120b (or tiny versions of the same layout for
 * the tests), for `moeflash bench --synthetic` and `demo --model`.
 *
 * The one idea is synth.c's: quantized weights are written directly as
 * random blocks whose fixed scales give the wanted spread, not quantized
 * from floats, so a 20 GB model is written at disk speed. Types follow the
 * quantizers: Q4_K for large matrices whose rows are whole super-blocks,
 * Q8_0 where a row is not (gpt-oss's 2880-wide rows, MLA's 128-wide
 * attn_k_b), F32 for norms, biases, routers and other small tensors, MXFP4
 * for gpt-oss's experts (as its GGUF releases ship them). Spreads follow
 * golden/README.md's recipes for these architectures (as standard
 * deviations of uniform values): linear weights scale / sqrt(fan_in) with
 * output projections x0.3, routers x1.6, the output head x2.5, norms
 * 1 + small noise, so routing stays token dependent and spread over the
 * experts. Everything is deterministic from
 * the seed and the tensor name. This file only writes files through the
 * GGUF writer; the architectures' loaders decide whether they are right.
 */
#include "moeflash.h"
#include "gguf.h"
#include "quant/quant.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { SA_QWEN35, SA_DEEPSEEK2, SA_GPTOSS } sa_arch;

typedef struct sa_shape {
    const char *name;
    sa_arch arch;
    uint32_t n_layer, n_embd, n_vocab, n_ctx;
    uint32_t n_head, n_head_kv, head_dim, n_rot;
    uint32_t n_expert, n_used, n_ff_exp, n_ff_shexp;
    float freq_base, eps;
    /* qwen35moe: Gated DeltaNet */
    uint32_t fa_interval, d_conv, d_k, n_k_heads, n_v_heads, d_v;
    /* deepseek2: MLA, leading dense layers, grouped routing */
    uint32_t q_lora, kv_lora, n_nope, n_v, n_dense, n_ff, n_group, n_group_used, n_shared;
    /* YaRN (deepseek2, gpt-oss) */
    float yarn_factor;
    uint32_t yarn_orig;
    /* gpt-oss */
    uint32_t n_swa;
} sa_shape;

/* Sources of the full-size shapes:
 * - Qwen3.5-35B-A3B: the model card (40 layers = 10 x (3 Gated DeltaNet +
 *   1 gated attention), hidden 2048, DeltaNet 16 q/k and 32 v heads of 128,
 *   attention 16 q / 2 kv heads of 256, rotary 64 dims, 256 experts, 8
 *   routed + 1 shared, expert width 512, vocab 248320 padded) and its HF
 *   config (shared_expert_intermediate_size 512, rope_theta 1e7,
 *   mrope_section [11, 11, 10], conv kernel 4, rms eps 1e-6, untied).
 * - DeepSeek-V3: its HF config (61 layers, first_k_dense_replace 3 with
 *   intermediate 18432, hidden 7168, 128 heads, q_lora 1536, kv_lora 512,
 *   qk_rope 64, qk_nope 128, v 128, 256 experts top-8 in 8 groups top-4,
 *   width 2048, 1 shared, routed_scaling_factor 2.5, sigmoid scoring with
 *   the correction bias, YaRN factor 40 over 4096, vocab 129280).
 * - gpt-oss-120b: the model card and HF config (36 layers, hidden 2880,
 *   64 q / 8 kv heads of 64, 128 experts top-4, width 2880, sliding window
 *   128 on alternate layers, sinks, YaRN factor 32 over 4096, rope_theta
 *   150000, rms eps 1e-5, vocab 201088).
 * The tiny presets keep each layout (every kind of layer and tensor) at
 * widths whose files are a few MB. */
static const sa_shape presets[] = {
    { .name = "qwen35-35b-a3b", .arch = SA_QWEN35, .n_layer = 40, .n_embd = 2048, .n_vocab = 248320, .n_ctx = 262144,
      .n_head = 16, .n_head_kv = 2, .head_dim = 256, .n_rot = 64, .n_expert = 256, .n_used = 8, .n_ff_exp = 512,
      .n_ff_shexp = 512, .freq_base = 1e7f, .eps = 1e-6f, .fa_interval = 4, .d_conv = 4, .d_k = 128,
      .n_k_heads = 16, .n_v_heads = 32, .d_v = 128 },
    { .name = "qwen35-tiny", .arch = SA_QWEN35, .n_layer = 2, .n_embd = 256, .n_vocab = 1024, .n_ctx = 4096,
      .n_head = 4, .n_head_kv = 2, .head_dim = 64, .n_rot = 16, .n_expert = 16, .n_used = 4, .n_ff_exp = 256,
      .n_ff_shexp = 256, .freq_base = 1e7f, .eps = 1e-6f, .fa_interval = 2, .d_conv = 4, .d_k = 64,
      .n_k_heads = 2, .n_v_heads = 4, .d_v = 64 },
    { .name = "deepseek-v3", .arch = SA_DEEPSEEK2, .n_layer = 61, .n_embd = 7168, .n_vocab = 129280, .n_ctx = 163840,
      .n_head = 128, .n_rot = 64, .n_expert = 256, .n_used = 8, .n_ff_exp = 2048, .freq_base = 10000.0f, .eps = 1e-6f,
      .q_lora = 1536, .kv_lora = 512, .n_nope = 128, .n_v = 128, .n_dense = 3, .n_ff = 18432, .n_group = 8,
      .n_group_used = 4, .n_shared = 1, .yarn_factor = 40.0f, .yarn_orig = 4096 },
    { .name = "deepseek-v3-tiny", .arch = SA_DEEPSEEK2, .n_layer = 2, .n_embd = 256, .n_vocab = 1024, .n_ctx = 163840,
      .n_head = 4, .n_rot = 32, .n_expert = 32, .n_used = 8, .n_ff_exp = 256, .freq_base = 10000.0f, .eps = 1e-6f,
      .q_lora = 256, .kv_lora = 256, .n_nope = 32, .n_v = 32, .n_dense = 1, .n_ff = 512, .n_group = 8,
      .n_group_used = 4, .n_shared = 1, .yarn_factor = 40.0f, .yarn_orig = 4096 },
    { .name = "gpt-oss-120b", .arch = SA_GPTOSS, .n_layer = 36, .n_embd = 2880, .n_vocab = 201088, .n_ctx = 131072,
      .n_head = 64, .n_head_kv = 8, .head_dim = 64, .n_rot = 64, .n_expert = 128, .n_used = 4, .n_ff_exp = 2880,
      .freq_base = 150000.0f, .eps = 1e-5f, .yarn_factor = 32.0f, .yarn_orig = 4096, .n_swa = 128 },
    { .name = "gpt-oss-tiny", .arch = SA_GPTOSS, .n_layer = 2, .n_embd = 256, .n_vocab = 1024, .n_ctx = 131072,
      .n_head = 4, .n_head_kv = 2, .head_dim = 64, .n_rot = 64, .n_expert = 16, .n_used = 4, .n_ff_exp = 256,
      .freq_base = 150000.0f, .eps = 1e-5f, .yarn_factor = 32.0f, .yarn_orig = 4096, .n_swa = 8 },
};

/* ---- random blocks ---- */

typedef enum { GEN_UNIFORM, GEN_SSM_A, GEN_DT_BIAS } sa_gen;

typedef struct sa_tensor {
    sa_gen gen;
    uint32_t type;
    float std, mean;          /* uniform values of this mean and spread */
    uint64_t seed;
    uint64_t row_elems;
    uint64_t zero_rows;       /* rows below this are zero (the output rows of the byte tokens) */
} sa_tensor;

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash_name(const char *s, uint64_t seed)
{
    uint64_t h = 1469598103934665603ull ^ seed;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return mix(h);
}

/* xorshift64*, one stream per tensor */
static inline uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* uniform in [0, 1) and in [-1, 1) */
static inline float u01(uint64_t *s) { return (float)(rnd(s) >> 40) * (1.0f / (float)(1u << 24)); }
static inline float urand(uint64_t *s) { return 2.0f * u01(s) - 1.0f; }

/* One F32 value of a tensor. Gated DeltaNet's decay and step follow the
 * golden recipe (Qwen3-Next / Mamba2 initialisation): A = exp(A_log)
 * log-uniform in [1, 8], stored as ssm_a = -A; dt = softplus(dt_bias)
 * log-uniform in [0.01, 0.1], stored as dt_bias = ln(e^dt - 1). */
static float f32_value(const sa_tensor *t, uint64_t *s)
{
    switch (t->gen) {
    case GEN_SSM_A: return -expf(u01(s) * logf(8.0f));
    case GEN_DT_BIAS: {
        float dt = expf(logf(0.01f) + u01(s) * logf(10.0f));
        return logf(expm1f(dt));
    }
    default: return t->mean + t->std * 1.7320508f * urand(s);
    }
}

/* E2M1 codes doubled, the GGUF MXFP4 table: a uniform random nibble has
 * mean 0 and E[K^2] = 2 (0+1+4+9+16+36+64+144) / 16 = 34.25. */
#define MXFP4_K2 34.25f

static int sa_fill(void *ctx, const char *name, void *dst, uint64_t nbytes, mf_error *e)
{
    const sa_tensor *t = ctx;
    uint64_t s = t->seed | 1;
    const uint64_t zero_elems = t->zero_rows * t->row_elems;
    switch (t->type) {
    case MF_TYPE_F32: {
        float *v = dst;
        for (uint64_t i = 0; i < nbytes / 4; i++) v[i] = i < zero_elems ? 0.0f : f32_value(t, &s);
        return 0;
    }
    case MF_TYPE_Q8_0: {
        block_q8_0 *b = dst;
        const uint64_t n = nbytes / sizeof *b;
        /* uniform int8 in [-127, 127]: std = d 127 / sqrt(3) */
        const mf_fp16 d = quant_f32_to_fp16(t->std * 1.7320508f / 127.0f);
        for (uint64_t i = 0; i < n; i++) {
            b[i].d = i * QK8_0 < zero_elems ? 0 : d;
            for (int j = 0; j < QK8_0; j += 8) {
                uint64_t r = rnd(&s);
                for (int k = 0; k < 8; k++) {
                    int q = (int)((r >> (8 * k)) & 0xff) - 128;
                    b[i].qs[j + k] = (int8_t)(q < -127 ? -127 : q);
                }
            }
        }
        return 0;
    }
    case MF_TYPE_Q4_K: {
        block_q4_K *b = dst;
        const uint64_t n = nbytes / sizeof *b;
        /* synth.c's block: every 6-bit sub-block scale and min is 32, so a
         * value is a q - 7.5 a with q uniform in 0..15: mean 0, std
         * a sqrt(255/12). scales[0..7] = 32 | 2 << 6 packs 32 in the low six
         * bits of sub-blocks 0-3 and the high two bits of sub-blocks 4-7. */
        const float a = t->std / sqrtf(255.0f / 12.0f);
        const mf_fp16 d = quant_f32_to_fp16(a / 32.0f), dmin = quant_f32_to_fp16(7.5f * a / 32.0f);
        for (uint64_t i = 0; i < n; i++) {
            const int zero = i * QK_K < zero_elems;
            b[i].d = zero ? 0 : d;
            b[i].dmin = zero ? 0 : dmin;
            for (int j = 0; j < 8; j++) b[i].scales[j] = 32 | (2 << 6);
            for (int j = 8; j < K_SCALE_SIZE; j++) b[i].scales[j] = 0;
            for (int j = 0; j < QK_K / 2; j += 8) {
                uint64_t r = rnd(&s);
                memcpy(b[i].qs + j, &r, 8);
            }
        }
        return 0;
    }
    case MF_TYPE_MXFP4: {
        block_mxfp4 *b = dst;
        const uint64_t n = nbytes / sizeof *b;
        /* A block's scale is a power of two, 2^(e - 128): per block the
         * lower (lo) or the next one, with the probability p of lo chosen
         * so that the mean square over blocks is std^2:
         * p lo^2 + (1 - p) 4 lo^2 = target, target = std^2 / K2. Real
         * checkpoints vary their block scales too. */
        const float target = t->std * t->std / MXFP4_K2;
        int ex = (int)floorf(0.5f * log2f(target));
        if (ex < -127) ex = -127;
        if (ex > 126) ex = 126;
        const float lo2 = ldexpf(1.0f, 2 * ex);
        float p_lo = (4.0f * lo2 - target) / (3.0f * lo2);
        p_lo = p_lo < 0 ? 0 : p_lo > 1 ? 1 : p_lo;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t r0 = rnd(&s), r1 = rnd(&s);
            b[i].e = (uint8_t)(128 + ex + (u01(&s) < p_lo ? 0 : 1));
            memcpy(b[i].qs, &r0, 8);
            memcpy(b[i].qs + 8, &r1, 8);
            if (i * QK_MXFP4 < zero_elems) memset(b[i].qs, 0, sizeof b[i].qs);
        }
        return 0;
    }
    default:
        return mf_fail(e, "synthetic model: tensor %s: type %u cannot be generated (f32, q8_0, q4_K or mxfp4)", name,
                       t->type);
    }
}

/* ---- the model being built ---- */

typedef struct sa_build {
    gguf_writer *w;
    const sa_shape *s;
    const char *arch;         /* GGUF architecture name */
    sa_tensor *t;
    size_t n, cap;
    uint64_t seed;
    int rc;
    mf_error *e;
} sa_build;

/* The type a quantizer would give a matrix with rows of ne0 values: the
 * wanted one when a row is whole blocks of it, else Q8_0, else F32. */
static uint32_t fit_type(uint32_t want, uint64_t ne0)
{
    if (want == MF_TYPE_Q4_K && ne0 % QK_K == 0) return want;
    if ((want == MF_TYPE_Q4_K || want == MF_TYPE_Q8_0) && ne0 % QK8_0 == 0) return MF_TYPE_Q8_0;
    if (want == MF_TYPE_MXFP4 && ne0 % QK_MXFP4 == 0) return want;
    return MF_TYPE_F32;
}

/* Adds tensor fmt(l) of shape {ne0, ne1, ne2} (trailing zeros: fewer
 * dimensions) with values of the given spread and mean. */
static sa_tensor *add(sa_build *b, uint32_t type, float std, float mean, uint64_t ne0, uint64_t ne1, uint64_t ne2,
                      const char *fmt, ...)
{
    if (b->rc) return NULL;
    if (b->n == b->cap) {
        b->rc = mf_fail(b->e, "synthetic model: more tensors than planned (%zu)", b->cap);
        return NULL;
    }
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    uint64_t ne[3] = { ne0, ne1, ne2 };
    uint32_t nd = ne2 ? 3 : ne1 ? 2 : 1;
    sa_tensor *t = &b->t[b->n++];
    *t = (sa_tensor){ .gen = GEN_UNIFORM, .type = fit_type(type, ne0), .std = std, .mean = mean,
                      .seed = hash_name(name, b->seed), .row_elems = ne0 };
    b->rc = gguf_w_tensor_fill(b->w, name, t->type, nd, ne, sa_fill, t, b->e);
    return b->rc ? NULL : t;
}

/* Shorthands: a linear weight of spread scale / sqrt(fan_in), a norm
 * weight 1 +- 0.05, an F32 vector of the given spread and mean. */
#define LIN(type, scale, fan_in, ne0, ne1, ne2, ...) \
    add(b, type, (scale) / sqrtf((float)(fan_in)), 0.0f, ne0, ne1, ne2, __VA_ARGS__)
#define NORM(n, ...) add(b, MF_TYPE_F32, 0.05f, 1.0f, n, 0, 0, __VA_ARGS__)
#define VEC(std, mean, n, ...) add(b, MF_TYPE_F32, std, mean, n, 0, 0, __VA_ARGS__)

static void key_u32(sa_build *b, const char *suffix, uint32_t v)
{
    char k[128];
    gguf_w_u32(b->w, gguf_arch_key(k, sizeof k, b->arch, suffix), v);
}

static void key_f32(sa_build *b, const char *suffix, float v)
{
    char k[128];
    gguf_w_f32(b->w, gguf_arch_key(k, sizeof k, b->arch, suffix), v);
}

static void key_yarn(sa_build *b)
{
    char k[128];
    gguf_w_str(b->w, gguf_arch_key(k, sizeof k, b->arch, "rope.scaling.type"), "yarn");
    key_f32(b, "rope.scaling.factor", b->s->yarn_factor);
    key_u32(b, "rope.scaling.original_context_length", b->s->yarn_orig);
    key_f32(b, "rope.scaling.yarn_beta_fast", 32.0f);
    key_f32(b, "rope.scaling.yarn_beta_slow", 1.0f);
}

/* The keys every architecture has, in the converters' order. */
static void keys_common(sa_build *b, const char *preset)
{
    const sa_shape *s = b->s;
    char name[96];
    snprintf(name, sizeof name, "moeflash-synthetic-%s", preset);
    gguf_w_str(b->w, "general.architecture", b->arch);
    gguf_w_str(b->w, "general.type", "model");
    gguf_w_str(b->w, "general.name", name);
    key_u32(b, "block_count", s->n_layer);
    key_u32(b, "context_length", s->n_ctx);
    key_u32(b, "embedding_length", s->n_embd);
}

/* ---- vocabulary ---- */

/* 256 byte tokens in GPT-2 bytes_to_unicode order (as in the golden
 * vocabulary), pseudo-words " ka", " lomi", ... (a leading space marker
 * and syllables in bijective base 20, so all distinct), three control
 * tokens last. No merges: the text of a prompt tokenizes to bytes, and
 * generated text reads as words. Tokens are looked up by id only, so the
 * vocabulary can have the real size of each model. */
static int sa_vocab(sa_build *b, const char *pre, uint32_t *n_byte_tokens)
{
    static const char *const syl[20] = { "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de", "va",
                                          "shi", "ro", "ze", "bu", "fa", "gi", "ho", "ju", "ke", "an" };
    const uint32_t V = b->s->n_vocab;
    if (V < 260) return mf_fail(b->e, "synthetic model: vocab %u is smaller than 256 bytes + 3 control tokens", V);
    char **tok = calloc(V, sizeof *tok);
    int32_t *type = calloc(V, sizeof *type);
    if (!tok || !type) { free(tok), free(type); return mf_fail(b->e, "out of memory"); }
    int order[256], k = 0, rc = 0;
    int direct[256] = { 0 };
    for (int c = '!'; c <= '~'; c++) direct[c] = 1;
    for (int c = 0xa1; c <= 0xac; c++) direct[c] = 1;
    for (int c = 0xae; c <= 0xff; c++) direct[c] = 1;
    for (int c = 0; c < 256; c++) if (direct[c]) order[k++] = c;
    int cp_of[256], extra = 0;
    for (int c = 0; c < 256; c++) cp_of[c] = direct[c] ? c : 256 + extra++;
    for (int c = 0; c < 256; c++) if (!direct[c]) order[k++] = c;
    for (uint32_t i = 0; i < V && !rc; i++) {
        char buf[64];
        type[i] = 1;
        if (i < 256) {
            int cp = cp_of[order[i]];
            if (cp < 0x80) buf[0] = (char)cp, buf[1] = 0;
            else buf[0] = (char)(0xc0 | (cp >> 6)), buf[1] = (char)(0x80 | (cp & 0x3f)), buf[2] = 0;
        } else if (i >= V - 3) {
            static const char *const ctl[3] = { "<|endoftext|>", "<|im_start|>", "<|im_end|>" };
            snprintf(buf, sizeof buf, "%s", ctl[i - (V - 3)]);
            type[i] = 3;
        } else {
            size_t at = (size_t)snprintf(buf, sizeof buf, "\xc4\xa0"); /* U+0120 'Ġ': a leading space */
            char rev[8][4];
            int nd = 0;
            for (uint32_t x = i - 255; x > 0 && nd < 8; x = (x - 1) / 20) snprintf(rev[nd++], 4, "%s", syl[(x - 1) % 20]);
            while (nd > 0) at += (size_t)snprintf(buf + at, sizeof buf - at, "%s", rev[--nd]);
        }
        tok[i] = strdup(buf);
        if (!tok[i]) rc = mf_fail(b->e, "out of memory");
    }
    if (!rc) {
        const char *none[1] = { "" };
        gguf_w_str(b->w, "tokenizer.ggml.model", "gpt2");
        gguf_w_str(b->w, "tokenizer.ggml.pre", pre);
        gguf_w_arr_str(b->w, "tokenizer.ggml.tokens", (const char *const *)tok, V);
        gguf_w_arr_i32(b->w, "tokenizer.ggml.token_type", type, V);
        gguf_w_arr_str(b->w, "tokenizer.ggml.merges", none, 0);
        gguf_w_u32(b->w, "tokenizer.ggml.bos_token_id", V - 3);
        gguf_w_u32(b->w, "tokenizer.ggml.eos_token_id", V - 1);
        gguf_w_u32(b->w, "tokenizer.ggml.padding_token_id", V - 3);
        gguf_w_bool(b->w, "tokenizer.ggml.add_bos_token", false);
    }
    for (uint32_t i = 0; i < V; i++) free(tok[i]);
    free(tok);
    free(type);
    *n_byte_tokens = 256;
    return rc;
}

/* token_embd, output_norm and the output head (untied in all three). */
static void add_embeddings(sa_build *b, uint32_t dense_type, uint32_t n_byte_tokens)
{
    const uint64_t E = b->s->n_embd, V = b->s->n_vocab;
    add(b, dense_type, 1.0f, 0.0f, E, V, 0, "token_embd.weight");
    NORM(E, "output_norm.weight");
    sa_tensor *out = LIN(dense_type, 2.5f, E, E, V, 0, "output.weight");
    if (out) out->zero_rows = n_byte_tokens; /* generated text stays words */
}

/* Routed experts gate/up {E, F, N} and down {F, E, N}. */
static void add_experts(sa_build *b, uint32_t type, uint32_t l, float gate_scale, float down_scale)
{
    const sa_shape *s = b->s;
    const uint64_t E = s->n_embd, F = s->n_ff_exp, N = s->n_expert;
    LIN(type, gate_scale, E, E, F, N, "blk.%u.ffn_gate_exps.weight", l);
    LIN(type, gate_scale, E, E, F, N, "blk.%u.ffn_up_exps.weight", l);
    LIN(type, down_scale, F, F, E, N, "blk.%u.ffn_down_exps.weight", l);
}

/* ---- qwen35moe (models/qwen35moe.c, golden README "qwen35moe") ---- */

static void write_qwen35(sa_build *b)
{
    const sa_shape *s = b->s;
    const uint32_t Q4 = MF_TYPE_Q4_K;
    key_u32(b, "attention.head_count", s->n_head);
    key_u32(b, "attention.head_count_kv", s->n_head_kv);
    key_f32(b, "rope.freq_base", s->freq_base);
    key_f32(b, "attention.layer_norm_rms_epsilon", s->eps);
    key_u32(b, "expert_count", s->n_expert);
    key_u32(b, "expert_used_count", s->n_used);
    key_u32(b, "attention.key_length", s->head_dim);
    key_u32(b, "attention.value_length", s->head_dim);
    key_u32(b, "expert_feed_forward_length", s->n_ff_exp);
    key_u32(b, "expert_shared_feed_forward_length", s->n_ff_shexp);
    key_u32(b, "ssm.conv_kernel", s->d_conv);
    key_u32(b, "ssm.state_size", s->d_k);
    key_u32(b, "ssm.group_count", s->n_k_heads);
    key_u32(b, "ssm.time_step_rank", s->n_v_heads);
    key_u32(b, "ssm.inner_size", s->n_v_heads * s->d_v);
    key_u32(b, "full_attention_interval", s->fa_interval);
    key_u32(b, "rope.dimension_count", s->n_rot);
    /* the rotated pairs in three sections, as HF's mrope_section [11, 11,
     * 10] splits Qwen3.5's 32 (text positions use the same one in each) */
    const int32_t third = (int32_t)(s->n_rot / 2 + 2) / 3;
    int32_t sec[4] = { third, third, (int32_t)(s->n_rot / 2) - 2 * third, 0 };
    char k[128];
    gguf_w_arr_i32(b->w, gguf_arch_key(k, sizeof k, b->arch, "rope.dimension_sections"), sec, 4);
    uint32_t n_bytes;
    if ((b->rc = sa_vocab(b, "qwen35", &n_bytes))) return;
    add_embeddings(b, Q4, n_bytes);
    const uint64_t E = s->n_embd, HD = s->head_dim, Q = (uint64_t)s->n_head * HD, KV = (uint64_t)s->n_head_kv * HD;
    const uint64_t NV = s->n_v_heads, VD = NV * s->d_v, C = 2ull * s->n_k_heads * s->d_k + VD;
    for (uint32_t l = 0; l < s->n_layer && !b->rc; l++) {
        NORM(E, "blk.%u.attn_norm.weight", l);
        NORM(E, "blk.%u.post_attention_norm.weight", l);
        if ((l + 1) % s->fa_interval != 0) { /* Gated DeltaNet */
            LIN(Q4, 1.0f, E, E, C, 0, "blk.%u.attn_qkv.weight", l);
            LIN(Q4, 1.0f, E, E, VD, 0, "blk.%u.attn_gate.weight", l);
            add(b, MF_TYPE_F32, 0.5f, 0.0f, s->d_conv, C, 0, "blk.%u.ssm_conv1d.weight", l); /* N(0, 0.5^2) */
            sa_tensor *dt = VEC(0.0f, 0.0f, NV, "blk.%u.ssm_dt.bias", l);
            if (dt) dt->gen = GEN_DT_BIAS;
            sa_tensor *a = VEC(0.0f, 0.0f, NV, "blk.%u.ssm_a", l);
            if (a) a->gen = GEN_SSM_A;
            LIN(MF_TYPE_F32, 1.0f, E, E, NV, 0, "blk.%u.ssm_beta.weight", l);
            LIN(MF_TYPE_F32, 0.5f, E, E, NV, 0, "blk.%u.ssm_alpha.weight", l);
            NORM(s->d_v, "blk.%u.ssm_norm.weight", l);
            LIN(Q4, 0.3f, VD, VD, E, 0, "blk.%u.ssm_out.weight", l);
        } else { /* gated full attention: per head [q | gate] rows */
            LIN(Q4, 1.0f, E, E, 2 * Q, 0, "blk.%u.attn_q.weight", l);
            LIN(Q4, 1.0f, E, E, KV, 0, "blk.%u.attn_k.weight", l);
            LIN(Q4, 1.0f, E, E, KV, 0, "blk.%u.attn_v.weight", l);
            LIN(Q4, 0.3f, Q, Q, E, 0, "blk.%u.attn_output.weight", l);
            NORM(HD, "blk.%u.attn_q_norm.weight", l);
            NORM(HD, "blk.%u.attn_k_norm.weight", l);
        }
        LIN(MF_TYPE_F32, 1.6f, E, E, s->n_expert, 0, "blk.%u.ffn_gate_inp.weight", l);
        add_experts(b, Q4, l, 1.0f, 0.3f);
        LIN(MF_TYPE_F32, 1.0f, E, E, 0, 0, "blk.%u.ffn_gate_inp_shexp.weight", l);
        LIN(Q4, 1.0f, E, E, s->n_ff_shexp, 0, "blk.%u.ffn_gate_shexp.weight", l);
        LIN(Q4, 1.0f, E, E, s->n_ff_shexp, 0, "blk.%u.ffn_up_shexp.weight", l);
        LIN(Q4, 0.3f, s->n_ff_shexp, s->n_ff_shexp, E, 0, "blk.%u.ffn_down_shexp.weight", l);
    }
}

/* ---- deepseek2 (models/deepseek2.c, golden README "deepseek2") ---- */

static void write_deepseek2(sa_build *b)
{
    const sa_shape *s = b->s;
    const uint32_t Q4 = MF_TYPE_Q4_K;
    const uint64_t E = s->n_embd, H = s->n_head, R = s->n_rot, L = s->kv_lora, QK = (uint64_t)s->n_nope + R;
    key_u32(b, "feed_forward_length", s->n_ff);
    key_u32(b, "attention.head_count", s->n_head);
    key_u32(b, "attention.head_count_kv", 1); /* the absorbed MQA view of the latent */
    key_yarn(b);
    key_f32(b, "rope.freq_base", s->freq_base);
    key_f32(b, "attention.layer_norm_rms_epsilon", s->eps);
    key_u32(b, "expert_count", s->n_expert);
    key_u32(b, "expert_used_count", s->n_used);
    key_u32(b, "expert_group_count", s->n_group);
    key_u32(b, "expert_group_used_count", s->n_group_used);
    key_u32(b, "expert_gating_func", 2); /* sigmoid */
    key_u32(b, "leading_dense_block_count", s->n_dense);
    key_u32(b, "vocab_size", s->n_vocab);
    key_u32(b, "attention.q_lora_rank", s->q_lora);
    key_u32(b, "attention.kv_lora_rank", s->kv_lora);
    key_u32(b, "attention.key_length", s->kv_lora + s->n_rot);
    key_u32(b, "attention.value_length", s->kv_lora);
    key_u32(b, "attention.key_length_mla", s->n_nope + s->n_rot);
    key_u32(b, "attention.value_length_mla", s->n_v);
    key_u32(b, "expert_feed_forward_length", s->n_ff_exp);
    key_u32(b, "expert_shared_count", s->n_shared);
    key_f32(b, "expert_weights_scale", 2.5f); /* routed_scaling_factor */
    char k[128];
    gguf_w_bool(b->w, gguf_arch_key(k, sizeof k, b->arch, "expert_weights_norm"), true);
    key_u32(b, "rope.dimension_count", s->n_rot);
    key_f32(b, "rope.scaling.yarn_log_multiplier", 0.1f); /* 0.1 mscale_all_dim, which is 1 */
    uint32_t n_bytes;
    if ((b->rc = sa_vocab(b, "deepseek-v3", &n_bytes))) return;
    add_embeddings(b, Q4, n_bytes);
    const uint64_t SH = (uint64_t)s->n_ff_exp * s->n_shared;
    for (uint32_t l = 0; l < s->n_layer && !b->rc; l++) {
        NORM(E, "blk.%u.attn_norm.weight", l);
        LIN(Q4, 1.0f, E, E, s->q_lora, 0, "blk.%u.attn_q_a.weight", l);
        NORM(s->q_lora, "blk.%u.attn_q_a_norm.weight", l);
        LIN(Q4, 1.0f, s->q_lora, s->q_lora, H * QK, 0, "blk.%u.attn_q_b.weight", l);
        LIN(Q4, 1.0f, E, E, L + R, 0, "blk.%u.attn_kv_a_mqa.weight", l);
        NORM(L, "blk.%u.attn_kv_a_norm.weight", l);
        LIN(Q4, 1.0f, L, s->n_nope, L, H, "blk.%u.attn_k_b.weight", l); /* rows of n_nope: Q8_0 */
        LIN(Q4, 1.0f, L, L, s->n_v, H, "blk.%u.attn_v_b.weight", l);
        LIN(Q4, 0.3f, H * s->n_v, H * s->n_v, E, 0, "blk.%u.attn_output.weight", l);
        NORM(E, "blk.%u.ffn_norm.weight", l);
        if (l < s->n_dense) {
            LIN(Q4, 1.0f, E, E, s->n_ff, 0, "blk.%u.ffn_gate.weight", l);
            LIN(Q4, 1.0f, E, E, s->n_ff, 0, "blk.%u.ffn_up.weight", l);
            LIN(Q4, 0.3f, s->n_ff, s->n_ff, E, 0, "blk.%u.ffn_down.weight", l);
            continue;
        }
        LIN(MF_TYPE_F32, 1.6f, E, E, s->n_expert, 0, "blk.%u.ffn_gate_inp.weight", l);
        VEC(0.1f, 0.0f, s->n_expert, "blk.%u.exp_probs_b.bias", l);
        /* the mixing weights are normalised, then x2.5: down x0.3/2.5 */
        add_experts(b, Q4, l, 1.0f, 0.3f / 2.5f);
        LIN(Q4, 1.0f, E, E, SH, 0, "blk.%u.ffn_gate_shexp.weight", l);
        LIN(Q4, 1.0f, E, E, SH, 0, "blk.%u.ffn_up_shexp.weight", l);
        LIN(Q4, 0.3f, SH, SH, E, 0, "blk.%u.ffn_down_shexp.weight", l);
    }
}

/* ---- gpt-oss (models/gptoss.c, golden README "gpt-oss") ---- */

static void write_gptoss(sa_build *b)
{
    const sa_shape *s = b->s;
    /* llama-quantize's MXFP4_MOE and the gpt-oss GGUF releases: experts
     * MXFP4, every other matrix Q8_0 (its 2880-wide rows are not whole
     * K-quant super-blocks), biases, sinks, norms and the router F32. */
    const uint32_t Q8 = MF_TYPE_Q8_0;
    key_u32(b, "feed_forward_length", s->n_ff_exp);
    key_u32(b, "attention.head_count", s->n_head);
    key_u32(b, "attention.head_count_kv", s->n_head_kv);
    key_yarn(b);
    key_f32(b, "rope.freq_base", s->freq_base);
    key_f32(b, "attention.layer_norm_rms_epsilon", s->eps);
    key_u32(b, "expert_count", s->n_expert);
    key_u32(b, "expert_used_count", s->n_used);
    key_u32(b, "attention.key_length", s->head_dim);
    key_u32(b, "attention.value_length", s->head_dim);
    key_u32(b, "attention.sliding_window", s->n_swa); /* no pattern key: even layers slide */
    key_u32(b, "expert_feed_forward_length", s->n_ff_exp);
    uint32_t n_bytes;
    if ((b->rc = sa_vocab(b, "qwen2", &n_bytes))) return; /* o200k's own pre-tokenizer is not needed for ids */
    add_embeddings(b, Q8, n_bytes);
    const uint64_t E = s->n_embd, Q = (uint64_t)s->n_head * s->head_dim, KV = (uint64_t)s->n_head_kv * s->head_dim;
    const uint64_t F = s->n_ff_exp, N = s->n_expert;
    for (uint32_t l = 0; l < s->n_layer && !b->rc; l++) {
        NORM(E, "blk.%u.attn_norm.weight", l);
        LIN(Q8, 1.0f, E, E, Q, 0, "blk.%u.attn_q.weight", l);
        VEC(0.2f, 0.0f, Q, "blk.%u.attn_q.bias", l);
        LIN(Q8, 1.0f, E, E, KV, 0, "blk.%u.attn_k.weight", l);
        VEC(0.2f, 0.0f, KV, "blk.%u.attn_k.bias", l);
        LIN(Q8, 1.0f, E, E, KV, 0, "blk.%u.attn_v.weight", l);
        VEC(0.2f, 0.0f, KV, "blk.%u.attn_v.bias", l);
        LIN(Q8, 0.3f, Q, Q, E, 0, "blk.%u.attn_output.weight", l);
        VEC(0.05f, 0.0f, E, "blk.%u.attn_output.bias", l);
        VEC(1.0f, 1.0f, s->n_head, "blk.%u.attn_sinks.weight", l);
        NORM(E, "blk.%u.post_attention_norm.weight", l);
        LIN(MF_TYPE_F32, 1.6f, E, E, N, 0, "blk.%u.ffn_gate_inp.weight", l);
        VEC(0.3f, 0.0f, N, "blk.%u.ffn_gate_inp.bias", l);
        /* gate/up x3 so the clamped SwiGLU's +-7 limits are reached */
        LIN(MF_TYPE_MXFP4, 3.0f, E, E, F, N, "blk.%u.ffn_gate_exps.weight", l);
        add(b, MF_TYPE_F32, 0.5f, 0.0f, F, N, 0, "blk.%u.ffn_gate_exps.bias", l);
        LIN(MF_TYPE_MXFP4, 3.0f, E, E, F, N, "blk.%u.ffn_up_exps.weight", l);
        add(b, MF_TYPE_F32, 0.5f, 0.0f, F, N, 0, "blk.%u.ffn_up_exps.bias", l);
        LIN(MF_TYPE_MXFP4, 0.3f / 9.0f, F, F, E, N, "blk.%u.ffn_down_exps.weight", l);
        add(b, MF_TYPE_F32, 0.05f, 0.0f, E, N, 0, "blk.%u.ffn_down_exps.bias", l);
    }
}

/* ---- entry point ---- */

static const char *const arch_names[] = { "qwen35moe", "deepseek2", "gpt-oss" };

int mf_synth_write_arch(const char *preset, const char *path, int n_layer_override, mf_error *e)
{
    const sa_shape *p = NULL;
    for (size_t i = 0; preset && i < sizeof presets / sizeof presets[0]; i++)
        if (!strcmp(preset, presets[i].name)) p = &presets[i];
    if (!p) {
        char list[256] = "";
        for (size_t i = 0, at = 0; i < sizeof presets / sizeof presets[0] && at < sizeof list; i++)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", presets[i].name);
        return mf_fail(e, "synthetic model: unknown preset '%s' (expected %s)", preset ? preset : "(null)", list);
    }
    if (n_layer_override < 0 || n_layer_override > 4096)
        return mf_fail(e, "synthetic model: %d layers: expected 1..4096 (0: the preset's %u)", n_layer_override,
                       p->n_layer);
    if (!path) return 0; /* the name was checked */
    sa_shape s = *p;
    if (n_layer_override > 0 && (uint32_t)n_layer_override != s.n_layer) {
        s.n_layer = (uint32_t)n_layer_override;
        /* Fewer layers keep fewer leading dense ones (one per four layers,
         * at most the preset's) so that most of a short model is MoE. */
        if (s.arch == SA_DEEPSEEK2) {
            uint32_t d = s.n_layer < 2 ? 0 : s.n_layer / 4 < 1 ? 1 : s.n_layer / 4;
            s.n_dense = d < p->n_dense ? d : p->n_dense;
        }
    }
    sa_build b = { .w = gguf_writer_new(), .s = &s, .arch = arch_names[s.arch], .seed = 1234, .e = e };
    b.cap = 8 + (size_t)s.n_layer * 32;
    b.t = calloc(b.cap, sizeof *b.t);
    if (!b.w || !b.t) {
        gguf_writer_free(b.w);
        free(b.t);
        return mf_fail(e, "out of memory");
    }
    keys_common(&b, preset);
    if (s.arch == SA_QWEN35) write_qwen35(&b);
    else if (s.arch == SA_DEEPSEEK2) write_deepseek2(&b);
    else write_gptoss(&b);
    int rc = b.rc;
    if (!rc) {
        /* a temporary name, then rename: a killed writer leaves no half model */
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.partial", path);
        rc = gguf_w_write(b.w, tmp, 0, e);
        if (!rc && rename(tmp, path) != 0) rc = mf_fail(e, "%s: cannot rename from %s", path, tmp);
        if (rc) remove(tmp);
    }
    gguf_writer_free(b.w);
    free(b.t);
    return rc;
}
