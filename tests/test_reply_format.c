/* test_reply_format.c — the reply splitter (mf_reply, src/template/reply.c)
 * alone: format detection, then replies in each syntax (Qwen tags, GLM-4.5
 * tool calls, gpt-oss harmony) fed whole, a byte at a time and cut at
 * every position, which must all give the same parts. */
#include "t.h"

#include "moeflash.h"

typedef struct parts { char b[4096]; size_t n; char last; int stop_after; int calls; } parts;

/* "[C text][R text][T name args]"; consecutive C (or R) pieces merge, as a
 * stream may cut a run of text anywhere. */
static int collect(void *user, mf_reply_part part, const char *a, size_t na, const char *b, size_t nb)
{
    parts *o = user;
    char kind = part == MF_REPLY_CONTENT ? 'C' : part == MF_REPLY_REASONING ? 'R' : 'T';
    if (!na) return 99; /* never an empty part */
    int k;
    if (kind == 'T') k = snprintf(o->b + o->n, sizeof o->b - o->n, "[T %.*s %.*s]", (int)na, a, (int)nb, b);
    else {
        if (o->last == kind) o->n--; /* reopen the previous run */
        else o->n += (size_t)snprintf(o->b + o->n, sizeof o->b - o->n, "[%c ", kind);
        k = snprintf(o->b + o->n, sizeof o->b - o->n, "%.*s]", (int)na, a);
    }
    o->n += (size_t)k;
    if (o->n >= sizeof o->b) o->n = sizeof o->b - 1;
    o->last = kind;
    if (kind == 'T' && ++o->calls == o->stop_after) return 7;
    return 0;
}

/* Feeds text in pieces of `step` bytes (0: whole; SIZE_MAX-like cut: two
 * pieces at `cut`). Returns the collected parts or "ERR". */
static const char *split(mf_reply_format f, bool tools, bool think_open, const char *text, size_t step, size_t cut, parts *o)
{
    memset(o, 0, sizeof *o);
    mf_reply_params p = { .format = f, .tools = tools, .think_open = think_open, .emit = collect, .user = o };
    mf_error e;
    mf_reply *r = mf_reply_new(&p, &e);
    if (!r) return "ERR";
    size_t n = strlen(text);
    int rc = 0;
    if (cut) {
        rc = mf_reply_feed(r, text, cut) || mf_reply_feed(r, text + cut, n - cut);
    } else {
        size_t s = step ? step : n ? n : 1;
        for (size_t i = 0; i < n && !rc; i += s) rc = mf_reply_feed(r, text + i, n - i < s ? n - i : s);
    }
    if (!rc) rc = mf_reply_finish(r);
    mf_reply_free(r);
    return rc ? "ERR" : o->b;
}

typedef struct rcase { mf_reply_format f; bool tools, think_open; const char *in, *want; } rcase;

/* Every way of cutting the reply gives the same parts. */
static void check_cases(t_state *t_, const rcase *cs, size_t nc)
{
    parts o;
    for (size_t i = 0; i < nc; i++) {
        const rcase *c = &cs[i];
        const char *got = split(c->f, c->tools, c->think_open, c->in, 0, 0, &o);
        CHECKF(!strcmp(got, c->want), "case %zu whole:\n  got  %s\n  want %s", i, got, c->want);
        got = split(c->f, c->tools, c->think_open, c->in, 1, 0, &o);
        CHECKF(!strcmp(got, c->want), "case %zu bytewise:\n  got  %s\n  want %s", i, got, c->want);
        size_t n = strlen(c->in);
        for (size_t k = 1; k < n; k++) {
            got = split(c->f, c->tools, c->think_open, c->in, 0, k, &o);
            if (strcmp(got, c->want)) {
                t_failf(t_, __FILE__, __LINE__, "case %zu cut at %zu:\n  got  %s\n  want %s", i, k, got, c->want);
                break;
            }
        }
    }
}

