/* inspect.c — `moeflash inspect`: what a GGUF file holds and what running
 * it costs. The memory plan splits tensors into resident (everything but
 * the routed experts) and streamed (the `*_exps` tensors, one slice per
 * expert), and states the bytes one token reads when all K experts of
 * every layer miss the cache. It needs no architecture support, so it
 * works on any GGUF. An untied token embedding has a line of its own: it
 * stays on disk and each token reads its one row. */
#include "moeflash.h"
#include "gguf.h"
#include "quant/quant.h"
#include "engine/plan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_value(FILE *out, const gguf_value *v, int depth)
{
    switch (v->type) {
    case GGUF_STRING: {
        uint64_t n = v->v.s.n > 120 ? 120 : v->v.s.n;
        fputc('"', out);
        for (uint64_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)v->v.s.p[i];
            if (c == '\n') fputs("\\n", out);
            else if (c < 32) fprintf(out, "\\x%02x", c);
            else fputc(c, out);
        }
        fputs(v->v.s.n > n ? "\"..." : "\"", out);
        break;
    }
    case GGUF_ARRAY: {
        fprintf(out, "[%s x %" PRIu64 "]", gguf_vtype_name(v->v.arr.etype), v->v.arr.n);
        uint64_t n = v->v.arr.n < 8 ? v->v.arr.n : 8;
        if (depth > 1) break;
        fputs(" [", out);
        for (uint64_t i = 0; i < n; i++) {
            if (i) fputs(", ", out);
            if (v->v.arr.items) print_value(out, &v->v.arr.items[i], depth + 1);
            else if (v->v.arr.etype == GGUF_FLOAT32 || v->v.arr.etype == GGUF_FLOAT64) fprintf(out, "%g", gguf_arr_float(v, i));
            else fprintf(out, "%" PRId64, gguf_arr_int(v, i));
        }
        fputs(v->v.arr.n > n ? ", ...]" : "]", out);
        break;
    }
    case GGUF_FLOAT32: case GGUF_FLOAT64: fprintf(out, "%g", v->v.f); break;
    case GGUF_BOOL: fputs(v->v.u ? "true" : "false", out); break;
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64: fprintf(out, "%" PRId64, v->v.i); break;
    default: fprintf(out, "%" PRIu64, v->v.u); break;
    }
}

static void human(char *buf, size_t n, uint64_t bytes)
{
    if (bytes >= (1ull << 30)) snprintf(buf, n, "%.2f GiB", (double)bytes / (1ull << 30));
    else if (bytes >= (1ull << 20)) snprintf(buf, n, "%.2f MiB", (double)bytes / (1ull << 20));
    else if (bytes >= 1024) snprintf(buf, n, "%.1f KiB", (double)bytes / 1024);
    else snprintf(buf, n, "%" PRIu64 " B", bytes);
}

int mf_inspect(const char *path, FILE *out, mf_error *e)
{
    gguf_file *f = gguf_open(path, e);
    if (!f) return -1;
    mf_plan plan;
    if (plan_compute(f, &plan, e)) { gguf_close(f); return -1; }
    char b1[32], b2[32], b3[32];

    fprintf(out, "file:          %s (%d part%s, GGUF v%u, alignment %u)\n", path, f->n_parts, f->n_parts > 1 ? "s" : "",
            f->version, f->alignment);
    fprintf(out, "architecture:  %s\n", plan.arch);
    fprintf(out, "\nhyperparameters (%s.*):\n", plan.arch);
    size_t al = strlen(plan.arch);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        if (strncmp(kv->key, plan.arch, al) != 0 || kv->key[al] != '.') continue;
        fprintf(out, "  %-44s ", kv->key + al + 1);
        print_value(out, &kv->val, 0);
        fputc('\n', out);
    }
    fprintf(out, "\nother metadata:\n");
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        if (strncmp(kv->key, plan.arch, al) == 0 && kv->key[al] == '.') continue;
        fprintf(out, "  %-44s ", kv->key);
        print_value(out, &kv->val, 0);
        fputc('\n', out);
    }
    fprintf(out, "\ntensors (%" PRIu64 "):\n", f->n_tensors);
    fprintf(out, "  %-36s %-8s %-24s %-4s %14s %12s\n", "name", "type", "shape", "file", "offset", "bytes");
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char shape[64] = "";
        for (uint32_t d = 0; d < t->n_dims; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%" PRIu64, d ? "," : "", t->ne[d]);
        fprintf(out, "  %-36s %-8s %-24s %-4d %14" PRIu64 " %12" PRIu64 "\n", t->name, quant_type(t->type)->name, shape,
                t->file, t->offset, t->nbytes);
    }
    fprintf(out, "\nmemory plan:\n");
    human(b1, sizeof b1, plan.total_bytes);
    fprintf(out, "  total tensor bytes:      %" PRIu64 " (%s)\n", plan.total_bytes, b1);
    human(b1, sizeof b1, plan.resident_bytes);
    fprintf(out, "  resident (non-expert):   %" PRIu64 " (%s), %.2f bits per weight\n", plan.resident_bytes, b1,
            plan.resident_elems ? 8.0 * (double)plan.resident_bytes / (double)plan.resident_elems : 0.0);
    if (plan.row_read_bytes) {
        human(b1, sizeof b1, plan.row_read_bytes);
        fprintf(out, "  token embedding, read per token: %" PRIu64 " (%s) on disk\n", plan.row_read_bytes, b1);
    }
    human(b1, sizeof b1, plan.expert_bytes);
    fprintf(out, "  routed experts:          %" PRIu64 " (%s) in %u MoE layers x %u experts, %u used per token, "
                 "%.2f bits per weight\n",
            plan.expert_bytes, b1, plan.n_moe_layers, plan.n_expert, plan.n_expert_used,
            plan.expert_elems ? 8.0 * (double)plan.expert_bytes / (double)plan.expert_elems : 0.0);
    /* per type, so mixed files show what their experts are made of */
    uint64_t type_bytes[MF_TYPE_COUNT] = { 0 }, type_elems[MF_TYPE_COUNT] = { 0 };
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const char *rest;
        const gguf_tensor *t = &f->tensors[i];
        if (plan_tensor_layer(t->name, &rest) >= 0 && plan_is_expert_tensor(rest) && t->type < MF_TYPE_COUNT) {
            type_bytes[t->type] += t->nbytes;
            type_elems[t->type] += t->nelem;
        }
    }
    for (int ty = 0; ty < MF_TYPE_COUNT; ty++)
        if (type_bytes[ty])
            fprintf(out, "    experts in %-8s %14" PRIu64 " bytes, %5.2f bits per weight\n", quant_type((uint32_t)ty)->name,
                    type_bytes[ty], 8.0 * (double)type_bytes[ty] / (double)type_elems[ty]);
    if (plan.n_moe_layers) {
        fprintf(out, "  one expert, per layer:  ");
        for (uint32_t l = 0; l < plan.n_layer; l++)
            if (plan.expert_bytes_layer[l]) fprintf(out, " L%u %" PRIu64, l, plan.expert_bytes_layer[l]);
        fputc('\n', out);
        human(b2, sizeof b2, plan.max_expert_bytes);
        fprintf(out, "  largest expert:          %" PRIu64 " (%s)\n", plan.max_expert_bytes, b2);
        human(b3, sizeof b3, plan.miss_bytes_per_token);
        fprintf(out, "  read per token, all K miss: %" PRIu64 " (%s)\n", plan.miss_bytes_per_token, b3);
    }
    plan_free(&plan);
    gguf_close(f);
    return 0;
}
