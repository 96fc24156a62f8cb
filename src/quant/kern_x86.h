/* kern_x86.h — what the x86 kernel files (kern_avx2.c and kern_avx512.c)
 * share: horizontal sums, nibble and bit unpacking, the four-blocks-at-a-
 * time loops (32-value formats: BLOCK32_DOT; K-quants: K_DOT over a group
 * function), the per-format weight levels, and the AVX2 bodies of q2_K,
 * q3_K and iq4_xs that both files use as they are. Included only by files compiled with -mavx2 -mfma -mf16c
 * (or more, and -O3: the Makefile's SIMD rules); every function is static
 * inline and takes the including file's flags. */
#ifndef MF_QUANT_KERN_X86_H
#define MF_QUANT_KERN_X86_H

#include "quant/kern_impl.h"
#include "quant/iq_tables.h"

#include <immintrin.h>
#include <stddef.h>

KERN_NO_FP_CONTRACT

/* Round to nearest, ties to even (the scalar kern_nearest_int). */
#define KERN_RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static inline float f16(mf_fp16 h) { return _cvtsh_ss(h); }

static inline int hsum_i32x8(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline int hsum_i32x4(__m128i s)
{
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* [sum v0, sum v1, sum v2, sum v3] */
static inline __m128i hsum4_i32x8(__m256i v0, __m256i v1, __m256i v2, __m256i v3)
{
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

static inline float hsum_f32x8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax_f32x8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* 32 bytes: 0xff where bit i of the 32-bit word at p is set. */
static inline __m256i bytes_from_bits(const uint8_t *p)
{
    uint32_t x;
    memcpy(&x, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

/* 32 nibbles of 16 bytes: low nibbles first, then high (values j, j+16). */
static inline __m256i nibbles(const uint8_t *q)
{
    const __m128i x = _mm_loadu_si128((const __m128i *)q);
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(x, 4), x);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

static inline __m256i load32(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* The group of four blocks (cnt of them present, the rest contribute 0)
 * as one __m128 of contributions; LEVELS gives a block's 32 weight levels
 * as signed bytes, DW4 the four weight scales. */
#define BLOCK32_DOT(name, wtype, LEVELS, DW4, DOT_I8)                                                   \
    static inline __m128 name##_group(const wtype *w, const block_q8_0 *a, int cnt)            \
    {                                                                                          \
        __m256i s[4];                                                                          \
        for (int k = 0; k < 4; k++)                                                            \
            s[k] = k < cnt ? DOT_I8(LEVELS(&w[k]), load32(a[k].qs)) : _mm256_setzero_si256();  \
        const __m128 d = _mm_mul_ps(DW4(w, cnt), dx4(a, cnt));                                 \
        return _mm_mul_ps(_mm_cvtepi32_ps(hsum4_i32x8(s[0], s[1], s[2], s[3])), d);            \
    }                                                                                          \
    static float name(const void *row, const void *act, size_t n)                              \
    {                                                                                          \
        const wtype *w = row;                                                                  \
        const block_q8_0 *a = act;                                                             \
        const size_t nb = n / 32;                                                              \
        __m128 acc = _mm_setzero_ps();                                                         \
        size_t b = 0;                                                                          \
        for (; b + 4 <= nb; b += 4) acc = _mm_add_ps(acc, name##_group(w + b, a + b, 4));      \
        if (b < nb) acc = _mm_add_ps(acc, name##_group(w + b, a + b, (int)(nb - b)));          \
        float r[4];                                                                            \
        _mm_storeu_ps(r, acc);                                                                 \
        return kern_acc4_finish(r);                                                            \
    }

/* Four fp16 scales (0 past cnt) as floats. */
#define FP16X4(p, cnt) \
    _mm_cvtph_ps(_mm_setr_epi16((short)(p)[0].d, (short)((cnt) > 1 ? (p)[1].d : 0), \
                                (short)((cnt) > 2 ? (p)[2].d : 0), (short)((cnt) > 3 ? (p)[3].d : 0), 0, 0, 0, 0))
static inline __m128 dx4(const block_q8_0 *a, int cnt) { return FP16X4(a, cnt); }
#define DW_FP16(w, cnt) FP16X4(w, cnt)
#define DW_E8M0(w, cnt)                                                                  \
    _mm_setr_ps(kern_e8m0_half((w)[0].e), (cnt) > 1 ? kern_e8m0_half((w)[1].e) : 0.0f, \
                (cnt) > 2 ? kern_e8m0_half((w)[2].e) : 0.0f, (cnt) > 3 ? kern_e8m0_half((w)[3].e) : 0.0f)

static inline __m256i lv_q8_0(const block_q8_0 *b) { return load32(b->qs); }
static inline __m256i lv_q4_0(const block_q4_0 *b)
{
    return _mm256_sub_epi8(nibbles(b->qs), _mm256_set1_epi8(8));
}
static inline __m256i lv_q5_0(const block_q5_0 *b)
{
    /* nibble | 0xf0 where the fifth bit is clear: (q | h << 4) - 16 as int8 */
    const __m256i hi = _mm256_andnot_si256(bytes_from_bits(b->qh), _mm256_set1_epi8((char)0xf0));
    return _mm256_or_si256(nibbles(b->qs), hi);
}
static inline __m256i lv_iq4_nl(const block_iq4_nl *b)
{
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)quant_kvalues_iq4nl));
    return _mm256_shuffle_epi8(t, nibbles(b->qs));
}
static inline __m256i lv_mxfp4(const block_mxfp4 *b)
{
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)quant_kvalues_mxfp4));
    return _mm256_shuffle_epi8(t, nibbles(b->qs));
}

/* q4_K/q5_K scales: 16 bytes, the 8 scales then the 8 mins, unpacked
 * from the 12 packed bytes at s (as kern_k4_scales; 16 bytes are read, the
 * block goes on past them). */
static inline __m128i k4_scales(const uint8_t *s)
{
    const __m128i x = _mm_loadu_si128((const __m128i *)s);
    const __m128i a = _mm_shuffle_epi8(x, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m128i b = _mm_shuffle_epi8(x, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    const __m128i lo = _mm_blend_epi32(a, _mm_srli_epi16(a, 4), 0x8);
    const __m128i keep = _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30));
    return _mm_or_si128(_mm_and_si128(lo, keep), hi);
}

/* q4_K/q5_K scales (k4_scales) unpacked in both 128-bit halves of a ymm
 * at once, from a broadcast load: 8 scales then 8 mins, twice. */
static inline __m256i k4_scales2(const uint8_t *s)
{
    const __m256i x = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)s));
    const __m256i a = _mm256_shuffle_epi8(x, _mm256_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11,
                                                              0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m256i b = _mm256_shuffle_epi8(x, _mm256_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7,
                                                              -1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    const __m256i lo = _mm256_blend_epi32(a, _mm256_srli_epi16(a, 4), 0x88);
    const __m256i keep = _mm256_broadcastsi128_si256(_mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15));
    return _mm256_or_si256(_mm256_and_si256(lo, keep), _mm256_and_si256(_mm256_srli_epi16(b, 2), _mm256_set1_epi8(0x30)));
}