TEST(reply_format_detect)
{
    static const char harmony_prompt[] = "<|start|>system<|message|>You are ChatGPT.<|end|><|start|>user<|message|>Hi<|end|><|start|>assistant";
    CHECK(mf_reply_format_detect("gpt-oss", NULL, 0) == MF_REPLY_HARMONY);
    CHECK(mf_reply_format_detect("qwen3moe", harmony_prompt, strlen(harmony_prompt)) == MF_REPLY_HARMONY);
    CHECK(mf_reply_format_detect(NULL, "{{ '<|start|>assistant<|channel|>final<|message|>' }}", 50) == MF_REPLY_HARMONY);
    CHECK(mf_reply_format_detect("glm4moe", "[gMASK]<sop><|user|>\nHi<|assistant|>", 35) == MF_REPLY_TAGS);
    CHECK(mf_reply_format_detect("qwen3moe", "<|im_start|>assistant\n", 22) == MF_REPLY_TAGS);
    CHECK(mf_reply_format_detect(NULL, NULL, 0) == MF_REPLY_TAGS);
    CHECK(!strcmp(mf_reply_format_name(MF_REPLY_HARMONY), "harmony") && !strcmp(mf_reply_format_name(MF_REPLY_TAGS), "tags"));

    CHECK(mf_reply_prompt_opens_think("<|im_start|>assistant\n<think>\n", 30));
    CHECK(!mf_reply_prompt_opens_think("<|im_start|>assistant\n<think>\n\n</think>\n\n", 41));
    CHECK(!mf_reply_prompt_opens_think("<|im_start|>assistant\n", 22));
    CHECK(!mf_reply_prompt_opens_think("<thin", 5));

    mf_reply_params p;
    mf_reply_params_init(&p, "qwen3moe", "x<think>\n", 9);
    CHECK(p.format == MF_REPLY_TAGS && p.think_open && !p.tools && !p.emit);
    mf_reply_params_init(&p, "gpt-oss", "<|start|>assistant", 18);
    CHECK(p.format == MF_REPLY_HARMONY && !p.think_open);
    mf_error e;
    CHECK(!mf_reply_new(&p, &e)); /* no callback */
}

TEST(reply_harmony_channels)
{
    static const rcase cs[] = {
        /* the guide's example: analysis, then final */
        { MF_REPLY_HARMONY, false, false,
          "<|channel|>analysis<|message|>User asks: \"What is 2 + 2?\" Simple arithmetic.<|end|>"
          "<|start|>assistant<|channel|>final<|message|>2 + 2 = 4.<|return|>",
          "[R User asks: \"What is 2 + 2?\" Simple arithmetic.][C 2 + 2 = 4.]" },
        /* AUTO recognises it from the first bytes, blanks between messages go */
        { MF_REPLY_AUTO, false, false,
          "<|channel|>analysis<|message|>think<|end|>\n<|start|>assistant<|channel|>final<|message|>Hi <b>there</b>!",
          "[R think][C Hi <b>there</b>!]" },
        /* the final channel alone, its text kept exactly (blanks, newlines) */
        { MF_REPLY_HARMONY, true, false, "<|channel|>final<|message|>  two\nlines \n<|return|>", "[C   two\nlines \n]" },
        /* several analysis messages; a preamble on commentary is content */
        { MF_REPLY_HARMONY, true, false,
          "<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>analysis<|message|>b<|end|>"
          "<|start|>assistant<|channel|>commentary<|message|>Plan: look it up.<|end|>",
          "[R ab][C Plan: look it up.]" },
        /* a reply cut off inside a header shows nothing of it */
        { MF_REPLY_HARMONY, false, false, "<|channel|>analysis<|message|>x<|end|><|start|>assist", "[R x]" },
        /* text outside the format is content; so is a reply that begins in
         * a message body (a prompt ending in <|message|>) */
        { MF_REPLY_HARMONY, false, false, "Hello <|world", "[C Hello <|world]" },
        { MF_REPLY_HARMONY, false, false, "The answer.<|return|>", "[C The answer.]" },
        /* a model that skips <|end|>: <|start|> begins the next message */
        { MF_REPLY_HARMONY, false, false,
          "<|channel|>analysis<|message|>r<|start|>assistant<|channel|>final<|message|>c", "[R r][C c]" },
        /* AUTO falls back to tags when the reply is not harmony */
        { MF_REPLY_AUTO, false, false, "<think>r</think>c <|channel|>", "[R r][C c <|channel|>]" },
        { MF_REPLY_AUTO, false, false, "<|chan", "[C <|chan]" },
        /* PLAIN parses nothing */
        { MF_REPLY_PLAIN, true, false, "<|channel|>final<|message|>x", "[C <|channel|>final<|message|>x]" },
    };
    check_cases(t_, cs, sizeof cs / sizeof cs[0]);
}

