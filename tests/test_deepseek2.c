/* test_deepseek2.c — deepseek2 (MLA + DeepSeek-V3 routing) against
 * llama.cpp (golden/README.md, "Architecture: deepseek2"), thread-count
 * and cache-size invariance, and the latent cache's size. */
#include "golden.h"
#include <inttypes.h>
#include "moeflash.h"
#include "gguf.h"
#include "models/mla.h"
#include "store/store.h"

static void run(t_state *t_, const char *model, const golden_limits *lim)
{
    golden_report pr, tf;
    for (int i = 0; i < 2; i++) golden_check(t_, "golden", model, i ? "b" : "a", lim, 2, &pr, &tf);
}

TEST(deepseek2_f32_golden) { run(t_, "deepseek2-f32", &GOLDEN_F32); }
TEST(deepseek2_lite_f32_golden) { run(t_, "deepseek2-lite-f32", &GOLDEN_F32); }
/* README, "Thresholds for these architectures": Q8_0 uses the Q4_K_M row
 * (routing near-ties that llama.cpp's activation quantization flips). */
TEST(deepseek2_q8_0_golden) { run(t_, "deepseek2-q8_0", &GOLDEN_Q4_K_M); }
TEST(deepseek2_q4_k_m_golden) { run(t_, "deepseek2-q4_k_m", &GOLDEN_Q4_K_M); }

TEST(deepseek2_threads_agree)
{
    golden_threads_agree(t_, "golden", "deepseek2-f32", "a");
    golden_threads_agree(t_, "golden", "deepseek2-lite-f32", "a");
    golden_threads_agree(t_, "golden", "deepseek2-q4_k_m", "a");
}

/* Prompt a then 16 single-token decodes of the reference greedy tokens
 * (both paths through the cache), the whole repeated reps times, with the
 * given expert-cache budget and threads. */
#define MAX_REPS 4
static float *eval_all(t_state *t_, const char *model, uint64_t cache_bytes, int n_threads, int reps, size_t *n_out,
                       uint64_t *misses)
{
    char path[256];
    snprintf(path, sizeof path, "golden/%s.a.prompt.txt", model);
    char *txt = t_read_file(t_shared(path), NULL);
    if (!txt) { CHECKF(0, "cannot read %s", path); return NULL; }
    int32_t ids[(64 + 16) * MAX_REPS];
    size_t n = 0;
    for (char *p = txt, *end;; p = end) {
        long v = strtol(p, &end, 10);
        if (end == p || n == 64) break;
        ids[n++] = (int32_t)v;
    }
    free(txt);
    snprintf(path, sizeof path, "golden/%s.a.greedy.txt", model);
    txt = t_read_file(t_shared(path), NULL);
    if (!txt) { CHECKF(0, "cannot read %s", path); return NULL; }
    const size_t n_prompt = n;
    for (char *p = txt, *end; n < n_prompt + 16; ) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        ids[n++] = (int32_t)v;
        p = strchr(end, '\n');
        if (!p) break;
    }
    free(txt);
    const size_t n_one = n;
    for (int r = 1; r < reps && r < MAX_REPS; r++, n += n_one) memcpy(ids + n, ids, n_one * sizeof *ids);
    snprintf(path, sizeof path, "golden/%s.gguf", model);
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.n_threads = n_threads;
    mp.cache_bytes = cache_bytes;
    mf_error e;
    mf_model *m = mf_model_open(t_shared(path), &mp, &e);
    if (!m) { CHECKF(0, "%s", e.msg); return NULL; }
    const size_t V = mf_model_get_info(m)->n_vocab;
    float *out = malloc(sizeof(float) * n * V);
    mf_session *s = mf_session_new(m, 512, &e);
    int ok = s && mf_eval(s, ids, n_prompt, out, &e) == 0;
    for (size_t i = n_prompt; ok && i < n; i++) ok = mf_eval(s, &ids[i], 1, out + i * V, &e) == 0;
    CHECKF(ok, "%s", e.msg);
    mf_stats st;
    mf_model_stats(m, &st);
    *misses = st.cache_misses;
    mf_session_free(s);
    mf_model_close(m);
    *n_out = n * V;
    if (!ok) { free(out); return NULL; }
    return out;
}

