/* kern_scalar_iq.c — the scalar integer kernels of the i-quants with Q8_K
 * activations (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S): the
 * specification the SIMD kernels (kern_iq_*.c) must equal bit for bit, and
 * the fallback on CPUs without them. IQ4_XS and the K-quants are in
 * kern_scalar.c.
 *
 * The one idea: every i-quant value is an integer times a per-block float.
 * A lattice entry is 4 or 8 small integers (magnitudes 8..62 for IQ2/IQ3,
 * -1/0/+1 for IQ1), its sign pattern flips some of them, and the sub-block
 * scale is an odd integer 2s + 1; what is left is the fp16 block scale
 * times a power of two (IQ2: 1/8, IQ3_XXS: 1/4, IQ1: the 1/8 of the delta
 * 0.125 = IQ1S_DELTA, folded in as isum = 8 * sum(grid * q) + sum(delta *
 * q)). So a block's dot product with Q8_K activations is an exact integer
 * isum, and as in kern_scalar.c its contribution is
 *   (d_x * d_w) * (float)isum          into acc[b % 4],
 * the row kern_acc4_finish(acc), times the type's power of two (0.125f,
 * 0.25f or 1; exact). These are llama.cpp's ggml_vec_dot_iq*_q8_K up to the
 * order of float additions across blocks.
 *
 * Signs: IQ2_XXS, IQ2_XS and IQ3_XXS store 7 sign bits per 8 values; the
 * eighth makes the parity even (quant_ksigns_iq2xs). kern_ksigns64 spells
 * the same patterns as 8 bytes of +1 / -1 for the SIMD kernels; defined
 * here so that every variant shares one copy. Multi-byte fields kept as
 * bytes are read with memcpy: little-endian hosts only (x86-64, aarch64),
 * as everywhere in the kernels.
 */
#include "quant/kern_impl.h"
#include "quant/iq_tables.h"

KERN_NO_FP_CONTRACT

static inline float fp16(mf_fp16 h) { return quant_fp16_to_f32(h); }

/* Byte j of entry i: -1 (0xff) where bit j of ksigns_iq2xs[i] is set, else
 * +1; bit 7 is the parity of bits 0..6. */
#define KS_B(i, j) ((((i) >> (j)) & 1 ? 0xffull : 0x01ull) << (8 * (j)))
#define KS_P(i) ((((i) ^ (i) >> 1 ^ (i) >> 2 ^ (i) >> 3 ^ (i) >> 4 ^ (i) >> 5 ^ (i) >> 6) & 1 ? 0xffull : 0x01ull) << 56)
#define KS(i) (KS_B(i, 0) | KS_B(i, 1) | KS_B(i, 2) | KS_B(i, 3) | KS_B(i, 4) | KS_B(i, 5) | KS_B(i, 6) | KS_P(i))
#define KS4(i) KS(i), KS((i) + 1), KS((i) + 2), KS((i) + 3)
#define KS16(i) KS4(i), KS4((i) + 4), KS4((i) + 8), KS4((i) + 12)
const uint64_t kern_ksigns64[128] = {
    KS16(0), KS16(16), KS16(32), KS16(48), KS16(64), KS16(80), KS16(96), KS16(112),
};

/* sum_j sign_j * grid_j * y_j over 8 values; sign bit j of s negates. */
static inline int dot8_signed(uint64_t grid, uint8_t s, const int8_t *y)
{
    int sum = 0;
    for (int j = 0; j < 8; j++) {
        const int v = quant_grid_byte(grid, j) * y[j];
        sum += (s >> j) & 1 ? -v : v;
    }
    return sum;
}

/* The same over 4 + 4 values from two 4-value entries. */
static inline int dot4x2_signed(uint32_t g1, uint32_t g2, uint8_t s, const int8_t *y)
{
    return dot8_signed((uint64_t)g2 << 32 | g1, s, y);
}

/* IQ2_XXS: per 32 values 4 index bytes and a word of four 7-bit sign
 * indices and the scale s in bits 28..31: isum = sum (2s + 1) * sum; x 1/8. */
