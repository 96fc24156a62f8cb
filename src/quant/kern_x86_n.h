/* kern_x86_n.h — the several-token kernels (vec_dot_n) of the x86 files:
 * one weight row against up to 8 activation vectors, each weight block
 * unpacked once (nibbles to bytes, packed scales to int16) and reused for
 * every token. Included by kern_avx2.c and kern_avx512.c, which differ
 * only in a token's integer sums (TSUM: vpmaddubsw + vpmaddwd, or VNNI
 * vpdpbusd + packed vpdpwssd).
 *
 * Bit exactness with vec_dot: a block's integer sums are exact whatever
 * the order, and its float steps are the single-token kernel's, one token
 * per lane of a __m256: lane t of acc[k] is the scalar acc[k] of token t,
 * and it receives the same contributions, in the same block order, as
 * K_DOT's lane k (kern_x86.h), including the +0 that K_DOT's last partial
 * group of four adds to the lanes past the row's end.
 *
 * Tokens past ntok in a pass of NT (2, 4 or 8, a constant, so that every
 * loop unrolls and the per-token sums stay in registers) repeat the last
 * real token; their results are dropped. A token alone (for 32-value
 * blocks up to three), and the fifth of five, go to the single-token
 * kernel (SINGLE), faster for them: its groups of four blocks have more
 * independent work than a pass's one block at a time (a pass of one token
 * ran at 0.65x of it). */
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

/* lane t = the float at byte boff of token t's activations (t < NT; 0 past NT) */
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

/* The vec_dot_n of a row of blocks of qk values: passes of 8, 4 or 2
 * tokens (name##_pass), and SINGLE for a pass's leftovers and for fewer
 * than `few` tokens, where one token at a time measured faster. */
#define KN_DISPATCH(name, wtype, qk, SINGLE, few)                                                  \
    static void name(const void *row, const void *act, size_t stride, size_t n, int ntok, float *out) \
    {                                                                                          \
        const wtype *w = row;                                                                  \
        const uint8_t *x = act;                                                                \
        for (; ntok > 0; ntok -= 8, x += 8 * stride, out += 8) {                               \
            const int nt = ntok < 8 ? ntok : 8;                                                \
            int done = 0;                                                                      \
            if (nt > 5) {                                                                      \
                name##_pass(w, x, stride, n / (qk), nt, out, 8);                               \
                done = nt;                                                                     \
            } else if (nt >= 4 || (nt == 3 && (few) <= 3)) {                                   \
                done = nt < 4 ? nt : 4;                                                        \
                name##_pass(w, x, stride, n / (qk), done, out, 4);                             \
            } else if (nt == 2 && (few) <= 2) {                                                \
                name##_pass(w, x, stride, n / (qk), 2, out, 2);                                \
                done = 2;                                                                      \
            }                                                                                  \
            for (int t = done; t < nt; t++) out[t] = SINGLE(row, x + (size_t)t * stride, n);   \
        }                                                                                      \
    }

/* One pass of NT tokens over a row of K-quant superblocks. Per superblock:
 * UNPACK(&w[b], &u) its weights into u (of type utype) once; for each
 * token, TSUM(&u, a, &s, &m) its integer sums as int32 lanes (s: the
 * scaled level sums, m: the mins' sums, if the format has mins); then
 * CONTRIB(&w[b], ad, s, m) the float contributions, lane t for token t (ad:
 * the tokens' activation scales), added into acc[b % 4]. */
#define KN_DEFINE(name, wtype, utype, UNPACK, TSUM, CONTRIB, SINGLE)                                       \
    KERN_INLINE void name##_pass(const wtype *w, const uint8_t *act, size_t stride, size_t nb, int ntok, \
                                 float *out, const int NT)                                     \
    {                                                                                          \
        const uint8_t *p[8];                                                                   \
        kn_tokens(act, stride, ntok, NT, p);                                                   \
        __m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps() }; \
        for (size_t b = 0; b < nb; b++) {                                                      \
            utype u;                                                                           \
            UNPACK(&w[b], &u);                                                                 \
            __m256i s[8], m[8];                                                                \
            for (int t = 0; t < 8; t++) s[t] = m[t] = _mm256_setzero_si256();                  \
            const size_t boff = b * sizeof(block_q8_K);                                        \
            for (int t = 0; t < NT; t++) TSUM(&u, (const block_q8_K *)(p[t] + boff), &s[t], &m[t]); \
            const __m256 ad = kn_act_d(p, boff + offsetof(block_q8_K, d), NT);                 \
            acc[b % 4] = _mm256_add_ps(acc[b % 4], CONTRIB(&w[b], ad, s, m));                  \
        }                                                                                      \
        kn_finish(acc, nb, ntok, out);                                                         \
    }                                                                                          \
    KN_DISPATCH(name, wtype, QK_K, SINGLE, 2)

