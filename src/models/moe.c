/* moe.c — the routed MoE FFN (Shazeer et al. 2017; SwiGLU experts,
 * Shazeer 2020). Router logits -> gating (softmax over all experts, or
 * sigmoid) -> top-K -> optional renormalisation over the K -> each expert's
 * down(silu(gate h) * up h), weighted and summed. Experts come from the
 * store, pinned for the duration of the layer and released after. */
#include "models/blocks.h"

#include <math.h>
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

int moe_forward(mf_pool *pool, store *st, int layer, const moe_hparams *hp, const mf_weight *router, const float *h,
                moe_scratch *s, float *out, mf_error *e)
{
    const int K = hp->n_used, n_ff = hp->n_ff, n_embd = hp->n_embd;
    op_matvec(pool, router, h, s->logits);
    if (hp->gating == MOE_SOFTMAX) {
        op_softmax(s->logits, (size_t)hp->n_expert);
    } else {
        for (int i = 0; i < hp->n_expert; i++) s->logits[i] = op_sigmoid(s->logits[i]);
    }
    moe_topk(s->logits, hp->n_expert, K, s->ids);
    double sum = 0;
    for (int k = 0; k < K; k++) sum += s->w[k] = s->logits[s->ids[k]];
    if (hp->norm_topk)
        for (int k = 0; k < K; k++) s->w[k] = (float)(s->w[k] / sum);
    if (hp->weights_scale != 1.0f)
        for (int k = 0; k < K; k++) s->w[k] *= hp->weights_scale;

    const store_expert *ex[64];
    if (K > 64) return mf_fail(e, "layer %d: %d experts per token is more than this engine supports (64)", layer, K);
    if (store_acquire(st, layer, s->ids, K, ex, e)) return -1;
    const store_tensor *roles = store_layer_roles(st, layer);
    mf_weight wv[128];
    const mf_weight *wp[128];
    float *yp[128];
    for (int k = 0; k < K; k++) {
        wv[2 * k] = expert_view(&roles[STORE_GATE], ex[k]->data[STORE_GATE]);
        wv[2 * k + 1] = expert_view(&roles[STORE_UP], ex[k]->data[STORE_UP]);
        wp[2 * k] = &wv[2 * k];
        wp[2 * k + 1] = &wv[2 * k + 1];
        yp[2 * k] = s->gate + (size_t)k * n_ff;
        yp[2 * k + 1] = s->up + (size_t)k * n_ff;
    }
    op_matvec_multi(pool, 2 * K, wp, h, yp);
    memset(out, 0, sizeof(float) * (size_t)n_embd);
    for (int k = 0; k < K; k++) {
        float *g = s->gate + (size_t)k * n_ff, *u = s->up + (size_t)k * n_ff;
        for (int i = 0; i < n_ff; i++) g[i] = op_silu(g[i]) * u[i];
        mf_weight down = expert_view(&roles[STORE_DOWN], ex[k]->data[STORE_DOWN]);
        op_matvec(pool, &down, g, s->down);
        for (int i = 0; i < n_embd; i++) out[i] += s->w[k] * s->down[i];
    }
    store_release(st, layer, s->ids, K);
    return 0;
}
