/* decoder.h — what the decoder architectures share outside their layers:
 * the hyperparameters every GQA decoder reads under its own prefix, with
 * the same defaults and the same checks; the token embedding, final norm
 * and output head they all bind; and the final RMSNorm + output head that
 * ends every forward.
 *
 * Each architecture keeps its own keys (epsilon, RoPE, routing, ...) and
 * its own checks of them; what is here is what they would otherwise each
 * copy. Error messages name the file, the architecture and the values.
 */
#ifndef MF_DECODER_H
#define MF_DECODER_H

#include "models/ops.h"

#include <stdint.h>

enum {
    DEC_DENSE_OK = 1,       /* expert_count may be absent or 0 (a dense model); the FFN width is
                               feed_forward_length (also each expert's), not expert_feed_forward_length */
    DEC_NEXTN = 2,          /* the last nextn_predict_layers blocks are a multi-token-prediction head,
                               not part of the trunk (n_layer excludes them) */
    DEC_ROPE_REQUIRED = 4,  /* rope.dimension_count must be >= 2 (the RoPE tables need a rotation) */
};

/* The shape of a GQA decoder, from the keys under `<arch>.`. */
typedef struct dec_dims {
    uint32_t n_layer;       /* block_count, less the MTP blocks with DEC_NEXTN */
    uint32_t n_embd, n_head, n_head_kv, head_dim, n_rot, n_ctx_train;
    uint32_t n_expert, n_used;   /* 0, 0: dense (DEC_DENSE_OK only) */
    uint32_t n_ff;          /* each expert's FFN width (the dense FFN's with DEC_DENSE_OK) */
} dec_dims;

/* Reads block_count, embedding_length, attention.head_count, the expert
 * counts and FFN width (required), and the optional context_length (4096),
 * attention.head_count_kv (head_count), attention.key_length
 * (embedding_length / head_count), attention.value_length (key_length) and
 * rope.dimension_count (key_length); then checks them: every size > 0 and
 * plausible, value_length = key_length, head_count a multiple of
 * head_count_kv, the rotated dims even and <= key_length, and
 * dec_check_experts (a dense model's n_used is 0). */
int dec_dims_load(const gguf_file *f, const char *arch, unsigned flags, dec_dims *d, mf_error *e);

/* Sets the fields an architecture's hparams repeat under the same names
 * (all but n_ff, whose name says which FFN it sizes) from d. */
#define DEC_DIMS_COPY(hp, d)                                                                                         \
    ((hp)->n_layer = (d).n_layer, (hp)->n_embd = (d).n_embd, (hp)->n_ctx_train = (d).n_ctx_train,                   \
     (hp)->n_head = (d).n_head, (hp)->n_head_kv = (d).n_head_kv, (hp)->head_dim = (d).head_dim,                     \
     (hp)->n_rot = (d).n_rot, (hp)->n_expert = (d).n_expert, (hp)->n_used = (d).n_used)

/* expert_used_count within 1..min(expert_count, 64) (moe_scratch holds 64);
 * with dense_ok, expert_count 0 passes whatever expert_used_count says. */
int dec_check_experts(const char *path, const char *arch, uint32_t n_expert, uint32_t n_used, int dense_ok, mf_error *e);

/* Binds token_embd.weight (n_embd x vocabulary; *n_vocab from it),
 * output_norm.weight (f32) and output.weight, which falls back to the token
 * embedding when the file ties them. */
int dec_bind_ends(binder *b, uint64_t n_embd, mf_weight *tok_embd, mf_weight *output_norm, mf_weight *output,
                  uint32_t *n_vocab);

/* logits = output . (RMSNorm(x) * norm): the end of every forward. h
 * receives the normed x (output->ne[0] floats). */
void dec_logits(mf_pool *pool, const mf_weight *norm, const mf_weight *output, float eps, const float *x, float *h,
                float *logits);

/* The same for the rows of a prefill chunk that want logits: X holds
 * tokens c..c+T-1 of a prompt of n (rows output->ne[0] apart); every row
 * goes into all (row c + t) when all is not NULL, the prompt's last into
 * last when last is not NULL. */
void dec_logits_rows(mf_pool *pool, const mf_weight *norm, const mf_weight *output, float eps, const float *X, float *h,
                     int c, int T, int n, float *all, float *last);

#endif
