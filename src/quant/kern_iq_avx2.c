/* kern_iq_avx2.c — the AVX2 i-quant kernels (IQ1_S, IQ1_M, IQ2_XXS,
 * IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S): kern_x86_iq.h's bodies with vpmaddwd
 * applying the sub-block scales. Compiled with -mavx2 -mfma -mf16c;
 * kern_fill_avx2 calls kern_fill_avx2_iq. Equal bit for bit to
 * kern_scalar_iq.c (tests/test_kernels.c).
 */
#include "quant/kern_impl.h"

#define IQ_MADD(acc, p, s) _mm256_add_epi32((acc), _mm256_madd_epi16((p), (s)))
#include "quant/kern_x86_iq.h"

KERN_NO_FP_CONTRACT

void kern_fill_avx2_iq(quant_kernel_set *s)
{
    iq_fill(s);
}
