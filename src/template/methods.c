/* methods.c — attribute and item access, calls, the globals, and the
 * Python methods of str, dict and list that templates call.
 *
 * Lookups follow jinja2's sandbox: `x.name` prefers a method of x's type
 * over a dict key of that name (so `d.items` is the method), `x['name']`
 * prefers the key; anything missing is undefined, which only fails when it
 * is used. Mutating methods (append, pop, update) do not exist, as in
 * Hugging Face's ImmutableSandboxedEnvironment; range() is capped at
 * 100000 items like the sandbox's.
 */
#include "template/internal.h"

#include <string.h>
#include <time.h>

enum {
    /* str */
    M_STARTSWITH, M_ENDSWITH, M_SPLIT, M_RSPLIT, M_STRIP, M_LSTRIP, M_RSTRIP, M_REPLACE,
    M_UPPER, M_LOWER, M_TITLE, M_CAPITALIZE, M_FIND, M_RFIND, M_INDEX, M_RINDEX, M_COUNT,
    M_FORMAT, M_JOIN, M_SPLITLINES, M_ISDIGIT, M_ISALPHA, M_ISALNUM, M_ISSPACE, M_ISUPPER,
    M_ISLOWER, M_CENTER, M_LJUST, M_RJUST, M_REMOVEPREFIX, M_REMOVESUFFIX,
    /* dict */
    M_GET, M_ITEMS, M_KEYS, M_VALUES,
    /* list */
    M_LINDEX, M_LCOUNT,
    /* loop */
    M_CYCLE, M_CHANGED,
};

static const struct { uint8_t type; const char *name; int id; } methods[] = {
    { TV_STR, "startswith", M_STARTSWITH }, { TV_STR, "endswith", M_ENDSWITH }, { TV_STR, "split", M_SPLIT },
    { TV_STR, "rsplit", M_RSPLIT }, { TV_STR, "strip", M_STRIP }, { TV_STR, "lstrip", M_LSTRIP },
    { TV_STR, "rstrip", M_RSTRIP }, { TV_STR, "replace", M_REPLACE }, { TV_STR, "upper", M_UPPER },
    { TV_STR, "lower", M_LOWER }, { TV_STR, "title", M_TITLE }, { TV_STR, "capitalize", M_CAPITALIZE },
    { TV_STR, "find", M_FIND }, { TV_STR, "rfind", M_RFIND }, { TV_STR, "index", M_INDEX },
    { TV_STR, "rindex", M_RINDEX }, { TV_STR, "count", M_COUNT }, { TV_STR, "format", M_FORMAT },
    { TV_STR, "join", M_JOIN }, { TV_STR, "splitlines", M_SPLITLINES }, { TV_STR, "isdigit", M_ISDIGIT },
    { TV_STR, "isalpha", M_ISALPHA }, { TV_STR, "isalnum", M_ISALNUM }, { TV_STR, "isspace", M_ISSPACE },
    { TV_STR, "isupper", M_ISUPPER }, { TV_STR, "islower", M_ISLOWER }, { TV_STR, "center", M_CENTER },
    { TV_STR, "ljust", M_LJUST }, { TV_STR, "rjust", M_RJUST }, { TV_STR, "removeprefix", M_REMOVEPREFIX },
    { TV_STR, "removesuffix", M_REMOVESUFFIX },
    { TV_DICT, "get", M_GET }, { TV_DICT, "items", M_ITEMS }, { TV_DICT, "keys", M_KEYS },
    { TV_DICT, "values", M_VALUES },
    { TV_LIST, "index", M_LINDEX }, { TV_LIST, "count", M_LCOUNT },
    { TV_LOOP, "cycle", M_CYCLE }, { TV_LOOP, "changed", M_CHANGED },
};

enum { F_RANGE, F_NAMESPACE, F_DICT, F_RAISE, F_STRFTIME };
static const char *const globals[] = { "range", "namespace", "dict", "raise_exception", "strftime_now" };

static tv bound(tmpl_ctx *c, tv self, int id)
{
    tmethod *m = tmpl_alloc(&c->a, sizeof *m);
    m->self = self;
    m->id = id;
    tv v = { .t = TV_METHOD };
    v.u.meth = m;
    return v;
}