/* ---- q4_K / q5_K ---- */

/* A superblock unpacked: the 32 levels of each sub-block j (lv[j], 0..31
 * as bytes), its scale as an int16 pair (sc[j], for a 32-bit broadcast),
 * and min j twice as int16, for the two bsums of sub-block j (one vpmaddwd
 * with the bsums gives the 8 min products). */
typedef struct k4n_w {
    __m256i lv[8];
    int32_t sc[8];
    __m256i mins;
} k4n_w;

KERN_INLINE void k4n_unpack(const uint8_t *qs, const uint8_t *qh, const uint8_t *scales, k4n_w *u)
{
    const __m256i ms = _mm256_cvtepu8_epi16(k4_scales(scales));
    const __m128i s16 = _mm256_castsi256_si128(ms);
    _mm256_storeu_si256((__m256i *)u->sc, _mm256_set_m128i(_mm_unpackhi_epi16(s16, s16), _mm_unpacklo_epi16(s16, s16)));
    const __m128i m16 = _mm256_extracti128_si256(ms, 1);
    u->mins = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    const __m256i hbits = qh ? load32(qh) : _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
        const __m256i q4 = load32(qs + 32 * j);
        __m256i lo = _mm256_and_si256(q4, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
        if (qh) {
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), one), 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), one), 4));
        }
        u->lv[2 * j] = lo;
        u->lv[2 * j + 1] = hi;
    }
}

KERN_INLINE void q4n_unpack(const block_q4_K *w, k4n_w *u) { k4n_unpack(w->qs, NULL, w->scales, u); }
KERN_INLINE void q5n_unpack(const block_q5_K *w, k4n_w *u) { k4n_unpack(w->qs, w->qh, w->scales, u); }

/* d * isum - dmin * isum_m, d = a.d * w.d, dmin = a.d * w.dmin */
#define K4N_CONTRIB(w, ad, s, m)                                                                   \
    _mm256_sub_ps(_mm256_mul_ps(_mm256_mul_ps(ad, _mm256_set1_ps(f16((w)->d))), _mm256_cvtepi32_ps(hsum8_i32x8(s))), \
                  _mm256_mul_ps(_mm256_mul_ps(ad, _mm256_set1_ps(f16((w)->dmin))), _mm256_cvtepi32_ps(hsum8_i32x8(m))))

/* the mins' part of a token's sums, for both x86 files */
KERN_INLINE __m256i k4n_mins(const k4n_w *u, const block_q8_K *a) { return _mm256_madd_epi16(u->mins, load32(a->bsums)); }

/* ---- q6_K ---- */

/* A superblock unpacked: levels 0..63 of values 32k .. 32k + 31 (q[k]),
 * for vpmaddubsw the int16 scale of each of its 16 (sv[k]: 8 copies of
 * scale 2k, 8 of 2k + 1, one per 128-bit half), for the VNNI kernel the
 * int16 scales of two vectors' int32 lanes packed together (sp[k]: see
 * kern_avx512.c), and -32 * scale as int16 (nsc: the levels are stored
 * +32, and -32 * sum_s sc_s * bsum_s is one vpmaddwd with the bsums). */
typedef struct q6n_w {
    __m256i q[8], sv[8], sp[4], nsc;
} q6n_w;

