/* parser.c — tokens to the AST, with jinja2's grammar and precedence.
 *
 * Expressions, loosest first: `x if c else y`, or, and, not, comparisons
 * (== != < <= > >= in, not in), + -, ~, * / // %, **, unary - +, then
 * postfix (.attr, [item], [a:b:c], call) and filters/tests, which bind
 * tighter than any operator: `a + b | tojson` is `a + (b | tojson)`.
 * Filter and test names are resolved here; an unknown one fails when it is
 * evaluated (jinja 3 defers it so in conditional blocks). Nesting is bounded so that a
 * hostile template cannot overflow the C stack.
 */
#include "template/internal.h"

#include <string.h>

#define MAX_NEST 200

typedef struct parser {
    tmpl_arena *a;
    ttok *t;
    size_t n, i;
    int nest;           /* expression and statement nesting */
    int loops;          /* enclosing for loops (for break/continue) */
} parser;

_Noreturn static void pfail(parser *p, uint32_t pos, const char *fmt, const char *arg)
{
    tmpl_throw(p->a->err, pos, fmt, arg);
}

static ttok *cur(parser *p) { return &p->t[p->i]; }
static ttok *peek(parser *p, size_t k) { return &p->t[p->i + k < p->n ? p->i + k : p->n - 1]; }
static ttok *next(parser *p) { ttok *t = cur(p); if (p->i + 1 < p->n) p->i++; return t; }

static bool is_op(parser *p, int op) { return cur(p)->k == K_OP && cur(p)->op == op; }
static bool is_name(parser *p, const char *name) { return cur(p)->k == K_NAME && !strcmp(cur(p)->s, name); }
static bool skip_op(parser *p, int op) { if (!is_op(p, op)) return false; next(p); return true; }
static bool skip_name(parser *p, const char *name) { if (!is_name(p, name)) return false; next(p); return true; }

static const char *tok_desc(ttok *t)
{
    switch (t->k) {
    case K_DATA: return "template text";
    case K_VAR_BEGIN: return "'{{'";
    case K_VAR_END: return "'}}'";
    case K_BLOCK_BEGIN: return "'{%'";
    case K_BLOCK_END: return "'%}'";
    case K_NAME: return t->s;
    case K_STRING: return "a string";
    case K_INT: case K_FLOAT: return "a number";
    case K_EOF: return "the end of the template";
    default: return "an operator";
    }
}

static void expect_op(parser *p, int op, const char *what)
{
    if (!skip_op(p, op)) {
        char msg[128];
        snprintf(msg, sizeof msg, "expected '%s', found %s", what, tok_desc(cur(p)));
        pfail(p, cur(p)->pos, "%s", msg);
    }
}

static void expect_end(parser *p)
{
    if (cur(p)->k != K_BLOCK_END) pfail(p, cur(p)->pos, "expected the end of the statement ('%%}'), found %s", tok_desc(cur(p)));
    next(p);
}

static const char *expect_ident(parser *p)
{
    if (cur(p)->k != K_NAME) pfail(p, cur(p)->pos, "expected a name, found %s", tok_desc(cur(p)));
    return next(p)->s;
}

static tnode *node(parser *p, int kind, uint32_t pos)
{
    tnode *n = tmpl_alloc(p->a, sizeof *n);
    n->kind = (uint8_t)kind;
    n->pos = pos;
    return n;
}

/* A growing array of children (and keyword names), finished into a node. */
typedef struct kids { tnode **v; const char **kw; size_t n, cap; } kids;

static void kids_add(parser *p, kids *k, tnode *child, const char *kw)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 4;
        k->v = tmpl_realloc(p->a, k->v, k->cap * sizeof *k->v, tmpl_mul(p->a, cap, sizeof *k->v));
        k->kw = tmpl_realloc(p->a, k->kw, k->cap * sizeof *k->kw, tmpl_mul(p->a, cap, sizeof *k->kw));
        k->cap = cap;
    }
    k->v[k->n] = child;
    k->kw[k->n] = kw;
    k->n++;
}

static void kids_set(tnode *n, kids *k) { n->kids = k->v; n->kw = k->kw; n->n = k->n; }

static void enter(parser *p)
{
    if (++p->nest > MAX_NEST) pfail(p, cur(p)->pos, "%s", "template nested too deeply");
}

