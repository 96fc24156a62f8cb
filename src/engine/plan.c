/* plan.c — resident vs streamed bytes of a model, from its tensor table.
 * Routed experts are the 3-D `blk.L.ffn_*_exps.weight` tensors (and their
 * per-expert biases); an untied token embedding is read a row per token
 * from the file; everything else is resident. */
#include "engine/plan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int plan_tensor_layer(const char *name, const char **rest)
{
    if (strncmp(name, "blk.", 4) != 0) return -1;
    char *end;
    long l = strtol(name + 4, &end, 10);
    if (end == name + 4 || *end != '.' || l < 0 || l > 100000) return -1;
    *rest = end + 1;
    return (int)l;
}

bool plan_is_expert_tensor(const char *rest)
{
    return strstr(rest, "_exps.") != NULL;
}

bool plan_is_row_read(const gguf_file *f, const gguf_tensor *t)
{
    return !strcmp(t->name, "token_embd.weight") && gguf_find_tensor(f, "output.weight") != NULL;
}

int plan_compute(const gguf_file *f, mf_plan *p, mf_error *e)
{
    memset(p, 0, sizeof *p);
    const char *arch;
    if (gguf_get_str(f, "general.architecture", &arch, e)) return -1;
    snprintf(p->arch, sizeof p->arch, "%s", arch);
    char key[128];
    uint32_t blocks = 0, nextn = 0;
    if (gguf_opt_u32(f, gguf_arch_key(key, sizeof key, arch, "block_count"), 0, &blocks, e) ||
        gguf_opt_u32(f, gguf_arch_key(key, sizeof key, arch, "nextn_predict_layers"), 0, &nextn, e) ||
        gguf_opt_u32(f, gguf_arch_key(key, sizeof key, arch, "expert_count"), 0, &p->n_expert, e) ||
        gguf_opt_u32(f, gguf_arch_key(key, sizeof key, arch, "expert_used_count"), 0, &p->n_expert_used, e))
        return -1;
    if (nextn > blocks) return mf_fail(e, "%s: nextn_predict_layers %u exceeds block_count %u", f->parts[0].path, nextn, blocks);
    p->n_layer = blocks - nextn;
    uint32_t n_slots = blocks + 1;
    p->expert_bytes_layer = calloc(n_slots, sizeof *p->expert_bytes_layer);
    if (!p->expert_bytes_layer) return mf_fail(e, "out of memory");
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        p->total_bytes += t->nbytes;
        const char *rest;
        int l = plan_tensor_layer(t->name, &rest);
        if (plan_is_row_read(f, t)) {
            p->row_read_bytes += t->nbytes;
        } else if (l >= 0 && plan_is_expert_tensor(rest) && p->n_expert && (uint32_t)l < blocks) {
            p->expert_bytes += t->nbytes;
            p->expert_elems += t->nelem;
            if ((uint32_t)l < p->n_layer) p->expert_bytes_layer[l] += t->nbytes / p->n_expert;
        } else if (l < 0 || (uint32_t)l < p->n_layer) {
            p->resident_bytes += t->nbytes;
            p->resident_elems += t->nelem;
        } else {
            p->expert_bytes += 0; /* next-token-prediction block: not run, not resident */
        }
    }
    for (uint32_t l = 0; l < p->n_layer; l++) {
        if (!p->expert_bytes_layer[l]) continue;
        p->n_moe_layers++;
        if (p->expert_bytes_layer[l] > p->max_expert_bytes) p->max_expert_bytes = p->expert_bytes_layer[l];
        p->miss_bytes_per_token += (uint64_t)p->n_expert_used * p->expert_bytes_layer[l];
    }
    return 0;
}

void plan_free(mf_plan *p)
{
    free(p->expert_bytes_layer);
    p->expert_bytes_layer = NULL;
}

uint64_t plan_working_bytes(const gguf_file *f, const mf_plan *p, int n_batch)
{
    char key[96];
    uint32_t n_embd = 0;
    mf_error ignore;
    snprintf(key, sizeof key, "%s.embedding_length", p->arch);
    if (gguf_get_u32(f, key, &n_embd, &ignore)) n_embd = 0;
    const uint64_t B = n_batch == 1 ? 1 : n_batch > 1 ? (uint64_t)n_batch : 256;
    return (64ull << 20) + B * n_embd * (p->n_expert_used + 8ull) * sizeof(float);
}
