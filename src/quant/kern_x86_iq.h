/* kern_x86_iq.h — the x86 bodies of the i-quant kernels (IQ1_S, IQ1_M,
 * IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S with Q8_K activations), shared by
 * kern_iq_avx2.c and kern_iq_avx512.c. The including file defines
 * IQ_MADD(acc, p, s): acc + the int32 pair sums of the int16 products p * s
 * (AVX2: vpmaddwd + vpaddd; AVX-512 VNNI: vpdpwssd), then includes this.
 *
 * The specification is kern_scalar_iq.c; each body forms a superblock's
 * exact integer sum isum, in int32 lanes, in another order:
 * - Lattice entries are fetched with scalar loads into a vector (each
 *   entry is 8 or 4 bytes, indexed by 8 to 11 bits: no shuffle reaches a
 *   table that large); sign patterns are 8-byte entries of kern_ksigns64
 *   (7-bit sign indices) or bytes_from_bits (explicit sign bytes).
 * - vpsignb moves a weight's sign onto the activation, so vpmaddubsw gets
 *   the unsigned magnitude; activations are never -128 (the Q8_K quantizer
 *   clamps to [-127, 127]), so vpsignb cannot overflow, and pairs of
 *   products (at most 2 * 62 * 127) cannot saturate int16.
 * - The odd sub-block scales 2s + 1 go through IQ_MADD as int16.
 * Four superblocks are then combined as in kern_x86.h (K_DOT_F), so the
 * float steps, and so the result, are the scalar ones bit for bit.
 */
#ifndef MF_QUANT_KERN_X86_IQ_H
#define MF_QUANT_KERN_X86_IQ_H

#include "quant/kern_x86.h"

#ifndef IQ_MADD
#error "define IQ_MADD before including kern_x86_iq.h"
#endif

KERN_NO_FP_CONTRACT

/* The loops over the 8 sub-blocks are unrolled, so that per-sub-block
 * constants (shuffle patterns, shifts) fold; gcc does not on its own. */
#define IQ_UNROLL _Pragma("GCC unroll 8")

/* Four 8-byte entries as one vector, entry 0 in the low lane. */
static inline __m256i set4_u64(uint64_t e0, uint64_t e1, uint64_t e2, uint64_t e3)
{
    return _mm256_set_epi64x((long long)e3, (long long)e2, (long long)e1, (long long)e0);
}

/* Sign patterns of four 7-bit indices packed in bits 0..27 of aux. */
static inline __m256i ksigns4(uint32_t aux)
{
    return set4_u64(kern_ksigns64[aux & 127], kern_ksigns64[(aux >> 7) & 127], kern_ksigns64[(aux >> 14) & 127],
                    kern_ksigns64[(aux >> 21) & 127]);
}

/* y with the sign of each byte of m applied: m holds +1 / -1 (ksigns) or
 * 0xff / 0x00 ored with 1 (bytes_from_bits). */
static inline __m256i apply_signs(__m256i y, __m256i m) { return _mm256_sign_epi8(y, m); }
static inline __m256i bit_signs(const uint8_t *p)
{
    return _mm256_or_si256(bytes_from_bits(p), _mm256_set1_epi8(1));
}

/* Sub-block scales are unpacked for a whole superblock into one vector of
 * 16 int16 (or 8, duplicated), and spread per 32 values with one pshufb:
 * computing them one at a time in scalar code and moving each into a
 * vector cost more than the rest of the IQ1_M body. */

/* From v, whose two 128-bit halves both hold int16 scales 0..7: scale i
 * over the first 16 values (low 128 bits) and scale j over the rest. */
static inline __m256i spread2(__m256i v, int i, int j)
{
    return _mm256_shuffle_epi8(v, _mm256_set_m128i(_mm_set1_epi16((short)(2 * j | (2 * j + 1) << 8)),
                                                   _mm_set1_epi16((short)(2 * i | (2 * i + 1) << 8))));
}

/* int16 scale k (of 16, in order in s16) over the first 16 values and
 * scale k + 1 over the rest, for k = 2 * ib. */
static inline __m256i scale_pair(__m256i s16, int ib)
{
    const __m256i half = ib < 4 ? _mm256_permute2x128_si256(s16, s16, 0x00) : _mm256_permute2x128_si256(s16, s16, 0x11);
    return spread2(half, 2 * (ib % 4), 2 * (ib % 4) + 1);
}