/* One expert slot's bytes, as the store lays them out for this file. */
static uint64_t slot_bytes(t_state *t_, const char *model, uint32_t n_layer, uint32_t n_expert, uint32_t n_used)
{
    char path[256];
    snprintf(path, sizeof path, "golden/%s.gguf", model);
    mf_error e;
    gguf_file *f = gguf_open(t_shared(path), &e);
    if (!f) { CHECKF(0, "%s", e.msg); return 0; }
    store_params p = { 0 };
    store *st = store_open(f, n_layer, n_expert, n_used, &p, &e);
    CHECKF(st, "%s", e.msg);
    uint64_t b = st ? store_slot_bytes(st) : 0;
    store_close(st);
    gguf_close(f);
    return b;
}

/* DESIGN.md: logits are bit-identical for every cache size. A budget just
 * above one layer's K experts forces evictions on nearly every token. */
static void small_cache(t_state *t_, const char *model)
{
    char path[256];
    snprintf(path, sizeof path, "golden/%s.gguf", model);
    mf_error e;
    mf_model *m = mf_model_open(t_shared(path), NULL, &e);
    REQUIREF(m, "%s", e.msg);
    const mf_model_info info = *mf_model_get_info(m);
    mf_model_close(m);
    const uint64_t slot = slot_bytes(t_, model, info.n_layer, info.n_expert, info.n_expert_used);
    REQUIRE(slot > 0);
    const uint64_t min = slot * info.n_expert_used;
    /* Below the minimum the model refuses to open, naming it. */
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.cache_bytes = min - 1;
    m = mf_model_open(t_shared(path), &mp, &e);
    CHECKF(!m && strstr(e.msg, "--cache"), "%s: a cache below one layer's experts opened", model);
    mf_model_close(m);

    size_t n_all = 0, n_small = 0;
    uint64_t miss_all = 0, miss_small = 0;
    float *all = eval_all(t_, model, 0, 2, 1, &n_all, &miss_all);
    float *small = eval_all(t_, model, min + slot / 2, 2, 1, &n_small, &miss_small);
    if (all && small) {
        CHECKF(n_all == n_small && memcmp(all, small, n_all * sizeof(float)) == 0,
               "%s: logits with a %" PRIu64 "-byte expert cache differ from the all-cached run", model, min + slot / 2);
        /* The small cache really streamed: more misses than there are experts. */
        CHECKF(miss_small > (uint64_t)info.n_expert * 2 && miss_small > miss_all,
               "%s: %" PRIu64 " misses with the small cache, %" PRIu64 " all-cached", model, miss_small, miss_all);
        printf("  %-28s cache %" PRIu64 " B (%u slots of %" PRIu64 "): bit-identical, %" PRIu64 " misses vs %" PRIu64 "\n",
               model, min + slot / 2, info.n_expert_used, slot, miss_small, miss_all);
    }
    free(all), free(small);
}

TEST(deepseek2_small_cache_identical)
{
    small_cache(t_, "deepseek2-f32");
    small_cache(t_, "deepseek2-lite-f32");
    small_cache(t_, "deepseek2-q4_k_m");
}

/* 144 positions: past 64 cached rows the attention itself runs on the pool
 * (golden_threads_agree's 32-token prompt stays below that). */
