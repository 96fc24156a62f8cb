/* synth.c — synthetic random-weight models for tests, benchmarks and the
 * demo, written with the project's GGUF writer.
 *
 * The one idea: quantized weights are generated directly as random blocks
 * (uniform quants under fixed sub-block scales chosen for the wanted
 * standard deviation), not by quantizing floats, so a 5 GB Q4_K model is
 * written at disk speed. The routed experts may also be Q2_K or IQ2_XXS
 * (random lattice indices and signs under one scale), for the low-bit
 * benchmark (`moeflash bench --synthetic qwen3-30b-a3b --experts iq2_xxs`). Scales follow the golden models' recipe
 * (golden/README.md): linear weights N(0, 1/fan_in) in spread, output
 * projections (attn_output, ffn_down) x0.3, router x1.6, output head x2,
 * norms 1 + small noise, so routing stays token dependent and spread over
 * the experts. Everything is deterministic from the seed and tensor name.
 * These scales also make the residual stream dominate the sub-layer
 * outputs, as in trained models (embedding rows of unit spread, attention
 * and expert outputs x0.3): the hidden state changes little from one layer
 * to the next, so the prefetch predictor (layer L+1's router applied after
 * layer L's attention) is right about as often as on real models, 89% of
 * the top-8 on the qwen3-30b-a3b preset, and the prefetch benchmark needs
 * no separate variant.
 */
#include "models/synth.h"
#include "gguf.h"
#include "quant/iq_tables.h"
#include "quant/quant.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct synth_tensor {
    float std;        /* spread of the values */
    float mean;       /* 1 for norm weights */
    uint64_t seed;
    uint64_t zero_rows_below;  /* output head: rows < this are zero (byte tokens of the demo vocab) */
    uint64_t row_elems;
} synth_tensor;

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

/* uniform in [-1, 1) */
static inline float urand(uint64_t *s) { return (float)((int64_t)(rnd(s) >> 11) - (1ll << 52)) * (1.0f / (float)(1ll << 52)); }

static int fill_tensor(void *ctx, const char *name, void *dst, uint64_t nbytes, mf_error *e);

/* Q2_K: all 16 sub-block scales and mins = 8: value = 8 d q - 8 dmin with
 * q uniform in 0..3 and dmin = 1.5 d, mean 0, std = 8 d sqrt(15/12). */
static void fill_q2_K(const synth_tensor *st, uint64_t *s, block_q2_K *b, uint64_t n)
{
    const float a = st->std / sqrtf(15.0f / 12.0f);
    const mf_fp16 d = quant_f32_to_fp16(a / 8.0f), dmin = quant_f32_to_fp16(1.5f * a / 8.0f);
    for (uint64_t i = 0; i < n; i++) {
        b[i].d = d;
        b[i].dmin = dmin;
        memset(b[i].scales, 8 | 8 << 4, sizeof b[i].scales);
        for (int j = 0; j < QK_K / 4; j += 8) {
            uint64_t r = rnd(s);
            memcpy(b[i].qs + j, &r, 8);
        }
    }
    uint64_t zb = st->zero_rows_below * st->row_elems / QK_K;
    for (uint64_t i = 0; i < zb && i < n; i++) b[i].d = b[i].dmin = 0;
}

/* Root mean square of the IQ2_XXS lattice's magnitudes (8, 25, 43) over
 * its 256 entries, which random indices pick uniformly. */
static float iq2xxs_grid_rms(void)
{
    double sq = 0;
    for (int i = 0; i < 256; i++)
        for (int j = 0; j < 8; j++) {
            const double g = quant_grid_byte(quant_iq2xxs_grid[i], j);
            sq += g * g;
        }
    return (float)sqrt(sq / 2048.0);
}

/* IQ2_XXS: random lattice indices and sign patterns, every sub-block scale
 * nibble 7: value = d (0.5 + 7) / 4 * grid * sign, mean 0 (random signs),
 * std = d * 1.875 * rms(grid). */
static void fill_iq2_xxs(const synth_tensor *st, uint64_t *s, block_iq2_xxs *b, uint64_t n)
{
    const uint32_t scale = 7;
    const float db = st->std / iq2xxs_grid_rms();
    const mf_fp16 d = quant_f32_to_fp16(db / ((0.5f + (float)scale) * 0.25f));
    for (uint64_t i = 0; i < n; i++) {
        b[i].d = d;
        uint8_t *q = (uint8_t *)b[i].qs;
        for (int ib = 0; ib < QK_K / 32; ib++, q += 8) {
            const uint64_t r = rnd(s);
            const uint32_t idx = (uint32_t)r, aux = (uint32_t)(r >> 32 & 0x0fffffff) | scale << 28;
            memcpy(q, &idx, 4);
            memcpy(q + 4, &aux, 4);
        }
    }
    uint64_t zb = st->zero_rows_below * st->row_elems / QK_K;
    for (uint64_t i = 0; i < zb && i < n; i++) b[i].d = 0;
}

