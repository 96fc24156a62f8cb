/* value.c — template values and how Python would print them.
 *
 * Values are none/bool/int/float/str/list/dict plus the interpreter's own
 * kinds (undefined, namespace, loop, macro, function, bound method). They
 * live in the render arena and are immutable, except a namespace, whose
 * attributes `set ns.x = ...` changes. Output must match what jinja2 prints
 * byte for byte, so str() and repr() follow Python (True, None, 'quoted'
 * strings, the shortest float that round-trips) and tojson follows
 * json.dumps as transformers calls it (ensure_ascii off, keys in order).
 */
#include "template/internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef MF_HAVE_JANSSON
#include <jansson.h>
#endif

/* ---- buffers and constructors ---- */

void tbuf_put(tmpl_ctx *c, tbuf *b, const char *s, size_t n)
{
    if (n > c->lim.max_output || b->n > c->lim.max_output - n)
        tmpl_fail(c, "rendered text larger than %zu bytes", c->lim.max_output);
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 48;
        while (cap < b->n + n + 1) cap *= 2;
        tstr *s = b->p ? (tstr *)(b->p - offsetof(tstr, p)) : NULL;
        s = tmpl_realloc(&c->a, s, b->p ? sizeof *s + b->cap : 0, sizeof *s + cap);
        b->p = s->p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void tbuf_puts(tmpl_ctx *c, tbuf *b, const char *s) { tbuf_put(c, b, s, strlen(s)); }

void tbuf_printf(tmpl_ctx *c, tbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    tbuf_put(c, b, tmp, n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

tv tbuf_value(tmpl_ctx *c, tbuf *b)
{
    if (!b->p) return tv_str(c, "", 0);
    tstr *s = (tstr *)(b->p - offsetof(tstr, p));
    s->n = b->n;
    tv v = { .t = TV_STR };
    v.u.s = s;
    memset(b, 0, sizeof *b);
    return v;
}

tv tv_str(tmpl_ctx *c, const char *s, size_t n)
{
    tstr *t = tmpl_alloc(&c->a, sizeof *t + n + 1);
    t->n = n;
    if (n && s) memcpy(t->p, s, n);
    tv v = { .t = TV_STR };
    v.u.s = t;
    return v;
}

tv tv_cstr(tmpl_ctx *c, const char *s) { return tv_str(c, s, strlen(s)); }

tv tv_list(tmpl_ctx *c, size_t n)
{
    tlist *l = tmpl_alloc(&c->a, sizeof *l);
    l->n = n;
    l->v = tmpl_alloc(&c->a, tmpl_mul(&c->a, n, sizeof *l->v));
    for (size_t i = 0; i < n; i++) l->v[i].t = TV_NONE;
    tv v = { .t = TV_LIST };
    v.u.l = l;
    return v;
}

tv tv_dict(tmpl_ctx *c, size_t cap)
{
    tdict *d = tmpl_alloc(&c->a, sizeof *d);
    if (cap) {
        d->k = tmpl_alloc(&c->a, tmpl_mul(&c->a, cap, sizeof *d->k));
        d->v = tmpl_alloc(&c->a, tmpl_mul(&c->a, cap, sizeof *d->v));
        d->cap = cap;
    }
    tv v = { .t = TV_DICT };
    v.u.d = d;
    return v;
}

/* ---- dict: insertion order, linear below 16 keys, hashed above ---- */

static uint32_t hash_key(tv k)
{
    uint64_t h = 1469598103934665603ull;
    if (k.t == TV_STR) {
        for (size_t i = 0; i < k.u.s->n; i++) h = (h ^ (unsigned char)k.u.s->p[i]) * 1099511628211ull;
    } else if (tv_is_num(k) && tv_num(k) == floor(tv_num(k)) && fabs(tv_num(k)) < 9e18) {
        h ^= (uint64_t)(int64_t)tv_num(k) * 0x9E3779B97F4A7C15ull;   /* 1 == 1.0 == True */
    } else {
        h = (uint64_t)k.t * 0x9E3779B97F4A7C15ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

static size_t dict_find(const tdict *d, tv k)
{
    if (d->hash) {
        size_t mask = d->hcap - 1;
        for (size_t i = hash_key(k) & mask;; i = (i + 1) & mask) {
            uint32_t slot = d->hash[i];
            if (!slot) return SIZE_MAX;
            if (tv_eq(d->k[slot - 1], k)) return slot - 1;
        }
    }
    for (size_t i = 0; i < d->n; i++) if (tv_eq(d->k[i], k)) return i;
    return SIZE_MAX;
}

static void dict_rehash(tmpl_ctx *c, tdict *d)
{
    size_t hcap = 64;
    while (hcap < d->n * 2 + 2) hcap *= 2;
    d->hash = tmpl_alloc(&c->a, tmpl_mul(&c->a, hcap, sizeof *d->hash));
    d->hcap = hcap;
    for (size_t j = 0; j < d->n; j++) {
        size_t i = hash_key(d->k[j]) & (hcap - 1);
        while (d->hash[i]) i = (i + 1) & (hcap - 1);
        d->hash[i] = (uint32_t)(j + 1);
    }
}

void tv_dict_set(tmpl_ctx *c, tdict *d, tv k, tv v)
{
    size_t i = dict_find(d, k);
    if (i != SIZE_MAX) { d->v[i] = v; return; }
    if (d->n >= UINT32_MAX - 1) tmpl_fail(c, "dict too large");
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        d->k = tmpl_realloc(&c->a, d->k, d->cap * sizeof *d->k, tmpl_mul(&c->a, cap, sizeof *d->k));
        d->v = tmpl_realloc(&c->a, d->v, d->cap * sizeof *d->v, tmpl_mul(&c->a, cap, sizeof *d->v));
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    if (d->n > 16 && (!d->hash || d->n * 2 > d->hcap)) dict_rehash(c, d);
    else if (d->hash) {
        size_t j = hash_key(k) & (d->hcap - 1);
        while (d->hash[j]) j = (j + 1) & (d->hcap - 1);
        d->hash[j] = (uint32_t)d->n;
    }
}

tv *tv_dict_get(const tdict *d, tv k)
{
    size_t i = dict_find(d, k);
    return i == SIZE_MAX ? NULL : &d->v[i];
}

tv *tv_dict_gets(const tdict *d, const char *k)
{
    union { tstr s; char raw[sizeof(tstr) + 64]; } tmp;   /* a key on the stack */
    size_t n = strlen(k);
    if (n >= 64) {
        for (size_t i = 0; i < d->n; i++)
            if (d->k[i].t == TV_STR && d->k[i].u.s->n == n && !memcmp(d->k[i].u.s->p, k, n)) return &d->v[i];
        return NULL;
    }
    tmp.s.n = n;
    memcpy(tmp.s.p, k, n + 1);
    tv key = { .t = TV_STR };
    key.u.s = &tmp.s;
    return tv_dict_get(d, key);
}

/* ---- truth, equality, order ---- */

bool tv_is_num(tv v) { return v.t == TV_INT || v.t == TV_FLOAT || v.t == TV_BOOL; }

double tv_num(tv v)
{
    return v.t == TV_FLOAT ? v.u.f : v.t == TV_INT ? (double)v.u.i : v.t == TV_BOOL ? (double)v.u.b : 0;
}

bool tv_truthy(tv v)
{
    switch (v.t) {
    case TV_UNDEF: case TV_NONE: return false;
    case TV_BOOL: return v.u.b;
    case TV_INT: return v.u.i != 0;
    case TV_FLOAT: return v.u.f != 0;
    case TV_STR: return v.u.s->n != 0;
    case TV_LIST: return v.u.l->n != 0 || v.tuple == TL_GEN;
    case TV_DICT: return v.u.d->n != 0;
    default: return true;
    }
}

bool tv_eq(tv a, tv b)
{
    if (tv_is_num(a) && tv_is_num(b)) {
        if (a.t != TV_FLOAT && b.t != TV_FLOAT)
            return (a.t == TV_BOOL ? a.u.b : a.u.i) == (b.t == TV_BOOL ? b.u.b : b.u.i);
        return tv_num(a) == tv_num(b);
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case TV_UNDEF: case TV_NONE: return true;
    case TV_STR: return a.u.s->n == b.u.s->n && !memcmp(a.u.s->p, b.u.s->p, a.u.s->n);
    case TV_LIST:
        if (a.tuple == TL_GEN || b.tuple == TL_GEN) return a.u.l == b.u.l;
        if (a.tuple != b.tuple || a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++) if (!tv_eq(a.u.l->v[i], b.u.l->v[i])) return false;
        return true;
    case TV_DICT:
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            tv *o = tv_dict_get(b.u.d, a.u.d->k[i]);
            if (!o || !tv_eq(a.u.d->v[i], *o)) return false;
        }
        return true;
    case TV_NS: return a.u.d == b.u.d;
    case TV_LOOP: return a.u.loop == b.u.loop;
    case TV_MACRO: return a.u.m == b.u.m;
    case TV_FUNC: return a.u.fn == b.u.fn;
    case TV_METHOD: return a.u.meth == b.u.meth;
    default: return false;
    }
}

int tv_cmp(tmpl_ctx *c, tv a, tv b)
{
    if (tv_is_num(a) && tv_is_num(b)) {
        if (a.t != TV_FLOAT && b.t != TV_FLOAT) {
            int64_t x = a.t == TV_BOOL ? a.u.b : a.u.i, y = b.t == TV_BOOL ? b.u.b : b.u.i;
            return (x > y) - (x < y);
        }
        double x = tv_num(a), y = tv_num(b);
        return (x > y) - (x < y);
    }
    if (a.t == TV_STR && b.t == TV_STR) {
        /* UTF-8 byte order is code point order */
        size_t n = a.u.s->n < b.u.s->n ? a.u.s->n : b.u.s->n;
        int r = memcmp(a.u.s->p, b.u.s->p, n);
        if (r) return r;
        return (a.u.s->n > b.u.s->n) - (a.u.s->n < b.u.s->n);
    }
    if (a.t == TV_LIST && b.t == TV_LIST) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (tv_eq(a.u.l->v[i], b.u.l->v[i])) continue;
            return tv_cmp(c, a.u.l->v[i], b.u.l->v[i]);
        }
        return (a.u.l->n > b.u.l->n) - (a.u.l->n < b.u.l->n);
    }
    if (a.t == TV_UNDEF) tv_undef_fail(c, a);
    if (b.t == TV_UNDEF) tv_undef_fail(c, b);
    tmpl_fail(c, "'<' not supported between instances of '%s' and '%s'", tv_type_name(a), tv_type_name(b));
}

const char *tv_type_name(tv v)
{
    switch (v.t) {
    case TV_UNDEF: return "Undefined";
    case TV_NONE: return "NoneType";
    case TV_BOOL: return "bool";
    case TV_INT: return "int";
    case TV_FLOAT: return "float";
    case TV_STR: return "str";
    case TV_LIST: return v.tuple == TL_GEN ? "generator" : v.tuple ? "tuple" : "list";
    case TV_DICT: return "dict";
    case TV_NS: return "Namespace";
    case TV_LOOP: return "LoopContext";
    case TV_MACRO: return "Macro";
    case TV_FUNC: return "function";
    default: return "builtin_function_or_method";
    }
}

_Noreturn void tv_undef_fail(tmpl_ctx *c, tv v)
{
    static const char *const owners[] = {
        [TV_NONE] = "None", [TV_BOOL] = "bool object", [TV_INT] = "int object", [TV_FLOAT] = "float object",
        [TV_STR] = "str object", [TV_LIST] = "list object", [TV_DICT] = "dict object",
        [TV_NS] = "Namespace object", [TV_LOOP] = "LoopContext object",
    };
    if (v.where) c->pos = v.where - 1;
    if (v.owner != TV_UNDEF && v.owner < sizeof owners / sizeof owners[0] && owners[v.owner]) {
        if (v.u.name) tmpl_fail(c, "'%s' has no attribute '%s'", owners[v.owner], v.u.name);
        tmpl_fail(c, "'%s' has no such item", owners[v.owner]);
    }
    if (v.u.name) tmpl_fail(c, "'%s' is undefined", v.u.name);
    tmpl_fail(c, "use of an undefined value");
}

/* ---- printing ---- */

void tv_fmt_float(double f, char out[40])
{
    if (isnan(f)) { strcpy(out, "nan"); return; }
    if (isinf(f)) { strcpy(out, f < 0 ? "-inf" : "inf"); return; }
    /* the shortest %.*e that reads back as f, then Python's layout */
    char e[40];
    int prec;
    for (prec = 0; prec < 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec, f);
        if (strtod(e, NULL) == f) break;
    }
    char digits[24];
    size_t nd = 0;
    const char *p = e;
    bool neg = *p == '-';
    if (neg) p++;
    for (; *p && *p != 'e'; p++) if (*p != '.') digits[nd++] = *p;
    int exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    char *o = out;
    if (neg) *o++ = '-';
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 >= 0) {
            for (int i = 0; i <= exp10; i++) *o++ = (size_t)i < nd ? digits[i] : '0';
            *o++ = '.';
            if ((size_t)exp10 + 1 < nd) for (size_t i = (size_t)exp10 + 1; i < nd; i++) *o++ = digits[i];
            else *o++ = '0';
        } else {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -exp10 - 1; i++) *o++ = '0';
            for (size_t i = 0; i < nd; i++) *o++ = digits[i];
        }
        *o = 0;
    } else {
        *o++ = digits[0];
        if (nd > 1) { *o++ = '.'; for (size_t i = 1; i < nd; i++) *o++ = digits[i]; }
        int x = exp10 < 0 ? -exp10 : exp10;   /* |exp10| <= 324 */
        *o++ = 'e';
        *o++ = exp10 < 0 ? '-' : '+';
        if (x >= 100) *o++ = (char)('0' + x / 100);
        *o++ = (char)('0' + x / 10 % 10);
        *o++ = (char)('0' + x % 10);
        *o = 0;
    }
}

