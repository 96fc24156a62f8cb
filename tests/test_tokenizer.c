/* test_tokenizer.c — the tokenizer against llama.cpp's ids for the golden
 * corpora (Qwen3 and DeepSeek-V3 vocabularies, special parsing on and off),
 * SentencePiece on stories260K, decoding and the streaming decoder, long
 * inputs (not timed: they only have to finish, which a quadratic merge loop
 * would not), and malformed vocabularies. */
#include "t.h"
#include "moeflash.h"
#include "gguf.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>

#ifdef MF_HAVE_JANSSON
#include <jansson.h>
#endif

static mf_vocab *open_vocab(t_state *t_, const char *rel)
{
    mf_error e = { { 0 } };
    mf_vocab *v = mf_vocab_open(t_shared(rel), &e);
    if (!v) t_failf(t_, __FILE__, __LINE__, "mf_vocab_open(%s): %s", rel, e.msg);
    return v;
}

static bool ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void print_ids(char *buf, size_t cap, const int32_t *ids, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && k + 16 < cap; i++) k += (size_t)snprintf(buf + k, cap - k, "%s%d", i ? " " : "", ids[i]);
}

#ifdef MF_HAVE_JANSSON

/* Every line of a corpus encodes to its ids and decodes back to its text
 * (or to its "decoded" field: the NFC form, for Qwen). */
static void run_corpus(t_state *t_, const char *vocab_rel, const char *corpus_rel, bool parse_special)
{
    mf_vocab *v = open_vocab(t_, vocab_rel);
    REQUIRE(v);
    size_t len;
    char *data = t_read_file(t_shared(corpus_rel), &len);
    REQUIREF(data, "cannot read %s", corpus_rel);
    int lines = 0, enc_ok = 0, dec_ok = 0;
    for (char *line = data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        json_error_t je;
        json_t *o = json_loads(line, JSON_ALLOW_NUL, &je);
        REQUIREF(o, "%s:%d: bad JSON: %s", corpus_rel, lines + 1, je.text);
        lines++;
        json_t *jt = json_object_get(o, "text"), *jids = json_object_get(o, "ids"), *jdec = json_object_get(o, "decoded");
        const char *text = json_string_value(jt);
        size_t tn = json_string_length(jt);
        size_t ne = json_array_size(jids);
        int32_t *want = malloc((ne ? ne : 1) * sizeof *want);
        for (size_t i = 0; i < ne; i++) want[i] = (int32_t)json_integer_value(json_array_get(jids, i));

        int32_t *got = NULL;
        size_t ng = 0;
        mf_error e = { { 0 } };
        int rc = mf_tokenize(v, text, tn, parse_special, false, &got, &ng, &e);
        if (rc == 0 && ids_equal(got, ng, want, ne)) {
            enc_ok++;
        } else {
            char a[512], b[512];
            print_ids(a, sizeof a, got, rc ? 0 : ng);
            print_ids(b, sizeof b, want, ne);
            t_failf(t_, __FILE__, __LINE__, "%s:%d %s: got [%s], want [%s]%s%s", corpus_rel, lines, line, a, b,
                    rc ? " error: " : "", rc ? e.msg : "");
        }
        free(got);

        const char *exp = jdec ? json_string_value(jdec) : text;
        size_t en = jdec ? json_string_length(jdec) : tn;
        char *dec = NULL;
        size_t dn = 0;
        rc = mf_detokenize(v, want, ne, true, &dec, &dn, &e);
        if (rc == 0 && dn == en && memcmp(dec, exp, en) == 0) dec_ok++;
        else t_failf(t_, __FILE__, __LINE__, "%s:%d: decode differs: %s", corpus_rel, lines, rc ? e.msg : dec);
        free(dec);
        free(want);
        json_decref(o);
    }
    printf("  %s: %d/%d encode, %d/%d decode\n", corpus_rel, enc_ok, lines, dec_ok, lines);
    CHECK(lines > 300);
    free(data);
    mf_vocab_free(v);
}

