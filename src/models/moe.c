/* moe.c — the routed MoE FFN (Shazeer et al. 2017; SwiGLU experts,
 * Shazeer 2020). Router logits -> gating (softmax over all experts, or
 * sigmoid) -> top-K -> optional renormalisation over the K -> each expert's
 * down(silu(gate h) * up h), weighted and summed. Experts come from the
 * store, pinned for the duration of the layer and released after. */
#include "models/blocks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void moe_topk(const float *x, int n, int k, int32_t *ids)
{
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            int taken = 0;
            for (int t = 0; t < j; t++) taken |= ids[t] == i;
            if (taken) continue;
            if (best < 0 || x[i] > x[best]) best = i;
        }
        ids[j] = best;
    }
}

/* A 2-D view of one expert's slice of a 3-D expert tensor. */
static mf_weight expert_view(const store_tensor *st, const void *data)
{
    mf_weight w = { 0 };
    w.name = st->t->name;
    w.type = st->t->type;
    w.n_dims = 2;
    w.ne[0] = st->t->ne[0];
    w.ne[1] = st->t->ne[1];
    w.ne[2] = w.ne[3] = 1;
    w.row_bytes = st->expert_bytes / st->t->ne[1];
    w.data = data;
    return w;
}

/* Selection scores and mixing weights (llama.cpp's build_moe_ffn is the
 * behaviour matched; the formulas are the model cards'). */
static void route(const moe_hparams *hp, moe_scratch *s)
{
    const int N = hp->n_expert, K = hp->n_used;
    float *sel = s->logits;
    switch (hp->gating) {
    case MOE_SOFTMAX:
        op_softmax(s->logits, (size_t)N);
        break;
    case MOE_SIGMOID:
        for (int i = 0; i < N; i++) s->logits[i] = op_sigmoid(s->logits[i]);
        break;
    case MOE_SOFTMAX_TOPK:
        break;
    }
    if (hp->sel_bias || hp->n_group > 1) {
        sel = s->sel;
        for (int i = 0; i < N; i++) sel[i] = s->logits[i] + (hp->sel_bias ? hp->sel_bias[i] : 0.0f);
    }
    if (hp->n_group > 1 && hp->n_group_used < hp->n_group) {
        /* DeepSeek-V3: rank groups by the sum of their two best scores, keep
         * the best n_group_used groups, mask the rest out of the top-K. */
        const int G = hp->n_group, per = N / G;
        float gscore[256];
        int32_t gids[256];
        for (int g = 0; g < G && g < 256; g++) {
            int32_t two[2];
            moe_topk(sel + g * per, per, per >= 2 ? 2 : 1, two);
            gscore[g] = sel[g * per + two[0]] + (per >= 2 ? sel[g * per + two[1]] : 0.0f);
        }
        moe_topk(gscore, G, hp->n_group_used, gids);
        for (int g = 0; g < G; g++) {
            int keep = 0;
            for (int j = 0; j < hp->n_group_used; j++) keep |= gids[j] == g;
            if (!keep)
                for (int i = 0; i < per; i++) sel[g * per + i] = -INFINITY;
        }
    }
    moe_topk(sel, N, K, s->ids);
    for (int k = 0; k < K; k++) s->w[k] = s->logits[s->ids[k]];
    if (hp->gating == MOE_SOFTMAX_TOPK) op_softmax(s->w, (size_t)K);
    if (hp->norm_topk) {
        double sum = 0;
        for (int k = 0; k < K; k++) sum += s->w[k];
        if (sum < 6.103515625e-5) sum = 6.103515625e-5; /* as llama.cpp clamps the sum */
        for (int k = 0; k < K; k++) s->w[k] = (float)(s->w[k] / sum);
    }
    if (hp->weights_scale != 1.0f && hp->weights_scale != 0.0f)
        for (int k = 0; k < K; k++) s->w[k] *= hp->weights_scale;
}

static void add_vec(float *y, const void *b, int n)
{
    if (!b) return;
    const float *v = b;
    for (int i = 0; i < n; i++) y[i] += v[i];
}