static void write_str_repr(tmpl_ctx *c, tbuf *b, const char *s, size_t n)
{
    bool sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
    char q = sq && !dq ? '"' : '\'';
    tbuf_put(c, b, &q, 1);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = tu_decode(s, n, i, &cp);
        if (k == 1 && (unsigned char)s[i] >= 0x80) {   /* not UTF-8: show the byte */
            tbuf_printf(c, b, "\\x%02x", (unsigned char)s[i]);
        } else if (cp == (uint32_t)q || cp == '\\') {
            char e[2] = { '\\', (char)cp };
            tbuf_put(c, b, e, 2);
        } else if (cp == '\n') tbuf_put(c, b, "\\n", 2);
        else if (cp == '\r') tbuf_put(c, b, "\\r", 2);
        else if (cp == '\t') tbuf_put(c, b, "\\t", 2);
        else if (!tu_isprint(cp)) {
            if (cp < 0x100) tbuf_printf(c, b, "\\x%02x", cp);
            else if (cp < 0x10000) tbuf_printf(c, b, "\\u%04x", cp);
            else tbuf_printf(c, b, "\\U%08x", cp);
        } else tbuf_put(c, b, s + i, k);
        i += k;
    }
    tbuf_put(c, b, &q, 1);
}

static void write_value(tmpl_ctx *c, tbuf *b, tv v, bool repr, int depth)
{
    char num[40];
    if (depth > 1000) tmpl_fail(c, "value nested too deeply to print");
    switch (v.t) {
    case TV_UNDEF: return;
    case TV_NONE: tbuf_put(c, b, "None", 4); return;
    case TV_BOOL: tbuf_puts(c, b, v.u.b ? "True" : "False"); return;
    case TV_INT: tbuf_printf(c, b, "%lld", (long long)v.u.i); return;
    case TV_FLOAT: tv_fmt_float(v.u.f, num); tbuf_puts(c, b, num); return;
    case TV_STR:
        if (repr) write_str_repr(c, b, v.u.s->p, v.u.s->n);
        else tbuf_put(c, b, v.u.s->p, v.u.s->n);
        return;
    case TV_LIST:
        if (v.tuple == TL_GEN) { tbuf_puts(c, b, "<generator object>"); return; }
        tbuf_put(c, b, v.tuple ? "(" : "[", 1);
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) tbuf_put(c, b, ", ", 2);
            write_value(c, b, v.u.l->v[i], true, depth + 1);
        }
        if (v.tuple && v.u.l->n == 1) tbuf_put(c, b, ",", 1);
        tbuf_put(c, b, v.tuple ? ")" : "]", 1);
        tmpl_charge(c, v.u.l->n);
        return;
    case TV_NS:
        tbuf_puts(c, b, "<Namespace ");
        /* fall through */
    case TV_DICT:
        tbuf_put(c, b, "{", 1);
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i) tbuf_put(c, b, ", ", 2);
            write_value(c, b, v.u.d->k[i], true, depth + 1);
            tbuf_put(c, b, ": ", 2);
            write_value(c, b, v.u.d->v[i], true, depth + 1);
        }
        tbuf_put(c, b, "}", 1);
        if (v.t == TV_NS) tbuf_put(c, b, ">", 1);
        tmpl_charge(c, v.u.d->n);
        return;
    case TV_LOOP: tbuf_puts(c, b, "<LoopContext>"); return;
    case TV_MACRO:
        tbuf_printf(c, b, "<Macro '%s'>", v.u.m->def->kind == N_MACRO ? v.u.m->def->name : "caller");
        return;
    default: tbuf_puts(c, b, "<built-in function>"); return;
    }
}

