/* model.c — the public model and session API: opens the GGUF, finds the
 * architecture, owns the thread pool and the expert store, and runs tokens
 * through the architecture's forward pass. It keeps the counters behind
 * --stats. */
#include "moeflash.h"
#include "gguf.h"
#include "models/arch.h"
#include "threads/pool.h"
#include "store/io.h"
#include "engine/plan.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mf_model {
    gguf_file *f;
    const arch_ops *arch;
    void *am;                  /* the architecture's model */
    tok_vocab *vocab;          /* NULL when the file has no usable vocabulary */
    mf_error vocab_err;
    arch_ctx ctx;
    mf_model_info info;
    char name[256];
    char io_name[16];
    bool no_batch;             /* prefill token by token (--batch 1) */
    uint64_t prompt_tokens, generated_tokens;
    double prefill_s, decode_s;
    uint64_t prefill_bytes;  /* expert bytes read during prompts */
};

struct mf_session {
    mf_model *m;
    void *state;
    uint32_t n_ctx, n_past;
    float *logits;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Everything but the routed experts (the store reads those), the untied
 * token embedding (a token reads one row of it: op_get_row) and the
 * multi-token-prediction layers after the plan's n_layer, which no
 * architecture here runs. */
typedef struct resident_ctx { const gguf_file *f; uint32_t n_layer; } resident_ctx;

static bool is_resident(const gguf_tensor *t, void *ctx)
{
    const resident_ctx *rc = ctx;
    const char *rest;
    if (plan_is_row_read(rc->f, t)) return false;
    int layer = plan_tensor_layer(t->name, &rest);
    return layer < 0 || ((uint32_t)layer < rc->n_layer && !plan_is_expert_tensor(rest));
}

void mf_model_params_default(mf_model_params *p)
{
    memset(p, 0, sizeof *p);
}

mf_model *mf_model_open(const char *path, const mf_model_params *p, mf_error *e)
{
    mf_model_params def;
    if (!p) { mf_model_params_default(&def); p = &def; }
    mf_model *m = calloc(1, sizeof *m);
    if (!m) { mf_fail(e, "out of memory"); return NULL; }
    m->f = gguf_open(path, e);
    if (!m->f) goto fail;
    uint64_t cache_bytes = p->cache_bytes;
    uint32_t run_layers = 0;
    {
        /* --cache auto, decided before the resident weights take their
         * share of memory (they are subtracted here, not twice), and
         * leaving room for the prefill batch; an explicit size that does
         * not fit is the user's call, but a memory cgroup's OOM killer
         * would end the process without a word, so say it first */
        mf_plan plan;
        if (plan_compute(m->f, &plan, e)) goto fail;
        const uint64_t work = plan_working_bytes(m->f, &plan, p->n_batch);
        const uint64_t fits = store_auto_cache_bytes(plan.resident_bytes, work);
        run_layers = plan.n_layer;
        if (cache_bytes == 0) {
            cache_bytes = fits ? fits : 1; /* store_open then names the minimum */
        } else if (cache_bytes < plan.expert_bytes &&
                   cache_bytes + plan.resident_bytes + work > store_memory_limit()) {
            fprintf(stderr,
                    "moeflash: warning: --cache %.2f GB, resident weights %.2f GB and %.2f GB of working memory "
                    "exceed the %.2f GB this process may use (memory cgroup included): the kernel may kill it; "
                    "--cache auto fits\n",
                    cache_bytes / 1e9, plan.resident_bytes / 1e9, work / 1e9, store_memory_limit() / 1e9);
        }
        plan_free(&plan);
    }
    /* The dense part is read into memory once; routed experts are read by
     * the store. Nothing maps the file afterwards, so a file changed under
     * us gives read errors, never a SIGBUS. */
    resident_ctx rc = { m->f, run_layers };
    if (gguf_load_tensors(m->f, is_resident, &rc, e)) goto fail;
    /* The vocabulary is optional for evaluating token ids; its error is kept
     * for the commands that need text. */
    m->vocab = tok_vocab_load(m->f, &m->vocab_err);
    const char *arch;
    if (gguf_get_str(m->f, "general.architecture", &arch, e)) goto fail;
    m->arch = arch_find(arch);
    if (!m->arch) {
        mf_fail(e, "%s: architecture \"%s\" is not supported (supported: %s)", path, arch, arch_supported());
        goto fail;
    }
    m->ctx.f = m->f;
    m->ctx.pool = pool_new(p->n_threads);
    m->ctx.cache_bytes = cache_bytes;
    m->no_batch = p->n_batch == 1;
    m->ctx.policy = p->policy ? p->policy : p->hot_set ? "hot" : NULL;
    m->ctx.io_threads = p->io_threads;
    m->ctx.n_batch = p->n_batch;
    m->ctx.experts_used = p->n_expert_used;
    if (!p->io || !strcmp(p->io, "pread")) m->ctx.io = IO_PREAD;
    else if (!strcmp(p->io, "direct")) m->ctx.io = IO_DIRECT;
    else if (!strcmp(p->io, "uring")) m->ctx.io = IO_URING;
    else { mf_fail(e, "--io: expected pread, direct or uring, found '%s'", p->io); goto fail; }
    snprintf(m->io_name, sizeof m->io_name, "%s", io_kind_name((io_kind)m->ctx.io));
    if (!m->ctx.pool) { mf_fail(e, "cannot start the thread pool"); goto fail; }
    arch_info ai;
    m->am = m->arch->load(&m->ctx, &ai, e);
    if (!m->am) goto fail;
    if (m->ctx.store && store_configure(m->ctx.store, !p->no_prefetch, p->hot_set, e)) goto fail;
    const char *name = NULL;
    if (gguf_find(m->f, "general.name") && gguf_get_str(m->f, "general.name", &name, NULL) == 0) {
        snprintf(m->name, sizeof m->name, "%s", name);
    } else {
        const char *slash = strrchr(path, '/');
        snprintf(m->name, sizeof m->name, "%s", slash ? slash + 1 : path);
    }
    m->info = (mf_model_info){
        .arch = m->arch->name, .name = m->name, .n_vocab = ai.n_vocab, .n_embd = ai.n_embd, .n_layer = ai.n_layer,
        .n_ctx_train = ai.n_ctx_train, .n_expert = ai.n_expert, .n_expert_used = ai.n_expert_used,
        .n_threads = pool_threads(m->ctx.pool),
    };
    return m;
fail:
    mf_model_close(m);
    return NULL;
}

void mf_model_close(mf_model *m)
{
    if (!m) return;
    if (m->am) m->arch->free(m->am);
    tok_vocab_free(m->vocab);
    store_close(m->ctx.store);
    pool_free(m->ctx.pool);
    gguf_close(m->f);
    free(m);
}

const mf_model_info *mf_model_get_info(const mf_model *m) { return &m->info; }

const mf_vocab *mf_model_vocab(const mf_model *m, mf_error *e)
{
    if (!m->vocab && e) *e = m->vocab_err;
    return m->vocab;
}

mf_session *mf_session_new(mf_model *m, uint32_t n_ctx, mf_error *e)
{
    if (n_ctx == 0) n_ctx = m->info.n_ctx_train ? m->info.n_ctx_train : 4096;
    mf_session *s = calloc(1, sizeof *s);
    if (!s) { mf_fail(e, "out of memory"); return NULL; }
    s->m = m;
    s->n_ctx = n_ctx;
    s->logits = calloc(m->info.n_vocab, sizeof(float));
    s->state = s->logits ? m->arch->state_new(m->am, n_ctx, e) : NULL;
    if (!s->state) {
        if (!s->logits) mf_fail(e, "out of memory");
        free(s->logits);
        free(s);
        return NULL;
    }
    return s;
}

void mf_session_free(mf_session *s)
{
    if (!s) return;
    s->m->arch->state_free(s->state);
    free(s->logits);
    free(s);
}

uint32_t mf_session_n_past(const mf_session *s) { return s->n_past; }
uint32_t mf_session_n_ctx(const mf_session *s) { return s->n_ctx; }
const float *mf_session_logits(const mf_session *s) { return s->logits; }

int mf_session_truncate(mf_session *s, uint32_t n_past, mf_error *e)
{
    if (n_past > s->n_past) return mf_fail(e, "cannot truncate to %u positions: the session has %u", n_past, s->n_past);
    if (s->m->arch->state_truncate(s->state, n_past, e)) return -1;
    s->n_past = n_past;
    return 0;
}

/* Expert bytes read so far, for the prefill counter. */
static uint64_t store_bytes_read(const mf_model *m)
{
    if (!m->ctx.store) return 0;
    store_stats st;
    store_get_stats(m->ctx.store, &st);
    return st.bytes_read;
}

int mf_eval(mf_session *s, const int32_t *tokens, size_t n, float *all_logits, mf_error *e)
{
    mf_model *m = s->m;
    if (n == 0) return 0;
    if (n > s->n_ctx - s->n_past)
        return mf_fail(e, "context full: %u positions used, %zu more requested, --ctx is %u", s->n_past, n, s->n_ctx);
    if (m->arch->state_reserve(s->state, s->n_past + (uint32_t)n, e)) return -1;
    /* A call with several tokens, or the first of a session, is a prompt. */
    int prompt = n > 1 || s->n_past == 0;
    double t0 = now_s();
    const uint64_t read0 = store_bytes_read(m);
    const size_t V = m->info.n_vocab;
    size_t n_done = 0;
    if (n > 1 && m->arch->forward_batch && !m->no_batch) {
        /* layer by layer over the batch: each routed expert read once */
        if (m->arch->forward_batch(m->am, s->state, tokens, (int)n, s->n_past, all_logits, s->logits, e)) {
            mf_fail_wrap(e, "evaluating %zu tokens from position %u", n, s->n_past);
            return -1;
        }
        s->n_past += (uint32_t)n;
        n_done = n;
    }
    for (size_t i = n_done; i < n; i++) {
        float *out = all_logits ? all_logits + i * V : (i + 1 == n ? s->logits : NULL);
        if (m->arch->forward(m->am, s->state, tokens[i], s->n_past, out, e)) {
            mf_fail_wrap(e, "evaluating token %zu of %zu (id %d) at position %u", i + 1, n, tokens[i], s->n_past);
            return -1;
        }
        s->n_past++;
    }
    if (all_logits) memcpy(s->logits, all_logits + (n - 1) * V, V * sizeof(float));
    double dt = now_s() - t0;
    if (prompt) m->prompt_tokens += n, m->prefill_s += dt, m->prefill_bytes += store_bytes_read(m) - read0;
    else m->generated_tokens += n, m->decode_s += dt;
    return 0;
}

static uint64_t peak_rss(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp) return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "VmHWM: %" SCNu64, &kb) == 1) break;
    fclose(fp);
    return kb * 1024;
}

