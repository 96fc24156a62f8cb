/* test_prefill.c — batched prefill: the same logits as token-by-token
 * evaluation (bit for bit), each (layer, expert) read at most once per
 * batch when the cache holds a layer's batch working set, and waves that
 * never fail when it does not. */
#include "t.h"
#include "moeflash.h"

static float *eval_all(t_state *t_, const char *path, int n_batch, uint64_t cache, const int32_t *ids, int n,
                       mf_stats *st)
{
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.n_batch = n_batch;
    mp.cache_bytes = cache;
    mp.no_prefetch = true;
    mf_error e;
    mf_model *m = mf_model_open(path, &mp, &e);
    CHECKF(m, "%s", e.msg);
    if (!m) return NULL;
    const uint32_t V = mf_model_get_info(m)->n_vocab;
    float *out = malloc(sizeof(float) * (size_t)n * V);
    mf_session *s = mf_session_new(m, (uint32_t)n + 4, &e);
    CHECKF(s && mf_eval(s, ids, (size_t)n, out, &e) == 0, "%s", e.msg);
    if (st) mf_model_stats(m, st);
    mf_session_free(s);
    mf_model_close(m);
    return out;
}

TEST(prefill_batch_equals_token_by_token_golden)
{
    static const char *models[] = { "golden/qwen3moe-f32.gguf", "golden/qwen3moe-q4_k_m.gguf", "golden/qwen3moe-iq2_xxs.gguf",
                                    "golden/qwen35moe-f32.gguf", "golden/qwen35moe-q4_k_m.gguf" };
    char *txt = t_read_file(t_shared("golden/qwen3moe-f32.a.prompt.txt"), NULL);
    REQUIRE(txt);
    int32_t ids[64];
    int n = 0;
    for (char *p = txt, *end; n < 64; p = end) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        ids[n++] = (int32_t)v;
    }
    free(txt);
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        float *a = eval_all(t_, t_shared(models[i]), 0, 0, ids, n, NULL);
        float *b = eval_all(t_, t_shared(models[i]), 1, 0, ids, n, NULL);
        float *c = eval_all(t_, t_shared(models[i]), 7, 0, ids, n, NULL); /* --batch 7: passes of 7 tokens */
        REQUIRE(a && b && c);
        CHECKF(memcmp(a, b, sizeof(float) * (size_t)n * 512) == 0, "%s: batched prefill differs from token by token",
               models[i]);
        CHECKF(memcmp(c, b, sizeof(float) * (size_t)n * 512) == 0, "%s: --batch 7 differs from token by token",
               models[i]);
        free(a), free(b), free(c);
    }
}

