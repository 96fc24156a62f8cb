/* test_kernels_tq.c — the ternary kernels (TQ1_0, TQ2_0 with Q8_K
 * activations) against their specification, kern_scalar_tq.c.
 *
 * - Every variant the machine runs (AVX2, AVX-512; NEON under qemu in
 *   .ci/run) equals the scalar integer kernel bit for bit, on rows of 1..67
 *   blocks (not multiples of the four-block group), from random bytes
 *   (every TQ1_0 byte value, TQ2_0's code 3) and from encoded random trits
 *   (the rows a quantizer writes).
 * - The encoding: trits packed as ggml's quantize_row_tq1_0 packs them
 *   decode (ref_iq.c) to the same trits, so the encoded rows above are real.
 * - The scalar integer kernel computes dot(dequantized row, dequantized
 *   activations) within KERN_TQ_SPEC_TOL * sum|x| * max|w| of the float
 *   reference, and dot(dequantized row, x) within the activations' own
 *   rounding: sum over blocks of sum|w| * d_x / 2 (a Q8_K value is within
 *   half a step of x), plus the same float slack.
 */
#include "t.h"
#include "kern_random.h"

#include "quant/kernels.h"
#include "quant/ref.h"

#include <math.h>

#define KERN_TQ_SPEC_TOL 1e-6

static const uint32_t tq_types[] = { MF_TYPE_TQ1_0, MF_TYPE_TQ2_0 };

/* Five trits t[0..4] (t[0] the first digit) as one TQ1_0 byte: the base-3
 * number, scaled to a fraction of 256, rounded up. */
static uint8_t tq1_pack(const int *t, int n)
{
    int v = 0;
    for (int k = 0; k < n; k++) v = 3 * v + t[k];
    for (int k = n; k < 5; k++) v *= 3;
    return (uint8_t)((v * 256 + 242) / 243);
}

/* One block from trits t[0..255] (0..2), in the value order of ref_iq.c. */
static void tq1_encode(const int *t, block_tq1_0 *b)
{
    int d[5];
    for (int m = 0; m < 32; m++) {
        for (int k = 0; k < 5; k++) d[k] = t[32 * k + m];
        b->qs[m] = tq1_pack(d, 5);
    }
    for (int m = 0; m < 16; m++) {
        for (int k = 0; k < 5; k++) d[k] = t[160 + 16 * k + m];
        b->qs[32 + m] = tq1_pack(d, 5);
    }
    for (int j = 0; j < 4; j++) {
        for (int k = 0; k < 4; k++) d[k] = t[240 + 4 * k + j];
        b->qh[j] = tq1_pack(d, 4);
    }
}

static void tq2_encode(const int *t, block_tq2_0 *b)
{
    memset(b->qs, 0, sizeof b->qs);
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 4; l++)
            for (int m = 0; m < 32; m++) b->qs[32 * h + m] |= (uint8_t)(t[128 * h + 32 * l + m] << (2 * l));
}

/* nb blocks of type t: random bytes (encoded == 0) or encoded random trits
 * (into trits[256 * nb] when not NULL); finite scales. */
static void random_row(uint64_t *s, uint32_t t, void *dst, size_t nb, int encoded, int *trits)
{
    const size_t bb = quant_type(t)->block_bytes;
    uint8_t *p = dst;
    for (size_t i = 0; i < nb * bb; i++) p[i] = (uint8_t)rng_next(s);
    for (size_t b = 0; b < nb; b++) {
        int tr[QK_K];
        for (int i = 0; i < QK_K; i++) tr[i] = (int)(rng_next(s) % 3);
        if (trits) memcpy(trits + QK_K * b, tr, sizeof tr);
        const mf_fp16 d = quant_f32_to_fp16(rng_float(s) * 0.02f);
        if (t == MF_TYPE_TQ1_0) {
            block_tq1_0 *w = (block_tq1_0 *)p + b;
            if (encoded) tq1_encode(tr, w);
            w->d = d;
        } else {
            block_tq2_0 *w = (block_tq2_0 *)p + b;
            if (encoded) tq2_encode(tr, w);
            w->d = d;
        }
    }
}

#define MAX_NB 67

TEST(kern_tq_encoding_roundtrip)
{
    uint64_t seed = 31;
    static int trits[4 * QK_K];
    static float v[4 * QK_K];
    static uint8_t row[4 * sizeof(block_tq2_0)];
    for (size_t ti = 0; ti < 2; ti++) {
        const uint32_t t = tq_types[ti];
        for (int rep = 0; rep < 20; rep++) {
            random_row(&seed, t, row, 4, 1, trits);
            quant_type(t)->dequant(row, v, 4 * QK_K);
            int bad = 0;
            for (int i = 0; i < 4 * QK_K; i++) {
                const mf_fp16 h = t == MF_TYPE_TQ1_0 ? ((block_tq1_0 *)row)[i / QK_K].d : ((block_tq2_0 *)row)[i / QK_K].d;
                const float want = (float)(trits[i] - 1) * quant_fp16_to_f32(h);
                bad += bits(v[i]) != bits(want);
            }
            CHECKF(bad == 0, "%s rep %d: %d values decode to other trits than were packed", quant_type(t)->name, rep, bad);
        }
    }
}