typedef struct synth_ctx {
    synth_tensor *t;
    uint32_t type;
} synth_ctx;

static int fill_tensor(void *ctx, const char *name, void *dst, uint64_t nbytes, mf_error *e)
{
    synth_ctx *c = ctx;
    const synth_tensor *st = c->t;
    uint64_t s = st->seed | 1;
    const float sq3 = 1.7320508f;
    switch (c->type) {
    case MF_TYPE_F32: {
        float *v = dst;
        uint64_t n = nbytes / 4;
        for (uint64_t i = 0; i < n; i++) v[i] = st->mean + st->std * sq3 * urand(&s);
        for (uint64_t i = 0; i < st->zero_rows_below * st->row_elems && i < n; i++) v[i] = 0;
        return 0;
    }
    case MF_TYPE_F16: {
        mf_fp16 *v = dst;
        uint64_t n = nbytes / 2;
        for (uint64_t i = 0; i < n; i++) v[i] = quant_f32_to_fp16(st->mean + st->std * sq3 * urand(&s));
        for (uint64_t i = 0; i < st->zero_rows_below * st->row_elems && i < n; i++) v[i] = 0;
        return 0;
    }
    case MF_TYPE_Q8_0: {
        block_q8_0 *b = dst;
        uint64_t n = nbytes / sizeof *b;
        /* uniform int8 in [-127, 127]: std = d * 127 / sqrt(3) */
        mf_fp16 d = quant_f32_to_fp16(st->std * sq3 / 127.0f);
        for (uint64_t i = 0; i < n; i++) {
            b[i].d = d;
            for (int j = 0; j < QK8_0; j += 8) {
                uint64_t r = rnd(&s);
                for (int k = 0; k < 8; k++) {
                    int q = (int)((r >> (8 * k)) & 0xff) - 128;
                    b[i].qs[j + k] = (int8_t)(q < -127 ? -127 : q);
                }
            }
        }
        uint64_t zb = st->zero_rows_below * st->row_elems / QK8_0;
        for (uint64_t i = 0; i < zb && i < n; i++) b[i].d = 0;
        return 0;
    }
    case MF_TYPE_Q4_K: {
        block_q4_K *b = dst;
        uint64_t n = nbytes / sizeof *b;
        /* all 8 sub-block scales and mins = 32: value = a q - 7.5 a with q
         * uniform in 0..15, mean 0, std = a sqrt(255/12) */
        float a = st->std / sqrtf(255.0f / 12.0f);
        mf_fp16 d = quant_f32_to_fp16(a / 32.0f), dmin = quant_f32_to_fp16(7.5f * a / 32.0f);
        for (uint64_t i = 0; i < n; i++) {
            b[i].d = d;
            b[i].dmin = dmin;
            for (int j = 0; j < 8; j++) b[i].scales[j] = 32 | (2 << 6);
            for (int j = 8; j < 12; j++) b[i].scales[j] = 0;
            for (int j = 0; j < QK_K / 2; j += 8) {
                uint64_t r = rnd(&s);
                memcpy(b[i].qs + j, &r, 8);
            }
        }
        uint64_t zb = st->zero_rows_below * st->row_elems / QK_K;
        for (uint64_t i = 0; i < zb && i < n; i++) b[i].d = b[i].dmin = 0;
        return 0;
    }
    case MF_TYPE_Q2_K:
        fill_q2_K(st, &s, dst, nbytes / sizeof(block_q2_K));
        return 0;
    case MF_TYPE_IQ2_XXS:
        fill_iq2_xxs(st, &s, dst, nbytes / sizeof(block_iq2_xxs));
        return 0;
    default:
        return mf_fail(e, "synthetic model: tensor %s: type %s cannot be generated (use f32, f16, q8_0, q4_K, q2_K "
                       "or iq2_xxs)", name,
                       quant_type(c->type) ? quant_type(c->type)->name : "?");
    }
}

/* A small English word list: the demo's vocabulary, so that its random
 * output reads as words. */