/* ---- expressions ---- */

static tnode *parse_expr(parser *p, bool condexpr);
static tnode *parse_tuple(parser *p, bool condexpr, bool parens);
static tnode *parse_unary(parser *p, bool filters);

static void parse_args(parser *p, kids *k)
{
    expect_op(p, OP_LPAREN, "(");
    while (!is_op(p, OP_RPAREN)) {
        if (k->n) {
            expect_op(p, OP_COMMA, ",");
            if (is_op(p, OP_RPAREN)) break;
        }
        if (is_op(p, OP_MUL) || is_op(p, OP_POW)) pfail(p, cur(p)->pos, "%s", "*args and **kwargs in calls are not supported");
        const char *kw = NULL;
        if (cur(p)->k == K_NAME && peek(p, 1)->k == K_OP && peek(p, 1)->op == OP_ASSIGN) {
            kw = next(p)->s;
            next(p);
        } else {
            for (size_t j = 0; j < k->n; j++)
                if (k->kw[j]) pfail(p, cur(p)->pos, "%s", "a positional argument follows a keyword argument");
        }
        kids_add(p, k, parse_expr(p, true), kw);
    }
    next(p);
}

/* A filter or test name; jinja allows dots in them (no builtin has any). */
static const char *dotted_name(parser *p)
{
    const char *name = expect_ident(p);
    while (is_op(p, OP_DOT)) {
        next(p);
        const char *part = expect_ident(p);
        size_t a = strlen(name), b = strlen(part);
        char *joined = tmpl_alloc(p->a, a + b + 2);
        memcpy(joined, name, a);
        joined[a] = '.';
        memcpy(joined + a + 1, part, b);
        name = joined;
    }
    return name;
}

static tnode *parse_filter(parser *p, tnode *in)
{
    /* at the filter name, after '|' */
    uint32_t pos = cur(p)->pos;
    const char *name = dotted_name(p);
    tnode *f = node(p, E_FILTER, pos);
    f->a = in;
    f->name = name;
    f->id = tmpl_filter_id(name);   /* unknown: an error when evaluated, as in jinja 3 */
    kids k = { 0 };
    if (is_op(p, OP_LPAREN)) parse_args(p, &k);
    kids_set(f, &k);
    return f;
}

static tnode *parse_test(parser *p, tnode *in)
{
    /* after 'is' */
    uint32_t pos = cur(p)->pos;
    bool neg = skip_name(p, "not");
    const char *name = dotted_name(p);
    tnode *t = node(p, E_TEST, pos);
    t->a = in;
    t->name = name;
    t->flag = neg;
    t->id = tmpl_test_id(name);
    kids k = { 0 };
    ttok *c = cur(p);
    if (is_op(p, OP_LPAREN)) {
        parse_args(p, &k);
    } else if ((c->k == K_NAME || c->k == K_STRING || c->k == K_INT || c->k == K_FLOAT ||
                (c->k == K_OP && (c->op == OP_LBRACKET || c->op == OP_LBRACE))) &&
               !(c->k == K_NAME && (!strcmp(c->s, "else") || !strcmp(c->s, "or") || !strcmp(c->s, "and") ||
                                    !strcmp(c->s, "if") || !strcmp(c->s, "in") || !strcmp(c->s, "not") ||
                                    !strcmp(c->s, "is")))) {
        /* one argument without parentheses: `x is divisibleby 3` */
        kids_add(p, &k, parse_unary(p, false), NULL);
    }
    kids_set(t, &k);
    return t;
}

static tnode *parse_subscript(parser *p, tnode *obj, uint32_t pos)
{
    /* after '[' */
    tnode *start = NULL, *stop = NULL, *step = NULL;
    if (!is_op(p, OP_COLON)) {
        start = parse_expr(p, true);
        if (skip_op(p, OP_RBRACKET)) {
            tnode *n = node(p, E_ITEM, pos);
            n->a = obj;
            n->b = start;
            return n;
        }
    }
    expect_op(p, OP_COLON, ":");
    if (!is_op(p, OP_RBRACKET) && !is_op(p, OP_COLON)) stop = parse_expr(p, true);
    if (skip_op(p, OP_COLON) && !is_op(p, OP_RBRACKET)) step = parse_expr(p, true);
    expect_op(p, OP_RBRACKET, "]");
    tnode *n = node(p, E_SLICE, pos);
    n->a = obj;
    n->b = start;
    n->c = stop;
    n->d = step;
    return n;
}

