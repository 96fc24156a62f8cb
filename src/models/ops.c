/* ops.c — scalar float blocks and the pool dispatch of matvec.
 *
 * A matvec quantizes its input once, before the dispatch, into the
 * activation type each weight's kernel asks for (quant/kernels.h: Q8_0 or
 * Q8_K blocks; float weights take x as it is), in the pool's scratch
 * buffer, so nothing is allocated per call; every thread then reads the
 * same quantized x. Rows are handed out by bytes of weight, so q/k/v or
 * experts of different types still get even shares, in chunks the threads
 * claim from a shared counter (op_chunks): a thread slowed by another
 * process on its core takes fewer chunks instead of holding the others up.
 * A row is always computed whole by one kernel: results do not depend on
 * the thread count or on which thread took a chunk. Without a pool, or for
 * an input too large for the scratch, the float reference kernels run on
 * the float x instead (slower, and the numbers of the float path). */
#include "models/ops.h"
#include "models/att_simd.h"
#include "quant/kernels.h"
#include "quant/quant.h"

#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

/* Below this many bytes of weights a matvec runs on the caller alone:
 * waking the pool costs more than it saves. */
#define OP_PAR_MIN_BYTES (32u << 10)

/* ---- chunks of rows, claimed by the threads ---- */

/* A job's weights, all n of them, are one range of bytes [0, total); chunk
 * c is [c * chunk, (c + 1) * chunk), and a row belongs to the chunk its
 * first byte lies in. */
typedef struct op_chunks {
    atomic_uint_fast64_t next;  /* the next chunk to claim */
    uint64_t total, chunk;
} op_chunks;

/* chunk = total / (threads * per_thread), at least min_bytes, so a slow
 * thread leaves ~1/per_thread of its share to the others. */
static void op_chunks_init(op_chunks *c, uint64_t total, int threads, int per_thread, uint64_t min_bytes)
{
    atomic_init(&c->next, 0);
    c->total = total;
    c->chunk = total / ((uint64_t)threads * (uint64_t)per_thread);
    if (c->chunk < min_bytes) c->chunk = min_bytes;
}

/* Claims the next chunk: its bytes [*lo, *hi); 0 when none is left. */
static int op_chunks_claim(op_chunks *c, uint64_t *lo, uint64_t *hi)
{
    const uint64_t k = atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed);
    if (k >= (c->total + c->chunk - 1) / c->chunk) return 0;
    *lo = k * c->chunk;
    *hi = *lo + c->chunk < c->total ? *lo + c->chunk : c->total;
    return 1;
}

/* The rows [*a, *b) of a weight of rows x rb bytes starting at byte base
 * whose first byte lies in [lo, hi); 0 when there are none. */
static int op_rows_in(uint64_t base, uint64_t rows, uint64_t rb, uint64_t lo, uint64_t hi, uint64_t *a, uint64_t *b)
{
    const uint64_t end = base + rows * rb;
    if (hi <= base || lo >= end) return 0;
    *a = lo > base ? (lo - base + rb - 1) / rb : 0;
    *b = (hi - base + rb - 1) / rb;
    if (*b > rows) *b = rows;
    return *a < *b;
}

typedef void (*rows_fn)(const void *job, int i, uint64_t a, uint64_t b);

/* Claims chunks of c until none is left and runs rows() on the rows of
 * each weight whose first byte lies in the chunk (the bytes of the n
 * weights laid end to end): a row is always computed whole, by one call. */
static void claim_rows(op_chunks *c, int n, const mf_weight *const *w, rows_fn rows, const void *job)
{
    uint64_t lo, hi;
    while (op_chunks_claim(c, &lo, &hi)) {
        uint64_t base = 0, a, b;
        for (int i = 0; i < n; i++) {
            const uint64_t rb = w[i]->row_bytes, nr = w[i]->ne[1];
            if (op_rows_in(base, nr, rb, lo, hi, &a, &b)) rows(job, i, a, b);
            base += nr * rb;
        }
    }
}

/* Chunks per thread, and the smallest chunk: the threads end at most one
 * chunk apart, ~1/32 of the job on average; a large matvec's chunks are
 * tens of microseconds at memory speed, the smallest (64 KiB) ~2 us, so
 * claiming one (an atomic on a shared line, ~0.1 us) costs little. */
#define OP_CHUNKS_PER_THREAD 16
#define OP_MIN_CHUNK_BYTES (64u << 10)

