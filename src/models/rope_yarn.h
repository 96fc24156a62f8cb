/* rope_yarn.h — rotary position embedding with context-extension scaling
 * (linear, and YaRN: Peng et al. 2023, "YaRN: Efficient Context Window
 * Extension of Large Language Models", arXiv:2309.00071), as a per-pair
 * frequency table built once at load from the GGUF `rope.*` keys.
 *
 * The table folds the scaling into one angle per pair and one magnitude,
 * so applying it per token is a cos/sin per pair and nothing else. Plain
 * RoPE (no scaling) is the same table with factor 1.
 */
#ifndef MF_ROPE_YARN_H
#define MF_ROPE_YARN_H

#include "gguf.h"

#include <stdint.h>

#define ROPE_MAX_PAIRS 512

typedef struct rope_params {
    int n_rot;               /* rotated dims per head (even, <= 2 * ROPE_MAX_PAIRS) */
    int neox;                /* 1: pairs (i, i + n_rot/2); 0: adjacent pairs (2i, 2i+1) */
    float freq_base;         /* rope.freq_base */
    float freq_scale;        /* 1 / rope.scaling.factor (1: no scaling) */
    int yarn;                /* rope.scaling.type "yarn": ramp and magnitude */
    uint32_t n_ctx_orig;     /* rope.scaling.original_context_length */
    float beta_fast, beta_slow;  /* YaRN correction range, in rotations */
    float attn_factor;       /* extra magnitude on cos/sin (1: none) */
} rope_params;

typedef struct rope_table {
    int n_rot, neox;
    float mscale;                    /* magnitude multiplied into cos and sin */
    double freq[ROPE_MAX_PAIRS];     /* angle per position of pair i */
} rope_table;

/* Reads <arch>.rope.{freq_base, scaling.type, scaling.factor,
 * scaling.original_context_length, scaling.yarn_beta_fast/slow,
 * scaling.attn_factor} into p (n_rot and neox as given). n_ctx_train is
 * the default original context. Unknown scaling types are an error. */
int rope_params_load(const gguf_file *f, const char *arch, int n_rot, int neox, uint32_t n_ctx_train,
                     rope_params *p, mf_error *e);

/* Builds the table (p validated by rope_params_load or the caller). */
void rope_table_init(rope_table *t, const rope_params *p);

/* Rotates the first n_rot dims of each of n_heads heads of head_dim at pos. */
void rope_table_apply(const rope_table *t, float *x, int n_heads, int head_dim, uint32_t pos);

#endif