static tnode *parse_postfix(parser *p, tnode *e, bool filters)
{
    for (;;) {
        uint32_t pos = cur(p)->pos;
        if (skip_op(p, OP_DOT)) {
            if (cur(p)->k == K_INT) {   /* x.0 is x[0] */
                tnode *n = node(p, E_ITEM, pos);
                n->a = e;
                n->b = node(p, E_CONST, pos);
                n->b->val = tv_int(next(p)->i);
                e = n;
            } else {
                tnode *n = node(p, E_ATTR, cur(p)->pos);   /* errors point at the name */
                n->a = e;
                n->name = expect_ident(p);
                e = n;
            }
        } else if (skip_op(p, OP_LBRACKET)) {
            enter(p);
            e = parse_subscript(p, e, pos);
            p->nest--;
        } else if (is_op(p, OP_LPAREN)) {
            tnode *n = node(p, E_CALL, e->pos);   /* errors point at what is called */
            n->a = e;
            kids k = { 0 };
            enter(p);
            parse_args(p, &k);
            p->nest--;
            kids_set(n, &k);
            e = n;
        } else if (filters && skip_op(p, OP_PIPE)) {
            e = parse_filter(p, e);
        } else if (filters && skip_name(p, "is")) {
            e = parse_test(p, e);
        } else {
            return e;
        }
    }
}

static tnode *constant(parser *p, uint32_t pos, tv v)
{
    tnode *n = node(p, E_CONST, pos);
    n->val = v;
    return n;
}

static tnode *parse_primary(parser *p)
{
    ttok *t = cur(p);
    uint32_t pos = t->pos;
    switch (t->k) {
    case K_NAME: {
        next(p);
        const char *s = t->s;
        if (!strcmp(s, "true") || !strcmp(s, "True")) return constant(p, pos, tv_bool(true));
        if (!strcmp(s, "false") || !strcmp(s, "False")) return constant(p, pos, tv_bool(false));
        if (!strcmp(s, "none") || !strcmp(s, "None")) return constant(p, pos, tv_none());
        tnode *n = node(p, E_NAME, pos);
        n->name = s;
        return n;
    }
    case K_STRING: {
        /* adjacent literals concatenate: "a" "b" */
        size_t total = 0, j = p->i;
        while (p->t[j].k == K_STRING) total += p->t[j++].n;
        tstr *s = tmpl_alloc(p->a, sizeof *s + total + 1);
        while (cur(p)->k == K_STRING) {
            memcpy(s->p + s->n, cur(p)->s, cur(p)->n);
            s->n += cur(p)->n;
            next(p);
        }
        tv v = { .t = TV_STR };
        v.u.s = s;
        return constant(p, pos, v);
    }
    case K_INT: next(p); return constant(p, pos, tv_int(t->i));
    case K_FLOAT: next(p); return constant(p, pos, tv_float(t->f));
    case K_OP:
        if (t->op == OP_LPAREN) {
            next(p);
            tnode *e = parse_tuple(p, true, true);
            expect_op(p, OP_RPAREN, ")");
            return e;
        }
        if (t->op == OP_LBRACKET || t->op == OP_LBRACE) {
            bool dict = t->op == OP_LBRACE;
            next(p);
            tnode *n = node(p, dict ? E_DICT : E_LIST, pos);
            kids k = { 0 };
            int close = dict ? OP_RBRACE : OP_RBRACKET;
            while (!is_op(p, close)) {
                if (k.n) {
                    expect_op(p, OP_COMMA, ",");
                    if (is_op(p, close)) break;
                }
                kids_add(p, &k, parse_expr(p, true), NULL);
                if (dict) {
                    expect_op(p, OP_COLON, ":");
                    kids_add(p, &k, parse_expr(p, true), NULL);
                }
            }
            next(p);
            kids_set(n, &k);
            return n;
        }
        break;
    default:
        break;
    }
    pfail(p, pos, "expected an expression, found %s", tok_desc(t));
}