void mf_model_stats(const mf_model *m, mf_stats *out)
{
    memset(out, 0, sizeof *out);
    out->prompt_tokens = m->prompt_tokens;
    out->generated_tokens = m->generated_tokens;
    out->prefill_s = m->prefill_s;
    out->decode_s = m->decode_s;
    out->prefill_bytes_read = m->prefill_bytes;
    if (m->ctx.store) {
        store_stats st;
        store_get_stats(m->ctx.store, &st);
        out->cache_hits = st.hits;
        out->cache_misses = st.misses;
        out->bytes_read = st.bytes_read;
        out->io_wait_s = st.io_wait_s;
        out->prefetch_issued = st.prefetch_issued;
        out->prefetch_used = st.prefetch_used;
        out->prefetch_wasted = st.prefetch_wasted;
        out->prefetch_late = st.prefetch_late;
        out->predicted = st.predicted;
        out->predicted_right = st.predicted_k;
        out->predicted_in_guess = st.predicted_all;
        out->cache_bytes = (uint64_t)store_slot_count(m->ctx.store) * store_slot_bytes(m->ctx.store);
    }
    out->peak_rss_bytes = peak_rss();
}

void mf_model_expert_uses(const mf_model *m, uint32_t layer, uint64_t *counts)
{
    for (uint32_t i = 0; i < m->info.n_expert; i++)
        counts[i] = m->ctx.store ? store_expert_uses(m->ctx.store, (int)layer, (int)i) : 0;
}

