/* test_kernels.c — the fast kernels against their specification.
 *
 * - Activation quantizers: every variant writes the same bytes as the
 *   scalar one.
 * - Integer types (the i-quants included): every variant's vec_dot equals
 *   the scalar integer kernel bit for bit, on random rows of many lengths
 *   (1..67 blocks, so lengths that are not multiples of any SIMD width or
 *   of the four-block group), from random bytes (every level, scale, lattice
 *   index and sign pattern, q8_0's -128) and from quantized random floats
 *   where the type has a quantizer.
 * - The scalar integer kernels compute dot(dequantized row, dequantized
 *   activations): within KERN_SPEC_TOL * sum|x_i| * max|w_i| of the float
 *   reference of ref.h.
 * - Float types (f32, f16, bf16): within KERN_FLOAT_TOL * sum |w_i x_i| of
 *   the reference (other summation order and FMA), lengths 1..300 and more.
 * - Dispatch: MF_SIMD parsing and the fallback when the CPU lacks a
 *   variant; op_matvec equal for 1 and 2 threads and equal to the kernels
 *   row by row; the pool runs every thread once per job.
 *
 * Every variant the machine runs is tested in one process, through
 * quant_kernels_of(), whatever MF_SIMD says.
 */
#include "t.h"
#include "kern_random.h"

#include "models/ops.h"
#include "quant/kernels.h"
#include "quant/quantize.h"
#include "quant/ref.h"
#include "threads/pool.h"

#include <math.h>
#include <stdatomic.h>
#include <stddef.h>

#define KERN_FLOAT_TOL 1e-5
#define KERN_SPEC_TOL 1e-6

static const uint32_t int_types[] = {
    MF_TYPE_Q4_0, MF_TYPE_Q4_1, MF_TYPE_Q5_0, MF_TYPE_Q5_1, MF_TYPE_Q8_0, MF_TYPE_IQ4_NL, MF_TYPE_MXFP4,
    MF_TYPE_Q2_K, MF_TYPE_Q3_K, MF_TYPE_Q4_K, MF_TYPE_Q5_K, MF_TYPE_Q6_K, MF_TYPE_IQ4_XS,
    MF_TYPE_IQ1_S, MF_TYPE_IQ1_M, MF_TYPE_IQ2_XXS, MF_TYPE_IQ2_XS, MF_TYPE_IQ2_S, MF_TYPE_IQ3_XXS, MF_TYPE_IQ3_S,
};
#define N_INT_TYPES (sizeof int_types / sizeof int_types[0])

static mf_fp16 random_scale(uint64_t *s)
{
    return quant_f32_to_fp16(rng_float(s) * 0.02f);
}

/* Random bytes, then finite scales in the fp16 fields. */
static void random_blocks(uint64_t *s, uint32_t t, void *dst, size_t n)
{
    const quant_type_info *ti = quant_type(t);
    const size_t nb = n / ti->block_elems, bb = ti->block_bytes;
    uint8_t *p = dst;
    for (size_t i = 0; i < nb * bb; i++) p[i] = (uint8_t)rng_next(s);
    for (size_t b = 0; b < nb; b++, p += bb) {
        mf_fp16 d = random_scale(s), m = random_scale(s);
        switch (t) {
        case MF_TYPE_Q4_1: memcpy(p + offsetof(block_q4_1, m), &m, 2); /* fall through */
        case MF_TYPE_Q4_0: case MF_TYPE_Q5_0: case MF_TYPE_Q8_0: case MF_TYPE_IQ4_NL: case MF_TYPE_IQ4_XS:
        case MF_TYPE_IQ1_S: case MF_TYPE_IQ2_XXS: case MF_TYPE_IQ2_XS: case MF_TYPE_IQ2_S: case MF_TYPE_IQ3_XXS:
        case MF_TYPE_IQ3_S:
            memcpy(p, &d, 2);
            break;
        case MF_TYPE_IQ1_M: { /* the fp16 scale is the top nibble of each 16-bit scale word */
            uint8_t *sc = p + offsetof(block_iq1_m, scales);
            for (int k = 0; k < 4; k++) sc[2 * k + 1] = (uint8_t)((sc[2 * k + 1] & 0x0f) | ((d >> (4 * k)) & 0x0f) << 4);
            break;
        }
        case MF_TYPE_Q5_1: memcpy(p, &d, 2); memcpy(p + offsetof(block_q5_1, m), &m, 2); break;
        case MF_TYPE_Q2_K:
            memcpy(p + offsetof(block_q2_K, d), &d, 2);
            memcpy(p + offsetof(block_q2_K, dmin), &m, 2);
            break;
        case MF_TYPE_Q3_K: memcpy(p + offsetof(block_q3_K, d), &d, 2); break;
        case MF_TYPE_Q4_K: case MF_TYPE_Q5_K:
            memcpy(p, &d, 2);
            memcpy(p + 2, &m, 2);
            break;
        case MF_TYPE_Q6_K: memcpy(p + offsetof(block_q6_K, d), &d, 2); break;
        case MF_TYPE_MXFP4: p[0] = (uint8_t)(110 + rng_next(s) % 30); break;
        default: break;
        }
    }
}