static tnode *parse_unary(parser *p, bool filters)
{
    uint32_t pos = cur(p)->pos;
    enter(p);
    tnode *e;
    if (is_op(p, OP_SUB) || is_op(p, OP_ADD)) {
        int kind = is_op(p, OP_SUB) ? E_NEG : E_POS;
        next(p);
        e = node(p, kind, pos);
        e->a = parse_unary(p, false);
    } else {
        e = parse_primary(p);
    }
    e = parse_postfix(p, e, filters);
    p->nest--;
    return e;
}

static tnode *binary(parser *p, int kind, int op, uint32_t pos, tnode *l, tnode *r)
{
    tnode *n = node(p, kind, pos);
    n->op = (uint8_t)op;
    n->a = l;
    n->b = r;
    return n;
}

static tnode *parse_pow(parser *p)
{
    tnode *l = parse_unary(p, true);
    while (is_op(p, OP_POW)) {
        uint32_t pos = next(p)->pos;
        l = binary(p, E_BIN, OP_POW, pos, l, parse_unary(p, true));
    }
    return l;
}

static tnode *parse_math2(parser *p)
{
    tnode *l = parse_pow(p);
    while (is_op(p, OP_MUL) || is_op(p, OP_DIV) || is_op(p, OP_FLOORDIV) || is_op(p, OP_MOD)) {
        ttok *t = next(p);
        l = binary(p, E_BIN, t->op, t->pos, l, parse_pow(p));
    }
    return l;
}

static tnode *parse_concat(parser *p)
{
    tnode *l = parse_math2(p);
    if (!is_op(p, OP_TILDE)) return l;
    tnode *n = node(p, E_CONCAT, cur(p)->pos);
    kids k = { 0 };
    kids_add(p, &k, l, NULL);
    while (skip_op(p, OP_TILDE)) kids_add(p, &k, parse_math2(p), NULL);
    kids_set(n, &k);
    return n;
}

static tnode *parse_math1(parser *p)
{
    tnode *l = parse_concat(p);
    while (is_op(p, OP_ADD) || is_op(p, OP_SUB)) {
        ttok *t = next(p);
        l = binary(p, E_BIN, t->op, t->pos, l, parse_concat(p));
    }
    return l;
}

static tnode *parse_compare(parser *p)
{
    tnode *l = parse_math1(p), *result = NULL;
    for (;;) {
        ttok *t = cur(p);
        int op;
        if (t->k == K_OP && t->op >= OP_EQ && t->op <= OP_GE) { op = t->op; next(p); }
        else if (is_name(p, "in")) { op = OP_IN; next(p); }
        else if (is_name(p, "not") && peek(p, 1)->k == K_NAME && !strcmp(peek(p, 1)->s, "in")) { op = OP_NOTIN; next(p); next(p); }
        else break;
        tnode *r = parse_math1(p);
        /* a < b < c is (a < b) and (b < c), as in Python */
        tnode *cmp = binary(p, E_CMP, op, t->pos, l, r);
        result = result ? binary(p, E_AND, 0, t->pos, result, cmp) : cmp;
        l = r;
    }
    return result ? result : l;
}

static tnode *parse_not(parser *p)
{
    if (is_name(p, "not")) {
        uint32_t pos = next(p)->pos;
        enter(p);
        tnode *n = node(p, E_NOT, pos);
        n->a = parse_not(p);
        p->nest--;
        return n;
    }
    return parse_compare(p);
}

static tnode *parse_and(parser *p)
{
    tnode *l = parse_not(p);
    while (is_name(p, "and")) {
        uint32_t pos = next(p)->pos;
        l = binary(p, E_AND, 0, pos, l, parse_not(p));
    }
    return l;
}

static tnode *parse_or(parser *p)
{
    tnode *l = parse_and(p);
    while (is_name(p, "or")) {
        uint32_t pos = next(p)->pos;
        l = binary(p, E_OR, 0, pos, l, parse_and(p));
    }
    return l;
}

static tnode *parse_expr(parser *p, bool condexpr)
{
    enter(p);
    tnode *e = parse_or(p);
    while (condexpr && is_name(p, "if")) {
        uint32_t pos = next(p)->pos;
        tnode *n = node(p, E_COND, pos);
        n->a = parse_or(p);
        n->b = e;
        if (skip_name(p, "else")) n->c = parse_expr(p, true);
        e = n;
    }
    p->nest--;
    return e;
}

