/* policy_hot.c — a learned hot set ("hot"): the most used experts are
 * protected from eviction, the rest of the cache is LRU.
 *
 * Usage counts per (layer, expert) are kept for the whole session (and,
 * with --hot-set FILE, across sessions: read at open, written at close).
 * Every REFRESH_TOKENS tokens of steps the HOT_SHARE most used experts of
 * the cache's capacity become the hot set; a victim is the least recently
 * used unpinned expert outside it, and only when every unpinned slot is hot
 * the least recently used of those. Counts are halved when they grow large,
 * so a session that drifts to other experts is followed.
 *
 * The file is text, one expert per line after a two-line header:
 *   # moeflash hot-set v1
 *   n_layer=48 n_expert=128
 *   LAYER EXPERT COUNT
 * and is written to FILE.tmp then renamed, so a crash never leaves half.
 */
#include "store/policy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFRESH_TOKENS 4
#define HOT_SHARE 0.5

typedef struct hot {
    store_policy base;
    uint64_t clock, step;
    uint64_t *last;          /* per slot; 0: empty */
    int32_t *key;            /* per slot; -1: empty */
    float *count;            /* per key */
    uint8_t *is_hot;         /* per key */
    float *scratch;          /* per key: for the selection */
    size_t n_keys, n_hot;
} hot;

static void swapf(float *a, float *b) { float t = *a; *a = *b; *b = t; }

/* The k-th largest of v[0..n) (0-based), v reordered (quickselect). */
static float kth_largest(float *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] > pivot) i++;
            while (v[j] < pivot) j--;
            if (i <= j) {
                swapf(&v[i], &v[j]);
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return v[k];
    }
    return v[k];
}

static void refresh(hot *h)
{
    if (h->n_hot == 0) return;
    memcpy(h->scratch, h->count, h->n_keys * sizeof *h->scratch);
    float thr = kth_largest(h->scratch, h->n_keys, h->n_hot - 1);
    if (thr <= 0) thr = 1e-30f; /* never call unused experts hot */
    size_t n = 0;
    for (size_t k = 0; k < h->n_keys; k++) {
        /* ties at the threshold: first come, until the set is full */
        h->is_hot[k] = h->count[k] > thr || (h->count[k] == thr && n < h->n_hot);
        n += h->is_hot[k];
    }
}

static void hot_step(store_policy *p, int layer)
{
    (void)layer;
    hot *h = (hot *)p;
    h->step++;
    if (h->step % ((uint64_t)REFRESH_TOKENS * p->pp.n_layer) == 0) refresh(h);
}

static void count_use(hot *h, size_t k)
{
    h->count[k] += 1.0f;
    if (h->count[k] > 1e6f)
        for (size_t i = 0; i < h->n_keys; i++) h->count[i] *= 0.5f;
}

static void hot_hit(store_policy *p, uint32_t slot, int layer, int expert)
{
    hot *h = (hot *)p;
    h->last[slot] = ++h->clock;
    count_use(h, (size_t)layer * p->pp.n_expert + (size_t)expert);
}

static void hot_insert(store_policy *p, uint32_t slot, int layer, int expert, bool demand)
{
    hot *h = (hot *)p;
    size_t k = (size_t)layer * p->pp.n_expert + (size_t)expert;
    h->key[slot] = (int32_t)k;
    h->last[slot] = ++h->clock;
    if (demand) count_use(h, k);
}

static void hot_remove(store_policy *p, uint32_t slot)
{
    hot *h = (hot *)p;
    h->key[slot] = -1;
    h->last[slot] = 0;
}

static int64_t hot_victim(store_policy *p, int layer, int expert, policy_pinned_fn pinned, void *ctx)
{
    (void)layer, (void)expert;
    hot *h = (hot *)p;
    int64_t cold = -1, any = -1;
    for (uint32_t i = 0; i < p->pp.n_slots; i++) {
        if (pinned(ctx, i)) continue;
        if (h->key[i] < 0) return i;
        if (any < 0 || h->last[i] < h->last[any]) any = i;
        if (!h->is_hot[h->key[i]] && (cold < 0 || h->last[i] < h->last[cold])) cold = i;
    }
    return cold >= 0 ? cold : any;
}

