/* test_gptoss.c — gpt-oss against llama.cpp (golden/README.md, "Architectures
 * gpt-oss and glm4moe"): F32 at the F32 row, MXFP4 at the Q4_K_M row, both
 * prompts; 1 vs 2 threads; a minimal expert cache; the memory plan; the
 * sliding-window ring (prompt a is twice the window); clear load errors. */
#include "golden.h"
#include "moeflash.h"
#include "stream_checks.h"

#include <math.h>

static void run(t_state *t_, const char *model, const golden_limits *lim)
{
    golden_report pr, tf;
    golden_check(t_, "golden", model, "a", lim, 2, &pr, &tf);
    golden_check(t_, "golden", model, "b", lim, 2, &pr, &tf);
}

TEST(gptoss_f32_golden) { run(t_, "gpt-oss-f32", &GOLDEN_F32); }
/* README: "gpt-oss-mxfp4 and glm4moe-q4_k_m: the Q4_K_M row". */
TEST(gptoss_mxfp4_golden) { run(t_, "gpt-oss-mxfp4", &GOLDEN_Q4_K_M); }

TEST(gptoss_threads_agree)
{
    golden_threads_agree(t_, "golden", "gpt-oss-f32", "a");
    golden_threads_agree(t_, "golden", "gpt-oss-f32", "b");
    golden_threads_agree(t_, "golden", "gpt-oss-mxfp4", "a");
}

TEST(gptoss_small_cache_identical)
{
    stream_check_small_cache(t_, "gpt-oss-f32");
    stream_check_small_cache(t_, "gpt-oss-mxfp4");
}

TEST(gptoss_inspect_plan)
{
    stream_check_inspect(t_, "gpt-oss-f32", 4);
    stream_check_inspect(t_, "gpt-oss-mxfp4", 4);
}

static int32_t *prompt_ids(const char *p, size_t *n)
{
    char path[256];
    snprintf(path, sizeof path, "golden/gpt-oss-f32.%s.prompt.txt", p);
    char *txt = t_read_file(t_shared(path), NULL);
    if (!txt) return NULL;
    int32_t *v = malloc(256 * sizeof *v);
    *n = 0;
    for (char *q = txt, *end; *n < 256; q = end) {
        long x = strtol(q, &end, 10);
        if (end == q) break;
        v[(*n)++] = (int32_t)x;
    }
    free(txt);
    return v;
}

/* The sliding layers keep a ring of `sliding_window` (16) rows. Going back
 * one position is possible (the next window is still there), two is not
 * once the ring has wrapped, 0 always is; a context shorter than the
 * window gives the same logits as a long one. */
TEST(gptoss_window_ring)
{
    size_t n;
    int32_t *ids = prompt_ids("a", &n);
    REQUIRE(ids && n == 32);
    mf_error e;
    mf_model *m = mf_model_open(t_shared("golden/gpt-oss-f32.gguf"), NULL, &e);
    REQUIREF(m, "%s", e.msg);
    const size_t V = mf_model_get_info(m)->n_vocab;
    float *ref = malloc(sizeof(float) * n * V), *row = malloc(sizeof(float) * V);
    mf_session *s = mf_session_new(m, 512, &e);
    REQUIREF(s && mf_eval(s, ids, n, ref, &e) == 0, "%s", e.msg);
    /* back one: the window of position 31 (16..30) is still in the ring */
    CHECKF(mf_session_truncate(s, 31, &e) == 0, "%s", e.msg);
    CHECKF(mf_eval(s, &ids[31], 1, row, &e) == 0, "%s", e.msg);
    CHECK(memcmp(row, ref + 31 * V, sizeof(float) * V) == 0);
    /* back two: position 15 was overwritten by 31 */
    CHECK(mf_session_truncate(s, 30, &e) != 0);
    CHECKF(strstr(e.msg, "sliding-window") && strstr(e.msg, "16"), "%s", e.msg);
    CHECK(mf_session_n_past(s) == 32);
    /* from scratch, token by token, the same logits bit for bit */
    CHECKF(mf_session_truncate(s, 0, &e) == 0, "%s", e.msg);
    for (size_t i = 0; i < n; i++) {
        CHECKF(mf_eval(s, &ids[i], 1, row, &e) == 0, "%s", e.msg);
        CHECKF(memcmp(row, ref + i * V, sizeof(float) * V) == 0, "position %zu differs after truncating to 0", i);
    }
    mf_session_free(s);
    /* a context of 12 (< window): the ring is the whole context */
    s = mf_session_new(m, 12, &e);
    REQUIREF(s, "%s", e.msg);
    CHECKF(mf_eval(s, ids, 12, ref + 0, &e) == 0, "%s", e.msg);
    float *again = malloc(sizeof(float) * 12 * V);
    mf_session *s2 = mf_session_new(m, 512, &e);
    CHECKF(s2 && mf_eval(s2, ids, 12, again, &e) == 0, "%s", e.msg);
    CHECK(memcmp(ref, again, sizeof(float) * 12 * V) == 0);
    CHECK(mf_eval(s, ids, 1, row, &e) != 0); /* context full */
    mf_session_free(s2);
    mf_session_free(s);
    mf_model_close(m);
    free(ids), free(ref), free(row), free(again);
}

TEST(gptoss_load_errors)
{
    stream_expect_open_error(t_, stream_copy_without(t_, "gpt-oss-f32", "no-sinks", NULL, "blk.2.attn_sinks.weight"),
                             "blk.2.attn_sinks.weight", "missing", NULL);
    stream_expect_open_error(t_, stream_copy_without(t_, "gpt-oss-f32", "no-exp-bias", NULL, "blk.1.ffn_down_exps.bias"),
                             "blk.1.ffn_down_exps.bias", "missing", NULL);
    stream_expect_open_error(t_, stream_copy_without(t_, "gpt-oss-f32", "no-router-bias", NULL, "blk.3.ffn_gate_inp.bias"),
                             "blk.3.ffn_gate_inp.bias", NULL);
    stream_expect_open_error(t_, stream_copy_without(t_, "gpt-oss-f32", "no-window", "gpt-oss.attention.sliding_window", NULL),
                             "gpt-oss.attention.sliding_window", NULL);
    stream_expect_open_error(t_, stream_copy_without(t_, "gpt-oss-f32", "no-eps", "gpt-oss.attention.layer_norm_rms_epsilon",
                                                     NULL),
                             "layer_norm_rms_epsilon", NULL);
}
