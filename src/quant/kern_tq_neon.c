/* kern_tq_neon.c — the NEON ternary kernels (TQ1_0, TQ2_0 with Q8_K
 * activations), ARMv8.2 with the dot product: sdot multiplies the codes
 * (0..3, as signed bytes) by the activations into int32 lanes. Compiled
 * with -march=armv8.2-a+dotprod; kernels.c calls kern_fill_neon_tq after
 * kern_fill_neon. Equal bit for bit to kern_scalar_tq.c
 * (tests/test_kernels_tq.c, under qemu in .ci/run): the same exact
 * integer per block, sum t * y - sum y, and the same float steps, one
 * block at a time into acc[b % 4].
 *
 * TQ1_0's digit n of a byte q is the top base-3 digit of q * 3^n (mod
 * 256, vmulq_u8 wraps as the scalar uint8_t product does): [v > 85] +
 * [v > 170]. The two unsigned compares give 0 or -1 each, so their sum is
 * minus the digit and sdot accumulates minus sum t * y.
 */
#include "quant/kern_impl.h"

#include <arm_neon.h>

KERN_NO_FP_CONTRACT

static inline float f16(mf_fp16 h) { return quant_fp16_to_f32(h); }

/* minus the top base-3 digit of each byte, as signed bytes 0, -1, -2 */
static inline int8x16_t tq_neg_digit(uint8x16_t v)
{
    return vreinterpretq_s8_u8(vaddq_u8(vcgtq_u8(v, vdupq_n_u8(85)), vcgtq_u8(v, vdupq_n_u8(170))));
}

static inline int act_sum(const block_q8_K *a)
{
    const int32x4_t s = vaddq_s32(vpaddlq_s16(vld1q_s16(a->bsums)), vpaddlq_s16(vld1q_s16(a->bsums + 8)));
    return vaddvq_s32(s);
}

static float dot_tq1_0(const void *row, const void *act, size_t n)
{
    const block_tq1_0 *w = row;
    const block_q8_K *a = act;
    const uint8x16_t three = vdupq_n_u8(3);
    /* qh's 4 bytes repeated, times 3^n in bytes 4n..4n+3 */
    static const uint8_t qh_pow3[16] = { 1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27 };
    const uint8x16_t qh_mul = vld1q_u8(qh_pow3);
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        const int8_t *y = a[b].qs;
        int32x4_t neg = vdupq_n_s32(0); /* minus sum t * y */
        uint8x16_t v0 = vld1q_u8(w[b].qs), v1 = vld1q_u8(w[b].qs + 16), v2 = vld1q_u8(w[b].qs + 32);
        for (int k = 0; k < 5; k++) {
            neg = vdotq_s32(neg, tq_neg_digit(v0), vld1q_s8(y + 32 * k));
            neg = vdotq_s32(neg, tq_neg_digit(v1), vld1q_s8(y + 32 * k + 16));
            neg = vdotq_s32(neg, tq_neg_digit(v2), vld1q_s8(y + 160 + 16 * k));
            v0 = vmulq_u8(v0, three);
            v1 = vmulq_u8(v1, three);
            v2 = vmulq_u8(v2, three);
        }
        uint32_t qh;
        memcpy(&qh, w[b].qh, 4);
        const uint8x16_t h = vmulq_u8(vreinterpretq_u8_u32(vdupq_n_u32(qh)), qh_mul);
        neg = vdotq_s32(neg, tq_neg_digit(h), vld1q_s8(y + 240));
        const int isum = -vaddvq_s32(neg) - act_sum(&a[b]);
        const float d = a[b].d * f16(w[b].d);
        acc[b & 3] += d * (float)isum;
    }
    return kern_acc4_finish(acc);
}

/* codes l of 16 bytes: bits 2l..2l+1, as signed bytes 0..3 */
#define TQ2_CODES(x, l) vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8((x), 2 * (l)), vdupq_n_u8(3)))
#define TQ2_DOT4(acc, x, y)                                          \
    do {                                                             \
        acc = vdotq_s32(acc, vreinterpretq_s8_u8(vandq_u8((x), vdupq_n_u8(3))), vld1q_s8((y)));      \
        acc = vdotq_s32(acc, TQ2_CODES(x, 1), vld1q_s8((y) + 32));   \
        acc = vdotq_s32(acc, TQ2_CODES(x, 2), vld1q_s8((y) + 64));   \
        acc = vdotq_s32(acc, TQ2_CODES(x, 3), vld1q_s8((y) + 96));   \
    } while (0)

static float dot_tq2_0(const void *row, const void *act, size_t n)
{
    const block_tq2_0 *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        const int8_t *y = a[b].qs;
        int32x4_t sum = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            TQ2_DOT4(sum, vld1q_u8(w[b].qs + 32 * h), y + 128 * h);
            TQ2_DOT4(sum, vld1q_u8(w[b].qs + 32 * h + 16), y + 128 * h + 16);
        }
        const int isum = vaddvq_s32(sum) - act_sum(&a[b]);
        const float d = a[b].d * f16(w[b].d);
        acc[b & 3] += d * (float)isum;
    }
    return kern_acc4_finish(acc);
}

void kern_fill_neon_tq(quant_kernel_set *s)
{
    s->k[MF_TYPE_TQ1_0] = (quant_kernel){ .act_type = MF_TYPE_Q8_K, .vec_dot = dot_tq1_0 };
    s->k[MF_TYPE_TQ2_0] = (quant_kernel){ .act_type = MF_TYPE_Q8_K, .vec_dot = dot_tq2_0 };
}
