/* ops.c — scalar float blocks and the pool dispatch of matvec. The dot
 * kernels come from the type table (quant/), so SIMD work replaces them
 * there without touching this file. */
#include "models/ops.h"
#include "quant/quant.h"

#include <math.h>
#include <string.h>

/* Below this many rows a matvec runs on the caller alone: waking the pool
 * costs more than it saves. */
#define OP_PAR_MIN_ROWS 64

typedef struct mv_job {
    int n;
    const mf_weight *const *w;
    const float *x;
    float *const *y;
    uint64_t total;   /* rows over all weights */
} mv_job;

static void mv_rows(const mf_weight *w, const float *x, float *y, uint64_t r0, uint64_t r1)
{
    quant_dot_fn dot = quant_type(w->type)->dot;
    const uint8_t *row = (const uint8_t *)w->data + r0 * w->row_bytes;
    for (uint64_t r = r0; r < r1; r++, row += w->row_bytes) y[r] = dot(row, x, w->ne[0]);
}

static void mv_task(void *ctx, int ith, int nth)
{
    mv_job *j = ctx;
    size_t lo, hi;
    pool_split(j->total, 16, ith, nth, &lo, &hi);
    uint64_t base = 0;
    for (int i = 0; i < j->n; i++) {
        uint64_t rows = j->w[i]->ne[1];
        uint64_t a = lo > base ? lo - base : 0, b = hi - base < rows ? hi - base : rows;
        if (hi > base && a < rows && a < b) mv_rows(j->w[i], j->x, j->y[i], a, b);
        base += rows;
    }
}

void op_matvec_multi(mf_pool *pool, int n, const mf_weight *const *w, const float *x, float *const *y)
{
    mv_job j = { n, w, x, y, 0 };
    for (int i = 0; i < n; i++) j.total += w[i]->ne[1];
    if (j.total < OP_PAR_MIN_ROWS || pool_threads(pool) == 1) {
        for (int i = 0; i < n; i++) mv_rows(w[i], x, y[i], 0, w[i]->ne[1]);
        return;
    }
    pool_run(pool, mv_task, &j);
}

void op_matvec(mf_pool *pool, const mf_weight *w, const float *x, float *y)
{
    op_matvec_multi(pool, 1, &w, x, &y);
}

void op_get_row(const mf_weight *w, uint64_t id, float *out)
{
    quant_type(w->type)->dequant(weight_row(w, id), out, w->ne[0]);
}

void op_rmsnorm(float *out, const float *x, const float *g, size_t n, float eps)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (size_t i = 0; i < n; i++) out[i] = x[i] * scale * (g ? g[i] : 1.0f);
}

static void rope(float *x, int n_heads, int head_dim, int n_rot, int pos, float base, int neox)
{
    int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        double theta = (double)pos * pow((double)base, -2.0 * i / n_rot);
        float c = (float)cos(theta), s = (float)sin(theta);
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)h * head_dim;
            int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

void op_rope_neox(float *x, int n_heads, int head_dim, int n_rot, int pos, float freq_base)
{
    rope(x, n_heads, head_dim, n_rot, pos, freq_base, 1);
}

void op_rope_norm(float *x, int n_heads, int head_dim, int n_rot, int pos, float freq_base)
{
    rope(x, n_heads, head_dim, n_rot, pos, freq_base, 0);
}

void op_softmax(float *x, size_t n)
{
    float m = -INFINITY;
    for (size_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}

typedef struct att_job {
    const float *q, *k, *v;
    size_t kv_stride;
    int n_kv, n_head, n_head_kv, head_dim;
    float scale;
    float *scratch, *out;
} att_job;

static void att_task(void *ctx, int ith, int nth)
{
    att_job *j = ctx;
    size_t lo, hi;
    pool_split((size_t)j->n_head, 1, ith, nth, &lo, &hi);
    int group = j->n_head / j->n_head_kv;
    for (size_t h = lo; h < hi; h++) {
        const float *q = j->q + h * (size_t)j->head_dim;
        size_t kvo = (h / (size_t)group) * (size_t)j->head_dim;
        float *s = j->scratch + h * (size_t)j->n_kv;
        for (int t = 0; t < j->n_kv; t++) {
            const float *k = j->k + (size_t)t * j->kv_stride + kvo;
            float d = 0;
            for (int i = 0; i < j->head_dim; i++) d += q[i] * k[i];
            s[t] = d * j->scale;
        }
        op_softmax(s, (size_t)j->n_kv);
        float *o = j->out + h * (size_t)j->head_dim;
        memset(o, 0, sizeof(float) * (size_t)j->head_dim);
        for (int t = 0; t < j->n_kv; t++) {
            const float *v = j->v + (size_t)t * j->kv_stride + kvo;
            float p = s[t];
            for (int i = 0; i < j->head_dim; i++) o[i] += p * v[i];
        }
    }
}

void op_attention(mf_pool *pool, const float *q, const float *k, const float *v, size_t kv_stride, int n_kv,
                  int n_head, int n_head_kv, int head_dim, float scale, float *att_scratch, float *out)
{
    att_job j = { q, k, v, kv_stride, n_kv, n_head, n_head_kv, head_dim, scale, att_scratch, out };
    if (n_kv < 64 || pool_threads(pool) == 1) att_task(&j, 0, 1);
    else pool_run(pool, att_task, &j);
}