/* 16 scales 2s + 1 from the 4-bit s in 8 bytes: low nibble first. */
static inline __m256i scales_nibbles(const uint8_t *p)
{
    const __m128i b = _mm_loadl_epi64((const __m128i *)p);
    const __m128i v = _mm_and_si128(_mm_unpacklo_epi8(b, _mm_srli_epi16(b, 4)), _mm_set1_epi8(0x0f));
    const __m256i s = _mm256_cvtepu8_epi16(v);
    return _mm256_add_epi16(_mm256_add_epi16(s, s), _mm256_set1_epi16(1));
}

/* 8 scales 2 * (aux >> 28) + 1 from the top nibbles of the 8 int32 of v,
 * as int16 in both 128-bit halves (for spread2). */
static inline __m256i scales_top_nibbles(__m256i v)
{
    const __m256i s = _mm256_add_epi32(_mm256_slli_epi32(_mm256_srli_epi32(v, 28), 1), _mm256_set1_epi32(1));
    return _mm256_permute4x64_epi64(_mm256_packs_epi32(s, s), 0x88);
}

/* Four block scales (fp16 field d; 0 past cnt) times the activations'. */
#define IQ_D4(w, a, cnt) _mm_mul_ps(ACTD4(a, cnt), FP16X4F(w, d, cnt))

/* A row from GROUP (four superblocks as an __m128 of contributions, as
 * K_DOT), times the type's power of two f. */
#define K_DOT_F(name, wtype, GROUP, f)                                                             \
    static float name(const void *row, const void *act, size_t n)                              \
    {                                                                                          \
        const wtype *w = row;                                                                  \
        const block_q8_K *a = act;                                                             \
        const size_t nb = n / QK_K;                                                            \
        __m128 acc = _mm_setzero_ps();                                                         \
        size_t b = 0;                                                                          \
        for (; b + 4 <= nb; b += 4) acc = _mm_add_ps(acc, GROUP(w + b, a + b, 4));             \
        if (b < nb) acc = _mm_add_ps(acc, GROUP(w + b, a + b, (int)(nb - b)));                 \
        float r[4];                                                                            \
        _mm_storeu_ps(r, acc);                                                                 \
        return (f) * kern_acc4_finish(r);                                                      \
    }

/* The group of four superblocks for a body BLOCK(w, a) -> __m256i of
 * int32 lanes, and D4(w, a, cnt) the four (d_x * d_w). */
#define IQ_GROUP(name, wtype, BLOCK, D4)                                                           \
    KERN_INLINE __m128 name(const wtype *w, const block_q8_K *a, int cnt)                     \
    {                                                                                          \
        __m256i s[4];                                                                          \
        for (int k = 0; k < 4; k++) s[k] = k < cnt ? BLOCK(&w[k], &a[k]) : _mm256_setzero_si256(); \
        return _mm_mul_ps(D4(w, a, cnt), _mm_cvtepi32_ps(hsum4_i32x8(s[0], s[1], s[2], s[3]))); \
    }

/* ---- IQ2_XXS: 4 index bytes and a sign/scale word per 32 ---- */

KERN_INLINE __m256i iq2xxs_block(const block_iq2_xxs *w, const block_q8_K *a)
{
    const uint8_t *q = (const uint8_t *)w->qs;
    /* the 8 sign/scale words are the odd int32 of the 64 bytes */
    const __m256i odd = _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7);
    const __m256i a0 = _mm256_permutevar8x32_epi32(load32(q), odd), a1 = _mm256_permutevar8x32_epi32(load32(q + 32), odd);
    const __m256i ls = scales_top_nibbles(_mm256_permute2x128_si256(a0, a1, 0x20));
    __m256i sum = _mm256_setzero_si256();
    IQ_UNROLL
    for (int ib = 0; ib < QK_K / 32; ib++, q += 8) {
        uint32_t aux;
        memcpy(&aux, q + 4, 4);
        const __m256i g = set4_u64(quant_iq2xxs_grid[q[0]], quant_iq2xxs_grid[q[1]], quant_iq2xxs_grid[q[2]],
                                   quant_iq2xxs_grid[q[3]]);
        const __m256i y = apply_signs(load32(a->qs + 32 * ib), ksigns4(aux));
        sum = IQ_MADD(sum, _mm256_maddubs_epi16(g, y), spread2(ls, ib, ib));
    }
    return sum;
}

