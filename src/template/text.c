/* text.c — UTF-8 and the Python string semantics templates rely on.
 *
 * Python strings are sequences of code points, so lengths, indices, find
 * positions and character classes here count code points, and whitespace
 * is Python's str.isspace (not C's isspace). Case mapping and character
 * categories come from utf8proc when it is built in, ASCII otherwise.
 * Every function that builds a string allocates its result in the render
 * arena; nothing is modified in place (strings are immutable, as in Python).
 */
#include "template/internal.h"

#include <stdio.h>
#include <string.h>
#ifdef MF_HAVE_UTF8PROC
#include <utf8proc.h>
#endif

size_t tu_decode(const char *s, size_t n, size_t i, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s + i;
    size_t left = n - i;
    if (u[0] < 0x80) { *cp = u[0]; return 1; }
    int len = u[0] >= 0xF0 && u[0] < 0xF5 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC2 && u[0] < 0xE0 ? 2 : 0;
    if (u[0] >= 0xF5) len = 0;
    if (len == 0 || (size_t)len > left) { *cp = u[0]; return 1; }
    uint32_t v = u[0] & (0x7F >> len);
    for (int k = 1; k < len; k++) {
        if ((u[k] & 0xC0) != 0x80) { *cp = u[0]; return 1; }
        v = (v << 6) | (u[k] & 0x3F);
    }
    if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10FFFF))) { *cp = u[0]; return 1; }
    *cp = v;
    return (size_t)len;
}

size_t tu_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t tu_count(const char *s, size_t n)
{
    size_t k = 0;
    uint32_t cp;
    for (size_t i = 0; i < n; i += tu_decode(s, n, i, &cp)) k++;
    return k;
}

size_t tu_offset(const char *s, size_t n, size_t idx)
{
    size_t i = 0;
    uint32_t cp;
    while (idx-- && i < n) i += tu_decode(s, n, i, &cp);
    return i;
}

bool tu_isspace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool tu_isprint(uint32_t c)
{
    if (c == ' ') return true;
#ifdef MF_HAVE_UTF8PROC
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
        return false;
    default:
        return true;
    }
#else
    return !(c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD || tu_isspace(c));
#endif
}

uint32_t tu_upper(uint32_t c)
{
#ifdef MF_HAVE_UTF8PROC
    return (uint32_t)utf8proc_toupper((utf8proc_int32_t)c);
#else
    return c >= 'a' && c <= 'z' ? c - 32 : c;
#endif
}

uint32_t tu_lower(uint32_t c)
{
#ifdef MF_HAVE_UTF8PROC
    return (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
#else
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
#endif
}

bool tu_isalpha(uint32_t c)
{
#ifdef MF_HAVE_UTF8PROC
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
#else
    return (c | 32) - 'a' < 26u;
#endif
}

bool tu_isdigit(uint32_t c)
{
#ifdef MF_HAVE_UTF8PROC
    return utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_ND;
#else
    return c - '0' < 10u;
#endif
}

static bool is_cased(uint32_t c) { return tu_upper(c) != c || tu_lower(c) != c; }

static void put_cp(tmpl_ctx *c, tbuf *b, uint32_t cp)
{
    char u[4];
    tbuf_put(c, b, u, tu_encode(cp, u));
}

/* Python's full case mappings that are not one character to one
 * (SpecialCasing.txt, the common ones): the replacement, or NULL. */
static const char *special_case(uint32_t cp, bool upper)
{
    if (upper) {
        switch (cp) {
        case 0x00DF: return "SS";
        case 0x0149: return "\xCA\xBC" "N";
        case 0x01F0: return "J\xCC\x8C";
        case 0xFB00: return "FF";
        case 0xFB01: return "FI";
        case 0xFB02: return "FL";
        case 0xFB03: return "FFI";
        case 0xFB04: return "FFL";
        case 0xFB05: case 0xFB06: return "ST";
        }
    } else if (cp == 0x0130) {
        return "i\xCC\x87";
    }
    return NULL;
}

tv tu_case(tmpl_ctx *c, tv s, int mode)
{
    tbuf b = { 0 };
    const char *p = s.u.s->p;
    size_t n = s.u.s->n;
    bool prev_cased = false, first = true, word_start = true;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += tu_decode(p, n, i, &cp);
        uint32_t out = cp;
        switch (mode) {
        case 0: out = tu_lower(cp); break;
        case 1: out = tu_upper(cp); break;
        case 2: out = prev_cased ? tu_lower(cp) : tu_upper(cp); prev_cased = is_cased(cp); break;   /* str.title */
        case 3: out = first ? tu_upper(cp) : tu_lower(cp); break;                                 /* capitalize */
        default:   /* jinja's title filter: words begin after - ( { [ < and whitespace */
            out = word_start ? tu_upper(cp) : tu_lower(cp);
            word_start = tu_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
            break;
        }
        first = false;
        const char *sp = (mode == 0 || mode == 1) ? special_case(cp, mode == 1) : NULL;
        if (sp) tbuf_puts(c, &b, sp);
        else put_cp(c, &b, out);
    }
    return tbuf_value(c, &b);
}

