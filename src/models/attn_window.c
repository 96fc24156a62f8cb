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

void attn_forward_window(mf_pool *pool, const attn_hparams *hp, const attn_opts *o, const attn_weights *w, kv_ring kv,
                         uint32_t pos, const float *h, attn_scratch *s, float *out)
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
    if (o->rope) {
        rope_table_apply(o->rope, s->q, hp->n_head, hd, pos);
        rope_table_apply(o->rope, s->k, hp->n_head_kv, hd, pos);
    }
    const size_t row = pos % kv.n_rows;
    memcpy(kv.k + row * kv_dim, s->k, kv_dim * sizeof(float));
    memcpy(kv.v + row * kv_dim, s->v, kv_dim * sizeof(float));
    win_job j = { hp, s->q, o->sinks, kv, attn_first_key(o->window, pos), pos, s->att, s->out };
    if (pos - j.first + 1 < 64 || pool_threads(pool) == 1) win_task(&j, 0, 1);
    else pool_run(pool, win_task, &j);
    op_matvec(pool, &w->wo, s->out, out);
    add_bias(out, &w->bo, w->wo.ne[1]);
}
