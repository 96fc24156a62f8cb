/* filters.c — Jinja's filters (`x | name(...)`) and tests (`x is name`).
 *
 * Each behaves as jinja2 3.1's does in Hugging Face's environment, where
 * `tojson` is replaced by json.dumps(x, ensure_ascii=False, indent=...,
 * separators=..., sort_keys=...). Sorting, unique and min/max compare
 * strings case-insensitively unless told otherwise, as jinja's do. Filters
 * that walk a sequence charge the step budget per item.
 */
#include "template/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    F_ABS, F_ATTR, F_BATCH, F_CAPITALIZE, F_CENTER, F_COUNT, F_D, F_DEFAULT, F_DICTSORT, F_E,
    F_ESCAPE, F_FIRST, F_FLOAT, F_FORMAT, F_INDENT, F_INT, F_ITEMS, F_JOIN, F_LAST, F_LENGTH,
    F_LIST, F_LOWER, F_MAP, F_MAX, F_MIN, F_REJECT, F_REJECTATTR, F_REPLACE, F_REVERSE, F_ROUND,
    F_SAFE, F_SELECT, F_SELECTATTR, F_SORT, F_STRING, F_SUM, F_TITLE, F_TOJSON, F_TRIM,
    F_TRUNCATE, F_UNIQUE, F_UPPER, F_WORDCOUNT, F_COUNT_
};
static const char *const filter_names[F_COUNT_] = {
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e",
    "escape", "first", "float", "format", "indent", "int", "items", "join", "last", "length",
    "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round",
    "safe", "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim",
    "truncate", "unique", "upper", "wordcount",
};

enum {
    T_BOOLEAN, T_CALLABLE, T_DEFINED, T_DIVISIBLEBY, T_EQ, T_EQUALTO, T_EQ_, T_ESCAPED, T_EVEN,
    T_FALSE, T_FLOAT, T_GE, T_GE_, T_GT, T_GREATERTHAN, T_GT_, T_IN, T_INTEGER, T_ITERABLE,
    T_LE, T_LE_, T_LOWER, T_LT, T_LESSTHAN, T_LT_, T_MAPPING, T_NE, T_NE_, T_NONE, T_NUMBER,
    T_ODD, T_SAMEAS, T_SEQUENCE, T_STRING, T_TRUE, T_UNDEFINED, T_UPPER, T_COUNT_
};
static const char *const test_names[T_COUNT_] = {
    "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even",
    "false", "float", "ge", ">=", "gt", "greaterthan", ">", "in", "integer", "iterable",
    "le", "<=", "lower", "lt", "lessthan", "<", "mapping", "ne", "!=", "none", "number",
    "odd", "sameas", "sequence", "string", "true", "undefined", "upper",
};

int tmpl_filter_id(const char *name)
{
    for (int i = 0; i < F_COUNT_; i++) if (!strcmp(filter_names[i], name)) return i;
    return -1;
}

int tmpl_test_id(const char *name)
{
    for (int i = 0; i < T_COUNT_; i++) if (!strcmp(test_names[i], name)) return i;
    return -1;
}


/* ---- helpers ---- */

static int64_t int_arg(tmpl_ctx *c, tv v, const char *what)
{
    if (v.t == TV_INT) return v.u.i;
    if (v.t == TV_BOOL) return v.u.b;
    if (v.t == TV_FLOAT) return (int64_t)v.u.f;
    tmpl_fail(c, "%s must be an integer, not %s", what, tv_type_name(v));
}

static tlist *seq_of(tmpl_ctx *c, tv x)
{
    tlist *l = tv_iter(c, x);
    tmpl_charge(c, l->n);
    return l;
}

/* An attribute path "a.b.0" as jinja's make_attrgetter resolves it. */
static tv attr_path(tmpl_ctx *c, tv x, tv path)
{
    if (path.t == TV_INT) return tmpl_getitem(c, x, path);
    if (path.t != TV_STR) tmpl_fail(c, "attribute must be a string, not %s", tv_type_name(path));
    const char *p = path.u.s->p;
    size_t n = path.u.s->n;
    for (size_t i = 0; i <= n;) {
        size_t j = i;
        while (j < n && p[j] != '.') j++;
        tv part = tv_str(c, p + i, j - i);
        bool digits = j > i;
        for (size_t k = i; k < j; k++) if (p[k] < '0' || p[k] > '9') digits = false;
        if (x.t == TV_UNDEF) return x;
        x = tmpl_getitem(c, x, digits ? tv_int(strtoll(part.u.s->p, NULL, 10)) : part);
        i = j + 1;
    }
    return x;
}