static int method_id(uint8_t type, const char *name)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].type == type && !strcmp(methods[i].name, name)) return methods[i].id;
    return -1;
}

tv tmpl_global(tmpl_ctx *c, const char *name)
{
    for (int i = 0; i < (int)(sizeof globals / sizeof globals[0]); i++)
        if (!strcmp(globals[i], name)) { tv v = { .t = TV_FUNC }; v.u.fn = i; return v; }
    return tv_undef(name, TV_UNDEF);
}

static tv loop_attr(tmpl_ctx *c, tloop *l, const char *name)
{
    size_t i = l->i, n = l->items->n;
    if (!strcmp(name, "index")) return tv_int((int64_t)i + 1);
    if (!strcmp(name, "index0")) return tv_int((int64_t)i);
    if (!strcmp(name, "revindex")) return tv_int((int64_t)(n - i));
    if (!strcmp(name, "revindex0")) return tv_int((int64_t)(n - i - 1));
    if (!strcmp(name, "first")) return tv_bool(i == 0);
    if (!strcmp(name, "last")) return tv_bool(i + 1 == n);
    if (!strcmp(name, "length")) return tv_int((int64_t)n);
    if (!strcmp(name, "depth")) return tv_int(l->depth);
    if (!strcmp(name, "depth0")) return tv_int(l->depth - 1);
    if (!strcmp(name, "previtem")) return i ? l->items->v[i - 1] : tv_undef("previtem", TV_LOOP);
    if (!strcmp(name, "nextitem")) return i + 1 < n ? l->items->v[i + 1] : tv_undef("nextitem", TV_LOOP);
    tv self = { .t = TV_LOOP };
    self.u.loop = l;
    if (!strcmp(name, "cycle")) return bound(c, self, M_CYCLE);
    if (!strcmp(name, "changed")) return bound(c, self, M_CHANGED);
    return tv_undef(name, TV_LOOP);
}

tv tmpl_getattr(tmpl_ctx *c, tv obj, const char *name)
{
    int id;
    switch (obj.t) {
    case TV_DICT:
        if ((id = method_id(TV_DICT, name)) >= 0) return bound(c, obj, id);
        /* fall through */
    case TV_NS: {
        tv *v = tv_dict_gets(obj.u.d, name);
        return v ? *v : tv_undef(name, obj.t);
    }
    case TV_STR: case TV_LIST:
        if ((id = method_id(obj.t, name)) >= 0) return bound(c, obj, id);
        return tv_undef(name, obj.t);
    case TV_LOOP:
        return loop_attr(c, obj.u.loop, name);
    default:
        return tv_undef(name, obj.t);
    }
}

/* Python's index rules: negatives count from the end; -1 if out of range. */
static int64_t norm_index(tv key, size_t len)
{
    int64_t i = key.t == TV_BOOL ? key.u.b : key.u.i;
    if (i < 0) i += (int64_t)len;
    return i < 0 || i >= (int64_t)len ? -1 : i;
}

tv tmpl_getitem(tmpl_ctx *c, tv obj, tv key)
{
    bool intkey = key.t == TV_INT || key.t == TV_BOOL;
    switch (obj.t) {
    case TV_DICT: case TV_NS: {
        tv *v = tv_dict_get(obj.u.d, key);
        if (v) return *v;
        break;
    }
    case TV_LIST:
        if (intkey && obj.tuple != TL_GEN) {
            int64_t i = norm_index(key, obj.u.l->n);
            return i < 0 ? tv_undef(NULL, TV_LIST) : obj.u.l->v[i];
        }
        break;
    case TV_STR:
        if (intkey) {
            const char *p = obj.u.s->p;
            size_t n = obj.u.s->n;
            int64_t i = norm_index(key, tu_count(p, n));
            if (i < 0) return tv_undef(NULL, TV_STR);
            size_t at = tu_offset(p, n, (size_t)i);
            uint32_t cp;
            return tv_str(c, p + at, tu_decode(p, n, at, &cp));
        }
        break;
    default:
        break;
    }
    if (key.t == TV_STR) {   /* jinja falls back to the attribute */
        tv v = tmpl_getattr(c, obj, key.u.s->p);
        if (v.t == TV_UNDEF && !v.u.name) v.u.name = key.u.s->p;
        return v;
    }
    return tv_undef(NULL, obj.t);
}