/* Expressions separated by commas: a tuple when there is a comma. */
static tnode *parse_tuple(parser *p, bool condexpr, bool parens)
{
    uint32_t pos = cur(p)->pos;
    kids k = { 0 };
    bool tuple = false;
    for (;;) {
        if (k.n && !skip_op(p, OP_COMMA)) break;
        ttok *t = cur(p);
        if (k.n && (t->k == K_VAR_END || t->k == K_BLOCK_END || (t->k == K_OP && t->op == OP_RPAREN))) break;
        if (parens && !k.n && t->k == K_OP && t->op == OP_RPAREN) { tuple = true; break; }   /* () */
        kids_add(p, &k, parse_expr(p, condexpr), NULL);
        if (is_op(p, OP_COMMA)) tuple = true;
        else break;
    }
    if (!tuple) return k.v[0];
    tnode *n = node(p, E_TUPLE, pos);
    kids_set(n, &k);
    return n;
}

/* Assignment targets: name, ns.attr (when allowed), or names with commas. */
static void parse_targets(parser *p, kids *k, bool attr)
{
    bool parens = skip_op(p, OP_LPAREN);
    do {
        if (parens && is_op(p, OP_RPAREN)) break;
        uint32_t pos = cur(p)->pos;
        const char *name = expect_ident(p);
        tnode *n = node(p, E_NAME, pos);
        n->name = name;
        if (attr && is_op(p, OP_DOT) && !parens && !k->n) {
            next(p);
            tnode *a = node(p, E_ATTR, pos);
            a->a = n;
            a->name = expect_ident(p);
            n = a;
        }
        kids_add(p, k, n, NULL);
    } while (skip_op(p, OP_COMMA) && cur(p)->k == K_NAME);
    if (parens) expect_op(p, OP_RPAREN, ")");
}

/* ---- statements ---- */

static tnode *parse_body(parser *p, const char *const *ends, const char **found, uint32_t open, const char *what);

static tnode *parse_stmt(parser *p, uint32_t tag);

static const char *const END_IF[] = { "elif", "else", "endif", NULL };
static const char *const END_FOR[] = { "else", "endfor", NULL };

static tnode *parse_if(parser *p, uint32_t pos)
{
    tnode *n = node(p, N_IF, pos);
    n->a = parse_tuple(p, false, false);
    expect_end(p);
    const char *found;
    n->b = parse_body(p, END_IF, &found, pos, "if");
    uint32_t epos = cur(p)->pos;
    next(p);   /* the end word */
    if (!strcmp(found, "elif")) {
        n->c = parse_if(p, epos);   /* consumes through endif */
        return n;
    }
    if (!strcmp(found, "else")) {
        static const char *const end[] = { "endif", NULL };
        expect_end(p);
        n->c = parse_body(p, end, &found, pos, "if");
        next(p);
    }
    expect_end(p);
    return n;
}

static tnode *parse_for(parser *p, uint32_t pos)
{
    tnode *n = node(p, N_FOR, pos);
    kids k = { 0 };
    parse_targets(p, &k, false);
    kids_set(n, &k);
    if (!skip_name(p, "in")) pfail(p, cur(p)->pos, "expected 'in' in a for loop, found %s", tok_desc(cur(p)));
    n->a = parse_tuple(p, false, false);
    if (skip_name(p, "if")) n->b = parse_expr(p, true);
    if (skip_name(p, "recursive")) n->flag = 1;
    expect_end(p);
    const char *found;
    p->loops++;
    n->c = parse_body(p, END_FOR, &found, pos, "for");
    p->loops--;
    next(p);
    if (!strcmp(found, "else")) {
        static const char *const end[] = { "endfor", NULL };
        expect_end(p);
        int loops = p->loops;
        p->loops = 0;
        n->d = parse_body(p, end, &found, pos, "for");
        p->loops = loops;
        next(p);
    }
    expect_end(p);
    return n;
}

static tnode *parse_filters(parser *p)
{
    tnode *f = NULL;
    do f = parse_filter(p, f); while (skip_op(p, OP_PIPE));
    return f;
}

