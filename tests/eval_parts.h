/* eval_parts.h — evaluating a prompt in calls of given sizes, for the
 * tests that compare batched prefill with token-by-token evaluation. */
#ifndef MF_TEST_EVAL_PARTS_H
#define MF_TEST_EVAL_PARTS_H

#include "moeflash.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Default parameters with pass size n_batch (1: token by token), expert
 * cache bytes (0: auto) and prefetch on or off. */
mf_model_params eval_params(int n_batch, uint64_t cache, bool prefetch);

/* Evaluates ids[0..n) in calls of parts[0], parts[1], ... tokens (the last
 * part repeats until the end), all logits into out, stats into st (when
 * not NULL). 0, or -1 with e set. */
int eval_parts(const char *path, const mf_model_params *mp, const int32_t *ids, size_t n, const int *parts,
               size_t n_parts, float *out, mf_stats *st, mf_error *e);

#endif
