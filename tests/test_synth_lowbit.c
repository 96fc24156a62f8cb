/* test_synth_lowbit.c — the synthetic qwen3moe model with its routed
 * experts in Q2_K or IQ2_XXS (src/models/synth.c), the variant the low-bit
 * benchmark streams: the expert weights have the spread the Q4_K preset
 * gives them (so activations neither vanish nor blow up), the model decodes
 * with finite logits of the Q4_K model's magnitude, `inspect` reports the
 * types' bits per weight (2.62, 2.06), and `moeflash bench --experts`
 * names a file of its own and refuses types it cannot write. */
#include "t.h"
#include "gguf.h"
#include "moeflash.h"
#include "quant/quant.h"

#include <math.h>
#include <sys/wait.h>

static const char *write_tiny(t_state *t_, uint32_t expert_type, char *path, size_t n)
{
    snprintf(path, n, "%s/synth-lowbit-%s.gguf", t_tmpdir(), quant_type(expert_type)->name);
    mf_synth_shape s;
    mf_synth_preset("tiny", &s);
    s.expert_type = expert_type;
    mf_error e;
    const int rc = mf_synth_write(path, &s, &e);
    CHECKF(rc == 0, "%s", e.msg);
    return rc ? NULL : path;
}

/* Mean and standard deviation of the dequantized tensor `name`. */
static int tensor_spread(t_state *t_, const char *path, const char *name, uint32_t want_type, double *mean, double *std)
{
    mf_error e;
    gguf_file *f = gguf_open(path, &e);
    CHECKF(f, "%s", e.msg);
    if (!f) return -1;
    const gguf_tensor *t = gguf_find_tensor(f, name);
    int rc = -1;
    float *v = t ? malloc(t->nelem * sizeof *v) : NULL;
    if (!t || !v) { CHECKF(0, "%s: no tensor %s", path, name); goto out; }
    CHECKF(t->type == want_type, "%s: %s is %s, expected %s", path, name, quant_type(t->type)->name,
           quant_type(want_type)->name);
    quant_type(t->type)->dequant(t->data, v, t->nelem);
    double s = 0, sq = 0;
    for (uint64_t i = 0; i < t->nelem; i++) {
        if (!isfinite(v[i])) { CHECKF(0, "%s: %s value %llu not finite", path, name, (unsigned long long)i); goto out; }
        s += v[i];
        sq += (double)v[i] * v[i];
    }
    *mean = s / (double)t->nelem;
    *std = sqrt(sq / (double)t->nelem - *mean * *mean);
    rc = 0;
out:
    free(v);
    gguf_close(f);
    return rc;
}

/* Decodes n pseudo-random tokens; every logit finite. The root mean square
 * of the last logits, or -1. */
static double decode_rms(t_state *t_, const char *path, int n)
{
    mf_error e;
    mf_model *m = mf_model_open(path, NULL, &e);
    CHECKF(m, "%s", e.msg);
    if (!m) return -1;
    const uint32_t V = mf_model_get_info(m)->n_vocab;
    mf_session *s = mf_session_new(m, 64, &e);
    double rms = -1;
    if (!s) { CHECKF(0, "%s", e.msg); goto out; }
    uint64_t seed = 5;
    for (int k = 0; k < n; k++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int32_t tok = (int32_t)((seed >> 33) % V);
        if (mf_eval(s, &tok, 1, NULL, &e)) { CHECKF(0, "%s token %d: %s", path, k, e.msg); goto out; }
        const float *l = mf_session_logits(s);
        double sq = 0;
        for (uint32_t i = 0; i < V; i++) {
            if (!isfinite(l[i])) { CHECKF(0, "%s token %d: logit %u is %g", path, k, i, l[i]); goto out; }
            sq += (double)l[i] * l[i];
        }
        rms = sqrt(sq / V);
    }
out:
    mf_session_free(s);
    mf_model_close(m);
    return rms;
}

