/* ref_iq.c — scalar reference kernels of the low-bit formats: the i-quants
 * (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL, IQ4_XS),
 * MXFP4 and the ternary TQ1_0/TQ2_0.
 *
 * The i-quants store, per group of 8 (or 4) values, an index into a
 * lattice codebook of magnitudes (iq_tables.c) plus a sign pattern; IQ1_*
 * codebooks hold -1/0/+1 shifted by a per-group +-1/8. Each dequantizer
 * reproduces ggml's dequantize_row_* bit for bit: the same sub-block scale
 * expression (e.g. IQ2: (d * (0.5 + s)) * 0.25), then scale * grid value,
 * then the sign as a multiply by +-1 (exact). Multi-byte fields that the
 * structs keep as bytes are read little-endian, as GGUF stores them. */
#include "quant/ref.h"
#include "quant/ref_impl.h"
#include "quant/iq_tables.h"

#include <string.h>

QUANT_NO_FP_CONTRACT

static inline float sign_of(uint8_t signs, int j)
{
    return (signs >> j) & 1 ? -1.0f : 1.0f;
}

/* IQ2_XXS: per 32 values, 8 bytes: 4 grid indices (8 bits), then a 32-bit
 * word of four 7-bit sign indices and a 4-bit scale in the top bits. */
void quant_dequant_iq2_xxs(const void *src, float *dst, size_t n)
{
    const block_iq2_xxs *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++) {
        const float d = quant_fp16_to_f32(b->d);
        const uint8_t *q8 = (const uint8_t *)b->qs;
        for (int ib = 0; ib < QK_K / 32; ib++, q8 += 8) {
            const uint32_t aux = quant_le32(q8 + 4);
            const float db = d * (0.5f + (float)(aux >> 28)) * 0.25f;
            for (int l = 0; l < 4; l++) {
                const uint64_t g = quant_iq2xxs_grid[q8[l]];
                const uint8_t signs = quant_ksigns_iq2xs[(aux >> (7 * l)) & 127];
                for (int j = 0; j < 8; j++) *dst++ = db * (float)quant_grid_byte(g, j) * sign_of(signs, j);
            }
        }
    }
}

/* IQ2_XS: per 8 values a uint16: 9-bit grid index, 7-bit sign index; two
 * 4-bit scales per 32 values (low nibble for the first 16). */
void quant_dequant_iq2_xs(const void *src, float *dst, size_t n)
{
    const block_iq2_xs *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++) {
        const float d = quant_fp16_to_f32(b->d);
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const float db[2] = {
                d * (0.5f + (float)(b->scales[ib] & 0x0f)) * 0.25f,
                d * (0.5f + (float)(b->scales[ib] >> 4)) * 0.25f,
            };
            for (int l = 0; l < 4; l++) {
                const uint16_t q = b->qs[4 * ib + l];
                const uint64_t g = quant_iq2xs_grid[q & 511];
                const uint8_t signs = quant_ksigns_iq2xs[q >> 9];
                for (int j = 0; j < 8; j++) *dst++ = db[l / 2] * (float)quant_grid_byte(g, j) * sign_of(signs, j);
            }
        }
    }
}

/* IQ2_S: 10-bit grid index (8 bits in qs[0..31], 2 bits per group in qh),
 * explicit 8-bit signs in qs[32..63], scales as IQ2_XS. */
void quant_dequant_iq2_s(const void *src, float *dst, size_t n)
{
    const block_iq2_s *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++) {
        const float d = quant_fp16_to_f32(b->d);
        const uint8_t *qs = b->qs;
        const uint8_t *signs = b->qs + QK_K / 8;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, signs += 4) {
            const float db[2] = {
                d * (0.5f + (float)(b->scales[ib] & 0x0f)) * 0.25f,
                d * (0.5f + (float)(b->scales[ib] >> 4)) * 0.25f,
            };
            for (int l = 0; l < 4; l++) {
                const int idx = qs[l] | ((b->qh[ib] >> (2 * l)) & 3) << 8;
                const uint64_t g = quant_iq2s_grid[idx];
                for (int j = 0; j < 8; j++) *dst++ = db[l / 2] * (float)quant_grid_byte(g, j) * sign_of(signs[l], j);
            }
        }
    }
}

/* IQ3_XXS: 64 bytes of 8-bit grid indices (4 values each), then per 32
 * values a 32-bit word of four 7-bit sign indices and a 4-bit scale. */
void quant_dequant_iq3_xxs(const void *src, float *dst, size_t n)
{
    const block_iq3_xxs *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++) {
        const float d = quant_fp16_to_f32(b->d);
        const uint8_t *qs = b->qs;
        const uint8_t *scales_signs = b->qs + QK_K / 4;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 8) {
            const uint32_t aux = quant_le32(scales_signs + 4 * ib);
            const float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
            for (int l = 0; l < 4; l++) {
                const uint8_t signs = quant_ksigns_iq2xs[(aux >> (7 * l)) & 127];
                const uint32_t g1 = quant_iq3xxs_grid[qs[2 * l]];
                const uint32_t g2 = quant_iq3xxs_grid[qs[2 * l + 1]];
                for (int j = 0; j < 4; j++) dst[j] = db * (float)quant_grid_byte(g1, j) * sign_of(signs, j);
                for (int j = 0; j < 4; j++) dst[j + 4] = db * (float)quant_grid_byte(g2, j) * sign_of(signs, j + 4);
                dst += 8;
            }
        }
    }
}