/* [sum s0, sum s1, sum s2, sum s3 | sum m0, sum m1, sum m2, sum m3] */
static inline __m256i hsum4x2_i32x8(const __m256i *s, const __m256i *m)
{
    const __m256i s01 = _mm256_add_epi32(_mm256_unpacklo_epi32(s[0], s[1]), _mm256_unpackhi_epi32(s[0], s[1]));
    const __m256i s23 = _mm256_add_epi32(_mm256_unpacklo_epi32(s[2], s[3]), _mm256_unpackhi_epi32(s[2], s[3]));
    const __m256i m01 = _mm256_add_epi32(_mm256_unpacklo_epi32(m[0], m[1]), _mm256_unpackhi_epi32(m[0], m[1]));
    const __m256i m23 = _mm256_add_epi32(_mm256_unpacklo_epi32(m[2], m[3]), _mm256_unpackhi_epi32(m[2], m[3]));
    const __m256i ts = _mm256_add_epi32(_mm256_unpacklo_epi64(s01, s23), _mm256_unpackhi_epi64(s01, s23));
    const __m256i tm = _mm256_add_epi32(_mm256_unpacklo_epi64(m01, m23), _mm256_unpackhi_epi64(m01, m23));
    return _mm256_add_epi32(_mm256_permute2x128_si256(ts, tm, 0x20), _mm256_permute2x128_si256(ts, tm, 0x31));
}

