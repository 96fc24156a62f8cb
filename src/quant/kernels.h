/* kernels.h — the fast dot-product kernels of the matvec, and their
 * selection at start-up.
 *
 * The one idea: a matvec quantizes its float activations once into 8-bit
 * blocks (the "activation type"), and every weight row is then dotted with
 * them in integers. Each weight type names the activation type it wants:
 *
 *   q4_0 q4_1 q5_0 q5_1 q8_0 iq4_nl mxfp4  ->  Q8_0 (32 int8, fp16 scale)
 *   q2_K q3_K q4_K q5_K q6_K iq4_xs,       ->  Q8_K (256 int8, float scale,
 *   iq1_s iq1_m iq2_xxs iq2_xs iq2_s           int16 sums of each 16)
 *   iq3_xxs iq3_s, tq1_0 tq2_0
 *   f32 f16 bf16 (and q8_K)                ->  F32: the float x itself
 *
 * Float activations stay where precision needs them: f32/f16/bf16 weights
 * are exact numbers and an 8-bit x would be the whole error of the product
 * (the F32 golden model must stay within 1e-3 of llama.cpp). The i-quants
 * take Q8_K activations as llama.cpp does (ggml's vec_dot_type of every
 * IQ1/IQ2/IQ3 type is q8_K), so their logits follow llama.cpp's; so do
 * the ternary tq1_0/tq2_0 (vec_dot_type q8_K in ggml too).
 *
 * The specification is the scalar integer kernel (kern_scalar.c). A block's
 * integer sums are exact; they become a float block contribution by a fixed
 * sequence of float operations (no fused multiply-add), and the row sums the
 * contributions in four partial sums, block b into acc[b % 4], finished as
 * (acc0 + acc2) + (acc1 + acc3) (kern_impl.h). Every SIMD kernel of an
 * integer type performs exactly these operations, so its result is equal bit
 * for bit to the scalar one, on every CPU; the activation quantizers are
 * bit-exact too. Only the float types (f32, f16, bf16) differ: their SIMD
 * sums use other partial sums and FMA, within the tolerance stated in
 * tests/test_kernels.c, relative to sum |w_i x_i|.
 *
 * Variants (a variant fills only the entries it has; the rest keep the
 * scalar kernels, which cover every type the type table computes):
 *   kern_scalar.c     all integer types above but the i-quants and the
 *                     ternary types, float types via ref.h;
 *                     kern_scalar_iq.c the i-quants, kern_scalar_tq.c
 *                     tq1_0 tq2_0
 *   kern_avx2.c       q4_0 q5_0 q8_0 iq4_nl mxfp4 q2_K q3_K q4_K q5_K q6_K
 *                     iq4_xs f32 f16 bf16, both activation quantizers;
 *                     kern_iq_avx2.c iq1_s iq1_m iq2_xxs iq2_xs iq2_s
 *                     iq3_xxs iq3_s (bodies in kern_x86_iq.h);
 *                     kern_tq_avx2.c tq1_0 tq2_0 (kern_x86_tq.h)
 *   kern_avx512.c     the same, with vpdpbusd/vpdpwssd (AVX-512 VNNI);
 *                     kern_iq_avx512.c the i-quants, kern_tq_avx512.c
 *                     tq1_0 tq2_0 (vpdpbusd)
 *   kern_neon.c       the same as kern_avx2.c (ARMv8.2 sdot);
 *                     kern_iq_neon.c the i-quants, kern_tq_neon.c
 *                     tq1_0 tq2_0
 * q4_1/q5_1 and the float-activation types other than f32/f16/bf16 run
 * the scalar kernels everywhere.
 *
 * Several tokens (vec_dot_n, prefill): q4_K q5_K q6_K q8_0 q4_0 q5_0
 * iq4_nl mxfp4 on AVX2 and AVX-512 (kern_x86_n.h), q4_K q5_K q6_K on NEON,
 * form each weight block's levels once for up to QUANT_NTOK_MAX tokens;
 * every other type and the scalar set loop over vec_dot (quant_dot_n).
 * Either way out[t] is vec_dot's result, bit for bit.
 *
 * Selection: the best variant the CPU supports (CPUID and XGETBV on x86,
 * hwcaps on aarch64), unless MF_SIMD=scalar|avx2|avx512|neon asks for less
 * (a variant the CPU lacks falls back to the best one below it), so tests
 * and benchmarks can run every variant on one machine. Nothing here
 * allocates; the tables are static.
 */