static int64_t slice_arg(tmpl_ctx *c, tv v, int64_t def)
{
    if (v.t == TV_NONE || v.t == TV_UNDEF) return def;
    if (v.t == TV_INT) return v.u.i;
    if (v.t == TV_BOOL) return v.u.b;
    tmpl_fail(c, "slice indices must be integers or None, not %s", tv_type_name(v));
}

tv tmpl_slice(tmpl_ctx *c, tv obj, tv start, tv stop, tv step)
{
    if (obj.t == TV_LIST && obj.tuple == TL_GEN) return tv_undef(NULL, TV_LIST);   /* as jinja's getitem */
    if (obj.t != TV_LIST && obj.t != TV_STR) tmpl_fail(c, "'%s' object is not subscriptable", tv_type_name(obj));
    bool str = obj.t == TV_STR;
    int64_t len = str ? (int64_t)tu_count(obj.u.s->p, obj.u.s->n) : (int64_t)obj.u.l->n;
    int64_t st = slice_arg(c, step, 1);
    if (st == 0) tmpl_fail(c, "slice step cannot be zero");
    if (st == INT64_MIN) st = -INT64_MAX;
    int64_t lo = st < 0 ? -1 : 0, hi = st < 0 ? len - 1 : len;
    int64_t b = slice_arg(c, start, st < 0 ? hi : lo), e = slice_arg(c, stop, st < 0 ? lo : hi);
    if (start.t == TV_INT || start.t == TV_BOOL) { if (b < 0) b += len; b = b < lo ? lo : b > hi ? hi : b; }
    if (stop.t == TV_INT || stop.t == TV_BOOL) { if (e < 0) e += len; e = e < lo ? lo : e > hi ? hi : e; }
    size_t count = 0;
    if (st > 0 && e > b) count = (size_t)((e - b + st - 1) / st);
    if (st < 0 && b > e) count = (size_t)((b - e + (-st) - 1) / (-st));
    tmpl_charge(c, count / 16);
    if (!str) {
        tv out = tv_list(c, count);
        for (size_t k = 0; k < count; k++) out.u.l->v[k] = obj.u.l->v[b + (int64_t)k * st];
        out.tuple = obj.tuple;
        return out;
    }
    const char *p = obj.u.s->p;
    size_t n = obj.u.s->n;
    if (st == 1) {
        size_t from = tu_offset(p, n, (size_t)b);
        return tv_str(c, p + from, count ? tu_offset(p + from, n - from, count) : 0);
    }
    size_t *offs = tmpl_alloc(&c->a, tmpl_mul(&c->a, (size_t)len + 1, sizeof *offs));
    uint32_t cp;
    size_t k = 0;
    for (size_t i = 0; i < n; k++) { offs[k] = i; i += tu_decode(p, n, i, &cp); }
    offs[k] = n;
    tbuf out = { 0 };
    for (size_t k = 0; k < count; k++) {
        size_t i = (size_t)(b + (int64_t)k * st);
        tbuf_put(c, &out, p + offs[i], offs[i + 1] - offs[i]);
    }
    return tbuf_value(c, &out);
}

bool tmpl_contains(tmpl_ctx *c, tv hay, tv needle)
{
    switch (hay.t) {
    case TV_STR:
        if (needle.t != TV_STR) {
            if (needle.t == TV_UNDEF) tv_undef_fail(c, needle);
            tmpl_fail(c, "'in <string>' requires string as left operand, not %s", tv_type_name(needle));
        }
        return tu_find(c, hay, needle, false) >= 0;
    case TV_LIST:
        tmpl_charge(c, hay.u.l->n / 16);
        for (size_t i = 0; i < hay.u.l->n; i++) if (tv_eq(hay.u.l->v[i], needle)) return true;
        return false;
    case TV_DICT: case TV_NS:
        return tv_dict_get(hay.u.d, needle) != NULL;
    case TV_UNDEF:
        return false;
    default:
        tmpl_fail(c, "argument of type '%s' is not iterable", tv_type_name(hay));
    }
}

/* ---- calls ---- */