TEST(tok_corpus_qwen3)
{
    run_corpus(t_, "golden/tokenizer/qwen3-vocab.gguf", "golden/tokenizer/corpus.jsonl", true);
}
TEST(tok_corpus_qwen3_noparse)
{
    run_corpus(t_, "golden/tokenizer/qwen3-vocab.gguf", "golden/tokenizer/corpus-noparse.jsonl", false);
}
TEST(tok_corpus_deepseek_v3)
{
    run_corpus(t_, "golden/tokenizer/deepseek-v3-vocab.gguf", "golden/tokenizer/corpus-deepseek-v3.jsonl", true);
}
TEST(tok_corpus_deepseek_v3_noparse)
{
    run_corpus(t_, "golden/tokenizer/deepseek-v3-vocab.gguf", "golden/tokenizer/corpus-deepseek-v3-noparse.jsonl", false);
}

#endif /* MF_HAVE_JANSSON */

#ifdef MF_HAVE_JANSSON
/* The rendered chat prompts of golden/tokenizer/chat.jsonl tokenize to the
 * ids llama.cpp gives them (special tokens parsed, no BOS). */
TEST(tok_chat_expected_ids)
{
    mf_vocab *qwen = open_vocab(t_, "golden/tokenizer/qwen3-vocab.gguf");
    mf_vocab *ds = open_vocab(t_, "golden/tokenizer/deepseek-v3-vocab.gguf");
    REQUIRE(qwen && ds);
    size_t len;
    char *data = t_read_file(t_shared("golden/tokenizer/chat.jsonl"), &len);
    REQUIRE(data);
    int n = 0, ok = 0;
    for (char *line = data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        json_t *o = json_loads(line, JSON_ALLOW_NUL, NULL);
        REQUIRE(o);
        n++;
        const char *gguf = json_string_value(json_object_get(o, "gguf"));
        json_t *jexp = json_object_get(o, "expected"), *jids = json_object_get(o, "expected_ids");
        mf_vocab *v = gguf && strstr(gguf, "deepseek") ? ds : qwen;
        int32_t *got;
        size_t ng;
        mf_error e;
        REQUIRE(mf_tokenize(v, json_string_value(jexp), json_string_length(jexp), true, false, &got, &ng, &e) == 0);
        bool same = ng == json_array_size(jids);
        for (size_t i = 0; same && i < ng; i++) same = got[i] == json_integer_value(json_array_get(jids, i));
        if (same) ok++;
        else t_failf(t_, __FILE__, __LINE__, "chat.jsonl:%d (%s): ids differ", n,
                     json_string_value(json_object_get(o, "name")));
        free(got);
        json_decref(o);
    }
    printf("  chat.jsonl expected_ids: %d/%d\n", ok, n);
    CHECK(n == 40);
    free(data);
    mf_vocab_free(qwen);
    mf_vocab_free(ds);
}
#endif

/* Tokenize, then decode: the same bytes, whatever the bytes (after NFC for
 * vocabularies that normalize). */
static void roundtrip(t_state *t_, const mf_vocab *v, const char *s, size_t n, bool parse_special)
{
    const tok_vocab *tv = v;
    char *norm = NULL;
    if (tv->nfc) {
        mf_error ne;
        REQUIRE(tok_nfc(s, n, &norm, &n, &ne) == 0);
        s = norm;
    }
    int32_t *ids;
    size_t ni;
    mf_error e = { { 0 } };
    int rc = mf_tokenize(v, s, n, parse_special, false, &ids, &ni, &e);
    CHECKF(rc == 0, "tokenize failed: %s", e.msg);
    if (rc) { free(norm); return; }
    char *d;
    size_t dn;
    rc = mf_detokenize(v, ids, ni, true, &d, &dn, &e);
    CHECKF(rc == 0 && dn == n && memcmp(d, s, n) == 0, "round trip of %zu bytes differs (got %zu bytes)", n,
           rc ? 0 : dn);
    if (rc == 0) free(d);
    free(ids);
    free(norm);
}

