/* bench.c — `moeflash bench`: decode speed next to the machine's own
 * references, measured in the same run, because absolute numbers drift on
 * shared machines (STYLE.md). References:
 *   - memory read bandwidth (a STREAM-like sum over a buffer larger than
 *     the caches, 1 and all threads);
 *   - disk bandwidth for expert-sized O_DIRECT random reads from the model
 *     file itself, at the store's parallelism.
 * Rooflines: I/O = disk bytes/s / miss bytes per token; compute = memory
 * bytes/s / weight bytes touched per token. A run reports tok/s and both
 * ratios for each I/O backend.
 */
#include "moeflash.h"
#include "gguf.h"
#include "engine/plan.h"
#include "store/store.h"
#include "threads/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- memory bandwidth ---- */

typedef struct membw_job { const uint64_t *buf; size_t n; uint64_t sums[64]; } membw_job;

static void membw_task(void *ctx, int ith, int nth)
{
    membw_job *j = ctx;
    size_t lo, hi;
    pool_split(j->n, 1024, ith, nth, &lo, &hi);
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = lo; i + 4 <= hi; i += 4) a += j->buf[i], b += j->buf[i + 1], c += j->buf[i + 2], d += j->buf[i + 3];
    j->sums[ith & 63] = a + b + c + d;
}

double mf_bench_memory_gbs(int n_threads, size_t bytes)
{
    uint64_t *buf = malloc(bytes);
    if (!buf) return 0;
    size_t n = bytes / sizeof *buf;
    for (size_t i = 0; i < n; i++) buf[i] = i;
    mf_pool *pool = pool_new(n_threads);
    membw_job j = { buf, n, { 0 } };
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        pool_run(pool, membw_task, &j);
        double dt = now_s() - t0;
        double gbs = (double)bytes / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    pool_free(pool);
    free(buf);
    return best;
}

/* ---- disk bandwidth: parallel O_DIRECT random reads of chunk bytes ---- */

typedef struct disk_job {
    int fd;
    uint64_t lo, hi, chunk;
    double until;
    uint64_t bytes;
    uint64_t seed;
    int err;
} disk_job;

static void *disk_worker(void *arg)
{
    disk_job *j = arg;
    void *buf;
    if (posix_memalign(&buf, 4096, (size_t)j->chunk)) { j->err = ENOMEM; return NULL; }
    uint64_t span = (j->hi - j->lo - j->chunk) / 4096;
    while (now_s() < j->until) {
        j->seed = j->seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t off = j->lo + ((j->seed >> 17) % (span ? span : 1)) * 4096;
        ssize_t r = pread(j->fd, buf, (size_t)j->chunk, (off_t)off);
        if (r < 0) { j->err = errno; break; }
        j->bytes += (uint64_t)r;
    }
    free(buf);
    return NULL;
}

double mf_bench_disk_gbs(const char *path, uint64_t lo, uint64_t hi, uint64_t chunk, int parallel, double seconds,
                         mf_error *e)
{
    int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0) { mf_fail(e, "%s: cannot open with O_DIRECT: %s", path, strerror(errno)); return -1; }
    chunk = (chunk + 4095) / 4096 * 4096;
    lo = lo / 4096 * 4096;
    if (hi < lo + chunk) { close(fd); mf_fail(e, "%s: region too small for the disk benchmark", path); return -1; }
    if (parallel < 1) parallel = 1;
    if (parallel > 64) parallel = 64;
    pthread_t th[64];
    disk_job jobs[64];
    double t0 = now_s();
    for (int i = 0; i < parallel; i++) {
        jobs[i] = (disk_job){ fd, lo, hi, chunk, t0 + seconds, 0, 0x1234567ull * (uint64_t)(i + 1), 0 };
        pthread_create(&th[i], NULL, disk_worker, &jobs[i]);
    }
    uint64_t bytes = 0;
    int err = 0;
    for (int i = 0; i < parallel; i++) {
        pthread_join(th[i], NULL);
        bytes += jobs[i].bytes;
        if (jobs[i].err) err = jobs[i].err;
    }
    double dt = now_s() - t0;
    close(fd);
    if (err) { mf_fail(e, "%s: O_DIRECT read failed: %s", path, strerror(err)); return -1; }
    return (double)bytes / dt / 1e9;
}

