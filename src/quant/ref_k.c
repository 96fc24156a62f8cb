/* ref_k.c — scalar reference kernels of the K-quants (q2_K..q6_K, q8_K):
 * super-blocks of 256 values with an fp16 super-scale (and super-min) and
 * small integer sub-block scales.
 *
 * Each dequantizer reproduces ggml's dequantize_row_* bit for bit, which
 * fixes the float operation order: the sub-block scale is formed first
 * (d*sc, dmin*m), then value = (d*sc)*q - (dmin*m); q6_K is (d*sc)*q. The
 * packing of quants and scales is that of ggml-common.h; the comment on
 * each function says where value k of the super-block comes from. */
#include "quant/ref.h"
#include "quant/ref_impl.h"

QUANT_NO_FP_CONTRACT

/* q4_K/q5_K: 8 pairs of 6-bit (scale, min) packed in 12 bytes. Pairs 0..3
 * are the low 6 bits of bytes 0..3 (scale) and 4..7 (min); pairs 4..7 take
 * their low nibbles from bytes 8..11 and their top 2 bits from the top of
 * bytes 0..3 (scale) and 4..7 (min). */
static void k4_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0f) | (s[j - 4] >> 6) << 4);
        *m = (uint8_t)((s[j + 4] >> 4) | (s[j] >> 6) << 4);
    }
}

/* q2_K: 16 sub-blocks of 16. scales[s] = scale (low nibble) | min (high).
 * Value k = 128h + 32c + 16g + l (h half, c 2-bit column, g 0..1) is bits
 * 2c of qs[32h + 16g + l], its sub-block s = 8h + 2c + g. */
void quant_dequant_q2_K(const void *src, float *dst, size_t n)
{
    const block_q2_K *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++) {
        const float d = quant_fp16_to_f32(b->d);
        const float dmin = quant_fp16_to_f32(b->dmin);
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = b->qs + 32 * h;
            for (int c = 0; c < 4; c++) {
                for (int g = 0; g < 2; g++) {
                    const uint8_t sc = b->scales[8 * h + 2 * c + g];
                    const float dl = d * (float)(sc & 0x0f);
                    const float ml = dmin * (float)(sc >> 4);
                    for (int l = 0; l < 16; l++) {
                        const int v = (q[16 * g + l] >> (2 * c)) & 3;
                        *dst++ = dl * (float)v - ml;
                    }
                }
            }
        }
    }
}

/* q3_K: 16 signed 6-bit sub-block scales (stored +32): low nibbles in
 * bytes 0..7 (scales 0..7 low, 8..15 high nibble), top 2 bits of scale s in
 * bits 2*(s/4) of byte 8 + s%4. Quants as q2_K, minus 4 unless the hmask
 * bit is set: value k = 128h + 32c + 16g + l uses bit 4h + c of
 * hmask[16g + l]. */
void quant_dequant_q3_K(const void *src, float *dst, size_t n)
{
    const block_q3_K *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++) {
        const float d = quant_fp16_to_f32(b->d);
        int sc[16];
        for (int s = 0; s < 16; s++) {
            const int lo = s < 8 ? b->scales[s] & 0x0f : b->scales[s - 8] >> 4;
            const int hi = (b->scales[8 + s % 4] >> (2 * (s / 4))) & 3;
            sc[s] = (lo | hi << 4) - 32;
        }
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = b->qs + 32 * h;
            for (int c = 0; c < 4; c++) {
                const uint8_t hbit = (uint8_t)(1u << (4 * h + c));
                for (int g = 0; g < 2; g++) {
                    const float dl = d * (float)sc[8 * h + 2 * c + g];
                    for (int l = 0; l < 16; l++) {
                        const int v = ((q[16 * g + l] >> (2 * c)) & 3) - ((b->hmask[16 * g + l] & hbit) ? 0 : 4);
                        *dst++ = dl * (float)v;
                    }
                }
            }
        }
    }
}