TEST(tok_qwen3_basics)
{
    mf_vocab *v = open_vocab(t_, "golden/tokenizer/qwen3-vocab.gguf");
    REQUIRE(v);
    CHECK(mf_vocab_size(v) == 151936);
    CHECK(mf_vocab_bos(v) == 151643);
    CHECK(mf_vocab_eos(v) == 151645);
    CHECK(mf_vocab_eot(v) == 151645);
    CHECK(!mf_vocab_add_bos(v));
    CHECK(mf_token_is_eog(v, 151645) && mf_token_is_eog(v, 151643));
    CHECK(!mf_token_is_eog(v, 9707) && !mf_token_is_eog(v, -1) && !mf_token_is_eog(v, 1 << 30));
    CHECK(mf_token_is_control(v, 151644) && !mf_token_is_control(v, 151667) && !mf_token_is_control(v, 9707));
    CHECK(mf_token_find(v, "Hello", 5) == 9707);
    CHECK(mf_token_find(v, "<think>", 7) == 151667);
    CHECK(mf_token_find(v, "no such token!!", 15) == -1);
    size_t n;
    const char *t = mf_token_text(v, 220, &n);
    CHECK(t && n == 2 && memcmp(t, "\xc4\xa0", 2) == 0);          /* "Ġ" */
    t = mf_token_piece(v, 220, false, &n);
    CHECK(t && n == 1 && t[0] == ' ');
    t = mf_token_piece(v, 151644, false, &n);
    CHECK(t && n == 0);
    t = mf_token_piece(v, 151644, true, &n);
    CHECK(t && n == 12 && memcmp(t, "<|im_start|>", 12) == 0);
    CHECK(mf_token_piece(v, 151936, true, &n) == NULL && mf_token_text(v, -1, &n) == NULL);

    int32_t *ids;
    size_t ni;
    mf_error e;
    /* <think> is USER_DEFINED: one token even with special parsing off */
    REQUIRE(mf_tokenize(v, "<think>x", 8, false, false, &ids, &ni, &e) == 0);
    CHECK(ni == 2 && ids[0] == 151667);
    free(ids);
    REQUIRE(mf_tokenize(v, "<|im_start|>", 12, false, false, &ids, &ni, &e) == 0);
    CHECK(ni > 1);
    free(ids);
    REQUIRE(mf_tokenize(v, "<|im_start|>", 12, true, true, &ids, &ni, &e) == 0);
    CHECK(ni == 2 && ids[0] == 151643 && ids[1] == 151644);
    free(ids);
    REQUIRE(mf_tokenize(v, NULL, 0, true, false, &ids, &ni, &e) == 0);
    CHECK(ni == 0 && ids != NULL);
    free(ids);

    /* control tokens are hidden without `special`, user-defined ones not */
    int32_t seq[] = { 151644, 9707, 151667, 151645 };
    char *d;
    size_t dn;
    REQUIRE(mf_detokenize(v, seq, 4, false, &d, &dn, &e) == 0);
    CHECK(dn == 12 && memcmp(d, "Hello<think>", 12) == 0);
    free(d);
    int32_t bad[] = { 9707, 151936 };
    CHECK(mf_detokenize(v, bad, 2, true, &d, &dn, &e) == -1);
    CHECKF(strstr(e.msg, "151936") && strstr(e.msg, "position 1"), "%s", e.msg);

    /* bytes that are not UTF-8 still round-trip (byte-level BPE) */
    const char junk[] = "\xff\xfe abc \xc3 d\xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80 caf\xc3\xa9\xc3";
    roundtrip(t_, v, junk, sizeof junk - 1, true);
    mf_vocab_free(v);
}

TEST(tok_deepseek_basics)
{
    mf_vocab *v = open_vocab(t_, "golden/tokenizer/deepseek-v3-vocab.gguf");
    REQUIRE(v);
    CHECK(mf_vocab_size(v) == 129280);
    CHECK(mf_vocab_bos(v) == 0 && mf_vocab_eos(v) == 1 && mf_vocab_add_bos(v));
    CHECK(mf_token_is_eog(v, 1) && !mf_token_is_eog(v, 0));
    int32_t *ids;
    size_t ni;
    mf_error e;
    REQUIRE(mf_tokenize(v, "Hi", 2, true, mf_vocab_add_bos(v), &ids, &ni, &e) == 0);
    CHECK(ni >= 2 && ids[0] == 0);
    free(ids);
    const char junk[] = "\x80\x80~~~ \xff\xe4\xb8 \xe4\xb8\xad\xe6\x96\x87 123456 \xc3";
    roundtrip(t_, v, junk, sizeof junk - 1, true);
    mf_vocab_free(v);
}

