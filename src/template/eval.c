/* eval.c — runs the AST: statements, expressions, scopes, macros.
 *
 * Scoping follows what jinja2 compiles to: the template's top level is one
 * scope (a `set` inside an `if` lands there); each for-loop iteration and
 * each macro call gets a fresh scope whose `set`s vanish when it ends, so
 * `{% set x = ... %}` inside a loop never changes an outer x (templates use
 * namespace() for that). Lookups walk outwards, then the render variables,
 * then the globals. Every statement and loop iteration is charged to a
 * step budget, and macro nesting to a depth limit, so hostile templates end
 * with an error. Errors unwind by longjmp to tmpl_render (internal.h).
 */
#include "template/internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tscope {
    tscope *parent;
    size_t n, cap;
    const char **names;
    tv *vals;
};

enum { FLOW_NORMAL, FLOW_BREAK, FLOW_CONTINUE };

_Noreturn void tmpl_fail(tmpl_ctx *c, const char *fmt, ...)
{
    char msg[MF_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tmpl_throw(&c->err, c->pos, "%s", msg);
}

void tmpl_charge(tmpl_ctx *c, uint64_t n)
{
    c->steps += n;
    if (c->steps > c->lim.max_steps)
        tmpl_fail(c, "template exceeded %llu evaluation steps (a runaway loop?)", (unsigned long long)c->lim.max_steps);
}

/* ---- scopes ---- */

static tscope *scope_new(tmpl_ctx *c, tscope *parent)
{
    tscope *s = tmpl_alloc(&c->a, sizeof *s);
    s->parent = parent;
    return s;
}

static tv *scope_find(tscope *s, const char *name)
{
    for (; s; s = s->parent)
        for (size_t i = s->n; i-- > 0;)
            if (!strcmp(s->names[i], name)) return &s->vals[i];
    return NULL;
}

static void scope_set(tmpl_ctx *c, tscope *s, const char *name, tv v)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name)) { s->vals[i] = v; return; }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        s->names = tmpl_realloc(&c->a, s->names, s->cap * sizeof *s->names, tmpl_mul(&c->a, cap, sizeof *s->names));
        s->vals = tmpl_realloc(&c->a, s->vals, s->cap * sizeof *s->vals, tmpl_mul(&c->a, cap, sizeof *s->vals));
        s->cap = cap;
    }
    s->names[s->n] = name;
    s->vals[s->n] = v;
    s->n++;
}

static tv lookup(tmpl_ctx *c, const char *name)
{
    tv *v = scope_find(c->cur, name);
    if (v) return *v;
    return tmpl_global(c, name);
}

/* ---- expressions ---- */

static tv eval(tmpl_ctx *c, const tnode *n);
static int exec(tmpl_ctx *c, const tnode *n);

static void need_defined(tmpl_ctx *c, tv v)
{
    if (v.t == TV_UNDEF) tv_undef_fail(c, v);
}

_Noreturn static void bad_operands(tmpl_ctx *c, const char *op, tv a, tv b)
{
    need_defined(c, a);
    need_defined(c, b);
    if (!strcmp(op, "+") && a.t == TV_STR)
        tmpl_fail(c, "can only concatenate str (not \"%s\") to str", tv_type_name(b));
    tmpl_fail(c, "unsupported operand type(s) for %s: '%s' and '%s'", op, tv_type_name(a), tv_type_name(b));
}

static int64_t as_int(tv v) { return v.t == TV_BOOL ? v.u.b : v.u.i; }
static bool is_intlike(tv v) { return v.t == TV_INT || v.t == TV_BOOL; }

