/* pretok.c — the pre-tokenizers of byte-level BPE vocabularies: the regexes
 * that cut text into words before merges run, and Unicode normalization.
 *
 * Each family's regexes are written as its tokenizer.json writes them (as
 * llama.cpp copies them into llama-vocab.cpp) and run with PCRE2 in UTF
 * mode with Unicode properties. A list of regexes is applied in turn: each
 * one splits the pieces left by the previous one, and the text between two
 * matches is a piece of its own, as in llama.cpp's unicode_regex_split.
 *
 * Two adjustments pin the behaviour to the reference rather than to the
 * PCRE2 build at hand:
 *  - \s and \S are expanded to the Unicode White_Space list (the set
 *    llama.cpp's tables and Python's/Rust's regex engines use), so that the
 *    answer does not depend on which PCRE2 version decides what \s means;
 *  - invalid UTF-8 is matched by nothing (PCRE2_MATCH_INVALID_UTF), so such
 *    bytes become pieces of their own and still round-trip exactly
 *    (llama.cpp turns each into U+FFFD instead; valid text is unaffected).
 *
 * Must not: allocate per character, or know about token ids.
 */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#ifdef MF_HAVE_PCRE2_8
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif
#ifdef MF_HAVE_UTF8PROC
#include <utf8proc.h>
#endif

/* ---- the regex sets ---- */

#define CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define GPT2_RE "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

static const char *const re_default[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_RE, "\\p{N}+", "[0-9][0-9][0-9]", NULL,
};
static const char *const re_gpt2[] = { GPT2_RE, NULL };
static const char *const re_llama3[] = {
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};
/* Qwen2's tokenizer.json has (?i:'s|'t|...); llama.cpp spells the case
 * folding out for ASCII, which is what the reference ids follow. */
static const char *const re_qwen2[] = {
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};
static const char *const re_qwen35[] = {
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+"
    "|\\s+(?!\\S)|\\s+",
    NULL,
};
/* DeepSeek-V3's third regex is, in its tokenizer.json,
 *   [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
 *   | ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * llama.cpp, whose ids are the reference, does not count '~' (U+007E, a
 * math symbol) in \p{S}: its ASCII table for the category leaves it out.
 * So '~' may prefix a letter run and never joins a punctuation run, and
 * " ~q" splits as " " + "~q" instead of " ~" + "q". Reproduced here. */
static const char *const re_deepseek3[] = {
    "\\p{N}{1,3}",
    /* CJK unified ideographs U+4E00-U+9FA5, hiragana, katakana */
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|(?:~|[^\\r\\n\\p{L}\\p{P}\\p{S}])?[\\p{L}\\p{M}]+"
    "| ?(?:(?!~)[\\p{P}\\p{S}])+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};

static const char *const *regex_set(tok_pre pre)
{
    switch (pre) {
    case TOK_PRE_DEFAULT: return re_default;
    case TOK_PRE_GPT2: return re_gpt2;
    case TOK_PRE_LLAMA3: return re_llama3;
    case TOK_PRE_QWEN2: return re_qwen2;
    case TOK_PRE_QWEN35: return re_qwen35;
    case TOK_PRE_DEEPSEEK3: return re_deepseek3;
    case TOK_PRE_NONE: break;
    }
    return NULL;
}

/* Unicode White_Space, as the members of a character class. */
#define WS_MEMBERS "\\t\\n\\x0B\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

/* Copies src to dst with \s and \S expanded (see the top of the file).
 * Returns the length written, or 0 when dst is too small or \S appears
 * inside a class (no pattern here does that). */
static size_t expand_ws(const char *src, char *dst, size_t cap)
{
    size_t n = 0;
    bool in_class = false;
    for (const char *p = src; *p; p++) {
        const char *add = NULL;
        char one[3] = { 0 };
        if (p[0] == '\\' && (p[1] == 's' || p[1] == 'S')) {
            if (p[1] == 'S' && in_class) return 0;
            add = in_class ? WS_MEMBERS : p[1] == 's' ? "[" WS_MEMBERS "]" : "[^" WS_MEMBERS "]";
            p++;
        } else if (p[0] == '\\' && p[1]) {
            one[0] = p[0];
            one[1] = p[1];
            add = one;
            p++;
        } else {
            if (p[0] == '[' && !in_class) in_class = true;
            else if (p[0] == ']' && in_class) in_class = false;
            one[0] = p[0];
            add = one;
        }
        size_t k = strlen(add);
        if (n + k + 1 > cap) return 0;
        memcpy(dst + n, add, k);
        n += k;
    }
    dst[n] = 0;
    return n;
}

#ifdef MF_HAVE_PCRE2_8

struct tok_pretok {
    pcre2_code *re[8];
    int n;
};

int tok_pretok_init(tok_vocab *v, mf_error *e)
{
    const char *const *set = regex_set(v->pre);
    if (!set) return 0;
    tok_pretok *p = calloc(1, sizeof *p);
    if (!p) return mf_fail(e, "out of memory");
    v->pretok = p;
    for (; *set; set++) {
        char pat[2048];
        if (!expand_ws(*set, pat, sizeof pat))
            return mf_fail(e, "pre-tokenizer '%s': cannot expand \\s in regex %s", v->pre_name, *set);
        int err;
        PCRE2_SIZE at;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_MATCH_INVALID_UTF,
                                       &err, &at, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            return mf_fail(e, "pre-tokenizer '%s': regex %s does not compile at offset %zu: %s", v->pre_name, *set,
                           (size_t)at, (const char *)msg);
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* the interpreter is the fallback */
        p->re[p->n++] = re;
    }
    return 0;
}

void tok_pretok_free(tok_pretok *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) pcre2_code_free(p->re[i]);
    free(p);
}

static int spans_push(tok_spans *s, size_t off, size_t len, mf_error *e)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        tok_span *q = realloc(s->p, cap * sizeof *q);
        if (!q) return mf_fail(e, "out of memory for %zu pieces", cap);
        s->p = q;
        s->cap = cap;
    }
    s->p[s->n++] = (tok_span){ off, len };
    return 0;
}

/* Match state of one split call. The JIT's default 32 KiB stack is enough
 * for ordinary text; a long run of whitespace makes it backtrack further,
 * so a larger stack (reserved, committed as used) is made on first need,
 * and the interpreter is the last resort. */
typedef struct matcher {
    pcre2_match_data *md;
    pcre2_match_context *ctx;
    pcre2_jit_stack *stack;
} matcher;

static int match(matcher *m, const pcre2_code *re, const char *subj, size_t len, size_t pos)
{
    int rc = pcre2_match(re, (PCRE2_SPTR)subj, len, pos, 0, m->md, m->ctx);
    if (rc != PCRE2_ERROR_JIT_STACKLIMIT) return rc;
    if (!m->ctx) {
        m->ctx = pcre2_match_context_create(NULL);
        m->stack = pcre2_jit_stack_create(256 * 1024, 256 * 1024 * 1024, NULL);
        if (!m->ctx || !m->stack) return PCRE2_ERROR_NOMEMORY;
        pcre2_jit_stack_assign(m->ctx, NULL, m->stack);
        pcre2_set_match_limit(m->ctx, UINT32_MAX);
        rc = pcre2_match(re, (PCRE2_SPTR)subj, len, pos, 0, m->md, m->ctx);
        if (rc != PCRE2_ERROR_JIT_STACKLIMIT) return rc;
    }
    return pcre2_match(re, (PCRE2_SPTR)subj, len, pos, PCRE2_NO_JIT, m->md, m->ctx);
}

