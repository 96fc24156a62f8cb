/* test_glm4moe.c — glm4moe against llama.cpp (golden/README.md,
 * "Architectures gpt-oss and glm4moe"): F32 at the F32 row, Q4_K_M at the
 * Q4_K_M row, both prompts; 1 vs 2 threads; a minimal expert cache; the
 * memory plan; a GLM-4.5-style multi-token-prediction block skipped; clear
 * load errors. */
#include "golden.h"
#include "moeflash.h"
#include "gguf.h"
#include "quant/quant.h"
#include "stream_checks.h"

static void run(t_state *t_, const char *model, const golden_limits *lim)
{
    golden_report pr, tf;
    golden_check(t_, "golden", model, "a", lim, 2, &pr, &tf);
    golden_check(t_, "golden", model, "b", lim, 2, &pr, &tf);
}

TEST(glm4moe_f32_golden) { run(t_, "glm4moe-f32", &GOLDEN_F32); }
TEST(glm4moe_q4_k_m_golden) { run(t_, "glm4moe-q4_k_m", &GOLDEN_Q4_K_M); }

TEST(glm4moe_threads_agree)
{
    golden_threads_agree(t_, "golden", "glm4moe-f32", "a");
    golden_threads_agree(t_, "golden", "glm4moe-f32", "b");
    golden_threads_agree(t_, "golden", "glm4moe-q4_k_m", "a");
}

TEST(glm4moe_small_cache_identical)
{
    stream_check_small_cache(t_, "glm4moe-f32");
    stream_check_small_cache(t_, "glm4moe-q4_k_m");
}

/* Layer 0 is dense, so 2 MoE layers. */
TEST(glm4moe_inspect_plan)
{
    stream_check_inspect(t_, "glm4moe-f32", 2);
    stream_check_inspect(t_, "glm4moe-q4_k_m", 2);
}

/* Prompt a's logits of the model at path (n_prompt x V), or NULL. */
static float *prompt_logits(t_state *t_, const char *path, size_t *rows, size_t *V)
{
    char *txt = t_read_file(t_shared("golden/glm4moe-f32.a.prompt.txt"), NULL);
    if (!txt) return NULL;
    int32_t ids[256];
    size_t n = 0;
    for (char *q = txt, *end; n < 256; q = end) {
        long x = strtol(q, &end, 10);
        if (end == q) break;
        ids[n++] = (int32_t)x;
    }
    free(txt);
    mf_error e;
    mf_model *m = mf_model_open(path, NULL, &e);
    CHECKF(m, "%s", e.msg);
    if (!m) return NULL;
    *V = mf_model_get_info(m)->n_vocab;
    *rows = n;
    float *out = malloc(sizeof(float) * n * *V);
    mf_session *s = mf_session_new(m, 64, &e);
    int rc = s ? mf_eval(s, ids, n, out, &e) : -1;
    CHECKF(rc == 0, "%s", e.msg);
    mf_session_free(s);
    mf_model_close(m);
    if (rc) free(out), out = NULL;
    return out;
}

/* GLM-4.5 GGUFs carry one more block than they run (nextn_predict_layers
 * 1, `blk.N.nextn.*`). A copy of the golden model with such a block added
 * (a clone of the last layer plus nextn tensors, experts included) must
 * load and give the same logits bit for bit. */
TEST(glm4moe_nextn_block_skipped)
{
    mf_error e;
    gguf_file *f = gguf_open(t_shared("golden/glm4moe-f32.gguf"), &e);
    REQUIREF(f, "%s", e.msg);
    gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < f->n_kv; i++) {
        if (!strcmp(f->kv[i].key, "glm4moe.block_count")) gguf_w_u32(w, "glm4moe.block_count", 4);
        else gguf_w_value(w, f->kv[i].key, &f->kv[i].val);
    }
    gguf_w_u32(w, "glm4moe.nextn_predict_layers", 1);
    int rc = 0;
    for (uint64_t i = 0; rc == 0 && i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        rc = gguf_w_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &e);
        if (rc == 0 && !strncmp(t->name, "blk.2.", 6)) {
            char name[256];
            snprintf(name, sizeof name, "blk.3.%s", t->name + 6);
            rc = gguf_w_tensor(w, name, t->type, t->n_dims, t->ne, t->data, &e);
        }
    }
    static float zeros[512 * 256];
    static const char *const extra[] = { "blk.3.nextn.enorm.weight", "blk.3.nextn.hnorm.weight",
                                         "blk.3.nextn.shared_head_norm.weight" };
    for (int i = 0; rc == 0 && i < 3; i++) rc = gguf_w_tensor(w, extra[i], MF_TYPE_F32, 1, (uint64_t[]){ 256 }, zeros, &e);
    if (rc == 0) rc = gguf_w_tensor(w, "blk.3.nextn.eh_proj.weight", MF_TYPE_F32, 2, (uint64_t[]){ 512, 256 }, zeros, &e);
    char path[1024];
    snprintf(path, sizeof path, "%s/glm4moe-nextn.gguf", t_tmpdir());
    if (rc == 0) rc = gguf_w_write(w, path, 0, &e);
    gguf_writer_free(w);
    gguf_close(f);
    REQUIREF(rc == 0, "%s", e.msg);

    size_t r1 = 0, r2 = 0, V1 = 0, V2 = 0;
    float *a = prompt_logits(t_, t_shared("golden/glm4moe-f32.gguf"), &r1, &V1);
    float *b = prompt_logits(t_, path, &r2, &V2);
    CHECK(a && b && r1 == r2 && V1 == V2);
    if (a && b && r1 == r2 && V1 == V2) CHECK(memcmp(a, b, sizeof(float) * r1 * V1) == 0);
    mf_model *m = mf_model_open(path, NULL, &e);
    CHECKF(m && mf_model_get_info(m)->n_layer == 3, "%s", m ? "n_layer is not 3" : e.msg);
    mf_model_close(m);
    free(a), free(b);
}

TEST(glm4moe_load_errors)
{
    stream_expect_open_error(t_, stream_copy_without(t_, "glm4moe-f32", "no-probs-b", NULL, "blk.2.exp_probs_b.bias"),
                             "blk.2.exp_probs_b.bias", "missing", NULL);
    stream_expect_open_error(t_, stream_copy_without(t_, "glm4moe-f32", "no-shexp", NULL, "blk.1.ffn_down_shexp.weight"),
                             "blk.1.ffn_down_shexp.weight", NULL);
    stream_expect_open_error(t_, stream_copy_without(t_, "glm4moe-f32", "no-dense", NULL, "blk.0.ffn_up.weight"),
                             "blk.0.ffn_up.weight", NULL);
    stream_expect_open_error(t_, stream_copy_without(t_, "glm4moe-f32", "no-scale", "glm4moe.expert_weights_scale", NULL),
                             "glm4moe.expert_weights_scale", NULL);
    stream_expect_open_error(t_, stream_copy_without(t_, "glm4moe-f32", "no-shared", "glm4moe.expert_shared_count", NULL),
                             "glm4moe.expert_shared_count", NULL);
    /* one of the q/k norms alone is inconsistent */
    stream_expect_open_error(t_, stream_copy_without(t_, "glm4moe-f32", "no-knorm", NULL, "blk.1.attn_k_norm.weight"),
                             "attn_k_norm", NULL);
}
