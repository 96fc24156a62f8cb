/* test_qwen35moe.c — qwen35moe (hybrid Gated DeltaNet + gated attention)
 * against llama.cpp (golden/README.md, "Architectures qwen35moe ..."), its
 * session rules (a recurrent state truncates only to 0), and streaming
 * through a minimal expert cache. */
#include "golden.h"
#include "moeflash.h"
#include "eval_parts.h"
#include "gguf.h"

/* README: "Q8_0: use the Q4_K_M row" for this architecture (routing
 * near-ties that llama.cpp's q8_0 activations flip). */
static const golden_limits Q35_Q8_0 = { .kl_median = 2e-3, .kl_mean = 1e-2, .kl_max = 0.15, .top1_gap = 0.25,
                                        .top1_tenth = 1, .tie_margin = 0.1 };

static void run(t_state *t_, const char *model, const golden_limits *lim)
{
    golden_report pr, tf;
    golden_check(t_, "golden", model, "a", lim, 2, &pr, &tf);
    golden_check(t_, "golden", model, "b", lim, 2, &pr, &tf);
}

TEST(qwen35moe_f32_golden) { run(t_, "qwen35moe-f32", &GOLDEN_F32); }
TEST(qwen35moe_q8_0_golden) { run(t_, "qwen35moe-q8_0", &Q35_Q8_0); }
TEST(qwen35moe_q4_k_m_golden) { run(t_, "qwen35moe-q4_k_m", &GOLDEN_Q4_K_M); }
/* block_count 5 with nextn_predict_layers 1: the MTP block blk.4 is not run */
TEST(qwen35moe_mtp_q4_k_m_golden) { run(t_, "qwen35moe-mtp-q4_k_m", &GOLDEN_Q4_K_M); }

TEST(qwen35moe_threads_agree)
{
    golden_threads_agree(t_, "golden", "qwen35moe-f32", "a");
    golden_threads_agree(t_, "golden", "qwen35moe-q8_0", "b");
    golden_threads_agree(t_, "golden", "qwen35moe-q4_k_m", "a");
}

static int32_t *prompt_ids(const char *model, const char *p, size_t *n)
{
    char path[256];
    snprintf(path, sizeof path, "golden/%s.%s.prompt.txt", model, p);
    char *txt = t_read_file(t_shared(path), NULL);
    if (!txt) return NULL;
    int32_t *ids = malloc(sizeof(int32_t) * 256);
    *n = 0;
    for (char *q = txt, *end;; q = end) {
        long v = strtol(q, &end, 10);
        if (end == q || *n == 256) break;
        ids[(*n)++] = (int32_t)v;
    }
    free(txt);
    return ids;
}

/* Prompt a, then a few single-token decodes; all logits into out. */
static int eval_all(mf_model *m, const int32_t *ids, size_t n, float *out, mf_error *e)
{
    const size_t V = mf_model_get_info(m)->n_vocab;
    mf_session *s = mf_session_new(m, 512, e);
    if (!s) return -1;
    int rc = mf_eval(s, ids, n, out, e);
    for (size_t i = 0; rc == 0 && i < 8; i++) rc = mf_eval(s, &ids[i], 1, out + (n + i) * V, e);
    mf_session_free(s);
    return rc;
}

/* DESIGN.md: logits are bit-identical for every cache size. The smallest
 * budget the store accepts holds one layer's K experts; every layer then
 * evicts the previous layer's. */
