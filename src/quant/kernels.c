/* kernels.c — which kernel set runs: the CPU's features (CPUID and XGETBV
 * on x86, hwcaps on aarch64), the MF_SIMD override, and the static tables
 * of every variant compiled in. Chosen once, on first use; tests and
 * benchmarks may switch with quant_kernels_use(). The Makefile compiles
 * kern_avx2.c and kern_avx512.c on x86-64 and kern_neon.c on aarch64, so
 * the compiler's target macros say which fill functions exist. */
#include "quant/kern_impl.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>

#if defined(__x86_64__)
#include <cpuid.h>
#define KERN_X86 1
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#define KERN_ARM 1
#endif

static quant_kernel_set kern_sets[QUANT_SIMD_COUNT];
static unsigned kern_avail;   /* bit s: kern_sets[s] is filled and runnable */
static _Atomic(const quant_kernel_set *) kern_active;
static pthread_once_t kern_once = PTHREAD_ONCE_INIT;

static const char *const kern_names[QUANT_SIMD_COUNT] = { "scalar", "avx2", "avx512", "neon" };

const char *quant_simd_name(quant_simd s)
{
    return (unsigned)s < QUANT_SIMD_COUNT ? kern_names[s] : "?";
}

int quant_simd_parse(const char *name)
{
    if (!name || !*name || strcasecmp(name, "auto") == 0) return -1;
    for (int s = 0; s < QUANT_SIMD_COUNT; s++)
        if (strcasecmp(name, kern_names[s]) == 0) return s;
    return -2;
}

quant_simd quant_simd_choose(const char *env, unsigned avail)
{
    /* Preference, best first; a request starts at its own place. */
    static const quant_simd order[] = { QUANT_SIMD_AVX512, QUANT_SIMD_AVX2, QUANT_SIMD_NEON, QUANT_SIMD_SCALAR };
    int want = quant_simd_parse(env);
    if (want == QUANT_SIMD_SCALAR) return QUANT_SIMD_SCALAR;
    if (want == QUANT_SIMD_NEON) return (avail >> QUANT_SIMD_NEON) & 1 ? QUANT_SIMD_NEON : QUANT_SIMD_SCALAR;
    size_t i = 0;
    if (want == QUANT_SIMD_AVX2) i = 1;
    for (; i < sizeof order / sizeof order[0]; i++) {
        if (want >= 0 && order[i] == QUANT_SIMD_NEON) continue; /* an x86 request never becomes neon */
        if ((avail >> order[i]) & 1) return order[i];
    }
    return QUANT_SIMD_SCALAR;
}

#ifdef KERN_X86
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}
#endif

/* Which variants this CPU runs, among those compiled in. */
static unsigned cpu_variants(void)
{
    unsigned v = 1u << QUANT_SIMD_SCALAR;
#ifdef KERN_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return v;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return v;
    const uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return v; /* the OS does not save YMM state */
    if (__get_cpuid_max(0, NULL) < 7) return v;
    __cpuid_count(7, 0, a, b, c, d);
    const int avx2 = (b >> 5) & 1;
    const int avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1) /* F DQ BW VL */
                       && ((c >> 11) & 1)                                                      /* VNNI */
                       && (xcr0 & 0xe6) == 0xe6;                                               /* ZMM state */
#if defined(KERN_X86)
    if (avx2 && fma && f16c) v |= 1u << QUANT_SIMD_AVX2;
#endif
#if defined(KERN_X86)
    if (avx2 && fma && f16c && avx512) v |= 1u << QUANT_SIMD_AVX512;
#endif
    (void)avx2; (void)fma; (void)f16c; (void)avx512;
#endif
#ifdef KERN_ARM
    if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) v |= 1u << QUANT_SIMD_NEON;
#endif
    return v;
}

static void kern_init(void)
{
    kern_avail = cpu_variants();
    for (int s = 0; s < QUANT_SIMD_COUNT; s++) {
        if (!((kern_avail >> s) & 1)) continue;
        kern_fill_scalar(&kern_sets[s]);
        kern_sets[s].simd = (quant_simd)s;
#if defined(KERN_X86)
        if (s == QUANT_SIMD_AVX2) kern_fill_avx2(&kern_sets[s]), kern_fill_avx2_tq(&kern_sets[s]);
#endif
#if defined(KERN_X86)
        if (s == QUANT_SIMD_AVX512) kern_fill_avx512(&kern_sets[s]), kern_fill_avx512_tq(&kern_sets[s]);
#endif
#if defined(KERN_ARM)
        if (s == QUANT_SIMD_NEON) kern_fill_neon(&kern_sets[s]), kern_fill_neon_tq(&kern_sets[s]);
#endif
    }
    atomic_store(&kern_active, &kern_sets[quant_simd_choose(getenv("MF_SIMD"), kern_avail)]);
}

const quant_kernel_set *quant_kernels(void)
{
    const quant_kernel_set *k = atomic_load_explicit(&kern_active, memory_order_acquire);
    if (k) return k;
    pthread_once(&kern_once, kern_init);
    return atomic_load(&kern_active);
}

const quant_kernel_set *quant_kernels_of(quant_simd s)
{
    pthread_once(&kern_once, kern_init);
    return (unsigned)s < QUANT_SIMD_COUNT && ((kern_avail >> s) & 1) ? &kern_sets[s] : NULL;
}

unsigned quant_simd_available(void)
{
    pthread_once(&kern_once, kern_init);
    return kern_avail;
}

int quant_kernels_use(quant_simd s)
{
    const quant_kernel_set *k = quant_kernels_of(s);
    if (!k) return -1;
    atomic_store(&kern_active, k);
    return 0;
}

size_t quant_act_bytes(uint32_t act_type, size_t n)
{
    switch (act_type) {
    case MF_TYPE_Q8_0: return n / QK8_0 * sizeof(block_q8_0);
    case MF_TYPE_Q8_K: return n / QK_K * sizeof(block_q8_K);
    default: return 0;
    }
}