TEST(deepseek2_threads_agree_long)
{
    const char *models[] = { "deepseek2-f32", "deepseek2-q4_k_m" };
    for (int i = 0; i < 2; i++) {
        size_t n1 = 0, n3 = 0;
        uint64_t miss;
        float *one = eval_all(t_, models[i], 0, 1, 3, &n1, &miss);
        float *two = eval_all(t_, models[i], 0, 2, 3, &n3, &miss);
        CHECKF(one && two && n1 == n3 && memcmp(one, two, n1 * sizeof(float)) == 0,
               "%s: 1 and 2 threads differ over 144 positions", models[i]);
        free(one), free(two);
    }
}

/* The latent cache (golden README, "KV cache"): kv_lora + rope values per
 * token and layer, no V. */
TEST(deepseek2_kv_bytes)
{
    /* The golden model: kv_lora 64, rope 16, 3 layers, f32 as cached here. */
    CHECK(mla_kv_bytes_per_token(64, 16, 3, 4) == 960);
    /* DeepSeek-V3/R1 (HF config: kv_lora_rank 512, qk_rope_head_dim 64,
     * 61 layers): f32 here, f16 as the README quotes for llama.cpp. */
    const uint64_t v3_f32 = mla_kv_bytes_per_token(512, 64, 61, 4), v3_f16 = mla_kv_bytes_per_token(512, 64, 61, 2);
    CHECK(v3_f32 == 140544);
    CHECK(v3_f16 == 70272);
    /* Against full per-head K (128 nope + 64 rope) and V (128) of 128 heads, f16. */
    const uint64_t mha_f16 = (uint64_t)128 * (192 + 128) * 2 * 61;
    CHECK(mha_f16 == 4997120);
    printf("  KV bytes/token: golden deepseek2 %" PRIu64 " (f32); DeepSeek-V3 %" PRIu64 " (f32), %" PRIu64
           " (f16) vs %" PRIu64 " for full f16 K/V (%.1fx)\n",
           mla_kv_bytes_per_token(64, 16, 3, 4), v3_f32, v3_f16, mha_f16, (double)mha_f16 / (double)v3_f16);
}

/* A file with a fused attn_kv_b and no *_mla keys, or a bad key, is refused
 * with the key named. Each case rewrites one key of the golden file. */
TEST(deepseek2_bad_keys)
{
    mf_error e;
    gguf_file *f = gguf_open(t_shared("golden/deepseek2-f32.gguf"), &e);
    REQUIREF(f, "%s", e.msg);
    static const struct { const char *key, *want; int action; } cases[] = {
        { "deepseek2.attention.key_length_mla", "attn_kv_b", 0 },        /* dropped */
        { "deepseek2.rope.dimension_count", "rope.dimension_count", 0 },
        { "deepseek2.expert_gating_func", "expert_gating_func", 1 },     /* 3: unknown */
        { "deepseek2.rope.scaling.type", "rope.scaling.type", 2 },       /* "longrope" */
        { "deepseek2.expert_group_count", "expert_group_count", 1 },     /* 3: does not divide 16 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        gguf_writer *w = gguf_writer_new();
        for (uint64_t i = 0; i < f->n_kv; i++) {
            const gguf_kv *kv = &f->kv[i];
            if (strcmp(kv->key, cases[c].key)) gguf_w_value(w, kv->key, &kv->val);
            else if (cases[c].action == 1) gguf_w_u32(w, kv->key, 3);
            else if (cases[c].action == 2) gguf_w_str(w, kv->key, "longrope");
        }
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const gguf_tensor *t = &f->tensors[i];
            CHECKF(gguf_w_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &e) == 0, "%s", e.msg);
        }
        char out[512];
        snprintf(out, sizeof out, "%s/ds2_bad%zu.gguf", t_tmpdir(), c);
        CHECKF(gguf_w_write(w, out, 0, &e) == 0, "%s", e.msg);
        gguf_writer_free(w);
        mf_model *m = mf_model_open(out, NULL, &e);
        CHECKF(!m && strstr(e.msg, cases[c].want), "case %zu: expected an error naming %s, got %s", c, cases[c].want,
               m ? "success" : e.msg);
        mf_model_close(m);
    }
    gguf_close(f);
}
