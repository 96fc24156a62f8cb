/* arena.c — the interpreter's memory and error channel.
 *
 * A parse or a render allocates from one arena and frees it at once; the
 * arena has a byte budget, so a template that builds ever larger values
 * fails with a message instead of taking the machine's memory. Errors are
 * formatted with the template line and column and unwind with longjmp to
 * the entry point that owns the arena (see internal.h).
 */
#include "template/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tmpl_chunk { tmpl_chunk *next; size_t size; max_align_t data[]; };

#define CHUNK_MIN (64u << 10)

void tmpl_line_col(const char *src, size_t len, uint32_t pos, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; src && i < len && i < pos; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch == '\n') { l++; c = 1; }
        else if ((ch & 0xC0) != 0x80) c++;
    }
    *line = l;
    *col = c;
}

_Noreturn void tmpl_throw(tmpl_err *x, uint32_t pos, const char *fmt, ...)
{
    char msg[MF_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (pos != TMPL_NOPOS && x->src) {
        int line, col;
        tmpl_line_col(x->src, x->src_len, pos, &line, &col);
        mf_fail(x->e, "line %d, column %d: %s", line, col, msg);
    } else {
        mf_fail(x->e, "%s", msg);
    }
    longjmp(x->jb, 1);
}

size_t tmpl_mul(tmpl_arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        tmpl_throw(a->err, TMPL_NOPOS, "template value too large (%zu x %zu bytes)", n, size);
    return n * size;
}

void *tmpl_alloc(tmpl_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (n > a->left) {
        size_t size = n > CHUNK_MIN ? n : CHUNK_MIN;
        if (size > a->max || a->total > a->max - size)
            tmpl_throw(a->err, TMPL_NOPOS, "template used more than %zu MiB of memory", a->max >> 20);
        tmpl_chunk *ch = malloc(sizeof *ch + size);
        if (!ch) tmpl_throw(a->err, TMPL_NOPOS, "out of memory (%zu bytes) rendering the template", size);
        ch->next = a->chunks;
        ch->size = size;
        a->chunks = ch;
        a->total += size;
        a->top = (char *)ch->data;
        a->left = size;
    }
    void *p = a->top;
    a->top += n;
    a->left -= n;
    memset(p, 0, n);
    return p;
}

void *tmpl_realloc(tmpl_arena *a, void *p, size_t old, size_t n)
{
    size_t o16 = (old + 15) & ~(size_t)15, n16 = (n + 15) & ~(size_t)15;
    tmpl_chunk *h = a->chunks;
    /* A block that fills the newest chunk by itself (a large buffer being
     * grown) moves with the C library's realloc, not by copying anew. */
    if (p && h && p == (void *)h->data && (char *)p + o16 == a->top && n16 > h->size) {
        if (n16 > a->max || a->total - h->size > a->max - n16)
            tmpl_throw(a->err, TMPL_NOPOS, "template used more than %zu MiB of memory", a->max >> 20);
        tmpl_chunk *nh = realloc(h, sizeof *nh + n16);
        if (!nh) tmpl_throw(a->err, TMPL_NOPOS, "out of memory (%zu bytes) rendering the template", n16);
        a->total += n16 - nh->size;
        nh->size = n16;
        a->chunks = nh;
        memset((char *)nh->data + o16, 0, n16 - o16);
        a->top = (char *)nh->data + n16;
        a->left = 0;
        return nh->data;
    }
    /* The newest allocation grows in place when its chunk has room. */
    if (p && (char *)p + o16 == a->top && n16 >= o16 && n16 - o16 <= a->left) {
        memset(a->top, 0, n16 - o16);
        a->top += n16 - o16;
        a->left -= n16 - o16;
        return p;
    }
    void *q = tmpl_alloc(a, n);
    if (p) memcpy(q, p, old < n ? old : n);
    return q;
}

void tmpl_arena_free(tmpl_arena *a)
{
    tmpl_chunk *ch = a->chunks;
    while (ch) {
        tmpl_chunk *next = ch->next;
        free(ch);
        ch = next;
    }
    a->chunks = NULL;
    a->top = NULL;
    a->left = a->total = 0;
}