/* Sort key: a lowercased copy of strings unless case_sensitive. */
static tv sort_key(tmpl_ctx *c, tv v, bool case_sensitive)
{
    if (!case_sensitive && v.t == TV_STR) return tu_case(c, v, 0);
    return v;
}

typedef struct sort_item { tv key, val; } sort_item;

/* Stable merge sort (Python's sort is stable; qsort is neither stable nor
 * able to carry the render context to the comparison). */
static void merge_sort(tmpl_ctx *c, sort_item *it, sort_item *tmp, size_t n, bool reverse)
{
    if (n < 2) return;
    size_t h = n / 2;
    merge_sort(c, it, tmp, h, reverse);
    merge_sort(c, it + h, tmp, n - h, reverse);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int r = tv_cmp(c, it[j].key, it[i].key);
        bool take_right = reverse ? r > 0 : r < 0;
        tmp[k++] = take_right ? it[j++] : it[i++];
    }
    while (i < h) tmp[k++] = it[i++];
    while (j < n) tmp[k++] = it[j++];
    memcpy(it, tmp, n * sizeof *it);
}

static void sort_items(tmpl_ctx *c, sort_item *it, size_t n, bool reverse)
{
    sort_item *tmp = tmpl_alloc(&c->a, tmpl_mul(&c->a, n, sizeof *tmp));
    merge_sort(c, it, tmp, n, reverse);
}

/* select/reject (attr_mode 0) and selectattr/rejectattr (1). */
static tv select_items(tmpl_ctx *c, tv x, const targs *a, bool keep, bool attr_mode)
{
    tlist *l = tv_truthy(x) ? seq_of(c, x) : tv_list(c, 0).u.l;   /* jinja: `if value:` */
    size_t first = attr_mode ? 1 : 0;
    tv attr = attr_mode ? targ(a, 0, NULL, tv_none()) : tv_none();
    tv test = targ(a, first, NULL, tv_undef(NULL, TV_UNDEF));
    int tid = -1;
    if (test.t == TV_STR) {
        tid = tmpl_test_id(test.u.s->p);
        if (tid < 0) tmpl_fail(c, "no test named '%s'", test.u.s->p);
    } else if (test.t != TV_UNDEF) {
        tmpl_fail(c, "the test name must be a string, not %s", tv_type_name(test));
    }
    targs rest = { 0 };
    if (a->n > first + 1) { rest.n = a->n - first - 1; rest.v = a->v + first + 1; rest.kw = a->kw + first + 1; }
    tv out = tv_list(c, l->n);
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        tv v = attr_mode ? attr_path(c, l->v[i], attr) : l->v[i];
        bool ok = tid < 0 ? tv_truthy(v) : tmpl_test(c, tid, v, &rest);
        if (ok == keep) out.u.l->v[k++] = l->v[i];
    }
    out.u.l->n = k;
    out.tuple = TL_GEN;
    return out;
}

static tv do_tojson(tmpl_ctx *c, tv x, const targs *a)
{
    tjson_opts o = { .item_sep = ", ", .key_sep = ": " };
    tv indent = targ(a, 0, "indent", tv_none());
    if (indent.t == TV_INT || indent.t == TV_BOOL) {
        int64_t n = indent.t == TV_INT ? indent.u.i : indent.u.b;
        if (n > 64) tmpl_fail(c, "tojson indent too large");
        char *sp = tmpl_alloc(&c->a, (size_t)(n > 0 ? n : 0) + 1);
        for (int64_t i = 0; i < n; i++) sp[i] = ' ';
        o.indent = sp;
    } else if (indent.t == TV_STR) {
        o.indent = indent.u.s->p;
    } else if (indent.t != TV_NONE) {
        tmpl_fail(c, "tojson indent must be an int or a string, not %s", tv_type_name(indent));
    }
    if (o.indent) o.item_sep = ",";   /* json.dumps' default when indent is given */
    tv seps = targ(a, 1, "separators", tv_none());
    if (seps.t == TV_LIST) {
        if (seps.u.l->n != 2 || seps.u.l->v[0].t != TV_STR || seps.u.l->v[1].t != TV_STR)
            tmpl_fail(c, "tojson separators must be two strings");
        o.item_sep = seps.u.l->v[0].u.s->p;
        o.key_sep = seps.u.l->v[1].u.s->p;
    }
    o.sort_keys = tv_truthy(targ(a, 2, "sort_keys", tv_bool(false)));
    o.ensure_ascii = tv_truthy(targ(a, 3, "ensure_ascii", tv_bool(false)));
    tbuf b = { 0 };
    if (x.t == TV_UNDEF) tmpl_fail(c, "Object of type Undefined is not JSON serializable");
    tv_write_json(c, &b, x, &o, 0);
    return tbuf_value(c, &b);
}

static tv do_indent(tmpl_ctx *c, tv x, const targs *a)
{
    if (x.t != TV_STR) tmpl_fail(c, "unsupported operand type(s) for +=: '%s' and 'str'", tv_type_name(x));
    tv width = targ(a, 0, "width", tv_int(4));
    bool first = tv_truthy(targ(a, 1, "first", tv_bool(false))), blank = tv_truthy(targ(a, 2, "blank", tv_bool(false)));
    tv ind;
    if (width.t == TV_STR) ind = width;
    else {
        int64_t w = int_arg(c, width, "indent width");
        if (w < 0) w = 0;
        if (w > 1024) tmpl_fail(c, "indent width too large");
        char sp[1025];
        memset(sp, ' ', (size_t)w);
        ind = tv_str(c, sp, (size_t)w);
    }
    tv s = tv_to_str(c, x);
    tbuf t = { 0 };
    tbuf_put(c, &t, s.u.s->p, s.u.s->n);
    tbuf_put(c, &t, "\n", 1);   /* jinja's quirk so that splitlines sees the last line */
    tlist *lines = tmpl_splitlines(c, tbuf_value(c, &t), false).u.l;
    tbuf b = { 0 };
    if (first) tbuf_put(c, &b, ind.u.s->p, ind.u.s->n);
    for (size_t i = 0; i < lines->n; i++) {
        tv line = lines->v[i];
        if (i) {
            tbuf_put(c, &b, "\n", 1);
            if (blank || line.u.s->n) tbuf_put(c, &b, ind.u.s->p, ind.u.s->n);
        }
        tbuf_put(c, &b, line.u.s->p, line.u.s->n);
    }
    return tbuf_value(c, &b);
}

static tv do_int(tmpl_ctx *c, tv x, const targs *a)
{
    tv def = targ(a, 0, "default", tv_int(0));
    int64_t base = int_arg(c, targ(a, 1, "base", tv_int(10)), "base");
    switch (x.t) {
    case TV_INT: return x;
    case TV_BOOL: return tv_int(x.u.b);
    case TV_FLOAT:
        if (!isfinite(x.u.f) || fabs(x.u.f) >= 9.2e18) return def;
        return tv_int((int64_t)x.u.f);
    case TV_STR: {
        char buf[128];
        size_t n = 0;
        for (size_t i = 0; i < x.u.s->n && n + 1 < sizeof buf; i++) if (x.u.s->p[i] != '_') buf[n++] = x.u.s->p[i];
        buf[n] = 0;
        if (x.u.s->n >= sizeof buf || base < 0 || base == 1 || base > 36) return def;
        char *end;
        long long v = strtoll(buf, &end, (int)base);
        while (*end == ' ' || (*end >= '\t' && *end <= '\r')) end++;
        if (end != buf && !*end) return tv_int(v);
        double f = strtod(buf, &end);   /* int(float(value)), as jinja tries next */
        while (*end == ' ' || (*end >= '\t' && *end <= '\r')) end++;
        if (end != buf && !*end && isfinite(f) && fabs(f) < 9.2e18) return tv_int((int64_t)f);
        return def;
    }
    default: return def;
    }
}

static tv do_float(tmpl_ctx *c, tv x, const targs *a)
{
    tv def = targ(a, 0, "default", tv_float(0));
    if (tv_is_num(x)) return tv_float(tv_num(x));
    if (x.t == TV_STR) {
        char *end;
        double f = strtod(x.u.s->p, &end);
        while (*end == ' ' || (*end >= '\t' && *end <= '\r')) end++;
        if (end != x.u.s->p && !*end) return tv_float(f);
    }
    return def;
}