TEST(kern_tq_exact)
{
    const quant_kernel_set *ref = quant_kernels_of(QUANT_SIMD_SCALAR);
    REQUIRE(ref);
    uint64_t seed = 32;
    float *x = malloc(MAX_NB * QK_K * sizeof *x);
    uint8_t *act = malloc(MAX_NB * sizeof(block_q8_K)), *row = malloc(MAX_NB * sizeof(block_tq2_0));
    REQUIRE(x && act && row);
    const size_t top = t_asan() ? 24 : MAX_NB;
    int tested = 0, variants = 0;
    for (size_t ti = 0; ti < 2; ti++) {
        const uint32_t t = tq_types[ti];
        const quant_kernel *rk = &ref->k[t];
        REQUIREF(rk->vec_dot && rk->act_type == MF_TYPE_Q8_K, "%s: no scalar Q8_K kernel", quant_type(t)->name);
        for (size_t nb = 1; nb <= top; nb += nb < 20 ? 1 : 7) {
            for (int rep = 0; rep < 2; rep++) {
                const size_t n = nb * QK_K;
                random_x(&seed, x, n);
                ref->act[MF_TYPE_Q8_K](x, act, n);
                random_row(&seed, t, row, nb, rep, NULL);
                const float want = rk->vec_dot(row, act, n);
                for (int v = 1; v < QUANT_SIMD_COUNT; v++) {
                    const quant_kernel_set *ks = quant_kernels_of((quant_simd)v);
                    if (!ks) continue;
                    REQUIRE(ks->k[t].act_type == MF_TYPE_Q8_K);
                    const float got = ks->k[t].vec_dot(row, act, n);
                    tested++;
                    CHECKF(bits(got) == bits(want), "%s %s n=%zu rep %d: %.9g, scalar %.9g",
                           quant_simd_name((quant_simd)v), quant_type(t)->name, n, rep, got, want);
                }
            }
        }
    }
    /* Which variants have their own kernels (the others' are the scalar
     * ones, compared with themselves above). */
    printf("  %d SIMD ternary dot products compared; own kernels:", tested);
    for (int v = 1; v < QUANT_SIMD_COUNT; v++) {
        const quant_kernel_set *ks = quant_kernels_of((quant_simd)v);
        if (!ks) continue;
        const int own = ks->k[MF_TYPE_TQ1_0].vec_dot != ref->k[MF_TYPE_TQ1_0].vec_dot &&
                        ks->k[MF_TYPE_TQ2_0].vec_dot != ref->k[MF_TYPE_TQ2_0].vec_dot;
        printf(" %s%s", quant_simd_name((quant_simd)v), own ? "" : " (none)");
        CHECKF(own, "%s: no tq1_0/tq2_0 kernels of its own", quant_simd_name((quant_simd)v));
        variants++;
    }
    printf("%s\n", variants ? "" : " none (no SIMD variant on this CPU)");
    free(x);
    free(act);
    free(row);
}

TEST(kern_tq_spec)
{
    const quant_kernel_set *ref = quant_kernels_of(QUANT_SIMD_SCALAR);
    REQUIRE(ref);
    uint64_t seed = 33;
    const size_t nb = t_asan() ? 4 : 16, n = nb * QK_K;
    float *x = malloc(n * sizeof *x), *xq = malloc(n * sizeof *xq), *wf = malloc(n * sizeof *wf);
    uint8_t *act = malloc(nb * sizeof(block_q8_K)), *row = malloc(nb * sizeof(block_tq2_0));
    REQUIRE(x && xq && wf && act && row);
    double worst_q = 0, worst_x = 0;
    for (size_t ti = 0; ti < 2; ti++) {
        const uint32_t t = tq_types[ti];
        const quant_kernel *k = &ref->k[t];
        const quant_type_info *info = quant_type(t);
        for (int rep = 0; rep < 16; rep++) {
            random_x(&seed, x, n);
            ref->act[MF_TYPE_Q8_K](x, act, n);
            quant_type(MF_TYPE_Q8_K)->dequant(act, xq, n);
            random_row(&seed, t, row, nb, rep & 1, NULL);
            info->dequant(row, wf, n);
            double sx = 0, mw = 0, round = 0;
            for (size_t b = 0; b < nb; b++) {
                double sw = 0;
                for (size_t i = QK_K * b; i < QK_K * (b + 1); i++) {
                    sx += fabs(xq[i]);
                    sw += fabs(wf[i]);
                    mw = fabs(wf[i]) > mw ? fabs(wf[i]) : mw;
                }
                round += sw * ((const block_q8_K *)act)[b].d / 2;
            }
            const double got = k->vec_dot(row, act, n), scale = sx * mw + 1e-30;
            /* against the dequantized activations: the same numbers */
            const double err_q = fabs(got - info->dot(row, xq, n));
            worst_q = err_q / scale > worst_q ? err_q / scale : worst_q;
            CHECKF(err_q <= KERN_TQ_SPEC_TOL * scale, "%s rep %d: integer %.9g, float reference %.9g (err/scale %.3g)",
                   info->name, rep, got, info->dot(row, xq, n), err_q / scale);
            /* against x itself: off by at most the activations' rounding */
            const double err_x = fabs(got - info->dot(row, x, n));
            worst_x = err_x / (round + 1e-30) > worst_x ? err_x / (round + 1e-30) : worst_x;
            CHECKF(err_x <= round + KERN_TQ_SPEC_TOL * scale, "%s rep %d: integer %.9g, dot with x %.9g, bound %.3g",
                   info->name, rep, got, info->dot(row, x, n), round);
        }
    }
    printf("  worst |int - ref(xq)| / (sum|x| max|w|) = %.3g; |int - ref(x)| / rounding bound = %.3g\n", worst_q, worst_x);
    free(x);
    free(xq);
    free(wf);
    free(act);
    free(row);
}
