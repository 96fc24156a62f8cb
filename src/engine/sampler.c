/* sampler.c — choosing the next token from logits.
 *
 * The chain is llama.cpp's default order, so a user's flags mean what they
 * mean there: repetition penalty over the last N tokens (CTRL, Keskar et
 * al. 2019: positive logits divided, negative multiplied), top-k, top-p
 * (nucleus, Holtzman et al. 2019), min-p (relative to the top probability),
 * temperature, then a draw from a seeded generator. Temperature <= 0 is
 * greedy argmax over the penalised logits (ties: the lowest id). Buffers are
 * allocated once, at creation.
 */
#include "moeflash.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand { float logit, p; int32_t id; } cand;

struct mf_sampler {
    mf_sampler_params p;
    uint32_t n_vocab;
    cand *c;
    int32_t *recent;       /* ring of accepted tokens */
    int n_recent, head;
    uint64_t rng;
};

void mf_sampler_params_default(mf_sampler_params *p)
{
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = 0x5eed;
}

mf_sampler *mf_sampler_new(const mf_sampler_params *p, uint32_t n_vocab)
{
    mf_sampler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = *p;
    if (s->p.repeat_last_n < 0) s->p.repeat_last_n = 0;
    s->n_vocab = n_vocab;
    s->c = malloc((size_t)n_vocab * sizeof *s->c);
    s->recent = malloc(((size_t)s->p.repeat_last_n + 1) * sizeof *s->recent);
    if (!s->c || !s->recent) { mf_sampler_free(s); return NULL; }
    s->rng = p->seed ? p->seed : 0x9e3779b97f4a7c15ull;
    return s;
}

void mf_sampler_free(mf_sampler *s)
{
    if (!s) return;
    free(s->c);
    free(s->recent);
    free(s);
}

void mf_sampler_accept(mf_sampler *s, int32_t token)
{
    if (s->p.repeat_last_n == 0) return;
    s->recent[s->head] = token;
    s->head = (s->head + 1) % s->p.repeat_last_n;
    if (s->n_recent < s->p.repeat_last_n) s->n_recent++;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int by_logit_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* a ranks below b in by_logit_desc's order */
static int worse(const cand *a, const cand *b)
{
    return a->logit != b->logit ? a->logit < b->logit : a->id > b->id;
}

/* c[i] down the heap of the k best so far, whose root c[0] is the worst */
static void sift_down(cand *c, size_t k, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, w = i;
        if (l < k && worse(&c[l], &c[w])) w = l;
        if (l + 1 < k && worse(&c[l + 1], &c[w])) w = l + 1;
        if (w == i) return;
        const cand t = c[i];
        c[i] = c[w];
        c[w] = t;
        i = w;
    }
}

/* Moves the k best of c[0..n) (by by_logit_desc) to c[0..k), in no
 * particular order: a heap of the k best so far, each later candidate
 * compared with its worst. */
static void select_top(cand *c, size_t n, size_t k)
{
    for (size_t i = k / 2; i-- > 0;) sift_down(c, k, i);
    for (size_t i = k; i < n; i++) {
        if (!worse(&c[0], &c[i])) continue;
        c[0] = c[i];
        sift_down(c, k, 0);
    }
}

static void penalise(mf_sampler *s, const int32_t *prev, size_t n_prev)
{
    float pen = s->p.repeat_penalty;
    if (pen == 1.0f || s->p.repeat_last_n == 0) return;
    /* The window is the caller's history when given, else the accepted ring. */
    size_t n = prev ? (n_prev < (size_t)s->p.repeat_last_n ? n_prev : (size_t)s->p.repeat_last_n) : (size_t)s->n_recent;
    for (size_t i = 0; i < n; i++) {
        int32_t t = prev ? prev[n_prev - 1 - i] : s->recent[i];
        if (t < 0 || (uint32_t)t >= s->n_vocab) continue;
        /* a token seen twice is penalised once: mark by checking earlier ones */
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = (prev ? prev[n_prev - 1 - j] : s->recent[j]) == t;
        if (seen) continue;
        cand *c = &s->c[t];
        c->logit = c->logit > 0 ? c->logit / pen : c->logit * pen;
    }
}

int32_t mf_sample(mf_sampler *s, const float *logits, const int32_t *prev, size_t n_prev)
{
    const uint32_t V = s->n_vocab;
    for (uint32_t i = 0; i < V; i++) s->c[i] = (cand){ logits[i], 0, (int32_t)i };
    penalise(s, prev, n_prev);
    if (s->p.temperature <= 0) {
        uint32_t best = 0;
        for (uint32_t i = 1; i < V; i++)
            if (s->c[i].logit > s->c[best].logit) best = i;
        return (int32_t)best;
    }
    size_t n = V;
    if (s->p.top_k > 0 && (size_t)s->p.top_k < n) {
        /* The k best under by_logit_desc's total order, then sorted: the
         * same k candidates in the same order as the first k of a full
         * sort, in O(V log k) instead of O(V log V) (a full qsort of a
         * 152k vocabulary took ~10% of a decode step). */
        n = (size_t)s->p.top_k;
        select_top(s->c, V, n);
    }
    qsort(s->c, n, sizeof *s->c, by_logit_desc);
    /* probabilities at temperature 1 for the truncations, as llama.cpp */
    double sum = 0;
    float mx = s->c[0].logit;
    for (size_t i = 0; i < n; i++) sum += s->c[i].p = expf(s->c[i].logit - mx);
    for (size_t i = 0; i < n; i++) s->c[i].p = (float)(s->c[i].p / sum);
    if (s->p.top_p < 1.0f) {
        double cum = 0;
        size_t keep = n;
        for (size_t i = 0; i < n; i++) {
            cum += s->c[i].p;
            if (cum >= s->p.top_p) { keep = i + 1; break; }
        }
        n = keep;
    }
    if (s->p.min_p > 0) {
        float thr = s->c[0].p * s->p.min_p;
        size_t keep = 1;
        while (keep < n && s->c[keep].p >= thr) keep++;
        n = keep;
    }
    sum = 0;
    for (size_t i = 0; i < n; i++) sum += s->c[i].p = expf((s->c[i].logit - mx) / s->p.temperature);
    double r = (double)(splitmix(&s->rng) >> 11) * (1.0 / 9007199254740992.0) * sum, cum = 0;
    for (size_t i = 0; i < n; i++) {
        cum += s->c[i].p;
        if (r < cum) return s->c[i].id;
    }
    return s->c[n - 1].id;
}
