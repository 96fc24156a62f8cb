/* test_generate.c — the generation loop (src/engine/generate.c): streamed
 * text equals llama.cpp's greedy text, stop strings are never printed even
 * when split across tokens, max tokens and end-of-generation end a reply,
 * and a session reused across calls evaluates only what is new (also on a
 * recurrent architecture, which can only start over) without changing the
 * output. */
#include "t.h"
#include "moeflash.h"

#define STORIES "models/stories260K-moe/stories260K-moe-perturbed.gguf"
#define QWEN3 "golden/qwen3moe-f32.gguf"
#define QWEN35 "golden/qwen35moe-f32.gguf"

typedef struct sink {
    char buf[16384];
    size_t n;
    int calls;
    int cancel_after;           /* > 0: the cancel callback fires after this many text calls */
} sink;

static int sink_text(void *user, const char *s, size_t n)
{
    sink *k = user;
    if (k->n + n < sizeof k->buf) memcpy(k->buf + k->n, s, n), k->n += n;
    k->buf[k->n] = 0;
    k->calls++;
    return 0;
}

static int sink_cancel(void *user)
{
    sink *k = user;
    return k->cancel_after > 0 && k->calls >= k->cancel_after;
}

static mf_model *open_model(const char *rel)
{
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.n_threads = 2;
    mf_error e;
    mf_model *m = mf_model_open(t_shared(rel), &mp, &e);
    if (!m) fprintf(stdout, "  %s\n", e.msg);
    return m;
}

static mf_gen *greedy_gen(mf_model *m, uint32_t n_ctx)
{
    mf_sampler_params sp;
    mf_sampler_params_default(&sp);
    sp.temperature = 0;
    mf_error e;
    mf_gen *g = mf_gen_new(m, n_ctx, &sp, &e);
    if (!g) fprintf(stdout, "  %s\n", e.msg);
    return g;
}

static int tokenize(mf_model *m, const char *text, bool special, int32_t **ids, size_t *n)
{
    mf_error e;
    const mf_vocab *v = mf_model_vocab(m, &e);
    return v ? mf_tokenize(v, text, strlen(text), special, mf_vocab_add_bos(v), ids, n, &e) : -1;
}

/* Runs prompt with p (its on_text/user replaced by k). */
static int run(mf_gen *g, const int32_t *ids, size_t n, mf_gen_params *p, sink *k, mf_gen_result *r)
{
    memset(k->buf, 0, sizeof k->buf);
    k->n = 0;
    k->calls = 0;
    p->on_text = sink_text;
    p->cancel = sink_cancel;
    p->user = k;
    mf_error e;
    int rc = mf_gen_run(g, ids, n, p, r, &e);
    if (rc) fprintf(stdout, "  %s\n", e.msg);
    return rc;
}

/* The golden text of the perturbed model without its final newline. */
static char *golden_text(void)
{
    size_t len;
    char *want = t_read_file(t_shared("models/stories260K-moe/stories260K-moe-perturbed.a.text.txt"), &len);
    if (want && len && want[len - 1] == '\n') want[len - 1] = 0;
    return want;
}

