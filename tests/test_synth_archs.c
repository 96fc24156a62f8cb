/* test_synth_archs.c — the synthetic qwen35moe, deepseek2 and gpt-oss
 * models of src/models/synth_archs.c, in their tiny presets (a few MB):
 * each loads with its architecture, decodes with finite logits, routes
 * over (nearly) all of its experts without one expert taking the load,
 * and `inspect`'s memory plan adds up (resident + experts = total, equal
 * to the sums over the file's tensor table). A layer override changes
 * the layer count (and deepseek2's dense/MoE split), writing is
 * deterministic, and an unknown preset is refused by name. */
#include "t.h"
#include "gguf.h"
#include "moeflash.h"

#include <inttypes.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *write_preset(t_state *t_, const char *preset, int n_layer, const char *tag)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/sa-%s-%d%s.gguf", t_tmpdir(), preset, n_layer, tag);
    mf_error e;
    int rc = mf_synth_write_arch(preset, path, n_layer, &e);
    CHECKF(rc == 0, "%s: %s", preset, e.msg);
    return rc ? NULL : path;
}

/* The integer after `label` in text, or -1. */
static int64_t after(const char *text, const char *label)
{
    const char *p = strstr(text, label);
    return p ? strtoll(p + strlen(label), NULL, 10) : -1;
}

static void check_plan(t_state *t_, const char *path, uint32_t n_moe_layers)
{
    mf_error e;
    gguf_file *f = gguf_open(path, &e);
    REQUIREF(f, "%s", e.msg);
    uint64_t total = 0, experts = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        total += f->tensors[i].nbytes;
        if (strstr(f->tensors[i].name, "_exps.")) experts += f->tensors[i].nbytes;
    }
    /* untied in every synthetic preset: the embedding stays on disk */
    const gguf_tensor *te = gguf_find_tensor(f, "token_embd.weight");
    CHECK(te && gguf_find_tensor(f, "output.weight"));
    const uint64_t embd = te ? te->nbytes : 0;
    gguf_close(f);
    char *out = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&out, &len);
    REQUIRE(mem);
    int rc = mf_inspect(path, mem, &e);
    fclose(mem);
    CHECKF(rc == 0, "%s", e.msg);
    int64_t t = after(out, "total tensor bytes:"), r = after(out, "resident (non-expert):"), x = after(out, "routed experts:");
    int64_t d = after(out, "token embedding, read per token:");
    CHECKF(t > 0 && r > 0 && x > 0, "%s: inspect prints no memory plan", path);
    CHECKF(d >= 0 && (uint64_t)d == embd, "embedding read per token %" PRId64 ", the tensor is %" PRIu64 " bytes", d, embd);
    CHECKF(r + d + x == t, "resident %" PRId64 " + embedding %" PRId64 " + experts %" PRId64 " != total %" PRId64, r, d,
           x, t);
    CHECKF((uint64_t)t == total && (uint64_t)x == experts, "plan total %" PRId64 " / experts %" PRId64
           ", the tensor table sums to %" PRIu64 " / %" PRIu64, t, x, total, experts);
    char want[64];
    snprintf(want, sizeof want, "in %u MoE layers", n_moe_layers);
    CHECKF(strstr(out, want) != NULL, "inspect does not say \"%s\"", want);
    free(out);
}

/* n tokens (pseudo-random ids: greedy decoding of random weights soon
 * cycles, which would say little about routing); every logit finite. Then
 * per MoE layer: every selection counted, at least 3/4 of the experts
 * used, none more than 4x its uniform share; *n_moe counts those layers. */
static void check_decode(t_state *t_, const char *path, const char *arch, uint32_t n_layer, int n, uint32_t *n_moe)
{
    mf_error e;
    mf_model *m = mf_model_open(path, NULL, &e);
    *n_moe = 0;
    REQUIREF(m, "%s", e.msg);
    const mf_model_info *in = mf_model_get_info(m);
    CHECKF(!strcmp(in->arch, arch), "arch %s, expected %s", in->arch, arch);
    CHECKF(in->n_layer == n_layer, "%u layers, expected %u", in->n_layer, n_layer);
    mf_session *s = mf_session_new(m, 256, &e);
    if (!s) { CHECKF(0, "%s", e.msg); goto done; }
    uint64_t seed = 7;
    for (int k = 0; k < n; k++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int32_t tok = (int32_t)((seed >> 33) % in->n_vocab);
        if (mf_eval(s, &tok, 1, NULL, &e)) { CHECKF(0, "token %d: %s", k, e.msg); goto done; }
        const float *l = mf_session_logits(s);
        uint32_t bad = 0;
        for (uint32_t i = 0; i < in->n_vocab; i++) bad += !isfinite(l[i]);
        if (bad) { CHECKF(0, "token %d: %u non-finite logits", k, bad); goto done; }
    }
    uint64_t counts[512];
    if (in->n_expert > 512) { CHECK(in->n_expert <= 512); goto done; }
    for (uint32_t l = 0; l < in->n_layer; l++) {
        mf_model_expert_uses(m, l, counts);
        uint64_t total = 0, mx = 0;
        uint32_t used = 0;
        for (uint32_t i = 0; i < in->n_expert; i++) {
            total += counts[i];
            used += counts[i] > 0;
            mx = counts[i] > mx ? counts[i] : mx;
        }
        if (total == 0) continue; /* a dense layer */
        (*n_moe)++;
        printf("  %s layer %u: %u of %u experts used, busiest %" PRIu64 " of %" PRIu64 " selections\n", arch, l, used,
               in->n_expert, mx, total);
        CHECKF(total == (uint64_t)n * in->n_expert_used, "layer %u: %" PRIu64 " selections", l, total);
        CHECKF(4 * used >= 3 * in->n_expert, "layer %u: only %u of %u experts used", l, used, in->n_expert);
        CHECKF(mx * in->n_expert <= 4 * total, "layer %u: one expert took %" PRIu64 " of %" PRIu64, l, mx, total);
    }
done:
    mf_session_free(s);
    mf_model_close(m);
}