/* Rows of n values: from random bytes (odd seeds) or quantized floats. */
static void random_row(uint64_t *s, uint32_t t, void *dst, size_t n, int from_floats, float *tmp)
{
    if (from_floats) {
        for (size_t i = 0; i < n; i++) tmp[i] = rng_float(s);
        if (quant_quantize_row(t, tmp, dst, n)) return;
    }
    random_blocks(s, t, dst, n);
}

static size_t blocks_list(size_t *out)
{
    static const size_t nbs[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 15, 16, 17, 23, 31, 32, 33, 47, 64, 67 };
    const size_t m = t_asan() ? 12 : sizeof nbs / sizeof nbs[0];
    memcpy(out, nbs, m * sizeof *out);
    return m;
}

#define MAX_N (67 * 256)

TEST(kern_act_exact)
{
    const quant_kernel_set *ref = quant_kernels_of(QUANT_SIMD_SCALAR);
    REQUIRE(ref);
    uint64_t seed = 11;
    float *x = malloc(MAX_N * sizeof *x);
    uint8_t *a = malloc(MAX_N * 2), *b = malloc(MAX_N * 2);
    REQUIRE(x && a && b);
    size_t nbs[32];
    const size_t m = blocks_list(nbs);
    for (int v = 1; v < QUANT_SIMD_COUNT; v++) {
        const quant_kernel_set *ks = quant_kernels_of((quant_simd)v);
        if (!ks) continue;
        for (uint32_t at = MF_TYPE_Q8_0; at <= MF_TYPE_Q8_K; at += MF_TYPE_Q8_K - MF_TYPE_Q8_0) {
            const size_t be = at == MF_TYPE_Q8_0 ? QK8_0 : QK_K;
            for (size_t i = 0; i < m; i++) {
                const size_t n = nbs[i] * be;
                if (n > MAX_N) continue;
                random_x(&seed, x, n);
                ref->act[at](x, a, n);
                ks->act[at](x, b, n);
                CHECKF(memcmp(a, b, quant_act_bytes(at, n)) == 0, "%s %s activations, n=%zu: differ from scalar",
                       quant_simd_name((quant_simd)v), quant_type(at)->name, n);
            }
        }
    }
    free(x);
    free(a);
    free(b);
}

