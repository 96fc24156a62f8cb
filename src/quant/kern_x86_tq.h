/* kern_x86_tq.h — the x86 bodies of the ternary kernels (TQ1_0, TQ2_0 with
 * Q8_K activations), shared by kern_tq_avx2.c and kern_tq_avx512.c. The
 * including file defines TQ_DOT(acc, u, s): acc + the int32 sums of each
 * four products of unsigned bytes u and signed bytes s (AVX2: vpmaddubsw,
 * vpmaddwd, vpaddd; AVX-512 VNNI: vpdpbusd), then includes this.
 *
 * The specification is kern_scalar_tq.c: per block the exact integer
 * sum t * y - sum y, here in int32 lanes in another order, and the float
 * steps of kern_x86.h's K_DOT (four blocks at a time, lane b % 4), so the
 * result is the scalar one bit for bit. Codes are at most 3 and activations
 * at most 127 in magnitude, so vpmaddubsw's pairs (<= 762) never saturate.
 *
 * TQ1_0: the trits of a byte q are the top base-3 digits of q, 3q, 9q, ...
 * (mod 256); one vector of bytes goes from digit n to n + 1 by two byte
 * additions (3v = v + v + v, wrapping as the scalar uint8_t product does),
 * and the digit is [v > 85] + [v > 170], two signed compares after
 * flipping the top bit. The 256 values are 8 vectors of 32: qs[0..31] for
 * digits 0..4 (values 32n + m), qs[32..47] for digits 0, 1 and 2, 3 in the
 * two halves (values 160..223), and digit 4 of qs[32..47] (224..239) next
 * to qh's 16 values (240..255) in the last.
 */
#ifndef MF_QUANT_KERN_X86_TQ_H
#define MF_QUANT_KERN_X86_TQ_H

#include "quant/kern_x86.h"

#ifndef TQ_DOT
#error "define TQ_DOT before including kern_x86_tq.h"
#endif

KERN_NO_FP_CONTRACT

static inline __m256i tq_times3(__m256i v) { return _mm256_add_epi8(_mm256_add_epi8(v, v), v); }

/* The top base-3 digit of each byte: [v > 85] + [v > 170], as 0..2. */
static inline __m256i tq_digit(__m256i v)
{
    const __m256i s = _mm256_xor_si256(v, _mm256_set1_epi8((char)0x80));
    const __m256i c1 = _mm256_cmpgt_epi8(s, _mm256_set1_epi8(85 - 128));
    const __m256i c2 = _mm256_cmpgt_epi8(s, _mm256_set1_epi8(170 - 128));
    return _mm256_sub_epi8(_mm256_setzero_si256(), _mm256_add_epi8(c1, c2));
}

/* sum y of a Q8_K block, over the 8 int32 lanes */
static inline __m256i tq_act_sum(const block_q8_K *a)
{
    return _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a->bsums), _mm256_set1_epi16(1));
}

KERN_INLINE __m256i tq1_block(const block_tq1_0 *w, const block_q8_K *a)
{
    const int8_t *y = a->qs;
    __m256i acc = _mm256_setzero_si256();
    __m256i v = load32(w->qs);
    for (int k = 0; k < 5; k++, v = tq_times3(v)) acc = TQ_DOT(acc, tq_digit(v), load32(y + 32 * k));
    /* qs[32..47]: digit 0 | digit 1, then digit 2 | digit 3 */
    const __m128i h = _mm_loadu_si128((const __m128i *)(w->qs + 32));
    const __m128i h3 = _mm_add_epi8(_mm_add_epi8(h, h), h);
    __m256i u = _mm256_set_m128i(h3, h);
    acc = TQ_DOT(acc, tq_digit(u), load32(y + 160));
    u = tq_times3(tq_times3(u));
    acc = TQ_DOT(acc, tq_digit(u), load32(y + 192));
    /* digit 4 of qs[32..47] | qh's 4 bytes at digits 0, 1, 2, 3 */
    u = tq_times3(tq_times3(u));
    uint32_t qh;
    memcpy(&qh, w->qh, 4);
    const __m128i q1 = _mm_set1_epi32((int)qh), q3 = _mm_add_epi8(_mm_add_epi8(q1, q1), q1);
    const __m128i q9 = _mm_add_epi8(_mm_add_epi8(q3, q3), q3), q27 = _mm_add_epi8(_mm_add_epi8(q9, q9), q9);
    const __m128i hq = _mm_blend_epi32(_mm_blend_epi32(q1, q3, 0x2), _mm_blend_epi32(q9, q27, 0x8), 0xc);
    u = _mm256_set_m128i(hq, _mm256_castsi256_si128(u));
    acc = TQ_DOT(acc, tq_digit(u), load32(y + 224));
    return _mm256_sub_epi32(acc, tq_act_sum(a));
}

KERN_INLINE __m256i tq2_block(const block_tq2_0 *w, const block_q8_K *a)
{
    const int8_t *y = a->qs;
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i acc = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
        const __m256i x = load32(w->qs + 32 * h);
        acc = TQ_DOT(acc, _mm256_and_si256(x, m3), load32(y + 128 * h));
        acc = TQ_DOT(acc, _mm256_and_si256(_mm256_srli_epi16(x, 2), m3), load32(y + 128 * h + 32));
        acc = TQ_DOT(acc, _mm256_and_si256(_mm256_srli_epi16(x, 4), m3), load32(y + 128 * h + 64));
        acc = TQ_DOT(acc, _mm256_and_si256(_mm256_srli_epi16(x, 6), m3), load32(y + 128 * h + 96));
    }
    return _mm256_sub_epi32(acc, tq_act_sum(a));
}

/* Four blocks: contributions (d_x * d_w) * (float)isum, lane k block k. */
#define TQ_GROUP(name, wtype, BLOCK)                                                               \
    KERN_INLINE __m128 name(const wtype *w, const block_q8_K *a, int cnt)                     \
    {                                                                                          \
        __m256i s[4];                                                                          \
        for (int k = 0; k < 4; k++) s[k] = k < cnt ? BLOCK(&w[k], &a[k]) : _mm256_setzero_si256(); \
        const __m128 d = _mm_mul_ps(ACTD4(a, cnt), FP16X4F(w, d, cnt));                       \
        return _mm_mul_ps(d, _mm_cvtepi32_ps(hsum4_i32x8(s[0], s[1], s[2], s[3])));           \
    }

TQ_GROUP(tq1_group, block_tq1_0, tq1_block)
TQ_GROUP(tq2_group, block_tq2_0, tq2_block)
K_DOT(dot_tq1_0, block_tq1_0, tq1_group)
K_DOT(dot_tq2_0, block_tq2_0, tq2_group)

static inline void tq_fill(quant_kernel_set *s)
{
    s->k[MF_TYPE_TQ1_0] = (quant_kernel){ .act_type = MF_TYPE_Q8_K, .vec_dot = dot_tq1_0 };
    s->k[MF_TYPE_TQ2_0] = (quant_kernel){ .act_type = MF_TYPE_Q8_K, .vec_dot = dot_tq2_0 };
}

#endif
