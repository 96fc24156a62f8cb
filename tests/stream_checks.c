/* stream_checks.c — see stream_checks.h. */
#include "stream_checks.h"
#include "moeflash.h"
#include "gguf.h"
#include "engine/plan.h"

#include <inttypes.h>
#include <stdarg.h>

/* Whitespace-separated integers of a file; the first of each line when
 * first_only (greedy.txt: "token gap"). */
static int32_t *read_ints(const char *path, int first_only, size_t *n)
{
    char *txt = t_read_file(path, NULL);
    if (!txt) return NULL;
    size_t cap = 64;
    int32_t *v = malloc(cap * sizeof *v);
    *n = 0;
    for (char *p = txt; *p;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p) break;
        if (*n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
        v[(*n)++] = (int32_t)x;
        p = end;
        if (first_only) {
            while (*p && *p != '\n') p++;
        }
    }
    free(txt);
    return v;
}

/* Prompt p of model then its first 15 reference greedy tokens, one token
 * at a time after the prompt; returns rows x V logits (NULL on failure). */
static float *eval_seq(t_state *t_, const char *model, const char *p, uint64_t cache_bytes, size_t *rows,
                       size_t *n_vocab, mf_stats *st)
{
    char path[512];
    snprintf(path, sizeof path, "golden/%s.gguf", model);
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.n_threads = 1;
    mp.cache_bytes = cache_bytes;
    mf_error e;
    mf_model *m = mf_model_open(t_shared(path), &mp, &e);
    CHECKF(m, "%s", e.msg);
    if (!m) return NULL;
    const size_t V = *n_vocab = mf_model_get_info(m)->n_vocab;
    size_t n, ng;
    snprintf(path, sizeof path, "golden/%s.%s.prompt.txt", model, p);
    int32_t *ids = read_ints(t_shared(path), 0, &n);
    snprintf(path, sizeof path, "golden/%s.%s.greedy.txt", model, p);
    int32_t *g = read_ints(t_shared(path), 1, &ng);
    float *out = NULL;
    mf_session *s = NULL;
    CHECKF(ids && g && n > 0 && ng == 16, "%s.%s: cannot read the prompt or greedy tokens", model, p);
    if (!ids || !g || n == 0 || ng != 16) goto done;
    *rows = n + 15;
    out = calloc(*rows * V, sizeof(float));
    s = mf_session_new(m, 512, &e);
    int rc = s ? mf_eval(s, ids, n, out, &e) : -1;
    for (size_t k = 0; rc == 0 && k < 15; k++) rc = mf_eval(s, &g[k], 1, out + (n + k) * V, &e);
    CHECKF(rc == 0, "%s.%s: %s", model, p, e.msg);
    if (rc) free(out), out = NULL;
    if (st) mf_model_stats(m, st);
done:
    mf_session_free(s);
    mf_model_close(m);
    free(ids), free(g);
    return out;
}

void stream_check_small_cache(t_state *t_, const char *model)
{
    char path[512];
    snprintf(path, sizeof path, "golden/%s.gguf", model);
    mf_error e;
    gguf_file *f = gguf_open(t_shared(path), &e);
    REQUIREF(f, "%s", e.msg);
    mf_plan plan;
    int rc = plan_compute(f, &plan, &e);
    gguf_close(f);
    REQUIREF(rc == 0, "%s", e.msg);
    const uint64_t n_slots_all = (uint64_t)plan.n_moe_layers * plan.n_expert, K = plan.n_expert_used;
    plan_free(&plan);
    REQUIRE(n_slots_all > 0 && K > 0);

    for (int pi = 0; pi < 2; pi++) {
        const char *p = pi ? "b" : "a";
        size_t rows_all = 0, rows_small = 0, V = 0;
        mf_stats st_all, st_small;
        /* a budget beyond all experts (0 would mean --cache auto) */
        float *all = eval_seq(t_, model, p, 1ull << 50, &rows_all, &V, &st_all);
        REQUIRE(all);
        const uint64_t slot = st_all.cache_bytes / n_slots_all;
        REQUIREF(slot > 0 && slot * n_slots_all == st_all.cache_bytes, "%s: all-cached budget %" PRIu64
                 " is not %" PRIu64 " equal slots", model, st_all.cache_bytes, n_slots_all);
        /* Just above the minimum: room for K experts and half of another. */
        float *small = eval_seq(t_, model, p, K * slot + slot / 2, &rows_small, &V, &st_small);
        if (small) {
            CHECKF(st_small.cache_bytes == K * slot, "%s: small cache holds %" PRIu64 " bytes, expected %" PRIu64,
                   model, st_small.cache_bytes, K * slot);
            CHECKF(rows_small == rows_all, "%s.%s: %zu rows vs %zu", model, p, rows_small, rows_all);
            CHECKF(rows_small == rows_all && memcmp(all, small, rows_all * V * sizeof(float)) == 0,
                   "%s.%s: logits with a %" PRIu64 "-expert cache differ from all-cached", model, p, K);
            CHECKF(st_small.cache_misses > n_slots_all, "%s.%s: %" PRIu64 " misses with %" PRIu64
                   " slots: the small cache did not stream", model, p, st_small.cache_misses, K);
            printf("  %-28s %s: %zu rows bit-identical with %" PRIu64 " of %" PRIu64 " expert slots (%" PRIu64
                   " misses, %" PRIu64 " hits)\n", model, p, rows_all, K, n_slots_all, st_small.cache_misses,
                   st_small.cache_hits);
        }
        free(all), free(small);
        if (pi == 0) {
            mf_model_params mp;
            mf_model_params_default(&mp);
            mp.cache_bytes = K * slot - 1;
            mf_model *m = mf_model_open(t_shared(path), &mp, &e);
            CHECKF(!m, "%s: a cache of %" PRIu64 " bytes (below %" PRIu64 " experts) was accepted", model,
                   mp.cache_bytes, K);
            if (!m) CHECKF(strstr(e.msg, "--cache") != NULL, "%s: the refusal does not name the minimum: %s", model, e.msg);
            mf_model_close(m);
        }
    }
}