TEST(kern_int_exact)
{
    const quant_kernel_set *ref = quant_kernels_of(QUANT_SIMD_SCALAR);
    REQUIRE(ref);
    uint64_t seed = 12;
    float *x = malloc(MAX_N * sizeof *x), *tmp = malloc(MAX_N * sizeof *tmp);
    uint8_t *act = malloc(MAX_N * 2), *row = malloc(MAX_N * 2);
    REQUIRE(x && tmp && act && row);
    size_t nbs[32];
    const size_t m = blocks_list(nbs);
    int tested = 0;
    for (size_t ti = 0; ti < N_INT_TYPES; ti++) {
        const uint32_t t = int_types[ti];
        const quant_kernel *rk = &ref->k[t];
        REQUIREF(rk->vec_dot && rk->act_type != MF_TYPE_F32, "%s: no scalar integer kernel", quant_type(t)->name);
        const size_t be = quant_type(t)->block_elems;
        for (size_t i = 0; i < m; i++) {
            const size_t n = nbs[i] * (be == QK_K ? 1 : 8) * be; /* 32-blocks: 8..536 blocks */
            if (n > MAX_N) continue;
            for (int rep = 0; rep < 2; rep++) {
                random_x(&seed, x, n);
                ref->act[rk->act_type](x, act, n);
                random_row(&seed, t, row, n, rep, tmp);
                const float want = rk->vec_dot(row, act, n);
                for (int v = 1; v < QUANT_SIMD_COUNT; v++) {
                    const quant_kernel_set *ks = quant_kernels_of((quant_simd)v);
                    if (!ks) continue;
                    REQUIRE(ks->k[t].act_type == rk->act_type);
                    const float got = ks->k[t].vec_dot(row, act, n);
                    tested++;
                    CHECKF(bits(got) == bits(want), "%s %s n=%zu rep %d: %.9g, scalar %.9g",
                           quant_simd_name((quant_simd)v), quant_type(t)->name, n, rep, got, want);
                }
            }
        }
    }
    printf("  %d SIMD integer dot products compared\n", tested);
    /* which integer types each variant has its own kernel for (the rest
     * are the scalar ones, compared above with themselves) */
    for (int v = 1; v < QUANT_SIMD_COUNT; v++) {
        const quant_kernel_set *ks = quant_kernels_of((quant_simd)v);
        if (!ks) continue;
        printf("  %s:", quant_simd_name((quant_simd)v));
        for (size_t ti = 0; ti < N_INT_TYPES; ti++)
            if (ks->k[int_types[ti]].vec_dot != ref->k[int_types[ti]].vec_dot) printf(" %s", quant_type(int_types[ti])->name);
        printf("\n");
    }
    free(x);
    free(tmp);
    free(act);
    free(row);
}

/* The scalar integer kernels against the float reference of ref.h, fed
 * the dequantized activations. */
TEST(kern_int_spec)
{
    const quant_kernel_set *ref = quant_kernels_of(QUANT_SIMD_SCALAR);
    REQUIRE(ref);
    uint64_t seed = 13;
    const size_t n = t_asan() ? 1024 : 4096;
    float *x = malloc(n * sizeof *x), *xq = malloc(n * sizeof *xq), *wf = malloc(n * sizeof *wf);
    uint8_t *act = malloc(n * 2), *row = malloc(n * 2);
    REQUIRE(x && xq && wf && act && row);
    double worst = 0;
    for (size_t ti = 0; ti < N_INT_TYPES; ti++) {
        const uint32_t t = int_types[ti];
        const quant_kernel *k = &ref->k[t];
        const quant_type_info *info = quant_type(t);
        for (int rep = 0; rep < 8; rep++) {
            random_x(&seed, x, n);
            ref->act[k->act_type](x, act, n);
            quant_type(k->act_type)->dequant(act, xq, n);
            random_row(&seed, t, row, n, rep & 1, wf);
            info->dequant(row, wf, n);
            double sx = 0, mw = 0;
            for (size_t i = 0; i < n; i++) {
                sx += fabs(xq[i]);
                mw = fabs(wf[i]) > mw ? fabs(wf[i]) : mw;
            }
            const double got = k->vec_dot(row, act, n), want = info->dot(row, xq, n);
            const double err = fabs(got - want), scale = sx * mw + 1e-30;
            worst = err / scale > worst ? err / scale : worst;
            CHECKF(err <= KERN_SPEC_TOL * scale, "%s rep %d: integer %.9g, float reference %.9g (err/scale %.3g)",
                   info->name, rep, got, want, err / scale);
        }
    }
    printf("  worst |int - ref| / (sum|x| max|w|) = %.3g\n", worst);
    free(x);
    free(xq);
    free(wf);
    free(act);
    free(row);
}

