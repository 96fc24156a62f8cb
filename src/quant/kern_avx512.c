/* kern_avx512.c — AVX-512 kernels with VNNI. Compiled with -mavx512f
 * -mavx512bw -mavx512vl -mavx512dq -mavx512vnni (and AVX2, FMA, F16C);
 * called only when CPUID and XGETBV say the CPU and the OS have them
 * (kernels.c).
 *
 * VNNI adds products into int32 lanes without saturation: vpdpbusd (four
 * u8 * s8) for the K-quants' unsigned levels and the sign-trick blocks of
 * q8_0, q4_0, ...; vpdpwssd (two s16 * s16) applies K-quant sub-block
 * scales to int32 lanes packed to int16 (exact: a lane of four products
 * stays below 2^15). What bounds the K-quant loops on Zen 4 is its two
 * shuffle pipes, which it also splits 512-bit operations over, so q4_K,
 * q5_K and q6_K use 256-bit vectors, four superblocks interleaved, with
 * the fewest shuffles found; the float types use 512-bit ones.
 * As in kern_avx2.c, the integer sums of each block are reduced exactly and
 * the float steps are the scalar specification's, so integer results are
 * equal bit for bit to kern_scalar.c; f32/f16/bf16 use 16-wide FMA
 * accumulators (stated tolerance, tests/test_kernels.c).
 */
#include "quant/kern_x86_n.h"

KERN_NO_FP_CONTRACT

/* ---- activations (equal to kern_scalar.c bit for bit) ---- */

static void act_q8_0(const float *x, void *dst, size_t n)
{
    block_q8_0 *y = dst;
    for (size_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = quant_f32_to_fp16(d);
        const __m512 mul = _mm512_set1_ps(id);
        const __m512i i0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, mul), KERN_RNE);
        const __m512i i1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, mul), KERN_RNE);
        _mm_storeu_si128((__m128i *)y[i].qs, _mm512_cvtsepi32_epi8(i0));
        _mm_storeu_si128((__m128i *)(y[i].qs + 16), _mm512_cvtsepi32_epi8(i1));
    }
}

static void act_q8_K(const float *x, void *dst, size_t n)
{
    block_q8_K *y = dst;
    for (size_t i = 0; i < n / QK_K; i++, x += QK_K) {
        __m512 m = _mm512_setzero_ps();
        for (int j = 0; j < QK_K; j += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + j)));
        const float amax = _mm512_reduce_max_ps(m);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = 127.0f / amax;
        const __m512 mul = _mm512_set1_ps(iscale);
        for (int j = 0; j < QK_K; j += 16) {
            /* |q| <= 127: the saturating narrowing is the scalar min(127, q) */
            const __m512i q = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + j), mul), KERN_RNE);
            _mm_storeu_si128((__m128i *)(y[i].qs + j), _mm512_cvtsepi32_epi8(q));
            y[i].bsums[j / 16] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ---- 32-value blocks: the AVX2 loop with a VNNI block product ---- */

static inline __m256i dot_i8_vnni(__m256i w, __m256i a)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
}

BLOCK32_DOT(dot_q8_0, block_q8_0, lv_q8_0, DW_FP16, dot_i8_vnni)
BLOCK32_DOT(dot_q4_0, block_q4_0, lv_q4_0, DW_FP16, dot_i8_vnni)
BLOCK32_DOT(dot_q5_0, block_q5_0, lv_q5_0, DW_FP16, dot_i8_vnni)
BLOCK32_DOT(dot_iq4_nl, block_iq4_nl, lv_iq4_nl, DW_FP16, dot_i8_vnni)
BLOCK32_DOT(dot_mxfp4, block_mxfp4, lv_mxfp4, DW_E8M0, dot_i8_vnni)

/* ---- K-quants ----
 *
 * Superblocks go four at a time: each yields its integer sums in a vector,
 * the four vectors are reduced together, and the float steps of
 * the specification run on the four as one __m128 (lane k = superblock
 * b + k, so lane k is the scalar acc[k]); missing superblocks of the last
 * group are zeros, and adding +0 leaves a partial sum unchanged. */

