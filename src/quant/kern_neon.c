/* kern_neon.c — ARM NEON kernels with the dot-product extension (sdot),
 * for aarch64. Compiled with -march=armv8.2-a+dotprod and called only when
 * the kernel's hwcaps say ASIMDDP (kernels.c).
 *
 * Each integer kernel forms a block's integer sums with vdotq_s32 (signed
 * int8 times int8 into int32 lanes, exact) and reduces them with vaddvq_s32;
 * the float steps, one block at a time into acc[b % 4], are written exactly
 * as in kern_scalar.c, so results equal the scalar ones bit for bit. The
 * activation quantizers round with vcvtnq (to nearest, ties to even), the
 * rounding of the scalar kern_nearest_int. q2_K, q3_K and iq4_xs scale each
 * sub-block's int32 lanes by its integer scale (vmlaq_n_s32) and reduce
 * once per superblock: the same exact integer. f32/f16/bf16 use four
 * 4-wide FMA accumulators (stated tolerance, tests/test_kernels.c). The
 * i-quants are in kern_iq_neon.c.
 */
#include "quant/kern_impl.h"
#include "quant/iq_tables.h"

#include <arm_neon.h>

KERN_NO_FP_CONTRACT

static inline float f16(mf_fp16 h) { return quant_fp16_to_f32(h); }

/* ---- activations ---- */

static void act_q8_0(const float *x, void *dst, size_t n)
{
    block_q8_0 *y = dst;
    for (size_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float32x4_t v[8];
        float32x4_t m = vdupq_n_f32(0.0f);
        for (int k = 0; k < 8; k++) {
            v[k] = vld1q_f32(x + 4 * k);
            m = vmaxq_f32(m, vabsq_f32(v[k]));
        }
        const float amax = vmaxvq_f32(m);
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = quant_f32_to_fp16(d);
        for (int k = 0; k < 8; k++) {
            const int32x4_t q = vcvtnq_s32_f32(vmulq_n_f32(v[k], id));
            const int16x4_t q16 = vmovn_s32(q);
            const int8x8_t q8 = vmovn_s16(vcombine_s16(q16, q16));
            vst1_lane_s32((int32_t *)(void *)(y[i].qs + 4 * k), vreinterpret_s32_s8(q8), 0);
        }
    }
}

static void act_q8_K(const float *x, void *dst, size_t n)
{
    block_q8_K *y = dst;
    for (size_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float32x4_t m = vdupq_n_f32(0.0f);
        for (int j = 0; j < QK_K; j += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + j)));
        const float amax = vmaxvq_f32(m);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = 127.0f / amax;
        for (int j = 0; j < QK_K; j += 16) {
            int32x4_t q[4];
            for (int k = 0; k < 4; k++) q[k] = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + j + 4 * k), iscale));
            /* |q| <= 127: saturating narrowing is the scalar min(127, q) */
            const int16x8_t a = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
            const int16x8_t b = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
            vst1q_s8(y[i].qs + j, vcombine_s8(vqmovn_s16(a), vqmovn_s16(b)));
            y[i].bsums[j / 16] = (int16_t)(vaddvq_s32(q[0]) + vaddvq_s32(q[1]) + vaddvq_s32(q[2]) + vaddvq_s32(q[3]));
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ---- 32-value blocks ---- */

static inline int dot32(int8x16_t w0, int8x16_t w1, const int8_t *a)
{
    const int32x4_t p = vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, vld1q_s8(a)), w1, vld1q_s8(a + 16));
    return vaddvq_s32(p);
}

static float dot_q8_0(const void *row, const void *act, size_t n)
{
    const block_q8_0 *w = row;
    const block_q8_0 *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK8_0; b++) {
        const int isum = dot32(vld1q_s8(w[b].qs), vld1q_s8(w[b].qs + 16), a[b].qs);
        acc[b & 3] += (float)isum * (f16(w[b].d) * f16(a[b].d));
    }
    return kern_acc4_finish(acc);
}

static float dot_q4_0(const void *row, const void *act, size_t n)
{
    const block_q4_0 *w = row;
    const block_q8_0 *a = act;
    const int8x16_t eight = vdupq_n_s8(8);
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK4_0; b++) {
        const uint8x16_t q = vld1q_u8(w[b].qs);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0f))), eight);
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
        acc[b & 3] += (float)dot32(lo, hi, a[b].qs) * (f16(w[b].d) * f16(a[b].d));
    }
    return kern_acc4_finish(acc);
}