TEST(generate_echo_matches_golden_text_and_max_tokens)
{
    mf_model *m = open_model(STORIES);
    REQUIRE(m);
    mf_gen *g = greedy_gen(m, 0);
    char *want = golden_text();
    int32_t *ids;
    size_t n;
    REQUIRE(g && want && tokenize(m, "Once upon a time", true, &ids, &n) == 0);
    CHECK(n == 5 && ids[0] == 1 && ids[1] == 403 && ids[4] == 378);
    static sink k;
    mf_gen_params p;
    mf_gen_params_default(&p);
    p.max_tokens = 64;
    p.echo_prompt = true;
    mf_gen_result r;
    REQUIRE(run(g, ids, n, &p, &k, &r) == 0);
    CHECKF(!strcmp(k.buf, want), "got [%s]\nwant [%s]", k.buf, want);
    CHECK(r.finish == MF_FINISH_LENGTH && r.n_generated == 64 && r.n_prompt_eval == 5 && r.n_reused == 0);
    /* the last sampled token is not evaluated */
    CHECK(mf_session_n_past(mf_gen_session(g)) == 5 + 63);
    size_t nt;
    const int32_t *held = mf_gen_tokens(g, &nt);
    CHECK(nt == 68 && !memcmp(held, ids, 5 * sizeof *ids));

    /* without echo: only the generated text, its leading space kept */
    REQUIRE(mf_gen_reset(g, NULL) == 0);
    p.echo_prompt = false;
    p.max_tokens = 3;
    REQUIRE(run(g, ids, n, &p, &k, &r) == 0);
    CHECKF(!strcmp(k.buf, ", there was"), "[%s]", k.buf);
    CHECK(r.finish == MF_FINISH_LENGTH && r.n_generated == 3);
    p.max_tokens = 0;
    REQUIRE(run(g, ids, n, &p, &k, &r) == 0);
    CHECK(r.n_generated == 0 && k.n == 0 && r.finish == MF_FINISH_LENGTH);
    free(ids);
    free(want);
    mf_gen_free(g);
    mf_model_close(m);
}

/* Generates up to a stop string and checks the text is exactly what comes
 * before its first occurrence in the free-running text. */
static void check_stop(t_state *t_, mf_gen *g, const int32_t *ids, size_t n, const char *full, const char *const *stop,
                       size_t n_stop)
{
    static sink k;
    mf_gen_params p;
    mf_gen_params_default(&p);
    p.max_tokens = 64;
    p.stop = stop;
    p.n_stop = n_stop;
    mf_gen_result r;
    REQUIRE(run(g, ids, n, &p, &k, &r) == 0);
    const char *first = NULL;
    for (size_t i = 0; i < n_stop; i++) {
        const char *at = strstr(full, stop[i]);
        if (at && (!first || at < first)) first = at;
    }
    REQUIRE(first);
    CHECKF(r.finish == MF_FINISH_STOP, "finish %s for stop [%s]", mf_finish_name(r.finish), stop[0]);
    CHECKF(k.n == (size_t)(first - full) && !memcmp(k.buf, full, k.n), "stop [%s]: got [%s]", stop[0], k.buf);
}

TEST(generate_stop_strings_across_tokens)
{
    mf_model *m = open_model(STORIES);
    REQUIRE(m);
    mf_gen *g = greedy_gen(m, 0);
    int32_t *ids;
    size_t n;
    REQUIRE(g && tokenize(m, "Once upon a time", true, &ids, &n) == 0);
    /* the free-running reply (no echo) */
    static sink k;
    mf_gen_params p;
    mf_gen_params_default(&p);
    p.max_tokens = 64;
    mf_gen_result r;
    REQUIRE(run(g, ids, n, &p, &k, &r) == 0);
    char full[16384];
    memcpy(full, k.buf, k.n + 1);
    char *want = golden_text();
    REQUIRE(want && !strcmp(full, want + strlen("Once upon a time")));

    /* spans "Lily" "." " She": three tokens */
    check_stop(t_, g, ids, n, full, (const char *const[]){ "ly. Sh" }, 1);
    /* "Lily" first appears followed by ". ": the held "Lily" must come out
     * when the match fails, and the stop matches later ("Lily's mom") */
    check_stop(t_, g, ids, n, full, (const char *const[]){ "Lily's mom" }, 1);
    /* the earliest of several wins, whatever their order */
    check_stop(t_, g, ids, n, full, (const char *const[]){ "excited", "friends.", "toys" }, 3);
    /* a stop string at the very start of the reply */
    check_stop(t_, g, ids, n, full, (const char *const[]){ ", there" }, 1);

    /* a stop string that never appears: all text, nothing held back */
    p.stop = (const char *const[]){ "zebra!" };
    p.n_stop = 1;
    REQUIRE(run(g, ids, n, &p, &k, &r) == 0);
    CHECK(r.finish == MF_FINISH_LENGTH && !strcmp(k.buf, full));
    /* a prefix of a stop string at the very end is printed when generation ends */
    p.max_tokens = 3; /* ", there was" */
    p.stop = (const char *const[]){ "was a dog" };
    REQUIRE(run(g, ids, n, &p, &k, &r) == 0);
    CHECKF(r.finish == MF_FINISH_LENGTH && !strcmp(k.buf, ", there was"), "[%s]", k.buf);

    /* an empty stop string is an error, not a stop at once */
    mf_error e;
    p.stop = (const char *const[]){ "" };
    CHECK(mf_gen_run(g, ids, n, &p, &r, &e) == -1 && strstr(e.msg, "empty"));
    free(want);
    free(ids);
    mf_gen_free(g);
    mf_model_close(m);
}

