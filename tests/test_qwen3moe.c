/* test_qwen3moe.c — qwen3moe against llama.cpp (golden/README.md). */
#include "golden.h"

static void run(t_state *t_, const char *model, const golden_limits *lim)
{
    golden_report pr, tf;
    for (int i = 0; i < 2; i++) {
        const char *p = i ? "b" : "a";
        golden_check(t_, "golden", model, p, lim, 2, &pr, &tf);
    }
}

TEST(qwen3moe_f32_golden) { run(t_, "qwen3moe-f32", &GOLDEN_F32); }
TEST(qwen3moe_q8_0_golden) { run(t_, "qwen3moe-q8_0", &GOLDEN_Q8_0); }
TEST(qwen3moe_q4_k_m_golden) { run(t_, "qwen3moe-q4_k_m", &GOLDEN_Q4_K_M); }

TEST(qwen3moe_threads_agree)
{
    golden_threads_agree(t_, "golden", "qwen3moe-f32", "a");
    golden_threads_agree(t_, "golden", "qwen3moe-q4_k_m", "a");
}

/* Low-bit files (golden/README.md "Low-bit quantized files"): the Q4_K_M
 * row applies to all four. */
TEST(qwen3moe_iq4_xs_golden) { run(t_, "qwen3moe-iq4_xs", &GOLDEN_Q4_K_M); }
TEST(qwen3moe_q2_k_golden) { run(t_, "qwen3moe-q2_k", &GOLDEN_Q4_K_M); }
TEST(qwen3moe_iq2_xxs_golden) { run(t_, "qwen3moe-iq2_xxs", &GOLDEN_Q4_K_M); }
TEST(qwen3moe_iq1_s_golden) { run(t_, "qwen3moe-iq1_s", &GOLDEN_Q4_K_M); }
