/* srv_request.c — an OpenAI request body into a job the worker can run.
 *
 * Everything a client can get wrong is caught here, on the HTTP thread,
 * and answered with a 4xx and OpenAI's error object naming the parameter:
 * wrong types, values out of range, an unknown model, n > 1, a prompt
 * longer than the context. Chat messages are normalized the way the
 * templates expect them (content parts joined, tool-call arguments given
 * as objects), rendered with the model's chat template and tokenized, so
 * the worker receives token ids only. Null counts as absent, as in
 * OpenAI's API; unknown fields are ignored.
 */
#include "server/srv.h"

#if defined(MF_HAVE_MICROHTTPD) && defined(MF_HAVE_JANSSON)

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define BAD(er, param, ...) srv_errf(er, 400, "invalid_request_error", NULL, param, __VA_ARGS__)

static json_t *field(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

/* 1 set, 0 absent, -1 bad (er filled). */
static int get_num(const json_t *o, const char *key, double lo, double hi, double *out, srv_err *er)
{
    json_t *v = field(o, key);
    if (!v) return 0;
    if (!json_is_number(v)) return BAD(er, key, "'%s' must be a number", key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return BAD(er, key, "'%s' must be between %g and %g, found %g", key, lo, hi, x);
    *out = x;
    return 1;
}

static int get_int(const json_t *o, const char *key, double lo, double hi, long long *out, srv_err *er)
{
    json_t *v = field(o, key);
    if (!v) return 0;
    double x = json_is_integer(v) ? (double)json_integer_value(v) : json_is_real(v) ? json_real_value(v) : NAN;
    if (!(x == floor(x))) return BAD(er, key, "'%s' must be an integer", key);
    if (!(x >= lo && x <= hi)) return BAD(er, key, "'%s' must be between %.0f and %.0f, found %.0f", key, lo, hi, x);
    *out = json_is_integer(v) ? (long long)json_integer_value(v) : (long long)x;
    return 1;
}

static int get_bool(const json_t *o, const char *key, bool *out, srv_err *er)
{
    json_t *v = field(o, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) return BAD(er, key, "'%s' must be a boolean", key);
    *out = json_is_true(v);
    return 1;
}

static int parse_sampling(const srv_ctx *cx, const json_t *rq, srv_job *j, srv_err *er)
{
    j->sp = cx->sampler;
    double x;
    long long i;
    int r;
    if ((r = get_num(rq, "temperature", 0, 2, &x, er)) < 0) return -1;
    if (r) j->sp.temperature = (float)x;
    if ((r = get_num(rq, "top_p", 0, 1, &x, er)) < 0) return -1;
    if (r) j->sp.top_p = (float)x;
    if ((r = get_int(rq, "top_k", 0, 1e9, &i, er)) < 0) return -1;
    if (r) j->sp.top_k = (int)i;
    if ((r = get_num(rq, "min_p", 0, 1, &x, er)) < 0) return -1;
    if (r) j->sp.min_p = (float)x;
    if ((r = get_num(rq, "repeat_penalty", 0, 10, &x, er)) < 0) return -1;
    if (r) j->sp.repeat_penalty = (float)x;
    if ((r = get_int(rq, "seed", -9.2e18, 9.2e18, &i, er)) < 0) return -1;
    if (r) j->sp.seed = (uint64_t)i;
    else if (getrandom(&j->sp.seed, sizeof j->sp.seed, 0) != sizeof j->sp.seed) /* OpenAI: no seed, no repeatability */
        j->sp.seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)j;
    if ((r = get_num(rq, "presence_penalty", -2, 2, &x, er)) < 0) return -1;
    if (r) j->presence = (float)x;
    if ((r = get_num(rq, "frequency_penalty", -2, 2, &x, er)) < 0) return -1;
    if (r) j->frequency = (float)x;
    if (get_bool(rq, "ignore_eos", &j->ignore_eos, er) < 0) return -1;

    json_t *lb = field(rq, "logit_bias");
    if (lb) {
        if (!json_is_object(lb)) return BAD(er, "logit_bias", "'logit_bias' must be an object of token id: bias");
        size_t n = json_object_size(lb);
        if (n > 1024) return BAD(er, "logit_bias", "'logit_bias' has %zu entries, at most 1024 are allowed", n);
        j->bias_id = malloc((n ? n : 1) * sizeof *j->bias_id);
        j->bias = malloc((n ? n : 1) * sizeof *j->bias);
        if (!j->bias_id || !j->bias) return srv_errf(er, 500, "server_error", NULL, NULL, "out of memory");
        const char *key;
        json_t *v;
        json_object_foreach(lb, key, v) {
            char *end;
            long id = strtol(key, &end, 10);
            if (!*key || *end || id < 0 || (size_t)id >= mf_vocab_size(cx->vocab))
                return BAD(er, "logit_bias", "'logit_bias': '%s' is not a token id of this model (0..%zu)", key,
                           mf_vocab_size(cx->vocab) - 1);
            if (!json_is_number(v) || !(json_number_value(v) >= -100 && json_number_value(v) <= 100))
                return BAD(er, "logit_bias", "'logit_bias': the bias of token %ld must be a number in [-100, 100]", id);
            j->bias_id[j->n_bias] = (int32_t)id;
            j->bias[j->n_bias++] = (float)json_number_value(v);
        }
    }

    json_t *st = field(rq, "stop");
    if (st) {
        size_t n = json_is_array(st) ? json_array_size(st) : 1;
        if (!json_is_string(st) && !json_is_array(st)) return BAD(er, "stop", "'stop' must be a string or a list of strings");
        if (n > SRV_MAX_STOP) return BAD(er, "stop", "'stop' has %zu strings, at most %d are allowed", n, SRV_MAX_STOP);
        for (size_t k = 0; k < n; k++) {
            json_t *s = json_is_array(st) ? json_array_get(st, k) : st;
            if (!json_is_string(s)) return BAD(er, "stop", "'stop[%zu]' must be a string", k);
            size_t len = json_string_length(s);
            if (len > SRV_MAX_STOP_LEN) return BAD(er, "stop", "'stop[%zu]' is longer than %d bytes", k, SRV_MAX_STOP_LEN);
            if (!len || memchr(json_string_value(s), 0, len)) continue;
            if (!(j->stop[j->n_stop++] = strdup(json_string_value(s))))
                return srv_errf(er, 500, "server_error", NULL, NULL, "out of memory");
        }
    }
    return 0;
}

/* A message's content: a string, or a list of text parts joined by "\n". */
static int content_text(const json_t *c, size_t i, json_t **out, srv_err *er)
{
    if (json_is_string(c)) { *out = json_incref((json_t *)c); return 0; }
    if (!json_is_array(c)) return BAD(er, "messages", "'messages[%zu].content' must be a string or a list of parts", i);
    srv_buf b = { 0 };
    size_t k;
    json_t *p;
    json_array_foreach(c, k, p) {
        json_t *type = json_object_get(p, "type"), *text = json_object_get(p, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") || !json_is_string(text)) {
            srv_buf_free(&b);
            return BAD(er, "messages", "'messages[%zu].content[%zu]': only {\"type\": \"text\", \"text\": ...} parts are supported",
                       i, k);
        }
        if ((k && srv_buf_add(&b, "\n", 1)) || srv_buf_add(&b, json_string_value(text), json_string_length(text))) {
            srv_buf_free(&b);
            return srv_errf(er, 500, "server_error", NULL, NULL, "out of memory");
        }
    }
    *out = json_stringn(b.p ? b.p : "", b.n);
    srv_buf_free(&b);
    return 0;
}

/* Tool calls of an assistant message; arguments given as a JSON string
 * become the object, as templates (Qwen's among them) expect. */
static int tool_calls(json_t *msg, size_t i, srv_err *er)
{
    json_t *tc = field(msg, "tool_calls");
    if (!tc) return 0;
    if (!json_is_array(tc)) return BAD(er, "messages", "'messages[%zu].tool_calls' must be a list", i);
    size_t k;
    json_t *c;
    json_array_foreach(tc, k, c) {
        json_t *fn = json_object_get(c, "function");
        json_t *name = json_object_get(fn, "name"), *args = json_object_get(fn, "arguments");
        if (!json_is_object(c) || !json_is_object(fn) || !json_is_string(name))
            return BAD(er, "messages", "'messages[%zu].tool_calls[%zu]' must be {\"type\": \"function\", \"function\": {\"name\", \"arguments\"}}", i, k);
        if (json_is_string(args)) {
            json_t *o = json_loads(json_string_value(args), 0, NULL);
            if (json_is_object(o)) json_object_set_new(fn, "arguments", o);
            else json_decref(o);
        } else if (args && !json_is_object(args))
            return BAD(er, "messages", "'messages[%zu].tool_calls[%zu].function.arguments' must be a JSON string", i, k);
    }
    return 0;
}

static int messages(const json_t *rq, json_t **out, srv_err *er)
{
    json_t *ms = field(rq, "messages");
    if (!ms) return BAD(er, "messages", "'messages' is required");
    if (!json_is_array(ms) || !json_array_size(ms)) return BAD(er, "messages", "'messages' must be a non-empty list");
    json_t *arr = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(ms, i, m) {
        if (!json_is_object(m)) goto bad_obj;
        json_t *role = json_object_get(m, "role");
        static const char *const roles[] = { "system", "developer", "user", "assistant", "tool", "function" };
        size_t r = 0;
        while (json_is_string(role) && r < 6 && strcmp(json_string_value(role), roles[r])) r++;
        if (!json_is_string(role) || r == 6) {
            json_decref(arr);
            return BAD(er, "messages", "'messages[%zu].role' must be one of system, developer, user, assistant, tool", i);
        }
        json_t *copy = json_deep_copy(m), *content = NULL, *c = field(m, "content");
        json_array_append_new(arr, copy);
        if (r == 1) json_object_set_new(copy, "role", json_string("system")); /* templates know no "developer" */
        if (c) {
            if (content_text(c, i, &content, er)) goto fail;
        } else if (r == 3) content = json_string("");
        else {
            json_decref(arr);
            return BAD(er, "messages", "'messages[%zu].content' is required for role '%s'", i, roles[r]);
        }
        json_object_set_new(copy, "content", content);
        if (r == 3 && tool_calls(copy, i, er)) goto fail;
    }
    *out = arr;
    return 0;
bad_obj:
    json_decref(arr);
    return BAD(er, "messages", "'messages[%zu]' must be an object", i);
fail:
    json_decref(arr);
    return -1;
}

static int tools(const json_t *rq, json_t **out, bool *parse, srv_err *er)
{
    json_t *ts = field(rq, "tools"), *choice = field(rq, "tool_choice");
    *out = NULL;
    *parse = false;
    if (choice && !json_is_string(choice) && !json_is_object(choice))
        return BAD(er, "tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or an object");
    if (json_is_string(choice) && strcmp(json_string_value(choice), "none") && strcmp(json_string_value(choice), "auto") &&
        strcmp(json_string_value(choice), "required"))
        return BAD(er, "tool_choice", "'tool_choice' must be \"none\", \"auto\" or \"required\", found \"%s\"",
                   json_string_value(choice));
    if (json_is_object(choice) && !json_is_string(json_object_get(json_object_get(choice, "function"), "name")))
        return BAD(er, "tool_choice", "'tool_choice' must name a function: {\"type\": \"function\", \"function\": {\"name\": ...}}");
    if (!ts) return 0;
    if (!json_is_array(ts)) return BAD(er, "tools", "'tools' must be a list");
    size_t i;
    json_t *t;
    json_array_foreach(ts, i, t) {
        json_t *type = json_object_get(t, "type"), *fn = json_object_get(t, "function");
        if (!json_is_string(type) || strcmp(json_string_value(type), "function") || !json_is_object(fn) ||
            !json_is_string(json_object_get(fn, "name")))
            return BAD(er, "tools", "'tools[%zu]' must be {\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": ...}}", i);
    }
    /* tool_choice "none": the model is not told about the tools at all. */
    if (!json_array_size(ts) || (json_is_string(choice) && !strcmp(json_string_value(choice), "none"))) return 0;
    *out = json_incref(ts);
    *parse = true;
    return 0;
}

