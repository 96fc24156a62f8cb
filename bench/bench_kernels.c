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
 * Usage: bench_kernels [seconds per measurement, default 0.25] [type ...]
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
    double secs = argc > 1 ? atof(argv[1]) : 0.25;
    if (secs <= 0) secs = 0.25;
    mf_pool *p1 = pool_new(1), *p2 = pool_new(2);
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
    free(x);
    free(y);
    free(buf);
    free(rj);
    pool_free(p1);
    pool_free(p2);
    return 0;
}
