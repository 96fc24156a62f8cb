/* weights.h — a weight matrix as the layers see it, and the binder that
 * takes it from the GGUF tensor table with its shape checked.
 *
 * A model binds every tensor it uses once, at load: a missing tensor or a
 * shape other than the hyperparameters imply is an error that names the
 * tensor, the expected and the found shape. Non-expert weights point into
 * the resident copy gguf_load_tensors made; routed experts never do (they
 * come from the store). A weight left on disk (data NULL: the untied token
 * embedding, of which a token needs one row) keeps its file and tensor
 * entry, and its rows are read on demand (weight_read_row).
 */
#ifndef MF_WEIGHTS_H
#define MF_WEIGHTS_H

#include "gguf.h"

typedef struct mf_weight {
    const char *name;      /* NULL: absent (optional tensor) */
    uint32_t type;         /* mf_type */
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    size_t row_bytes;      /* bytes of one ne[0] row */
    const void *data;      /* NULL: not resident */
    const gguf_file *file; /* where the tensor lives, for rows read on demand */
    const gguf_tensor *src;
} mf_weight;

typedef struct binder {
    const gguf_file *f;
    mf_error *e;
    int failed;
} binder;

/* Binds the tensor named by fmt.. with shape ne[0..n_dims). Required: a
 * missing tensor is an error. Optional: a missing one leaves w->name NULL.
 * Returns 0 or -1 (and sets b->failed). Shape entries 0 mean "any". */
int bind_weight(binder *b, mf_weight *w, int required, uint32_t n_dims, const uint64_t *ne, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Requires a float type (f32 only: norms, biases, small vectors). */
int bind_check_f32(binder *b, const mf_weight *w);

/* Row r of a weight left on disk, read from its file with pread and
 * dequantized into out (ne[0] floats). Reads go through a bounded stack
 * buffer: nothing is allocated, and several threads may read at once. A
 * failed or short read (the file shrank after open) is an error naming the
 * file, the tensor, the row and the byte offset. */
int weight_read_row(const mf_weight *w, uint64_t r, float *out, mf_error *e);

/* Pointer to row r of w (a resident weight). */
static inline const void *weight_row(const mf_weight *w, uint64_t r)
{
    return (const uint8_t *)w->data + r * w->row_bytes;
}

#endif