/* Is cp in the set of characters of chars (a string), or whitespace when
 * chars is none/undefined? */
static bool in_set(tv chars, uint32_t cp)
{
    if (chars.t != TV_STR) return tu_isspace(cp);
    const char *p = chars.u.s->p;
    size_t n = chars.u.s->n;
    for (size_t i = 0; i < n;) {
        uint32_t x;
        i += tu_decode(p, n, i, &x);
        if (x == cp) return true;
    }
    return false;
}

tv tu_strip(tmpl_ctx *c, tv s, tv chars, int where)
{
    if (chars.t != TV_STR && chars.t != TV_NONE && chars.t != TV_UNDEF)
        tmpl_fail(c, "strip arg must be None or str, not %s", tv_type_name(chars));
    const char *p = s.u.s->p;
    size_t n = s.u.s->n, from = 0, to = n;
    if (where & 1) {
        while (from < n) {
            uint32_t cp;
            size_t k = tu_decode(p, n, from, &cp);
            if (!in_set(chars, cp)) break;
            from += k;
        }
    }
    if (where & 2) {
        size_t last = from;
        for (size_t i = from; i < n;) {
            uint32_t cp;
            i += tu_decode(p, n, i, &cp);
            if (!in_set(chars, cp)) last = i;
        }
        to = last;
    }
    tmpl_charge(c, n / 64);
    if (from == 0 && to == n) return s;
    return tv_str(c, p + from, to - from);
}

static bool match_at(const char *p, size_t n, size_t i, const char *q, size_t m)
{
    return i + m <= n && memcmp(p + i, q, m) == 0;
}