typedef struct mv_job {
    int n;
    const mf_weight *const *w;
    float *const *y;
    const quant_kernel_set *ks;   /* NULL: float reference kernels */
    const void *act[MF_TYPE_COUNT]; /* by activation type; [F32] is x */
    const void *const *each;      /* non-NULL: weight i's own input (quantized, or float without ks) */
    uint64_t total;               /* bytes over all weights */
    op_chunks chunks;
} mv_job;

static void mv_rows(const void *job, int i, uint64_t r0, uint64_t r1)
{
    const mv_job *j = job;
    const mf_weight *w = j->w[i];
    const uint8_t *row = (const uint8_t *)w->data + r0 * w->row_bytes;
    float *y = j->y[i];
    const size_t ne0 = (size_t)w->ne[0];
    if (!j->ks) {
        quant_dot_fn dot = quant_type(w->type)->dot;
        const float *x = j->each ? j->each[i] : j->act[MF_TYPE_F32];
        for (uint64_t r = r0; r < r1; r++, row += w->row_bytes) y[r] = dot(row, x, ne0);
        return;
    }
    const quant_kernel *k = &j->ks->k[w->type];
    const void *act = j->each ? j->each[i] : j->act[k->act_type];
    quant_vec_dot_fn dot = k->vec_dot;
    /* The rows in two streams, the first half and the second taken in
     * turn: with two sequential streams in flight the hardware prefetchers
     * keep more reads outstanding than with one (measured: a 1-thread
     * Q4_K matvec from RAM went from 24.8 to 27.8 GB/s on Zen 4). Each row
     * is still computed whole by one call, so results do not change. */
    const uint64_t half = (r1 - r0 + 1) / 2, rb = w->row_bytes;
    for (uint64_t i = 0; i < half; i++) {
        const uint64_t r = r0 + i, r2 = r0 + half + i;
        y[r] = dot(row + i * rb, act, ne0);
        if (r2 < r1) y[r2] = dot(row + (half + i) * rb, act, ne0);
    }
}

static void mv_task(void *ctx, int ith, int nth)
{
    mv_job *j = ctx;
    (void)ith, (void)nth;
    claim_rows(&j->chunks, j->n, j->w, mv_rows, j);
}

/* The job's rows on the pool, or on the caller alone when it is small. */
static void mv_run(mf_pool *pool, mv_job *j)
{
    const int nth = j->total < OP_PAR_MIN_BYTES ? 1 : pool_threads(pool);
    op_chunks_init(&j->chunks, j->total, nth, OP_CHUNKS_PER_THREAD, OP_MIN_CHUNK_BYTES);
    if (nth == 1) mv_task(j, 0, 1);
    else pool_run(pool, mv_task, j);
}

void op_matvec_multi(mf_pool *pool, int n, const mf_weight *const *w, const float *x, float *const *y)
{
    mv_job j = { .n = n, .w = w, .y = y };
    j.act[MF_TYPE_F32] = x;
    const quant_kernel_set *ks = quant_kernels();
    const size_t ne0 = n > 0 ? (size_t)w[0]->ne[0] : 0;
    size_t need[MF_TYPE_COUNT] = { 0 };
    for (int i = 0; i < n; i++) {
        assert(w[i]->ne[0] == ne0 && "weights of one matvec share their input");
        j.total += w[i]->ne[1] * w[i]->row_bytes;
        const uint32_t at = ks->k[w[i]->type].act_type;
        need[at] = quant_act_bytes(at, ne0);
    }
    /* The quantized inputs, one per activation type in use, 64-byte aligned. */
    size_t cap = 0, used = 0;
    uint8_t *scratch = pool_scratch(pool, &cap);
    for (uint32_t at = 0; at < MF_TYPE_COUNT; at++) used += (need[at] + 63) & ~(size_t)63;
    if (used && used <= cap) {
        for (uint32_t at = 0; at < MF_TYPE_COUNT; at++) {
            if (!need[at]) continue;
            ks->act[at](x, scratch, ne0);
            j.act[at] = scratch;
            scratch += (need[at] + 63) & ~(size_t)63;
        }
        j.ks = ks;
    } else {
        j.ks = used ? NULL : ks; /* all-float weights need no scratch */
    }
    mv_run(pool, &j);
}

/* The most weights op_matvec_each takes in one dispatch. */
#define OP_EACH_MAX 64

