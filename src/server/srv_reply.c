/* srv_reply.c — what happens to generated text before it reaches a client.
 *
 * Two filters, both streaming: the stop-string filter holds back the tail
 * that could still become a stop string, and the reply parser splits the
 * rest into reasoning (<think>...</think> at the start of a reply, or after
 * a prompt that opened it), content, and Qwen-style tool calls
 * (<tool_call>{"name": ..., "arguments": {...}}</tool_call>). Each holds
 * back only what a later piece could change, so a streamed reply and a
 * non-streamed one are made of the same events. Tags are ASCII and stop
 * strings valid UTF-8, so no cut ever falls inside a character.
 */
#include "server/srv.h"

#if defined(MF_HAVE_MICROHTTPD) && defined(MF_HAVE_JANSSON)

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- buffers ---- */

static int buf_reserve(srv_buf *b, size_t extra)
{
    if (b->n + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int srv_buf_add(srv_buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int srv_buf_addf(srv_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0 || buf_reserve(b, (size_t)k)) return -1;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
    return 0;
}

void srv_buf_drop(srv_buf *b, size_t n)
{
    if (n >= b->n) n = b->n;
    memmove(b->p, b->p + n, b->n - n);
    b->n -= n;
    if (b->p) b->p[b->n] = 0;
}

void srv_buf_free(srv_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* Length of the valid UTF-8 character at s[0..n), or 0 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}

int srv_buf_add_utf8(srv_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n) {
        size_t k = utf8_char(u + i, n - i);
        if (k) { i += k; continue; }
        if (srv_buf_add(b, s + run, i - run) || srv_buf_add(b, "\xEF\xBF\xBD", 3)) return -1;
        run = ++i;
    }
    return srv_buf_add(b, s + run, n - run);
}

void srv_random_id(char *out, size_t cap, const char *prefix, int n)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char r[64];
    if (n > 64) n = 64;
    if (getrandom(r, (size_t)n, 0) != n) { /* no entropy: time and address are unique enough for ids */
        uint64_t x = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)out;
        for (int i = 0; i < n; i++) { x = x * 6364136223846793005ull + 1442695040888963407ull; r[i] = (unsigned char)(x >> 33); }
    }
    size_t k = (size_t)snprintf(out, cap, "%s", prefix);
    for (int i = 0; i < n && k + 1 < cap; i++) out[k++] = al[r[i] % (sizeof al - 1)];
    if (k < cap) out[k] = 0;
}

/* ---- stop strings ---- */

void srv_stopper_init(srv_stopper *st, const char *const *stop, int n_stop)
{
    memset(st, 0, sizeof *st);
    st->stop = stop;
    st->n_stop = n_stop;
}

/* Longest proper prefix of tag that ends p[0..n). */
static size_t partial_suffix(const char *p, size_t n, const char *tag, size_t tn)
{
    for (size_t k = tn - 1 < n ? tn - 1 : n; k > 0; k--)
        if (!memcmp(p + n - k, tag, k)) return k;
    return 0;
}

int srv_stopper_feed(srv_stopper *st, const char *s, size_t n, srv_buf *out)
{
    if (st->n_stop == 0) return srv_buf_add(out, s, n);
    if (srv_buf_add(&st->pend, s, n)) return -1;
    size_t first = SIZE_MAX, hold = 0;
    for (int i = 0; i < st->n_stop; i++) {
        size_t sl = strlen(st->stop[i]);
        const char *hit = memmem(st->pend.p, st->pend.n, st->stop[i], sl);
        if (hit && (size_t)(hit - st->pend.p) < first) first = (size_t)(hit - st->pend.p);
        size_t k = partial_suffix(st->pend.p, st->pend.n, st->stop[i], sl);
        if (k > hold) hold = k;
    }
    if (first != SIZE_MAX) {
        int rc = srv_buf_add(out, st->pend.p, first);
        st->pend.n = 0;
        return rc ? -1 : 1;
    }
    size_t give = st->pend.n - hold;
    if (srv_buf_add(out, st->pend.p, give)) return -1;
    srv_buf_drop(&st->pend, give);
    return 0;
}

int srv_stopper_flush(srv_stopper *st, srv_buf *out)
{
    int rc = srv_buf_add(out, st->pend.p, st->pend.n);
    st->pend.n = 0;
    return rc;
}

void srv_stopper_free(srv_stopper *st) { srv_buf_free(&st->pend); }

/* ---- the reply parser ---- */

enum { st_start, st_think, st_content, st_tool };
enum { f_trim = 16 }; /* or-ed into state: drop leading blanks first */

static const char T_THINK[] = "<think>", T_ENDTHINK[] = "</think>";
static const char T_TOOL[] = "<tool_call>", T_ENDTOOL[] = "</tool_call>";
#define TLEN(t) (sizeof(t) - 1)

static bool blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

void srv_reply_init(srv_reply *r, bool tools, srv_think think, srv_emit_fn emit, void *ctx)
{
    memset(r, 0, sizeof *r);
    r->tools = tools;
    r->emit = emit;
    r->ctx = ctx;
    r->state = think == SRV_THINK_DETECT ? st_start : think == SRV_THINK_OPEN ? (st_think | f_trim) : st_content;
}

