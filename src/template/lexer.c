/* lexer.c — template text to tokens, with Jinja's whitespace control.
 *
 * Follows jinja2's lexer as Hugging Face configures it: newlines are
 * normalized to \n and one trailing newline is dropped; `{%-`/`-%}` strip
 * all whitespace on that side; trim_blocks removes the newline after a
 * block or comment tag; lstrip_blocks removes spaces and tabs between the
 * start of a line and a block or comment tag (not `{{`), unless `{%+`.
 * Tag ends are recognized only when brackets are balanced, so a dict
 * literal's `}}` does not close an expression.
 */
#include "template/internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lexer {
    tmpl_arena *a;
    const char *s;
    size_t n;
    ttok *t;
    size_t nt, cap;
} lexer;

static ttok *emit(lexer *L, int k, size_t pos)
{
    if (L->nt == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        L->t = tmpl_realloc(L->a, L->t, tmpl_mul(L->a, L->cap, sizeof *L->t), tmpl_mul(L->a, cap, sizeof *L->t));
        L->cap = cap;
    }
    ttok *t = &L->t[L->nt++];
    memset(t, 0, sizeof *t);
    t->k = (uint8_t)k;
    t->pos = (uint32_t)pos;
    return t;
}

_Noreturn static void lfail(lexer *L, size_t pos, const char *msg)
{
    tmpl_throw(L->a->err, (uint32_t)pos, "%s", msg);
}

/* Whitespace as Python's \s on str: the length of the char at i, or 0. */
static size_t ws_at(const lexer *L, size_t i)
{
    if (i >= L->n) return 0;
    uint32_t cp;
    size_t k = tu_decode(L->s, L->n, i, &cp);
    return tu_isspace(cp) ? k : 0;
}

static size_t skip_ws(const lexer *L, size_t i)
{
    size_t k;
    while ((k = ws_at(L, i)) != 0) i += k;
    return i;
}

static bool all_ws(const lexer *L, size_t from, size_t to)
{
    for (size_t i = from; i < to;) {
        size_t k = ws_at(L, i);
        if (!k) return false;
        i += k;
    }
    return true;
}

/* End of the text [from, to) after Python's rstrip(). */
static size_t rstrip_end(const lexer *L, size_t from, size_t to)
{
    size_t last = from;
    for (size_t i = from; i < to;) {
        size_t k = ws_at(L, i);
        if (k) { i += k; continue; }
        uint32_t cp;
        i += tu_decode(L->s, L->n, i, &cp);
        last = i;
    }
    return last;
}

/* Where the text before a `{%`/`{#` tag at k ends under lstrip_blocks: the
 * spaces between the line start and the tag go, when only spaces are there. */
static size_t lstrip_end(const lexer *L, size_t from, size_t k, bool line_starting)
{
    size_t l = k;
    while (l > from && L->s[l - 1] != '\n') l--;
    if ((l > from || line_starting) && l < k && all_ws(L, l, k)) return l;
    return k;
}

/* The end of a block tag's closing at p ("+%}"; "-%}" and whitespace; "%}"
 * and one newline under trim_blocks), or 0 when p is not at one. */
static size_t block_close(const lexer *L, size_t p)
{
    const char *s = L->s;
    size_t n = L->n;
    if (p + 3 <= n && (s[p] == '+' || s[p] == '-') && s[p + 1] == '%' && s[p + 2] == '}')
        return s[p] == '+' ? p + 3 : skip_ws(L, p + 3);
    if (p + 2 <= n && s[p] == '%' && s[p + 1] == '}')
        return (p + 2 < n && s[p + 2] == '\n') ? p + 3 : p + 2;
    return 0;
}

static void emit_data(lexer *L, size_t from, size_t to)
{
    if (to <= from) return;
    ttok *t = emit(L, K_DATA, from);
    t->s = L->s + from;
    t->n = to - from;
}

static bool isdig(char ch) { return ch >= '0' && ch <= '9'; }
static bool isname0(char ch) { return ch == '_' || (unsigned)((ch | 32) - 'a') < 26u; }