/* ---- IQ2_XS: a uint16 per 8 (9-bit index, 7-bit sign index) ---- */

KERN_INLINE __m256i iq2xs_block(const block_iq2_xs *w, const block_q8_K *a)
{
    const uint16_t *q = w->qs;
    const __m256i ls = scales_nibbles(w->scales);
    __m256i sum = _mm256_setzero_si256();
    IQ_UNROLL
    for (int ib = 0; ib < QK_K / 32; ib++, q += 4) {
        const __m256i g = set4_u64(quant_iq2xs_grid[q[0] & 511], quant_iq2xs_grid[q[1] & 511],
                                   quant_iq2xs_grid[q[2] & 511], quant_iq2xs_grid[q[3] & 511]);
        const __m256i sg = set4_u64(kern_ksigns64[q[0] >> 9], kern_ksigns64[q[1] >> 9], kern_ksigns64[q[2] >> 9],
                                    kern_ksigns64[q[3] >> 9]);
        const __m256i y = apply_signs(load32(a->qs + 32 * ib), sg);
        sum = IQ_MADD(sum, _mm256_maddubs_epi16(g, y), scale_pair(ls, ib));
    }
    return sum;
}

/* ---- IQ2_S: 10-bit indices, explicit sign bytes ---- */

KERN_INLINE __m256i iq2s_block(const block_iq2_s *w, const block_q8_K *a)
{
    const uint8_t *qs = w->qs, *signs = w->qs + QK_K / 8;
    const __m256i ls = scales_nibbles(w->scales);
    __m256i sum = _mm256_setzero_si256();
    IQ_UNROLL
    for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, signs += 4) {
        const unsigned qh = w->qh[ib];
        const __m256i g = set4_u64(quant_iq2s_grid[qs[0] | (qh << 8 & 0x300)], quant_iq2s_grid[qs[1] | (qh << 6 & 0x300)],
                                   quant_iq2s_grid[qs[2] | (qh << 4 & 0x300)], quant_iq2s_grid[qs[3] | (qh << 2 & 0x300)]);
        const __m256i y = apply_signs(load32(a->qs + 32 * ib), bit_signs(signs));
        sum = IQ_MADD(sum, _mm256_maddubs_epi16(g, y), scale_pair(ls, ib));
    }
    return sum;
}

/* ---- IQ3_XXS: 8 index bytes (4-byte entries) and a sign/scale word per 32 ---- */

KERN_INLINE __m256i iq3xxs_block(const block_iq3_xxs *w, const block_q8_K *a)
{
    const uint8_t *q = w->qs, *gas = w->qs + QK_K / 4;
    const uint32_t *grid = quant_iq3xxs_grid;
    const __m256i ls = scales_top_nibbles(load32(gas));
    __m256i sum = _mm256_setzero_si256();
    IQ_UNROLL
    for (int ib = 0; ib < QK_K / 32; ib++, q += 8) {
        uint32_t aux;
        memcpy(&aux, gas + 4 * ib, 4);
        const __m256i g = _mm256_setr_epi32((int)grid[q[0]], (int)grid[q[1]], (int)grid[q[2]], (int)grid[q[3]],
                                            (int)grid[q[4]], (int)grid[q[5]], (int)grid[q[6]], (int)grid[q[7]]);
        const __m256i y = apply_signs(load32(a->qs + 32 * ib), ksigns4(aux));
        sum = IQ_MADD(sum, _mm256_maddubs_epi16(g, y), spread2(ls, ib, ib));
    }
    return sum;
}

/* ---- IQ3_S: 9-bit indices (ninth bits in qh), explicit sign bytes ---- */