/* q4_K/q5_K, four superblocks at a time, interleaved (j outer,
 * superblock inner) so that four independent accumulator chains run side
 * by side. Per 64 values: the level bytes times activations into int32
 * lanes of four products (vpdpbusd), the two sub-blocks' lanes packed to
 * int16 (|lane| <= 4 * 31 * 127 < 2^15: exact), and those times their
 * scales into int32 (vpdpwssd). A sub-block pair's scale pattern is one
 * pshufb of the unpacked scales (k4_scales2), the min pairs for the bsums
 * another. What limits this loop on Zen 4 is the two shuffle pipes, so
 * the choices above are the ones with the fewest shuffles: 18% faster in
 * cache than one superblock after another with vpermd patterns. The
 * integer sums are the same, so results equal kern_scalar.c bit for bit;
 * the float step of the four runs in one ymm (d | dmin lanes). */
#define K4_GROUP(name, wtype, QH)                                                                  \
    KERN_INLINE __m128 name(const wtype *w, const block_q8_K *a, int cnt)                         \
    {                                                                                          \
        const __m256i m4 = _mm256_set1_epi8(0x0f), b4 = _mm256_set1_epi8(0x10);                \
        __m256i sc[4], s[4], m[4];                                                             \
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {                                  \
            s[k] = m[k] = sc[k] = _mm256_setzero_si256();                                      \
            if (k >= cnt) continue;                                                            \
            k4_prep(w[k].scales, &a[k], &sc[k], &m[k]);                                        \
        }                                                                                      \
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {                                  \
            /* per 128-bit half: scale 2j four times, then 2j + 1, as int16 */                 \
            const char l_ = (char)(2 * j), u_ = (char)(2 * j + 1), z_ = (char)0x80;            \
            const __m256i pick = _mm256_setr_epi8(l_, z_, l_, z_, l_, z_, l_, z_, u_, z_, u_, z_, u_, z_, u_, z_, \
                                                  l_, z_, l_, z_, l_, z_, l_, z_, u_, z_, u_, z_, u_, z_, u_, z_); \
            _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {                              \
                if (k >= cnt) continue;                                                        \
                const __m256i q4 = load32(w[k].qs + 32 * j);                                   \
                __m256i ql = _mm256_and_si256(q4, m4);                                         \
                __m256i qu = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);                   \
                if (QH) { /* bits 2j, 2j+1 of qh[l] to bit 4 */                                \
                    const __m256i hbits = load32(QH);                                          \
                    const __m256i hl = 2 * j <= 4 ? _mm256_slli_epi16(hbits, 4 - 2 * j) : _mm256_srli_epi16(hbits, 2 * j - 4); \
                    const __m256i hu = 2 * j + 1 <= 4 ? _mm256_slli_epi16(hbits, 3 - 2 * j) : _mm256_srli_epi16(hbits, 2 * j - 3); \
                    ql = _mm256_ternarylogic_epi32(ql, hl, b4, 0xf8);                          \
                    qu = _mm256_ternarylogic_epi32(qu, hu, b4, 0xf8);                          \
                }                                                                              \
                const __m256i z = _mm256_setzero_si256();                                      \
                const __m256i pl = _mm256_dpbusd_epi32(z, ql, load32(a[k].qs + 64 * j));       \
                const __m256i pu = _mm256_dpbusd_epi32(z, qu, load32(a[k].qs + 64 * j + 32));  \
                s[k] = _mm256_dpwssd_epi32(s[k], _mm256_packs_epi32(pl, pu), _mm256_shuffle_epi8(sc[k], pick)); \
            }                                                                                  \
        }                                                                                      \
        K4_GROUP_END(w, a, cnt, s, m);                                                         \
    }

K4_GROUP(q4_K_group, block_q4_K, (const uint8_t *)NULL)
K4_GROUP(q5_K_group, block_q5_K, w[k].qh)