static void small_cache(t_state *t_, const char *model)
{
    char file[256];
    snprintf(file, sizeof file, "golden/%s.gguf", model);
    size_t n;
    int32_t *ids = prompt_ids(model, "a", &n);
    REQUIREF(ids && n > 8, "cannot read the prompt of %s", model);
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.n_threads = 2;
    mf_error e;
    mf_model *all = mf_model_open(t_shared(file), &mp, &e);
    REQUIREF(all, "%s", e.msg);
    const mf_model_info info_all = *mf_model_get_info(all), *info = &info_all; /* outlives `all` */
    const size_t V = info->n_vocab, rows = n + 8;
    mf_stats st;
    mf_model_stats(all, &st);
    const uint64_t slot = st.cache_bytes / ((uint64_t)info->n_layer * info->n_expert);
    float *want = malloc(sizeof(float) * rows * V), *got = malloc(sizeof(float) * rows * V);
    CHECKF(eval_all(all, ids, n, want, &e) == 0, "%s", e.msg);
    mf_model_close(all);

    mp.cache_bytes = (uint64_t)info->n_expert_used * slot + slot / 2; /* just above the minimum */
    mf_model *tiny = mf_model_open(t_shared(file), &mp, &e);
    CHECKF(tiny, "%s", e.msg);
    if (tiny) {
        CHECKF(eval_all(tiny, ids, n, got, &e) == 0, "%s", e.msg);
        mf_model_stats(tiny, &st);
        CHECKF(st.cache_bytes == (uint64_t)info->n_expert_used * slot, "%s: cache of %llu bytes, expected %llu", model,
               (unsigned long long)st.cache_bytes, (unsigned long long)(info->n_expert_used * slot));
        CHECKF(st.cache_misses > (uint64_t)info->n_layer * info->n_expert, "%s: %llu misses: the small cache did not "
               "stream", model, (unsigned long long)st.cache_misses);
        CHECKF(memcmp(want, got, sizeof(float) * rows * V) == 0, "%s: logits with a %llu-byte cache differ from "
               "all-cached", model, (unsigned long long)mp.cache_bytes);
        mf_model_close(tiny);
    }
    /* one slot fewer cannot hold a layer's K experts: a clear error */
    mp.cache_bytes = (uint64_t)(info->n_expert_used - 1) * slot + slot / 2;
    mf_model *none = mf_model_open(t_shared(file), &mp, &e);
    CHECKF(!none && strstr(e.msg, "one layer needs"), "%s: cache below the minimum: %s", model, none ? "opened" : e.msg);
    mf_model_close(none);
    free(want), free(got), free(ids);
}

TEST(qwen35moe_small_cache_identical)
{
    small_cache(t_, "qwen35moe-f32");
    small_cache(t_, "qwen35moe-q4_k_m");
}

/* The recurrent state: truncate to 0 resets (the same logits again), to the
 * current length is a no-op, anything else is refused with a reason. */
TEST(qwen35moe_truncate)
{
    size_t n;
    int32_t *ids = prompt_ids("qwen35moe-f32", "a", &n);
    REQUIRE(ids && n > 8);
    mf_error e;
    mf_model *m = mf_model_open(t_shared("golden/qwen35moe-f32.gguf"), NULL, &e);
    REQUIREF(m, "%s", e.msg);
    const size_t V = mf_model_get_info(m)->n_vocab;
    float *a = malloc(sizeof(float) * n * V), *b = malloc(sizeof(float) * n * V);
    mf_session *s = mf_session_new(m, 64, &e);
    CHECKF(s, "%s", e.msg);
    if (s) {
        CHECKF(mf_eval(s, ids, n, a, &e) == 0, "%s", e.msg);
        CHECKF(mf_session_truncate(s, (uint32_t)n, &e) == 0, "truncate to the current length: %s", e.msg);
        CHECK(mf_session_truncate(s, (uint32_t)n / 2, &e) == -1);
        CHECKF(strstr(e.msg, "only truncation to 0"), "refusal does not say why: %s", e.msg);
        CHECK(mf_session_n_past(s) == n);
        CHECKF(mf_session_truncate(s, 0, &e) == 0, "%s", e.msg);
        /* the prompt again, split in two calls: the same state path */
        CHECKF(mf_eval(s, ids, 5, b, &e) == 0 && mf_eval(s, ids + 5, n - 5, b + 5 * V, &e) == 0, "%s", e.msg);
        CHECKF(memcmp(a, b, sizeof(float) * n * V) == 0, "logits after a reset differ from a fresh session");
        mf_session_free(s);
    }
    mf_model_close(m);
    free(a), free(b), free(ids);
}

/* A copy of the F32 model without the key or tensor `drop` (or with
 * tensor `reshape` given one row more): opening it must fail naming it. */
