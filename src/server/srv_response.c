/* srv_response.c — the JSON a client gets back, in OpenAI's shapes: chat
 * completions and text completions (whole, or as SSE chunks ending with
 * `data: [DONE]`), the model list, and the error object
 * {"error": {"message", "type", "param", "code"}}. Field order and the
 * nulls follow what api.openai.com sends, because some clients check them.
 * Every string here is valid UTF-8 (the worker sanitizes generated text).
 */
#include "server/srv.h"

#if defined(MF_HAVE_MICROHTTPD) && defined(MF_HAVE_JANSSON)

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FINGERPRINT "moeflash"

int srv_errf(srv_err *er, int status, const char *type, const char *code, const char *param, const char *fmt, ...)
{
    er->status = status;
    er->type = type;
    er->code = code;
    snprintf(er->param, sizeof er->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(er->msg, sizeof er->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static char *dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return s;
}

/* A string that may not be valid UTF-8 (an error message quoting input). */
static json_t *str_lossy(const char *s)
{
    srv_buf b = { 0 };
    if (srv_buf_add_utf8(&b, s, strlen(s))) return NULL;
    json_t *o = json_stringn(b.p ? b.p : "", b.n);
    srv_buf_free(&b);
    return o;
}

char *srv_error_json(const srv_err *er)
{
    json_t *msg = str_lossy(er->msg);
    json_t *param = er->param[0] ? str_lossy(er->param) : json_null();
    return dump(json_pack("{s:{s:o*,s:s,s:o*,s:s?}}", "error", "message", msg, "type",
                          er->type ? er->type : "invalid_request_error", "param", param, "code", er->code));
}

char *srv_models_json(const char *model_id, long created, const char *only)
{
    json_t *m = json_pack("{s:s,s:s,s:I,s:s}", "id", model_id, "object", "model", "created", (json_int_t)created,
                          "owned_by", "moeflash");
    if (only) return dump(m);
    return dump(json_pack("{s:s,s:[o*]}", "object", "list", "data", m));
}

static json_t *usage(const srv_job *j)
{
    return json_pack("{s:I,s:I,s:I,s:{s:I}}", "prompt_tokens", (json_int_t)j->n_prompt, "completion_tokens",
                     (json_int_t)j->n_gen, "total_tokens", (json_int_t)(j->n_prompt + j->n_gen), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)j->n_cached);
}

/* id, object, created, model, system_fingerprint, then choices (and usage). */
static json_t *envelope(const srv_job *j, const char *object, json_t *choices)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:s,s:o*}", "id", j->id, "object", object, "created", (json_int_t)j->created,
                     "model", j->model_id, "system_fingerprint", FINGERPRINT, "choices", choices);
}

char *srv_result_json(const srv_job *j)
{
    const char *finish = j->finish ? j->finish : "stop";
    json_t *o;
    if (j->kind == SRV_COMPLETION) {
        json_t *choice = json_pack("{s:s%,s:i,s:n,s:s}", "text", j->content.p ? j->content.p : "", j->content.n,
                                   "index", 0, "logprobs", "finish_reason", finish);
        o = envelope(j, "text_completion", json_pack("[o*]", choice));
    } else {
        json_t *msg = json_object();
        json_object_set_new(msg, "role", json_string("assistant"));
        /* OpenAI sends content null when the reply is only tool calls. */
        json_object_set_new(msg, "content",
                            j->content.n || !j->n_tool_calls ? json_stringn(j->content.p ? j->content.p : "", j->content.n)
                                                             : json_null());
        if (j->reasoning.n) json_object_set_new(msg, "reasoning_content", json_stringn(j->reasoning.p, j->reasoning.n));
        if (j->n_tool_calls) {
            srv_buf arr = { 0 };
            if (!srv_buf_add(&arr, "[", 1) && !srv_buf_add(&arr, j->tool_calls.p, j->tool_calls.n) &&
                !srv_buf_add(&arr, "]", 1))
                json_object_set_new(msg, "tool_calls", json_loadb(arr.p, arr.n, 0, NULL));
            srv_buf_free(&arr);
        }
        json_object_set_new(msg, "refusal", json_null());
        json_t *choice = json_pack("{s:i,s:o,s:n,s:s}", "index", 0, "message", msg, "logprobs", "finish_reason", finish);
        o = envelope(j, "chat.completion", json_pack("[o*]", choice));
    }
    if (o) json_object_set_new(o, "usage", usage(j));
    return dump(o);
}