tv targ(const targs *a, size_t i, const char *kw, tv def)
{
    size_t pos = 0;
    for (size_t k = 0; k < a->n; k++) {
        if (a->kw[k]) { if (kw && !strcmp(a->kw[k], kw)) return a->v[k]; }
        else if (pos++ == i) return a->v[k];
    }
    return def;
}

static size_t npos(const targs *a)
{
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++) k += !a->kw[i];
    return k;
}

static tv need_str(tmpl_ctx *c, tv v, const char *what)
{
    if (v.t != TV_STR) {
        if (v.t == TV_UNDEF) tv_undef_fail(c, v);
        tmpl_fail(c, "%s must be str, not %s", what, tv_type_name(v));
    }
    return v;
}

static int64_t need_int(tmpl_ctx *c, tv v, const char *what)
{
    if (v.t == TV_INT) return v.u.i;
    if (v.t == TV_BOOL) return v.u.b;
    if (v.t == TV_UNDEF) tv_undef_fail(c, v);
    tmpl_fail(c, "%s must be an integer, not %s", what, tv_type_name(v));
}

static bool affix(tmpl_ctx *c, tv s, tv arg, bool end)
{
    if (arg.t == TV_LIST && arg.tuple == TL_TUPLE) {
        for (size_t i = 0; i < arg.u.l->n; i++) if (affix(c, s, arg.u.l->v[i], end)) return true;
        return false;
    }
    if (arg.t != TV_STR)
        tmpl_fail(c, "%s first arg must be str or a tuple of str, not %s", end ? "endswith" : "startswith", tv_type_name(arg));
    size_t n = s.u.s->n, m = arg.u.s->n;
    return m <= n && !memcmp(s.u.s->p + (end ? n - m : 0), arg.u.s->p, m);
}

/* Python's str.splitlines line boundaries. */
static size_t line_break(const char *p, size_t n, size_t i)
{
    uint32_t cp;
    size_t k = tu_decode(p, n, i, &cp);
    if (cp == '\r' && i + 1 < n && p[i + 1] == '\n') return 2;
    if (cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || (cp >= 0x1C && cp <= 0x1E) ||
        cp == 0x85 || cp == 0x2028 || cp == 0x2029) return k;
    return 0;
}

tv tmpl_splitlines(tmpl_ctx *c, tv s, bool keepends)
{
    const char *p = s.u.s->p;
    size_t n = s.u.s->n, st = 0, count = 0;
    for (size_t i = 0; i < n;) {
        size_t k = line_break(p, n, i);
        if (k) { count++; i += k; st = i; }
        else { uint32_t cp; i += tu_decode(p, n, i, &cp); }
    }
    if (st < n) count++;
    tv out = tv_list(c, count);
    size_t j = 0;
    st = 0;
    for (size_t i = 0; i < n;) {
        size_t k = line_break(p, n, i);
        if (k) { out.u.l->v[j++] = tv_str(c, p + st, i - st + (keepends ? k : 0)); i += k; st = i; }
        else { uint32_t cp; i += tu_decode(p, n, i, &cp); }
    }
    if (st < n) out.u.l->v[j++] = tv_str(c, p + st, n - st);
    return out;
}

static bool str_all(tv s, int kind)
{
    const char *p = s.u.s->p;
    size_t n = s.u.s->n;
    if (!n) return false;
    bool cased = false;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += tu_decode(p, n, i, &cp);
        switch (kind) {
        case M_ISDIGIT: if (!tu_isdigit(cp)) return false; break;
        case M_ISALPHA: if (!tu_isalpha(cp)) return false; break;
        case M_ISALNUM: if (!tu_isalpha(cp) && !tu_isdigit(cp)) return false; break;
        case M_ISSPACE: if (!tu_isspace(cp)) return false; break;
        case M_ISUPPER: if (tu_lower(cp) != cp && tu_upper(cp) == cp) cased = true; else if (tu_upper(cp) != cp) return false; break;
        case M_ISLOWER: if (tu_upper(cp) != cp && tu_lower(cp) == cp) cased = true; else if (tu_lower(cp) != cp) return false; break;
        }
    }
    return kind == M_ISUPPER || kind == M_ISLOWER ? cased : true;
}