/* 0x10 in byte j where bit j of the 32-bit qh is set (bytes 0..15: bits
 * 0..15, in the second vector bits 16..31). */
static inline void bits32(const uint8_t *qh, uint8x16_t *lo, uint8x16_t *hi)
{
    static const uint8_t sel[16] = { 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128 };
    const uint8x16_t m = vld1q_u8(sel), b10 = vdupq_n_u8(0x10);
    const uint8x16_t v01 = vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1]));
    const uint8x16_t v23 = vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3]));
    *lo = vandq_u8(vtstq_u8(v01, m), b10);
    *hi = vandq_u8(vtstq_u8(v23, m), b10);
}

static float dot_q5_0(const void *row, const void *act, size_t n)
{
    const block_q5_0 *w = row;
    const block_q8_0 *a = act;
    const int8x16_t sixteen = vdupq_n_s8(16);
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK5_0; b++) {
        uint8x16_t h0, h1;
        bits32(w[b].qh, &h0, &h1);
        const uint8x16_t q = vld1q_u8(w[b].qs);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0f)), h0)), sixteen);
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q, 4), h1)), sixteen);
        acc[b & 3] += (float)dot32(lo, hi, a[b].qs) * (f16(w[b].d) * f16(a[b].d));
    }
    return kern_acc4_finish(acc);
}

static float dot_iq4_nl(const void *row, const void *act, size_t n)
{
    const block_iq4_nl *w = row;
    const block_q8_0 *a = act;
    const int8x16_t t = vld1q_s8(quant_kvalues_iq4nl);
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK4_NL; b++) {
        const uint8x16_t q = vld1q_u8(w[b].qs);
        const int8x16_t lo = vqtbl1q_s8(t, vandq_u8(q, vdupq_n_u8(0x0f))), hi = vqtbl1q_s8(t, vshrq_n_u8(q, 4));
        acc[b & 3] += (float)dot32(lo, hi, a[b].qs) * (f16(w[b].d) * f16(a[b].d));
    }
    return kern_acc4_finish(acc);
}

static float dot_mxfp4(const void *row, const void *act, size_t n)
{
    const block_mxfp4 *w = row;
    const block_q8_0 *a = act;
    const int8x16_t t = vld1q_s8(quant_kvalues_mxfp4);
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_MXFP4; b++) {
        const uint8x16_t q = vld1q_u8(w[b].qs);
        const int8x16_t lo = vqtbl1q_s8(t, vandq_u8(q, vdupq_n_u8(0x0f))), hi = vqtbl1q_s8(t, vshrq_n_u8(q, 4));
        acc[b & 3] += (float)dot32(lo, hi, a[b].qs) * (kern_e8m0_half(w[b].e) * f16(a[b].d));
    }
    return kern_acc4_finish(acc);
}

/* ---- K-quants ---- */

/* q4_K/q5_K (qh NULL for q4_K): one superblock into acc[b & 3]. */
static inline void k4_block(const uint8_t *qs, const uint8_t *qh, const uint8_t *scales, float dw, float dmin_w,
                            const block_q8_K *a, size_t b, float *acc)
{
    uint8_t sc[16];
    kern_k4_scales(scales, sc);
    int isum = 0, isum_m = 0;
    for (int j = 0; j < 8; j++) isum_m += sc[8 + j] * (a->bsums[2 * j] + a->bsums[2 * j + 1]);
    const uint8x16_t m4 = vdupq_n_u8(0x0f), b10 = vdupq_n_u8(0x10);
    uint8x16_t h0 = vdupq_n_u8(0), h1 = h0;
    if (qh) {
        h0 = vld1q_u8(qh);
        h1 = vld1q_u8(qh + 16);
    }
    for (int j = 0; j < 4; j++) {
        const uint8x16_t q0 = vld1q_u8(qs + 32 * j), q1 = vld1q_u8(qs + 32 * j + 16);
        uint8x16_t l0 = vandq_u8(q0, m4), l1 = vandq_u8(q1, m4), u0 = vshrq_n_u8(q0, 4), u1 = vshrq_n_u8(q1, 4);
        if (qh) {
            const uint8x16_t bl = vdupq_n_u8((uint8_t)(1u << (2 * j))), bu = vdupq_n_u8((uint8_t)(2u << (2 * j)));
            l0 = vorrq_u8(l0, vandq_u8(vtstq_u8(h0, bl), b10));
            l1 = vorrq_u8(l1, vandq_u8(vtstq_u8(h1, bl), b10));
            u0 = vorrq_u8(u0, vandq_u8(vtstq_u8(h0, bu), b10));
            u1 = vorrq_u8(u1, vandq_u8(vtstq_u8(h1, bu), b10));
        }
        const int8_t *y = a->qs + 64 * j;
        isum += sc[2 * j] * dot32(vreinterpretq_s8_u8(l0), vreinterpretq_s8_u8(l1), y);
        isum += sc[2 * j + 1] * dot32(vreinterpretq_s8_u8(u0), vreinterpretq_s8_u8(u1), y + 32);
    }
    const float d = a->d * dw, dmin = a->d * dmin_w;
    acc[b & 3] += d * (float)isum - dmin * (float)isum_m;
}