static float dot_iq2_xxs(const void *row, const void *act, size_t n)
{
    const block_iq2_xxs *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        const uint8_t *q = (const uint8_t *)w[b].qs;
        const int8_t *y = a[b].qs;
        int isum = 0;
        for (int ib = 0; ib < QK_K / 32; ib++, q += 8) {
            uint32_t aux;
            memcpy(&aux, q + 4, 4);
            int s = 0;
            for (int l = 0; l < 4; l++, y += 8)
                s += dot8_signed(quant_iq2xxs_grid[q[l]], quant_ksigns_iq2xs[(aux >> (7 * l)) & 127], y);
            isum += (int)(2 * (aux >> 28) + 1) * s;
        }
        acc[b & 3] += (a[b].d * fp16(w[b].d)) * (float)isum;
    }
    return 0.125f * kern_acc4_finish(acc);
}

/* IQ2_XS: per 8 values a uint16 of 9-bit index and 7-bit sign index; two
 * 4-bit scales per 32 (the first 16 values, the second); x 1/8. */
static float dot_iq2_xs(const void *row, const void *act, size_t n)
{
    const block_iq2_xs *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        const int8_t *y = a[b].qs;
        int isum = 0;
        for (int ib = 0; ib < QK_K / 32; ib++) {
            int s[2] = { 0, 0 };
            for (int l = 0; l < 4; l++, y += 8) {
                const uint16_t q = w[b].qs[4 * ib + l];
                s[l / 2] += dot8_signed(quant_iq2xs_grid[q & 511], quant_ksigns_iq2xs[q >> 9], y);
            }
            isum += (2 * (w[b].scales[ib] & 0x0f) + 1) * s[0] + (2 * (w[b].scales[ib] >> 4) + 1) * s[1];
        }
        acc[b & 3] += (a[b].d * fp16(w[b].d)) * (float)isum;
    }
    return 0.125f * kern_acc4_finish(acc);
}

/* IQ2_S: 10-bit indices (2 high bits per group in qh), explicit sign
 * bytes, scales as IQ2_XS; x 1/8. */
static float dot_iq2_s(const void *row, const void *act, size_t n)
{
    const block_iq2_s *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        const uint8_t *qs = w[b].qs, *signs = w[b].qs + QK_K / 8;
        const int8_t *y = a[b].qs;
        int isum = 0;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, signs += 4) {
            int s[2] = { 0, 0 };
            for (int l = 0; l < 4; l++, y += 8) {
                const int idx = qs[l] | ((w[b].qh[ib] >> (2 * l)) & 3) << 8;
                s[l / 2] += dot8_signed(quant_iq2s_grid[idx], signs[l], y);
            }
            isum += (2 * (w[b].scales[ib] & 0x0f) + 1) * s[0] + (2 * (w[b].scales[ib] >> 4) + 1) * s[1];
        }
        acc[b & 3] += (a[b].d * fp16(w[b].d)) * (float)isum;
    }
    return 0.125f * kern_acc4_finish(acc);
}

/* IQ3_XXS: 64 index bytes (4 values each), then per 32 values a word of
 * sign indices and scale as IQ2_XXS; x 1/4. */
static float dot_iq3_xxs(const void *row, const void *act, size_t n)
{
    const block_iq3_xxs *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        const uint8_t *q = w[b].qs, *gas = w[b].qs + QK_K / 4;
        const int8_t *y = a[b].qs;
        int isum = 0;
        for (int ib = 0; ib < QK_K / 32; ib++, q += 8) {
            uint32_t aux;
            memcpy(&aux, gas + 4 * ib, 4);
            int s = 0;
            for (int l = 0; l < 4; l++, y += 8)
                s += dot4x2_signed(quant_iq3xxs_grid[q[2 * l]], quant_iq3xxs_grid[q[2 * l + 1]],
                                   quant_ksigns_iq2xs[(aux >> (7 * l)) & 127], y);
            isum += (int)(2 * (aux >> 28) + 1) * s;
        }
        acc[b & 3] += (a[b].d * fp16(w[b].d)) * (float)isum;
    }
    return 0.25f * kern_acc4_finish(acc);
}

/* IQ3_S: 9-bit indices (ninth bit k of qh[ib] for index k), explicit
 * signs, one 4-bit scale per 32 as 2s + 1; no further factor. */
static float dot_iq3_s(const void *row, const void *act, size_t n)
{
    const block_iq3_s *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        const uint8_t *qs = w[b].qs, *signs = w[b].signs;
        const int8_t *y = a[b].qs;
        int isum = 0;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 8, signs += 4) {
            const int qh = w[b].qh[ib];
            int s = 0;
            for (int l = 0; l < 4; l++, y += 8) {
                const uint32_t g1 = quant_iq3s_grid[qs[2 * l] | ((qh >> (2 * l)) & 1) << 8];
                const uint32_t g2 = quant_iq3s_grid[qs[2 * l + 1] | ((qh >> (2 * l + 1)) & 1) << 8];
                s += dot4x2_signed(g1, g2, signs[l], y);
            }
            isum += (2 * ((w[b].scales[ib / 2] >> (4 * (ib % 2))) & 0x0f) + 1) * s;
        }
        acc[b & 3] += (a[b].d * fp16(w[b].d)) * (float)isum;
    }
    return kern_acc4_finish(acc);
}

