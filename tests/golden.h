/* golden.h — comparing the engine with llama.cpp's outputs in
 * ../shared/golden, by the rules of its README (Thresholds). */
#ifndef MF_TEST_GOLDEN_H
#define MF_TEST_GOLDEN_H

#include "t.h"

typedef struct golden_limits {
    double max_abs;        /* > 0: max |dlogit| (F32 rows) */
    double kl_median, kl_mean, kl_max;  /* > 0: KL limits (quantized rows) */
    double top1_gap;       /* top-1 must match where the reference gap >= this */
    int top1_tenth;        /* at most ceil(n/10) top-1 mismatches overall */
    double tie_margin;     /* greedy checked up to the first gap below this */
} golden_limits;

extern const golden_limits GOLDEN_F32, GOLDEN_Q8_0, GOLDEN_Q4_K_M;

typedef struct golden_report {
    double max_abs, kl_median, kl_mean, kl_max;
    int top1_match, rows;
    int greedy_checked, greedy_ok;
} golden_report;

/* Runs model (a path under shared/) on prompt p ("a", "b"): prompt logits,
 * greedy tokens and teacher-forced logits, with n_threads; checks all of it
 * against the limits and prints one summary line. Returns 0 when run. */
int golden_check(t_state *t_, const char *dir, const char *model, const char *p, const golden_limits *lim,
                 int n_threads, golden_report *prompt_rep, golden_report *tf_rep);

/* Bit-identical prompt logits with 1 and 2 threads. */
void golden_threads_agree(t_state *t_, const char *dir, const char *model, const char *p);

#endif
