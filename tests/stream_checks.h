/* stream_checks.h — architecture-independent checks of a golden MoE model
 * that go beyond golden.h's logits comparison: streaming through a minimal
 * expert cache gives bit-identical logits, and `moeflash inspect`'s memory
 * plan agrees with the golden tensor listing. */
#ifndef MF_TEST_STREAM_CHECKS_H
#define MF_TEST_STREAM_CHECKS_H

#include "t.h"

/* golden/<model>.gguf, prompts a and b plus their 15 reference greedy
 * tokens, evaluated all-cached and with a cache just above the minimum
 * (K experts): every logit must be bit-identical, and the small cache must
 * really have streamed (more misses than there are experts). A budget one
 * byte below the minimum is refused with the minimum named. */
void stream_check_small_cache(t_state *t_, const char *model);

/* `moeflash inspect`'s memory plan of golden/<model>.gguf: resident +
 * routed-expert bytes = total, each equal to the sums over the golden
 * <model>.tensors.txt listing (routed experts: the `_exps.` tensors), and
 * n_moe_layers MoE layers. */
void stream_check_inspect(t_state *t_, const char *model, unsigned n_moe_layers);

/* Writes a copy of golden/<model>.gguf into the test's scratch directory
 * as <tag>.gguf without the metadata key drop_key and the tensor
 * drop_tensor (either may be NULL), and returns its path (static buffer),
 * or NULL after recording a failure. */
const char *stream_copy_without(t_state *t_, const char *model, const char *tag, const char *drop_key,
                                const char *drop_tensor);

/* Opens path and expects the open to fail with a message containing every
 * one of the NULL-terminated strings. */
void stream_expect_open_error(t_state *t_, const char *path, ...);

#endif
