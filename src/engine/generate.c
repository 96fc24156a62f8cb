/* generate.c — the generation loop shared by `run`, `chat` and the server:
 * prompt tokens in, text pieces out, a finish reason and counts back.
 *
 * The one idea: the generator keeps a copy of the tokens its session holds
 * (tok[0..n_tok) = positions 0..n_past-1). A new prompt is compared with
 * them, the session is cut back to the common prefix and only the rest is
 * evaluated. A chat re-renders the whole conversation every turn, and the
 * earlier turns cost nothing. Architectures with a recurrent state
 * (qwen35moe's DeltaNet) can be cut only to 0 or kept whole; for them a
 * prefix that ends before the session's end means starting over.
 *
 * Text goes through the streaming detokenizer (whole UTF-8 characters
 * only) and then through the stop-string filter: text that could be the
 * beginning of a stop string is held back until the next pieces decide it,
 * so a stop string split across tokens is never printed, not even in part.
 *
 * Must not: allocate per token (buffers are sized in mf_gen_new and at the
 * start of mf_gen_run), print anything, or know about chat roles beyond
 * handing them to the template (mf_chat_tokenize).
 */
#include "moeflash.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mf_gen {
    mf_model *m;
    const mf_vocab *v;
    mf_session *s;
    mf_sampler *smp;
    mf_detok *dt[2];            /* [special]: control tokens hidden / printed */
    size_t max_piece;           /* the longest token text: bounds one push */
    int32_t *tok;               /* the tokens the session holds */
    size_t n_tok, cap;          /* cap = the session's n_ctx */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *mf_finish_name(mf_finish f)
{
    switch (f) {
    case MF_FINISH_LENGTH: return "length";
    case MF_FINISH_EOG: return "eog";
    case MF_FINISH_STOP: return "stop";
    case MF_FINISH_CTX: return "ctx";
    case MF_FINISH_CANCEL: return "cancel";
    }
    return "?";
}

void mf_gen_params_default(mf_gen_params *p)
{
    memset(p, 0, sizeof *p);
    p->max_tokens = -1;
}

mf_gen *mf_gen_new(mf_model *m, uint32_t n_ctx, const mf_sampler_params *sp, mf_error *e)
{
    mf_sampler_params def;
    if (!sp) { mf_sampler_params_default(&def); sp = &def; }
    const mf_vocab *v = mf_model_vocab(m, e);
    if (!v) return NULL;
    mf_gen *g = calloc(1, sizeof *g);
    if (!g) { mf_fail(e, "out of memory"); return NULL; }
    g->m = m;
    g->v = v;
    g->s = mf_session_new(m, n_ctx, e);
    if (!g->s) { free(g); return NULL; }
    g->cap = mf_session_n_ctx(g->s);
    g->tok = malloc(g->cap * sizeof *g->tok);
    g->smp = mf_sampler_new(sp, mf_model_get_info(m)->n_vocab);
    g->dt[0] = mf_detok_new(v, false, e);
    g->dt[1] = g->dt[0] ? mf_detok_new(v, true, e) : NULL;
    if (!g->tok || !g->smp || !g->dt[1]) {
        if (g->dt[1] || g->dt[0]) mf_fail(e, "out of memory for a generator of %zu positions", g->cap);
        mf_gen_free(g);
        return NULL;
    }
    size_t nv = mf_vocab_size(v), len;
    for (size_t i = 0; i < nv; i++)
        if (mf_token_piece(v, (int32_t)i, true, &len) && len > g->max_piece) g->max_piece = len;
    return g;
}

void mf_gen_free(mf_gen *g)
{
    if (!g) return;
    mf_detok_free(g->dt[0]);
    mf_detok_free(g->dt[1]);
    mf_sampler_free(g->smp);
    mf_session_free(g->s);
    free(g->tok);
    free(g);
}

mf_session *mf_gen_session(mf_gen *g) { return g->s; }

const int32_t *mf_gen_tokens(const mf_gen *g, size_t *n)
{
    *n = g->n_tok;
    return g->tok;
}

int mf_gen_reset(mf_gen *g, mf_error *e)
{
    if (mf_session_truncate(g->s, 0, e)) return -1;
    g->n_tok = 0;
    return 0;
}

/* ---- the stop-string filter ----
 * hold[0..nhold) is decoded text not yet given to the caller: it ends with
 * the longest suffix that is a proper prefix of some stop string. */
typedef struct stopf {
    const mf_gen_params *p;
    char *hold;
    size_t nhold;
    int cancelled;              /* on_text asked to stop */
} stopf;

static int emit(stopf *f, const char *s, size_t n)
{
    if (n == 0 || !f->p->on_text || f->cancelled) return 0;
    if (f->p->on_text(f->p->user, s, n)) f->cancelled = 1;
    return f->cancelled;
}

/* Appends text; returns 1 when a stop string was found (the text before
 * it is emitted, the rest dropped). */
static int stopf_push(stopf *f, const char *s, size_t n)
{
    const mf_gen_params *p = f->p;
    if (p->n_stop == 0) { emit(f, s, n); return 0; }
    memcpy(f->hold + f->nhold, s, n);
    f->nhold += n;
    /* the earliest complete stop string wins */
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < p->n_stop; i++) {
        size_t sl = strlen(p->stop[i]);
        if (sl == 0 || sl > f->nhold) continue;
        for (size_t at = 0; at + sl <= f->nhold && at < best; at++)
            if (!memcmp(f->hold + at, p->stop[i], sl)) { best = at; break; }
    }
    if (best != SIZE_MAX) {
        emit(f, f->hold, best);
        f->nhold = 0;
        return 1;
    }
    /* keep the longest tail that a later piece could complete */
    size_t keep = 0;
    for (size_t i = 0; i < p->n_stop; i++) {
        size_t sl = strlen(p->stop[i]);
        for (size_t k = sl - 1 < f->nhold ? sl - 1 : f->nhold; k > keep; k--)
            if (!memcmp(f->hold + f->nhold - k, p->stop[i], k)) { keep = k; break; }
    }
    emit(f, f->hold, f->nhold - keep);
    memmove(f->hold, f->hold + f->nhold - keep, keep);
    f->nhold = keep;
    return 0;
}

static void stopf_end(stopf *f)
{
    emit(f, f->hold, f->nhold);
    f->nhold = 0;
}

/* ---- the loop ---- */

static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    size_t k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    return k;
}

static int cancelled(const mf_gen_params *p) { return p->cancel && p->cancel(p->user); }

/* Cuts the session back to keep positions (or to 0 when the architecture
 * cannot cut partway); returns the positions kept. */
static size_t cut_to(mf_gen *g, size_t keep, mf_error *e)
{
    if (keep == g->n_tok) return keep;
    mf_error ignored;
    if (mf_session_truncate(g->s, (uint32_t)keep, &ignored) == 0) {
        g->n_tok = keep;
        return keep;
    }
    if (mf_session_truncate(g->s, 0, e)) return SIZE_MAX;
    g->n_tok = 0;
    return 0;
}

/* Evaluates tokens at the end of the session, keeping tok[] in step even
 * when mf_eval fails partway. */
static int eval_tokens(mf_gen *g, const int32_t *t, size_t n, mf_error *e)
{
    memcpy(g->tok + g->n_tok, t, n * sizeof *t);
    int rc = mf_eval(g->s, t, n, NULL, e);
    g->n_tok = mf_session_n_past(g->s);
    return rc;
}

static int prefill(mf_gen *g, const int32_t *prompt, size_t n, const mf_gen_params *p, mf_gen_result *r, mf_error *e)
{
    size_t keep = common_prefix(g->tok, g->n_tok, prompt, n);
    if (keep == n) keep = n - 1; /* the logits after the last token are needed */
    keep = cut_to(g, keep, e);
    if (keep == SIZE_MAX) return -1;
    r->n_reused = keep;
    size_t total = n - keep, done = 0;
    size_t batch = p->n_batch ? p->n_batch : total;
    double t0 = now_s();
    while (done < total) {
        if (cancelled(p)) { r->finish = MF_FINISH_CANCEL; break; }
        size_t k = total - done < batch ? total - done : batch;
        /* a lone last token would count as a generated one in the stats */
        if (total - done - k == 1) k++;
        int rc = eval_tokens(g, prompt + keep + done, k, e);
        r->n_prompt_eval = g->n_tok - keep;
        if (rc) return -1;
        done += k;
        if (p->on_prefill && p->on_prefill(p->user, done, total)) { r->finish = MF_FINISH_CANCEL; break; }
    }
    r->prefill_s = now_s() - t0;
    return 0;
}

int mf_gen_run(mf_gen *g, const int32_t *prompt, size_t n, const mf_gen_params *p, mf_gen_result *r, mf_error *e)
{
    mf_gen_params def;
    if (!p) { mf_gen_params_default(&def); p = &def; }
    memset(r, 0, sizeof *r);
    r->finish = MF_FINISH_LENGTH;
    if (n == 0) return mf_fail(e, "empty prompt: generation needs at least one token");
    if (n > g->cap)
        return mf_fail(e, "the prompt has %zu tokens, more than the context of %zu positions (--ctx)", n, g->cap);
    for (size_t i = 0; i < p->n_stop; i++)
        if (!p->stop[i] || !p->stop[i][0]) return mf_fail(e, "stop string %zu is empty", i);

    size_t max_stop = 0;
    for (size_t i = 0; i < p->n_stop; i++)
        if (strlen(p->stop[i]) > max_stop) max_stop = strlen(p->stop[i]);
    stopf f = { .p = p };
    /* the hold: a stop string's proper prefix, then one push of the
     * detokenizer (a piece after up to 3 held bytes of a character) */
    if (p->n_stop && !(f.hold = malloc(max_stop + g->max_piece + 8)))
        return mf_fail(e, "out of memory for the stop strings");

    int rc = -1;
    const char *txt;
    size_t len;
    if (prefill(g, prompt, n, p, r, e)) goto out;

    /* The detokenizer sees the whole prompt, so that its state (the
     * SentencePiece leading space, an unfinished character) is the one a
     * decoder of prompt + reply would have; the prompt's text is printed
     * only when echoing. */
    mf_detok *dt = g->dt[p->special];
    mf_detok_reset(dt);
    for (size_t i = 0; i < n; i++) {
        if (mf_detok_push(dt, prompt[i], &txt, &len, e)) goto out;
        if (p->echo_prompt) emit(&f, txt, len);
    }
    if (!p->echo_prompt) mf_detok_flush(dt, &txt, &len); /* a partial character of the prompt is not ours */
    if (r->finish == MF_FINISH_CANCEL || f.cancelled) { r->finish = MF_FINISH_CANCEL; rc = 0; goto out; }

    double t0 = now_s();
    for (long k = 0; p->max_tokens < 0 || k < p->max_tokens; k++) {
        if (cancelled(p)) { r->finish = MF_FINISH_CANCEL; break; }
        int32_t t = mf_sample(g->smp, mf_session_logits(g->s), g->tok, g->n_tok);
        mf_sampler_accept(g->smp, t);
        r->n_generated++;
        if (mf_token_is_eog(g->v, t)) { r->finish = MF_FINISH_EOG; break; }
        if (mf_detok_push(dt, t, &txt, &len, e)) goto out;
        if (stopf_push(&f, txt, len)) { r->finish = MF_FINISH_STOP; break; }
        if (f.cancelled) { r->finish = MF_FINISH_CANCEL; break; }
        if (p->max_tokens >= 0 && k + 1 == p->max_tokens) break; /* its logits are not needed */
        if (g->n_tok >= g->cap) { r->finish = MF_FINISH_CTX; break; }
        if (eval_tokens(g, &t, 1, e)) goto out;
    }
    r->decode_s = now_s() - t0;
    if (r->finish != MF_FINISH_STOP) {
        mf_detok_flush(dt, &txt, &len);
        if (stopf_push(&f, txt, len)) r->finish = MF_FINISH_STOP;
        else stopf_end(&f);
    }
    rc = 0;
out:
    free(f.hold);
    return rc;
}