/* The guess for next into s->pf_ids; its length, 0 when there is none. */
static int guess(mf_pool *pool, store *st, const moe_hparams *this_hp, const moe_next *next, moe_scratch *s)
{
    if (!next || !s->pf_h || !s->pf_ids || !store_prefetch_enabled(st) || !store_layer_has_experts(st, next->layer))
        return 0;
    /* the next layer's own biases rank its experts (DeepSeek-V3, GLM-4.5
     * and gpt-oss have different ones in every layer) */
    const moe_hparams *hp = next->hp ? next->hp : this_hp;
    const int N = hp->n_expert;
    int n = moe_guess_count(hp->n_used);
    if (n > N) n = N;
    if (next->norm) op_rmsnorm(s->pf_h, next->x, next->norm, (size_t)hp->n_embd, next->eps);
    else memcpy(s->pf_h, next->x, sizeof(float) * (size_t)hp->n_embd);
    op_matvec(pool, next->router, s->pf_h, s->logits);
    /* selection order only: softmax is monotonic, so the raw logits rank
     * the experts as the real routing does, up to group limits */
    for (int i = 0; i < N; i++) {
        float v = s->logits[i] + (hp->router_bias ? hp->router_bias[i] : 0.0f);
        if (hp->gating == MOE_SIGMOID) v = op_sigmoid(v) + (hp->sel_bias ? hp->sel_bias[i] : 0.0f);
        s->logits[i] = v;
    }
    moe_topk(s->logits, N, n, s->pf_ids);
    return n;
}

/* The expert's gate/up biases, then the activation, in place: g <- act(g, u). */
static void expert_act(const moe_hparams *hp, const store_expert *ex, int fused, float *g, float *u, int n_ff)
{
    if (fused) {
        add_vec(g, ex->data[STORE_GATE_UP_B], 2 * n_ff);
    } else {
        add_vec(g, ex->data[STORE_GATE_B], n_ff);
        add_vec(u, ex->data[STORE_UP_B], n_ff);
    }
    if (hp->act == MOE_SWIGLU_OAI) {
        const float lim = hp->swiglu_limit, alpha = hp->swiglu_alpha;
        for (int i = 0; i < n_ff; i++) {
            float x = g[i] < lim ? g[i] : lim;
            float y = u[i] < -lim ? -lim : u[i] > lim ? lim : u[i];
            g[i] = x * op_sigmoid(alpha * x) * (y + 1.0f);
        }
    } else {
        for (int i = 0; i < n_ff; i++) g[i] = op_silu(g[i]) * u[i];
    }
}

int moe_route(mf_pool *pool, store *st, int layer, const moe_hparams *hp, const mf_weight *router, const float *h,
              moe_scratch *s, const moe_next *next, mf_error *e)
{
    const int K = hp->n_used;
    if (K > 64) return mf_fail(e, "layer %d: %d experts per token is more than this engine supports (64)", layer, K);
    op_matvec(pool, router, h, s->logits);
    if (hp->router_bias)
        for (int i = 0; i < hp->n_expert; i++) s->logits[i] += hp->router_bias[i];
    route(hp, s);
    int n = guess(pool, st, hp, next, s); /* route is done with s->logits */
    if (n == 0) return store_acquire(st, layer, s->ids, K, s->ex, e);
    const int next_k = next->hp ? next->hp->n_used : K;
    return store_acquire_next(st, layer, s->ids, K, s->ex, next->layer, s->pf_ids, n, next_k, e);
}

