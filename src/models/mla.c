/* mla.c — multi-head latent attention for one token (DeepSeek-V2,
 * arXiv:2405.04434 §2.1), as the GGUF lays it out (golden/README.md,
 * "Architecture: deepseek2"):
 *
 *   q        = q_b . RMSNorm(q_a . h)            (or q = attn_q . h without q LoRA)
 *   [c|k_pe] = kv_a . h,  c = RMSNorm(c)          k_pe shared by all heads
 *   q_pe, k_pe rotated: GPT-J pairs (2i, 2i+1), YaRN frequencies
 *   head j:  score_t = (q_nope_j . W_UK_j c_t + q_pe_j . k_pe_t) * kq_scale
 *            o_j     = W_UV_j sum_t softmax(score)_t c_t
 *   out      = attn_output . concat(o_j)
 *
 * Which form, when. The paper notes W_UK can be absorbed into the query
 * and W_UV into the output. Per head and token, with L = kv_lora, n = nope,
 * r = rope, v = value width and T cached positions, the multiply-adds are
 *   absorbed:      L (n + v)           + T (2L + r)
 *   decompressed:  T (L (n + v) + n + r + v)
 * because the decompressed form must rebuild K and V of every cached
 * position from the latent (only the latent is cached). The absorbed form
 * is cheaper for every T >= 2; at T = 1 (the first position) the
 * decompressed one saves 2L - n - v, under 1% (DeepSeek-V3: 768 of 131k),
 * which does not pay for a second code path. Batched prefill
 * (mla_forward_batch) batches the projections only and keeps the absorbed
 * attention token by token, so that its numbers are token by token's. (A
 * prefill of m queries sharing one decompression of the T rows would win
 * roughly when m (2L - n - v) > L (n + v), m > 170 for DeepSeek-V3, but
 * would round differently.)
 *
 * The latent c doubles as the value: llama.cpp caches the same row, so the
 * cache is kv_lora + rope floats per token and layer, nothing per head.
 */
#include "models/mla.h"
#include "quant/quant.h"

#include <math.h>
#include <string.h>

uint64_t mla_kv_bytes_per_token(uint64_t kv_lora, uint64_t n_rot, uint64_t n_layer, uint64_t bytes_per_value)
{
    return (kv_lora + n_rot) * bytes_per_value * n_layer;
}

/* YaRN (Peng et al. 2023, arXiv:2309.00071 §3.2-3.4) as ggml defines the
 * "correction dims": pair i is interpolated (angle / factor) below the
 * dims that turn beta_slow times in n_ctx_orig, extrapolated above those
 * that turn beta_fast times, with a linear ramp between. The attention
 * temperature sqrt(1/t) = 0.1 ln(factor) + 1 (§3.4); DeepSeek scales it by
 * mscale_all_dim and applies its square to the softmax (the model card's
 * softmax_scale = mscale^2 / sqrt(q_head_dim)). The GGUF key
 * rope.scaling.yarn_log_multiplier holds 0.1 * mscale_all_dim, so
 * mscale = 1 + yarn_log_mul * ln(factor). With the multiplier present the
 * rotation itself keeps magnitude 1 (DeepSeek configs have mscale ==
 * mscale_all_dim, whose ratio scales cos/sin); without it the rotation
 * carries the plain YaRN temperature, as llama.cpp does. */
static double corr_dim(int n_rot, uint32_t n_ctx_orig, double beta, double base)
{
    return n_rot * log((double)n_ctx_orig / (beta * 2.0 * M_PI)) / (2.0 * log(base));
}

