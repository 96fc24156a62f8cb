/* kern_avx2.c — AVX2 (+FMA, F16C) kernels. Compiled with -mavx2 -mfma
 * -mf16c and called only when CPUID says so (kernels.c).
 *
 * Integer types follow kern_scalar.c exactly: the integer sums of a block
 * are formed with maddubs/madd (pairs of u8*s8 products cannot saturate:
 * weight levels are at most 128 in magnitude and activations at most 127),
 * reduced to one int32 per block, and the float contribution and the four
 * partial sums are the scalar ones, four blocks in one __m128 for the
 * 32-value formats. So results are equal bit for bit to the scalar kernels.
 * The float types (f32, f16, bf16) use four 8-wide FMA accumulators: within
 * a stated tolerance of the reference, not equal to it.
 */
#include "quant/kern_x86_n.h"

KERN_NO_FP_CONTRACT

/* ---- activations ---- */

static void act_q8_0(const float *x, void *dst, size_t n)
{
    block_q8_0 *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
        __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
        __m256 m = _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1));
        m = _mm256_max_ps(m, _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        const float amax = hmax_f32x8(m);
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = quant_f32_to_fp16(d);
        const __m256 mul = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), KERN_RNE));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), KERN_RNE));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), KERN_RNE));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), KERN_RNE));
        i0 = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        _mm256_storeu_si256((__m256i *)y[i].qs, _mm256_permutevar8x32_epi32(i0, perm));
    }
}

static void act_q8_K(const float *x, void *dst, size_t n)
{
    block_q8_K *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t i = 0; i < n / QK_K; i++, x += QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
        const float amax = hmax_f32x8(m);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = 127.0f / amax;
        const __m256 mul = _mm256_set1_ps(iscale);
        for (int j = 0; j < QK_K; j += 32) {
            __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), mul), KERN_RNE));
            __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8), mul), KERN_RNE));
            __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 16), mul), KERN_RNE));
            __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 24), mul), KERN_RNE));
            /* 16 values of each half: i0+i1 and i2+i3 (values cannot exceed 127: packs is the min) */
            const __m256i s01 = _mm256_add_epi32(i0, i1), s23 = _mm256_add_epi32(i2, i3);
            __m256i q = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
            q = _mm256_permutevar8x32_epi32(q, perm);
            _mm256_storeu_si256((__m256i *)(y[i].qs + j), q);
            y[i].bsums[j / 16] = (int16_t)hsum_i32x8(s01);
            y[i].bsums[j / 16 + 1] = (int16_t)hsum_i32x8(s23);
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ---- 32-value blocks with Q8_0 activations, four blocks at a time ---- */

/* 8 int32 partial sums of w * a, both signed int8 (w may be -128). */
static inline __m256i dot_i8(__m256i w, __m256i a)
{
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

BLOCK32_DOT(dot_q8_0, block_q8_0, lv_q8_0, DW_FP16, dot_i8)
BLOCK32_DOT(dot_q4_0, block_q4_0, lv_q4_0, DW_FP16, dot_i8)
BLOCK32_DOT(dot_q5_0, block_q5_0, lv_q5_0, DW_FP16, dot_i8)
BLOCK32_DOT(dot_iq4_nl, block_iq4_nl, lv_iq4_nl, DW_FP16, dot_i8)
BLOCK32_DOT(dot_mxfp4, block_mxfp4, lv_mxfp4, DW_E8M0, dot_i8)

/* ---- K-quants with Q8_K activations ----
 *
 * Four superblocks at a time, as in kern_avx512.c: each yields its integer
 * sums in a vector, reduced together, and the float steps run on the four
 * as one __m128 (lane k = superblock b + k = the scalar acc[k]). */

/* q4_K/q5_K, four superblocks at a time, interleaved (j outer, superblock
 * inner) as in kern_avx512.c so that four accumulator chains run side by
 * side: per 32 values the level bytes times activations in int16 pairs
 * (vpmaddubsw: |pair| <= 2 * 31 * 127), times the sub-block's scale as
 * int16 (one pshufb of the scales unpacked in both halves, k4_scales2)
 * into int32 (vpmaddwd). 5% faster in cache than one superblock after
 * another, 10% on rows of 768 values; the same integer sums. */
#define K4_GROUP(name, wtype, QH)                                                                  \
    KERN_INLINE __m128 name(const wtype *w, const block_q8_K *a, int cnt)                         \
    {                                                                                          \
        const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);                  \
        __m256i sc[4], s[4], m[4];                                                             \
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {                                  \
            s[k] = m[k] = sc[k] = _mm256_setzero_si256();                                      \
            if (k >= cnt) continue;                                                            \
            k4_prep(w[k].scales, &a[k], &sc[k], &m[k]);                                        \
        }                                                                                      \
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {                                  \
            /* pshufb: byte 2j (2j + 1) then zero, in every int16 */                           \
            const __m256i pick_l = _mm256_set1_epi16((short)(0x8000 | (2 * j)));               \
            const __m256i pick_u = _mm256_set1_epi16((short)(0x8000 | (2 * j + 1)));           \
            _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {                              \
                if (k >= cnt) continue;                                                        \
                const __m256i q4 = load32(w[k].qs + 32 * j);                                   \
                __m256i ql = _mm256_and_si256(q4, m4);                                         \
                __m256i qu = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);                   \
                if (QH) { /* bits 2j, 2j+1 of qh[l] as the fifth bit */                        \
                    const __m256i hbits = load32(QH);                                          \
                    ql = _mm256_or_si256(ql, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), one), 4)); \
                    qu = _mm256_or_si256(qu, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), one), 4)); \
                }                                                                              \
                const __m256i pl = _mm256_maddubs_epi16(ql, load32(a[k].qs + 64 * j));         \
                const __m256i pu = _mm256_maddubs_epi16(qu, load32(a[k].qs + 64 * j + 32));    \
                s[k] = _mm256_add_epi32(s[k], _mm256_add_epi32(_mm256_madd_epi16(pl, _mm256_shuffle_epi8(sc[k], pick_l)), \
                                                               _mm256_madd_epi16(pu, _mm256_shuffle_epi8(sc[k], pick_u)))); \
            }                                                                                  \
        }                                                                                      \
        K4_GROUP_END(w, a, cnt, s, m);                                                         \
    }