/* ---- decode runs ---- */

typedef struct run_result {
    double tok_s, tok_s_median, prefill_tok_s, miss_bytes_tok, read_mb_s, hit_rate, io_wait_tok;
    uint64_t cache_bytes, peak_rss;
    uint64_t pf_issued, pf_used, pf_wasted, pf_late, predicted, predicted_k, predicted_guess;
} run_result;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The model as bp sets it, with this I/O backend; n_batch 1 evaluates
 * prompts token by token, anything else as bp->n_batch says. */
static mf_model *bench_open(const char *path, const mf_bench_params *bp, const char *io, int n_batch, bool prefetch,
                            mf_error *e)
{
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.n_threads = bp->n_threads;
    mp.cache_bytes = bp->cache_bytes;
    mp.io = io;
    mp.io_threads = bp->io_threads;
    mp.no_prefetch = !prefetch;
    mp.n_batch = n_batch == 1 ? 1 : bp->n_batch;
    mp.n_expert_used = bp->n_expert_used;
    return mf_model_open(path, &mp, e);
}

/* Decodes bp->n_gen greedy tokens after a random prompt. The machine is
 * shared, so besides the mean the median token time is kept: another
 * process's burst slows a few tokens, not the median. */
static int decode_run(const char *path, const mf_bench_params *bp, const char *io, bool prefetch, run_result *r,
                      mf_error *e)
{
    mf_model *m = bench_open(path, bp, io, bp->n_batch, prefetch, e);
    if (!m) return -1;
    const mf_model_info *in = mf_model_get_info(m);
    mf_session *s = mf_session_new(m, (uint32_t)(bp->n_prompt + bp->n_gen + 8), e);
    double *dts = calloc((size_t)bp->n_gen + 1, sizeof *dts);
    int rc = -1;
    if (!s || !dts) { if (!dts) mf_fail(e, "out of memory"); goto out; }
    int32_t ids[4096];
    uint64_t seed = 42;
    for (int i = 0; i < bp->n_prompt && i < 4096; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((seed >> 33) % in->n_vocab);
    }
    if (mf_eval(s, ids, (size_t)bp->n_prompt, NULL, e)) goto out;
    mf_stats before;
    mf_model_stats(m, &before);
    double t0 = now_s();
    for (int k = 0; k < bp->n_gen; k++) {
        const float *l = mf_session_logits(s);
        int32_t t = 0;
        for (uint32_t i = 1; i < in->n_vocab; i++) t = l[i] > l[t] ? (int32_t)i : t;
        double t1 = now_s();
        if (mf_eval(s, &t, 1, NULL, e)) goto out;
        dts[k] = now_s() - t1;
    }
    double dt = now_s() - t0;
    mf_stats after;
    mf_model_stats(m, &after);
    qsort(dts, (size_t)bp->n_gen, sizeof *dts, cmp_double);
    uint64_t hits = after.cache_hits - before.cache_hits, misses = after.cache_misses - before.cache_misses;
    r->tok_s = bp->n_gen / dt;
    r->tok_s_median = dts[bp->n_gen / 2] > 0 ? 1.0 / dts[bp->n_gen / 2] : 0;
    r->prefill_tok_s = before.prefill_s > 0 ? before.prompt_tokens / before.prefill_s : 0;
    r->miss_bytes_tok = (double)(after.bytes_read - before.bytes_read) / bp->n_gen;
    r->read_mb_s = (double)(after.bytes_read - before.bytes_read) / dt / 1e6;
    r->hit_rate = hits + misses ? (double)hits / (double)(hits + misses) : 0;
    r->io_wait_tok = (after.io_wait_s - before.io_wait_s) / bp->n_gen;
    r->cache_bytes = after.cache_bytes;
    r->peak_rss = after.peak_rss_bytes;
    r->pf_issued = after.prefetch_issued - before.prefetch_issued;
    r->pf_used = after.prefetch_used - before.prefetch_used;
    r->pf_wasted = after.prefetch_wasted - before.prefetch_wasted;
    r->pf_late = after.prefetch_late - before.prefetch_late;
    r->predicted = after.predicted - before.predicted;
    r->predicted_k = after.predicted_right - before.predicted_right;
    r->predicted_guess = after.predicted_in_guess - before.predicted_in_guess;
    rc = 0;
out:
    free(dts);
    mf_session_free(s);
    mf_model_close(m);
    return rc;
}

