/* srv_reply.c — what happens to generated text before it reaches a client.
 *
 * Two filters, both streaming: the stop-string filter holds back the tail
 * that could still become a stop string, and the reply parser splits the
 * rest into reasoning, content and tool calls. The parser is the library's
 * (mf_reply, src/template/reply.c: <think>, Qwen's and GLM-4.5's
 * <tool_call>, gpt-oss's harmony channels); this file gives its parts the
 * server's event names. Each filter holds back only what a later piece
 * could change, so a streamed reply and a non-streamed one are made of the
 * same events. Markers are ASCII and stop strings valid UTF-8, so no cut
 * ever falls inside a character.
 */
#include "server/srv.h"

#if defined(MF_HAVE_MICROHTTPD) && defined(MF_HAVE_JANSSON)

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

/* ---- the reply parser: the library's, with the server's events ---- */

static int on_part(void *user, mf_reply_part part, const char *a, size_t na, const char *b, size_t nb)
{
    srv_reply *r = user;
    srv_ev ev = part == MF_REPLY_TOOL_CALL ? SRV_EV_TOOL_CALL : part == MF_REPLY_REASONING ? SRV_EV_REASONING : SRV_EV_CONTENT;
    int rc = r->emit(r->ctx, ev, a, na, b, nb);
    if (!rc && ev == SRV_EV_TOOL_CALL) r->n_tool_calls++;
    return rc;
}

void srv_reply_init(srv_reply *r, bool tools, srv_think think, srv_emit_fn emit, void *ctx)
{
    memset(r, 0, sizeof *r);
    r->emit = emit;
    r->ctx = ctx;
    mf_reply_params p = {
        .format = think == SRV_THINK_NONE ? MF_REPLY_PLAIN : think == SRV_THINK_OPEN ? MF_REPLY_TAGS : MF_REPLY_AUTO,
        .think_open = think == SRV_THINK_OPEN,
        .tools = tools,
        .emit = on_part,
        .user = r,
    };
    mf_error e;
    r->split = mf_reply_new(&p, &e); /* only fails for want of memory: feed reports it */
}

void srv_reply_free(srv_reply *r)
{
    mf_reply_free(r->split);
    r->split = NULL;
}

int srv_reply_feed(srv_reply *r, const char *s, size_t n)
{
    if (!r->split) return -1;
    return mf_reply_feed(r->split, s, n) ? -1 : 0;
}

int srv_reply_finish(srv_reply *r) { return r->split && !mf_reply_finish(r->split) ? 0 : -1; }

#endif
