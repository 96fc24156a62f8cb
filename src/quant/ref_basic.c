/* ref_basic.c — scalar reference kernels of the plain float types (f32,
 * f16, bf16) and of ggml's original 32-value block formats (q4_0, q4_1,
 * q5_0, q5_1, q8_0).
 *
 * Each dequantizer reproduces ggml's dequantize_row_* bit for bit: one
 * fp16->f32 conversion of the scale, then the same float operations in the
 * same order (q4_1: q*d + m, never fused). Value j of a 32-block takes the
 * low nibble of qs[j], value j+16 the high nibble; the fifth bit of q5_*
 * sits in bit j of the little-endian 32-bit qh. The dot products are
 * dot(dequantized row, x), see quant_ref_dot in ref_impl.h. */
#include "quant/ref.h"
#include "quant/ref_impl.h"

#include <string.h>

QUANT_NO_FP_CONTRACT

void quant_dequant_f32(const void *src, float *dst, size_t n)
{
    memcpy(dst, src, n * sizeof(float));
}

void quant_dequant_f16(const void *src, float *dst, size_t n)
{
    const mf_fp16 *h = src;
    for (size_t i = 0; i < n; i++) dst[i] = quant_fp16_to_f32(h[i]);
}

void quant_dequant_bf16(const void *src, float *dst, size_t n)
{
    const mf_bf16 *h = src;
    for (size_t i = 0; i < n; i++) dst[i] = quant_bf16_to_f32(h[i]);
}

void quant_dequant_q4_0(const void *src, float *dst, size_t n)
{
    const block_q4_0 *b = src;
    for (size_t i = 0; i < n / QK4_0; i++, b++, dst += QK4_0) {
        const float d = quant_fp16_to_f32(b->d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int q0 = (b->qs[j] & 0x0f) - 8;
            const int q1 = (b->qs[j] >> 4) - 8;
            dst[j] = (float)q0 * d;
            dst[j + QK4_0 / 2] = (float)q1 * d;
        }
    }
}

void quant_dequant_q4_1(const void *src, float *dst, size_t n)
{
    const block_q4_1 *b = src;
    for (size_t i = 0; i < n / QK4_1; i++, b++, dst += QK4_1) {
        const float d = quant_fp16_to_f32(b->d);
        const float m = quant_fp16_to_f32(b->m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const int q0 = b->qs[j] & 0x0f;
            const int q1 = b->qs[j] >> 4;
            dst[j] = (float)q0 * d + m;
            dst[j + QK4_1 / 2] = (float)q1 * d + m;
        }
    }
}

void quant_dequant_q5_0(const void *src, float *dst, size_t n)
{
    const block_q5_0 *b = src;
    for (size_t i = 0; i < n / QK5_0; i++, b++, dst += QK5_0) {
        const float d = quant_fp16_to_f32(b->d);
        const uint32_t qh = quant_le32(b->qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int h0 = (qh >> j) & 1;
            const int h1 = (qh >> (j + QK5_0 / 2)) & 1;
            const int q0 = ((b->qs[j] & 0x0f) | h0 << 4) - 16;
            const int q1 = ((b->qs[j] >> 4) | h1 << 4) - 16;
            dst[j] = (float)q0 * d;
            dst[j + QK5_0 / 2] = (float)q1 * d;
        }
    }
}

void quant_dequant_q5_1(const void *src, float *dst, size_t n)
{
    const block_q5_1 *b = src;
    for (size_t i = 0; i < n / QK5_1; i++, b++, dst += QK5_1) {
        const float d = quant_fp16_to_f32(b->d);
        const float m = quant_fp16_to_f32(b->m);
        const uint32_t qh = quant_le32(b->qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int h0 = (qh >> j) & 1;
            const int h1 = (qh >> (j + QK5_1 / 2)) & 1;
            const int q0 = (b->qs[j] & 0x0f) | h0 << 4;
            const int q1 = (b->qs[j] >> 4) | h1 << 4;
            dst[j] = (float)q0 * d + m;
            dst[j + QK5_1 / 2] = (float)q1 * d + m;
        }
    }
}

void quant_dequant_q8_0(const void *src, float *dst, size_t n)
{
    const block_q8_0 *b = src;
    for (size_t i = 0; i < n / QK8_0; i++, b++, dst += QK8_0) {
        const float d = quant_fp16_to_f32(b->d);
        for (int j = 0; j < QK8_0; j++) dst[j] = (float)b->qs[j] * d;
    }
}

/* The plain float types have no blocks: they are summed in chunks of 32. */
QUANT_REF_DOT(f32, 32, 32 * sizeof(float))
QUANT_REF_DOT(f16, 32, 32 * sizeof(mf_fp16))
QUANT_REF_DOT(bf16, 32, 32 * sizeof(mf_bf16))
QUANT_REF_DOT(q4_0, QK4_0, sizeof(block_q4_0))
QUANT_REF_DOT(q4_1, QK4_1, sizeof(block_q4_1))
QUANT_REF_DOT(q5_0, QK5_0, sizeof(block_q5_0))
QUANT_REF_DOT(q5_1, QK5_1, sizeof(block_q5_1))
QUANT_REF_DOT(q8_0, QK8_0, sizeof(block_q8_0))
