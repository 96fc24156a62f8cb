/* spm.c — SentencePiece BPE (tokenizer.ggml.model "llama"): spaces become
 * U+2581, every UTF-8 character starts as a symbol, and the adjacent pair
 * whose concatenation is the token with the highest score merges first
 * (ties: the leftmost). A symbol left over that is not a token is spelled
 * with byte tokens <0xNN> ("byte fallback").
 *
 * Same heap-with-stale-entries scheme as bpe.c, so O(n log n) per fragment.
 * Symbols stay contiguous in the escaped text, so the text of a pair is a
 * slice of it and needs no copy.
 */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

typedef struct spm_sym { size_t off, n; int32_t prev, next; } spm_sym;
typedef struct spm_pair { float score; int32_t left, right; size_t size; } spm_pair;

static bool better(const spm_pair *a, const spm_pair *b)
{
    return a->score != b->score ? a->score > b->score : a->left < b->left;
}

static void heap_push(tok_work *w, spm_pair p)
{
    spm_pair *h = w->heap;
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!better(&p, &h[up])) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = p;
}

static spm_pair heap_pop(tok_work *w)
{
    spm_pair *h = w->heap;
    spm_pair top = h[0], last = h[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && better(&h[c + 1], &h[c])) c++;
        if (!better(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (n) h[i] = last;
    return top;
}

static void try_pair(const tok_vocab *v, tok_work *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0) return;
    const spm_sym *s = w->sym;
    size_t size = s[left].n + s[right].n;
    int32_t id = tok_find(v, w->buf + s[left].off, size);
    if (id < 0) return;
    heap_push(w, (spm_pair){ v->score[id], left, right, size });
}

static size_t utf8_len(unsigned char c)
{
    static const unsigned char len[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
    return len[c >> 4];
}

int tok_spm_fragment(const tok_vocab *v, tok_work *w, const char *s, size_t n, bool space_prefix,
                     tok_ids *out, mf_error *e)
{
    /* escape: " " -> U+2581 (3 bytes), with the optional leading space */
    size_t cap = 3 * (n + 1);
    if (n > SIZE_MAX / 4 || tok_reserve((void **)&w->buf, &w->buf_cap, cap, e)) return -1;
    size_t len = 0;
    for (size_t i = 0; i < n + space_prefix; i++) {
        char c = space_prefix ? (i == 0 ? ' ' : s[i - 1]) : s[i];
        if (c == ' ') { memcpy(w->buf + len, "\xe2\x96\x81", 3); len += 3; }
        else w->buf[len++] = c;
    }
    if (len == 0) return 0;
    if (len > INT32_MAX / 2) return mf_fail(e, "a text fragment of %zu bytes is too long", len);

    if (tok_reserve(&w->sym, &w->sym_cap, len * sizeof(spm_sym), e) ||
        tok_reserve(&w->heap, &w->heap_cap, 3 * len * sizeof(spm_pair), e))
        return -1;
    spm_sym *sym = w->sym;
    int32_t ns = 0;
    for (size_t off = 0; off < len; ns++) {
        size_t k = utf8_len((unsigned char)w->buf[off]);
        if (k > len - off) k = len - off;
        sym[ns] = (spm_sym){ off, k, ns - 1, off + k < len ? ns + 1 : -1 };
        off += k;
    }
    w->heap_n = 0;
    for (int32_t i = 1; i < ns; i++) try_pair(v, w, i - 1, i);

    while (w->heap_n) {
        spm_pair p = heap_pop(w);
        spm_sym *l = &sym[p.left], *r = &sym[p.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != p.size) continue;    /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (l->next >= 0) sym[l->next].prev = p.left;
        try_pair(v, w, l->prev, p.left);
        try_pair(v, w, p.left, l->next);
    }

    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        const char *t = w->buf + sym[i].off;
        int32_t id = tok_find(v, t, sym[i].n);
        if (id >= 0) {
            if (tok_ids_push(out, id, e)) return -1;
            continue;
        }
        /* merges only ever build tokens, so this is a single character
         * the vocabulary lacks: spell it in bytes */
        for (size_t b = 0; b < sym[i].n; b++) {
            int32_t bt = v->byte_tok[(unsigned char)t[b]];
            if (bt < 0) bt = v->unk;
            if (bt < 0)
                return mf_fail(e, "%s: byte 0x%02x has no <0x%02X> token and the vocabulary has no unknown token",
                               v->path, (unsigned char)t[b], (unsigned char)t[b]);
            if (tok_ids_push(out, bt, e)) return -1;
        }
    }
    return 0;
}
