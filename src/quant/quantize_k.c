/* quantize_k.c — quantizers of the K-quants (q2_K..q6_K, q8_K).
 *
 * These are ggml's quantize_row_*_ref algorithms without importance
 * weights, so our GGUF files match llama-quantize's byte for byte:
 *
 *  - q4_K, q5_K (scale and min per 32 values) and q2_K (per 16): the
 *    make_qkx2_quants search. Start from the min/max affine grid, then try
 *    nstep+1 slightly different inverse scales; for each, round, solve the
 *    weighted least-squares (scale, min) for those levels in closed form,
 *    and keep the pair with the smallest weighted error (squared for q4_K/
 *    q5_K with weights |x| + rms, absolute for q2_K with weights |x|).
 *  - q6_K (signed scale per 16 values): make_qx_quants, the same idea for a
 *    symmetric grid: 19 trial scales around nmax/amax, each with its least-
 *    squares scale, weighted by x^2.
 *  - q3_K: make_q3_quants, a symmetric grid refined by a few passes of
 *    coordinate descent on each level (weights x^2).
 *  - q8_K: symmetric, -127/max, no search.
 *
 * The sub-block scales (and mins) are then quantized to 4/6/8 bits against
 * their maximum and the levels recomputed with the scales as stored (fp16
 * super-scale times integer sub-scale), so dequantization sees the quants
 * that best fit what it will actually use. All arithmetic is float, in
 * ggml's order, with contraction off (see ref_impl.h). */
#include "quant/quantize.h"
#include "quant/quant.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define GROUP_MAX_EPS 1e-15f

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* Round to nearest, ties to even, by adding 1.5 * 2^23: exact for
 * |f| <= 2^22, the range every caller stays in (levels and scales). */
static int nearest_int(float f)
{
    float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* Affine fit x ~ scale * L + min with L in [0, nmax], min <= 0. Returns
 * scale; *neg_min receives -min. See the file comment. */
static float fit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min,
                        float rmin, float rdelta, int nstep, bool use_mad)
{
    uint8_t Laux[32];
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += w[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * Laux[i] + this_min - x[i];
            diff = use_mad ? fabsf(diff) : diff * diff;
            err += w[i] * diff;
        }
        if (err < best_error) {
            memcpy(L, Laux, (size_t)n);
            best_error = err;
            scale = this_scale;
            min = this_min;
        }
    }
    *neg_min = -min;
    return scale;
}

/* Symmetric fit x ~ scale * (L - nmax), L in [0, 2 nmax), weights x^2
 * (make_qx_quants with rmse_type 1). Returns the signed scale. */
static float fit_symmetric(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* make_q3_quants with do_rmse: symmetric start, then up to 5 passes that
 * move single levels while the weighted fit improves. L gets l + nmax. */
static float fit_q3(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * L[i] * L[i];
            const int new_l = imax(-nmax, imin(nmax - 1, nearest_int(x[i] * sl2 / slx)));
            if (new_l == L[i]) continue;
            slx += w * x[i] * new_l;
            sl2 += w * new_l * new_l;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)new_l;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Pack 2-bit levels: value 128h + 32c + l goes to bits 2c of qs[32h + l]. */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *p = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(p[0] | p[32] << 2 | p[64] << 4 | p[96] << 6);
        }
}