KERN_INLINE __m256i iq3s_block(const block_iq3_s *w, const block_q8_K *a)
{
    const uint8_t *qs = w->qs, *signs = w->signs;
    const uint32_t *grid = quant_iq3s_grid;
    uint32_t sc4;
    memcpy(&sc4, w->scales, 4);
    const __m128i sb = _mm_cvtsi32_si128((int)sc4);
    const __m128i nib = _mm_and_si128(_mm_unpacklo_epi8(sb, _mm_srli_epi16(sb, 4)), _mm_set1_epi8(0x0f));
    const __m128i ls16 = _mm_cvtepu8_epi16(nib);
    const __m256i ls = _mm256_broadcastsi128_si256(_mm_add_epi16(_mm_add_epi16(ls16, ls16), _mm_set1_epi16(1)));
    __m256i sum = _mm256_setzero_si256();
    IQ_UNROLL
    for (int ib = 0; ib < QK_K / 32; ib++, qs += 8, signs += 4) {
        const unsigned h = w->qh[ib];
#define I3(k) (int)grid[qs[k] | (h << (8 - (k)) & 256)]
        const __m256i g = _mm256_setr_epi32(I3(0), I3(1), I3(2), I3(3), I3(4), I3(5), I3(6), I3(7));
#undef I3
        const __m256i y = apply_signs(load32(a->qs + 32 * ib), bit_signs(signs));
        sum = IQ_MADD(sum, _mm256_maddubs_epi16(g, y), spread2(ls, ib, ib));
    }
    return sum;
}

/* ---- IQ1_S: entries of -1/0/+1, 11-bit indices, delta per 32 ----
 * isum = sum ls * (8 * grid.q + delta * bsum): the grid part through
 * IQ_MADD with 8 * ls, the delta part as one vpmaddwd of the 16 bsums with
 * +-ls per pair. */

KERN_INLINE __m256i iq1s_block(const block_iq1_s *w, const block_q8_K *a)
{
    const uint8_t *qs = w->qs;
    /* per 32 values (int16 lane ib): ls = 2 * (qh >> 12 & 7) + 1, and +-ls
     * by the delta sign, bit 15 (the sign of qh as int16) */
    const __m128i qh8 = _mm_loadu_si128((const __m128i *)w->qh);
    const __m128i ls = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(qh8, 11), _mm_set1_epi16(14)), _mm_set1_epi16(1));
    const __m128i dls = _mm_sign_epi16(ls, _mm_or_si128(qh8, _mm_set1_epi16(1)));
    const __m256i ls8 = _mm256_broadcastsi128_si256(_mm_slli_epi16(ls, 3));
    const __m256i dl = _mm256_set_m128i(_mm_unpackhi_epi16(dls, dls), _mm_unpacklo_epi16(dls, dls));
    __m256i sum = _mm256_madd_epi16(load32(a->bsums), dl);
    IQ_UNROLL
    for (int ib = 0; ib < QK_K / 32; ib++, qs += 4) {
        const unsigned qh = w->qh[ib];
        const __m256i g = set4_u64(quant_iq1s_grid[qs[0] | (qh << 8 & 0x700)], quant_iq1s_grid[qs[1] | (qh << 5 & 0x700)],
                                   quant_iq1s_grid[qs[2] | (qh << 2 & 0x700)], quant_iq1s_grid[qs[3] | (qh >> 1 & 0x700)]);
        const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(g, g), _mm256_sign_epi8(load32(a->qs + 32 * ib), g));
        sum = IQ_MADD(sum, p, spread2(ls8, ib, ib));
    }
    return sum;
}

/* ---- IQ1_M: a 3-bit scale per 16, a delta sign per 8, no d field ----
 * The weight of value j is the integer 8 * grid_j + delta (|.| <= 9). */

static inline float iq1m_d(const block_iq1_m *w)
{
    uint16_t sc[4];
    memcpy(sc, w->scales, 8);
    return _cvtsh_ss((unsigned short)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000)));
}

/* The 16 IQ1_M scales 2s + 1 (3-bit s: scale k in bits 3 * (k % 4) of
 * scale word k / 4; the top nibbles are the super-scale). */
static inline __m256i iq1m_scales(const block_iq1_m *w)
{
    const __m256i words = _mm256_cvtepu16_epi32(_mm_loadl_epi64((const __m128i *)w->scales));
    const __m256i sh = _mm256_setr_epi32(0, 3, 6, 9, 0, 3, 6, 9), seven = _mm256_set1_epi32(7);
    const __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(_mm256_permutevar8x32_epi32(words, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1)), sh), seven);
    const __m256i hi = _mm256_and_si256(_mm256_srlv_epi32(_mm256_permutevar8x32_epi32(words, _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3)), sh), seven);
    const __m256i s = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xd8);
    return _mm256_add_epi16(_mm256_add_epi16(s, s), _mm256_set1_epi16(1));
}

