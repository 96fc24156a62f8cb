/* bench_kernels.c — matvec throughput of every kernel next to the memory
 * read bandwidth measured in the same run (`make bench`).
 *
 * Each weight type is a 4096 x 14336 matrix (ne0 = 4096 inputs, 14336
 * rows: an FFN-sized projection), repeated in copies until the set passes
 * 256 MiB so that no pass is served by the 32 MiB L3. A pass is one
 * op_matvec (activation quantization, pool dispatch and all) on the next
 * copy; GB/s counts weight bytes read, best sweep over the set. The
 * reference is a STREAM-like read (a sum of 64-bit words over 512 MiB, best
 * pass) on the same pool, 1 and 2 threads. All big buffers ask for
 * transparent huge pages (MF_BENCH_NO_HUGEPAGE=1: not).
 * Ratios, not absolute numbers, are what to compare across machines
 * (shared/BENCHMARKS.md). Target (issue 5): q4_K at 2 threads >= 80% of
 * the 2-thread read bandwidth.
 *
 * Then (without a type list) q4_K GEMM, the prefill product of one weight
 * and T tokens: the kernels alone (vec_dot per token against vec_dot_n),
 * and op_matmul against T op_matvecs, 1 and 2 threads.
 *
 * Usage: bench_kernels [gemm] [seconds per measurement, default 0.25] [type ...]
 */
#include "models/ops.h"
#include "quant/kernels.h"
#include "quant/quant.h"
#include "threads/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define NE0 4096u
#define ROWS 14336u
#define SET_BYTES ((size_t)256 << 20)
#define READ_BYTES ((size_t)512 << 20)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* 2 MiB-aligned memory, with transparent huge pages asked for (the
 * read reference and the matrices alike, so the ratio is fair), or NULL. */
static void *big_alloc(size_t bytes)
{
    bytes = (bytes + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
    void *p = aligned_alloc(2u << 20, bytes);
#ifdef MADV_HUGEPAGE
    if (p && getenv("MF_BENCH_NO_HUGEPAGE") == NULL) madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- memory read bandwidth ---- */

typedef struct read_job {
    const uint64_t *p;
    size_t n;                 /* words */
    uint64_t sum[256 * 8];    /* per thread, one cache line apart */
} read_job;

static void read_task(void *ctx, int ith, int nth)
{
    read_job *j = ctx;
    size_t lo, hi;
    pool_split(j->n, 1024, ith, nth, &lo, &hi);
    const uint64_t *p = j->p;
    uint64_t s = 0;
#if defined(__SSE2__)
    __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = lo; i + 8 <= hi; i += 8) {
        a0 = _mm_add_epi64(a0, _mm_load_si128((const __m128i *)(p + i)));
        a1 = _mm_add_epi64(a1, _mm_load_si128((const __m128i *)(p + i + 2)));
        a2 = _mm_add_epi64(a2, _mm_load_si128((const __m128i *)(p + i + 4)));
        a3 = _mm_add_epi64(a3, _mm_load_si128((const __m128i *)(p + i + 6)));
    }
    uint64_t t[2];
    _mm_storeu_si128((__m128i *)t, _mm_add_epi64(_mm_add_epi64(a0, a1), _mm_add_epi64(a2, a3)));
    s = t[0] + t[1];
#else
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = lo; i + 4 <= hi; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
    }
    s = s0 + s1 + s2 + s3;
#endif
    j->sum[ith * 8] = s;
}

/* Best of several passes over READ_BYTES, in GB/s. */
static double read_bw(mf_pool *pool, read_job *j, double secs)
{
    double best = 0, t_end = now() + secs;
    int passes = 0;
    while (passes < 3 || now() < t_end) {
        double t0 = now();
        pool_run(pool, read_task, j);
        double t = now() - t0;
        double gbs = (double)(j->n * 8) / t * 1e-9;
        best = gbs > best ? gbs : best;
        passes++;
    }
    return best;
}

/* ---- matvec ---- */