void tv_write_str(tmpl_ctx *c, tbuf *b, tv v) { write_value(c, b, v, false, 0); }
void tv_write_repr(tmpl_ctx *c, tbuf *b, tv v) { write_value(c, b, v, true, 0); }

tv tv_escape(tmpl_ctx *c, tv v)
{
    if (v.t == TV_STR && v.safe) return v;
    tv s = tv_to_str(c, v);
    tbuf b = { 0 };
    size_t run = 0, n = s.u.s->n;
    const char *p = s.u.s->p;
    for (size_t i = 0; i < n; i++) {
        const char *esc;
        switch (p[i]) {
        case '&': esc = "&amp;"; break;
        case '<': esc = "&lt;"; break;
        case '>': esc = "&gt;"; break;
        case '"': esc = "&#34;"; break;
        case '\'': esc = "&#39;"; break;
        default: run++; continue;
        }
        tbuf_put(c, &b, p + i - run, run);
        run = 0;
        tbuf_puts(c, &b, esc);
    }
    tbuf_put(c, &b, p + n - run, run);
    tv out = tbuf_value(c, &b);
    out.safe = 1;
    return out;
}

tv tv_to_str(tmpl_ctx *c, tv v)
{
    if (v.t == TV_STR) return v;
    tbuf b = { 0 };
    tv_write_str(c, &b, v);
    return tbuf_value(c, &b);
}

