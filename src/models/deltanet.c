/* deltanet.c — one token through a Gated DeltaNet layer (Yang et al.,
 * arXiv:2412.06464, eq. 10; the Qwen3-Next / Qwen3.5 model cards for the
 * short convolution, L2-normalised q/k and the gated output norm).
 *
 *   mixed = W_qkv h,  z = W_z h                      (projections)
 *   beta  = sigmoid(W_beta h)                        per value head
 *   g     = a * softplus(W_alpha h + dt_bias)        a = ssm_a = -exp(A_log) < 0
 *   c     = SiLU(causal depthwise conv over the last d_conv inputs of mixed)
 *   q, k  = L2-normalised per head (x / max(|x|, eps)); q *= 1/sqrt(d_k)
 *   per value head j, with q/k head j mod n_k (the GGUF converter tiles
 *   the value heads over the key heads in this order):
 *     S <- exp(g) S;  u = beta (v - S^T k);  S <- S + k u^T;  o = S^T q
 *   o     = RMSNorm_per_head(o) * ssm_norm * SiLU(z);  out = W_out o
 *
 * S is stored row-major by the key index (d_k rows of d_v), so every step
 * is a run over contiguous d_v floats. Value heads are independent and are
 * split over the pool; a head is always computed the same way whichever
 * thread runs it, so results do not depend on the thread count.
 *
 * Prefill (dnet_forward_batch) runs the projections of a chunk of tokens
 * as matrix products and then the very same per-token steps in token
 * order (the recurrence is exact, not a chunked parallel form), so a
 * chunk gives bit for bit the numbers of its tokens one by one.
 */
#include "models/deltanet.h"

#include <math.h>
#include <string.h>

size_t dnet_channels(const dnet_hparams *hp)
{
    return 2 * (size_t)hp->n_k_heads * hp->d_k + (size_t)hp->n_v_heads * hp->d_v;
}

size_t dnet_conv_floats(const dnet_hparams *hp) { return dnet_channels(hp) * (size_t)(hp->d_conv - 1); }
size_t dnet_S_floats(const dnet_hparams *hp) { return (size_t)hp->n_v_heads * hp->d_k * hp->d_v; }

size_t dnet_scratch_floats(const dnet_hparams *hp)
{
    const size_t V = (size_t)hp->n_v_heads * hp->d_v;
    return dnet_channels(hp) + 2 * (size_t)hp->n_v_heads + 3 * V;
}

void dnet_scratch_init(dnet_scratch *s, const dnet_hparams *hp, float *p)
{
    const size_t V = (size_t)hp->n_v_heads * hp->d_v;
    s->mixed = p, p += dnet_channels(hp);
    s->z = p, p += V;
    s->beta = p, p += hp->n_v_heads;
    s->g = p, p += hp->n_v_heads;
    s->o = p, p += V;
    s->u = p;
}

int dnet_hparams_check(const dnet_hparams *hp, const char *path, mf_error *e)
{
    if (hp->d_conv < 1 || hp->d_conv > 64)
        return mf_fail(e, "%s: ssm.conv_kernel %d: expected 1..64", path, hp->d_conv);
    if (hp->n_k_heads <= 0 || hp->n_v_heads <= 0 || hp->n_v_heads % hp->n_k_heads)
        return mf_fail(e, "%s: ssm.time_step_rank (value heads) %d is not a multiple of ssm.group_count (key heads) %d",
                       path, hp->n_v_heads, hp->n_k_heads);
    if (hp->d_k <= 0 || hp->d_v <= 0 || hp->d_k > 4096 || hp->d_v > 4096 || hp->n_v_heads > 4096)
        return mf_fail(e, "%s: implausible DeltaNet head sizes (ssm.state_size %d, value head dim %d, %d value heads)",
                       path, hp->d_k, hp->d_v, hp->n_v_heads);
    return 0;
}