tv tmpl_pad(tmpl_ctx *c, tv s, int64_t width, tv fill, char align)
{
    const char *f = " ";
    if (fill.t == TV_STR) {
        if (tu_count(fill.u.s->p, fill.u.s->n) != 1) tmpl_fail(c, "the fill character must be exactly one character long");
        f = fill.u.s->p;
    }
    int64_t len = (int64_t)tu_count(s.u.s->p, s.u.s->n);
    if (width <= len) return s;
    if (width > (int64_t)(c->lim.max_output)) tmpl_fail(c, "padding width too large");
    int64_t pad = width - len, left = align == '>' ? pad : align == '^' ? pad / 2 + (pad & width & 1) : 0;
    tbuf b = { 0 };
    for (int64_t i = 0; i < left; i++) tbuf_puts(c, &b, f);
    tbuf_put(c, &b, s.u.s->p, s.u.s->n);
    for (int64_t i = left; i < pad; i++) tbuf_puts(c, &b, f);
    return tbuf_value(c, &b);
}

static tv str_method_raw(tmpl_ctx *c, int id, tv s, const targs *a)
{
    tv none = tv_none(), arg0 = targ(a, 0, NULL, none);
    int64_t r;
    switch (id) {
    case M_STARTSWITH: case M_ENDSWITH: {
        if (npos(a) > 1) {   /* start[, end] as a slice */
            s = tmpl_slice(c, s, targ(a, 1, NULL, none), targ(a, 2, NULL, none), none);
        }
        return tv_bool(affix(c, s, arg0, id == M_ENDSWITH));
    }
    case M_SPLIT: case M_RSPLIT:
        return tu_split(c, s, targ(a, 0, "sep", none), need_int(c, targ(a, 1, "maxsplit", tv_int(-1)), "maxsplit"),
                        id == M_RSPLIT);
    case M_STRIP: return tu_strip(c, s, targ(a, 0, "chars", none), 3);
    case M_LSTRIP: return tu_strip(c, s, targ(a, 0, "chars", none), 1);
    case M_RSTRIP: return tu_strip(c, s, targ(a, 0, "chars", none), 2);
    case M_REPLACE:
        return tu_replace(c, s, arg0, targ(a, 1, NULL, none), need_int(c, targ(a, 2, "count", tv_int(-1)), "count"));
    case M_UPPER: return tu_case(c, s, 1);
    case M_LOWER: return tu_case(c, s, 0);
    case M_TITLE: return tu_case(c, s, 2);
    case M_CAPITALIZE: return tu_case(c, s, 3);
    case M_FIND: case M_RFIND: case M_INDEX: case M_RINDEX: {
        int64_t off = 0;
        if (npos(a) > 1) {
            off = need_int(c, targ(a, 1, NULL, none), "start");
            int64_t len = (int64_t)tu_count(s.u.s->p, s.u.s->n);
            if (off < 0) off = off + len < 0 ? 0 : off + len;
            if (off > len) return tv_int(-1);
            s = tmpl_slice(c, s, tv_int(off), targ(a, 2, NULL, none), none);
        }
        r = tu_find(c, s, need_str(c, arg0, "substring"), id == M_RFIND || id == M_RINDEX);
        if (r < 0 && (id == M_INDEX || id == M_RINDEX)) tmpl_fail(c, "substring not found");
        return tv_int(r < 0 ? -1 : r + off);
    }
    case M_COUNT: return tv_int(tu_count_sub(c, s, need_str(c, arg0, "substring")));
    case M_FORMAT: return tu_format_braces(c, s, a->v, a->kw, a->n);
    case M_JOIN: {
        tlist *items = tv_iter(c, arg0);
        tbuf b = { 0 };
        for (size_t i = 0; i < items->n; i++) {
            if (items->v[i].t != TV_STR)
                tmpl_fail(c, "sequence item %zu: expected str instance, %s found", i, tv_type_name(items->v[i]));
            if (i) tbuf_put(c, &b, s.u.s->p, s.u.s->n);
            tbuf_put(c, &b, items->v[i].u.s->p, items->v[i].u.s->n);
        }
        return tbuf_value(c, &b);
    }
    case M_SPLITLINES: return tmpl_splitlines(c, s, tv_truthy(targ(a, 0, "keepends", tv_bool(false))));
    case M_ISDIGIT: case M_ISALPHA: case M_ISALNUM: case M_ISSPACE: case M_ISUPPER: case M_ISLOWER:
        return tv_bool(str_all(s, id));
    case M_CENTER: case M_LJUST: case M_RJUST:
        return tmpl_pad(c, s, need_int(c, arg0, "width"), targ(a, 1, NULL, none),
                        id == M_CENTER ? '^' : id == M_LJUST ? '<' : '>');
    case M_REMOVEPREFIX: case M_REMOVESUFFIX: {
        need_str(c, arg0, "argument");
        if (!affix(c, s, arg0, id == M_REMOVESUFFIX)) return s;
        size_t m = arg0.u.s->n;
        return tv_str(c, s.u.s->p + (id == M_REMOVEPREFIX ? m : 0), s.u.s->n - m);
    }
    }
    tmpl_fail(c, "internal error: str method %d", id);
}