static void json_str(tmpl_ctx *c, tbuf *b, const char *s, size_t n, bool ascii)
{
    tbuf_put(c, b, "\"", 1);
    size_t run = 0;   /* bytes copied as they are, flushed in one go */
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[16];
        size_t k = 1;
        switch (ch) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (ch < 0x20) { snprintf(tmp, sizeof tmp, "\\u%04x", ch); esc = tmp; }
            else if (ch >= 0x80 && ascii) {
                uint32_t cp;
                k = tu_decode(s, n, i, &cp);
                if (cp >= 0x10000) {
                    cp -= 0x10000;
                    snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
                } else {
                    snprintf(tmp, sizeof tmp, "\\u%04x", cp);
                }
                esc = tmp;
            }
        }
        if (!esc) { run++; i++; continue; }
        tbuf_put(c, b, s + i - run, run);
        run = 0;
        tbuf_puts(c, b, esc);
        i += k;
    }
    tbuf_put(c, b, s + n - run, run);
    tbuf_put(c, b, "\"", 1);
}

static void json_newline(tmpl_ctx *c, tbuf *b, const tjson_opts *o, int level)
{
    tbuf_put(c, b, "\n", 1);
    for (int i = 0; i < level; i++) tbuf_puts(c, b, o->indent);
}

