/* ref.h — the scalar reference kernels: dequantization and dot products of
 * a quantized row with float activations, one pair per type. They are the
 * specification (bit-exact against ggml's dequantize_row_*); SIMD kernels
 * are tested against them. n is a multiple of the type's block size (the
 * caller checks); blocks are read in place, so src must be aligned as the
 * block struct. Dot products are dot(dequantized row, x), per-block partial
 * sums in float added in double (ref_impl.h). Implemented in ref_basic.c,
 * ref_k.c and ref_iq.c. */
#ifndef MF_QUANT_REF_H
#define MF_QUANT_REF_H

#include <stddef.h>

#define QUANT_REF_DECL(t) \
    void quant_dequant_##t(const void *src, float *dst, size_t n); \
    float quant_dot_##t(const void *row, const float *x, size_t n);

QUANT_REF_DECL(f32)
QUANT_REF_DECL(f16)
QUANT_REF_DECL(bf16)
QUANT_REF_DECL(q4_0)
QUANT_REF_DECL(q4_1)
QUANT_REF_DECL(q5_0)
QUANT_REF_DECL(q5_1)
QUANT_REF_DECL(q8_0)
QUANT_REF_DECL(q2_K)
QUANT_REF_DECL(q3_K)
QUANT_REF_DECL(q4_K)
QUANT_REF_DECL(q5_K)
QUANT_REF_DECL(q6_K)
QUANT_REF_DECL(q8_K)

/* Low-bit formats (tables in iq_tables.h). */
QUANT_REF_DECL(iq1_s)
QUANT_REF_DECL(iq1_m)
QUANT_REF_DECL(iq2_xxs)
QUANT_REF_DECL(iq2_xs)
QUANT_REF_DECL(iq2_s)
QUANT_REF_DECL(iq3_xxs)
QUANT_REF_DECL(iq3_s)
QUANT_REF_DECL(iq4_nl)
QUANT_REF_DECL(iq4_xs)
QUANT_REF_DECL(mxfp4)
QUANT_REF_DECL(tq1_0)
QUANT_REF_DECL(tq2_0)

#endif