KERN_INLINE __m256i iq1m_block(const block_iq1_m *w, const block_q8_K *a)
{
    const uint8_t *qs = w->qs, *qh = w->qh;
    const __m256i ls = iq1m_scales(w);
    const __m256i eight = _mm256_set1_epi8(8), one = _mm256_set1_epi8(1);
    const __m256i dsh = _mm256_setr_epi64x(3, 7, 11, 15);
    __m256i sum = _mm256_setzero_si256();
    IQ_UNROLL
    for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, qh += 2) {
        const unsigned h = qh[0] | (unsigned)qh[1] << 8; /* nibble l: 3 index bits, delta sign */
        const __m256i g = set4_u64(quant_iq1s_grid[qs[0] | (h << 8 & 0x700)], quant_iq1s_grid[qs[1] | (h << 4 & 0x700)],
                                   quant_iq1s_grid[qs[2] | (h & 0x700)], quant_iq1s_grid[qs[3] | (h >> 4 & 0x700)]);
        /* +1 or -1 (bit 4l + 3 of h) in every byte of group l */
        const __m256i neg = _mm256_and_si256(_mm256_srlv_epi64(_mm256_set1_epi64x(h), dsh), _mm256_set1_epi64x(1));
        const __m256i delta = _mm256_or_si256(_mm256_sub_epi64(_mm256_setzero_si256(), neg), one);
        const __m256i v = _mm256_add_epi8(_mm256_sign_epi8(eight, g), delta);
        const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(v, v), _mm256_sign_epi8(load32(a->qs + 32 * ib), v));
        sum = IQ_MADD(sum, p, scale_pair(ls, ib));
    }
    return sum;
}

#define IQ1M_D4(w, a, cnt)                                                                         \
    _mm_mul_ps(ACTD4(a, cnt), _mm_setr_ps(iq1m_d(&(w)[0]), (cnt) > 1 ? iq1m_d(&(w)[1]) : 0.0f,   \
                                          (cnt) > 2 ? iq1m_d(&(w)[2]) : 0.0f, (cnt) > 3 ? iq1m_d(&(w)[3]) : 0.0f))

IQ_GROUP(iq2_xxs_group, block_iq2_xxs, iq2xxs_block, IQ_D4)
IQ_GROUP(iq2_xs_group, block_iq2_xs, iq2xs_block, IQ_D4)
IQ_GROUP(iq2_s_group, block_iq2_s, iq2s_block, IQ_D4)
IQ_GROUP(iq3_xxs_group, block_iq3_xxs, iq3xxs_block, IQ_D4)
IQ_GROUP(iq3_s_group, block_iq3_s, iq3s_block, IQ_D4)
IQ_GROUP(iq1_s_group, block_iq1_s, iq1s_block, IQ_D4)
IQ_GROUP(iq1_m_group, block_iq1_m, iq1m_block, IQ1M_D4)

K_DOT_F(dot_iq2_xxs, block_iq2_xxs, iq2_xxs_group, 0.125f)
K_DOT_F(dot_iq2_xs, block_iq2_xs, iq2_xs_group, 0.125f)
K_DOT_F(dot_iq2_s, block_iq2_s, iq2_s_group, 0.125f)
K_DOT_F(dot_iq3_xxs, block_iq3_xxs, iq3_xxs_group, 0.25f)
K_DOT_F(dot_iq3_s, block_iq3_s, iq3_s_group, 1.0f)
K_DOT_F(dot_iq1_s, block_iq1_s, iq1_s_group, 0.125f)
K_DOT_F(dot_iq1_m, block_iq1_m, iq1_m_group, 0.125f)

/* The i-quant entries of a kernel set. */
static inline void iq_fill(quant_kernel_set *s)
{
    s->k[MF_TYPE_IQ2_XXS].vec_dot = dot_iq2_xxs;
    s->k[MF_TYPE_IQ2_XS].vec_dot = dot_iq2_xs;
    s->k[MF_TYPE_IQ2_S].vec_dot = dot_iq2_s;
    s->k[MF_TYPE_IQ3_XXS].vec_dot = dot_iq3_xxs;
    s->k[MF_TYPE_IQ3_S].vec_dot = dot_iq3_s;
    s->k[MF_TYPE_IQ1_S].vec_dot = dot_iq1_s;
    s->k[MF_TYPE_IQ1_M].vec_dot = dot_iq1_m;
}

#endif