static tnode *parse_set(parser *p, uint32_t pos)
{
    kids k = { 0 };
    parse_targets(p, &k, true);
    if (skip_op(p, OP_ASSIGN)) {
        tnode *n = node(p, N_SET, pos);
        kids_set(n, &k);
        n->a = parse_tuple(p, true, false);
        expect_end(p);
        return n;
    }
    tnode *n = node(p, N_SETBLOCK, pos);
    kids_set(n, &k);
    if (k.n != 1 || k.v[0]->kind != E_NAME) pfail(p, pos, "%s", "a block set assigns one name");
    if (skip_op(p, OP_PIPE)) n->a = parse_filters(p);
    expect_end(p);
    static const char *const end[] = { "endset", NULL };
    const char *found;
    n->b = parse_body(p, end, &found, pos, "set");
    next(p);
    expect_end(p);
    return n;
}

/* Parameters of a macro or a call block: (a, b=default, ...). */
static void parse_params(parser *p, kids *k)
{
    expect_op(p, OP_LPAREN, "(");
    while (!is_op(p, OP_RPAREN)) {
        if (k->n) expect_op(p, OP_COMMA, ",");
        tnode *n = node(p, E_NAME, cur(p)->pos);
        n->name = expect_ident(p);
        if (skip_op(p, OP_ASSIGN)) n->a = parse_expr(p, true);
        kids_add(p, k, n, NULL);
    }
    next(p);
}

static tnode *parse_macro(parser *p, uint32_t pos, bool call)
{
    tnode *n = node(p, call ? N_CALLBLOCK : N_MACRO, pos);
    kids k = { 0 };
    if (call) {
        if (is_op(p, OP_LPAREN)) parse_params(p, &k);
        n->a = parse_expr(p, true);
        if (n->a->kind != E_CALL) pfail(p, n->a->pos, "%s", "a call block needs a call: {% call name(...) %}");
    } else {
        n->name = expect_ident(p);
        parse_params(p, &k);
    }
    kids_set(n, &k);
    expect_end(p);
    static const char *const end_macro[] = { "endmacro", NULL }, *const end_call[] = { "endcall", NULL };
    const char *found;
    int loops = p->loops;
    p->loops = 0;
    n->b = parse_body(p, call ? end_call : end_macro, &found, pos, call ? "call" : "macro");
    p->loops = loops;
    next(p);
    expect_end(p);
    return n;
}

/* A statement after its `{%` at tag: nodes carry the tag's position (so
 * "not closed" names where the block opened); complaints about the word
 * point at the word. */
static tnode *parse_stmt(parser *p, uint32_t tag)
{
    ttok *t = cur(p);
    uint32_t wpos = t->pos, pos = tag;
    if (t->k != K_NAME) pfail(p, wpos, "expected a statement name after '{%%', found %s", tok_desc(t));
    const char *w = next(p)->s;
    if (!strcmp(w, "if")) return parse_if(p, pos);
    if (!strcmp(w, "for")) return parse_for(p, pos);
    if (!strcmp(w, "set")) return parse_set(p, pos);
    if (!strcmp(w, "macro")) return parse_macro(p, pos, false);
    if (!strcmp(w, "call")) return parse_macro(p, pos, true);
    if (!strcmp(w, "break") || !strcmp(w, "continue")) {
        if (!p->loops) pfail(p, wpos, "'%s' outside of a for loop", w);
        expect_end(p);
        return node(p, w[0] == 'b' ? N_BREAK : N_CONTINUE, pos);
    }
    if (!strcmp(w, "filter")) {
        tnode *n = node(p, N_FILTERBLOCK, pos);
        n->a = parse_filters(p);
        expect_end(p);
        static const char *const end[] = { "endfilter", NULL };
        const char *found;
        n->b = parse_body(p, end, &found, pos, "filter");
        next(p);
        expect_end(p);
        return n;
    }
    if (!strcmp(w, "with")) {
        tnode *n = node(p, N_WITH, pos);
        kids k = { 0 };
        while (cur(p)->k != K_BLOCK_END) {
            if (k.n) expect_op(p, OP_COMMA, ",");
            tnode *v = node(p, E_NAME, cur(p)->pos);
            v->name = expect_ident(p);
            expect_op(p, OP_ASSIGN, "=");
            v->a = parse_expr(p, true);
            kids_add(p, &k, v, NULL);
        }
        kids_set(n, &k);
        expect_end(p);
        static const char *const end[] = { "endwith", NULL };
        const char *found;
        n->b = parse_body(p, end, &found, pos, "with");
        next(p);
        expect_end(p);
        return n;
    }
    if (!strcmp(w, "generation")) {   /* transformers' AssistantTracker tag: renders its body */
        expect_end(p);
        static const char *const end[] = { "endgeneration", NULL };
        const char *found;
        tnode *n = parse_body(p, end, &found, pos, "generation");
        next(p);
        expect_end(p);
        return n;
    }
    if (!strcmp(w, "do"))
        pfail(p, wpos, "%s", "unsupported statement 'do' (Hugging Face's environment does not enable the do extension)");
    if (!strcmp(w, "include") || !strcmp(w, "import") || !strcmp(w, "from") || !strcmp(w, "extends") ||
        !strcmp(w, "block") || !strcmp(w, "autoescape") || !strcmp(w, "trans"))
        pfail(p, wpos, "unsupported statement '%s' in a chat template", w);
    pfail(p, wpos, "unknown statement '%s'", w);
}

