/* cmd_bench.c — `moeflash bench MODEL | --synthetic SHAPE`. The qwen3moe
 * shapes come from mf_synth_preset (with --experts to store the routed
 * experts in another type), the other architectures' from
 * mf_synth_write_arch (with --layers to shorten them); either is written
 * once into the cache directory, each variant under its own name. */
#include "cli/args.h"
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: moeflash bench MODEL | --synthetic SHAPE [--layers N] [--prepare]\n"
            "                      [--cache SIZE|auto] [--io pread|direct|uring] [--io-threads N] [--threads N]\n"
            "                      [--prompt N] [-n N] [--prefill N,N,...] [--experts q4_K|q2_K|iq2_xxs]\n"
            "  SHAPE       qwen3moe: qwen3-30b-a3b, demo, tiny; other architectures: qwen35-35b-a3b,\n"
            "              deepseek-v3, gpt-oss-120b (real shapes), qwen35-tiny, deepseek-v3-tiny, gpt-oss-tiny\n"
            "  --layers N  fewer (or more) layers than the shape has (the other architectures)\n"
            "  --experts T the qwen3moe shapes' routed experts in type T (default q4_K; q2_K 2.62 and\n"
            "              iq2_xxs 2.06 bits per weight), a model file of its own\n"
            "  --prepare   only write the synthetic model (outside a memory cap), print its path, exit\n"
            "  --prefill   measure prompt evaluation of these prompt lengths (batched, after a warm-up,\n"
            "              and token by token for comparison) instead of decode\n");
    return rc;
}

/* The qwen3moe preset with its routed experts in expert_type, written once
 * into the cache directory: q4_K (the preset's own) keeps the name
 * cli_synthetic_model gives it, other types add theirs. */
static int synthetic_experts_model(char *buf, size_t n, const char *preset, const char *type_name, int expert_type)
{
    mf_synth_shape s;
    mf_synth_preset(preset, &s);
    if (expert_type < 0 || (uint32_t)expert_type == s.expert_type) return cli_synthetic_model(buf, n, preset);
    char tn[32], name[160];
    snprintf(tn, sizeof tn, "%s", type_name);
    for (char *p = tn; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p); /* q2_K -> q2_k */
    snprintf(name, sizeof name, "synthetic-%s-%s-v1.gguf", preset, tn);
    if (cli_cache_path(buf, n, name)) return -1;
    struct stat st;
    if (stat(buf, &st) == 0) return 0;
    s.expert_type = (uint32_t)expert_type;
    fprintf(stderr, "writing the synthetic model %s with %s experts (once) to %s ...\n", preset, tn, buf);
    mf_error e;
    if (mf_synth_write(buf, &s, &e)) {
        fprintf(stderr, "moeflash: %s\n", e.msg);
        return -1;
    }
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    cli_common c;
    cli_common_default(&c);
    c.io = NULL;
    c.model.io = NULL;
    const char *model = NULL, *synth = NULL, *experts = NULL;
    int prepare = 0, n_prompt = 16, n_gen = 64, n_layer = 0, prefill[8], n_prefill = 0;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_flag(&c, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(0);
        if (!strcmp(argv[i], "--synthetic") && i + 1 < argc) synth = argv[++i];
        else if (!strcmp(argv[i], "--prepare")) prepare = 1;
        else if (!strcmp(argv[i], "--experts") && i + 1 < argc) experts = argv[++i];
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 4096) {
                fprintf(stderr, "moeflash bench: --layers: expected 1..4096, found '%s'\n", argv[i]);
                return 2;
            }
            n_layer = (int)v;
        } else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) n_prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n_gen = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prefill") && i + 1 < argc) {
            char *p = argv[++i], *end;
            for (n_prefill = 0; *p && n_prefill < 8; p = *end ? end + 1 : end) {
                long v = strtol(p, &end, 10);
                if (end == p || (*end && *end != ',') || v < 1 || v > 65536) {
                    fprintf(stderr, "moeflash bench: --prefill: expected lengths 1..65536 separated by commas, found '%s'\n",
                            argv[i]);
                    return 2;
                }
                prefill[n_prefill++] = (int)v;
            }
        }
        else if (argv[i][0] != '-' && !model) model = argv[i];
        else { fprintf(stderr, "moeflash bench: unexpected argument '%s'\n", argv[i]); return usage(2); }
    }
    if (!model == !synth || (model && (n_layer || experts)) || n_prompt < 1 || n_prompt > 4096 || n_gen < 1)
        return usage(2);
    const int expert_type = experts ? mf_synth_expert_type(experts) : -1;
    if (experts && expert_type < 0) {
        fprintf(stderr, "moeflash bench: --experts: expected q4_K, q2_K or iq2_xxs, found '%s'\n", experts);
        return 2;
    }
    char path[4096];
    if (synth) {
        const int qwen3 = !strcmp(synth, "qwen3-30b-a3b") || !strcmp(synth, "demo") || !strcmp(synth, "tiny");
        mf_error e;
        if (!qwen3 && mf_synth_write_arch(synth, NULL, n_layer, &e)) {
            fprintf(stderr, "moeflash bench: --synthetic: %s, or a qwen3moe shape (qwen3-30b-a3b, demo, tiny)\n", e.msg);
            return 2;
        }
        if (qwen3 && n_layer) {
            fprintf(stderr, "moeflash bench: --layers applies to the other architectures' shapes, not %s\n", synth);
            return 2;
        }
        if (!qwen3 && experts) {
            fprintf(stderr, "moeflash bench: --experts applies to the qwen3moe shapes, not %s\n", synth);
            return 2;
        }
        if (qwen3 ? synthetic_experts_model(path, sizeof path, synth, experts, expert_type)
                  : cli_synthetic_arch_model(path, sizeof path, synth, n_layer))
            return 1;
        if (prepare) { printf("%s\n", path); return 0; }
        model = path;
    }
    mf_bench_params bp = { c.model.n_threads, c.model.cache_bytes, c.model.io, c.io_threads, n_prompt, n_gen,
                           n_prefill ? prefill : NULL, n_prefill, c.model.n_batch,
                           c.model.n_expert_used };
    mf_error e;
    if (mf_bench_run(model, &bp, stdout, &e)) {
        fprintf(stderr, "moeflash: %s\n", e.msg);
        return 1;
    }
    return 0;
}