static void mark_safe(tv *v)
{
    if (v->t == TV_STR) v->safe = 1;
    if (v->t == TV_LIST) for (size_t i = 0; i < v->u.l->n; i++) mark_safe(&v->u.l->v[i]);
}

/* Methods of a Markup (safe) string escape their string arguments and
 * return Markup, as markupsafe's do. */
static tv str_method(tmpl_ctx *c, int id, tv s, const targs *a)
{
    if (!s.safe) return str_method_raw(c, id, s, a);
    targs e = *a;
    if (id == M_REPLACE || id == M_FORMAT || id == M_JOIN) {
        tv *v = tmpl_alloc(&c->a, tmpl_mul(&c->a, a->n + 1, sizeof *v));
        for (size_t i = 0; i < a->n; i++) {
            v[i] = a->v[i];
            if (v[i].t == TV_STR) v[i] = tv_escape(c, v[i]);
            else if (id == M_JOIN && !a->kw[i] && v[i].t == TV_LIST) {
                tlist *l = tv_iter(c, v[i]);
                tv esc = tv_list(c, l->n);
                for (size_t k = 0; k < l->n; k++) esc.u.l->v[k] = l->v[k].t == TV_STR ? tv_escape(c, l->v[k]) : l->v[k];
                v[i] = esc;
            }
        }
        e.v = v;
    }
    tv r = str_method_raw(c, id, s, &e);
    switch (id) {
    case M_FIND: case M_RFIND: case M_INDEX: case M_RINDEX: case M_COUNT: case M_STARTSWITH: case M_ENDSWITH:
    case M_ISDIGIT: case M_ISALPHA: case M_ISALNUM: case M_ISSPACE: case M_ISUPPER: case M_ISLOWER:
        return r;
    default:
        mark_safe(&r);
        return r;
    }
}

static tv call_method(tmpl_ctx *c, tmethod *m, const targs *a)
{
    tv self = m->self, none = tv_none();
    if (self.t == TV_STR) return str_method(c, m->id, self, a);
    switch (m->id) {
    case M_GET: {
        tv *v = tv_dict_get(self.u.d, targ(a, 0, NULL, none));
        return v ? *v : targ(a, 1, "default", none);
    }
    case M_ITEMS: case M_KEYS: case M_VALUES: {
        tdict *d = self.u.d;
        tv out = tv_list(c, d->n);
        for (size_t i = 0; i < d->n; i++) {
            if (m->id == M_KEYS) out.u.l->v[i] = d->k[i];
            else if (m->id == M_VALUES) out.u.l->v[i] = d->v[i];
            else {
                tv pair = tv_list(c, 2);
                pair.tuple = 1;
                pair.u.l->v[0] = d->k[i];
                pair.u.l->v[1] = d->v[i];
                out.u.l->v[i] = pair;
            }
        }
        tmpl_charge(c, d->n / 16);
        return out;
    }
    case M_LINDEX: case M_LCOUNT: {
        tv x = targ(a, 0, NULL, none);
        int64_t k = 0;
        for (size_t i = 0; i < self.u.l->n; i++) {
            if (!tv_eq(self.u.l->v[i], x)) continue;
            if (m->id == M_LINDEX) return tv_int((int64_t)i);
            k++;
        }
        if (m->id == M_LINDEX) tmpl_fail(c, "value is not in list");
        return tv_int(k);
    }
    case M_CYCLE:
        if (!a->n) tmpl_fail(c, "no items for cycling given");
        return a->v[self.u.loop->i % a->n];
    case M_CHANGED: {   /* true when the arguments differ from the last call's */
        tv now = tv_list(c, a->n);
        now.tuple = TL_TUPLE;
        memcpy(now.u.l->v, a->v, a->n * sizeof(tv));
        tloop *l = self.u.loop;
        if (l->changed.t != TV_UNDEF && tv_eq(l->changed, now)) return tv_bool(false);
        l->changed = now;
        return tv_bool(true);
    }
    }
    tmpl_fail(c, "internal error: method %d", m->id);
}