static void broken_copy(t_state *t_, const char *drop, const char *reshape, const char *want_in_msg)
{
    mf_error e;
    gguf_file *f = gguf_open(t_shared("golden/qwen35moe-f32.gguf"), &e);
    REQUIREF(f, "%s", e.msg);
    gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (strcmp(f->kv[i].key, drop)) gguf_w_value(w, f->kv[i].key, &f->kv[i].val);
    int rc = 0;
    for (uint64_t i = 0; i < f->n_tensors && rc == 0; i++) {
        const gguf_tensor *t = &f->tensors[i];
        if (!strcmp(t->name, drop)) continue;
        uint64_t ne[GGUF_MAX_DIMS];
        memcpy(ne, t->ne, sizeof ne);
        void *data = (void *)t->data, *grown = NULL;
        if (!strcmp(t->name, reshape)) { /* one more row of zeros */
            grown = calloc(t->nbytes + t->nbytes / ne[t->n_dims - 1], 1);
            memcpy(grown, t->data, t->nbytes);
            ne[t->n_dims - 1]++;
            data = grown;
        }
        rc = gguf_w_tensor(w, t->name, t->type, t->n_dims, ne, data, &e);
        free(grown);
    }
    char path[512];
    snprintf(path, sizeof path, "%s/q35-broken.gguf", t_tmpdir());
    CHECKF(rc == 0 && gguf_w_write(w, path, 0, &e) == 0, "%s", e.msg);
    gguf_writer_free(w);
    gguf_close(f);
    mf_model *m = mf_model_open(path, NULL, &e);
    CHECKF(!m && strstr(e.msg, want_in_msg), "without %s%s: %s", drop, reshape, m ? "opened" : e.msg);
    mf_model_close(m);
}

TEST(qwen35moe_load_errors)
{
    broken_copy(t_, "qwen35moe.ssm.state_size", "", "qwen35moe.ssm.state_size");
    broken_copy(t_, "blk.1.ssm_a", "", "blk.1.ssm_a");
    broken_copy(t_, "blk.3.attn_q_norm.weight", "", "blk.3.attn_q_norm.weight");
    broken_copy(t_, "blk.2.ffn_gate_inp_shexp.weight", "", "blk.2.ffn_gate_inp_shexp.weight");
    broken_copy(t_, "", "blk.0.ssm_conv1d.weight", "blk.0.ssm_conv1d.weight");
    broken_copy(t_, "", "blk.3.attn_q.weight", "blk.3.attn_q.weight");
}

/* The context limit applies to a recurrent session as to any other. */
TEST(qwen35moe_context_full)
{
    mf_error e;
    mf_model *m = mf_model_open(t_shared("golden/qwen35moe-f32.gguf"), NULL, &e);
    REQUIREF(m, "%s", e.msg);
    mf_session *s = mf_session_new(m, 4, &e);
    REQUIREF(s, "%s", e.msg);
    int32_t ids[5] = { 1, 2, 3, 4, 5 };
    CHECK(mf_eval(s, ids, 5, NULL, &e) == -1);
    CHECKF(strstr(e.msg, "context full"), "%s", e.msg);
    CHECK(mf_eval(s, ids, 4, NULL, &e) == 0);
    mf_session_free(s);
    mf_model_close(m);
}

/* ---- batched prefill and prefetch: the same logits as token by token ---- */

/* The splits tried against token by token: the whole sequence in one call;
 * chunk boundaries inside the prompt, decodes, then a prompt again after
 * them (the next turn of a chat). */
static const int ONE_CALL[] = { 1 << 20 }, SPLIT[] = { 5, 13, 1, 1, 1, 7, 1 << 20 }, BY_TOKEN[] = { 1 };