static float dot_q4_K(const void *row, const void *act, size_t n)
{
    const block_q4_K *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) k4_block(w[b].qs, NULL, w[b].scales, f16(w[b].d), f16(w[b].dmin), &a[b], b, acc);
    return kern_acc4_finish(acc);
}

static float dot_q5_K(const void *row, const void *act, size_t n)
{
    const block_q5_K *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++)
        k4_block(w[b].qs, w[b].qh, w[b].scales, f16(w[b].d), f16(w[b].dmin), &a[b], b, acc);
    return kern_acc4_finish(acc);
}

/* ---- q4_K/q5_K against several tokens (vec_dot_n) ----
 *
 * A superblock's levels are unpacked once into 16 registers and dotted with
 * every token's activations; each sub-block's int32 lanes are scaled by its
 * integer scale (vmlaq_n_s32) and reduced once per token: the same exact
 * integers as k4_block, and the same float steps per token, in the same
 * block order, so out[t] equals dot_q4_K/dot_q5_K bit for bit. */

/* lv[2s], lv[2s + 1]: the 32 levels of sub-block s */
static inline void k4n_unpack(const uint8_t *qs, const uint8_t *qh, int8x16_t lv[16])
{
    const uint8x16_t m4 = vdupq_n_u8(0x0f), b10 = vdupq_n_u8(0x10);
    uint8x16_t h0 = vdupq_n_u8(0), h1 = h0;
    if (qh) {
        h0 = vld1q_u8(qh);
        h1 = vld1q_u8(qh + 16);
    }
    for (int j = 0; j < 4; j++) {
        const uint8x16_t q0 = vld1q_u8(qs + 32 * j), q1 = vld1q_u8(qs + 32 * j + 16);
        uint8x16_t l0 = vandq_u8(q0, m4), l1 = vandq_u8(q1, m4), u0 = vshrq_n_u8(q0, 4), u1 = vshrq_n_u8(q1, 4);
        if (qh) {
            const uint8x16_t bl = vdupq_n_u8((uint8_t)(1u << (2 * j))), bu = vdupq_n_u8((uint8_t)(2u << (2 * j)));
            l0 = vorrq_u8(l0, vandq_u8(vtstq_u8(h0, bl), b10));
            l1 = vorrq_u8(l1, vandq_u8(vtstq_u8(h1, bl), b10));
            u0 = vorrq_u8(u0, vandq_u8(vtstq_u8(h0, bu), b10));
            u1 = vorrq_u8(u1, vandq_u8(vtstq_u8(h1, bu), b10));
        }
        lv[4 * j] = vreinterpretq_s8_u8(l0);
        lv[4 * j + 1] = vreinterpretq_s8_u8(l1);
        lv[4 * j + 2] = vreinterpretq_s8_u8(u0);
        lv[4 * j + 3] = vreinterpretq_s8_u8(u1);
    }
}

