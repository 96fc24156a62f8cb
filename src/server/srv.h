/* srv.h — the OpenAI-compatible HTTP server (`moeflash serve`), internal.
 *
 * The parts, one file each:
 *   srv_http.c     libmicrohttpd: routing, bodies, API key, SSE, disconnects
 *   srv_request.c  a JSON request -> a validated job (prompt tokens, sampling)
 *   srv_worker.c   the queue and the one thread that owns the engine
 *   srv_reply.c    text after the model: stop strings, reasoning, tool calls
 *   srv_response.c the JSON objects sent back (results, SSE chunks, errors)
 * HTTP threads parse, render the chat template and tokenize (the vocabulary
 * and the template are read-only); only the worker evaluates tokens, so one
 * generation runs at a time and the KV cache of the previous conversation
 * can be reused. The server uses only include/moeflash.h.
 */
#ifndef MF_SRV_H
#define MF_SRV_H

#include "moeflash.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRV_MAX_STOP 16          /* stop strings per request */
#define SRV_MAX_STOP_LEN 512     /* bytes per stop string */

/* ---- configuration and life cycle (srv_http.c) ---- */

typedef struct srv_config {
    const char *host;            /* NULL: 127.0.0.1 */
    int port;                    /* 0: any free port (see srv_port) */
    const char *api_key;         /* NULL: no authentication */
    const char *model_id;        /* NULL: the model file's name without .gguf */
    const char *model_path;      /* for the chat template and the default id */
    const char *chat_template;   /* template source overriding the GGUF's; NULL: the GGUF's */
    uint32_t n_ctx;              /* 0: the model's training context */
    int batch;                   /* prefill chunk (tokens); <= 0: 256 */
    int queue_max;               /* waiting requests; <= 0: 64 */
    size_t body_max;             /* request bytes; 0: 8 MiB */
    int max_connections;         /* <= 0: 256 */
    int default_max_tokens;      /* chat default; <= 0: up to the context */
    mf_sampler_params sampler;   /* defaults a request overrides */
    bool test_hooks;             /* accept mf_test_* request fields (tests only) */
    bool verbose;                /* one line per request on stderr */
} srv_config;

void srv_config_default(srv_config *c);

typedef struct srv_server srv_server;
/* Starts listening. The model is used by the server's worker alone until
 * srv_stop returns; the caller closes it afterwards. */
srv_server *srv_start(mf_model *m, const srv_config *c, mf_error *e);
int srv_port(const srv_server *s);
const char *srv_model_id(const srv_server *s);
/* Refuses new work, cancels queued and running generations, joins all
 * threads and frees the server. */
void srv_stop(srv_server *s);

/* ---- growable byte buffer and small helpers (srv_reply.c) ---- */