void op_matvec_each(mf_pool *pool, int n, const mf_weight *const *w, const float *const *x, float *const *y)
{
    const quant_kernel_set *ks = quant_kernels();
    size_t cap = 0, used = 0;
    uint8_t *scratch = pool_scratch(pool, &cap);
    for (int i = 0; i < n; i++) {
        const uint32_t at = ks->k[w[i]->type].act_type;
        if (at != MF_TYPE_F32) used += (quant_act_bytes(at, (size_t)w[i]->ne[0]) + 63) & ~(size_t)63;
    }
    if (n > OP_EACH_MAX || used > cap) { /* one by one, each as op_matvec does it */
        for (int i = 0; i < n; i++) op_matvec(pool, w[i], x[i], y[i]);
        return;
    }
    const void *each[OP_EACH_MAX];
    mv_job j = { .n = n, .w = w, .y = y, .ks = ks, .each = each };
    for (int i = 0; i < n; i++) {
        const uint32_t at = ks->k[w[i]->type].act_type;
        j.total += w[i]->ne[1] * w[i]->row_bytes;
        each[i] = x[i];
        if (at == MF_TYPE_F32) continue;
        ks->act[at](x[i], scratch, (size_t)w[i]->ne[0]);
        each[i] = scratch;
        scratch += (quant_act_bytes(at, (size_t)w[i]->ne[0]) + 63) & ~(size_t)63;
    }
    mv_run(pool, &j);
}

/* ---- T inputs at once ---- */

/* Tokens whose quantized inputs stay in L1 while the rows pass by: one
 * vec_dot_n call per row (8 Q8_K inputs of 2048 values are 18 KiB; 16
 * measured 5-10% slower, their inputs spilling to L2). */
#define MM_TOKEN_BLOCK QUANT_NTOK_MAX
/* The most weight bytes of one chunk of a matmul: half an L2. A chunk is
 * T times the work of a matvec's, so matmuls take more, smaller ones. */
#define MM_CHUNK_BYTES (256u << 10)
#define MM_CHUNKS_PER_THREAD 32
#define MM_MIN_CHUNK_BYTES (4u << 10)

typedef struct mm_job {
    int n, T;
    const mf_weight *const *w;
    float *const *Y;
    size_t y_stride;
    const quant_kernel_set *ks;
    const uint8_t *act[MF_TYPE_COUNT];  /* T quantized inputs per activation type */
    size_t act_stride[MF_TYPE_COUNT];
    uint64_t total;
    op_chunks chunks;
} mm_job;

/* Rows [a, b) of weight i against all T tokens, a block of tokens at a
 * time: the block's inputs stay in L1 and the rows in L2 while the next
 * block passes over them. */
static void mm_rows(const void *job, int i, uint64_t a, uint64_t b)
{
    const mm_job *j = job;
    const mf_weight *w = j->w[i];
    const uint64_t rb = w->row_bytes;
    const quant_kernel *k = &j->ks->k[w->type];
    const uint8_t *act = j->act[k->act_type];
    const size_t as = j->act_stride[k->act_type], ne0 = (size_t)w->ne[0];
    for (int t0 = 0; t0 < j->T; t0 += MM_TOKEN_BLOCK) {
        const int t1 = t0 + MM_TOKEN_BLOCK < j->T ? t0 + MM_TOKEN_BLOCK : j->T;
        const uint8_t *row = (const uint8_t *)w->data + a * rb;
        for (uint64_t r = a; r < b; r++, row += rb) {
            float out[MM_TOKEN_BLOCK];
            quant_dot_n(k, row, act + (size_t)t0 * as, as, ne0, t1 - t0, out);
            for (int t = t0; t < t1; t++) j->Y[i][(size_t)t * j->y_stride + r] = out[t - t0];
        }
    }
}

static void mm_task(void *ctx, int ith, int nth)
{
    mm_job *j = ctx;
    (void)ith, (void)nth;
    claim_rows(&j->chunks, j->n, j->w, mm_rows, j);
}

size_t op_matmul_qbytes(int n, const mf_weight *const *w, int T)
{
    const quant_kernel_set *ks = quant_kernels();
    size_t need[MF_TYPE_COUNT] = { 0 }, total = 0;
    for (int i = 0; i < n; i++) {
        uint32_t at = ks->k[w[i]->type].act_type;
        need[at] = at == MF_TYPE_F32 ? 0 : (quant_act_bytes(at, (size_t)w[i]->ne[0]) + 63) & ~(size_t)63;
    }
    for (uint32_t at = 0; at < MF_TYPE_COUNT; at++) total += need[at] * (size_t)T;
    return total;
}

