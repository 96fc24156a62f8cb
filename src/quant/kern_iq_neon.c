/* kern_iq_neon.c — the NEON (ARMv8.2 sdot) i-quant kernels: IQ1_S, IQ1_M,
 * IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S with Q8_K activations. Compiled
 * with -march=armv8.2-a+dotprod; kern_fill_neon calls kern_fill_neon_iq.
 *
 * The specification is kern_scalar_iq.c. Per 32 values (or 16 where the
 * scale is per 16) the lattice entries are loaded into two int8x16, the
 * sign pattern applied to the weights (magnitudes are at most 62, so the
 * signed weights fit int8; vmulq_s8 by +1/-1 for kern_ksigns64, negation
 * by (w ^ m) - m for explicit sign bits), vdotq_s32 against the
 * activations gives int32 lanes, which vmlaq_n_s32 scales by the odd
 * sub-block scale. A superblock's lanes are summed once (vaddvq_s32) into
 * the exact isum; the float steps are the scalar ones, one block at a time
 * into acc[b % 4], so the results equal the scalar kernels bit for bit.
 */
#include "quant/kern_impl.h"
#include "quant/iq_tables.h"

#include <arm_neon.h>

KERN_NO_FP_CONTRACT

static inline float f16(mf_fp16 h) { return quant_fp16_to_f32(h); }

static inline int8x16_t u64x2(uint64_t lo, uint64_t hi)
{
    return vcombine_s8(vcreate_s8(lo), vcreate_s8(hi));
}

static inline int8x16_t u32x4(uint32_t e0, uint32_t e1, uint32_t e2, uint32_t e3)
{
    return u64x2((uint64_t)e1 << 32 | e0, (uint64_t)e3 << 32 | e2);
}

/* int32 lanes of w . y over 16 + 16 values. */
static inline int32x4_t dot32v(int8x16_t w0, int8x16_t w1, const int8_t *y)
{
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, vld1q_s8(y)), w1, vld1q_s8(y + 16));
}

/* 0xff in byte j where bit j of the 16 bits at p is set. */
static inline uint8x16_t bit_mask16(const uint8_t *p)
{
    static const uint8_t sel[16] = { 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128 };
    return vtstq_u8(vcombine_u8(vdup_n_u8(p[0]), vdup_n_u8(p[1])), vld1q_u8(sel));
}

/* w negated where m is 0xff. */
static inline int8x16_t negate_where(int8x16_t w, uint8x16_t m)
{
    const int8x16_t s = vreinterpretq_s8_u8(m);
    return vsubq_s8(veorq_s8(w, s), s);
}

/* The row of a type whose superblock integer sum is BLOCK(w, a), times the
 * power of two f. */
#define IQ_ROW(name, wtype, BLOCK, DW, f)                                                          \
    static float name(const void *row, const void *act, size_t n)                              \
    {                                                                                          \
        const wtype *w = row;                                                                  \
        const block_q8_K *a = act;                                                             \
        float acc[4] = { 0 };                                                                  \
        for (size_t b = 0; b < n / QK_K; b++) {                                                \
            const int isum = BLOCK(&w[b], &a[b]);                                              \
            acc[b & 3] += (a[b].d * (DW)) * (float)isum;                                       \
        }                                                                                      \
        return (f) * kern_acc4_finish(acc);                                                    \
    }

static inline int iq2xxs_block(const block_iq2_xxs *w, const block_q8_K *a)
{
    const uint8_t *q = (const uint8_t *)w->qs;
    int32x4_t sum = vdupq_n_s32(0);
    for (int ib = 0; ib < QK_K / 32; ib++, q += 8) {
        uint32_t aux;
        memcpy(&aux, q + 4, 4);
        const int8x16_t g0 = u64x2(quant_iq2xxs_grid[q[0]], quant_iq2xxs_grid[q[1]]);
        const int8x16_t g1 = u64x2(quant_iq2xxs_grid[q[2]], quant_iq2xxs_grid[q[3]]);
        const int8x16_t s0 = u64x2(kern_ksigns64[aux & 127], kern_ksigns64[(aux >> 7) & 127]);
        const int8x16_t s1 = u64x2(kern_ksigns64[(aux >> 14) & 127], kern_ksigns64[(aux >> 21) & 127]);
        sum = vmlaq_n_s32(sum, dot32v(vmulq_s8(g0, s0), vmulq_s8(g1, s1), a->qs + 32 * ib), (int)(2 * (aux >> 28) + 1));
    }
    return vaddvq_s32(sum);
}

