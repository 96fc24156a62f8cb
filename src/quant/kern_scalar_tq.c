/* kern_scalar_tq.c — the scalar integer kernels of the ternary types
 * TQ1_0 and TQ2_0 with Q8_K activations (ggml's vec_dot_type of both is
 * q8_K): the specification the SIMD kernels (kern_tq_*.c) must equal bit
 * for bit, and the fallback on CPUs without them.
 *
 * The one idea: every value is (t - 1) * d with a small unsigned code t
 * (a trit 0..2 for TQ1_0, 2 bits 0..3 for TQ2_0; ref_iq.c decodes both),
 * so a block's dot product with Q8_K activations is the exact integer
 *   isum = sum t * y - sum y,
 * sum y being the sum of the activation block's bsums. SIMD kernels can so
 * multiply unsigned codes by signed activations (vpmaddubsw, vpdpbusd,
 * sdot) and never form t - 1. As in kern_scalar.c, the contribution is
 *   (d_x * d_w) * (float)isum          into acc[b % 4],
 * the row kern_acc4_finish(acc).
 *
 * TQ1_0 trits are stored as base-3 fixed-point fractions: trit n of byte q
 * is the top digit of q * 3^n (mod 256), ((uint8_t)(q * 3^n) * 3) >> 8;
 * that is 1 when the product is in 86..170 and 2 from 171 (the SIMD
 * kernels compare instead of multiplying).
 */
#include "quant/kern_impl.h"

KERN_NO_FP_CONTRACT

static inline float fp16(mf_fp16 h) { return quant_fp16_to_f32(h); }

/* trit n of a TQ1_0 byte, 0..2 */
static inline int tq1_trit(uint8_t q, int n)
{
    static const uint8_t pow3[5] = { 1, 3, 9, 27, 81 };
    return ((uint8_t)(q * pow3[n]) * 3) >> 8;
}

/* sum y over a Q8_K block */
static inline int act_sum(const block_q8_K *a)
{
    int s = 0;
    for (int j = 0; j < QK_K / 16; j++) s += a->bsums[j];
    return s;
}

/* qs[0..31] hold values 32n + m (trit n of byte m), qs[32..47] values
 * 160 + 16n + m, qh[0..3] values 240 + 4n + j. */
static float dot_tq1_0(const void *row, const void *act, size_t n)
{
    const block_tq1_0 *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        const int8_t *y = a[b].qs;
        int isum = 0;
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 32; m++) isum += tq1_trit(w[b].qs[m], k) * y[32 * k + m];
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 16; m++) isum += tq1_trit(w[b].qs[32 + m], k) * y[160 + 16 * k + m];
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 4; j++) isum += tq1_trit(w[b].qh[j], k) * y[240 + 4 * k + j];
        isum -= act_sum(&a[b]);
        const float d = a[b].d * fp16(w[b].d);
        acc[b & 3] += d * (float)isum;
    }
    return kern_acc4_finish(acc);
}

/* value 128h + 32l + m in bits 2l of qs[32h + m] */
static float dot_tq2_0(const void *row, const void *act, size_t n)
{
    const block_tq2_0 *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        const int8_t *y = a[b].qs;
        int isum = 0;
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 4; l++)
                for (int m = 0; m < 32; m++) isum += ((w[b].qs[32 * h + m] >> (2 * l)) & 3) * y[128 * h + 32 * l + m];
        isum -= act_sum(&a[b]);
        const float d = a[b].d * fp16(w[b].d);
        acc[b & 3] += d * (float)isum;
    }
    return kern_acc4_finish(acc);
}

void kern_fill_scalar_tq(quant_kernel_set *s)
{
    s->k[MF_TYPE_TQ1_0] = (quant_kernel){ .act_type = MF_TYPE_Q8_K, .vec_dot = dot_tq1_0 };
    s->k[MF_TYPE_TQ2_0] = (quant_kernel){ .act_type = MF_TYPE_Q8_K, .vec_dot = dot_tq2_0 };
}
