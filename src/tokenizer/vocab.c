/* vocab.c — loading a vocabulary from GGUF metadata, and the lookups every
 * other file of the tokenizer uses.
 *
 * The one idea: after loading, nothing refers back to the GGUF. Token texts
 * are copied into one block, text -> id and (left, right) -> merge are open-
 * addressing hash tables, and the bytes each token decodes to are computed
 * once here (the "piece cache"), so decoding in the generation loop is a
 * table lookup and never allocates.
 *
 * Behaviour follows llama.cpp's llama-vocab.cpp where the GGUF leaves room
 * for interpretation (defaults of special ids, which tokens end generation,
 * which tokens are matched as specials), except that malformed metadata is
 * an error here instead of a warning: an out-of-range special id, a token
 * type outside 0..6, a BYTE token that is not <0xNN>, duplicate tokens.
 *
 * Pre-tokenizer choice: an unknown tokenizer.ggml.pre is an error, as in
 * llama.cpp (guessing would give ids the model was not trained on); a
 * missing one means "default", llama.cpp's fallback regex set (llama.cpp
 * also warns that quality will suffer). One deliberate difference: a gpt2
 * vocabulary without bos/eos keys has no BOS/EOS (-1) here, where llama.cpp
 * assumes id 11.
 */
#include "tokenizer/tokenizer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;            /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(int32_t a, int32_t b)
{
    uint64_t h = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 31);
}

static uint64_t table_size(uint64_t n)
{
    uint64_t s = 16;
    while (s < 2 * n) s <<= 1;
    return s;
}

int32_t tok_find(const tok_vocab *v, const char *s, size_t n)
{
    for (uint64_t i = hash_bytes(s, n) & v->id_mask;; i = (i + 1) & v->id_mask) {
        uint32_t slot = v->id_hash[i];
        if (!slot) return -1;
        size_t tn;
        const char *t = tok_text(v, (int32_t)(slot - 1), &tn);
        if (tn == n && memcmp(t, s, n) == 0) return (int32_t)(slot - 1);
    }
}

const tok_merge *tok_merge_find(const tok_vocab *v, int32_t left, int32_t right)
{
    if (!v->merges || left < 0 || right < 0) return NULL;
    for (uint64_t i = hash_pair(left, right) & v->merge_mask;; i = (i + 1) & v->merge_mask) {
        const tok_merge *m = &v->merges[i];
        if (m->rank < 0) return NULL;
        if (m->left == left && m->right == right) return m;
    }
}

int tok_ids_push(tok_ids *l, int32_t id, mf_error *e)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        int32_t *p = realloc(l->p, cap * sizeof *p);
        if (!p) return mf_fail(e, "out of memory for %zu token ids", cap);
        l->p = p;
        l->cap = cap;
    }
    l->p[l->n++] = id;
    return 0;
}

int tok_reserve(void **p, size_t *cap, size_t need, mf_error *e)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = realloc(*p, c);
    if (!q) return mf_fail(e, "out of memory for %zu bytes of tokenizer scratch", c);
    *p = q;
    *cap = c;
    return 0;
}

/* ---- GPT-2's byte alphabet: printable bytes stand for themselves, the 68
 * others (0x00-0x20, 0x7F-0xA0, 0xAD) get code points 256.. in byte order. */

uint32_t tok_byte_to_cpt(uint8_t b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    if (b <= 0x20) return 256u + b;
    if (b <= 0xA0) return 256u + 33 + (b - 0x7Fu);
    return 256u + 33 + 34;                         /* 0xAD */
}

int tok_cpt_to_byte(uint32_t c)
{
    if ((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF)) return (int)c;
    if (c >= 256 && c <= 256 + 32) return (int)(c - 256);
    if (c >= 256 + 33 && c <= 256 + 66) return (int)(c - 256 - 33 + 0x7F);
    if (c == 256 + 67) return 0xAD;
    return -1;
}

size_t tok_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