void mla_rope_init(mla_hparams *hp, float freq_base, float factor, uint32_t n_ctx_orig, float beta_fast,
                   float beta_slow, float yarn_log_mul)
{
    const int n = hp->n_rot;
    const int yarn = factor > 1.0f;
    double lo = 0, hi = 0;
    if (yarn) {
        lo = floor(corr_dim(n, n_ctx_orig, beta_fast, freq_base));
        hi = ceil(corr_dim(n, n_ctx_orig, beta_slow, freq_base));
        if (lo < 0) lo = 0;
        if (hi > n - 1) hi = n - 1;
    }
    for (int i = 0; i < n / 2; i++) {
        double ext = pow((double)freq_base, -2.0 * i / n);   /* RoFormer theta_i */
        double f = ext;
        if (yarn) {
            double y = (i - lo) / (hi - lo > 0.001 ? hi - lo : 0.001);
            double ramp = 1.0 - (y < 0 ? 0 : y > 1 ? 1 : y);  /* 1: extrapolate */
            f = ext / factor * (1.0 - ramp) + ext * ramp;
        }
        hp->rope_freq[i] = f;
    }
    const double ln_s = yarn ? log((double)factor) : 0.0;
    hp->rope_mag = yarn && yarn_log_mul == 0.0f ? (float)(1.0 + 0.1 * ln_s) : 1.0f;
    const double mscale = hp->rope_mag * (1.0 + (double)yarn_log_mul * ln_s);
    hp->kq_scale = (float)(mscale * mscale / sqrt((double)(hp->n_nope + hp->n_rot)));
}

/* Rotates n_vec vectors of n_rot dims (stride floats apart) by position pos. */
static void rope(const mla_hparams *hp, float *x, int n_vec, size_t stride, uint32_t pos)
{
    for (int i = 0; i < hp->n_rot / 2; i++) {
        const double theta = (double)pos * hp->rope_freq[i];
        const float c = (float)cos(theta) * hp->rope_mag, s = (float)sin(theta) * hp->rope_mag;
        for (int v = 0; v < n_vec; v++) {
            float *p = x + (size_t)v * stride + 2 * i;
            const float x0 = p[0], x1 = p[1];
            p[0] = x0 * c - x1 * s;
            p[1] = x0 * s + x1 * c;
        }
    }
}

size_t mla_scratch_floats(const mla_hparams *hp)
{
    const size_t H = (size_t)hp->n_head, L = (size_t)hp->kv_lora, R = (size_t)hp->n_rot;
    return (size_t)hp->q_lora + H * ((size_t)hp->n_nope + R) + (L + R) + H * (L + R) + H * L + H * (size_t)hp->n_v;
}

void mla_scratch_bind(const mla_hparams *hp, mla_scratch *s, float *p)
{
    const size_t H = (size_t)hp->n_head, L = (size_t)hp->kv_lora, R = (size_t)hp->n_rot;
    s->qa = p, p += hp->q_lora;
    s->q = p, p += H * ((size_t)hp->n_nope + R);
    s->kva = p, p += L + R;
    s->qcat = p, p += H * (L + R);
    s->olat = p, p += H * L;
    s->o = p;
}

/* y_j = W_j x_j for every head j of a 3-D weight {ne0, rows, n_head}: the
 * per-head products of the absorbed form, one pool dispatch for all heads.
 * Each row is one dot product, so the result does not depend on threads. */
typedef struct heads_job {
    const mf_weight *w;
    const float *x;
    size_t x_stride;
    float *y;
    size_t y_stride;
    uint64_t rows, total;
} heads_job;

static void heads_rows(const heads_job *j, uint64_t lo, uint64_t hi)
{
    quant_dot_fn dot = quant_type(j->w->type)->dot;
    for (uint64_t i = lo; i < hi; i++) {
        const uint64_t h = i / j->rows, r = i % j->rows;
        j->y[h * j->y_stride + r] = dot(weight_row(j->w, i), j->x + h * j->x_stride, j->w->ne[0]);
    }
}

static void heads_task(void *ctx, int ith, int nth)
{
    heads_job *j = ctx;
    size_t lo, hi;
    pool_split(j->total, 16, ith, nth, &lo, &hi);
    heads_rows(j, lo, hi);
}