int dnet_bind(binder *b, const dnet_hparams *hp, dnet_weights *w, uint32_t l)
{
    const uint64_t E = (uint64_t)hp->n_embd, C = dnet_channels(hp), NV = (uint64_t)hp->n_v_heads;
    const uint64_t V = NV * (uint64_t)hp->d_v;
    if (bind_weight(b, &w->qkv, 1, 2, (uint64_t[]){ E, C }, "blk.%u.attn_qkv.weight", l) ||
        bind_weight(b, &w->z, 1, 2, (uint64_t[]){ E, V }, "blk.%u.attn_gate.weight", l) ||
        bind_weight(b, &w->conv, 1, 2, (uint64_t[]){ (uint64_t)hp->d_conv, C }, "blk.%u.ssm_conv1d.weight", l) ||
        bind_weight(b, &w->dt_bias, 1, 1, (uint64_t[]){ NV }, "blk.%u.ssm_dt.bias", l) ||
        bind_weight(b, &w->a, 1, 1, (uint64_t[]){ NV }, "blk.%u.ssm_a", l) ||
        bind_weight(b, &w->beta, 1, 2, (uint64_t[]){ E, NV }, "blk.%u.ssm_beta.weight", l) ||
        bind_weight(b, &w->alpha, 1, 2, (uint64_t[]){ E, NV }, "blk.%u.ssm_alpha.weight", l) ||
        bind_weight(b, &w->norm, 1, 1, (uint64_t[]){ (uint64_t)hp->d_v }, "blk.%u.ssm_norm.weight", l) ||
        bind_weight(b, &w->out, 1, 2, (uint64_t[]){ V, E }, "blk.%u.ssm_out.weight", l) ||
        bind_check_f32(b, &w->conv) || bind_check_f32(b, &w->dt_bias) || bind_check_f32(b, &w->a) ||
        bind_check_f32(b, &w->norm))
        return -1;
    return 0;
}

void dnet_state_reset(const dnet_hparams *hp, dnet_state st)
{
    memset(st.conv, 0, dnet_conv_floats(hp) * sizeof(float));
    memset(st.S, 0, dnet_S_floats(hp) * sizeof(float));
}

/* softplus(x) = ln(1 + e^x); above 20 it equals x in float (and e^x would
 * only lose precision on the way). */
static float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* x / max(|x|, eps) over n values. */
static void l2norm(float *x, int n, float eps, float extra_scale)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float nrm = sqrtf((float)ss);
    float scale = extra_scale / (nrm > eps ? nrm : eps);
    for (int i = 0; i < n; i++) x[i] *= scale;
}

/* beta = sigmoid(W_beta h), g = a * softplus(W_alpha h + dt_bias): one
 * token's per-value-head write strength and log-decay, in place. */
static void dnet_gates(const dnet_hparams *hp, const dnet_weights *w, float *beta, float *g)
{
    const float *dt = w->dt_bias.data, *a = w->a.data;
    for (int i = 0; i < hp->n_v_heads; i++) {
        beta[i] = op_sigmoid(beta[i]);
        g[i] = a[i] * softplus(g[i] + dt[i]);
    }
}

/* One token's causal depthwise conv over mixed (in place, then SiLU): tap
 * K-1 is the current token, taps 0..K-2 the state (oldest first); the
 * window then slides by one. Then q, k L2-normalised per key head, q also
 * scaled by 1/sqrt(d_k). Tokens must come in order: the window is state. */
