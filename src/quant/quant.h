/* quant.h — ggml's tensor data types, declared once.
 *
 * Each quantized block is one struct with a static_assert on its size (the
 * layouts are those of ggml's ggml-common.h, which GGUF files store on disk).
 * The type table in types.c is derived from these structs. The scalar
 * reference (de)quantization and dot products in quant/ are the
 * specification every SIMD kernel must match. Nothing here allocates or knows
 * about layers.
 */
#ifndef MF_QUANT_H
#define MF_QUANT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

/* Type ids as stored in GGUF tensor infos (ggml_type). Gaps are ids ggml
 * has retired; files using them are rejected. */
typedef enum mf_type {
    MF_TYPE_F32 = 0,
    MF_TYPE_F16 = 1,
    MF_TYPE_Q4_0 = 2,
    MF_TYPE_Q4_1 = 3,
    MF_TYPE_Q5_0 = 6,
    MF_TYPE_Q5_1 = 7,
    MF_TYPE_Q8_0 = 8,
    MF_TYPE_Q8_1 = 9,
    MF_TYPE_Q2_K = 10,
    MF_TYPE_Q3_K = 11,
    MF_TYPE_Q4_K = 12,
    MF_TYPE_Q5_K = 13,
    MF_TYPE_Q6_K = 14,
    MF_TYPE_Q8_K = 15,
    MF_TYPE_IQ2_XXS = 16,
    MF_TYPE_IQ2_XS = 17,
    MF_TYPE_IQ3_XXS = 18,
    MF_TYPE_IQ1_S = 19,
    MF_TYPE_IQ4_NL = 20,
    MF_TYPE_IQ3_S = 21,
    MF_TYPE_IQ2_S = 22,
    MF_TYPE_IQ4_XS = 23,
    MF_TYPE_I8 = 24,
    MF_TYPE_I16 = 25,
    MF_TYPE_I32 = 26,
    MF_TYPE_I64 = 27,
    MF_TYPE_F64 = 28,
    MF_TYPE_IQ1_M = 29,
    MF_TYPE_BF16 = 30,
    MF_TYPE_TQ1_0 = 34,
    MF_TYPE_TQ2_0 = 35,
    MF_TYPE_MXFP4 = 39,
    MF_TYPE_COUNT = 40
} mf_type;