/* SentencePiece: llama2.c's stories260K (tokenizer.ggml.model "llama"). */
TEST(tok_spm_stories)
{
    mf_vocab *v = open_vocab(t_, "models/stories260K-moe/stories260K-dense.gguf");
    REQUIRE(v);
    CHECK(mf_vocab_size(v) == 512 && mf_vocab_bos(v) == 1 && mf_vocab_eos(v) == 2 && mf_vocab_add_bos(v));
    int32_t *ids;
    size_t ni;
    mf_error e;
    REQUIRE(mf_tokenize(v, "Once upon a time", 16, true, true, &ids, &ni, &e) == 0);
    int32_t want[] = { 1, 403, 407, 261, 378 };
    CHECK(ids_equal(ids, ni, want, 5));
    free(ids);

    /* the prompt and the 64 greedy tokens decode to the golden text (which
     * adds a final newline) */
    size_t gl, tl;
    char *greedy = t_read_file(t_shared("models/stories260K-moe/stories260K-dense.a.greedy.txt"), &gl);
    char *text = t_read_file(t_shared("models/stories260K-moe/stories260K-dense.a.text.txt"), &tl);
    REQUIRE(greedy && text);
    int32_t seq[80] = { 1, 403, 407, 261, 378 };
    size_t ns = 5;
    for (char *p = greedy; *p && ns < 80;) {
        seq[ns++] = (int32_t)strtol(p, &p, 10);
        while (*p && *p != '\n') p++;
        while (*p == '\n') p++;
    }
    CHECK(ns == 69);
    char *d;
    size_t dn;
    REQUIRE(mf_detokenize(v, seq, ns, false, &d, &dn, &e) == 0);
    CHECKF(dn + 1 == tl && memcmp(d, text, dn) == 0, "got '%s'", d);
    free(d);

    /* streaming gives the same text */
    mf_detok *dt = mf_detok_new(v, false, &e);
    REQUIRE(dt);
    char buf[1024];
    size_t bn = 0;
    for (size_t i = 0; i < ns; i++) {
        const char *o;
        size_t on;
        REQUIRE(mf_detok_push(dt, seq[i], &o, &on, &e) == 0);
        memcpy(buf + bn, o, on);
        bn += on;
    }
    CHECK(bn + 1 == tl && memcmp(buf, text, bn) == 0);
    mf_detok_free(dt);
    free(greedy);
    free(text);

    /* byte fallback: characters missing from the 512 tokens */
    const char *s = "Lily saw \xe2\x98\x83 and \xe4\xb8\xad!";
    REQUIRE(mf_tokenize(v, s, strlen(s), true, false, &ids, &ni, &e) == 0);
    bool has_byte = false;
    for (size_t i = 0; i < ni; i++) has_byte |= ids[i] >= 3 && ids[i] <= 258;
    CHECK(has_byte);
    REQUIRE(mf_detokenize(v, ids, ni, false, &d, &dn, &e) == 0);
    CHECKF(dn == strlen(s) && memcmp(d, s, dn) == 0, "got '%s'", d);
    free(d);
    free(ids);
    /* a special token in the text, and the space prefix after it */
    REQUIRE(mf_tokenize(v, "a</s>b", 6, true, false, &ids, &ni, &e) == 0);
    bool has_eos = false;
    for (size_t i = 0; i < ni; i++) has_eos |= ids[i] == 2;
    CHECK(has_eos);
    free(ids);
    mf_vocab_free(v);
}

/* Split every multi-byte character across pushes: nothing printed is ever
 * part of a character, and the total equals mf_detokenize. */