K4_GROUP(q4_K_group, block_q4_K, (const uint8_t *)NULL)
K4_GROUP(q5_K_group, block_q5_K, w[k].qh)

/* pshufb pattern: 8 copies of byte 2i, then 8 of byte 2i+1. */
static inline __m128i q6_shuffle(int i)
{
    return _mm_set_epi64x(0x0101010101010101LL * (2 * i + 1), 0x0101010101010101LL * (2 * i));
}

/* One q6_K superblock: levels 0..63 times a, per sub-block of 16 times
 * its int8 scale, minus 32 * sum_s sc_s * bsum_s. */
KERN_INLINE __m256i q6_block(const block_q6_K *w, const block_q8_K *a)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    const __m128i scales = _mm_loadu_si128((const __m128i *)w->scales);
    const __m256i corr = _mm256_madd_epi16(load32(a->bsums), _mm256_cvtepi8_epi16(scales));
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 5));
    for (int h = 0; h < 2; h++) {
        const __m256i l0 = load32(w->ql + 64 * h), l1 = load32(w->ql + 64 * h + 32);
        const __m256i hb = load32(w->qh + 32 * h);
        __m256i q[4];
        q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
        q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
        for (int c = 0; c < 4; c++) {
            const __m256i y = load32(a->qs + 128 * h + 32 * c);
            const __m256i p = _mm256_maddubs_epi16(q[c], y);
            const __m256i s = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, q6_shuffle(4 * h + c)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(s, p));
        }
    }
    return sumi;
}

KERN_INLINE __m128 q6_K_group(const block_q6_K *w, const block_q8_K *a, int cnt)
{
    __m256i s[4];
    for (int k = 0; k < 4; k++) s[k] = k < cnt ? q6_block(&w[k], &a[k]) : _mm256_setzero_si256();
    const __m128 d = _mm_mul_ps(ACTD4(a, cnt), FP16X4F(w, d, cnt));
    return _mm_mul_ps(d, _mm_cvtepi32_ps(hsum4_i32x8(s[0], s[1], s[2], s[3])));
}

K_DOT(dot_q4_K, block_q4_K, q4_K_group)
K_DOT(dot_q5_K, block_q5_K, q5_K_group)
K_DOT(dot_q6_K, block_q6_K, q6_K_group)

K_DOT(dot_q2_K, block_q2_K, q2_K_group)
K_DOT(dot_q3_K, block_q3_K, q3_K_group)
K_DOT(dot_iq4_xs, block_iq4_xs, iq4_xs_group)

/* ---- several tokens (kern_x86_n.h) ---- */

/* q4_K/q5_K, one token: level bytes times activations in int16 pairs
 * (vpmaddubsw), times the sub-block's scale into int32 (vpmaddwd). */