TEST(reply_harmony_tool_calls)
{
    static const rcase cs[] = {
        /* the guide's tool call, recipient in the channel part */
        { MF_REPLY_HARMONY, true, false,
          "<|channel|>analysis<|message|>Need to use function get_weather.<|end|><|start|>assistant<|channel|>commentary "
          "to=functions.get_weather <|constrain|>json<|message|>{\"location\":\"San Francisco\"}<|call|>",
          "[R Need to use function get_weather.][T get_weather {\"location\":\"San Francisco\"}]" },
        /* recipient in the role part (as chat templates render past calls),
         * <|constrain|> right after the name, and a call without <|call|>
         * (the end-of-turn token ended generation before it printed) */
        { MF_REPLY_AUTO, true, false,
          "<|channel|>analysis<|message|>two calls<|end|><|start|>assistant to=functions.a<|channel|>commentary json<|message|>"
          "{\"x\": 1}<|end|><|start|>assistant<|channel|>commentary to=functions.b<|constrain|>json<|message|> {} ",
          "[R two calls][T a {\"x\": 1}][T b {}]" },
        /* a preamble, then a call to a built-in tool, then an empty body */
        { MF_REPLY_HARMONY, true, false,
          "<|channel|>commentary<|message|>Searching.<|end|><|start|>assistant<|channel|>analysis to=browser.search "
          "code<|message|>{\"query\":\"moe\"}<|call|>",
          "[C Searching.][T browser.search {\"query\":\"moe\"}]" },
        { MF_REPLY_HARMONY, true, false, "<|channel|>commentary to=functions.now<|message|><|call|>", "[T now {}]" },
        /* without tools, a message to a recipient goes by its channel */
        { MF_REPLY_HARMONY, false, false,
          "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{\"a\":1}<|call|>", "[C {\"a\":1}]" },
        /* "to=assistant" (a tool's answer echoed) is no call */
        { MF_REPLY_HARMONY, true, false, "<|start|>functions.f to=assistant<|channel|>commentary<|message|>42<|end|>", "[C 42]" },
    };
    check_cases(t_, cs, sizeof cs / sizeof cs[0]);
}