/* ---- chat prompts ---- */

/* A growing byte buffer for the request JSON. */
typedef struct jbuf { char *p; size_t n, cap; bool oom; } jbuf;

static void jb_put(jbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = true; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void jb_str(jbuf *b, const char *s) { jb_put(b, s, strlen(s)); }

/* The length of the valid UTF-8 character at s (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n == 0) return 0;
    unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

/* A JSON string literal (RFC 8259 escapes). A reply is whatever bytes the
 * model sampled: bytes that are not UTF-8 become U+FFFD, as JSON needs. */
static void jb_json_string(jbuf *b, const char *s)
{
    jb_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c >= 0x80) {
            size_t n = utf8_len(c);
            if (n) {
                jb_put(b, (const char *)c, n);
                c += n - 1;
            } else {
                jb_put(b, "\\ufffd", 6);
            }
            continue;
        }
        switch (*c) {
        case '"': jb_put(b, "\\\"", 2); break;
        case '\\': jb_put(b, "\\\\", 2); break;
        case '\n': jb_put(b, "\\n", 2); break;
        case '\r': jb_put(b, "\\r", 2); break;
        case '\t': jb_put(b, "\\t", 2); break;
        default:
            if (*c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *c);
                jb_put(b, esc, 6);
            } else {
                jb_put(b, (const char *)c, 1);
            }
        }
    }
    jb_put(b, "\"", 1);
}

int mf_chat_tokenize(const mf_chat_template *t, const mf_vocab *v, const mf_chat_msg *msgs, size_t n_msgs,
                     int enable_thinking, int32_t **ids, size_t *n_ids, char **text, mf_error *e)
{
    *ids = NULL;
    *n_ids = 0;
    if (text) *text = NULL;
    jbuf b = { 0 };
    jb_str(&b, "{\"messages\": [");
    for (size_t i = 0; i < n_msgs; i++) {
        jb_str(&b, i ? ", {\"role\": " : "{\"role\": ");
        jb_json_string(&b, msgs[i].role);
        jb_str(&b, ", \"content\": ");
        jb_json_string(&b, msgs[i].content ? msgs[i].content : "");
        jb_str(&b, "}");
    }
    jb_str(&b, "], \"add_generation_prompt\": true");
    if (enable_thinking >= 0) jb_str(&b, enable_thinking ? ", \"enable_thinking\": true" : ", \"enable_thinking\": false");
    jb_str(&b, "}");
    if (b.oom) { free(b.p); return mf_fail(e, "out of memory for the chat request"); }

    char *out;
    size_t out_len;
    int rc = mf_chat_template_apply(t, b.p, &out, &out_len, e);
    free(b.p);
    if (rc) return -1;
    int32_t *tk;
    size_t nt;
    if (mf_tokenize(v, out, out_len, true, false, &tk, &nt, e)) { free(out); return -1; }
    int32_t bos = mf_vocab_bos(v);
    if (mf_vocab_add_bos(v) && bos >= 0 && (nt == 0 || tk[0] != bos)) {
        int32_t *nk = realloc(tk, (nt + 1) * sizeof *nk);
        if (!nk) { free(tk); free(out); return mf_fail(e, "out of memory"); }
        tk = nk;
        memmove(tk + 1, tk, nt * sizeof *tk);
        tk[0] = bos;
        nt++;
    }
    *ids = tk;
    *n_ids = nt;
    if (text) *text = out;
    else free(out);
    return 0;
}