KERN_INLINE void k4n_sum(const k4n_w *u, const block_q8_K *a, __m256i *s, __m256i *m)
{
    __m256i s0 = _mm256_setzero_si256(), s1 = s0;
    for (int j = 0; j < 4; j++) {
        const __m256i pl = _mm256_maddubs_epi16(u->lv[2 * j], load32(a->qs + 64 * j));
        const __m256i pu = _mm256_maddubs_epi16(u->lv[2 * j + 1], load32(a->qs + 64 * j + 32));
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(pl, _mm256_set1_epi32(u->sc[2 * j])));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(pu, _mm256_set1_epi32(u->sc[2 * j + 1])));
    }
    *s = _mm256_add_epi32(s0, s1);
    *m = k4n_mins(u, a);
}

/* q6_K, one token: as q6_block, the -32 correction from the bsums. */
KERN_INLINE void q6n_sum(const q6n_w *u, const block_q8_K *a, __m256i *s, __m256i *m)
{
    __m256i s0 = _mm256_madd_epi16(load32(a->bsums), u->nsc), s1 = _mm256_setzero_si256();
    for (int k = 0; k < 8; k += 2) {
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(u->sv[k], _mm256_maddubs_epi16(u->q[k], load32(a->qs + 32 * k))));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(u->sv[k + 1], _mm256_maddubs_epi16(u->q[k + 1], load32(a->qs + 32 * k + 32))));
    }
    *s = _mm256_add_epi32(s0, s1);
    (void)m;
}

/* 32-value blocks, one token: |w| times a with w's signs (vpmaddubsw),
 * pairs to int32 (vpmaddwd), as dot_i8 */
KERN_INLINE __m256i kn32_sum(__m256i mag, __m256i w, __m256i a)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(mag, _mm256_sign_epi8(a, w)), _mm256_set1_epi16(1));
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

/* nt (1 or 2) tokens x[t] against one row: per token the same four
 * accumulators, 8-value and scalar tails and reduction as one token alone
 * (bit for bit), the row loaded and converted once for both. Two, not
 * more: 4 accumulators a token and 4 row vectors fill the 16 registers. */
#define FLOAT_DOT(name, T, LOAD8, CVT1)                                                            \
    KERN_INLINE void name##_t(const T *w, const float *const *x, size_t n, int nt, float *out)   \
    {                                                                                          \
        __m256 s[2][4];                                                                        \
        for (int t = 0; t < nt; t++) s[t][0] = s[t][1] = s[t][2] = s[t][3] = _mm256_setzero_ps(); \
        size_t i = 0;                                                                          \
        for (; i + 32 <= n; i += 32) {                                                         \
            const __m256 w0 = LOAD8(w + i), w1 = LOAD8(w + i + 8), w2 = LOAD8(w + i + 16), w3 = LOAD8(w + i + 24); \
            for (int t = 0; t < nt; t++) {                                                     \
                s[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + i), s[t][0]);             \
                s[t][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[t] + i + 8), s[t][1]);         \
                s[t][2] = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x[t] + i + 16), s[t][2]);        \
                s[t][3] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x[t] + i + 24), s[t][3]);        \
            }                                                                                  \
        }                                                                                      \
        for (; i + 8 <= n; i += 8) {                                                           \
            const __m256 w0 = LOAD8(w + i);                                                    \
            for (int t = 0; t < nt; t++) s[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + i), s[t][0]); \
        }                                                                                      \
        for (int t = 0; t < nt; t++) {                                                         \
            float r = hsum_f32x8(_mm256_add_ps(_mm256_add_ps(s[t][0], s[t][1]), _mm256_add_ps(s[t][2], s[t][3]))); \
            for (size_t k = i; k < n; k++) r += CVT1(w[k]) * x[t][k];                          \
            out[t] = r;                                                                        \
        }                                                                                      \
    }

static inline __m256 ld_f32(const float *p) { return _mm256_loadu_ps(p); }
static inline __m256 ld_f16(const mf_fp16 *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline __m256 ld_bf16(const mf_bf16 *p)
{
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}
static inline float cv_f32(float v) { return v; }

FLOAT_DOT(dot_f32, float, ld_f32, cv_f32)
FLOAT_DOT(dot_f16, mf_fp16, ld_f16, quant_fp16_to_f32)
FLOAT_DOT(dot_bf16, mf_bf16, ld_bf16, quant_bf16_to_f32)
FLOAT_DOT_ENTRIES(dot_f32, 2)
FLOAT_DOT_ENTRIES(dot_f16, 2)
FLOAT_DOT_ENTRIES(dot_bf16, 2)

void kern_fill_avx2(quant_kernel_set *s)
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
    kern_fill_avx2_iq(s);
}