static size_t utf8_put(char *d, uint32_t c)
{
    if (c < 0x80) { d[0] = (char)c; return 1; }
    if (c < 0x800) { d[0] = (char)(0xC0 | c >> 6); d[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        d[0] = (char)(0xE0 | c >> 12); d[1] = (char)(0x80 | (c >> 6 & 0x3F)); d[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | c >> 18); d[1] = (char)(0x80 | (c >> 12 & 0x3F));
    d[2] = (char)(0x80 | (c >> 6 & 0x3F)); d[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---- loading ---- */

static const struct { const char *name; tok_pre pre; } pre_names[] = {
    { "default", TOK_PRE_DEFAULT },
    { "gpt-2", TOK_PRE_GPT2 }, { "phi-2", TOK_PRE_GPT2 }, { "mpt", TOK_PRE_GPT2 }, { "olmo", TOK_PRE_GPT2 },
    { "llama-bpe", TOK_PRE_LLAMA3 }, { "llama3", TOK_PRE_LLAMA3 }, { "llama-v3", TOK_PRE_LLAMA3 },
    { "falcon3", TOK_PRE_LLAMA3 }, { "pixtral", TOK_PRE_LLAMA3 }, { "dbrx", TOK_PRE_LLAMA3 },
    { "smaug-bpe", TOK_PRE_LLAMA3 },
    { "qwen2", TOK_PRE_QWEN2 }, { "deepseek-r1-qwen", TOK_PRE_QWEN2 }, { "megrez", TOK_PRE_QWEN2 },
    { "stablelm2", TOK_PRE_QWEN2 }, { "hunyuan", TOK_PRE_QWEN2 },
    { "qwen35", TOK_PRE_QWEN35 },
    { "deepseek-v3", TOK_PRE_DEEPSEEK3 }, { "hunyuan-dense", TOK_PRE_DEEPSEEK3 },
};

/* Token texts llama.cpp treats as ending generation (llama-vocab.cpp keeps
 * this list by text because GGUFs do not record it). The first present of
 * the EOT names becomes the EOT token when the GGUF sets none. */
static const char *const eot_names[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
};
static const char *const eog_names[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<end_of_utterance>",
    "<｜end▁of▁sentence｜>",
    /* fill-in-the-middle pad / repo / file separators end generation too */
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<|fim_repo|>", "<|repo_name|>", "<|file_sep|>",
};

static int32_t find_cstr(const tok_vocab *v, const char *s) { return tok_find(v, s, strlen(s)); }

/* Optional special-token id: absent keeps *id, present must be in range. */
static int read_special(const gguf_file *f, tok_vocab *v, const char *key, int32_t *id, mf_error *e)
{
    if (*id >= 0 && (uint32_t)*id >= v->n_tokens) *id = -1;   /* default out of range */
    if (!gguf_find(f, key)) return 0;
    uint32_t u;
    if (gguf_get_u32(f, key, &u, e)) return -1;
    if (u >= v->n_tokens)
        return mf_fail(e, "%s: %s = %u is out of range: the vocabulary has %u tokens", v->path, key, u, v->n_tokens);
    *id = (int32_t)u;
    return 0;
}

static int load_tokens(const gguf_file *f, tok_vocab *v, mf_error *e)
{
    const gguf_value *tokens;
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING, &tokens, e)) return -1;
    uint64_t n = tokens->v.arr.n;
    if (n == 0) return mf_fail(e, "%s: tokenizer.ggml.tokens is empty", v->path);
    if (n > INT32_MAX - 1) return mf_fail(e, "%s: tokenizer.ggml.tokens has %" PRIu64 " tokens, more than 2^31", v->path, n);
    v->n_tokens = (uint32_t)n;

    const gguf_value *types = NULL, *scores = NULL;
    if (gguf_find(f, "tokenizer.ggml.token_type")) {
        if (gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_INT32, &types, e)) return -1;
        if (types->v.arr.n < n)
            return mf_fail(e, "%s: tokenizer.ggml.token_type has %" PRIu64 " entries for %" PRIu64 " tokens",
                           v->path, types->v.arr.n, n);
    }
    if (gguf_find(f, "tokenizer.ggml.scores")) {
        const gguf_kv *kv = gguf_find(f, "tokenizer.ggml.scores");
        gguf_vtype et = kv->val.type == GGUF_ARRAY && kv->val.v.arr.etype == GGUF_INT32 ? GGUF_INT32 : GGUF_FLOAT32;
        if (gguf_get_arr(f, "tokenizer.ggml.scores", et, &scores, e)) return -1;
        if (scores->v.arr.n < n)
            return mf_fail(e, "%s: tokenizer.ggml.scores has %" PRIu64 " entries for %" PRIu64 " tokens",
                           v->path, scores->v.arr.n, n);
    }

    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) total += tokens->v.arr.items[i].v.s.n ? tokens->v.arr.items[i].v.s.n : 24;
    v->text = malloc(total + 1);
    v->text_off = malloc((n + 1) * sizeof *v->text_off);
    v->attr = calloc(n, sizeof *v->attr);
    v->score = calloc(n, sizeof *v->score);
    v->id_mask = table_size(n) - 1;
    v->id_hash = calloc(v->id_mask + 1, sizeof *v->id_hash);
    if (!v->text || !v->text_off || !v->attr || !v->score || !v->id_hash)
        return mf_fail(e, "%s: out of memory for %" PRIu64 " tokens", v->path, n);

    static const uint16_t type_attr[] = {
        0, TOK_ATTR_NORMAL, TOK_ATTR_UNKNOWN, TOK_ATTR_CONTROL, TOK_ATTR_USER_DEFINED, TOK_ATTR_UNUSED, TOK_ATTR_BYTE,
    };
    uint64_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        const gguf_str *s = &tokens->v.arr.items[i].v.s;
        v->text_off[i] = off;
        if (s->n == 0) {   /* llama.cpp names empty tokens so they stay unique */
            off += (uint64_t)snprintf(v->text + off, 25, "[EMPTY_%" PRIu64 "]", i);
        } else {
            memcpy(v->text + off, s->p, s->n);
            off += s->n;
        }
        uint64_t len = off - v->text_off[i];
        if (len > v->max_token_len) v->max_token_len = (uint32_t)len;
        if (types) {
            int64_t t = gguf_arr_int(types, i);
            if (t < 0 || t > 6)
                return mf_fail(e, "%s: tokenizer.ggml.token_type[%" PRIu64 "] = %" PRId64 ": expected 0..6",
                               v->path, i, t);
            v->attr[i] = type_attr[t];
        } else {
            v->attr[i] = TOK_ATTR_NORMAL;
        }
        if (scores) v->score[i] = (float)gguf_arr_float(scores, i);

        const char *t = v->text + v->text_off[i];
        uint64_t h = hash_bytes(t, (size_t)len) & v->id_mask;
        for (;; h = (h + 1) & v->id_mask) {
            uint32_t slot = v->id_hash[h];
            if (!slot) { v->id_hash[h] = (uint32_t)i + 1; break; }
            size_t on;
            const char *o = tok_text(v, (int32_t)(slot - 1), &on);
            if (on == len && memcmp(o, t, len) == 0) {
                v->text_off[i + 1] = off;
                return mf_fail(e, "%s: tokenizer.ggml.tokens: token %" PRIu64 " '%.*s' duplicates token %u",
                               v->path, i, (int)(len > 64 ? 64 : len), t, slot - 1);
            }
        }
        v->text_off[i + 1] = off;
    }
    v->text[off] = 0;
    return 0;
}