static const char *const words[] = {
    "the", "a", "and", "of", "to", "in", "is", "was", "it", "for", "on", "with", "as", "at", "by", "from", "that",
    "this", "which", "or", "but", "not", "are", "be", "have", "had", "one", "all", "there", "when", "their", "what",
    "so", "up", "out", "if", "about", "into", "than", "then", "them", "these", "some", "her", "him", "time", "could",
    "would", "other", "more", "very", "after", "first", "new", "over", "most", "where", "through", "back", "much",
    "before", "between", "under", "never", "each", "long", "little", "world", "still", "own", "light", "water",
    "river", "stone", "forest", "mountain", "memory", "disk", "expert", "model", "token", "cache", "layer", "stream",
    "weight", "fast", "slow", "bright", "quiet", "storm", "ocean", "city", "road", "garden", "winter", "summer",
    "night", "morning", "story", "voice", "door", "window", "house", "friend", "machine", "number", "signal", "answer",
    "question", "paper", "book", "music", "color", "green", "blue", "red", "golden", "silver", "small", "large",
    "ancient", "modern", "open", "closed", "warm", "cold", "deep", "high", "low", "near", "far", "early", "late",
    "read", "write", "run", "walk", "speak", "listen", "learn", "build", "carry", "find", "lose", "keep", "hold",
    "turn", "move", "wait", "begin", "end", "grow", "fall", "rise", "shine", "dream", "think", "know", "see",
    "remember", "forget", "travel", "return", "follow", "choose", "hope", "wonder", "gather", "share", "measure",
};

int mf_synth_expert_type(const char *name)
{
    const int t = name ? quant_type_by_name(name) : -1;
    return t == MF_TYPE_Q4_K || t == MF_TYPE_Q2_K || t == MF_TYPE_IQ2_XXS ? t : -1;
}

void mf_synth_preset(const char *name, mf_synth_shape *s)
{
    memset(s, 0, sizeof *s);
    s->seed = 1234;
    s->n_ctx = 4096;
    s->freq_base = 1e6f;
    s->dense_type = MF_TYPE_Q4_K;
    s->expert_type = MF_TYPE_Q4_K;
    s->embd_type = MF_TYPE_Q4_K;
    s->output_type = MF_TYPE_Q4_K;
    if (name && !strcmp(name, "qwen3-30b-a3b")) {
        /* BENCHMARKS.md's model: Qwen3-30B-A3B shapes, 12 layers */
        s->n_layer = 12, s->n_embd = 2048, s->n_head = 32, s->n_head_kv = 4, s->head_dim = 128;
        s->n_expert = 128, s->n_used = 8, s->n_ff_exp = 768, s->n_vocab = 151936;
    } else if (name && !strcmp(name, "tiny")) {
        s->n_layer = 2, s->n_embd = 256, s->n_head = 4, s->n_head_kv = 2, s->head_dim = 64;
        s->n_expert = 8, s->n_used = 2, s->n_ff_exp = 256, s->n_vocab = 512;
        s->words_vocab = true;
    } else { /* "demo" */
        s->n_layer = 8, s->n_embd = 1024, s->n_head = 16, s->n_head_kv = 4, s->head_dim = 64;
        s->n_expert = 64, s->n_used = 8, s->n_ff_exp = 512, s->n_vocab = 512;
        s->words_vocab = true;
    }
}

/* The vocabulary: 256 byte tokens (GPT-2 byte-to-unicode order), the words
 * with a leading space marker, three control tokens, then padding. */