/* IQ3_S: 9-bit grid indices (8 bits in qs, the ninth in qh: bit k of
 * qh[ib] for index k of 32-block ib), explicit signs, one 4-bit scale per
 * 32 values (odd multiples: 1 + 2s). */
void quant_dequant_iq3_s(const void *src, float *dst, size_t n)
{
    const block_iq3_s *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++) {
        const float d = quant_fp16_to_f32(b->d);
        const uint8_t *qs = b->qs;
        const uint8_t *signs = b->signs;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 8, signs += 4) {
            const int s = (b->scales[ib / 2] >> (4 * (ib % 2))) & 0x0f;
            const float db = d * (float)(1 + 2 * s);
            const uint8_t qh = b->qh[ib];
            for (int l = 0; l < 4; l++) {
                const uint32_t g1 = quant_iq3s_grid[qs[2 * l] | ((qh >> (2 * l)) & 1) << 8];
                const uint32_t g2 = quant_iq3s_grid[qs[2 * l + 1] | ((qh >> (2 * l + 1)) & 1) << 8];
                for (int j = 0; j < 4; j++) dst[j] = db * (float)quant_grid_byte(g1, j) * sign_of(signs[l], j);
                for (int j = 0; j < 4; j++) dst[j + 4] = db * (float)quant_grid_byte(g2, j) * sign_of(signs[l], j + 4);
                dst += 8;
            }
        }
    }
}

/* Value j of an IQ1 codebook entry: an int8 in {-1, 0, 1}. */
static inline float iq1_value(uint64_t g, int j)
{
    return (float)(int8_t)quant_grid_byte(g, j);
}

/* IQ1_S: 11-bit grid indices (8 bits in qs, 3 bits per group in qh[ib]
 * bits 3l..3l+2); qh[ib] bits 12..14 the 3-bit scale (2s + 1), bit 15 the
 * sign of the delta. Value = dl * (grid + delta). */
void quant_dequant_iq1_s(const void *src, float *dst, size_t n)
{
    const block_iq1_s *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++) {
        const float d = quant_fp16_to_f32(b->d);
        const uint8_t *qs = b->qs;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4) {
            const unsigned qh = b->qh[ib];
            const float dl = d * (float)(2 * ((qh >> 12) & 7) + 1);
            const float delta = qh & 0x8000 ? -QUANT_IQ1S_DELTA : QUANT_IQ1S_DELTA;
            for (int l = 0; l < 4; l++) {
                const uint64_t g = quant_iq1s_grid[qs[l] | ((qh >> (3 * l)) & 7) << 8];
                for (int j = 0; j < 8; j++) *dst++ = dl * (iq1_value(g, j) + delta);
            }
        }
    }
}

/* IQ1_M: no d field. The fp16 super-scale is the top nibbles of the four
 * little-endian uint16 words of scales (word k holds bits 4k..4k+3); their
 * other 12 bits hold 3-bit scales, two per 32 values (first and second
 * 16). Per group of 8: 8 bits of index in qs, 3 high bits and the delta
 * sign in a nibble of qh. */
void quant_dequant_iq1_m(const void *src, float *dst, size_t n)
{
    const block_iq1_m *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++) {
        uint16_t sc[4];
        for (int k = 0; k < 4; k++) sc[k] = (uint16_t)(b->scales[2 * k] | b->scales[2 * k + 1] << 8);
        const mf_fp16 dh = (mf_fp16)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
        const float d = quant_fp16_to_f32(dh);
        const uint8_t *qs = b->qs;
        const uint8_t *qh = b->qh;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, qh += 2) {
            const int shift = 6 * (ib % 2);
            const float dl[2] = {
                d * (float)(2 * ((sc[ib / 2] >> shift) & 7) + 1),
                d * (float)(2 * ((sc[ib / 2] >> (shift + 3)) & 7) + 1),
            };
            for (int l = 0; l < 4; l++) {
                const int nib = (qh[l / 2] >> (4 * (l % 2))) & 0x0f;
                const uint64_t g = quant_iq1s_grid[qs[l] | (nib & 7) << 8];
                const float delta = nib & 8 ? -QUANT_IQ1S_DELTA : QUANT_IQ1S_DELTA;
                for (int j = 0; j < 8; j++) *dst++ = dl[l / 2] * (iq1_value(g, j) + delta);
            }
        }
    }
}

/* IQ4_NL: q4_0's layout with the non-linear levels of kvalues_iq4nl. */
void quant_dequant_iq4_nl(const void *src, float *dst, size_t n)
{
    const block_iq4_nl *b = src;
    for (size_t i = 0; i < n / QK4_NL; i++, b++, dst += QK4_NL) {
        const float d = quant_fp16_to_f32(b->d);
        for (int j = 0; j < QK4_NL / 2; j++) {
            dst[j] = d * (float)quant_kvalues_iq4nl[b->qs[j] & 0x0f];
            dst[j + QK4_NL / 2] = d * (float)quant_kvalues_iq4nl[b->qs[j] >> 4];
        }
    }
}

