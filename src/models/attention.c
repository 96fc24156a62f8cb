/* attention.c — GQA self-attention for one token (Vaswani et al. 2017;
 * grouped KV heads, Ainslie et al. 2023), with the optional pieces the
 * supported families use: q/k/v/o biases, per-head RMSNorm of q and k
 * before RoPE (Qwen3, GLM-4.5), partial rotary dims. */
#include "models/blocks.h"

#include <math.h>
#include <string.h>

static void add_bias(float *x, const mf_weight *b, size_t n)
{
    if (!b->name) return;
    const float *v = b->data;
    for (size_t i = 0; i < n; i++) x[i] += v[i];
}

void attn_forward(mf_pool *pool, const attn_hparams *hp, const attn_weights *w, kv_layer kv, uint32_t pos,
                  const float *h, attn_scratch *s, float *out)
{
    const int hd = hp->head_dim;
    const size_t q_dim = (size_t)hp->n_head * hd, kv_dim = (size_t)hp->n_head_kv * hd;
    const mf_weight *ws[3] = { &w->wq, &w->wk, &w->wv };
    float *ys[3] = { s->q, s->k, s->v };
    op_matvec_multi(pool, 3, ws, h, ys);
    add_bias(s->q, &w->bq, q_dim);
    add_bias(s->k, &w->bk, kv_dim);
    add_bias(s->v, &w->bv, kv_dim);
    if (w->q_norm.name)
        for (int i = 0; i < hp->n_head; i++) op_rmsnorm(s->q + (size_t)i * hd, s->q + (size_t)i * hd, w->q_norm.data, (size_t)hd, hp->norm_eps);
    if (w->k_norm.name)
        for (int i = 0; i < hp->n_head_kv; i++) op_rmsnorm(s->k + (size_t)i * hd, s->k + (size_t)i * hd, w->k_norm.data, (size_t)hd, hp->norm_eps);
    if (hp->n_rot > 0) {
        void (*rope)(float *, int, int, int, int, float) = hp->rope_neox ? op_rope_neox : op_rope_norm;
        rope(s->q, hp->n_head, hd, hp->n_rot, (int)pos, hp->freq_base);
        rope(s->k, hp->n_head_kv, hd, hp->n_rot, (int)pos, hp->freq_base);
    }
    memcpy(kv.k + (size_t)pos * kv_dim, s->k, kv_dim * sizeof(float));
    memcpy(kv.v + (size_t)pos * kv_dim, s->v, kv_dim * sizeof(float));
    op_attention(pool, s->q, kv.k, kv.v, kv_dim, (int)pos + 1, hp->n_head, hp->n_head_kv, hd, hp->scale, s->att, s->out);
    op_matvec(pool, &w->wo, s->out, out);
    add_bias(out, &w->bo, w->wo.ne[1]);
}