static void check_preset(t_state *t_, const char *preset, const char *arch, int n_layer, uint32_t want_layers,
                         uint32_t want_moe, uint64_t max_bytes)
{
    const char *path = write_preset(t_, preset, n_layer, "");
    REQUIRE(path);
    char keep[512];
    snprintf(keep, sizeof keep, "%s", path);
    struct stat st;
    REQUIRE(stat(keep, &st) == 0);
    CHECKF((uint64_t)st.st_size < max_bytes, "%s: %lld bytes, expected under %" PRIu64, preset, (long long)st.st_size,
           max_bytes);
    uint32_t n_moe;
    check_decode(t_, keep, arch, want_layers, t_asan() ? 12 : 40, &n_moe);
    CHECKF(n_moe == want_moe, "%s: %u MoE layers routed, expected %u", preset, n_moe, want_moe);
    check_plan(t_, keep, want_moe);
}

/* 2 layers: DeltaNet + full attention (interval 2 in the tiny preset) */
TEST(synth_arch_qwen35) { check_preset(t_, "qwen35-tiny", "qwen35moe", 0, 2, 2, 6 << 20); }
/* 2 layers: one leading dense layer, one MoE layer */
TEST(synth_arch_deepseek2) { check_preset(t_, "deepseek-v3-tiny", "deepseek2", 0, 2, 1, 6 << 20); }
/* 2 layers: layer 0 slides (window 8, exceeded by the decode), layer 1 is full */
TEST(synth_arch_gptoss) { check_preset(t_, "gpt-oss-tiny", "gpt-oss", 0, 2, 2, 6 << 20); }

TEST(synth_arch_layers_override)
{
    /* deepseek2 keeps one dense layer per four, at least one, at most the
     * preset's (1 here) */
    check_preset(t_, "deepseek-v3-tiny", "deepseek2", 3, 3, 2, 9 << 20);
    check_preset(t_, "gpt-oss-tiny", "gpt-oss", 1, 1, 1, 3 << 20);
}

TEST(synth_arch_deterministic)
{
    const char *p = write_preset(t_, "gpt-oss-tiny", 0, "-a");
    REQUIRE(p);
    char a[512];
    snprintf(a, sizeof a, "%s", p);
    p = write_preset(t_, "gpt-oss-tiny", 0, "-b");
    REQUIRE(p);
    size_t na = 0, nb = 0;
    char *da = t_read_file(a, &na), *db = t_read_file(p, &nb);
    CHECK(da && db && na == nb && memcmp(da, db, na) == 0);
    free(da);
    free(db);
}

TEST(synth_arch_errors)
{
    mf_error e;
    CHECK(mf_synth_write_arch("qwen35-tiny", NULL, 0, &e) == 0);
    CHECK(mf_synth_write_arch("nope", NULL, 0, &e) != 0);
    CHECKF(strstr(e.msg, "nope") && strstr(e.msg, "deepseek-v3"), "%s", e.msg);
    CHECK(mf_synth_write_arch("gpt-oss-tiny", NULL, -1, &e) != 0);
    char path[512];
    snprintf(path, sizeof path, "%s/no-such-dir/x.gguf", t_tmpdir());
    CHECK(mf_synth_write_arch("gpt-oss-tiny", path, 0, &e) != 0);
    CHECKF(strstr(e.msg, "no-such-dir"), "%s", e.msg);
}

/* `moeflash bench --synthetic NAME [--layers N] --prepare` writes the
 * model once into the cache directory and prints its path; an unknown
 * shape, or --layers with a qwen3moe shape, is a usage error. */
TEST(synth_arch_bench_cli)
{
    const char *bin = getenv("MF_BIN");
    REQUIREF(bin, "MF_BIN is not set (run through make test)");
    char cmd[2048], out[512];
    snprintf(out, sizeof out, "%s/bench-prepare.txt", t_tmpdir());
    snprintf(cmd, sizeof cmd, "MF_CACHE_DIR='%s/cache' '%s' bench --synthetic gpt-oss-tiny --layers 1 --prepare > '%s' 2>/dev/null",
             t_tmpdir(), bin, out);
    REQUIRE(system(cmd) == 0);
    char *txt = t_read_file(out, NULL);
    REQUIRE(txt);
    txt[strcspn(txt, "\n")] = 0;
    struct stat st;
    CHECKF(strstr(txt, "/cache/synthetic-gpt-oss-tiny-L1-v1.gguf") && stat(txt, &st) == 0, "printed '%s'", txt);
    free(txt);
    snprintf(cmd, sizeof cmd, "MF_CACHE_DIR='%s/cache' '%s' bench --synthetic nope --prepare 2>/dev/null", t_tmpdir(), bin);
    int rc = system(cmd);
    CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "unknown shape: status %d", rc);
    snprintf(cmd, sizeof cmd, "MF_CACHE_DIR='%s/cache' '%s' bench --synthetic tiny --layers 2 --prepare 2>/dev/null", t_tmpdir(), bin);
    rc = system(cmd);
    CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "--layers with a qwen3moe shape: status %d", rc);
}
