/* test_experts_used.c — --experts-used K (mf_model_params.n_expert_used):
 * the model's own K gives the very logits of not giving it; fewer experts
 * route differently (other logits, n_expert_used reports K); more than the
 * model's K, fewer than 1, or any K on a dense model fail at open with a
 * message naming the flag; the CLI takes it as a common flag. */
#include "t.h"
#include "moeflash.h"

#include <sys/wait.h>

/* The prompt's logits at every position with n_expert_used = k; NULL and
 * the error in e when the model does not open. */
static float *logits_with_k(const char *path, int k, const int32_t *ids, size_t n, uint32_t *k_out, mf_error *e)
{
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.n_expert_used = k;
    mf_model *m = mf_model_open(path, &mp, e);
    if (!m) return NULL;
    const mf_model_info *in = mf_model_get_info(m);
    *k_out = in->n_expert_used;
    float *out = malloc(sizeof(float) * n * in->n_vocab);
    mf_session *s = mf_session_new(m, (uint32_t)n + 1, e);
    if (!out || !s || mf_eval(s, ids, n, out, e)) {
        free(out);
        out = NULL;
    }
    mf_session_free(s);
    mf_model_close(m);
    return out;
}

static void check_model(t_state *t_, const char *rel, uint32_t V)
{
    const char *path = t_shared(rel);
    const int32_t ids[] = { 1, 12, 300, 45, 7, 99, 23, 200, 5, 64, 128, 3 };
    const size_t n = sizeof ids / sizeof ids[0], bytes = sizeof(float) * n * V;
    mf_error e;
    uint32_t K = 0, k = 0;
    float *def = logits_with_k(path, 0, ids, n, &K, &e);
    REQUIREF(def, "%s: %s", rel, e.msg);
    REQUIREF(K >= 2, "%s: K = %u, the test needs a model with K >= 2", rel, K);
    float *same = logits_with_k(path, (int)K, ids, n, &k, &e);
    CHECKF(same && k == K && memcmp(def, same, bytes) == 0, "%s: --experts-used %u (the model's K) differs from "
           "the default: %s", rel, K, same ? "other logits" : e.msg);
    float *fewer = logits_with_k(path, (int)K - 1, ids, n, &k, &e);
    CHECKF(fewer && k == K - 1, "%s: --experts-used %u: %s", rel, K - 1, fewer ? "wrong n_expert_used" : e.msg);
    CHECKF(fewer && memcmp(def, fewer, bytes) != 0, "%s: %u experts per token give the logits of %u", rel, K - 1, K);
    free(same), free(fewer);
    const int bad[] = { (int)K + 1, -1 };
    for (int i = 0; i < 2; i++) {
        float *x = logits_with_k(path, bad[i], ids, n, &k, &e);
        CHECKF(!x && strstr(e.msg, "--experts-used") && strstr(e.msg, "expected 1.."), "%s: --experts-used %d: %s",
               rel, bad[i], x ? "accepted" : e.msg);
        free(x);
    }
    free(def);
}

TEST(experts_used_every_moe_arch)
{
    check_model(t_, "golden/qwen35moe-f32.gguf", 512);
    check_model(t_, "golden/qwen3moe-f32.gguf", 512);
    check_model(t_, "golden/deepseek2-f32.gguf", 512);
    check_model(t_, "golden/glm4moe-f32.gguf", 512);
    check_model(t_, "golden/gpt-oss-f32.gguf", 512);
    check_model(t_, "models/stories260K-moe/stories260K-moe-perturbed.gguf", 512);
}

TEST(experts_used_dense_model_refused)
{
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.n_expert_used = 1;
    mf_error e;
    mf_model *m = mf_model_open(t_shared("models/stories260K-moe/stories260K-dense.gguf"), &mp, &e);
    CHECKF(!m && strstr(e.msg, "no routed experts"), "%s", m ? "opened" : e.msg);
    mf_model_close(m);
}

static int run_cli(const char *args)
{
    const char *bin = getenv("MF_BIN");
    if (!bin) bin = "./moeflash";
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null 2>&1", bin, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* 0 or a fraction is bad usage (2); above the model's K a runtime error (1). */
TEST(experts_used_cli)
{
    char args[2048];
    const char *model = t_shared("golden/qwen35moe-f32.gguf");
    snprintf(args, sizeof args, "eval '%s' --tokens '1 2 3' --logits-out '%s/k.f32' --experts-used 1", model, t_tmpdir());
    CHECK(run_cli(args) == 0);
    snprintf(args, sizeof args, "eval '%s' --tokens '1 2 3' --logits-out '%s/k.f32' --experts-used 3", model, t_tmpdir());
    CHECK(run_cli(args) == 1);
    snprintf(args, sizeof args, "eval '%s' --tokens '1 2 3' --logits-out '%s/k.f32' --experts-used 0", model, t_tmpdir());
    CHECK(run_cli(args) == 2);
    snprintf(args, sizeof args, "eval '%s' --tokens '1 2 3' --logits-out '%s/k.f32' --experts-used 1.5", model, t_tmpdir());
    CHECK(run_cli(args) == 2);
}