/* IQ4_XS: IQ4_NL levels in super-blocks, a 6-bit scale (stored +32) per 32
 * values: low nibble in scales_l, top 2 bits in scales_h bits 2ib. */
void quant_dequant_iq4_xs(const void *src, float *dst, size_t n)
{
    const block_iq4_xs *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++) {
        const float d = quant_fp16_to_f32(b->d);
        const uint8_t *qs = b->qs;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 16, dst += 32) {
            const int ls = ((b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) | ((b->scales_h >> (2 * ib)) & 3) << 4;
            const float dl = d * (float)(ls - 32);
            for (int j = 0; j < 16; j++) {
                dst[j] = dl * (float)quant_kvalues_iq4nl[qs[j] & 0x0f];
                dst[j + 16] = dl * (float)quant_kvalues_iq4nl[qs[j] >> 4];
            }
        }
    }
}

/* MXFP4 (OCP microscaling): E2M1 codes with a shared E8M0 exponent. The
 * table holds the E2M1 values doubled, so the scale is 2^(e-127) / 2 =
 * 2^(e-128), built as float bits (e < 2 gives subnormals). */
static float e8m0_half(uint8_t e)
{
    const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

void quant_dequant_mxfp4(const void *src, float *dst, size_t n)
{
    const block_mxfp4 *b = src;
    for (size_t i = 0; i < n / QK_MXFP4; i++, b++, dst += QK_MXFP4) {
        const float d = e8m0_half(b->e);
        for (int j = 0; j < QK_MXFP4 / 2; j++) {
            dst[j] = (float)quant_kvalues_mxfp4[b->qs[j] & 0x0f] * d;
            dst[j + QK_MXFP4 / 2] = (float)quant_kvalues_mxfp4[b->qs[j] >> 4] * d;
        }
    }
}

/* TQ1_0: 5 trits per byte in qs (values 0..2, minus 1), stored as the
 * fixed-point fraction ceil(t * 256 / 243); trit n of byte q is the top
 * "digit" of q * 3^n: ((uint8_t)(q * 3^n) * 3) >> 8. qs[0..31] hold values
 * 32n + m, qs[32..47] values 160 + 16n + m, and qh 4 trits each (values
 * 240 + 4n + j). */
static inline float tq1_trit(uint8_t q, int n, float d)
{
    static const uint8_t pow3[5] = { 1, 3, 9, 27, 81 };
    const uint8_t v = (uint8_t)(q * pow3[n]);
    const int t = (v * 3) >> 8;
    return (float)(t - 1) * d;
}

void quant_dequant_tq1_0(const void *src, float *dst, size_t n)
{
    const block_tq1_0 *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++) {
        const float d = quant_fp16_to_f32(b->d);
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 32; m++) *dst++ = tq1_trit(b->qs[m], k, d);
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 16; m++) *dst++ = tq1_trit(b->qs[32 + m], k, d);
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 4; j++) *dst++ = tq1_trit(b->qh[j], k, d);
    }
}

/* TQ2_0: 2-bit codes (0..3, minus 1; 3 decodes to 2), value
 * 128h + 32l + m in bits 2l of qs[32h + m]. */
void quant_dequant_tq2_0(const void *src, float *dst, size_t n)
{
    const block_tq2_0 *b = src;
    for (size_t i = 0; i < n / QK_K; i++, b++) {
        const float d = quant_fp16_to_f32(b->d);
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 4; l++)
                for (int m = 0; m < 32; m++) {
                    const int q = (b->qs[32 * h + m] >> (2 * l)) & 3;
                    *dst++ = (float)(q - 1) * d;
                }
    }
}

QUANT_REF_DOT(iq2_xxs, QK_K, sizeof(block_iq2_xxs))
QUANT_REF_DOT(iq2_xs, QK_K, sizeof(block_iq2_xs))
QUANT_REF_DOT(iq2_s, QK_K, sizeof(block_iq2_s))
QUANT_REF_DOT(iq3_xxs, QK_K, sizeof(block_iq3_xxs))
QUANT_REF_DOT(iq3_s, QK_K, sizeof(block_iq3_s))
QUANT_REF_DOT(iq1_s, QK_K, sizeof(block_iq1_s))
QUANT_REF_DOT(iq1_m, QK_K, sizeof(block_iq1_m))
QUANT_REF_DOT(iq4_nl, QK4_NL, sizeof(block_iq4_nl))
QUANT_REF_DOT(iq4_xs, QK_K, sizeof(block_iq4_xs))
QUANT_REF_DOT(mxfp4, QK_MXFP4, sizeof(block_mxfp4))
QUANT_REF_DOT(tq1_0, QK_K, sizeof(block_tq1_0))
QUANT_REF_DOT(tq2_0, QK_K, sizeof(block_tq2_0))