static int tokenize(const srv_ctx *cx, const char *text, size_t len, bool bos_ok, srv_job *j, srv_err *er)
{
    size_t bl = 0;
    int32_t bos = mf_vocab_bos(cx->vocab);
    const char *bt = bos >= 0 ? mf_token_text(cx->vocab, bos, &bl) : NULL;
    bool add_bos = bos_ok && mf_vocab_add_bos(cx->vocab) && !(bt && bl && len >= bl && !memcmp(text, bt, bl));
    mf_error e;
    if (mf_tokenize(cx->vocab, text, len, true, add_bos, &j->prompt, &j->n_prompt, &e))
        return BAD(er, NULL, "could not tokenize the prompt: %s", e.msg);
    return 0;
}

static int chat(const srv_ctx *cx, const json_t *rq, srv_job *j, srv_err *er)
{
    json_t *msgs = NULL, *ts = NULL;
    if (messages(rq, &msgs, er) || tools(rq, &ts, &j->tools, er)) { json_decref(msgs); return -1; }
    json_t *req = json_pack("{s:o,s:o,s:b}", "messages", msgs, "tools", ts ? ts : json_null(), "add_generation_prompt", 1);
    json_t *kw = field(rq, "chat_template_kwargs"), *v;
    const char *key;
    if (kw && !json_is_object(kw)) { json_decref(req); return BAD(er, "chat_template_kwargs", "'chat_template_kwargs' must be an object"); }
    json_object_foreach(kw, key, v) if (strcmp(key, "messages")) json_object_set(req, key, v);
    if ((v = field(rq, "enable_thinking"))) json_object_set(req, "enable_thinking", v);
    if ((v = field(rq, "reasoning_effort"))) json_object_set(req, "reasoning_effort", v);
    char *s = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!s) return srv_errf(er, 500, "server_error", NULL, NULL, "out of memory");
    char *text = NULL;
    size_t len = 0;
    mf_error e;
    int rc = mf_chat_template_apply(cx->tmpl, s, &text, &len, &e);
    free(s);
    if (rc) return BAD(er, "messages", "the chat template failed on these messages: %s", e.msg);
    size_t t = len;
    while (t && (text[t - 1] == ' ' || text[t - 1] == '\n' || text[t - 1] == '\r' || text[t - 1] == '\t')) t--;
    j->think = t >= 7 && !memcmp(text + t - 7, "<think>", 7) ? SRV_THINK_OPEN : SRV_THINK_DETECT;
    rc = tokenize(cx, text, len, true, j, er);
    free(text);
    return rc;
}

