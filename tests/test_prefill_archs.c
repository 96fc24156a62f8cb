/* test_prefill_archs.c — batched prefill and decode prefetch of deepseek2,
 * glm4moe, gpt-oss and llama (dense and Mixtral-layout MoE): the same
 * logits, bit for bit, as token by token evaluation without prefetch, for
 * every golden model of these architectures at every prompt position;
 * prompts split over several mf_eval calls (chunk boundaries inside,
 * decodes between); passes of 7 tokens; gpt-oss prompts much longer than
 * its sliding window; and expert caches too small for a chunk's experts. */
#include "t.h"
#include "moeflash.h"
#include "eval_parts.h"

/* Vocabulary size, K, and the bytes of one expert slot of the model at
 * path: its cache with every expert cached over the experts of the layers
 * that have them (those one token routes through; leading dense layers
 * have none). */
static int model_shape(const char *path, uint32_t *n_vocab, uint64_t *slot, uint32_t *n_used)
{
    mf_error e;
    mf_model *m = mf_model_open(path, NULL, &e);
    if (!m) return -1;
    const mf_model_info in = *mf_model_get_info(m);
    mf_session *s = mf_session_new(m, 4, &e);
    const int32_t tok = 1;
    int rc = s && mf_eval(s, &tok, 1, NULL, &e) == 0 ? 0 : -1;
    uint64_t moe_layers = 0, uses[1024];
    for (uint32_t l = 0; rc == 0 && in.n_expert && in.n_expert <= 1024 && l < in.n_layer; l++) {
        mf_model_expert_uses(m, l, uses);
        uint64_t u = 0;
        for (uint32_t x = 0; x < in.n_expert; x++) u += uses[x];
        moe_layers += u > 0;
    }
    mf_stats st;
    mf_model_stats(m, &st);
    mf_session_free(s);
    mf_model_close(m);
    *n_vocab = in.n_vocab;
    *slot = moe_layers ? st.cache_bytes / (moe_layers * in.n_expert) : 0;
    *n_used = in.n_expert_used;
    return rc;
}

/* The splits tried against token by token: chunk boundaries inside the
 * prompt, decodes, then a prompt again after them (the next chat turn). */
static const int ONE_CALL[] = { 1 << 20 }, SPLIT[] = { 5, 13, 1, 1, 1, 7, 1 << 20 }, BY_TOKEN[] = { 1 };

typedef struct run_case {
    const char *what;
    int n_batch;
    const int *parts;
    size_t n_parts;
} run_case;

/* Token by token without prefetch with every expert cached, against: one
 * batched call, batched calls split as SPLIT, passes of 7 tokens (n_batch
 * 7) in one call; all with an expert cache of cache bytes (0: every
 * expert). */
static void batch_vs_tokens(t_state *t_, const char *path, const int32_t *ids, size_t n, uint64_t cache)
{
    uint32_t V, K;
    uint64_t slot;
    REQUIREF(model_shape(path, &V, &slot, &K) == 0, "cannot open %s", path);
    float *want = malloc(sizeof(float) * n * V), *got = malloc(sizeof(float) * n * V);
    REQUIRE(want && got);
    mf_error e;
    mf_model_params one = eval_params(1, 0, false);
    CHECKF(eval_parts(path, &one, ids, n, BY_TOKEN, 1, want, NULL, &e) == 0, "%s: %s", path, e.msg);
    const run_case cases[] = {
        { "one batched call", 0, ONE_CALL, 1 },
        { "batched calls of 5, 13, 1, 1, 1, 7, rest", 0, SPLIT, sizeof SPLIT / sizeof SPLIT[0] },
        { "passes of 7 tokens", 7, ONE_CALL, 1 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memset(got, 0, sizeof(float) * n * V);
        mf_model_params mp = eval_params(cases[c].n_batch, cache, false);
        CHECKF(eval_parts(path, &mp, ids, n, cases[c].parts, cases[c].n_parts, got, NULL, &e) == 0, "%s: %s", path,
               e.msg);
        size_t bad = n;
        for (size_t i = 0; i < n && bad == n; i++)
            if (memcmp(want + i * V, got + i * V, sizeof(float) * V)) bad = i;
        CHECKF(bad == n, "%s: %zu tokens, %s (cache %llu bytes): logits differ from token by token first at position %zu",
               path, n, cases[c].what, (unsigned long long)cache, bad);
    }
    free(want), free(got);
}

/* The integers of a file of ids, appended to ids[*n..max). */
static void read_ids(const char *rel, int32_t *ids, size_t *n, size_t max)
{
    char *txt = t_read_file(t_shared(rel), NULL);
    for (char *p = txt, *end; txt && *n < max; p = end) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        ids[(*n)++] = (int32_t)v;
    }
    free(txt);
}

