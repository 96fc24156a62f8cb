/* layer_batch.c — the FFN half of a layer token by token, and chunked
 * prefill, shared by deepseek2, glm4moe, gpt-oss, llama and qwen3moe (see
 * layer_batch.h). Nothing here knows an architecture's attention: each
 * passes its own. */
#include "models/layer_batch.h"
#include "models/decoder.h"

#include <stdlib.h>
#include <string.h>

static void add_bias(float *x, const mf_weight *b, size_t n)
{
    if (!b || !b->name) return;
    const float *v = b->data;
    for (size_t i = 0; i < n; i++) x[i] += v[i];
}

static void add_vec(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] += y[i];
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

void lb_guess(const lb_model *lm, uint32_t l, const float *x, moe_scratch *ms)
{
    if (l >= lm->n_layer || !lm->layers[l].router) return;
    const lb_layer *L = &lm->layers[l];
    const moe_next next = { (int)l, L->router, L->ffn_norm, lm->eps, x, &L->hp };
    moe_prefetch(lm->pool, lm->store, &L->hp, &next, ms);
}

int lb_ffn_block(const lb_model *lm, uint32_t l, const float *h, const float *x, moe_scratch *ms, float *g, float *u,
                 float *sh, float *out, mf_error *e)
{
    const lb_layer *L = &lm->layers[l];
    if (!L->router) {
        lb_guess(lm, l + 1, x, ms);
        lb_ffn_one(lm->pool, &L->ffn, h, g, u, out);
        return 0;
    }
    /* the next layer's guess queues behind this layer's demand reads, with
     * the next layer's own biases (moe_next.hp) */
    const lb_layer *N = l + 1 < lm->n_layer && lm->layers[l + 1].router ? &lm->layers[l + 1] : NULL;
    const moe_next next = { (int)l + 1, N ? N->router : NULL, N ? N->ffn_norm : NULL, lm->eps, x, N ? &N->hp : NULL };
    if (moe_route(lm->pool, lm->store, (int)l, &L->hp, L->router, h, ms, N ? &next : NULL, e)) return -1;
    moe_experts(lm->pool, lm->store, (int)l, &L->hp, h, ms, out);
    if (L->ffn.gate) {
        lb_ffn_one(lm->pool, &L->ffn, h, g, u, sh);
        add_vec(out, sh, lm->n_embd);
    }
    return 0;
}

int lb_forward(const lb_model *lm, const lb_token *t, lb_attn1_fn attn, void *model, void *state, int32_t token,
               uint32_t pos, float *logits, mf_error *e)
{
    const size_t E = lm->n_embd;
    if (token < 0 || (uint32_t)token >= lm->n_vocab)
        return mf_fail(e, "token id %d out of range (vocab %u)", token, lm->n_vocab);
    if (op_get_row(lm->tok_embd, (uint64_t)token, t->x, e)) return -1;
    lb_guess(lm, 0, t->x, t->ms);   /* decode prefetch: see lb_ffn_block */
    for (uint32_t l = 0; l < lm->n_layer; l++) {
        const lb_layer *L = &lm->layers[l];
        op_rmsnorm(t->h, t->x, L->attn_norm, E, lm->eps);
        attn(model, state, l, pos, t->h, t->tmp);
        add_vec(t->x, t->tmp, E);
        op_rmsnorm(t->h, t->x, L->ffn_norm, E, lm->eps);
        if (lb_ffn_block(lm, l, t->h, t->x, t->ms, t->g, t->u, t->sh, t->tmp, e)) return -1;
        add_vec(t->x, t->tmp, E);
    }
    if (logits) dec_logits(lm->pool, lm->output_norm, lm->output, lm->eps, t->x, t->h, logits);
    return 0;
}

/* ---- chunks ---- */

/* The FFN f of T rows of b->H into OUT (rows n_embd apart). */
static void ffn_batch(mf_pool *pool, const lb_ffn *f, int T, lb_scratch *b, float *OUT)
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

/* lb_ffn_block of T rows of b->H into b->Y: Y = routed, Y += shared, as
 * token by token adds them. */
static int ffn_block_batch(const lb_model *lm, uint32_t l, int T, lb_scratch *b, mf_error *e)
{
    const lb_layer *L = &lm->layers[l];
    const size_t E = b->n_embd;
    if (!L->router) {
        ffn_batch(lm->pool, &L->ffn, T, b, b->Y);
        return 0;
    }
    if (moe_forward_batch(lm->pool, lm->store, (int)l, &L->hp, L->router, b->H, E, T, &b->mb, b->Y, E, e)) return -1;
    if (L->ffn.gate) {
        ffn_batch(lm->pool, &L->ffn, T, b, b->Y2);
        add_vec(b->Y, b->Y2, (size_t)T * E);
    }
    return 0;
}

static void rmsnorm_rows(float *H, const float *X, const float *g, int T, size_t n, float eps)
{
    for (int t = 0; t < T; t++) op_rmsnorm(H + (size_t)t * n, X + (size_t)t * n, g, n, eps);
}