static void dnet_conv_qk(const dnet_hparams *hp, const dnet_weights *w, dnet_state st, float *mixed)
{
    const int K = hp->d_conv;
    const size_t C = dnet_channels(hp);
    const float *cw = w->conv.data;
    for (size_t ch = 0; ch < C; ch++) {
        const float *wr = cw + ch * (size_t)K;
        float *win = st.conv + ch * (size_t)(K - 1);
        const float x = mixed[ch];
        float acc = 0;
        for (int t = 0; t < K - 1; t++) acc += wr[t] * win[t];
        acc += wr[K - 1] * x;
        if (K > 1) {
            memmove(win, win + 1, sizeof(float) * (size_t)(K - 2));
            win[K - 2] = x;
        }
        mixed[ch] = op_silu(acc);
    }
    const float qscale = 1.0f / sqrtf((float)hp->d_k);
    for (int i = 0; i < hp->n_k_heads; i++) {
        l2norm(mixed + (size_t)i * hp->d_k, hp->d_k, hp->eps, qscale);
        l2norm(mixed + ((size_t)hp->n_k_heads + i) * hp->d_k, hp->d_k, hp->eps, 1.0f);
    }
}

/* T tokens' inputs to the delta rule, row t of each array for token t
 * (T = 1: one token). */
typedef struct dnet_job {
    const dnet_hparams *hp;
    const dnet_weights *w;
    dnet_state st;
    int T;
    const float *mixed, *z, *beta, *g;   /* rows of channels, n_v d_v, n_v, n_v */
    float *o, *u;                        /* o: rows of n_v d_v; u: n_v d_v */
} dnet_job;

/* The delta rule and the gated norm of one value head h for one token. */
static void dnet_head_step(const dnet_job *j, size_t h, int t)
{
    const dnet_hparams *hp = j->hp;
    const int dk = hp->d_k, dv = hp->d_v, nk = hp->n_k_heads;
    const size_t C = dnet_channels(hp), V = (size_t)hp->n_v_heads * dv, NV = (size_t)hp->n_v_heads;
    const float *qs = j->mixed + (size_t)t * C, *ks = qs + (size_t)nk * dk, *vs = ks + (size_t)nk * dk;
    const float *q = qs + (h % (size_t)nk) * dk, *k = ks + (h % (size_t)nk) * dk, *v = vs + h * dv;
    float *S = j->st.S + h * (size_t)dk * dv, *o = j->o + (size_t)t * V + h * dv, *u = j->u + h * dv;
    const float decay = expf(j->g[(size_t)t * NV + h]), beta = j->beta[(size_t)t * NV + h];
    /* S <- exp(g) S, and S^T k of the decayed state (into u) */
    memset(u, 0, sizeof(float) * (size_t)dv);
    for (int i = 0; i < dk; i++) {
        float *row = S + (size_t)i * dv;
        for (int c = 0; c < dv; c++) {
            row[c] *= decay;
            u[c] += k[i] * row[c];
        }
    }
    /* u = beta (v - S^T k): the correction the delta rule writes */
    for (int c = 0; c < dv; c++) u[c] = (v[c] - u[c]) * beta;
    /* S <- S + k u^T, then o = S^T q */
    memset(o, 0, sizeof(float) * (size_t)dv);
    for (int i = 0; i < dk; i++) {
        float *row = S + (size_t)i * dv;
        for (int c = 0; c < dv; c++) {
            row[c] += k[i] * u[c];
            o[c] += q[i] * row[c];
        }
    }
    /* gated RMSNorm: RMSNorm(o) * ssm_norm * SiLU(z) */
    op_rmsnorm(o, o, j->w->norm.data, (size_t)dv, hp->eps);
    const float *z = j->z + (size_t)t * V + h * dv;
    for (int c = 0; c < dv; c++) o[c] *= op_silu(z[c]);
}

/* Value heads [lo, hi) of this thread, each through all T tokens in
 * order: a head's state depends only on its own past. */
static void dnet_heads(void *ctx, int ith, int nth)
{
    const dnet_job *j = ctx;
    size_t lo, hi;
    pool_split((size_t)j->hp->n_v_heads, 1, ith, nth, &lo, &hi);
    for (size_t h = lo; h < hi; h++)
        for (int t = 0; t < j->T; t++) dnet_head_step(j, h, t);
}