KERN_INLINE void q6n_unpack(const block_q6_K *w, q6n_w *u)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    const __m128i sc8 = _mm_loadu_si128((const __m128i *)w->scales);
    u->nsc = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(sc8), _mm256_set1_epi16(-32));
    for (int h = 0; h < 2; h++) {
        const __m256i l0 = load32(w->ql + 64 * h), l1 = load32(w->ql + 64 * h + 32);
        const __m256i hb = load32(w->qh + 32 * h);
        __m256i *q = u->q + 4 * h;
        q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
        q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
    }
    for (int k = 0; k < 8; k++) u->sv[k] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pair_shuffle(k)));
    /* vectors 2i and 2i + 1: 128-bit half g holds scale 4i + g four times, then 4i + 2 + g */
    for (int i = 0; i < 4; i++) {
        const __m128i pat = _mm_setr_epi8((char)(4 * i), (char)(4 * i), (char)(4 * i), (char)(4 * i), (char)(4 * i + 2),
                                          (char)(4 * i + 2), (char)(4 * i + 2), (char)(4 * i + 2), (char)(4 * i + 1),
                                          (char)(4 * i + 1), (char)(4 * i + 1), (char)(4 * i + 1), (char)(4 * i + 3),
                                          (char)(4 * i + 3), (char)(4 * i + 3), (char)(4 * i + 3));
        u->sp[i] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pat));
    }
}

/* (a.d * w.d) * isum */
#define Q6N_CONTRIB(w, ad, s, m) \
    _mm256_mul_ps(_mm256_mul_ps(ad, _mm256_set1_ps(f16((w)->d))), _mm256_cvtepi32_ps(hsum8_i32x8(s)))

/* ---- 32-value blocks with Q8_0 activations (q8_0 q4_0 q5_0 iq4_nl mxfp4) ----
 *
 * A block's 32 signed levels are formed once (LEVELS, as BLOCK32_DOT's),
 * with their magnitudes for the sign trick; per token, TSUM32(|w|, w, a)
 * the int32 lanes of w.a; the contribution of lane t is BLOCK32_DOT's
 * (float)isum * (dw * dx), DW1 the block's weight scale as a float. */

/* lane t = the fp16 at byte boff of token t's activations, as a float */
KERN_INLINE __m256 kn_act_dh(const uint8_t *const p[8], size_t boff, int NT)
{
    uint16_t h[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    for (int t = 0; t < NT; t++) memcpy(&h[t], p[t] + boff, sizeof h[t]);
    return _mm256_cvtph_ps(_mm_setr_epi16((short)h[0], (short)h[1], (short)h[2], (short)h[3], (short)h[4], (short)h[5],
                                          (short)h[6], (short)h[7]));
}

#define KN32_DEFINE(name, wtype, LEVELS, DW1, TSUM32, SINGLE)                                      \
    KERN_INLINE void name##_pass(const wtype *w, const uint8_t *act, size_t stride, size_t nb, int ntok, \
                                 float *out, const int NT)                                     \
    {                                                                                          \
        const uint8_t *p[8];                                                                   \
        kn_tokens(act, stride, ntok, NT, p);                                                   \
        __m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps() }; \
        for (size_t b = 0; b < nb; b++) {                                                      \
            const __m256i lv = LEVELS(&w[b]), mag = _mm256_sign_epi8(lv, lv);                  \
            __m256i s[8];                                                                      \
            for (int t = 0; t < 8; t++) s[t] = _mm256_setzero_si256();                         \
            const size_t boff = b * sizeof(block_q8_0);                                        \
            for (int t = 0; t < NT; t++)                                                       \
                s[t] = TSUM32(mag, lv, load32(p[t] + boff + offsetof(block_q8_0, qs)));        \
            const __m256 d = _mm256_mul_ps(_mm256_set1_ps(DW1(&w[b])), kn_act_dh(p, boff + offsetof(block_q8_0, d), NT)); \
            acc[b % 4] = _mm256_add_ps(acc[b % 4], _mm256_mul_ps(_mm256_cvtepi32_ps(hsum8_i32x8(s)), d)); \
        }                                                                                      \
        kn_finish(acc, nb, ntok, out);                                                         \
    }                                                                                          \
    KN_DISPATCH(name, wtype, 32, SINGLE, 4)

#define DW1_FP16(w) f16((w)->d)
#define DW1_E8M0(w) kern_e8m0_half((w)->e)

#endif