/* Bytes of quantized input the largest product of T rows by w needs;
 * twice that, as two weights of different types may share one call. */
static size_t qbytes_of(const mf_weight *w, int T)
{
    return 2 * op_matmul_qbytes(1, &w, T);
}

/* The first layer with routed experts (its hparams size the experts'
 * scratch), or NULL. */
static const moe_hparams *first_moe(const lb_model *lm)
{
    for (uint32_t l = 0; l < lm->n_layer; l++)
        if (lm->layers[l].router) return &lm->layers[l].hp;
    return NULL;
}

/* Sizes b for lm->batch tokens, once: nothing happens when it is there. */
static int alloc_scratch(lb_scratch *b, const lb_model *lm, mf_error *e)
{
    if (b->floats) return 0;
    const int T = lm->batch;
    const size_t C = (size_t)T, E = lm->n_embd;
    const moe_hparams *moe = first_moe(lm);
    /* the quantized-input buffer fits the largest product; a smaller one
     * would only make op_matmul go token by token */
    size_t qb = qbytes_of(lm->output, T);
    for (int i = 0; i < lm->n_w; i++) {
        if (!lm->w[i] || !lm->w[i]->name) continue;
        size_t q = qbytes_of(lm->w[i], T);
        qb = q > qb ? q : qb;
    }
    for (uint32_t l = 0; moe && l < lm->n_layer; l++) {
        const store_tensor *roles = store_layer_roles(lm->store, (int)l);
        for (int r = 0; r < STORE_ROLE_COUNT; r++) {
            if (!roles[r].t) continue;
            mf_weight ew = { .type = roles[r].t->type, .ne = { roles[r].t->ne[0], 1, 1, 1 } };
            size_t q = qbytes_of(&ew, T);
            qb = q > qb ? q : qb;
        }
    }
    const size_t nf = 4 * C * E + 2 * C * lm->n_ff + lm->attn_floats;
    b->floats = calloc(nf + (moe ? moe_batch_floats(moe, T) : 0), sizeof(float));
    b->ints = moe ? calloc(moe_batch_ints(moe, T), sizeof(int32_t)) : NULL;
    b->q = malloc(qb + 64);
    if (!b->floats || (moe && !b->ints) || !b->q) {
        lb_free(b);
        return mf_fail(e, "out of memory for the scratch of a %d-token prefill pass (%zu floats)", T, nf);
    }
    b->cap = T;
    b->n_embd = E;
    b->n_ff = lm->n_ff;
    b->qcap = qb + 64;
    float *p = b->floats;
    b->X = p, p += C * E;
    b->H = p, p += C * E;
    b->Y = p, p += C * E;
    b->Y2 = p, p += C * E;
    b->G = p, p += C * lm->n_ff;
    b->U = p, p += C * lm->n_ff;
    b->A = p, p += lm->attn_floats;
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

int lb_layers_new(lb_model *lm, size_t attn_floats, mf_error *e)
{
    lm->attn_floats = attn_floats;
    lm->layers = calloc(lm->n_layer ? lm->n_layer : 1, sizeof *lm->layers);
    return lm->layers ? 0 : mf_fail(e, "out of memory");
}

void lb_free(lb_scratch *b)
{
    free(b->floats);
    free(b->ints);
    free(b->q);
    memset(b, 0, sizeof *b);
}

int lb_run(const lb_model *lm, lb_scratch *b, lb_attn_fn attn, void *model, void *state, const int32_t *tokens, int n,
           uint32_t pos0, float *all, float *last, mf_error *e)
{
    const size_t E = lm->n_embd;
    if (alloc_scratch(b, lm, e)) return -1;
    for (int c = 0; c < n; c += lm->batch) {
        const int T = n - c < lm->batch ? n - c : lm->batch;
        const uint32_t p0 = pos0 + (uint32_t)c;
        for (int t = 0; t < T; t++) {
            const int32_t tok = tokens[c + t];
            if (tok < 0 || (uint32_t)tok >= lm->n_vocab)
                return mf_fail(e, "token id %d at prompt position %d out of range (vocab %u)", tok, c + t, lm->n_vocab);
            if (op_get_row(lm->tok_embd, (uint64_t)tok, b->X + (size_t)t * E, e)) return -1;
        }
        for (uint32_t l = 0; l < lm->n_layer; l++) {
            const lb_layer *L = &lm->layers[l];
            rmsnorm_rows(b->H, b->X, L->attn_norm, T, E, lm->eps);
            attn(model, state, l, p0, T, b);
            add_vec(b->X, b->Y, (size_t)T * E);
            rmsnorm_rows(b->H, b->X, L->ffn_norm, T, E, lm->eps);
            if (ffn_block_batch(lm, l, T, b, e)) return -1;
            add_vec(b->X, b->Y, (size_t)T * E);
        }
        dec_logits_rows(lm->pool, lm->output_norm, lm->output, lm->eps, b->X, b->H, c, T, n, all, last);
    }
    return 0;
}