TEST(tok_stream_utf8)
{
    mf_vocab *v = open_vocab(t_, "golden/tokenizer/qwen3-vocab.gguf");
    REQUIRE(v);
    mf_error e;
    const tok_vocab *tv = v;
    const char *text = "a\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80z";   /* a é 中 😀 z */
    size_t tn = strlen(text);
    int32_t ids[32];
    for (size_t i = 0; i < tn; i++) ids[i] = tv->byte_tok[(unsigned char)text[i]];
    mf_detok *d = mf_detok_new(v, true, &e);
    REQUIRE(d);
    size_t lens[32], total = 0;
    char out[64];
    for (size_t i = 0; i < tn; i++) {
        const char *o;
        REQUIRE(mf_detok_push(d, ids[i], &o, &lens[i], &e) == 0);
        memcpy(out + total, o, lens[i]);
        total += lens[i];
    }
    size_t want[] = { 1, 0, 2, 0, 0, 3, 0, 0, 0, 4, 1 };
    for (size_t i = 0; i < tn; i++) CHECKF(lens[i] == want[i], "push %zu gave %zu bytes, want %zu", i, lens[i], want[i]);
    CHECK(total == tn && memcmp(out, text, tn) == 0);

    /* an unfinished character at the end comes out of flush; a byte that
     * cannot continue it is passed through with it */
    const char *o;
    size_t on;
    REQUIRE(mf_detok_push(d, tv->byte_tok[0xe4], &o, &on, &e) == 0);
    CHECK(on == 0);
    mf_detok_flush(d, &o, &on);
    CHECK(on == 1 && (unsigned char)o[0] == 0xe4);
    REQUIRE(mf_detok_push(d, tv->byte_tok[0xe4], &o, &on, &e) == 0);
    REQUIRE(mf_detok_push(d, tv->byte_tok['x'], &o, &on, &e) == 0);
    CHECK(on == 2 && (unsigned char)o[0] == 0xe4 && o[1] == 'x');
    REQUIRE(mf_detok_push(d, tv->byte_tok[0xed], &o, &on, &e) == 0);   /* ED A0: a surrogate, never valid */
    CHECK(on == 0);
    REQUIRE(mf_detok_push(d, tv->byte_tok[0xa0], &o, &on, &e) == 0);
    CHECK(on == 2);
    CHECK(mf_detok_push(d, 151936, &o, &on, &e) == -1);
    mf_detok_reset(d);
    mf_detok_flush(d, &o, &on);
    CHECK(on == 0);
    mf_detok_free(d);

#ifdef MF_HAVE_JANSSON
    /* every corpus line, token by token */
    size_t len;
    char *data = t_read_file(t_shared("golden/tokenizer/corpus.jsonl"), &len);
    REQUIRE(data);
    d = mf_detok_new(v, true, &e);
    int lines = 0;
    for (char *line = data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        json_t *js = json_loads(line, JSON_ALLOW_NUL, NULL);
        REQUIRE(js);
        lines++;
        json_t *jids = json_object_get(js, "ids");
        size_t n = json_array_size(jids);
        int32_t *seq = malloc((n + 1) * sizeof *seq);
        for (size_t i = 0; i < n; i++) seq[i] = (int32_t)json_integer_value(json_array_get(jids, i));
        char *full;
        size_t fn;
        REQUIRE(mf_detokenize(v, seq, n, true, &full, &fn, &e) == 0);
        char *acc = malloc(fn + 1);
        size_t an = 0;
        mf_detok_reset(d);
        for (size_t i = 0; i < n; i++) {
            REQUIRE(mf_detok_push(d, seq[i], &o, &on, &e) == 0);
            /* each chunk is whole characters (the corpus is valid UTF-8) */
            for (size_t k = 0; k < on;) {
                uint32_t cp;
                size_t c = tok_utf8_next((const unsigned char *)o + k, on - k, &cp);
                CHECKF(c > 0, "line %d token %zu: chunk splits a character", lines, i);
                if (!c) break;
                k += c;
            }
            memcpy(acc + an, o, on);
            an += on;
        }
        mf_detok_flush(d, &o, &on);
        CHECK(on == 0);
        CHECKF(an == fn && memcmp(acc, full, fn) == 0, "line %d: streamed text differs", lines);
        free(acc);
        free(full);
        free(seq);
        json_decref(js);
    }
    CHECK(lines > 300);
    mf_detok_free(d);
    free(data);
#endif
    mf_vocab_free(v);
}

/* Long inputs must finish: a merge loop or regex that is quadratic in the
 * length of a word would take minutes here. Not timed. */
TEST(tok_long_inputs)
{
    const char *vocabs[] = { "golden/tokenizer/qwen3-vocab.gguf", "golden/tokenizer/deepseek-v3-vocab.gguf",
                             "models/stories260K-moe/stories260K-dense.gguf" };
    const char *units[] = { "a", " ", "7", "\n", "\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80", "ab ", "!", "\t\n",
                            "<|im_start|>" };
    size_t size = t_asan() ? 20000 : 100000;
    char *s = malloc(size + 16);
    REQUIRE(s);
    for (size_t vi = 0; vi < 3; vi++) {
        mf_vocab *v = open_vocab(t_, vocabs[vi]);
        REQUIRE(v);
        for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
            size_t un = strlen(units[u]), n = 0;
            while (n + un <= size) { memcpy(s + n, units[u], un); n += un; }
            if (vi < 2) {
                roundtrip(t_, v, s, n, true);
            } else {
                int32_t *ids;
                size_t ni;
                mf_error e;
                CHECK(mf_tokenize(v, s, n, true, false, &ids, &ni, &e) == 0);
                free(ids);
            }
        }
        mf_vocab_free(v);
    }
    free(s);
}

