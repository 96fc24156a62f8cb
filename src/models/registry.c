/* registry.c — architecture name -> implementation. */
#include "models/arch.h"

#include <string.h>

extern const arch_ops arch_qwen3moe;

static const arch_ops *const archs[] = { &arch_qwen3moe };

const arch_ops *arch_find(const char *arch)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (!strcmp(archs[i]->name, arch)) return archs[i];
    return NULL;
}

const char *arch_supported(void) { return "qwen3moe"; }

int arch_open_store(arch_ctx *ctx, uint32_t n_layer, uint32_t n_expert, uint32_t n_used, mf_error *e)
{
    store_params p = { ctx->cache_bytes };
    ctx->store = store_open(ctx->f, n_layer, n_expert, n_used, &p, e);
    return ctx->store ? 0 : -1;
}
