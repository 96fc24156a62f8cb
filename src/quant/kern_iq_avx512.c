/* kern_iq_avx512.c — the AVX-512 VNNI i-quant kernels: kern_x86_iq.h's
 * bodies with vpdpwssd applying the sub-block scales and accumulating in
 * one instruction. Compiled with the AVX-512 flags of the Makefile;
 * kern_fill_avx512 calls kern_fill_avx512_iq. Equal bit for bit to
 * kern_scalar_iq.c (tests/test_kernels.c).
 */
#include "quant/kern_impl.h"

#define IQ_MADD(acc, p, s) _mm256_dpwssd_epi32((acc), (p), (s))
#include "quant/kern_x86_iq.h"

KERN_NO_FP_CONTRACT

void kern_fill_avx512_iq(quant_kernel_set *s)
{
    iq_fill(s);
}
