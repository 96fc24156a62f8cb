/* kern_random.h — the random inputs of the kernel tests (test_kernels.c,
 * test_kernels_tq.c): a splitmix64 stream, floats in [-1, 1), and
 * activations that meet the quantizers' corner cases. */
#ifndef MF_TEST_KERN_RANDOM_H
#define MF_TEST_KERN_RANDOM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline float rng_float(uint64_t *s) /* [-1, 1) */
{
    return (float)((double)(rng_next(s) >> 11) * 0x1.0p-52 - 1.0);
}

static inline uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Random activations with a spread of magnitudes, zero blocks and exact
 * ties of +-max, so the quantizers meet their corner cases. */
static inline void random_x(uint64_t *s, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = rng_float(s) * (float)(1 << (rng_next(s) % 6));
    for (size_t b = 0; b + 32 <= n; b += 32) {
        const uint64_t r = rng_next(s) % 16;
        if (r == 0) memset(x + b, 0, 32 * sizeof *x);
        if (r == 1) { x[b + 3] = 40.0f; x[b + 7] = -40.0f; }
    }
}

#endif
