/* ref_impl.h — what the reference kernel files (ref_*.c) share: the FP
 * contraction guard and the one generic dot product. Private to quant/.
 *
 * Bit-exactness: ggml's dequantize_row_* round every multiply and add
 * separately (the golden values were checked against both ggml's C and
 * numpy). A compiler that fuses a*b+c into one FMA can change the last bit, so
 * contraction must be off in these files. gcc does that itself in ISO mode
 * (-std=c11 implies -ffp-contract=off); for clang the pragma below covers
 * this header and each ref_*.c file repeats it (QUANT_NO_FP_CONTRACT) after
 * its includes, so the reference gives the same bits with either compiler. */
#ifndef MF_QUANT_REF_IMPL_H
#define MF_QUANT_REF_IMPL_H

#include "quant/quant.h"

#if defined(__clang__)
#define QUANT_NO_FP_CONTRACT _Pragma("STDC FP_CONTRACT OFF")
#else
#define QUANT_NO_FP_CONTRACT
#endif
QUANT_NO_FP_CONTRACT

/* The reference dot product: dot(dequantize(row), x).
 *
 * The row is dequantized one chunk (one block, or 32 values of the plain
 * float types) at a time with the type's own dequantizer, so the dot can
 * never disagree with dequantization. Products are summed in float within a
 * chunk, as a SIMD kernel sums within a block, and the chunk sums in double
 * across the row: the reference must stay accurate on rows of 10^4..10^5
 * values, where a float running sum would lose several digits, so that SIMD
 * kernels are measured against the values and not against our rounding. */
static inline float quant_ref_dot(quant_dequant_fn dq, size_t chunk_elems, size_t chunk_bytes,
                                  const void *row, const float *x, size_t n)
{
    float buf[QK_K];
    const unsigned char *p = row;
    double acc = 0.0;
    for (size_t i = 0; i < n; i += chunk_elems, p += chunk_bytes) {
        size_t m = n - i < chunk_elems ? n - i : chunk_elems;
        dq(p, buf, m);
        float s = 0.0f;
        for (size_t j = 0; j < m; j++) s += buf[j] * x[i + j];
        acc += (double)s;
    }
    return (float)acc;
}

/* quant_dot_<t> from quant_dequant_<t>; the chunk never exceeds QK_K. */
#define QUANT_REF_DOT(t, elems, bytes) \
    float quant_dot_##t(const void *row, const float *x, size_t n) \
    { \
        static_assert((elems) <= QK_K, "chunk larger than the buffer"); \
        return quant_ref_dot(quant_dequant_##t, (elems), (bytes), row, x, n); \
    }

/* Little-endian loads of fields the structs keep as bytes. */
static inline uint32_t quant_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif
