/* srv_worker.c — the one thread that runs the model, and its queue.
 *
 * HTTP threads hand in jobs that are already token ids; the worker takes
 * them in FIFO order, one at a time, so the session (KV cache) is never
 * shared. Before each job it keeps the longest common prefix of the tokens
 * already in the cache and the new prompt — a chat's next turn re-sends the
 * whole conversation, and only the new tail is evaluated. Between prefill
 * chunks and between tokens it checks the job's cancel flag, which the HTTP
 * side sets when the client goes away, so an abandoned generation stops
 * within one token. The queue is bounded: submit fails at once when full.
 *
 * The loop is written here on mf_eval/mf_sample/mf_detok rather than on
 * mf_gen_run because each request brings its own sampler (temperature,
 * seed...), OpenAI's presence/frequency penalties and logit_bias, which
 * mf_gen's fixed sampler cannot take; its rules are mf_gen_run's (common
 * prefix kept, at most n - 1; start over when a recurrent state cannot be
 * cut; the decoder primed with the prompt).
 */
#include "server/srv.h"

#if defined(MF_HAVE_MICROHTTPD) && defined(MF_HAVE_JANSSON)

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct srv_worker {
    pthread_mutex_t mu;          /* queue, flags and metrics */
    pthread_cond_t cv;
    srv_job *head, *tail;
    int n_queued, queue_max;
    srv_job *running;
    atomic_bool stopping;
    bool started;
    pthread_t th;
    srv_metrics met;

    /* The engine: touched by the worker thread only (after start). */
    mf_model *m;
    mf_session *s;
    const mf_vocab *v;
    mf_detok *dt;
    uint32_t n_ctx, n_vocab;
    int batch;
    int32_t *toks;               /* the tokens in the KV cache, n_toks == mf_session_n_past */
    size_t n_toks;
    float *logits;               /* penalised copy of the logits */
    uint32_t *counts;            /* per token: times generated in this job */
};

/* ---- jobs ---- */

srv_job *srv_job_new(void)
{
    srv_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    atomic_init(&j->cancel, false);
    return j;
}

void srv_job_ref(srv_job *j)
{
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
}

void srv_job_unref(srv_job *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left) return;
    free(j->prompt);
    for (int i = 0; i < j->n_stop; i++) free(j->stop[i]);
    free(j->bias_id);
    free(j->bias);
    free(j->forced);
    srv_buf_free(&j->out);
    srv_buf_free(&j->content);
    srv_buf_free(&j->reasoning);
    srv_buf_free(&j->tool_calls);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* Marks j finished (after its last output) and wakes its HTTP thread. */
static void job_done(srv_job *j)
{
    pthread_mutex_lock(&j->mu);
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* SSE bytes for the HTTP thread. */
static int job_send(srv_job *j, srv_buf *b)
{
    pthread_mutex_lock(&j->mu);
    int rc = srv_buf_add(&j->out, b->p, b->n);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    b->n = 0;
    return rc;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- one generation ---- */

typedef struct gen {
    srv_worker *w;
    srv_job *j;
    int tool_index;
    srv_stopper stop;
    srv_reply reply;
    srv_buf clean, safe, sse;    /* scratch, reused for every piece */
} gen;

static int on_event(void *ctx, srv_ev ev, const char *a, size_t na, const char *b, size_t nb)
{
    gen *g = ctx;
    srv_job *j = g->j;
    int rc = 0;
    if (j->stream) {
        rc = srv_sse_event(j, ev, a, na, b, nb, g->tool_index, &g->sse) || job_send(j, &g->sse) ? -1 : 0;
    } else if (ev == SRV_EV_CONTENT) rc = srv_buf_add(&j->content, a, na);
    else if (ev == SRV_EV_REASONING) rc = srv_buf_add(&j->reasoning, a, na);
    else rc = (j->n_tool_calls && srv_buf_add(&j->tool_calls, ",", 1)) || srv_tool_call_json(a, na, b, nb, &j->tool_calls);
    if (ev == SRV_EV_TOOL_CALL) g->tool_index++, j->n_tool_calls++;
    return rc;
}

/* A piece of generated text through the stop strings into the parser:
 * 1 when a stop string ended the reply, -1 out of memory. */
static int push_text(gen *g, const char *s, size_t n)
{
    g->clean.n = g->safe.n = 0;
    if (srv_buf_add_utf8(&g->clean, s, n)) return -1;
    int hit = srv_stopper_feed(&g->stop, g->clean.p, g->clean.n, &g->safe);
    if (hit < 0 || srv_reply_feed(&g->reply, g->safe.p, g->safe.n)) return -1;
    return hit;
}

/* OpenAI's penalties over the tokens generated so far,
 * logit -= count * frequency + (count > 0) * presence, and logit_bias.
 * counts[] is all zero between calls. */
static const float *penalised(srv_worker *w, const srv_job *j, const float *lg, const int32_t *gen_toks, size_t n_gen)
{
    if (!j->presence && !j->frequency && !j->n_bias) return lg;
    memcpy(w->logits, lg, (size_t)w->n_vocab * sizeof *lg);
    for (size_t i = 0; i < n_gen; i++) w->counts[gen_toks[i]]++;
    for (size_t i = 0; i < n_gen; i++) {
        uint32_t *c = &w->counts[gen_toks[i]];
        if (*c) w->logits[gen_toks[i]] -= (float)*c * j->frequency + j->presence;
        *c = 0;
    }
    for (int i = 0; i < j->n_bias; i++)
        if ((uint32_t)j->bias_id[i] < w->n_vocab) w->logits[j->bias_id[i]] += j->bias[i];
    return w->logits;
}

/* Keeps the cache's common prefix with the prompt and evaluates the rest,
 * as mf_gen_run does: an architecture whose recurrent state cannot be cut
 * partway (qwen35moe) starts over from 0 instead. */
static int prefill(srv_worker *w, srv_job *j, mf_error *e)
{
    size_t keep = 0;
    while (keep < w->n_toks && keep < j->n_prompt && w->toks[keep] == j->prompt[keep]) keep++;
    if (keep == j->n_prompt) keep--; /* the last prompt token is evaluated again for its logits */
    if (keep < w->n_toks) {
        mf_error ignored;
        if (mf_session_truncate(w->s, (uint32_t)keep, &ignored)) {
            keep = 0;
            if (mf_session_truncate(w->s, 0, e)) return -1;
        }
        w->n_toks = keep;
    }
    j->n_cached = (uint32_t)keep;
    for (size_t i = keep; i < j->n_prompt;) {
        if (atomic_load(&j->cancel)) return 1;
        size_t c = j->n_prompt - i < (size_t)w->batch ? j->n_prompt - i : (size_t)w->batch;
        if (j->n_prompt - i - c == 1) c++; /* a lone last token would count as a generated one in the stats */
        memcpy(w->toks + w->n_toks, j->prompt + i, c * sizeof *w->toks);
        int rc = mf_eval(w->s, j->prompt + i, c, NULL, e);
        w->n_toks = mf_session_n_past(w->s); /* kept in step even when mf_eval fails partway */
        if (rc) return -1;
        i += c;
    }
    /* The decoder sees the prompt, so that its state (SentencePiece's
     * leading space, an unfinished character) is that of prompt + reply. */
    mf_detok_reset(w->dt);
    const char *txt;
    size_t n;
    for (size_t i = 0; i < j->n_prompt; i++)
        if (mf_detok_push(w->dt, j->prompt[i], &txt, &n, e)) return -1;
    mf_detok_flush(w->dt, &txt, &n);
    return 0;
}

static void pause_ms(const srv_job *j, int ms)
{
    for (; ms > 0 && !atomic_load(&j->cancel); ms -= 10) nanosleep(&(struct timespec){ 0, 10 * 1000000L }, NULL);
}

/* Runs j to its end; 0 finished, 1 cancelled, -1 failed (e says why). */
static int generate(srv_worker *w, srv_job *j, gen *g, double *t_prefill, double *t_decode, mf_error *e)
{
    double t0 = now_s();
    int rc = prefill(w, j, e);
    *t_prefill = now_s() - t0;
    if (rc) return rc;
    if (j->stream && (srv_sse_role(j, &g->sse) || job_send(j, &g->sse))) return mf_fail(e, "out of memory");
    mf_sampler *smp = mf_sampler_new(&j->sp, w->n_vocab);
    if (!smp) return mf_fail(e, "out of memory");
    const int32_t *gen_toks = w->toks + w->n_toks; /* this job's tokens, as they are evaluated */
    const char *finish = "stop";
    bool stopped = false;
    t0 = now_s();
    for (;;) {
        if (atomic_load(&j->cancel)) { rc = 1; break; }
        int32_t t;
        if (j->forced) {
            if (j->n_gen == j->n_forced) break;
            t = j->forced[j->n_gen];
        } else {
            t = mf_sample(smp, penalised(w, j, mf_session_logits(w->s), gen_toks, j->n_gen), w->toks, w->n_toks);
            if (mf_token_is_eog(w->v, t) && !j->ignore_eos) break;
        }
        mf_sampler_accept(smp, t);
        j->n_gen++;
        const char *piece;
        size_t n;
        if (mf_detok_push(w->dt, t, &piece, &n, e)) { rc = -1; break; }
        int hit = push_text(g, piece, n);
        if (hit < 0) { rc = mf_fail(e, "out of memory"); break; }
        if (hit) { stopped = true; break; }
        if (j->n_gen >= j->max_tokens || w->n_toks >= w->n_ctx) { finish = "length"; break; }
        if (mf_eval(w->s, &t, 1, NULL, e)) { rc = -1; break; }
        w->toks[w->n_toks++] = t;
        if (j->delay_ms) pause_ms(j, j->delay_ms);
    }
    *t_decode = now_s() - t0;
    mf_sampler_free(smp);
    if (rc) return rc;
    if (!stopped) {
        const char *piece;
        size_t n;
        mf_detok_flush(w->dt, &piece, &n);
        int hit = push_text(g, piece, n);
        if (hit < 0 || (!hit && srv_stopper_flush(&g->stop, &g->safe)) ||
            (!hit && srv_reply_feed(&g->reply, g->safe.p, g->safe.n)))
            return mf_fail(e, "out of memory");
    }
    if (srv_reply_finish(&g->reply)) return mf_fail(e, "out of memory");
    j->finish = !strcmp(finish, "stop") && j->n_tool_calls ? "tool_calls" : finish;
    if (j->stream && (srv_sse_finish(j, &g->sse) || job_send(j, &g->sse))) return mf_fail(e, "out of memory");
    return 0;
}

static void run_job(srv_worker *w, srv_job *j)
{
    gen g = { .w = w, .j = j };
    srv_stopper_init(&g.stop, (const char *const *)j->stop, j->n_stop);
    srv_reply_init(&g.reply, j->tools, j->kind == SRV_CHAT ? j->think : SRV_THINK_NONE, on_event, &g);
    mf_error e = { "" };
    double tp = 0, td = 0;
    int rc = atomic_load(&j->cancel) ? 1 : generate(w, j, &g, &tp, &td, &e);
    if (rc < 0) {
        /* n_toks follows mf_session_n_past through failures; if even that
         * is in doubt, start the next job from an empty cache. */
        mf_error e2;
        if (w->n_toks != mf_session_n_past(w->s) && !mf_session_truncate(w->s, 0, &e2)) w->n_toks = 0;
        srv_errf(&j->err, 500, "server_error", NULL, NULL, "generation failed: %s", e.msg);
    } else if (rc > 0 && atomic_load(&w->stopping))
        srv_errf(&j->err, 503, "server_error", NULL, NULL, "the server is shutting down");
    if (j->stream && j->err.status) {
        srv_buf b = { 0 };
        if (!srv_sse_error(&j->err, &b)) job_send(j, &b);
        srv_buf_free(&b);
    }
    srv_stopper_free(&g.stop);
    srv_reply_free(&g.reply);
    srv_buf_free(&g.clean);
    srv_buf_free(&g.safe);
    srv_buf_free(&g.sse);

    pthread_mutex_lock(&w->mu);
    w->met.requests++;
    if (rc < 0) w->met.requests_failed++;
    else if (rc > 0) w->met.requests_cancelled++;
    else w->met.requests_ok++;
    w->met.prompt_tokens += j->n_prompt - j->n_cached;
    w->met.cached_tokens += j->n_cached;
    w->met.generated_tokens += j->n_gen;
    w->met.prefill_s += tp;
    w->met.decode_s += td;
    mf_model_stats(w->m, &w->met.engine);
    pthread_mutex_unlock(&w->mu);
    job_done(j);
}

static void *worker_main(void *arg)
{
    srv_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !atomic_load(&w->stopping)) pthread_cond_wait(&w->cv, &w->mu);
        if (atomic_load(&w->stopping)) break;
        srv_job *j = w->head;
        w->head = j->next;
        if (!w->head) w->tail = NULL;
        w->n_queued--;
        w->running = j;
        pthread_mutex_unlock(&w->mu);
        run_job(w, j);
        pthread_mutex_lock(&w->mu);
        w->running = NULL;
        pthread_mutex_unlock(&w->mu);
        srv_job_unref(j);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- life cycle ---- */

static void worker_free(srv_worker *w)
{
    mf_detok_free(w->dt);
    mf_session_free(w->s);
    free(w->toks);
    free(w->logits);
    free(w->counts);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

srv_worker *srv_worker_start(mf_model *m, uint32_t n_ctx, int batch, int queue_max, mf_error *e)
{
    srv_worker *w = calloc(1, sizeof *w);
    if (!w) { mf_fail(e, "out of memory"); return NULL; }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    atomic_init(&w->stopping, false);
    w->m = m;
    w->batch = batch > 0 ? batch : 256;
    w->queue_max = queue_max > 0 ? queue_max : 64;
    w->n_vocab = mf_model_get_info(m)->n_vocab;
    if (!(w->v = mf_model_vocab(m, e)) || !(w->s = mf_session_new(m, n_ctx, e)) || !(w->dt = mf_detok_new(w->v, false, e)))
        goto fail;
    w->n_ctx = mf_session_n_ctx(w->s);
    w->toks = malloc((size_t)w->n_ctx * sizeof *w->toks);
    w->logits = malloc((size_t)w->n_vocab * sizeof *w->logits);
    w->counts = calloc(w->n_vocab, sizeof *w->counts);
    if (!w->toks || !w->logits || !w->counts) { mf_fail(e, "out of memory"); goto fail; }
    if (pthread_create(&w->th, NULL, worker_main, w)) { mf_fail(e, "could not start the worker thread"); goto fail; }
    w->started = true;
    return w;
fail:
    worker_free(w);
    return NULL;
}

uint32_t srv_worker_n_ctx(const srv_worker *w) { return w->n_ctx; }

int srv_worker_submit(srv_worker *w, srv_job *j)
{
    pthread_mutex_lock(&w->mu);
    int rc = atomic_load(&w->stopping) ? -2 : w->n_queued >= w->queue_max ? -1 : 0;
    if (!rc) {
        srv_job_ref(j);
        j->next = NULL;
        if (w->tail) w->tail->next = j;
        else w->head = j;
        w->tail = j;
        w->n_queued++;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void srv_worker_metrics(srv_worker *w, srv_metrics *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->met;
    out->queued = w->n_queued;
    out->running = w->running != NULL;
    pthread_mutex_unlock(&w->mu);
}

void srv_worker_stop(srv_worker *w)
{
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->stopping, true);
    srv_job *q = w->head;
    w->head = w->tail = NULL;
    w->n_queued = 0;
    if (w->running) atomic_store(&w->running->cancel, true);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    while (q) { /* never started: their HTTP threads answer 503 */
        srv_job *next = q->next;
        atomic_store(&q->cancel, true);
        srv_errf(&q->err, 503, "server_error", NULL, NULL, "the server is shutting down");
        if (q->stream) {
            srv_buf b = { 0 };
            if (!srv_sse_error(&q->err, &b)) job_send(q, &b);
            srv_buf_free(&b);
        }
        job_done(q);
        srv_job_unref(q);
        q = next;
    }
    if (w->started) pthread_join(w->th, NULL);
    w->started = false;
}

void srv_worker_free(srv_worker *w)
{
    if (!w) return;
    if (w->started) srv_worker_stop(w);
    worker_free(w);
}

#endif
