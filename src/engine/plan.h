/* plan.h — the memory plan of a GGUF model: which bytes stay resident and
 * which are routed experts streamed through the store. */
#ifndef MF_PLAN_H
#define MF_PLAN_H

#include "gguf.h"

typedef struct mf_plan {
    char arch[64];
    uint32_t n_layer;           /* block_count - nextn_predict_layers */
    uint32_t n_expert, n_expert_used;
    uint32_t n_moe_layers;
    uint64_t total_bytes;
    uint64_t resident_bytes;    /* everything but routed experts and the embedding read per token */
    uint64_t row_read_bytes;    /* the untied token embedding, left on disk (0 when tied) */
    uint64_t expert_bytes;      /* all routed experts */
    uint64_t resident_elems, expert_elems;  /* weights, for bits per weight */
    uint64_t *expert_bytes_layer;  /* bytes of one expert of layer l (0: dense layer) */
    uint64_t max_expert_bytes;
    uint64_t miss_bytes_per_token; /* sum over layers of K x one expert */
} mf_plan;

int plan_compute(const gguf_file *f, mf_plan *p, mf_error *e);
/* Memory besides the weights and the expert cache: activations, code, the
 * allocator (64 MiB), and the prefill batch's scratch, about n_batch x
 * n_embd x (K + 8) floats (every token's K expert outputs, its hidden
 * states and projections). n_batch as mf_model_params has it. */
uint64_t plan_working_bytes(const gguf_file *f, const mf_plan *p, int n_batch);
void plan_free(mf_plan *p);

/* Parses "blk.<L>.<rest>" : returns L and sets *rest, or -1. */
int plan_tensor_layer(const char *name, const char **rest);
/* True for routed-expert tensors (ffn_{gate,up,down,gate_up}_exps.*). */
bool plan_is_expert_tensor(const char *rest);
/* True for the token embedding of a model with its own output head
 * (output.weight): a token reads one row of it, so it stays on disk and is
 * read row by row. Tied, the same matrix is the output head, which every
 * token reads whole: then it is resident like any dense weight. */
bool plan_is_row_read(const gguf_file *f, const gguf_tensor *t);

#endif