/* "{%" [+-]? ws* word ws* at i (i at '{'): the offset after it, or 0. */
static size_t match_word_tag(const lexer *L, size_t i, const char *word)
{
    size_t p = i + 2;
    if (p < L->n && (L->s[p] == '-' || L->s[p] == '+')) p++;
    p = skip_ws(L, p);
    size_t wl = strlen(word);
    if (p + wl > L->n || memcmp(L->s + p, word, wl) != 0) return 0;
    p += wl;
    if (p < L->n && (isname0(L->s[p]) || isdig(L->s[p]))) return 0;
    return skip_ws(L, p);
}

static int unhex(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if ((ch | 32) >= 'a' && (ch | 32) <= 'f') return (ch | 32) - 'a' + 10;
    return -1;
}

/* A string literal at i (its quote); escapes as Python's unicode-escape. */
static size_t lex_string(lexer *L, size_t i)
{
    char q = L->s[i];
    size_t j = i + 1;
    while (j < L->n && L->s[j] != q) j += (L->s[j] == '\\' && j + 1 < L->n) ? 2 : 1;
    if (j >= L->n) lfail(L, i, "unterminated string literal");
    char *out = tmpl_alloc(L->a, j - i + 4);
    size_t o = 0;
    for (size_t p = i + 1; p < j;) {
        char ch = L->s[p];
        if (ch != '\\') { out[o++] = ch; p++; continue; }
        char e = L->s[p + 1];
        size_t esc = p;
        p += 2;
        uint32_t cp = 0;
        int digits = 0;
        switch (e) {
        case '\n': continue;
        case '\\': out[o++] = '\\'; continue;
        case '\'': out[o++] = '\''; continue;
        case '"': out[o++] = '"'; continue;
        case 'a': out[o++] = '\a'; continue;
        case 'b': out[o++] = '\b'; continue;
        case 'f': out[o++] = '\f'; continue;
        case 'n': out[o++] = '\n'; continue;
        case 'r': out[o++] = '\r'; continue;
        case 't': out[o++] = '\t'; continue;
        case 'v': out[o++] = '\v'; continue;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (e >= '0' && e <= '7') {
                cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && p < j && L->s[p] >= '0' && L->s[p] <= '7'; k++)
                    cp = cp * 8 + (uint32_t)(L->s[p++] - '0');
                o += tu_encode(cp, out + o);
                continue;
            }
            out[o++] = '\\';    /* unknown escapes stay as written */
            out[o++] = e;
            continue;
        }
        for (int k = 0; k < digits; k++) {
            int h = p < j ? unhex(L->s[p]) : -1;
            if (h < 0) lfail(L, esc, "invalid \\x, \\u or \\U escape in a string literal");
            cp = cp * 16 + (uint32_t)h;
            p++;
        }
        if (cp > 0x10FFFF) lfail(L, esc, "escape beyond U+10FFFF in a string literal");
        o += tu_encode(cp, out + o);
    }
    out[o] = 0;
    ttok *t = emit(L, K_STRING, i);
    t->s = out;
    t->n = o;
    return j + 1;
}

/* Digits with single underscores between them, from i; returns the end. */
static size_t digits_end(const lexer *L, size_t i)
{
    while (i < L->n && isdig(L->s[i])) {
        i++;
        if (i + 1 < L->n && L->s[i] == '_' && isdig(L->s[i + 1])) i++;
    }
    return i;
}

static size_t lex_number(lexer *L, size_t i)
{
    size_t e = digits_end(L, i);
    bool is_float = false;
    if (!(i > 0 && L->s[i - 1] == '.')) {   /* jinja's float rule: (?<!\.) */
        size_t f = e;
        if (f + 1 < L->n && L->s[f] == '.' && isdig(L->s[f + 1])) { f = digits_end(L, f + 1); is_float = true; }
        if (f < L->n && (L->s[f] == 'e' || L->s[f] == 'E')) {
            size_t x = f + 1;
            if (x < L->n && (L->s[x] == '+' || L->s[x] == '-')) x++;
            if (x < L->n && isdig(L->s[x])) { f = digits_end(L, x); is_float = true; }
        }
        if (is_float) e = f;
    }
    char buf[128];
    if (e - i >= sizeof buf) lfail(L, i, "number literal too long");
    size_t bn = 0;
    for (size_t p = i; p < e; p++) if (L->s[p] != '_') buf[bn++] = L->s[p];
    buf[bn] = 0;
    ttok *t = emit(L, is_float ? K_FLOAT : K_INT, i);
    if (is_float) {
        t->f = strtod(buf, NULL);
    } else {
        unsigned long long v = strtoull(buf, NULL, 10);
        if (v > (unsigned long long)INT64_MAX) lfail(L, i, "integer literal out of range");
        t->i = (int64_t)v;
    }
    return e;
}