static void batch_vs_tokens(t_state *t_, const char *path, const int32_t *ids, size_t n, size_t V, uint64_t cache)
{
    float *want = malloc(sizeof(float) * n * V), *got = malloc(sizeof(float) * n * V);
    REQUIRE(want && got);
    mf_error e;
    mf_model_params one = eval_params(1, 0, false), batched = eval_params(0, cache, false);
    CHECKF(eval_parts(path, &one, ids, n, BY_TOKEN, 1, want, NULL, &e) == 0, "%s: %s", path, e.msg);
    CHECKF(eval_parts(path, &batched, ids, n, ONE_CALL, 1, got, NULL, &e) == 0, "%s: %s", path, e.msg);
    CHECKF(memcmp(want, got, sizeof(float) * n * V) == 0, "%s: %zu tokens in one batched call (cache %llu bytes) "
           "differ from token by token", path, n, (unsigned long long)cache);
    memset(got, 0, sizeof(float) * n * V);
    CHECKF(eval_parts(path, &batched, ids, n, SPLIT, sizeof SPLIT / sizeof SPLIT[0], got, NULL, &e) == 0, "%s: %s",
           path, e.msg);
    CHECKF(memcmp(want, got, sizeof(float) * n * V) == 0, "%s: batched calls of 5, 13, 1, 1, 1, 7, rest tokens differ "
           "from token by token", path);
    free(want), free(got);
}

/* Prompt a then prompt b of a golden model: 39 tokens. */
static int32_t *golden_sequence(const char *model, size_t *n)
{
    size_t na, nb;
    int32_t *a = prompt_ids(model, "a", &na), *b = prompt_ids(model, "b", &nb);
    int32_t *ids = a && b ? malloc(sizeof(int32_t) * (na + nb)) : NULL;
    if (ids) {
        memcpy(ids, a, sizeof(int32_t) * na);
        memcpy(ids + na, b, sizeof(int32_t) * nb);
        *n = na + nb;
    }
    free(a), free(b);
    return ids;
}

static const char *const GOLDEN_Q35[] = { "qwen35moe-f32", "qwen35moe-q8_0", "qwen35moe-q4_k_m", "qwen35moe-mtp-q4_k_m" };

TEST(qwen35moe_prefill_batch_identical)
{
    for (size_t i = 0; i < sizeof GOLDEN_Q35 / sizeof GOLDEN_Q35[0]; i++) {
        char file[256];
        snprintf(file, sizeof file, "golden/%s.gguf", GOLDEN_Q35[i]);
        size_t n;
        int32_t *ids = golden_sequence(GOLDEN_Q35[i], &n);
        REQUIREF(ids, "cannot read the prompts of %s", GOLDEN_Q35[i]);
        batch_vs_tokens(t_, t_shared(file), ids, n, 512, 0);
        free(ids);
    }
}

/* A cache of K slots (the minimum) holds fewer experts than a chunk uses
 * per layer: the chunk's experts come in waves of K, evicting each other,
 * and the logits stay those of token by token with every expert cached. */
TEST(qwen35moe_prefill_small_cache_waves)
{
    const char *models[] = { "qwen35moe-f32", "qwen35moe-q4_k_m" };
    for (size_t i = 0; i < 2; i++) {
        char file[256];
        snprintf(file, sizeof file, "golden/%s.gguf", models[i]);
        size_t n;
        int32_t *ids = golden_sequence(models[i], &n);
        REQUIRE(ids);
        mf_error e;
        mf_model *m = mf_model_open(t_shared(file), NULL, &e);
        REQUIREF(m, "%s", e.msg);
        mf_stats st;
        mf_model_stats(m, &st);
        const mf_model_info in = *mf_model_get_info(m);
        mf_model_close(m);
        const uint64_t slot = st.cache_bytes / ((uint64_t)in.n_layer * in.n_expert);
        const uint64_t cache = in.n_expert_used * slot + slot / 2;
        batch_vs_tokens(t_, t_shared(file), ids, n, in.n_vocab, cache);
        /* the waves really ran: more reads than the distinct experts of one layer */
        float *out = malloc(sizeof(float) * n * in.n_vocab);
        mf_model_params mp = eval_params(0, cache, false);
        CHECKF(eval_parts(t_shared(file), &mp, ids, n, ONE_CALL, 1, out, &st, &e) == 0, "%s", e.msg);
        CHECKF(st.cache_misses > in.n_expert && st.cache_misses <= (uint64_t)in.n_layer * in.n_expert,
               "%s: %llu expert reads for one chunk (%u layers x %u experts)", models[i],
               (unsigned long long)st.cache_misses, in.n_layer, in.n_expert);
        free(out), free(ids);
    }
}