void moe_experts(mf_pool *pool, store *st, int layer, const moe_hparams *hp, const float *h, moe_scratch *s,
                 float *out)
{
    const int K = hp->n_used, n_ff = hp->n_ff, n_embd = hp->n_embd;
    const store_expert *const *ex = s->ex;
    const store_tensor *roles = store_layer_roles(st, layer);
    mf_weight wv[128];
    const mf_weight *wp[128];
    float *yp[128];
    const int fused = roles[STORE_GATE_UP].t != NULL;
    for (int k = 0; k < K; k++) {
        if (fused) { /* one [gate; up] matrix of 2 n_ff rows */
            wv[k] = expert_view(&roles[STORE_GATE_UP], ex[k]->data[STORE_GATE_UP]);
            wp[k] = &wv[k];
            yp[k] = s->gate + (size_t)k * 2 * n_ff;
            continue;
        }
        wv[2 * k] = expert_view(&roles[STORE_GATE], ex[k]->data[STORE_GATE]);
        wv[2 * k + 1] = expert_view(&roles[STORE_UP], ex[k]->data[STORE_UP]);
        wp[2 * k] = &wv[2 * k];
        wp[2 * k + 1] = &wv[2 * k + 1];
        yp[2 * k] = s->gate + (size_t)k * n_ff;
        yp[2 * k + 1] = s->up + (size_t)k * n_ff;
    }
    op_matvec_multi(pool, fused ? K : 2 * K, wp, h, yp);
    /* the K down projections, each of its own expert's activation, in one dispatch */
    const float *xp[64];
    for (int k = 0; k < K; k++) {
        float *g = fused ? s->gate + (size_t)k * 2 * n_ff : s->gate + (size_t)k * n_ff;
        expert_act(hp, ex[k], fused, g, fused ? g + n_ff : s->up + (size_t)k * n_ff, n_ff);
        wv[k] = expert_view(&roles[STORE_DOWN], ex[k]->data[STORE_DOWN]);
        wp[k] = &wv[k];
        xp[k] = g;
        yp[k] = s->down + (size_t)k * n_embd;
    }
    op_matvec_each(pool, K, wp, xp, yp);
    memset(out, 0, sizeof(float) * (size_t)n_embd);
    for (int k = 0; k < K; k++) {
        float *d = s->down + (size_t)k * n_embd;
        add_vec(d, ex[k]->data[STORE_DOWN_B], n_embd);
        for (int i = 0; i < n_embd; i++) out[i] += s->w[k] * d[i];
    }
    store_release(st, layer, s->ids, K);
}

int moe_scratch_ids_alloc(moe_scratch *s, int n_used)
{
    s->ids = calloc(n_used ? (size_t)n_used : 1, sizeof(int32_t));
    s->pf_ids = calloc((size_t)moe_guess_count(n_used) + 1, sizeof(int32_t));
    return s->ids && s->pf_ids ? 0 : -1;
}

void moe_scratch_ids_free(moe_scratch *s)
{
    free(s->ids);
    free(s->pf_ids);
    s->ids = s->pf_ids = NULL;
}

size_t moe_scratch_floats(int n_expert, int n_used, int n_ff, int n_embd, int with_sel)
{
    const size_t N = (size_t)n_expert, K = (size_t)n_used, F = (size_t)n_ff, E = (size_t)n_embd;
    return (with_sel ? 2 : 1) * N + 2 * K * F + K * E + E + K;
}

float *moe_scratch_lay(moe_scratch *s, float *p, int n_expert, int n_used, int n_ff, int n_embd, int with_sel)
{
    const size_t N = (size_t)n_expert, K = (size_t)n_used, F = (size_t)n_ff, E = (size_t)n_embd;
    s->logits = p, p += N;
    s->sel = with_sel ? p : NULL, p += with_sel ? N : 0;
    s->gate = p, p += K * F; /* up follows gate: a fused gate_up expert writes both */
    s->up = p, p += K * F;
    s->down = p, p += K * E;
    s->pf_h = p, p += E;
    s->w = p, p += K;
    return p;
}

int moe_forward(mf_pool *pool, store *st, int layer, const moe_hparams *hp, const mf_weight *router, const float *h,
                moe_scratch *s, float *out, mf_error *e)
{
    if (moe_route(pool, st, layer, hp, router, h, s, NULL, e)) return -1;
    moe_experts(pool, st, layer, hp, h, s, out);
    return 0;
}

