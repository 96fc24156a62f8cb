/* tokenizer.h — vocabularies read from GGUF metadata, text to token ids and
 * back. Internal API of src/tokenizer (prefix tok_); the public face is the
 * mf_vocab / mf_tokenize / mf_detok part of include/moeflash.h, and
 * mf_vocab is this module's tok_vocab.
 *
 * Two vocabulary models are supported, as llama.cpp names them in
 * `tokenizer.ggml.model`:
 *   gpt2   byte-level BPE: text is split by the pre-tokenizer regexes chosen
 *          by `tokenizer.ggml.pre`, each piece is mapped byte by byte onto
 *          GPT-2's printable byte alphabet, and merges are applied by rank.
 *   llama  SentencePiece BPE: spaces become U+2581, pieces merge by score,
 *          unknown characters fall back to <0xNN> byte tokens.
 * Special tokens (CONTROL, USER_DEFINED, UNKNOWN types) are cut out of the
 * text before either runs, the way llama.cpp does it.
 *
 * A loaded vocabulary owns copies of every string it needs, so the GGUF may
 * be closed after tok_vocab_load. It is read-only afterwards: any number of
 * threads may tokenize and decode with it at once.
 */
#ifndef MF_TOKENIZER_H
#define MF_TOKENIZER_H

#include "moeflash.h"
#include "gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mf_vocab tok_vocab;

/* Token attributes (llama.cpp's token types as bits; GGUF
 * tokenizer.ggml.token_type values 1..6 map onto them). */
enum {
    TOK_ATTR_UNKNOWN      = 1u << 0,
    TOK_ATTR_UNUSED       = 1u << 1,
    TOK_ATTR_NORMAL       = 1u << 2,
    TOK_ATTR_CONTROL      = 1u << 3,
    TOK_ATTR_USER_DEFINED = 1u << 4,
    TOK_ATTR_BYTE         = 1u << 5,
    TOK_ATTR_EOG          = 1u << 6,  /* ends generation (not a GGUF type) */
};

typedef enum tok_model { TOK_MODEL_BPE, TOK_MODEL_SPM } tok_model;

/* Pre-tokenizers (regex sets) for byte-level BPE, by tokenizer.ggml.pre. */
typedef enum tok_pre {
    TOK_PRE_DEFAULT,    /* "default" or missing: llama.cpp's fallback set */
    TOK_PRE_GPT2,       /* "gpt-2" and look-alikes */
    TOK_PRE_LLAMA3,     /* "llama-bpe", "llama3", ... */
    TOK_PRE_QWEN2,      /* "qwen2": Qwen2, Qwen2.5, Qwen3 */
    TOK_PRE_QWEN35,     /* "qwen35": Qwen3.5 */
    TOK_PRE_DEEPSEEK3,  /* "deepseek-v3" */
    TOK_PRE_NONE,       /* SentencePiece: no regex split */
} tok_pre;

/* One hash slot of the merge table: the pair (left, right) of token ids
 * merges into `merged` with priority `rank` (lower first). */
typedef struct tok_merge { int32_t left, right, merged, rank; } tok_merge;

typedef struct tok_pretok tok_pretok;   /* compiled regexes (pretok.c) */

struct mf_vocab {
    char *path;                 /* the GGUF it came from, for messages */
    tok_model model;
    tok_pre pre;
    char *pre_name;

    uint32_t n_tokens;
    char *text;                 /* all token texts, back to back */
    uint64_t *text_off;         /* n_tokens + 1 offsets into text */
    uint16_t *attr;             /* TOK_ATTR_* per token */
    float *score;               /* SentencePiece scores (0 for BPE) */
    uint32_t max_token_len;

    uint32_t *id_hash;          /* open addressing: id + 1, 0 = empty */
    uint64_t id_mask;

    tok_merge *merges;          /* open addressing on (left, right) */
    uint64_t merge_mask;
    uint32_t n_merges;

    int32_t byte_tok[256];      /* the token of each single byte, or -1 */

