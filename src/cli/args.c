/* args.c — parsing of the common flags. */
#include "cli/args.h"

#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_common_default(cli_common *c)
{
    memset(c, 0, sizeof *c);
    mf_model_params_default(&c->model);
    mf_sampler_params_default(&c->sampler);
    c->io = "pread";
}

int cli_parse_size(const char *s, uint64_t *out)
{
    if (!strcmp(s, "auto")) { *out = 0; return 0; }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0) return -1;
    double mult = 1;
    switch (*end) {
    case 'k': case 'K': mult = 1024.0; end++; break;
    case 'm': case 'M': mult = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mult = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': mult = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end == 'B' || *end == 'b') end++;
    if (*end) return -1;
    *out = (uint64_t)(v * mult);
    return 0;
}

int cli_parse_ids(const char *s, int32_t **ids, size_t *n)
{
    size_t cap = 16, k = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return -1;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX) { free(v); return -1; }
        if (k == cap) {
            cap *= 2;
            int32_t *nv = realloc(v, cap * sizeof *v);
            if (!nv) { free(v); return -1; }
            v = nv;
        }
        v[k++] = (int32_t)x;
        p = end;
    }
    *ids = v;
    *n = k;
    return 0;
}

static int want_value(int argc, char **argv, int *i, const char **val)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "moeflash: %s needs a value\n", argv[*i]);
        return -1;
    }
    *val = argv[++*i];
    return 0;
}

static int num(const char *flag, const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "moeflash: %s: expected a number in [%g, %g], found '%s'\n", flag, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

int cli_common_flag(cli_common *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v;
    double x;
    if (!strcmp(a, "--no-prefetch")) { c->no_prefetch = c->model.no_prefetch = true; return 1; }
    if (!strcmp(a, "--stats")) { c->stats = true; return 1; }
#define VAL() if (want_value(argc, argv, i, &v)) return -1
    if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
        VAL(); if (num(a, v, 0, 1024, &x)) return -1; c->model.n_threads = (int)x; return 1;
    }
    if (!strcmp(a, "--cache")) {
        VAL();
        if (cli_parse_size(v, &c->model.cache_bytes)) {
            fprintf(stderr, "moeflash: --cache: expected a size like 512M, 8G or auto, found '%s'\n", v);
            return -1;
        }
        return 1;
    }
    if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) { VAL(); if (num(a, v, 1, 1 << 24, &x)) return -1; c->n_ctx = (uint32_t)x; return 1; }
    if (!strcmp(a, "--io")) {
        VAL();
        if (strcmp(v, "pread") && strcmp(v, "direct") && strcmp(v, "uring")) {
            fprintf(stderr, "moeflash: --io: expected pread, direct or uring, found '%s'\n", v);
            return -1;
        }
        c->io = v;
        c->model.io = v;
        return 1;
    }
    if (!strcmp(a, "--io-threads")) {
        VAL();
        if (num(a, v, 1, 4096, &x)) return -1;
        c->io_threads = c->model.io_threads = (int)x;
        return 1;
    }
    if (!strcmp(a, "--batch") || !strcmp(a, "-b")) {
        VAL();
        if (num(a, v, 1, 65536, &x)) return -1;
        c->batch = (int)x;
        c->model.n_batch = (int)x;
        return 1;
    }
    if (!strcmp(a, "--seed")) { VAL(); if (num(a, v, 0, 1.8e19, &x)) return -1; c->sampler.seed = (uint64_t)x; return 1; }
    if (!strcmp(a, "--temp")) { VAL(); if (num(a, v, 0, 100, &x)) return -1; c->sampler.temperature = (float)x; return 1; }
    if (!strcmp(a, "--top-k")) { VAL(); if (num(a, v, 0, 1e9, &x)) return -1; c->sampler.top_k = (int)x; return 1; }
    if (!strcmp(a, "--top-p")) { VAL(); if (num(a, v, 0, 1, &x)) return -1; c->sampler.top_p = (float)x; return 1; }
    if (!strcmp(a, "--min-p")) { VAL(); if (num(a, v, 0, 1, &x)) return -1; c->sampler.min_p = (float)x; return 1; }
    if (!strcmp(a, "--repeat-penalty")) { VAL(); if (num(a, v, 0, 100, &x)) return -1; c->sampler.repeat_penalty = (float)x; return 1; }
    if (!strcmp(a, "--repeat-last-n")) { VAL(); if (num(a, v, 0, 1 << 20, &x)) return -1; c->sampler.repeat_last_n = (int)x; return 1; }
    if (!strcmp(a, "--stats-json")) { VAL(); c->stats_json = v; return 1; }
    if (!strcmp(a, "--experts-used")) {
        /* 1..64 here; the upper bound that matters, the model's K, is
         * checked when the model is opened */
        VAL();
        if (num(a, v, 1, 64, &x)) return -1;
        if (x != (double)(int)x) {
            fprintf(stderr, "moeflash: %s: expected a whole number of experts, found '%s'\n", a, v);
            return -1;
        }
        c->model.n_expert_used = (int)x;
        return 1;
    }
    if (!strcmp(a, "--policy")) { VAL(); c->model.policy = v; return 1; }
    if (!strcmp(a, "--hot-set")) { VAL(); c->model.hot_set = v; return 1; }
