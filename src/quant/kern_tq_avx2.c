/* kern_tq_avx2.c — the AVX2 ternary kernels (TQ1_0, TQ2_0 with Q8_K
 * activations): kern_x86_tq.h's bodies with vpmaddubsw + vpmaddwd forming
 * the integer sums. Compiled with -mavx2 -mfma -mf16c; kernels.c calls
 * kern_fill_avx2_tq after kern_fill_avx2. Equal bit for bit to
 * kern_scalar_tq.c (tests/test_kernels_tq.c).
 */
#include "quant/kern_impl.h"

#include <immintrin.h>

#define TQ_DOT(acc, u, s) \
    _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1)))
#include "quant/kern_x86_tq.h"

KERN_NO_FP_CONTRACT

void kern_fill_avx2_tq(quant_kernel_set *s)
{
    tq_fill(s);
}
