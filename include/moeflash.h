/* moeflash — public API.
 *
 * Everything the CLI and the server use goes through this header: open a
 * model, create a session, evaluate tokens, read logits, sample, tokenize,
 * render a chat, read stats. Functions that can fail on outside input return
 * a status (0 ok, -1 error) and fill an mf_error with a message that names
 * the file, the offset or key, what was expected and what was found.
 */
#ifndef MOEFLASH_H
#define MOEFLASH_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MF_ERROR_MAX 1024
typedef struct mf_error {
    char msg[MF_ERROR_MAX];
} mf_error;

/* Formats msg into e (if e is not NULL) and returns -1, so that a failing
 * path reads `return mf_fail(e, "...", ...);`. */
int mf_fail(mf_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefixes the message already in e with more context ("while X: <msg>"). */
int mf_fail_wrap(mf_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- model and session (src/engine) ---- */

typedef struct mf_model mf_model;
typedef struct mf_session mf_session;

typedef struct mf_model_params {
    int n_threads;            /* <= 0: number of cores */
    uint64_t cache_bytes;     /* expert cache budget; 0: every expert fits */
} mf_model_params;

void mf_model_params_default(mf_model_params *p);

/* Opens a GGUF model (the first part of a split model opens all parts). */
mf_model *mf_model_open(const char *path, const mf_model_params *p, mf_error *e);
void mf_model_close(mf_model *m);

typedef struct mf_model_info {
    const char *arch;
    const char *name;         /* general.name, or the file name */
    uint32_t n_vocab, n_embd, n_layer, n_ctx_train;
    uint32_t n_expert, n_expert_used;
    int n_threads;
} mf_model_info;
const mf_model_info *mf_model_get_info(const mf_model *m);

/* A session: KV cache and positions. The cache grows with the positions
 * used, up to n_ctx (0: the model's training context). */
mf_session *mf_session_new(mf_model *m, uint32_t n_ctx, mf_error *e);
void mf_session_free(mf_session *s);
uint32_t mf_session_n_past(const mf_session *s);
uint32_t mf_session_n_ctx(const mf_session *s);
/* Forgets positions >= n_past (e.g. 0 to start over). */
int mf_session_truncate(mf_session *s, uint32_t n_past, mf_error *e);

/* Evaluates n tokens at the next positions. With all_logits non-NULL it
 * receives n x n_vocab floats (row i: logits after token i); the logits
 * after the last token are always kept (mf_session_logits). On error the
 * session keeps the positions evaluated before the failing token. */
int mf_eval(mf_session *s, const int32_t *tokens, size_t n, float *all_logits, mf_error *e);
const float *mf_session_logits(const mf_session *s);

/* ---- sampling (src/engine/sampler.c) ---- */

typedef struct mf_sampler_params {
    float temperature;        /* <= 0: greedy (argmax) */
    int top_k;                /* <= 0: off */
    float top_p;              /* >= 1: off */
    float min_p;              /* <= 0: off */
    float repeat_penalty;     /* 1: off */
    int repeat_last_n;        /* window of the penalty */
    uint64_t seed;
} mf_sampler_params;

void mf_sampler_params_default(mf_sampler_params *p);
typedef struct mf_sampler mf_sampler;
mf_sampler *mf_sampler_new(const mf_sampler_params *p, uint32_t n_vocab);
void mf_sampler_free(mf_sampler *s);
/* Picks a token from logits given the previous tokens (for the penalty). */
int32_t mf_sample(mf_sampler *s, const float *logits, const int32_t *prev, size_t n_prev);
/* Remembers an accepted token (the penalty window). */
void mf_sampler_accept(mf_sampler *s, int32_t token);

/* ---- statistics ---- */

typedef struct mf_stats {
    uint64_t prompt_tokens, generated_tokens;
    double prefill_s, decode_s;
    uint64_t cache_hits, cache_misses, bytes_read;
    double io_wait_s;
    uint64_t cache_bytes;
    uint64_t prefetch_issued, prefetch_used, prefetch_wasted;
    uint64_t peak_rss_bytes;
} mf_stats;

/* Counters since the model was opened (or last reset). */
void mf_model_stats(const mf_model *m, mf_stats *out);
void mf_model_stats_reset(mf_model *m);
/* Writes the --stats-json object (DESIGN.md's fields). */
int mf_stats_write_json(const mf_model *m, const mf_stats *st, const char *io, const char *path, mf_error *e);

/* ---- tokenizer (src/tokenizer; owned by the tokenizer work) ---- */

/* ---- end tokenizer ---- */

/* ---- chat templates (src/template; owned by the template work) ---- */

/* ---- end chat templates ---- */

/* Prints what `moeflash inspect` shows: architecture, hyperparameters,
 * metadata, the tensor table and the memory plan. Works for any GGUF. */
int mf_inspect(const char *path, FILE *out, mf_error *e);

#ifdef __cplusplus
}
#endif
#endif