static void heads_matvec(mf_pool *pool, const mf_weight *w, int n_head, const float *x, size_t x_stride, float *y,
                         size_t y_stride)
{
    heads_job j = { w, x, x_stride, y, y_stride, w->ne[1], w->ne[1] * (uint64_t)n_head };
    if (j.total < 64 || pool_threads(pool) == 1) heads_rows(&j, 0, j.total);
    else pool_run(pool, heads_task, &j);
}

/* Softmax attention of every head's absorbed query [W_UK^T q_nope | q_pe]
 * over the cached rows [c | k_pe]; the latent part of each row is also the
 * value. A task takes a range of heads and walks the cache once per pass
 * with its heads inside: the heads share one latent row (MQA), so a row is
 * read once per thread rather than once per head (DeepSeek-V3 has 128).
 * Each head's sums run in position order, whatever the split. */
typedef struct att_job {
    const mla_hparams *hp;
    const float *kv;
    int n_kv;
    mla_scratch *s;
} att_job;

static void att_task(void *ctx, int ith, int nth)
{
    const att_job *j = ctx;
    const mla_hparams *hp = j->hp;
    const size_t R = mla_kv_row(hp), L = (size_t)hp->kv_lora, T = (size_t)j->n_kv;
    size_t lo, hi;
    pool_split((size_t)hp->n_head, 1, ith, nth, &lo, &hi);
    for (size_t t = 0; t < T; t++) {
        const float *k = j->kv + t * R;
        for (size_t h = lo; h < hi; h++) {
            const float *q = j->s->qcat + h * R;
            float d = 0;
            for (size_t i = 0; i < R; i++) d += q[i] * k[i];
            j->s->att[h * T + t] = d * hp->kq_scale;
        }
    }
    for (size_t h = lo; h < hi; h++) {
        op_softmax(j->s->att + h * T, T);
        memset(j->s->olat + h * L, 0, sizeof(float) * L);
    }
    for (size_t t = 0; t < T; t++) {
        const float *c = j->kv + t * R;
        for (size_t h = lo; h < hi; h++) {
            float *o = j->s->olat + h * L;
            const float p = j->s->att[h * T + t];
            for (size_t i = 0; i < L; i++) o[i] += p * c[i];
        }
    }
}

/* Everything between the projections and attn_output for the token at
 * pos, whose q and [c | k_pe] are in s->q and s->kva: the latent norm,
 * RoPE, its latent row into the cache at pos, and its attention into s->o. */
static void attend_one(mf_pool *pool, const mla_hparams *hp, const mla_weights *w, float *kv, uint32_t pos,
                       mla_scratch *s)
{
    const int H = hp->n_head;
    const size_t L = (size_t)hp->kv_lora, QK = (size_t)hp->n_nope + (size_t)hp->n_rot, R = mla_kv_row(hp);
    op_rmsnorm(s->kva, s->kva, w->kv_a_norm.data, L, hp->eps);   /* c only; k_pe is not normalised */

    /* Decoupled RoPE on q_pe (after each head's nope dims) and k_pe. */
    rope(hp, s->q + hp->n_nope, H, QK, pos);
    rope(hp, s->kva + L, 1, R, pos);
    memcpy(kv + (size_t)pos * R, s->kva, R * sizeof(float));

    /* Absorbed query: qcat_j = [W_UK_j^T q_nope_j | q_pe_j]. */
    heads_matvec(pool, &w->k_b, H, s->q, QK, s->qcat, R);
    for (int j = 0; j < H; j++) memcpy(s->qcat + (size_t)j * R + L, s->q + (size_t)j * QK + hp->n_nope, sizeof(float) * (size_t)hp->n_rot);

    att_job aj = { hp, kv, (int)pos + 1, s };
    if (aj.n_kv < 64 || pool_threads(pool) == 1) att_task(&aj, 0, 1);
    else pool_run(pool, att_task, &aj);

    /* o_j = W_UV_j olat_j. */
    heads_matvec(pool, &w->v_b, H, s->olat, L, s->o, (size_t)hp->n_v);
}