static int load_merges(const gguf_file *f, tok_vocab *v, mf_error *e)
{
    const gguf_value *merges;
    if (!gguf_find(f, "tokenizer.ggml.merges"))
        return mf_fail(e, "%s: tokenizer.ggml.merges is missing (a gpt2 vocabulary needs its merges)", v->path);
    if (gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_STRING, &merges, e)) return -1;
    uint64_t n = merges->v.arr.n;
    if (n > INT32_MAX) return mf_fail(e, "%s: tokenizer.ggml.merges has %" PRIu64 " entries", v->path, n);
    v->merge_mask = table_size(n) - 1;
    v->merges = malloc((v->merge_mask + 1) * sizeof *v->merges);
    if (!v->merges) return mf_fail(e, "%s: out of memory for %" PRIu64 " merges", v->path, n);
    for (uint64_t i = 0; i <= v->merge_mask; i++) v->merges[i].rank = -1;

    char *cat = malloc(2 * (size_t)v->max_token_len + 2);
    if (!cat) return mf_fail(e, "out of memory");
    for (uint64_t r = 0; r < n; r++) {
        const gguf_str *s = &merges->v.arr.items[r].v.s;
        /* "left right": the separator is the first space after byte 0 (a
         * piece is never empty, and byte-level pieces contain no spaces) */
        const char *sp = s->n > 1 ? memchr(s->p + 1, ' ', s->n - 1) : NULL;
        if (!sp) {
            free(cat);
            return mf_fail(e, "%s: tokenizer.ggml.merges[%" PRIu64 "] '%.*s': expected two pieces separated by a space",
                           v->path, r, (int)(s->n > 64 ? 64 : s->n), s->p);
        }
        size_t ln = (size_t)(sp - s->p), rn = s->n - ln - 1;
        int32_t l = tok_find(v, s->p, ln), rt = tok_find(v, sp + 1, rn);
        /* a merge whose parts or result are not tokens can never produce a
         * token: skip it rather than reject a usable vocabulary */
        if (l < 0 || rt < 0 || ln + rn > 2 * (size_t)v->max_token_len) continue;
        memcpy(cat, s->p, ln);
        memcpy(cat + ln, sp + 1, rn);
        int32_t m = tok_find(v, cat, ln + rn);
        if (m < 0) continue;
        uint64_t h = hash_pair(l, rt) & v->merge_mask;
        while (v->merges[h].rank >= 0 && !(v->merges[h].left == l && v->merges[h].right == rt))
            h = (h + 1) & v->merge_mask;
        if (v->merges[h].rank >= 0) continue;      /* duplicate: the first rank wins */
        v->merges[h] = (tok_merge){ l, rt, m, (int32_t)r };
        v->n_merges++;
    }
    free(cat);
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte of a "<0xNN>" token, or -1. */
static int byte_token(const tok_vocab *v, int32_t id)
{
    size_t n;
    const char *t = tok_text(v, id, &n);
    if (n != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>') return -1;
    int hi = hex_digit(t[3]), lo = hex_digit(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi << 4 | lo;
}

/* The bytes token id stands for, written to d (at most its text length). */
static int decode_token(const tok_vocab *v, int32_t id, char *d, size_t *dn, mf_error *e)
{
    size_t n;
    const char *t = tok_text(v, id, &n);
    uint16_t a = v->attr[id];
    *dn = 0;
    if (a & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN | TOK_ATTR_USER_DEFINED)) {
        memcpy(d, t, n);
        *dn = n;
    } else if (a & TOK_ATTR_NORMAL) {
        const unsigned char *s = (const unsigned char *)t;
        for (size_t i = 0; i < n;) {
            uint32_t c;
            size_t k = tok_utf8_next(s + i, n - i, &c);
            if (k == 0) { d[(*dn)++] = (char)s[i++]; continue; }
            if (v->model == TOK_MODEL_BPE && tok_cpt_to_byte(c) >= 0) d[(*dn)++] = (char)tok_cpt_to_byte(c);
            else if (v->model == TOK_MODEL_SPM && c == 0x2581) d[(*dn)++] = ' ';
            else { memcpy(d + *dn, s + i, k); *dn += k; }
            i += k;
        }
    } else if (a & TOK_ATTR_BYTE) {
        int b = byte_token(v, id);
        if (b < 0)
            return mf_fail(e, "%s: token %d '%.*s' has type BYTE but is not of the form <0xNN>", v->path, id,
                           (int)(n > 64 ? 64 : n), t);
        d[0] = (char)b;
        *dn = 1;
    }
    /* UNUSED and UNDEFINED tokens decode to nothing, as in llama.cpp */
    return 0;
}

static int build_pieces(tok_vocab *v, mf_error *e)
{
    /* a token never decodes to more bytes than its text has */
    uint64_t cap = v->text_off[v->n_tokens] + 1;
    v->piece = malloc(cap);
    v->piece_off = malloc((v->n_tokens + 1) * sizeof *v->piece_off);
    if (!v->piece || !v->piece_off) return mf_fail(e, "%s: out of memory for the piece table", v->path);
    uint64_t off = 0;
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        v->piece_off[i] = off;
        size_t dn;
        if (decode_token(v, (int32_t)i, v->piece + off, &dn, e)) return -1;
        off += dn;
        if (dn > v->max_piece_len) v->max_piece_len = dn;
    }
    v->piece_off[v->n_tokens] = off;
    return 0;
}