static int hot_save(store_policy *p, const char *path, mf_error *e)
{
    hot *h = (hot *)p;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (!fp) return mf_fail(e, "%s: cannot write the hot set: %s", tmp, strerror(errno));
    fprintf(fp, "# moeflash hot-set v1\nn_layer=%u n_expert=%u\n", p->pp.n_layer, p->pp.n_expert);
    for (size_t k = 0; k < h->n_keys; k++)
        if (h->count[k] > 0)
            fprintf(fp, "%zu %zu %.3f\n", k / p->pp.n_expert, k % p->pp.n_expert, (double)h->count[k]);
    if (fclose(fp) != 0) { remove(tmp); return mf_fail(e, "%s: write failed: %s", tmp, strerror(errno)); }
    if (rename(tmp, path) != 0) { remove(tmp); return mf_fail(e, "%s: cannot rename from %s: %s", path, tmp, strerror(errno)); }
    return 0;
}

/* Reads path into h->count; a missing file is an empty history. */
static int hot_load(hot *h, const char *path, mf_error *e)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return errno == ENOENT ? 0 : mf_fail(e, "%s: cannot read the hot set: %s", path, strerror(errno));
    char line[256];
    unsigned nl = 0, ne = 0;
    int rc = 0, ln = 0;
    if (!fgets(line, sizeof line, fp) || strncmp(line, "# moeflash hot-set v1", 21)) {
        rc = mf_fail(e, "%s: line 1: expected '# moeflash hot-set v1'", path);
    } else if (!fgets(line, sizeof line, fp) || sscanf(line, "n_layer=%u n_expert=%u", &nl, &ne) != 2) {
        rc = mf_fail(e, "%s: line 2: expected 'n_layer=L n_expert=E'", path);
    } else if (nl != h->base.pp.n_layer || ne != h->base.pp.n_expert) {
        rc = mf_fail(e, "%s: a hot set for %u layers of %u experts, but this model has %u of %u", path, nl, ne,
                     h->base.pp.n_layer, h->base.pp.n_expert);
    }
    for (ln = 3; !rc && fgets(line, sizeof line, fp); ln++) {
        unsigned l, x;
        double c;
        if (sscanf(line, "%u %u %lf", &l, &x, &c) != 3 || l >= nl || x >= ne || !(c >= 0 && c < 1e30))
            rc = mf_fail(e, "%s: line %d: expected 'LAYER EXPERT COUNT' with layer < %u and expert < %u", path, ln, nl, ne);
        else
            h->count[(size_t)l * ne + x] = (float)c;
    }
    fclose(fp);
    if (!rc) refresh(h);
    return rc;
}

static void hot_free(store_policy *p)
{
    hot *h = (hot *)p;
    if (!h) return;
    free(h->last);
    free(h->key);
    free(h->count);
    free(h->is_hot);
    free(h->scratch);
    free(h);
}

static const store_policy_ops hot_ops = { "hot", hot_step, hot_hit, hot_insert, hot_remove, hot_victim,
                                          hot_free, hot_save };

store_policy *policy_hot_new(const store_policy_params *pp, mf_error *e)
{
    hot *h = calloc(1, sizeof *h);
    if (!h) { mf_fail(e, "out of memory"); return NULL; }
    h->base.pp = *pp;
    h->base.ops = &hot_ops;
    h->n_keys = (size_t)pp->n_layer * pp->n_expert;
    h->n_hot = (size_t)(pp->n_slots * HOT_SHARE);
    if (h->n_hot > h->n_keys) h->n_hot = h->n_keys;
    h->last = calloc(pp->n_slots + 1, sizeof *h->last);
    h->key = malloc((pp->n_slots + 1) * sizeof *h->key);
    h->count = calloc(h->n_keys + 1, sizeof *h->count);
    h->is_hot = calloc(h->n_keys + 1, 1);
    h->scratch = calloc(h->n_keys + 1, sizeof *h->scratch);
    if (!h->last || !h->key || !h->count || !h->is_hot || !h->scratch) {
        hot_free(&h->base);
        mf_fail(e, "out of memory");
        return NULL;
    }
    for (uint32_t i = 0; i < pp->n_slots; i++) h->key[i] = -1;
    if (pp->hot_set && hot_load(h, pp->hot_set, e)) { hot_free(&h->base); return NULL; }
    return &h->base;
}