/* One token: acc[b & 3] += its contribution of the superblock. */
static inline void k4n_token(const int8x16_t lv[16], const uint8_t sc[16], float dw, float dmin_w,
                             const block_q8_K *a, size_t b, float *acc)
{
    int32x4_t s = vdupq_n_s32(0);
    for (int j = 0; j < 8; j++) {
        const int8_t *y = a->qs + 32 * j;
        const int32x4_t p = vdotq_s32(vdotq_s32(vdupq_n_s32(0), lv[2 * j], vld1q_s8(y)), lv[2 * j + 1], vld1q_s8(y + 16));
        s = vmlaq_n_s32(s, p, sc[j]);
    }
    const int isum = vaddvq_s32(s);
    /* pairs of bsums (<= 2 * 32 * 127: int16) times the mins */
    const int16x8_t bs = vpaddq_s16(vld1q_s16(a->bsums), vld1q_s16(a->bsums + 8));
    const int16x8_t mn = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(sc + 8)));
    const int isum_m = vaddvq_s32(vmlal_high_s16(vmull_s16(vget_low_s16(bs), vget_low_s16(mn)), bs, mn));
    const float d = a->d * dw, dmin = a->d * dmin_w;
    acc[b & 3] += d * (float)isum - dmin * (float)isum_m;
}

/* The superblocks of row are wbytes apart, (d, dmin) first (both types),
 * qs and scales at their offsets; qh_off 0: no fifth bit (q4_K). */
static void k4n_dot(const uint8_t *row, size_t wbytes, size_t qs_off, size_t qh_off, const uint8_t *act, size_t stride,
                    size_t n, int ntok, float *out)
{
    float acc[QUANT_NTOK_MAX][4];
    for (; ntok > 0; ntok -= QUANT_NTOK_MAX, act += QUANT_NTOK_MAX * stride, out += QUANT_NTOK_MAX) {
        const int nt = ntok < QUANT_NTOK_MAX ? ntok : QUANT_NTOK_MAX;
        memset(acc, 0, sizeof acc);
        for (size_t b = 0; b < n / QK_K; b++) {
            const uint8_t *w = row + b * wbytes;
            int8x16_t lv[16];
            uint8_t sc[16];
            mf_fp16 dd[2];
            k4n_unpack(w + qs_off, qh_off ? w + qh_off : NULL, lv);
            kern_k4_scales(w + offsetof(block_q4_K, scales), sc);
            memcpy(dd, w, sizeof dd);
            const float dw = f16(dd[0]), dmin_w = f16(dd[1]);
            for (int t = 0; t < nt; t++)
                k4n_token(lv, sc, dw, dmin_w, (const block_q8_K *)(const void *)(act + (size_t)t * stride) + b, b, acc[t]);
        }
        for (int t = 0; t < nt; t++) out[t] = kern_acc4_finish(acc[t]);
    }
}

static_assert(offsetof(block_q4_K, dmin) == 2 && offsetof(block_q5_K, dmin) == 2, "q4_K/q5_K: d, dmin first");
static_assert(offsetof(block_q4_K, scales) == offsetof(block_q5_K, scales), "q4_K/q5_K: scales at one offset");

static void dot_n_q4_K(const void *row, const void *act, size_t stride, size_t n, int ntok, float *out)
{
    k4n_dot(row, sizeof(block_q4_K), offsetof(block_q4_K, qs), 0, act, stride, n, ntok, out);
}

static void dot_n_q5_K(const void *row, const void *act, size_t stride, size_t n, int ntok, float *out)
{
    k4n_dot(row, sizeof(block_q5_K), offsetof(block_q5_K, qs), offsetof(block_q5_K, qh), act, stride, n, ntok, out);
}

/* q6_K: levels (lo | hi << 4) - 32 as int8, 16 sub-blocks of 16. */
static float dot_q6_K(const void *row, const void *act, size_t n)
{
    const block_q6_K *w = row;
    const block_q8_K *a = act;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(3);
    const int8x16_t m32 = vdupq_n_s8(32);
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        int isum = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[b].ql + 64 * h, *qh = w[b].qh + 32 * h;
            for (int g = 0; g < 2; g++) { /* l in [16g, 16g + 16) */
                const uint8x16_t hb = vld1q_u8(qh + 16 * g);
                const uint8x16_t l0 = vld1q_u8(ql + 16 * g), l1 = vld1q_u8(ql + 32 + 16 * g);
                const uint8x16_t lo[4] = { vandq_u8(l0, m4), vandq_u8(l1, m4), vshrq_n_u8(l0, 4), vshrq_n_u8(l1, 4) };
                const uint8x16_t hi[4] = { vandq_u8(hb, m3), vandq_u8(vshrq_n_u8(hb, 2), m3),
                                           vandq_u8(vshrq_n_u8(hb, 4), m3), vshrq_n_u8(hb, 6) };
                for (int c = 0; c < 4; c++) {
                    const int8x16_t v = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo[c], vshlq_n_u8(hi[c], 4))), m32);
                    const int32x4_t p = vdotq_s32(vdupq_n_s32(0), v, vld1q_s8(a[b].qs + 128 * h + 32 * c + 16 * g));
                    isum += w[b].scales[8 * h + 2 * c + g] * vaddvq_s32(p);
                }
            }
        }
        const float d = a[b].d * f16(w[b].d);
        acc[b & 3] += d * (float)isum;
    }
    return kern_acc4_finish(acc);
}