/* A q4_K/q5_K superblock's scales unpacked in both halves (k4_scales2)
 * and its mins' part, the int32 lanes of sum_j m_j * bsum_j: the pshufb
 * pairs min j against the two bsums of sub-block j. */
KERN_INLINE void k4_prep(const uint8_t *scales, const block_q8_K *a, __m256i *sc, __m256i *m)
{
    const __m256i min_pairs = _mm256_setr_epi8(8, -1, 8, -1, 9, -1, 9, -1, 10, -1, 10, -1, 11, -1, 11, -1,
                                               12, -1, 12, -1, 13, -1, 13, -1, 14, -1, 14, -1, 15, -1, 15, -1);
    *sc = k4_scales2(scales);
    *m = _mm256_madd_epi16(_mm256_shuffle_epi8(*sc, min_pairs), load32(a->bsums));
}

/* Four fp16 fields f (0 past cnt) as floats; the activations' scales. */
#define FP16X4F(p, f, cnt)                                                                      \
    _mm_cvtph_ps(_mm_setr_epi16((short)(p)[0].f, (short)((cnt) > 1 ? (p)[1].f : 0),          \
                                (short)((cnt) > 2 ? (p)[2].f : 0), (short)((cnt) > 3 ? (p)[3].f : 0), 0, 0, 0, 0))
#define ACTD4(a, cnt) \
    _mm_setr_ps((a)[0].d, (cnt) > 1 ? (a)[1].d : 0.0f, (cnt) > 2 ? (a)[2].d : 0.0f, (cnt) > 3 ? (a)[3].d : 0.0f)

static_assert(offsetof(block_q4_K, dmin) == offsetof(block_q4_K, d) + 2, "q4_K: d, dmin adjacent");
static_assert(offsetof(block_q5_K, dmin) == offsetof(block_q5_K, d) + 2, "q5_K: d, dmin adjacent");

/* The (d, dmin) fp16 pairs at the start of four q4_K/q5_K blocks (0 past
 * cnt) as floats: *d and *dmin. One 32-bit load per block. */
#define K4_D_DMIN(w, cnt, d_out, dmin_out)                                                         \
    do {                                                                                       \
        uint32_t u_[4] = { 0, 0, 0, 0 };                                                       \
        for (int k_ = 0; k_ < (cnt); k_++) memcpy(&u_[k_], &(w)[k_].d, 4);                     \
        const __m256 f_ = _mm256_permutevar8x32_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)u_)), \
                                                   _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7)); \
        *(d_out) = _mm256_castps256_ps128(f_);                                                 \
        *(dmin_out) = _mm256_extractf128_ps(f_, 1);                                            \
    } while (0)

/* The end of a q4_K/q5_K group: the eight integer sums s[k], m[k] reduced
 * at once, then d * isum - dmin * isum_m per superblock in one ymm
 * ([d | dmin] lanes, d = a.d * w.d, dmin = a.d * w.dmin): the
 * specification's float steps. */
#define K4_GROUP_END(w, a, cnt, s, m)                                                              \
    do {                                                                                       \
        const __m256 isums_ = _mm256_cvtepi32_ps(hsum4x2_i32x8(s, m));                         \
        const __m128 ad_ = ACTD4(a, cnt);                                                      \
        __m128 dw_, dmw_;                                                                      \
        K4_D_DMIN(w, cnt, &dw_, &dmw_);                                                        \
        const __m256 p_ = _mm256_mul_ps(_mm256_mul_ps(_mm256_set_m128(ad_, ad_), _mm256_set_m128(dmw_, dw_)), isums_); \
        return _mm_sub_ps(_mm256_castps256_ps128(p_), _mm256_extractf128_ps(p_, 1));           \
    } while (0)

/* A K-quant row from GROUP(w, a, cnt), the contributions of four
 * superblocks (cnt present; the rest contribute +0). */