static int write_vocab(gguf_writer *w, const mf_synth_shape *s, uint32_t *n_byte_tokens, mf_error *e)
{
    uint32_t V = s->n_vocab;
    if (V < 259) return mf_fail(e, "synthetic model: vocab %u is smaller than 256 byte tokens + 3 control tokens", V);
    char **tok = calloc(V, sizeof *tok);
    int32_t *type = calloc(V, sizeof *type);
    if (!tok || !type) { free(tok), free(type); return mf_fail(e, "out of memory"); }
    /* GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest
     * to U+0100 upward, in byte order. */
    int k = 0, extra = 0;
    int order[256];
    for (int b = '!'; b <= '~'; b++) order[k++] = b;
    for (int b = 0xa1; b <= 0xac; b++) order[k++] = b;
    for (int b = 0xae; b <= 0xff; b++) order[k++] = b;
    int mapped[256] = { 0 };
    for (int i = 0; i < k; i++) mapped[order[i]] = order[i];
    for (int b = 0; b < 256; b++)
        if (!mapped[b] && !(b >= '!' && b <= '~') && !(b >= 0xa1 && b <= 0xac) && !(b >= 0xae))
            mapped[b] = 256 + extra++, order[k++] = b;
    int rc = 0;
    for (int i = 0; i < 256 && !rc; i++) {
        int cp = mapped[order[i]];
        tok[i] = malloc(4);
        if (!tok[i]) { rc = mf_fail(e, "out of memory"); break; }
        if (cp < 0x80) tok[i][0] = (char)cp, tok[i][1] = 0;
        else tok[i][0] = (char)(0xc0 | (cp >> 6)), tok[i][1] = (char)(0x80 | (cp & 0x3f)), tok[i][2] = 0;
        type[i] = 1;
    }
    uint32_t id = 256;
    size_t nw = sizeof words / sizeof words[0];
    for (size_t i = 0; s->words_vocab && i < nw && id + 3 < V && !rc; i++, id++) {
        tok[id] = malloc(strlen(words[i]) + 3);
        if (!tok[id]) { rc = mf_fail(e, "out of memory"); break; }
        sprintf(tok[id], "\xc4\xa0%s", words[i]); /* U+0120 'Ġ' = a leading space */
        type[id] = 1;
    }
    uint32_t ctrl = V - 3;
    const char *ctl[3] = { "<|endoftext|>", "<|im_start|>", "<|im_end|>" };
    for (uint32_t i = id; i < V && !rc; i++) {
        tok[i] = malloc(24);
        if (!tok[i]) { rc = mf_fail(e, "out of memory"); break; }
        if (i >= ctrl) snprintf(tok[i], 24, "%s", ctl[i - ctrl]), type[i] = 3;
        else snprintf(tok[i], 24, "[PAD%u]", i), type[i] = 5;
    }
    if (!rc) {
        gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
        gguf_w_str(w, "tokenizer.ggml.pre", "qwen2");
        gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, V);
        gguf_w_arr_i32(w, "tokenizer.ggml.token_type", type, V);
        const char *none[1] = { "" };
        gguf_w_arr_str(w, "tokenizer.ggml.merges", none, 0);
        gguf_w_u32(w, "tokenizer.ggml.eos_token_id", V - 1);
        gguf_w_u32(w, "tokenizer.ggml.bos_token_id", V - 3);
        gguf_w_u32(w, "tokenizer.ggml.padding_token_id", V - 3);
        gguf_w_bool(w, "tokenizer.ggml.add_bos_token", false);
    }
    for (uint32_t i = 0; i < V; i++) free(tok[i]);
    free(tok);
    free(type);
    *n_byte_tokens = s->words_vocab ? 256 : 0;
    return rc;
}