#ifndef MF_QUANT_KERNELS_H
#define MF_QUANT_KERNELS_H

#include "quant/quant.h"

#include <stddef.h>
#include <stdint.h>

/* Quantize n floats (a multiple of the activation type's block) to dst. */
typedef void (*quant_act_fn)(const float *x, void *dst, size_t n);
/* Dot product of one weight row of n values with activations act in the
 * row type's activation type (for float activations, act is the float x). */
typedef float (*quant_vec_dot_fn)(const void *row, const void *act, size_t n);

/* The most activation vectors one vec_dot_n call takes. */
#define QUANT_NTOK_MAX 8
/* The same row against ntok (1..QUANT_NTOK_MAX) activation vectors, the
 * one of token t at act + t * act_stride bytes: out[t] is equal bit for bit
 * to vec_dot(row, act + t * act_stride, n). The weights of each block are
 * unpacked once and reused for every token (prefill: op_matmul), which is
 * where a batch of tokens saves its time over token-by-token matvecs. */
typedef void (*quant_vec_dot_n_fn)(const void *row, const void *act, size_t act_stride, size_t n, int ntok,
                                   float *out);

typedef enum quant_simd {
    QUANT_SIMD_SCALAR = 0,
    QUANT_SIMD_AVX2 = 1,
    QUANT_SIMD_AVX512 = 2,   /* AVX-512 F/BW/VL/DQ + VNNI */
    QUANT_SIMD_NEON = 3,     /* ARMv8.2 with the dot-product extension */
    QUANT_SIMD_COUNT = 4
} quant_simd;

typedef struct quant_kernel {
    uint32_t act_type;         /* MF_TYPE_F32, MF_TYPE_Q8_0 or MF_TYPE_Q8_K */
    quant_vec_dot_fn vec_dot;  /* NULL: the type cannot be computed */
    quant_vec_dot_n_fn vec_dot_n; /* NULL: quant_dot_n loops over vec_dot */
} quant_kernel;

/* vec_dot_n where the kernel has one (and there is more than one token),
 * else vec_dot token by token. */
static inline void quant_dot_n(const quant_kernel *k, const void *row, const void *act, size_t act_stride, size_t n,
                               int ntok, float *out)
{
    if (k->vec_dot_n && ntok > 1) {
        k->vec_dot_n(row, act, act_stride, n, ntok, out);
        return;
    }
    for (int t = 0; t < ntok; t++) out[t] = k->vec_dot(row, (const uint8_t *)act + (size_t)t * act_stride, n);
}

typedef struct quant_kernel_set {
    quant_simd simd;
    quant_kernel k[MF_TYPE_COUNT];   /* by weight type */
    quant_act_fn act[MF_TYPE_COUNT]; /* by activation type: Q8_0, Q8_K */
} quant_kernel_set;

/* The active set, chosen once on first use. */
const quant_kernel_set *quant_kernels(void);
/* The set of variant s, or NULL when it is not compiled in or the CPU
 * lacks it. For tests and benchmarks. */
const quant_kernel_set *quant_kernels_of(quant_simd s);
/* Makes s the active set (tests, benchmarks; not while a matvec runs).
 * Returns 0, or -1 when s is unavailable (the active set is unchanged). */
int quant_kernels_use(quant_simd s);

const char *quant_simd_name(quant_simd s);
/* "scalar", "avx2", "avx512", "neon" -> id; "auto", "" or NULL -> -1;
 * anything else -> -2. */
int quant_simd_parse(const char *name);
/* Bit s set: variant s is compiled in and this CPU runs it. */
unsigned quant_simd_available(void);
/* The variant chosen for a MF_SIMD value and an availability mask: the
 * request if available, else the best available one below it; for "auto"
 * the best available. Pure, so tests can pretend to be other CPUs. */
quant_simd quant_simd_choose(const char *env, unsigned available);

/* Bytes of n values of activation type t (n a multiple of its block):
 * 0 for F32 (no buffer: the float x is used as is). */
size_t quant_act_bytes(uint32_t act_type, size_t n);

#endif