    int32_t *special;           /* CONTROL/USER_DEFINED/UNKNOWN ids,   */
    uint32_t n_special;         /* longest text first (as llama.cpp)  */

    char *piece;                /* decoded bytes of every token */
    uint64_t *piece_off;        /* n_tokens + 1 offsets into piece */
    uint64_t max_piece_len;

    int32_t bos, eos, eot, eom, unk, pad;   /* -1 when absent */
    bool add_bos, add_eos;
    bool add_space_prefix;      /* SentencePiece: prepend " " to text */
    bool ignore_merges;         /* llama3: a piece that is a token stays whole */
    bool nfc;                   /* NFC-normalize text before splitting */

    tok_pretok *pretok;
};

/* Reads the vocabulary of f. Every count, type and id is checked; errors
 * name the file and the key. */
tok_vocab *tok_vocab_load(const gguf_file *f, mf_error *e);
void tok_vocab_free(tok_vocab *v);

/* Token id of exactly these bytes, or -1. */
int32_t tok_find(const tok_vocab *v, const char *s, size_t n);
/* Rank slot of the merge (left, right), or NULL. */
const tok_merge *tok_merge_find(const tok_vocab *v, int32_t left, int32_t right);

static inline const char *tok_text(const tok_vocab *v, int32_t id, size_t *n)
{
    *n = (size_t)(v->text_off[id + 1] - v->text_off[id]);
    return v->text + v->text_off[id];
}

/* ---- growable id list used while tokenizing ---- */
typedef struct tok_ids { int32_t *p; size_t n, cap; } tok_ids;
int tok_ids_push(tok_ids *l, int32_t id, mf_error *e);

/* ---- pre-tokenizer (pretok.c) ---- */

/* Compiles the regex set of v->pre into v->pretok. */
int tok_pretok_init(tok_vocab *v, mf_error *e);
void tok_pretok_free(tok_pretok *p);

/* A piece of text: [off, off + len) of the buffer being split. */
typedef struct tok_span { size_t off, len; } tok_span;
typedef struct tok_spans { tok_span *p; size_t n, cap; } tok_spans;

/* Splits s[0..n) into pieces with the vocabulary's regexes (each regex
 * splits the pieces of the previous one; text between matches is a piece
 * too). Appends to out (cleared first). */
int tok_pretok_split(const tok_vocab *v, const char *s, size_t n, tok_spans *out, mf_error *e);

/* NFC of s[0..n) into a malloc'd buffer (*out, *out_n). Invalid UTF-8 runs
 * are copied unchanged. Without utf8proc the text is copied as is. */
int tok_nfc(const char *s, size_t n, char **out, size_t *out_n, mf_error *e);

/* ---- models (bpe.c, spm.c) ---- */

/* Scratch memory reused across the words of one tokenize call (capacities
 * in bytes). */
typedef struct tok_work {
    void *sym; size_t sym_cap;      /* symbols of the current word */
    void *heap; size_t heap_n, heap_cap;
    char *buf; size_t buf_cap;      /* byte-encoded word / escaped text */
    tok_spans spans;
} tok_work;
void tok_work_free(tok_work *w);
/* Grows *p to at least need bytes (doubling). */
int tok_reserve(void **p, size_t *cap, size_t need, mf_error *e);

/* Byte-level BPE of one raw-text fragment (pre-tokenizer included). */
int tok_bpe_fragment(const tok_vocab *v, tok_work *w, const char *s, size_t n, tok_ids *out, mf_error *e);
/* SentencePiece of one raw-text fragment; the caller adds the space prefix. */
int tok_spm_fragment(const tok_vocab *v, tok_work *w, const char *s, size_t n, bool space_prefix,
                     tok_ids *out, mf_error *e);

/* GPT-2's byte <-> printable code point mapping. */
uint32_t tok_byte_to_cpt(uint8_t b);
/* The byte of code point c, or -1 when c is not in the byte alphabet. */
int tok_cpt_to_byte(uint32_t c);

/* Length of the UTF-8 sequence that starts at s[0..n), or 0 when invalid or
 * incomplete. *cp receives the code point. */
size_t tok_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);

#endif