static inline int iq2xs_block(const block_iq2_xs *w, const block_q8_K *a)
{
    const uint16_t *q = w->qs;
    int32x4_t sum = vdupq_n_s32(0);
    for (int ib = 0; ib < QK_K / 32; ib++, q += 4) {
        const int8x16_t g0 = u64x2(quant_iq2xs_grid[q[0] & 511], quant_iq2xs_grid[q[1] & 511]);
        const int8x16_t g1 = u64x2(quant_iq2xs_grid[q[2] & 511], quant_iq2xs_grid[q[3] & 511]);
        const int8x16_t s0 = u64x2(kern_ksigns64[q[0] >> 9], kern_ksigns64[q[1] >> 9]);
        const int8x16_t s1 = u64x2(kern_ksigns64[q[2] >> 9], kern_ksigns64[q[3] >> 9]);
        const int8_t *y = a->qs + 32 * ib;
        const int sc = w->scales[ib];
        sum = vmlaq_n_s32(sum, vdotq_s32(vdupq_n_s32(0), vmulq_s8(g0, s0), vld1q_s8(y)), 2 * (sc & 0x0f) + 1);
        sum = vmlaq_n_s32(sum, vdotq_s32(vdupq_n_s32(0), vmulq_s8(g1, s1), vld1q_s8(y + 16)), 2 * (sc >> 4) + 1);
    }
    return vaddvq_s32(sum);
}

static inline int iq2s_block(const block_iq2_s *w, const block_q8_K *a)
{
    const uint8_t *qs = w->qs, *signs = w->qs + QK_K / 8;
    int32x4_t sum = vdupq_n_s32(0);
    for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, signs += 4) {
        const unsigned qh = w->qh[ib];
        const int8x16_t g0 = u64x2(quant_iq2s_grid[qs[0] | (qh << 8 & 0x300)], quant_iq2s_grid[qs[1] | (qh << 6 & 0x300)]);
        const int8x16_t g1 = u64x2(quant_iq2s_grid[qs[2] | (qh << 4 & 0x300)], quant_iq2s_grid[qs[3] | (qh << 2 & 0x300)]);
        const int8_t *y = a->qs + 32 * ib;
        const int sc = w->scales[ib];
        const int32x4_t p0 = vdotq_s32(vdupq_n_s32(0), negate_where(g0, bit_mask16(signs)), vld1q_s8(y));
        const int32x4_t p1 = vdotq_s32(vdupq_n_s32(0), negate_where(g1, bit_mask16(signs + 2)), vld1q_s8(y + 16));
        sum = vmlaq_n_s32(sum, p0, 2 * (sc & 0x0f) + 1);
        sum = vmlaq_n_s32(sum, p1, 2 * (sc >> 4) + 1);
    }
    return vaddvq_s32(sum);
}

static inline int iq3xxs_block(const block_iq3_xxs *w, const block_q8_K *a)
{
    const uint8_t *q = w->qs, *gas = w->qs + QK_K / 4;
    const uint32_t *grid = quant_iq3xxs_grid;
    int32x4_t sum = vdupq_n_s32(0);
    for (int ib = 0; ib < QK_K / 32; ib++, q += 8) {
        uint32_t aux;
        memcpy(&aux, gas + 4 * ib, 4);
        const int8x16_t g0 = u32x4(grid[q[0]], grid[q[1]], grid[q[2]], grid[q[3]]);
        const int8x16_t g1 = u32x4(grid[q[4]], grid[q[5]], grid[q[6]], grid[q[7]]);
        const int8x16_t s0 = u64x2(kern_ksigns64[aux & 127], kern_ksigns64[(aux >> 7) & 127]);
        const int8x16_t s1 = u64x2(kern_ksigns64[(aux >> 14) & 127], kern_ksigns64[(aux >> 21) & 127]);
        sum = vmlaq_n_s32(sum, dot32v(vmulq_s8(g0, s0), vmulq_s8(g1, s1), a->qs + 32 * ib), (int)(2 * (aux >> 28) + 1));
    }
    return vaddvq_s32(sum);
}

static inline int iq3s_block(const block_iq3_s *w, const block_q8_K *a)
{
    const uint8_t *qs = w->qs, *signs = w->signs;
    const uint32_t *grid = quant_iq3s_grid;
    int32x4_t sum = vdupq_n_s32(0);
    for (int ib = 0; ib < QK_K / 32; ib++, qs += 8, signs += 4) {
        const unsigned h = w->qh[ib];
#define I3(k) grid[qs[k] | (h << (8 - (k)) & 256)]
        const int8x16_t g0 = u32x4(I3(0), I3(1), I3(2), I3(3)), g1 = u32x4(I3(4), I3(5), I3(6), I3(7));
#undef I3
        const int8x16_t w0 = negate_where(g0, bit_mask16(signs)), w1 = negate_where(g1, bit_mask16(signs + 2));
        const int ls = 2 * ((w->scales[ib / 2] >> (4 * (ib % 2))) & 0x0f) + 1;
        sum = vmlaq_n_s32(sum, dot32v(w0, w1, a->qs + 32 * ib), ls);
    }
    return vaddvq_s32(sum);
}