#define K_DOT(name, wtype, GROUP)                                                                  \
    static float name(const void *row, const void *act, size_t n)                              \
    {                                                                                          \
        const wtype *w = row;                                                                  \
        const block_q8_K *a = act;                                                             \
        const size_t nb = n / QK_K;                                                            \
        __m128 acc = _mm_setzero_ps();                                                         \
        size_t b = 0;                                                                          \
        for (; b + 4 <= nb; b += 4) acc = _mm_add_ps(acc, GROUP(w + b, a + b, 4));             \
        /* the last 1..3 with the count a constant in each case: a row of  \
         * 768 values (an expert's down projection) is only such a group */ \
        switch (nb - b) {                                                                      \
        case 1: acc = _mm_add_ps(acc, GROUP(w + b, a + b, 1)); break;                          \
        case 2: acc = _mm_add_ps(acc, GROUP(w + b, a + b, 2)); break;                          \
        case 3: acc = _mm_add_ps(acc, GROUP(w + b, a + b, 3)); break;                          \
        default: break;                                                                        \
        }                                                                                      \
        float r[4];                                                                            \
        _mm_storeu_ps(r, acc);                                                                 \
        return kern_acc4_finish(r);                                                            \
    }

/* ---- q2_K, q3_K, iq4_xs: AVX2 bodies shared by both x86 files ---- */

/* pshufb pattern: 8 copies of byte 2i, then 8 of byte 2i+1 (the scales of
 * sub-blocks 2i and 2i+1 over the two 128-bit halves of 32 values). */
static inline __m128i pair_shuffle(int i)
{
    return _mm_set_epi64x(0x0101010101010101LL * (2 * i + 1), 0x0101010101010101LL * (2 * i));
}

/* q2_K: value 128h + 32c + 16g + l is bits 2c of qs[32h + 16g + l],
 * sub-block 8h + 2c + g; scales low nibbles, mins high nibbles. */
KERN_INLINE __m256i q2_block(const block_q2_K *w, const block_q8_K *a, __m256i *mins)
{
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i sc8 = _mm_loadu_si128((const __m128i *)w->scales);
    const __m128i scl = _mm_and_si128(sc8, _mm_set1_epi8(0x0f));
    const __m128i mn = _mm_and_si128(_mm_srli_epi16(sc8, 4), _mm_set1_epi8(0x0f));
    *mins = _mm256_madd_epi16(_mm256_cvtepu8_epi16(mn), load32(a->bsums));
    __m256i sum = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
        const __m256i qb = load32(w->qs + 32 * h);
        for (int c = 0; c < 4; c++) {
            const __m256i q = _mm256_and_si256(_mm256_srli_epi16(qb, 2 * c), m3);
            const __m256i p = _mm256_maddubs_epi16(q, load32(a->qs + 128 * h + 32 * c));
            const __m256i s = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(scl, pair_shuffle(4 * h + c)));
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(s, p));
        }
    }
    return sum;
}

KERN_INLINE __m128 q2_K_group(const block_q2_K *w, const block_q8_K *a, int cnt)
{
    __m256i s[4], m[4];
    for (int k = 0; k < 4; k++) {
        if (k < cnt) {
            s[k] = q2_block(&w[k], &a[k], &m[k]);
        } else {
            s[k] = m[k] = _mm256_setzero_si256();
        }
    }
    const __m128 ad = ACTD4(a, cnt);
    const __m128 d = _mm_mul_ps(ad, FP16X4F(w, d, cnt)), dmin = _mm_mul_ps(ad, FP16X4F(w, dmin, cnt));
    const __m128i isum = hsum4_i32x8(s[0], s[1], s[2], s[3]), isum_m = hsum4_i32x8(m[0], m[1], m[2], m[3]);
    return _mm_sub_ps(_mm_mul_ps(d, _mm_cvtepi32_ps(isum)), _mm_mul_ps(dmin, _mm_cvtepi32_ps(isum_m)));
}