TEST(generate_eog_ends_and_is_not_printed)
{
    mf_model *m = open_model(QWEN3);
    REQUIRE(m);
    mf_error e;
    mf_gen *g = greedy_gen(m, 0);
    mf_chat_template *t = mf_chat_template_from_model(t_shared(QWEN3), NULL, &e);
    REQUIRE(g && t);
    const mf_vocab *v = mf_model_vocab(m, &e);
    int32_t *ids;
    size_t n;
    char *text;
    mf_chat_msg msg = { "user", "a" };
    REQUIRE(mf_chat_tokenize(t, v, &msg, 1, -1, &ids, &n, &text, &e) == 0);
    CHECK(!strcmp(text, "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n"));
    CHECK(n > 3 && ids[0] == 510); /* <|im_start|> parsed; no BOS (add_bos_token false) */
    static sink k;
    mf_gen_params p;
    mf_gen_params_default(&p);
    p.max_tokens = 500;
    p.special = true; /* even so, the EOG token is not printed */
    mf_gen_result r;
    REQUIRE(run(g, ids, n, &p, &k, &r) == 0);
    CHECKF(r.finish == MF_FINISH_EOG, "finish %s after %zu tokens", mf_finish_name(r.finish), r.n_generated);
    CHECK(r.n_generated > 1 && r.n_generated < 500);
    CHECK(!strstr(k.buf, "<|im_end|>"));
    /* the EOG token was sampled but not evaluated */
    CHECK(mf_session_n_past(mf_gen_session(g)) == n + r.n_generated - 1);
    free(ids);
    free(text);
    mf_chat_template_free(t);
    mf_gen_free(g);
    mf_model_close(m);
}

TEST(generate_cancel_and_errors)
{
    mf_model *m = open_model(STORIES);
    REQUIRE(m);
    mf_gen *g = greedy_gen(m, 16);
    int32_t *ids;
    size_t n;
    REQUIRE(g && tokenize(m, "Once upon a time", true, &ids, &n) == 0);
    static sink k;
    mf_gen_params p;
    mf_gen_params_default(&p);
    k.cancel_after = 2;
    mf_gen_result r;
    REQUIRE(run(g, ids, n, &p, &k, &r) == 0);
    CHECK(r.finish == MF_FINISH_CANCEL && k.calls == 2);
    k.cancel_after = 0;
    /* the context (16) fills up: 5 prompt + 11 evaluated, the 12th sampled */
    REQUIRE(run(g, ids, n, &p, &k, &r) == 0);
    CHECKF(r.finish == MF_FINISH_CTX && r.n_generated == 12, "%s %zu", mf_finish_name(r.finish), r.n_generated);
    mf_error e;
    CHECK(mf_gen_run(g, ids, 0, &p, &r, &e) == -1 && strstr(e.msg, "empty"));
    int32_t big[17] = { 1 };
    CHECK(mf_gen_run(g, big, 17, &p, &r, &e) == -1 && strstr(e.msg, "17 tokens") && strstr(e.msg, "16"));
    free(ids);
    mf_gen_free(g);
    mf_model_close(m);
}

/* Turn 1, then turn 2 whose prompt extends turn 1's tokens (prompt +
 * reply + more): reused counts and the text equal a fresh generator's. */