/* sum_j grid_j * y_j over 8 values of an IQ1 entry (int8 -1/0/+1). */
static inline int dot8_iq1(uint64_t grid, const int8_t *y)
{
    int sum = 0;
    for (int j = 0; j < 8; j++) sum += (int8_t)quant_grid_byte(grid, j) * y[j];
    return sum;
}

/* IQ1_S: value = d * ls * (grid + delta), delta = +-1/8 per 32 values,
 * ls = 2s + 1: isum = sum ls * (8 * sum grid * q + delta8 * bsum), delta8 =
 * +-1 (bsum over the 32 values: two Q8_K bsums); x 1/8. */
static float dot_iq1_s(const void *row, const void *act, size_t n)
{
    const block_iq1_s *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        const uint8_t *qs = w[b].qs;
        const int8_t *y = a[b].qs;
        int isum = 0;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4) {
            const unsigned qh = w[b].qh[ib];
            int s = 0;
            for (int l = 0; l < 4; l++, y += 8) s += dot8_iq1(quant_iq1s_grid[qs[l] | ((qh >> (3 * l)) & 7) << 8], y);
            const int bs = a[b].bsums[2 * ib] + a[b].bsums[2 * ib + 1];
            isum += (int)(2 * ((qh >> 12) & 7) + 1) * (8 * s + (qh & 0x8000 ? -bs : bs));
        }
        acc[b & 3] += (a[b].d * fp16(w[b].d)) * (float)isum;
    }
    return 0.125f * kern_acc4_finish(acc);
}

/* IQ1_M's fp16 super-scale: the top nibbles of its four scale words. */
static inline mf_fp16 iq1m_d(const block_iq1_m *w, uint16_t sc[4])
{
    memcpy(sc, w->scales, 8);
    return (mf_fp16)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
}

/* IQ1_M: as IQ1_S with a 3-bit scale per 16 values and a delta sign per
 * 8 (bit 3 of each qh nibble): isum = sum_16 ls * sum_8 (8 * grid.q +
 * delta8 * sum q); x 1/8. */
static float dot_iq1_m(const void *row, const void *act, size_t n)
{
    const block_iq1_m *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        uint16_t sc[4];
        const mf_fp16 d = iq1m_d(&w[b], sc);
        const uint8_t *qs = w[b].qs, *qh = w[b].qh;
        const int8_t *y = a[b].qs;
        int isum = 0;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, qh += 2) {
            int s[2] = { 0, 0 };
            for (int l = 0; l < 4; l++, y += 8) {
                const int nib = (qh[l / 2] >> (4 * (l % 2))) & 0x0f;
                int ysum = 0;
                for (int j = 0; j < 8; j++) ysum += y[j];
                s[l / 2] += 8 * dot8_iq1(quant_iq1s_grid[qs[l] | (nib & 7) << 8], y) + (nib & 8 ? -ysum : ysum);
            }
            const int shift = 6 * (ib % 2);
            isum += (int)(2 * ((sc[ib / 2] >> shift) & 7) + 1) * s[0] + (int)(2 * ((sc[ib / 2] >> (shift + 3)) & 7) + 1) * s[1];
        }
        acc[b & 3] += (a[b].d * fp16(d)) * (float)isum;
    }
    return 0.125f * kern_acc4_finish(acc);
}

void kern_fill_scalar_iq(quant_kernel_set *s)
{
#define Q(t, fn) s->k[t] = (quant_kernel){ .act_type = MF_TYPE_Q8_K, .vec_dot = fn }
    Q(MF_TYPE_IQ2_XXS, dot_iq2_xxs);
    Q(MF_TYPE_IQ2_XS, dot_iq2_xs);
    Q(MF_TYPE_IQ2_S, dot_iq2_s);
    Q(MF_TYPE_IQ3_XXS, dot_iq3_xxs);
    Q(MF_TYPE_IQ3_S, dot_iq3_s);
    Q(MF_TYPE_IQ1_S, dot_iq1_s);
    Q(MF_TYPE_IQ1_M, dot_iq1_m);
#undef Q
}
