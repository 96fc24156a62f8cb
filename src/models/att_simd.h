/* att_simd.h — SIMD versions of the attention's value accumulation
 * (o += p * v), chosen with the kernel variant (quant/kernels.h). A long
 * prompt spends most of its attention time there. */
#ifndef MF_ATT_SIMD_H
#define MF_ATT_SIMD_H

void att_axpy_avx2(float *restrict o, float p, const float *restrict v, int n);
void att_axpy_avx512(float *restrict o, float p, const float *restrict v, int n);

#endif