typedef uint16_t mf_fp16;   /* IEEE half, stored as bits */
typedef uint16_t mf_bf16;   /* bfloat16, stored as bits */

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK4_NL 32
#define QK_MXFP4 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef struct { mf_fp16 d; uint8_t qs[QK4_0 / 2]; } block_q4_0;
typedef struct { mf_fp16 d, m; uint8_t qs[QK4_1 / 2]; } block_q4_1;
typedef struct { mf_fp16 d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;
typedef struct { mf_fp16 d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1;
typedef struct { mf_fp16 d; int8_t qs[QK8_0]; } block_q8_0;
typedef struct { mf_fp16 d, s; int8_t qs[QK8_1]; } block_q8_1;

/* K-quants: super-blocks of 256 values. */
typedef struct {
    uint8_t scales[QK_K / 16];  /* 4-bit scale | 4-bit min per 16 values */
    uint8_t qs[QK_K / 4];       /* 2-bit quants */
    mf_fp16 d, dmin;
} block_q2_K;
typedef struct {
    uint8_t hmask[QK_K / 8];    /* high bit of the 3-bit quants */
    uint8_t qs[QK_K / 4];       /* low 2 bits */
    uint8_t scales[12];         /* 16 6-bit scales */
    mf_fp16 d;
} block_q3_K;
typedef struct {
    mf_fp16 d, dmin;
    uint8_t scales[K_SCALE_SIZE];  /* 8 6-bit scales and 8 6-bit mins */
    uint8_t qs[QK_K / 2];
} block_q4_K;
typedef struct {
    mf_fp16 d, dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K;
typedef struct {
    uint8_t ql[QK_K / 2];       /* low 4 bits */
    uint8_t qh[QK_K / 4];       /* high 2 bits */
    int8_t scales[QK_K / 16];
    mf_fp16 d;
} block_q6_K;
typedef struct {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];   /* sums of each 16 qs */
} block_q8_K;

/* i-quants (lattice codebooks; tables in quant/iq_tables.*) */
typedef struct { mf_fp16 d; uint16_t qs[QK_K / 8]; } block_iq2_xxs;
typedef struct { mf_fp16 d; uint16_t qs[QK_K / 8]; uint8_t scales[QK_K / 32]; } block_iq2_xs;
typedef struct { mf_fp16 d; uint8_t qs[QK_K / 4]; uint8_t qh[QK_K / 32]; uint8_t scales[QK_K / 32]; } block_iq2_s;
typedef struct { mf_fp16 d; uint8_t qs[3 * QK_K / 8]; } block_iq3_xxs;
typedef struct {
    mf_fp16 d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t signs[QK_K / 8];
    uint8_t scales[QK_K / 64];
} block_iq3_s;
typedef struct { mf_fp16 d; uint8_t qs[QK_K / 8]; uint16_t qh[QK_K / 32]; } block_iq1_s;
typedef struct { uint8_t qs[QK_K / 8]; uint8_t qh[QK_K / 16]; uint8_t scales[QK_K / 32]; } block_iq1_m;
typedef struct { mf_fp16 d; uint8_t qs[QK4_NL / 2]; } block_iq4_nl;
typedef struct { mf_fp16 d; uint16_t scales_h; uint8_t scales_l[QK_K / 64]; uint8_t qs[QK_K / 2]; } block_iq4_xs;
typedef struct { uint8_t qs[(QK_K - 4 * QK_K / 64) / 5]; uint8_t qh[QK_K / 64]; mf_fp16 d; } block_tq1_0;
typedef struct { uint8_t qs[QK_K / 4]; mf_fp16 d; } block_tq2_0;
typedef struct { uint8_t e; uint8_t qs[QK_MXFP4 / 2]; } block_mxfp4;

static_assert(sizeof(block_q4_0) == 18, "block_q4_0");
static_assert(sizeof(block_q4_1) == 20, "block_q4_1");
static_assert(sizeof(block_q5_0) == 22, "block_q5_0");
static_assert(sizeof(block_q5_1) == 24, "block_q5_1");
static_assert(sizeof(block_q8_0) == 34, "block_q8_0");
static_assert(sizeof(block_q8_1) == 36, "block_q8_1");
static_assert(sizeof(block_q2_K) == 84, "block_q2_K");
static_assert(sizeof(block_q3_K) == 110, "block_q3_K");
static_assert(sizeof(block_q4_K) == 144, "block_q4_K");
static_assert(sizeof(block_q5_K) == 176, "block_q5_K");
static_assert(sizeof(block_q6_K) == 210, "block_q6_K");
static_assert(sizeof(block_q8_K) == 292, "block_q8_K");
static_assert(sizeof(block_iq2_xxs) == 66, "block_iq2_xxs");
static_assert(sizeof(block_iq2_xs) == 74, "block_iq2_xs");
static_assert(sizeof(block_iq2_s) == 82, "block_iq2_s");
static_assert(sizeof(block_iq3_xxs) == 98, "block_iq3_xxs");
static_assert(sizeof(block_iq3_s) == 110, "block_iq3_s");
static_assert(sizeof(block_iq1_s) == 50, "block_iq1_s");
static_assert(sizeof(block_iq1_m) == 56, "block_iq1_m");
static_assert(sizeof(block_iq4_nl) == 18, "block_iq4_nl");
static_assert(sizeof(block_iq4_xs) == 136, "block_iq4_xs");
static_assert(sizeof(block_tq1_0) == 54, "block_tq1_0");
static_assert(sizeof(block_tq2_0) == 66, "block_tq2_0");
static_assert(sizeof(block_mxfp4) == 17, "block_mxfp4");

/* Dequantize n values (n a multiple of the block size) from src to dst. */
typedef void (*quant_dequant_fn)(const void *src, float *dst, size_t n);
/* Dot product of one quantized row of n values with float activations x. */
typedef float (*quant_dot_fn)(const void *row, const float *x, size_t n);

typedef struct quant_type_info {
    const char *name;         /* as ggml spells it: "f32", "q4_K", ... */
    uint32_t block_elems;     /* values per block */
    uint32_t block_bytes;     /* bytes per block */
    quant_dequant_fn dequant; /* NULL: not supported for compute */
    quant_dot_fn dot;         /* NULL: not supported for compute */
} quant_type_info;

/* The table entry of type t, or NULL when t is not a type we know. */
const quant_type_info *quant_type(uint32_t t);

/* The type named name (ggml spelling, case-insensitive), or -1. */
int quant_type_by_name(const char *name);

/* Bytes of a row of n values of type t; 0 if n is not a multiple of the
 * block size or t is unknown. */
size_t quant_row_bytes(uint32_t t, uint64_t n);

/* Half and bfloat16 conversions (exact, round-to-nearest-even on the way
 * down), as ggml's scalar ggml_compute_fp16_to_fp32 and friends. */
float quant_fp16_to_f32(mf_fp16 h);
mf_fp16 quant_f32_to_fp16(float f);
float quant_bf16_to_f32(mf_bf16 h);
mf_bf16 quant_f32_to_bf16(float f);

#endif
