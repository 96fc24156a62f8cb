/* tokenize.c — text to token ids: special tokens first, then the model.
 *
 * Special tokens are cut out of the raw text before anything else sees it,
 * the way llama.cpp's tokenizer_st_partition does: for each special token,
 * longest text first, every occurrence inside the still-raw fragments
 * becomes a token fragment. USER_DEFINED tokens are always matched (Hugging
 * Face treats added non-special tokens that way); CONTROL and UNKNOWN ones
 * only with parse_special, otherwise "<|im_start|>" is plain text.
 *
 * The raw fragments left over then go through the vocabulary's model:
 * NFC (Qwen), regex split and byte-level BPE, or SentencePiece with a space
 * prefix at the start and after each special token.
 */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

typedef struct frag { size_t off, len; int32_t id; } frag;   /* id < 0: raw text */
typedef struct frags { frag *p; size_t n, cap; } frags;

static int frags_push(frags *f, size_t off, size_t len, int32_t id, mf_error *e)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        frag *q = realloc(f->p, cap * sizeof *q);
        if (!q) return mf_fail(e, "out of memory");
        f->p = q;
        f->cap = cap;
    }
    f->p[f->n++] = (frag){ off, len, id };
    return 0;
}

static int partition(const tok_vocab *v, const char *s, size_t n, bool parse_special, frags *cur, mf_error *e)
{
    frags next = { 0 };
    int rc = 0;
    cur->n = 0;
    if (n == 0) return 0;
    if (frags_push(cur, 0, n, -1, e)) return -1;
    for (uint32_t k = 0; k < v->n_special && rc == 0; k++) {
        int32_t id = v->special[k];
        if (!parse_special && (v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) continue;
        size_t tn;
        const char *t = tok_text(v, id, &tn);
        bool changed = false;
        next.n = 0;
        for (size_t i = 0; i < cur->n && rc == 0; i++) {
            frag f = cur->p[i];
            if (f.id >= 0 || f.len < tn) { rc = frags_push(&next, f.off, f.len, f.id, e); continue; }
            size_t pos = f.off, end = f.off + f.len;
            const char *m;
            while (rc == 0 && end - pos >= tn && (m = memmem(s + pos, end - pos, t, tn))) {
                size_t at = (size_t)(m - s);
                if (at > pos) rc = frags_push(&next, pos, at - pos, -1, e);
                if (rc == 0) rc = frags_push(&next, at, tn, id, e);
                pos = at + tn;
                changed = true;
            }
            if (rc == 0 && pos < end) rc = frags_push(&next, pos, end - pos, -1, e);
        }
        if (changed) { frags t2 = *cur; *cur = next; next = t2; }
    }
    free(next.p);
    return rc;
}

static int raw_fragment(const tok_vocab *v, tok_work *w, const char *s, size_t n, bool prev_special, tok_ids *out,
                        mf_error *e)
{
    if (v->model == TOK_MODEL_SPM) return tok_spm_fragment(v, w, s, n, v->add_space_prefix && prev_special, out, e);
    if (!v->nfc) return tok_bpe_fragment(v, w, s, n, out, e);
    char *norm;
    size_t nn;
    if (tok_nfc(s, n, &norm, &nn, e)) return -1;
    int rc = tok_bpe_fragment(v, w, norm, nn, out, e);
    free(norm);
    return rc;
}

int mf_tokenize(const mf_vocab *v, const char *text, size_t len, bool parse_special, bool add_bos,
                int32_t **ids, size_t *n, mf_error *e)
{
    tok_ids out = { 0 };
    frags fr = { 0 };
    tok_work w = { 0 };
    int rc = 0;
    *ids = NULL;
    *n = 0;
    if (add_bos) {
        if (v->bos < 0) return mf_fail(e, "%s: a BOS token was asked for but the vocabulary has none", v->path);
        rc = tok_ids_push(&out, v->bos, e);
    }
    if (rc == 0) rc = partition(v, text, len, parse_special, &fr, e);
    bool prev_special = true;   /* SentencePiece: the text starts a word */
    for (size_t i = 0; rc == 0 && i < fr.n; i++) {
        if (fr.p[i].id >= 0) {
            rc = tok_ids_push(&out, fr.p[i].id, e);
            prev_special = true;
        } else {
            rc = raw_fragment(v, &w, text + fr.p[i].off, fr.p[i].len, prev_special, &out, e);
            prev_special = false;
        }
    }
    free(fr.p);
    tok_work_free(&w);
    if (rc == 0 && !out.p) {
        out.p = malloc(sizeof *out.p);   /* callers always get something to free */
        if (!out.p) rc = mf_fail(e, "out of memory");
    }
    if (rc) { free(out.p); return -1; }
    *ids = out.p;
    *n = out.n;
    return 0;
}
