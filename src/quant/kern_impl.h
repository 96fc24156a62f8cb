/* kern_impl.h — what the kernel files (kern_*.c) share: the float part of
 * the specification (how block contributions are summed), the unpacking of
 * packed sub-block scales, and the hooks by which each SIMD file fills its
 * entries of a kernel set. Private to quant/.
 *
 * Float operations in every kernel file are separately rounded: gcc turns
 * contraction off in ISO mode (-std=c11); for clang the pragma below must be
 * repeated after the includes of each kern_*.c (KERN_NO_FP_CONTRACT). A
 * fused multiply-add would change the last bit and break the bit-for-bit
 * equality of the SIMD kernels with the scalar specification. */
#ifndef MF_QUANT_KERN_IMPL_H
#define MF_QUANT_KERN_IMPL_H

#include "quant/kernels.h"

#include <string.h>

#if defined(__clang__)
#define KERN_NO_FP_CONTRACT _Pragma("STDC FP_CONTRACT OFF")
#else
#define KERN_NO_FP_CONTRACT
#endif
KERN_NO_FP_CONTRACT

/* For the per-block bodies the kernels are built from: inlined into each
 * caller, so that constant arguments (q4_K's absent fifth bit) fold away. */
#define KERN_INLINE static inline __attribute__((always_inline))

/* The end of every integer-type row: block b's contribution went into
 * acc[b % 4] in block order. */
static inline float kern_acc4_finish(const float acc[4])
{
    return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

/* q4_K/q5_K: the 8 6-bit scales and 8 6-bit mins packed in 12 bytes (see
 * ref_k.c), unpacked to sc[0..7] = scales, sc[8..15] = mins. */
static inline void kern_k4_scales(const uint8_t *s, uint8_t sc[16])
{
    uint32_t u[4];
    memcpy(u, s, 12);
    const uint32_t k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;
    u[3] = ((u[2] >> 4) & k2) | (((u[1] >> 6) & k3) << 4);
    const uint32_t mins_lo = u[1] & k1;
    u[1] = (u[2] & k2) | (((u[0] >> 6) & k3) << 4);
    u[2] = mins_lo;
    u[0] &= k1;
    memcpy(sc, u, 16);
}

/* q3_K: 16 signed 6-bit scales (stored +32): low nibbles in bytes 0..7
 * (scales 0..7 low, 8..15 high nibble), top 2 bits of scale s in bits
 * 2*(s/4) of byte 8 + s%4 (ref_k.c), four at a time in 32-bit words. */
static inline void kern_q3_scales(const uint8_t *s, int8_t sc[16])
{
    uint32_t a[4];
    memcpy(a, s, 12);
    const uint32_t m2 = 0x03030303, m4 = 0x0f0f0f0f, t = a[2];
    a[2] = ((a[0] >> 4) & m4) | (((t >> 4) & m2) << 4);
    a[3] = ((a[1] >> 4) & m4) | (((t >> 6) & m2) << 4);
    a[0] = (a[0] & m4) | ((t & m2) << 4);
    a[1] = (a[1] & m4) | (((t >> 2) & m2) << 4);
    uint8_t u[16];
    memcpy(u, a, 16);
    for (int j = 0; j < 16; j++) sc[j] = (int8_t)(u[j] - 32);
}

/* iq4_xs: 8 signed 6-bit scales (stored +32). */
static inline void kern_iq4xs_scales(const block_iq4_xs *b, int8_t sc[8])
{
    for (int j = 0; j < 8; j++) {
        const int ls = ((b->scales_l[j / 2] >> (4 * (j % 2))) & 0x0f) | ((b->scales_h >> (2 * j)) & 3) << 4;
        sc[j] = (int8_t)(ls - 32);
    }
}

/* mxfp4's E8M0 exponent as 2^(e-128) (the E2M1 table is doubled). */
static inline float kern_e8m0_half(uint8_t e)
{
    const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Round to nearest, ties to even, for |v| < 2^22: the rounding of
 * _mm_round_ps(_MM_FROUND_TO_NEAREST_INT) and of NEON's vcvtnq. */
static inline int kern_nearest_int(float v)
{
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* The i-quants' 7-bit sign indices (quant_ksigns_iq2xs) as 8 bytes of +1
 * (0x01) or -1 (0xff), byte j for value j: for _mm256_sign_epi8 and
 * vmulq_s8 (kern_scalar_iq.c). */
extern const uint64_t kern_ksigns64[128];

/* vec_dot (name) and vec_dot_n (name##_n) of a float-row kernel
 * name##_t(row, x[], n, nt, out) that takes nt = 1 or NT tokens per pass
 * over the row: groups of NT, then the rest one by one. */
#define FLOAT_DOT_ENTRIES(name, NT)                                                                 \
    static float name(const void *row, const void *act, size_t n)                              \
    {                                                                                          \
        const float *x[1] = { act };                                                           \
        float r;                                                                               \
        name##_t(row, x, n, 1, &r);                                                            \
        return r;                                                                              \
    }                                                                                          \
    static void name##_n(const void *row, const void *act, size_t stride, size_t n, int ntok, float *out) \
    {                                                                                          \
        int t0 = 0;                                                                            \
        for (; t0 + (NT) <= ntok; t0 += (NT)) {                                                \
            const float *x[NT];                                                                \
            for (int t = 0; t < (NT); t++) x[t] = (const float *)((const uint8_t *)act + (size_t)(t0 + t) * stride); \
            name##_t(row, x, n, (NT), out + t0);                                               \
        }                                                                                      \
        for (; t0 < ntok; t0++) {                                                              \
            const float *x[1] = { (const float *)((const uint8_t *)act + (size_t)t0 * stride) }; \
            name##_t(row, x, n, 1, out + t0);                                                  \
        }                                                                                      \
    }

/* The scalar set (kern_scalar.c, and the i-quants of kern_scalar_iq.c,
 * which kern_fill_scalar calls): the specification and the fallback. */
void kern_fill_scalar(quant_kernel_set *s);
void kern_fill_scalar_iq(quant_kernel_set *s);
/* SIMD files: overwrite the entries they implement. */
void kern_fill_avx2(quant_kernel_set *s);
void kern_fill_avx512(quant_kernel_set *s);
void kern_fill_neon(quant_kernel_set *s);
/* Their i-quant entries (kern_iq_*.c), called by the fill functions above. */
void kern_fill_avx2_iq(quant_kernel_set *s);
void kern_fill_avx512_iq(quant_kernel_set *s);
void kern_fill_neon_iq(quant_kernel_set *s);
/* The ternary types (kern_scalar_tq.c, kern_tq_*.c): kern_fill_scalar calls
 * the scalar one, kernels.c the SIMD ones after their variant's fill. */
void kern_fill_scalar_tq(quant_kernel_set *s);
void kern_fill_avx2_tq(quant_kernel_set *s);
void kern_fill_avx512_tq(quant_kernel_set *s);
void kern_fill_neon_tq(quant_kernel_set *s);

#endif