/* ---- malformed vocabularies ---- */

static const char *const mini_tokens[] = { "a", "b", "c", "ab", "abc", "<|end|>", "<0x41>" };
static const int32_t mini_types[] = { 1, 1, 1, 1, 1, 3, 6 };

typedef enum { M_OK, M_TOKENS_INT, M_TYPES_SHORT, M_TYPE_VALUE, M_BOS_RANGE, M_NO_MERGES, M_MERGES_INT, M_PRE,
               M_MODEL, M_DUP, M_BYTE_TEXT, M_NO_MODEL, M_BOS_TYPE, M_ADD_BOS_NO_BOS, M_MERGE_FORMAT } mini_fault;

static const char *write_mini_pre(t_state *t_, mini_fault f, const char *pre_name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/vocab-%d-%s.gguf", t_tmpdir(), (int)f, pre_name);
    gguf_writer *w = gguf_writer_new();
    gguf_w_str(w, "general.architecture", "qwen3moe");
    if (f != M_NO_MODEL) gguf_w_str(w, "tokenizer.ggml.model", f == M_MODEL ? "bert" : "gpt2");
    gguf_w_str(w, "tokenizer.ggml.pre", f == M_PRE ? "mystery-pre" : pre_name);
    const char *toks[8];
    size_t nt = sizeof mini_tokens / sizeof *mini_tokens;
    memcpy(toks, mini_tokens, sizeof mini_tokens);
    if (f == M_DUP) toks[4] = "ab";
    if (f == M_BYTE_TEXT) toks[6] = "<0xZZ>";
    if (f == M_TOKENS_INT) gguf_w_arr_i32(w, "tokenizer.ggml.tokens", mini_types, nt);
    else gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, nt);
    int32_t types[8];
    memcpy(types, mini_types, sizeof mini_types);
    if (f == M_TYPE_VALUE) types[2] = 9;
    gguf_w_arr_i32(w, "tokenizer.ggml.token_type", types, f == M_TYPES_SHORT ? nt - 2 : nt);
    const char *merges[] = { "a b", "ab c" };
    const char *bad_merges[] = { "a b", "abc" };
    if (f == M_MERGES_INT) gguf_w_arr_i32(w, "tokenizer.ggml.merges", mini_types, 2);
    else if (f == M_MERGE_FORMAT) gguf_w_arr_str(w, "tokenizer.ggml.merges", bad_merges, 2);
    else if (f != M_NO_MERGES) gguf_w_arr_str(w, "tokenizer.ggml.merges", merges, 2);
    if (f == M_BOS_TYPE) gguf_w_str(w, "tokenizer.ggml.bos_token_id", "five");
    else if (f != M_ADD_BOS_NO_BOS) gguf_w_u32(w, "tokenizer.ggml.bos_token_id", f == M_BOS_RANGE ? 7 : 5);
    gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 5);
    if (f == M_ADD_BOS_NO_BOS) gguf_w_bool(w, "tokenizer.ggml.add_bos_token", true);
    mf_error e;
    if (gguf_w_write(w, path, 0, &e)) t_failf(t_, __FILE__, __LINE__, "writing %s: %s", path, e.msg);
    gguf_writer_free(w);
    return path;
}

static const char *write_mini(t_state *t_, mini_fault f) { return write_mini_pre(t_, f, "qwen2"); }