static int sse_add(srv_buf *out, json_t *o)
{
    char *s = dump(o);
    if (!s) return -1;
    int rc = srv_buf_addf(out, "data: %s\n\n", s);
    free(s);
    return rc;
}

/* One chunk with one choice; with include_usage every chunk carries
 * "usage": null and a last chunk carries the numbers. */
static int chunk(const srv_job *j, json_t *choice, srv_buf *out)
{
    json_t *o = envelope(j, j->kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion",
                         choice ? json_pack("[o]", choice) : json_array());
    if (o && j->include_usage) json_object_set_new(o, "usage", json_null());
    return sse_add(out, o);
}

static json_t *chat_choice(json_t *delta, const char *finish)
{
    return json_pack("{s:i,s:o*,s:n,s:s?}", "index", 0, "delta", delta, "logprobs", "finish_reason", finish);
}

int srv_sse_role(const srv_job *j, srv_buf *out)
{
    if (j->kind != SRV_CHAT) return 0;
    return chunk(j, chat_choice(json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL), out);
}

int srv_tool_call_json(const char *name, size_t nn, const char *args, size_t na, srv_buf *out)
{
    char id[40];
    srv_random_id(id, sizeof id, "call_", 24);
    char *s = dump(json_pack("{s:s,s:s,s:{s:s%,s:s%}}", "id", id, "type", "function", "function", "name", name, nn,
                             "arguments", args, na));
    if (!s) return -1;
    int rc = srv_buf_add(out, s, strlen(s));
    free(s);
    return rc;
}

int srv_sse_event(const srv_job *j, srv_ev ev, const char *a, size_t na, const char *b, size_t nb, int tool_index,
                  srv_buf *out)
{
    if (j->kind == SRV_COMPLETION)
        return chunk(j, json_pack("{s:s%,s:i,s:n,s:n}", "text", a, na, "index", 0, "logprobs", "finish_reason"), out);
    json_t *delta;
    if (ev == SRV_EV_CONTENT) delta = json_pack("{s:s%}", "content", a, na);
    else if (ev == SRV_EV_REASONING) delta = json_pack("{s:s%}", "reasoning_content", a, na);
    else {
        char id[40];
        srv_random_id(id, sizeof id, "call_", 24);
        delta = json_pack("{s:[{s:i,s:s,s:s,s:{s:s%,s:s%}}]}", "tool_calls", "index", tool_index, "id", id, "type",
                          "function", "function", "name", a, na, "arguments", b, nb);
    }
    return chunk(j, chat_choice(delta, NULL), out);
}

int srv_sse_finish(const srv_job *j, srv_buf *out)
{
    const char *finish = j->finish ? j->finish : "stop";
    json_t *last = j->kind == SRV_CHAT ? chat_choice(json_object(), finish)
                                       : json_pack("{s:s,s:i,s:n,s:s}", "text", "", "index", 0, "logprobs",
                                                   "finish_reason", finish);
    if (chunk(j, last, out)) return -1;
    if (j->include_usage) {
        json_t *o = envelope(j, j->kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion", json_array());
        if (o) json_object_set_new(o, "usage", usage(j));
        if (sse_add(out, o)) return -1;
    }
    return srv_buf_add(out, "data: [DONE]\n\n", 14);
}

int srv_sse_error(const srv_err *er, srv_buf *out)
{
    char *s = srv_error_json(er);
    if (!s) return -1;
    int rc = srv_buf_addf(out, "data: %s\n\ndata: [DONE]\n\n", s);
    free(s);
    return rc;
}

#endif