TEST(kern_float_tol)
{
    static const uint32_t ft[] = { MF_TYPE_F32, MF_TYPE_F16, MF_TYPE_BF16 };
    uint64_t seed = 14;
    const size_t max_n = 20000;
    float *x = malloc(max_n * sizeof *x), *wf = malloc(max_n * sizeof *wf);
    uint8_t *row = malloc(max_n * 4);
    REQUIRE(x && wf && row);
    double worst = 0;
    for (size_t ti = 0; ti < 3; ti++) {
        const uint32_t t = ft[ti];
        for (size_t n = 1; n <= max_n; n = n < 300 ? n + 1 : n * 3 + 7) {
            for (size_t i = 0; i < n; i++) {
                x[i] = rng_float(&seed);
                wf[i] = rng_float(&seed);
            }
            REQUIRE(quant_quantize_row(t, wf, row, n));
            quant_type(t)->dequant(row, wf, n);
            double sabs = 0;
            for (size_t i = 0; i < n; i++) sabs += fabs((double)wf[i] * x[i]);
            const double want = quant_type(t)->dot(row, x, n);
            for (int v = 0; v < QUANT_SIMD_COUNT; v++) {
                const quant_kernel_set *ks = quant_kernels_of((quant_simd)v);
                if (!ks) continue;
                REQUIRE(ks->k[t].act_type == MF_TYPE_F32);
                const double got = ks->k[t].vec_dot(row, x, n);
                const double err = fabs(got - want);
                worst = err / (sabs + 1e-30) > worst ? err / (sabs + 1e-30) : worst;
                CHECKF(err <= KERN_FLOAT_TOL * sabs + 1e-30, "%s %s n=%zu: %.9g, reference %.9g",
                       quant_simd_name((quant_simd)v), quant_type(t)->name, n, got, want);
            }
        }
    }
    printf("  worst |simd - ref| / sum|w x| = %.3g\n", worst);
    free(x);
    free(wf);
    free(row);
}