/* q6_K against several tokens: the 256 levels - 32 unpacked once into 16
 * registers (v[8h + 4g + c]: values 128h + 32c + 16g .. + 15, scale
 * 8h + 2c + g), then per token each one's int32 lanes times its scale
 * (vmlaq_n_s32), reduced once: dot_q6_K's integer, its float steps. */
static void dot_n_q6_K(const void *row, const void *act, size_t stride, size_t n, int ntok, float *out)
{
    const block_q6_K *w = row;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(3);
    const int8x16_t m32 = vdupq_n_s8(32);
    float acc[QUANT_NTOK_MAX][4];
    const uint8_t *x = act;
    for (; ntok > 0; ntok -= QUANT_NTOK_MAX, x += QUANT_NTOK_MAX * stride, out += QUANT_NTOK_MAX) {
        const int nt = ntok < QUANT_NTOK_MAX ? ntok : QUANT_NTOK_MAX;
        memset(acc, 0, sizeof acc);
        for (size_t b = 0; b < n / QK_K; b++) {
            int8x16_t v[16];
            for (int h = 0; h < 2; h++) {
                const uint8_t *ql = w[b].ql + 64 * h, *qh = w[b].qh + 32 * h;
                for (int g = 0; g < 2; g++) {
                    const uint8x16_t hb = vld1q_u8(qh + 16 * g);
                    const uint8x16_t l0 = vld1q_u8(ql + 16 * g), l1 = vld1q_u8(ql + 32 + 16 * g);
                    const uint8x16_t lo[4] = { vandq_u8(l0, m4), vandq_u8(l1, m4), vshrq_n_u8(l0, 4), vshrq_n_u8(l1, 4) };
                    const uint8x16_t hi[4] = { vandq_u8(hb, m3), vandq_u8(vshrq_n_u8(hb, 2), m3),
                                               vandq_u8(vshrq_n_u8(hb, 4), m3), vshrq_n_u8(hb, 6) };
                    for (int c = 0; c < 4; c++)
                        v[8 * h + 4 * g + c] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo[c], vshlq_n_u8(hi[c], 4))), m32);
                }
            }
            const float dw = f16(w[b].d);
            for (int t = 0; t < nt; t++) {
                const block_q8_K *a = (const block_q8_K *)(const void *)(x + (size_t)t * stride) + b;
                int32x4_t sum = vdupq_n_s32(0);
                for (int h = 0; h < 2; h++)
                    for (int g = 0; g < 2; g++)
                        for (int c = 0; c < 4; c++) {
                            const int32x4_t p = vdotq_s32(vdupq_n_s32(0), v[8 * h + 4 * g + c],
                                                          vld1q_s8(a->qs + 128 * h + 32 * c + 16 * g));
                            sum = vmlaq_n_s32(sum, p, w[b].scales[8 * h + 2 * c + g]);
                        }
                const float d = a->d * dw;
                acc[t][b & 3] += d * (float)vaddvq_s32(sum);
            }
        }
        for (int t = 0; t < nt; t++) out[t] = kern_acc4_finish(acc[t]);
    }
}

/* q2_K: value 128h + 32c + 16g + l is bits 2c of qs[32h + 16g + l],
 * sub-block 8h + 2c + g; scales low nibbles, mins high nibbles. Each
 * sub-block's 4 lanes of products are scaled and summed in int32 lanes. */