TEST(prefill_reads_each_expert_once_per_batch)
{
    char path[512];
    snprintf(path, sizeof path, "%s/prefill-synth.gguf", t_tmpdir());
    mf_synth_shape sh;
    mf_synth_preset("demo", &sh); /* 64 experts, top-8 */
    sh.n_layer = 2;
    mf_error e;
    REQUIREF(mf_synth_write(path, &sh, &e) == 0, "%s", e.msg);
    enum { N = 64 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = 256 + (i * 37) % 200;
    /* a cache of all experts: batched reads every used expert once */
    mf_stats sb, st;
    float *a = eval_all(t_, path, 0, 0, ids, N, &sb);
    float *b = eval_all(t_, path, 1, 0, ids, N, &st);
    REQUIRE(a && b);
    CHECK(memcmp(a, b, sizeof(float) * N * sh.n_vocab) == 0);
    CHECKF(sb.cache_misses <= 2u * 64, "batched prefill read %llu experts, at most 128 exist", (unsigned long long)sb.cache_misses);
    free(a), free(b);
    /* a cache of 12 experts (fewer than a layer's batch working set, more
     * than K): waves, the same logits, and far fewer reads than token by
     * token, whose LRU cycle re-reads */
    uint64_t slot = 0;
    {
        mf_model_params mp;
        mf_model_params_default(&mp);
        mf_model *m = mf_model_open(path, &mp, &e);
        REQUIRE(m);
        mf_stats s0;
        mf_model_stats(m, &s0);
        slot = s0.cache_bytes / (2u * 64);
        mf_model_close(m);
    }
    a = eval_all(t_, path, 0, 12 * slot + slot / 2, ids, N, &sb);
    b = eval_all(t_, path, 1, 12 * slot + slot / 2, ids, N, &st);
    REQUIRE(a && b);
    CHECK(memcmp(a, b, sizeof(float) * N * sh.n_vocab) == 0);
    printf("  12-slot cache, %d-token prompt: batched %llu expert reads (%.1f MB, %.2f MB per prompt token), "
           "token by token %llu (%.1f MB)\n",
           N, (unsigned long long)sb.cache_misses, sb.bytes_read / 1e6, sb.bytes_read / 1e6 / N,
           (unsigned long long)st.cache_misses, st.bytes_read / 1e6);
    CHECKF(sb.cache_misses <= 2u * 64, "batched: %llu reads for at most 128 distinct experts in one batch",
           (unsigned long long)sb.cache_misses);
    CHECKF(sb.cache_misses * 3 < st.cache_misses, "batched %llu vs token by token %llu reads",
           (unsigned long long)sb.cache_misses, (unsigned long long)st.cache_misses);
    free(a), free(b);
}

/* Issue #9's counter test: with a cache of exactly one layer's batch
 * working set (the distinct experts the batch routes to in its largest
 * layer), every (layer, expert) the batch uses is read exactly once: as
 * many bytes as with every expert cached, where nothing is ever read twice.
 * prefill_bytes_read counts those reads. (Reads of the next wave made
 * while a wave computes count as hits, so bytes, not misses, tell.) */
TEST(prefill_reads_each_layer_expert_exactly_once_with_one_layer_cache)
{
    char path[512];
    snprintf(path, sizeof path, "%s/prefill-once.gguf", t_tmpdir());
    mf_synth_shape sh;
    mf_synth_preset("demo", &sh); /* 64 experts, top-8 */
    sh.n_layer = 3;
    mf_error e;
    REQUIREF(mf_synth_write(path, &sh, &e) == 0, "%s", e.msg);
    enum { N = 24 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = 260 + (i * 53) % 250;
    uint64_t slot = 0, distinct = 0, widest = 0, all_cached_bytes = 0;
    {   /* a first run with every expert cached tells the working sets */
        mf_model_params mp;
        mf_model_params_default(&mp);
        mp.no_prefetch = true;
        mf_model *m = mf_model_open(path, &mp, &e);
        REQUIREF(m, "%s", e.msg);
        mf_session *s = mf_session_new(m, N + 4, &e);
        REQUIREF(s && mf_eval(s, ids, N, NULL, &e) == 0, "%s", e.msg);
        mf_stats s0;
        mf_model_stats(m, &s0);
        slot = s0.cache_bytes / (sh.n_layer * sh.n_expert);
        all_cached_bytes = s0.bytes_read;
        uint64_t uses[64];
        for (uint32_t l = 0; l < sh.n_layer; l++) {
            mf_model_expert_uses(m, l, uses);
            uint64_t d = 0;
            for (uint32_t x = 0; x < sh.n_expert; x++) d += uses[x] > 0;
            distinct += d;
            widest = d > widest ? d : widest;
        }
        mf_session_free(s);
        mf_model_close(m);
    }
    REQUIRE(slot > 0 && widest >= sh.n_used && widest < sh.n_expert);
    mf_stats st;
    float *a = eval_all(t_, path, 0, widest * slot + slot / 2, ids, N, &st);
    REQUIRE(a);
    printf("  %u layers, %d tokens: %llu distinct (layer, expert) used, widest layer %llu; cache %llu slots: "
           "%llu misses, %.2f MB per prompt token\n",
           sh.n_layer, N, (unsigned long long)distinct, (unsigned long long)widest, (unsigned long long)widest,
           (unsigned long long)st.cache_misses, st.prefill_bytes_read / 1e6 / N);
    CHECKF(st.bytes_read == all_cached_bytes, "%llu bytes read, %llu with every expert cached (%llu distinct experts)",
           (unsigned long long)st.bytes_read, (unsigned long long)all_cached_bytes, (unsigned long long)distinct);
    CHECKF(all_cached_bytes % distinct == 0 && all_cached_bytes / distinct >= slot / 2,
           "%llu bytes for %llu distinct experts of %llu-byte slots", (unsigned long long)all_cached_bytes,
           (unsigned long long)distinct, (unsigned long long)slot);
    CHECKF(st.prefill_bytes_read == st.bytes_read && st.bytes_read > 0,
           "prefill_bytes_read %llu, bytes_read %llu", (unsigned long long)st.prefill_bytes_read,
           (unsigned long long)st.bytes_read);
    free(a);
}

/* `moeflash bench --prefill` reports batched prompt evaluation for each
 * length next to token by token, with the bytes read per prompt token;
 * a bad length list is a usage error. */
TEST(prefill_bench_cli)
{
    const char *bin = getenv("MF_BIN");
    REQUIREF(bin, "MF_BIN is not set (run through make test)");
    char cmd[2048], out[512];
    snprintf(out, sizeof out, "%s/bench-prefill.txt", t_tmpdir());
    snprintf(cmd, sizeof cmd,
             "MF_CACHE_DIR='%s/cache' '%s' bench --synthetic tiny --io pread --cache 1M --prefill 16,40 > '%s' 2>&1",
             t_tmpdir(), bin, out);
    int rc = system(cmd);
    char *txt = t_read_file(out, NULL);
    REQUIRE(txt);
    CHECKF(rc == 0, "status %d: %s", rc, txt);
    CHECKF(strstr(txt, "pread        16 ") && strstr(txt, "pread        40 ") && strstr(txt, "(token by token, 64 tokens)"),
           "%s", txt);
    CHECKF(strstr(txt, "40 tokens: ") && strstr(txt, "fewer expert bytes per prompt token than token by token"), "%s", txt);
    free(txt);
    snprintf(cmd, sizeof cmd, "MF_CACHE_DIR='%s/cache' '%s' bench --synthetic tiny --prefill 16,0 2>/dev/null", t_tmpdir(), bin);
    rc = system(cmd);
    CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "--prefill 16,0: status %d", rc);
}