static const struct { const char *s; uint8_t op; } ops[] = {
    { "//", OP_FLOORDIV }, { "**", OP_POW }, { "==", OP_EQ }, { "!=", OP_NE },
    { "<=", OP_LE }, { ">=", OP_GE }, { "+", OP_ADD }, { "-", OP_SUB }, { "*", OP_MUL },
    { "/", OP_DIV }, { "%", OP_MOD }, { "~", OP_TILDE }, { "<", OP_LT }, { ">", OP_GT },
    { "=", OP_ASSIGN }, { "(", OP_LPAREN }, { ")", OP_RPAREN }, { "[", OP_LBRACKET },
    { "]", OP_RBRACKET }, { "{", OP_LBRACE }, { "}", OP_RBRACE }, { ",", OP_COMMA },
    { ".", OP_DOT }, { ":", OP_COLON }, { "|", OP_PIPE }, { ";", OP_SEMICOLON },
};

#define MAX_BRACKETS 256

/* Tokens of one `{{ }}` or `{% %}` from i (after the opening and its sign)
 * through the closing. Returns the offset after the closing. */
static size_t lex_tag(lexer *L, size_t i, bool block, size_t open)
{
    char want[MAX_BRACKETS];
    int depth = 0;
    for (;;) {
        if (depth == 0) {
            size_t end = 0;
            if (block) end = block_close(L, i);
            else if (i + 3 <= L->n && !memcmp(L->s + i, "-}}", 3)) end = skip_ws(L, i + 3);
            else if (i + 2 <= L->n && !memcmp(L->s + i, "}}", 2)) end = i + 2;
            if (end) { emit(L, block ? K_BLOCK_END : K_VAR_END, i); return end; }
        }
        size_t k = ws_at(L, i);
        if (k) { i += k; continue; }
        if (i >= L->n)
            tmpl_throw(L->a->err, (uint32_t)open, "unexpected end of template: this '%s' is not closed with '%s'",
                       block ? "{%" : "{{", block ? "%}" : "}}");
        char ch = L->s[i];
        if (isdig(ch)) { i = lex_number(L, i); continue; }
        if (isname0(ch)) {
            size_t j = i;
            while (j < L->n && (isname0(L->s[j]) || isdig(L->s[j]))) j++;
            ttok *t = emit(L, K_NAME, i);
            char *name = tmpl_alloc(L->a, j - i + 1);
            memcpy(name, L->s + i, j - i);
            t->s = name;
            t->n = j - i;
            i = j;
            continue;
        }
        if (ch == '\'' || ch == '"') { i = lex_string(L, i); continue; }
        size_t o;
        for (o = 0; o < sizeof ops / sizeof ops[0]; o++) {
            size_t ol = strlen(ops[o].s);
            if (i + ol <= L->n && memcmp(L->s + i, ops[o].s, ol) == 0) break;
        }
        char msg[64];
        if (o == sizeof ops / sizeof ops[0]) {
            if ((unsigned char)ch < 0x80) snprintf(msg, sizeof msg, "unexpected character '%c' in a tag", ch);
            else snprintf(msg, sizeof msg, "unexpected non-ASCII character in a tag");
            lfail(L, i, msg);
        }
        uint8_t op = ops[o].op;
        if (op == OP_LPAREN || op == OP_LBRACKET || op == OP_LBRACE) {
            if (depth == MAX_BRACKETS) lfail(L, i, "brackets nested too deeply");
            want[depth++] = op == OP_LPAREN ? ')' : op == OP_LBRACKET ? ']' : '}';
        } else if (op == OP_RPAREN || op == OP_RBRACKET || op == OP_RBRACE) {
            if (depth == 0) { snprintf(msg, sizeof msg, "unexpected '%c'", ch); lfail(L, i, msg); }
            if (want[depth - 1] != ch) {
                snprintf(msg, sizeof msg, "unexpected '%c', expected '%c'", ch, want[depth - 1]);
                lfail(L, i, msg);
            }
            depth--;
        }
        emit(L, K_OP, i)->op = op;
        i += strlen(ops[o].s);
    }
}