static tv do_round(tmpl_ctx *c, tv x, const targs *a)
{
    int64_t prec = int_arg(c, targ(a, 0, "precision", tv_int(0)), "precision");
    tv method = targ(a, 1, "method", tv_none());
    if (!tv_is_num(x)) tmpl_fail(c, "round needs a number, not %s", tv_type_name(x));
    double v = tv_num(x);
    bool common = method.t != TV_STR || !strcmp(method.u.s->p, "common");
    if (common && x.t != TV_FLOAT) return tv_int(x.t == TV_BOOL ? x.u.b : x.u.i);   /* round(int) is an int */
    if (prec < 0 || prec > 300) tmpl_fail(c, "round precision out of range");
    if (method.t == TV_STR && strcmp(method.u.s->p, "common")) {
        double m = pow(10, (double)prec);
        if (!strcmp(method.u.s->p, "floor")) return tv_float(floor(v * m) / m);
        if (!strcmp(method.u.s->p, "ceil")) return tv_float(ceil(v * m) / m);
        tmpl_fail(c, "method must be common, ceil or floor");
    }
    /* Python's round(): correctly rounded, ties to even, as printf does */
    char buf[400];
    snprintf(buf, sizeof buf, "%.*f", (int)prec, v);
    return tv_float(strtod(buf, NULL));
}

static tv minmax(tmpl_ctx *c, tv x, const targs *a, bool max)
{
    tlist *l = seq_of(c, x);
    bool cs = tv_truthy(targ(a, 0, "case_sensitive", tv_bool(false)));
    tv attr = targ(a, 1, "attribute", tv_none());
    if (!l->n) return tv_undef(NULL, TV_UNDEF);
    size_t best = 0;
    for (size_t i = 1; i < l->n; i++) {
        tv p = attr.t == TV_NONE ? l->v[i] : attr_path(c, l->v[i], attr);
        tv q = attr.t == TV_NONE ? l->v[best] : attr_path(c, l->v[best], attr);
        int r = tv_cmp(c, sort_key(c, p, cs), sort_key(c, q, cs));
        if (max ? r > 0 : r < 0) best = i;
    }
    return l->v[best];
}

static tv pair(tmpl_ctx *c, tv k, tv v)
{
    tv p = tv_list(c, 2);
    p.tuple = 1;
    p.u.l->v[0] = k;
    p.u.l->v[1] = v;
    return p;
}

/* ---- filters ---- */

tv tmpl_filter(tmpl_ctx *c, int id, tv x, const targs *a)
{
    tv none = tv_none(), arg0 = targ(a, 0, NULL, none);
    tmpl_charge(c, 1);
    switch (id) {
    case F_D: case F_DEFAULT: {
        bool boolean = tv_truthy(targ(a, 1, "boolean", tv_bool(false)));
        bool use = x.t == TV_UNDEF || (boolean && !tv_truthy(x));
        return use ? targ(a, 0, "default_value", tv_cstr(c, "")) : x;
    }
    case F_SAFE: {
        tv s = tv_to_str(c, x);
        s.safe = 1;
        return s;
    }
    case F_STRING: return tv_to_str(c, x);
    case F_TOJSON: return do_tojson(c, x, a);
    case F_E: case F_ESCAPE: return tv_escape(c, x);
    case F_TRIM: case F_UPPER: case F_LOWER: case F_CAPITALIZE: case F_TITLE: case F_CENTER: case F_INDENT:
        if (x.t == TV_STR && x.safe) {   /* these keep Markup */
            x.safe = 0;
            tv r = tmpl_filter(c, id, x, a);
            r.safe = 1;
            return r;
        }
        break;
    }
    /* jinja's filters take an undefined value as empty, except these */
    if (x.t == TV_UNDEF && (id == F_ABS || id == F_ATTR || id == F_DICTSORT || id == F_FLOAT || id == F_INDENT ||
                            id == F_INT || id == F_ROUND))
        tv_undef_fail(c, x);
    switch (id) {
    case F_LENGTH: case F_COUNT:
        if (x.t == TV_LIST && x.tuple == TL_GEN) tmpl_fail(c, "object of type 'generator' has no len()");
        switch (x.t) {
        case TV_UNDEF: return tv_int(0);
        case TV_STR: return tv_int((int64_t)tu_count(x.u.s->p, x.u.s->n));
        case TV_LIST: return tv_int((int64_t)x.u.l->n);
        case TV_DICT: case TV_NS: return tv_int((int64_t)x.u.d->n);
        default: tmpl_fail(c, "object of type '%s' has no len()", tv_type_name(x));
        }
    case F_TRIM: return tu_strip(c, tv_to_str(c, x), targ(a, 0, "chars", none), 3);
    case F_UPPER: return tu_case(c, tv_to_str(c, x), 1);
    case F_LOWER: return tu_case(c, tv_to_str(c, x), 0);
    case F_CAPITALIZE: return tu_case(c, tv_to_str(c, x), 3);
    case F_TITLE: return tu_case(c, tv_to_str(c, x), 4);
    case F_REPLACE: {
        tv s = tv_to_str(c, x), old = tv_to_str(c, arg0), new_ = tv_to_str(c, targ(a, 1, "new", none));
        tv count = targ(a, 2, "count", none);
        return tu_replace(c, s, old, new_, count.t == TV_NONE ? -1 : int_arg(c, count, "count"));
    }
    case F_CENTER: return tmpl_pad(c, tv_to_str(c, x), int_arg(c, targ(a, 0, "width", tv_int(80)), "width"), none, '^');
    case F_INDENT: return do_indent(c, x, a);
    case F_INT: return do_int(c, x, a);
    case F_FLOAT: return do_float(c, x, a);
    case F_ROUND: return do_round(c, x, a);
    case F_ABS:
        if (x.t == TV_INT) { if (x.u.i == INT64_MIN) tmpl_fail(c, "integer overflow in abs"); return tv_int(x.u.i < 0 ? -x.u.i : x.u.i); }
        if (x.t == TV_BOOL) return tv_int(x.u.b);
        if (x.t == TV_FLOAT) return tv_float(fabs(x.u.f));
        tmpl_fail(c, "bad operand type for abs(): '%s'", tv_type_name(x));
    case F_FORMAT:
        if (x.t != TV_STR) x = tv_to_str(c, x);
        {
            bool kw = false;
            for (size_t i = 0; i < a->n; i++) kw |= a->kw[i] != NULL;
            if (kw) {
                tv d = tv_dict(c, a->n);
                for (size_t i = 0; i < a->n; i++) if (a->kw[i]) tv_dict_set(c, d.u.d, tv_cstr(c, a->kw[i]), a->v[i]);
                return tu_format_percent(c, x, d);
            }
            tv t = tv_list(c, a->n);
            t.tuple = 1;
            memcpy(t.u.l->v, a->v, a->n * sizeof(tv));
            return tu_format_percent(c, x, t);
        }
    case F_FIRST: case F_LAST: {
        if (x.t == TV_UNDEF) return x;
        if (id == F_LAST && x.t == TV_LIST && x.tuple == TL_GEN) tmpl_fail(c, "'generator' object is not reversible");
        tlist *l = tv_iter(c, x);
        if (!l->n) return tv_undef(NULL, TV_UNDEF);
        return l->v[id == F_FIRST ? 0 : l->n - 1];
    }
    case F_LIST: {
        tlist *l = seq_of(c, x);
        tv out = tv_list(c, l->n);
        memcpy(out.u.l->v, l->v, l->n * sizeof(tv));
        return out;
    }
    case F_ITEMS: {
        if (x.t == TV_UNDEF) return tv_list(c, 0);
        if (x.t != TV_DICT && x.t != TV_NS) tmpl_fail(c, "can only get item pairs from a mapping, not %s", tv_type_name(x));
        tv out = tv_list(c, x.u.d->n);
        for (size_t i = 0; i < x.u.d->n; i++) out.u.l->v[i] = pair(c, x.u.d->k[i], x.u.d->v[i]);
        tmpl_charge(c, x.u.d->n);
        return out;
    }
    case F_JOIN: {
        tlist *l = seq_of(c, x);
        tv sep = targ(a, 0, "d", tv_cstr(c, "")), attr = targ(a, 1, "attribute", none);
        sep = tv_to_str(c, sep);
        tbuf b = { 0 };
        for (size_t i = 0; i < l->n; i++) {
            if (i) tbuf_put(c, &b, sep.u.s->p, sep.u.s->n);
            tv_write_str(c, &b, attr.t == TV_NONE ? l->v[i] : attr_path(c, l->v[i], attr));
        }
        return tbuf_value(c, &b);
    }
    case F_REVERSE: {
        if (x.t == TV_STR) return tmpl_slice(c, x, none, none, tv_int(-1));
        tlist *l = seq_of(c, x);
        tv out = tv_list(c, l->n);
        for (size_t i = 0; i < l->n; i++) out.u.l->v[i] = l->v[l->n - 1 - i];
        out.tuple = TL_GEN;   /* reversed(): an iterator */
        return out;
    }
    case F_MAP: {
        tlist *l = tv_truthy(x) ? seq_of(c, x) : tv_list(c, 0).u.l;   /* jinja: `if value:` */
        tv out = tv_list(c, l->n);
        out.tuple = TL_GEN;
        tv attr = targ(a, SIZE_MAX, "attribute", tv_undef(NULL, TV_UNDEF));
        if (attr.t != TV_UNDEF) {
            tv def = targ(a, SIZE_MAX, "default", tv_undef(NULL, TV_UNDEF));
            for (size_t i = 0; i < l->n; i++) {
                tv v = attr_path(c, l->v[i], attr);
                out.u.l->v[i] = v.t == TV_UNDEF && def.t != TV_UNDEF ? def : v;
            }
            return out;
        }
        if (arg0.t != TV_STR) tmpl_fail(c, "map needs a filter name or attribute=...");
        int fid = tmpl_filter_id(arg0.u.s->p);
        if (fid < 0) tmpl_fail(c, "no filter named '%s'", arg0.u.s->p);
        targs rest = { .n = a->n ? a->n - 1 : 0, .v = a->v + 1, .kw = a->kw + 1 };
        for (size_t i = 0; i < l->n; i++) out.u.l->v[i] = tmpl_filter(c, fid, l->v[i], &rest);
        return out;
    }
    case F_SELECT: return select_items(c, x, a, true, false);
    case F_REJECT: return select_items(c, x, a, false, false);
    case F_SELECTATTR: return select_items(c, x, a, true, true);
    case F_REJECTATTR: return select_items(c, x, a, false, true);
    case F_ATTR: {   /* Python's getattr only: a dict's keys are not attributes */
        const char *name = tv_to_str(c, arg0).u.s->p;
        if (x.t == TV_DICT) {
            tv v = tmpl_getattr(c, x, name);
            return v.t == TV_METHOD ? v : tv_undef(name, TV_DICT);
        }
        return tmpl_getattr(c, x, name);
    }
    case F_SORT: case F_UNIQUE: case F_DICTSORT: {
        bool dict = id == F_DICTSORT;
        if (dict && x.t != TV_DICT) tmpl_fail(c, "dictsort needs a dict, not %s", tv_type_name(x));
        tlist *l = dict ? NULL : seq_of(c, x);
        size_t n = dict ? x.u.d->n : l->n;
        bool reverse = tv_truthy(targ(a, dict ? 2 : 0, "reverse", tv_bool(false)));
        bool cs = tv_truthy(targ(a, dict ? 0 : id == F_SORT ? 1 : 0, "case_sensitive", tv_bool(false)));
        tv attr = dict ? none : targ(a, id == F_SORT ? 2 : 1, "attribute", none);
        bool by_value = dict && targ(a, 1, "by", none).t == TV_STR && !strcmp(targ(a, 1, "by", none).u.s->p, "value");
        sort_item *it = tmpl_alloc(&c->a, tmpl_mul(&c->a, n, sizeof *it));
        for (size_t i = 0; i < n; i++) {
            it[i].val = dict ? pair(c, x.u.d->k[i], x.u.d->v[i]) : l->v[i];
            tv k = dict ? (by_value ? x.u.d->v[i] : x.u.d->k[i]) : attr.t == TV_NONE ? l->v[i] : attr_path(c, l->v[i], attr);
            it[i].key = sort_key(c, k, cs);
        }
        tv out = tv_list(c, n);
        if (id == F_UNIQUE) {   /* first occurrence wins, order kept */
            size_t k = 0;
            for (size_t i = 0; i < n; i++) {
                bool seen = false;
                for (size_t j = 0; j < i && !seen; j++) seen = tv_eq(it[j].key, it[i].key);
                if (!seen) out.u.l->v[k++] = it[i].val;
                tmpl_charge(c, i / 16);
            }
            out.u.l->n = k;
            return out;
        }
        tmpl_charge(c, n);
        sort_items(c, it, n, reverse);
        for (size_t i = 0; i < n; i++) out.u.l->v[i] = it[i].val;
        return out;
    }
    case F_MAX: return minmax(c, x, a, true);
    case F_MIN: return minmax(c, x, a, false);
    case F_SUM: {
        tlist *l = seq_of(c, x);
        tv attr = targ(a, 0, "attribute", none), total = targ(a, 1, "start", tv_int(0));
        for (size_t i = 0; i < l->n; i++) {
            tv v = attr.t == TV_NONE ? l->v[i] : attr_path(c, l->v[i], attr);
            if (!tv_is_num(v) || !tv_is_num(total)) tmpl_fail(c, "unsupported operand type(s) for +: '%s' and '%s'", tv_type_name(total), tv_type_name(v));
            if (total.t == TV_FLOAT || v.t == TV_FLOAT) total = tv_float(tv_num(total) + tv_num(v));
            else {
                int64_t r;
                if (__builtin_add_overflow((int64_t)tv_num(total), (int64_t)tv_num(v), &r)) tmpl_fail(c, "integer overflow in sum");
                total = tv_int(r);
            }
        }
        return total;
    }
    case F_WORDCOUNT: {   /* runs of \w, as jinja's regex counts them */
        tv s = tv_to_str(c, x);
        int64_t k = 0;
        bool in_word = false;
        for (size_t i = 0; i < s.u.s->n;) {
            uint32_t cp;
            i += tu_decode(s.u.s->p, s.u.s->n, i, &cp);
            bool w = cp == '_' || tu_isalpha(cp) || tu_isdigit(cp);
            k += w && !in_word;
            in_word = w;
        }
        return tv_int(k);
    }
    case F_TRUNCATE: {
        tv s = tv_to_str(c, x);
        int64_t length = int_arg(c, targ(a, 0, "length", tv_int(255)), "length");
        bool killwords = tv_truthy(targ(a, 1, "killwords", tv_bool(false)));
        tv end = tv_to_str(c, targ(a, 2, "end", tv_cstr(c, "...")));
        tv lw = targ(a, 3, "leeway", none);
        int64_t leeway = lw.t == TV_NONE ? 5 : int_arg(c, lw, "leeway");
        int64_t len = (int64_t)tu_count(s.u.s->p, s.u.s->n), elen = (int64_t)tu_count(end.u.s->p, end.u.s->n);
        if (length < elen) tmpl_fail(c, "expected length >= %lld, got %lld", (long long)elen, (long long)length);
        if (leeway < 0) tmpl_fail(c, "expected leeway >= 0, got %lld", (long long)leeway);
        if (len <= length + leeway) return s;
        tv head = tmpl_slice(c, s, none, tv_int(length - elen), none);
        if (!killwords) {
            tlist *parts = tu_split(c, head, tv_cstr(c, " "), 1, true).u.l;
            head = parts->v[0];
        }
        tbuf b = { 0 };
        tv_write_str(c, &b, head);
        tv_write_str(c, &b, end);
        return tbuf_value(c, &b);
    }
    case F_BATCH: {
        tlist *l = seq_of(c, x);
        int64_t size = int_arg(c, arg0, "linecount");
        if (size <= 0) tmpl_fail(c, "batch size must be positive");
        tv fill = targ(a, 1, "fill_with", none);
        size_t nb = (l->n + (size_t)size - 1) / (size_t)size;
        tv out = tv_list(c, nb);
        for (size_t b = 0; b < nb; b++) {
            size_t from = b * (size_t)size, cnt = l->n - from < (size_t)size ? l->n - from : (size_t)size;
            bool pad = cnt < (size_t)size && fill.t != TV_NONE;
            tv row = tv_list(c, pad ? (size_t)size : cnt);
            memcpy(row.u.l->v, l->v + from, cnt * sizeof(tv));
            if (pad) for (size_t k = cnt; k < (size_t)size; k++) row.u.l->v[k] = fill;
            out.u.l->v[b] = row;
        }
        out.tuple = TL_GEN;
        return out;
    }
    }
    tmpl_fail(c, "internal error: filter %d", id);
}

