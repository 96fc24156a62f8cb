/* quantize.c — quant_quantize_row, and the quantizers of the plain float
 * types and the 32-value block formats (q4_0, q4_1, q5_0, q5_1, q8_0).
 *
 * The block quantizers are ggml's quantize_row_*_ref algorithms: one scale
 * per block from the absolute maximum (q4_0, q5_0, q8_0: the value of
 * largest magnitude maps to the most negative level, -8 or -16, or q8_0's
 * amax to 127) or from min and max (q4_1, q5_1), stored as fp16, and
 * round-to-nearest quants computed with the unrounded float scale. Keeping
 * their exact arithmetic (including the truncating casts of x + 8.5) makes
 * our files byte-identical to llama-quantize's. The K-quants are in
 * quantize_k.c. */
#include "quant/quantize.h"
#include "quant/quant.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

static int imin(int a, int b) { return a < b ? a : b; }

/* Absolute maximum of n values, and the value that has it (first wins). */
static float signed_amax(const float *x, int n, float *amax)
{
    float a = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (a < fabsf(x[j])) {
            a = fabsf(x[j]);
            max = x[j];
        }
    }
    *amax = a;
    return max;
}

void quant_quantize_q4_0(const float *src, void *dst, size_t n)
{
    block_q4_0 *b = dst;
    for (size_t i = 0; i < n / QK4_0; i++, b++, src += QK4_0) {
        float amax;
        const float max = signed_amax(src, QK4_0, &amax);
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b->d = quant_f32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            /* x*id lies in [-8, 8]: +8.5 truncated is round-to-nearest */
            const int q0 = imin(15, (int8_t)(src[j] * id + 8.5f));
            const int q1 = imin(15, (int8_t)(src[j + QK4_0 / 2] * id + 8.5f));
            b->qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

void quant_quantize_q4_1(const float *src, void *dst, size_t n)
{
    block_q4_1 *b = dst;
    for (size_t i = 0; i < n / QK4_1; i++, b++, src += QK4_1) {
        float min = src[0], max = src[0];
        for (int j = 1; j < QK4_1; j++) {
            if (src[j] < min) min = src[j];
            if (src[j] > max) max = src[j];
        }
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b->d = quant_f32_to_fp16(d);
        b->m = quant_f32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const int q0 = imin(15, (int8_t)((src[j] - min) * id + 0.5f));
            const int q1 = imin(15, (int8_t)((src[j + QK4_1 / 2] - min) * id + 0.5f));
            b->qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

void quant_quantize_q5_0(const float *src, void *dst, size_t n)
{
    block_q5_0 *b = dst;
    for (size_t i = 0; i < n / QK5_0; i++, b++, src += QK5_0) {
        float amax;
        const float max = signed_amax(src, QK5_0, &amax);
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b->d = quant_f32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int q0 = imin(31, (int8_t)(src[j] * id + 16.5f));
            const int q1 = imin(31, (int8_t)(src[j + QK5_0 / 2] * id + 16.5f));
            b->qs[j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + QK5_0 / 2);
        }
        for (int k = 0; k < 4; k++) b->qh[k] = (uint8_t)(qh >> (8 * k));
    }
}

void quant_quantize_q5_1(const float *src, void *dst, size_t n)
{
    block_q5_1 *b = dst;
    for (size_t i = 0; i < n / QK5_1; i++, b++, src += QK5_1) {
        float min = src[0], max = src[0];
        for (int j = 1; j < QK5_1; j++) {
            if (src[j] < min) min = src[j];
            if (src[j] > max) max = src[j];
        }
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b->d = quant_f32_to_fp16(d);
        b->m = quant_f32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int q0 = (uint8_t)((src[j] - min) * id + 0.5f);
            const int q1 = (uint8_t)((src[j + QK5_1 / 2] - min) * id + 0.5f);
            b->qs[j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
            qh |= (uint32_t)((q0 >> 4) & 1) << j;
            qh |= (uint32_t)((q1 >> 4) & 1) << (j + QK5_1 / 2);
        }
        for (int k = 0; k < 4; k++) b->qh[k] = (uint8_t)(qh >> (8 * k));
    }
}

void quant_quantize_q8_0(const float *src, void *dst, size_t n)
{
    block_q8_0 *b = dst;
    for (size_t i = 0; i < n / QK8_0; i++, b++, src += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(src[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b->d = quant_f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) b->qs[j] = (int8_t)roundf(src[j] * id);
    }
}

size_t quant_quantize_row(uint32_t type, const float *src, void *dst, size_t n)
{
    const size_t bytes = quant_row_bytes(type, n);
    if (bytes == 0 && n != 0) return 0;
    switch (type) {
    case MF_TYPE_F32: memcpy(dst, src, n * sizeof(float)); break;
    case MF_TYPE_F16: {
        mf_fp16 *h = dst;
        for (size_t i = 0; i < n; i++) h[i] = quant_f32_to_fp16(src[i]);
        break;
    }
    case MF_TYPE_BF16: {
        mf_bf16 *h = dst;
        for (size_t i = 0; i < n; i++) h[i] = quant_f32_to_bf16(src[i]);
        break;
    }
    case MF_TYPE_Q4_0: quant_quantize_q4_0(src, dst, n); break;
    case MF_TYPE_Q4_1: quant_quantize_q4_1(src, dst, n); break;
    case MF_TYPE_Q5_0: quant_quantize_q5_0(src, dst, n); break;
    case MF_TYPE_Q5_1: quant_quantize_q5_1(src, dst, n); break;
    case MF_TYPE_Q8_0: quant_quantize_q8_0(src, dst, n); break;
    case MF_TYPE_Q2_K: quant_quantize_q2_K(src, dst, n); break;
    case MF_TYPE_Q3_K: quant_quantize_q3_K(src, dst, n); break;
    case MF_TYPE_Q4_K: quant_quantize_q4_K(src, dst, n); break;
    case MF_TYPE_Q5_K: quant_quantize_q5_K(src, dst, n); break;
    case MF_TYPE_Q6_K: quant_quantize_q6_K(src, dst, n); break;
    case MF_TYPE_Q8_K: quant_quantize_q8_K(src, dst, n); break;
    default: return 0;
    }
    return bytes;
}