static const char *end_word(const char *const *ends)
{
    for (const char *const *e = ends; *e; e++) if (!strncmp(*e, "end", 3)) return *e;
    return ends[0];
}

/* Statements until a `{% word %}` with word in ends (then *found is it and
 * the parser stands on that word), or the end of the template (ends NULL). */
static tnode *parse_body(parser *p, const char *const *ends, const char **found, uint32_t open, const char *what)
{
    enter(p);
    tnode *body = node(p, N_BODY, cur(p)->pos);
    kids k = { 0 };
    for (;;) {
        ttok *t = cur(p);
        if (t->k == K_EOF) {
            if (!ends) break;
            char msg[160];
            snprintf(msg, sizeof msg, "unexpected end of template: this '%s' is not closed with '%s'", what, end_word(ends));
            pfail(p, open, "%s", msg);
        }
        if (t->k == K_DATA) {
            tnode *n = node(p, N_DATA, t->pos);
            tstr *s = tmpl_alloc(p->a, sizeof *s + t->n + 1);
            memcpy(s->p, t->s, t->n);
            s->n = t->n;
            n->val.t = TV_STR;
            n->val.u.s = s;
            kids_add(p, &k, n, NULL);
            next(p);
        } else if (t->k == K_VAR_BEGIN) {
            next(p);
            tnode *n = node(p, N_OUT, t->pos);
            n->a = parse_tuple(p, true, false);
            if (cur(p)->k != K_VAR_END) pfail(p, cur(p)->pos, "expected '}}', found %s", tok_desc(cur(p)));
            next(p);
            kids_add(p, &k, n, NULL);
        } else if (t->k == K_BLOCK_BEGIN) {
            ttok *w = peek(p, 1);
            if (w->k == K_NAME && ends)
                for (const char *const *e = ends; *e; e++)
                    if (!strcmp(w->s, *e)) { next(p); *found = *e; goto done; }
            if (w->k == K_NAME && (!strncmp(w->s, "end", 3) || !strcmp(w->s, "elif") || !strcmp(w->s, "else"))) {
                if (!ends) pfail(p, w->pos, "unexpected '%s' with no open block", w->s);
                int line, col;
                tmpl_line_col(p->a->err->src, p->a->err->src_len, open, &line, &col);
                char msg[200];
                snprintf(msg, sizeof msg, "unexpected '%s': the '%s' at line %d, column %d must be closed with '%s' first",
                         w->s, what, line, col, end_word(ends));
                pfail(p, w->pos, "%s", msg);
            }
            next(p);
            kids_add(p, &k, parse_stmt(p, t->pos), NULL);
        } else {
            pfail(p, t->pos, "unexpected %s", tok_desc(t));
        }
    }
done:
    kids_set(body, &k);
    p->nest--;
    return body;
}

tnode *tmpl_parse_tokens(tmpl_arena *a, ttok *toks, size_t n)
{
    parser p = { .a = a, .t = toks, .n = n };
    return parse_body(&p, NULL, NULL, 0, NULL);
}
