/* registry.c — architecture name -> implementation. */
#include "models/arch.h"
#include "engine/plan.h"

#include <string.h>

extern const arch_ops arch_qwen3moe;
extern const arch_ops arch_llama;

static const arch_ops *const archs[] = { &arch_qwen3moe, &arch_llama };

const arch_ops *arch_find(const char *arch)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (!strcmp(archs[i]->name, arch)) return archs[i];
    return NULL;
}

const char *arch_supported(void) { return "qwen3moe llama"; }

int arch_open_store(arch_ctx *ctx, uint32_t n_layer, uint32_t n_expert, uint32_t n_used, mf_error *e)
{
    store_params p = { ctx->cache_bytes, ctx->io, ctx->io_threads, ctx->policy };
    if (p.cache_bytes == 0) {
        /* --cache auto: what memory allows after the resident weights */
        mf_plan plan;
        if (plan_compute(ctx->f, &plan, e)) return -1;
        p.cache_bytes = store_auto_cache_bytes(plan.resident_bytes, 0);
        plan_free(&plan);
        if (p.cache_bytes == 0) p.cache_bytes = 1; /* store_open then names the minimum */
    }
    ctx->store = store_open(ctx->f, n_layer, n_expert, n_used, &p, e);
    return ctx->store ? 0 : -1;
}
