/* iq_tables.h — the constant tables of the low-bit formats: lattice
 * codebooks of the i-quants, their sign table, and the non-linear value
 * tables of IQ4_NL/IQ4_XS and MXFP4. The values are data of the formats as
 * ggml defines them in ggml/src/ggml-common.h; they live in iq_tables.c and
 * iq1_tables.c. Grid entries pack 8 (uint64) or 4 (uint32) byte values,
 * value j in bits 8j..8j+7; use quant_grid_byte() to read one. */
#ifndef MF_QUANT_IQ_TABLES_H
#define MF_QUANT_IQ_TABLES_H

#include <stdint.h>

/* 7 stored sign bits -> 8 sign bits with even parity (bit j set: value j is
 * negative). */
extern const uint8_t quant_ksigns_iq2xs[128];

/* IQ4_NL / IQ4_XS non-linear 4-bit levels. */
extern const int8_t quant_kvalues_iq4nl[16];
/* MXFP4: E2M1 values, doubled (the E8M0 scale is halved to match). */
extern const int8_t quant_kvalues_mxfp4[16];

extern const uint64_t quant_iq2xxs_grid[256];  /* 8 magnitudes in {8,25,43} */
extern const uint64_t quant_iq2xs_grid[512];
extern const uint64_t quant_iq2s_grid[1024];
extern const uint32_t quant_iq3xxs_grid[256];  /* 4 magnitudes each */
extern const uint32_t quant_iq3s_grid[512];
extern const uint64_t quant_iq1s_grid[2048];   /* 8 int8 in {-1,0,1} each */

#define QUANT_IQ1S_DELTA 0.125f                /* IQ1S_DELTA = IQ1M_DELTA */

static inline uint8_t quant_grid_byte(uint64_t entry, int j)
{
    return (uint8_t)(entry >> (8 * j));
}

#endif