static float dot_q2_K(const void *row, const void *act, size_t n)
{
    const block_q2_K *w = row;
    const block_q8_K *a = act;
    const uint8x16_t m3 = vdupq_n_u8(3);
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        const uint8x16_t sc8 = vld1q_u8(w[b].scales);
        const int16x8_t mn_lo = vreinterpretq_s16_u16(vmovl_u8(vshr_n_u8(vget_low_u8(sc8), 4)));
        const int16x8_t mn_hi = vreinterpretq_s16_u16(vmovl_u8(vshr_n_u8(vget_high_u8(sc8), 4)));
        const int16x8_t bs_lo = vld1q_s16(a[b].bsums), bs_hi = vld1q_s16(a[b].bsums + 8);
        int32x4_t m = vmull_s16(vget_low_s16(mn_lo), vget_low_s16(bs_lo));
        m = vmlal_s16(m, vget_high_s16(mn_lo), vget_high_s16(bs_lo));
        m = vmlal_s16(m, vget_low_s16(mn_hi), vget_low_s16(bs_hi));
        m = vmlal_s16(m, vget_high_s16(mn_hi), vget_high_s16(bs_hi));
        int32x4_t sum = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8x16_t q0 = vld1q_u8(w[b].qs + 32 * h), q1 = vld1q_u8(w[b].qs + 32 * h + 16);
            for (int c = 0; c < 4; c++) {
                const int8_t *y = a[b].qs + 128 * h + 32 * c;
                const int8x16_t v0 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q0, vdupq_n_s8((int8_t)(-2 * c))), m3));
                const int8x16_t v1 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q1, vdupq_n_s8((int8_t)(-2 * c))), m3));
                const int s0 = w[b].scales[8 * h + 2 * c] & 0x0f, s1 = w[b].scales[8 * h + 2 * c + 1] & 0x0f;
                sum = vmlaq_n_s32(sum, vdotq_s32(vdupq_n_s32(0), v0, vld1q_s8(y)), s0);
                sum = vmlaq_n_s32(sum, vdotq_s32(vdupq_n_s32(0), v1, vld1q_s8(y + 16)), s1);
            }
        }
        const float d = a[b].d * f16(w[b].d), dmin = a[b].d * f16(w[b].dmin);
        acc[b & 3] += d * (float)vaddvq_s32(sum) - dmin * (float)vaddvq_s32(m);
    }
    return kern_acc4_finish(acc);
}

/* q3_K: as q2_K, minus 4 where bit 4h + c of hmask[16g + l] is clear;
 * signed 6-bit scales. */
static float dot_q3_K(const void *row, const void *act, size_t n)
{
    const block_q3_K *w = row;
    const block_q8_K *a = act;
    const uint8x16_t m3 = vdupq_n_u8(3), four = vdupq_n_u8(4);
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        int8_t sc[16];
        kern_q3_scales(w[b].scales, sc);
        const uint8x16_t hm0 = vld1q_u8(w[b].hmask), hm1 = vld1q_u8(w[b].hmask + 16);
        int32x4_t sum = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8x16_t q0 = vld1q_u8(w[b].qs + 32 * h), q1 = vld1q_u8(w[b].qs + 32 * h + 16);
            for (int c = 0; c < 4; c++) {
                const int8_t *y = a[b].qs + 128 * h + 32 * c;
                const int8x16_t sh = vdupq_n_s8((int8_t)(-2 * c));
                const uint8x16_t bit = vdupq_n_u8((uint8_t)(1u << (4 * h + c)));
                /* q - 4 + (4 where the high bit is set) */
                const uint8x16_t u0 = vaddq_u8(vandq_u8(vshlq_u8(q0, sh), m3), vandq_u8(vtstq_u8(hm0, bit), four));
                const uint8x16_t u1 = vaddq_u8(vandq_u8(vshlq_u8(q1, sh), m3), vandq_u8(vtstq_u8(hm1, bit), four));
                const int8x16_t v0 = vsubq_s8(vreinterpretq_s8_u8(u0), vreinterpretq_s8_u8(four));
                const int8x16_t v1 = vsubq_s8(vreinterpretq_s8_u8(u1), vreinterpretq_s8_u8(four));
                sum = vmlaq_n_s32(sum, vdotq_s32(vdupq_n_s32(0), v0, vld1q_s8(y)), sc[8 * h + 2 * c]);
                sum = vmlaq_n_s32(sum, vdotq_s32(vdupq_n_s32(0), v1, vld1q_s8(y + 16)), sc[8 * h + 2 * c + 1]);
            }
        }
        const float d = a[b].d * f16(w[b].d);
        acc[b & 3] += d * (float)vaddvq_s32(sum);
    }
    return kern_acc4_finish(acc);
}

/* iq4_xs: iq4_nl levels per 32 (low nibbles then high of 16 bytes),
 * signed 6-bit scales. */