static int key_order(const void *x, const void *y)
{
    const tv *a = *(const tv *const *)x, *b = *(const tv *const *)y;
    size_t n = a->u.s->n < b->u.s->n ? a->u.s->n : b->u.s->n;
    int r = memcmp(a->u.s->p, b->u.s->p, n);
    return r ? r : (a->u.s->n > b->u.s->n) - (a->u.s->n < b->u.s->n);
}

void tv_write_json(tmpl_ctx *c, tbuf *b, tv v, const tjson_opts *o, int level)
{
    char num[40];
    if (level > 1000) tmpl_fail(c, "value nested too deeply for tojson");
    switch (v.t) {
    case TV_NONE: tbuf_put(c, b, "null", 4); return;
    case TV_BOOL: tbuf_puts(c, b, v.u.b ? "true" : "false"); return;
    case TV_INT: tbuf_printf(c, b, "%lld", (long long)v.u.i); return;
    case TV_FLOAT:
        if (isnan(v.u.f)) tbuf_puts(c, b, "NaN");
        else if (isinf(v.u.f)) tbuf_puts(c, b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else { tv_fmt_float(v.u.f, num); tbuf_puts(c, b, num); }
        return;
    case TV_STR: json_str(c, b, v.u.s->p, v.u.s->n, o->ensure_ascii); return;
    case TV_LIST:
        if (v.tuple == TL_GEN) tmpl_fail(c, "Object of type generator is not JSON serializable");
        if (!v.u.l->n) { tbuf_put(c, b, "[]", 2); return; }
        tbuf_put(c, b, "[", 1);
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) tbuf_puts(c, b, o->item_sep);
            if (o->indent) json_newline(c, b, o, level + 1);
            tv_write_json(c, b, v.u.l->v[i], o, level + 1);
        }
        if (o->indent) json_newline(c, b, o, level);
        tbuf_put(c, b, "]", 1);
        tmpl_charge(c, v.u.l->n);
        return;
    case TV_DICT: {
        tdict *d = v.u.d;
        if (!d->n) { tbuf_put(c, b, "{}", 2); return; }
        /* keys become strings as json.dumps makes them */
        tv *keys = tmpl_alloc(&c->a, tmpl_mul(&c->a, d->n, sizeof *keys));
        tv **order = tmpl_alloc(&c->a, tmpl_mul(&c->a, d->n, sizeof *order));
        for (size_t i = 0; i < d->n; i++) {
            tv k = d->k[i];
            if (k.t == TV_STR) keys[i] = k;
            else if (k.t == TV_NONE) keys[i] = tv_cstr(c, "null");
            else if (k.t == TV_BOOL) keys[i] = tv_cstr(c, k.u.b ? "true" : "false");
            else if (k.t == TV_INT || k.t == TV_FLOAT) keys[i] = tv_to_str(c, k);
            else tmpl_fail(c, "keys must be str, int, float, bool or None, not %s", tv_type_name(k));
            order[i] = &keys[i];
        }
        if (o->sort_keys) qsort(order, d->n, sizeof *order, key_order);
        tbuf_put(c, b, "{", 1);
        for (size_t j = 0; j < d->n; j++) {
            size_t i = (size_t)(order[j] - keys);
            if (j) tbuf_puts(c, b, o->item_sep);
            if (o->indent) json_newline(c, b, o, level + 1);
            json_str(c, b, keys[i].u.s->p, keys[i].u.s->n, o->ensure_ascii);
            tbuf_puts(c, b, o->key_sep);
            tv_write_json(c, b, d->v[i], o, level + 1);
        }
        if (o->indent) json_newline(c, b, o, level);
        tbuf_put(c, b, "}", 1);
        tmpl_charge(c, d->n);
        return;
    }
    default:
        tmpl_fail(c, "Object of type %s is not JSON serializable", tv_type_name(v));
    }
}