/* Splits every piece of in with re into out. */
static int split_one(const pcre2_code *re, matcher *mt, const char *s, const tok_spans *in, tok_spans *out,
                     mf_error *e)
{
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        const char *subj = s + in->p[i].off;
        size_t len = in->p[i].len, pos = 0, gap = 0;
        while (pos < len) {
            int rc = match(mt, re, subj, len, pos);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return mf_fail(e, "pre-tokenizer regex failed at byte %zu: %s", in->p[i].off + pos, (const char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(mt->md);
            size_t ms = ov[0], me = ov[1];
            if (me == ms) {             /* no pattern matches empty; step over one character anyway */
                pos = ms + 1;
                while (pos < len && ((unsigned char)subj[pos] & 0xC0) == 0x80) pos++;
                continue;
            }
            if (ms > gap && spans_push(out, in->p[i].off + gap, ms - gap, e)) return -1;
            if (spans_push(out, in->p[i].off + ms, me - ms, e)) return -1;
            pos = gap = me;
        }
        if (gap < len && spans_push(out, in->p[i].off + gap, len - gap, e)) return -1;
    }
    return 0;
}

int tok_pretok_split(const tok_vocab *v, const char *s, size_t n, tok_spans *out, mf_error *e)
{
    out->n = 0;
    if (n == 0) return 0;
    if (!v->pretok) return spans_push(out, 0, n, e);
    matcher mt = { pcre2_match_data_create(1, NULL), NULL, NULL };
    if (!mt.md) return mf_fail(e, "out of memory");
    tok_spans tmp = { 0 };
    int rc = spans_push(out, 0, n, e);
    for (int r = 0; rc == 0 && r < v->pretok->n; r++) {
        rc = split_one(v->pretok->re[r], &mt, s, out, &tmp, e);
        tok_spans t = *out; *out = tmp; tmp = t;
    }
    free(tmp.p);
    pcre2_match_data_free(mt.md);
    pcre2_match_context_free(mt.ctx);
    pcre2_jit_stack_free(mt.stack);
    return rc;
}

#else /* no PCRE2 */

int tok_pretok_init(tok_vocab *v, mf_error *e)
{
    (void)expand_ws;
    if (!regex_set(v->pre)) return 0;
    return mf_fail(e, "%s: byte-level BPE needs PCRE2 for its pre-tokenizer; this build has none "
                   "(install libpcre2-dev and rebuild)", v->path);
}
void tok_pretok_free(tok_pretok *p) { (void)p; }
int tok_pretok_split(const tok_vocab *v, const char *s, size_t n, tok_spans *out, mf_error *e)
{
    (void)v; (void)s; (void)n; (void)out;
    return mf_fail(e, "no pre-tokenizer in this build");
}

#endif

/* ---- NFC ---- */

int tok_nfc(const char *s, size_t n, char **out, size_t *out_n, mf_error *e)
{
    char *d = NULL;
    size_t dn = 0, cap = n + 16;
    d = malloc(cap);
    if (!d) return mf_fail(e, "out of memory");
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* a maximal run of valid UTF-8, then the invalid bytes after it */
        size_t j = i;
        bool ascii = true;
        uint32_t cp;
        size_t k;
        while (j < n && (k = tok_utf8_next(u + j, n - j, &cp)) > 0) {
            ascii &= cp < 0x80;
            j += k;
        }
        const char *add = s + i;
        size_t addn = j - i;
        (void)ascii;   /* ASCII is already NFC */
#ifdef MF_HAVE_UTF8PROC
        utf8proc_uint8_t *m = NULL;
        if (!ascii && addn) {
            utf8proc_ssize_t r = utf8proc_map(u + i, (utf8proc_ssize_t)addn, &m, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (r >= 0) { add = (const char *)m; addn = (size_t)r; }
        }
#endif
        size_t bad = 0;
        while (j + bad < n && tok_utf8_next(u + j + bad, n - j - bad, &cp) == 0) bad++;
        if (dn + addn + bad > cap) {
            cap = (dn + addn + bad) * 2;
            char *q = realloc(d, cap);
            if (!q) {
#ifdef MF_HAVE_UTF8PROC
                free(m);
#endif
                free(d);
                return mf_fail(e, "out of memory");
            }
            d = q;
        }
        memcpy(d + dn, add, addn);
        dn += addn;
        memcpy(d + dn, s + j, bad);
        dn += bad;
#ifdef MF_HAVE_UTF8PROC
        free(m);
#endif
        i = j + bad;
    }
    *out = d;
    *out_n = dn;
    return 0;
}