int mf_synth_write(const char *path, const mf_synth_shape *s, mf_error *e)
{
    if (!s->n_layer || !s->n_embd || !s->n_head || !s->n_head_kv || !s->head_dim || !s->n_expert || !s->n_used ||
        !s->n_ff_exp || s->n_used > s->n_expert || s->n_head % s->n_head_kv)
        return mf_fail(e, "synthetic model: inconsistent shape");
    gguf_writer *w = gguf_writer_new();
    if (!w) return mf_fail(e, "out of memory");
    const char *a = "qwen3moe";
    char k[128];
    gguf_w_str(w, "general.architecture", a);
    gguf_w_str(w, "general.name", "moeflash-synthetic-qwen3moe");
    gguf_w_u32(w, gguf_arch_key(k, sizeof k, a, "block_count"), s->n_layer);
    gguf_w_u32(w, gguf_arch_key(k, sizeof k, a, "context_length"), s->n_ctx);
    gguf_w_u32(w, gguf_arch_key(k, sizeof k, a, "embedding_length"), s->n_embd);
    gguf_w_u32(w, gguf_arch_key(k, sizeof k, a, "feed_forward_length"), s->n_ff_exp * 4);
    gguf_w_u32(w, gguf_arch_key(k, sizeof k, a, "attention.head_count"), s->n_head);
    gguf_w_u32(w, gguf_arch_key(k, sizeof k, a, "attention.head_count_kv"), s->n_head_kv);
    gguf_w_f32(w, gguf_arch_key(k, sizeof k, a, "rope.freq_base"), s->freq_base);
    gguf_w_f32(w, gguf_arch_key(k, sizeof k, a, "attention.layer_norm_rms_epsilon"), 1e-6f);
    gguf_w_u32(w, gguf_arch_key(k, sizeof k, a, "expert_used_count"), s->n_used);
    gguf_w_u32(w, gguf_arch_key(k, sizeof k, a, "expert_count"), s->n_expert);
    gguf_w_u32(w, gguf_arch_key(k, sizeof k, a, "attention.key_length"), s->head_dim);
    gguf_w_u32(w, gguf_arch_key(k, sizeof k, a, "attention.value_length"), s->head_dim);
    gguf_w_u32(w, gguf_arch_key(k, sizeof k, a, "expert_feed_forward_length"), s->n_ff_exp);
    uint32_t n_bytes_tok = 0;
    int rc = write_vocab(w, s, &n_bytes_tok, e);

    /* tensors, each with its generator context (kept alive until written) */
    size_t cap = 8 + (size_t)s->n_layer * 12, nt = 0;
    synth_tensor *st = calloc(cap, sizeof *st);
    synth_ctx *sc = calloc(cap, sizeof *sc);
    if (!st || !sc) rc = rc ? rc : mf_fail(e, "out of memory");
    const uint64_t E = s->n_embd, Q = (uint64_t)s->n_head * s->head_dim, KV = (uint64_t)s->n_head_kv * s->head_dim;
    const uint64_t F = s->n_ff_exp, X = s->n_expert, V = s->n_vocab;
#define ADD(type_, std_, mean_, nd, ...)                                                                   \
    do {                                                                                                   \
        if (rc) break;                                                                                     \
        uint64_t ne_[4] = { __VA_ARGS__ };                                                                 \
        st[nt] = (synth_tensor){ .std = (std_), .mean = (mean_), .seed = hash_name(name, s->seed), .row_elems = ne_[0] }; \
        sc[nt] = (synth_ctx){ &st[nt], (type_) };                                                          \
        rc = gguf_w_tensor_fill(w, name, (type_), (nd), ne_, fill_tensor, &sc[nt], e);                    \
        nt++;                                                                                              \
    } while (0)
    char name[96];
    snprintf(name, sizeof name, "token_embd.weight");
    ADD(s->embd_type, 1.0f, 0.0f, 2, E, V);
    snprintf(name, sizeof name, "output_norm.weight");
    ADD(MF_TYPE_F32, 0.05f, 1.0f, 1, E);
    snprintf(name, sizeof name, "output.weight");
    ADD(s->output_type, 2.0f / sqrtf((float)E), 0.0f, 2, E, V);
    if (!rc) st[nt - 1].zero_rows_below = n_bytes_tok;
    for (uint32_t l = 0; l < s->n_layer && !rc; l++) {
        const float fe = 1.0f / sqrtf((float)E), fq = 1.0f / sqrtf((float)Q), ff = 1.0f / sqrtf((float)F);
        snprintf(name, sizeof name, "blk.%u.attn_norm.weight", l);
        ADD(MF_TYPE_F32, 0.05f, 1.0f, 1, E);
        snprintf(name, sizeof name, "blk.%u.attn_q.weight", l);
        ADD(s->dense_type, fe, 0.0f, 2, E, Q);
        snprintf(name, sizeof name, "blk.%u.attn_k.weight", l);
        ADD(s->dense_type, fe, 0.0f, 2, E, KV);
        snprintf(name, sizeof name, "blk.%u.attn_v.weight", l);
        ADD(s->dense_type, fe, 0.0f, 2, E, KV);
        snprintf(name, sizeof name, "blk.%u.attn_output.weight", l);
        ADD(s->dense_type, 0.3f * fq, 0.0f, 2, Q, E);
        snprintf(name, sizeof name, "blk.%u.attn_q_norm.weight", l);
        ADD(MF_TYPE_F32, 0.05f, 1.0f, 1, s->head_dim);
        snprintf(name, sizeof name, "blk.%u.attn_k_norm.weight", l);
        ADD(MF_TYPE_F32, 0.05f, 1.0f, 1, s->head_dim);
        snprintf(name, sizeof name, "blk.%u.ffn_norm.weight", l);
        ADD(MF_TYPE_F32, 0.05f, 1.0f, 1, E);
        snprintf(name, sizeof name, "blk.%u.ffn_gate_inp.weight", l);
        ADD(MF_TYPE_F32, 1.6f * fe, 0.0f, 2, E, X);
        snprintf(name, sizeof name, "blk.%u.ffn_gate_exps.weight", l);
        ADD(s->expert_type, fe, 0.0f, 3, E, F, X);
        snprintf(name, sizeof name, "blk.%u.ffn_up_exps.weight", l);
        ADD(s->expert_type, fe, 0.0f, 3, E, F, X);
        snprintf(name, sizeof name, "blk.%u.ffn_down_exps.weight", l);
        ADD(s->expert_type, 0.3f * ff, 0.0f, 3, F, E, X);
    }
#undef ADD
    if (!rc) {
        /* write to a temporary name, then rename: a killed writer leaves no half model */
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.partial", path);
        rc = gguf_w_write(w, tmp, 0, e);
        if (!rc && rename(tmp, path) != 0) rc = mf_fail(e, "%s: cannot rename from %s", path, tmp);
        if (rc) remove(tmp);
    }
    gguf_writer_free(w);
    free(st);
    free(sc);
    return rc;
}
