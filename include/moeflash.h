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
    uint64_t cache_bytes;     /* expert cache budget; 0: auto (90% of the memory
                                 left after the resident weights, cgroup-aware;
                                 never more than all experts) */
    const char *io;           /* expert reads: "pread" (default), "direct", "uring" */
    int io_threads;           /* reader threads (pread/direct) or ring depth; 0: default */
    int n_batch;              /* prompt evaluation: 0 batched layer by layer (each
                                 routed expert read once per batch), 1 token by token */
    const char *policy;       /* expert cache eviction policy (lru, lru-layer, lfu, lrfu,
                                 hot, nextuse); NULL: the measured default, nextuse */
    bool no_prefetch;         /* do not read the next layer's guessed experts ahead */
    const char *hot_set;      /* --hot-set FILE: the "hot" policy's learned counts, read at
                                 open and written at close (selects policy "hot") */
    int n_expert_used;        /* --experts-used K: routed experts per token; 0: the model's
                                 (expert_used_count), 1..that: fewer (faster, less exact;
                                 README gives the quality cost); anything else fails at open */
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

/* Evaluates n tokens at the next positions (several at once layer by layer
 * when the architecture supports it: the same logits, fewer expert reads).
 * With all_logits non-NULL it receives n x n_vocab floats (row i: logits
 * after token i); the logits after the last token are always kept
 * (mf_session_logits). On error the session keeps the positions it had
 * before the call (token by token: before the failing token). */
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

/* ---- generation (src/engine/generate.c) ---- */

/* A generator is the loop prompt tokens -> sampled tokens -> text on one
 * session that it keeps between calls: it remembers which tokens the
 * session holds, so a later prompt that starts with them (the next turn of
 * a chat, re-rendered whole) evaluates only what is new. Text reaches the
 * caller through a callback as it becomes safe to print: whole UTF-8
 * characters, stop strings never printed, not even in part. Buffers are
 * allocated in mf_gen_new and at the start of mf_gen_run, never per token. */
typedef struct mf_gen mf_gen;
typedef struct mf_vocab mf_vocab;                 /* the tokenizer section */
typedef struct mf_chat_template mf_chat_template; /* the chat templates section */

typedef enum mf_finish {
    MF_FINISH_LENGTH = 0,    /* max_tokens generated */
    MF_FINISH_EOG,           /* an end-of-generation token (not printed) */
    MF_FINISH_STOP,          /* a stop string (not printed) */
    MF_FINISH_CTX,           /* the context is full */
    MF_FINISH_CANCEL,        /* a callback returned nonzero */
} mf_finish;

/* "length", "eog", "stop", "ctx", "cancel". */
const char *mf_finish_name(mf_finish f);

typedef struct mf_gen_params {
    long max_tokens;              /* tokens to sample; < 0: until EOG, a stop string or a full context */
    const char *const *stop;      /* n_stop stop strings (NUL-terminated, non-empty) */
    size_t n_stop;
    bool special;                 /* print control tokens' text (hidden by default) */
    bool echo_prompt;             /* first print the text of the whole prompt (what
                                     llama.cpp's examples print); else only new text */
    uint32_t n_batch;             /* prompt tokens per mf_eval call; 0: all at once */
    /* Text as it becomes safe to print; nonzero return: stop (MF_FINISH_CANCEL). */
    int (*on_text)(void *user, const char *text, size_t len);
    /* Prompt evaluation progress, after each batch; nonzero return: stop. */
    int (*on_prefill)(void *user, size_t done, size_t total);
    /* Checked before each token and batch (e.g. reads a SIGINT flag);
     * nonzero: stop. */
    int (*cancel)(void *user);
    void *user;                   /* passed to the callbacks */
} mf_gen_params;

typedef struct mf_gen_result {
    mf_finish finish;
    size_t n_reused;              /* prompt tokens the session already held */
    size_t n_prompt_eval;         /* prompt tokens evaluated by this call */
    size_t n_generated;           /* tokens sampled (an EOG token included) */
    double prefill_s, decode_s;
} mf_gen_result;

void mf_gen_params_default(mf_gen_params *p);   /* no limit, no stop, no callbacks */

/* A generator with a new session of n_ctx positions (0: the model's
 * training context) and a sampler made from sp (NULL: defaults). Needs
 * the model's vocabulary (an error when the GGUF has none). */
