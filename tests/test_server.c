/* test_server.c — `moeflash serve` (src/server): the text filters alone,
 * request validation alone, then a live server on 127.0.0.1 (a free port,
 * the golden qwen3moe model) driven over real sockets: every endpoint and
 * error case, SSE in OpenAI's chunk format, tool calls and reasoning, KV
 * reuse, client disconnects, a full queue, 32 concurrent clients, the
 * official `openai` npm client (tests/server/openai_client.mjs), and the
 * binary itself. The random-weight model cannot be asked for a tool call,
 * so the server's test hook mf_test_reply makes it generate given text
 * token by token (through the model, the decoder and every filter); the
 * golden gpt-oss and glm4moe models answer that way in harmony and in
 * GLM-4.5's tool-call syntax. */
#include "t.h"

#if defined(MF_HAVE_MICROHTTPD) && defined(MF_HAVE_JANSSON)

#include "server/sse.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/wait.h>

/* ---- the filters ---- */

TEST(server_utf8_sanitize_and_ids)
{
    srv_buf b = { 0 };
    CHECK(!srv_buf_add_utf8(&b, "ok \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 14));
    CHECK(b.n == 14 && !memcmp(b.p, "ok \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 14));
    b.n = 0;
    CHECK(!srv_buf_add_utf8(&b, "a\xFF" "b\xC3" "\xED\xA0\x80" "\xC0\xAF", 9)); /* stray, cut, surrogate, overlong */
    CHECKF(!strcmp(b.p, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"), "%s", b.p);
    srv_buf_free(&b);
    char a[64], c[64];
    srv_random_id(a, sizeof a, "call_", 24);
    srv_random_id(c, sizeof c, "call_", 24);
    CHECK(strlen(a) == 29 && !strncmp(a, "call_", 5) && strcmp(a, c));
}

TEST(server_stop_strings_across_pieces)
{
    const char *stops[] = { "STOP", "\n\nUser:" };
    srv_stopper st;
    srv_stopper_init(&st, stops, 2);
    srv_buf out = { 0 };
    CHECK(srv_stopper_feed(&st, "Hello ST", 8, &out) == 0);
    CHECKF(!strcmp(out.p, "Hello "), "%s", out.p); /* "ST" is held back */
    CHECK(srv_stopper_feed(&st, "ill \n", 5, &out) == 0);
    CHECKF(!strcmp(out.p, "Hello STill "), "%s", out.p);
    CHECK(srv_stopper_feed(&st, "\nUs", 3, &out) == 0);
    CHECK(srv_stopper_feed(&st, "er: x", 5, &out) == 1);
    CHECKF(!strcmp(out.p, "Hello STill "), "%s", out.p);
    srv_stopper_free(&st);
    /* Earliest match wins; the flush gives back a held prefix. */
    srv_stopper_init(&st, stops, 2);
    out.n = 0;
    CHECK(srv_stopper_feed(&st, "a\n\nUser:STOP", 12, &out) == 1 && !strcmp(out.p, "a"));
    srv_stopper_free(&st);
    srv_stopper_init(&st, stops, 2);
    out.n = 0;
    CHECK(srv_stopper_feed(&st, "abcSTO", 6, &out) == 0 && !srv_stopper_flush(&st, &out) && !strcmp(out.p, "abcSTO"));
    srv_stopper_free(&st);
    srv_buf_free(&out);
}

typedef struct events { srv_buf b; char last; } events;

/* "[C text][R text][T name args]"; consecutive C (or R) events merge, as
 * a stream may cut a run of text anywhere. */
static int collect(void *ctx, srv_ev ev, const char *a, size_t na, const char *b, size_t nb)
{
    events *o = ctx;
    char kind = ev == SRV_EV_CONTENT ? 'C' : ev == SRV_EV_REASONING ? 'R' : 'T';
    if (kind == 'T') { o->last = 'T'; return srv_buf_addf(&o->b, "[T %.*s %.*s]", (int)na, a, (int)nb, b); }
    if (o->last == kind) o->b.n--; /* reopen the previous event */
    else if (srv_buf_addf(&o->b, "[%c ", kind)) return -1;
    o->last = kind;
    return srv_buf_addf(&o->b, "%.*s]", (int)na, a);
}

static void parse_reply(const char *text, bool tools, srv_think think, bool bytewise, char *out, size_t cap)
{
    events ev = { { 0 }, 0 };
    srv_reply r;
    srv_reply_init(&r, tools, think, collect, &ev);
    size_t n = strlen(text);
    for (size_t i = 0; i < n; i += bytewise ? 1 : n) srv_reply_feed(&r, text + i, bytewise ? 1 : n);
    srv_reply_finish(&r);
    srv_reply_free(&r);
    snprintf(out, cap, "%s", ev.b.p ? ev.b.p : "");
    srv_buf_free(&ev.b);
}

TEST(server_reply_parser_think_and_tool_calls)
{
    static const struct { const char *in; bool tools; srv_think think; const char *want; } cases[] = {
        { "Hello world", false, SRV_THINK_DETECT, "[C Hello world]" },
        { "<think>\nplan\n</think>\n\nAnswer.", false, SRV_THINK_DETECT, "[R plan][C Answer.]" },
        { "  <think>a</think>b", false, SRV_THINK_DETECT, "[R a][C b]" },
        { "plan\n</think>\n\nAnswer.", false, SRV_THINK_OPEN, "[R plan][C Answer.]" },
        { "<think>x</think>y", false, SRV_THINK_NONE, "[C <think>x</think>y]" },
        { "<thinking>", false, SRV_THINK_DETECT, "[C <thinking>]" },
        { "unfinished <think", false, SRV_THINK_DETECT, "[C unfinished <think]" },
        { "Sure.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>", true, SRV_THINK_DETECT,
          "[C Sure.][T f {\"a\":1}]" },
        { "<tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>\n<tool_call>{\"name\":\"g\",\"arguments\":\"{\\\"b\\\":2}\"}</tool_call>",
          true, SRV_THINK_DETECT, "[T f {}][T g {\"b\":2}]" },
        { "<tool_call>{\"name\": \"f\"}", true, SRV_THINK_DETECT, "[T f {}]" },
        { "<tool_call>not json</tool_call> after", true, SRV_THINK_DETECT, "[C <tool_call>not json</tool_call>after]" },
        { "<tool_call>{\"name\": \"f\", \"argu", true, SRV_THINK_DETECT, "[C <tool_call>{\"name\": \"f\", \"argu]" },
        { "x <tool_call>{\"name\":\"f\"}</tool_call>", false, SRV_THINK_DETECT, "[C x <tool_call>{\"name\":\"f\"}</tool_call>]" },
        { "<think>r</think><tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>", true, SRV_THINK_DETECT, "[R r][T f {}]" },
        { "trailing blanks \n", true, SRV_THINK_DETECT, "[C trailing blanks \n]" },
    };
    char whole[1024], bytes[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parse_reply(cases[i].in, cases[i].tools, cases[i].think, false, whole, sizeof whole);
        parse_reply(cases[i].in, cases[i].tools, cases[i].think, true, bytes, sizeof bytes);
        CHECKF(!strcmp(whole, cases[i].want), "case %zu: got %s want %s", i, whole, cases[i].want);
        CHECKF(!strcmp(bytes, cases[i].want), "case %zu byte by byte: got %s want %s", i, bytes, cases[i].want);
    }
}

/* ---- request validation ---- */

TEST(server_request_validation)
{
    mf_error e;
    mf_vocab *v = mf_vocab_open(golden_model(), &e);
    mf_chat_template *t = mf_chat_template_from_model(golden_model(), NULL, &e);
    mf_chat_template *tt = mf_chat_template_new("{{ messages[0]['content'] }}<think>\n", NULL, NULL, &e);
    REQUIREF(v && t && tt, "%s", e.msg);
    srv_ctx cx = { .vocab = v, .tmpl = t, .model_id = "qwen3moe-f32", .model_name = "golden", .n_ctx = 64 };
    mf_sampler_params_default(&cx.sampler);
    static const struct { srv_kind k; const char *json; int status; const char *param; } bad[] = {
        { SRV_CHAT, "[]", 400, "" },
        { SRV_CHAT, "{}", 400, "messages" },
        { SRV_CHAT, "{\"messages\": []}", 400, "messages" },
        { SRV_CHAT, "{\"messages\": \"hi\"}", 400, "messages" },
        { SRV_CHAT, "{\"messages\": [5]}", 400, "messages" },
        { SRV_CHAT, "{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}", 400, "messages" },
        { SRV_CHAT, "{\"messages\": [{\"role\": \"user\"}]}", 400, "messages" },
        { SRV_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", 400, "messages" },
        { SRV_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}", 400, "messages" },
        { SRV_CHAT, "{\"messages\": [{\"role\": \"assistant\", \"content\": null, \"tool_calls\": 3}]}", 400, "messages" },
#define U "\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]"
        { SRV_CHAT, "{\"model\": \"gpt-4o\", " U "}", 404, "model" },
        { SRV_CHAT, "{\"model\": 7, " U "}", 400, "model" },
        { SRV_CHAT, "{\"n\": 2, " U "}", 400, "n" },
        { SRV_CHAT, "{\"temperature\": \"hot\", " U "}", 400, "temperature" },
        { SRV_CHAT, "{\"temperature\": 3, " U "}", 400, "temperature" },
        { SRV_CHAT, "{\"top_p\": 1.5, " U "}", 400, "top_p" },
        { SRV_CHAT, "{\"top_k\": -1, " U "}", 400, "top_k" },
        { SRV_CHAT, "{\"min_p\": true, " U "}", 400, "min_p" },
        { SRV_CHAT, "{\"seed\": \"x\", " U "}", 400, "seed" },
        { SRV_CHAT, "{\"presence_penalty\": 9, " U "}", 400, "presence_penalty" },
        { SRV_CHAT, "{\"max_tokens\": 0, " U "}", 400, "max_tokens" },
        { SRV_CHAT, "{\"max_tokens\": \"5\", " U "}", 400, "max_tokens" },
        { SRV_CHAT, "{\"max_completion_tokens\": 2.5, " U "}", 400, "max_completion_tokens" },
        { SRV_CHAT, "{\"stop\": 5, " U "}", 400, "stop" },
        { SRV_CHAT, "{\"stop\": [1], " U "}", 400, "stop" },
        { SRV_CHAT, "{\"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"], " U "}", 400, "stop" },
        { SRV_CHAT, "{\"stream\": \"yes\", " U "}", 400, "stream" },
        { SRV_CHAT, "{\"stream\": true, \"stream_options\": 1, " U "}", 400, "stream_options" },
        { SRV_CHAT, "{\"tools\": {}, " U "}", 400, "tools" },
        { SRV_CHAT, "{\"tools\": [{\"type\": \"function\"}], " U "}", 400, "tools" },
        { SRV_CHAT, "{\"tool_choice\": \"sometimes\", " U "}", 400, "tool_choice" },
        { SRV_CHAT, "{\"logit_bias\": {\"99999\": 1}, " U "}", 400, "logit_bias" },
        { SRV_CHAT, "{\"logit_bias\": {\"5\": 500}, " U "}", 400, "logit_bias" },
        { SRV_CHAT, "{\"logprobs\": true, " U "}", 400, "logprobs" },
        { SRV_CHAT, "{\"response_format\": {\"type\": \"json_object\"}, " U "}", 400, "response_format" },
        { SRV_CHAT, "{\"chat_template_kwargs\": [], " U "}", 400, "chat_template_kwargs" },
        { SRV_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"" /* > 64 tokens of context */
                    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
                    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen\"}]}", 400, "messages" },
        { SRV_COMPLETION, "{}", 400, "prompt" },
        { SRV_COMPLETION, "{\"prompt\": 5}", 400, "prompt" },
        { SRV_COMPLETION, "{\"prompt\": [\"a\", \"b\"]}", 400, "prompt" },
        { SRV_COMPLETION, "{\"prompt\": [1, 99999]}", 400, "prompt" },
        { SRV_COMPLETION, "{\"prompt\": \"\"}", 400, "prompt" },
        { SRV_COMPLETION, "{\"prompt\": \"a\", \"echo\": true}", 400, "echo" },
        { SRV_COMPLETION, "{\"prompt\": \"a\", \"suffix\": \"b\"}", 400, "suffix" },
        { SRV_COMPLETION, "{\"prompt\": \"a\", \"best_of\": 3}", 400, "best_of" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *o = json_loads(bad[i].json, 0, NULL);
        REQUIREF(o, "case %zu is not JSON", i);
        srv_err er;
        srv_job *j = srv_request_parse(&cx, bad[i].k, o, &er);
        CHECKF(!j && er.status == bad[i].status && !strcmp(er.param, bad[i].param) && er.msg[0],
               "case %zu (%s): status %d param '%s' msg '%s'", i, bad[i].json, er.status, er.param, er.msg);
        srv_job_unref(j);
        json_decref(o);
    }
    CHECK(1);

    /* Good requests: what the worker will be given. */
    srv_err er;
    json_t *o = json_loads("{\"model\": \"golden\", \"messages\": [{\"role\": \"developer\", \"content\": \"Be brief\"},"
                           "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Hi\"}, {\"type\": \"text\", \"text\": \"there\"}]}],"
                           "\"stop\": [\"a\", \"\", \"b\"], \"max_tokens\": 1000, \"temperature\": 0, \"seed\": 5,"
                           "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], \"mf_test_reply\": \"x\"}",
                           0, NULL);
    srv_job *j = srv_request_parse(&cx, SRV_CHAT, o, &er);
    REQUIREF(j, "%s", er.msg);
    char *want = "<|im_start|>system\nBe brief<|im_end|>\n<|im_start|>user\nHi\nthere<|im_end|>\n<|im_start|>assistant\n";
    int32_t *ids;
    size_t n;
    REQUIRE(!mf_tokenize(v, want, strlen(want), true, false, &ids, &n, &e));
    CHECK(j->n_prompt == n && !memcmp(j->prompt, ids, n * sizeof *ids));
    CHECK(j->n_stop == 2 && !strcmp(j->stop[1], "b"));
    CHECK(j->max_tokens == 64 - n);     /* clipped to the context */
    CHECK(j->tools && j->think == SRV_THINK_DETECT && j->sp.temperature == 0 && j->sp.seed == 5);
    CHECK(!j->forced);                  /* test hooks are off */
    free(ids);
    srv_job_unref(j);
    json_decref(o);

    o = json_loads("{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}], \"tool_choice\": \"none\", \"tools\": "
                   "[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], \"mf_test_reply\": \"hey\"}", 0, NULL);
    cx.tmpl = tt;
    cx.test_hooks = true;
    j = srv_request_parse(&cx, SRV_CHAT, o, &er);
    REQUIREF(j, "%s", er.msg);
    CHECK(!j->tools && j->think == SRV_THINK_OPEN && j->n_forced > 0);
    srv_job_unref(j);
    json_decref(o);

    o = json_loads("{\"prompt\": [[1, 2, 3]], \"stream\": true, \"stream_options\": {\"include_usage\": true}}", 0, NULL);
    j = srv_request_parse(&cx, SRV_COMPLETION, o, &er);
    REQUIREF(j, "%s", er.msg);
    CHECK(j->n_prompt == 3 && j->prompt[2] == 3 && j->max_tokens == 16 && j->stream && j->include_usage);
    srv_job_unref(j);
    json_decref(o);
    mf_chat_template_free(tt);
    mf_chat_template_free(t);
    mf_vocab_free(v);
}

/* Every value of a rich request replaced, one at a time, by each JSON type:
 * a job or a 4xx with a message, never a crash (run it under make asan). */
static void mutate(t_state *t_, const srv_ctx *cx, json_t *root, json_t *node, int *n)
{
    static const char *alts[] = { "null", "0", "-1", "1e300", "\"\"", "\"x\"", "[]", "{}", "true", "[[1]]", "{\"a\":{}}" };
    size_t size = json_is_object(node) ? json_object_size(node) : json_is_array(node) ? json_array_size(node) : 0;
    const char *key = NULL;
    void *it = json_is_object(node) ? json_object_iter(node) : NULL;
    for (size_t i = 0; i < size; i++, it = it ? json_object_iter_next(node, it) : NULL) {
        if (it) key = json_object_iter_key(it);
        json_t *save = json_incref(it ? json_object_iter_value(it) : json_array_get(node, i));
        for (size_t a = 0; a < sizeof alts / sizeof alts[0]; a++) {
            json_t *alt = json_loads(alts[a], JSON_DECODE_ANY, NULL);
            if (it) json_object_iter_set_new(node, it, alt);
            else json_array_set_new(node, i, alt);
            srv_err er;
            srv_job *j = srv_request_parse(cx, SRV_CHAT, root, &er);
            CHECKF(j || (er.status >= 400 && er.status < 500 && er.msg[0]), "%s -> %s: %d %s", key ? key : "[i]", alts[a],
                   er.status, er.msg);
            srv_job_unref(j);
            (*n)++;
        }
        if (it) json_object_iter_set_new(node, it, save);
        else json_array_set_new(node, i, save);
        mutate(t_, cx, root, save, n);
    }
}

TEST(server_request_every_field_every_type)
{
    mf_error e;
    mf_vocab *v = mf_vocab_open(golden_model(), &e);
    mf_chat_template *t = mf_chat_template_from_model(golden_model(), NULL, &e);
    REQUIREF(v && t, "%s", e.msg);
    srv_ctx cx = { .vocab = v, .tmpl = t, .model_id = "qwen3moe-f32", .n_ctx = 4096, .test_hooks = true };
    mf_sampler_params_default(&cx.sampler);
    json_t *rq = json_loads(
        "{\"model\": \"qwen3moe-f32\", \"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\":"
        " [{\"type\": \"text\", \"text\": \"hi\"}]}, {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c\","
        " \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": \"{}\"}}]}, {\"role\": \"tool\", \"tool_call_id\":"
        " \"c\", \"content\": \"1\"}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {}}}],"
        " \"tool_choice\": \"auto\", \"stream\": true, \"stream_options\": {\"include_usage\": true}, \"max_tokens\": 5,"
        " \"temperature\": 0.5, \"top_p\": 0.9, \"top_k\": 5, \"min_p\": 0.1, \"seed\": 1, \"stop\": [\"a\"], \"n\": 1,"
        " \"presence_penalty\": 0.1, \"frequency_penalty\": 0.1, \"logit_bias\": {\"5\": 1}, \"chat_template_kwargs\":"
        " {\"enable_thinking\": false}, \"mf_test_reply\": \"r\", \"mf_test_delay_ms\": 0}", 0, NULL);
    REQUIRE(rq);
    srv_err er;
    srv_job *j = srv_request_parse(&cx, SRV_CHAT, rq, &er);
    CHECKF(j, "%s", er.msg);
    srv_job_unref(j);
    int n = 0;
    mutate(t_, &cx, rq, rq, &n);
    CHECK(n > 300);
    json_decref(rq);
    mf_chat_template_free(t);
    mf_vocab_free(v);
}

/* OpenAI-shaped messages (content null beside tool_calls, arguments as a
 * JSON string, text parts) through the real Qwen3 template give the ids
 * of the golden chat case that uses Hugging Face's shapes. */
TEST(server_request_qwen3_template_tool_round_trip)
{
    const char *gguf = t_shared("golden/tokenizer/qwen3-vocab.gguf");
    char *cases = t_read_file(t_shared("golden/tokenizer/chat.jsonl"), NULL);
    mf_error e;
    mf_vocab *v = mf_vocab_open(gguf, &e);
    mf_chat_template *t = v ? mf_chat_template_from_model(gguf, NULL, &e) : NULL;
    REQUIREF(cases && v && t, "%s", e.msg);
    json_t *want = NULL;
    for (char *line = strtok(cases, "\n"); line && !want; line = strtok(NULL, "\n")) {
        json_t *c = json_loads(line, 0, NULL);
        if (jeq(c, "name", "tool call + tool result + generation prompt")) want = json_incref(json_object_get(c, "expected_ids"));
        json_decref(c);
    }
    REQUIRE(json_is_array(want));
    srv_ctx cx = { .vocab = v, .tmpl = t, .model_id = "qwen3", .n_ctx = 4096 };
    mf_sampler_params_default(&cx.sampler);
    json_t *rq = json_loads(
        "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"What's the weather in Oslo?\"}]},"
        " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"call_1\", \"type\": \"function\", \"function\":"
        " {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Oslo\\\", \\\"unit\\\": \\\"celsius\\\"}\"}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"content\": \"{\\\"temperature\\\": -3, \\\"condition\\\": \\\"snow\\\"}\"}],"
        " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Current weather for a city.\","
        " \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"description\": \"City name\"},"
        " \"unit\": {\"type\": \"string\", \"enum\": [\"celsius\", \"fahrenheit\"]}}, \"required\": [\"city\"]}}}],"
        " \"chat_template_kwargs\": {\"enable_thinking\": true}}", 0, NULL);
    REQUIRE(rq);
    srv_err er;
    srv_job *j = srv_request_parse(&cx, SRV_CHAT, rq, &er);
    REQUIREF(j, "%s", er.msg);
    bool same = j->n_prompt == json_array_size(want);
    for (size_t i = 0; same && i < j->n_prompt; i++) same = j->prompt[i] == json_integer_value(json_array_get(want, i));
    CHECKF(same, "%zu ids, want %zu", j->n_prompt, json_array_size(want));
    CHECK(j->tools && j->think == SRV_THINK_DETECT);
    srv_job_unref(j);
    json_decref(rq);
    json_decref(want);
    mf_chat_template_free(t);
    mf_vocab_free(v);
    free(cases);
}

/* ---- a live server ---- */

#define CHAT(extra) "{\"model\": \"qwen3moe-f32\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]" extra "}"

/* The tokens of CHAT's prompt as the golden model's ChatML template renders it. */
static long long hello_tokens(void)
{
    static const char text[] = "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n";
    mf_error e;
    mf_vocab *v = mf_vocab_open(golden_model(), &e);
    int32_t *ids = NULL;
    size_t n = 0;
    if (!v || mf_tokenize(v, text, sizeof text - 1, true, false, &ids, &n, &e)) n = 0;
    free(ids);
    mf_vocab_free(v);
    return (long long)n;
}

TEST(server_endpoints)
{
    live L;
    REQUIRE(!live_start(&L, NULL));
    hc_res r;
    CHECK(hc_get(L.port, "/health", &r) == 200 && strstr(r.body, "\"ok\""));
    hc_free(&r);
    CHECK(hc_get(L.port, "/v1/models", &r) == 200);
    json_t *o = res_json(&r);
    CHECKF(o && jeq(o, "object", "list") && jeq(o, "data.0.id", "qwen3moe-f32") &&
               jeq(o, "data.0.object", "model"), "%s", BODY(r));
    json_decref(o); hc_free(&r);
    CHECK(hc_get(L.port, "/v1/models/qwen3moe-f32", &r) == 200); hc_free(&r);
    CHECK(hc_get(L.port, "/v1/models/nope", &r) == 404 && is_error_object(&r)); hc_free(&r);
    CHECK(hc_get(L.port, "/nope", &r) == 404 && is_error_object(&r)); hc_free(&r);
    CHECK(hc_get(L.port, "/v1/chat/completions", &r) == 405 && is_error_object(&r)); hc_free(&r);
    CHECK(hc_request(L.port, "DELETE", "/v1/models", NULL, NULL, 0, &r, 10) == 405); hc_free(&r);
    CHECK(hc_request(L.port, "OPTIONS", "/v1/chat/completions", NULL, NULL, 0, &r, 10) == 204); hc_free(&r);

    /* A greedy chat: the usage counts the rendered prompt's tokens. */
    CHECK(hc_post(L.port, "/v1/chat/completions", CHAT(", \"temperature\": 0, \"max_tokens\": 6"), &r) == 200);
    o = res_json(&r);
    const char *fin = jstr(o, "choices.0.finish_reason");
    CHECKF(o && jpre(o, "id", "chatcmpl-") && jeq(o, "object", "chat.completion") &&
               jeq(o, "model", "qwen3moe-f32") && jeq(o, "choices.0.message.role", "assistant") &&
               jstr(o, "choices.0.message.content") && fin && (!strcmp(fin, "stop") || !strcmp(fin, "length")),
           "%s", BODY(r));
    CHECK(jint(o, "usage.prompt_tokens") == hello_tokens() && jint(o, "usage.completion_tokens") >= 0 &&
          jint(o, "usage.completion_tokens") <= 6 &&
          jint(o, "usage.total_tokens") == jint(o, "usage.prompt_tokens") + jint(o, "usage.completion_tokens"));
    char first[4096];
    snprintf(first, sizeof first, "%s", jstr(o, "choices.0.message.content") ? jstr(o, "choices.0.message.content") : "");
    json_decref(o); hc_free(&r);
    /* The same request again, after another conversation used the cache. */
    CHECK(hc_post(L.port, "/v1/completions", "{\"prompt\": \"The quick brown\", \"max_tokens\": 3}", &r) == 200);
    o = res_json(&r);
    CHECKF(jeq(o, "object", "text_completion") && jstr(o, "choices.0.text") &&
               jint(o, "usage.completion_tokens") <= 3 && jpre(o, "id", "cmpl-"), "%s", BODY(r));
    json_decref(o); hc_free(&r);
    CHECK(hc_post(L.port, "/v1/chat/completions", CHAT(", \"temperature\": 0, \"max_tokens\": 6"), &r) == 200);
    o = res_json(&r);
    CHECKF(jstr(o, "choices.0.message.content") && jeq(o, "choices.0.message.content", first),
           "greedy reply changed: '%s' then %s", first, r.body);
    json_decref(o); hc_free(&r);

    /* Scripted replies: length, stop strings, completions. */
    CHECK(hc_post(L.port, "/v1/chat/completions", CHAT(", \"max_tokens\": 3, \"mf_test_reply\": \"one two three four\""), &r) == 200);
    o = res_json(&r);
    CHECKF(jeq(o, "choices.0.finish_reason", "length") && jint(o, "usage.completion_tokens") == 3, "%s", BODY(r));
    json_decref(o); hc_free(&r);
    CHECK(hc_post(L.port, "/v1/chat/completions", CHAT(", \"stop\": [\"STOP\"], \"mf_test_reply\": \"Hello STOP world\""), &r) == 200);
    o = res_json(&r);
    CHECKF(jeq(o, "choices.0.message.content", "Hello ") && jeq(o, "choices.0.finish_reason", "stop"),
           "%s", BODY(r));
    json_decref(o); hc_free(&r);
    CHECK(hc_post(L.port, "/completions", "{\"prompt\": [1, 2, 3], \"mf_test_reply\": \" jumps over\"}", &r) == 200);
    o = res_json(&r);
    CHECKF(jeq(o, "choices.0.text", " jumps over") && jint(o, "usage.prompt_tokens") == 3, "%s", BODY(r));
    json_decref(o); hc_free(&r);

    CHECK(hc_get(L.port, "/metrics", &r) == 200 && strstr(r.head, "text/plain"));
    static const char *names[] = { "moeflash_generated_tokens_total ", "moeflash_prompt_tokens_total ",
                                   "moeflash_decode_tokens_per_second ", "moeflash_expert_cache_hit_ratio ",
                                   "moeflash_expert_bytes_read_total ", "moeflash_queue_depth 0", "# TYPE moeflash_requests_total counter" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) CHECKF(strstr(r.body, names[i]), "no %s", names[i]);
    hc_free(&r);
    CHECK(metric(L.port, "moeflash_requests_total") == 6);
    live_stop(&L);
}

TEST(server_bad_input_and_api_key)
{
    srv_config c;
    srv_config_default(&c);
    c.api_key = "sk-test";
    c.body_max = 4096;
    live L;
    REQUIRE(!live_start(&L, &c));
    const char *auth = "Authorization: Bearer sk-test\r\n";
    hc_res r;
    char buf[128];
    CHECK(hc_get(L.port, "/health", &r) == 200); hc_free(&r);
    CHECK(hc_get(L.port, "/v1/models", &r) == 401 && is_error_object(&r));
    CHECK(!strcmp(error_field(&r, "code", buf, sizeof buf), "invalid_api_key")); hc_free(&r);
    CHECK(hc_request(L.port, "GET", "/v1/models", "Authorization: Bearer sk-wrong\r\n", NULL, 0, &r, 10) == 401); hc_free(&r);
    CHECK(hc_request(L.port, "GET", "/metrics", NULL, NULL, 0, &r, 10) == 401); hc_free(&r);
    CHECK(hc_request(L.port, "GET", "/v1/models", auth, NULL, 0, &r, 10) == 200); hc_free(&r);

    static const struct { const char *body; int status; const char *param; } bad[] = {
        { "", 400, "" },
        { "{", 400, "" },
        { "{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}", 400, "" }, /* invalid UTF-8 */
        { "{\"messages\": [{\"role\": \"user\", \"content\": \"a\\u0000b\"}]}", 400, "" },
        { "null", 400, "" },
        { "{\"model\": \"gpt-5\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", 404, "model" },
        { "{\"messages\": 1}", 400, "messages" },
        { "{\"prompt\": \"x\"}", 400, "messages" },
        { "{\"n\": 3, \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", 400, "n" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = hc_request(L.port, "POST", "/v1/chat/completions", auth, bad[i].body, strlen(bad[i].body), &r, 30);
        CHECKF(st == bad[i].status && is_error_object(&r) && !strcmp(error_field(&r, "param", buf, sizeof buf), bad[i].param),
               "case %zu: %d %s", i, st, r.body);
        hc_free(&r);
    }
    /* Deep nesting, a body over the limit (announced, chunked, or a lie). */
    char deep[3000];
    memset(deep, '[', sizeof deep);
    CHECK(hc_request(L.port, "POST", "/v1/chat/completions", auth, deep, sizeof deep, &r, 30) == 400); hc_free(&r);
    char *big = malloc(10000);
    memset(big, ' ', 10000);
    CHECK(hc_request(L.port, "POST", "/v1/chat/completions", auth, big, 10000, &r, 30) == 413 && is_error_object(&r)); hc_free(&r);
    int fd = hc_connect(L.port);
    REQUIRE(fd >= 0);
    char head[256];
    snprintf(head, sizeof head, "POST /v1/completions HTTP/1.1\r\nHost: x\r\n%sTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", auth);
    hc_send_all(fd, head, strlen(head));
    for (int k = 0; k < 5; k++) hc_send_all(fd, "7D0\r\n", 5), hc_send_all(fd, big, 2000), hc_send_all(fd, "\r\n", 2);
    hc_send_all(fd, "0\r\n\r\n", 5);
    hc_recv(fd, &r, 30);
    close(fd);
    CHECKF(r.status == 413, "chunked: %d", r.status); hc_free(&r);
    CHECK(hc_request(L.port, "POST", "/v1/completions", "Authorization: Bearer sk-test\r\nContent-Length: 999999999\r\n", NULL, 0,
                     &r, 30) == 413); hc_free(&r);
    free(big);
    CHECK(hc_get(L.port, "/health", &r) == 200); hc_free(&r);
    live_stop(&L);
}

TEST(server_streaming_sse_format)
{
    live L;
    REQUIRE(!live_start(&L, NULL));
    hc_res r;
    char text[4096];
    bool done;
    int bad;
    CHECK(hc_post(L.port, "/v1/chat/completions",
                  CHAT(", \"stream\": true, \"stream_options\": {\"include_usage\": true}, \"mf_test_reply\": \"Streaming works: \xc3\xa9t\xc3\xa9.\""),
                  &r) == 200);
    CHECK(strstr(r.head, "text/event-stream") != NULL);
    json_t *ev = sse_events(&r, &done, &bad);
    size_t n = json_array_size(ev);
    CHECKF(done && !bad && n >= 4, "%s", BODY(r));
    sse_text(ev, "content", text, sizeof text);
    CHECKF(!strcmp(text, "Streaming works: \xc3\xa9t\xc3\xa9."), "%s", text);
    json_t *e0 = json_array_get(ev, 0), *fin = json_array_get(ev, n - 2), *use = json_array_get(ev, n - 1);
    CHECK(jeq(e0, "choices.0.delta.role", "assistant") && jeq(e0, "object", "chat.completion.chunk"));
    for (size_t i = 0; i + 1 < n; i++) {
        json_t *c = json_array_get(ev, i);
        CHECK(jstr(e0, "id") && jeq(c, "id", jstr(e0, "id")) && json_is_null(json_object_get(c, "usage")));
        CHECK(json_array_size(json_object_get(c, "choices")) == 1);
    }
    CHECK(jeq(fin, "choices.0.finish_reason", "stop") && json_object_size(json_object_get(
              json_array_get(json_object_get(fin, "choices"), 0), "delta")) == 0);
    CHECK(json_array_size(json_object_get(use, "choices")) == 0 && jint(use, "usage.completion_tokens") > 0 &&
          jint(use, "usage.prompt_tokens") == hello_tokens());
    json_decref(ev); hc_free(&r);

    /* Without include_usage no chunk has "usage"; greedy text equals the
     * non-streamed reply. */
    CHECK(hc_post(L.port, "/v1/chat/completions", CHAT(", \"temperature\": 0, \"max_tokens\": 5"), &r) == 200);
    json_t *o = res_json(&r);
    char whole[4096];
    snprintf(whole, sizeof whole, "%s", jstr(o, "choices.0.message.content") ? jstr(o, "choices.0.message.content") : "?");
    json_decref(o); hc_free(&r);
    CHECK(hc_post(L.port, "/v1/chat/completions", CHAT(", \"temperature\": 0, \"max_tokens\": 5, \"stream\": true"), &r) == 200);
    ev = sse_events(&r, &done, &bad);
    CHECK(done && !bad);
    sse_text(ev, "content", text, sizeof text);
    CHECKF(!strcmp(text, whole), "streamed '%s' vs '%s'", text, whole);
    for (size_t i = 0; i < json_array_size(ev); i++) CHECK(!json_object_get(json_array_get(ev, i), "usage"));
    json_decref(ev); hc_free(&r);

    CHECK(hc_post(L.port, "/v1/completions", "{\"prompt\": \"Once\", \"stream\": true, \"mf_test_reply\": \" upon a time\"}", &r) == 200);
    ev = sse_events(&r, &done, &bad);
    sse_text(ev, "text", text, sizeof text);
    CHECKF(done && !bad && !strcmp(text, " upon a time"), "%s", BODY(r));
    CHECK(jeq(json_array_get(ev, 0), "object", "text_completion"));
    json_decref(ev); hc_free(&r);
    live_stop(&L);
}

#define TOOLS "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\"}}}]"
#define TOOL_REPLY "<think>\\nThe user wants weather.\\n</think>\\n\\nLet me check.\\n<tool_call>\\n{\\\"name\\\": \\\"get_weather\\\", " \
                   "\\\"arguments\\\": {\\\"city\\\": \\\"Paris\\\"}}\\n</tool_call>\\n<tool_call>\\n{\\\"name\\\": \\\"get_weather\\\", " \
                   "\\\"arguments\\\": {\\\"city\\\": \\\"Oslo\\\"}}\\n</tool_call>"

TEST(server_tool_calls_and_reasoning)
{
    live L;
    REQUIRE(!live_start(&L, NULL));
    hc_res r;
    CHECK(hc_post(L.port, "/v1/chat/completions", CHAT(", " TOOLS ", \"mf_test_reply\": \"" TOOL_REPLY "\""), &r) == 200);
    json_t *o = res_json(&r);
    CHECKF(jeq(o, "choices.0.finish_reason", "tool_calls") &&
               jeq(o, "choices.0.message.reasoning_content", "The user wants weather.") &&
               jeq(o, "choices.0.message.content", "Let me check.") &&
               jeq(o, "choices.0.message.tool_calls.0.type", "function") &&
               jpre(o, "choices.0.message.tool_calls.0.id", "call_") &&
               jeq(o, "choices.0.message.tool_calls.0.function.name", "get_weather") &&
               jeq(o, "choices.0.message.tool_calls.0.function.arguments", "{\"city\":\"Paris\"}") &&
               jeq(o, "choices.0.message.tool_calls.1.function.arguments", "{\"city\":\"Oslo\"}"),
           "%s", BODY(r));
    json_decref(o); hc_free(&r);

    /* The same as a stream: reasoning and content deltas, one delta per call. */
    bool done;
    int bad;
    CHECK(hc_post(L.port, "/v1/chat/completions", CHAT(", \"stream\": true, " TOOLS ", \"mf_test_reply\": \"" TOOL_REPLY "\""), &r) == 200);
    json_t *ev = sse_events(&r, &done, &bad);
    char text[1024];
    sse_text(ev, "reasoning_content", text, sizeof text);
    CHECKF(done && !bad && !strcmp(text, "The user wants weather."), "%s", text);
    sse_text(ev, "content", text, sizeof text);
    CHECKF(!strcmp(text, "Let me check."), "%s", text);
    int calls = 0;
    for (size_t i = 0; i < json_array_size(ev); i++) {
        json_t *c = json_array_get(ev, i);
        if (!jstr(c, "choices.0.delta.tool_calls.0.function.name")) continue;
        CHECK(jint(c, "choices.0.delta.tool_calls.0.index") == calls && jeq(c, "choices.0.delta.tool_calls.0.type", "function"));
        calls++;
    }
    CHECK(calls == 2);
    CHECK(jeq(json_array_get(ev, json_array_size(ev) - 1), "choices.0.finish_reason", "tool_calls"));
    json_decref(ev); hc_free(&r);

    /* Without tools (or tool_choice none) the text stays content. */
    CHECK(hc_post(L.port, "/v1/chat/completions", CHAT(", " TOOLS ", \"tool_choice\": \"none\", \"mf_test_reply\": \"<tool_call>{}</tool_call>\""), &r) == 200);
    o = res_json(&r);
    CHECKF(jeq(o, "choices.0.message.content", "<tool_call>{}</tool_call>") &&
               jeq(o, "choices.0.finish_reason", "stop") && !json_object_get(json_object_get(json_array_get(
                   json_object_get(o, "choices"), 0), "message"), "tool_calls"), "%s", BODY(r));
    json_decref(o); hc_free(&r);
    live_stop(&L);
}

TEST(server_kv_cache_reuse)
{
    live L;
    REQUIRE(!live_start(&L, NULL));
    hc_res r;
    CHECK(hc_post(L.port, "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"Tell me a story.\"}], "
                                                  "\"mf_test_reply\": \"Once upon a time.\"}", &r) == 200);
    json_t *o = res_json(&r);
    long long p1 = jint(o, "usage.prompt_tokens");
    json_decref(o); hc_free(&r);
    CHECK(hc_post(L.port, "/v1/chat/completions",
                  "{\"messages\": [{\"role\": \"user\", \"content\": \"Tell me a story.\"}, {\"role\": \"assistant\", \"content\": "
                  "\"Once upon a time.\"}, {\"role\": \"user\", \"content\": \"More.\"}], \"mf_test_reply\": \"The end.\"}", &r) == 200);
    o = res_json(&r);
    long long cached = jint(o, "usage.prompt_tokens_details.cached_tokens");
    CHECKF(p1 > 0 && cached >= p1 && cached < jint(o, "usage.prompt_tokens"), "turn 1 %lld tokens, turn 2 reused %lld: %s", p1,
           cached, r.body);
    CHECK(jeq(o, "choices.0.message.content", "The end."));
    json_decref(o); hc_free(&r);
    CHECK(metric(L.port, "moeflash_prompt_tokens_cached_total") >= (double)cached);
    live_stop(&L);
}

/* ---- other chat formats: gpt-oss's harmony, GLM-4.5's tool calls ---- */

/* live_start on another golden model (the reply format follows the text,
 * so the model only has to be of the family). */
static int live_start_model(live *L, const char *rel)
{
    signal(SIGPIPE, SIG_IGN);
    memset(L, 0, sizeof *L);
    srv_config sc;
    srv_config_default(&sc);
    sc.host = "127.0.0.1";
    sc.model_path = t_shared(rel);
    sc.test_hooks = true;
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.n_threads = 2;
    mf_error e;
    if (!(L->m = mf_model_open(sc.model_path, &mp, &e))) { printf("  %s\n", e.msg); return -1; }
    if (!(L->s = srv_start(L->m, &sc, &e))) { printf("  %s\n", e.msg); mf_model_close(L->m); return -1; }
    L->port = srv_port(L->s);
    return 0;
}

#define ASK(extra) "{\"messages\": [{\"role\": \"user\", \"content\": \"Weather in Paris?\"}]" extra "}"
#define HARMONY_CALL "<|channel|>analysis<|message|>User wants the weather. Use get_weather.<|end|>" \
                     "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json" \
                     "<|message|>{\\\"city\\\":\\\"Paris\\\"}<|call|>"
#define HARMONY_FINAL "<|channel|>analysis<|message|>Simple question.<|end|>" \
                      "<|start|>assistant<|channel|>final<|message|>It is sunny in Paris.<|return|>"
#define GLM_CALL "\\n<think>The user wants the weather.</think>\\nLet me check.\\n<tool_call>get_weather\\n" \
                 "<arg_key>city</arg_key>\\n<arg_value>Paris</arg_value>\\n<arg_key>days</arg_key>\\n" \
                 "<arg_value>2</arg_value>\\n</tool_call>"

/* The message of a non-streaming reply, and the same reply streamed
 * folded back into one: reasoning, content, the tool calls as
 * "name args;" and the finish reason. */
typedef struct folded { char reasoning[512], content[512], calls[512], finish[32]; } folded;

static void fold_message(json_t *o, folded *f)
{
    memset(f, 0, sizeof *f);
    const char *s;
    if ((s = jstr(o, "choices.0.message.reasoning_content"))) snprintf(f->reasoning, sizeof f->reasoning, "%s", s);
    if ((s = jstr(o, "choices.0.message.content"))) snprintf(f->content, sizeof f->content, "%s", s);
    if ((s = jstr(o, "choices.0.finish_reason"))) snprintf(f->finish, sizeof f->finish, "%s", s);
    json_t *msg = json_object_get(json_array_get(json_object_get(o, "choices"), 0), "message");
    json_t *tc = json_object_get(msg, "tool_calls");
    size_t i, k = 0;
    json_t *c;
    json_array_foreach(tc, i, c) {
        const char *n = jstr(c, "function.name"), *a = jstr(c, "function.arguments");
        bool ok = jeq(c, "type", "function") && jpre(c, "id", "call_");
        k += (size_t)snprintf(f->calls + k, sizeof f->calls - k, "%s %s%s;", n ? n : "?", a ? a : "?", ok ? "" : " (bad)");
    }
}

static void fold_stream(json_t *ev, folded *f)
{
    memset(f, 0, sizeof *f);
    sse_text(ev, "reasoning_content", f->reasoning, sizeof f->reasoning);
    sse_text(ev, "content", f->content, sizeof f->content);
    size_t i, k = 0;
    json_t *c;
    int calls = 0;
    json_array_foreach(ev, i, c) {
        const char *s = jstr(c, "choices.0.finish_reason");
        if (s) snprintf(f->finish, sizeof f->finish, "%s", s);
        const char *n = jstr(c, "choices.0.delta.tool_calls.0.function.name");
        if (!n) continue;
        const char *a = jstr(c, "choices.0.delta.tool_calls.0.function.arguments");
        bool ok = jint(c, "choices.0.delta.tool_calls.0.index") == calls++ && jeq(c, "choices.0.delta.tool_calls.0.type", "function");
        k += (size_t)snprintf(f->calls + k, sizeof f->calls - k, "%s %s%s;", n, a ? a : "?", ok ? "" : " (bad)");
    }
}

/* Posts body (with and without "stream": true) and checks both answers. */
static void check_reply(t_state *t_, int port, const char *body, const folded *want)
{
    hc_res r;
    folded got;
    CHECK(hc_post(port, "/v1/chat/completions", body, &r) == 200);
    json_t *o = res_json(&r);
    fold_message(o, &got);
    CHECKF(!strcmp(got.reasoning, want->reasoning) && !strcmp(got.content, want->content) &&
               !strcmp(got.calls, want->calls) && !strcmp(got.finish, want->finish),
           "non-streaming: reasoning [%s] content [%s] calls [%s] finish %s\n  %s", got.reasoning, got.content, got.calls,
           got.finish, BODY(r));
    if (!want->calls[0]) CHECKF(!strstr(BODY(r), "tool_calls"), "%s", BODY(r));
    json_decref(o); hc_free(&r);

    char sb[8192];
    size_t n = strlen(body);
    REQUIRE(n > 2 && n + 20 < sizeof sb);
    snprintf(sb, sizeof sb, "%.*s, \"stream\": true}", (int)(n - 1), body);
    CHECK(hc_post(port, "/v1/chat/completions", sb, &r) == 200);
    bool done;
    int bad;
    json_t *ev = sse_events(&r, &done, &bad);
    fold_stream(ev, &got);
    CHECKF(done && !bad && !strcmp(got.reasoning, want->reasoning) && !strcmp(got.content, want->content) &&
               !strcmp(got.calls, want->calls) && !strcmp(got.finish, want->finish),
           "streaming: reasoning [%s] content [%s] calls [%s] finish %s\n  %s", got.reasoning, got.content, got.calls,
           got.finish, BODY(r));
    json_decref(ev); hc_free(&r);
}

TEST(server_harmony_reasoning_content_tool_calls)
{
    live L;
    REQUIRE(!live_start_model(&L, "golden/gpt-oss-f32.gguf"));
    /* analysis then final: reasoning_content and content */
    check_reply(t_, L.port, ASK(", \"mf_test_reply\": \"" HARMONY_FINAL "\""),
                &(folded){ "Simple question.", "It is sunny in Paris.", "", "stop" });
    /* a call to a function: tool_calls, finish_reason tool_calls */
    check_reply(t_, L.port, ASK(", " TOOLS ", \"mf_test_reply\": \"" HARMONY_CALL "\""),
                &(folded){ "User wants the weather. Use get_weather.", "", "get_weather {\"city\":\"Paris\"};", "tool_calls" });
    /* a preamble on the commentary channel is content; two calls */
    check_reply(t_, L.port,
                ASK(", " TOOLS ", \"mf_test_reply\": \"<|channel|>commentary<|message|>Checking two cities.<|end|>"
                    "<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\\\"city\\\":\\\"Oslo\\\"}<|end|>"
                    "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
                    "{\\\"city\\\":\\\"Rome\\\"}<|call|>\""),
                &(folded){ "", "Checking two cities.", "get_weather {\"city\":\"Oslo\"};get_weather {\"city\":\"Rome\"};", "tool_calls" });
    /* with tool_choice none the call is not parsed: its text goes by channel */
    check_reply(t_, L.port, ASK(", " TOOLS ", \"tool_choice\": \"none\", \"mf_test_reply\": \"" HARMONY_CALL "\""),
                &(folded){ "User wants the weather. Use get_weather.", "{\"city\":\"Paris\"}", "", "stop" });
    /* max_tokens cuts the reply inside the analysis channel (24 tokens of
     * the tiny vocabulary end in "Simp") */
    check_reply(t_, L.port, ASK(", \"max_tokens\": 24, \"mf_test_reply\": \"" HARMONY_FINAL "\""),
                &(folded){ "Simp", "", "", "length" });
    live_stop(&L);
}

TEST(server_glm_reasoning_and_tool_calls)
{
    live L;
    REQUIRE(!live_start_model(&L, "golden/glm4moe-f32.gguf"));
    check_reply(t_, L.port, ASK(", " TOOLS ", \"mf_test_reply\": \"" GLM_CALL "\""),
                &(folded){ "The user wants the weather.", "Let me check.", "get_weather {\"city\":\"Paris\",\"days\":2};", "tool_calls" });
    check_reply(t_, L.port, ASK(", \"mf_test_reply\": \"\\n<think>Easy.</think>\\nSunny.\""),
                &(folded){ "Easy.", "Sunny.", "", "stop" });
    live_stop(&L);
}

#include "server/server_live.h"

#endif