void op_matmul(mf_pool *pool, int n, const mf_weight *const *w, const float *X, size_t x_stride, int T,
               float *const *Y, size_t y_stride, void *qbuf, size_t qcap)
{
    const quant_kernel_set *ks = quant_kernels();
    const size_t ne0 = n > 0 ? (size_t)w[0]->ne[0] : 0;
    /* op_matvec takes the float reference path when the pool's scratch is
     * too small for one input; do exactly what it does then */
    size_t one = 0, cap = 0;
    (void)pool_scratch(pool, &cap);
    size_t need[MF_TYPE_COUNT] = { 0 };
    mm_job j = { .n = n, .T = T, .w = w, .Y = Y, .y_stride = y_stride, .ks = ks };
    for (int i = 0; i < n; i++) {
        uint32_t at = ks->k[w[i]->type].act_type;
        need[at] = quant_act_bytes(at, ne0);
        j.total += w[i]->ne[1] * w[i]->row_bytes;
    }
    for (uint32_t at = 0; at < MF_TYPE_COUNT; at++) one += (need[at] + 63) & ~(size_t)63;
    if (one > cap || !pool || op_matmul_qbytes(n, w, T) > qcap) {
        float *yt[64];
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < n && i < 64; i++) yt[i] = Y[i] + (size_t)t * y_stride;
            op_matvec_multi(pool, n, w, X + (size_t)t * x_stride, yt);
        }
        return;
    }
    uint8_t *q = qbuf;
    j.act[MF_TYPE_F32] = (const uint8_t *)X; /* float weights take x as it is */
    j.act_stride[MF_TYPE_F32] = x_stride * sizeof(float);
    for (uint32_t at = 0; at < MF_TYPE_COUNT; at++) {
        if (!need[at] || at == MF_TYPE_F32) continue;
        size_t st = (need[at] + 63) & ~(size_t)63;
        for (int t = 0; t < T; t++) ks->act[at](X + (size_t)t * x_stride, q + (size_t)t * st, ne0);
        j.act[at] = q;
        j.act_stride[at] = st;
        q += st * (size_t)T;
    }
    const int nth = j.total * (uint64_t)T < OP_PAR_MIN_BYTES ? 1 : pool_threads(pool);
    /* chunks of at most MM_CHUNK_BYTES: they stay in L2 over the token blocks */
    op_chunks_init(&j.chunks, j.total, nth, MM_CHUNKS_PER_THREAD, MM_MIN_CHUNK_BYTES);
    if (j.chunks.chunk > MM_CHUNK_BYTES) j.chunks.chunk = MM_CHUNK_BYTES;
    if (nth == 1) mm_task(&j, 0, 1);
    else pool_run(pool, mm_task, &j);
}

void op_matvec(mf_pool *pool, const mf_weight *w, const float *x, float *y)
{
    op_matvec_multi(pool, 1, &w, x, &y);
}