static void fill_random(uint64_t *s, uint32_t t, uint8_t *p, size_t bytes)
{
    const quant_type_info *ti = quant_type(t);
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        uint64_t r = rng(s);
        memcpy(p + i, &r, 8);
    }
    /* finite weights: plain float types get small values, block scales a
     * small fp16 (the kernels' speed does not depend on the values, but
     * NaNs would be a poor show) */
    if (t == MF_TYPE_F32) {
        float *f = (float *)p;
        for (size_t i = 0; i < bytes / 4; i++) f[i] = (float)(rng(s) >> 40) * 0x1p-24f - 0.5f;
        return;
    }
    if (t == MF_TYPE_F16 || t == MF_TYPE_BF16) {
        uint16_t *h = (uint16_t *)p;
        for (size_t i = 0; i < bytes / 2; i++) h[i] &= 0xbbff; /* |v| < 2 in both formats */
        return;
    }
    const mf_fp16 d = quant_f32_to_fp16(0.01f);
    for (size_t b = 0; b < bytes / ti->block_bytes; b++) {
        uint8_t *q = p + b * ti->block_bytes;
        switch (t) {
        case MF_TYPE_Q2_K: memcpy(q + offsetof(block_q2_K, d), &d, 2); memcpy(q + offsetof(block_q2_K, dmin), &d, 2); break;
        case MF_TYPE_Q3_K: memcpy(q + offsetof(block_q3_K, d), &d, 2); break;
        case MF_TYPE_Q6_K: memcpy(q + offsetof(block_q6_K, d), &d, 2); break;
        case MF_TYPE_MXFP4: q[0] = 120; break;
        case MF_TYPE_TQ1_0: memcpy(q + offsetof(block_tq1_0, d), &d, 2); break;
        case MF_TYPE_TQ2_0: memcpy(q + offsetof(block_tq2_0, d), &d, 2); break;
        case MF_TYPE_IQ1_M: /* fp16 scale in the top nibbles of the scale words: exponent bits 011x */
            q[offsetof(block_iq1_m, scales) + 7] = (uint8_t)((q[offsetof(block_iq1_m, scales) + 7] & 0x0f) | 0x30);
            break;
        case MF_TYPE_Q4_K: case MF_TYPE_Q5_K: case MF_TYPE_Q4_1: case MF_TYPE_Q5_1:
            memcpy(q, &d, 2); memcpy(q + 2, &d, 2); break;
        default: memcpy(q, &d, 2); break;
        }
    }
}

typedef struct mv_bench {
    mf_weight *w;
    int copies;
    float *x, *y;
} mv_bench;

/* GB/s of weight bytes on pool: the best sweep (one matvec on each copy)
 * over secs of sweeps. The best, not the mean: the machine is shared, and
 * other processes only ever slow a sweep down. */
static double matvec_bw(mf_pool *pool, const mv_bench *b, double secs)
{
    const size_t bytes = (size_t)ROWS * b->w[0].row_bytes * (size_t)b->copies;
    for (int c = 0; c < b->copies; c++) op_matvec(pool, &b->w[c], b->x, b->y); /* warm up */
    double best = 0, t_end = now() + secs;
    int sweeps = 0;
    while (sweeps < 3 || now() < t_end) {
        double t0 = now();
        for (int c = 0; c < b->copies; c++) op_matvec(pool, &b->w[c], b->x, b->y);
        double gbs = (double)bytes / (now() - t0) * 1e-9;
        best = gbs > best ? gbs : best;
        sweeps++;
    }
    return best;
}

/* ---- GEMM (prefill): one weight against T tokens ---- */

typedef struct gemm_shape { unsigned ne0, rows; const char *what; } gemm_shape;

/* Seconds of the best of a few runs of op_matmul over T tokens (mm != 0)
 * or of T op_matvecs, on weight copy c of the set (copies cycle, so the
 * weight comes from RAM as in prefill: read once per batch). */