void quant_quantize_q2_K(const float *src, void *dst, size_t n)
{
    block_q2_K *b = dst;
    for (size_t i = 0; i < n / QK_K; i++, b++, src += QK_K) {
        uint8_t L[QK_K];
        float w[16], scales[16], mins[16];
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(src[16 * j + l]);
            scales[j] = fit_affine(16, 3, src + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        memset(b->scales, 0, sizeof b->scales);
        b->d = quant_f32_to_fp16(0.0f);
        b->dmin = quant_f32_to_fp16(0.0f);
        if (max_scale > 0) {
            const float iscale = 15.f / max_scale;
            for (int j = 0; j < 16; j++) b->scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            b->d = quant_f32_to_fp16(max_scale / 15.f);
        }
        if (max_min > 0) {
            const float iscale = 15.f / max_min;
            for (int j = 0; j < 16; j++) b->scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            b->dmin = quant_f32_to_fp16(max_min / 15.f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = quant_fp16_to_f32(b->d) * (b->scales[j] & 0x0f);
            if (d == 0.0f) continue;
            const float dm = quant_fp16_to_f32(b->dmin) * (b->scales[j] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (uint8_t)imax(0, imin(3, nearest_int((src[16 * j + l] + dm) / d)));
        }
        pack_2bit(L, b->qs);
    }
}

void quant_quantize_q3_K(const float *src, void *dst, size_t n)
{
    block_q3_K *b = dst;
    for (size_t i = 0; i < n / QK_K; i++, b++, src += QK_K) {
        int8_t L[QK_K];
        float scales[16];
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_q3(16, 4, src + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) { amax = fabsf(scales[j]); max_scale = scales[j]; }
        }
        memset(b->scales, 0, sizeof b->scales);
        b->d = quant_f32_to_fp16(0.0f);
        if (max_scale != 0.0f) {
            /* 6-bit signed scales stored +32: low nibbles in bytes 0..7,
             * top 2 bits of scale j in bits 2*(j/4) of byte 8 + j%4 */
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                const int l = imax(-32, imin(31, (int8_t)nearest_int(iscale * scales[j]))) + 32;
                if (j < 8) b->scales[j] = (uint8_t)(l & 0x0f);
                else b->scales[j - 8] |= (uint8_t)((l & 0x0f) << 4);
                b->scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            b->d = quant_f32_to_fp16(1 / iscale);
        }
        for (int j = 0; j < 16; j++) {
            const int lo = j < 8 ? b->scales[j] & 0x0f : b->scales[j - 8] >> 4;
            const int sc = (lo | ((b->scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32;
            const float d = quant_fp16_to_f32(b->d) * sc;
            if (d == 0.0f) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(imax(-4, imin(3, nearest_int(src[16 * j + l] / d))) + 4);
        }
        /* high bit of value k in bit k/32 of hmask[k%32], low 2 bits as q2_K */
        memset(b->hmask, 0, sizeof b->hmask);
        uint8_t low[QK_K];
        for (int k = 0; k < QK_K; k++) {
            if (L[k] > 3) b->hmask[k % 32] |= (uint8_t)(1u << (k / 32));
            low[k] = (uint8_t)(L[k] & 3);
        }
        pack_2bit(low, b->qs);
    }
}

/* q4_K/q5_K: 8 sub-blocks of 32, 6-bit scales and mins (see ref_k.c for
 * the packing). Fills scales, d, dmin and the levels L in [0, nmax]. */
static void quantize_k_affine(const float *x, int nmax, float rmin, int nstep, uint8_t *L, uint8_t packed[12],
                              mf_fp16 *d_out, mf_fp16 *dmin_out)
{
    float w[32], scales[8], mins[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xs[l]);
        scales[j] = fit_affine(32, nmax, xs, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)imin(63, (uint8_t)nearest_int(inv_scale * scales[j]));
        lm[j] = (uint8_t)imin(63, (uint8_t)nearest_int(inv_min * mins[j]));
    }
    for (int j = 0; j < 4; j++) {
        packed[j] = (uint8_t)(ls[j] | (ls[j + 4] >> 4) << 6);
        packed[j + 4] = (uint8_t)(lm[j] | (lm[j + 4] >> 4) << 6);
        packed[j + 8] = (uint8_t)((ls[j + 4] & 0x0f) | (lm[j + 4] & 0x0f) << 4);
    }
    *d_out = quant_f32_to_fp16(max_scale / 63.f);
    *dmin_out = quant_f32_to_fp16(max_min / 63.f);
    const float d = quant_fp16_to_f32(*d_out), dmin = quant_fp16_to_f32(*dmin_out);
    for (int j = 0; j < 8; j++) {
        const float dl = d * ls[j];
        if (dl == 0.0f) continue;
        const float dm = dmin * lm[j];
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)imax(0, imin(nmax, nearest_int((x[32 * j + l] + dm) / dl)));
    }
}

void quant_quantize_q4_K(const float *src, void *dst, size_t n)
{
    block_q4_K *b = dst;
    for (size_t i = 0; i < n / QK_K; i++, b++, src += QK_K) {
        uint8_t L[QK_K];
        quantize_k_affine(src, 15, -1.f, 20, L, b->scales, &b->d, &b->dmin);
        /* value 64p + 32u + l: nibble u of qs[32p + l] */
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++)
                b->qs[32 * p + l] = (uint8_t)(L[64 * p + l] | L[64 * p + 32 + l] << 4);
    }
}

void quant_quantize_q5_K(const float *src, void *dst, size_t n)
{
    block_q5_K *b = dst;
    for (size_t i = 0; i < n / QK_K; i++, b++, src += QK_K) {
        uint8_t L[QK_K];
        quantize_k_affine(src, 31, -0.5f, 15, L, b->scales, &b->d, &b->dmin);
        /* value 64p + 32u + l: nibble u of qs[32p + l], bit 2p + u of qh[l] */
        memset(b->qh, 0, sizeof b->qh);
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++) {
                const int l0 = L[64 * p + l], l1 = L[64 * p + 32 + l];
                b->qs[32 * p + l] = (uint8_t)((l0 & 0x0f) | (l1 & 0x0f) << 4);
                b->qh[l] |= (uint8_t)((l0 >> 4) << (2 * p) | (l1 >> 4) << (2 * p + 1));
            }
    }
}

void quant_quantize_q6_K(const float *src, void *dst, size_t n)
{
    block_q6_K *b = dst;
    for (size_t i = 0; i < n / QK_K; i++, b++, src += QK_K) {
        int8_t L[QK_K];
        float scales[16];
        float max_scale = 0, max_abs = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_symmetric(16, 32, src + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > max_abs) { max_abs = fabsf(scales[j]); max_scale = scales[j]; }
        }
        if (max_abs < GROUP_MAX_EPS) {
            memset(b, 0, sizeof *b);
            continue;
        }
        const float iscale = -128.f / max_scale;
        b->d = quant_f32_to_fp16(1 / iscale);
        for (int j = 0; j < 16; j++) b->scales[j] = (int8_t)imin(127, nearest_int(iscale * scales[j]));
        for (int j = 0; j < 16; j++) {
            const float d = quant_fp16_to_f32(b->d) * b->scales[j];
            if (d == 0.0f) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(imax(-32, imin(31, nearest_int(src[16 * j + l] / d))) + 32);
        }
        /* value 128h + 32c + l: nibble c/2 of ql[64h + 32(c%2) + l], bits
         * 2c of qh[32h + l] */
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const int8_t *p = L + 128 * h + l;
                b->ql[64 * h + l] = (uint8_t)((p[0] & 0x0f) | (p[64] & 0x0f) << 4);
                b->ql[64 * h + 32 + l] = (uint8_t)((p[32] & 0x0f) | (p[96] & 0x0f) << 4);
                b->qh[32 * h + l] = (uint8_t)((p[0] >> 4) | (p[32] >> 4) << 2 | (p[64] >> 4) << 4 | (p[96] >> 4) << 6);
            }
    }
}

void quant_quantize_q8_K(const float *src, void *dst, size_t n)
{
    block_q8_K *b = dst;
    for (size_t i = 0; i < n / QK_K; i++, b++, src += QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(src[j]) > amax) { amax = fabsf(src[j]); max = src[j]; }
        }
        memset(b, 0, sizeof *b);
        if (amax == 0.0f) continue;
        /* -127, not -128: the value of largest magnitude maps to -127 (or
         * 127) so that int8 negation never overflows in the dot kernels */
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) b->qs[j] = (int8_t)imin(127, nearest_int(iscale * src[j]));
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += b->qs[16 * j + l];
            b->bsums[j] = (int16_t)sum;
        }
        b->d = 1 / iscale;
    }
}