TEST(kern_dispatch)
{
    CHECK(quant_simd_parse("scalar") == QUANT_SIMD_SCALAR);
    CHECK(quant_simd_parse("AVX2") == QUANT_SIMD_AVX2);
    CHECK(quant_simd_parse("avx512") == QUANT_SIMD_AVX512);
    CHECK(quant_simd_parse("neon") == QUANT_SIMD_NEON);
    CHECK(quant_simd_parse("auto") == -1 && quant_simd_parse(NULL) == -1 && quant_simd_parse("") == -1);
    CHECK(quant_simd_parse("sse9") == -2);
    const unsigned x86 = 1u << QUANT_SIMD_SCALAR | 1u << QUANT_SIMD_AVX2 | 1u << QUANT_SIMD_AVX512;
    const unsigned avx2 = 1u << QUANT_SIMD_SCALAR | 1u << QUANT_SIMD_AVX2;
    const unsigned old = 1u << QUANT_SIMD_SCALAR, arm = old | 1u << QUANT_SIMD_NEON;
    CHECK(quant_simd_choose(NULL, x86) == QUANT_SIMD_AVX512);
    CHECK(quant_simd_choose("avx2", x86) == QUANT_SIMD_AVX2);
    CHECK(quant_simd_choose("scalar", x86) == QUANT_SIMD_SCALAR);
    CHECK(quant_simd_choose("avx512", avx2) == QUANT_SIMD_AVX2);   /* CPU lacks it: the next below */
    CHECK(quant_simd_choose(NULL, avx2) == QUANT_SIMD_AVX2);
    CHECK(quant_simd_choose("avx512", old) == QUANT_SIMD_SCALAR);
    CHECK(quant_simd_choose(NULL, old) == QUANT_SIMD_SCALAR);
    CHECK(quant_simd_choose(NULL, arm) == QUANT_SIMD_NEON);
    CHECK(quant_simd_choose("avx2", arm) == QUANT_SIMD_SCALAR);
    CHECK(quant_simd_choose("neon", x86) == QUANT_SIMD_SCALAR);
    CHECK(quant_simd_choose("bogus", x86) == QUANT_SIMD_AVX512);

    /* The active set is the one MF_SIMD and the CPU select. */
    const unsigned avail = quant_simd_available();
    CHECK(avail & 1u << QUANT_SIMD_SCALAR);
    CHECK(quant_kernels()->simd == quant_simd_choose(getenv("MF_SIMD"), avail));
    printf("  active: %s; available:", quant_simd_name(quant_kernels()->simd));
    for (int v = 0; v < QUANT_SIMD_COUNT; v++)
        if (avail >> v & 1) printf(" %s", quant_simd_name((quant_simd)v));
    printf("\n");
    const quant_simd was = quant_kernels()->simd;
    CHECK(quant_kernels_use(QUANT_SIMD_SCALAR) == 0 && quant_kernels()->simd == QUANT_SIMD_SCALAR);
    for (int v = 0; v < QUANT_SIMD_COUNT; v++)
        CHECK((quant_kernels_use((quant_simd)v) == 0) == ((avail >> v & 1) != 0));
    CHECK(quant_kernels_use(was) == 0);
    /* Every computable type has a kernel in every set. */
    for (int v = 0; v < QUANT_SIMD_COUNT; v++) {
        const quant_kernel_set *ks = quant_kernels_of((quant_simd)v);
        if (!ks) continue;
        for (uint32_t t = 0; t < MF_TYPE_COUNT; t++) {
            const quant_type_info *ti = quant_type(t);
            if (!ti || !ti->dot) continue;
            CHECKF(ks->k[t].vec_dot != NULL, "%s: no %s kernel", quant_simd_name((quant_simd)v), ti->name);
            CHECK(ks->k[t].act_type == MF_TYPE_F32 || ks->act[ks->k[t].act_type] != NULL);
        }
    }
}

/* op_matvec: 1 and 2 threads agree bit for bit, and equal the kernels row
 * by row; one dispatch of mixed types equals separate ones; without a pool
 * the float reference runs. */
TEST(kern_matvec)
{
    uint64_t seed = 15;
    const uint64_t ne0 = 512, rows = 300;
    static const uint32_t types[] = { MF_TYPE_Q4_K, MF_TYPE_Q8_0, MF_TYPE_F32, MF_TYPE_Q6_K, MF_TYPE_IQ2_XXS };
    enum { NW = sizeof types / sizeof types[0] };
    mf_weight w[NW];
    float *tmp = malloc(ne0 * sizeof *tmp), *x = malloc(ne0 * sizeof *x);
    float *y1[NW], *y2[NW], *y3[NW];
    REQUIRE(tmp && x);
    for (int i = 0; i < NW; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].name = "w";
        w[i].type = types[i];
        w[i].n_dims = 2;
        w[i].ne[0] = ne0;
        w[i].ne[1] = rows + 17 * (uint64_t)i;
        w[i].row_bytes = quant_row_bytes(types[i], ne0);
        uint8_t *d = malloc(w[i].row_bytes * w[i].ne[1]);
        REQUIRE(d);
        for (uint64_t r = 0; r < w[i].ne[1]; r++) random_row(&seed, types[i], d + r * w[i].row_bytes, ne0, 1, tmp);
        w[i].data = d;
        y1[i] = malloc(w[i].ne[1] * sizeof(float));
        y2[i] = malloc(w[i].ne[1] * sizeof(float));
        y3[i] = malloc(w[i].ne[1] * sizeof(float));
        REQUIRE(y1[i] && y2[i] && y3[i]);
    }
    random_x(&seed, x, ne0);
    mf_pool *p1 = pool_new(1), *p2 = pool_new(2);
    REQUIRE(p1 && p2);
    const mf_weight *wp[NW];
    for (int i = 0; i < NW; i++) wp[i] = &w[i];
    for (int i = 0; i < NW; i++) op_matvec(p1, &w[i], x, y1[i]);
    op_matvec_multi(p2, NW, wp, x, y2);
    op_matvec_multi(NULL, NW, wp, x, y3);
    const quant_kernel_set *ks = quant_kernels();
    uint8_t *act = malloc(ne0 * 2);
    REQUIRE(act);
    for (int i = 0; i < NW; i++) {
        const quant_kernel *k = &ks->k[types[i]];
        const void *a = x;
        if (k->act_type != MF_TYPE_F32) {
            ks->act[k->act_type](x, act, ne0);
            a = act;
        }
        int same12 = 1, same_k = 1, near_ref = 1;
        for (uint64_t r = 0; r < w[i].ne[1]; r++) {
            const void *row = (const uint8_t *)w[i].data + r * w[i].row_bytes;
            same12 &= bits(y1[i][r]) == bits(y2[i][r]);
            same_k &= bits(y1[i][r]) == bits(k->vec_dot(row, a, ne0));
            near_ref &= bits(y3[i][r]) == bits(quant_type(types[i])->dot(row, x, ne0)) || k->act_type == MF_TYPE_F32;
        }
        CHECKF(same12, "%s: 1 and 2 threads differ", quant_type(types[i])->name);
        CHECKF(same_k, "%s: op_matvec differs from the kernel", quant_type(types[i])->name);
        CHECKF(near_ref, "%s: without a pool, not the float reference", quant_type(types[i])->name);
    }
    pool_free(p1);
    pool_free(p2);
    for (int i = 0; i < NW; i++) {
        free((void *)w[i].data);
        free(y1[i]);
        free(y2[i]);
        free(y3[i]);
    }
    free(act);
    free(tmp);
    free(x);
}