tv tu_split(tmpl_ctx *c, tv s, tv sep, int64_t maxsplit, bool right)
{
    const char *p = s.u.s->p;
    size_t n = s.u.s->n;
    tmpl_charge(c, n / 16);
    /* pieces as (start, end) byte ranges, collected left to right */
    size_t cap = 8, np = 0;
    size_t *rs = tmpl_alloc(&c->a, cap * 2 * sizeof *rs);
#define PIECE(a_, b_) do { if (np == cap) { rs = tmpl_realloc(&c->a, rs, cap * 2 * sizeof *rs, tmpl_mul(&c->a, cap, 4 * sizeof *rs)); cap *= 2; } \
                           rs[2 * np] = (a_); rs[2 * np + 1] = (b_); np++; } while (0)
    if (sep.t == TV_NONE || sep.t == TV_UNDEF) {
        /* runs of whitespace separate; no empty pieces; after maxsplit
         * splits the rest is one piece as it stands */
        int64_t splits = 0;
        uint32_t cp;
        if (!right) {
            size_t i = 0;
            for (;;) {
                size_t k;
                while (i < n && (k = tu_decode(p, n, i, &cp), tu_isspace(cp))) i += k;
                if (i >= n) break;
                if (maxsplit >= 0 && splits == maxsplit) { PIECE(i, n); break; }
                size_t st = i;
                while (i < n && (k = tu_decode(p, n, i, &cp), !tu_isspace(cp))) i += k;
                PIECE(st, i);
                splits++;
            }
        } else {
            size_t end = n;
            for (;;) {
                while (end > 0) {   /* skip whitespace leftwards */
                    size_t b0 = end - 1;
                    while (b0 > 0 && ((unsigned char)p[b0] & 0xC0) == 0x80) b0--;
                    tu_decode(p, n, b0, &cp);
                    if (!tu_isspace(cp)) break;
                    end = b0;
                }
                if (end == 0) break;
                if (maxsplit >= 0 && splits == maxsplit) { PIECE(0, end); break; }
                size_t st = end;
                while (st > 0) {
                    size_t b0 = st - 1;
                    while (b0 > 0 && ((unsigned char)p[b0] & 0xC0) == 0x80) b0--;
                    tu_decode(p, n, b0, &cp);
                    if (tu_isspace(cp)) break;
                    st = b0;
                }
                PIECE(st, end);
                splits++;
                end = st;
            }
        }
    } else {
        if (sep.t != TV_STR) tmpl_fail(c, "must be str or None, not %s", tv_type_name(sep));
        const char *q = sep.u.s->p;
        size_t m = sep.u.s->n;
        if (m == 0) tmpl_fail(c, "empty separator");
        int64_t splits = 0;
        if (!right) {
            size_t st = 0, i = 0;
            while (i + m <= n && (maxsplit < 0 || splits < maxsplit)) {
                if (match_at(p, n, i, q, m)) { PIECE(st, i); i += m; st = i; splits++; }
                else i++;
            }
            PIECE(st, n);
        } else {
            size_t end = n;
            size_t i = n >= m ? n - m + 1 : 0;
            while (i > 0 && (maxsplit < 0 || splits < maxsplit)) {
                i--;
                if (i + m <= end && match_at(p, n, i, q, m)) { PIECE(i + m, end); end = i; splits++; }
            }
            PIECE(0, end);
        }
    }
#undef PIECE
    tv out = tv_list(c, np);
    for (size_t k = 0; k < np; k++) {
        size_t idx = right ? np - 1 - k : k;   /* right splits were collected from the end */
        out.u.l->v[k] = tv_str(c, p + rs[2 * idx], rs[2 * idx + 1] - rs[2 * idx]);
    }
    return out;
}

tv tu_replace(tmpl_ctx *c, tv s, tv old, tv new_, int64_t count)
{
    if (old.t != TV_STR || new_.t != TV_STR)
        tmpl_fail(c, "replace() arguments must be str, not %s and %s", tv_type_name(old), tv_type_name(new_));
    const char *p = s.u.s->p, *o = old.u.s->p, *r = new_.u.s->p;
    size_t n = s.u.s->n, m = old.u.s->n, rn = new_.u.s->n;
    tmpl_charge(c, n / 16);
    tbuf b = { 0 };
    int64_t done = 0;
    if (m == 0) {   /* Python inserts the replacement between all characters */
        size_t i = 0;
        for (;;) {
            if (count < 0 || done < count) { tbuf_put(c, &b, r, rn); done++; }
            if (i >= n) break;
            uint32_t cp;
            size_t k = tu_decode(p, n, i, &cp);
            tbuf_put(c, &b, p + i, k);
            i += k;
        }
        return tbuf_value(c, &b);
    }
    size_t i = 0, st = 0;
    while (i + m <= n && (count < 0 || done < count)) {
        if (match_at(p, n, i, o, m)) {
            tbuf_put(c, &b, p + st, i - st);
            tbuf_put(c, &b, r, rn);
            i += m;
            st = i;
            done++;
        } else {
            i++;
        }
    }
    if (!done) return s;
    tbuf_put(c, &b, p + st, n - st);
    return tbuf_value(c, &b);
}