static int completion(const srv_ctx *cx, const json_t *rq, srv_job *j, srv_err *er)
{
    json_t *p = field(rq, "prompt"), *v;
    bool b = false;
    if (get_bool(rq, "echo", &b, er) < 0) return -1;
    if (b) return BAD(er, "echo", "'echo' is not supported");
    if (field(rq, "suffix")) return BAD(er, "suffix", "'suffix' is not supported");
    if ((v = field(rq, "logprobs")) && !json_is_false(v) && !(json_is_integer(v) && !json_integer_value(v)))
        return BAD(er, "logprobs", "'logprobs' is not supported");
    long long best = 1;
    if (get_int(rq, "best_of", 1, 1, &best, er) < 0) return -1;
    if (!p) return BAD(er, "prompt", "'prompt' is required");
    if (json_is_array(p) && json_array_size(p) == 1 && !json_is_integer(json_array_get(p, 0))) p = json_array_get(p, 0);
    if (json_is_string(p)) return tokenize(cx, json_string_value(p), json_string_length(p), true, j, er);
    if (!json_is_array(p))
        return BAD(er, "prompt", "'prompt' must be a string, a list of token ids, or a list holding one of these");
    size_t n = json_array_size(p), i;
    j->prompt = malloc((n ? n : 1) * sizeof *j->prompt);
    if (!j->prompt) return srv_errf(er, 500, "server_error", NULL, NULL, "out of memory");
    json_array_foreach(p, i, v) {
        if (!json_is_integer(v)) return BAD(er, "prompt", "only one prompt per request is supported ('n' is 1)");
        json_int_t id = json_integer_value(v);
        if (id < 0 || (size_t)id >= mf_vocab_size(cx->vocab))
            return BAD(er, "prompt", "'prompt[%zu]': token id %lld is out of range (0..%zu)", i, (long long)id,
                       mf_vocab_size(cx->vocab) - 1);
        j->prompt[j->n_prompt++] = (int32_t)id;
    }
    return 0;
}