static tv repeat(tmpl_ctx *c, tv seq, int64_t k)
{
    if (k < 0) k = 0;
    if (seq.t == TV_STR) {
        size_t n = seq.u.s->n;
        if (n && (uint64_t)k > c->lim.max_output / n) tmpl_fail(c, "string repetition larger than %zu bytes", c->lim.max_output);
        tbuf b = { 0 };
        for (int64_t i = 0; i < k; i++) tbuf_put(c, &b, seq.u.s->p, n);
        tv out = tbuf_value(c, &b);
        out.safe = seq.safe;
        return out;
    }
    size_t n = seq.u.l->n;
    if (n && (uint64_t)k > (c->lim.max_memory / sizeof(tv)) / n) tmpl_fail(c, "list repetition too large");
    tv out = tv_list(c, n * (size_t)k);
    for (int64_t i = 0; i < k; i++) memcpy(out.u.l->v + (size_t)i * n, seq.u.l->v, n * sizeof(tv));
    out.tuple = seq.tuple;
    tmpl_charge(c, n * (size_t)k / 16);
    return out;
}

static tv arith(tmpl_ctx *c, int op, tv a, tv b)
{
    static const char *const names[] = { [OP_ADD] = "+", [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/",
                                         [OP_FLOORDIV] = "//", [OP_MOD] = "%", [OP_POW] = "**" };
    int64_t r;
    if (is_intlike(a) && is_intlike(b)) {
        int64_t x = as_int(a), y = as_int(b);
        switch (op) {
        case OP_ADD: if (__builtin_add_overflow(x, y, &r)) goto overflow; return tv_int(r);
        case OP_SUB: if (__builtin_sub_overflow(x, y, &r)) goto overflow; return tv_int(r);
        case OP_MUL: if (__builtin_mul_overflow(x, y, &r)) goto overflow; return tv_int(r);
        case OP_DIV: if (!y) goto zero; return tv_float((double)x / (double)y);
        case OP_FLOORDIV:
            if (!y) goto zero;
            if (x == INT64_MIN && y == -1) goto overflow;
            r = x / y;
            if ((x % y != 0) && ((x < 0) != (y < 0))) r--;
            return tv_int(r);
        case OP_MOD:
            if (!y) goto zero;
            if (y == -1) return tv_int(0);
            r = x % y;
            if (r && ((r < 0) != (y < 0))) r += y;
            return tv_int(r);
        case OP_POW: {
            if (y < 0) return tv_float(pow((double)x, (double)y));
            int64_t base = x;
            r = 1;
            while (y) {   /* by squaring: a squared base is always used later */
                if ((y & 1) && __builtin_mul_overflow(r, base, &r)) goto overflow;
                y >>= 1;
                if (y && __builtin_mul_overflow(base, base, &base)) goto overflow;
            }
            return tv_int(r);
        }
        }
    }
    if (tv_is_num(a) && tv_is_num(b)) {
        double x = tv_num(a), y = tv_num(b), m;
        switch (op) {
        case OP_ADD: return tv_float(x + y);
        case OP_SUB: return tv_float(x - y);
        case OP_MUL: return tv_float(x * y);
        case OP_DIV: if (y == 0) goto zero; return tv_float(x / y);
        case OP_FLOORDIV: if (y == 0) goto zero; return tv_float(floor(x / y));
        case OP_MOD:
            if (y == 0) goto zero;
            m = fmod(x, y);
            if (m != 0 && ((m < 0) != (y < 0))) m += y;
            return tv_float(m);
        case OP_POW: return tv_float(pow(x, y));
        }
    }
    if (op == OP_ADD && a.t == TV_STR && b.t == TV_STR) {
        bool safe = a.safe || b.safe;
        if (safe) {   /* Markup + str escapes the str (markupsafe), on either side */
            a = tv_escape(c, a);
            b = tv_escape(c, b);
        }
        if (a.u.s->n > c->lim.max_output - b.u.s->n) tmpl_fail(c, "string larger than %zu bytes", c->lim.max_output);
        tv s = tv_str(c, NULL, a.u.s->n + b.u.s->n);
        memcpy(s.u.s->p, a.u.s->p, a.u.s->n);
        memcpy(s.u.s->p + a.u.s->n, b.u.s->p, b.u.s->n);
        s.u.s->p[s.u.s->n] = 0;
        s.safe = safe;
        return s;
    }
    if (op == OP_ADD && a.t == TV_LIST && b.t == TV_LIST && a.tuple == b.tuple && a.tuple != TL_GEN) {
        tv l = tv_list(c, a.u.l->n + b.u.l->n);
        memcpy(l.u.l->v, a.u.l->v, a.u.l->n * sizeof(tv));
        memcpy(l.u.l->v + a.u.l->n, b.u.l->v, b.u.l->n * sizeof(tv));
        l.tuple = a.tuple;
        return l;
    }
    if (op == OP_MUL && (a.t == TV_STR || (a.t == TV_LIST && a.tuple != TL_GEN)) && is_intlike(b)) return repeat(c, a, as_int(b));
    if (op == OP_MUL && (b.t == TV_STR || (b.t == TV_LIST && b.tuple != TL_GEN)) && is_intlike(a)) return repeat(c, b, as_int(a));
    if (op == OP_MOD && a.t == TV_STR) { need_defined(c, b); return tu_format_percent(c, a, b); }
    bad_operands(c, names[op], a, b);
overflow:
    tmpl_fail(c, "integer overflow in '%s'", names[op]);
zero:
    tmpl_fail(c, "division by zero");
}

static tv compare(tmpl_ctx *c, int op, tv a, tv b)
{
    switch (op) {
    case OP_EQ: return tv_bool(tv_eq(a, b));
    case OP_NE: return tv_bool(!tv_eq(a, b));
    case OP_IN: return tv_bool(tmpl_contains(c, b, a));
    case OP_NOTIN: return tv_bool(!tmpl_contains(c, b, a));
    }
    int r = tv_cmp(c, a, b);
    switch (op) {
    case OP_LT: return tv_bool(r < 0);
    case OP_LE: return tv_bool(r <= 0);
    case OP_GT: return tv_bool(r > 0);
    default: return tv_bool(r >= 0);
    }
}

/* Arguments of a call, filter or test, evaluated. */
static targs eval_args(tmpl_ctx *c, const tnode *n, size_t extra)
{
    targs a = { .n = n->n };
    tv *v = tmpl_alloc(&c->a, tmpl_mul(&c->a, n->n + extra, sizeof *v));
    const char **kw = tmpl_alloc(&c->a, tmpl_mul(&c->a, n->n + extra, sizeof *kw));
    for (size_t i = 0; i < n->n; i++) {
        v[i] = eval(c, n->kids[i]);
        kw[i] = n->kw[i];
    }
    a.v = v;
    a.kw = kw;
    return a;
}

static tv call_value(tmpl_ctx *c, tv f, const targs *a)
{
    if (f.t == TV_MACRO) return tmpl_call_macro(c, f.u.m, a->v, a->kw, a->n);
    if (f.t == TV_LOOP) return tmpl_call_loop(c, f.u.loop, a->v, a->n);
    need_defined(c, f);
    return tmpl_call(c, f, a);
}

static tv eval(tmpl_ctx *c, const tnode *n)
{
    c->pos = n->pos;
    switch (n->kind) {
    case E_CONST: return n->val;
    case E_NAME: {
        tv v = lookup(c, n->name);
        if (v.t == TV_UNDEF) v.where = n->pos + 1;
        return v;
    }
    case E_ATTR: {
        tv obj = eval(c, n->a);
        c->pos = n->pos;
        need_defined(c, obj);
        tv v = tmpl_getattr(c, obj, n->name);
        if (v.t == TV_UNDEF) v.where = n->pos + 1;
        return v;
    }
    case E_ITEM: {
        tv obj = eval(c, n->a), key = eval(c, n->b);
        c->pos = n->pos;
        need_defined(c, obj);
        tv v = tmpl_getitem(c, obj, key);
        if (v.t == TV_UNDEF) v.where = n->pos + 1;
        return v;
    }
    case E_SLICE: {
        tv obj = eval(c, n->a);
        tv b = n->b ? eval(c, n->b) : tv_none(), e = n->c ? eval(c, n->c) : tv_none(), s = n->d ? eval(c, n->d) : tv_none();
        c->pos = n->pos;
        need_defined(c, obj);
        return tmpl_slice(c, obj, b, e, s);
    }
    case E_CALL: {
        tv f = eval(c, n->a);
        targs a = eval_args(c, n, 0);
        c->pos = n->pos;
        return call_value(c, f, &a);
    }
    case E_FILTER: {
        tv x = eval(c, n->a);
        targs a = eval_args(c, n, 0);
        c->pos = n->pos;
        if (n->id < 0) tmpl_fail(c, "no filter named '%s'", n->name);
        return tmpl_filter(c, n->id, x, &a);
    }
    case E_TEST: {
        tv x = eval(c, n->a);
        targs a = eval_args(c, n, 0);
        c->pos = n->pos;
        if (n->id < 0) tmpl_fail(c, "no test named '%s'", n->name);
        return tv_bool(tmpl_test(c, n->id, x, &a) != (n->flag != 0));
    }
    case E_NOT: return tv_bool(!tv_truthy(eval(c, n->a)));
    case E_NEG: case E_POS: {
        tv x = eval(c, n->a);
        c->pos = n->pos;
        if (n->kind == E_POS && tv_is_num(x)) return x.t == TV_BOOL ? tv_int(x.u.b) : x;
        if (is_intlike(x)) {
            if (as_int(x) == INT64_MIN) tmpl_fail(c, "integer overflow in unary '-'");
            return tv_int(-as_int(x));
        }
        if (x.t == TV_FLOAT) return tv_float(-x.u.f);
        need_defined(c, x);
        tmpl_fail(c, "bad operand type for unary %c: '%s'", n->kind == E_NEG ? '-' : '+', tv_type_name(x));
    }
    case E_BIN: {
        tv a = eval(c, n->a), b = eval(c, n->b);
        c->pos = n->pos;
        return arith(c, n->op, a, b);
    }
    case E_CMP: {
        tv a = eval(c, n->a), b = eval(c, n->b);
        c->pos = n->pos;
        return compare(c, n->op, a, b);
    }
    case E_AND: {
        tv a = eval(c, n->a);
        return tv_truthy(a) ? eval(c, n->b) : a;
    }
    case E_OR: {
        tv a = eval(c, n->a);
        return tv_truthy(a) ? a : eval(c, n->b);
    }
    case E_COND:
        if (tv_truthy(eval(c, n->a))) return eval(c, n->b);
        return n->c ? eval(c, n->c) : tv_undef(NULL, TV_UNDEF);
    case E_LIST: case E_TUPLE: {
        tv l = tv_list(c, n->n);
        for (size_t i = 0; i < n->n; i++) l.u.l->v[i] = eval(c, n->kids[i]);
        l.tuple = n->kind == E_TUPLE;
        return l;
    }
    case E_DICT: {
        tv d = tv_dict(c, n->n / 2);
        for (size_t i = 0; i + 1 < n->n; i += 2) {
            tv k = eval(c, n->kids[i]), v = eval(c, n->kids[i + 1]);
            c->pos = n->kids[i]->pos;
            if (k.t == TV_LIST && k.tuple != TL_TUPLE) tmpl_fail(c, "unhashable type: '%s'", tv_type_name(k));
            if (k.t == TV_DICT) tmpl_fail(c, "unhashable type: 'dict'");
            tv_dict_set(c, d.u.d, k, v);
        }
        return d;
    }
    case E_CONCAT: {
        tbuf b = { 0 };
        for (size_t i = 0; i < n->n; i++) tv_write_str(c, &b, eval(c, n->kids[i]));
        return tbuf_value(c, &b);
    }
    }
    tmpl_fail(c, "internal error: expression kind %d", n->kind);
}

/* ---- statements ---- */

/* Runs body with output into a fresh buffer; returns the text. */
static tv capture(tmpl_ctx *c, const tnode *body)
{
    tbuf buf = { 0 }, *saved = c->out;
    c->out = &buf;
    exec(c, body);
    c->out = saved;
    return tbuf_value(c, &buf);
}

/* Binds targets (E_NAME nodes) to v, unpacking when there are several. */
static void assign(tmpl_ctx *c, tscope *s, tnode *const *targets, size_t n, tv v)
{
    if (n == 1) { scope_set(c, s, targets[0]->name, v); return; }
    need_defined(c, v);
    tlist *items = tv_iter(c, v);
    if (items->n != n)
        tmpl_fail(c, "%s values to unpack (expected %zu, got %zu)", items->n < n ? "not enough" : "too many", n, items->n);
    for (size_t i = 0; i < n; i++) scope_set(c, s, targets[i]->name, items->v[i]);
}

static void assign_targets(tmpl_ctx *c, const tnode *n, tv v)
{
    if (n->n == 1 && n->kids[0]->kind == E_ATTR) {
        const tnode *t = n->kids[0];
        tv ns = lookup(c, t->a->name);
        c->pos = t->pos;
        if (ns.t != TV_NS) tmpl_fail(c, "cannot assign attribute on non-namespace object ('%s' is %s)", t->a->name, tv_type_name(ns));
        tv_dict_set(c, ns.u.d, tv_cstr(c, t->name), v);
        return;
    }
    assign(c, c->cur, n->kids, n->n, v);
}

/* Applies a filter chain (innermost input NULL) to x. */
static tv apply_filters(tmpl_ctx *c, const tnode *f, tv x)
{
    if (!f) return x;
    x = apply_filters(c, f->a, x);
    targs a = eval_args(c, f, 0);
    c->pos = f->pos;
    if (f->id < 0) tmpl_fail(c, "no filter named '%s'", f->name);
    return tmpl_filter(c, f->id, x, &a);
}

static int run_for(tmpl_ctx *c, const tnode *n, tv seq, int depth)
{
    c->pos = n->a->pos;
    tlist *items = tv_iter(c, seq);
    tscope *saved = c->cur, *s = scope_new(c, saved);
    c->cur = s;
    if (n->b) {   /* {% for x in xs if cond %}: loop sees only the items that pass */
        tv kept = tv_list(c, items->n);
        size_t k = 0;
        for (size_t i = 0; i < items->n; i++) {
            tmpl_charge(c, 1);
            s->n = 0;
            assign(c, s, n->kids, n->n, items->v[i]);
            if (tv_truthy(eval(c, n->b))) kept.u.l->v[k++] = items->v[i];
        }
        kept.u.l->n = k;
        items = kept.u.l;
    }
    tloop *L = tmpl_alloc(&c->a, sizeof *L);
    L->items = items;
    L->depth = depth;
    L->node = n;
    L->changed = tv_undef(NULL, TV_UNDEF);
    tv lv = { .t = TV_LOOP };
    lv.u.loop = L;
    for (size_t i = 0; i < items->n; i++) {
        tmpl_charge(c, 1);
        s->n = 0;   /* a fresh scope for every iteration */
        L->i = i;
        c->pos = n->pos;
        assign(c, s, n->kids, n->n, items->v[i]);
        scope_set(c, s, "loop", lv);
        if (exec(c, n->c) == FLOW_BREAK) break;
    }
    c->cur = saved;
    if (!items->n && n->d) exec(c, n->d);
    return FLOW_NORMAL;
}

tv tmpl_call_loop(tmpl_ctx *c, tloop *l, const tv *args, size_t n)
{
    if (!l->node->flag) tmpl_fail(c, "'loop' is callable only in a loop marked 'recursive'");
    if (n != 1) tmpl_fail(c, "loop() takes exactly one argument");
    if (++c->depth > c->lim.max_depth) tmpl_fail(c, "recursion deeper than %d", c->lim.max_depth);
    tbuf buf = { 0 }, *saved = c->out;
    c->out = &buf;
    run_for(c, l->node, args[0], l->depth + 1);
    c->out = saved;
    c->depth--;
    return tbuf_value(c, &buf);
}

tv tmpl_call_macro(tmpl_ctx *c, tmacro *m, const tv *args, const char **kw, size_t n)
{
    const tnode *def = m->def;
    const char *name = def->kind == N_MACRO ? def->name : "caller";
    if (++c->depth > c->lim.max_depth)
        tmpl_fail(c, "macro calls nested deeper than %d (runaway recursion in '%s'?)", c->lim.max_depth, name);
    tmpl_charge(c, 1);
    tscope *s = scope_new(c, m->closure);
    bool *set = tmpl_alloc(&c->a, def->n + 1);
    size_t next = 0;
    tv varargs = tv_list(c, 0), kwargs = tv_dict(c, 0);
    varargs.tuple = 1;
    for (size_t i = 0; i < n; i++) {
        if (!kw[i]) {
            if (next < def->n) { scope_set(c, s, def->kids[next]->name, args[i]); set[next++] = true; continue; }
            tv l = tv_list(c, varargs.u.l->n + 1);
            memcpy(l.u.l->v, varargs.u.l->v, varargs.u.l->n * sizeof(tv));
            l.u.l->v[varargs.u.l->n] = args[i];
            l.tuple = 1;
            varargs = l;
            continue;
        }
        size_t p = 0;
        while (p < def->n && strcmp(def->kids[p]->name, kw[i])) p++;
        if (p < def->n) {
            if (set[p]) tmpl_fail(c, "macro '%s' got multiple values for argument '%s'", name, kw[i]);
            scope_set(c, s, kw[i], args[i]);
            set[p] = true;
        } else if (!strcmp(kw[i], "caller")) {
            scope_set(c, s, "caller", args[i]);
        } else {
            tv_dict_set(c, kwargs.u.d, tv_cstr(c, kw[i]), args[i]);
        }
    }
    tscope *saved = c->cur;
    c->cur = s;
    for (size_t p = 0; p < def->n; p++) {
        if (set[p]) continue;
        const tnode *param = def->kids[p];
        scope_set(c, s, param->name, param->a ? eval(c, param->a) : tv_undef(param->name, TV_UNDEF));
    }
    scope_set(c, s, "varargs", varargs);
    scope_set(c, s, "kwargs", kwargs);
    if (m->caller.t != TV_UNDEF && !scope_find(s, "caller")) scope_set(c, s, "caller", m->caller);
    tv out = capture(c, def->b);
    c->cur = saved;
    c->depth--;
    return out;
}

static int exec(tmpl_ctx *c, const tnode *n)
{
    c->pos = n->pos;
    switch (n->kind) {
    case N_BODY:
        for (size_t i = 0; i < n->n; i++) {
            int r = exec(c, n->kids[i]);
            if (r != FLOW_NORMAL) return r;
        }
        return FLOW_NORMAL;
    case N_DATA:
        tbuf_put(c, c->out, n->val.u.s->p, n->val.u.s->n);
        return FLOW_NORMAL;
    case N_OUT:
        tv_write_str(c, c->out, eval(c, n->a));
        return FLOW_NORMAL;
    case N_IF:
        tmpl_charge(c, 1);
        for (; n; n = n->c) {
            if (n->kind != N_IF) return exec(c, n);   /* else */
            if (tv_truthy(eval(c, n->a))) return exec(c, n->b);
        }
        return FLOW_NORMAL;
    case N_FOR:
        return run_for(c, n, eval(c, n->a), 1);
    case N_SET:
        tmpl_charge(c, 1);
        assign_targets(c, n, eval(c, n->a));
        return FLOW_NORMAL;
    case N_SETBLOCK: {
        tv v = apply_filters(c, n->a, capture(c, n->b));
        assign(c, c->cur, n->kids, 1, v);
        return FLOW_NORMAL;
    }
    case N_MACRO: {
        tmacro *m = tmpl_alloc(&c->a, sizeof *m);
        m->def = n;
        m->closure = c->cur;
        m->caller = tv_undef(NULL, TV_UNDEF);
        tv v = { .t = TV_MACRO };
        v.u.m = m;
        scope_set(c, c->cur, n->name, v);
        return FLOW_NORMAL;
    }
    case N_CALLBLOCK: {
        tmacro *m = tmpl_alloc(&c->a, sizeof *m);
        m->def = n;
        m->closure = c->cur;
        m->caller = tv_undef(NULL, TV_UNDEF);
        tv caller = { .t = TV_MACRO };
        caller.u.m = m;
        const tnode *call = n->a;
        tv f = eval(c, call->a);
        targs a = eval_args(c, call, 1);
        ((tv *)a.v)[a.n] = caller;
        a.kw[a.n] = "caller";
        a.n++;
        c->pos = call->pos;
        tv_write_str(c, c->out, call_value(c, f, &a));
        return FLOW_NORMAL;
    }
    case N_FILTERBLOCK:
        tv_write_str(c, c->out, apply_filters(c, n->a, capture(c, n->b)));
        return FLOW_NORMAL;
    case N_WITH: {
        tscope *saved = c->cur, *s = scope_new(c, saved);
        for (size_t i = 0; i < n->n; i++) scope_set(c, s, n->kids[i]->name, eval(c, n->kids[i]->a));
        c->cur = s;
        int r = exec(c, n->b);
        c->cur = saved;
        return r;
    }
    case N_BREAK: return FLOW_BREAK;
    case N_CONTINUE: return FLOW_CONTINUE;
    }
    tmpl_fail(c, "internal error: statement kind %d", n->kind);
}

/* ---- entry points ---- */

void tmpl_limits_default(tmpl_limits *l)
{
    l->max_output = 64u << 20;
    l->max_memory = 512u << 20;
    l->max_steps = 50000000;
    l->max_depth = 200;
}

tmpl *tmpl_parse(const char *src, size_t len, mf_error *e)
{
    if (len > (64u << 20)) { mf_fail(e, "template of %zu bytes is larger than 64 MiB", len); return NULL; }
    tmpl *t = calloc(1, sizeof *t);
    if (!t) { mf_fail(e, "out of memory"); return NULL; }
    t->err.e = e;
    t->a.err = &t->err;
    t->a.max = 256u << 20;
    if (setjmp(t->err.jb)) {
        tmpl_arena_free(&t->a);
        free(t);
        return NULL;
    }
    ttok *toks;
    size_t ntoks;
    tmpl_lex(&t->a, src, len, &t->src, &t->len, &toks, &ntoks);
    t->root = tmpl_parse_tokens(&t->a, toks, ntoks);
    return t;
}

void tmpl_free(tmpl *t)
{
    if (!t) return;
    tmpl_arena_free(&t->a);
    free(t);
}

int tmpl_render(const tmpl *t, const char *vars_json, size_t vars_len,
                const tmpl_limits *lim, char **out, size_t *out_len, mf_error *e)
{
    *out = NULL;
    if (out_len) *out_len = 0;
    tmpl_ctx *c = calloc(1, sizeof *c);
    if (!c) return mf_fail(e, "out of memory");
    if (lim) c->lim = *lim;
    else tmpl_limits_default(&c->lim);
    c->t = t;
    c->err.e = e;
    c->err.src = t->src;
    c->err.src_len = t->len;
    c->a.err = &c->err;
    c->a.max = c->lim.max_memory;
    c->pos = TMPL_NOPOS;
    if (setjmp(c->err.jb)) {
        tmpl_arena_free(&c->a);
        free(c);
        return -1;
    }
    tscope *vars = scope_new(c, NULL);
    if (vars_json) {
        tv d = tv_from_json(c, vars_json, vars_len);
        for (size_t i = 0; i < d.u.d->n; i++) scope_set(c, vars, d.u.d->k[i].u.s->p, d.u.d->v[i]);
    }
    c->top = c->cur = scope_new(c, vars);
    tbuf main = { 0 };
    c->out = &main;
    exec(c, t->root);
    char *text = malloc(main.n + 1);
    if (!text) {
        tmpl_arena_free(&c->a);
        free(c);
        return mf_fail(e, "out of memory (%zu bytes of rendered text)", main.n);
    }
    if (main.n) memcpy(text, main.p, main.n);
    text[main.n] = 0;
    *out = text;
    if (out_len) *out_len = main.n;
    tmpl_arena_free(&c->a);
    free(c);
    return 0;
}

int tmpl_render_src(const char *src, const char *vars_json, char **out, size_t *out_len, mf_error *e)
{
    tmpl *t = tmpl_parse(src, strlen(src), e);
    if (!t) { *out = NULL; return -1; }
    int r = tmpl_render(t, vars_json, vars_json ? strlen(vars_json) : 0, NULL, out, out_len, e);
    tmpl_free(t);
    return r;
}