mf_gen *mf_gen_new(mf_model *m, uint32_t n_ctx, const mf_sampler_params *sp, mf_error *e);
void mf_gen_free(mf_gen *g);
/* The generator's session, to read (n_past, logits); evaluate through
 * mf_gen_run only, or the generator loses track of what it holds. */
mf_session *mf_gen_session(mf_gen *g);
/* The tokens whose positions the session holds (mf_session_n_past of them). */
const int32_t *mf_gen_tokens(const mf_gen *g, size_t *n);
/* Forgets every position (a new conversation). */
int mf_gen_reset(mf_gen *g, mf_error *e);

/* Makes the session hold prompt[0..n) and generates from there. The
 * longest common prefix with the tokens already held is kept (at most
 * n - 1: the last prompt token is evaluated again for its logits); the
 * session is truncated to it, or to 0 for architectures whose recurrent
 * state cannot be truncated partway. Returns 0 with r filled (finish
 * reason, counts), or -1 with e set; p NULL: the defaults. Either way
 * mf_gen_tokens stays the truth about the session. The last sampled token
 * is not evaluated; a following call evaluates it as part of its prompt
 * if needed. */
int mf_gen_run(mf_gen *g, const int32_t *prompt, size_t n, const mf_gen_params *p, mf_gen_result *r, mf_error *e);

/* A chat message for mf_chat_tokenize. */
typedef struct mf_chat_msg {
    const char *role;             /* "system", "user", "assistant", "tool" */
    const char *content;
} mf_chat_msg;

/* Renders msgs with the template (add_generation_prompt true;
 * enable_thinking < 0: not set, else false/true) and tokenizes the text
 * with special tokens parsed; BOS is prepended when the vocabulary wants it
 * and the text does not already begin with it. Bytes of a content that
 * are not UTF-8 become U+FFFD (a reply may hold any bytes; JSON may not).
 * *ids and *text (text may be NULL) are malloc'd. */
int mf_chat_tokenize(const mf_chat_template *t, const mf_vocab *v, const mf_chat_msg *msgs, size_t n_msgs,
                     int enable_thinking, int32_t **ids, size_t *n_ids, char **text, mf_error *e);

/* ---- end generation ---- */

/* ---- replies: reasoning, content, tool calls (src/template/reply.c) ---- */

/* A reply's text, as the streaming decoder gives it, split into the parts
 * an OpenAI-style client (or a person) is shown. The split works on the
 * decoded text: markers are recognised whether they were special tokens
 * printed as text or plain text pieces. */
typedef enum mf_reply_format {
    MF_REPLY_AUTO = 0,    /* harmony when the reply opens with <|channel|> or <|start|>, else tags */
    MF_REPLY_PLAIN,       /* no parsing: all content */
    MF_REPLY_TAGS,        /* <think>...</think> first (Qwen, DeepSeek, GLM-4.5); tool calls as
                             <tool_call>{"name": N, "arguments": {...}}</tool_call> (Qwen) or
                             <tool_call>N\n<arg_key>K</arg_key>\n<arg_value>V</arg_value>...</tool_call>
                             (GLM-4.5: V raw for a string, JSON otherwise) */
    MF_REPLY_HARMONY,     /* gpt-oss: <|channel|>analysis<|message|>...<|end|><|start|>assistant
                             <|channel|>final<|message|>...<|return|>; a message with a recipient
                             (commentary to=functions.N <|constrain|>json<|message|>{...}<|call|>)
                             is a tool call */
} mf_reply_format;

const char *mf_reply_format_name(mf_reply_format f);  /* "auto", "plain", "tags", "harmony" */
/* The format of a model's replies: arch (mf_model_info.arch; may be NULL)
 * "gpt-oss", or text[0..len) (a chat template's source or a prompt rendered
 * with it; may be NULL) holding "<|channel|>" or ending in
 * "<|start|>assistant": HARMONY; otherwise TAGS (which covers glm4moe). */
mf_reply_format mf_reply_format_detect(const char *arch, const char *text, size_t len);
/* Whether a rendered prompt ends inside an open <think> block (the last
 * <think> comes after the last </think>): the reply starts as reasoning. */
bool mf_reply_prompt_opens_think(const char *prompt, size_t len);

typedef enum mf_reply_part {
    MF_REPLY_CONTENT,     /* text: the answer (harmony: final and commentary channels) */
    MF_REPLY_REASONING,   /* text: <think> or harmony's analysis channel */
    MF_REPLY_TOOL_CALL,   /* text: the function's name; args: its arguments as JSON text */
} mf_reply_part;

typedef struct mf_reply_params {
    mf_reply_format format;
    bool think_open;      /* TAGS/AUTO: the prompt opened <think>; the reply starts as reasoning */
    bool tools;           /* parse tool calls; without, their text is content (harmony: by channel) */
    /* Each part as soon as it is decided; runs of text may come in any
     * number of pieces, a tool call comes whole. Nonzero return: stop
     * (mf_reply_feed returns it). */
    int (*emit)(void *user, mf_reply_part part, const char *text, size_t len, const char *args, size_t args_len);
    void *user;
} mf_reply_params;

/* Zeroes p, then sets format (mf_reply_format_detect) and think_open from
 * the model's architecture and the rendered prompt. */
void mf_reply_params_init(mf_reply_params *p, const char *arch, const char *prompt, size_t len);

typedef struct mf_reply mf_reply;
mf_reply *mf_reply_new(const mf_reply_params *p, mf_error *e);
/* Feeds decoded text (any cut); calls emit for what is decided. 0, the
 * callback's nonzero value, or -1 out of memory. */
int mf_reply_feed(mf_reply *r, const char *s, size_t n);
/* End of the reply: everything held back is decided. */
int mf_reply_finish(mf_reply *r);
void mf_reply_free(mf_reply *r);

/* ---- end replies ---- */

/* ---- statistics ---- */

typedef struct mf_stats {
    uint64_t prompt_tokens, generated_tokens;
    double prefill_s, decode_s;
    uint64_t cache_hits, cache_misses, bytes_read;
    double io_wait_s;
    uint64_t cache_bytes;
    uint64_t prefetch_issued, prefetch_used, prefetch_wasted;
    uint64_t peak_rss_bytes;
    uint64_t prefetch_late;   /* demand misses whose prefetch read was still in flight */
    uint64_t predicted, predicted_right;  /* experts chosen where the next-layer guess ran,
                                             and those in the guess's top-K */
    uint64_t predicted_in_guess;          /* ... and those anywhere in the guess (K + margin) */
    uint64_t prefill_bytes_read;          /* expert bytes read while evaluating prompts
                                             (bytes_read counts prefill and decode) */
} mf_stats;

/* Test hook: the nth expert read from now fails (1 EIO, 2 short read,
 * 3 ENOMEM), to check that errors reach the caller. */
void mf_model_inject_io_fault(mf_model *m, uint64_t nth, int kind);

/* How often each expert of layer was used since open: counts[n_expert]. */
void mf_model_expert_uses(const mf_model *m, uint32_t layer, uint64_t *counts);

/* Counters since the model was opened (or last reset). */
void mf_model_stats(const mf_model *m, mf_stats *out);
void mf_model_stats_reset(mf_model *m);
/* Writes the --stats-json object (DESIGN.md's fields). */
int mf_stats_write_json(const mf_model *m, const mf_stats *st, const char *io, const char *path, mf_error *e);

/* ---- synthetic models (src/models/synth.c) ---- */

/* The shape of a random-weight qwen3moe model. Types are mf_type ids
 * (F32, F16, Q8_0, Q4_K; for the routed experts also Q2_K and IQ2_XXS). */
typedef struct mf_synth_shape {
    uint32_t n_layer, n_embd, n_head, n_head_kv, head_dim;
    uint32_t n_expert, n_used, n_ff_exp, n_vocab, n_ctx;
    float freq_base;
    uint32_t dense_type, expert_type, embd_type, output_type;
    bool words_vocab;         /* a vocabulary of English words (the demo) */
    uint64_t seed;
} mf_synth_shape;

/* Presets: "qwen3-30b-a3b" (BENCHMARKS.md's 12-layer model), "demo", "tiny". */
void mf_synth_preset(const char *name, mf_synth_shape *s);
/* Writes the model to path (via path.partial, renamed when complete). */
int mf_synth_write(const char *path, const mf_synth_shape *s, mf_error *e);
/* The type id of a routed-expert type the writer generates, by its ggml
 * name, any case ("q4_K", "q2_K", "iq2_xxs"), or -1. */
int mf_synth_expert_type(const char *name);

/* Random-weight models of other architectures (src/models/synth_archs.c):
 * "qwen35-35b-a3b" (qwen35moe), "deepseek-v3" (deepseek2), "gpt-oss-120b"
 * (gpt-oss) with the real models' shapes, and "qwen35-tiny",
 * "deepseek-v3-tiny", "gpt-oss-tiny" (the same layouts, a few MB).
 * n_layer_override > 0 replaces the layer count. Written via path.partial;
 * path NULL only checks the preset name. */
int mf_synth_write_arch(const char *preset, const char *path, int n_layer_override, mf_error *e);

/* ---- benchmark (src/engine/bench.c) ---- */

typedef struct mf_bench_params {
    int n_threads;            /* <= 0: number of cores */
    uint64_t cache_bytes;     /* 0: auto */
    const char *io;           /* one backend, or NULL for pread, direct and uring in turn */
    int io_threads;
    int n_prompt, n_gen;      /* prompt tokens, generated tokens */
    const int *prefill;       /* n_prefill prompt lengths: measure prompt evaluation
                                 (batched vs token by token) instead of decode */
    int n_prefill;
    int n_batch;              /* --batch: prefill pass size (0: the model's default) */
    int n_expert_used;        /* --experts-used: 0, or K instead of the model's */
} mf_bench_params;

/* Prints the benchmark report (references, rooflines, then decode per
 * backend, or prompt evaluation when p->n_prefill > 0). */
int mf_bench_run(const char *path, const mf_bench_params *p, FILE *out, mf_error *e);
/* Best-of-5 read bandwidth over a buffer of bytes, with n_threads. */
double mf_bench_memory_gbs(int n_threads, size_t bytes);
/* O_DIRECT random reads of chunk bytes in [lo, hi) of path, parallel
 * readers, for seconds; GB/s, or -1 with e set. */
double mf_bench_disk_gbs(const char *path, uint64_t lo, uint64_t hi, uint64_t chunk, int parallel, double seconds,
                         mf_error *e);

/* ---- tokenizer (src/tokenizer; owned by the tokenizer work) ---- */

/* A vocabulary read from a GGUF's tokenizer.ggml.* metadata: byte-level BPE
 * ("gpt2", pre-tokenizers qwen2, qwen35, deepseek-v3, llama-bpe, gpt-2,
 * default) or SentencePiece ("llama"). Read-only once loaded: it may be
 * shared by threads. Token ids are int32_t; -1 means "none". */
typedef struct mf_vocab mf_vocab;

mf_vocab *mf_vocab_open(const char *gguf_path, mf_error *e);
void mf_vocab_free(mf_vocab *v);

size_t mf_vocab_size(const mf_vocab *v);
int32_t mf_vocab_bos(const mf_vocab *v);
int32_t mf_vocab_eos(const mf_vocab *v);
int32_t mf_vocab_eot(const mf_vocab *v);      /* end of turn (<|im_end|>...) */
/* Whether the model wants BOS prepended (tokenizer.ggml.add_bos_token). */
bool mf_vocab_add_bos(const mf_vocab *v);
/* True for every token that ends generation (eos, eot, and the tokens
 * llama.cpp recognizes by name: <|im_end|>, <|endoftext|>, ...). */
bool mf_token_is_eog(const mf_vocab *v, int32_t id);
/* CONTROL or UNKNOWN tokens: hidden when decoding with special = false. */
bool mf_token_is_control(const mf_vocab *v, int32_t id);
/* The id of the token whose vocabulary text is exactly text[0..len), or -1. */
int32_t mf_token_find(const mf_vocab *v, const char *text, size_t len);
/* The token's vocabulary text ("Ġthe", "<|im_end|>"), not NUL-terminated;
 * NULL for an id out of range. */
const char *mf_token_text(const mf_vocab *v, int32_t id, size_t *len);
/* The bytes the token stands for (may be part of a UTF-8 character);
 * control tokens give "" unless special. NULL for an id out of range.
 * Points into the vocabulary: no allocation, no copy. */
const char *mf_token_piece(const mf_vocab *v, int32_t id, bool special, size_t *len);

/* Token ids of text[0..len) (may contain NUL bytes). parse_special: CONTROL
 * tokens written in the text (<|im_start|>) become those tokens; without it
 * they are plain text. USER_DEFINED tokens (<think>) are matched either way.
 * add_bos: prepend the BOS token (an error when there is none); pass
 * mf_vocab_add_bos(v) for the model's default. *ids is malloc'd (free it),
 * never NULL on success. */
int mf_tokenize(const mf_vocab *v, const char *text, size_t len, bool parse_special, bool add_bos,
                int32_t **ids, size_t *n, mf_error *e);
/* The text of ids (malloc'd, NUL-terminated, *len excludes the NUL).
 * special: print CONTROL tokens' text. An id out of range is an error.
 * SentencePiece: the leading space of the first text token is dropped. */
int mf_detokenize(const mf_vocab *v, const int32_t *ids, size_t n, bool special, char **text, size_t *len,
                  mf_error *e);

/* Streaming decoder for generation: push one token at a time, print what it
 * returns. It never returns part of a UTF-8 character (bytes a later token
 * may complete are held back); everything returned, flush included, equals
 * mf_detokenize of the same ids. Allocates only in mf_detok_new. */
typedef struct mf_detok mf_detok;
mf_detok *mf_detok_new(const mf_vocab *v, bool special, mf_error *e);
/* *out (valid until the next call) receives the bytes now safe to print. */
int mf_detok_push(mf_detok *d, int32_t id, const char **out, size_t *len, mf_error *e);
/* Returns the held-back bytes of an unfinished character (end of stream). */
void mf_detok_flush(mf_detok *d, const char **out, size_t *len);
/* Starts a new text (e.g. a new reply) without reallocating. */
void mf_detok_reset(mf_detok *d);
void mf_detok_free(mf_detok *d);

/* The model's own vocabulary (loaded with it), or NULL with e saying why. */
const mf_vocab *mf_model_vocab(const mf_model *m, mf_error *e);

/* ---- end tokenizer ---- */

/* ---- chat templates (src/template; owned by the template work) ---- */

/* A chat template: the model's Jinja `tokenizer.chat_template`, rendered as
 * Hugging Face's apply_chat_template renders it (trim_blocks, lstrip_blocks,
 * tojson as json.dumps with ensure_ascii off). A request is the JSON object
 *   {"messages": [...], "tools": [...] or null,
 *    "add_generation_prompt": bool, "enable_thinking": bool, ...}
 * whose members become the template's variables: tools defaults to null and
 * add_generation_prompt to false; enable_thinking and any other member
 * (reasoning_effort, builtin_tools...) are defined only when present.
 * bos_token and eos_token are the texts of the model's special tokens.
 * Errors in a template name its line and column. */
typedef struct mf_chat_template mf_chat_template;

/* template_src NULL: the ChatML fallback. bos/eos NULL: taken from the
 * request's "bos_token"/"eos_token", else empty. */
mf_chat_template *mf_chat_template_new(const char *template_src, const char *bos_token,
                                       const char *eos_token, mf_error *e);
/* The GGUF's tokenizer.chat_template (or template_src when not NULL) with
 * the texts of its bos/eos token ids. A GGUF without a template gets the
 * ChatML fallback (mf_chat_template_chatml). */
mf_chat_template *mf_chat_template_from_model(const char *model_path, const char *template_src, mf_error *e);
bool mf_chat_template_is_fallback(const mf_chat_template *t);
void mf_chat_template_free(mf_chat_template *t);

/* Renders a request. *out is malloc'd and NUL-terminated; *out_len (may be
 * NULL) is its length, as the text may contain NUL bytes from the input. */
int mf_chat_template_apply(const mf_chat_template *t, const char *request_json,
                           char **out, size_t *out_len, mf_error *e);

/* One-shot forms of the above. */
int mf_chat_render(const char *template_src, const char *request_json, const char *bos_token,
                   const char *eos_token, char **out, size_t *out_len, mf_error *e);
int mf_chat_render_model(const char *model_path, const char *template_src, const char *request_json,
                         char **out, size_t *out_len, mf_error *e);

/* The fallback, Hugging Face's former default: each message as
 * "<|im_start|>ROLE\nCONTENT<|im_end|>\n", then "<|im_start|>assistant\n"
 * when add_generation_prompt. */
const char *mf_chat_template_chatml(void);

/* ---- end chat templates ---- */

/* Prints what `moeflash inspect` shows: architecture, hyperparameters,
 * metadata, the tensor table and the memory plan. Works for any GGUF. */
int mf_inspect(const char *path, FILE *out, mf_error *e);

#ifdef __cplusplus
}
#endif
#endif
