/* cmd_demo.c — `moeflash demo [--model PATH]`: a self-contained streaming
 * demonstration. Without --model it writes (once, in the cache directory)
 * a synthetic random-weight qwen3moe whose experts are several times the
 * expert cache it then runs with, drops the file from the page cache, and
 * generates while showing tok/s, cache hit rate and MB/s read from disk.
 * The synthetic vocabulary is English words, so the (random) output reads
 * as words; --model runs a real model the same way.
 */
#include "cli/args.h"
#include "cli/cli.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: moeflash demo [--model PATH] [-p TEXT] [-n N] [--cache SIZE|auto] [--io pread|direct|uring]\n"
            "                     [--threads N] [--temp T] [--seed S] [--stats-json FILE]\n");
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void drop_page_cache(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

int cmd_demo(int argc, char **argv)
{
    cli_common c;
    cli_common_default(&c);
    c.sampler.temperature = 0.7f;
    const char *model = NULL, *prompt = NULL;
    long n_gen = 96;
    int io_set = 0, cache_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        io_set |= !strcmp(a, "--io");
        cache_set |= !strcmp(a, "--cache");
        int r = cli_common_flag(&c, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(0);
        if (!strcmp(a, "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(a, "-p") && i + 1 < argc) prompt = argv[++i];
        else if (!strcmp(a, "-n") && i + 1 < argc) n_gen = strtol(argv[++i], NULL, 10);
        else { fprintf(stderr, "moeflash demo: unexpected argument '%s'\n", a); return usage(2); }
    }
    if (n_gen < 1) return usage(2);
    char path[4096];
    int synthetic = !model;
    if (synthetic) {
        if (cli_synthetic_model(path, sizeof path, "demo")) return 1;
        model = path;
        if (!prompt) prompt = " the river and the machine";
    } else if (!prompt) {
        prompt = "Once upon a time";
    }
    if (!io_set) c.model.io = c.io = "direct";

    mf_error e;
    mf_vocab *v = mf_vocab_open(model, &e);
    if (!v) { fprintf(stderr, "moeflash: %s\n", e.msg); return 1; }
    if (synthetic && !cache_set) {
        /* a quarter of the experts: the model is 4x the cache */
        mf_model_params probe = c.model;
        probe.io = "pread";
        mf_model *m = mf_model_open(model, &probe, &e);
        if (!m) { fprintf(stderr, "moeflash: %s\n", e.msg); mf_vocab_free(v); return 1; }
        mf_stats st;
        mf_model_stats(m, &st);
        c.model.cache_bytes = st.cache_bytes / 4;
        mf_model_close(m);
    }
    drop_page_cache(model);
    double t_open = now_s();
    mf_model *m = mf_model_open(model, &c.model, &e);
    if (!m && !io_set && strstr(e.msg, "O_DIRECT")) { /* e.g. tmpfs: fall back to pread */
        c.model.io = c.io = "pread";
        m = mf_model_open(model, &c.model, &e);
    }
    if (!m) { fprintf(stderr, "moeflash: %s\n", e.msg); mf_vocab_free(v); return 1; }
    t_open = now_s() - t_open;
    const mf_model_info *in = mf_model_get_info(m);
    mf_stats st0;
    mf_model_stats(m, &st0);
    fprintf(stderr, "moeflash demo: %s (%s, %u layers, %u experts, top-%u)\n", model, in->arch, in->n_layer,
            in->n_expert, in->n_expert_used);
    fprintf(stderr, "  expert cache %.0f MB, --io %s, %d threads; loaded in %.2fs\n", st0.cache_bytes / 1e6, c.io,
            in->n_threads, t_open);

    int rc = 1;
    int32_t *ids = NULL, *hist = NULL;
    size_t n = 0;
    mf_session *s = NULL;
    mf_sampler *smp = NULL;
    mf_detok *dt = NULL;
    if (mf_tokenize(v, prompt, strlen(prompt), false, mf_vocab_add_bos(v), &ids, &n, &e)) goto done;
    s = mf_session_new(m, c.n_ctx ? c.n_ctx : (uint32_t)(n + (size_t)n_gen + 8), &e);
    if (!s) goto done;
    smp = mf_sampler_new(&c.sampler, in->n_vocab);
    hist = malloc((n + (size_t)n_gen) * sizeof *hist);
    dt = mf_detok_new(v, false, &e);
    if (!smp || !hist || !dt) { if (smp && hist) mf_fail(&e, "out of memory"); goto done; }
    memcpy(hist, ids, n * sizeof *ids);
    size_t nh = n;
    fputs(prompt, stdout);
    fflush(stdout);
    if (mf_eval(s, ids, n, NULL, &e)) goto done;
    int tty = isatty(2);
    double t0 = now_s();
    mf_stats a;
    mf_model_stats(m, &a);
    long k;
    for (k = 0; k < n_gen; k++) {
        int32_t t = mf_sample(smp, mf_session_logits(s), hist, nh);
        mf_sampler_accept(smp, t);
        hist[nh++] = t;
        if (mf_token_is_eog(v, t)) break;
        const char *out;
        size_t len;
        if (mf_detok_push(dt, t, &out, &len, &e)) goto done;
        fwrite(out, 1, len, stdout);
        fflush(stdout);
        if (mf_eval(s, &t, 1, NULL, &e)) goto done;
        if (k % 16 == 15) { /* live figures, inline, dimmed on a terminal */
            mf_stats b;
            mf_model_stats(m, &b);
            double dtm = now_s() - t0;
            uint64_t look = (b.cache_hits - a.cache_hits) + (b.cache_misses - a.cache_misses);
            fprintf(stderr, "%s [%.2f tok/s, hit %.0f%%, %.0f MB/s from disk]%s", tty ? "\033[2m" : "", (k + 1) / dtm,
                    look ? 100.0 * (b.cache_hits - a.cache_hits) / look : 0, (b.bytes_read - a.bytes_read) / dtm / 1e6,
                    tty ? "\033[0m" : "");
        }
    }
    {
        const char *out;
        size_t len;
        mf_detok_flush(dt, &out, &len);
        fwrite(out, 1, len, stdout);
    }
    printf("\n");
    fflush(stdout);
    double dtm = now_s() - t0;
    mf_stats b;
    mf_model_stats(m, &b);
    uint64_t hits = b.cache_hits - a.cache_hits, misses = b.cache_misses - a.cache_misses;
    fprintf(stderr, "\n%ld tokens in %.2fs: %.2f tok/s (prompt %zu tokens at %.1f tok/s)\n", k, dtm, k / dtm, n,
            b.prefill_s > 0 ? b.prompt_tokens / b.prefill_s : 0);
    fprintf(stderr, "experts: %llu hits, %llu misses (hit rate %.1f%%); %.1f MB streamed from disk at %.0f MB/s, "
                    "%.2fs waiting on reads\n",
            (unsigned long long)hits, (unsigned long long)misses, hits + misses ? 100.0 * hits / (hits + misses) : 0,
            (b.bytes_read - a.bytes_read) / 1e6, (b.bytes_read - a.bytes_read) / dtm / 1e6, b.io_wait_s - a.io_wait_s);
    fprintf(stderr, "memory: expert cache %.0f MB, peak RSS %.0f MB\n", b.cache_bytes / 1e6, b.peak_rss_bytes / 1e6);
    cli_print_stats(m, &c);
    rc = 0;
done:
    if (rc) fprintf(stderr, "\nmoeflash: %s\n", e.msg);
    mf_detok_free(dt);
    free(hist);
    free(ids);
    mf_sampler_free(smp);
    mf_session_free(s);
    mf_model_close(m);
    mf_vocab_free(v);
    return rc;
}
