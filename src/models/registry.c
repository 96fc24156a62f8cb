/* registry.c — architecture name -> implementation. */
#include "models/arch.h"

#include <string.h>

extern const arch_ops arch_qwen3moe;
extern const arch_ops arch_gptoss;
extern const arch_ops arch_glm4moe;
extern const arch_ops arch_deepseek2;
extern const arch_ops arch_llama;
extern const arch_ops arch_qwen35moe;

static const arch_ops *const archs[] = { &arch_qwen3moe, &arch_gptoss, &arch_glm4moe, &arch_deepseek2, &arch_llama, &arch_qwen35moe };

const arch_ops *arch_find(const char *arch)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (!strcmp(archs[i]->name, arch)) return archs[i];
    return NULL;
}

const char *arch_supported(void) { return "qwen3moe gpt-oss glm4moe deepseek2 llama qwen35moe"; }

int arch_experts_used(const arch_ctx *ctx, uint32_t *n_used, mf_error *e)
{
    const int k = ctx->experts_used;
    if (k == 0) return 0;
    const char *path = ctx->f->parts[0].path;
    if (*n_used == 0) return mf_fail(e, "%s: --experts-used %d: the model has no routed experts", path, k);
    if (k < 1 || (uint32_t)k > *n_used)
        return mf_fail(e, "%s: --experts-used %d: expected 1..%u (the model routes each token to %u experts, "
                          "expert_used_count)", path, k, *n_used, *n_used);
    *n_used = (uint32_t)k;
    return 0;
}

int arch_open_store(arch_ctx *ctx, uint32_t n_layer, uint32_t n_expert, uint32_t n_used, mf_error *e)
{
    store_params p = { .cache_bytes = ctx->cache_bytes, .io = ctx->io, .io_threads = ctx->io_threads, .policy = ctx->policy };
    ctx->store = store_open(ctx->f, n_layer, n_expert, n_used, &p, e);
    return ctx->store ? 0 : -1;
}