TEST(tok_malformed_vocab)
{
    mf_error e;
    /* the well-formed one: merges by rank, byte tokens for the rest */
    mf_vocab *v = mf_vocab_open(write_mini(t_, M_OK), &e);
    REQUIREF(v, "%s", e.msg);
    int32_t *ids;
    size_t ni;
    REQUIRE(mf_tokenize(v, "abcab<|end|>", 12, true, false, &ids, &ni, &e) == 0);
    int32_t want[] = { 4, 3, 5 };   /* "abc" "ab" <|end|>: one regex word "abcab" */
    CHECK(ids_equal(ids, ni, want, 3));
    free(ids);
    CHECK(mf_token_is_eog(v, 5));
    mf_vocab_free(v);

    static const struct { mini_fault f; const char *a, *b; } cases[] = {
        { M_TOKENS_INT, "tokenizer.ggml.tokens", "ARRAY[STRING]" },
        { M_TYPES_SHORT, "tokenizer.ggml.token_type", "5 entries for 7 tokens" },
        { M_TYPE_VALUE, "token_type[2] = 9", "0..6" },
        { M_BOS_RANGE, "bos_token_id = 7", "out of range" },
        { M_NO_MERGES, "tokenizer.ggml.merges", "missing" },
        { M_MERGES_INT, "tokenizer.ggml.merges", "ARRAY[STRING]" },
        { M_MERGE_FORMAT, "merges[1] 'abc'", "two pieces" },
        { M_PRE, "mystery-pre", "not supported" },
        { M_MODEL, "'bert'", "not supported" },
        { M_DUP, "duplicates token 3", "token 4" },
        { M_BYTE_TEXT, "<0xZZ>", "BYTE" },
        { M_NO_MODEL, "tokenizer.ggml.model", "" },
        { M_BOS_TYPE, "bos_token_id", "STRING" },
        { M_ADD_BOS_NO_BOS, "add_bos_token", "no bos_token_id" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *path = write_mini(t_, cases[i].f);
        memset(&e, 0, sizeof e);
        v = mf_vocab_open(path, &e);
        CHECKF(!v, "case %zu loaded", i);
        mf_vocab_free(v);
        CHECKF(strstr(e.msg, cases[i].a) && strstr(e.msg, cases[i].b) && strstr(e.msg, "vocab-"),
               "case %zu: message '%s'", i, e.msg);
    }
    CHECK(mf_vocab_open("/nonexistent/vocab.gguf", &e) == NULL && strstr(e.msg, "/nonexistent/vocab.gguf"));
}

/* Every truncation and a few thousand random corruptions of a small
 * vocabulary: loading fails cleanly or gives a vocabulary that tokenizes
 * and decodes without tripping the sanitizers. */
TEST(tok_hostile_vocab)
{
    size_t len;
    char *good = t_read_file(write_mini(t_, M_OK), &len);
    REQUIRE(good && len > 100);
    char *buf = malloc(len);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int loaded = 0, rounds = t_asan() ? 1000 : 4000;
    for (int r = 0; r < (int)len + rounds; r++) {
        size_t n = len;
        memcpy(buf, good, len);
        if (r < (int)len) {
            n = (size_t)r;                                   /* truncation */
        } else {
            int flips = 1 + (int)(rng % 4);
            for (int k = 0; k < flips; k++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                buf[(rng >> 33) % len] = (char)(rng >> 17);
            }
        }
        mf_error e;
        gguf_file *f = gguf_open_buffer(buf, n, "corrupt.gguf", &e);
        if (!f) continue;
        tok_vocab *v = tok_vocab_load(f, &e);
        if (v) {
            loaded++;
            int32_t *ids;
            size_t ni;
            if (mf_tokenize(v, "abc ab\xff<|end|>c", 14, true, false, &ids, &ni, &e) == 0) {
                char *d;
                size_t dn;
                if (mf_detokenize(v, ids, ni, true, &d, &dn, &e) == 0) free(d);
                free(ids);
            }
            tok_vocab_free(v);
        } else {
            CHECKF(e.msg[0], "round %d: failed without a message", r);
        }
        gguf_close(f);
    }
    CHECK(loaded > 0);
    free(buf);
    free(good);
}

/* Random bytes round-trip through both byte-level vocabularies. */
TEST(tok_random_bytes)
{
    mf_vocab *vs[2] = { open_vocab(t_, "golden/tokenizer/qwen3-vocab.gguf"),
                        open_vocab(t_, "golden/tokenizer/deepseek-v3-vocab.gguf") };
    REQUIRE(vs[0] && vs[1]);
    uint64_t rng = 42;
    char s[512];
    for (int r = 0; r < (t_asan() ? 100 : 400); r++) {
        size_t n = 0, want = (size_t)(r * 7) % sizeof s;
        while (n < want) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            unsigned x = (unsigned)(rng >> 33);
            /* mostly text-like: ASCII, spaces, a few UTF-8 lead/continuation bytes */
            s[n++] = (char)(x % 5 == 0 ? ' ' : x % 7 == 0 ? 0x80 + (x >> 8) % 0x80 : x % 11 == 0 ? 0xC0 + (x >> 8) % 0x40
                                                                                         : 0x20 + (x >> 8) % 0x5F);
        }
        roundtrip(t_, vs[r & 1], s, n, r & 2);
    }
    mf_vocab_free(vs[0]);
    mf_vocab_free(vs[1]);
}