typedef struct pool_count { atomic_int calls; atomic_int mask; } pool_count;

static void count_task(void *ctx, int ith, int nth)
{
    pool_count *c = ctx;
    atomic_fetch_add(&c->calls, 1);
    atomic_fetch_or(&c->mask, 1 << ith);
    (void)nth;
}

TEST(kern_pool)
{
    for (int nt = 1; nt <= 3; nt++) {
        mf_pool *p = pool_new(nt);
        REQUIRE(p);
        CHECK(pool_threads(p) == nt);
        size_t bytes = 0;
        void *s = pool_scratch(p, &bytes);
        CHECK(s && bytes == POOL_SCRATCH_BYTES && ((uintptr_t)s & 63) == 0);
        const int jobs = t_asan() ? 200 : 3000;
        int ok = 1;
        for (int j = 0; j < jobs; j++) {
            pool_count c = { 0, 0 };
            pool_run(p, count_task, &c);
            ok &= atomic_load(&c.calls) == nt && atomic_load(&c.mask) == (1 << nt) - 1;
        }
        CHECKF(ok, "%d threads: a job did not run once on every thread", nt);
        pool_free(p);
    }
    size_t bytes = 1;
    CHECK(pool_scratch(NULL, &bytes) == NULL && bytes == 0);
    /* pool_split covers [0, n) without overlap, in blocks of align */
    for (size_t n = 0; n < 200; n += 7)
        for (int nth = 1; nth <= 5; nth++) {
            size_t prev = 0;
            for (int i = 0; i < nth; i++) {
                size_t lo, hi;
                pool_split(n, 16, i, nth, &lo, &hi);
                CHECK(lo == prev && hi >= lo && (lo % 16 == 0 || lo == n));
                prev = hi;
            }
            CHECK(prev == n);
        }
}

/* vec_dot_n (or quant_dot_n's fallback for types without one): for every
 * set, type, row length and ntok = 1..max (and some more), each
 * token's result equals vec_dot on it bit for bit. The activations of the
 * ntok tokens sit at a stride larger than one vector, in a buffer that ends
 * where the last token's does (ASan sees a read past it), and out[ntok]
 * stays untouched. */