typedef struct len_id { uint64_t len; int32_t id; } len_id;
static int by_len_desc(const void *a, const void *b)
{
    const len_id *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int build_special(tok_vocab *v, mf_error *e)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < v->n_tokens; i++)
        if (v->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) n++;
    len_id *l = malloc((n ? n : 1) * sizeof *l);
    v->special = malloc((n ? n : 1) * sizeof *v->special);
    if (!l || !v->special) { free(l); return mf_fail(e, "out of memory"); }
    n = 0;
    for (uint32_t i = 0; i < v->n_tokens; i++)
        if (v->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))
            l[n++] = (len_id){ v->text_off[i + 1] - v->text_off[i], (int32_t)i };
    /* longest first, so that "<|im_start|>" is cut out before any special
     * token it contains could be */
    qsort(l, n, sizeof *l, by_len_desc);
    for (uint32_t i = 0; i < n; i++) v->special[i] = l[i].id;
    v->n_special = n;
    free(l);
    return 0;
}

static void mark_eog(tok_vocab *v)
{
    if (v->eot < 0)
        for (size_t i = 0; i < sizeof eot_names / sizeof *eot_names && v->eot < 0; i++)
            v->eot = find_cstr(v, eot_names[i]);
    for (size_t i = 0; i < sizeof eog_names / sizeof *eog_names; i++) {
        int32_t id = find_cstr(v, eog_names[i]);
        if (id >= 0) v->attr[id] |= TOK_ATTR_EOG;
    }
    int32_t ids[] = { v->eos, v->eot, v->eom };
    for (size_t i = 0; i < 3; i++)
        if (ids[i] >= 0) v->attr[ids[i]] |= TOK_ATTR_EOG;
    /* gpt-oss's harmony format (OpenAI's harmony spec): a reply ends with
     * <|return|> or <|call|>; <|end|> only closes one message (the analysis
     * channel) inside it. Its structural markers are printed like text so
     * that the reply parser sees them, as llama.cpp marks them user-defined. */
    int32_t ret = find_cstr(v, "<|return|>"), call = find_cstr(v, "<|call|>");
    if (ret >= 0 && call >= 0) {
        v->attr[ret] |= TOK_ATTR_EOG;
        v->attr[call] |= TOK_ATTR_EOG;
        int32_t end = find_cstr(v, "<|end|>");
        if (end >= 0 && end != v->eos) {
            v->attr[end] &= (uint16_t)~TOK_ATTR_EOG;
            if (v->eot == end) v->eot = ret;
        }
        static const char *const markers[] = { "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>" };
        for (size_t i = 0; i < 4; i++) {
            int32_t id = find_cstr(v, markers[i]);
            if (id >= 0) v->attr[id] = (uint16_t)((v->attr[id] & ~(TOK_ATTR_CONTROL | TOK_ATTR_NORMAL)) | TOK_ATTR_USER_DEFINED);
        }
    }
    /* a token that ends generation is a control token even when the GGUF
     * says otherwise (llama.cpp overrides the type the same way), and
     * control tokens named "unused" are unused */
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        if (v->attr[i] & TOK_ATTR_EOG) v->attr[i] |= TOK_ATTR_CONTROL;
        size_t n;
        const char *t = tok_text(v, (int32_t)i, &n);
        if ((v->attr[i] & TOK_ATTR_CONTROL) && n >= 6 && memmem(t, n, "unused", 6)) v->attr[i] |= TOK_ATTR_UNUSED;
    }
}