static tv make_namespace(tmpl_ctx *c, const targs *a, bool ns)
{
    tv d = tv_dict(c, a->n);
    for (size_t i = 0; i < a->n; i++) {
        if (a->kw[i]) { tv_dict_set(c, d.u.d, tv_cstr(c, a->kw[i]), a->v[i]); continue; }
        if (a->v[i].t != TV_DICT && a->v[i].t != TV_NS)
            tmpl_fail(c, "%s() takes keyword arguments or a mapping, not %s", ns ? "namespace" : "dict", tv_type_name(a->v[i]));
        tdict *src = a->v[i].u.d;
        for (size_t k = 0; k < src->n; k++) tv_dict_set(c, d.u.d, src->k[k], src->v[k]);
    }
    if (ns) d.t = TV_NS;
    return d;
}

static tv call_global(tmpl_ctx *c, int fn, const targs *a)
{
    switch (fn) {
    case F_RANGE: {
        size_t n = npos(a);
        if (n < 1 || n > 3) tmpl_fail(c, "range expected 1 to 3 arguments, got %zu", n);
        int64_t start = 0, stop, step = 1;
        if (n == 1) stop = need_int(c, targ(a, 0, NULL, tv_none()), "range() argument");
        else {
            start = need_int(c, targ(a, 0, NULL, tv_none()), "range() argument");
            stop = need_int(c, targ(a, 1, NULL, tv_none()), "range() argument");
            if (n == 3) step = need_int(c, targ(a, 2, NULL, tv_none()), "range() argument");
        }
        if (step == 0) tmpl_fail(c, "range() arg 3 must not be zero");
        double count = step > 0 ? ((double)stop - (double)start) / (double)step : ((double)start - (double)stop) / -(double)step;
        if (count > 100000) tmpl_fail(c, "range too big, maximum size for range is 100000");
        size_t k = count > 0 ? (size_t)count + 1 : 0;   /* at least the items, maybe one more */
        tv out = tv_list(c, k);
        size_t j = 0;
        for (int64_t i = start; j < k && (step > 0 ? i < stop : i > stop);) {
            out.u.l->v[j++] = tv_int(i);
            if (__builtin_add_overflow(i, step, &i)) break;
        }
        out.u.l->n = j;
        return out;
    }
    case F_NAMESPACE: return make_namespace(c, a, true);
    case F_DICT: return make_namespace(c, a, false);
    case F_RAISE: {
        tv msg = tv_to_str(c, targ(a, 0, NULL, tv_cstr(c, "")));
        tmpl_fail(c, "raise_exception: %s", msg.u.s->p);
    }
    case F_STRFTIME: {
        tv fmt = need_str(c, targ(a, 0, NULL, tv_none()), "strftime_now() format");
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        char buf[512];
        size_t n = fmt.u.s->n ? strftime(buf, sizeof buf, fmt.u.s->p, &tm) : 0;
        return tv_str(c, buf, n);
    }
    }
    tmpl_fail(c, "internal error: function %d", fn);
}

tv tmpl_call(tmpl_ctx *c, tv f, const targs *a)
{
    tmpl_charge(c, 1);
    if (f.t == TV_METHOD) return call_method(c, f.u.meth, a);
    if (f.t == TV_FUNC) return call_global(c, f.u.fn, a);
    tmpl_fail(c, "'%s' object is not callable", tv_type_name(f));
}