TEST(kern_dot_n_exact)
{
    uint64_t seed = 16;
    enum { NTOK = 2 * QUANT_NTOK_MAX };  /* the kernels take more than the max too */
    static const size_t lens[] = { 1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17 };
    const size_t nlens = t_asan() ? 6 : sizeof lens / sizeof lens[0];
    const size_t max_n = 17 * 256;
    float *x = malloc(max_n * sizeof *x), *tmp = malloc(max_n * sizeof *tmp);
    uint8_t *row = malloc(max_n * 4);
    REQUIRE(x && tmp && row);
    int tested = 0;
    for (int v = 0; v < QUANT_SIMD_COUNT; v++) {
        const quant_kernel_set *ks = quant_kernels_of((quant_simd)v);
        if (!ks) continue;
        printf("  %s vec_dot_n:", quant_simd_name((quant_simd)v));
        for (uint32_t t = 0; t < MF_TYPE_COUNT; t++)
            if (ks->k[t].vec_dot_n) printf(" %s", quant_type(t)->name);
        printf("\n");
        for (uint32_t t = 0; t < MF_TYPE_COUNT; t++) {
            const quant_kernel *k = &ks->k[t];
            if (!k->vec_dot || !quant_type(t)->dot) continue;
            const size_t be = quant_type(t)->block_elems;
            for (size_t li = 0; li < nlens; li++) {
                /* superblocks: lens; 32-blocks: up to 3x as many; float types: odd lengths */
                const size_t n = lens[li] * (be >= QK_K ? be : be > 1 ? be * (li % 3 + 1) : 37);
                REQUIRE(n <= max_n && n % be == 0);
                const size_t ab = k->act_type == MF_TYPE_F32 ? n * sizeof(float) : quant_act_bytes(k->act_type, n);
                const size_t stride = ab + 64 * (li % 3) + 4 * (li % 2); /* stride > vector, 4-byte aligned */
                const int ntok = (int)(1 + (li + (size_t)t + (size_t)v) % NTOK);
                for (int nt = 1; nt <= NTOK; nt++) {
                    if (nt > QUANT_NTOK_MAX + 1 && nt != QUANT_NTOK_MAX + 5 && nt != NTOK) continue;
                    if (t_asan() && nt != ntok && nt != 1 && nt != QUANT_NTOK_MAX) continue;
                    uint8_t *act = malloc((size_t)(nt - 1) * stride + ab);
                    REQUIRE(act);
                    for (int i = 0; i < nt; i++) {
                        random_x(&seed, x, n);
                        if (k->act_type == MF_TYPE_F32) memcpy(act + (size_t)i * stride, x, ab);
                        else ks->act[k->act_type](x, act + (size_t)i * stride, n);
                    }
                    random_row(&seed, t, row, n, nt & 1, tmp);
                    float out[NTOK + 1];
                    out[nt] = -7.0f;
                    /* the kernel itself for every ntok (quant_dot_n gives one token to vec_dot) */
                    if (k->vec_dot_n) k->vec_dot_n(row, act, stride, n, nt, out);
                    else quant_dot_n(k, row, act, stride, n, nt, out);
                    for (int i = 0; i < nt; i++) {
                        const float want = k->vec_dot(row, act + (size_t)i * stride, n);
                        tested++;
                        /* equal bits; of a NaN (float rows of random bytes hold some) only that
                         * it is one: which operand's payload an FMA passes on depends on the
                         * register form the compiler chose, not on the arithmetic */
                        CHECKF(bits(out[i]) == bits(want) || (isnan(out[i]) && isnan(want)),
                               "%s %s n=%zu ntok=%d token %d: %.9g, vec_dot %.9g",
                               quant_simd_name((quant_simd)v), quant_type(t)->name, n, nt, i, out[i], want);
                    }
                    CHECKF(out[nt] == -7.0f, "%s %s: wrote past out[%d]", quant_simd_name((quant_simd)v),
                           quant_type(t)->name, nt);
                    free(act);
                }
            }
        }
    }
    printf("  %d token results compared\n", tested);
    free(x);
    free(tmp);
    free(row);
}
