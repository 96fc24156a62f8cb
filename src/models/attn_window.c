/* attn_window.c — GQA self-attention with learned sinks and a sliding
 * window over a ring-buffer KV cache (gpt-oss).
 *
 * Sinks (gpt-oss model card, OpenAI 2025: "a learned bias in the
 * denominator of the softmax" per head; cf. Xiao et al. 2023, attention
 * sinks, arXiv:2309.17453): with scores s_j and the head's sink logit S,
 *   m = max(max_j s_j, S),  p_j = exp(s_j - m) / (sum_j exp(s_j - m) + exp(S - m))
 * and o = sum_j p_j v_j: the sink takes probability mass but has no value.
 *
 * Sliding window (gpt-oss model card: alternating banded attention with a
 * bandwidth of `attention.sliding_window` tokens): the query at p1 sees
 * keys p0 with p1 - p0 < window, itself included. Only those rows are
 * kept, in a ring of at least `window` rows; row p % n_rows is overwritten
 * by position p exactly when p - window is no longer seen by anyone later.
 *
 * Work is split over heads; each head's arithmetic is the same whichever
 * thread runs it, so results do not depend on the thread count.
 */
#include "models/attn_window.h"

#include <math.h>
#include <string.h>

static void add_bias(float *x, const mf_weight *b, size_t n)
{
    if (!b->name) return;
    const float *v = b->data;
    for (size_t i = 0; i < n; i++) x[i] += v[i];
}

typedef struct win_job {
    const attn_hparams *hp;
    const float *q, *sinks;
    kv_ring kv;
    uint32_t first, pos;     /* keys [first, pos] */
    float *att, *out;
} win_job;

static void win_task(void *ctx, int ith, int nth)
{
    const win_job *j = ctx;
    const int hd = j->hp->head_dim, group = j->hp->n_head / j->hp->n_head_kv;
    const size_t kv_dim = (size_t)j->hp->n_head_kv * hd;
    const int n_kv = (int)(j->pos - j->first + 1);
    size_t lo, hi;
    pool_split((size_t)j->hp->n_head, 1, ith, nth, &lo, &hi);
    for (size_t h = lo; h < hi; h++) {
        const float *q = j->q + h * (size_t)hd;
        const size_t kvo = (h / (size_t)group) * (size_t)hd;
        float *sc = j->att + h * (size_t)n_kv;
        float m = j->sinks ? j->sinks[h] : -INFINITY;
        for (int t = 0; t < n_kv; t++) {
            const float *k = j->kv.k + (size_t)((j->first + (uint32_t)t) % j->kv.n_rows) * kv_dim + kvo;
            float d = 0;
            for (int i = 0; i < hd; i++) d += q[i] * k[i];
            sc[t] = d * j->hp->scale;
            m = sc[t] > m ? sc[t] : m;
        }
        double sum = j->sinks ? exp((double)j->sinks[h] - m) : 0.0;
        for (int t = 0; t < n_kv; t++) {
            sc[t] = expf(sc[t] - m);
            sum += sc[t];
        }
        const float inv = (float)(1.0 / sum);
        float *o = j->out + h * (size_t)hd;
        memset(o, 0, sizeof(float) * (size_t)hd);
        for (int t = 0; t < n_kv; t++) {
            const float *v = j->kv.v + (size_t)((j->first + (uint32_t)t) % j->kv.n_rows) * kv_dim + kvo;
            const float p = sc[t] * inv;
            for (int i = 0; i < hd; i++) o[i] += p * v[i];
        }
    }
}

/* Everything between the projections and W_o for the token at pos:
 * biases, q/k norms, RoPE, its k and v into row pos % kv.n_rows, then its
 * attention over the keys it sees into out. Writing before attending is
 * what lets a ring of window rows serve: the row overwritten is the one
 * position pos - n_rows, which pos no longer sees. */
static void attend_one(mf_pool *pool, const attn_hparams *hp, const attn_opts *o, const attn_weights *w, kv_ring kv,
                       uint32_t pos, float *q, float *k, float *v, float *att, float *out)
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
    if (o->rope) {
        rope_table_apply(o->rope, q, hp->n_head, hd, pos);
        rope_table_apply(o->rope, k, hp->n_head_kv, hd, pos);
    }
    const size_t row = pos % kv.n_rows;
    memcpy(kv.k + row * kv_dim, k, kv_dim * sizeof(float));
    memcpy(kv.v + row * kv_dim, v, kv_dim * sizeof(float));
    win_job j = { hp, q, o->sinks, kv, attn_first_key(o->window, pos), pos, att, out };
    if (pos - j.first + 1 < 64 || pool_threads(pool) == 1) win_task(&j, 0, 1);
    else pool_run(pool, win_task, &j);
}

void attn_forward_window(mf_pool *pool, const attn_hparams *hp, const attn_opts *o, const attn_weights *w, kv_ring kv,
                         uint32_t pos, const float *h, attn_scratch *s, float *out)
{
    const mf_weight *ws[3] = { &w->wq, &w->wk, &w->wv };
    float *ys[3] = { s->q, s->k, s->v };
    op_matvec_multi(pool, 3, ws, h, ys);
    attend_one(pool, hp, o, w, kv, pos, s->q, s->k, s->v, s->att, s->out);
    op_matvec(pool, &w->wo, s->out, out);
    add_bias(out, &w->bo, w->wo.ne[1]);
}

void attn_forward_window_batch(mf_pool *pool, const attn_hparams *hp, const attn_opts *o, const attn_weights *w,
                               kv_ring kv, uint32_t pos0, int T, const float *H, size_t h_stride, attn_batch_scratch *s,
                               float *OUT, size_t out_stride)
{
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim, kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const mf_weight *wq[1] = { &w->wq }, *wkv[2] = { &w->wk, &w->wv }, *wo[1] = { &w->wo };
    float *yq[1] = { s->q }, *ykv[2] = { s->k, s->v }, *yo[1] = { OUT };
    op_matmul(pool, 1, wq, H, h_stride, T, yq, q_dim, s->qbuf, s->qcap);
    op_matmul(pool, 2, wkv, H, h_stride, T, ykv, kv_dim, s->qbuf, s->qcap);
    /* token by token in position order: token t writes its row, which may
     * be the ring row of a key token t - 1 still saw, only after t - 1 is
     * done with it */
    for (int t = 0; t < T; t++)
        attend_one(pool, hp, o, w, kv, pos0 + (uint32_t)t, s->q + (size_t)t * q_dim, s->k + (size_t)t * kv_dim,
                   s->v + (size_t)t * kv_dim, s->att, s->o + (size_t)t * q_dim);
    op_matmul(pool, 1, wo, s->o, q_dim, T, yo, out_stride, s->qbuf, s->qcap);
    for (int t = 0; t < T; t++) add_bias(OUT + (size_t)t * out_stride, &w->bo, w->wo.ne[1]);
}