K_DOT(dot_q4_K, block_q4_K, q4_K_group)
K_DOT(dot_q5_K, block_q5_K, q5_K_group)

/* q6_K, four superblocks at a time, interleaved as q4_K (half outer,
 * superblock inner). A half of 128 values is 64 bytes of ql and 32 of qh:
 * chunk c (32 values) has its low 4 bits in the low (c = 0, 1) or high
 * (c = 2, 3) nibbles of ql[32 (c % 2) ..] and its top 2 bits in bits 2c of
 * qh, which a 16-bit shift brings to bits 4-5 of the same byte; levels
 * 0..63 go through vpdpbusd, two chunks' lanes are packed to int16
 * (|lane| <= 4 * 63 * 127 < 2^15: exact) and times their sub-block scales
 * (one pshufb of the sign-extended scales) into int32 by vpdpwssd, and
 * -32 * sum_s sc_s * bsum_s is applied once. The integer sums are those of
 * the specification: results equal kern_scalar.c bit for bit. 40% faster
 * in cache than 512-bit vectors with vpermd'd scales. */
KERN_INLINE __m128 q6_K_group(const block_q6_K *w, const block_q8_K *a, int cnt)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    /* int16 words of a half's scales: packs(p1, p2) holds p1 lanes 0..3
     * (scale 0), p2 lanes 0..3 (scale 2) in its low 128 bits and lanes 4..7
     * (scales 1, 3) in its high; packs(p3, p4) the same with 4..7 */
    const __m256i pick12 = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 4, 5, 4, 5, 4, 5, 4, 5,
                                            2, 3, 2, 3, 2, 3, 2, 3, 6, 7, 6, 7, 6, 7, 6, 7);
    const __m256i pick34 = _mm256_setr_epi8(8, 9, 8, 9, 8, 9, 8, 9, 12, 13, 12, 13, 12, 13, 12, 13,
                                            10, 11, 10, 11, 10, 11, 10, 11, 14, 15, 14, 15, 14, 15, 14, 15);
    __m256i sc[4], s[4], m[4];
    _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
        s[k] = m[k] = sc[k] = _mm256_setzero_si256();
        if (k >= cnt) continue;
        sc[k] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w[k].scales));
        m[k] = _mm256_madd_epi16(sc[k], load32(a[k].bsums));
    }
    _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
            if (k >= cnt) continue;
            const uint8_t *ql = w[k].ql + 64 * h, *qh = w[k].qh + 32 * h;
            const int8_t *q8 = a[k].qs + 128 * h;
            const __m256i q0 = load32(ql), q1 = load32(ql + 32), hb = load32(qh);
            /* low nibble | top bits at 4-5 (0xf8: a | (b & c)) */
            const __m256i l1 = _mm256_ternarylogic_epi32(_mm256_and_si256(q0, m4), _mm256_slli_epi16(hb, 4), m30, 0xf8);
            const __m256i l2 = _mm256_ternarylogic_epi32(_mm256_and_si256(q1, m4), _mm256_slli_epi16(hb, 2), m30, 0xf8);
            const __m256i l3 = _mm256_ternarylogic_epi32(_mm256_and_si256(_mm256_srli_epi16(q0, 4), m4), hb, m30, 0xf8);
            const __m256i l4 = _mm256_ternarylogic_epi32(_mm256_and_si256(_mm256_srli_epi16(q1, 4), m4),
                                                         _mm256_srli_epi16(hb, 2), m30, 0xf8);
            const __m256i z = _mm256_setzero_si256();
            const __m256i p1 = _mm256_dpbusd_epi32(z, l1, load32(q8));
            const __m256i p2 = _mm256_dpbusd_epi32(z, l2, load32(q8 + 32));
            const __m256i p3 = _mm256_dpbusd_epi32(z, l3, load32(q8 + 64));
            const __m256i p4 = _mm256_dpbusd_epi32(z, l4, load32(q8 + 96));
            const __m256i sh = h ? _mm256_permute4x64_epi64(sc[k], 0xee) : _mm256_permute4x64_epi64(sc[k], 0x44); /* this half's 8, twice */
            s[k] = _mm256_dpwssd_epi32(s[k], _mm256_packs_epi32(p1, p2), _mm256_shuffle_epi8(sh, pick12));
            s[k] = _mm256_dpwssd_epi32(s[k], _mm256_packs_epi32(p3, p4), _mm256_shuffle_epi8(sh, pick34));
        }
    }
    _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) s[k] = _mm256_sub_epi32(s[k], _mm256_slli_epi32(m[k], 5));
    const __m128 d = _mm_mul_ps(ACTD4(a, cnt), FP16X4F(w, d, cnt));
    return _mm_mul_ps(d, _mm_cvtepi32_ps(hsum4_i32x8(s[0], s[1], s[2], s[3])));
}