/* Prompt a then prompt b of a golden model (golden/<model>.{a,b}.prompt.txt),
 * and the model's path into path. */
static size_t golden_sequence(const char *model, char *path, size_t cap, int32_t *ids, size_t max)
{
    size_t n = 0;
    char rel[256];
    snprintf(rel, sizeof rel, "golden/%s.gguf", model);
    snprintf(path, cap, "%s", t_shared(rel));
    snprintf(rel, sizeof rel, "golden/%s.a.prompt.txt", model);
    read_ids(rel, ids, &n, max);
    snprintf(rel, sizeof rel, "golden/%s.b.prompt.txt", model);
    read_ids(rel, ids, &n, max);
    return n;
}

static const char *const GOLDEN[] = { "deepseek2-f32", "deepseek2-lite-f32", "deepseek2-q8_0", "deepseek2-q4_k_m",
                                      "glm4moe-f32",   "glm4moe-q4_k_m",     "gpt-oss-f32",    "gpt-oss-mxfp4" };

TEST(prefill_archs_golden_identical)
{
    for (size_t i = 0; i < sizeof GOLDEN / sizeof GOLDEN[0]; i++) {
        char path[512];
        int32_t ids[128];
        size_t n = golden_sequence(GOLDEN[i], path, sizeof path, ids, 128);
        REQUIREF(n > 20, "cannot read the prompts of %s", GOLDEN[i]);
        batch_vs_tokens(t_, path, ids, n, 0);
    }
}

/* A cache of K slots (the minimum) holds fewer experts than a chunk uses
 * per layer: the chunk's experts come in waves of K, evicting each other,
 * and the logits stay those of token by token with every expert cached. */
TEST(prefill_archs_golden_small_cache_waves)
{
    for (size_t i = 0; i < sizeof GOLDEN / sizeof GOLDEN[0]; i++) {
        char path[512];
        int32_t ids[128];
        size_t n = golden_sequence(GOLDEN[i], path, sizeof path, ids, 128);
        uint32_t V, K;
        uint64_t slot;
        REQUIRE(n > 20 && model_shape(path, &V, &slot, &K) == 0);
        const uint64_t cache = K * slot + slot / 2;
        batch_vs_tokens(t_, path, ids, n, cache);
        /* the waves really ran: experts were evicted and read again */
        mf_model_params mp = eval_params(0, cache, false);
        float *out = malloc(sizeof(float) * n * V);
        mf_stats st;
        mf_error e;
        REQUIRE(out);
        CHECKF(eval_parts(path, &mp, ids, n, ONE_CALL, 1, out, &st, &e) == 0, "%s", e.msg);
        CHECKF(st.bytes_read > st.cache_bytes, "%s: %llu bytes read through a cache of %llu", GOLDEN[i],
               (unsigned long long)st.bytes_read, (unsigned long long)st.cache_bytes);
        free(out);
    }
}

/* llama: the dense stories260K and its two Mixtral-layout MoE variants. */
TEST(prefill_archs_llama_identical)
{
    static const char *const models[] = { "stories260K-dense", "stories260K-moe-copies", "stories260K-moe-perturbed" };
    for (size_t i = 0; i < 3; i++) {
        char file[256], prompt[256];
        snprintf(file, sizeof file, "models/stories260K-moe/%s.gguf", models[i]);
        snprintf(prompt, sizeof prompt, "models/stories260K-moe/%s.a.prompt.txt", models[i]);
        int32_t ids[80];
        size_t n = 0;
        read_ids(prompt, ids, &n, 8);
        REQUIRE(n > 2);
        while (n < 80) ids[n] = (int32_t)(3 + (n * 37) % 500), n++;
        batch_vs_tokens(t_, t_shared(file), ids, n, 0);
        uint32_t V, K;
        uint64_t slot;
        REQUIRE(model_shape(t_shared(file), &V, &slot, &K) == 0);
        if (slot) batch_vs_tokens(t_, t_shared(file), ids, n, K * slot + slot / 2);
    }
}

/* Synthetic shapes: 300 tokens cross a 256-token chunk boundary; gpt-oss
 * with its window of 8 positions far shorter than every pass. */