/* IQ1_S: ls * (8 * grid.q + delta * bsum) per 32. */
static inline int iq1s_block(const block_iq1_s *w, const block_q8_K *a)
{
    const uint8_t *qs = w->qs;
    int32x4_t sum = vdupq_n_s32(0);
    int dsum = 0;
    for (int ib = 0; ib < QK_K / 32; ib++, qs += 4) {
        const unsigned qh = w->qh[ib];
        const int8x16_t g0 = u64x2(quant_iq1s_grid[qs[0] | (qh << 8 & 0x700)], quant_iq1s_grid[qs[1] | (qh << 5 & 0x700)]);
        const int8x16_t g1 = u64x2(quant_iq1s_grid[qs[2] | (qh << 2 & 0x700)], quant_iq1s_grid[qs[3] | (qh >> 1 & 0x700)]);
        const int ls = 2 * ((qh >> 12) & 7) + 1;
        sum = vmlaq_n_s32(sum, dot32v(g0, g1, a->qs + 32 * ib), 8 * ls);
        const int bs = a->bsums[2 * ib] + a->bsums[2 * ib + 1];
        dsum += qh & 0x8000 ? -ls * bs : ls * bs;
    }
    return vaddvq_s32(sum) + dsum;
}

static inline mf_fp16 iq1m_d(const block_iq1_m *w)
{
    uint16_t sc[4];
    memcpy(sc, w->scales, 8);
    return (mf_fp16)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
}

/* IQ1_M: weights 8 * grid + delta (delta +-1 per 8), a scale per 16. */
static inline int iq1m_block(const block_iq1_m *w, const block_q8_K *a)
{
    const uint8_t *qs = w->qs, *qh = w->qh;
    uint16_t sc[4];
    memcpy(sc, w->scales, 8);
    const uint64_t plus = 0x0101010101010101ull, minus = ~0ull;
    int32x4_t sum = vdupq_n_s32(0);
    for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, qh += 2) {
        const unsigned h = qh[0] | (unsigned)qh[1] << 8;
        const int8x16_t g0 = u64x2(quant_iq1s_grid[qs[0] | (h << 8 & 0x700)], quant_iq1s_grid[qs[1] | (h << 4 & 0x700)]);
        const int8x16_t g1 = u64x2(quant_iq1s_grid[qs[2] | (h & 0x700)], quant_iq1s_grid[qs[3] | (h >> 4 & 0x700)]);
        const int8x16_t d0 = u64x2(h & 0x8 ? minus : plus, h & 0x80 ? minus : plus);
        const int8x16_t d1 = u64x2(h & 0x800 ? minus : plus, h & 0x8000 ? minus : plus);
        const int8_t *y = a->qs + 32 * ib;
        const int shift = 6 * (ib % 2);
        const int8x16_t w0 = vaddq_s8(vshlq_n_s8(g0, 3), d0), w1 = vaddq_s8(vshlq_n_s8(g1, 3), d1);
        sum = vmlaq_n_s32(sum, vdotq_s32(vdupq_n_s32(0), w0, vld1q_s8(y)), 2 * ((sc[ib / 2] >> shift) & 7) + 1);
        sum = vmlaq_n_s32(sum, vdotq_s32(vdupq_n_s32(0), w1, vld1q_s8(y + 16)), 2 * ((sc[ib / 2] >> (shift + 3)) & 7) + 1);
    }
    return vaddvq_s32(sum);
}

IQ_ROW(dot_iq2_xxs, block_iq2_xxs, iq2xxs_block, f16(w[b].d), 0.125f)
IQ_ROW(dot_iq2_xs, block_iq2_xs, iq2xs_block, f16(w[b].d), 0.125f)
IQ_ROW(dot_iq2_s, block_iq2_s, iq2s_block, f16(w[b].d), 0.125f)
IQ_ROW(dot_iq3_xxs, block_iq3_xxs, iq3xxs_block, f16(w[b].d), 0.25f)
IQ_ROW(dot_iq3_s, block_iq3_s, iq3s_block, f16(w[b].d), 1.0f)
IQ_ROW(dot_iq1_s, block_iq1_s, iq1s_block, f16(w[b].d), 0.125f)
IQ_ROW(dot_iq1_m, block_iq1_m, iq1m_block, f16(iq1m_d(&w[b])), 0.125f)

void kern_fill_neon_iq(quant_kernel_set *s)
{
    s->k[MF_TYPE_IQ2_XXS].vec_dot = dot_iq2_xxs;
    s->k[MF_TYPE_IQ2_XS].vec_dot = dot_iq2_xs;
    s->k[MF_TYPE_IQ2_S].vec_dot = dot_iq2_s;
    s->k[MF_TYPE_IQ3_XXS].vec_dot = dot_iq3_xxs;
    s->k[MF_TYPE_IQ3_S].vec_dot = dot_iq3_s;
    s->k[MF_TYPE_IQ1_S].vec_dot = dot_iq1_s;
    s->k[MF_TYPE_IQ1_M].vec_dot = dot_iq1_m;
}