tok_vocab *tok_vocab_load(const gguf_file *f, mf_error *e)
{
    tok_vocab *v = calloc(1, sizeof *v);
    if (!v) { mf_fail(e, "out of memory"); return NULL; }
    const char *fname = f->n_parts > 0 ? f->parts[0].path : "(gguf)";
    v->path = strdup(fname);
    if (!v->path) { mf_fail(e, "out of memory"); goto fail; }

    const char *model;
    if (gguf_get_str(f, "tokenizer.ggml.model", &model, e)) goto fail;
    if (!strcmp(model, "gpt2")) {
        v->model = TOK_MODEL_BPE;
        v->bos = v->eos = v->eot = v->eom = v->unk = v->pad = -1;
    } else if (!strcmp(model, "llama")) {
        v->model = TOK_MODEL_SPM;
        v->pre = TOK_PRE_NONE;
        v->bos = 1; v->eos = 2; v->unk = 0;
        v->eot = v->eom = v->pad = -1;
        v->add_bos = true;
        v->add_space_prefix = true;
    } else {
        mf_fail(e, "%s: tokenizer.ggml.model '%s' is not supported (supported: gpt2, llama)", v->path, model);
        goto fail;
    }

    if (v->model == TOK_MODEL_BPE) {
        const char *pre = "default";
        if (gguf_find(f, "tokenizer.ggml.pre") && gguf_get_str(f, "tokenizer.ggml.pre", &pre, e)) goto fail;
        size_t i = 0;
        for (; i < sizeof pre_names / sizeof *pre_names; i++)
            if (!strcmp(pre, pre_names[i].name)) break;
        if (i == sizeof pre_names / sizeof *pre_names) {
            /* llama.cpp refuses unknown pre-tokenizers too: guessing would
             * silently produce ids the model was not trained on */
            mf_fail(e, "%s: tokenizer.ggml.pre '%s' is not supported (supported: qwen2, qwen35, deepseek-v3, "
                    "llama-bpe, gpt-2, default and their aliases)", v->path, pre);
            goto fail;
        }
        v->pre = pre_names[i].pre;
        v->pre_name = strdup(pre);
        if (!v->pre_name) { mf_fail(e, "out of memory"); goto fail; }
        if (v->pre == TOK_PRE_LLAMA3) { v->ignore_merges = true; v->add_bos = true; }
        /* Qwen's tokenizer.json normalizes with NFC before splitting */
        v->nfc = v->pre == TOK_PRE_QWEN2 || v->pre == TOK_PRE_QWEN35;
    }

    if (load_tokens(f, v, e)) goto fail;
    if (v->model == TOK_MODEL_BPE && load_merges(f, v, e)) goto fail;

    for (int b = 0; b < 256; b++) {
        char buf[8];
        if (v->model == TOK_MODEL_BPE) {
            v->byte_tok[b] = tok_find(v, buf, utf8_put(buf, tok_byte_to_cpt((uint8_t)b)));
        } else {
            snprintf(buf, sizeof buf, "<0x%02X>", b);
            v->byte_tok[b] = tok_find(v, buf, 6);
            if (v->byte_tok[b] < 0) { buf[0] = (char)b; v->byte_tok[b] = tok_find(v, buf, 1); }
        }
    }

    if (read_special(f, v, "tokenizer.ggml.bos_token_id", &v->bos, e) ||
        read_special(f, v, "tokenizer.ggml.eos_token_id", &v->eos, e) ||
        read_special(f, v, "tokenizer.ggml.eot_token_id", &v->eot, e) ||
        read_special(f, v, "tokenizer.ggml.eom_token_id", &v->eom, e) ||
        read_special(f, v, "tokenizer.ggml.unknown_token_id", &v->unk, e) ||
        read_special(f, v, "tokenizer.ggml.padding_token_id", &v->pad, e))
        goto fail;
    if (gguf_opt_bool(f, "tokenizer.ggml.add_bos_token", v->add_bos, &v->add_bos, e) ||
        gguf_opt_bool(f, "tokenizer.ggml.add_eos_token", v->add_eos, &v->add_eos, e) ||
        gguf_opt_bool(f, "tokenizer.ggml.add_space_prefix", v->add_space_prefix, &v->add_space_prefix, e))
        goto fail;
    if (v->add_bos && v->bos < 0) {
        mf_fail(e, "%s: tokenizer.ggml.add_bos_token is true but there is no bos_token_id", v->path);
        goto fail;
    }
    if (v->add_eos && v->eos < 0) {
        mf_fail(e, "%s: tokenizer.ggml.add_eos_token is true but there is no eos_token_id", v->path);
        goto fail;
    }

    mark_eog(v);
    if (build_special(v, e) || build_pieces(v, e)) goto fail;
    if (v->model == TOK_MODEL_BPE && tok_pretok_init(v, e)) goto fail;
    return v;
fail:
    tok_vocab_free(v);
    return NULL;
}

