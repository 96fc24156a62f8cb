/* test_attention.c — the SIMD value accumulation of attention gives the
 * bits of the scalar loop (one multiply and one add per lane), for every
 * length, so decode and prefill agree whatever variant runs. */
#include "t.h"
#include "models/att_simd.h"
#include "quant/kernels.h"

#include <string.h>

#if defined(__x86_64__)
static float rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 40) / (double)(1u << 24) * 2.0 - 1.0);
}

TEST(attention_axpy_simd_equals_scalar)
{
    static const struct { quant_simd s; void (*f)(float *restrict, float, const float *restrict, int); } vs[] = {
        { QUANT_SIMD_AVX2, att_axpy_avx2 }, { QUANT_SIMD_AVX512, att_axpy_avx512 } };
    uint64_t seed = 7;
    float o[300], ref[300], v[300];
    int ran = 0;
    for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++) {
        if (!quant_kernels_of(vs[k].s)) continue;
        ran++;
        for (int n = 0; n <= 290; n += n < 40 ? 1 : 17) {
            for (int i = 0; i < 300; i++) o[i] = ref[i] = rnd(&seed), v[i] = rnd(&seed);
            float p = rnd(&seed);
            for (int i = 0; i < n; i++) ref[i] += p * v[i];
            vs[k].f(o, p, v, n);
            CHECKF(memcmp(o, ref, sizeof o) == 0, "%s, n = %d: differs from the scalar loop (or wrote past n)",
                   quant_simd_name(vs[k].s), n);
        }
    }
    printf("  %d SIMD variant(s) checked\n", ran);
}
#endif