static double gemm_time(mf_pool *pool, const mf_weight *w, int copies, const float *X, int T, float *Y, void *q,
                        size_t qcap, int mm, double secs)
{
    double best = 1e30, t_end = now() + secs;
    const size_t rows = (size_t)w[0].ne[1], ne0 = (size_t)w[0].ne[0];
    for (int it = 0, c = 0; it < 3 || now() < t_end; it++, c = (c + 1) % copies) {
        const mf_weight *wp[1] = { &w[c] };
        float *yp[1] = { Y };
        double t0 = now();
        if (mm) op_matmul(pool, 1, wp, X, ne0, T, yp, rows, q, qcap);
        else for (int t = 0; t < T; t++) op_matvec(pool, &w[c], X + (size_t)t * ne0, Y + (size_t)t * rows);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

/* The kernels alone, one thread, the weight in cache: every (row, token)
 * by vec_dot, or rows against QUANT_NTOK_MAX tokens at a time by
 * quant_dot_n; in GMAC/s. */
static double gemm_kernel_rate(const mf_weight *w, const uint8_t *act, size_t as, int T, float *Y, int multi,
                               double secs)
{
    const quant_kernel *k = &quant_kernels()->k[w->type];
    const size_t rows = (size_t)w->ne[1], ne0 = (size_t)w->ne[0];
    double best = 1e30, t_end = now() + secs;
    for (int it = 0; it < 3 || now() < t_end; it++) {
        double t0 = now();
        for (int t0k = 0; t0k < T; t0k += 16) {
            const int t1 = t0k + 16 < T ? t0k + 16 : T;
            for (size_t r = 0; r < rows; r++) {
                const uint8_t *row = (const uint8_t *)w->data + r * w->row_bytes;
                if (multi) {
                    for (int t = t0k; t < t1; t += QUANT_NTOK_MAX)
                        quant_dot_n(k, row, act + (size_t)t * as, as, ne0, t1 - t < QUANT_NTOK_MAX ? t1 - t : QUANT_NTOK_MAX,
                                    Y + r * QUANT_NTOK_MAX);
                } else {
                    for (int t = t0k; t < t1; t++) Y[r] = k->vec_dot(row, act + (size_t)t * as, ne0);
                }
            }
        }
        double t = now() - t0;
        best = t < best ? t : best;
    }
    return (double)rows * ne0 * T / best * 1e-9;
}

/* q4_K GEMM: kernel speed-up of vec_dot_n, then op_matmul against T
 * op_matvecs at 1 and 2 threads (GMAC/s: weights x tokens per second). */
static void bench_gemm(mf_pool *p1, mf_pool *p2, double secs)
{
    static const gemm_shape shapes[] = { { 2048, 768, "expert gate/up" }, { 768, 2048, "expert down" },
                                         { 2048, 4096, "attention q" } };
    static const int Ts[] = { 8, 64, 256 };
    const uint32_t type = MF_TYPE_Q4_K;
    printf("\nGEMM (prefill), q4_K, kernels %s: GMAC/s = rows x ne0 x T / s; kernel = one thread, weight in cache,\n"
           "vec_dot per (row, token) vs vec_dot_n; matmul = op_matmul vs T op_matvec, weights cycling through %zu MiB\n\n",
           quant_simd_name(quant_kernels()->simd), (SET_BYTES / 4) >> 20);
    printf("%-6s %-5s %-15s %4s %8s %8s %6s %9s %9s %6s %9s %9s %6s\n", "ne0", "rows", "", "T", "kern 1x", "kern n",
           "x", "matvec1T", "matmul1T", "x", "matvec2T", "matmul2T", "x");
    uint64_t seed = 7;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const gemm_shape *g = &shapes[si];
        const size_t rb = quant_row_bytes(type, g->ne0), mbytes = rb * g->rows;
        const int copies = (int)((SET_BYTES / 4 + mbytes - 1) / mbytes);
        uint8_t *data = big_alloc(mbytes * (size_t)copies);
        mf_weight *w = calloc((size_t)copies, sizeof *w);
        const int Tmax = Ts[sizeof Ts / sizeof Ts[0] - 1];
        float *X = malloc(sizeof(float) * g->ne0 * Tmax), *Y = malloc(sizeof(float) * g->rows * Tmax * 2);
        const size_t as = quant_act_bytes(MF_TYPE_Q8_K, g->ne0);
        const size_t qcap = (as + 63) / 64 * 64 * (size_t)Tmax;
        uint8_t *q = aligned_alloc(64, qcap), *act = malloc(as * Tmax);
        if (!data || !w || !X || !Y || !q || !act) { fprintf(stderr, "bench_kernels: out of memory\n"); exit(1); }
        fill_random(&seed, type, data, mbytes * (size_t)copies);
        for (int c = 0; c < copies; c++)
            w[c] = (mf_weight){ .name = "w", .type = type, .n_dims = 2, .ne = { g->ne0, g->rows, 1, 1 }, .row_bytes = rb,
                                .data = data + (size_t)c * mbytes };
        for (size_t i = 0; i < (size_t)g->ne0 * Tmax; i++) X[i] = (float)(rng(&seed) >> 40) * 0x1p-24f - 0.5f;
        for (int t = 0; t < Tmax; t++) quant_kernels()->act[MF_TYPE_Q8_K](X + (size_t)t * g->ne0, act + t * as, g->ne0);
        for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
            const int T = Ts[ti];
            const double macs = (double)g->ne0 * g->rows * T * 1e-9;
            const double k1 = gemm_kernel_rate(&w[0], act, as, T, Y, 0, secs / 4);
            const double kn = gemm_kernel_rate(&w[0], act, as, T, Y, 1, secs / 4);
            const double v1 = macs / gemm_time(p1, w, copies, X, T, Y, q, qcap, 0, secs / 2);
            const double m1 = macs / gemm_time(p1, w, copies, X, T, Y, q, qcap, 1, secs / 2);
            const double v2 = macs / gemm_time(p2, w, copies, X, T, Y, q, qcap, 0, secs / 2);
            const double m2 = macs / gemm_time(p2, w, copies, X, T, Y, q, qcap, 1, secs / 2);
            printf("%-6u %-5u %-15s %4d %8.1f %8.1f %6.2f %9.1f %9.1f %6.2f %9.1f %9.1f %6.2f\n", g->ne0, g->rows,
                   g->what, T, k1, kn, kn / k1, v1, m1, m1 / v1, v2, m2, m2 / v2);
            fflush(stdout);
        }
        free(data), free(w), free(X), free(Y), free(q), free(act);
    }
}