K_DOT(dot_q6_K, block_q6_K, q6_K_group)

K_DOT(dot_q2_K, block_q2_K, q2_K_group)
K_DOT(dot_q3_K, block_q3_K, q3_K_group)
K_DOT(dot_iq4_xs, block_iq4_xs, iq4_xs_group)

/* ---- several tokens (kern_x86_n.h) ---- */

/* q4_K/q5_K, one token: each sub-block's level bytes times activations
 * into int32 lanes of four products (vpdpbusd), two sub-blocks' lanes
 * packed to int16 (|lane| <= 4 * 31 * 127 < 2^15: exact), and those
 * times their scales into int32 (vpdpwssd): three multiplies per 64
 * values where vpmaddubsw + vpdpwssd take four (measured 5% faster). */
KERN_INLINE void k4n_sum(const k4n_w *u, const block_q8_K *a, __m256i *s, __m256i *m)
{
    __m256i s0 = _mm256_setzero_si256(), s1 = s0;
    for (int j = 0; j < 4; j++) {
        const __m256i z = _mm256_setzero_si256();
        const __m256i pl = _mm256_dpbusd_epi32(z, u->lv[2 * j], load32(a->qs + 64 * j));
        const __m256i pu = _mm256_dpbusd_epi32(z, u->lv[2 * j + 1], load32(a->qs + 64 * j + 32));
        /* packs: per 128-bit half, the 4 int16 of pl, then the 4 of pu */
        const __m256i sp = _mm256_blend_epi32(_mm256_set1_epi32(u->sc[2 * j]), _mm256_set1_epi32(u->sc[2 * j + 1]), 0xcc);
        if (j % 2) s1 = _mm256_dpwssd_epi32(s1, _mm256_packs_epi32(pl, pu), sp);
        else s0 = _mm256_dpwssd_epi32(s0, _mm256_packs_epi32(pl, pu), sp);
    }
    *s = _mm256_add_epi32(s0, s1);
    *m = k4n_mins(u, a);
}

/* q6_K, one token: the same packing (|lane| <= 4 * 63 * 127 < 2^15).
 * Vector k's 128-bit half g holds 16 values of scale 2k + g; packing
 * vectors 2i and 2i + 1 puts scales 4i + g and 4i + 2 + g in half g
 * (q6n_unpack's sp[i]). The -32 correction is one vpdpwssd. */
KERN_INLINE void q6n_sum(const q6n_w *u, const block_q8_K *a, __m256i *s, __m256i *m)
{
    __m256i s0 = _mm256_dpwssd_epi32(_mm256_setzero_si256(), load32(a->bsums), u->nsc), s1 = _mm256_setzero_si256();
    for (int i = 0; i < 4; i++) {
        const __m256i z = _mm256_setzero_si256();
        const __m256i p0 = _mm256_dpbusd_epi32(z, u->q[2 * i], load32(a->qs + 64 * i));
        const __m256i p1 = _mm256_dpbusd_epi32(z, u->q[2 * i + 1], load32(a->qs + 64 * i + 32));
        if (i % 2) s1 = _mm256_dpwssd_epi32(s1, _mm256_packs_epi32(p0, p1), u->sp[i]);
        else s0 = _mm256_dpwssd_epi32(s0, _mm256_packs_epi32(p0, p1), u->sp[i]);
    }
    *s = _mm256_add_epi32(s0, s1);
    (void)m;
}

