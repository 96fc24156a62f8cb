/* decode.c — token ids back to bytes: whole sequences (mf_detokenize) and
 * one token at a time for generation (mf_detok).
 *
 * A token's bytes come from the piece table built at load time. Two rules
 * shape what is printed:
 *  - CONTROL and UNKNOWN tokens print their text only when `special` is
 *    set; USER_DEFINED tokens (Qwen's <think>, <tool_call>) always do.
 *  - SentencePiece vocabularies with add_space_prefix tokenized "Once" as
 *    "▁Once"; the space that prefix added is dropped from the first token
 *    that prints text (control tokens before it do not count), as Hugging
 *    Face's decoder and llama2.c's run.c do.
 *
 * The streaming decoder never returns part of a UTF-8 character: bytes of
 * a character that a later token may complete are held back. Bytes that no
 * continuation could make valid are passed through at once, so that the
 * concatenation of everything it returns (flush included) is exactly the
 * concatenation of the pieces. It allocates once, at creation.
 */
#include "tokenizer/tokenizer.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static bool prints_text(const tok_vocab *v, int32_t id)
{
    return !(v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN));
}

/* The bytes of id as printed at this point of a sequence; clears *strip
 * once a text token went by. */
static const char *piece_of(const tok_vocab *v, int32_t id, bool special, bool *strip, size_t *n)
{
    const char *p = mf_token_piece(v, id, special, n);
    if (*strip && prints_text(v, id)) {
        if (*n && p[0] == ' ') { p++; (*n)--; }
        *strip = false;
    }
    return p;
}

static int check_id(const tok_vocab *v, int32_t id, size_t at, mf_error *e)
{
    if (id < 0 || (uint32_t)id >= v->n_tokens)
        return mf_fail(e, "token id %" PRId32 " at position %zu is out of range: the vocabulary has %u tokens", id, at,
                       v->n_tokens);
    return 0;
}

int mf_detokenize(const mf_vocab *v, const int32_t *ids, size_t n, bool special, char **text, size_t *len,
                  mf_error *e)
{
    size_t total = 0;
    bool strip = v->add_space_prefix;
    *text = NULL;
    *len = 0;
    for (size_t i = 0; i < n; i++) {
        if (check_id(v, ids[i], i, e)) return -1;
        size_t pn;
        piece_of(v, ids[i], special, &strip, &pn);
        total += pn;
    }
    char *d = malloc(total + 1);
    if (!d) return mf_fail(e, "out of memory for %zu bytes of text", total + 1);
    strip = v->add_space_prefix;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t pn;
        const char *p = piece_of(v, ids[i], special, &strip, &pn);
        memcpy(d + k, p, pn);
        k += pn;
    }
    d[k] = 0;
    *text = d;
    *len = k;
    return 0;
}

/* ---- streaming ---- */

struct mf_detok {
    const tok_vocab *v;
    bool special, strip;
    unsigned char pend[4];      /* start of a character not yet complete */
    size_t npend;
    char *out;                  /* pend + the longest piece */
};

mf_detok *mf_detok_new(const mf_vocab *v, bool special, mf_error *e)
{
    mf_detok *d = calloc(1, sizeof *d);
    if (d) d->out = malloc(v->max_piece_len + 8);
    if (!d || !d->out) {
        if (d) free(d);
        mf_fail(e, "out of memory");
        return NULL;
    }
    d->v = v;
    d->special = special;
    d->strip = v->add_space_prefix;
    return d;
}

void mf_detok_reset(mf_detok *d)
{
    d->npend = 0;
    d->strip = d->v->add_space_prefix;
}

void mf_detok_free(mf_detok *d)
{
    if (!d) return;
    free(d->out);
    free(d);
}

/* How many bytes at the end of s[0..n) are the valid beginning of a UTF-8
 * character that needs more bytes (0 when the tail is complete or can never
 * become valid). */
static size_t incomplete_tail(const unsigned char *s, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = s[n - back];
        if ((c & 0xC0) == 0x80) continue;               /* continuation: look further back */
        size_t need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (need <= back) return 0;                     /* ASCII, invalid lead, or complete */
        if (back >= 2) {                                /* the second byte narrows some leads */
            unsigned char c1 = s[n - back + 1];
            unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
            unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
            if (c1 < lo || c1 > hi) return 0;
        }
        return back;
    }
    return 0;
}

int mf_detok_push(mf_detok *d, int32_t id, const char **out, size_t *len, mf_error *e)
{
    *out = d->out;
    *len = 0;
    if (check_id(d->v, id, 0, e)) return -1;
    size_t pn;
    const char *p = piece_of(d->v, id, d->special, &d->strip, &pn);
    memcpy(d->out, d->pend, d->npend);
    memcpy(d->out + d->npend, p, pn);
    size_t n = d->npend + pn;
    size_t hold = incomplete_tail((const unsigned char *)d->out, n);
    memcpy(d->pend, d->out + n - hold, hold);
    d->npend = hold;
    *len = n - hold;
    return 0;
}

void mf_detok_flush(mf_detok *d, const char **out, size_t *len)
{
    memcpy(d->out, d->pend, d->npend);
    *out = d->out;
    *len = d->npend;
    d->npend = 0;
}