int64_t tu_find(tmpl_ctx *c, tv s, tv sub, bool right)
{
    if (sub.t != TV_STR) tmpl_fail(c, "must be str, not %s", tv_type_name(sub));
    const char *p = s.u.s->p, *q = sub.u.s->p;
    size_t n = s.u.s->n, m = sub.u.s->n;
    tmpl_charge(c, n / 16);
    if (m > n) return -1;
    size_t at = SIZE_MAX;
    if (!right) {
        for (size_t i = 0; i + m <= n; i++) if (match_at(p, n, i, q, m)) { at = i; break; }
    } else {
        for (size_t i = n - m + 1; i-- > 0;) if (match_at(p, n, i, q, m)) { at = i; break; }
    }
    return at == SIZE_MAX ? -1 : (int64_t)tu_count(p, at);
}

int64_t tu_count_sub(tmpl_ctx *c, tv s, tv sub)
{
    if (sub.t != TV_STR) tmpl_fail(c, "must be str, not %s", tv_type_name(sub));
    const char *p = s.u.s->p, *q = sub.u.s->p;
    size_t n = s.u.s->n, m = sub.u.s->n;
    tmpl_charge(c, n / 16);
    if (m == 0) return (int64_t)tu_count(p, n) + 1;
    int64_t k = 0;
    for (size_t i = 0; i + m <= n;) {
        if (match_at(p, n, i, q, m)) { k++; i += m; }
        else i++;
    }
    return k;
}

/* ---- formatting ---- */

/* Pads text to width (in characters) with fill; align '<', '>' or '^'. */
static void put_padded(tmpl_ctx *c, tbuf *b, const char *s, size_t n, size_t width, char align, const char *fill)
{
    size_t len = tu_count(s, n), pad = width > len ? width - len : 0;
    size_t left = align == '>' ? pad : align == '^' ? pad / 2 : 0;
    if (width > (64u << 20)) tmpl_fail(c, "format width too large");
    for (size_t k = 0; k < left; k++) tbuf_puts(c, b, fill);
    tbuf_put(c, b, s, n);
    for (size_t k = left; k < pad; k++) tbuf_puts(c, b, fill);
}

/* One value with a C-style conversion: flags, width, precision, conv. */
static void put_conv(tmpl_ctx *c, tbuf *b, tv v, const char *flags, int width, int prec, char conv)
{
    char fmt[32], out[512];
    if (conv == 's' || conv == 'r' || conv == 'a') {
        tbuf t = { 0 };
        if (conv == 's') tv_write_str(c, &t, v); else tv_write_repr(c, &t, v);
        size_t n = t.n;
        if (prec >= 0) n = tu_offset(t.p ? t.p : "", t.n, (size_t)prec);
        put_padded(c, b, t.p ? t.p : "", n, width > 0 ? (size_t)width : 0, strchr(flags, '-') ? '<' : '>', " ");
        return;
    }
    if (conv == 'c') {
        char u[4];
        if (v.t == TV_STR) { tbuf_put(c, b, v.u.s->p, v.u.s->n); return; }
        if (v.t != TV_INT || v.u.i < 0 || v.u.i > 0x10FFFF) tmpl_fail(c, "%%c requires an int or a char");
        tbuf_put(c, b, u, tu_encode((uint32_t)v.u.i, u));
        return;
    }
    if (!tv_is_num(v)) tmpl_fail(c, "%%%c format: a real number is required, not %s", conv, tv_type_name(v));
    if (width > 1000 || prec > 100) tmpl_fail(c, "format width or precision too large");
    bool is_int = conv == 'd' || conv == 'i' || conv == 'u' || conv == 'x' || conv == 'X' || conv == 'o';
    if (is_int) {
        int64_t i = v.t == TV_FLOAT ? (int64_t)v.u.f : v.t == TV_BOOL ? v.u.b : v.u.i;
        snprintf(fmt, sizeof fmt, "%%%s*.*ll%c", flags, conv == 'i' || conv == 'u' ? 'd' : conv);
        snprintf(out, sizeof out, fmt, width < 0 ? 0 : width, prec < 0 ? 1 : prec, (long long)i);
    } else {
        snprintf(fmt, sizeof fmt, "%%%s*.*%c", flags, conv);
        snprintf(out, sizeof out, fmt, width < 0 ? 0 : width, prec < 0 ? 6 : prec, tv_num(v));
    }
    tbuf_puts(c, b, out);
}

