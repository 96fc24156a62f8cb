/* att_avx512.c — the attention's o += p * v (ops.c att_head) on AVX-512.
 * Multiply, then add, as the scalar loop does (no fused multiply-add), so
 * every variant gives the same bits. */
#include "models/att_simd.h"

#include <immintrin.h>

void att_axpy_avx512(float *restrict o, float p, const float *restrict v, int n)
{
    const __m512 pv = _mm512_set1_ps(p);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(o + i, _mm512_add_ps(_mm512_loadu_ps(o + i), _mm512_mul_ps(pv, _mm512_loadu_ps(v + i))));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(o + i, m,
                              _mm512_add_ps(_mm512_maskz_loadu_ps(m, o + i), _mm512_mul_ps(pv, _mm512_maskz_loadu_ps(m, v + i))));
    }
}