void tok_vocab_free(tok_vocab *v)
{
    if (!v) return;
    tok_pretok_free(v->pretok);
    free(v->path);
    free(v->pre_name);
    free(v->text);
    free(v->text_off);
    free(v->attr);
    free(v->score);
    free(v->id_hash);
    free(v->merges);
    free(v->special);
    free(v->piece);
    free(v->piece_off);
    free(v);
}

/* ---- public API (include/moeflash.h) ---- */

mf_vocab *mf_vocab_open(const char *gguf_path, mf_error *e)
{
    gguf_file *f = gguf_open(gguf_path, e);
    if (!f) return NULL;
    tok_vocab *v = tok_vocab_load(f, e);
    gguf_close(f);
    return v;
}

void mf_vocab_free(mf_vocab *v) { tok_vocab_free(v); }

size_t mf_vocab_size(const mf_vocab *v) { return v->n_tokens; }
int32_t mf_vocab_bos(const mf_vocab *v) { return v->bos; }
int32_t mf_vocab_eos(const mf_vocab *v) { return v->eos; }
int32_t mf_vocab_eot(const mf_vocab *v) { return v->eot; }
bool mf_vocab_add_bos(const mf_vocab *v) { return v->add_bos; }

static bool in_range(const mf_vocab *v, int32_t id) { return id >= 0 && (uint32_t)id < v->n_tokens; }

bool mf_token_is_eog(const mf_vocab *v, int32_t id) { return in_range(v, id) && (v->attr[id] & TOK_ATTR_EOG); }

bool mf_token_is_control(const mf_vocab *v, int32_t id)
{
    return in_range(v, id) && (v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN));
}

int32_t mf_token_find(const mf_vocab *v, const char *text, size_t len) { return tok_find(v, text, len); }

const char *mf_token_text(const mf_vocab *v, int32_t id, size_t *len)
{
    if (!in_range(v, id)) return NULL;
    return tok_text(v, id, len);
}

const char *mf_token_piece(const mf_vocab *v, int32_t id, bool special, size_t *len)
{
    if (!in_range(v, id)) return NULL;
    if (!special && (v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) { *len = 0; return ""; }
    *len = (size_t)(v->piece_off[id + 1] - v->piece_off[id]);
    return v->piece + v->piece_off[id];
}