/* The synthetic qwen35-tiny shape (a DeltaNet and a full-attention layer,
 * 16 experts, top-4): 300 tokens cross a chunk boundary inside one call. */
TEST(qwen35moe_prefill_synthetic_tiny)
{
    char path[512];
    snprintf(path, sizeof path, "%s/q35-tiny.gguf", t_tmpdir());
    mf_error e;
    REQUIREF(mf_synth_write_arch("qwen35-tiny", path, 0, &e) == 0, "%s", e.msg);
    enum { N = 300, V = 1024 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = 256 + (i * 37 + i / 7) % 700;
    batch_vs_tokens(t_, path, ids, N, V, 0);
    /* with 6 slots for 16 x 2 experts, a chunk reads each expert once per
     * layer at most; token by token re-reads */
    float *out = malloc(sizeof(float) * N * V);
    REQUIRE(out);
    mf_stats sb, st;
    mf_model_params mp = eval_params(0, 0, false);
    mf_model *m = mf_model_open(path, &mp, &e);
    REQUIREF(m, "%s", e.msg);
    mf_model_stats(m, &sb);
    mf_model_close(m);
    const uint64_t slot = sb.cache_bytes / (2 * 16);
    mp = eval_params(0, 6 * slot + slot / 2, false);
    mf_model_params one = eval_params(1, 6 * slot + slot / 2, false);
    CHECKF(eval_parts(path, &mp, ids, N, ONE_CALL, 1, out, &sb, &e) == 0, "%s", e.msg);
    CHECKF(eval_parts(path, &one, ids, N, ONE_CALL, 1, out, &st, &e) == 0, "%s", e.msg);
    printf("  qwen35-tiny, %d tokens, 6-slot cache: batched %llu expert reads, token by token %llu\n", N,
           (unsigned long long)sb.cache_misses, (unsigned long long)st.cache_misses);
    CHECKF(sb.cache_misses <= 2 * 2 * 16, "batched: %llu reads for 2 chunks of 2 layers x 16 experts",
           (unsigned long long)sb.cache_misses);
    CHECKF(sb.cache_misses * 4 < st.cache_misses, "batched %llu vs token by token %llu reads",
           (unsigned long long)sb.cache_misses, (unsigned long long)st.cache_misses);
    free(out);
}

/* Decode prefetch (the next layer's guess) changes when experts arrive,
 * never the logits: on and off give the same bits, token by token through
 * a cache that must stream. */
static void prefetch_identical(t_state *t_, const char *path, const int32_t *ids, size_t n, size_t V, uint32_t slots)
{
    mf_error e;
    mf_model *m = mf_model_open(path, NULL, &e);
    REQUIREF(m, "%s", e.msg);
    mf_stats st;
    mf_model_stats(m, &st);
    const mf_model_info in = *mf_model_get_info(m);
    mf_model_close(m);
    const uint64_t slot = st.cache_bytes / ((uint64_t)in.n_layer * in.n_expert), cache = slots * slot + slot / 2;
    float *off = malloc(sizeof(float) * n * V), *on = malloc(sizeof(float) * n * V);
    REQUIRE(off && on);
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

TEST(qwen35moe_prefetch_identical)
{
    size_t n;
    int32_t *ids = golden_sequence("qwen35moe-q4_k_m", &n);
    REQUIRE(ids);
    prefetch_identical(t_, t_shared("golden/qwen35moe-q4_k_m.gguf"), ids, n, 512, 5);
    free(ids);
    ids = golden_sequence("qwen35moe-f32", &n);
    REQUIRE(ids);
    prefetch_identical(t_, t_shared("golden/qwen35moe-f32.gguf"), ids, n, 512, 12);
    free(ids);
    char path[512];
    snprintf(path, sizeof path, "%s/q35-tiny-pf.gguf", t_tmpdir());
    mf_error e;
    REQUIREF(mf_synth_write_arch("qwen35-tiny", path, 0, &e) == 0, "%s", e.msg);
    int32_t t[48];
    for (int i = 0; i < 48; i++) t[i] = 256 + (i * 53) % 700;
    prefetch_identical(t_, path, t, 48, 1024, 10);
}
