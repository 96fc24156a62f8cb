/* kern_x86_n.h — the several-token kernels (vec_dot_n) of the x86 files:
 * one weight row against up to 8 activation vectors, each weight block
 * unpacked once (nibbles to bytes, packed scales to int16) and reused for
 * every token. Included by kern_avx2.c and kern_avx512.c after
 * kern_x86.h; they differ only in how a scaled int16 pair sum is
 * accumulated (MADD: vpmaddwd + vpaddd, or VNNI vpdpwssd).
 *
 * Bit exactness with vec_dot: a block's integer sums are exact whatever
 * the order, and its float steps are the single-token kernel's, one token
 * per lane of a __m256: lane t of acc[k] is the scalar acc[k] of token t,
 * and it receives the same contributions, in the same block order, as
 * K_DOT's lane k (kern_x86.h), including the +0 that K_DOT's last partial
 * group of four adds to the lanes past the row's end.
 *
 * Tokens past ntok in a pass of NT (4 or 8, a constant, so that every loop
 * unrolls and the per-token sums stay in registers) repeat the last real
 * token; their results are dropped. */
#ifndef MF_QUANT_KERN_X86_N_H
#define MF_QUANT_KERN_X86_N_H

#include "quant/kern_x86.h"

KERN_NO_FP_CONTRACT

/* lane t = sum of v[t], t < 8 */
static inline __m256i hsum8_i32x8(const __m256i v[8])
{
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

/* The block pointers of tokens 0..NT-1, those past ntok repeating the last. */
KERN_INLINE void kn_tokens(const void *act, size_t stride, int ntok, int NT, const uint8_t *p[8])
{
    for (int t = 0; t < NT; t++) p[t] = (const uint8_t *)act + (size_t)(t < ntok ? t : ntok - 1) * stride;
}

/* lane t = the float at byte offset off of block b of token t (t < NT, 0 past NT) */
KERN_INLINE __m256 kn_act_d(const uint8_t *const p[8], size_t boff, int NT)
{
    float d[8];
    for (int t = 0; t < 8; t++) d[t] = 0.0f;
    for (int t = 0; t < NT; t++) memcpy(&d[t], p[t] + boff, sizeof(float));
    return _mm256_setr_ps(d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]);
}

/* The end of a row: K_DOT's +0 for the lanes of its last partial group,
 * the kern_acc4_finish of every lane, the first ntok lanes to out. */
KERN_INLINE void kn_finish(__m256 acc[4], size_t nb, int ntok, float *out)
{
    if (nb % 4)
        for (size_t k = nb % 4; k < 4; k++) acc[k] = _mm256_add_ps(acc[k], _mm256_setzero_ps());
    const __m256 r = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    float o[8];
    _mm256_storeu_ps(o, r);
    memcpy(out, o, sizeof(float) * (size_t)ntok);
}

/* ---- q4_K / q5_K ---- */

/* One superblock's weights, unpacked: the 32 levels of each sub-block j
 * (lv[j], 0..31 as bytes), its scale as an int16 pair (sc[j], for a 32-bit
 * broadcast), and min j twice as int16 for the two bsums of sub-block j
 * (*mins: one vpmaddwd with the bsums gives the 8 min products). */
KERN_INLINE void k4n_unpack(const uint8_t *qs, const uint8_t *qh, const uint8_t *scales, __m256i lv[8],
                            int32_t sc[8], __m256i *mins)
{
    const __m256i ms = _mm256_cvtepu8_epi16(k4_scales(scales));
    const __m128i s16 = _mm256_castsi256_si128(ms);
    _mm256_storeu_si256((__m256i *)sc, _mm256_set_m128i(_mm_unpackhi_epi16(s16, s16), _mm_unpacklo_epi16(s16, s16)));
    const __m128i m16 = _mm256_extracti128_si256(ms, 1);
    *mins = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    const __m256i hbits = qh ? load32(qh) : _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
        const __m256i q4 = load32(qs + 32 * j);
        lv[2 * j] = _mm256_and_si256(q4, m4);
        lv[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
        if (qh) {
            lv[2 * j] = _mm256_or_si256(lv[2 * j], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), one), 4));
            lv[2 * j + 1] = _mm256_or_si256(lv[2 * j + 1],
                                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), one), 4));
        }
    }
}

/* One pass of NT tokens over the row: per superblock the integer sums of
 * each token (TSUM(lv, sc, a): the int32 lanes of sum_j sc_j * q_j.a_j for
 * the unpacked weights and token a), the mins, and the float contribution
 * of every token lane, added into acc[b % 4]. */
#define K4N_DEFINE(name, wtype, QH, TSUM)                                                          \
    KERN_INLINE void name##_pass(const wtype *w, const uint8_t *act, size_t stride, size_t nb, int ntok,     \
                                 float *out, const int NT)                                           \
    {                                                                                          \
        const uint8_t *p[8];                                                                   \
        kn_tokens(act, stride, ntok, NT, p);                                                   \
        __m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps() }; \
        for (size_t b = 0; b < nb; b++) {                                                      \
            __m256i lv[8];                                                                     \
            int32_t sc[8];                                                                     \
            __m256i mins;                                                                      \
            k4n_unpack(w[b].qs, QH, w[b].scales, lv, sc, &mins);                               \
            __m256i s[8];                                                                      \
            __m256i m[8];                                                                      \
            for (int t = 0; t < 8; t++) s[t] = m[t] = _mm256_setzero_si256();                  \
            const size_t boff = b * sizeof(block_q8_K);                                        \
            for (int t = 0; t < NT; t++) {                                                     \
                const block_q8_K *a = (const block_q8_K *)(p[t] + boff);                       \
                s[t] = TSUM(lv, sc, a);                                                        \
                m[t] = _mm256_madd_epi16(mins, load32(a->bsums));                              \
            }                                                                                  \
            const __m256 ad = kn_act_d(p, boff + offsetof(block_q8_K, d), NT);                 \
            const __m256 d = _mm256_mul_ps(ad, _mm256_set1_ps(f16(w[b].d)));                   \
            const __m256 dmin = _mm256_mul_ps(ad, _mm256_set1_ps(f16(w[b].dmin)));             \
            const __m256 c = _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(hsum8_i32x8(s))), \
                                           _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(hsum8_i32x8(m)))); \
            acc[b % 4] = _mm256_add_ps(acc[b % 4], c);                                         \
        }                                                                                      \
        kn_finish(acc, nb, ntok, out);                                                         \
    }                                                                                          \
    static void name(const void *row, const void *act, size_t stride, size_t n, int ntok, float *out) \
    {                                                                                          \
        const wtype *w = row;                                                                  \
        const uint8_t *x = act;                                                                \
        for (; ntok > 0; ntok -= 8, x += 8 * stride, out += 8) {                               \
            if (ntok > 4) name##_pass(w, x, stride, n / QK_K, ntok < 8 ? ntok : 8, out, 8);    \
            else name##_pass(w, x, stride, n / QK_K, ntok, out, 4);                            \
        }                                                                                      \
    }

#endif