tv tu_format_percent(tmpl_ctx *c, tv fmt, tv args)
{
    const char *p = fmt.u.s->p;
    size_t n = fmt.u.s->n, next = 0;
    const tv *items = &args;
    size_t nitems = 1;
    if (args.t == TV_LIST && args.tuple == TL_TUPLE) { items = args.u.l->v; nitems = args.u.l->n; }
    tbuf b = { 0 };
    for (size_t i = 0; i < n;) {
        if (p[i] != '%') {
            size_t j = i;
            while (j < n && p[j] != '%') j++;
            tbuf_put(c, &b, p + i, j - i);
            i = j;
            continue;
        }
        i++;
        if (i < n && p[i] == '%') { tbuf_put(c, &b, "%", 1); i++; continue; }
        tv v;
        bool have = false;
        if (i < n && p[i] == '(') {   /* %(key)s */
            size_t j = i + 1;
            while (j < n && p[j] != ')') j++;
            if (j >= n || args.t != TV_DICT) tmpl_fail(c, "format requires a mapping");
            tv key = tv_str(c, p + i + 1, j - i - 1);
            tv *found = tv_dict_get(args.u.d, key);
            if (!found) tmpl_fail(c, "format key '%s' not found", key.u.s->p);
            v = *found;
            have = true;
            i = j + 1;
        }
        char flags[8];
        size_t nf = 0;
        while (i < n && strchr("-+ 0#", p[i]) && nf < sizeof flags - 1) flags[nf++] = p[i++];
        flags[nf] = 0;
        int width = -1, prec = -1;
        while (i < n && p[i] >= '0' && p[i] <= '9') { width = (width < 0 ? 0 : width) * 10 + (p[i++] - '0'); if (width > 100000) width = 100000; }
        if (i < n && p[i] == '.') {
            prec = 0;
            i++;
            while (i < n && p[i] >= '0' && p[i] <= '9') { prec = prec * 10 + (p[i++] - '0'); if (prec > 100000) prec = 100000; }
        }
        if (i >= n || !strchr("sradiuxXofFeEgGc", p[i])) tmpl_fail(c, "unsupported format character in '%%' format");
        char conv = p[i++];
        if (!have) {
            if (next >= nitems) tmpl_fail(c, "not enough arguments for format string");
            v = items[next++];
        }
        if (fmt.safe && v.t == TV_STR) v = tv_escape(c, v);   /* Markup % args escapes them */
        put_conv(c, &b, v, flags, width, prec, conv);
    }
    if (args.t != TV_DICT && next < nitems) tmpl_fail(c, "not all arguments converted during string formatting");
    tv out = tbuf_value(c, &b);
    out.safe = fmt.safe;
    return out;
}

/* Python's format-spec mini-language, the common part:
 * [[fill]align][sign][0][width][,][.precision][type]. */
static void put_spec(tmpl_ctx *c, tbuf *b, tv v, const char *s, size_t n)
{
    char fill[5] = " ", align = 0, sign = 0, type = 0;
    size_t i = 0;
    uint32_t cp;
    size_t k = n ? tu_decode(s, n, 0, &cp) : 0;
    if (n > k && strchr("<>=^", s[k])) { memcpy(fill, s, k); fill[k] = 0; align = s[k]; i = k + 1; }
    else if (n && strchr("<>=^", s[0])) { align = s[0]; i = 1; }
    if (i < n && strchr("+- ", s[i])) sign = s[i++];
    if (i < n && s[i] == '0') { if (!align) { align = '='; fill[0] = '0'; fill[1] = 0; } i++; }
    int width = 0, prec = -1;
    while (i < n && s[i] >= '0' && s[i] <= '9') { width = width * 10 + (s[i++] - '0'); if (width > 100000) width = 100000; }
    if (i < n && s[i] == ',') i++;
    if (i < n && s[i] == '.') { prec = 0; i++; while (i < n && s[i] >= '0' && s[i] <= '9') { prec = prec * 10 + (s[i++] - '0'); if (prec > 100) prec = 100; } }
    if (i < n) type = s[i++];
    if (i != n) tmpl_fail(c, "unsupported format specification");
    tbuf t = { 0 };
    if (v.t == TV_STR && (!type || type == 's')) {
        size_t len = prec >= 0 ? tu_offset(v.u.s->p, v.u.s->n, (size_t)prec) : v.u.s->n;
        tbuf_put(c, &t, v.u.s->p, len);
    } else if (tv_is_num(v) && v.t != TV_BOOL) {
        char flags[3] = { 0 };
        if (sign && sign != '-') flags[0] = sign;
        char conv = type ? type : (v.t == TV_INT ? 'd' : 0);
        if (!conv) { tv_write_str(c, &t, v); }     /* no type on a float: str() */
        else if (conv == 'n') put_conv(c, &t, v, flags, -1, prec, v.t == TV_INT ? 'd' : 'g');
        else if (conv == '%') { put_conv(c, &t, tv_float(tv_num(v) * 100), flags, -1, prec, 'f'); tbuf_put(c, &t, "%", 1); }
        else put_conv(c, &t, v, flags, -1, prec, conv);
        if (!align) align = '>';
    } else {
        if (type && type != 's') tmpl_fail(c, "unknown format code '%c' for %s", type, tv_type_name(v));
        tv_write_str(c, &t, v);
    }
    if (align == '=') align = '>';
    put_padded(c, b, t.p ? t.p : "", t.n, (size_t)width, align ? align : '<', fill);
}