static float dot_iq4_xs(const void *row, const void *act, size_t n)
{
    const block_iq4_xs *w = row;
    const block_q8_K *a = act;
    const int8x16_t t = vld1q_s8(quant_kvalues_iq4nl);
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        int8_t sc[8];
        kern_iq4xs_scales(&w[b], sc);
        int32x4_t sum = vdupq_n_s32(0);
        for (int j = 0; j < 8; j++) {
            const uint8x16_t q = vld1q_u8(w[b].qs + 16 * j);
            const int8_t *y = a[b].qs + 32 * j;
            int32x4_t p = vdotq_s32(vdupq_n_s32(0), vqtbl1q_s8(t, vandq_u8(q, m4)), vld1q_s8(y));
            p = vdotq_s32(p, vqtbl1q_s8(t, vshrq_n_u8(q, 4)), vld1q_s8(y + 16));
            sum = vmlaq_n_s32(sum, p, sc[j]);
        }
        const float d = a[b].d * f16(w[b].d);
        acc[b & 3] += d * (float)vaddvq_s32(sum);
    }
    return kern_acc4_finish(acc);
}

/* ---- float activations ---- */

#define FLOAT_DOT(name, T, LOAD4, CVT1)                                                            \
    static float name(const void *row, const void *act, size_t n)                              \
    {                                                                                          \
        const T *w = row;                                                                      \
        const float *x = act;                                                                  \
        float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;                         \
        size_t i = 0;                                                                          \
        for (; i + 16 <= n; i += 16) {                                                         \
            s0 = vfmaq_f32(s0, LOAD4(w + i), vld1q_f32(x + i));                                \
            s1 = vfmaq_f32(s1, LOAD4(w + i + 4), vld1q_f32(x + i + 4));                        \
            s2 = vfmaq_f32(s2, LOAD4(w + i + 8), vld1q_f32(x + i + 8));                        \
            s3 = vfmaq_f32(s3, LOAD4(w + i + 12), vld1q_f32(x + i + 12));                      \
        }                                                                                      \
        for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, LOAD4(w + i), vld1q_f32(x + i));         \
        float r = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));                 \
        for (; i < n; i++) r += CVT1(w[i]) * x[i];                                             \
        return r;                                                                              \
    }

static inline float32x4_t ld_f32(const float *p) { return vld1q_f32(p); }
static inline float32x4_t ld_f16(const mf_fp16 *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
static inline float32x4_t ld_bf16(const mf_bf16 *p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
static inline float cv_f32(float v) { return v; }

FLOAT_DOT(dot_f32, float, ld_f32, cv_f32)
FLOAT_DOT(dot_f16, mf_fp16, ld_f16, quant_fp16_to_f32)
FLOAT_DOT(dot_bf16, mf_bf16, ld_bf16, quant_bf16_to_f32)

void kern_fill_neon(quant_kernel_set *s)
{
    s->k[MF_TYPE_F32].vec_dot = dot_f32;
    s->k[MF_TYPE_F16].vec_dot = dot_f16;
    s->k[MF_TYPE_BF16].vec_dot = dot_bf16;
    s->k[MF_TYPE_Q8_0].vec_dot = dot_q8_0;
    s->k[MF_TYPE_Q4_0].vec_dot = dot_q4_0;
    s->k[MF_TYPE_Q5_0].vec_dot = dot_q5_0;
    s->k[MF_TYPE_IQ4_NL].vec_dot = dot_iq4_nl;
    s->k[MF_TYPE_MXFP4].vec_dot = dot_mxfp4;
    s->k[MF_TYPE_Q4_K].vec_dot = dot_q4_K;
    s->k[MF_TYPE_Q4_K].vec_dot_n = dot_n_q4_K;
    s->k[MF_TYPE_Q5_K].vec_dot = dot_q5_K;
    s->k[MF_TYPE_Q5_K].vec_dot_n = dot_n_q5_K;
    s->k[MF_TYPE_Q6_K].vec_dot = dot_q6_K;
    s->k[MF_TYPE_Q6_K].vec_dot_n = dot_n_q6_K;
    s->k[MF_TYPE_Q2_K].vec_dot = dot_q2_K;
    s->k[MF_TYPE_Q3_K].vec_dot = dot_q3_K;
    s->k[MF_TYPE_IQ4_XS].vec_dot = dot_iq4_xs;
    s->act[MF_TYPE_Q8_0] = act_q8_0;
    s->act[MF_TYPE_Q8_K] = act_q8_K;
    kern_fill_neon_iq(s);
}