/* Best of ROUNDS rounds, each: read 1T, matvec 1T, read 2T, matvec 2T, so
 * a kernel's figures and the read reference it is divided by come from the
 * same seconds of a shared machine. */
#define ROUNDS 3

typedef struct result { double mv1, mv2, rd1, rd2; } result;

static void measure(mf_pool *p1, mf_pool *p2, read_job *rj, const mv_bench *b, double secs, result *r)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < ROUNDS; i++) {
        double v;
        if ((v = read_bw(p1, rj, secs / 2)) > r->rd1) r->rd1 = v;
        if ((v = matvec_bw(p1, b, secs)) > r->mv1) r->mv1 = v;
        if ((v = read_bw(p2, rj, secs / 2)) > r->rd2) r->rd2 = v;
        if ((v = matvec_bw(p2, b, secs)) > r->mv2) r->mv2 = v;
    }
}

int main(int argc, char **argv)
{
    /* "gemm [seconds]": the GEMM table alone */
    const int gemm_only = argc > 1 && strcmp(argv[1], "gemm") == 0;
    if (gemm_only) argc--, argv++;
    double secs = argc > 1 ? atof(argv[1]) : 0.25;
    if (secs <= 0) secs = 0.25;
    mf_pool *p1 = pool_new(1), *p2 = pool_new(2);
    if (gemm_only) {
        if (!p1 || !p2) { fprintf(stderr, "bench_kernels: out of memory\n"); return 1; }
        bench_gemm(p1, p2, secs);
        pool_free(p1);
        pool_free(p2);
        return 0;
    }
    read_job *rj = aligned_alloc(64, sizeof *rj);
    uint64_t *buf = big_alloc(READ_BYTES);
    if (!p1 || !p2 || !rj || !buf) { fprintf(stderr, "bench_kernels: out of memory\n"); return 1; }
    memset(buf, 1, READ_BYTES); /* touch every page */
    rj->p = buf;
    rj->n = READ_BYTES / 8;

    const quant_kernel_set *ks = quant_kernels();
    printf("moeflash kernel benchmark: matvec %u x %u (ne0 x rows), sets > %zu MiB, kernels %s;\n", NE0, ROWS,
           SET_BYTES >> 20, quant_simd_name(ks->simd));
    printf("best of %d rounds; 'read' = memory read bandwidth measured in the same rounds (GB/s)\n\n", ROUNDS);
    printf("%-8s %-7s %-5s %8s %8s %8s %8s %8s %8s %6s\n", "type", "kernels", "act", "1T GB/s", "read 1T", "1T/read",
           "2T GB/s", "read 2T", "2T/read", "2T/1T");

    static const char *const def_types[] = { "q4_K", "q5_K", "q6_K", "q8_0", "q4_0", "q5_0", "iq4_nl", "mxfp4",
                                             "q2_K", "q3_K", "iq4_xs", "iq3_s", "iq3_xxs", "iq2_s", "iq2_xs",
                                             "iq2_xxs", "iq1_m", "iq1_s", "tq2_0", "tq1_0", "f16", "bf16",
                                             "f32" };
    const char *const *types = argc > 2 ? (const char *const *)argv + 2 : def_types;
    const int ntypes = argc > 2 ? argc - 2 : (int)(sizeof def_types / sizeof def_types[0]);
    float *x = malloc(NE0 * sizeof *x), *y = malloc(ROWS * sizeof *y);
    uint64_t seed = 1;
    for (unsigned i = 0; i < NE0; i++) x[i] = (float)(rng(&seed) >> 40) * 0x1p-24f - 0.5f;
    double q4k_ratio = -1;
    for (int ti = 0; ti < ntypes; ti++) {
        const int t = quant_type_by_name(types[ti]);
        if (t < 0 || !quant_type((uint32_t)t)->dot) { fprintf(stderr, "unknown type %s\n", types[ti]); continue; }
        const size_t rb = quant_row_bytes((uint32_t)t, NE0), mbytes = rb * ROWS;
        const int copies = (int)((SET_BYTES + mbytes - 1) / mbytes);
        uint8_t *data = big_alloc(mbytes * (size_t)copies);
        mf_weight *w = calloc((size_t)copies, sizeof *w);
        if (!data || !w) { fprintf(stderr, "bench_kernels: out of memory\n"); return 1; }
        fill_random(&seed, (uint32_t)t, data, mbytes * (size_t)copies);
        for (int c = 0; c < copies; c++) {
            w[c].name = types[ti];
            w[c].type = (uint32_t)t;
            w[c].n_dims = 2;
            w[c].ne[0] = NE0;
            w[c].ne[1] = ROWS;
            w[c].row_bytes = rb;
            w[c].data = data + (size_t)c * mbytes;
        }
        mv_bench b = { w, copies, x, y };
        /* the active kernels, then (for q4_K) every other variant */
        for (int v = -1; v < QUANT_SIMD_COUNT; v++) {
            if (v >= 0 && (t != MF_TYPE_Q4_K || v == (int)ks->simd || quant_kernels_use((quant_simd)v))) continue;
            const quant_kernel_set *cur = quant_kernels();
            result r;
            measure(p1, p2, rj, &b, secs, &r);
            printf("%-8s %-7s %-5s %8.2f %8.2f %7.0f%% %8.2f %8.2f %7.0f%% %6.2f\n", types[ti],
                   quant_simd_name(cur->simd), quant_type(cur->k[t].act_type)->name, r.mv1, r.rd1,
                   100 * r.mv1 / r.rd1, r.mv2, r.rd2, 100 * r.mv2 / r.rd2, r.mv2 / r.mv1);
            fflush(stdout);
            if (v == -1 && t == MF_TYPE_Q4_K) q4k_ratio = r.mv2 / r.rd2;
            quant_kernels_use(ks->simd);
        }
        free(w);
        free(data);
    }
    if (q4k_ratio >= 0)
        printf("\nq4_K matvec at 2 threads: %.0f%% of the read bandwidth measured with it (target >= 80%%): %s\n",
               100 * q4k_ratio, q4k_ratio >= 0.8 ? "met" : "NOT met");
    if (argc <= 2) bench_gemm(p1, p2, secs);
    free(x);
    free(y);
    free(buf);
    free(rj);
    pool_free(p1);
    pool_free(p2);
    return 0;
}