void mla_forward(mf_pool *pool, const mla_hparams *hp, const mla_weights *w, float *kv, uint32_t pos,
                 const float *h, mla_scratch *s, float *out)
{
    /* Both down-projections read h: one dispatch. */
    const mf_weight *ws[2] = { hp->q_lora ? &w->q_a : &w->q, &w->kv_a };
    float *ys[2] = { hp->q_lora ? s->qa : s->q, s->kva };
    op_matvec_multi(pool, 2, ws, h, ys);
    if (hp->q_lora) {
        op_rmsnorm(s->qa, s->qa, w->q_a_norm.data, (size_t)hp->q_lora, hp->eps);
        op_matvec(pool, &w->q_b, s->qa, s->q);
    }
    attend_one(pool, hp, w, kv, pos, s);
    op_matvec(pool, &w->wo, s->o, out);
}

size_t mla_batch_floats(const mla_hparams *hp, int T)
{
    const size_t H = (size_t)hp->n_head, L = (size_t)hp->kv_lora, R = (size_t)hp->n_rot;
    const size_t row = (size_t)hp->q_lora + H * ((size_t)hp->n_nope + R) + (L + R) + H * (size_t)hp->n_v;
    return (size_t)T * row + H * (L + R) + H * L;
}

void mla_forward_batch(mf_pool *pool, const mla_hparams *hp, const mla_weights *w, float *kv, uint32_t pos0, int T,
                       const float *H, size_t h_stride, float *scratch, float *att, void *qbuf, size_t qcap, float *OUT,
                       size_t out_stride)
{
    const size_t NH = (size_t)hp->n_head, R = mla_kv_row(hp);
    const size_t QA = (size_t)hp->q_lora, Q = NH * ((size_t)hp->n_nope + (size_t)hp->n_rot), O = NH * (size_t)hp->n_v;
    float *qa = scratch, *q = qa + (size_t)T * QA, *kva = q + (size_t)T * Q, *o = kva + (size_t)T * R;
    mla_scratch one = { .qcat = o + (size_t)T * O, .att = att };
    one.olat = one.qcat + NH * R;
    /* the projections of all T tokens, as mla_forward's one by one */
    const mf_weight *wq[1] = { hp->q_lora ? &w->q_a : &w->q }, *wkv[1] = { &w->kv_a };
    float *yq[1] = { hp->q_lora ? qa : q }, *ykv[1] = { kva };
    op_matmul(pool, 1, wq, H, h_stride, T, yq, hp->q_lora ? QA : Q, qbuf, qcap);
    op_matmul(pool, 1, wkv, H, h_stride, T, ykv, R, qbuf, qcap);
    if (hp->q_lora) {
        for (int t = 0; t < T; t++) op_rmsnorm(qa + (size_t)t * QA, qa + (size_t)t * QA, w->q_a_norm.data, QA, hp->eps);
        const mf_weight *wb[1] = { &w->q_b };
        float *yb[1] = { q };
        op_matmul(pool, 1, wb, qa, QA, T, yb, Q, qbuf, qcap);
    }
    /* the latent cache is not a ring: token t's row is written before it
     * attends over rows 0..pos0 + t, as token by token */
    for (int t = 0; t < T; t++) {
        one.q = q + (size_t)t * Q;
        one.kva = kva + (size_t)t * R;
        one.o = o + (size_t)t * O;
        attend_one(pool, hp, w, kv, pos0 + (uint32_t)t, &one);
    }
    const mf_weight *wo[1] = { &w->wo };
    float *yo[1] = { OUT };
    op_matmul(pool, 1, wo, o, O, T, yo, out_stride, qbuf, qcap);
}