/* q3_K's 16 signed 6-bit scales (kern_q3_scales) unpacked in a vector:
 * low nibbles from bytes 0..7 (scales 0..7 low, 8..15 high nibble), top
 * 2 bits of scale s in bits 2 * (s / 4) of byte 8 + s % 4. Computing them
 * in scalar code and reloading them as a vector stalled on the
 * store-to-load forwarding of 16 byte stores; this is 1.5x faster. */
static inline __m128i q3_scales(const uint8_t *p)
{
    uint32_t t;
    memcpy(&t, p + 8, 4);
    const __m128i lo = _mm_loadl_epi64((const __m128i *)p), m4 = _mm_set1_epi8(0x0f);
    const __m128i nib = _mm_unpacklo_epi64(_mm_and_si128(lo, m4), _mm_and_si128(_mm_srli_epi16(lo, 4), m4));
    const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32((int)t), _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3));
    return _mm_sub_epi8(_mm_or_si128(nib, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
}

/* q3_K: level q + 4 * hbit - 4, q the 2 bits as in q2_K, hbit bit 4h + c
 * of hmask[16g + l]; signed 6-bit scales. The unsigned q + 4 * hbit (0..7)
 * goes through vpmaddubsw, and the -4 is applied once per superblock as
 * -4 * sum_s sc_s * bsum_s (exact: the same integer). */
KERN_INLINE __m256i q3_block(const block_q3_K *w, const block_q8_K *a)
{
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    const __m128i sc8 = q3_scales(w->scales);
    const __m256i corr = _mm256_madd_epi16(load32(a->bsums), _mm256_cvtepi8_epi16(sc8));
    __m256i sum = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 2));
    const __m256i hm = load32(w->hmask);
    for (int h = 0; h < 2; h++) {
        const __m256i qb = load32(w->qs + 32 * h);
        for (int c = 0; c < 4; c++) {
            /* bit k = 4h + c of each hmask byte to bit 2 (k <= 7: 16-bit shifts by at most 5 keep it in its byte) */
            const int k = 4 * h + c;
            const __m256i hb = k >= 2 ? _mm256_srli_epi16(hm, k - 2) : _mm256_slli_epi16(hm, 2 - k);
            const __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 2 * c), m3), _mm256_and_si256(hb, four));
            const __m256i p = _mm256_maddubs_epi16(q, load32(a->qs + 128 * h + 32 * c));
            const __m256i s = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pair_shuffle(k)));
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(s, p));
        }
    }
    return sum;
}

KERN_INLINE __m128 q3_K_group(const block_q3_K *w, const block_q8_K *a, int cnt)
{
    __m256i s[4];
    for (int k = 0; k < 4; k++) s[k] = k < cnt ? q3_block(&w[k], &a[k]) : _mm256_setzero_si256();
    const __m128 d = _mm_mul_ps(ACTD4(a, cnt), FP16X4F(w, d, cnt));
    return _mm_mul_ps(d, _mm_cvtepi32_ps(hsum4_i32x8(s[0], s[1], s[2], s[3])));
}

/* iq4_xs: iq4_nl levels per 32 (low nibbles then high of 16 bytes), signed
 * 6-bit scales; signed levels through the sign trick. */
KERN_INLINE __m256i iq4xs_block(const block_iq4_xs *w, const block_q8_K *a)
{
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)quant_kvalues_iq4nl));
    int8_t sc[8];
    kern_iq4xs_scales(w, sc);
    __m256i sum = _mm256_setzero_si256();
    for (int j = 0; j < 8; j++) {
        const __m256i q = _mm256_shuffle_epi8(t, nibbles(w->qs + 16 * j));
        const __m256i y = load32(a->qs + 32 * j);
        const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q));
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_set1_epi16(sc[j]), p));
    }
    return sum;
}

KERN_INLINE __m128 iq4_xs_group(const block_iq4_xs *w, const block_q8_K *a, int cnt)
{
    __m256i s[4];
    for (int k = 0; k < 4; k++) s[k] = k < cnt ? iq4xs_block(&w[k], &a[k]) : _mm256_setzero_si256();
    const __m128 d = _mm_mul_ps(ACTD4(a, cnt), FP16X4F(w, d, cnt));
    return _mm_mul_ps(d, _mm_cvtepi32_ps(hsum4_i32x8(s[0], s[1], s[2], s[3])));
}

#endif
