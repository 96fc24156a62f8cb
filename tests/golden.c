/* golden.c — the golden comparison shared by every architecture's test. */
#include "golden.h"
#include "moeflash.h"

#include <math.h>

const golden_limits GOLDEN_F32 = { .max_abs = 1e-3, .top1_gap = 0.01, .tie_margin = 0.01 };
const golden_limits GOLDEN_Q8_0 = { .kl_median = 5e-4, .kl_mean = 1e-3, .kl_max = 5e-3, .top1_gap = 0.1,
                                    .top1_tenth = 1, .tie_margin = 0.1 };
const golden_limits GOLDEN_Q4_K_M = { .kl_median = 2e-3, .kl_mean = 1e-2, .kl_max = 0.15, .top1_gap = 0.25,
                                      .top1_tenth = 1, .tie_margin = 0.1 };

static void logsoftmax(const float *x, double *out, int n)
{
    double m = x[0];
    for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    double s = 0;
    for (int i = 0; i < n; i++) s += exp(x[i] - m);
    double l = log(s);
    for (int i = 0; i < n; i++) out[i] = x[i] - m - l;
}

static int argmax(const float *x, int n, double *gap)
{
    int a = 0;
    for (int i = 1; i < n; i++) a = x[i] > x[a] ? i : a;
    double second = -INFINITY;
    for (int i = 0; i < n; i++) if (i != a && x[i] > second) second = x[i];
    if (gap) *gap = x[a] - second;
    return a;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Compares rows x rows of got with want under lim; fills rep. */
static void compare_rows(t_state *t_, const char *what, const float *got, const float *want, int rows, int V,
                         const golden_limits *lim, golden_report *rep)
{
    double *lp = malloc(sizeof(double) * (size_t)V), *lq = malloc(sizeof(double) * (size_t)V);
    double *kl = malloc(sizeof(double) * (size_t)rows);
    memset(rep, 0, sizeof *rep);
    rep->rows = rows;
    int mismatches = 0;
    for (int r = 0; r < rows; r++) {
        const float *g = got + (size_t)r * V, *w = want + (size_t)r * V;
        for (int i = 0; i < V; i++) {
            double d = fabs((double)g[i] - w[i]);
            if (!(d <= rep->max_abs)) rep->max_abs = isnan(d) ? INFINITY : d > rep->max_abs ? d : rep->max_abs;
        }
        logsoftmax(w, lp, V);
        logsoftmax(g, lq, V);
        double k = 0;
        for (int i = 0; i < V; i++) k += exp(lp[i]) * (lp[i] - lq[i]);
        kl[r] = k;
        rep->kl_mean += k / rows;
        if (k > rep->kl_max) rep->kl_max = k;
        double gap;
        int ref = argmax(w, V, &gap), mine = argmax(g, V, NULL);
        if (ref == mine) rep->top1_match++;
        else {
            mismatches++;
            CHECKF(gap < lim->top1_gap, "%s row %d: top-1 %d, reference %d with gap %.4g >= %.3g", what, r, mine, ref,
                   gap, lim->top1_gap);
        }
    }
    qsort(kl, (size_t)rows, sizeof *kl, cmp_d);
    rep->kl_median = rows % 2 ? kl[rows / 2] : (kl[rows / 2 - 1] + kl[rows / 2]) / 2;
    if (lim->max_abs > 0) CHECKF(rep->max_abs <= lim->max_abs, "%s: max |d| %.3g > %.3g", what, rep->max_abs, lim->max_abs);
    if (lim->kl_median > 0) {
        CHECKF(rep->kl_median <= lim->kl_median, "%s: median KL %.3g > %.3g", what, rep->kl_median, lim->kl_median);
        CHECKF(rep->kl_mean <= lim->kl_mean, "%s: mean KL %.3g > %.3g", what, rep->kl_mean, lim->kl_mean);
        CHECKF(rep->kl_max <= lim->kl_max, "%s: max KL %.3g > %.3g", what, rep->kl_max, lim->kl_max);
    }
    if (lim->top1_tenth) CHECKF(mismatches <= (rows + 9) / 10, "%s: %d top-1 mismatches in %d rows", what, mismatches, rows);
    free(lp), free(lq), free(kl);
}

static int32_t *read_ids(const char *path, size_t *n)
{
    char *txt = t_read_file(path, NULL);
    if (!txt) return NULL;
    size_t cap = 64;
    int32_t *v = malloc(cap * sizeof *v);
    *n = 0;
    char *p = txt, *end;
    for (;;) {
        long x = strtol(p, &end, 10);
        if (end == p) break;
        if (*n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
        v[(*n)++] = (int32_t)x;
        p = end;
    }
    free(txt);
    return v;
}

/* greedy.txt: "token gap" per line */
static int read_greedy(const char *path, int32_t *tok, double *gap, int max)
{
    char *txt = t_read_file(path, NULL);
    if (!txt) return -1;
    int n = 0;
    char *line = strtok(txt, "\n");
    while (line && n < max) {
        if (sscanf(line, "%d %lf", &tok[n], &gap[n]) == 2) n++;
        line = strtok(NULL, "\n");
    }
    free(txt);
    return n;
}

int golden_check(t_state *t_, const char *dir, const char *model, const char *p, const golden_limits *lim,
                 int n_threads, golden_report *prompt_rep, golden_report *tf_rep)
{
    char path[512], file[512];
    snprintf(file, sizeof file, "%s/%s.gguf", dir, model);
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.n_threads = n_threads;
    mf_error e;
    mf_model *m = mf_model_open(t_shared(file), &mp, &e);
    CHECKF(m, "%s", e.msg);
    if (!m) return -1;
    const int V = (int)mf_model_get_info(m)->n_vocab;
    size_t n;
    snprintf(path, sizeof path, "%s/%s.%s.prompt.txt", dir, model, p);
    int32_t *ids = read_ids(t_shared(path), &n);
    CHECKF(ids && n > 0, "cannot read %s", path);
    int32_t gtok[16];
    double ggap[16];
    snprintf(path, sizeof path, "%s/%s.%s.greedy.txt", dir, model, p);
    int ng = read_greedy(t_shared(path), gtok, ggap, 16);
    CHECKF(ng == 16, "%s: %d greedy steps", path, ng);
    size_t len;
    snprintf(path, sizeof path, "%s/%s.%s.logits.f32", dir, model, p);
    float *want = t_read_file(t_shared(path), &len);
    snprintf(path, sizeof path, "%s/%s.%s.greedy.logits.f32", dir, model, p);
    size_t tlen;
    float *twant = t_read_file(t_shared(path), &tlen);
    if (!ids || ng != 16 || !want || !twant || len != n * V * sizeof(float) || tlen != 16u * V * sizeof(float)) {
        CHECKF(0, "%s/%s.%s: golden files missing or of the wrong size", dir, model, p);
        free(ids), free(want), free(twant);
        mf_model_close(m);
        return -1;
    }
    float *got = malloc(sizeof(float) * n * (size_t)V);
    float *tgot = malloc(sizeof(float) * 16 * (size_t)V);
    char what[600];
    mf_session *s = mf_session_new(m, 512, &e);
    CHECKF(s, "%s", e.msg);
    int rc = -1;
    if (!s) goto out;
    /* prompt logits, one batch */
    if (mf_eval(s, ids, n, got, &e)) { CHECKF(0, "%s", e.msg); goto out; }
    snprintf(what, sizeof what, "%s.%s prompt", model, p);
    compare_rows(t_, what, got, want, (int)n, V, lim, prompt_rep);
    /* teacher-forced: row 0 = last prompt row, then feed the reference tokens */
    memcpy(tgot, got + (n - 1) * (size_t)V, sizeof(float) * V);
    for (int k = 1; k < 16; k++)
        if (mf_eval(s, &gtok[k - 1], 1, tgot + (size_t)k * V, &e)) { CHECKF(0, "%s", e.msg); goto out; }
    snprintf(what, sizeof what, "%s.%s teacher-forced", model, p);
    compare_rows(t_, what, tgot, twant, 16, V, lim, tf_rep);
    /* greedy with our own tokens fed back */
    if (mf_session_truncate(s, 0, &e) || mf_eval(s, ids, n, NULL, &e)) { CHECKF(0, "%s", e.msg); goto out; }
    tf_rep->greedy_checked = tf_rep->greedy_ok = 0;
    for (int k = 0; k < 16; k++) {
        int32_t tok = (int32_t)argmax(mf_session_logits(s), V, NULL);
        if (ggap[k] < lim->tie_margin) break;
        tf_rep->greedy_checked++;
        CHECKF(tok == gtok[k], "%s.%s greedy step %d: token %d, reference %d (gap %.4g)", model, p, k + 1, tok, gtok[k], ggap[k]);
        if (tok != gtok[k]) break;
        tf_rep->greedy_ok++;
        if (k < 15 && mf_eval(s, &tok, 1, NULL, &e)) { CHECKF(0, "%s", e.msg); goto out; }
    }
    printf("  %-28s %s: prompt max|d| %.3g KL med %.3g mean %.3g max %.3g top1 %d/%d | TF max|d| %.3g KL med %.3g "
           "mean %.3g max %.3g top1 %d/16 | greedy %d/%d\n",
           model, p, prompt_rep->max_abs, prompt_rep->kl_median, prompt_rep->kl_mean, prompt_rep->kl_max,
           prompt_rep->top1_match, prompt_rep->rows, tf_rep->max_abs, tf_rep->kl_median, tf_rep->kl_mean, tf_rep->kl_max,
           tf_rep->top1_match, tf_rep->greedy_ok, tf_rep->greedy_checked);
    rc = 0;
out:
    mf_session_free(s);
    mf_model_close(m);
    free(ids), free(want), free(twant), free(got), free(tgot);
    return rc;
}

void golden_threads_agree(t_state *t_, const char *dir, const char *model, const char *p)
{
    char path[512], file[512];
    snprintf(file, sizeof file, "%s/%s.gguf", dir, model);
    snprintf(path, sizeof path, "%s/%s.%s.prompt.txt", dir, model, p);
    size_t n;
    int32_t *ids = read_ids(t_shared(path), &n);
    REQUIREF(ids, "cannot read %s", path);
    float *out[2] = { NULL, NULL };
    int V = 0;
    for (int th = 1; th <= 2; th++) {
        mf_model_params mp;
        mf_model_params_default(&mp);
        mp.n_threads = th;
        mf_error e;
        mf_model *m = mf_model_open(t_shared(file), &mp, &e);
        REQUIREF(m, "%s", e.msg);
        V = (int)mf_model_get_info(m)->n_vocab;
        mf_session *s = mf_session_new(m, 512, &e);
        out[th - 1] = malloc(sizeof(float) * n * (size_t)V);
        CHECKF(s && mf_eval(s, ids, n, out[th - 1], &e) == 0, "%s", e.msg);
        mf_session_free(s);
        mf_model_close(m);
    }
    CHECKF(memcmp(out[0], out[1], sizeof(float) * n * (size_t)V) == 0, "%s.%s: 1 and 2 threads differ", model, p);
    free(out[0]), free(out[1]), free(ids);
}
