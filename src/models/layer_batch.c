/* layer_batch.c — chunked prefill and the SwiGLU FFN shared by deepseek2,
 * glm4moe, gpt-oss and llama (see layer_batch.h). Nothing here knows an
 * architecture's attention: each passes its layer as a function. */
#include "models/layer_batch.h"

#include <stdlib.h>
#include <string.h>

static void add_bias(float *x, const mf_weight *b, size_t n)
{
    if (!b || !b->name) return;
    const float *v = b->data;
    for (size_t i = 0; i < n; i++) x[i] += v[i];
}

void lb_ffn_one(mf_pool *pool, const lb_ffn *f, const float *h, float *g, float *u, float *out)
{
    const size_t F = f->gate->ne[1];
    const mf_weight *ws[2] = { f->gate, f->up };
    float *ys[2] = { g, u };
    op_matvec_multi(pool, 2, ws, h, ys);
    add_bias(g, f->gate_b, F);
    add_bias(u, f->up_b, F);
    for (size_t i = 0; i < F; i++) g[i] = op_silu(g[i]) * u[i];
    op_matvec(pool, f->down, g, out);
    add_bias(out, f->down_b, f->down->ne[1]);
}

void lb_ffn_batch(mf_pool *pool, const lb_ffn *f, int T, lb_scratch *b, float *OUT)
{
    const size_t F = f->gate->ne[1], E = b->n_embd;
    const mf_weight *ws[2] = { f->gate, f->up }, *wd[1] = { f->down };
    float *ys[2] = { b->G, b->U }, *yd[1] = { OUT };
    op_matmul(pool, 2, ws, b->H, E, T, ys, F, b->q, b->qcap);
    for (int t = 0; t < T; t++) {
        float *g = b->G + (size_t)t * F, *u = b->U + (size_t)t * F;
        add_bias(g, f->gate_b, F);
        add_bias(u, f->up_b, F);
        for (size_t i = 0; i < F; i++) g[i] = op_silu(g[i]) * u[i];
    }
    op_matmul(pool, 1, wd, b->G, F, T, yd, E, b->q, b->qcap);
    for (int t = 0; t < T; t++) add_bias(OUT + (size_t)t * E, f->down_b, E);
}

int lb_moe_batch(mf_pool *pool, store *st, int l, const moe_hparams *hp, const mf_weight *router, const lb_ffn *sh,
                 int T, lb_scratch *b, mf_error *e)
{
    const size_t E = b->n_embd;
    if (moe_forward_batch(pool, st, l, hp, router, b->H, E, T, &b->mb, b->Y, E, e)) return -1;
    if (!sh) return 0;
    lb_ffn_batch(pool, sh, T, b, b->Y2);
    lb_add(b->Y, b->Y2, (size_t)T * E);
    return 0;
}

void lb_rmsnorm(float *H, const float *X, const float *g, int T, size_t n, float eps)
{
    for (int t = 0; t < T; t++) op_rmsnorm(H + (size_t)t * n, X + (size_t)t * n, g, n, eps);
}

void lb_add(float *X, const float *Y, size_t n)
{
    for (size_t i = 0; i < n; i++) X[i] += Y[i];
}

/* Bytes of quantized input the largest product of T rows by w needs;
 * twice that, as two weights of different types may share one call. */
static size_t qbytes_of(const mf_weight *w, int T)
{
    return 2 * op_matmul_qbytes(1, &w, T);
}