static void synth_case(t_state *t_, const char *preset, int cache_slots)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", t_tmpdir(), preset);
    mf_error e;
    REQUIREF(mf_synth_write_arch(preset, path, 0, &e) == 0, "%s", e.msg);
    enum { N = 300 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = 256 + (i * 37 + i / 7) % 700;
    uint32_t V, K;
    uint64_t slot;
    REQUIRE(model_shape(path, &V, &slot, &K) == 0);
    batch_vs_tokens(t_, path, ids, N, 0);
    /* a small cache: batched reads an expert once per chunk and layer,
     * token by token re-reads */
    const uint64_t cache = (uint64_t)cache_slots * slot + slot / 2;
    float *out = malloc(sizeof(float) * N * V);
    REQUIRE(out);
    mf_stats sb, st;
    mf_model_params mp = eval_params(0, cache, false), one = eval_params(1, cache, false);
    CHECKF(eval_parts(path, &mp, ids, N, ONE_CALL, 1, out, &sb, &e) == 0, "%s", e.msg);
    CHECKF(eval_parts(path, &one, ids, N, ONE_CALL, 1, out, &st, &e) == 0, "%s", e.msg);
    printf("  %s, %d tokens, %d-slot cache: batched %llu expert reads, token by token %llu\n", preset, N, cache_slots,
           (unsigned long long)sb.cache_misses, (unsigned long long)st.cache_misses);
    CHECKF(sb.cache_misses * 4 < st.cache_misses, "%s: batched %llu vs token by token %llu reads", preset,
           (unsigned long long)sb.cache_misses, (unsigned long long)st.cache_misses);
    free(out);
}

TEST(prefill_archs_gptoss_window_synthetic) { synth_case(t_, "gpt-oss-tiny", 6); }
TEST(prefill_archs_deepseek_synthetic) { synth_case(t_, "deepseek-v3-tiny", 10); }

/* Decode prefetch (the next layer's guess, with that layer's biases)
 * changes when experts arrive, never the logits: on and off give the same
 * bits, token by token through a cache that must stream. */
static void prefetch_identical(t_state *t_, const char *path, const int32_t *ids, size_t n, uint32_t slots)
{
    uint32_t V, K;
    uint64_t slot;
    REQUIREF(model_shape(path, &V, &slot, &K) == 0, "cannot open %s", path);
    const uint64_t cache = slots * slot + slot / 2;
    float *off = malloc(sizeof(float) * n * V), *on = malloc(sizeof(float) * n * V);
    REQUIRE(off && on);
    mf_error e;
    mf_model_params a = eval_params(1, cache, false), b = eval_params(1, cache, true);
    mf_stats sa, sb;
    CHECKF(eval_parts(path, &a, ids, n, BY_TOKEN, 1, off, &sa, &e) == 0, "%s", e.msg);
    CHECKF(eval_parts(path, &b, ids, n, BY_TOKEN, 1, on, &sb, &e) == 0, "%s", e.msg);
    CHECKF(memcmp(off, on, sizeof(float) * n * V) == 0, "%s: logits with prefetch differ from without", path);
    CHECKF(sa.prefetch_issued == 0 && sb.prefetch_issued > 0 && sb.prefetch_used > 0,
           "%s: prefetches issued %llu (off) and %llu, used %llu (on)", path, (unsigned long long)sa.prefetch_issued,
           (unsigned long long)sb.prefetch_issued, (unsigned long long)sb.prefetch_used);
    free(off), free(on);
}

TEST(prefetch_archs_identical)
{
    static const char *const models[] = { "deepseek2-q4_k_m", "deepseek2-lite-f32", "glm4moe-q4_k_m", "gpt-oss-mxfp4" };
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char path[512];
        int32_t ids[128];
        size_t n = golden_sequence(models[i], path, sizeof path, ids, 128);
        REQUIRE(n > 20);
        prefetch_identical(t_, path, ids, n, 12);
    }
    int32_t ids[48];
    size_t n = 0;
    read_ids("models/stories260K-moe/stories260K-moe-perturbed.a.prompt.txt", ids, &n, 8);
    while (n < 48) ids[n] = (int32_t)(3 + (n * 53) % 500), n++;
    prefetch_identical(t_, t_shared("models/stories260K-moe/stories260K-moe-perturbed.gguf"), ids, n, 10);
    const char *presets[] = { "deepseek-v3-tiny", "gpt-oss-tiny" };
    for (size_t i = 0; i < 2; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/pf-%s.gguf", t_tmpdir(), presets[i]);
        mf_error e;
        REQUIREF(mf_synth_write_arch(presets[i], path, 0, &e) == 0, "%s", e.msg);
        int32_t t[48];
        for (int j = 0; j < 48; j++) t[j] = 256 + (j * 53) % 700;
        prefetch_identical(t_, path, t, 48, 20);
    }
}