typedef struct srv_buf { char *p; size_t n, cap; } srv_buf;
int srv_buf_add(srv_buf *b, const char *s, size_t n);   /* keeps p NUL-terminated */
int srv_buf_addf(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void srv_buf_drop(srv_buf *b, size_t n);                /* removes the first n bytes */
void srv_buf_free(srv_buf *b);
/* Appends s[0..n) to b with every invalid UTF-8 sequence replaced by U+FFFD
 * (jansson refuses invalid strings; a random model emits stray bytes). */
int srv_buf_add_utf8(srv_buf *b, const char *s, size_t n);
/* prefix + n random alphanumerics into out (NUL-terminated). */
void srv_random_id(char *out, size_t cap, const char *prefix, int n);

/* ---- stop strings (srv_reply.c) ---- */

typedef struct srv_stopper {
    const char *const *stop;
    int n_stop;
    srv_buf pend;                /* text that may be the start of a stop string */
} srv_stopper;
void srv_stopper_init(srv_stopper *st, const char *const *stop, int n_stop);
/* Appends s; moves the text that can no longer be part of a stop string to
 * out. Returns 1 when a stop string was found (out then ends right before
 * it, the rest is dropped), 0 otherwise, -1 out of memory. */
int srv_stopper_feed(srv_stopper *st, const char *s, size_t n, srv_buf *out);
/* End of generation: the held-back text to out. */
int srv_stopper_flush(srv_stopper *st, srv_buf *out);
void srv_stopper_free(srv_stopper *st);

/* ---- reply parsing: reasoning, content, tool calls (srv_reply.c) ---- */

/* The library's reply splitter (mf_reply, moeflash.h) with the server's
 * event names. */
typedef enum { SRV_EV_CONTENT, SRV_EV_REASONING, SRV_EV_TOOL_CALL } srv_ev;
/* CONTENT/REASONING: a/na is text. TOOL_CALL: a/na the function name,
 * b/nb the arguments as a JSON text. Returns 0, or -1 to stop. */
typedef int (*srv_emit_fn)(void *ctx, srv_ev ev, const char *a, size_t na, const char *b, size_t nb);

typedef enum { SRV_THINK_NONE, SRV_THINK_DETECT, SRV_THINK_OPEN } srv_think;

typedef struct srv_reply {
    mf_reply *split;             /* NULL: out of memory (feed fails) */
    int n_tool_calls;
    srv_emit_fn emit;
    void *ctx;
} srv_reply;
/* think: NONE (completions: all content), DETECT (a chat reply: opening
 * <think>, or a harmony header, decides its format), OPEN (the prompt
 * already ended with <think>). Tool calls are Qwen's JSON, GLM-4.5's
 * <arg_key>/<arg_value> pairs or harmony's messages to=functions.NAME. */
void srv_reply_init(srv_reply *r, bool tools, srv_think think, srv_emit_fn emit, void *ctx);
int srv_reply_feed(srv_reply *r, const char *s, size_t n);
int srv_reply_finish(srv_reply *r);
void srv_reply_free(srv_reply *r);

/* ---- requests and jobs (srv_request.c, srv_worker.c) ---- */

/* An OpenAI error: HTTP status, type ("invalid_request_error"...), the
 * offending parameter and code when known. */
typedef struct srv_err {
    int status;
    const char *type, *code;
    char param[64];
    char msg[512];
} srv_err;
int srv_errf(srv_err *er, int status, const char *type, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

typedef enum { SRV_CHAT, SRV_COMPLETION } srv_kind;

/* What parsing a request needs; read-only while the server runs. */
typedef struct srv_ctx {
    const mf_vocab *vocab;
    const mf_chat_template *tmpl;
    const char *model_id, *model_name;
    uint32_t n_ctx;
    int default_max_tokens;
    mf_sampler_params sampler;
    bool test_hooks;
} srv_ctx;

typedef struct srv_job {
    /* Set by the HTTP thread before the job is queued, then read-only. */
    srv_kind kind;
    bool stream, include_usage, tools, ignore_eos;
    srv_think think;
    char id[48];
    const char *model_id;
    long created;
    int32_t *prompt;
    size_t n_prompt;
    mf_sampler_params sp;
    uint32_t max_tokens;
    float presence, frequency;
    char *stop[SRV_MAX_STOP];
    int n_stop;
    int32_t *bias_id;            /* logit_bias */
    float *bias;
    int n_bias;
    int32_t *forced;             /* test hook: the reply's tokens, then end of turn */
    size_t n_forced;
    int delay_ms;                /* test hook: sleep after each token */

    /* Shared with the worker, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    atomic_bool cancel;          /* client gone or server stopping */
    bool done;
    srv_buf out;                 /* streaming: SSE bytes not yet sent */
    srv_buf content, reasoning;  /* non-streaming results */
    srv_buf tool_calls;          /* non-streaming: JSON objects, comma-separated */
    int n_tool_calls;
    const char *finish;          /* "stop", "length", "tool_calls" */
    uint32_t n_cached, n_gen;
    srv_err err;                 /* err.status != 0: the generation failed */
    struct srv_job *next;        /* the worker's queue */
} srv_job;

srv_job *srv_job_new(void);
void srv_job_ref(srv_job *j);
void srv_job_unref(srv_job *j);

/* Validates a parsed JSON body (a jansson json_t *, passed as void * so
 * that this header does not need jansson) into a new job: prompt tokens,
 * sampling, stop strings, tools. NULL with er filled on a bad request. */
srv_job *srv_request_parse(const srv_ctx *cx, srv_kind kind, const void *json, srv_err *er);

/* ---- response bodies (srv_response.c); malloc'd, NUL-terminated ---- */

char *srv_error_json(const srv_err *er);
char *srv_result_json(const srv_job *j);                 /* after done */
char *srv_models_json(const char *model_id, long created, const char *only);
/* SSE events of a streaming job, appended to out ("data: {...}\n\n"). */
int srv_sse_role(const srv_job *j, srv_buf *out);
int srv_sse_event(const srv_job *j, srv_ev ev, const char *a, size_t na, const char *b, size_t nb, int tool_index,
                  srv_buf *out);
int srv_sse_finish(const srv_job *j, srv_buf *out);      /* finish_reason, usage, [DONE] */
int srv_sse_error(const srv_err *er, srv_buf *out);      /* error event, [DONE] */
/* A tool call as the message's tool_calls[] object, into out. */
int srv_tool_call_json(const char *name, size_t nn, const char *args, size_t na, srv_buf *out);

/* ---- the worker (srv_worker.c) ---- */

typedef struct srv_metrics {
    uint64_t requests, requests_ok, requests_cancelled, requests_failed;
    uint64_t prompt_tokens, cached_tokens, generated_tokens;
    double prefill_s, decode_s;
    int queued, running;
    mf_stats engine;             /* the model's counters after the last job */
} srv_metrics;

typedef struct srv_worker srv_worker;
srv_worker *srv_worker_start(mf_model *m, uint32_t n_ctx, int batch, int queue_max, mf_error *e);
uint32_t srv_worker_n_ctx(const srv_worker *w);
/* Queues j (taking a reference): 0, -1 queue full, -2 stopping. */
int srv_worker_submit(srv_worker *w, srv_job *j);
void srv_worker_metrics(srv_worker *w, srv_metrics *out);
/* Refuses new jobs, ends the queued ones (503) and the running one, joins
 * the thread; submit and metrics stay callable until srv_worker_free. */
void srv_worker_stop(srv_worker *w);
void srv_worker_free(srv_worker *w);

#endif