/* The body of {% raw %}...{% endraw %}: body starts at body, the raw tag at
 * tag. Returns the offset after the endraw tag. */
static size_t lex_raw(lexer *L, size_t tag, size_t body, bool line_starting)
{
    for (size_t k = body; k + 1 < L->n; k++) {
        if (L->s[k] != '{' || L->s[k + 1] != '%') continue;
        size_t p = match_word_tag(L, k, "endraw");
        if (!p) continue;
        char sign = L->s[k + 2];
        size_t end = sign == '-' ? rstrip_end(L, body, k)
                   : sign == '+' ? k : lstrip_end(L, body, k, line_starting);
        emit_data(L, body, end);
        size_t after = block_close(L, p);
        if (!after) lfail(L, p, "expected '%}' after 'endraw'");
        return after;
    }
    lfail(L, tag, "unexpected end of template: this 'raw' is not closed with 'endraw'");
}

void tmpl_lex(tmpl_arena *a, const char *src, size_t len, const char **norm, size_t *norm_len,
              ttok **toks, size_t *ntoks)
{
    /* \r\n and \r become \n; one trailing newline goes (keep_trailing_newline off). */
    char *s = tmpl_alloc(a, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') { s[n++] = '\n'; if (i + 1 < len && src[i + 1] == '\n') i++; }
        else s[n++] = src[i];
    }
    if (n && s[n - 1] == '\n') n--;
    s[n] = 0;
    *norm = s;
    *norm_len = n;
    a->err->src = s;
    a->err->src_len = n;

    lexer L = { .a = a, .s = s, .n = n };
    size_t pos = 0;
    bool line_starting = true;   /* the previous match ended with a newline */
    while (pos < n) {
        size_t k = pos;
        while (k + 1 < n && !(s[k] == '{' && (s[k + 1] == '{' || s[k + 1] == '%' || s[k + 1] == '#'))) k++;
        if (k + 1 >= n) { emit_data(&L, pos, n); break; }
        char kind = s[k + 1];
        char sign = (k + 2 < n && (s[k + 2] == '-' || s[k + 2] == '+')) ? s[k + 2] : 0;
        /* {% raw %}: the raw tag closes right after the word, without trim_blocks */
        size_t raw_body = 0, w = kind == '%' ? match_word_tag(&L, k, "raw") : 0;
        if (w && w + 3 <= n && s[w] == '-' && s[w + 1] == '%' && s[w + 2] == '}') raw_body = skip_ws(&L, w + 3);
        else if (w && w + 2 <= n && s[w] == '%' && s[w + 1] == '}') raw_body = w + 2;

        size_t end = k;
        if (sign == '-') end = rstrip_end(&L, pos, k);
        else if (sign != '+' && kind != '{') end = lstrip_end(&L, pos, k, line_starting);
        emit_data(&L, pos, end);

        size_t after = k + 2 + (sign ? 1 : 0);
        if (raw_body) {
            pos = lex_raw(&L, k, raw_body, s[raw_body - 1] == '\n');
        } else if (kind == '#') {
            size_t c = after;
            while (c + 1 < n && !(s[c] == '#' && s[c + 1] == '}')) c++;
            if (c + 1 >= n) lfail(&L, k, "unexpected end of template: this comment is not closed with '#}'");
            if (c > after && s[c - 1] == '-') pos = skip_ws(&L, c + 2);
            else if (c > after && s[c - 1] == '+') pos = c + 2;
            else pos = (c + 2 < n && s[c + 2] == '\n') ? c + 3 : c + 2;
        } else {
            emit(&L, kind == '%' ? K_BLOCK_BEGIN : K_VAR_BEGIN, k);
            pos = lex_tag(&L, after, kind == '%', k);
        }
        line_starting = s[pos - 1] == '\n';
    }
    emit(&L, K_EOF, n);
    *toks = L.t;
    *ntoks = L.nt;
}