void srv_reply_free(srv_reply *r) { srv_buf_free(&r->pend); }

static int emit_text(srv_reply *r, srv_ev ev, const char *s, size_t n, bool trim_end)
{
    while (trim_end && n && blank(s[n - 1])) n--;
    return n ? r->emit(r->ctx, ev, s, n, NULL, 0) : 0;
}

/* The body of a <tool_call>: {"name": "...", "arguments": {...} or "..."}.
 * Anything else is given back as content, tags included. */
static int emit_tool(srv_reply *r, const char *s, size_t n, bool closed)
{
    json_error_t je;
    json_t *o = json_loadb(s, n, 0, &je);
    json_t *name = json_object_get(o, "name"), *args = json_object_get(o, "arguments");
    if (!json_is_object(o) || !json_is_string(name) || (args && !json_is_object(args) && !json_is_string(args))) {
        json_decref(o);
        srv_buf raw = { 0 };
        int rc = srv_buf_add(&raw, T_TOOL, TLEN(T_TOOL)) || srv_buf_add(&raw, s, n) ||
                         (closed && srv_buf_add(&raw, T_ENDTOOL, TLEN(T_ENDTOOL)))
                     ? -1
                     : r->emit(r->ctx, SRV_EV_CONTENT, raw.p, raw.n, NULL, 0);
        srv_buf_free(&raw);
        return rc;
    }
    char *a = !args ? strdup("{}") : json_is_string(args) ? strdup(json_string_value(args))
                                                          : json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
    int rc = a ? r->emit(r->ctx, SRV_EV_TOOL_CALL, json_string_value(name), json_string_length(name), a, strlen(a)) : -1;
    if (!rc) r->n_tool_calls++;
    free(a);
    json_decref(o);
    return rc;
}

/* Consumes as much of pend as can be decided; final: everything. */
static int step(srv_reply *r, bool final)
{
    srv_buf *b = &r->pend;
    for (;;) {
        if (r->state & f_trim) {
            size_t i = 0;
            while (i < b->n && blank(b->p[i])) i++;
            srv_buf_drop(b, i);
            if (!b->n) return 0;
            r->state &= ~f_trim;
        }
        if (!b->n) return 0;
        const char *p = b->p;
        size_t n = b->n;
        if (r->state == st_start) {
            size_t i = 0;
            while (i < n && blank(p[i])) i++;
            size_t rest = n - i;
            if (rest >= TLEN(T_THINK) && !memcmp(p + i, T_THINK, TLEN(T_THINK))) {
                srv_buf_drop(b, i + TLEN(T_THINK));
                r->state = st_think | f_trim;
                continue;
            }
            if (!final && rest < TLEN(T_THINK) && !memcmp(p + i, T_THINK, rest)) return 0; /* still undecided */
            r->state = st_content;
            continue;
        }
        if (r->state == st_think) {
            const char *e = memmem(p, n, T_ENDTHINK, TLEN(T_ENDTHINK));
            if (e) {
                if (emit_text(r, SRV_EV_REASONING, p, (size_t)(e - p), true)) return -1;
                srv_buf_drop(b, (size_t)(e - p) + TLEN(T_ENDTHINK));
                r->state = st_content | f_trim;
                continue;
            }
            size_t keep = final ? 0 : partial_suffix(p, n, T_ENDTHINK, TLEN(T_ENDTHINK));
            while (!final && keep < n && blank(p[n - keep - 1])) keep++;
            if (emit_text(r, SRV_EV_REASONING, p, n - keep, final)) return -1;
            srv_buf_drop(b, n - keep);
            return 0;
        }
        if (r->state == st_content) {
            if (!r->tools) {
                if (emit_text(r, SRV_EV_CONTENT, p, n, false)) return -1;
                b->n = 0;
                return 0;
            }
            const char *t = memmem(p, n, T_TOOL, TLEN(T_TOOL));
            if (t) {
                if (emit_text(r, SRV_EV_CONTENT, p, (size_t)(t - p), true)) return -1;
                srv_buf_drop(b, (size_t)(t - p) + TLEN(T_TOOL));
                r->state = st_tool;
                continue;
            }
            size_t keep = final ? 0 : partial_suffix(p, n, T_TOOL, TLEN(T_TOOL));
            while (!final && keep < n && blank(p[n - keep - 1])) keep++;
            if (emit_text(r, SRV_EV_CONTENT, p, n - keep, false)) return -1;
            srv_buf_drop(b, n - keep);
            return 0;
        }
        /* st_tool: wait for the closing tag; at the end, a complete JSON
         * body without it still counts (the model stopped right after). */
        const char *e = memmem(p, n, T_ENDTOOL, TLEN(T_ENDTOOL));
        if (!e && !final) return 0;
        size_t body = e ? (size_t)(e - p) : n;
        if (emit_tool(r, p, body, e != NULL)) return -1;
        srv_buf_drop(b, e ? body + TLEN(T_ENDTOOL) : n);
        r->state = st_content | f_trim;
    }
}

int srv_reply_feed(srv_reply *r, const char *s, size_t n)
{
    if (srv_buf_add(&r->pend, s, n)) return -1;
    return step(r, false);
}

int srv_reply_finish(srv_reply *r) { return step(r, true); }

#endif
