/* att_avx2.c — the attention's o += p * v (ops.c att_head) on AVX2.
 * Multiply, then add, as the scalar loop does (no fused multiply-add), so
 * every variant gives the same bits. */
#include "models/att_simd.h"

#include <immintrin.h>

void att_axpy_avx2(float *restrict o, float p, const float *restrict v, int n)
{
    const __m256 pv = _mm256_set1_ps(p);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(o + i, _mm256_add_ps(_mm256_loadu_ps(o + i), _mm256_mul_ps(pv, _mm256_loadu_ps(v + i))));
    for (; i < n; i++) o[i] += p * v[i];
}