void mf_model_inject_io_fault(mf_model *m, uint64_t nth, int kind)
{
    if (m->ctx.store) store_inject_fault(m->ctx.store, nth, kind);
}

void mf_model_stats_reset(mf_model *m)
{
    m->prompt_tokens = m->generated_tokens = 0;
    m->prefill_s = m->decode_s = 0;
    m->prefill_bytes = 0;
    if (m->ctx.store) store_reset_stats(m->ctx.store);
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }

int mf_stats_write_json(const mf_model *m, const mf_stats *st, const char *io, const char *path, mf_error *e)
{
    FILE *fp = strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!fp) return mf_fail(e, "%s: cannot write stats: %s", path, strerror(errno));
    double total = st->prefill_s + st->decode_s;
    uint64_t lookups = st->cache_hits + st->cache_misses;
    /* Names are fixed ASCII; the model name is escaped for JSON. */
    fprintf(fp, "{\"model\": \"");
    for (const char *c = m->name; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(fp, "\\%c", *c);
        else if ((unsigned char)*c < 32) fprintf(fp, "\\u%04x", *c);
        else fputc(*c, fp);
    }
    fprintf(fp,
            "\", \"arch\": \"%s\", \"threads\": %d, \"io\": \"%s\", \"cache_bytes\": %" PRIu64
            ", \"prompt_tokens\": %" PRIu64 ", \"generated_tokens\": %" PRIu64
            ", \"prefill_tok_s\": %.3f, \"decode_tok_s\": %.3f, \"cache_hits\": %" PRIu64 ", \"cache_misses\": %" PRIu64
            ", \"hit_rate\": %.4f, \"bytes_read\": %" PRIu64 ", \"read_mb_s\": %.1f, \"io_wait_s\": %.4f"
            ", \"prefetch_issued\": %" PRIu64 ", \"prefetch_used\": %" PRIu64 ", \"prefetch_wasted\": %" PRIu64
            ", \"prefetch_late\": %" PRIu64 ", \"predictor_accuracy\": %.4f"
            ", \"prefill_bytes_read\": %" PRIu64 ", \"prefill_bytes_per_token\": %.0f"
            ", \"peak_rss_bytes\": %" PRIu64 "}\n",
            m->info.arch, m->info.n_threads, io ? io : m->io_name, st->cache_bytes, st->prompt_tokens, st->generated_tokens,
            ratio((double)st->prompt_tokens, st->prefill_s), ratio((double)st->generated_tokens, st->decode_s),
            st->cache_hits, st->cache_misses, ratio((double)st->cache_hits, (double)lookups), st->bytes_read,
            ratio((double)st->bytes_read / 1e6, total), st->io_wait_s, st->prefetch_issued, st->prefetch_used,
            st->prefetch_wasted, st->prefetch_late, ratio((double)st->predicted_right, (double)st->predicted),
            st->prefill_bytes_read, ratio((double)st->prefill_bytes_read, (double)st->prompt_tokens), st->peak_rss_bytes);
    if (fp != stdout && fclose(fp) != 0) return mf_fail(e, "%s: write failed: %s", path, strerror(errno));
    return 0;
}