/* The margin: a guess of K + K/4 experts. On the synthetic benchmark
 * model under a 1.5 GiB cap (disk-bound) margins of K/8, K/4 and K/2 gave
 * the same speed within noise, the top-K holding 89.5% of the chosen
 * experts and the guess 94%, 96% and 99%; the wider margin reads more for
 * nothing (17%, 23%, 35% of prefetches wasted), which a faster CPU would
 * feel first. */
int moe_guess_count(int n_used) { return n_used + (n_used + 3) / 4; }

void moe_prefetch(mf_pool *pool, store *st, const moe_hparams *hp, const moe_next *next, moe_scratch *s)
{
    int n = guess(pool, st, hp, next, s);
    if (n) store_prefetch(st, next->layer, s->pf_ids, n, hp->n_used);
}

/* ---- T tokens at once (prefill) ---- */

size_t moe_batch_floats(const moe_hparams *hp, int T)
{
    const size_t N = (size_t)hp->n_expert, K = (size_t)hp->n_used, E = (size_t)hp->n_embd, F = (size_t)hp->n_ff;
    /* logits T*N, sel N, w T*K, X T*E, G T*2F, U T*F, Dn T*E, D T*K*E */
    return T * N + N + T * K + T * E + T * 2 * F + T * F + T * E + T * K * E;
}

void moe_batch_init(moe_batch *b, const moe_hparams *hp, int T, float *floats, int32_t *ints, void *qbuf, size_t qcap)
{
    const size_t N = (size_t)hp->n_expert, K = (size_t)hp->n_used, E = (size_t)hp->n_embd, F = (size_t)hp->n_ff;
    float *p = floats;
    b->T = T;
    b->logits = p, p += T * N;
    b->sel = p, p += N;
    b->w = p, p += T * K;
    b->X = p, p += T * E;
    b->G = p, p += T * 2 * F;
    b->U = p, p += T * F;
    b->Dn = p, p += T * E;
    b->D = p;
    b->ids = ints;               /* T*K */
    b->start = ints + T * K;     /* N+1 */
    b->order = b->start + N + 1; /* T*K */
    b->qbuf = qbuf;
    b->qcap = qcap;
}

/* The next up to K used experts from *x on, into wave; their count. */
static int next_wave(const moe_batch *b, int N, int K, int *x, int32_t *wave)
{
    int n = 0;
    for (; *x < N && n < K; (*x)++)
        if (b->start[*x + 1] > b->start[*x]) wave[n++] = *x;
    return n;
}

