/* decoder.c — the hyperparameters, end tensors and output head the
 * decoder architectures share (see decoder.h). */
#include "models/decoder.h"

#include <string.h>

static int get_u32(const gguf_file *f, const char *arch, const char *name, uint32_t *out, mf_error *e)
{
    char k[128];
    return gguf_get_u32(f, gguf_arch_key(k, sizeof k, arch, name), out, e);
}

static int opt_u32(const gguf_file *f, const char *arch, const char *name, uint32_t def, uint32_t *out, mf_error *e)
{
    char k[128];
    return gguf_opt_u32(f, gguf_arch_key(k, sizeof k, arch, name), def, out, e);
}

int dec_check_experts(const char *path, const char *arch, uint32_t n_expert, uint32_t n_used, int dense_ok, mf_error *e)
{
    if (n_expert == 0 && dense_ok) return 0;
    if (n_expert == 0 || n_used == 0 || n_used > n_expert || n_used > 64)
        return mf_fail(e, "%s: %s: expert_used_count %u of expert_count %u: expected 1..min(count, 64)", path, arch,
                       n_used, n_expert);
    return 0;
}

/* The sizes every layer and buffer is made of: > 0, and small enough that
 * products of them cannot overflow (a corrupt key would otherwise size a
 * huge allocation). */
static int check_dims(const char *path, const char *arch, unsigned flags, const dec_dims *d, uint32_t vlen,
                      mf_error *e)
{
    const char *ff_key = flags & DEC_DENSE_OK ? "feed_forward_length" : "expert_feed_forward_length";
    if (d->n_layer == 0 || d->n_embd == 0 || d->n_head == 0 || d->head_dim == 0 || d->n_ff == 0)
        return mf_fail(e, "%s: %s: layers %u, embedding_length %u, head_count %u, key_length %u, %s %u: expected "
                          "all > 0", path, arch, d->n_layer, d->n_embd, d->n_head, d->head_dim, ff_key, d->n_ff);
    if (d->n_layer > 4096 || d->n_head > 4096 || d->head_dim > 4096 || d->n_embd > (1u << 20) ||
        d->n_ff > (1u << 22) || d->n_expert > 4096)
        return mf_fail(e, "%s: %s: implausible hyperparameters (layers %u, heads %u, head_dim %u, embd %u, ff %u, "
                          "experts %u)", path, arch, d->n_layer, d->n_head, d->head_dim, d->n_embd, d->n_ff, d->n_expert);
    if (vlen != d->head_dim)
        return mf_fail(e, "%s: %s: value_length %u differs from key_length %u (not supported)", path, arch, vlen,
                       d->head_dim);
    if (d->n_head_kv == 0 || d->n_head % d->n_head_kv)
        return mf_fail(e, "%s: %s: head_count %u is not a multiple of head_count_kv %u", path, arch, d->n_head,
                       d->n_head_kv);
    const uint32_t rot_min = flags & DEC_ROPE_REQUIRED ? 2 : 0;
    if (d->n_rot < rot_min || d->n_rot > d->head_dim || d->n_rot % 2)
        return mf_fail(e, "%s: %s: rope.dimension_count %u: expected an even number in %u..%u", path, arch, d->n_rot,
                       rot_min, d->head_dim);
    return dec_check_experts(path, arch, d->n_expert, d->n_used, flags & DEC_DENSE_OK, e);
}

int dec_dims_load(const gguf_file *f, const char *arch, unsigned flags, dec_dims *d, mf_error *e)
{
    const char *path = f->parts[0].path;
    const int dense_ok = flags & DEC_DENSE_OK;
    uint32_t n_block, n_nextn = 0, vlen;
    memset(d, 0, sizeof *d);
    if (get_u32(f, arch, "block_count", &n_block, e) || get_u32(f, arch, "embedding_length", &d->n_embd, e) ||
        get_u32(f, arch, "attention.head_count", &d->n_head, e))
        return -1;
    if (dense_ok ? get_u32(f, arch, "feed_forward_length", &d->n_ff, e) ||
                       opt_u32(f, arch, "expert_count", 0, &d->n_expert, e) ||
                       opt_u32(f, arch, "expert_used_count", 0, &d->n_used, e)
                 : get_u32(f, arch, "expert_count", &d->n_expert, e) ||
                       get_u32(f, arch, "expert_used_count", &d->n_used, e) ||
                       get_u32(f, arch, "expert_feed_forward_length", &d->n_ff, e))
        return -1;
    if (opt_u32(f, arch, "context_length", 4096, &d->n_ctx_train, e) ||
        opt_u32(f, arch, "attention.head_count_kv", d->n_head, &d->n_head_kv, e) ||
        opt_u32(f, arch, "attention.key_length", d->n_head ? d->n_embd / d->n_head : 0, &d->head_dim, e) ||
        opt_u32(f, arch, "attention.value_length", d->head_dim, &vlen, e) ||
        opt_u32(f, arch, "rope.dimension_count", d->head_dim, &d->n_rot, e) ||
        ((flags & DEC_NEXTN) && opt_u32(f, arch, "nextn_predict_layers", 0, &n_nextn, e)))
        return -1;
    if (n_nextn && n_nextn >= n_block)
        return mf_fail(e, "%s: %s: nextn_predict_layers %u leaves no layer of block_count %u", path, arch, n_nextn,
                       n_block);
    d->n_layer = n_block - n_nextn;   /* the MTP blocks come after the trunk and are not run */
    if (check_dims(path, arch, flags, d, vlen, e)) return -1;
    if (d->n_expert == 0) d->n_used = 0;
    return 0;
}

int dec_bind_ends(binder *b, uint64_t n_embd, mf_weight *tok_embd, mf_weight *output_norm, mf_weight *output,
                  uint32_t *n_vocab)
{
    if (bind_weight(b, tok_embd, 1, 2, (uint64_t[]){ n_embd, 0 }, "token_embd.weight")) return -1;
    if (tok_embd->ne[1] == 0 || tok_embd->ne[1] > (1u << 24)) {
        b->failed = 1;
        return mf_fail(b->e, "%s: tensor token_embd.weight: implausible vocabulary of %llu rows", b->f->parts[0].path,
                       (unsigned long long)tok_embd->ne[1]);
    }
    *n_vocab = (uint32_t)tok_embd->ne[1];
    if (bind_weight(b, output_norm, 1, 1, (uint64_t[]){ n_embd }, "output_norm.weight") ||
        bind_check_f32(b, output_norm) ||
        bind_weight(b, output, 0, 2, (uint64_t[]){ n_embd, *n_vocab }, "output.weight"))
        return -1;
    if (!output->name) *output = *tok_embd; /* tied embeddings */
    return 0;
}

void dec_logits(mf_pool *pool, const mf_weight *norm, const mf_weight *output, float eps, const float *x, float *h,
                float *logits)
{
    op_rmsnorm(h, x, norm->data, output->ne[0], eps);
    op_matvec(pool, output, h, logits);
}

void dec_logits_rows(mf_pool *pool, const mf_weight *norm, const mf_weight *output, float eps, const float *X, float *h,
                     int c, int T, int n, float *all, float *last)
{
    const size_t E = output->ne[0], V = output->ne[1];
    for (int t = 0; t < T; t++) {
        float *out = all ? all + (size_t)(c + t) * V : (c + t + 1 == n ? last : NULL);
        if (!out) continue;
        dec_logits(pool, norm, output, eps, X + (size_t)t * E, h, out);
        if (all && last && c + t + 1 == n) memcpy(last, out, V * sizeof(float));
    }
}
