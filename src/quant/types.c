/* types.c — the type table, derived from the block structs in quant.h, and
 * the half/bfloat16 conversions every format builds on. */
#include "quant/quant.h"
#include "quant/ref.h"

#include <string.h>
#include <strings.h>

#define T(id, nm, elems, bytes, dq, dt) [id] = { nm, elems, bytes, dq, dt }

static const quant_type_info quant_table[MF_TYPE_COUNT] = {
    T(MF_TYPE_F32, "f32", 1, sizeof(float), quant_dequant_f32, quant_dot_f32),
    T(MF_TYPE_F16, "f16", 1, sizeof(mf_fp16), quant_dequant_f16, quant_dot_f16),
    T(MF_TYPE_BF16, "bf16", 1, sizeof(mf_bf16), quant_dequant_bf16, quant_dot_bf16),
    T(MF_TYPE_Q4_0, "q4_0", QK4_0, sizeof(block_q4_0), quant_dequant_q4_0, quant_dot_q4_0),
    T(MF_TYPE_Q4_1, "q4_1", QK4_1, sizeof(block_q4_1), quant_dequant_q4_1, quant_dot_q4_1),
    T(MF_TYPE_Q5_0, "q5_0", QK5_0, sizeof(block_q5_0), quant_dequant_q5_0, quant_dot_q5_0),
    T(MF_TYPE_Q5_1, "q5_1", QK5_1, sizeof(block_q5_1), quant_dequant_q5_1, quant_dot_q5_1),
    T(MF_TYPE_Q8_0, "q8_0", QK8_0, sizeof(block_q8_0), quant_dequant_q8_0, quant_dot_q8_0),
    T(MF_TYPE_Q8_1, "q8_1", QK8_1, sizeof(block_q8_1), NULL, NULL),
    T(MF_TYPE_Q2_K, "q2_K", QK_K, sizeof(block_q2_K), quant_dequant_q2_K, quant_dot_q2_K),
    T(MF_TYPE_Q3_K, "q3_K", QK_K, sizeof(block_q3_K), quant_dequant_q3_K, quant_dot_q3_K),
    T(MF_TYPE_Q4_K, "q4_K", QK_K, sizeof(block_q4_K), quant_dequant_q4_K, quant_dot_q4_K),
    T(MF_TYPE_Q5_K, "q5_K", QK_K, sizeof(block_q5_K), quant_dequant_q5_K, quant_dot_q5_K),
    T(MF_TYPE_Q6_K, "q6_K", QK_K, sizeof(block_q6_K), quant_dequant_q6_K, quant_dot_q6_K),
    T(MF_TYPE_Q8_K, "q8_K", QK_K, sizeof(block_q8_K), quant_dequant_q8_K, quant_dot_q8_K),
    T(MF_TYPE_IQ2_XXS, "iq2_xxs", QK_K, sizeof(block_iq2_xxs), quant_dequant_iq2_xxs, quant_dot_iq2_xxs),
    T(MF_TYPE_IQ2_XS, "iq2_xs", QK_K, sizeof(block_iq2_xs), quant_dequant_iq2_xs, quant_dot_iq2_xs),
    T(MF_TYPE_IQ3_XXS, "iq3_xxs", QK_K, sizeof(block_iq3_xxs), quant_dequant_iq3_xxs, quant_dot_iq3_xxs),
    T(MF_TYPE_IQ1_S, "iq1_s", QK_K, sizeof(block_iq1_s), quant_dequant_iq1_s, quant_dot_iq1_s),
    T(MF_TYPE_IQ4_NL, "iq4_nl", QK4_NL, sizeof(block_iq4_nl), quant_dequant_iq4_nl, quant_dot_iq4_nl),
    T(MF_TYPE_IQ3_S, "iq3_s", QK_K, sizeof(block_iq3_s), quant_dequant_iq3_s, quant_dot_iq3_s),
    T(MF_TYPE_IQ2_S, "iq2_s", QK_K, sizeof(block_iq2_s), quant_dequant_iq2_s, quant_dot_iq2_s),
    T(MF_TYPE_IQ4_XS, "iq4_xs", QK_K, sizeof(block_iq4_xs), quant_dequant_iq4_xs, quant_dot_iq4_xs),
    T(MF_TYPE_I8, "i8", 1, 1, NULL, NULL),
    T(MF_TYPE_I16, "i16", 1, 2, NULL, NULL),
    T(MF_TYPE_I32, "i32", 1, 4, NULL, NULL),
    T(MF_TYPE_I64, "i64", 1, 8, NULL, NULL),
    T(MF_TYPE_F64, "f64", 1, 8, NULL, NULL),
    T(MF_TYPE_IQ1_M, "iq1_m", QK_K, sizeof(block_iq1_m), quant_dequant_iq1_m, quant_dot_iq1_m),
    T(MF_TYPE_TQ1_0, "tq1_0", QK_K, sizeof(block_tq1_0), quant_dequant_tq1_0, quant_dot_tq1_0),
    T(MF_TYPE_TQ2_0, "tq2_0", QK_K, sizeof(block_tq2_0), quant_dequant_tq2_0, quant_dot_tq2_0),
    T(MF_TYPE_MXFP4, "mxfp4", QK_MXFP4, sizeof(block_mxfp4), quant_dequant_mxfp4, quant_dot_mxfp4),
};

const quant_type_info *quant_type(uint32_t t)
{
    if (t >= MF_TYPE_COUNT || !quant_table[t].name) return NULL;
    return &quant_table[t];
}

int quant_type_by_name(const char *name)
{
    for (int t = 0; t < MF_TYPE_COUNT; t++)
        if (quant_table[t].name && strcasecmp(quant_table[t].name, name) == 0) return t;
    return -1;
}

size_t quant_row_bytes(uint32_t t, uint64_t n)
{
    const quant_type_info *ti = quant_type(t);
    if (!ti || n % ti->block_elems) return 0;
    return (size_t)(n / ti->block_elems) * ti->block_bytes;
}

/* IEEE half -> float, exact (every half is a float). */
float quant_fp16_to_f32(mf_fp16 h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* float -> IEEE half, round to nearest even; overflow to inf, NaN kept. */
mf_fp16 quant_f32_to_fp16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return (mf_fp16)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: inf */
        return (mf_fp16)(sign | 0x7c00);
    if (ax < 0x38800000u) { /* below the smallest normal half: subnormal or 0 */
        if (ax < 0x33000000u) return (mf_fp16)sign; /* < 2^-25 rounds to 0 */
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (mf_fp16)(sign | q);
    }
    uint32_t e = (ax >> 23) - 127 + 15, m = ax & 0x7fffff;
    uint32_t q = (e << 10) | (m >> 13), rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++;
    return (mf_fp16)(sign | q);
}

float quant_bf16_to_f32(mf_bf16 h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

mf_bf16 quant_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (mf_bf16)((x >> 16) | 64); /* quiet nan */
    return (mf_bf16)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}