#undef VAL
    return 0;
}

void cli_print_stats(const mf_model *m, const cli_common *c)
{
    mf_stats st;
    mf_model_stats(m, &st);
    if (c->stats) {
        uint64_t look = st.cache_hits + st.cache_misses;
        fprintf(stderr,
                "prompt: %llu tokens in %.2fs (%.2f tok/s); generated: %llu tokens in %.2fs (%.2f tok/s)\n"
                "experts: %llu hits, %llu misses (hit rate %.1f%%), %.1f MB read, %.2fs waiting on I/O; peak RSS %.1f MB\n",
                (unsigned long long)st.prompt_tokens, st.prefill_s, st.prefill_s > 0 ? st.prompt_tokens / st.prefill_s : 0,
                (unsigned long long)st.generated_tokens, st.decode_s, st.decode_s > 0 ? st.generated_tokens / st.decode_s : 0,
                (unsigned long long)st.cache_hits, (unsigned long long)st.cache_misses,
                look ? 100.0 * st.cache_hits / look : 0, st.bytes_read / 1e6, st.io_wait_s, st.peak_rss_bytes / 1e6);
    }
    if (c->stats_json) {
        mf_error e;
        if (mf_stats_write_json(m, &st, c->io, c->stats_json, &e)) fprintf(stderr, "moeflash: %s\n", e.msg);
    }
}

int cli_cache_path(char *buf, size_t n, const char *name)
{
    char dir[3072];
    const char *env = getenv("MF_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (env && *env) snprintf(dir, sizeof dir, "%s", env);
    else if (xdg && *xdg) snprintf(dir, sizeof dir, "%s/moeflash", xdg);
    else if (home && *home) snprintf(dir, sizeof dir, "%s/.cache/moeflash", home);
    else snprintf(dir, sizeof dir, "/tmp/moeflash-cache");
    /* create each level */
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') { *p = 0; mkdir(dir, 0755); *p = '/'; }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "moeflash: cannot create the cache directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    snprintf(buf, n, "%s/%s", dir, name);
    return 0;
}

int cli_synthetic_model(char *buf, size_t n, const char *preset)
{
    char name[128];
    snprintf(name, sizeof name, "synthetic-%s-v1.gguf", preset);
    if (cli_cache_path(buf, n, name)) return -1;
    struct stat st;
    if (stat(buf, &st) == 0) return 0;
    mf_synth_shape s;
    mf_synth_preset(preset, &s);
    fprintf(stderr, "writing the synthetic model %s (once) to %s ...\n", preset, buf);
    mf_error e;
    if (mf_synth_write(buf, &s, &e)) {
        fprintf(stderr, "moeflash: %s\n", e.msg);
        return -1;
    }
    return 0;
}

int cli_synthetic_arch_model(char *buf, size_t n, const char *preset, int n_layer)
{
    mf_error e;
    if (mf_synth_write_arch(preset, NULL, n_layer, &e)) {
        fprintf(stderr, "moeflash: %s\n", e.msg);
        return -1;
    }
    char name[160];
    if (n_layer > 0) snprintf(name, sizeof name, "synthetic-%s-L%d-v1.gguf", preset, n_layer);
    else snprintf(name, sizeof name, "synthetic-%s-v1.gguf", preset);
    if (cli_cache_path(buf, n, name)) return -1;
    struct stat st;
    if (stat(buf, &st) == 0) return 0;
    fprintf(stderr, "writing the synthetic model %s%s (once) to %s ...\n", preset, n_layer > 0 ? " (fewer layers)" : "",
            buf);
    if (mf_synth_write_arch(preset, buf, n_layer, &e)) {
        fprintf(stderr, "moeflash: %s\n", e.msg);
        return -1;
    }
    return 0;
}