TEST(reply_glm_tool_calls_and_think)
{
    static const rcase cs[] = {
        /* GLM-4.5: "\n<think>" opens the reply, key/value tool calls */
        { MF_REPLY_AUTO, true, false,
          "\n<think>The user wants the weather.</think>\nLet me check.\n<tool_call>get_weather\n<arg_key>city</arg_key>\n"
          "<arg_value>Paris</arg_value>\n<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n</tool_call>",
          "[R The user wants the weather.][C Let me check.][T get_weather {\"city\":\"Paris\",\"days\":3}]" },
        /* values: JSON for non-strings, raw text for strings (quotes kept) */
        { MF_REPLY_TAGS, true, false,
          "<tool_call>f\n<arg_key>o</arg_key>\n<arg_value>{\"a\": [1, true]}</arg_value>\n<arg_key>s</arg_key>\n"
          "<arg_value>\"quoted\" and ü</arg_value>\n<arg_key>n</arg_key>\n<arg_value>null</arg_value>\n</tool_call>",
          "[T f {\"o\":{\"a\":[1,true]},\"s\":\"\\\"quoted\\\" and ü\",\"n\":null}]" },
        /* two calls, one without arguments, the second unclosed at the end */
        { MF_REPLY_TAGS, true, false,
          "<think></think>\n<tool_call>now\n</tool_call>\n<tool_call>g\n<arg_key>k</arg_key>\n<arg_value>v</arg_value>",
          "[T now {}][T g {\"k\":\"v\"}]" },
        /* not a call: given back as content */
        { MF_REPLY_TAGS, true, false, "<tool_call>two words\n</tool_call>", "[C <tool_call>two words\n</tool_call>]" },
        { MF_REPLY_TAGS, true, false, "<tool_call>f\n<arg_key>k</arg_key>\n<arg_value>v", "[C <tool_call>f\n<arg_key>k</arg_key>\n<arg_value>v]" },
        { MF_REPLY_TAGS, true, false, "<tool_call>f <arg_value>v</arg_value></tool_call>",
          "[C <tool_call>f <arg_value>v</arg_value></tool_call>]" },
        /* Qwen's JSON bodies are unchanged */
        { MF_REPLY_AUTO, true, false, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>", "[T f {\"a\":1}]" },
        /* the prompt opened <think> */
        { MF_REPLY_TAGS, true, true, "\nplan\n</think>\n\nAnswer.", "[R plan][C Answer.]" },
        { MF_REPLY_AUTO, false, true, "plan</think>x", "[R plan][C x]" },
    };
    check_cases(t_, cs, sizeof cs / sizeof cs[0]);
}

TEST(reply_callback_stops_and_garbage)
{
    /* a nonzero callback value ends the feed and is returned */
    parts o;
    memset(&o, 0, sizeof o);
    o.stop_after = 1;
    mf_reply_params p = { .format = MF_REPLY_HARMONY, .tools = true, .emit = collect, .user = &o };
    mf_error e;
    mf_reply *r = mf_reply_new(&p, &e);
    REQUIRE(r);
    static const char two[] = "<|channel|>commentary to=functions.a<|message|>{}<|call|><|start|>assistant<|channel|>"
                              "commentary to=functions.b<|message|>{}<|call|>";
    CHECK(mf_reply_feed(r, two, sizeof two - 1) == 7 && o.calls == 1);
    mf_reply_free(r);

    /* random bytes from the markers' alphabet: no crash, no empty part,
     * and the same parts however the text is cut */
    static const char *const atoms[] = { "<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|call|>", "<|return|>",
                                         "<|constrain|>", "analysis", "final", "commentary", " to=functions.f", "json",
                                         "<think>", "</think>", "<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>",
                                         "<arg_value>", "</arg_value>", "{\"a\":1}", "{", "x", " ", "\n", "<|", "<", "|>" };
    uint64_t s = 42;
    int rounds = t_asan() ? 150 : 1500;
    for (int it = 0; it < rounds; it++) {
        char text[512];
        size_t n = 0;
        int k = (int)(s % 24) + 1;
        for (int j = 0; j < k; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            const char *a = atoms[(s >> 33) % (sizeof atoms / sizeof atoms[0])];
            size_t l = strlen(a);
            if (n + l >= sizeof text) break;
            memcpy(text + n, a, l);
            n += l;
        }
        text[n] = 0;
        mf_reply_format f = (mf_reply_format)(it % 4);
        bool tools = it & 4, open = it & 8;
        char whole[4096];
        snprintf(whole, sizeof whole, "%s", split(f, tools, open, text, 0, 0, &o));
        CHECKF(strcmp(whole, "ERR"), "%s", text);
        const char *bytes = split(f, tools, open, text, 1, 0, &o);
        if (strcmp(whole, bytes)) {
            t_failf(t_, __FILE__, __LINE__, "format %d tools %d open %d [%s]:\n  whole %s\n  bytes %s", f, tools, open, text,
                    whole, bytes);
            break;
        }
    }
}