/* q4_K: 8 sub-blocks of 32. Value k = 64p + 32u + l is the low (u = 0) or
 * high (u = 1) nibble of qs[32p + l], sub-block 2p + u. */
void quant_dequant_q4_K(const void *src, float *dst, size_t n)
{
    const block_q4_K *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++) {
        const float d = quant_fp16_to_f32(b->d);
        const float dmin = quant_fp16_to_f32(b->dmin);
        for (int p = 0; p < 4; p++) {
            const uint8_t *q = b->qs + 32 * p;
            for (int u = 0; u < 2; u++) {
                uint8_t sc, m;
                k4_scale_min(2 * p + u, b->scales, &sc, &m);
                const float dl = d * (float)sc;
                const float ml = dmin * (float)m;
                for (int l = 0; l < 32; l++) {
                    const int v = (q[l] >> (4 * u)) & 0x0f;
                    *dst++ = dl * (float)v - ml;
                }
            }
        }
    }
}

/* q5_K: as q4_K plus a fifth bit: value k = 64p + 32u + l takes bit
 * 2p + u of qh[l]. */
void quant_dequant_q5_K(const void *src, float *dst, size_t n)
{
    const block_q5_K *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++) {
        const float d = quant_fp16_to_f32(b->d);
        const float dmin = quant_fp16_to_f32(b->dmin);
        for (int p = 0; p < 4; p++) {
            const uint8_t *q = b->qs + 32 * p;
            for (int u = 0; u < 2; u++) {
                uint8_t sc, m;
                k4_scale_min(2 * p + u, b->scales, &sc, &m);
                const float dl = d * (float)sc;
                const float ml = dmin * (float)m;
                const int hb = 2 * p + u;
                for (int l = 0; l < 32; l++) {
                    const int v = ((q[l] >> (4 * u)) & 0x0f) | ((b->qh[l] >> hb) & 1) << 4;
                    *dst++ = dl * (float)v - ml;
                }
            }
        }
    }
}

/* q6_K: 16 sub-blocks of 16 with int8 scales, quants stored +32. Value
 * k = 128h + 32c + l (c 0..3, l 0..31): low 4 bits are the low (c < 2) or
 * high (c >= 2) nibble of ql[64h + 32(c%2) + l], top 2 bits are bits 2c of
 * qh[32h + l]; sub-block 8h + 2c + l/16. */
void quant_dequant_q6_K(const void *src, float *dst, size_t n)
{
    const block_q6_K *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++) {
        const float d = quant_fp16_to_f32(b->d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b->ql + 64 * h;
            const uint8_t *qh = b->qh + 32 * h;
            for (int c = 0; c < 4; c++) {
                for (int l = 0; l < 32; l++) {
                    const int lo = (ql[32 * (c % 2) + l] >> (4 * (c / 2))) & 0x0f;
                    const int hi = (qh[l] >> (2 * c)) & 3;
                    const int v = (lo | hi << 4) - 32;
                    const float dl = d * (float)b->scales[8 * h + 2 * c + l / 16];
                    *dst++ = dl * (float)v;
                }
            }
        }
    }
}

/* q8_K: a float scale and 256 int8 (bsums are redundant for dequant). */
void quant_dequant_q8_K(const void *src, float *dst, size_t n)
{
    const block_q8_K *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++)
        for (int j = 0; j < QK_K; j++) *dst++ = b->d * (float)b->qs[j];
}

QUANT_REF_DOT(q2_K, QK_K, sizeof(block_q2_K))
QUANT_REF_DOT(q3_K, QK_K, sizeof(block_q3_K))
QUANT_REF_DOT(q4_K, QK_K, sizeof(block_q4_K))
QUANT_REF_DOT(q5_K, QK_K, sizeof(block_q5_K))
QUANT_REF_DOT(q6_K, QK_K, sizeof(block_q6_K))
QUANT_REF_DOT(q8_K, QK_K, sizeof(block_q8_K))