/* ---- tests ---- */

static bool sameas(tv a, tv b)
{
    if (a.t != b.t) return false;
    switch (a.t) {
    case TV_NONE: case TV_UNDEF: return true;
    case TV_BOOL: return a.u.b == b.u.b;
    case TV_INT: return a.u.i == b.u.i;
    case TV_FLOAT: return a.u.f == b.u.f;
    case TV_STR: return a.u.s == b.u.s;
    case TV_LIST: return a.u.l == b.u.l;
    default: return tv_eq(a, b);
    }
}

bool tmpl_test(tmpl_ctx *c, int id, tv x, const targs *a)
{
    tv arg = targ(a, 0, NULL, tv_undef(NULL, TV_UNDEF));
    tmpl_charge(c, 1);
    switch (id) {
    case T_DEFINED: return x.t != TV_UNDEF;
    case T_UNDEFINED: return x.t == TV_UNDEF;
    case T_NONE: return x.t == TV_NONE;
    case T_BOOLEAN: return x.t == TV_BOOL;
    case T_TRUE: return x.t == TV_BOOL && x.u.b;
    case T_FALSE: return x.t == TV_BOOL && !x.u.b;
    case T_INTEGER: return x.t == TV_INT;
    case T_FLOAT: return x.t == TV_FLOAT;
    case T_NUMBER: return tv_is_num(x);
    case T_STRING: return x.t == TV_STR;
    case T_MAPPING: return x.t == TV_DICT;
    case T_ITERABLE: return x.t == TV_STR || x.t == TV_LIST || x.t == TV_DICT || x.t == TV_UNDEF;
    case T_SEQUENCE: return x.t == TV_STR || (x.t == TV_LIST && x.tuple != TL_GEN) || x.t == TV_DICT || x.t == TV_UNDEF;
    case T_CALLABLE:   /* jinja's Undefined has __call__ (which raises) */
        return x.t == TV_MACRO || x.t == TV_FUNC || x.t == TV_METHOD || x.t == TV_LOOP || x.t == TV_UNDEF;
    case T_ESCAPED: return false;
    case T_SAMEAS: return sameas(x, arg);
    case T_EQ: case T_EQUALTO: case T_EQ_: return tv_eq(x, arg);
    case T_NE: case T_NE_: return !tv_eq(x, arg);
    case T_LT: case T_LESSTHAN: case T_LT_: return tv_cmp(c, x, arg) < 0;
    case T_LE: case T_LE_: return tv_cmp(c, x, arg) <= 0;
    case T_GT: case T_GREATERTHAN: case T_GT_: return tv_cmp(c, x, arg) > 0;
    case T_GE: case T_GE_: return tv_cmp(c, x, arg) >= 0;
    case T_IN: return tmpl_contains(c, arg, x);
    case T_ODD: case T_EVEN: {
        if (x.t != TV_INT && x.t != TV_BOOL) tmpl_fail(c, "%s test needs an integer, not %s", id == T_ODD ? "odd" : "even", tv_type_name(x));
        int64_t v = x.t == TV_INT ? x.u.i : x.u.b;
        return (v % 2 != 0) == (id == T_ODD);
    }
    case T_DIVISIBLEBY: {
        if (!tv_is_num(x) || !tv_is_num(arg)) tmpl_fail(c, "divisibleby needs numbers");
        if (tv_num(arg) == 0) tmpl_fail(c, "integer division or modulo by zero");
        if (x.t == TV_FLOAT || arg.t == TV_FLOAT) return fmod(tv_num(x), tv_num(arg)) == 0;
        int64_t d = arg.t == TV_BOOL ? arg.u.b : arg.u.i, v = x.t == TV_BOOL ? x.u.b : x.u.i;
        return d == -1 || v % d == 0;
    }
    case T_LOWER: case T_UPPER: {
        tv s = tv_to_str(c, x);
        tv t = tu_case(c, s, id == T_LOWER ? 0 : 1);
        bool cased = false;
        for (size_t i = 0; i < s.u.s->n; i++) {
            unsigned char ch = (unsigned char)s.u.s->p[i];
            if (ch >= 0x80 || (unsigned)((ch | 32) - 'a') < 26u) cased = true;
        }
        return cased && tv_eq(s, t) && !tv_eq(s, tu_case(c, s, id == T_LOWER ? 1 : 0));
    }
    }
    tmpl_fail(c, "internal error: test %d", id);
}
