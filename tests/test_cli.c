/* test_cli.c — the command-line contract (DESIGN.md): exit status 0 / 1
 * (runtime error, message naming the file) / 2 (bad usage); eval writes the
 * golden logits; run prints the golden greedy ids; --stats-json carries
 * every field DESIGN.md lists; inspect prints the memory plan. */
#include "t.h"

#include <math.h>
#include <sys/wait.h>

/* Runs the moeflash binary with args (a shell fragment); captures stdout
 * and stderr (2>&1 when both) into out; returns the exit status. */
static int mf_run(const char *args, char *out, size_t cap)
{
    const char *bin = getenv("MF_BIN");
    if (!bin) bin = "./moeflash";
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char outbuf[1 << 20];

TEST(cli_exit_codes)
{
    CHECK(mf_run("", outbuf, sizeof outbuf) == 2);
    CHECK(mf_run("nosuchcommand", outbuf, sizeof outbuf) == 2);
    CHECK(mf_run("eval", outbuf, sizeof outbuf) == 2);
    CHECK(mf_run("run /x.gguf --tokens 'a b'", outbuf, sizeof outbuf) == 2);
    CHECK(mf_run("run /x.gguf --tokens '1' --cache banana", outbuf, sizeof outbuf) == 2);
    CHECK(mf_run("run /x.gguf --tokens '1' --io floppy", outbuf, sizeof outbuf) == 2);
    CHECK(mf_run("run /nonexistent/model.gguf --tokens '1 2' -n 1", outbuf, sizeof outbuf) == 1);
    CHECKF(strstr(outbuf, "/nonexistent/model.gguf"), "%s", outbuf);
    char args[1024];
    snprintf(args, sizeof args, "run '%s' --tokens '1 2' -n 1", t_shared("golden/README.md"));
    CHECK(mf_run(args, outbuf, sizeof outbuf) == 1);
    CHECKF(strstr(outbuf, "magic"), "%s", outbuf);
    snprintf(args, sizeof args, "run '%s' --tokens '1 99999' -n 1", t_shared("golden/qwen3moe-f32.gguf"));
    CHECK(mf_run(args, outbuf, sizeof outbuf) == 1);
    CHECKF(strstr(outbuf, "99999") && strstr(outbuf, "out of range"), "%s", outbuf);
    CHECK(mf_run("help", outbuf, sizeof outbuf) == 0);
}

TEST(cli_eval_writes_golden_logits)
{
    char *ids = t_read_file(t_shared("golden/qwen3moe-f32.a.prompt.txt"), NULL);
    REQUIRE(ids);
    ids[strcspn(ids, "\n")] = 0;
    char out[600], args[4096];
    snprintf(out, sizeof out, "%s/eval.f32", t_tmpdir());
    snprintf(args, sizeof args, "eval '%s' --tokens '%s' --logits-out '%s' --threads 2", t_shared("golden/qwen3moe-f32.gguf"),
             ids, out);
    CHECKF(mf_run(args, outbuf, sizeof outbuf) == 0, "%s", outbuf);
    size_t n1, n2;
    float *got = t_read_file(out, &n1), *want = t_read_file(t_shared("golden/qwen3moe-f32.a.logits.f32"), &n2);
    REQUIRE(got && want);
    CHECK(n1 == n2);
    double mx = 0;
    for (size_t i = 0; i < n1 / 4 && i < n2 / 4; i++) mx = fmax(mx, fabs((double)got[i] - want[i]));
    CHECKF(mx <= 1e-3, "max |d| %g", mx);
    free(got), free(want), free(ids);
}

TEST(cli_run_greedy_ids_and_stats_json)
{
    char *ids = t_read_file(t_shared("golden/qwen3moe-f32.b.prompt.txt"), NULL);
    char *greedy = t_read_file(t_shared("golden/qwen3moe-f32.b.greedy.txt"), NULL);
    REQUIRE(ids && greedy);
    ids[strcspn(ids, "\n")] = 0;
    char want[512] = "";
    char *line = strtok(greedy, "\n");
    for (int k = 0; line && k < 16; k++, line = strtok(NULL, "\n")) {
        int id;
        sscanf(line, "%d", &id);
        snprintf(want + strlen(want), sizeof want - strlen(want), k ? " %d" : "%d", id);
    }
    char json[600], args[4096];
    snprintf(json, sizeof json, "%s/stats.json", t_tmpdir());
    snprintf(args, sizeof args, "run '%s' --tokens '%s' -n 16 --temp 0 --print-ids --stats-json '%s' --cache 2M 2>/dev/null",
             t_shared("golden/qwen3moe-f32.gguf"), ids, json);
    CHECK(mf_run(args, outbuf, sizeof outbuf) == 0);
    outbuf[strcspn(outbuf, "\n")] = 0;
    CHECKF(!strcmp(outbuf, want), "got  %s\n    want %s", outbuf, want);
    char *js = t_read_file(json, NULL);
    REQUIRE(js);
    static const char *fields[] = { "model", "arch", "threads", "io", "cache_bytes", "prompt_tokens", "generated_tokens",
                                    "prefill_tok_s", "decode_tok_s", "cache_hits", "cache_misses", "hit_rate",
                                    "bytes_read", "read_mb_s", "io_wait_s", "prefetch_issued", "prefetch_used",
                                    "prefetch_wasted", "peak_rss_bytes" };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "\"%s\":", fields[i]);
        CHECKF(strstr(js, key), "stats json lacks %s: %s", fields[i], js);
    }
    CHECKF(strstr(js, "\"generated_tokens\": 16") || strstr(js, "\"generated_tokens\": 15"), "%s", js);
    CHECKF(strstr(js, "\"arch\": \"qwen3moe\""), "%s", js);
    free(js), free(ids), free(greedy);
}

TEST(cli_inspect_plan)
{
    char args[1024];
    snprintf(args, sizeof args, "inspect '%s'", t_shared("golden/qwen3moe-q4_k_m.gguf"));
    CHECK(mf_run(args, outbuf, sizeof outbuf) == 0);
    /* from the golden tensor listing: 3 layers of 8 experts; gate/up q4_K
     * 256x256 (36864 B each per expert), down q4_K in layers 0-1 and q6_K in
     * layer 2 (53760 B per expert) */
    CHECKF(strstr(outbuf, "architecture:  qwen3moe"), "%s", outbuf);
    CHECKF(strstr(outbuf, "L0 110592 L1 110592 L2 127488"), "%s", outbuf);
    CHECKF(strstr(outbuf, "read per token, all K miss: 697344"), "%s", outbuf);
    CHECKF(strstr(outbuf, "blk.2.ffn_down_exps.weight"), "tensor table missing");
}
