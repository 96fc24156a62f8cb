/* internal.h — what the interpreter's files share: the error channel, the
 * arena, tokens, the AST, values and the render context.
 *
 * One idea runs through it: a parse or a render owns one arena, and errors
 * unwind with longjmp to tmpl_parse/tmpl_render, which free that arena. So
 * no code path in between has to free anything or check a status, and a
 * failure anywhere (a missing attribute, a budget exceeded) cannot leak.
 * Nothing here is visible outside src/template.
 */
#ifndef MF_TEMPLATE_INTERNAL_H
#define MF_TEMPLATE_INTERNAL_H

#include "template/template.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors: a message with the template position, then longjmp ---- */

#define TMPL_NOPOS UINT32_MAX

typedef struct tmpl_err {
    jmp_buf jb;
    mf_error *e;
    const char *src;     /* the normalized template text, for line/column */
    size_t src_len;
} tmpl_err;

_Noreturn void tmpl_throw(tmpl_err *x, uint32_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 1-based line and column (in characters) of byte offset pos. */
void tmpl_line_col(const char *src, size_t len, uint32_t pos, int *line, int *col);

/* ---- arena ---- */

typedef struct tmpl_chunk tmpl_chunk;
typedef struct tmpl_arena {
    tmpl_chunk *chunks;
    char *top;           /* next free byte of the newest chunk */
    size_t left;         /* bytes left in it */
    size_t total, max;   /* bytes taken from malloc, and the budget */
    tmpl_err *err;
} tmpl_arena;

void *tmpl_alloc(tmpl_arena *a, size_t n);                 /* zeroed */
void *tmpl_realloc(tmpl_arena *a, void *p, size_t old, size_t n);
void tmpl_arena_free(tmpl_arena *a);
/* n * size, failing cleanly on overflow. */
size_t tmpl_mul(tmpl_arena *a, size_t n, size_t size);

/* ---- tokens (lexer.c) ---- */

enum {
    K_DATA, K_VAR_BEGIN, K_VAR_END, K_BLOCK_BEGIN, K_BLOCK_END,
    K_NAME, K_STRING, K_INT, K_FLOAT, K_OP, K_EOF
};
enum {
    OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_TILDE,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN,
    OP_ASSIGN, OP_LPAREN, OP_RPAREN, OP_LBRACKET, OP_RBRACKET, OP_LBRACE,
    OP_RBRACE, OP_COMMA, OP_DOT, OP_COLON, OP_PIPE, OP_SEMICOLON
};

typedef struct ttok {
    uint8_t k, op;
    uint32_t pos;        /* byte offset in the normalized source */
    const char *s;       /* K_DATA, K_NAME, K_STRING (unescaped): NUL-terminated */
    size_t n;
    int64_t i;           /* K_INT */
    double f;            /* K_FLOAT */
} ttok;

/* Normalizes newlines, drops one trailing newline (as Jinja does), and
 * tokenizes with trim_blocks and lstrip_blocks. *norm gets the normalized
 * source (in the arena), which positions refer to. */
void tmpl_lex(tmpl_arena *a, const char *src, size_t len, const char **norm, size_t *norm_len,
              ttok **toks, size_t *ntoks);

/* ---- values ---- */

enum {
    TV_UNDEF, TV_NONE, TV_BOOL, TV_INT, TV_FLOAT, TV_STR, TV_LIST, TV_DICT,
    TV_NS, TV_LOOP, TV_MACRO, TV_FUNC, TV_METHOD
};

/* A list value is a list, a tuple (prints with parentheses), or what
 * jinja's map/select/reject return: a generator, which is always true,
 * has no length, cannot be indexed or serialized, but iterates. */
enum { TL_LIST, TL_TUPLE, TL_GEN };

typedef struct tstr { size_t n; char p[]; } tstr;          /* p is NUL-terminated */
typedef struct tlist tlist;
typedef struct tdict tdict;
typedef struct tloop tloop;
typedef struct tmacro tmacro;
typedef struct tmethod tmethod;

typedef struct tv {
    uint8_t t;
    uint8_t tuple;       /* TV_LIST: TL_LIST, TL_TUPLE or TL_GEN */
    uint8_t safe;        /* TV_STR: Markup (from |safe, |escape): + and % escape the other side */
    uint8_t owner;       /* TV_UNDEF: the type whose attribute was missing, or TV_UNDEF */
    uint32_t where;      /* TV_UNDEF: 1 + the source offset where it was named, or 0 */
    union {
        bool b;
        int64_t i;
        double f;
        tstr *s;
        tlist *l;
        tdict *d;        /* TV_DICT and TV_NS (a namespace is a mutable dict) */
        tloop *loop;
        tmacro *m;
        int fn;          /* TV_FUNC: a global function id */
        tmethod *meth;
        const char *name;   /* TV_UNDEF: what was looked up (may be NULL) */
    } u;
} tv;

struct tlist { size_t n; tv *v; };
struct tdict {
    size_t n, cap;
    tv *k, *v;
    uint32_t *hash;      /* open addressing over k when n is large, else NULL */
    size_t hcap;
};
struct tmethod { tv self; int id; };

/* ---- AST (parser.c) ---- */

enum {
    N_BODY, N_DATA, N_OUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_CALLBLOCK,
    N_FILTERBLOCK, N_WITH, N_BREAK, N_CONTINUE,
    E_CONST, E_NAME, E_ATTR, E_ITEM, E_SLICE, E_CALL, E_FILTER, E_TEST, E_NOT,
    E_NEG, E_POS, E_BIN, E_CMP, E_AND, E_OR, E_COND, E_LIST, E_TUPLE, E_DICT, E_CONCAT
};

typedef struct tnode tnode;
struct tnode {
    uint8_t kind, op, flag;
    uint32_t pos;
    int id;              /* E_FILTER, E_TEST: builtin id */
    const char *name;    /* E_NAME, E_ATTR, E_FILTER, E_TEST, N_MACRO */
    tv val;              /* E_CONST, N_DATA */
    tnode *a, *b, *c, *d;
    tnode **kids;        /* statements, arguments, items, targets, parameters */
    const char **kw;     /* argument names (NULL entries: positional) */
    size_t n;
};
/* Node fields by kind (a, b, c, d; kids):
 *   N_BODY kids=statements        N_DATA val        N_OUT a=expr
 *   N_IF a=cond b=body c=else (N_IF for elif, N_BODY, or NULL)
 *   N_FOR kids=targets a=iter b=filter c=body d=else, flag=recursive
 *   N_SET kids=targets (E_NAME, or E_ATTR on a namespace) a=value
 *   N_SETBLOCK kids=targets a=filters (innermost a NULL) b=body
 *   N_MACRO name kids=params (E_NAME, a=default) b=body
 *   N_CALLBLOCK a=E_CALL kids=caller params b=body
 *   N_FILTERBLOCK a=filters b=body     N_WITH kids=E_NAME (a=value) b=body
 *   E_ATTR a.name  E_ITEM a[b]  E_SLICE a[b:c:d]  E_CALL a(kids)
 *   E_FILTER a|name(kids)  E_TEST a is [not, flag] name(kids)
 *   E_BIN/E_CMP op a b  E_COND b if a else c  E_LIST/E_TUPLE/E_CONCAT kids
 *   E_DICT kids=key,value,key,value... */

struct tmpl {
    tmpl_arena a;
    tmpl_err err;
    const char *src;     /* normalized */
    size_t len;
    tnode *root;
};

tnode *tmpl_parse_tokens(tmpl_arena *a, ttok *toks, size_t n);

/* ---- render context (eval.c) ---- */

/* A growing text in the arena; its bytes sit in a tstr, so that turning it
 * into a value costs nothing. */
typedef struct tbuf { char *p; size_t n, cap; } tbuf;
typedef struct tscope tscope;

typedef struct tmpl_ctx {
    tmpl_err err;
    tmpl_arena a;
    const tmpl *t;
    tbuf *out;           /* where output goes now */
    tscope *cur;         /* innermost scope */
    tscope *top;         /* the template's top level */
    tmpl_limits lim;
    uint64_t steps;
    int depth;
    uint32_t pos;        /* node being evaluated, for errors raised by builtins */
} tmpl_ctx;

struct tloop {
    tlist *items;
    size_t i;
    int depth;           /* 1-based (loop.depth) */
    const tnode *node;   /* the recursive loop, for loop(...) calls */
    tv changed;          /* the arguments of the last loop.changed(...), undefined before */
};

struct tmacro {
    const tnode *def;    /* N_MACRO, or N_CALLBLOCK for `caller` */
    tscope *closure;
    tv caller;           /* for a call block's macro: the caller, else undefined */
};

_Noreturn void tmpl_fail(tmpl_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One unit of work; fails when the step budget is spent. */
void tmpl_charge(tmpl_ctx *c, uint64_t n);
tv tmpl_call_macro(tmpl_ctx *c, tmacro *m, const tv *args, const char **kw, size_t n);
tv tmpl_call_loop(tmpl_ctx *c, tloop *l, const tv *args, size_t n);

/* ---- values (value.c) ---- */

static inline tv tv_undef(const char *name, uint8_t owner)
{ tv v = { .t = TV_UNDEF, .owner = owner }; v.u.name = name; return v; }
static inline tv tv_none(void) { tv v = { .t = TV_NONE }; return v; }
static inline tv tv_bool(bool b) { tv v = { .t = TV_BOOL }; v.u.b = b; return v; }
static inline tv tv_int(int64_t i) { tv v = { .t = TV_INT }; v.u.i = i; return v; }
static inline tv tv_float(double f) { tv v = { .t = TV_FLOAT }; v.u.f = f; return v; }

void tbuf_put(tmpl_ctx *c, tbuf *b, const char *s, size_t n);
void tbuf_puts(tmpl_ctx *c, tbuf *b, const char *s);
void tbuf_printf(tmpl_ctx *c, tbuf *b, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The text as a string value, without copying; b is left empty. */
tv tbuf_value(tmpl_ctx *c, tbuf *b);

tv tv_str(tmpl_ctx *c, const char *s, size_t n);   /* s NULL: n zero bytes to fill */
tv tv_cstr(tmpl_ctx *c, const char *s);
tv tv_list(tmpl_ctx *c, size_t n);                 /* n items, all none */
tv tv_dict(tmpl_ctx *c, size_t cap);
void tv_dict_set(tmpl_ctx *c, tdict *d, tv k, tv v);
tv *tv_dict_get(const tdict *d, tv k);
tv *tv_dict_gets(const tdict *d, const char *k);

bool tv_truthy(tv v);
bool tv_eq(tv a, tv b);
/* <0, 0, >0 like Python's ordering of numbers, strings, lists; fails otherwise. */
int tv_cmp(tmpl_ctx *c, tv a, tv b);
bool tv_is_num(tv v);
double tv_num(tv v);
const char *tv_type_name(tv v);   /* Python's: str, int, dict, list, NoneType... */

void tv_write_str(tmpl_ctx *c, tbuf *b, tv v);      /* str(v) */
void tv_write_repr(tmpl_ctx *c, tbuf *b, tv v);     /* repr(v) */
typedef struct tjson_opts {
    const char *indent;          /* NULL: one line */
    const char *item_sep, *key_sep;
    bool sort_keys, ensure_ascii;
} tjson_opts;
void tv_write_json(tmpl_ctx *c, tbuf *b, tv v, const tjson_opts *o, int level);
tv tv_to_str(tmpl_ctx *c, tv v);                    /* str(v) as a value */
tv tv_escape(tmpl_ctx *c, tv v);                    /* markupsafe.escape(v): a safe string */
void tv_fmt_float(double f, char out[40]);         /* Python's repr(float) */

/* The items a for loop visits: list items, dict keys, string characters. */
tlist *tv_iter(tmpl_ctx *c, tv v);
/* Fails with Jinja's message for a use of an undefined value. */
_Noreturn void tv_undef_fail(tmpl_ctx *c, tv v);

/* Converts JSON text (jansson) to a value. */
tv tv_from_json(tmpl_ctx *c, const char *json, size_t n);

/* ---- UTF-8 and Python string semantics (text.c) ---- */

size_t tu_decode(const char *s, size_t n, size_t i, uint32_t *cp);   /* bytes of the char at i */
size_t tu_encode(uint32_t cp, char out[4]);
size_t tu_count(const char *s, size_t n);                           /* code points */
size_t tu_offset(const char *s, size_t n, size_t idx);              /* byte offset of code point idx */
bool tu_isspace(uint32_t cp);                                       /* Python's str.isspace */
bool tu_isprint(uint32_t cp);                                       /* Python's str.isprintable */
uint32_t tu_upper(uint32_t cp);
uint32_t tu_lower(uint32_t cp);
bool tu_isalpha(uint32_t cp);
bool tu_isdigit(uint32_t cp);

tv tu_case(tmpl_ctx *c, tv s, int mode);   /* 0 lower, 1 upper, 2 title, 3 capitalize */
tv tu_strip(tmpl_ctx *c, tv s, tv chars, int where);   /* where: 1 left, 2 right, 3 both */
tv tu_split(tmpl_ctx *c, tv s, tv sep, int64_t maxsplit, bool right);
tv tu_replace(tmpl_ctx *c, tv s, tv old, tv new_, int64_t count);
int64_t tu_find(tmpl_ctx *c, tv s, tv sub, bool right);   /* code point index or -1 */
int64_t tu_count_sub(tmpl_ctx *c, tv s, tv sub);
tv tu_format_percent(tmpl_ctx *c, tv fmt, tv args);       /* "..." % args */
tv tu_format_braces(tmpl_ctx *c, tv fmt, const tv *args, const char **kw, size_t n);  /* "...".format() */
tv tmpl_splitlines(tmpl_ctx *c, tv s, bool keepends);           /* str.splitlines */
tv tmpl_pad(tmpl_ctx *c, tv s, int64_t width, tv fill, char align);   /* center/ljust/rjust */

/* ---- builtins (filters.c, methods.c) ---- */

typedef struct targs { size_t n; const tv *v; const char **kw; } targs;
/* Positional argument i or keyword kw; def when absent. */
tv targ(const targs *a, size_t i, const char *kw, tv def);

int tmpl_filter_id(const char *name);      /* -1 if unknown */
int tmpl_test_id(const char *name);
tv tmpl_filter(tmpl_ctx *c, int id, tv x, const targs *a);
bool tmpl_test(tmpl_ctx *c, int id, tv x, const targs *a);

tv tmpl_getattr(tmpl_ctx *c, tv obj, const char *name);   /* obj.name */
tv tmpl_getitem(tmpl_ctx *c, tv obj, tv key);             /* obj[key] */
tv tmpl_slice(tmpl_ctx *c, tv obj, tv start, tv stop, tv step);
tv tmpl_call(tmpl_ctx *c, tv f, const targs *a);
tv tmpl_global(tmpl_ctx *c, const char *name);             /* undefined if none */
bool tmpl_contains(tmpl_ctx *c, tv hay, tv needle);         /* needle in hay */

#endif