/* The integer after `label` in text, or -1. */
static int64_t after(const char *text, const char *label)
{
    const char *p = strstr(text, label);
    return p ? strtoll(p + strlen(label), NULL, 10) : -1;
}

void stream_check_inspect(t_state *t_, const char *model, unsigned n_moe_layers)
{
    char path[512];
    snprintf(path, sizeof path, "golden/%s.tensors.txt", model);
    char *list = t_read_file(t_shared(path), NULL);
    REQUIREF(list, "cannot read %s", path);
    uint64_t total = 0, experts = 0, embd = 0;
    bool untied = false;
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
        char name[256];
        unsigned long long off, nbytes;
        if (sscanf(line, "%255s %*s %*s %llu %llu", name, &off, &nbytes) != 3) continue;
        total += nbytes;
        if (strstr(name, "_exps.")) experts += nbytes;
        if (!strcmp(name, "token_embd.weight")) embd = nbytes;
        if (!strcmp(name, "output.weight")) untied = true;
    }
    if (!untied) embd = 0; /* tied: the embedding is the output head, resident */
    free(list);

    snprintf(path, sizeof path, "golden/%s.gguf", model);
    char *out = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&out, &len);
    REQUIRE(mem);
    mf_error e;
    int rc = mf_inspect(t_shared(path), mem, &e);
    fclose(mem);
    CHECKF(rc == 0, "%s", e.msg);
    if (rc == 0) {
        int64_t t = after(out, "total tensor bytes:"), r = after(out, "resident (non-expert):"),
                x = after(out, "routed experts:"), d = after(out, "token embedding, read per token:");
        CHECKF(t >= 0 && r >= 0 && x >= 0, "%s: inspect prints no memory plan", model);
        if (d < 0) d = 0;
        CHECKF((uint64_t)d == embd, "%s: embedding read per token %" PRId64 ", the listing says %" PRIu64 " (untied: %d)",
               model, d, embd, untied);
        CHECKF(r + d + x == t, "%s: resident %" PRId64 " + embedding %" PRId64 " + experts %" PRId64 " != total %" PRId64,
               model, r, d, x, t);
        CHECKF((uint64_t)t == total, "%s: total %" PRId64 ", the tensor listing sums to %" PRIu64, model, t, total);
        CHECKF((uint64_t)x == experts, "%s: routed experts %" PRId64 ", the listing's _exps tensors sum to %" PRIu64,
               model, x, experts);
        char want[64];
        snprintf(want, sizeof want, "in %u MoE layers", n_moe_layers);
        CHECKF(strstr(out, want) != NULL, "%s: inspect does not say \"%s\"", model, want);
        printf("  %-28s inspect: total %" PRId64 " = resident %" PRId64 " + embedding %" PRId64 " + experts %" PRId64 "\n",
               model, t, r, d, x);
    }
    free(out);
}

const char *stream_copy_without(t_state *t_, const char *model, const char *tag, const char *drop_key,
                                const char *drop_tensor)
{
    static char out[1024];
    char path[512];
    snprintf(path, sizeof path, "golden/%s.gguf", model);
    mf_error e;
    gguf_file *f = gguf_open(t_shared(path), &e);
    CHECKF(f, "%s", e.msg);
    if (!f) return NULL;
    gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (!drop_key || strcmp(f->kv[i].key, drop_key)) gguf_w_value(w, f->kv[i].key, &f->kv[i].val);
    int rc = 0;
    for (uint64_t i = 0; rc == 0 && i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        if (!drop_tensor || strcmp(t->name, drop_tensor)) rc = gguf_w_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &e);
    }
    snprintf(out, sizeof out, "%s/%s.gguf", t_tmpdir(), tag);
    if (rc == 0) rc = gguf_w_write(w, out, 0, &e);
    CHECKF(rc == 0, "%s", e.msg);
    gguf_writer_free(w);
    gguf_close(f);
    return rc ? NULL : out;
}

void stream_expect_open_error(t_state *t_, const char *path, ...)
{
    if (!path) return;
    mf_error e;
    mf_model *m = mf_model_open(path, NULL, &e);
    CHECKF(!m, "%s: opened, expected an error", path);
    mf_model_close(m);
    if (m) return;
    va_list ap;
    va_start(ap, path);
    for (const char *want; (want = va_arg(ap, const char *));)
        CHECKF(strstr(e.msg, want) != NULL, "the error does not mention \"%s\": %s", want, e.msg);
    va_end(ap);
}