static void check_reuse(t_state *t_, const char *rel, bool recurrent)
{
    mf_model *m = open_model(rel);
    REQUIRE(m);
    mf_gen *g = greedy_gen(m, 256), *fresh = greedy_gen(m, 256);
    REQUIRE(g && fresh);
    int32_t a[] = { 510, 10, 20, 30, 40, 50, 60 };
    static sink k1, k2;
    mf_gen_params p;
    mf_gen_params_default(&p);
    p.max_tokens = 6;
    mf_gen_result r;
    REQUIRE(run(g, a, 7, &p, &k1, &r) == 0);
    CHECK(r.n_reused == 0 && r.n_prompt_eval == 7);
    size_t nt;
    const int32_t *held = mf_gen_tokens(g, &nt);
    REQUIRE(nt == 7 + 5);
    /* turn 2 = everything held + the unevaluated last token + 3 more */
    int32_t b[32];
    memcpy(b, held, nt * sizeof *b);
    size_t nb = nt;
    b[nb++] = 77; /* stands for the last sampled token */
    b[nb++] = 100, b[nb++] = 101, b[nb++] = 102;
    REQUIRE(run(g, b, nb, &p, &k1, &r) == 0);
    CHECKF(r.n_reused == 12 && r.n_prompt_eval == 4, "reused %zu evaluated %zu", r.n_reused, r.n_prompt_eval);
    REQUIRE(run(fresh, b, nb, &p, &k2, &r) == 0);
    CHECK(r.n_prompt_eval == nb && k1.n == k2.n && !memcmp(k1.buf, k2.buf, k1.n));

    /* a prompt that diverges inside what is held: cut back (or start over) */
    int32_t c[] = { 510, 10, 20, 30, 99, 98 };
    REQUIRE(run(g, c, 6, &p, &k1, &r) == 0);
    if (recurrent) CHECKF(r.n_reused == 0 && r.n_prompt_eval == 6, "reused %zu", r.n_reused);
    else CHECKF(r.n_reused == 4 && r.n_prompt_eval == 2, "reused %zu", r.n_reused);
    REQUIRE(mf_gen_reset(fresh, NULL) == 0);
    REQUIRE(run(fresh, c, 6, &p, &k2, &r) == 0);
    CHECK(k1.n == k2.n && !memcmp(k1.buf, k2.buf, k1.n));
    /* the same prompt again: only its last token is evaluated (for its
     * logits), or all of it when the state cannot be cut */
    REQUIRE(run(g, c, 6, &p, &k1, &r) == 0);
    CHECKF(r.n_reused == (recurrent ? 0u : 5u), "reused %zu", r.n_reused);
    CHECK(k1.n == k2.n && !memcmp(k1.buf, k2.buf, k1.n));
    mf_gen_free(g);
    mf_gen_free(fresh);
    mf_model_close(m);
}

TEST(generate_reuses_the_session)
{
    check_reuse(t_, QWEN3, false);
}

TEST(generate_reuses_the_session_recurrent)
{
    check_reuse(t_, QWEN35, true);
}

TEST(generate_chat_tokenize)
{
    mf_error e;
    mf_vocab *v = mf_vocab_open(t_shared(STORIES), &e);
    mf_chat_template *t = mf_chat_template_from_model(t_shared(STORIES), NULL, &e);
    REQUIRE(v && t);
    CHECK(mf_chat_template_is_fallback(t));
    mf_chat_msg msgs[] = { { "system", "Be \"kind\"\n\ttabs \\ é" }, { "user", "bad \xff\xfe bytes" } };
    int32_t *ids;
    size_t n;
    char *text;
    REQUIRE(mf_chat_tokenize(t, v, msgs, 2, -1, &ids, &n, &text, &e) == 0);
    CHECKF(!strcmp(text, "<|im_start|>system\nBe \"kind\"\n\ttabs \\ é<|im_end|>\n"
                         "<|im_start|>user\nbad \xef\xbf\xbd\xef\xbf\xbd bytes<|im_end|>\n<|im_start|>assistant\n"),
           "[%s]", text);
    CHECK(n > 1 && ids[0] == mf_vocab_bos(v)); /* add_bos_token true */
    free(ids);
    free(text);
    mf_chat_template_free(t);
    mf_vocab_free(v);
}