int op_get_row(const mf_weight *w, uint64_t id, float *out, mf_error *e)
{
    if (id >= w->ne[1])
        return mf_fail(e, "tensor %s: row %llu out of range (%llu rows)", w->name, (unsigned long long)id,
                       (unsigned long long)w->ne[1]);
    if (!w->data) return weight_read_row(w, id, out, e);
    quant_type(w->type)->dequant(weight_row(w, id), out, w->ne[0]);
    return 0;
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

/* o += p * v over n floats; the SIMD versions (att_simd.h) give the same
 * bits: every lane is one multiply and one add. */
static void axpy(float *restrict o, float p, const float *restrict v, int n)
{
    for (int i = 0; i < n; i++) o[i] += p * v[i];
}

typedef void (*axpy_fn)(float *restrict o, float p, const float *restrict v, int n);

static axpy_fn att_axpy(void)
{
#if defined(__x86_64__)
    switch (quant_kernels()->simd) {
    case QUANT_SIMD_AVX512: return att_axpy_avx512;
    case QUANT_SIMD_AVX2: return att_axpy_avx2;
    default: break;
    }
#endif
    return axpy;
}

/* One query head against n_kv cached positions: scores s, softmax, and the
 * weighted sum of values into o. q.k uses the f32 kernel of the active SIMD
 * variant (quant/kernels.h), so decode and batched prefill, which both come
 * here, give the same numbers. */
static void att_head(quant_vec_dot_fn dot, axpy_fn axpy, const float *q, const float *k, const float *v, size_t kv_stride, int n_kv,
                     int head_dim, float scale, float *s, float *o)
{
    for (int t = 0; t < n_kv; t++) s[t] = dot(k + (size_t)t * kv_stride, q, (size_t)head_dim) * scale;
    op_softmax(s, (size_t)n_kv);
    memset(o, 0, sizeof(float) * (size_t)head_dim);
    for (int t = 0; t < n_kv; t++) axpy(o, s[t], v + (size_t)t * kv_stride, head_dim);
}

typedef struct att_job {
    const float *q, *k, *v;
    size_t kv_stride, q_stride, out_stride;
    int n_kv, n_head, n_head_kv, head_dim, T;
    float scale;
    float *scratch, *out;
    quant_vec_dot_fn dot;
    axpy_fn axpy;
} att_job;

static void att_task(void *ctx, int ith, int nth)
{
    att_job *j = ctx;
    size_t lo, hi;
    pool_split((size_t)j->n_head, 1, ith, nth, &lo, &hi);
    int group = j->n_head / j->n_head_kv;
    for (size_t h = lo; h < hi; h++) {
        size_t kvo = (h / (size_t)group) * (size_t)j->head_dim;
        att_head(j->dot, j->axpy, j->q + h * (size_t)j->head_dim, j->k + kvo, j->v + kvo, j->kv_stride, j->n_kv, j->head_dim,
                 j->scale, j->scratch + h * (size_t)j->n_kv, j->out + h * (size_t)j->head_dim);
    }
}

void op_attention(mf_pool *pool, const float *q, const float *k, const float *v, size_t kv_stride, int n_kv,
                  int n_head, int n_head_kv, int head_dim, float scale, float *att_scratch, float *out)
{
    att_job j = { .q = q, .k = k, .v = v, .kv_stride = kv_stride, .n_kv = n_kv, .n_head = n_head,
                  .n_head_kv = n_head_kv, .head_dim = head_dim, .scale = scale, .scratch = att_scratch, .out = out,
                  .dot = quant_kernels()->k[MF_TYPE_F32].vec_dot, .axpy = att_axpy() };
    if (n_kv < 64 || pool_threads(pool) == 1) att_task(&j, 0, 1);
    else pool_run(pool, att_task, &j);
}

/* Causal batch: token t's heads on thread t % nth (a token's cost grows
 * with its position, so interleaving balances), each thread its own
 * n_kv-float score row; threads beyond n_head have no row and rest. */
static void att_causal_task(void *ctx, int ith, int nth)
{
    att_job *j = ctx;
    if (nth > j->n_head) nth = j->n_head;
    if (ith >= nth) return;
    const int group = j->n_head / j->n_head_kv, n0 = j->n_kv - j->T;
    float *s = j->scratch + (size_t)ith * (size_t)j->n_kv;
    for (int t = ith; t < j->T; t += nth)
        for (int h = 0; h < j->n_head; h++) {
            size_t kvo = (size_t)(h / group) * (size_t)j->head_dim;
            att_head(j->dot, j->axpy, j->q + (size_t)t * j->q_stride + (size_t)h * j->head_dim, j->k + kvo, j->v + kvo,
                     j->kv_stride, n0 + t + 1, j->head_dim, j->scale, s,
                     j->out + (size_t)t * j->out_stride + (size_t)h * j->head_dim);
        }
}

void op_attention_causal(mf_pool *pool, const float *Q, size_t q_stride, const float *k, const float *v,
                         size_t kv_stride, uint32_t pos0, int T, int n_head, int n_head_kv, int head_dim, float scale,
                         float *att_scratch, float *OUT, size_t out_stride)
{
    att_job j = { .q = Q, .k = k, .v = v, .kv_stride = kv_stride, .q_stride = q_stride, .out_stride = out_stride,
                  .n_kv = (int)pos0 + T, .n_head = n_head, .n_head_kv = n_head_kv, .head_dim = head_dim, .T = T,
                  .scale = scale, .scratch = att_scratch, .out = OUT, .dot = quant_kernels()->k[MF_TYPE_F32].vec_dot, .axpy = att_axpy() };
    if (pool_threads(pool) == 1 || (size_t)j.n_kv * (size_t)T < 64) att_causal_task(&j, 0, 1);
    else pool_run(pool, att_causal_task, &j);
}
