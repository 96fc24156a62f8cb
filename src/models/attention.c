/* attention.c — GQA self-attention (Vaswani et al. 2017;
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

size_t attn_scratch_floats(const attn_hparams *hp)
{
    const size_t Q = (size_t)hp->n_head * hp->head_dim, KV = (size_t)hp->n_head_kv * hp->head_dim;
    return 2 * Q + 2 * KV;
}

float *attn_scratch_lay(attn_scratch *s, const attn_hparams *hp, float *p)
{
    const size_t Q = (size_t)hp->n_head * hp->head_dim, KV = (size_t)hp->n_head_kv * hp->head_dim;
    s->q = p, p += Q;
    s->k = p, p += KV;
    s->v = p, p += KV;
    s->out = p, p += Q;
    return p;
}

/* Biases, q/k norms, RoPE at pos, and the token's k and v into the cache:
 * everything between the projections and the attention, for one token. */
static void prepare_one(const attn_hparams *hp, const attn_weights *w, kv_layer kv, uint32_t pos, float *q, float *k,
                        float *v)
{
    const int hd = hp->head_dim;
    const size_t q_dim = (size_t)hp->n_head * hd, kv_dim = (size_t)hp->n_head_kv * hd;
    add_bias(q, &w->bq, q_dim);
    add_bias(k, &w->bk, kv_dim);
    add_bias(v, &w->bv, kv_dim);
    if (w->q_norm.name)
        for (int i = 0; i < hp->n_head; i++) op_rmsnorm(q + (size_t)i * hd, q + (size_t)i * hd, w->q_norm.data, (size_t)hd, hp->norm_eps);
    if (w->k_norm.name)
        for (int i = 0; i < hp->n_head_kv; i++) op_rmsnorm(k + (size_t)i * hd, k + (size_t)i * hd, w->k_norm.data, (size_t)hd, hp->norm_eps);
    if (hp->n_rot > 0) {
        void (*rope)(float *, int, int, int, int, float) = hp->rope_neox ? op_rope_neox : op_rope_norm;
        rope(q, hp->n_head, hd, hp->n_rot, (int)pos, hp->freq_base);
        rope(k, hp->n_head_kv, hd, hp->n_rot, (int)pos, hp->freq_base);
    }
    memcpy(kv.k + (size_t)pos * kv_dim, k, kv_dim * sizeof(float));
    memcpy(kv.v + (size_t)pos * kv_dim, v, kv_dim * sizeof(float));
}

void attn_forward(mf_pool *pool, const attn_hparams *hp, const attn_weights *w, kv_layer kv, uint32_t pos,
                  const float *h, attn_scratch *s, float *out)
{
    const mf_weight *ws[3] = { &w->wq, &w->wk, &w->wv };
    float *ys[3] = { s->q, s->k, s->v };
    op_matvec_multi(pool, 3, ws, h, ys);
    prepare_one(hp, w, kv, pos, s->q, s->k, s->v);
    op_attention(pool, s->q, kv.k, kv.v, (size_t)hp->n_head_kv * hp->head_dim, (int)pos + 1, hp->n_head, hp->n_head_kv,
                 hp->head_dim, hp->scale, s->att, s->out);
    op_matvec(pool, &w->wo, s->out, out);
    add_bias(out, &w->bo, w->wo.ne[1]);
}

void attn_forward_batch(mf_pool *pool, const attn_hparams *hp, const attn_weights *w, kv_layer kv, uint32_t pos0,
                        int T, const float *H, size_t h_stride, attn_batch_scratch *s, float *OUT, size_t out_stride)
{
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim, kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    /* the projections of all T tokens (q rows q_dim apart, k and v kv_dim) */
    const mf_weight *wq[1] = { &w->wq }, *wkv[2] = { &w->wk, &w->wv };
    float *yq[1] = { s->q }, *ykv[2] = { s->k, s->v };
    op_matmul(pool, 1, wq, H, h_stride, T, yq, q_dim, s->qbuf, s->qcap);
    op_matmul(pool, 2, wkv, H, h_stride, T, ykv, kv_dim, s->qbuf, s->qcap);
    /* every token's k and v into the cache first; causal attention then
     * lets token t see positions up to its own only */
    for (int t = 0; t < T; t++)
        prepare_one(hp, w, kv, pos0 + (uint32_t)t, s->q + (size_t)t * q_dim, s->k + (size_t)t * kv_dim,
                    s->v + (size_t)t * kv_dim);
    op_attention_causal(pool, s->q, q_dim, kv.k, kv.v, kv_dim, pos0, T, hp->n_head, hp->n_head_kv, hp->head_dim,
                        hp->scale, s->att, s->o, q_dim);
    const mf_weight *wo[1] = { &w->wo };
    float *yo[1] = { OUT };
    op_matmul(pool, 1, wo, s->o, q_dim, T, yo, out_stride, s->qbuf, s->qcap);
    for (int t = 0; t < T; t++) add_bias(OUT + (size_t)t * out_stride, &w->bo, w->wo.ne[1]);
}
