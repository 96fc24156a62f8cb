/* bpe.c — byte-level BPE: one pre-tokenized word at a time, every byte
 * starts as its own token and the adjacent pair with the lowest merge rank
 * is merged until no pair has a rank.
 *
 * The pairs wait in a binary min-heap keyed by (rank, left position), so a
 * word of n bytes costs O(n log n): a 100 KB run of one character is as
 * cheap per byte as ordinary prose. Entries are not removed when a merge
 * makes them stale; a popped entry is used only if both of its symbols are
 * still alive and still hold the token ids it was pushed with.
 *
 * Symbols are token ids, not strings: a merge is a hash lookup of the pair
 * of ids (vocab.c resolved merges.txt into ids once at load time).
 */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

typedef struct bpe_sym { int32_t id, prev, next; } bpe_sym;
typedef struct bpe_pair { int32_t rank, left, lid, rid, merged; } bpe_pair;

static bool pair_less(const bpe_pair *a, const bpe_pair *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->left < b->left;
}

static void heap_push(tok_work *w, bpe_pair p)
{
    bpe_pair *h = w->heap;
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_less(&p, &h[up])) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = p;
}

static bpe_pair heap_pop(tok_work *w)
{
    bpe_pair *h = w->heap;
    bpe_pair top = h[0], last = h[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_less(&h[c + 1], &h[c])) c++;
        if (!pair_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (n) h[i] = last;
    return top;
}

static void try_pair(const tok_vocab *v, tok_work *w, int32_t left)
{
    bpe_sym *s = w->sym;
    if (left < 0 || s[left].next < 0) return;
    int32_t right = s[left].next;
    const tok_merge *m = tok_merge_find(v, s[left].id, s[right].id);
    if (m) heap_push(w, (bpe_pair){ m->rank, left, s[left].id, s[right].id, m->merged });
}

/* Merges one word (raw bytes) and appends its tokens. */
static int bpe_word(const tok_vocab *v, tok_work *w, const unsigned char *s, size_t n, tok_ids *out, mf_error *e)
{
    if (n == 0) return 0;
    if (n > INT32_MAX / 2) return mf_fail(e, "a pre-tokenized word of %zu bytes is too long", n);

    if (v->ignore_merges) {
        /* llama3: a word that is a token as a whole is that token */
        if (tok_reserve((void **)&w->buf, &w->buf_cap, 2 * n, e)) return -1;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t c = tok_byte_to_cpt(s[i]);
            if (c < 0x80) w->buf[k++] = (char)c;
            else { w->buf[k++] = (char)(0xC0 | c >> 6); w->buf[k++] = (char)(0x80 | (c & 0x3F)); }
        }
        int32_t id = tok_find(v, w->buf, k);
        if (id >= 0) return tok_ids_push(out, id, e);
    }

    if (tok_reserve(&w->sym, &w->sym_cap, n * sizeof(bpe_sym), e)) return -1;
    /* every merge pushes at most two pairs: n - 1 + 2 (n - 1) entries */
    if (tok_reserve(&w->heap, &w->heap_cap, 3 * n * sizeof(bpe_pair), e)) return -1;
    bpe_sym *sym = w->sym;
    for (size_t i = 0; i < n; i++)
        sym[i] = (bpe_sym){ v->byte_tok[s[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1 };
    w->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++) try_pair(v, w, (int32_t)i);

    while (w->heap_n) {
        bpe_pair p = heap_pop(w);
        bpe_sym *l = &sym[p.left];
        if (l->id != p.lid || l->next < 0 || sym[l->next].id != p.rid) continue;   /* stale */
        int32_t r = l->next;
        l->id = p.merged;
        l->next = sym[r].next;
        if (l->next >= 0) sym[l->next].prev = p.left;
        sym[r].id = -2;                                   /* dead */
        try_pair(v, w, l->prev);
        try_pair(v, w, p.left);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        if (sym[i].id >= 0 && tok_ids_push(out, sym[i].id, e)) return -1;
    /* (a byte without a token, id -1, is dropped as llama.cpp drops it) */
    return 0;
}

int tok_bpe_fragment(const tok_vocab *v, tok_work *w, const char *s, size_t n, tok_ids *out, mf_error *e)
{
    if (tok_pretok_split(v, s, n, &w->spans, e)) return -1;
    for (size_t i = 0; i < w->spans.n; i++)
        if (bpe_word(v, w, (const unsigned char *)s + w->spans.p[i].off, w->spans.p[i].len, out, e)) return -1;
    return 0;
}

void tok_work_free(tok_work *w)
{
    free(w->sym);
    free(w->heap);
    free(w->buf);
    free(w->spans.p);
    memset(w, 0, sizeof *w);
}