/* ---- prompt evaluation ---- */

static void random_ids(int32_t *ids, int n, uint32_t n_vocab, uint64_t seed)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((seed >> 33) % n_vocab);
    }
}

typedef struct prefill_result {
    double tok_s, bytes_tok, hit_rate, s;
} prefill_result;

/* Evaluates an n-token random prompt in a fresh session of m (the expert
 * cache keeps what earlier prompts left, as a server's would). */
static int prefill_once(mf_model *m, int n, uint64_t seed, prefill_result *r, mf_error *e)
{
    const mf_model_info *in = mf_model_get_info(m);
    int32_t *ids = malloc(sizeof *ids * (size_t)n);
    mf_session *s = ids ? mf_session_new(m, (uint32_t)n + 8, e) : NULL;
    int rc = -1;
    if (!ids) mf_fail(e, "out of memory");
    if (s) {
        random_ids(ids, n, in->n_vocab, seed);
        mf_stats a, b;
        mf_model_stats(m, &a);
        double t0 = now_s();
        rc = mf_eval(s, ids, (size_t)n, NULL, e);
        double dt = now_s() - t0;
        mf_model_stats(m, &b);
        uint64_t hits = b.cache_hits - a.cache_hits, misses = b.cache_misses - a.cache_misses;
        r->s = dt;
        r->tok_s = n / dt;
        r->bytes_tok = (double)(b.prefill_bytes_read - a.prefill_bytes_read) / n;
        r->hit_rate = hits + misses ? (double)hits / (double)(hits + misses) : 0;
    }
    mf_session_free(s);
    free(ids);
    return rc;
}

/* Prompt evaluation for each length: batched (layer by layer, each expert
 * read once per batch) after a warm-up prompt, as llama-bench measures pp
 * after a warm-up run; then token by token on the first 64 tokens of the
 * same lengths, for the bytes each prompt token costs either way. */
static int prefill_bench(const char *path, const mf_bench_params *bp, const char *io, FILE *out, mf_error *e)
{
    mf_model *m = bench_open(path, bp, io, 0, true, e);
    if (!m) return -1;
    prefill_result warm, tbt = { 0 };
    int rc = prefill_once(m, 256, 7, &warm, e);
    fprintf(out, "  %-7s warm-up: 256 tokens in %.1f s (%.1f tok/s, %.1f MB read per token)\n", io, warm.s, warm.tok_s,
            warm.bytes_tok / 1e6);
    prefill_result *r = calloc((size_t)bp->n_prefill, sizeof *r);
    if (!r) rc = mf_fail(e, "out of memory");
    for (int i = 0; !rc && i < bp->n_prefill; i++) rc = prefill_once(m, bp->prefill[i], 100 + (uint64_t)i, &r[i], e);
    mf_model_close(m);
    /* token by token: 64 tokens are enough for a steady bytes-per-token */
    if (!rc && (m = bench_open(path, bp, io, 1, true, e)) != NULL) {
        prefill_result w;
        rc = prefill_once(m, 64, 7, &w, e);
        if (!rc) rc = prefill_once(m, 64, 100, &tbt, e);
        mf_model_close(m);
    } else if (!rc) {
        rc = -1;
    }
    if (rc) { free(r); return -1; }
    fprintf(out, "  %-7s %7s %9s %10s %7s\n", "io", "tokens", "tok/s", "read MB/t", "hit");
    for (int i = 0; i < bp->n_prefill; i++)
        fprintf(out, "  %-7s %7d %9.2f %10.2f %6.1f%%\n", io, bp->prefill[i], r[i].tok_s, r[i].bytes_tok / 1e6,
                100 * r[i].hit_rate);
    fprintf(out, "  %-7s %7s %9.2f %10.2f %6.1f%%   (token by token, 64 tokens)\n", io, "1 x 64", tbt.tok_s,
            tbt.bytes_tok / 1e6, 100 * tbt.hit_rate);
    for (int i = 0; i < bp->n_prefill; i++)
        if (r[i].bytes_tok > 0)
            fprintf(out, "          %d tokens: %.1fx fewer expert bytes per prompt token than token by token, %.2fx its tok/s\n",
                    bp->prefill[i], tbt.bytes_tok / r[i].bytes_tok, tbt.tok_s > 0 ? r[i].tok_s / tbt.tok_s : 0);
        else
            fprintf(out, "          %d tokens: nothing read (every expert cached); %.2fx token by token's tok/s\n",
                    bp->prefill[i], tbt.tok_s > 0 ? r[i].tok_s / tbt.tok_s : 0);
    free(r);
    return 0;
}