TEST(synth_lowbit_experts)
{
    CHECK(mf_synth_expert_type("IQ2_XXS") == MF_TYPE_IQ2_XXS && mf_synth_expert_type("q2_k") == MF_TYPE_Q2_K);
    CHECK(mf_synth_expert_type("q4_K") == MF_TYPE_Q4_K);
    CHECK(mf_synth_expert_type("q8_0") == -1 && mf_synth_expert_type("bogus") == -1 && mf_synth_expert_type(NULL) == -1);

    static const struct { uint32_t type; const char *bpw; } v[] = {
        { MF_TYPE_Q4_K, "4.50" }, { MF_TYPE_Q2_K, "2.62" }, { MF_TYPE_IQ2_XXS, "2.06" },
    };
    const double want_gate = 1.0 / 16.0, want_down = 0.3 / 16.0; /* tiny: n_embd = n_ff_exp = 256 */
    double rms_q4 = -1;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char path[512];
        const char *tn = quant_type(v[i].type)->name;
        REQUIRE(write_tiny(t_, v[i].type, path, sizeof path));
        double mean, std;
        if (tensor_spread(t_, path, "blk.1.ffn_gate_exps.weight", v[i].type, &mean, &std) == 0) {
            printf("  %-7s gate experts: mean %+.5f std %.5f (want 0, %.5f)\n", tn, mean, std, want_gate);
            CHECKF(fabs(std / want_gate - 1) < 0.05, "%s gate: std %g, want %g", tn, std, want_gate);
            CHECKF(fabs(mean) < 0.02 * want_gate, "%s gate: mean %g", tn, mean);
        }
        if (tensor_spread(t_, path, "blk.0.ffn_down_exps.weight", v[i].type, &mean, &std) == 0)
            CHECKF(fabs(std / want_down - 1) < 0.05 && fabs(mean) < 0.02 * want_down, "%s down: mean %g std %g, want %g",
                   tn, mean, std, want_down);

        char *out = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&out, &len);
        REQUIRE(mem);
        mf_error e;
        const int rc = mf_inspect(path, mem, &e);
        fclose(mem);
        CHECKF(rc == 0, "%s", e.msg);
        char want[96];
        snprintf(want, sizeof want, "experts in %-8s", tn);
        const char *line = out ? strstr(out, want) : NULL;
        CHECKF(line && strstr(line, v[i].bpw) && strstr(line, v[i].bpw) < strchr(line, '\n'),
               "inspect: no \"%s ... %s bits per weight\" line in:\n%s", want, v[i].bpw, out ? out : "");
        free(out);

        const double rms = decode_rms(t_, path, t_asan() ? 6 : 16);
        printf("  %-7s logits rms %.3f\n", tn, rms);
        CHECK(rms > 0);
        if (v[i].type == MF_TYPE_Q4_K) rms_q4 = rms;
        else CHECKF(rms > 0.5 * rms_q4 && rms < 2 * rms_q4, "%s: logits rms %g, q4_K experts %g", tn, rms, rms_q4);
    }
}

/* Runs the moeflash binary with args; stdout (only) into out. */
static int mf_run(const char *args, char *out, size_t cap)
{
    const char *bin = getenv("MF_BIN");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "MF_CACHE_DIR='%s/lowbit-cache' '%s' %s 2>/dev/null", t_tmpdir(), bin ? bin : "./moeflash",
             args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(synth_lowbit_bench_cli)
{
    char out[8192];
    CHECK(mf_run("bench --synthetic tiny --experts q8_0 --prepare", out, sizeof out) == 2);
    CHECK(mf_run("bench --synthetic gpt-oss-tiny --experts q2_K --prepare", out, sizeof out) == 2);
    CHECK(mf_run("bench /x.gguf --experts q2_K", out, sizeof out) == 2);
    CHECK(mf_run("bench --synthetic tiny --experts IQ2_XXS --prepare", out, sizeof out) == 0);
    CHECKF(strstr(out, "/synthetic-tiny-iq2_xxs-v1.gguf\n"), "%s", out);
    CHECK(mf_run("bench --synthetic tiny --experts q4_K --prepare", out, sizeof out) == 0);
    CHECKF(strstr(out, "/synthetic-tiny-v1.gguf\n"), "%s", out);
    CHECK(mf_run("bench --help", out, sizeof out) == 0);
    CHECKF(strstr(out, "--experts"), "%s", out);
}