/* 32-value blocks, one token: |w| times a with w's signs (vpdpbusd), as
 * dot_i8_vnni */
KERN_INLINE __m256i kn32_sum(__m256i mag, __m256i w, __m256i a)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), mag, _mm256_sign_epi8(a, w));
}

KN32_DEFINE(dot_n_q8_0, block_q8_0, lv_q8_0, DW1_FP16, kn32_sum, dot_q8_0)
KN32_DEFINE(dot_n_q4_0, block_q4_0, lv_q4_0, DW1_FP16, kn32_sum, dot_q4_0)
KN32_DEFINE(dot_n_q5_0, block_q5_0, lv_q5_0, DW1_FP16, kn32_sum, dot_q5_0)
KN32_DEFINE(dot_n_iq4_nl, block_iq4_nl, lv_iq4_nl, DW1_FP16, kn32_sum, dot_iq4_nl)
KN32_DEFINE(dot_n_mxfp4, block_mxfp4, lv_mxfp4, DW1_E8M0, kn32_sum, dot_mxfp4)

KN_DEFINE(dot_n_q4_K, block_q4_K, k4n_w, q4n_unpack, k4n_sum, K4N_CONTRIB, dot_q4_K)
KN_DEFINE(dot_n_q5_K, block_q5_K, k4n_w, q5n_unpack, k4n_sum, K4N_CONTRIB, dot_q5_K)
KN_DEFINE(dot_n_q6_K, block_q6_K, q6n_w, q6n_unpack, q6n_sum, Q6N_CONTRIB, dot_q6_K)

/* ---- float activations ---- */

/* nt (1 or 4) tokens x[t] against one row: per token the same four
 * accumulators over 64-value steps, the same 16-value and masked tails and
 * the same reduction, so each token's result is bit for bit that of the
 * one-token kernel; the row is loaded and converted once for all nt. */
#define FLOAT_DOT16(name, T, LOAD16, MLOAD16)                                                      \
    KERN_INLINE void name##_t(const T *w, const float *const *x, size_t n, int nt, float *out)   \
    {                                                                                          \
        __m512 s[4][4];                                                                        \
        for (int t = 0; t < nt; t++) s[t][0] = s[t][1] = s[t][2] = s[t][3] = _mm512_setzero_ps(); \
        size_t i = 0;                                                                          \
        for (; i + 64 <= n; i += 64) {                                                         \
            const __m512 w0 = LOAD16(w + i), w1 = LOAD16(w + i + 16), w2 = LOAD16(w + i + 32), w3 = LOAD16(w + i + 48); \
            for (int t = 0; t < nt; t++) {                                                     \
                s[t][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[t] + i), s[t][0]);             \
                s[t][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x[t] + i + 16), s[t][1]);        \
                s[t][2] = _mm512_fmadd_ps(w2, _mm512_loadu_ps(x[t] + i + 32), s[t][2]);        \
                s[t][3] = _mm512_fmadd_ps(w3, _mm512_loadu_ps(x[t] + i + 48), s[t][3]);        \
            }                                                                                  \
        }                                                                                      \
        for (; i + 16 <= n; i += 16) {                                                         \
            const __m512 w0 = LOAD16(w + i);                                                   \
            for (int t = 0; t < nt; t++) s[t][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[t] + i), s[t][0]); \
        }                                                                                      \
        if (i < n) {                                                                           \
            const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);                              \
            const __m512 w0 = MLOAD16(m, w + i);                                               \
            for (int t = 0; t < nt; t++) s[t][1] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, x[t] + i), s[t][1]); \
        }                                                                                      \
        for (int t = 0; t < nt; t++)                                                           \
            out[t] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s[t][0], s[t][1]), _mm512_add_ps(s[t][2], s[t][3]))); \
    }