/* ---- iteration ---- */

tlist *tv_iter(tmpl_ctx *c, tv v)
{
    switch (v.t) {
    case TV_UNDEF: {
        tlist *l = tmpl_alloc(&c->a, sizeof *l);
        return l;
    }
    case TV_LIST: return v.u.l;
    case TV_DICT: {
        tv keys = tv_list(c, v.u.d->n);
        memcpy(keys.u.l->v, v.u.d->k, v.u.d->n * sizeof *v.u.d->k);
        return keys.u.l;
    }
    case TV_STR: {
        const char *p = v.u.s->p;
        size_t n = v.u.s->n;
        tv chars = tv_list(c, tu_count(p, n));
        size_t k = 0;
        uint32_t cp;
        for (size_t i = 0; i < n; k++) {
            size_t len = tu_decode(p, n, i, &cp);
            chars.u.l->v[k] = tv_str(c, p + i, len);
            i += len;
        }
        return chars.u.l;
    }
    default:
        tmpl_fail(c, "'%s' object is not iterable", tv_type_name(v));
    }
}

/* ---- JSON input ---- */

#ifdef MF_HAVE_JANSSON
static tv from_json(tmpl_ctx *c, json_t *j, int depth)
{
    if (depth > 1000) tmpl_fail(c, "input JSON nested too deeply");
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        tv d = tv_dict(c, json_object_size(j));
        const char *key;
        json_t *val;
        json_object_foreach(j, key, val) tv_dict_set(c, d.u.d, tv_cstr(c, key), from_json(c, val, depth + 1));
        return d;
    }
    case JSON_ARRAY: {
        tv l = tv_list(c, json_array_size(j));
        for (size_t i = 0; i < l.u.l->n; i++) l.u.l->v[i] = from_json(c, json_array_get(j, i), depth + 1);
        return l;
    }
    case JSON_STRING: return tv_str(c, json_string_value(j), json_string_length(j));
    case JSON_INTEGER: return tv_int((int64_t)json_integer_value(j));
    case JSON_REAL: return tv_float(json_real_value(j));
    case JSON_TRUE: return tv_bool(true);
    case JSON_FALSE: return tv_bool(false);
    default: return tv_none();
    }
}

tv tv_from_json(tmpl_ctx *c, const char *json, size_t n)
{
    json_error_t je;
    json_t *j = json_loadb(json, n, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
    if (!j) tmpl_throw(&c->err, TMPL_NOPOS, "template variables: invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
    /* the jansson tree is not in the arena: convert, free, then report */
    if (json_typeof(j) != JSON_OBJECT) {
        json_decref(j);
        tmpl_throw(&c->err, TMPL_NOPOS, "template variables: expected a JSON object");
    }
    tmpl_err saved = c->err;
    mf_error *e = c->err.e;
    if (setjmp(c->err.jb)) {
        json_decref(j);
        c->err = saved;
        c->err.e = e;
        longjmp(c->err.jb, 1);
    }
    tv v = from_json(c, j, 0);
    json_decref(j);
    c->err = saved;
    return v;
}
#else
tv tv_from_json(tmpl_ctx *c, const char *json, size_t n)
{
    (void)json;
    (void)n;
    tmpl_throw(&c->err, TMPL_NOPOS, "template variables: moeflash was built without jansson (JSON input unavailable)");
}
#endif
