/* kern_tq_avx512.c — the AVX-512 VNNI ternary kernels (TQ1_0, TQ2_0 with
 * Q8_K activations): kern_x86_tq.h's bodies with vpdpbusd multiplying the
 * unsigned codes by the activations and accumulating in one instruction.
 * Compiled with the AVX-512 flags of the Makefile; kernels.c calls
 * kern_fill_avx512_tq after kern_fill_avx512. Equal bit for bit to
 * kern_scalar_tq.c (tests/test_kernels_tq.c).
 */
#include "quant/kern_impl.h"

#include <immintrin.h>

#define TQ_DOT(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#include "quant/kern_x86_tq.h"

KERN_NO_FP_CONTRACT

void kern_fill_avx512_tq(quant_kernel_set *s)
{
    tq_fill(s);
}