static void dnet_run_heads(mf_pool *pool, const dnet_job *j)
{
    if (pool_threads(pool) == 1 || j->hp->n_v_heads == 1) dnet_heads((void *)j, 0, 1);
    else pool_run(pool, dnet_heads, (void *)j);
}

void dnet_forward(mf_pool *pool, const dnet_hparams *hp, const dnet_weights *w, dnet_state st, const float *h,
                  dnet_scratch *s, float *out)
{
    /* projections, one pool dispatch */
    const mf_weight *ws[4] = { &w->qkv, &w->z, &w->beta, &w->alpha };
    float *ys[4] = { s->mixed, s->z, s->beta, s->g };
    op_matvec_multi(pool, 4, ws, h, ys);
    dnet_gates(hp, w, s->beta, s->g);
    dnet_conv_qk(hp, w, st, s->mixed);
    dnet_job j = { hp, w, st, 1, s->mixed, s->z, s->beta, s->g, s->o, s->u };
    dnet_run_heads(pool, &j);
    op_matvec(pool, &w->out, s->o, out);
}

/* ---- T tokens at once (prefill) ---- */

size_t dnet_batch_floats(const dnet_hparams *hp, int T)
{
    const size_t V = (size_t)hp->n_v_heads * hp->d_v;
    return (size_t)T * (dnet_channels(hp) + 2 * V + 2 * (size_t)hp->n_v_heads) + V;
}

void dnet_batch_init(dnet_batch *b, const dnet_hparams *hp, int T, float *p, void *qbuf, size_t qcap)
{
    const size_t V = (size_t)hp->n_v_heads * hp->d_v, NV = (size_t)hp->n_v_heads;
    b->T = T;
    b->mixed = p, p += (size_t)T * dnet_channels(hp);
    b->z = p, p += (size_t)T * V;
    b->beta = p, p += (size_t)T * NV;
    b->g = p, p += (size_t)T * NV;
    b->o = p, p += (size_t)T * V;
    b->u = p;
    b->qbuf = qbuf;
    b->qcap = qcap;
}

void dnet_forward_batch(mf_pool *pool, const dnet_hparams *hp, const dnet_weights *w, dnet_state st, const float *H,
                        size_t h_stride, int T, dnet_batch *b, float *OUT, size_t out_stride)
{
    const size_t C = dnet_channels(hp), V = (size_t)hp->n_v_heads * hp->d_v, NV = (size_t)hp->n_v_heads;
    /* the projections of all T tokens; each output its own row width */
    const mf_weight *wqkv[1] = { &w->qkv }, *wz[1] = { &w->z }, *wba[2] = { &w->beta, &w->alpha };
    float *yqkv[1] = { b->mixed }, *yz[1] = { b->z }, *yba[2] = { b->beta, b->g };
    op_matmul(pool, 1, wqkv, H, h_stride, T, yqkv, C, b->qbuf, b->qcap);
    op_matmul(pool, 1, wz, H, h_stride, T, yz, V, b->qbuf, b->qcap);
    op_matmul(pool, 2, wba, H, h_stride, T, yba, NV, b->qbuf, b->qcap);
    /* the conv window is a recurrence over tokens: in order */
    for (int t = 0; t < T; t++) {
        dnet_gates(hp, w, b->beta + (size_t)t * NV, b->g + (size_t)t * NV);
        dnet_conv_qk(hp, w, st, b->mixed + (size_t)t * C);
    }
    /* the delta rule: every head through the T tokens, the same steps as
     * T calls of dnet_forward, so the same numbers */
    dnet_job j = { hp, w, st, T, b->mixed, b->z, b->beta, b->g, b->o, b->u };
    dnet_run_heads(pool, &j);
    const mf_weight *wo[1] = { &w->out };
    float *yo[1] = { OUT };
    op_matmul(pool, 1, wo, b->o, V, T, yo, out_stride, b->qbuf, b->qcap);
}