int lb_alloc(lb_scratch *b, const lb_model *lm, size_t n_ff, size_t attn_floats, const moe_hparams *moe, store *st,
             int n_w, const mf_weight *const *w, mf_error *e)
{
    if (b->floats) return 0;
    const int T = lm->batch;
    const size_t C = (size_t)T, E = lm->n_embd;
    size_t qb = qbytes_of(lm->output, T);
    for (int i = 0; i < n_w; i++) {
        if (!w[i]->name) continue;
        size_t q = qbytes_of(w[i], T);
        qb = q > qb ? q : qb;
    }
    for (uint32_t l = 0; moe && l < lm->n_layer; l++) {
        const store_tensor *roles = store_layer_roles(st, (int)l);
        for (int r = 0; r < STORE_ROLE_COUNT; r++) {
            if (!roles[r].t) continue;
            mf_weight ew = { .type = roles[r].t->type, .ne = { roles[r].t->ne[0], 1, 1, 1 } };
            size_t q = qbytes_of(&ew, T);
            qb = q > qb ? q : qb;
        }
    }
    const size_t nf = 4 * C * E + 2 * C * n_ff + attn_floats;
    b->floats = calloc(nf + (moe ? moe_batch_floats(moe, T) : 0), sizeof(float));
    b->ints = moe ? calloc(moe_batch_ints(moe, T), sizeof(int32_t)) : NULL;
    b->q = malloc(qb + 64);
    if (!b->floats || (moe && !b->ints) || !b->q) {
        lb_free(b);
        return mf_fail(e, "out of memory for the scratch of a %d-token prefill pass (%zu floats)", T, nf);
    }
    b->cap = T;
    b->n_embd = E;
    b->n_ff = n_ff;
    b->qcap = qb + 64;
    float *p = b->floats;
    b->X = p, p += C * E;
    b->H = p, p += C * E;
    b->Y = p, p += C * E;
    b->Y2 = p, p += C * E;
    b->G = p, p += C * n_ff;
    b->U = p, p += C * n_ff;
    b->A = p, p += attn_floats;
    if (moe) moe_batch_init(&b->mb, moe, T, p, b->ints, b->q, b->qcap);
    return 0;
}

size_t lb_attn_floats(const attn_hparams *hp, int T)
{
    const size_t Q = (size_t)hp->n_head * hp->head_dim, KV = (size_t)hp->n_head_kv * hp->head_dim;
    return (size_t)T * (2 * Q + 2 * KV);
}

attn_batch_scratch lb_attn_scratch(const lb_scratch *b, const attn_hparams *hp, float *att)
{
    const size_t T = (size_t)b->cap, Q = (size_t)hp->n_head * hp->head_dim, KV = (size_t)hp->n_head_kv * hp->head_dim;
    attn_batch_scratch s = { .q = b->A, .att = att, .qbuf = b->q, .qcap = b->qcap };
    s.o = s.q + T * Q;
    s.k = s.o + T * Q;
    s.v = s.k + T * KV;
    return s;
}

void lb_free(lb_scratch *b)
{
    free(b->floats);
    free(b->ints);
    free(b->q);
    memset(b, 0, sizeof *b);
}

/* The final norm and the output head of the rows asked for: all of them
 * into all (row c + t), the last of the prompt into last. */
static void chunk_logits(const lb_model *lm, lb_scratch *b, int c, int T, int n, float *all, float *last)
{
    const size_t E = lm->n_embd, V = lm->n_vocab;
    for (int t = 0; t < T; t++) {
        float *out = all ? all + (size_t)(c + t) * V : (c + t + 1 == n ? last : NULL);
        if (!out) continue;
        op_rmsnorm(b->H, b->X + (size_t)t * E, lm->output_norm->data, E, lm->eps);
        op_matvec(lm->pool, lm->output, b->H, out);
        if (all && last && c + t + 1 == n) memcpy(last, out, V * sizeof(float));
    }
}

int lb_run(const lb_model *lm, lb_scratch *b, lb_layer_fn layer, void *model, void *state, const int32_t *tokens,
           int n, uint32_t pos0, float *all, float *last, mf_error *e)
{
    const size_t E = lm->n_embd;
    for (int c = 0; c < n; c += lm->batch) {
        const int T = n - c < lm->batch ? n - c : lm->batch;
        for (int t = 0; t < T; t++) {
            const int32_t tok = tokens[c + t];
            if (tok < 0 || (uint32_t)tok >= lm->n_vocab)
                return mf_fail(e, "token id %d at prompt position %d out of range (vocab %u)", tok, c + t, lm->n_vocab);
            op_get_row(lm->tok_embd, (uint64_t)tok, b->X + (size_t)t * E);
        }
        for (uint32_t l = 0; l < lm->n_layer; l++)
            if (layer(model, state, l, pos0 + (uint32_t)c, T, b, e)) return -1;
        chunk_logits(lm, b, c, T, n, all, last);
    }
    return 0;
}

void lb_prefetch(mf_pool *pool, store *st, const moe_hparams *next_hp, int next_layer, const mf_weight *router,
                 const float *norm, float eps, const float *x, moe_scratch *s)
{
    if (!router || !router->name) return;
    const moe_next next = { next_layer, router, norm, eps, x };
    moe_prefetch(pool, st, next_hp, &next, s);
}