tv tu_format_braces(tmpl_ctx *c, tv fmt, const tv *args, const char **kw, size_t n)
{
    const char *p = fmt.u.s->p;
    size_t len = fmt.u.s->n, auto_idx = 0;
    tbuf b = { 0 };
    for (size_t i = 0; i < len;) {
        char ch = p[i];
        if (ch == '}' ) {
            if (i + 1 < len && p[i + 1] == '}') { tbuf_put(c, &b, "}", 1); i += 2; continue; }
            tmpl_fail(c, "single '}' encountered in format string");
        }
        if (ch != '{') {
            size_t j = i;
            while (j < len && p[j] != '{' && p[j] != '}') j++;
            tbuf_put(c, &b, p + i, j - i);
            i = j;
            continue;
        }
        if (i + 1 < len && p[i + 1] == '{') { tbuf_put(c, &b, "{", 1); i += 2; continue; }
        size_t j = i + 1;
        while (j < len && p[j] != '}') j++;
        if (j >= len) tmpl_fail(c, "single '{' encountered in format string");
        /* field: name [!conv] [:spec] */
        size_t f = i + 1, fe = f;
        while (fe < j && p[fe] != '!' && p[fe] != ':') fe++;
        char conv = 0;
        size_t spec = j;
        if (fe < j && p[fe] == '!') { conv = fe + 1 < j ? p[fe + 1] : 0; spec = fe + 2; }
        else if (fe < j) spec = fe;
        if (spec < j && p[spec] == ':') spec++;
        tv v;
        if (fe == f) {
            if (auto_idx >= n || kw[auto_idx]) tmpl_fail(c, "replacement index %zu out of range for positional args", auto_idx);
            v = args[auto_idx++];
        } else if (p[f] >= '0' && p[f] <= '9') {
            size_t idx = 0;
            for (size_t q = f; q < fe; q++) idx = idx * 10 + (size_t)(p[q] - '0');
            if (idx >= n || kw[idx]) tmpl_fail(c, "replacement index %zu out of range for positional args", idx);
            v = args[idx];
        } else {
            size_t q = 0;
            for (; q < n; q++) if (kw[q] && strlen(kw[q]) == fe - f && !memcmp(kw[q], p + f, fe - f)) break;
            if (q == n) tmpl_fail(c, "format: no argument named '%.*s'", (int)(fe - f), p + f);
            v = args[q];
        }
        if (conv == 'r') { tbuf t = { 0 }; tv_write_repr(c, &t, v); v = tbuf_value(c, &t); }
        else if (conv == 's') v = tv_to_str(c, v);
        else if (conv) tmpl_fail(c, "unknown conversion specifier '%c'", conv);
        put_spec(c, &b, v, p + spec, j > spec ? j - spec : 0);
        i = j + 1;
    }
    return tbuf_value(c, &b);
}