static inline __m512 ld_f32(const float *p) { return _mm512_loadu_ps(p); }
static inline __m512 ldm_f32(__mmask16 m, const float *p) { return _mm512_maskz_loadu_ps(m, p); }
static inline __m512 ld_f16(const mf_fp16 *p) { return _mm512_cvtph_ps(load32(p)); }
static inline __m512 ldm_f16(__mmask16 m, const mf_fp16 *p) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
static inline __m512 bf16_to_f32(__m256i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)); }
static inline __m512 ld_bf16(const mf_bf16 *p) { return bf16_to_f32(load32(p)); }
static inline __m512 ldm_bf16(__mmask16 m, const mf_bf16 *p) { return bf16_to_f32(_mm256_maskz_loadu_epi16(m, p)); }

FLOAT_DOT16(dot_f32, float, ld_f32, ldm_f32)
FLOAT_DOT16(dot_f16, mf_fp16, ld_f16, ldm_f16)
FLOAT_DOT16(dot_bf16, mf_bf16, ld_bf16, ldm_bf16)
FLOAT_DOT_ENTRIES(dot_f32, 4)
FLOAT_DOT_ENTRIES(dot_f16, 4)
FLOAT_DOT_ENTRIES(dot_bf16, 4)

void kern_fill_avx512(quant_kernel_set *s)
{
    s->k[MF_TYPE_F32].vec_dot = dot_f32;
    s->k[MF_TYPE_F16].vec_dot = dot_f16;
    s->k[MF_TYPE_BF16].vec_dot = dot_bf16;
    s->k[MF_TYPE_F32].vec_dot_n = dot_f32_n;
    s->k[MF_TYPE_F16].vec_dot_n = dot_f16_n;
    s->k[MF_TYPE_BF16].vec_dot_n = dot_bf16_n;
    s->k[MF_TYPE_Q8_0].vec_dot = dot_q8_0;
    s->k[MF_TYPE_Q4_0].vec_dot = dot_q4_0;
    s->k[MF_TYPE_Q5_0].vec_dot = dot_q5_0;
    s->k[MF_TYPE_IQ4_NL].vec_dot = dot_iq4_nl;
    s->k[MF_TYPE_MXFP4].vec_dot = dot_mxfp4;
    s->k[MF_TYPE_Q4_K].vec_dot = dot_q4_K;
    s->k[MF_TYPE_Q5_K].vec_dot = dot_q5_K;
    s->k[MF_TYPE_Q4_K].vec_dot_n = dot_n_q4_K;
    s->k[MF_TYPE_Q5_K].vec_dot_n = dot_n_q5_K;
    s->k[MF_TYPE_Q6_K].vec_dot_n = dot_n_q6_K;
    s->k[MF_TYPE_Q8_0].vec_dot_n = dot_n_q8_0;
    s->k[MF_TYPE_Q4_0].vec_dot_n = dot_n_q4_0;
    s->k[MF_TYPE_Q5_0].vec_dot_n = dot_n_q5_0;
    s->k[MF_TYPE_IQ4_NL].vec_dot_n = dot_n_iq4_nl;
    s->k[MF_TYPE_MXFP4].vec_dot_n = dot_n_mxfp4;
    s->k[MF_TYPE_Q6_K].vec_dot = dot_q6_K;
    s->k[MF_TYPE_Q2_K].vec_dot = dot_q2_K;
    s->k[MF_TYPE_Q3_K].vec_dot = dot_q3_K;
    s->k[MF_TYPE_IQ4_XS].vec_dot = dot_iq4_xs;
    s->act[MF_TYPE_Q8_0] = act_q8_0;
    s->act[MF_TYPE_Q8_K] = act_q8_K;
    kern_fill_avx512_iq(s);
}