static double share(uint64_t a, uint64_t b) { return b ? (double)a / (double)b : 0; }

static void print_run(FILE *out, const char *io, const char *mode, const run_result *r, double disk, double compute_roof)
{
    double io_roof = disk > 0 && r->miss_bytes_tok > 0 ? disk * 1e9 / r->miss_bytes_tok : 0;
    fprintf(out, "  %-7s %-8s %7.2f %7.2f %8.2f %9.1f %9.0f %6.1f%% %8.0f %8.1f %10.2f %9.2f\n", io, mode, r->tok_s,
            r->tok_s_median, r->prefill_tok_s, r->miss_bytes_tok / 1e6, r->read_mb_s, 100 * r->hit_rate,
            r->cache_bytes / 1e6, 1e3 * r->io_wait_tok, io_roof > 0 ? r->tok_s / io_roof : 0, r->tok_s / compute_roof);
}

int mf_bench_run(const char *path, const mf_bench_params *bp, FILE *out, mf_error *e)
{
    gguf_file *f = gguf_open(path, e);
    if (!f) return -1;
    mf_plan plan;
    if (plan_compute(f, &plan, e)) { gguf_close(f); return -1; }
    /* --cache auto as mf_model_open would decide it */
    const uint64_t work = plan_working_bytes(f, &plan, bp->n_batch);
    /* the expert data region, for the disk benchmark */
    uint64_t lo = UINT64_MAX, hi = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const char *rest;
        const gguf_tensor *t = &f->tensors[i];
        if (t->file == 0 && plan_tensor_layer(t->name, &rest) >= 0 && plan_is_expert_tensor(rest)) {
            if (t->offset < lo) lo = t->offset;
            if (t->offset + t->nbytes > hi) hi = t->offset + t->nbytes;
        }
    }
    gguf_close(f);
    int n_threads = bp->n_threads > 0 ? bp->n_threads : pool_cpu_count();
    fprintf(out, "model: %s\n  %s, %u layers, %u experts, top-%u; resident %.0f MB, experts %.0f MB, one expert %.2f MB\n",
            path, plan.arch, plan.n_layer, plan.n_expert, plan.n_expert_used, plan.resident_bytes / 1e6,
            plan.expert_bytes / 1e6, plan.max_expert_bytes / 1e6);
    double touched = (double)plan.resident_bytes + (double)plan.miss_bytes_per_token;
    fprintf(out, "  weights touched per token %.0f MB (all K experts: %.0f MB)\n", touched / 1e6,
            plan.miss_bytes_per_token / 1e6);

    fprintf(out, "\nreferences (this run):\n");
    double mem1 = mf_bench_memory_gbs(1, 256u << 20), memn = mf_bench_memory_gbs(n_threads, 256u << 20);
    fprintf(out, "  memory read: %.1f GB/s (1 thread), %.1f GB/s (%d threads)\n", mem1, memn, n_threads);
    double disk = -1;
    if (hi > lo) {
        int par = bp->io_threads > 0 ? bp->io_threads : 8;
        disk = mf_bench_disk_gbs(path, lo, hi, plan.max_expert_bytes / 3 ? plan.max_expert_bytes / 3 : 4096, par, 3.0, e);
        if (disk < 0) fprintf(out, "  disk: %s\n", e->msg);
        else fprintf(out, "  disk: %.2f GB/s, O_DIRECT random reads of %.0f KiB (one expert matrix), %d in parallel\n", disk,
                     plan.max_expert_bytes / 3 / 1024.0, par);
    }
    double compute_roof = memn * 1e9 / touched;
    fprintf(out, "  compute roofline (memory-bound decode): %.1f tok/s\n", compute_roof);

    static const char *ios[] = { "pread", "direct", "uring" };
    /* --cache auto is resolved once, before any run: what is free changes
     * as runs leave page cache behind, and every run must get the same */
    mf_bench_params fixed = *bp;
    const bool automatic = !bp->cache_bytes;
    if (!fixed.cache_bytes) fixed.cache_bytes = store_auto_cache_bytes(plan.resident_bytes, work);
    if (!fixed.cache_bytes) fixed.cache_bytes = 1;
    bp = &fixed;
    if (bp->n_prefill > 0) {
        char batch[32] = "the model's default";
        if (bp->n_batch > 1) snprintf(batch, sizeof batch, "%d", bp->n_batch);
        fprintf(out, "\nprompt evaluation, %d threads, --cache %.0f MB (%s), --batch %s:\n", n_threads,
                bp->cache_bytes / 1e6, automatic ? "auto" : "set", batch);
        int rc = 0;
        for (int i = 0; i < 3; i++) {
            if (bp->io && strcmp(bp->io, ios[i])) continue;
            if (prefill_bench(path, bp, ios[i], out, e)) {
                fprintf(out, "  %-7s failed: %s\n", ios[i], e->msg);
                rc = -1;
            }
            fflush(out);
        }
        plan_free(&plan);
        return rc;
    }
    fprintf(out, "\ndecode, %d-token prompt then %d tokens, %d threads, --cache %.0f MB (%s), with and without prefetch:\n",
            bp->n_prompt, bp->n_gen, n_threads, bp->cache_bytes / 1e6, automatic ? "auto" : "set");
    fprintf(out, "  %-7s %-8s %7s %7s %8s %9s %9s %7s %8s %8s %10s %9s\n", "io", "prefetch", "tok/s", "median",
            "prefill", "read MB/t", "read MB/s", "hit", "cache MB", "wait ms/t", "x I/O roof", "x compute");
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        if (bp->io && strcmp(bp->io, ios[i])) continue;
        run_result off, on;
        if (decode_run(path, bp, ios[i], false, &off, e) || decode_run(path, bp, ios[i], true, &on, e)) {
            fprintf(out, "  %-7s failed: %s\n", ios[i], e->msg);
            rc = -1;
            continue;
        }
        print_run(out, ios[i], "off", &off, disk, compute_roof);
        print_run(out, ios[i], "on", &on, disk, compute_roof);
        double hidden = off.io_wait_tok > 0 ? 1 - on.io_wait_tok / off.io_wait_tok : 0;
        fprintf(out, "          prefetch: %.2fx tok/s (%.2fx by median token); miss latency hidden %.0f%% "
                     "(waiting %.1f -> %.1f ms/token)\n",
                off.tok_s > 0 ? on.tok_s / off.tok_s : 0, off.tok_s_median > 0 ? on.tok_s_median / off.tok_s_median : 0,
                100 * hidden, 1e3 * off.io_wait_tok, 1e3 * on.io_wait_tok);
        fprintf(out, "          predictor: %.1f%% of chosen experts in the guess's top-K, %.1f%% in the whole guess; "
                     "%" PRIu64 " prefetched, %.0f%% used, %.0f%% wasted, %" PRIu64 " still in flight when needed\n",
                100 * share(on.predicted_k, on.predicted), 100 * share(on.predicted_guess, on.predicted), on.pf_issued,
                100 * share(on.pf_used, on.pf_issued), 100 * share(on.pf_wasted, on.pf_issued), on.pf_late);
        fflush(out);
    }
    plan_free(&plan);
    return rc;
}