int moe_forward_batch(mf_pool *pool, store *st, int layer, const moe_hparams *hp, const mf_weight *router,
                      const float *H, size_t h_stride, int T, moe_batch *b, float *OUT, size_t out_stride,
                      mf_error *e)
{
    const int N = hp->n_expert, K = hp->n_used, E = hp->n_embd, F = hp->n_ff;
    if (K > 64) return mf_fail(e, "layer %d: %d experts per token is more than this engine supports (64)", layer, K);
    if (T > b->T) return mf_fail(e, "layer %d: a batch of %d tokens in scratch for %d", layer, T, b->T);
    /* routing of every token, exactly as moe_route does it one by one */
    const mf_weight *rw[1] = { router };
    float *rl[1] = { b->logits };
    op_matmul(pool, 1, rw, H, h_stride, T, rl, (size_t)N, b->qbuf, b->qcap);
    for (int t = 0; t < T; t++) {
        moe_scratch one = { 0 };
        one.logits = b->logits + (size_t)t * N;
        one.sel = b->sel;
        one.ids = b->ids + (size_t)t * K;
        one.w = b->w + (size_t)t * K;
        if (hp->router_bias)
            for (int i = 0; i < N; i++) one.logits[i] += hp->router_bias[i];
        route(hp, &one);
    }
    /* group the (token, slot) pairs by expert: order[start[x] .. start[x+1]) */
    for (int x = 0; x <= N; x++) b->start[x] = 0;
    for (int i = 0; i < T * K; i++) b->start[b->ids[i] + 1]++;
    for (int x = 0; x < N; x++) b->start[x + 1] += b->start[x];
    int32_t fill[1024];
    int32_t *pos = N <= 1024 ? fill : NULL;
    if (!pos) return mf_fail(e, "layer %d: %d experts: more than batched prefill supports (1024)", layer, N);
    for (int x = 0; x < N; x++) pos[x] = b->start[x];
    for (int i = 0; i < T * K; i++) b->order[pos[b->ids[i]]++] = i;

    const store_tensor *roles = store_layer_roles(st, layer);
    const int fused = roles[STORE_GATE_UP].t != NULL;
    /* every used expert once, K at a time (the store holds at least K): a
     * wave's experts are read in parallel and each is applied to all of
     * its tokens as a matrix product before the next wave */
    int32_t waves[2][64];
    const store_expert *ex[64];
    int x = 0, n = next_wave(b, N, K, &x, waves[0]);
    for (int w = 0; n > 0; w ^= 1) {
        /* the next wave is read while this one computes */
        const int32_t *wave = waves[w];
        int n_next = next_wave(b, N, K, &x, waves[w ^ 1]);
        if (store_acquire_plan(st, layer, wave, n, ex, waves[w ^ 1], n_next, e)) return -1;
        for (int j = 0; j < n; j++) {
            const int32_t *ord = b->order + b->start[wave[j]];
            const int Te = b->start[wave[j] + 1] - b->start[wave[j]];
            for (int r = 0; r < Te; r++)
                memcpy(b->X + (size_t)r * E, H + (size_t)(ord[r] / K) * h_stride, sizeof(float) * (size_t)E);
            mf_weight wv[2];
            const mf_weight *wp[2] = { &wv[0], &wv[1] };
            size_t gs;
            if (fused) {
                wv[0] = expert_view(&roles[STORE_GATE_UP], ex[j]->data[STORE_GATE_UP]);
                float *yp[1] = { b->G };
                gs = 2 * (size_t)F;
                op_matmul(pool, 1, wp, b->X, (size_t)E, Te, yp, gs, b->qbuf, b->qcap);
            } else {
                wv[0] = expert_view(&roles[STORE_GATE], ex[j]->data[STORE_GATE]);
                wv[1] = expert_view(&roles[STORE_UP], ex[j]->data[STORE_UP]);
                float *yp[2] = { b->G, b->U };
                gs = (size_t)F;
                op_matmul(pool, 2, wp, b->X, (size_t)E, Te, yp, gs, b->qbuf, b->qcap);
            }
            for (int r = 0; r < Te; r++) {
                float *g = b->G + (size_t)r * gs;
                expert_act(hp, ex[j], fused, g, fused ? g + F : b->U + (size_t)r * F, F);
            }
            mf_weight down = expert_view(&roles[STORE_DOWN], ex[j]->data[STORE_DOWN]);
            const mf_weight *dp[1] = { &down };
            float *dy[1] = { b->Dn };
            op_matmul(pool, 1, dp, b->G, gs, Te, dy, (size_t)E, b->qbuf, b->qcap);
            for (int r = 0; r < Te; r++) {
                float *d = b->Dn + (size_t)r * E;
                add_vec(d, ex[j]->data[STORE_DOWN_B], E);
                memcpy(b->D + (size_t)ord[r] * E, d, sizeof(float) * (size_t)E);
            }
        }
        store_release(st, layer, wave, n);
        n = n_next;
    }
    /* mix in slot order, as moe_experts does: the sums are the same */
    for (int t = 0; t < T; t++) {
        float *out = OUT + (size_t)t * out_stride;
        memset(out, 0, sizeof(float) * (size_t)E);
        for (int k = 0; k < K; k++) {
            const float wk = b->w[(size_t)t * K + k], *d = b->D + ((size_t)t * K + k) * E;
            for (int i = 0; i < E; i++) out[i] += wk * d[i];
        }
    }
    return 0;
}