/* The llama3 ("llama-bpe") pre-tokenizer, for which no golden vocabulary
 * exists here: its splits by hand from the regex, and a word that is a
 * token stays whole even without the merges that would build it. */
TEST(tok_llama3_pretok)
{
    mf_error e;
    mf_vocab *v = mf_vocab_open(write_mini_pre(t_, M_NO_MERGES, "llama-bpe"), &e);
    CHECKF(!v, "a gpt2 vocabulary without merges must not load");
    v = mf_vocab_open(write_mini_pre(t_, M_OK, "llama-bpe"), &e);
    REQUIREF(v, "%s", e.msg);
    const char *text = "Hello world 12345 's'S\n\n x  y";
    const char *want[] = { "Hello", " world", " ", "123", "45", " '", "s", "'S", "\n\n", " x", " ", " y" };
    tok_spans sp = { 0 };
    REQUIRE(tok_pretok_split(v, text, strlen(text), &sp, &e) == 0);
    CHECKF(sp.n == 12, "%zu pieces", sp.n);
    for (size_t i = 0; i < sp.n && i < 12; i++)
        CHECKF(sp.p[i].len == strlen(want[i]) && !memcmp(text + sp.p[i].off, want[i], sp.p[i].len),
               "piece %zu: '%.*s', want '%s'", i, (int)sp.p[i].len, text + sp.p[i].off, want[i]);
    free(sp.p);
    CHECK(mf_vocab_add_bos(v));   /* llama3's default when the GGUF does not say */
    mf_vocab_free(v);

    /* "abc" is token 4; qwen2 needs the merges a+b, ab+c to reach it */
    v = mf_vocab_open(write_mini_pre(t_, M_OK, "llama-bpe"), &e);
    REQUIRE(v);
    int32_t *ids;
    size_t ni;
    REQUIRE(mf_tokenize(v, "abc", 3, true, false, &ids, &ni, &e) == 0);
    CHECK(ni == 1 && ids[0] == 4);
    free(ids);
    mf_vocab_free(v);
}

/* gpt-oss's harmony markers: <|return|> and <|call|> end a reply, <|end|>
 * does not (it closes the analysis message), and the structural markers
 * are printed so the reply parser can see them. */
TEST(tok_harmony_markers)
{
    const char *toks[] = { "a", "b", "<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>", "<|call|>",
                           "<|constrain|>", "<|endoftext|>" };
    int32_t types[] = { 1, 1, 3, 3, 3, 3, 3, 3, 3, 3 };
    gguf_writer *w = gguf_writer_new();
    gguf_w_str(w, "general.architecture", "gpt-oss");
    gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_w_str(w, "tokenizer.ggml.pre", "default");
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 10);
    gguf_w_arr_i32(w, "tokenizer.ggml.token_type", types, 10);
    const char *none[1] = { "" };
    gguf_w_arr_str(w, "tokenizer.ggml.merges", none, 0);
    gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 9);
    char path[512];
    snprintf(path, sizeof path, "%s/harmony-vocab.gguf", t_tmpdir());
    mf_error e;
    REQUIREF(gguf_w_write(w, path, 0, &e) == 0, "%s", e.msg);
    gguf_writer_free(w);
    mf_vocab *v = mf_vocab_open(path, &e);
    REQUIREF(v, "%s", e.msg);
    CHECK(mf_token_is_eog(v, 6) && mf_token_is_eog(v, 7) && mf_token_is_eog(v, 9));
    CHECK(!mf_token_is_eog(v, 5));
    size_t n;
    const char *p = mf_token_piece(v, 3, false, &n);
    CHECKF(p && n == 11 && !memcmp(p, "<|channel|>", 11), "<|channel|> is hidden when decoding");
    mf_vocab_free(v);
}