srv_job *srv_request_parse(const srv_ctx *cx, srv_kind kind, const void *json, srv_err *er)
{
    const json_t *rq = json;
    memset(er, 0, sizeof *er);
    if (!json_is_object(rq)) { BAD(er, NULL, "the request body must be a JSON object"); return NULL; }
    srv_job *j = srv_job_new();
    if (!j) { srv_errf(er, 500, "server_error", NULL, NULL, "out of memory"); return NULL; }
    j->kind = kind;
    j->created = (long)time(NULL);
    j->model_id = cx->model_id;
    srv_random_id(j->id, sizeof j->id, kind == SRV_CHAT ? "chatcmpl-" : "cmpl-", 24);

    json_t *v = field(rq, "model"), *so;
    long long n = 1, mt = -1;
    int r;
    if (v && !json_is_string(v)) { BAD(er, "model", "'model' must be a string"); goto fail; }
    if (v && strcmp(json_string_value(v), cx->model_id) && (!cx->model_name || strcmp(json_string_value(v), cx->model_name))) {
        srv_errf(er, 404, "invalid_request_error", "model_not_found", "model",
                 "The model '%s' does not exist; this server has '%s'", json_string_value(v), cx->model_id);
        goto fail;
    }
    if (get_int(rq, "n", -1e9, 1e9, &n, er) < 0) goto fail;
    if (n != 1) { BAD(er, "n", "'n' must be 1, found %lld: one choice per request", n); goto fail; }
    if (get_bool(rq, "stream", &j->stream, er) < 0) goto fail;
    if ((so = field(rq, "stream_options"))) {
        if (!json_is_object(so)) { BAD(er, "stream_options", "'stream_options' must be an object"); goto fail; }
        if (get_bool(so, "include_usage", &j->include_usage, er) < 0) goto fail;
        j->include_usage = j->include_usage && j->stream;
    }
    if (kind == SRV_CHAT) {
        if ((v = field(rq, "logprobs")) && !json_is_false(v)) { BAD(er, "logprobs", "'logprobs' is not supported"); goto fail; }
        if ((v = field(rq, "response_format"))) {
            json_t *t = json_object_get(v, "type");
            if (!json_is_string(t) || strcmp(json_string_value(t), "text")) {
                BAD(er, "response_format", "'response_format': only {\"type\": \"text\"} is supported");
                goto fail;
            }
        }
    }
    if ((r = get_int(rq, "max_tokens", 1, 1e9, &mt, er)) < 0) goto fail;
    if ((r = get_int(rq, "max_completion_tokens", 1, 1e9, &mt, er)) < 0) goto fail;
    if (parse_sampling(cx, rq, j, er)) goto fail;
    if ((kind == SRV_CHAT ? chat : completion)(cx, rq, j, er)) goto fail;

    const char *what = kind == SRV_CHAT ? "messages" : "prompt";
    if (!j->n_prompt) { BAD(er, what, "the prompt is empty"); goto fail; }
    if (j->n_prompt >= cx->n_ctx) {
        srv_errf(er, 400, "invalid_request_error", "context_length_exceeded", what,
                 "This model's maximum context length is %u tokens. However, your %s resulted in %zu tokens.", cx->n_ctx,
                 what, j->n_prompt);
        goto fail;
    }
    uint32_t room = cx->n_ctx - (uint32_t)j->n_prompt;
    if (mt < 0) mt = kind == SRV_COMPLETION ? 16 : cx->default_max_tokens > 0 ? cx->default_max_tokens : (long long)room;
    j->max_tokens = mt < (long long)room ? (uint32_t)mt : room;

    if (cx->test_hooks) {
        long long d = 0;
        if (get_int(rq, "mf_test_delay_ms", 0, 10000, &d, er) < 0) goto fail;
        j->delay_ms = (int)d;
        if ((v = field(rq, "mf_test_reply"))) {
            mf_error e;
            if (!json_is_string(v) || mf_tokenize(cx->vocab, json_string_value(v), json_string_length(v), false, false,
                                                  &j->forced, &j->n_forced, &e)) {
                BAD(er, "mf_test_reply", "'mf_test_reply' must be a string the vocabulary can encode");
                goto fail;
            }
        }
    }
    return j;
fail:
    srv_job_unref(j);
    return NULL;
}

#endif
